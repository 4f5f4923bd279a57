#!/usr/bin/env bash
# `berth watch` latency, printed as figures (not a timed test). As root; no network
# (busybox-static base image).
#
#   bench/watch.sh                       # 50 edits, a 1,000-file burst
#   N=100 FILES=5000 BERTH=path/to/berth bench/watch.sh
#
# Edit-to-visible: a file under a `sync` rule is rewritten on the host and read back through
# the container's own root (/proc/PID/root of its process, so the reads cost no exec) until
# the new content shows; median, p95, min and max over N edits.
# Burst: FILES new files written at once (a `git checkout`), the time until the last one is in
# the container, and how many syncs the watch made for them (goal: one).
#
# COMPARE=1 (or ENGINES=docker): the same project, edits and burst with Docker Compose v2's
# `docker compose watch --no-up` on dockerd (bench/engines.sh; started and stopped here unless
# already up), read back through the container's /proc/PID/root the same way. podman-compose
# has no watch.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-50}
FILES=${FILES:-1000}
BERTH=${BERTH:-${CARGO_TARGET_DIR:-target}/release/berth}
[ -x "$BERTH" ] || { echo "build first: cargo build --release -p berth (or set BERTH)" >&2; exit 1; }
if [ "${COMPARE:-0}" = 1 ] && [ -z "${ENGINES:-}" ]; then ENGINES=docker; fi
# shellcheck source=bench/compare-lib.sh
. bench/compare-lib.sh

