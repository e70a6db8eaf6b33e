//! The PostgreSQL store (sqlx), for several nodes sharing one database. The schema is
//! created and migrated at open from its own versioned migrations in
//! `server/migrations/postgres/`, inside the schema the URL's `search_path` names (e.g.
//! `?options=-csearch_path=roomcast`), so several stores can share a database.
//!
//! Ids come from the counter rows of `room_seq`, `user_seq` and `global_seq`: an append
//! is **one statement**, autocommitted, that bumps its scope's row (`INSERT ... ON
//! CONFLICT DO UPDATE ... RETURNING`) and inserts the message numbered by it. The bumped
//! row stays locked until that statement's transaction commits, so the next append of the
//! scope, on any connection of any node, waits for it: commit order is id order, and a
//! snapshot that shows id N shows every id below it. (A `BIGSERIAL` would not: its
//! numbers are handed out before commit, and commits land out of order.) A failed append
//! rolls its increment back with it, so it uses up no number.
//!
//! Availability: the pool waits at most [`ACQUIRE_TIMEOUT`] for a connection, so while the
//! server is down every call fails within that time with "store unavailable: ...", and
//! the pool reconnects by itself once it is back (each connection is checked before it is
//! handed out, so a broken one is replaced, not returned).

mod conversation;
mod ids;
mod messaging;
mod rows;

use std::str::FromStr;
use std::time::Duration;

use roomcast_protocol::{MessageId, RoomName, UserId};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};

use self::rows::{get, message_id, oldest_first, parse, store_error, timestamp, wire_id};
use super::values::{json, millis};
use super::{
    NewChat, NewGlobal, NewNotification, NewPrivate, PrivateRef, Store, StoreFuture, StoredChat,
    StoredGlobal, StoredNotification, StoredPrivate,
};
use crate::ServerError;
use crate::model::RoomOptions;

/// The versioned schema.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a call waits for a connection before it fails as "store unavailable": long
/// enough to ride out a reconnect, short enough that a client's request gets its error
/// while it still waits for the answer.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long `open` waits for the server to answer at all.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Connections per store (per node): appends to one scope serialize on its row anyway,
/// so more would mostly wait.
const MAX_CONNECTIONS: u32 = 10;

/// A schema on a PostgreSQL server.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to the server at `url` (`postgres://` or `postgresql://`), within
    /// [`CONNECT_TIMEOUT`], and migrates the schema its `search_path` selects.
    ///
    /// # Errors
    /// [`ServerError::Store`] when the URL is invalid, the server cannot be reached in
    /// time, or the schema cannot be migrated; the message names the server, never the
    /// URL (which may hold a password).
    pub async fn open(url: &str) -> Result<Self, ServerError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| ServerError::Store(format!("invalid PostgreSQL URL: {e}")))?;
        let place = format!(
            "PostgreSQL at {}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or(options.get_username())
        );
        // One connection of our own first, rather than the pool's: its error is the real
        // cause (the pool retries a refused connection until its timeout and then says
        // only that it timed out).
        let probe =
            match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options)).await
            {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => {
                    return Err(ServerError::Store(format!(
                        "store unavailable: cannot reach {place}: {e}"
                    )));
                }
                Err(_) => {
                    return Err(ServerError::Store(format!(
                        "store unavailable: cannot reach {place}: no answer within {} s",
                        CONNECT_TIMEOUT.as_secs()
                    )));
                }
            };
        // Closing politely may fail if the server just went away; the pool copes.
        let _ = probe.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(true)
            .connect_lazy_with(options);
        // Every connection has the URL's `search_path`, so the migrations (and their
        // `_sqlx_migrations` table) land in its schema. sqlx serializes concurrent
        // migrators (nodes starting together) with an advisory lock.
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| ServerError::Store(format!("migrating {place}: {e}")))?;
        Ok(Self { pool })
    }
}

/// Appends a chat: bumps (or starts at 1) the room's counter row and inserts the message
/// under the new number, in one statement. The row lock it takes is held to commit.
const APPEND_CHAT: &str = "WITH s AS (\
        INSERT INTO room_seq (room, last_seq) VALUES ($1, 1) \
        ON CONFLICT (room) DO UPDATE SET last_seq = room_seq.last_seq + 1 \
        RETURNING last_seq) \
     INSERT INTO chat_messages (room, seq, sender, message, created_at) \
     SELECT $1, last_seq, $2::json, $3::json, $4 FROM s RETURNING seq";

/// The same for a notification to everyone, on the one row of `global_seq`.
const APPEND_GLOBAL: &str = "WITH s AS (\
        INSERT INTO global_seq (one, last_seq) VALUES (true, 1) \
        ON CONFLICT (one) DO UPDATE SET last_seq = global_seq.last_seq + 1 \
        RETURNING last_seq) \
     INSERT INTO global_notifications (seq, title, content, created_at) \
     SELECT last_seq, $1, $2, $3 FROM s RETURNING seq";

/// A read of chat rows (their columns, JSON as text) `WHERE` the given condition.
macro_rules! select_chats {
    ($condition:literal) => {
        concat!(
            "SELECT seq, sender::text AS sender, message::text AS message, created_at \
             FROM chat_messages WHERE ",
            $condition
        )
    };
}

