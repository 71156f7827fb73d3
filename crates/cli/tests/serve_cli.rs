//! `mtasts serve --listen 127.0.0.1:PORT --policies DIR --certs DIR` and `mtasts serve
//! records --policies DIR`, exactly as written: the policy served over HTTPS (curl), the TXT
//! line per domain with the id that follows the content, SIGHUP reloading a changed policy
//! (and so a new id) without dropping the listener, SIGTERM stopping it.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::ReportDir as Dir;

const POLICY: &str = "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 604800\n";

fn records(policies: &str) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_mtasts"))
        .args(["serve", "records", "--policies", policies])
        .output()
        .expect("records");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn id_of(records: &str, domain: &str) -> String {
    let line = records
        .lines()
        .find(|l| l.starts_with(&format!("_mta-sts.{domain}. IN TXT ")))
        .unwrap_or_else(|| panic!("no TXT line for {domain}: {records}"));
    line.split("id=")
        .nth(1)
        .and_then(|s| s.split(';').next())
        .expect("id")
        .to_string()
}

/// What the server printed up to and including its whole `ready on` line (20 s at most).
fn ready(stderr: &mut impl Read) -> String {
    let mut seen = String::new();
    let start = Instant::now();
    let mut buf = [0u8; 512];
    let done = |s: &str| s.find("ready on").is_some_and(|at| s[at..].contains('\n'));
    while !done(&seen) && start.elapsed() < Duration::from_secs(20) {
        let n = stderr.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    seen
}

fn fetch(port: u16, ca: &str, host: &str) -> String {
    let o = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert", ca])
        .args(["--resolve", &format!("{host}:{port}:127.0.0.1")])
        .arg(format!("https://{host}:{port}/.well-known/mta-sts.txt"))
        .output()
        .expect("curl");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn serve_and_records_as_written_with_reload() {
    let dir = Dir::new("serve-cli");
    let (policies, certs) = (dir.0.join("policies"), dir.0.join("certs"));
    std::fs::create_dir_all(&policies).expect("dir");
    std::fs::create_dir_all(&certs).expect("dir");
    let ca = mtasts_testkit::TestCa::new().expect("ca");
    let ca_file = dir.0.join("ca.pem");
    ca.write_pem(&ca_file).expect("ca");
    for d in ["example.com", "example.org"] {
        std::fs::write(policies.join(format!("{d}.txt")), POLICY).expect("policy");
        std::fs::write(
            certs.join(format!("{d}.pem")),
            ca.issue_pem(&[&format!("mta-sts.{d}")]).expect("cert"),
        )
        .expect("cert");
    }
    let p = policies.display().to_string();
    let before = records(&p);
    assert_eq!(
        before.matches(" IN TXT \"v=STSv1; id=").count(),
        2,
        "{before}"
    );
    // The same policy, the same id, whatever the domain.
    assert_eq!(id_of(&before, "example.com"), id_of(&before, "example.org"));

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mtasts"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--policies", &p, "--certs", &certs.display().to_string()])
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve");
    let mut stderr = child.stderr.take().expect("stderr");
    let mut child = Killed(child);
    let seen = ready(&mut stderr);
    assert!(seen.contains("2 site(s), 2 certificate name(s)"), "{seen}");
    let ca = ca_file.display().to_string();
    assert_eq!(fetch(port, &ca, "mta-sts.example.com"), POLICY);

    // A changed policy: SIGHUP, then the new content is served, and records gives a new id.
    let changed = POLICY.replace("enforce", "testing");
    std::fs::write(policies.join("example.com.txt"), &changed).expect("policy");
    child.signal("-HUP");
    let start = Instant::now();
    while fetch(port, &ca, "mta-sts.example.com") != changed {
        assert!(start.elapsed() < Duration::from_secs(10), "not reloaded");
        std::thread::sleep(Duration::from_millis(50));
    }
    let after = records(&p);
    assert_ne!(id_of(&after, "example.com"), id_of(&before, "example.com"));
    assert_eq!(id_of(&after, "example.org"), id_of(&before, "example.org"));

    child.signal("-TERM");
    let status = child.0.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn records_with_cname_rua_and_json() {
    let dir = Dir::new("serve-records");
    std::fs::write(dir.0.join("example.net.txt"), POLICY).expect("policy");
    let o = Command::new(env!("CARGO_BIN_EXE_mtasts"))
        .args([
            "serve",
            "records",
            "--policies",
            &dir.0.display().to_string(),
        ])
        .args([
            "--cname",
            "policies.provider.example",
            "--rua",
            "mailto:tlsrpt@example.net",
            "--json",
        ])
        .output()
        .expect("records");
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON line");
    assert_eq!(v["domain"], "example.net");
    assert_eq!(
        v["host"],
        "mta-sts.example.net. IN CNAME policies.provider.example."
    );
    assert_eq!(
        v["tlsrpt"],
        "_smtp._tls.example.net. IN TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@example.net\""
    );
    let id = v["id"].as_str().expect("id");
    assert_eq!(
        v["txt"],
        format!("_mta-sts.example.net. IN TXT \"v=STSv1; id={id};\"")
    );
    // An invalid file: exit 1, the rest printed; an unknown domain asked for: exit 2.
    std::fs::write(dir.0.join("bad.example.txt"), "version: STSv1\n").expect("policy");
    let o = Command::new(env!("CARGO_BIN_EXE_mtasts"))
        .args([
            "serve",
            "records",
            "--policies",
            &dir.0.display().to_string(),
        ])
        .output()
        .expect("records");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("_mta-sts.example.net."));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("bad.example.txt (domain bad.example): invalid policy")
    );
    let o = Command::new(env!("CARGO_BIN_EXE_mtasts"))
        .args([
            "serve",
            "records",
            "--policies",
            &dir.0.display().to_string(),
            "nope.example",
        ])
        .output()
        .expect("records");
    assert_eq!(o.status.code(), Some(2));
}

