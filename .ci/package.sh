#!/usr/bin/env bash
# The Debian package, built, installed with dpkg -i, used and purged, on the CI machine (root).
# Run by .ci/run after the tests; needs Postfix (postmap is the socketmap client) and man-db.
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "package check: $*" >&2; exit 1; }

tools=$PWD/target/tools
if ! command -v cargo-deb >/dev/null && [ ! -x "$tools/bin/cargo-deb" ]; then
  cargo install cargo-deb --locked --version 3.8.0 --root "$tools" --quiet
fi
export PATH=$tools/bin:$PATH
deb=$(bash dist/deb/build.sh)
dpkg-deb --info "$deb" | sed -n '/Package:/,/Description:/p'
dpkg-deb --contents "$deb" | awk '{print $6}' | grep -c . | xargs echo "files:"

# A machine where mtasts was never installed: nothing of it is here before.
for p in /usr/bin/mtasts /etc/mtasts /var/lib/mtasts; do
  [ ! -e "$p" ] || fail "$p exists before installing"
done
dpkg -i "$deb"
dpkg -s mtasts | grep -q '^Status: install ok installed' || fail "not installed"
mtasts --version
mtasts --version | grep -qx "mtasts $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)" \
  || fail "mtasts --version does not match the workspace version"
man -P cat mtasts-daemon 2>/dev/null | grep -q -- '--dane-nameserver' || fail "man mtasts-daemon"
man -w mtasts-tlsrpt-send >/dev/null || fail "man mtasts-tlsrpt-send"
grep -q -- '--dane-nameserver' /usr/share/bash-completion/completions/mtasts || fail "bash completion"
[ -s /usr/share/zsh/vendor-completions/_mtasts ] || fail "zsh completion"
[ -s /usr/share/fish/vendor_completions.d/mtasts.fish ] || fail "fish completion"
for u in mtasts mtasts-serve mtasts-tlsrpt; do
  getent passwd "$u" | grep -q ':/usr/sbin/nologin$' || fail "system user $u"
  [ "$(stat -c %U:%a "/var/lib/$u")" = "$u:750" ] || fail "/var/lib/$u: $(stat -c %U:%a "/var/lib/$u")"
done
dpkg-query --showformat='${Conffiles}\n' --show mtasts | grep -q '/etc/mtasts/daemon.toml' \
  || fail "/etc/mtasts/daemon.toml is not a conffile"
[ "$(stat -c %U:%G:%a /etc/mtasts/daemon.toml)" = "root:mtasts:640" ] || fail "daemon.toml mode"

if command -v systemd-analyze >/dev/null; then
  # Units are checked as installed (paths, users, man pages they name).
  (cd /usr/lib/systemd/system && systemd-analyze verify mtasts-daemon.socket mtasts-daemon.service \
    mtasts-serve.service mtasts-tlsrpt-receive.service mtasts-tlsrpt-collect.service \
    mtasts-tlsrpt-send.service mtasts-tlsrpt-send.timer mtasts-remembered-learn.service) || fail "systemd-analyze verify"
fi

# The packaged default configuration starts the daemon (as its unit would: user mtasts, the
# cache in /var/lib/mtasts), run directly since CI has no systemd, inside the lab's namespace
# so that its lookups reach the fake internet; Postfix's postmap asks it over socketmap.
mtasts lab run --name mtasts-pkg -- sh -euc '
  install -m 0644 "$MTASTS_LAB_CA" /tmp/mtasts-pkg-ca.pem
  # postmap needs a main.cf; this machine has none (Postfix installed without configuration).
  mkdir -p /tmp/mtasts-pkg-postfix && : > /tmp/mtasts-pkg-postfix/main.cf
  runuser -u mtasts -- /usr/bin/mtasts daemon --config /etc/mtasts/daemon.toml \
    --ca-file /tmp/mtasts-pkg-ca.pem 2>/tmp/mtasts-pkg-daemon.log &
  pid=$!
  trap "kill $pid 2>/dev/null || true" EXIT
  i=0
  until answer=$(postmap -c /tmp/mtasts-pkg-postfix -q enforce.test socketmap:inet:127.0.0.1:8461:postfix 2>/dev/null); do
    i=$((i + 1)); [ $i -lt 100 ] || { cat /tmp/mtasts-pkg-daemon.log; exit 1; }; sleep 0.1
  done
  echo "postmap -q enforce.test: $answer"
  case "$answer" in secure*match=*) ;; *) cat /tmp/mtasts-pkg-daemon.log; exit 1;; esac
  rm -rf /tmp/mtasts-pkg-ca.pem /tmp/mtasts-pkg-postfix
' || fail "the packaged daemon did not answer"
[ -s /var/lib/mtasts/cache.sqlite3 ] || fail "no cache in /var/lib/mtasts"
[ "$(stat -c %U /var/lib/mtasts/cache.sqlite3)" = mtasts ] || fail "cache not owned by mtasts"

dpkg --purge mtasts
left=$(
  for p in /usr/bin/mtasts /etc/mtasts /etc/default/mtasts-serve /var/lib/mtasts \
    /var/lib/mtasts-serve /var/lib/mtasts-tlsrpt /usr/share/doc/mtasts \
    /usr/lib/systemd/system/mtasts-daemon.service /usr/share/man/man1/mtasts.1.gz \
    /usr/share/bash-completion/completions/mtasts; do
    [ ! -e "$p" ] || echo "$p"
  done
  for u in mtasts mtasts-serve mtasts-tlsrpt; do getent passwd "$u" || true; getent group "$u" || true; done
)
[ -z "$left" ] || fail "left behind after purge: $left"
dpkg -s mtasts >/dev/null 2>&1 && fail "still known to dpkg"
echo "package check: ok ($deb)"
