//! Remembered TLS: an HSTS-like memory of which domains' MX hosts did STARTTLS, so a later
//! plaintext downgrade can be refused where neither DANE nor MTA-STS protects the domain.
//!
//! Pure: observations go in with their time, the state comes out for a given `now`. The rule:
//! a domain is **remembered** once every delivery observed over at least `min_span`, and at
//! least `min_deliveries` of them, used TLS; a plaintext delivery while learning starts the
//! count again. It is **forgotten** when no TLS delivery was seen for `max_age` (as HSTS's
//! max-age), or when an operator forgets or exempts it. A plaintext delivery to a remembered
//! domain is a possible downgrade: counted and reported, and the memory stays (an attacker
//! stripping STARTTLS must not be able to erase it).

use serde::{Deserialize, Serialize};

use crate::cache::UnixTime;

const DAY: u64 = 86_400;

/// When a domain becomes remembered and when it is forgotten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// TLS deliveries needed (with no plaintext one among them).
    pub min_deliveries: u64,
    /// Time from the first to the last of them.
    pub min_span: u64,
    /// Forgotten this long after the last TLS delivery.
    pub max_age: u64,
}

impl Default for Rule {
    /// 10 deliveries over 7 days: one lucky week of a flaky receiver does not pin it, and a
    /// domain mailed daily is protected within a week. Forgotten 30 days after the last TLS
    /// delivery: a receiver that drops TLS for good defers mail at most that long under
    /// `enforce` (Postfix bounces after its queue lifetime, 5 days by default), unless
    /// exempted sooner.
    fn default() -> Self {
        Self {
            min_deliveries: 10,
            min_span: 7 * DAY,
            max_age: 30 * DAY,
        }
    }
}

/// What a delivery attempt showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// The session used TLS (whatever its certificate).
    Tls,
    /// The message went in plaintext, or STARTTLS was not offered.
    Plaintext,
}

/// One domain's memory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memory {
    /// The first TLS delivery of the current all-TLS run.
    pub first_tls: Option<UnixTime>,
    /// The last TLS delivery.
    pub last_tls: Option<UnixTime>,
    /// TLS deliveries in the current run.
    pub tls_deliveries: u64,
    /// When the domain became remembered (`None`: learning).
    pub remembered_since: Option<UnixTime>,
    /// Plaintext deliveries while remembered (possible downgrades), ever.
    pub downgrades: u64,
    /// The last plaintext delivery.
    pub last_plaintext: Option<UnixTime>,
    /// Taken from a preload list: remembered until this time whatever was observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preloaded_until: Option<UnixTime>,
}

/// What an observation changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Counted; nothing else changed.
    Counted,
    /// The domain became remembered.
    Remembered,
    /// A plaintext delivery while learning: the count starts again.
    Reset,
    /// A plaintext delivery to a remembered domain.
    Downgrade,
}

/// Where a domain stands at some time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum State {
    /// Not (yet) remembered: `deliveries` TLS deliveries since `since`.
    Learning {
        /// TLS deliveries in the current run.
        deliveries: u64,
        /// Its first, if any.
        since: Option<UnixTime>,
    },
    /// TLS is required until `until` (extended by every TLS delivery).
    Remembered {
        /// Since when.
        since: UnixTime,
        /// Until when, without a new TLS delivery.
        until: UnixTime,
        /// From a preload list rather than observed.
        preloaded: bool,
    },
}

impl State {
    /// Whether TLS is to be required.
    pub fn remembered(&self) -> bool {
        matches!(self, State::Remembered { .. })
    }
}

