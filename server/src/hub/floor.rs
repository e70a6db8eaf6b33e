//! [`Floor`]: where one connection is in its user's sequence of private messages and
//! notifications (CLUSTER §2.7), so that each reaches the connection at most once
//! whether it comes live, as pending at connect, or from a check after the bus lost it.
//!
//! A message is stored undelivered, then published. The connect-time catch-up takes the
//! undelivered ones (an atomic claim in the store) while live copies may be on their way
//! to the same connection from any node: until the catch-up is done, live copies wait
//! here; then the two are merged by number, each once, and everything up to the highest
//! number handed over is the floor: a live copy at or below it is dropped. Live copies
//! above the floor do not move it, so messages from several senders (whose live copies
//! may cross on the bus) are never dropped for arriving out of order.

use tokio_tungstenite::tungstenite::Utf8Bytes;

/// What became of an addressed frame offered to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offer {
    /// Hand it over now.
    Send,
    /// Kept until the connection's catch-up is done; it will be handed over then.
    Held,
    /// The connection already had it.
    Drop,
}

/// One connection's place in its user's sequence.
#[derive(Debug)]
pub(crate) enum Floor {
    /// The connect-time catch-up has not run yet: live frames wait here, by number.
    CatchingUp(Vec<(u64, Utf8Bytes)>),
    /// Every frame numbered up to here that this connection will get, it has got.
    At(u64),
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
            Self::CatchingUp(held) => {
                held.push((seq, frame.clone()));
                Offer::Held
            }
            Self::At(floor) if seq <= *floor => Offer::Drop,
            Self::At(_) => Offer::Send,
        }
    }

    /// Frames the store handed over for this connection (claimed, so no other catch-up
    /// will return them): what to send now, in order. At connect (`connect`), that is
    /// them and the held live frames merged, each number once, and the floor is set;
    /// later (a check after the bus lost messages), the ones above the floor, which
    /// then rises. A check that runs while the catch-up has not run yet holds them for
    /// it.
    pub(crate) fn take(
        &mut self,
        mut taken: Vec<(u64, Utf8Bytes)>,
        connect: bool,
    ) -> Vec<(u64, Utf8Bytes)> {
        match self {
            Self::CatchingUp(held) if !connect => {
                held.append(&mut taken);
                Vec::new()
            }
            Self::CatchingUp(held) => {
                taken.append(held);
                taken.sort_by_key(|(seq, _)| *seq);
                taken.dedup_by_key(|(seq, _)| *seq);
                *self = Self::At(taken.last().map_or(0, |(seq, _)| *seq));
                taken
            }
            Self::At(floor) => {
                taken.retain(|(seq, _)| *seq > *floor);
                taken.sort_by_key(|(seq, _)| *seq);
                taken.dedup_by_key(|(seq, _)| *seq);
                if let Some((top, _)) = taken.last() {
                    *floor = *top;
                }
                taken
            }
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
        // The store had 2 and 3 undelivered; 5 came after its snapshot.
        let out = floor.take(vec![f(2), f(3)], true);
        assert_eq!(numbers(&out), [2, 3, 5]);
        assert_eq!(floor.offer(5, &f(5).1), Offer::Drop, "a late repeat");
        assert_eq!(
            floor.offer(4, &f(4).1),
            Offer::Drop,
            "at or below the floor"
        );
        assert_eq!(floor.offer(6, &f(6).1), Offer::Send);
    }

    #[test]
    fn live_copies_above_the_floor_do_not_move_it() {
        let mut floor = Floor::default();
        assert!(floor.take(Vec::new(), true).is_empty());
        assert_eq!(floor.offer(9, &f(9).1), Offer::Send);
        assert_eq!(floor.offer(8, &f(8).1), Offer::Send, "crossed on the bus");
    }

    #[test]
    fn a_check_sends_what_is_above_the_floor_and_raises_it() {
        let mut floor = Floor::At(4);
        let out = floor.take(vec![f(7), f(3), f(6)], false);
        assert_eq!(numbers(&out), [6, 7]);
        assert_eq!(floor.offer(7, &f(7).1), Offer::Drop);
        assert_eq!(floor.offer(8, &f(8).1), Offer::Send);
    }

    #[test]
    fn a_check_before_the_catch_up_leaves_its_frames_to_it() {
        let mut floor = Floor::default();
        assert!(floor.take(vec![f(2)], false).is_empty());
        let out = floor.take(vec![f(1)], true);
        assert_eq!(numbers(&out), [1, 2]);
    }
}
