#!/usr/bin/env bash
# berth up -d / down of N busybox `sleep` services (one network, init: true, db <- app <- web,
# the rest depending on db: the topology of ../shared/research/bench-anchors.sh), plus daemon
# and shim memory. The network is a /21 (room for 2,000 containers). Runs the whole instance
# inside a throwaway network namespace.
# Usage: sudo bench/stack-up-down.sh [SIZES...]   (default: 3 20 50); RUNS=3; BERTH=binary
# Alone (no COMPARE), it prints per container: the wall time and the CPU time the daemon spent
# (user + system), the latter hardly moved by other load on the machine.
#
# COMPARE=1 (or ENGINES=docker,podman) runs the same compose file, same image (the busybox rootfs
# imported), in the same loop: Docker Compose v2 against dockerd 20.10, podman-compose 1.0.3 against
# podman 4.3, and (PODMAN_API=1, the default) Compose v2 against podman's Docker-compatible API
# (`podman system service`). Every run does one cycle of each tool, the order turning each run, so
# the drift of a shared machine hits all alike; each tool has one unrecorded warm-up cycle per size.
# `up -d` is the command's wall time, then the bench checks that all N containers run; `down` is
# the command's wall time. podman-compose 1.0.3 sleeps 1 s after starting each container (a fixed
# `sleep=1` in its `up`), so its `up -d` is ~N s plus the work. Memory is read while the last
# run's stack is up. The engines live in their own network namespace (bench/engines.sh).
# DOCKER_API=1 adds Compose v2 driving berth through its Docker Engine API socket (docker-compose
# from scripts/deps.sh's venv, DOCKER_HOST=<run>/docker.sock) to the same table, with or without
# the other engines.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
. bench/compare-lib.sh
# BERTH=path/to/berth measures that binary instead of building this tree's release build.
if [ -n "${BERTH:-}" ]; then
  berth=$BERTH
else
  cargo build --release -p berth >/dev/null 2>&1 || cargo build --release -p berth
  berth="$CARGO_TARGET_DIR/release/berth"
