//! The SDK in a real browser (headless Chromium, through wasm-bindgen-test) against a real
//! `roomcast` server that `scripts/browser-test.sh` starts on a free port. Run that script
//! (the README's test command does): these tests need the server's URL at compile time.

#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;
use std::rc::Rc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gloo_timers::future::TimeoutFuture;
use hmac::{Hmac, Mac};
use js_sys::{Function, Object, Promise, Reflect};
use roomcast_client::RoomcastClient;
use serde_json::{Value, json};
use sha2::Sha256;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// The server `scripts/browser-test.sh` started.
const URL: &str = match option_env!("ROOMCAST_TEST_URL") {
    Some(url) => url,
    None => "ws://127.0.0.1:9/ws (run scripts/browser-test.sh)",
};
/// The server's dev-mode secret.
const SECRET: &str = "roomcast-dev-secret-DO-NOT-USE-IN-PRODUCTION";

fn now_secs() -> u64 {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let secs = (js_sys::Date::now() / 1000.0) as u64;
    secs
}

/// An HS256 token for `user` expiring in `ttl` seconds.
fn token(user: &str, ttl: u64) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = json!({ "sub": user, "exp": now_secs() + ttl }).to_string();
    let signing_input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims));
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

fn set(object: &JsValue, key: &str, value: &JsValue) {
    Reflect::set(object, &key.into(), value).expect("set a property");
}

/// Options with a static token and a fast reconnect.
fn options(token: &str) -> JsValue {
    let options = base_options();
    set(&options, "token", &token.into());
    options
}

/// Options with a fast reconnect and no token yet.
fn base_options() -> JsValue {
    let options: JsValue = Object::new().into();
    let reconnect: JsValue = Object::new().into();
    set(&reconnect, "initialDelayMs", &100.into());
    set(&reconnect, "maxDelayMs", &400.into());
    set(&options, "reconnect", &reconnect);
    options
}

fn to_json(value: &JsValue) -> Value {
    serde_wasm_bindgen::from_value(value.clone()).unwrap_or(Value::Null)
}

async fn settle(promise: Promise) -> Result<Value, Value> {
    JsFuture::from(promise)
        .await
        .map(|v| to_json(&v))
        .map_err(|e| {
            json!({
                "code": Reflect::get(&e, &"code".into()).ok().and_then(|c| c.as_string()),
                "message": Reflect::get(&e, &"message".into()).ok().and_then(|m| m.as_string()),
            })
        })
}

/// Everything a handler saw, kept alive as long as the recorder.
struct Recorder {
    seen: Rc<RefCell<Vec<Value>>>,
    callback: Closure<dyn FnMut(JsValue)>,
}

impl Recorder {
    fn new() -> Self {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let sink = seen.clone();
        let callback = Closure::<dyn FnMut(JsValue)>::new(move |value: JsValue| {
            sink.borrow_mut().push(to_json(&value));
        });
        Self { seen, callback }
    }

    fn function(&self) -> &Function {
        self.callback.as_ref().unchecked_ref()
    }

    fn all(&self) -> Vec<Value> {
        self.seen.borrow().clone()
    }
}

/// Waits (up to 10 s) until `done` holds.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        TimeoutFuture::new(50).await;
    }
    panic!("timed out waiting until {what}");
}

/// A connected client for `user`, recording `chat` messages and state changes.
/// Tests run concurrently in one page: each uses its own users (the server allows 3
/// connections per user).
async fn connected(user: &str) -> (RoomcastClient, Recorder, Recorder) {
    let client = RoomcastClient::new(URL, &options(&token(user, 600))).expect("client");
    let chats = Recorder::new();
    let states = Recorder::new();
    client.on("chat", chats.function().clone());
    client.on_state_change(states.function().clone());
    settle(client.connect()).await.expect("connects");
    (client, chats, states)
}

fn room(name: &str) -> String {
    unique(name)
}

/// `name` with a random suffix.
fn unique(name: &str) -> String {
    format!("{name}-{}", js_sys::Math::random().to_bits())
}

