//! The cluster's connection registry (CLUSTER.md §2.5): `P:conns`, a hash connection →
//! `{"node", "info"}` with what a connection was when it authenticated, and
//! `P:n:<node>:conns`, each node's index of it. Only the owner writes an entry (at
//! admission, removed when the connection goes; a dead node's are reaped), so the
//! registry answers for a node that cannot: a listing still shows a silent node's
//! connections, and an acknowledged delivery still reports each of its recipients,
//! `timeout` while the node lives and `disconnected` once it is dead.

use std::collections::HashSet;

use roomcast_protocol::{ClientId, UserId};
use serde::{Deserialize, Serialize};

use super::Shared;
use crate::ServerError;
use crate::broker::Target;
use crate::model::ConnectionInfo;

/// One connection in the registry.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    node: String,
    info: ConnectionInfo,
}

/// The node a registry entry names, `None` when it is not one.
pub(super) fn entry_node(raw: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Owner {
        node: String,
    }
    serde_json::from_str::<Owner>(raw)
        .ok()
        .map(|owner| owner.node)
}

fn failed(err: &redis::RedisError) -> ServerError {
    ServerError::Broker(format!("connection registry unavailable: {err}"))
}

impl Shared {
    pub(super) fn conns_key(&self) -> String {
        self.channel("conns")
    }

    /// Where a message for one connection goes: its owner's own channel when the
    /// registry names another node, else every node's (a connection still
    /// authenticating is not registered yet, and a registry that cannot be read must not
    /// lose the message). Any other target: its usual channel.
    pub(super) async fn route(&self, target: &Target) -> String {
        let Target::Client(client) = target else {
            return self.target_channel(target);
        };
        self.route_client(client).await
    }

    /// [`Self::route`] for one connection.
    pub(super) async fn route_client(&self, client: &ClientId) -> String {
        let mut commands = self.commands.clone();
        let raw: Option<String> = redis::cmd("HGET")
            .arg(self.conns_key())
            .arg(client.as_str())
            .query_async(&mut commands)
            .await
            .unwrap_or(None);
        match raw.as_deref().and_then(entry_node) {
            Some(owner) if owner != self.node() => self.node_channel(&owner),
            _ => self.channel("bcast"),
        }
    }

    /// Records a connection of this node.
    pub(super) async fn record_connection(&self, info: &ConnectionInfo) -> Result<(), ServerError> {
        let mut pipe = redis::pipe();
        self.queue_record(&mut pipe, info);
        let mut commands = self.commands.clone();
        pipe.query_async::<()>(&mut commands)
            .await
            .map_err(|e| failed(&e))
    }

    /// Adds the writes that record `info` as this node's to `pipe` (their replies
    /// ignored), for whoever writes several at once (the reconcile).
    pub(super) fn queue_record(&self, pipe: &mut redis::Pipeline, info: &ConnectionInfo) {
        let entry = super::wire::json_string(&Entry {
            node: self.node().to_owned(),
            info: info.clone(),
        });
        pipe.cmd("HSET")
            .arg(self.conns_key())
            .arg(info.client_id.as_str())
            .arg(entry)
            .ignore()
            .cmd("SADD")
            .arg(self.node_key(self.node(), "conns"))
            .arg(info.client_id.as_str())
            .ignore();
    }

    /// Forgets a connection of this node.
    pub(super) async fn forget_connection(&self, client: &ClientId) -> Result<(), ServerError> {
        let mut pipe = redis::pipe();
        self.queue_forget(&mut pipe, client.as_str());
        let mut commands = self.commands.clone();
        pipe.query_async::<()>(&mut commands)
            .await
            .map_err(|e| failed(&e))
    }

    /// Adds the writes that forget this node's connection `client` to `pipe`.
    pub(super) fn queue_forget(&self, pipe: &mut redis::Pipeline, client: &str) {
        pipe.cmd("HDEL")
            .arg(self.conns_key())
            .arg(client)
            .ignore()
            .cmd("SREM")
            .arg(self.node_key(self.node(), "conns"))
            .arg(client)
            .ignore();
    }

