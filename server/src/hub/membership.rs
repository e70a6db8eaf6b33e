//! Joining and leaving rooms, and the rooms the API creates and deletes. A room's own
//! state is [`super::room::Room`]'s; this module orders the steps around it: the
//! room cursor's hold against live chat for a `join` with `since`, presence announcements
//! through the broker, and the store for persistent rooms.

use std::sync::Arc;

use roomcast_protocol::{
    ErrorCode, JoinReply, MembersReply, MessageId, RoomName, ServerMessage, User, UserId,
};
use tracing::{debug, warn};

use super::admin::unexpected;
use super::room::{EnterLimits, Entered, Members, Removed};
use super::{ConnHandle, Hub, RoomInfo, frame};
use crate::ServerError;
use crate::broker::{Delivery, NodeAnswer, NodeRequest, Target};
use crate::clock::now_ms;
use crate::model::RoomOptions;
use crate::presence::RemoteMembers;

/// Users in a `members` page when the request names no `limit`.
const DEFAULT_MEMBERS: usize = 100;
/// Most users in one `members` page.
const MAX_MEMBERS: usize = 1000;

impl Hub {
    /// Joins `conn` to `room`, creating the room on first join. The joiner's `user_list`
    /// is queued under the room lock, so it precedes every later message of the room;
    /// with `since`, the chats stored after it follow, then live traffic.
    ///
    /// # Errors
    /// `not_authenticated`, `limit_exceeded` (rooms per connection), `forbidden` (room
    /// roles), `room_full`, or `not_found` when the connection is closing.
    pub async fn join(
        &self,
        conn: &Arc<ConnHandle>,
        name: &RoomName,
        since: Option<&MessageId>,
    ) -> Result<JoinReply, ServerError> {
        let max_rooms = self.config().limits.max_rooms_per_connection;
        let (user, already) = {
            let mut state = conn.state();
            let user = state.user.clone().ok_or_else(|| {
                ServerError::request(ErrorCode::NotAuthenticated, "not authenticated")
            })?;
            if state.closed {
                return Err(ServerError::request(
                    ErrorCode::NotFound,
                    "connection is closing",
                ));
            }
            let already = state.rooms.contains(name);
            if !already {
                if state.rooms.len() >= max_rooms {
                    return Err(ServerError::request(
                        ErrorCode::LimitExceeded,
                        format!("a connection may be in at most {max_rooms} rooms"),
                    ));
                }
                state.rooms.insert(name.clone());
            }
            (user, already)
        };
        let mut joined = JoinReply {
            room: name.clone(),
            recovered: false,
            replayed: 0,
        };
        let limits = EnterLimits {
            presence: self.config().limits.presence_limit,
            user_list: self.config().limits.user_list_limit,
        };
        // From the room's decision (first connection of the user here?) to the cluster's
        // presence hearing of it, one step at a time for this user in this room: else a
        // leave and a quick re-entry could reach Redis swapped (a `user_leave` for a user
        // who is in, or an entry that outlives its leave).
        let turn = self.inner.presence_turns.lock_in(name, &user.user_id).await;
        // A new member: the node hears the room's deliveries from every node before the
        // member is in (and its replay is read), so none falls between the two.
        if !already {
            self.inner.broker.watch_room(name).await;
        }
        let outcome = loop {
            let room = self.inner.rooms.get_or_create(name);
            if let Err(err) = self.place_cursor(&room).await {
                break Err(err);
            }
            let elsewhere = match self
                .cluster_entry(&room, &user.user_id, already, limits.user_list)
                .await
            {
                Ok(elsewhere) => elsewhere,
                Err(err) => break Err(err),
            };
            // A `since` ahead of this node (it is behind the store: the client saw those
            // chats on another node): the room's members here get up to `since` first,
            // so the joiner, whose replay starts there, is not given them again.
            self.catch_up_to(&room, since).await;
            // With `since`, hold the room's cursor from entering until the replay is
            // queued: every chat up to the hold's position is stored (and replayed), every
            // later one waits and follows live, so none is seen twice or not at all.
            let hold = match since {
                Some(_) => room.cursor.hold(),
                None => None,
            };
            let entered = room.enter(conn, &user, already, limits, elsewhere, |list| {
                self.send(conn, list);
            });
            if !already && !matches!(entered, Ok(Ok(_))) {
                self.free_seat(name).await;
            }
            if let (Ok(Ok(_)), Some(since), Some(hold)) = (&entered, since, &hold) {
                (joined.replayed, joined.recovered) =
                    self.replay(conn, name, since, hold.position).await;
            }
            if let Some(hold) = hold {
                let released = room.cursor.release(hold, |f| self.deliver_chat(&room, f));
                if let Some((after, before)) = released.gap {
                    self.spawn_repair(room.clone(), after, Some(before), true);
                }
            }
            match entered {
                Err(Removed) => continue,
                Ok(Err(err)) => break Err(err),
                Ok(Ok(entered)) => break Ok(entered),
            }
        };
        let entered: Entered = match outcome {
            Ok(entered) => entered,
            Err(err) => {
                conn.state().rooms.remove(name);
                self.inner.rooms.remove_if_empty(name);
                if !already {
                    self.inner.broker.unwatch_room(name).await;
                }
                return Err(err);
            }
        };
        if conn.state().closed {
            // The connection closed while joining; undo so no dead member stays behind.
            drop(turn);
            self.leave_room(conn, name).await;
            return Err(ServerError::request(
                ErrorCode::NotFound,
                "connection is closing",
            ));
        }
        // The presence hears of every first local connection (a cluster records it), and
        // the room of those it announces.
        let first_anywhere = entered.first
            && self
                .presence_says(self.inner.presence.entered(name, &user))
                .await;
        if first_anywhere && entered.announce {
            let message = ServerMessage::UserJoin {
                room: name.clone(),
                user: (*user).clone(),
                timestamp: now_ms(),
            };
            self.publish_quietly(
                Delivery::new(Target::Room(name.clone()), frame(&message)).except(conn.id.clone()),
            )
            .await;
        }
        Ok(joined)
    }

