//! Application handlers (CONTRACT §4 "any other type", §8 close 4003): the embedded Rust
//! [`Handler`] and the HTTP webhook the server calls when `webhook_url` is set.
//!
//! The embedded handler here answers `echo` with its payload, `whoami` with what its
//! context says, `fail` with a `forbidden` error, refuses users whose id starts with
//! `banned`, and reports every call on a channel the test reads. The webhook is a real
//! hyper server on `127.0.0.1:0` whose answer each test chooses from the posted event; it
//! records every call the same way.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use roomcast_protocol::ErrorCode;
use roomcast_protocol::client::CustomMessage;
use roomcast_server::{Handler, HandlerContext, HandlerError, Settings};
use roomcast_tests::{Client, Closed, TestServer, WAIT};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Long enough for something that should not happen to show up.
const QUIET: Duration = Duration::from_millis(300);

// ---------------------------------------------------------------------------------------
// The embedded handler
// ---------------------------------------------------------------------------------------

/// A call the embedded handler received.
#[derive(Debug, Clone, PartialEq)]
enum Event {
    Connect { client_id: String, user: Value },
    Message { client_id: String, message: Value },
    Close { client_id: String, user: Value },
}

#[derive(Debug)]
struct TestHandler {
    events: mpsc::UnboundedSender<Event>,
}

impl TestHandler {
    fn record(&self, event: Event) {
        let _ = self.events.send(event);
    }
}

fn user_of(ctx: &HandlerContext) -> Value {
    serde_json::to_value(&*ctx.user).expect("user JSON")
}

impl Handler for TestHandler {
    fn on_connect<'a>(
        &'a self,
        ctx: &'a HandlerContext,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        self.record(Event::Connect {
            client_id: ctx.client_id.to_string(),
            user: user_of(ctx),
        });
        let refused = ctx.user.user_id.as_str().starts_with("banned");
        Box::pin(async move {
            if refused {
                Err(HandlerError::new(
                    ErrorCode::Forbidden,
                    "banned users may not connect",
                ))
            } else {
                Ok(())
            }
        })
    }

    fn on_message<'a>(
        &'a self,
        ctx: &'a HandlerContext,
        message: &'a CustomMessage,
    ) -> BoxFuture<'a, Result<Option<Value>, HandlerError>> {
        self.record(Event::Message {
            client_id: ctx.client_id.to_string(),
            message: json!(message),
        });
        Box::pin(async move {
            match message.kind.as_str() {
                "echo" => Ok(Some(json!({ "echo": message.payload }))),
                "whoami" => Ok(Some(
                    json!({ "clientId": ctx.client_id, "user": user_of(ctx) }),
                )),
                "fail" => Err(HandlerError::new(
                    ErrorCode::Forbidden,
                    "fail is not allowed here",
                )),
                _ => Ok(None),
            }
        })
    }

    fn on_close<'a>(&'a self, ctx: &'a HandlerContext) -> BoxFuture<'a, ()> {
        self.record(Event::Close {
            client_id: ctx.client_id.to_string(),
            user: user_of(ctx),
        });
        Box::pin(std::future::ready(()))
    }
}

/// What the embedded handler reported, in call order.
struct Events(mpsc::UnboundedReceiver<Event>);

impl Events {
    async fn next(&mut self) -> Event {
        tokio::time::timeout(WAIT, self.0.recv())
            .await
            .expect("timed out waiting for a handler call")
            .expect("handler gone")
    }

    /// Nothing was reported so far. The handler reports a call before the server answers
    /// it, so after an answer this is not a race.
    fn assert_none(&mut self) {
        if let Ok(event) = self.0.try_recv() {
            panic!("unexpected handler call: {event:?}");
        }
    }
}

/// A server embedding [`TestHandler`].
async fn embedded() -> (TestServer, Events) {
    let (events, rx) = mpsc::unbounded_channel();
    let server =
        TestServer::with_handler(Settings::default(), Arc::new(TestHandler { events })).await;
    (server, Events(rx))
}

