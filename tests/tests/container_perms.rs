//! A host user who is not root reaches nothing of a berth instance: not a container's files
//! (its upper dir, its volumes' data, a setuid binary made inside it), not its config (with
//! the environment's secrets), logs or volume metadata, not netd's state, not the daemon.
//! Containers running as any uid keep working, and a daemon start tightens a root made with
//! the older, looser modes.
//!
//! The instance lives under a 0755 directory (as /var/lib is), so the test means something:
//! only the instance's own modes stand between `nobody` and its files.

use berth_tests::container_util;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use berth_tests::host::Host;

const SECRET: &str = "hunter2-perms-secret";

/// A static program that prints its effective uid: made setuid-root inside a container, it
/// shows whether a host user who runs it becomes root.
fn euid_probe() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        container_util::static_c_program(
            "berth-euid-probe",
            "#include <stdio.h>\n#include <unistd.h>\n\
             int main(void){printf(\"euid=%d\\n\",(int)geteuid());return 0;}\n",
        )
    })
}

/// Runs `sh -c script` as `nobody` with no supplementary groups.
fn as_nobody(script: &str) -> Output {
    Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            "sh",
            "-c",
            script,
        ])
        .output()
        .expect("setpriv (util-linux)")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Whether `nobody` (uid and gid 65534, no other group) holds `bit` (4 r, 2 w, 1 x) on a file
/// with these metadata.
fn nobody_may(md: &fs::Metadata, bit: u32) -> bool {
    let shift = if md.uid() == 65534 {
        6
    } else if md.gid() == 65534 {
        3
    } else {
        0
    };
    (md.mode() >> shift) & bit != 0
}

/// Every path under `top` (itself included) that `nobody` can reach by name: each directory
/// from `/` down to its parent lets nobody search it. Does not follow symlinks or descend into
/// directories nobody cannot search (nothing below them is reachable).
fn reachable(top: &Path) -> Vec<(PathBuf, fs::Metadata)> {
    let mut ancestors = PathBuf::from("/");
    for c in top
        .parent()
        .into_iter()
        .flat_map(|p| p.components().skip(1))
    {
        ancestors.push(c);
        let md = fs::metadata(&ancestors).expect("ancestor");
        assert!(
            nobody_may(&md, 1),
            "the test's own parent {} must be searchable by nobody",
            ancestors.display()
        );
    }
    let mut out = Vec::new();
    let mut stack = vec![top.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(md) = fs::symlink_metadata(&p) else {
            continue;
        };
        if md.is_dir() && nobody_may(&md, 1) {
            for e in fs::read_dir(&p).into_iter().flatten().flatten() {
                stack.push(e.path());
            }
        }
        out.push((p, md));
    }
    out
}

/// What of `root` and `run` gives nobody anything: a directory it may search or list, a file
/// it may read or write, a socket it may connect to. Two are meant to: the run dir may be
/// searched (on the way to the socket, whose mode says who may connect) and the pid file read.
fn exposed(root: &Path, run: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for top in [root, run] {
        for (p, md) in reachable(top) {
            let ft = md.file_type();
            let gives = if ft.is_dir() {
                let search_ok = p == run && !nobody_may(&md, 4);
                (nobody_may(&md, 4) || nobody_may(&md, 1)) && !search_ok
            } else if ft.is_symlink() {
                false
            } else if p == run.join("berth.pid") {
                nobody_may(&md, 2)
            } else {
                nobody_may(&md, 4) || nobody_may(&md, 2)
            };
            if gives {
                out.push(format!("{} {:o}", p.display(), md.mode() & 0o7777));
            }
        }
    }
    out
}

