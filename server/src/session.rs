//! One WebSocket connection: a reader loop (this task) and a writer task fed by the
//! connection's bounded queue. The reader decodes each frame into a typed message at the
//! edge and dispatches it; timers (auth timeout, heartbeat, token expiry) and the server's
//! shutdown are branches of the same `select!`. When either side ends, the other is told
//! to stop and the hub forgets the connection.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use roomcast_protocol::{
    AckReply, AuthReply, ChatReply, ClientFrame, ClientMessage, CloseCode, ErrorCode, HistoryReply,
    LeaveReply, MarkReadReply, PrivateHistoryReply, RefreshReply, RequestId, ServerMessage,
    SubscribeReply, UnsubscribeReply, User,
};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tracing::{debug, info};

use crate::ServerError;
use crate::auth::Identity;
use crate::clock::now_ms;
use crate::context::Context;
use crate::handler::{Handler, HandlerContext};
use crate::hub::{ConnHandle, ConnectionPermit, Hub, Registration};

/// `rate_limited` errors within [`ABUSE_WINDOW`] after which the connection is closed
/// with 4008 (CONTRACT §8).
const ABUSE_LIMIT: u32 = 100;
const ABUSE_WINDOW: Duration = Duration::from_secs(10);
/// How long a closing connection may take to flush its queue and close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Frames the writer takes from its queue per flush.
const WRITE_BATCH: usize = 64;

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
    let Registration {
        handle,
        outbox,
        close_rx,
    } = hub.register(remote, compress);
    debug!(client = %handle.id(), %remote, "connected");
    let (sink, stream) = ws.split();
    let writer = tokio::spawn(write_loop(
        hub.clone(),
        handle.clone(),
        sink,
        outbox,
        close_rx,
    ));
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

/// Writes queued frames, several per flush, until the queue closes or a close is asked.
async fn write_loop<S>(
    hub: Hub,
    conn: Arc<ConnHandle>,
    mut sink: SplitSink<WebSocketStream<S>, Message>,
    mut outbox: mpsc::Receiver<Utf8Bytes>,
    mut close_rx: oneshot::Receiver<Option<CloseCode>>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut batch = Vec::new();
    let code = loop {
        tokio::select! {
            biased;
            signal = &mut close_rx => break signal.ok().flatten(),
            n = outbox.recv_many(&mut batch, WRITE_BATCH) => {
                if n == 0 {
                    break None;
                }
                if write_batch(&hub, &conn, &mut sink, &mut batch).await.is_err() {
                    return;
                }
            }
        }
    };
    let closing = async {
        let Some(code) = code else {
            // The reader is done (the client closed or vanished): answer its close, if
            // any, and stop.
            return sink.close().await;
        };
        hub.metrics().close(code.code());
        // Whatever was queued before the close (an `error` explaining it) goes out first.
        while let Ok(frame) = outbox.try_recv() {
            batch.push(frame);
        }
        write_batch(&hub, &conn, &mut sink, &mut batch).await?;
        let frame = CloseFrame {
            code: WsCloseCode::from(code.code()),
            reason: code.reason().into(),
        };
        sink.send(Message::Close(Some(frame))).await
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, closing).await;
}

async fn write_batch<S>(
    hub: &Hub,
    conn: &ConnHandle,
    sink: &mut SplitSink<WebSocketStream<S>, Message>,
    batch: &mut Vec<Utf8Bytes>,
) -> Result<(), WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let metrics = hub.metrics();
    let count = batch.len() as u64;
    for frame in batch.drain(..) {
        metrics.bytes_out.inc_by(frame.len() as u64);
        sink.feed(Message::Text(frame)).await?;
    }
    metrics.messages_out.inc_by(count);
    conn.messages_out
        .fetch_add(count, std::sync::atomic::Ordering::Relaxed);
    sink.flush().await
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