/// Logs in `user` and consumes the handler's `Connect` for it.
async fn login(server: &TestServer, events: &mut Events, user: &str) -> Client {
    let client = server.login(user).await;
    match events.next().await {
        Event::Connect { client_id, .. } => assert_eq!(client_id, client.client_id),
        other => panic!("expected Connect, got {other:?}"),
    }
    client
}

// ---------------------------------------------------------------------------------------
// Shared assertions
// ---------------------------------------------------------------------------------------

/// A `ping` with an id is answered by its `pong`: the connection is open and usable.
async fn assert_usable(client: &mut Client) {
    let pong = client
        .request(json!({ "type": "ping" }), json!("alive"))
        .await;
    assert_eq!(pong["type"], "pong", "{pong}");
}

/// The connection gets `error` `forbidden` (and nothing else, never `auth_ok`), then
/// close 4003.
async fn assert_refused(client: &mut Client) -> Value {
    let (seen, closed) = client.closed().await;
    assert_eq!(closed, Closed::Code(4003), "close code after {seen:?}");
    assert!(
        seen.iter().all(|m| m["type"] != "auth_ok"),
        "a refused connection never gets auth_ok: {seen:?}"
    );
    assert_eq!(seen.len(), 1, "only the refusal: {seen:?}");
    let error = seen[0].clone();
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["code"], "forbidden", "{error}");
    error
}

/// An `error` with this code answering request `id`.
#[track_caller]
fn assert_error(answer: &Value, id: &str, code: &str) {
    assert_eq!(answer["type"], "error", "{answer}");
    assert_eq!(answer["id"], id, "{answer}");
    assert_eq!(answer["code"], code, "{answer}");
}

/// The message of an `error`, as text.
fn message_of(error: &Value) -> &str {
    error["message"].as_str().unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// Embedded handler
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn custom_message_with_id_gets_the_handlers_reply() {
    let (server, mut events) = embedded().await;
    let mut alice = login(&server, &mut events, "alice").await;

    let reply = alice
        .request(
            json!({ "type": "echo", "text": "hi", "nested": { "n": [1, 2] } }),
            json!("e1"),
        )
        .await;

    assert_eq!(reply["type"], "reply", "{reply}");
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["data"]["echo"]["text"], "hi", "{reply}");
    assert_eq!(reply["data"]["echo"]["nested"], json!({ "n": [1, 2] }));
}

#[tokio::test]
async fn handler_context_names_the_connection_and_its_user() {
    let (server, mut events) = embedded().await;
    let mut alice = server
        .login_with(json!({ "sub": "alice", "name": "Alice", "roles": ["admin"] }))
        .await;
    let _ = events.next().await;

    let reply = alice.request(json!({ "type": "whoami" }), json!(7)).await;

    assert_eq!(reply["type"], "reply", "{reply}");
    assert_eq!(reply["id"], 7);
    assert_eq!(reply["data"]["clientId"], alice.client_id.as_str());
    assert_eq!(
        reply["data"]["user"],
        json!({ "userId": "alice", "name": "Alice", "roles": ["admin"] })
    );
}

#[tokio::test]
async fn handler_answering_nothing_replies_null() {
    let (server, mut events) = embedded().await;
    let mut alice = login(&server, &mut events, "alice").await;

    let reply = alice.request(json!({ "type": "noted" }), json!("n1")).await;

    assert_eq!(reply["type"], "reply", "{reply}");
    assert_eq!(reply["data"], Value::Null, "{reply}");
}

#[tokio::test]
async fn custom_message_without_id_reaches_the_handler_but_gets_no_reply() {
    let (server, mut events) = embedded().await;
    let mut alice = login(&server, &mut events, "alice").await;

    alice.send(json!({ "type": "echo", "text": "quiet" })).await;

    match events.next().await {
        Event::Message { message, .. } => {
            assert_eq!(message["type"], "echo");
            assert_eq!(message["text"], "quiet");
        }
        other => panic!("expected the echo, got {other:?}"),
    }
    alice.expect_silence(QUIET).await;
}