fn dig(port: u16, name: &str, tcp: bool) -> String {
    let o = Command::new("dig")
        .args([
            "@127.0.0.1",
            "-p",
            &port.to_string(),
            "+short",
            "+time=2",
            "+tries=1",
        ])
        .args(if tcp { &["+tcp"][..] } else { &[][..] })
        .args(["TXT", name])
        .output()
        .expect("dig");
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// Delegated DNS (RFC 8461 §8.2): the listener answers `_mta-sts.<domain>.<zone>` with the
/// id `records` prints, over UDP and TCP (dig), our resolver reads it, and after a policy
/// change and SIGHUP the new id without any DNS edit.
#[cfg_attr(not(mtasts_run_lab), ignore = "needs dig (MTASTS_TEST_SKIP opted out)")]
#[test]
fn delegated_dns_answers_the_current_id() {
    let dir = Dir::new("serve-dns");
    let policies = dir.0.join("policies");
    std::fs::create_dir_all(&policies).expect("dir");
    std::fs::write(policies.join("example.com.txt"), POLICY).expect("policy");
    let p = policies.display().to_string();
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port()
    };
    let (http, dns) = (free(), free());
    let mut child = Command::new(env!("CARGO_BIN_EXE_mtasts"))
        .args([
            "serve",
            "--plain-http",
            "--listen",
            &format!("127.0.0.1:{http}"),
        ])
        .args([
            "--policies",
            &p,
            "--no-watch",
            "--delegation-zone",
            "sts.provider.test",
        ])
        .args(["--dns-listen", &format!("127.0.0.1:{dns}")])
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve");
    let mut stderr = child.stderr.take().expect("stderr");
    let mut child = Killed(child);
    let seen = ready(&mut stderr);
    assert!(
        seen.contains("delegated DNS for sts.provider.test"),
        "{seen}"
    );
    let name = "_mta-sts.example.com.sts.provider.test";
    let o = Command::new(env!("CARGO_BIN_EXE_mtasts"))
        .args([
            "serve",
            "records",
            "--policies",
            &p,
            "--delegation-zone",
            "sts.provider.test",
        ])
        .output()
        .expect("records");
    let recs = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        recs.contains("_mta-sts.example.com. IN CNAME _mta-sts.example.com.sts.provider.test."),
        "{recs}"
    );
    let id = id_of(&records(&p), "example.com");
    assert_eq!(dig(dns, name, false), format!("\"v=STSv1; id={id};\""));
    assert_eq!(dig(dns, name, true), format!("\"v=STSv1; id={id};\""));
    // Outside the zone: refused; an unknown domain in it: nothing.
    assert_eq!(
        dig(dns, "_mta-sts.example.org.sts.provider.test", false),
        ""
    );
    // Our resolver's TXT lookup (the daemon's) through the listener, and the core's parse.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let txt = rt.block_on(async {
        use mtasts_resolver::Dns as _;
        let dns = mtasts_resolver::HickoryDns::new(
            Some(format!("127.0.0.1:{dns}").parse().expect("addr")),
            Duration::from_secs(2),
        )
        .expect("dns");
        dns.txt(name).await.expect("txt")
    });
    let mtasts_resolver::TxtAnswer::Records(answer) = &txt else {
        panic!("{txt:?}");
    };
    let joined: Vec<u8> = answer.iter().flatten().flatten().copied().collect();
    let parsed = mtasts_core::txt::parse_record(&joined).expect("a valid STS record");
    assert_eq!(parsed.id.as_str(), id);

    // A new policy: SIGHUP, and the listener answers the new id.
    std::fs::write(
        policies.join("example.com.txt"),
        POLICY.replace("enforce", "none"),
    )
    .expect("policy");
    child.signal("-HUP");
    let new_id = id_of(&records(&p), "example.com");
    assert_ne!(new_id, id);
    let start = Instant::now();
    while dig(dns, name, false) != format!("\"v=STSv1; id={new_id};\"") {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the new id was not answered"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.signal("-TERM");
    assert_eq!(child.0.wait().expect("wait").code(), Some(0));
}

