//! Crashes that must heal, end to end as root: `kill -9` of the daemon at random moments of
//! `up -d` (the next `up -d` must leave every container whole, once, and `down` nothing), and
//! `kill -9` of a container's shim (the truth is told, the orphaned processes do not live on,
//! and the restart policy applies), and `kill -9` of the daemon while containers run (their
//! shims live on; a shim that ends is collected, never left a zombie).
//!
//! The daemon test's kill points are drawn from a seeded generator: the seed is printed, and
//! `BERTH_CRASH_SEED` replays it; `BERTH_CRASH_SERVICES`, `BERTH_CRASH_ROUNDS` and
//! `BERTH_CRASH_KILLS` (per round) size it.

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use berth_tests::berth_bin;
use berth_tests::host::Host;

fn env_num(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// xorshift64*: kill points that a printed seed replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn stack(n: usize) -> String {
    let mut y = String::from(
        "name: crash\nx-quick: &quick\n  image: busybox:e2e\n  init: true\n  stop_grace_period: 1s\n  command: [\"sleep\", \"3600\"]\nservices:\n",
    );
    for i in 0..n {
        y.push_str(&format!("  s{i}:\n    <<: *quick\n"));
    }
    y
}

/// `berth up -d` started in the background (collected with `wait_with_output`).
fn up_in_background(host: &Host) -> Child {
    Command::new("timeout")
        .args(["120", "nsenter"])
        .arg(format!("--net=/run/netns/{}", host.ns))
        .arg(berth_bin())
        .arg("--root")
        .arg(&host.root)
        .arg("--run")
        .arg(&host.run)
        .args(["up", "-d"])
        .current_dir(&host.stack)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn berth up")
}

/// The pid of the instance's live daemon, if one runs.
fn daemon_pid(host: &Host) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(host.run.join("berth.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    (cmdline.contains("daemon") && cmdline.contains(&host.run.display().to_string())).then_some(pid)
}

fn sigkill(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// Kills the daemon `pid` (if `ours` still says it is the instance's daemon once it is held)
/// and waits (at most `limit`) until the whole process has exited; `false` when it is still
/// exiting then.
///
/// Its main thread turning zombie is not the end: the other threads exit after it, and the
/// process's files, its API socket among them, are closed only as the last one does. Closing
/// an inotify with watches (the record cache has one per container) waits for a kernel grace
/// period, so a killed daemon's socket can take connections for some 30 ms after its main
/// thread is gone, and a command started then has its request reset as that socket closes.
/// A pidfd becomes readable only once every thread of the process has exited; it is opened
/// before the signal is sent through it, so a recycled pid is neither killed nor waited for.
fn kill_and_wait_exited(pid: i32, ours: impl Fn() -> bool, limit: Duration) -> bool {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        // Reaped already.
        return true;
    }
    // SAFETY: the descriptor was just returned and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    if !ours() {
        return true;
    }
    // SAFETY: pidfd_send_signal takes the pidfd, a signal, no siginfo and no flags.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // SAFETY: one pollfd that outlives the call.
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if n > 0 {
            return true;
        }
        if n == 0 || Instant::now() >= deadline {
            return false;
        }
        // Interrupted: poll again.
    }
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().next())
            .is_some_and(|st| !matches!(st, "Z" | "X"))
    })
}

