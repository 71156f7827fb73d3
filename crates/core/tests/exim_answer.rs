//! The answer Exim reads: the same `Decision` as Postfix's reply, as `name="value"` fields,
//! with the MX hosts an enforced policy allows (RFC 8461 §4.1 matching done for Exim) in
//! preference order.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

use mtasts_core::cache::NoPolicyReason;
use mtasts_core::dane::DaneCoverage;
use mtasts_core::decision::{Decision, Defer, NoPolicy};
use mtasts_core::exim::{allowed_hosts, render};
use mtasts_core::{CachedPolicy, DomainName, Policy};

fn cached(mode: &str, mx: &[&str]) -> CachedPolicy {
    let lines: String = mx.iter().map(|m| format!("mx: {m}\n")).collect();
    let text = format!("version: STSv1\nmode: {mode}\n{lines}max_age: 86400\n");
    CachedPolicy {
        policy: Policy::parse(&text).expect("valid").policy,
        id: "20261203".into(),
        fetched_at: 1_000,
    }
}

fn domain() -> DomainName {
    DomainName::parse("example.com").expect("valid")
}

fn mx(records: &[(u16, &str)]) -> Vec<(u16, String)> {
    records
        .iter()
        .map(|(p, h)| (*p, (*h).to_string()))
        .collect()
}

#[test]
fn mxm_enforce_lists_the_allowed_mx_hosts_in_preference_order() {
    let p = cached("enforce", &["mx1.example.com", "*.mail.example.com"]);
    let d = Decision::Enforce {
        policy: &p,
        strict: false,
        trust: None,
    };
    let records = mx(&[
        (20, "b.mail.example.com."),
        (10, "MX1.example.com."),
        (5, "evil.example.org."),
        (20, "a.mail.example.com."),
        (30, "deep.b.mail.example.com."),
        (10, "mx1.example.com"),
    ]);
    assert_eq!(
        allowed_hosts(&domain(), &d, &records),
        [
            "mx1.example.com",
            "b.mail.example.com",
            "a.mail.example.com"
        ]
    );
    assert_eq!(
        render(&domain(), &d, &records),
        format!(
            "mode=\"enforce\" domain=\"example.com\" hosts=\"mx1.example.com:b.mail.example.com:a.mail.example.com\" id=\"20261203\" reason=\"{d}\""
        )
    );
}

#[test]
fn mxm_no_allowed_mx_defers_and_no_mx_means_the_domain_itself() {
    let p = cached("enforce", &["mx1.example.com"]);
    let d = Decision::Enforce {
        policy: &p,
        strict: false,
        trust: None,
    };
    let answer = render(&domain(), &d, &mx(&[(10, "other.example.net")]));
    assert!(
        answer.starts_with("mode=\"defer\" domain=\"example.com\" id=\"20261203\""),
        "{answer}"
    );
    assert!(
        answer.contains("no MX host of example.com matches the enforced policy"),
        "{answer}"
    );
    // RFC 5321 §5.1: without MX records the domain is its own MX.
    let own = cached("enforce", &["example.com"]);
    let d = Decision::Enforce {
        policy: &own,
        strict: false,
        trust: None,
    };
    assert_eq!(allowed_hosts(&domain(), &d, &[]), ["example.com"]);
}

#[test]
fn testing_none_dane_and_defer_carry_their_mode() {
    let p = cached("testing", &["mx1.example.com"]);
    let mode = |d: &Decision<'_>| {
        let a = render(&domain(), d, &[]);
        a.split('"').nth(1).map(str::to_string).expect("mode")
    };
    assert_eq!(mode(&Decision::Testing(&p)), "testing");
    assert!(render(&domain(), &Decision::Testing(&p), &[]).contains("id=\"20261203\""));
    assert_eq!(mode(&Decision::NoPolicy(NoPolicy::NoRecord)), "none");
    let failure = NoPolicyReason::NoRecord(mtasts_core::cache::Absence::NxDomain);
    assert_eq!(
        mode(&Decision::NoPolicy(NoPolicy::Failure(&failure))),
        "none"
    );
    assert_eq!(mode(&Decision::Dane(DaneCoverage::Partial)), "dane");
    // How strictly Exim applies DANE: required only where every host has usable TLSA.
    for (decision, dane) in [
        (
            Decision::DaneOnly(mtasts_core::decision::DaneOnlyReason::AllHosts),
            "required",
        ),
        (Decision::Dane(DaneCoverage::Partial), "try"),
        (Decision::Dane(DaneCoverage::SomeUnreachable), "try"),
        (Decision::Dane(DaneCoverage::UnusableOnly), "encrypt"),
    ] {
        assert!(
            render(&domain(), &decision, &[]).contains(&format!(" dane=\"{dane}\"")),
            "{decision:?}"
        );
    }
    assert_eq!(
        mode(&Decision::Defer(Defer::DaneFailed("bogus TLSA"))),
        "defer"
    );
}

#[test]
fn values_are_quoted_for_exims_extract_on_one_line() {
    let answer = render(
        &domain(),
        &Decision::Defer(Defer::Resolver("a \"quoted\"\nsecond line \\ end")),
        &[],
    );
    assert!(!answer.contains('\n'), "{answer}");
    assert!(
        answer.ends_with("reason=\"defer: a \\\"quoted\\\" second line \\\\ end\""),
        "{answer}"
    );
}

#[test]
fn answers_without_a_decision_are_quoted_the_same_way() {
    assert_eq!(
        mtasts_core::exim::line(&[("mode", "defer"), ("reason", "MX lookup for \"x\" failed")]),
        "mode=\"defer\" reason=\"MX lookup for \\\"x\\\" failed\""
    );
}
