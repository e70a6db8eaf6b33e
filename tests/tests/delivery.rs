//! Acknowledged delivery (CONTRACT §7), compression (§6) and room batching (§5
//! `batch_messages`, §9 `/api/broadcast` with `batch`), end to end.
//!
//! "Nothing else arrived" is checked with [`assert_quiet`]: a `ping` with an id whose
//! `pong` must be the next message. The server queues what an API request sends before
//! it answers that request, so anything it sent would arrive before the `pong`.

use std::time::Duration;

use reqwest::Method;
use roomcast_protocol::codec::{DEFAULT_INFLATE_LIMIT, inflate};
use roomcast_server::Settings;
use roomcast_tests::{Client, TestServer, WAIT, response};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Asserts an API error: the status and `error.code`.
#[track_caller]
fn assert_error(answer: &(u16, Value), status: u16, code: &str) {
    let (got, body) = answer;
    assert_eq!(*got, status, "status of {body}");
    assert_eq!(body["error"]["code"], code, "{body}");
}

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

/// Answers a ping so that everything queued before it has been read and dropped.
async fn settle(client: &mut Client) {
    let pong = client
        .request(json!({ "type": "ping" }), json!("settle"))
        .await;
    assert_eq!(pong["type"], "pong", "{pong}");
}

/// The next message is the answer to a ping sent now: nothing else was pending.
async fn assert_quiet(client: &mut Client) {
    client.send(json!({ "type": "ping", "id": "quiet" })).await;
    let next = client.recv().await;
    assert_eq!(next["id"], "quiet", "expected nothing pending, got {next}");
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

/// A client that asked for `compress=gzip`, authenticated as `user`.
async fn login_compressed(server: &TestServer, user: &str) -> Client {
    let mut client = server
        .connect_url(&format!("{}?compress=gzip", server.ws_url()))
        .await;
    client
        .send(json!({ "type": "auth", "token": server.token(user) }))
        .await;
    let ok = client.expect("auth_ok").await;
    client.client_id = ok["clientId"].as_str().expect("clientId").to_owned();
    client
}

/// The message inside a `compressed` one.
#[track_caller]
fn unpack(compressed: &Value) -> Value {
    assert_eq!(compressed["type"], "compressed", "{compressed}");
    assert!(
        compressed["timestamp"].is_u64(),
        "timestamp in {compressed}"
    );
    let data = compressed["data"].as_str().expect("`data` string");
    assert!(data.starts_with("gzip:"), "{data}");
    let json = inflate(data, DEFAULT_INFLATE_LIMIT).expect("valid gzip+base64");
    serde_json::from_str(&json).expect("the inflated data is JSON")
}

/// An application message whose JSON is exactly `len` bytes.
fn message_of_len(len: usize) -> Value {
    let empty = json!({ "type": "sized", "pad": "" }).to_string().len();
    let message = json!({ "type": "sized", "pad": "x".repeat(len - empty) });
    assert_eq!(message.to_string().len(), len);
    message
}

/// Posts a batched room broadcast that must be accepted; returns `pending`.
async fn batch(server: &TestServer, room: &str, message: &Value) -> u64 {
    let (status, body) = server
        .post(
            "/api/broadcast",
            json!({ "to": { "room": room }, "message": message, "batch": true }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["batched"], true, "{body}");
    body["pending"]
        .as_u64()
        .unwrap_or_else(|| panic!("no `pending` in {body}"))
}

/// The next message is a `batch_messages` of `room` holding exactly `messages`.
async fn expect_batch(client: &mut Client, room: &str, messages: &[Value]) {
    let got = client.expect("batch_messages").await;
    assert_eq!(got["room"], room, "{got}");
    assert_eq!(got["messages"], json!(messages), "{got}");
    assert_eq!(got["count"], messages.len(), "{got}");
    assert!(got["timestamp"].is_u64(), "{got}");
}

fn tick(seq: usize) -> Value {
    json!({ "type": "tick", "seq": seq })
}

/// Settings with this batch size and window.
fn batching(max: usize, window_ms: u64) -> Settings {
    Settings {
        batch_max_messages: Some(max),
        batch_window_ms: Some(window_ms),
        ..Settings::default()
    }
}

/// Logs in each user, joins them to `room` and drains presence noise.
async fn members(server: &TestServer, room: &str, users: &[&str]) -> Vec<Client> {
    let mut clients = Vec::new();
    for user in users {
        let mut client = server.login(user).await;
        client.join(room).await;
        clients.push(client);
    }
    for client in &mut clients {
        settle(client).await;
    }
    clients
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

// ---------------------------------------------------------------------------------------
// Compression
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_large_broadcast_arrives_compressed_only_to_clients_that_asked() {
    let server = TestServer::start().await;
    let mut zipped = login_compressed(&server, "zipped").await;
    zipped.join("news").await;
    let mut plain = server.login("plain").await;
    plain.join("news").await;
    settle(&mut zipped).await;
    let message = json!({ "type": "article", "body": "lorem ipsum ".repeat(200) });
    assert!(message.to_string().len() > 1024);

    let (status, body) = server
        .post(
            "/api/broadcast",
            json!({ "to": { "room": "news" }, "message": message }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let plain_got = plain.recv().await;
    assert_eq!(plain_got, message, "the plain client gets plain JSON");
    let inflated = unpack(&zipped.recv().await);
    assert_eq!(
        inflated, plain_got,
        "compressed holds exactly the plain JSON"
    );
    assert_quiet(&mut zipped).await;
    assert_quiet(&mut plain).await;
}

#[tokio::test]
async fn a_small_message_arrives_plain_even_to_a_compressing_client() {
    let server = TestServer::start().await;
    let mut zipped = login_compressed(&server, "zipped").await;
    zipped.join("news").await;
    let mut plain = server.login("plain").await;
    plain.join("news").await;
    settle(&mut zipped).await;
    let message = json!({ "type": "headline", "text": "short" });

    let (status, body) = server
        .post(
            "/api/broadcast",
            json!({ "to": { "room": "news" }, "message": message }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(zipped.recv().await, message);
    assert_eq!(plain.recv().await, message);
}

#[tokio::test]
async fn a_custom_threshold_compresses_from_exactly_that_size() {
    let threshold = 300;
    let server = TestServer::with(Settings {
        compression_threshold: Some(threshold),
        ..Settings::default()
    })
    .await;
    let mut zipped = login_compressed(&server, "zipped").await;

    let under = message_of_len(threshold - 1);
    let at = message_of_len(threshold);
    for message in [&under, &at] {
        let (status, body) = server
            .post(
                "/api/send",
                json!({ "clientId": zipped.client_id, "message": message }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(zipped.recv().await, under, "one byte under goes plain");
    assert_eq!(
        unpack(&zipped.recv().await),
        at,
        "at the threshold: compressed"
    );
    assert_quiet(&mut zipped).await;
}

#[tokio::test]
async fn a_large_chat_arrives_compressed_to_a_compressing_member() {
    let server = TestServer::start().await;
    let mut zipped = login_compressed(&server, "zipped").await;
    zipped.join("talk").await;
    let mut plain = server.login("plain").await;
    plain.join("talk").await;
    settle(&mut zipped).await;
    let content = "chatter ".repeat(250);

    zipped
        .send(json!({ "type": "chat", "room": "talk", "content": content }))
        .await;
    let plain_chat = plain.expect("chat").await;
    assert_eq!(plain_chat["message"], content.as_str());
    let inflated = unpack(&zipped.recv().await);
    assert_eq!(inflated, plain_chat, "the sender's own copy, compressed");

    plain
        .send(json!({ "type": "chat", "room": "talk", "content": content }))
        .await;
    let echoed = plain.expect("chat").await;
    assert_eq!(unpack(&zipped.recv().await), echoed);
    assert_quiet(&mut zipped).await;
}

#[tokio::test]
async fn an_unsupported_compress_value_gets_plain_messages() {
    let server = TestServer::start().await;
    let mut client = server
        .connect_url(&format!("{}?compress=brotli", server.ws_url()))
        .await;
    client
        .send(json!({ "type": "auth", "token": server.token("alice") }))
        .await;
    let ok = client.expect("auth_ok").await;
    let message = json!({ "type": "article", "body": "lorem ipsum ".repeat(200) });
    let (status, body) = server
        .post(
            "/api/send",
            json!({ "clientId": ok["clientId"], "message": message }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(client.recv().await, message);
}

// ---------------------------------------------------------------------------------------
// Batching
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_full_batch_goes_out_at_once_and_the_rest_after_the_window() {
    let server = TestServer::with(batching(5, 2000)).await;
    let mut clients = members(&server, "scores", &["alice", "bob"]).await;
    let ticks: Vec<Value> = (0..12).map(tick).collect();

    let mut pending = Vec::new();
    for message in &ticks[..10] {
        pending.push(batch(&server, "scores", message).await);
    }
    assert_eq!(pending, [1, 2, 3, 4, 0, 1, 2, 3, 4, 0]);
    // Both full batches were sent before the HTTP calls that filled them answered.
    for client in &mut clients {
        expect_batch(client, "scores", &ticks[..5]).await;
        expect_batch(client, "scores", &ticks[5..10]).await;
        assert_quiet(client).await;
    }

    assert_eq!(batch(&server, "scores", &ticks[10]).await, 1);
    assert_eq!(batch(&server, "scores", &ticks[11]).await, 2);
    for client in &mut clients {
        assert_quiet(client).await;
    }
    for client in &mut clients {
        expect_batch(client, "scores", &ticks[10..]).await;
        assert_quiet(client).await;
    }
}

#[tokio::test]
async fn a_single_message_goes_out_as_a_batch_of_one_after_the_window() {
    let server = TestServer::with(batching(50, 100)).await;
    let mut clients = members(&server, "scores", &["alice"]).await;
    let alice = &mut clients[0];

    assert_eq!(batch(&server, "scores", &tick(0)).await, 1);
    expect_batch(alice, "scores", &[tick(0)]).await;
    assert_quiet(alice).await;
}

#[tokio::test]
async fn a_batch_still_waiting_at_shutdown_goes_out_before_the_close() {
    // A window far longer than the test: only the shutdown can send it.
    let server = TestServer::with(batching(50, 3_600_000)).await;
    let mut clients = members(&server, "ticker", &["alice"]).await;
    let messages = [tick(1), tick(2)];
    for message in &messages {
        batch(&server, "ticker", message).await;
    }
    let stopping = tokio::spawn(server.stop());
    let (seen, closed) = clients[0].closed().await;
    assert_eq!(closed, roomcast_tests::Closed::Code(1001));
    let batches: Vec<&Value> = seen
        .iter()
        .filter(|m| m["type"] == "batch_messages")
        .collect();
    assert_eq!(batches.len(), 1, "{seen:?}");
    assert_eq!(batches[0]["messages"], json!(messages), "{seen:?}");
    stopping.await.expect("the server stopped");
}

#[tokio::test]
async fn batch_without_a_room_target_is_rejected() {
    let server = TestServer::with(batching(2, 60_000)).await;
    let mut clients = members(&server, "scores", &["alice"]).await;
    let alice = &mut clients[0];

    let targets = [
        json!({ "all": true }),
        json!({ "rooms": ["scores"] }),
        json!({ "user": "alice" }),
        json!({ "users": ["alice"] }),
        json!({ "role": "admin" }),
    ];
    for to in targets {
        let answer = server
            .post(
                "/api/broadcast",
                json!({ "to": to, "message": tick(0), "batch": true }),
            )
            .await;
        assert_error(&answer, 400, "bad_request");
    }
    assert_quiet(alice).await;
    // Nothing rejected was queued: the room's batch starts empty.
    assert_eq!(batch(&server, "scores", &tick(1)).await, 1);
}

#[tokio::test]
async fn batch_with_ack_is_rejected() {
    let server = TestServer::with(batching(2, 60_000)).await;
    let mut clients = members(&server, "scores", &["alice"]).await;
    let alice = &mut clients[0];

    let answer = server
        .post(
            "/api/broadcast",
            json!({ "to": { "room": "scores" }, "message": tick(0), "batch": true, "ack": true }),
        )
        .await;
    assert_error(&answer, 400, "bad_request");
    assert_quiet(alice).await;
    assert_eq!(batch(&server, "scores", &tick(1)).await, 1);
}

#[tokio::test]
async fn a_batched_message_without_a_type_is_rejected() {
    let server = TestServer::with(batching(2, 60_000)).await;
    let answer = server
        .post(
            "/api/broadcast",
            json!({ "to": { "room": "scores" }, "message": { "seq": 0 }, "batch": true }),
        )
        .await;
    assert_error(&answer, 400, "bad_request");
    assert_eq!(batch(&server, "scores", &tick(1)).await, 1);
}

#[tokio::test]
async fn non_members_get_no_batch() {
    let server = TestServer::with(batching(2, 60_000)).await;
    let mut clients = members(&server, "scores", &["alice"]).await;
    let mut outsider = server.login("outsider").await;
    outsider.join("elsewhere").await;

    assert_eq!(batch(&server, "scores", &tick(0)).await, 1);
    assert_eq!(batch(&server, "scores", &tick(1)).await, 0);
    expect_batch(&mut clients[0], "scores", &[tick(0), tick(1)]).await;
    assert_quiet(&mut outsider).await;
}

#[tokio::test]
async fn a_member_that_leaves_before_the_flush_gets_no_batch() {
    let server = TestServer::with(batching(3, 60_000)).await;
    let mut clients = members(&server, "scores", &["stayer", "leaver"]).await;
    let mut leaver = clients.pop().expect("leaver");
    let stayer = &mut clients[0];

    assert_eq!(batch(&server, "scores", &tick(0)).await, 1);
    let left = leaver
        .request(json!({ "type": "leave", "room": "scores" }), json!("leave"))
        .await;
    assert_eq!(left["type"], "reply", "{left}");
    assert_eq!(
        stayer.expect("user_leave").await["user"]["userId"],
        "leaver"
    );
    assert_eq!(batch(&server, "scores", &tick(1)).await, 2);
    assert_eq!(batch(&server, "scores", &tick(2)).await, 0);

    expect_batch(stayer, "scores", &[tick(0), tick(1), tick(2)]).await;
    assert_quiet(&mut leaver).await;
}
