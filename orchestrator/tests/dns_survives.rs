//! Containers keep resolving each other's names while the daemon is gone: after a `kill -9`
//! of the daemon, after `system shutdown` with the containers still running, and when the DNS
//! keeper itself is killed (the daemon starts a new one). Each test runs a two-service stack
//! whose `app` container resolves `db` through the embedded DNS every 50 ms, writing each
//! attempt (start and end from /proc/uptime, the same clock inside and outside) to a bound
//! file; nothing of berth is called while a failure window is measured, so no CLI call can
//! restart anything behind the test's back.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Host;

const STACK: &str = r#"
name: dnsup
x-quick: &quick
  image: busybox:e2e
  init: true
  stop_grace_period: 1s
services:
  db:
    <<: *quick
    command: ["sleep", "3600"]
  app:
    <<: *quick
    volumes: ["./out:/out"]
    command:
      - sh
      - -c
      - >-
        while :; do read a x </proc/uptime;
        if nslookup -timeout=2 -retry=1 db >/dev/null 2>&1; then r=ok; else r=fail; fi;
        read b x </proc/uptime; echo "$$a $$b $$r" >>/out/log; busybox usleep 50000; done
"#;

/// The longest a name may fail after the daemon (or the keeper) dies.
const GOAL: f64 = 1.0;

/// One lookup: start and end (seconds of uptime) and whether it answered.
#[derive(Debug, Clone, Copy)]
struct Attempt {
    start: f64,
    end: f64,
    ok: bool,
}

fn uptime() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

fn attempts(log: &Path) -> Vec<Attempt> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let start = f.next()?.parse().ok()?;
            let end = f.next()?.parse().ok()?;
            let ok = f.next()? == "ok";
            Some(Attempt { start, end, ok })
        })
        .collect()
}

/// How long names failed from `since` on: from the start of the first failed (or over-long)
/// lookup of a run to the end of the next good one. A run that never ended counts up to the
/// last attempt plus the goal, so it fails the check. Also returns the good lookups seen.
fn failure_window(all: &[Attempt], since: f64) -> (f64, usize) {
    let mut worst: f64 = 0.0;
    let mut failing_since: Option<f64> = None;
    let mut good = 0;
    let mut last_end = since;
    for a in all.iter().filter(|a| a.end >= since) {
        last_end = a.end;
        if a.ok && a.end - a.start <= GOAL {
            good += 1;
            if let Some(s) = failing_since.take() {
                worst = worst.max(a.end - s);
            }
        } else if failing_since.is_none() {
            failing_since = Some(a.start);
        }
    }
    if let Some(s) = failing_since {
        worst = worst.max(last_end - s + GOAL);
    }
    (worst, good)
}

fn pid_in(file: &Path) -> i32 {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no pid in {}", file.display()))
}

fn kill9(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// Processes whose command line mentions `dir` (this instance's processes), as
/// `pid: cmdline`.
fn processes_of(dir: &Path) -> Vec<(i32, String)> {
    let dir = dir.display().to_string();
    let me = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            (pid != me && cmd.contains(&dir)).then_some((pid, cmd))
        })
        .collect()
}

/// The DNS keeper of the instance (`berth dns <run>/dns`).
fn keeper(host: &Host) -> Option<i32> {
    let dns = host.run.join("dns");
    processes_of(&host.run)
        .into_iter()
        .find(|(_, cmd)| cmd.contains(&format!(" dns {}", dns.display())))
        .map(|(pid, _)| pid)
}

fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

struct Stack {
    host: Host,
    log: PathBuf,
}

