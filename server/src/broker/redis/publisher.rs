//! The publisher: one task that sends this node's fire-and-forget messages to Redis in
//! the order they were queued, as many per round trip as are waiting (a pipeline of
//! `PUBLISH`es). Callers never wait on Redis: local delivery has happened before a
//! message is queued, so a Redis that is slow or away costs the other nodes that message
//! (room chats come back through the position check), never this node's latency. When
//! the queue is full the message is dropped and counted, the same as a lost one.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::mpsc;

use super::Shared;

/// Messages that may wait for Redis.
pub(super) const QUEUE: usize = 8_192;
/// Most messages in one pipeline.
const BATCH: usize = 256;

/// One queued message: its channel and bytes.
pub(super) type Queued = (String, Vec<u8>);

/// Sends what is queued until the broker stops.
pub(super) async fn run(shared: Arc<Shared>, mut queue: mpsc::Receiver<Queued>) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let received = tokio::select! {
            n = queue.recv_many(&mut batch, BATCH) => n,
            () = shared.stop.cancelled() => {
                // What was queued before the stop still goes out (the last deliveries of
                // a node shutting down), once, without waiting for more.
                while let Ok(message) = queue.try_recv() {
                    batch.push(message);
                }
                if !batch.is_empty() {
                    let mut pipe = redis::pipe();
                    for (channel, message) in batch.drain(..) {
                        pipe.cmd("PUBLISH").arg(channel).arg(message).ignore();
                    }
                    let mut commands = shared.commands.clone();
                    let _ = pipe.query_async::<()>(&mut commands).await;
                }
                return;
            }
        };
        if received == 0 {
            return;
        }
        let mut pipe = redis::pipe();
        for (channel, message) in batch.drain(..) {
            pipe.cmd("PUBLISH").arg(channel).arg(message).ignore();
        }
        let mut commands = shared.commands.clone();
        match pipe.query_async::<()>(&mut commands).await {
            Ok(()) => {
                shared
                    .counters
                    .published
                    .fetch_add(received as u64, Ordering::Relaxed);
                shared.counters.commands_ok.store(true, Ordering::Relaxed);
            }
            Err(err) => {
                shared
                    .counters
                    .publish_failures
                    .fetch_add(received as u64, Ordering::Relaxed);
                shared.counters.commands_ok.store(false, Ordering::Relaxed);
                shared.warn_away(&err);
            }
        }
    }
}
