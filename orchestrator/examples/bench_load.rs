//! Benchmark: load + resolve a generated 1,000-service Compose file, print time and peak memory.
//!
//! `cargo run --release -p berth --example bench_load [-- SERVICES [RUNS]]`
//! Target: under 100 ms for 1,000 services in a release build.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use berth::compose::{LoadOptions, load};
use berth::graph::ServiceGraph;

fn generate(n: usize) -> String {
    let mut s = String::from(
        "name: bench\nx-common: &common\n  restart: unless-stopped\n  init: true\n  \
         environment: &env\n    TZ: UTC\n    LOG_LEVEL: ${LOG_LEVEL:-info}\n  \
         healthcheck:\n    test: [\"CMD-SHELL\", \"true\"]\n    interval: 5s\n    retries: 3\n\
         services:\n",
    );
    for i in 0..n {
        let _ = write!(
            s,
            "  svc{i:04}:\n    <<: *common\n    image: registry.local/app:${{TAG:-1.{m}}}\n    \
             command: [\"serve\", \"--port\", \"{port}\"]\n    ports:\n      - \"{host}:{port}\"\n    \
             volumes:\n      - ./data/svc{i}:/data\n      - shared:/shared:ro\n    \
             environment:\n      <<: *env\n      INDEX: \"{i}\"\n    labels:\n      - tier=t{t}\n    \
             networks: [front, back]\n",
            m = i % 10,
            port = 8000 + i % 100,
            host = 20000 + i,
            t = i % 3,
        );
        if i > 0 {
            let _ = writeln!(
                s,
                "    depends_on:\n      svc{d:04}:\n        condition: service_started",
                d = (i - 1) / 2
            );
        }
    }
    s.push_str("volumes:\n  shared:\nnetworks:\n  front:\n  back:\n");
    s
}

/// CPU time of this thread in nanoseconds: the loader is single-threaded, and on a shared
/// machine CPU time is steadier than wall time.
fn cpu_ns() -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we pass.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let dir = tempfile::Builder::new()
        .prefix("berth-bench-")
        .tempdir()
        .expect("temp dir");
    let file = dir.path().join("compose.yaml");
    let text = generate(n);
    std::fs::write(&file, &text).expect("write compose file");
    let opts = LoadOptions {
        files: vec![file],
        environment: Some(BTreeMap::new()),
        working_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let rss_before = peak_rss_kib();
    let mut times: Vec<Duration> = Vec::with_capacity(runs);
    let mut cpu: Vec<u64> = Vec::with_capacity(runs);
    let mut services = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let c0 = cpu_ns();
        let project = match load(&opts) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("load failed: {e}");
                std::process::exit(1);
            }
        };
        let graph = ServiceGraph::from_project(&project).expect("graph");
        let levels = graph.start_levels(None);
        times.push(t.elapsed());
        if let (Some(a), Some(b)) = (c0, cpu_ns()) {
            cpu.push(b.saturating_sub(a));
        }
        services = project.services.len();
        std::hint::black_box(levels);
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("services={services} file_bytes={} runs={runs}", text.len());
    println!(
        "load+resolve+graph: min={:.1} ms median={:.1} ms max={:.1} ms (goal < 100 ms)",
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1])
    );
    if !cpu.is_empty() {
        cpu.sort();
        println!(
            "CPU time per load (this thread): min={:.1} ms median={:.1} ms",
            cpu[0] as f64 / 1e6,
            cpu[cpu.len() / 2] as f64 / 1e6
        );
    }
    if let (Some(before), Some(after)) = (rss_before, peak_rss_kib()) {
        println!(
            "peak RSS (VmHWM): {:.1} MiB (before loading: {:.1} MiB)",
            after as f64 / 1024.0,
            before as f64 / 1024.0
        );
    }
}
