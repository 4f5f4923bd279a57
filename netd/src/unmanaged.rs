//! Keeping the host's network managers off berth's links.
//!
//! NetworkManager and systemd-networkd grab interfaces that appear (DHCP on them, or take them
//! down), which cuts containers off (systemd #28626, the Docker/podman reports of USERS.md
//! section 2). netd declares its bridges (`berth-` + 8 hex digits) and veth host ends (`vb` +
//! 10 hex digits) unmanaged, in the runtime (volatile) directories each manager reads:
//!
//! - a udev rule `udev/rules.d/90-berth-unmanaged.rules` setting `NM_UNMANAGED=1` (read by
//!   NetworkManager) and `ID_NET_MANAGED_BY=io.berth.netd` (networkd since v255 and
//!   NetworkManager leave a link whose manager is someone else); udev applies rules to new
//!   events, and netd's links are made after the rule exists;
//! - a NetworkManager snippet `NetworkManager/conf.d/90-berth-unmanaged.conf`: a `[device-…]`
//!   section with `managed=0` (the strongest of NetworkManager's settings) and, for older
//!   versions, `[keyfile] unmanaged-devices+=` (appended, so the host's own list stays);
//! - a systemd-networkd file `systemd/network/05-berth-unmanaged.network` with
//!   `[Link] Unmanaged=yes` (networkd sorts files of all directories by name and takes the
//!   first match, so a low number).
//!
//! The patterns are `?` globs, which all three understand (NetworkManager's
//! `interface-name:` knows only `*` and `?`), and match exactly berth's name shapes, so they
//! hold for every berth instance on the host and never for a host NIC (`vboxnet0` is not
//! `vb` + 10 characters). Files are written only when their content differs; then each
//! manager that runs is asked to re-read (`udevadm control --reload`, `nmcli general reload
//! conf`, `networkctl reload`), and only for the real `/run`, where they look.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::names::{BRIDGE_PREFIX, VETH_PREFIX};

/// The real runtime directory the managers read.
pub const RUN_DIR: &str = "/run";

/// The value of udev's `ID_NET_MANAGED_BY` on berth's links.
pub const MANAGED_BY: &str = "io.berth.netd";

/// Glob of berth's bridge names (`berth-` + 8 hex digits, see [`crate::names::bridge_name`]).
pub fn bridge_glob() -> String {
    format!("{BRIDGE_PREFIX}{}", "?".repeat(8))
}

/// Glob of berth's veth host-end names (`vb` + 10 hex digits, see [`crate::names::veth_name`]).
pub fn veth_glob() -> String {
    format!("{VETH_PREFIX}{}", "?".repeat(10))
}

/// One file netd writes, relative to the runtime directory, with its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclFile {
    /// Path under the runtime directory (`udev/rules.d/…`).
    pub rel: &'static str,
    /// Full content.
    pub text: String,
}

/// The three declarations, as written.
pub fn files() -> Vec<DeclFile> {
    let (b, v) = (bridge_glob(), veth_glob());
    let head = "# Written by berth-netd (volatile; rewritten when netd starts): berth's bridges and\n\
                # veth host ends are configured by berth, the host's network manager must leave them.\n";
    vec![
        DeclFile {
            rel: "udev/rules.d/90-berth-unmanaged.rules",
            text: format!(
                "{head}SUBSYSTEM==\"net\", KERNEL==\"{b}\", ENV{{NM_UNMANAGED}}=\"1\", ENV{{ID_NET_MANAGED_BY}}=\"{MANAGED_BY}\"\n\
                 SUBSYSTEM==\"net\", KERNEL==\"{v}\", ENV{{NM_UNMANAGED}}=\"1\", ENV{{ID_NET_MANAGED_BY}}=\"{MANAGED_BY}\"\n"
            ),
        },
        DeclFile {
            rel: "NetworkManager/conf.d/90-berth-unmanaged.conf",
            text: format!(
                "{head}[device-berth-unmanaged]\nmatch-device=interface-name:{b};interface-name:{v}\nmanaged=0\n\n\
                 [keyfile]\nunmanaged-devices+=interface-name:{b};interface-name:{v}\n"
            ),
        },
        DeclFile {
            rel: "systemd/network/05-berth-unmanaged.network",
            text: format!("{head}[Match]\nName={b} {v}\n\n[Link]\nUnmanaged=yes\n"),
        },
    ]
}

