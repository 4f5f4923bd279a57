# Sourced by the scripts: where the cargo target dir and downloaded images are cached, outside the
# clone so a fresh clone builds incrementally.
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
export BERTH_CACHE=${BERTH_CACHE:-/var/cache/berth-ci}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$BERTH_CACHE/target}
mkdir -p "$BERTH_CACHE" "$CARGO_TARGET_DIR"
# The Docker API tests' Python clients (docker-compose, docker-py, testcontainers), from
# scripts/deps.sh; first on PATH so that `python3` in those tests has them.
if [ -d "$BERTH_CACHE/pyvenv/bin" ]; then export PATH="$BERTH_CACHE/pyvenv/bin:$PATH"; fi
