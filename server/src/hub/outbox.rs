//! [`Outbox`]: one connection's send queue, bounded in bytes. Frames wait here, in order,
//! until the connection's writer takes them. What waits, and what the writer took and has
//! not written yet, is counted in bytes; a frame that would take the count past the bound
//! is refused and the connection closed as a slow consumer (4029), unless nothing else is
//! counted: one frame bigger than the bound on its own still goes out.
//!
//! A topic frame waits as a slot of its own: a newer publish to the same topic (and
//! `type`) while the older frame still waits is merged into it, newest item per key, and
//! the writer serializes the slot when it reaches it. A reader that falls behind a busy
//! topic gets fresh values instead of a backlog, and a frame's place in the queue (so the
//! order between topics and other frames) does not change; a reader that keeps up gets
//! each publish's frame as its subscribers share it, serialized once.
//!
//! One std `Mutex` around the queue (publishers push from many tasks, the writer takes,
//! nothing is held across an `.await`) and a `Notify` that wakes the writer. The
//! `VecDeque` allocates on the first frame and is given back once a backlog is written,
//! so an idle connection's queue holds at most a few slots.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use roomcast_protocol::topic_frame;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::conn::ConnHandle;
use super::outgoing::Outgoing;
use crate::broker::TopicItems;

/// What a frame costs beyond its bytes: the slot it takes in the queue. Counting it makes
/// the one bound cover a flood of tiny frames too, which is why there is no count bound.
const SLOT: usize = size_of::<Entry>();
/// Slots a queue keeps allocated when it runs empty; a longer backlog's are given back.
const KEEP_SLOTS: usize = 4;
/// A topic frame's bytes besides its items (`{"type":..,"topic":..,"data":[],
/// "timestamp":..}`), for the estimate a merged frame is counted at.
const TOPIC_ENVELOPE: usize = 64;

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
    entries: VecDeque<Entry>,
    /// The position, counted from the first frame ever queued, of each topic slot still
    /// in `entries`, oldest first: where a newer publish looks for one to merge into.
    topics: VecDeque<u64>,
    /// The position of `entries[0]`.
    head: u64,
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

/// A queued frame.
#[derive(Debug)]
pub(crate) enum Entry {
    /// A frame as it goes out.
    Frame(Utf8Bytes),
    /// A topic frame, mergeable while it waits.
    Topic(Box<TopicSlot>),
}

/// One topic's frame for one connection while it waits.
#[derive(Debug)]
pub(crate) struct TopicSlot {
    /// The newest publish merged in: its `type`, topic and timestamp head the frame.
    latest: Arc<TopicItems>,
    body: Body,
    /// What the slot is counted as in the queue's bytes.
    cost: usize,
}

#[derive(Debug)]
enum Body {
    /// One publish's selection, in the frame its subscribers share (compressed when this
    /// connection asked).
    Shared {
        frame: Utf8Bytes,
        selection: Arc<[usize]>,
    },
    /// Several publishes merged: each key once (in the order keys first came), with the
    /// newest item as (its publish, its index there).
    Merged {
        items: Vec<(Arc<TopicItems>, usize)>,
        by_key: HashMap<String, usize>,
    },
}

/// A topic publish as one connection gets it: the published items, the indices its keys
/// select, and the frame it shares with the subscribers of the same selection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TopicUpdate<'a> {
    pub items: &'a Arc<TopicItems>,
    pub selection: &'a Arc<[usize]>,
    pub frame: &'a Utf8Bytes,
}

impl Entry {
    /// What it counts for in the queue's bytes.
    fn cost(&self) -> usize {
        match self {
            Self::Frame(frame) => frame.len() + SLOT,
            Self::Topic(slot) => slot.cost,
        }
    }

