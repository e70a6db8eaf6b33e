//! The cluster settings' resolvers: which broker a URL names (and that a cluster's store
//! is shared), and the checks on a node id, a key prefix and the node TTL. Kept apart
//! from the other resolvers so that the settings' declaration in `super` stays readable.

use std::time::Duration;

use super::{Settings, millis};
use crate::ServerError;

/// Where deliveries fan out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerUrl {
    /// One node, in process.
    Local,
    /// A cluster on the Redis server at this URL.
    Redis(String),
}

/// A Redis broker makes a cluster, and a cluster needs a store every node shares: on a
/// per-node store (SQLite, the default) each node numbers chats on its own, so a repair
/// from the store finds another node's ids or none, and the cluster silently drops or
/// mixes chats. Refused here, before anything opens.
pub(super) fn broker_url(
    s: &Settings,
    value: Option<String>,
    name: &str,
) -> Result<BrokerUrl, ServerError> {
    let value = value.map(|v| v.trim().to_owned());
    match value.as_deref() {
        None | Some("" | "local") => Ok(BrokerUrl::Local),
        Some(url) if url.starts_with("redis://") => {
            let store = s.store.as_deref().map_or("", str::trim);
            if store.starts_with("postgres://") || store.starts_with("postgresql://") {
                return Ok(BrokerUrl::Redis(url.to_owned()));
            }
            // Only the store's kind: its URL may carry a password.
            let kind = match store {
                "" => "the default sqlite://roomcast.db",
                s if s.starts_with("sqlite:") => "SQLite",
                _ => "that one",
            };
            Err(ServerError::Config(format!(
                "a Redis broker ({name} / ROOMCAST_BROKER=redis://…) needs a store every node \
                 shares, not {kind}: set ROOMCAST_STORE=postgres://user@host:port/db"
            )))
        }
        Some(other) => Err(ServerError::Config(format!(
            "{name} {other:?} must be `local` or a redis://host:port/db URL"
        ))),
    }
}

/// A node id names Redis keys and channels, so it keeps to characters that need no quoting.
pub(super) fn node_id(
    _: &Settings,
    value: Option<String>,
    name: &str,
) -> Result<String, ServerError> {
    match value {
        None => Ok(uuid::Uuid::new_v4().simple().to_string()),
        Some(id)
            if !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.') =>
        {
            Ok(id)
        }
        Some(id) => Err(ServerError::Config(format!(
            "{name} {id:?} must be 1 to 64 letters, digits, '-', '_' or '.'"
        ))),
    }
}

pub(super) fn redis_prefix(
    _: &Settings,
    value: Option<String>,
    name: &str,
) -> Result<String, ServerError> {
    match value {
        None => Ok("roomcast".to_owned()),
        Some(p) if !p.is_empty() && !p.contains(char::is_whitespace) => Ok(p),
        Some(p) => Err(ServerError::Config(format!(
            "{name} {p:?} must be non-empty, without spaces"
        ))),
    }
}

/// The TTL must outlast at least two heartbeats, or a live node that is a little late is
/// taken for dead and its members reaped.
pub(super) fn node_ttl(
    s: &Settings,
    value: Option<u64>,
    name: &str,
    default: u64,
) -> Result<Duration, ServerError> {
    let ttl = millis(s, value, name, default)?;
    let heartbeat = Duration::from_millis(s.node_heartbeat_ms.unwrap_or(2_000));
    if ttl < heartbeat * 2 {
        return Err(ServerError::Config(format!(
            "{name} ({} ms) must be at least twice node_heartbeat_ms ({} ms)",
            ttl.as_millis(),
            heartbeat.as_millis()
        )));
    }
    Ok(ttl)
}
