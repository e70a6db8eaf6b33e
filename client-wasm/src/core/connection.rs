//! The socket's lifecycle: its [`Phase`], the token it authenticates with, the failed
//! attempts that space the reconnects (with the injected randomness for their jitter), and
//! when the last frame arrived, which the heartbeat watchdog measures from. What the
//! connection carries (requests, joins) belongs to the other modules; the core tells them
//! when it is lost.

use super::Millis;
use super::json;
use super::types::{Effect, Options, State};

/// The socket's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Idle,
    /// Socket opening.
    Opening,
    /// `auth` sent, waiting for `auth_ok`.
    Authenticating,
    Open,
    /// Between attempts.
    Waiting,
    Closed,
}

/// One socket after another, to the same server.
pub(super) struct Connection {
    url: String,
    random: Box<dyn FnMut() -> f64>,
    phase: Phase,
    token: String,
    /// Failed attempts since the last `auth_ok`.
    attempt: u32,
    last_frame: Millis,
}

impl Connection {
    pub(super) fn new(url: String, random: Box<dyn FnMut() -> f64>) -> Self {
        Self {
            url,
            random,
            phase: Phase::Idle,
            token: String::new(),
            attempt: 0,
            last_frame: 0,
        }
    }

    pub(super) fn url(&self) -> &str {
        &self.url
    }

    pub(super) fn phase(&self) -> Phase {
        self.phase
    }

    pub(super) fn attempt(&self) -> u32 {
        self.attempt
    }

    /// A socket is opening or open: its events count.
    pub(super) fn is_live(&self) -> bool {
        matches!(
            self.phase,
            Phase::Opening | Phase::Authenticating | Phase::Open
        )
    }

    fn socket_url(&self, compress: bool) -> String {
        if compress {
            let separator = if self.url.contains('?') { '&' } else { '?' };
            format!("{}{separator}compress=gzip", self.url)
        } else {
            self.url.clone()
        }
    }

    /// The app's `connect()`: a first attempt, unless a socket is already live.
    pub(super) fn connect(&mut self, token: String, now: Millis, compress: bool) -> Vec<Effect> {
        if self.is_live() {
            return Vec::new();
        }
        self.attempt = 0;
        self.open(token, now, compress)
    }

    /// The next attempt, only while waiting for one.
    pub(super) fn reconnect(&mut self, token: String, now: Millis, compress: bool) -> Vec<Effect> {
        if self.phase != Phase::Waiting {
            return Vec::new();
        }
        self.open(token, now, compress)
    }

    fn open(&mut self, token: String, now: Millis, compress: bool) -> Vec<Effect> {
        self.token = token;
        self.phase = Phase::Opening;
        self.last_frame = now;
        vec![
            Effect::State(State::Connecting),
            Effect::Open(self.socket_url(compress)),
        ]
    }

    /// The socket opened: authenticate first.
    pub(super) fn on_open(&mut self, now: Millis) -> Vec<Effect> {
        if self.phase != Phase::Opening {
            return Vec::new();
        }
        self.phase = Phase::Authenticating;
        self.last_frame = now;
        let mut auth = String::from(r#"{"type":"auth","token":"#);
        json::push_string(&mut auth, &self.token);
        auth.push('}');
        vec![Effect::Send(auth)]
    }

    /// A frame arrived: the server is alive.
    pub(super) fn heard(&mut self, now: Millis) {
        self.last_frame = now;
    }

    /// `auth_ok`: open, and the backoff starts over. Returns whether it already was open.
    pub(super) fn authenticated(&mut self) -> bool {
        let was_open = self.phase == Phase::Open;
        self.phase = Phase::Open;
        self.attempt = 0;
        was_open
    }

    /// The connection is gone: the effects of waiting for the next attempt, or (`Err`) the
    /// reason to end for good with.
    pub(super) fn next_attempt(
        &mut self,
        code: Option<u16>,
        reason: &str,
        options: &Options,
    ) -> Result<Vec<Effect>, String> {
        let final_code = code.filter(|c| is_final(*c, options));
        let delay = match (final_code, options.reconnect) {
            (None, Some(backoff)) => backoff.delay(self.attempt, (self.random)()),
            _ => None,
        };
        match delay {
            Some(delay_ms) => {
                self.phase = Phase::Waiting;
                self.attempt += 1;
                Ok(vec![
                    Effect::State(State::Reconnecting {
                        attempt: self.attempt,
                        delay_ms,
                    }),
                    Effect::RetryAfter(delay_ms),
                ])
            }
            None => Err(if final_code.is_some() || options.reconnect.is_none() {
                reason.to_owned()
            } else {
                format!("{reason} (gave up after {} attempts)", self.attempt)
            }),
        }
    }

    /// Ends for good.
    pub(super) fn end(&mut self) {
        self.phase = Phase::Closed;
    }

    /// When a live socket that stays silent is given up: twice the server's heartbeat
    /// interval after its last frame.
    pub(super) fn watchdog(&self, heartbeat_interval_ms: u64) -> Option<Millis> {
        self.is_live()
            .then(|| self.last_frame + 2 * heartbeat_interval_ms)
    }
}

/// Close codes after which reconnecting would not help (CONTRACT §8).
fn is_final(code: u16, options: &Options) -> bool {
    match code {
        4000 | 4003 | 4009 => true,
        4001 => !options.refreshable_token,
        _ => false,
    }
}
