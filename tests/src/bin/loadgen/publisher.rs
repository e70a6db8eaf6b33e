//! The fan-out publisher, on a thread and a runtime of its own: its schedule (message k at
//! start + k/R) is then not at the mercy of the thousands of subscriber tasks sharing the
//! main runtime's workers, and a late send means the machine's cores, not the loadgen's
//! task queue, held it up. It reads its own socket between sends (its own copies,
//! Roomcast's replies, heartbeats) so that it is never a slow consumer itself.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::dialect::{self, Dial, Frame, Socket, Target};
use crate::fanout::Shared;
use crate::report::{self, Pacing};
use crate::stalled;

/// What the publisher sends.
#[derive(Debug)]
pub struct Plan {
    pub target: Target,
    /// The room as a JSON string.
    pub room: String,
    pub count: u64,
    pub interval: Duration,
    pub pad: String,
}

/// The publisher's answers from Roomcast.
#[derive(Debug, Default)]
pub struct Replies {
    pub ok: u64,
    pub errors: u64,
}

/// A publisher that has joined and waits for [`Publisher::go`].
#[derive(Debug)]
pub struct Publisher {
    go: oneshot::Sender<()>,
    sent: oneshot::Receiver<Pacing>,
    thread: std::thread::JoinHandle<anyhow::Result<Replies>>,
}

/// The publisher once it is done sending (it reads on until the stop).
#[derive(Debug)]
pub struct Sending {
    thread: std::thread::JoinHandle<anyhow::Result<Replies>>,
}

/// Starts the publisher's thread; returns once it has joined the room.
pub async fn start(
    target: Target,
    url: String,
    token: String,
    room: String,
    plan: Plan,
    shared: Arc<Shared>,
) -> anyhow::Result<Publisher> {
    let (joined_tx, joined_rx) = oneshot::channel::<anyhow::Result<()>>();
    let (go_tx, go_rx) = oneshot::channel();
    let (sent_tx, sent_rx) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("publisher".to_owned())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let ws = match dialect::connect_join(target, &url, &token, &room, Dial::default())
                    .await
                {
                    Ok((ws, _)) => ws,
                    Err(e) => {
                        let _ = joined_tx.send(Err(e));
                        return Ok(Replies::default());
                    }
                };
                let _ = joined_tx.send(Ok(()));
                if go_rx.await.is_err() {
                    return Ok(Replies::default());
                }
                publish(ws, plan, shared, sent_tx).await
            })
        })?;
    joined_rx.await.context("the publisher's thread ended")??;
    Ok(Publisher {
        go: go_tx,
        sent: sent_rx,
        thread,
    })
}

impl Publisher {
    /// Starts sending; returns the pacing once every message is sent.
    pub async fn go(self) -> anyhow::Result<(Pacing, Sending)> {
        let _ = self.go.send(());
        match self.sent.await {
            Ok(pacing) => Ok((
                pacing,
                Sending {
                    thread: self.thread,
                },
            )),
            // It stopped before sending everything: its error says why.
            Err(_) => Err(Sending {
                thread: self.thread,
            }
            .finish()
            .await
            .err()
            .unwrap_or_else(|| anyhow::anyhow!("the publisher stopped early"))),
        }
    }
}

impl Sending {
    /// Waits for the thread (after the stop) and returns Roomcast's replies.
    pub async fn finish(self) -> anyhow::Result<Replies> {
        tokio::task::spawn_blocking(move || self.thread.join())
            .await
            .context("joining the publisher's thread")?
            .map_err(|_| anyhow::anyhow!("the publisher's thread panicked"))?
    }
}

/// A send later than this after its slot counts as late.
const LATE: Duration = Duration::from_millis(5);

/// Sends `plan.count` payloads, message k at start + k × interval, reading its own socket
/// in between (its own copies, Roomcast's replies, heartbeats) so that it is never the
/// slow consumer. Reports its pacing on `sent` once done sending, then reads on until the
/// stop (and Roomcast's last replies).
async fn publish(
    mut ws: Socket,
    plan: Plan,
    shared: Arc<Shared>,
    sent: oneshot::Sender<Pacing>,
) -> anyhow::Result<Replies> {
    let mut replies = Replies::default();
    let mut pacing = Pacing::default();
    let start = Instant::now();
    for k in 0..plan.count {
        let slot = start + plan.interval.mul_f64(k as f64);
        loop {
            // Reading first: frames waiting are drained before the next send, and a
            // publisher behind schedule still reads its socket.
            tokio::select! {
                biased;
                frame = ws.next() => on_frame(&mut ws, plan.target, frame, &mut replies).await?,
                () = tokio::time::sleep_until(slot) => break,
            }
        }
        let woke = Instant::now();
        pacing.note_lag(woke.saturating_duration_since(slot), LATE);
        let t = shared.micros();
        let payload = format!(r#"{{"t":{t},"seq":{k},"pad":"{}"}}"#, plan.pad);
        ws.send(Message::text(plan.target.publish(&plan.room, &payload, k)))
            .await
            .context("publishing")?;
        pacing.blocked += woke.elapsed();
        pacing.sent += 1;
    }
    pacing.final_lag =
        Instant::now().saturating_duration_since(start + plan.interval.mul_f64(plan.count as f64));
    pacing.elapsed = start.elapsed();
    let _ = sent.send(pacing);
    // Roomcast answers each chat after delivering it: the last replies may still be on
    // their way at the stop, so they get a moment more.
    let answers = if plan.target == Target::Roomcast {
        pacing.sent
    } else {
        0
    };
    let stop = shared.stop.clone();
    loop {
        let frame = if stop.is_cancelled() {
            if replies.ok + replies.errors >= answers {
                return Ok(replies);
            }
            match tokio::time::timeout(Duration::from_secs(2), ws.next()).await {
                Ok(frame) => frame,
                Err(_) => return Ok(replies),
            }
        } else {
            tokio::select! {
                biased;
                () = stop.cancelled() => continue,
                frame = ws.next() => frame,
            }
        };
        on_frame(&mut ws, plan.target, frame, &mut replies).await?;
    }
}

async fn on_frame(
    ws: &mut Socket,
    target: Target,
    frame: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    replies: &mut Replies,
) -> anyhow::Result<()> {
    match frame {
        Some(Ok(Message::Text(text))) => match target.classify(&text) {
            Frame::Ping => ws.send(Message::text(target.pong())).await?,
            Frame::Reply { ok: true } => replies.ok += 1,
            Frame::Reply { ok: false } => {
                if replies.errors == 0 {
                    report::say(&format!("first publish error: {text}"));
                }
                replies.errors += 1;
            }
            Frame::Data { .. } | Frame::Other => {}
        },
        Some(Ok(Message::Close(close))) => {
            bail!(
                "the publisher's connection was closed: {}",
                stalled::close_name(close.as_ref())
            )
        }
        Some(Ok(_)) => {}
        Some(Err(e)) => bail!("the publisher's connection failed: {e}"),
        None => bail!("the publisher's connection ended"),
    }
    Ok(())
}
