# Sourced by the benches for their COMPARE=1 mode: docker and podman measured in the same run.
#   COMPARE=1                 all engines the bench knows (docker, podman)
#   ENGINES=docker,podman     a chosen subset
# The engines run in their own network namespace (bench/engines.sh). If they are not up, the bench
# starts them (`bench/engines.sh up`) and stops them at its end (`engines_fini`); if they were up
# already, it leaves them up.
ENGINES=${ENGINES:-}
if [ "${COMPARE:-0}" = 1 ] && [ -z "$ENGINES" ]; then ENGINES=docker,podman; fi
ENGINES_STARTED=""
ENGINES_SH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/engines.sh

eng() { [[ ",$ENGINES," == *",$1,"* ]]; }
engines_init() {
  [ -n "$ENGINES" ] || return 0
  if ! "$ENGINES_SH" check; then
    "$ENGINES_SH" up >&2 || { echo "COMPARE: bench/engines.sh up failed" >&2; exit 1; }
    ENGINES_STARTED=1
  fi
  eval "$("$ENGINES_SH" env)"
}
engines_fini() { if [ -n "$ENGINES_STARTED" ]; then "$ENGINES_SH" down >&2 || true; fi; }
# The engines' CLIs, run inside the engines' network namespace (only the net namespace: nsenter, not
# `ip netns exec`, which would remount /sys and hide the cgroup v1 hierarchies).
dk() { nsenter --net="/run/netns/$ENGINES_NS" "$ENGINES_DOCKER" "$@"; }
pm() { nsenter --net="/run/netns/$ENGINES_NS" podman "$@"; }
# ms values on stdin -> "median [min-max] (n=N)"; $1 = decimals (default 0)
stats_ms() {
  sort -n | awk -v d="${1:-0}" '{v[NR]=$1} END {if (!NR) {print "no samples"; exit}
    m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; f="%." d "f"
    printf f " [" f "-" f "] (n=%d)\n", m, v[1], v[NR], NR}'
}
engines_versions() {
  [ -n "$ENGINES" ] || return 0
  eng docker && echo "docker: engine $(dk version -f '{{.Server.Version}}' 2>/dev/null) (containerd $(containerd --version | awk '{print $3}'), runc $(runc --version | awk 'NR==1{print $3}')), compose $(dk compose version --short 2>/dev/null)"
  eng podman && echo "podman: $(pm --version | awk '{print $3}') (crun $(crun --version | awk 'NR==1{print $3}'), conmon $(conmon --version | awk 'NR==1{print $3}'), netavark $(dpkg-query -W -f '${Version}' netavark)), podman-compose $(dpkg-query -W -f '${Version}' podman-compose)"
  return 0
}
