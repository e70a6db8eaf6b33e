//! Between wire ids and the `seq` column. The PostgreSQL store keeps a message's number,
//! not its text; but the trait's bounds (`before`, `since`, `through`, cursors) are any
//! [`MessageId`] a client sent, compared as strings. Every id this store assigns is
//! `sequence_id(seq)`, 16 lowercase hex digits, and those compare as strings exactly as
//! their numbers do; so for any string `x`, the seqs whose id is below `x` are the ones
//! below some number, computed here. A bound then becomes an integer range over the
//! primary key, with exactly the answers SQLite's string comparisons give.
//!
//! Seqs are BIGINTs, `1..=i64::MAX`, so every bound is a last seq clamped to
//! `-1..=i64::MAX` (`-1`: none), which stays exact at both ends.

use roomcast_protocol::MessageId;

/// The digits of a wire id, in their byte order.
const DIGITS: &[u8; 16] = b"0123456789abcdef";
/// The number of digits in a wire id.
const WIDTH: usize = 16;

/// The seq `id` is the wire form of, if it is one this store can have assigned.
pub(super) fn exact(id: &MessageId) -> Option<i64> {
    let text = id.as_str();
    if text.len() != WIDTH || !text.bytes().all(|b| DIGITS.contains(&b)) {
        return None;
    }
    i64::from_str_radix(text, 16).ok()
}

/// The greatest seq whose wire id sorts strictly before `id` (-1 when none does).
pub(super) fn last_below(id: &MessageId) -> i64 {
    last(count_below(id.as_str()))
}

/// The greatest seq whose wire id sorts before `id` or is `id` (-1 when none does).
pub(super) fn last_at_or_below(id: &MessageId) -> i64 {
    let equal = id.as_str().len() == WIDTH && id.as_str().bytes().all(|b| DIGITS.contains(&b));
    last(count_below(id.as_str()) + u128::from(equal))
}

/// The seq before the `count`th, clamped to a BIGINT.
fn last(count: u128) -> i64 {
    i64::try_from(count).map_or(i64::MAX, |n| n - 1)
}

/// How many 16-digit wire ids (of every u64, so at most 2^64) sort strictly before `x`:
/// digit by digit, the ids that share `x`'s prefix so far and have a smaller digit next
/// are all below it; a byte that is no digit ends the count there, as does the end of
/// `x` (the ids that extend it are longer, so above).
fn count_below(x: &str) -> u128 {
    let bytes = x.as_bytes();
    let mut count = 0_u128;
    for (position, weight) in (0..WIDTH).zip((0..WIDTH).rev().map(|p| 16_u128.pow(p as u32))) {
        let Some(&byte) = bytes.get(position) else {
            return count;
        };
        let smaller = DIGITS.iter().filter(|&&digit| digit < byte).count();
        count += smaller as u128 * weight;
        if !DIGITS.contains(&byte) {
            return count;
        }
    }
    // `x` starts with a whole wire id, which is below `x` when `x` goes on.
    count + u128::from(bytes.len() > WIDTH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sequence_id;

    fn id(text: &str) -> MessageId {
        MessageId::new(text).expect("valid message id")
    }

    /// Seqs around every boundary the arithmetic has.
    fn seqs() -> Vec<i64> {
        let mut seqs: Vec<i64> = (0..40).collect();
        for p in [4, 8, 15, 16, 31, 32, 60, 62] {
            let edge = 1_i64 << p;
            seqs.extend([edge - 1, edge, edge + 1]);
        }
        seqs.extend([0x0fff_ffff_ffff_ffff, i64::MAX - 1, i64::MAX]);
        seqs
    }

    #[test]
    fn bounds_agree_with_comparing_the_wire_ids_as_strings() {
        let mut bounds: Vec<String> = seqs()
            .into_iter()
            .map(|s| sequence_id(u64::try_from(s).expect("non-negative")).to_string())
            .collect();
        bounds.extend(
            [
                "0",
                "1",
                "00000000000000",
                "000000000000000g",
                "0000000000000005x",
                "00000000000000050",
                "0000000000000005",
                "0000000000000A00",
                "A",
                "Z",
                "_",
                "-",
                ".",
                ":",
                "g",
                "zzzz",
                "8000000000000000",
                "ffffffffffffffff",
                "ffffffffffffffffff",
                "7fffffffffffffff0",
                "00000000000000:1",
            ]
            .map(str::to_owned),
        );
        for bound in &bounds {
            let below = last_below(&id(bound));
            let at_or_below = last_at_or_below(&id(bound));
            for seq in seqs() {
                let wire = sequence_id(u64::try_from(seq).expect("non-negative"));
                assert_eq!(
                    wire.as_str() < bound.as_str(),
                    seq <= below,
                    "{wire} < {bound}: last below is {below}"
                );
                assert_eq!(
                    wire.as_str() <= bound.as_str(),
                    seq <= at_or_below,
                    "{wire} <= {bound}: last at or below is {at_or_below}"
                );
            }
        }
    }

    #[test]
    fn only_a_wire_id_in_range_is_exact() {
        assert_eq!(exact(&id("0000000000000005")), Some(5));
        assert_eq!(exact(&id("7fffffffffffffff")), Some(i64::MAX));
        for other in [
            "8000000000000000",
            "000000000000005",
            "000000000000000A",
            "x",
            "5",
        ] {
            assert_eq!(exact(&id(other)), None, "{other}");
        }
    }
}
