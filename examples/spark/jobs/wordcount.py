"""Word count over a text file in the shared data volume, run by the cluster's executors.

Usage (through spark-submit; see spark-wordcount): wordcount.py INPUT [OUTPUT_DIR]

Splits every line on whitespace, counts the words, writes all counts to OUTPUT_DIR as
`WORD<TAB>COUNT` lines (part files, one per partition), and prints the 20 most frequent words as
`WORD<TAB>COUNT` (most frequent first, ties by word), then one line per executor that ran tasks
with the worker it ran on, from the application's REST API (the driver's UI) and the master's
JSON. Exits non-zero if the job failed.
"""
import json
import os
import shutil
import sys
import urllib.request

from pyspark import SparkContext


def get_json(url):
    # The UI's first answer can take over 30 s on a loaded two-core host (its servlets start then).
    with urllib.request.urlopen(url, timeout=180) as r:
        return json.load(r)


def executors(sc):
    """The application's executors, live or lost, as (id, host, completed tasks, active)."""
    url = f"{sc.uiWebUrl}/api/v1/applications/{sc.applicationId}/allexecutors"
    rows = []
    for e in get_json(url):
        if e.get("id") == "driver":
            continue
        host = e.get("hostPort", "").rsplit(":", 1)[0]
        rows.append((e["id"], host, e.get("completedTasks", 0), e.get("isActive", False)))
    return sorted(rows, key=lambda r: int(r[0]) if r[0].isdigit() else r[0])


def worker_ids(master_ui):
    """The master's workers by host name: host -> (worker id, state)."""
    try:
        state = get_json(f"{master_ui}/json/")
    except OSError:
        return {}
    return {w.get("host"): (w.get("id"), w.get("state")) for w in state.get("workers", [])}


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    path = sys.argv[1]
    out = sys.argv[2] if len(sys.argv) > 2 else None
    sc = SparkContext(appName=f"wordcount {os.path.basename(path)}")
    sc.setLogLevel("WARN")
    parts = int(sc.getConf().get("spark.wordcount.partitions", "0")) or 2 * max(
        1, sc.defaultParallelism
    )
    counts = (
        sc.textFile(path, minPartitions=parts)
        .flatMap(lambda line: line.split())
        .map(lambda w: (w, 1))
        .reduceByKey(lambda a, b: a + b)
    )
    counts.cache()
    top = counts.takeOrdered(20, key=lambda kv: (-kv[1], kv[0]))
    if out:
        shutil.rmtree(out, ignore_errors=True)
        counts.map(lambda kv: f"{kv[0]}\t{kv[1]}").saveAsTextFile(out)
    for word, n in top:
        print(f"{word}\t{n}")
    workers = worker_ids(sc.getConf().get("spark.wordcount.masterUi", "http://spark-master:8080"))
    for eid, host, done, active in executors(sc):
        if done == 0 and active:
            continue
        wid = workers.get(host, ("?", "?"))[0]
        lost = "" if active else ", lost"
        print(f"executor {eid} ran {done} tasks on worker {host} ({wid}{lost})")
    sys.stdout.flush()
    sc.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
