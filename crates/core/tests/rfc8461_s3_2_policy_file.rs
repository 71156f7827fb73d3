//! RFC 8461 §3.2: the policy file. Test names carry the checklist item.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

use mtasts_core::policy::{MAX_MAX_AGE, WarningKind};
use mtasts_core::{Mode, MxPatternError, Parsed, Policy, PolicyErrors, PolicyRule};

const GOOD: &str = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmax_age: 604800\r\n";

fn ok(text: &str) -> Parsed {
    match Policy::parse(text) {
        Ok(p) => p,
        Err(e) => panic!("expected valid policy, got {e}: {text:?}"),
    }
}

fn err(text: &str) -> PolicyErrors {
    match Policy::parse(text) {
        Ok(p) => panic!("expected invalid policy, got {p:?}: {text:?}"),
        Err(e) => e,
    }
}

fn rules(text: &str) -> Vec<PolicyRule> {
    err(text).0.into_iter().map(|e| e.rule).collect()
}

fn with(lines: &[&str]) -> String {
    lines.join("\n")
}

#[test]
fn pol_01_crlf_lf_mixed_and_missing_final_terminator() {
    // Vectors 26, 27.
    let p = ok(GOOD).policy;
    assert_eq!(p.mode, Mode::Enforce);
    assert_eq!(p.max_age, 604_800);
    assert_eq!(p.mx.len(), 1);
    assert_eq!(ok(&GOOD.replace("\r\n", "\n")).policy, p);
    assert_eq!(ok(GOOD.trim_end()).policy, p);
    let mixed = "version: STSv1\nmode: enforce\r\nmx: mail.example.com\nmax_age: 604800";
    assert_eq!(ok(mixed).policy, p);
}

#[test]
fn pol_01_bare_cr_is_not_a_line_end() {
    let e = err(&GOOD.replace("\r\n", "\r"));
    assert!(
        e.iter()
            .any(|e| e.rule == PolicyRule::BareCr && e.line == 1)
    );
    assert_eq!(e.0[0].rule.checklist_id(), "POL-01");
}

#[test]
fn pol_02_whitespace_rules_around_colon() {
    // Vector 28.
    assert_eq!(
        ok(&GOOD.replace("mode: enforce", "mode: enforce   "))
            .policy
            .mode,
        Mode::Enforce
    );
    assert_eq!(
        ok(&GOOD.replace("mode: enforce", "mode:\tenforce\t"))
            .policy
            .mode,
        Mode::Enforce
    );
    assert_eq!(
        ok(&GOOD.replace("mode: enforce", "mode:enforce"))
            .policy
            .mode,
        Mode::Enforce
    );
    let e = err(&GOOD.replace("mode: enforce", "mode : enforce"));
    let first = &e.0[0];
    assert_eq!((first.line, first.key.as_deref()), (2, Some("mode")));
    assert_eq!(first.rule, PolicyRule::WhitespaceBeforeColon);
    assert!(
        rules(&GOOD.replace("mode: enforce", " mode: enforce"))
            .contains(&PolicyRule::LeadingWhitespace)
    );
    assert!(
        rules(&GOOD.replace("mode: enforce", "mode enforce")).contains(&PolicyRule::MissingColon)
    );
}

