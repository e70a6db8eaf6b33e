//! The HTTP API's answers to bad requests end to end (CONTRACT §9): unknown routes are
//! 404 and wrong methods 405, bad bodies and a missing body are 400, and none of them
//! changes anything.
//!
//! Every test runs its own server on `127.0.0.1:0` (helpers in `api_common`).

mod api_common;

use api_common::*;
use reqwest::Method;
use roomcast_tests::{TestServer, response};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A request with the key and a raw (possibly invalid) JSON body.
async fn send_raw(server: &TestServer, method: Method, path: &str, body: &str) -> (u16, Value) {
    response(
        server
            .api(method, path)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await,
    )
    .await
}

// ---------------------------------------------------------------------------------------
// Bad requests
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405() {
    let server = TestServer::start().await;
    for path in [
        "/api/no-such-route",
        "/api/connections/c1/data/extra",
        "/api/rooms/a/b",
    ] {
        assert_error(&server.get(path).await, 404, "not_found");
    }
    for name in [
        "PATCH /api/rooms",
        "PUT /api/token",
        "GET /api/broadcast",
        "POST /api/stats",
    ] {
        let (method, path) = route(name, "");
        let (status, body) = send_raw(&server, method, &path, "{}").await;
        assert_eq!(status, 405, "{name}: {body}");
        assert!(body["error"]["code"].is_string(), "{name}: {body}");
    }
    get_ok(&server, "/api/stats").await;
    server.stop().await;
}

/// Bodies every endpoint must refuse with 400 `bad_request`, by `"METHOD path"`.
/// `{me}` stands for a connected client's id, so that a body wrongly accepted would
/// deliver something to it or change its data.
const BAD_BODIES: &[(&str, &[&str])] = &[
    (
        "POST /api/token",
        &[
            r#"{}"#,
            r#"{"userId":""}"#,
            r#"{"userId":7}"#,
            r#"{"userId":"a","admin":true}"#,
            r#"{"userId":"a","ttlSeconds":0}"#,
            r#"{"userId":"a","ttlSeconds":-5}"#,
            r#"{"userId":"a","roles":"admin"}"#,
            r#"{"userId":"a","info":[1]}"#,
            "not json",
        ],
    ),
    (
        "POST /api/broadcast",
        &[
            // `to` with zero, two, unknown or empty keys
            r#"{"to":{},"message":{"type":"t"}}"#,
            r#"{"to":{"all":true,"client":"{me}"},"message":{"type":"t"}}"#,
            r#"{"to":{"all":false},"message":{"type":"t"}}"#,
            r#"{"to":{"everyone":true},"message":{"type":"t"}}"#,
            r#"{"to":"all","message":{"type":"t"}}"#,
            r#"{"to":{"room":""},"message":{"type":"t"}}"#,
            r#"{"to":{"rooms":["desk",""]},"message":{"type":"t"}}"#,
            r#"{"to":{"role":""},"message":{"type":"t"}}"#,
            // a message that is not an object with a string `type`
            r#"{"to":{"client":"{me}"},"message":{"text":"no type"}}"#,
            r#"{"to":{"client":"{me}"},"message":{"type":7}}"#,
            r#"{"to":{"client":"{me}"},"message":"hello"}"#,
            r#"{"to":{"client":"{me}"},"message":["type","t"]}"#,
            // `batch` with a target that is not one room
            r#"{"to":{"all":true},"message":{"type":"t"},"batch":true}"#,
            r#"{"to":{"client":"{me}"},"message":{"type":"t"},"batch":true}"#,
            r#"{"to":{"user":"alice"},"message":{"type":"t"},"batch":true}"#,
            r#"{"to":{"rooms":["desk"]},"message":{"type":"t"},"batch":true}"#,
            // unknown or missing fields, broken JSON
            r#"{"to":{"all":true},"message":{"type":"t"},"priority":1}"#,
            r#"{"message":{"type":"t"}}"#,
            r#"{"to":{"all":true}}"#,
            r#"{"to":{"all":true},"#,
        ],
    ),
    (
        "POST /api/send",
        &[
            r#"{"clientId":"{me}"}"#,
            r#"{"clientId":"{me}","message":{"text":"no type"}}"#,
            r#"{"clientId":"{me}","message":[1]}"#,
            r#"{"clientId":"{me}","message":{"type":"t"},"extra":1}"#,
            r#"{"message":{"type":"t"}}"#,
            "[]",
        ],
    ),
    (
        "POST /api/rooms",
        &[
            r#"{"name":"desk","maxClients":0}"#,
            r#"{"name":"desk","maxClients":-1}"#,
            r#"{"name":""}"#,
            r#"{"name":"desk","colour":"red"}"#,
            r#"{"maxClients":3}"#,
            r#"{"name":"desk","presence":"yes"}"#,
            "nope",
        ],
    ),
    (
        "PUT /api/connections/{me}/data",
        &[r#"{"unclosed":"#, "not json"],
    ),
];

#[tokio::test]
async fn bad_bodies_are_400_and_change_nothing() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    alice.join("desk").await;
    let me = alice.client_id.clone();
    // Every row is tried, and every wrong answer reported at once.
    let mut wrong = Vec::new();
    for &(name, bodies) in BAD_BODIES {
        let (method, path) = route(name, &me);
        for body in bodies {
            let body = body.replace("{me}", &me);
            let (status, answer) = send_raw(&server, method.clone(), &path, &body).await;
            let message = answer["error"]["message"].as_str().unwrap_or("");
            if status != 400 || answer["error"]["code"] != "bad_request" || message.is_empty() {
                wrong.push(format!("{name} {body} -> {status} {answer}"));
            }
            // The server keeps serving.
            get_ok(&server, "/api/stats").await;
        }
    }
    assert!(
        wrong.is_empty(),
        "not a 400 bad_request:\n{}",
        wrong.join("\n")
    );
    assert_quiet(&mut alice).await;
    let info = get_ok(&server, &format!("/api/connections/{me}")).await;
    assert_eq!(info["data"], Value::Null, "{info}");
    let rooms = items(&server, "/api/rooms").await;
    assert_eq!(rooms.len(), 1, "{rooms:?}");
    assert_eq!(rooms[0]["maxClients"], Value::Null, "{rooms:?}");
    // And a good request after all of them works.
    let message = payload("after");
    assert_eq!(
        broadcast(&server, json!({ "room": "desk" }), &message).await,
        1
    );
    gets_once(&mut alice, &message).await;
    server.stop().await;
}

/// A POST with no body at all (hence no `Content-Length`) is a bad body like any other.
#[tokio::test]
async fn a_post_without_a_body_is_400() {
    let server = TestServer::start().await;
    for path in ["/api/token", "/api/broadcast", "/api/send", "/api/rooms"] {
        let answer = response(server.api(Method::POST, path).send().await).await;
        assert_eq!(answer.0, 400, "POST {path} without a body: {}", answer.1);
        assert_error(&answer, 400, "bad_request");
    }
    get_ok(&server, "/api/stats").await;
    server.stop().await;
}