    /// The connections of `node` as the registry has them.
    pub(super) async fn connections_of(
        &self,
        node: &str,
    ) -> Result<Vec<ConnectionInfo>, ServerError> {
        let mut commands = self.commands.clone();
        let clients: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.node_key(node, "conns"))
            .query_async(&mut commands)
            .await
            .map_err(|e| failed(&e))?;
        if clients.is_empty() {
            return Ok(Vec::new());
        }
        let entries: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.conns_key())
            .arg(&clients)
            .query_async(&mut commands)
            .await
            .map_err(|e| failed(&e))?;
        Ok(entries
            .into_iter()
            .flatten()
            .filter_map(|raw| serde_json::from_str::<Entry>(&raw).ok())
            .filter(|entry| entry.node == node)
            .map(|entry| entry.info)
            .collect())
    }

    /// The nodes that beat within the TTL (this one included).
    pub(super) async fn live_node_ids(&self) -> Result<Vec<String>, ServerError> {
        let mut commands = self.commands.clone();
        redis::cmd("ZRANGEBYSCORE")
            .arg(self.channel("nodes"))
            .arg(self.live_cutoff())
            .arg("+inf")
            .query_async(&mut commands)
            .await
            .map_err(|e| failed(&e))
    }

    /// Whether `node` is alive: its key still exists (it beat within the TTL) and its
    /// subscriber is still connected to Redis. A killed process's sockets close at once,
    /// so Redis drops its subscriptions right away, long before its key expires; a
    /// stopped or slow one keeps them (it may still answer).
    pub(super) async fn is_alive(&self, node: &str) -> bool {
        let mut commands = self.commands.clone();
        let channel = self.node_channel(node);
        let answer: redis::RedisResult<(bool, (String, usize))> = redis::pipe()
            .cmd("EXISTS")
            .arg(&channel)
            .cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(&channel)
            .query_async(&mut commands)
            .await;
        answer.is_ok_and(|(exists, (_, subscribers))| exists && subscribers > 0)
    }

    /// The connections of `node` that a delivery to `target` (but `except`) names, as
    /// far as the registry tells: its users' rooms come from the room presence.
    pub(super) async fn recipients_on(
        &self,
        node: &str,
        target: &Target,
        except: Option<&ClientId>,
    ) -> Result<Vec<ClientId>, ServerError> {
        let connections = self.connections_of(node).await?;
        let in_rooms: Option<HashSet<UserId>> = match target {
            Target::Room(room) => Some(self.room_users_on(node, std::slice::from_ref(room)).await?),
            Target::Rooms(rooms) => Some(self.room_users_on(node, rooms).await?),
            _ => None,
        };
        Ok(connections
            .into_iter()
            .filter(|info| Some(&info.client_id) != except)
            .filter(|info| {
                let user = info.user.as_ref();
                match target {
                    Target::All => true,
                    Target::Client(c) => &info.client_id == c,
                    Target::User(u) => user.is_some_and(|x| &x.user_id == u),
                    Target::Users(us) => user.is_some_and(|x| us.contains(&x.user_id)),
                    Target::Role(role) => user.is_some_and(|x| x.has_role(role)),
                    Target::Room(_) | Target::Rooms(_) => user.is_some_and(|x| {
                        in_rooms
                            .as_ref()
                            .is_some_and(|users| users.contains(&x.user_id))
                    }),
                    Target::Topic(_) => false,
                }
            })
            .map(|info| info.client_id)
            .collect())
    }

    async fn room_users_on(
        &self,
        node: &str,
        rooms: &[roomcast_protocol::RoomName],
    ) -> Result<HashSet<UserId>, ServerError> {
        let mut pipe = redis::pipe();
        for room in rooms {
            pipe.cmd("HKEYS").arg(self.room_hash(room, node));
        }
        let mut commands = self.commands.clone();
        let per_room: Vec<Vec<String>> = pipe
            .query_async(&mut commands)
            .await
            .map_err(|e| failed(&e))?;
        Ok(per_room
            .into_iter()
            .flatten()
            .filter_map(|u| UserId::new(u).ok())
            .collect())
    }
}
