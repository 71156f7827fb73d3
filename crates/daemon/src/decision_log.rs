//! Which answers are logged, and how often: every answer that defers mail or delivers it
//! without the protection a lookup failure took away is logged with the domain and the
//! reason, at most once per domain per interval (a domain in trouble asked for by every
//! queued message must not flood the log); plain answers only at debug.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mtasts_core::decision::NoPolicy;
use mtasts_core::{Decision, DomainName, Reply};

/// Domains remembered for rate limiting (least recently logged forgotten first).
const REMEMBERED: usize = 10_000;

/// Per-domain rate limit.
#[derive(Debug)]
pub struct DecisionLog {
    interval: Duration,
    last: Mutex<lru::LruCache<DomainName, Instant>>,
}

impl Default for DecisionLog {
    fn default() -> Self {
        Self::new(Duration::from_secs(60))
    }
}

impl DecisionLog {
    /// At most one log line per domain per `interval`.
    pub fn new(interval: Duration) -> Self {
        let cap = NonZeroUsize::new(REMEMBERED).unwrap_or(NonZeroUsize::MIN);
        Self {
            interval,
            last: Mutex::new(lru::LruCache::new(cap)),
        }
    }

    /// Whether a line about `domain` may be logged at `now` (and, if so, records it).
    pub fn allow_at(&self, domain: &DomainName, now: Instant) -> bool {
        let mut last = match self.last.lock() {
            Ok(l) => l,
            Err(p) => p.into_inner(),
        };
        match last.get(domain) {
            Some(at) if now.saturating_duration_since(*at) < self.interval => false,
            _ => {
                last.put(domain.clone(), now);
                true
            }
        }
    }

    /// Logs the answer for `domain`: deferrals at warn, deliveries without MTA-STS because a
    /// lookup failed at info (each rate-limited per domain), everything else at debug.
    pub fn record(&self, domain: &DomainName, decision: &Decision<'_>, reply: &Reply) {
        match decision {
            Decision::Defer(_) => {
                if self.allow_at(domain, Instant::now()) {
                    tracing::warn!(domain = %domain, decision = %decision, reply = %reply, "deferring delivery; Postfix retries later");
                }
            }
            Decision::NoPolicy(NoPolicy::Failure(_)) => {
                if self.allow_at(domain, Instant::now()) {
                    tracing::info!(domain = %domain, decision = %decision, reply = %reply, "no MTA-STS policy in force because a lookup failed; delivering without it");
                }
            }
            _ => {
                tracing::debug!(domain = %domain, decision = %decision, reply = %reply, "answered")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_domain_per_interval() {
        let log = DecisionLog::new(Duration::from_secs(60));
        let (a, b) = (
            DomainName::parse("a.test").unwrap_or_else(|e| panic!("{e}")),
            DomainName::parse("b.test").unwrap_or_else(|e| panic!("{e}")),
        );
        let t0 = Instant::now();
        assert!(log.allow_at(&a, t0));
        assert!(!log.allow_at(&a, t0 + Duration::from_secs(59)));
        assert!(log.allow_at(&b, t0 + Duration::from_secs(59)), "per domain");
        assert!(log.allow_at(&a, t0 + Duration::from_secs(60)));
    }
}