    /// The cluster's part of a join, before the member enters: a seat under the room's
    /// `maxClients` on every node (`room_full` when there is none), and who is in the room
    /// on the other nodes, the first `listed` of them for the joiner's `user_list` (`None`
    /// on a single node).
    async fn cluster_entry(
        &self,
        room: &super::room::Room,
        joiner: &UserId,
        already: bool,
        listed: usize,
    ) -> Result<Option<RemoteMembers>, ServerError> {
        let presence = &self.inner.presence;
        if !already {
            let max = room.options().max_clients;
            let seated = presence.take_seat(&room.name, max).await.unwrap_or_else(|err| {
                // The room's own count still holds on this node.
                warn!(room = %room.name, cause = %err, "presence unavailable: seat not counted");
                true
            });
            if !seated {
                return Err(ServerError::request(
                    ErrorCode::RoomFull,
                    format!("room {} is full", room.name),
                ));
            }
        }
        // The joiner is in this node's room before its own hash lists it: it must not
        // count as another node's user too.
        Ok(self
            .members_elsewhere(&room.name, None, listed, Some(joiner))
            .await)
    }

    /// The other nodes' page of `room` (`None` on a single node, or when the presence
    /// cannot be read: the page is then this node's alone).
    async fn members_elsewhere(
        &self,
        room: &RoomName,
        after: Option<&UserId>,
        limit: usize,
        here: Option<&UserId>,
    ) -> Option<RemoteMembers> {
        // One more than asked tells the page whether another follows.
        let asked = limit.saturating_add(1);
        self.inner
            .presence
            .members(room, after, asked, here)
            .await
            .unwrap_or_else(|err| {
                warn!(%room, cause = %err, "presence unavailable: members of this node only");
                None
            })
    }

    /// One page of `room`'s users on every node (CONTRACT §4 `members`): `limit`
    /// (default 100, at most 1000) users whose id sorts after `after`, by id.
    ///
    /// # Errors
    /// `not_member` when `conn` is not in the room.
    pub async fn members(
        &self,
        conn: &ConnHandle,
        room: &RoomName,
        after: Option<&UserId>,
        limit: Option<u32>,
    ) -> Result<MembersReply, ServerError> {
        if !conn.state().rooms.contains(room) {
            return Err(ServerError::request(
                ErrorCode::NotMember,
                format!("join room {room} to list its members"),
            ));
        }
        let limit = limit
            .map_or(DEFAULT_MEMBERS, |l| l as usize)
            .clamp(1, MAX_MEMBERS);
        let elsewhere = self.members_elsewhere(room, after, limit, None).await;
        let page = match self.inner.rooms.get(room) {
            Some(local) => local.members().page(after, limit, elsewhere),
            // The connection's last step out of the room is under way.
            None => Members::default().page(after, limit, elsewhere),
        };
        let next = if page.more {
            page.users.last().map(|u| u.user_id.clone())
        } else {
            None
        };
        Ok(MembersReply {
            items: page.users,
            count: page.count,
            next,
        })
    }

    async fn free_seat(&self, room: &RoomName) {
        if let Err(err) = self.inner.presence.free_seat(room).await {
            warn!(%room, cause = %err, "presence unavailable: seat not given back");
        }
    }

