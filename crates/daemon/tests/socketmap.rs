//! The daemon over real sockets against the testkit: framing, ordering, keys, zones,
//! deadlines, unix sockets, metrics and shutdown.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

use std::sync::Arc;
use std::time::Duration;

use mtasts_daemon::config::Zone;
use mtasts_daemon::{Config, Server};
use mtasts_resolver::{
    DaneResolver, DaneSettings, DnssecClient, FetchSettings, HickoryDns, HttpsFetcher, NetResolver,
    Resolver, ResolverSettings, SystemClock, client_config,
};
use mtasts_testkit::{DnsFault, PolicyHost, World};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::watch;

fn policy(mode: &str, mx: &[&str]) -> String {
    let mut p = format!("version: STSv1\nmode: {mode}\n");
    for m in mx {
        p.push_str(&format!("mx: {m}\n"));
    }
    p + "max_age: 604800\n"
}

/// 2,000 mx patterns (38 KB, under the 64 KiB fetch limit): the full TLSRPT reply is
/// ~170 KB, the reply without `policy_string` attributes ~92 KB.
fn big_policy() -> String {
    let mx: Vec<String> = (0..BIG_MX).map(|i| format!("m{i:04}.big.test")).collect();
    policy(
        "enforce",
        &mx.iter().map(String::as_str).collect::<Vec<_>>(),
    )
}

const BIG_MX: usize = 2000;

async fn world() -> World {
    World::builder()
        .txt("_mta-sts.enforce.test", "v=STSv1; id=1;")
        .policy(
            "enforce.test",
            PolicyHost::ok(&policy(
                "enforce",
                &["mx1.enforce.test", "*.mx.enforce.test"],
            )),
        )
        .txt("_mta-sts.testing.test", "v=STSv1; id=1;")
        .policy(
            "testing.test",
            PolicyHost::ok(&policy("testing", &["mx.testing.test"])),
        )
        .txt("_mta-sts.slow.test", "v=STSv1; id=1;")
        .policy(
            "slow.test",
            PolicyHost {
                delay_ms: 1500,
                ..PolicyHost::ok(&policy("enforce", &["mx.slow.test"]))
            },
        )
        .txt("_mta-sts.broken.test", "v=STSv1; id=1;")
        .policy(
            "broken.test",
            PolicyHost {
                status: 500,
                ..PolicyHost::default()
            },
        )
        .dns_fault("_mta-sts.servfail.test", DnsFault::ServFail)
        // DANE: a signed domain with correct TLSA; one that also has an enforce STS policy;
        // one with only unusable TLSA; one whose TLSA is bogus; an unsigned MX pointing at a
        // signed host with TLSA; a signed domain without TLSA (authenticated denial).
        .dnssec_secure("dane.test")
        .mx("dane.test", 10, "mx1.dane.test")
        .smtp("mx1.dane.test", mtasts_testkit::SmtpHost::valid())
        .tlsa_for("_25._tcp.mx1.dane.test", "mx1.dane.test")
        .dnssec_secure("both.test")
        .mx("both.test", 10, "mx1.dane.test")
        .txt("_mta-sts.both.test", "v=STSv1; id=1;")
        .policy(
            "both.test",
            PolicyHost::ok(&policy("enforce", &["mx1.dane.test"])),
        )
        .dnssec_secure("mixed.test")
        .mx("mixed.test", 10, "mx1.dane.test")
        .mx("mixed.test", 20, "mx2.mixed.test")
        .txt("_mta-sts.mixed.test", "v=STSv1; id=1;")
        .policy(
            "mixed.test",
            PolicyHost::ok(&policy("enforce", &["mx1.dane.test", "mx2.mixed.test"])),
        )
        .dnssec_secure("unusable.test")
        .mx("unusable.test", 10, "mx1.unusable.test")
        .tlsa("_25._tcp.mx1.unusable.test", 1, 1, 1, vec![0; 32])
        .dnssec_secure("bogus.test")
        .mx("bogus.test", 10, "mx1.bogus.test")
        .dns_fault("_25._tcp.mx1.bogus.test", DnsFault::Bogus)
        .mx("unsigned.test", 10, "mx1.dane.test")
        .txt("_mta-sts.unsigned.test", "v=STSv1; id=1;")
        .policy(
            "unsigned.test",
            PolicyHost::ok(&policy("enforce", &["mx1.dane.test"])),
        )
        .dnssec_secure("notlsa.test")
        .mx("notlsa.test", 10, "mx1.notlsa.test")
        .txt("_mta-sts.notlsa.test", "v=STSv1; id=1;")
        .policy(
            "notlsa.test",
            PolicyHost::ok(&policy("enforce", &["mx1.notlsa.test"])),
        )
        .dnssec_secure("mxfail.test")
        .dns_fault("mxfail.test", DnsFault::Bogus)
        // Both halves slow: the policy host answers after 2 s, the TLSA query is never
        // answered (the DANE check waits out its DNS timeout).
        .dnssec_secure("slowboth.test")
        .mx("slowboth.test", 10, "mx1.slowboth.test")
        .dns_fault("_25._tcp.mx1.slowboth.test", DnsFault::Drop)
        .txt("_mta-sts.slowboth.test", "v=STSv1; id=1;")
        .policy(
            "slowboth.test",
            PolicyHost {
                delay_ms: 2000,
                ..PolicyHost::ok(&policy("enforce", &["mx1.slowboth.test"]))
            },
        )
        .txt("_mta-sts.big.test", "v=STSv1; id=1;")
        .policy("big.test", PolicyHost::ok(&big_policy()))
        .build()
        .await
        .expect("world")
}

