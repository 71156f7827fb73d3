//! RFC 8461 §3.3, §5.1, §8.3, §10: cache and refresh rules, driven with explicit times.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

use mtasts_core::cache::{
    Absence, CacheSettings, DomainState, FetchFailure, NoPolicyReason, RequestPlan, Source,
    TxtLookup, TxtPlan, Verdict, on_fetch, on_request, on_txt,
};
use mtasts_core::{Mode, Policy};

const DAY: u64 = 86_400;
const T0: u64 = 1_700_000_000;

fn policy(mode: &str, max_age: u64) -> Policy {
    let text = format!("version: STSv1\nmode: {mode}\nmx: mail.example.com\nmax_age: {max_age}\n");
    Policy::parse(&text).expect("valid").policy
}

fn settings() -> CacheSettings {
    CacheSettings::default()
}

fn found(id: &str) -> TxtLookup {
    TxtLookup::Found(id.into())
}

/// A state holding `policy` fetched under `id` at `at`, TXT checked at the same time.
fn cached(id: &str, p: Policy, at: u64) -> DomainState {
    let (s, plan) = on_txt(None, at, found(id), &settings());
    assert!(matches!(plan, TxtPlan::Fetch { .. }));
    let (s, v) = on_fetch(Some(&s), at, id, Ok(p));
    assert_eq!(v, Verdict::Policy(Source::Fetched));
    s
}

const CACHED: Verdict = Verdict::Policy(Source::Cached);

#[test]
fn cache_02_policy_valid_until_fetched_at_plus_max_age() {
    let s = cached("a", policy("enforce", DAY), T0);
    assert!(s.valid_policy(T0 + DAY - 1).is_some());
    assert!(s.valid_policy(T0 + DAY).is_none());
    // Vector 52: expired and the record is gone → no policy.
    let (_, plan) = on_txt(
        Some(&s),
        T0 + 2 * DAY,
        TxtLookup::Absent(Absence::NxDomain),
        &settings(),
    );
    assert_eq!(
        plan,
        TxtPlan::Done(Verdict::NoPolicy(NoPolicyReason::NoRecord(
            Absence::NxDomain
        )))
    );
}

#[test]
fn cache_03_same_id_within_grace_answers_from_memory() {
    let s = cached("a", policy("enforce", 30 * DAY), T0);
    assert_eq!(
        on_request(Some(&s), T0 + 10, &settings()),
        RequestPlan::Answer(CACHED)
    );
    // After the grace period the answer is still immediate; the TXT re-check is off-path.
    assert_eq!(
        on_request(Some(&s), T0 + 61, &settings()),
        RequestPlan::AnswerThenRecheck(CACHED)
    );
    let (_, plan) = on_txt(Some(&s), T0 + 61, found("a"), &settings());
    assert_eq!(
        plan,
        TxtPlan::Done(CACHED),
        "same id, not yet due: no fetch"
    );
}

#[test]
fn cache_04_new_id_fetches_and_success_replaces() {
    let s = cached("a", policy("testing", 30 * DAY), T0);
    let (s, plan) = on_txt(Some(&s), T0 + 100, found("b"), &settings());
    assert_eq!(
        plan,
        TxtPlan::Fetch {
            id: "b".into(),
            meanwhile: CACHED
        }
    );
    let (s, v) = on_fetch(Some(&s), T0 + 101, "b", Ok(policy("enforce", DAY)));
    assert_eq!(v, Verdict::Policy(Source::Fetched));
    let p = s.policy.as_ref().expect("cached");
    assert_eq!(
        (p.id.as_ref(), p.fetched_at, p.policy.mode),
        ("b", T0 + 101, Mode::Enforce)
    );
    assert_eq!(p.expires_at(), T0 + 101 + DAY);
}

