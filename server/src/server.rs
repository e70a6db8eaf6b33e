//! The listener: one accept loop serving HTTP/1.1 with upgrades. `GET /ws` is upgraded
//! here, with our own [`WebSocketConfig`] (a 1 KiB read buffer instead of tungstenite's
//! 128 KiB, which is most of an idle connection's memory); every other request goes to
//! the warp filters of [`crate::api`] through `warp::service`. warp's own `ws()` filter
//! cannot set the read buffer, which is why the upgrade lives here.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::{
    CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use roomcast_protocol::ErrorCode;
use tokio::net::TcpListener;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_util::task::TaskTracker;
use tower_service::Service;
use tracing::{debug, info, warn};
use warp::Reply;

use crate::auth::Identity;
use crate::broker::{Broker, LocalBroker, RedisBroker, RedisOptions};
use crate::config::Config;
use crate::context::Context;
use crate::handler::Handler;
use crate::hub::Hub;
use crate::{ServerError, api, session};

/// How long shutdown waits for connections to say goodbye before returning anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// The per-connection read buffer, which tungstenite allocates at the upgrade and keeps:
/// 1 KiB rather than 4 saves 3 KB per idle connection (loadgen `idle`); a client's
/// frames are small (a chat's content is at most 4 KiB), so the extra reads are few.
const READ_BUFFER: usize = 1024;
/// The cap on tungstenite's write buffer (see [`ws_config`]).
const MAX_WRITE_BUFFER: usize = 64 * 1024;

/// Runs the server on `listener` until `shutdown` resolves, with the in-process broker
/// and the store the configuration names (opened and migrated first). On shutdown every
/// WebSocket gets close 1001 and `run` returns once they are gone.
///
/// # Errors
/// [`ServerError::Store`] / [`ServerError::Config`] when the store cannot be opened,
/// [`ServerError::Io`] when the listener fails for good.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let store = crate::store::open(&config.store.url).await?;
    let webhook = match &config.features.webhook_url {
        Some(url) => Some(crate::WebhookHandler::new(
            url.clone(),
            config.timeouts.webhook,
        )?),
        None => None,
    };
    let broker: Arc<dyn Broker> = match RedisOptions::from_config(&config) {
        Some(options) => {
            let broker = RedisBroker::connect(options).await?;
            info!(
                node = broker.node_id(),
                "cluster mode: fan-out through Redis"
            );
            Arc::new(broker)
        }
        None => Arc::new(LocalBroker::new()),
    };
    let hub = Hub::start(config, broker, store).await?;
    let handler = webhook.map(|webhook| Arc::new(webhook) as Arc<dyn Handler>);
    run_with(listener, hub, handler, shutdown).await
}

/// Like [`run`], with a hub the caller started (its own broker or store, or a handle it
/// keeps) and the application's handler, if any.
///
/// # Errors
/// [`ServerError::Io`] when the listener fails for good.
pub async fn run_with(
    listener: TcpListener,
    hub: Hub,
    handler: Option<Arc<dyn Handler>>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let restored = hub.restore_rooms().await?;
    if restored > 0 {
        info!(rooms = restored, "persistent rooms restored");
    }
    if let Some(interval) = hub.config().features.stats_interval {
        hub.spawn_background(crate::stats::push_stats(hub.clone(), interval));
    }
    if hub.config().server.demo {
        info!("demo feed on: topic `stocks`, rooms game-1 to game-3");
        hub.spawn_background(crate::demo::run_demo(hub.clone(), crate::now_ms()));
    }
    let ctx = Context {
        hub: hub.clone(),
        handler,
    };
    let routes = api::routes(hub.clone());
    let warp_service = warp::service(routes);
    let http_conns = TaskTracker::new();
    let sockets = TaskTracker::new();
    tokio::pin!(shutdown);
    info!(addr = %listener.local_addr()?, "listening");
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!(cause = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let stop = hub.shutdown_token().clone();
        let ctx = ctx.clone();
        let warp_service = warp_service.clone();
        let sockets = sockets.clone();
        let service = service_fn(move |req: Request<Incoming>| {
            let ctx = ctx.clone();
            let mut warp_service = warp_service.clone();
            let sockets = sockets.clone();
            async move {
                if req.uri().path() == "/ws" {
                    Ok::<_, Infallible>(upgrade(ctx, req, remote, &sockets))
                } else {
                    warp_service.call(req).await
                }
            }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        http_conns.spawn(async move {
            tokio::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                () = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(err) = result {
                debug!(cause = %err, "http connection ended with an error");
            }
        });
    }
    info!(connections = hub.connection_count(), "shutting down");
    drop(listener);
    // Pending batches go out first, while their rooms' members are still connected: a
    // message answered `batched: true` is never dropped. Then every connection hears
    // 1001.
    if tokio::time::timeout(SHUTDOWN_GRACE, hub.flush_batches())
        .await
        .is_err()
    {
        warn!("batches did not flush in time");
    }
    hub.shutdown_token().cancel();
    sockets.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, sockets.wait())
        .await
        .is_err()
    {
        warn!(
            left = hub.connection_count(),
            "connections did not close in time"
        );
    }
    // Background work (timers, the stats push, the demo feed) ends before `run` returns.
    if tokio::time::timeout(SHUTDOWN_GRACE, hub.stop_background())
        .await
        .is_err()
    {
        warn!("background work did not stop in time");
    }
    if tokio::time::timeout(SHUTDOWN_GRACE, hub.stop_broker())
        .await
        .is_err()
    {
        warn!("the broker did not stop in time");
    }
    http_conns.close();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, http_conns.wait()).await;
    info!("stopped");
    Ok(())
}

