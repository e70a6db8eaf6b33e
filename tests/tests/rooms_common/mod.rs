//! What the room tests (`rooms.rs`, `rooms_chat.rs`, `rooms_options.rs`) share: the
//! messages they send, request and presence assertions, and the HTTP API's rooms.
//!
//! "Nothing else arrived" is checked with [`assert_quiet`]: a `ping` whose `pong` must be
//! the next message. The server queues deliveries before it answers the request that
//! caused them, so anything an earlier, answered action sent would arrive first.

// Each file that includes this is its own test crate and uses its own part of it.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use roomcast_tests::{Client, TestServer, WAIT};
use serde_json::{Value, json};

/// A `join` message without a request id.
pub fn join(room: &str) -> Value {
    json!({ "type": "join", "room": room })
}

/// A `leave` message without a request id.
pub fn leave(room: &str) -> Value {
    json!({ "type": "leave", "room": room })
}

/// A `chat` message without a request id.
pub fn chat(room: &str, content: Value) -> Value {
    let mut message = json!({ "type": "chat", "room": room });
    message["content"] = content;
    message
}

/// Sends `message` as a request; the answer must be a `reply`. Returns its `data`.
pub async fn expect_ok(client: &mut Client, message: Value) -> Value {
    let answer = client.request(message, json!("req")).await;
    assert_eq!(answer["type"], "reply", "{answer}");
    assert_eq!(answer["ok"], true, "{answer}");
    answer["data"].clone()
}

/// Sends `message` as a request; the very next message must be an `error` with `code`
/// (so a refused join cannot slip out a `user_list` first).
pub async fn expect_error(client: &mut Client, mut message: Value, code: &str) {
    message["id"] = json!("req");
    client.send(message).await;
    let answer = client.recv().await;
    assert_eq!(answer["id"], "req", "{answer}");
    assert_eq!(
        answer["type"], "error",
        "expected error {code}, got {answer}"
    );
    assert_eq!(answer["code"], code, "{answer}");
    assert!(answer["message"].is_string(), "{answer}");
}

/// Chats in `room` and returns the reply data (which holds the message `id`).
pub async fn say(client: &mut Client, room: &str, content: Value) -> Value {
    expect_ok(client, chat(room, content)).await
}

/// Nothing is queued for `client`: a `ping` gets its `pong` as the very next message.
pub async fn assert_quiet(client: &mut Client) {
    client.send(json!({ "type": "ping", "id": "quiet" })).await;
    let next = client.recv().await;
    assert!(
        next["type"] == "pong" && next["id"] == "quiet",
        "expected nothing before the pong, got {next}"
    );
}

/// The user ids of a `user_list`, sorted.
pub fn user_ids(list: &Value) -> Vec<String> {
    let mut ids: Vec<String> = list["users"]
        .as_array()
        .unwrap_or_else(|| panic!("users is an array: {list}"))
        .iter()
        .map(|u| u["userId"].as_str().expect("userId").to_owned())
        .collect();
    ids.sort();
    ids
}

/// The sorted field names of a JSON object.
pub fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .unwrap_or_else(|| panic!("an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

/// A timestamp field: integer milliseconds, within a minute of now.
pub fn assert_recent(timestamp: &Value) {
    let ms = timestamp
        .as_u64()
        .unwrap_or_else(|| panic!("integer ms: {timestamp}"));
    assert!(roomcast_server::now_ms().abs_diff(ms) < 60_000, "{ms}");
}

/// The next message must be `kind` (`user_join`/`user_leave`) about `user` in `room`.
pub async fn expect_presence(client: &mut Client, kind: &str, room: &str, user: &str) {
    let event = client.expect(kind).await;
    assert_eq!(
        keys(&event),
        ["room", "timestamp", "type", "user"],
        "{event}"
    );
    assert_eq!(event["room"], room, "{event}");
    assert_eq!(event["user"], json!({ "userId": user }), "{event}");
    assert_recent(&event["timestamp"]);
}

/// The names `GET /api/rooms` lists.
pub async fn room_names(server: &TestServer) -> Vec<String> {
    let (status, body) = server.get("/api/rooms").await;
    assert_eq!(status, 200, "{body}");
    body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("items: {body}"))
        .iter()
        .map(|r| r["name"].as_str().expect("name").to_owned())
        .collect()
}

/// Polls `GET path` until it answers `status` (for effects of a close, which the client
/// cannot wait for otherwise); returns the body.
pub async fn eventually(server: &TestServer, path: &str, status: u16) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let (now, body) = server.get(path).await;
        if now == status {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{path} still answers {now}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Asserts an API error body `{"error":{"code","message"}}`.
pub fn assert_api_error(status: u16, body: &Value, want_status: u16, code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
}

/// Creates a room through the API; it must be new.
pub async fn create_room(server: &TestServer, body: Value) -> Value {
    let (status, info) = server.post("/api/rooms", body).await;
    assert_eq!(status, 201, "{info}");
    info
}
