//! The node heartbeat: every interval this node records itself in `P:nodes` (a sorted
//! set of node → last beat, ms), refreshes its own key `P:node:<id>` (which expires one
//! TTL after the last beat), reads which nodes beat within the TTL (the live set the
//! presence scripts are given) and which did not (reaped, see [`reaper`]), and publishes
//! a heartbeat on `P:ctl`. Its own heartbeat coming back through the subscription is the
//! subscriber's liveness probe.

use std::sync::{Arc, LazyLock};

use redis::Script;
use std::sync::atomic::Ordering;

use super::wire::{self, Header, Kind};
use super::{Shared, reaper};
use crate::clock::now_ms;

/// One beat, on Redis's clock: refreshes the node key (`XX`: only refreshed, never
/// created here; when it is missing the node was reaped, or Redis lost its data, and the
/// node rewrites its keys), records the beat in `P:nodes`, reads the live and the dead
/// nodes, publishes the heartbeat. KEYS: node key, `P:nodes`, `P:ctl`. ARGV: node, TTL,
/// heartbeat message. Returns refreshed (1/0), Redis's time (ms), live, dead.
static BEAT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local refreshed = redis.call('SET', KEYS[1], now, 'PX', ttl, 'XX')
redis.call('ZADD', KEYS[2], now, ARGV[1])
local live = redis.call('ZRANGEBYSCORE', KEYS[2], now - ttl, '+inf')
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. (now - ttl))
redis.call('PUBLISH', KEYS[3], ARGV[3])
if refreshed then refreshed = 1 else refreshed = 0 end
return {refreshed, now, live, dead}
",
    )
});

/// Beats until the broker stops.
pub(super) async fn beat(shared: Arc<Shared>) {
    let mut every = tokio::time::interval(shared.options.heartbeat);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => once(&shared).await,
            () = shared.stop.cancelled() => return,
        }
    }
}

/// Has the local side check its rooms' positions against the store every two
/// heartbeats, until the broker stops: the bus may lose a room's last chats, which no
/// later chat would reveal, and while Redis is away this is how chats cross nodes. Its
/// own task, so that neither a slow store nor a Redis that is away delays the other.
pub(super) async fn check_positions(shared: Arc<Shared>) {
    let mut every = tokio::time::interval(shared.options.heartbeat * 2);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {
                if let Ok(local) = shared.local() {
                    local.check_positions().await;
                }
            }
            () = shared.stop.cancelled() => return,
        }
    }
}

/// One beat (also run at start, so that the node is live before it serves).
pub(super) async fn once(shared: &Shared) {
    let now = now_ms();
    let ttl = shared.options.ttl.as_millis() as u64;
    let message = wire::encode(&Header::new(shared.node(), Kind::Heartbeat), b"");
    let mut invocation = BEAT.key(shared.node_channel(shared.node()));
    invocation
        .key(shared.channel("nodes"))
        .key(shared.channel("ctl"))
        .arg(shared.node())
        .arg(ttl)
        .arg(message);
    let mut commands = shared.commands.clone();
    let beat = invocation
        .invoke_async::<(i64, i64, Vec<String>, Vec<String>)>(&mut commands)
        .await
        .map(|(refreshed, redis_now, live, dead)| {
            // Liveness is judged on Redis's clock, so nodes whose clocks disagree still
            // agree on who is alive: this node's cutoffs add the offset.
            shared
                .clock_offset
                .store(redis_now - now.cast_signed(), Ordering::Relaxed);
            ((refreshed == 1).then_some(()), live, dead)
        });
    match beat {
        Ok((refreshed, live, dead)) => {
            shared
                .counters
                .nodes
                .store(live.len() as u64, Ordering::Relaxed);
            shared.counters.commands_ok.store(true, Ordering::Relaxed);
            super::leader::record(shared, &live);
            let _ =
                shared
                    .beating_since
                    .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
            if refreshed.is_none() {
                reaper::rebuild(shared).await;
            }
            for node in dead {
                reaper::reap(shared, &node).await;
            }
        }
        Err(err) => {
            shared.counters.commands_ok.store(false, Ordering::Relaxed);
            shared.beating_since.store(0, Ordering::Relaxed);
            shared.warn_away(&err);
        }
    }
}
