//! One filter per route outside `/dev` (warp's `examples/todos.rs` shape): path and
//! method, then the hub, the query and the body, ending in its handler of
//! [`super::handlers`]. For `/api` routes the `api` segment and the API key are checked
//! once, by [`super::routes`], and `super::api_routes` groups them.
//!
//! Every route decodes its query, even those without parameters ([`no_query`]), so an
//! unknown parameter is a 400 everywhere instead of silently ignored. The query comes
//! before the body: a refused query does not need the body read.

use serde_json::json;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::handlers;
use super::models::{ConnectionsQuery, HistoryQuery, NotificationsQuery, PrivateQuery};
use super::query::{no_query, query};
use super::{json_body, with_hub};
use crate::hub::Hub;

// `/healthz` and `/metrics` take no key and ignore any query: probes and scrapers are
// configured outside our control, and a refused probe would take a healthy node out.

/// `GET /healthz`: `ok`; `degraded` (still 200: this node serves its own connections)
/// while the bus is away; 503 `unavailable` while the store does not answer within a
/// second, since nothing durable can be accepted then.
pub(super) fn health(
    hub: &Hub,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    let hub = hub.clone();
    warp::path!("healthz").and(warp::get()).then(move || {
        let hub = hub.clone();
        async move {
            let broker = hub.broker_health();
            let store = hub.store_health().await;
            let (status, code) = match (&store, broker.connected) {
                (Err(_), _) => ("unavailable", http::StatusCode::SERVICE_UNAVAILABLE),
                (Ok(()), false) => ("degraded", http::StatusCode::OK),
                (Ok(()), true) => ("ok", http::StatusCode::OK),
            };
            let store = match store {
                Ok(()) => json!({ "connected": true }),
                Err(cause) => json!({ "connected": false, "error": cause }),
            };
            let body = json!({ "status": status, "broker": broker, "store": store });
            warp::reply::with_status(warp::reply::json(&body), code).into_response()
        }
    })
}

/// `GET /metrics` (Prometheus text format)
pub(super) fn metrics(
    hub: &Hub,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    let hub = hub.clone();
    warp::path!("metrics").and(warp::get()).map(move || {
        hub.metrics().observe_broker(&hub.broker_health());
        warp::reply::with_header(
            hub.metrics().render(),
            "content-type",
            "text/plain; version=0.0.4; charset=utf-8",
        )
        .into_response()
    })
}

/// `POST /api/token`
pub(super) fn token(
    hub: &Hub,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("token")
        .and(warp::post())
        .and(no_query())
        .and(with_hub(hub))
        .and(json_body())
        .then(handlers::token)
        .map(Reply::into_response)
}

/// `POST /api/send`
pub(super) fn send(
    hub: &Hub,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("send")
        .and(warp::post())
        .and(no_query())
        .and(with_hub(hub))
        .and(json_body())
        .then(handlers::send)
        .map(Reply::into_response)
}

/// `POST /api/broadcast`
pub(super) fn broadcast(
    hub: &Hub,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("broadcast")
        .and(warp::post())
        .and(no_query())
        .and(with_hub(hub))
        .and(json_body())
        .then(handlers::broadcast)
        .map(Reply::into_response)
}

/// `POST /api/publish`
pub(super) fn publish(
    hub: &Hub,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("publish")
        .and(warp::post())
        .and(no_query())
        .and(with_hub(hub))
        .and(json_body())
        .then(handlers::publish)
        .map(Reply::into_response)
}

/// `POST /api/notify`
pub(super) fn notify(
    hub: &Hub,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("notify")
        .and(warp::post())
        .and(no_query())
        .and(with_hub(hub))
        .and(json_body())
        .then(handlers::notify)
        .map(Reply::into_response)
}

/// `POST /api/notify_all`
pub(super) fn notify_all(
    hub: &Hub,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("notify_all")
        .and(warp::post())
        .and(no_query())
        .and(with_hub(hub))
        .and(json_body())
        .then(handlers::notify_all)
        .map(Reply::into_response)
}

/// `GET /api/users/{userId}/notifications?unread=&limit=`
pub(super) fn user_notifications(
    hub: &Hub,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("users" / String / "notifications")
        .and(warp::get())
        .and(with_hub(hub))
        .and(query::<NotificationsQuery>())
        .then(handlers::user_notifications)
        .map(Reply::into_response)
}