#[test]
fn pol_03_required_fields_and_case_sensitive_values() {
    // Vectors 30, 31, 32.
    assert!(
        rules(&GOOD.replace("version: STSv1\r\n", ""))
            .contains(&PolicyRule::MissingField("version"))
    );
    assert!(
        rules(&GOOD.replace("STSv1", "STSv2")).contains(&PolicyRule::BadVersion("STSv2".into()))
    );
    assert!(
        rules(&GOOD.replace("STSv1", "stsv1")).contains(&PolicyRule::BadVersion("stsv1".into()))
    );
    assert!(
        rules(&GOOD.replace("enforce", "Enforce")).contains(&PolicyRule::BadMode("Enforce".into()))
    );
    assert!(rules(&GOOD.replace("mode:", "Mode:")).contains(&PolicyRule::MissingField("mode")));
    assert!(
        rules(&GOOD.replace("max_age: 604800\r\n", ""))
            .contains(&PolicyRule::MissingField("max_age"))
    );
    assert!(
        rules(&GOOD.replace("mx: mail.example.com\r\n", ""))
            .contains(&PolicyRule::MissingMx(Mode::Enforce))
    );
    assert!(
        rules(
            &GOOD
                .replace("mx: mail.example.com\r\n", "")
                .replace("enforce", "testing")
        )
        .contains(&PolicyRule::MissingMx(Mode::Testing))
    );
    let none = ok(&with(&["version: STSv1", "mode: none", "max_age: 86400"]));
    assert_eq!(none.policy.mode, Mode::None);
    assert!(none.policy.mx.is_empty());
}

#[test]
fn pol_04_first_occurrence_wins_every_mx_counts() {
    // Vector 29.
    let p = ok(&format!(
        "{GOOD}mode: none\nmax_age: 1\nversion: STSv1\nmx: b.example.com\n"
    ));
    assert_eq!(p.policy.mode, Mode::Enforce);
    assert_eq!(p.policy.max_age, 604_800);
    assert_eq!(p.policy.mx.len(), 2);
    assert_eq!(
        p.warnings
            .iter()
            .filter(|w| matches!(w.kind, WarningKind::DuplicateIgnored(_)))
            .count(),
        3
    );
}

#[test]
fn pol_04a_ignored_duplicate_value_is_not_checked() {
    let p = ok(&format!("{GOOD}mode: bogus\nmax_age: x\nversion: STSv9\n"));
    assert_eq!(p.policy.mode, Mode::Enforce);
    // But an invalid *first* occurrence is an error, whatever follows.
    assert!(
        rules(&GOOD.replace("mode: enforce", "mode: bogus\nmode: enforce"))
            .contains(&PolicyRule::BadMode("bogus".into()))
    );
}

#[test]
fn pol_05_unknown_keys_ignored_if_well_formed() {
    // Vector 37.
    let p = ok(&format!("{GOOD}foo_bar.1: some value with spaces\n"));
    assert_eq!(
        p.policy.extensions(),
        [(
            "foo_bar.1".to_string(),
            "some value with spaces".to_string()
        )]
    );
    assert_eq!(
        ok(&format!("{GOOD}ext: ünïcödé välue\n"))
            .policy
            .extensions()
            .len(),
        1
    );
    assert!(rules(&format!("{GOOD}_foo: x\n")).contains(&PolicyRule::BadKey));
    assert!(rules(&format!("{GOOD}a{}: x\n", "b".repeat(32))).contains(&PolicyRule::BadKey));
    assert!(rules(&format!("{GOOD}foo:\n")).contains(&PolicyRule::EmptyValue));
    assert!(rules(&format!("{GOOD}foo: a\u{7}b\n")).contains(&PolicyRule::ControlChar(7)));
}

#[test]
fn pol_06_field_order_does_not_matter() {
    // Vector 38.
    let p = ok(&with(&[
        "mx: mail.example.com",
        "max_age: 604800",
        "mode: enforce",
        "version: STSv1",
    ]));
    assert_eq!(p.policy, ok(GOOD).policy);
}