/// Answers `GET /ws`: checks the handshake, the total limit and a query token, then
/// switches protocols and hands the socket to a connection task.
fn upgrade(
    ctx: Context,
    req: Request<Incoming>,
    remote: SocketAddr,
    sockets: &TaskTracker,
) -> warp::reply::Response {
    let headers = req.headers();
    let is_upgrade = req.method() == Method::GET
        && header_has(headers, CONNECTION, "upgrade")
        && header_has(headers, UPGRADE, "websocket")
        && headers
            .get(SEC_WEBSOCKET_VERSION)
            .is_some_and(|v| v == "13");
    let Some(key) = headers.get(SEC_WEBSOCKET_KEY).filter(|_| is_upgrade) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            "expected a WebSocket upgrade (version 13)",
        );
    };
    let accept = derive_accept_key(key.as_bytes());
    let hub = &ctx.hub;
    let query = Query::parse(req.uri().query().unwrap_or(""));
    let Some(permit) = hub.try_reserve() else {
        hub.metrics().refuse(503);
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::LimitExceeded,
            "the server is at its connection limit",
        );
    };
    let identity: Option<Identity> = match query.token.as_deref().map(|t| hub.auth().verify(t)) {
        None => None,
        Some(Ok(identity)) => Some(identity),
        Some(Err(reason)) => {
            hub.metrics().refuse(401);
            return error_response(StatusCode::UNAUTHORIZED, ErrorCode::AuthFailed, reason);
        }
    };
    let config = ws_config(hub.config().limits.max_frame_bytes);
    let compress = query.compress;
    let tracker = sockets.clone();
    sockets.spawn(async move {
        let upgraded = match hyper::upgrade::on(req).await {
            Ok(upgraded) => upgraded,
            Err(err) => {
                debug!(cause = %err, "upgrade failed");
                return;
            }
        };
        let socket = session::Corked::new(TokioIo::new(upgraded));
        let ws = WebSocketStream::from_raw_socket(socket, Role::Server, Some(config)).await;
        // The connection gets a task of its own: this one (holding the request and the
        // handshake's state) ends, so an idle connection carries only what it needs.
        tracker.spawn(session::start(&ctx, ws, remote, compress, identity, permit));
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(CONNECTION, "upgrade")
        .header(UPGRADE, "websocket")
        .header(SEC_WEBSOCKET_ACCEPT, accept)
        .body(bytes::Bytes::new())
        .map(Reply::into_response)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// The WebSocket settings: a small read buffer, frames up to the configured limit, and
/// every frame written at once to the socket below, which coalesces them
/// ([`session::Corked`]): tungstenite's own write buffer would keep the size of the
/// largest burst for good. It holds one frame at a time then (at most a fragment of
/// 4 KiB, plus a control frame), and is capped (a finite cap above the threshold, as
/// tungstenite requires) so that a client piling up pings cannot grow it.
pub fn ws_config(max_frame_bytes: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .max_message_size(Some(max_frame_bytes))
        .max_frame_size(Some(max_frame_bytes))
}

fn header_has(headers: &http::HeaderMap, name: http::header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .any(|part| part.trim().eq_ignore_ascii_case(token))
        })
    })
}

/// A refused upgrade, with the API's error body (`api::ApiError`).
fn error_response(
    status: StatusCode,
    code: ErrorCode,
    message: impl Into<String>,
) -> warp::reply::Response {
    api::ApiError::new(status, code, message).into_response()
}

/// The `/ws` query parameters.
#[derive(Debug, Default)]
struct Query {
    token: Option<String>,
    compress: bool,
}

impl Query {
    fn parse(query: &str) -> Self {
        let mut out = Self::default();
        for (key, value) in url_pairs(query) {
            match key.as_str() {
                "token" => out.token = Some(value),
                "compress" => out.compress = value == "gzip",
                _ => {}
            }
        }
        out
    }
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query).unwrap_or_default()
}
