//! Batching (`/api/broadcast` with `batch:true`): a room's messages wait in its batch and
//! go out as one `batch_messages` when it holds `batch_max_messages` or
//! `batch_window` after its first message, whichever comes first. The batch's async lock
//! is held across the publish, so batches of a room leave in order; a failed publish puts
//! the messages back in front and tries again after another window, dropping nothing.
//! Timers are tracked background tasks; at shutdown every batch is flushed at once, so a
//! message answered `batched: true` is never dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use dashmap::DashMap;
use roomcast_protocol::{RoomName, batch_messages_frame};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tracing::{error, warn};

use super::Hub;
use crate::ServerError;
use crate::broker::{Delivery, Target};
use crate::clock::now_ms;
use crate::model::app_frame;

/// One room's batch behind the async lock its flushes take.
type Slot = Arc<tokio::sync::Mutex<Batch>>;

/// Every room's pending batch.
#[derive(Debug, Default)]
pub(crate) struct Batches {
    rooms: DashMap<RoomName, Slot>,
    /// Set when shutdown begins: from then on every batch is flushed as it is added.
    draining: AtomicBool,
}

/// A room's waiting messages.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// Serialized application messages, in publish order.
    messages: Vec<Utf8Bytes>,
    /// Bumped whenever the batch empties, so a stale timer does not flush a newer batch
    /// early.
    generation: u64,
}

/// What `/api/broadcast` with `batch` answers.
#[derive(Debug, Clone, Copy, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Batched {
    /// Messages now waiting in the room's batch (0 when this one flushed it).
    pub pending: usize,
}

impl Hub {
    /// Adds an application message to `room`'s batch.
    ///
    /// # Errors
    /// `bad_request` for a bad message.
    pub async fn batch(&self, room: &RoomName, message: &Value) -> Result<Batched, ServerError> {
        let frame = app_frame(message)?;
        let slot = self
            .inner
            .batches
            .rooms
            .entry(room.clone())
            .or_default()
            .clone();
        let mut batch = slot.lock().await;
        batch.messages.push(frame);
        // Once the server drains, nothing waits for a window: a batch answered now goes
        // out now, while the room's members are still connected.
        let draining = self.inner.batches.draining.load(Ordering::Acquire);
        if draining || batch.messages.len() >= self.config().limits.batch_max_messages {
            self.flush(room, &mut batch).await;
        } else if batch.messages.len() == 1 {
            self.arm(room.clone(), slot.clone(), batch.generation);
        }
        Ok(Batched {
            pending: batch.messages.len(),
        })
    }

    /// Flushes the batch after one window (or at shutdown), unless it was flushed (and
    /// maybe refilled) meanwhile.
    fn arm(&self, room: RoomName, slot: Slot, generation: u64) {
        let hub = self.clone();
        let window = self.config().timeouts.batch_window;
        self.spawn_background(async move {
            tokio::select! {
                () = tokio::time::sleep(window) => {}
                () = hub.shutdown_token().cancelled() => {}
            }
            let mut batch = slot.lock().await;
            if batch.generation == generation && !batch.messages.is_empty() {
                hub.flush(&room, &mut batch).await;
            }
            let empty = batch.messages.is_empty();
            drop(batch);
            if empty {
                hub.inner.batches.rooms.remove_if(&room, |_, current| {
                    Arc::ptr_eq(current, &slot)
                        && current.try_lock().is_ok_and(|b| b.messages.is_empty())
                });
            }
        });
    }

    async fn flush(&self, room: &RoomName, batch: &mut tokio::sync::MutexGuard<'_, Batch>) {
        let messages = std::mem::take(&mut batch.messages);
        batch.generation += 1;
        let delivery = Delivery::new(
            Target::Room(room.clone()),
            Utf8Bytes::from(batch_messages_frame(room, &messages, now_ms())),
        );
        if let Err(err) = self.publish(delivery).await {
            if self.shutdown_token().is_cancelled() {
                // No later window to retry in: say what is lost instead of spinning.
                error!(%room, count = messages.len(), cause = %err, "batch not published at shutdown; dropped");
                return;
            }
            warn!(%room, count = messages.len(), cause = %err, "batch not published; retrying");
            let later = std::mem::replace(&mut batch.messages, messages);
            batch.messages.extend(later);
            if let Some(slot) = self.inner.batches.rooms.get(room).map(|s| s.clone()) {
                self.arm(room.clone(), slot, batch.generation);
            }
        }
    }