/// Container ids on disk (every dir, listed or not).
fn dirs(host: &Host) -> BTreeSet<String> {
    std::fs::read_dir(host.root.join("containers"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect()
}

/// Everything wrong with the project after a healing `up -d`: one line per problem.
fn problems(host: &Host, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let ps = host.ps();
    let mut by_service: BTreeMap<String, Vec<&serde_json::Value>> = BTreeMap::new();
    for row in &ps {
        let svc = row["service"].as_str().unwrap_or_default().to_string();
        by_service.entry(svc).or_default().push(row);
    }
    let services: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
    let on_disk = dirs(host);
    if on_disk.len() != n {
        // What the dirs that no listed container owns hold tells how far their creation got.
        let listed: BTreeSet<&str> = ps.iter().filter_map(|r| r["id"].as_str()).collect();
        let strays: Vec<String> = on_disk
            .iter()
            .filter(|d| !listed.contains(d.as_str()))
            .map(|d| {
                let dir = host.root.join("containers").join(d);
                let marker = std::fs::read_to_string(dir.join("creating")).ok();
                format!("{d} holds {:?} (marker {marker:?})", entries(&dir))
            })
            .collect();
        out.push(format!(
            "{} container dirs for {n} services; not listed: {strays:?}",
            on_disk.len()
        ));
    }
    for svc in &services {
        let rows = by_service.get(svc).cloned().unwrap_or_default();
        if rows.len() != 1 {
            out.push(format!("{svc}: {} containers", rows.len()));
            continue;
        }
        let row = rows[0];
        let id = row["id"].as_str().unwrap_or_default();
        let name = format!("crash-{svc}-1");
        if row["status"] != "running" {
            out.push(format!("{svc}: {}", row["status"]));
            continue;
        }
        let dir = host.root.join("containers").join(id);
        if dir.join("creating").exists() {
            out.push(format!("{svc}: still marked as being created"));
        }
        let pin = host.run.join("netns").join(&id[..id.len().min(12)]);
        let addr = host.sh(&format!(
            "nsenter --net={} ip -4 -o addr show dev eth0",
            pin.display()
        ));
        let addr = String::from_utf8_lossy(&addr.stdout).to_string();
        if !addr.contains("inet 10.") {
            out.push(format!("{svc}: no address in its namespace ({addr:?})"));
            continue;
        }
        let others: Vec<&str> = services
            .iter()
            .filter(|s| *s != svc)
            .map(String::as_str)
            .collect();
        let script = format!(
            "grep -q '^nameserver 10\\.' /etc/resolv.conf || echo NO-RESOLV; \
             grep -q '{name}' /etc/hosts || echo NO-HOSTS; \
             for s in {}; do nslookup $s >/dev/null 2>&1 || echo MISSING $s; done",
            others.join(" ")
        );
        let got = host.berth(&["container", "exec", &name, "sh", "-c", &script]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&got.stdout),
            String::from_utf8_lossy(&got.stderr)
        );
        if !got.status.success() || !text.trim().is_empty() {
            let short: String = text
                .split_whitespace()
                .take(12)
                .collect::<Vec<_>>()
                .join(" ");
            out.push(format!("{svc}: {short}"));
        }
    }
    out
}

/// What `down` must have removed, beyond the harness's leak check.
fn leftovers(host: &Host) -> Vec<String> {
    let mut out = Vec::new();
    let d = dirs(host);
    if !d.is_empty() {
        out.push(format!("container dirs: {d:?}"));
    }
    for (what, dir) in [
        ("netns pins", host.run.join("netns")),
        ("run dirs", host.run.join("c")),
        ("name files", host.root.join("container-names")),
    ] {
        let e = entries(&dir);
        if !e.is_empty() {
            out.push(format!("{what}: {e:?}"));
        }
    }
    out
}

#[test_with::root()]
#[test]
fn daemon_killed_at_random_moments_of_up_heals_at_the_next_up() {
    let n = env_num("BERTH_CRASH_SERVICES", 20) as usize;
    let rounds = env_num("BERTH_CRASH_ROUNDS", 6);
    let kills = env_num("BERTH_CRASH_KILLS", 4);
    let seed = env_num(
        "BERTH_CRASH_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    )
    .max(1);
    eprintln!(
        "crash_heal: seed {seed} (BERTH_CRASH_SEED={seed} replays), {n} services, {rounds} rounds x {kills} kills"
    );
    let mut rng = Rng(seed);
    let host = Host::new("crash");
    host.busybox_image();
    std::fs::write(host.stack.join("compose.yaml"), stack(n)).expect("compose");

    // How long a whole `up -d` takes here, daemon start included: kill points fall inside it.
    let _ = host.berth(&["system", "shutdown"]);
    let t = Instant::now();
    host.ok(&["up", "-d"]);
    let full = t.elapsed();
    host.ok(&["down"]);
    eprintln!("crash_heal: an uninterrupted up -d takes {full:?}");

    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut report: Vec<String> = Vec::new();
    let mut broken_total = 0;
    let mut heal_times = Vec::new();
    let mut points = 0;
    let mut interrupted = 0;
    for round in 0..rounds {
        for k in 0..kills {
            let delay = Duration::from_millis(rng.below(full.as_millis() as u64 + 1));
            let mut up = up_in_background(&host);
            let t = Instant::now();
            std::thread::sleep(delay);
            // The CLI may still be starting the daemon: wait for one to kill (bounded).
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut killed = false;
            while Instant::now() < deadline {
                if let Some(pid) = daemon_pid(&host) {
                    // Exited, not exiting: an exiting daemon still holds its socket, and the
                    // next command's request would be reset by the kill itself.
                    assert!(
                        kill_and_wait_exited(
                            pid,
                            || daemon_pid(&host) == Some(pid),
                            Duration::from_secs(5)
                        ),
                        "the killed daemon {pid} has not exited within 5 s"
                    );
                    killed = true;
                    break;
                }
                if up.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            let at = t.elapsed();
            let out = up.wait_with_output().expect("wait up");
            points += usize::from(killed);
            interrupted += usize::from(killed && !out.status.success());
            eprintln!(
                "crash_heal: round {round} kill {k}: daemon {} at {at:?} (up exit {:?})",
                if killed { "killed" } else { "not running" },
                out.status.code()
            );
            seen.extend(dirs(&host));
        }
        // The healing `up -d`.
        let t = Instant::now();
        let healed = host.berth(&["up", "-d"]);
        let took = t.elapsed();
        heal_times.push(took);
        seen.extend(dirs(&host));
        let mut p = problems(&host, n);
        if !healed.status.success() {
            p.push(format!(
                "healing up -d failed: {}",
                String::from_utf8_lossy(&healed.stderr)
            ));
        }
        eprintln!(
            "crash_heal: round {round}: healing up -d took {took:?}, {} problem(s)",
            p.len()
        );
        broken_total += p.len();
        report.extend(p.into_iter().map(|l| format!("round {round}: {l}")));
        let down = host.berth(&["down"]);
        if !down.status.success() {
            report.push(format!(
                "round {round}: down failed: {}",
                String::from_utf8_lossy(&down.stderr)
            ));
        }
        let ids: Vec<String> = seen.iter().cloned().collect();
        let mut left = host.leaks(&ids);
        left.extend(leftovers(&host));
        report.extend(
            left.into_iter()
                .map(|l| format!("round {round}: after down: {l}")),
        );
    }
    eprintln!(
        "crash_heal: {points} kill points ({interrupted} cut an up -d short) in {rounds} rounds of {n} services: {broken_total} broken container(s) after the healing up -d; healing up -d took {heal_times:?}"
    );
    assert!(
        points >= 20 || rounds * kills < 20,
        "only {points} kill points"
    );
    if !report.is_empty() {
        // The daemons' own account (each one appends), for what the report cannot say.
        let log = std::fs::read_to_string(host.root.join("daemon.log")).unwrap_or_default();
        let tail: Vec<&str> = log
            .lines()
            .filter(|l| !l.contains("rolling back a container"))
            .rev()
            .take(60)
            .collect();
        eprintln!("crash_heal: daemon.log, last lines (roll-backs left out):");
        for l in tail.iter().rev() {
            eprintln!("  {l}");
        }
    }
    assert!(report.is_empty(), "seed {seed}:\n{}", report.join("\n"));
}

/// `container inspect NAME` (stdout only: a settled dead shim is logged on stderr).
fn inspect(host: &Host, name: &str) -> serde_json::Value {
    let out = host.berth(&["container", "inspect", name]);
    assert!(out.status.success(), "inspect {name}: {out:?}");
    serde_json::from_slice(&out.stdout).expect("inspect json")
}

/// The shim pid and container pid recorded for `name`.
fn pids(host: &Host, name: &str) -> (i32, i32, String) {
    let v = inspect(host, name);
    let id = v[0]["Id"].as_str().unwrap_or_default().to_string();
    let st: serde_json::Value = serde_json::from_slice(
        &std::fs::read(host.root.join("containers").join(&id).join("state.json"))
            .expect("state.json"),
    )
    .expect("state json");
    (
        st["shim_pid"].as_i64().unwrap_or(0) as i32,
        st["pid"].as_i64().unwrap_or(0) as i32,
        id,
    )
}

fn inspect_state(host: &Host, name: &str) -> serde_json::Value {
    inspect(host, name)[0]["State"].clone()
}

/// Polls `check` for up to `secs` seconds.
fn within(secs: u64, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    check()
}

const SHIM_STACK: &str = r#"
name: shimkill
x-quick: &quick
  image: busybox:e2e
  init: true
  stop_grace_period: 1s
  command: ["sleep", "3600"]
services:
  once:
    <<: *quick
  always:
    <<: *quick
    restart: always
"#;

#[test_with::root()]
#[test]
fn a_killed_shim_is_noticed_its_container_ended_and_its_restart_policy_applied() {
    let host = Host::new("shimkill");
    host.busybox_image();
    std::fs::write(host.stack.join("compose.yaml"), SHIM_STACK).expect("compose");
    host.ok(&["up", "-d"]);
    host.ok(&[
        "container",
        "run",
        "-d",
        "--restart",
        "always",
        "--name",
        "solo-shimkill",
        "busybox:e2e",
        "sleep",
        "3600",
    ]);
    let mut ids = Vec::new();

    // No restart policy: the container ends, and every verb says so.
    let (shim, init, id) = pids(&host, "shimkill-once-1");
    ids.push(id);
    assert!(alive(shim) && alive(init), "shim {shim} init {init}");
    sigkill(shim);
    let told = within(5, || {
        let st = inspect_state(&host, "shimkill-once-1");
        st["Status"] == "exited" && st["Running"] == false
    });
    let st = inspect_state(&host, "shimkill-once-1");
    assert!(
        told,
        "inspect still says {st} 5 s after the shim was killed"
    );
    assert_eq!(st["ExitCode"], 137, "{st}");
    assert!(
        st["Error"].as_str().is_some_and(|e| e.contains("shim")),
        "{st}"
    );
    assert!(
        within(5, || !alive(init)),
        "the container's process {init} lives on without its shim"
    );
    let ps = host.ps();
    let row = ps
        .iter()
        .find(|r| r["service"] == "once")
        .expect("once row");
    assert_eq!(row["status"], "exited", "{row}");
    let exec = host.berth(&["container", "exec", "shimkill-once-1", "true"]);
    assert!(!exec.status.success(), "exec into an ended container");
    assert!(
        String::from_utf8_lossy(&exec.stderr).contains("not running"),
        "{}",
        String::from_utf8_lossy(&exec.stderr)
    );
    host.ok(&["stop", "once"]);

    // restart: always (compose) and --restart always (container run): running again, as a
    // new run with a live shim, and the old processes are gone.
    for name in ["shimkill-always-1", "solo-shimkill"] {
        let (shim, init, id) = pids(&host, name);
        ids.push(id);
        assert!(
            alive(shim) && alive(init),
            "{name}: shim {shim} init {init}"
        );
        sigkill(shim);
        let restarted = within(15, || {
            let (s, p, _) = pids(&host, name);
            s != shim && p != init && alive(s) && alive(p)
        });
        let st = inspect_state(&host, name);
        assert!(restarted, "{name} was not restarted: {st}");
        assert_eq!(st["Running"], true, "{name}: {st}");
        assert!(!alive(init), "{name}: old process {init} lives on");
        let exec = host.berth(&["container", "exec", name, "true"]);
        assert!(exec.status.success(), "{name}: exec after the restart");
    }

    host.ok(&["down"]);
    host.ok(&["container", "rm", "-f", "solo-shimkill"]);
    let _ = host.berth(&["network", "rm", "bridge"]);
    let leaks = host.leaks(&ids);
    assert!(leaks.is_empty(), "left after down: {leaks:#?}");
}

/// The parent pid and state letter of `pid` (`Z` for a zombie), from /proc.
fn ppid_and_state(pid: i32) -> Option<(i32, String)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut rest = stat.rsplit_once(')')?.1.split_whitespace();
    let state = rest.next()?.to_string();
    Some((rest.next()?.parse().ok()?, state))
}

/// Whether `shim`, a child of `daemon`, has ended and been waited for (not left a zombie).
fn collected(shim: i32, daemon: i32) -> bool {
    !alive(shim) && !ppid_and_state(shim).is_some_and(|(pp, st)| pp == daemon && st == "Z")
}

/// The children of `parent` that have ended and were not waited for (for failure messages:
/// the daemon's DNS keeper can be among them, see the test).
fn zombie_children(parent: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| ppid_and_state(*p).is_some_and(|(pp, st)| pp == parent && st == "Z"))
        .collect()
}

const REAP_STACK: &str = r#"
name: reap
x-quick: &quick
  image: busybox:e2e
  init: true
  stop_grace_period: 1s
  command: ["sleep", "3600"]
services:
  a:
    <<: *quick
  b:
    <<: *quick
"#;

#[test_with::root()]
#[test]
fn shims_outlive_a_killed_daemon_and_none_that_ended_stays_a_zombie() {
    let host = Host::new("reap");
    host.busybox_image();
    std::fs::write(host.stack.join("compose.yaml"), REAP_STACK).expect("compose");
    host.ok(&["up", "-d"]);
    let daemon = daemon_pid(&host).expect("a daemon runs after up");
    let (a_shim, _, a_id) = pids(&host, "reap-a-1");
    let (b_shim, b_init, b_id) = pids(&host, "reap-b-1");
    assert!(alive(a_shim) && alive(b_shim) && alive(b_init));

    // A shim that ends while its starter lives is collected, not left a zombie. The shims
    // are checked by pid, not as "no zombie child at all": the daemon's DNS keeper, when
    // one it started exits at once (another still holding the lock), stays a zombie until
    // the supervisor next reaps.
    host.ok(&["stop", "a"]);
    assert!(
        within(5, || collected(a_shim, daemon)),
        "the stopped shim {a_shim} (daemon {daemon}): {:?}; zombie children of the daemon: {:?}",
        ppid_and_state(a_shim),
        zombie_children(daemon)
    );

    // A killed daemon leaves the containers running: their shims live on, not as zombies.
    assert!(
        kill_and_wait_exited(
            daemon,
            || daemon_pid(&host) == Some(daemon),
            Duration::from_secs(10)
        ),
        "the daemon {daemon} did not exit"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        alive(b_shim) && alive(b_init),
        "after the daemon's kill: shim {b_shim} {:?}, container {b_init} {:?}",
        ppid_and_state(b_shim),
        ppid_and_state(b_init)
    );
    assert_eq!(inspect_state(&host, "reap-b-1")["Running"], true);
    assert_eq!(pids(&host, "reap-b-1").0, b_shim, "b's shim was replaced");

    // The next daemon starts a shim and collects it and the others when they end.
    host.ok(&["start", "a"]);
    let daemon2 = daemon_pid(&host).expect("a daemon runs after start");
    assert_ne!(daemon2, daemon);
    let (a_shim2, _, _) = pids(&host, "reap-a-1");
    assert!(alive(a_shim2), "a's new shim {a_shim2}");
    host.ok(&["down"]);
    assert!(
        within(5, || collected(a_shim2, daemon2) && !alive(b_shim)),
        "after down: shims {a_shim2} {:?} and {b_shim} {:?}; zombie children of the daemon {daemon2}: {:?}",
        ppid_and_state(a_shim2),
        ppid_and_state(b_shim),
        zombie_children(daemon2)
    );
    let leaks = host.leaks(&[a_id, b_id]);
    assert!(leaks.is_empty(), "left after down: {leaks:#?}");
}
