#!/usr/bin/env bash
# What a `RUN --mount=type=cache` buys: a Dockerfile whose apt step follows a COPY of the
# sources, rebuilt after a source change, with the apt lists and archives in cache mounts and
# without them. Printed as figures (not a timed test). As root; network: the Debian mirror
# (apt-get in the build, as scripts/prepare-examples.sh).
#
#   bench/cache-mount.sh                    # N=3 rebuilds of each, PKGS="make file less"
#   N=5 PKGS="gcc" BERTH=path/to/berth bench/cache-mount.sh
#
# The base is berth's debootstrapped debian:bookworm from the CI cache (the image-bootstrap
# test's store, or the examples'), copied into a throwaway instance.
# COMPARE=1 adds `docker build` with BuildKit (DOCKER_BUILDKIT=1, dockerd of bench/engines.sh,
# in its own network namespace) of the same two Dockerfiles and context, in the same loop.
# Besides each rebuild's wall time, the apt step's own time as each tool reports it (berth's
# step line, BuildKit's plain progress).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/compare-lib.sh
N=${N:-3}
PKGS=${PKGS:-make file less}
BERTH=${BERTH:-${CARGO_TARGET_DIR:-target}/release/berth}
[ -x "$BERTH" ] || { echo "build first: cargo build --release -p berth (or set BERTH)" >&2; exit 1; }
BOOT=${BERTH_CACHE:-/var/cache/berth-ci}/image-bootstrap

