//! The reconcile: this node's keys in Redis made to match its local side again. Presence
//! is written as things happen (`ENTERED`, `LEFT`, seats, slots, `P:conns`), and a write
//! that fails in a short Redis blip is not retried where it failed: every few heartbeats,
//! and as soon as beats succeed again after failing, a pass compares the keys this node
//! owns with [`LocalSide::presence_snapshot`](crate::broker::LocalSide::presence_snapshot)
//! and repairs them. A pass costs O(this node's own keys): its indexes
//! `P:n:<node>:{rooms,users,conns}` name every key it reads, and nothing is scanned.
//!
//! - **Missing** (a member, seat, slot or connection this node has that Redis lacks: a
//!   failed `ENTERED`, `CLAIM` or `connected`, a key deleted or lost) is written back,
//!   announcing nothing: those who missed a `user_join` see the user in the next
//!   `user_list`, which costs less than a storm of joins. Then the local side is read
//!   again and whatever left meanwhile is taken back out (compare-and-delete, silently:
//!   its own leave announced it), so a leave between the look and the write is never
//!   written back. [`restore`] (the rebuild) is this half alone.
//! - **Stale** (an entry of something this node no longer has: a failed `LEFT`,
//!   `FREE_SEAT` or `release`) is removed only when a second look, at least
//!   [`SECOND_LOOK`] later, finds the very same entry: a leave in flight (local side
//!   first, Redis next) looks the same for a moment, and so does a graceful stop, which
//!   leaves its rooms to the reaper and stops the broker within its close grace. A room
//!   entry removed this way whose user no live node has in the room any more is
//!   announced once, `user_leave` through the reaper's path; the script decides that
//!   atomically, as `LEFT` does. Seat counts are set to this node's count the same way
//!   (compare-and-set).
//!
//! A pass and a rebuild may overlap: every write is conditional (`HSETNX`,
//! compare-and-delete, compare-and-set) or the same whoever makes it, so no repair, and
//! no announcement, happens twice.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::{FromRedisValue, Script, Value};
use roomcast_protocol::RoomName;
use tokio::time::Instant;
use tracing::{info, warn};

use self::plan::{Here, Mode, Plan, RoomSeen, Seen, Stale, Suspects, plan};
use super::Shared;
use super::presence::Entry;

mod plan;

/// A periodic pass every this many heartbeats.
const EVERY: u32 = 5;
/// The least time between the two looks that remove a stale entry: longer than a command
/// stays in flight (2 s, twice when a script is loaded) and than a graceful stop takes
/// from its members' exits to the broker's stop (its 2 s close grace).
const SECOND_LOOK: Duration = Duration::from_secs(5);

/// Removes this node's entry of a user in a room if it is still `entry`; 1 when no other
/// live node has the user there (announce the leave), 0 when one does, -1 when the entry
/// changed (nothing done). KEYS: own hash, room's node set, `P:nodes`. ARGV: user,
/// entry, node, hash prefix, cutoff.
static REMOVE_MEMBER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return -1 end
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('HLEN', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[3]) end
for _, n in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], ARGV[5], '+inf')) do
  if n ~= ARGV[3] and redis.call('HEXISTS', ARGV[4] .. n, ARGV[1]) == 1 then return 0 end
end
return 1
",
    )
});

/// Sets this node's seats in a room to `here` if they are still `seen`. KEYS: seats
/// hash. ARGV: node, seen, here.
static SET_SEATS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') ~= tonumber(ARGV[2]) then return 0 end
if tonumber(ARGV[3]) > 0 then redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
else redis.call('HDEL', KEYS[1], ARGV[1]) end
return 1
",
    )
});

/// Makes the room's node set and this node's room index say what this node's keys of
/// the room are: listed while its hash has users, indexed while it has a hash or seats.
/// KEYS: own hash, room's node set, seats hash, node's room index. ARGV: node, room.
static TIDY_ROOM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local members = redis.call('EXISTS', KEYS[1]) == 1
if members then redis.call('SADD', KEYS[2], ARGV[1]) else redis.call('SREM', KEYS[2], ARGV[1]) end
if members or redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 then
  redis.call('SADD', KEYS[4], ARGV[2])
