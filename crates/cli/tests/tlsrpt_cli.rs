//! `mtasts tlsrpt ingest --db sqlite:PATH FILE…` and `mtasts tlsrpt summary --db sqlite:PATH
//! --json`, exactly as written: every real report in `../shared/realworld/corpus/tlsrpt-report/`
//! ingested, the summary checked against counts this test computes from the JSON itself;
//! duplicates stored once; gzip, a gzip bomb and junk.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::ReportDir as Dir;

fn mtasts(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mtasts"))
        .args(args)
        .output()
        .expect("run mtasts")
}

fn ingest(db: &str, files: &[PathBuf]) -> Output {
    let mut args = vec!["tlsrpt", "ingest", "--db", db];
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    args.extend(names.iter().map(String::as_str));
    mtasts(&args)
}

fn summary(db: &str) -> serde_json::Value {
    let o = mtasts(&["tlsrpt", "summary", "--db", db, "--json"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("summary JSON")
}

/// (policy domain, type) → (successful, failed, reports, failures by type), from the files'
/// JSON directly, each (organisation, report-id) once.
type Expected = BTreeMap<(Option<String>, String), (u64, u64, u64, BTreeMap<String, u64>)>;

fn expected(files: &[PathBuf]) -> Expected {
    let mut out = Expected::new();
    let mut seen = BTreeSet::new();
    for f in files {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(f).expect("read")).expect("json");
        let id = (
            v["organization-name"].as_str().unwrap_or("").to_string(),
            v["report-id"].as_str().expect("id").to_string(),
        );
        if !seen.insert(id) {
            continue;
        }
        let mut keys_here = BTreeSet::new();
        for p in v["policies"].as_array().expect("policies") {
            let key = (
                p["policy"]["policy-domain"]
                    .as_str()
                    .map(|d| d.trim_end_matches('.').to_ascii_lowercase()),
                p["policy"]["policy-type"]
                    .as_str()
                    .unwrap_or("unknown")
                    .to_string(),
            );
            let e = out.entry(key.clone()).or_default();
            e.0 += p["summary"]["total-successful-session-count"]
                .as_u64()
                .unwrap_or(0);
            e.1 += p["summary"]["total-failure-session-count"]
                .as_u64()
                .unwrap_or(0);
            for d in p["failure-details"].as_array().cloned().unwrap_or_default() {
                *e.3.entry(d["result-type"].as_str().unwrap_or("unknown").to_string())
                    .or_default() += d["failed-session-count"].as_u64().unwrap_or(0);
            }
            if keys_here.insert(key) {
                e.2 += 1;
            }
        }
    }
    out
}

fn actual(v: &serde_json::Value) -> Expected {
    let mut out = Expected::new();
    for d in v["domains"].as_array().expect("domains") {
        let by_type = d["failures_by_type"]
            .as_object()
            .expect("failures_by_type")
            .iter()
            .map(|(k, n)| (k.clone(), n.as_u64().expect("count")))
            .collect();
        out.insert(
            (
                d["policy_domain"].as_str().map(str::to_string),
                d["policy_type"].as_str().expect("type").to_string(),
            ),
            (
                d["successful"].as_u64().expect("successful"),
                d["failed"].as_u64().expect("failed"),
                d["reports"].as_u64().expect("reports"),
                by_type,
            ),
        );
    }
    out
}

fn corpus() -> Vec<PathBuf> {
    let Some(root) = option_env!("MTASTS_REALWORLD_DIR") else {
        panic!("MTASTS_REALWORLD_DIR is set by build.rs when the corpus is there");
    };
    let dir = Path::new(root).join("tlsrpt-report");
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

#[cfg_attr(
    not(mtasts_have_realworld),
    ignore = "../shared/realworld/corpus is not beside the checkout (or set MTASTS_REALWORLD)"
)]
#[test]
fn every_real_report_is_ingested_and_summarised_as_its_json_says() {
    let dir = Dir::new("corpus");
    let db = dir.db();
    let files = corpus();
    let o = ingest(&db, &files);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{text}");
    let want = expected(&files);
    assert_eq!(actual(&summary(&db)), want);
    // Every file again: nothing new stored, the same summary.
    let o = ingest(&db, &files);
    let again = String::from_utf8_lossy(&o.stdout);
    assert!(
        again.contains(&format!(
            "0 stored, {} duplicate(s), 0 refused",
            files.len()
        )),
        "{again}"
    );
    assert_eq!(actual(&summary(&db)), want);
}

