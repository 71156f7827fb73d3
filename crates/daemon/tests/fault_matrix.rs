//! Never a weaker answer: with an enforce policy primed in the cache (memory, SQLite, Redis),
//! every TXT and policy-host fault the lab can stage leaves the daemon answering that policy
//! until its `max_age` runs out: through TXT re-checks, proactive refreshes and a restart
//! that reads the policy back from the store. Certificate faults are fresh handshakes (the
//! fetcher never resumes a TLS session), so the host's new certificate is really checked.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

use std::sync::Arc;
use std::time::Duration;

use mtasts_daemon::{Config, ListenAddr, Server};
use mtasts_resolver::{
    FetchSettings, HickoryDns, HttpsFetcher, ManualClock, NetResolver, Resolver, ResolverSettings,
    client_config,
};
use mtasts_store::{AnyStore, CacheSpec};
use mtasts_testkit::{CertKind, DnsFault, PolicyHost, RedisServer, World};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

const T0: u64 = 1_900_000_000;
const DAY: u64 = 86_400;
const MAX_AGE: u64 = 7 * DAY;

/// What goes wrong for one domain after its policy is cached.
#[derive(Debug, Clone)]
enum Fault {
    /// The `_mta-sts` TXT query fails this way.
    Txt(DnsFault),
    /// The TXT record is gone.
    TxtRemoved,
    /// The TXT record is there but invalid.
    TxtInvalid,
    /// A new id is published, and the policy host then serves this.
    NewId(PolicyHost),
}

fn policy_text(domain: &str) -> String {
    format!("version: STSv1\nmode: enforce\nmx: mx.{domain}\nmax_age: {MAX_AGE}\n")
}

fn faults() -> Vec<(&'static str, Fault)> {
    let host = |f: fn(&mut PolicyHost)| {
        let mut h = PolicyHost::ok(&policy_text("x.test"));
        f(&mut h);
        h
    };
    vec![
        ("txt-servfail", Fault::Txt(DnsFault::ServFail)),
        ("txt-timeout", Fault::Txt(DnsFault::Drop)),
        ("txt-refused", Fault::Txt(DnsFault::Refused)),
        ("txt-nxdomain", Fault::Txt(DnsFault::NxDomain)),
        ("txt-removed", Fault::TxtRemoved),
        ("txt-invalid", Fault::TxtInvalid),
        ("http-500", Fault::NewId(host(|h| h.status = 500))),
        ("http-404", Fault::NewId(host(|h| h.status = 404))),
        ("hang", Fault::NewId(host(|h| h.hang = true))),
        ("drip", Fault::NewId(host(|h| h.drip_ms = Some(400)))),
        (
            "invalid-policy",
            Fault::NewId(PolicyHost::ok("version: STSv1\nmode: sometimes\n")),
        ),
        (
            "wrong-type",
            Fault::NewId(host(|h| h.content_type = Some("text/html".into()))),
        ),
        ("oversize", Fault::NewId(host(|h| h.pad_to = Some(70_000)))),
        (
            "cert-wrong-name",
            Fault::NewId(host(|h| h.cert = CertKind::WrongName)),
        ),
        (
            "cert-expired",
            Fault::NewId(host(|h| h.cert = CertKind::Expired)),
        ),
        (
            "cert-other-ca",
            Fault::NewId(host(|h| h.cert = CertKind::UntrustedCa)),
        ),
        (
            "cert-self-signed",
            Fault::NewId(host(|h| h.cert = CertKind::SelfSigned)),
        ),
    ]
}

fn domain(name: &str) -> String {
    format!("{name}.test")
}

async fn world() -> World {
    let mut b = World::builder();
    for (name, _) in faults() {
        let d = domain(name);
        b = b
            .txt(&format!("_mta-sts.{d}"), "v=STSv1; id=1;")
            .policy(&d, PolicyHost::ok(&policy_text(&d)));
    }
    b.build().await.expect("world")
}

