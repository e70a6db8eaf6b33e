//! The HTTP webhook application handler (CONTRACT §4 "any other type", §8 close 4003):
//! what the server posts when `webhook_url` is set (connect, custom messages, close),
//! how it turns the answer into a reply or an error, and how a refusing, failing, slow or
//! unreachable webhook refuses connections. The embedded [`Handler`]: `handlers.rs`.
//!
//! The webhook is a real hyper server on `127.0.0.1:0` whose answer each test chooses from
//! the posted event; it records every call on a channel the test reads.
//!
//! [`Handler`]: roomcast_server::Handler

mod handlers_common;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use handlers_common::*;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use roomcast_server::Settings;
use roomcast_tests::{Client, TestServer, WAIT};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

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
