//! Rate-limited warnings: the first of a kind is logged, then at most one per interval with
//! how many were suppressed since, so an outage or a flood of bad input cannot flood the log.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Decides, per kind of warning, whether to log it now.
#[derive(Debug)]
pub struct Throttle {
    interval: Duration,
    kinds: Mutex<HashMap<&'static str, Kind>>,
}

#[derive(Debug)]
struct Kind {
    last: Instant,
    suppressed: u64,
}

impl Throttle {
    /// At most one warning of each kind per `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            kinds: Mutex::default(),
        }
    }

    /// `Some(n)`: log this one, saying `n` were suppressed since the last; `None`: suppress it.
    pub fn allow(&self, kind: &'static str) -> Option<u64> {
        self.allow_at(kind, Instant::now())
    }

    /// [`Throttle::allow`] at a given instant (tests).
    pub fn allow_at(&self, kind: &'static str, now: Instant) -> Option<u64> {
        let mut kinds = match self.kinds.lock() {
            Ok(k) => k,
            Err(p) => p.into_inner(),
        };
        match kinds.get_mut(kind) {
            Some(k) if now.saturating_duration_since(k.last) < self.interval => {
                k.suppressed += 1;
                None
            }
            Some(k) => {
                let n = std::mem::take(&mut k.suppressed);
                k.last = now;
                Some(n)
            }
            None => {
                kinds.insert(
                    kind,
                    Kind {
                        last: now,
                        suppressed: 0,
                    },
                );
                Some(0)
            }
        }
    }
}

impl Default for Throttle {
    /// One per kind every 10 s.
    fn default() -> Self {
        Self::new(Duration::from_secs(10))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_then_one_per_interval_with_the_suppressed_count() {
        let t = Throttle::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(t.allow_at("a", t0), Some(0));
        for s in 1..10 {
            assert_eq!(t.allow_at("a", t0 + Duration::from_secs(s)), None);
        }
        assert_eq!(t.allow_at("b", t0), Some(0), "kinds are separate");
        assert_eq!(t.allow_at("a", t0 + Duration::from_secs(10)), Some(9));
        assert_eq!(t.allow_at("a", t0 + Duration::from_secs(11)), None);
    }
}
