//! `stats_update`: the live numbers of the admin dashboard, pushed to every connection of
//! a user with the admin role. One serialized frame per tick whatever the number of
//! admins, and nothing per connection.

use std::time::{Duration, Instant};

use roomcast_protocol::ServerMessage;
use tokio::time::MissedTickBehavior;
use tracing::warn;

use crate::broker::Target;
use crate::hub::Hub;
use crate::model::ADMIN_ROLE;
use crate::now_ms;

/// Pushes `stats_update` every `interval` until the hub shuts down.
pub(crate) async fn push_stats(hub: Hub, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last = (Instant::now(), hub.stats());
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = hub.shutdown_token().cancelled() => return,
        }
        let (now, stats) = (Instant::now(), hub.stats());
        let seconds = now.duration_since(last.0).as_secs_f64();
        let rate = |current: u64, before: u64| {
            #[allow(clippy::cast_precision_loss)]
            let count = current.saturating_sub(before) as f64;
            if seconds > 0.0 {
                (count / seconds * 10.0).round() / 10.0
            } else {
                0.0
            }
        };
        let message = ServerMessage::StatsUpdate {
            connections: stats.connections as u64,
            users: stats.users as u64,
            rooms: stats.rooms as u64,
            messages_in_per_sec: rate(stats.messages_in, last.1.messages_in),
            messages_out_per_sec: rate(stats.messages_out, last.1.messages_out),
            timestamp: now_ms(),
        };
        // `broadcast` takes a `Value`, whose keys go out sorted, as they did with `json!`.
        if let Err(err) = hub
            .broadcast(Target::Role(ADMIN_ROLE.into()), &message.to_value())
            .await
        {
            warn!(cause = %err, "stats_update not sent");
        }
        last = (now, stats);
    }
}
