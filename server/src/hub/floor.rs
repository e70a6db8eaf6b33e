//! [`Floor`]: where one connection is in its user's sequence of private messages and
//! notifications (CLUSTER §2.7), so that each reaches the connection at most once
//! whether it comes live, as pending at connect, or from a check after the bus lost it.
//!
//! A message is stored undelivered, then published. The connect-time catch-up takes the
//! undelivered ones (an atomic claim in the store) while live copies may be on their way
//! to the same connection from any node: until the catch-up is done, live copies wait
//! here (at most [`MAX_HELD`]); then the two are merged by number, each once. From then
//! on the connection remembers what it got: every number up to its floor, and the numbers
//! above it one by one (folded into the floor as the run closes up, at most
//! [`MAX_ABOVE`]). Messages from several senders, whose live copies may cross on the bus,
//! are never dropped for arriving out of order, and a check that claims a message the
//! connection already got live does not send it again.

use std::collections::BTreeSet;

use tokio_tungstenite::tungstenite::Utf8Bytes;

/// Live frames a connection holds while its catch-up runs; more means the connection
/// cannot keep up (it is closed as a slow consumer, as a full queue is).
pub(crate) const MAX_HELD: usize = 1024;

/// Numbers above the floor a connection remembers; past this the lowest ones are folded
/// into the floor (a gap below them then stays closed for live copies; such a message is
/// in the store's history).
const MAX_ABOVE: usize = 256;

/// What became of an addressed frame offered to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offer {
    /// Hand it over now.
    Send,
    /// Kept until the connection's catch-up is done; it will be handed over then.
    Held,
    /// The connection already has it.
    Drop,
    /// Too many held: the connection must be closed.
    Overflow,
}

/// How the store's frames come to [`Floor::take`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Taken {
    /// The connect-time catch-up.
    Connect,
    /// A later check (after the bus lost messages, or a catch-up whose store read
    /// failed).
    Check,
}

/// One connection's place in its user's sequence.
#[derive(Debug)]
pub(crate) enum Floor {
    /// The connect-time catch-up has not run yet: live frames wait here, by number.
    CatchingUp(Vec<(u64, Utf8Bytes)>),
    /// The connection has every number up to `floor` it will get, and those in `above`.
    At {
        /// Everything up to here is done with.
        floor: u64,
        /// Numbers above the floor the connection got.
        above: BTreeSet<u64>,
    },
}

impl Default for Floor {
    fn default() -> Self {
        Self::CatchingUp(Vec::new())
    }
}

impl Floor {
    /// A live frame numbered `seq`.
    pub(crate) fn offer(&mut self, seq: u64, frame: &Utf8Bytes) -> Offer {
        match self {
            Self::CatchingUp(held) if held.len() >= MAX_HELD => Offer::Overflow,
            Self::CatchingUp(held) => {
                held.push((seq, frame.clone()));
                Offer::Held
            }
            Self::At { floor, above } => {
                if seq <= *floor || !above.insert(seq) {
                    return Offer::Drop;
                }
                fold(floor, above);
                Offer::Send
            }
        }
    }

    /// Frames the store handed over for this connection (claimed, so no other catch-up
    /// will return them): what to send now, in number order, each number once and none
    /// the connection has. At connect, the held live frames join them. A check while the
    /// catch-up has not run yet holds them for it.
    pub(crate) fn take(
        &mut self,
        mut taken: Vec<(u64, Utf8Bytes)>,
        how: Taken,
    ) -> Vec<(u64, Utf8Bytes)> {
        match self {
            Self::CatchingUp(held) if how == Taken::Check => {
                held.append(&mut taken);
                Vec::new()
            }
            Self::CatchingUp(held) => {
                // The floor starts at 0: the two kinds are claimed in two statements, so a
                // number below the claimed ones may still be undelivered and come live.
                // What the connection got is remembered one by one, folded into the floor
                // as the run closes up (or, past the cap, as it grows old).
                taken.append(held);
                *self = Self::At {
                    floor: 0,
                    above: BTreeSet::new(),
                };
                self.keep_new(taken)
            }
            Self::At { .. } => self.keep_new(taken),
        }
    }

    /// `frames` sorted, without repeats and without what the connection has, which it
    /// then has.
    fn keep_new(&mut self, mut frames: Vec<(u64, Utf8Bytes)>) -> Vec<(u64, Utf8Bytes)> {
        let Self::At { floor, above } = self else {
            return Vec::new();
        };
        frames.sort_by_key(|(seq, _)| *seq);
        frames.dedup_by_key(|(seq, _)| *seq);
        let top = *floor;
        frames.retain(|(seq, _)| *seq > top && above.insert(*seq));
        fold(floor, above);
        frames
    }
}

