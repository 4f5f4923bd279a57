#!/usr/bin/env bash
# Memory of the container init (`--init`, Compose `init: true`), printed as figures (not a timed
# test). As root.
#
#   bench/init-pss.sh                       # M=10 detached `sleep` containers with --init
#   M=20 BERTH=path/to/berth bench/init-pss.sh
#   COMPARE=1 bench/init-pss.sh             # docker's docker-init (tini) and podman's catatonit too
#
# For each engine: M containers `run -d --init --network none IMG sleep 3600`; the host PID of
# each container's PID 1 (the init: `inspect -f {{.State.Pid}}`), and from its
# /proc/PID/smaps_rollup the PSS (shared pages divided among the processes that map them, so the
# M inits share their executable's pages) and RSS, median over the M inits, with the init's comm
# and executable size. COMPARE=1 (or ENGINES=docker,podman) runs the engines of bench/engines.sh
# (started and stopped here unless already up) on the same busybox rootfs imported as an image.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/compare-lib.sh
M=${M:-10}
BERTH=${BERTH:-${CARGO_TARGET_DIR:-target}/release/berth}
[ -x "$BERTH" ] || { echo "build first: cargo build --release -p berth (or set BERTH)" >&2; exit 1; }

work=$(mktemp -d /tmp/bi.XXXXXX)
export BERTH_CGROUP_PARENT=berth-bench-$$
B=("$BERTH" --root "$work/root" --run "$work/run")
IMG=berth-bench/busybox:init
cleanup() {
  "${B[@]}" container ls -a -q 2>/dev/null |
    while read -r id; do "${B[@]}" container rm -f "$id" >/dev/null 2>&1 || true; done
  "${B[@]}" system shutdown >/dev/null 2>&1 || true
  for d in /sys/fs/cgroup/*/"$BERTH_CGROUP_PARENT"; do
    [ -d "$d" ] || continue
    for c in "$d"/*/; do [ -d "$c" ] && rmdir "$c" 2>/dev/null; done
    rmdir "$d" 2>/dev/null || true
  done
  if [ -n "$ENGINES" ] && [ -n "${ENGINES_NS:-}" ]; then
    local c
    if eng docker; then
      for c in $(dk ps -aq --filter label=berth-bench=init); do dk rm -f "$c" >/dev/null 2>&1; done
      dk rmi -f "$IMG" >/dev/null 2>&1
    fi
    if eng podman; then
      for c in $(pm ps -aq --filter label=berth-bench=init); do pm rm -f -t 0 "$c" >/dev/null 2>&1; done
      pm rmi -f "$IMG" >/dev/null 2>&1
    fi
    engines_fini
  fi
  rm -rf "$work"
}
trap cleanup EXIT

rootfs=$work/rootfs
mkdir -p "$rootfs/bin" "$rootfs/etc"
for a in $(/bin/busybox --list); do ln -sf busybox "$rootfs/bin/$a"; done
cp --remove-destination /bin/busybox "$rootfs/bin/busybox"
echo "root:x:0:0:root:/root:/bin/sh" > "$rootfs/etc/passwd"
echo "root:x:0:" > "$rootfs/etc/group"
engines_init
if [ -n "$ENGINES" ]; then
  tar -C "$rootfs" -cf "$work/rootfs.tar" .
  eng docker && dk import "$work/rootfs.tar" "$IMG" >/dev/null
  eng podman && pm import -q "$work/rootfs.tar" "$IMG" >/dev/null
fi

# kB values on stdin -> "median [min-max]"
stats_kb() {
  sort -n | awk '{v[NR]=$1} END {if (!NR) {print "no samples"; exit}
    m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; printf "%d [%d-%d]", m, v[1], v[NR]}'
}
# report NAME PID... : the PIDs' PSS and RSS (kB, from smaps_rollup), comm and executable size
report() {
  local name=$1; shift
  local pss rss p comm exe size
  pss=$(for p in "$@"; do awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup"; done | stats_kb)
  rss=$(for p in "$@"; do awk '/^Rss:/{print $2}' "/proc/$p/smaps_rollup"; done | stats_kb)
  comm=$(cat "/proc/$1/comm")
  exe=$(readlink "/proc/$1/exe" 2>/dev/null || echo "?")
  size=$(stat -Lc %s "/proc/$1/exe" 2>/dev/null || echo "?")
  printf '%-8s init %-12s PSS %s kB  RSS %s kB  (n=%d; exe %s, %s bytes)\n' \
    "$name" "$comm" "$pss" "$rss" "$#" "$exe" "$size"
}

pids=()
for i in $(seq "$M"); do
  "${B[@]}" container run -d --init --network none --name "init$i" --rootfs "$rootfs" sleep 3600 >/dev/null
done
for i in $(seq "$M"); do pids+=("$("${B[@]}" container inspect -f '{{.State.Pid}}' "init$i")"); done
sleep 0.5
echo "container init memory, $M containers running sleep with --init (median [min-max] per init)"
report berth "${pids[@]}"

if eng docker; then
  pids=()
  for i in $(seq "$M"); do
    dk run -d --init --network none --label berth-bench=init --name "berth-bench-init$i" "$IMG" sleep 3600 >/dev/null
    pids+=("$(dk inspect -f '{{.State.Pid}}' "berth-bench-init$i")")
  done
  report docker "${pids[@]}"
fi
if eng podman; then
  pids=()
  for i in $(seq "$M"); do
    pm run -d --init --network none --label berth-bench=init --name "berth-bench-init$i" "$IMG" sleep 3600 >/dev/null
    pids+=("$(pm inspect -f '{{.State.Pid}}' "berth-bench-init$i")")
  done
  report podman "${pids[@]}"
fi
engines_versions