#[wasm_bindgen_test]
async fn two_clients_chat_and_requests_resolve_with_the_reply() {
    let (alice, alice_chats, _) = connected(&unique("alice")).await;
    let (bob, _, _) = connected(&unique("bob")).await;
    let lobby = room("lobby");
    let joined = settle(alice.join(&lobby)).await.expect("join");
    assert_eq!(joined["room"], lobby.as_str());
    settle(bob.join(&lobby)).await.expect("join");
    let sent = settle(bob.chat(&lobby, &"hello".into()))
        .await
        .expect("chat");
    eventually("alice gets bob's chat", || !alice_chats.all().is_empty()).await;
    let chat = &alice_chats.all()[0];
    assert_eq!(chat["message"], "hello");
    assert!(
        chat["from"]["userId"]
            .as_str()
            .unwrap_or_default()
            .starts_with("bob-"),
        "{chat}"
    );
    assert_eq!(chat["id"], sent["id"]);
    alice.close();
    bob.close();
}

#[wasm_bindgen_test]
async fn server_errors_reject_with_their_code() {
    let (alice, _, _) = connected(&unique("alice")).await;
    let error = settle(alice.chat(&room("nowhere"), &"hi".into()))
        .await
        .unwrap_err();
    assert_eq!(error["code"], "not_member", "{error}");
    let error = settle(alice.request("no_such_type", &JsValue::NULL, &JsValue::NULL))
        .await
        .unwrap_err();
    assert_eq!(error["code"], "bad_request", "{error}");
    // Refused locally: the protocol has no such message.
    let error = settle(alice.join("")).await.unwrap_err();
    assert_eq!(error["code"], "bad_request", "{error}");
    alice.close();
}

#[wasm_bindgen_test]
async fn a_bad_token_rejects_connect_and_closes_with_4001_without_reconnecting() {
    let client = RoomcastClient::new(URL, &options("not-a-jwt")).expect("client");
    let states = Recorder::new();
    client.on_state_change(states.function().clone());
    assert!(settle(client.connect()).await.is_err());
    let last = states.all().last().cloned().unwrap_or_default();
    assert_eq!(last["state"], "closed", "{:?}", states.all());
    assert_eq!(last["code"], 4001, "{:?}", states.all());
    TimeoutFuture::new(500).await;
    assert!(
        !states.all().iter().any(|s| s["state"] == "reconnecting"),
        "{:?}",
        states.all()
    );
}

#[wasm_bindgen_test]
async fn heartbeats_are_answered_so_the_connection_stays_open() {
    // The test server pings every 300 ms and gives up 500 ms after an unanswered ping.
    let (alice, _, states) = connected(&unique("alice")).await;
    TimeoutFuture::new(2_000).await;
    assert_eq!(
        states.all().last().unwrap()["state"],
        "open",
        "{:?}",
        states.all()
    );
    assert_eq!(
        states.all().len(),
        2,
        "connecting, open, nothing else: {:?}",
        states.all()
    );
    let pong = settle(alice.request("ping", &JsValue::NULL, &JsValue::NULL)).await;
    assert!(pong.is_ok(), "{pong:?}");
    alice.close();
}

#[wasm_bindgen_test]
async fn large_messages_arrive_compressed_and_are_inflated() {
    let (alice, alice_chats, _) = connected(&unique("alice")).await;
    let lobby = room("big");
    settle(alice.join(&lobby)).await.expect("join");
    let text = "compress me ".repeat(200);
    settle(alice.chat(&lobby, &text.as_str().into()))
        .await
        .expect("chat");
    eventually("the chat comes back", || !alice_chats.all().is_empty()).await;
    assert_eq!(alice_chats.all()[0]["message"], text.as_str());
    alice.close();
}

#[wasm_bindgen_test]
async fn the_per_user_limit_closes_with_4009_for_good() {
    let user = unique("crowd");
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(connected(&user).await);
    }
    let extra = RoomcastClient::new(URL, &options(&token(&user, 600))).expect("client");
    let states = Recorder::new();
    extra.on_state_change(states.function().clone());
    let error = settle(extra.connect()).await.unwrap_err();
    assert_eq!(error["code"], "closed", "{error}");
    let last = states.all().last().cloned().unwrap_or_default();
    assert_eq!(last["code"], 4009, "{:?}", states.all());
    for (client, _, _) in clients {
        client.close();
    }
}

