//! `image bootstrap` for real: debootstrap (minbase bookworm, from the host's configured Debian
//! mirror) into an image, then a shell run inside its overlay view with chroot.
//!
//! A real debootstrap takes about a minute with a good mirror: the image is made ONCE and kept
//! in a store under `$BERTH_CACHE/image-bootstrap` (default /var/cache/berth-ci); later runs
//! reuse it and only check it. Delete that directory to test the bootstrap itself again.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use berth_runtime::image::ImageStore;
use berth_runtime::image::bootstrap::{BootstrapOptions, bootstrap};
use berth_runtime::image::lock::FileLock;

const REF: &str = "berth-test/debian:bookworm";

struct Mount(PathBuf);
impl Drop for Mount {
    fn drop(&mut self) {
        let c = std::ffi::CString::new(self.0.as_os_str().as_encoded_bytes()).unwrap();
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

#[test_with::root()]
#[test]
fn bootstrap_debian_image_once_and_run_a_shell_in_it() {
    let cache = PathBuf::from(
        std::env::var("BERTH_CACHE").unwrap_or_else(|_| "/var/cache/berth-ci".into()),
    );
    let root = cache.join("image-bootstrap");
    fs::create_dir_all(&root).unwrap();
    let _lock = FileLock::exclusive(&root.join("test.lock")).unwrap();
    let store = ImageStore::open(&root).unwrap();
    let img = match store.resolve(REF) {
        Ok(img) => img,
        Err(_) => {
            eprintln!(
                "no cached bootstrap image in {}: running debootstrap (about a minute)",
                root.display()
            );
            bootstrap(&store, REF, &BootstrapOptions::default()).unwrap()
        }
    };
    let cfg = img.runtime_config().unwrap();
    assert_eq!(cfg.cmd().as_deref(), Some(&["bash".to_owned()][..]));
    assert!(cfg.env().as_ref().unwrap()[0].starts_with("PATH=/usr/local/sbin"));
    assert_eq!(img.layer_dirs().len(), 1);
    let layer = &img.layer_dirs()[0];
    assert!(
        fs::read_to_string(layer.join("etc/debian_version"))
            .unwrap()
            .starts_with("12")
    );
    assert!(
        fs::read_dir(layer.join("var/cache/apt/archives"))
            .unwrap()
            .all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".deb"))
    );
    assert!(
        store.history(REF).unwrap()[0]
            .created_by
            .contains("debootstrap")
    );

    let t = tempfile::tempdir().unwrap();
    let mnt = t.path().join("mnt");
    let empty = t.path().join("empty");
    fs::create_dir(&mnt).unwrap();
    fs::create_dir(&empty).unwrap();
    let st = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o"])
        // overlayfs wants two lowers when there is no upper.
        .arg(format!(
            "ro,lowerdir={}:{}",
            layer.display(),
            empty.display()
        ))
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(st.success());
    let _m = Mount(mnt.clone());
    let out = Command::new("chroot")
        .arg(&mnt)
        .args([
            "/usr/bin/bash",
            "-c",
            "cat /etc/debian_version; apt-get --version | head -1",
        ])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("12") && text.contains("apt"), "{text}");
}
