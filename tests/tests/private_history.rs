//! Private conversations read back over real sockets (CONTRACT §4 `private_history`): both
//! directions after a reconnect and a restart, in the conversation's order (timestamp,
//! then `to`, then `id`); paging with `before` + `beforeTo`, the `id` and `to` of the
//! oldest message one has (an id alone names no message: each direction is numbered by
//! its recipient); the limit's default and cap; bad input; and that a conversation is
//! only ever its two users'.

use std::collections::HashSet;
use std::time::Duration;

use roomcast_server::Settings;
use roomcast_tests::{Client, TestServer};
use serde_json::{Value, json};

/// How long "nothing else arrives" is watched.
const QUIET: Duration = Duration::from_millis(300);

/// Sends a private message that must be accepted; returns the reply's `data`.
async fn private_ok(sender: &mut Client, to: &str, content: &str) -> Value {
    let reply = sender
        .request(
            json!({ "type": "private", "targetUserId": to, "content": content }),
            json!(format!("send-{content}")),
        )
        .await;
    assert_eq!(reply["type"], "reply", "{reply}");
    reply["data"].clone()
}

/// The answer (`reply` or `error`) to `private_history` with `with` and `fields`.
async fn ask(client: &mut Client, with: Value, fields: Value) -> Value {
    let mut message = json!({ "type": "private_history", "userId": with });
    if let (Value::Object(message), Value::Object(fields)) = (&mut message, fields) {
        message.extend(fields);
    }
    client.request(message, json!("history")).await
}

/// The items of a `private_history` that must succeed.
async fn history(client: &mut Client, with: &str, fields: Value) -> Vec<Value> {
    let answer = ask(client, json!(with), fields).await;
    assert_eq!(answer["type"], "reply", "{answer}");
    answer["data"]["items"].as_array().expect("items").clone()
}

fn contents(items: &[Value]) -> Vec<&str> {
    items
        .iter()
        .map(|m| m["message"].as_str().unwrap_or_default())
        .collect()
}

/// The conversation's order, as a client computes it from the messages: timestamp, then
/// `to`, then `id`.
fn assert_in_order(items: &[Value]) {
    let key = |m: &Value| {
        (
            m["timestamp"].as_u64().expect("timestamp"),
            m["to"].as_str().expect("to").to_owned(),
            m["id"].as_str().expect("id").to_owned(),
        )
    };
    for pair in items.windows(2) {
        assert!(
            key(&pair[0]) < key(&pair[1]),
            "{} then {}",
            pair[0],
            pair[1]
        );
    }
}