#[tokio::test]
async fn handler_error_is_sent_as_error_and_the_connection_stays_open() {
    let (server, mut events) = embedded().await;
    let mut alice = login(&server, &mut events, "alice").await;

    let error = alice.request(json!({ "type": "fail" }), json!("f1")).await;

    assert_error(&error, "f1", "forbidden");
    assert_eq!(message_of(&error), "fail is not allowed here");
    assert_usable(&mut alice).await;
    let echo = alice
        .request(json!({ "type": "echo", "text": "still here" }), json!("e2"))
        .await;
    assert_eq!(echo["data"]["echo"]["text"], "still here", "{echo}");
}

#[tokio::test]
async fn handler_error_without_id_is_still_reported() {
    let (server, mut events) = embedded().await;
    let mut alice = login(&server, &mut events, "alice").await;

    alice.send(json!({ "type": "fail" })).await;

    let error = alice.expect("error").await;
    assert_eq!(error["code"], "forbidden", "{error}");
    assert!(error.get("id").is_none_or(Value::is_null), "{error}");
    assert_usable(&mut alice).await;
}

#[tokio::test]
async fn refused_user_gets_forbidden_then_4003_via_auth_message() {
    let (server, mut events) = embedded().await;
    let mut banned = server.connect().await;

    banned
        .send(json!({ "type": "auth", "token": server.token("banned-bob"), "id": "a1" }))
        .await;

    let error = assert_refused(&mut banned).await;
    assert_eq!(error["id"], "a1", "{error}");
    assert_eq!(message_of(&error), "banned users may not connect");
    assert!(matches!(events.next().await, Event::Connect { .. }));
}

#[tokio::test]
async fn refused_user_gets_forbidden_then_4003_via_token_in_url() {
    let (server, _events) = embedded().await;
    let url = format!("{}?token={}", server.ws_url(), server.token("banned-carol"));

    let mut banned = server.connect_url(&url).await;

    let error = assert_refused(&mut banned).await;
    assert_eq!(message_of(&error), "banned users may not connect");
}

#[tokio::test]
async fn refused_user_is_never_an_authenticated_connection() {
    let (server, _events) = embedded().await;
    let mut banned = server.connect().await;
    banned
        .send(json!({ "type": "auth", "token": server.token("banned-bob") }))
        .await;
    assert_refused(&mut banned).await;

    let (status, body) = server.get("/api/connections").await;

    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().expect("items");
    assert!(
        items.iter().all(|c| c["user"]["userId"] != "banned-bob"),
        "{body}"
    );
}

#[tokio::test]
async fn allowed_user_still_connects_next_to_refused_ones() {
    let (server, mut events) = embedded().await;
    let mut banned = server.connect().await;
    banned
        .send(json!({ "type": "auth", "token": server.token("banned-bob") }))
        .await;
    assert_refused(&mut banned).await;
    let _ = events.next().await;

    let mut alice = login(&server, &mut events, "alice").await;

    assert_usable(&mut alice).await;
}

#[tokio::test]
async fn on_connect_and_on_close_get_the_connection_and_user() {
    let (server, mut events) = embedded().await;
    let alice = server
        .login_with(json!({ "sub": "alice", "name": "Alice" }))
        .await;
    let client_id = alice.client_id.clone();
    let user = json!({ "userId": "alice", "name": "Alice" });
    assert_eq!(
        events.next().await,
        Event::Connect {
            client_id: client_id.clone(),
            user: user.clone()
        }
    );

    alice.close().await;

    assert_eq!(events.next().await, Event::Close { client_id, user });
}

