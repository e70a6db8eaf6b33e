//! What the Redis broker's messages look like on the bus: a one-line JSON header, a
//! newline, then the payload. For a delivery of a whole frame the payload is the frame's
//! bytes exactly as they were serialized once on the publishing node, so no node parses
//! or re-serializes it; everything else (topic items, requests, replies) is JSON.

use roomcast_protocol::{ClientId, ErrorCode, UserId};
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::ServerError;
use crate::broker::{
    AckResults, Delivery, Frame, NodeAnswer, NodeRequest, Reach, Target, TopicItems,
};
use crate::model::AckOutcome;

/// What a message on the bus is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Kind {
    /// A delivery of a whole frame (payload: the frame).
    #[serde(rename = "w")]
    Whole,
    /// A delivery of topic items (payload: [`TopicItems`] as JSON).
    #[serde(rename = "t")]
    Topic,
    /// A node request (payload: [`NodeRequest`] as JSON).
    #[serde(rename = "q")]
    Request,
    /// A reply to a request, a counted delivery or an acknowledged one (payload:
    /// [`Reply`] as JSON).
    #[serde(rename = "p")]
    Reply,
    /// A node heartbeat (no payload).
    #[serde(rename = "h")]
    Heartbeat,
}

/// The header line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Header {
    /// The node that published it.
    pub o: String,
    /// What it is.
    pub k: Kind,
    /// A delivery's target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t: Option<Target>,
    /// A delivery's excepted connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<ClientId>,
    /// The request id a reply is expected for (requests, counted and acknowledged
    /// deliveries) or answers (replies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r: Option<String>,
    /// An acknowledged delivery's `_messageId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a: Option<String>,
    /// An acknowledged delivery's deadline (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d: Option<u64>,
    /// A room chat's number in the room's sequence, or an addressed message's in its
    /// addressee's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s: Option<u64>,
    /// An addressed message's addressee (see [`Delivery::addressee`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub u: Option<UserId>,
}

impl Header {
    pub(super) fn new(node: &str, kind: Kind) -> Self {
        Self {
            o: node.to_owned(),
            k: kind,
            t: None,
            x: None,
            r: None,
            a: None,
            d: None,
            s: None,
            u: None,
        }
    }
}

/// A reply's body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) enum Reply {
    /// What a counted delivery reached on the replying node.
    Reach(Reach),
    /// The outcomes of an acknowledged delivery on the replying node.
    Acks(Vec<(ClientId, WireOutcome)>),
    /// A request's answer.
    Answer(Result<NodeAnswer, WireError>),
    /// The publisher's own subscriber heard its message: nothing to add, but the
    /// publisher counted this subscriber among those that would answer.
    Own,
}

/// [`AckOutcome`] on the bus (its JSON form is the contract's, which is not meant to be
/// read back).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum WireOutcome {
    Success,
    Timeout,
    Disconnected,
}

impl From<AckOutcome> for WireOutcome {
    fn from(outcome: AckOutcome) -> Self {
        match outcome {
            AckOutcome::Success => Self::Success,
            AckOutcome::Timeout => Self::Timeout,
            AckOutcome::Disconnected => Self::Disconnected,
        }
    }
}

impl From<WireOutcome> for AckOutcome {
    fn from(outcome: WireOutcome) -> Self {
        match outcome {
            WireOutcome::Success => Self::Success,
            WireOutcome::Timeout => Self::Timeout,
            WireOutcome::Disconnected => Self::Disconnected,
        }
    }
}

/// Results on the bus.
pub(super) fn wire_acks(results: AckResults) -> Reply {
    Reply::Acks(results.into_iter().map(|(c, o)| (c, o.into())).collect())
}

/// A request error on the bus: its contract code and message. Other failures of the
/// answering node travel as `internal`, with their text for the asker's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct WireError {
    pub code: ErrorCode,
    pub message: String,
}

impl From<&ServerError> for WireError {
    fn from(err: &ServerError) -> Self {
        match err {
            ServerError::Request { code, message } => Self {
                code: *code,
                message: message.clone(),
            },
            other => Self {
                code: ErrorCode::Internal,
                message: other.to_string(),
            },
        }
    }
}

impl From<WireError> for ServerError {
    fn from(err: WireError) -> Self {
        match err.code {
            ErrorCode::Internal => ServerError::Broker(err.message),
            code => ServerError::request(code, err.message),
        }
    }
}