fn resolver(w: &World) -> NetResolver {
    let dns = Arc::new(HickoryDns::new(Some(w.dns_addr()), Duration::from_secs(5)).expect("dns"));
    let fetch = HttpsFetcher::new(
        dns.clone(),
        client_config(Some(w.ca_file())).expect("tls"),
        FetchSettings {
            connect_map: w.port_map(),
            total_timeout: Duration::from_secs(5),
            ..FetchSettings::default()
        },
    );
    let settings = ResolverSettings {
        refresh: false,
        ..ResolverSettings::default()
    };
    Resolver::new(dns, fetch, None, Arc::new(SystemClock), settings)
}

struct Running {
    tcp: std::net::SocketAddr,
    unix: std::path::PathBuf,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    server: Arc<Server<HickoryDns, HttpsFetcher<HickoryDns>>>,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn start(w: &World) -> Running {
    start_with(w, |_| {}).await
}

async fn start_with(w: &World, adjust: impl FnOnce(&mut Config)) -> Running {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "mtasts-daemon-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("socket directory");
    let sock = dir.join("socketmap.sock");
    let mut config = Config {
        listen: vec![
            mtasts_daemon::ListenAddr::Tcp(([127, 0, 0, 1], 0).into()),
            mtasts_daemon::ListenAddr::Unix(sock.clone()),
        ],
        cache: mtasts_store::CacheSpec::Memory,
        ..Config::default()
    };
    config.unix_socket.mode = Some(mtasts_daemon::SocketMode(0o660));
    config.zones.insert(
        "strict".into(),
        Zone {
            strict_testing: true,
            ..Zone::default()
        },
    );
    config.zones.insert(
        "tlsrpt".into(),
        Zone {
            tlsrpt: Some(true),
            ..Zone::default()
        },
    );
    config.zones.insert(
        "old".into(),
        Zone {
            require_sni: false,
            ..Zone::default()
        },
    );
    config.zones.insert(
        "fast".into(),
        Zone {
            timeout: Duration::from_millis(300),
            ..Zone::default()
        },
    );
    config.zones.insert(
        "defer".into(),
        Zone {
            defer_on_failure: true,
            timeout: Duration::from_millis(300),
            ..Zone::default()
        },
    );
    config.zones.insert(
        "nodane".into(),
        Zone {
            dane: false,
            ..Zone::default()
        },
    );
    adjust(&mut config);
    let listeners = mtasts_daemon::bind(&config).await.expect("bind");
    let tcp = match &listeners[0] {
        mtasts_daemon::Listener::Tcp(l) => l.local_addr().expect("addr"),
        _ => panic!("tcp first"),
    };
    let dane = DaneResolver::new(
        DnssecClient::new(Some(w.dns_addr()), Duration::from_secs(5)).expect("dnssec client"),
        DaneSettings::default(),
    );
    let server = Server::new(resolver(w), Some(dane), config);
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(server.clone().run(listeners, rx, Duration::from_secs(2)));
    Running {
        tcp,
        unix: sock,
        stop,
        task,
        server,
        _dir: TempDir(dir),
    }
}

fn frame(payload: &str) -> Vec<u8> {
    format!("{}:{payload},", payload.len()).into_bytes()
}

/// Reads exactly one netstring reply.
async fn read_reply<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Option<String> {
    let mut len = Vec::new();
    loop {
        let b = s.read_u8().await.ok()?;
        if b == b':' {
            break;
        }
        len.push(b);
    }
    let n: usize = String::from_utf8(len).ok()?.parse().ok()?;
    let mut buf = vec![0u8; n + 1];
    s.read_exact(&mut buf).await.ok()?;
    assert_eq!(buf.pop(), Some(b','));
    String::from_utf8(buf).ok()
}

async fn ask(addr: std::net::SocketAddr, map: &str, key: &str) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(&frame(&format!("{map} {key}")))
        .await
        .expect("write");
    read_reply(&mut s).await.expect("reply")
}

