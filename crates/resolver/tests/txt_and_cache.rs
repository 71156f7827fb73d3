//! RFC 8461 §3.1 discovery and the §3.3/§5.1/§8.3 cache transitions, through real DNS and
//! HTTPS from the testkit, for every cache backend.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

mod support;

use std::time::Duration;

use hickory_proto::rr::RecordType;
use mtasts_core::cache::{Absence, NoPolicyReason, Source, Verdict};
use mtasts_core::{Discovery, DomainName, Mode};
use mtasts_resolver::{ManualClock, Origin};
use mtasts_store::Store;
use mtasts_testkit::{DnsFault, PolicyHost, World};
use support::*;

fn d(s: &str) -> DomainName {
    DomainName::parse(s).expect("domain")
}

const DAY: u64 = 86_400;

async fn published(domain: &str, id: &str, mode: &str, max_age: u64) -> World {
    World::builder()
        .txt(&format!("_mta-sts.{domain}"), &format!("v=STSv1; id={id};"))
        .policy(
            domain,
            PolicyHost::ok(&policy(mode, &[&format!("mx1.{domain}")], max_age)),
        )
        .build()
        .await
        .expect("world")
}

// ---- §3.1 discovery -------------------------------------------------------------------

#[tokio::test]
async fn txt_02_cname_at_mta_sts_is_followed() {
    let w = World::builder()
        .cname("_mta-sts.user.test", "_mta-sts.provider.test")
        .txt("_mta-sts.provider.test", "v=STSv1; id=9;")
        .policy(
            "user.test",
            PolicyHost::ok(&policy("enforce", &["mx.user.test"], DAY)),
        )
        .build()
        .await
        .expect("world");
    let clock = ManualClock::new(T0);
    let l = resolver(&w, None, &clock, settings())
        .lookup(&d("user.test"))
        .await;
    assert_eq!(l.policy().map(|p| p.id.as_ref()), Some("9"));
    assert_eq!(
        w.policy_requests("user.test")[0].tls.sni.as_deref(),
        Some("mta-sts.user.test"),
        "PHC-06"
    );
}

#[tokio::test]
async fn txt_03_split_strings_are_joined() {
    let w = World::builder()
        .txt_strings("_mta-sts.split.test", &["v=STSv1; id=ab", "cd;"])
        .txt("_mta-sts.split.test", "v=spf1 -all")
        .policy(
            "split.test",
            PolicyHost::ok(&policy("testing", &["mx.split.test"], DAY)),
        )
        .build()
        .await
        .expect("world");
    let clock = ManualClock::new(T0);
    let l = resolver(&w, None, &clock, settings())
        .lookup_traced(&d("split.test"))
        .await;
    assert_eq!(
        l.policy().map(|p| p.id.as_ref()),
        Some("abcd"),
        "{:?}",
        l.steps
    );
}

#[tokio::test]
async fn txt_05_06_several_or_invalid_records_mean_no_policy_and_no_fetch() {
    let w = World::builder()
        .txt("_mta-sts.two.test", "v=STSv1; id=1;")
        .txt("_mta-sts.two.test", "v=STSv1; id=2;")
        .policy(
            "two.test",
            PolicyHost::ok(&policy("enforce", &["mx.two.test"], DAY)),
        )
        .txt("_mta-sts.badid.test", "v=STSv1; id=2024-01-01;")
        .policy(
            "badid.test",
            PolicyHost::ok(&policy("enforce", &["mx.badid.test"], DAY)),
        )
        .build()
        .await
        .expect("world");
    let clock = ManualClock::new(T0);
    let r = resolver(&w, None, &clock, settings());
    let l = r.lookup(&d("two.test")).await;
    assert_eq!(
        l.verdict,
        Verdict::NoPolicy(NoPolicyReason::NoRecord(Absence::Discovery(
            Discovery::Multiple(2)
        )))
    );
    let l = r.lookup(&d("badid.test")).await;
    assert!(matches!(
        l.verdict,
        Verdict::NoPolicy(NoPolicyReason::NoRecord(Absence::Discovery(
            Discovery::Invalid(_)
        )))
    ));
    assert!(w.policy_requests("two.test").is_empty() && w.policy_requests("badid.test").is_empty());
}

