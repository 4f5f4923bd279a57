#!/usr/bin/env bash
# Start latency of two berth binaries side by side (a change's before and after), printed as
# figures (not a timed test). As root.
#
#   A=path/to/old/berth B=path/to/new/berth N=20 bench/start-ab.sh
#   NETWORK=bridge ...   the same on each instance's default bridge network (each instance and
#                        its daemon in a throwaway network namespace of its own, so that their
#                        bridges, addresses and firewall never touch the host's)
#
# Each binary gets its own instance (root, run dir, daemon) and the two are alternated run by
# run (A B, B A, ...), so that both see the same load on a shared machine. Per binary:
# 1. `berth container run --rm --network none --rootfs R true` (its own CLI -> daemon -> shim);
# 2. `docker run --rm --network none IMG true` with DOCKER_HOST at its Docker API socket;
# 3. `docker version` against the same socket: the docker CLI's own floor (start-up, one
#    round trip), which (2) cannot go below.
# With perf: CPU time and page faults of (1), every process forked from the command counted.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/compare-lib.sh
N=${N:-20}
A=${A:?set A to the berth binary before the change}
B=${B:?set B to the berth binary after the change}
for bin in "$A" "$B"; do [ -x "$bin" ] || { echo "$bin: not an executable" >&2; exit 1; }; done
work=$(mktemp -d /tmp/bab.XXXXXX)
export BERTH_CGROUP_PARENT=berth-bench-ab-$$
NETWORK=${NETWORK:-none}
case $NETWORK in none|bridge) ;; *) echo "NETWORK=$NETWORK: none or bridge" >&2; exit 1 ;; esac
nsname() { echo "berth-ab-$$-$1"; }
inst() { # the CLI of instance $1 (a or b)
  local bin=$A pre=""; [ "$1" = b ] && bin=$B
  [ "$NETWORK" = bridge ] && pre="nsenter --net=/run/netns/$(nsname "$1") "
  echo "$pre$bin --root $work/$1/root --run $work/$1/run"
}
cleanup() {
  for i in a b; do
    $(inst $i) container ls -a -q 2>/dev/null |
      while read -r id; do $(inst $i) container rm -f "$id" >/dev/null 2>&1 || true; done
    $(inst $i) system shutdown >/dev/null 2>&1 || true
  done
  for d in /sys/fs/cgroup/*/"$BERTH_CGROUP_PARENT"; do
    [ -d "$d" ] || continue
    for c in "$d"/*/; do [ -d "$c" ] && rmdir "$c" 2>/dev/null; done
    rmdir "$d" 2>/dev/null || true
  done
  if [ "$NETWORK" = bridge ]; then
    for i in a b; do ip netns del "$(nsname $i)" 2>/dev/null || true; done
  fi
  rm -rf "$work"
}
trap cleanup EXIT

if [ "$NETWORK" = bridge ]; then
  for i in a b; do ip netns add "$(nsname $i)" && nsenter --net=/run/netns/"$(nsname $i)" ip link set lo up; done
fi
rootfs=$work/rootfs
mkdir -p "$rootfs/bin" "$rootfs/etc"
for a in $(/bin/busybox --list); do ln -sf busybox "$rootfs/bin/$a"; done
cp --remove-destination /bin/busybox "$rootfs/bin/busybox"
echo "root:x:0:0:root:/root:/bin/sh" > "$rootfs/etc/passwd"
echo "root:x:0:" > "$rootfs/etc/group"
tar -C "$rootfs" -cf "$work/rootfs.tar" .
IMG=berth-bench/busybox:ab
for i in a b; do
  $(inst $i) image import "$work/rootfs.tar" "$IMG" >/dev/null
  host=$($(inst $i) system docker-host)
  eval "D_$i=(env DOCKER_HOST=$host DOCKER_CONFIG=$work/docker-config docker)"
done
net_flag=(--network none); [ "$NETWORK" = bridge ] && net_flag=()
run_cli() { $(inst "$1") container run --rm "${net_flag[@]}" --rootfs "$rootfs" true; }
run_api() { local -n d="D_$1"; "${d[@]}" run --rm "${net_flag[@]}" "$IMG" true; }
ver_api() { local -n d="D_$1"; "${d[@]}" version >/dev/null; }
for i in a b; do run_cli $i; run_api $i; ver_api $i; done # warm-up
now_ns() { date +%s%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", (b - a) / 1e6 }'; }
for f in cli api ver; do : > "$work/a.$f"; : > "$work/b.$f"; done
load0=$(cut -d' ' -f1-3 /proc/loadavg)
for n in $(seq "$N"); do
  # A B, then B A: each runs as often right after the other (whose deferred work, such as a
  # shim's clean-up after its report, may still be running).
  order="a b"; [ $((n % 2)) = 0 ] && order="b a"
  for i in $order; do
    for f in cli api ver; do
      case $f in cli) cmd=run_cli ;; api) cmd=run_api ;; ver) cmd=ver_api ;; esac
      t0=$(now_ns); "$cmd" "$i"; t1=$(now_ns)
      ms "$t0" "$t1" >> "$work/$i.$f"
    done
  done
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)
echo "start latency, wall ms, A and B alternated (N=$N; network $NETWORK; load $load0 at the start, $load1 at the end)"
echo "A = $A"
echo "B = $B"
echo "| command | A median [min-max] (n) | B median [min-max] (n) |"
echo "|---|---|---|"
nf=""; [ "$NETWORK" = none ] && nf=" --network none"
echo "| \`berth container run --rm$nf --rootfs R true\` | $(stats_ms 1 < "$work/a.cli") | $(stats_ms 1 < "$work/b.cli") |"
echo "| \`docker run --rm$nf IMG true\` via berth's API | $(stats_ms 1 < "$work/a.api") | $(stats_ms 1 < "$work/b.api") |"
echo "| \`docker version\` via berth's API (the docker CLI's floor) | $(stats_ms 1 < "$work/a.ver") | $(stats_ms 1 < "$work/b.ver") |"
if perf stat -x, -e task-clock true >/dev/null 2>&1; then
  for i in a b; do
    : > "$work/$i.cpu"
  done
  for _ in $(seq $(( (N + 1) / 2 ))); do
    for i in a b; do
      perf stat -x, -e task-clock,page-faults $(inst $i) container run --rm "${net_flag[@]}" --rootfs "$rootfs" true 2>&1 >/dev/null |
        awk -F, '$3 == "task-clock" {t = $1} $3 == "page-faults" {f = $1} END {print t, f}' >> "$work/$i.cpu"
    done
  done
  cpustats() { sort -n "$1" | awk '{t[NR]=$1; f[NR]=$2} END {m=int((NR+1)/2); printf "CPU %.1f ms, %d page faults (n=%d)", t[m], f[m], NR}'; }
  echo "| \`berth container run --rm\`, perf stat (medians) | $(cpustats "$work/a.cpu") | $(cpustats "$work/b.cpu") |"
fi
