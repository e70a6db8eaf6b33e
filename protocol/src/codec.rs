//! The `compressed` encoding (CONTRACT §6): `"gzip:"` + standard base64 of the gzip of one
//! whole message's JSON. Inflating is always bounded by a caller-given cap so a small
//! frame cannot expand into unbounded memory.

use std::io::{Read, Write};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use crate::ProtocolError;

/// The prefix of every encoded payload.
pub const PREFIX: &str = "gzip:";

/// What the SDK refuses to inflate beyond: 16 MiB.
pub const DEFAULT_INFLATE_LIMIT: usize = 16 << 20;

/// Gzips `json` and returns `"gzip:" + base64`.
pub fn deflate(json: &str) -> String {
    let mut encoder = GzEncoder::new(Vec::with_capacity(json.len() / 3 + 32), Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(json.as_bytes());
    let gz = encoder.finish().unwrap_or_default();
    let mut out = String::with_capacity(PREFIX.len() + gz.len().div_ceil(3) * 4);
    out.push_str(PREFIX);
    STANDARD.encode_string(&gz, &mut out);
    out
}

/// Decodes `"gzip:" + base64` back into the message's JSON text, refusing to produce more
/// than `limit` bytes.
///
/// # Errors
/// [`ProtocolError::UnknownEncoding`] without the prefix, [`ProtocolError::Base64`],
/// [`ProtocolError::Gzip`] for corrupt input (or output that is not UTF-8), and
/// [`ProtocolError::InflateLimit`] past `limit`.
pub fn inflate(data: &str, limit: usize) -> Result<String, ProtocolError> {
    let encoded = data
        .strip_prefix(PREFIX)
        .ok_or(ProtocolError::UnknownEncoding)?;
    let gz = STANDARD
        .decode(encoded)
        .map_err(|e| ProtocolError::Base64(e.to_string()))?;
    let mut out = Vec::new();
    // Read one byte past the cap so "exactly at the cap" and "over it" can be told apart.
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    GzDecoder::new(gz.as_slice())
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| ProtocolError::Gzip(e.to_string()))?;
    if out.len() > limit {
        return Err(ProtocolError::InflateLimit { limit });
    }
    String::from_utf8(out).map_err(|e| ProtocolError::Gzip(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let json = r#"{"type":"chat","message":"hello hello hello hello"}"#;
        let encoded = deflate(json);
        assert!(encoded.starts_with("gzip:"));
        assert_eq!(inflate(&encoded, 1024).unwrap(), json);
    }

    #[test]
    fn compresses_repetitive_payloads() {
        let json = format!(r#"{{"type":"x","data":"{}"}}"#, "a".repeat(10_000));
        assert!(deflate(&json).len() < 500);
    }

    #[test]
    fn enforces_the_inflate_cap() {
        let json = "x".repeat(2_000);
        let encoded = deflate(&json);
        assert_eq!(inflate(&encoded, 2_000).unwrap().len(), 2_000);
        assert!(matches!(
            inflate(&encoded, 1_999),
            Err(ProtocolError::InflateLimit { limit: 1_999 })
        ));
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(
            inflate("deflate:abc", 10),
            Err(ProtocolError::UnknownEncoding)
        ));
        assert!(matches!(
            inflate("gzip:!!!", 10),
            Err(ProtocolError::Base64(_))
        ));
        assert!(matches!(
            inflate("gzip:aGVsbG8=", 10),
            Err(ProtocolError::Gzip(_))
        ));
    }
}
