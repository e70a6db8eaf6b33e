//! End-to-end tests of a connection's life before and around its identity (CONTRACT §2,
//! §3, §5, §8): authentication with `?token=` and with `auth`, what an unauthenticated
//! connection may do, the auth timeout, token refresh and expiry, client `ping` and the
//! server's heartbeat, the per-user and total connection limits, and default rooms.
//! After each refusal the server must keep serving everyone else.

use std::time::{Duration, Instant};

use roomcast_server::{Settings, now_ms};
use roomcast_tests::{Client, Closed, SECRET, TestServer, WAIT, sign};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// `{"alg":"none","typ":"JWT"}`, base64url without padding.
const ALG_NONE_HEADER: &str = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";

type RawSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn now_s() -> u64 {
    now_ms() / 1000
}

/// Tokens the server must refuse, each with a label used as the request id.
fn bad_tokens(server: &TestServer) -> Vec<(&'static str, String)> {
    let valid_claims = json!({ "sub": "mallory", "exp": now_s() + 3600 });
    let hs512 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
        &valid_claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign HS512");
    let payload = server
        .token_with(valid_claims.clone())
        .split('.')
        .nth(1)
        .expect("payload segment")
        .to_owned();
    vec![
        ("wrong-secret", sign("not-the-server-secret", &valid_claims)),
        (
            "expired",
            server.token_with(json!({ "sub": "mallory", "exp": now_s() - 10 })),
        ),
        ("hs512", hs512),
        (
            "not-yet-valid",
            server.token_with(json!({ "sub": "mallory", "nbf": now_s() + 3600 })),
        ),
        ("alg-none", format!("{ALG_NONE_HEADER}.{payload}.")),
        ("garbage", "definitely-not-a-jwt".to_owned()),
        ("three-garbage-parts", "aaa.bbb.ccc".to_owned()),
        (
            "missing-sub",
            server.token_with(json!({ "name": "Mallory" })),
        ),
        ("missing-exp", sign(SECRET, &json!({ "sub": "mallory" }))),
    ]
}

/// `ts` is an integer millisecond timestamp within a minute of now.
fn assert_recent(ts: &Value) {
    let ts = ts.as_u64().unwrap_or_else(|| panic!("timestamp {ts}"));
    assert!(now_ms().abs_diff(ts) < 60_000, "timestamp {ts} is not now");
}

/// `message` is an `error` with this code, carrying `id` (or no `id` at all).
fn assert_error(message: &Value, code: &str, id: Option<&Value>) {
    assert_eq!(message["type"], "error", "{message}");
    assert_eq!(message["code"], code, "{message}");
    assert!(message["message"].is_string(), "{message}");
    assert_eq!(message.get("id"), id, "{message}");
}

/// `auth_ok` for `claims` (a token with `sub`, `exp` and maybe `name`/`roles`/`info`):
/// the public user object is built from the claims, `info` flattened into it.
fn assert_auth_ok(message: &Value, claims: &Value, rooms: &Value) {
    assert_eq!(message["type"], "auth_ok", "{message}");
    let client_id = message["clientId"].as_str().expect("clientId");
    assert!(!client_id.is_empty());
    assert_eq!(message["userId"], claims["sub"]);
    let mut user = json!({ "userId": claims["sub"] });
    for key in ["name", "roles"] {
        if let Some(value) = claims.get(key) {
            user[key] = value.clone();
        }
    }
    if let Some(info) = claims.get("info").and_then(Value::as_object) {
        for (key, value) in info {
            user[key] = value.clone();
        }
    }
    assert_eq!(message["user"], user, "{message}");
    assert_eq!(&message["rooms"], rooms, "{message}");
    let exp = claims["exp"].as_u64().expect("claims carry exp");
    assert_eq!(message["expiresAt"], exp * 1000, "{message}");
    assert_recent(&message["timestamp"]);
}

/// Sends `auth` with `token` and request id `id`; returns the next message.
async fn send_auth(client: &mut Client, token: &str, id: Option<&str>) -> Value {
    let mut auth = json!({ "type": "auth", "token": token });
    if let Some(id) = id {
        auth["id"] = json!(id);
    }
    client.send(auth).await;
    client.recv().await
}

