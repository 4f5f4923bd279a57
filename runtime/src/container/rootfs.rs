//! The container's filesystem view, built inside its own mount namespace (so nothing leaks
//! onto the host even if berth dies half-way): private propagation, overlayfs or a bound
//! directory as root, the OCI mounts, /dev nodes, pivot_root, then the masked and read-only
//! paths and a read-only root.

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::{Mode, SFlag, makedev, mknod};
use oci_spec::runtime::Spec;

use super::mounts::{self, MountError};
use crate::inroot::{Follow, InRoot};

/// Errors building the container's filesystem.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("making the mount tree private")]
    Private(#[source] nix::Error),
    #[error("the image has no layers to mount")]
    NoLayers,
    #[error("mounting the overlay rootfs at {target} ({options})")]
    Overlay {
        target: PathBuf,
        options: String,
        #[source]
        source: nix::Error,
    },
    #[error("mounting {source_path} on {target} ({fstype})")]
    Mount {
        source_path: String,
        target: PathBuf,
        fstype: String,
        #[source]
        source: nix::Error,
    },
    #[error(transparent)]
    Prepare(#[from] MountError),
    #[error(transparent)]
    Seed(#[from] super::volumes::SeedError),
    #[error("creating device node {path}")]
    Device {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("creating {path}")]
    Link {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("pivot_root into {root}")]
    Pivot {
        root: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("setting sysctl {key}={value}")]
    Sysctl {
        key: String,
        value: String,
        #[source]
        source: io::Error,
    },
}

/// How the root filesystem is assembled.
#[derive(Debug, Clone)]
pub enum RootLayout {
    /// overlayfs: lower dirs bottom to top, upper and work dir, mounted at `target`.
    Overlay {
        lowers: Vec<PathBuf>,
        upper: PathBuf,
        work: PathBuf,
        target: PathBuf,
    },
    /// A directory bound onto itself.
    Dir(PathBuf),
}

impl RootLayout {
    /// Where the root ends up before pivot_root.
    pub fn target(&self) -> &Path {
        match self {
            RootLayout::Overlay { target, .. } => target,
            RootLayout::Dir(d) => d,
        }
    }
}

fn mnt(
    src: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), RootfsError> {
    mount(src, target, fstype, flags, data).map_err(|source| RootfsError::Mount {
        source_path: src.unwrap_or("none").to_string(),
        target: target.to_path_buf(),
        fstype: fstype.unwrap_or("bind").to_string(),
        source,
    })
}

/// Mounts the root (overlay or bind) at its target. The overlay options use paths relative
/// to the container directory (the caller's cwd) to stay well under the page-size limit.
fn mount_root(layout: &RootLayout) -> Result<(), RootfsError> {
    match layout {
        RootLayout::Overlay {
            lowers,
            upper,
            work,
            target,
        } => {
            if lowers.is_empty() {
                return Err(RootfsError::NoLayers);
            }
            let lower: Vec<String> = lowers
                .iter()
                .rev()
                .map(|p| p.display().to_string())
                .collect();
            let options = format!(
                "lowerdir={},upperdir={},workdir={}",
                lower.join(":"),
                upper.display(),
                work.display()
            );
            mount(
                Some("overlay"),
                target,
                Some("overlay"),
                MsFlags::empty(),
                Some(options.as_str()),
            )
            .map_err(|source| RootfsError::Overlay {
                target: target.clone(),
                options,
                source,
            })
        }
        RootLayout::Dir(d) => mnt(
            Some(&d.display().to_string()),
            d,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        ),
    }
}

/// Makes every mount private and mounts the root (overlay) at its target, in the caller's own
/// mount namespace: what an external OCI runtime needs before it runs the bundle. A plain
/// directory needs no mount (the runtime binds it).
pub fn mount_root_private(layout: &RootLayout) -> Result<(), RootfsError> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(RootfsError::Private)?;
    match layout {
        RootLayout::Overlay { .. } => mount_root(layout),
        RootLayout::Dir(_) => Ok(()),
    }
}

fn make_devices(dev: &Path) -> Result<(), RootfsError> {
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        let p = dev.join(name);
        let _ = fs::remove_file(&p);
        mknod(
            &p,
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            makedev(major, minor),
        )
        .map_err(|source| RootfsError::Device {
            path: p.clone(),
            source,
        })?;
        // mknod applies the umask (022 here): make the nodes world-writable as every engine
        // does, or a non-root process (apt's _apt user) cannot even write to /dev/null.
        nix::sys::stat::fchmodat(
            nix::fcntl::AT_FDCWD,
            &p,
            Mode::from_bits_truncate(0o666),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .map_err(|source| RootfsError::Device { path: p, source })?;
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
        ("core", "/proc/kcore"),
    ] {
        let p = dev.join(name);
        let _ = fs::remove_file(&p);
        symlink(target, &p).map_err(|source| RootfsError::Link { path: p, source })?;
    }
    Ok(())
}

/// A mount target opened inside the rootfs (`O_PATH`), named by its `/proc/self/fd` link:
/// mount(2) acts on exactly what was opened.
struct MountPoint {
    _fd: std::os::fd::OwnedFd,
    path: PathBuf,
}

/// Creates (a directory, or an empty file when `file`) and opens the mount target `target`
/// inside `tree`, links on the way followed inside the rootfs.
fn mount_point(tree: &InRoot, target: &Path, file: bool) -> Result<MountPoint, RootfsError> {
    // Directories opened before the last mount may be the ones it covered.
    tree.forget();
    let t = target.as_os_str().as_bytes();
    let err = |source| MountError::MountPoint {
        path: target.to_path_buf(),
        source,
    };
    if file {
        tree.ensure_file(t).map_err(err)?;
    } else {
        tree.mkdir_all(t, 0o755).map_err(err)?;
    }
    let fd = tree.open_path(t).map_err(err)?;
    let path = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    Ok(MountPoint { _fd: fd, path })
}

/// Everything up to and including pivot_root. `volumes` lists the host dirs of named volumes,
/// filled from the image on first use; `console` is the pty slave to show as /dev/console.
pub fn mount_all(
    spec: &Spec,
    layout: &RootLayout,
    volumes: &[PathBuf],
    console: Option<&Path>,
) -> Result<(), RootfsError> {
    root_propagation(spec, layout)?;
    mount_root(layout)?;
    let root = layout.target().to_path_buf();
    // Mount targets resolve inside the rootfs (an image's or a shared volume's links are the
    // container's paths) and are mounted through the opened descriptor, so nothing swapped
    // in between can move a mount onto a host path.
    let tree = InRoot::open(&root, Follow::InRoot).map_err(|source| RootfsError::Link {
        path: root.clone(),
        source,
    })?;
    let mut dev_mounted = false;
    for m in spec.mounts().as_deref().unwrap_or_default() {
        let target = m.destination();
        let opts = m.options().clone().unwrap_or_default();
        let (flags, prop, data) = mounts::parse_options(&opts);
        let fstype = m.typ().clone().unwrap_or_else(|| "bind".into());
        let is_bind = fstype == "bind" || flags.contains(MsFlags::MS_BIND);
        let mut file = false;
        if is_bind {
            let mut src = m.source().clone().unwrap_or_default();
            // `volume.subpath`: the directory resolved inside the volume now, mounted through
            // the descriptor (a link in the volume resolves within it, `..` stops at its top).
            let _sub_fd = match opts
                .iter()
                .find_map(|o| o.strip_prefix(super::spec::SUBPATH))
            {
                Some(sub) => {
                    let fd = InRoot::open(&src, Follow::InRoot)
                        .and_then(|vol| vol.open_path(sub.as_bytes()))
                        .map_err(|source| MountError::NoSource {
                            path: src.join(sub),
                            source,
                        })?;
                    src = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
                    Some(fd)
                }
                None => None,
            };
            let md = fs::metadata(&src).map_err(|source| MountError::NoSource {
                path: src.clone(),
                source,
            })?;
            file = !md.is_dir();
            // Seeded before the mount point is made: a path the image lacks copies nothing,
            // and the volume keeps its own owner and mode (a tmpfs volume's `uid`/`mode`), as
            // with Docker; one the image has gives its content, owner and mode.
            if volumes.contains(&src) && !opts.iter().any(|o| o == super::spec::NOCOPY) {
                super::volumes::seed(&src, &root, target)?;
            }
            let point = mount_point(&tree, target, file)?;
            let src_s = src.display().to_string();
            mnt(
                Some(&src_s),
                &point.path,
                None,
                MsFlags::MS_BIND | (flags & MsFlags::MS_REC),
                None,
            )?;
            let rest = flags & !(MsFlags::MS_BIND | MsFlags::MS_REC);
            if !rest.is_empty() {
                // The new mount is on top now: open it again.
                let top = mount_point(&tree, target, file)?;
                mnt(
                    None,
                    &top.path,
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REMOUNT | rest,
                    None,
                )?;
            }
            if opts.iter().any(|o| o == super::mounts::RRO) {
                let top = mount_point(&tree, target, file)?;
                super::mounts::read_only_recursively(&top.path).map_err(|source| {
                    MountError::ReadOnlyRecursive {
                        path: target.to_path_buf(),
                        source,
                    }
                })?;
            }
        } else {
            let point = mount_point(&tree, target, false)?;
            let src = m
                .source()
                .as_ref()
                .map(|s| s.display().to_string())
                .unwrap_or_else(|| fstype.clone());
            let data = (!data.is_empty()).then_some(data.as_str());
            mnt(Some(&src), &point.path, Some(&fstype), flags, data)?;
            if target == Path::new("/dev") {
                dev_mounted = true;
                let top = mount_point(&tree, target, false)?;
                make_devices(&top.path)?;
            }
        }
        if !prop.is_empty() {
            let top = mount_point(&tree, target, file)?;
            mnt(None, &top.path, None, prop, None)?;
        }
    }
    if let (Some(console), true) = (console, dev_mounted) {
        let point = mount_point(&tree, Path::new("/dev/console"), true)?;
        mnt(
            Some(&console.display().to_string()),
            &point.path,
            None,
            MsFlags::MS_BIND,
            None,
        )?;
    }
    pivot(&root)
}

/// The propagation of the container's mount namespace (`linux.rootfsPropagation`): private
/// by default; with `rslave` a slave of the host's mounts (a bind with slave propagation sees
/// what the host mounts below it); with `rshared` the host's peer groups are kept (a bind
/// with shared propagation shares mounts both ways) and only the mount the root is made on
/// turns private, so that nothing the container setup mounts reaches the host.
fn root_propagation(spec: &Spec, layout: &RootLayout) -> Result<(), RootfsError> {
    let mode = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().clone());
    let flags = match mode.as_deref() {
        Some("rshared") | Some("shared") => {
            let target = std::env::current_dir()
                .map(|cwd| cwd.join(layout.target()))
                .map_err(|source| RootfsError::Link {
                    path: layout.target().to_path_buf(),
                    source,
                })?;
            let parent = mount_point_of(&target);
            return mount(
                None::<&str>,
                &parent,
                None::<&str>,
                MsFlags::MS_PRIVATE,
                None::<&str>,
            )
            .map_err(RootfsError::Private);
        }
        Some("rslave") | Some("slave") => MsFlags::MS_REC | MsFlags::MS_SLAVE,
        _ => MsFlags::MS_REC | MsFlags::MS_PRIVATE,
    };
    mount(None::<&str>, "/", None::<&str>, flags, None::<&str>).map_err(RootfsError::Private)
}

