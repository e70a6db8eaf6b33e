//! Client → server messages (CONTRACT §4).
//!
//! A frame is decoded once, at the edge, into a [`ClientFrame`]: the optional request `id`
//! plus a typed [`ClientMessage`]. Types the contract does not define become
//! [`ClientMessage::Custom`] for the application's handler.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{MessageId, ProtocolError, RequestId, RoomName, UserId};

/// One message from a client, tagged by `"type"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum ClientMessage {
    /// Authenticate, or refresh the token of an authenticated connection.
    Auth {
        /// The JWT.
        token: String,
    },
    /// Answer to the server's heartbeat `ping`.
    Pong,
    /// Asks the server for a `pong`.
    Ping,
    /// Join a room, optionally replaying what was missed since a message id.
    Join {
        /// The room.
        room: RoomName,
        /// Replay every `chat` stored after this id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<MessageId>,
    },
    /// Leave a room.
    Leave {
        /// The room.
        room: RoomName,
    },
    /// Say something in a room the connection is a member of.
    Chat {
        /// The room.
        room: RoomName,
        /// Any JSON value; members receive it as `chat.message`.
        content: Value,
    },
    /// A private message to every connection of a user.
    Private {
        /// The recipient.
        target_user_id: UserId,
        /// Any JSON value; the target receives it as `private.message`.
        content: Value,
    },
    /// Stored chat history of a room.
    History {
        /// The room.
        room: RoomName,
        /// How many messages (default 50, at most 500).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
        /// Only messages strictly older than this id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<MessageId>,
    },
    /// Stored private messages between the caller and another user, both directions.
    PrivateHistory {
        /// The other side of the conversation.
        user_id: UserId,
        /// How many messages (default 50, at most 500).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
        /// With `before_to`: only messages strictly older, in the conversation's order,
        /// than the message with this id and recipient. An id alone names no message of
        /// a conversation: each direction takes its ids from its recipient's sequence, so
        /// both directions can hold the same id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<MessageId>,
        /// The recipient (`to`) of the message `before` names; given exactly when
        /// `before` is (the server checks that, and that it is one of the two sides).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before_to: Option<UserId>,
    },
    /// One page of a room's users, all nodes, in the order of their ids (CONTRACT §4).
    Members {
        /// The room (the caller must be a member).
        room: RoomName,
        /// Only users whose id sorts after this one: the previous page's `next`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<UserId>,
        /// How many users (default 100, at most 1000).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// Confirms a server message flagged `_ack`.
    Ack {
        /// The `_messageId` being confirmed.
        message_id: String,
    },
    /// Marks a notification read.
    MarkRead {
        /// The notification.
        notification_id: MessageId,
    },
    /// Sets the user's filter keys for a topic.
    Subscribe {
        /// The topic.
        topic: String,
        /// The item keys to receive.
        keys: Vec<String>,
    },
    /// Removes the user's filter keys for a topic.
    Unsubscribe {
        /// The topic.
        topic: String,
    },
    /// Any other type, for the application's handler. Serde skips it: [`ClientFrame`]
    /// decodes and encodes it, so a known type with a bad field is an error rather than
    /// falling through to the application.
    #[serde(skip)]
    Custom(CustomMessage),
}

/// A message whose `type` the contract does not define.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomMessage {
    /// Its `type`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Every other field, as sent.
    #[serde(flatten)]
    pub payload: Map<String, Value>,
}

impl ClientMessage {
    /// The types the contract defines; anything else is [`ClientMessage::Custom`].
    pub const KNOWN_TYPES: [&'static str; 14] = [
        "auth",
        "pong",
        "ping",
        "join",
        "leave",
        "chat",
        "private",
        "history",
        "private_history",
        "members",
        "ack",
        "mark_read",
        "subscribe",
        "unsubscribe",
    ];

    /// The message's `type`.
    pub fn kind(&self) -> &str {
        match self {
            Self::Auth { .. } => "auth",
            Self::Pong => "pong",
            Self::Ping => "ping",
            Self::Join { .. } => "join",
            Self::Leave { .. } => "leave",
            Self::Chat { .. } => "chat",
            Self::Private { .. } => "private",
            Self::History { .. } => "history",
            Self::PrivateHistory { .. } => "private_history",
            Self::Members { .. } => "members",
            Self::Ack { .. } => "ack",
            Self::MarkRead { .. } => "mark_read",
            Self::Subscribe { .. } => "subscribe",
            Self::Unsubscribe { .. } => "unsubscribe",
            Self::Custom(custom) => &custom.kind,
        }
    }
}

impl ClientMessage {
    /// The message as a JSON object, custom types included.
    pub fn to_value(&self) -> Value {
        let value = match self {
            Self::Custom(custom) => serde_json::to_value(custom),
            known => serde_json::to_value(known),
        };
        // Every map key here is a string, so serializing cannot fail.
        value.unwrap_or(Value::Null)
    }
}

/// A decoded frame: the request id, if any, and the message.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientFrame {
    /// The `id` to echo on the reply; `None` means no reply is wanted.
    pub id: Option<RequestId>,
    /// The message.
    pub message: ClientMessage,
}

