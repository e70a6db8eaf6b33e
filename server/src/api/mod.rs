//! The HTTP side (CONTRACT §9): every warp filter lives here; handlers are in
//! [`handlers`], request bodies and query strings in [`models`] (queries decoded by
//! [`query`]), and every failure is an [`ApiError`] ([`error`]). `/api/*` needs
//! `Authorization: Bearer <key>`; `/healthz` and `/metrics` do not. The static demo is
//! served at `/` when configured, and in dev mode the demo's own routes live under `/dev`
//! (see [`dev`]).

mod dev;
mod error;
mod handlers;
mod models;
mod query;

pub use crate::model::ADMIN_ROLE;
pub use error::ApiError;

use std::convert::Infallible;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use roomcast_protocol::ErrorCode;
use serde::de::DeserializeOwned;
use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::hub::Hub;
use models::{ConnectionsQuery, HistoryQuery, NotificationsQuery};
use query::{no_query, query};

/// Largest accepted API request body.
const MAX_BODY: u64 = 1024 * 1024;

/// Every HTTP route of the server.
pub fn routes(
    hub: Hub,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static {
    let static_dir = hub.config().static_dir.clone();
    let health = warp::path!("healthz")
        .and(warp::get())
        .map(|| warp::reply::json(&json!({"status": "ok"})).into_response());
    let metrics = {
        let hub = hub.clone();
        warp::path!("metrics").and(warp::get()).map(move || {
            warp::reply::with_header(
                hub.metrics().render(),
                "content-type",
                "text/plain; version=0.0.4; charset=utf-8",
            )
            .into_response()
        })
    };
    let dev_routes = hub
        .config()
        .dev
        .then(|| warp::path("dev").and(dev::routes(&hub)).boxed());
    let routes_of_api = api_routes(&hub);
    let api = warp::path("api").and(api_key(hub)).and(routes_of_api);
    let base = health.or(metrics).unify().or(api).unify().boxed();
    let base = match dev_routes {
        Some(dev) => base.or(dev).unify().boxed(),
        None => base,
    };
    let routes = match static_dir {
        Some(dir) => base
            .or(warp::fs::dir(dir).map(Reply::into_response))
            .unify()
            .boxed(),
        None => base,
    };
    routes.recover(error::rejection).unify()
}

/// Hands each request a handle to the hub.
fn with_hub(hub: &Hub) -> impl Filter<Extract = (Hub,), Error = Infallible> + Clone + use<> {
    let hub = hub.clone();
    warp::any().map(move || hub.clone())
}

fn api_routes(hub: &Hub) -> warp::filters::BoxedFilter<(Response,)> {
    let h = || with_hub(hub);
    let token = warp::path!("token")
        .and(warp::post())
        .and(no_query())
        .and(h())
        .and(json_body())
        .then(handlers::token);
    let send = warp::path!("send")
        .and(warp::post())
        .and(no_query())
        .and(h())
        .and(json_body())
        .then(handlers::send);
    let broadcast = warp::path!("broadcast")
        .and(warp::post())
        .and(no_query())
        .and(h())
        .and(json_body())
        .then(handlers::broadcast);
    let publish = warp::path!("publish")
        .and(warp::post())
        .and(no_query())
        .and(h())
        .and(json_body())
        .then(handlers::publish);
    let notify = warp::path!("notify")
        .and(warp::post())
        .and(no_query())
        .and(h())
        .and(json_body())
        .then(handlers::notify);
    let notify_all = warp::path!("notify_all")
        .and(warp::post())
        .and(no_query())
        .and(h())
        .and(json_body())
        .then(handlers::notify_all);
    let notifications = warp::path!("users" / String / "notifications")
        .and(warp::get())
        .and(h())
        .and(query::<NotificationsQuery>())
        .then(handlers::user_notifications);
    let stats = warp::path!("stats")
        .and(warp::get())
        .and(no_query())
        .and(h())
        .then(handlers::stats);
    let conn_list = warp::path!("connections")
        .and(warp::get())
        .and(h())
        .and(query::<ConnectionsQuery>())
        .then(handlers::list_connections);
    let conn_drop_all = warp::path!("connections")
        .and(warp::delete())
        .and(no_query())
        .and(h())
        .then(handlers::disconnect_all);
    let conn_get = warp::path!("connections" / String)
        .and(warp::get())
        .and(no_query())
        .and(h())
        .then(handlers::connection);
    let conn_drop = warp::path!("connections" / String)
        .and(warp::delete())
        .and(no_query())
        .and(h())
        .then(handlers::disconnect);
    let data_get = warp::path!("connections" / String / "data")
        .and(warp::get())
        .and(no_query())
        .and(h())
        .then(handlers::get_data);
    let data_put = warp::path!("connections" / String / "data")
        .and(warp::put())
        .and(no_query())
        .and(h())
        .and(json_body())
        .then(handlers::put_data);
    let room_create = warp::path!("rooms")
        .and(warp::post())
        .and(no_query())
        .and(h())
        .and(json_body())
        .then(handlers::create_room);
    let room_list = warp::path!("rooms")
        .and(warp::get())
        .and(no_query())
        .and(h())
        .then(handlers::list_rooms);
    let room_history = warp::path!("rooms" / String / "history")
        .and(warp::get())
        .and(h())
        .and(query::<HistoryQuery>())
        .then(handlers::room_history);
    let room_get = warp::path!("rooms" / String)
        .and(warp::get())
        .and(no_query())
        .and(h())
        .then(handlers::room);
    let room_delete = warp::path!("rooms" / String)
        .and(warp::delete())
        .and(no_query())
        .and(h())
        .then(handlers::delete_room);
    let member_add = warp::path!("rooms" / String / "members" / String)
        .and(warp::post())
        .and(no_query())
        .and(h())
        .then(handlers::add_member);
    let member_remove = warp::path!("rooms" / String / "members" / String)
        .and(warp::delete())
        .and(no_query())
        .and(h())
        .then(handlers::remove_member);
    // Grouped and boxed: one long chain of `or`s makes warp's nested types (and the
    // compiler's work on them) grow much faster than the route count.
    let messaging = token
        .or(send)
        .unify()
        .or(broadcast)
        .unify()
        .or(publish)
        .unify()
        .or(notify)
        .unify()
        .or(notify_all)
        .unify()
        .or(notifications)
        .unify()
        .or(stats)
        .unify()
        .boxed();
    let connections = conn_list
        .or(conn_drop_all)
        .unify()
        .or(conn_get)
        .unify()
        .or(conn_drop)
        .unify()
        .or(data_get)
        .unify()
        .or(data_put)
        .unify()
        .boxed();
    let rooms = room_create
        .or(room_list)
        .unify()
        .or(room_history)
        .unify()
        .or(room_get)
        .unify()
        .or(room_delete)
        .unify()
        .or(member_add)
        .unify()
        .or(member_remove)
        .unify()
        .boxed();
    messaging.or(connections).unify().or(rooms).unify().boxed()
}

/// Checks `Authorization: Bearer <api key>`.
fn api_key(hub: Hub) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization")
        .and_then(move |header: Option<String>| {
            let expected = hub.config().api_key.clone();
            async move {
                match header.as_deref().and_then(|h| h.strip_prefix("Bearer ")) {
                    None => Err(warp::reject::custom(ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        ErrorCode::NotAuthenticated,
                        "missing `Authorization: Bearer <api key>`",
                    ))),
                    Some(key) if constant_time_eq(key.trim().as_bytes(), expected.as_bytes()) => {
                        Ok(())
                    }
                    Some(_) => Err(warp::reject::custom(ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        ErrorCode::AuthFailed,
                        "wrong API key",
                    ))),
                }
            }
        })
        .untuple_one()
}

