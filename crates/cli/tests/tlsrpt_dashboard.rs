//! `mtasts tlsrpt dashboard` in headless Chromium (Debian's): the page rendered for a known
//! dataset shows the numbers the dataset holds, per domain, per day, per failure type and per
//! MX host; the token gate; the metrics; a screenshot kept as a CI artefact
//! (target/ci-artefacts/tlsrpt-dashboard.png).

#![allow(clippy::expect_used)] // a failed expectation is a failed test

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::ReportDir as Dir;

fn day(offset: u64) -> String {
    // Days before today (UTC), so the data stays inside the default 30-day window.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let d = now / 86_400 - offset;
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{}", d * 86_400), "+%Y-%m-%d"])
        .output()
        .expect("date");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn report(
    id: &str,
    org: &str,
    day: &str,
    domain: &str,
    ok: u64,
    failures: &[(&str, &str, u64)],
) -> String {
    let failed: u64 = failures.iter().map(|f| f.2).sum();
    let details: Vec<String> = failures
        .iter()
        .map(|(kind, mx, n)| {
            format!(r#"{{"result-type":"{kind}","receiving-mx-hostname":"{mx}","failed-session-count":{n}}}"#)
        })
        .collect();
    format!(
        r#"{{"organization-name":"{org}","contact-info":"tlsrpt@{org}","report-id":"{id}",
"date-range":{{"start-datetime":"{day}T00:00:00Z","end-datetime":"{day}T23:59:59Z"}},
"policies":[{{"policy":{{"policy-type":"sts","policy-domain":"{domain}"}},
"summary":{{"total-successful-session-count":{ok},"total-failure-session-count":{failed}}},
"failure-details":[{}]}}]}}"#,
        details.join(",")
    )
}

struct Running(Child);
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the dashboard; returns it and its `http://IP:PORT`.
fn start(db: &str, extra: &[&str]) -> (Running, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mtasts"))
        .args(["tlsrpt", "dashboard", "--db", db, "--listen", "127.0.0.1:0"])
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .expect("dashboard");
    let mut stderr = child.stderr.take().expect("stderr");
    let mut seen = String::new();
    let mut buf = [0u8; 256];
    let start = Instant::now();
    while !seen.contains('\n') && start.elapsed() < Duration::from_secs(20) {
        let n = stderr.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let url = seen
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no ready line: {seen}"))
        .trim_end_matches('/')
        .to_string();
    (Running(child), url)
}

/// Chromium, headless, with the flags this closed network needs; killed after 60 s.
fn chromium(args: &[&str], profile: &Path) -> String {
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium");
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish in 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    reader.join().expect("reader")
}

/// The text of the first element after `anchor` that carries `data-field="field"`.
fn field(dom: &str, anchor: &str, field: &str) -> String {
    let at = dom
        .find(anchor)
        .unwrap_or_else(|| panic!("{anchor} not in the page"));
    let rest = &dom[at..];
    let marker = format!("data-field=\"{field}\">");
    let from = rest.find(&marker).expect("field") + marker.len();
    rest[from..].split('<').next().unwrap_or("").to_string()
}

/// The number in the cell after the row marked `anchor` (a failure type or MX row).
fn cell(dom: &str, anchor: &str) -> String {
    let at = dom
        .find(anchor)
        .unwrap_or_else(|| panic!("{anchor} not in the page"));
    let rest = &dom[at..];
    let from = rest.find("class=\"n\">").expect("cell") + "class=\"n\">".len();
    rest[from..].split('<').next().unwrap_or("").to_string()
}

fn http_get(url: &str, path: &str, bearer: Option<&str>) -> String {
    let addr = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    let auth = bearer.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

#[cfg_attr(
    not(mtasts_run_chromium),
    ignore = "needs Debian's chromium (MTASTS_TEST_SKIP opted out)"
)]
#[test]
fn the_page_shows_the_numbers_of_a_known_dataset() {
    let dir = Dir::new("dashboard");
    let db = dir.db();
    let (d1, d2) = (day(2), day(1));
    let files = [
        report(
            "a",
            "google.com",
            &d1,
            "example.com",
            900,
            &[
                ("certificate-expired", "mx1.example.com", 40),
                ("starttls-not-supported", "mx2.example.com", 10),
            ],
        ),
        report(
            "b",
            "microsoft.com",
            &d1,
            "example.com",
            100,
            &[("certificate-expired", "mx1.example.com", 5)],
        ),
        report("c", "google.com", &d2, "example.com", 500, &[]),
        report(
            "d",
            "google.com",
            &d2,
            "example.org",
            70,
            &[("validation-failure", "<b>mx.example.org</b>", 30)],
        ),
    ];
    let paths: Vec<String> = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let p = dir.0.join(format!("r{i}.json"));
            std::fs::write(&p, f).expect("write");
            p.display().to_string()
        })
        .collect();
    let mut args = vec!["tlsrpt", "ingest", "--db", db.as_str()];
    args.extend(paths.iter().map(String::as_str));
    let o = Command::new(env!("CARGO_BIN_EXE_mtasts"))
        .args(&args)
        .output()
        .expect("ingest");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    // One unsigned message, kept aside.
    let mut child = Command::new(env!("CARGO_BIN_EXE_mtasts"))
        .args([
            "tlsrpt",
            "ingest",
            "--db",
            &db,
            "--nameserver",
            "127.0.0.1:9",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("ingest stdin");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"From: x@forger.example\r\nSubject: hi\r\n\r\nnot a report\r\n")
        .expect("write");
    assert_eq!(child.wait().expect("wait").code(), Some(0));

    let (_dash, url) = start(&db, &[]);
    let profile = dir.0.join("chromium");
    let dom = chromium(&["--dump-dom", &format!("{url}/")], &profile);
    let row = "<tr data-domain=\"example.com\" data-type=\"sts\">";
    assert_eq!(field(&dom, row, "successful"), "1500");
    assert_eq!(field(&dom, row, "failed"), "55");
    assert_eq!(field(&dom, row, "rate"), "3.5%");
    assert_eq!(field(&dom, row, "reports"), "3");
    let org = "<tr data-domain=\"example.org\" data-type=\"sts\">";
    assert_eq!(field(&dom, org, "failed"), "30");
    assert!(dom.contains("id=\"reports\" data-value=\"4\""), "{dom}");
    assert!(dom.contains("id=\"ignored\" data-value=\"1\""), "{dom}");
    // The example.com section: per day, per type, per MX.
    let section = &dom[dom
        .find("<section id=\"example.com-sts\"")
        .expect("section")..];
    assert_eq!(
        field(section, &format!("data-day=\"{d1}\""), "successful"),
        "1000"
    );
    assert_eq!(
        field(section, &format!("data-day=\"{d1}\""), "failed"),
        "55"
    );
    assert_eq!(
        field(section, &format!("data-day=\"{d2}\""), "successful"),
        "500"
    );
    assert_eq!(
        cell(section, "data-result-type=\"certificate-expired\""),
        "45"
    );
    assert_eq!(
        cell(section, "data-result-type=\"starttls-not-supported\""),
        "10"
    );
    assert_eq!(cell(section, "data-mx=\"mx1.example.com\""), "45");
    assert!(section.contains("<svg class=\"chart\""));
    // Report content is text, never markup (RCV-02).
    assert!(dom.contains("&lt;b&gt;mx.example.org&lt;/b&gt;"), "{dom}");
    assert!(!dom.contains("<b>mx.example.org"));
    // The raw JSON is one click away.
    let link = section
        .split("href=\"")
        .find(|s| s.starts_with("/report/"))
        .and_then(|s| s.split('"').next())
        .expect("a raw JSON link");
    let raw = http_get(&url, link, None);
    assert!(raw.contains("application/json"), "{raw}");
    assert!(raw.contains("\"report-id\":\"c\""), "{raw}");

    let artefacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("../ci-artefacts");
    std::fs::create_dir_all(&artefacts).expect("artefact dir");
    let shot = artefacts.join("tlsrpt-dashboard.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,2400",
            &format!("{url}/"),
        ],
        &profile,
    );
    let png = std::fs::read(&shot).expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    assert!(
        png.len() > 10_000,
        "a near-empty screenshot ({} bytes)",
        png.len()
    );
}

