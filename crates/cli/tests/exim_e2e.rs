//! Real Exim (Debian's 4.96, unpacked by `.ci/exim.sh`) enforcing MTA-STS through `mtasts
//! daemon` and the shipped snippets in `dist/exim/`, inside the lab's network namespace. The
//! scenario is `tests/exim/e2e.sh`; this test checks what Exim logged and what the lab's SMTP
//! servers saw. Needs root (or, with `MTASTS_TEST_SKIP=exim`, is reported as ignored).

#![allow(clippy::expect_used)] // a failed expectation is a failed test

mod common;

use std::path::{Path, PathBuf};

fn exim() -> PathBuf {
    std::env::var_os("MTASTS_EXIM_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/exim-root"))
        .join("usr/sbin/exim4")
}

fn scenario() -> String {
    let exe = env!("CARGO_BIN_EXE_mtasts");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = root.join("tests/exim/e2e.sh");
    let dist = root.join("../../dist/exim");
    let name = format!("mtexim-{}", std::process::id());
    assert!(
        exim().exists(),
        "no Exim at {}: run `bash .ci/exim.sh` as root",
        exim().display()
    );
    common::run_in_lab(
        &name,
        &script,
        &[
            exe.as_ref(),
            exim().as_os_str(),
            dist.canonicalize().expect("dist/exim").as_os_str(),
        ],
    )
}

fn has(text: &str, line: &str) -> bool {
    text.lines().any(|l| l == line)
}

fn mainlog<'a>(text: &'a str, needle: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.starts_with("MAINLOG ") && l.contains(needle))
        .collect()
}

