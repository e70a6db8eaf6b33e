//! Keeps the TypeScript declarations shipped in the package (`roomcast-client.d.ts.in`)
//! from drifting from the protocol crate: every server message the SDK hands to the app
//! (the `ServerMessage` union) and every envelope it unwraps (`ServerEnvelope`) is declared
//! with exactly the fields the protocol serializes, optional ones (`?`) being exactly those
//! the protocol may leave out; so are the reply bodies the SDK's methods resolve with and
//! the topic message. A new `ServerMessage` or `ClientMessage` variant fails to compile
//! here until it is declared (or listed as handled inside the SDK). Test-time only: the SDK
//! itself never links these types or serde_json.

use std::collections::{BTreeMap, BTreeSet};

use roomcast_protocol::{
    ChatReply, ClientId, ClientMessage, ErrorCode, HistoryReply, JoinReply, LeaveReply,
    MarkReadReply, MembersReply, MessageId, Priority, PrivateHistoryReply, PrivateReply, RequestId,
    RoomName, ServerMessage, SubscribeReply, TopicMessage, UnsubscribeReply, User, UserId,
};
use serde_json::{Map, Value, json};

const DECLARATIONS: &str = include_str!("../roomcast-client.d.ts.in");

/// The union handlers get their messages from.
const APP: &str = "ServerMessage";
/// The union of what the SDK unwraps.
const ENVELOPE: &str = "ServerEnvelope";

/// For each variant: the union that declares it, a sample with every optional field set
/// and one with none set; `None` for the variants the SDK answers or settles itself.
fn samples(message: &ServerMessage) -> Option<(&'static str, ServerMessage, ServerMessage)> {
    let user = User::new(UserId::new("u").unwrap(), None, Vec::new(), Map::new());
    let room = RoomName::new("r").unwrap();
    let id = MessageId::new("0000000000000001").unwrap();
    let both = |m: ServerMessage| Some((APP, m.clone(), m));
    match message {
        ServerMessage::AuthOk { .. } => {
            let full = ServerMessage::AuthOk {
                client_id: ClientId::new("c").unwrap(),
                user_id: user.user_id.clone(),
                user: user.clone(),
                rooms: vec![room],
                expires_at: Some(1),
                timestamp: 1,
            };
            let mut bare = full.clone();
            if let ServerMessage::AuthOk { expires_at, .. } = &mut bare {
                *expires_at = None;
            }
            Some((APP, full, bare))
        }
        ServerMessage::Error { .. } => Some((
            APP,
            ServerMessage::Error {
                id: Some(RequestId::String("1".into())),
                code: ErrorCode::BadRequest,
                message: "m".into(),
            },
            ServerMessage::Error {
                id: None,
                code: ErrorCode::BadRequest,
                message: "m".into(),
            },
        )),
        ServerMessage::UserList { .. } => both(ServerMessage::UserList {
            room,
            users: vec![user],
            count: 1,
            timestamp: 1,
        }),
        ServerMessage::UserJoin { .. } => both(ServerMessage::UserJoin {
            room,
            user,
            timestamp: 1,
        }),
        ServerMessage::UserLeave { .. } => both(ServerMessage::UserLeave {
            room,
            user,
            timestamp: 1,
        }),
        ServerMessage::Chat { .. } => both(ServerMessage::Chat {
            id,
            room,
            from: user,
            message: json!("hi"),
            timestamp: 1,
        }),
        ServerMessage::Private { .. } => both(ServerMessage::Private {
            id,
            from: user,
            to: UserId::new("v").unwrap(),
            message: json!("hi"),
            timestamp: 1,
        }),
        ServerMessage::Notification { .. } => both(ServerMessage::Notification {
            id,
            title: "t".into(),
            content: "c".into(),
            priority: Priority::High,
            read: false,
            timestamp: 1,
        }),
        ServerMessage::GlobalNotification { .. } => both(ServerMessage::GlobalNotification {
            id,
            title: "t".into(),
            content: "c".into(),
            timestamp: 1,
        }),
        ServerMessage::NotificationRead { .. } => both(ServerMessage::NotificationRead {
            notification_id: id,
            timestamp: 1,
        }),
        ServerMessage::StatsUpdate { .. } => both(ServerMessage::StatsUpdate {
            connections: 1,
            users: 1,
            rooms: 1,
            messages_in_per_sec: 0.5,
            messages_out_per_sec: 0.5,
            timestamp: 1,
        }),
        // Unwrapped by the SDK: declared for what they are on the wire.
        ServerMessage::Compressed { .. } => {
            let m = ServerMessage::Compressed {
                data: "gzip:".into(),
                timestamp: 1,
            };
            Some((ENVELOPE, m.clone(), m))
        }
        ServerMessage::BatchMessages { .. } => {
            let m = ServerMessage::BatchMessages {
                room,
                messages: vec![json!({"type":"t"})],
                count: 1,
                timestamp: 1,
            };
            Some((ENVELOPE, m.clone(), m))
        }
        // Consumed by the SDK: answered (ping), settled (reply, pong).
        ServerMessage::Ping { .. } | ServerMessage::Pong { .. } | ServerMessage::Reply { .. } => {
            None
        }
    }
}

