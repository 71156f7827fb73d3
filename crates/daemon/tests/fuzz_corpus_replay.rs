//! Replays the committed fuzz corpus of the daemon's parsers (`fuzz/corpus/<target>/`) on
//! stable, through the same entry points the fuzz targets use.

use std::path::Path;

#[test]
fn replay_netstring_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/netstring");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut count = 0;
    for entry in entries.flatten() {
        let data =
            std::fs::read(entry.path()).unwrap_or_else(|e| panic!("{:?}: {e}", entry.path()));
        mtasts_daemon::fuzzing::netstring(&data);
        count += 1;
    }
    assert!(count > 0, "empty corpus");
}
