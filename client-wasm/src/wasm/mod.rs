//! The wasm-bindgen façade: `RoomcastClient` for JavaScript. It owns the browser side
//! (the WebSocket, its listeners, one timer, the retry delay, the app's handlers and
//! promises) and drives [`Core`] with what happens, applying the effects it returns.
//! Every closure is owned by the struct that registered it and released on drop; the
//! callbacks hold only a weak reference to the client, so dropping it frees everything.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use gloo_timers::callback::Timeout;
use js_sys::{Function, Object, Promise, Reflect};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

use crate::core::json::quote;
use crate::core::small_map::SmallMap;
use crate::core::{Backoff, Core, Effect, Message, Options, State, timer_delay};

mod js;

use self::js::{client_error, js_error, millis, now, number, object, set, to_js, to_json};

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = include_str!("../../roomcast-client.d.ts.in");

/// The browser WebSocket and the listeners it calls, removed and closed on drop.
struct Socket {
    ws: WebSocket,
    _on_open: Closure<dyn FnMut()>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl Socket {
    fn open(url: &str, client: &Weak<RefCell<Inner>>) -> Result<Self, JsValue> {
        let ws = WebSocket::new(url)?;
        // Text frames are all the protocol uses; array buffers keep a stray binary frame
        // from being handed to us as a Blob that needs an async read.
        ws.set_binary_type(BinaryType::Arraybuffer);
        let on_open = {
            let client = client.clone();
            Closure::<dyn FnMut()>::new(move || drive(&client, |core| core.on_open(now())))
        };
        let on_message = {
            let client = client.clone();
            Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
                if let Some(text) = event.data().as_string() {
                    drive(&client, |core| core.on_frame(&text, now()));
                }
            })
        };
        let on_close = {
            let client = client.clone();
            Closure::<dyn FnMut(CloseEvent)>::new(move |event: CloseEvent| {
                let (code, reason) = (event.code(), event.reason());
                drive(&client, |core| core.on_close(code, &reason, now()));
            })
        };
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        Ok(Self {
            ws,
            _on_open: on_open,
            _on_message: on_message,
            _on_close: on_close,
        })
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        let _ = self.ws.close();
    }
}

/// Everything the client owns.
struct Inner {
    core: Core,
    socket: Option<Socket>,
    /// The one timer for the core's next deadline.
    timer: Option<Timeout>,
    /// The wait before the next reconnect.
    retry: Option<Timeout>,
    token: Option<String>,
    get_token: Option<Function>,
    /// The app's handlers by message type (`"*"`: every message).
    handlers: SmallMap<String, Vec<Function>>,
    state_handlers: Vec<Function>,
    pending: SmallMap<u64, (Function, Function)>,
    /// `connect()` promises waiting for the first `auth_ok` (or the end).
    connecting: Vec<(Function, Function)>,
    /// How many times the app called `close()`: a `connect()` still fetching its token
    /// when `close()` comes must not open a socket afterwards.
    closes: u32,
}

/// Runs `step` on the core, then applies its effects with no borrow held, so an app
/// handler may call back into the client.
fn drive(client: &Weak<RefCell<Inner>>, step: impl FnOnce(&mut Core) -> Vec<Effect>) {
    let Some(client) = client.upgrade() else {
        return;
    };
    let effects = step(&mut client.borrow_mut().core);
    apply(&client, effects);
}

