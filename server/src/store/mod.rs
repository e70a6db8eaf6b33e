//! The [`Store`]: what a user expects to survive a restart. The hub talks to this trait
//! only; [`SqliteStore`] (embedded, the default) implements it, and the cluster's
//! PostgreSQL store will too. Every implementation must pass the same suite
//! (`tests/tests/store.rs`). The trait speaks in protocol types only: no SQL dialect
//! leaks through it, and "take the pending ones" is one atomic call so that two nodes
//! can never both deliver the same stored message.

mod sqlite;

use std::sync::Arc;

use futures_util::future::BoxFuture;
use roomcast_protocol::{MessageId, Priority, RoomName, Timestamp, User, UserId};
use serde_json::Value;

pub use self::sqlite::SqliteStore;
use crate::ServerError;
use crate::model::RoomOptions;

/// A store call's future.
pub type StoreFuture<'a, T> = BoxFuture<'a, Result<T, ServerError>>;

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

/// One stored private message.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPrivate {
    /// Its id, sortable per recipient.
    pub id: MessageId,
    /// The recipient.
    pub to: UserId,
    /// The sender's public user object.
    pub from: User,
    /// The content.
    pub message: Value,
    /// When it was accepted (ms).
    pub timestamp: Timestamp,
}

/// One stored notification for a user.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredNotification {
    /// Its id, sortable per user.
    pub id: MessageId,
    /// The user it is for.
    pub user_id: UserId,
    /// Title.
    pub title: String,
    /// Body.
    pub content: String,
    /// Priority.
    pub priority: Priority,
    /// Whether it was marked read.
    pub read: bool,
    /// When it was created (ms).
    pub timestamp: Timestamp,
}

/// One logged notification to everyone.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredGlobal {
    /// Its id.
    pub id: MessageId,
    /// Title.
    pub title: String,
    /// Body.
    pub content: String,
    /// When it was sent (ms).
    pub timestamp: Timestamp,
}

/// Durable state behind the hub. Every method fails with [`ServerError::Store`] when the
/// underlying database does.
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Stores a chat message; it is durable when the future resolves.
    fn append_chat<'a>(&'a self, chat: &'a StoredChat) -> StoreFuture<'a, ()>;

    /// The newest `limit` messages of `room` strictly older than `before` (if given),
    /// oldest first.
    fn chat_history<'a>(
        &'a self,
        room: &'a RoomName,
        limit: u32,
        before: Option<&'a MessageId>,
    ) -> StoreFuture<'a, Vec<StoredChat>>;

    /// The newest `limit` messages of `room` strictly newer than `since`, oldest first.
    fn chat_since<'a>(
        &'a self,
        room: &'a RoomName,
        since: &'a MessageId,
        limit: u32,
    ) -> StoreFuture<'a, Vec<StoredChat>>;

    /// Stores a private message, `delivered` or still pending for its recipient.
    fn append_private<'a>(
        &'a self,
        message: &'a StoredPrivate,
        delivered: bool,
    ) -> StoreFuture<'a, ()>;

    /// Marks one stored private message delivered.
    fn mark_private_delivered<'a>(
        &'a self,
        to: &'a UserId,
        id: &'a MessageId,
    ) -> StoreFuture<'a, ()>;

    /// Atomically takes every pending private message of `to` (marking them delivered),
    /// oldest first: a second call returns none of them again.
    fn take_pending_private<'a>(&'a self, to: &'a UserId) -> StoreFuture<'a, Vec<StoredPrivate>>;

    /// Stores a notification, `delivered` or still pending.
    fn append_notification<'a>(
        &'a self,
        notification: &'a StoredNotification,
        delivered: bool,
    ) -> StoreFuture<'a, ()>;

    /// Marks one notification delivered.
    fn mark_notification_delivered<'a>(
        &'a self,
        user: &'a UserId,
        id: &'a MessageId,
    ) -> StoreFuture<'a, ()>;

    /// Atomically takes the pending unread notifications of `user` (marking them
    /// delivered), oldest first.
    fn take_pending_notifications<'a>(
        &'a self,
        user: &'a UserId,
    ) -> StoreFuture<'a, Vec<StoredNotification>>;

    /// Marks a notification of `user` read; `false` when `user` has no such notification.
    fn mark_read<'a>(&'a self, user: &'a UserId, id: &'a MessageId) -> StoreFuture<'a, bool>;

    /// The newest `limit` notifications of `user` (only unread ones if asked), newest
    /// first.
    fn notifications<'a>(
        &'a self,
        user: &'a UserId,
        unread_only: bool,
        limit: u32,
    ) -> StoreFuture<'a, Vec<StoredNotification>>;

    /// Logs a notification to everyone.
    fn append_global<'a>(&'a self, notification: &'a StoredGlobal) -> StoreFuture<'a, ()>;

    /// The newest `limit` notifications to everyone, newest first.
    fn global_notifications(&self, limit: u32) -> StoreFuture<'_, Vec<StoredGlobal>>;

    /// Sets the keys `user` receives on `topic` (replacing earlier ones).
    fn set_subscription<'a>(
        &'a self,
        user: &'a UserId,
        topic: &'a str,
        keys: &'a [String],
    ) -> StoreFuture<'a, ()>;

    /// Removes a subscription; `false` when there was none.
    fn remove_subscription<'a>(&'a self, user: &'a UserId, topic: &'a str)
    -> StoreFuture<'a, bool>;

    /// Every subscription of `user`, by topic.
    fn subscriptions<'a>(&'a self, user: &'a UserId)
    -> StoreFuture<'a, Vec<(String, Vec<String>)>>;

    /// Saves (or updates) a persistent room.
    fn save_room<'a>(&'a self, name: &'a RoomName, options: &'a RoomOptions)
    -> StoreFuture<'a, ()>;

    /// Forgets a persistent room; `false` when it was not saved.
    fn delete_room<'a>(&'a self, name: &'a RoomName) -> StoreFuture<'a, bool>;

    /// Every persistent room, by name.
    fn rooms(&self) -> StoreFuture<'_, Vec<(RoomName, RoomOptions)>>;
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