    /// `user_leave` in `room` for each of `users`, who are on no live node (their node
    /// died, or their leave's presence call failed and was repaired later): unless the
    /// room, as this node knows it, announces no presence. `elsewhere_only`: to the
    /// other nodes, when this one's members heard it already.
    pub(super) async fn announce_leaves(
        &self,
        room: &RoomName,
        users: Vec<User>,
        elsewhere_only: bool,
    ) {
        self.announce(room, users, elsewhere_only, |room, user| {
            ServerMessage::UserLeave {
                room,
                user,
                timestamp: now_ms(),
            }
        })
        .await;
    }

    /// `user_join` in `room` for each of `users`, this node's, whom the cluster was told
    /// had left (the node was reaped while only slow); unless the room announces no
    /// presence.
    pub(super) async fn announce_joins(&self, room: &RoomName, users: Vec<User>) {
        self.announce(room, users, false, |room, user| ServerMessage::UserJoin {
            room,
            user,
            timestamp: now_ms(),
        })
        .await;
    }

    /// A presence notice in `room` for each of `users`, made by `notice`, unless the
    /// room, as this node knows it, announces no presence.
    async fn announce(
        &self,
        room: &RoomName,
        users: Vec<User>,
        elsewhere_only: bool,
        notice: impl Fn(RoomName, User) -> ServerMessage,
    ) {
        if self
            .inner
            .rooms
            .get(room)
            .is_some_and(|r| !r.options().presence)
        {
            return;
        }
        for user in users {
            let message = notice(room.clone(), user);
            let delivery = Delivery::new(Target::Room(room.clone()), frame(&message));
            if elsewhere_only {
                if let Err(err) = self.inner.broker.publish_elsewhere(delivery).await {
                    warn!(cause = %err, "presence notice not delivered");
                }
            } else {
                self.publish_quietly(delivery).await;
            }
        }
    }

    /// Whether a presence question answered yes; a failure counts as yes, so a room
    /// hears one notice too many rather than none.
    async fn presence_says(&self, answer: super::PresenceFuture<'_, bool>) -> bool {
        answer.await.unwrap_or_else(|err| {
            tracing::warn!(cause = %err, "presence unavailable");
            true
        })
    }

    /// Removes `conn` from `room` (the connection's own room set is the caller's job).
    pub(super) async fn leave_room(&self, conn: &ConnHandle, name: &RoomName) {
        let Some(room) = self.inner.rooms.get(name) else {
            return;
        };
        let limit = self.config().limits.presence_limit;
        let user = conn.user();
        let _turn = match &user {
            Some(user) => Some(self.inner.presence_turns.lock_in(name, &user.user_id).await),
            None => None,
        };
        let Some(exited) = room.exit(conn, limit) else {
            return;
        };
        // The cursor stays: if the node stops hearing the room, the next first member
        // moves it up to the room's stored position (see `place_cursor`).
        self.inner.broker.unwatch_room(name).await;
        self.free_seat(name).await;
        // At shutdown the node leaves its presence to be reaped one TTL after its last
        // heartbeat: a user who reconnects to another node meanwhile never "left", and
        // the rest hear `user_leave` from the reaper (no leave-and-join storm at a
        // deploy).
        let draining = self.inner.shutdown.is_cancelled();
        if let Some(user) = exited.last
            && !draining
            && self
                .presence_says(self.inner.presence.left(name, &user))
                .await
            && exited.announce
        {
            let message = ServerMessage::UserLeave {
                room: name.clone(),
                user: (*user).clone(),
                timestamp: now_ms(),
            };
            self.publish_quietly(Delivery::new(Target::Room(name.clone()), frame(&message)))
                .await;
        }
        self.inner.rooms.remove_if_empty(name);
    }

    /// Leaves a room.
    ///
    /// # Errors
    /// `not_member` when the connection is not in it.
    pub async fn leave(&self, conn: &ConnHandle, name: &RoomName) -> Result<(), ServerError> {
        if !conn.state().rooms.remove(name) {
            return Err(ServerError::request(
                ErrorCode::NotMember,
                format!("not a member of room {name}"),
            ));
        }
        self.leave_room(conn, name).await;
        Ok(())
    }

    /// Removes a member on the application's behalf: it leaves like any member, and
    /// since it did not ask, it gets a `user_leave` about itself.
    ///
    /// # Errors
    /// `not_member`.
    pub(super) async fn remove_local_member(
        &self,
        conn: &ConnHandle,
        name: &RoomName,
    ) -> Result<(), ServerError> {
        self.leave(conn, name).await?;
        if let Some(user) = conn.user() {
            let notice = ServerMessage::UserLeave {
                room: name.clone(),
                user: (*user).clone(),
                timestamp: now_ms(),
            };
            self.send(conn, &notice);
        }
        Ok(())
    }

