//! [`LocalPresence`]: one node's answers to the [`Presence`] questions, from this node's
//! registry and rooms; what a single node has always done.

use std::sync::Arc;

use roomcast_protocol::{ClientId, RoomName, User, UserId};

use super::registry::Registry;
use crate::presence::{Presence, PresenceFuture, RemoteMembers};

/// One node's presence: everything it needs to know is on this node.
#[derive(Debug)]
pub(crate) struct LocalPresence {
    registry: Arc<Registry>,
}

impl LocalPresence {
    pub(crate) fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
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

    fn take_seat(&self, _room: &RoomName, _max: Option<usize>) -> PresenceFuture<'_, bool> {
        // The room counts its members under its own lock (`Room::enter`).
        ready(true)
    }

    fn free_seat(&self, _room: &RoomName) -> PresenceFuture<'_, ()> {
        ready(())
    }

    fn members(
        &self,
        _room: &RoomName,
        _after: Option<&UserId>,
        _limit: usize,
        _here: Option<&UserId>,
    ) -> PresenceFuture<'_, Option<RemoteMembers>> {
        ready(None)
    }
}
