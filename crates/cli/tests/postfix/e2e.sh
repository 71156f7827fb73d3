#!/usr/bin/env bash
# Real Postfix (Debian's package) against `mtasts daemon`, inside the lab's network namespace.
# Run by crates/cli/tests/postfix_e2e.rs through `mtasts lab run`; prints lines the test reads:
#   POSTMAP <value>         what postmap -q got from the daemon (POSTMAP-DANE: a DANE domain)
#   STATUS <domain> <status> first delivery outcome per recipient domain
#   FIXED <domain> <status> outcome after the world was fixed and the queue flushed
#   SESSION <line>          the lab's record of each SMTP session
#   DNSSEC <yes|no>         what the daemon read off this Postfix's smtp_dns_support_level
#   POSTMAP-TRUST[-OTHER]   the answers for the domain with conditional trust and its neighbour
# Second argument: `dnssec` (smtp_dns_support_level = dnssec, DANE applies) or `default`
# (Debian's default, no DNSSEC lookups: the daemon must give MTA-STS answers, never `dane`).
set -euo pipefail

MTASTS="$1"
MODE="${2:-dnssec}"
: "${MTASTS_LAB_CA:?run inside mtasts lab run}" "${MTASTS_LAB_NAME:?}" "${MTASTS_LAB_PRIVATE_CA:?}"
WORK=$(mktemp -d /tmp/mtasts-postfix.XXXXXX)
DAEMON_PID=

cleanup() {
    postfix -c "$ETC" stop >/dev/null 2>&1 || true
    [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null || true
    if [ "${KEEP_POSTFIX_WORK:-}" = 1 ]; then echo "work dir kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# A private Postfix instance (tests/postfix/instance.sh).
. "$(dirname "$0")/instance.sh"
postfix_instance
if [ "$MODE" = dnssec ]; then
    # DANE: trust the AD bit of the namespace's resolver, the lab's validating unbound (its
    # /etc/resolv.conf says trust-ad), as a production host would with a local unbound.
    postconf -c "$ETC" -e 'smtp_dns_support_level = dnssec'
fi

# The daemon: memory cache, the lab's DNS and CA, a short TXT grace so a fixed policy is seen
# within seconds. Conditional trust: the lab's second CA for private-ca.test only (a copy
# Postfix's unprivileged smtp process can read).
cp "$MTASTS_LAB_PRIVATE_CA" "$WORK/private-ca.pem"
chmod 0644 "$WORK/private-ca.pem"
cat >"$WORK/mtasts.toml" <<EOF
listen = ["127.0.0.1:8461"]
cache = "memory"
nameserver = "127.0.0.1:53"
dane_nameserver = "${MTASTS_LAB_RESOLVER:?run in a lab with real DNSSEC}"
ca_file = "$MTASTS_LAB_CA"
[resolver]
txt_grace = 1
negative_ttl = 1
fetch_backoff = 1
[[trust]]
name = "lab-private"
domains = ["private-ca.test"]
anchors = ["$WORK/private-ca.pem"]
EOF
# MAIL_CONFIG points postconf (which the daemon asks, as on a real host) at this instance.
MAIL_CONFIG="$ETC" "$MTASTS" daemon --config "$WORK/mtasts.toml" >"$WORK/daemon.log" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 200); do
    grep -q "mtasts daemon ready" "$WORK/daemon.log" 2>/dev/null && break
    sleep 0.05
done

grep -q 'postfix_dnssec=yes' "$WORK/daemon.log" && echo "DNSSEC yes" || echo "DNSSEC no"
echo "POSTMAP $(postmap -c "$ETC" -q enforce.test socketmap:inet:127.0.0.1:8461:postfix)"
echo "POSTMAP-DANE $(postmap -c "$ETC" -q dane-sts.test socketmap:inet:127.0.0.1:8461:postfix)"
# Every DANE scenario of the signed lab zones: what the daemon answers (NOTFOUND: no policy;
# TEMP: the socketmap's temporary error, which postmap prints as a warning).
DANE_DOMAINS=(dane.test dane-ta.test dane-cname.test dane-wrong.test dane-sts.test dane-unusable.test dane-partial.test dane-partial-bogus.test dane-bogus.test dane-expired.test dane-ds-mismatch.test dane-unsigned.test dane-offsite.test dane-notlsa.test dane-notlsa-nsec3.test)
for d in "${DANE_DOMAINS[@]}"; do
    if out=$(postmap -c "$ETC" -q "$d" socketmap:inet:127.0.0.1:8461:postfix 2>&1); then
        echo "POSTMAP-OF $d $out"
    elif temp=$(grep -o 'temporary error: .*' <<<"$out"); then
        echo "POSTMAP-OF $d TEMP ${temp#temporary error: }"
    else
        echo "POSTMAP-OF $d NOTFOUND"
    fi
done
echo "POSTMAP-TRUST $(postmap -c "$ETC" -q private-ca.test socketmap:inet:127.0.0.1:8461:postfix)"
echo "POSTMAP-TRUST-OTHER $(postmap -c "$ETC" -q private-ca-other.test socketmap:inet:127.0.0.1:8461:postfix || echo notfound)"

postfix_start

DOMAINS=(sni-only.test mx-wrong-name.test mx-mismatch.test testing-bad-cert.test private-ca.test private-ca-other.test mx-untrusted.test "${DANE_DOMAINS[@]}")
postfix_send "${DOMAINS[@]}"

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

# Fix the world: a valid certificate on the wrong-name MX; a corrected policy (new id) that
# lists the MX the mismatch domain really uses.
"$MTASTS" lab ctl --name "$MTASTS_LAB_NAME" smtp mx1.mx-wrong-name.test '{cert = "valid"}' >/dev/null
"$MTASTS" lab ctl --name "$MTASTS_LAB_NAME" policy mx-mismatch.test \
    '{body = "version: STSv1\nmode: enforce\nmx: mx.elsewhere.test\nmax_age: 604800\n"}' >/dev/null
"$MTASTS" lab ctl --name "$MTASTS_LAB_NAME" txt _mta-sts.mx-mismatch.test 'v=STSv1; id=fixed2;' >/dev/null

deadline=$((SECONDS + 40))
while [ $SECONDS -lt $deadline ]; do
    [ "$(status_of mx-wrong-name.test)" = sent ] && [ "$(status_of mx-mismatch.test)" = sent ] && break
    postqueue -c "$ETC" -f
    sleep 1
done
for d in mx-wrong-name.test mx-mismatch.test; do echo "FIXED $d $(status_of "$d")"; done

# The lab appends finished sessions to its log every 100 ms: wait until every message Postfix
# sent shows there as a delivered session (bounded), rather than sleeping and hoping.
SESSIONS="/run/mtasts-lab/$MTASTS_LAB_NAME/smtp-sessions.log"
deadline=$((SECONDS + 10))
while [ $SECONDS -lt $deadline ]; do
    sent=$(grep -c "status=sent" "$WORK/maillog" || true)
    delivered=$(grep -c " delivered=1$" "$SESSIONS" 2>/dev/null || true)
    [ "${delivered:-0}" -ge "${sent:-0}" ] && break
    sleep 0.05
done
sed 's/^/SESSION /' "$SESSIONS"
grep -E "status=|Verified|Untrusted|Trusted|certificate verification failed|server certificate|not trusted" "$WORK/maillog" | sed 's/^/MAILLOG /' || true