    /// Creates a room through the API, or updates the options of an existing one (which
    /// then stays until deleted). A `persistent` room is saved in the store first, so it
    /// is back after a restart. Returns its info and whether it was created.
    ///
    /// # Errors
    /// Store failures (nothing changes then).
    pub async fn create_room(
        &self,
        name: &RoomName,
        options: RoomOptions,
    ) -> Result<(RoomInfo, bool), ServerError> {
        if options.persistent {
            self.inner.store.save_room(name, &options).await?;
        } else {
            self.inner.store.delete_room(name).await?;
        }
        let configured = self.inner.rooms.configure(name, options.clone());
        // Every other node learns the room too (this one's second configure changes
        // nothing).
        self.inner
            .broker
            .request(NodeRequest::ConfigureRoom(name.clone(), options))
            .await?;
        Ok(configured)
    }

    /// Every room, by name.
    pub async fn rooms(&self) -> Result<Vec<RoomInfo>, ServerError> {
        let mut rooms = self.rooms_everywhere().await?;
        for room in &mut rooms {
            room.clients = None;
        }
        Ok(rooms)
    }

    /// Every node's rooms, merged by name: one room, its members on every node.
    async fn rooms_everywhere(&self) -> Result<Vec<RoomInfo>, ServerError> {
        let infos = match self.inner.broker.request(NodeRequest::Rooms).await? {
            NodeAnswer::Rooms(infos) => infos,
            other => return Err(unexpected(&other)),
        };
        let mut merged: std::collections::BTreeMap<RoomName, RoomInfo> = Default::default();
        for info in infos {
            match merged.get_mut(&info.name) {
                None => {
                    merged.insert(info.name.clone(), info);
                }
                Some(room) => {
                    room.created_at = room.created_at.min(info.created_at);
                    if let (Some(clients), Some(more)) = (&mut room.clients, info.clients) {
                        clients.extend(more);
                    }
                }
            }
        }
        Ok(merged
            .into_values()
            .map(|mut room| {
                if let Some(clients) = &mut room.clients {
                    clients.sort_by(|a, b| a.client_id.cmp(&b.client_id));
                    room.connections = clients.len();
                    let users: std::collections::HashSet<_> = clients
                        .iter()
                        .filter_map(|c| c.user.as_ref().map(|u| &u.user_id))
                        .collect();
                    room.users = users.len();
                }
                room
            })
            .collect())
    }

    /// One room with its members.
    ///
    /// # Errors
    /// `not_found`.
    pub async fn room(&self, name: &RoomName) -> Result<RoomInfo, ServerError> {
        self.rooms_everywhere()
            .await?
            .into_iter()
            .find(|room| room.name == *name)
            .ok_or_else(|| ServerError::request(ErrorCode::NotFound, format!("no room {name}")))
    }

    /// This node's rooms, each with its members here (a node's answer to
    /// [`NodeRequest::Rooms`]).
    pub(super) fn local_rooms(&self) -> Vec<RoomInfo> {
        self.inner.rooms.infos_with_clients()
    }

    /// Deletes a room: every member leaves it (others see `user_leave` as usual).
    ///
    /// # Errors
    /// `not_found`.
    pub async fn delete_room(&self, name: &RoomName) -> Result<usize, ServerError> {
        // The room may live on other nodes only.
        self.room(name).await?;
        self.inner.store.delete_room(name).await?;
        if let Some(room) = self.inner.rooms.get(name) {
            room.unmark_api_created();
        }
        let removed = match self
            .inner
            .broker
            .request(NodeRequest::ClearRoom(name.clone()))
            .await?
        {
            NodeAnswer::Count(n) => n,
            other => return Err(unexpected(&other)),
        };
        // No longer an API room, so it goes like any empty room; if someone joined while
        // it was being emptied, it stays as an ordinary room with that member.
        self.inner.rooms.remove_if_empty(name);
        debug!(room = %name, members = removed, "room deleted");
        Ok(removed)
    }

    /// This node's part of deleting a room: every local member is removed.
    pub(super) async fn clear_local_room(&self, name: &RoomName) -> usize {
        let Some(room) = self.inner.rooms.get(name) else {
            return 0;
        };
        // No longer an API room on this node either, so it goes once empty.
        room.unmark_api_created();
        let members = room.member_conns();
        for conn in &members {
            // A member that left meanwhile is fine: not_member is the expected race.
            let _ = self.remove_local_member(conn, name).await;
        }
        self.inner.rooms.remove_if_empty(name);
        members.len()
    }
}
