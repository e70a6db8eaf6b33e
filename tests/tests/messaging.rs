//! Private messages and notifications end to end (CONTRACT §4 `private`, `mark_read`;
//! §5 `private`, `notification`, `global_notification`, `notification_read`; §9
//! `/api/notify`, `/api/notify_all`, `GET /api/users/{id}/notifications`): who gets what,
//! what waits for an offline user and arrives exactly once after its next `auth_ok`, bad
//! input, and what survives a restart of the server on the same SQLite file.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::Method;
use roomcast_server::Settings;
use roomcast_tests::{Client, TestServer, response};
use serde_json::{Value, json};

/// How long "nothing else arrives" is watched.
const QUIET: Duration = Duration::from_millis(300);

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Sends a private message with a request id; returns the sender's answer.
async fn private(sender: &mut Client, to: &str, content: Value, id: &str) -> Value {
    sender
        .request(
            json!({ "type": "private", "targetUserId": to, "content": content }),
            json!(id),
        )
        .await
}

/// Sends a private message that must be accepted; returns the reply's `data`.
async fn private_ok(sender: &mut Client, to: &str, content: Value, id: &str) -> Value {
    let reply = private(sender, to, content, id).await;
    assert_eq!(reply["type"], "reply", "{reply}");
    assert_eq!(reply["data"]["targetUserId"], to, "{reply}");
    reply["data"].clone()
}

/// Posts a notification that must be accepted; returns the response body.
async fn notify(server: &TestServer, body: Value) -> Value {
    let (status, answer) = server.post("/api/notify", body).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer["id"].is_string(), "{answer}");
    assert!(answer["timestamp"].as_u64().is_some(), "{answer}");
    answer
}

/// Posts a notification `title` (content `"{title} body"`) for `user`.
async fn notify_titled(server: &TestServer, user: &str, title: &str) -> Value {
    notify(
        server,
        json!({ "userId": user, "title": title, "content": format!("{title} body") }),
    )
    .await
}

