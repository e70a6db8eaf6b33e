//! Rooms: joins and leaves, rejoins from the last chat seen after a reconnect (announced,
//! retried when refused for a passing reason), each chat once and in order, and which
//! rooms survive a timeout, a refusal, a drop or the end.

use super::*;
use crate::core::membership::{REJOIN_RETRIES, REJOIN_RETRY_MS};

#[test]
fn rooms_are_rejoined_from_the_last_chat_seen_and_nothing_arrives_twice() {
    let mut core = open(options());
    let (join, effects) = core.request("join", &map(&json!({"room":"lobby"})), None, 0);
    assert_eq!(
        sent(&effects),
        [json!({"type":"join","room":"lobby","id":join})]
    );
    core.on_frame(
        &json!({"type":"reply","id":join,"ok":true,"data":{}}).to_string(),
        0,
    );
    assert_eq!(emitted(&core.on_frame(&chat("lobby", 1), 1)).len(), 1);
    assert_eq!(emitted(&core.on_frame(&chat("lobby", 2), 1)).len(), 1);

    core.on_close(1006, "gone", 2);
    core.reconnect("t".into(), 3);
    core.on_open(3);
    let effects = core.on_frame(&auth_ok(), 4);
    let rejoin = &sent(&effects)[0];
    assert_eq!(rejoin["type"], "join");
    assert_eq!(rejoin["since"], format!("{:016x}", 2));
    // The replay, and a live chat the server had already sent before the drop.
    let replayed: Vec<Value> = [
        chat("lobby", 2),
        chat("lobby", 3),
        chat("lobby", 3),
        chat("lobby", 4),
    ]
    .iter()
    .flat_map(|c| emitted(&core.on_frame(c, 5)))
    .collect();
    assert_eq!(
        replayed
            .iter()
            .map(|c| c["message"].clone())
            .collect::<Vec<_>>(),
        [json!(3), json!(4)]
    );
}

#[test]
fn a_rejoin_the_server_could_not_recover_starts_the_room_over() {
    let mut core = open(options());
    joined(&mut core, "lobby", 0);
    assert_eq!(emitted(&core.on_frame(&chat("lobby", 40), 1)).len(), 1);
    let rejoin = &reconnected(&mut core, 2)[0];
    assert_eq!(rejoin["since"], format!("{:016x}", 40));
    // The server's store started over: ids begin again at 1, below our position.
    let reply = json!({"type":"reply","id":rejoin["id"],"ok":true,"data":{"room":"lobby","recovered":false,"replayed":0}});
    core.on_frame(&reply.to_string(), 3);
    assert_eq!(emitted(&core.on_frame(&chat("lobby", 1), 4)).len(), 1);
    assert!(
        emitted(&core.on_frame(&chat("lobby", 1), 4)).is_empty(),
        "still once"
    );
    // A recovered rejoin keeps the position.
    let rejoin = &reconnected(&mut core, 5)[0];
    assert_eq!(rejoin["since"], format!("{:016x}", 1));
    let reply = json!({"type":"reply","id":rejoin["id"],"ok":true,"data":{"room":"lobby","recovered":true,"replayed":0}});
    core.on_frame(&reply.to_string(), 6);
    assert!(emitted(&core.on_frame(&chat("lobby", 1), 7)).is_empty());
}

#[test]
fn a_join_made_offline_is_settled_by_the_rejoin() {
    let mut core = core(options());
    let (join, effects) = core.request("join", &map(&json!({"room":"lobby"})), None, 0);
    assert!(effects.is_empty());
    core.connect("t".into(), 0);
    core.on_open(0);
    let frames = sent(&core.on_frame(&auth_ok(), 0));
    let rejoin = frames[0]["id"].as_u64().unwrap();
    let reply = json!({"type":"reply","id":rejoin,"ok":true,"data":{"room":"lobby","recovered":false,"replayed":0}});
    assert_eq!(
        settled(&core.on_frame(&reply.to_string(), 1)),
        [(
            join,
            Ok(json!({"room":"lobby","recovered":false,"replayed":0}))
        )]
    );
}

#[test]
fn chats_of_rooms_the_server_joined_are_passed_through() {
    let mut core = open(options());
    assert_eq!(
        emitted(&core.on_frame(&chat("announcements", 1), 1)).len(),
        1
    );
    assert_eq!(
        emitted(&core.on_frame(&chat("announcements", 1), 1)).len(),
        1
    );
}

