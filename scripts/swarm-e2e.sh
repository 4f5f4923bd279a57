#!/usr/bin/env bash
# A real three-node Docker Swarm on this machine, examples/lnmp deployed on it with
# `berth deploy --swarm`, one worker killed, everything removed. Exit status 0 only when every
# step held.
#
#   scripts/swarm-e2e.sh            (as root; BERTH=path/to/berth, default $CARGO_TARGET_DIR/debug/berth)
#   SWARM_E2E_COMPARE=1 scripts/swarm-e2e.sh   also times `docker stack deploy` of the same converted
#                                   file against `berth deploy`, both with the images already pushed
#
# Layout: namespace swarm-e2e-<pid>-hub holds a bridge (100.127.231.1/24) and Debian's
# docker-registry on 100.127.231.1:5000; namespaces swarm-e2e-<pid>-n1..n3 each hold one dockerd
# (Debian's docker.io, its own containerd) with its own data-root, exec-root and pidfile under a
# temp dir, reached over a veth whose both ends live in namespaces (n1 = manager at .11, n2 and
# n3 = workers at .12, .13). dockerd is entered with `nsenter --net` only, so its iptables rules
# live in its namespace while the mount namespace and cgroup hierarchies stay the host's; the
# namespaces have no way out (no veth to the host, no route), so nothing a daemon NATs leaves
# them. Containers go under the cgroup parent swarm-e2e-<pid>-nN.
#
# Steps: the lnmp images (scripts/prepare-examples.sh's cache) are loaded into a berth instance
# of our own; `berth deploy --swarm` (run in the hub namespace, where the registry is) pushes
# them, pins them by digest and deploys with nginx and php-fpm at 2 replicas; the page must
# serve MariaDB's rows and the replicas must sit on more than one node; the dockerd of a worker
# that runs nginx is killed with everything it started (a node dying); its tasks must be
# rescheduled on the live nodes and the page must come back; `berth deploy --rm` removes the
# stack. The EXIT trap removes everything and checks that no namespace, veth, mount, process
# or cgroup of ours is left, and that the host's iptables gained no Docker rule.
#
# Routing mesh: Swarm's ingress and service VIPs need IPVS (ip_vs). Where the kernel lacks it,
# the stack is deployed with --no-mesh (ports published on the nodes that run nginx, services
# found by DNS round robin) and the page is checked on each of those nodes; the script says so.
# php-fpm and db are placed on the manager (never killed): with DNS round robin nginx resolves
# php-fpm once at start, so php-fpm must not move under it.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

ID=$$
PFX=swarm-e2e-$ID
HUB=$PFX-hub
NET=100.127.231
REG=$NET.1:5000
NODES=(n1 n2 n3)
DOCKER=${DOCKER:-/usr/bin/docker} # the client that matches Debian's dockerd
BERTH=${BERTH:-${CARGO_TARGET_DIR:-$REPO/target}/debug/berth}
CACHE=${BERTH_CACHE:-/var/cache/berth-ci}/examples/lnmp.tar
TIMEOUT=${SWARM_E2E_TIMEOUT:-420}