const REPORT: &str = r#"{"organization-name":"Example Inc.","contact-info":"tlsrpt@example.net",
"report-id":"r-1","date-range":{"start-datetime":"2026-11-30T00:00:00Z","end-datetime":"2026-12-01T00:00:00Z"},
"policies":[{"policy":{"policy-type":"sts","policy-domain":"example.com","mx-host":"*.mx.example.com",
"policy-string":["version: STSv1","mode: enforce","mx: *.mx.example.com","max_age: 604800"]},
"summary":{"total-successful-session-count":90,"total-failure-session-count":10},
"failure-details":[{"result-type":"certificate-expired","sending-mta-ip":"192.0.2.1",
"receiving-mx-hostname":"a.mx.example.com","failed-session-count":10}]}]}"#;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

#[test]
fn gzip_duplicates_bombs_and_junk() {
    let dir = Dir::new("quirks");
    let db = dir.db();
    let write = |name: &str, data: &[u8]| {
        let p = dir.0.join(name);
        std::fs::write(&p, data).expect("write");
        p
    };
    let plain = write("example.net!example.com!1.json", REPORT.as_bytes());
    let gz = write("same-report.json.gz", &gzip(REPORT.as_bytes()));
    let other = write(
        "other.json.gz",
        &gzip(REPORT.replace("\"r-1\"", "\"r-2\"").as_bytes()),
    );
    let bomb = write("bomb.json.gz", &gzip(&vec![b' '; 21 * 1024 * 1024]));
    let junk = write("junk.json", b"<html>not a report</html>");
    let o = ingest(&db, &[plain, gz, other, bomb, junk]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "some refused: {text}");
    assert!(
        text.contains("same-report.json.gz: duplicate of report r-1 from Example Inc."),
        "{text}"
    );
    assert!(
        text.contains("bomb.json.gz: refused: decompresses to more than 20971520 bytes"),
        "{text}"
    );
    assert!(
        text.contains("junk.json: refused: unusable report: not JSON"),
        "{text}"
    );
    assert!(
        text.contains("2 stored, 1 duplicate(s), 2 refused"),
        "{text}"
    );
    let v = summary(&db);
    let d = &v["domains"][0];
    assert_eq!(d["policy_domain"], "example.com");
    assert_eq!(
        (d["successful"].as_u64(), d["failed"].as_u64()),
        (Some(180), Some(20))
    );
    assert_eq!(d["failures_by_type"]["certificate-expired"], 20);
    assert_eq!(d["failures_by_mx"]["a.mx.example.com"], 20);
    assert_eq!(d["reports"], 2);
    let o = mtasts(&["tlsrpt", "summary", "--db", &db]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("example.com (sts): 180 successful, 20 failed (10.0%), 2 report(s) from Example Inc. (2)"),
        "{text}"
    );
    assert!(text.contains("  certificate-expired: 20"), "{text}");
    assert!(text.contains("  mx a.mx.example.com: 20 failed"), "{text}");
    // --domain and --since select.
    let o = mtasts(&[
        "tlsrpt",
        "summary",
        "--db",
        &db,
        "--json",
        "--domain",
        "other.example",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["domains"].as_array().map(Vec::len), Some(0));
    let o = mtasts(&["tlsrpt", "summary", "--db", &db, "--json", "--since", "1s"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(
        v["domains"].as_array().map(Vec::len),
        Some(0),
        "reports of 2026-11-30 are older than 1 s"
    );
    // A bad --db is a usage error naming the form.
    let o = mtasts(&["tlsrpt", "summary", "--db", "mysql://x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("sqlite:PATH"));
}

/// `mtasts tlsrpt receive`: a report POSTed to the running command is stored (201), shows in
/// the summary, and SIGTERM stops it cleanly.
#[test]
fn receive_stores_a_posted_report_and_stops_on_sigterm() {
    use std::io::{BufRead, BufReader, Read};
    let dir = Dir::new("receive");
    let db = dir.db();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mtasts"))
        .args(["tlsrpt", "receive", "--db", &db, "--listen", "127.0.0.1:0"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut addr = None;
    for _ in 0..5 {
        let mut line = String::new();
        if stderr.read_line(&mut line).expect("read") == 0 {
            break;
        }
        if let Some(rest) = line
            .trim()
            .strip_prefix("mtasts tlsrpt receive ready on http://")
        {
            addr = Some(rest.trim_end_matches('/').to_string());
            break;
        }
    }
    let addr = addr.expect("ready line with the address");
    let body = gzip(REPORT.as_bytes());
    let mut s = std::net::TcpStream::connect(&addr).expect("connect");
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/tlsrpt+gzip\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .expect("head");
    s.write_all(&body).expect("body");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("answer");
    assert!(answer.starts_with("HTTP/1.1 201 "), "{answer}");
    let pid = i32::try_from(child.id()).expect("pid");
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
    let v = summary(&db);
    assert_eq!(v["domains"][0]["policy_domain"], "example.com");
    assert_eq!(v["domains"][0]["reports"], 1);
}

fn base64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .encode(data)
        .as_bytes()
        .chunks(76)
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// A report message as RFC 8460 §5.3 describes it (MAIL-01, MAIL-02), with the report part's
/// media type and name as given.
fn report_mail(report: &str, media: &str, filename: &str, report_domain: &str) -> String {
    format!(
        "From: tlsrpt@example.net\r\nTo: tlsrpt@example.com\r\nSubject: Report Domain: example.com Submitter: example.net Report-ID: <r-1@example.net>\r\n\
TLS-Report-Domain: {report_domain}\r\nTLS-Report-Submitter: example.net\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=\"tlsrpt\"; boundary=\"b1\"\r\n\r\n\
--b1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nThis is an aggregate TLS report from example.net\r\n\
--b1\r\nContent-Type: {media}\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"{filename}\"\r\n\r\n{}\r\n--b1--\r\n",
        base64(&gzip(report.as_bytes()))
    )
}

#[test]
fn archived_report_messages_are_ingested() {
    let dir = Dir::new("eml");
    let db = dir.db();
    let write = |name: &str, data: &str| {
        let p = dir.0.join(name);
        std::fs::write(&p, data).expect("write");
        p
    };
    let rfc = write(
        "rfc.eml",
        &report_mail(
            REPORT,
            "application/tlsrpt+gzip",
            "example.net!example.com!1!2.json.gz",
            "example.com",
        ),
    );
    let octet = write(
        "octet.eml",
        &report_mail(
            &REPORT.replace("\"r-1\"", "\"r-2\""),
            "application/octet-stream",
            "example.net!example.com!1!2!x.json.gz",
            "elsewhere.example",
        ),
    );
    let none = write(
        "plain.eml",
        "From: a@example.net\r\nSubject: hello\r\n\r\nno report here\r\n",
    );
    let o = ingest(&db, &[rfc, octet, none]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(
        text.contains("rfc.eml: stored report r-1 from Example Inc."),
        "{text}"
    );
    assert!(
        text.contains("octet.eml: stored report r-2 from Example Inc."),
        "{text}"
    );
    assert!(
        text.contains("note: TLS-Report-Domain elsewhere.example names no policy domain of the report; the report wins (META-01)"),
        "{text}"
    );
    assert!(
        text.contains("plain.eml: refused: no report part"),
        "{text}"
    );
    assert_eq!(summary(&db)["domains"][0]["reports"], 2);
}

/// The same files into a real PostgreSQL (started here) and into SQLite: the same summary,
/// and the counts the files themselves give.
#[cfg_attr(
    not(mtasts_run_postgres),
    ignore = "needs PostgreSQL's server programs (MTASTS_TEST_SKIP opted out)"
)]
#[test]
fn postgres_store_gives_the_summary_sqlite_gives() {
    let server = mtasts_testkit::PostgresServer::start().expect("PostgreSQL");
    let dir = Dir::new("postgres");
    let mut files = Vec::new();
    for (i, domain) in ["example.com", "example.org", "example.com"]
        .iter()
        .enumerate()
    {
        let p = dir.0.join(format!("r{i}.json"));
        let report = REPORT.replace("\"r-1\"", &format!("\"r-{i}\"")).replace(
            "\"policy-domain\":\"example.com\"",
            &format!("\"policy-domain\":\"{domain}\""),
        );
        std::fs::write(&p, report).expect("write");
        files.push(p);
    }
    #[cfg(mtasts_have_realworld)]
    files.extend(corpus());
    let pg = server.url();
    let sqlite = dir.db();
    for db in [&pg, &sqlite] {
        let o = ingest(db, &files);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
    let o = ingest(&pg, &files[..1]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("0 stored, 1 duplicate(s), 0 refused"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert_eq!(summary(&pg), summary(&sqlite));
    assert_eq!(actual(&summary(&pg)), expected(&files));
    // A server that is not there: the store cannot be opened, exit 2, and the URL's password
    // is not printed.
    let down = format!(
        "postgres://mtasts:hunter2@127.0.0.1:{}/postgres",
        server.port()
    );
    drop(server);
    let o = mtasts(&["tlsrpt", "summary", "--db", &down]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("report store postgres://127.0.0.1/postgres"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn collect_counts_datagrams_from_the_socket_and_stops_on_sigterm() {
    use std::io::{BufRead, BufReader, Read};
    use std::os::unix::fs::PermissionsExt as _;
    let dir = Dir::new("collect");
    let db = dir.db();
    let socket = dir.0.join("tlsrpt.sock");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mtasts"))
        .args(["tlsrpt", "collect", "--db", &db, "--socket"])
        .arg(&socket)
        .args(["--socket-mode", "0666"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    stderr.read_line(&mut line).expect("read");
    assert!(
        line.starts_with("mtasts tlsrpt collect ready on "),
        "{line}"
    );
    let mode = std::fs::metadata(&socket)
        .expect("socket")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o666);
    let datagram = r#"{"dpv": "1","d": "example.com","pr": "v=TLSRPTv1; rua=mailto:r@example.com","policies":[{"policy-type":2,"policy-domain": "example.com","policy-string":["version: STSv1","mode: enforce","mx: mx.example.com","max_age: 86400"],"mx-host":["mx.example.com"],"failure-details":[{"c":201,"s": "192.0.2.1","n": "mx.example.com"}],"t":1,"f":1}]}"#;
    let client = std::os::unix::net::UnixDatagram::unbound().expect("client");
    for d in [datagram, datagram, "{}", datagram] {
        client.send_to(d.as_bytes(), &socket).expect("send");
    }
    // Counted once the store has them: poll the store itself.
    let spec: mtasts_tlsrpt::DbSpec = db.parse().expect("spec");
    let day = mtasts_tlsrpt::collect::utc_day(mtasts_tlsrpt::unix_now());
    let start = std::time::Instant::now();
    let failed = loop {
        let got = mtasts_tlsrpt::ReportDb::open(&spec)
            .and_then(|mut s| s.session_day(&day))
            .expect("store");
        let failed: u64 = got
            .values()
            .flat_map(|d| d.policy_results())
            .map(|p| p.failed)
            .sum();
        if failed == 3 || start.elapsed() > std::time::Duration::from_secs(10) {
            break failed;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(failed, 3);
    let pid = i32::try_from(child.id()).expect("pid");
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    assert_eq!(child.wait().expect("wait").code(), Some(0));
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).expect("stderr");
    assert!(
        rest.contains("3 session(s) counted, 1 refused (bad datagrams or lines), 0 lost"),
        "{rest}"
    );
    assert!(!socket.exists(), "the socket is removed on exit");
}

/// The line protocol for MTAs without libtlsrpt: each line answered once stored (`ok`) or
/// refused with the field and the rule; an over-long line is refused and the connection
/// closed; `mtasts tlsrpt submit` says which failed in its exit status.
#[test]
fn submitted_lines_are_answered_once_stored_or_refused_with_the_rule() {
    use std::io::{BufRead, BufReader, Read, Write};
    let dir = Dir::new("submit");
    let db = dir.db();
    let socket = dir.0.join("tlsrpt.sock");
    let submit = dir.0.join("submit.sock");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mtasts"))
        .args(["tlsrpt", "collect", "--db", &db, "--socket"])
        .arg(&socket)
        .arg("--submit-socket")
        .arg(&submit)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    stderr.read_line(&mut line).expect("read");
    assert!(line.contains("(submissions on "), "{line}");

    let lines = concat!(
        r#"{"domain":"example.com","policy-type":"sts","result":"starttls-not-supported","receiving-mx-hostname":"mx.example.com"}"#,
        "\n",
        r#"{"domain":"example.com","policy-type":"sts","result":"tls-went-wrong"}"#,
        "\n\n",
        r#"{"domain":"example.com","policy-type":"sts","result":"success"}"#,
        "\n",
    );
    let mut submitter = Command::new(env!("CARGO_BIN_EXE_mtasts"));
    submitter
        .args(["tlsrpt", "submit", "--socket"])
        .arg(&submit);
    let o = common::run_with_stdin(submitter, lines.as_bytes());
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(o.status.code(), Some(1), "{out}");
    let answers: Vec<&str> = out.lines().collect();
    assert_eq!(answers.len(), 3, "{out}");
    assert_eq!(answers[0], "ok");
    assert!(
        answers[1].starts_with("error: `result` = \"tls-went-wrong\""),
        "{out}"
    );
    assert_eq!(answers[2], "ok");
    // Stored before answered: the store has both now.
    let spec: mtasts_tlsrpt::DbSpec = db.parse().expect("spec");
    let day = mtasts_tlsrpt::collect::utc_day(mtasts_tlsrpt::unix_now());
    let got = mtasts_tlsrpt::ReportDb::open(&spec)
        .and_then(|mut s| s.session_day(&day))
        .expect("store");
    let p = &got.values().next().expect("a domain").policy_results()[0];
    assert_eq!((p.successful, p.failed), (1, 1));
    assert_eq!(p.failures[0].result_type, "starttls-not-supported");

    // A line over the bound: refused, and the connection closed.
    let mut raw = std::os::unix::net::UnixStream::connect(&submit).expect("connect");
    let long = vec![b'x'; mtasts_core::submission::MAX_LINE + 10];
    let _ = raw.write_all(&long);
    let mut answer = String::new();
    let _ = raw.read_to_string(&mut answer);
    assert!(answer.starts_with("error: line of "), "{answer}");

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert_eq!(child.wait().expect("wait").code(), Some(0));
    assert!(!submit.exists(), "the submission socket is removed on exit");
}
