//! Roomcast load generator. `loadgen idle` opens many authenticated connections that stay
//! idle (answering heartbeats) and, given the server's pid, reports the server's resident
//! memory per connection. `loadgen chat` has senders chat into rooms as fast as the server
//! answers and reports chats persisted (acknowledged by their `reply`, which the server
//! sends only after the store write) per second. `loadgen latency` has senders on one
//! URL chat into rooms whose receivers are on another URL (or the same): each chat carries
//! its send time, so it reports delivery latency next to chats and deliveries per second,
//! and the chats lost or delivered twice.
//!
//! ```sh
//! ROOMCAST_DEV=1 ROOMCAST_MAX_CONNECTIONS_PER_USER=100000 target/release/roomcast &
//! cargo run --release -p roomcast-tests --bin loadgen -- idle --connections 10000 --server-pid $!
//! ```

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Parser)]
#[command(name = "loadgen", about = "Roomcast load generator")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Open idle authenticated connections and measure the server's memory per connection
    Idle {
        /// WebSocket URL of the server
        #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
        url: String,
        /// Connections to open
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        /// Distinct users they belong to (round robin)
        #[arg(long, default_value_t = 1_000)]
        users: usize,
        /// Secret the server signs tokens with
        #[arg(long, env = "ROOMCAST_JWT_SECRET", default_value = roomcast_server::config::DEV_JWT_SECRET)]
        secret: String,
        /// Connections opened at once
        #[arg(long, default_value_t = 200)]
        concurrency: usize,
        /// Server process id, to read its resident memory from /proc
        #[arg(long)]
        server_pid: Option<u32>,
        /// Seconds to keep the connections open after measuring
        #[arg(long, default_value_t = 2)]
        hold_secs: u64,
    },
    /// Chat as fast as the server accepts and report persisted chats per second
    Chat {
        /// WebSocket URL of the server
        #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
        url: String,
        /// Sending connections (each its own user)
        #[arg(long, default_value_t = 20)]
        senders: usize,
        /// Rooms they are spread over (round robin)
        #[arg(long, default_value_t = 4)]
        rooms: usize,
        /// Chats each sender sends
        #[arg(long, default_value_t = 2_000)]
        messages: usize,
        /// Chats a sender may have in flight (sent, not yet answered)
        #[arg(long, default_value_t = 32)]
        window: usize,
        /// Secret the server signs tokens with
        #[arg(long, env = "ROOMCAST_JWT_SECRET", default_value = roomcast_server::config::DEV_JWT_SECRET)]
        secret: String,
    },
    /// Senders on one node, receivers on another: chats/s, deliveries/s, latency, losses
    Latency {
        /// WebSocket URL the senders connect to
        #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
        send_url: String,
        /// WebSocket URL the receivers connect to (default: the senders')
        #[arg(long)]
        recv_url: Option<String>,
        /// Rooms (senders and receivers spread round robin)
        #[arg(long, default_value_t = 1)]
        rooms: usize,
        /// Sending connections (each its own user)
        #[arg(long, default_value_t = 10)]
        senders: usize,
        /// Receiving connections per room (each its own user)
        #[arg(long, default_value_t = 1)]
        receivers: usize,
        /// Chats each sender sends
        #[arg(long, default_value_t = 1_000)]
        messages: usize,
        /// Chats a sender may have in flight (sent, not yet answered)
        #[arg(long, default_value_t = 8)]
        window: usize,
        /// Chats per second over all senders; 0: as fast as the window allows
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
        /// Room names are PREFIX-0, PREFIX-1, ...
        #[arg(long, default_value = "lat")]
        room_prefix: String,
        /// Seconds a receiver waits for missing chats after the senders are done
        #[arg(long, default_value_t = 3)]
        drain_secs: u64,
        /// Secret the server signs tokens with
        #[arg(long, env = "ROOMCAST_JWT_SECRET", default_value = roomcast_server::config::DEV_JWT_SECRET)]
        secret: String,
    },
}

