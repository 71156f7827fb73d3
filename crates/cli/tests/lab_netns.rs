//! `mtasts lab` in a real network namespace: dig, curl and openssl reach the fake hosts inside
//! it, and `down` leaves nothing behind. Needs root and iproute2, dig, curl, openssl (CI
//! installs them). Missing, they fail saying so, or with `MTASTS_TEST_SKIP=lab` are
//! reported as ignored.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn require() {
    common::require_root_with(&["ip", "dig", "curl", "openssl"], "the lab namespace tests")
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

fn assert_gone(name: &str) {
    assert!(
        !Path::new("/run/netns").join(name).exists(),
        "namespace {name} left behind"
    );
    assert!(
        !Path::new("/etc/netns").join(name).exists(),
        "/etc/netns/{name} left behind"
    );
    assert!(
        !Path::new("/run/mtasts-lab").join(name).exists(),
        "state dir left behind"
    );
}

#[cfg_attr(
    not(mtasts_run_lab),
    ignore = "needs root, ip, dig, curl, openssl (MTASTS_TEST_SKIP opted out)"
)]
#[test]
fn lab_run_reaches_dns_https_and_smtp_inside_the_namespace() {
    require();
    let name = format!("mtlab-run-{}", std::process::id());
    let script = r#"
        set -e
        echo "TXT: $(dig +short TXT _mta-sts.txt-split.test | tr '\n' ' ')"
        echo "A: $(dig +short A mx1.enforce.test)"
        curl -sS --cacert "$MTASTS_LAB_CA" https://mta-sts.enforce.test/.well-known/mta-sts.txt
        echo "REDIRECT: $(curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' --cacert "$MTASTS_LAB_CA" https://mta-sts.redirect.test/.well-known/mta-sts.txt)"
        echo QUIT | openssl s_client -starttls smtp -connect mx1.sni-only.test:25 -servername mx1.sni-only.test \
            -verify_hostname mx1.sni-only.test -verify_return_error -CAfile "$MTASTS_LAB_CA" -brief 2>&1 | grep -E '^(Verification|Protocol)' | sed 's/^/WITH-SNI /'
        echo QUIT | openssl s_client -starttls smtp -connect mx1.sni-only.test:25 -noservername \
            -CAfile "$MTASTS_LAB_CA" -brief 2>&1 | grep -E '^Peer certificate' | sed 's/^/NO-SNI /'
        ip addr show lo | grep -c 'inet 127\.1\.' | sed 's/^/ADDRS /'
    "#;
    let o = mtasts(&["lab", "run", "--name", &name, "--", "sh", "-c", script]);
    let out = text(&o);
    assert!(o.status.success(), "{:?}: {out}", o.status);
    // Two TXT records, one split in two strings; the resolver may give them in either order.
    assert!(
        out.lines()
            .any(|l| l.starts_with("TXT: ") && l.contains("\"v=STSv1; id=ab\" \"cd;\"")),
        "{out}"
    );
    assert!(out.contains("A: 127.1."), "{out}");
    assert!(
        out.contains("mode: enforce\nmx: mx1.enforce.test\nmx: mx2.enforce.test\nmax_age: 604800"),
        "{out}"
    );
    assert!(
        out.contains("REDIRECT: 301 https://mta-sts.enforce.test/"),
        "{out}"
    );
    assert!(out.contains("WITH-SNI Verification: OK"), "{out}");
    assert!(
        out.contains("NO-SNI Peer certificate: CN = default.hosting.test"),
        "{out}"
    );
    let addrs: usize = out
        .lines()
        .find_map(|l| l.strip_prefix("ADDRS "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        addrs >= 60,
        "each fake host has its own 127.x address on lo: {out}"
    );
    assert_gone(&name);
}

#[cfg_attr(
    not(mtasts_run_lab),
    ignore = "needs root, ip, dig, curl, openssl (MTASTS_TEST_SKIP opted out)"
)]
#[test]
fn lab_run_returns_the_command_status_and_cleans_up() {
    require();
    let name = format!("mtlab-fail-{}", std::process::id());
    let o = mtasts(&["lab", "run", "--name", &name, "--", "sh", "-c", "exit 7"]);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    assert_gone(&name);
}

#[cfg_attr(
    not(mtasts_run_lab),
    ignore = "needs root, ip, dig, curl, openssl (MTASTS_TEST_SKIP opted out)"
)]
#[test]
fn lab_up_then_down_leaves_nothing_behind() {
    require();
    let name = format!("mtlab-up-{}", std::process::id());
    let o = mtasts(&["lab", "up", "--name", &name]);
    assert!(o.status.success(), "{}", text(&o));
    let pid = std::fs::read_to_string(Path::new("/run/mtasts-lab").join(&name).join("serve.pid"))
        .expect("pid file");
    let pid = pid.trim().to_string();
    assert!(Path::new("/proc").join(&pid).exists());
    let again = mtasts(&["lab", "up", "--name", &name]);
    assert_eq!(
        again.status.code(),
        Some(2),
        "a second up is refused: {}",
        text(&again)
    );
    let inside = Command::new("ip")
        .args([
            "netns",
            "exec",
            &name,
            "dig",
            "+short",
            "TXT",
            "_mta-sts.enforce.test",
        ])
        .output()
        .expect("dig");
    assert!(String::from_utf8_lossy(&inside.stdout).contains("v=STSv1; id=20261125;"));
    let o = mtasts(&["lab", "down", "--name", &name]);
    assert!(o.status.success(), "{}", text(&o));
    assert_gone(&name);
    // Gone, or a zombie waiting for whoever inherited it (PID 1 in a container may not reap).
    let running = std::fs::read_to_string(Path::new("/proc").join(&pid).join("stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false);
    assert!(!running, "lab server process left running");
}
