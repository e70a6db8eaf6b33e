//! Big rooms on one node (CONTRACT §4 `members`, §5 presence in large rooms): a joiner's
//! `user_list` carries at most `ROOMCAST_USER_LIST_LIMIT` users (the first by id) and
//! the true `count`; `members` pages through everyone, by id, each user once.

mod rooms_common;

use roomcast_tests::{Client, TestServer};
use rooms_common::*;
use serde_json::{Value, json};

fn members(room: &str, after: Option<&str>, limit: Option<u32>) -> Value {
    let mut message = json!({ "type": "members", "room": room });
    if let Some(after) = after {
        message["after"] = json!(after);
    }
    if let Some(limit) = limit {
        message["limit"] = json!(limit);
    }
    message
}

/// The ids of a `user_list`'s `users` or a page's `items`, in the order sent.
fn listed(users: &Value) -> Vec<String> {
    users
        .as_array()
        .unwrap_or_else(|| panic!("an array of users: {users}"))
        .iter()
        .map(|u| u["userId"].as_str().expect("userId").to_owned())
        .collect()
}

/// Every page of `room` from `client`, `limit` at a time, following `next`; checks each
/// page's count. Returns the ids in the order received and the number of pages.
async fn page_through(
    client: &mut Client,
    room: &str,
    limit: Option<u32>,
    count: u64,
) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = expect_ok(client, members(room, after.as_deref(), limit)).await;
        pages += 1;
        assert_eq!(page["count"], count, "{page}");
        let items = listed(&page["items"]);
        ids.extend(items.iter().cloned());
        match page.get("next") {
            None => return (ids, pages),
            Some(next) => {
                assert_eq!(
                    next.as_str(),
                    items.last().map(String::as_str),
                    "next is the last item's id: {page}"
                );
                after = Some(next.as_str().expect("next is a string").to_owned());
            }
        }
        assert!(pages < 100, "paging does not end");
    }
}

async fn small_lists() -> TestServer {
    TestServer::with(roomcast_server::Settings {
        user_list_limit: Some(3),
        ..roomcast_server::Settings::default()
    })
    .await
}

#[tokio::test]
async fn user_list_carries_the_first_users_by_id_and_the_true_count() {
    let server = small_lists().await;
    let mut clients = Vec::new();
    // Joined out of order: the list is by id, not by arrival.
    for name in ["erin", "bob", "dave", "alice", "carol"] {
        let mut client = server.login(name).await;
        client.join("big").await;
        clients.push(client);
    }
    let mut frank = server.login("frank").await;
    let list = frank.join("big").await;
    assert_eq!(listed(&list["users"]), ["alice", "bob", "carol"], "{list}");
    assert_eq!(list["count"], 6, "{list}");
    // A second connection of a member does not count twice.
    let mut alice_again = server.login("alice").await;
    let list = alice_again.join("big").await;
    assert_eq!(list["count"], 6, "{list}");
    // Joins are still announced below the presence limit.
    expect_presence(&mut clients[4], "user_join", "big", "frank").await;
    assert_quiet(&mut clients[4]).await;
}

#[tokio::test]
async fn the_default_user_list_holds_100_users_and_members_pages_the_rest() {
    let server = TestServer::start().await;
    let mut clients = Vec::new();
    for n in 0..101 {
        let mut client = server.login(&format!("u{n:03}")).await;
        client.send(json!({ "type": "join", "room": "hall" })).await;
        client.expect("user_list").await;
        clients.push(client);
    }
    let mut last = server.login("zed").await;
    let list = last.join("hall").await;
    let users = listed(&list["users"]);
    let expected: Vec<String> = (0..100).map(|n| format!("u{n:03}")).collect();
    assert_eq!(users, expected, "the first 100 by id");
    assert_eq!(list["count"], 102, "{list}");

    // `members` without a limit: 100, then the other 2.
    let first = expect_ok(&mut last, members("hall", None, None)).await;
    assert_eq!(listed(&first["items"]), expected);
    assert_eq!(first["next"], "u099", "{first}");
    let second = expect_ok(&mut last, members("hall", Some("u099"), None)).await;
    assert_eq!(listed(&second["items"]), ["u100", "zed"]);
    assert!(second.get("next").is_none(), "the last page: {second}");
    // A limit over the maximum is the maximum (1000): everyone in one page.
    let all = expect_ok(&mut last, members("hall", None, Some(5000))).await;
    assert_eq!(listed(&all["items"]).len(), 102);
    assert!(all.get("next").is_none(), "{all}");
}

#[tokio::test]
async fn members_pages_through_everyone_once_in_id_order() {
    let server = small_lists().await;
    let names = ["gus", "bea", "fay", "ada", "cy", "eve", "dan"];
    let mut clients = Vec::new();
    for name in names {
        let mut client = server.login(name).await;
        client.join("club").await;
        clients.push(client);
    }
    let mut sorted: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    sorted.sort();
    for (limit, pages) in [(Some(3), 3), (Some(1), 7), (Some(7), 1), (None, 1)] {
        let (ids, got) = page_through(&mut clients[0], "club", limit, 7).await;
        assert_eq!(ids, sorted, "limit {limit:?}");
        assert_eq!(got, pages, "limit {limit:?}");
    }
    // A cursor need not be a member: the page starts after it.
    let page = expect_ok(&mut clients[0], members("club", Some("b"), Some(2))).await;
    assert_eq!(listed(&page["items"]), ["bea", "cy"], "{page}");
    // Past the end: an empty last page, with the count.
    let page = expect_ok(&mut clients[0], members("club", Some("zz"), None)).await;
    assert_eq!(page["items"], json!([]), "{page}");
    assert_eq!(page["count"], 7, "{page}");
    assert!(page.get("next").is_none(), "{page}");

    // Who leaves is gone from the pages; the count follows.
    let ada = clients.remove(3);
    ada.close().await;
    expect_presence(&mut clients[0], "user_leave", "club", "ada").await;
    let (ids, _) = page_through(&mut clients[0], "club", Some(2), 6).await;
    assert_eq!(ids, sorted[1..]);
}

#[tokio::test]
async fn members_is_for_members_and_bad_requests_are_refused_without_harm() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.join("den").await;
    expect_error(&mut bob, members("den", None, None), "not_member").await;
    expect_error(&mut bob, members("nowhere", None, None), "not_member").await;
    for bad in [
        json!({ "type": "members" }),
        json!({ "type": "members", "room": "" }),
        json!({ "type": "members", "room": "den", "after": "" }),
        json!({ "type": "members", "room": "den", "limit": -1 }),
        json!({ "type": "members", "room": "den", "limit": "ten" }),
    ] {
        expect_error(&mut alice, bad, "bad_request").await;
    }
    // The connection is unharmed: a good request still works, and so does the room.
    let page = expect_ok(&mut alice, members("den", None, Some(0))).await;
    assert_eq!(
        listed(&page["items"]),
        ["alice"],
        "a limit under 1 is 1: {page}"
    );
    bob.join("den").await;
    expect_presence(&mut alice, "user_join", "den", "bob").await;
    let page = expect_ok(&mut bob, members("den", None, None)).await;
    assert_eq!(listed(&page["items"]), ["alice", "bob"], "{page}");
    // After leaving, bob may not list the room.
    expect_ok(&mut bob, leave("den")).await;
    expect_error(&mut bob, members("den", None, None), "not_member").await;
}
