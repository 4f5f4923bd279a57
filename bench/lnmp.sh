#!/usr/bin/env bash
# LNMP (examples/lnmp): time from `up -d` to every service healthy.
#  - cached: images already built (loaded from scripts/prepare-examples.sh's archive) into a fresh
#    instance inside a throwaway network namespace; `up -d --wait`, then `down -v` (first start:
#    MariaDB initialises its volume) and again after a plain `down` (data kept).
#  - cold (COLD=1): a fresh instance in the host's network namespace (RUN needs the Debian mirror):
#    `image bootstrap debian:bookworm` + `up -d --build --wait`.
#  - COMPARE=1 (or ENGINES=docker,podman): the same compose file and images with Docker Compose v2
#    against dockerd 20.10 and podman-compose 1.0.3 against podman 4.3, in their own network
#    namespace (bench/engines.sh, started and stopped here unless already up), same RUNS, same
#    steps (each run: berth's cycle, then docker's, then podman's); with COLD=1 also their cold path: the three images
#    removed (build cache too), `up -d --build` from berth's debian:bookworm loaded into them.
#    podman-compose 1.0.3 has no --wait, ignores `condition: service_healthy` (depends_on keys only
#    order the start) and sleeps 1 s after each container; podman 4.3 runs healthchecks from
#    systemd timers, and this machine has no systemd, so the bench plays the timer: after
#    `up -d` returns it runs `podman healthcheck run` on each not-yet-healthy container every 2 s
#    (the file's interval) until all three pass. The figure is up -d + that wait.
# Usage: sudo bench/lnmp.sh   (RUNS=3, COLD=0|1, PORT=18480 for the host-namespace runs)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
. bench/compare-lib.sh
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
  if [ -n "$ENGINES" ]; then
    if eng docker; then
      for p in lnmpbench lnmpcold; do LNMP_HTTP_PORT=$PORT dk compose -p $p -f "$stack" down -v >/dev/null 2>&1 || true; done
      dk rmi -f $images >/dev/null 2>&1 || true; dk builder prune -af >/dev/null 2>&1 || true
    fi
    if eng podman; then
      for p in lnmpbench lnmpcold; do PC -p $p down -v >/dev/null 2>&1 || true; pm network rm -f ${p}_default >/dev/null 2>&1 || true; done
      pm rmi -f $images >/dev/null 2>&1 || true; pm image prune -f >/dev/null 2>&1 || true
    fi
    engines_fini
  fi
  rm -rf "$work"
}
images="berth-example/lnmp-nginx:latest berth-example/lnmp-php-fpm:latest berth-example/lnmp-db:latest"
PC() { LNMP_HTTP_PORT=$PORT nsenter --net="/run/netns/$ENGINES_NS" podman-compose -f "$stack" "$@"; }
trap cleanup EXIT
ip netns add "$ns"; ip netns exec "$ns" ip link set lo up
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2)? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }

B() { nsenter --net=/run/netns/$ns "$berth" --root "$work/root" --run "$work/root.run" "$@"; }
engines_init
declare -A efirst eagain eload ecold
if [ -n "$ENGINES" ]; then
  BERTH=$berth "$ENGINES_SH" base
  for e in docker podman; do eng $e || continue
    t=$(date +%s%N)
    if [ $e = docker ]; then dk load -q -i "$tar" >/dev/null; else pm load -q -i "$tar" >/dev/null; fi
    eload[$e]=$(ms "$t")
  done
