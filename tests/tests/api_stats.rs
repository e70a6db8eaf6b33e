//! Health, metrics and stats end to end (CONTRACT §9): the `/metrics` series follow
//! connections, messages and errors, and `/api/stats` counts connections, rooms and
//! traffic.
//!
//! Every test runs its own server on `127.0.0.1:0` (helpers in `api_common`).

mod api_common;

use std::time::{Duration, Instant};

use api_common::*;
use roomcast_tests::{TestServer, WAIT};
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Waits until a series has this value.
async fn metric_becomes(server: &TestServer, series: &str, want: f64) {
    eventually(&format!("{series} == {want}"), || async move {
        sample(&metrics(server).await, series) == Some(want)
    })
    .await;
}

/// Waits until `/api/stats` satisfies `check`; returns the stats that did.
async fn stats_until(server: &TestServer, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let stats = get_ok(server, "/api/stats").await;
        if check(&stats) {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting until {what}: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Health, metrics, stats
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn metrics_follow_connections_messages_and_errors() {
    let server = TestServer::start().await;
    let text = metrics(&server).await;
    assert_eq!(sample(&text, "roomcast_connections"), Some(0.0), "{text}");
    assert_eq!(
        sample(&text, "roomcast_queue_drops_total"),
        Some(0.0),
        "{text}"
    );
    let messages_before = sample(&text, "roomcast_messages_in_total").expect("messages_in");

    let mut alice = server.login("alice").await;
    let _anonymous = server.connect().await;
    metric_becomes(&server, "roomcast_connections", 2.0).await;
    let s = &server;
    eventually("messages_in grows", || async move {
        sample(&metrics(s).await, "roomcast_messages_in_total").is_some_and(|n| n > messages_before)
    })
    .await;

    alice.send_text("{ not json").await;
    assert_eq!(alice.expect("error").await["code"], "bad_request");
    metric_becomes(&server, r#"roomcast_errors_total{code="bad_request"}"#, 1.0).await;

    alice.close().await;
    metric_becomes(&server, "roomcast_connections", 1.0).await;
    server.stop().await;
}

#[tokio::test]
async fn stats_count_connections_rooms_and_traffic() {
    let server = TestServer::start().await;
    let stats = get_ok(&server, "/api/stats").await;
    for field in [
        "connections",
        "authenticated",
        "rooms",
        "messagesIn",
        "messagesOut",
        "bytesIn",
        "bytesOut",
    ] {
        assert!(stats[field].is_u64(), "{field} in {stats}");
    }
    assert_eq!(stats["connections"], 0);

    let mut alice = server.login("alice").await;
    alice.join("desk").await;
    let _anonymous = server.connect().await;
    let stats = stats_until(&server, "stats see both sockets", |s| {
        s["connections"] == 2
            && s["messagesOut"].as_u64().unwrap_or(0) >= 3
            && s["bytesOut"].as_u64().unwrap_or(0) > 0
    })
    .await;
    assert_eq!(stats["authenticated"], 1, "{stats}");
    assert_eq!(stats["rooms"], 1, "{stats}");
    // auth and join came in; auth_ok, user_list and the join reply went out.
    assert!(stats["messagesIn"].as_u64().unwrap_or(0) >= 2, "{stats}");
    assert!(stats["bytesIn"].as_u64().unwrap_or(0) > 0, "{stats}");

    let before = stats["messagesIn"].as_u64().unwrap_or(0);
    assert_quiet(&mut alice).await;
    stats_until(&server, "messagesIn grows", |s| {
        s["messagesIn"].as_u64().unwrap_or(0) > before
    })
    .await;
    alice.close().await;
    stats_until(&server, "alice is no longer counted", |s| {
        s["connections"] == 1 && s["authenticated"] == 0
    })
    .await;
    server.stop().await;
}