/// Alternately alice to bob and bob to alice, `count` messages `m0`, `m1`, ...; both
/// online, so each also reaches the other (read off here). A pause between sends makes
/// every timestamp distinct, so the order is the sending order.
async fn exchange(alice: &mut Client, bob: &mut Client, count: usize, pause: bool) -> Vec<Value> {
    let mut sent = Vec::new();
    for i in 0..count {
        let text = format!("m{i}");
        let (from, to, name) = if i % 2 == 0 {
            (&mut *alice, &mut *bob, "bob")
        } else {
            (&mut *bob, &mut *alice, "alice")
        };
        sent.push(private_ok(from, name, &text).await);
        assert_eq!(to.expect("private").await["message"], text);
        if pause {
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    }
    sent
}

#[tokio::test]
async fn both_directions_come_back_in_order_after_a_reconnect() {
    let server = TestServer::start().await;
    let mut alice = server
        .login_with(json!({ "sub": "alice", "name": "Alice" }))
        .await;
    let mut bob = server.login("bob").await;
    let sent = exchange(&mut alice, &mut bob, 4, true).await;
    alice.close().await;
    bob.close().await;

    let mut alice = server.login("alice").await;
    let items = history(&mut alice, "bob", json!({})).await;
    assert_eq!(contents(&items), ["m0", "m1", "m2", "m3"]);
    for (item, sent) in items.iter().zip(&sent) {
        assert_eq!(item["type"], "private", "{item}");
        assert_eq!(item["id"], sent["id"], "{item}");
        assert_eq!(item["to"], sent["targetUserId"], "{item}");
        assert_eq!(item["timestamp"], sent["timestamp"], "{item}");
    }
    assert_eq!(
        items[0]["from"],
        json!({ "userId": "alice", "name": "Alice" }),
        "the sender as its token said"
    );
    assert_eq!(items[1]["from"], json!({ "userId": "bob" }));
    // Both directions start their ids at 1: the same id, two messages.
    assert_eq!(items[0]["id"], items[1]["id"]);

    // Bob was away for the next one: it arrives pending, and is in the history too.
    let late = private_ok(&mut alice, "bob", "late").await;
    assert_eq!(late["delivered"], false, "{late}");
    let mut bob = server.login("bob").await;
    assert_eq!(bob.expect("private").await["message"], "late");
    let seen = history(&mut bob, "alice", json!({})).await;
    assert_eq!(contents(&seen), ["m0", "m1", "m2", "m3", "late"]);
    assert_eq!(
        seen[..4],
        items[..],
        "one conversation, whichever side reads it"
    );
    bob.expect_silence(QUIET).await;
}

#[tokio::test]
async fn a_conversation_survives_a_restart() {
    let path = std::env::temp_dir().join(format!(
        "roomcast-private-history-{}-{}.db",
        std::process::id(),
        roomcast_server::now_ms()
    ));
    let settings = || Settings {
        store: Some(format!("sqlite://{}", path.display())),
        ..Settings::default()
    };
    let server = TestServer::with(settings()).await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    exchange(&mut alice, &mut bob, 3, true).await;
    alice.close().await;
    bob.close().await;
    server.stop().await;

    let server = TestServer::with(settings()).await;
    let mut bob = server.login("bob").await;
    let items = history(&mut bob, "alice", json!({})).await;
    assert_eq!(contents(&items), ["m0", "m1", "m2"]);
    bob.close().await;
    server.stop().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

#[tokio::test]
async fn before_and_before_to_page_back_to_the_start_each_message_once() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    // No pauses: messages of both directions share milliseconds, and their ids collide.
    exchange(&mut alice, &mut bob, 11, false).await;
    let all = history(&mut alice, "bob", json!({})).await;
    assert_eq!(all.len(), 11);
    assert_in_order(&all);
    let ids: HashSet<&str> = all.iter().filter_map(|m| m["id"].as_str()).collect();
    assert!(
        ids.len() < all.len(),
        "some id is in both directions: {all:?}"
    );

    for (reader, with) in [(&mut alice, "bob"), (&mut bob, "alice")] {
        let mut pages = Vec::new();
        let mut fields = json!({ "limit": 3 });
        loop {
            let page = history(reader, with, fields.clone()).await;
            let Some(oldest) = page.first() else { break };
            fields = json!({ "limit": 3, "before": oldest["id"], "beforeTo": oldest["to"] });
            pages.push(page);
        }
        assert_eq!(
            pages.iter().map(Vec::len).collect::<Vec<_>>(),
            [3, 3, 3, 2],
            "full pages, then the rest, then an empty one"
        );
        let read: Vec<Value> = pages.into_iter().rev().flatten().collect();
        assert_eq!(read, all, "paging from {with}'s side");
    }
}

#[tokio::test]
async fn the_limit_defaults_to_50_counts_0_as_1_and_stops_at_500() {
    let server = TestServer::with(Settings {
        rate_limit_per_sec: Some(100_000),
        rate_limit_burst: Some(100_000),
        ..Settings::default()
    })
    .await;
    let mut alice = server.login("alice").await;
    // Bob is offline: the messages wait for him, and alice's connection has only replies.
    for i in 0..505 {
        private_ok(&mut alice, "bob", &format!("m{i}")).await;
    }
    let newest =
        |count: usize| -> Vec<String> { (505 - count..505).map(|i| format!("m{i}")).collect() };
    let items = history(&mut alice, "bob", json!({})).await;
    assert_eq!(contents(&items), newest(50), "50 by default, the newest");
    for (limit, count) in [(500, 500), (501, 500), (10_000, 500), (0, 1), (7, 7)] {
        let items = history(&mut alice, "bob", json!({ "limit": limit })).await;
        assert_eq!(contents(&items), newest(count), "limit {limit}");
    }
}

#[tokio::test]
async fn bad_requests_get_errors_and_change_nothing() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    let mut carol = server.login("carol").await;
    exchange(&mut alice, &mut bob, 2, true).await;
    let from_carol = private_ok(&mut carol, "alice", "carol's").await;
    assert_eq!(alice.expect("private").await["message"], "carol's");
    let before = history(&mut alice, "bob", json!({})).await;
    let known = before[0]["id"].clone();

    let bad_request = [
        (json!({ "type": "private_history" }), "no userId"),
        (
            json!({ "type": "private_history", "userId": "" }),
            "empty userId",
        ),
        (
            json!({ "type": "private_history", "userId": 7 }),
            "numeric userId",
        ),
        (
            json!({ "type": "private_history", "userId": "bob", "limit": -1 }),
            "negative limit",
        ),
        (
            json!({ "type": "private_history", "userId": "bob", "limit": "ten" }),
            "text limit",
        ),
        (
            json!({ "type": "private_history", "userId": "bob", "limit": 1.5 }),
            "fractional limit",
        ),
        (
            json!({ "type": "private_history", "userId": "bob", "before": "not/an/id", "beforeTo": "bob" }),
            "before not an id",
        ),
        (
            json!({ "type": "private_history", "userId": "bob", "before": known }),
            "before alone naming a message in each direction",
        ),
        (
            json!({ "type": "private_history", "userId": "bob", "beforeTo": "bob" }),
            "beforeTo without before",
        ),
        (
            json!({ "type": "private_history", "userId": "bob", "before": known, "beforeTo": "carol" }),
            "beforeTo neither side",
        ),
        (
            json!({ "type": "private_history", "userId": "bob", "before": known, "beforeTo": "" }),
            "beforeTo not a user id",
        ),
    ];
    for (i, (message, case)) in bad_request.into_iter().enumerate() {
        let answer = alice.request(message, json!(i)).await;
        assert_eq!(answer["type"], "error", "{case}: {answer}");
        assert_eq!(answer["code"], "bad_request", "{case}: {answer}");
    }
    // Well-formed, but no message of this conversation: carol's id is one of alice's own
    // sequence, yet not bob's message.
    for (before, to, case) in [
        (json!("00000000000000ff"), "bob", "an id nobody has"),
        (
            from_carol["id"].clone(),
            "alice",
            "a message of another conversation",
        ),
    ] {
        let answer = ask(
            &mut alice,
            json!("bob"),
            json!({ "before": before, "beforeTo": to }),
        )
        .await;
        assert_eq!(answer["code"], "not_found", "{case}: {answer}");
    }
    let mut anonymous = server.connect().await;
    let answer = anonymous
        .request(
            json!({ "type": "private_history", "userId": "bob" }),
            json!("anon"),
        )
        .await;
    assert_eq!(answer["code"], "not_authenticated", "{answer}");

    // Still connected, the conversation as it was, and nobody heard of any of it.
    let pong = alice
        .request(json!({ "type": "ping" }), json!("alive"))
        .await;
    assert_eq!(pong["type"], "pong", "{pong}");
    assert_eq!(history(&mut alice, "bob", json!({})).await, before);
    bob.expect_silence(QUIET).await;
    carol.expect_silence(QUIET).await;
}

