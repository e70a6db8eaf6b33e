//! The [`Store`]: what a user expects to survive a restart. The hub talks to this trait
//! only; [`SqliteStore`] (embedded, the default) implements it, and the cluster's
//! PostgreSQL store will too. Every implementation must pass the same suite
//! (`tests/tests/store.rs`).

mod sqlite;

use std::sync::Arc;

use futures_util::future::BoxFuture;
use roomcast_protocol::{MessageId, RoomName, Timestamp, User};
use serde_json::Value;

pub use self::sqlite::SqliteStore;
use crate::ServerError;

/// One stored room chat message.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredChat {
    /// Its id, sortable within the room.
    pub id: MessageId,
    /// The room.
    pub room: RoomName,
    /// The sender's public user object.
    pub from: User,
    /// The content.
    pub message: Value,
    /// When it was accepted (ms).
    pub timestamp: Timestamp,
}

/// Durable state behind the hub.
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Stores a chat message; it is durable when the future resolves.
    ///
    /// # Errors
    /// [`ServerError::Store`] when the write fails.
    fn append_chat<'a>(&'a self, chat: &'a StoredChat) -> BoxFuture<'a, Result<(), ServerError>>;

    /// The newest `limit` messages of `room` strictly older than `before` (if given),
    /// oldest first.
    ///
    /// # Errors
    /// [`ServerError::Store`] when the read fails.
    fn chat_history<'a>(
        &'a self,
        room: &'a RoomName,
        limit: u32,
        before: Option<&'a MessageId>,
    ) -> BoxFuture<'a, Result<Vec<StoredChat>, ServerError>>;
}

/// Opens the store a URL names: `sqlite://path` (created if missing) or
/// `sqlite::memory:`.
///
/// # Errors
/// [`ServerError::Config`] for an unknown scheme, [`ServerError::Store`] when it cannot
/// be opened or migrated.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, ServerError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url).await?))
    } else {
        Err(ServerError::Config(format!(
            "store {url:?}: only sqlite:// (or sqlite::memory:) is supported"
        )))
    }
}