#[tokio::test]
async fn a_connection_over_the_per_user_limit_after_on_connect_gets_on_close_too() {
    let (events, rx) = mpsc::unbounded_channel();
    let settings = Settings {
        max_connections_per_user: Some(1),
        ..Settings::default()
    };
    let server = TestServer::with_handler(settings, Arc::new(TestHandler { events })).await;
    let mut events = Events(rx);
    let mut first = login(&server, &mut events, "alice").await;

    let token = server.token("alice");
    let mut second = server.connect().await;
    second
        .send(json!({ "type": "auth", "token": token, "id": "a" }))
        .await;
    let error = second.expect("error").await;
    assert_eq!(error["code"], "limit_exceeded", "{error}");
    assert_eq!(second.close_code().await, 4009);
    // The application heard `connect` for it, so it hears the matching `close`.
    let Event::Connect { client_id, .. } = events.next().await else {
        panic!("expected Connect for the second connection");
    };
    assert_eq!(
        events.next().await,
        Event::Close {
            client_id,
            user: json!({ "userId": "alice" })
        }
    );
    assert_usable(&mut first).await;
    events.assert_none();
}

#[tokio::test]
async fn on_close_is_called_for_the_connection_that_closed_only() {
    let (server, mut events) = embedded().await;
    let mut alice = login(&server, &mut events, "alice").await;
    let bob = login(&server, &mut events, "bob").await;
    let bob_id = bob.client_id.clone();

    bob.close().await;

    match events.next().await {
        Event::Close { client_id, user } => {
            assert_eq!(client_id, bob_id);
            assert_eq!(user["userId"], "bob");
        }
        other => panic!("expected bob's Close, got {other:?}"),
    }
    assert_usable(&mut alice).await;
    events.assert_none();
}

#[tokio::test]
async fn known_types_never_reach_the_handler() {
    let (server, mut events) = embedded().await;
    let mut alice = login(&server, &mut events, "alice").await;
    alice.join("lobby").await;
    let chat = alice
        .request(
            json!({ "type": "chat", "room": "lobby", "content": "hello" }),
            json!("c1"),
        )
        .await;
    assert_eq!(chat["type"], "reply", "{chat}");
    let history = alice
        .request(json!({ "type": "history", "room": "lobby" }), json!("h1"))
        .await;
    assert_eq!(history["type"], "reply", "{history}");
    assert_usable(&mut alice).await;

    events.assert_none();
    let echo = alice
        .request(json!({ "type": "echo", "text": "mine" }), json!("e1"))
        .await;
    assert_eq!(echo["type"], "reply", "{echo}");
    match events.next().await {
        Event::Message { message, .. } => assert_eq!(message["type"], "echo"),
        other => panic!("expected only the echo, got {other:?}"),
    }
}

#[tokio::test]
async fn malformed_known_type_is_bad_request_not_a_custom_message() {
    let (server, mut events) = embedded().await;
    let mut alice = login(&server, &mut events, "alice").await;

    let error = alice
        .request(json!({ "type": "chat", "room": "lobby" }), json!("bad"))
        .await;

    assert_error(&error, "bad", "bad_request");
    events.assert_none();
    assert_usable(&mut alice).await;
}

#[tokio::test]
async fn custom_message_before_auth_is_not_authenticated_and_skips_the_handler() {
    let (server, mut events) = embedded().await;
    let mut anonymous = server.connect().await;

    let error = anonymous
        .request(json!({ "type": "echo", "text": "hi" }), json!("early"))
        .await;

    assert_error(&error, "early", "not_authenticated");
    events.assert_none();
}

// ---------------------------------------------------------------------------------------
// No handler
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn without_a_handler_a_custom_type_is_bad_request() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;

    let error = alice
        .request(json!({ "type": "echo", "text": "hi" }), json!("e1"))
        .await;

    assert_error(&error, "e1", "bad_request");
    assert!(message_of(&error).contains("handler"), "{error}");
    assert!(message_of(&error).contains("echo"), "{error}");
    assert_usable(&mut alice).await;
}

