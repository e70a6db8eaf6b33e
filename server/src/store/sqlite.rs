//! The embedded SQLite store (sqlx). The schema is created and migrated at open from the
//! versioned migrations in `server/migrations/`; WAL mode keeps readers off the writer.

use std::str::FromStr;

use roomcast_protocol::{MessageId, Priority, RoomName, Timestamp, UserId};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::{Store, StoreFuture, StoredChat, StoredGlobal, StoredNotification, StoredPrivate};
use crate::ServerError;
use crate::model::RoomOptions;

/// The versioned schema.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A SQLite database file (or an in-memory database for tests).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

fn store_error(e: impl std::fmt::Display) -> ServerError {
    ServerError::Store(e.to_string())
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
            SqlitePoolOptions::new().max_connections(4)
        };
        let pool = pool.connect_with(options).await.map_err(store_error)?;
        MIGRATOR.run(&pool).await.map_err(store_error)?;
        Ok(Self { pool })
    }
}

fn millis(timestamp: Timestamp) -> i64 {
    i64::try_from(timestamp).unwrap_or(i64::MAX)
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, ServerError> {
    serde_json::to_string(value).map_err(store_error)
}

fn get<'r, T>(row: &'r SqliteRow, column: &str) -> Result<T, ServerError>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    row.try_get(column).map_err(store_error)
}

fn parse<T: serde::de::DeserializeOwned>(row: &SqliteRow, column: &str) -> Result<T, ServerError> {
    serde_json::from_str(&get::<String>(row, column)?).map_err(store_error)
}

fn message_id(row: &SqliteRow) -> Result<MessageId, ServerError> {
    MessageId::new(get::<String>(row, "id")?).map_err(store_error)
}

fn timestamp(row: &SqliteRow) -> Result<Timestamp, ServerError> {
    Ok(u64::try_from(get::<i64>(row, "created_at")?).unwrap_or(0))
}

/// Chat rows read newest first (so `LIMIT` keeps the newest), handed out oldest first.
fn oldest_first(room: &RoomName, rows: &[SqliteRow]) -> Result<Vec<StoredChat>, ServerError> {
    rows.iter().rev().map(|row| chat_row(room, row)).collect()
}

fn chat_row(room: &RoomName, row: &SqliteRow) -> Result<StoredChat, ServerError> {
    Ok(StoredChat {
        id: message_id(row)?,
        room: room.clone(),
        from: parse(row, "sender")?,
        message: parse(row, "message")?,
        timestamp: timestamp(row)?,
    })
}

fn private_row(to: &UserId, row: &SqliteRow) -> Result<StoredPrivate, ServerError> {
    Ok(StoredPrivate {
        id: message_id(row)?,
        to: to.clone(),
        from: parse(row, "sender")?,
        message: parse(row, "message")?,
        timestamp: timestamp(row)?,
    })
}

fn notification_row(user: &UserId, row: &SqliteRow) -> Result<StoredNotification, ServerError> {
    let priority: String = get(row, "priority")?;
    Ok(StoredNotification {
        id: message_id(row)?,
        user_id: user.clone(),
        title: get(row, "title")?,
        content: get(row, "content")?,
        priority: serde_json::from_value::<Priority>(serde_json::Value::String(priority))
            .map_err(store_error)?,
        read: get::<i64>(row, "is_read")? != 0,
        timestamp: timestamp(row)?,
    })
}

fn priority_text(priority: Priority) -> Result<String, ServerError> {
    match serde_json::to_value(priority).map_err(store_error)? {
        serde_json::Value::String(s) => Ok(s),
        other => Err(store_error(format!("priority serialized as {other}"))),
    }
}

impl Store for SqliteStore {
    fn append_chat<'a>(&'a self, chat: &'a StoredChat) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO chat_messages (room, id, sender, message, created_at) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(chat.room.as_str())
            .bind(chat.id.as_str())
            .bind(json(&chat.from)?)
            .bind(chat.message.to_string())
            .bind(millis(chat.timestamp))
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
            Ok(())
        })
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

    fn append_private<'a>(
        &'a self,
        message: &'a StoredPrivate,
        delivered: bool,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO private_messages (recipient, id, sender, message, created_at, delivered) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(message.to.as_str())
            .bind(message.id.as_str())
            .bind(json(&message.from)?)
            .bind(message.message.to_string())
            .bind(millis(message.timestamp))
            .bind(delivered)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
            Ok(())
        })
    }

    fn mark_private_delivered<'a>(
        &'a self,
        to: &'a UserId,
        id: &'a MessageId,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
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

    fn append_notification<'a>(
        &'a self,
        n: &'a StoredNotification,
        delivered: bool,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO notifications \
                 (user_id, id, title, content, priority, created_at, is_read, delivered) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(n.user_id.as_str())
            .bind(n.id.as_str())
            .bind(&n.title)
            .bind(&n.content)
            .bind(priority_text(n.priority)?)
            .bind(millis(n.timestamp))
            .bind(n.read)
            .bind(delivered)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
            Ok(())
        })
    }

    fn mark_notification_delivered<'a>(
        &'a self,
        user: &'a UserId,
        id: &'a MessageId,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
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

    fn append_global<'a>(&'a self, n: &'a StoredGlobal) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO global_notifications (id, title, content, created_at) VALUES (?, ?, ?, ?)",
            )
            .bind(n.id.as_str())
            .bind(&n.title)
            .bind(&n.content)
            .bind(millis(n.timestamp))
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
            Ok(())
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
            let done = sqlx::query("DELETE FROM rooms WHERE name = ?")
                .bind(name.as_str())
                .execute(&self.pool)
                .await
                .map_err(store_error)?;
            Ok(done.rows_affected() > 0)
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
