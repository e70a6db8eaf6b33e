//! The node heartbeat: every interval this node records itself in `P:nodes` (a sorted
//! set of node → last beat, ms), refreshes its own key `P:node:<id>` (which expires one
//! TTL after the last beat), reads how many nodes beat within the TTL, and publishes a
//! heartbeat on `P:ctl`. Its own heartbeat coming back through the subscription is the
//! subscriber's liveness probe. Reaping dead nodes' members builds on `P:nodes`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Shared;
use super::wire::{self, Header, Kind};
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

async fn once(shared: &Shared) {
    let now = now_ms();
    let ttl = shared.options.ttl.as_millis() as u64;
    let message = wire::encode(&Header::new(shared.node(), Kind::Heartbeat), b"");
    let mut commands = shared.commands.clone();
    let beat = redis::pipe()
        .cmd("ZADD")
        .arg(shared.channel("nodes"))
        .arg(now)
        .arg(shared.node())
        .ignore()
        .cmd("SET")
        .arg(shared.node_channel(shared.node()))
        .arg(now)
        .arg("PX")
        .arg(ttl)
        .ignore()
        .cmd("ZCOUNT")
        .arg(shared.channel("nodes"))
        .arg(now.saturating_sub(ttl))
        .arg("+inf")
        .cmd("PUBLISH")
        .arg(shared.channel("ctl"))
        .arg(message)
        .ignore()
        .query_async::<(u64,)>(&mut commands)
        .await;
    match beat {
        Ok((nodes,)) => {
            shared.counters.nodes.store(nodes, Ordering::Relaxed);
            shared.counters.commands_ok.store(true, Ordering::Relaxed);
        }
        Err(err) => {
            shared.counters.commands_ok.store(false, Ordering::Relaxed);
            shared.warn_away(&err);
        }
    }
}
