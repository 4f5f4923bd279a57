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
set -euo pipefail
cd "$(dirname "$0")/.."
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
measure "fully cached rebuild" 0
measure "cached rebuild after touching every file (mtime only)" 1
