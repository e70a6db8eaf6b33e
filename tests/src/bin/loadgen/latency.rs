//! The `latency` scenario (Roomcast only, kept from before the fan-out scenarios for the
//! cluster measurements in docs/benchmarks.md): senders on one URL chat into rooms whose
//! receivers are on another URL (or the same); each chat carries its send time, so it
//! reports delivery latency next to chats and deliveries per second, and the chats lost
//! or delivered twice.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::dialect::{self, Dial, Socket, Target};
use crate::report::{Common, Outcome};

#[derive(Debug, Clone, clap::Args)]
pub struct LatencyArgs {
    /// WebSocket URL the senders connect to
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    pub send_url: String,
    /// WebSocket URL the receivers connect to (default: the senders')
    #[arg(long)]
    pub recv_url: Option<String>,
    /// Rooms (senders and receivers spread round robin)
    #[arg(long, default_value_t = 1)]
    pub rooms: usize,
    /// Sending connections (each its own user)
    #[arg(long, default_value_t = 10)]
    pub senders: usize,
    /// Receiving connections per room (each its own user)
    #[arg(long, default_value_t = 1)]
    pub receivers: usize,
    /// Chats each sender sends
    #[arg(long, default_value_t = 1_000)]
    pub messages: usize,
    /// Chats a sender may have in flight (sent, not yet answered)
    #[arg(long, default_value_t = 8)]
    pub window: usize,
    /// Chats per second over all senders; 0: as fast as the window allows
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Room names are PREFIX-0, PREFIX-1, ...
    #[arg(long, default_value = "lat")]
    pub room_prefix: String,
    /// Seconds a receiver waits for missing chats after the senders are done
    #[arg(long, default_value_t = 3)]
    pub drain_secs: u64,
}

pub async fn run(args: LatencyArgs, common: &Common) -> anyhow::Result<Outcome> {
    let LatencyArgs {
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
    } = args;
    let mut lines = Vec::new();
    let recv_url = recv_url.unwrap_or_else(|| send_url.clone());
    let rooms = rooms.max(1);
    // Receivers first, so that they hear every chat.
    let mut listening = Vec::new();
    for i in 0..rooms * receivers.max(1) {
        let ws = joined(
            &recv_url,
            common,
            &format!("receiver{i}"),
            &room_name(&room_prefix, i % rooms),
        )
        .await?;
        let expected = (0..senders).filter(|s| s % rooms == i % rooms).count() * messages;
        listening.push((ws, expected));
    }
    let mut ready = Vec::with_capacity(senders);
    for i in 0..senders {
        let room = room_name(&room_prefix, i % rooms);
        let ws = joined(&send_url, common, &format!("sender{i}"), &room).await?;
        ready.push((ws, room));
    }
    let epoch = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let drain = Duration::from_secs(drain_secs);
    let hearing: Vec<_> = listening
        .into_iter()
        .map(|(ws, expected)| tokio::spawn(receive(ws, expected, epoch, done.clone(), drain)))
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
    lines.push(format!(
        "{acked} chats acknowledged in {sent_in:.2?}: {:.0} chats/s ({senders} senders, {rooms} rooms, window {window}, rate {})",
        acked as f64 / sent_in.as_secs_f64(),
        if rate > 0.0 {
            format!("{rate}/s")
        } else {
            "unpaced".to_owned()
        }
    ));
    lines.push(format!(
        "{} deliveries to {} receivers in {:.2?}: {:.0} deliveries/s; lost {lost}, duplicated {}",
        heard.deliveries,
        rooms * receivers.max(1),
        heard.last,
        heard.deliveries as f64 / heard.last.as_secs_f64().max(1e-9),
        heard.duplicates
    ));
    lines.push(format!(
        "delivery latency (send to receiver) ms: {}",
        percentiles(&heard.latencies)
    ));
    lines.push(format!(
        "reply latency (send to reply) ms: {}",
        percentiles(&ack_latency)
    ));
    let json = json!({
        "scenario": "latency",
        "target": "roomcast",
        "chats": acked,
        "deliveries": heard.deliveries,
        "lost": lost,
        "duplicated": heard.duplicates,
    });
    Ok(Outcome { human: lines, json })
}

/// Connects as `user` and joins `room` (Roomcast).
async fn joined(base: &str, common: &Common, user: &str, room: &str) -> anyhow::Result<Socket> {
    let (ws, _) = dialect::connect_join(
        Target::Roomcast,
        base,
        &common.token(user),
        room,
        Dial::default(),
    )
    .await
    .with_context(|| format!("{user} on {base}"))?;
    Ok(ws)
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
