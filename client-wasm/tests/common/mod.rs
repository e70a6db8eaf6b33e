//! Helpers of the browser tests: tokens, options, recorders of what handlers saw, and
//! the harness's control server (restart the server, call its API).

#![allow(dead_code)]

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

/// The harness's control server (`scripts/browser-test-control.py`).
const CONTROL: &str = match option_env!("ROOMCAST_TEST_CONTROL") {
    Some(url) => url,
    None => "http://127.0.0.1:9 (run scripts/browser-test.sh)",
};

/// The server `scripts/browser-test.sh` started.
pub const URL: &str = match option_env!("ROOMCAST_TEST_URL") {
    Some(url) => url,
    None => "ws://127.0.0.1:9/ws (run scripts/browser-test.sh)",
};
/// The server's dev-mode secret.
const SECRET: &str = "roomcast-dev-secret-DO-NOT-USE-IN-PRODUCTION";

pub fn now_secs() -> u64 {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let secs = (js_sys::Date::now() / 1000.0) as u64;
    secs
}

/// An HS256 token for `user` expiring in `ttl` seconds.
pub fn token(user: &str, ttl: u64) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = json!({ "sub": user, "exp": now_secs() + ttl }).to_string();
    let signing_input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims));
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

pub fn set(object: &JsValue, key: &str, value: &JsValue) {
    Reflect::set(object, &key.into(), value).expect("set a property");
}

/// Options with a static token and a fast reconnect.
pub fn options(token: &str) -> JsValue {
    let options = base_options();
    set(&options, "token", &token.into());
    options
}

/// Options with a fast reconnect and no token yet.
pub fn base_options() -> JsValue {
    let options: JsValue = Object::new().into();
    let reconnect: JsValue = Object::new().into();
    set(&reconnect, "initialDelayMs", &100.into());
    set(&reconnect, "maxDelayMs", &400.into());
    set(&options, "reconnect", &reconnect);
    options
}

pub fn to_json(value: &JsValue) -> Value {
    serde_wasm_bindgen::from_value(value.clone()).unwrap_or(Value::Null)
}

pub async fn settle(promise: Promise) -> Result<Value, Value> {
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
pub struct Recorder {
    seen: Rc<RefCell<Vec<Value>>>,
    callback: Closure<dyn FnMut(JsValue)>,
}

impl Recorder {
    pub fn new() -> Self {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let sink = seen.clone();
        let callback = Closure::<dyn FnMut(JsValue)>::new(move |value: JsValue| {
            sink.borrow_mut().push(to_json(&value));
        });
        Self { seen, callback }
    }

    pub fn function(&self) -> &Function {
        self.callback.as_ref().unchecked_ref()
    }

    pub fn all(&self) -> Vec<Value> {
        self.seen.borrow().clone()
    }
}

/// Waits (up to 10 s) until `done` holds.
pub async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
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
pub async fn connected(user: &str) -> (RoomcastClient, Recorder, Recorder) {
    let client = RoomcastClient::new(URL, &options(&token(user, 600))).expect("client");
    let chats = Recorder::new();
    let states = Recorder::new();
    client.on("chat", chats.function().clone());
    client.on_state_change(states.function().clone());
    settle(client.connect()).await.expect("connects");
    (client, chats, states)
}

pub fn room(name: &str) -> String {
    unique(name)
}

/// `name` with a random suffix.
pub fn unique(name: &str) -> String {
    format!("{name}-{}", js_sys::Math::random().to_bits())
}

/// A `getToken` that hands out a token expiring in `first_ttl` seconds, then long ones,
/// counting its calls.
#[allow(clippy::type_complexity)]
pub fn expiring_token_source(
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

/// Calls the harness: `POST /restart`, or `/api/...` (forwarded with the API key).
pub async fn control(method: &str, path: &str, body: Option<Value>) -> Value {
    let init: JsValue = Object::new().into();
    set(&init, "method", &method.into());
    if let Some(body) = body {
        set(&init, "body", &body.to_string().into());
        let headers: JsValue = Object::new().into();
        set(&headers, "content-type", &"application/json".into());
        set(&init, "headers", &headers);
    }
    let fetch: Function = Reflect::get(&js_sys::global(), &"fetch".into())
        .expect("fetch")
        .unchecked_into();
    let response = fetch
        .call2(&JsValue::NULL, &format!("{CONTROL}{path}").into(), &init)
        .expect("fetch call");
    let response = JsFuture::from(Promise::from(response))
        .await
        .expect("control answers");
    let json: Function = Reflect::get(&response, &"json".into())
        .expect("json")
        .unchecked_into();
    let body = json.call0(&response).expect("json call");
    to_json(
        &JsFuture::from(Promise::from(body))
            .await
            .expect("a JSON body"),
    )
}
