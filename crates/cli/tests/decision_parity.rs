//! One decision, three front ends: for every lab scenario, the daemon's socketmap answer,
//! `mtasts query --json`'s `postfix` field and `GET /v1/decision/<domain>` agree byte for byte.
//! Runs against `mtasts lab serve --placement ephemeral` (no root needed).

#![allow(clippy::expect_used)] // a failed expectation is a failed test

mod common;

use common::ask;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

/// `GET path` over HTTP/1.0; the body.
fn http_get(port: u16, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .expect("write");
    let mut page = String::new();
    s.read_to_string(&mut page).expect("read");
    let (head, body) = page.split_once("\r\n\r\n").expect("HTTP response");
    (head.to_string(), body.to_string())
}

fn scenarios() -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_mtasts"))
        .args(["lab", "list"])
        .output()
        .expect("lab list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn daemon_query_and_http_give_the_same_postfix_answer_for_every_lab_scenario() {
    let lab = common::EphemeralLab::start("parity");
    let config = lab.dir.join("daemon.toml");
    // Short network timeouts keep the slow scenarios (slow.test, hang.test, txt-timeout.test)
    // bounded; both front ends get the same ones.
    std::fs::write(
        &config,
        "[resolver]\ndns_timeout = 1.0\nfetch_timeout = 3.0\n",
    )
    .expect("config");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtasts"));
    cmd.args(["daemon", "--config"])
        .arg(&config)
        .args(["--cache", "memory", "--nameserver", &lab.dns])
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .arg("--ca-file")
        .arg(lab.ca())
        .arg("--port-map")
        .arg(lab.ports());
    let daemon = common::Daemon::spawn(cmd);
    let (port, http) = (daemon.port, daemon.metrics.expect("metrics listener"));
    let (head, body) = http_get(http, "/healthz");
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    assert_eq!(body, "ok\n");

    let domains = scenarios();
    assert!(domains.len() >= 40, "lab list: {domains:?}");
    // First contact: the daemon may answer at its deadline while the lookup goes on.
    for d in &domains {
        ask(port, &format!("postfix {d}"));
    }
    // `query` waits for its own lookup to finish; run a few at a time.
    let queried: Vec<(String, serde_json::Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = domains
            .chunks(domains.len().div_ceil(6))
            .map(|chunk| {
                let lab = &lab;
                let config = &config;
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|d| {
                            let o = Command::new(env!("CARGO_BIN_EXE_mtasts"))
                                .args(["query", d, "--json", "--config"])
                                .arg(config)
                                .args(["--nameserver", &lab.dns, "--dns-timeout", "1"])
                                .args(["--fetch-timeout", "3"])
                                .arg("--ca-file")
                                .arg(lab.ca())
                                .arg("--port-map")
                                .arg(lab.ports())
                                .output()
                                .expect("query");
                            let v: serde_json::Value = serde_json::from_slice(&o.stdout)
                                .unwrap_or_else(|e| {
                                    panic!(
                                        "{d}: {e}: {}{}",
                                        String::from_utf8_lossy(&o.stdout),
                                        String::from_utf8_lossy(&o.stderr)
                                    )
                                });
                            (d.clone(), v)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("query thread"))
            .collect()
    });
    let mut mismatches = Vec::new();
    for (d, q) in &queried {
        let daemon = ask(port, &format!("postfix {d}"));
        let query = q["postfix"].as_str().unwrap_or("(none)").to_string();
        let (_, body) = http_get(http, &format!("/v1/decision/{d}"));
        let v: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{d}: {e}: {body}"));
        let via_http = v["postfix"].as_str().unwrap_or("(none)").to_string();
        if daemon != query || daemon != via_http {
            mismatches.push(format!(
                "{d}: daemon `{daemon}`, query `{query}`, http `{via_http}`"
            ));
        }
        assert_eq!(q["zone"]["map"], "postfix", "{d}");
        assert_eq!(v["zone"]["decision"], q["zone"]["decision"], "{d}");
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));

    // The DANE scenarios the two used to disagree on, pinned.
    let by_name = |name: &str| {
        queried
            .iter()
            .find(|(d, _)| d == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{name} not in the lab"))
    };
    assert_eq!(by_name("dane.test")["postfix"], "OK dane-only");
    assert_eq!(by_name("dane-sts.test")["postfix"], "OK dane-only");
    assert_eq!(by_name("dane-unusable.test")["postfix"], "OK dane");
    assert!(
        by_name("dane-bogus.test")["postfix"]
            .as_str()
            .is_some_and(|p| p.starts_with("TEMP DANE check for dane-bogus.test")),
        "{}",
        by_name("dane-bogus.test")
    );
    assert_eq!(by_name("dane.test")["zone"]["decision"], "dane-only");
    assert_eq!(by_name("enforce.test")["zone"]["decision"], "enforce");
    assert_eq!(by_name("testing.test")["zone"]["decision"], "testing");

    // A zone by map name, and bad keys.
    let (head, body) = http_get(http, "/v1/decision/[enforce.test]:25?zone=strict");
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        (v["domain"].as_str(), v["zone"]["map"].as_str()),
        (Some("enforce.test"), Some("strict"))
    );
    let (head, body) = http_get(http, "/v1/decision/192.0.2.1");
    assert!(head.starts_with("HTTP/1.0 400"), "{head}");
    assert!(body.contains("IP address literal"), "{body}");
    let (head, _) = http_get(http, "/nothing");
    assert!(head.starts_with("HTTP/1.0 404"), "{head}");
}