/// Sends `auth` and expects a refusal: exactly one `error` with `code` (and the request
/// id), then the close `close_code`, and never an `auth_ok`.
async fn expect_auth_refused(client: &mut Client, token: &str, code: &str, close_code: u16) {
    client
        .send(json!({ "type": "auth", "token": token, "id": "refused" }))
        .await;
    let (seen, closed) = client.closed().await;
    assert_eq!(
        seen.len(),
        1,
        "exactly one error before the close: {seen:?}"
    );
    assert_error(&seen[0], code, Some(&json!("refused")));
    assert_eq!(closed, Closed::Code(close_code), "after {seen:?}");
}

/// A `ping` with an id is answered by a `pong` with that id: the connection is usable.
async fn assert_usable(client: &mut Client) {
    let pong = client
        .request(json!({ "type": "ping" }), json!("usable"))
        .await;
    assert_eq!(pong["type"], "pong", "{pong}");
}

/// A fresh user can still log in and ping: the server survived whatever came before.
async fn assert_still_serving(server: &TestServer) {
    let mut witness = server.login("witness").await;
    assert_usable(&mut witness).await;
    witness.close().await;
}

/// A raw upgrade: the socket, or the HTTP status of a refusal.
async fn upgrade(url: &str) -> Result<RawSocket, u16> {
    let result = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("upgrade timed out");
    match result {
        Ok((ws, _)) => Ok(ws),
        Err(WsError::Http(response)) => Err(response.status().as_u16()),
        Err(other) => panic!("upgrade failed without an HTTP status: {other}"),
    }
}

