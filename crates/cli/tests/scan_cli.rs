//! `mtasts check` and `mtasts scan` as processes against `mtasts lab serve --placement ephemeral`.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn lab(tag: &str) -> common::EphemeralLab {
    common::EphemeralLab::start(tag)
}

fn mtasts(lab: &common::EphemeralLab, args: &[&str], stdin: Option<&str>) -> Output {
    mtasts_timeout(lab, args, stdin, "2")
}

/// [`mtasts`] with its own per-step `--timeout`.
fn mtasts_timeout(
    lab: &common::EphemeralLab,
    args: &[&str],
    stdin: Option<&str>,
    timeout: &str,
) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mtasts"))
        .args(args)
        .args(["--nameserver", &lab.dns, "--timeout", timeout])
        .arg("--ca-file")
        .arg(lab.ca())
        .arg("--port-map")
        .arg(lab.ports())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or("").as_bytes())
        .expect("write");
    drop(input);
    child.wait_with_output().expect("wait")
}

#[test]
fn check_exit_codes_text_and_json() {
    let lab = lab("check");
    let ok = mtasts(&lab, &["check", "enforce.test"], None);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let warn = mtasts(&lab, &["check", "sni-only.test"], None);
    assert_eq!(warn.status.code(), Some(1));
    let text = String::from_utf8_lossy(&warn.stdout);
    assert!(text.contains("valid only when SNI is sent"), "{text}");
    assert!(!text.contains('\u{1b}'), "no colour when not on a terminal");
    let err = mtasts(&lab, &["check", "no-starttls.test", "--json"], None);
    assert_eq!(err.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&err.stdout).expect("json");
    assert_eq!(v["verdict"], "error");
    assert_eq!(v["deliverable"], false);
    let bad = mtasts(&lab, &["check", "192.0.2.1"], None);
    assert_eq!(bad.status.code(), Some(3), "could not run");
    // The daemon's key forms are accepted; absurd timeouts are not.
    let key = mtasts(&lab, &["check", "[enforce.test]:25", "--json"], None);
    let v: serde_json::Value = serde_json::from_slice(&key.stdout).expect("json");
    assert_eq!(v["domain"], "enforce.test");
    for (flag, value) in [("--timeout", "0"), ("--timeout", "1e300")] {
        let o = mtasts(&lab, &["check", "enforce.test", flag, value], None);
        assert_ne!(o.status.code(), Some(0), "{flag} {value}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("out of range"),
            "{flag} {value}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn scan_the_whole_catalog_with_rows_summary_and_resume() {
    let lab = lab("scan");
    let list = Command::new(env!("CARGO_BIN_EXE_mtasts"))
        .args(["lab", "list"])
        .output()
        .expect("list");
    let domains: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    assert!(domains.len() >= 25);
    let out = lab.dir.join("scan.csv");
    let out_s = out.to_str().expect("path");
    // First half, then resume for the rest: every domain exactly once.
    let first: String = domains[..domains.len() / 2]
        .iter()
        .map(|d| format!("{d}\n"))
        .collect();
    let o = mtasts(
        &lab,
        &["scan", "-", "--output", out_s, "--concurrency", "8"],
        Some(&first),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let all: String =
        domains.iter().map(|d| format!("{d}\n")).collect::<String>() + "# a comment\n\n";
    let o = mtasts(
        &lab,
        &[
            "scan",
            "-",
            "--output",
            out_s,
            "--resume",
            "--concurrency",
            "8",
        ],
        Some(&all),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary = String::from_utf8_lossy(&o.stderr);
    assert!(summary.contains("resuming:"), "{summary}");
    assert!(summary.contains("| verdict | count |"), "{summary}");
    let csv = std::fs::read_to_string(&out).expect("csv");
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("domain,mode,verdict,deliverable,error_class,mx_count,sni_only_count,dane,tlsrpt")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), domains.len(), "each domain once");
    let row = |d: &str| {
        rows.iter()
            .find(|r| r[0] == d)
            .unwrap_or_else(|| panic!("no row for {d}"))
    };
    assert_eq!(
        row("enforce.test")[1..],
        ["enforce", "info", "true", "", "2", "0", "false", "true"]
    );
    assert_eq!(row("sni-only.test")[6], "1");
    assert_eq!(row("no-starttls.test")[4], "starttls-missing");
    assert_eq!(row("redirect.test")[4], "fetch-error");
    assert_eq!(row("dane.test")[7], "true");
    assert_eq!(row("no-txt.test")[1], "none-published");

    // JSON lines to stdout.
    let o = mtasts(
        &lab,
        &["scan", "-", "--format", "jsonl"],
        Some("enforce.test\nmx-expired.test\n"),
    );
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .any(|r| r["domain"] == "mx-expired.test" && r["error_class"] == "cert-invalid")
    );
}

#[test]
fn scan_ctrl_c_keeps_partial_rows_and_prints_the_summary() {
    let lab = lab("ctrlc");
    let out = lab.dir.join("partial.jsonl");
    // Fast domains first, then ones that hang until the domain timeout.
    let list = "enforce.test\ntesting.test\nhang.test\nslow.test\ntxt-timeout.test\n";
    let mut child = Command::new(env!("CARGO_BIN_EXE_mtasts"))
        .args([
            "scan",
            "-",
            "--format",
            "jsonl",
            "--concurrency",
            "1",
            "--domain-timeout",
            "30",
        ])
        .arg("--output")
        .arg(&out)
        .args(["--nameserver", &lab.dns, "--timeout", "10"])
        .arg("--ca-file")
        .arg(lab.ca())
        .arg("--port-map")
        .arg(lab.ports())
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(list.as_bytes())
        .expect("write");
    let start = std::time::Instant::now();
    while std::fs::read_to_string(&out)
        .map(|s| s.lines().count())
        .unwrap_or(0)
        < 2
    {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "first rows never came"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
    let o = child.wait_with_output().expect("wait");
    assert_eq!(
        o.status.code(),
        Some(130),
        "interrupted, not success: {:?}",
        o.status
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("interrupted") && err.contains("| verdict | count |"),
        "{err}"
    );
    assert!(
        !err.contains("cancelled") && !err.contains("a check failed"),
        "{err}"
    );
    let rows = std::fs::read_to_string(&out).expect("rows");
    assert!(
        rows.lines().count() >= 2 && rows.lines().count() < 5,
        "{rows}"
    );
    assert!(rows.contains("\"enforce.test\""));
}

#[test]
fn scan_domain_timeout_cuts_a_hanging_domain_and_keeps_the_rest() {
    let lab = lab("domaintimeout");
    // Per-step timeouts of 20 s would let hang.test run far longer than its 1 s budget.
    let o = mtasts_timeout(
        &lab,
        &["scan", "-", "--format", "jsonl", "--domain-timeout", "1"],
        Some("hang.test\nenforce.test\n"),
        "20",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let row = |d: &str| {
        rows.iter()
            .find(|r| r["domain"] == d)
            .unwrap_or_else(|| panic!("no row for {d}: {rows:?}"))
    };
    assert_eq!(row("hang.test")["error_class"], "timeout", "{rows:?}");
    assert_eq!(row("enforce.test")["verdict"], "info", "{rows:?}");
}

#[test]
fn check_with_dns_unreachable_says_the_lookups_failed_and_exits_3() {
    // Nothing listens on the discard port: every query fails at once.
    let o = Command::new(env!("CARGO_BIN_EXE_mtasts"))
        .args([
            "check",
            "enforce.test",
            "--nameserver",
            "127.0.0.1:9",
            "--timeout",
            "1",
        ])
        .output()
        .expect("check");
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(3), "{text}");
    assert!(
        text.contains("TXT lookup of _mta-sts.enforce.test failed"),
        "{text}"
    );
    assert!(
        !text.contains("no MX records") && !text.contains("no TLS-RPT record"),
        "{text}"
    );
    assert!(text.contains("could not tell"), "{text}");
}

#[test]
fn scan_normalises_and_deduplicates_its_list_and_resume_skips_what_is_done() {
    let lab = lab("normalise");
    let dir = std::env::temp_dir().join(format!("mtasts-scan-norm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let out = dir.join("rows.jsonl");
    let out_s = out.to_str().expect("path");
    let list = "ENFORCE.test.\nenforce.test\n[enforce.test]:25\nno-txt.test\nnot a domain\n";
    let args = ["scan", "-", "--format", "jsonl", "--output", out_s];
    let o = mtasts(&lab, &args, Some(list));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows = |text: &str| -> Vec<serde_json::Value> {
        text.lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect()
    };
    let first = rows(&std::fs::read_to_string(&out).expect("rows"));
    let mut names: Vec<&str> = first.iter().filter_map(|r| r["domain"].as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["enforce.test", "no-txt.test", "not a domain"],
        "{first:?}"
    );
    let row = |d: &str| {
        first
            .iter()
            .find(|r| r["domain"] == d)
            .expect("row")
            .clone()
    };
    // The same types as `check --json`: a boolean, or null when not known.
    assert_eq!(row("enforce.test")["deliverable"], true);
    assert!(row("no-txt.test")["deliverable"].is_null());
    assert_eq!(row("not a domain")["mode"], "unknown");
    let summary = String::from_utf8_lossy(&o.stderr);
    assert!(
        !summary.contains("|  |"),
        "no row without a label: {summary}"
    );
    // Resuming with the list written differently: nothing is checked again.
    let args = [
        "scan", "-", "--format", "jsonl", "--output", out_s, "--resume",
    ];
    let o = mtasts(&lab, &args, Some(list));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let after = rows(&std::fs::read_to_string(&out).expect("rows"));
    assert_eq!(after.len(), first.len(), "no row added: {after:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn scan_rejects_an_unknown_format_as_a_usage_error() {
    let o = Command::new(env!("CARGO_BIN_EXE_mtasts"))
        .args(["scan", "-", "--format", "xml"])
        .output()
        .expect("scan");
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn check_colours_a_terminal_unless_no_color_is_set() {
    // `script` gives the command a terminal; util-linux is on every Debian machine.
    let lab = lab("nocolor");
    let cmd = format!(
        "{} check enforce.test --no-smtp --nameserver {} --ca-file {} --port-map {}",
        env!("CARGO_BIN_EXE_mtasts"),
        lab.dns,
        lab.ca().display(),
        lab.ports().display()
    );
    let on_terminal = |no_color: Option<&str>| {
        let mut c = Command::new("script");
        c.args(["-qec", &cmd, "/dev/null"]);
        match no_color {
            Some(v) => c.env("NO_COLOR", v),
            None => c.env_remove("NO_COLOR"),
        };
        String::from_utf8_lossy(&c.output().expect("script").stdout).into_owned()
    };
    assert!(on_terminal(None).contains('\u{1b}'), "colour on a terminal");
    assert!(
        !on_terminal(Some("1")).contains('\u{1b}'),
        "NO_COLOR=1: none"
    );
    assert!(
        on_terminal(Some("")).contains('\u{1b}'),
        "an empty NO_COLOR does not count"
    );
}