#[tokio::test]
async fn pfx_11_requests_answered_in_order_on_one_connection_also_pipelined_and_bytewise() {
    let w = world().await;
    let d = start(&w).await;
    let mut s = TcpStream::connect(d.tcp).await.expect("connect");
    for (key, expect) in [
        (
            "enforce.test",
            "OK secure match=mx1.enforce.test:.mx.enforce.test servername=hostname",
        ),
        ("testing.test", "NOTFOUND "),
        ("nothing.test", "NOTFOUND "),
    ] {
        s.write_all(&frame(&format!("postfix {key}")))
            .await
            .expect("write");
        assert_eq!(read_reply(&mut s).await.as_deref(), Some(expect), "{key}");
    }
    // Pipelined: three requests in one write, three replies in order.
    let mut batch = frame("postfix nothing.test");
    batch.extend(frame("postfix enforce.test"));
    batch.extend(frame("strict testing.test"));
    s.write_all(&batch).await.expect("write");
    assert_eq!(read_reply(&mut s).await.as_deref(), Some("NOTFOUND "));
    assert!(
        read_reply(&mut s)
            .await
            .is_some_and(|r| r.starts_with("OK secure match=mx1.enforce.test"))
    );
    assert_eq!(
        read_reply(&mut s).await.as_deref(),
        Some("OK secure match=mx.testing.test servername=hostname")
    );
    // Byte at a time.
    for b in frame("postfix enforce.test") {
        s.write_all(&[b]).await.expect("write");
        s.flush().await.expect("flush");
    }
    assert!(
        read_reply(&mut s)
            .await
            .is_some_and(|r| r.starts_with("OK secure"))
    );
}

#[tokio::test]
async fn pfx_02_03_keys_are_normalised_or_not_found() {
    let w = world().await;
    let d = start(&w).await;
    let ok = "OK secure match=mx1.enforce.test:.mx.enforce.test servername=hostname";
    for key in [
        "enforce.test",
        "ENFORCE.Test.",
        "[enforce.test]:25",
        "[enforce.test]",
        "enforce.test:587",
    ] {
        assert_eq!(ask(d.tcp, "postfix", key).await, ok, "{key}");
    }
    for key in [
        ".enforce.test",
        "[192.0.2.1]",
        "192.0.2.1",
        "[ipv6:2001:db8::1]",
        "",
    ] {
        assert_eq!(ask(d.tcp, "postfix", key).await, "NOTFOUND ", "{key:?}");
    }
}

#[tokio::test]
async fn pfx_15_bad_frames_close_only_that_connection() {
    let w = world().await;
    let d = start(&w).await;
    for bad in [&b"abc:xyz,"[..], b"5:hello!", b"20001:", b"99999999999"] {
        let mut s = TcpStream::connect(d.tcp).await.expect("connect");
        s.write_all(bad).await.expect("write");
        let mut buf = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut buf)).await;
        assert!(
            matches!(n, Ok(Ok(0))),
            "{:?}: closed without a reply, got {buf:?}",
            String::from_utf8_lossy(bad)
        );
    }
    assert!(
        ask(d.tcp, "postfix", "enforce.test")
            .await
            .starts_with("OK"),
        "others unaffected"
    );
    assert!(d.server.counters().bad_frames.get() >= 4);
}

#[tokio::test]
async fn zones_select_strict_testing_tlsrpt_and_servername() {
    let w = world().await;
    let d = start(&w).await;
    assert_eq!(
        ask(d.tcp, "strict", "testing.test").await,
        "OK secure match=mx.testing.test servername=hostname"
    );
    assert_eq!(
        ask(d.tcp, "unknown-map", "testing.test").await,
        "NOTFOUND ",
        "unknown maps use the default zone"
    );
    assert_eq!(
        ask(d.tcp, "old", "enforce.test").await,
        "OK secure match=mx1.enforce.test:.mx.enforce.test"
    );
    let r = ask(d.tcp, "tlsrpt", "enforce.test").await;
    assert!(r.contains(" policy_type=sts policy_domain=enforce.test mx_host_pattern=mx1.enforce.test mx_host_pattern=*.mx.enforce.test "), "{r}");
    assert!(r.ends_with("{ policy_string = max_age: 604800 }"), "{r}");
}

#[tokio::test]
async fn deadline_answers_in_time_and_the_fetch_finishes_in_the_background() {
    let w = world().await;
    let d = start(&w).await;
    let hits = || d.server.counters().deadline_hits.get();
    assert_eq!(ask(d.tcp, "fast", "slow.test").await, "NOTFOUND ");
    // Answered by the deadline path (the policy is still dripping in), not by waiting for it.
    assert_eq!(hits(), 1, "answered at the zone deadline");
    let mut answer = String::new();
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        answer = ask(d.tcp, "fast", "slow.test").await;
        if answer.starts_with("OK") {
            break;
        }
    }
    assert_eq!(answer, "OK secure match=mx.slow.test servername=hostname");
    assert_eq!(
        w.policy_requests("slow.test").len(),
        1,
        "one fetch, not one per request"
    );
}

#[tokio::test]
async fn failures_without_cache_are_notfound_or_temp_per_zone() {
    let w = world().await;
    let d = start(&w).await;
    assert_eq!(ask(d.tcp, "postfix", "broken.test").await, "NOTFOUND ");
    assert_eq!(ask(d.tcp, "postfix", "servfail.test").await, "NOTFOUND ");
    assert!(
        ask(d.tcp, "defer", "broken.test")
            .await
            .starts_with("TEMP ")
    );
    assert!(
        ask(d.tcp, "defer", "servfail.test")
            .await
            .starts_with("TEMP ")
    );
    assert!(
        ask(d.tcp, "defer", "slow.test").await.starts_with("TEMP "),
        "deadline in a defer zone"
    );
    assert_eq!(
        ask(d.tcp, "defer", "nothing.test").await,
        "NOTFOUND ",
        "no record is never TEMP"
    );
}