fi
sizes=("${@:-3 20 50}"); [ $# -eq 0 ] && sizes=(3 20 50)
RUNS=${RUNS:-3}
PODMAN_API=${PODMAN_API:-1}
DOCKER_API=${DOCKER_API:-0}
work=$(mktemp -d); ns="bench-stack-$$"
api_pid=""
cleanup() {
  nsenter --net=/run/netns/$ns "$berth" --root "$work/root" --run "$work/run" system shutdown >/dev/null 2>&1 || true
  pkill -9 -f "$work" 2>/dev/null || true
  grep " $work" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  if [ -n "$ENGINES" ]; then
    for n in "${sizes[@]}"; do
      for t in $tools; do [ "$t" = berth ] || down_tool "$t" "$n" >/dev/null 2>&1 || true; done
    done
    if eng docker; then dk rmi -f busybox:bench >/dev/null 2>&1 || true; fi
    if eng podman; then pm rmi -f busybox:bench >/dev/null 2>&1 || true; fi
    [ -n "$api_pid" ] && { kill "$api_pid" 2>/dev/null; wait "$api_pid" 2>/dev/null || true; rm -f "$PODMAN_SOCK"; }
    engines_fini
  fi
  rm -rf "$work"
}
tools="berth"
trap cleanup EXIT
ip netns add "$ns"; ip netns exec "$ns" ip link set lo up
B() { nsenter --net=/run/netns/$ns "$berth" --root "$work/root" --run "$work/run" "$@"; }

rootfs="$work/rootfs"; mkdir -p "$rootfs/bin" "$rootfs/etc"
cp /bin/busybox "$rootfs/bin/"; for a in sh sleep true; do ln -s busybox "$rootfs/bin/$a"; done
echo "root:x:0:0:root:/:/bin/sh" > "$rootfs/etc/passwd"
tar -C "$rootfs" -cf "$work/rootfs.tar" . && B image import "$work/rootfs.tar" busybox:bench >/dev/null

engines_init
if [ "$DOCKER_API" = 1 ]; then
  command -v docker-compose >/dev/null || { echo "DOCKER_API=1: docker-compose not on PATH (scripts/deps.sh installs it; . scripts/env.sh)" >&2; exit 1; }
  tools="$tools compose-berth"
fi
if [ -n "$ENGINES" ]; then
  if eng docker; then
    dk import "$work/rootfs.tar" busybox:bench >/dev/null
    tools="$tools compose-docker"
  fi
  if eng podman; then
    pm import -q "$work/rootfs.tar" busybox:bench >/dev/null
    tools="$tools podman-compose"
    if [ "$PODMAN_API" = 1 ]; then
      PODMAN_SOCK=/run/berth-bench-engines/podman.sock
      rm -f "$PODMAN_SOCK"
      pm system service --time=0 "unix://$PODMAN_SOCK" > "$work/podman-service.log" 2>&1 &
      api_pid=$!
      for _ in $(seq 100); do curl -sf --unix-socket "$PODMAN_SOCK" http://d/_ping >/dev/null 2>&1 && break; sleep 0.1; done
      curl -sf --unix-socket "$PODMAN_SOCK" http://d/_ping >/dev/null || { echo "podman system service did not answer" >&2; exit 1; }
      tools="$tools compose-podman"
    fi
  fi
fi

gen() { # gen N -> compose file on stdout
  local n=$1
  printf 'name: bench%s\nx-s: &s\n  image: busybox:bench\n  pull_policy: never\n  init: true\n  stop_grace_period: 2s\n  command: ["sleep", "86400"]\nnetworks:\n  default:\n    ipam:\n      config:\n        - subnet: 10.77.0.0/21\nservices:\n' "$n"
  printf '  db:\n    <<: *s\n'
  [ "$n" -ge 2 ] && printf '  app:\n    <<: *s\n    depends_on: [db]\n'
  [ "$n" -ge 3 ] && printf '  web:\n    <<: *s\n    depends_on: [app]\n'
  for i in $(seq 4 "$n"); do printf '  svc%02d:\n    <<: *s\n    depends_on: [db]\n' "$i"; done
}
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2)? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# CPU time (user + system, ms) the process has used so far: the daemon's share of a step, which
# a loaded machine stretches far less than the wall time
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{sub(/^.*\) /, ""); print int(($12 + $13) * 1000 / hz)}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# mean "RSS/PSS (n=N)" in KiB of the given PIDs
rss_pss() { for p in "$@"; do awk '/^Rss:/ {r=$2} /^Pss:/ {q=$2} END {print r, q}' "/proc/$p/smaps_rollup" 2>/dev/null; done |
  awk '{r+=$1; p+=$2; n++} END {if (n) printf "%d/%d (n=%d)", r/n, p/n, n; else print "-"}'; }
# berth_shims shims|inits: PIDs of berth's shims, or of the containers' inits (init: true): the
# small static init (init/, bound into the container as /sbin/docker-init), each the child of
# its container's shim
berth_shims() {
  local q
  for q in $(pgrep -f "shim $work"); do
    if [ "$1" = shims ]; then echo "$q"; else pgrep -P "$q" -x docker-init || true; fi
  done
  return 0
}
# PIDs in the engines' network namespace whose comm is $1
ns_pids() { local ino p; ino=$(stat -Lc %i "/run/netns/$ENGINES_NS")
  for p in $(pgrep -x "$1"); do [ "$(stat -Lc %i "/proc/$p/ns/net" 2>/dev/null)" = "$ino" ] && echo "$p"; done; }

