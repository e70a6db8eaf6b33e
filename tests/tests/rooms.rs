//! End-to-end tests of rooms (CONTRACT §3–5, §9): joining and leaving with their presence
//! events, chat fan-out and its limits, room options set through the HTTP API, the
//! presence and rooms-per-connection limits, membership through the API, room names.
//!
//! "Nothing else arrived" is checked with [`assert_quiet`]: a `ping` whose `pong` must be
//! the next message. The server queues deliveries before it answers the request that
//! caused them, so anything an earlier, answered action sent would arrive first.

use std::time::{Duration, Instant};

use roomcast_tests::{Client, TestServer, WAIT};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A `join` message without a request id.
fn join(room: &str) -> Value {
    json!({ "type": "join", "room": room })
}

/// A `leave` message without a request id.
fn leave(room: &str) -> Value {
    json!({ "type": "leave", "room": room })
}

/// A `chat` message without a request id.
fn chat(room: &str, content: Value) -> Value {
    let mut message = json!({ "type": "chat", "room": room });
    message["content"] = content;
    message
}

/// Sends `message` as a request; the answer must be a `reply`. Returns its `data`.
async fn expect_ok(client: &mut Client, message: Value) -> Value {
    let answer = client.request(message, json!("req")).await;
    assert_eq!(answer["type"], "reply", "{answer}");
    assert_eq!(answer["ok"], true, "{answer}");
    answer["data"].clone()
}

