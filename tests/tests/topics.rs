//! Filtered topics end to end (CONTRACT §4 `subscribe`, `unsubscribe`; §5 filtered
//! topics; §9 `POST /api/publish`): a subscriber gets one message with only the items it
//! chose, in published order, on every connection of its user, after reconnects and a
//! restart on the same SQLite store; resubscribing replaces the keys, bad publishes and
//! subscriptions change nothing.

mod recovery_common;

use std::time::Duration;

use recovery_common::*;
use reqwest::Method;
use roomcast_server::Settings;
use roomcast_tests::{Client, TestServer, WAIT, remove_sqlite_store, response, sqlite_store_file};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Waits until the server no longer lists any connection of `user`.
async fn wait_until_gone(server: &TestServer, user: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, body) = server.get("/api/connections").await;
        assert_eq!(status, 200, "{body}");
        let present = body["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|c| c["user"]["userId"] == user);
        if !present {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{user} is still connected: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Filtered topics
// ---------------------------------------------------------------------------------------

/// Sends `subscribe`; returns the answer.
async fn subscribe(client: &mut Client, topic: Value, keys: Value) -> Value {
    client
        .request(
            json!({ "type": "subscribe", "topic": topic, "keys": keys }),
            json!("subscribe"),
        )
        .await
}

/// Subscribes `client` to `topic` with `keys`; the reply must come.
async fn subscribed(client: &mut Client, topic: &str, keys: Value) -> Value {
    let answer = subscribe(client, json!(topic), keys).await;
    assert_eq!(answer["type"], "reply", "{answer}");
    answer["data"].clone()
}

/// Sends `unsubscribe`; returns the reply's `data`.
async fn unsubscribed(client: &mut Client, topic: &str) -> Value {
    let answer = client
        .request(
            json!({ "type": "unsubscribe", "topic": topic }),
            json!("unsubscribe"),
        )
        .await;
    assert_eq!(answer["type"], "reply", "{answer}");
    answer["data"].clone()
}

/// Stock items, one per `(key, price)`.
fn stocks(items: &[(&str, u32)]) -> Value {
    Value::Array(
        items
            .iter()
            .map(|(key, price)| json!({ "key": key, "price": price }))
            .collect(),
    )
}

/// Publishes `stock_update` items to `stocks`; must be accepted. Returns the response.
async fn publish(server: &TestServer, items: Value) -> Value {
    let (status, body) = server
        .post(
            "/api/publish",
            json!({ "topic": "stocks", "type": "stock_update", "items": items }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The next message, which must be a `stock_update` on `stocks`; returns its `data`.
async fn expect_update(client: &mut Client) -> Value {
    let message = next(client).await;
    assert_eq!(message["type"], "stock_update", "{message}");
    assert_eq!(message["topic"], "stocks", "{message}");
    assert!(message["timestamp"].as_u64().is_some(), "{message}");
    message["data"].clone()
}

#[tokio::test]
async fn a_subscriber_gets_one_message_with_only_its_items_in_published_order() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let data = subscribed(&mut alice, "stocks", json!(["MSFT", "AAPL", "MSFT"])).await;
    assert_eq!(
        data,
        json!({ "topic": "stocks", "keys": ["AAPL", "MSFT"] }),
        "keys sorted, deduplicated"
    );

    let body = publish(
        &server,
        stocks(&[("AAPL", 1), ("GOOG", 2), ("MSFT", 3), ("AAPL", 4)]),
    )
    .await;
    assert_eq!(body, json!({ "users": 1, "delivered": 1 }));
    assert_eq!(
        expect_update(&mut alice).await,
        stocks(&[("AAPL", 1), ("MSFT", 3), ("AAPL", 4)])
    );
    alice.expect_silence(QUIET).await;
}

#[tokio::test]
async fn users_without_a_matching_key_or_subscription_get_nothing() {
    let server = TestServer::start().await;
    let mut other_keys = server.login("alice").await;
    subscribed(&mut other_keys, "stocks", json!(["TSLA"])).await;
    let mut other_topic = server.login("bob").await;
    subscribed(&mut other_topic, "crypto", json!(["AAPL"])).await;
    let mut unsubscribed_user = server.login("carol").await;

    let body = publish(&server, stocks(&[("AAPL", 1), ("GOOG", 2)])).await;
    assert_eq!(body, json!({ "users": 0, "delivered": 0 }));
    other_keys.expect_silence(QUIET).await;
    other_topic.expect_silence(QUIET).await;
    unsubscribed_user.expect_silence(QUIET).await;
}

#[tokio::test]
async fn every_connection_of_the_user_gets_it_including_the_one_that_did_not_subscribe() {
    let server = TestServer::start().await;
    let mut first = server.login("alice").await;
    let mut second = server.login("alice").await;
    subscribed(&mut first, "stocks", json!(["AAPL"])).await;

    let body = publish(&server, stocks(&[("AAPL", 1)])).await;
    assert_eq!(body, json!({ "users": 1, "delivered": 2 }));
    assert_eq!(expect_update(&mut first).await, stocks(&[("AAPL", 1)]));
    assert_eq!(expect_update(&mut second).await, stocks(&[("AAPL", 1)]));
    first.expect_silence(QUIET).await;
    second.expect_silence(QUIET).await;
}

#[tokio::test]
async fn a_connection_opened_after_subscribing_elsewhere_gets_it_too() {
    let server = TestServer::start().await;
    let mut first = server.login("alice").await;
    subscribed(&mut first, "stocks", json!(["AAPL"])).await;
    let mut later = server.login("alice").await;

    publish(&server, stocks(&[("AAPL", 1)])).await;
    assert_eq!(expect_update(&mut later).await, stocks(&[("AAPL", 1)]));
    assert_eq!(expect_update(&mut first).await, stocks(&[("AAPL", 1)]));
}

#[tokio::test]
async fn publish_counts_matched_users_and_their_connections() {
    let server = TestServer::start().await;
    let mut alice_1 = server.login("alice").await;
    let mut alice_2 = server.login("alice").await;
    let mut bob = server.login("bob").await;
    let mut carol = server.login("carol").await;
    subscribed(&mut alice_1, "stocks", json!(["AAPL"])).await;
    subscribed(&mut bob, "stocks", json!(["GOOG", "MSFT"])).await;
    subscribed(&mut carol, "stocks", json!(["TSLA"])).await;

    let body = publish(&server, stocks(&[("AAPL", 1), ("MSFT", 2)])).await;
    assert_eq!(body, json!({ "users": 2, "delivered": 3 }));
    assert_eq!(expect_update(&mut alice_1).await, stocks(&[("AAPL", 1)]));
    assert_eq!(expect_update(&mut alice_2).await, stocks(&[("AAPL", 1)]));
    assert_eq!(expect_update(&mut bob).await, stocks(&[("MSFT", 2)]));
    carol.expect_silence(QUIET).await;
}

#[tokio::test]
async fn subscriptions_survive_a_reconnect() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    subscribed(&mut alice, "stocks", json!(["AAPL"])).await;
    alice.close().await;
    wait_until_gone(&server, "alice").await;

    let mut alice = server.login("alice").await;
    let body = publish(&server, stocks(&[("AAPL", 7), ("GOOG", 8)])).await;
    assert_eq!(body, json!({ "users": 1, "delivered": 1 }));
    assert_eq!(expect_update(&mut alice).await, stocks(&[("AAPL", 7)]));
    alice.expect_silence(QUIET).await;
}

#[tokio::test]
async fn subscriptions_survive_a_restart_with_a_sqlite_store() {
    let path = sqlite_store_file("subscriptions-restart");
    let settings = || Settings {
        store: Some(format!("sqlite://{}", path.display())),
        ..Settings::default()
    };
    let server = TestServer::with(settings()).await;
    let mut alice = server.login("alice").await;
    subscribed(&mut alice, "stocks", json!(["AAPL", "MSFT"])).await;
    alice.close().await;
    server.stop().await;

    let server = TestServer::with(settings()).await;
    let mut alice = server.login("alice").await;
    let body = publish(&server, stocks(&[("GOOG", 1), ("MSFT", 2)])).await;
    assert_eq!(body, json!({ "users": 1, "delivered": 1 }));
    assert_eq!(expect_update(&mut alice).await, stocks(&[("MSFT", 2)]));
    alice.expect_silence(QUIET).await;
    server.stop().await;
    remove_sqlite_store(&path);
}

#[tokio::test]
async fn a_publish_right_after_auth_ok_reaches_the_stored_subscriptions() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    subscribed(&mut alice, "stocks", json!(["AAPL"])).await;
    alice.close().await;
    for round in 0..20 {
        wait_until_gone(&server, "alice").await;
        let mut alice = server.login("alice").await;
        let body = publish(&server, stocks(&[("AAPL", round)])).await;
        assert_eq!(
            body,
            json!({ "users": 1, "delivered": 1 }),
            "round {round}: alice had her auth_ok"
        );
        assert_eq!(expect_update(&mut alice).await, stocks(&[("AAPL", round)]));
        alice.close().await;
    }
}

#[tokio::test]
async fn subscribing_again_replaces_the_keys() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    subscribed(&mut alice, "stocks", json!(["AAPL"])).await;
    let data = subscribed(&mut alice, "stocks", json!(["GOOG"])).await;
    assert_eq!(data, json!({ "topic": "stocks", "keys": ["GOOG"] }));

    publish(&server, stocks(&[("AAPL", 1), ("GOOG", 2)])).await;
    assert_eq!(expect_update(&mut alice).await, stocks(&[("GOOG", 2)]));
    alice.expect_silence(QUIET).await;
}

#[tokio::test]
async fn unsubscribe_stops_delivery_of_that_topic_only() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    subscribed(&mut alice, "stocks", json!(["AAPL"])).await;
    subscribed(&mut alice, "crypto", json!(["BTC"])).await;

    assert_eq!(
        unsubscribed(&mut alice, "stocks").await,
        json!({ "topic": "stocks", "removed": true })
    );
    let body = publish(&server, stocks(&[("AAPL", 1)])).await;
    assert_eq!(body, json!({ "users": 0, "delivered": 0 }));
    alice.expect_silence(QUIET).await;
    assert_eq!(
        unsubscribed(&mut alice, "stocks").await,
        json!({ "topic": "stocks", "removed": false })
    );

    let (status, body) = server
        .post(
            "/api/publish",
            json!({ "topic": "crypto", "type": "price", "items": [{ "key": "BTC", "usd": 1 }] }),
        )
        .await;
    assert_eq!((status, body), (200, json!({ "users": 1, "delivered": 1 })));
    let message = next(&mut alice).await;
    assert_eq!(message["type"], "price", "{message}");
    assert_eq!(message["data"], json!([{ "key": "BTC", "usd": 1 }]));
}

