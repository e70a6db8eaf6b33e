//! Between the store's types and PostgreSQL's: errors, and decoding rows. JSON columns
//! are selected as `::text` (the statements alias them back to their names), so a row
//! decodes with the same serde calls SQLite's does, and the exact text stored is what is
//! parsed.

use roomcast_protocol::{MessageId, RoomName, UserId};
use sqlx::Postgres;
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::ServerError;
use crate::store::values::{from_json, from_millis, invalid, priority};
use crate::store::{StoredChat, StoredNotification, StoredPrivate, sequence_id};

/// A failed call. The database being out of reach is said so first, whatever the
/// low-level cause, since that is what an operator reading the log needs to know.
#[expect(
    clippy::needless_pass_by_value,
    reason = "by value, as `map_err` hands it over"
)]
pub(super) fn store_error(e: sqlx::Error) -> ServerError {
    if matches!(e, sqlx::Error::PoolTimedOut) {
        // sqlx's own words name neither the cause nor the wait.
        ServerError::Store(format!(
            "store unavailable: no connection to PostgreSQL within {} s",
            super::ACQUIRE_TIMEOUT.as_secs()
        ))
    } else if unreachable(&e) {
        ServerError::Store(format!("store unavailable: {e}"))
    } else {
        ServerError::Store(e.to_string())
    }
}

/// Whether `e` says no connection to the server could be had or kept (rather than that a
/// statement failed): a pool with no connection before its `acquire_timeout`, a broken
/// socket, or the server refusing or shutting down (SQLSTATE classes 08, 57P).
fn unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    }
}

pub(super) fn get<'r, T>(row: &'r PgRow, column: &str) -> Result<T, ServerError>
where
    T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    row.try_get(column).map_err(store_error)
}

/// A JSON column (selected as text) parsed.
pub(super) fn parse<T: serde::de::DeserializeOwned>(
    row: &PgRow,
    column: &str,
) -> Result<T, ServerError> {
    from_json(&get::<String>(row, column)?)
}

/// The wire id of a `seq` read back.
pub(super) fn wire_id(seq: i64) -> Result<MessageId, ServerError> {
    Ok(sequence_id(u64::try_from(seq).map_err(invalid)?))
}

pub(super) fn message_id(row: &PgRow) -> Result<MessageId, ServerError> {
    wire_id(get(row, "seq")?)
}

pub(super) fn timestamp(row: &PgRow) -> Result<u64, ServerError> {
    Ok(from_millis(get(row, "created_at")?))
}

/// Chat rows read newest first (so `LIMIT` keeps the newest), handed out oldest first.
pub(super) fn oldest_first(
    room: &RoomName,
    rows: &[PgRow],
) -> Result<Vec<StoredChat>, ServerError> {
    rows.iter().rev().map(|row| chat_row(room, row)).collect()
}

pub(super) fn chat_row(room: &RoomName, row: &PgRow) -> Result<StoredChat, ServerError> {
    Ok(StoredChat {
        id: message_id(row)?,
        room: room.clone(),
        from: parse(row, "sender")?,
        message: parse(row, "message")?,
        timestamp: timestamp(row)?,
    })
}

pub(super) fn private_row(to: &UserId, row: &PgRow) -> Result<StoredPrivate, ServerError> {
    Ok(StoredPrivate {
        id: message_id(row)?,
        to: to.clone(),
        from: parse(row, "sender")?,
        message: parse(row, "message")?,
        timestamp: timestamp(row)?,
    })
}

/// A private message row that names its recipient, as a conversation's rows do: they
/// come from both directions.
pub(super) fn conversation_row(row: &PgRow) -> Result<StoredPrivate, ServerError> {
    let to = UserId::new(get::<String>(row, "recipient")?).map_err(invalid)?;
    private_row(&to, row)
}

pub(super) fn notification_row(
    user: &UserId,
    row: &PgRow,
) -> Result<StoredNotification, ServerError> {
    Ok(StoredNotification {
        id: message_id(row)?,
        user_id: user.clone(),
        title: get(row, "title")?,
        content: get(row, "content")?,
        priority: priority(get(row, "priority")?)?,
        read: get(row, "is_read")?,
        timestamp: timestamp(row)?,
    })
}

/// Items taken by an `UPDATE ... RETURNING`, which returns them in no particular order,
/// sorted oldest first.
pub(super) fn by_id<T>(mut items: Vec<T>, id: impl Fn(&T) -> &MessageId) -> Vec<T> {
    items.sort_by(|a, b| id(a).cmp(id(b)));
    items
}
