//! The cache rules' timing, deterministic: the resolver over the scripted DNS and fetch
//! doubles with a hand-moved clock. No sockets, no sleeps: background work is awaited by the
//! queries and fetches it makes. (The wire behaviour is in txt_and_cache.rs and fetch_rules.rs.)

#![allow(clippy::expect_used)] // a failed expectation is a failed test

use std::sync::Arc;
use std::time::Duration;

use mtasts_core::cache::{NoPolicyReason, Source};
use mtasts_core::{DomainName, FetchFailure, Mode, Verdict};
use mtasts_resolver::testing::{ScriptedDns, ScriptedFetch};
use mtasts_resolver::{DnsError, FetchError, ManualClock, Origin, Resolver, ResolverSettings};

const T0: u64 = 1_900_000_000;
/// Long enough for background work on a loaded machine; the tests wait for events, never for
/// this long unless something is wrong.
const LIMIT: Duration = Duration::from_secs(10);

fn d(s: &str) -> DomainName {
    DomainName::parse(s).expect("domain")
}

fn policy(mode: &str, max_age: u64) -> String {
    format!("version: STSv1\nmode: {mode}\nmx: mx.example.test\nmax_age: {max_age}\n")
}

/// Lets spawned background work (re-checks) run to completion: the doubles never block, so
/// a few scheduler rounds drain it.
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

struct Setup {
    dns: ScriptedDns,
    fetch: ScriptedFetch,
    clock: ManualClock,
    resolver: Resolver<ScriptedDns, ScriptedFetch>,
}

fn quiet() -> ResolverSettings {
    ResolverSettings {
        refresh: false,
        refresh_jitter: Duration::ZERO,
        ..ResolverSettings::default()
    }
}

fn setup() -> Setup {
    setup_with(quiet(), None)
}

fn setup_with(settings: ResolverSettings, store: Option<mtasts_store::AnyStore>) -> Setup {
    let (dns, fetch, clock) = (
        ScriptedDns::new(),
        ScriptedFetch::new(),
        ManualClock::new(T0),
    );
    let builder = Resolver::builder(Arc::new(dns.clone()), fetch.clone())
        .clock(Arc::new(clock.clone()))
        .settings(settings);
    let resolver = match store {
        Some(s) => builder.store(s),
        None => builder,
    }
    .build();
    Setup {
        dns,
        fetch,
        clock,
        resolver,
    }
}

#[tokio::test]
async fn cache_03_within_grace_no_dns_after_grace_one_background_recheck() {
    let s = setup();
    let domain = d("grace.test");
    s.dns.publish("grace.test", "1");
    s.fetch.serve(&domain, &policy("enforce", 86_400));
    let txt = "_mta-sts.grace.test";
    assert_eq!(
        s.resolver.lookup(&domain).await.verdict,
        Verdict::Policy(Source::Fetched)
    );
    assert_eq!((s.dns.txt_queries(txt), s.fetch.fetches(&domain)), (1, 1));
    // Within txt_grace (60 s): memory only, however many lookups; at 60 s, one re-check.
    s.clock.advance(59);
    for _ in 0..100 {
        let l = s.resolver.lookup(&domain).await;
        assert_eq!(
            (l.verdict, l.origin),
            (Verdict::Policy(Source::Cached), Origin::Memory)
        );
    }
    assert_eq!(s.dns.txt_queries(txt), 1);
    // At it: answered from memory at once, one TXT re-check in the background, no fetch for
    // the same id.
    s.clock.advance(1);
    let l = s.resolver.lookup(&domain).await;
    assert_eq!(l.origin, Origin::Memory);
    assert!(s.dns.wait_txt_queries(txt, 2, LIMIT).await, "re-check");
    for _ in 0..10 {
        s.resolver.lookup(&domain).await;
    }
    assert_eq!(s.fetch.fetches(&domain), 1, "same id: no refetch");
}