    /// Flushes every room's batch now and every later one as it is added (shutdown).
    pub(crate) async fn flush_batches(&self) {
        self.inner.batches.draining.store(true, Ordering::Release);
        let slots: Vec<(RoomName, Slot)> = self
            .inner
            .batches
            .rooms
            .iter()
            .map(|entry| (entry.key().clone(), entry.value().clone()))
            .collect();
        for (room, slot) in slots {
            let mut batch = slot.lock().await;
            if !batch.messages.is_empty() {
                self.flush(&room, &mut batch).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use futures_util::future::BoxFuture;
    use serde_json::json;

    use super::*;
    use crate::broker::{
        AckRequest, AckResults, Broker, Frame, LocalSide, NodeAnswer, NodeRequest, Reach,
    };
    use crate::config::{Config, Settings};

    /// A broker whose first publish fails (the bus is down) and that records the rest.
    #[derive(Debug, Default)]
    struct FlakyBroker {
        calls: Mutex<usize>,
        published: Mutex<Vec<String>>,
        /// Every publish fails, not just the first.
        down: bool,
    }

    fn unsupported<T: Send + 'static>() -> BoxFuture<'static, Result<T, ServerError>> {
        Box::pin(std::future::ready(Err(ServerError::Broker(
            "not used by this test".into(),
        ))))
    }

    impl Broker for FlakyBroker {
        fn start(&self, _local: Arc<dyn LocalSide>) -> BoxFuture<'_, Result<(), ServerError>> {
            Box::pin(std::future::ready(Ok(())))
        }

        fn publish(&self, delivery: Delivery) -> BoxFuture<'_, Result<Reach, ServerError>> {
            let mut calls = self.calls.lock().unwrap();
            *calls += 1;
            let result = match (&delivery.frame, *calls) {
                (_, 1) => Err(ServerError::Broker("bus down".into())),
                _ if self.down => Err(ServerError::Broker("bus down".into())),
                (Frame::Whole(frame), _) => {
                    self.published
                        .lock()
                        .unwrap()
                        .push(frame.as_str().to_owned());
                    Ok(Reach::default())
                }
                (Frame::Topic(_), _) => Err(ServerError::Broker("no topics here".into())),
            };
            Box::pin(std::future::ready(result))
        }

        fn publish_with_ack(
            &self,
            _delivery: Delivery,
            _ack: AckRequest,
        ) -> BoxFuture<'_, Result<AckResults, ServerError>> {
            unsupported()
        }

        fn request(&self, _request: NodeRequest) -> BoxFuture<'_, Result<NodeAnswer, ServerError>> {
            unsupported()
        }
    }

    async fn hub_with(broker: Arc<FlakyBroker>, window_ms: u64) -> Hub {
        let config = Config::from_settings(Settings {
            dev: Some(true),
            batch_max_messages: Some(2),
            batch_window_ms: Some(window_ms),
            ..Settings::default()
        })
        .unwrap();
        let store = crate::store::open("sqlite::memory:").await.unwrap();
        Hub::start(config, broker, store).await.unwrap()
    }

    fn order(batch: &str) -> Vec<Value> {
        let batch: Value = serde_json::from_str(batch).unwrap();
        batch["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["n"].clone())
            .collect()
    }

    #[tokio::test]
    async fn a_batch_whose_publish_fails_is_kept_in_order_for_the_next_flush() {
        let broker = Arc::new(FlakyBroker::default());
        let hub = hub_with(broker.clone(), 20).await;
        // The store is open: from here on nothing waits on a thread, so time can be
        // paused and the window is exact.
        tokio::time::pause();
        let room = RoomName::new("ticker").unwrap();
        // The second message fills the batch; its publish fails, so both stay queued.
        hub.batch(&room, &json!({ "type": "tick", "n": 1 }))
            .await
            .unwrap();
        hub.batch(&room, &json!({ "type": "tick", "n": 2 }))
            .await
            .unwrap();
        let batched = hub
            .batch(&room, &json!({ "type": "tick", "n": 3 }))
            .await
            .unwrap();
        assert_eq!(
            batched.pending, 0,
            "the retry went out with the third message"
        );
        let published = broker.published.lock().unwrap().clone();
        assert_eq!(published.len(), 1, "{published:?}");
        let batch: Value = serde_json::from_str(&published[0]).unwrap();
        assert_eq!(batch["count"], 3, "{batch}");
        assert_eq!(order(&published[0]), [json!(1), json!(2), json!(3)]);
        // And nothing is left for the retry timer to send twice.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(broker.published.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_batch_leaves_exactly_one_window_after_its_first_message() {
        let broker = Arc::new(FlakyBroker::default());
        // The first publish fails: use it up so the window's flush is the one we watch.
        *broker.calls.lock().unwrap() = 1;
        let hub = hub_with(broker.clone(), 100).await;
        tokio::time::pause();
        let room = RoomName::new("ticker").unwrap();
        hub.batch(&room, &json!({ "type": "tick", "n": 1 }))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(99)).await;
        assert!(broker.published.lock().unwrap().is_empty(), "early");
        tokio::time::sleep(Duration::from_millis(2)).await;
        let published = broker.published.lock().unwrap().clone();
        assert_eq!(published.len(), 1, "{published:?}");
        assert_eq!(order(&published[0]), [json!(1)]);
    }

    #[tokio::test]
    async fn once_draining_a_batch_goes_out_as_it_is_added() {
        let broker = Arc::new(FlakyBroker::default());
        *broker.calls.lock().unwrap() = 1;
        let hub = hub_with(broker.clone(), 3_600_000).await;
        hub.flush_batches().await;
        let room = RoomName::new("ticker").unwrap();
        let batched = hub
            .batch(&room, &json!({ "type": "tick", "n": 8 }))
            .await
            .unwrap();
        assert_eq!(batched.pending, 0, "published before the answer");
        let published = broker.published.lock().unwrap().clone();
        assert_eq!(published.len(), 1, "{published:?}");
        assert_eq!(order(&published[0]), [json!(8)]);
    }

    #[tokio::test]
    async fn a_batch_that_cannot_be_published_at_shutdown_is_dropped_not_retried_for_ever() {
        let broker = Arc::new(FlakyBroker {
            down: true,
            ..FlakyBroker::default()
        });
        let hub = hub_with(broker.clone(), 3_600_000).await;
        let room = RoomName::new("ticker").unwrap();
        hub.batch(&room, &json!({ "type": "tick", "n": 9 }))
            .await
            .unwrap();
        hub.flush_batches().await;
        hub.shutdown_token().cancel();
        tokio::time::timeout(Duration::from_secs(5), hub.stop_background())
            .await
            .expect("background work ends although the bus stays down");
        let calls = *broker.calls.lock().unwrap();
        assert!(calls <= 3, "{calls} publishes: it was retried in a loop");
    }

    #[tokio::test]
    async fn shutdown_flushes_a_pending_batch_at_once() {
        let broker = Arc::new(FlakyBroker::default());
        *broker.calls.lock().unwrap() = 1;
        // A window far longer than the test may take.
        let hub = hub_with(broker.clone(), 3_600_000).await;
        let room = RoomName::new("ticker").unwrap();
        hub.batch(&room, &json!({ "type": "tick", "n": 7 }))
            .await
            .unwrap();
        hub.shutdown_token().cancel();
        tokio::time::timeout(Duration::from_secs(5), hub.stop_background())
            .await
            .expect("background work ends at shutdown");
        let published = broker.published.lock().unwrap().clone();
        assert_eq!(published.len(), 1, "{published:?}");
        assert_eq!(order(&published[0]), [json!(7)]);
    }
}
