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

pub fn resolver(
    world: &World,
    backing: Option<AnyStore>,
    clock: &ManualClock,
    settings: ResolverSettings,
) -> NetResolver {
    let dns =
        Arc::new(HickoryDns::new(Some(world.dns_addr()), Duration::from_millis(400)).expect("dns"));
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

/// The backends to run a cache test against: memory only, SQLite, and Redis (a real
/// redis-server; under CI its absence is a failure).
pub struct Backends {
    pub dir: std::path::PathBuf,
    pub redis: Option<RedisServer>,
}

impl Backends {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "mtasts-resolver-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        let redis = match RedisServer::start() {
            Ok(r) => Some(r),
            Err(e) => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "CI must run the Redis backend: {e}"
                );
                eprintln!("SKIPPED Redis backend: {e}");
                None
            }
        };
        Self { dir, redis }
    }

    /// (name, spec) for each backend.
    pub fn specs(&self, tag: &str) -> Vec<(String, String)> {
        let mut v = vec![
            ("memory".to_string(), "memory".to_string()),
            (
                "sqlite".to_string(),
                format!(
                    "sqlite:{}",
                    self.dir.join(format!("{tag}.sqlite3")).display()
                ),
            ),
        ];
        if let Some(r) = &self.redis {
            v.push(("redis".to_string(), r.url()));
        }
        v
    }
}

impl Drop for Backends {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
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