#[tokio::test]
async fn unix_socket_has_its_mode_and_serves() {
    use std::os::unix::fs::PermissionsExt;
    let w = world().await;
    let d = start(&w).await;
    let mode = std::fs::metadata(&d.unix)
        .expect("socket")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o660);
    let mut s = UnixStream::connect(&d.unix).await.expect("connect");
    s.write_all(&frame("postfix enforce.test"))
        .await
        .expect("write");
    assert!(
        read_reply(&mut s)
            .await
            .is_some_and(|r| r.starts_with("OK secure"))
    );
}

#[tokio::test]
async fn metrics_count_answers_and_shutdown_is_graceful() {
    let w = world().await;
    let d = start(&w).await;
    ask(d.tcp, "postfix", "enforce.test").await;
    ask(d.tcp, "postfix", "enforce.test").await;
    ask(d.tcp, "postfix", "nothing.test").await;
    let text = mtasts_daemon::metrics::render(&d.server);
    assert!(
        text.contains("mtasts_answers_total{status=\"OK\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("mtasts_answers_total{status=\"NOTFOUND\"} 1"),
        "{text}"
    );
    assert!(text.contains("mtasts_cache_hits_total 1"), "{text}");
    assert!(text.contains("mtasts_answer_seconds_count 3"), "{text}");
    let mut idle = TcpStream::connect(d.tcp).await.expect("connect");
    d.stop.send(true).expect("stop");
    tokio::time::timeout(Duration::from_secs(5), d.task)
        .await
        .expect("stops in time")
        .expect("task");
    let mut buf = Vec::new();
    assert!(
        matches!(idle.read_to_end(&mut buf).await, Ok(0)),
        "idle connection closed"
    );
    assert!(TcpStream::connect(d.tcp).await.is_err(), "listener closed");
    assert!(!d.unix.exists(), "unix socket removed");
}

#[tokio::test]
async fn dane_takes_precedence_and_is_never_weakened() {
    let w = world().await;
    let d = start(&w).await;
    assert_eq!(ask(d.tcp, "postfix", "dane.test").await, "OK dane-only");
    assert_eq!(
        ask(d.tcp, "postfix", "both.test").await,
        "OK dane-only",
        "DANE wins over MTA-STS"
    );
    assert_eq!(
        ask(d.tcp, "postfix", "mixed.test").await,
        "OK dane-only",
        "mixed MX with enforce STS: no opportunistic fallback"
    );
    assert_eq!(
        ask(d.tcp, "postfix", "unusable.test").await,
        "OK dane",
        "unusable TLSA: Postfix falls back per RFC 7672"
    );
    assert!(
        ask(d.tcp, "postfix", "bogus.test")
            .await
            .starts_with("TEMP DANE check for bogus.test"),
        "bogus TLSA defers"
    );
    assert!(
        ask(d.tcp, "postfix", "mxfail.test")
            .await
            .starts_with("TEMP "),
        "bogus MX defers"
    );
    assert_eq!(
        ask(d.tcp, "postfix", "unsigned.test").await,
        "OK secure match=mx1.dane.test servername=hostname",
        "unsigned MX: DANE does not apply (RFC 7672 §2.2.1), MTA-STS does"
    );
    assert_eq!(
        ask(d.tcp, "postfix", "notlsa.test").await,
        "OK secure match=mx1.notlsa.test servername=hostname"
    );
    assert_eq!(
        ask(d.tcp, "postfix", "enforce.test").await,
        "OK secure match=mx1.enforce.test:.mx.enforce.test servername=hostname"
    );
}

#[tokio::test]
async fn dane_can_be_switched_off_per_zone_and_decisions_are_cached() {
    let w = world().await;
    let d = start(&w).await;
    assert_eq!(
        ask(d.tcp, "nodane", "both.test").await,
        "OK secure match=mx1.dane.test servername=hostname"
    );
    let before = w.dns_queries(
        "_25._tcp.mx1.dane.test",
        hickory_proto::rr::RecordType::TLSA,
    );
    for _ in 0..20 {
        assert_eq!(ask(d.tcp, "postfix", "dane.test").await, "OK dane-only");
    }
    let after = w.dns_queries(
        "_25._tcp.mx1.dane.test",
        hickory_proto::rr::RecordType::TLSA,
    );
    assert!(after - before <= 1, "cached: {before} -> {after}");
}

#[tokio::test]
async fn pfx_31_tlsrpt_attributes_follow_the_postfix_version() {
    let w = world().await;
    let d = start(&w).await;
    const ATTRS: &str = " policy_type=sts policy_domain=enforce.test ";
    // Unknown Postfix: only a zone that asks for them gets the attributes.
    assert!(!ask(d.tcp, "postfix", "enforce.test").await.contains(ATTRS));
    assert!(ask(d.tcp, "tlsrpt", "enforce.test").await.contains(ATTRS));

    // postfix-tlspol's map names, in any case.
    assert!(
        ask(d.tcp, "QUERYwithTLSRPT", "enforce.test")
            .await
            .contains(ATTRS)
    );
    assert!(
        ask(d.tcp, "querywithtlsrpt", "enforce.test")
            .await
            .contains(ATTRS)
    );
    assert_eq!(
        ask(d.tcp, "QUERY", "enforce.test").await,
        "OK secure match=mx1.enforce.test:.mx.enforce.test servername=hostname"
    );

    let mut config = d.server.config().as_ref().clone();
    let notes = config.detect_postfix(|| {
        mtasts_daemon::Version::parse("3.10.5")
            .ok_or_else(|| mtasts_daemon::DetectError::Other("unparsable".into()))
    });
    assert!(notes.is_empty(), "{notes:?}");
    d.server.reload(config.clone());
    assert!(
        ask(d.tcp, "postfix", "enforce.test").await.contains(ATTRS),
        "Postfix 3.10.5 gets them by default"
    );
    assert!(
        !ask(d.tcp, "QUERY", "enforce.test").await.contains(ATTRS),
        "tlspol's QUERY never has them"
    );
    let mut off = config.clone();
    off.default_zone.tlsrpt = Some(false);
    d.server.reload(off);
    assert!(!ask(d.tcp, "postfix", "enforce.test").await.contains(ATTRS));

    // Postfix 3.7 rejects them: never sent, even where a zone asks, and the operator is told.
    let mut old = config;
    old.postfix_version = mtasts_daemon::PostfixVersion::Known(
        mtasts_daemon::Version::parse("3.7.11").expect("version"),
    );
    let notes = old.detect_postfix(|| Err(mtasts_daemon::DetectError::Other("not asked".into())));
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].contains("tlsrpt.tlsrpt = true, but Postfix 3.7.11"),
        "{notes:?}"
    );
    d.server.reload(old);
    assert_eq!(
        ask(d.tcp, "tlsrpt", "enforce.test").await,
        "OK secure match=mx1.enforce.test:.mx.enforce.test servername=hostname"
    );
}