/// Sends `message` as a request; the very next message must be an `error` with `code`
/// (so a refused join cannot slip out a `user_list` first).
async fn expect_error(client: &mut Client, mut message: Value, code: &str) {
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
async fn say(client: &mut Client, room: &str, content: Value) -> Value {
    expect_ok(client, chat(room, content)).await
}

/// Nothing is queued for `client`: a `ping` gets its `pong` as the very next message.
async fn assert_quiet(client: &mut Client) {
    client.send(json!({ "type": "ping", "id": "quiet" })).await;
    let next = client.recv().await;
    assert!(
        next["type"] == "pong" && next["id"] == "quiet",
        "expected nothing before the pong, got {next}"
    );
}

/// The user ids of a `user_list`, sorted.
fn user_ids(list: &Value) -> Vec<String> {
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
fn keys(value: &Value) -> Vec<&str> {
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
fn assert_recent(timestamp: &Value) {
    let ms = timestamp
        .as_u64()
        .unwrap_or_else(|| panic!("integer ms: {timestamp}"));
    assert!(roomcast_server::now_ms().abs_diff(ms) < 60_000, "{ms}");
}

/// The next message must be `kind` (`user_join`/`user_leave`) about `user` in `room`.
async fn expect_presence(client: &mut Client, kind: &str, room: &str, user: &str) {
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

/// Percent-encodes one path segment (everything but unreserved ASCII).
fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `/api/rooms/{room}` with the name percent-encoded.
fn room_path(room: &str) -> String {
    format!("/api/rooms/{}", encode(room))
}

/// `/api/rooms/{room}/members/{client}`.
fn member_path(room: &str, client: &str) -> String {
    format!("{}/members/{}", room_path(room), encode(client))
}

/// The names `GET /api/rooms` lists.
async fn room_names(server: &TestServer) -> Vec<String> {
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
async fn eventually(server: &TestServer, path: &str, status: u16) -> Value {
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
fn assert_api_error(status: u16, body: &Value, want_status: u16, code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
}

/// Creates a room through the API; it must be new.
async fn create_room(server: &TestServer, body: Value) -> Value {
    let (status, info) = server.post("/api/rooms", body).await;
    assert_eq!(status, 201, "{info}");
    info
}

// ---------------------------------------------------------------------------------------
// Join and leave
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn join_sends_user_list_then_reply_and_user_join_to_the_others() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;

    alice
        .send(json!({ "type": "join", "room": "lobby", "id": "j1" }))
        .await;
    let list = alice.expect("user_list").await;
    assert_eq!(
        keys(&list),
        ["count", "room", "timestamp", "type", "users"],
        "{list}"
    );
    assert_eq!(list["room"], "lobby");
    assert_eq!(list["users"], json!([{ "userId": "alice" }]));
    assert_eq!(list["count"], 1);
    assert_recent(&list["timestamp"]);
    let reply = alice.expect("reply").await;
    assert_eq!(
        reply,
        json!({ "type": "reply", "id": "j1", "ok": true,
                "data": { "room": "lobby", "recovered": false, "replayed": 0 } })
    );

    let list = bob.join("lobby").await;
    assert_eq!(user_ids(&list), ["alice", "bob"]);
    assert_eq!(list["count"], 2);
    expect_presence(&mut alice, "user_join", "lobby", "bob").await;
    assert_quiet(&mut alice).await;
    // The joiner is not told about itself.
    assert_quiet(&mut bob).await;
}

#[tokio::test]
async fn join_without_an_id_gets_no_reply() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    alice.send(join("lobby")).await;
    let list = alice.expect("user_list").await;
    assert_eq!(list["room"], "lobby");
    assert_quiet(&mut alice).await;
}

#[tokio::test]
async fn a_second_connection_of_a_user_is_announced_once_and_listed_once() {
    let server = TestServer::start().await;
    let mut bob = server.login("bob").await;
    let mut alice1 = server.login("alice").await;
    let mut alice2 = server.login("alice").await;
    bob.join("lobby").await;
    alice1.join("lobby").await;
    expect_presence(&mut bob, "user_join", "lobby", "alice").await;

    let list = alice2.join("lobby").await;
    assert_eq!(user_ids(&list), ["alice", "bob"], "{list}");
    assert_eq!(list["count"], 2, "count counts distinct users: {list}");
    assert_quiet(&mut bob).await;
    assert_quiet(&mut alice1).await;

    let (status, info) = server.get("/api/rooms/lobby").await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["connections"], 3, "{info}");
    assert_eq!(info["users"], 2, "{info}");
}

#[tokio::test]
async fn user_leave_is_sent_when_the_last_connection_of_the_user_leaves() {
    let server = TestServer::start().await;
    let mut bob = server.login("bob").await;
    let mut alice1 = server.login("alice").await;
    let mut alice2 = server.login("alice").await;
    bob.join("lobby").await;
    alice1.join("lobby").await;
    alice2.join("lobby").await;
    expect_presence(&mut bob, "user_join", "lobby", "alice").await;

    assert_eq!(
        expect_ok(&mut alice1, leave("lobby")).await,
        json!({ "room": "lobby" })
    );
    assert_quiet(&mut bob).await;
    // The remaining connection is still a member: its chat reaches bob.
    say(&mut alice2, "lobby", json!("still here")).await;
    assert_eq!(bob.expect("chat").await["message"], "still here");

    expect_ok(&mut alice2, leave("lobby")).await;
    expect_presence(&mut bob, "user_leave", "lobby", "alice").await;
    assert_quiet(&mut bob).await;
}

#[tokio::test]
async fn leaving_a_room_one_is_not_in_is_not_member() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    expect_error(&mut alice, leave("nowhere"), "not_member").await;
    bob.join("lobby").await;
    expect_error(&mut alice, leave("lobby"), "not_member").await;
    alice.join("lobby").await;
    expect_ok(&mut alice, leave("lobby")).await;
    expect_error(&mut alice, leave("lobby"), "not_member").await;
}

#[tokio::test]
async fn closing_a_connection_leaves_all_its_rooms() {
    let server = TestServer::start().await;
    let mut bob = server.login("bob").await;
    let mut alice1 = server.login("alice").await;
    let mut alice2 = server.login("alice").await;
    for room in ["one", "two", "three"] {
        bob.join(room).await;
        alice2.join(room).await;
        expect_presence(&mut bob, "user_join", room, "alice").await;
    }
    // alice keeps another connection in "one", so only "two" and "three" lose her.
    alice1.join("one").await;
    let gone = alice2.client_id.clone();
    alice2.close().await;

    let mut left = Vec::new();
    for _ in 0..2 {
        let event = bob.expect("user_leave").await;
        assert_eq!(event["user"], json!({ "userId": "alice" }), "{event}");
        left.push(event["room"].as_str().expect("room").to_owned());
    }
    left.sort();
    assert_eq!(left, ["three", "two"]);
    eventually(&server, &format!("/api/connections/{gone}"), 404).await;
    assert_quiet(&mut bob).await;
    let (_, info) = server.get("/api/rooms/one").await;
    assert_eq!(info["connections"], 2, "{info}");
}

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

// ---------------------------------------------------------------------------------------
// Room lifetime and options (HTTP API)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn rooms_created_by_a_join_vanish_when_empty() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.join("pop-up").await;
    assert!(room_names(&server).await.contains(&"pop-up".to_owned()));
    let (status, info) = server.get("/api/rooms/pop-up").await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["connections"], 1, "{info}");

    expect_ok(&mut alice, leave("pop-up")).await;
    let (status, body) = server.get("/api/rooms/pop-up").await;
    assert_api_error(status, &body, 404, "not_found");
    assert!(!room_names(&server).await.contains(&"pop-up".to_owned()));

    // The same when the last member goes away by closing.
    bob.join("flash").await;
    bob.close().await;
    eventually(&server, "/api/rooms/flash", 404).await;
    assert!(!room_names(&server).await.contains(&"flash".to_owned()));
}

