//! The `chat` scenario (Roomcast only): senders, each its own user, in rooms spread round
//! robin, chat as fast as the server answers with `--window` chats in flight each, and it
//! reports chats persisted per second: a chat's `reply` comes only after the store wrote
//! it, so every counted reply is a durable chat.

use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::dialect::{self, Dial, Socket, Target};
use crate::procfs::{self, CpuUse, round};
use crate::report::{self, Common, Outcome};

#[derive(Debug, Clone, clap::Args)]
pub struct ChatArgs {
    /// WebSocket URL of the server
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    pub url: String,
    /// Sending connections (each its own user)
    #[arg(long, default_value_t = 20)]
    pub senders: usize,
    /// Rooms they are spread over (round robin)
    #[arg(long, default_value_t = 4)]
    pub rooms: usize,
    /// Chats each sender sends
    #[arg(long, default_value_t = 2_000)]
    pub messages: usize,
    /// Chats a sender may have in flight (sent, not yet answered)
    #[arg(long, default_value_t = 32)]
    pub window: usize,
    /// Room names are PREFIX-0, PREFIX-1, ...
    #[arg(long, default_value = "bench")]
    pub room_prefix: String,
}

pub async fn run(args: ChatArgs, common: &Common) -> anyhow::Result<Outcome> {
    let rooms = args.rooms.max(1);
    let mut ready = Vec::with_capacity(args.senders);
    for i in 0..args.senders {
        let room = format!("{}-{}", args.room_prefix, i % rooms);
        let token = common.token(&format!("sender{i}"));
        let (ws, _) =
            dialect::connect_join(Target::Roomcast, &args.url, &token, &room, Dial::default())
                .await
                .with_context(|| format!("sender {i}"))?;
        ready.push((ws, room));
    }
    let cpu_start = procfs::sample(&common.server_pids);
    let started = Instant::now();
    let tasks = ready
        .into_iter()
        .map(|(ws, room)| tokio::spawn(chat_flood(ws, room, args.messages, args.window.max(1))));
    let (mut accepted, mut refused) = (0, 0);
    for result in futures_util::future::join_all(tasks).await {
        let (ok, errors) = result.context("sender task")??;
        accepted += ok;
        refused += errors;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = CpuUse::between(
        &cpu_start,
        &procfs::sample(&common.server_pids),
        common.clk_tck,
    );
    let rate = accepted as f64 / elapsed;
    let verdict = report::verdict(&cpu, common.threads, None);
    let human = vec![
        format!(
            "chat: {accepted} chats persisted and answered in {elapsed:.2} s: {rate:.0} chats/s ({} senders, {rooms} rooms, window {}); {refused} refused",
            args.senders, args.window
        ),
        cpu.describe("chat", accepted),
        verdict.describe(),
    ];
    let json = json!({
        "scenario": "chat",
        "target": "roomcast",
        "url": args.url,
        "senders": args.senders,
        "rooms": rooms,
        "window": args.window,
        "chats": accepted,
        "refused": refused,
        "elapsed_s": round(elapsed, 3),
        "chats_per_s": round(rate, 1),
        "cpu": cpu.to_json("chat", accepted),
        "bottleneck": verdict.to_json(),
    });
    Ok(Outcome { human, json })
}

/// Sends `count` chats keeping `window` in flight; returns how many got an ok `reply` and
/// how many an `error`.
async fn chat_flood(
    mut ws: Socket,
    room: String,
    count: usize,
    window: usize,
) -> anyhow::Result<(u64, u64)> {
    let (mut sent, mut answered, mut ok, mut errors) = (0, 0, 0, 0);
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
        // The room's chats, this sender's own included, are not what is counted here.
        if text.starts_with(r#"{"type":"chat""#) {
            continue;
        }
        let message: Value = serde_json::from_str(&text)?;
        match message["type"].as_str() {
            Some("reply") => {
                answered += 1;
                ok += 1;
            }
            Some("error") if message.get("id").is_some() => {
                answered += 1;
                errors += 1;
            }
            Some("ping") => ws.send(Message::text(r#"{"type":"pong"}"#)).await?,
            _ => {}
        }
    }
    Ok((ok, errors))
}
