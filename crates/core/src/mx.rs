//! Policy `mx` patterns and MX host matching (RFC 8461 §3.2, §4.1).

use std::fmt;

use compact_str::CompactString;

use crate::domain::{DomainError, DomainName};

/// One `mx` pattern: an exact host name, or `*.` and a domain covering exactly one more label.
/// Held as its normalised text (`*.` included), inline up to 24 bytes: a cached policy's
/// patterns are one allocation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MxPattern(CompactString);

const WILDCARD: &str = "*.";

/// Why an `mx` value is not a valid pattern (POL-07).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MxPatternError {
    #[error("empty value (POL-07: an mx line names one host or `*.` and a domain)")]
    /// The empty pattern.
    Empty,
    #[error("`{0}`: one MX per `mx:` line (POL-07); write a line for each")]
    /// Several names in one `mx` value.
    List(String),
    #[error(
        "`{0}`: a wildcard must be the whole left-most label, `*.` followed by a domain (POL-07, MXM-03)"
    )]
    /// A `*` anywhere but as the whole first label.
    BadWildcard(String),
    #[error(
        "`{0}`: a leading `.` is an old draft's syntax; write `*.{rest}` (POL-07)", rest = .0.trim_start_matches('.')
    )]
    /// A leading `.`.
    LeadingDot(String),
    #[error("`{pattern}`: {source}")]
    /// The name part is not a valid domain name.
    Domain {
        /// The pattern as written.
        pattern: String,
        #[source]
        /// Why the name is invalid.
        source: DomainError,
    },
}

impl MxPattern {
    /// Parses a pattern as written in a policy file: A-labels only, any case, one trailing dot
    /// tolerated (POL-07, POL-09).
    pub fn parse(input: &str) -> Result<Self, MxPatternError> {
        if input.is_empty() {
            return Err(MxPatternError::Empty);
        }
        if input.contains(',') || input.contains(' ') || input.contains('\t') {
            return Err(MxPatternError::List(input.to_string()));
        }
        if input.starts_with('.') && input.len() > 1 {
            return Err(MxPatternError::LeadingDot(input.to_string()));
        }
        let (wildcard, base) = match input.strip_prefix("*.") {
            Some(base) => (true, base),
            None => (false, input),
        };
        if base.contains('*') || (!wildcard && input.starts_with('*')) {
            return Err(MxPatternError::BadWildcard(input.to_string()));
        }
        let base = DomainName::parse_a_label(base).map_err(|source| MxPatternError::Domain {
            pattern: input.to_string(),
            source,
        })?;
        let mut text = CompactString::with_capacity(base.as_str().len() + 2);
        if wildcard {
            text.push_str(WILDCARD);
        }
        text.push_str(base.as_str());
        Ok(Self(text))
    }

    /// Whether this is a `*.` pattern.
    pub fn is_wildcard(&self) -> bool {
        self.0.starts_with(WILDCARD)
    }

    /// The domain after `*.`, or the whole host for an exact pattern (normalised).
    pub fn base(&self) -> &str {
        self.0.strip_prefix(WILDCARD).unwrap_or(&self.0)
    }

    /// Whether `host` (already normalised) is allowed by this pattern (MXM-02, MXM-03, MXM-04).
    pub fn matches(&self, host: &DomainName) -> bool {
        match self.0.strip_prefix(WILDCARD) {
            Some(base) => host.parent() == Some(base),
            None => host.as_str() == self.0,
        }
    }

    /// Postfix's `match=` form: `*.x` becomes `.x`, which Postfix applies at any depth (PFX-23).
    pub fn postfix_match(&self) -> String {
        match self.0.strip_prefix(WILDCARD) {
            Some(base) => format!(".{base}"),
            None => self.0.to_string(),
        }
    }
}

impl fmt::Display for MxPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether any pattern allows `host` (MXM-01).
pub fn host_matches_any(patterns: &[MxPattern], host: &DomainName) -> bool {
    patterns.iter().any(|p| p.matches(host))
}
