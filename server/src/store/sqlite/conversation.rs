//! A private conversation read back (`Store::private_history`): the messages between two
//! users, both directions, in the conversation's order (`created_at`, `recipient`, `id`),
//! the newest `limit` strictly before a cursor message, oldest first.
//!
//! Each direction has one recipient, so it is one range of the index
//! `private_messages_conversation` (recipient, sender_id, created_at, id) (migration 0004),
//! read newest first and cut at `limit`; the two cuts are merged and cut again. A page
//! thus reads at most `2 × limit` index entries wherever it is in the conversation.

use roomcast_protocol::UserId;

use super::SqliteStore;
use super::rows::{conversation_row, store_error};
use crate::ServerError;
use crate::store::{PrivateRef, StoredPrivate};

/// The page query: both directions of the conversation of `?1` and `?2` (each the newest
/// `?3` of its range, newest first), merged, newest `?3` first; `$bound` narrows each
/// range. `UNION`, not `UNION ALL`: the two directions share no row, except in the
/// conversation of a user with itself, where they are the same rows, wanted once.
macro_rules! page {
    ($bound:literal) => {
        concat!(
            "SELECT * FROM (SELECT recipient, id, sender, message, created_at \
             FROM private_messages WHERE recipient = ?1 AND sender_id = ?2",
            $bound,
            " ORDER BY created_at DESC, id DESC LIMIT ?3) \
             UNION SELECT * FROM (SELECT recipient, id, sender, message, created_at \
             FROM private_messages WHERE recipient = ?2 AND sender_id = ?1",
            $bound,
            " ORDER BY created_at DESC, id DESC LIMIT ?3) \
             ORDER BY created_at DESC, recipient DESC, id DESC LIMIT ?3"
        )
    };
}

/// The newest messages of a conversation.
pub(super) const NEWEST: &str = page!("");

/// The newest strictly before the message at (`?4` created_at, `?5` recipient, `?6` id).
/// The row value states the order exactly; `created_at <= ?4`, which it implies, is there
/// for the planner: a row value whose columns are not the index's, in its order, is no
/// range to it, and without a range each page would scan every newer entry first. The
/// filter then only reads past the entries of the cursor's own millisecond.
pub(super) const BEFORE: &str =
    page!(" AND created_at <= ?4 AND (created_at, recipient, id) < (?4, ?5, ?6)");

/// Where the cursor message is in the order: its `created_at`, if it is the message to
/// `?1` with id `?2` from `?3`.
pub(super) const CURSOR: &str = "SELECT created_at FROM private_messages \
     WHERE recipient = ?1 AND id = ?2 AND sender_id = ?3";

impl SqliteStore {
    /// [`crate::store::Store::private_history`].
    pub(super) async fn conversation(
        &self,
        a: &UserId,
        b: &UserId,
        limit: u32,
        before: Option<&PrivateRef>,
    ) -> Result<Option<Vec<StoredPrivate>>, ServerError> {
        let limit = i64::from(limit);
        let rows = match before {
            None => sqlx::query(NEWEST)
                .bind(a.as_str())
                .bind(b.as_str())
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(store_error)?,
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
                let found = sqlx::query_scalar::<_, i64>(CURSOR)
                    .bind(cursor.to.as_str())
                    .bind(cursor.id.as_str())
                    .bind(sender.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(store_error)?;
                // Rows are never changed once written (but for their delivery state), so
                // the page may well be read in another snapshot than the cursor.
                let Some(created_at) = found else {
                    return Ok(None);
                };
                sqlx::query(BEFORE)
                    .bind(a.as_str())
                    .bind(b.as_str())
                    .bind(limit)
                    .bind(created_at)
                    .bind(cursor.to.as_str())
                    .bind(cursor.id.as_str())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(store_error)?
            }
        };
        // Read newest first (so `LIMIT` keeps the newest), handed out oldest first.
        rows.iter()
            .rev()
            .map(conversation_row)
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Row;

    use super::*;

    /// The plan SQLite picks for `sql` (the `detail` column of each step).
    async fn plan(store: &SqliteStore, sql: &str, binds: usize) -> Vec<String> {
        let explain = format!("EXPLAIN QUERY PLAN {sql}");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(explain));
        for n in 0..binds {
            query = query.bind(format!("v{n}"));
        }
        let rows = query.fetch_all(&store.pool).await.expect("explain");
        rows.iter()
            .map(|row| row.get::<String, _>("detail"))
            .collect()
    }

    #[tokio::test]
    async fn each_direction_is_a_range_of_the_conversation_index_read_in_order() {
        let store = SqliteStore::open("sqlite::memory:").await.expect("open");
        for (sql, binds) in [(NEWEST, 3), (BEFORE, 6)] {
            let steps = plan(&store, sql, binds).await;
            let reads: Vec<usize> = (0..steps.len())
                .filter(|&i| steps[i].contains("private_messages"))
                .collect();
            assert_eq!(reads.len(), 2, "one read per direction: {steps:#?}");
            for i in reads {
                let read = &steps[i];
                assert!(
                    read.starts_with(
                        "SEARCH private_messages USING INDEX private_messages_conversation \
                         (recipient=? AND sender_id=?"
                    ),
                    "{read} in {steps:#?}"
                );
                if sql == BEFORE {
                    assert!(read.contains("AND created_at<?)"), "a range: {steps:#?}");
                }
                // The index delivers the order, so `LIMIT` stops the read: no sort of the
                // whole direction comes before the subquery's rows are taken. (The merge
                // then sorts those few rows: at most `limit` a side.)
                assert!(
                    steps[i + 1].starts_with("SCAN (subquery"),
                    "the direction is sorted before its LIMIT: {steps:#?}"
                );
            }
        }
        let cursor = plan(&store, CURSOR, 3).await;
        assert_eq!(
            cursor,
            [
                "SEARCH private_messages USING INDEX sqlite_autoindex_private_messages_1 (recipient=? AND id=?)"
            ],
            "the cursor is found by its key"
        );
    }
}