#[tokio::test]
async fn sigterm_answers_every_request_already_read() {
    let w = world().await;
    let d = start(&w).await;
    // Each answer needs DNS (distinct cold names, slowed down), so the stop comes while most
    // requests are read but not yet answered.
    w.set_dns_latency(Duration::from_millis(40));
    let mut s = TcpStream::connect(d.tcp).await.expect("connect");
    let mut batch = Vec::new();
    for i in 0..10 {
        batch.extend(frame(&format!("nodane n{i}.nothing.test")));
    }
    s.write_all(&batch).await.expect("write");
    // The first reply means the server has read the batch (one segment); then stop.
    assert!(read_reply(&mut s).await.is_some());
    d.stop.send(true).expect("stop");
    let mut answered = 1;
    while let Some(r) = read_reply(&mut s).await {
        assert_eq!(r, "NOTFOUND ");
        answered += 1;
    }
    assert_eq!(
        answered, 10,
        "every request read before the stop is answered"
    );
    let _ = d.task.await;
}

#[tokio::test]
async fn connections_over_the_cap_are_closed_at_once_and_counted() {
    let w = world().await;
    let d = start_with(&w, |c| c.max_connections = 2).await;
    let _a = TcpStream::connect(d.tcp).await.expect("connect");
    let mut b = TcpStream::connect(d.tcp).await.expect("connect");
    // Both served.
    b.write_all(&frame("postfix nothing.test"))
        .await
        .expect("write");
    assert_eq!(read_reply(&mut b).await.as_deref(), Some("NOTFOUND "));
    let mut c = TcpStream::connect(d.tcp).await.expect("connect");
    let _ = c.write_all(&frame("postfix nothing.test")).await;
    assert_eq!(read_reply(&mut c).await, None, "closed without a reply");
    assert_eq!(d.server.counters().refused.get(), 1);
    assert_eq!(d.server.open_connections(), 2);
    // A slot frees when a connection closes.
    drop(b);
    let mut e = None;
    for _ in 0..100 {
        let mut s = TcpStream::connect(d.tcp).await.expect("connect");
        let _ = s.write_all(&frame("postfix nothing.test")).await;
        if read_reply(&mut s).await.is_some() {
            e = Some(s);
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(e.is_some(), "served again once a slot freed");
}

#[tokio::test]
async fn idle_connections_are_closed_after_idle_timeout() {
    let w = world().await;
    let d = start_with(&w, |c| c.idle_timeout = Duration::from_millis(200)).await;
    let mut s = TcpStream::connect(d.tcp).await.expect("connect");
    s.write_all(&frame("postfix nothing.test"))
        .await
        .expect("write");
    assert!(read_reply(&mut s).await.is_some());
    // Nothing more is sent: the server closes the connection (EOF), it does not hang.
    let mut byte = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut byte))
        .await
        .expect("closed by the server")
        .unwrap_or(0);
    assert_eq!(n, 0);
}

