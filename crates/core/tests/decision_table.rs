//! The one decision (RFC 8461 §2, §3.3, §5; RFC 7672), table-driven: every row of README's DANE
//! table crossed with every MTA-STS outcome, rendered as the Postfix reply (DANE-01, DANE-02).

#![allow(clippy::expect_used)] // a failed expectation is a failed test

use mtasts_core::cache::{Absence, FetchFailure, NoPolicyReason, Source};
use mtasts_core::dane::{DaneCoverage, DaneDecision};
use mtasts_core::decision::{DaneFinding, Decision, Profile, StsFinding, decide};
use mtasts_core::postfix::{RenderOptions, render};
use mtasts_core::{CachedPolicy, DomainName, Policy, Verdict};

fn cached(mode: &str) -> CachedPolicy {
    let text = format!("version: STSv1\nmode: {mode}\nmx: mx1.d.test\nmax_age: 86400\n");
    CachedPolicy {
        policy: Policy::parse(&text).expect("valid").policy,
        id: "1".into(),
        fetched_at: 1_000,
    }
}

/// The MTA-STS outcomes a lookup can have.
#[derive(Debug, Clone, Copy)]
enum Sts {
    Enforce,
    Testing,
    ModeNone,
    NoRecord,
    DnsFailure,
    FetchFailure,
    Deferred,
    Pending,
}

const STS: [Sts; 8] = [
    Sts::Enforce,
    Sts::Testing,
    Sts::ModeNone,
    Sts::NoRecord,
    Sts::DnsFailure,
    Sts::FetchFailure,
    Sts::Deferred,
    Sts::Pending,
];

/// The DANE findings: README's table rows, plus off, still pending, and DNS unavailable with
/// no earlier verdict (with one, the resolver passes that verdict instead).
#[derive(Debug, Clone, Copy)]
enum Dane {
    AllUsable,
    SomeUsable,
    UnusableOnly,
    SomeUnreachable,
    Failure,
    Unavailable,
    NotApplicable,
    Off,
    Pending,
}

const DANE: [Dane; 9] = [
    Dane::AllUsable,
    Dane::SomeUsable,
    Dane::UnusableOnly,
    Dane::SomeUnreachable,
    Dane::Failure,
    Dane::Unavailable,
    Dane::NotApplicable,
    Dane::Off,
    Dane::Pending,
];

const SECURE: &str = "OK secure match=mx1.d.test servername=hostname";
const NOTFOUND: &str = "NOTFOUND ";
const DANE_ONLY: &str = "OK dane-only";
const DANE_REPLY: &str = "OK dane";
const DANE_TEMP: &str = "TEMP DANE check for d.test: TLSA of mx1.d.test failed DNSSEC validation";
const DANE_PENDING: &str = "TEMP DANE check for d.test still in progress";
const DANE_UNAVAILABLE: &str =
    "TEMP DANE check for d.test: MX lookup failed (resolver unavailable)";

/// The Postfix reply for one combination under `profile`.
fn reply(dane: Dane, sts: Sts, profile: Profile) -> String {
    reply_with_trust(dane, sts, profile, None)
}