/// The user's stored notifications, as `GET /api/users/{user}/notifications{query}`.
async fn listed(server: &TestServer, user: &str, query: &str) -> Vec<Value> {
    let (status, body) = server
        .get(&format!("/api/users/{user}/notifications{query}"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().expect("items").clone()
}

/// The `title` of each item.
fn titles(items: &[Value]) -> Vec<&str> {
    items
        .iter()
        .map(|n| n["title"].as_str().unwrap_or_default())
        .collect()
}

fn id_of(value: &Value) -> &str {
    value["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id: {value}"))
}

/// Closes a connection and waits until the server has forgotten it, so the user counts
/// as offline for what is sent next.
async fn disconnect(server: &TestServer, client: Client) {
    let path = format!("/api/connections/{}", client.client_id);
    client.close().await;
    for _ in 0..250 {
        if server.get(&path).await.0 == 404 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{path} is still registered after the client closed");
}

/// A fresh SQLite file for one test, unique per process, call and test name.
fn store_file(test: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!(
        "roomcast-messaging-{}-{n}-{test}.db",
        std::process::id()
    ));
    remove_store(&path);
    path
}

fn remove_store(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// An API request without the key: its status and body.
async fn without_key(server: &TestServer, method: Method, path: &str, body: Value) -> (u16, Value) {
    response(server.http(method, path).json(&body).send().await).await
}

#[track_caller]
fn assert_bad_request(answer: &(u16, Value), case: &str) {
    let (status, body) = answer;
    assert_eq!(*status, 400, "{case}: {body}");
    assert_eq!(body["error"]["code"], "bad_request", "{case}: {body}");
}

// ---------------------------------------------------------------------------------------
// Private messages
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn private_reaches_every_connection_of_the_target_and_the_senders_other_connections() {
    let server = TestServer::start().await;
    let alice_claims = json!({ "sub": "alice", "name": "Alice" });
    let mut alice = server.login_with(alice_claims.clone()).await;
    let mut alice_phone = server.login_with(alice_claims).await;
    let mut bob = server.login("bob").await;
    let mut bob_phone = server.login("bob").await;
    let mut carol = server.login("carol").await;

    let content = json!({ "text": "psst", "n": [1, 2] });
    let sent = private_ok(&mut alice, "bob", content.clone(), "p1").await;
    assert_eq!(sent["delivered"], true, "{sent}");
    assert!(sent["timestamp"].as_u64().is_some(), "{sent}");

    for (who, client) in [
        ("bob", &mut bob),
        ("bob's phone", &mut bob_phone),
        ("alice's phone", &mut alice_phone),
    ] {
        let got = client.expect("private").await;
        assert_eq!(got["id"], sent["id"], "{who}: {got}");
        assert_eq!(got["message"], content, "{who}: {got}");
        assert_eq!(
            got["from"],
            json!({ "userId": "alice", "name": "Alice" }),
            "{who}: {got}"
        );
        assert!(got["timestamp"].as_u64().is_some(), "{who}: {got}");
        client.expect_silence(QUIET).await;
    }
    // The sending connection got only its reply (consumed by `request`).
    alice.expect_silence(QUIET).await;
    carol.expect_silence(QUIET).await;
}

#[tokio::test]
async fn private_names_its_target_live_on_every_side_and_when_delivered_at_connect() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut alice_phone = server.login("alice").await;
    let mut bob = server.login("bob").await;

    let sent = private_ok(&mut alice, "bob", json!("live"), "p1").await;
    for (who, client) in [("bob", &mut bob), ("alice's phone", &mut alice_phone)] {
        let got = client.expect("private").await;
        assert_eq!(got["id"], sent["id"], "{who}: {got}");
        assert_eq!(got["to"], "bob", "{who}: {got}");
        assert_eq!(got["from"]["userId"], "alice", "{who}: {got}");
    }

    // Carol has no connection: her message waits, and still names her when it arrives.
    let sent = private_ok(&mut alice, "carol", json!("later"), "p2").await;
    assert_eq!(sent["delivered"], false, "{sent}");
    let mirrored = alice_phone.expect("private").await;
    assert_eq!(mirrored["id"], sent["id"], "{mirrored}");
    assert_eq!(mirrored["to"], "carol", "{mirrored}");
    let mut carol = server.login("carol").await;
    let got = carol.expect("private").await;
    assert_eq!(got["id"], sent["id"], "{got}");
    assert_eq!(got["to"], "carol", "{got}");
    assert_eq!(got["from"], json!({ "userId": "alice" }), "{got}");
    carol.expect_silence(QUIET).await;
    bob.expect_silence(QUIET).await;
}

#[tokio::test]
async fn private_from_is_derived_by_the_server_and_cannot_be_spoofed() {
    let server = TestServer::start().await;
    let mut mallory = server
        .login_with(json!({ "sub": "mallory", "roles": ["guest"] }))
        .await;
    let mut bob = server.login("bob").await;
    mallory
        .send(json!({
            "type": "private",
            "targetUserId": "bob",
            "content": "it's me, your boss",
            "from": { "userId": "boss", "name": "The Boss", "roles": ["admin"] },
            "userId": "boss",
            "id": "spoof",
        }))
        .await;
    let answer = mallory.expect("reply").await;
    assert_eq!(answer["id"], "spoof", "{answer}");
    let got = bob.expect("private").await;
    assert_eq!(
        got["from"],
        json!({ "userId": "mallory", "roles": ["guest"] }),
        "{got}"
    );
    assert_eq!(got["message"], "it's me, your boss");
}

#[tokio::test]
async fn private_message_ids_increase_in_send_order() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut carol = server.login("carol").await;
    let mut bob = server.login("bob").await;
    let mut sent = Vec::new();
    for i in 0..3 {
        let sender = if i == 1 { &mut carol } else { &mut alice };
        sent.push(private_ok(sender, "bob", json!(i), &format!("p{i}")).await);
    }
    let mut received = Vec::new();
    for _ in 0..3 {
        received.push(bob.expect("private").await);
    }
    for (i, (got, reply)) in received.iter().zip(&sent).enumerate() {
        assert_eq!(got["id"], reply["id"], "message {i}");
        assert_eq!(got["message"], json!(i), "message {i}");
    }
    for pair in received.windows(2) {
        assert!(
            id_of(&pair[0]) < id_of(&pair[1]),
            "{} then {}",
            pair[0],
            pair[1]
        );
    }
}

