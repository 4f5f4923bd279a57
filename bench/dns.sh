#!/usr/bin/env bash
# DNS benchmark: berth's embedded DNS next to aardvark-dns (podman's), same bridge, same run.
# Prints queries/s, average latency and p99 for a local name (`db A`) and a forwarded name
# (`example.test A`, answered by a dnsmasq "upstream" on the server side's loopback).
#
# Everything lives in two throwaway network namespaces: "host" (bridge, both DNS servers,
# the upstream) and "client" (dnsperf, on a veth into the bridge). No traffic leaves them.
# Usage (root): bench/dns.sh            DUR=10 seconds per load run, LIGHT_QPS=2000
# Needs: dnsperf, dnsmasq, aardvark-dns (Debian packages; installs them if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/dns.sh: run as root" >&2; exit 1; }
DUR=${DUR:-10}
LIGHT_QPS=${LIGHT_QPS:-2000}
LIGHT_DUR=${LIGHT_DUR:-5}
AARDVARK=${AARDVARK:-/usr/lib/podman/aardvark-dns}
need=()
command -v dnsperf >/dev/null || need+=(dnsperf)
command -v dnsmasq >/dev/null || need+=(dnsmasq-base)
[ -x "$AARDVARK" ] || need+=(aardvark-dns)
if ((${#need[@]})); then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

id=$$
H=bdnsh-$id
C=bdnsc-$id
BR=bdnsbr$((id % 100000))
VH=bdnsv$((id % 100000))
SUB=10.213.$((id % 200 + 20))
T=$(mktemp -d /tmp/berth-dns-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$T/aard/aardvark.pid" ] && kill "$(cat "$T/aard/aardvark.pid")" 2>/dev/null || true
  sleep 0.2
  ip netns del "$C" 2>/dev/null || true
  ip netns del "$H" 2>/dev/null || true
  rm -rf "/etc/netns/$H" "/etc/netns/$C" "$T"
}
trap cleanup EXIT

echo "building the server (release)..." >&2
BIN=$(cargo build --release -p berth-netd --example dns_bench --message-format=json 2>/dev/null |
  python3 -c 'import sys,json
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m.get("executable") and m["target"]["name"]=="dns_bench": print(m["executable"])')
[ -x "$BIN" ] || { echo "bench/dns.sh: could not build the dns_bench binary" >&2; exit 1; }

ip netns add "$H"
ip netns add "$C"
ip -n "$H" link set lo up
ip -n "$C" link set lo up
ip -n "$H" addr add 127.0.0.77/32 dev lo
ip -n "$H" link add "$BR" type bridge
ip -n "$H" addr add "$SUB.1/24" dev "$BR"
ip -n "$H" link set "$BR" up
ip -n "$H" link add "$VH" type veth peer name eth0 netns "$C"
ip -n "$H" link set "$VH" master "$BR" up
ip -n "$C" addr add "$SUB.2/24" dev eth0
ip -n "$C" link set eth0 up
# `ip netns exec` bind-mounts /etc/netns/NAME/resolv.conf over /etc/resolv.conf: both servers
# read the upstream from there.
mkdir -p "/etc/netns/$H"
echo "nameserver 127.0.0.77" >"/etc/netns/$H/resolv.conf"

ip netns exec "$H" dnsmasq --keep-in-foreground --no-resolv --no-hosts --user=root --group=root \
  --listen-address=127.0.0.77 --bind-interfaces --port=53 --address=/example.test/192.0.2.10 \
  --cache-size=1000 --log-facility=/dev/null --pid-file="$T/dnsmasq.pid" &
pids+=($!)

ip netns exec "$H" env BERTH_DNS_BENCH_LISTEN="$SUB.1:53" BERTH_DNS_BENCH_SUBNET="$SUB.0/24" \
  BERTH_DNS_BENCH_RECORDS="client=$SUB.2,db=$SUB.10" \
  "$BIN" serve >"$T/berth.log" 2>&1 &
pids+=($!)

mkdir -p "$T/aard"
printf '%s\n' "$SUB.1" "c0000000000a $SUB.2  client" "c0000000000b $SUB.10  db" >"$T/aard/bench"
ip netns exec "$H" "$AARDVARK" --config "$T/aard" -p 5533 run >"$T/aardvark.log" 2>&1 &
pids+=($!)

printf 'db A\n' >"$T/q-local"
printf 'example.test A\n' >"$T/q-forward"

ready() { ip netns exec "$C" dig +short +time=1 +tries=1 -p "$1" "@$SUB.1" db 2>/dev/null | grep -q "^$SUB.10$"; }
for port in 53 5533; do
  for _ in $(seq 100); do ready "$port" && break; sleep 0.1; done
  ready "$port" || { echo "server on port $port not answering; logs:" >&2; cat "$T"/*.log >&2; exit 1; }
done
ip netns exec "$C" dig +short +time=2 +tries=1 -p 53 "@$SUB.1" example.test | grep -q 192.0.2.10 ||
  { echo "forwarding through berth does not work" >&2; cat "$T"/*.log >&2; exit 1; }

# load run: queries/s and average latency (dnsperf's own figures)
load() { # port queryfile
  ip netns exec "$C" dnsperf -s "$SUB.1" -p "$1" -d "$2" -l "$DUR" -c 1 -q 100 2>&1 |
    awk '/Queries per second/ {q=$4} /Average Latency/ {l=$4*1000} /Queries lost/ {lost=$3}
         END {printf "%10.0f q/s  avg %6.3f ms  lost %s", q, l, lost}'
}
# light load: p50/p99 from per-query latencies (dnsperf -v)
light() { # port queryfile
  ip netns exec "$C" dnsperf -v -s "$SUB.1" -p "$1" -d "$2" -l "$LIGHT_DUR" -Q "$LIGHT_QPS" -c 1 2>/dev/null |
    awk '$1 == ">" {print $NF}' | sort -g |
    awk '{a[NR]=$1} END {if (NR==0) {print "no samples"; exit}
         printf "p50 %6.3f ms  p99 %6.3f ms  (n=%d at %s q/s)", a[int(NR*0.5)+1]*1000, a[int(NR*0.99)]*1000, NR, '"$LIGHT_QPS"'}'
}

echo "dnsperf ${DUR}s, 1 client, 100 outstanding; light load ${LIGHT_QPS} q/s for ${LIGHT_DUR}s; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
# baseline: the upstream itself, asked directly from the server side (no bridge hop)
up=$(ip netns exec "$H" dnsperf -s 127.0.0.77 -p 53 -d "$T/q-forward" -l "$DUR" -c 1 -q 100 2>&1 |
  awk '/Queries per second/ {printf "%10.0f q/s", $4}')
printf '%-9s %-8s %s  (dnsmasq on the server side, asked directly: the forwarding ceiling)\n' upstream direct "$up"
for kind in local forward; do
  for srv in berth:53 aardvark:5533; do
    name=${srv%%:*}; port=${srv##*:}
    printf '%-9s %-8s %s | %s\n' "$name" "$kind" "$(load "$port" "$T/q-$kind")" "$(light "$port" "$T/q-$kind")"
  done
done
