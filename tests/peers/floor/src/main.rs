//! The floor: a bare tokio-tungstenite rooms broadcast server, a benchmark instrument.
//!
//! It speaks the peer protocol of `tests/peers/README.md` and does nothing else: no
//! logging, no metrics, no persistence. Each publish is serialized once into a
//! `Utf8Bytes` that every member's queue gets a clone of (a reference count), and each
//! connection writes everything queued for it before flushing once. A connection whose
//! queue is full (it is not reading) is closed with 4029, as Roomcast does.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use futures_util::{Sink, SinkExt, StreamExt};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

const DEFAULT_PORT: u16 = 9002;
const DEV_SECRET: &str = "roomcast-dev-secret-DO-NOT-USE-IN-PRODUCTION";
/// Frames a connection may have queued before it is closed as a slow consumer
/// (Roomcast's old frame-count default; Roomcast now bounds its queue in bytes).
const DEFAULT_SEND_QUEUE: usize = 1024;
const READ_BUFFER: usize = 4 * 1024;
const WRITE_BUFFER: usize = 16 * 1024;
const MAX_WRITE_BUFFER: usize = 4 * 1024 * 1024;
const MAX_MESSAGE: usize = 1024 * 1024;
/// Roomcast's close code for a connection whose send queue overflowed.
const SLOW_CONSUMER: u16 = 4029;
/// How long a closing connection's last frames may take before the socket is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

const PONG: &str = r#"{"type":"pong"}"#;
const ERR_JSON: &str =
    r#"{"type":"error","message":"expected a JSON object with a string \"type\""}"#;
const ERR_TYPE: &str = r#"{"type":"error","message":"unknown type"}"#;
const ERR_ROOM: &str = r#"{"type":"error","message":"missing room"}"#;
const ERR_DATA: &str = r#"{"type":"error","message":"missing data"}"#;
const ERR_BINARY: &str = r#"{"type":"error","message":"expected a text frame"}"#;

/// What the rooms hold of a connection: its queue, and the signal that it overflowed.
struct Member {
    tx: mpsc::Sender<Utf8Bytes>,
    overflowed: Notify,
}

impl Member {
    /// Queues a frame without waiting; a full queue closes the connection.
    fn send(&self, frame: Utf8Bytes) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(frame) {
            self.overflowed.notify_one();
        }
    }
}

/// Room name to its members: (connection id, the connection).
type Rooms = HashMap<String, Vec<(u64, Arc<Member>)>>;

struct Shared {
    rooms: Mutex<Rooms>,
    key: DecodingKey,
    validation: Validation,
    send_queue: usize,
    config: WebSocketConfig,
}

static SHARED: OnceLock<Shared> = OnceLock::new();
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn shared() -> &'static Shared {
    SHARED.get().expect("initialized in main")
}

fn rooms() -> MutexGuard<'static, Rooms> {
    shared().rooms.lock().unwrap_or_else(|e| e.into_inner())
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> std::io::Result<()> {
    let port: u16 = env_or("PORT", DEFAULT_PORT);
    let workers: usize = env_or("TOKIO_WORKER_THREADS", 2);
    let secret = std::env::var("JWT_SECRET").unwrap_or_else(|_| DEV_SECRET.to_owned());

    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["sub", "exp"]);
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let state = Shared {
        rooms: Mutex::new(HashMap::new()),
        key: DecodingKey::from_secret(secret.as_bytes()),
        validation,
        send_queue: env_or("SEND_QUEUE", DEFAULT_SEND_QUEUE).max(1),
        config,
    };
    if SHARED.set(state).is_err() {
        unreachable!("main runs once");
    }

    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .enable_io()
        .enable_time()
        .build()?
        .block_on(serve(port))
}

async fn serve(port: u16) -> std::io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!("roomcast-peer-floor listening on ws://127.0.0.1:{port}/ws");
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of descriptors and the like: keep accepting once some are free.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(stream));
    }
}

#[derive(Deserialize)]
struct Claims {
    /// Required; the floor has no use for who the user is.
    #[serde(rename = "sub")]
    _sub: String,
}

/// The upgrade callback: a valid `?token=` or a 401.
#[allow(clippy::result_large_err)] // the signature tungstenite asks for
fn authorize(req: &Request, resp: Response) -> Result<Response, ErrorResponse> {
    let token = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="));
    let s = shared();
    match token.map(|t| jsonwebtoken::decode::<Claims>(t, &s.key, &s.validation)) {
        Some(Ok(_)) => Ok(resp),
        _ => {
            let mut refused = ErrorResponse::new(Some("unauthorized".to_owned()));
            *refused.status_mut() = StatusCode::UNAUTHORIZED;
            Err(refused)
        }
    }
}

#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    room: Option<Cow<'a, str>>,
    /// `Some` whenever the field is present, `null` included.
    #[serde(default, borrow, deserialize_with = "present")]
    data: Option<&'a RawValue>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

