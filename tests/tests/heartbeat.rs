//! Client `ping` and the server's heartbeat end to end (CONTRACT §4 `ping`, §5 `pong` and
//! `ping`, §8 close 4002): a ping gets a pong with its id (or none), a client answering
//! heartbeats with `pong` or any other message stays connected, pings keep their interval
//! when the timeout is longer, and a silent client is closed with 4002.

mod auth_common;

use std::time::{Duration, Instant};

use auth_common::*;
use roomcast_server::Settings;
use roomcast_tests::{Closed, TestServer};
use serde_json::{Value, json};

// ---- client ping ----

#[tokio::test]
async fn ping_with_an_id_gets_a_pong_with_that_id_and_no_reply() {
    let server = TestServer::start().await;
    let mut client = server.login("nina").await;
    for id in [json!(7), json!("p-1")] {
        client.send(json!({ "type": "ping", "id": id })).await;
        let pong = client.expect("pong").await;
        assert_eq!(pong["id"], id);
        assert_recent(&pong["timestamp"]);
        assert_eq!(pong.as_object().map(|o| o.len()), Some(3), "{pong}");
        client.expect_silence(Duration::from_millis(300)).await;
    }
    finish(server, [client]).await;
}

#[tokio::test]
async fn ping_without_an_id_gets_a_pong_without_one() {
    let server = TestServer::start().await;
    let mut client = server.login("oscar").await;
    client.send(json!({ "type": "ping" })).await;
    let pong = client.expect("pong").await;
    assert!(pong.get("id").is_none(), "{pong}");
    assert_recent(&pong["timestamp"]);
    client.expect_silence(Duration::from_millis(300)).await;
    finish(server, [client]).await;
}

// ---- heartbeat ----

/// Heartbeats every 200 ms, answered within `timeout_ms`.
async fn heartbeat_server(timeout_ms: u64) -> TestServer {
    TestServer::with(Settings {
        heartbeat_interval_ms: Some(200),
        heartbeat_timeout_ms: Some(timeout_ms),
        ..Settings::default()
    })
    .await
}

/// The server's heartbeat `ping`: a type and a timestamp, nothing else.
fn assert_heartbeat(ping: &Value) {
    assert_eq!(ping["type"], "ping", "{ping}");
    assert_recent(&ping["timestamp"]);
    assert_eq!(ping.as_object().map(|o| o.len()), Some(2), "{ping}");
}

/// Answers four heartbeats with `answer`, then checks the connection still works. The
/// timeout leaves room for a busy test machine to answer.
async fn survives_heartbeats(answer: Value) {
    let server = heartbeat_server(400).await;
    let mut client = server.login("pat").await;
    for _ in 0..4 {
        let ping = client.wait_for("ping").await;
        assert_heartbeat(&ping);
        client.send(answer.clone()).await;
    }
    assert_usable(&mut client).await;
    finish(server, [client]).await;
}

#[tokio::test]
async fn client_answering_heartbeats_with_pong_stays_connected() {
    survives_heartbeats(json!({ "type": "pong" })).await;
}

#[tokio::test]
async fn client_answering_heartbeats_with_any_message_stays_connected() {
    survives_heartbeats(json!({ "type": "ping" })).await;
}

/// The ping period is the interval even when the timeout is longer: an answered ping
/// schedules the next one an interval after it, not a timeout after it.
#[tokio::test]
async fn pings_keep_the_interval_when_the_timeout_is_longer() {
    let server = TestServer::with(Settings {
        heartbeat_interval_ms: Some(100),
        heartbeat_timeout_ms: Some(3_000),
        ..Settings::default()
    })
    .await;
    let mut client = server.login("rhea").await;
    let started = Instant::now();
    for _ in 0..4 {
        let ping = client.expect("ping").await;
        assert_heartbeat(&ping);
        client.send(json!({ "type": "pong" })).await;
    }
    // Four pings a 100 ms interval apart; a timeout-paced server would need over 9 s.
    assert!(
        started.elapsed() < Duration::from_millis(2_500),
        "{:?}",
        started.elapsed()
    );
    finish(server, [client]).await;
}

#[tokio::test]
async fn silent_client_is_closed_with_4002() {
    let server = heartbeat_server(200).await;
    let mut client = server.login("quinn").await;
    let (seen, closed) = client.closed().await;
    assert_eq!(closed, Closed::Code(4002), "after {seen:?}");
    assert_eq!(seen.len(), 1, "one heartbeat, then the close: {seen:?}");
    assert_heartbeat(&seen[0]);
    assert_still_serving(&server).await;
    finish(server, [client]).await;
}