/// A whole message: header line, newline, payload.
pub(super) fn encode(header: &Header, payload: &[u8]) -> Vec<u8> {
    let head = serde_json::to_vec(header).unwrap_or_else(|e| {
        unreachable!("a header of plain fields always serializes: {e}");
    });
    let mut out = Vec::with_capacity(head.len() + 1 + payload.len());
    out.extend_from_slice(&head);
    out.push(b'\n');
    out.extend_from_slice(payload);
    out
}

/// JSON of a payload type (always serializable: plain data).
pub(super) fn json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_else(|e| unreachable!("plain data serializes: {e}"))
}

/// JSON text of plain data.
pub(super) fn json_string<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| unreachable!("plain data serializes: {e}"))
}

/// The header and payload of a message from the bus.
///
/// # Errors
/// A description of what is malformed.
pub(super) fn decode(message: &[u8]) -> Result<(Header, &[u8]), String> {
    let newline = message
        .iter()
        .position(|&b| b == b'\n')
        .ok_or("no header line")?;
    let header = serde_json::from_slice(&message[..newline]).map_err(|e| e.to_string())?;
    Ok((header, &message[newline + 1..]))
}

/// A delivery as it goes on the bus: its header (without request fields) and payload.
pub(super) fn delivery_message(node: &str, delivery: &Delivery) -> (Header, Vec<u8>) {
    let (kind, payload) = match &delivery.frame {
        Frame::Whole(frame) => (Kind::Whole, frame.as_bytes().to_vec()),
        Frame::Topic(items) => (Kind::Topic, json(items)),
    };
    let mut header = Header::new(node, kind);
    header.t = Some(delivery.target.clone());
    header.x.clone_from(&delivery.except);
    header.s = delivery.sequence;
    header.u.clone_from(&delivery.addressee);
    (header, payload)
}

/// The delivery a bus message carries.
///
/// # Errors
/// A description of what is malformed.
pub(super) fn delivery_of(header: &Header, payload: &[u8]) -> Result<Delivery, String> {
    let target = header.t.clone().ok_or("a delivery without a target")?;
    let frame = match header.k {
        Kind::Whole => {
            let text = std::str::from_utf8(payload).map_err(|e| e.to_string())?;
            Frame::Whole(Utf8Bytes::from(text.to_owned()))
        }
        Kind::Topic => {
            Frame::Topic(serde_json::from_slice::<TopicItems>(payload).map_err(|e| e.to_string())?)
        }
        other => return Err(format!("{other:?} is not a delivery")),
    };
    Ok(Delivery {
        target,
        except: header.x.clone(),
        frame,
        sequence: header.s,
        addressee: header.u.clone(),
    })
}

/// The request a bus message carries.
///
/// # Errors
/// A description of what is malformed.
pub(super) fn request_of(payload: &[u8]) -> Result<NodeRequest, String> {
    serde_json::from_slice(payload).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use roomcast_protocol::RoomName;

    #[test]
    fn a_whole_frame_travels_as_its_own_bytes() {
        let frame = r#"{"type":"chat","room":"lobby","content":"hé\nllo"}"#;
        let delivery = Delivery::chat(RoomName::new("lobby").unwrap(), 42, Utf8Bytes::from(frame));
        let (header, payload) = delivery_message("node-a", &delivery);
        let message = encode(&header, &payload);
        assert!(message.ends_with(frame.as_bytes()), "the frame as is");
        let (back, rest) = decode(&message).unwrap();
        assert_eq!(back.o, "node-a");
        assert_eq!(delivery_of(&back, rest).unwrap(), delivery);
    }

    #[test]
    fn an_addressed_message_carries_its_addressee_and_number() {
        let user = UserId::new("bob").unwrap();
        let delivery = Delivery::addressed(
            Target::Users(vec![user.clone(), UserId::new("ann").unwrap()]),
            user,
            7,
            Utf8Bytes::from_static(r#"{"type":"private"}"#),
        );
        let (header, payload) = delivery_message("node-a", &delivery);
        let (back, rest) = decode(&encode(&header, &payload))
            .map(|(h, r)| (h, r.to_vec()))
            .unwrap();
        assert_eq!(delivery_of(&back, &rest).unwrap(), delivery);
    }

    #[test]
    fn malformed_messages_are_refused_not_guessed() {
        assert!(decode(b"no newline").is_err());
        assert!(decode(b"{not json}\npayload").is_err());
        let header = Header::new("n", Kind::Whole);
        assert!(delivery_of(&header, b"x").is_err(), "no target");
    }
}
