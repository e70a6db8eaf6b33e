//! Handlers of the HTTP API (`/api` and `/dev`), the ends of the filter chains in
//! [`super::filters`] and [`super::dev`]: typed input in, JSON out. Each takes the path
//! segments, the hub and then the query or body its route decoded, and answers
//! [`ApiResult`]: a failure is an [`ApiError`], the contract's `{"error":{"code","message"}}`
//! with the status of its code.

use std::time::Duration;

use roomcast_protocol::{ClientId, ErrorCode, RoomName, User, UserId};
use serde::Serialize;
use serde_json::{Value, json};
use warp::Reply;
use warp::http::StatusCode;
use warp::reply::Response;

use super::ApiError;
use super::models::{
    BroadcastRequest, ConnectionsQuery, CreateRoomRequest, DevTokenRequest, HistoryQuery,
    NotificationsQuery, NotifyAllRequest, NotifyRequest, PrivateQuery, PublishRequest, SendRequest,
    TokenRequest,
};
use crate::ServerError;
use crate::broker::Target;
use crate::hub::Hub;
use crate::model::ADMIN_ROLE;

/// Default lifetime of tokens minted by `POST /api/token`.
const DEFAULT_TTL_SECONDS: u64 = 3600;
/// Longest lifetime `POST /api/token` grants.
const MAX_TTL_SECONDS: u64 = 366 * 86_400;
/// Lifetime of dev tokens; the demo page asks for a new one on every reconnect.
const DEV_TOKEN_TTL_SECONDS: u64 = 3600;
/// Longest user id (and display name) the dev sign-in accepts.
const MAX_DEV_USER_ID: usize = 64;

/// What every handler answers.
pub(super) type ApiResult = Result<Response, ApiError>;

fn ok(value: &impl Serialize) -> ApiResult {
    Ok(warp::reply::json(value).into_response())
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message)
}

/// Path segments arrive percent-encoded.
fn decode(segment: &str) -> Result<String, ApiError> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| bad("path segment is not UTF-8"))
}

fn room_name(segment: &str) -> Result<RoomName, ApiError> {
    RoomName::new(decode(segment)?).map_err(|e| bad(e.to_string()))
}

/// An id that cannot be valid cannot exist: that is a 404, like any unknown id.
fn client_id(segment: &str) -> Result<ClientId, ApiError> {
    ClientId::new(decode(segment)?).map_err(|_| {
        ServerError::request(ErrorCode::NotFound, format!("no connection {segment}")).into()
    })
}

fn user_id(segment: &str) -> Result<UserId, ApiError> {
    UserId::new(decode(segment)?).map_err(|e| bad(e.to_string()))
}

/// `timeoutMs` is only meaningful with `ack`.
fn ack_timeout(ack: bool, timeout_ms: Option<u64>) -> Result<Option<Duration>, ApiError> {
    match (ack, timeout_ms) {
        (false, Some(_)) => Err(bad("`timeoutMs` needs `ack: true`")),
        (_, timeout) => Ok(timeout.map(Duration::from_millis)),
    }
}

/// `POST /api/token`.
pub(super) async fn token(hub: Hub, body: TokenRequest) -> ApiResult {
    let ttl = body.ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS);
    if ttl == 0 || ttl > MAX_TTL_SECONDS {
        return Err(bad(format!(
            "`ttlSeconds` must be between 1 and {MAX_TTL_SECONDS}"
        )));
    }
    let user = User::new(body.user_id, body.name, body.roles, body.info);
    let token = hub.auth().issue(&user, Some(ttl))?;
    ok(&json!({ "token": token, "userId": user.user_id, "expiresIn": ttl }))
}

/// `POST /api/send`.
pub(super) async fn send(hub: Hub, body: SendRequest) -> ApiResult {
    let timeout = ack_timeout(body.ack, body.timeout_ms)?;
    let id = client_id(&body.client_id)?;
    if body.ack {
        let outcome = hub.send_with_ack(&id, &body.message, timeout).await?;
        return ok(&json!({ "results": { id.as_str(): outcome } }));
    }
    hub.send_to_client(&id, &body.message).await?;
    ok(&json!({ "recipients": 1 }))
}

