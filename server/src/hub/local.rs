//! [`Local`]: this node's side of the fan-out seam, what the broker is started with. It
//! resolves a [`Target`] to this node's connections and queues the frame for each
//! (compressed at most once, see [`Outgoing`]), waits for the acknowledgements of
//! acknowledged deliveries, and performs [`NodeRequest`]s on its connections. It holds
//! the registry, rooms and topics it reads, and only a weak handle on the hub for the
//! requests that act like a client (joining a room): the broker that holds it never
//! keeps the hub alive.

use std::sync::{Arc, Weak};

use roomcast_protocol::ClientId;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tracing::warn;

use super::conn::{ConnHandle, Handed};
use super::outgoing::{Outgoing, send_outgoing};
use super::registry::Registry;
use super::rooms::Rooms;
use super::topics::Topics;
use super::{Hub, Inner, acks};
use crate::ServerError;
use crate::broker::{
    AckRequest, AckResults, Delivery, Frame, LocalFuture, LocalSide, NodeAnswer, NodeRequest,
    PresenceSnapshot, Reach, RoomPresence, Target,
};
use crate::metrics::Metrics;

/// This node's connections as the broker reaches them.
pub(crate) struct Local {
    pub(crate) registry: Arc<Registry>,
    pub(crate) rooms: Arc<Rooms>,
    pub(crate) topics: Arc<Topics>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) compression_threshold: usize,
    pub(crate) hub: Weak<Inner>,
}

impl Local {
    /// Calls `f` once for each local authenticated connection `target` names, but
    /// `except`. Holds map and room read locks while it runs: `f` must not block.
    /// Topic targets are resolved by [`Topics`], per subscriber.
    pub(crate) fn for_each_recipient(
        &self,
        target: &Target,
        except: Option<&ClientId>,
        mut f: impl FnMut(&Arc<ConnHandle>),
    ) {
        let mut send = |conn: &Arc<ConnHandle>| {
            if Some(&conn.id) != except {
                f(conn);
            }
        };
        match target {
            Target::All => self.registry.for_each_authenticated(&mut send),
            Target::Room(name) => self
                .rooms
                .for_each_member_of(std::slice::from_ref(name), send),
            Target::Rooms(names) => self.rooms.for_each_member_of(names, send),
            Target::Client(id) => {
                if let Some(conn) = self.registry.get(id)
                    && conn.user().is_some()
                {
                    send(&conn);
                }
            }
            Target::User(user) => self.registry.for_each_of_user(user, send),
            Target::Users(users) => {
                let mut unique: Vec<&roomcast_protocol::UserId> = users.iter().collect();
                unique.sort();
                unique.dedup();
                for user in unique {
                    self.registry.for_each_of_user(user, &mut send);
                }
            }
            Target::Role(role) => self.registry.for_each_authenticated(|conn| {
                if conn.user().is_some_and(|u| u.has_role(role)) {
                    send(conn);
                }
            }),
            Target::Topic(topic) => {
                for user in self.topics.subscribers(topic) {
                    self.registry.for_each_of_user(&user, &mut send);
                }
            }
        }
    }

    /// Queues `outgoing` for `conn`; `false` when the connection is gone or too slow.
    pub(crate) fn send_outgoing(&self, conn: &ConnHandle, outgoing: &Outgoing) -> bool {
        send_outgoing(&self.metrics, conn, outgoing)
    }

    /// A room's chat goes through the room's cursor: in sequence order, each once, with
    /// what is missing read from the store. A room without members here (its cursor not
    /// placed) has no one to deliver to.
    fn accept_chat(&self, name: &roomcast_protocol::RoomName, seq: u64, frame: Utf8Bytes) {
        let (Some(room), Ok(hub)) = (self.rooms.get(name), self.hub()) else {
            return;
        };
        let accepted = room
            .cursor
            .accept(seq, frame, |f| hub.deliver_chat(&room, f));
        if let Some((after, before)) = accepted.gap {
            hub.spawn_repair(room, after, Some(before), true);
        }
    }

    /// A stored private message or notification: the addressee's connections each get
    /// it once (their [`super::floor::Floor`] decides), anyone else in the target (the
    /// sender's other connections) as any frame. The addressee is among the reach's
    /// users when one of its connections got it, which is what marks it delivered.
    fn deliver_addressed(
        &self,
        delivery: &Delivery,
        addressee: &roomcast_protocol::UserId,
        seq: u64,
        frame: &Utf8Bytes,
    ) -> Reach {
        let mut reach = Reach::default();
        let mut handed = false;
        let outgoing = Outgoing::new(frame.clone(), self.compression_threshold);
        self.for_each_recipient(&delivery.target, delivery.except.as_ref(), |conn| {
            let got = if conn.user().is_some_and(|u| &u.user_id == addressee) {
                match conn.offer_addressed(seq, frame, |_| self.send_outgoing(conn, &outgoing)) {
                    Handed::Sent => {
                        handed = true;
                        true
                    }
                    Handed::Held => true,
                    Handed::No => false,
                }
            } else {
                self.send_outgoing(conn, &outgoing)
            };
            if got {
                reach.connections += 1;
            }
        });
        if handed {
            reach.users = 1;
            reach.user_ids.push(addressee.clone());
            // The node that hands it over marks it, right away: a later connect anywhere
            // then finds it delivered (CLUSTER §2.7).
            if let Ok(hub) = self.hub() {
                let (user, hub_) = (addressee.clone(), hub.clone());
                hub.spawn_background(async move { hub_.mark_delivered(&user, seq).await });
            }
        }
        reach
    }