log() { printf 'swarm-e2e: %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; FAILED=1; exit 1; }
FAILED=0

[ "$(id -u)" = 0 ] || { log "run as root"; exit 2; }
for t in dockerd containerd docker-registry nsenter ip iptables-save curl "$DOCKER" "$BERTH"; do
  command -v "$t" >/dev/null || { log "missing: $t (scripts/deps.sh installs docker.io and docker-registry)"; exit 2; }
done
[ -f "$CACHE" ] || { log "missing $CACHE: run scripts/prepare-examples.sh lnmp"; exit 2; }

TMP=$(mktemp -d /var/tmp/swarm-e2e.XXXXXX)
# The host's Docker-made rules (a daemon started in the wrong namespace would add them).
host_docker_rules() { iptables-save 2>/dev/null | grep -iE 'docker|swarm|ingress' | sed 's/\[[0-9:]*\]//g' | sort; }
IPT_BEFORE=$(host_docker_rules)

in_ns() { local ns=$1; shift; nsenter --net="/run/netns/$ns" "$@"; }
d() { local n=$1; shift; "$DOCKER" -H "unix://$TMP/$n/docker.sock" "$@"; }
b() { "$BERTH" --root "$TMP/berth-root" --run "$TMP/berth-run" "$@"; }
wait_for() { # wait_for SECONDS CMD...
  local end=$((SECONDS + $1)); shift
  while [ $SECONDS -lt $end ]; do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  return 1
}

ns_inode() { stat -Lc %i "/run/netns/$1" 2>/dev/null; }
pids_in_ns() { # PIDs whose network namespace is $1
  local ino p; ino=$(ns_inode "$1") || return 0; [ -n "$ino" ] || return 0
  for p in /proc/[0-9]*; do
    [ "$(stat -Lc %i "$p/ns/net" 2>/dev/null)" = "$ino" ] && echo "${p#/proc/}"
  done
}
cgroup_dirs() { # the cgroup directories of node $1's containers, in every hierarchy
  find /sys/fs/cgroup -maxdepth 3 -type d -name "$PFX-$1" 2>/dev/null
}
pids_in_cgroups() {
  local c
  for c in $(cgroup_dirs "$1"); do find "$c" -name cgroup.procs -exec cat {} + 2>/dev/null; done | sort -u
}
kill_node() { # everything node $1 runs: dockerd, containerd, shims, proxies, containers
  local p
  for p in $(pids_in_ns "$PFX-$1") $(pids_in_cgroups "$1"); do kill -9 "$p" 2>/dev/null; done
  for _ in $(seq 50); do
    [ -z "$(pids_in_ns "$PFX-$1")$(pids_in_cgroups "$1")" ] && return 0
    sleep 0.2
  done
  return 1
}
stop_node() { # a clean stop first (dockerd removes its containers' mounts), then kill_node
  local pid
  pid=$(cat "$TMP/$1/dockerd.pid" 2>/dev/null) || pid=""
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    d "$1" swarm leave --force >/dev/null 2>&1
    local ids; ids=$(d "$1" ps -aq 2>/dev/null); [ -n "$ids" ] && d "$1" rm -f $ids >/dev/null 2>&1
    kill "$pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  fi
  kill_node "$1"
}

cleanup() {
  local rc=$? n left=""
  trap - EXIT
  log "cleaning up"
  b system shutdown >/dev/null 2>&1
  for n in "${NODES[@]}"; do stop_node "$n"; done
  for p in $(pids_in_ns "$HUB"); do kill -9 "$p" 2>/dev/null; done
  # Mounts under our directory (overlays, netns files, shm): deepest first.
  grep -F " $TMP/" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
  for n in "${NODES[@]}"; do
    for c in $(cgroup_dirs "$n"); do find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null; done
  done
  for n in "${NODES[@]}" hub; do ip netns del "$PFX-$n" 2>/dev/null; done
  rm -rf "$TMP"
  # What must be gone.
  ip netns list | grep -q "$PFX" && left="$left netns"
  ip -o link show | grep -q "$PFX" && left="$left links"
  grep -qF "$TMP" /proc/self/mountinfo && left="$left mounts"
  for n in "${NODES[@]}"; do [ -n "$(cgroup_dirs "$n")" ] && left="$left cgroups-$n"; done
  pgrep -f "$TMP" >/dev/null && left="$left processes"
  local after; after=$(host_docker_rules)
  [ "$after" = "$IPT_BEFORE" ] || left="$left host-iptables-docker-rules"
  if [ -n "$left" ]; then
    log "FAIL: left behind:$left"
    exit 1
  fi
  log "cleanup: no namespace, veth, mount, cgroup or process of ours left; no Docker rule in the host's iptables"
  if [ "$FAILED" = 0 ] && [ $rc = 0 ]; then log "PASS"; else log "FAIL (status $rc)"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the network: a hub with the bridge and the registry, three nodes on veths -------------
ip netns add "$HUB" || fail "ip netns add $HUB"
ip -n "$HUB" link set lo up
ip -n "$HUB" link add br0 type bridge
ip -n "$HUB" addr add "$NET.1/24" dev br0
ip -n "$HUB" link set br0 up
i=0
for n in "${NODES[@]}"; do
  i=$((i + 1))
  ns=$PFX-$n
  ip netns add "$ns" || fail "ip netns add $ns"
  ip -n "$ns" link set lo up
  ip -n "$HUB" link add "v$n" type veth peer name eth0 netns "$ns" || fail "veth for $n"
  ip -n "$HUB" link set "v$n" master br0 up
  ip -n "$ns" addr add "$NET.1$i/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" route add default via "$NET.1"
  mkdir -p "$TMP/$n"
done
log "namespaces $HUB and $PFX-{n1,n2,n3} on bridge $NET.0/24"

mkdir -p "$TMP/registry"
cat > "$TMP/registry.yml" <<EOF
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $TMP/registry}, delete: {enabled: true}}
http: {addr: "$REG"}
EOF
in_ns "$HUB" docker-registry serve "$TMP/registry.yml" > "$TMP/registry.log" 2>&1 &
wait_for 30 in_ns "$HUB" curl -fsS "http://$REG/v2/" || fail "registry did not start: $(tail -3 "$TMP/registry.log")"
log "docker-registry on $REG"

