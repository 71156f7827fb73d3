//! DANE checks for a destination domain: MX and TLSA lookups with DNSSEC status, decided by
//! `mtasts_core::dane`, cached briefly in a bounded LRU, and a warning when a domain moves
//! from DANE to none. When DNS gives no answer at all, the last verdict seen for the domain
//! (within `last_verdict_ttl`) stands in for it, so an outage never weakens the answer.

use std::num::NonZeroUsize;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use mtasts_core::dane::{Answer, DaneDecision, DnssecStatus, decide};
use mtasts_core::{DomainName, UnixTime};

use crate::clock::{Clock, SystemClock};
use crate::dnssec::DnssecClient;
use crate::single_flight::SingleFlight;

/// How long decisions are reused.
#[derive(Debug, Clone)]
pub struct DaneSettings {
    /// DANE applies (`dane-only`/`dane`).
    pub positive_ttl: Duration,
    /// DANE does not apply.
    pub negative_ttl: Duration,
    /// A DNSSEC failure: retried soon.
    pub failure_ttl: Duration,
    /// How long the last verdict (DANE or not) stands in while DNS gives no answer.
    pub last_verdict_ttl: Duration,
    /// Domains remembered (least recently decided go first).
    pub capacity: usize,
}

impl Default for DaneSettings {
    fn default() -> Self {
        Self {
            positive_ttl: Duration::from_secs(300),
            negative_ttl: Duration::from_secs(60),
            failure_ttl: Duration::from_secs(10),
            last_verdict_ttl: Duration::from_secs(7 * 86_400),
            capacity: 100_000,
        }
    }
}

#[derive(Debug)]
struct Entry {
    decision: Arc<DaneDecision>,
    /// Reused while the clock is before this.
    until: UnixTime,
    /// The last verdict DNS gave (not a failure), and when.
    last: Option<(Arc<DaneDecision>, UnixTime)>,
}

/// A verdict DNS actually gave, as opposed to a failure to get one.
fn is_verdict(d: &DaneDecision) -> bool {
    matches!(
        d,
        DaneDecision::DaneOnly | DaneDecision::Dane(_) | DaneDecision::NotApplicable(_)
    )
}

/// Decides and caches per domain. Cheap to clone.
#[derive(Clone)]
pub struct DaneResolver {
    client: DnssecClient,
    settings: DaneSettings,
    clock: Arc<dyn Clock>,
    // Read on every request (hot path): a read lock, a peek and an Arc clone, no allocation.
    cache: Arc<RwLock<lru::LruCache<DomainName, Entry>>>,
    flights: SingleFlight<DomainName>,
    downgrades: Arc<crate::Counter>,
}

