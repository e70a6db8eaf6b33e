//! Embedding Roomcast with an application handler: the server runs in your process and
//! your Rust code answers custom message types, vets connections and hears closes.
//!
//! ```sh
//! cargo run -p roomcast-server --example embedded_handler
//! # then, from a WebSocket client authenticated as any user:
//! #   {"type":"roll","id":1,"sides":20}  → {"type":"reply","id":1,"ok":true,"data":{"rolled":..}}
//! #   {"type":"shout","id":2,"text":"hi"} → the room "lobby" gets {"type":"shout",...}
//! # users whose id starts with "guest-" are refused with close 4003.
//! ```

use std::sync::Arc;

use futures_util::future::BoxFuture;
use roomcast_protocol::ErrorCode;
use roomcast_protocol::client::CustomMessage;
use roomcast_server::broker::{LocalBroker, Target};
use roomcast_server::{Config, Handler, HandlerContext, HandlerError, Hub, ServerError};
use serde_json::{Value, json};

/// The application's logic.
#[derive(Debug)]
struct Game;

impl Handler for Game {
    fn on_connect<'a>(
        &'a self,
        ctx: &'a HandlerContext,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            if ctx.user.user_id.as_str().starts_with("guest-") {
                return Err(HandlerError::new(
                    ErrorCode::Forbidden,
                    "guests cannot play: sign in",
                ));
            }
            Ok(())
        })
    }

    fn on_message<'a>(
        &'a self,
        ctx: &'a HandlerContext,
        message: &'a CustomMessage,
    ) -> BoxFuture<'a, Result<Option<Value>, HandlerError>> {
        Box::pin(async move {
            match message.kind.as_str() {
                "roll" => {
                    let sides = message
                        .payload
                        .get("sides")
                        .and_then(Value::as_u64)
                        .filter(|s| (2..=1000).contains(s))
                        .ok_or_else(|| {
                            HandlerError::new(ErrorCode::BadRequest, "`sides` must be 2 to 1000")
                        })?;
                    let rolled = roomcast_server::now_ms() % sides + 1;
                    Ok(Some(json!({ "rolled": rolled })))
                }
                "shout" => {
                    let text = message.payload.get("text").cloned().unwrap_or(Value::Null);
                    let shout = json!({ "type": "shout", "from": ctx.user.user_id, "text": text });
                    let room =
                        Target::Room("lobby".parse().map_err(|_| {
                            HandlerError::new(ErrorCode::Internal, "bad room name")
                        })?);
                    let reached = ctx
                        .hub
                        .broadcast(room, &shout)
                        .await
                        .map_err(|e| HandlerError::new(e.code(), e.public_message()))?;
                    Ok(Some(json!({ "reached": reached })))
                }
                other => Err(HandlerError::new(
                    ErrorCode::BadRequest,
                    format!("this app does not know `{other}`"),
                )),
            }
        })
    }

    fn on_close<'a>(&'a self, ctx: &'a HandlerContext) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            tracing::info!(client = %ctx.client_id, user = %ctx.user.user_id, "left the game");
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), ServerError> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let config = Config::from_settings(roomcast_server::Settings {
        dev: Some(true),
        store: Some("sqlite::memory:".into()),
        ..roomcast_server::Settings::default()
    })?;
    let listener = tokio::net::TcpListener::bind(config.server.bind).await?;
    let store = roomcast_server::store::open(&config.store.url).await?;
    let hub = Hub::start(config, Arc::new(LocalBroker::new()), store).await?;
    roomcast_server::run_with(listener, hub, Some(Arc::new(Game)), async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}
