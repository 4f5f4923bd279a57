#!/usr/bin/env bash
# Container start-up and shim memory, printed as figures (not a timed test). As root.
#
#   bench/container-run.sh            # N=30 runs each, M=50 detached containers
#   N=50 M=100 BERTH=path/to/berth bench/container-run.sh
#
# 1. `berth container run --rm --network none --rootfs R true`: median/min/max wall ms.
#    The same on the default bridge network (BRIDGE=1, the default): a second instance in a
#    throwaway network namespace, so that the veth, address and DNS records show as the difference.
# 2. `crun run` of the very bundle berth wrote for such a container (same config.json).
#    crun refuses this host's hybrid cgroup layout while hugetlb sits on cgroup2 only
#    (see research/ANCHORS.md); with CRUN_FIX_HUGETLB=1 the script mounts hugetlb as a v1
#    hierarchy for the run and unmounts it afterwards, otherwise it prints crun's error.
#    Note: the kernel keeps that v1 hugetlb hierarchy alive after the unmount, so
#    /sys/fs/cgroup/unified/cgroup.controllers stays empty until reboot (berth reads the
#    mounts and does not care; crun then works without the fix).
# 3. With perf: CPU time (task-clock) and page faults of one start, all processes counted.
# 4. M detached `sleep` containers started in a loop: total time, RSS per shim, total RSS.
# COMPARE=1 (or ENGINES=docker,podman) adds `docker run --rm --network none IMG true` and
# `podman run --rm --network none IMG true` of the same busybox rootfs (imported as an image) to
# the interleaved loop and prints a table; the engines run in their own network namespace
# (bench/engines.sh, started and stopped here unless already up). Their hugetlb fix also lets crun run.
# DOCKER_API=1 adds the docker CLI driving berth through its Docker Engine API socket: `docker run
# --rm --network none IMG true` (DOCKER_HOST=<run>/docker.sock) beside `berth container run --rm
# --network none IMG true` of the same image, interleaved with the rest; and the docker CLI's
# own floor, `docker version --format '{{.Server.Version}}'` against berth (the CLI's start-up,
# its config read and one request), so that what the API path costs berth shows as the run
# minus that floor, beside berth's own CLI. With podman among the
# engines, the same docker CLI also drives podman's Docker-compatible API (`podman system service`,
# started in the engines' namespace for the run and stopped at the end): a row of the table.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/compare-lib.sh
N=${N:-30}
M=${M:-50}
BERTH=${BERTH:-${CARGO_TARGET_DIR:-target}/release/berth}
[ -x "$BERTH" ] || { echo "build first: cargo build --release -p berth (or set BERTH)" >&2; exit 1; }