#[tokio::test]
async fn private_to_an_offline_user_arrives_right_after_its_next_auth_ok_exactly_once() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let bob = server.login("bob").await;
    disconnect(&server, bob).await;

    let sent = private_ok(&mut alice, "bob", json!({ "text": "later" }), "p").await;
    assert_eq!(sent["delivered"], false, "{sent}");
    alice.expect_silence(QUIET).await;

    // `login` consumed `auth_ok`: the pending message must be the very next frame.
    let mut bob = server.login("bob").await;
    let got = bob.expect("private").await;
    assert_eq!(got["id"], sent["id"], "{got}");
    assert_eq!(got["message"], json!({ "text": "later" }));
    assert_eq!(got["from"], json!({ "userId": "alice" }));
    bob.expect_silence(QUIET).await;

    // Neither a second connection nor a reconnect gets it again.
    let mut bob_phone = server.login("bob").await;
    bob_phone.expect_silence(QUIET).await;
    disconnect(&server, bob).await;
    disconnect(&server, bob_phone).await;
    let mut bob = server.login("bob").await;
    bob.expect_silence(QUIET).await;
}

#[tokio::test]
async fn several_pending_private_messages_arrive_oldest_first() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut carol = server.login("carol").await;
    let mut ids = Vec::new();
    for i in 0..4 {
        let sender = if i % 2 == 0 { &mut alice } else { &mut carol };
        let sent = private_ok(sender, "bob", json!(format!("m{i}")), &format!("p{i}")).await;
        assert_eq!(sent["delivered"], false, "{sent}");
        ids.push(sent["id"].clone());
    }

    let mut bob = server.login("bob").await;
    for (i, id) in ids.iter().enumerate() {
        let got = bob.expect("private").await;
        assert_eq!(&got["id"], id, "message {i}: {got}");
        assert_eq!(got["message"], format!("m{i}"), "{got}");
        let sender = if i % 2 == 0 { "alice" } else { "carol" };
        assert_eq!(got["from"]["userId"], sender, "{got}");
    }
    bob.expect_silence(QUIET).await;
}

#[tokio::test]
async fn private_messages_racing_a_connect_arrive_exactly_once() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let count = 30;
    let sending = async {
        for i in 0..count {
            alice
                .send(json!({ "type": "private", "targetUserId": "bob", "content": i, "id": i }))
                .await;
        }
        let mut ids = Vec::new();
        for _ in 0..count {
            let reply = alice.expect("reply").await;
            ids.push(reply["data"]["id"].as_str().expect("id").to_owned());
        }
        ids
    };
    let (mut sent, mut bob) = tokio::join!(sending, server.login("bob"));
    let mut received = Vec::new();
    for _ in 0..count {
        received.push(id_of(&bob.expect("private").await).to_owned());
    }
    bob.expect_silence(QUIET).await;
    sent.sort();
    received.sort();
    assert_eq!(received, sent, "each message once, pending or live");
}

#[tokio::test]
async fn what_was_delivered_live_is_not_delivered_again_on_reconnect() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    let sent = private_ok(&mut alice, "bob", json!("live"), "p").await;
    assert_eq!(sent["delivered"], true, "{sent}");
    bob.expect("private").await;
    notify_titled(&server, "bob", "live").await;
    bob.expect("notification").await;

    disconnect(&server, bob).await;
    let mut bob = server.login("bob").await;
    bob.expect_silence(QUIET).await;
}

