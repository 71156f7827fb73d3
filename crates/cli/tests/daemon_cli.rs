//! `mtasts daemon` as a process: config file, SIGHUP reload, SIGTERM shutdown, config errors,
//! postfix-mta-sts-resolver migration. Runs against `mtasts lab serve --placement ephemeral`.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

mod common;

use common::{Daemon, Proc, ask, free_port};

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mtasts-daemon-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp");
    d
}

fn wait_for(path: &std::path::Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
}

#[test]
fn reloads_on_sighup_and_stops_cleanly_on_sigterm() {
    let dir = tmp("signals");
    let lab = common::EphemeralLab::start("signals");
    let dns = lab.dns.clone();
    let sock = dir.join("pf.sock");
    let config = dir.join("daemon.toml");
    // `strict` switches a zone setting (applies at once); the other values are ones only a
    // restart applies, which the reload must name.
    let write_config = |strict: bool, log_format: &str, txt_grace: &str| {
        std::fs::write(
            &config,
            format!(
                "listen = [\"127.0.0.1:0\", \"unix:{}\"]\ncache = \"sqlite:{}\"\nnameserver = \"{dns}\"\nca_file = \"{}\"\nlog_format = \"{log_format}\"\nmetrics_listen = \"127.0.0.1:0\"\n[resolver]\ntxt_grace = \"{txt_grace}\"\n[default_zone]\nstrict_testing = {strict}\n",
                sock.display(),
                dir.join("cache.sqlite3").display(),
                lab.ca().display()
            ),
        )
        .expect("config");
    };
    write_config(false, "json", "60s");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtasts"));
    cmd.args(["daemon", "--config"])
        .arg(&config)
        .arg("--port-map")
        .arg(lab.ports());
    let mut daemon = Daemon::spawn(cmd);
    let (port, metrics_port) = (daemon.port, daemon.metrics.expect("metrics listener"));
    wait_for(&sock);
    assert_eq!(ask(port, "postfix testing.test"), "NOTFOUND ");
    assert!(ask(port, "postfix enforce.test").starts_with("OK secure match=mx1.enforce.test"));

    let mut http = TcpStream::connect(("127.0.0.1", metrics_port)).expect("metrics listener");
    http.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .expect("write");
    let mut page = String::new();
    let _ = http.read_to_string(&mut page);
    assert!(
        page.starts_with("HTTP/1.0 200") || page.starts_with("HTTP/1.1 200"),
        "{page}"
    );
    assert!(
        page.contains("mtasts_answers_total{status=\"OK\"} 1"),
        "{page}"
    );
    assert!(page.contains("mtasts_answer_seconds_count 2"), "{page}");

    write_config(true, "text", "2m");
    signal(daemon.child(), "-HUP");
    let start = Instant::now();
    loop {
        let r = ask(port, "postfix testing.test");
        if r.starts_with("OK secure match=mx1.testing.test") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "reload not applied: {r}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let (status, log) = daemon.stop("-TERM");
    assert!(status.success(), "{status}");
    assert!(!sock.exists(), "unix socket removed on shutdown");
    assert!(
        log.lines()
            .any(|l| l.starts_with('{') && l.contains("configuration reloaded")),
        "json logs, also after a reload that asked for text: {log}"
    );
    assert!(
        log.lines().any(|l| l.contains("only after a restart")
            && l.contains("log_format")
            && l.contains("resolver")),
        "the reload names what needs a restart: {log}"
    );
    // The SQLite cache holds what was fetched, flushed on shutdown: reopen it and look.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let held = runtime.block_on(async {
        let store = mtasts_store::SqliteStore::open(dir.join("cache.sqlite3"))
            .await
            .expect("reopen the cache");
        let mut held = Vec::new();
        for d in ["enforce.test", "testing.test"] {
            let name = mtasts_core::DomainName::parse(d).expect("domain");
            let state = mtasts_store::Store::get(&store, &name).await.expect("read");
            held.push(state.and_then(|s| s.policy.as_ref().map(|p| p.policy.mode)));
        }
        held
    });
    assert_eq!(
        held,
        vec![
            Some(mtasts_core::Mode::Enforce),
            Some(mtasts_core::Mode::Testing)
        ]
    );
    drop(lab);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_configs_are_refused_with_the_field_named() {
    let dir = tmp("badcfg");
    for (text, expect) in [
        ("listen = [\"nowhere\"]\n", "listen"),
        ("[default_zone]\ntimeout = -1\n", "default_zone.timeout"),
        ("bogus = 1\n", "unknown field `bogus`"),
        ("log_format = \"xml\"\n", "log_format"),
    ] {
        let path = dir.join("bad.toml");
        std::fs::write(&path, text).expect("write");
        let o = Command::new(env!("CARGO_BIN_EXE_mtasts"))
            .args(["daemon", "--check-config", "--config"])
            .arg(&path)
            .output()
            .expect("run");
        assert_eq!(o.status.code(), Some(2), "{text}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(expect), "{text}: {err}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn pmsr_yaml_is_migrated_with_warnings() {
    let dir = tmp("pmsr");
    let path = dir.join("mta-sts-daemon.yml");
    std::fs::write(
        &path,
        "host: 127.0.0.1\nport: 8461\nreuse_port: true\ncache:\n  type: sqlite\n  options:\n    filename: /var/lib/mta-sts/cache.db\nzones:\n  strict:\n    strict_testing: true\n",
    )
    .expect("write");
    let o = Command::new(env!("CARGO_BIN_EXE_mtasts"))
        .args(["daemon", "--check-config", "--pmsr-config"])
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("sqlite:/var/lib/mta-sts/cache.db") && out.contains("127.0.0.1:8461"),
        "{out}"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("reuse_port"));
    let _ = std::fs::remove_dir_all(dir);
}

#[cfg_attr(
    not(mtasts_run_systemd),
    ignore = "needs systemd-socket-activate (MTASTS_TEST_SKIP opted out)"
)]
#[test]
fn systemd_socket_activation_is_used() {
    let tool = which("systemd-socket-activate").unwrap_or_else(|()| {
        panic!("systemd-socket-activate not found: install systemd, or set MTASTS_TEST_SKIP=systemd to report this test as ignored")
    });
    let port = free_port();
    // --listen names an address the test holds: a daemon that bound it would fail to start.
    let occupied = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let occupied_addr = occupied.local_addr().expect("addr").to_string();
    let mut activator = Proc(
        Command::new(tool)
            .args(["-l", &format!("127.0.0.1:{port}")])
            .arg(env!("CARGO_BIN_EXE_mtasts"))
            .args([
                "daemon",
                "--cache",
                "memory",
                "--listen",
                &occupied_addr,
                "--nameserver",
                "127.0.0.1:9",
            ])
            .stderr(Stdio::piped())
            .spawn()
            .expect("activator"),
    );
    let start = Instant::now();
    let reply = loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break ask(port, "postfix .example.test");
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "socket never listened"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        reply, "NOTFOUND ",
        "answered on the passed socket, not on --listen"
    );
    let log = activator.stop_and_log("-TERM");
    assert!(log.contains("using sockets passed by systemd"), "{log}");
}