fn up(tag: &str) -> Stack {
    let host = Host::new(tag);
    host.busybox_image();
    std::fs::write(host.stack.join("compose.yaml"), STACK).expect("compose");
    std::fs::create_dir_all(host.stack.join("out")).expect("out dir");
    host.ok(&["up", "-d"]);
    let log = host.stack.join("out/log");
    // The loop must be answering before anything is killed.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let all = attempts(&log);
        if all.iter().rev().take(3).filter(|a| a.ok).count() == 3 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the lookup loop never answered: {all:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Stack { host, log }
}

/// Waits 3 s with berth untouched, then returns the failure window since `since`.
fn measure(s: &Stack, since: f64, what: &str) -> f64 {
    std::thread::sleep(Duration::from_secs(3));
    let (window, good) = failure_window(&attempts(&s.log), since);
    eprintln!("{what}: names failed for {window:.2} s ({good} good lookups in 3 s)");
    assert!(good > 0, "{what}: no lookup answered in 3 s");
    window
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn down_leaves_nothing(s: &Stack) {
    s.host.ok(&["down"]);
    s.host.ok(&["system", "shutdown"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let left = loop {
        let left = processes_of(s.host.dir.path());
        if left.is_empty() || std::time::Instant::now() > deadline {
            break left;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        left.is_empty(),
        "left after down + system shutdown: {left:?}"
    );
}

#[test_with::root()]
#[test_with::executable(ip, nsenter, nft, busybox)]
#[test]
fn names_answer_through_daemon_kills() {
    let s = up("dnskill");
    let mut windows = Vec::new();
    for round in 0..5 {
        if round > 0 {
            // A CLI call brings the daemon back, which re-adopts the running keeper.
            s.host.ok(&["system", "info"]);
            std::thread::sleep(Duration::from_millis(500));
        }
        let t = uptime();
        kill9(pid_in(&s.host.run.join("berth.pid")));
        windows.push(measure(
            &s,
            t,
            &format!("kill -9 of the daemon #{}", round + 1),
        ));
    }
    let max = windows.iter().copied().fold(0.0, f64::max);
    let med = median(&mut windows.clone());
    eprintln!(
        "FIGURES: daemon kill -9 x{}: names failed median {med:.2} s, max {max:.2} s",
        windows.len()
    );
    assert!(max < GOAL, "names failed up to {max:.2} s: {windows:?}");
    // The daemon is down: the next CLI call restarts it and the stack goes as usual.
    down_leaves_nothing(&s);
}

#[test_with::root()]
#[test_with::executable(ip, nsenter, nft, busybox)]
#[test]
fn names_answer_after_system_shutdown_and_nothing_is_left_after_down() {
    let s = up("dnsshut");
    let t = uptime();
    s.host.ok(&["system", "shutdown"]);
    let window = measure(&s, t, "system shutdown");
    assert!(
        window < GOAL,
        "names failed for {window:.2} s after shutdown"
    );
    let k = keeper(&s.host).expect("a DNS keeper runs while containers do");
    eprintln!("FIGURES: DNS keeper RSS {} KiB", rss_kib(k));
    down_leaves_nothing(&s);
}

/// While the daemon runs, it watches its keeper and starts a new one as soon as it dies;
/// the new keeper reads the records the daemon left and binds every gateway again.
#[test_with::root()]
#[test_with::executable(ip, nsenter, nft, busybox)]
#[test]
fn a_killed_dns_keeper_is_replaced_at_once() {
    let s = up("dnskeep");
    let mut windows = Vec::new();
    for round in 0..3 {
        let old = keeper(&s.host).expect("a DNS keeper runs");
        let t = uptime();
        kill9(old);
        windows.push(measure(
            &s,
            t,
            &format!("kill -9 of the DNS keeper #{}", round + 1),
        ));
        let new = keeper(&s.host).expect("a new DNS keeper runs");
        assert_ne!(new, old);
    }
    let max = windows.iter().copied().fold(0.0, f64::max);
    eprintln!(
        "FIGURES: keeper kill -9 x{}: names failed median {:.2} s, max {max:.2} s",
        windows.len(),
        median(&mut windows.clone())
    );
    assert!(max < GOAL, "names failed up to {max:.2} s: {windows:?}");
    down_leaves_nothing(&s);
}