/// A frame that could not be decoded, with the request id if one could be read, so the
/// `error` still answers the right request.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct FrameError {
    /// The frame's `id`, when it was readable.
    pub id: Option<RequestId>,
    /// What was wrong.
    pub error: ProtocolError,
}

impl ClientFrame {
    /// Decodes one text frame.
    ///
    /// # Errors
    /// A [`FrameError`] when the text is not a JSON object, has no string `type`, has an
    /// `id` that is neither string nor number, or is a known type with missing or
    /// mistyped fields. Unknown types are not an error: they decode as
    /// [`ClientMessage::Custom`].
    pub fn decode(text: &str) -> Result<Self, FrameError> {
        let value: Value = serde_json::from_str(text).map_err(|e| FrameError {
            id: None,
            error: ProtocolError::InvalidJson(e.to_string()),
        })?;
        let Value::Object(mut map) = value else {
            return Err(FrameError {
                id: None,
                error: ProtocolError::NotAnObject,
            });
        };
        let id = match map.remove("id") {
            None | Some(Value::Null) => None,
            Some(raw) => {
                Some(RequestId::from_value(raw).map_err(|error| FrameError { id: None, error })?)
            }
        };
        let fail = |error| FrameError {
            id: id.clone(),
            error,
        };
        let kind = match map.get("type") {
            Some(Value::String(kind)) => kind.clone(),
            Some(_) => return Err(fail(ProtocolError::TypeNotString)),
            None => return Err(fail(ProtocolError::MissingType)),
        };
        let message = if Self::is_known(&kind) {
            serde_json::from_value(Value::Object(map)).map_err(|e| {
                fail(ProtocolError::InvalidMessage {
                    kind,
                    reason: e.to_string(),
                })
            })?
        } else {
            map.remove("type");
            ClientMessage::Custom(CustomMessage { kind, payload: map })
        };
        Ok(Self { id, message })
    }

    /// Encodes the frame as the JSON text a client sends.
    pub fn encode(&self) -> String {
        let mut value = self.message.to_value();
        if let (Some(id), Value::Object(map)) = (&self.id, &mut value) {
            map.insert(
                "id".to_owned(),
                serde_json::to_value(id).unwrap_or(Value::Null),
            );
        }
        value.to_string()
    }

