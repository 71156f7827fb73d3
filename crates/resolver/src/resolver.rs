//! Discovery → cache → fetch → decision, driving the core's pure cache rules with real DNS,
//! HTTPS, stores and a clock.
//!
//! The hot path (a fresh cached answer) reads the memory tier only. Cold lookups of one domain
//! are coalesced by a [`SingleFlight`]: the first reads the backing store and, if that has
//! nothing usable, does the TXT query and fetch; the others wait and then answer from the
//! state it stored. The cold work runs in a spawned task, so a caller that stops waiting (an
//! answer deadline) does not cancel the fetch.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use mtasts_core::cache::Absence;
use mtasts_core::cache::{
    CacheSettings, DomainState, RequestPlan, TxtLookup, TxtPlan, Verdict, on_fetch, on_request,
    on_txt, recheck_due,
};
use mtasts_core::errors::Chain;
use mtasts_core::txt::select_record;
use mtasts_core::{CachedPolicy, DomainName, UnixTime};
use mtasts_store::{AnyStore, EntryMeta, MemoryStore, Store};
use tokio::sync::Semaphore;

use crate::clock::Clock;
use crate::counter::Counter;
use crate::dns::{Dns, TxtAnswer};
use crate::fetch::{Fetch, FetchError};
use crate::single_flight::{Flight, SingleFlight};

/// Resolver tunables.
#[derive(Debug, Clone)]
pub struct ResolverSettings {
    /// The cache rules' tunables.
    pub cache: CacheSettings,
    /// Bound of the memory tier, in domains.
    pub memory_capacity: usize,
    /// Proactive refresh on/off.
    pub refresh: bool,
    /// How often the refresher looks for due entries.
    pub refresh_tick: Duration,
    /// At most this many refreshes at once.
    pub refresh_concurrency: usize,
    /// Each refresh starts after a per-domain delay of up to this, so a fleet does not stampede.
    pub refresh_jitter: Duration,
    /// Fleet lock lifetime (Redis): longer than a fetch can take.
    pub lock_ttl: Duration,
}

impl Default for ResolverSettings {
    fn default() -> Self {
        Self {
            cache: CacheSettings::default(),
            memory_capacity: 100_000,
            refresh: true,
            refresh_tick: Duration::from_secs(30),
            refresh_concurrency: 16,
            refresh_jitter: Duration::from_secs(5),
            lock_ttl: Duration::from_secs(90),
        }
    }
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The memory tier, no I/O.
    Memory,
    /// Looked up now: TXT, and a fetch if needed.
    Network,
}

/// The outcome of one lookup.
#[derive(Debug, Clone)]
pub struct Lookup {
    /// The policy domain.
    pub domain: DomainName,
    /// What is in force.
    pub verdict: Verdict,
    /// The domain's state after the lookup; with [`Verdict::Policy`], its `policy` applies.
    pub state: Option<Arc<DomainState>>,
    /// Whether it was answered from memory or looked up.
    pub origin: Origin,
    /// The fetch error of this lookup, if it fetched and failed.
    pub fetch_error: Option<FetchError>,
    /// What was done, step by step (filled by [`Resolver::lookup_traced`]).
    pub steps: Vec<String>,
}

impl Lookup {
    /// The policy in force, if the verdict applies one.
    pub fn policy(&self) -> Option<&CachedPolicy> {
        match self.verdict {
            Verdict::Policy(_) => self.state.as_ref()?.policy.as_ref(),
            _ => None,
        }
    }
}

/// Counters for metrics.
#[derive(Debug, Default)]
pub struct Stats {
    /// Lookups.
    pub lookups: Counter,
    /// Lookups answered from memory.
    pub memory_answers: Counter,
    /// `_mta-sts` TXT queries sent.
    pub txt_queries: Counter,
    /// Policies fetched.
    pub fetches_ok: Counter,
    /// Fetches that failed.
    pub fetches_failed: Counter,
    /// Reads of the backing store (memory-tier misses).
    pub store_reads: Counter,
    /// Cache backend errors.
    pub store_errors: Counter,
    /// Proactive refreshes run.
    pub refreshes: Counter,
    /// Expired entries pruned from the backing store.
    pub pruned: Counter,
}