#[test]
#[cfg_attr(
    not(mtasts_run_exim),
    ignore = "needs root and Debian's Exim unpacked (bash .ci/exim.sh)"
)]
fn exim_enforces_mta_sts_with_sni_through_the_daemon() {
    let text = scenario();
    // The daemon's answers: the same decisions Postfix gets.
    assert!(
        has(
            &text,
            "ANSWER sni-only.test mode=\"enforce\" domain=\"sni-only.test\" hosts=\"mx1.sni-only.test\" id=\"20261125\" reason=\"MTA-STS policy enforced\""
        ),
        "{text}"
    );
    // `exim -bt` shows the router, the transport and only the allowed host.
    let route = text
        .lines()
        .find(|l| l.starts_with("ROUTE "))
        .expect("ROUTE line");
    assert!(
        route.contains("router = mtasts_enforce")
            && route.contains("transport = mtasts_enforce_smtp")
            && route.contains("mx2.mx-partial.test")
            && !route.contains("rogue.mx-partial.test"),
        "{route}"
    );
    // 1. Enforce, the right certificate only with SNI: delivered, verified, and the MX saw
    //    SNI = its name.
    assert!(has(&text, "STATUS sni-only.test delivered"), "{text}");
    assert!(
        mainlog(
            &text,
            "=> user@sni-only.test R=mtasts_enforce T=mtasts_enforce_smtp"
        )
        .iter()
        .any(|l| l.contains(" CV=yes ")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("SESSION host=mx1.sni-only.test ")
                && l.contains(" sni=mx1.sni-only.test ")
                && l.ends_with(" delivered=1")),
        "{text}"
    );
    // 2. Enforce, wrong certificate: deferred; delivered once the world is fixed.
    assert!(has(&text, "STATUS mx-wrong-name.test deferred"), "{text}");
    assert!(
        !mainlog(&text, "== user@mx-wrong-name.test").is_empty()
            && mainlog(&text, "== user@mx-wrong-name.test")[0]
                .contains("certificate verification failed"),
        "{text}"
    );
    assert!(has(&text, "FIXED mx-wrong-name.test delivered"), "{text}");
    // 3. Enforce: only the MX the policy allows; with none allowed, deferred until the policy
    //    names the MX the domain uses.
    assert!(has(&text, "STATUS mx-partial.test delivered"), "{text}");
    assert!(
        mainlog(&text, "=> user@mx-partial.test")
            .iter()
            .any(|l| l.contains("H=mx2.mx-partial.test ")),
        "{text}"
    );
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("SESSION host=rogue.mx-partial.test")),
        "the MX not in the policy was contacted:\n{text}"
    );
    assert!(has(&text, "STATUS mx-mismatch.test deferred"), "{text}");
    assert!(
        mainlog(&text, "== user@mx-mismatch.test R=mtasts_defer")
            .iter()
            .any(|l| l.contains("no MX host of mx-mismatch.test matches the enforced policy")),
        "{text}"
    );
    assert!(has(&text, "FIXED mx-mismatch.test delivered"), "{text}");
    // 4. Testing policy, bad certificate: delivered as usual (unverified).
    assert!(has(&text, "STATUS testing.test delivered"), "{text}");
    assert!(
        has(&text, "STATUS testing-bad-cert.test delivered"),
        "{text}"
    );
    assert!(
        mainlog(
            &text,
            "=> user@testing-bad-cert.test R=mtasts_opportunistic T=mtasts_opportunistic_smtp"
        )
        .iter()
        .any(|l| l.contains(" CV=no ")),
        "{text}"
    );
    // 5. No policy: delivered as before (opportunistic TLS), with SNI.
    assert!(has(&text, "STATUS no-txt.test delivered"), "{text}");
    assert!(
        !mainlog(
            &text,
            "=> user@no-txt.test R=mtasts_opportunistic T=mtasts_opportunistic_smtp"
        )
        .is_empty(),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("SESSION host=mx1.no-txt.test ")
                && l.contains(" sni=mx1.no-txt.test ")),
        "{text}"
    );
    // 6. DANE, over the lab's signed zones and the namespace's validating unbound: Exim's own
    // DANE verified DANE-EE and DANE-TA, refused a TLSA matching nothing; bogus data (a broken
    // TLSA signature, expired signatures) deferred by the daemon; an unsigned zone's TLSA and
    // an authenticated denial (NSEC3) left to MTA-STS or opportunistic TLS.
    for domain in ["dane.test", "dane-ta.test", "dane-cname.test"] {
        assert!(has(&text, &format!("STATUS {domain} delivered")), "{text}");
        assert!(
            mainlog(
                &text,
                &format!("=> user@{domain} R=mtasts_dane T=mtasts_dane_smtp")
            )
            .iter()
            .any(|l| l.contains(" CV=dane ")),
            "{domain}: {text}"
        );
    }
    assert!(has(&text, "STATUS dane-wrong.test deferred"), "{text}");
    // Only unusable TLSA (dane="encrypt"): delivered over TLS, not authenticated.
    assert!(
        mainlog(
            &text,
            "=> user@dane-unusable.test R=mtasts_dane T=mtasts_dane_smtp"
        )
        .iter()
        .any(|l| l.contains(" X=TLS") && l.contains(" CV=no ")),
        "{text}"
    );
    // DANE tried per host (dane="try"): the host without TLSA gets the mail over TLS; the
    // host whose TLSA is bogus is skipped and the other, verified by DANE, gets it.
    assert!(
        !mainlog(
            &text,
            "=> user@dane-partial.test R=mtasts_dane T=mtasts_dane_smtp H=mx1.dane-partial.test"
        )
        .is_empty(),
        "{text}"
    );
    assert!(
        mainlog(&text, "=> user@dane-partial-bogus.test R=mtasts_dane T=mtasts_dane_smtp H=mx2.dane-partial-bogus.test")
            .iter()
            .any(|l| l.contains(" CV=dane ")),
        "{text}"
    );
    assert!(
        !mainlog(
            &text,
            "DANE attempt failed; TLS connection to mx1.dane-wrong.test"
        )
        .is_empty(),
        "{text}"
    );
    for (domain, why) in [
        (
            "dane-bogus.test",
            "TLSA of mx1.dane-bogus.test failed DNSSEC validation",
        ),
        ("dane-expired.test", "MX lookup failed DNSSEC validation"),
    ] {
        assert!(has(&text, &format!("STATUS {domain} deferred")), "{text}");
        assert!(
            !mainlog(
                &text,
                &format!(
                    "== user@{domain} R=mtasts_defer defer (-1): defer: DANE check failed: {why}"
                )
            )
            .is_empty(),
            "{domain}: {text}"
        );
    }
    assert!(
        !mainlog(&text, "=> user@dane-unsigned.test R=mtasts_opportunistic").is_empty(),
        "{text}"
    );
    assert!(
        !mainlog(&text, "=> user@dane-notlsa-nsec3.test R=mtasts_enforce").is_empty(),
        "{text}"
    );
    // 7. mtasts down: the mail waits (documented: defer), and goes once it is back.
    assert!(has(&text, "DOWN enforce.test deferred"), "{text}");
    assert!(
        !mainlog(
            &text,
            "MTA-STS: mtasts is not answering at inet:127.0.0.1:8462"
        )
        .is_empty(),
        "{text}"
    );
    assert!(has(&text, "UP enforce.test delivered"), "{text}");
    // Exim's delivery outcomes reached the TLS-RPT collector through event_action: each
    // delivery a session of its policy type, the certificate failure a failed session.
    for line in [
        "TLSRPT sni-only.test sts ok=1 failed=0",
        "TLSRPT no-txt.test no-policy-found ok=1 failed=0",
        // Testing: the certificate is checked for the report, the mail delivered either way.
        "TLSRPT testing.test sts ok=1 failed=0",
        "TLSRPT testing-bad-cert.test sts ok=0 failed=1",
        "TLSRPT-FAILURE testing-bad-cert.test certificate-expired 1",
        "TLSRPT dane.test tlsa ok=1 failed=0",
        "TLSRPT enforce.test sts ok=1 failed=0",
    ] {
        assert!(has(&text, line), "{line} missing:\n{text}");
    }
    // Each attempt refused for its certificate is one failed session (how many attempts the
    // queue runner made before the fix depends on timing: count them in Exim's log).
    let attempts = mainlog(
        &text,
        "== user@mx-wrong-name.test R=mtasts_enforce T=mtasts_enforce_smtp defer (-37)",
    )
    .len();
    assert!(attempts >= 1, "{text}");
    for line in [
        format!("TLSRPT mx-wrong-name.test sts ok=1 failed={attempts}"),
        format!("TLSRPT-FAILURE mx-wrong-name.test certificate-not-trusted {attempts}"),
    ] {
        assert!(has(&text, &line), "{line} missing:\n{text}");
    }
    // Each attempt deferred for want of an allowed MX is one failed session, with the
    // checklist's reason code.
    let attempts = mainlog(&text, "== user@mx-mismatch.test R=mtasts_defer").len();
    assert!(attempts >= 1, "{text}");
    assert!(
        has(
            &text,
            &format!("TLSRPT-FAILURE mx-mismatch.test validation-failure {attempts}")
        ),
        "{attempts} deferrals:\n{text}"
    );
    // Remembered TLS (the exim zone's remember_tls = enforce): a preloaded domain without
    // MTA-STS answers mode="encrypt"; once its MX stops offering STARTTLS, the mtasts_encrypt
    // router and transport defer the message instead of sending it in plaintext.
    assert!(
        text.lines()
            .any(|l| l.starts_with("REMEMBERED-ANSWER mode=\"encrypt\" domain=\"no-txt.test\"")),
        "{text}"
    );
    assert!(
        has(&text, "REMEMBERED-STRIPPED no-txt.test deferred"),
        "{text}"
    );
    assert!(
        mainlog(
            &text,
            "== user@no-txt.test R=mtasts_encrypt T=mtasts_encrypt_smtp defer"
        )
        .iter()
        .any(|l| l.contains("a TLS session is required, but the server did not offer TLS support")),
        "{text}"
    );
}
