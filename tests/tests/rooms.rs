//! Room membership end to end (CONTRACT §3–5, §9): joining and leaving with their presence
//! events (`user_list`, `user_join` and `user_leave`, once per user), a closed connection
//! leaving all its rooms, members added and removed through the HTTP API, a `join` with
//! `since` in a room without history, and room names over the socket and the API. Chat:
//! `rooms_chat.rs`; room options and lifetime: `rooms_options.rs`.

mod rooms_common;

use roomcast_tests::TestServer;
use rooms_common::*;
use serde_json::json;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

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
