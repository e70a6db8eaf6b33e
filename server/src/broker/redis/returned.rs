//! A node that was reaped while it was only slow (stopped, stalled longer than the TTL)
//! and comes back. The reaper told every room that its users left; when the node rewrites
//! its keys ([`super::reaper::rebuild`]) those users are still here, so the rooms must
//! hear them join again, or other nodes' member lists stay short of them for good.
//!
//! The reaper leaves a tombstone, `P:reaped:<node>`: the (room, user) pairs it announced
//! as gone, written by the reaping script itself, kept for an hour. The returning node takes it (read and delete at once) and
//! announces `user_join` for each pair it still has, unless the user is in that room on
//! another live node (who then announced its own join). A rebuild after Redis lost its
//! data finds no tombstone and announces nothing, as before.

use std::collections::{BTreeMap, HashSet};
use std::sync::LazyLock;

use redis::Script;
use roomcast_protocol::{RoomName, User};
use tracing::{info, warn};

use super::Shared;

/// How long a tombstone waits for its node to come back.
pub(super) const TOMBSTONE_MS: u64 = 3_600_000;

/// 1 when `user` is in the room on a live node other than `me`. KEYS: `P:nodes`.
/// ARGV: me, the room's hash prefix, user, cutoff.
static ELSEWHERE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
for _, n in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[4], '+inf')) do
  if n ~= ARGV[1] and redis.call('HEXISTS', ARGV[2] .. n, ARGV[3]) == 1 then return 1 end
end
return 0
",
    )
});

/// `node`'s tombstone key.
pub(super) fn tombstone(shared: &Shared, node: &str) -> String {
    format!("{}:reaped:{node}", shared.options.prefix)
}

/// Forgets `node`'s tombstone (a fresh run of a fixed node id starts with nothing).
pub(super) async fn forget(shared: &Shared, node: &str) {
    let mut commands = shared.commands.clone();
    let _: redis::RedisResult<()> = redis::cmd("DEL")
        .arg(tombstone(shared, node))
        .query_async(&mut commands)
        .await;
}

/// After a rebuild: `user_join` for what the reaper announced as gone and this node
/// still has.
pub(super) async fn announce_return(shared: &Shared) {
    let Ok(local) = shared.local() else { return };
    let key = tombstone(shared, shared.node());
    let mut commands = shared.commands.clone();
    let taken: redis::RedisResult<(Vec<String>,)> = redis::pipe()
        .atomic()
        .cmd("SMEMBERS")
        .arg(&key)
        .cmd("DEL")
        .arg(&key)
        .ignore()
        .query_async(&mut commands)
        .await;
    let pairs = match taken {
        Ok((pairs,)) => pairs,
        Err(err) => {
            warn!(cause = %err, "the reaper's tombstone not read: no user_join for the returning users");
            return;
        }
    };
    if pairs.is_empty() {
        return;
    }
    let announced: HashSet<(String, String)> = pairs
        .iter()
        .filter_map(|raw| serde_json::from_str(raw).ok())
        .collect();
    let snapshot = local.presence_snapshot();
    let mut back: BTreeMap<RoomName, Vec<User>> = BTreeMap::new();
    for room in &snapshot.rooms {
        for user in &room.users {
            let pair = (room.name.to_string(), user.user_id.to_string());
            if !announced.contains(&pair) {
                continue;
            }
            let mut invocation = ELSEWHERE.key(shared.channel("nodes"));
            invocation
                .arg(shared.node())
                .arg(shared.room_hash_prefix(&room.name))
                .arg(user.user_id.as_str())
                .arg(shared.live_cutoff());
            let elsewhere: redis::RedisResult<u8> = invocation.invoke_async(&mut commands).await;
            if !matches!(elsewhere, Ok(1)) {
                back.entry(room.name.clone())
                    .or_default()
                    .push(user.clone());
            }
        }
    }
    let count: usize = back.values().map(Vec::len).sum();
    for (room, users) in back {
        local.announce_joins(room, users).await;
    }
    info!(
        node = shared.node(),
        count, "back after being reaped: its users joined again"
    );
}