/// An instance under a 0755 directory with the busybox image and the euid probe at hand.
fn host(tag: &str) -> (Host, PathBuf) {
    let h = Host::new(tag);
    fs::set_permissions(h.dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    h.busybox_image();
    let probe_dir = h.dir.path().join("probe");
    fs::create_dir(&probe_dir).expect("probe dir");
    fs::copy(euid_probe(), probe_dir.join("euid")).expect("probe");
    (h, probe_dir)
}

/// The host pid of a running container's init.
fn container_pid(h: &Host, id: &str) -> i32 {
    let st = fs::read(h.root.join("containers").join(id).join("state.json")).expect("state");
    let v: serde_json::Value = serde_json::from_slice(&st).expect("state json");
    v["pid"].as_i64().expect("pid") as i32
}

/// Starts container `name` that makes setuid-root copies of the probe in its root and in the
/// volume `vol`, hands `/w` and the volume to uid 1000, and sleeps. Returns its full id.
fn start_suid_container(h: &Host, probe: &Path, name: &str, vol: &str) -> String {
    let probe_mount = format!("{}:/probe:ro", probe.display());
    let vol_mount = format!("{vol}:/data");
    let env = format!("SECRET={SECRET}");
    h.ok(&[
        "volume",
        "create",
        "--label",
        &format!("token={SECRET}"),
        vol,
    ]);
    let script = "busybox cp /probe/euid /suid && busybox chmod 4755 /suid \
        && busybox cp /probe/euid /data/suid && busybox chmod 4755 /data/suid \
        && busybox mkdir -p /w && busybox chown 1000:1000 /w /data \
        && echo made-by-root && exec sleep 1000";
    let id = h.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        name,
        "-e",
        &env,
        "-v",
        &probe_mount,
        "-v",
        &vol_mount,
        "busybox:e2e",
        "sh",
        "-c",
        script,
    ]);
    let id = id.trim().lines().last().unwrap_or_default().to_string();
    assert_eq!(id.len(), 64, "container id: {id}");
    let log = h.root.join("containers").join(&id).join("log.json");
    for _ in 0..100 {
        if fs::read_to_string(&log).is_ok_and(|l| l.contains("made-by-root")) {
            return id;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!(
        "the container never made its files: {}",
        text(&h.berth(&["container", "logs", name]))
    );
}

/// The attacks of a local user who is not root, each tried as `nobody`; returns those that
/// worked.
fn attacks(h: &Host, id: &str, vol: &str) -> Vec<String> {
    let pid = container_pid(h, id);
    let cdir = h.root.join("containers").join(id);
    // The upper dir as the kernel prints it for everyone (the overlay's options; berth
    // mounts from the container dir, so the path may be relative to it).
    let mountinfo = fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("mountinfo");
    let upper = mountinfo
        .lines()
        .filter(|l| l.contains(" - overlay "))
        .find_map(|l| {
            l.split(',')
                .find_map(|o| o.strip_prefix("upperdir="))
                .map(str::to_string)
        })
        .expect("the container's overlay and its upperdir");
    let upper = cdir.join(upper).display().to_string();
    assert!(Path::new(&upper).join("suid").is_file(), "{upper}/suid");
    let data = h.root.join("volumes").join(vol).join("_data");
    assert!(data.join("suid").is_file(), "volume data");
    let mut worked = Vec::new();
    let execs = [
        format!("{upper}/suid"),
        format!("{}/suid", data.display()),
        format!("{}/rootfs/suid", cdir.display()),
        format!("/proc/{pid}/root/suid"),
    ];
    for p in &execs {
        let o = as_nobody(p);
        if o.status.success() {
            worked.push(format!("ran {p} as nobody: {}", text(&o).trim()));
        }
    }
    let reads = [
        cdir.join("config.json"),
        cdir.join("berth.json"),
        cdir.join("state.json"),
        cdir.join("log.json"),
        h.root.join("volumes").join(vol).join("meta.json"),
        h.root.join("netd/state.json"),
        h.root.join("daemon.log"),
        h.run.join("berth.lock"),
    ];
    for p in &reads {
        assert!(p.exists(), "{} exists (root sees it)", p.display());
        let o = as_nobody(&format!("cat '{}'", p.display()));
        if o.status.success() {
            let secret = if text(&o).contains(SECRET) {
                " (with the secret)"
            } else {
                ""
            };
            worked.push(format!("read {} as nobody{secret}", p.display()));
        }
    }
    let o = as_nobody(&format!(
        "echo x > '{}/planted' && echo x > '{upper}/planted'",
        data.display()
    ));
    if o.status.success() {
        worked.push("wrote into the volume and the upper dir as nobody".into());
    }
    let o = as_nobody(&format!(
        "curl -sS --max-time 5 --unix-socket '{}' http://berth/v1/ping",
        h.run.join("berth.sock").display()
    ));
    if o.status.success() {
        worked.push(format!("talked to the daemon as nobody: {}", text(&o)));
    }
    let o = as_nobody(&format!("ls '{}' '{}'", h.root.display(), h.run.display()));
    if o.status.success() {
        worked.push(format!("listed the state dirs as nobody: {}", text(&o)));
    }
    worked
}

/// Runs as uid 1000 inside: its rootfs (a dir it owns, the image's files, /etc/hosts) and its
/// volume work, in a running container (`exec -u`) and in a new one (`run -u`), with
/// berth's executor and with an external runtime.
fn uid_1000_works(h: &Host, name: &str, vol: &str) {
    let out = h.ok(&[
        "container",
        "exec",
        "-u",
        "1000:1000",
        name,
        "sh",
        "-c",
        "echo a > /w/f && cat /w/f && echo b > /data/f && cat /data/f \
         && cat /etc/hosts /etc/resolv.conf > /dev/null && busybox id -u",
    ]);
    assert_eq!(out.trim(), "a\nb\n1000", "{out}");
    let vol_mount = format!("{vol}:/data");
    let mut runtimes = vec![None];
    for rt in ["crun", "runc"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {rt}")])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            runtimes.push(Some(rt));
        }
    }
    for rt in runtimes {
        let mut args = vec!["container", "run", "--rm", "-u", "1000:1000"];
        if let Some(rt) = rt {
            args.extend(["--runtime", rt]);
        }
        args.extend([
            "-v",
            &vol_mount,
            "busybox:e2e",
            "sh",
            "-c",
            "echo c > /data/g && cat /data/g /data/f && cat /etc/hosts > /dev/null \
             && busybox ls /bin/busybox",
        ]);
        let out = h.ok(&args);
        assert_eq!(out.trim(), "c\nb\n/bin/busybox", "{rt:?}: {out}");
    }
}

