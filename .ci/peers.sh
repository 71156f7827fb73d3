#!/usr/bin/env bash
# The independent TLS-RPT peers the tests compare against, from PyPI, in a venv of their own
# (target/peers-venv, or $MTASTS_PEERS_VENV): parsedmarc reads every report mtasts sends,
# tlsrpt-reporter's collector counts the same datagrams as mtasts' collector.
# Pinned: a new upstream release is a deliberate change here.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${MTASTS_PEERS_VENV:-target/peers-venv}
if [ ! -x "$venv/bin/python3" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check \
  parsedmarc==11.1.0 tlsrpt-reporter==0.6.0
"$venv/bin/python3" -c 'import parsedmarc, tlsrpt_reporter; print("peers:", "parsedmarc", parsedmarc.__version__, "tlsrpt-reporter 0.6.0")'