struct Inner<D, F> {
    dns: Arc<D>,
    fetcher: F,
    hot: MemoryStore,
    backing: Option<AnyStore>,
    clock: Arc<dyn Clock>,
    settings: ResolverSettings,
    /// One cold lookup or re-check per domain at a time.
    flights: SingleFlight<DomainName>,
    stats: Stats,
    /// Domains whose backing-store write failed, to be written when the store recovers.
    unsaved: Unsaved,
    /// Store errors come in storms when a backend is down: logged at most once per 10 s each.
    throttle: crate::throttle::Throttle,
    /// Where failed fetches are reported (TLS-RPT), if anywhere.
    failure_sink: Option<Arc<dyn crate::events::FailureSink>>,
}

/// The sender-side resolver. Cheap to clone.
pub struct Resolver<D, F> {
    inner: Arc<Inner<D, F>>,
}

impl<D, F> Clone for Resolver<D, F> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<D, F> std::fmt::Debug for Resolver<D, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("hot", &self.inner.hot)
            .field("backing", &self.inner.backing.as_ref().map(AnyStore::kind))
            .finish()
    }
}

impl<D: Dns, F: Fetch> Resolver<D, F> {
    /// A resolver with a memory tier in front of `backing` (none: memory only).
    pub fn new(
        dns: Arc<D>,
        fetcher: F,
        backing: Option<AnyStore>,
        clock: Arc<dyn Clock>,
        settings: ResolverSettings,
    ) -> Self {
        Self::with_sink(dns, fetcher, backing, clock, settings, None)
    }

    /// [`Resolver::new`], reporting failed fetches to `failure_sink`.
    pub fn with_sink(
        dns: Arc<D>,
        fetcher: F,
        backing: Option<AnyStore>,
        clock: Arc<dyn Clock>,
        settings: ResolverSettings,
        failure_sink: Option<Arc<dyn crate::events::FailureSink>>,
    ) -> Self {
        // A memory backing would only duplicate the hot tier.
        let backing = backing.filter(|b| !matches!(b, AnyStore::Memory(_)));
        Self {
            inner: Arc::new(Inner {
                dns,
                fetcher,
                hot: MemoryStore::new(settings.memory_capacity),
                backing,
                clock,
                settings,
                flights: SingleFlight::new(),
                unsaved: Unsaved::default(),
                stats: Stats::default(),
                throttle: crate::throttle::Throttle::default(),
                failure_sink,
            }),
        }
    }

    /// Domains with a lookup or a background re-check under way (0: nothing is in progress
    /// that could still query DNS, fetch or write the store for a request already answered).
    pub fn in_flight(&self) -> usize {
        self.inner.flights.len()
    }

    /// The DNS it asks (front ends that need other records, e.g. Exim's MX list).
    pub fn dns(&self) -> &Arc<D> {
        &self.inner.dns
    }

