#!/usr/bin/env bash
# LNMP (examples/lnmp): time from `up -d` to every service healthy.
#  - cached: images already built (loaded from scripts/prepare-examples.sh's archive) into a fresh
#    instance inside a throwaway network namespace; `up -d --wait`, then `down -v` (first start:
#    MariaDB initialises its volume) and again after a plain `down` (data kept).
#  - cold (COLD=1): a fresh instance in the host's network namespace (RUN needs the Debian mirror):
#    `image bootstrap debian:bookworm` + `up -d --build --wait`.
#  - docker compose / podman-compose on the same compose file and Dockerfiles, where installed.
# Usage: sudo bench/lnmp.sh   (RUNS=3, COLD=0|1, PORT=18480 for the host-namespace runs)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
cargo build --release -p berth >/dev/null 2>&1 || cargo build --release -p berth
berth="$CARGO_TARGET_DIR/release/berth"
RUNS=${RUNS:-3}; COLD=${COLD:-0}; PORT=${PORT:-18480}
stack=$PWD/examples/lnmp/compose.yaml
tar=$BERTH_CACHE/examples/lnmp.tar
[ -f "$tar" ] || ./scripts/prepare-examples.sh lnmp
work=$(mktemp -d); ns="bench-lnmp-$$"
cleanup() {
  for r in "$work"/root*; do
    [ -d "$r" ] || continue
    nsenter --net=/run/netns/$ns "$berth" --root "$r" --run "$r.run" -f "$stack" down -v >/dev/null 2>&1 || true
    "$berth" --root "$r" --run "$r.run" -f "$stack" down -v >/dev/null 2>&1 || true
    "$berth" --root "$r" --run "$r.run" system shutdown >/dev/null 2>&1 || true
    nsenter --net=/run/netns/$ns "$berth" --root "$r" --run "$r.run" system shutdown >/dev/null 2>&1 || true
  done
  pkill -9 -f "$work" 2>/dev/null || true
  grep " $work" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns"; ip netns exec "$ns" ip link set lo up
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2)? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }

B() { nsenter --net=/run/netns/$ns "$berth" --root "$work/root" --run "$work/root.run" "$@"; }
t=$(date +%s%N); B image load -q -i "$tar" >/dev/null; load=$(ms "$t")
first=(); again=()
for _ in $(seq "$RUNS"); do
  t=$(date +%s%N); B -f "$stack" up -d --no-build --wait --wait-timeout 300 >/dev/null; first+=("$(ms "$t")")
  B -f "$stack" down >/dev/null
  t=$(date +%s%N); B -f "$stack" up -d --no-build --wait --wait-timeout 300 >/dev/null; again+=("$(ms "$t")")
  nsenter --net=/run/netns/$ns curl -fsS --max-time 5 http://127.0.0.1:8080/ | grep -q visits
  B -f "$stack" down -v >/dev/null
done
echo "berth $("$berth" --version | awk '{print $2}'), images cached (load of $(du -m "$tar" | cut -f1) MB archive: $load ms)"
echo "  up -d --wait, fresh volume (MariaDB init): $(printf '%s\n' "${first[@]}" | median) ms [${first[*]}]"
echo "  up -d --wait, data kept:                   $(printf '%s\n' "${again[@]}" | median) ms [${again[*]}]"

if [ "$COLD" = 1 ]; then
  C() { "$berth" --root "$work/rootcold" --run "$work/rootcold.run" "$@"; }
  t=$(date +%s%N); C image bootstrap debian:bookworm >/dev/null; boot=$(ms "$t")
  t=$(date +%s%N); LNMP_HTTP_PORT=$PORT C -f "$stack" up -d --build --wait --wait-timeout 600 >/dev/null; cold=$(ms "$t")
  curl -fsS --max-time 5 "http://127.0.0.1:$PORT/" | grep -q visits && ok=ok || ok="page FAILED"
  LNMP_HTTP_PORT=$PORT C -f "$stack" down -v >/dev/null
  echo "berth cold: image bootstrap $boot ms + up -d --build --wait $cold ms ($ok)"
fi

if docker compose version >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  t=$(date +%s%N); LNMP_HTTP_PORT=$PORT docker compose -p lnmpbench -f "$stack" up -d --build --wait >/dev/null; d=$(ms "$t")
  LNMP_HTTP_PORT=$PORT docker compose -p lnmpbench -f "$stack" down -v >/dev/null
  t=$(date +%s%N); LNMP_HTTP_PORT=$PORT docker compose -p lnmpbench -f "$stack" up -d --wait >/dev/null; d2=$(ms "$t")
  LNMP_HTTP_PORT=$PORT docker compose -p lnmpbench -f "$stack" down -v >/dev/null
  echo "docker compose: up -d --build --wait $d ms (builds cached after the first run); images cached $d2 ms"
else
  echo "docker compose: not installed or no engine running here: skipped"
fi
if command -v podman-compose >/dev/null 2>&1; then
  t=$(date +%s%N); LNMP_HTTP_PORT=$PORT podman-compose -p lnmpbench -f "$stack" up -d >/dev/null 2>&1; p=$(ms "$t")
  LNMP_HTTP_PORT=$PORT podman-compose -p lnmpbench -f "$stack" down -v >/dev/null 2>&1
  echo "podman-compose: up -d $p ms (no --wait in podman-compose 1.0: until started, not healthy)"
else
  echo "podman-compose: not installed: skipped"
fi
