//! `mtasts doctor` against a real private Postfix configuration (`postconf -c`) in its right
//! and broken forms, a running daemon, the shipped Exim snippets and serve's files, inside
//! the lab's namespace. The scenario is `tests/doctor/doctor.sh`; this test checks each
//! case's exit status and findings. Needs root and Postfix (or, with `MTASTS_TEST_SKIP`, is
//! reported as ignored).

#![allow(clippy::expect_used)] // a failed expectation is a failed test

mod common;

use std::collections::BTreeMap;
use std::path::Path;

/// Each case's exit status and output, by name.
fn cases() -> BTreeMap<String, (i32, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dist = root
        .join("../../dist/exim")
        .canonicalize()
        .expect("dist/exim");
    let text = common::run_in_lab(
        &format!("mtdoc-{}", std::process::id()),
        &root.join("tests/doctor/doctor.sh"),
        &[env!("CARGO_BIN_EXE_mtasts").as_ref(), dist.as_os_str()],
    );
    let mut out = BTreeMap::new();
    let mut current: Option<(String, i32, String)> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("== ") {
            if let Some((n, s, t)) = current.take() {
                out.insert(n, (s, t));
            }
            let (name, status) = rest.split_once(" exit=").expect("case header");
            current = Some((name.into(), status.parse().expect("status"), String::new()));
        } else if let Some((_, _, t)) = current.as_mut() {
            t.push_str(line);
            t.push('\n');
        }
    }
    if let Some((n, s, t)) = current {
        out.insert(n, (s, t));
    }
    out
}

/// The `(level, code)` of each finding line.
fn findings(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix('[')?;
            let (level, rest) = rest.split_once(']')?;
            let mut words = rest.split_whitespace();
            let _area = words.next()?;
            Some((level.trim().to_string(), words.next()?.to_string()))
        })
        .collect()
}

fn has(text: &str, level: &str, code: &str) -> bool {
    findings(text).iter().any(|(l, c)| l == level && c == code)
}

#[test]
#[cfg_attr(
    not(mtasts_run_postfix),
    ignore = "needs root, ip, postfix, python3 (MTASTS_TEST_SKIP opted out)"
)]
fn doctor_tells_right_and_broken_setups_apart() {
    let cases = cases();
    let case = |name: &str| {
        cases
            .get(name)
            .unwrap_or_else(|| panic!("no case {name}: {cases:?}"))
    };

    // Right: every finding ok or info, exit 0; the probes really reached the daemon, the CA
    // file and the lab's validating resolver.
    let (status, text) = case("right");
    assert_eq!(*status, 0, "{text}");
    for code in [
        "listening",
        "cache",
        "validating",
        "policy-map",
        "trust-anchors",
        "dnssec-lookups",
        "snippets",
        "answers",
    ] {
        assert!(has(text, "ok", code), "right lacks ok {code}:\n{text}");
    }
    assert!(
        findings(text).iter().all(|(l, _)| l == "ok" || l == "info"),
        "{text}"
    );
    let (status, json) = case("right-json");
    assert_eq!(*status, 0);
    let v: serde_json::Value = serde_json::from_str(json).expect("doctor --json");
    assert_eq!(v["incomplete"], false);
    assert!(
        v["findings"]
            .as_array()
            .is_some_and(|a| a.iter().any(|f| f["code"] == "policy-map"))
    );

    // Broken: the map's port has no daemon, no CA, no DNSSEC lookups.
    let (status, text) = case("broken");
    assert_eq!(*status, 2, "{text}");
    assert!(has(text, "ERROR", "policy-map-unreachable"), "{text}");
    assert!(has(text, "ERROR", "no-trust-anchors"), "{text}");
    assert!(has(text, "warn", "no-dnssec-lookups"), "{text}");
    assert!(text.contains("fix: smtp_tls_CAfile = /etc/ssl/certs/ca-certificates.crt"));

    // A resolver that answers without the AD bit: warnings only, exit 1.
    let (status, text) = case("not-validating");
    assert_eq!(*status, 1, "{text}");
    assert!(
        has(text, "warn", "not-validating") && has(text, "warn", "resolver-not-validating"),
        "{text}"
    );

    // The daemon's DANE resolver is not the MTA's (and does not validate): both said.
    let (status, text) = case("other-resolver");
    assert_eq!(*status, 1, "{text}");
    assert!(
        has(text, "warn", "dane-resolver-differs") && has(text, "warn", "not-validating"),
        "{text}"
    );
    assert!(
        text.contains("the daemon asks 127.0.0.1:53 for DANE, the MTA asks 127.0.0.53:53"),
        "{text}"
    );
    let (status, text) = case("right");
    assert!(!has(text, "warn", "dane-resolver-differs"), "{text}");
    assert_eq!(*status, 0);

    let (status, text) = case("empty-ca");
    assert_eq!(*status, 2);
    assert!(has(text, "ERROR", "ca-file-empty"), "{text}");
    let (status, text) = case("no-map");
    assert_eq!(*status, 2);
    assert!(has(text, "ERROR", "no-policy-map"), "{text}");

    // Postfix 3.7 and TLSRPT: attributes forced in a zone, a collector Postfix cannot feed.
    let (status, text) = case("tlsrpt-old");
    assert_eq!(*status, 1, "{text}");
    assert!(
        has(text, "warn", "tlsrpt-attributes-too-new") && has(text, "info", "tlsrpt-not-supported"),
        "{text}"
    );

    // Exim: the DNS router first; the daemon not answering Exim.
    let (status, text) = case("exim-misordered");
    assert_eq!(*status, 2);
    assert!(has(text, "ERROR", "router-order"), "{text}");
    let (status, text) = case("exim-no-listen");
    assert_eq!(*status, 2);
    assert!(has(text, "ERROR", "daemon-not-answering-exim"), "{text}");

    // Remembered TLS for Exim: the shipped snippets carry the encrypt route; older ones lack it.
    let (status, text) = case("exim-remember");
    assert_eq!(*status, 0, "{text}");
    assert!(has(text, "ok", "encrypt-route"), "{text}");
    let (status, text) = case("exim-remember-old");
    assert_eq!(*status, 2, "{text}");
    assert!(has(text, "ERROR", "encrypt-route-missing"), "{text}");

    // serve: the lab publishes another id than the policy served; a 5-day certificate.
    let (status, text) = case("serve");
    assert_eq!(*status, 2);
    assert!(
        has(text, "ERROR", "txt-id-stale") && has(text, "warn", "cert-expiring"),
        "{text}"
    );
}
