//! One behavioural suite, run against every backend: memory, SQLite and a real redis-server.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

use std::sync::Arc;
use std::time::Duration;

use mtasts_core::cache::{Absence, CachedPolicy, FailedFetch, FetchFailure, TxtLookup};
use mtasts_core::{Discovery, DomainName, DomainState, Policy};
use mtasts_store::{AnyStore, EntryMeta, MemoryStore, SqliteStore, Store};
use mtasts_testkit::RedisServer;

const NOW: u64 = 1_800_000_000;

fn d(name: &str) -> DomainName {
    DomainName::parse(name).expect("domain")
}

fn state(id: &str, mode: &str) -> Arc<DomainState> {
    let text = format!(
        "version: STSv1\nmode: {mode}\nmx: mx1.example.com\nmx: *.example.net\nmax_age: 86400\next: kept value\n"
    );
    Arc::new(DomainState {
        policy: Some(CachedPolicy {
            policy: Policy::parse(&text).expect("policy").policy,
            id: id.into(),
            fetched_at: NOW,
        }),
        txt: Some((NOW + 5, TxtLookup::Found(id.into()))),
        failed_fetch: Some(Box::new(FailedFetch {
            id: "next".into(),
            at: NOW + 7,
            failure: FetchFailure::WebPkiInvalid,
        })),
    })
}

fn meta(refresh: Option<u64>) -> EntryMeta {
    EntryMeta {
        refresh_at: refresh,
        expires_at: NOW + 86_400,
    }
}

/// A redis-server of the test's own. Missing is a failure that says what to do; with
/// `MTASTS_TEST_SKIP=redis` (or `missing`) the Redis tests are reported as ignored instead.
fn redis() -> RedisServer {
    RedisServer::start().unwrap_or_else(|e| {
        panic!(
            "{e}: install redis-server, or set MTASTS_TEST_SKIP=redis to report the Redis tests as ignored"
        )
    })
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Memory,
    Sqlite,
    Redis,
}

