//! Advice for publishers: choices the RFC allows but that weaken or break a deployment.
//! Shared by `mtasts lint` and `mtasts check`.

use std::fmt;

use crate::domain::DomainName;
use crate::policy::{Mode, Policy};

/// Below this, a cached policy protects for less than a day (RFC 8461 §10.2 suggests weeks).
pub const SHORT_MAX_AGE: u64 = 86_400;

/// One piece of advice about a valid policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Advice {
    /// `max_age` 0: the policy is never cached, so it protects nothing after the first message.
    MaxAgeZero,
    /// `max_age` under a day.
    ShortMaxAge(u64),
    /// `testing` reports but never protects.
    TestingMode,
    /// `*.base` does not cover `base` itself.
    WildcardWithoutBase(String),
    /// A wildcard over a top-level or public second-level domain (SEC-06).
    BroadWildcard(String),
    /// The same pattern twice.
    DuplicatePattern(String),
}

impl Advice {
    /// A short stable code for machines.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MaxAgeZero => "max-age-zero",
            Self::ShortMaxAge(_) => "max-age-short",
            Self::TestingMode => "testing-mode",
            Self::WildcardWithoutBase(_) => "wildcard-without-base",
            Self::BroadWildcard(_) => "broad-wildcard",
            Self::DuplicatePattern(_) => "duplicate-mx",
        }
    }
}

impl fmt::Display for Advice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MaxAgeZero => f.write_str(
                "max_age is 0: senders apply the policy to one delivery attempt and never cache it, so it gives no protection against a later downgrade",
            ),
            Self::ShortMaxAge(age) => write!(
                f,
                "max_age {age} is under a day: an attacker who blocks the policy fetch for that long disables it (RFC 8461 §10.2 suggests weeks, e.g. 604800 or more)"
            ),
            Self::TestingMode => f.write_str(
                "mode testing: senders only report failures and still deliver; switch to enforce once TLS-RPT reports are clean",
            ),
            Self::WildcardWithoutBase(base) => write!(
                f,
                "`*.{base}` covers one label below {base} but not {base} itself; if {base} is an MX host, add `mx: {base}`"
            ),
            Self::BroadWildcard(base) => write!(
                f,
                "`*.{base}` allows any host directly under a public suffix; it constrains almost nothing (RFC 8461 §10.4)"
            ),
            Self::DuplicatePattern(p) => write!(f, "`mx: {p}` is listed more than once"),
        }
    }
}

/// Second-level labels commonly used as public suffixes (`co.uk`, `com.au`, …). A heuristic,
/// not the Public Suffix List: it only decides whether to warn.
const PUBLIC_SECOND_LEVEL: &[&str] = &[
    "ac", "co", "com", "edu", "gov", "ltd", "ne", "net", "or", "org",
];

/// Advice on a valid policy. With `domain`, wildcard advice is about that domain's own names;
/// without it, about wildcards over two-label names, the usual organisational domain.
pub fn policy_advice(policy: &Policy, domain: Option<&DomainName>) -> Vec<Advice> {
    let mut out = Vec::new();
    match policy.max_age {
        0 => out.push(Advice::MaxAgeZero),
        age if age < SHORT_MAX_AGE => out.push(Advice::ShortMaxAge(age)),
        _ => {}
    }
    if policy.mode == Mode::Testing {
        out.push(Advice::TestingMode);
    }
    let mut seen = std::collections::HashSet::new();
    for p in &policy.mx {
        if !seen.insert(p) {
            out.push(Advice::DuplicatePattern(p.to_string()));
            continue;
        }
        if !p.is_wildcard() {
            continue;
        }
        let base = p.base();
        let labels: Vec<&str> = base.split('.').collect();
        let broad = labels.len() == 1
            || (labels.len() == 2
                && PUBLIC_SECOND_LEVEL.contains(&labels[0])
                && labels[1].len() == 2);
        if broad {
            out.push(Advice::BroadWildcard(base.to_string()));
            continue;
        }
        let base_listed = policy
            .mx
            .iter()
            .any(|q| !q.is_wildcard() && q.base() == base);
        let about_own_name = match domain {
            Some(d) => d.as_str() == base,
            None => labels.len() == 2,
        };
        if about_own_name && !base_listed {
            out.push(Advice::WildcardWithoutBase(base.to_string()));
        }
    }
    out
}