impl std::fmt::Debug for DaneResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaneResolver")
            .field("client", &self.client)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl DaneResolver {
    /// Checks through `client`, on the system clock.
    pub fn new(client: DnssecClient, settings: DaneSettings) -> Self {
        let capacity = NonZeroUsize::new(settings.capacity.max(1)).unwrap_or(NonZeroUsize::MIN);
        Self {
            client,
            settings,
            clock: Arc::new(SystemClock),
            cache: Arc::new(RwLock::new(lru::LruCache::new(capacity))),
            flights: SingleFlight::new(),
            downgrades: Arc::new(crate::Counter::default()),
        }
    }

    /// Times a domain went from DANE to "DANE does not apply" (each one logged as a warning).
    pub fn downgrades(&self) -> u64 {
        self.downgrades.get()
    }

    /// Domains remembered.
    pub fn len(&self) -> usize {
        self.cache.read().map(|c| c.len()).unwrap_or(0)
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The same, on `clock` (tests: a [`crate::ManualClock`]).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// A still-valid cached decision, without I/O (the hot path).
    pub fn cached(&self, domain: &DomainName) -> Option<Arc<DaneDecision>> {
        let cache = self.cache.read().ok()?;
        let now = self.clock.now();
        cache
            .peek(domain)
            .filter(|e| e.until > now)
            .map(|e| e.decision.clone())
    }

    /// The DANE decision for `domain`, from cache or DNS. Concurrent calls share one lookup.
    pub async fn check(&self, domain: &DomainName) -> Arc<DaneDecision> {
        if let Some(d) = self.cached(domain) {
            return d;
        }
        let _flight = self.flights.enter(domain).await;
        if let Some(d) = self.cached(domain) {
            return d;
        }
        let looked_up = Arc::new(self.lookup(domain).await);
        let now = self.clock.now();
        let Ok(mut cache) = self.cache.write() else {
            return looked_up;
        };
        let previous = cache.pop(domain);
        let last = previous
            .as_ref()
            .and_then(|p| p.last.clone())
            .filter(|(_, at)| now < at.saturating_add(self.settings.last_verdict_ttl.as_secs()));
        let decision = match (&*looked_up, &last) {
            // DNS gave nothing: the last verdict stands in, never a weaker answer.
            (DaneDecision::Unavailable(why), Some((verdict, at))) => {
                tracing::warn!(domain = %domain, reason = %why, last = verdict.code(), last_seen = at, "DNS unavailable for the DANE check; using the last verdict");
                verdict.clone()
            }
            _ => looked_up.clone(),
        };
        let ttl = if is_verdict(&looked_up) {
            match *looked_up {
                DaneDecision::NotApplicable(_) => self.settings.negative_ttl,
                _ => self.settings.positive_ttl,
            }
        } else {
            // A failure, or the last verdict standing in for one: re-check soon.
            self.settings.failure_ttl
        };
        if let (Some(prev), DaneDecision::NotApplicable(why)) = (&previous, &*looked_up)
            && matches!(
                *prev.decision,
                DaneDecision::DaneOnly | DaneDecision::Dane(_)
            )
        {
            self.downgrades.inc();
            tracing::warn!(domain = %domain, reason = %why, "DANE no longer applies: possible downgrade attack, or the domain withdrew DANE");
        }
        let last = if is_verdict(&looked_up) {
            Some((looked_up.clone(), now))
        } else {
            last
        };
        cache.put(
            domain.clone(),
            Entry {
                decision: decision.clone(),
                until: now.saturating_add(ttl.as_secs()),
                last,
            },
        );
        decision
    }

    async fn lookup(&self, domain: &DomainName) -> DaneDecision {
        let mx = self.client.mx(domain.as_str()).await;
        // No MX (authenticated or not): the domain itself is the host (RFC 7672 §2.2.2).
        let hosts: Vec<String> = if mx.records.is_empty()
            && matches!(mx.status, DnssecStatus::Secure | DnssecStatus::Insecure)
        {
            vec![domain.to_string()]
        } else {
            mx.records.clone()
        };
        if mx.status != DnssecStatus::Secure {
            return decide(&mx, &[]);
        }
        let mut tasks = tokio::task::JoinSet::new();
        for (i, host) in hosts.iter().enumerate() {
            let client = self.client.clone();
            let host = host.clone();
            tasks.spawn(async move { (i, client.host_tlsa(&host).await.1) });
        }
        let mut answers: Vec<Option<Answer<_>>> = vec![None; hosts.len()];
        while let Some(joined) = tasks.join_next().await {
            if let Ok((i, answer)) = joined {
                answers[i] = Some(answer);
            }
        }
        let hosts_tlsa: Vec<_> = hosts
            .into_iter()
            .zip(answers)
            .map(|(h, a)| {
                let a = a.unwrap_or(Answer {
                    status: DnssecStatus::Indeterminate,
                    records: Vec::new(),
                });
                (h, a)
            })
            .collect();
        let mx_for_decision = Answer {
            status: mx.status,
            records: hosts_tlsa.iter().map(|(h, _)| h.clone()).collect(),
        };
        decide(&mx_for_decision, &hosts_tlsa)
    }
}
