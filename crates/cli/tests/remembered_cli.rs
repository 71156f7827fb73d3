//! Remembered TLS through the binary: `mtasts remembered learn` reads Postfix log lines,
//! the daemon (SQLite cache shared with the learner) answers `encrypt` in an `enforce` zone,
//! unchanged in a `report` zone, and stops once the domain is forgotten, exempt or covered by
//! MTA-STS; `list`, `export`, `import` and `forget` work on the same memories. Lab DNS and
//! HTTPS on loopback (no root needed). The log lines are the forms Postfix 3.7 writes (the
//! real-Postfix proof is tests/postfix/remember.sh).

#![allow(clippy::expect_used)] // a failed expectation is a failed test

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn tls_delivery(pid: u32, qid: &str, domain: &str) -> String {
    format!(
        "Dec  3 13:40:01 sender postfix/smtp[{pid}]: Verified TLS connection established to mx1.{domain}[127.1.0.5]:25: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)\n\
Dec  3 13:40:01 sender postfix/smtp[{pid}]: {qid}: to=<user@{domain}>, relay=mx1.{domain}[127.1.0.5]:25, delay=0.1, delays=0.01/0/0.05/0.03, dsn=2.0.0, status=sent (250 2.0.0 Ok)\n"
    )
}

fn plain_delivery(pid: u32, qid: &str, domain: &str) -> String {
    format!(
        "Dec  3 13:41:01 sender postfix/smtp[{pid}]: {qid}: to=<user@{domain}>, relay=mx1.{domain}[127.1.0.5]:25, delay=0.1, delays=0.01/0/0.05/0.03, dsn=2.0.0, status=sent (250 2.0.0 Ok)\n"
    )
}

/// A fresh scratch directory.
fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mtasts-remembered-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

/// Writes `name` in `dir`: a daemon configuration with its cache in `dir`, then `rest` (an
/// explicit file, so nothing comes from this host's /etc/mtasts).
fn config_in(dir: &Path, name: &str, rest: &str) -> PathBuf {
    let path = dir.join(name);
    let cache = dir.join("cache.sqlite3");
    std::fs::write(
        &path,
        format!("cache = \"sqlite:{}\"\n{rest}", cache.display()),
    )
    .expect("config");
    path
}

