//! [`ClientError`]: every way an SDK call can fail, as the promise rejection the app sees.

use roomcast_protocol::ErrorCode;

/// Why a request was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The server answered with `error`.
    #[error("{code}: {message}")]
    Server {
        /// The contract's error code.
        code: ErrorCode,
        /// The server's explanation.
        message: String,
    },
    /// No answer within the request's timeout.
    #[error("no answer within {0} ms")]
    Timeout(u64),
    /// The connection dropped after the request was sent and before its answer; it may
    /// or may not have been applied.
    #[error("the connection was lost before the answer")]
    Disconnected,
    /// The client was closed (by the app, or for good by the server).
    #[error("the client is closed")]
    Closed,
    /// The offline queue is full; this newest request was not queued.
    #[error("the offline queue is full ({0} requests waiting)")]
    QueueFull(usize),
    /// The app asked for something the protocol cannot express.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl ClientError {
    /// The code a JS `Error` carries: the server's code, or one of the SDK's own.
    pub fn code(&self) -> &str {
        match self {
            Self::Server { code, .. } => code.as_str(),
            Self::Timeout(_) => "timeout",
            Self::Disconnected => "disconnected",
            Self::Closed => "closed",
            Self::QueueFull(_) => "queue_full",
            Self::InvalidRequest(_) => "bad_request",
        }
    }
}