/// The mount point of the mount `path` lies on (the longest mount point that is a prefix of
/// it, in this process's mount table).
fn mount_point_of(path: &Path) -> PathBuf {
    let table = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    table
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mountinfo)
        .filter(|mp| path.starts_with(mp))
        .max_by_key(|mp| mp.as_os_str().len())
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// The mount point of the mount `path` lies on, and whether that mount is shared (in a peer
/// group), from this process's mount table: a bind with shared propagation needs it, as
/// Docker checks.
pub fn mount_sharing(path: &Path) -> (PathBuf, bool) {
    let table = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    table
        .lines()
        .filter_map(|l| {
            let (pre, _) = l.split_once(" - ")?;
            let fields: Vec<&str> = pre.split(' ').collect();
            let mp = unescape_mountinfo(fields.get(4)?);
            let shared = fields.iter().skip(6).any(|f| f.starts_with("shared:"));
            path.starts_with(&mp).then_some((mp, shared))
        })
        .max_by_key(|(mp, _)| mp.as_os_str().len())
        .unwrap_or_else(|| (PathBuf::from("/"), false))
}

/// A mountinfo path with its octal escapes (`\040` for a space) decoded.
fn unescape_mountinfo(s: &str) -> PathBuf {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    PathBuf::from(std::ffi::OsStr::from_bytes(&out))
}