    fn hub(&self) -> Result<Hub, ServerError> {
        self.hub
            .upgrade()
            .map(|inner| Hub { inner })
            .ok_or_else(|| ServerError::Broker("the hub is gone".into()))
    }
}

impl LocalSide for Local {
    fn deliver(&self, delivery: &Delivery) -> Reach {
        let mut reach = Reach::default();
        if let (Some(seq), Target::Room(name), Frame::Whole(frame)) =
            (delivery.sequence, &delivery.target, &delivery.frame)
        {
            self.accept_chat(name, seq, frame.clone());
            return reach;
        }
        if let (Some(seq), Some(addressee), Frame::Whole(frame)) =
            (delivery.sequence, &delivery.addressee, &delivery.frame)
        {
            return self.deliver_addressed(delivery, addressee, seq, frame);
        }
        match &delivery.frame {
            Frame::Whole(frame) => {
                let outgoing = Outgoing::new(frame.clone(), self.compression_threshold);
                self.for_each_recipient(&delivery.target, delivery.except.as_ref(), |conn| {
                    if self.send_outgoing(conn, &outgoing) {
                        reach.connections += 1;
                    }
                });
            }
            Frame::Topic(items) => {
                reach = self.topics.deliver(
                    items,
                    delivery.except.as_ref(),
                    &self.registry,
                    &self.metrics,
                    self.compression_threshold,
                );
            }
        }
        reach
    }

    fn deliver_with_ack(&self, delivery: &Delivery, ack: &AckRequest) -> LocalFuture<AckResults> {
        let Frame::Whole(frame) = &delivery.frame else {
            warn!("an acknowledged delivery must carry one whole frame");
            return Box::pin(std::future::ready(AckResults::new()));
        };
        let outgoing = Outgoing::new(frame.clone(), self.compression_threshold);
        let mut recipients = Vec::new();
        self.for_each_recipient(&delivery.target, delivery.except.as_ref(), |conn| {
            recipients.push(conn.clone());
        });
        let waits = recipients
            .into_iter()
            .map(|conn| acks::expect(&self.metrics, conn, &ack.correlation, &outgoing))
            .collect();
        Box::pin(acks::collect(waits, ack.deadline))
    }

    fn handle(&self, request: NodeRequest) -> LocalFuture<Result<NodeAnswer, ServerError>> {
        let hub = self.hub();
        Box::pin(async move { hub?.answer(request).await })
    }

    fn presence_snapshot(&self) -> PresenceSnapshot {
        let rooms = self
            .rooms
            .all()
            .into_iter()
            .filter(|room| room.has_members())
            .map(|room| {
                let members = room.members();
                RoomPresence {
                    name: room.name.clone(),
                    users: members.all_users(),
                    connections: members.conns.len(),
                }
            })
            .collect();
        let mut connections = Vec::new();
        self.registry
            .for_each_authenticated(|conn| connections.push(conn.info()));
        PresenceSnapshot { rooms, connections }
    }

    fn announce_leaves(
        &self,
        room: roomcast_protocol::RoomName,
        users: Vec<roomcast_protocol::User>,
        elsewhere_only: bool,
    ) -> LocalFuture<()> {
        let hub = self.hub();
        Box::pin(async move {
            if let Ok(hub) = hub {
                hub.announce_leaves(&room, users, elsewhere_only).await;
            }
        })
    }

    fn announce_joins(
        &self,
        room: roomcast_protocol::RoomName,
        users: Vec<roomcast_protocol::User>,
    ) -> LocalFuture<()> {
        let hub = self.hub();
        Box::pin(async move {
            if let Ok(hub) = hub {
                hub.announce_joins(&room, users).await;
            }
        })
    }

    fn draining(&self) -> bool {
        self.hub()
            .is_ok_and(|hub| hub.shutdown_token().is_cancelled())
    }

    fn check_positions(&self) -> LocalFuture<()> {
        let hub = self.hub();
        Box::pin(async move {
            if let Ok(hub) = hub {
                hub.check_positions().await;
            }
        })
    }

    fn check_users(&self) -> LocalFuture<()> {
        let hub = self.hub();
        Box::pin(async move {
            if let Ok(hub) = hub {
                hub.after_resubscribe().await;
            }
        })
    }
}
