//! The protocol crate's error type.

/// Everything that can go wrong while validating, decoding or encoding protocol values.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The frame is not valid JSON.
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// The frame is JSON but not an object.
    #[error("a message must be a JSON object")]
    NotAnObject,
    /// The object has no `type` field.
    #[error("missing field `type`")]
    MissingType,
    /// The `type` field is not a string.
    #[error("field `type` must be a string")]
    TypeNotString,
    /// The `id` field is neither a string nor a number.
    #[error("field `id` must be a string or a number")]
    BadRequestId,
    /// A known message type with missing or mistyped fields.
    #[error("invalid `{kind}` message: {reason}")]
    InvalidMessage {
        /// The message's `type`.
        kind: String,
        /// What serde found wrong.
        reason: String,
    },
    /// An id failed validation.
    #[error("invalid {what}: {reason}")]
    InvalidId {
        /// Which kind of id (`room name`, `user id`, ...).
        what: &'static str,
        /// Why it was refused.
        reason: &'static str,
    },
    /// `compressed.data` does not start with `gzip:`.
    #[error("compressed data must start with `gzip:`")]
    UnknownEncoding,
    /// The base64 part does not decode.
    #[error("invalid base64: {0}")]
    Base64(String),
    /// The gzip stream is corrupt.
    #[error("invalid gzip stream: {0}")]
    Gzip(String),
    /// Inflating would exceed the caller's cap.
    #[error("inflated size exceeds the limit of {limit} bytes")]
    InflateLimit {
        /// The cap that was hit, in bytes.
        limit: usize,
    },
}
