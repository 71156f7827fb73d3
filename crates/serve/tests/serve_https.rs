//! `mtasts serve` over real sockets: our own policy fetcher (every RFC 8461 rule of the
//! resolver) gets the right policy for each of 1,000 domains; curl (HTTP/1.1 and HTTP/2) and
//! `openssl s_client` with and without SNI; unknown hosts, wrong paths and methods; an invalid
//! policy reported and the rest served; reload; the TLS-RPT intake on the same port.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use mtasts_core::DomainName;
use mtasts_resolver::Fetch as _;
use mtasts_serve::Server;
use mtasts_testkit::TestCa;

const DOMAINS: usize = 1000;

mod common;

use common::Dir;

fn policy(i: usize) -> String {
    let mode = ["enforce", "testing", "none"][i % 3];
    format!(
        "version: STSv1\nmode: {mode}\nmx: mx{i}.d{i}.test\nmx: *.backup.d{i}.test\nmax_age: {}\n",
        86_400 + i
    )
}

fn site(dir: &Dir, ca: &TestCa, i: usize) {
    std::fs::write(dir.policies().join(format!("d{i}.test.txt")), policy(i)).expect("policy");
    let pem = ca
        .issue_pem(&[&format!("mta-sts.d{i}.test")])
        .expect("cert");
    std::fs::write(dir.certs().join(format!("d{i}.test.pem")), pem).expect("cert");
}

struct Running {
    addr: SocketAddr,
    server: Arc<Server>,
    _stop: tokio::sync::watch::Sender<bool>,
}

