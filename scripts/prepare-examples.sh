#!/usr/bin/env bash
# Builds the example stacks' images (FROM debian:bookworm, apt-get in RUN) into a cache instance
# under $BERTH_CACHE/examples/root and saves each example's images as
# $BERTH_CACHE/examples/<example>.tar, which the end-to-end tests load into their own instances.
# This script reaches the Debian mirror (like deps.sh); the tests themselves never leave their
# network namespaces. Berth's build cache in the cache instance makes a re-run with unchanged
# Dockerfiles take seconds; a fresh machine builds everything.
#
# Usage: scripts/prepare-examples.sh [EXAMPLE...]   (default: lnmp zookeeper spark)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
berth=${BERTH_BIN:-$CARGO_TARGET_DIR/debug/berth}
[ -x "$berth" ] || cargo build -p berth
cache=$BERTH_CACHE/examples
root=$cache/root
run=$(mktemp -d /run/berth-examples.XXXXXX)
mkdir -p "$cache"
b() { "$berth" --root "$root" --run "$run" "$@"; }
cleanup() { b system shutdown >/dev/null 2>&1 || true; rm -rf "$run"; }
trap cleanup EXIT

if ! b image inspect debian:bookworm >/dev/null 2>&1; then
  # The image-bootstrap test keeps a debootstrapped base in its own cache store: reuse it.
  boot=$BERTH_CACHE/image-bootstrap
  if [ -d "$boot" ] && "$berth" --root "$boot" --run "$run/boot" image inspect debian:bookworm >/dev/null 2>&1; then
    "$berth" --root "$boot" --run "$run/boot" image save debian:bookworm | b image load -q
  else
    b image bootstrap debian:bookworm
  fi
fi

# spark's image pip-installs from PyPI over HTTPS: let it trust the CAs added to this host too
# (a TLS-inspecting proxy's); empty where there are none.
export SPARK_BUILD_CA_PEM=${SPARK_BUILD_CA_PEM-$(cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true)}
for ex in "${@:-lnmp zookeeper spark}"; do
  for e in $ex; do
    stack=examples/$e/compose.yaml
    start=$(date +%s)
    b -f "$stack" build
    # shellcheck disable=SC2046
    b image save -o "$cache/$e.tar.tmp" $(b -f "$stack" config --images | sort -u)
    mv "$cache/$e.tar.tmp" "$cache/$e.tar"
    echo "examples/$e: images built and saved to $cache/$e.tar in $(( $(date +%s) - start )) s"
  done
done
