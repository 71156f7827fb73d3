//! Cache and refresh rules (RFC 8461 §3.3, §5.1, §8.3, §10.2) as pure functions of
//! (what is cached, the time, what DNS or HTTPS just said). The caller does the I/O.
//!
//! The three steps, each a function:
//! 1. [`on_request`]: answer from memory, or say a TXT lookup is needed first;
//! 2. [`on_txt`]: given the TXT outcome, answer or say which id to fetch;
//! 3. [`on_fetch`]: given the fetch outcome, the new state and what is in force.

use crate::policy::{Mode, Policy};
use crate::txt::Discovery;

/// Seconds since the Unix epoch. Passed in; nothing here reads a clock.
pub type UnixTime = u64;

/// Tunables, with the defaults the docs give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    /// With a valid policy cached, how long a TXT answer is trusted before it is re-checked
    /// (off the request path).
    pub txt_grace: u64,
    /// With no valid policy, how long a negative result (no record, DNS failure, failed fetch)
    /// is reused, so a flood of lookups does not flood DNS.
    pub negative_ttl: u64,
    /// After a failed fetch of an id, how long before the same id is fetched again (FETCH-09).
    pub fetch_backoff: u64,
    /// Refresh a cached policy this long after its fetch, even if the id is unchanged (CACHE-08);
    /// at the latest at half its `max_age`.
    pub refresh_interval: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            txt_grace: 60,
            negative_ttl: 60,
            fetch_backoff: 300,
            refresh_interval: 86_400,
        }
    }
}

/// A TXT record's `id`, shared: a cached policy and the TXT answer it was fetched under hold
/// the same allocation.
pub type PolicyId = std::sync::Arc<str>;

/// A policy as cached: the parsed policy, the id it was fetched under, and when (CACHE-01).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedPolicy {
    /// The policy.
    pub policy: Policy,
    /// The TXT `id` it was fetched under.
    pub id: PolicyId,
    /// Time of the last successful fetch of this policy.
    pub fetched_at: UnixTime,
}

impl CachedPolicy {
    /// `fetched_at + max_age`; the entry is invalid from this instant on (CACHE-02).
    pub fn expires_at(&self) -> UnixTime {
        self.fetched_at.saturating_add(self.policy.max_age)
    }

    /// Whether the entry is still in force at `now`.
    pub fn is_valid(&self, now: UnixTime) -> bool {
        now < self.expires_at()
    }

    /// When a background refresh is due (CACHE-08): after `refresh_interval`, or at half of
    /// `max_age` for short-lived policies.
    pub fn refresh_at(&self, settings: &CacheSettings) -> UnixTime {
        let interval = settings.refresh_interval.min(self.policy.max_age / 2);
        self.fetched_at.saturating_add(interval)
    }
}

/// How a TXT lookup at `_mta-sts.<domain>` ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxtLookup {
    /// Exactly one valid record, with this id.
    Found(PolicyId),
    /// Authoritatively nothing usable (DNS-01, TXT-05, TXT-06).
    Absent(Absence),
    /// SERVFAIL, timeout, REFUSED, bogus DNSSEC (DNS-02, DNS-04); the text says which.
    TempFail(Box<str>),
}

/// Why there is no usable record; kept apart for logs and metrics (DNS-03).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Absence {
    /// NXDOMAIN.
    NxDomain,
    /// NOERROR without TXT records.
    NoData,
    /// TXT records exist, but not exactly one valid `v=STSv1` record.
    Discovery(Discovery),
}

/// Why a fetch failed, by the TLS-RPT result type it is reported as (RFC 8460 §4.3.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FetchFailure {
    /// Connect, DNS for the policy host, timeout, non-200, redirect, over the size limit.
    FetchError,
    /// The policy host's certificate failed PKIX validation.
    WebPkiInvalid,
    /// The body or its media type is invalid.
    PolicyInvalid,
}

impl FetchFailure {
    /// The TLS-RPT `result-type`.
    pub fn result_type(self) -> &'static str {
        match self {
            Self::FetchError => "sts-policy-fetch-error",
            Self::WebPkiInvalid => "sts-webpki-invalid",
            Self::PolicyInvalid => "sts-policy-invalid",
        }
    }
}

/// A failed fetch, remembered for back-off (FETCH-09) and alerting (CACHE-09).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedFetch {
    /// The id whose fetch failed.
    pub id: PolicyId,
    /// When.
    pub at: UnixTime,
    /// How, as a TLS-RPT result type.
    pub failure: FetchFailure,
}

/// Everything known about one policy domain.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DomainState {
    /// The last successfully fetched policy; possibly expired, see [`CachedPolicy::is_valid`].
    pub policy: Option<CachedPolicy>,
    /// The last TXT outcome and when it was seen.
    pub txt: Option<(UnixTime, TxtLookup)>,
    /// The last failed fetch since the last success (boxed: rare, and kept out of the size of
    /// every cached entry).
    pub failed_fetch: Option<Box<FailedFetch>>,
}

