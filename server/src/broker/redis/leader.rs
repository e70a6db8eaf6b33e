//! Which node leads: the live node with the smallest id in `P:nodes` (it beat within
//! the TTL, judged on Redis's clock like every liveness check). The leader runs what the
//! cluster does once rather than once per node (the `stats_update` push, the demo feed).
//! No election: every node reads the same sorted set and applies the same rule. This
//! module owns this node's view, [`Shared::leading`], refreshed every heartbeat, so that
//! [`Broker::leads`](crate::broker::Broker::leads) is an atomic read.
//!
//! Hand-overs are not exact, and need not be for what a leader does: when the leader
//! dies its beat ages out after one TTL, and the next smallest id leads from its next
//! check (so nobody leads for up to a TTL plus a heartbeat); when a node with a smaller
//! id starts, it leads at once and the old leader stops at its next check (both lead for
//! up to a heartbeat). While Redis does not answer, a node keeps its last view: what it
//! leads then reaches its own clients at least.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tracing::info;

use super::Shared;

/// Checks every heartbeat, from one heartbeat on (the broker's start checked once),
/// until the broker stops.
pub(super) async fn watch(shared: Arc<Shared>) {
    let period = shared.options.heartbeat;
    let mut every = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => check(&shared).await,
            () = shared.stop.cancelled() => return,
        }
    }
}

/// Reads the live nodes and records whether this one has the smallest id among them.
/// A failed read changes nothing (the heartbeat warns about Redis being away).
pub(super) async fn check(shared: &Shared) {
    let Ok(live) = shared.live_node_ids().await else {
        return;
    };
    let leads = live.iter().min().is_some_and(|n| n == shared.node());
    if shared.leading.swap(leads, Ordering::Relaxed) != leads {
        info!(node = shared.node(), leads, "cluster leadership changed");
    }
}
