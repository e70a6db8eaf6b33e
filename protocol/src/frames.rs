//! Frames spliced from JSON that is already serialized (CONTRACT §5): `batch_messages`,
//! whose messages were serialized when they were published, and topic messages, whose
//! items are the published JSON selected per subscriber. Building them by splicing keeps
//! a publish from parsing and re-serializing the same items for every recipient.
//!
//! Both builders trust their pre-serialized parts to be one JSON value each (the server
//! has them from serde_json); everything else they write is escaped here.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{RoomName, Timestamp};

/// What a subscriber of a filtered topic receives: one message of the published `type`
/// with the items whose `key` it subscribed to, in publish order. Built by [`topic_frame`];
/// this type reads it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicMessage {
    /// The published `type`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The topic.
    pub topic: String,
    /// The matching items, as published; never empty.
    pub data: Vec<Value>,
    /// When it was published.
    pub timestamp: Timestamp,
}

/// A `batch_messages` frame of `room` holding `messages` (each one serialized
/// application message) in their order:
/// `{"type":"batch_messages","room","messages":[...],"count","timestamp"}`, the field
/// order of [`ServerMessage::BatchMessages`](crate::ServerMessage::BatchMessages).
pub fn batch_messages_frame<M: AsRef<str>>(
    room: &RoomName,
    messages: &[M],
    timestamp: Timestamp,
) -> String {
    let body: usize = messages.iter().map(|m| m.as_ref().len() + 1).sum();
    let mut text = String::with_capacity(body + room.as_str().len() + 80);
    text.push_str(r#"{"type":"batch_messages","room":"#);
    push_string(&mut text, room.as_str());
    text.push_str(r#","messages":"#);
    push_array(&mut text, messages.iter().map(AsRef::as_ref));
    // Writing into a `String` cannot fail.
    let _ = write!(
        text,
        r#","count":{},"timestamp":{timestamp}}}"#,
        messages.len()
    );
    text
}

/// A topic message of type `kind` on `topic` holding `items` (each one published item's
/// JSON) in their order: `{"type":kind,"topic","data":[...],"timestamp"}`.
pub fn topic_frame<'a>(
    kind: &str,
    topic: &str,
    items: impl IntoIterator<Item = &'a str>,
    timestamp: Timestamp,
) -> String {
    let mut text = String::with_capacity(kind.len() + topic.len() + 64);
    text.push_str(r#"{"type":"#);
    push_string(&mut text, kind);
    text.push_str(r#","topic":"#);
    push_string(&mut text, topic);
    text.push_str(r#","data":"#);
    push_array(&mut text, items);
    let _ = write!(text, r#","timestamp":{timestamp}}}"#);
    text
}

/// `value` as a JSON string literal.
fn push_string(out: &mut String, value: &str) {
    // Serializing a `str` cannot fail.
    out.push_str(&serde_json::to_string(value).unwrap_or_default());
}

/// `[a,b,...]` of JSON texts taken as they are.
fn push_array<'a>(out: &mut String, items: impl IntoIterator<Item = &'a str>) {
    out.push('[');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(item);
    }
    out.push(']');
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ServerMessage;

    #[test]
    fn a_batch_is_its_messages_spliced_in_order_and_reads_back_as_batch_messages() {
        let room = RoomName::new("scores").unwrap();
        // Keys sorted, as serde_json writes a `Value`, so the typed message's text matches.
        let messages = [
            r#"{"game":7,"type":"score_update"}"#,
            r#"{"game":9,"type":"score_update"}"#,
        ];
        let text = batch_messages_frame(&room, &messages, 1000);
        assert_eq!(
            text,
            r#"{"type":"batch_messages","room":"scores","messages":[{"game":7,"type":"score_update"},{"game":9,"type":"score_update"}],"count":2,"timestamp":1000}"#
        );
        let message: ServerMessage = serde_json::from_str(&text).unwrap();
        let expected = ServerMessage::BatchMessages {
            room,
            messages: vec![
                json!({"type":"score_update","game":7}),
                json!({"type":"score_update","game":9}),
            ],
            count: 2,
            timestamp: 1000,
        };
        assert_eq!(message, expected);
        // The typed message serializes to the very same text.
        assert_eq!(expected.to_json(), text);
    }

    #[test]
    fn an_empty_batch_is_still_valid() {
        let room = RoomName::new("r").unwrap();
        let text = batch_messages_frame::<String>(&room, &[], 5);
        assert_eq!(
            text,
            r#"{"type":"batch_messages","room":"r","messages":[],"count":0,"timestamp":5}"#
        );
        assert!(matches!(
            serde_json::from_str(&text).unwrap(),
            ServerMessage::BatchMessages { count: 0, .. }
        ));
    }

    #[test]
    fn a_room_name_is_escaped() {
        let room = RoomName::new(r#"say "hi" \ café"#).unwrap();
        let text = batch_messages_frame(&room, &[r#"{"type":"t"}"#], 1);
        assert_eq!(
            text,
            r#"{"type":"batch_messages","room":"say \"hi\" \\ café","messages":[{"type":"t"}],"count":1,"timestamp":1}"#
        );
        let ServerMessage::BatchMessages { room: back, .. } = serde_json::from_str(&text).unwrap()
        else {
            panic!("not a batch: {text}");
        };
        assert_eq!(back, room);
    }

    #[test]
    fn a_topic_message_holds_the_selected_items_as_published() {
        let items = [
            r#"{"key":"AAPL","price":189.5}"#,
            r#"{"key":"MSFT","price":411.2}"#,
        ];
        let text = topic_frame("stock_update", "stocks", items, 1763780004572);
        assert_eq!(
            text,
            r#"{"type":"stock_update","topic":"stocks","data":[{"key":"AAPL","price":189.5},{"key":"MSFT","price":411.2}],"timestamp":1763780004572}"#
        );
        let message: TopicMessage = serde_json::from_str(&text).unwrap();
        let expected = TopicMessage {
            kind: "stock_update".into(),
            topic: "stocks".into(),
            data: vec![
                json!({"key":"AAPL","price":189.5}),
                json!({"key":"MSFT","price":411.2}),
            ],
            timestamp: 1763780004572,
        };
        assert_eq!(message, expected);
        assert_eq!(
            serde_json::to_value(&expected).unwrap(),
            json!({"type":"stock_update","topic":"stocks",
                   "data":[{"key":"AAPL","price":189.5},{"key":"MSFT","price":411.2}],
                   "timestamp":1763780004572_u64})
        );
        assert_eq!(serde_json::to_string(&expected).unwrap(), text);
    }

    #[test]
    fn a_topic_messages_type_and_topic_are_escaped() {
        let text = topic_frame("a\"b", "t\\\n\u{1}", [r#"{"key":"k"}"#], 2);
        assert_eq!(
            text,
            r#"{"type":"a\"b","topic":"t\\\n\u0001","data":[{"key":"k"}],"timestamp":2}"#
        );
        let message: TopicMessage = serde_json::from_str(&text).unwrap();
        assert_eq!(message.kind, "a\"b");
        assert_eq!(message.topic, "t\\\n\u{1}");
    }
}