/// A declaration that could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}")]
pub struct DeclError {
    /// The file.
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Writes every declaration under `dir` whose content differs (new file renamed over the old,
/// so a manager never reads half of one). Returns the files that changed.
pub fn write_files(dir: &Path) -> Result<Vec<PathBuf>, DeclError> {
    let mut changed = Vec::new();
    for f in files() {
        let path = dir.join(f.rel);
        if std::fs::read_to_string(&path).is_ok_and(|cur| cur == f.text) {
            continue;
        }
        let err = |source| DeclError {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(err)?;
        }
        // Instances share the file: a temp name of this process and call, then an atomic
        // rename (the same content wins whichever rename comes last).
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = path.with_extension(format!("berth-tmp-{}-{n}", std::process::id()));
        std::fs::write(&tmp, &f.text).map_err(err)?;
        if let Err(e) = std::fs::rename(&tmp, &path) {
            let _ = std::fs::remove_file(&tmp);
            return Err(err(e));
        }
        changed.push(path);
    }
    Ok(changed)
}

/// Whether a process named `comm` (the kernel's 15-byte command name) runs.
fn running(comm: &[&str]) -> bool {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return false;
    };
    rd.flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
        .any(|c| comm.contains(&c.trim_end()))
}

/// Runs a reload command, waiting at most 5 s for it.
fn run_reload(cmd: &str, args: &[&str]) {
    let child = Command::new(cmd)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(err) => {
            tracing::warn!(%err, cmd, "cannot ask the network manager to reload");
            return;
        }
    };
    let end = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match child.try_wait() {
            Ok(Some(st)) if st.success() => {
                tracing::info!(
                    cmd,
                    ?args,
                    "network manager reloaded berth's unmanaged declaration"
                );
                return;
            }
            Ok(Some(st)) => {
                let mut msg = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut msg);
                }
                tracing::warn!(cmd, ?args, status = %st, stderr = %msg.trim(), "network manager reload failed");
                return;
            }
            Ok(None) if std::time::Instant::now() < end => {
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                tracing::warn!(cmd, ?args, "network manager reload did not finish in 5 s");
                return;
            }
        }
    }
}

/// Writes the declarations under `dir` and, when `dir` is the real `/run` and something
/// changed, asks each running manager to re-read them (blocking: call off the async threads).
/// Managers that do not run are left alone: they read the files when they start.
pub fn declare(dir: &Path) -> Result<Vec<PathBuf>, DeclError> {
    let changed = write_files(dir)?;
    if changed.is_empty() || dir != Path::new(RUN_DIR) {
        return Ok(changed);
    }
    let touched = |part: &str| changed.iter().any(|p| p.to_string_lossy().contains(part));
    if touched("/udev/") && running(&["systemd-udevd", "udevd"]) {
        run_reload("udevadm", &["control", "--reload"]);
    }
    if touched("/NetworkManager/") && running(&["NetworkManager"]) {
        run_reload("nmcli", &["general", "reload", "conf"]);
    }
    // The kernel cuts command names to 15 bytes: "systemd-network".
    if touched("/systemd/network/") && running(&["systemd-network", "systemd-networkd"]) {
        run_reload("networkctl", &["reload"]);
    }
    Ok(changed)
}

/// The default directory for a netd opened on the calling thread: `/run` when the thread is in
/// the initial network namespace (pid 1's), where udev, NetworkManager and networkd see links;
/// `None` elsewhere (a test's simulated host, whose links no host manager ever sees).
pub fn default_dir() -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let me = std::fs::metadata("/proc/thread-self/ns/net").ok()?;
    let init = std::fs::metadata("/proc/1/ns/net").ok()?;
    (me.dev() == init.dev() && me.ino() == init.ino()).then(|| PathBuf::from(RUN_DIR))
}

