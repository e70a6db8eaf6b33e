//! The `data` of each `reply` (CONTRACT §3, §4): one type per built-in request, so the
//! exact-JSON tests see what the server answers.
//!
//! The server puts a body into [`ServerMessage::Reply`](crate::ServerMessage::Reply) through
//! `From<Body> for Value`. A `Value` object keeps its keys sorted (serde_json without
//! `preserve_order`), so on the wire a body's keys come in alphabetical order, not in the
//! order of its fields; the tests pin both forms.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{ClientId, MessageId, RoomName, ServerMessage, Timestamp, User, UserId};

/// `join`: the room, and how the `since` catch-up went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinReply {
    /// The room joined.
    pub room: RoomName,
    /// Whether every chat after `since` was replayed; false when `since` is older than the
    /// kept history (and always false without `since`).
    pub recovered: bool,
    /// How many chats were replayed after `user_list`.
    pub replayed: u64,
}

/// `leave`: the room left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaveReply {
    /// The room.
    pub room: RoomName,
}

/// `chat`: the stored message's id and time (the members' `chat` carries the same).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatReply {
    /// The message id.
    pub id: MessageId,
    /// The room.
    pub room: RoomName,
    /// When the server accepted it.
    pub timestamp: Timestamp,
}

/// `history`: stored `chat` messages, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryReply {
    /// The messages.
    pub items: Vec<ServerMessage>,
}

/// `private_history`: stored `private` messages of one conversation, both directions,
/// oldest first in the conversation's order (`timestamp`, then `to`, then `id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrivateHistoryReply {
    /// The messages.
    pub items: Vec<ServerMessage>,
}

/// `members`: one page of a room's users (every node's), in the order of their ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MembersReply {
    /// The users of this page.
    pub items: Vec<User>,
    /// Distinct users in the room in all.
    pub count: u64,
    /// The `after` of the next page (the last item's id); absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<UserId>,
}

/// `private`: what the sender learns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrivateReply {
    /// The message id (the recipients' `private` carries the same).
    pub id: MessageId,
    /// The recipient.
    pub target_user_id: UserId,
    /// Whether a connection of the recipient got it now; otherwise it waits for the
    /// recipient's next connect.
    pub delivered: bool,
    /// When the server accepted it.
    pub timestamp: Timestamp,
}

/// `ack`: whether a sender was still waiting for this acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AckReply {
    /// The `messageId` acknowledged, as sent.
    pub message_id: String,
    /// False for an unknown id, a second `ack`, or one after the sender's timeout.
    pub awaited: bool,
}

/// `mark_read`: the notification marked read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MarkReadReply {
    /// The notification.
    pub notification_id: MessageId,
}

/// `subscribe`: the keys now stored for the topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscribeReply {
    /// The topic.
    pub topic: String,
    /// The stored keys, sorted and without duplicates.
    pub keys: Vec<String>,
}

/// `unsubscribe`: whether there was a subscription to remove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnsubscribeReply {
    /// The topic.
    pub topic: String,
    /// False when the user had no subscription to it (not an error).
    pub removed: bool,
}

/// The first `auth` of a connection (it comes after `auth_ok` and what waited for the
/// user).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthReply {
    /// This connection's id.
    pub client_id: ClientId,
    /// The user's id.
    pub user_id: UserId,
}

/// A second `auth`, refreshing the token (it comes after the new `auth_ok`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshReply {
    /// This connection's id.
    pub client_id: ClientId,
    /// The user's id.
    pub user_id: UserId,
    /// When the new token expires: always present, `null` for a token without `exp`.
    pub expires_at: Option<Timestamp>,
}

/// `From<Body> for Value`, so a body goes straight into [`ServerMessage::reply`].
macro_rules! reply_data {
    ($($body:ty),* $(,)?) => {$(
        impl From<$body> for Value {
            fn from(body: $body) -> Self {
                // Every map key of a reply body is a string: serializing cannot fail.
                serde_json::to_value(body).unwrap_or(Value::Null)
            }
        }
    )*};
}

reply_data!(
    JoinReply,
    LeaveReply,
    ChatReply,
    HistoryReply,
    PrivateHistoryReply,
    MembersReply,
    PrivateReply,
    AckReply,
    MarkReadReply,
    SubscribeReply,
    UnsubscribeReply,
    AuthReply,
    RefreshReply,
);

#[cfg(test)]
mod tests {
    use serde::de::DeserializeOwned;
    use serde_json::{Map, json};

    use super::*;
    use crate::{RequestId, User};

    fn room() -> RoomName {
        RoomName::new("lobby").unwrap()
    }