#[test]
fn leaving_forgets_the_room() {
    let mut core = open(options());
    core.request("join", &map(&json!({"room":"lobby"})), None, 0);
    let (leave, effects) = core.request("leave", &map(&json!({"room":"lobby"})), None, 0);
    assert_eq!(
        sent(&effects),
        [json!({"type":"leave","room":"lobby","id":leave})]
    );
    core.on_close(1006, "gone", 1);
    core.reconnect("t".into(), 2);
    core.on_open(2);
    assert!(sent(&core.on_frame(&auth_ok(), 2)).is_empty(), "no rejoin");
}

#[test]
fn each_rejoin_tells_the_app_whether_the_room_was_recovered_or_refused() {
    let mut core = open(options());
    joined(&mut core, "lobby", 0);
    joined(&mut core, "vip", 0);
    let rejoins = reconnected(&mut core, 1);
    assert_eq!(rejoins.len(), 2);
    let (lobby, vip) = (rejoins[0]["id"].clone(), rejoins[1]["id"].clone());
    assert_eq!(rejoins[0]["room"], "lobby");

    let ok = json!({"type":"reply","id":lobby,"ok":true,"data":{"room":"lobby","recovered":true,"replayed":2}});
    assert_eq!(
        emitted(&core.on_frame(&ok.to_string(), 2)),
        [json!({"type":"rejoined","room":"lobby","recovered":true,"replayed":2})]
    );
    let refused = json!({"type":"error","id":vip,"code":"forbidden","message":"members only"});
    assert_eq!(
        emitted(&core.on_frame(&refused.to_string(), 2)),
        [json!({"type":"rejoin_failed","room":"vip","code":"forbidden","message":"members only"})]
    );
    // The refused room is given up; the other is rejoined again next time.
    let rejoins = reconnected(&mut core, 3);
    assert_eq!(
        rejoins
            .iter()
            .map(|f| f["room"].clone())
            .collect::<Vec<_>>(),
        [json!("lobby")]
    );
}

#[test]
fn a_first_join_made_offline_is_not_announced_as_a_rejoin() {
    let mut core = core(options());
    let (join, _) = core.request("join", &map(&json!({"room":"lobby"})), None, 0);
    core.connect("t".into(), 0);
    core.on_open(0);
    let frames = sent(&core.on_frame(&auth_ok(), 0));
    let reply = json!({"type":"reply","id":frames[0]["id"],"ok":true,"data":{"room":"lobby","recovered":false,"replayed":0}});
    let effects = core.on_frame(&reply.to_string(), 1);
    assert!(emitted(&effects).is_empty(), "{effects:?}");
    assert_eq!(settled(&effects)[0].0, join);
}

#[test]
fn after_close_a_new_connect_starts_without_the_old_rooms() {
    let mut core = open(options());
    joined(&mut core, "lobby", 0);
    core.close();
    core.connect("t".into(), 1);
    core.on_open(1);
    assert!(sent(&core.on_frame(&auth_ok(), 1)).is_empty(), "no rejoin");
    // Its chats are now those of a room the client is not in: passed through as is.
    assert_eq!(emitted(&core.on_frame(&chat("lobby", 1), 2)).len(), 1);
}

#[test]
fn chats_of_a_room_being_left_no_longer_reach_the_app() {
    let mut core = open(options());
    joined(&mut core, "lobby", 0);
    assert_eq!(emitted(&core.on_frame(&chat("lobby", 1), 1)).len(), 1);
    let (leave, _) = core.request("leave", &map(&json!({"room":"lobby"})), None, 1);
    // Sent by the server before it read the leave.
    assert!(emitted(&core.on_frame(&chat("lobby", 2), 1)).is_empty());
    assert_eq!(
        emitted(&core.on_frame(&chat("news", 1), 1)).len(),
        1,
        "other rooms are untouched"
    );
    let reply = json!({"type":"reply","id":leave,"ok":true,"data":{"room":"lobby"}});
    assert_eq!(settled(&core.on_frame(&reply.to_string(), 2)).len(), 1);
    // Once left, a chat of that room (the server put the client back in) passes again.
    assert_eq!(emitted(&core.on_frame(&chat("lobby", 3), 3)).len(), 1);
}

