//! Entry points shared by the cargo-fuzz targets (`fuzz/`) and the corpus replay test, so the
//! invariants checked on nightly and on stable are the same code. Each panics on a violation.

use crate::domain::DomainName;
use crate::mx::MxPattern;
use crate::policy::Policy;
use crate::txt::{parse_record, select_record};

/// TXT parsing never panics; a valid record re-parses from its rendering to itself. True
/// when the input was valid, so the round trip was checked.
pub fn txt(data: &[u8]) -> bool {
    let records: Vec<Vec<&[u8]>> = data.split(|&b| b == b'\n').map(|r| vec![r]).collect();
    let _ = select_record(&records);
    let Ok(record) = parse_record(data) else {
        return false;
    };
    assert_eq!(parse_record(record.render().as_bytes()), Ok(record));
    true
}

/// Policy parsing never panics; a valid policy re-parses from its rendering to itself. True
/// when the input was valid, so the round trip was checked.
pub fn policy(data: &[u8]) -> bool {
    let Ok(parsed) = Policy::parse_bytes(data) else {
        return false;
    };
    let rendered = parsed.policy.render();
    match Policy::parse(&rendered) {
        Ok(again) => assert_eq!(again.policy, parsed.policy),
        Err(e) => panic!("rendered policy does not re-parse: {e}\n{rendered}"),
    }
    true
}

/// First line a pattern, second a host: matching agrees with the one-label wildcard rule
/// (RFC 8461 §4.1), worked out here on the normalised text alone, not with the name helpers
/// the matcher uses. True when both lines were valid, so the match was checked.
pub fn mx(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.splitn(2, '\n');
    let (pattern, host) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""));
    let (Ok(p), Ok(h)) = (MxPattern::parse(pattern), DomainName::parse(host)) else {
        return false;
    };
    let shown = p.to_string();
    assert_eq!(MxPattern::parse(&shown).as_ref(), Ok(&p));
    let host = h.as_str();
    let expected = match shown.strip_prefix("*.") {
        // One whole label, then exactly the base.
        Some(base) => host
            .split_once('.')
            .is_some_and(|(first, rest)| !first.is_empty() && rest.eq_ignore_ascii_case(base)),
        None => host.eq_ignore_ascii_case(&shown),
    };
    assert_eq!(p.matches(&h), expected, "pattern {shown:?}, host {host:?}");
    true
}

/// A Postfix lookup key never panics the key parser; a policy domain it names is normalised
/// (parsing it again gives itself) and renders into a one-line reply.
pub fn postfix_key(data: &[u8]) -> bool {
    let Ok(key) = std::str::from_utf8(data) else {
        return false;
    };
    let Ok(domain) = crate::postfix::policy_domain_from_key(key) else {
        return false;
    };
    assert_eq!(DomainName::parse(domain.as_str()).as_ref(), Ok(&domain));
    assert!(!domain.as_str().contains(['\r', '\n', ' ', ',']));
    true
}

/// Report parsing never panics and stays within its bounds; a usable report's summary holds
/// exactly its counts. True when the report was usable, so the summary was checked.
pub fn tlsrpt_report(data: &[u8]) -> bool {
    use crate::report::{MAX_FAILURE_DETAILS, MAX_POLICIES, parse_report, summarize};
    let Ok(parsed) = parse_report(data) else {
        return false;
    };
    let r = &parsed.report;
    assert!(r.policies.len() <= MAX_POLICIES);
    assert!(
        r.policies
            .iter()
            .all(|p| p.failures.len() <= MAX_FAILURE_DETAILS)
    );
    let mut totals = std::collections::BTreeMap::new();
    summarize(r, &mut totals);
    let sum = |f: fn(&crate::report::PolicyResult) -> u64| {
        r.policies.iter().fold(0u64, |a, p| a.saturating_add(f(p)))
    };
    let successful = totals
        .values()
        .fold(0u64, |a, s| a.saturating_add(s.successful));
    assert_eq!(successful, sum(|p| p.successful));
    assert!(
        totals.values().all(|s| s.reports == 1),
        "one report counts once per key"
    );
    true
}