proj() { case $1 in compose-berth) echo "cmpb$2" ;; compose-docker) echo "cmpd$2" ;; podman-compose) echo "cmpp$2" ;; compose-podman) echo "cmpa$2" ;; *) echo "bench$2" ;; esac; }
run_tool() { # run_tool TOOL N up|down
  local f="$work/s$2/compose.yaml" p; p=$(proj "$1" "$2"); local a=(down)
  [ "$3" = up ] && a=(up -d)
  case $1 in
    berth) B -f "$f" "${a[@]}" ;;
    compose-berth) DOCKER_HOST="unix://$work/run/docker.sock" docker-compose -p "$p" -f "$f" "${a[@]}" ;;
    compose-docker) dk compose -p "$p" -f "$f" "${a[@]}" ;;
    compose-podman) DOCKER_HOST="unix://$PODMAN_SOCK" dk compose -p "$p" -f "$f" "${a[@]}" ;;
    podman-compose) nsenter --net="/run/netns/$ENGINES_NS" podman-compose -p "$p" -f "$f" "${a[@]}" ;;
  esac
}
down_tool() {
  [ -f "$work/s$2/compose.yaml" ] && run_tool "$1" "$2" down
  [ "$1" = podman-compose ] && pm network rm -f "cmpp$2_default" >/dev/null 2>&1
  return 0
}
running() { # running TOOL N -> running containers of that project
  case $1 in
    berth) B -f "$work/s$2/compose.yaml" ps -q 2>/dev/null | wc -l ;;
    compose-berth) DOCKER_HOST="unix://$work/run/docker.sock" docker ps -q --filter "label=com.docker.compose.project=cmpb$2" --filter status=running | wc -l ;;
    compose-docker) dk ps -q --filter "label=com.docker.compose.project=cmpd$2" --filter status=running | wc -l ;;
    compose-podman) pm ps -q --filter "label=com.docker.compose.project=cmpa$2" --filter status=running | wc -l ;;
    podman-compose) pm ps -q --filter "label=io.podman.compose.project=cmpp$2" --filter status=running | wc -l ;;
  esac
}
memory() { # memory TOOL N -> text, read while the stack is up
  case $1 in
    berth)
      local pid; pid=$(cat "$work/run/berth.pid")
      # with init: true the container's init is shown apart (docker's and podman's inits are not
      # counted at all)
      echo "daemon RSS $(rss "$pid") KiB; shim RSS/PSS $(rss_pss $(berth_shims shims)); (init in the container $(rss_pss $(berth_shims inits)))" ;;
    compose-berth) echo "daemon RSS $(rss "$(cat "$work/run/berth.pid")") KiB (Docker API served); shim RSS/PSS $(rss_pss $(berth_shims shims))" ;;
    compose-docker)
      echo "dockerd RSS $(rss "$(cat /run/berth-bench-engines/dockerd.pid)") KiB, containerd RSS $(rss "$(cat /run/berth-bench-engines/containerd.pid)") KiB; shim RSS/PSS $(rss_pss $(ns_pids containerd-shim))" ;;
    compose-podman)
      echo "podman service RSS $(rss "$(pgrep -P "$api_pid" -x podman || echo "$api_pid")") KiB; conmon RSS/PSS $(rss_pss $(ns_pids conmon)); aardvark-dns RSS $(rss "$(ns_pids aardvark-dns | head -1)") KiB" ;;
    podman-compose)
      echo "no daemon; conmon RSS/PSS $(rss_pss $(ns_pids conmon)); aardvark-dns RSS $(rss "$(ns_pids aardvark-dns | head -1)") KiB" ;;
  esac
}
label() {
  case $1 in
    berth) echo "berth $("$berth" --version | awk '{print $2}')" ;;
    compose-berth) echo "Compose v2 -> berth's Docker API" ;;
    compose-docker) echo "Compose v2 -> dockerd" ;;
    compose-podman) echo "Compose v2 -> podman API" ;;
    podman-compose) echo "podman-compose -> podman" ;;
  esac
}

if [ -z "$ENGINES" ] && [ "$DOCKER_API" != 1 ]; then
  echo "$(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); per c = per container (median run)"
  printf '%-6s %-20s %-20s %-9s %-9s %-11s %-11s %-16s %s\n' "svcs" "up -d (ms)" "down (ms)" "up ms/c" "down ms/c" \
    "d.cpu up/c" "d.cpu dn/c" "daemon RSS (KB)" "shim RSS/PSS (KB, mean)"
  for n in "${sizes[@]}"; do
    mkdir -p "$work/s$n"; gen "$n" > "$work/s$n/compose.yaml"
    ups=(); downs=(); cups=(); cdowns=(); rss=""; shim=""
    B -f "$work/s$n/compose.yaml" up -d >/dev/null 2>&1; B -f "$work/s$n/compose.yaml" down >/dev/null 2>&1  # warm-up
    for r in $(seq "$RUNS"); do
      pid=$(cat "$work/run/berth.pid"); c=$(cpu_ms "$pid")
      t=$(date +%s%N); B -f "$work/s$n/compose.yaml" up -d >/dev/null 2>&1; ups+=("$(ms "$t")")
      cups+=("$(( $(cpu_ms "$pid") - c ))")
      rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
      # shims only: with init: true the container's init is a child of the shim, not counted here
      shim=$(rss_pss $(berth_shims shims))
      c=$(cpu_ms "$pid")
      t=$(date +%s%N); B -f "$work/s$n/compose.yaml" down >/dev/null 2>&1; downs+=("$(ms "$t")")
      cdowns+=("$(( $(cpu_ms "$pid") - c ))")
    done
    mu=$(printf '%s\n' "${ups[@]}" | median); md=$(printf '%s\n' "${downs[@]}" | median)
    cu=$(printf '%s\n' "${cups[@]}" | median); cd=$(printf '%s\n' "${cdowns[@]}" | median)
    per() { awk -v a="$1" -v n="$n" 'BEGIN {printf "%.1f", a / n}'; }
    printf '%-6s %-20s %-20s %-9s %-9s %-11s %-11s %-16s %s\n' "$n" "$mu [${ups[*]}]" "$md [${downs[*]}]" \
      "$(per "$mu")" "$(per "$md")" "$(per "$cu")" "$(per "$cd")" "$rss" "$shim"
  done
  exit 0