#[test_with::root()]
#[test]
fn nobody_reaches_no_container_file_volume_config_or_daemon() {
    let (h, probe) = host("perm");
    let vol = "permvol";
    let id = start_suid_container(&h, &probe, "suidbox", vol);
    let worked = attacks(&h, &id, vol);
    assert!(worked.is_empty(), "attacks that worked: {worked:#?}");
    let exposed = exposed(&h.root, &h.run);
    assert!(exposed.is_empty(), "reachable by nobody: {exposed:#?}");
    uid_1000_works(&h, "suidbox", vol);

    h.ok(&["container", "rm", "-f", "suidbox"]);
    h.ok(&["volume", "rm", vol]);
    h.ok(&["network", "rm", "bridge"]);
    let leaks = h.leaks(&[id]);
    assert!(leaks.is_empty(), "{leaks:#?}");
}

/// Gives an instance the modes an older berth made (0711 root, the rest as the umask left
/// it: 0755 dirs, 0644 files), as a root upgraded in place would have them. Filesystems
/// (layers, upper and work dirs, volume data) keep their own modes.
fn loosen(top: &Path) {
    const CONTENT: [&str; 5] = ["upper", "work", "rootfs", "_data", "l"];
    let mut stack = vec![top.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(md) = fs::symlink_metadata(&p) else {
            continue;
        };
        let content = p
            .file_name()
            .is_some_and(|n| CONTENT.iter().any(|c| n == *c));
        if md.file_type().is_symlink() || content {
            continue;
        }
        if md.is_dir() {
            let _ = fs::set_permissions(&p, fs::Permissions::from_mode(0o755));
            for e in fs::read_dir(&p).into_iter().flatten().flatten() {
                stack.push(e.path());
            }
        } else if md.is_file() {
            let _ = fs::set_permissions(&p, fs::Permissions::from_mode(0o644));
        }
    }
    let _ = fs::set_permissions(top, fs::Permissions::from_mode(0o711));
}

#[test_with::root()]
#[test]
fn daemon_start_tightens_a_root_made_by_an_older_berth() {
    let (h, probe) = host("permfix");
    let vol = "fixvol";
    let id = start_suid_container(&h, &probe, "oldbox", vol);
    h.ok(&["volume", "create", "spare"]);
    h.ok(&["system", "shutdown"]);
    loosen(&h.root);
    loosen(&h.run);
    assert!(
        !exposed(&h.root, &h.run).is_empty(),
        "the loosened root is exposed"
    );
    // Any verb that needs the daemon starts it; the start repairs the modes.
    h.ok(&["network", "ls"]);
    let exposed = exposed(&h.root, &h.run);
    assert!(exposed.is_empty(), "reachable by nobody: {exposed:#?}");
    let worked = attacks(&h, &id, vol);
    assert!(worked.is_empty(), "attacks that worked: {worked:#?}");
    uid_1000_works(&h, "oldbox", vol);

    h.ok(&["container", "rm", "-f", "oldbox"]);
    h.ok(&["volume", "rm", vol, "spare"]);
    h.ok(&["network", "rm", "bridge"]);
    let leaks = h.leaks(&[id]);
    assert!(leaks.is_empty(), "{leaks:#?}");
}
