#!/usr/bin/env bash
# TCP throughput with iperf3 on a simulated host: a bare veth pair (baseline), a hand-made
# bridge (ip link, no nft), container to container through a berth bridge and through an
# internal berth network, and a published port (kernel DNAT) next to the same server reached
# directly, from the host (127.0.0.1) and from an "ISP" namespace (uplink address).
# Everything lives in throwaway network namespaces the bench makes and removes.
# Usage (root): bench/net-iperf.sh   IPERF_ROUNDS=5 rounds of every figure, IPERF_SECS=3 each;
#   medians (Gbit/s and CPU ms per GB). BRIDGE_NF_CALL=0 (br_netfilter's IPv4 hook off),
#   NFT_TABLE=absent (berth's tables deleted; container-to-container figures only) show what
#   those cost; FIGURES=c2c measures container-to-container figures only. The last figure is
#   egress (container -> isp-a through NAT). UPLINK_GSO=196608 raises the simulated uplinks'
#   IPv4 GSO limit (a NIC taking BIG TCP packets), so netd gives the network with egress BIG
#   TCP too; EGRESS_GSO=N forces the berth network's veths to N (EGRESS_GSO=196608 with the
#   default 64 KiB uplinks: what an oversized GSO costs egress); PERF_DIR=DIR records
#   `perf record -a -g` of each figure's first round into DIR/NN.data. FAST_PATH=0 runs netd
#   without its container-to-container fast path (as `berth daemon --no-fast-path`).
# Needs: iperf3 (Debian package; installed if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/net-iperf.sh: run as root" >&2; exit 1; }
if ! command -v iperf3 >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iperf3 >/dev/null
fi
exec cargo run --release -q -p berth-netd --example net_iperf
