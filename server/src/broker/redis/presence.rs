//! [`RedisPresence`]: the cluster's presence and registries in Redis (CLUSTER.md §2.4,
//! §2.5). Every key a node writes is its own (node-owned keys), so a node can rewrite
//! all of them from what it knows, and a dead node's can be reaped without touching
//! anyone else's; the checks that must see every node (is the user in the room
//! elsewhere? is the room full? does the user have a free slot?) are Lua scripts, atomic
//! on the server, given the live nodes (those that beat within the TTL) as arguments:
//!
//! - `P:r:<room>:n:<node>`: hash user → `{"at":ms,"user":{...}}`, the room's users on
//!   that node; `P:r:<room>:seats`: hash node → connections in the room (`maxClients`);
//!   `P:n:<node>:rooms`: the rooms a node wrote (what the reaper visits);
//! - `P:u:<user>`: hash connection → node, the user's connections everywhere (the
//!   per-user limit, "is this user online"); `P:n:<node>:users`: the reaper's index.
//!
//! A write that fails here (Redis away) is not retried: the reconcile
//! ([`super::reconcile`]) brings this node's keys back to what it has.

use std::sync::{Arc, LazyLock};

use redis::Script;
use roomcast_protocol::{ClientId, RoomName, User, UserId};
use serde::{Deserialize, Serialize};

use super::Shared;
use crate::ServerError;
use crate::clock::now_ms;
use crate::presence::{Presence, PresenceFuture, RemoteMembers};

// Every script reads the live nodes itself (those whose last beat in `P:nodes` is at or
// after the cutoff it is given, one TTL ago), so that the answer holds at the moment the
// script runs, not at this node's last heartbeat.

/// Writes the user into this node's hash of the room; 1 when no other live node has
/// the user there. KEYS: own hash, room's node set, node's room set, `P:nodes`. ARGV:
/// user, entry, node, room, hash prefix, cutoff.
static ENTERED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[4])
for _, n in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], ARGV[6], '+inf')) do
  if n ~= ARGV[3] and redis.call('HEXISTS', ARGV[5] .. n, ARGV[1]) == 1 then return 0 end
end
return 1
",
    )
});

/// Removes the user from this node's hash of the room; 1 when no other live node has
/// the user there. KEYS: own hash, room's node set, `P:nodes`. ARGV: user, node, hash
/// prefix, cutoff.
static LEFT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('HLEN', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[2]) end
for _, n in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], ARGV[4], '+inf')) do
  if n ~= ARGV[2] and redis.call('HEXISTS', ARGV[3] .. n, ARGV[1]) == 1 then return 0 end
end
return 1
",
    )
});

/// Takes a seat unless the live nodes' seats reach the maximum (0: none). KEYS: seats
/// hash, node's room set, `P:nodes`. ARGV: node, max, room, cutoff.
static TAKE_SEAT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local max = tonumber(ARGV[2])
if max > 0 then
  local total = 0
  for _, n in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], ARGV[4], '+inf')) do
    total = total + tonumber(redis.call('HGET', KEYS[1], n) or '0')
  end
  if total >= max then return 0 end
end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('SADD', KEYS[2], ARGV[3])
return 1
",
    )
});

/// Gives a seat back. KEYS: seats hash. ARGV: node.
static FREE_SEAT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local left = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if left <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return left
",
    )
});

/// Forgets the user's connections on dead nodes, then adds this one unless the user
/// has `limit` already. KEYS: the user's hash, node's user set, `P:nodes`. ARGV:
/// connection, node, limit, user, cutoff.
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local live = {}
for _, n in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], ARGV[5], '+inf')) do live[n] = true end
live[ARGV[2]] = true
local fields = redis.call('HGETALL', KEYS[1])
local count = 0
for i = 1, #fields, 2 do
  if live[fields[i + 1]] then count = count + 1 else redis.call('HDEL', KEYS[1], fields[i]) end
end
if count >= tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[4])
return 1
",
    )
});

/// 1 when the user has a connection on a live node. KEYS: the user's hash, `P:nodes`.
/// ARGV: cutoff.
static ONLINE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
for _, node in ipairs(redis.call('HVALS', KEYS[1])) do
  local beat = redis.call('ZSCORE', KEYS[2], node)
  if beat and tonumber(beat) >= tonumber(ARGV[1]) then return 1 end
end
return 0
",
    )
});