#[tokio::test]
async fn a_postfix_without_dnssec_lookups_gets_mta_sts_answers_not_dane() {
    let w = world().await;
    let d = start(&w).await;
    assert_eq!(ask(d.tcp, "postfix", "dane.test").await, "OK dane-only");
    let mut config = d.server.config().as_ref().clone();
    config.postfix_dnssec = mtasts_daemon::PostfixDnssec::No;
    d.server.reload(config);
    // Postfix would defer `dane-only` without smtp_dns_support_level = dnssec.
    assert_eq!(ask(d.tcp, "postfix", "dane.test").await, "NOTFOUND ");
    assert_eq!(
        ask(d.tcp, "postfix", "both.test").await,
        "OK secure match=mx1.dane.test servername=hostname"
    );
}

/// A stream that counts the writes made to it.
struct CountingWrites<S> {
    inner: S,
    writes: Arc<std::sync::atomic::AtomicUsize>,
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for CountingWrites<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for CountingWrites<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if r.is_ready() {
            self.writes
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        r
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A connection served by `d` over an in-memory pipe whose server side counts its writes:
/// the client end, the write count, the connection task and the stop sender keeping it open.
fn counted_connection(
    d: &Running,
) -> (
    tokio::io::DuplexStream,
    Arc<std::sync::atomic::AtomicUsize>,
    tokio::task::JoinHandle<()>,
    watch::Sender<bool>,
) {
    let (client, server_side) = tokio::io::duplex(1 << 20);
    let writes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (stop, rx) = watch::channel(false);
    let conn = tokio::spawn(d.server.clone().serve_connection(
        CountingWrites {
            inner: server_side,
            writes: writes.clone(),
        },
        "test".into(),
        rx,
    ));
    (client, writes, conn, stop)
}

#[tokio::test]
async fn pipelined_answers_from_memory_are_written_together_in_order_and_a_lookup_does_not_hold_them()
 {
    let w = world().await;
    let d = start(&w).await;
    let (mut client, writes, conn, _stop) = counted_connection(&d);
    let count = || writes.load(std::sync::atomic::Ordering::SeqCst);
    // Prime the cache: one lookup each, one write each.
    for key in ["enforce.test", "testing.test"] {
        client
            .write_all(&frame(&format!("nodane {key}")))
            .await
            .expect("write");
        assert!(read_reply(&mut client).await.is_some());
    }
    assert_eq!(count(), 2);
    // Eight cached answers, pipelined in one write: eight replies in order, one write.
    let keys = ["enforce.test", "testing.test"].repeat(4);
    let batch: Vec<u8> = keys
        .iter()
        .flat_map(|k| frame(&format!("nodane {k}")))
        .collect();
    client.write_all(&batch).await.expect("write");
    for k in &keys {
        let r = read_reply(&mut client).await.expect("reply");
        let want = if *k == "enforce.test" {
            "OK secure"
        } else {
            "NOTFOUND"
        };
        assert!(r.starts_with(want), "{k}: {r}");
    }
    assert_eq!(count(), 3, "eight pipelined cached replies in one write");
    // A cached answer, then one needing DNS: the first is written before the lookup is
    // awaited (two writes), and both arrive in order.
    w.set_dns_latency(Duration::from_millis(100));
    let mut batch = frame("nodane enforce.test");
    batch.extend(frame("nodane cold.nothing.test"));
    client.write_all(&batch).await.expect("write");
    let first = read_reply(&mut client).await.expect("reply");
    assert!(first.starts_with("OK secure"), "{first}");
    assert_eq!(
        count(),
        4,
        "the cached reply went out before the lookup finished"
    );
    assert_eq!(read_reply(&mut client).await.as_deref(), Some("NOTFOUND "));
    assert_eq!(count(), 5);
    drop(client);
    conn.await.expect("connection task");
}

#[tokio::test]
async fn kept_replies_follow_the_zone_and_a_reload() {
    let w = world().await;
    let d = start(&w).await;
    let with_sni = "OK secure match=mx1.enforce.test:.mx.enforce.test servername=hostname";
    let without = "OK secure match=mx1.enforce.test:.mx.enforce.test";
    // Alternating zones on one domain, answered from memory after the first: each gets its own.
    for _ in 0..3 {
        assert_eq!(ask(d.tcp, "nodane", "enforce.test").await, with_sni);
        assert_eq!(ask(d.tcp, "old", "enforce.test").await, without);
    }
    // A reload that changes the default zone changes the reply at once.
    let mut new = (*d.server.config()).clone();
    new.zones.insert(
        "nodane".into(),
        Zone {
            dane: false,
            require_sni: false,
            ..Zone::default()
        },
    );
    d.server.reload(new);
    assert_eq!(ask(d.tcp, "nodane", "enforce.test").await, without);
}

#[tokio::test]
async fn pfx_14_size_limits_and_malformed_payloads_through_the_daemon() {
    let w = world().await;
    let d = start(&w).await;
    // A request of exactly 10,000 bytes is read and answered; one byte more closes the
    // connection unanswered.
    let exact = format!("postfix {}", "a".repeat(10_000 - "postfix ".len()));
    assert_eq!(exact.len(), 10_000);
    let mut s = TcpStream::connect(d.tcp).await.expect("connect");
    s.write_all(&frame(&exact)).await.expect("write");
    assert_eq!(read_reply(&mut s).await.as_deref(), Some("NOTFOUND "));
    let mut s = TcpStream::connect(d.tcp).await.expect("connect");
    s.write_all(&frame(&format!("{exact}a")))
        .await
        .expect("write");
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0))),
        "10,001 bytes: closed, got {buf:?}"
    );

    // A payload that is not `<map name> <key>`, or not UTF-8: PERM, and the connection stays.
    let mut s = TcpStream::connect(d.tcp).await.expect("connect");
    s.write_all(&frame("postfixenforce.test"))
        .await
        .expect("write");
    assert_eq!(
        read_reply(&mut s).await.as_deref(),
        Some("PERM request must be `<map name> <key>`")
    );
    s.write_all(b"5:a \xff\xfeb,").await.expect("write");
    assert_eq!(
        read_reply(&mut s).await.as_deref(),
        Some("PERM request is not UTF-8")
    );
    s.write_all(&frame("postfix enforce.test"))
        .await
        .expect("write");
    assert!(
        read_reply(&mut s)
            .await
            .is_some_and(|r| r.starts_with("OK secure"))
    );

    // The 100,000-byte reply limit (Postfix's socketmap_max_reply_size): the policy_string
    // attributes are left out whole, every pattern stays.
    let reply = ask(d.tcp, "tlsrpt", "big.test").await;
    assert!(reply.len() <= 100_000, "{} bytes", reply.len());
    assert!(reply.starts_with("OK secure match="), "{}", &reply[..40]);
    assert!(!reply.contains("policy_string"), "policy strings dropped");
    assert!(
        reply.contains("mx_host_pattern=m1999.big.test"),
        "TLSRPT attributes kept"
    );
    let matched = reply
        .split_whitespace()
        .find_map(|a| a.strip_prefix("match="))
        .expect("match attribute");
    assert_eq!(matched.split(':').count(), BIG_MX);
    // Without TLSRPT attributes the same policy's reply is the bare form, well under the limit.
    let bare = ask(d.tcp, "postfix", "big.test").await;
    assert!(bare.len() < 40_000 && !bare.contains("mx_host_pattern"));
    assert_eq!(d.server.counters().perm.get(), 2);
}

