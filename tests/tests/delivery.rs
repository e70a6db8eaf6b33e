//! Acknowledged delivery end to end (CONTRACT §7, §9 `/api/send` and `/api/broadcast` with
//! `ack`): a send waits for the client's `ack`, times out without one, and reports a
//! disconnect at once; a broadcast reports each client's outcome; late and unknown acks
//! are harmless; bad ack requests are rejected and deliver nothing. Compression:
//! `compression.rs`; room batching: `batching.rs`.

mod delivery_common;

use std::time::Duration;

use delivery_common::*;
use reqwest::Method;
use roomcast_tests::{Client, TestServer, WAIT, response};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Starts a `POST` whose answer may wait (acks); await the handle with [`answer`].
fn post_later(server: &TestServer, path: &str, body: &Value) -> JoinHandle<(u16, Value)> {
    let request = server.api(Method::POST, path).json(body);
    tokio::spawn(async move { response(request.send().await).await })
}

/// The answer of a [`post_later`] request, failing after [`WAIT`].
async fn answer(pending: JoinHandle<(u16, Value)>) -> (u16, Value) {
    tokio::time::timeout(WAIT, pending)
        .await
        .expect("the HTTP call did not answer in time")
        .expect("request task")
}

/// Sends `ack` for `message_id` and returns the reply's `data`.
async fn ack(client: &mut Client, message_id: &str) -> Value {
    let reply = client
        .request(
            json!({ "type": "ack", "messageId": message_id }),
            json!("ack"),
        )
        .await;
    assert_eq!(reply["type"], "reply", "{reply}");
    reply["data"].clone()
}

/// Receives an acknowledged delivery of `message`: the same fields plus `_ack: true` and
/// a `_messageId`, which it returns.
async fn recv_acked(client: &mut Client, message: &Value) -> String {
    let mut got = client.recv().await;
    assert_eq!(got["_ack"], true, "{got}");
    let id = got["_messageId"]
        .as_str()
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| panic!("no `_messageId` in {got}"))
        .to_owned();
    let fields = got.as_object_mut().expect("object");
    fields.remove("_ack");
    fields.remove("_messageId");
    assert_eq!(
        &got, message,
        "delivered message differs from the posted one"
    );
    id
}

// ---------------------------------------------------------------------------------------
// Acknowledged delivery
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn send_with_ack_waits_for_the_clients_ack() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let message = json!({ "type": "order", "item": "book" });

    let pending = post_later(
        &server,
        "/api/send",
        &json!({ "clientId": alice.client_id, "message": message, "ack": true }),
    );
    let message_id = recv_acked(&mut alice, &message).await;
    alice.expect_silence(Duration::from_millis(300)).await;
    assert!(
        !pending.is_finished(),
        "the HTTP call answered before the ack"
    );

    let acked = ack(&mut alice, &message_id).await;
    assert_eq!(acked, json!({ "messageId": message_id, "awaited": true }));
    let (status, body) = answer(pending).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({ "results": { alice.client_id.as_str(): { "success": true } } })
    );
    assert_quiet(&mut alice).await;
}

#[tokio::test]
async fn send_with_ack_times_out_when_the_client_never_acks() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let message = json!({ "type": "order", "item": "pen" });

    let pending = post_later(
        &server,
        "/api/send",
        &json!({ "clientId": alice.client_id, "message": message, "ack": true, "timeoutMs": 300 }),
    );
    recv_acked(&mut alice, &message).await;
    let (status, body) = answer(pending).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({ "results": { alice.client_id.as_str(): { "success": false, "error": "timeout" } } })
    );
    assert_quiet(&mut alice).await;
}

#[tokio::test]
async fn send_with_ack_reports_a_disconnect_without_waiting_for_the_timeout() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let id = alice.client_id.clone();
    let message = json!({ "type": "order", "item": "lamp" });

    let pending = post_later(
        &server,
        "/api/send",
        &json!({ "clientId": id, "message": message, "ack": true, "timeoutMs": 20000 }),
    );
    recv_acked(&mut alice, &message).await;
    alice.close().await;
    // WAIT (5 s) is far below the 20 s timeout: the disconnect itself must answer.
    let (status, body) = answer(pending).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({ "results": { id.as_str(): { "success": false, "error": "disconnected" } } })
    );
}

