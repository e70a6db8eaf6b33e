//! What the HTTP API tests (`api_key.rs`, `api_broadcast.rs`, `api_connections.rs`,
//! `api_rooms.rs`, `api_stats.rs`, `api_errors.rs`) share: a payload with a bit of
//! everything JSON has, API error and quiet-socket assertions, polling, list and metrics
//! readers, and minted-token logins.
//!
//! "Nothing else arrived" is checked with [`assert_quiet`]: a `ping` with an id whose
//! answer must be the next message. The server queues a delivery before it answers the
//! HTTP request that caused it, so anything that request sent would arrive before that
//! answer.

// Each file that includes this is its own test crate and uses its own part of it.
#![allow(dead_code)]

use std::future::Future;
use std::time::{Duration, Instant};

use reqwest::Method;
use roomcast_tests::{Client, TestServer, WAIT};
use serde_json::{Value, json};

/// An application message with a bit of everything JSON has, to check that it arrives
/// exactly as posted.
pub fn payload(tag: &str) -> Value {
    json!({
        "type": "stock_update",
        "tag": tag,
        "price": 101.25,
        "up": true,
        "tags": ["a", "b"],
        "nested": { "none": null, "list": [1, { "deep": "x" }] },
    })
}

/// Asserts an API error: the status, `error.code` and a non-empty `error.message`.
#[track_caller]
pub fn assert_error(answer: &(u16, Value), status: u16, code: &str) {
    let (got, body) = answer;
    assert_eq!(*got, status, "status of {body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "error.message in {body}"
    );
}

/// Splits `"METHOD /path"`, with `{me}` in the path replaced by `me`.
pub fn route(route: &str, me: &str) -> (Method, String) {
    let (method, path) = route.split_once(' ').expect("METHOD /path");
    let method = Method::from_bytes(method.as_bytes()).expect("method");
    (method, path.replace("{me}", me))
}

/// Posts a broadcast that must succeed; returns its `recipients`.
pub async fn broadcast(server: &TestServer, to: Value, message: &Value) -> u64 {
    let (status, body) = server
        .post("/api/broadcast", json!({ "to": to, "message": message }))
        .await;
    assert_eq!(status, 200, "{body}");
    body["recipients"]
        .as_u64()
        .unwrap_or_else(|| panic!("no `recipients` in {body}"))
}

/// The next message is the answer to a ping sent now: nothing else was pending. An
/// unauthenticated client answers with `error` `not_authenticated`, which carries the id
/// just the same.
pub async fn assert_quiet(client: &mut Client) {
    client.send(json!({ "type": "ping", "id": "quiet" })).await;
    let next = client.recv().await;
    assert_eq!(next["id"], "quiet", "expected nothing pending, got {next}");
}

/// `client` gets `message` exactly as posted, and only once.
pub async fn gets_once(client: &mut Client, message: &Value) {
    let got = client.recv().await;
    assert_eq!(
        &got, message,
        "delivered message differs from the posted one"
    );
    assert_quiet(client).await;
}

/// Polls `check` until it holds, failing after [`WAIT`].
pub async fn eventually<F: Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = Instant::now() + WAIT;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `GET` that must succeed; returns the body.
pub async fn get_ok(server: &TestServer, path: &str) -> Value {
    let (status, body) = server.get(path).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// The `items` of a list endpoint.
pub async fn items(server: &TestServer, path: &str) -> Vec<Value> {
    let body = get_ok(server, path).await;
    body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no `items` array in {body}"))
        .clone()
}

/// A token minted by `POST /api/token`.
pub async fn mint(server: &TestServer, body: Value) -> String {
    let (status, answer) = server.post("/api/token", body).await;
    assert_eq!(status, 200, "{answer}");
    answer["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no `token` in {answer}"))
        .to_owned()
}

/// A client authenticated with `token` via the `auth` message, and its `auth_ok`.
pub async fn login_token(server: &TestServer, token: &str) -> (Client, Value) {
    let mut client = server.connect().await;
    client.send(json!({ "type": "auth", "token": token })).await;
    let ok = client.expect("auth_ok").await;
    client.client_id = ok["clientId"].as_str().expect("clientId").to_owned();
    (client, ok)
}

/// The `/metrics` text, fetched without a key.
pub async fn metrics(server: &TestServer) -> String {
    let answer = server
        .http(Method::GET, "/metrics")
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(answer.status(), 200);
    let kind = answer.headers()["content-type"]
        .to_str()
        .expect("content-type")
        .to_owned();
    assert!(kind.starts_with("text/plain"), "content-type {kind}");
    answer.text().await.expect("metrics body")
}

/// The value of one series (`name` or `name{labels}`) in Prometheus text.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}
