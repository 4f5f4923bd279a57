//! Containers keep resolving each other's names while the daemon is gone: after a `kill -9`
//! of the daemon, after `system shutdown` with the containers still running, and when the DNS
//! keeper itself is killed (the daemon starts a new one). Each test runs a two-service stack
//! whose `app` container resolves `db` through the embedded DNS every 50 ms, writing each
//! attempt (start and end from /proc/uptime, the same clock inside and outside) to a bound
//! file; nothing of berth is called while a failure window is measured, so no CLI call can
//! restart anything behind the test's back.

use berth_tests::host::Host;

use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// Which lookups a measure counts.
#[derive(Debug, Clone, Copy)]
enum Counted {
    /// Every lookup still running at the instant or started later.
    EndingAfter(f64),
    /// Lookups started at the instant or later: a DNS process killed while it held a query
    /// loses that query, and its client learns it only from its own timeout (see
    /// `a_killed_dns_keeper_is_replaced_at_once`).
    StartingAfter(f64),
}

/// How long names failed: from the start of the first failed (or over-long) lookup of a run
/// to the end of the next good one. A run that never ended counts up to the last attempt plus
/// the goal, so it fails the check. Also returns the good lookups seen.
fn failure_window(all: &[Attempt], counted: Counted) -> (f64, usize) {
    let mut worst: f64 = 0.0;
    let mut failing_since: Option<f64> = None;
    let mut good = 0;
    let (since, keep): (f64, &dyn Fn(&Attempt) -> bool) = match counted {
        Counted::EndingAfter(t) => (t, &move |a: &Attempt| a.end >= t),
        Counted::StartingAfter(t) => (t, &move |a: &Attempt| a.start >= t),
    };
    let mut last_end = since;
    for a in all.iter().filter(|a| keep(a)) {
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

/// The keeper's memory: resident, of which private (anonymous), and its proportional share
/// (the berth binary's pages are shared with the daemon and every shim).
fn memory(pid: i32) -> String {
    let field = |file: &str, key: &str| -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/{file}"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    format!(
        "VmRSS {} KiB (RssAnon {} KiB, RssFile {} KiB), Pss {} KiB",
        field("status", "VmRSS:"),
        field("status", "RssAnon:"),
        field("status", "RssFile:"),
        field("smaps_rollup", "Pss:")
    )
}

fn keepers(host: &Host) -> usize {
    let dns = host.run.join("dns");
    processes_of(&host.run)
        .into_iter()
        .filter(|(_, cmd)| cmd.contains(&format!(" dns {}", dns.display())))
        .count()
}

/// The inodes of the keeper's sockets, from keeper.json.
fn socket_inodes(host: &Host) -> Vec<u64> {
    let status = std::fs::read_to_string(host.run.join("dns/keeper.json")).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&status).unwrap_or_default();
    let mut out: Vec<u64> = v["listening"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| l["inodes"].as_array().cloned().unwrap_or_default())
        .filter_map(|i| i.as_u64())
        .collect();
    out.sort();
    out
}

