//! The Roomcast wire protocol (`CONTRACT.md` v1) as plain Rust types.
//!
//! This crate is pure: serde, a deflate codec and nothing that does I/O, so the server and
//! the browser SDK (compiled to `wasm32-unknown-unknown`) share exactly the same types.
//!
//! - [`ClientMessage`] / [`ClientFrame`]: what a client sends (CONTRACT §4).
//! - [`ServerMessage`]: what the server sends (CONTRACT §5).
//! - [`replies`]: the `data` of the `reply` to each built-in request (§3, §4).
//! - [`frames`]: `batch_messages` and topic messages spliced from serialized JSON (§5).
//! - [`ErrorCode`], [`CloseCode`]: the codes of §3 and §8.
//! - [`ClientId`], [`RoomName`], [`UserId`], [`MessageId`]: validated id newtypes.
//! - [`codec`]: the `gzip:` + base64 encoding of `compressed` messages (§6).

pub mod client;
pub mod codec;
pub mod codes;
mod error;
pub mod frames;
pub mod ids;
pub mod replies;
pub mod server;

pub use client::{ClientFrame, ClientMessage, FrameError};
pub use codes::{CloseCode, ErrorCode};
pub use error::ProtocolError;
pub use frames::{TopicMessage, batch_messages_frame, topic_frame};
pub use ids::{ClientId, MessageId, RequestId, RoomName, UserId};
pub use replies::{
    AckReply, AuthReply, ChatReply, HistoryReply, JoinReply, LeaveReply, MarkReadReply,
    MembersReply, PrivateHistoryReply, PrivateReply, RefreshReply, SubscribeReply,
    UnsubscribeReply,
};
pub use server::{Priority, ServerMessage, User};

/// Milliseconds since the Unix epoch, the unit of every `timestamp` field.
pub type Timestamp = u64;