fi

# COMPARE: one cycle of every tool per run, order turning
cycle() { # cycle TOOL N RECORD(0|1)
  local t=$1 n=$2 t0 tu td c
  t0=$(date +%s%N); run_tool "$t" "$n" up > "$work/$t-$n-up.log" 2>&1 || { echo "$t up -d ($n) failed:" >&2; tail -5 "$work/$t-$n-up.log" >&2; exit 1; }
  tu=$(ms "$t0")
  c=$(running "$t" "$n")
  [ "$c" -ge "$n" ] || { echo "$t: $c of $n containers running after up -d" >&2; tail -5 "$work/$t-$n-up.log" >&2; exit 1; }
  [ "$3" = mem ] && memory "$t" "$n" > "$work/$t-$n.mem"
  t0=$(date +%s%N)
  if ! run_tool "$t" "$n" down > "$work/$t-$n-down.log" 2>&1; then
    # dockerd 20.10 under load sometimes refuses the network removal ("has active endpoints")
    # after every container is gone: counted, the time of that first down kept, and the down
    # repeated outside the timing
    td=$(ms "$t0")
    echo "$t down ($n) failed: $(grep -m1 -i error "$work/$t-$n-down.log")" >&2
    [ "$3" = 0 ] || grep -m1 -io 'has active endpoints\|error.*' "$work/$t-$n-down.log" >> "$work/$t-$n.fail" || true
    local k; for k in 1 2 3 4 5; do sleep 1; run_tool "$t" "$n" down >/dev/null 2>&1 && break; done
  else
    td=$(ms "$t0")
  fi
  # podman-compose 1.0.3's down leaves the project network: removed here, outside the timing, so
  # that every tool's up creates its network
  [ "$t" = podman-compose ] && pm network rm -f "cmpp${n}_default" >/dev/null 2>&1
  [ "$3" = 0 ] && return 0
  echo "$tu" >> "$work/$t-$n.up"; echo "$td" >> "$work/$t-$n.down"
}
echo "stack of N busybox \`sleep\` services (init: true, db <- app <- web, the rest depend on db), wall ms, RUNS=$RUNS interleaved; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
engines_versions
echo
echo "| svcs | tool | up -d | down | memory while up (KiB) |"
echo "|---|---|---|---|---|"
for n in "${sizes[@]}"; do
  mkdir -p "$work/s$n"; gen "$n" > "$work/s$n/compose.yaml"
  for t in $tools; do cycle "$t" "$n" 0; done   # warm-up
  order=$tools
  for r in $(seq "$RUNS"); do
    for t in $order; do if [ "$r" = "$RUNS" ]; then cycle "$t" "$n" mem; else cycle "$t" "$n" 1; fi; done
    order=$(echo $order | awk '{for (i = 2; i <= NF; i++) printf "%s ", $i; print $1}')
  done
  for t in $tools; do
    f=""; [ -s "$work/$t-$n.fail" ] && f=", $(wc -l < "$work/$t-$n.fail") failed: $(sort -u "$work/$t-$n.fail" | head -1)"
    echo "| $n | $(label "$t") | $(stats_ms < "$work/$t-$n.up") | $(stats_ms < "$work/$t-$n.down")$f | $(cat "$work/$t-$n.mem") |"
  done
done
echo
echo "podman-compose 1.0.3 sleeps 1 s after each container it starts (up -d of N services >= N s); its down leaves the network (removed by the bench outside the timing)."
