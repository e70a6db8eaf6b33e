//! [`ConnHandle`]: the hub's view of one connection. The connection task owns the socket;
//! everyone else reaches it through this handle: a send queue bounded in bytes
//! ([`Outbox`]) and a one-shot close signal.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use roomcast_protocol::{ClientId, CloseCode, RoomName, Timestamp, User};
use serde_json::Value;
use tokio::sync::{Notify, oneshot};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::floor::{Floor, Offer, Taken};
use super::outbox::{Outbox, SendError, TopicUpdate};
use crate::model::ConnectionInfo;

/// Mutable per-connection state shared with the hub and the HTTP API.
#[derive(Debug, Default)]
pub(crate) struct ConnState {
    /// The authenticated user, once authenticated.
    pub user: Option<Arc<User>>,
    /// Token expiry (ms), if the token expires.
    pub expires_at: Option<Timestamp>,
    /// Rooms the connection is in.
    pub rooms: BTreeSet<RoomName>,
    /// Application data attached through the API.
    pub data: Value,
    /// Set once the connection is going away; nothing joins it after that.
    pub closed: bool,
    /// Acknowledgements awaited from this connection, by `_messageId`. Cleared (which
    /// tells every waiter "disconnected") when the connection goes.
    pub acks: HashMap<String, oneshot::Sender<()>>,
}

/// The hub's handle on one connection.
#[derive(Debug)]
pub struct ConnHandle {
    pub(crate) id: ClientId,
    pub(crate) remote: SocketAddr,
    pub(crate) connected_at: Timestamp,
    pub(crate) compress: bool,
    outbox: Outbox,
    close_tx: Mutex<Option<oneshot::Sender<Option<CloseCode>>>>,
    /// Wakes the reader when someone else closes the connection, so a writer stuck on a
    /// client that stopped reading does not keep the connection registered.
    closing: Notify,
    state: Mutex<ConnState>,
    /// Its place in its user's sequence of private messages and notifications. A lock
    /// of its own, held while the frames it passes are queued so they keep their order.
    floor: Mutex<Floor>,
    pub(crate) messages_in: AtomicU64,
    pub(crate) messages_out: AtomicU64,
}

/// What became of an addressed frame offered to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handed {
    /// Queued now.
    Sent,
    /// Waiting for the connection's catch-up.
    Held,
    /// Not for this connection (it has it, or it is going).
    No,
}

impl ConnHandle {
    pub(crate) fn new(
        id: ClientId,
        remote: SocketAddr,
        compress: bool,
        connected_at: Timestamp,
        send_queue_bytes: usize,
        close_tx: oneshot::Sender<Option<CloseCode>>,
    ) -> Self {
        Self {
            id,
            remote,
            connected_at,
            compress,
            outbox: Outbox::new(send_queue_bytes),
            close_tx: Mutex::new(Some(close_tx)),
            closing: Notify::new(),
            state: Mutex::new(ConnState {
                data: Value::Null,
                ..ConnState::default()
            }),
            floor: Mutex::new(Floor::default()),
            messages_in: AtomicU64::new(0),
            messages_out: AtomicU64::new(0),
        }
    }

    /// The connection's id.
    pub fn id(&self) -> &ClientId {
        &self.id
    }

    /// Queues a frame without waiting. A frame that does not fit means the client is not
    /// reading: it is closed with 4029 rather than slowing down the sender.
    pub(crate) fn send(&self, frame: &Utf8Bytes) -> Result<(), SendError> {
        self.closing_on_overflow(self.outbox.push(frame.clone()))
    }

    /// Queues a topic frame, or merges it into the one of the same topic still waiting
    /// (see [`Outbox::push_topic`]); returns how many waiting items it replaced. Closes
    /// with 4029 as [`Self::send`] does.
    pub(crate) fn send_topic(&self, update: TopicUpdate<'_>) -> Result<usize, SendError> {
        self.closing_on_overflow(self.outbox.push_topic(update))
    }

    fn closing_on_overflow<T>(&self, sent: Result<T, SendError>) -> Result<T, SendError> {
        if matches!(sent, Err(SendError::Overflow)) {
            self.close(CloseCode::SlowConsumer);
        }
        sent
    }

    /// The send queue, which the connection's writer drains.
    pub(crate) fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Asks the connection task to close with `code`; later calls are no-ops.
    pub(crate) fn close(&self, code: CloseCode) {
        self.signal_writer(Some(code));
        self.closing.notify_one();
    }

    /// Resolves once [`Self::close`] was called (immediately if it already was).
    pub(crate) async fn closed(&self) {
        self.closing.notified().await;
    }

    /// Tells the writer the reader is done, without a close code of our own (the client
    /// closed, or the socket failed); no-op after [`Self::close`].
    pub(crate) fn stop_writer(&self) {
        self.signal_writer(None);
    }

    fn signal_writer(&self, signal: Option<CloseCode>) {
        if let Some(tx) = lock(&self.close_tx).take() {
            let _ = tx.send(signal);
        }
    }

    /// The state lock. Never held across an `.await`.
    pub(crate) fn state(&self) -> MutexGuard<'_, ConnState> {
        lock(&self.state)
    }

    /// Offers a live private message or notification numbered `seq` in this
    /// connection's user's sequence; `send` queues it if the connection does not have it
    /// yet. Held frames go out with the connection's catch-up (which marks them
    /// delivered then, not now: the connection may go first).
    pub(crate) fn offer_addressed(
        &self,
        seq: u64,
        frame: &Utf8Bytes,
        send: impl FnOnce(&Utf8Bytes) -> bool,
    ) -> Handed {
        let mut floor = lock(&self.floor);
        match floor.offer(seq, frame) {
            Offer::Send if send(frame) => Handed::Sent,
            Offer::Send | Offer::Drop => Handed::No,
            Offer::Held => Handed::Held,
            Offer::Overflow => {
                drop(floor);
                self.close(CloseCode::SlowConsumer);
                Handed::No
            }
        }
    }

    /// Hands over what the store released for this connection's user (see
    /// [`Floor::take`]). `send` queues each frame, in number order; returns the numbers
    /// sent.
    pub(crate) fn take_addressed(
        &self,
        taken: Vec<(u64, Utf8Bytes)>,
        how: Taken,
        mut send: impl FnMut(&Utf8Bytes),
    ) -> Vec<u64> {
        let mut floor = lock(&self.floor);
        floor
            .take(taken, how)
            .into_iter()
            .map(|(seq, frame)| {
                send(&frame);
                seq
            })
            .collect()
    }

    /// The authenticated user, if any.
    pub fn user(&self) -> Option<Arc<User>> {
        self.state().user.clone()
    }

    /// What `/api/connections` shows about this connection.
    pub fn info(&self) -> ConnectionInfo {
        let state = self.state();
        ConnectionInfo {
            client_id: self.id.clone(),
            user: state.user.as_deref().cloned(),
            authenticated: state.user.is_some(),
            rooms: state.rooms.iter().cloned().collect(),
            data: state.data.clone(),
            remote_addr: self.remote.to_string(),
            connected_at: self.connected_at,
            expires_at: state.expires_at,
            compress: self.compress,
            messages_in: self.messages_in.load(Ordering::Relaxed),
            messages_out: self.messages_out.load(Ordering::Relaxed),
        }
    }
}

/// Locks a mutex, recovering from poisoning: the data stays consistent because no code
/// path panics while holding these locks, and one panicked task must not wedge the hub.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
