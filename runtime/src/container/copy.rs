//! `cp` between the host and a container, symlink-safe in both directions. Container paths
//! are resolved by a fresh helper process whose root *is* the container's root (it joins the
//! running container's mount namespace, or mounts the stopped container's rootfs in a private
//! namespace and chroots), so a symlink inside the container can never point at the host; the
//! helper writes through [`crate::inroot`] from that root (links followed as the container
//! sees them). On the host the stream the helper sent is extracted through
//! [`crate::inroot`] with [`Follow::Never`]: no link that came from the container is followed.
//!
//! Destinations follow `docker cp`: an existing directory receives the source under its own
//! name; a path that does not exist (in an existing directory) is created with the source's
//! content under that name; an existing file is overwritten.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};

use super::config::RootfsSource;
use super::init::chain;
use super::namespaces;
use super::record::Record;
use super::state::{State, Status};
use crate::image::unpack::{self, Extract, Owners, Whiteouts};
use crate::inroot::{Follow, InRoot};

/// Errors copying files in or out of a container.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Record(#[from] super::record::RecordError),
    #[error(transparent)]
    State(#[from] super::state::StateError),
    #[error(transparent)]
    Namespace(#[from] namespaces::NamespaceError),
    #[error("entering the container's filesystem ({what})")]
    Enter {
        what: &'static str,
        #[source]
        source: nix::Error,
    },
    #[error("{path} in the container")]
    ContainerPath {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} on the host")]
    HostPath {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("running the copy helper {exe}")]
    Helper {
        exe: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the copy helper failed: {message}")]
    HelperFailed { message: String },
}

/// Which way the helper streams a tar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Container -> stdout.
    Out,
    /// stdin -> container.
    In,
    /// The path's [`PathStat`] as JSON -> stdout.
    Stat,
}

impl Direction {
    /// The helper's argument.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Out => "out",
            Direction::In => "in",
            Direction::Stat => "stat",
        }
    }
}

