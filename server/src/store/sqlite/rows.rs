//! Between the store's types and SQLite's: binding values and decoding rows.

use roomcast_protocol::{MessageId, Priority, RoomName, Timestamp, UserId};
use sqlx::Row;
use sqlx::Sqlite;
use sqlx::sqlite::SqliteRow;

use crate::ServerError;
use crate::store::{StoredChat, StoredNotification, StoredPrivate};

pub(super) fn store_error(e: impl std::fmt::Display) -> ServerError {
    ServerError::Store(e.to_string())
}

pub(super) fn millis(timestamp: Timestamp) -> i64 {
    i64::try_from(timestamp).unwrap_or(i64::MAX)
}

pub(super) fn json<T: serde::Serialize>(value: &T) -> Result<String, ServerError> {
    serde_json::to_string(value).map_err(store_error)
}

pub(super) fn get<'r, T>(row: &'r SqliteRow, column: &str) -> Result<T, ServerError>
where
    T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
{
    row.try_get(column).map_err(store_error)
}

pub(super) fn parse<T: serde::de::DeserializeOwned>(
    row: &SqliteRow,
    column: &str,
) -> Result<T, ServerError> {
    serde_json::from_str(&get::<String>(row, column)?).map_err(store_error)
}

pub(super) fn message_id(row: &SqliteRow) -> Result<MessageId, ServerError> {
    MessageId::new(get::<String>(row, "id")?).map_err(store_error)
}

pub(super) fn timestamp(row: &SqliteRow) -> Result<Timestamp, ServerError> {
    Ok(u64::try_from(get::<i64>(row, "created_at")?).unwrap_or(0))
}

/// Chat rows read newest first (so `LIMIT` keeps the newest), handed out oldest first.
pub(super) fn oldest_first(
    room: &RoomName,
    rows: &[SqliteRow],
) -> Result<Vec<StoredChat>, ServerError> {
    rows.iter().rev().map(|row| chat_row(room, row)).collect()
}

pub(super) fn chat_row(room: &RoomName, row: &SqliteRow) -> Result<StoredChat, ServerError> {
    Ok(StoredChat {
        id: message_id(row)?,
        room: room.clone(),
        from: parse(row, "sender")?,
        message: parse(row, "message")?,
        timestamp: timestamp(row)?,
    })
}

pub(super) fn private_row(to: &UserId, row: &SqliteRow) -> Result<StoredPrivate, ServerError> {
    Ok(StoredPrivate {
        id: message_id(row)?,
        to: to.clone(),
        from: parse(row, "sender")?,
        message: parse(row, "message")?,
        timestamp: timestamp(row)?,
    })
}

pub(super) fn notification_row(
    user: &UserId,
    row: &SqliteRow,
) -> Result<StoredNotification, ServerError> {
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

pub(super) fn priority_text(priority: Priority) -> Result<String, ServerError> {
    match serde_json::to_value(priority).map_err(store_error)? {
        serde_json::Value::String(s) => Ok(s),
        other => Err(store_error(format!("priority serialized as {other}"))),
    }
}

/// A private message row that names its recipient (`recipient`), as a conversation's rows
/// do: they come from both directions.
pub(super) fn conversation_row(row: &SqliteRow) -> Result<StoredPrivate, ServerError> {
    let to = UserId::new(get::<String>(row, "recipient")?).map_err(store_error)?;
    private_row(&to, row)
}
