#!/usr/bin/env bash
# Fully cached rebuild of a 20-instruction Dockerfile (issue 7 goal: < 100 ms), printed as
# figures (not a timed test). As root; no network (busybox-static base image).
#
#   bench/build-cached.sh                 # N=20 cached rebuilds
#   N=50 BERTH=path/to/berth bench/build-cached.sh
#
# Prints the first (uncached) build time, then median/min/max wall ms of `berth image build`
# when every step is a cache hit (the whole process: parse, context scan, plan, cache lookups,
# tag), and of a rebuild after an mtime-only `touch` of every context file.
#
# COMPARE=1 (or ENGINES=docker,podman): the same Dockerfile, context and base (the rootfs tar
# imported) built by `docker build` (dockerd 20.10: the legacy builder, and BuildKit with
# DOCKER_BUILDKIT=1) and `podman build --format docker` (buildah in podman 4.3), interleaved with
# berth in the same loop, printed as a table. A rebuild counts only if it is fully cached (berth:
# every step CACHED; docker/podman: the image ID did not change). The engines run in their own
# network namespace (bench/engines.sh, started and stopped here unless already up).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/compare-lib.sh
N=${N:-20}
BERTH=${BERTH:-${CARGO_TARGET_DIR:-target}/release/berth}
[ -x "$BERTH" ] || { echo "build first: cargo build --release -p berth (or set BERTH)" >&2; exit 1; }