#[tokio::main]
#[allow(clippy::print_stdout)]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().scenario {
        Scenario::Idle {
            url,
            connections,
            users,
            secret,
            concurrency,
            server_pid,
            hold_secs,
        } => {
            let before = server_pid.map(rss_kib).transpose()?;
            let started = Instant::now();
            let mut open = Vec::with_capacity(connections);
            for chunk_start in (0..connections).step_by(concurrency.max(1)) {
                let chunk_end = (chunk_start + concurrency).min(connections);
                let batch = (chunk_start..chunk_end).map(|i| {
                    let token = roomcast_tests::sign(
                        &secret,
                        &json!({ "sub": format!("user{}", i % users.max(1)), "exp": roomcast_server::now_ms() / 1000 + 3600 }),
                    );
                    tokio::spawn(idle_connection(format!("{url}?token={token}")))
                });
                for handle in futures_util::future::join_all(batch).await {
                    open.push(handle.context("connection task")??);
                }
            }
            println!(
                "opened {connections} authenticated connections in {:.1?}",
                started.elapsed()
            );
            // Let the server settle (allocator, queues) before reading its memory.
            tokio::time::sleep(Duration::from_secs(1)).await;
            if let (Some(pid), Some(before)) = (server_pid, before) {
                let after = rss_kib(pid)?;
                let per_conn = (after.saturating_sub(before) as f64 * 1024.0) / connections as f64;
                println!(
                    "server RSS: {before} KiB before, {after} KiB after: {per_conn:.0} bytes per idle connection"
                );
            }
            tokio::time::sleep(Duration::from_secs(hold_secs)).await;
            for task in open {
                task.abort();
            }
            Ok(())
        }
        Scenario::Chat {
            url,
            senders,
            rooms,
            messages,
            window,
            secret,
        } => {
            let mut ready = Vec::with_capacity(senders);
            for i in 0..senders {
                let token = roomcast_tests::sign(
                    &secret,
                    &json!({ "sub": format!("sender{i}"), "exp": roomcast_server::now_ms() / 1000 + 3600 }),
                );
                let room = format!("bench-{}", i % rooms.max(1));
                ready.push(joined_connection(format!("{url}?token={token}"), room).await?);
            }
            let started = Instant::now();
            let tasks = ready
                .into_iter()
                .map(|(ws, room)| tokio::spawn(chat_flood(ws, room, messages, window.max(1))));
            let mut accepted = 0;
            for result in futures_util::future::join_all(tasks).await {
                accepted += result.context("sender task")??;
            }
            let elapsed = started.elapsed();
            println!(
                "{accepted} chats persisted and answered in {elapsed:.2?}: {:.0} chats/s ({senders} senders, {rooms} rooms, window {window})",
                accepted as f64 / elapsed.as_secs_f64()
            );
            Ok(())
        }
        Scenario::Latency {
            send_url,
            recv_url,
            rooms,
            senders,
            receivers,
            messages,
            window,
            rate,
            room_prefix,
            drain_secs,
            secret,
        } => {
            let recv_url = recv_url.unwrap_or_else(|| send_url.clone());
            let rooms = rooms.max(1);
            let url = |base: &str, sub: String| {
                let claims = json!({ "sub": sub, "exp": roomcast_server::now_ms() / 1000 + 3600 });
                format!("{base}?token={}", roomcast_tests::sign(&secret, &claims))
            };
            // Receivers first, so that they hear every chat.
            let mut listening = Vec::new();
            for i in 0..rooms * receivers.max(1) {
                let (ws, _) = joined_connection(
                    url(&recv_url, format!("receiver{i}")),
                    room_name(&room_prefix, i % rooms),
                )
                .await?;
                let expected = (0..senders).filter(|s| s % rooms == i % rooms).count() * messages;
                listening.push((ws, expected));
            }
            let mut ready = Vec::with_capacity(senders);
            for i in 0..senders {
                ready.push(
                    joined_connection(
                        url(&send_url, format!("sender{i}")),
                        room_name(&room_prefix, i % rooms),
                    )
                    .await?,
                );
            }
            let epoch = Instant::now();
            let done = Arc::new(AtomicBool::new(false));
            let drain = Duration::from_secs(drain_secs);
            let hearing: Vec<_> = listening
                .into_iter()
                .map(|(ws, expected)| {
                    tokio::spawn(receive(ws, expected, epoch, done.clone(), drain))
                })
                .collect();
            let every = (rate > 0.0).then(|| Duration::from_secs_f64(senders as f64 / rate));
            let sending = ready.into_iter().enumerate().map(|(i, (ws, room))| {
                let start = every.map_or(Duration::ZERO, |e| e.mul_f64(i as f64 / senders as f64));
                tokio::spawn(send_timed(
                    ws,
                    room,
                    i,
                    messages,
                    window.max(1),
                    every,
                    start,
                    epoch,
                ))
            });
            let (mut acked, mut ack_latency) = (0, Vec::new());
            for result in futures_util::future::join_all(sending).await {
                let (ok, latencies) = result.context("sender task")??;
                acked += ok;
                ack_latency.extend(latencies);
            }
            let sent_in = epoch.elapsed();
            done.store(true, Ordering::Relaxed);
            let mut heard = Heard::default();
            for result in futures_util::future::join_all(hearing).await {
                heard.merge(result.context("receiver task")??);
            }
            ack_latency.sort_unstable();
            heard.latencies.sort_unstable();
            let lost = heard.expected.saturating_sub(heard.unique);
            println!(
                "{acked} chats acknowledged in {sent_in:.2?}: {:.0} chats/s ({senders} senders, {rooms} rooms, window {window}, rate {})",
                acked as f64 / sent_in.as_secs_f64(),
                if rate > 0.0 {
                    format!("{rate}/s")
                } else {
                    "unpaced".to_owned()
                }
            );
            println!(
                "{} deliveries to {} receivers in {:.2?}: {:.0} deliveries/s; lost {lost}, duplicated {}",
                heard.deliveries,
                rooms * receivers.max(1),
                heard.last,
                heard.deliveries as f64 / heard.last.as_secs_f64().max(1e-9),
                heard.duplicates
            );
            println!(
                "delivery latency (send to receiver) ms: {}",
                percentiles(&heard.latencies)
            );
            println!(
                "reply latency (send to reply) ms: {}",
                percentiles(&ack_latency)
            );
            Ok(())
        }
    }
}