    /// The frame to write to `conn`: a merged topic slot is serialized (and compressed
    /// when `conn` asked and it is at least `threshold` bytes) here, once.
    pub(crate) fn into_frame(self, conn: &ConnHandle, threshold: usize) -> Utf8Bytes {
        let slot = match self {
            Self::Frame(frame) => return frame,
            Self::Topic(slot) => slot,
        };
        match slot.body {
            Body::Shared { frame, .. } => frame,
            Body::Merged { items, .. } => {
                let latest = &slot.latest;
                let text = topic_frame(
                    &latest.kind,
                    &latest.topic,
                    items
                        .iter()
                        .map(|(publish, i)| publish.items[*i].1.as_str()),
                    latest.timestamp,
                );
                Outgoing::new(Utf8Bytes::from(text), threshold)
                    .for_conn(conn)
                    .clone()
            }
        }
    }
}

impl TopicSlot {
    fn new(update: TopicUpdate<'_>) -> Self {
        Self {
            latest: update.items.clone(),
            body: Body::Shared {
                frame: update.frame.clone(),
                selection: update.selection.clone(),
            },
            cost: update.frame.len() + SLOT,
        }
    }

    /// Whether a publish to `items`' topic and `type` merges into this slot.
    fn takes(&self, items: &TopicItems) -> bool {
        self.latest.topic == items.topic && self.latest.kind == items.kind
    }

    /// Turns a shared frame into per-key items, to merge into; returns the new cost.
    fn unshare(&mut self) -> usize {
        if let Body::Shared { selection, .. } = &self.body {
            let mut items = Vec::with_capacity(selection.len());
            let mut by_key = HashMap::with_capacity(selection.len());
            for &i in selection.iter() {
                let key = &self.latest.items[i].0;
                match by_key.get(key) {
                    // A publish may name a key twice; the later item is the newer.
                    Some(&at) => items[at] = (self.latest.clone(), i),
                    None => {
                        by_key.insert(key.clone(), items.len());
                        items.push((self.latest.clone(), i));
                    }
                }
            }
            self.body = Body::Merged { items, by_key };
            self.cost = self.estimate();
        }
        self.cost
    }

    /// The merged frame's size, about (the envelope is not measured), plus its slot.
    fn estimate(&self) -> usize {
        let latest = &self.latest;
        let items = match &self.body {
            Body::Shared { .. } => 0,
            Body::Merged { items, .. } => items
                .iter()
                .map(|(publish, i)| publish.items[*i].1.len() + 1)
                .sum(),
        };
        TOPIC_ENVELOPE + latest.kind.len() + latest.topic.len() + items + SLOT
    }

    /// What the slot would cost with `update` merged in.
    fn cost_with(&self, update: TopicUpdate<'_>) -> usize {
        let Body::Merged { items, by_key } = &self.body else {
            return self.cost;
        };
        let mut cost = self.cost;
        for &i in update.selection.iter() {
            let (key, item) = &update.items.items[i];
            match by_key.get(key) {
                Some(&at) => {
                    let (publish, old) = &items[at];
                    cost = (cost + item.len()).saturating_sub(publish.items[*old].1.len());
                }
                None => cost += item.len() + 1,
            }
        }
        cost
    }

