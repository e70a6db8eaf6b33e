//! Incoming-message dispatch, and no state of its own: each server frame is parsed,
//! unwrapped from its envelopes (`compressed`, `batch_messages`) and routed to the part of
//! the core it concerns: `ping` answered, `auth_ok` to the connection, answers to the
//! request or join they settle, chats through the rooms' once-and-in-order filter, and
//! everything else to the app, acknowledged when the sender asked.

use roomcast_protocol::codec::{self, DEFAULT_INFLATE_LIMIT};
use roomcast_protocol::{ErrorCode, MessageId, RoomName};

use super::json::{self, Object};
use super::types::{Effect, Message, State};
use super::{Core, Millis};
use crate::error::ClientError;

/// Envelopes (`compressed`, `batch_messages`) unwrapped around one message.
const MAX_ENVELOPES: u8 = 2;

impl Core {
    /// A text frame from the server.
    pub fn on_frame(&mut self, text: &str, now: Millis) -> Vec<Effect> {
        self.connection.heard(now);
        let mut effects = Vec::new();
        self.on_message(text, 0, now, &mut effects);
        effects
    }

    /// `depth`: how many envelopes (`compressed`, `batch_messages`) this message was in.
    fn on_message(&mut self, text: &str, depth: u8, now: Millis, effects: &mut Vec<Effect>) {
        // Anything but a JSON object is not the server we know: ignored, not surfaced.
        let Some(message) = Object::parse(text) else {
            return;
        };
        let kind = message.str("type").unwrap_or_default();
        match kind.as_ref() {
            "ping" => effects.push(Effect::Send(r#"{"type":"pong"}"#.to_owned())),
            "auth_ok" => {
                let was_open = self.connection.authenticated();
                if !was_open {
                    // Rejoins and the queue go out before the app hears of the connection,
                    // so nothing its handlers send can overtake them.
                    self.resume(now, effects);
                    effects.push(Effect::State(State::Open));
                }
                effects.push(emit(&kind, text));
            }
            "reply" | "error" | "pong" if message.raw("id").is_some() => {
                self.on_answer(&kind, &message, text, now, effects);
            }
            // The server wraps at most twice (a compressed batch); deeper is not its doing.
            "compressed" if depth < MAX_ENVELOPES => {
                let inner = message
                    .str("data")
                    .and_then(|data| codec::inflate(&data, DEFAULT_INFLATE_LIMIT).ok());
                if let Some(inner) = inner {
                    self.on_message(&inner, depth + 1, now, effects);
                }
            }
            "batch_messages" if depth < MAX_ENVELOPES => {
                let inner = message.raw("messages").and_then(json::array);
                for item in inner.unwrap_or_default() {
                    self.on_message(item, depth + 1, now, effects);
                }
            }
            "compressed" | "batch_messages" => {}
            "chat" => {
                let room = message.str("room").and_then(|r| RoomName::new(r).ok());
                let id = message.str("id").and_then(|i| MessageId::new(i).ok());
                if self.membership.delivers(room, id) {
                    effects.push(emit(&kind, text));
                }
            }
            _ => acknowledged(&kind, &message, text, effects),
        }
    }

    fn on_answer(
        &mut self,
        kind: &str,
        message: &Object<'_>,
        text: &str,
        now: Millis,
        effects: &mut Vec<Effect>,
    ) {
        let Some(id) = message.u64("id") else {
            // Not one of ours (the SDK numbers its requests).
            return acknowledged(kind, message, text, effects);
        };
        let outcome = match kind {
            "error" => Err(ClientError::Server {
                code: message
                    .str("code")
                    .and_then(|code| ErrorCode::ALL.into_iter().find(|c| c.as_str() == code))
                    .unwrap_or(ErrorCode::Internal),
                message: message.str("message").unwrap_or_default().into_owned(),
            }),
            "pong" => Ok(text.to_owned()),
            _ => Ok(message.raw("data").unwrap_or("null").to_owned()),
        };
        // A join's answer (a rejoin's too) is settled with its room.
        if !self.membership.answered(id, &outcome, now, effects) && self.requests.answered(id) {
            // A leave's room is done with once the server has answered it.
            self.membership.left(id);
            effects.push(Effect::Settle(id, outcome));
        }
    }
}

/// A message for the app.
fn emit(kind: &str, text: &str) -> Effect {
    Effect::Emit(Message {
        kind: kind.to_owned(),
        json: text.to_owned(),
    })
}

/// Hands a message to the app, then acknowledges it if the sender asked.
fn acknowledged(kind: &str, message: &Object<'_>, text: &str, effects: &mut Vec<Effect>) {
    effects.push(emit(kind, text));
    if let Some(message_id) = message
        .is_true("_ack")
        .then(|| message.str("_messageId"))
        .flatten()
    {
        let mut frame = String::from(r#"{"type":"ack","messageId":"#);
        json::push_string(&mut frame, &message_id);
        frame.push('}');
        effects.push(Effect::Send(frame));
    }
}
