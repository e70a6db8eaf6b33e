//! [`Outgoing`]: one frame on its way to this node's connections, and the one place a
//! frame enters a connection's queue ([`send_outgoing`], [`send_topic`]), where a frame
//! that did not fit is counted.

use std::cell::OnceCell;

use roomcast_protocol::ServerMessage;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tracing::warn;

use super::conn::ConnHandle;
use super::frame;
use super::outbox::{SendError, TopicUpdate};
use crate::clock::now_ms;
use crate::metrics::Metrics;

/// Queues `outgoing` for `conn`, counting a frame that did not fit as a drop.
pub(crate) fn send_outgoing(metrics: &Metrics, conn: &ConnHandle, outgoing: &Outgoing) -> bool {
    counted(metrics, conn, conn.send(outgoing.for_conn(conn))).is_some()
}

/// Queues a topic frame for `conn` (or merges it into the one still waiting there),
/// counting the waiting items it replaced and, as [`send_outgoing`], a drop.
pub(crate) fn send_topic(metrics: &Metrics, conn: &ConnHandle, update: TopicUpdate<'_>) -> bool {
    counted(metrics, conn, conn.send_topic(update)).is_some_and(|superseded| {
        metrics.topic_items_superseded.inc_by(superseded as u64);
        true
    })
}

/// What a refused frame means for the counters: a drop, and the first one of a
/// connection a slow-consumer close.
fn counted<T>(metrics: &Metrics, conn: &ConnHandle, sent: Result<T, SendError>) -> Option<T> {
    match sent {
        Ok(sent) => Some(sent),
        Err(SendError::Overflow) => {
            metrics.queue_drops.inc();
            metrics.slow_consumer_closes.inc();
            warn!(client = %conn.id, "send queue full, closing as slow consumer");
            None
        }
        Err(SendError::Full) => {
            metrics.queue_drops.inc();
            None
        }
        Err(SendError::Closed) => None,
    }
}

/// One frame on its way to several connections: compressed at most once, and only if a
/// recipient that asked for compression gets it (CONTRACT §6).
pub(crate) struct Outgoing {
    plain: Utf8Bytes,
    threshold: usize,
    compressed: OnceCell<Utf8Bytes>,
}

impl Outgoing {
    pub(crate) fn new(plain: Utf8Bytes, threshold: usize) -> Self {
        Self {
            plain,
            threshold,
            compressed: OnceCell::new(),
        }
    }

    /// What `conn` gets: the `compressed` form when it asked and the frame is big enough.
    pub(crate) fn for_conn(&self, conn: &ConnHandle) -> &Utf8Bytes {
        if conn.compress && self.plain.len() >= self.threshold {
            self.compressed.get_or_init(|| {
                frame(&ServerMessage::Compressed {
                    data: roomcast_protocol::codec::deflate(self.plain.as_str()),
                    timestamp: now_ms(),
                })
            })
        } else {
            &self.plain
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use tokio::sync::oneshot;

    use roomcast_protocol::ClientId;

    use super::*;

    fn conn(compress: bool) -> ConnHandle {
        let (close_tx, _close_rx) = oneshot::channel();
        let id = ClientId::new(uuid::Uuid::new_v4().simple().to_string()).unwrap();
        ConnHandle::new(
            id,
            SocketAddr::from(([127, 0, 0, 1], 1)),
            compress,
            0,
            1 << 20,
            close_tx,
        )
    }

    #[test]
    fn a_frame_is_compressed_once_for_all_recipients_that_asked() {
        let big = Utf8Bytes::from(format!("{{\"type\":\"t\",\"x\":\"{}\"}}", "a".repeat(2000)));
        let outgoing = Outgoing::new(big.clone(), 1024);
        let (gzip_1, gzip_2, plain) = (conn(true), conn(true), conn(false));
        let first = outgoing.for_conn(&gzip_1);
        let second = outgoing.for_conn(&gzip_2);
        assert!(
            first.as_str().starts_with("{\"type\":\"compressed\""),
            "{first}"
        );
        // The same bytes, not an equal copy: the gzip ran once.
        assert_eq!(first.as_str().as_ptr(), second.as_str().as_ptr());
        assert_eq!(outgoing.for_conn(&plain), &big);
        let small = Outgoing::new(Utf8Bytes::from("{\"type\":\"t\"}"), 1024);
        assert_eq!(small.for_conn(&gzip_1).as_str(), "{\"type\":\"t\"}");
    }
}
