//! What the application handler tests (`handlers.rs`, the embedded [`Handler`];
//! `webhook.rs`, the HTTP webhook) share: the quiet window and the assertions on a usable
//! connection, a refused one and an `error` reply.
//!
//! [`Handler`]: roomcast_server::Handler

// Each file that includes this is its own test crate and uses its own part of it.
#![allow(dead_code)]

use std::time::Duration;

use roomcast_tests::{Client, Closed};
use serde_json::{Value, json};

/// Long enough for something that should not happen to show up.
pub const QUIET: Duration = Duration::from_millis(300);

/// A `ping` with an id is answered by its `pong`: the connection is open and usable.
pub async fn assert_usable(client: &mut Client) {
    let pong = client
        .request(json!({ "type": "ping" }), json!("alive"))
        .await;
    assert_eq!(pong["type"], "pong", "{pong}");
}

/// The connection gets `error` `forbidden` (and nothing else, never `auth_ok`), then
/// close 4003.
pub async fn assert_refused(client: &mut Client) -> Value {
    let (seen, closed) = client.closed().await;
    assert_eq!(closed, Closed::Code(4003), "close code after {seen:?}");
    assert!(
        seen.iter().all(|m| m["type"] != "auth_ok"),
        "a refused connection never gets auth_ok: {seen:?}"
    );
    assert_eq!(seen.len(), 1, "only the refusal: {seen:?}");
    let error = seen[0].clone();
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["code"], "forbidden", "{error}");
    error
}

/// An `error` with this code answering request `id`.
#[track_caller]
pub fn assert_error(answer: &Value, id: &str, code: &str) {
    assert_eq!(answer["type"], "error", "{answer}");
    assert_eq!(answer["id"], id, "{answer}");
    assert_eq!(answer["code"], code, "{answer}");
}

/// The message of an `error`, as text.
pub fn message_of(error: &Value) -> &str {
    error["message"].as_str().unwrap_or_default()
}