/// Runs `check` against a fresh store of `kind`, kept (with its server and files) until done.
async fn with_store<F, Fut>(kind: Kind, check: F)
where
    F: FnOnce(AnyStore) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = std::env::temp_dir().join(format!(
        "mtasts-store-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    let mut server = None;
    let store = match kind {
        Kind::Memory => AnyStore::Memory(Arc::new(MemoryStore::new(1000))),
        Kind::Sqlite => AnyStore::open(
            &format!("sqlite:{}", dir.join("cache.sqlite3").display()),
            0,
        )
        .await
        .expect("sqlite"),
        Kind::Redis => {
            let r = server.insert(redis());
            AnyStore::open(&r.url(), 0).await.expect("redis")
        }
    };
    check(store).await;
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

/// One test per backend for a check written against any store.
macro_rules! each_store {
    ($check:ident) => {
        mod $check {
            use super::*;

            #[tokio::test]
            async fn memory() {
                with_store(Kind::Memory, |s| async move { $check(&s).await }).await
            }

            #[tokio::test]
            async fn sqlite() {
                with_store(Kind::Sqlite, |s| async move { $check(&s).await }).await
            }

            #[cfg_attr(
                not(mtasts_run_redis),
                ignore = "needs redis-server (MTASTS_TEST_SKIP opted out)"
            )]
            #[tokio::test]
            async fn redis() {
                with_store(Kind::Redis, |s| async move { $check(&s).await }).await
            }
        }
    };
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

each_store!(round_trips_state_exactly);
async fn round_trips_state_exactly(s: &AnyStore) {
    let st = state("abc123", "enforce");
    s.put(&d("example.com"), st.clone(), meta(Some(NOW + 100)))
        .await
        .expect("put");
    let got = s
        .get(&d("example.com"))
        .await
        .expect("get")
        .expect("present");
    assert_eq!(*got, *st, "{}", s.kind());
    assert_eq!(
        s.get(&d("other.example")).await.expect("get"),
        None,
        "{}",
        s.kind()
    );
}

each_store!(negative_and_failure_states_round_trip);
async fn negative_and_failure_states_round_trip(s: &AnyStore) {
    let cases = [
        DomainState {
            policy: None,
            txt: Some((NOW, TxtLookup::Absent(Absence::NxDomain))),
            failed_fetch: None,
        },
        DomainState {
            policy: None,
            txt: Some((NOW, TxtLookup::Absent(Absence::NoData))),
            failed_fetch: None,
        },
        DomainState {
            policy: None,
            txt: Some((
                NOW,
                TxtLookup::Absent(Absence::Discovery(Discovery::Multiple(3))),
            )),
            failed_fetch: None,
        },
        DomainState {
            policy: None,
            txt: Some((NOW, TxtLookup::TempFail("SERVFAIL".into()))),
            failed_fetch: None,
        },
        DomainState {
            policy: None,
            txt: Some((NOW, TxtLookup::Found("x".into()))),
            failed_fetch: Some(Box::new(FailedFetch {
                id: "x".into(),
                at: NOW,
                failure: FetchFailure::PolicyInvalid,
            })),
        },
    ];
    for (i, c) in cases.iter().enumerate() {
        let name = d(&format!("neg{i}.example"));
        s.put(&name, Arc::new(c.clone()), meta(None))
            .await
            .expect("put");
        assert_eq!(
            s.get(&name).await.expect("get").as_deref(),
            Some(c),
            "{} case {i}",
            s.kind()
        );
    }
}

each_store!(put_replaces_and_due_lists_earliest_first);
async fn put_replaces_and_due_lists_earliest_first(s: &AnyStore) {
    s.put(&d("a.example"), state("1", "enforce"), meta(Some(NOW + 30)))
        .await
        .expect("put");
    s.put(&d("b.example"), state("1", "enforce"), meta(Some(NOW + 10)))
        .await
        .expect("put");
    s.put(
        &d("c.example"),
        state("1", "enforce"),
        meta(Some(NOW + 500)),
    )
    .await
    .expect("put");
    s.put(&d("n.example"), state("1", "none"), meta(None))
        .await
        .expect("put");
    let due = s.due(NOW + 60, 10).await.expect("due");
    assert_eq!(due, vec![d("b.example"), d("a.example")], "{}", s.kind());
    assert_eq!(
        s.due(NOW + 60, 1).await.expect("due"),
        vec![d("b.example")],
        "{}",
        s.kind()
    );
    // Replacing an entry moves (or removes) its refresh time.
    s.put(&d("b.example"), state("2", "enforce"), meta(None))
        .await
        .expect("put");
    assert_eq!(
        s.due(NOW + 60, 10).await.expect("due"),
        vec![d("a.example")],
        "{}",
        s.kind()
    );
    let b = s.get(&d("b.example")).await.expect("get").expect("present");
    assert_eq!(
        b.policy.as_ref().map(|p| p.id.as_ref()),
        Some("2"),
        "{}",
        s.kind()
    );
    s.flush().await.expect("flush");
}

#[tokio::test]
async fn memory_store_is_bounded() {
    let m = MemoryStore::new(64);
    for i in 0..1000 {
        m.put(
            &d(&format!("d{i}.example")),
            state("1", "enforce"),
            meta(None),
        )
        .await
        .expect("put");
    }
    assert!(m.len() <= 64 + 16, "bounded: {}", m.len());
    assert!(
        m.get(&d("d999.example")).await.expect("get").is_some(),
        "the newest stays"
    );
    assert!(
        m.get(&d("d0.example")).await.expect("get").is_none(),
        "the oldest went"
    );
}

#[tokio::test]
async fn sqlite_survives_reopen_and_reports_corrupt_entries_clearly() {
    let dir = std::env::temp_dir().join(format!(
        "mtasts-sqlite-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    let path = dir.join("nested/cache.sqlite3");
    {
        let s = SqliteStore::open(&path)
            .await
            .expect("open creates directories");
        s.put(&d("example.com"), state("a", "testing"), meta(Some(NOW)))
            .await
            .expect("put");
    }
    let s = SqliteStore::open(&path).await.expect("reopen");
    assert_eq!(
        s.get(&d("example.com")).await.expect("get").as_deref(),
        Some(&*state("a", "testing"))
    );
    let conn = rusqlite_raw(&path);
    conn.execute("UPDATE domain_state SET state = '{\"v\":1,\"policy\":{\"text\":\"mode: bogus\",\"id\":\"a\",\"fetched_at\":1}}'", [])
        .expect("corrupt");
    let e = s.get(&d("example.com")).await.expect_err("corrupt entry");
    assert!(e.to_string().contains("stored policy"), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}

fn rusqlite_raw(path: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).expect("raw open")
}

#[cfg_attr(
    not(mtasts_run_redis),
    ignore = "needs redis-server (MTASTS_TEST_SKIP opted out)"
)]
#[tokio::test]
async fn redis_lock_admits_one_holder_and_expires() {
    let redis = redis();
    let a = AnyStore::open(&redis.url(), 0).await.expect("a");
    let b = AnyStore::open(&redis.url(), 0).await.expect("b");
    let dom = d("locked.example");
    // Held long enough that a slow machine cannot let it lapse between the steps.
    let held = Duration::from_secs(30);
    assert!(a.try_lock(&dom, held).await.expect("lock"));
    assert!(
        !b.try_lock(&dom, held).await.expect("lock"),
        "second host refused"
    );
    b.unlock(&dom)
        .await
        .expect("unlock by non-owner is a no-op");
    assert!(
        !b.try_lock(&dom, held).await.expect("lock"),
        "still held by a"
    );
    // The lock carries the TTL asked for, so a crashed holder frees it.
    let client = redis::Client::open(redis.url()).expect("client");
    let mut c = client
        .get_multiplexed_async_connection()
        .await
        .expect("conn");
    let pttl: i64 = redis::cmd("PTTL")
        .arg("mtasts:v1:lock:locked.example")
        .query_async(&mut c)
        .await
        .expect("pttl");
    assert!((20_000..=30_000).contains(&pttl), "pttl {pttl}");
    a.unlock(&dom).await.expect("unlock");
    assert!(
        b.try_lock(&dom, held).await.expect("lock"),
        "unlocked by its owner"
    );
    b.unlock(&dom).await.expect("unlock");
    // A short lock lapses by itself: polled, not slept on.
    let brief = d("brief.example");
    assert!(
        a.try_lock(&brief, Duration::from_millis(200))
            .await
            .expect("lock")
    );
    let mut free = false;
    for _ in 0..250 {
        if b.try_lock(&brief, held).await.expect("lock") {
            free = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(free, "expired lock is free");
}

#[cfg_attr(
    not(mtasts_run_redis),
    ignore = "needs redis-server (MTASTS_TEST_SKIP opted out)"
)]
#[tokio::test]
async fn redis_entries_expire_with_their_policy() {
    let redis = redis();
    let s = AnyStore::open(&redis.url(), 0).await.expect("redis");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .expect("time");
    s.put(
        &d("short.example"),
        state("1", "enforce"),
        EntryMeta {
            refresh_at: None,
            expires_at: now + 61,
        },
    )
    .await
    .expect("put");
    let client = redis::Client::open(redis.url()).expect("client");
    let mut c = client
        .get_multiplexed_async_connection()
        .await
        .expect("conn");
    let ttl: i64 = redis::cmd("TTL")
        .arg("mtasts:v1:state:short.example")
        .query_async(&mut c)
        .await
        .expect("ttl");
    assert!((55..=61).contains(&ttl), "ttl {ttl}");
}

#[cfg_attr(
    not(mtasts_run_redis),
    ignore = "needs redis-server (MTASTS_TEST_SKIP opted out)"
)]
#[tokio::test]
async fn redis_down_is_a_counted_error_not_a_hang() {
    let mut redis = redis();
    let url = redis.url();
    let s = AnyStore::open(&url, 0).await.expect("redis");
    s.put(&d("x.example"), state("1", "enforce"), meta(None))
        .await
        .expect("put");
    redis.stop();
    // It fails rather than hangs (the bound is far above the store's own operation timeout;
    // it is a liveness check, not a speed target).
    let e = tokio::time::timeout(Duration::from_secs(30), s.get(&d("x.example")))
        .await
        .expect("a down Redis fails the operation instead of hanging it")
        .expect_err("down");
    assert!(e.to_string().contains("Redis"), "{e}");
    let AnyStore::Redis(r) = &s else {
        panic!("redis")
    };
    assert!(r.errors() >= 1);
}

