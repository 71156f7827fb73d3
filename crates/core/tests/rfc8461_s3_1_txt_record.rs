//! RFC 8461 §3.1: the `_mta-sts` TXT record. Test names carry the checklist item.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

use mtasts_core::txt::{Discovery, TxtError, is_sts_record, parse_record, select_record};
use mtasts_core::{DomainName, StsRecord};

fn one(record: &str) -> Result<StsRecord, Discovery> {
    select_record(&[vec![record]])
}

fn id_of(record: &str) -> Option<String> {
    one(record).ok().map(|r| r.id)
}

#[test]
fn txt_01_discovery_name_is_mta_sts_label_on_normalised_domain() {
    let d = DomainName::parse("Example.COM.").expect("valid");
    assert_eq!(d.mta_sts_txt_name(), "_mta-sts.example.com");
    let idn = DomainName::parse("bücher.example").expect("valid");
    assert_eq!(idn.mta_sts_txt_name(), "_mta-sts.xn--bcher-kva.example");
}

#[test]
fn txt_03_strings_of_one_record_are_joined_without_separator() {
    // Vector 11.
    let rrset = vec![vec!["v=STSv1; id=ab", "cd"]];
    assert_eq!(select_record(&rrset).map(|r| r.id), Ok("abcd".into()));
    let split_in_version = vec![vec!["v=ST", "Sv1;", " id=1"]];
    assert_eq!(
        select_record(&split_in_version).map(|r| r.id),
        Ok("1".into())
    );
}

#[test]
fn txt_04_records_not_starting_with_v_stsv1_semicolon_are_dropped() {
    // Vectors 6, 8, 10.
    let spf = vec![vec!["v=spf1 -all"], vec!["v=STSv1; id=7"]];
    assert_eq!(select_record(&spf).map(|r| r.id), Ok("7".into()));
    let v10 = vec![vec!["v=STSv10; id=1"], vec!["v=STSv1; id=2"]];
    assert_eq!(select_record(&v10).map(|r| r.id), Ok("2".into()));
    for not_sts in [
        "V=STSv1; id=1",
        "v=stsv1; id=1",
        " v=STSv1; id=1",
        "v=STSv1",
        "v=STSv1x;id=1",
    ] {
        assert!(!is_sts_record(not_sts.as_bytes()), "{not_sts}");
        assert_eq!(one(not_sts), Err(Discovery::NoRecord), "{not_sts}");
    }
}

#[test]
fn txt_04a_whitespace_before_first_semicolon_is_kept() {
    // Vector 12, errata 6285.
    assert_eq!(id_of("v=STSv1 ; id=1"), Some("1".into()));
    assert_eq!(id_of("v=STSv1\t;\tid=1"), Some("1".into()));
}

#[test]
fn txt_05_zero_or_several_sts_records_mean_no_policy() {
    // Vector 9.
    let two = vec![vec!["v=STSv1; id=1"], vec!["v=STSv1; id=2"]];
    assert_eq!(select_record(&two), Err(Discovery::Multiple(2)));
    let none: Vec<Vec<&str>> = vec![];
    assert_eq!(select_record(&none), Err(Discovery::NoRecord));
    let only_spf = vec![vec!["v=spf1 -all"]];
    assert_eq!(select_record(&only_spf), Err(Discovery::NoRecord));
    // Two records count even when one of them is invalid.
    let one_bad = vec![vec!["v=STSv1; id=1"], vec!["v=STSv1; id=bad-id"]];
    assert_eq!(select_record(&one_bad), Err(Discovery::Multiple(2)));
}

#[test]
fn txt_06_one_invalid_sts_record_means_no_policy() {
    assert!(matches!(
        one("v=STSv1; id="),
        Err(Discovery::Invalid(e)) if *e == TxtError::EmptyId
    ));
    assert!(matches!(
        one("v=STSv1;"),
        Err(Discovery::Invalid(e)) if *e == TxtError::MissingId
    ));
}

#[test]
fn txt_07_grammar_accepts_valid_forms() {
    // Vectors 1, 2.
    assert_eq!(
        id_of("v=STSv1; id=20160831085700Z;"),
        Some("20160831085700Z".into())
    );
    assert_eq!(id_of("v=STSv1;id=abc"), Some("abc".into()));
    assert_eq!(id_of("v=STSv1;  id=abc  ;  "), Some("abc".into()));
    let r = one("v=STSv1; id=1; ext_name.x-y=v:a!l~").expect("valid extension");
    assert_eq!(
        r.extensions,
        vec![("ext_name.x-y".to_string(), "v:a!l~".to_string())]
    );
}

