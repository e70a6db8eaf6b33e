//! Server → client messages (CONTRACT §5) and the public user object (§2).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{ClientId, ErrorCode, MessageId, RequestId, RoomName, Timestamp, UserId};

/// The public user object every `from`, `user` and `users` entry carries:
/// `{"userId","name"?,"roles"?, ...info}`. The server builds it from the token, never from
/// what a client claims.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// The token's `sub`.
    pub user_id: UserId,
    /// The token's `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The token's `roles`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// The token's `info`, flattened into the object.
    #[serde(flatten)]
    pub info: Map<String, Value>,
}

impl User {
    /// Builds a user; `info` keys that would shadow `userId`, `name` or `roles` are dropped.
    pub fn new(
        user_id: UserId,
        name: Option<String>,
        roles: Vec<String>,
        mut info: Map<String, Value>,
    ) -> Self {
        for reserved in ["userId", "name", "roles"] {
            info.remove(reserved);
        }
        Self {
            user_id,
            name,
            roles,
            info,
        }
    }

    /// Whether the user holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// A notification's priority.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Low.
    Low,
    /// Normal (the default).
    #[default]
    Normal,
    /// High.
    High,
    /// Urgent.
    Urgent,
}

/// One message from the server, tagged by `"type"`. Application messages (any other
/// `type`) are plain JSON objects and do not go through this enum, except `stats_update`,
/// which the server sends itself; topic messages are [`TopicMessage`](crate::TopicMessage).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum ServerMessage {
    /// Authentication succeeded (or a token was refreshed).
    AuthOk {
        /// This connection's id.
        client_id: ClientId,
        /// The user's id.
        user_id: UserId,
        /// The public user object.
        user: User,
        /// Rooms the server joined the connection to on its own.
        rooms: Vec<RoomName>,
        /// When the token expires, if it does.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_at: Option<Timestamp>,
        /// Server time.
        timestamp: Timestamp,
    },
    /// Heartbeat; answer with `pong`.
    Ping {
        /// Server time.
        timestamp: Timestamp,
    },
    /// Answer to a client `ping`.
    Pong {
        /// The `ping`'s id, when it had one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// Server time.
        timestamp: Timestamp,
    },
    /// Success answer to a request with an `id`.
    Reply {
        /// The request's id.
        id: RequestId,
        /// Always true.
        ok: bool,
        /// The result.
        data: Value,
    },
    /// A failed request, or a problem with a message that had no `id`.
    Error {
        /// The request's id, when it had one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// What kind of failure.
        code: ErrorCode,
        /// A human explanation.
        message: String,
    },
    /// The members of a room, sent to a joiner.
    UserList {
        /// The room.
        room: RoomName,
        /// One object per user, at most the presence limit of them.
        users: Vec<User>,
        /// Distinct users in the room in all.
        count: u64,
        /// Server time.
        timestamp: Timestamp,
    },
    /// A user's first connection joined the room.
    UserJoin {
        /// The room.
        room: RoomName,
        /// Who joined.
        user: User,
        /// Server time.
        timestamp: Timestamp,
    },
    /// A user's last connection left the room.
    UserLeave {
        /// The room.
        room: RoomName,
        /// Who left.
        user: User,
        /// Server time.
        timestamp: Timestamp,
    },
    /// A room chat message.
    Chat {
        /// Its id, sortable within the room.
        id: MessageId,
        /// The room.
        room: RoomName,
        /// The sender.
        from: User,
        /// The sender's `content`.
        message: Value,
        /// When the server accepted it.
        timestamp: Timestamp,
    },
    /// A private message, as the target's connections and the sender's other connections
    /// get it.
    Private {
        /// Its id.
        id: MessageId,
        /// The sender.
        from: User,
        /// The target's user id: tells a sender's other connection whose conversation its
        /// own message belongs to.
        to: UserId,
        /// The sender's `content`.
        message: Value,
        /// When the server accepted it.
        timestamp: Timestamp,
    },
    /// A notification for this user.
    Notification {
        /// Its id.
        id: MessageId,
        /// Title.
        title: String,
        /// Body.
        content: String,
        /// Priority.
        priority: Priority,
        /// Whether it was marked read.
        read: bool,
        /// When it was created.
        timestamp: Timestamp,
    },
    /// A notification to everyone.
    GlobalNotification {
        /// Its id.
        id: MessageId,
        /// Title.
        title: String,
        /// Body.
        content: String,
        /// When it was created.
        timestamp: Timestamp,
    },
    /// A notification was marked read (by any connection of the user).
    NotificationRead {
        /// The notification.
        notification_id: MessageId,
        /// Server time.
        timestamp: Timestamp,
    },
    /// Another message, gzipped: `data` is `"gzip:"` + base64.
    Compressed {
        /// The encoded message.
        data: String,
        /// Server time.
        timestamp: Timestamp,
    },
    /// Several room messages coalesced, in publish order.
    BatchMessages {
        /// The room.
        room: RoomName,
        /// The messages.
        messages: Vec<Value>,
        /// `messages.len()`.
        count: u64,
        /// Server time.
        timestamp: Timestamp,
    },
    /// The admin dashboard's numbers, pushed to every connection of a user with the admin
    /// role each stats interval: counts now, rates since the previous one.
    StatsUpdate {
        /// Open connections, including ones still authenticating.
        connections: u64,
        /// Distinct connected users.
        users: u64,
        /// Rooms.
        rooms: u64,
        /// Frames received per second since the previous `stats_update`, to one decimal.
        messages_in_per_sec: f64,
        /// Frames sent per second since the previous `stats_update`, to one decimal.
        messages_out_per_sec: f64,
        /// Server time.
        timestamp: Timestamp,
    },
}

