//! The [`Broker`] hands every delivery to every node, this one included. The default
//! [`LocalBroker`] is a single node: publishing is delivering locally, at no cost. A
//! cluster broker (Redis, later) publishes to its bus and delivers what its subscription
//! receives through the same [`LocalDelivery`] sink.

use futures_util::future::BoxFuture;
use roomcast_protocol::{ClientId, RoomName, UserId};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::ServerError;

/// Who a delivery is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every authenticated connection.
    All,
    /// Members of a room.
    Room(RoomName),
    /// Members of any of these rooms, each connection once.
    Rooms(Vec<RoomName>),
    /// One connection.
    Client(ClientId),
    /// Every connection of a user.
    User(UserId),
    /// Every connection of any of these users, each once.
    Users(Vec<UserId>),
    /// Every connection whose user has this role.
    Role(String),
}

/// One serialized message for a target; `frame` is shared by every recipient, never
/// re-serialized per connection.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The recipients.
    pub target: Target,
    /// Connections to skip (e.g. the one a `user_join` is about).
    pub except: Option<ClientId>,
    /// The JSON text.
    pub frame: Utf8Bytes,
}

/// Delivers to this node's connections; returns how many got the frame.
pub trait LocalDelivery: Send + Sync {
    /// Hands `delivery` to each local recipient's send queue.
    fn deliver_local(&self, delivery: &Delivery) -> usize;
}

/// Fans deliveries out to every node.
pub trait Broker: Send + Sync + std::fmt::Debug + 'static {
    /// Publishes `delivery` to every node; `local` is this node's sink. Resolves to the
    /// number of local recipients when the broker knows it.
    ///
    /// # Errors
    /// [`ServerError::Broker`] when the bus is unreachable.
    fn publish<'a>(
        &'a self,
        delivery: Delivery,
        local: &'a dyn LocalDelivery,
    ) -> BoxFuture<'a, Result<usize, ServerError>>;
}

/// The single-node broker: publishing is local delivery.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalBroker;

impl Broker for LocalBroker {
    fn publish<'a>(
        &'a self,
        delivery: Delivery,
        local: &'a dyn LocalDelivery,
    ) -> BoxFuture<'a, Result<usize, ServerError>> {
        let delivered = local.deliver_local(&delivery);
        Box::pin(std::future::ready(Ok(delivered)))
    }
}
