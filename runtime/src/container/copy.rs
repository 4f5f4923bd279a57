//! `cp` between the host and a container, symlink-safe in both directions. Container paths
//! are resolved by a fresh helper process whose root *is* the container's root (it joins the
//! running container's mount namespace, or mounts the stopped container's rootfs in a private
//! namespace and chroots), so a symlink inside the container can never point at the host.
//! Host paths are written with the tar crate's `unpack`, which refuses entries that escape
//! the destination.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};

use super::config::RootfsSource;
use super::init::chain;
use super::namespaces;
use super::record::Record;
use super::state::{State, Status};

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
}

impl Direction {
    /// The helper's argument.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Out => "out",
            Direction::In => "in",
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
            _ => tar_in(io::stdin().lock(), path),
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

fn tar_in<R: io::Read>(r: R, dest: &Path) -> Result<(), CopyError> {
    let cerr = |source| CopyError::ContainerPath {
        path: dest.to_path_buf(),
        source,
    };
    if !fs::metadata(dest).map_err(cerr)?.is_dir() {
        return Err(cerr(io::Error::other("not a directory")));
    }
    let mut a = tar::Archive::new(r);
    a.set_preserve_permissions(true);
    a.set_overwrite(true);
    a.unpack(dest).map_err(cerr)
}

/// Copies `cpath` out of the container into the host directory `host_dir`.
pub fn copy_out(
    shim_exe: &Path,
    rec: &Record,
    cpath: &Path,
    host_dir: &Path,
) -> Result<(), CopyError> {
    let herr = |source| CopyError::HostPath {
        path: host_dir.to_path_buf(),
        source,
    };
    if !fs::metadata(host_dir).map_err(herr)?.is_dir() {
        return Err(herr(io::Error::other("not a directory")));
    }
    let mut child = helper(shim_exe, rec, Direction::Out, cpath)?;
    let out = child.stdout.take().ok_or_else(|| CopyError::HelperFailed {
        message: "no output pipe".into(),
    })?;
    let mut a = tar::Archive::new(out);
    a.set_preserve_permissions(true);
    a.set_overwrite(true);
    let unpacked = a.unpack(host_dir).map_err(herr);
    finish(shim_exe, child)?;
    unpacked
}

/// Writes the container's flattened root filesystem as a tar to `out`.
pub fn export(shim_exe: &Path, rec: &Record, out: &mut dyn Write) -> Result<(), CopyError> {
    let mut child = Command::new(shim_exe)
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

/// Copies the host path `host` into the container directory `cdir`.
pub fn copy_in(shim_exe: &Path, rec: &Record, host: &Path, cdir: &Path) -> Result<(), CopyError> {
    let mut child = helper(shim_exe, rec, Direction::In, cdir)?;
    let input = child.stdin.take().ok_or_else(|| CopyError::HelperFailed {
        message: "no input pipe".into(),
    })?;
    let sent = tar_host(host, input);
    let done = finish(shim_exe, child);
    done?;
    sent
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

fn helper(
    exe: &Path,
    rec: &Record,
    d: Direction,
    path: &Path,
) -> Result<std::process::Child, CopyError> {
    Command::new(exe)
        .arg("copy-helper")
        .arg(&rec.dir)
        .arg(d.as_str())
        .arg(path)
        .stdin(if d == Direction::In {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(if d == Direction::Out {
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