/// `name{labels}` → value, from the exposition text.
fn samples(text: &str) -> std::collections::BTreeMap<String, u64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

#[tokio::test]
async fn every_metric_counts_what_it_names() {
    let w = world().await;
    let d = start(&w).await;
    let enforce = "enforce.test";
    assert!(
        ask(d.tcp, "postfix", enforce)
            .await
            .starts_with("OK secure")
    );
    assert!(
        ask(d.tcp, "postfix", enforce)
            .await
            .starts_with("OK secure")
    );
    assert_eq!(ask(d.tcp, "postfix", "nothing.test").await, "NOTFOUND ");
    assert_eq!(ask(d.tcp, "postfix", "broken.test").await, "NOTFOUND ");
    assert_eq!(
        ask(d.tcp, "defer", "servfail.test").await.get(..5),
        Some("TEMP ")
    );
    assert!(
        ask(d.tcp, "postfix", "[192.0.2.1]")
            .await
            .starts_with("NOTFOUND")
    );
    let mut held = TcpStream::connect(d.tcp).await.expect("connect");
    held.write_all(&frame("postfixenforce.test"))
        .await
        .expect("write");
    assert!(
        read_reply(&mut held)
            .await
            .is_some_and(|r| r.starts_with("PERM"))
    );
    let mut bad = TcpStream::connect(d.tcp).await.expect("connect");
    bad.write_all(b"x:").await.expect("write");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), bad.read_to_end(&mut buf)).await;
    // The closed connections are counted down once their tasks end.
    let mut m = samples(&mtasts_daemon::metrics::render(&d.server));
    for _ in 0..500 {
        if m.get("mtasts_open_connections") == Some(&1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        m = samples(&mtasts_daemon::metrics::render(&d.server));
    }
    let want: &[(&str, u64)] = &[
        ("mtasts_requests_total", 7),
        ("mtasts_answers_total{status=\"OK\"}", 2),
        ("mtasts_answers_total{status=\"NOTFOUND\"}", 3),
        ("mtasts_answers_total{status=\"TEMP\"}", 1),
        ("mtasts_answers_total{status=\"PERM\"}", 1),
        ("mtasts_deadline_hits_total", 0),
        ("mtasts_bad_frames_total", 1),
        ("mtasts_connections_total", 8),
        ("mtasts_connections_refused_total", 0),
        // enforce.test twice (the second from memory), nothing, broken, servfail.
        ("mtasts_lookups_total", 5),
        ("mtasts_cache_hits_total", 1),
        ("mtasts_cache_misses_total", 4),
        ("mtasts_txt_queries_total", 4),
        ("mtasts_fetches_total{result=\"ok\"}", 1),
        ("mtasts_fetches_total{result=\"failed\"}", 1),
        ("mtasts_refreshes_total", 0),
        ("mtasts_store_fallbacks_total", 0),
        ("mtasts_pruned_total", 0),
        ("mtasts_store_reads_total", 0),
        ("mtasts_store_errors_total", 0),
        ("mtasts_dane_downgrades_total", 0),
        // remember_tls is off in every zone here; tests/remembered.rs counts them.
        ("mtasts_remembered_tls_total{outcome=\"required\"}", 0),
        ("mtasts_remembered_tls_total{outcome=\"would_require\"}", 0),
        ("mtasts_answer_seconds_count", 7),
        ("mtasts_cached_domains", 4),
        ("mtasts_cached_policies", 1),
        ("mtasts_cached_negatives", 3),
        ("mtasts_open_connections", 1),
    ];
    let got: Vec<(&str, Option<u64>)> =
        want.iter().map(|(k, _)| (*k, m.get(*k).copied())).collect();
    let wanted: Vec<(&str, Option<u64>)> = want.iter().map(|(k, v)| (*k, Some(*v))).collect();
    assert_eq!(got, wanted);
    // Every metric rendered is pinned above (histogram buckets and the sum aside).
    let unpinned: Vec<&String> = m
        .keys()
        .filter(|k| !k.starts_with("mtasts_answer_seconds_"))
        .filter(|k| !want.iter().any(|(w, _)| w == k))
        .collect();
    assert!(unpinned.is_empty(), "not pinned: {unpinned:?}");
    drop(held);
}

