//! Real Postfix (Debian's package) enforcing MTA-STS through `mtasts daemon`, inside the lab's
//! network namespace. The scenario is `tests/postfix/e2e.sh`; this test checks what Postfix
//! logged and what the lab's SMTP servers saw. Needs root, iproute2, postfix and python3 (CI
//! installs them). Missing, it fails saying so, or with `MTASTS_TEST_SKIP=postfix` is
//! reported as ignored.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

mod common;

use std::path::Path;

fn require() {
    common::require_root_with(
        &["ip", "postfix", "postmap", "postqueue", "python3"],
        "the Postfix end-to-end test",
    )
}

/// Runs the scenario with Postfix's `smtp_dns_support_level` as `mode` says; its output.
fn scenario(mode: &str) -> String {
    require();
    let exe = env!("CARGO_BIN_EXE_mtasts");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/postfix/e2e.sh");
    let name = format!("mtpfx-{mode}-{}", std::process::id());
    common::run_in_lab(&name, &script, &[exe.as_ref(), mode.as_ref()])
}

fn has(text: &str, line: &str) -> bool {
    text.lines().any(|l| l == line)
}

/// What holds whatever Postfix's DNSSEC setting: MTA-STS enforcement with SNI.
fn assert_mta_sts_outcomes(text: &str) {
    // 4. postmap sees what Postfix will see.
    assert!(
        has(
            text,
            "POSTMAP secure match=mx1.enforce.test:mx2.enforce.test servername=hostname"
        ),
        "{text}"
    );
    // 1. Enforce, certificate right only with SNI: delivered, and the MX saw SNI = its name.
    assert!(has(text, "STATUS sni-only.test sent"), "{text}");
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
    assert!(has(text, "STATUS mx-wrong-name.test deferred"), "{text}");
    assert!(has(text, "STATUS mx-mismatch.test deferred"), "{text}");
    assert!(has(text, "FIXED mx-wrong-name.test sent"), "{text}");
    assert!(has(text, "FIXED mx-mismatch.test sent"), "{text}");
    // 3. Testing policy with a bad certificate: delivered (no enforcement).
    assert!(has(text, "STATUS testing-bad-cert.test sent"), "{text}");
    // 5. Conditional trust: the lab's second CA is configured for private-ca.test alone. Its
    // policy is fetched, the answer names the anchor file, Postfix verifies the MX with it.
    assert!(
        text.lines().any(|l| l
            .starts_with("POSTMAP-TRUST secure match=mx1.private-ca.test servername=hostname tafile=/tmp/mtasts-postfix.")
            && l.contains("/private-ca.pem")),
        "{text}"
    );
    assert!(has(text, "STATUS private-ca.test sent"), "{text}");
    assert!(
        text.contains("Verified TLS connection established to mx1.private-ca.test"),
        "{text}"
    );
    // The CA did not become global: the neighbour it also certifies gets no policy from
    // mtasts (its policy host is refused), and Postfix does not verify its MX either...
    assert!(has(text, "POSTMAP-TRUST-OTHER notfound"), "{text}");
    assert!(has(text, "STATUS private-ca-other.test sent"), "{text}");
    assert!(
        text.contains("Untrusted TLS connection established to mx1.private-ca-other.test"),
        "{text}"
    );
    // ...and an enforced domain whose MX that CA certifies is deferred, as before.
    assert!(has(text, "STATUS mx-untrusted.test deferred"), "{text}");
}