fn enter(rec: &Record, snapshot: bool) -> Result<(), CopyError> {
    let st = State::load(&rec.state_path())?;
    let alive = !snapshot
        && st.status == Status::Running
        && st.pid > 0
        // SAFETY: signal 0 only probes.
        && unsafe { libc::kill(st.pid, 0) } == 0;
    if alive {
        let path = PathBuf::from(format!("/proc/{}/ns/mnt", st.pid));
        let fd = namespaces::open_ns(&path)?;
        namespaces::join(&fd, CloneFlags::CLONE_NEWNS, &path)?;
        return Ok(());
    }
    let err = |what| move |source| CopyError::Enter { what, source };
    unshare(CloneFlags::CLONE_NEWNS).map_err(err("unshare"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(err("private mounts"))?;
    let root = match &rec.config.rootfs {
        RootfsSource::Layers(lowers) => {
            nix::unistd::chdir(&rec.dir).map_err(err("container dir"))?;
            let lower: Vec<String> = lowers
                .iter()
                .rev()
                .map(|p| p.display().to_string())
                .collect();
            // A snapshot takes the upper dir as the top read-only layer (its whiteouts still
            // hide files): safe even while the container has it mounted as its upper.
            let opts = if snapshot {
                format!("lowerdir=upper:{}", lower.join(":"))
            } else {
                format!("lowerdir={},upperdir=upper,workdir=work", lower.join(":"))
            };
            mount(
                Some("overlay"),
                "rootfs",
                Some("overlay"),
                MsFlags::empty(),
                Some(opts.as_str()),
            )
            .map_err(err("overlay"))?;
            rec.dir.join("rootfs")
        }
        RootfsSource::Dir(d) => d.clone(),
    };
    nix::unistd::chroot(&root).map_err(err("chroot"))?;
    nix::unistd::chdir("/").map_err(err("chdir"))?;
    Ok(())
}

/// The helper's `main` (`berth copy-helper DIR out|in PATH`): streams a tar of PATH to stdout,
/// or unpacks stdin into the directory PATH, inside the container's root.
pub fn helper_main(dir: &Path, dir_arg: &str, path: &Path) -> i32 {
    let res = Record::load(dir).map_err(CopyError::from).and_then(|rec| {
        enter(&rec, dir_arg == "export")?;
        match dir_arg {
            "out" => tar_out(path, io::stdout().lock()),
            "export" => export_root(io::stdout().lock()),
            "stat" => stat_out(path, io::stdout().lock()),
            _ => tar_in(
                io::stdin(),
                path,
                std::env::var_os(TOP_ENV).map(OsString::into_vec),
            ),
        }
    });
    match res {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{}", chain(&e));
            1
        }
    }
}

fn name_of(path: &Path) -> PathBuf {
    path.file_name()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn tar_out<W: Write>(path: &Path, w: W) -> Result<(), CopyError> {
    let cerr = |source| CopyError::ContainerPath {
        path: path.to_path_buf(),
        source,
    };
    let mut b = tar::Builder::new(w);
    append(&mut b, path).map_err(cerr)?;
    b.into_inner().map_err(cerr)?.flush().map_err(cerr)
}

/// Appends `path` under its own name, without following symlinks. A single regular file is
/// read first, so that files whose size the kernel reports as 0 (/proc) come out whole.
fn append<W: Write>(b: &mut tar::Builder<W>, path: &Path) -> io::Result<()> {
    b.follow_symlinks(false);
    let md = fs::symlink_metadata(path)?;
    if md.is_dir() {
        b.append_dir_all(name_of(path), path)
    } else if md.is_file() {
        let data = fs::read(path)?;
        let mut h = tar::Header::new_gnu();
        h.set_metadata(&md);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append_data(&mut h, name_of(path), &data[..])
    } else {
        b.append_path_with_name(path, name_of(path))
    }
}

/// The whole root filesystem (without volumes or the runtime mounts), as `docker export`.
fn export_root<W: Write>(w: W) -> Result<(), CopyError> {
    let cerr = |source| CopyError::ContainerPath {
        path: PathBuf::from("/"),
        source,
    };
    let mut b = tar::Builder::new(w);
    b.follow_symlinks(false);
    for entry in fs::read_dir("/").map_err(cerr)? {
        let entry = entry.map_err(cerr)?;
        let name = PathBuf::from(entry.file_name());
        let path = Path::new("/").join(&name);
        if entry.file_type().map_err(cerr)?.is_dir() {
            b.append_dir_all(&name, &path).map_err(cerr)?;
        } else {
            b.append_path_with_name(&path, &name).map_err(cerr)?;
        }
    }
    b.into_inner().map_err(cerr)?.flush().map_err(cerr)
}

/// The helper's environment variable naming the top entry of the stream it receives (the
/// host path's name), so a destination that does not exist can take its place.
const TOP_ENV: &str = "BERTH_CP_TOP";

/// Where a stream whose top entry is `top` (`None`: the stream holds a directory's children)
/// lands for the destination `dest` inside `root`: Docker's rules (see the module doc).
fn destination(root: &InRoot, dest: &Path, top: Option<Vec<u8>>) -> io::Result<Extract> {
    let d = dest.as_os_str().as_bytes();
    let mut opts = Extract {
        whiteouts: Whiteouts::Keep,
        owners: Owners::Keep,
        into: d.to_vec(),
        rename_top: None,
        keep_kinds: false,
    };
    if root.is_dir(d) {
        return Ok(opts);
    }
    let (Some(parent), Some(name)) = (dest.parent(), dest.file_name()) else {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    };
    let parent = parent.as_os_str().as_bytes();
    if !root.is_dir(parent) {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "no directory {} to create it in",
                String::from_utf8_lossy(parent)
            ),
        ));
    }
    match top {
        Some(top) => {
            opts.into = parent.to_vec();
            opts.rename_top = Some((top, name.as_bytes().to_vec()));
        }
        // The children of a root: into a new directory of that name.
        None => {
            root.mkdir_all(d, 0o755)?;
        }
    }
    Ok(opts)
}

/// The name a path's entry has in the stream ([`name_of`]), `None` for `/` (children only).
fn top_of(path: &Path) -> Option<Vec<u8>> {
    path.file_name().map(|n| n.as_bytes().to_vec())
}