/// `GET /api/users/{userId}/private?with=&limit=&before=&beforeTo=`
pub(super) fn user_private(
    hub: &Hub,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("users" / String / "private")
        .and(warp::get())
        .and(with_hub(hub))
        .and(query::<PrivateQuery>())
        .then(handlers::user_private)
        .map(Reply::into_response)
}

/// `GET /api/stats`
pub(super) fn stats(
    hub: &Hub,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("stats")
        .and(warp::get())
        .and(no_query())
        .and(with_hub(hub))
        .then(handlers::stats)
        .map(Reply::into_response)
}

/// `GET /api/connections?active=`
pub(super) fn list_connections(
    hub: &Hub,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("connections")
        .and(warp::get())
        .and(with_hub(hub))
        .and(query::<ConnectionsQuery>())
        .then(handlers::list_connections)
        .map(Reply::into_response)
}

/// `DELETE /api/connections`
pub(super) fn disconnect_all(
    hub: &Hub,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("connections")
        .and(warp::delete())
        .and(no_query())
        .and(with_hub(hub))
        .then(handlers::disconnect_all)
        .map(Reply::into_response)
}

/// `GET /api/connections/{clientId}`
pub(super) fn connection(
    hub: &Hub,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("connections" / String)
        .and(warp::get())
        .and(no_query())
        .and(with_hub(hub))
        .then(handlers::connection)
        .map(Reply::into_response)
}

/// `DELETE /api/connections/{clientId}`
pub(super) fn disconnect(
    hub: &Hub,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("connections" / String)
        .and(warp::delete())
        .and(no_query())
        .and(with_hub(hub))
        .then(handlers::disconnect)
        .map(Reply::into_response)
}

/// `GET /api/connections/{clientId}/data`
pub(super) fn get_data(
    hub: &Hub,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("connections" / String / "data")
        .and(warp::get())
        .and(no_query())
        .and(with_hub(hub))
        .then(handlers::get_data)
        .map(Reply::into_response)
}

/// `PUT /api/connections/{clientId}/data`
pub(super) fn put_data(
    hub: &Hub,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("connections" / String / "data")
        .and(warp::put())
        .and(no_query())
        .and(with_hub(hub))
        .and(json_body())
        .then(handlers::put_data)
        .map(Reply::into_response)
}

/// `POST /api/rooms`
pub(super) fn create_room(
    hub: &Hub,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("rooms")
        .and(warp::post())
        .and(no_query())
        .and(with_hub(hub))
        .and(json_body())
        .then(handlers::create_room)
        .map(Reply::into_response)
}

/// `GET /api/rooms`
pub(super) fn list_rooms(
    hub: &Hub,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("rooms")
        .and(warp::get())
        .and(no_query())
        .and(with_hub(hub))
        .then(handlers::list_rooms)
        .map(Reply::into_response)
}

/// `GET /api/rooms/{name}/history?limit=&before=`
pub(super) fn room_history(
    hub: &Hub,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("rooms" / String / "history")
        .and(warp::get())
        .and(with_hub(hub))
        .and(query::<HistoryQuery>())
        .then(handlers::room_history)
        .map(Reply::into_response)
}

/// `GET /api/rooms/{name}`
pub(super) fn room(
    hub: &Hub,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("rooms" / String)
        .and(warp::get())
        .and(no_query())
        .and(with_hub(hub))
        .then(handlers::room)
        .map(Reply::into_response)
}

/// `DELETE /api/rooms/{name}`
pub(super) fn delete_room(
    hub: &Hub,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("rooms" / String)
        .and(warp::delete())
        .and(no_query())
        .and(with_hub(hub))
        .then(handlers::delete_room)
        .map(Reply::into_response)
}

/// `POST /api/rooms/{name}/members/{clientId}`
pub(super) fn add_member(
    hub: &Hub,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("rooms" / String / "members" / String)
        .and(warp::post())
        .and(no_query())
        .and(with_hub(hub))
        .then(handlers::add_member)
        .map(Reply::into_response)
}

/// `DELETE /api/rooms/{name}/members/{clientId}`
pub(super) fn remove_member(
    hub: &Hub,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("rooms" / String / "members" / String)
        .and(warp::delete())
        .and(no_query())
        .and(with_hub(hub))
        .then(handlers::remove_member)
        .map(Reply::into_response)
}
