//! The Spark example (examples/spark) end to end: a standalone master and two workers that
//! register with it by name, a word count run through `run-job.sh` that gives the exact counts
//! and names both workers as its executors, a third worker added with `--scale` registering by
//! name, a worker killed during a job while the job still finishes with the exact counts, and
//! `down -v` leaving nothing. The image comes from scripts/prepare-examples.sh, loaded into this
//! test's own instance; the cluster runs in the test's own network namespace.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_tests::berth_bin;
use berth_tests::host::{self, Host};

/// Distinct words in the generated text: word `i` occurs `(i + 1) * PER_RANK` times per copy.
const WORDS: usize = 40;
const PER_RANK: usize = 500;

/// A text whose word counts are known: `copies` times the same shuffled block, with lines split
/// on every kind of whitespace run (spaces, tabs, leading and trailing blanks).
fn text(copies: usize) -> String {
    let mut bag: Vec<usize> = (0..WORDS)
        .flat_map(|i| std::iter::repeat_n(i, (i + 1) * PER_RANK))
        .collect();
    // A fixed LCG shuffle: the same text on every run, words well mixed across the splits.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for i in (1..bag.len()).rev() {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        bag.swap(i, (x >> 33) as usize % (i + 1));
    }
    let seps = [" ", "  ", "\t", " \t "];
    let mut block = String::new();
    for (n, line) in bag.chunks(12).enumerate() {
        let words: Vec<String> = line.iter().map(|i| format!("w{i:02}")).collect();
        block.push_str(if n % 3 == 0 { "  " } else { "" });
        block.push_str(&words.join(seps[n % seps.len()]));
        block.push_str(if n % 2 == 0 { " \n" } else { "\n" });
    }
    block.repeat(copies)
}

/// The top 20 lines `run-job.sh` must print for [`text`]`(copies)`.
fn expected_top(copies: usize) -> Vec<String> {
    (WORDS - 20..WORDS)
        .rev()
        .map(|i| format!("w{i:02}\t{}", (i + 1) * PER_RANK * copies))
        .collect()
}

/// examples/spark/run-job.sh, run in the test's namespace against its instance.
fn run_job_cmd(host: &Host, file: &Path) -> Command {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/spark/run-job.sh");
    let mut cmd = Command::new("timeout");
    cmd.args(["600", "nsenter"])
        .arg(format!("--net=/run/netns/{}", host.ns))
        .arg(script)
        .arg(file)
        .env("BERTH", berth_bin())
        .env("BERTH_ROOT", &host.root)
        .env("BERTH_RUN", &host.run)
        .current_dir(&host.stack);
    cmd
}

/// Checks a finished `run-job.sh`: exit 0, the exact top 20, and the executors' lines; returns
/// the executor lines.
fn check_job(out: &Output, copies: usize) -> Vec<String> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "run-job.sh failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.len() > 20, "run-job.sh printed:\n{stdout}");
    assert_eq!(lines[..20], expected_top(copies), "top 20:\n{stdout}");
    let executors: Vec<String> = lines[20..].iter().map(|l| l.to_string()).collect();
    for l in &executors {
        assert!(l.starts_with("executor "), "not an executor line: {l:?}");
    }
    executors
}

/// The master's JSON (`/json/` on the published UI port), from inside the namespace.
fn master(host: &Host) -> serde_json::Value {
    let body = host.curl("http://127.0.0.1:8080/json/");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("master /json/: {e}: {body:?}"))
}

/// The hosts of the workers the master lists as ALIVE, sorted.
fn alive_workers(host: &Host) -> Vec<String> {
    let m = master(host);
    let mut hosts: Vec<String> = m["workers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|w| w["state"] == "ALIVE")
        .filter_map(|w| w["host"].as_str().map(String::from))
        .collect();
    hosts.sort();
    hosts
}

fn worker_names(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("spark-spark-worker-{i}")).collect()
}

