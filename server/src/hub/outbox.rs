//! [`Outbox`]: one connection's send queue, bounded in bytes. Frames wait here, in order,
//! until the connection's writer takes them. What waits, and what the writer took and has
//! not written yet, is counted in bytes; a frame that would take the count past the bound
//! is refused and the connection closed as a slow consumer (4029), unless nothing else is
//! counted: one frame bigger than the bound on its own still goes out.
//!
//! One std `Mutex` around the queue (publishers push from many tasks, the writer takes,
//! nothing is held across an `.await`) and a `Notify` that wakes the writer. The
//! `VecDeque` allocates on the first frame and is given back once a backlog is written,
//! so an idle connection's queue holds at most a few slots.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// What a frame costs beyond its bytes: the slot it takes in the queue. Counting it makes
/// the one bound cover a flood of tiny frames too, which is why there is no count bound.
const SLOT: usize = size_of::<Utf8Bytes>();
/// Slots a queue keeps allocated when it runs empty; a longer backlog's are given back.
const KEEP_SLOTS: usize = 4;

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendError {
    /// This frame would have taken the queue past its bound: the connection is closing
    /// with 4029 (the caller asks for it) and takes nothing more.
    Overflow,
    /// The queue overflowed before: the connection is closing.
    Full,
    /// The connection is gone.
    Closed,
}

/// One connection's send queue.
#[derive(Debug)]
pub(crate) struct Outbox {
    queue: Mutex<Queue>,
    ready: Notify,
    limit: usize,
}

#[derive(Debug, Default)]
struct Queue {
    entries: VecDeque<Utf8Bytes>,
    /// Bytes queued, plus those taken by the writer and not written yet.
    bytes: usize,
    state: State,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    #[default]
    Open,
    /// A frame did not fit: the connection is closing and takes nothing more.
    Overflowed,
    /// The writer is gone.
    Closed,
}

/// What a queued frame counts for in the queue's bytes.
fn cost(frame: &Utf8Bytes) -> usize {
    frame.len() + SLOT
}

impl Outbox {
    /// An empty queue holding at most about `limit` bytes.
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            queue: Mutex::new(Queue::default()),
            ready: Notify::new(),
            limit,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        super::conn::lock(&self.queue)
    }

    /// Queues a frame.
    ///
    /// # Errors
    /// [`SendError::Overflow`] when it does not fit (the caller closes the connection),
    /// [`SendError::Full`] after that, [`SendError::Closed`] once the writer is gone.
    pub(crate) fn push(&self, frame: Utf8Bytes) -> Result<(), SendError> {
        let mut queue = self.lock();
        queue.admit(cost(&frame), self.limit)?;
        let was_empty = queue.entries.is_empty();
        queue.entries.push_back(frame);
        drop(queue);
        // The writer waits only after finding the queue empty; a wake it does not need
        // (it took the frame before waiting) costs one empty look.
        if was_empty {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// Moves up to `max` waiting frames into `into`, oldest first; returns what they
    /// count for, to give to [`Self::written`] once they are written.
    pub(crate) fn take(&self, into: &mut Vec<Utf8Bytes>, max: usize) -> usize {
        let mut queue = self.lock();
        let n = queue.entries.len().min(max);
        let mut taken = 0;
        into.extend(queue.entries.drain(..n).inspect(|f| taken += cost(f)));
        // A backlog's slots are given back once it is taken, a few kept for the next frames.
        if queue.entries.is_empty() && queue.entries.capacity() > KEEP_SLOTS {
            queue.entries = VecDeque::new();
        }
        taken
    }

    /// Frames [`Self::take`] gave out, counting `cost`, are written.
    pub(crate) fn written(&self, cost: usize) {
        let mut queue = self.lock();
        debug_assert!(
            queue.state == State::Closed || queue.bytes >= cost,
            "written more than was queued"
        );
        queue.bytes = queue.bytes.saturating_sub(cost);
    }

    /// Whether no frame waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.lock().entries.is_empty()
    }

    /// Resolves when a frame may have been queued since the queue was last found empty.
    pub(crate) async fn ready(&self) {
        self.ready.notified().await;
    }

    /// The writer is gone: what waits is dropped and nothing more is taken.
    pub(crate) fn close(&self) {
        let mut queue = self.lock();
        queue.state = State::Closed;
        queue.entries = VecDeque::new();
        queue.bytes = 0;
    }
}

impl Queue {
    fn check_open(&self) -> Result<(), SendError> {
        match self.state {
            State::Open => Ok(()),
            State::Overflowed => Err(SendError::Full),
            State::Closed => Err(SendError::Closed),
        }
    }

    /// Counts `cost` more bytes if they fit (see [`fits`]); marks the queue overflowed
    /// when they do not.
    fn admit(&mut self, cost: usize, limit: usize) -> Result<(), SendError> {
        self.check_open()?;
        if !fits(self.bytes, cost, limit) {
            self.state = State::Overflowed;
            return Err(SendError::Overflow);
        }
        self.bytes += cost;
        Ok(())
    }
}

/// Whether `grow` more bytes fit in a queue counting `bytes`: always when nothing is
/// counted, so that one frame bigger than the bound still goes out on its own; else up to
/// `limit`.
fn fits(bytes: usize, grow: usize, limit: usize) -> bool {
    bytes == 0 || bytes + grow <= limit
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn frame(len: usize) -> Utf8Bytes {
        Utf8Bytes::from("x".repeat(len))
    }

    #[test]
    fn a_frame_alone_always_fits_and_the_next_past_the_bound_overflows() {
        let outbox = Outbox::new(1000);
        outbox.push(frame(5000)).unwrap();
        assert_eq!(outbox.push(frame(10)), Err(SendError::Overflow));
        assert_eq!(outbox.push(frame(10)), Err(SendError::Full));
        let outbox = Outbox::new(1000);
        outbox.push(frame(400)).unwrap();
        outbox.push(frame(400)).unwrap();
        let mut entries = Vec::new();
        let cost = outbox.take(&mut entries, usize::MAX);
        // Taken and not written: still counted.
        assert_eq!(outbox.push(frame(400)), Err(SendError::Overflow));
        outbox.written(cost);
        outbox.close();
        assert_eq!(outbox.push(frame(1)), Err(SendError::Closed));
    }

    #[test]
    fn the_count_is_exact_with_many_publishers_and_a_writer() {
        let outbox = Arc::new(Outbox::new(usize::MAX));
        let publishers: Vec<_> = (0..8)
            .map(|_| {
                let outbox = outbox.clone();
                std::thread::spawn(move || {
                    for i in 0..2_000 {
                        outbox.push(frame(i % 300)).unwrap();
                    }
                })
            })
            .collect();
        let writer = {
            let outbox = outbox.clone();
            std::thread::spawn(move || {
                let mut entries = Vec::new();
                for _ in 0..10_000 {
                    let cost = outbox.take(&mut entries, 64);
                    entries.clear();
                    outbox.written(cost);
                }
            })
        };
        publishers.into_iter().for_each(|p| p.join().unwrap());
        writer.join().unwrap();
        let mut entries = Vec::new();
        let cost = outbox.take(&mut entries, usize::MAX);
        outbox.written(cost);
        assert_eq!(outbox.lock().bytes, 0);
    }
}
