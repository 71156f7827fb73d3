//! Property tests: parse∘render round-trips, and no input panics any parser.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

use mtasts_core::postfix::{RenderOptions, policy_domain_from_key, policy_reply};
use mtasts_core::txt::{parse_record, select_record};
use mtasts_core::{DomainName, MxPattern, Policy};
use proptest::prelude::*;

fn label() -> impl Strategy<Value = String> {
    // `ab--…` labels are reserved (RFC 5891 §4.2.3.1; `xn--` is an A-label and must decode),
    // so plain LDH labels avoid hyphens in positions 3 and 4.
    "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?"
        .prop_filter("reserved ??-- label", |l| l.get(2..4) != Some("--"))
}

fn host() -> impl Strategy<Value = String> {
    prop::collection::vec(label(), 1..4).prop_map(|l| format!("{}.example", l.join(".")))
}

fn pattern() -> impl Strategy<Value = String> {
    (any::<bool>(), host()).prop_map(|(w, h)| if w { format!("*.{h}") } else { h })
}

fn policy_text() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["enforce", "testing", "none"]),
        prop::collection::vec(pattern(), 1..6),
        0u64..99_999_999,
        prop::collection::vec(("[a-z][a-z0-9_.-]{0,8}", "[!-~]([ -~]{0,10}[!-~])?"), 0..3),
        any::<bool>(),
    )
        .prop_map(|(mode, mx, age, ext, crlf)| {
            let mut lines = vec!["version: STSv1".to_string(), format!("mode: {mode}")];
            lines.extend(mx.iter().map(|m| format!("mx: {m}")));
            lines.push(format!("max_age: {age}"));
            lines.extend(
                ext.iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "version" | "mode" | "mx" | "max_age"))
                    .map(|(k, v)| format!("{k}: {v}")),
            );
            lines.join(if crlf { "\r\n" } else { "\n" })
        })
}

proptest! {
    #[test]
    fn policy_parse_render_round_trips(text in policy_text()) {
        let parsed = Policy::parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let rendered = parsed.policy.render();
        let again = Policy::parse(&rendered).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&again.policy, &parsed.policy);
        prop_assert_eq!(again.policy.render(), rendered);
    }

    #[test]
    fn policy_parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Policy::parse_bytes(&bytes);
    }

    #[test]
    fn policy_parser_never_panics_on_near_valid_text(
        text in policy_text(), pos in any::<prop::sample::Index>(), junk in "[\\x00-\\x7f\u{80}-\u{10ffff}]{0,4}"
    ) {
        let at = pos.index(text.len() + 1);
        let mut s = text.clone();
        if s.is_char_boundary(at) {
            s.insert_str(at, &junk);
        }
        let _ = Policy::parse(&s);
    }

    #[test]
    fn txt_parse_render_round_trips(
        id in "[A-Za-z0-9]{1,32}",
        ext in prop::collection::vec(("[a-z0-9][a-z0-9_.-]{0,31}", "[!-:<>-~]{1,12}"), 0..3),
    ) {
        let mut text = format!("v=STSv1; id={id}");
        for (k, v) in &ext {
            if k != "id" {
                text.push_str(&format!("; {k}={v}"));
            }
        }
        let rec = parse_record(text.as_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&rec.id, &id);
        prop_assert_eq!(parse_record(rec.render().as_bytes()), Ok(rec));
    }

    #[test]
    fn txt_parser_never_panics(rrset in prop::collection::vec(prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..3), 0..3)) {
        let _ = select_record(&rrset);
        for rr in &rrset {
            let _ = parse_record(&rr.concat());
        }
    }

    #[test]
    fn txt_parser_never_panics_on_near_valid_text(
        id in "[A-Za-z0-9]{1,32}", pos in any::<prop::sample::Index>(), junk in "[\\x00-\\x7f]{0,4}",
    ) {
        // A valid record with a few bytes inserted: the parser gets past the prefix check.
        let mut text = format!("v=STSv1; id={id}; ext=1").into_bytes();
        let at = pos.index(text.len() + 1);
        text.splice(at..at, junk.bytes());
        if let Ok(rec) = parse_record(&text) {
            prop_assert_eq!(parse_record(rec.render().as_bytes()), Ok(rec));
        }
    }

    #[test]
    fn pattern_parse_display_round_trips(p in pattern()) {
        let parsed = MxPattern::parse(&p).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(MxPattern::parse(&parsed.to_string()), Ok(parsed));
    }

    #[test]
    fn wildcard_matches_exactly_one_extra_label(base in host(), l1 in label(), l2 in label()) {
        let p = MxPattern::parse(&format!("*.{base}")).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let one = DomainName::parse(&format!("{l1}.{base}")).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let two = DomainName::parse(&format!("{l2}.{l1}.{base}")).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let bare = DomainName::parse(&base).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(p.matches(&one));
        prop_assert!(!p.matches(&two));
        prop_assert!(!p.matches(&bare));
    }

    #[test]
    fn names_and_keys_never_panic(s in "\\PC{0,40}") {
        let _ = DomainName::parse(&s);
        let _ = MxPattern::parse(&s);
        let _ = policy_domain_from_key(&s);
    }

    #[test]
    fn postfix_reply_never_exceeds_limit(text in policy_text(), limit in 50usize..400) {
        let parsed = Policy::parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let d = DomainName::parse("example.com").map_err(|e| TestCaseError::fail(e.to_string()))?;
        let opts = RenderOptions { tlsrpt: true, strict_testing: true, sni: true, max_reply: limit };
        let payload = policy_reply(&d, &parsed.policy, &opts).payload();
        prop_assert!(payload.starts_with("TEMP ") || payload.starts_with("NOTFOUND") || payload.len() <= limit);
    }
}
