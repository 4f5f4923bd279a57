#!/usr/bin/env bash
# The main job: install what is missing, build berth, bring up the LNMP example
# (nginx + php-fpm + MariaDB) and print the URL to open.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
. scripts/env.sh
cargo build -p berth
berth="$CARGO_TARGET_DIR/debug/berth"
stack=examples/lnmp/compose.yaml
"$berth" -f "$stack" config -q
echo "examples/lnmp is valid (berth config)."
# The images are built FROM debian:bookworm (apt-get in RUN, over the host network). Without a
# registry, the base is made with debootstrap from the host's Debian mirror.
if ! "$berth" image inspect debian:bookworm >/dev/null 2>&1; then
  "$berth" image pull debian:bookworm 2>/dev/null || "$berth" image bootstrap debian:bookworm
fi
"$berth" -f "$stack" up -d --build --wait
echo "LNMP is up: open http://127.0.0.1:8080/"
