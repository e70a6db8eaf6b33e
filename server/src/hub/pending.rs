//! What waits for a user (CLUSTER §2.7): the private messages and notifications no
//! connection of the user got, claimed from the store and handed over at the user's next
//! `auth_ok`, again after a failed catch-up, and on every node after any node subscribes
//! to the bus again; and the marking of what was handed over. Each connection's
//! [`super::floor::Floor`] decides what it still needs.

use std::sync::Arc;
use std::time::Duration;

use roomcast_protocol::{MessageId, User, UserId};
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tracing::warn;

use super::floor::Taken;
use super::messaging::{notification_message, private_message};
use super::outgoing::{self, Outgoing};
use super::repair::sequence_of;
use super::{ConnHandle, Hub, frame};
use crate::broker::NodeRequest;
use crate::store::sequence_id;

/// Which kind of addressed message is marked delivered.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    Private,
    Notification,
}

impl Hub {
    /// Marks message `seq` of `user`'s sequence delivered, whichever kind it is (the two
    /// kinds share the sequence, so one of the two statements changes nothing).
    pub(super) async fn mark_delivered(&self, user: &UserId, seq: u64) {
        let id = sequence_id(seq);
        self.mark(user, &id, Kind::Private).await;
        self.mark(user, &id, Kind::Notification).await;
    }

    pub(super) async fn mark(&self, addressee: &UserId, id: &MessageId, kind: Kind) {
        let store = &self.inner.store;
        let marked = match kind {
            Kind::Private => store.mark_private_delivered(addressee, id).await,
            Kind::Notification => store.mark_notification_delivered(addressee, id).await,
        };
        if let Err(err) = marked {
            // Then the next connect hands it over once more, to a new connection.
            warn!(user = %addressee, %id, cause = %err, "delivered message not marked delivered");
        }
    }

    /// Right after `auth_ok`: what waited for this user (private messages and
    /// notifications), oldest first, merged with live ones that arrived meanwhile;
    /// called during admission, under the user's lock. The live ones it sends are marked
    /// delivered now that they are queued; if the store failed, the user's pending
    /// messages are tried again shortly.
    pub(super) async fn deliver_pending(&self, conn: &Arc<ConnHandle>, user: &User) {
        let (taken, failed) = self.take_pending(&user.user_id).await;
        let claimed: std::collections::HashSet<u64> = taken.iter().map(|(seq, _)| *seq).collect();
        let threshold = self.config().features.compression_threshold;
        let sent = conn.take_addressed(taken, Taken::Connect, |frame| {
            outgoing::send_outgoing(
                &self.inner.metrics,
                conn,
                &Outgoing::new(frame.clone(), threshold),
            );
        });
        let held: Vec<u64> = sent
            .into_iter()
            .filter(|seq| !claimed.contains(seq))
            .collect();
        if !held.is_empty() {
            let (hub, user) = (self.clone(), user.user_id.clone());
            self.spawn_background(async move {
                for seq in held {
                    hub.mark_delivered(&user, seq).await;
                }
            });
        }
        if failed {
            let (hub, user) = (self.clone(), user.user_id.clone());
            self.spawn_background(async move { hub.retry_pending(&user).await });
        }
    }

    /// A connect-time catch-up failed (the store): tries the user's pending messages
    /// again, a few times with a growing pause, for its connections here.
    async fn retry_pending(&self, user: &UserId) {
        for attempt in 0..5_u32 {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(500 << attempt)) => {}
                () = self.shutdown_token().cancelled() => return,
            }
            let _turn = self.inner.user_locks.lock(user).await;
            if self.inner.registry.user_connections(user) == 0 {
                return;
            }
            let (taken, failed) = self.take_pending(user).await;
            self.hand_to_connections(user, &taken);
            if !failed {
                return;
            }
        }
    }

    /// Hands claimed frames to every connection of `user` here, past each one's floor.
    fn hand_to_connections(&self, user: &UserId, taken: &[(u64, Utf8Bytes)]) {
        if taken.is_empty() {
            return;
        }
        let threshold = self.config().features.compression_threshold;
        self.inner.registry.for_each_of_user(user, |conn| {
            conn.take_addressed(taken.to_vec(), Taken::Check, |frame| {
                outgoing::send_outgoing(
                    &self.inner.metrics,
                    conn,
                    &Outgoing::new(frame.clone(), threshold),
                );
            });
        });
    }

    /// This node hears the bus again: what it published while it could not reached no
    /// other node, and what others published did not reach it. Every node (this one
    /// included) checks its users.
    pub(crate) async fn after_resubscribe(&self) {
        // A request is answered on this node too.
        if let Err(err) = self.inner.broker.request(NodeRequest::CheckUsers).await {
            warn!(cause = %err, "other nodes not asked to check their users");
            self.check_users().await;
        }
    }

    /// After the bus may have lost messages (the broker resubscribed): hands each user
    /// with connections here what is still pending for it, so that a private message
    /// sent while this node could not hear the bus arrives late rather than at the next
    /// connect. One run at a time: a call while one runs has it run once more after
    /// (a second outage during the first check is not missed). A store failure ends a
    /// run.
    pub(crate) async fn check_users(&self) {
        use std::sync::atomic::Ordering;
        let (running, again) = (&self.inner.checking_users, &self.inner.check_users_again);
        again.store(true, Ordering::Release);
        loop {
            if running.swap(true, Ordering::AcqRel) {
                return;
            }
            while again.swap(false, Ordering::AcqRel) {
                self.check_users_once().await;
            }
            running.store(false, Ordering::Release);
            // A call between the last pass and the store above found the run busy.
            if !again.load(Ordering::Acquire) {
                return;
            }
        }
    }

    async fn check_users_once(&self) {
        for user in self.inner.registry.user_ids() {
            let _turn = self.inner.user_locks.lock(&user).await;
            // Claimed is delivered: claim only for a user still here.
            if self.inner.registry.user_connections(&user) == 0 {
                continue;
            }
            let (taken, failed) = self.take_pending(&user).await;
            if !taken.is_empty() {
                tracing::info!(%user, count = taken.len(), "pending messages handed over after the bus came back");
            }
            self.hand_to_connections(&user, &taken);
            if failed {
                return;
            }
        }
    }

    /// Claims what is pending for `user` in the store, both kinds, as numbered frames,
    /// and whether the store failed (logged) for either kind.
    async fn take_pending(&self, user: &UserId) -> (Vec<(u64, Utf8Bytes)>, bool) {
        let store = &self.inner.store;
        let mut pending = Vec::new();
        let mut failed = false;
        match store.take_pending_private(user).await {
            Ok(items) => pending.extend(items.into_iter().filter_map(|p| {
                let seq = sequence_of(&p.id)?;
                Some((seq, frame(&private_message(p))))
            })),
            Err(err) => {
                warn!(%user, cause = %err, "pending private messages not loaded");
                failed = true;
            }
        }
        match store.take_pending_notifications(user).await {
            Ok(items) => pending.extend(items.into_iter().filter_map(|n| {
                let seq = sequence_of(&n.id)?;
                Some((seq, frame(&notification_message(n))))
            })),
            Err(err) => {
                warn!(%user, cause = %err, "pending notifications not loaded");
                failed = true;
            }
        }
        (pending, failed)
    }
}