fn tar_in<R: io::Read>(r: R, dest: &Path, top: Option<Vec<u8>>) -> Result<(), CopyError> {
    let cerr = |source| CopyError::ContainerPath {
        path: dest.to_path_buf(),
        source,
    };
    // The helper's root is the container's: links resolve as the container sees them.
    let root = InRoot::open(Path::new("/"), Follow::InRoot).map_err(cerr)?;
    let mut opts = destination(&root, dest, top).map_err(cerr)?;
    // Files copied in belong to the container's root user, as with docker cp, unless the
    // caller keeps the archive's owners (`docker cp -a`).
    opts.owners = if std::env::var_os(KEEP_OWNERS_ENV).is_some() {
        Owners::Keep
    } else {
        Owners::Set(0, 0)
    };
    opts.keep_kinds = std::env::var_os(KEEP_KINDS_ENV).is_some();
    unpack::unpack_tar_into(r, &root, &opts)
        .map(drop)
        .map_err(|e| cerr(io::Error::other(chain(&e))))
}

/// Copies `cpath` out of the container to `host` (into it when it is a directory, else
/// created or overwritten under that name).
pub fn copy_out(shim_exe: &Path, rec: &Record, cpath: &Path, host: &Path) -> Result<(), CopyError> {
    let herr = |source| CopyError::HostPath {
        path: host.to_path_buf(),
        source,
    };
    // The user names the destination: its own links are theirs. What comes from the
    // container is extracted below it without following any link it carries.
    let (base, rel) = if host.is_dir() {
        (host.to_path_buf(), PathBuf::new())
    } else {
        let parent = match host.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = host
            .file_name()
            .map(PathBuf::from)
            .ok_or_else(|| herr(io::Error::from_raw_os_error(libc::EINVAL)))?;
        (parent, name)
    };
    let root = InRoot::open(&base, Follow::Never).map_err(herr)?;
    let opts = destination(&root, &rel, top_of(cpath)).map_err(herr)?;
    let opts = Extract {
        owners: Owners::Caller,
        ..opts
    };
    let mut child = helper(
        shim_exe,
        rec,
        Direction::Out,
        cpath,
        None,
        PutOptions::default(),
    )?;
    let out = child.stdout.take().ok_or_else(|| CopyError::HelperFailed {
        message: "no output pipe".into(),
    })?;
    let unpacked = unpack::unpack_tar_into(out, &root, &opts)
        .map(drop)
        .map_err(|e| herr(io::Error::other(chain(&e))));
    finish(shim_exe, child)?;
    unpacked
}

/// Writes the container's flattened root filesystem as a tar to `out`.
pub fn export(shim_exe: &Path, rec: &Record, out: &mut dyn Write) -> Result<(), CopyError> {
    let child = Command::new(shim_exe)
        .arg("copy-helper")
        .arg(&rec.dir)
        .arg("export")
        .arg("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| CopyError::Helper {
            exe: shim_exe.to_path_buf(),
            source,
        })?;
    drain_to(shim_exe, child, out)
}

/// Copies the host path `host` to `cdest` in the container (into it when it is a directory,
/// else created or overwritten under that name).
pub fn copy_in(shim_exe: &Path, rec: &Record, host: &Path, cdest: &Path) -> Result<(), CopyError> {
    let mut child = helper(
        shim_exe,
        rec,
        Direction::In,
        cdest,
        top_of(host),
        PutOptions::default(),
    )?;
    let input = child.stdin.take().ok_or_else(|| CopyError::HelperFailed {
        message: "no input pipe".into(),
    })?;
    let sent = tar_host(host, input);
    let done = finish(shim_exe, child);
    done?;
    sent
}

/// Copies host entries into the container in one stream, each `(host path, name)` under its
/// name relative to the container directory `cdest` (missing parent directories are made):
/// files and links as such, a directory as one entry without its content. One helper for a
/// whole batch of changed files; an entry gone from the host meanwhile is skipped.
pub fn copy_in_entries(
    shim_exe: &Path,
    rec: &Record,
    entries: &[(PathBuf, PathBuf)],
    cdest: &Path,
) -> Result<(), CopyError> {
    let mut child = helper(
        shim_exe,
        rec,
        Direction::In,
        cdest,
        None,
        PutOptions::default(),
    )?;
    let input = child.stdin.take().ok_or_else(|| CopyError::HelperFailed {
        message: "no input pipe".into(),
    })?;
    let sent = tar_entries(entries, input);
    let done = finish(shim_exe, child);
    done?;
    sent
}