/// `POST /api/broadcast`.
pub(super) async fn broadcast(hub: Hub, body: BroadcastRequest) -> ApiResult {
    let target = body.to.target().map_err(bad)?;
    let timeout = ack_timeout(body.ack, body.timeout_ms)?;
    if body.batch {
        let Target::Room(room) = &target else {
            return Err(bad("`batch` needs a `{\"room\": ...}` target"));
        };
        if body.ack {
            return Err(bad("`batch` and `ack` cannot be combined"));
        }
        let batched = hub.batch(room, &body.message).await?;
        return ok(&json!({ "batched": true, "pending": batched.pending }));
    }
    if body.ack {
        let results = hub
            .broadcast_with_ack(&target, &body.message, timeout)
            .await?;
        return ok(&json!({ "results": results }));
    }
    let recipients = hub.broadcast(target, &body.message).await?;
    ok(&json!({ "recipients": recipients }))
}

/// `POST /api/publish`.
pub(super) async fn publish(hub: Hub, body: PublishRequest) -> ApiResult {
    ok(&hub
        .publish_topic(&body.topic, &body.kind, &body.items)
        .await?)
}

/// `POST /api/notify` and `POST /dev/admin/notify`.
pub(super) async fn notify(hub: Hub, body: NotifyRequest) -> ApiResult {
    let notified = hub
        .notify(&body.user_id, body.title, body.content, body.priority)
        .await?;
    ok(&notified)
}

/// `POST /api/notify_all` and `POST /dev/admin/notify_all`.
pub(super) async fn notify_all(hub: Hub, body: NotifyAllRequest) -> ApiResult {
    ok(&hub.notify_all(body.title, body.content).await?)
}

/// `GET /api/users/{userId}/notifications?unread=&limit=`.
pub(super) async fn user_notifications(
    segment: String,
    hub: Hub,
    query: NotificationsQuery,
) -> ApiResult {
    notifications_of(&user_id(&segment)?, &hub, &query).await
}

/// A user's notifications, newest first.
async fn notifications_of(user: &UserId, hub: &Hub, query: &NotificationsQuery) -> ApiResult {
    let items = hub.notifications(user, query.unread, query.limit).await?;
    ok(&json!({ "items": items }))
}

/// `GET /api/users/{userId}/private?with=&limit=&before=&beforeTo=`: the backend reads a
/// conversation on its user's behalf.
pub(super) async fn user_private(segment: String, hub: Hub, query: PrivateQuery) -> ApiResult {
    let user = user_id(&segment)?;
    let items = hub
        .private_history(
            &user,
            &query.with,
            query.limit,
            query.before.as_ref(),
            query.before_to.as_ref(),
        )
        .await?;
    ok(&json!({ "items": items }))
}

/// `GET /api/stats`: the cluster's counters, whichever node answers.
pub(super) async fn stats(hub: Hub) -> ApiResult {
    ok(&hub.cluster_stats().await?)
}

/// `GET /api/connections?active=`.
pub(super) async fn list_connections(hub: Hub, query: ConnectionsQuery) -> ApiResult {
    ok(&json!({ "items": hub.connections(query.active).await? }))
}

/// `GET /dev/admin/connections`: every connection, for the demo's admin view.
pub(super) async fn all_connections(hub: Hub) -> ApiResult {
    ok(&json!({ "items": hub.connections(false).await? }))
}

/// `DELETE /api/connections`.
pub(super) async fn disconnect_all(hub: Hub) -> ApiResult {
    ok(&json!({ "disconnected": hub.disconnect_all().await? }))
}

/// `GET /api/connections/{clientId}`.
pub(super) async fn connection(segment: String, hub: Hub) -> ApiResult {
    ok(&hub.connection_info(&client_id(&segment)?).await?)
}

/// `DELETE /api/connections/{clientId}` and `DELETE /dev/admin/connections/{clientId}`.
pub(super) async fn disconnect(segment: String, hub: Hub) -> ApiResult {
    hub.disconnect(&client_id(&segment)?).await?;
    ok(&json!({ "disconnected": 1 }))
}