# --- three dockerd --------------------------------------------------------------------------
for n in "${NODES[@]}"; do
  # Its own UTS namespace too: each node has its own hostname (Swarm names nodes by it).
  in_ns "$PFX-$n" unshare --uts sh -c "hostname $PFX-$n && exec dockerd -H unix://$TMP/$n/docker.sock \
    --data-root $TMP/$n/data --exec-root $TMP/$n/exec --pidfile $TMP/$n/dockerd.pid \
    --insecure-registry $REG --cgroup-parent $PFX-$n --ip-masq=false" \
    > "$TMP/$n/dockerd.log" 2>&1 &
done
for n in "${NODES[@]}"; do
  wait_for 90 d "$n" version || fail "dockerd $n did not start: $(tail -5 "$TMP/$n/dockerd.log")"
done
log "dockerd up in each node ($(d n1 version -f '{{.Server.Version}}'))"

MESH=1
if [ ! -e /proc/net/ip_vs ] && ! modprobe ip_vs 2>/dev/null; then
  MESH=0
  log "no IPVS in this kernel ($(uname -r): /proc/net/ip_vs absent, modprobe ip_vs fails): no routing mesh;"
  log "  deploying with --no-mesh and checking the page on each node that runs nginx"
fi

d n1 swarm init --advertise-addr "$NET.11" --listen-addr "$NET.11:2377" --dispatcher-heartbeat 2s >/dev/null ||
  fail "swarm init: $(tail -5 "$TMP/n1/dockerd.log")"
token=$(d n1 swarm join-token -q worker)
for i in 2 3; do
  d "n$i" swarm join --advertise-addr "$NET.1$i" --listen-addr "$NET.1$i:2377" --token "$token" "$NET.11:2377" >/dev/null ||
    fail "n$i did not join: $(tail -5 "$TMP/n$i/dockerd.log")"
done
ready() { [ "$(d n1 node ls --format '{{.Status}}' | grep -c Ready)" = 3 ]; }
wait_for 60 ready || fail "nodes not ready: $(d n1 node ls)"
log "swarm: n1 manager, n2 n3 workers, all Ready"