fn tar_entries<W: Write>(entries: &[(PathBuf, PathBuf)], w: W) -> Result<(), CopyError> {
    let herr = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CopyError::HostPath { path, source }
    };
    let mut b = tar::Builder::new(w);
    b.follow_symlinks(false);
    for (path, name) in entries {
        let md = match fs::symlink_metadata(path) {
            Ok(md) => md,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(herr(path)(e)),
        };
        if md.is_file() {
            let data = match fs::read(path) {
                Ok(d) => d,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(herr(path)(e)),
            };
            let mut h = tar::Header::new_gnu();
            h.set_metadata(&md);
            h.set_size(data.len() as u64);
            h.set_cksum();
            b.append_data(&mut h, name, &data[..]).map_err(herr(path))?;
        } else {
            b.append_path_with_name(path, name).map_err(herr(path))?;
        }
    }
    let end = Path::new("-");
    b.into_inner()
        .map_err(herr(end))?
        .flush()
        .map_err(herr(end))
}

fn tar_host<W: Write>(path: &Path, w: W) -> Result<(), CopyError> {
    let herr = |source| CopyError::HostPath {
        path: path.to_path_buf(),
        source,
    };
    let mut b = tar::Builder::new(w);
    append(&mut b, path).map_err(herr)?;
    b.into_inner().map_err(herr)?.flush().map_err(herr)
}

/// The helper's environment variable asking it to keep the owners the archive names.
const KEEP_OWNERS_ENV: &str = "BERTH_CP_KEEP_OWNERS";

/// The helper's environment variable asking it never to replace a directory with a
/// non-directory or the reverse.
const KEEP_KINDS_ENV: &str = "BERTH_CP_KEEP_KINDS";

/// How [`archive_in`] unpacks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PutOptions {
    /// Keep the owners the archive names (`docker cp -a`); else the container's root's.
    pub keep_owners: bool,
    /// Refuse to replace a directory with a non-directory or the reverse.
    pub keep_kinds: bool,
}

/// What a path in a container is, as Docker's archive routes describe it: its own entry
/// (a symlink is not followed), with the link's target when it is one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PathStat {
    /// The last component of the path (`/` for the root).
    pub name: String,
    pub size: u64,
    /// `st_mode`: the type and permission bits.
    pub mode: u32,
    /// Modification time, seconds and nanoseconds since the epoch.
    pub mtime: i64,
    pub mtime_nsec: i64,
    /// A symlink's target, absolute and resolved in the container; empty otherwise.
    pub link_target: String,
}

/// Writes the stat of `path` as JSON (`null` when it does not exist).
fn stat_out<W: Write>(path: &Path, mut w: W) -> Result<(), CopyError> {
    use std::os::unix::fs::MetadataExt;
    let cerr = |source| CopyError::ContainerPath {
        path: path.to_path_buf(),
        source,
    };
    let stat = match fs::symlink_metadata(path) {
        Ok(md) => Some(PathStat {
            name: path
                .file_name()
                .map_or_else(|| "/".to_string(), |n| n.to_string_lossy().into_owned()),
            size: md.size(),
            mode: md.mode(),
            mtime: md.mtime(),
            mtime_nsec: md.mtime_nsec(),
            // Resolved as Docker's clients want it (absolute, every link followed), here
            // where `/` is the container's root; a dangling link names its target as written,
            // made absolute against the link's directory.
            link_target: if md.file_type().is_symlink() {
                fs::canonicalize(path)
                    .or_else(|_| {
                        fs::read_link(path).map(|t| path.parent().unwrap_or(Path::new("/")).join(t))
                    })
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default()
            } else {
                String::new()
            },
        }),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => None,
        Err(e) => return Err(cerr(e)),
    };
    serde_json::to_writer(&mut w, &stat).map_err(|e| cerr(io::Error::other(e)))?;
    w.flush().map_err(cerr)
}