#[tokio::test]
async fn dane_and_mta_sts_are_looked_up_at_the_same_time() {
    use hickory_proto::rr::RecordType;
    let w = world().await;
    let d = start(&w).await;
    let domain = mtasts_core::DomainName::parse("slowboth.test").expect("domain");
    let asking = tokio::spawn(ask(d.tcp, "postfix", "slowboth.test"));
    // Wait until the policy host has the request and the TLSA query went out.
    let mut both = false;
    for _ in 0..1000 {
        let fetching = !w.policy_requests("slowboth.test").is_empty();
        let tlsa = w.dns_queries("_25._tcp.mx1.slowboth.test", RecordType::TLSA) > 0;
        if fetching && tlsa {
            both = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(both, "policy request and TLSA query both seen");
    // At that moment neither half has finished: they overlap. (DANE first would have its
    // decision cached before the fetch starts; MTA-STS first would have no lookup in flight
    // by the time the TLSA query goes out.)
    assert!(
        d.server.dane().expect("dane on").cached(&domain).is_none(),
        "DANE still pending"
    );
    assert_eq!(
        d.server.resolver().in_flight(),
        1,
        "the MTA-STS lookup still in flight"
    );
    // And both started before the answer was due (the zone deadline), not after it.
    assert!(!asking.is_finished(), "not yet answered");
    asking.abort();
}

#[tokio::test]
async fn a_pipelined_batch_is_written_in_pieces_of_at_most_64_kib_plus_one_reply() {
    let w = world().await;
    let d = start(&w).await;
    let (mut client, writes, conn, _stop) = counted_connection(&d);
    let count = || writes.load(std::sync::atomic::Ordering::SeqCst);
    client
        .write_all(&frame("nodane big.test"))
        .await
        .expect("write");
    let one = read_reply(&mut client).await.expect("reply");
    assert!(
        (20_000..40_000).contains(&one.len()),
        "a ~30 KB reply: {}",
        one.len()
    );
    assert_eq!(count(), 1);
    // Six cached ~30 KB replies pipelined (~180 KB): written once 64 KiB have gathered
    // (after the third), then the rest: two writes, not one.
    let batch: Vec<u8> = (0..6).flat_map(|_| frame("nodane big.test")).collect();
    client.write_all(&batch).await.expect("write");
    for _ in 0..6 {
        assert_eq!(read_reply(&mut client).await.as_deref(), Some(one.as_str()));
    }
    assert_eq!(count(), 3, "two writes for the batch");
    drop(client);
    conn.await.expect("connection task");
}

#[tokio::test]
async fn a_unix_socket_in_a_missing_directory_is_refused_and_nothing_is_created() {
    let missing = std::env::temp_dir().join(format!("mtasts-nodir-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&missing);
    let config = Config {
        listen: vec![mtasts_daemon::ListenAddr::Unix(missing.join("sub/s.sock"))],
        ..Config::default()
    };
    let Err(e) = mtasts_daemon::bind(&config).await else {
        panic!("bound a socket in a missing directory");
    };
    let text = format!(
        "{e}: {}",
        std::error::Error::source(&e)
            .map(|s| s.to_string())
            .unwrap_or_default()
    );
    assert!(
        text.contains("does not exist") && text.contains("sub"),
        "{text}"
    );
    assert!(!missing.exists(), "no directory created");
}

#[tokio::test]
async fn a_unix_socket_without_a_configured_mode_is_0666_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("mtasts-sockmode-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("s.sock");
    let config = Config {
        listen: vec![mtasts_daemon::ListenAddr::Unix(path.clone())],
        ..Config::default()
    };
    // Under root's usual umask (022) a socket would otherwise be 0755: Postfix's smtp (user
    // postfix) could not connect.
    let _listeners = mtasts_daemon::bind(&config).await.expect("bind");
    let mode = std::fs::metadata(&path)
        .expect("socket")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o666, "{mode:o}");
    let _ = std::fs::remove_dir_all(&dir);
}