fn apply(w: &World, name: &str, fault: &Fault) {
    let d = domain(name);
    let txt = format!("_mta-sts.{d}");
    match fault {
        Fault::Txt(f) => {
            w.with_zone(|z| z.fault(&txt, *f));
        }
        Fault::TxtRemoved => w.set_txt(&txt, None),
        Fault::TxtInvalid => w.set_txt(&txt, Some("v=STSv1; id=;")),
        Fault::NewId(host) => {
            w.set_txt(&txt, Some("v=STSv1; id=2;"));
            w.set_policy(&d, host.clone()).expect("policy host");
        }
    }
}

fn resolver(
    w: &World,
    store: Option<AnyStore>,
    clock: &ManualClock,
    memory_capacity: usize,
) -> NetResolver {
    let dns =
        Arc::new(HickoryDns::new(Some(w.dns_addr()), Duration::from_millis(300)).expect("dns"));
    let fetch = HttpsFetcher::new(
        dns.clone(),
        client_config(Some(w.ca_file())).expect("tls"),
        FetchSettings {
            connect_map: w.port_map(),
            connect_timeout: Duration::from_secs(1),
            total_timeout: Duration::from_millis(1500),
            ..FetchSettings::default()
        },
    );
    let settings = ResolverSettings {
        refresh: false,
        refresh_jitter: Duration::ZERO,
        refresh_concurrency: 32,
        memory_capacity,
        ..ResolverSettings::default()
    };
    Resolver::new(dns, fetch, store, Arc::new(clock.clone()), settings)
}

