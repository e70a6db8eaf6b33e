//! A [`Room`]: its options and members. Each room has its own lock, so traffic in one
//! room never waits on another; the lock is a std `RwLock` held only for in-memory work
//! (fan-out only queues, without waiting), never across an `.await`.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use roomcast_protocol::{ClientId, ErrorCode, RoomName, ServerMessage, Timestamp, User, UserId};

use super::conn::ConnHandle;
use super::cursor::Cursor;
use crate::ServerError;
use crate::clock::now_ms;
use crate::model::RoomOptions;
pub use crate::model::{RoomClient, RoomInfo};
use crate::presence::RemoteMembers;

/// A user present in a room, with how many of its connections are in it.
#[derive(Debug)]
pub(crate) struct Present {
    pub user: Arc<User>,
    pub connections: usize,
}

/// Who is in a room.
#[derive(Debug, Default)]
pub(crate) struct Members {
    pub conns: HashMap<ClientId, Arc<ConnHandle>>,
    /// By user id: the order of `user_list` and of `members` pages, so a page of `limit`
    /// users costs O(log n + limit), never O(n), however big the room.
    pub users: BTreeMap<UserId, Present>,
    /// Set when the room is removed from the hub; a joiner that finds it set retries.
    pub removed: bool,
}

/// One page of a room's users: what `user_list` and the `members` reply carry.
#[derive(Debug)]
pub(crate) struct Page {
    /// At most the asked limit of users, by id.
    pub users: Vec<User>,
    /// Distinct users in the room on every node.
    pub count: u64,
    /// More users follow the last of `users`.
    pub more: bool,
}

impl Members {
    /// Every user, by id.
    pub(crate) fn all_users(&self) -> Vec<User> {
        self.users.values().map(|p| (*p.user).clone()).collect()
    }

    /// Up to `limit` users whose id sorts after `after`, merged with `remote` (the other
    /// nodes' page for the same cursor, `None` on a single node): each user once, by id,
    /// and the room's count on every node.
    pub(crate) fn page(
        &self,
        after: Option<&UserId>,
        limit: usize,
        remote: Option<RemoteMembers>,
    ) -> Page {
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        // One more than asked tells whether another page follows.
        let local = self
            .users
            .range::<UserId, _>((lower, Bound::Unbounded))
            .take(limit.saturating_add(1))
            .map(|(_, p)| (*p.user).clone());
        let RemoteMembers {
            users: theirs,
            others,
        } = remote.unwrap_or_default();
        let mut users: Vec<User> = local.chain(theirs).collect();
        users.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        users.dedup_by(|a, b| a.user_id == b.user_id);
        let more = users.len() > limit;
        users.truncate(limit);
        Page {
            users,
            count: self.users.len() as u64 + others,
            more,
        }
    }
}

/// The limits [`Room::enter`] applies.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EnterLimits {
    /// Rooms of more users announce no `user_join`/`user_leave`.
    pub presence: usize,
    /// Users a `user_list` carries at most.
    pub user_list: usize,
}

/// What [`Room::enter`] tells the joiner's caller.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entered {
    /// This is the user's first connection in the room on this node.
    pub first: bool,
    /// ... and the room announces it (`presence` on, within the presence limit).
    pub announce: bool,
}

/// What [`Room::exit`] tells the leaver's caller.
#[derive(Debug)]
pub(crate) struct Exited {
    /// The user, when this was its last connection in the room on this node.
    pub last: Option<Arc<User>>,
    /// ... and the room announces it.
    pub announce: bool,
}

/// The room was removed from the map while a joiner held it: look it up again.
#[derive(Debug)]
pub(crate) struct Removed;

/// One room.
#[derive(Debug)]
pub(crate) struct Room {
    pub(crate) name: RoomName,
    pub(crate) created_at: Timestamp,
    /// Created (or configured) through the API: kept when empty until deleted.
    via_api: AtomicBool,
    options: RwLock<RoomOptions>,
    members: RwLock<Members>,
    /// Where this node is in the room's chat sequence.
    pub(crate) cursor: Cursor,
    /// A repair of the cursor's gap is under way (one at a time per room).
    pub(crate) repairing: AtomicBool,
}

impl Room {
    pub(crate) fn new(
        name: RoomName,
        options: RoomOptions,
        created_at: Timestamp,
        via_api: bool,
    ) -> Self {
        Self {
            name,
            created_at,
            via_api: AtomicBool::new(via_api),
            options: RwLock::new(options),
            members: RwLock::new(Members::default()),
            cursor: Cursor::default(),
            repairing: AtomicBool::new(false),
        }
    }

    pub(crate) fn is_api_created(&self) -> bool {
        self.via_api.load(Ordering::Acquire)
    }

    pub(crate) fn mark_api_created(&self) {
        self.via_api.store(true, Ordering::Release);
    }

