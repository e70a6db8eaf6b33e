//! The core's behaviour, driven like the façade drives it: inputs in, effects out. One
//! file per owner in the core; here, the helpers that drive a core and read its effects.

mod connection;
mod dispatch;
mod membership;
mod requests;

use serde_json::{Value, json};

use super::*;

const URL: &str = "ws://127.0.0.1:8080/ws";

/// A core with fixed randomness (0.5) and a small queue.
fn core(options: Options) -> Core {
    Core::new(URL, options, Box::new(|| 0.5))
}

fn options() -> Options {
    Options {
        reconnect: Some(Backoff {
            initial_delay_ms: 100,
            max_delay_ms: 1_000,
            max_retries: Some(3),
            jitter: false,
        }),
        offline_queue_limit: 2,
        ..Options::default()
    }
}

/// A request payload, as the façade passes it (`JSON.stringify` of the app's object).
fn map(value: &Value) -> String {
    value.to_string()
}

fn sent(effects: &[Effect]) -> Vec<Value> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send(text) => Some(serde_json::from_str(text).unwrap()),
            _ => None,
        })
        .collect()
}

fn emitted(effects: &[Effect]) -> Vec<Value> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Emit(message) => {
                let value: Value = serde_json::from_str(&message.json).unwrap();
                assert_eq!(
                    value["type"],
                    message.kind.as_str(),
                    "emitted with its type"
                );
                Some(value)
            }
            _ => None,
        })
        .collect()
}

fn settled(effects: &[Effect]) -> Vec<(u64, Result<Value, ClientError>)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Settle(id, outcome) => Some((
                *id,
                outcome
                    .clone()
                    .map(|json| serde_json::from_str(&json).unwrap()),
            )),
            _ => None,
        })
        .collect()
}

fn auth_ok() -> String {
    json!({"type":"auth_ok","clientId":"c1","userId":"alice","user":{"userId":"alice"},"rooms":[],"timestamp":1}).to_string()
}

fn chat(room: &str, n: u64) -> String {
    json!({"type":"chat","id":format!("{n:016x}"),"room":room,"from":{"userId":"bob"},"message":n,"timestamp":1}).to_string()
}

/// A core that connected and authenticated at t=0.
fn open(options: Options) -> Core {
    let mut core = core(options);
    core.connect("t0".into(), 0);
    core.on_open(0);
    core.on_frame(&auth_ok(), 0);
    assert!(core.is_open());
    core
}

/// Joins `room` on an open core and has the server accept it.
fn joined(core: &mut Core, room: &str, now: Millis) {
    let (join, _) = core.request("join", &map(&json!({ "room": room })), None, now);
    let reply = json!({"type":"reply","id":join,"ok":true,"data":{"room":room,"recovered":false,"replayed":0}});
    assert_eq!(settled(&core.on_frame(&reply.to_string(), now)).len(), 1);
}

/// Drops the connection and reconnects; returns what `auth_ok` made the core send.
fn reconnected(core: &mut Core, now: Millis) -> Vec<Value> {
    core.on_close(1006, "gone", now);
    core.reconnect("t".into(), now);
    core.on_open(now);
    sent(&core.on_frame(&auth_ok(), now))
}
