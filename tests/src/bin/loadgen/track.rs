//! What one subscriber saw of the publisher's sequence (which seqs, how late, in which
//! order), and the sum over all subscribers: deliveries, lost, duplicated, out of order,
//! and the latency percentiles. Latencies are kept exactly (4 bytes each): a run is at
//! most a few million deliveries.

use serde_json::{Value, json};

use crate::procfs::round;

/// Sequence numbers past this are not the publisher's (it sends far fewer): a frame that
/// claims one is counted as garbled instead of growing the bitmap.
const MAX_SEQ: u64 = 1 << 26;

/// One subscriber's view.
#[derive(Debug, Default)]
pub struct Tracker {
    /// Bit `seq` set once `seq` has arrived.
    seen: Vec<u64>,
    highest: Option<u64>,
    pub deliveries: u64,
    pub unique: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub garbled: u64,
    /// Receive time − send time, µs, one per unique delivery.
    pub latencies: Vec<u32>,
    /// Receive time of the last delivery, µs since the epoch.
    pub last_us: u64,
}

impl Tracker {
    /// Records one delivery of `seq`, sent at `t` and received at `now` (µs since the
    /// epoch). Returns whether it was new.
    pub fn record(&mut self, seq: u64, t: u64, now: u64) -> bool {
        if seq >= MAX_SEQ {
            self.garbled += 1;
            return false;
        }
        self.deliveries += 1;
        self.last_us = self.last_us.max(now);
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if word >= self.seen.len() {
            self.seen.resize(word + 1, 0);
        }
        if self.seen[word] & (1 << bit) != 0 {
            self.duplicates += 1;
            return false;
        }
        self.seen[word] |= 1 << bit;
        self.unique += 1;
        if self.highest.is_some_and(|h| seq < h) {
            self.out_of_order += 1;
        }
        self.highest = self.highest.max(Some(seq));
        self.latencies
            .push(u32::try_from(now.saturating_sub(t)).unwrap_or(u32::MAX));
        true
    }
}

/// All subscribers together.
#[derive(Debug, Default)]
pub struct Totals {
    pub subscribers: u64,
    pub deliveries: u64,
    pub unique: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub garbled: u64,
    /// Subscribers that did not get every message.
    pub incomplete: u64,
    pub latencies: Vec<u32>,
    pub last_us: u64,
}

impl Totals {
    /// Adds one subscriber that should have seen `expected` distinct messages.
    pub fn add(&mut self, tracker: Tracker, expected: u64) {
        self.subscribers += 1;
        self.deliveries += tracker.deliveries;
        self.unique += tracker.unique;
        self.duplicates += tracker.duplicates;
        self.out_of_order += tracker.out_of_order;
        self.garbled += tracker.garbled;
        if tracker.unique < expected {
            self.incomplete += 1;
        }
        self.last_us = self.last_us.max(tracker.last_us);
        self.latencies.extend(tracker.latencies);
    }

    /// Messages some subscriber should have had and did not.
    pub fn lost(&self, expected_each: u64) -> u64 {
        (expected_each * self.subscribers).saturating_sub(self.unique)
    }

    pub fn percentiles(&mut self) -> Percentiles {
        self.latencies.sort_unstable();
        Percentiles::of_sorted(&self.latencies)
    }
}

/// Latency percentiles, ms.
#[derive(Debug, Clone, Copy, Default)]
pub struct Percentiles {
    pub samples: usize,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

impl Percentiles {
    /// From sorted µs values (nearest rank).
    pub fn of_sorted(sorted: &[u32]) -> Self {
        let at = |p: f64| {
            let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len().max(1));
            sorted.get(rank - 1).map(|&us| f64::from(us) / 1000.0)
        };
        Self {
            samples: sorted.len(),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: sorted.last().map(|&us| f64::from(us) / 1000.0),
        }
    }

    pub fn to_json(self) -> Value {
        let ms = |v: Option<f64>| v.map(|v| round(v, 3));
        json!({
            "samples": self.samples,
            "p50_ms": ms(self.p50),
            "p90_ms": ms(self.p90),
            "p99_ms": ms(self.p99),
            "max_ms": ms(self.max),
        })
    }

    pub fn describe(&self) -> String {
        let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
        format!(
            "p50 {} / p90 {} / p99 {} / max {} ms ({} samples)",
            ms(self.p50),
            ms(self.p90),
            ms(self.p99),
            ms(self.max),
            self.samples
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_duplicates_gaps_and_disorder() {
        let mut t = Tracker::default();
        for (seq, now) in [(0, 10), (1, 20), (3, 30), (2, 40), (3, 50)] {
            t.record(seq, 0, now);
        }
        assert_eq!(
            (t.deliveries, t.unique, t.duplicates, t.out_of_order),
            (5, 4, 1, 1)
        );
        let mut totals = Totals::default();
        totals.add(t, 5);
        assert_eq!(totals.lost(5), 1);
        assert_eq!(totals.incomplete, 1);
        let p = totals.percentiles();
        assert_eq!((p.p50, p.max), (Some(0.02), Some(0.04)));
    }
}