    pub(crate) fn unmark_api_created(&self) {
        self.via_api.store(false, Ordering::Release);
    }

    pub(crate) fn options(&self) -> RoomOptions {
        self.options
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_options(&self, options: RoomOptions) {
        *self
            .options
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = options;
    }

    pub(crate) fn members(&self) -> RwLockReadGuard<'_, Members> {
        self.members
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn members_mut(&self) -> RwLockWriteGuard<'_, Members> {
        self.members
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds `conn` (of `user`) under the room's write lock and hands the joiner's
    /// `user_list` to `queue` before the lock is released, so the list precedes every
    /// later message of the room. `already` is a re-join of a member: nothing is
    /// checked or counted, the list is sent again.
    ///
    /// # Errors
    /// The outer `Err` means the room was removed meanwhile (look it up again); the inner
    /// one is `forbidden` (roles) or `room_full`.
    pub(crate) fn enter(
        &self,
        conn: &Arc<ConnHandle>,
        user: &Arc<User>,
        already: bool,
        limits: EnterLimits,
        elsewhere: Option<RemoteMembers>,
        queue: impl FnOnce(&ServerMessage),
    ) -> Result<Result<Entered, ServerError>, Removed> {
        let options = self.options();
        let mut members = self.members_mut();
        if members.removed {
            return Err(Removed);
        }
        let mut first = false;
        if !already {
            if !options.admits(user) {
                return Ok(Err(ServerError::request(
                    ErrorCode::Forbidden,
                    format!(
                        "room {} is restricted to roles {:?}",
                        self.name, options.roles
                    ),
                )));
            }
            if options
                .max_clients
                .is_some_and(|max| members.conns.len() >= max)
            {
                return Ok(Err(ServerError::request(
                    ErrorCode::RoomFull,
                    format!("room {} is full", self.name),
                )));
            }
            members.conns.insert(conn.id.clone(), conn.clone());
            let present = members
                .users
                .entry(user.user_id.clone())
                .or_insert_with(|| {
                    first = true;
                    Present {
                        user: user.clone(),
                        connections: 0,
                    }
                });
            present.connections += 1;
        }
        let page = members.page(None, limits.user_list, elsewhere);
        queue(&ServerMessage::UserList {
            room: self.name.clone(),
            users: page.users,
            count: page.count,
            timestamp: now_ms(),
        });
        Ok(Ok(Entered {
            first,
            announce: first && options.presence && members.users.len() <= limits.presence,
        }))
    }

    /// Removes `conn`; `None` when it was not a member. The answer's user is set when
    /// this was its last connection here.
    pub(crate) fn exit(&self, conn: &ConnHandle, presence_limit: usize) -> Option<Exited> {
        let options = self.options();
        let mut members = self.members_mut();
        members.conns.remove(&conn.id)?;
        let mut left = None;
        if let Some(user) = conn.user()
            && let Some(present) = members.users.get_mut(&user.user_id)
        {
            present.connections -= 1;
            if present.connections == 0 {
                left = members.users.remove(&user.user_id).map(|p| p.user);
            }
        }
        let announce = left.is_some() && options.presence && members.users.len() < presence_limit;
        Some(Exited {
            last: left,
            announce,
        })
    }

    /// Marks the room removed if it has no member and was not created through the API;
    /// returns whether it did (the caller then drops it from the map).
    pub(crate) fn retire_if_empty(&self) -> bool {
        if self.is_api_created() {
            return false;
        }
        let mut members = self.members_mut();
        members.removed = members.conns.is_empty();
        members.removed
    }

    /// Whether any connection of this node is in the room.
    pub(crate) fn has_members(&self) -> bool {
        !self.members().conns.is_empty()
    }

    /// Calls `f` for each member connection. Holds the read lock: `f` must not block.
    pub(crate) fn for_each_member(&self, f: impl FnMut(&Arc<ConnHandle>)) {
        self.members().conns.values().for_each(f);
    }

    /// The member connections.
    pub(crate) fn member_conns(&self) -> Vec<Arc<ConnHandle>> {
        self.members().conns.values().cloned().collect()
    }

    /// What `/api/rooms` shows.
    pub(crate) fn info(&self, with_clients: bool) -> RoomInfo {
        let options = self.options();
        let members = self.members();
        let clients = with_clients.then(|| {
            let mut clients: Vec<RoomClient> = members
                .conns
                .values()
                .map(|c| RoomClient {
                    client_id: c.id.clone(),
                    user: c.user().as_deref().cloned(),
                })
                .collect();
            clients.sort_by(|a, b| a.client_id.cmp(&b.client_id));
            clients
        });
        RoomInfo {
            name: self.name.clone(),
            connections: members.conns.len(),
            users: members.users.len(),
            created_at: self.created_at,
            options,
            clients,
        }
    }
}
