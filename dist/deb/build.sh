#!/usr/bin/env bash
# Builds the Debian package into target/debian/: a release binary, the man pages and
# completions generated from its clap definitions, the packaged /etc/mtasts/daemon.toml
# (docs/daemon.toml with the cache in /var/lib/mtasts), then `cargo deb --no-build`.
# Needs cargo-deb (cargo install cargo-deb --locked). Prints the path of the .deb.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --locked -p mtasts
assets=target/deb-assets
rm -rf "$assets"
target/release/mtasts generate --out "$assets" >&2
mkdir -p "$assets/etc"
# The documented defaults, but the cache at the path the package's state directory holds:
# "sqlite:" alone would resolve to the mtasts user's home, not /var/lib/mtasts.
sed 's|^cache = "sqlite:"$|cache = "sqlite:/var/lib/mtasts/cache.sqlite3"|' docs/daemon.toml > "$assets/etc/daemon.toml"
if ! grep -q '^cache = "sqlite:/var/lib/mtasts/cache.sqlite3"$' "$assets/etc/daemon.toml"; then
  echo "dist/deb/build.sh: docs/daemon.toml has no 'cache = \"sqlite:\"' line to rewrite" >&2
  exit 1
fi
target/release/mtasts daemon --check-config --config "$assets/etc/daemon.toml" > /dev/null
cargo deb -p mtasts --no-build --strip --quiet >&2
ls -t target/debian/mtasts_*.deb | head -n 1
