//! The node heartbeat: every interval this node records itself in `P:nodes` (a sorted
//! set of node → last beat, ms), refreshes its own key `P:node:<id>` (which expires one
//! TTL after the last beat), reads which nodes beat within the TTL (the live set the
//! presence scripts are given) and which did not (reaped, see [`reaper`]), and publishes
//! a heartbeat on `P:ctl`. Its own heartbeat coming back through the subscription is the
//! subscriber's liveness probe.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::wire::{self, Header, Kind};
use super::{Shared, reaper};
use crate::clock::now_ms;

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
    let nodes = shared.channel("nodes");
    let mut commands = shared.commands.clone();
    // `XX`: the node key is only refreshed, never created, here. When it is missing this
    // node was reaped, or Redis lost its data (a restart): the node rewrites its keys.
    let beat = redis::pipe()
        .cmd("SET")
        .arg(shared.node_channel(shared.node()))
        .arg(now)
        .arg("PX")
        .arg(ttl)
        .arg("XX")
        .cmd("ZADD")
        .arg(&nodes)
        .arg(now)
        .arg(shared.node())
        .ignore()
        .cmd("ZRANGEBYSCORE")
        .arg(&nodes)
        .arg(now.saturating_sub(ttl))
        .arg("+inf")
        .cmd("ZRANGEBYSCORE")
        .arg(&nodes)
        .arg("-inf")
        .arg(format!("({}", now.saturating_sub(ttl)))
        .cmd("PUBLISH")
        .arg(shared.channel("ctl"))
        .arg(message)
        .ignore()
        .query_async::<(Option<String>, Vec<String>, Vec<String>)>(&mut commands)
        .await;
    match beat {
        Ok((refreshed, live, dead)) => {
            shared
                .counters
                .nodes
                .store(live.len() as u64, Ordering::Relaxed);
            shared.counters.commands_ok.store(true, Ordering::Relaxed);
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
