//! The embedded SQLite store (sqlx). The schema is created and migrated at open from the
//! versioned migrations in `server/migrations/sqlite/`; WAL mode keeps readers off the writer.
//!
//! Ids come from the counter rows of `room_seq`, `user_seq` and `global_seq`: an append
//! opens its transaction with `BEGIN IMMEDIATE`, which takes the database's one write lock
//! up front and holds it to commit, bumps its scope's row, inserts, and commits. Writers
//! (of every connection and every process on the file) thus commit one at a time in id
//! order, and a WAL reader's snapshot, being a prefix of the commits, never has a hole.
//! Room chats are written by one task, many per transaction ([`batch`]): their room's
//! counter is bumped once per batch, in the same transaction.

mod batch;
mod conversation;
mod rows;

use std::str::FromStr;

use roomcast_protocol::{MessageId, RoomName, UserId};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};

use self::batch::{ChatWriter, WriteTurn, WriteTurns};
use self::rows::{
    chat_row, get, json, message_id, millis, notification_row, oldest_first, parse, priority_text,
    private_row, store_error, timestamp,
};
use super::{
    NewChat, NewGlobal, NewNotification, NewPrivate, PrivateRef, Store, StoreFuture, StoredChat,
    StoredGlobal, StoredNotification, StoredPrivate, sequence_id,
};
use crate::ServerError;
use crate::model::RoomOptions;

/// The versioned schema.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// A SQLite database file (or an in-memory database for tests).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Room chats go through one writer, many per commit (group commit).
    chats: ChatWriter,
    /// Whose turn it is to take the write lock (shared with the chat writer).
    turns: WriteTurns,
}

impl SqliteStore {
    /// Opens (creating if needed) and migrates the database at `url`.
    ///
    /// # Errors
    /// [`ServerError::Store`] when the URL is invalid or the database cannot be opened or
    /// migrated.
    pub async fn open(url: &str) -> Result<Self, ServerError> {
        let memory = url.contains(":memory:");
        let options = SqliteConnectOptions::from_str(url)
            .map_err(store_error)?
            .create_if_missing(true)
            .journal_mode(if memory {
                SqliteJournalMode::Memory
            } else {
                SqliteJournalMode::Wal
            })
            .synchronous(SqliteSynchronous::Normal);
        // An in-memory database exists per connection: it must be exactly one, and it must
        // never be closed for being idle or old, or the data goes with it.
        let pool = if memory {
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            // A local file's connection does not go stale: no ping before each use (one
            // hop to the connection's thread fewer per query).
            SqlitePoolOptions::new()
                .max_connections(4)
                .test_before_acquire(false)
        };
        let pool = pool.connect_with(options).await.map_err(store_error)?;
        MIGRATOR.run(&pool).await.map_err(store_error)?;
        let turns = WriteTurns::default();
        let chats = ChatWriter::start(pool.clone(), turns.clone());
        Ok(Self { pool, chats, turns })
    }

    /// A transaction that holds the write lock from its start to its end, which is what
    /// makes commit order id order. `IMMEDIATE` rather than a deferred `BEGIN`: in WAL
    /// mode, a deferred transaction that reads before its first write fails at that write
    /// with `SQLITE_BUSY_SNAPSHOT`, without waiting, if another writer committed
    /// meanwhile; this one waits (busy_timeout) for the lock before doing anything.
    ///
    /// The returned turn is held to commit: this process's writers take the lock one
    /// after another, in the order they asked ([`WriteTurns`]), rather than by SQLite's
    /// busy handler, which sleeps and retries and could lose every time to the chat
    /// writer's next batch.
    async fn write(&self) -> Result<(WriteTurn, Transaction<'static, Sqlite>), ServerError> {
        let turn = self.turns.take().await;
        let tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(store_error)?;
        Ok((turn, tx))
    }
}

/// Bumps a user's sequence, which its private messages and notifications share.
const NEXT_USER_SEQ: &str = "INSERT INTO user_seq (user_id, last_seq) VALUES (?, 1) \
     ON CONFLICT (user_id) DO UPDATE SET last_seq = last_seq + 1 RETURNING last_seq";
/// The same for the one sequence of notifications to everyone.
const NEXT_GLOBAL_SEQ: &str = "INSERT INTO global_seq (only, last_seq) VALUES (1, 1) \
     ON CONFLICT (only) DO UPDATE SET last_seq = last_seq + 1 RETURNING last_seq";

