//! Acknowledged delivery (CONTRACT §7): the message goes out once, serialized once, with
//! `"_ack":true,"_messageId"`; each recipient's waiter sits in that connection's state
//! and resolves on its `ack`, on its disconnect (the waiter is dropped with the
//! connection's state) or on the timeout (the waiter removes itself). Nothing outlives
//! the call.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use roomcast_protocol::{ClientId, ErrorCode};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::Hub;
use super::conn::ConnHandle;
use super::outgoing::{Outgoing, send_outgoing};
use crate::ServerError;
use crate::broker::{AckRequest, AckResults, Delivery, Target};
use crate::clock::now_ms;
use crate::metrics::Metrics;
use crate::model::{AckOutcome, app_fields};

/// Longest accepted ack timeout.
pub(crate) const MAX_ACK_TIMEOUT: Duration = Duration::from_secs(300);

impl Hub {
    /// Sends an application message to one client and waits for its `ack`.
    ///
    /// # Errors
    /// `not_found` for an unknown client, `bad_request` for a bad message or timeout.
    pub async fn send_with_ack(
        &self,
        id: &ClientId,
        message: &Value,
        timeout: Option<Duration>,
    ) -> Result<AckOutcome, ServerError> {
        let mut results = self
            .deliver_with_ack(Target::Client(id.clone()), message, timeout)
            .await?;
        results.remove(id).ok_or_else(|| {
            ServerError::request(
                ErrorCode::NotFound,
                format!("no authenticated connection {id}"),
            )
        })
    }

    /// Publishes an application message to `target` and waits for every recipient's
    /// `ack`, on every node.
    ///
    /// # Errors
    /// `bad_request` for a bad message or timeout; broker failures.
    pub async fn broadcast_with_ack(
        &self,
        target: &Target,
        message: &Value,
        timeout: Option<Duration>,
    ) -> Result<AckResults, ServerError> {
        self.deliver_with_ack(target.clone(), message, timeout)
            .await
    }

    async fn deliver_with_ack(
        &self,
        target: Target,
        message: &Value,
        timeout: Option<Duration>,
    ) -> Result<AckResults, ServerError> {
        let timeout = timeout.unwrap_or(self.config().timeouts.ack);
        if timeout.is_zero() || timeout > MAX_ACK_TIMEOUT {
            return Err(ServerError::request(
                ErrorCode::BadRequest,
                format!(
                    "`timeoutMs` must be between 1 and {}",
                    MAX_ACK_TIMEOUT.as_millis()
                ),
            ));
        }
        let mut fields = app_fields(message)?.clone();
        // Unique across every node: the id is what an `ack` names.
        let correlation = uuid::Uuid::new_v4().simple().to_string();
        fields.insert("_ack".into(), Value::Bool(true));
        fields.insert("_messageId".into(), Value::String(correlation.clone()));
        let frame = Utf8Bytes::from(Value::Object(fields).to_string());
        let deadline = now_ms() + u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self.inner
            .broker
            .publish_with_ack(
                Delivery::new(target, frame),
                AckRequest {
                    correlation,
                    deadline,
                },
            )
            .await
    }

    /// A client's `ack`; returns whether a sender was waiting for it (a late or unknown
    /// ack is harmless).
    pub(crate) fn on_ack(&self, conn: &ConnHandle, message_id: &str) -> bool {
        let waiter = conn.state().acks.remove(message_id);
        waiter.is_some_and(|tx| tx.send(()).is_ok())
    }
}

/// One recipient's pending acknowledgement.
pub(crate) struct Wait {
    conn: Arc<ConnHandle>,
    correlation: String,
    /// `None` when the message could not be queued.
    rx: Option<oneshot::Receiver<()>>,
}

/// Registers the waiter, then queues the message.
pub(crate) fn expect(
    metrics: &Metrics,
    conn: Arc<ConnHandle>,
    correlation: &str,
    outgoing: &Outgoing,
) -> Wait {
    let (tx, rx) = oneshot::channel();
    let registered = {
        let mut state = conn.state();
        if state.closed {
            false
        } else {
            state.acks.insert(correlation.to_owned(), tx);
            true
        }
    };
    let rx = if registered && send_outgoing(metrics, &conn, outgoing) {
        Some(rx)
    } else {
        conn.state().acks.remove(correlation);
        None
    };
    Wait {
        conn,
        correlation: correlation.to_owned(),
        rx,
    }
}

/// Waits for every recipient until `deadline` (wall clock, ms) at the latest.
pub(crate) async fn collect(waits: Vec<Wait>, deadline: u64) -> AckResults {
    // Measured once against the wall clock, then kept on tokio's clock, so paused-time
    // tests and a clock step during the wait both behave.
    let until = Instant::now() + Duration::from_millis(deadline.saturating_sub(now_ms()));
    let waits = waits.into_iter().map(|wait| async move {
        let outcome = match wait.rx {
            None => AckOutcome::Disconnected,
            Some(rx) => match tokio::time::timeout_at(until, rx).await {
                Ok(Ok(())) => AckOutcome::Success,
                Ok(Err(_)) => AckOutcome::Disconnected,
                Err(_) => {
                    wait.conn.state().acks.remove(&wait.correlation);
                    AckOutcome::Timeout
                }
            },
        };
        (wait.conn.id.clone(), outcome)
    });
    join_all(waits).await.into_iter().collect()
}
