#!/usr/bin/env bash
# Real Exim (Debian's 4.96, unpacked by .ci/exim.sh) enforcing MTA-STS through `mtasts daemon`
# and the shipped snippets (dist/exim/), inside the lab's network namespace. Run by
# crates/cli/tests/exim_e2e.rs through `mtasts lab run`; prints lines the test reads:
#   ANSWER <domain> <answer>   what the daemon told Exim
#   ROUTE <exim -bt output>    how Exim routes an address to an enforce domain
#   STATUS <domain> <status>   first outcome per recipient domain (delivered/deferred/failed/pending)
#   FIXED <domain> <status>    after the world was fixed and the queue run
#   DOWN <domain> <status>     with mtasts stopped; UP <domain> <status> after it is back
#   SESSION <line>             the lab's record of each SMTP session
#   MAINLOG <line>             Exim's main log
set -euo pipefail

MTASTS="$1"
EXIM="$2"
DIST="$3"
: "${MTASTS_LAB_CA:?run inside mtasts lab run}" "${MTASTS_LAB_NAME:?}"
WORK=$(mktemp -d /tmp/mtasts-exim.XXXXXX)
DAEMON_PID=
EXIM_PID=

COLLECT_PID=
cleanup() {
    [ -n "$COLLECT_PID" ] && kill "$COLLECT_PID" 2>/dev/null || true
    [ -n "$EXIM_PID" ] && kill "$EXIM_PID" 2>/dev/null || true
    [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null || true
    if [ "${KEEP_EXIM_WORK:-}" = 1 ]; then echo "work dir kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

mkdir -p "$WORK/spool" "$WORK/log"
chmod 0755 "$WORK"
chown Debian-exim "$WORK/spool" "$WORK/log"
cp "$MTASTS_LAB_CA" "$WORK/lab-ca.pem"
chmod 0644 "$WORK/lab-ca.pem"

# A private Exim: its own spool and logs, mail accepted on 127.0.0.1:2526 from loopback, the
# lab CA as trust store, the shipped mtasts routers and transports before the usual
# dnslookup router (which remote mail then never reaches), quick retries.
cat >"$WORK/exim.conf" <<CONF
MTASTS_ANSWERS = inet:127.0.0.1:8462
MTASTS_TIMEOUT = 10s
MTASTS_CA_FILE = $WORK/lab-ca.pem
MTASTS_SUBMIT = $WORK/submit.sock
.include $DIST/main.conf
primary_hostname = sender.lab.test
exim_path = $EXIM
spool_directory = $WORK/spool
log_file_path = $WORK/log/%slog
daemon_smtp_ports = 2526
local_interfaces = 127.0.0.1
domainlist local_domains = sender.lab.test
acl_smtp_rcpt = acl_rcpt
tls_advertise_hosts =
dns_dnssec_ok = 1
keep_environment =
never_users =
delay_warning =

begin acl
acl_rcpt:
  accept hosts = 127.0.0.1
  deny

begin routers
.include $DIST/routers.conf

dnslookup:
  driver = dnslookup
  domains = ! +local_domains
  transport = remote_smtp
  no_more

begin transports
.include $DIST/transports.conf

remote_smtp:
  driver = smtp

begin retry
*   *   F,10m,2s
CONF

start_daemon() {
    "$MTASTS" daemon --config "$WORK/mtasts.toml" >>"$WORK/daemon.log" 2>&1 &
    DAEMON_PID=$!
    for _ in $(seq 200); do
        (exec 3<>/dev/tcp/127.0.0.1/8462) 2>/dev/null && return 0
        sleep 0.05
    done
    echo "daemon did not start" >&2; cat "$WORK/daemon.log" >&2; exit 1
}
cat >"$WORK/mtasts.toml" <<EOF2
listen = ["127.0.0.1:8461"]
exim_listen = ["127.0.0.1:8462"]
cache = "sqlite:$WORK/cache.sqlite3"
ca_file = "$MTASTS_LAB_CA"
postfix_version = "3.7.0"
postfix_dnssec = "yes"
[resolver]
txt_grace = 1
negative_ttl = 1
fetch_backoff = 1
[zones.exim]
dane = true
remember_tls = "enforce"
[remember]
reload_interval = "200ms"
EOF2
start_daemon

# The TLS-RPT collector Exim's event_action submits to (world-writable here: Exim's transports
# run as Debian-exim).
"$MTASTS" tlsrpt collect --db "sqlite:$WORK/tlsrpt.db" --socket "$WORK/tlsrpt.sock" \
    --submit-socket "$WORK/submit.sock" --socket-mode 0666 >"$WORK/collect.log" 2>&1 &
COLLECT_PID=$!
for _ in $(seq 200); do [ -S "$WORK/submit.sock" ] && break; sleep 0.05; done

"$EXIM" -C "$WORK/exim.conf" -bV >"$WORK/bv.log" 2>&1 || { cat "$WORK/bv.log" >&2; exit 1; }
"$EXIM" -C "$WORK/exim.conf" -bd -q2s &
EXIM_PID=$!
for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/2526) 2>/dev/null && break
    sleep 0.05
done

answer() { exec 3<>/dev/tcp/127.0.0.1/8462; printf '%s\n' "$1" >&3; cat <&3; exec 3<&-; }
# DANE scenarios of the lab's signed zones: the daemon (no nameserver set: /etc/resolv.conf,
# the namespace's validating unbound) and Exim (dns_dnssec_ok, the same resolver) share a view.
DANE_DOMAINS=(dane.test dane-ta.test dane-cname.test dane-wrong.test dane-unusable.test dane-partial.test dane-partial-bogus.test dane-bogus.test dane-expired.test dane-unsigned.test dane-notlsa-nsec3.test)
for d in sni-only.test mx-mismatch.test testing-bad-cert.test no-txt.test "${DANE_DOMAINS[@]}"; do
    echo "ANSWER $d $(answer "$d")"
done

echo "ROUTE $("$EXIM" -C "$WORK/exim.conf" -bt user@mx-partial.test 2>&1 | tr -s '\n ' '  ')"

DOMAINS=(sni-only.test mx-wrong-name.test mx-mismatch.test mx-partial.test testing.test testing-bad-cert.test no-txt.test "${DANE_DOMAINS[@]}")
send() {
    python3 - "$@" <<'PY'
import smtplib, sys
with smtplib.SMTP("127.0.0.1", 2526, timeout=20) as s:
    for d in sys.argv[1:]:
        s.sendmail("tester@sender.lab.test", [f"user@{d}"], f"Subject: mtasts exim e2e {d}\r\n\r\nhello {d}\r\n")
PY
}
send "${DOMAINS[@]}"

# The newest outcome for a recipient domain in Exim's main log.
status_of() {
    local line
    line=$(grep -E "(=>|==|\*\*) user@$1( |$)" "$WORK/log/mainlog" 2>/dev/null | tail -n 1 || true)
    case "$line" in
        *"=> user@"*) echo delivered ;;
        *"== user@"*) echo deferred ;;
        *"** user@"*) echo failed ;;
        *) echo pending ;;
    esac
}
wait_all() {
    local deadline=$((SECONDS + 40)) d pending
    while [ $SECONDS -lt $deadline ]; do
        pending=0
        for d in "$@"; do [ "$(status_of "$d")" = pending ] && pending=1; done
        [ $pending = 0 ] && return 0
        sleep 0.5
    done
}
wait_all "${DOMAINS[@]}"
for d in "${DOMAINS[@]}"; do echo "STATUS $d $(status_of "$d")"; done