/// A page of a room's users on the other live nodes: the count of those this node's
/// own hash does not list, then the entries of at most `limit` users whose id sorts
/// after the cursor, by id. O(users on the other nodes) on Redis's thread: nothing for a
/// room only this node holds. KEYS: `P:nodes`. ARGV: hash prefix, cutoff, this node,
/// cursor (`''` for none), limit, a user this node holds though its hash may not list
/// it yet (the joiner; `''` for none).
///
/// Ids compare byte by byte (`below`), as Rust's `String` does: Lua's `<` on strings is
/// `strcoll`, which follows the Redis process's locale.
static MEMBERS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local function below(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = a:byte(i), b:byte(i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
local own, after, limit, here = ARGV[1] .. ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]
local seen, ids, entries, others = {}, {}, {}, 0
for _, n in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[2], '+inf')) do
  if n ~= ARGV[3] then
    local flat = redis.call('HGETALL', ARGV[1] .. n)
    for i = 1, #flat, 2 do
      local u = flat[i]
      if not seen[u] then
        seen[u] = true
        if u ~= here and redis.call('HEXISTS', own, u) == 0 then others = others + 1 end
        if below(after, u) then ids[#ids + 1] = u; entries[u] = flat[i + 1] end
      end
    end
  end
end
table.sort(ids, below)
local out = {others}
for i = 1, math.min(limit, #ids) do out[#out + 1] = entries[ids[i]] end
return out
",
    )
});

/// One user in a room's hash: when its node saw it enter, and its public object.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Entry {
    pub at: u64,
    pub user: User,
}

/// The cluster's presence on the Redis the broker uses.
#[derive(Clone)]
pub(super) struct RedisPresence {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RedisPresence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPresence")
            .field("node", &self.shared.node())
            .finish_non_exhaustive()
    }
}

fn failed(err: &redis::RedisError) -> ServerError {
    ServerError::Broker(format!("presence unavailable: {err}"))
}

impl RedisPresence {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

impl Shared {
    pub(super) fn room_hash_prefix(&self, room: &RoomName) -> String {
        format!("{}:r:{room}:n:", self.options.prefix)
    }

    pub(super) fn room_hash(&self, room: &RoomName, node: &str) -> String {
        format!("{}{node}", self.room_hash_prefix(room))
    }

    pub(super) fn room_key(&self, room: &RoomName, what: &str) -> String {
        format!("{}:r:{room}:{what}", self.options.prefix)
    }

    pub(super) fn node_key(&self, node: &str, what: &str) -> String {
        format!("{}:n:{node}:{what}", self.options.prefix)
    }

    pub(super) fn user_key(&self, user: &(impl std::fmt::Display + ?Sized)) -> String {
        format!("{}:u:{user}", self.options.prefix)
    }

    /// The lowest last beat of a live node: one TTL ago, on Redis's clock (the offset
    /// the last heartbeat measured), since beats are scored on it.
    pub(super) fn live_cutoff(&self) -> u64 {
        let offset = self.clock_offset.load(std::sync::atomic::Ordering::Relaxed);
        now_ms()
            .saturating_add_signed(offset)
            .saturating_sub(self.options.ttl.as_millis() as u64)
    }

    pub(super) fn entry(user: &User) -> String {
        super::wire::json_string(&Entry {
            at: now_ms(),
            user: user.clone(),
        })
    }
}

impl Presence for RedisPresence {
    fn claim(&self, user: &UserId, client: &ClientId, limit: usize) -> PresenceFuture<'_, bool> {
        let s = &self.shared;
        let mut invocation = CLAIM.key(s.user_key(user));
        invocation
            .key(s.node_key(s.node(), "users"))
            .key(s.channel("nodes"))
            .arg(client.as_str())
            .arg(s.node())
            .arg(limit)
            .arg(user.as_str())
            .arg(s.live_cutoff());
        self.yes(invocation)
    }

