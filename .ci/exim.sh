#!/usr/bin/env bash
# Debian's Exim 4.96 for the Exim end-to-end test, unpacked into target/exim-root (or
# $MTASTS_EXIM_ROOT) rather than installed: exim4-daemon-light and postfix both provide
# mail-transport-agent, and installing one removes the other. Only its libraries are
# installed; the test runs the unpacked binary with its own configuration (-C), never a
# system service. Needs root (apt-get) and the Debian-exim user the binary was built for.
set -euo pipefail
cd "$(dirname "$0")/.."
root=${MTASTS_EXIM_ROOT:-target/exim-root}
if [ ! -x "$root/usr/sbin/exim4" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends libdb5.3 libgnutls30 libgnutls-dane0 libidn12 libidn2-0 libnsl2 libpcre2-8-0 >/dev/null
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -qq exim4-daemon-light 2>/dev/null)
  mkdir -p "$root"
  dpkg-deb -x "$tmp"/exim4-daemon-light_*.deb "$root"
  rm -rf "$tmp"
fi
id Debian-exim >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin Debian-exim
"$root/usr/sbin/exim4" -C /dev/null -bV 2>/dev/null | head -n 1
