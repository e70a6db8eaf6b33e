//! One WebSocket connection: a reader loop (this task) and a writer task fed by the
//! connection's queue (bounded in bytes), over a socket that coalesces the writer's
//! frames ([`Corked`]). The reader decodes each frame into a typed message at the
//! edge and dispatches it; timers (auth timeout, heartbeat, token expiry) and the server's
//! shutdown are branches of the same `select!`. When either side ends, the other is told
//! to stop and the hub forgets the connection.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::SplitStream;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use roomcast_protocol::{CloseCode, ErrorCode, RequestId, ServerMessage, User};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tracing::{debug, info};

use crate::auth::Identity;
use crate::clock::now_ms;
use crate::context::Context;
use crate::handler::{Handler, HandlerContext};
use crate::hub::{ConnHandle, ConnectionPermit, Hub, Registration};

mod cork;
mod dispatch;
mod writer;

pub(crate) use self::cork::Corked;

use self::writer::write_loop;

/// `rate_limited` errors within [`ABUSE_WINDOW`] after which the connection is closed
/// with 4008 (CONTRACT §8).
const ABUSE_LIMIT: u32 = 100;
const ABUSE_WINDOW: Duration = Duration::from_secs(10);
/// How long a closing connection may take to flush its queue and close frame.
pub(super) const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Starts a connection: registers it, spawns its writer and returns the reader's future,
/// which runs the connection to its end. The setup happens here, outside the future, so
/// the future (what an idle connection keeps allocated) holds only the reader's state.
/// `identity` is set when the upgrade carried a valid token.
pub(crate) fn start<S>(
    ctx: &Context,
    ws: WebSocketStream<S>,
    remote: std::net::SocketAddr,
    compress: bool,
    identity: Option<Identity>,
    permit: ConnectionPermit,
) -> impl Future<Output = ()> + Send + 'static
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let hub = &ctx.hub;
    let Registration { handle, close_rx } = hub.register(remote, compress);
    debug!(client = %handle.id(), %remote, "connected");
    let (sink, stream) = ws.split();
    let writer = tokio::spawn(write_loop(hub.clone(), handle.clone(), sink, close_rx));
    let session = Session::new(ctx.clone(), handle);
    session.run(stream, writer, identity.map(Box::new), permit)
}

impl Session {
    async fn run<S>(
        mut self,
        mut stream: SplitStream<WebSocketStream<S>>,
        mut writer: tokio::task::JoinHandle<()>,
        identity: Option<Box<Identity>>,
        permit: ConnectionPermit,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (hub, handle) = (self.hub.clone(), self.conn.clone());
        if let Some(identity) = identity {
            Box::pin(self.on_identity(None, *identity)).await;
        }
        let writer_done = self.read_loop(&mut stream, &mut writer).await;
        // Make sure the writer ends: it flushes what is queued, sends the close frame (if the
        // reader asked for one) and stops. Then finish the closing handshake: read and drop
        // what the client still sends until its close arrives, because closing a socket with
        // unread data resets it and the client would lose our close code. A writer stuck on a
        // dead socket is aborted.
        handle.stop_writer();
        Box::pin(hub.unregister(&handle)).await;
        if let (Some(handler), Some(user)) = (self.handler.clone(), self.user.take()) {
            let ctx = HandlerContext {
                client_id: handle.id().clone(),
                user,
                hub: hub.clone(),
            };
            handler.on_close(&ctx).await;
        }
        let finish = async {
            if !writer_done {
                let _ = (&mut writer).await;
            }
            while let Some(Ok(frame)) = stream.next().await {
                if frame.is_close() {
                    break;
                }
            }
        };
        if tokio::time::timeout(CLOSE_GRACE, finish).await.is_err() {
            writer.abort();
        }
        drop(permit);
        debug!(client = %handle.id(), "disconnected");
    }
}

/// The reader side's state.
struct Session {
    hub: Hub,
    /// The application's handler, if any.
    handler: Option<Arc<dyn Handler>>,
    conn: Arc<ConnHandle>,
    user: Option<Arc<User>>,
    expires_at: Option<Instant>,
    limiter: DefaultDirectRateLimiter,
    abuse_window: Instant,
    abuse_count: u32,
    closing: bool,
}

/// The heartbeat's two phases: waiting to send the next `ping`, or waiting for any frame
/// after one.
enum Heartbeat {
    Idle,
    Awaiting { sent: Instant },
}

/// The rate limiters' clock, made once: a new `QuantaClock` per connection reads the
/// CPU's features and calibrates its counter, ~5% of the server's CPU while 10,000
/// clients connect (perf, loadgen `idle`); a clone shares the calibration.
static RATE_CLOCK: std::sync::LazyLock<governor::clock::DefaultClock> =
    std::sync::LazyLock::new(governor::clock::DefaultClock::default);