fn apply(client: &Rc<RefCell<Inner>>, effects: Vec<Effect>) {
    for effect in effects {
        match effect {
            Effect::Open(url) => {
                let weak = Rc::downgrade(client);
                let socket = Socket::open(&url, &weak);
                match socket {
                    Ok(socket) => client.borrow_mut().socket = Some(socket),
                    Err(_) => {
                        // An invalid URL cannot get better by retrying.
                        client.borrow_mut().socket = None;
                        let effects = client.borrow_mut().core.close();
                        apply(client, effects);
                    }
                }
            }
            Effect::Send(text) => {
                if let Some(socket) = &client.borrow().socket {
                    let _ = socket.ws.send_with_str(&text);
                }
            }
            Effect::Close { code, reason } => {
                if let Some(socket) = client.borrow_mut().socket.take() {
                    let _ = socket.ws.close_with_code_and_reason(code, &reason);
                }
            }
            Effect::Emit(message) => emit(client, &message),
            Effect::Settle(id, outcome) => {
                let waiter = client.borrow_mut().pending.remove(&id);
                if let Some((resolve, reject)) = waiter {
                    let _ = match outcome {
                        Ok(json) => resolve.call1(&JsValue::NULL, &to_js(&json)),
                        Err(err) => reject.call1(&JsValue::NULL, &client_error(&err)),
                    };
                }
            }
            Effect::State(state) => on_state(client, &state),
            Effect::RetryAfter(delay_ms) => {
                let weak = Rc::downgrade(client);
                let retry = Timeout::new(timer_delay(delay_ms), move || {
                    wasm_bindgen_futures::spawn_local(async move {
                        let Some(client) = weak.upgrade() else { return };
                        match fetch_token(&client).await {
                            Ok(token) => {
                                let effects = client.borrow_mut().core.reconnect(token, now());
                                apply(&client, effects);
                            }
                            Err(err) => {
                                let reason = Reflect::get(&err, &"message".into())
                                    .ok()
                                    .and_then(|m| m.as_string())
                                    .or_else(|| err.as_string())
                                    .unwrap_or_else(|| "unknown error".into());
                                let effects = client
                                    .borrow_mut()
                                    .core
                                    .give_up(&format!("getToken failed: {reason}"));
                                apply(&client, effects);
                            }
                        }
                    });
                });
                client.borrow_mut().retry = Some(retry);
            }
        }
    }
    schedule(client);
}

/// Arms the single timer for the core's next deadline.
fn schedule(client: &Rc<RefCell<Inner>>) {
    let deadline = client.borrow().core.next_deadline();
    let timer = deadline.map(|at| {
        let weak = Rc::downgrade(client);
        let wait = timer_delay(at.saturating_sub(now()));
        Timeout::new(wait, move || drive(&weak, |core| core.on_timer(now())))
    });
    client.borrow_mut().timer = timer;
}

fn emit(client: &Rc<RefCell<Inner>>, message: &Message) {
    let handlers: Vec<Function> = {
        let inner = client.borrow();
        // The type's own handlers first, then the catch-all ones.
        [message.kind.as_str(), "*"]
            .iter()
            .filter_map(|kind| inner.handlers.iter().find(|(k, _)| k == kind))
            .flat_map(|(_, handlers)| handlers.iter().cloned())
            .collect()
    };
    if handlers.is_empty() {
        return;
    }
    let js = to_js(&message.json);
    for handler in handlers {
        // A throwing handler must not stop the others (or the client).
        let _ = handler.call1(&JsValue::NULL, &js);
    }
}

fn on_state(client: &Rc<RefCell<Inner>>, state: &State) {
    let event = Object::new();
    let name = match state {
        State::Idle => "idle",
        State::Connecting => "connecting",
        State::Open => "open",
        State::Reconnecting { attempt, delay_ms } => {
            set(&event, "attempt", &JsValue::from(*attempt));
            let delay_ms = u32::try_from(*delay_ms).unwrap_or(u32::MAX);
            set(&event, "delayMs", &JsValue::from(delay_ms));
            "reconnecting"
        }
        State::Closed { code, reason } => {
            let code = code.map_or(JsValue::NULL, JsValue::from);
            set(&event, "code", &code);
            set(&event, "reason", &JsValue::from_str(reason));
            "closed"
        }
    };
    set(&event, "state", &JsValue::from_str(name));
    let settle: Vec<(Function, Function)> = match state {
        State::Open | State::Closed { .. } => std::mem::take(&mut client.borrow_mut().connecting),
        _ => Vec::new(),
    };
    for (resolve, reject) in settle {
        let _ = match state {
            State::Open => resolve.call0(&JsValue::NULL),
            _ => reject.call1(
                &JsValue::NULL,
                &js_error("closed", "the client closed before it connected"),
            ),
        };
    }
    let handlers = client.borrow().state_handlers.clone();
    for handler in handlers {
        let _ = handler.call1(&JsValue::NULL, &event);
    }
}