#[tokio::test]
async fn the_backend_reads_a_conversation_over_http_and_pages_it_like_a_client() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    exchange(&mut alice, &mut bob, 5, true).await;
    let mine = history(&mut alice, "bob", json!({})).await;
    let (status, body) = server.get("/api/users/alice/private?with=bob").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["items"].as_array(),
        Some(&mine),
        "what alice's client reads"
    );
    // Either side's view is the same conversation.
    let (_, theirs) = server.get("/api/users/bob/private?with=alice").await;
    assert_eq!(theirs["items"], body["items"]);
    // Paging back from the oldest of the newest two, with its `to`.
    let (_, newest) = server
        .get("/api/users/alice/private?with=bob&limit=2")
        .await;
    let newest = newest["items"].as_array().expect("items").clone();
    assert_eq!(contents(&newest), ["m3", "m4"]);
    let path = format!(
        "/api/users/alice/private?with=bob&before={}&beforeTo={}",
        newest[0]["id"].as_str().unwrap(),
        newest[0]["to"].as_str().unwrap()
    );
    let (status, older) = server.get(&path).await;
    assert_eq!(status, 200, "{older}");
    assert_eq!(
        contents(older["items"].as_array().unwrap()),
        ["m0", "m1", "m2"]
    );
    // A cursor without its `to` whose id both directions hold, and one naming nobody.
    let path = format!(
        "/api/users/alice/private?with=bob&before={}",
        newest[0]["id"].as_str().unwrap()
    );
    let (status, body) = server.get(&path).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("bad_request")),
        "{body}"
    );
    let (status, body) = server
        .get("/api/users/alice/private?with=bob&before=00000000000000ff&beforeTo=bob")
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &json!("not_found")),
        "{body}"
    );
    let (status, _) = server.get("/api/users/carol/private?with=bob").await;
    assert_eq!(
        status, 200,
        "a conversation without messages is empty, not an error"
    );
}