/// Tasks the executors on worker `index` have started (from their logs in the worker's
/// work directory).
fn tasks_started(host: &Host, f: &str, index: &str) -> usize {
    let out = host.berth(&[
        "-f",
        f,
        "exec",
        "-T",
        "--index",
        index,
        "spark-worker",
        "sh",
        "-c",
        "cat /tmp/spark-work/*/*/stderr 2>/dev/null | grep -c 'Running task' || true",
    ]);
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

fn write_text(host: &Host, name: &str, copies: usize) -> PathBuf {
    let path = host.dir.path().join(name);
    std::fs::write(&path, text(copies)).expect("write the text");
    path
}

fn ids(host: &Host, f: &str) -> Vec<String> {
    host.ps_of(&["-f", f])
        .iter()
        .filter_map(|r| r["id"].as_str().map(String::from))
        .collect()
}

#[test_with::root()]
#[test]
fn spark_cluster_registers_workers_by_name_counts_words_and_survives_a_lost_worker() {
    host::require_tools();
    let t0 = Instant::now();
    let host = Host::new("spark");
    let stack = host.example("spark");
    eprintln!("image loaded {:?} after start", t0.elapsed());
    let f = stack.display().to_string();
    let f = f.as_str();

    // Up: the master and two workers, healthy once the master lists each worker by name.
    let up = Instant::now();
    host.ok_within(
        300,
        &[
            "-f",
            f,
            "up",
            "-d",
            "--no-build",
            "--wait",
            "--wait-timeout",
            "240",
        ],
    );
    eprintln!("cluster healthy {:?} after up", up.elapsed());
    let rows = host.ps_of(&["-f", f]);
    assert_eq!(rows.len(), 3, "{rows:?}");
    for row in &rows {
        assert_eq!(row["health"], "healthy", "{row}");
    }
    assert_eq!(alive_workers(&host), worker_names(2));
    let mut all_ids = ids(&host, f);

    // A word count through run-job.sh: exact counts, and both workers ran executors.
    let small = write_text(&host, "words.txt", 1);
    let job = Instant::now();
    let out = run_job_cmd(&host, &small).output().expect("run-job.sh");
    let executors = check_job(&out, 1);
    eprintln!("word count over 2 MB took {:?}", job.elapsed());
    for w in worker_names(2) {
        assert!(
            executors
                .iter()
                .any(|l| l.contains(&format!(" on worker {w} "))),
            "no executor on {w}: {executors:#?}"
        );
    }
    // Every word's count is in the volume, one line per distinct word.
    let lines = host.ok(&[
        "-f",
        f,
        "exec",
        "-T",
        "spark-master",
        "sh",
        "-c",
        "cat /data/out/words.txt/part-* | wc -l",
    ]);
    assert_eq!(lines.trim(), WORDS.to_string(), "output lines");

    // A third worker: `up --scale` starts it and it registers with the master by name.
    host.ok_within(
        300,
        &[
            "-f",
            f,
            "up",
            "-d",
            "--no-build",
            "--wait",
            "--wait-timeout",
            "240",
            "--scale",
            "spark-worker=3",
        ],
    );
    assert_eq!(alive_workers(&host), worker_names(3));
    all_ids.extend(ids(&host, f));

    // Kill the third worker once it runs the job's tasks: Spark runs them again on the two
    // others and the job still finishes with the exact counts.
    let copies = 5;
    let big = write_text(&host, "more-words.txt", copies);
    let mut child: Child = run_job_cmd(&host, &big)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn run-job.sh");
    let waiting = Instant::now();
    while tasks_started(&host, f, "3") == 0 {
        assert!(
            child.try_wait().ok().flatten().is_none(),
            "the job ended before spark-spark-worker-3 ran a task"
        );
        assert!(
            waiting.elapsed() < Duration::from_secs(300),
            "spark-spark-worker-3 ran no task in 300 s"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    host.ok(&["container", "kill", "spark-spark-worker-3"]);
    eprintln!(
        "spark-spark-worker-3 killed {:?} into the job",
        waiting.elapsed()
    );
    assert!(
        child.try_wait().ok().flatten().is_none(),
        "the job ended before the kill"
    );
    let out = child.wait_with_output().expect("run-job.sh");
    let executors = check_job(&out, copies);
    eprintln!(
        "word count over 10 MB with a lost worker took {:?}: {executors:#?}",
        waiting.elapsed()
    );
    assert!(
        executors
            .iter()
            .any(|l| l.contains(" on worker spark-spark-worker-3 ") && l.contains(", lost)")),
        "the killed worker's executor is reported lost: {executors:#?}"
    );

    // down -v: containers (the killed one too), network and the data volume go.
    all_ids.extend(ids(&host, f));
    all_ids.sort();
    all_ids.dedup();
    host.ok(&["-f", f, "down", "-v"]);
    assert!(host.ps_of(&["-f", f]).is_empty());
    let leaks = host.leaks(&all_ids);
    assert!(leaks.is_empty(), "down left: {leaks:#?}");
    let vol = host.root.join("volumes/spark_data");
    assert!(!vol.exists(), "down -v removed {}", vol.display());
    eprintln!("spark example test took {:?}", t0.elapsed());
}