fn mtasts(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mtasts"))
        .arg("remembered")
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("mtasts remembered")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Asks until the answer is `want` (the daemon reads the memories every 200 ms).
fn eventually(port: u16, req: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = common::ask(port, req);
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{req}: {got:?}, wanted {want:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn learned_domains_get_tls_required_until_forgotten() {
    let lab = common::EphemeralLab::start("remembered");
    let dir = scratch("cli");
    let config = config_in(
        &dir,
        "daemon.toml",
        r#"listen = ["127.0.0.1:0"]
postfix_version = "3.7.0"
postfix_dnssec = "no"
[default_zone]
remember_tls = "enforce"
[zones.report]
remember_tls = "report"
[zones.off]
[remember]
min_deliveries = 3
min_span = "0s"
exempt = ["exempt.example"]
reload_interval = "200ms"
"#,
    );
    // Three TLS deliveries each to no-txt.test (no MTA-STS), enforce.test (MTA-STS) and
    // exempt.example; two to learning.example (one short); one TLS then one plaintext
    // delivery on a cached connection to reset.example (learning starts again).
    let log = dir.join("maillog");
    let mut lines = String::new();
    for (i, d) in ["no-txt.test", "enforce.test", "exempt.example"]
        .iter()
        .enumerate()
    {
        for n in 0..3u32 {
            let pid = 100 + n;
            lines.push_str(&tls_delivery(pid, &format!("A{i}{n}"), d));
        }
    }
    lines.push_str(&tls_delivery(200, "B1", "learning.example"));
    lines.push_str(&tls_delivery(201, "B2", "learning.example"));
    lines.push_str(&tls_delivery(300, "C1", "reset.example"));
    lines.push_str(&plain_delivery(300, "C2", "reset.example"));
    std::fs::write(&log, &lines).expect("log");
    let learn = |args: &[&str]| {
        let o = mtasts(
            &config,
            &[
                &[
                    "learn",
                    "--postfix-log",
                    log.to_str().expect("path"),
                    "--from-start",
                    "--once",
                ],
                args,
            ]
            .concat(),
        );
        assert!(o.status.success(), "{}", text(&o));
        text(&o)
    };
    let out = learn(&[]);
    assert!(
        out.contains("domain now remembered domain=no-txt.test"),
        "{out}"
    );

    let list = text(&mtasts(&config, &["list"]));
    assert!(list.contains("no-txt.test  remembered until"), "{list}");
    assert!(
        list.contains("exempt.example  remembered until") && list.contains("(exempt)"),
        "{list}"
    );
    assert!(
        list.contains("learning.example  learning: 2 of 3 TLS deliveries"),
        "{list}"
    );
    assert!(
        list.contains("reset.example  learning: 0 of 3 TLS deliveries"),
        "{list}"
    );

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtasts"));
    cmd.args(["daemon", "--config"])
        .arg(&config)
        .args(["--nameserver", &lab.dns, "--port-map"])
        .arg(lab.ports())
        .arg("--ca-file")
        .arg(lab.ca())
        .args(["--metrics-listen", "127.0.0.1:0"]);
    let daemon = common::Daemon::spawn(cmd);
    let port = daemon.port;
    // Remembered, no MTA-STS: TLS required, SNI kept.
    eventually(
        port,
        "postfix no-txt.test",
        "OK encrypt servername=hostname",
    );
    // Report zone: unchanged; off zone: unchanged.
    assert_eq!(common::ask(port, "report no-txt.test"), "NOTFOUND ");
    assert_eq!(common::ask(port, "off no-txt.test"), "NOTFOUND ");
    // MTA-STS governs where it applies; exempt and learning domains get nothing.
    assert!(common::ask(port, "postfix enforce.test").starts_with("OK secure match="));
    for d in ["exempt.example", "learning.example", "reset.example"] {
        let a = common::ask(port, &format!("postfix {d}"));
        assert!(!a.starts_with("OK encrypt"), "{d}: {a}");
    }
    // Each counted.
    let metrics =
        common::http_get(daemon.metrics.expect("metrics port"), "/metrics").expect("metrics");
    assert!(
        metrics.contains("mtasts_remembered_tls_total{outcome=\"required\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mtasts_remembered_tls_total{outcome=\"would_require\"} 1"),
        "{metrics}"
    );

    // A plaintext delivery to a remembered domain: a possible downgrade, still remembered.
    std::fs::write(&log, plain_delivery(400, "D1", "no-txt.test")).expect("log");
    let out = learn(&[]);
    assert!(
        out.contains("possible downgrade") && out.contains("domain=no-txt.test"),
        "{out}"
    );
    let list = text(&mtasts(&config, &["list"]));
    assert!(
        list.contains("no-txt.test  remembered until") && list.contains("downgrades=1"),
        "{list}"
    );

    // Export, forget, import: the shared list brings the memory back.
    let export = mtasts(&config, &["export"]);
    assert!(export.status.success());
    let v: serde_json::Value = serde_json::from_slice(&export.stdout).expect("preload JSON");
    assert_eq!(v["format"], "mtasts-remembered-tls");
    let domains: Vec<&str> = v["domains"]
        .as_array()
        .expect("domains")
        .iter()
        .filter_map(|d| d["domain"].as_str())
        .collect();
    assert!(
        domains.contains(&"no-txt.test") && !domains.contains(&"learning.example"),
        "{domains:?}"
    );
    let preload = dir.join("preload.json");
    std::fs::write(&preload, &export.stdout).expect("preload");

    let o = mtasts(&config, &["forget", "no-txt.test"]);
    assert!(
        o.status.success() && text(&o).contains("forgot no-txt.test"),
        "{}",
        text(&o)
    );
    assert_eq!(
        mtasts(&config, &["forget", "never.example"]).status.code(),
        Some(1)
    );
    eventually(port, "postfix no-txt.test", "NOTFOUND ");

    let o = mtasts(&config, &["import", preload.to_str().expect("path")]);
    assert!(o.status.success(), "{}", text(&o));
    eventually(
        port,
        "postfix no-txt.test",
        "OK encrypt servername=hostname",
    );
    let bad = dir.join("bad.json");
    std::fs::write(&bad, r#"{"format":"other","version":1,"domains":[]}"#).expect("bad");
    let o = mtasts(&config, &["import", bad.to_str().expect("path")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("expected `mtasts-remembered-tls` version 1"),
        "{}",
        text(&o)
    );

    // query shows the state and why.
    let q = Command::new(env!("CARGO_BIN_EXE_mtasts"))
        .args(["query", "no-txt.test", "--config"])
        .arg(&config)
        .args(["--nameserver", &lab.dns, "--port-map"])
        .arg(lab.ports())
        .arg("--ca-file")
        .arg(lab.ca())
        .output()
        .expect("query");
    let qt = text(&q);
    assert!(
        qt.contains(
            "remembered: remembered and no DANE or MTA-STS policy applies: TLS required (encrypt)"
        ),
        "{qt}"
    );
    assert!(
        qt.contains("postfix:   OK encrypt servername=hostname"),
        "{qt}"
    );
    drop(daemon);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The collector learns too: session results (here on the submission protocol, as Exim's
/// event hook and Postfix ≥ 3.10's datagrams arrive) feed the same memories.
#[test]
fn the_collector_learns_from_session_results() {
    let dir = scratch("collect");
    let config = config_in(
        &dir,
        "daemon.toml",
        "[remember]\nmin_deliveries = 3\nmin_span = \"0s\"\n",
    );
    let (sock, submit) = (dir.join("tlsrpt.sock"), dir.join("submit.sock"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtasts"));
    cmd.args(["tlsrpt", "collect", "--db"])
        .arg(format!("sqlite:{}", dir.join("tlsrpt.sqlite3").display()))
        .arg("--socket")
        .arg(&sock)
        .arg("--submit-socket")
        .arg(&submit)
        .arg("--remember")
        .arg(&config);
    let (child, _) = common::spawn_ready(&mut cmd, "mtasts tlsrpt collect ready");
    let line = |result: &str| {
        format!(
            r#"{{"domain": "sub.example", "policy-type": "no-policy-found", "result": "{result}", "receiving-mx-hostname": "mx.sub.example"}}"#
        )
    };
    let submit_lines = |lines: &[String]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtasts"));
        cmd.args(["tlsrpt", "submit", "--socket"]).arg(&submit);
        let o = common::run_with_stdin(cmd, lines.join("\n").as_bytes());
        assert!(o.status.success(), "{}", text(&o));
    };
    // A certificate failure still means STARTTLS was there; a DNS failure says nothing.
    submit_lines(&[
        line("success"),
        line("certificate-expired"),
        line("validation-failure"),
    ]);
    let list = text(&mtasts(&config, &["list"]));
    assert!(
        list.contains("sub.example  learning: 2 of 3 TLS deliveries"),
        "{list}"
    );
    submit_lines(&[line("success")]);
    let list = text(&mtasts(&config, &["list"]));
    assert!(list.contains("sub.example  remembered until"), "{list}");
    submit_lines(&[line("starttls-not-supported")]);
    let list = text(&mtasts(&config, &["list"]));
    assert!(
        list.contains("sub.example  remembered until") && list.contains("downgrades=1"),
        "{list}"
    );

    // The log learner on standard input (as from journalctl), reporting its downgrade to the
    // collector: counted once (the collector does not count the submitted session again).
    let mut lines = String::new();
    for n in 0..3u32 {
        lines.push_str(&tls_delivery(500 + n, &format!("E{n}"), "log.example"));
    }
    lines.push_str(&plain_delivery(502, "E9", "log.example"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtasts"));
    cmd.arg("remembered")
        .arg("--config")
        .arg(&config)
        .args(["learn", "--postfix-log", "-", "--tlsrpt-submit"])
        .arg(&submit);
    let o = common::run_with_stdin(cmd, lines.as_bytes());
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("domain now remembered domain=log.example"),
        "{out}"
    );
    assert!(
        out.contains("possible downgrade") && !out.contains("could not be submitted"),
        "{out}"
    );
    let list = text(&mtasts(&config, &["list"]));
    let row = |d: &str| {
        list.lines()
            .find(|l| l.starts_with(&format!("{d}  ")))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        row("log.example").contains("remembered until")
            && row("log.example").ends_with("downgrades=1"),
        "{list}"
    );
    assert!(row("sub.example").ends_with("downgrades=1"), "{list}");
    common::terminate(child);

    // Pruning: with a max_age of one second, both memories hold nothing in force soon after.
    let short = config_in(&dir, "short.toml", "[remember]\nmax_age = \"1s\"\n");
    let o = mtasts(&config, &["prune"]);
    assert!(text(&o).contains("pruned 0 memories"), "{}", text(&o));
    std::thread::sleep(Duration::from_millis(2100));
    let o = mtasts(&short, &["prune"]);
    assert!(text(&o).contains("pruned 2 memories"), "{}", text(&o));
    assert_eq!(text(&mtasts(&config, &["list"])), "");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A log that does not exist yet (Postfix writes it later) is waited for, then read whole.
#[test]
fn the_learner_waits_for_a_log_that_is_not_there_yet() {
    let dir = scratch("wait");
    let config = config_in(&dir, "daemon.toml", "");
    let log = dir.join("maillog");
    let child = common::Proc(
        Command::new(env!("CARGO_BIN_EXE_mtasts"))
            .arg("remembered")
            .arg("--config")
            .arg(&config)
            .args(["learn", "--postfix-log"])
            .arg(&log)
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("learn"),
    );
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(&log, tls_delivery(1, "Q1", "late.example")).expect("log");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let o = mtasts(&config, &["list"]);
        if text(&o).contains("late.example  learning: 1 of 10 TLS deliveries") {
            break;
        }
        assert!(Instant::now() < deadline, "{}", text(&o));
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(child);
    let _ = std::fs::remove_dir_all(&dir);
}
