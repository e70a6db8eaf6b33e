//! Dev-only routes under `/dev`, mounted only in dev mode: what the demo page needs
//! without a backend of its own. A token for any user name and role, the caller's own
//! notifications, and a few API routes for admins. Callers authenticate with their own
//! token (`Authorization: Bearer <token>`), so the API key never reaches a browser.

use roomcast_protocol::{ErrorCode, User, UserId};
use serde::Deserialize;
use serde_json::json;
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

/// Lifetime of dev tokens; the demo page asks for a new one on every reconnect.
const TOKEN_TTL_SECONDS: u64 = 3600;
/// Longest user id the sign-in accepts.
const MAX_USER_ID: usize = 64;

/// `POST /dev/token`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DevTokenRequest {
    user_id: String,
    name: Option<String>,
    role: Option<String>,
}

/// Every `/dev` route (the caller strips the `dev` segment).
pub fn routes(hub: &Hub) -> BoxedFilter<(Response,)> {
    let h = || with_hub(hub);
    let token = warp::path!("token")
        .and(warp::post())
        .and(no_query())
        .and(h())
        .and(json_body())
        .then(token);
    let notifications = warp::path!("notifications")
        .and(warp::get())
        .and(signed_in(hub.clone()))
        .and(h())
        .and(query::<NotificationsQuery>())
        .then(notifications);
    let connections = warp::path!("admin" / "connections")
        .and(warp::get())
        .and(admin(hub.clone()))
        .and(no_query())
        .and(h())
        .then(handlers::all_connections);
    let disconnect = warp::path!("admin" / "connections" / String)
        .and(warp::delete())
        .and(admin(hub.clone()))
        .and(no_query())
        .and(h())
        .then(handlers::disconnect);
    let notify = warp::path!("admin" / "notify")
        .and(warp::post())
        .and(admin(hub.clone()))
        .and(no_query())
        .and(h())
        .and(json_body::<NotifyRequest>())
        .then(handlers::notify);
    let notify_all = warp::path!("admin" / "notify_all")
        .and(warp::post())
        .and(admin(hub.clone()))
        .and(no_query())
        .and(h())
        .and(json_body::<NotifyAllRequest>())
        .then(handlers::notify_all);
    token
        .or(notifications)
        .unify()
        .or(connections)
        .unify()
        .or(disconnect)
        .unify()
        .or(notify)
        .unify()
        .or(notify_all)
        .unify()
        .boxed()
}

/// The user of `Authorization: Bearer <token>` (their own token, not the API key).
fn signed_in(hub: Hub) -> impl Filter<Extract = (User,), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization").and_then(move |header: Option<String>| {
        let user =
            caller(&hub, header.as_deref()).map_err(|e| warp::reject::custom(ApiError::from(e)));
        async move { user }
    })
}

/// Only a signed-in user with the admin role.
fn admin(hub: Hub) -> impl Filter<Extract = (), Error = Rejection> + Clone {
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

fn bad(message: impl Into<String>) -> ServerError {
    ServerError::request(ErrorCode::BadRequest, message)
}

/// A token for the user the sign-in form names, with role `user` or `admin`.
async fn token(hub: Hub, body: DevTokenRequest) -> Response {
    let issued = (|| {
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@');
        if body.user_id.is_empty()
            || body.user_id.len() > MAX_USER_ID
            || !body.user_id.chars().all(valid)
        {
            return Err(bad(format!(
                "`userId` must be 1-{MAX_USER_ID} letters, digits or `-_.:@`"
            )));
        }
        let role = body.role.unwrap_or_else(|| "user".to_owned());
        if role != "user" && role != ADMIN_ROLE {
            return Err(bad("`role` must be `user` or `admin`"));
        }
        let name = body
            .name
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty());
        if name
            .as_ref()
            .is_some_and(|n| n.chars().count() > MAX_USER_ID)
        {
            return Err(bad(format!(
                "`name` must be at most {MAX_USER_ID} characters"
            )));
        }
        let user_id = UserId::new(body.user_id).map_err(|e| bad(e.to_string()))?;
        let user = User::new(user_id, name, vec![role], serde_json::Map::new());
        let token = hub.auth().issue(&user, Some(TOKEN_TTL_SECONDS))?;
        Ok(json!({ "token": token, "user": user, "expiresIn": TOKEN_TTL_SECONDS }))
    })();
    match issued {
        Ok(body) => warp::reply::json(&body).into_response(),
        Err(err) => ApiError::from(err).into_response(),
    }
}

/// `GET /dev/notifications?limit=&unread=`: the caller's own, newest first.
async fn notifications(user: User, hub: Hub, query: NotificationsQuery) -> Response {
    let listed = async {
        let items = hub
            .notifications(&user.user_id, query.unread, query.limit)
            .await?;
        Ok::<_, ServerError>(json!({ "items": items }))
    };
    match listed.await {
        Ok(body) => warp::reply::json(&body).into_response(),
        Err(err) => ApiError::from(err).into_response(),
    }
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