/// Shell-style match of `name` against `glob` with `*` and `?` (the subset NetworkManager's
/// `interface-name:` understands; udev and networkd understand more).
pub fn glob_match(glob: &str, name: &str) -> bool {
    fn go(g: &[u8], n: &[u8]) -> bool {
        match (g.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&g[1..], n) || (!n.is_empty() && go(g, &n[1..])),
            (Some(b'?'), Some(_)) => go(&g[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&g[1..], &n[1..]),
            _ => false,
        }
    }
    go(glob.as_bytes(), name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::{bridge_name, new_network_id, veth_name};

    #[test]
    fn globs_match_berths_names_and_no_host_nic() {
        for i in 0..50 {
            let id = new_network_id(&format!("n{i}"));
            let b = bridge_name(&id);
            let v = veth_name(&format!("c{i}"), &id);
            assert!(glob_match(&bridge_glob(), &b), "{b}");
            assert!(glob_match(&veth_glob(), &v), "{v}");
            assert!(!glob_match(&bridge_glob(), &v) && !glob_match(&veth_glob(), &b));
        }
        for host in [
            "eth0",
            "wlan0",
            "enp1s0",
            "vboxnet0",
            "virbr0",
            "docker0",
            "br-1234567890ab",
            "veth1234567",
            "berth",
            "berth-123",
            "vb123",
            "lo",
        ] {
            assert!(
                !glob_match(&bridge_glob(), host) && !glob_match(&veth_glob(), host),
                "{host}"
            );
        }
        assert!(glob_match("br-*", "br-x") && glob_match("*", "") && !glob_match("a?", "a"));
    }

    #[test]
    fn files_name_both_globs_and_are_written_once() {
        let d = tempfile::tempdir().expect("tempdir");
        let fs = files();
        assert_eq!(fs.len(), 3);
        for f in &fs {
            assert!(
                f.text.contains(&bridge_glob()) && f.text.contains(&veth_glob()),
                "{}",
                f.rel
            );
        }
        let first = write_files(d.path()).expect("write");
        assert_eq!(first.len(), 3);
        let udev = std::fs::read_to_string(d.path().join("udev/rules.d/90-berth-unmanaged.rules"))
            .expect("udev rule");
        assert!(udev.contains("ENV{NM_UNMANAGED}=\"1\""), "{udev}");
        assert!(udev.contains("KERNEL==\"berth-????????\""), "{udev}");
        let nm = std::fs::read_to_string(
            d.path()
                .join("NetworkManager/conf.d/90-berth-unmanaged.conf"),
        )
        .expect("NM conf");
        assert!(
            nm.contains("managed=0")
                && nm.contains(
                    "unmanaged-devices+=interface-name:berth-????????;interface-name:vb??????????"
                ),
            "{nm}"
        );
        let nd =
            std::fs::read_to_string(d.path().join("systemd/network/05-berth-unmanaged.network"))
                .expect("networkd");
        assert!(
            nd.contains("[Match]\nName=berth-???????? vb??????????\n")
                && nd.contains("[Link]\nUnmanaged=yes"),
            "{nd}"
        );
        // Idempotent: nothing rewritten, no temp file left.
        assert!(write_files(d.path()).expect("again").is_empty());
        // declare() outside /run writes but never asks a manager to reload.
        assert!(declare(d.path()).expect("declare").is_empty());
        let stray: Vec<_> = walk(d.path())
            .into_iter()
            .filter(|p| p.to_string_lossy().contains("berth-tmp"))
            .collect();
        assert!(stray.is_empty(), "{stray:?}");
        // A file someone edited is put back.
        std::fs::write(d.path().join(fs[2].rel), "[Match]\nName=*\n").expect("tamper");
        assert_eq!(write_files(d.path()).expect("repair").len(), 1);
    }

    fn walk(p: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
        out
    }
}
