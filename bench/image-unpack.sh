#!/usr/bin/env bash
# Unpack throughput of a multi-layer image (~200 MB): berth vs `tar -x` vs `umoci unpack`.
# Run as root. BERTH_BENCH_MB=N changes the size. Prints figures only.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
cargo bench -p berth-runtime --bench image_unpack