#[tokio::test]
async fn before_alone_pages_when_it_names_one_message() {
    // The contract's cursor is `before` alone: it works whenever only one direction of
    // the conversation holds that id.
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    // A pause between sends makes every timestamp distinct, so the order is the sending
    // order.
    for text in ["a0", "a1", "a2", "a3"] {
        private_ok(&mut alice, "bob", text).await;
        bob.expect("private").await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let back = private_ok(&mut bob, "alice", "b0").await;
    alice.expect("private").await;
    let all = history(&mut alice, "bob", json!({})).await;
    assert_eq!(contents(&all), ["a0", "a1", "a2", "a3", "b0"]);
    // a3 is bob's 4th message received; alice has received one: no collision.
    let a3 = &all[3];
    let older = history(&mut bob, "alice", json!({ "before": a3["id"] })).await;
    assert_eq!(contents(&older), ["a0", "a1", "a2"]);
    // b0 is alice's id 1, and bob's id 1 is a0: a collision asks for `beforeTo`.
    let answer = ask(&mut alice, json!("bob"), json!({ "before": back["id"] })).await;
    assert_eq!(answer["code"], "bad_request", "{answer}");
    let (status, body) = server
        .get(&format!(
            "/api/users/alice/private?with=bob&before={}",
            a3["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        contents(body["items"].as_array().unwrap()),
        ["a0", "a1", "a2"]
    );
}

#[tokio::test]
async fn a_conversation_is_only_ever_its_two_users() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    let mut carol = server.login("carol").await;
    exchange(&mut alice, &mut bob, 2, true).await;
    private_ok(&mut carol, "alice", "carol to alice").await;
    alice.expect("private").await;
    private_ok(&mut carol, "bob", "carol to bob").await;
    bob.expect("private").await;
    private_ok(&mut alice, "carol", "alice to carol").await;
    carol.expect("private").await;

    assert_eq!(
        contents(&history(&mut alice, "bob", json!({})).await),
        ["m0", "m1"]
    );
    assert_eq!(
        contents(&history(&mut bob, "alice", json!({})).await),
        ["m0", "m1"]
    );
    assert_eq!(
        contents(&history(&mut alice, "carol", json!({})).await),
        ["carol to alice", "alice to carol"]
    );
    // Carol asks with bob, or alice: she only ever gets her own messages with them.
    assert_eq!(
        contents(&history(&mut carol, "bob", json!({})).await),
        ["carol to bob"]
    );
    assert_eq!(
        contents(&history(&mut carol, "alice", json!({})).await),
        ["carol to alice", "alice to carol"]
    );
    // Nor can she page from a message of theirs, even one whose id she can guess.
    let theirs = &history(&mut alice, "bob", json!({})).await[1];
    let answer = ask(
        &mut carol,
        json!("bob"),
        json!({ "before": theirs["id"], "beforeTo": "alice" }),
    )
    .await;
    assert_eq!(
        answer["code"], "bad_request",
        "alice is not a side: {answer}"
    );
    let answer = ask(
        &mut carol,
        json!("alice"),
        json!({ "before": theirs["id"], "beforeTo": "alice" }),
    )
    .await;
    assert_eq!(
        answer["code"], "not_found",
        "bob's message to alice is not carol's: {answer}"
    );
}