# --- berth: the images, and the deploy --------------------------------------------------------
mkdir -p "$TMP/berth-root" "$TMP/berth-run"
b image load -q -i "$CACHE" >/dev/null || fail "berth image load $CACHE"
cat > "$TMP/swarm.yaml" <<'EOF'
# The e2e's placement: nginx on two nodes, php-fpm and db on the manager (never killed).
services:
  nginx:
    deploy:
      replicas: 2
  php-fpm:
    deploy:
      replicas: 2
      placement:
        constraints: ["node.role == manager"]
  db:
    deploy:
      placement:
        constraints: ["node.role == manager"]
EOF
meshflag=()
[ $MESH = 0 ] && meshflag=(--no-mesh)
start=$SECONDS
in_ns "$HUB" "$BERTH" --root "$TMP/berth-root" --run "$TMP/berth-run" \
  -f examples/lnmp/compose.yaml -f "$TMP/swarm.yaml" \
  deploy --swarm "unix://$TMP/n1/docker.sock" --registry "$REG" --insecure-registry \
  --docker "$DOCKER" "${meshflag[@]}" 2> "$TMP/deploy.err" || fail "berth deploy: $(cat "$TMP/deploy.err")"
grep -q "^warning: service \"nginx\": depends_on" "$TMP/deploy.err" || fail "no depends_on warning: $(cat "$TMP/deploy.err")"
for s in nginx php-fpm db; do
  img=$(d n1 service inspect "lnmp_$s" -f '{{.Spec.TaskTemplate.ContainerSpec.Image}}')
  case $img in "$REG/berth-example/lnmp-$s:latest@sha256:"*) ;; *) fail "$s runs $img, not the pushed digest";; esac
done
log "berth deploy: pushed to $REG, services pinned by digest"

converged() { # every service's running tasks = its replicas, on nodes other than $1
  local s want got
  for s in nginx php-fpm db; do
    want=$(d n1 service inspect "lnmp_$s" -f '{{.Spec.Mode.Replicated.Replicas}}')
    got=$(d n1 service ps "lnmp_$s" --filter desired-state=running --format '{{.Node}} {{.CurrentState}}' |
      grep -v "^${1:-none} " | grep -c ' Running')
    [ "$got" = "$want" ] || return 1
  done
}
nodes_of() { d n1 service ps "lnmp_$1" --filter desired-state=running --format '{{.Node}}' | sort -u; }
node_ip() { d n1 node inspect "$1" -f '{{.Status.Addr}}'; }
page_ok() { # the page with MariaDB's rows on node address $1
  local body
  body=$(in_ns "$HUB" curl -sS --max-time 10 "http://$1:8080/" 2>&1)
  case $body in *"note 1: hello from MariaDB"*visits:*) return 0 ;; esac
  echo "$body" > "$TMP/last-page"
  return 1
}
pages_ok() { # every address in the mesh (any node answers) or of the nodes running nginx
  local n
  if [ $MESH = 1 ]; then
    for n in "${NODES[@]}"; do page_ok "$NET.1${n#n}" || return 1; done
  else
    for n in $(nodes_of nginx); do page_ok "$(node_ip "$n")" || return 1; done
  fi
}

wait_for "$TIMEOUT" converged || fail "not converged: $(d n1 service ls; d n1 service ps lnmp_nginx lnmp_php-fpm lnmp_db --no-trunc)"
wait_for 120 pages_ok || fail "page: $(cat "$TMP/last-page" 2>/dev/null)"
log "page serves MariaDB's rows ($([ $MESH = 1 ] && echo "through the routing mesh on every node" || echo "on each node running nginx")) $((SECONDS - start)) s after berth deploy"
spread=$( (nodes_of nginx; nodes_of php-fpm; nodes_of db) | sort -u | wc -l)
[ "$(nodes_of nginx | wc -l)" = 2 ] || fail "nginx's 2 replicas are not on 2 nodes: $(nodes_of nginx)"
[ "$spread" -ge 2 ] || fail "tasks on $spread node(s) only"
log "replicas spread: nginx on $(nodes_of nginx | paste -sd' '), php-fpm and db on $(nodes_of db)"

