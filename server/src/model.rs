//! Plain data and rules that the hub, the store, the broker and the HTTP API all use:
//! room options and who they admit, application-message and content validation, and
//! the shapes that cross the fan-out seam (connection info, room info, join results, ack
//! outcomes, the server's counters) and the broker's health as `/healthz` and `/metrics`
//! report it.
//! Nothing here holds state, so every module may depend on it and it on none of them.

use std::io::Write;

use roomcast_protocol::{ClientId, ErrorCode, RoomName, Timestamp, User};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::ServerError;

/// The role that sees the admin view and gets `stats_update`.
pub const ADMIN_ROLE: &str = "admin";

/// Options set when a room is created through the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomOptions {
    /// Most connections at once; `room_full` past it.
    #[serde(default)]
    pub max_clients: Option<usize>,
    /// Kept when empty.
    #[serde(default)]
    pub persistent: bool,
    /// When not empty, only users with one of these roles may join.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Send `user_join` / `user_leave` (up to the presence limit).
    #[serde(default = "yes")]
    pub presence: bool,
}

fn yes() -> bool {
    true
}

impl Default for RoomOptions {
    fn default() -> Self {
        Self {
            max_clients: None,
            persistent: false,
            roles: Vec::new(),
            presence: true,
        }
    }
}

impl RoomOptions {
    /// Whether `user` may join a room with these options.
    pub fn admits(&self, user: &User) -> bool {
        self.roles.is_empty() || self.roles.iter().any(|r| user.has_role(r))
    }
}

/// What the sender of an acknowledged message learns about one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOutcome {
    /// The client acknowledged the message.
    Success,
    /// No `ack` within the timeout.
    Timeout,
    /// The client went away first (or could not be sent the message).
    Disconnected,
}

impl Serialize for AckOutcome {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        match self {
            Self::Success => map.serialize_entry("success", &true)?,
            Self::Timeout => {
                map.serialize_entry("success", &false)?;
                map.serialize_entry("error", "timeout")?;
            }
            Self::Disconnected => {
                map.serialize_entry("success", &false)?;
                map.serialize_entry("error", "disconnected")?;
            }
        }
        map.end()
    }
}

/// A connection as the HTTP API reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionInfo {
    /// Its id.
    pub client_id: ClientId,
    /// The user, once authenticated.
    pub user: Option<User>,
    /// Whether it has authenticated.
    pub authenticated: bool,
    /// Rooms it is in.
    pub rooms: Vec<RoomName>,
    /// Application data.
    pub data: Value,
    /// Peer address.
    pub remote_addr: String,
    /// When it connected (ms).
    pub connected_at: Timestamp,
    /// When its token expires (ms).
    pub expires_at: Option<Timestamp>,
    /// Whether it asked for `compress=gzip`.
    pub compress: bool,
    /// Frames received.
    pub messages_in: u64,
    /// Frames sent.
    pub messages_out: u64,
}

/// The fields of an application message: a JSON object with a non-empty string `type`.
///
/// # Errors
/// `bad_request` for anything else.
pub fn app_fields(message: &Value) -> Result<&serde_json::Map<String, Value>, ServerError> {
    match message {
        Value::Object(fields)
            if fields
                .get("type")
                .and_then(Value::as_str)
                .is_some_and(|kind| !kind.is_empty()) =>
        {
            Ok(fields)
        }
        _ => Err(ServerError::request(
            ErrorCode::BadRequest,
            "message must be a JSON object with a non-empty string `type`",
        )),
    }
}

/// Validates an application message and serializes it once.
///
/// # Errors
/// As [`app_fields`].
pub fn app_frame(message: &Value) -> Result<Utf8Bytes, ServerError> {
    app_fields(message)?;
    Ok(Utf8Bytes::from(message.to_string()))
}

/// The size `content` counts against a limit: a string's UTF-8 length (its quotes and
/// escapes are the wire's business, not the user's), other JSON's serialized size.
pub fn content_size(content: &Value) -> usize {
    match content {
        Value::String(text) => text.len(),
        other => {
            let mut counter = ByteCounter(0);
            // Counting bytes cannot fail.
            let _ = serde_json::to_writer(&mut counter, other);
            counter.0
        }
    }
}

/// Refuses content over `max` bytes (see [`content_size`]).
///
/// # Errors
/// `too_large`.
pub fn check_content(content: &Value, max: usize) -> Result<(), ServerError> {
    let size = content_size(content);
    if size > max {
        return Err(ServerError::request(
            ErrorCode::TooLarge,
            format!("content is {size} bytes, the limit is {max}"),
        ));
    }
    Ok(())
}

/// Counts the bytes serde writes, without keeping them.
struct ByteCounter(usize);

impl Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_string_counts_its_utf8_bytes_and_other_json_its_serialized_size() {
        assert_eq!(content_size(&json!("a".repeat(4096))), 4096);
        assert_eq!(content_size(&json!("é")), 2);
        assert_eq!(content_size(&json!({ "a": 1 })), 7);
        assert!(check_content(&json!("a".repeat(4096)), 4096).is_ok());
        assert!(check_content(&json!("a".repeat(4097)), 4096).is_err());
    }
}

/// A room as the HTTP API reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomInfo {
    /// The room.
    pub name: RoomName,
    /// Connections in it.
    pub connections: usize,
    /// Distinct users in it.
    pub users: usize,
    /// When it was created (ms).
    pub created_at: Timestamp,
    /// Its options.
    #[serde(flatten)]
    pub options: RoomOptions,
    /// Its members (only on `GET /api/rooms/{name}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clients: Option<Vec<RoomClient>>,
}

/// One member connection in [`RoomInfo`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomClient {
    /// The connection.
    pub client_id: ClientId,
    /// Its user.
    pub user: Option<User>,
}

/// Server counters as JSON: one node's, or the cluster's (`GET /api/stats`). Plain
/// data here because a node's share crosses the broker ([`crate::broker::NodeStats`]);
/// the hub fills it and sums the shares (`hub/admin.rs`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Open connections.
    pub connections: usize,
    /// Authenticated connections.
    pub authenticated: usize,
    /// Distinct connected users.
    pub users: usize,
    /// Rooms.
    pub rooms: usize,
    /// Frames received.
    pub messages_in: u64,
    /// Frames sent.
    pub messages_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Messages dropped on full queues.
    pub queue_drops: u64,
    /// Connections closed with 4029 because their send queue overflowed (absent from a
    /// node that does not count them yet: 0).
    #[serde(default)]
    pub slow_consumer_closes: u64,
    /// Time since start.
    pub uptime_ms: u64,
}

/// A broker's state as `/healthz` and `/metrics` report it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerHealth {
    /// `local` or `redis`.
    pub kind: &'static str,
    /// Whether the bus is reachable (always for `local`).
    pub connected: bool,
    /// Live nodes the broker knows of, this one included (1 for `local`).
    pub nodes: u64,
    /// Messages published to the bus.
    pub published: u64,
    /// Messages received from the bus.
    pub received: u64,
    /// Publishes that failed (the bus was away).
    pub publish_failures: u64,
    /// Subscriber restarts (connection lost, or its own heartbeat unheard).
    pub resubscribes: u64,
    /// Dead nodes whose presence this node reaped.
    pub reaped_nodes: u64,
}