#[tokio::test]
async fn rooms_created_through_the_api_stay_when_empty() {
    let server = TestServer::start().await;
    let info = create_room(&server, json!({ "name": "kept" })).await;
    assert_eq!(info["name"], "kept", "{info}");
    assert_eq!(info["connections"], 0, "{info}");
    let mut alice = server.login("alice").await;
    alice.join("kept").await;
    expect_ok(&mut alice, leave("kept")).await;
    let (status, info) = server.get("/api/rooms/kept").await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["connections"], 0, "{info}");
    assert!(room_names(&server).await.contains(&"kept".to_owned()));
}

#[tokio::test]
async fn max_clients_refuses_the_connection_over_it() {
    let server = TestServer::start().await;
    create_room(&server, json!({ "name": "duo", "maxClients": 2 })).await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    let mut carol = server.login("carol").await;
    alice.join("duo").await;
    bob.join("duo").await;
    alice.expect("user_join").await;
    expect_error(&mut carol, join("duo"), "room_full").await;
    assert_quiet(&mut alice).await;
    expect_error(&mut carol, chat("duo", json!("hi")), "not_member").await;

    // A freed place can be taken.
    expect_ok(&mut bob, leave("duo")).await;
    carol.join("duo").await;
}

#[tokio::test]
async fn room_roles_restrict_who_may_join() {
    let server = TestServer::start().await;
    create_room(&server, json!({ "name": "staff", "roles": ["admin"] })).await;
    let mut bob = server.login("bob").await;
    let mut user = server
        .login_with(json!({ "sub": "uma", "roles": ["user"] }))
        .await;
    let mut root = server
        .login_with(json!({ "sub": "root", "roles": ["admin"] }))
        .await;
    expect_error(&mut bob, join("staff"), "forbidden").await;
    expect_error(&mut user, join("staff"), "forbidden").await;
    let list = root.join("staff").await;
    assert_eq!(
        list["users"],
        json!([{ "userId": "root", "roles": ["admin"] }])
    );
    expect_error(&mut bob, chat("staff", json!("hi")), "not_member").await;
}

#[tokio::test]
async fn rooms_without_presence_send_no_join_or_leave() {
    let server = TestServer::start().await;
    create_room(&server, json!({ "name": "quiet", "presence": false })).await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.join("quiet").await;
    let list = bob.join("quiet").await;
    assert_eq!(user_ids(&list), ["alice", "bob"], "user_list is still sent");
    assert_eq!(list["count"], 2);
    assert_quiet(&mut alice).await;
    expect_ok(&mut bob, leave("quiet")).await;
    assert_quiet(&mut alice).await;
    bob.join("quiet").await;
    let gone = bob.client_id.clone();
    bob.close().await;
    eventually(&server, &format!("/api/connections/{gone}"), 404).await;
    assert_quiet(&mut alice).await;
}

