//! The rooms API end to end (CONTRACT §9): rooms created, updated, listed and deleted
//! through `/api/rooms`, and room names in paths percent-decoded.
//!
//! Every test runs its own server on `127.0.0.1:0` (helpers in `api_common`).

mod api_common;

use api_common::*;
use roomcast_tests::TestServer;
use serde_json::json;

// ---------------------------------------------------------------------------------------
// Rooms
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn rooms_are_created_updated_listed_and_deleted() {
    let server = TestServer::start().await;
    let options = json!({
        "name": "news",
        "maxClients": 3,
        "persistent": true,
        "roles": ["staff"],
        "presence": false,
    });
    let (status, room) = server.post("/api/rooms", options).await;
    assert_eq!(status, 201, "{room}");
    assert_eq!(room["name"], "news");
    assert_eq!(room["maxClients"], 3);
    assert_eq!(room["persistent"], true);
    assert_eq!(room["roles"], json!(["staff"]));
    assert_eq!(room["presence"], false);

    let (status, room) = server
        .post(
            "/api/rooms",
            json!({ "name": "news", "maxClients": 5, "roles": ["staff"] }),
        )
        .await;
    assert_eq!(status, 200, "posting again updates: {room}");
    assert_eq!(room["name"], "news");
    assert_eq!(room["maxClients"], 5);

    let listed = items(&server, "/api/rooms").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["name"], "news");
    assert_eq!(listed[0]["maxClients"], 5);

    let info = get_ok(&server, "/api/rooms/news").await;
    assert_eq!(info["name"], "news");
    assert_eq!(info["clients"], json!([]), "{info}");
    let mut staff = server
        .login_with(json!({ "sub": "sue", "roles": ["staff"] }))
        .await;
    staff.join("news").await;
    let info = get_ok(&server, "/api/rooms/news").await;
    let clients = info["clients"].as_array().expect("clients");
    assert_eq!(clients.len(), 1, "{info}");
    assert_eq!(clients[0]["clientId"], staff.client_id.as_str());

    assert_error(&server.get("/api/rooms/ghost").await, 404, "not_found");
    let (status, body) = server.delete("/api/rooms/news").await;
    assert_eq!(status, 200, "{body}");
    assert_error(&server.get("/api/rooms/news").await, 404, "not_found");
    assert_error(&server.delete("/api/rooms/news").await, 404, "not_found");
    assert!(items(&server, "/api/rooms").await.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn room_names_in_paths_are_percent_decoded() {
    let server = TestServer::start().await;
    let (status, room) = server
        .post("/api/rooms", json!({ "name": "town hall" }))
        .await;
    assert_eq!(status, 201, "{room}");
    assert_eq!(
        get_ok(&server, "/api/rooms/town%20hall").await["name"],
        "town hall"
    );
    let (status, body) = server.delete("/api/rooms/town%20hall").await;
    assert_eq!(status, 200, "{body}");
    assert_error(
        &server.get("/api/rooms/town%20hall").await,
        404,
        "not_found",
    );
    server.stop().await;
}