impl Session {
    fn new(ctx: Context, conn: Arc<ConnHandle>) -> Self {
        let Context { hub, handler } = ctx;
        let config = hub.config();
        let per_sec = NonZeroU32::new(config.rate_limit_per_sec).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(config.rate_limit_burst).unwrap_or(NonZeroU32::MIN);
        let limiter = RateLimiter::direct(Quota::per_second(per_sec).allow_burst(burst));
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
                config.heartbeat_interval,
                config.heartbeat_timeout,
                config.auth_timeout,
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

    async fn on_text(&mut self, text: &str) {
        self.count_in(text.len());
        let frame = match ClientFrame::decode(text) {
            Ok(frame) => frame,
            Err(err) => {
                if self.within_rate(err.id.as_ref()) {
                    self.error(err.id, ErrorCode::BadRequest, err.error.to_string());
                }
                return;
            }
        };
        let ClientFrame { id, message } = frame;
        if matches!(message, ClientMessage::Pong) {
            return;
        }
        if !self.within_rate(id.as_ref()) {
            return;
        }
        if self.user.is_none() {
            match message {
                ClientMessage::Auth { token } => self.on_auth(id, &token).await,
                other => self.error(
                    id,
                    ErrorCode::NotAuthenticated,
                    format!("authenticate first: send `auth` before `{}`", other.kind()),
                ),
            }
            return;
        }
        let result = self.dispatch(id.as_ref(), message).await;
        match (result, id) {
            (Ok(Some(data)), Some(id)) => {
                self.hub.send(&self.conn, &ServerMessage::reply(id, data));
            }
            (Ok(_), _) => {}
            (Err(err), id) => self.error(id, err.code(), err.public_message()),
        }
    }

    /// Handles a message from an authenticated connection. `Ok(Some(data))` is the reply
    /// data; `Ok(None)` means the answer was already sent.
    async fn dispatch(
        &mut self,
        id: Option<&RequestId>,
        message: ClientMessage,
    ) -> Result<Option<Value>, ServerError> {
        match message {
            ClientMessage::Auth { token } => {
                self.on_refresh(id, &token);
                Ok(None)
            }
            ClientMessage::Ping => {
                self.hub.send(
                    &self.conn,
                    &ServerMessage::Pong {
                        id: id.cloned(),
                        timestamp: now_ms(),
                    },
                );
                Ok(None)
            }
            ClientMessage::Pong => Ok(None),
            ClientMessage::Join { room, since } => {
                let joined = self.hub.join(&self.conn, &room, since.as_ref()).await?;
                Ok(Some(joined.into()))
            }
            ClientMessage::Leave { room } => {
                self.hub.leave(&self.conn, &room).await?;
                Ok(Some(LeaveReply { room }.into()))
            }
            ClientMessage::Chat { room, content } => {
                let (id, timestamp) = self.hub.chat(&self.conn, &room, content).await?;
                Ok(Some(
                    ChatReply {
                        id,
                        room,
                        timestamp,
                    }
                    .into(),
                ))
            }
            ClientMessage::History {
                room,
                limit,
                before,
            } => {
                if !self.conn.state().rooms.contains(&room) {
                    return Err(ServerError::request(
                        ErrorCode::NotMember,
                        format!("join room {room} to read its history"),
                    ));
                }
                let items = self.hub.history(&room, limit, before.as_ref()).await?;
                Ok(Some(HistoryReply { items }.into()))
            }
            ClientMessage::Private {
                target_user_id,
                content,
            } => {
                let sent = self
                    .hub
                    .private(&self.conn, &target_user_id, content)
                    .await?;
                Ok(Some(sent.into()))
            }
            ClientMessage::PrivateHistory {
                user_id,
                limit,
                before,
                before_to,
            } => {
                // The caller is one side: it reads only its own conversations.
                let me = self.conn.user().ok_or_else(|| {
                    ServerError::request(ErrorCode::NotAuthenticated, "not authenticated")
                })?;
                let items = self
                    .hub
                    .private_history(
                        &me.user_id,
                        &user_id,
                        limit,
                        before.as_ref(),
                        before_to.as_ref(),
                    )
                    .await?;
                Ok(Some(PrivateHistoryReply { items }.into()))
            }
            ClientMessage::Ack { message_id } => {
                let awaited = self.hub.on_ack(&self.conn, &message_id);
                Ok(Some(
                    AckReply {
                        message_id,
                        awaited,
                    }
                    .into(),
                ))
            }
            ClientMessage::MarkRead { notification_id } => {
                self.hub.mark_read(&self.conn, &notification_id).await?;
                Ok(Some(MarkReadReply { notification_id }.into()))
            }
            ClientMessage::Subscribe { topic, keys } => {
                let keys = self.hub.subscribe(&self.conn, &topic, keys).await?;
                Ok(Some(SubscribeReply { topic, keys }.into()))
            }
            ClientMessage::Unsubscribe { topic } => {
                let removed = self.hub.unsubscribe(&self.conn, &topic).await?;
                Ok(Some(UnsubscribeReply { topic, removed }.into()))
            }
            ClientMessage::Custom(custom) => {
                let (Some(handler), Some(user)) = (self.handler.clone(), self.user.clone()) else {
                    return Err(ServerError::request(
                        ErrorCode::BadRequest,
                        format!(
                            "unknown message type `{}` (no application handler is configured)",
                            custom.kind
                        ),
                    ));
                };
                let ctx = self.context(user);
                match handler.on_message(&ctx, &custom).await {
                    Ok(data) => Ok(Some(data.unwrap_or(Value::Null))),
                    Err(err) => Err(ServerError::request(err.code, err.message)),
                }
            }
        }
    }

    fn context(&self, user: Arc<User>) -> HandlerContext {
        HandlerContext {
            client_id: self.conn.id().clone(),
            user,
            hub: self.hub.clone(),
        }
    }

    async fn on_auth(&mut self, id: Option<RequestId>, token: &str) {
        match self.hub.auth().verify(token) {
            Ok(identity) => self.on_identity(id, identity).await,
            Err(reason) => {
                self.error(id, ErrorCode::AuthFailed, reason);
                self.close(CloseCode::AuthFailed);
            }
        }
    }

    /// A verified identity for a connection that had none: ask the application's
    /// handler, then let the hub admit the connection (per-user limit, `auth_ok`, what
    /// waited for the user, the default rooms).
    async fn on_identity(&mut self, id: Option<RequestId>, identity: Identity) {
        if let Some(handler) = self.handler.clone() {
            let ctx = self.context(Arc::new(identity.user.clone()));
            if let Err(refusal) = handler.on_connect(&ctx).await {
                info!(client = %self.conn.id(), user = %identity.user.user_id, reason = %refusal.message, "refused by the application");
                self.error(id, ErrorCode::Forbidden, refusal.message);
                self.close(CloseCode::Refused);
                return;
            }
        }
        let admitted = match self.hub.admit(&self.conn, &identity).await {
            Ok(admitted) => admitted,
            Err(err) => {
                self.error(id, err.code(), err.public_message());
                self.close(if err.code() == ErrorCode::LimitExceeded {
                    CloseCode::ConnectionLimit
                } else {
                    CloseCode::GoingAway
                });
                // The application heard `connect`: it hears the matching `close`.
                if let Some(handler) = self.handler.clone() {
                    let ctx = self.context(Arc::new(identity.user));
                    handler.on_close(&ctx).await;
                }
                return;
            }
        };
        let user = admitted.user;
        self.user = Some(user.clone());
        self.set_expiry(identity.expires_at);
        for (room, err) in admitted.refused {
            self.error(
                None,
                err.code(),
                format!("default room {room}: {}", err.public_message()),
            );
        }
        if let Some(id) = id {
            let data = AuthReply {
                client_id: self.conn.id().clone(),
                user_id: user.user_id.clone(),
            };
            self.hub.send(&self.conn, &ServerMessage::reply(id, data));
        }
        info!(client = %self.conn.id(), user = %user.user_id, "authenticated");
    }

    fn on_refresh(&mut self, id: Option<&RequestId>, token: &str) {
        let identity = match self.hub.auth().verify(token) {
            Ok(identity) => identity,
            Err(reason) => {
                self.error(id.cloned(), ErrorCode::AuthFailed, reason);
                self.close(CloseCode::AuthFailed);
                return;
            }
        };
        match self.hub.refresh(&self.conn, &identity) {
            Ok(user) => {
                self.set_expiry(identity.expires_at);
                let rooms = {
                    let state = self.conn.state();
                    let defaults = &self.hub.config().default_rooms;
                    defaults
                        .iter()
                        .filter(|r| state.rooms.contains(*r))
                        .cloned()
                        .collect()
                };
                let welcome = self.hub.auth_ok(&self.conn, &user, &identity, rooms);
                self.hub.send(&self.conn, &welcome);
                if let Some(id) = id {
                    let data = RefreshReply {
                        client_id: self.conn.id().clone(),
                        user_id: user.user_id.clone(),
                        expires_at: identity.expires_at,
                    };
                    self.hub
                        .send(&self.conn, &ServerMessage::reply(id.clone(), data));
                }
            }
            Err(err) => self.error(id.cloned(), err.code(), err.public_message()),
        }
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
