//! End-to-end tests of a connection's life before and around its identity (CONTRACT §2,
//! §3, §5, §8): authentication with `?token=` and with `auth`, what an unauthenticated
//! connection may do, the auth timeout, token refresh and expiry, and the default rooms
//! `auth_ok` lists. After each refusal the server must keep serving everyone else. Client
//! `ping` and the heartbeat: `heartbeat.rs`; connection limits: `connection_limits.rs`.

mod auth_common;

use std::time::{Duration, Instant};

use auth_common::*;
use roomcast_server::{Settings, now_ms};
use roomcast_tests::{Closed, SECRET, TestServer, sign};
use serde_json::{Value, json};

/// `{"alg":"none","typ":"JWT"}`, base64url without padding.
const ALG_NONE_HEADER: &str = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";

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
