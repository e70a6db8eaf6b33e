//! What every failed HTTP request looks like on the wire: one [`ApiError`], with the body
//! `{"error":{"code","message"}}` of CONTRACT §9, for the API's own failures, for the
//! `/ws` upgrade refusals and for every warp rejection ([`rejection`]). A client never sees
//! warp's plain-text answers or a Rust debug string; what it does not need (an
//! unexpected rejection, an internal failure) is logged instead.

use std::convert::Infallible;

use roomcast_protocol::ErrorCode;
use serde::Serialize;
use warp::http::StatusCode;
use warp::reject::{
    InvalidHeader, InvalidQuery, LengthRequired, MethodNotAllowed, MissingCookie, MissingHeader,
    PayloadTooLarge, UnsupportedMediaType,
};
use warp::reply::Response;
use warp::{Rejection, Reply};

use crate::ServerError;

/// A failed HTTP request: its status, contract code and a message for a human.
///
/// It is a [`Reply`] (the error body with its status) and a warp rejection, so a filter
/// can refuse a request with exactly the answer the client will get.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
}

impl ApiError {
    /// An error with an explicit status, for answers whose status is not the usual one
    /// of their code (e.g. 503 `limit_exceeded` for a full server).
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, message)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The contract code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The message shown to the client.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// The usual status of each contract code.
fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
        ErrorCode::NotAuthenticated | ErrorCode::AuthFailed => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::RoomFull | ErrorCode::NotMember => StatusCode::CONFLICT,
        ErrorCode::RateLimited | ErrorCode::LimitExceeded => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<ServerError> for ApiError {
    /// The status of the error's code, and its public message: an internal failure is
    /// logged here, since its details never reach the client.
    fn from(err: ServerError) -> Self {
        let code = err.code();
        if code == ErrorCode::Internal {
            tracing::error!(cause = %err, "api request failed");
        }
        Self::new(status_of(code), code, err.public_message())
    }
}

/// `{"error":{"code","message"}}`.
#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    code: ErrorCode,
    message: &'a str,
}

impl Reply for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Detail {
                code: self.code,
                message: &self.message,
            },
        };
        warp::reply::with_status(warp::reply::json(&body), self.status).into_response()
    }
}

impl warp::reject::Reject for ApiError {}

/// The last step of every route (`recover`): each rejection becomes its contract error,
/// so warp's own plain-text answers are never sent.
pub(super) async fn rejection(err: Rejection) -> Result<Response, Infallible> {
    Ok(from_rejection(&err).into_response())
}

/// Ours first: a route that matched its path and method and then refused the request
/// says exactly why. Then warp's own kinds, then "no such route"; anything else is our
/// bug, logged with its details and answered with a fixed message.
fn from_rejection(err: &Rejection) -> ApiError {
    if let Some(ours) = err.find::<ApiError>() {
        return ours.clone();
    }
    if let Some(header) = err.find::<MissingHeader>() {
        return ApiError::bad_request(format!("missing header `{}`", header.name()));
    }
    if let Some(header) = err.find::<InvalidHeader>() {
        return ApiError::bad_request(format!("invalid header `{}`", header.name()));
    }
    if let Some(cookie) = err.find::<MissingCookie>() {
        return ApiError::bad_request(format!("missing cookie `{}`", cookie.name()));
    }
    if err.find::<InvalidQuery>().is_some() {
        return ApiError::bad_request("invalid query string");
    }
    if err.find::<UnsupportedMediaType>().is_some() {
        return ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::BadRequest,
            "unsupported content type",
        );
    }
    if err.find::<LengthRequired>().is_some() {
        return ApiError::new(
            StatusCode::LENGTH_REQUIRED,
            ErrorCode::BadRequest,
            "a `content-length` header is required",
        );
    }
    if err.find::<PayloadTooLarge>().is_some() {
        return too_large();
    }
    if err.find::<MethodNotAllowed>().is_some() {
        return ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::BadRequest,
            "method not allowed on this route",
        );
    }
    if err.is_not_found() {
        return ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such route");
    }
    // warp's remaining kinds (static file errors, a body read twice, ...) are not
    // public: a fixed answer for the client, the details for whoever reads the log.
    tracing::error!(rejection = ?err, "unhandled rejection");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::Internal,
        "the server could not handle this request",
    )
}

/// 413 `too_large`: a body over the API's limit.
pub(super) fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::TooLarge,
        "request body over 1 MiB",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(err: ApiError) -> (StatusCode, serde_json::Value) {
        let response = err.into_response();
        let status = response.status();
        let bytes = http_body_util::BodyExt::collect(response.into_body())
            .await
            .expect("body")
            .to_bytes();
        (status, serde_json::from_slice(&bytes).expect("JSON body"))
    }

    #[tokio::test]
    async fn the_body_is_the_contract_error() {
        let (status, body) = body_of(ApiError::bad_request("nope")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            serde_json::json!({ "error": { "code": "bad_request", "message": "nope" } })
        );
    }

    #[tokio::test]
    async fn server_errors_keep_their_code_and_hide_internals() {
        let err = ApiError::from(ServerError::request(ErrorCode::RoomFull, "full"));
        assert_eq!(
            (err.status(), err.message()),
            (StatusCode::CONFLICT, "full")
        );
        let (status, body) =
            body_of(ApiError::from(ServerError::Store("disk on fire".into()))).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"]["code"], "internal");
        assert_eq!(
            body["error"]["message"], "store unavailable, try again",
            "a store failure says so, not why"
        );
        let (_, body) = body_of(ApiError::from(ServerError::Broker("bus on fire".into()))).await;
        assert_eq!(body["error"]["message"], "internal server error");
    }

    #[test]
    fn not_found_and_unknown_rejections_have_fixed_messages() {
        let err = from_rejection(&warp::reject::not_found());
        assert_eq!(
            (err.status(), err.code()),
            (StatusCode::NOT_FOUND, ErrorCode::NotFound)
        );

        #[derive(Debug)]
        struct Stray;
        impl warp::reject::Reject for Stray {}
        let err = from_rejection(&warp::reject::custom(Stray));
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!err.message().contains("Stray"), "{}", err.message());
    }
}
