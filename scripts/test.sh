#!/usr/bin/env bash
# The whole test suite, as root: unit tests, root integration tests and end-to-end tests.
# This is the command README names and .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
. scripts/env.sh
cargo build --workspace --all-targets
# The examples' images (network: the Debian mirror), cached under $BERTH_CACHE/examples.
./scripts/prepare-examples.sh
status=0
cargo test --workspace --no-fail-fast -- --test-threads="${BERTH_TEST_THREADS:-2}" || status=$?
# Opt-in: Docker's own stack loader as the oracle of the Swarm converter, where the docker CLI
# has `stack config` (Docker 23+); otherwise that test stays reported as ignored, with its reason.
if docker stack config --help >/dev/null 2>&1; then
  cargo test -p berth --test convert_swarm -- --ignored docker_stack_config_accepts_every_file || status=$?
else
  echo "convert_swarm docker_stack_config_accepts_every_file: skipped, this docker CLI has no 'stack config'"
fi
[ "$status" = 0 ] || exit "$status"
# Every fuzz target for FUZZ_SECONDS (default 60) from the kept corpus: fuzz/, ARCHITECTURE.md "Fuzzing".
./scripts/fuzz.sh "${FUZZ_SECONDS:-60}"