// ---------------------------------------------------------------------------------------
// The webhook
// ---------------------------------------------------------------------------------------

/// How the test webhook answers one call.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    body: String,
    delay: Duration,
}

impl Answer {
    fn json(status: u16, body: &Value) -> Self {
        Self {
            status,
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }

    fn ok() -> Self {
        Self::json(200, &json!({}))
    }

    /// The same answer, sent only after `delay`.
    fn after(self, delay: Duration) -> Self {
        Self { delay, ..self }
    }
}

/// One request the webhook received.
#[derive(Debug)]
struct Call {
    method: String,
    content_type: String,
    body: Value,
}

type Answerer = Arc<dyn Fn(&Value) -> Answer + Send + Sync>;

/// A local HTTP server standing in for the application's webhook.
struct Webhook {
    url: String,
    calls: mpsc::UnboundedReceiver<Call>,
    accept: JoinHandle<()>,
}

impl Webhook {
    /// Starts it; `answer` chooses the answer from the posted JSON body.
    async fn start(answer: impl Fn(&Value) -> Answer + Send + Sync + 'static) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind webhook");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let (record, calls) = mpsc::unbounded_channel();
        let answer: Answerer = Arc::new(answer);
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (answer, record) = (answer.clone(), record.clone());
                let service =
                    service_fn(move |req| answer_call(req, answer.clone(), record.clone()));
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        Self { url, calls, accept }
    }

    /// The next call, in arrival order.
    async fn next(&mut self) -> Call {
        tokio::time::timeout(WAIT, self.calls.recv())
            .await
            .expect("timed out waiting for a webhook call")
            .expect("webhook gone")
    }

    /// The next call's body, which must be this `event`.
    async fn expect(&mut self, event: &str) -> Value {
        let call = self.next().await;
        assert_eq!(call.body["event"], event, "{:?}", call.body);
        call.body
    }

    /// Server settings pointing at this webhook.
    fn settings(&self) -> Settings {
        Settings {
            webhook_url: Some(self.url.clone()),
            ..Settings::default()
        }
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn answer_call(
    req: Request<Incoming>,
    answer: Answerer,
    record: mpsc::UnboundedSender<Call>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().to_string();
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = match req.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let reply = answer(&body);
    let _ = record.send(Call {
        method,
        content_type,
        body,
    });
    tokio::time::sleep(reply.delay).await;
    let response = Response::builder()
        .status(reply.status)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(reply.body)))
        .expect("response");
    Ok(response)
}

/// A webhook that accepts every connection and answers `message` events with `answer`.
async fn webhook_answering(answer: impl Fn(&Value) -> Answer + Send + Sync + 'static) -> Webhook {
    Webhook::start(move |body| {
        if body["event"] == "message" {
            answer(&body["message"])
        } else {
            Answer::ok()
        }
    })
    .await
}

/// Logs in through the webhook and consumes its `connect` call.
async fn login_through(server: &TestServer, hook: &mut Webhook, user: &str) -> Client {
    let client = server.login(user).await;
    let connect = hook.expect("connect").await;
    assert_eq!(connect["clientId"], client.client_id.as_str());
    client
}

#[tokio::test]
async fn webhook_gets_connect_message_and_close_events_as_posted_json() {
    let mut hook = webhook_answering(|_| Answer::json(200, &json!({ "seen": true }))).await;
    let server = TestServer::with(hook.settings()).await;
    let mut alice = server
        .login_with(json!({ "sub": "alice", "name": "Alice" }))
        .await;
    let client_id = alice.client_id.clone();
    let user = json!({ "userId": "alice", "name": "Alice" });

    let connect = hook.next().await;
    assert_eq!(connect.method, "POST");
    assert!(
        connect.content_type.starts_with("application/json"),
        "{}",
        connect.content_type
    );
    assert_eq!(
        connect.body,
        json!({ "event": "connect", "clientId": client_id, "user": user })
    );

    let reply = alice
        .request(json!({ "type": "echo", "text": "hi", "n": 3 }), json!("e1"))
        .await;
    assert_eq!(reply["type"], "reply", "{reply}");
    let message = hook.expect("message").await;
    assert_eq!(message["clientId"], client_id.as_str());
    assert_eq!(message["user"], user);
    assert_eq!(message["message"]["type"], "echo");
    assert_eq!(message["message"]["text"], "hi");
    assert_eq!(message["message"]["n"], 3);

    alice.close().await;
    let close = hook.next().await;
    assert_eq!(
        close.body,
        json!({ "event": "close", "clientId": client_id, "user": user })
    );
}

#[tokio::test]
async fn webhook_2xx_json_body_is_the_reply_data() {
    let mut hook = webhook_answering(|message| {
        Answer::json(
            201,
            &json!({ "echoed": message["text"], "list": [1, "two"] }),
        )
    })
    .await;
    let server = TestServer::with(hook.settings()).await;
    let mut alice = login_through(&server, &mut hook, "alice").await;

    let reply = alice
        .request(json!({ "type": "echo", "text": "hi" }), json!("e1"))
        .await;

    assert_eq!(reply["type"], "reply", "{reply}");
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["data"], json!({ "echoed": "hi", "list": [1, "two"] }));
}

