//! [`ChatWriter`]: group commit of room chats. One task owns the writing of chats: it
//! takes every chat queued since its last commit (up to [`MAX_BATCH`]) and stores them in
//! one `BEGIN IMMEDIATE` … `COMMIT`, one counter bump per room and one multi-row `INSERT`
//! per [`ROWS_PER_INSERT`], then answers each sender in queue order.
//!
//! Why: a commit, not a row, is what a chat costs SQLite (the write lock, the WAL frame,
//! sqlx's hop to the connection's thread per statement), so under load one commit carries
//! many chats of many rooms. Alone, a chat is still committed at once (the writer does
//! not wait to fill a batch). Ids stay in commit order: the writer numbers each room's
//! chats of a batch in queue order from the room's counter, inside the transaction that
//! stores them. If the transaction fails, none of its chats is stored and every sender
//! hears the error.

use std::collections::HashMap;
use std::sync::Arc;

use roomcast_protocol::MessageId;
use sqlx::pool::PoolConnection;
use sqlx::{Connection, QueryBuilder, Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::{Mutex, OwnedMutexGuard, mpsc, oneshot};

use super::rows::{json, millis, store_error};
use crate::ServerError;
use crate::store::{NewChat, StoredChat, sequence_id};

/// Most chats one transaction stores.
const MAX_BATCH: usize = 1024;
/// Rows per `INSERT` statement: 5 bound values each, well under SQLite's 32,766.
const ROWS_PER_INSERT: usize = 256;

/// A chat waiting for the writer, serialized, with where its answer goes.
#[derive(Debug)]
struct Job {
    chat: NewChat,
    from: String,
    message: String,
    answer: oneshot::Sender<Result<StoredChat, ServerError>>,
}

/// This process's writers of the SQLite file, one at a time in the order they asked (a
/// FIFO lock): see `SqliteStore::write`.
#[derive(Debug, Clone, Default)]
pub(super) struct WriteTurns(Arc<Mutex<()>>);

/// One writer's turn, held until its transaction ends.
pub(super) type WriteTurn = OwnedMutexGuard<()>;

impl WriteTurns {
    pub(super) async fn take(&self) -> WriteTurn {
        self.0.clone().lock_owned().await
    }
}

/// The queue into the chat writer task.
#[derive(Debug, Clone)]
pub(super) struct ChatWriter {
    queue: mpsc::UnboundedSender<Job>,
}

impl ChatWriter {
    /// Starts the writer on `pool`; it ends when the last handle is dropped.
    pub(super) fn start(pool: SqlitePool, turns: WriteTurns) -> Self {
        let (queue, jobs) = mpsc::unbounded_channel();
        tokio::spawn(write_loop(pool, turns, jobs));
        Self { queue }
    }

    /// Stores `chat` with the next chats queued, and answers once their commit is done.
    pub(super) async fn append(&self, chat: &NewChat) -> Result<StoredChat, ServerError> {
        // Serialized here, by the sender's task, not by the one writer.
        let (from, message) = (json(&chat.from)?, chat.message.to_string());
        let (answer, answered) = oneshot::channel();
        self.queue
            .send(Job {
                chat: chat.clone(),
                from,
                message,
                answer,
            })
            .map_err(|_| ServerError::Store("the chat writer has stopped".to_owned()))?;
        answered
            .await
            .map_err(|_| ServerError::Store("the chat writer has stopped".to_owned()))?
    }
}

async fn write_loop(pool: SqlitePool, turns: WriteTurns, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // The writer keeps its connection between batches: the pool pings a connection on
    // every acquire and every release (a hop to the connection's thread each), which
    // would double what a lone chat costs. Not when the pool has one connection (an
    // in-memory database), which everyone else needs too.
    let keep = pool.options().get_max_connections() > 1;
    let mut own: Option<PoolConnection<Sqlite>> = None;
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        // The turn before the connection, as every writer takes them (`SqliteStore::write`):
        // with a pool of one, the other order would deadlock against a writer holding the
        // turn and waiting for the connection.
        let turn = turns.take().await;
        let conn = match own.take() {
            Some(conn) => Ok(conn),
            None => pool.acquire().await.map_err(store_error),
        };
        let stored = match conn {
            Ok(mut conn) => {
                let stored = commit(&mut conn, &batch).await;
                // A connection that failed may be broken: the next batch takes another.
                if keep && stored.is_ok() {
                    own = Some(conn);
                }
                stored
            }
            Err(err) => Err(err),
        };
        drop(turn);
        match stored {
            Ok(ids) => {
                for (job, id) in batch.drain(..).zip(ids) {
                    let _ = job.answer.send(Ok(job.chat.into_stored(id)));
                }
            }
            Err(err) => {
                let cause = err.to_string();
                for job in batch.drain(..) {
                    let _ = job.answer.send(Err(ServerError::Store(cause.clone())));
                }
            }
        }
    }
}

/// Stores `batch` in one transaction; returns each chat's id, in batch order.
async fn commit(conn: &mut SqliteConnection, batch: &[Job]) -> Result<Vec<MessageId>, ServerError> {
    // How many chats each room has in the batch, to bump its counter once.
    let mut per_room: HashMap<&str, i64> = HashMap::new();
    for job in batch {
        *per_room.entry(job.chat.room.as_str()).or_default() += 1;
    }
    let mut tx = conn
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(store_error)?;
    // The first number of each room's chats in this batch.
    let mut next: HashMap<&str, u64> = HashMap::with_capacity(per_room.len());
    for (room, count) in per_room {
        let last: i64 = sqlx::query_scalar(
            "INSERT INTO room_seq (room, last_seq) VALUES (?, ?) \
             ON CONFLICT (room) DO UPDATE SET last_seq = last_seq + excluded.last_seq \
             RETURNING last_seq",
        )
        .bind(room)
        .bind(count)
        .fetch_one(&mut *tx)
        .await
        .map_err(store_error)?;
        let first = u64::try_from(last - count + 1).map_err(store_error)?;
        next.insert(room, first);
    }
    let ids: Vec<MessageId> = batch
        .iter()
        .map(|job| {
            let seq = next.get_mut(job.chat.room.as_str()).map_or(0, |n| {
                *n += 1;
                *n - 1
            });
            sequence_id(seq)
        })
        .collect();
    for (rows, ids) in batch
        .chunks(ROWS_PER_INSERT)
        .zip(ids.chunks(ROWS_PER_INSERT))
    {
        let mut insert: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT INTO chat_messages (room, id, sender, message, created_at) ");
        insert.push_values(rows.iter().zip(ids), |mut row, (job, id)| {
            row.push_bind(job.chat.room.as_str())
                .push_bind(id.as_str())
                .push_bind(job.from.as_str())
                .push_bind(job.message.as_str())
                .push_bind(millis(job.chat.timestamp));
        });
        insert
            .build()
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
    }
    tx.commit().await.map_err(store_error)?;
    Ok(ids)
}
