//! Conditional trust: extra trust anchors for some policy domains only, never for every site.
//!
//! A rule names policy domains (exact, or `*.` and a suffix for every name below it) and the
//! anchors that apply to them. Which rule applies is a pure function of the domain; the
//! resolver verifies the policy host with the rule's anchors, and the Postfix answer carries
//! them as `tafile=` so the MX certificate is verified the same way.

use std::fmt;

use crate::domain::{DomainError, DomainName};

/// How a rule's anchors combine with the web PKI for its domains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustMode {
    /// Only these anchors: the web PKI is not trusted for these domains.
    Only,
    /// These anchors as well as the web PKI.
    Additional,
}

impl TrustMode {
    /// `only` or `additional`, as configured.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Only => "only",
            Self::Additional => "additional",
        }
    }
}

impl fmt::Display for TrustMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The domains a rule covers: one name, or `*.suffix` for every name below `suffix` (at any
/// depth; not `suffix` itself).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DomainPattern {
    /// Exactly this policy domain.
    Exact(DomainName),
    /// Every name below this one.
    Below(DomainName),
}

impl DomainPattern {
    /// Parses `example.com` or `*.example.com`.
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        match input.strip_prefix("*.") {
            Some(suffix) => DomainName::parse(suffix).map(Self::Below),
            None => DomainName::parse(input).map(Self::Exact),
        }
    }

    /// Whether `domain` is covered.
    pub fn matches(&self, domain: &DomainName) -> bool {
        match self {
            Self::Exact(d) => d == domain,
            Self::Below(suffix) => domain
                .as_str()
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        }
    }
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(d) => write!(f, "{d}"),
            Self::Below(d) => write!(f, "*.{d}"),
        }
    }
}

/// What one rule applies to a delivery: its name, how it combines with the web PKI, the
/// anchor files as configured, and the files Postfix is to read them from (`tafile=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustAnchors {
    /// The rule's name, for logs and `mtasts query`.
    pub name: String,
    /// Only these anchors, or these as well as the web PKI.
    pub mode: TrustMode,
    /// The PEM files of the anchors, as configured.
    pub anchor_files: Vec<String>,
    /// What Postfix's `tafile=` names: the anchor files themselves in [`TrustMode::Only`]; in
    /// [`TrustMode::Additional`] one bundle of the web PKI roots and the anchors (Postfix's
    /// `tafile` replaces its CA file for the destination, so "as well as" must be spelled out).
    pub postfix_tafile: Vec<String>,
}

/// Rules in configuration order; the first that covers a domain applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustRules<T> {
    rules: Vec<(Vec<DomainPattern>, T)>,
}

impl<T> Default for TrustRules<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> TrustRules<T> {
    /// No rules: every domain is verified with the web PKI alone.
    pub fn new() -> Self {
        Self { rules: Vec::new() }
    }

    /// Adds a rule covering `patterns`, after those already added.
    pub fn push(&mut self, patterns: Vec<DomainPattern>, rule: T) {
        self.rules.push((patterns, rule));
    }

    /// The first rule that covers `domain`.
    pub fn find(&self, domain: &DomainName) -> Option<&T> {
        self.rules
            .iter()
            .find(|(patterns, _)| patterns.iter().any(|p| p.matches(domain)))
            .map(|(_, rule)| rule)
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules and what each covers.
    pub fn iter(&self) -> impl Iterator<Item = (&[DomainPattern], &T)> {
        self.rules.iter().map(|(p, r)| (p.as_slice(), r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> DomainName {
        DomainName::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_pattern_covers_its_names_and_nothing_else() {
        let exact = DomainPattern::parse("Example.COM").unwrap_or_else(|e| panic!("{e}"));
        assert!(exact.matches(&d("example.com")));
        assert!(!exact.matches(&d("a.example.com")));
        let below = DomainPattern::parse("*.example.com").unwrap_or_else(|e| panic!("{e}"));
        assert!(below.matches(&d("a.example.com")));
        assert!(below.matches(&d("b.a.example.com")));
        assert!(!below.matches(&d("example.com")));
        assert!(!below.matches(&d("badexample.com")));
        assert!(!below.matches(&d("example.com.evil")));
        assert_eq!(below.to_string(), "*.example.com");
    }

    #[test]
    fn the_first_covering_rule_applies() {
        let mut rules = TrustRules::new();
        rules.push(
            vec![DomainPattern::parse("a.test").unwrap_or_else(|e| panic!("{e}"))],
            1,
        );
        rules.push(
            vec![DomainPattern::parse("*.test").unwrap_or_else(|e| panic!("{e}"))],
            2,
        );
        assert_eq!(rules.find(&d("a.test")), Some(&1));
        assert_eq!(rules.find(&d("b.test")), Some(&2));
        assert_eq!(rules.find(&d("test")), None);
        assert_eq!(rules.find(&d("other.example")), None);
    }
}