/// The token for the next attempt: `getToken()` when given (awaited if it returns a
/// promise), else the static token.
async fn fetch_token(client: &Rc<RefCell<Inner>>) -> Result<String, JsValue> {
    let (token, get_token) = {
        let inner = client.borrow();
        (inner.token.clone(), inner.get_token.clone())
    };
    if let Some(get_token) = get_token {
        let result = get_token.call0(&JsValue::NULL)?;
        let value = match result.dyn_into::<Promise>() {
            Ok(promise) => wasm_bindgen_futures::JsFuture::from(promise).await?,
            Err(value) => value,
        };
        return value
            .as_string()
            .ok_or_else(|| js_error("auth_failed", "getToken must return a string"));
    }
    token.ok_or_else(|| js_error("auth_failed", "no token: pass `token` or `getToken`"))
}

/// Reads the constructor's options object.
fn read_options(options: &JsValue) -> Result<(Options, Option<String>, Option<Function>), JsValue> {
    let get = |key: &str| Reflect::get(options, &key.into()).unwrap_or(JsValue::UNDEFINED);
    let token = get("token").as_string();
    let get_token = get("getToken").dyn_into::<Function>().ok();
    if token.is_none() && get_token.is_none() {
        return Err(js_error(
            "bad_request",
            "options need `token` or `getToken`",
        ));
    }
    let mut core = Options {
        refreshable_token: get_token.is_some(),
        ..Options::default()
    };
    if let Some(compress) = get("compress").as_bool() {
        core.compress = compress;
    }
    let reconnect = get("reconnect");
    if reconnect == JsValue::FALSE {
        core.reconnect = None;
    } else if reconnect.is_object() {
        let mut backoff = Backoff::default();
        if let Some(v) = number(&reconnect, "initialDelayMs") {
            backoff.initial_delay_ms = millis(v);
        }
        if let Some(v) = number(&reconnect, "maxDelayMs") {
            backoff.max_delay_ms = millis(v);
        }
        if let Some(v) = number(&reconnect, "maxRetries") {
            backoff.max_retries = Some(u32::try_from(millis(v)).unwrap_or(u32::MAX));
        }
        if let Some(jitter) = Reflect::get(&reconnect, &"jitter".into())
            .ok()
            .and_then(|v| v.as_bool())
        {
            backoff.jitter = jitter;
        }
        core.reconnect = Some(backoff);
    }
    if let Some(v) = number(options, "heartbeatIntervalMs") {
        core.heartbeat_interval_ms = millis(v);
    }
    if let Some(v) = number(options, "requestTimeoutMs") {
        core.request_timeout_ms = millis(v);
    }
    if let Some(v) = number(options, "offlineQueueLimit") {
        core.offline_queue_limit = usize::try_from(millis(v)).unwrap_or(usize::MAX);
    }
    Ok((core, token, get_token))
}

/// A Roomcast connection for a web page.
#[wasm_bindgen(js_name = RoomcastClient, skip_typescript)]
pub struct RoomcastClient {
    inner: Rc<RefCell<Inner>>,
}

impl std::fmt::Debug for RoomcastClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.inner.try_borrow() {
            Ok(inner) => f.debug_tuple("RoomcastClient").field(&inner.core).finish(),
            Err(_) => f.write_str("RoomcastClient(busy)"),
        }
    }
}

