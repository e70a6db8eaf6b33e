//! The stalled subscribers of `slow-consumer`: after the run, each one's socket is read
//! to its end (or for a bounded time) to learn what the server did with it while it was
//! not reading: closed it (with which close code, e.g. Roomcast's 4029), reset it, or
//! kept it open and buffered everything for it. A close frame queued behind data the
//! client never read may never reach it (the server gives up on the socket), so for
//! Roomcast the server's own counts (`/metrics`: closes by code, queue drops) are read too.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error, Message};

use crate::dialect::{Frame, Socket, Target};
use crate::fanout::summarize;

/// A stalled socket quiet this long at the end is still open: what a server buffered for
/// it arrives at loopback speed, so a pause this long means nothing more is coming.
const QUIET: Duration = Duration::from_secs(2);

/// The most time spent reading them all out.
const READ_OUT: Duration = Duration::from_secs(30);

/// "close 4029", "close (no code)".
pub fn close_name(close: Option<&CloseFrame>) -> String {
    close.map_or_else(
        || "close (no code)".to_owned(),
        |frame| format!("close {}", u16::from(frame.code)),
    )
}

/// A short name for how a read failed: a reset is what a stalled reader usually meets
/// (the server gave up on it and the kernel dropped what was still queued for it).
pub fn error_name(e: &Error) -> String {
    match e {
        Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            "reset (no close frame)".to_owned()
        }
        Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionReset => "reset".to_owned(),
        Error::ConnectionClosed | Error::AlreadyClosed => "closed".to_owned(),
        other => format!("error: {other}"),
    }
}

/// Roomcast's own counts of what it did to slow consumers so far, from `/metrics` on the
/// host of `ws_url`: closes by code ("close 4029") and messages dropped on a full queue
/// ("queue drops"); `None` when they cannot be read.
pub async fn roomcast_counters(ws_url: &str) -> Option<Vec<(String, u64)>> {
    let host = ws_url.strip_prefix("ws://")?.split(['/', '?']).next()?;
    let text = reqwest::get(format!("http://{host}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    Some(
        text.lines()
            .filter_map(|line| {
                let (name, value) =
                    if let Some(drops) = line.strip_prefix("roomcast_queue_drops_total ") {
                        ("queue drops".to_owned(), drops)
                    } else if let Some(closes) =
                        line.strip_prefix("roomcast_slow_consumer_closes_total ")
                    {
                        // Counted when the close is decided: a writer stuck on a reader
                        // that reads nothing never writes the 4029 it would count below.
                        ("slow-consumer closes".to_owned(), closes)
                    } else {
                        let rest = line.strip_prefix("roomcast_closes_total{code=\"")?;
                        let (code, value) = rest.split_once("\"} ")?;
                        (format!("close {code}"), value)
                    };
                Some((name, value.trim().parse::<f64>().ok()? as u64))
            })
            .collect(),
    )
}

/// What the counters in `after` gained over `before`, as "close 4029 ×1" items.
pub fn counted_between(before: &[(String, u64)], after: &[(String, u64)]) -> Vec<String> {
    after
        .iter()
        .filter_map(|(code, n)| {
            let was = before
                .iter()
                .find(|(c, _)| c == code)
                .map_or(0, |(_, b)| *b);
            (*n > was).then(|| format!("{code} ×{}", n - was))
        })
        .collect()
}

/// What the stalled subscribers' sockets held.
#[derive(Debug, Default)]
pub struct StalledReport {
    /// How each ended: "close 4029", "reset (no close frame)", "dropped", "open", ...
    pub endings: Vec<String>,
    /// Data frames read from them at the end (what the server had kept for them).
    pub data_frames: u64,
    pub bytes: u64,
    /// What the server itself counted during the run (Roomcast only): closes by code,
    /// queue drops.
    pub server_counted: Option<Vec<String>>,
}

impl StalledReport {
    pub fn describe(&self) -> String {
        let server = self.server_counted.as_ref().map_or_else(String::new, |c| {
            format!(
                "; the server counted: {}",
                if c.is_empty() {
                    "none".to_owned()
                } else {
                    c.join(", ")
                }
            )
        });
        format!(
            "stalled subscribers: {}; read afterwards: {} payloads, {} bytes{server}",
            summarize(&self.endings),
            self.data_frames,
            self.bytes
        )
    }

    pub fn to_json(&self) -> Value {
        json!({
            "endings": self.endings,
            "summary": summarize(&self.endings),
            "data_frames_read_after": self.data_frames,
            "bytes_read_after": self.bytes,
            "server_counted": self.server_counted,
        })
    }
}

/// Reads each stalled socket until it ends, falls quiet, or [`READ_OUT`] passes.
pub async fn read_out(stalled: Vec<Socket>, target: Target) -> StalledReport {
    let results = futures_util::future::join_all(stalled.into_iter().map(|mut ws| async move {
        let (mut data, mut bytes) = (0u64, 0u64);
        let ending = tokio::time::timeout(READ_OUT, async {
            loop {
                let Ok(frame) = tokio::time::timeout(QUIET, ws.next()).await else {
                    return "open".to_owned();
                };
                match frame {
                    Some(Ok(Message::Text(text))) => {
                        bytes += text.len() as u64;
                        if matches!(target.classify(&text), Frame::Data { .. }) {
                            data += 1;
                        }
                    }
                    Some(Ok(Message::Close(close))) => return close_name(close.as_ref()),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return error_name(&e),
                    None => return "dropped".to_owned(),
                }
            }
        })
        .await
        .unwrap_or_else(|_| "open (still sending)".to_owned());
        (ending, data, bytes)
    }))
    .await;
    let mut report = StalledReport::default();
    for (ending, data, bytes) in results {
        report.endings.push(ending);
        report.data_frames += data;
        report.bytes += bytes;
    }
    report
}
