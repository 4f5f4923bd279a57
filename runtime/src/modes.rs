//! The modes of an instance's state on disk, and their repair.
//!
//! A container's upper dir and a volume's `_data` are container filesystems: they hold
//! setuid binaries, and files owned by uids that also exist on the host. A host user who can
//! reach them by path runs such a binary as root or edits such a file, and a container's
//! `config.json` holds its environment's secrets. Containers never need those paths: the
//! overlay and the bind mounts are made by root (overlayfs then reads its layers with the
//! mounter's credentials), so a container running as any uid keeps working while no user
//! but root may walk into the instance's root. Hence, whatever the umask:
//!
//! - `<root>` is [`ROOT_DIR`] (Docker's data root since CVE-2021-41091) and everything berth
//!   makes in it is [`PRIVATE_DIR`] / [`PRIVATE_FILE`], except what a container itself sees
//!   through a mount: its upper dir and a volume's `_data` ([`CONTAINER_DIR`], the mode of its
//!   `/` and of the volume's mount point) and `hosts`, `hostname`, `resolv.conf`
//!   ([`CONTAINER_FILE`], read by any uid inside);
//! - `<run>` is [`RUN_DIR`]: searchable, so that the daemon's socket (0660) could be given to a
//!   group, not listable; its control sockets and pinned namespaces are in private dirs.
//!
//! Modes are set when a path is made (the umask can only narrow a mode, then an explicit
//! chmod sets it exactly: a path is never wider than its mode, even for an instant), and files
//! with secrets get theirs before their first byte. [`repair`] tightens a root made by an older
//! berth at daemon start.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `<root>`: root may enter, its group may pass through, others nothing.
pub const ROOT_DIR: u32 = 0o710;
/// `<run>`: others may pass through to the daemon socket, not list.
pub const RUN_DIR: u32 = 0o711;
/// Every other directory berth makes for itself.
pub const PRIVATE_DIR: u32 = 0o700;
/// Every file berth writes for itself (configs with secrets, state, logs, metadata).
pub const PRIVATE_FILE: u32 = 0o600;
/// A directory a container sees as its own: its upper dir (its `/`) and a fresh volume's data.
pub const CONTAINER_DIR: u32 = 0o755;
/// A file bind-mounted into a container and read there by any uid (hosts, resolv.conf).
pub const CONTAINER_FILE: u32 = 0o644;

/// The directories under `<root>` that berth and its parts make; [`repair`] closes them.
pub const ROOT_SUBDIRS: [&str; 6] = [
    "containers",
    "volumes",
    "images",
    "container-names",
    "builder",
    "netd",
];

/// Files a container dir holds that carry its config, environment or output.
const CONTAINER_FILES: [&str; 4] = ["config.json", "berth.json", "state.json", "log.json"];

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// Makes the directory `path` with exactly `mode` (its parent must exist). Returns `false`
/// when a directory was there already (left as it is).
pub fn mkdir(path: &Path, mode: u32) -> io::Result<bool> {
    match fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => set_mode(path, mode).map(|()| true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Makes `path` and its missing parents with `mode` each.
fn mkdir_all(path: &Path, mode: u32) -> io::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        mkdir_all(parent, mode)?;
    }
    mkdir(path, mode).map(|_| ())
}

/// Removes from an existing `path` the mode bits `max` does not allow (never adds one).
/// Returns the old and new modes when it changed something. Symlinks are left alone.
fn tighten(path: &Path, max: u32) -> io::Result<Option<(u32, u32)>> {
    let md = fs::symlink_metadata(path)?;
    if md.file_type().is_symlink() {
        return Ok(None);
    }
    let old = md.permissions().mode() & 0o7777;
    let new = old & max;
    if new == old {
        return Ok(None);
    }
    set_mode(path, new)?;
    Ok(Some((old, new)))
}

/// Makes the instance root with [`ROOT_DIR`] (missing parents as `mkdir -p` would: 0755) or
/// takes from an existing one what others could use to enter it.
pub fn ensure_root(root: &Path) -> io::Result<()> {
    ensure_top(root, ROOT_DIR)
}

/// [`ensure_root`] for the run dir, with [`RUN_DIR`].
pub fn ensure_run(run: &Path) -> io::Result<()> {
    ensure_top(run, RUN_DIR)
}

fn ensure_top(dir: &Path, mode: u32) -> io::Result<()> {
    if let Some(parent) = dir.parent()
        && !parent.as_os_str().is_empty()
    {
        fs::create_dir_all(parent)?;
    }
    if !mkdir(dir, mode)? {
        tighten(dir, mode)?;
    }
    Ok(())
}

/// Makes the directory `dir` below the instance `root` (made too, see [`ensure_root`]), with
/// every missing directory between them [`PRIVATE_DIR`].
pub fn root_dir(root: &Path, dir: &Path) -> io::Result<()> {
    private_below(root, ROOT_DIR, dir)
}