# --- optional: berth deploy side by side with docker stack deploy of the same file -----------
stack_gone() { [ -z "$(d n1 service ls -q)" ] && [ -z "$(d n1 network ls -q --filter name=lnmp_default)" ] &&
  [ -z "$(d n1 ps -q)" ]; }
berth_deploy() {
  in_ns "$HUB" "$BERTH" --root "$TMP/berth-root" --run "$TMP/berth-run" \
    -f examples/lnmp/compose.yaml -f "$TMP/swarm.yaml" \
    deploy --swarm "unix://$TMP/n1/docker.sock" --registry "$REG" --insecure-registry \
    --docker "$DOCKER" "${meshflag[@]}" "$@"
}
if [ "${SWARM_E2E_COMPARE:-0}" = 1 ]; then
  berth_deploy --dry-run > "$TMP/stack.yaml" 2>/dev/null || fail "berth deploy --dry-run"
  in_ns "$HUB" "$BERTH" --root "$TMP/berth-root" --run "$TMP/berth-run" -f examples/lnmp/compose.yaml \
    deploy --swarm "unix://$TMP/n1/docker.sock" --rm --docker "$DOCKER" >/dev/null 2>&1 || fail "berth deploy --rm"
  wait_for 120 stack_gone || fail "stack not gone"
  t0=$SECONDS
  d n1 stack deploy -c "$TMP/stack.yaml" lnmp >/dev/null || fail "docker stack deploy"
  wait_for "$TIMEOUT" converged && wait_for 120 pages_ok || fail "docker stack deploy: no page"
  tdocker=$((SECONDS - t0))
  d n1 stack rm lnmp >/dev/null
  wait_for 120 stack_gone || fail "stack not gone"
  t0=$SECONDS
  berth_deploy >/dev/null 2>&1 || fail "berth deploy (again)"
  wait_for "$TIMEOUT" converged && wait_for 120 pages_ok || fail "berth deploy (again): no page"
  log "images pushed and cached on the nodes: docker stack deploy of berth's file -> page in $tdocker s; berth deploy -> page in $((SECONDS - t0)) s"
fi

# --- a worker dies ------------------------------------------------------------------------------
victim=""
for n in $(nodes_of nginx); do
  role=$(d n1 node inspect "$n" -f '{{.Spec.Role}}')
  [ "$role" = worker ] && { victim=$n; break; }
done
[ -n "$victim" ] || fail "no worker runs nginx"
vnode=${victim#"$PFX-"}
t0=$SECONDS
kill_node "$vnode" || fail "could not kill everything of $vnode"
log "killed $vnode ($victim): its dockerd, containerd, shims and containers"
down() { [ "$(d n1 node inspect "$victim" -f '{{.Status.State}}')" = down ]; }
wait_for 120 down || fail "$victim not marked down"
wait_for "$TIMEOUT" converged "$victim" || fail "tasks not rescheduled: $(d n1 service ps lnmp_nginx)"
resched=$((SECONDS - t0))
wait_for 120 pages_ok || fail "page after the kill: $(cat "$TMP/last-page" 2>/dev/null)"
log "node down in the swarm, tasks rescheduled on live nodes ${resched} s after the kill, page back $((SECONDS - t0)) s after it (nginx now on $(nodes_of nginx | paste -sd' '))"

in_ns "$HUB" "$BERTH" --root "$TMP/berth-root" --run "$TMP/berth-run" \
  -f examples/lnmp/compose.yaml deploy --swarm "unix://$TMP/n1/docker.sock" --rm --docker "$DOCKER" >/dev/null 2>&1 ||
  fail "berth deploy --rm"
gone() { [ -z "$(d n1 service ls -q)" ]; }
wait_for 60 gone || fail "services left after --rm: $(d n1 service ls)"
log "berth deploy --rm removed the stack"
exit 0
