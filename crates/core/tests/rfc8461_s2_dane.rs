//! RFC 8461 §2 / RFC 7672: DANE takes precedence; MTA-STS never weakens it (DANE-01, DANE-02).

#![allow(clippy::expect_used)]

use mtasts_core::dane::{
    Answer, DaneCoverage, DaneDecision, DnssecStatus, Tlsa, decide, tlsa_name,
};

fn mx(status: DnssecStatus, hosts: &[&str]) -> Answer<String> {
    Answer {
        status,
        records: hosts.iter().map(|h| h.to_string()).collect(),
    }
}

fn ee() -> Tlsa {
    Tlsa {
        usage: 3,
        selector: 1,
        matching: 1,
        data: vec![7; 32],
    }
}

fn tlsa(status: DnssecStatus, records: Vec<Tlsa>) -> Answer<Tlsa> {
    Answer { status, records }
}

fn secure_mx() -> Answer<String> {
    mx(DnssecStatus::Secure, &["mx1.d.test", "mx2.d.test"])
}

fn hosts(a: Answer<Tlsa>, b: Answer<Tlsa>) -> Vec<(String, Answer<Tlsa>)> {
    vec![("mx1.d.test".into(), a), ("mx2.d.test".into(), b)]
}

#[test]
fn dane_02_secure_mx_and_usable_tlsa_everywhere_is_dane_only() {
    let d = decide(
        &secure_mx(),
        &hosts(
            tlsa(DnssecStatus::Secure, vec![ee()]),
            tlsa(DnssecStatus::Secure, vec![ee()]),
        ),
    );
    assert_eq!(d, DaneDecision::DaneOnly);
}

#[test]
fn dane_02_some_hosts_with_tlsa_is_dane() {
    let d = decide(
        &secure_mx(),
        &hosts(
            tlsa(DnssecStatus::Secure, vec![ee()]),
            tlsa(DnssecStatus::Secure, vec![]),
        ),
    );
    assert_eq!(d, DaneDecision::Dane(DaneCoverage::Partial));
}

#[test]
fn unusable_tlsa_is_dane_so_postfix_falls_back_as_rfc7672_says() {
    let pkix = Tlsa { usage: 1, ..ee() };
    let short = Tlsa {
        data: vec![1; 31],
        ..ee()
    };
    let bad_matching = Tlsa {
        matching: 9,
        ..ee()
    };
    for bad in [pkix, short, bad_matching] {
        assert!(!bad.is_usable(), "{bad}");
        let d = decide(
            &secure_mx(),
            &hosts(
                tlsa(DnssecStatus::Secure, vec![bad.clone()]),
                tlsa(DnssecStatus::Secure, vec![bad]),
            ),
        );
        assert_eq!(d, DaneDecision::Dane(DaneCoverage::UnusableOnly));
    }
    for ok in [
        ee(),
        Tlsa {
            usage: 2,
            selector: 0,
            matching: 2,
            data: vec![0; 64],
        },
        Tlsa {
            matching: 0,
            data: vec![1, 2, 3],
            ..ee()
        },
    ] {
        assert!(ok.is_usable(), "{ok}");
    }
}

#[test]
fn dane_01_dnssec_failure_on_the_dane_path_defers_never_downgrades() {
    // Bogus data for every host (or the MX) defers; no answer at all is "unavailable", which
    // the decision turns into a deferral unless a last verdict or an enforced policy is known
    // (decision_table.rs).
    for (status, bogus) in [
        (DnssecStatus::Bogus, true),
        (DnssecStatus::Indeterminate, false),
    ] {
        let d = decide(
            &secure_mx(),
            &hosts(tlsa(status, vec![]), tlsa(status, vec![])),
        );
        assert_eq!(
            (
                matches!(d, DaneDecision::TempFail(_)),
                matches!(d, DaneDecision::Unavailable(_))
            ),
            (bogus, !bogus),
            "{status}: {d:?}"
        );
        let d = decide(&mx(status, &[]), &[]);
        assert_eq!(
            (
                matches!(d, DaneDecision::TempFail(_)),
                matches!(d, DaneDecision::Unavailable(_))
            ),
            (bogus, !bogus),
            "MX {status}: {d:?}"
        );
    }
    // One unanswered host: nothing is known, whatever the others say.
    let d = decide(
        &secure_mx(),
        &hosts(
            tlsa(DnssecStatus::Secure, vec![ee()]),
            tlsa(DnssecStatus::Indeterminate, vec![]),
        ),
    );
    assert!(matches!(d, DaneDecision::Unavailable(_)), "{d:?}");
}

#[test]
fn a_host_whose_tlsa_is_bogus_is_unreachable_not_the_whole_domain() {
    // RFC 7672 §2.1.1: a TLSA lookup error makes *that server* unreachable; delivery goes on to
    // the others under DANE, so the MTA must still do DANE (it skips the bogus host itself).
    let bogus = || tlsa(DnssecStatus::Bogus, vec![]);
    let d = decide(
        &secure_mx(),
        &hosts(tlsa(DnssecStatus::Secure, vec![ee()]), bogus()),
    );
    assert_eq!(d, DaneDecision::Dane(DaneCoverage::Partial));
    for other in [
        tlsa(DnssecStatus::Secure, vec![]),
        tlsa(DnssecStatus::Insecure, vec![]),
    ] {
        let d = decide(&secure_mx(), &hosts(bogus(), other));
        assert_eq!(d, DaneDecision::Dane(DaneCoverage::SomeUnreachable));
    }
    let d = decide(&secure_mx(), &hosts(bogus(), bogus()));
    assert_eq!(
        d,
        DaneDecision::TempFail(
            "TLSA of every MX host (mx1.d.test, mx2.d.test) failed DNSSEC validation".into()
        )
    );
    let one = decide(
        &mx(DnssecStatus::Secure, &["mx1.d.test"]),
        &[("mx1.d.test".into(), bogus())],
    );
    assert_eq!(
        one,
        DaneDecision::TempFail("TLSA of mx1.d.test failed DNSSEC validation".into())
    );
}

#[test]
fn authenticated_denial_or_insecure_zone_goes_to_mta_sts() {
    let d = decide(
        &secure_mx(),
        &hosts(
            tlsa(DnssecStatus::Secure, vec![]),
            tlsa(DnssecStatus::Insecure, vec![]),
        ),
    );
    assert!(matches!(d, DaneDecision::NotApplicable(_)), "{d:?}");
}

#[test]
fn insecure_mx_pointing_at_signed_host_with_tlsa_is_not_dane() {
    // RFC 7672 §2.2.1: an unauthenticated MX RRset could name any host; its TLSA proves nothing.
    let d = decide(
        &mx(DnssecStatus::Insecure, &["mx1.d.test"]),
        &[("mx1.d.test".into(), tlsa(DnssecStatus::Secure, vec![ee()]))],
    );
    assert!(matches!(d, DaneDecision::NotApplicable(r) if r.contains("not DNSSEC-signed")));
}

#[test]
fn tlsa_owner_name_and_presentation() {
    assert_eq!(tlsa_name("mx1.d.test."), "_25._tcp.mx1.d.test");
    assert_eq!(
        Tlsa {
            usage: 3,
            selector: 1,
            matching: 1,
            data: vec![0xab, 0x01]
        }
        .to_string(),
        "3 1 1 ab01"
    );
}
