//! Mount mechanics shared by the rootfs setup: OCI mount options to flags, files bound as
//! owned copies, and the errors of preparing a mount (targets resolve through [`crate::inroot`], see `rootfs.rs`).

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

use super::{ContainerConfig, MountSpec};

/// Errors preparing one mount.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("creating mount point {path}")]
    MountPoint {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("copying {path} to bind it with its own owner and mode")]
    Copy {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("making the bind at {path} read-only with the mounts under it (mount_setattr)")]
    ReadOnlyRecursive {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("mount source {path} does not exist")]
    NoSource {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The directory under a container's own where [`owned_copies`] puts its copies.
pub const OWNED_COPIES_DIR: &str = "owned-files";

/// The config with every bind that asks for an owned copy bound from a copy instead: the
/// source file copied (content only) into `dir/owned-files/N` and given the owner and mode
/// asked for. `None` when no bind asks for one. Made at create, so a later change of the host
/// file is not seen (a bind mount cannot set an owner or mode, a copy cannot follow).
pub fn owned_copies(
    cfg: &ContainerConfig,
    dir: &Path,
) -> Result<Option<ContainerConfig>, MountError> {
    if !cfg.mounts.iter().any(|m| {
        matches!(
            m,
            MountSpec::Bind {
                owned_copy: Some(_),
                ..
            }
        )
    }) {
        return Ok(None);
    }
    let copies = dir.join(OWNED_COPIES_DIR);
    let copy_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| MountError::Copy { path, source }
    };
    crate::modes::mkdir(&copies, crate::modes::PRIVATE_DIR).map_err(copy_err(&copies))?;
    let mut out = cfg.clone();
    for (i, m) in out.mounts.iter_mut().enumerate() {
        let MountSpec::Bind {
            source,
            owned_copy: Some(owner),
            ..
        } = m
        else {
            continue;
        };
        // The content only: read through the host path (the user's own file, as a bind of
        // it would be), written as a new file nobody else can open meanwhile.
        let content = fs::read(&*source).map_err(copy_err(source))?;
        let copy = copies.join(i.to_string());
        let _ = fs::remove_file(&copy);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&copy)
            .map_err(copy_err(&copy))?;
        f.write_all(&content).map_err(copy_err(&copy))?;
        std::os::unix::fs::fchown(&f, Some(owner.uid), Some(owner.gid)).map_err(copy_err(&copy))?;
        f.set_permissions(fs::Permissions::from_mode(owner.mode & 0o7777))
            .map_err(copy_err(&copy))?;
        *source = copy;
    }
    Ok(Some(out))
}

/// The OCI option (runc's and crun's) making a bind read-only with every mount under it.
pub const RRO: &str = "rro";

/// Whether the kernel has `mount_setattr` (5.12+), which a recursively read-only bind needs.
pub fn recursive_read_only_supported() -> bool {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (5, 12)
}

/// `mount_setattr(2)`'s argument (not in libc's bindings on every target).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const AT_RECURSIVE: libc::c_uint = 0x8000;

/// Makes the mount at `path` and every mount under it read-only.
pub fn read_only_recursively(path: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let attr = MountAttr {
        attr_set: libc::MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `c` is a NUL-terminated path and `attr` a live struct of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            c.as_ptr(),
            AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Splits OCI mount options into mount flags, propagation flags and fs data.
pub fn parse_options(opts: &[String]) -> (MsFlags, MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut prop = MsFlags::empty();
    let mut data = Vec::new();
    for o in opts {
        match o.as_str() {
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rw" => flags &= !MsFlags::MS_RDONLY,
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "relatime" => flags |= MsFlags::MS_RELATIME,
            "strictatime" => flags |= MsFlags::MS_STRICTATIME,
            "noatime" => flags |= MsFlags::MS_NOATIME,
            "sync" => flags |= MsFlags::MS_SYNCHRONOUS,
            "bind" => flags |= MsFlags::MS_BIND,
            "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
            // Recursive read-only: applied after the bind by `read_only_recursively`.
            RRO => {}
            "suid" | "dev" | "exec" | "atime" | "async" | "defaults" => {}
            // berth's own marker, read by the rootfs setup.
            super::spec::NOCOPY => {}
            o if o.starts_with(super::spec::SUBPATH) => {}
            "private" => prop |= MsFlags::MS_PRIVATE,
            "rprivate" => prop |= MsFlags::MS_PRIVATE | MsFlags::MS_REC,
            "shared" => prop |= MsFlags::MS_SHARED,
            "rshared" => prop |= MsFlags::MS_SHARED | MsFlags::MS_REC,
            "slave" => prop |= MsFlags::MS_SLAVE,
            "rslave" => prop |= MsFlags::MS_SLAVE | MsFlags::MS_REC,
            other => data.push(other.to_string()),
        }
    }
    (flags, prop, data.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_into_flags_and_data() {
        let (f, p, d) = parse_options(&[
            "nosuid".into(),
            "rbind".into(),
            "ro".into(),
            "rprivate".into(),
            "size=64m".into(),
        ]);
        assert!(f.contains(
            MsFlags::MS_NOSUID | MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY
        ));
        assert!(p.contains(MsFlags::MS_PRIVATE));
        assert_eq!(d, "size=64m");
    }
}
