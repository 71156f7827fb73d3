//! Retiring a domain (RFC 8461 §8.3, OPS-05): publish `mode: none` under a new id, keep it for at
//! least the `max_age` of the policy it replaces (a sender may hold that policy so long), then
//! remove the TXT record and the policy. A retirement is a `<domain>.retire` file beside the
//! policy file, or a `[[retire]]` entry of the sites file:
//!
//! ```toml
//! since = "2026-12-01T00:00:00Z"   # when the `mode: none` id went out
//! previous_max_age = 604800        # optional beside a policy: its max_age is the default
//! max_age = 86400                  # optional: the `mode: none` policy's own max_age
//! ```

use std::path::Path;

use mtasts_core::DomainName;
use mtasts_core::cache::UnixTime;
use mtasts_core::policy::{MAX_MAX_AGE, Mode};
use serde::Deserialize;

use crate::sites::{Site, SiteError};

/// The `mode: none` policy's `max_age` unless one is given: one day, so a sender that saw it
/// forgets the domain soon after the records go.
pub const DEFAULT_NONE_MAX_AGE: u64 = 86_400;

/// A domain being retired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retirement {
    /// When the `mode: none` policy and its id were published (Unix seconds).
    pub since: UnixTime,
    /// The longest `max_age` a sender may still hold of the retired policy.
    pub previous_max_age: u64,
    /// The `max_age` of the `mode: none` policy served meanwhile.
    pub max_age: u64,
}

impl Retirement {
    /// From when the records and the policy can go: every sender's copy of the old policy
    /// has expired by then (RFC 8461 §8.3).
    pub fn safe_after(&self) -> UnixTime {
        self.since.saturating_add(self.previous_max_age)
    }

    /// Whether removal is safe at `now`.
    pub fn complete(&self, now: UnixTime) -> bool {
        now >= self.safe_after()
    }
}

/// A retirement as written, before checking: a `<domain>.retire` file (the domain from its
/// name), or a `[[retire]]` entry of the sites file (with `domain`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetireFields {
    pub(crate) domain: Option<String>,
    pub(crate) since: String,
    pub(crate) previous_max_age: Option<u64>,
    pub(crate) max_age: Option<u64>,
}

/// A retirement read but not yet applied to the sites (it needs the domain's policy, which
/// may come from another source).
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    /// Where it was written, for errors.
    pub(crate) at: String,
    pub(crate) source: std::path::PathBuf,
    pub(crate) domain: DomainName,
    pub(crate) fields: RetireFields,
}

fn problem(at: &str, domain: &DomainName, reason: impl Into<String>) -> SiteError {
    SiteError::Retire {
        at: at.to_string(),
        domain: domain.to_string(),
        reason: reason.into(),
    }
}

/// Reads a `<domain>.retire` file.
pub(crate) fn read_file(path: &Path) -> Result<Pending, SiteError> {
    let at = path.display().to_string();
    let domain = path
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| DomainName::parse(s).ok())
        .ok_or_else(|| SiteError::Name {
            path: path.to_path_buf(),
        })?;
    let text = std::fs::read_to_string(path).map_err(|e| SiteError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let fields: RetireFields =
        toml::from_str(&text).map_err(|e| problem(&at, &domain, e.message().to_string()))?;
    if fields.domain.is_some() {
        return Err(problem(
            &at,
            &domain,
            "a .retire file names its domain by its file name: remove `domain`",
        ));
    }
    Ok(Pending {
        at,
        source: path.to_path_buf(),
        domain,
        fields,
    })
}

/// The `mode: none` site retiring `pending.domain`; `base` is the policy it replaces, if
/// one is still configured (its `mx` lines are kept, for senders that want them even in
/// `none` mode, and its `max_age` is the least waiting time).
pub(crate) fn retire(pending: &Pending, base: Option<&Site>) -> Result<Site, SiteError> {
    let (at, domain, f) = (&pending.at, &pending.domain, &pending.fields);
    let since = humantime::parse_rfc3339(f.since.trim())
        .map_err(|e| {
            problem(
                at,
                domain,
                format!(
                    "since = {:?}: not an RFC 3339 UTC time like 2026-12-01T00:00:00Z ({e})",
                    f.since
                ),
            )
        })?
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| problem(at, domain, "since is before 1970"))?
        .as_secs();
    let max_age = f.max_age.unwrap_or(DEFAULT_NONE_MAX_AGE);
    if !(1..=MAX_MAX_AGE).contains(&max_age) {
        return Err(problem(
            at,
            domain,
            format!("max_age = {max_age}: must be 1 to {MAX_MAX_AGE} seconds (RFC 8461 §3.2)"),
        ));
    }
    // A sender holds a policy no longer than the RFC's ceiling, whatever was published.
    let previous_max_age = match (f.previous_max_age, base) {
        (Some(p), Some(b)) => p.max(b.policy.max_age),
        (Some(p), None) => p,
        (None, Some(b)) => b.policy.max_age,
        (None, None) => {
            return Err(problem(
                at,
                domain,
                "previous_max_age is required when no policy for the domain is configured (the wait is that policy's max_age, RFC 8461 §8.3)",
            ));
        }
    }
    .min(MAX_MAX_AGE);
    let body = match base {
        Some(b) => {
            let mut p = b.policy.clone();
            p.mode = Mode::None;
            p.max_age = max_age;
            p.render()
        }
        None => format!("version: STSv1\nmode: none\nmax_age: {max_age}\n"),
    };
    let mut site = Site::from_body(
        domain.clone(),
        body.into_bytes(),
        Path::new(at),
        &pending.source,
    )?;
    site.retiring = Some(Retirement {
        since,
        previous_max_age,
        max_age,
    });
    Ok(site)
}

/// RFC 3339 UTC, whole seconds.
pub fn rfc3339(t: UnixTime) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t))
        .to_string()
}