/// One of every variant (fields irrelevant).
fn every_variant() -> Vec<ServerMessage> {
    let user = User::new(UserId::new("u").unwrap(), None, Vec::new(), Map::new());
    let room = RoomName::new("r").unwrap();
    let id = MessageId::new("0000000000000001").unwrap();
    vec![
        ServerMessage::AuthOk {
            client_id: ClientId::new("c").unwrap(),
            user_id: user.user_id.clone(),
            user: user.clone(),
            rooms: Vec::new(),
            expires_at: None,
            timestamp: 1,
        },
        ServerMessage::Ping { timestamp: 1 },
        ServerMessage::Pong {
            id: None,
            timestamp: 1,
        },
        ServerMessage::Reply {
            id: RequestId::String("1".into()),
            ok: true,
            data: Value::Null,
        },
        ServerMessage::Error {
            id: None,
            code: ErrorCode::Internal,
            message: String::new(),
        },
        ServerMessage::UserList {
            room: room.clone(),
            users: Vec::new(),
            count: 0,
            timestamp: 1,
        },
        ServerMessage::UserJoin {
            room: room.clone(),
            user: user.clone(),
            timestamp: 1,
        },
        ServerMessage::UserLeave {
            room: room.clone(),
            user: user.clone(),
            timestamp: 1,
        },
        ServerMessage::Chat {
            id: id.clone(),
            room: room.clone(),
            from: user.clone(),
            message: Value::Null,
            timestamp: 1,
        },
        ServerMessage::Private {
            id: id.clone(),
            from: user,
            to: UserId::new("v").unwrap(),
            message: Value::Null,
            timestamp: 1,
        },
        ServerMessage::Notification {
            id: id.clone(),
            title: String::new(),
            content: String::new(),
            priority: Priority::Normal,
            read: false,
            timestamp: 1,
        },
        ServerMessage::GlobalNotification {
            id: id.clone(),
            title: String::new(),
            content: String::new(),
            timestamp: 1,
        },
        ServerMessage::NotificationRead {
            notification_id: id,
            timestamp: 1,
        },
        ServerMessage::Compressed {
            data: String::new(),
            timestamp: 1,
        },
        ServerMessage::BatchMessages {
            room,
            messages: Vec::new(),
            count: 0,
            timestamp: 1,
        },
        ServerMessage::StatsUpdate {
            connections: 0,
            users: 0,
            rooms: 0,
            messages_in_per_sec: 0.0,
            messages_out_per_sec: 0.0,
            timestamp: 1,
        },
    ]
}

/// Declared fields: (name, optional).
type Fields = BTreeSet<(String, bool)>;

/// The fields of a one-line object type's body (`a: T; b?: U`).
fn fields(body: &str) -> Fields {
    body.split(';')
        .filter_map(|field| field.split_once(':').map(|(name, _)| name.trim()))
        .filter(|name| !name.is_empty())
        .map(|name| match name.strip_suffix('?') {
            Some(name) => (name.to_owned(), true),
            None => (name.to_owned(), false),
        })
        .collect()
}

/// The member lines of `export type <union> =`, up to the one ending it with `;`.
fn union_lines(union: &str) -> Vec<&'static str> {
    let start = format!("export type {union} =");
    let mut lines = DECLARATIONS.lines().skip_while(|l| !l.starts_with(&start));
    assert!(
        lines.next().is_some(),
        "no `{start}` in roomcast-client.d.ts.in"
    );
    let mut members = Vec::new();
    for line in lines {
        members.push(line);
        if line.trim_end().ends_with(';') {
            break;
        }
    }
    members
}

/// The kinds `union` declares (`{ type: "<kind>"; ...}` members).
fn union_kinds(union: &str) -> BTreeSet<String> {
    union_lines(union)
        .iter()
        .filter_map(|l| l.split_once("{ type: \"")?.1.split_once('"'))
        .map(|(kind, _)| kind.to_owned())
        .collect()
}