/// Retries `attempt` every 50 ms until it yields something, for at most [`WAIT`]: for
/// slots that free up when the server finishes a close.
async fn eventually<T>(what: &str, mut attempt: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = attempt().await {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Hangs up the clients (answering the close of those the server closed), then stops the
/// server, which would otherwise wait out the closing handshake of clients that no longer
/// read.
async fn finish(server: TestServer, clients: impl IntoIterator<Item = Client>) {
    for client in clients {
        client.close().await;
    }
    server.stop().await;
}

fn query_url(server: &TestServer, token: &str) -> String {
    format!("{}?token={token}", server.ws_url())
}

// ---- authentication with ?token= ----

#[tokio::test]
async fn query_token_gets_auth_ok_first_with_the_user_from_the_claims() {
    let server = TestServer::start().await;
    let claims = json!({
        "sub": "alice",
        "exp": now_s() + 3600,
        "name": "Alice",
        "roles": ["admin", "mod"],
        "info": { "avatar": "a.png", "level": 3 },
        // Standard and unknown claims are accepted and stay out of the user object.
        "aud": "some-app",
        "iat": now_s(),
        "nbf": now_s() - 5,
        "email": "alice@example.com",
    });
    let mut alice = server
        .connect_url(&query_url(&server, &server.token_with(claims.clone())))
        .await;
    let ok = alice.recv().await;
    assert_auth_ok(&ok, &claims, &json!([]));
    assert_usable(&mut alice).await;
    // A second connection of the same user gets its own clientId.
    let mut again = server
        .connect_url(&query_url(&server, &server.token_with(claims.clone())))
        .await;
    let other = again.expect("auth_ok").await;
    assert_ne!(other["clientId"], ok["clientId"]);
    finish(server, [alice, again]).await;
}

#[tokio::test]
async fn invalid_query_token_is_refused_with_401_before_the_upgrade() {
    // One slot in all: a refusal that leaked its slot would turn the next one into 503.
    let server = TestServer::with(Settings {
        max_connections: Some(1),
        ..Settings::default()
    })
    .await;
    for (label, token) in bad_tokens(&server) {
        match upgrade(&query_url(&server, &token)).await {
            Err(status) => assert_eq!(status, 401, "{label}"),
            Ok(_) => panic!("{label}: token accepted on the upgrade"),
        }
    }
    assert_still_serving(&server).await;
    server.stop().await;
}

// ---- authentication with the `auth` message ----

#[tokio::test]
async fn auth_message_gets_auth_ok_then_the_reply_with_its_id() {
    let server = TestServer::start().await;
    let claims = json!({
        "sub": "bob",
        "exp": now_s() + 600,
        "name": "Bob",
        "roles": ["user"],
        "info": { "team": "blue" },
    });
    let mut bob = server.connect().await;
    let ok = send_auth(&mut bob, &server.token_with(claims.clone()), Some("a1")).await;
    assert_auth_ok(&ok, &claims, &json!([]));
    let reply = bob.expect("reply").await;
    assert_eq!(reply["id"], "a1");
    assert_eq!(reply["ok"], true);
    // Without an id there is no reply, only the auth_ok.
    let mut carol = server.connect().await;
    let ok = send_auth(&mut carol, &server.token("carol"), None).await;
    assert_eq!(ok["type"], "auth_ok", "{ok}");
    carol.expect_silence(Duration::from_millis(300)).await;
    finish(server, [bob, carol]).await;
}

#[tokio::test]
async fn bad_token_in_auth_gets_auth_failed_then_4001() {
    let server = TestServer::start().await;
    for (label, token) in bad_tokens(&server) {
        let mut client = server.connect().await;
        client
            .send(json!({ "type": "auth", "token": token, "id": label }))
            .await;
        let (seen, closed) = client.closed().await;
        assert_eq!(seen.len(), 1, "{label}: {seen:?}");
        assert_error(&seen[0], "auth_failed", Some(&json!(label)));
        assert_eq!(closed, Closed::Code(4001), "{label}");
    }
    // Without an id the error carries none.
    let mut client = server.connect().await;
    let error = send_auth(&mut client, "garbage", None).await;
    assert_error(&error, "auth_failed", None);
    assert_eq!(client.close_code().await, 4001);
    assert_still_serving(&server).await;
    finish(server, [client]).await;
}

#[tokio::test]
async fn tokens_without_exp_are_accepted_when_the_server_allows_them() {
    let server = TestServer::with(Settings {
        allow_tokens_without_expiry: Some(true),
        ..Settings::default()
    })
    .await;
    let mut client = server.connect().await;
    let ok = send_auth(&mut client, &sign(SECRET, &json!({ "sub": "dave" })), None).await;
    assert_eq!(ok["type"], "auth_ok", "{ok}");
    assert_eq!(ok["userId"], "dave");
    assert!(ok.get("expiresAt").is_none(), "{ok}");
    finish(server, [client]).await;
}

// ---- before authentication ----

#[tokio::test]
async fn messages_before_auth_get_not_authenticated_and_the_connection_stays_open() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    let messages = [
        json!({ "type": "join", "room": "lobby" }),
        json!({ "type": "chat", "room": "lobby", "content": "hi" }),
        json!({ "type": "ping" }),
        json!({ "type": "typing", "room": "lobby" }),
    ];
    for (n, message) in messages.iter().enumerate() {
        let error = client.request(message.clone(), json!(n)).await;
        assert_error(&error, "not_authenticated", Some(&json!(n)));
        // Without an id: the error, without one.
        client.send(message.clone()).await;
        assert_error(&client.recv().await, "not_authenticated", None);
    }
    client.expect_silence(Duration::from_millis(200)).await;
    // The refused join changed nothing: a valid auth still works, in no room.
    let claims = json!({ "sub": "erin", "exp": now_s() + 3600 });
    let ok = send_auth(&mut client, &server.token_with(claims.clone()), None).await;
    assert_auth_ok(&ok, &claims, &json!([]));
    assert_usable(&mut client).await;
    assert_still_serving(&server).await;
    finish(server, [client]).await;
}

// ---- auth timeout ----

fn auth_timeout(ms: u64) -> Settings {
    Settings {
        auth_timeout_ms: Some(ms),
        ..Settings::default()
    }
}

#[tokio::test]
async fn idle_unauthenticated_connection_is_closed_with_4001() {
    let server = TestServer::with(auth_timeout(300)).await;
    let started = Instant::now();
    let mut client = server.connect().await;
    let (seen, closed) = client.closed().await;
    assert_eq!(closed, Closed::Code(4001), "after {seen:?}");
    assert!(seen.iter().all(|m| m["type"] != "auth_ok"), "{seen:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "closed after {:?}, before the auth timeout",
        started.elapsed()
    );
    assert_still_serving(&server).await;
    finish(server, [client]).await;
}

#[tokio::test]
async fn messages_other_than_auth_do_not_extend_the_auth_timeout() {
    let server = TestServer::with(auth_timeout(500)).await;
    let started = Instant::now();
    let mut client = server.connect().await;
    // Keep talking (every 100 ms, well inside the timeout) without ever authenticating.
    let closed = loop {
        client.send(json!({ "type": "ping" })).await;
        if let Ok((_, closed)) =
            tokio::time::timeout(Duration::from_millis(100), client.closed()).await
        {
            break closed;
        }
        assert!(
            started.elapsed() < Duration::from_millis(2000),
            "still open long after the auth timeout"
        );
    };
    assert_eq!(closed, Closed::Code(4001));
    finish(server, [client]).await;
}

#[tokio::test]
async fn authenticated_connections_outlive_the_auth_timeout() {
    let server = TestServer::with(auth_timeout(300)).await;
    let mut by_message = server.login("frank").await;
    let mut by_query = server
        .connect_url(&query_url(&server, &server.token("grace")))
        .await;
    by_query.expect("auth_ok").await;
    by_message.expect_silence(Duration::from_millis(700)).await;
    by_query.expect_silence(Duration::from_millis(100)).await;
    assert_usable(&mut by_message).await;
    assert_usable(&mut by_query).await;
    finish(server, [by_message, by_query]).await;
}

// ---- token refresh and expiry ----

#[tokio::test]
async fn refresh_with_a_new_token_of_the_same_user_sends_auth_ok_with_the_new_expiry() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    let first = json!({ "sub": "heidi", "exp": now_s() + 600, "name": "Heidi" });
    let ok = send_auth(&mut client, &server.token_with(first.clone()), None).await;
    assert_auth_ok(&ok, &first, &json!([]));
    let second = json!({ "sub": "heidi", "exp": now_s() + 1200, "name": "Heidi" });
    let again = send_auth(&mut client, &server.token_with(second.clone()), Some("r1")).await;
    assert_auth_ok(&again, &second, &json!([]));
    assert_ne!(again["expiresAt"], ok["expiresAt"]);
    assert_eq!(
        again["clientId"], ok["clientId"],
        "same connection, same id"
    );
    let reply = client.expect("reply").await;
    assert_eq!(reply["id"], "r1");
    assert_eq!(reply["ok"], true);
    assert_usable(&mut client).await;
    finish(server, [client]).await;
}

