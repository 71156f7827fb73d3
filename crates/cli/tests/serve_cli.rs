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
    let mut seen = String::new();
    let start = Instant::now();
    let mut buf = [0u8; 512];
    while !seen.contains("ready on") && start.elapsed() < Duration::from_secs(20) {
        let n = stderr.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains("2 site(s), 2 certificate name(s)"), "{seen}");
    let ca = ca_file.display().to_string();
    assert_eq!(fetch(port, &ca, "mta-sts.example.com"), POLICY);

    // A changed policy: SIGHUP, then the new content is served, and records gives a new id.
    let changed = POLICY.replace("enforce", "testing");
    std::fs::write(policies.join("example.com.txt"), &changed).expect("policy");
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let start = Instant::now();
    while fetch(port, &ca, "mta-sts.example.com") != changed {
        assert!(start.elapsed() < Duration::from_secs(10), "not reloaded");
        std::thread::sleep(Duration::from_millis(50));
    }
    let after = records(&p);
    assert_ne!(id_of(&after, "example.com"), id_of(&before, "example.com"));
    assert_eq!(id_of(&after, "example.org"), id_of(&before, "example.org"));

    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let status = child.wait().expect("wait");
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
