//! Batching (`/api/broadcast` with `batch:true`): a room's messages wait in its batch and
//! go out as one `batch_messages` when it holds `batch_max_messages` or
//! `batch_window` after its first message, whichever comes first. The batch's async lock
//! is held across the publish, so batches of a room leave in order; a failed publish puts
//! the messages back in front and tries again after another window, dropping nothing.

use std::sync::Arc;

use roomcast_protocol::{RoomName, batch_messages_frame};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tracing::warn;

use super::{Hub, app_frame};
use crate::ServerError;
use crate::broker::{Delivery, Target};
use crate::clock::now_ms;

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
        let slot = self.shared.batches.entry(room.clone()).or_default().clone();
        let mut batch = slot.lock().await;
        batch.messages.push(frame);
        if batch.messages.len() >= self.config().batch_max_messages {
            self.flush(room, &mut batch).await;
        } else if batch.messages.len() == 1 {
            self.arm(room.clone(), slot.clone(), batch.generation);
        }
        Ok(Batched {
            pending: batch.messages.len(),
        })
    }

    /// Flushes the batch after one window, unless it was flushed (and maybe refilled)
    /// meanwhile.
    fn arm(&self, room: RoomName, slot: Arc<tokio::sync::Mutex<Batch>>, generation: u64) {
        let hub = self.clone();
        let window = self.config().batch_window;
        tokio::spawn(async move {
            tokio::time::sleep(window).await;
            let mut batch = slot.lock().await;
            if batch.generation == generation && !batch.messages.is_empty() {
                hub.flush(&room, &mut batch).await;
            }
            let empty = batch.messages.is_empty();
            drop(batch);
            if empty {
                hub.shared.batches.remove_if(&room, |_, current| {
                    Arc::ptr_eq(current, &slot)
                        && current.try_lock().is_ok_and(|b| b.messages.is_empty())
                });
            }
        });
    }

    async fn flush(&self, room: &RoomName, batch: &mut tokio::sync::MutexGuard<'_, Batch>) {
        let messages = std::mem::take(&mut batch.messages);
        batch.generation += 1;
        let delivery = Delivery {
            target: Target::Room(room.clone()),
            except: None,
            frame: Utf8Bytes::from(batch_messages_frame(room, &messages, now_ms())),
        };
        if let Err(err) = self.publish(delivery).await {
            warn!(%room, count = messages.len(), cause = %err, "batch not published; retrying");
            let later = std::mem::replace(&mut batch.messages, messages);
            batch.messages.extend(later);
            if let Some(slot) = self.shared.batches.get(room).map(|s| s.clone()) {
                self.arm(room.clone(), slot, batch.generation);
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
    use crate::broker::{Broker, LocalDelivery};
    use crate::config::{Config, Settings};

    /// A broker whose first publish fails (the bus is down) and that records the rest.
    #[derive(Debug, Default)]
    struct FlakyBroker {
        calls: Mutex<usize>,
        published: Mutex<Vec<String>>,
    }

    impl Broker for FlakyBroker {
        fn publish<'a>(
            &'a self,
            delivery: Delivery,
            _local: &'a dyn LocalDelivery,
        ) -> BoxFuture<'a, Result<usize, ServerError>> {
            let mut calls = self.calls.lock().unwrap();
            *calls += 1;
            let result = if *calls == 1 {
                Err(ServerError::Broker("bus down".into()))
            } else {
                self.published
                    .lock()
                    .unwrap()
                    .push(delivery.frame.as_str().to_owned());
                Ok(0)
            };
            Box::pin(std::future::ready(result))
        }
    }

    #[tokio::test]
    async fn a_batch_whose_publish_fails_is_kept_in_order_for_the_next_flush() {
        let config = Config::from_settings(Settings {
            dev: Some(true),
            batch_max_messages: Some(2),
            batch_window_ms: Some(20),
            ..Settings::default()
        })
        .unwrap();
        let broker = Arc::new(FlakyBroker::default());
        let store = crate::store::open("sqlite::memory:").await.unwrap();
        let hub = Hub::new(config, broker.clone(), store);
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
        let order: Vec<&Value> = batch["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| &m["n"])
            .collect();
        assert_eq!(order, [&json!(1), &json!(2), &json!(3)]);
        // And nothing is left for the retry timer to send twice.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(broker.published.lock().unwrap().len(), 1);
    }
}