#[tokio::test]
async fn dns_01_nxdomain_and_nodata_mean_no_policy_and_are_cached_briefly() {
    let w = World::builder()
        .mx("nodata.test", 10, "mx.nodata.test")
        .txt("_mta-sts.nodata.test", "x")
        .dns_fault("_mta-sts.nodata.test", DnsFault::NoData)
        .build()
        .await
        .expect("world");
    let clock = ManualClock::new(T0);
    let r = resolver(&w, None, &clock, settings());
    let l = r.lookup(&d("missing.test")).await;
    assert_eq!(
        l.verdict,
        Verdict::NoPolicy(NoPolicyReason::NoRecord(Absence::NxDomain))
    );
    assert_eq!(
        r.lookup(&d("nodata.test")).await.verdict,
        Verdict::NoPolicy(NoPolicyReason::NoRecord(Absence::NoData))
    );
    for _ in 0..100 {
        let l = r.lookup(&d("missing.test")).await;
        assert_eq!(l.origin, Origin::Memory);
    }
    assert_eq!(
        w.dns_queries("_mta-sts.missing.test", RecordType::TXT),
        1,
        "negative answer reused"
    );
    clock.advance(61);
    r.lookup(&d("missing.test")).await;
    assert_eq!(
        w.dns_queries("_mta-sts.missing.test", RecordType::TXT),
        2,
        "re-asked after the negative TTL"
    );
}

#[tokio::test]
async fn dns_02_servfail_and_timeout_without_cache_mean_no_policy() {
    let w = World::builder()
        .dns_fault("_mta-sts.servfail.test", DnsFault::ServFail)
        .dns_fault("_mta-sts.timeout.test", DnsFault::Drop)
        .build()
        .await
        .expect("world");
    let clock = ManualClock::new(T0);
    // The timeout is the subject here: short, so the test does not wait out the default.
    let r = resolver_with_dns_timeout(&w, None, &clock, settings(), Duration::from_millis(400));
    let l = r.lookup(&d("servfail.test")).await;
    assert!(
        matches!(&l.verdict, Verdict::NoPolicy(NoPolicyReason::DnsFailure(w)) if w.contains("SERVFAIL")),
        "{:?}",
        l.verdict
    );
    let l = r.lookup(&d("timeout.test")).await;
    assert!(
        matches!(&l.verdict, Verdict::NoPolicy(NoPolicyReason::DnsFailure(w)) if w.contains("timed out")),
        "{:?}",
        l.verdict
    );
    // Deferring instead is the zone's `defer_on_failure`, applied by the decision (daemon
    // tests: socketmap.rs::failures_without_cache_are_notfound_or_temp_per_zone).
}

#[tokio::test]
async fn dns_truncated_udp_answer_is_retried_over_tcp() {
    let w = World::builder()
        .txt("_mta-sts.tc.test", "v=STSv1; id=tcp1;")
        .dns_fault("_mta-sts.tc.test", DnsFault::Truncate)
        .policy(
            "tc.test",
            PolicyHost::ok(&policy("enforce", &["mx.tc.test"], DAY)),
        )
        .build()
        .await
        .expect("world");
    let clock = ManualClock::new(T0);
    let l = resolver(&w, None, &clock, settings())
        .lookup(&d("tc.test"))
        .await;
    assert_eq!(l.policy().map(|p| p.id.as_ref()), Some("tcp1"));
}

#[tokio::test]
async fn dom_03_only_the_exact_domain_is_queried() {
    let w = published("example.test", "1", "enforce", DAY).await;
    let clock = ManualClock::new(T0);
    let l = resolver(&w, None, &clock, settings())
        .lookup(&d("mail.example.test"))
        .await;
    assert!(matches!(l.verdict, Verdict::NoPolicy(_)));
    assert_eq!(
        w.dns_queries("_mta-sts.mail.example.test", RecordType::TXT),
        1
    );
    assert_eq!(
        w.dns_queries("_mta-sts.example.test", RecordType::TXT),
        0,
        "never the parent"
    );
}

// ---- cache transitions, for each backend ---------------------------------------------------

