//! Mount mechanics shared by the rootfs setup: OCI mount options to flags, and the errors of
//! preparing a mount (targets resolve through [`crate::inroot`], see `rootfs.rs`).

use std::io;
use std::path::PathBuf;

use nix::mount::MsFlags;

/// Errors preparing one mount.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
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
