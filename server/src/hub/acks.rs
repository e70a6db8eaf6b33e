//! Acknowledged delivery (CONTRACT §7): the message goes out once, serialized once, with
//! `"_ack":true,"_messageId"`; each recipient's waiter sits in that connection's state
//! and resolves on its `ack`, on its disconnect (the waiter is dropped with the
//! connection's state) or on the timeout (the waiter removes itself). Nothing outlives
//! the call.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use roomcast_protocol::{ClientId, ErrorCode};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::{ConnHandle, Hub, Outgoing};
use crate::ServerError;
use crate::broker::Target;

/// What the sender learns about one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOutcome {
    /// The client acknowledged the message.
    Success,
    /// No `ack` within the timeout.
    Timeout,
    /// The client went away first (or could not be sent the message).
    Disconnected,
}

impl Serialize for AckOutcome {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        match self {
            Self::Success => map.serialize_entry("success", &true)?,
            Self::Timeout => {
                map.serialize_entry("success", &false)?;
                map.serialize_entry("error", "timeout")?;
            }
            Self::Disconnected => {
                map.serialize_entry("success", &false)?;
                map.serialize_entry("error", "disconnected")?;
            }
        }
        map.end()
    }
}

/// Longest accepted ack timeout.
pub const MAX_ACK_TIMEOUT: Duration = Duration::from_secs(300);

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
        let conn = self.authenticated_connection(id)?;
        let mut results = self.deliver_with_ack(vec![conn], message, timeout).await?;
        Ok(results.remove(id).unwrap_or(AckOutcome::Disconnected))
    }

    /// Publishes an application message to `target` and waits for every recipient's
    /// `ack` (this node's recipients: cross-node acks come with the cluster broker).
    ///
    /// # Errors
    /// `bad_request` for a bad message or timeout.
    pub async fn broadcast_with_ack(
        &self,
        target: &Target,
        message: &Value,
        timeout: Option<Duration>,
    ) -> Result<BTreeMap<ClientId, AckOutcome>, ServerError> {
        let mut recipients = Vec::new();
        self.for_each_recipient(target, None, |conn| recipients.push(conn.clone()));
        self.deliver_with_ack(recipients, message, timeout).await
    }

    async fn deliver_with_ack(
        &self,
        recipients: Vec<Arc<ConnHandle>>,
        message: &Value,
        timeout: Option<Duration>,
    ) -> Result<BTreeMap<ClientId, AckOutcome>, ServerError> {
        let timeout = timeout.unwrap_or(self.config().ack_timeout);
        if timeout.is_zero() || timeout > MAX_ACK_TIMEOUT {
            return Err(ServerError::request(
                ErrorCode::BadRequest,
                format!(
                    "`timeoutMs` must be between 1 and {}",
                    MAX_ACK_TIMEOUT.as_millis()
                ),
            ));
        }
        let mut fields = super::app_fields(message)?.clone();
        // Unique cluster-wide, not just on this node: acks may come back through any node.
        let message_id = uuid::Uuid::new_v4().simple().to_string();
        fields.insert("_ack".into(), Value::Bool(true));
        fields.insert("_messageId".into(), Value::String(message_id.clone()));
        let outgoing = Outgoing::new(
            Utf8Bytes::from(Value::Object(fields).to_string()),
            self.config().compression_threshold,
        );
        let deadline = Instant::now() + timeout;
        let waits = recipients.into_iter().map(|conn| {
            let waiter = self.expect_ack(&conn, &message_id, &outgoing);
            let message_id = message_id.clone();
            async move {
                let outcome = match waiter {
                    None => AckOutcome::Disconnected,
                    Some(rx) => match tokio::time::timeout_at(deadline, rx).await {
                        Ok(Ok(())) => AckOutcome::Success,
                        Ok(Err(_)) => AckOutcome::Disconnected,
                        Err(_) => {
                            conn.state().acks.remove(&message_id);
                            AckOutcome::Timeout
                        }
                    },
                };
                (conn.id.clone(), outcome)
            }
        });
        Ok(join_all(waits).await.into_iter().collect())
    }

    /// Registers the waiter, then queues the message; `None` when the connection is gone
    /// or its queue refused the message.
    fn expect_ack(
        &self,
        conn: &ConnHandle,
        message_id: &str,
        outgoing: &Outgoing,
    ) -> Option<oneshot::Receiver<()>> {
        let (tx, rx) = oneshot::channel();
        {
            let mut state = conn.state();
            if state.closed {
                return None;
            }
            state.acks.insert(message_id.to_owned(), tx);
        }
        if self.send_outgoing(conn, outgoing) {
            Some(rx)
        } else {
            conn.state().acks.remove(message_id);
            None
        }
    }

    /// A client's `ack`; returns whether a sender was waiting for it (a late or unknown
    /// ack is harmless).
    pub(crate) fn on_ack(&self, conn: &ConnHandle, message_id: &str) -> bool {
        let waiter = conn.state().acks.remove(message_id);
        waiter.is_some_and(|tx| tx.send(()).is_ok())
    }
}