#[tokio::test]
async fn bad_publish_bodies_get_400_and_deliver_nothing() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    subscribed(&mut alice, "stocks", json!(["AAPL"])).await;
    let aapl = json!([{ "key": "AAPL" }]);
    let cases = [
        (
            "item without key",
            json!({ "topic": "stocks", "type": "t", "items": [{ "key": "AAPL" }, { "price": 1 }] }),
        ),
        (
            "numeric key",
            json!({ "topic": "stocks", "type": "t", "items": [{ "key": "AAPL" }, { "key": 5 }] }),
        ),
        (
            "null key",
            json!({ "topic": "stocks", "type": "t", "items": [{ "key": null }] }),
        ),
        (
            "item not an object",
            json!({ "topic": "stocks", "type": "t", "items": ["AAPL"] }),
        ),
        (
            "item an array holding a key",
            json!({ "topic": "stocks", "type": "t", "items": [["AAPL"]] }),
        ),
        (
            "items not an array",
            json!({ "topic": "stocks", "type": "t", "items": { "key": "AAPL" } }),
        ),
        (
            "empty topic",
            json!({ "topic": "", "type": "t", "items": aapl }),
        ),
        ("missing topic", json!({ "type": "t", "items": aapl })),
        ("missing type", json!({ "topic": "stocks", "items": aapl })),
        (
            "empty type",
            json!({ "topic": "stocks", "type": "", "items": aapl }),
        ),
        ("missing items", json!({ "topic": "stocks", "type": "t" })),
    ];
    for (case, body) in cases {
        let (status, answer) = server.post("/api/publish", body).await;
        assert_eq!(status, 400, "{case}: {answer}");
        assert_eq!(answer["error"]["code"], "bad_request", "{case}: {answer}");
    }
    let (status, _) = response(
        server
            .http(Method::POST, "/api/publish")
            .json(&json!({ "topic": "stocks", "type": "t", "items": aapl }))
            .send()
            .await,
    )
    .await;
    assert_eq!(status, 401, "publishing needs the API key");
    alice.expect_silence(QUIET).await;
}

