//! `mtasts daemon`'s answers for Exim (`exim_listen`), over a real socket against the lab:
//! one request line, one answer line, the same decision as Postfix's reply, with the MX hosts
//! an enforced policy allows.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

fn ask_exim(port: u16, key: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("exim listener");
    s.write_all(format!("{key}\n").as_bytes()).expect("request");
    // As Exim's readsocket does: shut the sending side, read to the end.
    s.shutdown(std::net::Shutdown::Write).expect("shutdown");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("answer");
    answer
}

#[test]
fn exim_gets_the_mode_and_the_allowed_mx_hosts_of_the_same_decision() {
    let lab = common::EphemeralLab::start("exim-answers");
    let dir = std::env::temp_dir().join(format!("mtasts-exim-answers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let exim_port = common::free_port();
    let config = dir.join("daemon.toml");
    std::fs::write(
        &config,
        format!(
            "listen = [\"127.0.0.1:0\"]\nexim_listen = [\"127.0.0.1:{exim_port}\"]\ncache = \"memory\"\nnameserver = \"{}\"\nca_file = \"{}\"\npostfix_version = \"3.7.0\"\npostfix_dnssec = \"yes\"\n[default_zone]\ndane = true\n",
            lab.dns,
            lab.ca().display()
        ),
    )
    .expect("config");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtasts"));
    cmd.args(["daemon", "--config"])
        .arg(&config)
        .arg("--port-map")
        .arg(lab.ports());
    let mut daemon = common::Daemon::spawn(cmd);
    assert!(
        daemon.log().contains("answers for Exim"),
        "{}",
        daemon.log()
    );

    let enforce = ask_exim(exim_port, "enforce.test");
    assert!(
        enforce.starts_with(
            "mode=\"enforce\" domain=\"enforce.test\" hosts=\"mx1.enforce.test:mx2.enforce.test\" id="
        ),
        "{enforce}"
    );
    assert!(
        enforce.ends_with("\"\n") && enforce.lines().count() == 1,
        "{enforce}"
    );
    // Postfix gets the same decision for the same domain.
    assert!(
        common::ask(daemon.port, "postfix enforce.test")
            .starts_with("OK secure match=mx1.enforce.test:mx2.enforce.test")
    );
    assert!(ask_exim(exim_port, "testing.test").starts_with("mode=\"testing\""));
    assert!(ask_exim(exim_port, "no-txt.test").starts_with("mode=\"none\""));
    let mismatch = ask_exim(exim_port, "mx-mismatch.test");
    assert!(
        mismatch.starts_with("mode=\"defer\"")
            && mismatch.contains("no MX host of mx-mismatch.test matches the enforced policy"),
        "{mismatch}"
    );
    assert!(
        ask_exim(exim_port, "dane.test").starts_with("mode=\"dane\""),
        "{}",
        ask_exim(exim_port, "dane.test")
    );
    // Key forms as Postfix sends them, and a key that names no domain.
    assert!(ask_exim(exim_port, "[enforce.test]:25").starts_with("mode=\"enforce\""));
    assert!(ask_exim(exim_port, "192.0.2.1").starts_with("mode=\"none\" reason="));
    let (status, _) = daemon.stop("-TERM");
    assert!(status.success());
    let _ = std::fs::remove_dir_all(&dir);
}