#[tokio::test]
async fn sqlite_prunes_expired_entries_in_bounded_batches() {
    let dir = std::env::temp_dir().join(format!("mtasts-prune-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let s = SqliteStore::open(dir.join("c.sqlite3"))
        .await
        .expect("open");
    for i in 0..5 {
        let expires_at = if i < 3 { NOW - 1 } else { NOW + 3_600 };
        s.put(
            &d(&format!("d{i}.example")),
            state("1", "enforce"),
            EntryMeta {
                refresh_at: None,
                expires_at,
            },
        )
        .await
        .expect("put");
    }
    assert_eq!(
        s.prune(NOW, 2).await.expect("prune"),
        2,
        "at most the limit"
    );
    assert_eq!(s.prune(NOW, 100).await.expect("prune"), 1);
    assert_eq!(s.prune(NOW, 100).await.expect("prune"), 0);
    assert_eq!(s.count().await.expect("count"), 2);
    assert!(
        s.get(&d("d4.example")).await.expect("get").is_some(),
        "unexpired kept"
    );
    assert!(s.get(&d("d0.example")).await.expect("get").is_none());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Remembered TLS in Redis (a fleet shares one memory): the same operations as SQLite's.
#[cfg_attr(
    not(mtasts_run_redis),
    ignore = "needs redis-server (MTASTS_TEST_SKIP opted out)"
)]
#[tokio::test]
async fn remembered_tls_memories_in_redis() {
    use mtasts_core::remember::{Rule, Seen};
    use mtasts_store::remember::Remembered;
    let redis = redis();
    let spec: mtasts_store::CacheSpec = redis.url().parse().expect("spec");
    let r = Remembered::open(&spec)
        .await
        .expect("open")
        .expect("redis keeps memories");
    let rule = Rule {
        min_deliveries: 2,
        min_span: 0,
        max_age: 86_400,
    };
    for at in [1_000, 1_001] {
        r.update("a.example", move |m| m.observe(Seen::Tls, at, &rule))
            .await
            .expect("update");
    }
    // Another host of the fleet sees the same memory.
    let other = Remembered::open(&spec).await.expect("open").expect("redis");
    let all = other.all().await.expect("all");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].0, "a.example");
    assert!(all[0].1.state(&rule, 1_002).remembered());
    assert!(other.forget("a.example").await.expect("forget"));
    assert!(r.all().await.expect("all").is_empty());
}