#[cfg_attr(
    not(mtasts_run_postfix),
    ignore = "needs root, ip, postfix, python3 (MTASTS_TEST_SKIP opted out)"
)]
#[test]
fn postfix_with_dnssec_lookups_enforces_dane_and_mta_sts_through_the_daemon() {
    let text = scenario("dnssec");
    assert!(
        has(&text, "DNSSEC yes"),
        "the daemon read smtp_dns_support_level: {text}"
    );
    assert_mta_sts_outcomes(&text);
    // DANE takes precedence: the daemon answers dane-only, Postfix verifies the TLSA records.
    // Both see the lab's signed zones through the one validating unbound of the namespace.
    assert!(has(&text, "POSTMAP-DANE dane-only"), "{text}");
    // (scenario, the daemon's answer, what Postfix then did)
    let dane: [(&str, &str, &str); 15] = [
        // Secure, usable TLSA: DANE-EE and DANE-TA.
        ("dane.test", "dane-only", "sent"),
        ("dane-ta.test", "dane-only", "sent"),
        // The MX host a CNAME, TLSA only at its target (RFC 7672 §2.2.3): DANE, not the
        // MTA-STS policy (which matches no MX and would defer).
        ("dane-cname.test", "dane-only", "sent"),
        // TLSA matching no certificate: deferred by Postfix's own DANE check, never downgraded.
        ("dane-wrong.test", "dane-only", "deferred"),
        ("dane-sts.test", "dane-only", "sent"),
        // Only unusable TLSA: mandatory TLS without authentication (RFC 7672 §3.1).
        ("dane-unusable.test", "dane", "sent"),
        // DANE for the host with TLSA only: the other gets opportunistic TLS (and the mail);
        // a host whose TLSA is bogus is skipped, the other delivered to by DANE (§2.1.1).
        ("dane-partial.test", "dane", "sent"),
        ("dane-partial-bogus.test", "dane", "sent"),
        // Bogus (broken signature, expired signatures, DS matching no key): TEMP, deferred.
        (
            "dane-bogus.test",
            "TEMP DANE check for dane-bogus.test: TLSA of mx1.dane-bogus.test failed DNSSEC validation",
            "deferred",
        ),
        (
            "dane-expired.test",
            "TEMP DANE check for dane-expired.test: MX lookup failed DNSSEC validation",
            "deferred",
        ),
        (
            "dane-ds-mismatch.test",
            "TEMP DANE check for dane-ds-mismatch.test: MX lookup failed DNSSEC validation",
            "deferred",
        ),
        // TLSA in an unsigned delegation under the signed test.: no DANE, no policy.
        ("dane-unsigned.test", "NOTFOUND", "sent"),
        // Signed MX, host in an unsigned zone; authenticated denial of TLSA (NSEC, NSEC3):
        // no DANE, the MTA-STS policy decides.
        (
            "dane-offsite.test",
            "secure match=mx1.offsite-hosting.test servername=hostname",
            "sent",
        ),
        (
            "dane-notlsa.test",
            "secure match=mx1.dane-notlsa.test servername=hostname",
            "sent",
        ),
        (
            "dane-notlsa-nsec3.test",
            "secure match=mx1.dane-notlsa-nsec3.test servername=hostname",
            "sent",
        ),
    ];
    for (domain, answer, status) in dane {
        assert!(
            has(&text, &format!("POSTMAP-OF {domain} {answer}")),
            "{domain}: {answer}\n{text}"
        );
        assert!(
            has(&text, &format!("STATUS {domain} {status}")),
            "{domain}: {status}\n{text}"
        );
    }
    assert!(
        text.contains("to=<user@dane-partial-bogus.test>, relay=mx2.dane-partial-bogus.test"),
        "{text}"
    );
    for host in [
        "mx1.dane.test",
        "mx1.dane-ta.test",
        "mx1.offsite-hosting.test",
        "mx2.dane-partial-bogus.test",
    ] {
        assert!(
            text.contains(&format!("Verified TLS connection established to {host}")),
            "{host}: {text}"
        );
    }
    assert!(
        text.contains("mx1.dane-wrong.test[127.") && text.contains("no matching DANE TLSA records"),
        "{text}"
    );
    // Postfix's own lookups failed validation too: the MX of a bogus zone is not found.
    assert!(
        text.contains("Name service error for name=dane-expired.test type=MX"),
        "{text}"
    );
    // Unusable TLSA: encrypted, not authenticated.
    assert!(
        text.contains("Trusted TLS connection established to mx1.dane-unusable.test"),
        "{text}"
    );
}

#[cfg_attr(
    not(mtasts_run_postfix),
    ignore = "needs root, ip, postfix, python3 (MTASTS_TEST_SKIP opted out)"
)]
#[test]
fn postfix_without_dnssec_lookups_gets_mta_sts_answers_and_defers_nothing_for_dane() {
    // Debian's default: Postfix cannot apply `dane`/`dane-only` (it would defer the mail with
    // "dane-only configured with dnssec lookups disabled"), so the daemon answers as without DANE.
    let text = scenario("default");
    assert!(has(&text, "DNSSEC no"), "{text}");
    assert_mta_sts_outcomes(&text);
    assert!(
        text.lines()
            .any(|l| l.starts_with("POSTMAP-DANE secure match=")),
        "the MTA-STS answer for a DANE domain: {text}"
    );
    // Without DNSSEC lookups Postfix cannot see TLSA records: the DANE-only domains get
    // opportunistic TLS (what this Postfix does without mtasts too), and the one with an
    // MTA-STS policy gets MTA-STS, which its unmatched MX fails: deferred, not downgraded.
    assert!(has(&text, "STATUS dane.test sent"), "{text}");
    assert!(has(&text, "STATUS dane-wrong.test sent"), "{text}");
    assert!(has(&text, "STATUS dane-sts.test deferred"), "{text}");
    assert!(!text.contains("dnssec lookups disabled"), "{text}");
    // The resolver still validates: data of a bogus zone is not given out to anyone.
    assert!(has(&text, "STATUS dane-expired.test deferred"), "{text}");
    // A broken TLSA signature is not seen without DNSSEC lookups; MTA-STS decides.
    assert!(
        has(
            &text,
            "POSTMAP-OF dane-bogus.test secure match=mx1.dane-bogus.test servername=hostname"
        ),
        "{text}"
    );
}