impl Session {
    fn new(ctx: Context, conn: Arc<ConnHandle>) -> Self {
        let Context { hub, handler } = ctx;
        let config = hub.config();
        let per_sec = NonZeroU32::new(config.limits.rate_limit_per_sec).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(config.limits.rate_limit_burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_second(per_sec).allow_burst(burst);
        let limiter = RateLimiter::direct_with_clock(quota, RATE_CLOCK.clone());
        Self {
            hub,
            handler,
            conn,
            user: None,
            expires_at: None,
            limiter,
            abuse_window: Instant::now(),
            abuse_count: 0,
            closing: false,
        }
    }

    /// Reads until the connection ends; returns whether the writer task already finished.
    async fn read_loop<S>(
        &mut self,
        stream: &mut SplitStream<WebSocketStream<S>>,
        writer: &mut tokio::task::JoinHandle<()>,
    ) -> bool
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let (interval, timeout, auth_timeout) = {
            let config = self.hub.config();
            (
                config.timeouts.heartbeat_interval,
                config.timeouts.heartbeat_timeout,
                config.timeouts.auth,
            )
        };
        let shutdown = self.hub.shutdown_token().clone();
        let auth_deadline = Instant::now() + auth_timeout;
        let mut heartbeat = Heartbeat::Idle;
        let heartbeat_timer = tokio::time::sleep(interval);
        tokio::pin!(heartbeat_timer);
        while !self.closing {
            // Before auth the auth timeout is the deadline, after it the token's expiry:
            // one timer serves both.
            let deadline = if self.user.is_none() {
                Some(auth_deadline)
            } else {
                self.expires_at
            };
            tokio::select! {
                frame = stream.next() => {
                    // Any frame answers a pending heartbeat: the next ping is due an
                    // interval after the last one, however long the timeout is.
                    if let Heartbeat::Awaiting { sent } = heartbeat {
                        heartbeat = Heartbeat::Idle;
                        heartbeat_timer.as_mut().reset(sent + interval);
                    }
                    match frame {
                        // Boxed: handling a message needs a deep future that an idle
                        // connection should not carry in its task's allocation.
                        Some(Ok(Message::Text(text))) => Box::pin(self.on_text(&text)).await,
                        Some(Ok(Message::Binary(_))) => {
                            self.count_in(0);
                            if self.within_rate(None) {
                                self.error(None, ErrorCode::BadRequest, "binary frames are not supported: send JSON text frames");
                            }
                        }
                        Some(Ok(Message::Close(_))) | None => break,
                        Some(Ok(_)) => {}
                        Some(Err(WsError::Capacity(err))) => {
                            info!(client = %self.conn.id(), cause = %err, "frame over the size limit");
                            self.close(CloseCode::TooBig);
                        }
                        Some(Err(err)) => {
                            debug!(client = %self.conn.id(), cause = %err, "read failed");
                            break;
                        }
                    }
                }
                _ = &mut *writer => return true,
                () = &mut heartbeat_timer => match heartbeat {
                    Heartbeat::Idle => {
                        self.hub.send(&self.conn, &ServerMessage::Ping { timestamp: now_ms() });
                        let sent = Instant::now();
                        heartbeat = Heartbeat::Awaiting { sent };
                        heartbeat_timer.as_mut().reset(sent + timeout);
                    }
                    Heartbeat::Awaiting { .. } => {
                        info!(client = %self.conn.id(), "heartbeat timeout");
                        self.close(CloseCode::HeartbeatTimeout);
                    }
                },
                () = sleep_until(deadline.unwrap_or(auth_deadline)), if deadline.is_some() => {
                    let why = if self.user.is_none() { "auth timeout" } else { "token expired" };
                    info!(client = %self.conn.id(), why, "closing");
                    self.close(CloseCode::AuthFailed);
                }
                () = shutdown.cancelled() => self.close(CloseCode::GoingAway),
                // Closed from outside (API, slow consumer): stop reading, let the writer
                // say why, and leave.
                () = self.conn.closed() => self.closing = true,
            }
        }
        false
    }

    fn count_in(&self, bytes: usize) {
        let metrics = self.hub.metrics();
        metrics.messages_in.inc();
        metrics.bytes_in.inc_by(bytes as u64);
        self.conn
            .messages_in
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Applies the rate limit; answers `rate_limited` (or closes with 4008 on abuse).
    fn within_rate(&mut self, id: Option<&RequestId>) -> bool {
        if self.limiter.check().is_ok() {
            return true;
        }
        let now = Instant::now();
        if now.duration_since(self.abuse_window) > ABUSE_WINDOW {
            self.abuse_window = now;
            self.abuse_count = 0;
        }
        self.abuse_count += 1;
        if self.abuse_count > ABUSE_LIMIT {
            info!(client = %self.conn.id(), "rate limit abuse");
            self.close(CloseCode::RateLimitAbuse);
        } else {
            self.error(
                id.cloned(),
                ErrorCode::RateLimited,
                "too many messages: slow down",
            );
        }
        false
    }

    fn set_expiry(&mut self, expires_at: Option<u64>) {
        self.expires_at = expires_at
            .map(|at| Instant::now() + Duration::from_millis(at.saturating_sub(now_ms())));
    }

    fn error(&self, id: Option<RequestId>, code: ErrorCode, message: impl Into<String>) {
        self.hub.metrics().error(code);
        self.hub
            .send(&self.conn, &ServerMessage::error(id, code, message));
    }

    fn close(&mut self, code: CloseCode) {
        self.conn.close(code);
        self.closing = true;
    }
}

#[cfg(test)]
mod tests;