#[tokio::test]
async fn webhook_is_called_for_a_message_without_id_which_gets_no_reply() {
    let mut hook = webhook_answering(|_| Answer::ok()).await;
    let server = TestServer::with(hook.settings()).await;
    let mut alice = login_through(&server, &mut hook, "alice").await;

    alice.send(json!({ "type": "echo", "text": "quiet" })).await;

    let message = hook.expect("message").await;
    assert_eq!(message["message"]["text"], "quiet");
    alice.expect_silence(QUIET).await;
}

#[tokio::test]
async fn webhook_is_not_called_for_known_types() {
    let mut hook = webhook_answering(|_| Answer::ok()).await;
    let server = TestServer::with(hook.settings()).await;
    let mut alice = login_through(&server, &mut hook, "alice").await;
    alice.join("lobby").await;
    let chat = alice
        .request(
            json!({ "type": "chat", "room": "lobby", "content": "hello" }),
            json!("c1"),
        )
        .await;
    assert_eq!(chat["type"], "reply", "{chat}");
    assert_usable(&mut alice).await;

    let echo = alice.request(json!({ "type": "echo" }), json!("e1")).await;
    assert_eq!(echo["type"], "reply", "{echo}");

    let next = hook.expect("message").await;
    assert_eq!(next["message"]["type"], "echo", "the first message call");
}

#[tokio::test]
async fn webhook_500_is_an_internal_error_and_the_connection_stays_open() {
    let mut hook = webhook_answering(|_| Answer::json(500, &json!("boom"))).await;
    let server = TestServer::with(hook.settings()).await;
    let mut alice = login_through(&server, &mut hook, "alice").await;

    let error = alice.request(json!({ "type": "echo" }), json!("e1")).await;

    assert_error(&error, "e1", "internal");
    assert!(message_of(&error).contains("HTTP 500"), "{error}");
    assert_usable(&mut alice).await;
}

#[tokio::test]
async fn webhook_declared_error_is_passed_on() {
    let mut hook = webhook_answering(|_| {
        Answer::json(
            403,
            &json!({ "error": { "code": "forbidden", "message": "nope" } }),
        )
    })
    .await;
    let server = TestServer::with(hook.settings()).await;
    let mut alice = login_through(&server, &mut hook, "alice").await;

    let error = alice.request(json!({ "type": "echo" }), json!("e1")).await;

    assert_error(&error, "e1", "forbidden");
    assert_eq!(message_of(&error), "nope");
    assert_usable(&mut alice).await;
}