#[tokio::test]
async fn bad_subscriptions_are_bad_request_and_keep_the_old_keys() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    subscribed(&mut alice, "stocks", json!(["AAPL"])).await;
    let cases = [
        ("empty keys", json!("stocks"), json!([])),
        ("numeric key", json!("stocks"), json!(["GOOG", 1])),
        ("null key", json!("stocks"), json!([null])),
        ("empty key", json!("stocks"), json!(["GOOG", ""])),
        ("keys not an array", json!("stocks"), json!("GOOG")),
        ("missing keys", json!("stocks"), Value::Null),
        ("empty topic", json!(""), json!(["GOOG"])),
        ("numeric topic", json!(5), json!(["GOOG"])),
    ];
    for (case, topic, keys) in cases {
        let missing = keys.is_null();
        let mut message = json!({ "type": "subscribe", "topic": topic, "keys": keys });
        if missing {
            message.as_object_mut().expect("object").remove("keys");
        }
        let answer = alice.request(message, json!(case)).await;
        assert_eq!(answer["type"], "error", "{case}: {answer}");
        assert_eq!(answer["code"], "bad_request", "{case}: {answer}");
    }
    let answer = alice
        .request(
            json!({ "type": "unsubscribe", "topic": "" }),
            json!("unsubscribe"),
        )
        .await;
    assert_eq!(answer["code"], "bad_request", "{answer}");

    publish(&server, stocks(&[("AAPL", 1), ("GOOG", 2)])).await;
    assert_eq!(expect_update(&mut alice).await, stocks(&[("AAPL", 1)]));
    alice.expect_silence(QUIET).await;
}