/// Takes the next id of a scope inside `tx`: `next` is one of the `NEXT_*_SEQ`
/// statements, `key` the room or user it is for (none for the global one).
async fn next_id(
    tx: &mut Transaction<'static, Sqlite>,
    next: &'static str,
    key: Option<&str>,
) -> Result<MessageId, ServerError> {
    let mut query = sqlx::query_scalar::<_, i64>(next);
    if let Some(key) = key {
        query = query.bind(key);
    }
    let last = query.fetch_one(&mut **tx).await.map_err(store_error)?;
    Ok(sequence_id(u64::try_from(last).map_err(store_error)?))
}

impl Store for SqliteStore {
    fn append_chat<'a>(&'a self, chat: &'a NewChat) -> StoreFuture<'a, StoredChat> {
        Box::pin(self.chats.append(chat))
    }

    fn chat_history<'a>(
        &'a self,
        room: &'a RoomName,
        limit: u32,
        before: Option<&'a MessageId>,
    ) -> StoreFuture<'a, Vec<StoredChat>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT id, sender, message, created_at FROM chat_messages \
                 WHERE room = ? AND (? IS NULL OR id < ?) ORDER BY id DESC LIMIT ?",
            )
            .bind(room.as_str())
            .bind(before.map(MessageId::as_str))
            .bind(before.map(MessageId::as_str))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
            oldest_first(room, &rows)
        })
    }

    fn chat_since<'a>(
        &'a self,
        room: &'a RoomName,
        since: &'a MessageId,
        limit: u32,
    ) -> StoreFuture<'a, Vec<StoredChat>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT id, sender, message, created_at FROM chat_messages \
                 WHERE room = ? AND id > ? ORDER BY id DESC LIMIT ?",
            )
            .bind(room.as_str())
            .bind(since.as_str())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
            oldest_first(room, &rows)
        })
    }

    fn chat_range<'a>(
        &'a self,
        room: &'a RoomName,
        after: &'a MessageId,
        through: Option<&'a MessageId>,
        limit: u32,
    ) -> StoreFuture<'a, Vec<StoredChat>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT id, sender, message, created_at FROM chat_messages \
                 WHERE room = ? AND id > ? AND (? IS NULL OR id <= ?) ORDER BY id LIMIT ?",
            )
            .bind(room.as_str())
            .bind(after.as_str())
            .bind(through.map(MessageId::as_str))
            .bind(through.map(MessageId::as_str))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
            rows.iter().map(|row| chat_row(room, row)).collect()
        })
    }

    fn room_positions<'a>(
        &'a self,
        rooms: &'a [RoomName],
    ) -> StoreFuture<'a, Vec<(RoomName, MessageId)>> {
        Box::pin(async move {
            if rooms.is_empty() {
                return Ok(Vec::new());
            }
            // The names as one JSON array, so the read is one statement whatever their
            // number (SQLite caps the `?`s a statement may have).
            let names = json(&rooms)?;
            let rows = sqlx::query(
                "SELECT room, last_seq FROM room_seq \
                 WHERE room IN (SELECT value FROM json_each(?)) ORDER BY room",
            )
            .bind(names)
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
            rows.iter()
                .map(|row| {
                    let room = RoomName::new(get::<String>(row, "room")?).map_err(store_error)?;
                    let last = u64::try_from(get::<i64>(row, "last_seq")?).map_err(store_error)?;
                    Ok((room, sequence_id(last)))
                })
                .collect()
        })
    }

    fn append_private<'a>(
        &'a self,
        message: &'a NewPrivate,
        delivered: bool,
    ) -> StoreFuture<'a, StoredPrivate> {
        Box::pin(async move {
            let (from, content) = (json(&message.from)?, message.message.to_string());
            let (_turn, mut tx) = self.write().await?;
            let id = next_id(&mut tx, NEXT_USER_SEQ, Some(message.to.as_str())).await?;
            sqlx::query(
                "INSERT INTO private_messages (recipient, id, sender, message, created_at, delivered) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(message.to.as_str())
            .bind(id.as_str())
            .bind(from)
            .bind(content)
            .bind(millis(message.timestamp))
            .bind(delivered)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
            tx.commit().await.map_err(store_error)?;
            Ok(message.stored(id))
        })
    }

    fn mark_private_delivered<'a>(
        &'a self,
        to: &'a UserId,
        id: &'a MessageId,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            // An autocommit write: it takes the write lock in its turn too.
            let _turn = self.turns.take().await;
            sqlx::query("UPDATE private_messages SET delivered = 1 WHERE recipient = ? AND id = ?")
                .bind(to.as_str())
                .bind(id.as_str())
                .execute(&self.pool)
                .await
                .map_err(store_error)?;
            Ok(())
        })
    }

    fn take_pending_private<'a>(&'a self, to: &'a UserId) -> StoreFuture<'a, Vec<StoredPrivate>> {
        Box::pin(async move {
            // An autocommit write: it takes the write lock in its turn too.
            let _turn = self.turns.take().await;
            // One statement: atomic, so two connections can never both take a message.
            let rows = sqlx::query(
                "UPDATE private_messages SET delivered = 1 \
                 WHERE recipient = ? AND delivered = 0 \
                 RETURNING id, sender, message, created_at",
            )
            .bind(to.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
            let mut items = rows
                .iter()
                .map(|row| private_row(to, row))
                .collect::<Result<Vec<_>, _>>()?;
            items.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(items)
        })
    }

    fn private_history<'a>(
        &'a self,
        a: &'a UserId,
        b: &'a UserId,
        limit: u32,
        before: Option<&'a PrivateRef>,
    ) -> StoreFuture<'a, Option<Vec<StoredPrivate>>> {
        Box::pin(self.conversation(a, b, limit, before))
    }

    fn append_notification<'a>(
        &'a self,
        n: &'a NewNotification,
        delivered: bool,
    ) -> StoreFuture<'a, StoredNotification> {
        Box::pin(async move {
            let priority = priority_text(n.priority)?;
            let (_turn, mut tx) = self.write().await?;
            let id = next_id(&mut tx, NEXT_USER_SEQ, Some(n.user_id.as_str())).await?;
            sqlx::query(
                "INSERT INTO notifications \
                 (user_id, id, title, content, priority, created_at, is_read, delivered) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(n.user_id.as_str())
            .bind(id.as_str())
            .bind(&n.title)
            .bind(&n.content)
            .bind(priority)
            .bind(millis(n.timestamp))
            .bind(n.read)
            .bind(delivered)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
            tx.commit().await.map_err(store_error)?;
            Ok(n.stored(id))
        })
    }

    fn mark_notification_delivered<'a>(
        &'a self,
        user: &'a UserId,
        id: &'a MessageId,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            // An autocommit write: it takes the write lock in its turn too.
            let _turn = self.turns.take().await;
            sqlx::query("UPDATE notifications SET delivered = 1 WHERE user_id = ? AND id = ?")
                .bind(user.as_str())
                .bind(id.as_str())
                .execute(&self.pool)
                .await
                .map_err(store_error)?;
            Ok(())
        })
    }

    fn take_pending_notifications<'a>(
        &'a self,
        user: &'a UserId,
    ) -> StoreFuture<'a, Vec<StoredNotification>> {
        Box::pin(async move {
            // An autocommit write: it takes the write lock in its turn too.
            let _turn = self.turns.take().await;
            let rows = sqlx::query(
                "UPDATE notifications SET delivered = 1 \
                 WHERE user_id = ? AND delivered = 0 AND is_read = 0 \
                 RETURNING id, title, content, priority, created_at, is_read",
            )
            .bind(user.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
            let mut items = rows
                .iter()
                .map(|row| notification_row(user, row))
                .collect::<Result<Vec<_>, _>>()?;
            items.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(items)
        })
    }

    fn mark_read<'a>(&'a self, user: &'a UserId, id: &'a MessageId) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            // An autocommit write: it takes the write lock in its turn too.
            let _turn = self.turns.take().await;
            let done =
                sqlx::query("UPDATE notifications SET is_read = 1 WHERE user_id = ? AND id = ?")
                    .bind(user.as_str())
                    .bind(id.as_str())
                    .execute(&self.pool)
                    .await
                    .map_err(store_error)?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn notifications<'a>(
        &'a self,
        user: &'a UserId,
        unread_only: bool,
        limit: u32,
    ) -> StoreFuture<'a, Vec<StoredNotification>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT id, title, content, priority, created_at, is_read FROM notifications \
                 WHERE user_id = ? AND (? = 0 OR is_read = 0) ORDER BY id DESC LIMIT ?",
            )
            .bind(user.as_str())
            .bind(unread_only)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
            rows.iter().map(|row| notification_row(user, row)).collect()
        })
    }

    fn append_global<'a>(&'a self, n: &'a NewGlobal) -> StoreFuture<'a, StoredGlobal> {
        Box::pin(async move {
            let (_turn, mut tx) = self.write().await?;
            let id = next_id(&mut tx, NEXT_GLOBAL_SEQ, None).await?;
            sqlx::query(
                "INSERT INTO global_notifications (id, title, content, created_at) VALUES (?, ?, ?, ?)",
            )
            .bind(id.as_str())
            .bind(&n.title)
            .bind(&n.content)
            .bind(millis(n.timestamp))
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
            tx.commit().await.map_err(store_error)?;
            Ok(n.stored(id))
        })
    }

    fn global_notifications(&self, limit: u32) -> StoreFuture<'_, Vec<StoredGlobal>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT id, title, content, created_at FROM global_notifications \
                 ORDER BY id DESC LIMIT ?",
            )
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
            rows.iter()
                .map(|row| {
                    Ok(StoredGlobal {
                        id: message_id(row)?,
                        title: get(row, "title")?,
                        content: get(row, "content")?,
                        timestamp: timestamp(row)?,
                    })
                })
                .collect()
        })
    }

    fn set_subscription<'a>(
        &'a self,
        user: &'a UserId,
        topic: &'a str,
        keys: &'a [String],
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            // An autocommit write: it takes the write lock in its turn too.
            let _turn = self.turns.take().await;
            sqlx::query(
                "INSERT INTO subscriptions (user_id, topic, keys) VALUES (?, ?, ?) \
                 ON CONFLICT (user_id, topic) DO UPDATE SET keys = excluded.keys",
            )
            .bind(user.as_str())
            .bind(topic)
            .bind(json(&keys)?)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
            Ok(())
        })
    }

    fn remove_subscription<'a>(
        &'a self,
        user: &'a UserId,
        topic: &'a str,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            // An autocommit write: it takes the write lock in its turn too.
            let _turn = self.turns.take().await;
            let done = sqlx::query("DELETE FROM subscriptions WHERE user_id = ? AND topic = ?")
                .bind(user.as_str())
                .bind(topic)
                .execute(&self.pool)
                .await
                .map_err(store_error)?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn subscriptions<'a>(
        &'a self,
        user: &'a UserId,
    ) -> StoreFuture<'a, Vec<(String, Vec<String>)>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT topic, keys FROM subscriptions WHERE user_id = ? ORDER BY topic",
            )
            .bind(user.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
            rows.iter()
                .map(|row| Ok((get(row, "topic")?, parse(row, "keys")?)))
                .collect()
        })
    }

    fn save_room<'a>(
        &'a self,
        name: &'a RoomName,
        options: &'a RoomOptions,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            // An autocommit write: it takes the write lock in its turn too.
            let _turn = self.turns.take().await;
            sqlx::query(
                "INSERT INTO rooms (name, options) VALUES (?, ?) \
                 ON CONFLICT (name) DO UPDATE SET options = excluded.options",
            )
            .bind(name.as_str())
            .bind(json(options)?)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
            Ok(())
        })
    }

    fn delete_room<'a>(&'a self, name: &'a RoomName) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            // An autocommit write: it takes the write lock in its turn too.
            let _turn = self.turns.take().await;
            let done = sqlx::query("DELETE FROM rooms WHERE name = ?")
                .bind(name.as_str())
                .execute(&self.pool)
                .await
                .map_err(store_error)?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            sqlx::query("SELECT 1")
                .execute(&self.pool)
                .await
                .map(drop)
                .map_err(store_error)
        })
    }

    fn rooms(&self) -> StoreFuture<'_, Vec<(RoomName, RoomOptions)>> {
        Box::pin(async move {
            let rows = sqlx::query("SELECT name, options FROM rooms ORDER BY name")
                .fetch_all(&self.pool)
                .await
                .map_err(store_error)?;
            rows.iter()
                .map(|row| {
                    let name = RoomName::new(get::<String>(row, "name")?).map_err(store_error)?;
                    Ok((name, parse(row, "options")?))
                })
                .collect()
        })
    }
}