    pub(crate) fn is_known(kind: &str) -> bool {
        ClientMessage::KNOWN_TYPES.contains(&kind)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn room(name: &str) -> RoomName {
        RoomName::new(name).unwrap()
    }

    /// Every variant with its exact JSON: encoding gives it, decoding gives the variant back.
    fn cases() -> Vec<(ClientMessage, Value)> {
        vec![
            (
                ClientMessage::Auth { token: "t".into() },
                json!({"type":"auth","token":"t"}),
            ),
            (ClientMessage::Pong, json!({"type":"pong"})),
            (ClientMessage::Ping, json!({"type":"ping"})),
            (
                ClientMessage::Join {
                    room: room("lobby"),
                    since: None,
                },
                json!({"type":"join","room":"lobby"}),
            ),
            (
                ClientMessage::Join {
                    room: room("lobby"),
                    since: Some(MessageId::new("00ab").unwrap()),
                },
                json!({"type":"join","room":"lobby","since":"00ab"}),
            ),
            (
                ClientMessage::Leave {
                    room: room("lobby"),
                },
                json!({"type":"leave","room":"lobby"}),
            ),
            (
                ClientMessage::Chat {
                    room: room("lobby"),
                    content: json!("hi"),
                },
                json!({"type":"chat","room":"lobby","content":"hi"}),
            ),
            (
                ClientMessage::Private {
                    target_user_id: UserId::new("bob").unwrap(),
                    content: json!({"text":"psst"}),
                },
                json!({"type":"private","targetUserId":"bob","content":{"text":"psst"}}),
            ),
            (
                ClientMessage::History {
                    room: room("lobby"),
                    limit: Some(10),
                    before: Some(MessageId::new("00ff").unwrap()),
                },
                json!({"type":"history","room":"lobby","limit":10,"before":"00ff"}),
            ),
            (
                ClientMessage::History {
                    room: room("lobby"),
                    limit: None,
                    before: None,
                },
                json!({"type":"history","room":"lobby"}),
            ),
            (
                ClientMessage::PrivateHistory {
                    user_id: UserId::new("bob").unwrap(),
                    limit: Some(20),
                    before: Some(MessageId::new("0000000000000005").unwrap()),
                    before_to: Some(UserId::new("alice").unwrap()),
                },
                json!({"type":"private_history","userId":"bob","limit":20,
                       "before":"0000000000000005","beforeTo":"alice"}),
            ),
            (
                ClientMessage::PrivateHistory {
                    user_id: UserId::new("bob").unwrap(),
                    limit: None,
                    before: None,
                    before_to: None,
                },
                json!({"type":"private_history","userId":"bob"}),
            ),
            (
                ClientMessage::Members {
                    room: room("lobby"),
                    after: Some(UserId::new("bob").unwrap()),
                    limit: Some(500),
                },
                json!({"type":"members","room":"lobby","after":"bob","limit":500}),
            ),
            (
                ClientMessage::Members {
                    room: room("lobby"),
                    after: None,
                    limit: None,
                },
                json!({"type":"members","room":"lobby"}),
            ),
            (
                ClientMessage::Ack {
                    message_id: "m1".into(),
                },
                json!({"type":"ack","messageId":"m1"}),
            ),
            (
                ClientMessage::MarkRead {
                    notification_id: MessageId::new("n1").unwrap(),
                },
                json!({"type":"mark_read","notificationId":"n1"}),
            ),
            (
                ClientMessage::Subscribe {
                    topic: "stocks".into(),
                    keys: vec!["AAPL".into()],
                },
                json!({"type":"subscribe","topic":"stocks","keys":["AAPL"]}),
            ),
            (
                ClientMessage::Unsubscribe {
                    topic: "stocks".into(),
                },
                json!({"type":"unsubscribe","topic":"stocks"}),
            ),
            (
                ClientMessage::Custom(CustomMessage {
                    kind: "typing".into(),
                    payload: json!({"room":"lobby"}).as_object().unwrap().clone(),
                }),
                json!({"type":"typing","room":"lobby"}),
            ),
        ]
    }

    #[test]
    fn every_variant_has_its_exact_json_both_ways() {
        for (message, expected) in cases() {
            assert_eq!(message.to_value(), expected, "encoding {message:?}");
            let frame = ClientFrame::decode(&expected.to_string()).unwrap();
            assert_eq!(frame.message, message, "decoding {expected}");
            assert_eq!(frame.id, None);
        }
    }

    #[test]
    fn known_types_list_matches_the_variants() {
        for (message, _) in cases() {
            if !matches!(message, ClientMessage::Custom(_)) {
                assert!(ClientMessage::KNOWN_TYPES.contains(&message.kind()));
            }
        }
    }

    #[test]
    fn request_ids_are_split_off_and_kept() {
        let frame = ClientFrame::decode(r#"{"type":"ping","id":42}"#).unwrap();
        assert_eq!(frame.id, Some(RequestId::from(42)));
        assert_eq!(frame.message, ClientMessage::Ping);
        let frame = ClientFrame::decode(r#"{"type":"join","room":"a","id":"r1"}"#).unwrap();
        assert_eq!(frame.id, Some(RequestId::from("r1")));
        let encoded: Value = serde_json::from_str(&frame.encode()).unwrap();
        assert_eq!(encoded, json!({"type":"join","room":"a","id":"r1"}));
    }

    #[test]
    fn bad_frames_say_what_is_wrong_and_keep_the_id() {
        let err = ClientFrame::decode("{nope").unwrap_err();
        assert!(matches!(err.error, ProtocolError::InvalidJson(_)));
        let err = ClientFrame::decode("[1,2]").unwrap_err();
        assert!(matches!(err.error, ProtocolError::NotAnObject));
        let err = ClientFrame::decode(r#"{"id":3}"#).unwrap_err();
        assert!(matches!(err.error, ProtocolError::MissingType));
        assert_eq!(err.id, Some(RequestId::from(3)));
        let err = ClientFrame::decode(r#"{"type":5}"#).unwrap_err();
        assert!(matches!(err.error, ProtocolError::TypeNotString));
        let err = ClientFrame::decode(r#"{"type":"join","id":"x"}"#).unwrap_err();
        assert_eq!(err.id, Some(RequestId::from("x")));
        assert!(err.to_string().contains("missing field `room`"), "{err}");
        let err = ClientFrame::decode(r#"{"type":"join","room":""}"#).unwrap_err();
        assert!(err.to_string().contains("room name"), "{err}");
        let err = ClientFrame::decode(r#"{"type":"private_history","id":1}"#).unwrap_err();
        assert!(err.to_string().contains("missing field `userId`"), "{err}");
        for (frame, says) in [
            (r#"{"type":"private_history","userId":""}"#, "user id"),
            (
                r#"{"type":"private_history","userId":"b","before":"a/b"}"#,
                "message id",
            ),
            (
                r#"{"type":"private_history","userId":"b","beforeTo":""}"#,
                "user id",
            ),
            (
                r#"{"type":"private_history","userId":"b","limit":-1}"#,
                "expected u32",
            ),
            (r#"{"type":"members"}"#, "missing field `room`"),
            (r#"{"type":"members","room":"a","after":""}"#, "user id"),
            (
                r#"{"type":"members","room":"a","limit":"9"}"#,
                "expected u32",
            ),
        ] {
            let err = ClientFrame::decode(frame).unwrap_err();
            assert!(err.to_string().contains(says), "{frame}: {err}");
        }
        let err = ClientFrame::decode(r#"{"type":"ping","id":[1]}"#).unwrap_err();
        assert!(matches!(err.error, ProtocolError::BadRequestId));
    }
}