    fn id(s: &str) -> MessageId {
        MessageId::new(s).unwrap()
    }

    fn user(s: &str) -> UserId {
        UserId::new(s).unwrap()
    }

    /// One body: its JSON (both ways), its fields in declaration order, and the bytes the
    /// server sends as a `reply`'s `data` (keys sorted).
    #[track_caller]
    fn check<T>(body: &T, expected: &Value, declared: &str, wire: &str)
    where
        T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug + Clone + Into<Value>,
    {
        assert_eq!(&serde_json::to_value(body).unwrap(), expected, "{body:?}");
        let back: T = serde_json::from_value(expected.clone()).unwrap();
        assert_eq!(&back, body, "decoding {expected}");
        assert_eq!(serde_json::to_string(body).unwrap(), declared);
        assert_eq!(body.clone().into().to_string(), wire);
        let back: T = serde_json::from_str(wire).unwrap();
        assert_eq!(&back, body, "decoding {wire}");
    }

    #[test]
    fn join_leave_and_chat() {
        check(
            &JoinReply {
                room: room(),
                recovered: true,
                replayed: 3,
            },
            &json!({"room":"lobby","recovered":true,"replayed":3}),
            r#"{"room":"lobby","recovered":true,"replayed":3}"#,
            r#"{"recovered":true,"replayed":3,"room":"lobby"}"#,
        );
        check(
            &LeaveReply { room: room() },
            &json!({"room":"lobby"}),
            r#"{"room":"lobby"}"#,
            r#"{"room":"lobby"}"#,
        );
        check(
            &ChatReply {
                id: id("01"),
                room: room(),
                timestamp: 7,
            },
            &json!({"id":"01","room":"lobby","timestamp":7}),
            r#"{"id":"01","room":"lobby","timestamp":7}"#,
            r#"{"id":"01","room":"lobby","timestamp":7}"#,
        );
    }

    #[test]
    fn history_items_are_chat_messages() {
        let chat = ServerMessage::Chat {
            id: id("01"),
            room: room(),
            from: User::new(user("alice"), Some("Alice".into()), Vec::new(), Map::new()),
            message: json!("hi"),
            timestamp: 7,
        };
        check(
            &HistoryReply {
                items: vec![chat.clone()],
            },
            &json!({"items":[{"type":"chat","id":"01","room":"lobby",
                              "from":{"userId":"alice","name":"Alice"},"message":"hi","timestamp":7}]}),
            r#"{"items":[{"type":"chat","id":"01","room":"lobby","from":{"userId":"alice","name":"Alice"},"message":"hi","timestamp":7}]}"#,
            r#"{"items":[{"from":{"name":"Alice","userId":"alice"},"id":"01","message":"hi","room":"lobby","timestamp":7,"type":"chat"}]}"#,
        );
        check(
            &HistoryReply { items: Vec::new() },
            &json!({"items":[]}),
            r#"{"items":[]}"#,
            r#"{"items":[]}"#,
        );
    }

    #[test]
    fn members_pages_carry_users_the_count_and_the_next_cursor() {
        let users = vec![
            User::new(user("alice"), Some("Alice".into()), Vec::new(), Map::new()),
            User::new(user("bob"), None, Vec::new(), Map::new()),
        ];
        check(
            &MembersReply {
                items: users,
                count: 5,
                next: Some(user("bob")),
            },
            &json!({"items":[{"userId":"alice","name":"Alice"},{"userId":"bob"}],
                    "count":5,"next":"bob"}),
            r#"{"items":[{"userId":"alice","name":"Alice"},{"userId":"bob"}],"count":5,"next":"bob"}"#,
            r#"{"count":5,"items":[{"name":"Alice","userId":"alice"},{"userId":"bob"}],"next":"bob"}"#,
        );
        // The last page has no `next`.
        check(
            &MembersReply {
                items: Vec::new(),
                count: 0,
                next: None,
            },
            &json!({"items":[],"count":0}),
            r#"{"items":[],"count":0}"#,
            r#"{"count":0,"items":[]}"#,
        );
    }

