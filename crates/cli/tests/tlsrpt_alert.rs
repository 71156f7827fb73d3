//! `mtasts tlsrpt alert`: a domain over the threshold fires once (command and webhook), stays
//! quiet while it stays over, is tried again when sending failed, and resolves once below.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use common::ReportDir as Dir;

fn today() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .expect("date");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn ingest(dir: &Dir, name: &str, domain: &str, ok: u64, failed: u64) {
    let day = today();
    let json = format!(
        r#"{{"organization-name":"Example Inc.","report-id":"{name}","date-range":{{"start-datetime":"{day}T00:00:00Z","end-datetime":"{day}T23:59:59Z"}},
"policies":[{{"policy":{{"policy-type":"sts","policy-domain":"{domain}"}},"summary":{{"total-successful-session-count":{ok},"total-failure-session-count":{failed}}},
"failure-details":[{{"result-type":"certificate-expired","failed-session-count":{failed}}}]}}]}}"#
    );
    let p = dir.0.join(format!("{name}.json"));
    std::fs::write(&p, json).expect("write");
    let o = Command::new(env!("CARGO_BIN_EXE_mtasts"))
        .args([
            "tlsrpt",
            "ingest",
            "--db",
            &dir.db(),
            &p.display().to_string(),
        ])
        .output()
        .expect("ingest");
    assert_eq!(o.status.code(), Some(0));
}

fn alert(dir: &Dir, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mtasts"))
        .args(["tlsrpt", "alert", "--db", &dir.db(), "--window", "2d"])
        .args(["--threshold", "5%", "--min-sessions", "50"])
        .args(extra)
        .output()
        .expect("alert")
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A webhook on loopback answering `status`, keeping the bodies it was sent.
struct Hook {
    url: String,
    bodies: Arc<Mutex<Vec<String>>>,
    status: Arc<Mutex<u16>>,
}

fn hook() -> Hook {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let status = Arc::new(Mutex::new(200));
    let (b, st) = (bodies.clone(), status.clone());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Headers, then Content-Length bytes of body.
            let body = loop {
                let n = conn.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break String::new();
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).into_owned();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        break body.to_string();
                    }
                }
            };
            b.lock().expect("lock").push(body);
            let code = *st.lock().expect("lock");
            let _ = write!(
                conn,
                "HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    Hook {
        url,
        bodies,
        status,
    }
}

#[test]
fn fires_once_retries_what_failed_and_resolves() {
    let dir = Dir::new("alert");
    ingest(&dir, "r1", "bad.example", 90, 10);
    ingest(&dir, "r2", "fine.example", 99, 1);
    ingest(&dir, "r3", "tiny.example", 1, 9);
    let cmd = format!(
        "cat > {}/$MTASTS_ALERT_DOMAIN.$MTASTS_ALERT_STATE.json",
        dir.0.display()
    );
    let o = alert(&dir, &["--command", &cmd]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(
        out(&o).contains("FIRING bad.example (sts): 10.0% failed (10 of 100): sent"),
        "{}",
        out(&o)
    );
    let sent: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.0.join("bad.example.firing.json")).expect("the command wrote the alert"),
    )
    .expect("alert JSON");
    assert_eq!(sent["state"], "firing");
    assert_eq!(sent["failed"], 10);
    assert_eq!(sent["failures_by_type"]["certificate-expired"], 10);
    assert!(!dir.0.join("fine.example.firing.json").exists());
    assert!(
        !dir.0.join("tiny.example.firing.json").exists(),
        "under --min-sessions"
    );

    // Still over: nothing sent again.
    let o = alert(&dir, &["--command", &cmd]);
    assert_eq!(out(&o), "");

    // A second domain goes over; the webhook fails first: exit 1, tried again next run.
    ingest(&dir, "r4", "fine.example", 0, 20);
    let h = hook();
    *h.status.lock().expect("lock") = 500;
    let o = alert(&dir, &["--webhook", &h.url]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(out(&o).contains("answered 500"), "{}", out(&o));
    *h.status.lock().expect("lock") = 200;
    let o = alert(&dir, &["--webhook", &h.url]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(out(&o).contains("FIRING fine.example"), "{}", out(&o));
    let bodies = h.bodies.lock().expect("lock").clone();
    assert_eq!(bodies.len(), 2);
    let last: serde_json::Value = serde_json::from_str(&bodies[1]).expect("webhook JSON");
    assert_eq!(last["policy_domain"], "fine.example");
    assert_eq!(last["state"], "firing");

    // Enough good sessions bring bad.example under the threshold: resolved, once.
    ingest(&dir, "r5", "bad.example", 2000, 0);
    let o = alert(&dir, &["--command", &cmd]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(out(&o).contains("resolved bad.example"), "{}", out(&o));
    assert!(dir.0.join("bad.example.resolved.json").exists());
    let o = alert(&dir, &["--command", &cmd]);
    assert_eq!(out(&o), "");
}

#[test]
fn plain_http_webhooks_go_to_loopback_only_and_a_failing_command_is_reported() {
    let dir = Dir::new("alert-refusals");
    ingest(&dir, "r1", "bad.example", 50, 50);
    let o = alert(&dir, &["--webhook", "http://192.0.2.1/hook"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        out(&o).contains("plain http:// only to a loopback address"),
        "{}",
        out(&o)
    );
    let o = alert(&dir, &["--command", "exit 3"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        out(&o).contains("`exit 3` exited with exit status: 3"),
        "{}",
        out(&o)
    );
    // Neither was sent, so it is still due.
    let o = alert(&dir, &["--command", "true"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(out(&o).contains("FIRING bad.example"), "{}", out(&o));
    // Neither a command nor a webhook: a usage error.
    let o = Command::new(env!("CARGO_BIN_EXE_mtasts"))
        .args(["tlsrpt", "alert", "--db", &dir.db()])
        .output()
        .expect("alert");
    assert_eq!(o.status.code(), Some(2));
}
