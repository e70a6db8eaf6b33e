//! Dead nodes and lost keys (CLUSTER.md §2.4).
//!
//! - [`reap`]: a node that has not beaten within the TTL is dead. One live node (the one
//!   that takes `P:reap:<dead>`) deletes the dead node's presence, room by room, and has
//!   the local side announce `user_leave` for the users no live node still has there;
//!   then it drops the dead node's connections from the users' registries. A script per
//!   room does the delete and the "still here?" check at once, and does nothing if the
//!   dead node's key is back (it was only slow, and rewrote its keys).
//! - [`rebuild`]: a node whose own key is gone (it was reaped while slow, or Redis
//!   restarted empty) rewrites every key it owns from what it knows, announcing nothing:
//!   no join storm after a Redis restart; reaped, it announces its users' return
//!   ([`super::returned`]). Keys that are only partly wrong (a write lost
//!   in a blip) are the reconcile's ([`super::reconcile`]).

use std::sync::LazyLock;
use std::sync::atomic::Ordering;

use redis::Script;
use roomcast_protocol::{RoomName, User};
use tracing::{info, warn};

use super::Shared;

/// How long one node keeps the right to reap a dead one.
const REAP_LOCK_MS: u64 = 30_000;

/// Deletes a dead node's hash of one room; returns the entries of the users no live
/// node has there any more, and records each (room, user) in the dead node's tombstone
/// (see [`super::returned`]) in the same step. KEYS: the dead node's hash, the room's
/// node set, the room's seats, the dead node's key, `P:nodes`, the tombstone. ARGV: dead
/// node, hash prefix, cutoff, room, tombstone lifetime (ms).
static REAP_ROOM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[4]) == 1 then return {} end
local entries = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
local live = redis.call('ZRANGEBYSCORE', KEYS[5], ARGV[3], '+inf')
local gone = {}
for i = 1, #entries, 2 do
  local still = false
  for _, n in ipairs(live) do
    if n ~= ARGV[1] and redis.call('HEXISTS', ARGV[2] .. n, entries[i]) == 1 then
      still = true
      break
    end
  end
  if not still then
    gone[#gone + 1] = entries[i + 1]
    redis.call('SADD', KEYS[6], cjson.encode({ARGV[4], entries[i]}))
  end
end
if #gone > 0 then redis.call('PEXPIRE', KEYS[6], ARGV[5]) end
return gone
",
    )
});

/// Drops a dead node's connections from one user's registry, unless the node is back.
/// KEYS: the user's hash, the dead node's key. ARGV: dead node.
static REAP_USER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  if fields[i + 1] == ARGV[1] then redis.call('HDEL', KEYS[1], fields[i]) end
end
return 0
",
    )
});

/// Drops a dead node's entries from the connection registry and its indexes and its
/// place in `P:nodes`, unless the node is back. KEYS: `P:conns`, the node's connection
/// index, its room index, its user index, `P:nodes`, the node's key. ARGV: dead node.
static REAP_REST: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[6]) == 1 then return 0 end
for _, client in ipairs(redis.call('SMEMBERS', KEYS[2])) do redis.call('HDEL', KEYS[1], client) end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
redis.call('ZREM', KEYS[5], ARGV[1])
return 1
",
    )
});

/// Reaps `dead` unless another node does.
pub(super) async fn reap(shared: &Shared, dead: &str) {
    if dead == shared.node() {
        // This node was taken for dead (it was slow): its next beat rewrites its keys.
        return;
    }
    // A node that could not beat for a while (Redis was away) gives the others one TTL
    // to beat again before it takes any of them for dead: else the first node back
    // would reap every other one, and their users would hear a storm of leaves.
    let beating_since = shared.beating_since.load(Ordering::Relaxed);
    if beating_since == 0
        || crate::clock::now_ms().saturating_sub(beating_since)
            < shared.options.ttl.as_millis() as u64
    {
        return;
    }
    let mut commands = shared.commands.clone();
    let lock: redis::RedisResult<Option<String>> = redis::cmd("SET")
        .arg(format!("{}:reap:{dead}", shared.options.prefix))
        .arg(shared.node())
        .arg("NX")
        .arg("PX")
        .arg(REAP_LOCK_MS)
        .query_async(&mut commands)
        .await;
    if !matches!(lock, Ok(Some(_))) {
        return;
    }
    match reap_node(shared, dead).await {
        Ok(rooms) => {
            shared.counters.reaped.fetch_add(1, Ordering::Relaxed);
            info!(node = dead, rooms, "reaped a dead node's presence");
        }
        Err(err) => {
            warn!(node = dead, cause = %err, "reaping a dead node failed; retried at the next beat");
        }
    }
}