async fn connection(stream: TcpStream) {
    let s = shared();
    let Ok(mut ws) =
        tokio_tungstenite::accept_hdr_async_with_config(stream, authorize, Some(s.config)).await
    else {
        return;
    };
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel::<Utf8Bytes>(s.send_queue);
    // `me` holds a sender, so the queue never closes while the loop runs.
    let me = Arc::new(Member {
        tx,
        overflowed: Notify::new(),
    });
    let mut joined: Vec<String> = Vec::new();

    let slow = loop {
        tokio::select! {
            Some(first) = rx.recv() => {
                // A client that stops reading blocks the flush: the overflow ends it.
                tokio::select! {
                    written = write_burst(&mut ws, first, &mut rx) => if written.is_err() {
                        break false;
                    },
                    () = me.overflowed.notified() => break true,
                }
            }
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) => handle(id, &me, &mut joined, &text),
                Some(Ok(Message::Binary(_))) => me.send(Utf8Bytes::from_static(ERR_BINARY)),
                Some(Ok(Message::Close(_)) | Err(_)) | None => break false,
                // Pings are answered by tungstenite; pongs and raw frames need nothing.
                Some(Ok(_)) => {}
            },
            () = me.overflowed.notified() => break true,
        }
    };

    if !joined.is_empty() {
        let mut rooms = rooms();
        for room in &joined {
            remove(&mut rooms, room, id);
        }
    }
    // Finish the close handshake the client started, or start ours (4029 for a slow
    // consumer); a client that does not read gets a moment, then the socket is dropped.
    let frame = slow.then(|| CloseFrame {
        code: CloseCode::from(SLOW_CONSUMER),
        reason: Utf8Bytes::from_static("slow consumer"),
    });
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.close(frame)).await;
}

/// Writes `first` and everything else already queued, then flushes once.
async fn write_burst<S>(
    ws: &mut S,
    first: Utf8Bytes,
    rx: &mut mpsc::Receiver<Utf8Bytes>,
) -> Result<(), S::Error>
where
    S: Sink<Message> + Unpin,
{
    ws.feed(Message::Text(first)).await?;
    while let Ok(next) = rx.try_recv() {
        ws.feed(Message::Text(next)).await?;
    }
    ws.flush().await
}

fn handle(id: u64, me: &Arc<Member>, joined: &mut Vec<String>, text: &str) {
    let Ok(msg) = serde_json::from_str::<Incoming<'_>>(text) else {
        return me.send(Utf8Bytes::from_static(ERR_JSON));
    };
    match &*msg.kind {
        "publish" => {
            let Some(room) = msg.room else {
                return me.send(Utf8Bytes::from_static(ERR_ROOM));
            };
            let Some(data) = msg.data else {
                return me.send(Utf8Bytes::from_static(ERR_DATA));
            };
            publish(&room, data);
        }
        "join" => {
            let Some(room) = msg.room else {
                return me.send(Utf8Bytes::from_static(ERR_ROOM));
            };
            let count = {
                let mut rooms = rooms();
                let members = rooms.entry(room.to_string()).or_default();
                if !members.iter().any(|(m, _)| *m == id) {
                    members.push((id, me.clone()));
                    joined.push(room.to_string());
                }
                members.len()
            };
            let mut out = String::with_capacity(room.len() + 48);
            out.push_str(r#"{"type":"joined","room":"#);
            push_json_str(&mut out, &room);
            out.push_str(r#","count":"#);
            out.push_str(&count.to_string());
            out.push('}');
            me.send(Utf8Bytes::from(out));
        }
        "leave" => {
            let Some(room) = msg.room else {
                return me.send(Utf8Bytes::from_static(ERR_ROOM));
            };
            if let Some(at) = joined.iter().position(|r| *r == *room) {
                joined.swap_remove(at);
                remove(&mut rooms(), &room, id);
            }
            let mut out = String::with_capacity(room.len() + 32);
            out.push_str(r#"{"type":"left","room":"#);
            push_json_str(&mut out, &room);
            out.push('}');
            me.send(Utf8Bytes::from(out));
        }
        "ping" => me.send(Utf8Bytes::from_static(PONG)),
        _ => me.send(Utf8Bytes::from_static(ERR_TYPE)),
    }
}

/// Serializes the message once, then hands each member a clone of it (a reference
/// count); the publisher never waits.
fn publish(room: &str, data: &RawValue) {
    let data = data.get();
    let mut out = String::with_capacity(room.len() + data.len() + 40);
    out.push_str(r#"{"type":"message","room":"#);
    push_json_str(&mut out, room);
    out.push_str(r#","data":"#);
    out.push_str(data);
    out.push('}');
    let frame = Utf8Bytes::from(out);
    let rooms = rooms();
    if let Some(members) = rooms.get(room) {
        for (_, member) in members {
            member.send(frame.clone());
        }
    }
}

fn remove(rooms: &mut Rooms, room: &str, id: u64) {
    let Some(members) = rooms.get_mut(room) else {
        return;
    };
    if let Some(at) = members.iter().position(|(m, _)| *m == id) {
        members.swap_remove(at);
    }
    if members.is_empty() {
        rooms.remove(room);
    }
}

/// Appends `s` as a JSON string (room names rarely need escaping).
fn push_json_str(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else if let Ok(quoted) = serde_json::to_string(s) {
        out.push_str(&quoted);
    }
}
