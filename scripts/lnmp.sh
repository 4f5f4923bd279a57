#!/usr/bin/env bash
# The main job: install what is missing, build berth (release) and install it as
# /usr/local/bin/berth, bring up the LNMP example (nginx + php-fpm + MariaDB) and print the URL
# to open and how to stop it. Run as root (sudo works too).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
. scripts/env.sh
cargo build --release -p berth
install -m 0755 "$CARGO_TARGET_DIR/release/berth" /usr/local/bin/berth.new
mv -f /usr/local/bin/berth.new /usr/local/bin/berth
berth=/usr/local/bin/berth
stack=examples/lnmp/compose.yaml
"$berth" -f "$stack" config -q
echo "examples/lnmp is valid (berth config)."
# The images are built FROM debian:bookworm (apt-get in RUN, over the host network). Without a
# registry, the base is made with debootstrap from the host's Debian mirror.
if ! "$berth" image inspect debian:bookworm >/dev/null 2>&1; then
  "$berth" image pull debian:bookworm 2>/dev/null || "$berth" image bootstrap debian:bookworm
fi
"$berth" -f "$stack" up -d --build --wait
cat <<EOF
LNMP is up: open http://127.0.0.1:8080/
berth is installed as /usr/local/bin/berth. From $(pwd):
  berth -f $stack ps          # the three services and their health
  berth -f $stack down        # stop and remove the stack (add -v to drop the database volume)
EOF
