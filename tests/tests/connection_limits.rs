//! The connection limits end to end (CONTRACT §1, §3, §8 close 4009): a connection over the
//! per-user limit gets `limit_exceeded` then 4009, whether it authenticates with `auth` or
//! with `?token=`, and an upgrade over the total limit is refused with 503. After each
//! refusal the server must keep serving everyone else.

mod auth_common;

use std::time::{Duration, Instant};

use auth_common::*;
use roomcast_server::Settings;
use roomcast_tests::{Closed, TestServer, WAIT};

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
