//! End-to-end tests of the HTTP side's edges (CONTRACT §9, with §1's upgrade refusals):
//! query strings on every `/api` and `/dev` route (unknown keys and malformed values are
//! 400 `bad_request` naming the parameter, and change nothing), wrong methods (405) and
//! unknown paths (404) as JSON errors, the `/ws` refusals with the same error body, and no
//! answer ever carrying Rust debug text instead of a contract error.
//!
//! Every test runs its own server on `127.0.0.1:0` and talks to it over real HTTP.

use reqwest::Method;
use reqwest::header::HeaderValue;
use roomcast_server::Settings;
use roomcast_tests::{Client, TestServer};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Who calls a route.
#[derive(Debug, Clone, Copy)]
enum Caller {
    /// The API key.
    Key,
    /// A dev token with role `user`.
    User,
    /// A dev token with role `admin`.
    Admin,
    /// No `Authorization` at all.
    Anyone,
}

/// The dev tokens the `/dev` routes are called with.
struct Tokens {
    user: String,
    admin: String,
}

impl Tokens {
    async fn mint(server: &TestServer) -> Self {
        Self {
            user: dev_token(server, "ursula", "user").await,
            admin: dev_token(server, "root", "admin").await,
        }
    }
}

/// A token from `POST /dev/token`.
async fn dev_token(server: &TestServer, user: &str, role: &str) -> String {
    let answer = fetch(
        server
            .http(Method::POST, "/dev/token")
            .json(&json!({ "userId": user, "role": role })),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json()["token"].as_str().expect("token").to_owned()
}

/// One HTTP answer, its body kept as text so that non-JSON bodies show.
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: String,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    /// The `error.message` of a contract error body.
    fn message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

async fn fetch(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("http request");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.expect("body");
    Answer {
        status,
        content_type,
        text,
    }
}

/// `"METHOD /path"` sent by `caller`, with `{me}` replaced and an optional JSON body.
async fn call(
    server: &TestServer,
    tokens: &Tokens,
    caller: Caller,
    route: &str,
    me: &str,
    body: Option<&str>,
) -> Answer {
    let (method, path) = route.split_once(' ').expect("METHOD /path");
    let method = Method::from_bytes(method.as_bytes()).expect("method");
    let path = path.replace("{me}", me);
    let request = match caller {
        Caller::Key => server.api(method, &path),
        Caller::User => server.http(method, &path).bearer_auth(&tokens.user),
        Caller::Admin => server.http(method, &path).bearer_auth(&tokens.admin),
        Caller::Anyone => server.http(method, &path),
    };
    let request = match body {
        Some(body) => request
            .header("content-type", "application/json")
            .body(body.replace("{me}", me)),
        None => request,
    };
    fetch(request).await
}

/// Fragments of Rust's `{:?}` output, and warp's own names and plain-text answers: none
/// may reach a client.
const DEBUG_TEXT: &[&str] = &[
    "Rejection(",
    "InvalidQuery",
    "InvalidHeader",
    "MissingHeader",
    "MethodNotAllowed",
    "UnsupportedMediaType",
    "PayloadTooLarge",
    "NotFound",
    "Unhandled rejection",
    "Invalid query string",
    "HTTP method not allowed",
    "Some(",
    "None,",
    "{ ",
    " }",
    "_p: ()",
];

/// A contract error: this status and code, a JSON body of exactly
/// `{"error":{"code","message"}}` with a non-empty message, and no debug text.
#[track_caller]
fn assert_error(answer: &Answer, status: u16, code: &str, case: &str) {
    assert_eq!(answer.status, status, "{case}: {}", answer.text);
    assert_clean(answer, case);
    let body = answer.json();
    assert_eq!(body["error"]["code"], code, "{case}: {body}");
    assert!(!answer.message().is_empty(), "{case}: {body}");
    let keys = |v: &Value| -> Vec<String> {
        v.as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    };
    assert_eq!(keys(&body), ["error"], "{case}: {body}");
    assert_eq!(keys(&body["error"]), ["code", "message"], "{case}: {body}");
}

/// JSON, and free of [`DEBUG_TEXT`].
#[track_caller]
fn assert_clean(answer: &Answer, case: &str) {
    assert!(
        answer.content_type.starts_with("application/json"),
        "{case}: content-type {:?}, body {}",
        answer.content_type,
        answer.text
    );
    for fragment in DEBUG_TEXT {
        assert!(
            !answer.text.contains(fragment),
            "{case}: {fragment:?} in {}",
            answer.text
        );
    }
}

/// The next message is the answer to a ping sent now: nothing else was pending.
async fn assert_quiet(client: &mut Client) {
    client.send(json!({ "type": "ping", "id": "quiet" })).await;
    let next = client.recv().await;
    assert_eq!(next["id"], "quiet", "expected nothing pending, got {next}");
}

// ---------------------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------------------

/// Every `/api` and `/dev` route, as `(caller, "METHOD /path?query", body)`: the query
/// holds the route's own valid parameters (if any) and then `foo=1`, and the body is one
/// the route would accept, so that only the query is wrong. `{me}` is a connected client
/// in room `desk`: a refused request that still ran would be seen by it.
const ROUTES: &[(Caller, &str, Option<&str>)] = &[
    (
        Caller::Key,
        "POST /api/token?foo=1",
        Some(r#"{"userId":"x"}"#),
    ),
    (
        Caller::Key,
        "POST /api/send?foo=1",
        Some(r#"{"clientId":"{me}","message":{"type":"t"}}"#),
    ),
    (
        Caller::Key,
        "POST /api/broadcast?foo=1",
        Some(r#"{"to":{"all":true},"message":{"type":"t"}}"#),
    ),
    (
        Caller::Key,
        "POST /api/publish?foo=1",
        Some(r#"{"topic":"stocks","type":"t","items":[]}"#),
    ),
    (
        Caller::Key,
        "POST /api/notify?foo=1",
        Some(r#"{"userId":"alice","title":"t","content":"c"}"#),
    ),
    (
        Caller::Key,
        "POST /api/notify_all?foo=1",
        Some(r#"{"title":"t","content":"c"}"#),
    ),
    (
        Caller::Key,
        "GET /api/users/alice/notifications?unread=true&limit=5&foo=1",
        None,
    ),
    (
        Caller::Key,
        "GET /api/users/alice/private?with=bob&limit=5&foo=1",
        None,
    ),
    (Caller::Key, "GET /api/connections?foo=1", None),
    (Caller::Key, "GET /api/connections?active=true&foo=1", None),
    (Caller::Key, "DELETE /api/connections?foo=1", None),
    (Caller::Key, "GET /api/connections/{me}?foo=1", None),
    (Caller::Key, "DELETE /api/connections/{me}?foo=1", None),
    (Caller::Key, "GET /api/connections/{me}/data?foo=1", None),
    (
        Caller::Key,
        "PUT /api/connections/{me}/data?foo=1",
        Some(r#"{"plan":"pro"}"#),
    ),
    (
        Caller::Key,
        "POST /api/rooms?foo=1",
        Some(r#"{"name":"other"}"#),
    ),
    (Caller::Key, "GET /api/rooms?foo=1", None),
    (Caller::Key, "GET /api/rooms/desk?foo=1", None),
    (Caller::Key, "DELETE /api/rooms/desk?foo=1", None),
    (
        Caller::Key,
        "POST /api/rooms/lounge/members/{me}?foo=1",
        None,
    ),
    (
        Caller::Key,
        "DELETE /api/rooms/desk/members/{me}?foo=1",
        None,
    ),
    (
        Caller::Key,
        "GET /api/rooms/desk/history?limit=5&before=0019aa97b0ad7000&foo=1",
        None,
    ),
    (Caller::Key, "GET /api/stats?foo=1", None),
    (
        Caller::Anyone,
        "POST /dev/token?foo=1",
        Some(r#"{"userId":"y"}"#),
    ),
    (
        Caller::User,
        "GET /dev/notifications?limit=5&unread=1&foo=1",
        None,
    ),
    (Caller::Admin, "GET /dev/admin/connections?foo=1", None),
    (
        Caller::Admin,
        "DELETE /dev/admin/connections/{me}?foo=1",
        None,
    ),
    (
        Caller::Admin,
        "POST /dev/admin/notify?foo=1",
        Some(r#"{"userId":"alice","title":"t","content":"c"}"#),
    ),
    (
        Caller::Admin,
        "POST /dev/admin/notify_all?foo=1",
        Some(r#"{"title":"t","content":"c"}"#),
    ),
];

#[tokio::test]
async fn every_route_refuses_an_unknown_query_key_and_changes_nothing() {
    let server = TestServer::start().await;
    let tokens = Tokens::mint(&server).await;
    let mut alice = server.login("alice").await;
    alice.join("desk").await;
    let me = alice.client_id.clone();
    let mut wrong = Vec::new();
    for &(caller, route, body) in ROUTES {
        let answer = call(&server, &tokens, caller, route, &me, body).await;
        let case = format!("{caller:?} {route}");
        assert_error(&answer, 400, "bad_request", &case);
        if !answer.message().contains("unknown query parameter `foo`") {
            wrong.push(format!("{case}: {}", answer.text));
        }
    }
    assert!(
        wrong.is_empty(),
        "not refused for `foo`:\n{}",
        wrong.join("\n")
    );
    // Nothing was delivered, stored, changed or closed.
    assert_quiet(&mut alice).await;
    let (status, info) = server.get(&format!("/api/connections/{me}")).await;
    assert_eq!(status, 200, "alice is still connected: {info}");
    assert_eq!(info["data"], Value::Null, "{info}");
    assert_eq!(info["rooms"], json!(["desk"]), "{info}");
    let (_, rooms) = server.get("/api/rooms").await;
    let names: Vec<&Value> = rooms["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|room| &room["name"])
        .collect();
    assert_eq!(names, [&json!("desk")], "{rooms}");
    let (_, listed) = server.get("/api/users/alice/notifications").await;
    assert_eq!(listed["items"], json!([]), "{listed}");
    alice.close().await;
    server.stop().await;
}

#[tokio::test]
async fn the_message_says_which_parameters_a_route_takes() {
    let server = TestServer::start().await;
    let answer = fetch(server.api(Method::GET, "/api/stats?verbose")).await;
    assert_error(&answer, 400, "bad_request", "stats?verbose");
    assert_eq!(
        answer.message(),
        "unknown query parameter `verbose` (this route takes none)"
    );
    let answer = fetch(server.api(Method::GET, "/api/rooms/desk/history?sort=up")).await;
    assert_eq!(
        answer.message(),
        "unknown query parameter `sort` (this route takes `limit`, `before`)"
    );
    // `/healthz` and `/metrics` are for probes and scrapers: they ignore any query.
    for path in ["/healthz?probe=1", "/metrics?x=y"] {
        let answer = fetch(server.http(Method::GET, path)).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.text);
    }
    server.stop().await;
}

/// `(caller, path, parameter the message must name)`.
const BAD_VALUES: &[(Caller, &str, &str)] = &[
    (Caller::Key, "/api/rooms/desk/history?limit=abc", "limit"),
    (Caller::Key, "/api/rooms/desk/history?limit=0", "limit"),
    (Caller::Key, "/api/rooms/desk/history?limit=-3", "limit"),
    (Caller::Key, "/api/rooms/desk/history?limit=", "limit"),
    (
        Caller::Key,
        "/api/rooms/desk/history?limit=1&limit=2",
        "limit",
    ),
    (
        Caller::Key,
        "/api/rooms/desk/history?before=a%2Fb",
        "before",
    ),
    (
        Caller::Key,
        "/api/users/bob/notifications?unread=maybe",
        "unread",
    ),
    (
        Caller::Key,
        "/api/users/bob/notifications?limit=many",
        "limit",
    ),
    (Caller::Key, "/api/users/bob/notifications?limit=0", "limit"),
    (Caller::Key, "/api/users/bob/private?with=", "with"),
    (Caller::Key, "/api/users/bob/private", "with"),
    (
        Caller::Key,
        "/api/users/bob/private?with=al&limit=0",
        "limit",
    ),
    (
        Caller::Key,
        "/api/users/bob/private?with=al&before=1&beforeTo=",
        "beforeTo",
    ),
    (Caller::Key, "/api/connections?active=maybe", "active"),
    (Caller::Key, "/api/connections?active=", "active"),
    (Caller::User, "/dev/notifications?unread=maybe", "unread"),
    (Caller::User, "/dev/notifications?limit=0", "limit"),
];

#[tokio::test]
async fn a_malformed_query_value_is_400_naming_the_parameter() {
    let server = TestServer::start().await;
    let tokens = Tokens::mint(&server).await;
    for &(caller, path, parameter) in BAD_VALUES {
        let answer = call(&server, &tokens, caller, &format!("GET {path}"), "", None).await;
        let case = format!("{caller:?} {path}");
        assert_error(&answer, 400, "bad_request", &case);
        let message = answer.message();
        assert!(
            message.contains(&format!("`{parameter}`")),
            "{case}: {message}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn active_accepts_true_or_1_and_false_or_0() {
    let server = TestServer::start().await;
    let mut anonymous = server.connect().await;
    let mut alice = server.login("alice").await;
    for (query, count) in [
        ("", 2),
        ("?active=true", 1),
        ("?active=1", 1),
        ("?active=false", 2),
        ("?active=0", 2),
    ] {
        let (status, body) = server.get(&format!("/api/connections{query}")).await;
        assert_eq!(status, 200, "{query}: {body}");
        let listed = body["items"].as_array().expect("items");
        assert_eq!(listed.len(), count, "{query}: {body}");
    }
    assert_quiet(&mut alice).await;
    assert_quiet(&mut anonymous).await;
    alice.close().await;
    anonymous.close().await;
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Methods, paths, headers
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn wrong_methods_are_405_and_unknown_paths_404_as_json_errors() {
    let server = TestServer::start().await;
    let tokens = Tokens::mint(&server).await;
    for (caller, route) in [
        (Caller::Key, "PATCH /api/connections/c1"),
        (Caller::Key, "POST /api/connections"),
        (Caller::Key, "PUT /api/rooms/r1"),
        (Caller::Key, "GET /api/rooms/r1/members/c1"),
        (Caller::Key, "DELETE /api/stats"),
        (Caller::Key, "GET /api/send"),
        (Caller::Key, "POST /api/rooms/r1/history"),
        (Caller::Key, "DELETE /api/users/u1/notifications"),
        (Caller::Key, "DELETE /api/rooms/r1/history"),
        (Caller::Anyone, "GET /dev/token"),
        (Caller::User, "POST /dev/notifications"),
        (Caller::Admin, "POST /dev/admin/connections"),
        (Caller::Anyone, "POST /healthz"),
    ] {
        let answer = call(&server, &tokens, caller, route, "", None).await;
        assert_error(&answer, 405, "bad_request", route);
    }
    for (caller, route) in [
        (Caller::Key, "GET /api/nope"),
        (Caller::Key, "GET /api/rooms/a/b/c"),
        (Caller::Key, "GET /api/connections/c1/data/extra"),
        (Caller::Anyone, "GET /dev/nope"),
        (Caller::Anyone, "GET /nope"),
        (Caller::Anyone, "POST /nope?foo=1"),
    ] {
        let answer = call(&server, &tokens, caller, route, "", None).await;
        assert_error(&answer, 404, "not_found", route);
    }
    server.stop().await;
}

#[tokio::test]
async fn an_unreadable_authorization_header_is_a_400_not_debug_text() {
    let server = TestServer::start().await;
    // Bytes over 0x7f are legal in a header value but not text: warp refuses the header.
    let value = HeaderValue::from_bytes(b"Bearer \xff\xfe").expect("obs-text header");
    for path in ["/api/stats", "/dev/notifications", "/dev/admin/connections"] {
        let answer = fetch(
            server
                .http(Method::GET, path)
                .header("authorization", value.clone()),
        )
        .await;
        assert_error(&answer, 400, "bad_request", path);
        assert_eq!(answer.message(), "invalid header `authorization`", "{path}");
    }
    server.stop().await;
}

#[tokio::test]
async fn no_refusal_carries_debug_text() {
    let server = TestServer::start().await;
    let tokens = Tokens::mint(&server).await;
    let big = format!(r#"{{"title":"t","content":"{}"}}"#, "x".repeat(1024 * 1024));
    let cases: &[(Caller, &str, Option<&str>, u16)] = &[
        (Caller::Anyone, "GET /api/stats", None, 401),
        (Caller::Anyone, "GET /dev/notifications", None, 401),
        (Caller::User, "GET /dev/admin/connections", None, 403),
        (Caller::Key, "GET /api/connections/nobody", None, 404),
        (Caller::Key, "POST /api/send", Some("not json"), 400),
        (
            Caller::Key,
            "POST /api/rooms",
            Some(r#"{"name":"a","x":1}"#),
            400,
        ),
        (Caller::Key, "POST /api/notify_all", Some(big.as_str()), 413),
        (Caller::Key, "GET /api/rooms?%zz=%", None, 400),
        (Caller::Key, "PATCH /api/token", None, 405),
        (Caller::Key, "GET /api/x/y/z", None, 404),
    ];
    for &(caller, route, body, status) in cases {
        let answer = call(&server, &tokens, caller, route, "", body).await;
        let case = format!("{caller:?} {route}");
        assert_eq!(answer.status, status, "{case}: {}", answer.text);
        assert!(
            answer.json()["error"]["code"].is_string(),
            "{case}: {}",
            answer.text
        );
        assert_clean(&answer, &case);
    }
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// The `/ws` refusals
// ---------------------------------------------------------------------------------------

/// A WebSocket handshake sent as a plain HTTP request, so that a refusal's body can be
/// read.
fn handshake(server: &TestServer, query: &str) -> reqwest::RequestBuilder {
    server
        .http(Method::GET, &format!("/ws{query}"))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
}

#[tokio::test]
async fn ws_refusals_carry_the_api_error_body() {
    let server = TestServer::with(Settings {
        max_connections: Some(1),
        ..Settings::default()
    })
    .await;
    let answer = fetch(server.http(Method::GET, "/ws")).await;
    assert_error(&answer, 400, "bad_request", "GET /ws without an upgrade");
    let answer = fetch(handshake(&server, "?token=not-a-token")).await;
    assert_error(&answer, 401, "auth_failed", "upgrade with a bad token");
    // One slot in all, held by this connection: the next upgrade is over the limit.
    let mut held = server.connect().await;
    let answer = fetch(handshake(&server, "")).await;
    assert_error(&answer, 503, "limit_exceeded", "upgrade over the limit");
    assert_quiet(&mut held).await;
    held.close().await;
    server.stop().await;
}