#[tokio::test]
async fn a_private_to_oneself_from_ones_only_connection_is_delivered_and_not_pending() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let sent = private_ok(&mut alice, "alice", json!("a note"), "p").await;
    assert_eq!(
        sent["delivered"], true,
        "the sending connection has it: {sent}"
    );
    disconnect(&server, alice).await;
    let mut alice = server.login("alice").await;
    alice.expect_silence(QUIET).await;
}

#[tokio::test]
async fn bad_private_requests_get_errors_and_deliver_nothing() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    let too_long = "x".repeat(5 * 1024);
    let cases = [
        (json!({ "type": "private", "content": "hi" }), "bad_request"),
        (
            json!({ "type": "private", "targetUserId": "bob" }),
            "bad_request",
        ),
        (
            json!({ "type": "private", "targetUserId": "", "content": "hi" }),
            "bad_request",
        ),
        (
            json!({ "type": "private", "targetUserId": 7, "content": "hi" }),
            "bad_request",
        ),
        (
            json!({ "type": "private", "targetUserId": "bob", "content": too_long }),
            "too_large",
        ),
    ];
    for (i, (message, code)) in cases.into_iter().enumerate() {
        let answer = alice.request(message.clone(), json!(i)).await;
        assert_eq!(answer["type"], "error", "{message}: {answer}");
        assert_eq!(answer["code"], code, "{message}: {answer}");
    }

    let mut anonymous = server.connect().await;
    let answer = anonymous
        .request(
            json!({ "type": "private", "targetUserId": "bob", "content": "hi" }),
            json!("anon"),
        )
        .await;
    assert_eq!(answer["code"], "not_authenticated", "{answer}");

    bob.expect_silence(QUIET).await;
    // Nothing was stored for later either.
    disconnect(&server, bob).await;
    let mut bob = server.login("bob").await;
    bob.expect_silence(QUIET).await;
}

// ---------------------------------------------------------------------------------------
// Notifications
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn notify_reaches_every_connection_of_an_online_user_as_unread_normal() {
    let server = TestServer::start().await;
    let mut bob = server.login("bob").await;
    let mut bob_phone = server.login("bob").await;
    let mut alice = server.login("alice").await;

    let sent = notify(
        &server,
        json!({ "userId": "bob", "title": "Invoice", "content": "Your invoice is ready" }),
    )
    .await;
    assert_eq!(sent["delivered"], 2, "{sent}");
    for client in [&mut bob, &mut bob_phone] {
        let got = client.expect("notification").await;
        assert_eq!(got["id"], sent["id"], "{got}");
        assert_eq!(got["title"], "Invoice");
        assert_eq!(got["content"], "Your invoice is ready");
        assert_eq!(got["priority"], "normal", "the default priority: {got}");
        assert_eq!(got["read"], false, "{got}");
        assert!(got["timestamp"].as_u64().is_some(), "{got}");
        client.expect_silence(QUIET).await;
    }
    alice.expect_silence(QUIET).await;
}

#[tokio::test]
async fn notify_keeps_the_given_priority() {
    let server = TestServer::start().await;
    let mut bob = server.login("bob").await;
    for priority in ["low", "normal", "high", "urgent"] {
        notify(
            &server,
            json!({ "userId": "bob", "title": priority, "content": "c", "priority": priority }),
        )
        .await;
        let got = bob.expect("notification").await;
        assert_eq!(got["priority"], priority, "{got}");
    }
    let items = listed(&server, "bob", "").await;
    let priorities: Vec<&Value> = items.iter().map(|n| &n["priority"]).collect();
    assert_eq!(
        priorities,
        [
            &json!("urgent"),
            &json!("high"),
            &json!("normal"),
            &json!("low")
        ]
    );
}

