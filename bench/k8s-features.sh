#!/usr/bin/env bash
# Compose keys mapped to Kubernetes, berth beside kompose, on the same files: the five examples
# and the three real-world stacks of orchestrator/tests/fixtures/real-world. For each stack,
# every (service, key) pair the file sets, as written (PyYAML reads the file), is counted as
#   berth: mapped (converted, no warning naming it), warned (left out, named), refused;
# (services of profiles not enabled are left out of both counts), and
#   kompose: mapped or not, by the conversion matrix in kompose's own documentation
#   (github.com/kubernetes/kompose docs/conversion.md, the V3 column), transcribed below.
# kompose cannot be built here, so its column is what its documentation claims, not a run.
# Needs python3 with PyYAML (the test venv of scripts/deps.sh: . scripts/env.sh).
#
#   bench/k8s-features.sh          # BERTH=path/to/berth to pick the binary
set -euo pipefail
cd "$(dirname "$0")/.."
BERTH=${BERTH:-${CARGO_TARGET_DIR:-target}/debug/berth}
[ -x "$BERTH" ] || { echo "build first: cargo build -p berth (or set BERTH)" >&2; exit 1; }
stacks=(examples/{hello,lnmp,zookeeper,hadoop,spark} orchestrator/tests/fixtures/real-world/{webapp,wordpress,platform})
work=$(mktemp -d /tmp/bk8sfeat.XXXXXX)
trap 'rm -rf "$work"' EXIT
for s in "${stacks[@]}"; do
  name=$(basename "$s")
  if env -u LNMP_HTTP_PORT -u LNMP_DB_PASSWORD -u HELLO_PORT -u COMPOSE_PROFILES \
      "$BERTH" -f "$s/compose.yaml" convert kubernetes >"$work/$name.yaml" 2>"$work/$name.err"; then
    echo ok >"$work/$name.status"
  else
    echo refused >"$work/$name.status"
  fi
done
python3 - "$work" "${stacks[@]}" <<'PY'
import os, re, sys, yaml
work, stacks = sys.argv[1], sys.argv[2:]
# kompose's conversion matrix, V3 column: keys marked as converted.
KOMPOSE = {
    "build", "cap_add", "cap_drop", "command", "configs", "container_name", "deploy",
    "domainname", "tmpfs", "entrypoint", "env_file", "environment", "expose", "extends",
    "group_add", "healthcheck", "hostname", "image", "labels", "networks", "pid", "ports",
    "secrets", "stop_grace_period", "volumes", "restart", "mem_limit",
}
rows, tot = [], [0] * 6
for s in stacks:
    name = os.path.basename(s)
    with open(os.path.join(s, "compose.yaml")) as f:
        doc = yaml.safe_load(f)
    err = open(os.path.join(work, name + ".err")).read()
    status = open(os.path.join(work, name + ".status")).read().strip()
    out = [d for d in yaml.safe_load_all(open(os.path.join(work, name + ".yaml"))) if d]
    workloads = {d["metadata"]["name"] for d in out if d["kind"] in ("Deployment", "StatefulSet", "Job")}
    # Services of profiles not enabled are not part of the project: counted for neither.
    active = {svc: body for svc, body in (doc.get("services") or {}).items()
              if status != "ok" or svc in workloads}
    pairs = [(svc, k) for svc, body in active.items() for k in (body or {})]
    warned = set(re.findall(r'service "([^"]+)": ([a-z_]+):', err))
    refused = len(pairs) if status != "ok" else 0
    bw = sum(1 for p in pairs if p in warned)
    bm = len(pairs) - bw - refused
    km = sum(1 for _, k in pairs if k in KOMPOSE)
    row = [len(pairs), bm, bw, refused, km, len(out)]
    tot = [a + b for a, b in zip(tot, row)]
    rows.append([name] + row)
    missing = sorted({k for _, k in pairs if k not in KOMPOSE})
    rows[-1].append(", ".join(missing))
print("| stack | keys set | berth mapped | berth warned | berth refused | kompose mapped (its docs) | objects written by berth | keys kompose's matrix does not map |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    print("| " + " | ".join(str(x) for x in r) + " |")
print("| total | " + " | ".join(str(x) for x in tot) + " | |")
PY
