//! Request bodies of the HTTP API. Unknown fields are refused so a typo is a 400 rather
//! than a silently ignored option.

use roomcast_protocol::{ClientId, Priority, RoomName, UserId};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::broker::Target;
use crate::model::RoomOptions;

/// `POST /api/token`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenRequest {
    pub user_id: UserId,
    #[serde(default)]
    pub roles: Vec<String>,
    pub name: Option<String>,
    #[serde(default)]
    pub info: Map<String, Value>,
    pub ttl_seconds: Option<u64>,
}

/// `POST /api/send`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendRequest {
    pub client_id: String,
    pub message: Value,
    #[serde(default)]
    pub ack: bool,
    pub timeout_ms: Option<u64>,
}

/// `POST /api/broadcast`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BroadcastRequest {
    pub to: To,
    pub message: Value,
    #[serde(default)]
    pub ack: bool,
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub batch: bool,
}

/// `POST /api/publish`: items stay raw JSON, parsed once for their `key` only.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublishRequest {
    pub topic: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub items: Vec<Box<RawValue>>,
}

/// `POST /api/notify`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotifyRequest {
    pub user_id: UserId,
    pub title: String,
    pub content: String,
    #[serde(default)]
    pub priority: Priority,
}

/// `POST /api/notify_all`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotifyAllRequest {
    pub title: String,
    pub content: String,
}

/// The `to` of a broadcast: exactly one key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct To {
    pub all: Option<bool>,
    pub room: Option<RoomName>,
    pub rooms: Option<Vec<RoomName>>,
    pub client: Option<ClientId>,
    pub user: Option<UserId>,
    pub users: Option<Vec<UserId>>,
    pub role: Option<String>,
}

impl To {
    /// The target, when exactly one key is set.
    pub fn target(self) -> Result<Target, String> {
        let set = [
            self.all.is_some(),
            self.room.is_some(),
            self.rooms.is_some(),
            self.client.is_some(),
            self.user.is_some(),
            self.users.is_some(),
            self.role.is_some(),
        ]
        .iter()
        .filter(|s| **s)
        .count();
        if set != 1 {
            return Err(
                "`to` needs exactly one of all, room, rooms, client, user, users, role".to_owned(),
            );
        }
        Ok(match self {
            To {
                all: Some(true), ..
            } => Target::All,
            To {
                all: Some(false), ..
            } => return Err("`to.all` must be true".to_owned()),
            To {
                room: Some(room), ..
            } => Target::Room(room),
            To {
                rooms: Some(rooms), ..
            } => Target::Rooms(rooms),
            To {
                client: Some(client),
                ..
            } => Target::Client(client),
            To {
                user: Some(user), ..
            } => Target::User(user),
            To {
                users: Some(users), ..
            } => Target::Users(users),
            To {
                role: Some(role), ..
            } if !role.is_empty() => Target::Role(role),
            _ => return Err("`to.role` must not be empty".to_owned()),
        })
    }
}

/// `POST /api/rooms`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateRoomRequest {
    pub name: RoomName,
    pub max_clients: Option<usize>,
    #[serde(default)]
    pub persistent: bool,
    #[serde(default)]
    pub roles: Vec<String>,
    pub presence: Option<bool>,
}

impl CreateRoomRequest {
    pub fn options(&self) -> Result<RoomOptions, String> {
        if self.max_clients == Some(0) {
            return Err("`maxClients` must be at least 1".to_owned());
        }
        Ok(RoomOptions {
            max_clients: self.max_clients,
            persistent: self.persistent,
            roles: self.roles.clone(),
            presence: self.presence.unwrap_or(true),
        })
    }
}