#[wasm_bindgen(js_class = RoomcastClient)]
impl RoomcastClient {
    /// `new RoomcastClient(url, { token | getToken, compress, reconnect, ... })`.
    ///
    /// # Errors
    /// A JS `Error` (code `bad_request`) for options without a token.
    #[wasm_bindgen(constructor)]
    pub fn new(url: &str, options: &JsValue) -> Result<RoomcastClient, JsValue> {
        let (options, token, get_token) = read_options(options)?;
        let core = Core::new(url, options, Box::new(js_sys::Math::random));
        Ok(Self {
            inner: Rc::new(RefCell::new(Inner {
                core,
                socket: None,
                timer: None,
                retry: None,
                token,
                get_token,
                handlers: SmallMap::default(),
                state_handlers: Vec::new(),
                pending: SmallMap::default(),
                connecting: Vec::new(),
                closes: 0,
            })),
        })
    }

    /// Connects; resolves on the first `auth_ok`, rejects if the client closes first.
    pub fn connect(&self) -> Promise {
        if self.inner.borrow().core.is_open() {
            return Promise::resolve(&JsValue::UNDEFINED);
        }
        let client = self.inner.clone();
        let promise = Promise::new(&mut |resolve, reject| {
            client.borrow_mut().connecting.push((resolve, reject));
        });
        let client = self.inner.clone();
        let closes = client.borrow().closes;
        wasm_bindgen_futures::spawn_local(async move {
            let token = fetch_token(&client).await;
            let outcome = match token {
                Ok(_) if client.borrow().closes != closes => Err(js_error(
                    "closed",
                    "the client was closed before it connected",
                )),
                other => other,
            };
            match outcome {
                Ok(token) => {
                    let effects = client.borrow_mut().core.connect(token, now());
                    apply(&client, effects);
                }
                Err(err) => {
                    for (_, reject) in std::mem::take(&mut client.borrow_mut().connecting) {
                        let _ = reject.call1(&JsValue::NULL, &err);
                    }
                }
            }
        });
        promise
    }

    /// Closes for good: no reconnect; waiting requests reject with `closed`.
    pub fn close(&self) {
        self.inner.borrow_mut().closes += 1;
        let effects = self.inner.borrow_mut().core.close();
        apply(&self.inner, effects);
        let mut inner = self.inner.borrow_mut();
        inner.retry = None;
        inner.socket = None;
    }

    /// Calls `handler(message)` for every server message of `type` (`"*"`: all).
    pub fn on(&self, kind: &str, handler: Function) {
        self.inner
            .borrow_mut()
            .handlers
            .entry_or_default(kind.to_owned())
            .push(handler);
    }

    /// Removes a handler added with `on`.
    pub fn off(&self, kind: &str, handler: &Function) {
        if let Some(list) = self.inner.borrow_mut().handlers.get_mut(&kind.to_owned()) {
            list.retain(|h| h != handler);
        }
    }

    /// Calls `handler({state, ...})` on every state change.
    #[wasm_bindgen(js_name = onStateChange)]
    pub fn on_state_change(&self, handler: Function) {
        self.inner.borrow_mut().state_handlers.push(handler);
    }

    /// Any request: resolves with the reply's `data`, rejects with an `Error` whose
    /// `code` is the server's (or `timeout`, `disconnected`, `closed`, `queue_full`,
    /// `bad_request` for a payload that is not an object).
    pub fn request(&self, kind: &str, payload: &JsValue, options: &JsValue) -> Promise {
        let payload = if payload.is_null() {
            Ok("null".into())
        } else {
            to_json(payload)
        };
        let timeout = number(options, "timeoutMs").map(millis);
        match payload {
            Ok(payload) => self.send(kind, &payload, timeout),
            Err(err) => Promise::reject(&err),
        }
    }