fn reply_with_trust(
    dane: Dane,
    sts: Sts,
    profile: Profile,
    trust: Option<&mtasts_core::TrustAnchors>,
) -> String {
    let domain = DomainName::parse("d.test").expect("valid");
    let dane_decision = match dane {
        Dane::AllUsable => Some(DaneDecision::DaneOnly),
        Dane::SomeUsable => Some(DaneDecision::Dane(DaneCoverage::Partial)),
        Dane::UnusableOnly => Some(DaneDecision::Dane(DaneCoverage::UnusableOnly)),
        Dane::SomeUnreachable => Some(DaneDecision::Dane(DaneCoverage::SomeUnreachable)),
        Dane::Failure => Some(DaneDecision::TempFail(
            "TLSA of mx1.d.test failed DNSSEC validation".into(),
        )),
        Dane::Unavailable => Some(DaneDecision::Unavailable(
            "MX lookup failed (resolver unavailable)".into(),
        )),
        Dane::NotApplicable => Some(DaneDecision::NotApplicable("MX not signed".into())),
        Dane::Off | Dane::Pending => None,
    };
    let dane_finding = match (dane, &dane_decision) {
        (_, Some(d)) => DaneFinding::Decided(d),
        (Dane::Pending, None) => DaneFinding::Pending,
        _ => DaneFinding::Off,
    };
    let (verdict, policy) = match sts {
        Sts::Enforce => (Verdict::Policy(Source::Fetched), Some(cached("enforce"))),
        Sts::Testing => (Verdict::Policy(Source::Cached), Some(cached("testing"))),
        Sts::ModeNone => (Verdict::Policy(Source::Cached), Some(cached("none"))),
        Sts::NoRecord => (
            Verdict::NoPolicy(NoPolicyReason::NoRecord(Absence::NxDomain)),
            None,
        ),
        Sts::DnsFailure => (
            Verdict::NoPolicy(NoPolicyReason::DnsFailure("SERVFAIL".into())),
            None,
        ),
        Sts::FetchFailure => (
            Verdict::NoPolicy(NoPolicyReason::FetchFailed(FetchFailure::WebPkiInvalid)),
            None,
        ),
        Sts::Deferred | Sts::Pending => (Verdict::Defer("DNS failed".into()), None),
    };
    let sts_finding = match sts {
        Sts::Pending => StsFinding::Pending,
        _ => StsFinding::Lookup {
            verdict: &verdict,
            policy: policy.as_ref(),
        },
    };
    let decision = mtasts_core::decide_with_trust(dane_finding, sts_finding, profile, trust);
    render(&domain, &decision, &RenderOptions::default())
        .0
        .payload()
}

/// README's table, with the default profile.
fn expected_default(dane: Dane, sts: Sts) -> &'static str {
    let has_policy = matches!(sts, Sts::Enforce | Sts::Testing | Sts::ModeNone);
    match (dane, sts) {
        (Dane::AllUsable, _) => DANE_ONLY,
        // Only some hosts with usable TLSA and an enforce policy: hosts without TLSA are not
        // used rather than trusted without authentication.
        (Dane::SomeUsable, Sts::Enforce) => DANE_ONLY,
        (Dane::SomeUsable, _) => DANE_REPLY,
        // No usable TLSA anywhere: `dane-only` would defer every delivery; RFC 7672's own
        // fallback (mandatory encryption) applies, whatever the MTA-STS policy.
        (Dane::UnusableOnly, _) => DANE_REPLY,
        // Some hosts' TLSA bogus, the others without usable TLSA: Postfix skips the bogus
        // hosts itself under `dane`; with an enforced policy `dane` would be weaker for the
        // others, so defer.
        (Dane::SomeUnreachable, Sts::Enforce) => {
            "TEMP DANE check for d.test: the TLSA records of some MX hosts fail DNSSEC validation, the others have none usable, and the MTA-STS policy is enforced"
        }
        (Dane::SomeUnreachable, _) => DANE_REPLY,
        (Dane::Failure, _) => DANE_TEMP,
        // DNS down, DANE never seen for the domain: the cached enforce policy still applies;
        // with nothing enforced to go on, defer.
        (Dane::Unavailable, Sts::Enforce) => SECURE,
        (Dane::Unavailable, _) => DANE_UNAVAILABLE,
        (Dane::Pending, _) if has_policy => DANE_PENDING,
        (Dane::Pending, _) => NOTFOUND,
        (Dane::NotApplicable | Dane::Off, Sts::Enforce) => SECURE,
        (Dane::NotApplicable | Dane::Off, Sts::Deferred) => "TEMP DNS failed",
        (Dane::NotApplicable | Dane::Off, _) => NOTFOUND,
    }
}

