//! What the delivery tests (`delivery.rs`, `compression.rs`, `batching.rs`) share: API
//! error and quiet-socket assertions, reading past what a connection has queued, and a
//! room of logged-in members.
//!
//! "Nothing else arrived" is checked with [`assert_quiet`]: a `ping` with an id whose
//! `pong` must be the next message. The server queues what an API request sends before
//! it answers that request, so anything it sent would arrive before the `pong`.

// Each file that includes this is its own test crate and uses its own part of it.
#![allow(dead_code)]

use roomcast_tests::{Client, TestServer};
use serde_json::{Value, json};

/// Asserts an API error: the status and `error.code`.
#[track_caller]
pub fn assert_error(answer: &(u16, Value), status: u16, code: &str) {
    let (got, body) = answer;
    assert_eq!(*got, status, "status of {body}");
    assert_eq!(body["error"]["code"], code, "{body}");
}

/// Answers a ping so that everything queued before it has been read and dropped.
pub async fn settle(client: &mut Client) {
    let pong = client
        .request(json!({ "type": "ping" }), json!("settle"))
        .await;
    assert_eq!(pong["type"], "pong", "{pong}");
}

/// The next message is the answer to a ping sent now: nothing else was pending.
pub async fn assert_quiet(client: &mut Client) {
    client.send(json!({ "type": "ping", "id": "quiet" })).await;
    let next = client.recv().await;
    assert_eq!(next["id"], "quiet", "expected nothing pending, got {next}");
}

/// Logs in each user, joins them to `room` and drains presence noise.
pub async fn members(server: &TestServer, room: &str, users: &[&str]) -> Vec<Client> {
    let mut clients = Vec::new();
    for user in users {
        let mut client = server.login(user).await;
        client.join(room).await;
        clients.push(client);
    }
    for client in &mut clients {
        settle(client).await;
    }
    clients
}
