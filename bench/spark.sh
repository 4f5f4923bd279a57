#!/usr/bin/env bash
# Spark (examples/spark): how long the cluster takes to come up and how long a word count takes.
#  - cold: a fresh instance in the host's network namespace (RUN needs the Debian mirror and
#    PyPI) with only debian:bookworm in it (from scripts/prepare-examples.sh's cache instance):
#    `up -d --build --wait` until every worker has registered (the workers' healthcheck).
#  - cached: a fresh instance in a throwaway network namespace with the example's images loaded
#    from prepare-examples' archive: `up -d --wait` until every worker has registered.
#  - job: `run-job.sh` over a generated ~50 MB text (SIZE_MB) with 1, 2 and 3 workers
#    (`up --scale spark-worker=N` first), in the cached instance. On a 2-core host expect little
#    speed-up from more workers: each has 1 core and they share the same two.
#  - COMPARE=1: the same cached `up -d --wait` and the same jobs (run-job.sh, whose commands are
#    all Compose commands) with Docker Compose v2 on dockerd, the same images loaded from the same
#    archive, through bench/engines.sh (dockerd in its own network namespace; `down` afterwards).
#    No cold run there: the engines' namespace may reach the Debian mirror but not PyPI.
# Usage: bench/spark.sh   (as root; COLD=1|0, SIZE_MB=50, PORT=18080 for the cold run's UI,
#                          COMPARE=0|1, BERTH_BIN=path to berth, default the release build)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
berth=${BERTH_BIN:-$CARGO_TARGET_DIR/release/berth}
if [ -z "${BERTH_BIN:-}" ]; then
  cargo build --release -p berth >/dev/null 2>&1 || cargo build --release -p berth
fi
COLD=${COLD:-1}; SIZE_MB=${SIZE_MB:-50}; PORT=${PORT:-18080}
stack=$PWD/examples/spark/compose.yaml
tar=$BERTH_CACHE/examples/spark.tar
[ -f "$tar" ] || BERTH_BIN=$berth ./scripts/prepare-examples.sh spark
work=$(mktemp -d); ns="bench-spark-$$"
in_ns() { nsenter --net="/run/netns/$ns" "$@"; }
cleanup() {
  for r in "$work"/root*; do
    [ -d "$r" ] || continue
    in_ns "$berth" --root "$r" --run "$r.run" -f "$stack" down -v >/dev/null 2>&1 || true
    SPARK_UI_PORT=$PORT "$berth" --root "$r" --run "$r.run" -f "$stack" down -v >/dev/null 2>&1 || true
    "$berth" --root "$r" --run "$r.run" system shutdown >/dev/null 2>&1 || true
    in_ns "$berth" --root "$r" --run "$r.run" system shutdown >/dev/null 2>&1 || true
  done
  pkill -9 -f "$work" 2>/dev/null || true
  grep " $work" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns"; ip netns exec "$ns" ip link set lo up
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
secs() { awk -v ms="$1" 'BEGIN { printf "%.1f s", ms / 1000 }'; }
# Runs a step quietly; its output is shown only when it fails.
quiet() { "$@" >"$work/step.log" 2>&1 || { cat "$work/step.log" >&2; return 1; }; }
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"

if [ "$COLD" = 1 ]; then
  r=$work/root-cold
  cb() { SPARK_UI_PORT=$PORT "$berth" --root "$r" --run "$r.run" "$@"; }
  "$berth" --root "$BERTH_CACHE/examples/root" --run "$work/cache.run" image save debian:bookworm \
    | cb image load -q >/dev/null
  "$berth" --root "$BERTH_CACHE/examples/root" --run "$work/cache.run" system shutdown >/dev/null 2>&1 || true
  export SPARK_BUILD_CA_PEM=${SPARK_BUILD_CA_PEM-$(cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true)}
  t=$(date +%s%N)
  quiet cb -f "$stack" up -d --build --wait --wait-timeout 900
  echo "cold   up -d --build --wait (base image present, 2 workers registered): $(secs "$(ms "$t")")"
  quiet cb -f "$stack" down -v
  cb system shutdown >/dev/null 2>&1 || true
fi

r=$work/root
b() { in_ns "$berth" --root "$r" --run "$r.run" "$@"; }
b image load -q -i "$tar" >/dev/null
t=$(date +%s%N)
quiet b -f "$stack" up -d --wait --wait-timeout 300
echo "cached up -d --wait (images present, 2 workers registered): $(secs "$(ms "$t")")"

# A text of about SIZE_MB MB: lines of 12 words drawn from 5,000 with a skewed frequency.
text=$work/text.txt
awk -v bytes=$((SIZE_MB * 1000000)) 'BEGIN {
  srand(7); n = 0
  while (n < bytes) {
    line = ""
    for (i = 0; i < 12; i++) line = line (i ? " " : "") "w" int(rand() ^ 3 * 5000)
    print line; n += length(line) + 1
  }
}' > "$text"
echo "text: $(( $(stat -c %s "$text") / 1000000 )) MB, $(wc -w < "$text") words"