each_backend!(
    cache_03_same_id_is_not_refetched_each_backend,
    [memory, sqlite, redis]
);
async fn cache_03_same_id_is_not_refetched_each_backend(name: &str, spec: &str) {
    let w = published("same.test", "1", "enforce", 30 * DAY).await;
    let clock = ManualClock::new(T0);
    let r = resolver(&w, Some(open(spec).await), &clock, settings());
    assert_eq!(
        r.lookup(&d("same.test")).await.verdict,
        Verdict::Policy(Source::Fetched),
        "{name}"
    );
    for step in 0..5u64 {
        clock.advance(120);
        let l = r.lookup(&d("same.test")).await;
        assert_eq!(
            (l.verdict, l.origin),
            (Verdict::Policy(Source::Cached), Origin::Memory),
            "{name} {step}"
        );
        let expected = 2 + step;
        eventually("background TXT re-check", || {
            w.dns_queries("_mta-sts.same.test", RecordType::TXT) == expected
        })
        .await;
    }
    settled(&r).await;
    assert_eq!(
        w.policy_requests("same.test").len(),
        1,
        "{name}: one fetch only"
    );
}

each_backend!(
    cache_04_new_id_refetches_and_replaces_each_backend,
    [memory, sqlite, redis]
);
async fn cache_04_new_id_refetches_and_replaces_each_backend(name: &str, spec: &str) {
    let w = published("new.test", "1", "testing", 30 * DAY).await;
    let clock = ManualClock::new(T0);
    let r = resolver(&w, Some(open(spec).await), &clock, settings());
    r.lookup(&d("new.test")).await;
    w.set_policy(
        "new.test",
        PolicyHost::ok(&policy("enforce", &["mx2.new.test"], DAY)),
    )
    .expect("set_policy");
    w.set_txt("_mta-sts.new.test", Some("v=STSv1; id=2;"));
    clock.advance(61);
    let l = r.lookup(&d("new.test")).await;
    assert_eq!(
        l.policy().map(|p| p.id.as_ref()),
        Some("1"),
        "{name}: answered at once from cache"
    );
    eventually("refetch", || w.policy_requests("new.test").len() == 2).await;
    let mut latest = None;
    for _ in 0..50 {
        let l = r.lookup(&d("new.test")).await;
        if l.policy().map(|p| p.id.as_ref()) == Some("2") {
            latest = Some(l);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let l = latest.unwrap_or_else(|| panic!("{name}: new policy never applied"));
    let p = l.policy().expect("policy");
    assert_eq!(
        (p.policy.mode, p.fetched_at),
        (Mode::Enforce, T0 + 61),
        "{name}"
    );
}

each_backend!(
    cache_05_failed_refetch_keeps_the_valid_policy_each_backend,
    [memory, sqlite, redis]
);
async fn cache_05_failed_refetch_keeps_the_valid_policy_each_backend(name: &str, spec: &str) {
    let w = published("keep.test", "1", "enforce", 30 * DAY).await;
    let clock = ManualClock::new(T0);
    let r = resolver(&w, Some(open(spec).await), &clock, settings());
    r.lookup(&d("keep.test")).await;
    for (i, broken) in [
        PolicyHost {
            status: 500,
            ..PolicyHost::default()
        },
        PolicyHost::ok("version: STSv1\nmode: none\nmax_age: x\n"),
        PolicyHost {
            content_type: Some("text/html".into()),
            ..PolicyHost::ok(&policy("none", &[], DAY))
        },
    ]
    .into_iter()
    .enumerate()
    {
        w.set_policy("keep.test", broken).expect("set_policy");
        w.set_txt("_mta-sts.keep.test", Some(&format!("v=STSv1; id=bad{i};")));
        clock.advance(400); // past grace and the back-off of the previous id
        let before = w.policy_requests("keep.test").len();
        r.lookup(&d("keep.test")).await;
        eventually("refetch attempt", || {
            w.policy_requests("keep.test").len() > before
        })
        .await;
        settled(&r).await;
        let l = r.lookup(&d("keep.test")).await;
        assert_eq!(
            l.policy().map(|p| (p.id.as_ref(), p.policy.mode)),
            Some(("1", Mode::Enforce)),
            "{name} case {i}"
        );
    }
    // FETCH-09: the failed id is not fetched again within 5 minutes.
    let n = w.policy_requests("keep.test").len();
    clock.advance(61);
    r.lookup(&d("keep.test")).await;
    settled(&r).await;
    assert_eq!(w.policy_requests("keep.test").len(), n, "{name}: back-off");
}

each_backend!(
    cache_06_txt_gone_or_failing_keeps_policy_until_expiry_each_backend,
    [memory, sqlite, redis]
);
async fn cache_06_txt_gone_or_failing_keeps_policy_until_expiry_each_backend(
    name: &str,
    spec: &str,
) {
    let w = published("gone.test", "1", "enforce", 2 * DAY).await;
    let clock = ManualClock::new(T0);
    let r = resolver(&w, Some(open(spec).await), &clock, settings());
    r.lookup(&d("gone.test")).await;
    w.set_txt("_mta-sts.gone.test", None);
    w.set_policy(
        "gone.test",
        PolicyHost {
            status: 404,
            ..PolicyHost::default()
        },
    )
    .expect("set_policy");
    clock.advance(DAY);
    let l = r.lookup(&d("gone.test")).await;
    assert_eq!(l.verdict, Verdict::Policy(Source::Cached), "{name}");
    settled(&r).await;
    clock.advance(DAY - 10);
    assert_eq!(
        r.lookup(&d("gone.test")).await.verdict,
        Verdict::Policy(Source::Cached),
        "{name}: still before expiry"
    );
    clock.advance(20);
    settled(&r).await;
    let l = r.lookup(&d("gone.test")).await;
    assert_eq!(
        l.verdict,
        Verdict::NoPolicy(NoPolicyReason::NoRecord(Absence::NxDomain)),
        "{name}: expired"
    );
}

each_backend!(
    cache_07_fetched_none_withdraws_each_backend,
    [memory, sqlite, redis]
);
async fn cache_07_fetched_none_withdraws_each_backend(name: &str, spec: &str) {
    let w = published("withdraw.test", "1", "enforce", 300 * DAY).await;
    let clock = ManualClock::new(T0);
    let r = resolver(&w, Some(open(spec).await), &clock, settings());
    r.lookup(&d("withdraw.test")).await;
    w.set_policy("withdraw.test", PolicyHost::ok(&policy("none", &[], DAY)))
        .expect("set_policy");
    w.set_txt("_mta-sts.withdraw.test", Some("v=STSv1; id=2;"));
    clock.advance(61);
    r.lookup(&d("withdraw.test")).await;
    eventually("refetch", || w.policy_requests("withdraw.test").len() == 2).await;
    settled(&r).await;
    let l = r.lookup(&d("withdraw.test")).await;
    assert_eq!(
        l.policy().map(|p| p.policy.mode),
        Some(Mode::None),
        "{name}"
    );
}

each_backend!(
    cache_08_proactive_refresh_before_expiry_each_backend,
    [memory, sqlite, redis]
);
async fn cache_08_proactive_refresh_before_expiry_each_backend(name: &str, spec: &str) {
    let w = published("fresh.test", "1", "enforce", 7 * DAY).await;
    let clock = ManualClock::new(T0);
    let r = resolver(&w, Some(open(spec).await), &clock, settings());
    r.lookup(&d("fresh.test")).await;
    clock.advance(DAY - 1);
    assert_eq!(r.refresh_due().await, 0, "{name}: nothing due yet");
    clock.advance(1);
    assert_eq!(r.refresh_due().await, 1, "{name}");
    assert_eq!(
        w.policy_requests("fresh.test").len(),
        2,
        "{name}: refetched with the same id"
    );
    let l = r.lookup(&d("fresh.test")).await;
    assert_eq!(
        l.policy().map(|p| p.fetched_at),
        Some(T0 + DAY),
        "{name}: fetched_at reset"
    );
    assert_eq!(r.stats().refreshes.get(), 1);
}

each_backend!(
    cache_13_persistent_backends_survive_a_restart,
    [sqlite, redis]
);
async fn cache_13_persistent_backends_survive_a_restart(name: &str, spec: &str) {
    let w = published("persist.test", "1", "enforce", 30 * DAY).await;
    let clock = ManualClock::new(T0);
    {
        let r = resolver(&w, Some(open(spec).await), &clock, settings());
        r.lookup(&d("persist.test")).await;
        r.flush().await;
    }
    // The policy host is now blocked (an attacker): the stored policy still applies.
    w.set_policy(
        "persist.test",
        PolicyHost {
            hang: true,
            ..PolicyHost::default()
        },
    )
    .expect("set_policy");
    w.with_zone(|z| z.fault("_mta-sts.persist.test", DnsFault::ServFail));
    let r = resolver(&w, Some(open(spec).await), &clock, settings());
    let l = r.lookup(&d("persist.test")).await;
    assert_eq!(l.verdict, Verdict::Policy(Source::Cached), "{name}");
    assert_eq!(
        l.policy().map(|p| p.policy.mode),
        Some(Mode::Enforce),
        "{name}"
    );
}

#[tokio::test]
async fn coalescing_1000_cold_lookups_cost_one_txt_query_and_one_fetch() {
    let w = World::builder()
        .txt("_mta-sts.hot.test", "v=STSv1; id=1;")
        .policy(
            "hot.test",
            PolicyHost {
                delay_ms: 100,
                ..PolicyHost::ok(&policy("enforce", &["mx.hot.test"], DAY))
            },
        )
        .build()
        .await
        .expect("world");
    let clock = ManualClock::new(T0);
    let r = resolver(&w, None, &clock, settings());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let r = r.clone();
        tasks.spawn(async move { r.lookup(&d("hot.test")).await.verdict });
    }
    let mut applied = 0;
    while let Some(v) = tasks.join_next().await {
        if matches!(v.expect("task"), Verdict::Policy(_)) {
            applied += 1;
        }
    }
    assert_eq!(applied, 1000);
    assert_eq!(w.dns_queries("_mta-sts.hot.test", RecordType::TXT), 1);
    assert_eq!(w.policy_requests("hot.test").len(), 1);
}

#[cfg_attr(
    not(mtasts_run_redis),
    ignore = "needs redis-server (MTASTS_TEST_SKIP opted out)"
)]
#[tokio::test]
async fn redis_unreachable_lookups_still_work_and_errors_are_counted() {
    let mut redis = redis();
    let url = redis.url();
    let w = published("fleet.test", "1", "enforce", 30 * DAY).await;
    let clock = ManualClock::new(T0);
    let store = open(&url).await;
    redis.stop();
    let r = resolver(&w, Some(store), &clock, settings());
    let l = r.lookup(&d("fleet.test")).await;
    assert_eq!(
        l.verdict,
        Verdict::Policy(Source::Fetched),
        "correct answer without Redis"
    );
    let l = r.lookup(&d("fleet.test")).await;
    assert_eq!(
        (l.verdict, l.origin),
        (Verdict::Policy(Source::Cached), Origin::Memory)
    );
    assert!(r.stats().store_errors.get() >= 1);
}

