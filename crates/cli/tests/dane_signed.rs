//! DANE against really signed zones: the lab signs its DNSSEC scenarios (dnssec-signzone),
//! NSD serves them under a signed `test.`, and unbound validates them with the run's trust
//! anchor as the namespace's resolver. `mtasts check` and `mtasts query` must see every
//! scenario as a DANE sender would (the scenario is `tests/dane/signed.sh`), and so must
//! `check --validate` (mtasts' own validator) through a resolver that only passes DNSSEC
//! records on. The daemon,
//! Postfix and Exim against the same zones: postfix_e2e.rs and exim_e2e.rs.
//!
//! The in-process tests (catalog_checks, the daemon's socketmap tests) use the lab server's
//! AD-bit simulation instead, for speed; this test is what keeps that simulation honest.

mod common;

use std::path::Path;

fn has(text: &str, line: &str) -> bool {
    text.lines().any(|l| l == line)
}

fn line_of<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line:\n{text}"))
}

#[cfg_attr(
    not(mtasts_run_lab),
    ignore = "needs root, ip, dig, bind9-utils, nsd, unbound (MTASTS_TEST_SKIP opted out)"
)]
#[test]
fn check_and_query_see_the_signed_lab_zones_as_a_validating_resolver_does() {
    let exe = env!("CARGO_BIN_EXE_mtasts");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dane/signed.sh");
    let name = format!("mtdane-{}", std::process::id());
    let text = common::run_in_lab(&name, &script, &[exe.as_ref()]);

    // The signing and the validator: secure, bogus three ways, insecure, denied.
    for line in [
        "DIG MX dane.test NOERROR ad",
        "DIG TLSA _25._tcp.mx1.dane.test NOERROR ad",
        "DIG TLSA _25._tcp.mx1.dane-ta.test NOERROR ad",
        // A broken signature: SERVFAIL, yet the data is there with checking disabled.
        "DIG TLSA _25._tcp.mx1.dane-bogus.test SERVFAIL -",
        "DIG TLSA _25._tcp.mx1.dane-bogus.test NOERROR - cd",
        "DIG MX dane-expired.test SERVFAIL -",
        "DIG MX dane-ds-mismatch.test SERVFAIL -",
        // Unsigned delegations under the signed test.: answered, not authenticated.
        "DIG TLSA _25._tcp.mx1.dane-unsigned.test NOERROR -",
        "DIG TLSA _25._tcp.mx1.offsite-hosting.test NOERROR -",
        "DIG TXT _mta-sts.enforce.test NOERROR -",
        // Authenticated denial, by NSEC and by NSEC3.
        "DIG TLSA _25._tcp.mx1.dane-notlsa.test NXDOMAIN ad",
        "DIG TLSA _25._tcp.mx1.dane-notlsa-nsec3.test NXDOMAIN ad",
        // The lab's own server gives the same names unauthenticated.
        "DIRECT dane.test -",
    ] {
        assert!(has(&text, line), "{line} missing:\n{text}");
    }
    assert!(
        line_of(&text, "PROOF dane-notlsa.test ").contains(" NSEC "),
        "{text}"
    );
    assert!(
        line_of(&text, "PROOF dane-notlsa-nsec3.test ").contains(" NSEC3 "),
        "{text}"
    );

    // (domain, DANE decision, the check's DANE finding codes)
    let expect: [(&str, &str, &str); 14] = [
        ("dane.test", "dane-only", "tlsa-match"),
        ("dane-ta.test", "dane-only", "tlsa-match"),
        ("dane-cname.test", "dane-only", "tlsa-match"),
        ("dane-wrong.test", "dane-only", "tlsa-mismatch"),
        ("dane-unusable.test", "dane", "tlsa-unusable"),
        ("dane-partial.test", "dane", "no-dane,tlsa-mismatch"),
        ("dane-partial-bogus.test", "dane", "dnssec-bogus,tlsa-match"),
        ("dane-bogus.test", "temporary-failure", "dnssec-bogus"),
        ("dane-expired.test", "temporary-failure", "dnssec-bogus"),
        ("dane-ds-mismatch.test", "temporary-failure", "dnssec-bogus"),
        ("dane-unsigned.test", "not-applicable", "tlsa-insecure"),
        ("dane-offsite.test", "not-applicable", "tlsa-insecure"),
        ("dane-notlsa.test", "not-applicable", "no-dane"),
        ("dane-notlsa-nsec3.test", "not-applicable", "no-dane"),
    ];
    for (domain, decision, codes) in expect {
        let check = line_of(&text, &format!("CHECK {domain} "));
        assert!(
            check.starts_with(&format!("CHECK {domain} dane={decision} codes=")),
            "{check}"
        );
        // One code per MX host, in the order the resolver gave the hosts (it rotates them).
        let got: std::collections::BTreeSet<&str> = check
            .split(" codes=")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .map(|c| c.split(',').collect())
            .unwrap_or_default();
        let want: std::collections::BTreeSet<&str> = codes.split(',').collect();
        assert_eq!(got, want, "{check}");
        // mtasts' own validation (hickory's validator, the lab's key as anchor) through a
        // resolver that only passes DNSSEC records on: the same decision as unbound's.
        let validate = line_of(&text, &format!("VALIDATE {domain} "));
        assert!(
            validate.starts_with(&format!(
                "VALIDATE {domain} dane={decision} by=mtasts codes=dnssec-validated-in-process,"
            )),
            "{validate}"
        );
        // `query` (the daemon's resolver code) decides the same as `check`.
        let query = line_of(&text, &format!("QUERY {domain} "));
        assert!(
            query.starts_with(&format!("QUERY {domain} dane:      {decision} ")),
            "{query}"
        );
    }
    // DNS-04: a bogus `_mta-sts` answer reaches mtasts as SERVFAIL, a lookup with no answer.
    assert!(
        line_of(&text, "CHECK dane-expired.test ")
            .contains("DNS gave no answer for TXT _mta-sts.dane-expired.test"),
        "{text}"
    );
    assert!(
        has(&text, "STRIPPED dane.test dane=temporary-failure"),
        "signatures stripped on the way: {text}"
    );
    assert!(
        line_of(&text, "CHECK dane-expired.test ").contains(
            "summary=DNSSEC fails (MX lookup failed DNSSEC validation): DANE senders defer"
        ),
        "{text}"
    );
    assert!(
        line_of(&text, "CHECK dane-offsite.test ").contains(
            "summary=enforce policy in force: compliant senders deliver via mx1.offsite-hosting.test"
        ),
        "{text}"
    );
}
