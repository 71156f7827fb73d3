//! RFC 8461 §4.1: MX host validation against the policy's patterns.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

use mtasts_core::mx::host_matches_any;
use mtasts_core::{DomainName, MxPattern, MxPatternError};

fn host(name: &str) -> DomainName {
    DomainName::parse(name).expect("valid host")
}

fn pat(p: &str) -> MxPattern {
    MxPattern::parse(p).expect("valid pattern")
}

fn policy_patterns() -> Vec<MxPattern> {
    vec![pat("mail.example.com"), pat("*.example.net")]
}

#[test]
fn mxm_02_exact_match_ignores_case_and_trailing_dot() {
    // Vector 40.
    let pats = policy_patterns();
    assert!(host_matches_any(&pats, &host("mail.example.com.")));
    assert!(host_matches_any(&pats, &host("MAIL.EXAMPLE.COM")));
    assert!(pat("MAIL.Example.com").matches(&host("mail.example.com")));
    assert!(!host_matches_any(&pats, &host("mail2.example.com")));
    assert!(!host_matches_any(&pats, &host("xmail.example.com")));
}

#[test]
fn mxm_03_wildcard_covers_exactly_one_label() {
    // Vector 41.
    let pats = policy_patterns();
    assert!(host_matches_any(&pats, &host("mx1.example.net")));
    assert!(host_matches_any(&pats, &host("MX1.Example.NET.")));
}

#[test]
fn mxm_04_wildcard_matches_neither_base_nor_deeper_names() {
    // Vector 41.
    let pats = policy_patterns();
    assert!(!host_matches_any(&pats, &host("example.net")));
    assert!(!host_matches_any(&pats, &host("a.b.example.net")));
    assert!(!host_matches_any(&pats, &host("mx1.notexample.net")));
}

#[test]
fn mxm_05_idn_compared_as_a_labels() {
    let p = pat("*.xn--bcher-kva.example");
    assert!(p.matches(&host("mx.bücher.example")));
    assert!(p.matches(&host("MX.XN--BCHER-KVA.EXAMPLE")));
    assert!(pat("xn--mnchen-3ya.example").matches(&host("münchen.example")));
}

#[test]
fn mxm_no_match_for_other_domains() {
    // Vector 42: the caller skips (enforce) or reports (testing).
    assert!(!host_matches_any(
        &policy_patterns(),
        &host("mx.example.org")
    ));
}

#[test]
fn pol_07_malformed_patterns_have_clear_errors() {
    assert_eq!(MxPattern::parse(""), Err(MxPatternError::Empty));
    assert!(matches!(
        MxPattern::parse("*"),
        Err(MxPatternError::BadWildcard(_))
    ));
    assert!(matches!(
        MxPattern::parse("*.*.x.com"),
        Err(MxPatternError::BadWildcard(_))
    ));
    assert!(matches!(
        MxPattern::parse("a.*.x.com"),
        Err(MxPatternError::BadWildcard(_))
    ));
    assert!(matches!(
        MxPattern::parse("*x.com"),
        Err(MxPatternError::BadWildcard(_))
    ));
    let dot = MxPattern::parse(".x.com").expect_err("old draft syntax");
    assert!(dot.to_string().contains("*.x.com"), "{dot}");
    let ip = MxPattern::parse("192.0.2.1").expect_err("ip literal");
    assert!(ip.to_string().contains("IP address literal"), "{ip}");
    assert!(MxPattern::parse("[2001:db8::1]").is_err());
    let u = MxPattern::parse("*.bücher.example").expect_err("u-label");
    assert!(u.to_string().contains("xn--bcher-kva.example"), "{u}");
}

#[test]
fn postfix_match_form_of_wildcard_is_dot_prefix() {
    assert_eq!(pat("*.Example.net").postfix_match(), ".example.net");
    assert_eq!(pat("mail.example.com.").postfix_match(), "mail.example.com");
    assert_eq!(pat("*.example.net").to_string(), "*.example.net");
}