#[cfg_attr(
    not(mtasts_run_redis),
    ignore = "needs redis-server (MTASTS_TEST_SKIP opted out)"
)]
#[tokio::test]
async fn redis_fleet_shares_policies_between_hosts() {
    let redis = redis();
    let w = published("shared.test", "1", "enforce", 30 * DAY).await;
    let clock = ManualClock::new(T0);
    let a = resolver(&w, Some(open(&redis.url()).await), &clock, settings());
    let host_b = resolver(&w, Some(open(&redis.url()).await), &clock, settings());
    a.lookup(&d("shared.test")).await;
    let l = host_b.lookup(&d("shared.test")).await;
    assert_eq!(
        l.verdict,
        Verdict::Policy(Source::Cached),
        "host B answers from the shared cache"
    );
    assert_eq!(w.policy_requests("shared.test").len(), 1);
}

#[cfg_attr(
    not(mtasts_run_redis),
    ignore = "needs redis-server (MTASTS_TEST_SKIP opted out)"
)]
#[tokio::test]
async fn redis_fleet_refreshes_and_rechecks_each_domain_once() {
    let redis = redis();
    let w = published("once.test", "1", "enforce", 30 * DAY).await;
    let clock = ManualClock::new(T0);
    let a = resolver(&w, Some(open(&redis.url()).await), &clock, settings());
    let host_b = resolver(&w, Some(open(&redis.url()).await), &clock, settings());
    a.lookup(&d("once.test")).await;
    host_b.lookup(&d("once.test")).await;
    let seen = || {
        (
            w.dns_queries("_mta-sts.once.test", RecordType::TXT),
            w.policy_requests("once.test").len(),
        )
    };
    assert_eq!(seen(), (1, 1), "host B took host A's policy");
    // A day on, the proactive refresh is due on both hosts (each has it in memory): one of
    // them refreshes, the other takes its result from the shared store.
    clock.advance(DAY + 1);
    assert_eq!(a.refresh_due().await, 1);
    assert_eq!(host_b.refresh_due().await, 1);
    assert_eq!(seen(), (2, 2), "(TXT, fetches): one refresh for the fleet");
    // Past the TXT grace, a request on each host: one re-check for the fleet.
    clock.advance(120);
    let rechecked_at = T0 + DAY + 1 + 120;
    let checked_at = |r: &mtasts_resolver::NetResolver| {
        r.lookup_now(&d("once.test"))
            .and_then(|l| l.state)
            .and_then(|s| s.txt.as_ref().map(|(at, _)| *at))
    };
    a.lookup(&d("once.test")).await;
    let shared = open(&redis.url()).await;
    let mut stored = false;
    for _ in 0..150 {
        let s = shared.get(&d("once.test")).await.ok().flatten();
        if s.is_some_and(|s| s.txt.as_ref().is_some_and(|(at, _)| *at == rechecked_at)) {
            stored = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(stored, "host A's re-check reached the shared store");
    host_b.lookup(&d("once.test")).await;
    eventually("host B took host A's re-check", || {
        checked_at(&host_b) == Some(rechecked_at)
    })
    .await;
    assert_eq!(seen(), (3, 2), "(TXT, fetches): one re-check for the fleet");
}

#[cfg_attr(
    not(mtasts_run_redis),
    ignore = "needs redis-server (MTASTS_TEST_SKIP opted out)"
)]
#[tokio::test]
async fn entries_whose_write_failed_are_written_once_the_store_recovers() {
    let mut redis = redis();
    let w = published("later.test", "1", "enforce", 30 * DAY).await;
    let clock = ManualClock::new(T0);
    let r = resolver(&w, Some(open(&redis.url()).await), &clock, settings());
    redis.stop();
    let l = r.lookup(&d("later.test")).await;
    assert_eq!(
        l.verdict,
        Verdict::Policy(Source::Fetched),
        "answered without the store"
    );
    assert_eq!(r.unsaved_len(), 1, "the failed write is remembered");
    assert_eq!(r.retry_unsaved().await, 0, "still down: nothing written");
    assert_eq!(r.unsaved_len(), 1);
    redis.restart().expect("redis back");
    // The client reconnects on its own; the first attempts may still see the old connection.
    let mut written = 0;
    for _ in 0..50 {
        written += r.retry_unsaved().await;
        if r.unsaved_len() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!((written, r.unsaved_len()), (1, 0));
    let stored = open(&redis.url())
        .await
        .get(&d("later.test"))
        .await
        .expect("read")
        .expect("written after the recovery");
    assert_eq!(
        stored.policy.as_ref().map(|p| p.id.to_string()),
        Some("1".into())
    );
}

#[tokio::test]
async fn a_sqlite_cache_unopenable_at_start_is_opened_once_the_disk_is_fixed_and_gets_what_was_looked_up()
 {
    let dir = std::env::temp_dir().join(format!("mtasts-reopen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    // The cache's directory is a regular file: SQLite cannot open the cache.
    let blocked = dir.join("state");
    std::fs::write(&blocked, b"").expect("blocker");
    let file = blocked.join("cache.sqlite3");
    let reopening = std::sync::Arc::new(mtasts_store::ReopeningSqlite::new(&file, Duration::ZERO));
    let store = mtasts_store::AnyStore::ReopeningSqlite(reopening.clone());
    let w = published("reopen.test", "1", "enforce", 30 * DAY).await;
    let clock = ManualClock::new(T0);
    let r = resolver(&w, Some(store), &clock, settings());
    let l = r.lookup(&d("reopen.test")).await;
    assert_eq!(
        l.verdict,
        Verdict::Policy(Source::Fetched),
        "answered without the cache"
    );
    assert_eq!(r.unsaved_len(), 1, "the entry waits in memory");
    assert_eq!(r.retry_unsaved().await, 0, "still unopenable");
    assert!(!reopening.is_open());
    // The disk is fixed: the directory exists now.
    std::fs::remove_file(&blocked).expect("unblock");
    std::fs::create_dir_all(&blocked).expect("directory");
    assert_eq!(r.retry_unsaved().await, 1, "written once it opens");
    assert!(reopening.is_open());
    r.flush().await;
    let stored = mtasts_store::SqliteStore::open(&file)
        .await
        .expect("open the file")
        .get(&d("reopen.test"))
        .await
        .expect("read")
        .expect("the entry looked up while the cache was down");
    assert_eq!(
        stored.policy.as_ref().map(|p| p.id.to_string()),
        Some("1".into())
    );
    let _ = std::fs::remove_dir_all(&dir);
}