/// Compares without an early exit, so the key cannot be guessed byte by byte from timing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A JSON body of type `T`; anything else is a 400 that says what was wrong, and a body
/// over [`MAX_BODY`] (chunked or not) is a 413.
fn json_body<T: DeserializeOwned + Send>() -> impl Filter<Extract = (T,), Error = Rejection> + Clone
{
    warp::body::stream().and_then(|stream| async move {
        let body = read_capped(stream).await?;
        serde_json::from_slice::<T>(&body)
            .map_err(|e| warp::reject::custom(ApiError::bad_request(format!("invalid body: {e}"))))
    })
}

/// Reads a body up to [`MAX_BODY`] bytes, whether or not it declares its length.
async fn read_capped<B: Buf>(
    stream: impl Stream<Item = Result<B, warp::Error>>,
) -> Result<Bytes, Rejection> {
    let limit = usize::try_from(MAX_BODY).unwrap_or(usize::MAX);
    let mut body = BytesMut::new();
    tokio::pin!(stream);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            warp::reject::custom(ApiError::bad_request(format!("cannot read body: {e}")))
        })?;
        if body.len() + chunk.remaining() > limit {
            return Err(warp::reject::custom(error::too_large()));
        }
        body.put(chunk);
    }
    Ok(body.freeze())
}
