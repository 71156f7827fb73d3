//! README.md's transcripts are true: every ```console block after a `<!-- readme-test -->`
//! line is run command by command (`$ ` lines, `sudo ` dropped: the test runs as root), with
//! the freshly built `mtasts` first on PATH, and its standard output must be the lines shown.
//! `<…>` in a shown line stands for one run of non-space characters that differ each run.
//! Needs root and the lab's tools (the transcripts use `mtasts lab run`).

#![allow(clippy::expect_used)] // a failed expectation is a failed test

mod common;

use std::path::Path;
use std::process::Command;

/// (command, expected output lines) of every tested block, in README order.
fn examples(readme: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if !line.starts_with("<!-- readme-test") {
            continue;
        }
        assert_eq!(
            lines.next(),
            Some("```console"),
            "a console block follows {line}"
        );
        for l in lines.by_ref() {
            if l == "```" {
                break;
            }
            match l.strip_prefix("$ ") {
                Some(cmd) => out.push((cmd.to_string(), Vec::new())),
                None => out
                    .last_mut()
                    .expect("a command before its output")
                    .1
                    .push(l.to_string()),
            }
        }
    }
    out
}

/// Whether `got` is `shown`, with each `<…>` matching one run of non-space characters.
fn line_matches(shown: &str, got: &str) -> bool {
    let mut parts = shown.split("<…>");
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = got.strip_prefix(first) else {
        return false;
    };
    for part in parts {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let after = &rest[end..];
        match after.strip_prefix(part) {
            Some(r) if end > 0 => rest = r,
            _ => return false,
        }
    }
    rest.is_empty()
}

#[test]
fn placeholders_match_one_word() {
    assert!(line_matches(
        "fetched:   <…>",
        "fetched:   2026-12-02T07:01:28Z"
    ));
    assert!(!line_matches("fetched:   <…>", "fetched:   "));
    assert!(!line_matches("fetched:   <…>", "fetched:   a b"));
    assert!(line_matches("a <…> c", "a b c"));
}

#[cfg_attr(
    not(mtasts_run_lab),
    ignore = "needs root, ip, dig, curl, openssl (MTASTS_TEST_SKIP opted out)"
)]
#[test]
fn every_tested_readme_transcript_is_what_the_commands_print() {
    common::require_root_with(&["ip"], "the README examples");
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .expect("README.md");
    let examples = examples(&readme);
    assert!(
        examples.len() >= 3,
        "found {} tested examples",
        examples.len()
    );
    let bin = Path::new(env!("CARGO_BIN_EXE_mtasts"))
        .parent()
        .expect("bin dir")
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for (cmd, shown) in examples {
        let run = cmd.strip_prefix("sudo ").unwrap_or(&cmd);
        let o = Command::new("bash")
            .args(["-c", run])
            .env("PATH", &path)
            .env("NO_COLOR", "1")
            .output()
            .expect("bash");
        let got = String::from_utf8_lossy(&o.stdout);
        let got: Vec<&str> = got.lines().collect();
        let same = got.len() == shown.len()
            && shown
                .iter()
                .zip(&got)
                .all(|(s, g)| line_matches(s.trim_end(), g.trim_end()));
        assert!(
            same,
            "README example `{cmd}` prints something else.\n--- README\n{}\n--- got (stderr: {})\n{}",
            shown.join("\n"),
            String::from_utf8_lossy(&o.stderr),
            got.join("\n")
        );
    }
}
