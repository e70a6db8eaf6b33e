//! Room batching end to end (CONTRACT §5 `batch_messages`, §9 `/api/broadcast` with
//! `batch`): a full batch goes out at once and the rest after the window, a single message
//! as a batch of one, a batch still waiting at shutdown before the close; only members at
//! the flush get it; a batch without a room target, with `ack` or without a `type` is
//! rejected.

mod delivery_common;

use delivery_common::*;
use roomcast_server::Settings;
use roomcast_tests::{Client, TestServer};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Posts a batched room broadcast that must be accepted; returns `pending`.
async fn batch(server: &TestServer, room: &str, message: &Value) -> u64 {
    let (status, body) = server
        .post(
            "/api/broadcast",
            json!({ "to": { "room": room }, "message": message, "batch": true }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["batched"], true, "{body}");
    body["pending"]
        .as_u64()
        .unwrap_or_else(|| panic!("no `pending` in {body}"))
}

/// The next message is a `batch_messages` of `room` holding exactly `messages`.
async fn expect_batch(client: &mut Client, room: &str, messages: &[Value]) {
    let got = client.expect("batch_messages").await;
    assert_eq!(got["room"], room, "{got}");
    assert_eq!(got["messages"], json!(messages), "{got}");
    assert_eq!(got["count"], messages.len(), "{got}");
    assert!(got["timestamp"].is_u64(), "{got}");
}

fn tick(seq: usize) -> Value {
    json!({ "type": "tick", "seq": seq })
}

/// Settings with this batch size and window.
fn batching(max: usize, window_ms: u64) -> Settings {
    Settings {
        batch_max_messages: Some(max),
        batch_window_ms: Some(window_ms),
        ..Settings::default()
    }
}

// ---------------------------------------------------------------------------------------
// Batching
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_full_batch_goes_out_at_once_and_the_rest_after_the_window() {
    let server = TestServer::with(batching(5, 2000)).await;
    let mut clients = members(&server, "scores", &["alice", "bob"]).await;
    let ticks: Vec<Value> = (0..12).map(tick).collect();

    let mut pending = Vec::new();
    for message in &ticks[..10] {
        pending.push(batch(&server, "scores", message).await);
    }
    assert_eq!(pending, [1, 2, 3, 4, 0, 1, 2, 3, 4, 0]);
    // Both full batches were sent before the HTTP calls that filled them answered.
    for client in &mut clients {
        expect_batch(client, "scores", &ticks[..5]).await;
        expect_batch(client, "scores", &ticks[5..10]).await;
        assert_quiet(client).await;
    }

    assert_eq!(batch(&server, "scores", &ticks[10]).await, 1);
    assert_eq!(batch(&server, "scores", &ticks[11]).await, 2);
    for client in &mut clients {
        assert_quiet(client).await;
    }
    for client in &mut clients {
        expect_batch(client, "scores", &ticks[10..]).await;
        assert_quiet(client).await;
    }
}

#[tokio::test]
async fn a_single_message_goes_out_as_a_batch_of_one_after_the_window() {
    let server = TestServer::with(batching(50, 100)).await;
    let mut clients = members(&server, "scores", &["alice"]).await;
    let alice = &mut clients[0];

    assert_eq!(batch(&server, "scores", &tick(0)).await, 1);
    expect_batch(alice, "scores", &[tick(0)]).await;
    assert_quiet(alice).await;
}

#[tokio::test]
async fn a_batch_still_waiting_at_shutdown_goes_out_before_the_close() {
    // A window far longer than the test: only the shutdown can send it.
    let server = TestServer::with(batching(50, 3_600_000)).await;
    let mut clients = members(&server, "ticker", &["alice"]).await;
    let messages = [tick(1), tick(2)];
    for message in &messages {
        batch(&server, "ticker", message).await;
    }
    let stopping = tokio::spawn(server.stop());
    let (seen, closed) = clients[0].closed().await;
    assert_eq!(closed, roomcast_tests::Closed::Code(1001));
    let batches: Vec<&Value> = seen
        .iter()
        .filter(|m| m["type"] == "batch_messages")
        .collect();
    assert_eq!(batches.len(), 1, "{seen:?}");
    assert_eq!(batches[0]["messages"], json!(messages), "{seen:?}");
    stopping.await.expect("the server stopped");
}

#[tokio::test]
async fn batch_without_a_room_target_is_rejected() {
    let server = TestServer::with(batching(2, 60_000)).await;
    let mut clients = members(&server, "scores", &["alice"]).await;
    let alice = &mut clients[0];

    let targets = [
        json!({ "all": true }),
        json!({ "rooms": ["scores"] }),
        json!({ "user": "alice" }),
        json!({ "users": ["alice"] }),
        json!({ "role": "admin" }),
    ];
    for to in targets {
        let answer = server
            .post(
                "/api/broadcast",
                json!({ "to": to, "message": tick(0), "batch": true }),
            )
            .await;
        assert_error(&answer, 400, "bad_request");
    }
    assert_quiet(alice).await;
    // Nothing rejected was queued: the room's batch starts empty.
    assert_eq!(batch(&server, "scores", &tick(1)).await, 1);
}

#[tokio::test]
async fn batch_with_ack_is_rejected() {
    let server = TestServer::with(batching(2, 60_000)).await;
    let mut clients = members(&server, "scores", &["alice"]).await;
    let alice = &mut clients[0];

    let answer = server
        .post(
            "/api/broadcast",
            json!({ "to": { "room": "scores" }, "message": tick(0), "batch": true, "ack": true }),
        )
        .await;
    assert_error(&answer, 400, "bad_request");
    assert_quiet(alice).await;
    assert_eq!(batch(&server, "scores", &tick(1)).await, 1);
}

#[tokio::test]
async fn a_batched_message_without_a_type_is_rejected() {
    let server = TestServer::with(batching(2, 60_000)).await;
    let answer = server
        .post(
            "/api/broadcast",
            json!({ "to": { "room": "scores" }, "message": { "seq": 0 }, "batch": true }),
        )
        .await;
    assert_error(&answer, 400, "bad_request");
    assert_eq!(batch(&server, "scores", &tick(1)).await, 1);
}

#[tokio::test]
async fn non_members_get_no_batch() {
    let server = TestServer::with(batching(2, 60_000)).await;
    let mut clients = members(&server, "scores", &["alice"]).await;
    let mut outsider = server.login("outsider").await;
    outsider.join("elsewhere").await;

    assert_eq!(batch(&server, "scores", &tick(0)).await, 1);
    assert_eq!(batch(&server, "scores", &tick(1)).await, 0);
    expect_batch(&mut clients[0], "scores", &[tick(0), tick(1)]).await;
    assert_quiet(&mut outsider).await;
}

#[tokio::test]
async fn a_member_that_leaves_before_the_flush_gets_no_batch() {
    let server = TestServer::with(batching(3, 60_000)).await;
    let mut clients = members(&server, "scores", &["stayer", "leaver"]).await;
    let mut leaver = clients.pop().expect("leaver");
    let stayer = &mut clients[0];

    assert_eq!(batch(&server, "scores", &tick(0)).await, 1);
    let left = leaver
        .request(json!({ "type": "leave", "room": "scores" }), json!("leave"))
        .await;
    assert_eq!(left["type"], "reply", "{left}");
    assert_eq!(
        stayer.expect("user_leave").await["user"]["userId"],
        "leaver"
    );
    assert_eq!(batch(&server, "scores", &tick(1)).await, 2);
    assert_eq!(batch(&server, "scores", &tick(2)).await, 0);

    expect_batch(stayer, "scores", &[tick(0), tick(1), tick(2)]).await;
    assert_quiet(&mut leaver).await;
}