    /// The backing store behind the memory tier, if any.
    pub fn backing(&self) -> Option<&AnyStore> {
        self.inner.backing.as_ref()
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// The settings in use.
    pub fn settings(&self) -> &ResolverSettings {
        &self.inner.settings
    }

    /// Domains held in the memory tier.
    pub fn memory_len(&self) -> usize {
        self.inner.hot.len()
    }

    /// Domains with a policy in the memory tier, and domains without one (negative results),
    /// each bounded on its own.
    pub fn memory_tiers(&self) -> (usize, usize) {
        (
            self.inner.hot.policies_len(),
            self.inner.hot.negatives_len(),
        )
    }

    /// The policy decision for `domain`.
    pub async fn lookup(&self, domain: &DomainName) -> Lookup {
        self.lookup_with(domain, false).await
    }

    /// [`Resolver::lookup`], recording each step (for `mtasts query`).
    pub async fn lookup_traced(&self, domain: &DomainName) -> Lookup {
        self.lookup_with(domain, true).await
    }

    /// The decision from memory alone, or `None` when DNS is needed (the hot path: no await,
    /// no timer). A due re-check is started in the background as in [`Resolver::lookup`].
    pub fn lookup_now(&self, domain: &DomainName) -> Option<Lookup> {
        let inner = &self.inner;
        let state = inner.hot.get_now(domain)?;
        let plan = on_request(Some(&state), inner.clock.now(), &inner.settings.cache);
        let verdict = match plan {
            RequestPlan::Answer(v) => v,
            RequestPlan::AnswerThenRecheck(v) => {
                self.spawn_recheck(domain.clone());
                v
            }
            RequestPlan::LookupTxt => return None,
        };
        inner.stats.lookups.inc();
        inner.stats.memory_answers.inc();
        Some(Lookup {
            domain: domain.clone(),
            verdict,
            state: Some(state),
            origin: Origin::Memory,
            fetch_error: None,
            steps: Vec::new(),
        })
    }

    async fn lookup_with(&self, domain: &DomainName, trace: bool) -> Lookup {
        let inner = &self.inner;
        inner.stats.lookups.inc();
        // Memory only: the backing store is read under the domain's flight (`cold`), once
        // per cold domain rather than once per waiter.
        let state = inner.hot.get_now(domain);
        let now = inner.clock.now();
        let plan = on_request(state.as_deref(), now, &inner.settings.cache);
        let answer = |verdict, steps: Vec<String>| Lookup {
            domain: domain.clone(),
            verdict,
            state: state.clone(),
            origin: Origin::Memory,
            fetch_error: None,
            steps,
        };
        match plan {
            RequestPlan::Answer(v) => {
                inner.stats.memory_answers.inc();
                answer(v, trace_steps(trace, &["answered from cache"]))
            }
            RequestPlan::AnswerThenRecheck(v) => {
                inner.stats.memory_answers.inc();
                self.spawn_recheck(domain.clone());
                answer(
                    v,
                    trace_steps(
                        trace,
                        &[
                            "answered from cache",
                            "TXT re-check started in the background",
                        ],
                    ),
                )
            }
            RequestPlan::LookupTxt => {
                let this = self.clone();
                let d = domain.clone();
                let task = tokio::spawn(async move { this.cold(&d, trace).await });
                match task.await {
                    Ok(l) => l,
                    Err(e) => Lookup {
                        domain: domain.clone(),
                        verdict: Verdict::Defer(format!("internal error: {e}")),
                        state: None,
                        origin: Origin::Network,
                        fetch_error: None,
                        steps: Vec::new(),
                    },
                }
            }
        }
    }

    async fn cold(&self, domain: &DomainName, trace: bool) -> Lookup {
        let _flight = self.inner.flights.enter(domain).await;
        // Someone else may have done the work while we waited; or the backing store has it.
        let state = self.state(domain).await;
        let now = self.inner.clock.now();
        if let RequestPlan::Answer(v) | RequestPlan::AnswerThenRecheck(v) =
            on_request(state.as_deref(), now, &self.inner.settings.cache)
        {
            self.inner.stats.memory_answers.inc();
            return Lookup {
                domain: domain.clone(),
                verdict: v,
                state,
                origin: Origin::Memory,
                fetch_error: None,
                steps: trace_steps(
                    trace,
                    &["answered from the backing store, or from memory after a concurrent lookup"],
                ),
            };
        }
        self.refresh_locked(domain, state, trace).await
    }

    /// TXT lookup, then fetch if the rules say so; stores the new state. Caller holds the
    /// domain lock.
    async fn refresh_locked(
        &self,
        domain: &DomainName,
        state: Option<Arc<DomainState>>,
        trace: bool,
    ) -> Lookup {
        let inner = &self.inner;
        let mut steps = Vec::new();
        // First contact: look up the policy host's address while the TXT query is out, so a
        // fetch, if needed, starts one round trip sooner.
        let cold = state
            .as_deref()
            .and_then(|s| s.valid_policy(inner.clock.now()))
            .is_none();
        let (txt, prefetched) = if cold {
            let host = domain.policy_host();
            let (txt, addrs) = tokio::join!(self.txt(domain), inner.dns.addresses(&host));
            (txt, Some(addrs))
        } else {
            (self.txt(domain).await, None)
        };
        if trace {
            steps.push(format!(
                "TXT {}: {}",
                domain.mta_sts_txt_name(),
                describe_txt(&txt)
            ));
        }
        let now = inner.clock.now();
        let (next, plan) = on_txt(state.as_deref(), now, txt, &inner.settings.cache);
        let (next, verdict, fetch_error) = match plan {
            TxtPlan::Done(v) => (next, v, None),
            TxtPlan::Fetch { id, .. } => {
                let result = match prefetched {
                    Some(addrs) => inner.fetcher.fetch_with_addresses(domain, addrs).await,
                    None => inner.fetcher.fetch(domain).await,
                };
                let now = inner.clock.now();
                let (outcome, err) = match result {
                    Ok(f) => {
                        inner.stats.fetches_ok.inc();
                        if trace {
                            steps.push(format!(
                                "fetched {} from {} over {}: valid, mode {}",
                                domain.policy_url(),
                                f.peer,
                                f.tls_version,
                                f.parsed.policy.mode
                            ));
                        }
                        (Ok(f.parsed.policy), None)
                    }
                    Err(e) => {
                        inner.stats.fetches_failed.inc();
                        tracing::warn!(domain = %domain, rule = e.rule(), result_type = e.failure().result_type(), error = %Chain(&e), "policy fetch failed");
                        if trace {
                            steps.push(format!(
                                "fetch {} failed [{} / {}]: {}",
                                domain.policy_url(),
                                e.rule(),
                                e.failure().result_type(),
                                Chain(&e)
                            ));
                        }
                        (Err(e.failure()), Some(e))
                    }
                };
                let (next, v) = on_fetch(Some(&next), now, &id, outcome);
                if let (Some(sink), Some(e)) = (&inner.failure_sink, &err) {
                    sink.fetch_failed(domain, e.failure(), next.policy.as_ref());
                }
                (next, v, err)
            }
        };
        let next = Arc::new(next);
        if next.needs_alert(now) {
            tracing::warn!(domain = %domain, "refresh failed; the cached policy stays in force until it expires");
        }
        self.save(domain, next.clone()).await;
        if trace {
            steps.push(format!("decision: {}", describe_verdict(&verdict)));
        }
        Lookup {
            domain: domain.clone(),
            verdict,
            state: Some(next),
            origin: Origin::Network,
            fetch_error,
            steps,
        }
    }

    async fn txt(&self, domain: &DomainName) -> TxtLookup {
        self.inner.stats.txt_queries.inc();
        match self.inner.dns.txt(&domain.mta_sts_txt_name()).await {
            Ok(TxtAnswer::Records(rrset)) => match select_record(&rrset) {
                Ok(record) => TxtLookup::Found(record.id.into()),
                Err(d) => TxtLookup::Absent(Absence::Discovery(d)),
            },
            Ok(TxtAnswer::NxDomain) => TxtLookup::Absent(Absence::NxDomain),
            Ok(TxtAnswer::NoData) => TxtLookup::Absent(Absence::NoData),
            Err(e) => TxtLookup::TempFail(Chain(&e).to_string().into()),
        }
    }

    /// Memory tier, then the backing store (copying a hit into memory).
    async fn state(&self, domain: &DomainName) -> Option<Arc<DomainState>> {
        if let Some(s) = self.inner.hot.get_now(domain) {
            return Some(s);
        }
        let backing = self.inner.backing.as_ref()?;
        self.inner.stats.store_reads.inc();
        match backing.get(domain).await {
            Ok(Some(s)) => {
                self.inner.hot.put_now(domain, s.clone(), self.meta(&s));
                Some(s)
            }
            Ok(None) => None,
            Err(e) => {
                self.inner.stats.store_errors.inc();
                if let Some(suppressed) = self.inner.throttle.allow("cache-read") {
                    tracing::warn!(suppressed, domain = %domain, store = backing.kind(), error = %Chain(&e), "cache read failed; looking the domain up afresh");
                }
                None
            }
        }
    }

    fn meta(&self, state: &DomainState) -> EntryMeta {
        let now = self.inner.clock.now();
        let cache = &self.inner.settings.cache;
        match state.valid_policy(now) {
            Some(p) => EntryMeta {
                refresh_at: Some(p.refresh_at(cache)),
                expires_at: p.expires_at(),
            },
            None => EntryMeta {
                refresh_at: None,
                expires_at: now.saturating_add(cache.negative_ttl.max(cache.fetch_backoff)),
            },
        }
    }

    async fn save(&self, domain: &DomainName, state: Arc<DomainState>) {
        let meta = self.meta(&state);
        self.inner.hot.put_now(domain, state.clone(), meta);
        if let Some(backing) = &self.inner.backing
            && let Err(e) = backing.put(domain, state, meta).await
        {
            self.inner.stats.store_errors.inc();
            self.inner.unsaved.add(domain);
            if let Some(suppressed) = self.inner.throttle.allow("cache-write") {
                tracing::warn!(suppressed, domain = %domain, store = backing.kind(), error = %Chain(&e), "cache write failed; the memory tier keeps the entry and it is written again once the store recovers");
            }
        }
    }

    /// Writes the entries whose write failed (a full disk, Redis down) from the memory tier to
    /// the backing store, stopping at the first failure (the store is still down); how many
    /// were written. Run by the refresher every tick.
    pub async fn retry_unsaved(&self) -> usize {
        let Some(backing) = &self.inner.backing else {
            return 0;
        };
        let mut written = 0;
        for domain in self.inner.unsaved.snapshot() {
            // Evicted from memory since: the next lookup stores it afresh.
            let Some(state) = self.inner.hot.get_now(&domain) else {
                self.inner.unsaved.remove(&domain);
                continue;
            };
            match backing.put(&domain, state.clone(), self.meta(&state)).await {
                Ok(()) => {
                    self.inner.unsaved.remove(&domain);
                    written += 1;
                }
                Err(e) => {
                    self.inner.stats.store_errors.inc();
                    if let Some(suppressed) = self.inner.throttle.allow("cache-rewrite") {
                        tracing::warn!(suppressed, store = backing.kind(), waiting = self.inner.unsaved.len(), error = %Chain(&e), "cache store still failing; entries wait in memory");
                    }
                    break;
                }
            }
        }
        if written > 0 {
            tracing::info!(
                written,
                store = backing.kind(),
                "cache store recovered; entries written"
            );
        }
        written
    }

    /// Entries waiting to be written to the backing store.
    pub fn unsaved_len(&self) -> usize {
        self.inner.unsaved.len()
    }

    /// Starts a background re-check unless one is already under way for the domain: while a
    /// re-check is out, requests neither spawn tasks nor wait.
    fn spawn_recheck(&self, domain: DomainName) {
        let Some(flight) = self.inner.flights.try_enter(&domain) else {
            return;
        };
        let this = self.clone();
        tokio::spawn(async move { this.recheck_in_flight(&domain, flight).await });
    }

    /// Re-checks the TXT record (and fetches if due) unless that is already in progress here
    /// or, with a shared store, on another host.
    async fn recheck(&self, domain: &DomainName) {
        if let Some(flight) = self.inner.flights.try_enter(domain) {
            self.recheck_in_flight(domain, flight).await;
        }
    }

    async fn recheck_in_flight(&self, domain: &DomainName, _flight: Flight<DomainName>) {
        let fleet = self.inner.backing.as_ref();
        let mut shared = None;
        if let Some(b) = fleet {
            match b.try_lock(domain, self.inner.settings.lock_ttl).await {
                Ok(true) => {
                    // Another host may have just refreshed it (and unlocked): the shared store
                    // says, and then its result is taken instead of refreshing again.
                    if let Ok(Some(s)) = b.get(domain).await {
                        let now = self.inner.clock.now();
                        if !recheck_due(Some(&s), now, &self.inner.settings.cache) {
                            self.inner.hot.put_now(domain, s.clone(), self.meta(&s));
                            self.unlock(b, domain).await;
                            return;
                        }
                        shared = Some(s);
                    }
                }
                Ok(false) => {
                    // Another host refreshes it; take its result when it lands.
                    if let Ok(Some(s)) = b.get(domain).await {
                        self.inner.hot.put_now(domain, s.clone(), self.meta(&s));
                    }
                    return;
                }
                Err(e) => {
                    self.inner.stats.store_errors.inc();
                    if let Some(suppressed) = self.inner.throttle.allow("refresh-lock") {
                        tracing::warn!(suppressed, domain = %domain, error = %Chain(&e), "refresh lock unavailable; refreshing locally");
                    }
                }
            }
        }
        let state = match shared {
            Some(s) => Some(s),
            None => self.state(domain).await,
        };
        self.refresh_locked(domain, state, false).await;
        if let Some(b) = fleet {
            self.unlock(b, domain).await;
        }
    }

    async fn unlock(&self, backing: &AnyStore, domain: &DomainName) {
        if let Err(e) = backing.unlock(domain).await {
            tracing::debug!(domain = %domain, error = %Chain(&e), "refresh unlock failed; the lock expires by itself");
        }
    }

    /// Runs one pass of proactive refresh: every entry due by now, at bounded concurrency and
    /// with per-domain jitter. Returns how many were refreshed.
    pub async fn refresh_due(&self) -> usize {
        let now = self.inner.clock.now();
        let limit = 10_000;
        let mut due = self.inner.hot.due(now, limit).await.unwrap_or_default();
        if let Some(b) = &self.inner.backing {
            match b.due(now, limit).await {
                Ok(more) => due.extend(more),
                Err(e) => {
                    self.inner.stats.store_errors.inc();
                    if let Some(suppressed) = self.inner.throttle.allow("due-list") {
                        tracing::warn!(suppressed, error = %Chain(&e), "listing due refreshes failed");
                    }
                }
            }
        }
        due.sort();
        due.dedup();
        let permits = Arc::new(Semaphore::new(
            self.inner.settings.refresh_concurrency.max(1),
        ));
        let mut tasks = tokio::task::JoinSet::new();
        for domain in due {
            let this = self.clone();
            let permits = permits.clone();
            let delay = jitter(&domain, now, self.inner.settings.refresh_jitter);
            tasks.spawn(async move {
                tokio::time::sleep(delay).await;
                let Ok(_permit) = permits.acquire().await else {
                    return;
                };
                this.inner.stats.refreshes.inc();
                this.recheck(&domain).await;
            });
        }
        let mut n = 0;
        while tasks.join_next().await.is_some() {
            n += 1;
        }
        n
    }

    /// Starts the proactive refresher (if enabled); it runs until the runtime stops.
    pub fn spawn_refresher(&self) -> Option<tokio::task::JoinHandle<()>> {
        let refresh = self.inner.settings.refresh;
        if !refresh && self.inner.backing.is_none() {
            return None;
        }
        let this = self.clone();
        Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(this.inner.settings.refresh_tick).await;
                if refresh {
                    let n = this.refresh_due().await;
                    if n > 0 {
                        tracing::info!(refreshed = n, "proactive refresh pass");
                    }
                }
                this.retry_unsaved().await;
                this.prune_expired().await;
            }
        }))
    }

    /// Drops backing-store entries past their expiry (policies past `max_age`, stale
    /// negatives), at most 10,000 per call; how many went.
    pub async fn prune_expired(&self) -> u64 {
        let Some(backing) = &self.inner.backing else {
            return 0;
        };
        match backing.prune(self.inner.clock.now(), 10_000).await {
            Ok(n) => {
                self.inner.stats.pruned.add(n);
                n
            }
            Err(e) => {
                self.inner.stats.store_errors.inc();
                if let Some(suppressed) = self.inner.throttle.allow("prune") {
                    tracing::warn!(suppressed, error = %Chain(&e), "pruning expired cache entries failed");
                }
                0
            }
        }
    }

    /// Flushes the backing store (shutdown).
    pub async fn flush(&self) {
        if let Some(b) = &self.inner.backing
            && let Err(e) = b.flush().await
        {
            tracing::warn!(error = %Chain(&e), "flushing the cache failed");
        }
    }
}

