//! Handlers of the HTTP API: typed input in, JSON out. Failures become the contract's
//! `{"error":{"code","message"}}` with the status of their code.

use roomcast_protocol::{ClientId, ErrorCode, RoomName, User, UserId};
use serde::Serialize;
use serde_json::{Value, json};
use warp::Reply;
use warp::http::StatusCode;
use warp::reply::Response;

use std::time::Duration;

use super::ApiError;
use super::models::{
    BroadcastRequest, ConnectionsQuery, CreateRoomRequest, HistoryQuery, NotificationsQuery,
    NotifyAllRequest, NotifyRequest, PublishRequest, SendRequest, TokenRequest,
};
use crate::ServerError;
use crate::broker::Target;
use crate::hub::Hub;

/// Default lifetime of tokens minted by `POST /api/token`.
const DEFAULT_TTL_SECONDS: u64 = 3600;
/// Longest lifetime `POST /api/token` grants.
const MAX_TTL_SECONDS: u64 = 366 * 86_400;

type ApiResult = Result<Response, ServerError>;

fn ok(value: &impl Serialize) -> ApiResult {
    Ok(warp::reply::json(value).into_response())
}

fn done(result: ApiResult) -> Response {
    result.unwrap_or_else(|err| ApiError::from(err).into_response())
}

fn bad(message: impl Into<String>) -> ServerError {
    ServerError::request(ErrorCode::BadRequest, message)
}

/// Path segments arrive percent-encoded.
fn decode(segment: &str) -> Result<String, ServerError> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| bad("path segment is not UTF-8"))
}

fn room_name(segment: &str) -> Result<RoomName, ServerError> {
    RoomName::new(decode(segment)?).map_err(|e| bad(e.to_string()))
}

/// An id that cannot be valid cannot exist: that is a 404, like any unknown id.
fn client_id(segment: &str) -> Result<ClientId, ServerError> {
    ClientId::new(decode(segment)?)
        .map_err(|_| ServerError::request(ErrorCode::NotFound, format!("no connection {segment}")))
}

fn user_id(segment: &str) -> Result<UserId, ServerError> {
    UserId::new(decode(segment)?).map_err(|e| bad(e.to_string()))
}

/// `timeoutMs` is only meaningful with `ack`.
fn ack_timeout(ack: bool, timeout_ms: Option<u64>) -> Result<Option<Duration>, ServerError> {
    match (ack, timeout_ms) {
        (false, Some(_)) => Err(bad("`timeoutMs` needs `ack: true`")),
        (_, timeout) => Ok(timeout.map(Duration::from_millis)),
    }
}

pub async fn token(hub: Hub, body: TokenRequest) -> Response {
    done((|| {
        let ttl = body.ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS);
        if ttl == 0 || ttl > MAX_TTL_SECONDS {
            return Err(bad(format!(
                "`ttlSeconds` must be between 1 and {MAX_TTL_SECONDS}"
            )));
        }
        let user = User::new(body.user_id, body.name, body.roles, body.info);
        let token = hub.auth().issue(&user, Some(ttl))?;
        ok(&json!({ "token": token, "userId": user.user_id, "expiresIn": ttl }))
    })())
}

pub async fn send(hub: Hub, body: SendRequest) -> Response {
    let result = async {
        let timeout = ack_timeout(body.ack, body.timeout_ms)?;
        let id = client_id(&body.client_id)?;
        if body.ack {
            let outcome = hub.send_with_ack(&id, &body.message, timeout).await?;
            return ok(&json!({ "results": { id.as_str(): outcome } }));
        }
        hub.send_to_client(&id, &body.message).await?;
        ok(&json!({ "recipients": 1 }))
    };
    done(result.await)
}

pub async fn broadcast(hub: Hub, body: BroadcastRequest) -> Response {
    let result = async {
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
    };
    done(result.await)
}

pub async fn publish(hub: Hub, body: PublishRequest) -> Response {
    done(
        hub.publish_topic(&body.topic, &body.kind, &body.items)
            .await
            .and_then(|published| ok(&published)),
    )
}

