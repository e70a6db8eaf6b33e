//! What the HTTP API does to connections: list them, look one up, disconnect, read and
//! replace their data, seat them in rooms. Every operation is a [`NodeRequest`] through
//! the broker, answered by the node that holds the connection ([`Hub::answer`]); the API
//! never touches a connection's state itself. Also the server's counters: this node's,
//! and the cluster's, summed from every node's share ([`NodeRequest::Stats`]).

use std::collections::HashSet;
use std::sync::Arc;

use roomcast_protocol::{ClientId, CloseCode, ErrorCode, JoinReply, RoomName, UserId};
use serde_json::Value;

use super::{ConnHandle, Hub};
use crate::ServerError;
use crate::broker::{NodeAnswer, NodeRequest, NodeStats};
use crate::metrics::Metrics;
use crate::model::ConnectionInfo;
// Public as `hub::Stats` through `hub/mod.rs`'s `pub use self::admin::Stats`: the type
// lives in `model` because a node's share of it crosses the broker.
pub use crate::model::Stats;

/// A broker answer of the wrong kind: a bug in a broker, reported instead of a panic.
pub(super) fn unexpected(answer: &NodeAnswer) -> ServerError {
    ServerError::Broker(format!("unexpected answer {answer:?}"))
}

fn not_found(id: &ClientId) -> ServerError {
    ServerError::request(ErrorCode::NotFound, format!("no connection {id}"))
}

impl Hub {
    async fn request(&self, request: NodeRequest) -> Result<NodeAnswer, ServerError> {
        self.inner.broker.request(request).await
    }

    /// Every connection (or only authenticated ones), oldest first.
    ///
    /// # Errors
    /// Broker failures.
    pub async fn connections(&self, active_only: bool) -> Result<Vec<ConnectionInfo>, ServerError> {
        match self.request(NodeRequest::List { active_only }).await? {
            NodeAnswer::Connections(mut list) => {
                list.sort_by(|a, b| {
                    a.connected_at
                        .cmp(&b.connected_at)
                        .then_with(|| a.client_id.cmp(&b.client_id))
                });
                Ok(list)
            }
            other => Err(unexpected(&other)),
        }
    }

    /// One connection's info.
    ///
    /// # Errors
    /// `not_found`.
    pub async fn connection_info(&self, id: &ClientId) -> Result<ConnectionInfo, ServerError> {
        match self.request(NodeRequest::Info(id.clone())).await? {
            NodeAnswer::Connection(info) => Ok(*info),
            other => Err(unexpected(&other)),
        }
    }

    /// Closes one connection with 4000.
    ///
    /// # Errors
    /// `not_found`.
    pub async fn disconnect(&self, id: &ClientId) -> Result<(), ServerError> {
        self.request(NodeRequest::Disconnect(id.clone())).await?;
        Ok(())
    }

    /// Closes every connection with 4000; returns how many.
    ///
    /// # Errors
    /// Broker failures.
    pub async fn disconnect_all(&self) -> Result<usize, ServerError> {
        match self.request(NodeRequest::DisconnectAll).await? {
            NodeAnswer::Count(n) => Ok(n),
            other => Err(unexpected(&other)),
        }
    }

    /// A connection's application data (`null` until set).
    ///
    /// # Errors
    /// `not_found`.
    pub async fn client_data(&self, id: &ClientId) -> Result<Value, ServerError> {
        match self.request(NodeRequest::GetData(id.clone())).await? {
            NodeAnswer::Data(data) => Ok(data),
            other => Err(unexpected(&other)),
        }
    }

    /// Replaces a connection's application data.
    ///
    /// # Errors
    /// `not_found`.
    pub async fn set_client_data(&self, id: &ClientId, data: Value) -> Result<Value, ServerError> {
        match self.request(NodeRequest::SetData(id.clone(), data)).await? {
            NodeAnswer::Data(data) => Ok(data),
            other => Err(unexpected(&other)),
        }
    }

    /// Joins an authenticated connection to a room on the application's behalf.
    ///
    /// # Errors
    /// `not_found`, and what a join fails with.
    pub async fn add_member(
        &self,
        id: &ClientId,
        room: &RoomName,
    ) -> Result<JoinReply, ServerError> {
        match self
            .request(NodeRequest::AddMember(id.clone(), room.clone()))
            .await?
        {
            NodeAnswer::Joined(joined) => Ok(joined),
            other => Err(unexpected(&other)),
        }
    }

    /// Removes a connection from a room on the application's behalf; it gets a
    /// `user_leave` about itself.
    ///
    /// # Errors
    /// `not_found`, `not_member`.
    pub async fn remove_member(&self, id: &ClientId, room: &RoomName) -> Result<(), ServerError> {
        self.request(NodeRequest::RemoveMember(id.clone(), room.clone()))
            .await?;
        Ok(())
    }