#[tokio::test]
async fn refresh_with_another_users_token_is_forbidden_and_changes_nothing() {
    let server = TestServer::start().await;
    let mut ivan = server.login("ivan").await;
    let error = ivan
        .request(
            json!({ "type": "auth", "token": server.token("judy") }),
            json!("steal"),
        )
        .await;
    assert_error(&error, "forbidden", Some(&json!("steal")));
    // Still ivan, still connected.
    let list = ivan.join("hall").await;
    assert_eq!(list["users"][0]["userId"], "ivan", "{list}");
    assert_eq!(list["count"], 1);
    assert_usable(&mut ivan).await;
    finish(server, [ivan]).await;
}

#[tokio::test]
async fn refresh_with_an_invalid_token_gets_auth_failed_then_4001() {
    let server = TestServer::start().await;
    let mut client = server.login("ken").await;
    let expired = server.token_with(json!({ "sub": "ken", "exp": now_s() - 10 }));
    expect_auth_refused(&mut client, &expired, "auth_failed", 4001).await;
    let mut other = server.login("ken").await;
    expect_auth_refused(&mut other, "garbage", "auth_failed", 4001).await;
    assert_still_serving(&server).await;
    finish(server, [client, other]).await;
}

#[tokio::test]
async fn connection_is_closed_with_4001_when_its_token_expires() {
    let server = TestServer::start().await;
    let exp = now_s() + 2;
    let mut client = server.login_with(json!({ "sub": "leo", "exp": exp })).await;
    let (seen, closed) = client.closed().await;
    assert_eq!(closed, Closed::Code(4001), "after {seen:?}");
    let at = now_ms();
    assert!(
        at + 100 >= exp * 1000,
        "closed {} ms early",
        exp * 1000 - at
    );
    assert!(at < exp * 1000 + 1500, "closed {} ms late", at - exp * 1000);
    finish(server, [client]).await;
}

#[tokio::test]
async fn refreshing_before_expiry_keeps_the_connection_open() {
    let server = TestServer::start().await;
    let old_exp = now_s() + 3;
    let mut client = server
        .login_with(json!({ "sub": "mia", "exp": old_exp }))
        .await;
    let new = json!({ "sub": "mia", "exp": now_s() + 3600 });
    let ok = send_auth(&mut client, &server.token_with(new.clone()), None).await;
    assert_auth_ok(&ok, &new, &json!([]));
    // Past the old expiry, with a margin: no close (expect_silence fails on one).
    let past_old = (old_exp * 1000 + 500).saturating_sub(now_ms());
    client.expect_silence(Duration::from_millis(past_old)).await;
    assert_usable(&mut client).await;
    finish(server, [client]).await;
}

// ---- client ping ----