fn which(tool: &str) -> Result<String, ()> {
    let o = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map_err(|_| ())?;
    if o.status.success() {
        Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
    } else {
        Err(())
    }
}

#[test]
fn a_flood_of_bad_frames_logs_one_warning_with_the_peer() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtasts"));
    cmd.args(["daemon", "--cache", "memory", "--nameserver", "127.0.0.1:9"])
        .args(["--listen", "127.0.0.1:0"]);
    let mut daemon = Daemon::spawn(cmd);
    let port = daemon.port;
    for _ in 0..200 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let _ = s.write_all(b"x:garbage,");
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink); // closed by the daemon
    }
    // Still serving.
    assert_eq!(ask(port, "postfix .example.test"), "NOTFOUND ");
    let (_, log) = daemon.stop("-TERM");
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("malformed socketmap request"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(
        warnings[0].contains("127.0.0.1:"),
        "names the peer: {}",
        warnings[0]
    );
}

/// A daemon on the ephemeral `lab` (memory cache, port 0, the default log level), its config
/// in `dir` with `extra` TOML appended.
fn lab_daemon(lab: &common::EphemeralLab, dir: &std::path::Path, extra: &str) -> Daemon {
    let config = dir.join("daemon.toml");
    std::fs::write(
        &config,
        format!(
            "listen = [\"127.0.0.1:0\"]\ncache = \"memory\"\nnameserver = \"{}\"\nca_file = \"{}\"\n{extra}",
            lab.dns,
            lab.ca().display()
        ),
    )
    .expect("config");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtasts"));
    cmd.args(["daemon", "--config"])
        .arg(&config)
        .arg("--port-map")
        .arg(lab.ports())
        .env_remove("RUST_LOG");
    Daemon::spawn(cmd)
}

#[test]
fn sigint_stops_cleanly_after_answering_the_request_in_flight() {
    let lab = common::EphemeralLab::start("sigint");
    let dir = tmp("sigint");
    // A 1 s answer deadline: slow.test (a dripping policy host) is answered at it.
    let mut daemon = lab_daemon(&lab, &dir, "[default_zone]\ntimeout = \"1s\"\n");
    let mut s = TcpStream::connect(("127.0.0.1", daemon.port)).expect("connect");
    // Both requests in one write; the first reply means both were read.
    let (a, b) = ("postfix enforce.test", "postfix slow.test");
    s.write_all(format!("{}:{a},{}:{b},", a.len(), b.len()).as_bytes())
        .expect("write");
    let mut replies = common::NetstringReader::new(s);
    assert!(
        replies
            .next_reply()
            .is_some_and(|r| r.starts_with("OK secure")),
        "enforce.test answered"
    );
    signal(daemon.child(), "-INT");
    assert_eq!(
        replies.next_reply().as_deref(),
        Some("NOTFOUND "),
        "slow.test, in flight at the signal, answered at its deadline"
    );
    assert_eq!(replies.next_reply(), None, "then closed");
    // (A second SIGINT to a process already stopping or exited changes nothing.)
    let (status, log) = daemon.stop("-INT");
    assert!(status.success(), "{status}");
    assert!(log.contains("stopped"), "{log}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn deferrals_and_failure_answers_are_logged_once_per_domain_plain_answers_are_not() {
    let lab = common::EphemeralLab::start("decisionlog");
    let dir = tmp("decisionlog");
    let mut daemon = lab_daemon(&lab, &dir, "[zones.defer]\ndefer_on_failure = true\n");
    for _ in 0..3 {
        assert!(ask(daemon.port, "defer txt-servfail.test").starts_with("TEMP "));
        assert_eq!(ask(daemon.port, "postfix redirect.test"), "NOTFOUND ");
        assert!(ask(daemon.port, "postfix enforce.test").starts_with("OK secure"));
    }
    let (_, log) = daemon.stop("-TERM");
    let lines = |what: &str, domain: &str| {
        log.lines()
            .filter(|l| l.contains(what) && l.contains(domain))
            .count()
    };
    assert_eq!(
        lines("WARN", "txt-servfail.test"),
        1,
        "one deferral line: {log}"
    );
    assert_eq!(
        lines("delivering without it", "redirect.test"),
        1,
        "one failure line: {log}"
    );
    assert_eq!(
        lines("answered", "enforce.test"),
        0,
        "plain answers at debug: {log}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
