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
        .args(["--policies", &p, "--delegation-zone", "sts.provider.test"])
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
