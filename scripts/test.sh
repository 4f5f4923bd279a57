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
cargo test --workspace --no-fail-fast -- --test-threads="${BERTH_TEST_THREADS:-2}"
# Every fuzz target for FUZZ_SECONDS (default 60) from the kept corpus: fuzz/, ARCHITECTURE.md "Fuzzing".
./scripts/fuzz.sh "${FUZZ_SECONDS:-60}"
