#!/usr/bin/env bash
# How long containers' names fail when the daemon or the DNS keeper dies, printed as figures.
# As root. Runs tests/tests/dns_survives.rs (release build): a two-service busybox stack
# in a network namespace of its own, `app` resolving `db` through the embedded DNS every 50 ms;
# KILLS kill -9s of the daemon (default 5), 3 of the keeper, and a `system shutdown`.
#
#   bench/dns-failover.sh
#   KILLS=20 bench/dns-failover.sh
#
# Figures: failure window median/max per kind of death (from the start of the first failed
# lookup to the end of the next good one; 0 means no lookup failed), how fast a new keeper
# serves after the old one is killed, and the keeper's memory (VmRSS, private, Pss).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/dns-failover.sh: run as root" >&2; exit 1; }
export BERTH_DNS_KILLS=${KILLS:-5}
out=$(cargo test --release -q -p berth-tests --test dns_survives -- --nocapture --test-threads 1 2>&1) || {
  echo "$out" | tail -40 >&2
  exit 1
}
echo "$out" | sed -n 's/^FIGURES: //p'