#[tokio::test]
async fn notify_to_an_offline_user_arrives_after_its_next_auth_ok_exactly_once_oldest_first() {
    let server = TestServer::start().await;
    let mut sent = Vec::new();
    for title in ["first", "second", "third"] {
        let answer = notify_titled(&server, "bob", title).await;
        assert_eq!(answer["delivered"], 0, "{answer}");
        sent.push(answer);
    }

    let mut bob = server.login("bob").await;
    for (answer, title) in sent.iter().zip(["first", "second", "third"]) {
        let got = bob.expect("notification").await;
        assert_eq!(got["id"], answer["id"], "{got}");
        assert_eq!(got["title"], title, "{got}");
        assert_eq!(got["content"], format!("{title} body"), "{got}");
        assert_eq!(got["read"], false, "{got}");
    }
    bob.expect_silence(QUIET).await;

    let mut bob_phone = server.login("bob").await;
    bob_phone.expect_silence(QUIET).await;
    disconnect(&server, bob).await;
    disconnect(&server, bob_phone).await;
    let mut bob = server.login("bob").await;
    bob.expect_silence(QUIET).await;
}

#[tokio::test]
async fn pending_notifications_and_private_messages_arrive_together_in_id_order() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let n1 = notify_titled(&server, "bob", "n1").await;
    let p1 = private_ok(&mut alice, "bob", json!("p1"), "p1").await;
    let n2 = notify_titled(&server, "bob", "n2").await;
    let p2 = private_ok(&mut alice, "bob", json!("p2"), "p2").await;

    let mut bob = server.login("bob").await;
    let expected = [
        ("notification", &n1),
        ("private", &p1),
        ("notification", &n2),
        ("private", &p2),
    ];
    let mut last = String::new();
    for (kind, sent) in expected {
        let got = bob.expect(kind).await;
        assert_eq!(got["id"], sent["id"], "{got}");
        assert!(id_of(&got) > last.as_str(), "{got} after {last}");
        last = id_of(&got).to_owned();
    }
    bob.expect_silence(QUIET).await;
}

/// The next two messages of a `mark_read` sender: its reply and its own
/// `notification_read`, in whatever order they come.
async fn reply_and_read(client: &mut Client) -> (Value, Value) {
    let first = client.recv().await;
    let second = client.recv().await;
    if first["type"] == "reply" {
        (first, second)
    } else {
        (second, first)
    }
}

#[tokio::test]
async fn mark_read_tells_every_connection_of_that_user_and_no_one_else() {
    let server = TestServer::start().await;
    let mut bob = server.login("bob").await;
    let mut bob_phone = server.login("bob").await;
    let mut alice = server.login("alice").await;
    let sent = notify_titled(&server, "bob", "hello").await;
    let id = id_of(&sent).to_owned();
    bob.expect("notification").await;
    bob_phone.expect("notification").await;

    bob.send(json!({ "type": "mark_read", "notificationId": id, "id": "r" }))
        .await;
    let (reply, read) = reply_and_read(&mut bob).await;
    assert_eq!(reply["type"], "reply", "{reply}");
    assert_eq!(reply["id"], "r");
    assert_eq!(reply["data"], json!({ "notificationId": id }));
    assert_eq!(read["type"], "notification_read", "{read}");
    assert_eq!(read["notificationId"], id.as_str());
    let read = bob_phone.expect("notification_read").await;
    assert_eq!(read["notificationId"], id.as_str());
    assert!(read["timestamp"].as_u64().is_some(), "{read}");
    bob.expect_silence(QUIET).await;
    bob_phone.expect_silence(QUIET).await;
    alice.expect_silence(QUIET).await;

    let items = listed(&server, "bob", "").await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["read"], true, "{items:?}");
    assert!(listed(&server, "bob", "?unread=true").await.is_empty());
}

