//! The subscriber: one dedicated Redis pub/sub connection, in a loop of our own. It
//! subscribes this node's channels and every watched room, hands what it hears to the
//! local side, and starts over (with backoff) when the connection ends **or when this
//! node stops hearing its own heartbeat** on `P:ctl`: a subscription can go deaf without
//! closing (a failover that leaves it on a demoted server), and publishes still succeed
//! then, so only a probe that travels the bus tells (the failure mode behind
//! centrifugal/centrifugo#1189 and redis/redis#6545).
//!
//! Reading never waits on the local side: deliveries are queued without blocking, and
//! requests and acknowledged deliveries are answered from their own tasks.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use roomcast_protocol::RoomName;
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use super::wire::{self, Header, Kind, Reply};
use super::{PROBE, Shared};
use crate::broker::AckRequest;
use crate::clock::now_ms;

/// The first and the longest pause between two connection attempts (the longest is also
/// at most one heartbeat, see `run`).
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(2));

/// Runs until the broker stops. `ready` fires at the first complete subscription.
pub(super) async fn run(shared: Arc<Shared>, ready: oneshot::Sender<()>) {
    let mut ready = Some(ready);
    let mut backoff = BACKOFF.0;
    loop {
        if shared.stop.is_cancelled() {
            return;
        }
        match subscribe(&shared).await {
            Ok(stream) => {
                backoff = BACKOFF.0;
                if let Some(ready) = ready.take() {
                    let _ = ready.send(());
                } else {
                    info!(node = shared.node(), "resubscribed to Redis");
                    // What the bus carried while this node was not listening is in the
                    // store.
                    if let Ok(local) = shared.local() {
                        tokio::spawn(local.check_positions());
                        tokio::spawn(local.check_users());
                    }
                }
                listen(&shared, stream).await;
                shared.counters.subscribed.store(false, Ordering::Relaxed);
                *lock(&shared.sink) = None;
                if shared.stop.is_cancelled() {
                    return;
                }
                shared.counters.resubscribes.fetch_add(1, Ordering::Relaxed);
            }
            Err(cause) => shared.warn_away(&cause),
        }
        let jitter = Duration::from_millis(fastrand::u64(0..=backoff.as_millis() as u64 / 2));
        tokio::select! {
            () = tokio::time::sleep(backoff + jitter) => {}
            () = shared.stop.cancelled() => return,
        }
        // At most a heartbeat: a node must be back within its TTL of Redis's return.
        backoff = (backoff * 2).min(BACKOFF.1).min(shared.options.heartbeat);
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A fresh pub/sub connection subscribed to this node's channels and watched rooms. The
/// room map stays locked until the subscription is complete, so a room watched meanwhile
/// is subscribed here or by its watcher, never by neither.
async fn subscribe(shared: &Shared) -> Result<redis::aio::PubSubStream, String> {
    let connect = shared.client.get_async_pubsub();
    let pubsub = match tokio::time::timeout(PROBE, connect).await {
        Ok(Ok(pubsub)) => pubsub,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err("no answer within 3 s".to_owned()),
    };
    let (mut sink, stream) = pubsub.split();
    let rooms = shared.rooms.lock().await;
    let mut channels = vec![
        shared.channel("bcast"),
        shared.channel("ctl"),
        shared.node_channel(shared.node()),
    ];
    channels.extend(rooms.keys().map(|room| shared.room_channel(room)));
    match tokio::time::timeout(PROBE, sink.subscribe(channels)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err("SUBSCRIBE unanswered within 3 s".to_owned()),
    }
    *lock(&shared.sink) = Some(sink);
    // Heard "now", so the deafness probe starts counting from the subscription.
    shared.heard_own.store(now_ms(), Ordering::Relaxed);
    shared.counters.subscribed.store(true, Ordering::Relaxed);
    drop(rooms);
    Ok(stream)
}

/// Reads until the connection ends, the node's own heartbeat goes unheard for two
/// beats and a half, or the broker stops.
async fn listen(shared: &Arc<Shared>, mut stream: redis::aio::PubSubStream) {
    let beat = shared.options.heartbeat;
    let deaf_after = beat * 5 / 2;
    let mut probe = tokio::time::interval(beat);
    probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            message = stream.next() => match message {
                Some(message) => handle(shared, message.get_payload_bytes()),
                None => {
                    warn!(node = shared.node(), "the Redis subscription ended; reconnecting");
                    return;
                }
            },
            _ = probe.tick() => {
                let silent = now_ms().saturating_sub(shared.heard_own.load(Ordering::Relaxed));
                if silent > deaf_after.as_millis() as u64 {
                    warn!(node = shared.node(), silent_ms = silent, "this node's own heartbeat went unheard on the bus; restarting the subscription");
                    return;
                }
            }
            () = shared.stop.cancelled() => return,
        }
    }
}