    /// Merges `update` in; returns how many waiting items it replaced.
    fn merge(&mut self, update: TopicUpdate<'_>) -> usize {
        let Body::Merged { items, by_key } = &mut self.body else {
            return 0;
        };
        let mut superseded = 0;
        for &i in update.selection.iter() {
            let key = &update.items.items[i].0;
            match by_key.get(key) {
                Some(&at) => {
                    items[at] = (update.items.clone(), i);
                    superseded += 1;
                }
                None => {
                    by_key.insert(key.clone(), items.len());
                    items.push((update.items.clone(), i));
                }
            }
        }
        self.latest = update.items.clone();
        self.cost = self.estimate();
        superseded
    }
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
        queue.admit(SLOT + frame.len(), self.limit)?;
        self.append(queue, Entry::Frame(frame));
        Ok(())
    }

    /// Queues a topic frame, or merges it into the topic's frame still waiting; returns
    /// how many waiting items the newer ones replaced.
    ///
    /// # Errors
    /// As [`Self::push`].
    pub(crate) fn push_topic(&self, update: TopicUpdate<'_>) -> Result<usize, SendError> {
        let mut queue = self.lock();
        queue.check_open()?;
        if let Some(merged) = queue.merge(update, self.limit) {
            return merged;
        }
        queue.admit(SLOT + update.frame.len(), self.limit)?;
        let position = queue.head + queue.entries.len() as u64;
        queue.topics.push_back(position);
        self.append(queue, Entry::Topic(Box::new(TopicSlot::new(update))));
        Ok(0)
    }

    /// Appends an admitted entry and wakes the writer if it may be waiting.
    fn append(&self, mut queue: MutexGuard<'_, Queue>, entry: Entry) {
        let was_empty = queue.entries.is_empty();
        queue.entries.push_back(entry);
        drop(queue);
        // The writer waits only after finding the queue empty; a wake it does not need
        // (it took the frame before waiting) costs one empty look.
        if was_empty {
            self.ready.notify_one();
        }
    }

    /// Moves up to `max` waiting frames into `into`, oldest first; returns what they
    /// count for, to give to [`Self::written`] once they are written.
    pub(crate) fn take(&self, into: &mut Vec<Entry>, max: usize) -> usize {
        let mut queue = self.lock();
        let n = queue.entries.len().min(max);
        let mut cost = 0;
        into.extend(queue.entries.drain(..n).inspect(|e| cost += e.cost()));
        queue.head += n as u64;
        let head = queue.head;
        while queue.topics.front().is_some_and(|&at| at < head) {
            queue.topics.pop_front();
        }
        // A backlog's slots are given back once it is taken, a few kept for the next frames.
        if queue.entries.is_empty() {
            if queue.entries.capacity() > KEEP_SLOTS {
                queue.entries = VecDeque::new();
            }
            if queue.topics.capacity() > KEEP_SLOTS {
                queue.topics = VecDeque::new();
            }
        }
        cost
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
        queue.topics = VecDeque::new();
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
        if !fits(self.bytes, 0, cost, limit) {
            self.state = State::Overflowed;
            return Err(SendError::Overflow);
        }
        self.bytes += cost;
        Ok(())
    }

    /// Merges `update` into the waiting slot of its topic, if there is one (`None`
    /// otherwise); returns how many waiting items it replaced.
    fn merge(&mut self, update: TopicUpdate<'_>, limit: usize) -> Option<Result<usize, SendError>> {
        let Self {
            entries,
            topics,
            head,
            bytes,
            state,
        } = self;
        let slot = topics.iter().rev().find_map(|&at| {
            let index = usize::try_from(at.checked_sub(*head)?).ok()?;
            let Some(Entry::Topic(slot)) = entries.get(index) else {
                return None;
            };
            slot.takes(update.items).then_some(index)
        })?;
        let Some(Entry::Topic(slot)) = entries.get_mut(slot) else {
            return None;
        };
        // The same items in another form: counted anew, without a check.
        let shared = slot.cost;
        *bytes = *bytes - shared + slot.unshare();
        let before = slot.cost;
        let grow = slot.cost_with(update).saturating_sub(before);
        if !fits(*bytes, before, grow, limit) {
            *state = State::Overflowed;
            return Some(Err(SendError::Overflow));
        }
        let superseded = slot.merge(update);
        *bytes = *bytes - before + slot.cost;
        Some(Ok(superseded))
    }
}