#[cfg_attr(
    not(mtasts_run_chromium),
    ignore = "needs Debian's chromium (MTASTS_TEST_SKIP opted out)"
)]
#[test]
fn a_token_guards_the_page_and_the_metrics_count_the_store() {
    let dir = Dir::new("dashboard-token");
    let db = dir.db();
    let f = dir.0.join("r.json");
    std::fs::write(
        &f,
        report(
            "t",
            "google.com",
            &day(1),
            "example.net",
            8,
            &[("sts-webpki-invalid", "mx.example.net", 2)],
        ),
    )
    .expect("write");
    let o = Command::new(env!("CARGO_BIN_EXE_mtasts"))
        .args(["tlsrpt", "ingest", "--db", &db, &f.display().to_string()])
        .output()
        .expect("ingest");
    assert_eq!(o.status.code(), Some(0));
    let token_file = dir.0.join("token");
    std::fs::write(&token_file, "s3cret/tok en\n").expect("token");
    // Off loopback without a token: refused before listening.
    let o = Command::new(env!("CARGO_BIN_EXE_mtasts"))
        .args(["tlsrpt", "dashboard", "--db", &db, "--listen", "0.0.0.0:0"])
        .output()
        .expect("dashboard");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("needs --token-file"));

    let tf = token_file.display().to_string();
    let (_dash, url) = start(&db, &["--token-file", &tf]);
    let profile = dir.0.join("chromium");
    let denied = chromium(&["--dump-dom", &format!("{url}/")], &profile);
    assert!(denied.contains("a token is required"), "{denied}");
    let dom = chromium(
        &["--dump-dom", &format!("{url}/?token=s3cret%2Ftok%20en")],
        &profile,
    );
    assert_eq!(
        field(
            &dom,
            "<tr data-domain=\"example.net\" data-type=\"sts\">",
            "failed"
        ),
        "2"
    );
    // Links inside the page carry the token.
    assert!(dom.contains("?token=s3cret%2Ftok%20en"), "{dom}");
    assert!(http_get(&url, "/metrics", None).starts_with("HTTP/1.1 401"));
    let metrics = http_get(&url, "/metrics", Some("s3cret/tok en"));
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(
        metrics.contains("mtasts_tlsrpt_reports_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains(
        "mtasts_tlsrpt_sessions_total{policy_domain=\"example.net\",policy_type=\"sts\",result=\"failed\"} 2"
    ), "{metrics}");
    assert!(http_get(&url, "/report/999", Some("s3cret/tok en")).starts_with("HTTP/1.1 404"));
}
