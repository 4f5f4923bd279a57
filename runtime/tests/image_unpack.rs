//! Layer extraction against real files (run as root: owners, device nodes, trusted xattrs).
//! Every malicious archive case has its own test: refused or neutralised, nothing outside.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use berth_runtime::image::unpack::{Whiteouts, unpack_layer};

/// Builds tar archives entry by entry, writing raw names so that hostile paths (`..`,
/// absolute) can be expressed.
struct TarMaker {
    b: tar::Builder<Vec<u8>>,
}

impl TarMaker {
    fn new() -> Self {
        TarMaker {
            b: tar::Builder::new(Vec::new()),
        }
    }

    fn header(kind: tar::EntryType, path: &str, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_size(0);
        let name = &mut h.as_old_mut().name;
        name.fill(0);
        name[..path.len()].copy_from_slice(path.as_bytes());
        h
    }

    fn push(&mut self, mut h: tar::Header, data: &[u8]) -> &mut Self {
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        self.push(Self::header(tar::EntryType::Directory, path, mode), b"")
    }

    fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> &mut Self {
        self.push(Self::header(tar::EntryType::Regular, path, mode), data)
    }

    fn owned_file(&mut self, path: &str, uid: u64, gid: u64, data: &[u8]) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Regular, path, 0o640);
        h.set_uid(uid);
        h.set_gid(gid);
        self.push(h, data)
    }

    fn link(&mut self, kind: tar::EntryType, path: &str, target: &str) -> &mut Self {
        let mut h = Self::header(kind, path, 0o777);
        let l = &mut h.as_old_mut().linkname;
        l.fill(0);
        l[..target.len()].copy_from_slice(target.as_bytes());
        self.push(h, b"")
    }

    fn dev(&mut self, kind: tar::EntryType, path: &str, major: u32, minor: u32) -> &mut Self {
        let mut h = Self::header(kind, path, 0o620);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.push(h, b"")
    }

    fn xattr_file(&mut self, path: &str, xattrs: &[(&str, &[u8])], data: &[u8]) -> &mut Self {
        let pax: Vec<(String, &[u8])> = xattrs
            .iter()
            .map(|(k, v)| (format!("SCHILY.xattr.{k}"), *v))
            .collect();
        self.b
            .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), *v)))
            .unwrap();
        self.file(path, 0o644, data)
    }

    fn finish(&mut self) -> Vec<u8> {
        let b = std::mem::replace(&mut self.b, tar::Builder::new(Vec::new()));
        b.into_inner().unwrap()
    }
}

fn getxattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    use std::ffi::CString;
    let cp = CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let cn = CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    let n =
        unsafe { libc::lgetxattr(cp.as_ptr(), cn.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(buf)
}

/// A sandbox: `layer/` is the unpack target, `outside/` holds a victim file that must survive.
struct Sandbox {
    _t: tempfile::TempDir,
    layer: std::path::PathBuf,
    outside: std::path::PathBuf,
}

impl Sandbox {
    fn new() -> Self {
        let t = tempfile::tempdir().unwrap();
        let layer = t.path().join("layer");
        let outside = t.path().join("outside");
        fs::create_dir(&layer).unwrap();
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("victim"), b"original").unwrap();
        Sandbox {
            _t: t,
            layer,
            outside,
        }
    }

    fn outside_untouched(&self) {
        assert_eq!(fs::read(self.outside.join("victim")).unwrap(), b"original");
        let names: Vec<_> = fs::read_dir(&self.outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "something was written outside: {names:?}");
        // Nothing escaped to the sandbox's own root either.
        let top: Vec<_> = fs::read_dir(self.layer.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            top.len(),
            2,
            "something was written next to the layer: {top:?}"
        );
    }

    fn unpack(&self, tar: &[u8]) -> Result<(), berth_runtime::image::unpack::UnpackError> {
        unpack_layer(tar, &self.layer, Whiteouts::Overlay).map(|_| ())
    }
}

