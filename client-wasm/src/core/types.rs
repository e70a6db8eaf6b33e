//! The core's vocabulary with the façade, and no state: what the app configures
//! ([`Options`]), the connection state it sees ([`State`]), and what the façade must do
//! ([`Effect`], carrying a server [`Message`] for the app). Kept apart from the state
//! machine so the façade's side of the contract reads in one place.

use super::backoff::Backoff;
use crate::error::ClientError;

/// What the app configures.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Ask for `compressed` messages (`?compress=gzip`).
    pub compress: bool,
    /// Reconnect policy; `None` never reconnects.
    pub reconnect: Option<Backoff>,
    /// The server's heartbeat interval: no frame for twice this long means the connection
    /// is dead, and it is replaced.
    pub heartbeat_interval_ms: u64,
    /// Default request timeout.
    pub request_timeout_ms: u64,
    /// Requests kept while disconnected, sent in order after the next `auth_ok`.
    pub offline_queue_limit: usize,
    /// The app gave a `getToken` callback: after close 4001 a fresh token may fix it, so
    /// the client reconnects (asking for a token first).
    pub refreshable_token: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            compress: true,
            reconnect: Some(Backoff::default()),
            heartbeat_interval_ms: 25_000,
            request_timeout_ms: 10_000,
            offline_queue_limit: 100,
            refreshable_token: false,
        }
    }
}

/// The connection state the app sees (`onStateChange`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Not started.
    Idle,
    /// Opening the socket or authenticating.
    Connecting,
    /// Authenticated: requests go out at once.
    Open,
    /// Waiting `delay_ms` before attempt `attempt` (1-based).
    Reconnecting {
        /// The attempt about to be made.
        attempt: u32,
        /// How long the client waits first.
        delay_ms: u64,
    },
    /// Done: no more reconnects.
    Closed {
        /// The close code, when the server (or the socket) gave one.
        code: Option<u16>,
        /// Why.
        reason: String,
    },
}

/// What the façade must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Open a WebSocket to this URL (dropping any previous one).
    Open(String),
    /// Send a text frame.
    Send(String),
    /// Close the current socket (its later events are no longer reported).
    Close {
        /// The close code (1000 or 4xxx).
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// Hand a server message to the app's handlers for its `type`.
    Emit(Message),
    /// Settle the app's request `id`: its answer as JSON text, or why it failed.
    Settle(u64, Result<String, ClientError>),
    /// The state changed.
    State(State),
    /// Wait this long, get a token (from `getToken` when there is one), then call
    /// [`Core::reconnect`](super::Core::reconnect).
    RetryAfter(u64),
}

/// A server message for the app: its `type`, and the whole message as JSON text (the
/// façade hands it to the browser's `JSON.parse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The message's `type`.
    pub kind: String,
    /// The message, as the server sent it (inflated, unpacked from its batch).
    pub json: String,
}
