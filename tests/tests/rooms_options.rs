//! Room lifetime and options end to end (CONTRACT §3–5, §9 `/api/rooms`): rooms created
//! by a join vanish when empty, rooms created through the API stay; `maxClients`, `roles`
//! and `presence` are enforced, and so are the presence limit and the rooms-per-connection
//! limit.

mod rooms_common;

use roomcast_tests::TestServer;
use rooms_common::*;
use serde_json::json;

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
async fn above_the_presence_limit_joins_are_not_announced() {
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
        // The list is capped by ROOMCAST_USER_LIST_LIMIT (100), not the presence limit.
        assert_eq!(user_ids(&list).len(), n, "{list}");
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
