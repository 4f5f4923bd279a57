#!/usr/bin/env bash
# Image size before/after squashing: a Dockerfile that "installs build tools" (a 32 MiB
# toolchain of random bytes), "compiles" with them, then removes them in a later RUN. Prints the
# image size unsquashed, after `berth image squash`, after `berth image build --squash`, and the
# wasted bytes `berth image analyze` reports. As root; no network (busybox-static base image).
#
#   bench/squash.sh                          # berth only
#   TOOLCHAIN_MB=128 BERTH=path/to/berth bench/squash.sh
#   COMPARE=1 bench/squash.sh                # also `podman build` and `podman build --squash`
#
# Sizes are the images' unpacked file bytes as `berth image ls` counts them; podman's are its
# `image inspect` .Size (the layer tars), so compare each engine's before/after ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/compare-lib.sh
# Only podman has a --squash to compare with.
if [ -n "$ENGINES" ]; then ENGINES=podman; fi
MB=${TOOLCHAIN_MB:-32}
BERTH=${BERTH:-${CARGO_TARGET_DIR:-target}/release/berth}
[ -x "$BERTH" ] || { echo "build first: cargo build --release -p berth (or set BERTH)" >&2; exit 1; }

work=$(mktemp -d /tmp/bsquash.XXXXXX)
export BERTH_CGROUP_PARENT=berth-bench-$$
B=("$BERTH" --root "$work/root" --run "$work/run")
cleanup() {
  "${B[@]}" system shutdown >/dev/null 2>&1 || true
  for h in /sys/fs/cgroup/*/"$BERTH_CGROUP_PARENT" /sys/fs/cgroup/"$BERTH_CGROUP_PARENT"; do rmdir "$h" 2>/dev/null || true; done
  if [ -n "$ENGINES" ]; then
    pm rmi -f sqbench:plain sqbench:squash sqbase:1 >/dev/null 2>&1 || true
    engines_fini
  fi
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/rootfs/bin" "$work/rootfs/etc" "$work/rootfs/tmp" "$work/ctx"
cp /bin/busybox "$work/rootfs/bin/"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$work/rootfs/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$work/rootfs/etc/passwd"
printf 'root:x:0:\n' >"$work/rootfs/etc/group"
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
"${B[@]}" image import "$work/rootfs.tar" sqbase:1 >/dev/null

cat >"$work/ctx/Dockerfile" <<DF
FROM sqbase:1
ENV APP=demo
RUN --network=none mkdir -p /opt/toolchain && head -c ${MB}m /dev/urandom > /opt/toolchain/cc1 && cp /bin/busybox /opt/toolchain/ld
RUN --network=none mkdir -p /app && cat /opt/toolchain/ld > /app/demo && chmod +x /app/demo
RUN --network=none rm -rf /opt/toolchain
WORKDIR /app
CMD ["/app/demo", "echo", "hello"]
DF

size_of() { "${B[@]}" image inspect "$1" | sed -n 's/.*"Size": *\([0-9]*\).*/\1/p' | head -1; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

"${B[@]}" image build -q -t sqbench:plain "$work/ctx" >/dev/null
plain=$(size_of sqbench:plain)
wasted=$("${B[@]}" image analyze --format json sqbench:plain | sed -n 's/^  "wasted": *\([0-9]*\).*/\1/p')
"${B[@]}" image squash -q -t sqbench:squashed sqbench:plain >/dev/null
squashed=$(size_of sqbench:squashed)
"${B[@]}" image build -q --squash -t sqbench:buildsquash "$work/ctx" >/dev/null
buildsquash=$(size_of sqbench:buildsquash)
echo "berth: unsquashed $(mib "$plain"), analyze says $(mib "$wasted") wasted"
echo "berth: image squash (one layer)            $(mib "$squashed")"
echo "berth: image build --squash (base + one)   $(mib "$buildsquash")"

if [ -n "$ENGINES" ]; then
  engines_init
  pm import -q "$work/rootfs.tar" sqbase:1 >/dev/null
  sed -i 's/--network=none //' "$work/ctx/Dockerfile"
  pm build -q --format docker -t sqbench:plain "$work/ctx" >/dev/null
  pm build -q --format docker --squash -t sqbench:squash "$work/ctx" >/dev/null
  echo "podman: unsquashed $(mib "$(pm image inspect -f '{{.Size}}' sqbench:plain)")"
  echo "podman: build --squash                     $(mib "$(pm image inspect -f '{{.Size}}' sqbench:squash)")"
fi
