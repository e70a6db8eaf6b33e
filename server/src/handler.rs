//! Application handlers: the server's extension point for custom message types and for
//! connect / close events (CONTRACT §4, "any other type"). Embedding apps implement
//! [`Handler`] in Rust; a deployment without Rust code sets `ROOMCAST_WEBHOOK_URL` and
//! gets the [`WebhookHandler`], which POSTs each event as JSON.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use roomcast_protocol::client::CustomMessage;
use roomcast_protocol::{ClientId, ErrorCode, User};
use serde::Serialize;
use serde_json::Value;
use tracing::warn;

use crate::hub::Hub;

/// Who an event is about.
#[derive(Debug, Clone)]
pub struct HandlerContext {
    /// The connection.
    pub client_id: ClientId,
    /// Its authenticated user.
    pub user: Arc<User>,
    /// The hub, to publish, send or look things up.
    pub hub: Hub,
}

/// An answer the handler refuses or fails with; the client gets it as `error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerError {
    /// The contract's error code.
    pub code: ErrorCode,
    /// A message for the client.
    pub message: String,
}

impl HandlerError {
    /// An error with `code`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// The application's side of a connection's life.
pub trait Handler: Send + Sync + std::fmt::Debug + 'static {
    /// A connection authenticated. `Err` refuses it: the client gets `error`
    /// `forbidden` with the message, then close 4003, and never `auth_ok`.
    fn on_connect<'a>(
        &'a self,
        ctx: &'a HandlerContext,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        let _ = ctx;
        Box::pin(std::future::ready(Ok(())))
    }

    /// A message of a type the contract does not define. `Ok(Some(data))` is the `reply`
    /// data (when the message had an `id`), `Ok(None)` replies `null`, `Err` is sent as
    /// `error`.
    fn on_message<'a>(
        &'a self,
        ctx: &'a HandlerContext,
        message: &'a CustomMessage,
    ) -> BoxFuture<'a, Result<Option<Value>, HandlerError>>;

    /// An authenticated connection closed.
    fn on_close<'a>(&'a self, ctx: &'a HandlerContext) -> BoxFuture<'a, ()> {
        let _ = ctx;
        Box::pin(std::future::ready(()))
    }
}

/// The body of each webhook call.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct WebhookEvent<'a> {
    event: &'a str,
    client_id: &'a ClientId,
    user: &'a User,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a CustomMessage>,
}

/// Posts `{event, clientId, user, message}` to the application's URL. A `message`
/// event's 2xx JSON body is the reply; a non-2xx answer or a timeout becomes an `error`
/// for the client and a log line. A `connect` answered by anything but 2xx (or not at
/// all) refuses the connection: the handler is the gate, so it fails closed.
#[derive(Debug, Clone)]
pub struct WebhookHandler {
    url: String,
    timeout: Duration,
    client: reqwest::Client,
}

impl WebhookHandler {
    /// A webhook at `url`, each call bounded by `timeout`.
    ///
    /// # Errors
    /// [`crate::ServerError::Config`] when the HTTP client cannot be built.
    pub fn new(url: impl Into<String>, timeout: Duration) -> Result<Self, crate::ServerError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| crate::ServerError::Config(format!("webhook client: {e}")))?;
        Ok(Self {
            url: url.into(),
            timeout,
            client,
        })
    }

    async fn call(
        &self,
        ctx: &HandlerContext,
        event: &str,
        message: Option<&CustomMessage>,
    ) -> Result<Value, HandlerError> {
        let body = WebhookEvent {
            event,
            client_id: &ctx.client_id,
            user: &ctx.user,
            message,
        };
        let response = self.client.post(&self.url).json(&body).send().await;
        let response = match response {
            Ok(response) => response,
            Err(err) => {
                let what = if err.is_timeout() {
                    format!("did not answer within {} ms", self.timeout.as_millis())
                } else {
                    "could not be reached".to_owned()
                };
                warn!(url = %self.url, event, cause = %err, "webhook {what}");
                return Err(HandlerError::new(
                    ErrorCode::Internal,
                    format!("the application handler {what}"),
                ));
            }
        };
        let status = response.status();
        let text = match response.text().await {
            Ok(text) => text,
            Err(err) => {
                warn!(url = %self.url, event, cause = %err, "webhook body unreadable");
                return Err(HandlerError::new(
                    ErrorCode::Internal,
                    "the application handler's answer could not be read",
                ));
            }
        };
        let body: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status.is_success() {
            return Ok(body);
        }
        warn!(url = %self.url, event, %status, "webhook answered with an error");
        // An application may say which contract error it means:
        // {"error":{"code":"forbidden","message":"..."}}.
        let declared = body.get("error").and_then(|e| {
            let code = serde_json::from_value::<ErrorCode>(e.get("code")?.clone()).ok()?;
            let message = e.get("message")?.as_str()?.to_owned();
            Some(HandlerError::new(code, message))
        });
        Err(declared.unwrap_or_else(|| {
            HandlerError::new(
                ErrorCode::Internal,
                format!("the application handler answered HTTP {}", status.as_u16()),
            )
        }))
    }
}

impl Handler for WebhookHandler {
    fn on_connect<'a>(
        &'a self,
        ctx: &'a HandlerContext,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            self.call(ctx, "connect", None)
                .await
                .map(|_| ())
                .map_err(|err| {
                    HandlerError::new(
                        ErrorCode::Forbidden,
                        format!("connection refused: {}", err.message),
                    )
                })
        })
    }

    fn on_message<'a>(
        &'a self,
        ctx: &'a HandlerContext,
        message: &'a CustomMessage,
    ) -> BoxFuture<'a, Result<Option<Value>, HandlerError>> {
        Box::pin(async move { self.call(ctx, "message", Some(message)).await.map(Some) })
    }

    fn on_close<'a>(&'a self, ctx: &'a HandlerContext) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            // Failures are logged by `call`; a close cannot be answered.
            let _ = self.call(ctx, "close", None).await;
        })
    }
}