    /// Performs `request` on this node's connections: what the broker's local side
    /// calls.
    pub(super) async fn answer(&self, request: NodeRequest) -> Result<NodeAnswer, ServerError> {
        let registry = &self.inner.registry;
        let conn = |id: &ClientId| registry.get(id).ok_or_else(|| not_found(id));
        Ok(match request {
            NodeRequest::List { active_only } => NodeAnswer::Connections(
                registry
                    .all()
                    .iter()
                    .map(|c| c.info())
                    .filter(|info| !active_only || info.authenticated)
                    .collect(),
            ),
            NodeRequest::Info(id) => NodeAnswer::Connection(Box::new(conn(&id)?.info())),
            NodeRequest::Disconnect(id) => {
                conn(&id)?.close(CloseCode::Disconnected);
                NodeAnswer::Count(1)
            }
            NodeRequest::DisconnectAll => {
                let all = registry.all();
                for conn in &all {
                    conn.close(CloseCode::Disconnected);
                }
                NodeAnswer::Count(all.len())
            }
            NodeRequest::GetData(id) => NodeAnswer::Data(conn(&id)?.state().data.clone()),
            NodeRequest::SetData(id, data) => {
                conn(&id)?.state().data = data.clone();
                NodeAnswer::Data(data)
            }
            NodeRequest::AddMember(id, room) => {
                let conn = self.authenticated(&id)?;
                NodeAnswer::Joined(self.join(&conn, &room, None).await?)
            }
            NodeRequest::RemoveMember(id, room) => {
                let conn = conn(&id)?;
                self.remove_local_member(&conn, &room).await?;
                NodeAnswer::Removed
            }
            NodeRequest::ClearRoom(room) => NodeAnswer::Count(self.clear_local_room(&room).await),
            NodeRequest::Rooms => NodeAnswer::Rooms(self.local_rooms()),
            NodeRequest::ReloadSubscriptions(user) => {
                self.reload_subscriptions(&user).await;
                NodeAnswer::Count(0)
            }
            NodeRequest::ConfigureRoom(room, options) => {
                let (_, created) = self.inner.rooms.configure(&room, options);
                NodeAnswer::Count(usize::from(created))
            }
            NodeRequest::Stats => NodeAnswer::Stats(vec![self.node_stats()]),
            NodeRequest::CheckUsers => {
                let hub = self.clone();
                self.spawn_background(async move { hub.check_users().await });
                NodeAnswer::Count(0)
            }
        })
    }

    /// A local connection that has said who it is: the API does not seat one that has
    /// not.
    fn authenticated(&self, id: &ClientId) -> Result<Arc<ConnHandle>, ServerError> {
        let conn = self.inner.registry.get(id).ok_or_else(|| not_found(id))?;
        if conn.user().is_none() {
            return Err(ServerError::request(
                ErrorCode::NotFound,
                format!("connection {id} has not authenticated"),
            ));
        }
        Ok(conn)
    }

    /// This node's counters.
    pub fn stats(&self) -> Stats {
        let m = &self.inner.metrics;
        Stats {
            connections: self.inner.registry.connection_count(),
            authenticated: usize::try_from(m.authenticated.get()).unwrap_or(0),
            users: self.inner.registry.user_count(),
            rooms: self.inner.rooms.count(),
            messages_in: Metrics::read(&m.messages_in),
            messages_out: Metrics::read(&m.messages_out),
            bytes_in: Metrics::read(&m.bytes_in),
            bytes_out: Metrics::read(&m.bytes_out),
            queue_drops: Metrics::read(&m.queue_drops),
            slow_consumer_closes: Metrics::read(&m.slow_consumer_closes),
            uptime_ms: u64::try_from(self.inner.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        }
    }
}

impl Hub {
    /// The cluster's counters, what `GET /api/stats` answers: see [`Stats::sum`]. A node that
    /// does not answer in time is missing from them, which is no error.
    ///
    /// # Errors
    /// Broker failures.
    pub async fn cluster_stats(&self) -> Result<Stats, ServerError> {
        Ok(Stats::sum(
            &self.stats_shares().await?,
            self.stats().uptime_ms,
        ))
    }

    /// Every answering node's share of the cluster's counters, this one's first.
    ///
    /// # Errors
    /// Broker failures.
    pub(crate) async fn stats_shares(&self) -> Result<Vec<NodeStats>, ServerError> {
        match self.request(NodeRequest::Stats).await? {
            NodeAnswer::Stats(shares) => Ok(shares),
            other => Err(unexpected(&other)),
        }
    }

    /// Whether this node runs the cluster's once-per-cluster work (see
    /// [`crate::broker::Broker::leads`]).
    pub fn leads(&self) -> bool {
        self.inner.broker.leads()
    }

    /// This node's share: its counters, and the names behind the counts that must not
    /// be summed.
    fn node_stats(&self) -> NodeStats {
        let mut users = HashSet::new();
        self.inner.registry.for_each_authenticated(|conn| {
            if let Some(user) = conn.user() {
                users.insert(user.user_id.clone());
            }
        });
        NodeStats {
            node: self.inner.config.cluster.node_id.clone(),
            stats: self.stats(),
            users: users.into_iter().collect(),
            rooms: self
                .inner
                .rooms
                .all()
                .iter()
                .map(|room| room.name.clone())
                .collect(),
        }
    }
}

impl Stats {
    /// The cluster's counters from its nodes' shares: connections, authenticated
    /// connections, frames, bytes, drops and slow-consumer closes are summed; users and rooms are the distinct
    /// names across nodes (a user or a room on two nodes is one); the uptime is the
    /// asking node's.
    pub(crate) fn sum(shares: &[NodeStats], uptime_ms: u64) -> Self {
        let mut total = Self {
            uptime_ms,
            ..Self::default()
        };
        let mut users: HashSet<&UserId> = HashSet::new();
        let mut rooms: HashSet<&RoomName> = HashSet::new();
        for share in shares {
            let s = &share.stats;
            total.connections += s.connections;
            total.authenticated += s.authenticated;
            total.messages_in += s.messages_in;
            total.messages_out += s.messages_out;
            total.bytes_in += s.bytes_in;
            total.bytes_out += s.bytes_out;
            total.queue_drops += s.queue_drops;
            total.slow_consumer_closes += s.slow_consumer_closes;
            users.extend(&share.users);
            rooms.extend(&share.rooms);
        }
        total.users = users.len();
        total.rooms = rooms.len();
        total
    }
}