else
  redis.call('SREM', KEYS[4], ARGV[2])
end
return 0
",
    )
});

/// Keeps a user in this node's user index exactly while the user's hash has a
/// connection of this node. KEYS: user's hash, node's user index. ARGV: node, user.
static TIDY_USER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
for _, n in ipairs(redis.call('HVALS', KEYS[1])) do
  if n == ARGV[1] then redis.call('SADD', KEYS[2], ARGV[2]) return 0 end
end
redis.call('SREM', KEYS[2], ARGV[2])
return 0
",
    )
});

/// Reconciles until the broker stops: every [`EVERY`] heartbeats, at the first heartbeat
/// after beats succeed again, and when a suspect is due for its second look.
pub(super) async fn run(shared: Arc<Shared>) {
    let mut every = tokio::time::interval(shared.options.heartbeat);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let second_look = SECOND_LOOK.max(shared.options.heartbeat * 2);
    let mut suspects = Suspects::new();
    let (mut ticks, mut beating_since) = (0, None);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = shared.stop.cancelled() => return,
        }
        // 0 while beats fail (Redis is away: nothing to read or repair); a new value
        // once they succeed again, when the writes that failed meanwhile want repair.
        let since = shared.beating_since.load(Ordering::Relaxed);
        // While the node drains, its members leave without telling the presence (the
        // reaper will, a TTL after the last beat): its entries are not stale.
        if since == 0 || shared.local().is_ok_and(|local| local.draining()) {
            continue;
        }
        let back = beating_since.is_some_and(|seen| seen != since);
        beating_since = Some(since);
        ticks += 1;
        let now = Instant::now();
        let due = suspects
            .values()
            .any(|first| now.duration_since(*first) >= second_look);
        if !(back || due || ticks >= EVERY) {
            continue;
        }
        ticks = 0;
        match pass(&shared, &suspects, Mode::Full { second_look }).await {
            Ok(next) => suspects = next,
            Err(err) => {
                warn!(node = shared.node(), cause = %err, "reconcile failed; retried at the next pass");
            }
        }
    }
}

/// Writes back what this node has and its keys lack (the rebuild, once its node key is
/// back), announcing nothing.
///
/// # Errors
/// When Redis fails a command; what was written stays, and the next pass goes on.
pub(super) async fn restore(shared: &Shared) -> redis::RedisResult<()> {
    pass(shared, &Suspects::new(), Mode::Restore)
        .await
        .map(drop)
}

/// One pass: look, plan, repair. Returns the suspects for the next one.
async fn pass(shared: &Shared, previous: &Suspects, mode: Mode) -> redis::RedisResult<Suspects> {
    let Ok(local) = shared.local() else {
        return Ok(previous.clone());
    };
    let here = Here::from(local.presence_snapshot());
    let seen = read(shared, &here).await?;
    let plan = plan(shared.node(), &here, &seen, previous, Instant::now(), mode);
    let mut commands = shared.commands.clone();
    write_missing(shared, &plan).await?;
    for (room, seen, here) in &plan.raise {
        set_seats(shared, room, *seen, *here).await?;
    }
    let mut pipe = redis::pipe();
    for stale in &plan.remove {
        match stale {
            Stale::Member { room, user, entry } => {
                // Only the last one anywhere is announced, and only this pass removes it.
                if remove_member(shared, room, user, entry).await? == 1
                    && let Ok(gone) = serde_json::from_str::<Entry>(entry)
                {
                    // This node's own members heard the leave when it happened.
                    local
                        .announce_leaves(room.clone(), vec![gone.user], true)
                        .await;
                }
            }
            Stale::Seats { room, seen, here } => set_seats(shared, room, *seen, *here).await?,
            Stale::Slot { user, client } => {
                pipe.cmd("HDEL")
                    .arg(shared.user_key(user))
                    .arg(client)
                    .ignore();
            }
            Stale::Conn(client) => shared.queue_forget(&mut pipe, client),
        }
    }
    if !pipe.is_empty() {
        pipe.query_async::<()>(&mut commands).await?;
    }
    for room in &plan.tidy_rooms {
        let me = shared.node();
        let mut invocation = TIDY_ROOM.key(shared.room_hash(room, me));
        invocation
            .key(shared.room_key(room, "nodes"))
            .key(shared.room_key(room, "seats"))
            .key(shared.node_key(me, "rooms"))
            .arg(me)
            .arg(room.as_str());
        invocation.invoke_async::<i64>(&mut commands).await?;
    }
    for user in &plan.tidy_users {
        let mut invocation = TIDY_USER.key(shared.user_key(user));
        invocation
            .key(shared.node_key(shared.node(), "users"))
            .arg(shared.node())
            .arg(user);
        invocation.invoke_async::<i64>(&mut commands).await?;
    }
    if !plan.is_idle() {
        info!(
            node = shared.node(),
            members = plan.members.len(),
            slots = plan.slots.len(),
            connections = plan.conns.len(),
            removed = plan.remove.len(),
            "this node's presence keys reconciled"
        );
    }
    Ok(plan.suspects)
}