/// `GET /api/connections/{clientId}/data`.
pub(super) async fn get_data(segment: String, hub: Hub) -> ApiResult {
    ok(&json!({ "data": hub.client_data(&client_id(&segment)?).await? }))
}

/// `PUT /api/connections/{clientId}/data`.
pub(super) async fn put_data(segment: String, hub: Hub, body: Value) -> ApiResult {
    let data = hub.set_client_data(&client_id(&segment)?, body).await?;
    ok(&json!({ "data": data }))
}

/// `POST /api/rooms`: 201 when the room is new, 200 when it was updated.
pub(super) async fn create_room(hub: Hub, body: CreateRoomRequest) -> ApiResult {
    let options = body.options().map_err(bad)?;
    let (info, created) = hub.create_room(&body.name, options).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(warp::reply::with_status(warp::reply::json(&info), status).into_response())
}

/// `GET /api/rooms`.
pub(super) async fn list_rooms(hub: Hub) -> ApiResult {
    ok(&json!({ "items": hub.rooms().await? }))
}

/// `GET /api/rooms/{name}`.
pub(super) async fn room(segment: String, hub: Hub) -> ApiResult {
    ok(&hub.room(&room_name(&segment)?).await?)
}

/// `GET /api/rooms/{name}/history?limit=&before=`.
pub(super) async fn room_history(segment: String, hub: Hub, query: HistoryQuery) -> ApiResult {
    let name = room_name(&segment)?;
    let items = hub
        .history(&name, query.limit, query.before.as_ref())
        .await?;
    ok(&json!({ "items": items }))
}

/// `DELETE /api/rooms/{name}`.
pub(super) async fn delete_room(segment: String, hub: Hub) -> ApiResult {
    let name = room_name(&segment)?;
    let removed = hub.delete_room(&name).await?;
    ok(&json!({ "deleted": name, "removedMembers": removed }))
}

/// `POST /api/rooms/{name}/members/{clientId}`.
pub(super) async fn add_member(room: String, client: String, hub: Hub) -> ApiResult {
    let name = room_name(&room)?;
    ok(&hub.add_member(&client_id(&client)?, &name).await?)
}

/// `DELETE /api/rooms/{name}/members/{clientId}`.
pub(super) async fn remove_member(room: String, client: String, hub: Hub) -> ApiResult {
    let name = room_name(&room)?;
    let id = client_id(&client)?;
    hub.remove_member(&id, &name).await?;
    ok(&json!({ "room": name, "clientId": id }))
}

// ---- Dev-only (`/dev`, see `super::dev`) ----

/// `POST /dev/token`: a token for the user the sign-in form names, with role `user` or
/// `admin`.
pub(super) async fn dev_token(hub: Hub, body: DevTokenRequest) -> ApiResult {
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@');
    if body.user_id.is_empty()
        || body.user_id.len() > MAX_DEV_USER_ID
        || !body.user_id.chars().all(valid)
    {
        return Err(bad(format!(
            "`userId` must be 1-{MAX_DEV_USER_ID} letters, digits or `-_.:@`"
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
        .is_some_and(|n| n.chars().count() > MAX_DEV_USER_ID)
    {
        return Err(bad(format!(
            "`name` must be at most {MAX_DEV_USER_ID} characters"
        )));
    }
    let user_id = UserId::new(body.user_id).map_err(|e| bad(e.to_string()))?;
    let user = User::new(user_id, name, vec![role], serde_json::Map::new());
    let token = hub.auth().issue(&user, Some(DEV_TOKEN_TTL_SECONDS))?;
    ok(&json!({ "token": token, "user": user, "expiresIn": DEV_TOKEN_TTL_SECONDS }))
}

/// `GET /dev/notifications?unread=&limit=`: the caller's own, newest first.
pub(super) async fn own_notifications(
    user: User,
    hub: Hub,
    query: NotificationsQuery,
) -> ApiResult {
    notifications_of(&user.user_id, &hub, &query).await
}
