//! The fan-out seam. Every delivery of every kind, and every operation on a connection
//! that may live on another node, goes through the [`Broker`]: nothing else reaches a
//! connection. A broker is built once and [started](Broker::start) with this node's
//! [`LocalSide`], the part of the hub that resolves a target to local connections and
//! answers [`NodeRequest`]s. The default [`LocalBroker`] is a single node: publishing is
//! delivering locally. A cluster broker publishes to its bus and hands what its own
//! subscriber task receives to the same local side; it holds the local side, never the
//! hub, so there is no reference cycle to break at shutdown.
//!
//! Everything that crosses the seam is plain data a bus can carry: targets, client ids,
//! and frames as the bytes they were serialized to once ([`Delivery`]).

mod local;
mod redis;

use std::collections::BTreeMap;

use futures_util::future::BoxFuture;
use roomcast_protocol::{ClientId, JoinReply, RoomName, Timestamp, UserId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use tokio_tungstenite::tungstenite::Utf8Bytes;

pub use self::local::LocalBroker;
pub use self::redis::{RedisBroker, RedisOptions};
use crate::ServerError;
pub use crate::model::BrokerHealth;
use crate::model::{AckOutcome, ConnectionInfo, RoomOptions, Stats};

/// Who a delivery is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// Every authenticated connection.
    All,
    /// Members of a room.
    Room(RoomName),
    /// Members of any of these rooms, each connection once.
    Rooms(Vec<RoomName>),
    /// One authenticated connection.
    Client(ClientId),
    /// Every connection of a user.
    User(UserId),
    /// Every connection of any of these users, each once.
    Users(Vec<UserId>),
    /// Every connection whose user has this role.
    Role(String),
    /// Every connection of the users subscribed to this topic; with a
    /// [`Frame::Topic`], each gets only the items its keys select.
    Topic(String),
}

/// What the recipients of a delivery get.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// The same JSON text for every recipient, never re-serialized per connection.
    Whole(Utf8Bytes),
    /// Topic items, filtered per subscriber on the receiving node; subscribers with the
    /// same selection share one frame.
    Topic(TopicItems),
}

/// A topic publish as it crosses the seam: the items stay the raw JSON they arrived as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicItems {
    /// The message `type` subscribers get.
    pub kind: String,
    /// The topic.
    pub topic: String,
    /// Each item's `key` and its raw JSON object.
    pub items: Vec<(String, String)>,
    /// When it was published (ms).
    pub timestamp: Timestamp,
}

/// One message for a target.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The recipients.
    pub target: Target,
    /// A connection to skip (e.g. the one a `user_join` is about).
    pub except: Option<ClientId>,
    /// The message.
    pub frame: Frame,
    /// For a room's chat: its number in the room's sequence (its id). Every node
    /// delivers a room's chats in this order, each once, reading what the bus lost from
    /// the store. With an [`Self::addressee`]: its number in that user's sequence.
    pub sequence: Option<u64>,
    /// For a stored private message or notification: the user it is for, whose
    /// sequence [`Self::sequence`] counts. Each of that user's connections gets it at
    /// most once, whether live or as pending at connect (CLUSTER §2.7).
    pub addressee: Option<UserId>,
}

impl Delivery {
    /// A delivery of one ready frame.
    pub fn new(target: Target, frame: Utf8Bytes) -> Self {
        Self {
            target,
            except: None,
            frame: Frame::Whole(frame),
            sequence: None,
            addressee: None,
        }
    }

    /// A stored private message or notification for `addressee`, number `sequence` of
    /// the user's sequence, to `target` (the addressee and maybe others: the sender's
    /// other connections).
    pub fn addressed(target: Target, addressee: UserId, sequence: u64, frame: Utf8Bytes) -> Self {
        Self {
            sequence: Some(sequence),
            addressee: Some(addressee),
            ..Self::new(target, frame)
        }
    }

    /// A room's chat, number `sequence` of the room.
    pub fn chat(room: RoomName, sequence: u64, frame: Utf8Bytes) -> Self {
        Self {
            sequence: Some(sequence),
            ..Self::new(Target::Room(room), frame)
        }
    }

    /// The same delivery, skipping `client`.
    #[must_use]
    pub fn except(mut self, client: ClientId) -> Self {
        self.except = Some(client);
        self
    }
}

/// The acknowledgement half of an acknowledged delivery: its frame carries
/// `"_ack":true,"_messageId":<correlation>`, and every recipient's outcome is known by
/// `deadline` (wall clock, ms), on whichever node it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckRequest {
    /// The `_messageId`: unique across the cluster.
    pub correlation: String,
    /// When waiting ends (ms since the epoch).
    pub deadline: Timestamp,
}

