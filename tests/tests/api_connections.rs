//! The connections API end to end (CONTRACT §9 with §8): listing every socket and the
//! active (authenticated) ones, closing one or all of them with 4000, and a connection's
//! data round-tripping any JSON.
//!
//! Every test runs its own server on `127.0.0.1:0` and talks to it over real HTTP and
//! WebSocket connections (helpers in `api_common`).

mod api_common;

use api_common::*;
use roomcast_tests::TestServer;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn connections_list_every_socket_and_active_ones_only_authenticated() {
    let server = TestServer::start().await;
    let mut alice = server
        .login_with(json!({ "sub": "alice", "name": "Alice" }))
        .await;
    alice.join("desk").await;
    let _anonymous = server.connect().await;
    let s = &server;
    eventually("both sockets are listed", || async move {
        items(s, "/api/connections").await.len() == 2
    })
    .await;

    let all = items(&server, "/api/connections").await;
    let mine = all
        .iter()
        .find(|c| c["clientId"] == alice.client_id.as_str())
        .unwrap_or_else(|| panic!("alice not in {all:?}"));
    assert_eq!(mine["authenticated"], true, "{mine}");
    assert_eq!(mine["user"], json!({ "userId": "alice", "name": "Alice" }));
    assert_eq!(mine["rooms"], json!(["desk"]));
    assert_eq!(mine["data"], Value::Null);
    let connected_at = mine["connectedAt"].as_u64().unwrap_or(0);
    assert!(
        connected_at > 0 && connected_at <= roomcast_server::now_ms(),
        "connectedAt in {mine}"
    );
    let other = all
        .iter()
        .find(|c| c["clientId"] != alice.client_id.as_str())
        .expect("the unauthenticated socket");
    assert_eq!(other["authenticated"], false, "{other}");
    assert_eq!(other["user"], Value::Null, "{other}");
    assert_eq!(other["rooms"], json!([]), "{other}");

    let active = items(&server, "/api/connections?active=true").await;
    assert_eq!(active.len(), 1, "{active:?}");
    assert_eq!(active[0]["clientId"], alice.client_id.as_str());

    let info = get_ok(&server, &format!("/api/connections/{}", alice.client_id)).await;
    for field in [
        "clientId",
        "user",
        "authenticated",
        "rooms",
        "data",
        "connectedAt",
    ] {
        assert_eq!(info[field], mine[field], "{field} of {info}");
    }
    let other_id = other["clientId"].as_str().expect("clientId");
    let info = get_ok(&server, &format!("/api/connections/{other_id}")).await;
    assert_eq!(info["authenticated"], false, "{info}");
    assert_error(
        &server.get("/api/connections/no-such-client").await,
        404,
        "not_found",
    );
    server.stop().await;
}

#[tokio::test]
async fn deleting_a_connection_closes_it_with_4000_and_no_other() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    let path = format!("/api/connections/{}", alice.client_id);
    let (status, body) = server.delete(&path).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(alice.close_code().await, 4000);
    assert_quiet(&mut bob).await;
    let s = &server;
    eventually("alice is gone from the list", || async move {
        items(s, "/api/connections").await.len() == 1
    })
    .await;
    let listed = items(&server, "/api/connections").await;
    assert_eq!(listed[0]["clientId"], bob.client_id.as_str());
    assert_error(&server.delete(&path).await, 404, "not_found");
    assert_error(
        &server.delete("/api/connections/no-such-client").await,
        404,
        "not_found",
    );
    assert_quiet(&mut bob).await;
    server.stop().await;
}

#[tokio::test]
async fn deleting_all_connections_closes_every_client_with_4000() {
    let server = TestServer::start().await;
    let mut clients = vec![
        server.login("alice").await,
        server.login("bob").await,
        server.connect().await,
    ];
    let s = &server;
    eventually("three sockets are listed", || async move {
        items(s, "/api/connections").await.len() == 3
    })
    .await;
    let (status, body) = server.delete("/api/connections").await;
    assert_eq!(status, 200, "{body}");
    for client in &mut clients {
        assert_eq!(client.close_code().await, 4000);
    }
    eventually("no socket is listed", || async move {
        items(s, "/api/connections").await.is_empty()
    })
    .await;
    // The server still accepts new clients.
    let mut late = server.login("late").await;
    assert_quiet(&mut late).await;
    server.stop().await;
}

#[tokio::test]
async fn connection_data_round_trips_any_json() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let data_path = format!("/api/connections/{}/data", alice.client_id);
    assert_eq!(get_ok(&server, &data_path).await, json!({ "data": null }));
    let values = [
        json!({ "plan": "pro", "limits": [1, 2], "meta": { "since": 2024 } }),
        json!("just text"),
        json!(42),
        json!([true, null, "x"]),
    ];
    for value in values {
        let (status, body) = server.put(&data_path, value.clone()).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(get_ok(&server, &data_path).await, json!({ "data": value }));
        let info = get_ok(&server, &format!("/api/connections/{}", alice.client_id)).await;
        assert_eq!(info["data"], value, "{info}");
    }
    let listed = items(&server, "/api/connections").await;
    assert_eq!(listed[0]["data"], json!([true, null, "x"]));
    // Setting data is invisible to the client itself.
    assert_quiet(&mut alice).await;

    let unknown = "/api/connections/no-such-client/data";
    assert_error(&server.get(unknown).await, 404, "not_found");
    assert_error(
        &server.put(unknown, json!({ "a": 1 })).await,
        404,
        "not_found",
    );
    server.stop().await;
}
