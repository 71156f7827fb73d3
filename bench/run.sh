#!/usr/bin/env bash
# The side-by-side benchmark: mtasts daemon, postfix-mta-sts-resolver 1.5.1 and a bare
# netstring echo server (the machine's limit), in one run on one machine, all on loopback
# inside the lab's network namespace. Needs root (namespace), python3 with venv, and PyPI for
# the one-time install of postfix-mta-sts-resolver into target/bench-venv.
#
#   bench/run.sh            three full runs (about 25 minutes); docs/benchmarks.md gets the
#                           median of each figure and its spread
#   bench/run.sh --smoke    one run, tiny counts, for CI; writes target/bench/benchmarks-smoke.md
#   ONLY=serve bench/run.sh three runs of the serve-vs-nginx rows alone (results-N.jsonl), to
#                           merge into a full run's results by hand
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SMOKE=0
[ "${1:-}" = "--smoke" ] && SMOKE=1

if [ $SMOKE = 1 ]; then
    export HOT=50 COLD=100 SECONDS_PER=1 HOTCOLD=200 MEMORY=20000 DELAY_MS=5 CONNS_LIST="1 16" SCAN=20 INTAKE=200 RUNS=1
    export SERVE_SITES=20 SERVE_MEMORY_SITES=50 SERVE_CONNS=4
else
    export HOT=1000 COLD=10000 SECONDS_PER=5 HOTCOLD=1000 MEMORY=1000000 DELAY_MS=20 CONNS_LIST="1 16 64" SCAN=1000 INTAKE=5000 RUNS=${RUNS:-3}
    export SERVE_SITES=1000 SERVE_MEMORY_SITES=10000 SERVE_CONNS=16
fi
# ONLY=serve: just the serve-vs-nginx rows (bench/serve.sh), for a rerun of that part.
ONLY=${ONLY:-}

echo "== building (release)"
cargo build --release -q -p mtasts -p mtasts-bench
export MTASTS=$ROOT/target/release/mtasts BENCH=$ROOT/target/release/mtasts-bench

VENV=$ROOT/target/bench-venv
if [ ! -x "$VENV/bin/mta-sts-daemon" ] || [ ! -x "$VENV/bin/checkdmarc" ]; then
    echo "== installing postfix-mta-sts-resolver 1.5.1 and checkdmarc 5.8.8 into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "postfix-mta-sts-resolver==1.5.1" "checkdmarc==5.8.8"
fi
export PMSR=$VENV/bin/mta-sts-daemon CHECKDMARC=$VENV/bin/checkdmarc

OUT=$ROOT/target/bench
[ "$ONLY" = serve ] && OUT=$ROOT/target/bench-serve
mkdir -p "$OUT"
"$BENCH" catalog --hot "$HOT" --cold "$COLD" --delay-ms "$DELAY_MS" > "$OUT/catalog.toml"
export OUT
RESULTS=()
for run in $(seq 1 "$RUNS"); do
    # Each run starts a fresh lab and fresh daemons: nothing cached carries over.
    export RESULTS_FILE=$OUT/results-$run.jsonl
    : > "$RESULTS_FILE"
    RESULTS+=("$RESULTS_FILE")
    if [ "$ONLY" = serve ]; then
        echo "== run $run of $RUNS: serve vs nginx: $SERVE_SITES sites, memory at $SERVE_MEMORY_SITES"
        bash "$ROOT/bench/serve.sh"
        continue
    fi
    echo "== run $run of $RUNS: lab up with $((HOT + COLD + 1)) domains; the scenarios inside it"
    "$MTASTS" lab run --name mtasts-bench --catalog "$OUT/catalog.toml" -- bash "$ROOT/bench/inside.sh"
    echo "== run $run of $RUNS: memory: $MEMORY cached policies"
    "$BENCH" memory --policies "$MEMORY" >> "$RESULTS_FILE"
    echo "== run $run of $RUNS: memory-tier lookups beside a refresh sweep: $MEMORY cached policies"
    "$BENCH" sweep --policies "$MEMORY" --seconds "$SECONDS_PER" >> "$RESULTS_FILE"
    echo "== run $run of $RUNS: TLS-RPT intake: $INTAKE gzip'd reports over HTTPS, 1 and 16 connections"
    for c in 1 16; do
        "$BENCH" tlsrpt-intake --reports "$INTAKE" --conns "$c" --seconds 60 >> "$RESULTS_FILE"
    done
    echo "== run $run of $RUNS: serve vs nginx: $SERVE_SITES sites, memory at $SERVE_MEMORY_SITES"
    bash "$ROOT/bench/serve.sh"
done

{
    echo "# Benchmarks"
    echo
    echo "Run on $(date -u +%Y-%m-%dT%H:%MZ): $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB,"
    echo "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr)."
    echo "Command: \`bench/run.sh$([ $SMOKE = 1 ] && echo ' --smoke')\` ($RUNS run(s); counts: hot set $HOT, cold $COLD domains,"
    echo "${SECONDS_PER}s per load point, ${DELAY_MS} ms added to each cold policy response, scan of $SCAN domains)."
    echo
} > "$OUT/header.md"
TABLE=$OUT/table.md
"$BENCH" table "${RESULTS[@]}" --header "$OUT/header.md" > "$TABLE"
if [ "$ONLY" = serve ]; then
    cat "$TABLE"
    echo "== serve rows only: $OUT (docs/benchmarks.md untouched)"
    exit 0
fi
if [ $SMOKE = 0 ]; then
    echo "== core micro-benchmarks (criterion)"
    {
        echo
        echo "### Core micro-benchmarks (criterion, median per operation)"
        echo
        echo "| operation | time |"
        echo "|---|---|"
        for b in "-p mtasts-core --bench core" "-p mtasts-daemon --bench codec"; do
            # shellcheck disable=SC2086
            cargo bench -q $b -- --warm-up-time 1 --measurement-time 3 2>/dev/null \
                | sed -nE 's/^(.*[^ ]) +time: +\[[^ ]+ [^ ]+ ([^ ]+ [^ ]+) .*/| \1 | \2 |/p'
        done
    } >> "$TABLE"
fi
cat "$TABLE"
if [ $SMOKE = 1 ]; then
    cp "$TABLE" "$OUT/benchmarks-smoke.md"
else
    { cat "$TABLE"; echo; cat "$ROOT/bench/NOTES.md"; } > "$ROOT/docs/benchmarks.md"
    echo "== written to docs/benchmarks.md"
fi