/// Moves the floor up through the run of numbers just above it, and keeps `above` small.
fn fold(floor: &mut u64, above: &mut BTreeSet<u64>) {
    while above.first() == Some(&(*floor + 1)) {
        above.pop_first();
        *floor += 1;
    }
    while above.len() > MAX_ABOVE {
        if let Some(lowest) = above.pop_first() {
            *floor = lowest;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(n: u64) -> (u64, Utf8Bytes) {
        (n, Utf8Bytes::from(format!("m{n}")))
    }

    fn numbers(frames: &[(u64, Utf8Bytes)]) -> Vec<u64> {
        frames.iter().map(|(n, _)| *n).collect()
    }

    #[test]
    fn live_copies_wait_for_the_catch_up_and_are_merged_each_once() {
        let mut floor = Floor::default();
        assert_eq!(floor.offer(3, &f(3).1), Offer::Held);
        assert_eq!(floor.offer(5, &f(5).1), Offer::Held);
        // The store had 1, 2 and 3 undelivered; 5 came after its snapshot.
        let out = floor.take(vec![f(1), f(2), f(3)], Taken::Connect);
        assert_eq!(numbers(&out), [1, 2, 3, 5]);
        assert_eq!(floor.offer(2, &f(2).1), Offer::Drop, "below the floor");
        assert_eq!(floor.offer(5, &f(5).1), Offer::Drop, "a late repeat");
        assert_eq!(floor.offer(4, &f(4).1), Offer::Send, "a crossing copy");
        assert_eq!(floor.offer(4, &f(4).1), Offer::Drop);
        assert_eq!(floor.offer(6, &f(6).1), Offer::Send);
    }

    #[test]
    fn live_copies_crossing_on_the_bus_all_get_through() {
        let mut floor = Floor::default();
        assert!(floor.take(Vec::new(), Taken::Connect).is_empty());
        assert_eq!(floor.offer(9, &f(9).1), Offer::Send);
        assert_eq!(floor.offer(8, &f(8).1), Offer::Send, "crossed on the bus");
        assert_eq!(floor.offer(9, &f(9).1), Offer::Drop);
    }

    #[test]
    fn a_check_sends_only_what_the_connection_does_not_have() {
        let mut floor = Floor::default();
        assert!(
            floor
                .take(vec![f(1), f(2), f(3), f(4)], Taken::Connect)
                .len()
                == 4
        );
        assert_eq!(floor.offer(6, &f(6).1), Offer::Send);
        // The check claims 6 (sent live, not yet marked delivered) and 5 and 7.
        let out = floor.take(vec![f(7), f(3), f(6), f(5)], Taken::Check);
        assert_eq!(numbers(&out), [5, 7]);
        assert_eq!(floor.offer(7, &f(7).1), Offer::Drop);
        assert_eq!(floor.offer(8, &f(8).1), Offer::Send);
    }

    #[test]
    fn a_check_before_the_catch_up_leaves_its_frames_to_it() {
        let mut floor = Floor::default();
        assert!(floor.take(vec![f(2)], Taken::Check).is_empty());
        let out = floor.take(vec![f(1)], Taken::Connect);
        assert_eq!(numbers(&out), [1, 2]);
    }

    #[test]
    fn a_number_below_the_claimed_ones_still_comes_live() {
        // 1..3 went to other connections. The private claim ran before private 4 was
        // stored, the notification claim after notification 5 was: 4 is undelivered.
        let mut floor = Floor::default();
        let out = floor.take(vec![f(5)], Taken::Connect);
        assert_eq!(numbers(&out), [5]);
        assert_eq!(floor.offer(4, &f(4).1), Offer::Send);
        assert_eq!(floor.offer(5, &f(5).1), Offer::Drop);
    }

    #[test]
    fn a_failed_catch_up_leaves_older_numbers_to_a_later_check() {
        let mut floor = Floor::default();
        assert_eq!(floor.offer(7, &f(7).1), Offer::Held);
        let out = floor.take(Vec::new(), Taken::Connect);
        assert_eq!(numbers(&out), [7]);
        let out = floor.take(vec![f(5), f(6), f(7)], Taken::Check);
        assert_eq!(numbers(&out), [5, 6]);
    }

    #[test]
    fn what_a_connection_holds_and_remembers_is_bounded() {
        let mut floor = Floor::default();
        for n in 0..MAX_HELD as u64 {
            assert_eq!(floor.offer(n + 1, &f(n + 1).1), Offer::Held);
        }
        assert_eq!(floor.offer(5000, &f(5000).1), Offer::Overflow);
        let mut floor = Floor::At {
            floor: 0,
            above: BTreeSet::new(),
        };
        // Every other number: nothing folds, the set is capped.
        for n in 1..=2000_u64 {
            floor.offer(n * 2, &f(n * 2).1);
        }
        let Floor::At { above, floor: at } = &floor else {
            unreachable!()
        };
        assert!(
            above.len() <= MAX_ABOVE && *at > 0,
            "{} above {at}",
            above.len()
        );
    }
}