fi
# pm_healthy PROJECT: plays podman's healthcheck timer (no systemd here) until all three pass
pm_healthy() {
  local ok c
  for _ in $(seq 150); do
    ok=1
    for c in db php-fpm nginx; do
      [ "$(pm inspect -f '{{.State.Health.Status}}' "${1}_${c}_1" 2>/dev/null)" = healthy ] && continue
      pm healthcheck run "${1}_${c}_1" >/dev/null 2>&1 || ok=0
    done
    [ $ok = 1 ] && return 0
    sleep 2
  done
  echo "podman-compose: not healthy after 300 s" >&2; return 1
}
up_engine() { # up_engine docker|podman PROJECT [--build]: up -d until all healthy
  if [ "$1" = docker ]; then
    LNMP_HTTP_PORT=$PORT dk compose -p "$2" -f "$stack" up -d ${3:---no-build} --wait --wait-timeout 600 > "$work/$1-up.log" 2>&1 ||
      { tail -5 "$work/$1-up.log" >&2; return 1; }
  else
    PC -p "$2" up -d ${3:-} > "$work/$1-up.log" 2>&1 || { tail -5 "$work/$1-up.log" >&2; return 1; }
    pm_healthy "$2"
  fi
}
down_engine() { # down_engine docker|podman PROJECT [-v]
  if [ "$1" = docker ]; then LNMP_HTTP_PORT=$PORT dk compose -p "$2" -f "$stack" down ${3:-} >/dev/null 2>&1
  else PC -p "$2" down ${3:-} >/dev/null 2>&1; fi
}
page_ok() { nsenter --net="/run/netns/$ENGINES_NS" curl -fsS --max-time 5 "http://127.0.0.1:$PORT/" | grep -q visits; }
t=$(date +%s%N); B image load -q -i "$tar" >/dev/null; load=$(ms "$t")
first=(); again=()
# one run = berth's cycle, then each engine's, so that all see the same load
for _ in $(seq "$RUNS"); do
  t=$(date +%s%N); B -f "$stack" up -d --no-build --wait --wait-timeout 300 >/dev/null; first+=("$(ms "$t")")
  B -f "$stack" down >/dev/null
  t=$(date +%s%N); B -f "$stack" up -d --no-build --wait --wait-timeout 300 >/dev/null; again+=("$(ms "$t")")
  nsenter --net=/run/netns/$ns curl -fsS --max-time 5 http://127.0.0.1:8080/ | grep -q visits
  B -f "$stack" down -v >/dev/null
  for e in docker podman; do eng $e || continue
    t=$(date +%s%N); up_engine $e lnmpbench; efirst[$e]="${efirst[$e]:-} $(ms "$t")"
    down_engine $e lnmpbench
    t=$(date +%s%N); up_engine $e lnmpbench; eagain[$e]="${eagain[$e]:-} $(ms "$t")"
    page_ok || { echo "$e: the page does not answer" >&2; exit 1; }
    down_engine $e lnmpbench -v
  done
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

[ -n "$ENGINES" ] || exit 0

# ---- COMPARE: the same stack with Docker Compose v2 -> dockerd and podman-compose -> podman
if [ "$COLD" = 1 ]; then
  for e in docker podman; do eng $e || continue
    if [ $e = docker ]; then dk rmi -f $images >/dev/null 2>&1 || true; dk builder prune -af >/dev/null 2>&1 || true
    else pm rmi -f $images >/dev/null 2>&1 || true; pm image prune -f >/dev/null 2>&1 || true; fi
    t=$(date +%s%N); up_engine $e lnmpcold --build; ecold[$e]=$(ms "$t")
    page_ok && ecold[$e]="${ecold[$e]} ms (page ok)" || ecold[$e]="${ecold[$e]} ms (page FAILED)"
    down_engine $e lnmpcold -v
  done
fi
med() { printf '%s\n' $1 | median; }
echo
echo "LNMP (examples/lnmp), wall ms to all three healthy, RUNS=$RUNS; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
engines_versions
echo "| tool | image archive load | up, images cached, fresh volume | up, data kept | cold: up -d --build (base image present) |"
echo "|---|---|---|---|---|"
echo "| berth \`up -d --wait\` | $load | $(med "${first[*]}") [${first[*]}] | $(med "${again[*]}") [${again[*]}] | ${cold:-not run (COLD=1)}${cold:+ ms ($ok; image bootstrap $boot ms before)} |"
eng docker && echo "| Compose v2 \`up -d --wait\` -> dockerd | ${eload[docker]} | $(med "${efirst[docker]}") [${efirst[docker]# }] | $(med "${eagain[docker]}") [${eagain[docker]# }] | ${ecold[docker]:-not run (COLD=1)} |"
eng podman && echo "| podman-compose \`up -d\` + healthchecks driven every 2 s | ${eload[podman]} | $(med "${efirst[podman]}") [${efirst[podman]# }] | $(med "${eagain[podman]}") [${eagain[podman]# }] | ${ecold[podman]:-not run (COLD=1)} |"
echo
echo "podman-compose 1.0.3: no --wait, depends_on conditions ignored (all three start at once, 1 s apart), healthchecks driven by the bench (podman needs systemd timers for them)."
