#!/usr/bin/env bash
# Run by crates/cli/tests/dane_signed.rs through `mtasts lab run` (real DNSSEC: the lab's zones
# signed by dnssec-signzone, served by NSD, validated by unbound, the namespace's resolver).
# Prints lines the test reads:
#   DIG <type> <name> <rcode> <ad|-> [cd]   what the validating resolver answered
#   DIRECT <name> <ad|->                    what the lab's own (unsigned) server answered
#   CHECK <domain> dane=<decision> codes=<dane-step codes> summary=<summary>
#   QUERY <domain> <dane line of `mtasts query`>
#   VALIDATE <domain> dane=<decision> by=<validator> codes=<dane-step codes>   `check --validate`
#                                           through a resolver that does not validate
set -euo pipefail
MTASTS="${1:?usage: signed.sh MTASTS}"
: "${MTASTS_LAB_CA:?run inside mtasts lab run}" "${MTASTS_LAB_RESOLVER:?run in a lab with real DNSSEC}"

dig_status() { # TYPE NAME [+cd]
    local out rcode ad
    out=$(dig +dnssec +tries=1 +time=5 "$@" 2>&1)
    rcode=$(sed -n 's/.*status: \([A-Z]*\),.*/\1/p' <<<"$out" | head -n 1)
    ad=-; grep -qE '^;; flags:[a-z ]* ad[ ;]' <<<"$out" && ad=ad
    echo "DIG $1 $2 ${rcode:-none} $ad${3:+ cd}"
}
dig_status MX dane.test
dig_status TLSA _25._tcp.mx1.dane.test
dig_status TLSA _25._tcp.mx1.dane-ta.test
dig_status TLSA _25._tcp.mx1.dane-bogus.test
dig_status TLSA _25._tcp.mx1.dane-bogus.test +cd
dig_status MX dane-expired.test
dig_status MX dane-ds-mismatch.test
dig_status TLSA _25._tcp.mx1.dane-unsigned.test
dig_status TLSA _25._tcp.mx1.offsite-hosting.test
dig_status TLSA _25._tcp.mx1.dane-notlsa.test
dig_status TLSA _25._tcp.mx1.dane-notlsa-nsec3.test
dig_status TXT _mta-sts.enforce.test
# The denial proofs themselves: NSEC in one zone, NSEC3 in the other.
echo "PROOF dane-notlsa.test $(dig +dnssec +noall +authority TLSA _25._tcp.mx1.dane-notlsa.test | awk '{print $4}' | sort -u | tr '\n' ' ')"
echo "PROOF dane-notlsa-nsec3.test $(dig +dnssec +noall +authority TLSA _25._tcp.mx1.dane-notlsa-nsec3.test | awk '{print $4}' | sort -u | tr '\n' ' ')"
# The lab's own server answers the same names unsigned (no AD), as a non-validating resolver.
ad=-; dig +dnssec @127.0.0.1 MX dane.test | grep -qE '^;; flags:[a-z ]* ad[ ;]' && ad=ad
echo "DIRECT dane.test $ad"

for d in dane.test dane-ta.test dane-cname.test dane-wrong.test dane-unusable.test dane-partial.test dane-partial-bogus.test dane-bogus.test dane-expired.test dane-ds-mismatch.test dane-unsigned.test dane-offsite.test dane-notlsa.test dane-notlsa-nsec3.test; do
    # /etc/resolv.conf: the validating unbound, as on a production host.
    "$MTASTS" check "$d" --ca-file "$MTASTS_LAB_CA" --json >"/tmp/dane-check-$$.json" || true
    python3 - "$d" "/tmp/dane-check-$$.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[2]))
codes = ",".join(f["code"] for f in r["findings"] if f["step"] == "dane")
print(f"CHECK {sys.argv[1]} dane={r['dane']} codes={codes} summary={r['summary']}")
PY
    echo "QUERY $d $("$MTASTS" query "$d" --ca-file "$MTASTS_LAB_CA" --dane-nameserver "$MTASTS_LAB_RESOLVER" 2>&1 | grep '^dane:' || true)"
    # mtasts validating by itself, through the lab's resolver that only passes DNSSEC on.
    "$MTASTS" check "$d" --ca-file "$MTASTS_LAB_CA" --nameserver 127.0.0.54:53 --validate \
        --trust-anchor "$MTASTS_LAB_STATE/trust-anchor.dnskey" --json >"/tmp/dane-check-$$.json" || true
    python3 - "$d" "/tmp/dane-check-$$.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[2]))
codes = ",".join(f["code"] for f in r["findings"] if f["step"] == "dane")
print(f"VALIDATE {sys.argv[1]} dane={r['dane']} by={r['dnssec_validated_by']} codes={codes}")
PY
done
# The same validator against a server that strips DNSSEC records (the lab's own): bogus.
"$MTASTS" check dane.test --ca-file "$MTASTS_LAB_CA" --nameserver 127.0.0.1:53 --validate \
    --trust-anchor "$MTASTS_LAB_STATE/trust-anchor.dnskey" --json >"/tmp/dane-check-$$.json" || true
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("STRIPPED dane.test dane=" + r["dane"])' "/tmp/dane-check-$$.json"
rm -f "/tmp/dane-check-$$.json"
