//! Roomcast load generator. `loadgen idle` opens many authenticated connections that stay
//! idle (answering heartbeats) and, given the server's pid, reports the server's resident
//! memory per connection. `loadgen chat` has senders chat into rooms as fast as the server
//! answers and reports chats persisted (acknowledged by their `reply`, which the server
//! sends only after the store write) per second.
//!
//! ```sh
//! ROOMCAST_DEV=1 ROOMCAST_MAX_CONNECTIONS_PER_USER=100000 target/release/roomcast &
//! cargo run --release -p roomcast-tests --bin loadgen -- idle --connections 10000 --server-pid $!
//! ```

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
    }
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