    fn connected(&self, info: &crate::model::ConnectionInfo) -> PresenceFuture<'_, ()> {
        let info = info.clone();
        Box::pin(async move { self.shared.record_connection(&info).await })
    }

    fn release(&self, user: &UserId, client: &ClientId) -> PresenceFuture<'_, ()> {
        let s = &self.shared;
        let mut commands = s.commands.clone();
        let (key, field) = (s.user_key(user), client.to_string());
        let client = client.clone();
        Box::pin(async move {
            redis::cmd("HDEL")
                .arg(key)
                .arg(field)
                .query_async::<()>(&mut commands)
                .await
                .map_err(|e| failed(&e))?;
            self.shared.forget_connection(&client).await
        })
    }

    fn is_online(&self, user: &UserId) -> PresenceFuture<'_, bool> {
        let s = &self.shared;
        let mut invocation = ONLINE.key(s.user_key(user));
        invocation.key(s.channel("nodes")).arg(s.live_cutoff());
        self.yes(invocation)
    }

    fn take_seat(&self, room: &RoomName, max: Option<usize>) -> PresenceFuture<'_, bool> {
        let s = &self.shared;
        let mut invocation = TAKE_SEAT.key(s.room_key(room, "seats"));
        invocation
            .key(s.node_key(s.node(), "rooms"))
            .key(s.channel("nodes"))
            .arg(s.node())
            .arg(max.unwrap_or(0))
            .arg(room.as_str())
            .arg(s.live_cutoff());
        self.yes(invocation)
    }

    fn free_seat(&self, room: &RoomName) -> PresenceFuture<'_, ()> {
        let s = &self.shared;
        let mut invocation = FREE_SEAT.key(s.room_key(room, "seats"));
        invocation.arg(s.node());
        let mut commands = s.commands.clone();
        Box::pin(async move {
            invocation
                .invoke_async::<i64>(&mut commands)
                .await
                .map(drop)
                .map_err(|e| failed(&e))
        })
    }

    fn entered(&self, room: &RoomName, user: &User) -> PresenceFuture<'_, bool> {
        let s = &self.shared;
        let mut invocation = ENTERED.key(s.room_hash(room, s.node()));
        invocation
            .key(s.room_key(room, "nodes"))
            .key(s.node_key(s.node(), "rooms"))
            .key(s.channel("nodes"))
            .arg(user.user_id.as_str())
            .arg(Shared::entry(user))
            .arg(s.node())
            .arg(room.as_str())
            .arg(s.room_hash_prefix(room))
            .arg(s.live_cutoff());
        self.yes(invocation)
    }

    fn left(&self, room: &RoomName, user: &User) -> PresenceFuture<'_, bool> {
        let s = &self.shared;
        let mut invocation = LEFT.key(s.room_hash(room, s.node()));
        invocation
            .key(s.room_key(room, "nodes"))
            .key(s.channel("nodes"))
            .arg(user.user_id.as_str())
            .arg(s.node())
            .arg(s.room_hash_prefix(room))
            .arg(s.live_cutoff());
        self.yes(invocation)
    }

    fn members(
        &self,
        room: &RoomName,
        after: Option<&UserId>,
        limit: usize,
        here: Option<&UserId>,
    ) -> PresenceFuture<'_, Option<RemoteMembers>> {
        let s = &self.shared;
        let mut invocation = MEMBERS.key(s.channel("nodes"));
        invocation
            .arg(s.room_hash_prefix(room))
            .arg(s.live_cutoff())
            .arg(s.node())
            .arg(after.map_or("", UserId::as_str))
            .arg(limit)
            .arg(here.map_or("", UserId::as_str));
        let mut commands = s.commands.clone();
        Box::pin(async move {
            let (others, entries): (u64, Vec<String>) = invocation
                .invoke_async::<Vec<redis::Value>>(&mut commands)
                .await
                .map_err(|e| failed(&e))
                .and_then(|reply| {
                    page_of(reply).ok_or_else(|| {
                        ServerError::Broker("presence: unexpected members reply".to_owned())
                    })
                })?;
            let users = entries
                .iter()
                .filter_map(|raw| serde_json::from_str::<Entry>(raw).ok())
                .map(|entry| entry.user)
                .collect();
            Ok(Some(RemoteMembers { users, others }))
        })
    }
}

impl RedisPresence {
    /// Runs a script that answers 1 for yes.
    fn yes(&self, invocation: redis::ScriptInvocation<'static>) -> PresenceFuture<'_, bool> {
        let mut commands = self.shared.commands.clone();
        Box::pin(async move {
            invocation
                .invoke_async::<i64>(&mut commands)
                .await
                .map(|answer| answer == 1)
                .map_err(|e| failed(&e))
        })
    }
}

/// The MEMBERS script's answer: the count, then the entries.
fn page_of(reply: Vec<redis::Value>) -> Option<(u64, Vec<String>)> {
    let mut items = reply.into_iter();
    let others = match items.next()? {
        redis::Value::Int(n) => u64::try_from(n).ok()?,
        _ => return None,
    };
    let entries = items
        .map(|item| redis::from_redis_value::<String>(item).ok())
        .collect::<Option<Vec<String>>>()?;
    Some((others, entries))
}
