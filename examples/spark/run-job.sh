#!/bin/bash
# Runs a PySpark word count over FILE on the Spark cluster of this directory's compose.yaml and
# prints the 20 most frequent words as `WORD<TAB>COUNT` (most frequent first), then one line per
# executor naming the worker that ran it. Exit status 0 only if the job succeeded.
#
# Usage: examples/spark/run-job.sh FILE
#   SPARK_WORKERS=N  workers to start when the cluster is not up (default 2); a cluster that is
#                    up is used as it is, with all its running workers
#   BERTH=PATH       the berth binary (default: berth from PATH); BERTH_ROOT and BERTH_RUN
#                    select the instance, as for berth itself
# The whole output (every word's count) is left in the data volume under /data/out/NAME; the
# driver's log goes to standard error when the job fails.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
file=${1:?usage: run-job.sh FILE}
[ -f "$file" ] || { echo "run-job.sh: $file: no such file" >&2; exit 2; }
b() { "${BERTH:-berth}" -f "$here/compose.yaml" "$@"; }

running() { b ps -q "$1" 2>/dev/null | grep -c . || true; }
if [ "$(running spark-master)" -eq 0 ] || [ "$(running spark-worker)" -eq 0 ]; then
  b up -d --wait --wait-timeout 180 --scale "spark-worker=${SPARK_WORKERS:-2}" >&2
fi
workers=$(running spark-worker)

# Into the shared volume, through the master's container (every container mounts it at /data).
name=$(basename "$file" | tr -c 'A-Za-z0-9._\n-' '_')
b exec -T spark-master mkdir -p /data/in /data/out
b cp "$file" "spark-master:/data/in/$name" >&2

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# --no-deps: the cluster is up as it is (run would bring spark-worker back to its replicas).
# SPARK_CORES: one per running worker, so the job starts once every worker's executor is up.
status=0
b run --rm --no-deps -T -e "SPARK_CORES=$workers" client \
  spark-wordcount "/data/in/$name" "/data/out/$name" 2>"$log" || status=$?
if [ "$status" -ne 0 ]; then
  cat "$log" >&2
  echo "run-job.sh: the job over $file failed (exit $status)" >&2
fi
exit "$status"
