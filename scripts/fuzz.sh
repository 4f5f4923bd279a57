#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets) for SECONDS each (default $FUZZ_SECONDS or 60),
# one after another, from the kept corpus fuzz/corpus/<target>. The corpus is copied to a temp
# dir first, so a run writes nothing into the clone; FUZZ_MERGE=1 merges the inputs that found
# new coverage back into fuzz/corpus afterwards (for developers, never in CI).
# Prints per target: executions, corpus size, crashes. Exits 1 if any target crashed (panic,
# failed assertion, timeout, out of memory); the crashing input is kept under
# $BERTH_CACHE/fuzz-artifacts and printed as hex.
# Stable Rust only: cargo-fuzz with --sanitizer none (no -Z flags); libFuzzer is built by
# libfuzzer-sys with the C++ compiler. cargo-fuzz is installed once under $BERTH_CACHE.
# FUZZ_TARGETS="dns_wire tar_unpack" limits the run to some targets.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
secs=${1:-${FUZZ_SECONDS:-60}}
targets=(${FUZZ_TARGETS:-compose_loader dockerfile tar_unpack dns_wire api_bodies})
repo=$PWD

if ! command -v c++ >/dev/null 2>&1; then
  echo "installing g++ (libfuzzer-sys compiles libFuzzer)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends g++ >/dev/null
fi
tools=$BERTH_CACHE/cargo-tools
if ! [ -x "$tools/bin/cargo-fuzz" ]; then
  echo "installing cargo-fuzz into $tools" >&2
  CARGO_TARGET_DIR=$tools/target cargo install cargo-fuzz --locked --quiet --root "$tools"
  rm -rf "$tools/target"
fi
export PATH=$tools/bin:$PATH
# Instrumented builds (coverage flags on every crate) get their own target dir.
fuzz_target_dir=${FUZZ_TARGET_DIR:-$BERTH_CACHE/target-fuzz-targets}
start=$(date +%s)
(cd fuzz && cargo fuzz build --sanitizer none --debug-assertions --target-dir "$fuzz_target_dir")
echo "fuzz: targets built in $(( $(date +%s) - start )) s"
bin_dir=$fuzz_target_dir/x86_64-unknown-linux-gnu/release

work=$(mktemp -d /tmp/berth-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
artifacts=$BERTH_CACHE/fuzz-artifacts
mkdir -p "$artifacts"
failed=()
for t in "${targets[@]}"; do
  mkdir -p "$work/$t" "$work/art-$t"
  [ -d "fuzz/corpus/$t" ] && cp -r "fuzz/corpus/$t/." "$work/$t/"
  before=$(find "$work/$t" -type f | wc -l)
  log=$work/$t.log
  rc=0
  # Each target's temp files (the unpack target's layers) on tmpfs when there is one: the
  # unpack target is disk-bound otherwise. stdin closed.
  scratch=$(mktemp -d "$( [ -w /dev/shm ] && echo /dev/shm || echo /tmp )/berth-fuzz-$t.XXXXXX")
  (cd "$work/art-$t" && RUST_BACKTRACE=1 TMPDIR="$scratch" "$bin_dir/$t" "$work/$t" \
     -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
     -artifact_prefix="$work/art-$t/" </dev/null >"$log" 2>&1) || rc=$?
  rm -rf "$scratch"
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  after=$(find "$work/$t" -type f | wc -l)
  found=$(find "$work/art-$t" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'timeout-*' \
            -o -name 'oom-*' -o -name 'leak-*' \))
  crashes=$(printf '%s' "$found" | grep -c . || true)
  if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then crashes=1; fi
  echo "fuzz: $t: ${execs:-0} executions in ${secs} s, corpus $before -> $after inputs, $crashes crashes"
  if [ "$crashes" -ne 0 ]; then
    failed+=("$t")
    grep -v '^#\|^INFO\|^stat::' "$log" | tail -40 >&2
    for f in $found; do
      keep=$artifacts/$t-$(basename "$f")
      cp "$f" "$keep"
      echo "fuzz: $t: crashing input kept as $keep:" >&2
      head -c 2048 "$f" | od -An -tx1 | head -40 >&2
    done
  fi
  if [ "${FUZZ_MERGE:-0}" = 1 ]; then
    mkdir -p "$repo/fuzz/corpus/$t"
    "$bin_dir/$t" -merge=1 "$repo/fuzz/corpus/$t" "$work/$t" </dev/null >"$work/$t.merge" 2>&1 || true
    echo "fuzz: $t: kept corpus now $(find "$repo/fuzz/corpus/$t" -type f | wc -l) inputs"
  fi
done
echo "fuzz: ${#targets[@]} targets, ${#failed[@]} crashed${failed:+: ${failed[*]}}"
[ "${#failed[@]}" -eq 0 ]