#[tokio::test]
async fn bad_mark_read_requests_get_errors_and_change_nothing() {
    let server = TestServer::start().await;
    let mut bob = server.login("bob").await;
    let mut alice = server.login("alice").await;
    let sent = notify_titled(&server, "bob", "for bob").await;
    let id = id_of(&sent).to_owned();
    bob.expect("notification").await;

    for (i, target) in [id.as_str(), "00000000000000ff"].into_iter().enumerate() {
        let answer = alice
            .request(
                json!({ "type": "mark_read", "notificationId": target }),
                json!(i),
            )
            .await;
        assert_eq!(answer["type"], "error", "{answer}");
        assert_eq!(answer["code"], "not_found", "{answer}");
    }
    let answer = alice
        .request(json!({ "type": "mark_read" }), json!("missing"))
        .await;
    assert_eq!(answer["code"], "bad_request", "{answer}");
    let mut anonymous = server.connect().await;
    let answer = anonymous
        .request(
            json!({ "type": "mark_read", "notificationId": id }),
            json!("anon"),
        )
        .await;
    assert_eq!(answer["code"], "not_authenticated", "{answer}");

    bob.expect_silence(QUIET).await;
    alice.expect_silence(QUIET).await;
    let unread = listed(&server, "bob", "?unread=true").await;
    assert_eq!(titles(&unread), ["for bob"], "still unread");
}

#[tokio::test]
async fn the_notification_list_is_newest_first_with_unread_and_limit() {
    let server = TestServer::start().await;
    let mut bob = server.login("bob").await;
    let mut ids = Vec::new();
    for title in ["n1", "n2", "n3"] {
        ids.push(id_of(&notify_titled(&server, "bob", title).await).to_owned());
        bob.expect("notification").await;
    }
    let answer = bob
        .request(
            json!({ "type": "mark_read", "notificationId": ids[1] }),
            json!("r"),
        )
        .await;
    assert_eq!(answer["type"], "reply", "{answer}");

    let all = listed(&server, "bob", "").await;
    assert_eq!(titles(&all), ["n3", "n2", "n1"]);
    let item = &all[1];
    assert_eq!(item["id"], ids[1].as_str(), "{item}");
    assert_eq!(item["content"], "n2 body", "{item}");
    assert_eq!(item["priority"], "normal", "{item}");
    assert_eq!(item["read"], true, "{item}");
    assert_eq!(all[0]["read"], false);
    assert_eq!(all[2]["read"], false);

    assert_eq!(
        titles(&listed(&server, "bob", "?unread=true").await),
        ["n3", "n1"]
    );
    assert_eq!(
        titles(&listed(&server, "bob", "?unread=false").await),
        ["n3", "n2", "n1"]
    );
    assert_eq!(
        titles(&listed(&server, "bob", "?limit=2").await),
        ["n3", "n2"]
    );
    assert_eq!(
        titles(&listed(&server, "bob", "?unread=true&limit=1").await),
        ["n3"]
    );
    assert!(listed(&server, "alice", "").await.is_empty());
}

#[tokio::test]
async fn notify_all_reaches_every_authenticated_connection_only() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    let mut bob_phone = server.login("bob").await;
    let mut anonymous = server.connect().await;

    let (status, sent) = server
        .post(
            "/api/notify_all",
            json!({ "title": "Maintenance", "content": "Down at 2am" }),
        )
        .await;
    assert_eq!(status, 200, "{sent}");
    assert!(sent["id"].is_string(), "{sent}");
    assert_eq!(sent["delivered"], 3, "{sent}");
    for client in [&mut alice, &mut bob, &mut bob_phone] {
        let got = client.expect("global_notification").await;
        assert_eq!(got["id"], sent["id"], "{got}");
        assert_eq!(got["title"], "Maintenance");
        assert_eq!(got["content"], "Down at 2am");
        assert!(got["timestamp"].as_u64().is_some(), "{got}");
        client.expect_silence(QUIET).await;
    }
    anonymous.expect_silence(QUIET).await;
}

