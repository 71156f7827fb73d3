#!/usr/bin/env bash
# `mtasts doctor` against a real private Postfix configuration (postconf -c), in its right
# and broken forms, with a running daemon, Exim snippets and serve's files, inside the lab's
# namespace (its resolv.conf names the lab DNS, which sets the AD bit for the DNSSEC
# scenarios, so "validating" and "not validating" are both there to see).
# Args: MTASTS DIST_EXIM. Prints "== NAME exit=N" and the doctor's output for each case.
set -euo pipefail
mtasts=$1
dist=$2
work=$(mktemp -d /tmp/mtasts-doctor.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

cat > "$work/daemon.toml" <<TOML
listen = ["127.0.0.1:8461"]
cache = "sqlite:$work/cache.sqlite3"
exim_listen = ["127.0.0.1:8462"]
postfix_version = "3.7.0"
postfix_dnssec = "yes"
TOML
sed 's/^exim_listen.*//' "$work/daemon.toml" > "$work/daemon-no-exim.toml"
# DANE asked of the lab's own (non-validating) server, not the namespace's resolver.
{ cat "$work/daemon.toml"; printf 'dane_nameserver = "127.0.0.1:53"\n'; } > "$work/daemon-other-resolver.toml"
# Postfix 3.7 (Debian 12's) with a zone forcing the TLSRPT attributes, and a collector running.
{ cat "$work/daemon.toml"; printf '[default_zone]\ntlsrpt = true\n'; } > "$work/daemon-tlsrpt.toml"
"$mtasts" tlsrpt collect --db "sqlite:$work/tlsrpt.sqlite3" --socket "$work/collector.sock" 2> "$work/collect.log" &
for _ in $(seq 100); do [ -S "$work/collector.sock" ] && break; sleep 0.1; done
"$mtasts" daemon --config "$work/daemon.toml" --ca-file "$MTASTS_LAB_CA" 2> "$work/daemon.log" &
for _ in $(seq 100); do
  (exec 3<>/dev/tcp/127.0.0.1/8461) 2>/dev/null && break
  sleep 0.1
done

postfix_conf() { # NAME, then main.cf lines on stdin
  mkdir -p "$work/$1"
  cat > "$work/$1/main.cf"
}
postfix_conf right <<CF
smtp_tls_policy_maps = socketmap:inet:127.0.0.1:8461:postfix
smtp_tls_CAfile = $MTASTS_LAB_CA
smtp_dns_support_level = dnssec
CF
postfix_conf broken <<CF
smtp_tls_policy_maps = socketmap:inet:127.0.0.1:8469:postfix
smtp_dns_support_level = may
CF
postfix_conf empty-ca <<CF
smtp_tls_policy_maps = socketmap:inet:127.0.0.1:8461:postfix
smtp_tls_CAfile = $work/empty.pem
smtp_dns_support_level = dnssec
CF
: > "$work/empty.pem"
postfix_conf no-map <<CF
smtp_tls_CAfile = $MTASTS_LAB_CA
CF

# Exim: the shipped snippets in a plain configuration, and the same with the DNS router first.
{
  cat "$dist/main.conf"
  echo "begin routers"
  cat "$dist/routers.conf"
  printf 'dnslookup:\n  driver = dnslookup\n  transport = remote_smtp\n'
  echo "begin transports"
  cat "$dist/transports.conf"
  printf 'remote_smtp:\n  driver = smtp\n'
} > "$work/exim.conf"
{
  cat "$dist/main.conf"
  echo "begin routers"
  printf 'dnslookup:\n  driver = dnslookup\n  transport = remote_smtp\n'
  cat "$dist/routers.conf"
  echo "begin transports"
  cat "$dist/transports.conf"
} > "$work/exim-misordered.conf"

# serve: enforce.test served with a policy other than the lab publishes (a stale TXT id), its
# certificate expiring in 5 days; dane.test with none.
mkdir -p "$work/policies" "$work/certs"
printf 'version: STSv1\nmode: enforce\nmx: mx.enforce.test\nmax_age: 86400\n' > "$work/policies/enforce.test.txt"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 5 \
  -subj /CN=mta-sts.enforce.test -addext subjectAltName=DNS:mta-sts.enforce.test \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
cat "$work/cert.pem" "$work/key.pem" > "$work/certs/enforce.test.pem"

doctor() { # NAME ARGS...
  local name=$1 status=0
  shift
  "$mtasts" doctor "$@" > "$work/out" 2>&1 || status=$?
  echo "== $name exit=$status"
  cat "$work/out"
}
# Where no collector runs (the default socket path does not exist in the lab either).
doctor right --config "$work/daemon.toml" --postfix-config "$work/right" --dnssec-probe dane.test --exim-config "$work/exim.conf"
doctor right-json --config "$work/daemon.toml" --postfix-config "$work/right" --dnssec-probe dane.test --json
doctor broken --config "$work/daemon.toml" --postfix-config "$work/broken" --dnssec-probe dane.test
doctor not-validating --config "$work/daemon.toml" --postfix-config "$work/right" --dnssec-probe enforce.test
doctor other-resolver --config "$work/daemon-other-resolver.toml" --postfix-config "$work/right" --dnssec-probe dane.test
doctor empty-ca --config "$work/daemon.toml" --postfix-config "$work/empty-ca" --dnssec-probe dane.test
doctor no-map --config "$work/daemon.toml" --postfix-config "$work/no-map" --dnssec-probe dane.test
doctor exim-misordered --config "$work/daemon.toml" --no-postfix --dnssec-probe dane.test --exim-config "$work/exim-misordered.conf"
doctor exim-no-listen --config "$work/daemon-no-exim.toml" --no-postfix --dnssec-probe dane.test --exim-config "$work/exim.conf"
# Remembered TLS on for Exim, with snippets from before mtasts_encrypt existed.
{ cat "$work/daemon.toml"; printf '[zones.exim]\nremember_tls = "enforce"\n'; } > "$work/daemon-remember.toml"
sed 's/^mtasts_encrypt:/mtasts_encrypt_old:/' "$work/exim.conf" > "$work/exim-old.conf"
doctor exim-remember --config "$work/daemon-remember.toml" --no-postfix --dnssec-probe dane.test --exim-config "$work/exim.conf"
doctor exim-remember-old --config "$work/daemon-remember.toml" --no-postfix --dnssec-probe dane.test --exim-config "$work/exim-old.conf"
doctor serve --config "$work/daemon.toml" --no-postfix --dnssec-probe dane.test --serve-policies "$work/policies" --serve-certs "$work/certs"
doctor tlsrpt-old --config "$work/daemon-tlsrpt.toml" --postfix-config "$work/right" --dnssec-probe dane.test --tlsrpt-socket "$work/collector.sock"
