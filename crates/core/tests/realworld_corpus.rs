//! Every policy and `_mta-sts` record real domains publish (`../shared/realworld/corpus/`,
//! read from there, not copied in) goes through the parsers without a panic; the valid ones
//! round-trip; none is refused only for an `mx` value that merely looks numeric.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

use std::path::Path;

use mtasts_core::Policy;
use mtasts_core::policy::WarningKind;
use mtasts_core::txt::parse_record;

fn files(kind: &str) -> Vec<std::path::PathBuf> {
    let Some(root) = option_env!("MTASTS_REALWORLD_DIR") else {
        panic!("MTASTS_REALWORLD_DIR is set by build.rs when the corpus is there");
    };
    let dir = Path::new(root).join(kind);
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no {kind} files in {}", dir.display());
    v
}

#[cfg_attr(
    not(mtasts_have_realworld),
    ignore = "../shared/realworld/corpus is not beside the checkout (or set MTASTS_REALWORLD)"
)]
#[test]
fn real_policies_parse_and_numeric_mx_values_never_invalidate_one() {
    let (mut valid, mut never_matching) = (0, 0);
    for path in files("policy") {
        let bytes = std::fs::read(&path).expect("read");
        match Policy::parse_bytes(&bytes) {
            Ok(parsed) => {
                valid += 1;
                never_matching += parsed
                    .warnings
                    .iter()
                    .filter(|w| matches!(w.kind, WarningKind::MxNeverMatches(_)))
                    .count();
                let again = Policy::parse(&parsed.policy.render()).expect("re-parses");
                assert_eq!(again.policy, parsed.policy, "{}", path.display());
            }
            Err(errors) => {
                let text = errors.to_string();
                assert!(
                    !text.contains("IP address literal") && !text.contains("all-numeric"),
                    "{}: refused for a numeric mx value: {text}",
                    path.display()
                );
            }
        }
    }
    println!("{valid} valid policies; {never_matching} mx values that can never match");
    assert!(valid > 100, "{valid} valid");
    assert!(
        never_matching >= 3,
        "the corpus has 1.2.3.4, *.1.2.3.4, 127.0.0.1"
    );
}

#[cfg_attr(
    not(mtasts_have_realworld),
    ignore = "../shared/realworld/corpus is not beside the checkout (or set MTASTS_REALWORLD)"
)]
#[test]
fn real_txt_records_parse_without_panic() {
    let mut valid = 0;
    for path in files("txt") {
        let bytes = std::fs::read(&path).expect("read");
        let record = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
        if let Ok(r) = parse_record(record) {
            valid += 1;
            assert_eq!(
                parse_record(r.render().as_bytes()),
                Ok(r),
                "{}",
                path.display()
            );
        }
    }
    println!("{valid} valid records");
    assert!(valid > 50, "{valid} valid");
}