work=$(mktemp -d /tmp/bbuild.XXXXXX)
export BERTH_CGROUP_PARENT=berth-bench-$$
B=("$BERTH" --root "$work/root" --run "$work/run")
cleanup() {
  "${B[@]}" container ls -a -q 2>/dev/null | while read -r id; do "${B[@]}" container rm -f "$id" >/dev/null 2>&1 || true; done
  # RUN steps start the instance's daemon (it owns the build network): stop it.
  "${B[@]}" system shutdown >/dev/null 2>&1 || true
  for h in /sys/fs/cgroup/*/"$BERTH_CGROUP_PARENT" /sys/fs/cgroup/"$BERTH_CGROUP_PARENT"; do rmdir "$h" 2>/dev/null || true; done
  if [ -n "$ENGINES" ]; then
    if eng docker; then dk rmi -f bench-legacy:1 bench-buildkit:1 benchbase:1 >/dev/null 2>&1; dk builder prune -af >/dev/null 2>&1; fi
    if eng podman; then pm rmi -f bench:1 benchbase:1 >/dev/null 2>&1; pm image prune -f >/dev/null 2>&1; fi
    engines_fini
  fi
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/rootfs/bin" "$work/rootfs/etc" "$work/rootfs/tmp" "$work/ctx/src"
cp /bin/busybox "$work/rootfs/bin/"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$work/rootfs/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n' >"$work/rootfs/etc/passwd"
printf 'root:x:0:\napp:x:1000:\n' >"$work/rootfs/etc/group"
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
"${B[@]}" image import "$work/rootfs.tar" benchbase:1 >/dev/null

for i in $(seq 1 200); do echo "file $i" >"$work/ctx/src/f$i.txt"; done
cat >"$work/ctx/Dockerfile" <<'DF'
FROM benchbase:1
ARG VERSION=1.0
ENV APP_HOME=/srv/app APP_VERSION=$VERSION
LABEL org.example.name=bench
WORKDIR /srv/app
RUN mkdir -p /srv/app/data && echo one > /srv/app/data/one
COPY src/ ./src/
RUN ls src | wc -l > count
ENV PATH=/srv/app/bin:/bin
RUN mkdir bin && echo '#!/bin/sh' > bin/hello && chmod +x bin/hello
COPY Dockerfile /srv/Dockerfile
EXPOSE 8080
VOLUME /srv/app/data
USER app
STOPSIGNAL SIGTERM
ENV MODE=prod
HEALTHCHECK --interval=30s CMD test -e /srv/app/count
LABEL org.example.version=$VERSION
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /srv/app/count"]
DF

now_ms() { date +%s%3N; }
t0=$(now_ms)
"${B[@]}" image build -q -t bench:1 "$work/ctx" >/dev/null
t1=$(now_ms)
echo "uncached build, 20 instructions: $((t1 - t0)) ms"

measure() {
  local label=$1 touch_first=$2 times=()
  for _ in $(seq 1 "$N"); do
    [ "$touch_first" = 1 ] && find "$work/ctx" -type f -exec touch {} +
    local a b
    a=$(now_ms)
    "${B[@]}" image build -t bench:1 "$work/ctx" 2>"$work/err" >/dev/null
    b=$(now_ms)
    grep -q ' CACHED$' "$work/err" || { cat "$work/err"; exit 1; }
    ! grep -v -e ' CACHED$' -e '^built ' -e '^\[1/[0-9]*\] FROM ' "$work/err" | grep -q . || { echo "not fully cached:"; cat "$work/err"; exit 1; }
    times+=($((b - a)))
  done
  sorted=($(printf '%s\n' "${times[@]}" | sort -n))
  echo "$label (N=$N): median ${sorted[$((N / 2))]} ms, min ${sorted[0]} ms, max ${sorted[$((N - 1))]} ms"
}
if [ -z "$ENGINES" ]; then
  measure "fully cached rebuild" 0
  measure "cached rebuild after touching every file (mtime only)" 1
  exit 0
fi

# COMPARE: every tool in the same loop.
engines_init
tools="berth"
if eng docker; then dk import "$work/rootfs.tar" benchbase:1 >/dev/null; tools="$tools docker-legacy docker-buildkit"; fi
if eng podman; then pm import -q "$work/rootfs.tar" benchbase:1 >/dev/null; tools="$tools podman"; fi
build_tool() { # build_tool TOOL -> builds, output in $work/$TOOL.out
  case $1 in
    berth) "${B[@]}" image build -t bench:1 "$work/ctx" 2> "$work/berth.out" >/dev/null ;;
    docker-legacy) DOCKER_BUILDKIT=0 dk build -q -t bench-legacy:1 "$work/ctx" > "$work/docker-legacy.out" 2>&1 ;;
    docker-buildkit) DOCKER_BUILDKIT=1 dk build -q -t bench-buildkit:1 "$work/ctx" > "$work/docker-buildkit.out" 2>&1 ;;
    podman) pm build -q --format docker -t bench:1 "$work/ctx" > "$work/podman.out" 2>&1 ;;
  esac
}
image_id() {
  case $1 in
    berth) echo - ;;
    docker-legacy) dk image inspect -f '{{.Id}}' bench-legacy:1 ;;
    docker-buildkit) dk image inspect -f '{{.Id}}' bench-buildkit:1 ;;
    podman) pm image inspect -f '{{.Id}}' bench:1 ;;
  esac
}
cached_ok() { # cached_ok TOOL FIRST_ID
  if [ "$1" = berth ]; then
    grep -q ' CACHED$' "$work/berth.out" &&
      ! grep -v -e ' CACHED$' -e '^built ' -e '^\[1/[0-9]*\] FROM ' "$work/berth.out" | grep -q .
  else
    [ "$(image_id "$1")" = "$2" ]
  fi
}
declare -A first_ms first_id
for t in $tools; do
  [ "$t" = berth ] && { first_ms[$t]="$((t1 - t0))"; first_id[$t]=-; continue; }
  a=$(now_ms); build_tool "$t" || { echo "$t: first build failed:"; cat "$work/$t.out"; exit 1; }; b=$(now_ms)
  first_ms[$t]=$((b - a)); first_id[$t]=$(image_id "$t")
done
for kind in cached touched; do
  for t in $tools; do : > "$work/$t.$kind"; done
  for _ in $(seq 1 "$N"); do
    for t in $tools; do
      [ "$kind" = touched ] && find "$work/ctx" -type f -exec touch {} +
      a=$(now_ms); build_tool "$t" || { echo "$t: rebuild failed:"; cat "$work/$t.out"; exit 1; }; b=$(now_ms)
      cached_ok "$t" "${first_id[$t]}" || { echo "$t: rebuild not fully cached:"; cat "$work/$t.out"; exit 1; }
      echo $((b - a)) >> "$work/$t.$kind"
    done
  done
done
label() {
  case $1 in
    berth) echo "berth $("$BERTH" --version | awk '{print $2}') \`image build\`" ;;
    docker-legacy) echo "docker build (20.10 legacy builder)" ;;
    docker-buildkit) echo "docker build, DOCKER_BUILDKIT=1" ;;
    podman) echo "podman build --format docker" ;;
  esac
}
echo
echo "20-instruction Dockerfile, 200-file context, wall ms, interleaved (N=$N each; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
engines_versions
echo "| tool | first (uncached) build | fully cached rebuild | cached rebuild after touching every file |"
echo "|---|---|---|---|"
for t in $tools; do
  echo "| $(label "$t") | ${first_ms[$t]} | $(stats_ms < "$work/$t.cached") | $(stats_ms < "$work/$t.touched") |"
done
