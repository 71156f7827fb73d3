//! When a sending MTA builds a day's TLS report and when it tries again (RFC 8460 §4.1:
//! one whole UTC day, sent after a randomised delay; §5.5: retry with exponential back-off
//! for up to 24 hours). Pure: the caller brings the clock.

use crate::cache::UnixTime;

/// Seconds in a UTC day.
pub const DAY: u64 = 86_400;

/// The sending schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// The most a report waits after its day ended (JSON-10: e.g. up to 4 h), spread per
    /// domain so that receivers are not all hit at midnight.
    pub max_delay: u64,
    /// The wait after the first failed attempt; doubled after each further one.
    pub first_retry: u64,
    /// The longest wait between two attempts.
    pub max_retry: u64,
    /// How long after the first attempt a delivery is given up (RETRY-01: 24 h).
    pub retry_for: u64,
}

impl Default for Schedule {
    fn default() -> Self {
        Self {
            max_delay: 4 * 3600,
            first_retry: 300,
            max_retry: 4 * 3600,
            retry_for: DAY,
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try again at this time.
    RetryAt(UnixTime),
    /// The retry window is over: stop (and say so).
    GiveUp,
}

impl Schedule {
    /// When the report of the day starting at `day_start` is built: after the day ended,
    /// plus `spread` (any number, e.g. a hash of the domain) folded into `0..=max_delay`.
    pub fn build_at(&self, day_start: UnixTime, spread: u64) -> UnixTime {
        day_start + DAY + spread % (self.max_delay + 1)
    }

    /// After failed attempt number `attempts` (1 for the first) at `now`, the first attempt
    /// having been at `first_attempt`.
    pub fn after_failure(
        &self,
        first_attempt: UnixTime,
        attempts: u32,
        now: UnixTime,
    ) -> AfterFailure {
        let wait = self
            .first_retry
            .saturating_mul(1u64 << attempts.saturating_sub(1).min(32))
            .min(self.max_retry);
        let at = now.saturating_add(wait);
        if at > first_attempt.saturating_add(self.retry_for) {
            AfterFailure::GiveUp
        } else {
            AfterFailure::RetryAt(at)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_waits_for_its_day_to_end_and_at_most_the_delay() {
        let s = Schedule::default();
        let day = 1_764_460_800; // 2025-11-30T00:00:00Z
        assert_eq!(s.build_at(day, 0), day + DAY);
        assert_eq!(s.build_at(day, 4 * 3600), day + DAY + 4 * 3600);
        assert_eq!(s.build_at(day, 4 * 3600 + 1), day + DAY);
        assert!((0..10_000).all(|h| s.build_at(day, h * 7919) <= day + DAY + 4 * 3600));
    }

    #[test]
    fn retries_back_off_exponentially_and_stop_after_a_day() {
        let s = Schedule::default();
        let t0 = 1_000_000;
        let mut now = t0;
        let mut waits = Vec::new();
        let mut attempts = 1;
        while let AfterFailure::RetryAt(at) = s.after_failure(t0, attempts, now) {
            waits.push(at - now);
            now = at;
            attempts += 1;
        }
        assert_eq!(waits[..6], [300, 600, 1200, 2400, 4800, 9600]);
        assert!(waits.iter().all(|w| *w <= 4 * 3600));
        // Never past the window; the last retry is inside it.
        assert!(now <= t0 + DAY);
        assert!(now + 4 * 3600 > t0 + DAY);
        assert_eq!(s.after_failure(t0, 1000, t0 + DAY), AfterFailure::GiveUp);
    }
}