#[test]
fn dane_02_every_dane_row_times_every_sts_outcome_default_profile() {
    let mut failures = Vec::new();
    for dane in DANE {
        for sts in STS {
            let got = reply(dane, sts, Profile::default());
            let want = expected_default(dane, sts);
            if got != want {
                failures.push(format!("{dane:?} × {sts:?}: got `{got}`, want `{want}`"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn unusable_tlsa_with_enforce_policy_is_dane_not_dane_only() {
    // The combination that used to answer `dane-only`: Postfix would defer mail to a domain
    // whose every MX host has only unusable TLSA.
    let p = cached("enforce");
    let verdict = Verdict::Policy(Source::Cached);
    let unusable = DaneDecision::Dane(DaneCoverage::UnusableOnly);
    let d = decide(
        DaneFinding::Decided(&unusable),
        StsFinding::Lookup {
            verdict: &verdict,
            policy: Some(&p),
        },
        Profile::default(),
    );
    assert_eq!(d, Decision::Dane(DaneCoverage::UnusableOnly));
}

#[test]
fn strict_testing_enforces_testing_policies_everywhere_enforce_counts() {
    let strict = Profile {
        strict_testing: true,
        ..Profile::default()
    };
    assert_eq!(reply(Dane::Off, Sts::Testing, strict), SECURE);
    assert_eq!(reply(Dane::NotApplicable, Sts::Testing, strict), SECURE);
    assert_eq!(reply(Dane::SomeUsable, Sts::Testing, strict), DANE_ONLY);
    assert_eq!(reply(Dane::UnusableOnly, Sts::Testing, strict), DANE_REPLY);
    assert_eq!(reply(Dane::Unavailable, Sts::Testing, strict), SECURE);
    assert_eq!(reply(Dane::Off, Sts::ModeNone, strict), NOTFOUND);
    // Everything else as without strict_testing.
    for dane in DANE {
        for sts in STS.into_iter().filter(|s| !matches!(s, Sts::Testing)) {
            assert_eq!(
                reply(dane, sts, strict),
                expected_default(dane, sts),
                "{dane:?} × {sts:?}"
            );
        }
    }
}

#[test]
fn defer_on_failure_turns_every_deliver_without_into_temp() {
    let defer = Profile {
        defer_on_failure: true,
        ..Profile::default()
    };
    for dane in [Dane::Off, Dane::NotApplicable] {
        assert_eq!(
            reply(dane, Sts::DnsFailure, defer),
            "TEMP no policy: DNS failed (SERVFAIL) and nothing is cached (DNS-02)"
        );
        assert_eq!(
            reply(dane, Sts::FetchFailure, defer),
            "TEMP no policy: the policy could not be fetched (sts-webpki-invalid) and nothing is cached (FETCH-10)"
        );
        assert_eq!(
            reply(dane, Sts::Pending, defer),
            "TEMP MTA-STS lookup for d.test still in progress"
        );
        // An authoritative "no record" is not a failure.
        assert_eq!(reply(dane, Sts::NoRecord, defer), NOTFOUND);
        assert_eq!(reply(dane, Sts::Enforce, defer), SECURE);
    }
    assert_eq!(reply(Dane::Pending, Sts::NoRecord, defer), DANE_PENDING);
    // DANE findings are not changed by it.
    assert_eq!(
        reply(Dane::UnusableOnly, Sts::DnsFailure, defer),
        DANE_REPLY
    );
}

#[test]
fn decision_codes_and_deadline_flags() {
    let p = cached("testing");
    let verdict = Verdict::Policy(Source::Cached);
    let lookup = StsFinding::Lookup {
        verdict: &verdict,
        policy: Some(&p),
    };
    let d = decide(DaneFinding::Off, lookup, Profile::default());
    assert_eq!((d.code(), d.hit_deadline()), ("testing", false));
    assert_eq!(d.policy().map(|c| c.id.as_ref()), Some("1"));
    let d = decide(DaneFinding::Pending, lookup, Profile::default());
    assert_eq!((d.code(), d.hit_deadline()), ("defer", true));
    let d = decide(DaneFinding::Off, StsFinding::Pending, Profile::default());
    assert_eq!((d.code(), d.hit_deadline()), ("none", true));
}

/// Conditional trust never changes which decision is made: every row of every profile answers
/// as without it, except that an MTA-STS `secure` answer names the rule's anchors.
#[test]
fn conditional_trust_only_adds_tafile_to_secure_answers() {
    let trust = mtasts_core::TrustAnchors {
        name: "corp".into(),
        mode: mtasts_core::TrustMode::Only,
        anchor_files: vec!["/ta.pem".into()],
        postfix_tafile: vec!["/ta.pem".into()],
    };
    let profiles = [
        Profile::default(),
        Profile {
            strict_testing: true,
            ..Profile::default()
        },
        Profile {
            defer_on_failure: true,
            ..Profile::default()
        },
    ];
    let mut failures = Vec::new();
    for profile in profiles {
        for dane in DANE {
            for sts in STS {
                let without = reply(dane, sts, profile);
                let with = reply_with_trust(dane, sts, profile, Some(&trust));
                let want = if without.starts_with("OK secure ") {
                    format!("{without} tafile=/ta.pem")
                } else {
                    without.clone()
                };
                if with != want {
                    failures.push(format!(
                        "{profile:?} {dane:?} × {sts:?}: got `{with}`, want `{want}`"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
