//! Entry points shared by the cargo-fuzz targets (`fuzz/`) and the corpus replay test, so the
//! invariants checked on nightly and on stable are the same code. Each panics on a violation.

use crate::domain::DomainName;
use crate::mx::MxPattern;
use crate::policy::Policy;
use crate::txt::{parse_record, select_record};

/// TXT parsing never panics; a valid record re-parses from its rendering to itself.
pub fn txt(data: &[u8]) {
    let records: Vec<Vec<&[u8]>> = data.split(|&b| b == b'\n').map(|r| vec![r]).collect();
    let _ = select_record(&records);
    if let Ok(record) = parse_record(data) {
        assert_eq!(parse_record(record.render().as_bytes()), Ok(record));
    }
}

/// Policy parsing never panics; a valid policy re-parses from its rendering to itself.
pub fn policy(data: &[u8]) {
    if let Ok(parsed) = Policy::parse_bytes(data) {
        let rendered = parsed.policy.render();
        match Policy::parse(&rendered) {
            Ok(again) => assert_eq!(again.policy, parsed.policy),
            Err(e) => panic!("rendered policy does not re-parse: {e}\n{rendered}"),
        }
    }
}

/// First line a pattern, second a host: matching agrees with the one-label wildcard rule.
pub fn mx(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.splitn(2, '\n');
    let (pattern, host) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""));
    let pattern = MxPattern::parse(pattern);
    let host = DomainName::parse(host);
    if let (Ok(p), Ok(h)) = (pattern, host) {
        assert_eq!(MxPattern::parse(&p.to_string()).as_ref(), Ok(&p));
        let expected = if p.is_wildcard() {
            h.parent() == Some(p.base().as_str())
        } else {
            &h == p.base()
        };
        assert_eq!(p.matches(&h), expected);
    }
}

/// A Postfix lookup key never panics the key parser; a policy domain it names is normalised
/// (parsing it again gives itself) and renders into a one-line reply.
pub fn postfix_key(data: &[u8]) {
    let Ok(key) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(domain) = crate::postfix::policy_domain_from_key(key) {
        assert_eq!(DomainName::parse(domain.as_str()).as_ref(), Ok(&domain));
        assert!(!domain.as_str().contains(['\r', '\n', ' ', ',']));
    }
}