#[test]
fn pol_07_invalid_mx_values_make_the_policy_invalid() {
    // Vectors 34, 35, 36.
    for bad in [
        "*.*.example.com",
        "mail.*.example.com",
        "*example.com",
        ".example.com",
        "*",
        "bücher.example",
        "-bad.example.com",
        "a..example.com",
        "[192.0.2.1]",
        "2001:db8::1",
        "mail_x.example.com",
    ] {
        let e = err(&GOOD.replace("mail.example.com", bad));
        assert!(
            e.iter()
                .any(|e| e.key.as_deref() == Some("mx") && matches!(e.rule, PolicyRule::BadMx(_))),
            "{bad}: {e}"
        );
    }
    assert!(
        rules(&GOOD.replace("mail.example.com", "a.example.com, b.example.com")).contains(
            &PolicyRule::BadMx(MxPatternError::List("a.example.com, b.example.com".into()))
        )
    );
    assert!(
        rules(&GOOD.replace("mx: mail.example.com", "mx:"))
            .contains(&PolicyRule::BadMx(MxPatternError::Empty))
    );
    let idn = ok(&GOOD.replace("mail.example.com", "xn--bcher-kva.example"));
    assert_eq!(idn.policy.mx[0].to_string(), "xn--bcher-kva.example");
    let e = err(&GOOD.replace("mail.example.com", "bücher.example"));
    assert!(
        e.to_string().contains("xn--bcher-kva.example"),
        "suggests the A-label: {e}"
    );
}

#[test]
fn pol_08_max_age_range_and_syntax() {
    // Vector 33.
    let age = |v: &str| Policy::parse(&GOOD.replace("604800", v)).map(|p| p.policy.max_age);
    assert_eq!(age("31557600"), Ok(MAX_MAX_AGE));
    assert_eq!(age("31557601"), Ok(MAX_MAX_AGE));
    assert_eq!(age("9999999999"), Ok(MAX_MAX_AGE));
    assert_eq!(age("0086400"), Ok(86_400));
    assert_eq!(age("0"), Ok(0));
    for bad in [
        "12345678901",
        "-1",
        "1e5",
        "604800 # week",
        "+5",
        "5.0",
        "1d",
    ] {
        assert!(age(bad).is_err(), "{bad}");
    }
    let clamped = ok(&GOOD.replace("604800", "31557601"));
    assert!(
        clamped
            .warnings
            .iter()
            .any(|w| w.kind == WarningKind::MaxAgeClamped(31_557_601))
    );
}

#[test]
fn pol_09_tolerated_bom_blank_lines_and_mx_trailing_dot() {
    // Vector 39.
    let bom = ok(&format!("\u{feff}{GOOD}"));
    assert!(bom.warnings.iter().any(|w| w.kind == WarningKind::Bom));
    let blank = ok(&format!("{GOOD}\r\n"));
    assert!(
        blank
            .warnings
            .iter()
            .any(|w| w.kind == WarningKind::EmptyLine)
    );
    let dot = ok(&GOOD.replace("mail.example.com", "mail.example.com."));
    assert_eq!(dot.policy.mx[0].to_string(), "mail.example.com");
    assert!(
        dot.warnings
            .iter()
            .any(|w| w.kind == WarningKind::MxTrailingDot)
    );
}

#[test]
fn pol_10_every_problem_is_reported_with_line_and_key() {
    let text = with(&[
        "version: STSv2",
        "mode: strict",
        "mx: *.*.x.com",
        "max_age: soon",
    ]);
    let e = err(&text);
    let lines: Vec<(usize, Option<&str>)> = e.iter().map(|e| (e.line, e.key.as_deref())).collect();
    assert_eq!(
        lines,
        vec![
            (1, Some("version")),
            (2, Some("mode")),
            (3, Some("mx")),
            (4, Some("max_age"))
        ]
    );
    let ids: Vec<&str> = e.iter().map(|e| e.rule.checklist_id()).collect();
    assert_eq!(ids, vec!["POL-03", "POL-03", "POL-07", "POL-08"]);
    assert!(
        e.to_string()
            .starts_with("invalid policy: line 1, key `version`"),
        "{e}"
    );
}

#[test]
fn pol_12_mx_required_unless_mode_none() {
    let none_with_mx = ok(&with(&[
        "version: STSv1",
        "mode: none",
        "mx: a.example",
        "max_age: 1",
    ]));
    assert_eq!(none_with_mx.policy.mx.len(), 1);
}

