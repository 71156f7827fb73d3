#!/usr/bin/env bash
# Runs the fuzz targets with libFuzzer on stable Rust: libfuzzer-sys builds libFuzzer with the
# C++ compiler, and rustc's SanitizerCoverage pass gives it coverage, as cargo-fuzz does on
# nightly (without AddressSanitizer, which safe Rust does not need for these parsers).
#
#   fuzz/run.sh [EXECUTIONS] [TARGET...]    default: 10,000,000 executions of every target
#
# New coverage-increasing inputs land in corpus/<target>/ (commit them); a crash is written to
# artifacts/<target>/ and stops the run: add it to corpus/<target>/ as a regression input,
# which crates/*/tests/fuzz_corpus_replay.rs replays on every `cargo test`. seeds/<target>/
# (valid inputs made from the grammars by make_seeds.py) is read too, never written.
set -euo pipefail
cd "$(dirname "$0")"
RUNS=${1:-10000000}
[ $# -gt 0 ] && shift
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(txt policy mx netstring postfix_key tlsrpt_report)
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# An explicit --target keeps the coverage flags off build scripts and proc macros.
TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
cargo build --release --bins --target "$TRIPLE" --target-dir target/stable-fuzz
for t in "${TARGETS[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    seeds=()
    [ -d "seeds/$t" ] && seeds=("seeds/$t")
    echo "== $t: $RUNS executions"
    "target/stable-fuzz/$TRIPLE/release/$t" -runs="$RUNS" -max_len=4096 -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/" "corpus/$t" "${seeds[@]}"
done
