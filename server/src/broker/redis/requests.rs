//! The requests every node answers ([`NodeRequest`]s not about one connection): which
//! they are, who did not answer, and how the answers merge into one. Listing and room
//! listing concatenate (the hub sorts and merges by name), counts add up, stats shares
//! are collected (the hub counts each user and room once).

use std::collections::HashSet;

use roomcast_protocol::{ClientId, ErrorCode};
use tracing::warn;

use super::Shared;
use super::wire::WireError;
use crate::ServerError;
use crate::broker::{NodeAnswer, NodeRequest};

/// The live nodes, but this one, that sent no reply.
pub(super) fn silent<'a>(
    shared: &'a Shared,
    live: &'a [String],
    answered: &'a HashSet<String>,
) -> impl Iterator<Item = &'a String> {
    live.iter()
        .filter(move |node| node.as_str() != shared.node() && !answered.contains(*node))
}

/// Whether a request is about one connection, which exactly one node holds.
pub(super) fn owned_by_one(request: &NodeRequest) -> bool {
    !matches!(
        request,
        NodeRequest::List { .. }
            | NodeRequest::DisconnectAll
            | NodeRequest::ClearRoom(_)
            | NodeRequest::ConfigureRoom(..)
            | NodeRequest::ReloadSubscriptions(_)
            | NodeRequest::Rooms
            | NodeRequest::Stats
            | NodeRequest::CheckUsers
    )
}

/// The connection a request is about, when it is about one.
pub(super) fn client_of(request: &NodeRequest) -> Option<&ClientId> {
    match request {
        NodeRequest::Info(client)
        | NodeRequest::Disconnect(client)
        | NodeRequest::GetData(client)
        | NodeRequest::SetData(client, _)
        | NodeRequest::AddMember(client, _)
        | NodeRequest::RemoveMember(client, _) => Some(client),
        _ => None,
    }
}

pub(super) fn is_not_found(answer: &Result<NodeAnswer, ServerError>) -> bool {
    matches!(answer, Err(err) if err.code() == ErrorCode::NotFound)
}

/// This node's answer to a request on every node, merged with the others'.
pub(super) fn merge(
    mut here: NodeAnswer,
    others: impl Iterator<Item = Result<NodeAnswer, WireError>>,
) -> Result<NodeAnswer, ServerError> {
    for other in others {
        match (&mut here, other) {
            (NodeAnswer::Connections(list), Ok(NodeAnswer::Connections(more))) => list.extend(more),
            (NodeAnswer::Count(n), Ok(NodeAnswer::Count(more))) => *n += more,
            (NodeAnswer::Rooms(rooms), Ok(NodeAnswer::Rooms(more))) => rooms.extend(more),
            (NodeAnswer::Stats(shares), Ok(NodeAnswer::Stats(more))) => shares.extend(more),
            (_, Err(err)) => {
                warn!(code = ?err.code, message = %err.message, "a node failed a request");
            }
            (_, Ok(other)) => {
                warn!(answer = ?other, "a node answered a request with the wrong kind");
            }
        }
    }
    Ok(here)
}