#[tokio::test]
async fn cache_04_new_id_is_fetched_in_the_background_and_replaces_the_policy() {
    let s = setup();
    let domain = d("newid.test");
    s.dns.publish("newid.test", "1");
    s.fetch.serve(&domain, &policy("testing", 86_400));
    s.resolver.lookup(&domain).await;
    s.dns.publish("newid.test", "2");
    s.fetch.serve(&domain, &policy("enforce", 86_400));
    s.clock.advance(61);
    let l = s.resolver.lookup(&domain).await;
    assert_eq!(
        l.policy().map(|p| (p.id.as_ref(), p.policy.mode)),
        Some(("1", Mode::Testing)),
        "answered from the cache while the new id is fetched"
    );
    assert!(s.fetch.wait_fetches(&domain, 2, LIMIT).await);
    // The new policy lands once the background fetch is stored.
    let mut mode = None;
    for _ in 0..1000 {
        let l = s.resolver.lookup(&domain).await;
        if l.policy().map(|p| p.id.as_ref()) == Some("2") {
            mode = l.policy().map(|p| p.policy.mode);
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(mode, Some(Mode::Enforce));
}

#[tokio::test]
async fn fetch_09_a_failed_id_waits_five_minutes_a_new_id_does_not() {
    let s = setup();
    let domain = d("backoff.test");
    s.dns.publish("backoff.test", "1");
    s.fetch.fail(&domain, FetchError::Status(500));
    let l = s.resolver.lookup(&domain).await;
    assert_eq!(
        l.verdict,
        Verdict::NoPolicy(NoPolicyReason::FetchFailed(FetchFailure::FetchError))
    );
    assert_eq!(s.fetch.fetches(&domain), 1);
    // The negative answer is reused for negative_ttl (60 s), then the TXT is asked again,
    // but the same id is not fetched again before fetch_backoff (300 s) has passed.
    s.clock.advance(299);
    s.resolver.lookup(&domain).await;
    assert_eq!(s.dns.txt_queries("_mta-sts.backoff.test"), 2);
    assert_eq!(s.fetch.fetches(&domain), 1, "backed off at 299 s");
    s.clock.advance(1);
    s.fetch.serve(&domain, &policy("enforce", 86_400));
    let l = s.resolver.lookup(&domain).await;
    assert_eq!(s.fetch.fetches(&domain), 2, "retried at 300 s");
    assert_eq!(l.verdict, Verdict::Policy(Source::Fetched));
    // A new id is fetched at once, even right after a failure.
    let other = d("other.test");
    s.dns.publish("other.test", "a");
    s.fetch.fail(&other, FetchError::Status(503));
    s.resolver.lookup(&other).await;
    s.dns.publish("other.test", "b");
    s.clock.advance(61);
    s.resolver.lookup(&other).await;
    assert_eq!(s.fetch.fetches(&other), 2);
}

#[tokio::test]
async fn dns_02_a_failure_without_cache_is_no_policy_and_remembered_for_negative_ttl() {
    let s = setup();
    let domain = d("servfail.test");
    let txt = "_mta-sts.servfail.test";
    s.dns.set_txt(txt, Err(DnsError::ServFail));
    let l = s.resolver.lookup(&domain).await;
    assert!(
        matches!(&l.verdict, Verdict::NoPolicy(NoPolicyReason::DnsFailure(w)) if w.contains("SERVFAIL")),
        "{:?}",
        l.verdict
    );
    s.clock.advance(59);
    s.resolver.lookup(&domain).await;
    assert_eq!(s.dns.txt_queries(txt), 1, "reused within negative_ttl");
    s.clock.advance(1);
    s.resolver.lookup(&domain).await;
    assert_eq!(s.dns.txt_queries(txt), 2, "asked again at 60 s");
}

#[tokio::test]
async fn cache_05_06_a_valid_policy_outlives_dns_and_fetch_failures_until_max_age() {
    let s = setup();
    let domain = d("outlive.test");
    s.dns.publish("outlive.test", "1");
    s.fetch.serve(&domain, &policy("enforce", 3_600));
    s.resolver.lookup(&domain).await;
    s.dns
        .set_txt("_mta-sts.outlive.test", Err(DnsError::Timeout));
    s.fetch.fail(&domain, FetchError::Status(500));
    let mut recheck = 1;
    for _ in 0..59 {
        s.clock.advance(60);
        let l = s.resolver.lookup(&domain).await;
        assert_eq!(l.verdict, Verdict::Policy(Source::Cached));
        recheck += 1;
        assert!(
            s.dns
                .wait_txt_queries("_mta-sts.outlive.test", recheck, LIMIT)
                .await
        );
    }
    // max_age is over: the failures now decide.
    s.clock.advance(61);
    let mut last = s.resolver.lookup(&domain).await.verdict;
    for _ in 0..1000 {
        if matches!(last, Verdict::NoPolicy(_)) {
            break;
        }
        tokio::task::yield_now().await;
        last = s.resolver.lookup(&domain).await.verdict;
    }
    assert!(
        matches!(last, Verdict::NoPolicy(NoPolicyReason::DnsFailure(_))),
        "{last:?}"
    );
}

#[tokio::test]
async fn cold_lookups_of_one_domain_share_one_txt_query_and_one_fetch() {
    let s = setup();
    let domain = d("crowd.test");
    s.dns.publish("crowd.test", "1");
    s.fetch.serve(&domain, &policy("enforce", 86_400));
    s.fetch.hold();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let (r, dom) = (s.resolver.clone(), domain.clone());
        tasks.spawn(async move { r.lookup(&dom).await.verdict });
    }
    assert!(s.fetch.wait_fetches(&domain, 1, LIMIT).await);
    s.fetch.release();
    while let Some(v) = tasks.join_next().await {
        assert!(matches!(
            v.expect("task"),
            Verdict::Policy(Source::Fetched | Source::Cached)
        ));
    }
    assert_eq!(s.dns.txt_queries("_mta-sts.crowd.test"), 1);
    assert_eq!(s.dns.address_queries("mta-sts.crowd.test"), 1);
    assert_eq!(s.fetch.fetches(&domain), 1);
}

#[tokio::test]
async fn a_failing_refresh_rechecks_the_txt_at_most_once_per_txt_grace() {
    for broken in ["fetch fails", "txt removed"] {
        let s = setup();
        let domain = d("refresh.test");
        let txt = "_mta-sts.refresh.test";
        s.dns.publish("refresh.test", "1");
        s.fetch.serve(&domain, &policy("enforce", 3_600));
        s.resolver.lookup(&domain).await;
        match broken {
            "fetch fails" => s.fetch.fail(&domain, FetchError::Status(500)),
            _ => s.dns.set_txt(txt, Ok(mtasts_resolver::TxtAnswer::NxDomain)),
        }
        // Refresh is due at half the max_age.
        s.clock.advance(1_800);
        s.resolver.lookup(&domain).await;
        assert!(
            s.dns.wait_txt_queries(txt, 2, LIMIT).await,
            "{broken}: re-check"
        );
        if broken == "fetch fails" {
            assert!(
                s.fetch.wait_fetches(&domain, 2, LIMIT).await,
                "{broken}: refetch"
            );
        }
        settle().await;
        for _ in 0..200 {
            let l = s.resolver.lookup(&domain).await;
            assert_eq!(l.verdict, Verdict::Policy(Source::Cached), "{broken}");
            // Background re-checks the request may have started run before the next one.
            settle().await;
        }
        assert_eq!(
            s.dns.txt_queries(txt),
            2,
            "{broken}: no TXT query per request"
        );
        s.clock.advance(59);
        s.resolver.lookup(&domain).await;
        settle().await;
        assert_eq!(s.dns.txt_queries(txt), 2, "{broken}: none within txt_grace");
        s.clock.advance(1);
        s.resolver.lookup(&domain).await;
        assert!(
            s.dns.wait_txt_queries(txt, 3, LIMIT).await,
            "{broken}: one after it"
        );
    }
}

#[test]
fn the_promised_defaults() {
    // README: TXT re-checked at most once a minute, negatives reused 60 s, a failed id not
    // retried for 5 minutes, policies refreshed after a day; DANE decisions 5 min / 1 min / 10 s.
    let c = mtasts_core::CacheSettings::default();
    assert_eq!(
        (
            c.txt_grace,
            c.negative_ttl,
            c.fetch_backoff,
            c.refresh_interval
        ),
        (60, 60, 300, 86_400)
    );
    let dane = mtasts_resolver::DaneSettings::default();
    assert_eq!(
        (dane.positive_ttl, dane.negative_ttl, dane.failure_ttl),
        (
            Duration::from_secs(300),
            Duration::from_secs(60),
            Duration::from_secs(10)
        )
    );
}

#[tokio::test]
async fn a_flood_of_names_without_mta_sts_never_evicts_a_cached_policy() {
    let Setup {
        dns,
        fetch,
        clock,
        resolver,
    } = setup_with(
        ResolverSettings {
            memory_capacity: 1_000,
            ..quiet()
        },
        None,
    );
    let primed: Vec<DomainName> = (0..50).map(|i| d(&format!("enforce{i}.test"))).collect();
    for p in &primed {
        dns.publish(p.as_str(), "1");
        fetch.serve(p, &policy("enforce", 86_400));
        resolver.lookup(p).await;
    }
    // Mail to 20,000 recipient domains without MTA-STS (NXDOMAIN).
    for i in 0..20_000 {
        resolver.lookup(&d(&format!("nx{i}.test"))).await;
    }
    let (policies, negatives) = resolver.memory_tiers();
    assert_eq!(policies, 50);
    assert!(
        negatives <= 1_016,
        "negatives bounded on their own: {negatives}"
    );
    // An attacker now blocks the primed domains' TXT: the cached policies still apply.
    for p in &primed {
        dns.set_txt(&format!("_mta-sts.{}", p.as_str()), Err(DnsError::ServFail));
    }
    clock.advance(61);
    for p in &primed {
        assert_eq!(
            resolver.lookup(p).await.verdict,
            Verdict::Policy(Source::Cached),
            "{p}"
        );
    }
}

#[tokio::test]
async fn expired_entries_are_pruned_from_the_backing_store() {
    let dir = std::env::temp_dir().join(format!("mtasts-scripted-prune-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store =
        mtasts_store::AnyStore::open(&format!("sqlite:{}", dir.join("c.sqlite3").display()), 100)
            .await
            .expect("store");
    let Setup {
        dns,
        fetch,
        clock,
        resolver,
    } = setup_with(quiet(), Some(store));
    dns.publish("kept.test", "1");
    fetch.serve(&d("kept.test"), &policy("enforce", 86_400));
    resolver.lookup(&d("kept.test")).await;
    for i in 0..10 {
        resolver.lookup(&d(&format!("gone{i}.test"))).await;
    }
    assert_eq!(resolver.prune_expired().await, 0, "nothing expired yet");
    // Negatives live max(negative_ttl, fetch_backoff) = 300 s; the policy a day.
    clock.advance(300);
    assert_eq!(resolver.prune_expired().await, 10);
    clock.advance(86_400);
    assert_eq!(resolver.prune_expired().await, 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn cache_08_the_refresher_refetches_at_half_max_age_when_that_comes_first() {
    let s = setup();
    let domain = d("half.test");
    s.dns.publish("half.test", "1");
    s.fetch.serve(&domain, &policy("enforce", 3_600));
    s.resolver.lookup(&domain).await;
    assert_eq!(s.fetch.fetches(&domain), 1);
    // refresh_interval (1 day) is later than half of max_age (1,800 s): half wins.
    s.clock.advance(1_799);
    assert_eq!(s.resolver.refresh_due().await, 0, "not due at 1,799 s");
    assert_eq!(s.fetch.fetches(&domain), 1);
    s.clock.advance(1);
    assert_eq!(s.resolver.refresh_due().await, 1, "due at 1,800 s");
    assert_eq!(s.fetch.fetches(&domain), 2, "refetched with the same id");
    let l = s.resolver.lookup(&domain).await;
    assert_eq!(l.policy().map(|p| p.fetched_at), Some(T0 + 1_800));
}