#[tokio::test]
async fn above_the_presence_limit_joins_are_not_announced_and_user_list_is_capped() {
    let server = TestServer::with(roomcast_server::Settings {
        presence_limit: Some(2),
        ..roomcast_server::Settings::default()
    })
    .await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.join("big").await;
    bob.join("big").await;
    expect_presence(&mut alice, "user_join", "big", "bob").await;

    let mut late_ones = Vec::new();
    for (n, name) in [(3, "carol"), (4, "dave")] {
        let mut late = server.login(name).await;
        let list = late.join("big").await;
        assert_eq!(list["count"], n, "the true count: {list}");
        // CONTRACT §5: "the first members up to the limit", i.e. the earliest joiners.
        assert_eq!(user_ids(&list), ["alice", "bob"], "{list}");
        assert_quiet(&mut alice).await;
        assert_quiet(&mut bob).await;
        // Keep the member until the end of the test.
        late_ones.push(late);
    }
}

#[tokio::test]
async fn rooms_per_connection_are_limited_and_rejoining_does_not_count() {
    let server = TestServer::with(roomcast_server::Settings {
        max_rooms_per_connection: Some(2),
        ..roomcast_server::Settings::default()
    })
    .await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    bob.join("a").await;
    alice.join("a").await;
    expect_presence(&mut bob, "user_join", "a", "alice").await;

    let again = alice.join("a").await;
    assert_eq!(again["count"], 2, "{again}");
    assert_quiet(&mut bob).await;
    alice.join("b").await;
    expect_error(&mut alice, join("c"), "limit_exceeded").await;
    say(&mut alice, "a", json!("in a")).await;
    say(&mut alice, "b", json!("in b")).await;
    assert_eq!(bob.expect("chat").await["message"], "in a");
    expect_error(&mut alice, chat("c", json!("in c")), "not_member").await;

    // Leaving frees a place.
    expect_ok(&mut alice, leave("b")).await;
    alice.join("c").await;
}

// ---------------------------------------------------------------------------------------
// Membership through the HTTP API
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_api_adds_and_removes_members() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.join("lobby").await;

    let path = member_path("lobby", &bob.client_id);
    let (status, body) = server.post(&path, json!({})).await;
    assert_eq!(status, 200, "{body}");
    let list = bob.expect("user_list").await;
    assert_eq!(list["room"], "lobby");
    assert_eq!(user_ids(&list), ["alice", "bob"]);
    expect_presence(&mut alice, "user_join", "lobby", "bob").await;
    say(&mut bob, "lobby", json!("added")).await;
    assert_eq!(alice.expect("chat").await["message"], "added");

    let (status, body) = server.delete(&path).await;
    assert_eq!(status, 200, "{body}");
    expect_presence(&mut alice, "user_leave", "lobby", "bob").await;
    // Bob did not ask to leave, so he is told (as Centrifugo pushes `unsubscribe`).
    expect_presence(&mut bob, "user_leave", "lobby", "bob").await;
    expect_error(&mut bob, chat("lobby", json!("still?")), "not_member").await;
    let (_, info) = server.get("/api/rooms/lobby").await;
    assert_eq!(info["connections"], 1, "{info}");
}

#[tokio::test]
async fn the_api_refuses_unknown_clients_and_non_members() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let bob = server.login("bob").await;
    alice.join("lobby").await;

    let unknown = member_path("lobby", "no-such-client");
    let (status, body) = server.post(&unknown, json!({})).await;
    assert_api_error(status, &body, 404, "not_found");
    let (status, body) = server.delete(&unknown).await;
    assert_api_error(status, &body, 404, "not_found");

    let (status, body) = server.delete(&member_path("lobby", &bob.client_id)).await;
    assert_api_error(status, &body, 409, "not_member");
    assert_quiet(&mut alice).await;
}