#[test]
fn cache_05_failed_fetch_keeps_valid_cached_policy() {
    // Vectors 50, 51.
    let s = cached("a", policy("enforce", 30 * DAY), T0);
    for failure in [
        FetchFailure::FetchError,
        FetchFailure::PolicyInvalid,
        FetchFailure::WebPkiInvalid,
    ] {
        let (s2, plan) = on_txt(Some(&s), T0 + 100, found("b"), &settings());
        assert!(matches!(plan, TxtPlan::Fetch { .. }));
        let (s2, v) = on_fetch(Some(&s2), T0 + 101, "b", Err(failure));
        assert_eq!(v, CACHED);
        assert_eq!(s2.policy, s.policy, "cached entry untouched by {failure:?}");
        assert_eq!(s2.failed_fetch.as_ref().map(|f| f.failure), Some(failure));
    }
}

#[test]
fn cache_06_lost_or_broken_txt_never_evicts() {
    // Vector 16, TXT-13.
    let s = cached("a", policy("enforce", 30 * DAY), T0);
    for lookup in [
        TxtLookup::Absent(Absence::NxDomain),
        TxtLookup::Absent(Absence::NoData),
        TxtLookup::Absent(Absence::Discovery(mtasts_core::Discovery::Multiple(2))),
        TxtLookup::TempFail("SERVFAIL".into()),
    ] {
        let (s2, plan) = on_txt(Some(&s), T0 + 3600, lookup.clone(), &settings());
        assert_eq!(plan, TxtPlan::Done(CACHED), "{lookup:?}");
        assert_eq!(s2.policy, s.policy);
        assert_eq!(
            on_request(Some(&s2), T0 + 3601, &settings()),
            RequestPlan::Answer(CACHED)
        );
        // Still in force near the end of its life, whatever DNS keeps saying.
        let (s3, plan) = on_txt(Some(&s2), T0 + 30 * DAY - 1, lookup.clone(), &settings());
        assert_eq!(plan, TxtPlan::Done(CACHED));
        assert!(s3.valid_policy(T0 + 30 * DAY - 1).is_some());
    }
}

#[test]
fn cache_07_fetched_mode_none_withdraws_at_once() {
    // Vector 53.
    let s = cached("a", policy("enforce", 300 * DAY), T0);
    let (s, _) = on_txt(Some(&s), T0 + 10, found("b"), &settings());
    let (s, v) = on_fetch(Some(&s), T0 + 11, "b", Ok(policy("none", DAY)));
    assert_eq!(v, Verdict::Policy(Source::Fetched));
    assert_eq!(
        s.valid_policy(T0 + 12).map(|p| p.policy.mode),
        Some(Mode::None)
    );
    assert!(!s.needs_alert(T0 + 12));
}

#[test]
fn cache_08_refresh_before_expiry_even_with_same_id() {
    let s = cached("a", policy("enforce", 7 * DAY), T0);
    assert_eq!(
        on_request(Some(&s), T0 + DAY, &settings()),
        RequestPlan::AnswerThenRecheck(CACHED)
    );
    let (s, plan) = on_txt(Some(&s), T0 + DAY, found("a"), &settings());
    assert_eq!(
        plan,
        TxtPlan::Fetch {
            id: "a".into(),
            meanwhile: CACHED
        }
    );
    let (s, _) = on_fetch(Some(&s), T0 + DAY, "a", Ok(policy("enforce", 7 * DAY)));
    assert_eq!(
        s.valid_policy(T0 + DAY).map(|p| p.fetched_at),
        Some(T0 + DAY),
        "fetched_at reset"
    );
    // Short-lived policies refresh at half their life.
    let short = cached("a", policy("enforce", 3600), T0);
    assert_eq!(
        short.policy.as_ref().map(|p| p.refresh_at(&settings())),
        Some(T0 + 1800)
    );
}

#[test]
fn cache_09_alert_on_failed_refresh_but_never_for_none() {
    let s = cached("a", policy("enforce", 7 * DAY), T0);
    let (s, _) = on_fetch(Some(&s), T0 + DAY, "a", Err(FetchFailure::FetchError));
    assert!(s.needs_alert(T0 + DAY));
    let n = cached("a", policy("none", 7 * DAY), T0);
    let (n, _) = on_fetch(Some(&n), T0 + DAY, "a", Err(FetchFailure::FetchError));
    assert!(!n.needs_alert(T0 + DAY));
}

