//! The sending side end to end, on loopback: libtlsrpt datagrams → `mtasts tlsrpt collect` →
//! `mtasts tlsrpt send` → the receiving domain's `rua`: our own `mtasts tlsrpt receive` over
//! HTTPS (a lab certificate) and mail through the lab's SMTP server as submission server, the
//! stored message then read by `mtasts tlsrpt ingest`, whose DKIM check finds the key in the
//! lab DNS. What arrives at both ends must count what went in.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

mod common;

use std::io::Write as _;
use std::net::Ipv4Addr;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::ReportDir as Dir;
use common::{spawn_ready as start, terminate as stop};
use mtasts_testkit::World;
use mtasts_testkit::smtp::SmtpHost;

const SUBMISSION: &str = "smtp.sender.example";

fn datagram(record: &str, failure: Option<u32>) -> String {
    let (details, f) = match failure {
        Some(code) => (
            format!(r#"[{{"c":{code},"s":"192.0.2.1","n":"mx.receiver.test","r":"127.0.0.9"}}]"#),
            1,
        ),
        None => ("[]".to_string(), 0),
    };
    format!(
        r#"{{"dpv":"1","d":"receiver.test","pr":"{record}","policies":[{{"policy-type":2,"policy-domain":"receiver.test","policy-string":["version: STSv1","mode: enforce","mx: mx.receiver.test","max_age: 86400"],"mx-host":["mx.receiver.test"],"failure-details":{details},"t":1,"f":{f}}}]}}"#
    )
}

/// Our `mtasts tlsrpt receive` as the receiving domain's HTTPS rua, with a certificate for
/// rua.receiver.test from `ca`: the child, its store and its port.
fn receiver(dir: &Dir, ca: &mtasts_testkit::TestCa) -> (Child, String, String) {
    let pem = dir.0.join("rua.pem");
    std::fs::write(&pem, ca.issue_pem(&["rua.receiver.test"]).expect("cert")).expect("pem");
    let db = format!("sqlite:{}", dir.0.join("received.db").display());
    let (child, addr) = start(
        Command::new(env!("CARGO_BIN_EXE_mtasts"))
            .args(["tlsrpt", "receive", "--db", &db, "--listen", "127.0.0.1:0"])
            .arg("--cert")
            .arg(&pem)
            .arg("--key")
            .arg(&pem),
        "mtasts tlsrpt receive ready on https://",
    );
    let port = addr
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .expect("port")
        .to_string();
    (child, db, port)
}

fn mtasts(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mtasts"))
        .args(args)
        .output()
        .expect("run mtasts")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn summary(db: &str) -> serde_json::Value {
    let o = mtasts(&["tlsrpt", "summary", "--db", db, "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    serde_json::from_slice(&o.stdout).expect("summary JSON")
}

/// The lab: DNS with the DKIM key of sender.example and the rua host, the lab's SMTP server
/// as submission server.
async fn lab() -> World {
    let public = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/dkim-test-rsa.p.txt"
    ))
    .expect("fixture public key");
    World::builder()
        .txt(
            "rsa._domainkey.sender.example",
            &format!("v=DKIM1; k=rsa; s=tlsrpt; p={}", public.trim()),
        )
        .a("rua.receiver.test", Ipv4Addr::LOCALHOST)
        .smtp(SUBMISSION, SmtpHost::valid())
        .build()
        .await
        .expect("world")
}

fn write_config(dir: &Dir, world: &World, mail: bool) -> String {
    write_config_with(dir, world, mail, false)
}

fn write_config_with(dir: &Dir, world: &World, mail: bool, unvalidated_retry: bool) -> String {
    let smtp = world.smtp_addr(SUBMISSION).expect("submission server");
    let ca = world.ca_file().display().to_string();
    let key = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/dkim-test-rsa.key.pem"
    );
    let mut config = format!(
        "organization = \"Sender Example\"\ncontact = \"tlsrpt@sender.example\"\n\n\
         [https]\nca_file = \"{ca}\"\ntimeout = \"10s\"\nretry_without_validation = {unvalidated_retry}\n"
    );
    if mail {
        config.push_str(&format!(
            "\n[mail]\nserver = \"{smtp}\"\nserver_name = \"{SUBMISSION}\"\nca_file = \"{ca}\"\ntimeout = \"10s\"\n\n\
             [dkim]\nselector = \"rsa\"\nkey_file = \"{key}\"\n"
        ));
    }
    let path = dir.0.join("send.toml");
    std::fs::write(&path, config).expect("config");
    path.display().to_string()
}

/// Collects `datagrams` through the CLI collector; returns the day they were counted under.
fn collect(db: &str, socket: &std::path::Path, datagrams: &[String]) -> String {
    let (collector, _) = start(
        Command::new(env!("CARGO_BIN_EXE_mtasts"))
            .args(["tlsrpt", "collect", "--db", db, "--socket"])
            .arg(socket),
        "mtasts tlsrpt collect ready on ",
    );
    let client = std::os::unix::net::UnixDatagram::unbound().expect("client");
    for d in datagrams {
        client.send_to(d.as_bytes(), socket).expect("send");
    }
    let day = mtasts_tlsrpt::collect::utc_day(mtasts_tlsrpt::unix_now());
    let spec: mtasts_tlsrpt::DbSpec = db.parse().expect("spec");
    let start = Instant::now();
    loop {
        let sessions: u64 = mtasts_tlsrpt::ReportDb::open(&spec)
            .and_then(|mut s| s.session_day(&day))
            .expect("store")
            .values()
            .flat_map(|d| d.policy_results())
            .map(|p| p.successful + p.failed)
            .sum();
        if sessions == datagrams.len() as u64 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "collector counted {sessions}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    stop(collector);
    day
}

/// Seconds since the epoch at `hours` past the end of `day`.
fn after(day: &str, hours: u64) -> String {
    (mtasts_core::session::day_start(day).expect("day") + 86_400 + hours * 3600).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_days_sessions_reach_the_receivers_https_and_mail_rua_with_the_same_counts() {
    let world = lab().await;
    let dir = Dir::new("send-e2e");
    // The receiving domain's HTTPS rua: our receiver, with a lab certificate.
    let (receiver, recv_db, port) = receiver(&dir, world.ca());
    let record = format!(
        "v=TLSRPTv1; rua=https://rua.receiver.test:{port}/tlsrpt,mailto:tlsrpt@receiver.test"
    );

    // 7 successful sessions, 2 certificate-host-mismatch (202), 1 starttls-not-supported (201).
    let send_db = dir.db();
    let mut datagrams = vec![datagram(&record, None); 7];
    datagrams.extend([datagram(&record, Some(202)), datagram(&record, Some(202))]);
    datagrams.push(datagram(&record, Some(201)));
    let day = collect(&send_db, &dir.0.join("tlsrpt.sock"), &datagrams);

    let config = write_config(&dir, &world, true);
    let nameserver = world.dns_addr().to_string();
    let send = |now: &str| {
        mtasts(&[
            "tlsrpt",
            "send",
            "--db",
            &send_db,
            "--config",
            &config,
            "--nameserver",
            &nameserver,
            "--now",
            now,
        ])
    };
    // Before the day ended: nothing is built.
    let o = send(&after(&day, 0));
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains(&format!("waiting {day} receiver.test until")),
        "{out}"
    );
    // 4 h 1 s after the day: past any per-domain delay.
    let late = (after(&day, 4).parse::<u64>().expect("n") + 1).to_string();
    let o = send(&late);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains(&format!("built {day} receiver.test {day}.receiver.test.")),
        "{out}"
    );
    assert!(
        out.contains("@sender.example -> https://rua.receiver.test:"),
        "{out}"
    );
    assert!(out.contains("(HTTP 201)"), "{out}");
    assert!(
        out.contains(&format!(
            "submitted to {}",
            world.smtp_addr(SUBMISSION).expect("smtp")
        )),
        "{out}"
    );

    // HTTPS: the receiver stored it, with the counts that went in.
    let v = summary(&recv_db);
    let d = &v["domains"][0];
    assert_eq!(d["policy_domain"], "receiver.test", "{v}");
    assert_eq!(
        (d["successful"].as_u64(), d["failed"].as_u64()),
        (Some(7), Some(3)),
        "{v}"
    );
    stop(receiver);

    // Mail: one message, TLS on the submission connection, signed; our ingest takes it.
    let deliveries = world.deliveries(SUBMISSION);
    assert_eq!(deliveries.len(), 1);
    let mail = &deliveries[0];
    assert_eq!(mail.to, ["tlsrpt@receiver.test"]);
    assert!(mail.tls.is_some(), "submission without TLS");
    let message = String::from_utf8_lossy(&mail.data).to_string();
    for header in [
        "TLS-Report-Domain: receiver.test",
        "TLS-Report-Submitter: sender.example",
        "TLS-Required: No",
        "report-type=\"tlsrpt\"",
        "application/tlsrpt+gzip",
        &format!(
            "Report Domain: receiver.test Submitter: sender.example Report-ID: <{day}.receiver.test."
        ),
    ] {
        assert!(message.contains(header), "{header} missing:\n{message}");
    }
    assert!(message.starts_with("DKIM-Signature:"), "{message}");
    assert!(!message.contains(" l="), "no body length tag (MAIL-04)");
    let mail_db = format!("sqlite:{}", dir.0.join("mail.db").display());
    let mut ingest = Command::new(env!("CARGO_BIN_EXE_mtasts"))
        .args([
            "tlsrpt",
            "ingest",
            "--db",
            &mail_db,
            "--nameserver",
            &nameserver,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ingest");
    ingest
        .stdin
        .take()
        .expect("stdin")
        .write_all(&mail.data)
        .expect("message");
    let o = ingest.wait_with_output().expect("ingest");
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("(DKIM d=sender.example)"), "{out}");
    let v = summary(&mail_db);
    let d = &v["domains"][0];
    assert_eq!(
        (d["successful"].as_u64(), d["failed"].as_u64()),
        (Some(7), Some(3)),
        "{v}"
    );

    // A later run sends nothing again.
    let o = send(&(late.parse::<u64>().expect("n") + 3600).to_string());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("nothing to send"), "{}", text(&o));
    assert_eq!(world.deliveries(SUBMISSION).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_rua_is_retried_with_back_off_then_given_up_after_a_day() {
    let world = lab().await;
    let dir = Dir::new("send-retry");
    // Nothing listens on this port.
    let port = common::free_port();
    let record = format!("v=TLSRPTv1; rua=https://rua.receiver.test:{port}/");
    let send_db = dir.db();
    let day = collect(
        &send_db,
        &dir.0.join("tlsrpt.sock"),
        &[datagram(&record, None)],
    );
    // No [mail]: an https-only sender is a valid setup.
    let config = write_config(&dir, &world, false);
    let nameserver = world.dns_addr().to_string();
    let send = |now: u64, extra: &[&str]| {
        let now = now.to_string();
        let mut args = vec![
            "tlsrpt",
            "send",
            "--db",
            &send_db,
            "--config",
            &config,
            "--nameserver",
            &nameserver,
            "--now",
            &now,
        ];
        args.extend_from_slice(extra);
        mtasts(&args)
    };
    let t0: u64 = after(&day, 5).parse().expect("n");

    // --dry-run shows the report and stores nothing.
    let o = send(t0, &["--dry-run"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains("\"organization-name\": \"Sender Example\""),
        "{out}"
    );
    assert!(
        out.contains("\"total-successful-session-count\": 1"),
        "{out}"
    );
    assert!(out.contains("# sender.example!receiver.test!"), "{out}");

    let o = send(t0, &[]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("failed") && out.contains("(attempt 1, retry at"),
        "{out}"
    );
    // `sent` shows where it stands: pending, the next attempt, why the last one failed.
    let o = mtasts(&["tlsrpt", "sent", "--db", &send_db]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains(&format!(
            "{day} receiver.test https://rua.receiver.test:{port}/ pending "
        )) && out.contains("(attempts 1), next ")
            && out.contains("connecting to"),
        "{out}"
    );
    // Not due yet: no attempt.
    let o = send(t0 + 60, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("nothing to send"), "{}", text(&o));
    // Due: attempt 2, 5 min later.
    let o = send(t0 + 300, &[]);
    assert!(text(&o).contains("(attempt 2, retry at"), "{}", text(&o));
    // A day after the first attempt: given up.
    let o = send(t0 + 86_400, &[]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("gave up") && out.contains("after 3 attempts"),
        "{out}"
    );
    let o = send(t0 + 2 * 86_400, &[]);
    assert!(text(&o).contains("nothing to send"), "{}", text(&o));
    let o = mtasts(&["tlsrpt", "sent", "--db", &send_db, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("sent JSON");
    assert_eq!(v[0]["state"], "gave-up", "{v}");
    assert_eq!(v[0]["attempts"], 3, "{v}");
}

/// RPT-01/RPT-02: the daemon's own failed fetches reach the collector as session results of
/// their RFC 8460 types, and become the domain's report (its rua looked up at send time).
#[test]
fn the_daemons_failed_fetches_become_sessions_of_their_result_types() {
    let lab = common::EphemeralLab::start("tlsrpt-events");
    let dir = Dir::new("send-events");
    let db = dir.db();
    let socket = dir.0.join("tlsrpt.sock");
    let (collector, _) = start(
        Command::new(env!("CARGO_BIN_EXE_mtasts"))
            .args(["tlsrpt", "collect", "--db", &db, "--socket"])
            .arg(&socket),
        "mtasts tlsrpt collect ready on ",
    );
    let config = dir.0.join("daemon.toml");
    std::fs::write(
        &config,
        format!(
            "listen = [\"127.0.0.1:0\"]\ncache = \"memory\"\nnameserver = \"{}\"\nca_file = \"{}\"\ntlsrpt_socket = \"{}\"\n",
            lab.dns,
            lab.ca().display(),
            socket.display()
        ),
    )
    .expect("config");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtasts"));
    cmd.args(["daemon", "--config"])
        .arg(&config)
        .arg("--port-map")
        .arg(lab.ports());
    let mut daemon = common::Daemon::spawn(cmd);
    for domain in [
        "status-404.test",
        "policy-invalid.test",
        "policy-expired.test",
        "enforce.test",
    ] {
        let _ = common::ask(daemon.port, &format!("postfix {domain}"));
    }
    let day = mtasts_tlsrpt::collect::utc_day(mtasts_tlsrpt::unix_now());
    let spec: mtasts_tlsrpt::DbSpec = db.parse().expect("spec");
    let start_wait = Instant::now();
    let types = loop {
        let got = mtasts_tlsrpt::ReportDb::open(&spec)
            .and_then(|mut s| s.session_day(&day))
            .expect("store");
        let types: Vec<(String, String)> = got
            .iter()
            .flat_map(|((domain, _), d)| {
                d.policy_results().into_iter().flat_map(move |p| {
                    let domain = domain.clone();
                    p.failures
                        .into_iter()
                        .map(move |f| (domain.clone(), f.result_type))
                })
            })
            .collect();
        if types.len() >= 3 || start_wait.elapsed() > Duration::from_secs(10) {
            break types;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (_, log) = daemon.stop("-TERM");
    stop(collector);
    assert_eq!(
        types,
        [
            (
                "policy-expired.test".to_string(),
                "sts-webpki-invalid".to_string()
            ),
            (
                "policy-invalid.test".to_string(),
                "sts-policy-invalid".to_string()
            ),
            (
                "status-404.test".to_string(),
                "sts-policy-fetch-error".to_string()
            ),
        ],
        "{log}"
    );
    // The report of one: its rua is looked up now (the lab publishes none: kept, not sent).
    let send_config = dir.0.join("send.toml");
    std::fs::write(
        &send_config,
        "organization = \"Sender Example\"\ncontact = \"tlsrpt@sender.example\"\n",
    )
    .expect("config");
    let o = mtasts(&[
        "tlsrpt",
        "send",
        "--db",
        &db,
        "--config",
        &send_config.display().to_string(),
        "--nameserver",
        &lab.dns,
        "--day",
        &day,
        "--dry-run",
        "--now",
        &after(&day, 1),
    ]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains("status-404.test")
            && out.contains("\"result-type\": \"sts-policy-fetch-error\""),
        "{out}"
    );
    assert!(
        out.contains("nowhere: no TXT record at _smtp._tls.status-404.test"),
        "{out}"
    );
}

/// HTTP-03: a rua whose certificate does not validate is posted to once more without
/// validation (said in the outcome), unless `retry_without_validation = false`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_rua_certificate_is_posted_to_once_more_without_validation() {
    let world = lab().await;
    for retry in [false, true] {
        let dir = Dir::new(if retry {
            "send-http03-on"
        } else {
            "send-http03-off"
        });
        // A CA the sender does not trust.
        let stranger = mtasts_testkit::TestCa::new().expect("ca");
        let (receiver, _, port) = receiver(&dir, &stranger);
        let record = format!("v=TLSRPTv1; rua=https://rua.receiver.test:{port}/");
        let send_db = dir.db();
        let day = collect(
            &send_db,
            &dir.0.join("tlsrpt.sock"),
            &[datagram(&record, None)],
        );
        let config = write_config_with(&dir, &world, false, retry);
        let o = mtasts(&[
            "tlsrpt",
            "send",
            "--db",
            &send_db,
            "--config",
            &config,
            "--nameserver",
            &world.dns_addr().to_string(),
            "--now",
            &after(&day, 5),
        ]);
        let out = text(&o);
        stop(receiver);
        if retry {
            assert_eq!(o.status.code(), Some(0), "{out}");
            assert!(
                out.contains("(HTTP 201 (certificate not valid, sent anyway: HTTP-03))"),
                "{out}"
            );
        } else {
            assert_eq!(o.status.code(), Some(1), "{out}");
            assert!(out.contains("(attempt 1, retry at"), "{out}");
        }
    }
}
