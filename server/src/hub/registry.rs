//! The connection registry: this node's connections by id, the authenticated ones by
//! user, and the count held against the total connection limit. It owns those maps and
//! nothing else; rooms, topics and deliveries read it, and only [`super::Hub`]'s
//! admission and unregistration change it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;
use roomcast_protocol::{ClientId, CloseCode, UserId};
use tokio::sync::oneshot;

use super::conn::ConnHandle;
use crate::clock::now_ms;

/// What a new connection's task receives from [`Registry::register`].
#[derive(Debug)]
pub(crate) struct Registration {
    pub handle: Arc<ConnHandle>,
    pub close_rx: oneshot::Receiver<Option<CloseCode>>,
}

/// A reserved slot under the total connection limit, released on drop.
#[derive(Debug)]
pub struct ConnectionPermit {
    registry: Arc<Registry>,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.registry.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// This node's connections.
#[derive(Debug)]
pub(crate) struct Registry {
    conns: DashMap<ClientId, Arc<ConnHandle>>,
    users: DashMap<UserId, Vec<Arc<ConnHandle>>>,
    /// Connections open or being upgraded, for the total limit.
    open: AtomicUsize,
    max_connections: usize,
    /// Each connection's send queue bound, in bytes.
    send_queue_bytes: usize,
}

impl Registry {
    pub(crate) fn new(max_connections: usize, send_queue_bytes: usize) -> Self {
        Self {
            conns: DashMap::new(),
            users: DashMap::new(),
            open: AtomicUsize::new(0),
            max_connections,
            send_queue_bytes,
        }
    }

    /// Reserves a slot under the total connection limit, `None` when full.
    pub(crate) fn try_reserve(self: &Arc<Self>) -> Option<ConnectionPermit> {
        let max = self.max_connections;
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| ConnectionPermit {
                registry: self.clone(),
            })
    }

    /// Registers a freshly upgraded connection under a new id.
    pub(crate) fn register(&self, remote: SocketAddr, compress: bool) -> Registration {
        let id = ClientId::new(uuid::Uuid::new_v4().simple().to_string())
            .unwrap_or_else(|e| unreachable!("uuids are valid client ids: {e}"));
        let (close_tx, close_rx) = oneshot::channel();
        let handle = Arc::new(ConnHandle::new(
            id.clone(),
            remote,
            compress,
            now_ms(),
            self.send_queue_bytes,
            close_tx,
        ));
        self.conns.insert(id, handle.clone());
        Registration { handle, close_rx }
    }

    /// Adds an authenticated connection to its user's list. `announce` runs while the
    /// user's entry is locked: deliveries to the user (and to everyone) walk that entry,
    /// so nothing `announce` queues can be overtaken by them.
    pub(crate) fn add_user_conn(
        &self,
        conn: &Arc<ConnHandle>,
        user: &UserId,
        announce: impl FnOnce(),
    ) {
        let mut list = self.users.entry(user.clone()).or_default();
        announce();
        list.push(conn.clone());
    }

    /// Takes `conn` out of its user's list; returns whether the list is now empty.
    pub(crate) fn remove_user_conn(&self, conn: &Arc<ConnHandle>, user: &UserId) -> bool {
        self.users.get_mut(user).is_some_and(|mut list| {
            list.retain(|c| !Arc::ptr_eq(c, conn));
            list.is_empty()
        })
    }

    /// Drops the user's entry if it has no connection left; returns whether it did.
    pub(crate) fn forget_user_if_idle(&self, user: &UserId) -> bool {
        self.users
            .remove_if(user, |_, list| list.is_empty())
            .is_some()
    }

    /// Forgets a connection; returns whether it was registered.
    pub(crate) fn forget(&self, id: &ClientId) -> bool {
        self.conns.remove(id).is_some()
    }

    /// A connection by id.
    pub(crate) fn get(&self, id: &ClientId) -> Option<Arc<ConnHandle>> {
        self.conns.get(id).map(|c| c.clone())
    }

    /// Every connection, authenticated or not.
    pub(crate) fn all(&self) -> Vec<Arc<ConnHandle>> {
        self.conns.iter().map(|c| c.clone()).collect()
    }

    /// How many authenticated connections `user` has here.
    pub(crate) fn user_connections(&self, user: &UserId) -> usize {
        self.users.get(user).map_or(0, |list| list.len())
    }

    /// Calls `f` for each connection of `user`. Holds the user's entry: `f` must not block.
    pub(crate) fn for_each_of_user(&self, user: &UserId, f: impl FnMut(&Arc<ConnHandle>)) {
        if let Some(list) = self.users.get(user) {
            list.iter().for_each(f);
        }
    }

    /// The users with authenticated connections here.
    pub(crate) fn user_ids(&self) -> Vec<UserId> {
        self.users.iter().map(|entry| entry.key().clone()).collect()
    }

    /// Calls `f` for each authenticated connection. Holds map shards: `f` must not block.
    pub(crate) fn for_each_authenticated(&self, mut f: impl FnMut(&Arc<ConnHandle>)) {
        for list in &self.users {
            list.iter().for_each(&mut f);
        }
    }

    /// Open connections, including ones still authenticating.
    pub(crate) fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Distinct connected users.
    pub(crate) fn user_count(&self) -> usize {
        self.users.len()
    }
}
