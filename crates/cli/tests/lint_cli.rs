//! `mtasts lint` as a user runs it: real process, stdin, files, exit codes, JSON.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn mtasts(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mtasts"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mtasts");
    let mut pipe = child.stdin.take().expect("stdin");
    pipe.write_all(stdin.unwrap_or("").as_bytes())
        .expect("write stdin");
    drop(pipe);
    child.wait_with_output().expect("wait")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const GOOD: &str =
    "version: STSv1\r\nmode: enforce\r\nmx: MAIL.example.com\r\nmax_age: 1209600\r\n";

#[test]
fn valid_policy_prints_normalised_form_and_exits_0() {
    let o = mtasts(&["lint", "policy", "-"], Some(GOOD));
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let out = stdout(&o);
    assert!(out.starts_with("policy: valid\n"), "{out}");
    assert!(out.contains("  mx: mail.example.com\n"), "{out}");
}

#[test]
fn invalid_policy_lists_every_problem_and_exits_1() {
    let bad = "version: STSv1\nmode: Enforce\nmx: *.*.example.com\nmax_age: 1 week\n";
    let o = mtasts(&["lint", "policy", "-", "--json"], Some(bad));
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["valid"], false);
    let errors = v["errors"].as_array().expect("errors");
    let got: Vec<(u64, &str, &str)> = errors
        .iter()
        .map(|e| {
            (
                e["line"].as_u64().unwrap_or(0),
                e["key"].as_str().unwrap_or(""),
                e["rule"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (2, "mode", "POL-03"),
            (3, "mx", "POL-07"),
            (4, "max_age", "POL-08")
        ]
    );
    assert!(v["normalized"].is_null());
}

#[test]
fn policy_from_file_with_advice_and_domain() {
    let dir = std::env::temp_dir().join(format!("mtasts-lint-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join("mta-sts.txt");
    std::fs::write(
        &path,
        "version: STSv1\nmode: testing\nmx: *.example.org\nmax_age: 600\n",
    )
    .expect("write");
    let path_str = path.to_str().expect("utf-8 path");
    let o = mtasts(
        &[
            "lint",
            "policy",
            path_str,
            "--domain",
            "example.org",
            "--json",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let rules: Vec<&str> = v["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter_map(|w| w["rule"].as_str())
        .collect();
    assert_eq!(
        rules,
        vec!["max-age-short", "testing-mode", "wildcard-without-base"]
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn oversized_policy_is_an_error() {
    let mut big = String::from(GOOD);
    while big.len() <= 65_536 {
        big.push_str("filler: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n");
    }
    let o = mtasts(&["lint", "policy", "-", "--json"], Some(&big));
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["errors"][0]["rule"], "FETCH-08");
}

#[test]
fn record_lint_joins_dig_strings_and_reports_rules() {
    let o = mtasts(&["lint", "record", "\"v=STSv1; id=ab\" \"cd\""], None);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("v=STSv1; id=abcd;"));
    let o = mtasts(
        &[
            "lint",
            "record",
            "v=STSv1; id=toolongtoolongtoolongtoolongtoolong",
            "--json",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["errors"][0]["rule"], "TXT-08");
    let o = mtasts(&["lint", "record", "v=STSv1"], None);
    assert_eq!(o.status.code(), Some(1), "no id and not a usable record");
}

#[test]
fn usage_and_io_errors_exit_2() {
    assert_eq!(mtasts(&["lint"], None).status.code(), Some(2));
    assert_eq!(mtasts(&["lint", "bogus"], None).status.code(), Some(2));
    let o = mtasts(&["lint", "policy", "/nonexistent/mta-sts.txt"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/mta-sts.txt"));
}

#[test]
fn lint_findings_carry_the_codes_check_reports() {
    // A tolerated deviation (trailing dot, POL-09) and advice, as `check` names them.
    let o = mtasts(
        &["lint", "policy", "-", "--json"],
        Some("version: STSv1\nmode: enforce\nmx: mx.example.org.\nmax_age: 600\n"),
    );
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let pairs: Vec<(String, String)> = v["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .map(|w| (w["rule"].to_string(), w["code"].to_string()))
        .collect();
    assert!(
        pairs.contains(&("\"POL-09\"".into(), "\"policy-tolerated\"".into())),
        "{pairs:?}"
    );
    assert!(
        pairs.contains(&("\"max-age-short\"".into(), "\"max-age-short\"".into())),
        "{pairs:?}"
    );
    let o = mtasts(
        &["lint", "policy", "-", "--json"],
        Some("version: STSv1\nmode: Enforce\nmax_age: 600\n"),
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert!(
        v["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .all(|e| e["code"] == "policy-invalid"),
        "{v}"
    );
}

#[test]
fn lint_advice_codes_max_age_zero_broad_wildcard_duplicate_mx() {
    let codes = |policy: &str| -> Vec<String> {
        let o = mtasts(&["lint", "policy", "-", "--json"], Some(policy));
        assert_eq!(o.status.code(), Some(0), "valid, with advice: {policy}");
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        v["warnings"]
            .as_array()
            .expect("warnings")
            .iter()
            .filter_map(|w| w["code"].as_str().map(str::to_string))
            .collect()
    };
    let clean = codes("version: STSv1\nmode: enforce\nmx: mx.example.org\nmax_age: 604800\n");
    assert!(clean.is_empty(), "{clean:?}");
    let zero = codes("version: STSv1\nmode: enforce\nmx: mx.example.org\nmax_age: 0\n");
    assert_eq!(zero, ["max-age-zero"]);
    // A wildcard over a top-level domain and over a public second-level one (`co.uk`).
    for broad in ["*.org", "*.co.uk"] {
        let got = codes(&format!(
            "version: STSv1\nmode: enforce\nmx: {broad}\nmax_age: 604800\n"
        ));
        assert_eq!(got, ["broad-wildcard"], "{broad}");
    }
    let dup = codes(
        "version: STSv1\nmode: enforce\nmx: mx.example.org\nmx: MX.example.org\nmax_age: 604800\n",
    );
    assert_eq!(dup, ["duplicate-mx"]);
}

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    use std::os::unix::process::ExitStatusExt;
    // The reader is gone before the command writes: `mtasts … | true`.
    for args in [&["lint", "policy", "--json", "-"][..], &["lab", "list"][..]] {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_mtasts"))
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(writer)
            .output()
            .expect("run");
        assert!(
            o.stderr.is_empty(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(
            o.status.signal(),
            Some(13),
            "{args:?}: ended by SIGPIPE, like other tools"
        );
    }
}

#[test]
fn text_output_names_each_rule_once() {
    let o = mtasts(
        &["lint", "policy", "-"],
        Some("version: STSv1\nmode: Enforce\nmx: mx.example.org\nmax_age: 86400\n"),
    );
    let text = stdout(&o);
    assert_eq!(text.matches("POL-03").count(), 1, "{text}");
}
