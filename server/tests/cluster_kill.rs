//! A cluster of two real `roomcast` processes sharing one Redis and one PostgreSQL
//! schema: when a node is killed with SIGKILL, its clients reconnect to the other node
//! with `since` and lose nothing that was acknowledged, and get nothing twice
//! (CONTRACT §10).
//!
//! The services come from `ROOMCAST_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and `ROOMCAST_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379/0`), as in the `roomcast-tests` crate (which this package cannot
//! depend on): a fresh schema and a fresh key prefix per run, both removed on drop, even
//! when the test fails. An unreachable service skips the test loudly, or fails it when
//! `ROOMCAST_REQUIRE_SERVICES=1`.

mod cluster_support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cluster_support::*;
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;

/// The whole test, end to end.
const WHOLE_TEST: Duration = Duration::from_secs(40);
/// Chats the sender on node B sends, one by one.
const CHATS: usize = 40;
/// Node A is killed once this many of them are acknowledged.
const KILL_AFTER: usize = 15;
/// Chats acknowledged after the kill before X may reconnect: all of them must come back
/// in X's replay.
const WHILE_AWAY: usize = 10;
/// After which of the sender's chats the client on node A sends one of its own.
const FROM_A_AFTER: [usize; 3] = [3, 8, 13];

/// Records `ws`'s chats until `done` names the last acknowledged id and that one has
/// arrived, then a little longer (a duplicate behind it would show).
async fn collect_until(
    ws: &mut Ws,
    who: &str,
    seen: &mut Vec<Chat>,
    done: oneshot::Receiver<String>,
) {
    let mut done = std::pin::pin!(done);
    let mut last: Option<String> = None;
    loop {
        if let Some(last) = &last
            && seen.last().is_some_and(|(id, _)| id >= last)
        {
            break;
        }
        tokio::select! {
            frame = next_json(ws, who) => {
                let frame = frame.unwrap_or_else(|| panic!("{who}: the connection ended"));
                seen.extend(chats_in(&frame));
            }
            id = &mut done, if last.is_none() => {
                last = Some(id.expect("the test tells when it is done"));
            }
        }
    }
    let linger = tokio::time::sleep(Duration::from_millis(300));
    tokio::pin!(linger);
    loop {
        tokio::select! {
            () = &mut linger => break,
            frame = next_json(ws, who) => {
                let frame = frame.unwrap_or_else(|| panic!("{who}: the connection ended"));
                seen.extend(chats_in(&frame));
            }
        }
    }
}

/// What client X went through.
#[derive(Debug)]
struct XReport {
    /// Every chat it saw, on node A and then on node B.
    seen: Vec<Chat>,
    /// How many of them it had seen when node A died.
    before_kill: usize,
    /// The reply to its `join` with `since` on node B.
    rejoin: Value,
    /// The chats between that `join` and its reply.
    before_reply: usize,
}

/// Client X: a member on node A until A dies, then on node B after `go`, with `since`.
async fn client_x(
    mut on_a: Ws,
    b: SocketAddr,
    go: oneshot::Receiver<()>,
    done: oneshot::Receiver<String>,
) -> XReport {
    let mut seen = Vec::new();
    while let Some(frame) = next_json(&mut on_a, "X on A").await {
        seen.extend(chats_in(&frame));
    }
    let before_kill = seen.len();
    let (since, _) = seen
        .last()
        .cloned()
        .expect("X saw chats on node A before it died");
    go.await.expect("the test lets X reconnect");

    let url = format!("ws://{b}/ws");
    let (mut ws, _) = tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(url))
        .await
        .expect("connect timed out")
        .expect("X reconnects to node B");
    let auth = json!({ "type": "auth", "token": sign("x") });
    ws.send(Message::text(auth.to_string()))
        .await
        .expect("send auth");
    let ok = next_json(&mut ws, "X on B").await.expect("auth answered");
    assert_eq!(ok["type"], "auth_ok", "X on B: {ok}");
    let join = json!({ "type": "join", "room": ROOM, "since": since, "id": "rejoin" });
    ws.send(Message::text(join.to_string()))
        .await
        .expect("send join");
    let rejoin = loop {
        let frame = next_json(&mut ws, "X on B")
            .await
            .expect("X's join with since answered");
        if frame["id"] == "rejoin" {
            break frame;
        }
        seen.extend(chats_in(&frame));
    };
    let before_reply = seen.len() - before_kill;
    collect_until(&mut ws, "X on B", &mut seen, done).await;
    XReport {
        seen,
        before_kill,
        rejoin,
        before_reply,
    }
}

/// `seen` is exactly `acked`: same chats, each once, in id order.
fn assert_exactly(who: &str, seen: &[Chat], acked: &[Chat], logs: &str) {
    let missing: Vec<_> = acked.iter().filter(|c| !seen.contains(c)).collect();
    let mut twice: Vec<_> = seen
        .iter()
        .filter(|c| seen.iter().filter(|d| d == c).count() > 1)
        .collect();
    twice.dedup();
    assert!(
        seen == acked,
        "{who} did not see every acknowledged chat exactly once in order\n\
         missing: {missing:?}\ntwice: {twice:?}\nseen: {seen:?}\nacked: {acked:?}\n{logs}"
    );
}

// ---------------------------------------------------------------------------------------
// The test

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_clients_recover_every_acknowledged_chat_on_another_node() {
    let Some(redis) = RedisPrefix::create().await else {
        return;
    };
    let Some(store) = PgSchema::create().await else {
        return;
    };
    tokio::time::timeout(WHOLE_TEST, kill_and_recover(&redis, &store))
        .await
        .unwrap_or_else(|_| panic!("the test took more than {WHOLE_TEST:?}"));
    // The nodes are gone by now; `store` and `redis` drop here, and on a panic too.
}

