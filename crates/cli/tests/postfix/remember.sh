#!/usr/bin/env bash
# Remembered TLS with real Postfix (Debian's 3.7, which has no TLSRPT results: the learner
# reads its log), inside the lab's network namespace. Run by crates/cli/tests/postfix_remember.rs
# through `mtasts lab run`. Args: MTASTS MODE (enforce|report). Prints lines the test reads:
#   LEARNED <domain> <n>     TLS deliveries before STARTTLS is stripped
#   POSTMAP <answer>         what the daemon tells Postfix for the remembered domain
#   STRIPPED <status>        the delivery after the lab stopped offering STARTTLS
#   FORGOTTEN <status>       after `mtasts remembered forget` and a queue flush
#   LEARNER <line>           what the learner logged
#   DAEMON <line>            the daemon's remembered-TLS log lines (report mode)
#   MAILLOG <line>           Postfix's log (the lines the follower reads)
set -euo pipefail

MTASTS="$1"
MODE="$2"
: "${MTASTS_LAB_CA:?run inside mtasts lab run}" "${MTASTS_LAB_NAME:?}"
WORK=$(mktemp -d /tmp/mtasts-remember.XXXXXX)
DAEMON_PID=
LEARNER_PID=
DOMAIN=no-txt.test

cleanup() {
    postfix -c "$ETC" stop >/dev/null 2>&1 || true
    [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null || true
    [ -n "$LEARNER_PID" ] && kill "$LEARNER_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

. "$(dirname "$0")/instance.sh"
postfix_instance
: >"$WORK/maillog"

# Remembered after 3 TLS deliveries (no span, for the test), read by the daemon every 200 ms.
cat >"$WORK/mtasts.toml" <<EOF
listen = ["127.0.0.1:8461"]
cache = "sqlite:$WORK/cache.sqlite3"
nameserver = "127.0.0.1:53"
ca_file = "$MTASTS_LAB_CA"
[resolver]
txt_grace = 1
negative_ttl = 1
[default_zone]
remember_tls = "$MODE"
[remember]
min_deliveries = 3
min_span = "0s"
reload_interval = "200ms"
EOF
MAIL_CONFIG="$ETC" "$MTASTS" daemon --config "$WORK/mtasts.toml" >"$WORK/daemon.log" 2>&1 &
DAEMON_PID=$!
"$MTASTS" remembered --config "$WORK/mtasts.toml" learn --postfix-log "$WORK/maillog" --from-start \
    >"$WORK/learner.log" 2>&1 &
LEARNER_PID=$!
for _ in $(seq 200); do
    grep -q "mtasts daemon ready" "$WORK/daemon.log" 2>/dev/null && break
    sleep 0.05
done
postfix_start

# Waits (bounded) until DOMAIN has N status=STATUS lines.
wait_count() {
    local deadline=$((SECONDS + 40))
    while [ $SECONDS -lt $deadline ]; do
        [ "$(count_of "$DOMAIN" "$2")" -ge "$1" ] && return 0
        postqueue -c "$ETC" -f >/dev/null 2>&1 || true
        sleep 0.5
    done
}

# Three messages, one session each: three TLS deliveries teach the learner.
for i in 1 2 3; do
    postfix_send "$DOMAIN"
    wait_count "$i" sent
done
echo "LEARNED $DOMAIN $(count_of "$DOMAIN" sent)"
deadline=$((SECONDS + 10))
until "$MTASTS" remembered --config "$WORK/mtasts.toml" list | grep -q "^$DOMAIN  remembered"; do
    [ $SECONDS -lt $deadline ] || break
    sleep 0.2
done
"$MTASTS" remembered --config "$WORK/mtasts.toml" list | sed 's/^/LIST /'
sleep 0.5 # the daemon reads the memories every 200 ms
echo "POSTMAP $(postmap -c "$ETC" -q "$DOMAIN" socketmap:inet:127.0.0.1:8461:postfix || echo notfound)"

# The attack: the MX stops offering STARTTLS.
"$MTASTS" lab ctl --name "$MTASTS_LAB_NAME" smtp "mx1.$DOMAIN" '{starttls = "not-offered"}' >/dev/null
postfix_send "$DOMAIN"
if [ "$MODE" = enforce ]; then
    wait_count 1 deferred
else
    wait_count 4 sent
fi
echo "STRIPPED $(status_of "$DOMAIN")"

if [ "$MODE" = enforce ]; then
    # The receiver dropped TLS for good: forgotten, the deferred message goes out.
    "$MTASTS" remembered --config "$WORK/mtasts.toml" forget "$DOMAIN" | sed 's/^/FORGET /'
    sleep 0.5
    wait_count 4 sent
    echo "FORGOTTEN $(status_of "$DOMAIN")"
fi
sleep 0.5 # the learner reads the last lines
sed 's/^/LEARNER /' "$WORK/learner.log"
grep "remembered TLS" "$WORK/daemon.log" | sed 's/^/DAEMON /' || true
grep -E "postfix/smtp\[" "$WORK/maillog" | sed 's/^/MAILLOG /' || true
