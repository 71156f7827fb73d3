//! DANE checks for a destination domain: MX and TLSA lookups with DNSSEC status, decided by
//! `mtasts_core::dane`, cached briefly, and a warning when a domain moves from DANE to none.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use mtasts_core::dane::{Answer, DaneDecision, DnssecStatus, decide, tlsa_name};
use mtasts_core::{DomainName, UnixTime};

use crate::clock::{Clock, SystemClock};
use crate::dnssec::DnssecClient;

/// How long decisions are reused.
#[derive(Debug, Clone)]
pub struct DaneSettings {
    /// DANE applies (`dane-only`/`dane`).
    pub positive_ttl: Duration,
    /// DANE does not apply.
    pub negative_ttl: Duration,
    /// A DNSSEC failure: retried soon.
    pub failure_ttl: Duration,
}

impl Default for DaneSettings {
    fn default() -> Self {
        Self {
            positive_ttl: Duration::from_secs(300),
            negative_ttl: Duration::from_secs(60),
            failure_ttl: Duration::from_secs(10),
        }
    }
}

#[derive(Debug)]
struct Entry {
    decision: Arc<DaneDecision>,
    /// Reused while the clock is before this.
    until: UnixTime,
}

/// Decides and caches per domain. Cheap to clone.
#[derive(Clone)]
pub struct DaneResolver {
    client: DnssecClient,
    settings: DaneSettings,
    clock: Arc<dyn Clock>,
    // Read on every request (hot path): a read lock and an Arc clone, no allocation.
    cache: Arc<RwLock<HashMap<DomainName, Entry>>>,
    locks: Arc<Mutex<HashMap<DomainName, Arc<tokio::sync::Mutex<()>>>>>,
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
        Self {
            client,
            settings,
            clock: Arc::new(SystemClock),
            cache: Arc::default(),
            locks: Arc::default(),
        }
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
            .get(domain)
            .filter(|e| e.until > now)
            .map(|e| e.decision.clone())
    }

    /// The DANE decision for `domain`, from cache or DNS. Concurrent calls share one lookup.
    pub async fn check(&self, domain: &DomainName) -> Arc<DaneDecision> {
        if let Some(d) = self.cached(domain) {
            return d;
        }
        let lock = {
            let mut locks = match self.locks.lock() {
                Ok(l) => l,
                Err(p) => p.into_inner(),
            };
            if locks.len() > 1024 {
                locks.retain(|_, l| Arc::strong_count(l) > 1);
            }
            locks.entry(domain.clone()).or_default().clone()
        };
        let _held = lock.lock().await;
        if let Some(d) = self.cached(domain) {
            return d;
        }
        let decision = Arc::new(self.lookup(domain).await);
        let ttl = match *decision {
            DaneDecision::DaneOnly | DaneDecision::Dane(_) => self.settings.positive_ttl,
            DaneDecision::NotApplicable(_) => self.settings.negative_ttl,
            // A finding this version does not know: re-check soon.
            _ => self.settings.failure_ttl,
        };
        if let Ok(mut cache) = self.cache.write() {
            let previous = cache.insert(
                domain.clone(),
                Entry {
                    decision: decision.clone(),
                    until: self.clock.now().saturating_add(ttl.as_secs()),
                },
            );
            if let (Some(prev), DaneDecision::NotApplicable(why)) = (previous, &*decision)
                && matches!(
                    *prev.decision,
                    DaneDecision::DaneOnly | DaneDecision::Dane(_)
                )
            {
                tracing::warn!(domain = %domain, reason = %why, "DANE no longer applies: possible downgrade attack, or the domain withdrew DANE");
            }
            if cache.len() > 100_000 {
                let now = self.clock.now();
                cache.retain(|_, e| e.until > now);
            }
        }
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
            let owner = tlsa_name(host);
            tasks.spawn(async move { (i, client.tlsa(&owner).await) });
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