// ---------------------------------------------------------------------------------------
// Bad API input
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn notify_rejects_bad_bodies_and_changes_nothing() {
    let server = TestServer::start().await;
    let mut bob = server.login("bob").await;
    let cases = [
        ("missing title", json!({ "userId": "bob", "content": "c" })),
        ("missing content", json!({ "userId": "bob", "title": "t" })),
        ("missing userId", json!({ "title": "t", "content": "c" })),
        (
            "empty title",
            json!({ "userId": "bob", "title": "", "content": "c" }),
        ),
        (
            "blank title",
            json!({ "userId": "bob", "title": "   ", "content": "c" }),
        ),
        (
            "unknown field",
            json!({ "userId": "bob", "title": "t", "content": "c", "colour": "red" }),
        ),
        (
            "bad priority",
            json!({ "userId": "bob", "title": "t", "content": "c", "priority": "critical" }),
        ),
        (
            "empty userId",
            json!({ "userId": "", "title": "t", "content": "c" }),
        ),
        (
            "numeric userId",
            json!({ "userId": 42, "title": "t", "content": "c" }),
        ),
        (
            "overlong userId",
            json!({ "userId": "u".repeat(200), "title": "t", "content": "c" }),
        ),
    ];
    for (case, body) in cases {
        assert_bad_request(&server.post("/api/notify", body).await, case);
    }
    for (case, body) in [
        ("notify_all missing title", json!({ "content": "c" })),
        (
            "notify_all empty title",
            json!({ "title": "", "content": "c" }),
        ),
        (
            "notify_all unknown field",
            json!({ "title": "t", "content": "c", "userId": "bob" }),
        ),
    ] {
        assert_bad_request(&server.post("/api/notify_all", body).await, case);
    }
    bob.expect_silence(QUIET).await;
    assert!(listed(&server, "bob", "").await.is_empty());
}

#[tokio::test]
async fn the_notification_list_rejects_bad_queries() {
    let server = TestServer::start().await;
    notify_titled(&server, "bob", "kept").await;
    for query in [
        "unread=maybe",
        "limit=0",
        "limit=-1",
        "limit=many",
        "colour=red",
    ] {
        let answer = server
            .get(&format!("/api/users/bob/notifications?{query}"))
            .await;
        assert_bad_request(&answer, query);
    }
    let overlong = format!("/api/users/{}/notifications", "u".repeat(200));
    assert_bad_request(&server.get(&overlong).await, "overlong user id");
    assert_eq!(titles(&listed(&server, "bob", "").await), ["kept"]);
}

#[tokio::test]
async fn the_notification_api_needs_the_key() {
    let server = TestServer::start().await;
    let mut bob = server.login("bob").await;
    let notify_body = json!({ "userId": "bob", "title": "t", "content": "c" });
    let requests = [
        (Method::POST, "/api/notify", notify_body.clone()),
        (
            Method::POST,
            "/api/notify_all",
            json!({ "title": "t", "content": "c" }),
        ),
        (Method::GET, "/api/users/bob/notifications", Value::Null),
    ];
    for (method, path, body) in requests {
        let (status, answer) = without_key(&server, method.clone(), path, body.clone()).await;
        assert_eq!(status, 401, "{method} {path}: {answer}");
        let wrong = response(
            server
                .http(method.clone(), path)
                .bearer_auth("not-the-key")
                .json(&body)
                .send()
                .await,
        )
        .await;
        assert_eq!(
            wrong.0, 401,
            "{method} {path} with a wrong key: {}",
            wrong.1
        );
    }
    bob.expect_silence(QUIET).await;
    assert!(listed(&server, "bob", "").await.is_empty());
}

// ---------------------------------------------------------------------------------------
// Restart
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn notifications_private_messages_and_persistent_rooms_survive_a_restart() {
    let path = store_file("restart");
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
    remove_store(&path);
}
