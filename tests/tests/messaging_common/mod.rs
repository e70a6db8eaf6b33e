//! What the private message and notification tests (`private.rs`, `notifications.rs`,
//! `messaging_restart.rs`) share: sending a private message, posting a notification,
//! reading a user's notification list, and closing a connection until the user counts as
//! offline.

// Each file that includes this is its own test crate and uses its own part of it.
#![allow(dead_code)]

use std::time::Duration;

use roomcast_tests::{Client, TestServer};
use serde_json::{Value, json};

/// How long "nothing else arrives" is watched.
pub const QUIET: Duration = Duration::from_millis(300);

/// Sends a private message with a request id; returns the sender's answer.
pub async fn private(sender: &mut Client, to: &str, content: Value, id: &str) -> Value {
    sender
        .request(
            json!({ "type": "private", "targetUserId": to, "content": content }),
            json!(id),
        )
        .await
}

/// Sends a private message that must be accepted; returns the reply's `data`.
pub async fn private_ok(sender: &mut Client, to: &str, content: Value, id: &str) -> Value {
    let reply = private(sender, to, content, id).await;
    assert_eq!(reply["type"], "reply", "{reply}");
    assert_eq!(reply["data"]["targetUserId"], to, "{reply}");
    reply["data"].clone()
}

/// Posts a notification that must be accepted; returns the response body.
pub async fn notify(server: &TestServer, body: Value) -> Value {
    let (status, answer) = server.post("/api/notify", body).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer["id"].is_string(), "{answer}");
    assert!(answer["timestamp"].as_u64().is_some(), "{answer}");
    answer
}

/// Posts a notification `title` (content `"{title} body"`) for `user`.
pub async fn notify_titled(server: &TestServer, user: &str, title: &str) -> Value {
    notify(
        server,
        json!({ "userId": user, "title": title, "content": format!("{title} body") }),
    )
    .await
}

/// The user's stored notifications, as `GET /api/users/{user}/notifications{query}`.
pub async fn listed(server: &TestServer, user: &str, query: &str) -> Vec<Value> {
    let (status, body) = server
        .get(&format!("/api/users/{user}/notifications{query}"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().expect("items").clone()
}

/// The `title` of each item.
pub fn titles(items: &[Value]) -> Vec<&str> {
    items
        .iter()
        .map(|n| n["title"].as_str().unwrap_or_default())
        .collect()
}

pub fn id_of(value: &Value) -> &str {
    value["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id: {value}"))
}

/// Closes a connection and waits until the server has forgotten it, so the user counts
/// as offline for what is sent next.
pub async fn disconnect(server: &TestServer, client: Client) {
    let path = format!("/api/connections/{}", client.client_id);
    client.close().await;
    for _ in 0..250 {
        if server.get(&path).await.0 == 404 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{path} is still registered after the client closed");
}