fn retire_cli(policies: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_mtasts"))
        .args(["serve", "retire", "--policies", policies])
        .args(args)
        .output()
        .expect("retire");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn fetch_plain(port: u16, host: &str) -> String {
    let o = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-H", &format!("Host: {host}")])
        .arg(format!("http://127.0.0.1:{port}/.well-known/mta-sts.txt"))
        .output()
        .expect("curl");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn ops_05_retire_serves_mode_none_under_a_new_id_and_records_says_when_to_remove() {
    let dir = Dir::new("serve-retire");
    std::fs::write(dir.0.join("example.com.txt"), POLICY).expect("policy");
    std::fs::write(dir.0.join("example.org.txt"), POLICY).expect("policy");
    let p = dir.0.display().to_string();
    let old_id = id_of(&records(&p), "example.com");
    let (mut child, port, _stderr, seen) = serve_plain(&p, &["--no-watch"]);
    assert!(seen.contains("2 site(s)"), "{seen}");
    assert_eq!(fetch_plain(port, "mta-sts.example.com"), POLICY);

    let (code, out, err) = retire_cli(&p, &["example.com"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let retire_file = std::fs::read_to_string(dir.0.join("example.com.retire")).expect("written");
    assert!(
        retire_file.contains("previous_max_age = 604800"),
        "{retire_file}"
    );
    let new_id = id_of(&records(&p), "example.com");
    assert_ne!(new_id, old_id);
    assert!(
        out.contains("example.com: retiring (mode none since "),
        "{out}"
    );
    assert!(out.contains("keep its records until "), "{out}");
    assert!(
        out.contains(&format!(
            "_mta-sts.example.com. IN TXT \"v=STSv1; id={new_id};\""
        )),
        "{out}"
    );
    // Run again: the file (and so `since`) is kept.
    let (code, again, _) = retire_cli(&p, &["example.com"]);
    assert_eq!((code, again), (Some(0), out));
    assert_eq!(
        std::fs::read_to_string(dir.0.join("example.com.retire")).expect("kept"),
        retire_file
    );

    child.signal("-HUP");
    let none = POLICY.replace("enforce", "none").replace("604800", "86400");
    let start = Instant::now();
    while fetch_plain(port, "mta-sts.example.com") != none {
        assert!(start.elapsed() < Duration::from_secs(10), "not reloaded");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(fetch_plain(port, "mta-sts.example.org"), POLICY);

    // Zone lines say how long to wait; JSON too. A retirement long past is safe to remove.
    let (code, _, err) = retire_cli(&p, &["--since", "2020-01-01T00:00:00Z", "example.org"]);
    assert_eq!(code, Some(0), "{err}");
    let zone = records(&p);
    assert!(
        zone.contains("; example.com: retiring (mode none since ")
            && zone.contains("; example.org: retired (mode none since 2020-01-01T00:00:00Z): since 2020-01-08T00:00:00Z its records and files can be removed"),
        "{zone}"
    );
    let o = Command::new(env!("CARGO_BIN_EXE_mtasts"))
        .args(["serve", "records", "--json", "--policies", &p])
        .output()
        .expect("records");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let retire = |d: &str| {
        lines
            .iter()
            .find(|v| v["domain"] == d)
            .map(|v| v["retire"].clone())
            .expect("domain")
    };
    assert_eq!(retire("example.com")["safe_now"], false);
    assert_eq!(
        retire("example.org"),
        serde_json::json!({"since": "2020-01-01T00:00:00Z", "safe_after": "2020-01-08T00:00:00Z", "safe_now": true})
    );

    // Unknown domains are refused, and nothing is written for them.
    let (code, _, err) = retire_cli(&p, &["example.net"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("example.net: no valid policy file"), "{err}");
    assert!(!dir.0.join("example.net.retire").exists());

    child.signal("-TERM");
    assert_eq!(child.0.wait().expect("wait").code(), Some(0));
}

/// Serves plain HTTP from `policies` with `extra` flags; the child and its ready text.
fn serve_plain(policies: &str, extra: &[&str]) -> (Killed, u16, std::process::ChildStderr, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mtasts"))
        .args([
            "serve",
            "--plain-http",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["--policies", policies])
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve");
    let mut stderr = child.stderr.take().expect("stderr");
    let child = Killed(child);
    let seen = ready(&mut stderr);
    (child, port, stderr, seen)
}

fn served_within(port: u16, host: &str, want: &str, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if fetch_plain(port, host) == want {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn serve_reloads_when_files_change_and_only_on_sighup_with_no_watch() {
    let dir = Dir::new("serve-watch");
    let (watched, still) = (dir.0.join("watched"), dir.0.join("still"));
    for d in [&watched, &still] {
        std::fs::create_dir_all(d).expect("dir");
        std::fs::write(d.join("example.com.txt"), POLICY).expect("policy");
    }
    let (w, w_port, mut w_err, seen) = serve_plain(&watched.display().to_string(), &[]);
    assert!(seen.contains("1 site(s)"), "{seen}");
    let (s, s_port, _s_err, seen) = serve_plain(&still.display().to_string(), &["--no-watch"]);
    assert!(seen.contains("1 site(s)"), "{seen}");

    // An edit, written in place, and a new domain, written and renamed as editors do.
    let changed = POLICY.replace("enforce", "testing");
    for d in [&watched, &still] {
        std::fs::write(d.join("example.com.txt"), &changed).expect("policy");
        std::fs::write(d.join("new.example.tmp"), POLICY).expect("policy");
        std::fs::rename(d.join("new.example.tmp"), d.join("new.example.txt")).expect("rename");
    }
    assert!(
        served_within(
            w_port,
            "mta-sts.example.com",
            &changed,
            Duration::from_secs(10)
        ),
        "the watched server did not reload"
    );
    assert!(served_within(
        w_port,
        "mta-sts.new.example",
        POLICY,
        Duration::from_secs(10)
    ));
    // The log line follows the swap; read it on a thread so a missing line fails, not hangs.
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        while let Ok(n @ 1..) = w_err.read(&mut buf) {
            if let Ok(mut l) = sink.lock() {
                l.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
    });
    let start = Instant::now();
    let logged = || log.lock().map(|l| l.clone()).unwrap_or_default();
    while !logged().contains("reloaded (files changed)") {
        assert!(start.elapsed() < Duration::from_secs(10), "{}", logged());
        std::thread::sleep(Duration::from_millis(50));
    }

    // Without the watch nothing changes until SIGHUP (the watched one took well under this).
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(fetch_plain(s_port, "mta-sts.example.com"), POLICY);
    s.signal("-HUP");
    assert!(served_within(
        s_port,
        "mta-sts.example.com",
        &changed,
        Duration::from_secs(10)
    ));
    assert!(served_within(
        s_port,
        "mta-sts.new.example",
        POLICY,
        Duration::from_secs(10)
    ));

    for mut c in [w, s] {
        c.signal("-TERM");
        assert_eq!(c.0.wait().expect("wait").code(), Some(0));
    }
}

#[test]
fn access_log_as_json_lines() {
    let dir = Dir::new("serve-access-log");
    std::fs::write(dir.0.join("example.com.txt"), POLICY).expect("policy");
    let (mut child, port, mut stderr, seen) = serve_plain(
        &dir.0.display().to_string(),
        &["--no-watch", "--access-log", "--log-format", "json"],
    );
    assert!(seen.contains("1 site(s)"), "{seen}");
    assert_eq!(fetch_plain(port, "mta-sts.example.com"), POLICY);
    let _ = fetch_plain(port, "mta-sts.unknown.example");
    child.signal("-TERM");
    assert_eq!(child.0.wait().expect("wait").code(), Some(0));
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).expect("stderr");
    let requests: Vec<serde_json::Value> = rest
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "mtasts_serve::access")
        .map(|v| v["fields"].clone())
        .collect();
    assert_eq!(requests.len(), 2, "{rest}");
    let (ok, unknown) = (&requests[0], &requests[1]);
    assert_eq!(ok["message"], "request");
    assert_eq!(ok["host"], "mta-sts.example.com");
    assert_eq!(ok["method"], "GET");
    assert_eq!(ok["path"], "/.well-known/mta-sts.txt");
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["bytes"], POLICY.len());
    assert_eq!(ok["version"], "HTTP/1.1");
    assert!(
        ok["peer"]
            .as_str()
            .is_some_and(|p| p.starts_with("127.0.0.1:")),
        "{ok}"
    );
    assert!(ok["micros"].as_u64().is_some(), "{ok}");
    assert_eq!(
        (&unknown["host"], &unknown["status"]),
        (
            &serde_json::json!("mta-sts.unknown.example"),
            &serde_json::json!(404)
        )
    );
}

/// `mtasts serve --acme-directory …` with pebble (validating for real through the lab's DNS):
/// the site's certificate is ordered at start and served; a restart serves the stored one
/// at once and orders nothing.
#[test]
fn acme_certificates_from_pebble_end_to_end() {
    let dir = Dir::new("serve-acme");
    let policies = dir.0.join("policies");
    std::fs::create_dir_all(&policies).expect("dir");
    std::fs::write(policies.join("a.test.txt"), POLICY).expect("policy");
    let ip = std::net::Ipv4Addr::new(127, 77, 5, 1);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let world = rt
        .block_on(
            mtasts_testkit::World::builder()
                .a("mta-sts.a.test", ip)
                .build(),
        )
        .expect("world");
    let port = std::net::TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let pebble = mtasts_testkit::Pebble::start(
        &mtasts_testkit::PebbleConfig {
            dns: world.dns_addr(),
            tls_port: port,
            http_port: 9,
            blocklist: Vec::new(),
            validity_secs: 3600,
        },
        world.ca(),
        &dir.0.join("pebble"),
    )
    .expect("pebble");
    let acme_dir = dir.0.join("acme");
    let start = || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mtasts"))
            .args(["serve", "--listen", &format!("{ip}:{port}")])
            .args(["--policies", &policies.display().to_string()])
            .args(["--acme-directory", &pebble.directory()])
            .args(["--acme-dir", &acme_dir.display().to_string()])
            .args(["--acme-ca", &pebble.api_ca_file().display().to_string()])
            .args(["--acme-contact", "mailto:hostmaster@provider.test"])
            .stderr(Stdio::piped())
            .spawn()
            .expect("serve");
        let mut stderr = child.stderr.take().expect("stderr");
        let child = Killed(child);
        let seen = ready(&mut stderr);
        assert!(seen.contains("1 site(s)"), "{seen}");
        (child, stderr)
    };
    let fetch = |root: &std::path::Path| {
        let host = "mta-sts.a.test";
        Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "5",
                "--cacert",
                &root.display().to_string(),
            ])
            .args(["--resolve", &format!("{host}:{port}:{ip}")])
            .arg(format!("https://{host}:{port}/.well-known/mta-sts.txt"))
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let (mut child, _stderr) = start();
    let root = pebble.root_file().expect("root");
    let began = Instant::now();
    while fetch(&root) != POLICY {
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "no certificate from pebble served"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let cert = acme_dir.join("certs/mta-sts.a.test.pem");
    let issued = std::fs::read(&cert).expect("stored certificate");
    child.signal("-TERM");
    assert_eq!(child.0.wait().expect("wait").code(), Some(0));

    // A restart serves the stored certificate at once and orders nothing new.
    let (mut child, _stderr) = start();
    assert_eq!(fetch(&root), POLICY);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        std::fs::read(&cert).expect("stored"),
        issued,
        "not re-issued"
    );
    child.signal("-TERM");
    assert_eq!(child.0.wait().expect("wait").code(), Some(0));
    drop(world);
}

/// A child killed on drop, so a failed test leaves no server behind.
struct Killed(std::process::Child);

impl Killed {
    /// Sends it `signal` (`-HUP`, `-TERM`).
    fn signal(&self, signal: &str) {
        let pid = self.0.id().to_string();
        assert!(
            Command::new("kill")
                .args([signal, &pid])
                .status()
                .expect("kill")
                .success()
        );
    }
}
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
