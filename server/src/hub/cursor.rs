//! [`Cursor`]: where this node is in a room's chat sequence, and the chats that came
//! ahead of their turn. The store numbers a room's chats 1, 2, 3, ... in commit order
//! (see [`crate::store::Store`]), on whichever node they were sent; every chat this node
//! delivers, its own or one heard from the bus or read back from the store, passes here
//! in that order:
//!
//! - the next number is delivered, then whatever waited behind it;
//! - a number already delivered is dropped (the bus repeated it, or a repair and the bus
//!   both brought it);
//! - a number ahead of the next one waits, and the caller is told to read the gap from
//!   the store ([`Accepted::gap`]): if the bus lost a chat, the store has it.
//!
//! So members see each chat once, in order, however the bus drops, reorders or repeats
//! them. A `join` with `since` [holds](Cursor::hold) the cursor while it queues the
//! stored chats up to [`Hold::position`]; what arrives meanwhile waits, and follows the
//! replay when the hold ends. Frames are handed to `send` under the cursor's lock, so two
//! threads accepting consecutive chats cannot deliver them out of order; `send` only
//! queues without blocking.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

use tokio_tungstenite::tungstenite::Utf8Bytes;

/// How many chats may wait ahead of a gap; past it the oldest waiting is given up (the
/// repair brings it back from the store).
const MAX_WAITING: usize = 10_000;

/// One room's delivery position on this node.
#[derive(Debug, Default)]
pub(crate) struct Cursor {
    state: Mutex<State>,
    /// Woken when the position moves (see [`Cursor::delivered_through`]).
    advanced: Notify,
}

#[derive(Debug, Default)]
struct State {
    /// The newest number delivered here; `None` until the room's first member on this
    /// node read the room's position.
    delivered: Option<u64>,
    /// Chats that came ahead of their turn (or while held), by number.
    waiting: BTreeMap<u64, Utf8Bytes>,
    /// Joins replaying: nothing is delivered while there is one.
    holds: usize,
}

/// What an [`Cursor::accept`] (or a release) leaves to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Accepted {
    /// Chats after this number are missing before the first waiting one: read them from
    /// the store (`after`, `before` exclusive).
    pub gap: Option<(u64, u64)>,
}

/// A held cursor (see [`Cursor::hold`]); release it with [`Cursor::release`].
#[derive(Debug)]
pub(crate) struct Hold {
    /// Every chat up to this number was delivered before the hold; none after it was.
    pub position: u64,
}

impl Cursor {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the cursor knows its position.
    pub(crate) fn is_placed(&self) -> bool {
        self.state().delivered.is_some()
    }

    /// Places the cursor at `position` (the room's newest stored number, read after this
    /// node started hearing the room), or moves it there if it is behind, which it is
    /// after a time without members here. What waited up to there is dropped: it is
    /// stored, and the room's members then were none.
    pub(crate) fn place(&self, position: u64, send: impl FnMut(&Utf8Bytes)) -> Accepted {
        let mut state = self.state();
        if state.holds > 0 && state.delivered.is_some() {
            // A join is replaying up to the held position; moving past it would skip
            // what that joiner has not been given yet. The room has members: its cursor
            // is live.
            return state.drain(send);
        }
        let at = state.delivered.map_or(position, |d| d.max(position));
        state.delivered = Some(at);
        state.waiting = state.waiting.split_off(&(at + 1));
        let accepted = state.drain(send);
        drop(state);
        self.advanced.notify_waiters();
        accepted
    }

    /// Takes chat number `seq`; delivers what is due through `send`.
    pub(crate) fn accept(
        &self,
        seq: u64,
        frame: Utf8Bytes,
        send: impl FnMut(&Utf8Bytes),
    ) -> Accepted {
        let mut state = self.state();
        if state.delivered.is_some_and(|d| seq <= d) {
            return Accepted::default();
        }
        state.waiting.insert(seq, frame);
        if state.waiting.len() > MAX_WAITING {
            state.waiting.pop_first();
        }
        let before = state.delivered;
        let accepted = state.drain(send);
        let moved = state.delivered != before;
        drop(state);
        if moved {
            self.advanced.notify_waiters();
        }
        accepted
    }

    /// The gap to repair now, if any (the periodic position check asks).
    pub(crate) fn gap(&self) -> Option<(u64, u64)> {
        self.state().gap()
    }

    /// The newest number delivered, once placed.
    pub(crate) fn delivered(&self) -> Option<u64> {
        self.state().delivered
    }

    /// Holds delivery: until [`Self::release`], chats wait. `None` while unplaced.
    pub(crate) fn hold(&self) -> Option<Hold> {
        let mut state = self.state();
        let position = state.delivered?;
        state.holds += 1;
        Some(Hold { position })
    }