/// [`root_dir`] below the run dir (made with [`RUN_DIR`]).
pub fn run_dir(run: &Path, dir: &Path) -> io::Result<()> {
    private_below(run, RUN_DIR, dir)
}

/// Makes `dir` and the missing directories from `top` (included) down to it [`PRIVATE_DIR`],
/// for an area whose `top` lies inside the root already.
pub fn private_dir(top: &Path, dir: &Path) -> io::Result<()> {
    private_below(top, PRIVATE_DIR, dir)
}

/// Makes `dir` and the missing directories between it and `top` private, `top` with
/// `top_mode`; a `dir` outside `top` is made private with its missing parents.
fn private_below(top: &Path, top_mode: u32, dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let Ok(rel) = dir.strip_prefix(top) else {
        return mkdir_all(dir, PRIVATE_DIR);
    };
    ensure_top(top, top_mode)?;
    let mut p = top.to_path_buf();
    for c in rel.components() {
        p.push(c);
        mkdir(&p, PRIVATE_DIR)?;
    }
    Ok(())
}

/// Opens `path` for writing, created or truncated, with exactly `mode` before anything is
/// written (an existing file's wider mode is narrowed first). Never follows a symlink.
pub fn create_file(path: &Path, mode: u32) -> io::Result<File> {
    let f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    f.set_permissions(fs::Permissions::from_mode(mode))?;
    Ok(f)
}

/// Writes `bytes` as the whole of `path`, with `mode` (see [`create_file`]).
pub fn write_file(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    create_file(path, mode)?.write_all(bytes)
}

/// Writes `bytes` to a temp file next to `path` with `mode`, then renames it over `path`: a
/// reader sees the old or the new file whole, never a part, and never a wider mode.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    if let Err(e) = write_file(&tmp, bytes, mode) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, path)
}

/// What [`repair`] did.
#[derive(Debug, Default)]
pub struct Repair {
    /// Paths looked at.
    pub checked: usize,
    /// Paths whose mode was narrowed: path, old mode, new mode.
    pub tightened: Vec<(PathBuf, u32, u32)>,
    /// Paths that could not be checked or changed, with the reason.
    pub failed: Vec<(PathBuf, io::Error)>,
    pub took: Duration,
}

impl Repair {
    fn apply(&mut self, path: PathBuf, max: u32) {
        self.checked += 1;
        match tighten(&path, max) {
            Ok(Some((old, new))) => self.tightened.push((path, old, new)),
            Ok(None) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => self.failed.push((path, e)),
        }
    }
}