/// A `getToken` that hands out a token expiring in `first_ttl` seconds, then long ones,
/// counting its calls.
fn expiring_token_source(
    user: &str,
    first_ttl: u64,
) -> (Closure<dyn FnMut() -> JsValue>, Rc<RefCell<u32>>) {
    let calls = Rc::new(RefCell::new(0));
    let counter = calls.clone();
    let user = user.to_owned();
    let source = Closure::<dyn FnMut() -> JsValue>::new(move || {
        *counter.borrow_mut() += 1;
        let ttl = if *counter.borrow() == 1 {
            first_ttl
        } else {
            600
        };
        // Returned as a promise, as an app's fetch of a token would be.
        let fresh = JsValue::from(token(&user, ttl));
        Promise::new(&mut |resolve, _reject| {
            let _ = resolve.call1(&JsValue::NULL, &fresh);
        })
        .into()
    });
    (source, calls)
}

#[wasm_bindgen_test]
async fn after_the_token_expires_get_token_reconnects_and_the_room_loses_and_repeats_nothing() {
    let lobby = room("busy");
    let (bob, _, _) = connected(&unique("bob")).await;
    settle(bob.join(&lobby)).await.expect("bob joins");

    let (source, calls) = expiring_token_source(&unique("alice"), 2);
    let options = base_options();
    set(&options, "getToken", source.as_ref());
    let alice = RoomcastClient::new(URL, &options).expect("client");
    let chats = Recorder::new();
    let states = Recorder::new();
    alice.on("chat", chats.function().clone());
    alice.on_state_change(states.function().clone());
    settle(alice.connect()).await.expect("alice connects");
    settle(alice.join(&lobby)).await.expect("alice joins");

    // Bob chats steadily for 4 s while alice's 2 s token expires (the server closes her
    // with 4001), `getToken` gives a fresh one, and she rejoins from her last chat.
    let mut sent = Vec::new();
    for n in 0..40 {
        let reply = settle(bob.chat(&lobby, &JsValue::from(n)))
            .await
            .expect("bob chats");
        sent.push(reply["id"].clone());
        TimeoutFuture::new(100).await;
    }
    eventually("alice has every chat", || chats.all().len() >= sent.len()).await;
    TimeoutFuture::new(300).await;
    let received: Vec<Value> = chats.all().iter().map(|c| c["id"].clone()).collect();
    assert_eq!(received, sent, "every chat exactly once, in order");
    assert!(*calls.borrow() >= 2, "getToken was asked again");
    assert!(
        states.all().iter().any(|s| s["state"] == "reconnecting"),
        "{:?}",
        states.all()
    );
    assert_eq!(states.all().last().unwrap()["state"], "open");
    alice.close();
    bob.close();
}

#[wasm_bindgen_test]
async fn requests_made_while_reconnecting_are_sent_in_order_after_reconnect() {
    let lobby = room("queue");
    let (bob, bob_chats, _) = connected(&unique("bob")).await;
    settle(bob.join(&lobby)).await.expect("bob joins");
    let (source, _) = expiring_token_source(&unique("alice"), 1);
    let options = base_options();
    set(&options, "getToken", source.as_ref());
    // A slow reconnect, so there is time to queue.
    let reconnect: JsValue = Object::new().into();
    set(&reconnect, "initialDelayMs", &800.into());
    set(&reconnect, "jitter", &false.into());
    set(&options, "reconnect", &reconnect);
    let alice = RoomcastClient::new(URL, &options).expect("client");
    let states = Recorder::new();
    alice.on_state_change(states.function().clone());
    settle(alice.connect()).await.expect("alice connects");
    settle(alice.join(&lobby)).await.expect("alice joins");
    eventually("alice's token expired", || {
        states.all().iter().any(|s| s["state"] == "reconnecting")
    })
    .await;
    let first = alice.chat(&lobby, &"queued 1".into());
    let second = alice.chat(&lobby, &"queued 2".into());
    assert!(settle(first).await.is_ok());
    assert!(settle(second).await.is_ok());
    eventually("bob gets both", || bob_chats.all().len() >= 2).await;
    let texts: Vec<Value> = bob_chats
        .all()
        .iter()
        .map(|c| c["message"].clone())
        .collect();
    assert_eq!(texts, [json!("queued 1"), json!("queued 2")]);
    alice.close();
    bob.close();
}
