#!/usr/bin/env bash
# berth up -d / down of N busybox `sleep` services (one network, init: true, db <- app <- web,
# the rest depending on db: the topology of ../shared/research/bench-anchors.sh), plus daemon
# and shim memory. Runs the whole instance inside a throwaway network namespace.
# Usage: sudo bench/stack-up-down.sh [SIZES...]   (default: 3 20 50); RUNS=3
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
cargo build --release -p berth >/dev/null 2>&1 || cargo build --release -p berth
berth="$CARGO_TARGET_DIR/release/berth"
sizes=("${@:-3 20 50}"); [ $# -eq 0 ] && sizes=(3 20 50)
RUNS=${RUNS:-3}
work=$(mktemp -d); ns="bench-stack-$$"
cleanup() {
  nsenter --net=/run/netns/$ns "$berth" --root "$work/root" --run "$work/run" system shutdown >/dev/null 2>&1 || true
  pkill -9 -f "$work" 2>/dev/null || true
  grep " $work" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns"; ip netns exec "$ns" ip link set lo up
B() { nsenter --net=/run/netns/$ns "$berth" --root "$work/root" --run "$work/run" "$@"; }

rootfs="$work/rootfs"; mkdir -p "$rootfs/bin" "$rootfs/etc"
cp /bin/busybox "$rootfs/bin/"; for a in sh sleep true; do ln -s busybox "$rootfs/bin/$a"; done
echo "root:x:0:0:root:/:/bin/sh" > "$rootfs/etc/passwd"
tar -C "$rootfs" -cf "$work/rootfs.tar" . && B image import "$work/rootfs.tar" busybox:bench >/dev/null

gen() { # gen N -> compose file on stdout
  local n=$1
  printf 'name: bench%s\nx-s: &s\n  image: busybox:bench\n  init: true\n  stop_grace_period: 2s\n  command: ["sleep", "86400"]\nservices:\n' "$n"
  printf '  db:\n    <<: *s\n'
  [ "$n" -ge 2 ] && printf '  app:\n    <<: *s\n    depends_on: [db]\n'
  [ "$n" -ge 3 ] && printf '  web:\n    <<: *s\n    depends_on: [app]\n'
  for i in $(seq 4 "$n"); do printf '  svc%02d:\n    <<: *s\n    depends_on: [db]\n' "$i"; done
}
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2)? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }

printf '%-6s %-14s %-14s %-16s %s\n' "svcs" "up -d (ms)" "down (ms)" "daemon RSS (KB)" "shim RSS/PSS (KB, mean)"
for n in "${sizes[@]}"; do
  mkdir -p "$work/s$n"; gen "$n" > "$work/s$n/compose.yaml"
  ups=(); downs=(); rss=""; shim=""
  B -f "$work/s$n/compose.yaml" up -d >/dev/null 2>&1; B -f "$work/s$n/compose.yaml" down >/dev/null 2>&1  # warm-up
  for r in $(seq "$RUNS"); do
    t=$(date +%s%N); B -f "$work/s$n/compose.yaml" up -d >/dev/null 2>&1; ups+=("$(ms "$t")")
    pid=$(cat "$work/run/berth.pid"); rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
    shim=$(pgrep -f "berth shim $work" | while read -r p; do
      awk '/^Rss:/ {r=$2} /^Pss:/ {p=$2} END {print r, p}' /proc/$p/smaps_rollup 2>/dev/null; done |
      awk '{r+=$1; p+=$2; n++} END {if (n) printf "%d/%d (n=%d)", r/n, p/n, n}')
    t=$(date +%s%N); B -f "$work/s$n/compose.yaml" down >/dev/null 2>&1; downs+=("$(ms "$t")")
  done
  printf '%-6s %-14s %-14s %-16s %s\n' "$n" "$(printf '%s\n' "${ups[@]}" | median) [${ups[*]}]" \
    "$(printf '%s\n' "${downs[@]}" | median) [${downs[*]}]" "$rss" "$shim"
done