work=$(mktemp -d /tmp/bb.XXXXXX)
hugetlb_mounted=""
podman_api_pid=""
PODMAN_SOCK=/run/berth-bench-engines/podman-run.sock
# Our own cgroup parent, for berth and (through the same bundle) crun; removed at the end.
export BERTH_CGROUP_PARENT=berth-bench-$$
cleanup() {
  "$BERTH" --root "$work/root" --run "$work/run" container ls -a -q 2>/dev/null |
    while read -r id; do "$BERTH" --root "$work/root" --run "$work/run" container rm -f "$id" >/dev/null 2>&1 || true; done
  # The Docker API's default `bridge` network lives in the host's namespace here: remove it
  # (and any other) before the daemon goes, or its bridge and nft table outlive the run.
  "$BERTH" --root "$work/root" --run "$work/run" network prune -f >/dev/null 2>&1 || true
  # Every create goes through the instance's daemon: stop it (and its DNS keeper) too.
  "$BERTH" --root "$work/root" --run "$work/run" system shutdown >/dev/null 2>&1 || true
  if [ -e "/run/netns/$bns" ]; then
    "${BN[@]}" container ls -a -q 2>/dev/null |
      while read -r id; do "${BN[@]}" container rm -f "$id" >/dev/null 2>&1 || true; done
    "${BN[@]}" network prune -f >/dev/null 2>&1 || true
    "${BN[@]}" system shutdown >/dev/null 2>&1 || true
    ip netns del "$bns" 2>/dev/null || true
  fi
  crun --root "$work/crun" list -q 2>/dev/null | while read -r c; do crun --root "$work/crun" delete -f "$c" >/dev/null 2>&1 || true; done
  for d in /sys/fs/cgroup/*/"$BERTH_CGROUP_PARENT"; do
    [ -d "$d" ] || continue
    for c in "$d"/*/; do [ -d "$c" ] && rmdir "$c" 2>/dev/null; done
    rmdir "$d" 2>/dev/null || true
  done
  [ -n "$hugetlb_mounted" ] && umount "$hugetlb_mounted" && rmdir "$hugetlb_mounted"
  if [ -n "$podman_api_pid" ]; then
    kill "$podman_api_pid" 2>/dev/null; wait "$podman_api_pid" 2>/dev/null || true
    rm -f "$PODMAN_SOCK"
  fi
  if [ -n "$ENGINES" ]; then
    eng docker && dk rmi -f berth-bench/busybox:run >/dev/null 2>&1
    eng podman && pm rmi -f berth-bench/busybox:run >/dev/null 2>&1
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

B=("$BERTH" --root "$work/root" --run "$work/run")
# The same start on the default bridge network (a veth, an address, DNS records), from a
# second instance inside a throwaway network namespace (its bridge and nft table are made
# there, never in the host's). BRIDGE=0 leaves it out.
BRIDGE=${BRIDGE:-1}
bns=berth-bench-run-$$
BN=(nsenter --net=/run/netns/$bns "$BERTH" --root "$work/rootn" --run "$work/runn")
DOCKER_API=${DOCKER_API:-0}
if [ "$DOCKER_API" = 1 ]; then
  tar -C "$rootfs" -cf "$work/rootfs-api.tar" .
  "${B[@]}" image import "$work/rootfs-api.tar" berth-bench/busybox:run >/dev/null
  # `system docker-host` starts the daemon (and its Docker socket) when none runs.
  BDOCKER=(env DOCKER_HOST="$("${B[@]}" system docker-host)" DOCKER_CONFIG="$work/docker-config" docker)
  BIMG=(run --rm --network none berth-bench/busybox:run true)
  "${BDOCKER[@]}" "${BIMG[@]}"; "${B[@]}" container "${BIMG[@]}" # warm-up
fi
engines_init
if [ -n "$ENGINES" ]; then
  tar -C "$rootfs" -cf "$work/rootfs.tar" .
  eng docker && dk import "$work/rootfs.tar" berth-bench/busybox:run >/dev/null
  eng podman && pm import -q "$work/rootfs.tar" berth-bench/busybox:run >/dev/null
fi
# podman's Docker-compatible API, driven by the docker CLI that drives berth's.
PDOCKER=()
if eng podman; then
  rm -f "$PODMAN_SOCK"
  pm system service --time=0 "unix://$PODMAN_SOCK" > "$work/podman-service.log" 2>&1 &
  podman_api_pid=$!
  for _ in $(seq 100); do curl -sf --unix-socket "$PODMAN_SOCK" http://d/_ping >/dev/null 2>&1 && break; sleep 0.1; done
  curl -sf --unix-socket "$PODMAN_SOCK" http://d/_ping >/dev/null || { echo "podman system service did not answer" >&2; exit 1; }
  PDOCKER=(env DOCKER_HOST="unix://$PODMAN_SOCK" DOCKER_CONFIG="$work/docker-config" docker)
fi
DRUN=(run --rm --pull never --network none berth-bench/busybox:run true)
now_ns() { date +%s%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", (b - a) / 1e6 }'; }
stats() { # reads ms values on stdin, prints median [min-max] (n)
  sort -n | awk '{v[NR]=$1} END {m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; printf "median %.1f ms [%.1f-%.1f] (n=%d)\n", m, v[1], v[NR], NR}'
}

# crun runs the very bundle berth writes for such a container (same config.json).
id=$("${B[@]}" container create --network none --rootfs "$rootfs" true)
bundle=$work/root/containers/$id
if [ "${CRUN_FIX_HUGETLB:-0}" = 1 ] && ! grep -q ' cgroup .*hugetlb' /proc/self/mountinfo \
   && grep -qw hugetlb /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null; then
  mkdir -p /sys/fs/cgroup/hugetlb && mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb && hugetlb_mounted=/sys/fs/cgroup/hugetlb
fi
crun_ok=1
crun_err=$(crun --root "$work/crun" run -b "$bundle" bench-warm 2>&1) || crun_ok=0
"${B[@]}" container run --rm --network none --rootfs "$rootfs" true # warm-up
if [ "$BRIDGE" = 1 ]; then
  ip netns add "$bns" && ip netns exec "$bns" ip link set lo up
  "${BN[@]}" container run --rm --rootfs "$rootfs" true # warm-up: makes the default network
fi
: > "$work/bridge.ms"
if [ -n "$ENGINES" ]; then # warm-up
  eng docker && dk "${DRUN[@]}"
  eng podman && pm "${DRUN[@]}" && "${PDOCKER[@]}" "${DRUN[@]}"
fi
# Interleaved, so that all see the same load on a shared machine.
: > "$work/berth.ms"; : > "$work/crun.ms"; : > "$work/docker.ms"; : > "$work/podman.ms"
: > "$work/api.ms"; : > "$work/img.ms"; : > "$work/podman-api.ms"; : > "$work/floor.ms"
# The daemon's CPU time (user + system, all threads, in clock ticks): what each path costs it,
# which a loaded machine's scheduling does not inflate the way it inflates wall time.
daemon_ticks() { awk '{print $14 + $15}' "/proc/$(cat "$work/run/berth.pid")/stat" 2>/dev/null || echo 0; }
api_ticks=0; img_ticks=0
for i in $(seq "$N"); do
  if [ "$DOCKER_API" = 1 ]; then
    c0=$(daemon_ticks)
    t0=$(now_ns); "${BDOCKER[@]}" "${BIMG[@]}"; t1=$(now_ns); ms "$t0" "$t1" >> "$work/api.ms"
    c1=$(daemon_ticks)
    t0=$(now_ns); "${B[@]}" container "${BIMG[@]}"; t1=$(now_ns); ms "$t0" "$t1" >> "$work/img.ms"
    c2=$(daemon_ticks)
    api_ticks=$((api_ticks + c1 - c0)); img_ticks=$((img_ticks + c2 - c1))
    t0=$(now_ns); "${BDOCKER[@]}" version --format '{{.Server.Version}}' >/dev/null; t1=$(now_ns)
    ms "$t0" "$t1" >> "$work/floor.ms"
  fi
  if eng docker; then
    t0=$(now_ns); dk "${DRUN[@]}"; t1=$(now_ns); ms "$t0" "$t1" >> "$work/docker.ms"
  fi
  if eng podman; then
    t0=$(now_ns); pm "${DRUN[@]}"; t1=$(now_ns); ms "$t0" "$t1" >> "$work/podman.ms"
    t0=$(now_ns); "${PDOCKER[@]}" "${DRUN[@]}"; t1=$(now_ns); ms "$t0" "$t1" >> "$work/podman-api.ms"
  fi
  t0=$(now_ns); "${B[@]}" container run --rm --network none --rootfs "$rootfs" true; t1=$(now_ns)
  ms "$t0" "$t1" >> "$work/berth.ms"
  if [ "$BRIDGE" = 1 ]; then
    t0=$(now_ns); "${BN[@]}" container run --rm --rootfs "$rootfs" true; t1=$(now_ns)
    ms "$t0" "$t1" >> "$work/bridge.ms"
  fi
  if [ "$crun_ok" = 1 ]; then
    t0=$(now_ns); crun --root "$work/crun" run -b "$bundle" "bench-$i" >/dev/null; t1=$(now_ns)
    ms "$t0" "$t1" >> "$work/crun.ms"
  fi
done
printf '%-44s %s\n' "berth container run --rm --network none true" "$(stats < "$work/berth.ms")"
if [ "$BRIDGE" = 1 ]; then
  printf '%-44s %s\n' "berth container run --rm (bridge) true" "$(stats < "$work/bridge.ms")"
fi
if [ "$crun_ok" = 1 ]; then
  printf '%-44s %s\n' "crun run (same bundle)" "$(stats < "$work/crun.ms")"
else
  printf '%-44s %s\n' "crun run (same bundle)" "not measured: $crun_err"
fi
if [ "$DOCKER_API" = 1 ]; then
  printf '%-44s %s\n' "berth container run --rm (image) true" "$(stats < "$work/img.ms")"
  printf '%-44s %s\n' "docker run --rm true via berth's Docker API" "$(stats < "$work/api.ms")"
  printf '%-44s %s\n' "docker CLI floor: docker version via berth" "$(stats < "$work/floor.ms")"
  # The run's median minus the floor's: what the Docker API path costs beyond the CLI itself.
  med() { sort -n "$1" | awk '{v[NR]=$1} END {print (NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2}'; }
  printf '%-44s %s\n' "docker run via berth minus the CLI floor" \
    "$(awk -v r="$(med "$work/api.ms")" -v f="$(med "$work/floor.ms")" -v b="$(med "$work/img.ms")" \
      'BEGIN { printf "%.1f ms (berth CLI %.1f ms, ratio %.2f)", r - f, b, (r - f) / b }')"
  hz=$(getconf CLK_TCK)
  printf '%-44s %s\n' "daemon CPU per run (user+sys)" \
    "$(awk -v a="$api_ticks" -v b="$img_ticks" -v n="$N" -v hz="$hz" \
      'BEGIN { printf "docker run %.1f ms, berth CLI run %.1f ms (n=%d)", a * 1000 / hz / n, b * 1000 / hz / n, n }')"
fi
# CPU time and page faults of the whole start (perf stat counts every process forked from
# the command: CLI, shim, container), which a loaded machine's scheduling does not inflate
# the way it inflates wall time. Needs `perf` (software events are enough).
if perf stat -x, -e task-clock true >/dev/null 2>&1; then
  cpu() { # prints "task-clock-ms page-faults" of one run of "$@"
    perf stat -x, -e task-clock,page-faults "$@" 2>&1 >/dev/null |
      awk -F, '$3 == "task-clock" {t = $1} $3 == "page-faults" {f = $1} END {print t, f}'
  }
  : > "$work/berth.cpu"; : > "$work/crun.cpu"
  for i in $(seq $(( (N + 2) / 3 ))); do
    cpu "${B[@]}" container run --rm --network none --rootfs "$rootfs" true >> "$work/berth.cpu"
    [ "$crun_ok" = 1 ] && cpu crun --root "$work/crun" run -b "$bundle" "bench-cpu-$i" >> "$work/crun.cpu"
  done
  cpustats() { # median task-clock ms and page faults
    sort -n "$1" | awk '{t[NR]=$1; f[NR]=$2} END {m=int((NR+1)/2); printf "CPU median %.1f ms, %d page faults (n=%d)", t[m], f[m], NR}'
  }
  printf '%-44s %s\n' "berth run --rm true, perf stat" "$(cpustats "$work/berth.cpu")"
  [ "$crun_ok" = 1 ] && printf '%-44s %s\n' "crun run, perf stat" "$(cpustats "$work/crun.cpu")"
fi
"${B[@]}" container rm "$id" >/dev/null
if [ -n "$ENGINES" ]; then
  echo
  echo "start of a container, \`true\`, --network none, wall ms, interleaved (N=$N; load $(cut -d' ' -f1-3 /proc/loadavg))"
  engines_versions
  echo "| tool | command | median [min-max] (n) |"
  echo "|---|---|---|"
  echo "| berth $("$BERTH" --version | awk '{print $2}') | \`berth container run --rm --network none --rootfs R true\` | $(stats_ms 1 < "$work/berth.ms") |"
  [ "$BRIDGE" = 1 ] && echo "| berth $("$BERTH" --version | awk '{print $2}') | \`berth container run --rm --rootfs R true\` on the default bridge network | $(stats_ms 1 < "$work/bridge.ms") |"
  [ "$crun_ok" = 1 ] && echo "| crun $(crun --version | awk 'NR==1{print $3}') | \`crun run\` of berth's bundle for that container | $(stats_ms 1 < "$work/crun.ms") |"
  [ "$DOCKER_API" = 1 ] && echo "| berth $("$BERTH" --version | awk '{print $2}') | \`berth container run --rm --network none IMG true\` | $(stats_ms 1 < "$work/img.ms") |"
  [ "$DOCKER_API" = 1 ] && echo "| docker CLI $(docker --version | awk '{print $3}' | tr -d ,) -> berth | \`docker run --rm --network none IMG true\`, DOCKER_HOST berth's docker.sock | $(stats_ms 1 < "$work/api.ms") |"
  eng podman && echo "| podman | \`podman run --rm --network none IMG true\` | $(stats_ms 1 < "$work/podman.ms") |"
  eng podman && echo "| docker CLI $(docker --version | awk '{print $3}' | tr -d ,) -> podman | \`docker run --rm --network none IMG true\`, DOCKER_HOST \`podman system service\` | $(stats_ms 1 < "$work/podman-api.ms") |"
  eng docker && echo "| docker | \`docker run --rm --network none IMG true\` | $(stats_ms 1 < "$work/docker.ms") |"
  echo
fi

t0=$(now_ns)
if [ "$DOCKER_API" = 1 ]; then # through the Docker API: the daemon holds them all
  for i in $(seq "$M"); do "${BDOCKER[@]}" run -d --network none berth-bench/busybox:run sleep 600 >/dev/null; done
  how="docker run -d via berth's API"
else
  for i in $(seq "$M"); do "${B[@]}" container run -d --network none --rootfs "$rootfs" sleep 600 >/dev/null; done
  how="berth container run -d"
fi
t1=$(now_ns)
printf '%-44s %s\n' "$M detached containers started in a loop" "$(ms "$t0" "$t1") ms total ($how)"
shim_kb=0; shim_pss=0; shim_priv=0; ctr_kb=0; n=0
for st in "$work"/root/containers/*/state.json; do
  spid=$(grep -o '"shim_pid": *[0-9]*' "$st" | grep -o '[0-9]*$')
  cpid=$(grep -o '"pid": *[0-9]*' "$st" | head -1 | grep -o '[0-9]*$')
  s=$(awk '/VmRSS/ {print $2}' "/proc/$spid/status"); c=$(awk '/VmRSS/ {print $2}' "/proc/$cpid/status")
  p=$(awk '/^Pss:/ {print $2}' "/proc/$spid/smaps_rollup")
  v=$(awk '/^Private_(Clean|Dirty):/ {t += $2} END {print t}' "/proc/$spid/smaps_rollup")
  shim_kb=$((shim_kb + s)); shim_pss=$((shim_pss + p)); shim_priv=$((shim_priv + v))
  ctr_kb=$((ctr_kb + c)); n=$((n + 1))
done
# RSS counts the berth binary's pages that all shims share; PSS splits them, and the private
# part is what one more container really costs.
printf '%-44s %s\n' "shim memory per running container" \
  "RSS $((shim_kb / n)) KiB, PSS $((shim_pss / n)) KiB, private $((shim_priv / n)) KiB (n=$n)"
printf '%-44s %s\n' "container process RSS (busybox sleep)" "$((ctr_kb / n)) KiB each"
if [ -f "$work/run/berth.pid" ]; then
  printf '%-44s %s\n' "daemon RSS with $n containers$([ "$DOCKER_API" = 1 ] && echo ", Docker API used")" \
    "$(awk '/VmRSS/ {print $2}' "/proc/$(cat "$work/run/berth.pid")/status") KiB"
fi
