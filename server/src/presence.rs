//! [`Presence`]: the questions about users that span every node, asked in one place.
//! The hub's single-node presence answers from this node's registry and rooms; the Redis
//! broker's answers from the cluster's shared registry (CLUSTER.md §2.4, §2.5) behind the
//! same trait. It lives outside both so that neither depends on the other.
//!
//! The hub asks only at the moments a node can see: when a user's *first* connection on
//! this node enters a room, or its *last* one leaves (is that true of the whole
//! cluster?), when a connection takes or gives back a seat in a room (for `maxClients`),
//! and when a connection claims a slot under the per-user limit. Each room's own member
//! list is still kept under the room's lock, so the joiner's `user_list` keeps its place
//! before the room's later traffic.

use futures_util::future::BoxFuture;
use roomcast_protocol::{ClientId, RoomName, User, UserId};

use crate::ServerError;

/// A presence call's future.
pub type PresenceFuture<'a, T> = BoxFuture<'a, Result<T, ServerError>>;

/// Who is connected and where, across every node.
pub trait Presence: Send + Sync + std::fmt::Debug + 'static {
    /// Claims one of `user`'s `limit` connection slots for `client`; `false` when the
    /// user has them all. Called with the user's admission lock held.
    fn claim(&self, user: &UserId, client: &ClientId, limit: usize) -> PresenceFuture<'_, bool>;

    /// Records an admitted connection where every node can read it (what the cluster's
    /// listings and acknowledgements fall back on when its node is silent).
    fn connected(&self, info: &crate::model::ConnectionInfo) -> PresenceFuture<'_, ()> {
        let _ = info;
        Box::pin(std::future::ready(Ok(())))
    }

    /// Gives back what [`Self::claim`] took, and forgets what [`Self::connected`]
    /// recorded, when the connection goes.
    fn release(&self, user: &UserId, client: &ClientId) -> PresenceFuture<'_, ()>;

    /// Whether `user` has a connection anywhere.
    fn is_online(&self, user: &UserId) -> PresenceFuture<'_, bool>;

    /// A connection is about to enter `room`, which admits at most `max` connections
    /// (`None`: any number): takes a seat, or `false` when the room is full everywhere.
    /// A single node counts its own members under the room's lock instead, and says yes.
    fn take_seat(&self, room: &RoomName, max: Option<usize>) -> PresenceFuture<'_, bool>;

    /// Gives back a seat [`Self::take_seat`] took.
    fn free_seat(&self, room: &RoomName) -> PresenceFuture<'_, ()>;

    /// The user's first connection on this node entered `room`: is it the user's first
    /// in the room anywhere (so the room hears `user_join`)?
    fn entered(&self, room: &RoomName, user: &User) -> PresenceFuture<'_, bool>;

    /// The user's last connection on this node left `room`: is none of its connections
    /// left in the room anywhere (so the room hears `user_leave`)?
    fn left(&self, room: &RoomName, user: &User) -> PresenceFuture<'_, bool>;

    /// Who is in `room` on the other nodes: at most `limit` users whose id sorts after
    /// `after`, by id, and how many users the other nodes have that this node does not
    /// (`here`, the joiner, counts as this node's already); `None` for a single node,
    /// whose room lists its own members.
    fn members(
        &self,
        room: &RoomName,
        after: Option<&UserId>,
        limit: usize,
        here: Option<&UserId>,
    ) -> PresenceFuture<'_, Option<RemoteMembers>>;
}

/// A page of a room's users on the other nodes, merged by the room with its own.
#[derive(Debug, Clone, Default)]
pub struct RemoteMembers {
    /// At most the asked limit of users after the cursor, by id.
    pub users: Vec<User>,
    /// Users on the other live nodes that this node's own entry of the room does not
    /// list: the room's count is its own users plus these.
    pub others: u64,
}