# Fix the world: a valid certificate on the wrong-name MX, a policy listing the MX the
# mismatch domain really uses (new id).
"$MTASTS" lab ctl --name "$MTASTS_LAB_NAME" smtp mx1.mx-wrong-name.test '{cert = "valid"}' >/dev/null
"$MTASTS" lab ctl --name "$MTASTS_LAB_NAME" policy mx-mismatch.test \
    '{body = "version: STSv1\nmode: enforce\nmx: mx.elsewhere.test\nmax_age: 604800\n"}' >/dev/null
"$MTASTS" lab ctl --name "$MTASTS_LAB_NAME" txt _mta-sts.mx-mismatch.test 'v=STSv1; id=fixed2;' >/dev/null
deadline=$((SECONDS + 40))
while [ $SECONDS -lt $deadline ]; do
    [ "$(status_of mx-wrong-name.test)" = delivered ] && [ "$(status_of mx-mismatch.test)" = delivered ] && break
    sleep 1
done
for d in mx-wrong-name.test mx-mismatch.test; do echo "FIXED $d $(status_of "$d")"; done

# mtasts stopped: mail to an enforce domain waits; back up, it goes.
kill "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null || true; DAEMON_PID=
send enforce.test
deadline=$((SECONDS + 20))
while [ $SECONDS -lt $deadline ] && [ "$(status_of enforce.test)" = pending ]; do sleep 0.5; done
echo "DOWN enforce.test $(status_of enforce.test)"
start_daemon
deadline=$((SECONDS + 30))
while [ $SECONDS -lt $deadline ] && [ "$(status_of enforce.test)" != delivered ]; do sleep 0.5; done
echo "UP enforce.test $(status_of enforce.test)"

# What the collector counted from Exim's events: per domain and policy type, sessions and
# failures; per failure, its result type.
python3 - "$WORK/tlsrpt.db" <<'PY'
import json, sqlite3, sys
con = sqlite3.connect(sys.argv[1])
for domain, policy, ok, failed in con.execute(
        "SELECT domain, policy, SUM(successful), SUM(failed) FROM session_policies GROUP BY domain, policy ORDER BY domain"):
    print(f"TLSRPT {domain} {json.loads(policy)['policy-type']} ok={ok} failed={failed}")
for domain, failure, n in con.execute(
        "SELECT domain, failure, SUM(sessions) FROM session_failures GROUP BY domain, failure ORDER BY domain"):
    print(f"TLSRPT-FAILURE {domain} {json.loads(failure)['result-type']} {n}")
PY

# Remembered TLS (remember_tls = enforce in the exim zone): no-txt.test (no MTA-STS) taken in
# from a preload list, then its MX stops offering STARTTLS: the mtasts_encrypt router and
# transport require TLS, so the message waits instead of going in plaintext.
printf '{"format":"mtasts-remembered-tls","version":1,"domains":[{"domain":"no-txt.test","until":%s}]}' \
    "$(( $(date +%s) + 86400 ))" >"$WORK/preload.json"
"$MTASTS" remembered --config "$WORK/mtasts.toml" import "$WORK/preload.json" >/dev/null
sleep 0.5
echo "REMEMBERED-ANSWER $(answer no-txt.test)"
"$MTASTS" lab ctl --name "$MTASTS_LAB_NAME" smtp mx1.no-txt.test '{starttls = "not-offered"}' >/dev/null
send no-txt.test
deadline=$((SECONDS + 20))
while [ $SECONDS -lt $deadline ] && [ "$(status_of no-txt.test)" = delivered ]; do sleep 0.5; done
echo "REMEMBERED-STRIPPED no-txt.test $(status_of no-txt.test)"

SESSIONS="/run/mtasts-lab/$MTASTS_LAB_NAME/smtp-sessions.log"
sleep 0.3
sed 's/^/SESSION /' "$SESSIONS" 2>/dev/null || true
sed 's/^/MAINLOG /' "$WORK/log/mainlog"
