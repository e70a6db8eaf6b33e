//! Notifications end to end (CONTRACT §4 `mark_read`; §5 `notification`,
//! `global_notification`, `notification_read`; §9 `/api/notify`, `/api/notify_all`,
//! `GET /api/users/{id}/notifications`): who gets a notification and with what priority,
//! what waits for an offline user (together with its private messages, in id order) and
//! arrives exactly once after its next `auth_ok`, `mark_read` on every connection of the
//! user, the stored list, and the API's answers to bad bodies, bad queries and a missing
//! key.

mod messaging_common;

use messaging_common::*;
use reqwest::Method;
use roomcast_tests::{Client, TestServer, response};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

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
