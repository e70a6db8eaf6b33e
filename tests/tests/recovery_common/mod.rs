//! What the chat recovery and topic tests (`recovery.rs`, `recovery_concurrent.rs`,
//! `topics.rs`) share: the quiet window, a chat that waits for its reply, and the next
//! message that is not a heartbeat.

// Each file that includes this is its own test crate and uses its own part of it.
#![allow(dead_code)]

use std::time::Duration;

use roomcast_tests::Client;
use serde_json::{Value, json};

/// How long "nothing else arrives" is watched.
pub const QUIET: Duration = Duration::from_millis(300);

/// Sends a chat and waits for its reply; returns the stored id.
pub async fn say(client: &mut Client, room: &str, content: &str) -> String {
    let reply = client
        .request(
            json!({ "type": "chat", "room": room, "content": content }),
            json!(format!("say-{content}")),
        )
        .await;
    assert_eq!(reply["type"], "reply", "{reply}");
    reply["data"]["id"].as_str().expect("chat id").to_owned()
}

/// The next message that is not a heartbeat `ping`.
pub async fn next(client: &mut Client) -> Value {
    loop {
        let message = client.recv().await;
        if message["type"] != "ping" {
            return message;
        }
    }
}