/// The declared fields of `type: "<kind>"` in `union`.
fn declared(union: &str, kind: &str) -> Option<Fields> {
    let marker = format!("{{ type: \"{kind}\";");
    let line = union_lines(union)
        .into_iter()
        .find(|l| l.contains(&marker))?;
    Some(fields(line.split_once(&marker)?.1.rsplit_once('}')?.0))
}

/// The declared fields of the one-line `export interface <name> { ... }`.
fn interface(name: &str) -> Option<Fields> {
    let marker = format!("export interface {name} {{");
    let line = DECLARATIONS.lines().find(|l| l.starts_with(&marker))?;
    Some(fields(line.split_once(&marker)?.1.rsplit_once('}')?.0))
}

fn keys(value: &Value) -> BTreeSet<String> {
    match value {
        Value::Object(map) => map.keys().cloned().collect(),
        other => panic!("not an object: {other}"),
    }
}

/// What the protocol says a declaration must be: the keys of `full`, optional when `bare`
/// leaves them out.
fn expected(full: &Value, bare: &Value) -> Fields {
    let bare = keys(bare);
    keys(full)
        .into_iter()
        .map(|k| {
            let optional = !bare.contains(&k);
            (k, optional)
        })
        .collect()
}

#[test]
fn declared_server_messages_match_the_protocol_exactly() {
    let mut checked: BTreeMap<&str, BTreeSet<String>> =
        [(APP, BTreeSet::new()), (ENVELOPE, BTreeSet::new())].into();
    for variant in every_variant() {
        let Some((union, full, bare)) = samples(&variant) else {
            continue;
        };
        let (full, bare) = (full.to_value(), bare.to_value());
        let kind = full["type"].as_str().unwrap().to_owned();
        let declared = declared(union, &kind)
            .unwrap_or_else(|| panic!("`{kind}` is not declared in `{union}`"));
        let mut expected = expected(&full, &bare);
        expected.remove(&("type".to_owned(), false));
        assert_eq!(
            declared, expected,
            "`{kind}`: declared (name, optional) vs protocol"
        );
        checked.get_mut(union).unwrap().insert(kind);
    }
    // Nothing else is declared in either union: no stale member, no envelope the app is
    // told it receives.
    for (union, kinds) in checked {
        assert_eq!(union_kinds(union), kinds, "kinds declared in `{union}`");
    }
}

/// One of every request (fields irrelevant).
fn every_request() -> Vec<ClientMessage> {
    let room = RoomName::new("r").unwrap();
    let topic = String::from("t");
    vec![
        ClientMessage::Auth {
            token: String::new(),
        },
        ClientMessage::Pong,
        ClientMessage::Ping,
        ClientMessage::Join {
            room: room.clone(),
            since: None,
        },
        ClientMessage::Leave { room: room.clone() },
        ClientMessage::Chat {
            room: room.clone(),
            content: Value::Null,
        },
        ClientMessage::Private {
            target_user_id: UserId::new("u").unwrap(),
            content: Value::Null,
        },
        ClientMessage::History {
            room,
            limit: None,
            before: None,
        },
        ClientMessage::PrivateHistory {
            user_id: UserId::new("u").unwrap(),
            limit: None,
            before: None,
            before_to: None,
        },
        ClientMessage::Members {
            room: RoomName::new("r").unwrap(),
            after: None,
            limit: None,
        },
        ClientMessage::Ack {
            message_id: String::new(),
        },
        ClientMessage::MarkRead {
            notification_id: MessageId::new("n").unwrap(),
        },
        ClientMessage::Subscribe {
            topic: topic.clone(),
            keys: Vec::new(),
        },
        ClientMessage::Unsubscribe { topic },
    ]
}

