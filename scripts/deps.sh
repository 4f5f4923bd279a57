#!/usr/bin/env bash
# Installs what berth and its tests need on a fresh Debian 12 machine (idempotent, quiet when done).
set -euo pipefail
pkgs=(nftables iproute2 debootstrap busybox-static skopeo crun runc umoci docker-registry
      dnsmasq-base dnsutils conntrack curl ca-certificates gcc pkg-config
      libc6-dev)
pkgs+=(dnsperf aardvark-dns)  # bench/dns.sh: DNS load generator and the server it compares with
pkgs+=(iperf3)  # bench/net-iperf.sh: TCP throughput through a bridge and a published port
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "installing the Rust toolchain with rustup" >&2
  curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component clippy,rustfmt >/dev/null
fi
