//! The embedded SQLite store (sqlx). The schema is created and migrated at open from the
//! versioned migrations in `server/migrations/`; WAL mode keeps readers off the writer.

use std::str::FromStr;

use futures_util::future::BoxFuture;
use roomcast_protocol::{MessageId, RoomName, User};
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::{Store, StoredChat};
use crate::ServerError;

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
        // An in-memory database exists per connection: it must be exactly one.
        let pool = SqlitePoolOptions::new()
            .max_connections(if memory { 1 } else { 4 })
            .connect_with(options)
            .await
            .map_err(store_error)?;
        MIGRATOR.run(&pool).await.map_err(store_error)?;
        Ok(Self { pool })
    }
}

impl Store for SqliteStore {
    fn append_chat<'a>(&'a self, chat: &'a StoredChat) -> BoxFuture<'a, Result<(), ServerError>> {
        Box::pin(async move {
            let sender = serde_json::to_string(&chat.from).map_err(store_error)?;
            sqlx::query("INSERT INTO chat_messages (room, id, sender, message, created_at) VALUES (?, ?, ?, ?, ?)")
                .bind(chat.room.as_str())
                .bind(chat.id.as_str())
                .bind(sender)
                .bind(chat.message.to_string())
                .bind(i64::try_from(chat.timestamp).unwrap_or(i64::MAX))
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
    ) -> BoxFuture<'a, Result<Vec<StoredChat>, ServerError>> {
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
            let mut items = rows
                .iter()
                .map(|row| {
                    let id: String = row.try_get("id").map_err(store_error)?;
                    let sender: String = row.try_get("sender").map_err(store_error)?;
                    let message: String = row.try_get("message").map_err(store_error)?;
                    let created_at: i64 = row.try_get("created_at").map_err(store_error)?;
                    Ok(StoredChat {
                        id: MessageId::new(id).map_err(store_error)?,
                        room: room.clone(),
                        from: serde_json::from_str::<User>(&sender).map_err(store_error)?,
                        message: serde_json::from_str(&message).map_err(store_error)?,
                        timestamp: u64::try_from(created_at).unwrap_or(0),
                    })
                })
                .collect::<Result<Vec<_>, ServerError>>()?;
            items.reverse();
            Ok(items)
        })
    }
}