#[tokio::test]
async fn ping_with_an_id_gets_a_pong_with_that_id_and_no_reply() {
    let server = TestServer::start().await;
    let mut client = server.login("nina").await;
    for id in [json!(7), json!("p-1")] {
        client.send(json!({ "type": "ping", "id": id })).await;
        let pong = client.expect("pong").await;
        assert_eq!(pong["id"], id);
        assert_recent(&pong["timestamp"]);
        assert_eq!(pong.as_object().map(|o| o.len()), Some(3), "{pong}");
        client.expect_silence(Duration::from_millis(300)).await;
    }
    finish(server, [client]).await;
}

#[tokio::test]
async fn ping_without_an_id_gets_a_pong_without_one() {
    let server = TestServer::start().await;
    let mut client = server.login("oscar").await;
    client.send(json!({ "type": "ping" })).await;
    let pong = client.expect("pong").await;
    assert!(pong.get("id").is_none(), "{pong}");
    assert_recent(&pong["timestamp"]);
    client.expect_silence(Duration::from_millis(300)).await;
    finish(server, [client]).await;
}

// ---- heartbeat ----

/// Heartbeats every 200 ms, answered within `timeout_ms`.
async fn heartbeat_server(timeout_ms: u64) -> TestServer {
    TestServer::with(Settings {
        heartbeat_interval_ms: Some(200),
        heartbeat_timeout_ms: Some(timeout_ms),
        ..Settings::default()
    })
    .await
}

/// The server's heartbeat `ping`: a type and a timestamp, nothing else.
fn assert_heartbeat(ping: &Value) {
    assert_eq!(ping["type"], "ping", "{ping}");
    assert_recent(&ping["timestamp"]);
    assert_eq!(ping.as_object().map(|o| o.len()), Some(2), "{ping}");
}

/// Answers four heartbeats with `answer`, then checks the connection still works. The
/// timeout leaves room for a busy test machine to answer.
async fn survives_heartbeats(answer: Value) {
    let server = heartbeat_server(400).await;
    let mut client = server.login("pat").await;
    for _ in 0..4 {
        let ping = client.wait_for("ping").await;
        assert_heartbeat(&ping);
        client.send(answer.clone()).await;
    }
    assert_usable(&mut client).await;
    finish(server, [client]).await;
}

#[tokio::test]
async fn client_answering_heartbeats_with_pong_stays_connected() {
    survives_heartbeats(json!({ "type": "pong" })).await;
}

#[tokio::test]
async fn client_answering_heartbeats_with_any_message_stays_connected() {
    survives_heartbeats(json!({ "type": "ping" })).await;
}

/// The ping period is the interval even when the timeout is longer: an answered ping
/// schedules the next one an interval after it, not a timeout after it.
#[tokio::test]
async fn pings_keep_the_interval_when_the_timeout_is_longer() {
    let server = TestServer::with(Settings {
        heartbeat_interval_ms: Some(100),
        heartbeat_timeout_ms: Some(3_000),
        ..Settings::default()
    })
    .await;
    let mut client = server.login("rhea").await;
    let started = Instant::now();
    for _ in 0..4 {
        let ping = client.expect("ping").await;
        assert_heartbeat(&ping);
        client.send(json!({ "type": "pong" })).await;
    }
    // Four pings a 100 ms interval apart; a timeout-paced server would need over 9 s.
    assert!(
        started.elapsed() < Duration::from_millis(2_500),
        "{:?}",
        started.elapsed()
    );
    finish(server, [client]).await;
}

#[tokio::test]
async fn silent_client_is_closed_with_4002() {
    let server = heartbeat_server(200).await;
    let mut client = server.login("quinn").await;
    let (seen, closed) = client.closed().await;
    assert_eq!(closed, Closed::Code(4002), "after {seen:?}");
    assert_eq!(seen.len(), 1, "one heartbeat, then the close: {seen:?}");
    assert_heartbeat(&seen[0]);
    assert_still_serving(&server).await;
    finish(server, [client]).await;
}

// ---- connection limits ----

fn per_user_limit(n: usize) -> Settings {
    Settings {
        max_connections_per_user: Some(n),
        ..Settings::default()
    }
}

