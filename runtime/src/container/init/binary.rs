//! The container init of `--init` (Compose `init: true`): the `berth-init` executable (the
//! workspace's `init/` crate, a static no_std binary of a few KiB) embedded in berth, written
//! once under the runtime's root, named by its digest (0555, owned by the root user that runs
//! berth), and bound read-only into the container at Docker's path for its docker-init. Every
//! container of an instance execs the same file, so its pages are shared through the page
//! cache; each init keeps only its stack and a few pages of its own.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use oci_spec::runtime::Mount;
use sha2::{Digest, Sha256};

use crate::modes;

/// The init's executable, built by the runtime's build script.
pub const BYTES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/berth-init"));

/// Where the container sees the init (Docker binds its docker-init there too).
pub const CONTAINER_PATH: &str = "/sbin/docker-init";

/// The environment entry that hands the init the start report's fd (the init removes it
/// before the command runs).
pub const REPORT_ENV: &str = "BERTH_INIT_REPORT_FD";

/// The mode of the installed file: anyone may run it (the container's user does), nobody
/// may write it.
const MODE: u32 = 0o555;

/// `<root>/init/berth-init-<digest>`: the path the init is (or will be) installed at.
pub fn host_path(root: &Path) -> PathBuf {
    let digest = hex::encode(Sha256::digest(BYTES));
    root.join("init")
        .join(format!("berth-init-{}", &digest[..16]))
}

/// Writes the init under `root` unless it is already there whole, and returns its path. The
/// file appears at once complete (written aside, synced, then renamed), so a name that exists
/// with the right size, mode and owner holds these bytes.
pub fn install(root: &Path) -> io::Result<PathBuf> {
    let path = host_path(root);
    if installed(&path) {
        return Ok(path);
    }
    let dir = root.join("init");
    modes::mkdir(&dir, modes::PRIVATE_DIR)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}", std::process::id()));
    let written = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(MODE)
            .open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(MODE))?;
        f.write_all(BYTES)?;
        f.sync_all()?;
        fs::rename(&tmp, &path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written.map(|()| path)
}

fn installed(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|md| {
        md.is_file()
            && md.len() == BYTES.len() as u64
            && md.mode() & 0o7777 == MODE
            && md.uid() == nix::unistd::geteuid().as_raw()
    })
}

/// The read-only bind of the installed init at [`CONTAINER_PATH`].
pub fn mount(host: &Path) -> Mount {
    let mut m = Mount::default();
    m.set_destination(CONTAINER_PATH.into())
        .set_typ(Some("bind".into()))
        .set_source(Some(host.to_path_buf()))
        .set_options(Some(
            ["bind", "ro", "nosuid", "nodev"].map(String::from).to_vec(),
        ));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_init_is_a_small_static_executable() {
        assert_eq!(&BYTES[..4], b"\x7fELF");
        assert!(BYTES.len() < 256 * 1024, "{} bytes", BYTES.len());
    }

    #[test]
    fn install_writes_once_and_repairs() {
        let root = tempfile::tempdir().expect("tempdir");
        let p = install(root.path()).expect("install");
        assert_eq!(p, host_path(root.path()));
        assert_eq!(fs::read(&p).expect("read"), BYTES);
        let md = fs::metadata(&p).expect("metadata");
        assert_eq!(md.mode() & 0o7777, MODE);
        let dir = fs::metadata(root.path().join("init")).expect("dir");
        assert_eq!(dir.mode() & 0o777, modes::PRIVATE_DIR);
        // Already there: kept as it is.
        let ino = md.ino();
        install(root.path()).expect("again");
        assert_eq!(fs::metadata(&p).expect("metadata").ino(), ino);
        // A damaged copy (wrong size) is replaced.
        fs::remove_file(&p).expect("remove");
        fs::write(&p, b"x").expect("write");
        install(root.path()).expect("repair");
        assert_eq!(fs::read(&p).expect("read"), BYTES);
        assert_eq!(
            fs::read_dir(root.path().join("init")).expect("ls").count(),
            1
        );
    }

    #[test]
    fn the_bind_is_read_only() {
        let m = mount(Path::new("/r/init/berth-init-x"));
        assert_eq!(m.destination(), Path::new(CONTAINER_PATH));
        let opts = m.options().clone().unwrap_or_default();
        assert!(opts.iter().any(|o| o == "ro"), "{opts:?}");
        assert!(!opts.iter().any(|o| o == "noexec"), "{opts:?}");
    }
}
