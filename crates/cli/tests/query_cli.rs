//! `mtasts query` against `mtasts lab serve --placement ephemeral` (no root needed): the
//! whole binary over real sockets.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn lab() -> common::EphemeralLab {
    common::EphemeralLab::start("query")
}

fn query(lab: &common::EphemeralLab, domain: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mtasts"))
        .args([
            "query",
            domain,
            "--nameserver",
            &lab.dns,
            "--dns-timeout",
            "1",
        ])
        .arg("--ca-file")
        .arg(lab.ca())
        .arg("--port-map")
        .arg(lab.ports())
        .args(extra)
        .output()
        .expect("query")
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

#[test]
fn query_explains_policy_none_and_failures() {
    let lab = lab();
    let o = query(&lab, "enforce.test", &[]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(
        text.contains("decision:  policy in force (just fetched)"),
        "{text}"
    );
    assert!(
        text.contains(
            "postfix:   OK secure match=mx1.enforce.test:mx2.enforce.test servername=hostname"
        ),
        "{text}"
    );

    let v = json(&query(&lab, "redirect.test", &["--json"]));
    assert_eq!(
        (v["decision"].as_str(), v["reason_code"].as_str()),
        (Some("none"), Some("fetch-failed"))
    );
    assert_eq!(v["error"]["rule"], "FETCH-04");
    assert_eq!(v["postfix"], "NOTFOUND ");

    let v = json(&query(&lab, "no-txt.test", &["--json"]));
    assert_eq!(v["reason_code"], "no-record");
    let v = json(&query(&lab, "policy-expired.test", &["--json"]));
    assert_eq!(v["error"]["result_type"], "sts-webpki-invalid");
    let v = json(&query(&lab, "txt-servfail.test", &["--json"]));
    assert_eq!(v["reason_code"], "dns-failure");
    let v = json(&query(&lab, "wildcard.test", &["--json"]));
    assert_eq!(v["policy"]["mx"][0], "*.wildcard.test");
}

#[test]
fn query_uses_and_updates_a_sqlite_cache() {
    let lab = lab();
    let db = lab.dir.join("q.sqlite3");
    let spec = format!("sqlite:{}", db.display());
    let v = json(&query(&lab, "testing.test", &["--json", "--cache", &spec]));
    assert_eq!(v["reason_code"], "fetched");
    let v = json(&query(&lab, "testing.test", &["--json", "--cache", &spec]));
    assert_eq!(
        (v["reason_code"].as_str(), v["source"].as_str()),
        (Some("cached"), Some("cache"))
    );
    assert_eq!(
        v["postfix"], "NOTFOUND ",
        "testing is not enforced by default"
    );
    assert!(Path::new(&db).exists());
}

#[test]
fn query_usage_errors_exit_2() {
    let o = Command::new(env!("CARGO_BIN_EXE_mtasts"))
        .args(["query", "192.0.2.1"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("IP address literal"));
    let o = Command::new(env!("CARGO_BIN_EXE_mtasts"))
        .args(["query", "x.test", "--cache", "bogus"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("expected `memory`"));
    for (flag, value) in [("--dns-timeout", "0"), ("--fetch-timeout", "1e300")] {
        let o = Command::new(env!("CARGO_BIN_EXE_mtasts"))
            .args(["query", "x.test", flag, value])
            .output()
            .expect("run");
        assert_eq!(o.status.code(), Some(2), "{flag} {value}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("out of range"),
            "{flag} {value}"
        );
    }
}

#[test]
fn query_takes_the_daemon_key_forms() {
    let lab = lab();
    let v = json(&query(&lab, "[enforce.test]:25", &["--json"]));
    assert_eq!(v["domain"], "enforce.test");
    assert!(
        v["postfix"]
            .as_str()
            .is_some_and(|p| p.starts_with("OK secure match=mx1.enforce.test")),
        "{v}"
    );
}

#[test]
fn query_exits_3_when_the_answer_is_a_deferral() {
    let lab = lab();
    let dir = std::env::temp_dir().join(format!("mtasts-query-defer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("daemon.toml");
    std::fs::write(&config, "[zones.defer]\ndefer_on_failure = true\n").expect("config");
    let config = config.to_string_lossy().into_owned();
    let deferred = query(
        &lab,
        "txt-servfail.test",
        &["--config", &config, "--map", "defer", "--json"],
    );
    let v = json(&deferred);
    assert_eq!(deferred.status.code(), Some(3), "{v}");
    assert!(
        v["postfix"]
            .as_str()
            .is_some_and(|p| p.starts_with("TEMP ")),
        "{v}"
    );
    // The same failure in the default zone is delivered without MTA-STS: exit 0.
    let delivered = query(&lab, "txt-servfail.test", &["--config", &config, "--json"]);
    assert_eq!(delivered.status.code(), Some(0), "{}", json(&delivered));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn policy_fetches_ignore_proxy_settings_in_the_environment() {
    // A proxy that would take the fetch: it counts connections and never answers.
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    proxy.set_nonblocking(true).expect("nonblocking");
    let url = format!("http://{}", proxy.local_addr().expect("addr"));
    let lab = lab();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtasts"));
    cmd.args(["query", "enforce.test", "--json", "--nameserver", &lab.dns])
        .arg("--ca-file")
        .arg(lab.ca())
        .arg("--port-map")
        .arg(lab.ports());
    for var in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        cmd.env(var, &url);
    }
    let o = cmd
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .expect("query");
    let v = json(&o);
    assert_eq!(o.status.code(), Some(0), "{v}");
    assert_eq!(v["source"], "network", "fetched directly: {v}");
    assert!(
        v["postfix"]
            .as_str()
            .is_some_and(|p| p.starts_with("OK secure")),
        "{v}"
    );
    assert!(
        matches!(proxy.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "nothing connected to the proxy"
    );
}

#[test]
fn the_rootless_lab_removes_its_ready_marker_and_control_socket_on_sigterm() {
    let mut lab = lab();
    assert!(lab.dir.join("control.sock").exists());
    let sent = Command::new("kill")
        .args(["-TERM", &lab.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let status = lab.child.wait().expect("wait");
    assert!(status.success(), "{status}");
    assert!(!lab.dir.join("ready").exists(), "ready marker left behind");
    assert!(
        !lab.dir.join("control.sock").exists(),
        "control.sock left behind"
    );
    assert!(
        lab.dir.join("ports.txt").exists(),
        "the port map stays for inspection"
    );
}

/// Conditional trust from the daemon's config: `query --config` fetches the private-CA domain
/// with the rule's anchors and says which rule applied, in text and JSON.
#[test]
fn query_shows_the_conditional_trust_that_applied() {
    let lab = lab();
    let private_ca = lab.dir.join("private-ca.pem");
    let config = lab.dir.join("trust.toml");
    std::fs::write(
        &config,
        format!(
            "[[trust]]\nname = \"lab-private\"\ndomains = [\"private-ca.test\"]\nanchors = [\"{}\"]\n",
            private_ca.display()
        ),
    )
    .expect("config");
    let config = config.to_string_lossy().into_owned();
    let o = query(&lab, "private-ca.test", &["--config", &config, "--no-dane"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!(
            "trust:     rule lab-private (only): {}",
            private_ca.display()
        )),
        "{text}"
    );
    let v = json(&query(
        &lab,
        "private-ca.test",
        &["--config", &config, "--no-dane", "--json"],
    ));
    assert_eq!(v["trust"]["rule"].as_str(), Some("lab-private"));
    assert_eq!(v["trust"]["applied"].as_bool(), Some(true));
    assert!(
        v["postfix"]
            .as_str()
            .is_some_and(|p| p.ends_with(&format!("tafile={}", private_ca.display()))),
        "{v}"
    );
    // Without the config the same domain's policy host is refused.
    let v = json(&query(&lab, "private-ca.test", &["--no-dane", "--json"]));
    assert_eq!(v["reason_code"].as_str(), Some("fetch-failed"));
    assert!(v["trust"].is_null(), "{v}");
}
