//! Reconnect delays: exponential backoff with full jitter (AWS architecture blog,
//! "Exponential Backoff And Jitter"): attempt `n` waits a uniformly random time in
//! `[0, min(max, initial * 2^n)]`, so a server restart is not met by every client at once.

/// How the SDK spaces its reconnect attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The ceiling of the first attempt's delay.
    pub initial_delay_ms: u64,
    /// The largest delay.
    pub max_delay_ms: u64,
    /// Attempts before giving up (`None`: never give up).
    pub max_retries: Option<u32>,
    /// Full jitter (the default) or the bare exponential ceiling.
    pub jitter: bool,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial_delay_ms: 500,
            max_delay_ms: 30_000,
            max_retries: None,
            jitter: true,
        }
    }
}

impl Backoff {
    /// The delay before attempt `attempt` (0 for the first retry), given a uniform random
    /// number in `[0, 1)`; `None` once the retries are used up.
    pub fn delay(&self, attempt: u32, random: f64) -> Option<u64> {
        if self.max_retries.is_some_and(|max| attempt >= max) {
            return None;
        }
        let ceiling = self
            .initial_delay_ms
            .checked_shl(attempt.min(63))
            .filter(|d| d >> attempt.min(63) == self.initial_delay_ms)
            .unwrap_or(u64::MAX)
            .min(self.max_delay_ms);
        if !self.jitter {
            return Some(ceiling);
        }
        let random = if random.is_finite() {
            random.clamp(0.0, 1.0)
        } else {
            0.0
        };
        // Truncation is the point: a whole number of milliseconds in [0, ceiling].
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let delay = (random * (ceiling as f64 + 1.0)) as u64;
        Some(delay.min(ceiling))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(max_retries: Option<u32>) -> Backoff {
        Backoff {
            initial_delay_ms: 100,
            max_delay_ms: 1_000,
            max_retries,
            jitter: false,
        }
    }

    #[test]
    fn ceilings_double_up_to_the_maximum() {
        let backoff = plain(None);
        let delays: Vec<_> = (0..6).map(|n| backoff.delay(n, 0.5).unwrap()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1_000, 1_000]);
        // Huge attempt numbers do not overflow.
        assert_eq!(backoff.delay(200, 0.5), Some(1_000));
    }

    #[test]
    fn full_jitter_spans_zero_to_the_ceiling() {
        let backoff = Backoff {
            jitter: true,
            ..plain(None)
        };
        assert_eq!(backoff.delay(2, 0.0), Some(0));
        assert_eq!(backoff.delay(2, 0.5), Some(200));
        assert_eq!(backoff.delay(2, 0.999_999), Some(400));
        assert_eq!(backoff.delay(2, f64::NAN), Some(0));
        assert_eq!(backoff.delay(2, 7.0), Some(400));
    }

    #[test]
    fn retries_stop_after_the_maximum() {
        let backoff = plain(Some(3));
        assert!(backoff.delay(2, 0.5).is_some());
        assert_eq!(backoff.delay(3, 0.5), None);
        assert_eq!(plain(Some(0)).delay(0, 0.5), None);
    }
}
