//! Keeps the TypeScript declarations shipped in the package (`roomcast-client.d.ts.in`)
//! from drifting from the protocol crate: every server message the SDK hands to the app
//! is declared with exactly the fields the protocol serializes, optional ones (`?`) being
//! exactly those the protocol may leave out. A new `ServerMessage` variant fails to
//! compile here until it is declared (or listed as handled inside the SDK).

use std::collections::BTreeSet;

use roomcast_protocol::{
    ClientId, ErrorCode, MessageId, Priority, RequestId, RoomName, ServerMessage, User, UserId,
};
use serde_json::{Map, Value, json};

const DECLARATIONS: &str = include_str!("../roomcast-client.d.ts.in");

/// For each variant: a sample with every optional field set, and one with none set;
/// `None` for the variants the SDK consumes itself and never emits.
fn samples(message: &ServerMessage) -> Option<(ServerMessage, ServerMessage)> {
    let user = User::new(UserId::new("u").unwrap(), None, Vec::new(), Map::new());
    let room = RoomName::new("r").unwrap();
    let id = MessageId::new("0000000000000001").unwrap();
    let both = |m: ServerMessage| Some((m.clone(), m));
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
            Some((full, bare))
        }
        ServerMessage::Error { .. } => Some((
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
        // Consumed by the SDK: answered (ping), settled (reply, pong), unpacked
        // (compressed, batch_messages).
        ServerMessage::Ping { .. }
        | ServerMessage::Pong { .. }
        | ServerMessage::Reply { .. }
        | ServerMessage::Compressed { .. }
        | ServerMessage::BatchMessages { .. } => None,
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

/// The declared fields of `type: "<kind>"` in the `ServerMessage` union: (name, optional).
fn declared(kind: &str) -> Option<BTreeSet<(String, bool)>> {
    let marker = format!("{{ type: \"{kind}\";");
    let line = DECLARATIONS.lines().find(|l| l.contains(&marker))?;
    let body = line.split_once(&marker)?.1.rsplit_once('}')?.0;
    Some(
        body.split(';')
            .filter_map(|field| field.split_once(':').map(|(name, _)| name.trim()))
            .filter(|name| !name.is_empty())
            .map(|name| match name.strip_suffix('?') {
                Some(name) => (name.to_owned(), true),
                None => (name.to_owned(), false),
            })
            .collect(),
    )
}

fn keys(message: &ServerMessage) -> BTreeSet<String> {
    match serde_json::to_value(message).unwrap() {
        Value::Object(map) => map.keys().filter(|k| *k != "type").cloned().collect(),
        other => panic!("not an object: {other}"),
    }
}

#[test]
fn declared_server_messages_match_the_protocol_exactly() {
    let mut checked = 0;
    for variant in every_variant() {
        let Some((full, bare)) = samples(&variant) else {
            continue;
        };
        let kind = serde_json::to_value(&full).unwrap()["type"]
            .as_str()
            .unwrap()
            .to_owned();
        let declared = declared(&kind)
            .unwrap_or_else(|| panic!("`{kind}` is not declared in roomcast-client.d.ts.in"));
        let expected: BTreeSet<(String, bool)> = keys(&full)
            .into_iter()
            .map(|k| {
                let optional = !keys(&bare).contains(&k);
                (k, optional)
            })
            .collect();
        assert_eq!(
            declared, expected,
            "`{kind}`: declared (name, optional) vs protocol"
        );
        checked += 1;
    }
    assert_eq!(checked, 11);
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
