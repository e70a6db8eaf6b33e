//! Between the store's types and SQLite's: decoding rows (the conversions every store
//! shares are `store/values.rs`'s).

use roomcast_protocol::{MessageId, RoomName, Timestamp, UserId};
use sqlx::Row;
use sqlx::Sqlite;
use sqlx::sqlite::SqliteRow;

pub(super) use crate::store::values::invalid as store_error;
pub(super) use crate::store::values::{json, millis, priority_text};

use crate::ServerError;
use crate::store::values::{from_json, from_millis, priority};
use crate::store::{StoredChat, StoredNotification, StoredPrivate};

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
    from_json(&get::<String>(row, column)?)
}

pub(super) fn message_id(row: &SqliteRow) -> Result<MessageId, ServerError> {
    MessageId::new(get::<String>(row, "id")?).map_err(store_error)
}

pub(super) fn timestamp(row: &SqliteRow) -> Result<Timestamp, ServerError> {
    Ok(from_millis(get::<i64>(row, "created_at")?))
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
    Ok(StoredNotification {
        id: message_id(row)?,
        user_id: user.clone(),
        title: get(row, "title")?,
        content: get(row, "content")?,
        priority: priority(get(row, "priority")?)?,
        read: get::<i64>(row, "is_read")? != 0,
        timestamp: timestamp(row)?,
    })
}

/// A private message row that names its recipient (`recipient`), as a conversation's rows
/// do: they come from both directions.
pub(super) fn conversation_row(row: &SqliteRow) -> Result<StoredPrivate, ServerError> {
    let to = UserId::new(get::<String>(row, "recipient")?).map_err(store_error)?;
    private_row(&to, row)
}