async fn kill_and_recover(redis: &RedisPrefix, store: &PgSchema) {
    // One after the other: both migrate the fresh schema at start.
    let mut a = Node::start("node-a", redis, store);
    let b = Node::start("node-b", redis, store);

    let x = member(a.addr, "x").await;
    let mut w = member(a.addr, "w").await;
    let mut y = member(b.addr, "y").await;
    let mut s = member(b.addr, "s").await;

    let (y_done, y_done_rx) = oneshot::channel();
    let y_task = tokio::spawn(async move {
        let mut seen = Vec::new();
        collect_until(&mut y, "Y on B", &mut seen, y_done_rx).await;
        seen
    });
    let (go, go_rx) = oneshot::channel();
    let (x_done, x_done_rx) = oneshot::channel();
    let x_task = tokio::spawn(client_x(x, b.addr, go_rx, x_done_rx));

    let mut acked: Vec<Chat> = Vec::new();
    let mut go = Some(go);
    for i in 0..CHATS {
        if i == KILL_AFTER {
            a.kill();
        }
        if i == KILL_AFTER + WHILE_AWAY
            && let Some(go) = go.take()
        {
            // X may reconnect now: what it missed is stored and acknowledged.
            let _ = go.send(());
        }
        if i > KILL_AFTER + WHILE_AWAY {
            // Live chats while X rejoins, not all in one burst.
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        acked.push(send_chat(&mut s, "S on B", i, format!("s-{i}")).await);
        if FROM_A_AFTER.contains(&i) {
            acked.push(send_chat(&mut w, "W on A", 1000 + i, format!("w-{i}")).await);
        }
    }
    drop(w);

    // Ids are dense and ordered per room: a fresh room numbers its chats 1, 2, 3, ...
    let expected: Vec<String> = (1..=acked.len()).map(|n| format!("{n:016x}")).collect();
    let ids: Vec<&String> = acked.iter().map(|(id, _)| id).collect();
    assert_eq!(ids, expected.iter().collect::<Vec<_>>(), "acknowledged ids");

    let last = acked.last().expect("chats were sent").0.clone();
    let _ = y_done.send(last.clone());
    let _ = x_done.send(last);
    let y_seen = y_task.await.expect("Y's reader");
    let x = x_task.await.expect("X's client");

    let logs = format!("=== node-a ===\n{}=== node-b ===\n{}", a.logs(), b.logs());
    assert_exactly("Y (on B)", &y_seen, &acked, &logs);
    assert_exactly("X (on A, then on B)", &x.seen, &acked, &logs);
    // Node A delivered to X what B's sender sent before the kill, and X missed what was
    // sent while it was away: those came back in the replay, counted in the reply.
    assert!(
        x.before_kill >= 1 && x.before_kill <= KILL_AFTER + FROM_A_AFTER.len(),
        "X saw {} chats on A",
        x.before_kill
    );
    assert_eq!(x.rejoin["type"], "reply", "{}", x.rejoin);
    assert_eq!(x.rejoin["ok"], true, "{}", x.rejoin);
    assert_eq!(x.rejoin["data"]["room"], ROOM, "{}", x.rejoin);
    assert_eq!(x.rejoin["data"]["recovered"], true, "{}", x.rejoin);
    let replayed = x.rejoin["data"]["replayed"]
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or_else(|| panic!("no replayed count: {}", x.rejoin));
    let missed = KILL_AFTER + FROM_A_AFTER.len() + WHILE_AWAY - x.before_kill;
    assert!(
        replayed >= missed && x.before_reply >= replayed,
        "replayed {replayed}, X missed at least {missed}, got {} before the reply",
        x.before_reply
    );
}

/// The members of a node killed outright leave presence within the TTL and a heartbeat:
/// a surviving node reaps them and the room hears `user_leave`, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_members_leave_the_room_within_the_ttl() {
    let Some(redis) = RedisPrefix::create().await else {
        return;
    };
    let Some(store) = PgSchema::create().await else {
        return;
    };
    let mut a = Node::start("node-a", &redis, &store);
    let b = Node::start("node-b", &redis, &store);
    let mut watcher = member(b.addr, "watcher").await;
    let _zed = member(a.addr, "zed").await;
    let joined = next_json(&mut watcher, "watcher").await.expect("a notice");
    assert_eq!(joined["type"], "user_join", "{joined}");
    assert_eq!(joined["user"]["userId"], "zed", "{joined}");

    a.kill();
    let killed = Instant::now();
    let left = next_json(&mut watcher, "watcher").await.expect("a notice");
    assert_eq!(left["type"], "user_leave", "{left}");
    assert_eq!(left["user"]["userId"], "zed", "{left}");
    // TTL 1 s + heartbeat 200 ms, with slack for a loaded machine (and the reaper's
    // own first TTL of beating: it started a moment ago).
    assert!(
        killed.elapsed() < Duration::from_millis(4_000),
        "zed left {:?} after the kill\n{}",
        killed.elapsed(),
        b.logs()
    );
    let quiet = tokio::time::timeout(
        Duration::from_millis(500),
        next_json(&mut watcher, "watcher"),
    )
    .await;
    assert!(
        quiet.is_err(),
        "one user_leave, nothing after it: {quiet:?}"
    );
}