    /// Ends a hold; at the last one, delivers what waited.
    /// (The hold is taken by value so that each is released once.)
    pub(crate) fn release(&self, _hold: Hold, send: impl FnMut(&Utf8Bytes)) -> Accepted {
        let mut state = self.state();
        state.holds -= 1;
        let accepted = state.drain(send);
        drop(state);
        self.advanced.notify_waiters();
        accepted
    }

    /// Waits until chat `seq` has been delivered here, at most `within`; whether it was.
    /// A sender's `reply` waits for this, so it follows the sender's own `chat` even when
    /// an earlier chat of the room (another sender's, another node's) is still on its way.
    pub(crate) async fn delivered_through(&self, seq: u64, within: Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.advanced.notified();
                let mut notified = std::pin::pin!(notified);
                // Registered before the check, so a move between the two is not missed.
                notified.as_mut().enable();
                if self.delivered().is_some_and(|d| d >= seq) {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(within, wait).await.is_ok()
    }
}

impl State {
    /// Delivers the consecutive run after `delivered`, unless held or unplaced.
    fn drain(&mut self, mut send: impl FnMut(&Utf8Bytes)) -> Accepted {
        let Some(mut delivered) = self.delivered else {
            return Accepted::default();
        };
        if self.holds == 0 {
            while let Some(entry) = self.waiting.first_entry() {
                if *entry.key() != delivered + 1 {
                    break;
                }
                delivered += 1;
                send(&entry.remove());
            }
            self.delivered = Some(delivered);
        }
        Accepted { gap: self.gap() }
    }

    fn gap(&self) -> Option<(u64, u64)> {
        let delivered = self.delivered?;
        let (&first, _) = self.waiting.first_key_value()?;
        (first > delivered + 1).then_some((delivered, first))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u64) -> Utf8Bytes {
        Utf8Bytes::from(n.to_string())
    }

    /// Feeds `arrivals` and returns what was delivered, in order, repairing each gap as
    /// the store would (the missing numbers, from `store`).
    fn run(start: u64, arrivals: &[u64], store_top: u64) -> Vec<u64> {
        let cursor = Cursor::default();
        let out = std::cell::RefCell::new(Vec::new());
        let send = |f: &Utf8Bytes| out.borrow_mut().push(f.as_str().parse::<u64>().unwrap());
        cursor.place(start, send);
        for &seq in arrivals {
            let mut gap = cursor.accept(seq, frame(seq), send).gap;
            while let Some((after, before)) = gap {
                gap = None;
                for n in after + 1..before {
                    gap = cursor.accept(n, frame(n), send).gap.or(gap);
                }
            }
        }
        // The position check: the store's top, read at the end.
        let delivered = cursor.delivered().unwrap();
        for n in delivered + 1..=store_top {
            cursor.accept(n, frame(n), send);
        }
        out.into_inner()
    }

    #[test]
    fn drops_reorders_and_repeats_come_out_as_one_run() {
        // Every interleaving of a small run with a drop and a repeat, by brute force
        // over a fixed pseudo-random order.
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..2_000 {
            let n = rng.u64(1..30);
            let mut arrivals: Vec<u64> = (1..=n).collect();
            rng.shuffle(&mut arrivals);
            arrivals.retain(|_| rng.u8(0..10) != 0);
            if let Some(&again) = arrivals.first() {
                arrivals.push(again);
            }
            assert_eq!(
                run(0, &arrivals, n),
                (1..=n).collect::<Vec<_>>(),
                "{arrivals:?}"
            );
        }
    }

    #[test]
    fn what_is_placed_past_is_never_delivered() {
        assert_eq!(run(5, &[3, 4, 5, 7, 6], 8), [6, 7, 8]);
    }

    #[test]
    fn a_hold_keeps_everything_back_until_released() {
        let cursor = Cursor::default();
        let mut out = Vec::new();
        cursor.place(2, |_| {});
        let hold = cursor.hold().unwrap();
        assert_eq!(hold.position, 2);
        cursor.accept(3, frame(3), |f| out.push(f.to_string()));
        assert!(out.is_empty(), "held");
        cursor.release(hold, |f| out.push(f.to_string()));
        assert_eq!(out, ["3"]);
    }

    #[tokio::test]
    async fn a_wait_for_a_chat_ends_when_it_is_delivered_not_when_it_arrives() {
        let cursor = std::sync::Arc::new(Cursor::default());
        cursor.place(0, |_| {});
        let waiter = tokio::spawn({
            let cursor = cursor.clone();
            async move { cursor.delivered_through(2, Duration::from_secs(5)).await }
        });
        tokio::task::yield_now().await;
        // 2 arrives first: it waits for 1, and so does the waiter.
        cursor.accept(2, frame(2), |_| {});
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "2 is not delivered yet");
        cursor.accept(1, frame(1), |_| {});
        assert!(waiter.await.unwrap(), "delivered once 1 came");
        // Already delivered: no wait; never delivered: false after the bound.
        assert!(cursor.delivered_through(1, Duration::from_millis(1)).await);
        assert!(!cursor.delivered_through(9, Duration::from_millis(20)).await);
    }
}
