//! The [`Store`]: what a user expects to survive a restart. The hub talks to this trait
//! only; [`SqliteStore`] (embedded, the default) and [`PostgresStore`] (shared by the
//! nodes of a cluster) implement it, and [`open`] picks one by the URL's scheme. Every
//! implementation must pass the same suite (`tests/tests/store.rs`,
//! `tests/tests/store_ids.rs`, `tests/tests/store_conversations.rs`), which runs on both. The trait speaks in protocol
//! types only: no SQL dialect leaks through it, and "take the pending ones" is one atomic
//! call so that two nodes can never both deliver the same stored message.
//!
//! The store, not the hub, assigns message ids: each append takes the next number of its
//! scope's dense sequence in the same transaction as the insert, so ids follow commit
//! order on every node sharing the database (per-node clocks would not: skew between two
//! nodes sorts one node's messages before the other's that it accepted earlier).

mod postgres;
mod sqlite;
mod values;

use std::sync::Arc;

use futures_util::future::BoxFuture;
use roomcast_protocol::{MessageId, Priority, RoomName, Timestamp, User, UserId};
use serde_json::Value;

pub use self::postgres::PostgresStore;
pub use self::sqlite::SqliteStore;
use crate::ServerError;
use crate::model::RoomOptions;

/// A store call's future.
pub type StoreFuture<'a, T> = BoxFuture<'a, Result<T, ServerError>>;

/// A room chat message to store: everything but the id, which the store assigns.
#[derive(Debug, Clone, PartialEq)]
pub struct NewChat {
    /// The room (the id's scope).
    pub room: RoomName,
    /// The sender's public user object.
    pub from: User,
    /// The content.
    pub message: Value,
    /// When it was accepted (ms).
    pub timestamp: Timestamp,
}

/// A private message to store, without its id.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPrivate {
    /// The recipient (the id's scope).
    pub to: UserId,
    /// The sender's public user object.
    pub from: User,
    /// The content.
    pub message: Value,
    /// When it was accepted (ms).
    pub timestamp: Timestamp,
}

/// A notification to store, without its id.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotification {
    /// The user it is for (the id's scope).
    pub user_id: UserId,
    /// Title.
    pub title: String,
    /// Body.
    pub content: String,
    /// Priority.
    pub priority: Priority,
    /// Whether it is already read.
    pub read: bool,
    /// When it was created (ms).
    pub timestamp: Timestamp,
}

/// A notification to everyone to log, without its id.
#[derive(Debug, Clone, PartialEq)]
pub struct NewGlobal {
    /// Title.
    pub title: String,
    /// Body.
    pub content: String,
    /// When it was sent (ms).
    pub timestamp: Timestamp,
}

/// One stored room chat message.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredChat {
    /// Its id: the room's sequence number.
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
    /// Its id: the recipient's sequence number.
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

/// Names one stored private message: its recipient and its id, a number of the
/// recipient's sequence. The id alone does not: the two directions of a conversation take
/// their ids from two sequences, so both can hold the same one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivateRef {
    /// The recipient (the message's `to`).
    pub to: UserId,
    /// Its id.
    pub id: MessageId,
}

/// One stored notification for a user.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredNotification {
    /// Its id: the user's sequence number.
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
    /// Its id: the number in the sequence of notifications to everyone.
    pub id: MessageId,
    /// Title.
    pub title: String,
    /// Body.
    pub content: String,
    /// When it was sent (ms).
    pub timestamp: Timestamp,
}

impl NewChat {
    /// The stored chat, once the store has given it `id`.
    #[must_use]
    pub fn stored(&self, id: MessageId) -> StoredChat {
        StoredChat {
            id,
            room: self.room.clone(),
            from: self.from.clone(),
            message: self.message.clone(),
            timestamp: self.timestamp,
        }
    }

    /// [`Self::stored`], moving the fields instead of copying them.
    #[must_use]
    pub fn into_stored(self, id: MessageId) -> StoredChat {
        StoredChat {
            id,
            room: self.room,
            from: self.from,
            message: self.message,
            timestamp: self.timestamp,
        }
    }
}

impl NewPrivate {
    /// The stored private message, once the store has given it `id`.
    #[must_use]
    pub fn stored(&self, id: MessageId) -> StoredPrivate {
        StoredPrivate {
            id,
            to: self.to.clone(),
            from: self.from.clone(),
            message: self.message.clone(),
            timestamp: self.timestamp,
        }
    }
}

impl NewNotification {
    /// The stored notification, once the store has given it `id`.
    #[must_use]
    pub fn stored(&self, id: MessageId) -> StoredNotification {
        StoredNotification {
            id,
            user_id: self.user_id.clone(),
            title: self.title.clone(),
            content: self.content.clone(),
            priority: self.priority,
            read: self.read,
            timestamp: self.timestamp,
        }
    }
}

impl NewGlobal {
    /// The logged notification, once the store has given it `id`.
    #[must_use]
    pub fn stored(&self, id: MessageId) -> StoredGlobal {
        StoredGlobal {
            id,
            title: self.title.clone(),
            content: self.content.clone(),
            timestamp: self.timestamp,
        }
    }
}

/// The wire form of sequence number `seq`: 16 lowercase hex digits, so that comparing ids
/// as strings (as `since`, `before` and the SDK do) compares the numbers. Every store
/// formats its ids with this.
#[must_use]
pub fn sequence_id(seq: u64) -> MessageId {
    MessageId::new(format!("{seq:016x}"))
        .unwrap_or_else(|e| unreachable!("16 hex digits are a valid message id: {e}"))
}

