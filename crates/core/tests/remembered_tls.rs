//! Remembered TLS: real Postfix 3.7 log lines (captured in the lab by
//! crates/cli/tests/postfix/remember.sh) through the follower and the rule, and the decision
//! step that applies it only where no DANE or MTA-STS policy governs.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

use mtasts_core::cache::{Absence, NoPolicyReason};
use mtasts_core::dane::{DaneCoverage, DaneDecision};
use mtasts_core::decision::{
    DaneFinding, Decision, Profile, RememberMode, RememberOutcome, StsFinding, decide,
    with_remembered,
};
use mtasts_core::postfix::{RenderOptions, Reply, render};
use mtasts_core::postfix_log::Follower;
use mtasts_core::remember::{Change, Memory, Rule, Seen, State};
use mtasts_core::{CachedPolicy, DomainName, Policy, Verdict};

#[test]
fn real_postfix_lines_teach_then_show_the_downgrade() {
    let log = include_str!("fixtures/postfix-3.7-remember.log");
    let mut f = Follower::new();
    let seen: Vec<Seen> = log
        .lines()
        .filter_map(|l| f.line(l))
        .map(|d| d.seen)
        .collect();
    // Three TLS sessions, a deferral (no delivery), then a plaintext delivery.
    assert_eq!(seen, [Seen::Tls, Seen::Tls, Seen::Tls, Seen::Plaintext]);
    let rule = Rule {
        min_deliveries: 3,
        min_span: 0,
        max_age: 86_400,
    };
    let mut m = Memory::default();
    let changes: Vec<Change> = seen
        .iter()
        .enumerate()
        .map(|(i, s)| m.observe(*s, 1_000 + i as u64, &rule))
        .collect();
    assert_eq!(
        changes,
        [
            Change::Counted,
            Change::Counted,
            Change::Remembered,
            Change::Downgrade
        ]
    );
}

fn remembered() -> Option<State> {
    Some(State::Remembered {
        since: 1,
        until: 2_000_000_000,
        preloaded: false,
    })
}

#[test]
fn remembered_tls_applies_only_where_no_policy_governs() {
    let text = "version: STSv1\nmode: enforce\nmx: mx1.d.test\nmax_age: 86400\n";
    let policy = CachedPolicy {
        policy: Policy::parse(text).expect("valid").policy,
        id: "1".into(),
        fetched_at: 1_000,
    };
    let no_record = Verdict::NoPolicy(NoPolicyReason::NoRecord(Absence::NxDomain));
    let with_policy = Verdict::Policy(mtasts_core::cache::Source::Fetched);
    let dane = DaneDecision::Dane(DaneCoverage::Partial);
    let domain = DomainName::parse("d.test").expect("domain");
    let opts = RenderOptions::default();
    let sts_none = StsFinding::Lookup {
        verdict: &no_record,
        policy: None,
    };
    let cases = [
        // (DANE, MTA-STS, enforce outcome)
        (DaneFinding::Off, sts_none, RememberOutcome::Required),
        (
            DaneFinding::Decided(&dane),
            sts_none,
            RememberOutcome::Untouched,
        ),
        (
            DaneFinding::Off,
            StsFinding::Lookup {
                verdict: &with_policy,
                policy: Some(&policy),
            },
            RememberOutcome::Untouched,
        ),
        (DaneFinding::Pending, sts_none, RememberOutcome::Untouched),
        (
            DaneFinding::Off,
            StsFinding::Pending,
            RememberOutcome::Untouched,
        ),
    ];
    for (dane, sts, want) in cases {
        let d = decide(dane, sts, Profile::default());
        let before = render(&domain, &d, &opts).0;
        let (after, outcome) = with_remembered(d, RememberMode::Enforce, remembered());
        assert_eq!(outcome, want, "{d}");
        if want == RememberOutcome::Required {
            assert!(matches!(after, Decision::RememberedTls { .. }));
            assert_eq!(
                render(&domain, &after, &opts).0,
                Reply::Ok("encrypt servername=hostname".into())
            );
            let no_sni = RenderOptions { sni: false, ..opts };
            assert_eq!(
                render(&domain, &after, &no_sni).0,
                Reply::Ok("encrypt".into())
            );
            assert!(
                mtasts_core::exim::render(&domain, &after, &[]).starts_with("mode=\"encrypt\"")
            );
        } else {
            assert_eq!(render(&domain, &after, &opts).0, before, "{d}");
        }
        // Report mode never changes the answer; off and not-remembered never touch it.
        let (r, o) = with_remembered(d, RememberMode::Report, remembered());
        assert_eq!(render(&domain, &r, &opts).0, before);
        assert_eq!(
            o,
            if want == RememberOutcome::Required {
                RememberOutcome::WouldRequire
            } else {
                RememberOutcome::Untouched
            }
        );
        assert_eq!(
            with_remembered(d, RememberMode::Off, remembered()).1,
            RememberOutcome::Untouched
        );
        let learning = Some(State::Learning {
            deliveries: 9,
            since: Some(1),
        });
        assert_eq!(
            with_remembered(d, RememberMode::Enforce, learning).1,
            RememberOutcome::Untouched
        );
        assert_eq!(
            with_remembered(d, RememberMode::Enforce, None).1,
            RememberOutcome::Untouched
        );
    }
}
