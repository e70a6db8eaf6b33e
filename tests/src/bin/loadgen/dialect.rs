//! The three client dialects the load generator speaks (`--target`): Roomcast's own
//! protocol, the JSON join/publish protocol of the `node-ws` peer and the floor, and raw
//! Engine.IO v4 / Socket.IO for the Socket.IO peer. This module owns connecting (TCP, the
//! WebSocket upgrade with the JWT on the URL), the handshake up to the join's answer, the
//! frames a publisher sends, and telling a data frame from a heartbeat from the rest.

use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// A client's WebSocket: plain TCP, since every server under test is on this machine.
pub type Socket = WebSocketStream<TcpStream>;

/// How long any one step of a handshake may take before the connection counts as failed.
const STEP: Duration = Duration::from_secs(30);

/// Which protocol the server under test speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// Roomcast: `?token=`, `auth_ok`, `join` → `user_list` + `reply`, `chat`.
    Roomcast,
    /// The peers' JSON protocol: `join` → `joined`, `publish` → `message`.
    Json,
    /// Socket.IO 4 over a bare WebSocket (Engine.IO v4 packets).
    Socketio,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Self::Roomcast => "roomcast",
            Self::Json => "json",
            Self::Socketio => "socketio",
        }
    }

    /// The URL to dial for `base` (what `--url` says) with `token`. Socket.IO's path and
    /// Engine.IO query are added here so that `--url ws://host:port` is enough for it.
    pub fn url(self, base: &str, token: &str) -> String {
        let base = match self {
            Self::Socketio if !base.contains("/socket.io") => {
                let host = base.trim_end_matches('/').trim_end_matches("/ws");
                format!("{host}/socket.io/?EIO=4&transport=websocket")
            }
            Self::Socketio if !base.contains("EIO=") => {
                let sep = if base.contains('?') { '&' } else { '?' };
                format!("{base}{sep}EIO=4&transport=websocket")
            }
            _ => base.to_owned(),
        };
        let sep = if base.contains('?') { '&' } else { '?' };
        format!("{base}{sep}token={token}")
    }

    /// The frame a publisher sends to put `payload` (a JSON object) in `room` (a JSON
    /// string, already quoted). Roomcast's carries a request id so its `reply` can be
    /// counted; the others' protocols have no acknowledgement for a publish.
    pub fn publish(self, room: &str, payload: &str, id: u64) -> String {
        match self {
            Self::Roomcast => {
                format!(r#"{{"type":"chat","room":{room},"content":{payload},"id":{id}}}"#)
            }
            Self::Json => format!(r#"{{"type":"publish","room":{room},"data":{payload}}}"#),
            Self::Socketio => format!(r#"42["publish",{{"room":{room},"data":{payload}}}]"#),
        }
    }

    /// The answer to a server heartbeat.
    pub fn pong(self) -> &'static str {
        match self {
            Self::Roomcast | Self::Json => r#"{"type":"pong"}"#,
            Self::Socketio => "3",
        }
    }

    /// What a text frame from the server is, as cheaply as that can be told: data frames
    /// are scanned for the two numbers the payload carries rather than parsed, since a
    /// subscriber sees up to hundreds of thousands per second on cores it shares with the
    /// server. The payload's keys are found wherever the server put them (Roomcast
    /// re-serializes content with its keys sorted).
    pub fn classify(self, text: &str) -> Frame {
        if let Some(seq) = number_after(text, r#""seq":"#) {
            let is_data = match self {
                Self::Roomcast => text.starts_with(r#"{"type":"chat""#),
                Self::Json => text.starts_with(r#"{"type":"message""#),
                Self::Socketio => text.starts_with(r#"42["message""#),
            };
            if is_data && let Some(t) = number_after(text, r#""t":"#) {
                return Frame::Data { seq, t };
            }
        }
        match self {
            Self::Roomcast | Self::Json if text.starts_with(r#"{"type":"ping""#) => Frame::Ping,
            Self::Socketio if text == "2" => Frame::Ping,
            Self::Roomcast if text.starts_with(r#"{"type":"reply""#) => Frame::Reply {
                ok: text.contains(r#""ok":true"#),
            },
            Self::Roomcast if text.starts_with(r#"{"type":"error""#) => Frame::Reply { ok: false },
            _ => Frame::Other,
        }
    }
}

/// A server frame, classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A published payload: its sequence number and send time (µs since the epoch).
    Data { seq: u64, t: u64 },
    /// A heartbeat to answer.
    Ping,
    /// Roomcast's answer to a request (a chat's `reply`, or an `error` for it).
    Reply { ok: bool },
    /// Presence and everything else: consumed, ignored.
    Other,
}

/// The unsigned integer right after `key` in `text`.
fn number_after(text: &str, key: &str) -> Option<u64> {
    let start = text.find(key)? + key.len();
    let digits = text[start..].bytes().take_while(u8::is_ascii_digit).count();
    text[start..start + digits].parse().ok()
}

/// How a connection is opened.
#[derive(Debug, Clone, Copy, Default)]
pub struct Dial {
    /// A small fixed receive buffer (bytes): a stalled consumer's kernel buffer then fills
    /// after kilobytes, not the tens of megabytes Linux's autotuning allows on loopback,
    /// so the server sees the stall within a short run.
    pub recv_buffer: Option<u32>,
}

/// Opens the TCP connection (no Nagle: the publisher's frames must leave at once) and
/// upgrades it. A small read buffer keeps ten thousand idle clients cheap for the loadgen.
pub async fn open(url: &str, dial: Dial) -> anyhow::Result<Socket> {
    let authority = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split(['/', '?'])
        .next()
        .unwrap_or_default();
    let addr = tokio::net::lookup_host(authority)
        .await
        .with_context(|| format!("resolving {authority}"))?
        .next()
        .with_context(|| format!("no address for {authority}"))?;
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(bytes) = dial.recv_buffer {
        socket.set_recv_buffer_size(bytes)?;
    }
    let stream = socket
        .connect(addr)
        .await
        .with_context(|| format!("TCP connect to {addr}"))?;
    stream.set_nodelay(true)?;
    let config = WebSocketConfig::default().read_buffer_size(8 * 1024);
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config))
        .await
        .context("WebSocket upgrade")?;
    Ok(ws)
}

/// What the handshake learned.
#[derive(Debug, Clone, Copy, Default)]
pub struct Joined {
    /// Members the server said the room has, where its answer says.
    pub count: Option<u64>,
    /// Frames other than the answers (presence) read during the handshake.
    pub other_frames: u64,
}

/// Connects as the token's user and joins `room`, up to and including the join's answer:
/// the whole of what "a connection" costs in the connections-per-second figure.
pub async fn connect_join(
    target: Target,
    base: &str,
    token: &str,
    room: &str,
    dial: Dial,
) -> anyhow::Result<(Socket, Joined)> {
    let mut ws = open(&target.url(base, token), dial).await?;
    let room_json = serde_json::to_string(room)?;
    let mut joined = Joined::default();
    match target {
        Target::Roomcast => {
            expect(&mut ws, target, &mut joined, "auth_ok", |text| {
                Ok(text.starts_with(r#"{"type":"auth_ok""#).then_some(()))
            })
            .await?;
            let join = format!(r#"{{"type":"join","room":{room_json},"id":"join"}}"#);
            ws.send(Message::text(join)).await?;
            expect(&mut ws, target, &mut joined, "join reply", |text| {
                if !text.starts_with(r#"{"type":"reply""#)
                    && !text.starts_with(r#"{"type":"error""#)
                {
                    return Ok(None);
                }
                let answer: Value = serde_json::from_str(text)?;
                if answer["id"] != "join" {
                    return Ok(None);
                }
                if answer["ok"] != true {
                    bail!("join refused: {answer}");
                }
                Ok(Some(()))
            })
            .await?;
        }
        Target::Json => {
            let join = format!(r#"{{"type":"join","room":{room_json}}}"#);
            ws.send(Message::text(join)).await?;
            joined.count = expect(&mut ws, target, &mut joined, "joined", |text| {
                if text.starts_with(r#"{"type":"error""#) {
                    bail!("join refused: {text}");
                }
                if !text.starts_with(r#"{"type":"joined""#) {
                    return Ok(None);
                }
                let answer: Value = serde_json::from_str(text)?;
                Ok(Some(answer["count"].as_u64()))
            })
            .await?;
        }
        Target::Socketio => {
            expect(&mut ws, target, &mut joined, "Engine.IO open", |text| {
                Ok(text.starts_with("0{").then_some(()))
            })
            .await?;
            let token_json = serde_json::to_string(token)?;
            ws.send(Message::text(format!(r#"40{{"token":{token_json}}}"#)))
                .await?;
            expect(&mut ws, target, &mut joined, "Socket.IO connect", |text| {
                if text.starts_with("44") {
                    bail!("Socket.IO connect refused: {text}");
                }
                Ok(text.starts_with("40").then_some(()))
            })
            .await?;
            ws.send(Message::text(format!(r#"420["join",{room_json}]"#)))
                .await?;
            joined.count = expect(&mut ws, target, &mut joined, "join ack", |text| {
                let Some(ack) = text.strip_prefix("430") else {
                    return Ok(None);
                };
                let answer: Value = serde_json::from_str(ack)?;
                Ok(Some(answer[0]["count"].as_u64()))
            })
            .await?;
        }
    }
    Ok((ws, joined))
}

/// Reads until `accept` returns `Some` for a text frame, answering heartbeats and
/// counting what else came.
async fn expect<T>(
    ws: &mut Socket,
    target: Target,
    joined: &mut Joined,
    what: &str,
    mut accept: impl FnMut(&str) -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    loop {
        let frame = tokio::time::timeout(STEP, ws.next())
            .await
            .with_context(|| format!("timed out waiting for {what}"))?;
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(close))) => bail!("closed while waiting for {what}: {close:?}"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => bail!("error while waiting for {what}: {e}"),
            None => bail!("connection ended while waiting for {what}"),
        };
        if let Some(found) = accept(&text)? {
            return Ok(found);
        }
        if target.classify(&text) == Frame::Ping {
            ws.send(Message::text(target.pong())).await?;
        } else {
            joined.other_frames += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_frames_are_found_in_each_dialect() {
        let roomcast = r#"{"type":"chat","id":"0000000000000001","room":"bench","from":{"userId":"p"},"message":{"pad":"xx","seq":7,"t":123},"timestamp":1}"#;
        assert_eq!(
            Target::Roomcast.classify(roomcast),
            Frame::Data { seq: 7, t: 123 }
        );
        let json = r#"{"type":"message","room":"bench","data":{"t":5,"seq":0,"pad":"x"}}"#;
        assert_eq!(Target::Json.classify(json), Frame::Data { seq: 0, t: 5 });
        let sio = r#"42["message",{"room":"bench","data":{"t":9,"seq":3,"pad":""}}]"#;
        assert_eq!(Target::Socketio.classify(sio), Frame::Data { seq: 3, t: 9 });
        assert_eq!(Target::Socketio.classify("2"), Frame::Ping);
        assert_eq!(
            Target::Roomcast.classify(r#"{"type":"reply","id":3,"ok":true}"#),
            Frame::Reply { ok: true }
        );
        assert_eq!(
            Target::Roomcast.classify(r#"{"type":"user_join","room":"bench"}"#),
            Frame::Other
        );
    }

    #[test]
    fn urls_carry_the_token() {
        assert_eq!(
            Target::Roomcast.url("ws://h:1/ws", "T"),
            "ws://h:1/ws?token=T"
        );
        assert_eq!(
            Target::Socketio.url("ws://h:1", "T"),
            "ws://h:1/socket.io/?EIO=4&transport=websocket&token=T"
        );
    }
}