/// The stat of `cpath` in the container (`None`: no such path), resolved in its root.
pub fn path_stat(
    shim_exe: &Path,
    rec: &Record,
    cpath: &Path,
) -> Result<Option<PathStat>, CopyError> {
    let child = helper(
        shim_exe,
        rec,
        Direction::Stat,
        cpath,
        None,
        PutOptions::default(),
    )?;
    let out = child
        .wait_with_output()
        .map_err(|source| CopyError::Helper {
            exe: shim_exe.to_path_buf(),
            source,
        })?;
    if !out.status.success() {
        return Err(CopyError::HelperFailed {
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    serde_json::from_slice(&out.stdout).map_err(|e| CopyError::HelperFailed {
        message: format!("bad stat answer: {e}"),
    })
}

/// Writes a tar of `cpath` (under its own name, links not followed) to `out`: Docker's
/// `GET /containers/{id}/archive`.
pub fn archive_out(
    shim_exe: &Path,
    rec: &Record,
    cpath: &Path,
    out: &mut dyn Write,
) -> Result<(), CopyError> {
    let child = helper(
        shim_exe,
        rec,
        Direction::Out,
        cpath,
        None,
        PutOptions::default(),
    )?;
    drain_to(shim_exe, child, out)
}

/// Unpacks the tar `input` into the container directory `cdir`, every path resolved inside
/// the container's root: Docker's `PUT /containers/{id}/archive`.
pub fn archive_in(
    shim_exe: &Path,
    rec: &Record,
    input: &mut dyn io::Read,
    cdir: &Path,
    opts: PutOptions,
) -> Result<(), CopyError> {
    let mut child = helper(shim_exe, rec, Direction::In, cdir, None, opts)?;
    let mut pipe = child.stdin.take().ok_or_else(|| CopyError::HelperFailed {
        message: "no input pipe".into(),
    })?;
    let sent = io::copy(input, &mut pipe).map_err(|source| CopyError::HostPath {
        path: PathBuf::from("-"),
        source,
    });
    drop(pipe);
    finish(shim_exe, child)?;
    sent.map(drop)
}

fn helper(
    exe: &Path,
    rec: &Record,
    d: Direction,
    path: &Path,
    top: Option<Vec<u8>>,
    put: PutOptions,
) -> Result<std::process::Child, CopyError> {
    let mut cmd = Command::new(exe);
    cmd.env_remove(TOP_ENV)
        .env_remove(KEEP_OWNERS_ENV)
        .env_remove(KEEP_KINDS_ENV);
    if let Some(top) = top {
        cmd.env(TOP_ENV, OsString::from_vec(top));
    }
    if put.keep_owners {
        cmd.env(KEEP_OWNERS_ENV, "1");
    }
    if put.keep_kinds {
        cmd.env(KEEP_KINDS_ENV, "1");
    }
    cmd.arg("copy-helper")
        .arg(&rec.dir)
        .arg(d.as_str())
        .arg(path)
        .stdin(if d == Direction::In {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(if d != Direction::In {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| CopyError::Helper {
            exe: exe.to_path_buf(),
            source,
        })
}

fn finish(exe: &Path, child: std::process::Child) -> Result<(), CopyError> {
    let out = child
        .wait_with_output()
        .map_err(|source| CopyError::Helper {
            exe: exe.to_path_buf(),
            source,
        })?;
    if !out.status.success() {
        return Err(CopyError::HelperFailed {
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// Copies the helper's output into `out`, then reaps it (its error, if any, before the copy's).
fn drain_to(
    shim_exe: &Path,
    mut child: std::process::Child,
    out: &mut dyn io::Write,
) -> Result<(), CopyError> {
    let mut pipe = child.stdout.take().ok_or_else(|| CopyError::HelperFailed {
        message: "no output pipe".into(),
    })?;
    let copied = io::copy(&mut pipe, out).map_err(|source| CopyError::HostPath {
        path: PathBuf::from("-"),
        source,
    });
    drop(pipe);
    finish(shim_exe, child)?;
    copied.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_stream_under_their_relative_names_and_skip_vanished_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = dir.path();
        fs::create_dir_all(base.join("sub")).expect("sub");
        fs::write(base.join("sub/a.txt"), "a").expect("a");
        std::os::unix::fs::symlink("/etc/passwd", base.join("link")).expect("link");
        let entries: Vec<(PathBuf, PathBuf)> = ["sub", "sub/a.txt", "link", "gone.txt"]
            .iter()
            .map(|r| (base.join(r), Path::new("app").join(r)))
            .collect();
        let mut out = Vec::new();
        tar_entries(&entries, &mut out).expect("tar");
        let mut ar = tar::Archive::new(&out[..]);
        let got: Vec<(String, tar::EntryType)> = ar
            .entries()
            .expect("entries")
            .map(|e| {
                let e = e.expect("entry");
                (
                    e.path().expect("path").display().to_string(),
                    e.header().entry_type(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("app/sub".to_string(), tar::EntryType::Directory),
                ("app/sub/a.txt".to_string(), tar::EntryType::Regular),
                // A host link is sent as a link, never followed.
                ("app/link".to_string(), tar::EntryType::Symlink),
            ]
        );
    }
}