impl Memory {
    /// Where the memory stands at `now`.
    pub fn state(&self, rule: &Rule, now: UnixTime) -> State {
        let observed = match (self.remembered_since, self.last_tls) {
            (Some(since), Some(last)) if now < last.saturating_add(rule.max_age) => {
                Some((since, last.saturating_add(rule.max_age)))
            }
            _ => None,
        };
        let preloaded = self.preloaded_until.filter(|&u| now < u);
        match (observed, preloaded) {
            (Some((since, until)), p) => State::Remembered {
                since,
                until: p.map_or(until, |p| p.max(until)),
                preloaded: p.is_some_and(|p| p > until),
            },
            (None, Some(until)) => State::Remembered {
                since: self.remembered_since.unwrap_or(now),
                until,
                preloaded: true,
            },
            (None, None) => State::Learning {
                deliveries: if self.expired(rule, now) {
                    0
                } else {
                    self.tls_deliveries
                },
                since: if self.expired(rule, now) {
                    None
                } else {
                    self.first_tls
                },
            },
        }
    }

    /// Whether the memory holds nothing in force at `now`: not remembered, nothing preloaded
    /// for later, and no delivery seen for `max_age` — safe to delete.
    pub fn prunable(&self, rule: &Rule, now: UnixTime) -> bool {
        let last = self.last_tls.max(self.last_plaintext);
        !self.state(rule, now).remembered()
            && self.preloaded_until.is_none_or(|u| u <= now)
            && last.is_none_or(|l| now >= l.saturating_add(rule.max_age))
    }

    /// Whether the last TLS delivery is older than `max_age` (what was learnt is void).
    fn expired(&self, rule: &Rule, now: UnixTime) -> bool {
        self.last_tls
            .is_some_and(|l| now >= l.saturating_add(rule.max_age))
    }

    /// Takes in a delivery seen at `at`.
    pub fn observe(&mut self, seen: Seen, at: UnixTime, rule: &Rule) -> Change {
        let remembered = self.state(rule, at).remembered();
        if self.expired(rule, at) {
            // Forgotten: learn from scratch.
            self.first_tls = None;
            self.tls_deliveries = 0;
            self.remembered_since = None;
        }
        match seen {
            Seen::Plaintext => {
                self.last_plaintext = Some(at);
                if remembered {
                    self.downgrades += 1;
                    Change::Downgrade
                } else {
                    self.first_tls = None;
                    self.tls_deliveries = 0;
                    Change::Reset
                }
            }
            Seen::Tls => {
                self.first_tls.get_or_insert(at);
                self.last_tls = Some(self.last_tls.map_or(at, |l| l.max(at)));
                self.tls_deliveries += 1;
                let span = self
                    .last_tls
                    .zip(self.first_tls)
                    .map_or(0, |(l, f)| l.saturating_sub(f));
                if self.remembered_since.is_none()
                    && self.tls_deliveries >= rule.min_deliveries
                    && span >= rule.min_span
                {
                    self.remembered_since = Some(at);
                    if !remembered {
                        return Change::Remembered;
                    }
                }
                Change::Counted
            }
        }
    }
}

/// What a TLS-RPT session result (from the collector: Postfix ≥ 3.10, Exim's events, the
/// submission protocol) says about STARTTLS: a successful session or a certificate failure
/// means TLS was negotiated; `starttls-not-supported` that it was not offered; other failures
/// (DNS, policy, DANE) say nothing about it.
pub fn seen_in(session: &crate::session::SessionResult) -> Option<Seen> {
    let failures = || session.policies.iter().flat_map(|p| p.failures.iter());
    // A downgrade the log learner already counted, submitted for the report only.
    if failures().any(|f| f.failure_reason_code.as_deref() == Some(DOWNGRADE_REASON_CODE)) {
        return None;
    }
    if failures().any(|f| f.result_type == "starttls-not-supported") {
        return Some(Seen::Plaintext);
    }
    if !session.policies.is_empty() && session.policies.iter().all(|p| !p.failed) {
        return Some(Seen::Tls);
    }
    failures()
        .all(|f| f.result_type.starts_with("certificate-"))
        .then_some(Seen::Tls)
}

