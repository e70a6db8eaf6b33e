//! Validated id newtypes: each checks its length and characters once, at the edge, so
//! the rest of the code can trust any `RoomName` or `UserId` it holds.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ProtocolError;

/// Defines a string newtype whose constructor runs `$check`.
macro_rules! string_id {
    ($(#[$meta:meta])* $name:ident, $what:literal, $max:expr, $check:expr) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Longest accepted value, in bytes.
            pub const MAX_LEN: usize = $max;

            /// Validates and wraps `value`.
            ///
            /// # Errors
            /// [`ProtocolError::InvalidId`] when it is empty, longer than
            /// [`Self::MAX_LEN`] bytes or holds a character the id does not allow.
            pub fn new(value: impl Into<String>) -> Result<Self, ProtocolError> {
                let value = value.into();
                if value.is_empty() {
                    return Err(ProtocolError::InvalidId { what: $what, reason: "must not be empty" });
                }
                if value.len() > Self::MAX_LEN {
                    return Err(ProtocolError::InvalidId {
                        what: $what,
                        reason: concat!("longer than ", stringify!($max), " bytes"),
                    });
                }
                let check: fn(char) -> bool = $check;
                if !value.chars().all(check) {
                    return Err(ProtocolError::InvalidId { what: $what, reason: "has a character that is not allowed" });
                }
                Ok(Self(value))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Unwraps the string.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = ProtocolError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = ProtocolError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::new(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = String::deserialize(deserializer)?;
                Self::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// Printable text: no control characters.
fn printable(c: char) -> bool {
    !c.is_control()
}

/// Letters, digits and `-_.:`: safe in URLs and log lines.
fn token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')
}

string_id!(
    /// A connection's id, unique across the cluster (`auth_ok.clientId`).
    ClientId, "client id", 64, token_char
);
string_id!(
    /// A room's name: 1 to 128 bytes of printable text.
    RoomName, "room name", 128, printable
);
string_id!(
    /// A user's id: the token's `sub`, 1 to 128 bytes of printable text.
    UserId, "user id", 128, printable
);
string_id!(
    /// The id of a stored message (`chat`, `private`, `notification`). Ids sort, as
    /// strings, in the order the server accepted the messages within one room or user.
    MessageId, "message id", 64, token_char
);

/// The `id` a client puts on a request, echoed on its `reply`/`error`: a string or a
/// number, kept exactly as sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    /// A numeric id, kept as the JSON number it was.
    Number(serde_json::Number),
    /// A string id.
    String(String),
}

impl RequestId {
    /// Longest accepted string id, in bytes.
    pub const MAX_LEN: usize = 128;

    /// Reads an id from a JSON value.
    ///
    /// # Errors
    /// [`ProtocolError::BadRequestId`] for anything but a number or a string of at most
    /// [`Self::MAX_LEN`] bytes.
    pub fn from_value(value: serde_json::Value) -> Result<Self, ProtocolError> {
        match value {
            serde_json::Value::Number(n) => Ok(Self::Number(n)),
            serde_json::Value::String(s) if s.len() <= Self::MAX_LEN => Ok(Self::String(s)),
            _ => Err(ProtocolError::BadRequestId),
        }
    }
}

impl From<&str> for RequestId {
    fn from(s: &str) -> Self {
        Self::String(s.to_owned())
    }
}

impl From<u64> for RequestId {
    fn from(n: u64) -> Self {
        Self::Number(n.into())
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(n) => write!(f, "{n}"),
            Self::String(s) => f.write_str(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_are_validated() {
        assert_eq!(RoomName::new("lobby").unwrap().as_str(), "lobby");
        assert!(RoomName::new("").is_err());
        assert!(RoomName::new("a".repeat(129)).is_err());
        assert!(RoomName::new("a".repeat(128)).is_ok());
        assert!(RoomName::new("bad\nname").is_err());
        assert!(RoomName::new("café ☕").is_ok());
    }

    #[test]
    fn client_and_message_ids_allow_only_token_characters() {
        assert!(ClientId::new("c-1_a.b:2").is_ok());
        assert!(ClientId::new("has space").is_err());
        assert!(MessageId::new("0000018c1a2b3c4d").is_ok());
        assert!(MessageId::new("a/b").is_err());
    }

    #[test]
    fn ids_deserialize_with_validation() {
        let ok: UserId = serde_json::from_str("\"alice\"").unwrap();
        assert_eq!(ok.as_str(), "alice");
        let err = serde_json::from_str::<UserId>("\"\"").unwrap_err();
        assert!(err.to_string().contains("user id"), "{err}");
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"alice\"");
    }

    #[test]
    fn request_ids_keep_their_json_form() {
        let n: RequestId = serde_json::from_str("7").unwrap();
        assert_eq!(serde_json::to_string(&n).unwrap(), "7");
        let s: RequestId = serde_json::from_str("\"r-1\"").unwrap();
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"r-1\"");
        assert!(RequestId::from_value(serde_json::json!(true)).is_err());
        assert!(RequestId::from_value(serde_json::json!("x".repeat(129))).is_err());
    }
}