for n in 1 2 3; do
  quiet b -f "$stack" up -d --wait --wait-timeout 300 --scale "spark-worker=$n"
  t=$(date +%s%N)
  in_ns env BERTH="$berth" BERTH_ROOT="$r" BERTH_RUN="$r.run" examples/spark/run-job.sh "$text" \
    > "$work/job-$n.out"
  echo "job    word count, $n worker(s): $(secs "$(ms "$t")") ($(grep -c '^executor ' "$work/job-$n.out") executors)"
done
echo "top words (3 workers): $(head -3 "$work/job-3.out" | tr '\t\n' '= ')"

t=$(date +%s%N)
quiet b -f "$stack" --profile tools down -v
echo "down -v: $(secs "$(ms "$t")")"

if [ "${COMPARE:-0}" = 1 ]; then
  # engines.sh down removes every container, network and volume dockerd made.
  trap 'bench/engines.sh down >/dev/null 2>&1; cleanup' EXIT
  bench/engines.sh up >&2
  eval "$(bench/engines.sh env)"
  bench/engines.sh load "$tar"
  # run-job.sh calls "$BERTH" -f FILE VERB...: every verb it uses is a Compose verb.
  printf '#!/bin/sh\nexec %s compose "$@"\n' "$ENGINES_DOCKER" > "$work/docker-compose"
  chmod +x "$work/docker-compose"
  dc() { in_ns_e "$work/docker-compose" -f "$stack" "$@"; }
  in_ns_e() { nsenter --net="/run/netns/$ENGINES_NS" "$@"; }
  echo "Docker Compose v2 on dockerd ($("$ENGINES_DOCKER" version -f '{{.Server.Version}}' 2>/dev/null)):"
  t=$(date +%s%N)
  quiet dc up -d --wait --wait-timeout 300
  echo "cached up -d --wait (images present, 2 workers registered): $(secs "$(ms "$t")")"
  for n in 1 2 3; do
    quiet dc up -d --wait --wait-timeout 300 --scale "spark-worker=$n"
    t=$(date +%s%N)
    if in_ns_e env BERTH="$work/docker-compose" examples/spark/run-job.sh "$text" \
      > "$work/docker-job-$n.out" 2> "$work/docker-job-$n.err"; then
      echo "job    word count, $n worker(s): $(secs "$(ms "$t")") ($(grep -c '^executor ' "$work/docker-job-$n.out") executors)"
    else
      echo "job    word count, $n worker(s): FAILED after $(secs "$(ms "$t")"); its output:"
      grep -v '^ *at \|Copying\|Copied' "$work/docker-job-$n.out" "$work/docker-job-$n.err" | tail -15
    fi
  done
  cmp -s <(head -20 "$work/job-3.out") <(head -20 "$work/docker-job-3.out") &&
    echo "top 20 words: the same on both engines" || echo "top 20 words differ between the engines" >&2
  t=$(date +%s%N)
  quiet dc --profile tools down -v
  echo "down -v: $(secs "$(ms "$t")")"
fi
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