pub async fn notify(hub: Hub, body: NotifyRequest) -> Response {
    let result = async {
        let notified = hub
            .notify(&body.user_id, body.title, body.content, body.priority)
            .await?;
        ok(&notified)
    };
    done(result.await)
}

pub async fn notify_all(hub: Hub, body: NotifyAllRequest) -> Response {
    let result = async { ok(&hub.notify_all(body.title, body.content).await?) };
    done(result.await)
}

/// `GET /api/users/{userId}/notifications?unread=&limit=`.
pub async fn user_notifications(segment: String, hub: Hub, query: NotificationsQuery) -> Response {
    let result = async {
        let user = user_id(&segment)?;
        let items = hub.notifications(&user, query.unread, query.limit).await?;
        ok(&json!({ "items": items }))
    };
    done(result.await)
}

pub async fn stats(hub: Hub) -> Response {
    done(ok(&hub.stats()))
}

pub async fn list_connections(hub: Hub, query: ConnectionsQuery) -> Response {
    let result = async { ok(&json!({ "items": hub.connections(query.active).await? })) };
    done(result.await)
}

/// Every connection, for the demo's admin view.
pub async fn all_connections(hub: Hub) -> Response {
    let result = async { ok(&json!({ "items": hub.connections(false).await? })) };
    done(result.await)
}

pub async fn disconnect_all(hub: Hub) -> Response {
    let result = async { ok(&json!({ "disconnected": hub.disconnect_all().await? })) };
    done(result.await)
}

pub async fn connection(segment: String, hub: Hub) -> Response {
    let result = async { ok(&hub.connection_info(&client_id(&segment)?).await?) };
    done(result.await)
}

pub async fn disconnect(segment: String, hub: Hub) -> Response {
    let result = async {
        hub.disconnect(&client_id(&segment)?).await?;
        ok(&json!({ "disconnected": 1 }))
    };
    done(result.await)
}

pub async fn get_data(segment: String, hub: Hub) -> Response {
    let result = async { ok(&json!({ "data": hub.client_data(&client_id(&segment)?).await? })) };
    done(result.await)
}

pub async fn put_data(segment: String, hub: Hub, body: Value) -> Response {
    let result = async {
        let data = hub.set_client_data(&client_id(&segment)?, body).await?;
        ok(&json!({ "data": data }))
    };
    done(result.await)
}

pub async fn create_room(hub: Hub, body: CreateRoomRequest) -> Response {
    let result = async {
        let options = body.options().map_err(bad)?;
        let (info, created) = hub.create_room(&body.name, options).await?;
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok(warp::reply::with_status(warp::reply::json(&info), status).into_response())
    };
    done(result.await)
}

pub async fn list_rooms(hub: Hub) -> Response {
    done(ok(&json!({ "items": hub.rooms() })))
}

pub async fn room(segment: String, hub: Hub) -> Response {
    done(
        room_name(&segment)
            .and_then(|name| hub.room(&name))
            .and_then(|info| ok(&info)),
    )
}

/// `GET /api/rooms/{name}/history?limit=&before=`.
pub async fn room_history(segment: String, hub: Hub, query: HistoryQuery) -> Response {
    let result = async {
        let name = room_name(&segment)?;
        let items = hub
            .history(&name, query.limit, query.before.as_ref())
            .await?;
        ok(&json!({ "items": items }))
    };
    done(result.await)
}

pub async fn delete_room(segment: String, hub: Hub) -> Response {
    let result = async {
        let name = room_name(&segment)?;
        let removed = hub.delete_room(&name).await?;
        ok(&json!({ "deleted": name, "removedMembers": removed }))
    };
    done(result.await)
}

pub async fn add_member(room: String, client: String, hub: Hub) -> Response {
    let result = async {
        let name = room_name(&room)?;
        ok(&hub.add_member(&client_id(&client)?, &name).await?)
    };
    done(result.await)
}

pub async fn remove_member(room: String, client: String, hub: Hub) -> Response {
    let result = async {
        let name = room_name(&room)?;
        let id = client_id(&client)?;
        hub.remove_member(&id, &name).await?;
        ok(&json!({ "room": name, "clientId": id }))
    };
    done(result.await)
}