/// The set of domains whose write failed, bounded: past the bound the oldest are forgotten
/// (they stay in memory and are written at their next refresh).
#[derive(Debug)]
struct Unsaved(std::sync::Mutex<lru::LruCache<DomainName, ()>>);

impl Default for Unsaved {
    fn default() -> Self {
        let bound = std::num::NonZeroUsize::new(100_000).unwrap_or(std::num::NonZeroUsize::MIN);
        Self(std::sync::Mutex::new(lru::LruCache::new(bound)))
    }
}

impl Unsaved {
    fn lock(&self) -> std::sync::MutexGuard<'_, lru::LruCache<DomainName, ()>> {
        match self.0.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn add(&self, domain: &DomainName) {
        self.lock().put(domain.clone(), ());
    }

    fn remove(&self, domain: &DomainName) {
        self.lock().pop(domain);
    }

    /// Oldest first.
    fn snapshot(&self) -> Vec<DomainName> {
        self.lock().iter().rev().map(|(d, ())| d.clone()).collect()
    }

    fn len(&self) -> usize {
        self.lock().len()
    }
}

fn jitter(domain: &DomainName, now: UnixTime, max: Duration) -> Duration {
    let max_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    if max_ms == 0 {
        return Duration::ZERO;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (domain, now).hash(&mut h);
    Duration::from_millis(h.finish() % max_ms)
}

fn trace_steps(trace: bool, steps: &[&str]) -> Vec<String> {
    if trace {
        steps.iter().map(|s| s.to_string()).collect()
    } else {
        Vec::new()
    }
}

fn describe_txt(t: &TxtLookup) -> String {
    match t {
        TxtLookup::Found(id) => format!("record with id {id}"),
        TxtLookup::Absent(Absence::NxDomain) => "NXDOMAIN (no record)".into(),
        TxtLookup::Absent(Absence::NoData) => "no TXT data (no record)".into(),
        TxtLookup::Absent(Absence::Discovery(d)) => d.to_string(),
        TxtLookup::TempFail(why) => format!("DNS failure: {why}"),
    }
}

/// One line for a verdict (its `Display`, kept for callers of this name).
pub fn describe_verdict(v: &Verdict) -> String {
    v.to_string()
}