#[test]
fn a_join_without_an_answer_times_out_and_is_forgotten() {
    let mut core = open(options());
    let (join, _) = core.request("join", &map(&json!({"room":"lobby"})), Some(500), 0);
    assert_eq!(core.next_deadline(), Some(500));
    assert!(settled(&core.on_timer(499)).is_empty());
    assert_eq!(
        settled(&core.on_timer(500)),
        [(join, Err(ClientError::Timeout(500)))]
    );
    // A late answer settles nothing, and the room is not rejoined.
    let late = json!({"type":"reply","id":join,"ok":true,"data":{"room":"lobby"}});
    assert!(core.on_frame(&late.to_string(), 600).is_empty());
    assert!(reconnected(&mut core, 700).is_empty());
}

#[test]
fn a_join_made_offline_times_out_if_the_client_stays_offline() {
    let mut core = open(options());
    core.on_close(1006, "gone", 0);
    let (join, _) = core.request("join", &map(&json!({"room":"lobby"})), Some(500), 0);
    assert_eq!(
        settled(&core.on_timer(500)),
        [(join, Err(ClientError::Timeout(500)))]
    );
    core.reconnect("t".into(), 600);
    core.on_open(600);
    assert!(
        sent(&core.on_frame(&auth_ok(), 600)).is_empty(),
        "not joined after all"
    );
}

#[test]
fn a_room_joined_before_stays_joined_when_a_second_join_times_out() {
    let mut core = open(options());
    joined(&mut core, "lobby", 0);
    core.on_close(1006, "gone", 0);
    let (again, _) = core.request("join", &map(&json!({"room":"lobby"})), Some(100), 0);
    assert_eq!(
        settled(&core.on_timer(100)),
        [(again, Err(ClientError::Timeout(100)))]
    );
    core.reconnect("t".into(), 200);
    core.on_open(200);
    let rejoin = sent(&core.on_frame(&auth_ok(), 200));
    assert_eq!(rejoin.len(), 1);
    assert_eq!(rejoin[0]["room"], "lobby");
}