#[test]
fn fetch_12_body_must_be_utf8() {
    let mut bytes = GOOD.as_bytes().to_vec();
    bytes.extend_from_slice(b"ext: \xff\xfe\n");
    let e = Policy::parse_bytes(&bytes).expect_err("invalid utf-8");
    assert_eq!(e.0[0].rule, PolicyRule::InvalidUtf8);
    assert_eq!(e.0[0].line, 5);
    assert!(Policy::parse_bytes(GOOD.as_bytes()).is_ok());
}

#[test]
fn policy_render_is_canonical_and_reparses() {
    let p = ok(&with(&[
        "mx: *.Example.NET",
        "max_age: 0086400",
        "mode: testing",
        "version: STSv1",
        "x: y z",
    ]))
    .policy;
    assert_eq!(
        p.render(),
        "version: STSv1\nmode: testing\nmx: *.example.net\nmax_age: 86400\nx: y z\n"
    );
    assert_eq!(ok(&p.render()).policy, p);
}

#[test]
fn policy_parser_is_safe_on_huge_input() {
    // The 64 KiB cap is the fetcher's; the parser must stay linear and panic-free beyond it.
    let mut text = String::from(GOOD);
    for i in 0..20_000 {
        text.push_str(&format!("k{i}: v\n"));
    }
    assert_eq!(ok(&text).policy.extensions().len(), 20_000);
}

#[test]
fn pol_07_numeric_mx_values_are_valid_syntax_kept_and_match_nothing() {
    // RFC 5321 `Domain` allows all-numeric labels; no MX host name can match them (a name
    // ending in a numeric label is not a host name). Refusing the whole policy would fail
    // open; keeping them changes no match.
    let p = ok(&with(&[
        "version: STSv1",
        "mode: enforce",
        "mx: mail.example.com",
        "mx: 192.0.2.1",
        "mx: *.1.2.3.4",
        "mx: MAIL.123.",
        "max_age: 86400",
    ]));
    assert_eq!(p.policy.mx.len(), 1);
    assert_eq!(
        p.policy.unmatchable(),
        ["192.0.2.1", "*.1.2.3.4", "mail.123"]
    );
    let warned: Vec<_> = p
        .warnings
        .iter()
        .filter(|w| matches!(w.kind, WarningKind::MxNeverMatches(_)))
        .map(|w| (w.line, w.kind.checklist_id()))
        .collect();
    assert_eq!(warned, [(4, "POL-07"), (5, "POL-07"), (6, "POL-07")]);
    // Canonical text keeps them, and re-parses to the same policy.
    let again = ok(&p.policy.render());
    assert_eq!(again.policy, p.policy);
    // Only such values: still a valid enforce policy, whose reply defers (no MX acceptable)
    // instead of answering without MTA-STS.
    let only = ok(&GOOD.replace("mail.example.com", "192.0.2.1")).policy;
    assert!(only.mx.is_empty() && only.unmatchable().len() == 1);
    let d = mtasts_core::DomainName::parse("example.com").expect("domain");
    let reply =
        mtasts_core::postfix::policy_reply(&d, &only, &mtasts_core::RenderOptions::default());
    assert!(
        reply.to_string().starts_with("TEMP ") && reply.to_string().contains("no MX is acceptable"),
        "{reply}"
    );
}

#[test]
fn pol_05_a_tab_inside_an_extension_value_is_invalid() {
    let e = err(&with(&[
        "version: STSv1",
        "mode: enforce",
        "mx: mail.example.com",
        "max_age: 86400",
        "x-report: ok\tbad",
    ]));
    assert!(
        e.iter().any(|e| e.line == 5
            && e.key.as_deref() == Some("x-report")
            && e.rule == PolicyRule::TabInValue),
        "{e}"
    );
    // Spaces inside are fine; tabs around the value are whitespace after the colon.
    ok(&with(&[
        "version: STSv1",
        "mode: enforce",
        "mx: mail.example.com",
        "max_age: 86400",
        "x-report:\tok fine\t",
    ]));
}