/// The `failure-reason-code` of the `starttls-not-supported` sessions the Postfix log
/// learner submits for a possible downgrade (so TLS-RPT reports it).
pub const DOWNGRADE_REASON_CODE: &str = "mtasts-remembered-tls-downgrade";

/// The preload list: remembered domains to share between hosts (`mtasts remembered export`
/// and `import`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preload {
    /// Always [`PRELOAD_FORMAT`].
    pub format: String,
    /// Always 1.
    pub version: u32,
    /// The domains, each remembered until its `until`.
    pub domains: Vec<PreloadEntry>,
}

/// One domain of a preload list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreloadEntry {
    /// The domain (A-labels, lower case).
    pub domain: String,
    /// Until when TLS is required (seconds since the epoch).
    pub until: UnixTime,
}

/// The `format` of a preload list.
pub const PRELOAD_FORMAT: &str = "mtasts-remembered-tls";

/// Why a preload list was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PreloadError {
    #[error("not a preload list")]
    /// Not JSON of the documented shape.
    Json(#[source] serde_json::Error),
    #[error("format `{0}`, expected `{PRELOAD_FORMAT}` version 1")]
    /// Another format or version.
    Format(String),
    #[error("domains[{index}]: `{domain}` is not a valid domain")]
    /// An entry whose domain does not parse.
    Domain {
        /// Its position.
        index: usize,
        /// What it says.
        domain: String,
        /// Why.
        #[source]
        source: crate::domain::DomainError,
    },
}

impl Preload {
    /// Parses and checks a preload list; domains come out normalised.
    pub fn parse(text: &str) -> Result<Self, PreloadError> {
        let mut p: Preload = serde_json::from_str(text).map_err(PreloadError::Json)?;
        if p.format != PRELOAD_FORMAT || p.version != 1 {
            return Err(PreloadError::Format(format!("{} {}", p.format, p.version)));
        }
        for (index, e) in p.domains.iter_mut().enumerate() {
            let d = crate::domain::DomainName::parse(&e.domain).map_err(|source| {
                PreloadError::Domain {
                    index,
                    domain: e.domain.clone(),
                    source,
                }
            })?;
            e.domain = d.to_string();
        }
        Ok(p)
    }

