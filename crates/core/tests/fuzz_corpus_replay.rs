//! Replays the committed cargo-fuzz corpus (`fuzz/corpus/<target>/`) on stable, through the
//! same entry points the fuzz targets use.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut count = 0;
    for entry in entries.flatten() {
        let data =
            std::fs::read(entry.path()).unwrap_or_else(|e| panic!("{:?}: {e}", entry.path()));
        run(&data);
        count += 1;
    }
    assert!(count > 0, "empty corpus for {target}");
}

#[test]
fn replay_txt_corpus() {
    replay("txt", mtasts_core::fuzzing::txt);
}

#[test]
fn replay_policy_corpus() {
    replay("policy", mtasts_core::fuzzing::policy);
}

#[test]
fn replay_mx_corpus() {
    replay("mx", mtasts_core::fuzzing::mx);
}

#[test]
fn replay_postfix_key_corpus() {
    replay("postfix_key", mtasts_core::fuzzing::postfix_key);
}
