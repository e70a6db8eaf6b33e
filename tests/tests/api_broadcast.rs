//! `POST /api/broadcast` and `POST /api/send` end to end (CONTRACT §9 with §5): every
//! broadcast target (all, a room, rooms, a client, a user, users, a role) reaches exactly
//! its recipients once, batch broadcasts arrive as `batch_messages`, and a direct send
//! reaches only its client (unknown ids are 404).
//!
//! Every test runs its own server on `127.0.0.1:0`; "nothing else arrived" is checked
//! with `assert_quiet` (see `api_common`).

mod api_common;

use api_common::*;
use roomcast_tests::TestServer;
use serde_json::json;

// ---------------------------------------------------------------------------------------
// Broadcast targets
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn broadcast_to_all_reaches_authenticated_clients_only() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    let mut anonymous = server.connect().await;
    let message = payload("all");
    assert_eq!(
        broadcast(&server, json!({ "all": true }), &message).await,
        2
    );
    gets_once(&mut alice, &message).await;
    gets_once(&mut bob, &message).await;
    assert_quiet(&mut anonymous).await;
    server.stop().await;
}

#[tokio::test]
async fn broadcast_to_a_room_reaches_its_members_only() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    let mut carol = server.login("carol").await;
    alice.join("desk").await;
    bob.join("desk").await;
    alice.expect("user_join").await;
    let message = payload("room");
    assert_eq!(
        broadcast(&server, json!({ "room": "desk" }), &message).await,
        2
    );
    gets_once(&mut alice, &message).await;
    gets_once(&mut bob, &message).await;
    assert_quiet(&mut carol).await;
    // A room nobody is in is no error, just nobody to deliver to.
    assert_eq!(
        broadcast(&server, json!({ "room": "empty" }), &message).await,
        0
    );
    assert_quiet(&mut alice).await;
    server.stop().await;
}

#[tokio::test]
async fn broadcast_to_rooms_reaches_each_client_once() {
    let server = TestServer::start().await;
    let mut both = server.login("both").await;
    let mut only_b = server.login("only-b").await;
    let mut neither = server.login("neither").await;
    both.join("room-a").await;
    both.join("room-b").await;
    only_b.join("room-b").await;
    both.expect("user_join").await;
    let message = payload("rooms");
    let to = json!({ "rooms": ["room-a", "room-b"] });
    assert_eq!(broadcast(&server, to, &message).await, 2);
    gets_once(&mut both, &message).await;
    gets_once(&mut only_b, &message).await;
    assert_quiet(&mut neither).await;
    server.stop().await;
}

#[tokio::test]
async fn broadcast_to_a_client_reaches_that_connection_only() {
    let server = TestServer::start().await;
    let mut first = server.login("sam").await;
    let mut second = server.login("sam").await;
    let message = payload("client");
    let to = json!({ "client": second.client_id });
    assert_eq!(broadcast(&server, to, &message).await, 1);
    gets_once(&mut second, &message).await;
    assert_quiet(&mut first).await;
    server.stop().await;
}

#[tokio::test]
async fn broadcast_to_a_user_reaches_all_its_connections() {
    let server = TestServer::start().await;
    let mut phone = server.login("uma").await;
    let mut laptop = server.login("uma").await;
    let mut other = server.login("vic").await;
    let message = payload("user");
    assert_eq!(
        broadcast(&server, json!({ "user": "uma" }), &message).await,
        2
    );
    gets_once(&mut phone, &message).await;
    gets_once(&mut laptop, &message).await;
    assert_quiet(&mut other).await;
    server.stop().await;
}

#[tokio::test]
async fn broadcast_to_users_reaches_each_of_their_connections_once() {
    let server = TestServer::start().await;
    let mut uma_1 = server.login("uma").await;
    let mut uma_2 = server.login("uma").await;
    let mut vic = server.login("vic").await;
    let mut wes = server.login("wes").await;
    let message = payload("users");
    // A repeated user and one with no connection change nothing.
    let to = json!({ "users": ["uma", "vic", "uma", "ghost"] });
    assert_eq!(broadcast(&server, to, &message).await, 3);
    gets_once(&mut uma_1, &message).await;
    gets_once(&mut uma_2, &message).await;
    gets_once(&mut vic, &message).await;
    assert_quiet(&mut wes).await;
    server.stop().await;
}

#[tokio::test]
async fn broadcast_to_a_role_reaches_users_whose_token_has_it() {
    let server = TestServer::start().await;
    let mut admin = server
        .login_with(json!({ "sub": "ada", "roles": ["admin", "ops"] }))
        .await;
    let mut ops = server
        .login_with(json!({ "sub": "oz", "roles": ["ops"] }))
        .await;
    let mut plain = server.login("pat").await;
    let token = mint(&server, json!({ "userId": "max", "roles": ["admin"] })).await;
    let (mut minted, _) = login_token(&server, &token).await;

    let message = payload("admins");
    assert_eq!(
        broadcast(&server, json!({ "role": "admin" }), &message).await,
        2
    );
    gets_once(&mut admin, &message).await;
    gets_once(&mut minted, &message).await;
    assert_quiet(&mut ops).await;
    assert_quiet(&mut plain).await;

    let message = payload("ops");
    assert_eq!(
        broadcast(&server, json!({ "role": "ops" }), &message).await,
        2
    );
    gets_once(&mut admin, &message).await;
    gets_once(&mut ops, &message).await;
    assert_quiet(&mut minted).await;
    assert_quiet(&mut plain).await;
    server.stop().await;
}

/// `batch` is refused with any target but a room (see the bad bodies); with a room it is
/// accepted and the members get the message inside `batch_messages` (CONTRACT §5, §9).
#[tokio::test]
async fn batch_broadcast_to_a_room_arrives_as_batch_messages() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    alice.join("ticker").await;
    let message = payload("batched");
    let (status, body) = server
        .post(
            "/api/broadcast",
            json!({ "to": { "room": "ticker" }, "message": message, "batch": true }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let batch = alice.expect("batch_messages").await;
    assert_eq!(batch["room"], "ticker");
    assert_eq!(batch["messages"], json!([message]));
    assert_eq!(batch["count"], 1);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Direct sends
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn send_reaches_only_that_client_and_unknown_ids_are_404() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut alice_too = server.login("alice").await;
    let message = payload("direct");
    let (status, body) = server
        .post(
            "/api/send",
            json!({ "clientId": alice.client_id, "message": message }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    gets_once(&mut alice, &message).await;
    assert_quiet(&mut alice_too).await;

    for unknown in ["no-such-client", "not a valid id!"] {
        let answer = server
            .post(
                "/api/send",
                json!({ "clientId": unknown, "message": message }),
            )
            .await;
        assert_error(&answer, 404, "not_found");
    }
    // Once a client is gone, its id is unknown too.
    let gone = alice_too.client_id.clone();
    alice_too.close().await;
    let s = &server;
    eventually("a closed client's id is unknown", || {
        let body = json!({ "clientId": gone, "message": message });
        async move { s.post("/api/send", body).await.0 == 404 }
    })
    .await;
    assert_quiet(&mut alice).await;
    server.stop().await;
}
