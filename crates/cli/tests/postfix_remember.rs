//! Remembered TLS proven with real Postfix (Debian's 3.7): deliveries over STARTTLS teach
//! `mtasts remembered learn` from Postfix's log; the lab then strips STARTTLS; with
//! `remember_tls = enforce` Postfix defers the next message ("TLS is required, but was not
//! offered") until the domain is forgotten, with `report` it delivers and the learner logs the
//! possible downgrade. The scenario is `tests/postfix/remember.sh`. Needs root and Postfix (or,
//! with `MTASTS_TEST_SKIP=postfix`, is reported as ignored).

#![allow(clippy::expect_used)] // a failed expectation is a failed test

mod common;

use std::path::Path;

fn scenario(mode: &str) -> String {
    common::require_root_with(
        &["ip", "postfix", "postmap", "postqueue", "python3"],
        "the Postfix remembered-TLS test",
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/postfix/remember.sh");
    let name = format!("mtrem-{mode}-{}", std::process::id());
    common::run_in_lab(
        &name,
        &script,
        &[env!("CARGO_BIN_EXE_mtasts").as_ref(), mode.as_ref()],
    )
}

fn has(text: &str, line: &str) -> bool {
    text.lines().any(|l| l == line)
}

fn learned(text: &str) {
    assert!(has(text, "LEARNED no-txt.test 3"), "{text}");
    assert!(
        text.contains("LIST no-txt.test  remembered until"),
        "{text}"
    );
    // The follower read Postfix's own lines: three TLS sessions before the domain was remembered.
    let tls_lines = text
        .lines()
        .filter(|l| {
            l.starts_with("MAILLOG ") && l.contains("TLS connection established to mx1.no-txt.test")
        })
        .count();
    assert_eq!(tls_lines, 3, "{text}");
    assert!(
        text.contains("domain now remembered domain=no-txt.test"),
        "{text}"
    );
}

#[test]
#[cfg_attr(
    not(mtasts_run_postfix),
    ignore = "needs root, ip, postfix, python3 (MTASTS_TEST_SKIP opted out)"
)]
fn enforce_defers_a_stripped_delivery_until_forgotten() {
    let text = scenario("enforce");
    learned(&text);
    assert!(has(&text, "POSTMAP encrypt servername=hostname"), "{text}");
    assert!(has(&text, "STRIPPED deferred"), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("MAILLOG ")
            && l.contains(
                "status=deferred (TLS is required, but was not offered by host mx1.no-txt.test"
            )),
        "{text}"
    );
    assert!(has(&text, "FORGET forgot no-txt.test"), "{text}");
    assert!(has(&text, "FORGOTTEN sent"), "{text}");
}

#[test]
#[cfg_attr(
    not(mtasts_run_postfix),
    ignore = "needs root, ip, postfix, python3 (MTASTS_TEST_SKIP opted out)"
)]
fn report_delivers_and_logs_the_possible_downgrade() {
    let text = scenario("report");
    learned(&text);
    assert!(has(&text, "POSTMAP notfound"), "{text}");
    assert!(has(&text, "STRIPPED sent"), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("LEARNER ")
            && l.contains("possible downgrade")
            && l.contains("domain=no-txt.test")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("DAEMON ") && l.contains("TLS would be required")),
        "{text}"
    );
}
