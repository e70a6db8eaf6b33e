//! Wall-clock time in the contract's unit.

use std::time::{SystemTime, UNIX_EPOCH};

use roomcast_protocol::Timestamp;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> Timestamp {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