/// One message from the bus.
fn handle(shared: &Arc<Shared>, message: &[u8]) {
    shared.counters.received.fetch_add(1, Ordering::Relaxed);
    let (header, payload) = match wire::decode(message) {
        Ok(parts) => parts,
        Err(cause) => {
            warn!(%cause, "ignoring a malformed message from the bus");
            return;
        }
    };
    let own = header.o == shared.node();
    match header.k {
        Kind::Heartbeat => {
            if own {
                shared.heard_own.store(now_ms(), Ordering::Relaxed);
            }
        }
        Kind::Reply => {
            if let Some(id) = &header.r {
                match serde_json::from_slice::<Reply>(payload) {
                    Ok(reply) => shared.replies.deliver(id, header.o, reply),
                    Err(cause) => warn!(%cause, "ignoring a malformed reply from the bus"),
                }
            }
        }
        // This node delivered and answered its own message before publishing it; its
        // subscriber only tells the waiting asker that one of the receivers was itself.
        _ if own => {
            if let Some(id) = &header.r {
                shared.replies.deliver(id, header.o, Reply::Own);
            }
        }
        Kind::Request => answer_request(shared, header, payload),
        Kind::Whole | Kind::Topic => deliver(shared, header, payload),
    }
}

fn deliver(shared: &Arc<Shared>, header: Header, payload: &[u8]) {
    let Ok(local) = shared.local() else { return };
    let delivery = match wire::delivery_of(&header, payload) {
        Ok(delivery) => delivery,
        Err(cause) => {
            warn!(%cause, "ignoring a malformed delivery from the bus");
            return;
        }
    };
    match (header.r, header.a, header.d) {
        (None, _, _) => {
            local.deliver(&delivery);
        }
        (Some(id), Some(correlation), Some(deadline)) => {
            let ack = AckRequest {
                correlation,
                deadline,
            };
            let waiting = local.deliver_with_ack(&delivery, &ack);
            let shared = shared.clone();
            tokio::spawn(async move {
                let results = waiting.await;
                reply(&shared, &header.o, id, &wire::wire_acks(results)).await;
            });
        }
        (Some(id), _, _) => {
            let reach = local.deliver(&delivery);
            let shared = shared.clone();
            tokio::spawn(async move { reply(&shared, &header.o, id, &Reply::Reach(reach)).await });
        }
    }
}

fn answer_request(shared: &Arc<Shared>, header: Header, payload: &[u8]) {
    let (Ok(local), Some(id)) = (shared.local(), header.r) else {
        return;
    };
    let request = match wire::request_of(payload) {
        Ok(request) => request,
        Err(cause) => {
            warn!(%cause, "ignoring a malformed request from the bus");
            return;
        }
    };
    let answering = local.handle(request);
    let shared = shared.clone();
    tokio::spawn(async move {
        let answer = answering.await.map_err(|err| wire::WireError::from(&err));
        reply(&shared, &header.o, id, &Reply::Answer(answer)).await;
    });
}

/// Sends `reply` to request `id` of node `to`.
async fn reply(shared: &Shared, to: &str, id: String, reply: &Reply) {
    let mut header = Header::new(shared.node(), Kind::Reply);
    header.r = Some(id);
    let message = wire::encode(&header, &wire::json(reply));
    if shared
        .publish(&shared.node_channel(to), message)
        .await
        .is_none()
    {
        debug!(to, "a reply could not be sent");
    }
}

/// Counts one more local member of `room`; at the first, subscribes its channel and
/// waits for Redis to confirm, so the room's deliveries from other nodes reach the
/// member from the moment it is in.
pub(super) async fn watch(shared: &Shared, room: &RoomName) {
    let mut rooms = shared.rooms.lock().await;
    let count = rooms.entry(room.clone()).or_insert(0);
    *count += 1;
    if *count > 1 {
        return;
    }
    let sink = lock(&shared.sink).clone();
    if let Some(mut sink) = sink {
        let channel = shared.room_channel(room);
        match tokio::time::timeout(PROBE, sink.subscribe(&channel)).await {
            Ok(Ok(())) => {}
            // The subscriber resubscribes every watched room when it reconnects.
            Ok(Err(e)) => shared.warn_away(&e),
            Err(_) => shared.warn_away(&"SUBSCRIBE unanswered within 3 s"),
        }
    }
}

/// Counts one local member of `room` less; at the last, unsubscribes its channel.
pub(super) async fn unwatch(shared: &Shared, room: &RoomName) {
    let mut rooms = shared.rooms.lock().await;
    let Some(count) = rooms.get_mut(room) else {
        return;
    };
    *count -= 1;
    if *count > 0 {
        return;
    }
    rooms.remove(room);
    let sink = lock(&shared.sink).clone();
    if let Some(mut sink) = sink {
        let channel = shared.room_channel(room);
        // A failure only leaves traffic this node ignores (it has no member there).
        let _ = tokio::time::timeout(PROBE, sink.unsubscribe(&channel)).await;
    }
}