    fn send(&self, kind: &str, payload: &str, timeout: Option<u64>) -> Promise {
        let (id, effects) = self
            .inner
            .borrow_mut()
            .core
            .request(kind, payload, timeout, now());
        let client = self.inner.clone();
        let promise = Promise::new(&mut |resolve, reject| {
            client.borrow_mut().pending.insert(id, (resolve, reject));
        });
        apply(&self.inner, effects);
        promise
    }

    /// A request whose fields are JSON texts already.
    fn call(&self, kind: &str, members: &[(&str, &str)]) -> Promise {
        self.send(kind, &object(members), None)
    }

    /// A request with a room (or user, topic) and the app's `value` as `key`.
    fn call_with(&self, kind: &str, name: (&str, &str), key: &str, value: &JsValue) -> Promise {
        match to_json(value) {
            Ok(value) => self.call(kind, &[(name.0, &quote(name.1)), (key, &value)]),
            Err(err) => Promise::reject(&err),
        }
    }

    /// Joins a room (rejoined after every reconnect, from the last message seen).
    pub fn join(&self, room: &str) -> Promise {
        self.call("join", &[("room", &quote(room))])
    }

    /// Leaves a room.
    pub fn leave(&self, room: &str) -> Promise {
        self.call("leave", &[("room", &quote(room))])
    }

    /// Says `content` (any JSON) in a room.
    pub fn chat(&self, room: &str, content: &JsValue) -> Promise {
        self.call_with("chat", ("room", room), "content", content)
    }

    /// A private message to every connection of `userId`.
    #[wasm_bindgen(js_name = sendPrivate)]
    pub fn send_private(&self, user_id: &str, content: &JsValue) -> Promise {
        self.call_with("private", ("targetUserId", user_id), "content", content)
    }

    /// A page of stored messages: `name` (the room, or the other user), and from the
    /// optional `options` the number `limit` and the strings named in `cursor`.
    fn page(&self, kind: &str, name: (&str, &str), options: &JsValue, cursor: &[&str]) -> Promise {
        let mut members = vec![(name.0, quote(name.1))];
        members.extend(number(options, "limit").map(|limit| ("limit", millis(limit).to_string())));
        for &key in cursor {
            let value = Reflect::get(options, &key.into())
                .ok()
                .and_then(|v| v.as_string());
            members.extend(value.map(|value| (key, quote(&value))));
        }
        let members: Vec<_> = members.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.call(kind, &members)
    }

    /// Stored chat of a room: `{limit, before}` optional.
    pub fn history(&self, room: &str, options: &JsValue) -> Promise {
        self.page("history", ("room", room), options, &["before"])
    }

    /// Stored private messages with `userId`, both directions: `{limit, before, beforeTo}`
    /// optional (the `id` and `to` of the message to page back from: both or neither).
    #[wasm_bindgen(js_name = privateHistory)]
    pub fn private_history(&self, user_id: &str, options: &JsValue) -> Promise {
        self.page(
            "private_history",
            ("userId", user_id),
            options,
            &["before", "beforeTo"],
        )
    }

    /// A page of a room's users, by id: `{limit, after}` optional (`after`: the previous
    /// page's `next`).
    pub fn members(&self, room: &str, options: &JsValue) -> Promise {
        self.page("members", ("room", room), options, &["after"])
    }

    /// Marks a notification read (every tab of the user hears `notification_read`).
    #[wasm_bindgen(js_name = markRead)]
    pub fn mark_read(&self, notification_id: &str) -> Promise {
        self.call("mark_read", &[("notificationId", &quote(notification_id))])
    }

    /// Receives the items of `topic` whose key is in `keys`.
    pub fn subscribe(&self, topic: &str, keys: &JsValue) -> Promise {
        self.call_with("subscribe", ("topic", topic), "keys", keys)
    }

    /// Stops receiving `topic`.
    pub fn unsubscribe(&self, topic: &str) -> Promise {
        self.call("unsubscribe", &[("topic", &quote(topic))])
    }
}