#[tokio::test]
async fn connection_over_the_per_user_limit_gets_limit_exceeded_then_4009() {
    let server = TestServer::with(per_user_limit(2)).await;
    let mut first = server.login("rita").await;
    let mut second = server.login("rita").await;
    let mut third = server.connect().await;
    expect_auth_refused(&mut third, &server.token("rita"), "limit_exceeded", 4009).await;
    assert_usable(&mut first).await;
    assert_usable(&mut second).await;
    // The limit is per user: someone else still gets in.
    let mut sam = server.login("sam").await;
    assert_usable(&mut sam).await;
    // Once one of rita's connections is gone, a new one is accepted.
    first.close().await;
    let mut fourth = eventually("a free per-user slot", async || {
        let mut client = server.connect().await;
        let answer = send_auth(&mut client, &server.token("rita"), None).await;
        if answer["type"] == "auth_ok" {
            return Some(client);
        }
        assert_error(&answer, "limit_exceeded", None);
        assert_eq!(client.close_code().await, 4009);
        None
    })
    .await;
    assert_usable(&mut fourth).await;
    assert_usable(&mut second).await;
    finish(server, [second, third, sam, fourth]).await;
}

#[tokio::test]
async fn query_auth_over_the_per_user_limit_is_upgraded_then_gets_4009() {
    let server = TestServer::with(per_user_limit(2)).await;
    let mut first = server.login("tom").await;
    let mut second = server.login("tom").await;
    let mut third = server
        .connect_url(&query_url(&server, &server.token("tom")))
        .await;
    let (seen, closed) = third.closed().await;
    assert_eq!(
        seen.len(),
        1,
        "exactly one error before the close: {seen:?}"
    );
    assert_error(&seen[0], "limit_exceeded", None);
    assert_eq!(closed, Closed::Code(4009));
    assert_usable(&mut first).await;
    assert_usable(&mut second).await;
    assert_still_serving(&server).await;
    finish(server, [first, second, third]).await;
}

#[tokio::test]
async fn upgrade_over_the_total_limit_is_refused_with_503() {
    let server = TestServer::with(Settings {
        max_connections: Some(2),
        ..Settings::default()
    })
    .await;
    // Unauthenticated connections hold a slot too.
    let mut anonymous = server.connect().await;
    let mut uma = server.login("uma").await;
    assert_eq!(upgrade(&server.ws_url()).await.err(), Some(503));
    let with_token = query_url(&server, &server.token("victor"));
    assert_eq!(upgrade(&with_token).await.err(), Some(503));
    assert_usable(&mut uma).await;
    let ok = send_auth(&mut anonymous, &server.token("wendy"), None).await;
    assert_eq!(ok["type"], "auth_ok", "{ok}");
    // A slot frees up when the server finishes a close.
    anonymous.close().await;
    let newcomer = eventually("a free slot", async || {
        match upgrade(&server.ws_url()).await {
            Ok(ws) => Some(ws),
            Err(503) => None,
            Err(status) => panic!("unexpected HTTP {status}"),
        }
    })
    .await;
    assert_eq!(upgrade(&server.ws_url()).await.err(), Some(503));
    assert_usable(&mut uma).await;
    drop(newcomer);
    finish(server, [uma]).await;
}

// ---- default rooms ----

#[tokio::test]
async fn default_rooms_are_listed_in_auth_ok_and_followed_by_their_user_list() {
    let server = TestServer::with(Settings {
        default_rooms: Some(vec!["lobby".into()]),
        ..Settings::default()
    })
    .await;
    let claims = json!({ "sub": "xena", "exp": now_s() + 3600 });
    let mut xena = server.connect().await;
    let ok = send_auth(&mut xena, &server.token_with(claims.clone()), Some("a")).await;
    assert_auth_ok(&ok, &claims, &json!(["lobby"]));
    let list = xena.expect("user_list").await;
    assert_eq!(list["room"], "lobby");
    assert_eq!(list["users"], json!([{ "userId": "xena" }]));
    assert_eq!(list["count"], 1);
    assert_eq!(xena.expect("reply").await["id"], "a");
    // The next user lands in the same room, and the first one hears of it.
    let mut yuri = server.connect().await;
    let ok = send_auth(&mut yuri, &server.token("yuri"), None).await;
    assert_eq!(ok["rooms"], json!(["lobby"]), "{ok}");
    let list = yuri.expect("user_list").await;
    assert_eq!(list["count"], 2, "{list}");
    let joined = xena.expect("user_join").await;
    assert_eq!(joined["room"], "lobby");
    assert_eq!(joined["user"]["userId"], "yuri");
    // A refresh lists the default rooms, not the rooms the client joined itself.
    xena.join("extra").await;
    let again = send_auth(&mut xena, &server.token_with(claims.clone()), None).await;
    assert_auth_ok(&again, &claims, &json!(["lobby"]));
    finish(server, [xena, yuri]).await;
}
