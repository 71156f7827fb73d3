#!/usr/bin/env bash
# Runs inside the lab namespace (see run.sh): starts the three systems, then each scenario.
set -euo pipefail
: "${MTASTS:?}" "${BENCH:?}" "${PMSR:?}" "${CHECKDMARC:?}" "${OUT:?}" "${RESULTS_FILE:?}" "${MTASTS_LAB_CA:?}" "${MTASTS_LAB_NAME:?}"
WORK=$(mktemp -d /tmp/mtasts-bench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }

"$MTASTS" daemon --listen 127.0.0.1:8461 --cache memory --nameserver 127.0.0.1:53 --ca-file "$MTASTS_LAB_CA" \
    >"$WORK/mtasts.log" 2>&1 &
PIDS+=($!)
cat >"$WORK/pmsr.yml" <<YML
host: 127.0.0.1
port: 8462
cache:
  type: internal
  options:
    cache_size: 100000
default_zone:
  strict_testing: false
  timeout: 4
YML
SSL_CERT_FILE="$MTASTS_LAB_CA" "$PMSR" -c "$WORK/pmsr.yml" -v warn >"$WORK/pmsr.log" 2>&1 &
PIDS+=($!)
"$BENCH" echo --listen 127.0.0.1:8463 >"$WORK/echo.log" 2>&1 &
PIDS+=($!)
wait_port 8461; wait_port 8462; wait_port 8463

# One result line per scenario; every request must have been answered OK (a daemon answering
# NOTFOUND or TEMP would otherwise make a fast, wrong figure).
row() {
    "$BENCH" load "$@" >> "$RESULTS_FILE"
    tail -n 1 "$RESULTS_FILE" >&2
    tail -n 1 "$RESULTS_FILE" | python3 -c '
import json, sys
r = json.load(sys.stdin)
d = r["detail"]
if d.get("OK") != d.get("requests") or d.get("requests") in (None, "0"):
    sys.exit(f"{r['"'"'system'"'"']} / {r['"'"'scenario'"'"']}: not every request answered OK: {d}")
'
}

# Warm both caches with the hot set (each domain once), then check they answer OK.
for sys in 8461 8462; do
    "$BENCH" load --target 127.0.0.1:$sys --system warm --scenario warm --prefix hot --domains "$HOT" --conns 8 --once --seconds 120 >/dev/null
done

for c in $CONNS_LIST; do
    for sys in mtasts:8461 pmsr:8462 echo:8463; do
        row --target "127.0.0.1:${sys#*:}" --system "${sys%%:*}" --scenario "cached, $c conn" \
            --prefix hot --domains "$HOT" --conns "$c" --seconds "$SECONDS_PER"
    done
done
for sys in mtasts:8461 pmsr:8462 echo:8463; do
    row --target "127.0.0.1:${sys#*:}" --system "${sys%%:*}" --scenario "cached, 16 conn, pipelined x8" \
        --prefix hot --domains "$HOT" --conns 16 --pipeline 8 --seconds "$SECONDS_PER"
done

# A domain survey: `mtasts scan` and checkdmarc (PyPI) over the same SCAN lab domains, wall
# time, no SMTP probes (checkdmarc also checks SPF, DMARC, BIMI and NS: more lookups per domain,
# one domain at a time; mtasts scan checks 16 at once). No added latency yet.
seq 0 $((${SCAN:-1000} - 1)) | sed 's/^/hot/; s/$/.test/' > "$WORK/scan.txt"
scan_row() {
    local system=$1; shift
    local t0 t1
    t0=$(date +%s.%N)
    "$@" > "$WORK/scan-$system.out" 2> "$WORK/scan-$system.err" || { echo "$system scan failed:" >&2; tail -5 "$WORK/scan-$system.err" >&2; return 1; }
    t1=$(date +%s.%N)
    python3 - "$system" "$t0" "$t1" "${SCAN:-1000}" >> "$RESULTS_FILE" <<'PY'
import json, sys
system, t0, t1, n = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
secs = t1 - t0
print(json.dumps({"system": system, "scenario": f"scan {n} domains (no SMTP)", "value": n / secs,
                  "unit": "domains/s", "detail": {"seconds": f"{secs:.2f}", "domains": str(n)}}))
PY
    tail -n 1 "$RESULTS_FILE" >&2
}
scan_row mtasts "$MTASTS" scan --nameserver 127.0.0.1:53 --ca-file "$MTASTS_LAB_CA" --no-smtp --format jsonl "$WORK/scan.txt"
grep -q '"mode":"enforce"' "$WORK/scan-mtasts.out" || { echo "mtasts scan found no policies" >&2; exit 1; }
REQUESTS_CA_BUNDLE="$MTASTS_LAB_CA" SSL_CERT_FILE="$MTASTS_LAB_CA" \
    scan_row checkdmarc "$CHECKDMARC" -n 127.0.0.1 --skip-tls -f json "$WORK/scan.txt"
grep -q '"mode": "enforce"' "$WORK/scan-checkdmarc.out" || { echo "checkdmarc found no policies" >&2; exit 1; }

# Cold lookups: distinct domains, each needing TXT + HTTPS (with added latency), 64 connections.
"$MTASTS" lab ctl --name "$MTASTS_LAB_NAME" latency "${DELAY_MS:-20}" >/dev/null
# Each daemon has its own cache, so both fetch every domain from the lab.
for sys in mtasts:8461 pmsr:8462; do
    row --target "127.0.0.1:${sys#*:}" --system "${sys%%:*}" --scenario "cold lookups, 64 conn" \
        --prefix cold --domains "$COLD" --conns 64 --once --seconds 240
done

# One hot cold domain: HOTCOLD simultaneous lookups of one uncached domain.
row --target 127.0.0.1:8461 --system mtasts --scenario "one cold domain x$HOTCOLD at once" --prefix hotcold --domains 1 --conns "$HOTCOLD" --requests "$HOTCOLD" --seconds 60
counts=$("$MTASTS" lab ctl --name "$MTASTS_LAB_NAME" count hotcold0.test)
# The promise: simultaneous lookups of one cold domain cost one TXT query and one fetch.
[ "$counts" = "ok: txt_queries=1 policy_fetches=1" ] || { echo "one cold domain: the lab saw $counts" >&2; exit 1; }
echo "{\"system\":\"mtasts\",\"scenario\":\"one cold domain: lab saw\",\"value\":$(sed -E 's/.*policy_fetches=([0-9]+).*/\1/' <<<"$counts"),\"unit\":\"fetches\",\"detail\":{\"lab\":\"${counts#ok: }\"}}" >> "$RESULTS_FILE"
tail -n 1 "$RESULTS_FILE" >&2
