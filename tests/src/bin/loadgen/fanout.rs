//! The fan-out scenarios: `fanout` (N subscribers in one room, one publisher at R msgs/s
//! for T s), `slow-consumer` (the same with K more subscribers that join and then never
//! read) and `cluster-fanout` (subscribers round robin over several `--url`s, the
//! publisher on the first). Each payload carries its send time and sequence number; each
//! subscriber tracks what it got (`track`), and the publisher keeps to its schedule
//! (send k at start + k/R, never drifting) and says when it could not.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt, TryStreamExt};
use serde_json::json;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::dialect::{self, Dial, Frame, Socket, Target};
use crate::procfs::{self, CpuUse, round};
use crate::publisher::{self, Plan};
use crate::report::{self, Common, Outcome};
use crate::stalled;
use crate::track::{Totals, Tracker};

/// Which of the three fan-out scenarios runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Fanout,
    SlowConsumer,
    ClusterFanout,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Self::Fanout => "fanout",
            Self::SlowConsumer => "slow-consumer",
            Self::ClusterFanout => "cluster-fanout",
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct FanoutArgs {
    /// Protocol of the server under test
    #[arg(long, value_enum, default_value = "roomcast")]
    pub target: Target,
    /// WebSocket URL; repeat it for several nodes (subscribers round robin, the
    /// publisher on the first)
    #[arg(long = "url", default_value = "ws://127.0.0.1:8080/ws")]
    pub urls: Vec<String>,
    /// Subscribers that read (each its own user)
    #[arg(long, default_value_t = 100)]
    pub subscribers: usize,
    /// Messages per second the publisher sends
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Seconds the publisher sends for
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Messages to send (overrides rate × duration)
    #[arg(long)]
    pub messages: Option<u64>,
    /// Size of each payload in bytes (send time, sequence number and padding)
    #[arg(long, default_value_t = 100)]
    pub payload: usize,
    /// The room
    #[arg(long, default_value = "bench")]
    pub room: String,
    /// Connections opened at once
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// Seconds to wait for missing deliveries once nothing new arrives
    #[arg(long, default_value_t = 5.0)]
    pub drain_secs: f64,
    /// Seconds between the last join and the first message (presence settles)
    #[arg(long, default_value_t = 1.0)]
    pub settle_secs: f64,
    /// Subscribers that join and then never read again [default: 1 for slow-consumer,
    /// else 0]
    #[arg(long)]
    pub stalled: Option<usize>,
    /// Receive buffer (bytes) of the stalled subscribers' sockets
    #[arg(long, default_value_t = 16 * 1024)]
    pub stalled_recv_buffer: u32,
}

/// What the subscribers share with the run: the clock, the count of distinct deliveries
/// (the drain watches it), and the stop signal.
#[derive(Debug)]
pub struct Shared {
    pub epoch: Instant,
    pub unique: AtomicU64,
    pub stop: CancellationToken,
}

impl Shared {
    pub fn micros(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }
}

/// One reading subscriber at the end.
#[derive(Debug)]
struct Heard {
    tracker: Tracker,
    other_frames: u64,
    bytes: u64,
    /// How its connection ended before the stop, if it did.
    ended: Option<String>,
}