#[tokio::test]
async fn broadcast_with_ack_reports_each_clients_outcome() {
    let server = TestServer::start().await;
    let mut clients = members(&server, "orders", &["acker", "sleeper", "leaver"]).await;
    let mut leaver = clients.pop().expect("leaver");
    let mut sleeper = clients.pop().expect("sleeper");
    let mut acker = clients.pop().expect("acker");
    let (acker_id, sleeper_id, leaver_id) = (
        acker.client_id.clone(),
        sleeper.client_id.clone(),
        leaver.client_id.clone(),
    );
    let message = json!({ "type": "order", "item": "chair" });

    let pending = post_later(
        &server,
        "/api/broadcast",
        &json!({ "to": { "room": "orders" }, "message": message, "ack": true, "timeoutMs": 2000 }),
    );
    let message_id = recv_acked(&mut acker, &message).await;
    assert_eq!(ack(&mut acker, &message_id).await["awaited"], true);
    recv_acked(&mut sleeper, &message).await;
    recv_acked(&mut leaver, &message).await;
    leaver.close().await;

    let (status, body) = answer(pending).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({ "results": {
            acker_id.as_str(): { "success": true },
            sleeper_id.as_str(): { "success": false, "error": "timeout" },
            leaver_id.as_str(): { "success": false, "error": "disconnected" },
        } })
    );
    for client in [&mut acker, &mut sleeper] {
        let left = client.expect("user_leave").await;
        assert_eq!(left["user"]["userId"], "leaver", "{left}");
        assert_quiet(client).await;
    }
}

#[tokio::test]
async fn a_late_ack_is_harmless() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let message = json!({ "type": "order", "item": "desk" });

    let pending = post_later(
        &server,
        "/api/send",
        &json!({ "clientId": alice.client_id, "message": message, "ack": true, "timeoutMs": 300 }),
    );
    let message_id = recv_acked(&mut alice, &message).await;
    let (_, body) = answer(pending).await;
    assert_eq!(body["results"][&alice.client_id]["error"], "timeout");

    let late = ack(&mut alice, &message_id).await;
    assert_eq!(late, json!({ "messageId": message_id, "awaited": false }));
    assert_quiet(&mut alice).await;
    let (status, info) = server
        .get(&format!("/api/connections/{}", alice.client_id))
        .await;
    assert_eq!(status, 200, "the connection stays open: {info}");
}

#[tokio::test]
async fn an_ack_for_an_unknown_message_is_answered_not_awaited() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let answer = ack(&mut alice, "no-such-message").await;
    assert_eq!(
        answer,
        json!({ "messageId": "no-such-message", "awaited": false })
    );
    assert_quiet(&mut alice).await;
}

#[tokio::test]
async fn an_ack_without_message_id_is_a_bad_request() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let error = alice
        .request(json!({ "type": "ack" }), json!("bad-ack"))
        .await;
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["code"], "bad_request", "{error}");
    assert_quiet(&mut alice).await;
}

#[tokio::test]
async fn timeout_without_ack_is_rejected_and_delivers_nothing() {
    let server = TestServer::start().await;
    let mut clients = members(&server, "orders", &["alice"]).await;
    let alice = &mut clients[0];
    let message = json!({ "type": "order" });

    for flag in [json!(null), json!(false)] {
        let mut send = json!({ "clientId": alice.client_id, "message": message, "timeoutMs": 300 });
        let mut broadcast =
            json!({ "to": { "room": "orders" }, "message": message, "timeoutMs": 300 });
        if !flag.is_null() {
            send["ack"] = flag.clone();
            broadcast["ack"] = flag;
        }
        assert_error(&server.post("/api/send", send).await, 400, "bad_request");
        assert_error(
            &server.post("/api/broadcast", broadcast).await,
            400,
            "bad_request",
        );
    }
    assert_quiet(alice).await;
}

#[tokio::test]
async fn a_zero_ack_timeout_is_rejected_and_delivers_nothing() {
    let server = TestServer::start().await;
    let mut clients = members(&server, "orders", &["alice"]).await;
    let alice = &mut clients[0];
    let message = json!({ "type": "order" });

    let send = server
        .post(
            "/api/send",
            json!({ "clientId": alice.client_id, "message": message, "ack": true, "timeoutMs": 0 }),
        )
        .await;
    assert_error(&send, 400, "bad_request");
    let broadcast = server
        .post(
            "/api/broadcast",
            json!({ "to": { "room": "orders" }, "message": message, "ack": true, "timeoutMs": 0 }),
        )
        .await;
    assert_error(&broadcast, 400, "bad_request");
    assert_quiet(alice).await;
}

#[tokio::test]
async fn an_acked_message_without_a_type_is_rejected() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    for message in [json!("hello"), json!({ "item": "no type" })] {
        let answer = server
            .post(
                "/api/send",
                json!({ "clientId": alice.client_id, "message": message, "ack": true }),
            )
            .await;
        assert_error(&answer, 400, "bad_request");
    }
    assert_quiet(&mut alice).await;
}

#[tokio::test]
async fn ack_to_an_unknown_client_is_not_found() {
    let server = TestServer::start().await;
    let answer = server
        .post(
            "/api/send",
            json!({ "clientId": "no-such-client", "message": { "type": "order" }, "ack": true }),
        )
        .await;
    assert_error(&answer, 404, "not_found");
}
