//! Bad input over the WebSocket (CONTRACT §1, §3, §8): every malformed frame gets exactly
//! the contract's answer, the offending connection stays usable (or is closed with the
//! contract's code), and a second, healthy client keeps chatting throughout.

use std::time::Duration;

use roomcast_server::Settings;
use roomcast_tests::{Client, Closed, TestServer};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// Long enough for a wrongly sent frame to arrive on loopback.
const QUIET: Duration = Duration::from_millis(300);

/// The room the bystander (and, where it matters, the offender) chats in.
const ROOM: &str = "lobby";

/// An authenticated client in [`ROOM`] that nobody misbehaves on.
async fn bystander(server: &TestServer) -> Client {
    let mut client = server.login("bystander").await;
    client.join(ROOM).await;
    client
}

/// The bystander still chats (its own `chat`, then the reply) and pings.
async fn assert_healthy(client: &mut Client, note: &str) {
    client
        .send(json!({ "type": "chat", "room": ROOM, "content": note, "id": "healthy" }))
        .await;
    let chat = client.expect("chat").await;
    assert_eq!(chat["message"], note, "{chat}");
    let reply = client.expect("reply").await;
    assert_eq!(reply["id"], "healthy", "{reply}");
    assert_eq!(reply["ok"], true, "{reply}");
    assert_pong(client, json!("healthy-ping")).await;
}

/// A `ping` with `id` is answered by the very next frame: a `pong` with that id.
async fn assert_pong(client: &mut Client, id: Value) {
    client.send(json!({ "type": "ping", "id": id })).await;
    let pong = client.recv().await;
    assert_eq!(
        pong["type"], "pong",
        "expected the pong for {id}, got {pong}"
    );
    assert_eq!(pong["id"], id, "{pong}");
}

/// The next frame is an `error` with `code` and a non-empty message, carrying `id` when
/// given and no `id` otherwise; returns it.
async fn expect_error(client: &mut Client, code: &str, id: Option<&Value>, case: &str) -> Value {
    let error = client.recv().await;
    assert_eq!(error["type"], "error", "{case}: {error}");
    assert_eq!(error["code"], code, "{case}: {error}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{case}: error without a message: {error}"
    );
    match id {
        Some(id) => assert_eq!(&error["id"], id, "{case}: {error}"),
        None => assert!(error.get("id").is_none(), "{case}: unexpected id: {error}"),
    }
    error
}

/// Says goodbye on every still-open client (so the server need not wait out their close
/// handshakes), then stops the server and checks that `run` returned cleanly.
async fn shut_down(server: TestServer, clients: Vec<Client>) {
    for client in clients {
        client.close().await;
    }
    server.stop().await;
}

/// A `chat` frame for [`ROOM`] whose content pads it to exactly `len` bytes.
fn chat_frame_of_len(len: usize) -> String {
    let bare = json!({ "type": "chat", "room": ROOM, "content": "" }).to_string();
    let pad = len.checked_sub(bare.len()).expect("len fits a chat frame");
    let content = "x".repeat(pad);
    let frame = json!({ "type": "chat", "room": ROOM, "content": content }).to_string();
    assert_eq!(frame.len(), len);
    frame
}

