//! Request/reply correlation: the ids every request is numbered with, the requests sent
//! and waiting for their answer, and those made while disconnected (bounded, kept in
//! order and sent after the next `auth_ok`), each with its deadline. Joins take their ids
//! from the same [`Ids`], so a reply's `id` says which one it answers, but are tracked by
//! [`super::membership`], which keeps their rooms.

use std::collections::VecDeque;

use super::Millis;
use super::connection::Phase;
use super::json;
use super::small_map::SmallMap;
use super::types::Effect;
use crate::error::ClientError;

/// The request ids: one sequence for the app's requests and the SDK's rejoins.
#[derive(Debug)]
pub(super) struct Ids {
    next: u64,
}

impl Default for Ids {
    fn default() -> Self {
        Self { next: 1 }
    }
}

impl Ids {
    pub(super) fn allocate(&mut self) -> u64 {
        let id = self.next;
        self.next += 1;
        id
    }
}

/// A request the app made.
#[derive(Debug)]
struct Request {
    /// The frame, with its `id`.
    frame: String,
    /// When the app stops waiting.
    deadline: Millis,
    /// Its timeout, for the error.
    timeout_ms: u64,
}

/// The app's requests (other than joins) not settled yet.
#[derive(Debug, Default)]
pub(super) struct Requests {
    /// Sent and waiting for an answer.
    in_flight: SmallMap<u64, Request>,
    /// Made while disconnected, in order.
    queued: VecDeque<(u64, Request)>,
}

impl Requests {
    pub(super) fn in_flight_len(&self) -> usize {
        self.in_flight.len()
    }

    pub(super) fn queued_len(&self) -> usize {
        self.queued.len()
    }

    /// Sends `frame` when open, queues it while disconnected (up to `queue_limit`).
    pub(super) fn submit(
        &mut self,
        id: u64,
        frame: String,
        timeout_ms: u64,
        now: Millis,
        phase: Phase,
        queue_limit: usize,
    ) -> Vec<Effect> {
        let request = Request {
            frame,
            deadline: now.saturating_add(timeout_ms),
            timeout_ms,
        };
        match phase {
            Phase::Closed => vec![Effect::Settle(id, Err(ClientError::Closed))],
            Phase::Open => {
                let send = Effect::Send(request.frame.clone());
                self.in_flight.insert(id, request);
                vec![send]
            }
            _ if self.queued.len() >= queue_limit => {
                vec![Effect::Settle(
                    id,
                    Err(ClientError::QueueFull(self.queued.len())),
                )]
            }
            _ => {
                self.queued.push_back((id, request));
                Vec::new()
            }
        }
    }

    /// The answer to `id` came: whether it was one of these (the caller settles it).
    pub(super) fn answered(&mut self, id: u64) -> bool {
        self.in_flight.remove(&id).is_some()
    }

    /// After `auth_ok`: sends what waited, in order, unless its time ran out meanwhile.
    pub(super) fn flush(&mut self, now: Millis, effects: &mut Vec<Effect>) {
        for (id, request) in std::mem::take(&mut self.queued) {
            if request.deadline <= now {
                effects.push(Effect::Settle(
                    id,
                    Err(ClientError::Timeout(request.timeout_ms)),
                ));
                continue;
            }
            effects.push(Effect::Send(request.frame.clone()));
            self.in_flight.insert(id, request);
        }
    }

    /// The connection dropped: what was sent will get no answer. The queue waits on.
    pub(super) fn disconnected(&mut self, effects: &mut Vec<Effect>) {
        for (id, _) in std::mem::take(&mut self.in_flight) {
            effects.push(Effect::Settle(id, Err(ClientError::Disconnected)));
        }
    }

    /// The end: every request still waiting, sent ones first, for the caller to reject.
    pub(super) fn drain(&mut self) -> Vec<u64> {
        let waiting = self
            .in_flight
            .keys()
            .copied()
            .chain(self.queued.iter().map(|(id, _)| *id))
            .collect();
        self.in_flight.clear();
        self.queued.clear();
        waiting
    }

    /// Rejects the requests, sent or queued, whose deadline passed.
    pub(super) fn expire(&mut self, now: Millis, effects: &mut Vec<Effect>) {
        for (id, request) in self.in_flight.extract_if(|_, r| r.deadline <= now) {
            effects.push(Effect::Settle(
                id,
                Err(ClientError::Timeout(request.timeout_ms)),
            ));
        }
        let mut kept = VecDeque::new();
        for (id, request) in std::mem::take(&mut self.queued) {
            if request.deadline <= now {
                effects.push(Effect::Settle(
                    id,
                    Err(ClientError::Timeout(request.timeout_ms)),
                ));
            } else {
                kept.push_back((id, request));
            }
        }
        self.queued = kept;
    }

    /// The deadlines of every request waiting.
    pub(super) fn deadlines(&self) -> impl Iterator<Item = Millis> + '_ {
        self.in_flight
            .values()
            .chain(self.queued.iter().map(|(_, r)| r))
            .map(|r| r.deadline)
    }
}

/// `{"type":kind,"id":id,...fields}`; `fields` are raw JSON texts, and any `type` or `id`
/// among them is the SDK's to set.
pub(super) fn request_frame<'a>(
    kind: &str,
    id: u64,
    fields: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> String {
    let mut frame = String::from(r#"{"type":"#);
    json::push_string(&mut frame, kind);
    frame.push_str(",\"id\":");
    frame.push_str(&id.to_string());
    for (key, raw) in fields {
        if key != "type" && key != "id" {
            frame.push(',');
            json::push_string(&mut frame, key);
            frame.push(':');
            frame.push_str(raw);
        }
    }
    frame.push('}');
    frame
}