    #[test]
    fn private_history_items_are_private_messages() {
        let private = |id_: &str, from: &str, to: &str| ServerMessage::Private {
            id: id(id_),
            from: User::new(user(from), None, Vec::new(), Map::new()),
            to: user(to),
            message: json!({"text":"psst"}),
            timestamp: 9,
        };
        // Both directions may hold the same id: each is numbered by its recipient.
        check(
            &PrivateHistoryReply {
                items: vec![private("05", "bob", "alice"), private("05", "alice", "bob")],
            },
            &json!({"items":[
                {"type":"private","id":"05","from":{"userId":"bob"},"to":"alice",
                 "message":{"text":"psst"},"timestamp":9},
                {"type":"private","id":"05","from":{"userId":"alice"},"to":"bob",
                 "message":{"text":"psst"},"timestamp":9}]}),
            concat!(
                r#"{"items":[{"type":"private","id":"05","from":{"userId":"bob"},"to":"alice","message":{"text":"psst"},"timestamp":9},"#,
                r#"{"type":"private","id":"05","from":{"userId":"alice"},"to":"bob","message":{"text":"psst"},"timestamp":9}]}"#
            ),
            concat!(
                r#"{"items":[{"from":{"userId":"bob"},"id":"05","message":{"text":"psst"},"timestamp":9,"to":"alice","type":"private"},"#,
                r#"{"from":{"userId":"alice"},"id":"05","message":{"text":"psst"},"timestamp":9,"to":"bob","type":"private"}]}"#
            ),
        );
        check(
            &PrivateHistoryReply { items: Vec::new() },
            &json!({"items":[]}),
            r#"{"items":[]}"#,
            r#"{"items":[]}"#,
        );
    }

    #[test]
    fn private_ack_and_mark_read() {
        check(
            &PrivateReply {
                id: id("02"),
                target_user_id: user("bob"),
                delivered: false,
                timestamp: 8,
            },
            &json!({"id":"02","targetUserId":"bob","delivered":false,"timestamp":8}),
            r#"{"id":"02","targetUserId":"bob","delivered":false,"timestamp":8}"#,
            r#"{"delivered":false,"id":"02","targetUserId":"bob","timestamp":8}"#,
        );
        check(
            &AckReply {
                message_id: "m1".into(),
                awaited: true,
            },
            &json!({"messageId":"m1","awaited":true}),
            r#"{"messageId":"m1","awaited":true}"#,
            r#"{"awaited":true,"messageId":"m1"}"#,
        );
        check(
            &MarkReadReply {
                notification_id: id("n1"),
            },
            &json!({"notificationId":"n1"}),
            r#"{"notificationId":"n1"}"#,
            r#"{"notificationId":"n1"}"#,
        );
    }

    #[test]
    fn subscribe_and_unsubscribe() {
        check(
            &SubscribeReply {
                topic: "stocks".into(),
                keys: vec!["AAPL".into(), "MSFT".into()],
            },
            &json!({"topic":"stocks","keys":["AAPL","MSFT"]}),
            r#"{"topic":"stocks","keys":["AAPL","MSFT"]}"#,
            r#"{"keys":["AAPL","MSFT"],"topic":"stocks"}"#,
        );
        check(
            &UnsubscribeReply {
                topic: "stocks".into(),
                removed: false,
            },
            &json!({"topic":"stocks","removed":false}),
            r#"{"topic":"stocks","removed":false}"#,
            r#"{"removed":false,"topic":"stocks"}"#,
        );
    }

    #[test]
    fn auth_and_refresh() {
        let (client_id, user_id) = (ClientId::new("c1").unwrap(), user("alice"));
        check(
            &AuthReply {
                client_id: client_id.clone(),
                user_id: user_id.clone(),
            },
            &json!({"clientId":"c1","userId":"alice"}),
            r#"{"clientId":"c1","userId":"alice"}"#,
            r#"{"clientId":"c1","userId":"alice"}"#,
        );
        check(
            &RefreshReply {
                client_id: client_id.clone(),
                user_id: user_id.clone(),
                expires_at: Some(2000),
            },
            &json!({"clientId":"c1","userId":"alice","expiresAt":2000}),
            r#"{"clientId":"c1","userId":"alice","expiresAt":2000}"#,
            r#"{"clientId":"c1","expiresAt":2000,"userId":"alice"}"#,
        );
        // A token without `exp`: the refresh says so with `null`, it does not drop the key.
        check(
            &RefreshReply {
                client_id,
                user_id,
                expires_at: None,
            },
            &json!({"clientId":"c1","userId":"alice","expiresAt":null}),
            r#"{"clientId":"c1","userId":"alice","expiresAt":null}"#,
            r#"{"clientId":"c1","expiresAt":null,"userId":"alice"}"#,
        );
    }

    #[test]
    fn a_body_is_a_replys_data() {
        let reply = ServerMessage::reply(RequestId::from(4), LeaveReply { room: room() });
        assert_eq!(
            reply.to_json(),
            r#"{"type":"reply","id":4,"ok":true,"data":{"room":"lobby"}}"#
        );
    }
}
