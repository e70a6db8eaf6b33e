//! The server crate's error type.

use roomcast_protocol::ErrorCode;

/// Everything the server library can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration is invalid or unsafe (e.g. the development secret outside dev mode).
    #[error("configuration: {0}")]
    Config(String),
    /// Reading the configuration file failed.
    #[error("cannot read config file {path}: {source}")]
    ConfigFile {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Binding or accepting on the listener failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// Signing a token failed.
    #[error("token: {0}")]
    Token(#[from] jsonwebtoken::errors::Error),
    /// A request failed with a contract error code (mapped to `error` or an HTTP status).
    #[error("{code}: {message}")]
    Request {
        /// The contract code.
        code: ErrorCode,
        /// A human explanation.
        message: String,
    },
    /// The store failed.
    #[error("store: {0}")]
    Store(String),
    /// The broker could not hand a delivery on.
    #[error("broker: {0}")]
    Broker(String),
}

impl ServerError {
    /// A request error with a contract code.
    pub fn request(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Request {
            code,
            message: message.into(),
        }
    }

    /// The contract code to report: request errors keep theirs, everything else is
    /// `internal`.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Request { code, .. } => *code,
            _ => ErrorCode::Internal,
        }
    }

    /// The message to show a client: request errors explain themselves; internal failures
    /// are not detailed on the wire (they are logged). A store failure says that much, so
    /// a client knows the request may succeed when retried, but never why (which server,
    /// which statement).
    pub fn public_message(&self) -> String {
        match self {
            Self::Request { message, .. } => message.clone(),
            Self::Store(_) => STORE_UNAVAILABLE.to_owned(),
            _ => "internal server error".to_owned(),
        }
    }
}

/// What a client is told when the store failed (the code is `internal`).
const STORE_UNAVAILABLE: &str = "store unavailable, try again";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_failures_say_so_without_the_details() {
        let err = ServerError::Store("store unavailable: cannot reach db.internal:5432".into());
        assert_eq!(err.code(), ErrorCode::Internal);
        assert_eq!(err.public_message(), STORE_UNAVAILABLE);
        let err = ServerError::Broker("redis at 10.0.0.7 gone".into());
        assert_eq!(err.public_message(), "internal server error");
    }
}