/// Malformed text frames: (case, frame, the `id` the error must carry as JSON, or `""`
/// for none).
#[rustfmt::skip]
const MALFORMED: [(&str, &str, &str); 17] = [
    ("invalid JSON",         r#"{"type":"ping""#,                           ""),
    ("a JSON array",         r#"[{"type":"ping"}]"#,                        ""),
    ("a JSON string",        r#""ping""#,                                   ""),
    ("a JSON number",        "42",                                          ""),
    ("no type",              r#"{"id":"t1","room":"lobby"}"#,               r#""t1""#),
    ("type not a string",    r#"{"type":5,"id":2}"#,                        "2"),
    ("type null",            r#"{"type":null,"id":"t3"}"#,                  r#""t3""#),
    ("join without room",    r#"{"type":"join","id":"j1"}"#,                r#""j1""#),
    ("chat without content", r#"{"type":"chat","room":"lobby","id":"c1"}"#, r#""c1""#),
    ("chat without room",    r#"{"type":"chat","content":"hi","id":7}"#,    "7"),
    ("auth without token",   r#"{"type":"auth","id":"a1"}"#,                r#""a1""#),
    ("room a number",        r#"{"type":"join","room":5,"id":"r5"}"#,       r#""r5""#),
    ("room empty",           r#"{"type":"join","room":"","id":"r0"}"#,      r#""r0""#),
    ("token a number",       r#"{"type":"auth","token":1,"id":"a2"}"#,      r#""a2""#),
    ("id an object",         r#"{"type":"ping","id":{"n":1}}"#,             ""),
    ("id an array",          r#"{"type":"ping","id":[1]}"#,                 ""),
    ("id a boolean",         r#"{"type":"ping","id":true}"#,                ""),
];

#[tokio::test]
async fn malformed_frames_get_bad_request_and_the_connection_stays_open() {
    let mut cases: Vec<(&str, Message, Option<Value>)> = MALFORMED
        .iter()
        .map(|&(case, text, id)| {
            let id = (!id.is_empty()).then(|| serde_json::from_str(id).expect("id JSON"));
            (case, Message::text(text), id)
        })
        .collect();
    // Binary frames are refused whatever they hold, even a valid message.
    let binary = br#"{"type":"ping","id":"b1"}"#.to_vec();
    cases.push(("a binary frame", Message::binary(binary), None));
    let server = TestServer::with(Settings {
        // Every case plus its ping fits in the burst: this test is not about the limit.
        rate_limit_burst: Some(1000),
        ..Settings::default()
    })
    .await;
    let mut healthy = bystander(&server).await;
    let mut offender = server.login("offender").await;
    for (n, (case, frame, id)) in cases.into_iter().enumerate() {
        offender.send_frame(frame).await;
        expect_error(&mut offender, "bad_request", id.as_ref(), case).await;
        // The very next frame answers the ping: one error per bad frame, nothing else.
        assert_pong(&mut offender, json!(format!("after-{n}"))).await;
        assert_healthy(&mut healthy, case).await;
    }
    // Nothing the bad frames named happened: the offender joined no room.
    offender.expect_silence(QUIET).await;
    healthy.expect_silence(QUIET).await;
    shut_down(server, vec![healthy, offender]).await;
}

#[tokio::test]
async fn a_malformed_auth_before_authenticating_is_bad_request_not_a_close() {
    let server = TestServer::start().await;
    let mut healthy = bystander(&server).await;
    let mut client = server.connect().await;
    client.send(json!({ "type": "auth", "id": "a1" })).await;
    expect_error(
        &mut client,
        "bad_request",
        Some(&json!("a1")),
        "auth without token",
    )
    .await;
    client.send_text("not json").await;
    expect_error(&mut client, "bad_request", None, "invalid JSON").await;
    // Still open and still waiting for a real `auth`.
    client
        .send(json!({ "type": "auth", "token": server.token("late"), "id": "a2" }))
        .await;
    let ok = client.expect("auth_ok").await;
    assert_eq!(ok["userId"], "late", "{ok}");
    assert_healthy(&mut healthy, "after a bad auth").await;
    shut_down(server, vec![healthy, client]).await;
}

#[tokio::test]
async fn an_unknown_type_without_a_handler_is_bad_request() {
    let server = TestServer::start().await;
    let mut healthy = bystander(&server).await;
    let mut client = server.login("alice").await;
    client
        .send(json!({ "type": "typing", "room": ROOM, "id": "u1" }))
        .await;
    let error = expect_error(&mut client, "bad_request", Some(&json!("u1")), "typing").await;
    assert!(
        error["message"].as_str().unwrap_or("").contains("typing"),
        "the message names the type: {error}"
    );
    client.send(json!({ "type": "typing" })).await;
    expect_error(&mut client, "bad_request", None, "typing without id").await;
    assert_pong(&mut client, json!(1)).await;
    // Before `auth` an unknown type is refused for that reason instead.
    let mut anonymous = server.connect().await;
    anonymous
        .send(json!({ "type": "typing", "id": "u2" }))
        .await;
    expect_error(
        &mut anonymous,
        "not_authenticated",
        Some(&json!("u2")),
        "typing",
    )
    .await;
    assert_healthy(&mut healthy, "after unknown types").await;
    shut_down(server, vec![healthy, client, anonymous]).await;
}

#[tokio::test]
async fn bad_messaging_requests_get_the_contract_error_and_change_nothing() {
    let server = TestServer::with(Settings {
        max_content_bytes: Some(64),
        ..Settings::default()
    })
    .await;
    let mut client = server.login("alice").await;
    let cases = [
        (
            json!({ "type": "private", "content": "no target" }),
            "bad_request",
        ),
        (
            json!({ "type": "private", "targetUserId": "", "content": "hi" }),
            "bad_request",
        ),
        (
            json!({ "type": "private", "targetUserId": "bob", "content": "x".repeat(100) }),
            "too_large",
        ),
        (
            json!({ "type": "mark_read", "notificationId": "00000000000000ff" }),
            "not_found",
        ),
        (json!({ "type": "mark_read" }), "bad_request"),
        (
            json!({ "type": "subscribe", "topic": "stocks", "keys": [] }),
            "bad_request",
        ),
        (
            json!({ "type": "subscribe", "topic": "", "keys": ["AAPL"] }),
            "bad_request",
        ),
        (
            json!({ "type": "subscribe", "topic": "stocks", "keys": "AAPL" }),
            "bad_request",
        ),
        (json!({ "type": "unsubscribe" }), "bad_request"),
        (json!({ "type": "ack" }), "bad_request"),
        (
            json!({ "type": "join", "room": "lobby", "since": "not an id!" }),
            "bad_request",
        ),
    ];
    for (n, (mut message, code)) in cases.into_iter().enumerate() {
        message["id"] = json!(n);
        client.send(message.clone()).await;
        expect_error(&mut client, code, Some(&json!(n)), &message.to_string()).await;
    }
    // Nothing was stored for bob, and nothing was subscribed.
    let (status, body) = server.get("/api/users/bob/notifications").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["items"], json!([]));
    let mut bob = server.login("bob").await;
    bob.expect_silence(Duration::from_millis(300)).await;
    assert_pong(&mut client, json!("still open")).await;
    shut_down(server, vec![client, bob]).await;
}

#[tokio::test]
async fn a_frame_over_the_size_limit_closes_with_1009() {
    let server = TestServer::with(Settings {
        max_frame_bytes: Some(1024),
        ..Settings::default()
    })
    .await;
    let mut healthy = bystander(&server).await;
    let mut client = server.login("alice").await;
    client.join(ROOM).await;
    healthy.expect("user_join").await;
    // Frames up to the limit, inclusive, are accepted.
    for len in [1000, 1024] {
        client.send_text(&chat_frame_of_len(len)).await;
        let chat = client.expect("chat").await;
        assert_eq!(chat["from"]["userId"], "alice", "{len} bytes: {chat}");
        let seen = healthy.expect("chat").await;
        assert_eq!(seen["id"], chat["id"]);
    }
    client.send_text(&chat_frame_of_len(2000)).await;
    let (seen, closed) = client.closed().await;
    assert_eq!(
        closed,
        Closed::Code(1009),
        "messages before the close: {seen:?}"
    );
    assert!(
        seen.iter().all(|m| m["type"] != "chat"),
        "the oversize chat was not delivered: {seen:?}"
    );
    // The oversize chat reached nobody, and the room saw alice leave.
    let left = healthy.expect("user_leave").await;
    assert_eq!(left["user"]["userId"], "alice", "{left}");
    assert_healthy(&mut healthy, "after 1009").await;
    // One byte over is already too much.
    let mut bob = server.login("bob").await;
    bob.send_text(&format!("{}{}", chat_frame_of_len(1024), " "))
        .await;
    assert_eq!(bob.close_code().await, 1009);
    assert_healthy(&mut healthy, "after the second 1009").await;
    shut_down(server, vec![healthy, client, bob]).await;
}

/// A server whose connections get bursts of 5 and one message per second after that.
async fn slow_server() -> TestServer {
    TestServer::with(Settings {
        rate_limit_per_sec: Some(1),
        rate_limit_burst: Some(5),
        ..Settings::default()
    })
    .await
}

/// A client authenticated by `?token=` on the upgrade, so that no `auth` message takes
/// from its rate budget; `auth_ok` consumed.
async fn login_by_query(server: &TestServer, user: &str) -> Client {
    let url = format!("{}?token={}", server.ws_url(), server.token(user));
    let mut client = server.connect_url(&url).await;
    let ok = client.expect("auth_ok").await;
    assert_eq!(ok["userId"], user, "{ok}");
    client
}

#[tokio::test]
async fn past_the_burst_messages_get_rate_limited_with_their_id() {
    let server = slow_server().await;
    let mut healthy = bystander(&server).await;
    let mut client = login_by_query(&server, "alice").await;
    for n in 0..10 {
        client.send(json!({ "type": "ping", "id": n })).await;
    }
    for n in 0..5 {
        let pong = client.recv().await;
        assert_eq!(pong["type"], "pong", "ping {n}: {pong}");
        assert_eq!(pong["id"], n, "{pong}");
    }
    for n in 5..10 {
        expect_error(
            &mut client,
            "rate_limited",
            Some(&json!(n)),
            "ping past the burst",
        )
        .await;
    }
    // Without an id the error comes without one.
    client.send(json!({ "type": "ping" })).await;
    expect_error(&mut client, "rate_limited", None, "ping without id").await;
    client.expect_silence(QUIET).await;
    // Another connection has its own budget.
    assert_healthy(&mut healthy, "while alice is limited").await;
    shut_down(server, vec![healthy, client]).await;
}

#[tokio::test]
async fn a_flood_past_100_rate_limited_errors_closes_with_4008() {
    let server = slow_server().await;
    let mut healthy = bystander(&server).await;
    let mut client = login_by_query(&server, "alice").await;
    for n in 0..120 {
        client.send(json!({ "type": "ping", "id": n })).await;
    }
    let (seen, closed) = client.closed().await;
    let count = |kind: &str| seen.iter().filter(|m| m["type"] == kind).count();
    let limited = seen.iter().filter(|m| m["code"] == "rate_limited").count();
    assert_eq!(count("pong"), 5, "{seen:?}");
    assert_eq!(limited, 100, "rate_limited errors before the close");
    assert_eq!(count("error"), 100, "only rate_limited errors: {seen:?}");
    assert_eq!(closed, Closed::Code(4008));
    assert_healthy(&mut healthy, "after the flood").await;
    shut_down(server, vec![healthy, client]).await;
}

#[tokio::test]
async fn pongs_are_not_rate_limited() {
    let server = slow_server().await;
    let mut client = login_by_query(&server, "alice").await;
    for _ in 0..50 {
        client.send(json!({ "type": "pong" })).await;
    }
    client.expect_silence(QUIET).await;
    // The whole burst is still there: the pongs took none of it.
    for n in 0..5 {
        assert_pong(&mut client, json!(n)).await;
    }
    shut_down(server, vec![client]).await;
}

#[tokio::test]
async fn chat_content_over_the_limit_is_too_large() {
    let server = TestServer::with(Settings {
        max_content_bytes: Some(64),
        ..Settings::default()
    })
    .await;
    let mut healthy = bystander(&server).await;
    let mut client = server.login("alice").await;
    client.join(ROOM).await;
    healthy.expect("user_join").await;
    let big = "x".repeat(100);
    client
        .send(json!({ "type": "chat", "room": ROOM, "content": big, "id": "big" }))
        .await;
    let error = expect_error(&mut client, "too_large", Some(&json!("big")), "big chat").await;
    assert_eq!(error["type"], "error");
    healthy.expect_silence(QUIET).await;
    // The connection is fine and small messages still go through.
    client
        .send(json!({ "type": "chat", "room": ROOM, "content": "small", "id": "small" }))
        .await;
    assert_eq!(client.expect("chat").await["message"], "small");
    assert_eq!(client.expect("reply").await["id"], "small");
    assert_eq!(healthy.expect("chat").await["message"], "small");
    assert_healthy(&mut healthy, "after too_large").await;
    shut_down(server, vec![healthy, client]).await;
}

/// The Prometheus text of `/metrics`.
async fn metrics_text(server: &TestServer) -> String {
    server
        .http(reqwest::Method::GET, "/metrics")
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

/// `roomcast_queue_drops_total` from `/metrics`.
async fn queue_drops(server: &TestServer) -> u64 {
    metrics_text(server)
        .await
        .lines()
        .find_map(|l| l.strip_prefix("roomcast_queue_drops_total "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .expect("roomcast_queue_drops_total")
}

/// A client that stops reading while the server has much to send is closed with 4029 once
/// its send queue overflows; the overflow is counted in `/metrics`, and a reading client in
/// the same room gets every message meanwhile (a slow client never slows the others).
#[tokio::test]
async fn a_client_that_stops_reading_is_closed_as_a_slow_consumer() {
    let server = TestServer::with(Settings {
        send_queue_bytes: Some(4 * 64 * 1024),
        ..Settings::default()
    })
    .await;
    let mut slow = server.login("slow").await;
    slow.join(ROOM).await;
    let mut fast = bystander(&server).await;
    let _ = slow.wait_for("user_join").await;
    // 64 KiB each: enough, 200 times, to fill the socket buffers and then the queue.
    let payload = "x".repeat(64 * 1024);
    let broadcasts = async {
        let mut reader_got = 0;
        for n in 0..200 {
            let message = json!({ "type": "ticker", "n": n, "payload": payload });
            let (status, body) = server
                .post(
                    "/api/broadcast",
                    json!({ "to": { "room": ROOM }, "message": message }),
                )
                .await;
            assert_eq!(status, 200, "{body}");
            let got = fast.wait_for("ticker").await; // the slow client's user_leave may come in between
            assert_eq!(
                got["n"], n,
                "the reading client gets every message, in order"
            );
            reader_got += 1;
        }
        reader_got
    };
    // The slow client starts reading once the server has counted the overflow, not after
    // the last broadcast: the server gives a client that does not read its close frame
    // only a short grace, which a loaded machine could spend on the broadcasts alone.
    let slow_side = async {
        while queue_drops(&server).await == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        slow.closed().await
    };
    let (reader_got, (seen, closed)) = tokio::join!(broadcasts, slow_side);
    assert_eq!(reader_got, 200);
    assert_eq!(closed, Closed::Code(4029), "after {} messages", seen.len());
    assert!(
        seen.len() < 200,
        "the slow client was closed before it got everything"
    );
    let text = metrics_text(&server).await;
    let drops = text
        .lines()
        .find_map(|l| l.strip_prefix("roomcast_queue_drops_total "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .expect("roomcast_queue_drops_total");
    assert!(drops >= 1, "{text}");
    assert!(
        text.contains("roomcast_closes_total{code=\"4029\"} 1"),
        "{text}"
    );
    let mut fast_tail = Vec::new();
    fast.send(json!({ "type": "ping", "id": "tail" })).await;
    loop {
        let message = fast.recv().await;
        if message["id"] == "tail" {
            break;
        }
        fast_tail.push(message["type"].clone());
    }
    assert!(fast_tail.iter().all(|t| t == "user_leave"), "{fast_tail:?}");
    assert_healthy(&mut fast, "still here").await;
}
