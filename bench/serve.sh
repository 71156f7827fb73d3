#!/usr/bin/env bash
# One run of `mtasts serve` against nginx (Debian's) on the same sites, certificates and policy
# files, on loopback, one server at a time: new TLS connections per second (a full handshake
# and one request each), keep-alive requests per second, and memory per site (PSS of the
# process tree, at SERVE_MEMORY_SITES sites beyond the same server with one site).
# Called by run.sh; appends result lines to RESULTS_FILE. serve runs without its per-client
# rate limit (nginx has none configured, and all the load comes from one address).
set -euo pipefail
: "${MTASTS:?}" "${BENCH:?}" "${RESULTS_FILE:?}" "${SERVE_SITES:?}" "${SERVE_MEMORY_SITES:?}" "${SECONDS_PER:?}" "${SERVE_CONNS:?}"
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
[ -x "$NGINX" ] || { echo "nginx not found (apt-get install nginx)" >&2; exit 1; }
WORK=$(mktemp -d /tmp/mtasts-bench-serve.XXXXXX)
PORT=18443
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
wait_port() { for _ in $(seq 400); do (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && return 0; sleep 0.05; done; echo "port $PORT never opened" >&2; return 1; }
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# start SYSTEM DIR: starts it on PORT serving DIR; sets PID.
start() {
    case "$1" in
        mtasts)
            "$MTASTS" serve --listen "127.0.0.1:$PORT" --policies "$2/policies" --certs "$2/certs" --no-watch --client-rate 0 \
                >"$2/serve.log" 2>&1 &
            ;;
        nginx)
            mkdir -p "$2"/tmp-{body,proxy,fastcgi,uwsgi,scgi}
            "$NGINX" -c "$2/nginx.conf" -e "$2/nginx-error.log" >"$2/nginx.out" 2>&1 &
            ;;
    esac
    PID=$!
    PIDS+=("$PID")
    wait_port
}

# Every request must have been answered with the site's policy.
row() {
    "$BENCH" serve-load "$@" >> "$RESULTS_FILE"
    tail -n 1 "$RESULTS_FILE" >&2
    tail -n 1 "$RESULTS_FILE" | python3 -c '
import json, sys
r = json.load(sys.stdin)
d = r["detail"]
if d.get("OK") != d.get("requests") or d.get("requests") in (None, "0"):
    sys.exit(f"{r['"'"'system'"'"']} / {r['"'"'scenario'"'"']}: not every request answered: {d}")
'
}

"$BENCH" serve-sites --dir "$WORK/load" --sites "$SERVE_SITES" --port "$PORT" --workers "$(nproc)"
for sys in mtasts nginx; do
    start "$sys" "$WORK/load"
    row --target "127.0.0.1:$PORT" --ca "$WORK/load/ca.pem" --sites "$SERVE_SITES" --conns "$SERVE_CONNS" \
        --seconds "$SECONDS_PER" --mode new --system "$sys"
    row --target "127.0.0.1:$PORT" --ca "$WORK/load/ca.pem" --sites "$SERVE_SITES" --conns "$SERVE_CONNS" \
        --seconds "$SECONDS_PER" --mode keepalive --system "$sys"
    stop "$PID"
done

"$BENCH" serve-sites --dir "$WORK/one" --sites 1 --port "$PORT" --workers "$(nproc)"
"$BENCH" serve-sites --dir "$WORK/many" --sites "$SERVE_MEMORY_SITES" --port "$PORT" --workers "$(nproc)"
for sys in mtasts nginx; do
    # The same short keep-alive load before each measurement, so both have served.
    start "$sys" "$WORK/one"
    "$BENCH" serve-load --target "127.0.0.1:$PORT" --ca "$WORK/one/ca.pem" --sites 1 --conns 4 --seconds 1 \
        --mode keepalive --system warm >/dev/null
    baseline=$("$BENCH" serve-memory --pid "$PID" --print)
    stop "$PID"
    start "$sys" "$WORK/many"
    "$BENCH" serve-load --target "127.0.0.1:$PORT" --ca "$WORK/many/ca.pem" --sites "$SERVE_MEMORY_SITES" \
        --conns 4 --seconds 1 --mode keepalive --system warm >/dev/null
    "$BENCH" serve-memory --pid "$PID" --sites "$SERVE_MEMORY_SITES" --baseline "$baseline" --system "$sys" \
        >> "$RESULTS_FILE"
    tail -n 1 "$RESULTS_FILE" >&2
    stop "$PID"
done
