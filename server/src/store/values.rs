//! The conversions every store makes the same way, whatever its dialect: timestamps to
//! the integer column, JSON values to their text, priorities to and from their wire word.
//! Each store decodes its own rows (`sqlite/rows.rs`, `postgres/rows.rs`) with these.

use roomcast_protocol::{Priority, Timestamp};

use crate::ServerError;

/// A store failure that is the data's, not the database's (a value that does not decode).
pub(super) fn invalid(e: impl std::fmt::Display) -> ServerError {
    ServerError::Store(e.to_string())
}

/// A timestamp in a signed 64-bit column (saturating: no real one is that far away).
pub(super) fn millis(timestamp: Timestamp) -> i64 {
    i64::try_from(timestamp).unwrap_or(i64::MAX)
}

/// A timestamp read back (a negative one, which no store writes, as 0).
pub(super) fn from_millis(millis: i64) -> Timestamp {
    u64::try_from(millis).unwrap_or(0)
}

/// The JSON text of `value`.
pub(super) fn json<T: serde::Serialize>(value: &T) -> Result<String, ServerError> {
    serde_json::to_string(value).map_err(invalid)
}

/// A value read back from its JSON text.
pub(super) fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ServerError> {
    serde_json::from_str(text).map_err(invalid)
}

/// A priority's wire word (`"normal"`, ...), as its column holds it.
pub(super) fn priority_text(priority: Priority) -> Result<String, ServerError> {
    match serde_json::to_value(priority).map_err(invalid)? {
        serde_json::Value::String(s) => Ok(s),
        other => Err(invalid(format!("priority serialized as {other}"))),
    }
}

/// A priority read back from its wire word.
pub(super) fn priority(text: String) -> Result<Priority, ServerError> {
    serde_json::from_value(serde_json::Value::String(text)).map_err(invalid)
}