work=$(mktemp -d /tmp/bwatch.XXXXXX)
export BERTH_CGROUP_PARENT=berth-bench-$$
B=("$BERTH" --root "$work/root" --run "$work/run")
watch_pid=
dwatch_pid=
cleanup() {
  [ -n "$watch_pid" ] && kill -INT "$watch_pid" 2>/dev/null && wait "$watch_pid" 2>/dev/null || true
  if [ -n "$dwatch_pid" ]; then
    # Its own process group: the docker CLI and its compose plugin both hear the INT.
    kill -INT -- "-$dwatch_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$dwatch_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$dwatch_pid" 2>/dev/null || true
    wait "$dwatch_pid" 2>/dev/null || true
  fi
  if eng docker && [ -d "$work/dstack" ]; then
    (cd "$work/dstack" && dk compose -p bwatchd down -t 1 >/dev/null 2>&1) || true
    dk image rm -f benchbase:1 >/dev/null 2>&1 || true
  fi
  engines_fini
  (cd "$work/stack" 2>/dev/null && "${B[@]}" down -t 1 >/dev/null 2>&1) || true
  "${B[@]}" system shutdown >/dev/null 2>&1 || true
  for h in /sys/fs/cgroup/*/"$BERTH_CGROUP_PARENT" /sys/fs/cgroup/"$BERTH_CGROUP_PARENT"; do rmdir "$h" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/rootfs/bin" "$work/rootfs/etc" "$work/rootfs/tmp" "$work/stack/src"
cp /bin/busybox "$work/rootfs/bin/"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$work/rootfs/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$work/rootfs/etc/passwd"
printf 'root:x:0:\n' >"$work/rootfs/etc/group"
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
"${B[@]}" image import "$work/rootfs.tar" benchbase:1 >/dev/null

marker=$((900000 + $$ % 99999))
cat >"$work/stack/compose.yaml" <<YAML
name: bwatch
services:
  app:
    image: benchbase:1
    command: ["sleep", "$marker"]
    stop_grace_period: 1s
    develop:
      watch:
        - {action: sync, path: ./src, target: /app}
YAML
echo start >"$work/stack/src/f.txt"
cd "$work/stack"
"${B[@]}" up -d >/dev/null 2>&1
pid=$(pgrep -x -f "sleep $marker" | head -1)
[ -n "$pid" ] || { echo "the container's process was not found" >&2; exit 1; }
"${B[@]}" watch --no-up >"$work/watch.log" 2>&1 &
watch_pid=$!
# The watch is up when its first line is out.
for _ in $(seq 1 200); do grep -q Watching "$work/watch.log" && break; sleep 0.05; done
sleep 0.2

cat >"$work/measure.py" <<'PY'
import os, re, sys, time, statistics
src, dst, n, files, log = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
# What a sync line of the watch's log starts with (berth: "Synced service", Compose: "Syncing").
sync_line = re.compile(sys.argv[6])

def visible(path, want, limit=10.0):
    start = time.monotonic()
    while time.monotonic() - start < limit:
        try:
            with open(path) as f:
                if f.read() == want:
                    return True
        except OSError:
            pass
        time.sleep(0.0005)
    return False

lat = []
for i in range(n):
    want = f"edit {i} {time.time_ns()}\n"
    t0 = time.monotonic()
    with open(os.path.join(src, "f.txt"), "w") as f:
        f.write(want)
    if not visible(os.path.join(dst, "f.txt"), want):
        sys.exit(f"edit {i} never showed in the container")
    lat.append((time.monotonic() - t0) * 1000)
    time.sleep(0.1)  # a separate save, not part of the previous batch
lat.sort()
p95 = lat[min(len(lat) - 1, int(round(0.95 * len(lat))) - 1)]
print(f"edit-to-visible over {n} edits: median {statistics.median(lat):.1f} ms, "
      f"p95 {p95:.1f} ms, min {lat[0]:.1f} ms, max {lat[-1]:.1f} ms")

def syncs():
    with open(log) as f:
        return sum(1 for l in f if sync_line.search(l))

time.sleep(0.5)
before = syncs()
os.makedirs(os.path.join(src, "burst"), exist_ok=True)
time.sleep(0.3)
before = syncs()
t0 = time.monotonic()
for i in range(files):
    with open(os.path.join(src, "burst", f"b{i}.txt"), "w") as f:
        f.write(f"burst {i}\n")
written = (time.monotonic() - t0) * 1000
# Every file, in whatever order the watch copies them (Compose's is not the names').
pending = set(range(files))
while pending and time.monotonic() - t0 < 60:
    pending = {i for i in pending if not os.path.exists(os.path.join(dst, "burst", f"b{i}.txt"))}
    if pending:
        time.sleep(0.002)
done = (time.monotonic() - t0) * 1000
time.sleep(1.0)
print(f"burst of {files} files: written in {written:.0f} ms, all in the container after "
      f"{done:.0f} ms, {syncs() - before} sync(s), {len(pending)} missing after 60 s")
PY
echo "berth watch:"
python3 "$work/measure.py" "$work/stack/src" "/proc/$pid/root/app" "$N" "$FILES" "$work/watch.log" '^Synced service'
kill -INT "$watch_pid" 2>/dev/null && wait "$watch_pid" 2>/dev/null || true
watch_pid=

if eng docker; then
  engines_init
  engines_versions
  dk import "$work/rootfs.tar" benchbase:1 >/dev/null
  mkdir -p "$work/dstack/src"
  sed "s/^name: bwatch$/name: bwatchd/" "$work/stack/compose.yaml" >"$work/dstack/compose.yaml"
  echo start >"$work/dstack/src/f.txt"
  cd "$work/dstack"
  dk compose -p bwatchd up -d >"$work/dup.log" 2>&1 || { cat "$work/dup.log" >&2; exit 1; }
  dpid=$(dk inspect -f '{{.State.Pid}}' bwatchd-app-1)
  [ -n "$dpid" ] && [ "$dpid" != 0 ] || { echo "the compose container's process was not found" >&2; exit 1; }
  # Not through dk (a function: $! would be a subshell): setsid and nsenter exec in place,
  # so $! is the CLI, leading a process group of its own with its compose plugin.
  setsid nsenter --net="/run/netns/$ENGINES_NS" "$ENGINES_DOCKER" compose -p bwatchd watch --no-up \
    >"$work/dwatch.log" 2>&1 &
  dwatch_pid=$!
  for _ in $(seq 1 200); do grep -qi watch "$work/dwatch.log" && break; sleep 0.05; done
  sleep 1
  echo "docker compose watch (Compose $(dk compose version --short 2>/dev/null), dockerd):"
  python3 "$work/measure.py" "$work/dstack/src" "/proc/$dpid/root/app" "$N" "$FILES" "$work/dwatch.log" 'Syncing'
fi