/// Reads this node's keys: its three indexes, then (one round trip) each room's hash,
/// seats and node set entry, each user's hash, and the connections' registry entries.
async fn read(shared: &Shared, here: &Here) -> redis::RedisResult<Seen> {
    let me = shared.node();
    let mut commands = shared.commands.clone();
    let (room_index, user_index, conn_index): (HashSet<String>, HashSet<String>, HashSet<String>) =
        redis::pipe()
            .cmd("SMEMBERS")
            .arg(shared.node_key(me, "rooms"))
            .cmd("SMEMBERS")
            .arg(shared.node_key(me, "users"))
            .cmd("SMEMBERS")
            .arg(shared.node_key(me, "conns"))
            .query_async(&mut commands)
            .await?;
    // Each once, in one order for the reads and for their replies.
    let rooms: Vec<RoomName> = room_index
        .iter()
        .filter_map(|name| RoomName::new(name.as_str()).ok())
        .chain(here.rooms.keys().cloned())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let users: Vec<&String> = union(&user_index, here.users.keys());
    let clients: Vec<&String> = union(&conn_index, here.conns.keys());
    let mut seen = Seen::default();
    if rooms.is_empty() && users.is_empty() && clients.is_empty() {
        return Ok(seen);
    }
    let mut pipe = redis::pipe();
    for room in &rooms {
        pipe.cmd("HGETALL")
            .arg(shared.room_hash(room, me))
            .cmd("HGET")
            .arg(shared.room_key(room, "seats"))
            .arg(me)
            .cmd("SISMEMBER")
            .arg(shared.room_key(room, "nodes"))
            .arg(me);
    }
    for user in &users {
        pipe.cmd("HGETALL").arg(shared.user_key(user));
    }
    if !clients.is_empty() {
        pipe.cmd("HMGET").arg(shared.conns_key()).arg(&clients);
    }
    let mut values = pipe
        .query_async::<Vec<Value>>(&mut commands)
        .await?
        .into_iter();
    let mut next = move || values.next().unwrap_or(Value::Nil);
    for room in rooms {
        let entries = HashMap::from_redis_value(next())?;
        let seats = Option::<u64>::from_redis_value(next())?.unwrap_or(0);
        let listed = bool::from_redis_value(next())?;
        let indexed = room_index.contains(room.as_str());
        let room_seen = RoomSeen {
            entries,
            seats,
            listed,
            indexed,
        };
        seen.rooms.insert(room, room_seen);
    }
    for user in users {
        let fields = HashMap::from_redis_value(next())?;
        seen.users
            .insert(user.clone(), (fields, user_index.contains(user)));
    }
    if !clients.is_empty() {
        let entries = Vec::<Option<String>>::from_redis_value(next())?;
        for (client, entry) in clients.into_iter().zip(entries) {
            let node = entry.as_deref().and_then(super::registry::entry_node);
            seen.conns
                .insert(client.clone(), (node, conn_index.contains(client)));
        }
    }
    Ok(seen)
}