/// Durable state behind the hub. Every method fails with [`ServerError::Store`] when the
/// underlying database does.
///
/// # Ids
///
/// The `append_*` methods assign the id and return what was stored. Ids are the numbers
/// 1, 2, 3, ... of a dense sequence per *scope*, formatted by [`sequence_id`]:
///
/// - chats: one sequence per room;
/// - private messages and notifications: one sequence per **recipient**, shared by both
///   kinds, so a user's pending deliveries (both kinds merged) sort by id in acceptance
///   order;
/// - notifications to everyone: one sequence.
///
/// The number is taken in the same transaction as the insert, and the scope's counter
/// stays locked until that transaction commits, so commit order is id order. Hence the
/// property replay and gap repair rely on, for every reader on every node: **if id N of a
/// scope is visible, every lower id of that scope is visible**. A failed append uses up no
/// number. Ids of databases written before ids were assigned here (per-node
/// `(ms << 12) + seq`) are kept; each scope's sequence continues above its newest one.
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Stores a chat message under the next id of its room; it is durable when the future
    /// resolves.
    fn append_chat<'a>(&'a self, chat: &'a NewChat) -> StoreFuture<'a, StoredChat>;

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

    /// The oldest `limit` messages of `room` with `after < id <= through` (no upper bound
    /// when `through` is `None`), oldest first: the gap repair of a node that has
    /// delivered up to `after` and holds `through`'s successor, or reads on from `after`
    /// page by page. (Unlike [`chat_since`](Self::chat_since), which keeps the newest.)
    /// By the id property above, when `through` is an id of the room that is visible,
    /// the answer is every id in the range, or its first `limit`.
    fn chat_range<'a>(
        &'a self,
        room: &'a RoomName,
        after: &'a MessageId,
        through: Option<&'a MessageId>,
        limit: u32,
    ) -> StoreFuture<'a, Vec<StoredChat>>;

    /// The newest id assigned in each of `rooms` that has had a chat, from the rooms'
    /// counters, in one read; rooms with none are absent, each room is there once, and
    /// the pairs come by room name (as bytes). A node's position check compares these
    /// with what it has delivered: anything lower is a gap to repair. A counter is read
    /// as committed, and it commits with its chat, so every id up to a position read
    /// here is visible to a [`chat_range`](Self::chat_range) that follows.
    fn room_positions<'a>(
        &'a self,
        rooms: &'a [RoomName],
    ) -> StoreFuture<'a, Vec<(RoomName, MessageId)>>;

    /// Stores a private message under the next id of its recipient, `delivered` or still
    /// pending for the recipient.
    fn append_private<'a>(
        &'a self,
        message: &'a NewPrivate,
        delivered: bool,
    ) -> StoreFuture<'a, StoredPrivate>;

    /// Marks one stored private message delivered.
    fn mark_private_delivered<'a>(
        &'a self,
        to: &'a UserId,
        id: &'a MessageId,
    ) -> StoreFuture<'a, ()>;

    /// Atomically takes every pending private message of `to` (marking them delivered),
    /// oldest first: a second call returns none of them again.
    fn take_pending_private<'a>(&'a self, to: &'a UserId) -> StoreFuture<'a, Vec<StoredPrivate>>;

    /// The newest `limit` private messages between `a` and `b`, both directions, strictly
    /// before the message `before` names (if given), oldest first; `None` when `before`
    /// names no message between them (another conversation's, or none at all).
    ///
    /// A conversation's order is by timestamp, then recipient (as bytes), then id: a total
    /// order (recipient and id are a message's key) that holds however ids of the two
    /// directions compare, and one a client can compute from the messages it has, so that
    /// it can merge a page with the live ones. Paging back with the oldest message of each
    /// page as the next `before` visits every message once. `a == b` is the conversation
    /// of a user with itself: each message once.
    fn private_history<'a>(
        &'a self,
        a: &'a UserId,
        b: &'a UserId,
        limit: u32,
        before: Option<&'a PrivateRef>,
    ) -> StoreFuture<'a, Option<Vec<StoredPrivate>>>;

    /// Stores a notification under the next id of its user (the sequence private
    /// messages to that user share), `delivered` or still pending.
    fn append_notification<'a>(
        &'a self,
        notification: &'a NewNotification,
        delivered: bool,
    ) -> StoreFuture<'a, StoredNotification>;

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

    /// Logs a notification to everyone under the next id of their one sequence.
    fn append_global<'a>(&'a self, notification: &'a NewGlobal) -> StoreFuture<'a, StoredGlobal>;

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

    /// Checks that the database answers (`/healthz`).
    fn ping(&self) -> StoreFuture<'_, ()>;
}

/// Opens the store a URL names: `sqlite://path` (created if missing), `sqlite::memory:`,
/// or `postgres://user@host:port/database` (`postgresql://` too), whose
/// `?options=-csearch_path=NAME` picks the schema the store lives in (which must exist).
///
/// # Errors
/// [`ServerError::Config`] for an unknown scheme, [`ServerError::Store`] when it cannot
/// be opened or migrated (for PostgreSQL, within a few seconds when the server is
/// unreachable).
pub async fn open(url: &str) -> Result<Arc<dyn Store>, ServerError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::open(url).await?))
    } else {
        // Only the scheme: the rest of a URL may hold a password.
        let scheme = url.split_once(':').map_or(url, |(scheme, _)| scheme);
        Err(ServerError::Config(format!(
            "store URL scheme {scheme:?}: use sqlite://path, sqlite::memory: or \
             postgres://user@host/database"
        )))
    }
}
