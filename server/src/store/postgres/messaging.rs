//! What the PostgreSQL store keeps per recipient: private messages and notifications,
//! numbered from the one `user_seq` row of their recipient, and their delivery and read
//! state. Taking the pending ones is one `UPDATE ... WHERE NOT delivered ... RETURNING`:
//! a second taker (another connection, another node) blocks on the rows the first one
//! claimed and, once it commits, re-reads them as delivered and skips them, so each
//! message is handed out once.

use roomcast_protocol::{MessageId, UserId};

use super::PostgresStore;
use super::ids;
use super::rows::{by_id, notification_row, private_row, store_error, wire_id};
use crate::ServerError;
use crate::store::values::{json, millis, priority_text};
use crate::store::{NewNotification, NewPrivate, StoredNotification, StoredPrivate};

/// Bumps (or starts at 1) the recipient's counter row, shared by both kinds, as the
/// first part of an append's one statement; `$1` is the recipient.
macro_rules! next_user_seq {
    () => {
        "WITH s AS (\
            INSERT INTO user_seq (user_id, last_seq) VALUES ($1, 1) \
            ON CONFLICT (user_id) DO UPDATE SET last_seq = user_seq.last_seq + 1 \
            RETURNING last_seq) "
    };
}

const APPEND_PRIVATE: &str = concat!(
    next_user_seq!(),
    "INSERT INTO private_messages (recipient, seq, sender, message, created_at, delivered) \
     SELECT $1, last_seq, $2::json, $3::json, $4, $5 FROM s RETURNING seq"
);

const APPEND_NOTIFICATION: &str = concat!(
    next_user_seq!(),
    "INSERT INTO notifications \
     (user_id, seq, title, content, priority, created_at, is_read, delivered) \
     SELECT $1, last_seq, $2, $3, $4, $5, $6, $7 FROM s RETURNING seq"
);

impl PostgresStore {
    pub(super) async fn insert_private(
        &self,
        message: &NewPrivate,
        delivered: bool,
    ) -> Result<StoredPrivate, ServerError> {
        let seq: i64 = sqlx::query_scalar(APPEND_PRIVATE)
            .bind(message.to.as_str())
            .bind(json(&message.from)?)
            .bind(message.message.to_string())
            .bind(millis(message.timestamp))
            .bind(delivered)
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(message.stored(wire_id(seq)?))
    }

    pub(super) async fn set_private_delivered(
        &self,
        to: &UserId,
        id: &MessageId,
    ) -> Result<(), ServerError> {
        // An id this store cannot have given names no message: nothing to mark.
        let Some(seq) = ids::exact(id) else {
            return Ok(());
        };
        sqlx::query(
            "UPDATE private_messages SET delivered = true WHERE recipient = $1 AND seq = $2",
        )
        .bind(to.as_str())
        .bind(seq)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    pub(super) async fn take_privates(
        &self,
        to: &UserId,
    ) -> Result<Vec<StoredPrivate>, ServerError> {
        let rows = sqlx::query(
            "UPDATE private_messages SET delivered = true \
             WHERE recipient = $1 AND NOT delivered \
             RETURNING seq, sender::text AS sender, message::text AS message, created_at",
        )
        .bind(to.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        let items = rows
            .iter()
            .map(|row| private_row(to, row))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(by_id(items, |p| &p.id))
    }

    pub(super) async fn insert_notification(
        &self,
        n: &NewNotification,
        delivered: bool,
    ) -> Result<StoredNotification, ServerError> {
        let seq: i64 = sqlx::query_scalar(APPEND_NOTIFICATION)
            .bind(n.user_id.as_str())
            .bind(&n.title)
            .bind(&n.content)
            .bind(priority_text(n.priority)?)
            .bind(millis(n.timestamp))
            .bind(n.read)
            .bind(delivered)
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(n.stored(wire_id(seq)?))
    }

    pub(super) async fn set_notification_delivered(
        &self,
        user: &UserId,
        id: &MessageId,
    ) -> Result<(), ServerError> {
        let Some(seq) = ids::exact(id) else {
            return Ok(());
        };
        sqlx::query("UPDATE notifications SET delivered = true WHERE user_id = $1 AND seq = $2")
            .bind(user.as_str())
            .bind(seq)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    pub(super) async fn take_notifications(
        &self,
        user: &UserId,
    ) -> Result<Vec<StoredNotification>, ServerError> {
        let rows = sqlx::query(
            "UPDATE notifications SET delivered = true \
             WHERE user_id = $1 AND NOT delivered AND NOT is_read \
             RETURNING seq, title, content, priority, created_at, is_read",
        )
        .bind(user.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        let items = rows
            .iter()
            .map(|row| notification_row(user, row))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(by_id(items, |n| &n.id))
    }

    pub(super) async fn set_read(
        &self,
        user: &UserId,
        id: &MessageId,
    ) -> Result<bool, ServerError> {
        let Some(seq) = ids::exact(id) else {
            return Ok(false);
        };
        let done =
            sqlx::query("UPDATE notifications SET is_read = true WHERE user_id = $1 AND seq = $2")
                .bind(user.as_str())
                .bind(seq)
                .execute(&self.pool)
                .await
                .map_err(store_error)?;
        Ok(done.rows_affected() > 0)
    }

    pub(super) async fn list_notifications(
        &self,
        user: &UserId,
        unread_only: bool,
        limit: u32,
    ) -> Result<Vec<StoredNotification>, ServerError> {
        let rows = sqlx::query(
            "SELECT seq, title, content, priority, created_at, is_read FROM notifications \
             WHERE user_id = $1 AND (NOT $2 OR NOT is_read) ORDER BY seq DESC LIMIT $3",
        )
        .bind(user.as_str())
        .bind(unread_only)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.iter().map(|row| notification_row(user, row)).collect()
    }
}
