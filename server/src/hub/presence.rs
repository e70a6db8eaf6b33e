//! [`Presence`]: the questions about users that span every node, asked in one place.
//! The single-node [`LocalPresence`] answers from this node's registry and rooms, which
//! is today's behaviour; a cluster presence answers from its shared registry (CLUSTER.md
//! §2.4, §2.5) behind the same trait.
//!
//! The hub asks only at the moments a node can see: when a user's *first* connection on
//! this node enters a room, or its *last* one leaves (is that true of the whole
//! cluster?), and when a connection claims a slot under the per-user limit. Each room's
//! own member list is still kept under the room's lock, so the joiner's `user_list`
//! keeps its place before the room's later traffic.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use roomcast_protocol::{ClientId, RoomName, User, UserId};

use super::registry::Registry;
use super::rooms::Rooms;
use crate::ServerError;

/// A presence call's future.
pub type PresenceFuture<'a, T> = BoxFuture<'a, Result<T, ServerError>>;

/// Who is connected and where, across every node.
pub trait Presence: Send + Sync + std::fmt::Debug + 'static {
    /// Claims one of `user`'s `limit` connection slots for `client`; `false` when the
    /// user has them all. Called with the user's admission lock held.
    fn claim(&self, user: &UserId, client: &ClientId, limit: usize) -> PresenceFuture<'_, bool>;

    /// Gives back what [`Self::claim`] took, when the connection goes.
    fn release(&self, user: &UserId, client: &ClientId) -> PresenceFuture<'_, ()>;

    /// Whether `user` has a connection anywhere.
    fn is_online(&self, user: &UserId) -> PresenceFuture<'_, bool>;

    /// The user's first connection on this node entered `room`: is it the user's first
    /// in the room anywhere (so the room hears `user_join`)?
    fn entered(&self, room: &RoomName, user: &User) -> PresenceFuture<'_, bool>;

    /// The user's last connection on this node left `room`: is none of its connections
    /// left in the room anywhere (so the room hears `user_leave`)?
    fn left(&self, room: &RoomName, user: &User) -> PresenceFuture<'_, bool>;

    /// Who is in `room`: at most `limit` users in join order, and how many in all.
    fn members(&self, room: &RoomName, limit: usize) -> PresenceFuture<'_, (Vec<User>, u64)>;
}

/// One node's presence: everything it needs to know is on this node.
#[derive(Debug)]
pub(crate) struct LocalPresence {
    registry: Arc<Registry>,
    rooms: Arc<Rooms>,
}

impl LocalPresence {
    pub(crate) fn new(registry: Arc<Registry>, rooms: Arc<Rooms>) -> Self {
        Self { registry, rooms }
    }
}

fn ready<T: Send + 'static>(value: T) -> PresenceFuture<'static, T> {
    Box::pin(std::future::ready(Ok(value)))
}

impl Presence for LocalPresence {
    fn claim(&self, user: &UserId, _client: &ClientId, limit: usize) -> PresenceFuture<'_, bool> {
        // The admission lock is held, so nothing is added to the user's list between this
        // count and the admission that follows it.
        ready(self.registry.user_connections(user) < limit)
    }

    fn release(&self, _user: &UserId, _client: &ClientId) -> PresenceFuture<'_, ()> {
        // The registry's own list is the claim: taking the connection out releases it.
        ready(())
    }

    fn is_online(&self, user: &UserId) -> PresenceFuture<'_, bool> {
        ready(self.registry.user_connections(user) > 0)
    }

    fn entered(&self, _room: &RoomName, _user: &User) -> PresenceFuture<'_, bool> {
        ready(true)
    }

    fn left(&self, _room: &RoomName, _user: &User) -> PresenceFuture<'_, bool> {
        ready(true)
    }

    fn members(&self, room: &RoomName, limit: usize) -> PresenceFuture<'_, (Vec<User>, u64)> {
        ready(
            self.rooms
                .get(room)
                .map(|room| room.user_list(limit))
                .unwrap_or_default(),
        )
    }
}
