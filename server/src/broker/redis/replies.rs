//! [`Replies`]: the requests this node is waiting on answers for. A request id is
//! registered *before* its message is published (an answer may come back before
//! `PUBLISH` returns its receiver count), and the asker then collects as many replies as
//! `PUBLISH` said subscribers received the message, or what came by its deadline.

use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::mpsc;

use super::wire::Reply;

/// Waiting requests by id.
#[derive(Debug, Default)]
pub(super) struct Replies {
    waiting: DashMap<String, mpsc::UnboundedSender<(String, Reply)>>,
}

/// One waiting request; dropping it stops listening.
pub(super) struct Pending<'a> {
    replies: &'a Replies,
    id: String,
    rx: mpsc::UnboundedReceiver<(String, Reply)>,
}

impl Replies {
    /// Starts waiting for replies to a fresh request id.
    pub(super) fn open(&self) -> Pending<'_> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let (tx, rx) = mpsc::unbounded_channel();
        self.waiting.insert(id.clone(), tx);
        Pending {
            replies: self,
            id,
            rx,
        }
    }

    /// Hands a reply from node `from` to its request; a late one (its asker gave up) is
    /// dropped.
    pub(super) fn deliver(&self, id: &str, from: String, reply: Reply) {
        if let Some(tx) = self.waiting.get(id) {
            let _ = tx.send((from, reply));
        }
    }
}

impl Pending<'_> {
    /// The request id to put in the message.
    pub(super) fn id(&self) -> &str {
        &self.id
    }

    /// The first `expected` replies, or those that came within `wait`, with the node
    /// each came from.
    pub(super) async fn collect(mut self, expected: usize, wait: Duration) -> Vec<(String, Reply)> {
        let mut got = Vec::with_capacity(expected);
        let deadline = tokio::time::Instant::now() + wait;
        while got.len() < expected {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(reply)) => got.push(reply),
                Ok(None) | Err(_) => break,
            }
        }
        got
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.replies.waiting.remove(&self.id);
    }
}
