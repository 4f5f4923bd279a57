#!/usr/bin/env bash
# Cost of a large compose file: `berth config` wall time and the daemon's CPU time (user+sys,
# from /proc/PID/stat) for `up -d --no-start`, the same `up` again (nothing to do: observe and
# plan only) and `down`, for files of growing size in three
# shapes: many services (`services`), a few services with big environment maps (`env`), a few
# with many labels (`labels`). Linear means the cost per MB stays flat as the size grows.
# Usage: sudo bench/large-compose.sh [SHAPE...]   (default: services env labels); SIZES="1 2 5" (MB)
# BERTH=path/to/berth uses that binary instead of building the release one. The instance runs
# inside a throwaway network namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
if [ -z "${BERTH:-}" ]; then
  cargo build --release -p berth >/dev/null 2>&1 || cargo build --release -p berth
  BERTH="$CARGO_TARGET_DIR/release/berth"
fi
shapes=("$@"); [ $# -eq 0 ] && shapes=(services env labels)
SIZES=${SIZES:-"1 2 5"}
work=$(mktemp -d); ns="bench-large-$$"
cleanup() {
  nsenter --net=/run/netns/$ns "$BERTH" --root "$work/root" --run "$work/run" system shutdown >/dev/null 2>&1 || true
  grep " $work" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns"; ip netns exec "$ns" ip link set lo up
B() { nsenter --net=/run/netns/$ns "$BERTH" --root "$work/root" --run "$work/run" "$@"; }

rootfs="$work/rootfs"; mkdir -p "$rootfs/bin" "$rootfs/etc"
cp /bin/busybox "$rootfs/bin/"; ln -s busybox "$rootfs/bin/sleep"
echo "root:x:0:0:root:/:/bin/sh" > "$rootfs/etc/passwd"
tar -C "$rootfs" -cf "$work/rootfs.tar" . && B image import "$work/rootfs.tar" busybox:bench >/dev/null

# gen SHAPE MB -> compose file on stdout
gen() {
  python3 - "$1" "$2" <<'EOF'
import sys
shape, mb = sys.argv[1], float(sys.argv[2])
target = int(mb * 1024 * 1024)
out = ["name: large\nservices:\n"]
size = len(out[0])
head = "    image: busybox:bench\n    pull_policy: never\n    command: [sleep, '3600']\n"
if shape == "services":
    i = 0
    while size < target:
        # no network: a /24 holds 253 containers, and attaching is not what is measured here
        s = f"  s{i}:\n{head}    network_mode: none\n    environment:\n" + "".join(
            f"      VAR_{j}: value-{i}-{j}\n" for j in range(40))
        out.append(s); size += len(s); i += 1
else:
    key = "environment" if shape == "env" else "labels"
    per = target // 3
    for i in range(3):
        s = [f"  s{i}:\n{head}    {key}:\n"]
        n, j = 0, 0
        while n < per:
            line = f"      K_{j}: v{j}\n" if key == "environment" else f"      com.example.k{j}: v{j}\n"
            s.append(line); n += len(line); j += 1
        s = "".join(s); out.append(s); size += len(s)
sys.stdout.write("".join(out))
EOF
}
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }   # clock ticks
tck=$(getconf CLK_TCK)
printf '%-9s %5s %9s %10s %12s %12s %12s\n' shape MB bytes config_s up_cpu_s reup_cpu_s down_cpu_s
for shape in "${shapes[@]}"; do
  for mb in $SIZES; do
    f="$work/$shape-$mb.yaml"; gen "$shape" "$mb" > "$f"
    t0=$(date +%s%N); B -f "$f" config >/dev/null; t1=$(date +%s%N)
    B network ls >/dev/null
    pid=$(cat "$work/run/berth.pid")
    c0=$(cpu "$pid"); B -f "$f" up -d --no-start >/dev/null; c1=$(cpu "$pid")
    B -f "$f" up -d --no-start >/dev/null; c2=$(cpu "$pid")
    B -f "$f" down >/dev/null; c3=$(cpu "$pid")
    printf '%-9s %5s %9s %10.2f %12.2f %12.2f %12.2f\n' "$shape" "$mb" "$(stat -c %s "$f")" \
      "$(echo "($t1 - $t0) / 1000000000" | bc -l)" "$(echo "($c1 - $c0) / $tck" | bc -l)" \
      "$(echo "($c2 - $c1) / $tck" | bc -l)" "$(echo "($c3 - $c2) / $tck" | bc -l)"
  done
done