fn pivot(root: &Path) -> Result<(), RootfsError> {
    let err = |source| RootfsError::Pivot {
        root: root.to_path_buf(),
        source,
    };
    // The old root, held open: after the pivot "." names the new root (a path lookup of "."
    // crosses no mount), and the slave change below must not reach the new root's binds
    // (one with shared propagation stays the host's peer).
    let old = nix::fcntl::open(
        "/",
        nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(err)?;
    nix::unistd::chdir(root).map_err(err)?;
    nix::unistd::pivot_root(".", ".").map_err(err)?;
    // The old root now sits on top of the new one: make it a slave so the detach cannot
    // propagate anywhere, then drop it.
    nix::unistd::fchdir(&old).map_err(err)?;
    drop(old);
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(err)?;
    umount2(".", MntFlags::MNT_DETACH).map_err(err)?;
    nix::unistd::chdir("/").map_err(err)?;
    Ok(())
}

/// After pivot_root: sysctls, masked and read-only paths, read-only root.
pub fn finish(spec: &Spec) -> Result<(), RootfsError> {
    let linux = spec.linux().as_ref();
    if let Some(sysctls) = linux.and_then(|l| l.sysctl().as_ref()) {
        for (key, value) in sysctls {
            let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
            fs::write(&path, value).map_err(|source| RootfsError::Sysctl {
                key: key.clone(),
                value: value.clone(),
                source,
            })?;
        }
    }
    for p in linux
        .and_then(|l| l.masked_paths().as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let path = Path::new(p);
        match fs::metadata(path) {
            Ok(md) if md.is_dir() => mnt(
                Some("tmpfs"),
                path,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                Some("size=0"),
            )?,
            Ok(_) => mnt(Some("/dev/null"), path, None, MsFlags::MS_BIND, None)?,
            Err(_) => {}
        }
    }
    for p in linux
        .and_then(|l| l.readonly_paths().as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let path = Path::new(p);
        if !path.exists() {
            continue;
        }
        mnt(
            Some(p),
            path,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )?;
        mnt(
            None,
            path,
            None,
            MsFlags::MS_BIND
                | MsFlags::MS_REMOUNT
                | MsFlags::MS_RDONLY
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV
                | MsFlags::MS_NOEXEC,
            None,
        )?;
    }
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        mnt(
            None,
            Path::new("/"),
            None,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None,
        )?;
    }
    Ok(())
}