impl ServerMessage {
    /// An `error` answering request `id` (if any).
    pub fn error(id: Option<RequestId>, code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Error {
            id,
            code,
            message: message.into(),
        }
    }

    /// A successful `reply`; `data` is any JSON, or one of the [`replies`](crate::replies)
    /// bodies.
    pub fn reply(id: RequestId, data: impl Into<Value>) -> Self {
        Self::Reply {
            id,
            ok: true,
            data: data.into(),
        }
    }

    /// The message as JSON text. Serializing these types cannot fail: every map key is a
    /// string.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }

    /// The message as a JSON object, for APIs that take a [`Value`] (its keys then sort
    /// alphabetically when written).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn alice() -> User {
        User::new(
            UserId::new("alice").unwrap(),
            Some("Alice".into()),
            vec!["admin".into()],
            json!({"avatar":"a.png","userId":"mallory"})
                .as_object()
                .unwrap()
                .clone(),
        )
    }

    fn room() -> RoomName {
        RoomName::new("lobby").unwrap()
    }

    fn id(s: &str) -> MessageId {
        MessageId::new(s).unwrap()
    }

    fn alice_json() -> Value {
        json!({"userId":"alice","name":"Alice","roles":["admin"],"avatar":"a.png"})
    }

    fn cases() -> Vec<(ServerMessage, Value)> {
        vec![
            (
                ServerMessage::AuthOk {
                    client_id: ClientId::new("c1").unwrap(),
                    user_id: UserId::new("alice").unwrap(),
                    user: alice(),
                    rooms: vec![room()],
                    expires_at: Some(2000),
                    timestamp: 1000,
                },
                json!({"type":"auth_ok","clientId":"c1","userId":"alice","user":alice_json(),
                       "rooms":["lobby"],"expiresAt":2000,"timestamp":1000}),
            ),
            (
                ServerMessage::Ping { timestamp: 5 },
                json!({"type":"ping","timestamp":5}),
            ),
            (
                ServerMessage::Pong {
                    id: None,
                    timestamp: 5,
                },
                json!({"type":"pong","timestamp":5}),
            ),
            (
                ServerMessage::Pong {
                    id: Some(RequestId::from(9)),
                    timestamp: 5,
                },
                json!({"type":"pong","id":9,"timestamp":5}),
            ),
            (
                ServerMessage::reply(RequestId::from("r"), json!({"room":"lobby"})),
                json!({"type":"reply","id":"r","ok":true,"data":{"room":"lobby"}}),
            ),
            (
                ServerMessage::error(Some(RequestId::from(1)), ErrorCode::NotMember, "join first"),
                json!({"type":"error","id":1,"code":"not_member","message":"join first"}),
            ),
            (
                ServerMessage::error(None, ErrorCode::BadRequest, "bad"),
                json!({"type":"error","code":"bad_request","message":"bad"}),
            ),
            (
                ServerMessage::UserList {
                    room: room(),
                    users: vec![alice()],
                    count: 3,
                    timestamp: 7,
                },
                json!({"type":"user_list","room":"lobby","users":[alice_json()],"count":3,"timestamp":7}),
            ),
            (
                ServerMessage::UserJoin {
                    room: room(),
                    user: alice(),
                    timestamp: 7,
                },
                json!({"type":"user_join","room":"lobby","user":alice_json(),"timestamp":7}),
            ),
            (
                ServerMessage::UserLeave {
                    room: room(),
                    user: alice(),
                    timestamp: 7,
                },
                json!({"type":"user_leave","room":"lobby","user":alice_json(),"timestamp":7}),
            ),
            (
                ServerMessage::Chat {
                    id: id("01"),
                    room: room(),
                    from: alice(),
                    message: json!("hi"),
                    timestamp: 8,
                },
                json!({"type":"chat","id":"01","room":"lobby","from":alice_json(),"message":"hi","timestamp":8}),
            ),
            (
                ServerMessage::Private {
                    id: id("02"),
                    from: alice(),
                    to: UserId::new("bob").unwrap(),
                    message: json!({"t":1}),
                    timestamp: 8,
                },
                json!({"type":"private","id":"02","from":alice_json(),"to":"bob","message":{"t":1},"timestamp":8}),
            ),
            (
                ServerMessage::Notification {
                    id: id("n1"),
                    title: "T".into(),
                    content: "C".into(),
                    priority: Priority::Urgent,
                    read: false,
                    timestamp: 9,
                },
                json!({"type":"notification","id":"n1","title":"T","content":"C","priority":"urgent","read":false,"timestamp":9}),
            ),
            (
                ServerMessage::GlobalNotification {
                    id: id("g1"),
                    title: "T".into(),
                    content: "C".into(),
                    timestamp: 9,
                },
                json!({"type":"global_notification","id":"g1","title":"T","content":"C","timestamp":9}),
            ),
            (
                ServerMessage::NotificationRead {
                    notification_id: id("n1"),
                    timestamp: 9,
                },
                json!({"type":"notification_read","notificationId":"n1","timestamp":9}),
            ),
            (
                ServerMessage::Compressed {
                    data: "gzip:AAAA".into(),
                    timestamp: 9,
                },
                json!({"type":"compressed","data":"gzip:AAAA","timestamp":9}),
            ),
            (
                ServerMessage::BatchMessages {
                    room: room(),
                    messages: vec![json!({"type":"score_update","v":1})],
                    count: 1,
                    timestamp: 9,
                },
                json!({"type":"batch_messages","room":"lobby","messages":[{"type":"score_update","v":1}],"count":1,"timestamp":9}),
            ),
            (
                stats_update(),
                json!({"type":"stats_update","connections":42,"users":37,"rooms":5,
                       "messagesInPerSec":12.5,"messagesOutPerSec":96.0,"timestamp":10}),
            ),
        ]
    }

    #[test]
    fn every_variant_has_its_exact_json_both_ways() {
        for (message, expected) in cases() {
            assert_eq!(
                serde_json::to_value(&message).unwrap(),
                expected,
                "encoding {message:?}"
            );
            let back: ServerMessage = serde_json::from_value(expected.clone()).unwrap();
            assert_eq!(back, message, "decoding {expected}");
            assert_eq!(
                serde_json::from_str::<Value>(&message.to_json()).unwrap(),
                expected
            );
        }
    }

    #[test]
    fn user_info_cannot_shadow_identity_fields() {
        let user = alice();
        assert_eq!(user.user_id.as_str(), "alice");
        assert!(!user.info.contains_key("userId"));
        assert!(user.has_role("admin"));
        assert!(!user.has_role("guest"));
    }

    fn stats_update() -> ServerMessage {
        ServerMessage::StatsUpdate {
            connections: 42,
            users: 37,
            rooms: 5,
            messages_in_per_sec: 12.5,
            messages_out_per_sec: 96.0,
            timestamp: 10,
        }
    }

    #[test]
    fn stats_update_goes_out_through_a_sorted_key_value() {
        assert_eq!(
            stats_update().to_json(),
            r#"{"type":"stats_update","connections":42,"users":37,"rooms":5,"messagesInPerSec":12.5,"messagesOutPerSec":96.0,"timestamp":10}"#
        );
        // The server broadcasts it as a `Value`, like the application messages it used to
        // be built as: these are the bytes on the wire.
        assert_eq!(
            stats_update().to_value().to_string(),
            r#"{"connections":42,"messagesInPerSec":12.5,"messagesOutPerSec":96.0,"rooms":5,"timestamp":10,"type":"stats_update","users":37}"#
        );
    }

    #[test]
    fn private_names_its_target_in_contract_order_and_requires_it() {
        let text = r#"{"type":"private","id":"02","from":{"userId":"alice"},"to":"bob","message":"hi","timestamp":8}"#;
        let message: ServerMessage = serde_json::from_str(text).unwrap();
        assert_eq!(message.to_json(), text);
        let without = text.replace(r#""to":"bob","#, "");
        let err = serde_json::from_str::<ServerMessage>(&without).unwrap_err();
        assert!(err.to_string().contains("missing field `to`"), "{err}");
    }

    #[test]
    fn priority_defaults_to_normal() {
        assert_eq!(Priority::default(), Priority::Normal);
        assert_eq!(serde_json::to_value(Priority::High).unwrap(), json!("high"));
    }
}