#[test]
fn cache_12_max_age_zero_applies_once_and_is_not_reused() {
    let (s, _) = on_txt(None, T0, found("a"), &settings());
    let (s, v) = on_fetch(Some(&s), T0, "a", Ok(policy("enforce", 0)));
    assert_eq!(v, Verdict::Policy(Source::Fetched));
    assert!(s.valid_policy(T0).is_none());
    assert_eq!(
        on_request(Some(&s), T0 + 1, &settings()),
        RequestPlan::LookupTxt
    );
}

#[test]
fn dns_01_no_record_no_cache_means_no_policy_and_is_remembered_for_grace() {
    let (s, plan) = on_txt(None, T0, TxtLookup::Absent(Absence::NoData), &settings());
    let no = Verdict::NoPolicy(NoPolicyReason::NoRecord(Absence::NoData));
    assert_eq!(plan, TxtPlan::Done(no.clone()));
    assert_eq!(
        on_request(Some(&s), T0 + 59, &settings()),
        RequestPlan::Answer(no)
    );
    assert_eq!(
        on_request(Some(&s), T0 + 60, &settings()),
        RequestPlan::LookupTxt
    );
}

#[test]
fn dns_02_servfail_without_cache_means_no_policy() {
    // Vector 17. The setting that defers instead is the zone's `defer_on_failure`, applied by
    // the decision: decision_table.rs::defer_on_failure_turns_every_deliver_without_into_temp.
    let fail = TxtLookup::TempFail("SERVFAIL".into());
    let (_, plan) = on_txt(None, T0, fail, &settings());
    assert_eq!(
        plan,
        TxtPlan::Done(Verdict::NoPolicy(NoPolicyReason::DnsFailure(
            "SERVFAIL".into()
        )))
    );
}

#[test]
fn fetch_09_back_off_same_id_five_minutes_new_id_at_once() {
    // Vector 25.
    let (s, _) = on_txt(None, T0, found("A"), &settings());
    let (s, v) = on_fetch(Some(&s), T0, "A", Err(FetchFailure::FetchError));
    assert_eq!(
        v,
        Verdict::NoPolicy(NoPolicyReason::FetchFailed(FetchFailure::FetchError))
    );
    let (s, plan) = on_txt(Some(&s), T0 + 120, found("A"), &settings());
    assert!(
        matches!(
            plan,
            TxtPlan::Done(Verdict::NoPolicy(NoPolicyReason::FetchFailed(_)))
        ),
        "no refetch"
    );
    assert!(matches!(
        on_request(Some(&s), T0 + 130, &settings()),
        RequestPlan::Answer(_)
    ));
    let (_, plan) = on_txt(Some(&s), T0 + 180, found("B"), &settings());
    assert!(
        matches!(plan, TxtPlan::Fetch { id, .. } if &*id == "B"),
        "new id fetched at once"
    );
    let (_, plan) = on_txt(Some(&s), T0 + 300, found("A"), &settings());
    assert!(
        matches!(plan, TxtPlan::Fetch { id, .. } if &*id == "A"),
        "same id after back-off"
    );
}

#[test]
fn fetch_09_back_off_with_valid_cache_keeps_cached() {
    let s = cached("a", policy("enforce", 30 * DAY), T0);
    let (s, _) = on_fetch(Some(&s), T0 + 10, "b", Err(FetchFailure::FetchError));
    let (_, plan) = on_txt(Some(&s), T0 + 100, found("b"), &settings());
    assert_eq!(plan, TxtPlan::Done(CACHED));
}

