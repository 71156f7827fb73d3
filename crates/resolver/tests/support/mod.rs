//! Shared setup: a resolver pointed at a testkit world, for each cache backend.

#![allow(dead_code, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use mtasts_core::CacheSettings;
use mtasts_resolver::{
    FetchSettings, HickoryDns, HttpsFetcher, ManualClock, NetResolver, Resolver, ResolverSettings,
    client_config,
};
use mtasts_store::AnyStore;
use mtasts_testkit::{RedisServer, World};

pub const T0: u64 = 1_900_000_000;

pub fn policy(mode: &str, mx: &[&str], max_age: u64) -> String {
    let mut p = format!("version: STSv1\nmode: {mode}\n");
    for m in mx {
        p.push_str(&format!("mx: {m}\n"));
    }
    p.push_str(&format!("max_age: {max_age}\n"));
    p
}

pub fn settings() -> ResolverSettings {
    ResolverSettings {
        cache: CacheSettings::default(),
        refresh: false,
        refresh_jitter: Duration::ZERO,
        ..ResolverSettings::default()
    }
}

/// Per DNS query: generous, so a loaded machine does not turn an answer into a timeout.
pub const DNS_TIMEOUT: Duration = Duration::from_secs(5);

pub fn resolver(
    world: &World,
    backing: Option<AnyStore>,
    clock: &ManualClock,
    settings: ResolverSettings,
) -> NetResolver {
    resolver_with_dns_timeout(world, backing, clock, settings, DNS_TIMEOUT)
}

/// [`resolver`] with its own DNS timeout (for tests whose subject is the timeout).
pub fn resolver_with_dns_timeout(
    world: &World,
    backing: Option<AnyStore>,
    clock: &ManualClock,
    settings: ResolverSettings,
    dns_timeout: Duration,
) -> NetResolver {
    let dns = Arc::new(HickoryDns::new(Some(world.dns_addr()), dns_timeout).expect("dns"));
    let tls = client_config(Some(world.ca_file())).expect("tls");
    let fetch = HttpsFetcher::new(
        dns.clone(),
        tls,
        FetchSettings {
            connect_map: world.port_map(),
            connect_timeout: Duration::from_secs(2),
            total_timeout: Duration::from_millis(1500),
            ..FetchSettings::default()
        },
    );
    Resolver::new(dns, fetch, backing, Arc::new(clock.clone()), settings)
}

/// A redis-server of the test's own. Missing is a failure that says what to do; with
/// `MTASTS_TEST_SKIP=redis` (or `missing`) the Redis tests are reported as ignored instead.
pub fn redis() -> RedisServer {
    RedisServer::start().unwrap_or_else(|e| {
        panic!(
            "{e}: install redis-server, or set MTASTS_TEST_SKIP=redis to report the Redis tests as ignored"
        )
    })
}

/// A cache backend kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Memory,
    Sqlite,
    Redis,
}

/// One backend for a cache test, with what it needs (a directory, a redis-server) kept
/// until the test ends.
pub struct Backend {
    pub name: &'static str,
    pub spec: String,
    dir: std::path::PathBuf,
    _redis: Option<RedisServer>,
}

impl Backend {
    pub fn new(kind: Kind, tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "mtasts-resolver-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        let (name, spec, redis) = match kind {
            Kind::Memory => ("memory", "memory".to_string(), None),
            Kind::Sqlite => (
                "sqlite",
                format!("sqlite:{}", dir.join(format!("{tag}.sqlite3")).display()),
                None,
            ),
            Kind::Redis => {
                let r = redis();
                ("redis", r.url(), Some(r))
            }
        };
        Self {
            name,
            spec,
            dir,
            _redis: redis,
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One test per backend kind for `async fn $test(name: &str, spec: &str)`: a module of the
/// same name holding `memory`, `sqlite` and `redis` tests (the last ignored, with the
/// reason, only when redis-server is missing and `MTASTS_TEST_SKIP` opts out).
#[macro_export]
macro_rules! each_backend {
    ($test:ident, [$($kind:ident),+]) => {
        mod $test {
            use super::*;
            $( $crate::each_backend!(@one $test, $kind); )+
        }
    };
    (@one $test:ident, memory) => {
        #[tokio::test]
        async fn memory() {
            let b = Backend::new(Kind::Memory, stringify!($test));
            $test(b.name, &b.spec).await;
        }
    };
    (@one $test:ident, sqlite) => {
        #[tokio::test]
        async fn sqlite() {
            let b = Backend::new(Kind::Sqlite, stringify!($test));
            $test(b.name, &b.spec).await;
        }
    };
    (@one $test:ident, redis) => {
        #[cfg_attr(
            not(mtasts_run_redis),
            ignore = "needs redis-server (MTASTS_TEST_SKIP opted out)"
        )]
        #[tokio::test]
        async fn redis() {
            let b = Backend::new(Kind::Redis, stringify!($test));
            $test(b.name, &b.spec).await;
        }
    };
}

pub async fn open(spec: &str) -> AnyStore {
    AnyStore::open(spec, 1000).await.expect("store")
}

/// Waits until `f` holds (background work), up to 3 s.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..150 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Waits until the resolver has no lookup or re-check in flight, so what a test asserts next
/// (especially that something did not happen) is not read before the work is done.
pub async fn settled<D: mtasts_resolver::Dns, F: mtasts_resolver::Fetch>(
    r: &mtasts_resolver::Resolver<D, F>,
) {
    eventually("background work to finish", || r.in_flight() == 0).await;
}