pub async fn run(mode: Mode, args: FanoutArgs, common: &Common) -> anyhow::Result<Outcome> {
    if args.urls.is_empty() {
        bail!("no --url");
    }
    if mode == Mode::ClusterFanout && args.urls.len() < 2 {
        report::say("cluster-fanout with one --url: every subscriber is on that node");
    }
    let stalled_n = args
        .stalled
        .unwrap_or(usize::from(mode == Mode::SlowConsumer));
    let count = args
        .messages
        .unwrap_or((args.rate * args.duration).round() as u64);
    if args.rate <= 0.0 || count == 0 {
        bail!("nothing to send: --rate and --duration (or --messages) must be positive");
    }
    let shared = Arc::new(Shared {
        epoch: Instant::now(),
        unique: AtomicU64::new(0),
        stop: CancellationToken::new(),
    });
    let target = args.target;

    // Readers first, then the stalled ones, then the publisher: everyone is in the room
    // before the first message.
    let opened = Instant::now();
    let readers: Vec<_> = futures_util::stream::iter(0..args.subscribers)
        .map(|i| {
            let (url, token) = (
                args.urls[i % args.urls.len()].clone(),
                common.token(&format!("sub{i}")),
            );
            let (room, shared) = (args.room.clone(), shared.clone());
            async move {
                let (ws, _) = dialect::connect_join(target, &url, &token, &room, Dial::default())
                    .await
                    .with_context(|| format!("subscriber {i} on {url}"))?;
                // Read from the moment of joining: the others' presence arrives meanwhile.
                anyhow::Ok(tokio::spawn(subscribe(ws, target, shared)))
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .try_collect()
        .await?;
    let stalled_dial = Dial {
        recv_buffer: Some(args.stalled_recv_buffer),
    };
    let stalled: Vec<Socket> = futures_util::stream::iter(0..stalled_n)
        .map(|i| {
            let (url, token) = (
                args.urls[i % args.urls.len()].clone(),
                common.token(&format!("stalled{i}")),
            );
            let room = args.room.clone();
            async move {
                let (ws, _) = dialect::connect_join(target, &url, &token, &room, stalled_dial)
                    .await
                    .with_context(|| format!("stalled subscriber {i} on {url}"))?;
                anyhow::Ok(ws)
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .try_collect()
        .await?;
    let publisher = publisher::start(
        target,
        args.urls[0].clone(),
        common.token("publisher"),
        args.room.clone(),
        Plan {
            target,
            room: serde_json::to_string(&args.room)?,
            count,
            interval: Duration::from_secs_f64(1.0 / args.rate),
            pad: "x".repeat(args.payload.saturating_sub(40)),
        },
        shared.clone(),
    )
    .await
    .context("publisher")?;
    let join_secs = opened.elapsed().as_secs_f64();
    report::say(&format!(
        "{} subscribers ({stalled_n} stalled) and the publisher joined in {join_secs:.2} s",
        args.subscribers + stalled_n
    ));
    tokio::time::sleep(Duration::from_secs_f64(args.settle_secs)).await;

    let counted_start = if target == Target::Roomcast && stalled_n > 0 {
        stalled::roomcast_counters(&args.urls[0]).await
    } else {
        None
    };
    let rss_start = procfs::servers_rss_kib(&common.server_pids);
    let cpu_start = procfs::sample(&common.server_pids);
    let first_send_us = shared.micros();
    let (pacing, publisher) = match publisher.go().await {
        Ok(sent) => sent,
        Err(e) => {
            shared.stop.cancel();
            return Err(e.context("the publisher failed"));
        }
    };
    let expected_each = pacing.sent;
    let expected = expected_each * args.subscribers as u64;
    drain(&shared, expected, Duration::from_secs_f64(args.drain_secs)).await;
    let cpu = CpuUse::between(
        &cpu_start,
        &procfs::sample(&common.server_pids),
        common.clk_tck,
    );
    let rss_end = procfs::servers_rss_kib(&common.server_pids);
    shared.stop.cancel();

    let mut totals = Totals::default();
    let (mut other_frames, mut bytes, mut ended) = (0, 0, Vec::new());
    for handle in readers {
        let heard = handle.await.context("subscriber task")?;
        other_frames += heard.other_frames;
        bytes += heard.bytes;
        ended.extend(heard.ended);
        totals.add(heard.tracker, expected_each);
    }
    let replies = publisher.finish().await?;
    let mut stalled_report = stalled::read_out(stalled, target).await;
    if let Some(before) = counted_start
        && let Some(after) = stalled::roomcast_counters(&args.urls[0]).await
    {
        stalled_report.server_counted = Some(stalled::counted_between(&before, &after));
    }

    let latency = totals.percentiles();
    let lost = totals.lost(expected_each);
    let span_secs = (totals.last_us.saturating_sub(first_send_us)) as f64 / 1e6;
    let per_sec = |n: u64| {
        if span_secs > 0.0 {
            n as f64 / span_secs
        } else {
            0.0
        }
    };
    let rss_growth = rss_start.zip(rss_end).map(|(a, b)| b as i64 - a as i64);
    let verdict = report::verdict(&cpu, common.threads, Some(&pacing));

    let mut human = vec![
        format!(
            "{}: {} → {} subscribers ({} URL(s)) + {stalled_n} stalled; {} msgs at {}/s, {} B payloads",
            mode.name(),
            target.name(),
            args.subscribers,
            args.urls.len(),
            pacing.sent,
            args.rate,
            args.payload
        ),
        format!(
            "deliveries {} of {expected} in {span_secs:.2} s: {:.0}/s (offered {:.0}/s); lost {lost}, duplicated {}, out of order {}, incomplete subscribers {}",
            totals.deliveries,
            per_sec(totals.deliveries),
            args.rate * args.subscribers as f64,
            totals.duplicates,
            totals.out_of_order,
            totals.incomplete
        ),
        format!("latency (send → subscriber): {}", latency.describe()),
        pacing.describe(),
        cpu.describe("delivery", totals.deliveries),
    ];
    if target == Target::Roomcast {
        human.push(format!(
            "publisher replies: {} ok, {} errors",
            replies.ok, replies.errors
        ));
    }
    if let Some(growth) = rss_growth {
        human.push(format!("server RSS grew {growth} KiB during the run"));
    }
    if !ended.is_empty() {
        human.push(format!(
            "{} reading subscribers' connections ended early: {}",
            ended.len(),
            summarize(&ended)
        ));
    }
    if stalled_n > 0 {
        human.push(stalled_report.describe());
    }
    human.push(verdict.describe());

    let json = json!({
        "scenario": mode.name(),
        "target": target.name(),
        "urls": args.urls,
        "subscribers": args.subscribers,
        "stalled": stalled_n,
        "rate": args.rate,
        "payload_bytes": args.payload,
        "join_s": round(join_secs, 3),
        "sent": pacing.sent,
        "expected": expected,
        "deliveries": totals.deliveries,
        "unique": totals.unique,
        "lost": lost,
        "duplicated": totals.duplicates,
        "out_of_order": totals.out_of_order,
        "garbled": totals.garbled,
        "incomplete_subscribers": totals.incomplete,
        "ended_early": ended.len(),
        "deliveries_per_s": round(per_sec(totals.deliveries), 1),
        "offered_per_s": args.rate * args.subscribers as f64,
        "span_s": round(span_secs, 3),
        "latency": latency.to_json(),
        "publisher": pacing.to_json(),
        "publisher_replies": { "ok": replies.ok, "errors": replies.errors },
        "cpu": cpu.to_json("delivery", totals.deliveries),
        "server_rss_start_kib": rss_start,
        "server_rss_end_kib": rss_end,
        "server_rss_growth_kib": rss_growth,
        "presence_frames": other_frames,
        "bytes_received": bytes,
        "stalled_report": (stalled_n > 0).then(|| stalled_report.to_json()),
        "bottleneck": verdict.to_json(),
    });
    Ok(Outcome { human, json })
}

/// "4029 ×3, dropped ×1".
pub fn summarize(items: &[String]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for item in items {
        match counts.iter_mut().find(|(k, _)| *k == item) {
            Some((_, n)) => *n += 1,
            None => counts.push((item, 1)),
        }
    }
    counts
        .iter()
        .map(|(k, n)| format!("{k} ×{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Waits until every expected delivery is in, or nothing new came for `patience`.
async fn drain(shared: &Shared, expected: u64, patience: Duration) {
    let (mut last, mut since) = (shared.unique.load(Ordering::Relaxed), Instant::now());
    loop {
        let now = shared.unique.load(Ordering::Relaxed);
        if now >= expected {
            return;
        }
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() >= patience {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Reads one subscriber's socket until the stop: data frames are tracked, heartbeats
/// answered, presence counted and dropped.
async fn subscribe(mut ws: Socket, target: Target, shared: Arc<Shared>) -> Heard {
    let mut heard = Heard {
        tracker: Tracker::default(),
        other_frames: 0,
        bytes: 0,
        ended: None,
    };
    let stop = shared.stop.clone();
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    loop {
        let frame = tokio::select! {
            biased;
            () = &mut stopped => break,
            frame = ws.next() => frame,
        };
        match frame {
            Some(Ok(Message::Text(text))) => {
                heard.bytes += text.len() as u64;
                match target.classify(&text) {
                    Frame::Data { seq, t } => {
                        if heard.tracker.record(seq, t, shared.micros()) {
                            shared.unique.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Frame::Ping => {
                        if let Err(e) = ws.send(Message::text(target.pong())).await {
                            heard.ended = Some(format!("pong failed: {e}"));
                            break;
                        }
                    }
                    Frame::Reply { .. } | Frame::Other => heard.other_frames += 1,
                }
            }
            Some(Ok(Message::Close(close))) => {
                heard.ended = Some(stalled::close_name(close.as_ref()));
                break;
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                heard.ended = Some(stalled::error_name(&e));
                break;
            }
            None => {
                heard.ended = Some("dropped".to_owned());
                break;
            }
        }
    }
    heard
}