async fn reap_node(shared: &Shared, dead: &str) -> redis::RedisResult<usize> {
    let mut commands = shared.commands.clone();
    let rooms: Vec<String> = redis::cmd("SMEMBERS")
        .arg(shared.node_key(dead, "rooms"))
        .query_async(&mut commands)
        .await?;
    for name in &rooms {
        let Ok(room) = RoomName::new(name.as_str()) else {
            continue;
        };
        let mut invocation = REAP_ROOM.key(shared.room_hash(&room, dead));
        invocation
            .key(shared.room_key(&room, "nodes"))
            .key(shared.room_key(&room, "seats"))
            .key(shared.node_channel(dead))
            .key(shared.channel("nodes"))
            .key(super::returned::tombstone(shared, dead))
            .arg(dead)
            .arg(shared.room_hash_prefix(&room))
            .arg(shared.live_cutoff())
            .arg(room.as_str())
            .arg(super::returned::TOMBSTONE_MS);
        let gone: Vec<String> = invocation.invoke_async(&mut commands).await?;
        let users: Vec<User> = gone
            .iter()
            .filter_map(|raw| serde_json::from_str::<super::presence::Entry>(raw).ok())
            .map(|entry| entry.user)
            .collect();
        if !users.is_empty()
            && let Ok(local) = shared.local()
        {
            local.announce_leaves(room, users, false).await;
        }
    }
    let users: Vec<String> = redis::cmd("SMEMBERS")
        .arg(shared.node_key(dead, "users"))
        .query_async(&mut commands)
        .await?;
    // Every step checks that the node did not come back meanwhile (it was only slow,
    // and rewrites its keys): its keys are then its own again.
    for user in &users {
        let mut invocation = REAP_USER.key(format!("{}:u:{user}", shared.options.prefix));
        invocation.key(shared.node_channel(dead)).arg(dead);
        invocation.invoke_async::<i64>(&mut commands).await?;
    }
    let mut invocation = REAP_REST.key(shared.channel("conns"));
    invocation
        .key(shared.node_key(dead, "conns"))
        .key(shared.node_key(dead, "rooms"))
        .key(shared.node_key(dead, "users"))
        .key(shared.channel("nodes"))
        .key(shared.node_channel(dead))
        .arg(dead);
    invocation.invoke_async::<i64>(&mut commands).await?;
    Ok(rooms.len())
}

/// At start: what an earlier run of this node id left (a restart within the TTL, with a
/// fixed `ROOMCAST_NODE_ID`) is reaped like a dead node's, leaves announced, so that no
/// connection of the old process stays present.
pub(super) async fn clear_previous(shared: &Shared) {
    let me = shared.node();
    let mut commands = shared.commands.clone();
    let previous: redis::RedisResult<bool> = redis::cmd("EXISTS")
        .arg(shared.node_key(me, "rooms"))
        .arg(shared.node_key(me, "users"))
        .arg(shared.node_key(me, "conns"))
        .query_async::<u64>(&mut commands)
        .await
        .map(|n| n > 0);
    if !matches!(previous, Ok(true)) {
        return;
    }
    let _: redis::RedisResult<()> = redis::cmd("DEL")
        .arg(shared.node_channel(me))
        .query_async(&mut commands)
        .await;
    let reaped = reap_node(shared, me).await;
    super::returned::forget(shared, me).await;
    match reaped {
        Ok(rooms) => info!(
            node = me,
            rooms, "an earlier run of this node left presence: reaped"
        ),
        Err(err) => warn!(node = me, cause = %err, "an earlier run's presence not reaped"),
    }
}

/// Rewrites every key this node owns from the local side, its node key first (a reaper
/// that finds it stops touching this node's keys), announcing nothing. The writing is the
/// reconcile's [`restore`](super::reconcile::restore): it reads the local side again
/// afterwards and takes back what left meanwhile, so a leave between the snapshot and
/// the write is not written back.
pub(super) async fn rebuild(shared: &Shared) {
    let node = shared.node();
    let mut commands = shared.commands.clone();
    let key = redis::cmd("SET")
        .arg(shared.node_channel(node))
        .arg(crate::clock::now_ms())
        .arg("PX")
        .arg(shared.options.ttl.as_millis() as u64)
        .query_async::<()>(&mut commands)
        .await;
    let written = match key {
        Ok(()) => super::reconcile::restore(shared).await,
        Err(err) => Err(err),
    };
    match written {
        Ok(()) => {
            info!(node, "this node's presence keys written");
            super::returned::announce_return(shared).await;
        }
        Err(err) => {
            // Without its node key the next beat rebuilds again; with it, the next
            // reconcile pass writes what is still missing.
            warn!(node, cause = %err, "this node's presence keys not all written");
        }
    }
}
