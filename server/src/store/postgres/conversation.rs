//! A private conversation read back (`Store::private_history`) from PostgreSQL: the
//! messages between two users, both directions, in the conversation's order
//! (`created_at`, recipient as bytes, id), the newest `limit` strictly before a cursor
//! message, oldest first; the same answers as the SQLite store's `conversation.rs`.
//!
//! Each direction has one recipient, so the cursor's place in the order becomes, per
//! direction, a bound on (`created_at`, `seq`) alone, computed here: a range of the index
//! `private_messages_conversation` (recipient, sender_id, created_at, seq) read newest
//! first and cut at `limit`. The two cuts are merged and cut again, so a page reads at
//! most `2 × limit` index entries wherever it is in the conversation.

use std::cmp::Ordering;

use roomcast_protocol::UserId;

use super::PostgresStore;
use super::ids;
use super::rows::{conversation_row, store_error};
use crate::ServerError;
use crate::store::{PrivateRef, StoredPrivate};

/// The page query: the messages to `$1` from `$2` at or below (`$4`, `$5`) in
/// (created_at, seq), and those to `$2` from `$1` at or below (`$6`, `$7`), each the
/// newest `$3` of its range; merged in the conversation's order, newest `$3` first. The
/// second direction is the first when `$1 = $2` (the conversation of a user with
/// itself), wanted once. `created_at <= ...` repeats what the row comparison implies, so
/// that the planner sees a plain range on the index's third column.
const PAGE: &str = "SELECT * FROM (\
    (SELECT recipient, seq, sender::text AS sender, message::text AS message, created_at \
     FROM private_messages WHERE recipient = $1 AND sender_id = $2 \
     AND created_at <= $4 AND (created_at, seq) <= ($4, $5) \
     ORDER BY created_at DESC, seq DESC LIMIT $3) \
    UNION ALL \
    (SELECT recipient, seq, sender::text AS sender, message::text AS message, created_at \
     FROM private_messages WHERE recipient = $2 AND sender_id = $1 AND $1 <> $2 \
     AND created_at <= $6 AND (created_at, seq) <= ($6, $7) \
     ORDER BY created_at DESC, seq DESC LIMIT $3)\
    ) AS page ORDER BY created_at DESC, recipient COLLATE \"C\" DESC, seq DESC LIMIT $3";

/// Where the cursor message is in the order: its `created_at`, if it is the message to
/// `$1` numbered `$2` from `$3`.
const CURSOR: &str = "SELECT created_at FROM private_messages \
     WHERE recipient = $1 AND seq = $2 AND sender_id = $3";

/// A direction's bound, inclusive, on (created_at, seq).
type Bound = (i64, i64);

/// No bound: the newest page.
const NEWEST: Bound = (i64::MAX, i64::MAX);

/// The bound of the direction to `recipient` that keeps exactly its messages strictly
/// before the cursor at (`created_at`, `to`, `seq`) in the conversation's order.
fn before(recipient: &UserId, created_at: i64, to: &UserId, seq: i64) -> Bound {
    match recipient.as_str().as_bytes().cmp(to.as_str().as_bytes()) {
        // A smaller recipient sorts first at equal times: its whole millisecond is before.
        Ordering::Less => (created_at, i64::MAX),
        // A greater one sorts after: only the earlier milliseconds are.
        Ordering::Greater => (created_at, -1),
        Ordering::Equal => (created_at, seq - 1),
    }
}

impl PostgresStore {
    /// [`crate::store::Store::private_history`].
    pub(super) async fn conversation(
        &self,
        a: &UserId,
        b: &UserId,
        limit: u32,
        cursor: Option<&PrivateRef>,
    ) -> Result<Option<Vec<StoredPrivate>>, ServerError> {
        let (to_a, to_b) = match cursor {
            None => (NEWEST, NEWEST),
            Some(cursor) => {
                // The cursor's sender is the other side: a message to `a` from anyone
                // but `b` (the same id can be one) is not of this conversation.
                let sender = if cursor.to == *a {
                    b
                } else if cursor.to == *b {
                    a
                } else {
                    return Ok(None);
                };
                let Some(seq) = ids::exact(&cursor.id) else {
                    return Ok(None);
                };
                let found = sqlx::query_scalar::<_, i64>(CURSOR)
                    .bind(cursor.to.as_str())
                    .bind(seq)
                    .bind(sender.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(store_error)?;
                // Rows are never changed once written (but for their delivery state), so
                // the page may well be read in another snapshot than the cursor.
                let Some(created_at) = found else {
                    return Ok(None);
                };
                (
                    before(a, created_at, &cursor.to, seq),
                    before(b, created_at, &cursor.to, seq),
                )
            }
        };
        let rows = sqlx::query(PAGE)
            .bind(a.as_str())
            .bind(b.as_str())
            .bind(i64::from(limit))
            .bind(to_a.0)
            .bind(to_a.1)
            .bind(to_b.0)
            .bind(to_b.1)
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        // Read newest first (so `LIMIT` keeps the newest), handed out oldest first.
        rows.iter()
            .rev()
            .map(conversation_row)
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}
