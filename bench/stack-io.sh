#!/usr/bin/env bash
# Load-independent per-container costs of `up -d` and `down` of N services (the compose file of
# bench/stack-up-down.sh, its network a /21): bytes the daemon passes to write(2) and read(2)
# (wchar, rchar of /proc/PID/io) over the whole up and the whole down, per container, and with
# STRACE=1 its syscalls per container. Flat figures mean nothing grows with the stack.
# Usage: sudo bench/stack-io.sh [SIZES...] (default 50 100 200); BERTH=binary (default: debug build)
# STRACE=1 also counts the daemon's syscalls per container (strace -c -f, slow). The last column
# is what the daemon reads per second while the stack is up and nothing happens.
set -euo pipefail
cd "$(dirname "$0")/.."
berth=${BERTH:-${CARGO_TARGET_DIR:-/var/cache/berth-ci/target}/debug/berth}
sizes=("$@"); [ $# -eq 0 ] && sizes=(50 100 200)
work=$(mktemp -d); ns="bench-io-$$"
cleanup() {
  nsenter --net=/run/netns/$ns "$berth" --root "$work/root" --run "$work/run" system shutdown >/dev/null 2>&1 || true
  [ -n "${st:-}" ] && kill "$st" 2>/dev/null || true
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
gen() {
  local n=$1
  printf 'name: io%s\nx-s: &s\n  image: busybox:bench\n  pull_policy: never\n  init: true\n  stop_grace_period: 2s\n  command: ["sleep", "86400"]\nnetworks:\n  default:\n    ipam:\n      config:\n        - subnet: 10.77.0.0/21\nservices:\n' "$n"
  printf '  db:\n    <<: *s\n'
  [ "$n" -ge 2 ] && printf '  app:\n    <<: *s\n    depends_on: [db]\n'
  [ "$n" -ge 3 ] && printf '  web:\n    <<: *s\n    depends_on: [app]\n'
  for i in $(seq 4 "$n"); do printf '  svc%02d:\n    <<: *s\n    depends_on: [db]\n' "$i"; done
}
io() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/io" 2>/dev/null || echo 0; }
B system info >/dev/null
printf '%-5s %-6s %-14s %-14s %-10s %-10s %-24s %s\n' svcs step "daemon wr KB/c" "daemon rd KB/c" "wall ms" "syscalls/c" "idle rd KB/s (stack up)" "daemon RSS KB"
for n in "${sizes[@]}"; do
  mkdir -p "$work/s$n"; gen "$n" > "$work/s$n/compose.yaml"
  for step in up down; do
    a=(down); [ $step = up ] && a=(up -d)
    d=$(cat "$work/run/berth.pid")
    w0=$(io "$d" wchar); r0=$(io "$d" rchar)
    if [ -n "${STRACE:-}" ]; then strace -c -f -p "$d" -o "$work/strace" 2>/dev/null & st=$!; sleep 1; fi
    t=$(date +%s%N)
    B -f "$work/s$n/compose.yaml" "${a[@]}" >/dev/null 2>"$work/err" || { cat "$work/err"; exit 1; }
    w=$(( ($(date +%s%N) - t) / 1000000 ))
    w1=$(io "$d" wchar); r1=$(io "$d" rchar)
    sc="-"
    if [ -n "${STRACE:-}" ]; then kill -INT "$st"; wait "$st" 2>/dev/null || true; st=""
      sc=$(awk -v n="$n" '/total/ {print int($4/n)}' "$work/strace"); fi
    idle="-"
    rss="-"
    if [ $step = up ]; then i0=$(io "$d" rchar); sleep 5; idle=$(( ($(io "$d" rchar) - i0) / 5 / 1024 ))
      rss=$(awk '/^VmRSS/ {print $2}' "/proc/$d/status"); fi
    printf '%-5s %-6s %-14s %-14s %-10s %-10s %-24s %s\n' "$n" "$step" \
      "$(( (w1 - w0) / n / 1024 ))" "$(( (r1 - r0) / n / 1024 ))" "$w" "$sc" "$idle" "$rss"
  done
done