#[test]
fn fetch_10_record_but_no_policy_and_no_cache_delivers_without_sts() {
    let (s, _) = on_txt(None, T0, found("a"), &settings());
    let (_, v) = on_fetch(Some(&s), T0, "a", Err(FetchFailure::PolicyInvalid));
    assert_eq!(
        v,
        Verdict::NoPolicy(NoPolicyReason::FetchFailed(FetchFailure::PolicyInvalid))
    );
}

#[test]
fn sec_04_new_id_and_valid_policy_replace_long_lived_entry() {
    // Vector 54.
    let s = cached("evil", policy("enforce", 31_557_600), T0);
    let (s, plan) = on_txt(Some(&s), T0 + 65 * DAY, found("fixed"), &settings());
    assert!(matches!(plan, TxtPlan::Fetch { .. }));
    let (s, _) = on_fetch(Some(&s), T0 + 65 * DAY, "fixed", Ok(policy("testing", DAY)));
    assert_eq!(
        s.valid_policy(T0 + 65 * DAY).map(|p| p.id.as_ref()),
        Some("fixed")
    );
}

#[test]
fn rpt_result_types_match_rfc8460() {
    assert_eq!(
        FetchFailure::FetchError.result_type(),
        "sts-policy-fetch-error"
    );
    assert_eq!(
        FetchFailure::WebPkiInvalid.result_type(),
        "sts-webpki-invalid"
    );
    assert_eq!(
        FetchFailure::PolicyInvalid.result_type(),
        "sts-policy-invalid"
    );
}

#[test]
fn a_fetched_policy_shares_its_id_with_the_txt_answer_that_asked_for_it() {
    // Memory: one allocation for the id, however many places hold it.
    let s = cached("shared-id", policy("enforce", DAY), T0);
    let (Some(p), Some((_, TxtLookup::Found(txt_id)))) = (&s.policy, &s.txt) else {
        panic!("{s:?}");
    };
    assert!(std::sync::Arc::ptr_eq(&p.id, txt_id));
}

#[test]
fn the_documented_defaults() {
    // README and the daemon's config docs promise these; each is pinned at its boundary below.
    let s = settings();
    assert_eq!(
        (
            s.txt_grace,
            s.negative_ttl,
            s.fetch_backoff,
            s.refresh_interval
        ),
        (60, 60, 300, DAY)
    );
}

#[test]
fn txt_recheck_starts_exactly_at_txt_grace() {
    let s = cached("a", policy("enforce", 30 * DAY), T0);
    assert_eq!(
        on_request(Some(&s), T0 + 59, &settings()),
        RequestPlan::Answer(CACHED)
    );
    assert_eq!(
        on_request(Some(&s), T0 + 60, &settings()),
        RequestPlan::AnswerThenRecheck(CACHED)
    );
}

#[test]
fn a_failed_id_is_refetched_exactly_at_fetch_backoff() {
    let (s, _) = on_txt(None, T0, found("A"), &settings());
    let (s, _) = on_fetch(Some(&s), T0, "A", Err(FetchFailure::FetchError));
    let (_, plan) = on_txt(Some(&s), T0 + 299, found("A"), &settings());
    assert!(
        matches!(plan, TxtPlan::Done(Verdict::NoPolicy(_))),
        "backed off at 299 s: {plan:?}"
    );
    let (_, plan) = on_txt(Some(&s), T0 + 300, found("A"), &settings());
    assert!(
        matches!(plan, TxtPlan::Fetch { ref id, .. } if &**id == "A"),
        "refetched at 300 s: {plan:?}"
    );
}

#[test]
fn a_policy_is_refreshed_exactly_at_refresh_interval_when_it_lives_longer() {
    let s = cached("a", policy("enforce", 30 * DAY), T0);
    let (_, plan) = on_txt(Some(&s), T0 + DAY - 1, found("a"), &settings());
    assert_eq!(plan, TxtPlan::Done(CACHED), "not due a second early");
    let (_, plan) = on_txt(Some(&s), T0 + DAY, found("a"), &settings());
    assert!(
        matches!(plan, TxtPlan::Fetch { .. }),
        "due at refresh_interval"
    );
}
