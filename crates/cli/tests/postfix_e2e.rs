//! Real Postfix (Debian's package) enforcing MTA-STS through `mtasts daemon`, inside the lab's
//! network namespace. The scenario is `tests/postfix/e2e.sh`; this test checks what Postfix
//! logged and what the lab's SMTP servers saw. Needs root, iproute2, postfix and python3 (CI
//! installs them). Missing, it fails saying so, or with `MTASTS_TEST_SKIP=postfix` is
//! reported as ignored.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

mod common;

use std::path::Path;
use std::process::Command;

fn require() {
    common::require_root_with(
        &["ip", "postfix", "postmap", "postqueue", "python3"],
        "the Postfix end-to-end test",
    )
}

#[cfg_attr(
    not(mtasts_run_postfix),
    ignore = "needs root, ip, postfix, python3 (MTASTS_TEST_SKIP opted out)"
)]
#[test]
fn postfix_enforces_mta_sts_through_the_daemon() {
    require();
    let exe = env!("CARGO_BIN_EXE_mtasts");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/postfix/e2e.sh");
    let name = format!("mtpfx-{}", std::process::id());
    let out = Command::new(exe)
        .args(["lab", "run", "--name", &name, "--", "bash"])
        .arg(&script)
        .arg(exe)
        .output()
        .expect("run the scenario");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "scenario failed:\n{text}");
    let has = |line: &str| text.lines().any(|l| l == line);

    // 4. postmap sees what Postfix will see.
    assert!(
        has("POSTMAP secure match=mx1.enforce.test:mx2.enforce.test servername=hostname"),
        "{text}"
    );
    // 1. Enforce, certificate right only with SNI: delivered, and the MX saw SNI = its name.
    assert!(has("STATUS sni-only.test sent"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("SESSION host=mx1.sni-only.test ")
                && l.contains(" sni=mx1.sni-only.test ")
                && l.ends_with(" delivered=1")),
        "{text}"
    );
    assert!(
        text.contains("Verified TLS connection established to mx1.sni-only.test"),
        "{text}"
    );
    // 2. Enforce, wrong certificate / MX not in the policy: deferred, then delivered once fixed.
    assert!(has("STATUS mx-wrong-name.test deferred"), "{text}");
    assert!(has("STATUS mx-mismatch.test deferred"), "{text}");
    assert!(has("FIXED mx-wrong-name.test sent"), "{text}");
    assert!(has("FIXED mx-mismatch.test sent"), "{text}");
    // 3. Testing policy with a bad certificate: delivered (no enforcement).
    assert!(has("STATUS testing-bad-cert.test sent"), "{text}");
    assert!(
        !Path::new("/run/netns").join(&name).exists(),
        "lab cleaned up"
    );
}
