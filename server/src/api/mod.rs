//! The HTTP side (CONTRACT §9), in warp's `examples/todos.rs` shape: one filter per route
//! in [`filters`] (and [`dev`] for `/dev`), handlers in [`handlers`], request bodies and
//! query strings in [`models`], decoded by [`query`]; every failure is an [`ApiError`]
//! ([`error`]). This module assembles the routes and holds the filters they share.
//! `/api/*` needs `Authorization: Bearer <key>`; `/healthz` and `/metrics` do not. The
//! static demo is served at `/` when configured, and in dev mode the demo's own routes
//! live under `/dev`.

mod dev;
mod error;
mod filters;
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
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::hub::Hub;

/// Largest accepted API request body.
const MAX_BODY: u64 = 1024 * 1024;

/// Every HTTP route of the server.
pub fn routes(
    hub: Hub,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static {
    let static_dir = hub.config().server.static_dir.clone();
    let health = filters::health(&hub);
    let metrics = filters::metrics(&hub);
    let dev_routes = hub
        .config()
        .server
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

/// Every `/api` route (the caller strips the `api` segment and checks the key).
fn api_routes(hub: &Hub) -> BoxedFilter<(Response,)> {
    // Grouped and boxed: one long chain of `or`s makes warp's nested types (and the
    // compiler's work on them) grow much faster than the route count.
    let messaging = filters::token(hub)
        .or(filters::send(hub))
        .unify()
        .or(filters::broadcast(hub))
        .unify()
        .or(filters::publish(hub))
        .unify()
        .or(filters::notify(hub))
        .unify()
        .or(filters::notify_all(hub))
        .unify()
        .or(filters::user_notifications(hub))
        .unify()
        .or(filters::user_private(hub))
        .unify()
        .or(filters::stats(hub))
        .unify()
        .boxed();
    let connections = filters::list_connections(hub)
        .or(filters::disconnect_all(hub))
        .unify()
        .or(filters::connection(hub))
        .unify()
        .or(filters::disconnect(hub))
        .unify()
        .or(filters::get_data(hub))
        .unify()
        .or(filters::put_data(hub))
        .unify()
        .boxed();
    let rooms = filters::create_room(hub)
        .or(filters::list_rooms(hub))
        .unify()
        .or(filters::room_history(hub))
        .unify()
        .or(filters::room(hub))
        .unify()
        .or(filters::delete_room(hub))
        .unify()
        .or(filters::add_member(hub))
        .unify()
        .or(filters::remove_member(hub))
        .unify()
        .boxed();
    messaging.or(connections).unify().or(rooms).unify().boxed()
}

/// Checks `Authorization: Bearer <api key>`.
fn api_key(hub: Hub) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization")
        .and_then(move |header: Option<String>| {
            let expected = hub.config().auth.api_key.clone();
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