#[tokio::test]
async fn deleting_a_room_removes_its_members() {
    let server = TestServer::start().await;
    create_room(&server, json!({ "name": "doomed" })).await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.join("doomed").await;
    bob.join("doomed").await;

    let (status, info) = server.get("/api/rooms/doomed").await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["name"], "doomed");
    let mut clients: Vec<(String, String)> = info["clients"]
        .as_array()
        .unwrap_or_else(|| panic!("clients: {info}"))
        .iter()
        .map(|c| {
            let id = c["clientId"].as_str().expect("clientId").to_owned();
            let user = c["user"]["userId"].as_str().expect("userId").to_owned();
            (user, id)
        })
        .collect();
    clients.sort();
    assert_eq!(
        clients,
        [
            ("alice".to_owned(), alice.client_id.clone()),
            ("bob".to_owned(), bob.client_id.clone())
        ]
    );

    let (status, body) = server.delete("/api/rooms/doomed").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.get("/api/rooms/doomed").await;
    assert_api_error(status, &body, 404, "not_found");
    // Members may see each other leave as the room empties, so skip to the answers.
    for client in [&mut alice, &mut bob] {
        let answer = client
            .request(chat("doomed", json!("hello?")), json!(1))
            .await;
        assert_eq!(answer["code"], "not_member", "{answer}");
    }
    let (status, body) = server.delete("/api/rooms/doomed").await;
    assert_api_error(status, &body, 404, "not_found");
}

// ---------------------------------------------------------------------------------------
// Recovery and names
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn join_with_since_in_a_room_without_history_recovers_nothing_missing() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    alice
        .send(json!({ "type": "join", "room": "lobby", "since": "0000000000000000", "id": "s" }))
        .await;
    alice.expect("user_list").await;
    let reply = alice.expect("reply").await;
    assert_eq!(
        reply["data"],
        json!({ "room": "lobby", "recovered": true, "replayed": 0 })
    );
}

#[tokio::test]
async fn room_names_must_be_1_to_128_bytes() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let too_long = "a".repeat(129);
    // 65 characters but 130 bytes: the limit is in bytes.
    let too_many_bytes = "é".repeat(65);
    for bad in ["", too_long.as_str(), too_many_bytes.as_str()] {
        expect_error(&mut alice, join(bad), "bad_request").await;
        expect_error(&mut alice, leave(bad), "bad_request").await;
        expect_error(&mut alice, chat(bad, json!("x")), "bad_request").await;
    }
    // (Not `Client::join`: its request id embeds the name and would be too long.)
    let longest = "a".repeat(128);
    alice.send(join(&longest)).await;
    assert_eq!(alice.expect("user_list").await["room"], longest.as_str());
    let (status, body) = server.post("/api/rooms", json!({ "name": too_long })).await;
    assert_api_error(status, &body, 400, "bad_request");
}

#[tokio::test]
async fn unicode_room_names_work_over_the_socket_and_the_api() {
    let server = TestServer::start().await;
    let room = "café ☕ 会議室/1";
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    let list = alice.join(room).await;
    assert_eq!(list["room"], room);

    let (status, info) = server.get(&room_path(room)).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["name"], room);
    assert!(room_names(&server).await.contains(&room.to_owned()));

    let (status, body) = server
        .post(&member_path(room, &bob.client_id), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(bob.expect("user_list").await["room"], room);
    expect_presence(&mut alice, "user_join", room, "bob").await;
    say(&mut bob, room, json!("ça va?")).await;
    let got = alice.expect("chat").await;
    assert_eq!(got["room"], room);

    let other = "комната";
    let info = create_room(&server, json!({ "name": other })).await;
    assert_eq!(info["name"], other);
    let (status, body) = server.delete(&room_path(other)).await;
    assert_eq!(status, 200, "{body}");
}