/// Time from now until a keeper other than `old` reports in keeper.json.
fn replaced_after(host: &Host, old: i32) -> Duration {
    let t = std::time::Instant::now();
    let status = host.run.join("dns/keeper.json");
    while t.elapsed() < Duration::from_secs(5) {
        let pid = std::fs::read_to_string(&status)
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .and_then(|v| v["pid"].as_i64());
        if pid.is_some_and(|p| p != i64::from(old)) {
            return t.elapsed();
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    panic!("no new DNS keeper reported within 5 s");
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
fn measure(s: &Stack, counted: Counted, what: &str) -> f64 {
    std::thread::sleep(Duration::from_secs(3));
    let all = attempts(&s.log);
    let (window, good) = failure_window(&all, counted);
    let lost = match counted {
        Counted::StartingAfter(t) => all
            .iter()
            .filter(|a| a.start < t && a.end >= t && !a.ok)
            .count(),
        Counted::EndingAfter(_) => 0,
    };
    eprintln!(
        "{what}: names failed for {window:.2} s ({good} good lookups in 3 s, \
         {lost} in flight at the kill lost)"
    );
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
    let first = keeper(&s.host).expect("a DNS keeper runs");
    let mut windows = Vec::new();
    let kills: usize = std::env::var("BERTH_DNS_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    for round in 0..kills {
        if round > 0 {
            // A CLI call brings the daemon back, which adopts the running keeper.
            s.host.ok(&["system", "info"]);
            std::thread::sleep(Duration::from_millis(500));
            assert_eq!(keeper(&s.host), Some(first), "the keeper was adopted");
            assert_eq!(keepers(&s.host), 1);
        }
        let t = uptime();
        kill9(pid_in(&s.host.run.join("berth.pid")));
        windows.push(measure(
            &s,
            Counted::EndingAfter(t),
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
    // A daemon started after the crash publishes to the adopted keeper: a new container's
    // name answers at once.
    s.host.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        "late",
        "--network",
        "dnsup_default",
        "busybox:e2e",
        "sleep",
        "300",
    ]);
    let got = s
        .host
        .ok(&["container", "exec", "dnsup-app-1", "nslookup", "late"]);
    assert!(got.contains("Address: 10."), "{got}");
    assert_eq!(keeper(&s.host), Some(first));
    s.host.ok(&["container", "rm", "-f", "late"]);
    down_leaves_nothing(&s);
}

#[test_with::root()]
#[test_with::executable(ip, nsenter, nft, busybox)]
#[test]
fn names_answer_after_system_shutdown_and_nothing_is_left_after_down() {
    let s = up("dnsshut");
    let t = uptime();
    s.host.ok(&["system", "shutdown"]);
    let window = measure(&s, Counted::EndingAfter(t), "system shutdown");
    eprintln!("FIGURES: system shutdown: names failed {window:.2} s");
    assert!(
        window < GOAL,
        "names failed for {window:.2} s after shutdown"
    );
    let k = keeper(&s.host).expect("a DNS keeper runs while containers do");
    eprintln!("FIGURES: DNS keeper memory: {}", memory(k));
    // With the daemon down as well nothing restarts a killed keeper: the next CLI call that
    // starts the daemon does, as soon as its engine is open.
    kill9(k);
    std::thread::sleep(Duration::from_millis(300));
    let t = uptime();
    let called = std::time::Instant::now();
    s.host.ok(&["system", "info"]);
    replaced_after(&s.host, k);
    let took = called.elapsed().as_secs_f64();
    // Lookups sent while no keeper listened were refused by ICMP, until the kernel's ICMP
    // rate limit made the next ones wait for the client's timeout (2 s here): so the loop
    // is only required to answer again, the keeper to serve within the goal.
    let window = measure(
        &s,
        Counted::StartingAfter(t),
        "keeper killed while the daemon was down, then `system info`",
    );
    eprintln!(
        "FIGURES: keeper killed with the daemon down: a new one serves {took:.2} s after \
         the next CLI call (lookups failed {window:.2} s)"
    );
    assert!(took < GOAL, "the next keeper served after {took:.2} s");
    assert_ne!(keeper(&s.host), Some(k));
    down_leaves_nothing(&s);
}

/// While the daemon runs, it watches its keeper and starts a new one as soon as it dies;
/// the new keeper reads the records the daemon left and binds every gateway again, in about
/// 30 ms, on the very sockets of the old one (the daemon holds copies, so port 53 never
/// closes and queries wait in the buffer). "Names come back" means: every lookup sent after
/// the kill is answered within the goal. A query the killed keeper had already read but not
/// answered is lost; its client learns it from its own timeout and retries (2 s for this
/// loop's nslookup, 5 s for glibc's default), so such lookups are counted and printed, not
/// held against the goal.
#[test_with::root()]
#[test_with::executable(ip, nsenter, nft, busybox)]
#[test]
fn a_killed_dns_keeper_is_replaced_at_once() {
    let s = up("dnskeep");
    let mut windows = Vec::new();
    let mut replaced = Vec::new();
    for round in 0..3 {
        let old = keeper(&s.host).expect("a DNS keeper runs");
        let sockets = socket_inodes(&s.host);
        assert!(
            !sockets.is_empty(),
            "keeper.json lists the keeper's sockets"
        );
        let t = uptime();
        kill9(old);
        let took = replaced_after(&s.host, old);
        // The daemon kept copies of the sockets and handed them to the new keeper: the
        // gateway's port 53 never closed, so queries sent meanwhile waited in its buffer.
        assert_eq!(socket_inodes(&s.host), sockets, "the same sockets serve on");
        eprintln!(
            "a new DNS keeper served {:.1} ms after the kill",
            took.as_secs_f64() * 1e3
        );
        replaced.push(took.as_secs_f64() * 1e3);
        windows.push(measure(
            &s,
            Counted::StartingAfter(t),
            &format!("kill -9 of the DNS keeper #{}", round + 1),
        ));
        let new = keeper(&s.host).expect("a new DNS keeper runs");
        assert_ne!(new, old);
    }
    let max = windows.iter().copied().fold(0.0, f64::max);
    eprintln!(
        "FIGURES: keeper kill -9 x{}: names failed median {:.2} s, max {max:.2} s; \
         new keeper serving after median {:.1} ms, max {:.1} ms",
        windows.len(),
        median(&mut windows.clone()),
        median(&mut replaced.clone()),
        replaced.iter().copied().fold(0.0, f64::max),
    );
    assert!(max < GOAL, "names failed up to {max:.2} s: {windows:?}");
    down_leaves_nothing(&s);
}

/// A daemon of another berth binary (an upgrade replaced the file) adopts the running keeper,
/// copies its sockets and replaces it with a keeper of its own binary, which serves on the
/// same sockets: the records format may change between versions, names must not stop.
#[test_with::root()]
#[test_with::executable(ip, nsenter, nft, busybox)]
#[test]
fn a_keeper_of_an_older_binary_gives_way_without_a_gap() {
    let s = up("dnsupg");
    s.host.ok(&["system", "shutdown"]);
    let old = keeper(&s.host).expect("a DNS keeper runs");
    let sockets = socket_inodes(&s.host);
    let upgraded = s.host.dir.path().join("berth-upgraded");
    std::fs::copy(berth_tests::berth_bin(), &upgraded).expect("copy the berth binary");
    let t = uptime();
    let out = s.host.sh(&format!(
        "{} --root {} --run {} system info",
        upgraded.display(),
        s.host.root.display(),
        s.host.run.display()
    ));
    assert!(out.status.success(), "{out:?}");
    replaced_after(&s.host, old);
    let new = keeper(&s.host).expect("a new keeper runs");
    let exe = std::fs::read_link(format!("/proc/{new}/exe")).expect("keeper exe");
    assert_eq!(exe, upgraded, "the new keeper runs the new binary");
    assert_eq!(socket_inodes(&s.host), sockets, "the same sockets serve on");
    let window = measure(
        &s,
        Counted::EndingAfter(t),
        "keeper replaced after an upgrade",
    );
    assert!(window < GOAL, "names failed for {window:.2} s");
    down_leaves_nothing(&s);
}