/// Whether `grow` more bytes fit in a queue counting `bytes`, of which `own` are the frame
/// that grows (0 for a new one): always when nothing else is counted, so that one frame
/// bigger than the bound still goes out on its own; else up to `limit`.
fn fits(bytes: usize, own: usize, grow: usize, limit: usize) -> bool {
    bytes == own || bytes + grow <= limit
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use roomcast_protocol::ClientId;
    use serde_json::{Value, json};

    use super::*;

    fn conn() -> ConnHandle {
        let id = ClientId::new(uuid::Uuid::new_v4().simple().to_string()).unwrap();
        let (close_tx, _) = tokio::sync::oneshot::channel();
        ConnHandle::new(
            id,
            SocketAddr::from(([127, 0, 0, 1], 1)),
            false,
            0,
            1,
            close_tx,
        )
    }

    fn frame(len: usize) -> Utf8Bytes {
        Utf8Bytes::from("x".repeat(len))
    }

    /// A publish of `items` (key, value) to topic `t`, and the frame a subscriber to
    /// every key shares.
    fn publish(items: &[(&str, u64)]) -> (Arc<TopicItems>, Arc<[usize]>, Utf8Bytes) {
        let items = TopicItems {
            kind: "tick".into(),
            topic: "t".into(),
            items: items
                .iter()
                .map(|(k, v)| ((*k).to_owned(), json!({ "key": k, "v": v }).to_string()))
                .collect(),
            timestamp: 1,
        };
        let selection: Arc<[usize]> = (0..items.items.len()).collect();
        let text = topic_frame("tick", "t", items.items.iter().map(|i| i.1.as_str()), 1);
        (Arc::new(items), selection, Utf8Bytes::from(text))
    }

    fn push(outbox: &Outbox, items: &[(&str, u64)]) -> Result<usize, SendError> {
        let (items, selection, frame) = publish(items);
        outbox.push_topic(TopicUpdate {
            items: &items,
            selection: &selection,
            frame: &frame,
        })
    }

    fn taken(outbox: &Outbox) -> (Vec<Value>, usize) {
        let mut entries = Vec::new();
        let cost = outbox.take(&mut entries, usize::MAX);
        let conn = conn();
        let frames = entries
            .into_iter()
            .map(|e| serde_json::from_str(e.into_frame(&conn, usize::MAX).as_str()).unwrap())
            .collect();
        (frames, cost)
    }

    #[test]
    fn a_waiting_topic_frame_takes_the_newest_item_of_each_key_and_keeps_its_place() {
        let outbox = Outbox::new(1 << 20);
        assert_eq!(push(&outbox, &[("a", 1), ("b", 1)]), Ok(0));
        outbox
            .push(Utf8Bytes::from_static("{\"type\":\"chat\"}"))
            .unwrap();
        assert_eq!(push(&outbox, &[("b", 2), ("c", 2)]), Ok(1));
        assert_eq!(push(&outbox, &[("a", 3)]), Ok(1));
        let (frames, cost) = taken(&outbox);
        let data = &frames[0]["data"];
        assert_eq!(
            data,
            &json!([{"key":"a","v":3}, {"key":"b","v":2}, {"key":"c","v":2}])
        );
        assert_eq!(frames[0]["type"], "tick");
        assert_eq!(frames[1]["type"], "chat", "the chat stays behind it");
        assert_eq!(frames.len(), 2);
        outbox.written(cost);
        assert_eq!(
            outbox.lock().bytes,
            0,
            "all the bytes counted are given back"
        );
        // Taken by the writer, the frame takes no more merges: the next is queued anew.
        assert_eq!(push(&outbox, &[("a", 4)]), Ok(0));
        assert_eq!(push(&outbox, &[("a", 5)]), Ok(1));
        assert_eq!(taken(&outbox).0[0]["data"], json!([{"key":"a","v":5}]));
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
            .map(|p| {
                let outbox = outbox.clone();
                std::thread::spawn(move || {
                    for i in 0..2_000 {
                        if i % 3 == 0 {
                            push(
                                &outbox,
                                &[("k", i), (if p % 2 == 0 { "e" } else { "o" }, i)],
                            )
                            .unwrap();
                        } else {
                            outbox.push(frame(i as usize % 300)).unwrap();
                        }
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
