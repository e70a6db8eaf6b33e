//! A [`Room`]: its options and members. Each room has its own lock, so traffic in one
//! room never waits on another; the lock is a std `RwLock` held only for in-memory work
//! (fan-out uses non-blocking `try_send`), never across an `.await`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use roomcast_protocol::{ClientId, RoomName, Timestamp, User, UserId};
use serde::{Deserialize, Serialize};

use super::conn::ConnHandle;

/// Options set when a room is created through the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomOptions {
    /// Most connections at once; `room_full` past it.
    #[serde(default)]
    pub max_clients: Option<usize>,
    /// Kept when empty.
    #[serde(default)]
    pub persistent: bool,
    /// When not empty, only users with one of these roles may join.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Send `user_join` / `user_leave` (up to the presence limit).
    #[serde(default = "yes")]
    pub presence: bool,
}

fn yes() -> bool {
    true
}

impl Default for RoomOptions {
    fn default() -> Self {
        Self {
            max_clients: None,
            persistent: false,
            roles: Vec::new(),
            presence: true,
        }
    }
}

/// A user present in a room, with how many of its connections are in it.
#[derive(Debug)]
pub(crate) struct Presence {
    pub user: Arc<User>,
    pub connections: usize,
    /// Join order, so `user_list` can list the first members when it must truncate.
    pub seq: u64,
}

/// Who is in a room.
#[derive(Debug, Default)]
pub(crate) struct Members {
    pub conns: HashMap<ClientId, Arc<ConnHandle>>,
    pub users: HashMap<UserId, Presence>,
    /// Set when the room is removed from the hub; a joiner that finds it set retries.
    pub removed: bool,
    /// The next [`Presence::seq`].
    pub next_seq: u64,
}

impl Members {
    /// Up to `limit` users, in the order they joined. Truncating costs O(n) only in rooms
    /// over the limit, and never a frame per member.
    pub fn user_list(&self, limit: usize) -> Vec<User> {
        let mut present: Vec<&Presence> = self.users.values().collect();
        if present.len() > limit {
            present.select_nth_unstable_by_key(limit, |p| p.seq);
            present.truncate(limit);
        }
        present.sort_unstable_by_key(|p| p.seq);
        present.into_iter().map(|p| (*p.user).clone()).collect()
    }
}

/// One room.
#[derive(Debug)]
pub struct Room {
    pub(crate) name: RoomName,
    pub(crate) created_at: Timestamp,
    /// Created (or configured) through the API: kept when empty until deleted.
    via_api: AtomicBool,
    options: RwLock<RoomOptions>,
    members: RwLock<Members>,
    /// Taken by each chat from id to delivery and by each `join` with `since` from entry
    /// to replay, so the two meet without a gap or a duplicate. Per room: no chat waits on
    /// another room.
    pub(crate) sequencer: tokio::sync::Mutex<()>,
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
            sequencer: tokio::sync::Mutex::new(()),
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

/// A room as the HTTP API reports it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomInfo {
    /// The room.
    pub name: RoomName,
    /// Connections in it.
    pub connections: usize,
    /// Distinct users in it.
    pub users: usize,
    /// When it was created (ms).
    pub created_at: Timestamp,
    /// Its options.
    #[serde(flatten)]
    pub options: RoomOptions,
    /// Its members (only on `GET /api/rooms/{name}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clients: Option<Vec<RoomClient>>,
}

/// One member connection in [`RoomInfo`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomClient {
    /// The connection.
    pub client_id: ClientId,
    /// Its user.
    pub user: Option<User>,
}
