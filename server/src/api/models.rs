//! Request bodies and query strings of the HTTP API (`/api` and `/dev`). Unknown fields
//! and query parameters are refused so a typo is a 400 rather than a silently ignored
//! option.

use roomcast_protocol::{ClientId, MessageId, Priority, RoomName, UserId};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::query;
use crate::broker::Target;
use crate::model::RoomOptions;

// ---- Query strings (decoded by `query::query`; values arrive as strings) ----

/// `GET /api/connections?active=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConnectionsQuery {
    /// Only authenticated connections.
    #[serde(default, deserialize_with = "query::active")]
    pub active: bool,
}

/// `GET /api/users/{userId}/notifications?unread=&limit=` and
/// `GET /dev/notifications?unread=&limit=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NotificationsQuery {
    /// Only unread notifications.
    #[serde(default, deserialize_with = "query::unread")]
    pub unread: bool,
    /// How many; the hub applies its default and cap.
    #[serde(default, deserialize_with = "query::limit")]
    pub limit: Option<u32>,
}

/// `GET /api/rooms/{name}/history?limit=&before=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HistoryQuery {
    /// How many messages; the hub applies its default and cap.
    #[serde(default, deserialize_with = "query::limit")]
    pub limit: Option<u32>,
    /// Only messages strictly older than this one.
    #[serde(default, deserialize_with = "query::before")]
    pub before: Option<MessageId>,
}

/// `GET /api/users/{userId}/private?with=&limit=&before=&beforeTo=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct PrivateQuery {
    /// The other side of the conversation.
    #[serde(deserialize_with = "query::with")]
    pub with: UserId,
    /// How many messages; the hub applies its default and cap.
    #[serde(default, deserialize_with = "query::limit")]
    pub limit: Option<u32>,
    /// Only messages before this one (with `beforeTo`, the `to` of the message it names).
    #[serde(default, deserialize_with = "query::before")]
    pub before: Option<MessageId>,
    /// The `to` of the message `before` names.
    #[serde(default, deserialize_with = "query::before_to")]
    pub before_to: Option<UserId>,
}

// ---- Request bodies ----

/// `POST /dev/token`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct DevTokenRequest {
    pub user_id: String,
    pub name: Option<String>,
    pub role: Option<String>,
}

/// `POST /api/token`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct TokenRequest {
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
pub(super) struct SendRequest {
    pub client_id: String,
    pub message: Value,
    #[serde(default)]
    pub ack: bool,
    pub timeout_ms: Option<u64>,
}

/// `POST /api/broadcast`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct BroadcastRequest {
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
pub(super) struct PublishRequest {
    pub topic: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub items: Vec<Box<RawValue>>,
}

/// `POST /api/notify`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct NotifyRequest {
    pub user_id: UserId,
    pub title: String,
    pub content: String,
    #[serde(default)]
    pub priority: Priority,
}

/// `POST /api/notify_all`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct NotifyAllRequest {
    pub title: String,
    pub content: String,
}

/// The `to` of a broadcast: exactly one key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct To {
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
    pub(super) fn target(self) -> Result<Target, String> {
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
pub(super) struct CreateRoomRequest {
    pub name: RoomName,
    pub max_clients: Option<usize>,
    #[serde(default)]
    pub persistent: bool,
    #[serde(default)]
    pub roles: Vec<String>,
    pub presence: Option<bool>,
}

impl CreateRoomRequest {
    pub(super) fn options(&self) -> Result<RoomOptions, String> {
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