/// For each request the SDK has a method for: the method, the interface its promise
/// resolves with, and the protocol's reply body (every optional field set, and none).
fn reply_of(request: &ClientMessage) -> Option<(&'static str, &'static str, Value, Value)> {
    let room = RoomName::new("r").unwrap();
    let id = MessageId::new("0000000000000001").unwrap();
    let chat = ServerMessage::Chat {
        id: id.clone(),
        room: room.clone(),
        from: User::new(UserId::new("u").unwrap(), None, Vec::new(), Map::new()),
        message: Value::Null,
        timestamp: 1,
    };
    let (method, result, body): (_, _, Value) = match request {
        ClientMessage::Join { .. } => (
            "join",
            "JoinResult",
            JoinReply {
                room,
                recovered: true,
                replayed: 1,
            }
            .into(),
        ),
        ClientMessage::Leave { .. } => ("leave", "LeaveResult", LeaveReply { room }.into()),
        ClientMessage::Chat { .. } => (
            "chat",
            "ChatResult",
            ChatReply {
                id,
                room,
                timestamp: 1,
            }
            .into(),
        ),
        ClientMessage::Private { .. } => (
            "sendPrivate",
            "PrivateResult",
            PrivateReply {
                id,
                target_user_id: UserId::new("v").unwrap(),
                delivered: true,
                timestamp: 1,
            }
            .into(),
        ),
        ClientMessage::History { .. } => (
            "history",
            "HistoryResult",
            HistoryReply { items: vec![chat] }.into(),
        ),
        ClientMessage::MarkRead { .. } => (
            "markRead",
            "MarkReadResult",
            MarkReadReply {
                notification_id: id,
            }
            .into(),
        ),
        ClientMessage::Subscribe { .. } => (
            "subscribe",
            "SubscribeResult",
            SubscribeReply {
                topic: "t".into(),
                keys: vec!["k".into()],
            }
            .into(),
        ),
        ClientMessage::Unsubscribe { .. } => (
            "unsubscribe",
            "UnsubscribeResult",
            UnsubscribeReply {
                topic: "t".into(),
                removed: true,
            }
            .into(),
        ),
        // The core refuses `auth`, `ack` and `pong` from the app (see its tests), so their
        // replies (`AuthReply`, `RefreshReply`, `AckReply`) never reach it; `ping` is
        // answered with `pong`; a custom type's answer is the application's (`request<R>`).
        ClientMessage::PrivateHistory { .. } => (
            "privateHistory",
            "PrivateHistoryResult",
            PrivateHistoryReply {
                items: vec![ServerMessage::Private {
                    id,
                    from: User::new(UserId::new("u").unwrap(), None, Vec::new(), Map::new()),
                    to: UserId::new("v").unwrap(),
                    message: Value::Null,
                    timestamp: 1,
                }],
            }
            .into(),
        ),
        ClientMessage::Members { .. } => {
            // `next` is absent on the last page: the bare body leaves it out.
            let page = |next: Option<UserId>| MembersReply {
                items: vec![User::new(
                    UserId::new("u").unwrap(),
                    None,
                    Vec::new(),
                    Map::new(),
                )],
                count: 1,
                next,
            };
            let full = page(Some(UserId::new("u").unwrap())).into();
            return Some(("members", "MembersResult", full, page(None).into()));
        }
        ClientMessage::Auth { .. }
        | ClientMessage::Ack { .. }
        | ClientMessage::Pong
        | ClientMessage::Ping
        | ClientMessage::Custom(_) => return None,
    };
    Some((method, result, body.clone(), body))
}

#[test]
fn declared_results_match_the_protocols_reply_bodies() {
    let requests = every_request();
    let kinds: BTreeSet<&str> = requests.iter().map(ClientMessage::kind).collect();
    assert_eq!(kinds, ClientMessage::KNOWN_TYPES.into_iter().collect());
    let mut checked = 0;
    for request in every_request() {
        let Some((method, result, full, bare)) = reply_of(&request) else {
            continue;
        };
        let declared = interface(result).unwrap_or_else(|| panic!("`{result}` is not declared"));
        assert_eq!(
            declared,
            expected(&full, &bare),
            "`{result}`: declared (name, optional) vs protocol"
        );
        let signature = DECLARATIONS
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{method}(")))
            .unwrap_or_else(|| panic!("no method `{method}`"));
        assert!(
            signature.contains(&format!("Promise<{result}>")),
            "`{method}` must resolve with `{result}`: {signature}"
        );
        checked += 1;
    }
    assert_eq!(checked, 10);
}

#[test]
fn declared_topic_message_matches_the_protocol() {
    let message = TopicMessage {
        kind: "stock_update".into(),
        topic: "stocks".into(),
        data: vec![json!({"key":"AAPL","price":1.5})],
        timestamp: 1,
    };
    let value = serde_json::to_value(&message).unwrap();
    assert_eq!(interface("TopicMessage"), Some(expected(&value, &value)));
    assert_eq!(
        interface("TopicItem"),
        Some(fields(" key: string; [field: string]: unknown ")),
        "an item is published JSON with a string `key`"
    );
}

#[test]
fn declared_error_codes_are_the_protocols() {
    for code in ErrorCode::ALL {
        assert!(
            DECLARATIONS.contains(&format!("\"{}\"", code.as_str())),
            "{code} missing from ErrorCode"
        );
    }
}
