//! Which node leads: the live node with the smallest id in `P:nodes` (it beat within
//! the TTL, judged on Redis's clock like every liveness check). The leader runs what the
//! cluster does once rather than once per node (the `stats_update` push, the demo feed).
//! No election: every node reads the same sorted set and applies the same rule. This
//! module owns this node's view, [`Shared::leading`], set from the live nodes each
//! heartbeat's script returns (no read of its own), so that
//! [`Broker::leads`](crate::broker::Broker::leads) is an atomic read.
//!
//! Hand-overs are not exact, and need not be for what a leader does: when the leader
//! dies its beat ages out after one TTL, and the next smallest id leads from its next
//! beat (so nobody leads for up to a TTL plus a heartbeat); when a node with a smaller
//! id starts, it leads at once and the old leader stops at its next beat (both lead for
//! up to a heartbeat). While Redis does not answer, a node keeps its last view: what it
//! leads then reaches its own clients at least.

use std::sync::atomic::Ordering;

use tracing::info;

use super::Shared;

/// Records whether this node has the smallest id among `live`, the nodes its beat found
/// alive.
pub(super) fn record(shared: &Shared, live: &[String]) {
    let leads = live.iter().min().is_some_and(|n| n == shared.node());
    if shared.leading.swap(leads, Ordering::Relaxed) != leads {
        info!(node = shared.node(), leads, "cluster leadership changed");
    }
}
