//! Dev-only routes under `/dev`, mounted only in dev mode: what the demo page needs
//! without a backend of its own. A token for any user name and role, the caller's own
//! notifications, and a few API routes for admins. Callers authenticate with their own
//! token (`Authorization: Bearer <token>`), so the API key never reaches a browser.
//!
//! One filter per route, like [`super::filters`]; the handlers are in
//! [`super::handlers`]. The caller's token is checked right after path and method, before
//! the query and the body, so a stranger learns nothing about either.

use roomcast_protocol::{ErrorCode, User};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::handlers;
use super::models::{NotificationsQuery, NotifyAllRequest, NotifyRequest};
use super::query::{no_query, query};
use super::{ApiError, json_body, with_hub};
use crate::ServerError;
use crate::hub::Hub;
use crate::model::ADMIN_ROLE;

/// Every `/dev` route (the caller strips the `dev` segment).
pub(super) fn routes(hub: &Hub) -> BoxedFilter<(Response,)> {
    token(hub)
        .or(notifications(hub))
        .unify()
        .or(connections(hub))
        .unify()
        .or(disconnect(hub))
        .unify()
        .or(notify(hub))
        .unify()
        .or(notify_all(hub))
        .unify()
        .boxed()
}

/// `POST /dev/token`
fn token(hub: &Hub) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("token")
        .and(warp::post())
        .and(no_query())
        .and(with_hub(hub))
        .and(json_body())
        .then(handlers::dev_token)
        .map(Reply::into_response)
}

/// `GET /dev/notifications?unread=&limit=`
fn notifications(
    hub: &Hub,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("notifications")
        .and(warp::get())
        .and(signed_in(hub))
        .and(with_hub(hub))
        .and(query::<NotificationsQuery>())
        .then(handlers::own_notifications)
        .map(Reply::into_response)
}

/// `GET /dev/admin/connections`
fn connections(hub: &Hub) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("admin" / "connections")
        .and(warp::get())
        .and(admin(hub))
        .and(no_query())
        .and(with_hub(hub))
        .then(handlers::all_connections)
        .map(Reply::into_response)
}

/// `DELETE /dev/admin/connections/{clientId}`
fn disconnect(hub: &Hub) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("admin" / "connections" / String)
        .and(warp::delete())
        .and(admin(hub))
        .and(no_query())
        .and(with_hub(hub))
        .then(handlers::disconnect)
        .map(Reply::into_response)
}

/// `POST /dev/admin/notify`
fn notify(hub: &Hub) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("admin" / "notify")
        .and(warp::post())
        .and(admin(hub))
        .and(no_query())
        .and(with_hub(hub))
        .and(json_body::<NotifyRequest>())
        .then(handlers::notify)
        .map(Reply::into_response)
}

/// `POST /dev/admin/notify_all`
fn notify_all(hub: &Hub) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    warp::path!("admin" / "notify_all")
        .and(warp::post())
        .and(admin(hub))
        .and(no_query())
        .and(with_hub(hub))
        .and(json_body::<NotifyAllRequest>())
        .then(handlers::notify_all)
        .map(Reply::into_response)
}

/// The user of `Authorization: Bearer <token>` (their own token, not the API key).
fn signed_in(hub: &Hub) -> impl Filter<Extract = (User,), Error = Rejection> + Clone + use<> {
    let hub = hub.clone();
    warp::header::optional::<String>("authorization").and_then(move |header: Option<String>| {
        let user =
            caller(&hub, header.as_deref()).map_err(|e| warp::reject::custom(ApiError::from(e)));
        async move { user }
    })
}

/// Only a signed-in user with the admin role.
fn admin(hub: &Hub) -> impl Filter<Extract = (), Error = Rejection> + Clone + use<> {
    signed_in(hub)
        .and_then(|user: User| async move {
            if user.roles.iter().any(|r| r == ADMIN_ROLE) {
                Ok(())
            } else {
                Err(warp::reject::custom(ApiError::from(ServerError::request(
                    ErrorCode::Forbidden,
                    "this route needs the admin role",
                ))))
            }
        })
        .untuple_one()
}

/// The user of `Authorization: Bearer <token>`.
fn caller(hub: &Hub, header: Option<&str>) -> Result<User, ServerError> {
    let token = header
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ServerError::request(
                ErrorCode::NotAuthenticated,
                "missing `Authorization: Bearer <token>`",
            )
        })?;
    hub.auth()
        .verify(token.trim())
        .map(|identity| identity.user)
        .map_err(|reason| ServerError::request(ErrorCode::AuthFailed, reason))
}