impl DomainState {
    /// The policy in force at `now`, if any.
    pub fn valid_policy(&self, now: UnixTime) -> Option<&CachedPolicy> {
        self.policy.as_ref().filter(|p| p.is_valid(now))
    }

    fn backed_off(&self, id: &str, now: UnixTime, settings: &CacheSettings) -> bool {
        self.failed_fetch
            .as_ref()
            .is_some_and(|f| &*f.id == id && now < f.at.saturating_add(settings.fetch_backoff))
    }

    fn txt_fresh(&self, now: UnixTime, ttl: u64) -> Option<&TxtLookup> {
        self.txt
            .as_ref()
            .filter(|(at, _)| now < at.saturating_add(ttl))
            .map(|(_, lookup)| lookup)
    }

    /// Whether operators should be alerted (CACHE-09, SEC-03): a valid non-`none` policy whose
    /// latest refresh failed.
    pub fn needs_alert(&self, now: UnixTime) -> bool {
        self.failed_fetch.is_some()
            && self
                .valid_policy(now)
                .is_some_and(|p| p.policy.mode != Mode::None)
    }
}

/// What is in force for a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The state's `policy` applies (it is `Some`).
    Policy(Source),
    /// Deliver as if the domain had no MTA-STS.
    NoPolicy(NoPolicyReason),
    /// Defer delivery: the resolver could not reach a verdict (an internal failure). A zone's
    /// `defer_on_failure` is applied later, by [`crate::decision::decide`].
    Defer(String),
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Policy(Source::Cached) => f.write_str("policy in force (cached)"),
            Self::Policy(Source::Fetched) => f.write_str("policy in force (just fetched)"),
            Self::NoPolicy(NoPolicyReason::NoRecord(_)) => {
                f.write_str("no policy: no usable _mta-sts record")
            }
            Self::NoPolicy(NoPolicyReason::DnsFailure(w)) => {
                write!(
                    f,
                    "no policy: DNS failed ({w}) and nothing is cached (DNS-02)"
                )
            }
            Self::NoPolicy(NoPolicyReason::FetchFailed(fail)) => write!(
                f,
                "no policy: the policy could not be fetched ({}) and nothing is cached (FETCH-10)",
                fail.result_type()
            ),
            Self::Defer(why) => write!(f, "temporary failure: {why}"),
        }
    }
}

/// Where an applied policy came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// From the cache.
    Cached,
    /// Fetched by this lookup.
    Fetched,
}

/// Why no policy applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoPolicyReason {
    /// No usable TXT record (DNS-01, TXT-05, TXT-06).
    NoRecord(Absence),
    /// DNS failed and nothing valid is cached (DNS-02, default setting).
    DnsFailure(String),
    /// A record exists but its policy could not be fetched (FETCH-10).
    FetchFailed(FetchFailure),
}

/// Step 1: what to do with a request, without any I/O if possible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestPlan {
    /// Answer now; nothing to look up.
    Answer(Verdict),
    /// Answer now, and re-check the TXT record off the request path (grace period over, or a
    /// refresh is due).
    AnswerThenRecheck(Verdict),
    /// Nothing valid is known: look up the TXT record, then call [`on_txt`].
    LookupTxt,
}

/// Step 2: what to do after a TXT lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxtPlan {
    /// Decided; no fetch.
    Done(Verdict),
    /// Fetch the policy for `id`, then call [`on_fetch`]. `meanwhile` is what is in force if the
    /// caller answers before the fetch ends.
    Fetch {
        /// The id to fetch.
        id: PolicyId,
        /// What is in force until the fetch ends.
        meanwhile: Verdict,
    },
}

/// Step 1 (CACHE-02, CACHE-03, CACHE-08, FETCH-09).
pub fn on_request(
    state: Option<&DomainState>,
    now: UnixTime,
    settings: &CacheSettings,
) -> RequestPlan {
    let Some(state) = state else {
        return RequestPlan::LookupTxt;
    };
    if state.valid_policy(now).is_some() {
        let verdict = Verdict::Policy(Source::Cached);
        // Only a stale TXT answer starts a re-check; a due refresh (CACHE-08) waits for it, so
        // re-checks (and refresh attempts) stay at one per `txt_grace` even while they fail.
        let recheck = state.txt_fresh(now, settings.txt_grace).is_none();
        return if recheck {
            RequestPlan::AnswerThenRecheck(verdict)
        } else {
            RequestPlan::Answer(verdict)
        };
    }
    // No valid policy: reuse a recent negative answer rather than ask DNS for every message.
    match state.txt_fresh(now, settings.negative_ttl) {
        Some(TxtLookup::Absent(why)) => {
            RequestPlan::Answer(Verdict::NoPolicy(NoPolicyReason::NoRecord(why.clone())))
        }
        Some(TxtLookup::TempFail(why)) => RequestPlan::Answer(dns_failure_verdict(why)),
        Some(TxtLookup::Found(id)) if state.backed_off(id, now, settings) => {
            let failure = state
                .failed_fetch
                .as_ref()
                .map_or(FetchFailure::FetchError, |f| f.failure);
            RequestPlan::Answer(Verdict::NoPolicy(NoPolicyReason::FetchFailed(failure)))
        }
        _ => RequestPlan::LookupTxt,
    }
}

