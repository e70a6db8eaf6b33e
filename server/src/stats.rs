//! `stats_update`: the live numbers of the admin dashboard, the cluster's, pushed to every
//! connection of a user with the admin role on every node. One node pushes them: the one
//! that [leads](crate::broker::Broker::leads) at the tick (every node runs this task and
//! asks at each tick, so the push moves when the leader goes). One serialized frame per
//! tick whatever the number of admins, and nothing per connection. This task owns the
//! previous tick's counters, from which it computes the rates.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use roomcast_protocol::ServerMessage;
use tokio::time::MissedTickBehavior;
use tracing::warn;

use crate::broker::{NodeStats, Target};
use crate::hub::{Hub, Stats};
use crate::model::ADMIN_ROLE;
use crate::now_ms;

/// Frames in and out per node at the previous push.
type Counters = HashMap<String, (u64, u64)>;

/// Pushes `stats_update` every `interval`, while this node leads, until the hub shuts
/// down.
pub(crate) async fn push_stats(hub: Hub, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // `None` until this node has pushed since it last led: its first push has no rates.
    let mut last: Option<(Instant, Counters)> = None;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = hub.shutdown_token().cancelled() => return,
        }
        if !hub.leads() {
            last = None;
            continue;
        }
        // Taken at the tick, before the survey, so that timestamps are an interval apart
        // however long the other nodes take to answer.
        let (now, timestamp) = (Instant::now(), now_ms());
        let shares = match hub.stats_shares().await {
            Ok(shares) => shares,
            Err(err) => {
                warn!(cause = %err, "stats_update not sent: no counters");
                continue;
            }
        };
        let stats = Stats::sum(&shares, 0);
        let counters: Counters = shares
            .iter()
            .map(|s| (s.node.clone(), (s.stats.messages_in, s.stats.messages_out)))
            .collect();
        let (messages_in_per_sec, messages_out_per_sec) = match &last {
            Some((then, before)) => rates(before, &shares, now.duration_since(*then)),
            None => (0.0, 0.0),
        };
        let message = ServerMessage::StatsUpdate {
            connections: stats.connections as u64,
            users: stats.users as u64,
            rooms: stats.rooms as u64,
            messages_in_per_sec,
            messages_out_per_sec,
            timestamp,
        };
        // `broadcast` takes a `Value`, whose keys go out sorted, as they did with `json!`.
        if let Err(err) = hub
            .broadcast(Target::Role(ADMIN_ROLE.into()), &message.to_value())
            .await
        {
            warn!(cause = %err, "stats_update not sent");
        }
        last = Some((now, counters));
    }
}

/// Frames in and out per second over `elapsed`, to one decimal, summed over the nodes in
/// both samples: a node that did not answer one survey, or just started, adds nothing
/// rather than its whole count.
fn rates(before: &Counters, shares: &[NodeStats], elapsed: Duration) -> (f64, f64) {
    let seconds = elapsed.as_secs_f64();
    let (mut frames_in, mut frames_out) = (0_u64, 0_u64);
    for share in shares {
        if let Some((was_in, was_out)) = before.get(&share.node) {
            frames_in += share.stats.messages_in.saturating_sub(*was_in);
            frames_out += share.stats.messages_out.saturating_sub(*was_out);
        }
    }
    let rate = |count: u64| {
        #[expect(
            clippy::cast_precision_loss,
            reason = "a rate on a chart: 2^52 frames per tick is not a concern"
        )]
        let count = count as f64;
        if seconds > 0.0 {
            (count / seconds * 10.0).round() / 10.0
        } else {
            0.0
        }
    };
    (rate(frames_in), rate(frames_out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(node: &str, messages_in: u64, messages_out: u64) -> NodeStats {
        NodeStats {
            node: node.into(),
            stats: Stats {
                messages_in,
                messages_out,
                ..Stats::default()
            },
            users: Vec::new(),
            rooms: Vec::new(),
        }
    }

    #[test]
    fn rates_count_only_nodes_in_both_samples() {
        let before: Counters = [("a".into(), (10, 20)), ("b".into(), (100, 100))].into();
        // b did not answer this time, c is new: neither moves the rate.
        let now = [share("a", 30, 25), share("c", 5_000, 5_000)];
        assert_eq!(rates(&before, &now, Duration::from_secs(2)), (10.0, 2.5));
        // A restarted node's counters went down: nothing, not a wrap.
        let now = [share("a", 1, 1)];
        assert_eq!(rates(&before, &now, Duration::from_secs(1)), (0.0, 0.0));
    }
}
