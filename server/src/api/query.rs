//! Query strings into typed structs ([`super::models`]), for every `/api` and `/dev`
//! route: a key the route does not take, a value that does not parse or a key given twice
//! is a 400 whose message names the parameter.
//!
//! warp's own `warp::query::<T>()` would do the decoding, but it drops serde's error and
//! rejects with a bare `InvalidQuery`, so the client could only be told "invalid query".
//! [`query`] is the same filter keeping the reason: the pairs are decoded by
//! `serde_urlencoded` and handed to `T` through serde's `MapDeserializer` with our own
//! error type, whose `unknown_field` and `duplicate_field` speak of query parameters.
//! Values arrive as strings; the fields that are not strings parse them with the
//! functions below, which say what the parameter must be.

use std::fmt;

use roomcast_protocol::{MessageId, UserId};
use serde::Deserialize;
use serde::de::value::MapDeserializer;
use serde::de::{DeserializeOwned, Deserializer, Error as _};
use warp::{Filter, Rejection};

use super::ApiError;

/// The query of every route that takes no parameters: any key is a 400.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NoQuery {}

/// The query of a request, decoded into `T`; a refused query rejects with its 400.
pub(super) fn query<T: DeserializeOwned + Send + 'static>()
-> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    // `raw()` rejects a request without any `?`: that is an empty query here.
    warp::query::raw()
        .or(warp::any().map(String::new))
        .unify()
        .and_then(|raw: String| async move {
            parse::<T>(&raw).map_err(|e| warp::reject::custom(ApiError::bad_request(e.0)))
        })
}

/// A route without query parameters: any key is refused.
pub(super) fn no_query() -> impl Filter<Extract = (), Error = Rejection> + Clone {
    query::<NoQuery>().map(|NoQuery {}| ()).untuple_one()
}

/// Decodes a raw query string (without the `?`) into `T`.
///
/// # Errors
/// A [`QueryError`] naming the parameter that was refused.
pub(super) fn parse<T: DeserializeOwned>(raw: &str) -> Result<T, QueryError> {
    let pairs = serde_urlencoded::from_str::<Vec<(String, String)>>(raw)
        .map_err(|_| QueryError("invalid query string".to_owned()))?;
    // By value, the deserializer also refuses pairs left over once `T` is done.
    T::deserialize(MapDeserializer::new(pairs.into_iter()))
}

/// Why a query was refused, worded for the client.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct QueryError(pub(super) String);

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for QueryError {}

impl serde::de::Error for QueryError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self(msg.to_string())
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        let takes = if expected.is_empty() {
            "this route takes none".to_owned()
        } else {
            let names: Vec<String> = expected.iter().map(|name| format!("`{name}`")).collect();
            format!("this route takes {}", names.join(", "))
        };
        Self(format!("unknown query parameter `{field}` ({takes})"))
    }

    fn duplicate_field(field: &'static str) -> Self {
        Self(format!("query parameter `{field}` given more than once"))
    }

    fn missing_field(field: &'static str) -> Self {
        Self(format!("missing query parameter `{field}`"))
    }
}

/// `limit`: a positive integer (a `u32`).
pub(super) fn limit<'de, D: Deserializer<'de>>(value: D) -> Result<Option<u32>, D::Error> {
    let raw = String::deserialize(value)?;
    raw.parse::<u32>()
        .ok()
        .filter(|n| *n > 0)
        .map(Some)
        .ok_or_else(|| D::Error::custom("`limit` must be a positive integer"))
}

/// `unread`: a flag.
pub(super) fn unread<'de, D: Deserializer<'de>>(value: D) -> Result<bool, D::Error> {
    flag("unread", value)
}

/// `active`: a flag.
pub(super) fn active<'de, D: Deserializer<'de>>(value: D) -> Result<bool, D::Error> {
    flag("active", value)
}