/// How many a delivery reached (on this node, or on every node for
/// [`Broker::publish_counted`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reach {
    /// Connections that got the frame.
    pub connections: usize,
    /// For topics: subscribed users with at least one selected item.
    pub users: usize,
    /// For topics: those users, so that a user reached on two nodes counts once.
    #[serde(default)]
    pub user_ids: Vec<UserId>,
}

/// Per-client outcomes of an acknowledged delivery.
pub type AckResults = BTreeMap<ClientId, AckOutcome>;

/// An operation on connections that only the node holding them can perform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum NodeRequest {
    /// Every connection (only authenticated ones when `active_only`).
    List {
        /// Skip connections still authenticating.
        active_only: bool,
    },
    /// One connection's info.
    Info(ClientId),
    /// Close one connection with 4000.
    Disconnect(ClientId),
    /// Close every connection with 4000.
    DisconnectAll,
    /// A connection's application data.
    GetData(ClientId),
    /// Replace a connection's application data.
    SetData(ClientId, Value),
    /// Join a connection to a room on the application's behalf.
    AddMember(ClientId, RoomName),
    /// Remove a connection from a room on the application's behalf.
    RemoveMember(ClientId, RoomName),
    /// Remove every member of a room (it is being deleted).
    ClearRoom(RoomName),
    /// This node's rooms, with their members here.
    Rooms,
    /// Read a user's topic subscriptions again (they changed on another node).
    ReloadSubscriptions(UserId),
    /// Create a room with these options, or set an existing one's (an API room, which
    /// every node then knows, so that its roles and `maxClients` hold on every node).
    ConfigureRoom(RoomName, RoomOptions),
    /// This node's counters, with the users and rooms behind its counts.
    Stats,
    /// Hand each user with connections here what is still pending in the store: a node
    /// that could not publish while it was cut off from the bus is back.
    CheckUsers,
}

/// The answer to a [`NodeRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum NodeAnswer {
    /// For [`NodeRequest::List`].
    Connections(Vec<ConnectionInfo>),
    /// For [`NodeRequest::Info`].
    Connection(Box<ConnectionInfo>),
    /// How many connections the request acted on.
    Count(usize),
    /// For the data requests: the data now attached.
    Data(Value),
    /// For [`NodeRequest::AddMember`].
    Joined(JoinReply),
    /// For [`NodeRequest::RemoveMember`].
    Removed,
    /// For [`NodeRequest::Rooms`].
    Rooms(Vec<crate::model::RoomInfo>),
    /// For [`NodeRequest::Stats`]: one share per node that answered.
    Stats(Vec<NodeStats>),
}

/// One node's share of the cluster's numbers. Counters add up across nodes, but a user
/// or a room on two nodes is one: the names travel so that the asker counts each once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStats {
    /// The node's id: rates are computed per node, so a node missing from one survey
    /// does not show as a dip and then a spike.
    pub node: String,
    /// Its own counters.
    pub stats: Stats,
    /// Its authenticated users.
    pub users: Vec<UserId>,
    /// Its rooms.
    pub rooms: Vec<RoomName>,
}

/// What a node knows of its own presence (see [`LocalSide::presence_snapshot`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PresenceSnapshot {
    /// Each room with members here.
    pub rooms: Vec<RoomPresence>,
    /// Each authenticated connection here.
    pub connections: Vec<ConnectionInfo>,
}

/// One room's members on this node.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomPresence {
    /// The room.
    pub name: RoomName,
    /// Its users here, by id.
    pub users: Vec<roomcast_protocol::User>,
    /// Its connections here.
    pub connections: usize,
}

/// A future of the local side.
pub type LocalFuture<T> = BoxFuture<'static, T>;

/// This node's connections, as a broker sees them. Implemented by the hub's local side.
pub trait LocalSide: Send + Sync + 'static {
    /// Hands `delivery` to each local recipient's send queue, without waiting.
    fn deliver(&self, delivery: &Delivery) -> Reach;

    /// Delivers an acknowledged message to the local recipients and resolves, by the
    /// deadline at the latest, with each one's outcome.
    fn deliver_with_ack(&self, delivery: &Delivery, ack: &AckRequest) -> LocalFuture<AckResults>;

    /// Performs `request` on this node's connections.
    fn handle(&self, request: NodeRequest) -> LocalFuture<Result<NodeAnswer, ServerError>>;

    /// Compares each room's newest stored chat with what this node delivered and reads
    /// what is missing from the store: the broker asks after every resubscription and
    /// periodically, since a bus may lose the last chats without a later one showing
    /// the gap.
    fn check_positions(&self) -> LocalFuture<()>;

    /// Hands each user with connections here the private messages and notifications
    /// still pending for it in the store, and has every other node do the same: the
    /// broker asks after every resubscription, since what was published while this node
    /// was not listening reached no one here, and what it published reached no one else.
    fn check_users(&self) -> LocalFuture<()>;

    /// This node's part of the cluster's presence, from local truth: what a cluster
    /// broker writes back when its keys were lost.
    fn presence_snapshot(&self) -> PresenceSnapshot;

    /// Members have left `room` for good (no live node has them): the room hears
    /// `user_leave` for each, as if they had left. `elsewhere_only` when this node's own
    /// members already heard it (a leave whose presence call failed, repaired later).
    fn announce_leaves(
        &self,
        room: RoomName,
        users: Vec<roomcast_protocol::User>,
        elsewhere_only: bool,
    ) -> LocalFuture<()>;

    /// Users of this node the cluster was told had left `room` (the node was reaped
    /// while only slow) are back: the room hears `user_join` for each.
    fn announce_joins(
        &self,
        room: RoomName,
        users: Vec<roomcast_protocol::User>,
    ) -> LocalFuture<()>;

    /// Whether the node is shutting down: its members are leaving without telling the
    /// presence (the reaper will), so what its keys hold is not stale.
    fn draining(&self) -> bool;
}

