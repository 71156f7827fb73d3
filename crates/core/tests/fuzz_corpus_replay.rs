//! Replays the committed cargo-fuzz corpus (`fuzz/corpus/<target>/`) and the seeds made from
//! the grammars (`fuzz/seeds/<target>/`, by `fuzz/make_seeds.py`) on stable, through the same
//! entry points the fuzz targets use. Every seed must be valid input that reaches the
//! round-trip or oracle assertion, so the replay checks more than the first rejection.

use std::path::Path;

/// Replays every input; returns (inputs, inputs that reached the invariant).
fn replay(kind: &str, target: &str, run: fn(&[u8]) -> bool) -> (usize, usize) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz")
        .join(kind)
        .join(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let (mut count, mut checked) = (0, 0);
    for entry in entries.flatten() {
        let data =
            std::fs::read(entry.path()).unwrap_or_else(|e| panic!("{:?}: {e}", entry.path()));
        checked += usize::from(run(&data));
        count += 1;
    }
    assert!(count > 0, "empty {kind} for {target}");
    println!("{kind}/{target}: {checked} of {count} inputs reached the invariant");
    (count, checked)
}

/// The corpus replays; every seed reaches the invariant.
fn check(target: &str, run: fn(&[u8]) -> bool) {
    replay("corpus", target, run);
    let (count, checked) = replay("seeds", target, run);
    assert!(count >= 300, "{target}: {count} seeds");
    assert_eq!(
        checked, count,
        "{target}: every seed must be valid input (fix fuzz/make_seeds.py)"
    );
}

#[test]
fn replay_txt_corpus() {
    check("txt", mtasts_core::fuzzing::txt);
}

#[test]
fn replay_policy_corpus() {
    check("policy", mtasts_core::fuzzing::policy);
}

#[test]
fn replay_mx_corpus() {
    check("mx", mtasts_core::fuzzing::mx);
}

#[test]
fn replay_postfix_key_corpus() {
    check("postfix_key", mtasts_core::fuzzing::postfix_key);
}

#[test]
fn replay_tlsrpt_report_corpus() {
    check("tlsrpt_report", mtasts_core::fuzzing::tlsrpt_report);
}