/// Narrows the modes of an instance made by an older berth to those above: `<root>`, `<run>`,
/// their fixed subdirectories, each container's dir and its config/state/log files, each
/// volume's dir and metadata. Only removes bits, never adds one (a stricter mode set by an
/// administrator stays), never follows a symlink, never looks inside a container's
/// filesystem or a volume's data. Cheap: a few stats per container and volume.
pub fn repair(root: &Path, run: &Path) -> Repair {
    let started = Instant::now();
    let mut r = Repair::default();
    r.apply(root.to_path_buf(), ROOT_DIR);
    for d in ROOT_SUBDIRS {
        r.apply(root.join(d), PRIVATE_DIR);
    }
    r.apply(root.join("daemon.log"), PRIVATE_FILE);
    if let Ok(rd) = fs::read_dir(root.join("containers")) {
        for e in rd.flatten() {
            let dir = e.path();
            r.apply(dir.clone(), PRIVATE_DIR);
            for f in CONTAINER_FILES {
                r.apply(dir.join(f), PRIVATE_FILE);
            }
        }
    }
    if let Ok(rd) = fs::read_dir(root.join("volumes")) {
        for e in rd.flatten() {
            let dir = e.path();
            r.apply(dir.clone(), PRIVATE_DIR);
            r.apply(dir.join("meta.json"), PRIVATE_FILE);
        }
    }
    r.apply(run.to_path_buf(), RUN_DIR);
    for d in ["c", "netns"] {
        r.apply(run.join(d), PRIVATE_DIR);
    }
    r.apply(run.join("berth.lock"), PRIVATE_FILE);
    r.took = started.elapsed();
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::symlink_metadata(p).expect("stat").permissions().mode() & 0o7777
    }

    /// Makes a container's dirs and files in `BERTH_MODES_DIR`; run by
    /// `modes_are_exact_whatever_the_umask` in a child process with its own umask (the umask
    /// is per process, and other tests run on this one's threads).
    #[test]
    #[ignore = "run by modes_are_exact_whatever_the_umask in a child with another umask"]
    fn lay_out_in_child() {
        let dir = PathBuf::from(std::env::var_os("BERTH_MODES_DIR").expect("BERTH_MODES_DIR"));
        let root = dir.join("a/root");
        root_dir(&root, &root.join("containers/x")).expect("dirs");
        mkdir(&root.join("containers/x/upper"), CONTAINER_DIR).expect("upper");
        write_file(&root.join("containers/x/hosts"), b"h", CONTAINER_FILE).expect("hosts");
        write_atomic(&root.join("containers/x/config.json"), b"{}", PRIVATE_FILE).expect("config");
    }

    #[test]
    fn modes_are_exact_whatever_the_umask() {
        use std::os::unix::process::CommandExt;
        for mask in [0o077, 0o000, 0o022] {
            let t = tempfile::tempdir().expect("tmp");
            let mut cmd = std::process::Command::new(std::env::current_exe().expect("exe"));
            cmd.args([
                "--ignored",
                "--exact",
                "modes::tests::lay_out_in_child",
                "--test-threads=1",
            ])
            .env("BERTH_MODES_DIR", t.path());
            // SAFETY: umask(2) is async-signal-safe and cannot fail.
            unsafe {
                cmd.pre_exec(move || {
                    libc::umask(mask);
                    Ok(())
                });
            }
            let out = cmd.output().expect("child");
            assert!(out.status.success(), "{out:?}");
            let root = t.path().join("a/root");
            let x = root.join("containers/x");
            assert_eq!(mode(&root), ROOT_DIR, "umask {mask:o}");
            assert_eq!(
                mode(&root.join("containers")),
                PRIVATE_DIR,
                "umask {mask:o}"
            );
            assert_eq!(mode(&x), PRIVATE_DIR, "umask {mask:o}");
            assert_eq!(mode(&x.join("upper")), CONTAINER_DIR, "umask {mask:o}");
            assert_eq!(mode(&x.join("hosts")), CONTAINER_FILE, "umask {mask:o}");
            assert_eq!(mode(&x.join("config.json")), PRIVATE_FILE, "umask {mask:o}");
            assert!(!x.join("config.tmp").exists());
        }
    }

    #[test]
    fn an_existing_wide_file_is_narrowed_before_it_is_written() {
        let t = tempfile::tempdir().expect("tmp");
        let p = t.path().join("config.json");
        fs::write(&p, "old").expect("write");
        set_mode(&p, 0o666).expect("chmod");
        let f = create_file(&p, PRIVATE_FILE).expect("open");
        assert_eq!(mode(&p), PRIVATE_FILE, "narrowed while still empty");
        assert_eq!(f.metadata().expect("md").len(), 0);
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&p, &link).expect("symlink");
        assert!(create_file(&link, PRIVATE_FILE).is_err(), "never follows");
    }

    #[test]
    fn repair_only_narrows_and_never_follows_or_descends() {
        let t = tempfile::tempdir().expect("tmp");
        let root = t.path().join("root");
        let run = t.path().join("run");
        let outside = t.path().join("user-dir");
        for d in [
            "containers/c1/upper/bin",
            "volumes/v1/_data",
            "images/l",
            "netd",
        ] {
            fs::create_dir_all(root.join(d)).expect("dir");
        }
        fs::create_dir_all(run.join("c/c1")).expect("run");
        fs::create_dir_all(&outside).expect("outside");
        fs::create_dir_all(root.join("volumes/bound")).expect("bound");
        std::os::unix::fs::symlink(&outside, root.join("volumes/bound/_data")).expect("link");
        for f in ["containers/c1/config.json", "volumes/v1/meta.json"] {
            fs::write(root.join(f), "{}").expect("file");
        }
        let walk = [
            root.clone(),
            root.join("containers"),
            root.join("containers/c1"),
            root.join("containers/c1/upper"),
            root.join("containers/c1/upper/bin"),
            root.join("volumes/v1/_data"),
            outside.clone(),
            run.clone(),
        ];
        for p in &walk {
            set_mode(p, 0o755).expect("loosen");
        }
        set_mode(&root.join("containers/c1/config.json"), 0o644).expect("loosen");
        set_mode(&root.join("netd"), 0o500).expect("strict");

        let r = repair(&root, &run);
        assert!(r.failed.is_empty(), "{:?}", r.failed);
        assert_eq!(mode(&root), ROOT_DIR);
        assert_eq!(mode(&root.join("containers")), PRIVATE_DIR);
        assert_eq!(mode(&root.join("containers/c1")), PRIVATE_DIR);
        assert_eq!(mode(&root.join("containers/c1/config.json")), PRIVATE_FILE);
        assert_eq!(mode(&root.join("volumes/v1")), PRIVATE_DIR);
        assert_eq!(mode(&run), RUN_DIR);
        assert_eq!(mode(&run.join("c")), PRIVATE_DIR);
        // A stricter mode stays; the container's own files and a bound dir are not touched.
        assert_eq!(mode(&root.join("netd")), 0o500);
        assert_eq!(mode(&root.join("containers/c1/upper")), 0o755);
        assert_eq!(mode(&root.join("containers/c1/upper/bin")), 0o755);
        assert_eq!(mode(&root.join("volumes/v1/_data")), 0o755);
        assert_eq!(mode(&outside), 0o755);
        let again = repair(&root, &run);
        assert!(again.tightened.is_empty(), "{:?}", again.tightened);
    }
}
