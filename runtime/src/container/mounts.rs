//! Mount mechanics shared by the rootfs setup: OCI mount options to flags, a symlink-safe join
//! that keeps mount targets inside the rootfs, and the first-use fill of a named volume.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use nix::mount::MsFlags;

/// Errors preparing one mount.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("mount target {path} escapes the container root through too many symlinks")]
    SymlinkLoop { path: PathBuf },
    #[error("creating mount point {path}")]
    MountPoint {
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
            "suid" | "dev" | "exec" | "atime" | "async" | "defaults" => {}
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

/// Joins `path` (absolute, inside the container) under `root`, resolving every symlink
/// relative to `root` so that a hostile image cannot point a mount target at the host.
pub fn secure_join(root: &Path, path: &Path) -> Result<PathBuf, MountError> {
    let mut parts: Vec<PathBuf> = Vec::new();
    let mut todo: Vec<PathBuf> = path
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(PathBuf::from(n)),
            Component::ParentDir => Some(PathBuf::from("..")),
            _ => None,
        })
        .collect();
    let mut links = 0;
    while let Some(part) = todo.pop() {
        if part == Path::new("..") {
            parts.pop();
            continue;
        }
        let mut cand = root.to_path_buf();
        cand.extend(parts.iter());
        cand.push(&part);
        match fs::symlink_metadata(&cand) {
            Ok(md) if md.file_type().is_symlink() => {
                links += 1;
                if links > 40 {
                    return Err(MountError::SymlinkLoop {
                        path: path.to_path_buf(),
                    });
                }
                let target = fs::read_link(&cand).map_err(|source| MountError::MountPoint {
                    path: cand.clone(),
                    source,
                })?;
                if target.is_absolute() {
                    parts.clear();
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(n) => todo.push(PathBuf::from(n)),
                        Component::ParentDir => todo.push(PathBuf::from("..")),
                        _ => {}
                    }
                }
            }
            _ => parts.push(part),
        }
    }
    let mut out = root.to_path_buf();
    out.extend(parts.iter());
    Ok(out)
}

/// Creates the mount point `target` as a directory, or as an empty file when the source is
/// a file.
pub fn make_mount_point(target: &Path, file: bool) -> Result<(), MountError> {
    let err = |source| MountError::MountPoint {
        path: target.to_path_buf(),
        source,
    };
    if file {
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(err)?;
        }
        if fs::symlink_metadata(target).is_err() {
            fs::File::create(target).map_err(err)?;
        }
        Ok(())
    } else {
        fs::create_dir_all(target).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn secure_join_keeps_symlinks_inside_the_root() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path();
        fs::create_dir_all(root.join("a/b")).expect("mkdir");
        symlink("/etc", root.join("a/abs")).expect("link");
        symlink("../../../../..", root.join("a/up")).expect("link");
        assert_eq!(
            secure_join(root, Path::new("/a/abs/passwd")).expect("join"),
            root.join("etc/passwd")
        );
        assert_eq!(
            secure_join(root, Path::new("/a/up/x")).expect("join"),
            root.join("x")
        );
        assert_eq!(
            secure_join(root, Path::new("/../../a/b")).expect("join"),
            root.join("a/b")
        );
    }

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