fn union<'a>(
    index: &'a HashSet<String>,
    here: impl Iterator<Item = &'a String>,
) -> Vec<&'a String> {
    let mut all: Vec<&String> = index.iter().collect();
    all.extend(here.filter(|key| !index.contains(*key)));
    all
}

/// Writes what is missing (members with a fresh entry: when they entered is not known),
/// then takes back out, silently, what left the local side meanwhile.
async fn write_missing(shared: &Shared, plan: &Plan) -> redis::RedisResult<()> {
    if plan.members.is_empty() && plan.slots.is_empty() && plan.conns.is_empty() {
        return Ok(());
    }
    let me = shared.node();
    let mut pipe = redis::pipe();
    let mut members = Vec::with_capacity(plan.members.len());
    for (room, user) in &plan.members {
        let entry = Shared::entry(user);
        pipe.cmd("HSETNX")
            .arg(shared.room_hash(room, me))
            .arg(user.user_id.as_str())
            .arg(&entry)
            .cmd("SADD")
            .arg(shared.room_key(room, "nodes"))
            .arg(me)
            .ignore()
            .cmd("SADD")
            .arg(shared.node_key(me, "rooms"))
            .arg(room.as_str())
            .ignore();
        members.push((room, user.user_id.as_str(), entry));
    }
    for (user, client) in &plan.slots {
        pipe.cmd("HSETNX")
            .arg(shared.user_key(user))
            .arg(client)
            .arg(me)
            .cmd("SADD")
            .arg(shared.node_key(me, "users"))
            .arg(user)
            .ignore();
    }
    for info in &plan.conns {
        shared.queue_record(&mut pipe, info);
    }
    let mut commands = shared.commands.clone();
    let written: Vec<bool> = pipe.query_async(&mut commands).await?;
    let (members_written, slots_written) = written.split_at(members.len().min(written.len()));
    let Ok(local) = shared.local() else {
        return Ok(());
    };
    let again = Here::from(local.presence_snapshot());
    let mut undo = redis::pipe();
    for ((room, user, entry), _) in members
        .iter()
        .zip(members_written)
        .filter(|(_, written)| **written)
    {
        if !again.has_member(room, user) {
            remove_member(shared, room, user, entry).await?;
        }
    }
    for ((user, client), _) in plan
        .slots
        .iter()
        .zip(slots_written)
        .filter(|(_, written)| **written)
    {
        if !again.conns.contains_key(client) {
            undo.cmd("HDEL")
                .arg(shared.user_key(user))
                .arg(client)
                .ignore();
        }
    }
    for info in &plan.conns {
        let client = info.client_id.as_str();
        if !again.conns.contains_key(client) {
            shared.queue_forget(&mut undo, client);
        }
    }
    if undo.is_empty() {
        return Ok(());
    }
    undo.query_async::<()>(&mut commands).await
}

async fn remove_member(
    shared: &Shared,
    room: &RoomName,
    user: &str,
    entry: &str,
) -> redis::RedisResult<i64> {
    let me = shared.node();
    let mut invocation = REMOVE_MEMBER.key(shared.room_hash(room, me));
    invocation
        .key(shared.room_key(room, "nodes"))
        .key(shared.channel("nodes"))
        .arg(user)
        .arg(entry)
        .arg(me)
        .arg(shared.room_hash_prefix(room))
        .arg(shared.live_cutoff());
    let mut commands = shared.commands.clone();
    invocation.invoke_async(&mut commands).await
}

async fn set_seats(
    shared: &Shared,
    room: &RoomName,
    seen: u64,
    here: u64,
) -> redis::RedisResult<()> {
    let mut invocation = SET_SEATS.key(shared.room_key(room, "seats"));
    invocation.arg(shared.node()).arg(seen).arg(here);
    let mut commands = shared.commands.clone();
    invocation
        .invoke_async::<i64>(&mut commands)
        .await
        .map(drop)
}
