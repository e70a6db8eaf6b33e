//! Chat in rooms end to end (CONTRACT §4 `chat`, §5 `chat`): a chat reaches every member
//! with the sender from the token (never from the client), its content may be any JSON
//! up to the (configurable) size limit, a non-member's chat reaches nobody, and chat ids
//! sort as strings in send order.

mod rooms_common;

use roomcast_tests::TestServer;
use rooms_common::*;
use serde_json::json;

// ---------------------------------------------------------------------------------------
// Chat
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn chat_reaches_every_member_with_the_sender_from_the_token() {
    let server = TestServer::start().await;
    let mut alice = server
        .login_with(json!({
            "sub": "alice", "name": "Alice", "roles": ["mod"],
            "info": { "avatar": "a.png", "level": 3 }
        }))
        .await;
    let mut bob = server.login("bob").await;
    let mut carol = server.login("carol").await;
    alice.join("lobby").await;
    bob.join("lobby").await;
    alice.expect("user_join").await;

    alice
        .send(json!({ "type": "chat", "room": "lobby", "content": "hello", "id": 7 }))
        .await;
    let own = alice.expect("chat").await;
    assert_eq!(
        keys(&own),
        ["from", "id", "message", "room", "timestamp", "type"],
        "{own}"
    );
    assert!(own["id"].is_string(), "{own}");
    assert_eq!(own["room"], "lobby");
    assert_eq!(own["message"], "hello");
    assert_eq!(
        own["from"],
        json!({ "userId": "alice", "name": "Alice", "roles": ["mod"], "avatar": "a.png", "level": 3 })
    );
    assert_recent(&own["timestamp"]);
    let reply = alice.expect("reply").await;
    assert_eq!(reply["id"], 7, "{reply}");
    assert_eq!(reply["data"]["id"], own["id"], "{reply}");

    assert_eq!(
        bob.expect("chat").await,
        own,
        "every member gets the same chat"
    );
    assert_quiet(&mut carol).await;
}

#[tokio::test]
async fn chat_content_may_be_any_json() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.join("lobby").await;
    bob.join("lobby").await;
    for content in [
        json!("plain text ✓"),
        json!({ "text": "hi", "attachments": [{ "url": "x", "size": 3 }], "nested": { "ok": true } }),
        json!([1, "two", null]),
        json!(42.5),
    ] {
        say(&mut alice, "lobby", content.clone()).await;
        assert_eq!(bob.expect("chat").await["message"], content);
    }
}

#[tokio::test]
async fn a_from_field_sent_by_the_client_is_ignored() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.join("lobby").await;
    bob.join("lobby").await;
    let forged = json!({
        "type": "chat", "room": "lobby", "content": "trust me",
        "from": { "userId": "admin", "name": "Root", "roles": ["admin"] },
        "userId": "admin"
    });
    expect_ok(&mut alice, forged).await;
    let got = bob.expect("chat").await;
    assert_eq!(got["from"], json!({ "userId": "alice" }), "{got}");
}

#[tokio::test]
async fn chat_from_a_non_member_is_not_member_and_reaches_nobody() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut carol = server.login("carol").await;
    alice.join("lobby").await;
    expect_error(&mut carol, chat("lobby", json!("let me in")), "not_member").await;
    expect_error(&mut carol, chat("nowhere", json!("anyone?")), "not_member").await;
    assert_quiet(&mut alice).await;
}

#[tokio::test]
async fn content_over_the_default_4_kib_is_too_large_and_reaches_nobody() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.join("lobby").await;
    bob.join("lobby").await;
    alice.expect("user_join").await;
    // A string counts its UTF-8 bytes, not the quotes the wire adds (issue 10): 4,096
    // bytes is exactly the limit, one more is over it.
    let over = json!("x".repeat(4097));
    expect_error(&mut alice, chat("lobby", over), "too_large").await;
    expect_error(
        &mut alice,
        chat("lobby", json!("y".repeat(10_000))),
        "too_large",
    )
    .await;
    assert_quiet(&mut bob).await;
    let exact = json!("z".repeat(4096));
    say(&mut alice, "lobby", exact.clone()).await;
    assert_eq!(bob.expect("chat").await["message"], exact);
    // Multi-byte characters count their bytes: 1,366 three-byte characters are 4,098.
    expect_error(
        &mut alice,
        chat("lobby", json!("€".repeat(1366))),
        "too_large",
    )
    .await;
    let exact_utf8 = json!(format!("{}{}", "€".repeat(1365), "a"));
    say(&mut alice, "lobby", exact_utf8.clone()).await;
    assert_eq!(bob.expect("chat").await["message"], exact_utf8);
}

#[tokio::test]
async fn content_limit_is_configurable_and_counts_json_bytes() {
    let server = TestServer::with(roomcast_server::Settings {
        max_content_bytes: Some(64),
        ..roomcast_server::Settings::default()
    })
    .await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.join("lobby").await;
    bob.join("lobby").await;
    alice.expect("user_join").await;
    let big = json!({ "text": "a".repeat(40), "more": "b".repeat(20) });
    expect_error(&mut alice, chat("lobby", big), "too_large").await;
    assert_quiet(&mut bob).await;
    let small = json!({ "text": "fits" });
    say(&mut alice, "lobby", small.clone()).await;
    assert_eq!(bob.expect("chat").await["message"], small);
}

#[tokio::test]
async fn chat_ids_sort_as_strings_in_send_order() {
    const COUNT: usize = 50;
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.join("lobby").await;
    bob.join("lobby").await;
    for i in 0..COUNT {
        alice
            .send(json!({ "type": "chat", "room": "lobby", "content": i, "id": i }))
            .await;
    }
    alice.expect("user_join").await;
    let mut replied = Vec::new();
    for i in 0..COUNT {
        // The sender's own copy and the reply, in either order, and nothing else.
        let (first, second) = (alice.recv().await, alice.recv().await);
        let (own, reply) = if first["type"] == "chat" {
            (first, second)
        } else {
            (second, first)
        };
        assert_eq!(
            (&own["type"], &reply["type"]),
            (&json!("chat"), &json!("reply"))
        );
        assert_eq!((&own["message"], &reply["id"]), (&json!(i), &json!(i)));
        assert_eq!(own["id"], reply["data"]["id"], "{reply}");
        replied.push(reply["data"]["id"].as_str().expect("id").to_owned());
    }
    let mut seen = Vec::new();
    for i in 0..COUNT {
        let got = bob.expect("chat").await;
        assert_eq!(got["message"], i, "delivered in send order");
        seen.push(got["id"].as_str().expect("id").to_owned());
    }
    assert_eq!(seen, replied);
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "ids must strictly increase as strings: {seen:?}"
    );
}