work=$(mktemp -d /tmp/bcache.XXXXXX)
export BERTH_CGROUP_PARENT=berth-bench-$$
B=("$BERTH" --root "$work/root" --run "$work/run")
cleanup() {
  "${B[@]}" network prune -f >/dev/null 2>&1 || true
  "${B[@]}" system shutdown >/dev/null 2>&1 || true
  for h in /sys/fs/cgroup/*/"$BERTH_CGROUP_PARENT" /sys/fs/cgroup/"$BERTH_CGROUP_PARENT"; do
    for c in "$h"/*/; do [ -d "$c" ] && rmdir "$c" 2>/dev/null; done
    rmdir "$h" 2>/dev/null || true
  done
  if [ -n "$ENGINES" ]; then
    if eng docker; then dk rmi -f bench-mount:1 bench-plain:1 >/dev/null 2>&1; dk builder prune -af >/dev/null 2>&1; fi
    engines_fini
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# The image-bootstrap test's debootstrapped base (berth-test/debian:bookworm), else the
# examples' (scripts/prepare-examples.sh); read only.
base=""
for src in "$BOOT:berth-test/debian:bookworm" "${BERTH_CACHE:-/var/cache/berth-ci}/examples/root:debian:bookworm"; do
  r=${src%%:*} ref=${src#*:}
  [ -d "$r" ] || continue
  if "$BERTH" --root "$r" --run "$work/bootrun" image save -o "$work/base.tar" "$ref" 2>/dev/null; then
    base=$ref
    "$BERTH" --root "$r" --run "$work/bootrun" system shutdown >/dev/null 2>&1 || true
    break
  fi
  "$BERTH" --root "$r" --run "$work/bootrun" system shutdown >/dev/null 2>&1 || true
done
[ -n "$base" ] || { echo "no debian:bookworm base in $BOOT or the examples' cache: run scripts/prepare-examples.sh" >&2; exit 1; }
"${B[@]}" image load -q -i "$work/base.tar" >/dev/null
[ "$base" = debian:bookworm ] || "${B[@]}" image tag "$base" debian:bookworm

mkdir -p "$work/ctx/src"
echo 0 >"$work/ctx/src/version"
common='FROM debian:bookworm
RUN rm -f /etc/apt/apt.conf.d/docker-clean && echo '"'"'Binary::apt::APT::Keep-Downloaded-Packages "true";'"'"' > /etc/apt/apt.conf.d/keep-cache
COPY src/ /src/'
printf '%s\nRUN --mount=type=cache,target=/var/cache/apt,sharing=locked --mount=type=cache,target=/var/lib/apt/lists,sharing=locked apt-get update -qq && apt-get install -qq -y --no-install-recommends %s >/dev/null\n' \
  "$common" "$PKGS" >"$work/ctx/Dockerfile.mount"
printf '%s\nRUN apt-get update -qq && apt-get install -qq -y --no-install-recommends %s >/dev/null && rm -rf /var/lib/apt/lists/*\n' \
  "$common" "$PKGS" >"$work/ctx/Dockerfile.plain"

# Only docker among the engines here (podman 4.3's buildah runs RUN --mount too, but the issue
# asks for BuildKit's figures).
if eng docker; then ENGINES=docker; else ENGINES=""; fi
engines_init
if eng docker; then
  dk load -q -i "$work/base.tar" >/dev/null
  [ "$base" = debian:bookworm ] || dk tag "$base" debian:bookworm
fi

now_ms() { date +%s%3N; }
declare -A times apt
# The apt step's own time from a build's log, in ms: berth prints "<step> 1.2s" per step run,
# BuildKit's plain progress "#N [k/n] RUN ..." then "#N DONE 1.2s".
apt_ms() { # tool log
  local n=""
  case $1 in
    berth) grep 'apt-get update' "$2" | grep -v CACHED | tail -1 | awk '{print $NF}' ;;
    docker)
      n=$(grep -m1 -E '^#[0-9]+ \[.*RUN .*apt-get update' "$2" | cut -d' ' -f1 || true)
      [ -n "$n" ] && grep -E "^$n DONE " "$2" | tail -1 | awk '{print $3}' ;;
  esac | sed 's/s$//' | awk '/^[0-9.]+$/ {printf "%d", $1 * 1000}' || true
}
build() { # tool variant
  local t0 t1 log=$work/build.log
  t0=$(now_ms)
  case $1 in
    berth) "${B[@]}" image build -f "$work/ctx/Dockerfile.$2" -t "bench-$2:1" "$work/ctx" >/dev/null 2>"$log" ;;
    docker) DOCKER_BUILDKIT=1 dk build --progress=plain -f "$work/ctx/Dockerfile.$2" -t "bench-$2:1" "$work/ctx" >/dev/null 2>"$log" ;;
  esac || { cat "$log" >&2; exit 1; }
  t1=$(now_ms)
  times[$1.$2]+="$((t1 - t0)) "
  apt[$1.$2]+="$(apt_ms "$1" "$log") "
}
tools=(berth)
eng docker && tools+=(docker)
# First builds (they fill the cache mounts), not counted.
for t in "${tools[@]}"; do for v in mount plain; do
  build "$t" "$v"; times[$t.$v]=""; apt[$t.$v]=""
done; done
for i in $(seq 1 "$N"); do
  echo "$i" >"$work/ctx/src/version"
  for t in "${tools[@]}"; do for v in mount plain; do build "$t" "$v"; done; done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo
echo "rebuild after a source change, apt-get install $PKGS, wall ms, median of $N (load $(cut -d' ' -f1-3 /proc/loadavg))"
echo "| tool | with cache mounts | without | speed-up | apt step with | apt step without | apt speed-up |"
echo "|---|---|---|---|---|---|---|"
for t in "${tools[@]}"; do
  m=$(echo "${times[$t.mount]}" | median)
  p=$(echo "${times[$t.plain]}" | median)
  am=$(echo "${apt[$t.mount]}" | median)
  ap=$(echo "${apt[$t.plain]}" | median)
  name=$t
  [ "$t" = docker ] && name="docker build (BuildKit, dockerd $(dk version -f '{{.Server.Version}}'))"
  echo "| $name | $m | $p | $(awk -v m="$m" -v p="$p" 'BEGIN {printf "%.1fx", p / m}') | $am | $ap | $(awk -v m="$am" -v p="$ap" 'BEGIN {if (m > 0) printf "%.1fx", p / m; else print "-"}') |"
done