/// Fans deliveries out to every node, and routes connection operations to their node.
pub trait Broker: Send + Sync + std::fmt::Debug + 'static {
    /// Connects the broker to this node's connections; called once, before anything is
    /// published.
    ///
    /// # Errors
    /// [`ServerError::Broker`] when the bus is unreachable or the broker was started.
    fn start(&self, local: Arc<dyn LocalSide>) -> BoxFuture<'_, Result<(), ServerError>>;

    /// Publishes `delivery` to every node. Resolves to this node's reach, without
    /// waiting for the other nodes.
    ///
    /// # Errors
    /// [`ServerError::Broker`] when the broker is not started. A bus that is away is no
    /// error: this node's recipients still get the delivery.
    fn publish(&self, delivery: Delivery) -> BoxFuture<'_, Result<Reach, ServerError>>;

    /// Publishes `delivery` to the other nodes only (a single node has none).
    ///
    /// # Errors
    /// As [`Self::publish`].
    fn publish_elsewhere(&self, delivery: Delivery) -> BoxFuture<'_, Result<(), ServerError>> {
        drop(delivery);
        Box::pin(std::future::ready(Ok(())))
    }

    /// Publishes `delivery` like [`Self::publish`] and resolves to its reach on every
    /// node (what the HTTP API reports), waiting for the other nodes' counts.
    ///
    /// # Errors
    /// As [`Self::publish`].
    fn publish_counted(&self, delivery: Delivery) -> BoxFuture<'_, Result<Reach, ServerError>> {
        self.publish(delivery)
    }

    /// A local connection is about to enter `room`: from when this resolves, the room's
    /// deliveries from every node reach this node. Counted: every call is matched by one
    /// [`Self::unwatch_room`]. Never fails: a bus that is away is watched again when it
    /// returns.
    fn watch_room<'a>(&'a self, room: &'a RoomName) -> BoxFuture<'a, ()> {
        let _ = room;
        Box::pin(std::future::ready(()))
    }

    /// A local connection left `room`; at the last one, the node stops hearing it.
    fn unwatch_room<'a>(&'a self, room: &'a RoomName) -> BoxFuture<'a, ()> {
        let _ = room;
        Box::pin(std::future::ready(()))
    }

    /// Stops the broker's background work; called once, at shutdown, after the last
    /// delivery.
    fn stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }

    /// The cluster's presence, kept on the broker's bus; `None` for a single node, whose
    /// hub keeps its own.
    fn presence(&self) -> Option<Arc<dyn crate::presence::Presence>> {
        None
    }

    /// Whether this node leads: runs what the cluster must do once and not once per
    /// node (the `stats_update` push, the demo feed). Cheap, read at every tick; it may
    /// change at any time. A single node always leads.
    fn leads(&self) -> bool {
        true
    }

    /// How the broker is doing, for `/healthz` and `/metrics`.
    fn health(&self) -> BrokerHealth {
        BrokerHealth::default()
    }

    /// Publishes an acknowledged delivery and collects every recipient's outcome, on
    /// every node, by the deadline.
    ///
    /// # Errors
    /// As [`Self::publish`].
    fn publish_with_ack(
        &self,
        delivery: Delivery,
        ack: AckRequest,
    ) -> BoxFuture<'_, Result<AckResults, ServerError>>;

    /// Performs `request` on the node(s) holding the connections it names and merges the
    /// answers (a list spans every node).
    ///
    /// # Errors
    /// What the owning node answers (`not_found`, ...), or [`ServerError::Broker`].
    fn request(&self, request: NodeRequest) -> BoxFuture<'_, Result<NodeAnswer, ServerError>>;
}
