#!/usr/bin/env bash
# One run, one page: the performance figures side by side with docker (and podman where the bench
# has it), each bench run in turn with the machine's load before and after it, then written into
# bench/RESULTS.md between the markers `<!-- summary:begin -->` and `<!-- summary:end -->` (added
# at the end the first time; the rest of the file is kept). As root.
#
#   bench/summary.sh             the full run (tens of minutes; the engines are started if down)
#   QUICK=1 bench/summary.sh     small N everywhere, to check the page in minutes (marked QUICK)
#   OUT=FILE                     write FILE instead of bench/RESULTS.md; SKIP="iperf io" leaves
#                                benches out (names: run stack iperf init io); BERTH=binary
#
# The benches (each prints its own table, copied as is):
#   run    COMPARE=1 bench/container-run.sh: `run --rm --network none true`, berth / crun / podman / docker
#   stack  ENGINES=docker bench/stack-up-down.sh 50 200: `up -d`/`down`, berth and Compose v2 on dockerd
#          (podman-compose sleeps 1 s per container, so it is left to `COMPARE=1 bench/stack-up-down.sh`)
#   stack  bench/stack-up-down.sh 50 200 alone: per container wall and daemon CPU, daemon RSS
#   iperf  bench/net-iperf.sh: container-to-container TCP against a bare veth pair
#   init   COMPARE=1 bench/init-pss.sh: PSS of the container init beside tini and catatonit
#   io     bench/stack-io.sh 50 200: bytes the daemon reads and writes per container, its RSS
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/summary.sh: run as root" >&2; exit 1; }
. scripts/env.sh
QUICK=${QUICK:-0}
OUT=${OUT:-bench/RESULTS.md}
SKIP=${SKIP:-}
# BERTH=path/to/berth measures that binary instead of building this tree's release build.
if [ -z "${BERTH:-}" ]; then
  cargo build --release -p berth >/dev/null 2>&1 || cargo build --release -p berth
  BERTH="$CARGO_TARGET_DIR/release/berth"
fi
export BERTH
if [ "$QUICK" = 1 ]; then
  run_env=(N=5 M=5); stack_sizes=(10 20); stack_runs=1; iperf_env=(IPERF_ROUNDS=1 IPERF_SECS=1 FIGURES=c2c)
  init_env=(M=3); io_sizes=(10 20)
else
  run_env=(N=20 M=20); stack_sizes=(50 200); stack_runs=3; iperf_env=(IPERF_ROUNDS=5 IPERF_SECS=3)
  init_env=(M=10); io_sizes=(50 200)
fi
page=$(mktemp); log=$(mktemp)
trap 'rm -f "$page" "$log"' EXIT
load() { cut -d' ' -f1-3 /proc/loadavg; }
# The engines stay up across the benches (each bench would otherwise start and stop them).
started_engines=0
if ! bench/engines.sh check >/dev/null 2>&1; then
  bench/engines.sh up >/dev/null
  started_engines=1
fi
trap 'rm -f "$page" "$log"; [ "$started_engines" = 1 ] && bench/engines.sh down >/dev/null 2>&1 || true' EXIT

# section NAME TITLE COMMAND...: runs one bench, copies its output (tables as they are, other
# lines as text), with the load before and after and how long it took
section() {
  local name=$1 title=$2; shift 2
  if [[ " $SKIP " == *" $name "* ]]; then
    printf '### %s\n\nskipped (SKIP=%s)\n\n' "$title" "$SKIP" >> "$page"; return 0
  fi
  local l0 t0 rc=0; l0=$(load); t0=$(date +%s)
  echo "== $title: $*" >&2
  env "$@" > "$log" 2>&1 || rc=$?
  {
    printf '### %s\n\n`%s`; load %s before, %s after; %d s' "$title" "$*" "$l0" "$(load)" $(( $(date +%s) - t0 ))
    [ "$rc" = 0 ] || printf '; **failed (exit %d)**' "$rc"
    printf '\n\n'
    # markdown tables pass through; runs of other lines become text blocks
    awk '/^\|/ {if (t) {print "```"; t=0} print; next}
         /^[[:space:]]*$/ {if (t) {print "```"; t=0} next}
         {if (!t) {print ""; print "```text"; t=1} print}
         END {if (t) print "```"}' "$log"
    printf '\n'
  } >> "$page"
  cat "$log" >&2
}

start=$(date -u '+%Y-%m-%d %H:%M UTC')
{
  printf '## Summary: every figure in one run%s\n\n' "$([ "$QUICK" = 1 ] && echo ' (QUICK: small N, a check of the page, not figures to quote)')"
  printf 'bench/summary.sh%s, %s; %s cores (%s), %s MiB; berth %s (release); load at the start %s.\n\n' \
    "$([ "$QUICK" = 1 ] && echo ' with QUICK=1')" "$start" "$(nproc)" \
    "$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)" \
    "$(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo)" "$("$BERTH" --version | awk '{print $2}')" "$(load)"
} >> "$page"

section run "Container start, \`run --rm --network none true\`" COMPARE=1 "${run_env[@]}" bench/container-run.sh
section stack "Stack \`up -d\` / \`down\` beside Compose v2 on dockerd" ENGINES=docker RUNS="$stack_runs" \
  bench/stack-up-down.sh "${stack_sizes[@]}"
section stack "Stack \`up -d\` / \`down\`, per container (wall and daemon CPU)" RUNS="$stack_runs" \
  bench/stack-up-down.sh "${stack_sizes[@]}"
section iperf "Container-to-container TCP against a bare veth pair" "${iperf_env[@]}" bench/net-iperf.sh
section init "Container init memory beside tini and catatonit" COMPARE=1 "${init_env[@]}" bench/init-pss.sh
section io "Bytes the daemon reads and writes per container" bench/stack-io.sh "${io_sizes[@]}"
printf 'Finished %s, load %s.\n' "$(date -u '+%H:%M UTC')" "$(load)" >> "$page"

# Into RESULTS.md between the markers (kept), or appended with them the first time.
if grep -q '^<!-- summary:begin -->$' "$OUT" 2>/dev/null && grep -q '^<!-- summary:end -->$' "$OUT"; then
  awk -v page="$page" '
    /^<!-- summary:begin -->$/ {print; while ((getline l < page) > 0) print l; skip=1; next}
    /^<!-- summary:end -->$/ {skip=0}
    !skip {print}' "$OUT" > "$OUT.tmp"
  mv "$OUT.tmp" "$OUT"
else
  { [ -s "$OUT" ] && echo; echo '<!-- summary:begin -->'; cat "$page"; echo '<!-- summary:end -->'; } >> "$OUT"
fi
echo "written: $OUT (between <!-- summary:begin --> and <!-- summary:end -->)" >&2