/// `true` or `1`, `false` or `0`: what the flags of the API have always accepted.
fn flag<'de, D: Deserializer<'de>>(name: &str, value: D) -> Result<bool, D::Error> {
    match String::deserialize(value)?.as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(D::Error::custom(format!("`{name}` must be true or false"))),
    }
}

/// `with`: a user id.
pub(super) fn with<'de, D: Deserializer<'de>>(value: D) -> Result<UserId, D::Error> {
    user("with", value)
}

/// `beforeTo`: a user id.
pub(super) fn before_to<'de, D: Deserializer<'de>>(value: D) -> Result<Option<UserId>, D::Error> {
    user("beforeTo", value).map(Some)
}

fn user<'de, D: Deserializer<'de>>(name: &str, value: D) -> Result<UserId, D::Error> {
    UserId::new(String::deserialize(value)?).map_err(|e| D::Error::custom(format!("`{name}`: {e}")))
}

/// `before`: a message id.
pub(super) fn before<'de, D: Deserializer<'de>>(value: D) -> Result<Option<MessageId>, D::Error> {
    MessageId::new(String::deserialize(value)?)
        .map(Some)
        .map_err(|e| D::Error::custom(format!("`before`: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::models::{ConnectionsQuery, HistoryQuery, NotificationsQuery};

    fn refused<T: DeserializeOwned + fmt::Debug>(raw: &str) -> String {
        match parse::<T>(raw) {
            Ok(value) => panic!("{raw:?} was accepted as {value:?}"),
            Err(err) => err.0,
        }
    }

    #[test]
    fn absent_parameters_take_their_defaults() {
        let q = parse::<NotificationsQuery>("").expect("empty query");
        assert_eq!((q.unread, q.limit), (false, None));
        let q = parse::<HistoryQuery>("").expect("empty query");
        assert_eq!((q.limit, q.before), (None, None));
        assert!(!parse::<ConnectionsQuery>("").expect("empty query").active);
        parse::<NoQuery>("").expect("empty query");
    }

    #[test]
    fn values_parse_as_before() {
        for (raw, active) in [
            ("active=true", true),
            ("active=1", true),
            ("active=0", false),
        ] {
            assert_eq!(
                parse::<ConnectionsQuery>(raw).expect(raw).active,
                active,
                "{raw}"
            );
        }
        let q = parse::<NotificationsQuery>("unread=1&limit=20").expect("valid");
        assert_eq!((q.unread, q.limit), (true, Some(20)));
        let q = parse::<HistoryQuery>("before=0019aa97b0ad7000&limit=5").expect("valid");
        assert_eq!(
            q.before.as_ref().map(MessageId::as_str),
            Some("0019aa97b0ad7000")
        );
        assert_eq!(q.limit, Some(5));
    }

    #[test]
    fn unknown_keys_are_named_with_what_the_route_takes() {
        assert_eq!(
            refused::<NoQuery>("foo=1"),
            "unknown query parameter `foo` (this route takes none)"
        );
        assert_eq!(
            refused::<HistoryQuery>("limit=1&colour=red"),
            "unknown query parameter `colour` (this route takes `limit`, `before`)"
        );
        assert_eq!(
            refused::<NoQuery>("flag"),
            "unknown query parameter `flag` (this route takes none)"
        );
    }

    #[test]
    fn bad_values_name_their_parameter() {
        for raw in [
            "limit=abc",
            "limit=0",
            "limit=-1",
            "limit=",
            "limit=4294967296",
        ] {
            assert_eq!(
                refused::<HistoryQuery>(raw),
                "`limit` must be a positive integer",
                "{raw}"
            );
        }
        assert_eq!(
            refused::<NotificationsQuery>("unread=maybe"),
            "`unread` must be true or false"
        );
        assert_eq!(
            refused::<ConnectionsQuery>("active=yes"),
            "`active` must be true or false"
        );
        assert!(refused::<HistoryQuery>("before=a%2Fb").starts_with("`before`: "));
        assert_eq!(
            refused::<HistoryQuery>("limit=1&limit=2"),
            "query parameter `limit` given more than once"
        );
    }
}
