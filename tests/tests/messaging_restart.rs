//! What a restart keeps (CONTRACT §4 `private`; §5 `notification`; §9 `/api/notify`,
//! `/api/rooms`): pending notifications and private messages and persistent rooms
//! survive a restart of the server on the same SQLite file.

mod messaging_common;

use messaging_common::*;
use roomcast_server::Settings;
use roomcast_tests::{TestServer, remove_sqlite_store, sqlite_store_file};
use serde_json::json;

// ---------------------------------------------------------------------------------------
// Restart
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn notifications_private_messages_and_persistent_rooms_survive_a_restart() {
    let path = sqlite_store_file("restart");
    let settings = || Settings {
        store: Some(format!("sqlite://{}", path.display())),
        ..Settings::default()
    };

    let server = TestServer::with(settings()).await;
    let mut alice = server.login("alice").await;
    let n1 = notify_titled(&server, "bob", "n1").await;
    let n2 = notify_titled(&server, "bob", "n2").await;
    let p1 = private_ok(&mut alice, "bob", json!({ "text": "p1" }), "p1").await;
    let p2 = private_ok(&mut alice, "bob", json!({ "text": "p2" }), "p2").await;
    assert_eq!(n1["delivered"], 0, "{n1}");
    assert_eq!(n2["delivered"], 0, "{n2}");
    assert_eq!(p1["delivered"], false, "{p1}");
    assert_eq!(p2["delivered"], false, "{p2}");
    let (status, room) = server
        .post(
            "/api/rooms",
            json!({ "name": "town-hall", "persistent": true }),
        )
        .await;
    assert_eq!(status, 201, "{room}");
    let (status, room) = server.post("/api/rooms", json!({ "name": "pop-up" })).await;
    assert_eq!(status, 201, "{room}");
    alice.close().await;
    server.stop().await;

    let server = TestServer::with(settings()).await;
    let (status, rooms) = server.get("/api/rooms").await;
    assert_eq!(status, 200, "{rooms}");
    let names: Vec<&str> = rooms["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert!(names.contains(&"town-hall"), "{rooms}");
    assert!(!names.contains(&"pop-up"), "not persistent: {rooms}");
    assert_eq!(titles(&listed(&server, "bob", "").await), ["n2", "n1"]);

    let mut bob = server.login("bob").await;
    for (sent, title) in [(&n1, "n1"), (&n2, "n2")] {
        let got = bob.expect("notification").await;
        assert_eq!(got["id"], sent["id"], "{got}");
        assert_eq!(got["title"], title, "{got}");
        assert_eq!(got["read"], false, "{got}");
    }
    for (sent, text) in [(&p1, "p1"), (&p2, "p2")] {
        let got = bob.expect("private").await;
        assert_eq!(got["id"], sent["id"], "{got}");
        assert_eq!(got["message"], json!({ "text": text }), "{got}");
        assert_eq!(got["from"], json!({ "userId": "alice" }), "{got}");
    }
    bob.expect_silence(QUIET).await;
    disconnect(&server, bob).await;
    let mut bob = server.login("bob").await;
    bob.expect_silence(QUIET).await;

    assert_eq!(
        titles(&listed(&server, "bob", "?unread=true").await),
        ["n2", "n1"]
    );
    bob.close().await;
    server.stop().await;
    remove_sqlite_store(&path);
}
