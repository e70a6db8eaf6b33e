//! The `idle` scenario: N connections, each its own user with its own JWT on the URL, all
//! joined to one room, then left idle (heartbeats answered, presence read and dropped).
//! It reports connections per second over the whole open phase (TCP + upgrade + JWT +
//! join + the join's answer, `--concurrency` at a time) and the server's resident memory
//! per connection (the `VmRSS` delta over N, read after a settle wait).

use std::time::Duration;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::dialect::{self, Dial, Frame, Socket, Target};
use crate::procfs::{self, CpuUse, round};
use crate::report::{self, Common, Outcome};
use crate::track::Percentiles;

#[derive(Debug, Clone, clap::Args)]
pub struct IdleArgs {
    /// Protocol of the server under test
    #[arg(long, value_enum, default_value = "roomcast")]
    pub target: Target,
    /// WebSocket URL; repeat it to spread the connections round robin
    #[arg(long = "url", default_value = "ws://127.0.0.1:8080/ws")]
    pub urls: Vec<String>,
    /// Connections to open
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,
    /// Distinct users they belong to, round robin [default: one per connection]
    #[arg(long)]
    pub users: Option<usize>,
    /// The room they all join
    #[arg(long, default_value = "bench")]
    pub room: String,
    /// Connections opened at once
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// Seconds to wait after the last join before reading the server's memory
    #[arg(long, default_value_t = 2.0)]
    pub settle_secs: f64,
    /// Seconds to keep the connections open after measuring
    #[arg(long, default_value_t = 0.0)]
    pub hold_secs: f64,
}

/// One connection's outcome: how long it took, or why it failed.
type Opened = anyhow::Result<(Duration, tokio::task::JoinHandle<bool>)>;

pub async fn run(args: IdleArgs, common: &Common) -> anyhow::Result<Outcome> {
    let target = args.target;
    let users = args.users.unwrap_or(args.connections).max(1);
    let stop = CancellationToken::new();
    let rss_before = procfs::servers_rss_kib(&common.server_pids);
    let cpu_start = procfs::sample(&common.server_pids);
    let started = Instant::now();
    let results: Vec<Opened> = futures_util::stream::iter(0..args.connections)
        .map(|i| {
            let url = args.urls[i % args.urls.len().max(1)].clone();
            let token = common.token(&format!("idle{}", i % users));
            let (room, stop) = (args.room.clone(), stop.clone());
            async move {
                let begun = Instant::now();
                let (ws, _) = dialect::connect_join(target, &url, &token, &room, Dial::default())
                    .await
                    .with_context(|| format!("connection {i}"))?;
                let took = begun.elapsed();
                Ok((took, tokio::spawn(stay(ws, target, stop))))
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    let open_secs = started.elapsed().as_secs_f64();
    let cpu = CpuUse::between(
        &cpu_start,
        &procfs::sample(&common.server_pids),
        common.clk_tck,
    );
    let (mut took, mut tasks, mut failures) = (Vec::new(), Vec::new(), Vec::new());
    for result in results {
        match result {
            Ok((t, task)) => {
                took.push(u32::try_from(t.as_micros()).unwrap_or(u32::MAX));
                tasks.push(task);
            }
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    let opened = tasks.len();
    if opened == 0 {
        anyhow::bail!(
            "no connection opened: {}",
            failures.first().map_or("", String::as_str)
        );
    }
    tokio::time::sleep(Duration::from_secs_f64(args.settle_secs)).await;
    let rss_after = procfs::servers_rss_kib(&common.server_pids);
    let per_conn = rss_before
        .zip(rss_after)
        .map(|(a, b)| (b.saturating_sub(a) as f64 * 1024.0) / opened as f64);
    took.sort_unstable();
    let connect = Percentiles::of_sorted(&took);
    let rate = opened as f64 / open_secs;
    let verdict = report::verdict(&cpu, common.threads, None);
    tokio::time::sleep(Duration::from_secs_f64(args.hold_secs)).await;
    stop.cancel();
    let still_open = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .filter(|r| matches!(r, Ok(true)))
        .count();

    let mut human = vec![
        format!(
            "idle: {} → {opened} of {} connections ({users} users) joined to one room in {open_secs:.2} s: {rate:.0} connections/s ({} at a time)",
            target.name(),
            args.connections,
            args.concurrency
        ),
        format!("connect + join time: {}", connect.describe()),
        match (rss_before, rss_after, per_conn) {
            (Some(b), Some(a), Some(per)) => {
                format!("server RSS {b} KiB → {a} KiB: {per:.0} bytes per idle connection")
            }
            _ => "server RSS unknown (no --server-pid)".to_owned(),
        },
        format!(
            "{} (connect phase)",
            cpu.describe("connection", opened as u64)
        ),
    ];
    if !failures.is_empty() {
        human.push(format!(
            "{} connections failed; first: {}",
            failures.len(),
            failures[0]
        ));
    }
    human.push(verdict.describe());
    let json = json!({
        "scenario": "idle",
        "target": target.name(),
        "urls": args.urls,
        "connections": args.connections,
        "opened": opened,
        "failed": failures.len(),
        "first_failure": failures.first(),
        "users": users,
        "concurrency": args.concurrency,
        "open_s": round(open_secs, 3),
        "connections_per_s": round(rate, 1),
        "connect_latency": connect.to_json(),
        "server_rss_before_kib": rss_before,
        "server_rss_after_kib": rss_after,
        "rss_bytes_per_connection": per_conn.map(|p| round(p, 0)),
        "still_open_at_end": still_open,
        "cpu": cpu.to_json("connection", opened as u64),
        "bottleneck": verdict.to_json(),
    });
    Ok(Outcome { human, json })
}

/// Keeps a connection open until the stop: heartbeats answered, the rest read and dropped
/// (a room's presence would otherwise pile up in the server's queue for it). Returns
/// whether it was still open at the stop.
async fn stay(mut ws: Socket, target: Target, stop: CancellationToken) -> bool {
    loop {
        let frame = tokio::select! {
            biased;
            () = stop.cancelled() => return true,
            frame = ws.next() => frame,
        };
        match frame {
            Some(Ok(Message::Text(text))) => {
                if target.classify(&text) == Frame::Ping
                    && ws.send(Message::text(target.pong())).await.is_err()
                {
                    return false;
                }
            }
            Some(Ok(Message::Close(_)) | Err(_)) | None => return false,
            Some(Ok(_)) => {}
        }
    }
}
