#!/usr/bin/env bash
# COPY of a ~100 MB build context (issue 7 goal: >= 0.8x the speed of `cp -a`), printed as
# figures (not a timed test). As root; no network (the image is FROM scratch + COPY).
#
#   bench/build-copy.sh                   # N=5 runs of each measure
#   N=9 MB_SMALL=20 BIG=4 BIG_MB=20 BERTH=path/to/berth bench/build-copy.sh
#
# The context: MB_SMALL MiB of 4 KiB files in 100 directories plus BIG files of BIG_MB MiB,
# random content. Printed (median/min/max wall ms over N runs unless noted):
#   cp -a            copying the context to a fresh directory on the same file system
#                    (page cache warm, as for every build below), then sync
#   first build      a build into a fresh --root (no cache, no remembered checksums): context
#                    scan and checksums, copy into the layer directory, layer hash, then sync;
#                    run alternately with cp -a so both see the same load (the disk of a
#                    shared machine is noisy: compare the medians)
#   --no-cache       rebuilds that run COPY again (checksums already known)
#   cached           rebuilds where COPY is a cache hit (scan + stat, no copy)
#   touched          cached rebuilds after an mtime-only touch of every file (re-checksum)
# and the ratio cp -a / first build (>= 0.8 meets the goal). docker build (BuildKit) runs the
# same Dockerfile side by side when a docker daemon answers.
#
# Measured on the 2-core shared dev VM (ext4, disk shared with other jobs: medians only mean
# something side by side), N=5: cp -a + sync 5052 ms, first build + sync 5245 ms (0.96x);
# the builder before COPY kept its layer as a directory: first build 0.43x of cp -a (7 runs
# alternating cp -a / before / after: medians 4890 / 11412 / 5773 ms).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-5}
MB_SMALL=${MB_SMALL:-20}
BIG=${BIG:-4}
BIG_MB=${BIG_MB:-20}
BERTH=${BERTH:-${CARGO_TARGET_DIR:-target}/release/berth}
[ -x "$BERTH" ] || { echo "build first: cargo build --release -p berth (or set BERTH)" >&2; exit 1; }

work=$(mktemp -d /var/tmp/bcopy.XXXXXX)
B=("$BERTH" --root "$work/root" --run "$work/run")
cleanup() {
  "${B[@]}" system shutdown >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

ctx=$work/ctx
mkdir -p "$ctx"
small_files=$((MB_SMALL * 256))
for d in $(seq 1 100); do mkdir -p "$ctx/src/d$d"; done
# One random stream cut into 4 KiB files (fast: one dd, then split).
head -c $((small_files * 4096)) /dev/urandom >"$work/stream"
(cd "$work" && split -a 5 -d -b 4096 stream part.)
i=0
for f in "$work"/part.*; do
  mv "$f" "$ctx/src/d$((i % 100 + 1))/f$i.dat"
  i=$((i + 1))
done
rm -f "$work/stream"
mkdir -p "$ctx/assets"
for b in $(seq 1 "$BIG"); do head -c $((BIG_MB * 1024 * 1024)) /dev/urandom >"$ctx/assets/big$b.bin"; done
printf 'FROM scratch\nCOPY . /ctx/\n' >"$ctx/Dockerfile"
bytes=$(du -sb "$ctx" | cut -f1)
files=$(find "$ctx" -type f | wc -l)
echo "context: $files files, $((bytes / 1024 / 1024)) MiB"

now_ms() { date +%s%3N; }
stats() { # label, then times
  local label=$1; shift
  local sorted=($(printf '%s\n' "$@" | sort -n)) n=$#
  echo "$label (N=$n): median ${sorted[$((n / 2))]} ms, min ${sorted[0]} ms, max ${sorted[$((n - 1))]} ms"
  median=${sorted[$((n / 2))]}
}

cat "$ctx"/assets/* "$ctx"/src/*/* >/dev/null # warm the page cache for everyone
times=()
firsts=()
for i in $(seq 1 "$N"); do
  rm -rf "$work/cp" && sync
  a=$(now_ms); cp -a "$ctx" "$work/cp"; sync; b=$(now_ms)
  times+=($((b - a)))
  rm -rf "$work/cp" && sync
  a=$(now_ms)
  "$BERTH" --root "$work/first$i" --run "$work/run$i" image build -t copybench:1 "$ctx" \
    2>"$work/err" >/dev/null || { cat "$work/err" >&2; exit 1; }
  sync; b=$(now_ms)
  firsts+=($((b - a)))
  rm -rf "$work/first$i" "$work/run$i"
done
stats "cp -a + sync" "${times[@]}"
cp_ms=$median
stats "first build (fresh root) + sync" "${firsts[@]}"
first_ms=$median

build() { # extra args...; fails unless the build works
  "${B[@]}" image build "$@" -t copybench:1 "$ctx" 2>"$work/err" >/dev/null || { cat "$work/err" >&2; exit 1; }
}
sync
a=$(now_ms); build; sync; b=$(now_ms)
echo "uncached build (first, N=1): $((b - a)) ms"

times=()
for _ in $(seq 1 "$N"); do
  sync
  a=$(now_ms); build --no-cache; sync; b=$(now_ms)
  times+=($((b - a)))
done
stats "--no-cache rebuild (COPY runs) + sync" "${times[@]}"
nocache_ms=$median

times=()
for _ in $(seq 1 "$N"); do
  a=$(now_ms); build; b=$(now_ms)
  grep -q 'COPY . /ctx/ CACHED' "$work/err" || { echo "not cached:"; cat "$work/err"; exit 1; }
  times+=($((b - a)))
done
stats "cached rebuild" "${times[@]}"

times=()
for _ in $(seq 1 "$N"); do
  find "$ctx" -type f -exec touch {} +
  a=$(now_ms); build; b=$(now_ms)
  grep -q 'COPY . /ctx/ CACHED' "$work/err" || { echo "not cached after touch:"; cat "$work/err"; exit 1; }
  times+=($((b - a)))
done
stats "cached rebuild after touching every file (mtime only)" "${times[@]}"

awk -v c="$cp_ms" -v n="$first_ms" 'BEGIN { printf "first build speed vs cp -a: %.2fx (goal >= 0.8x)\n", c / n }'
awk -v c="$cp_ms" -v n="$nocache_ms" 'BEGIN { printf "--no-cache rebuild speed vs cp -a: %.2fx\n", c / n }'

if timeout 5 docker info >/dev/null 2>&1; then
  times=()
  for _ in $(seq 1 "$N"); do
    a=$(now_ms); docker build -q --no-cache -t berth-copybench:1 "$ctx" >/dev/null; b=$(now_ms)
    times+=($((b - a)))
  done
  stats "docker build --no-cache" "${times[@]}"
  times=()
  for _ in $(seq 1 "$N"); do
    a=$(now_ms); docker build -q -t berth-copybench:1 "$ctx" >/dev/null; b=$(now_ms)
    times+=($((b - a)))
  done
  stats "docker build cached" "${times[@]}"
  docker image rm berth-copybench:1 >/dev/null 2>&1 || true
else
  echo "docker build: skipped (no docker daemon answers)"
fi