struct Daemon {
    addr: std::net::SocketAddr,
    server: Arc<Server<HickoryDns, HttpsFetcher<HickoryDns>>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

async fn start(w: &World, spec: &str, clock: &ManualClock) -> Daemon {
    let store = match spec.parse::<CacheSpec>().expect("spec") {
        CacheSpec::Memory => None,
        _ => Some(AnyStore::open(spec, 1000).await.expect("store")),
    };
    serve(resolver(w, store, clock, 100_000)).await
}

/// The daemon on 127.0.0.1 and a port the system picks, without DANE.
async fn serve(resolver: NetResolver) -> Daemon {
    let config = Config {
        listen: vec![ListenAddr::Tcp(([127, 0, 0, 1], 0).into())],
        ..Config::default()
    };
    let listeners = mtasts_daemon::bind(&config).await.expect("bind");
    let addr = match &listeners[0] {
        mtasts_daemon::Listener::Tcp(l) => l.local_addr().expect("addr"),
        _ => panic!("tcp"),
    };
    let server = Server::new(resolver, None, config);
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(server.clone().run(listeners, rx, Duration::from_secs(2)));
    Daemon {
        addr,
        server,
        stop,
        task,
    }
}

impl Daemon {
    async fn ask(&self, key: &str) -> String {
        let mut s = TcpStream::connect(self.addr).await.expect("connect");
        let req = format!("postfix {key}");
        s.write_all(format!("{}:{req},", req.len()).as_bytes())
            .await
            .expect("write");
        tokio::time::timeout(Duration::from_secs(10), read_reply(&mut s))
            .await
            .expect("reply in time")
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Reads one netstring reply.
async fn read_reply(s: &mut TcpStream) -> String {
    let mut len = Vec::new();
    loop {
        let b = s.read_u8().await.expect("read");
        if b == b':' {
            break;
        }
        len.push(b);
    }
    let n: usize = String::from_utf8(len).expect("len").parse().expect("len");
    let mut reply = vec![0; n + 1];
    s.read_exact(&mut reply).await.expect("reply");
    assert_eq!(reply.pop(), Some(b','));
    String::from_utf8(reply).expect("utf-8")
}

/// Asks for every domain, a few times over (each may start a background re-check), lets the
/// refresher run a pass, and checks every answer is still the primed policy.
async fn all_still_enforced(d: &Daemon, backend: &str, when: &str) {
    for round in 0..3 {
        for (name, _) in faults() {
            let dom = domain(name);
            let reply = d.ask(&dom).await;
            let want = format!("OK secure match=mx.{dom} servername=hostname");
            assert_eq!(reply, want, "{backend}, {name}, {when}, round {round}");
        }
        if round == 1 {
            d.server.resolver().refresh_due().await;
        }
    }
}

async fn matrix(w: &World, backend: &str, spec: &str) {
    let clock = ManualClock::new(T0);
    let mut d = start(w, spec, &clock).await;
    // Prime (a fresh world per backend: each starts from the published policies).
    for (name, _) in faults() {
        let dom = domain(name);
        assert_eq!(
            d.ask(&dom).await,
            format!("OK secure match=mx.{dom} servername=hostname"),
            "{backend}, {name}: primed"
        );
    }
    for (name, fault) in faults() {
        apply(w, name, &fault);
    }
    for (at, when) in [
        (T0 + 120, "after the TXT grace"),
        (T0 + DAY + 1, "refresh due"),
        (T0 + 3 * DAY, "three days in"),
        (T0 + MAX_AGE - 120, "just before max_age"),
    ] {
        clock.set(at);
        if spec != "memory" && at == T0 + DAY + 1 {
            // A restart: the policy comes back from the store, not from the network.
            d.stop().await;
            d = start(w, spec, &clock).await;
        }
        all_still_enforced(&d, backend, when).await;
    }
    d.stop().await;
}

/// The matrix against one backend, with what it needs kept until it ends.
async fn matrix_on(backend: &str) {
    let dir = std::env::temp_dir().join(format!(
        "mtasts-fault-matrix-{}-{backend}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut redis = None;
    let spec = match backend {
        "memory" => "memory".to_string(),
        "sqlite" => format!("sqlite:{}", dir.join("cache.sqlite3").display()),
        _ => redis
            .insert(RedisServer::start().unwrap_or_else(|e| {
                panic!("{e}: install redis-server, or set MTASTS_TEST_SKIP=redis to report the Redis leg as ignored")
            }))
            .url(),
    };
    let w = world().await;
    matrix(&w, backend, &spec).await;
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_fault_leaves_the_cached_policy_in_force_until_max_age_memory() {
    matrix_on("memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_fault_leaves_the_cached_policy_in_force_until_max_age_sqlite() {
    matrix_on("sqlite").await;
}

#[cfg_attr(
    not(mtasts_run_redis),
    ignore = "needs redis-server (MTASTS_TEST_SKIP opted out)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_fault_leaves_the_cached_policy_in_force_until_max_age_redis() {
    matrix_on("redis").await;
}

/// Item 1 of the flood tests: a flood of distinct names without MTA-STS (mail to many
/// recipient domains) fills only the negative tier; the primed policies stay, and answer
/// `secure` even with their TXT records failing afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_distinct_names_never_evicts_a_cached_policy() {
    let w = world().await;
    let clock = ManualClock::new(T0);
    // A small memory tier, so the flood is many times its bound.
    let d = serve(resolver(&w, None, &clock, 256)).await;
    let primed: Vec<String> = faults().iter().map(|(n, _)| domain(n)).collect();
    for dom in &primed {
        assert!(d.ask(dom).await.starts_with("OK secure"), "{dom} primed");
    }
    // 8,000 distinct names (no TXT record: NXDOMAIN), 32 connections at a time.
    let flood = 8_000;
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..32 {
        let addr = d.addr;
        tasks.spawn(async move {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            let mut answered = 0;
            for i in (c..flood).step_by(32) {
                let req = format!("postfix n{i}.flood.test");
                s.write_all(format!("{}:{req},", req.len()).as_bytes())
                    .await
                    .expect("write");
                let reply = read_reply(&mut s).await;
                assert_eq!(reply, "NOTFOUND ");
                answered += 1;
            }
            answered
        });
    }
    let mut answered = 0;
    while let Some(n) = tasks.join_next().await {
        answered += n.expect("flood connection");
    }
    assert_eq!(answered, flood);
    let (policies, negatives) = d.server.resolver().memory_tiers();
    assert_eq!(
        policies,
        primed.len(),
        "every primed policy is still in memory"
    );
    assert!(negatives <= 256 + 16, "negatives bounded: {negatives}");
    // Their TXT records now fail, and the TXT grace is over: still `secure`.
    for (name, _) in faults() {
        apply(&w, name, &Fault::Txt(DnsFault::ServFail));
    }
    clock.set(T0 + 120);
    for dom in &primed {
        assert_eq!(
            d.ask(dom).await,
            format!("OK secure match=mx.{dom} servername=hostname"),
            "{dom} after the flood"
        );
    }
    d.stop().await;
}