#[test]
fn txt_07_grammar_rejects_malformed_fields() {
    // Vector 13 and relatives.
    assert!(matches!(
        parse_record(b"v=STSv1; id=1;;"),
        Err(TxtError::EmptyField { .. })
    ));
    assert!(matches!(
        parse_record(b"v=STSv1; id=1; ext=a=b"),
        Err(TxtError::BadExtensionValue { .. })
    ));
    assert!(matches!(
        parse_record(b"v=STSv1; id=1; ext="),
        Err(TxtError::BadExtensionValue { .. })
    ));
    assert!(matches!(
        parse_record(b"v=STSv1; id=1; _x=1"),
        Err(TxtError::BadExtensionName { .. })
    ));
    assert!(matches!(
        parse_record(b"v=STSv1; id=1; noequals"),
        Err(TxtError::MissingEquals { .. })
    ));
    assert!(matches!(
        parse_record(b"v=STSv1; id=1 x=2"),
        Err(TxtError::ExpectedDelimiter { .. })
    ));
    let long_name = format!("v=STSv1; id=1; a{}=x", "b".repeat(32));
    assert!(matches!(
        parse_record(long_name.as_bytes()),
        Err(TxtError::BadExtensionName { .. })
    ));
    let max_name = format!("v=STSv1; id=1; a{}=x", "b".repeat(31));
    assert!(parse_record(max_name.as_bytes()).is_ok());
}

#[test]
fn txt_08_id_is_required_and_one_to_32_letters_or_digits() {
    // Vectors 3, 4, 5.
    assert_eq!(parse_record(b"v=STSv1"), Err(TxtError::MissingId));
    assert_eq!(parse_record(b"v=STSv1; foo=bar"), Err(TxtError::MissingId));
    assert_eq!(parse_record(b"v=STSv1; id="), Err(TxtError::EmptyId));
    assert!(matches!(
        parse_record(b"v=STSv1; id=2019-01-01"),
        Err(TxtError::BadIdChar { .. })
    ));
    assert!(matches!(
        parse_record(b"v=STSv1; id=a_b"),
        Err(TxtError::BadIdChar { .. })
    ));
    assert!(matches!(
        parse_record(b"v=STSv1; id=a.b"),
        Err(TxtError::BadIdChar { .. })
    ));
    let id32 = "a1".repeat(16);
    assert_eq!(id_of(&format!("v=STSv1; id={id32}")), Some(id32.clone()));
    assert_eq!(
        parse_record(format!("v=STSv1; id={id32}x").as_bytes()),
        Err(TxtError::IdTooLong { len: 33 })
    );
}

#[test]
fn txt_09_only_us_ascii_is_allowed() {
    assert!(matches!(
        parse_record("v=STSv1; id=1; x=é".as_bytes()),
        Err(TxtError::NonAscii { byte: 0xc3, .. })
    ));
    assert!(matches!(
        parse_record(b"v=STSv1; id=1\x00"),
        Err(TxtError::NonAscii { byte: 0, .. })
    ));
    assert!(matches!(
        parse_record(b"v=STSv1;\r\nid=1"),
        Err(TxtError::NonAscii { byte: b'\r', .. })
    ));
}

#[test]
fn txt_10_version_first_then_any_field_order() {
    // Vector 7.
    assert_eq!(parse_record(b"id=1; v=STSv1"), Err(TxtError::NotStsV1));
    assert_eq!(id_of("v=STSv1; foo=bar; id=1"), Some("1".into()));
}

#[test]
fn txt_11_first_id_wins_and_unknown_fields_are_ignored() {
    // Vector 14.
    assert_eq!(id_of("v=STSv1; id=1; id=2"), Some("1".into()));
    let r = one("v=STSv1; a=1; id=9; b=2").expect("valid");
    assert_eq!(r.id, "9");
    assert_eq!(r.extensions.len(), 2);
}

#[test]
fn txt_12_ids_compare_case_sensitively() {
    assert_ne!(id_of("v=STSv1; id=abc"), id_of("v=STSv1; id=ABC"));
}

#[test]
fn txt_render_is_canonical_and_reparses() {
    let r = one("v=STSv1;id=x1;  e=v").expect("valid");
    assert_eq!(r.render(), "v=STSv1; id=x1; e=v;");
    assert_eq!(parse_record(r.render().as_bytes()), Ok(r));
}

#[test]
fn txt_errors_name_the_rule() {
    let e = parse_record(b"v=STSv1; id=2019-01-01").expect_err("invalid");
    assert_eq!(e.checklist_id(), "TXT-08");
    assert!(e.to_string().contains("2019-01-01"));
}