    /// A list of `entries`.
    pub fn new(domains: Vec<PreloadEntry>) -> Self {
        Self {
            format: PRELOAD_FORMAT.to_string(),
            version: 1,
            domains,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000;

    fn rule() -> Rule {
        Rule::default()
    }

    /// `n` TLS deliveries evenly from `start` over `span` seconds.
    fn tls_run(m: &mut Memory, start: u64, span: u64, n: u64) -> Vec<Change> {
        (0..n)
            .map(|i| m.observe(Seen::Tls, start + span * i / (n - 1).max(1), &rule()))
            .collect()
    }

    #[test]
    fn remembered_exactly_at_the_delivery_and_span_thresholds() {
        // 10 deliveries over 7 days less a second: still learning.
        let mut m = Memory::default();
        let changes = tls_run(&mut m, T0, 7 * DAY - 1, 10);
        assert!(!changes.contains(&Change::Remembered));
        assert_eq!(
            m.state(&rule(), T0 + 7 * DAY),
            State::Learning {
                deliveries: 10,
                since: Some(T0)
            }
        );
        // The next one, a second later, reaches the span.
        assert_eq!(
            m.observe(Seen::Tls, T0 + 7 * DAY, &rule()),
            Change::Remembered
        );
        assert!(m.state(&rule(), T0 + 7 * DAY).remembered());
        // 9 deliveries over 8 days: the count is short.
        let mut m = Memory::default();
        tls_run(&mut m, T0, 8 * DAY, 9);
        assert!(!m.state(&rule(), T0 + 8 * DAY).remembered());
        assert_eq!(
            m.observe(Seen::Tls, T0 + 8 * DAY, &rule()),
            Change::Remembered
        );
    }

    #[test]
    fn plaintext_while_learning_starts_again_and_while_remembered_is_a_downgrade() {
        let mut m = Memory::default();
        tls_run(&mut m, T0, 6 * DAY, 20);
        assert_eq!(
            m.observe(Seen::Plaintext, T0 + 6 * DAY, &rule()),
            Change::Reset
        );
        assert_eq!(
            m.state(&rule(), T0 + 6 * DAY),
            State::Learning {
                deliveries: 0,
                since: None
            }
        );
        tls_run(&mut m, T0 + 7 * DAY, 7 * DAY, 10);
        assert!(m.state(&rule(), T0 + 14 * DAY).remembered());
        assert_eq!(
            m.observe(Seen::Plaintext, T0 + 15 * DAY, &rule()),
            Change::Downgrade
        );
        assert_eq!(m.downgrades, 1);
        // The memory stays: a stripping attacker cannot erase it.
        assert!(m.state(&rule(), T0 + 15 * DAY).remembered());
    }

    #[test]
    fn forgotten_max_age_after_the_last_tls_delivery() {
        let mut m = Memory::default();
        tls_run(&mut m, T0, 7 * DAY, 10);
        let last = T0 + 7 * DAY;
        let until = last + 30 * DAY;
        assert_eq!(
            m.state(&rule(), until - 1),
            State::Remembered {
                since: last,
                until,
                preloaded: false
            }
        );
        assert_eq!(
            m.state(&rule(), until),
            State::Learning {
                deliveries: 0,
                since: None
            }
        );
        // After expiry a plaintext delivery is no downgrade, and learning starts afresh.
        assert_eq!(m.observe(Seen::Plaintext, until, &rule()), Change::Reset);
        assert_eq!(m.observe(Seen::Tls, until + 1, &rule()), Change::Counted);
        assert_eq!(m.tls_deliveries, 1);
        assert_eq!(m.remembered_since, None);
    }

    #[test]
    fn memories_are_prunable_only_once_nothing_is_in_force() {
        let mut m = Memory::default();
        tls_run(&mut m, T0, 7 * DAY, 10);
        let last = T0 + 7 * DAY;
        assert!(!m.prunable(&rule(), last + 30 * DAY - 1));
        assert!(m.prunable(&rule(), last + 30 * DAY));
        // A later plaintext delivery keeps the row until max_age after it.
        m.observe(Seen::Plaintext, last + 31 * DAY, &rule());
        assert!(!m.prunable(&rule(), last + 60 * DAY));
        assert!(m.prunable(&rule(), last + 61 * DAY));
        m.preloaded_until = Some(last + 90 * DAY);
        assert!(!m.prunable(&rule(), last + 61 * DAY));
    }

    #[test]
    fn preloaded_domains_are_remembered_until_their_time() {
        let m = Memory {
            preloaded_until: Some(T0 + DAY),
            ..Memory::default()
        };
        assert_eq!(
            m.state(&rule(), T0),
            State::Remembered {
                since: T0,
                until: T0 + DAY,
                preloaded: true
            }
        );
        assert!(!m.state(&rule(), T0 + DAY).remembered());
    }

    #[test]
    fn preload_lists_parse_strictly() {
        let p = Preload::parse(
            r#"{"format":"mtasts-remembered-tls","version":1,"domains":[{"domain":"Example.COM.","until":1800000000}]}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.domains[0].domain, "example.com");
        for bad in [
            r#"{"format":"other","version":1,"domains":[]}"#,
            r#"{"format":"mtasts-remembered-tls","version":2,"domains":[]}"#,
            r#"{"format":"mtasts-remembered-tls","version":1,"domains":[{"domain":"a..b","until":1}]}"#,
            r#"{"format":"mtasts-remembered-tls","version":1,"domains":[],"x":1}"#,
        ] {
            assert!(Preload::parse(bad).is_err(), "{bad}");
        }
    }
}