impl Store for PostgresStore {
    fn append_chat<'a>(&'a self, chat: &'a NewChat) -> StoreFuture<'a, StoredChat> {
        Box::pin(async move {
            let seq: i64 = sqlx::query_scalar(APPEND_CHAT)
                .bind(chat.room.as_str())
                .bind(json(&chat.from)?)
                .bind(chat.message.to_string())
                .bind(millis(chat.timestamp))
                .fetch_one(&self.pool)
                .await
                .map_err(store_error)?;
            Ok(chat.stored(wire_id(seq)?))
        })
    }

    fn chat_history<'a>(
        &'a self,
        room: &'a RoomName,
        limit: u32,
        before: Option<&'a MessageId>,
    ) -> StoreFuture<'a, Vec<StoredChat>> {
        Box::pin(async move {
            let last = before.map_or(i64::MAX, ids::last_below);
            let rows = sqlx::query(select_chats!(
                "room = $1 AND seq <= $2 ORDER BY seq DESC LIMIT $3"
            ))
            .bind(room.as_str())
            .bind(last)
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
            let rows = sqlx::query(select_chats!(
                "room = $1 AND seq > $2 ORDER BY seq DESC LIMIT $3"
            ))
            .bind(room.as_str())
            .bind(ids::last_at_or_below(since))
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
            let rows = sqlx::query(select_chats!(
                "room = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4"
            ))
            .bind(room.as_str())
            .bind(ids::last_at_or_below(after))
            .bind(through.map_or(i64::MAX, ids::last_at_or_below))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
            rows.iter().map(|row| rows::chat_row(room, row)).collect()
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
            let names: Vec<&str> = rooms.iter().map(RoomName::as_str).collect();
            let rows = sqlx::query(
                "SELECT room, last_seq FROM room_seq WHERE room = ANY($1) \
                 ORDER BY room COLLATE \"C\"",
            )
            .bind(names)
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
            rows.iter()
                .map(|row| {
                    let room = RoomName::new(get::<String>(row, "room")?)
                        .map_err(super::values::invalid)?;
                    Ok((room, wire_id(get(row, "last_seq")?)?))
                })
                .collect()
        })
    }

    fn append_private<'a>(
        &'a self,
        message: &'a NewPrivate,
        delivered: bool,
    ) -> StoreFuture<'a, StoredPrivate> {
        Box::pin(self.insert_private(message, delivered))
    }

    fn mark_private_delivered<'a>(
        &'a self,
        to: &'a UserId,
        id: &'a MessageId,
    ) -> StoreFuture<'a, ()> {
        Box::pin(self.set_private_delivered(to, id))
    }

    fn take_pending_private<'a>(&'a self, to: &'a UserId) -> StoreFuture<'a, Vec<StoredPrivate>> {
        Box::pin(self.take_privates(to))
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
        notification: &'a NewNotification,
        delivered: bool,
    ) -> StoreFuture<'a, StoredNotification> {
        Box::pin(self.insert_notification(notification, delivered))
    }

    fn mark_notification_delivered<'a>(
        &'a self,
        user: &'a UserId,
        id: &'a MessageId,
    ) -> StoreFuture<'a, ()> {
        Box::pin(self.set_notification_delivered(user, id))
    }

    fn take_pending_notifications<'a>(
        &'a self,
        user: &'a UserId,
    ) -> StoreFuture<'a, Vec<StoredNotification>> {
        Box::pin(self.take_notifications(user))
    }

    fn mark_read<'a>(&'a self, user: &'a UserId, id: &'a MessageId) -> StoreFuture<'a, bool> {
        Box::pin(self.set_read(user, id))
    }

    fn notifications<'a>(
        &'a self,
        user: &'a UserId,
        unread_only: bool,
        limit: u32,
    ) -> StoreFuture<'a, Vec<StoredNotification>> {
        Box::pin(self.list_notifications(user, unread_only, limit))
    }

    fn append_global<'a>(&'a self, n: &'a NewGlobal) -> StoreFuture<'a, StoredGlobal> {
        Box::pin(async move {
            let seq: i64 = sqlx::query_scalar(APPEND_GLOBAL)
                .bind(&n.title)
                .bind(&n.content)
                .bind(millis(n.timestamp))
                .fetch_one(&self.pool)
                .await
                .map_err(store_error)?;
            Ok(n.stored(wire_id(seq)?))
        })
    }

    fn global_notifications(&self, limit: u32) -> StoreFuture<'_, Vec<StoredGlobal>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT seq, title, content, created_at FROM global_notifications \
                 ORDER BY seq DESC LIMIT $1",
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
            sqlx::query(
                "INSERT INTO subscriptions (user_id, topic, keys) VALUES ($1, $2, $3::json) \
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
            let done = sqlx::query("DELETE FROM subscriptions WHERE user_id = $1 AND topic = $2")
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
            // Byte order, as SQLite's: the database's collation is nobody's choice here.
            let rows = sqlx::query(
                "SELECT topic, keys::text AS keys FROM subscriptions WHERE user_id = $1 \
                 ORDER BY topic COLLATE \"C\"",
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
            sqlx::query(
                "INSERT INTO rooms (name, options) VALUES ($1, $2::jsonb) \
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
            let done = sqlx::query("DELETE FROM rooms WHERE name = $1")
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
            let rows = sqlx::query(
                "SELECT name, options::text AS options FROM rooms ORDER BY name COLLATE \"C\"",
            )
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
            rows.iter()
                .map(|row| {
                    let name = RoomName::new(get::<String>(row, "name")?)
                        .map_err(super::values::invalid)?;
                    Ok((name, parse(row, "options")?))
                })
                .collect()
        })
    }
}