async fn start(
    dir: &Dir,
    tls: bool,
    tlsrpt: Option<(String, Arc<mtasts_tlsrpt::Intake>)>,
) -> Running {
    let (server, loaded) = Server::load(
        Some(&dir.policies()),
        None,
        tls.then(|| dir.certs()).as_deref(),
        tlsrpt,
    )
    .expect("load");
    assert!(
        loaded.uncovered.is_empty() || !tls,
        "{:?}",
        loaded.uncovered
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = tls.then(|| server.tls_acceptor().expect("tls"));
    let (stop, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(mtasts_serve::serve(listener, acceptor, server.clone(), rx));
    Running {
        addr,
        server,
        _stop: stop,
    }
}

fn curl(r: &Running, ca: &Path, host: &str, args: &[&str]) -> (Option<i32>, String) {
    let port = r.addr.port();
    let o = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "--cacert",
            &ca.display().to_string(),
        ])
        .args(["--resolve", &format!("{host}:{port}:127.0.0.1")])
        .args(["-w", "\n%{http_code} %{http_version}"])
        .args(args)
        .arg(format!("https://{host}:{port}/.well-known/mta-sts.txt"))
        .output()
        .expect("curl");
    (
        o.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_fetcher_gets_every_policy_of_a_thousand_domains() {
    let dir = Dir::new("thousand");
    let ca = TestCa::new().expect("ca");
    for i in 0..DOMAINS {
        site(&dir, &ca, i);
    }
    let ca_file = dir.0.join("ca.pem");
    ca.write_pem(&ca_file).expect("ca file");
    let r = start(&dir, true, None).await;
    // The resolver's fetcher, as the daemon uses it: PKIX against the test CA, every fetch
    // rule; the address given (the lab's DNS is not needed), port 443 mapped to ours.
    let dns = Arc::new(
        mtasts_resolver::HickoryDns::new(
            Some("127.0.0.1:9".parse().expect("addr")),
            Duration::from_secs(1),
        )
        .expect("dns"),
    );
    let fetch = Arc::new(mtasts_resolver::HttpsFetcher::new(
        dns,
        mtasts_resolver::client_config(Some(&ca_file)).expect("tls"),
        mtasts_resolver::FetchSettings {
            connect_map: [("127.0.0.1:443".parse().expect("addr"), r.addr)]
                .into_iter()
                .collect(),
            total_timeout: Duration::from_secs(10),
            ..mtasts_resolver::FetchSettings::default()
        },
    ));
    let sem = Arc::new(tokio::sync::Semaphore::new(32));
    let mut tasks = Vec::new();
    for i in 0..DOMAINS {
        let (fetch, sem) = (fetch.clone(), sem.clone());
        tasks.push(tokio::spawn(async move {
            let _p = sem.acquire().await.expect("permit");
            let domain = DomainName::parse(&format!("d{i}.test")).expect("domain");
            let got = fetch
                .fetch_with_addresses(&domain, Ok(vec!["127.0.0.1".parse().expect("ip")]))
                .await
                .unwrap_or_else(|e| panic!("d{i}.test: {e}"));
            (i, got.parsed.policy)
        }));
    }
    for t in tasks {
        let (i, got) = t.await.expect("task");
        let want = mtasts_core::policy::Policy::parse(&policy(i))
            .expect("policy")
            .policy;
        assert_eq!(got, want, "d{i}.test");
    }
    // Every site's id is in the table the records command prints from.
    let sites = r.server.sites();
    assert_eq!(sites.len(), DOMAINS);
    let ids: std::collections::BTreeSet<&str> = sites.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids.len(), DOMAINS, "distinct policies get distinct ids");
}

/// `mtasts check` (the checker library) against `serve` for a hosting provider's 1,000
/// domains: the lab's DNS publishes each domain's TXT with the id `serve records` gives, its
/// `mta-sts` name at serve's address and one shared MX; every domain must come out healthy
/// (TXT, policy over PKIX-valid HTTPS, MX covered, STARTTLS with a valid certificate).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_finds_every_one_of_a_thousand_sites_healthy() {
    use mtasts_check::{CheckSettings, Checker, Level};
    const MX: &str = "mx.provider.test";
    let serve_ip = std::net::Ipv4Addr::new(127, 77, 0, 1);
    let dir = Dir::new("check");
    let policy = |i: usize| {
        format!(
            "version: STSv1\nmode: enforce\nmx: {MX}\nmax_age: {}\n",
            86_400 + i
        )
    };
    for i in 0..DOMAINS {
        std::fs::write(dir.policies().join(format!("d{i}.test.txt")), policy(i)).expect("policy");
    }
    let sites = mtasts_serve::Sites::load_dir(&dir.policies()).expect("sites");
    let mut world = mtasts_testkit::World::builder().smtp(MX, mtasts_testkit::SmtpHost::valid());
    for site in sites.iter() {
        let d = site.domain.to_string();
        world = world
            .txt(
                &format!("_mta-sts.{d}"),
                &format!("v=STSv1; id={};", site.id),
            )
            .txt(
                &format!("_smtp._tls.{d}"),
                "v=TLSRPTv1; rua=mailto:tlsrpt@provider.test",
            )
            .a(&format!("mta-sts.{d}"), serve_ip)
            .mx(&d, 10, MX);
    }
    let world = world.build().await.expect("world");
    for i in 0..DOMAINS {
        let pem = world
            .ca()
            .issue_pem(&[&format!("mta-sts.d{i}.test")])
            .expect("cert");
        std::fs::write(dir.certs().join(format!("d{i}.test.pem")), pem).expect("cert");
    }
    let (server, loaded) =
        Server::load(Some(&dir.policies()), None, Some(&dir.certs()), None).expect("load");
    assert!(
        loaded.problems.is_empty() && loaded.uncovered.is_empty(),
        "{loaded:?}"
    );
    let (addr, _stop) = common::listen_tls(&server, serve_ip.into()).await;
    let mut connect_map = world.port_map();
    connect_map.insert(SocketAddr::from((serve_ip, 443)), addr);
    let checker = Arc::new(
        Checker::new(CheckSettings {
            nameserver: Some(world.dns_addr()),
            ca_file: Some(world.ca_file().to_path_buf()),
            timeout: Duration::from_secs(10),
            smtp: true,
            connect_map,
        })
        .expect("checker"),
    );
    let sem = Arc::new(tokio::sync::Semaphore::new(32));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..DOMAINS {
        let (checker, sem) = (checker.clone(), sem.clone());
        tasks.spawn(async move {
            let _p = sem.acquire().await.expect("permit");
            let domain = DomainName::parse(&format!("d{i}.test")).expect("domain");
            checker.check(&domain).await
        });
    }
    let mut unhealthy = Vec::new();
    let mut seen = 0;
    while let Some(r) = tasks.join_next().await {
        let r = r.expect("task");
        seen += 1;
        let codes: Vec<&str> = r.findings.iter().map(|f| f.code.as_str()).collect();
        let want = ["txt-ok", "policy-ok", "mx-covered", "tls-ok", "no-sni-ok"];
        if r.verdict != Level::Info
            || r.deliverable != Some(true)
            || want.iter().any(|c| !codes.contains(c))
        {
            unhealthy.push(format!("{}: {:?} {codes:?}", r.domain, r.verdict));
        }
    }
    assert_eq!(seen, DOMAINS);
    assert!(
        unhealthy.is_empty(),
        "{} unhealthy, e.g. {:?}",
        unhealthy.len(),
        unhealthy.iter().take(3).collect::<Vec<_>>()
    );
    // Every policy came from serve (counted by domain in its metrics).
    let metrics = server.metrics_text();
    let served = metrics
        .lines()
        .filter(|l| l.starts_with("mtasts_serve_policy_requests_total{domain=\"d"))
        .count();
    assert_eq!(served, DOMAINS, "policies served by domain");
    drop(world);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_and_openssl_with_and_without_sni() {
    let dir = Dir::new("clients");
    let ca = TestCa::new().expect("ca");
    for i in 0..3 {
        site(&dir, &ca, i);
    }
    let ca_file = dir.0.join("ca.pem");
    ca.write_pem(&ca_file).expect("ca file");
    let r = start(&dir, true, None).await;
    let ca = ca_file.as_path();

    let (code, out) = curl(&r, ca, "mta-sts.d1.test", &["--http1.1"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with(&policy(1)), "{out}");
    assert!(out.ends_with("200 1.1"), "{out}");
    let (code, out) = curl(&r, ca, "mta-sts.d2.test", &["--http2"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.ends_with("200 2"), "HTTP/2 by ALPN: {out}");
    // HEAD: the headers, no body.
    let (code, out) = curl(&r, ca, "mta-sts.d1.test", &["-I"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.to_ascii_lowercase()
            .contains("content-type: text/plain"),
        "{out}"
    );
    // A name with no certificate: the handshake fails (curl 35), no other certificate shown.
    let (code, out) = curl(&r, ca, "mta-sts.unknown.test", &[]);
    assert_eq!(code, Some(35), "{out}");
    // A Host other than the SNI name on that connection: 421, never the other policy.
    // (HTTP/1.1: over HTTP/2 a Host header that differs from :authority is malformed, and
    // refused as such.)
    let (code, out) = curl(
        &r,
        ca,
        "mta-sts.d1.test",
        &["--http1.1", "-H", "Host: mta-sts.d2.test"],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.ends_with("421 1.1"), "{out}");
    assert!(!out.contains("mx2.d2.test"), "{out}");
    // Another path, another method.
    let status = |method: &str, path: &str| {
        let port = r.addr.port();
        let o = Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", method])
            .args(["--cacert", &ca.display().to_string()])
            .args(["--resolve", &format!("mta-sts.d1.test:{port}:127.0.0.1")])
            .arg(format!("https://mta-sts.d1.test:{port}{path}"))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert_eq!(status("GET", "/other"), "404");
    assert_eq!(status("POST", "/.well-known/mta-sts.txt"), "405");

    // openssl s_client: with SNI the site's certificate; without, a handshake failure.
    let s_client = |extra: &[&str]| {
        let o = Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &r.addr.to_string(),
                "-CAfile",
                &ca.display().to_string(),
            ])
            .args(extra)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("openssl");
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let with = s_client(&[
        "-servername",
        "mta-sts.d0.test",
        "-verify_hostname",
        "mta-sts.d0.test",
    ]);
    assert!(
        with.contains("CN = mta-sts.d0.test") || with.contains("CN=mta-sts.d0.test"),
        "{with}"
    );
    assert!(with.contains("Verify return code: 0 (ok)"), "{with}");
    let without = s_client(&["-noservername"]);
    assert!(
        without.contains("alert") || without.contains("no peer certificate"),
        "{without}"
    );
    assert!(
        !without.contains("CN = mta-sts.d"),
        "no certificate without SNI: {without}"
    );

    // The counters saw all of it, and the metrics listener serves them.
    let text = r.server.metrics_text();
    let value = |series: &str| -> u64 {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(series)
                    .map(|v| v.trim().parse().unwrap_or(0))
            })
            .unwrap_or_else(|| panic!("{series} missing: {text}"))
    };
    assert!(
        value("mtasts_serve_requests_total{status=\"200\"} ") >= 3,
        "{text}"
    );
    assert_eq!(
        value("mtasts_serve_requests_total{status=\"421\"} "),
        1,
        "{text}"
    );
    assert_eq!(
        value("mtasts_serve_requests_total{status=\"405\"} "),
        1,
        "{text}"
    );
    assert!(
        value("mtasts_serve_policy_requests_total{domain=\"d1.test\"} ") >= 2,
        "{text}"
    );
    assert!(
        value("mtasts_serve_unknown_names_total ") >= 2,
        "unknown name and no SNI: {text}"
    );
    assert!(
        value("mtasts_serve_handshakes_total{result=\"failed\"} ") >= 2,
        "{text}"
    );
    assert_eq!(value("mtasts_serve_sites "), 3);
    // The test CA's certificates run to the end of 2099.
    let expiry = value("mtasts_serve_certificate_expiry_seconds{name=\"mta-sts.d0.test\"} ");
    assert!(
        (4_070_908_800..4_102_444_800 + 86_400).contains(&expiry),
        "{expiry}"
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let maddr = listener.local_addr().expect("addr");
    let (_stop, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(mtasts_serve::serve_metrics(listener, r.server.clone(), rx));
    let o = Command::new("curl")
        .args(["-sS", &format!("http://{maddr}/metrics")])
        .output()
        .expect("curl");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("# TYPE mtasts_serve_requests_total counter")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_policies_are_reported_and_reload_swaps_sites() {
    let dir = Dir::new("reload");
    let ca = TestCa::new().expect("ca");
    site(&dir, &ca, 0);
    std::fs::write(
        dir.policies().join("broken.test.txt"),
        "version: STSv1\nmode: enforce\nmax_age: 86400\n",
    )
    .expect("write");
    std::fs::write(dir.policies().join("not a domain!.txt"), policy(0)).expect("write");
    let (server, loaded) =
        Server::load(Some(&dir.policies()), None, Some(&dir.certs()), None).expect("load");
    assert_eq!(loaded.sites, 1);
    let problems = loaded.problems.join("\n");
    assert!(
        problems.contains("broken.test.txt (domain broken.test): invalid policy: line 0"),
        "{problems}"
    );
    assert!(problems.contains("POL-03"), "{problems}");
    assert!(
        problems.contains("not a domain!.txt: the file name is not"),
        "{problems}"
    );
    assert!(server.sites().for_host("mta-sts.d0.test").is_some());

    // Reload: a new site with its certificate appears, a removed one is gone.
    site(&dir, &ca, 7);
    std::fs::remove_file(dir.policies().join("d0.test.txt")).expect("remove");
    let loaded = server.reload().expect("reload");
    assert_eq!(loaded.sites, 1);
    assert!(server.sites().for_host("mta-sts.d7.test").is_some());
    assert!(server.sites().for_host("mta-sts.d0.test").is_none());
    // A site without a certificate is served but said to be uncovered.
    std::fs::write(dir.policies().join("nocert.test.txt"), policy(3)).expect("write");
    let loaded = server.reload().expect("reload");
    assert_eq!(loaded.uncovered, vec!["mta-sts.nocert.test".to_string()]);
    // An unreadable directory changes nothing.
    let gone = Dir::new("gone");
    let (server2, _) = Server::load(Some(&gone.policies()), None, None, None).expect("load");
    drop(gone);
    assert!(server2.reload().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_unknown_hosts_and_the_tlsrpt_intake_on_the_same_port() {
    let dir = Dir::new("plain");
    let ca = TestCa::new().expect("ca");
    site(&dir, &ca, 5);
    let db_path = dir.0.join("reports.db");
    let intake = mtasts_tlsrpt::Intake::new(
        mtasts_tlsrpt::ReportDb::open(&mtasts_tlsrpt::DbSpec::Sqlite(db_path.clone())).expect("db"),
    );
    let r = start(&dir, false, Some(("/tlsrpt".into(), intake))).await;
    let get = |host: &str| {
        let o = Command::new("curl")
            .args([
                "-sS",
                "-w",
                "\n%{http_code}",
                "-H",
                &format!("Host: {host}"),
            ])
            .arg(format!("http://{}/.well-known/mta-sts.txt", r.addr))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert!(get("mta-sts.d5.test").ends_with("\n200"));
    let unknown = get("mta-sts.other.test");
    assert!(unknown.ends_with("\n404"), "{unknown}");
    assert!(unknown.contains("no MTA-STS policy is served for mta-sts.other.test"));
    // A report POSTed to /tlsrpt is stored (201).
    let report = r#"{"organization-name":"Example","report-id":"serve-1","date-range":{"start-datetime":"2026-11-30T00:00:00Z","end-datetime":"2026-11-30T23:59:59Z"},"policies":[{"policy":{"policy-type":"sts","policy-domain":"d5.test"},"summary":{"total-successful-session-count":1,"total-failure-session-count":0}}]}"#;
    let o = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "Content-Type: application/tlsrpt+json",
        ])
        .args(["--data-binary", report])
        .arg(format!("http://{}/tlsrpt", r.addr))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "201");
    let mut db =
        mtasts_tlsrpt::ReportDb::open(&mtasts_tlsrpt::DbSpec::Sqlite(db_path)).expect("db");
    assert_eq!(db.count().expect("count"), 1);
}

/// A hosting provider's sites file: inline sites and a template over a customer list (inline
/// and from a file), each generated policy parsed; bad entries reported where they are, the
/// rest served; a domain defined twice keeps its first definition.
#[test]
fn templates_generate_one_policy_per_customer() {
    let dir = Dir::new("templates");
    let ca = TestCa::new().expect("ca");
    site(&dir, &ca, 1);
    std::fs::write(
        dir.0.join("customers.txt"),
        "# customers of the provider\ncust-a.example\n\ncust-b.example  # since 2026\nnot a domain\nd1.test\n",
    )
    .expect("write");
    let config = dir.0.join("sites.toml");
    std::fs::write(
        &config,
        r#"
[[site]]
domain = "single.example"
policy = """
version: STSv1
mode: testing
mx: mail.single.example
max_age: 86400
"""

[[template]]
name = "customers"
policy = """
version: STSv1
mode: enforce
mx: mx.{domain}.cust.provider.example
max_age: 604800
"""
domains = ["cust-c.example"]
domains_file = "customers.txt"

[[template]]
name = "broken"
policy = """
version: STSv1
mode: sometimes
mx: mx.{domain}.provider.example
max_age: 1
"""
domains = ["broken.example"]

[[template]]
name = "shared"
policy = "version: STSv1\nmode: none\nmax_age: 1\n"
domains = ["shared.example"]
"#,
    )
    .expect("write");
    let (server, loaded) =
        Server::load(Some(&dir.policies()), Some(&config), None, None).expect("load");
    let sites = server.sites();
    let hosts: Vec<String> = sites.iter().map(|s| s.host()).collect();
    assert_eq!(
        hosts,
        [
            "mta-sts.cust-a.example",
            "mta-sts.cust-b.example",
            "mta-sts.cust-c.example",
            "mta-sts.d1.test",
            "mta-sts.single.example"
        ]
    );
    let a = sites.for_host("mta-sts.cust-a.example").expect("cust-a");
    assert_eq!(
        a.policy.mx[0].to_string(),
        "mx.cust-a.example.cust.provider.example"
    );
    assert_ne!(
        a.id,
        sites.for_host("mta-sts.cust-b.example").expect("cust-b").id,
        "different mx, different id"
    );
    // d1.test comes from the directory (first); its template copy is reported.
    assert!(
        String::from_utf8_lossy(&sites.for_host("mta-sts.d1.test").expect("d1").body)
            .contains("mx1.d1.test")
    );
    let problems = loaded.problems.join("\n");
    assert!(
        problems.contains("customers.txt:5: `not a domain` is not a valid domain"),
        "{problems}"
    );
    assert!(problems.contains("template[1] (broken).domains[0] (domain broken.example): invalid policy: line 2, key `mode`"), "{problems}");
    assert!(
        problems.contains("template[2] (shared): the policy has no `{domain}`"),
        "{problems}"
    );
    assert!(
        problems.contains("a second definition of d1.test"),
        "{problems}"
    );
    assert_eq!(loaded.problems.len(), 4, "{problems}");
    // A sites file that is not TOML of that shape: the load fails as a whole.
    std::fs::write(&config, "[[site]]\ndomain = 1\n").expect("write");
    let e = server.reload().expect_err("bad config");
    assert!(
        mtasts_core::errors::Chain(&e)
            .to_string()
            .contains("not a sites configuration"),
        "{}",
        mtasts_core::errors::Chain(&e)
    );
    assert_eq!(server.sites().len(), 5, "the previous sites stay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_request_rate_gets_429_and_others_are_served() {
    let dir = Dir::new("rate");
    let ca = TestCa::new().expect("ca");
    site(&dir, &ca, 7);
    let r = start(&dir, false, None).await;
    // 1 request a second, 3 at once: in one curl run (one connection) the fourth is refused.
    r.server.limit_clients(mtasts_serve::limits::ClientRate {
        per_second: 1.0,
        burst: 3.0,
    });
    let url = format!("http://{}/.well-known/mta-sts.txt", r.addr);
    let mut curl = Command::new("curl");
    curl.args([
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %header{retry-after}\n",
    ])
    .args(["-H", "Host: mta-sts.d7.test"]);
    for _ in 0..5 {
        curl.arg(&url);
    }
    let o = curl.output().expect("curl");
    let codes = String::from_utf8_lossy(&o.stdout).into_owned();
    // The status lines (`-w`); bodies, where curl prints them, are left out.
    let codes: Vec<&str> = codes
        .lines()
        .map(str::trim)
        .filter(|l| l.len() >= 3 && l.as_bytes()[..3].iter().all(u8::is_ascii_digit))
        .collect();
    assert_eq!(codes, ["200", "200", "200", "429 1", "429 1"], "{codes:?}");
    assert!(
        r.server
            .metrics_text()
            .contains("mtasts_serve_requests_total{status=\"429\"} 2")
    );
    // Another address has its own bucket.
    let other = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(["--interface", "127.0.0.9", "-H", "Host: mta-sts.d7.test"])
        .arg(&url)
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&other.stdout), "200");
}