#[test_with::root()]
#[test]
fn preserves_modes_owners_links_devices_xattrs_mtimes() {
    let s = Sandbox::new();
    let tar = TarMaker::new()
        .dir("usr/", 0o755)
        .dir("usr/bin/", 0o755)
        .file("usr/bin/tool", 0o4755, b"#!/bin/sh\n")
        .owned_file("usr/owned", 1234, 5678, b"x")
        .link(tar::EntryType::Link, "usr/bin/tool2", "usr/bin/tool")
        .link(tar::EntryType::Symlink, "usr/lnk", "/usr/bin/tool")
        .dev(tar::EntryType::Char, "dev/null", 1, 3)
        .dev(tar::EntryType::Fifo, "run/fifo", 0, 0)
        .xattr_file("usr/x", &[("user.berth", b"v1")], b"data")
        .finish();
    s.unpack(&tar).unwrap();
    let l = &s.layer;
    let m = fs::metadata(l.join("usr/bin/tool")).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o4755);
    assert_eq!(m.mtime(), 1_600_000_000);
    assert_eq!(m.nlink(), 2);
    assert_eq!(
        fs::metadata(l.join("usr/bin/tool2")).unwrap().ino(),
        m.ino()
    );
    let o = fs::metadata(l.join("usr/owned")).unwrap();
    assert_eq!((o.uid(), o.gid(), o.mode() & 0o777), (1234, 5678, 0o640));
    assert_eq!(
        fs::read_link(l.join("usr/lnk")).unwrap(),
        Path::new("/usr/bin/tool")
    );
    let d = fs::symlink_metadata(l.join("dev/null")).unwrap();
    assert!(d.file_type().is_char_device());
    assert_eq!(d.rdev(), libc::makedev(1, 3));
    assert!(
        fs::symlink_metadata(l.join("run/fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert_eq!(
        getxattr(&l.join("usr/x"), "user.berth").as_deref(),
        Some(&b"v1"[..])
    );
    assert_eq!(
        fs::metadata(l.join("usr/bin")).unwrap().mtime(),
        1_600_000_000,
        "dir mtime set after children"
    );
    s.outside_untouched();
}

#[test_with::root()]
#[test]
fn gzip_and_zstd_give_the_same_diff_id_as_plain() {
    let tar = TarMaker::new()
        .dir("a/", 0o755)
        .file("a/b", 0o644, &vec![7u8; 100_000])
        .finish();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let zs = zstd::encode_all(&tar[..], 3).unwrap();
    let mut ids = Vec::new();
    for data in [&tar, &gz, &zs] {
        let t = tempfile::tempdir().unwrap();
        let st = unpack_layer(&data[..], t.path(), Whiteouts::Overlay).unwrap();
        assert_eq!(fs::read(t.path().join("a/b")).unwrap().len(), 100_000);
        ids.push(st.diff_id);
    }
    assert_eq!(ids[0], berth_runtime::image::Digest::of_bytes(&tar));
    assert!(ids.iter().all(|d| d == &ids[0]));
}

#[test_with::root()]
#[test]
fn whiteouts_become_overlay_whiteouts() {
    let s = Sandbox::new();
    let tar = TarMaker::new()
        .dir("etc/", 0o755)
        .file("etc/.wh.gone", 0o644, b"")
        .dir("var/cache/", 0o755)
        .file("var/cache/.wh..wh..opq", 0o644, b"")
        .file("var/cache/kept", 0o644, b"k")
        .finish();
    s.unpack(&tar).unwrap();
    let w = fs::symlink_metadata(s.layer.join("etc/gone")).unwrap();
    assert!(w.file_type().is_char_device());
    assert_eq!(w.rdev(), 0);
    assert!(!s.layer.join("etc/.wh.gone").exists());
    assert_eq!(
        getxattr(&s.layer.join("var/cache"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert!(s.layer.join("var/cache/kept").exists());
    assert!(!s.layer.join("var/cache/.wh..wh..opq").exists());
}

#[test_with::root()]
#[test]
fn apply_mode_deletes_what_upper_layers_whiteout() {
    let t = tempfile::tempdir().unwrap();
    let lower = TarMaker::new()
        .file("a", 0o644, b"a")
        .file("b", 0o644, b"b")
        .dir("d/", 0o755)
        .file("d/old", 0o644, b"o")
        .finish();
    let upper = TarMaker::new()
        .file(".wh.a", 0o644, b"")
        .dir("d/", 0o755)
        .file("d/.wh..wh..opq", 0o644, b"")
        .file("d/new", 0o644, b"n")
        .finish();
    unpack_layer(&lower[..], t.path(), Whiteouts::Apply).unwrap();
    unpack_layer(&upper[..], t.path(), Whiteouts::Apply).unwrap();
    assert!(!t.path().join("a").exists());
    assert!(t.path().join("b").exists());
    assert!(!t.path().join("d/old").exists());
    assert!(t.path().join("d/new").exists());
}

#[test]
fn refuses_dotdot_paths() {
    let s = Sandbox::new();
    let tar = TarMaker::new()
        .file("../outside/victim", 0o644, b"pwned")
        .finish();
    let e = s.unpack(&tar).unwrap_err();
    assert!(e.to_string().contains(".."), "{e}");
    let tar = TarMaker::new()
        .file("a/../../outside/new", 0o644, b"pwned")
        .finish();
    assert!(s.unpack(&tar).is_err());
    s.outside_untouched();
}

#[test_with::root()]
#[test]
fn absolute_paths_stay_inside() {
    let s = Sandbox::new();
    let victim = s.outside.join("victim");
    let abs = victim.to_str().unwrap();
    let tar = TarMaker::new().file(abs, 0o644, b"pwned").finish();
    s.unpack(&tar).unwrap();
    let inside = s.layer.join(abs.trim_start_matches('/'));
    assert_eq!(fs::read(inside).unwrap(), b"pwned");
    s.outside_untouched();
}

#[test_with::root()]
#[test]
fn refuses_entries_through_a_planted_symlink() {
    let s = Sandbox::new();
    let tar = TarMaker::new()
        .link(tar::EntryType::Symlink, "esc", s.outside.to_str().unwrap())
        .file("esc/victim", 0o644, b"pwned")
        .finish();
    let e = s.unpack(&tar).unwrap_err();
    assert!(e.to_string().contains("symlink"), "{e}");
    // Relative symlink climbing out, then a directory below it.
    let tar = TarMaker::new()
        .link(tar::EntryType::Symlink, "up", "../outside")
        .dir("up/newdir/", 0o755)
        .finish();
    assert!(s.unpack(&tar).is_err());
    s.outside_untouched();
}

#[test]
fn refuses_symlink_planted_before_as_intermediate_component() {
    // A symlink already present in the target directory (not from this archive).
    let s = Sandbox::new();
    std::os::unix::fs::symlink(&s.outside, s.layer.join("pre")).unwrap();
    let tar = TarMaker::new().file("pre/victim", 0o644, b"pwned").finish();
    assert!(s.unpack(&tar).is_err());
    s.outside_untouched();
}

#[test_with::root()]
#[test]
fn refuses_hardlinks_to_outside() {
    let s = Sandbox::new();
    let victim = s.outside.join("victim");
    // Absolute target: taken inside the layer, where it does not exist.
    let tar = TarMaker::new()
        .link(tar::EntryType::Link, "h", victim.to_str().unwrap())
        .finish();
    assert!(s.unpack(&tar).is_err());
    // `..` target.
    let tar = TarMaker::new()
        .link(tar::EntryType::Link, "h", "../outside/victim")
        .finish();
    assert!(s.unpack(&tar).is_err());
    // Through a symlink planted by the archive.
    let tar = TarMaker::new()
        .link(tar::EntryType::Symlink, "s", s.outside.to_str().unwrap())
        .link(tar::EntryType::Link, "h", "s/victim")
        .finish();
    let e = s.unpack(&tar).unwrap_err();
    assert!(e.to_string().contains("hardlink"), "{e}");
    assert!(!s.layer.join("h").exists());
    assert_eq!(fs::metadata(&victim).unwrap().nlink(), 1);
    s.outside_untouched();
}

#[test_with::root()]
#[test]
fn file_over_a_symlink_replaces_the_symlink() {
    let s = Sandbox::new();
    let tar = TarMaker::new()
        .link(
            tar::EntryType::Symlink,
            "x",
            s.outside.join("victim").to_str().unwrap(),
        )
        .file("x", 0o644, b"pwned")
        .link(tar::EntryType::Symlink, "d", s.outside.to_str().unwrap())
        .dir("d/", 0o755)
        .finish();
    s.unpack(&tar).unwrap();
    assert!(fs::symlink_metadata(s.layer.join("x")).unwrap().is_file());
    assert!(fs::symlink_metadata(s.layer.join("d")).unwrap().is_dir());
    s.outside_untouched();
}

#[test_with::root()]
#[test]
fn refuses_bad_whiteout_names_and_drops_forged_overlay_xattrs() {
    let s = Sandbox::new();
    let tar = TarMaker::new().file(".wh...", 0o644, b"").finish();
    assert!(s.unpack(&tar).is_err());
    let tar = TarMaker::new()
        .xattr_file(
            "f",
            &[("trusted.overlay.redirect", b"/etc"), ("user.ok", b"1")],
            b"",
        )
        .finish();
    s.unpack(&tar).unwrap();
    assert_eq!(
        getxattr(&s.layer.join("f"), "trusted.overlay.redirect"),
        None
    );
    assert_eq!(
        getxattr(&s.layer.join("f"), "user.ok").as_deref(),
        Some(&b"1"[..])
    );
    s.outside_untouched();
}

/// ADD and `cp` extract with links followed inside the root: a link the archive places (or
/// one already there) leads to the root's own path, never the host's; the top entry can be
/// renamed and `.wh.` names stay plain files.
#[test_with::root()]
#[test]
fn in_root_extraction_follows_links_inside_and_renames_the_top() {
    use berth_runtime::image::unpack::{Extract, Owners, unpack_into};
    use berth_runtime::inroot::{Follow, InRoot};
    let host = tempfile::tempdir().expect("host");
    let d = tempfile::tempdir().expect("root");
    let hs = host.path().to_str().expect("utf-8").to_string();
    std::os::unix::fs::symlink(&hs, d.path().join("pre")).expect("link");
    let tar = TarMaker::new()
        .link(tar::EntryType::Symlink, "top/l", &hs)
        .file("top/l/through", 0o644, b"a")
        .file("top/.wh.kept", 0o644, b"w")
        .finish();
    let root = InRoot::open(d.path(), Follow::InRoot).expect("root");
    let opts = Extract {
        whiteouts: Whiteouts::Keep,
        owners: Owners::Set(7, 8),
        into: b"/pre/in".to_vec(),
        rename_top: Some((b"top".to_vec(), b"renamed".to_vec())),
        keep_kinds: false,
    };
    root.mkdir_all(b"/pre/in", 0o755).expect("dest");
    unpack_into(&tar[..], &root, &opts).expect("extract");
    let inside = d.path().join(&hs[1..]).join("in/renamed");
    let st = fs::metadata(inside.join(".wh.kept")).expect("plain file");
    assert_eq!((st.uid(), st.gid()), (7, 8));
    let through = d.path().join(&hs[1..]).join("through");
    assert_eq!(fs::read(&through).expect("in-root target"), b"a");
    assert_eq!(fs::read_dir(host.path()).expect("host").count(), 0);
}