/// Step 2 (CACHE-03, CACHE-04, CACHE-06, CACHE-08, DNS-01, DNS-02, FETCH-09, FETCH-11).
pub fn on_txt(
    state: Option<&DomainState>,
    now: UnixTime,
    lookup: TxtLookup,
    settings: &CacheSettings,
) -> (DomainState, TxtPlan) {
    let mut next = state.cloned().unwrap_or_default();
    let cached = next.valid_policy(now).cloned();
    let plan = match (&lookup, cached) {
        (TxtLookup::Found(id), Some(cached)) => {
            let keep = Verdict::Policy(Source::Cached);
            let changed = *id != cached.id;
            let refresh_due = now >= cached.refresh_at(settings);
            if (changed || refresh_due) && !next.backed_off(id, now, settings) {
                TxtPlan::Fetch {
                    id: id.clone(),
                    meanwhile: keep,
                }
            } else {
                TxtPlan::Done(keep)
            }
        }
        // CACHE-06, DNS-01, DNS-02: losing the record never evicts a valid policy.
        (_, Some(_)) => TxtPlan::Done(Verdict::Policy(Source::Cached)),
        (TxtLookup::Found(id), None) => {
            if next.backed_off(id, now, settings) {
                let failure = next
                    .failed_fetch
                    .as_ref()
                    .map_or(FetchFailure::FetchError, |f| f.failure);
                TxtPlan::Done(Verdict::NoPolicy(NoPolicyReason::FetchFailed(failure)))
            } else {
                TxtPlan::Fetch {
                    id: id.clone(),
                    meanwhile: Verdict::NoPolicy(NoPolicyReason::FetchFailed(
                        FetchFailure::FetchError,
                    )),
                }
            }
        }
        (TxtLookup::Absent(why), None) => {
            TxtPlan::Done(Verdict::NoPolicy(NoPolicyReason::NoRecord(why.clone())))
        }
        (TxtLookup::TempFail(why), None) => TxtPlan::Done(Verdict::NoPolicy(
            NoPolicyReason::DnsFailure(why.to_string()),
        )),
    };
    next.txt = Some((now, lookup));
    (next, plan)
}

/// Whether `state` still needs a TXT re-check (or a refresh fetch) at `now`: a host of a fleet
/// that waited for the shared lock asks this of the shared state, since another host may have
/// just done it. True when a request would re-check or look up, or a valid policy's refresh is
/// due (CACHE-08).
pub fn recheck_due(state: Option<&DomainState>, now: UnixTime, settings: &CacheSettings) -> bool {
    match on_request(state, now, settings) {
        RequestPlan::Answer(_) => state
            .and_then(|s| s.valid_policy(now))
            .is_some_and(|p| now >= p.refresh_at(settings)),
        RequestPlan::AnswerThenRecheck(_) | RequestPlan::LookupTxt => true,
    }
}

/// DNS-02: with nothing valid cached, deliver without MTA-STS (a zone may defer instead, in
/// the decision).
fn dns_failure_verdict(why: &str) -> Verdict {
    Verdict::NoPolicy(NoPolicyReason::DnsFailure(why.to_string()))
}

/// Step 3 (CACHE-04, CACHE-05, CACHE-07, CACHE-12, FETCH-10, FETCH-11, POL-11).
///
/// A fetched policy replaces the cached one whatever its mode: a fetched `mode: none` is the
/// one approved withdrawal (§8.3). A failure never touches the cached policy.
pub fn on_fetch(
    state: Option<&DomainState>,
    now: UnixTime,
    id: &str,
    outcome: Result<Policy, FetchFailure>,
) -> (DomainState, Verdict) {
    let mut next = state.cloned().unwrap_or_default();
    // The TXT answer that asked for this fetch holds the same id: share it.
    let id: PolicyId = match &next.txt {
        Some((_, TxtLookup::Found(seen))) if &**seen == id => seen.clone(),
        _ => id.into(),
    };
    match outcome {
        Ok(policy) => {
            // max_age 0 is stored already expired: it applies to this attempt only (CACHE-12).
            next.policy = Some(CachedPolicy {
                policy,
                id: id.clone(),
                fetched_at: now,
            });
            next.failed_fetch = None;
            (next, Verdict::Policy(Source::Fetched))
        }
        Err(failure) => {
            next.failed_fetch = Some(Box::new(FailedFetch {
                id: id.clone(),
                at: now,
                failure,
            }));
            let verdict = if next.valid_policy(now).is_some() {
                Verdict::Policy(Source::Cached)
            } else {
                Verdict::NoPolicy(NoPolicyReason::FetchFailed(failure))
            };
            (next, verdict)
        }
    }
}