#[tokio::test]
async fn webhook_error_with_an_unknown_code_becomes_internal() {
    let mut hook = webhook_answering(|_| {
        Answer::json(
            418,
            &json!({ "error": { "code": "teapot", "message": "short and stout" } }),
        )
    })
    .await;
    let server = TestServer::with(hook.settings()).await;
    let mut alice = login_through(&server, &mut hook, "alice").await;

    let error = alice.request(json!({ "type": "echo" }), json!("e1")).await;

    assert_error(&error, "e1", "internal");
    assert!(message_of(&error).contains("HTTP 418"), "{error}");
}

#[tokio::test]
async fn webhook_timeout_is_an_internal_error_and_the_connection_stays_usable() {
    let mut hook = webhook_answering(|_| Answer::ok().after(Duration::from_secs(2))).await;
    let settings = Settings {
        webhook_timeout_ms: Some(300),
        ..hook.settings()
    };
    let server = TestServer::with(settings).await;
    let mut alice = login_through(&server, &mut hook, "alice").await;

    // `request` gives up after a few seconds: the error must come, never a hang.
    let error = alice.request(json!({ "type": "slow" }), json!("s1")).await;

    assert_error(&error, "s1", "internal");
    assert!(message_of(&error).contains("did not answer"), "{error}");
    assert!(message_of(&error).contains("300 ms"), "{error}");
    assert_usable(&mut alice).await;
}

#[tokio::test]
async fn webhook_refusing_connect_closes_with_4003() {
    let mut hook = Webhook::start(|body| {
        if body["user"]["userId"] == "mallory" {
            Answer::json(403, &json!({}))
        } else {
            Answer::ok()
        }
    })
    .await;
    let server = TestServer::with(hook.settings()).await;
    let mut mallory = server.connect().await;

    mallory
        .send(json!({ "type": "auth", "token": server.token("mallory"), "id": "a1" }))
        .await;

    let error = assert_refused(&mut mallory).await;
    assert_eq!(error["id"], "a1", "{error}");
    assert!(message_of(&error).contains("403"), "{error}");
    assert_eq!(hook.expect("connect").await["user"]["userId"], "mallory");
    let mut alice = login_through(&server, &mut hook, "alice").await;
    assert_usable(&mut alice).await;
}

#[tokio::test]
async fn webhook_refusing_connect_closes_a_token_in_url_with_4003() {
    let hook = Webhook::start(|_| Answer::json(403, &json!({}))).await;
    let server = TestServer::with(hook.settings()).await;
    let url = format!("{}?token={}", server.ws_url(), server.token("mallory"));

    let mut mallory = server.connect_url(&url).await;

    assert_refused(&mut mallory).await;
}

#[tokio::test]
async fn webhook_not_answering_connect_in_time_refuses_it() {
    let hook = Webhook::start(|_| Answer::ok().after(Duration::from_secs(2))).await;
    let settings = Settings {
        webhook_timeout_ms: Some(300),
        ..hook.settings()
    };
    let server = TestServer::with(settings).await;
    let mut alice = server.connect().await;

    alice
        .send(json!({ "type": "auth", "token": server.token("alice") }))
        .await;

    let error = assert_refused(&mut alice).await;
    assert!(message_of(&error).contains("did not answer"), "{error}");
}

/// The webhook is the gate: when it cannot be reached, connections are refused (fails
/// closed) rather than let in unchecked.
#[tokio::test]
async fn unreachable_webhook_refuses_connections() {
    let nobody = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hook", nobody.local_addr().expect("addr"));
    drop(nobody);
    let server = TestServer::with(Settings {
        webhook_url: Some(url),
        ..Settings::default()
    })
    .await;
    let mut alice = server.connect().await;

    alice
        .send(json!({ "type": "auth", "token": server.token("alice") }))
        .await;

    let error = assert_refused(&mut alice).await;
    assert!(
        message_of(&error).contains("could not be reached"),
        "{error}"
    );
}
