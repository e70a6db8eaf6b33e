//! The `compressed` encoding (CONTRACT §6): `"gzip:"` + standard base64 of the gzip of one
//! whole message's JSON. Inflating is always bounded by a caller-given cap so a small
//! frame cannot expand into unbounded memory.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use miniz_oxide::inflate::TINFLStatus;

use crate::ProtocolError;

/// The prefix of every encoded payload.
pub const PREFIX: &str = "gzip:";

/// What the SDK refuses to inflate beyond: 16 MiB.
pub const DEFAULT_INFLATE_LIMIT: usize = 16 << 20;

/// The gzip header we write: magic, deflate, no flags, no mtime, no extra flags, OS
/// unknown (RFC 1952 §2.3).
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
/// Header flags (RFC 1952): header CRC, extra field, file name, comment.
const FHCRC: u8 = 2;
const FEXTRA: u8 = 4;
const FNAME: u8 = 8;
const FCOMMENT: u8 = 16;
/// The gzip trailer's CRC-32. The server checksums every compressed broadcast, so it uses
/// the 16 KiB slice-by-16 tables; the browser SDK only verifies what it inflates, and there
/// the 1 KiB table keeps 15 KiB of high-entropy data out of the download.
#[cfg(not(target_arch = "wasm32"))]
static CRC32: crc::Crc<u32, crc::Table<16>> =
    crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISO_HDLC);
#[cfg(target_arch = "wasm32")]
static CRC32: crc::Crc<u32, crc::Table<1>> =
    crc::Crc::<u32, crc::Table<1>>::new(&crc::CRC_32_ISO_HDLC);
/// miniz_oxide's fastest level, as the server compresses once per broadcast on the hot path.
const LEVEL: u8 = 1;

/// Gzips `json` and returns `"gzip:" + base64`. The gzip framing is written here around
/// miniz_oxide's raw deflate, which keeps std's I/O machinery out of the browser SDK.
pub fn deflate(json: &str) -> String {
    let body = miniz_oxide::deflate::compress_to_vec(json.as_bytes(), LEVEL);
    let mut gz = Vec::with_capacity(HEADER.len() + body.len() + 8);
    gz.extend_from_slice(&HEADER);
    gz.extend_from_slice(&body);
    gz.extend_from_slice(&CRC32.checksum(json.as_bytes()).to_le_bytes());
    // ISIZE is the length modulo 2^32 (RFC 1952): the truncation is the format.
    #[allow(clippy::cast_possible_truncation)]
    gz.extend_from_slice(&(json.len() as u32).to_le_bytes());
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
/// [`ProtocolError::Gzip`] for corrupt input (a bad header, stream, checksum or length, or
/// output that is not UTF-8), and [`ProtocolError::InflateLimit`] past `limit`.
pub fn inflate(data: &str, limit: usize) -> Result<String, ProtocolError> {
    let encoded = data
        .strip_prefix(PREFIX)
        .ok_or(ProtocolError::UnknownEncoding)?;
    let gz = STANDARD
        .decode(encoded)
        .map_err(|e| ProtocolError::Base64(e.to_string()))?;
    let corrupt = |what: &str| ProtocolError::Gzip(what.to_owned());
    let start = body_start(&gz).ok_or_else(|| corrupt("invalid gzip header"))?;
    let end = gz.len().checked_sub(8).filter(|end| *end >= start);
    let end = end.ok_or_else(|| corrupt("truncated gzip data"))?;
    let out = miniz_oxide::inflate::decompress_to_vec_with_limit(&gz[start..end], limit).map_err(
        |e| match e.status {
            TINFLStatus::HasMoreOutput => ProtocolError::InflateLimit { limit },
            _ => corrupt("corrupt deflate stream"),
        },
    )?;
    let trailer = &gz[end..];
    let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let size = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
    // ISIZE is the length modulo 2^32.
    #[allow(clippy::cast_possible_truncation)]
    if CRC32.checksum(&out) != crc || out.len() as u32 != size {
        return Err(corrupt("gzip checksum or length mismatch"));
    }
    String::from_utf8(out).map_err(|e| ProtocolError::Gzip(e.to_string()))
}

/// Where the deflate stream starts, past the gzip header and its optional fields.
fn body_start(gz: &[u8]) -> Option<usize> {
    let header = gz.get(..10)?;
    if header[..3] != [0x1f, 0x8b, 8] {
        return None;
    }
    let flags = header[3];
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let len = gz.get(at..at + 2)?;
        at += 2 + usize::from(u16::from_le_bytes([len[0], len[1]]));
    }
    for field in [FNAME, FCOMMENT] {
        if flags & field != 0 {
            at += gz.get(at..)?.iter().position(|b| *b == 0)? + 1;
        }
    }
    if flags & FHCRC != 0 {
        at += 2;
    }
    (at <= gz.len()).then_some(at)
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
    fn reads_what_a_reference_gzip_writes_and_the_reverse() {
        use std::io::{Read, Write};
        let json = format!(r#"{{"type":"x","data":"{}"}}"#, "reference ".repeat(300));
        // flate2 with a file name and comment, as other gzip writers may add.
        let mut encoder = flate2::GzBuilder::new()
            .filename("m.json")
            .comment("from a reference encoder")
            .write(Vec::new(), flate2::Compression::best());
        encoder.write_all(json.as_bytes()).unwrap();
        let theirs = format!("{PREFIX}{}", STANDARD.encode(encoder.finish().unwrap()));
        assert_eq!(inflate(&theirs, DEFAULT_INFLATE_LIMIT).unwrap(), json);

        let ours = STANDARD.decode(&deflate(&json)[PREFIX.len()..]).unwrap();
        let mut decoded = String::new();
        flate2::read::GzDecoder::new(ours.as_slice())
            .read_to_string(&mut decoded)
            .unwrap();
        assert_eq!(decoded, json);
    }

    #[test]
    fn corrupt_checksums_and_truncation_are_errors() {
        let mut gz = STANDARD
            .decode(&deflate("{\"type\":\"x\"}")[PREFIX.len()..])
            .unwrap();
        let last = gz.len() - 5;
        gz[last] ^= 1;
        let flipped = format!("{PREFIX}{}", STANDARD.encode(&gz));
        assert!(matches!(
            inflate(&flipped, 100),
            Err(ProtocolError::Gzip(_))
        ));
        gz.truncate(12);
        let truncated = format!("{PREFIX}{}", STANDARD.encode(&gz));
        assert!(matches!(
            inflate(&truncated, 100),
            Err(ProtocolError::Gzip(_))
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