fn room_name(prefix: &str, i: usize) -> String {
    format!("{prefix}-{i}")
}

/// Microseconds since `epoch`: the clock of the send times chats carry.
fn micros(epoch: Instant) -> u64 {
    epoch.elapsed().as_micros() as u64
}

/// p50 / p90 / p99 / max of sorted microsecond latencies, in ms.
fn percentiles(sorted: &[u64]) -> String {
    let at = |p: f64| {
        sorted
            .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
            .map_or(f64::NAN, |&us| us as f64 / 1000.0)
    };
    format!(
        "p50 {:.2}, p90 {:.2}, p99 {:.2}, max {:.2} ({} samples)",
        at(0.50),
        at(0.90),
        at(0.99),
        sorted.last().map_or(f64::NAN, |&us| us as f64 / 1000.0),
        sorted.len()
    )
}

/// Sends `count` chats stamped with their send time, keeping at most `window` in flight
/// and, with `every`, one per interval from `start` on. Returns the ok replies and each
/// one's latency (µs).
#[allow(clippy::too_many_arguments)]
async fn send_timed(
    mut ws: Socket,
    room: String,
    who: usize,
    count: usize,
    window: usize,
    every: Option<Duration>,
    start: Duration,
    epoch: Instant,
) -> anyhow::Result<(usize, Vec<u64>)> {
    let mut sent_at = vec![0u64; count];
    let mut latencies = Vec::with_capacity(count);
    let (mut sent, mut answered) = (0, 0);
    let mut next = epoch + start;
    while answered < count {
        let open = |sent: usize, answered: usize| sent < count && sent - answered < window;
        while open(sent, answered) && every.is_none_or(|_| Instant::now() >= next) {
            sent_at[sent] = micros(epoch);
            let chat = json!({ "type": "chat", "room": room, "id": sent,
                "content": { "s": who, "n": sent, "t": sent_at[sent] } });
            ws.send(Message::text(chat.to_string())).await?;
            sent += 1;
            next += every.unwrap_or_default();
        }
        let pacing = open(sent, answered) && every.is_some();
        let wait = if pacing {
            next.saturating_duration_since(Instant::now())
        } else {
            Duration::from_secs(30)
        };
        let frame = match tokio::time::timeout(wait, ws.next()).await {
            Ok(frame) => frame,
            Err(_) if pacing => continue,
            Err(_) => bail!("reply timeout"),
        };
        let Some(Ok(Message::Text(text))) = frame else {
            bail!("connection ended while chatting: {frame:?}");
        };
        // The room's chats, this sender's own included, are the receivers' business.
        if text.starts_with(r#"{"type":"chat""#) {
            continue;
        }
        let message: Value = serde_json::from_str(&text)?;
        match message["type"].as_str() {
            Some("reply") => {
                answered += 1;
                if let Some(n) = message["id"].as_u64().filter(|&n| (n as usize) < count) {
                    latencies.push(micros(epoch).saturating_sub(sent_at[n as usize]));
                }
            }
            Some("error") if message.get("id").is_some() => answered += 1,
            Some("ping") => ws.send(Message::text(r#"{"type":"pong"}"#)).await?,
            _ => {}
        }
    }
    Ok((latencies.len(), latencies))
}

/// What receivers heard.
#[derive(Debug, Default)]
struct Heard {
    expected: usize,
    deliveries: usize,
    unique: usize,
    duplicates: usize,
    /// Send to delivery, µs.
    latencies: Vec<u64>,
    /// When the last chat arrived, since the epoch.
    last: Duration,
}

impl Heard {
    fn merge(&mut self, other: Heard) {
        self.expected += other.expected;
        self.deliveries += other.deliveries;
        self.unique += other.unique;
        self.duplicates += other.duplicates;
        self.latencies.extend(other.latencies);
        self.last = self.last.max(other.last);
    }
}

/// Reads the room's chats until the senders are done and nothing came for `drain` (half
/// a second once all `expected` chats are in, to catch duplicates).
async fn receive(
    mut ws: Socket,
    expected: usize,
    epoch: Instant,
    done: Arc<AtomicBool>,
    drain: Duration,
) -> anyhow::Result<Heard> {
    let mut seen = HashSet::with_capacity(expected);
    let mut heard = Heard {
        expected,
        latencies: Vec::with_capacity(expected),
        ..Heard::default()
    };
    loop {
        let wait = if seen.len() >= expected {
            Duration::from_millis(500)
        } else {
            drain
        };
        let frame = match tokio::time::timeout(wait, ws.next()).await {
            Ok(frame) => frame,
            Err(_) if done.load(Ordering::Relaxed) => break,
            Err(_) => continue,
        };
        let Some(Ok(Message::Text(text))) = frame else {
            bail!("connection ended while receiving: {frame:?}");
        };
        let message: Value = serde_json::from_str(&text)?;
        match message["type"].as_str() {
            Some("chat") => {
                let content = &message["message"];
                let (Some(s), Some(n), Some(t)) = (
                    content["s"].as_u64(),
                    content["n"].as_u64(),
                    content["t"].as_u64(),
                ) else {
                    continue;
                };
                let now = micros(epoch);
                heard.deliveries += 1;
                if seen.insert((s, n)) {
                    heard.latencies.push(now.saturating_sub(t));
                } else {
                    heard.duplicates += 1;
                }
                heard.last = Duration::from_micros(now);
            }
            Some("ping") => ws.send(Message::text(r#"{"type":"pong"}"#)).await?,
            _ => {}
        }
    }
    heard.unique = seen.len();
    Ok(heard)
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects with a token, waits for `auth_ok`, joins `room` and waits for the join reply.
async fn joined_connection(url: String, room: String) -> anyhow::Result<(Socket, String)> {
    let (mut ws, _) = tokio_tungstenite::connect_async(&url)
        .await
        .context("connect")?;
    ws.send(Message::text(
        json!({ "type": "join", "room": room, "id": "join" }).to_string(),
    ))
    .await?;
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .context("join timeout")?;
        let Some(Ok(Message::Text(text))) = frame else {
            bail!("connection ended while joining: {frame:?}");
        };
        let message: Value = serde_json::from_str(&text)?;
        if message["type"] == "reply" && message["id"] == "join" {
            return Ok((ws, room));
        }
        if message["type"] == "error" {
            bail!("join refused: {message}");
        }
    }
}

/// Sends `count` chats keeping `window` in flight; returns how many got an ok `reply`.
async fn chat_flood(
    mut ws: Socket,
    room: String,
    count: usize,
    window: usize,
) -> anyhow::Result<usize> {
    let (mut sent, mut answered, mut ok) = (0, 0, 0);
    while answered < count {
        while sent < count && sent - answered < window {
            let chat = json!({ "type": "chat", "room": room, "content": { "n": sent, "text": "benchmark message" }, "id": sent });
            ws.send(Message::text(chat.to_string())).await?;
            sent += 1;
        }
        let frame = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .context("reply timeout")?;
        let Some(Ok(Message::Text(text))) = frame else {
            bail!("connection ended while chatting: {frame:?}");
        };
        let message: Value = serde_json::from_str(&text)?;
        match message["type"].as_str() {
            Some("reply") => {
                answered += 1;
                ok += 1;
            }
            Some("error") if message.get("id").is_some() => {
                answered += 1;
            }
            Some("ping") => ws.send(Message::text(r#"{"type":"pong"}"#)).await?,
            _ => {}
        }
    }
    Ok(ok)
}

/// Connects, waits for `auth_ok`, then answers pings in the background until aborted.
async fn idle_connection(url: String) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let (mut ws, _) = tokio_tungstenite::connect_async(&url)
        .await
        .context("connect")?;
    let first = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .context("auth_ok timeout")?;
    match first {
        Some(Ok(Message::Text(text)))
            if serde_json::from_str::<Value>(&text)?["type"] == "auth_ok" => {}
        other => bail!("expected auth_ok, got {other:?}"),
    }
    Ok(tokio::spawn(async move {
        while let Some(Ok(frame)) = ws.next().await {
            if let Message::Text(text) = frame
                && text.contains("\"ping\"")
                && ws.send(Message::text(r#"{"type":"pong"}"#)).await.is_err()
            {
                break;
            }
        }
    }))
}

/// Resident set size of a process, in KiB.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading /proc status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS line")
}