#[test]
fn after_auth_ok_the_rejoins_and_the_queue_go_out_before_the_app_hears_of_it() {
    let mut core = open(options());
    joined(&mut core, "lobby", 0);
    core.on_close(1006, "gone", 1);
    core.request("chat", &map(&json!({"room":"lobby","content":1})), None, 1);
    core.reconnect("t".into(), 2);
    core.on_open(2);
    let effects = core.on_frame(&auth_ok(), 2);
    let position = |wanted: &dyn Fn(&Effect) -> bool| effects.iter().position(wanted).unwrap();
    let rejoin = position(&|e| matches!(e, Effect::Send(f) if f.contains(r#""type":"join""#)));
    let queued = position(&|e| matches!(e, Effect::Send(f) if f.contains(r#""type":"chat""#)));
    let open = position(&|e| matches!(e, Effect::State(State::Open)));
    let hello = position(&|e| matches!(e, Effect::Emit(m) if m.kind == "auth_ok"));
    assert!(
        rejoin < queued && queued < open && open < hello,
        "{effects:?}"
    );
}

#[test]
fn a_refused_second_join_of_a_room_the_client_is_in_keeps_it() {
    let mut core = open(options());
    joined(&mut core, "lobby", 0);
    let (again, _) = core.request("join", &map(&json!({"room":"lobby"})), None, 1);
    let refused = json!({"type":"error","id":again,"code":"rate_limited","message":"slow down"});
    assert!(
        matches!(&settled(&core.on_frame(&refused.to_string(), 1))[..], [(i, Err(_))] if *i == again)
    );
    let rejoins = reconnected(&mut core, 2);
    assert_eq!(rejoins.len(), 1, "still in lobby");
}

#[test]
fn of_two_joins_on_their_way_one_refused_and_one_accepted_the_room_is_in() {
    let mut core = open(options());
    let (first, _) = core.request("join", &map(&json!({"room":"lobby"})), None, 0);
    let (second, _) = core.request("join", &map(&json!({"room":"lobby"})), None, 0);
    let refused = json!({"type":"error","id":first,"code":"rate_limited","message":"slow down"});
    core.on_frame(&refused.to_string(), 1);
    let ok = json!({"type":"reply","id":second,"ok":true,"data":{"room":"lobby","recovered":false,"replayed":0}});
    core.on_frame(&ok.to_string(), 1);
    assert_eq!(reconnected(&mut core, 2).len(), 1, "lobby is rejoined");
}

#[test]
fn a_rejoin_refused_for_a_passing_reason_is_tried_again_and_then_announced() {
    let mut core = open(options());
    joined(&mut core, "lobby", 0);
    let rejoin = reconnected(&mut core, 10);
    let busy = |id: &Value| {
        json!({"type":"error","id":id,"code":"rate_limited","message":"slow down"}).to_string()
    };
    let effects = core.on_frame(&busy(&rejoin[0]["id"]), 10);
    assert!(
        emitted(&effects).is_empty(),
        "not given up yet: {effects:?}"
    );
    assert_eq!(core.next_deadline(), Some(10 + REJOIN_RETRY_MS));
    assert!(sent(&core.on_timer(10 + REJOIN_RETRY_MS - 1)).is_empty());
    let retry = sent(&core.on_timer(10 + REJOIN_RETRY_MS));
    assert_eq!(retry.len(), 1);
    assert_eq!(
        (retry[0]["type"].as_str(), retry[0]["room"].as_str()),
        (Some("join"), Some("lobby"))
    );
    let ok = json!({"type":"reply","id":retry[0]["id"],"ok":true,"data":{"room":"lobby","recovered":true,"replayed":0}});
    assert_eq!(
        emitted(&core.on_frame(&ok.to_string(), 2_000)),
        [json!({"type":"rejoined","room":"lobby","recovered":true,"replayed":0})]
    );
}

#[test]
fn a_rejoin_that_keeps_failing_is_given_up_and_announced() {
    let mut core = open(options());
    joined(&mut core, "lobby", 0);
    let mut frame = reconnected(&mut core, 0).remove(0);
    let mut now = 0;
    for _ in 0..REJOIN_RETRIES {
        let busy =
            json!({"type":"error","id":frame["id"],"code":"rate_limited","message":"slow down"});
        assert!(emitted(&core.on_frame(&busy.to_string(), now)).is_empty());
        now += REJOIN_RETRY_MS;
        frame = sent(&core.on_timer(now)).remove(0);
    }
    let busy = json!({"type":"error","id":frame["id"],"code":"rate_limited","message":"slow down"});
    assert_eq!(
        emitted(&core.on_frame(&busy.to_string(), now)),
        [
            json!({"type":"rejoin_failed","room":"lobby","code":"rate_limited","message":"slow down"})
        ]
    );
    assert!(
        reconnected(&mut core, now + 1).is_empty(),
        "lobby is given up"
    );
}

#[test]
fn rooms_whose_join_was_cut_short_by_the_end_are_not_joined_by_a_later_connect() {
    let mut core = open(options());
    joined(&mut core, "lobby", 0);
    let (secret, _) = core.request("join", &map(&json!({"room":"secret"})), None, 0);
    let effects = core.on_close(4009, "limit", 1);
    assert!(settled(&effects).contains(&(secret, Err(ClientError::Closed))));
    core.connect("t".into(), 2);
    core.on_open(2);
    let rooms: Vec<Value> = sent(&core.on_frame(&auth_ok(), 2))
        .iter()
        .map(|f| f["room"].clone())
        .collect();
    assert_eq!(rooms, [json!("lobby")], "the accepted room only");
}

#[test]
fn a_join_of_a_room_left_before_the_connection_dropped_settles_at_the_drop() {
    let mut core = open(options());
    let (join, _) = core.request("join", &map(&json!({"room":"lobby"})), Some(60_000), 0);
    core.request("leave", &map(&json!({"room":"lobby"})), None, 0);
    let effects = core.on_close(1006, "gone", 1);
    assert!(
        settled(&effects).contains(&(join, Err(ClientError::Disconnected))),
        "{effects:?}"
    );
}

#[test]
fn a_rejoin_answered_after_the_app_left_the_room_is_not_announced() {
    let mut core = open(options());
    joined(&mut core, "lobby", 0);
    let rejoin = reconnected(&mut core, 1);
    core.request("leave", &map(&json!({"room":"lobby"})), None, 1);
    let ok = json!({"type":"reply","id":rejoin[0]["id"],"ok":true,"data":{"room":"lobby","recovered":true,"replayed":0}});
    assert!(emitted(&core.on_frame(&ok.to_string(), 2)).is_empty());
}

#[test]
fn chats_of_a_room_whose_leave_went_unanswered_stay_out() {
    let mut core = open(options());
    joined(&mut core, "lobby", 0);
    let (leave, _) = core.request("leave", &map(&json!({"room":"lobby"})), Some(100), 1);
    assert_eq!(
        settled(&core.on_timer(101)),
        [(leave, Err(ClientError::Timeout(100)))]
    );
    assert!(emitted(&core.on_frame(&chat("lobby", 1), 102)).is_empty());
}
