#!/usr/bin/env bash
# What works end to end today: a two-service busybox stack with a healthcheck gate, DNS by
# service name and a published port, on a fresh Debian 12 machine as root, without a registry.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
. scripts/env.sh
cargo build -p berth
berth="$CARGO_TARGET_DIR/debug/berth"
if ! "$berth" image inspect busybox:local >/dev/null 2>&1; then
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/bin" "$tmp/etc" "$tmp/tmp"
  cp /bin/busybox "$tmp/bin/"
  for a in sh sleep wget httpd head cat echo ls ps true nslookup; do ln -s busybox "$tmp/bin/$a"; done
  echo "root:x:0:0:root:/:/bin/sh" > "$tmp/etc/passwd"; echo "root:x:0:" > "$tmp/etc/group"
  tar -C "$tmp" -cf "$tmp.tar" . && "$berth" image import "$tmp.tar" busybox:local >/dev/null && rm -f "$tmp.tar"
fi
"$berth" -f examples/hello/compose.yaml up -d
"$berth" -f examples/hello/compose.yaml ps
curl -fsS "http://127.0.0.1:${HELLO_PORT:-8081}/"
echo "hello is up: open http://127.0.0.1:${HELLO_PORT:-8081}/ ; stop it with: $berth -f examples/hello/compose.yaml down"
