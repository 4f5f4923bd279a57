//! The image store end to end on real files: import, commit, shared layers, tags, rm/prune,
//! digest verification, and the overlay view of the layers (mounted for real, as root).

use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use berth_runtime::image::store::{CONTAINER_IMAGE_ID_FILE, NewImage};
use berth_runtime::image::{Digest, ImageStore};
use oci_spec::image::ConfigBuilder;

/// A small layer tar: (path, contents) files, `-path` for a whiteout, `path/` for a dir.
fn layer(entries: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (p, data) in entries {
        let mut h = tar::Header::new_gnu();
        if let Some(dir) = p.strip_suffix('/') {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            b.append_data(&mut h, dir, std::io::empty()).unwrap();
        } else if let Some(gone) = p.strip_prefix('-') {
            let path = Path::new(gone);
            let name = format!(".wh.{}", path.file_name().unwrap().to_str().unwrap());
            let wh = path.parent().unwrap().join(name);
            h.set_mode(0o644);
            h.set_size(0);
            b.append_data(&mut h, wh, std::io::empty()).unwrap();
        } else {
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            h.set_mtime(1_700_000_000);
            b.append_data(&mut h, p, data.as_bytes()).unwrap();
        }
    }
    b.into_inner().unwrap()
}

fn new_image(cmd: &str) -> NewImage {
    NewImage {
        config: ConfigBuilder::default()
            .cmd(vec![cmd.to_owned()])
            .env(vec!["A=1".to_owned()])
            .build()
            .unwrap(),
        healthcheck: None,
        created_by: format!("test {cmd}"),
        comment: None,
    }
}

#[test_with::root()]
#[test]
fn import_commit_resolve_and_layer_dirs() {
    let t = tempfile::tempdir().unwrap();
    let store = ImageStore::open(t.path()).unwrap();
    let base = store
        .import(
            &mut &layer(&[("etc/", ""), ("etc/a", "a"), ("etc/b", "b")])[..],
            "test",
            Default::default(),
        )
        .unwrap();
    store.tag(&base.id, "base:1").unwrap();
    let upper = layer(&[("-etc/a", ""), ("etc/c", "c")]);
    let mut hc = new_image("/bin/sh");
    hc.healthcheck = Some(berth_runtime::image::store::Healthcheck {
        test: vec!["CMD".into(), "true".into()],
        retries: Some(3),
        ..Default::default()
    });
    let child = store
        .commit(Some(&mut &upper[..]), Some(&base.id), hc)
        .unwrap();
    store.tag(&child.id, "child").unwrap();

    let img = store.resolve("child:latest").unwrap();
    assert_eq!(img.id, child.id);
    assert_eq!(img.record.parent.as_ref(), Some(&base.id));
    let dirs = img.layer_dirs();
    assert_eq!(dirs.len(), 2);
    assert_eq!(
        dirs[0],
        base.layer_dirs()[0],
        "the base layer is shared, not unpacked twice"
    );
    assert!(dirs[0].join("etc/a").is_file());
    assert!(
        fs::symlink_metadata(dirs[1].join("etc/a"))
            .unwrap()
            .file_type()
            .is_char_device_like()
    );
    assert!(
        dirs.iter().all(|d| d.file_name().unwrap().len() == 16),
        "short layer dir names"
    );
    let top_first = format!("{}:{}", dirs[1].display(), dirs[0].display());
    assert_eq!(img.lowerdir(), top_first);
    let cfg = img.runtime_config().unwrap();
    assert_eq!(cfg.cmd().as_deref(), Some(&["/bin/sh".to_owned()][..]));
    assert_eq!(img.healthcheck().unwrap().retries, Some(3));
    assert_eq!(img.config.rootfs().diff_ids().len(), 2);
    assert_eq!(img.config.history().as_ref().unwrap().len(), 2);

    // Every way of naming it.
    assert_eq!(store.resolve(img.id.as_str()).unwrap().id, img.id);
    assert_eq!(store.resolve(&img.id.hex()[..8]).unwrap().id, img.id);
    assert_eq!(store.resolve("docker.io/library/child").unwrap().id, img.id);
    assert_eq!(
        store
            .resolve(&format!("child@{}", img.manifest_digest))
            .unwrap()
            .id,
        img.id
    );
    assert!(store.resolve("nope").is_err());

    // Metadata-only commit: no new layer.
    let meta = store
        .commit(None, Some(&child.id), new_image("/bin/true"))
        .unwrap();
    assert_eq!(meta.layer_dirs(), img.layer_dirs());
    assert!(store.history(meta.id.as_str()).unwrap()[0].empty_layer);
    assert!(store.tree().unwrap().contains("child:latest"));
}

trait CharDev {
    fn is_char_device_like(&self) -> bool;
}
impl CharDev for fs::FileType {
    fn is_char_device_like(&self) -> bool {
        use std::os::unix::fs::FileTypeExt;
        self.is_char_device()
    }
}

#[test]
fn digest_mismatch_is_refused_and_nothing_is_stored() {
    let t = tempfile::tempdir().unwrap();
    let store = ImageStore::open(t.path()).unwrap();
    let wrong = Digest::of_bytes(b"something else");
    let e = store
        .blobs()
        .put_verified(&b"the real bytes"[..], &wrong)
        .unwrap_err();
    assert!(e.to_string().contains("digest mismatch"), "{e}");
    assert!(!store.blobs().has(&wrong));
    assert!(store.blobs().list().unwrap().is_empty());
    assert_eq!(
        fs::read_dir(store.dir().join("tmp")).unwrap().count(),
        0,
        "temp file cleaned"
    );
}

#[test_with::root()]
#[test]
fn diff_id_mismatch_is_refused_and_no_layer_is_kept() {
    let t = tempfile::tempdir().unwrap();
    let store = ImageStore::open(t.path()).unwrap();
    let tar = layer(&[("f", "x")]);
    let (blob, _) = store.blobs().put(&tar[..]).unwrap();
    let e = store
        .ensure_layer(None, &blob, Some(&Digest::of_bytes(b"no")))
        .unwrap_err();
    assert!(e.to_string().contains("config says"), "{e}");
    assert_eq!(fs::read_dir(store.dir().join("l")).unwrap().count(), 0);
}

#[test_with::root()]
#[test]
fn rm_and_prune_respect_tags_and_containers() {
    let t = tempfile::tempdir().unwrap();
    let store = ImageStore::open(t.path()).unwrap();
    let a = store
        .import(&mut &layer(&[("a", "1")])[..], "a", Default::default())
        .unwrap();
    let b = store
        .import(&mut &layer(&[("b", "2")])[..], "b", Default::default())
        .unwrap();
    store.tag(&a.id, "a:1").unwrap();
    store.tag(&a.id, "a:2").unwrap();
    let before = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
    store.tag(&b.id, "b").unwrap();
    // Each tag remembers when it was pointed at its image (Docker's LastTagTime).
    let when = store.last_tagged("b:latest").unwrap().expect("b is tagged");
    assert!(when >= before, "{when:?}");
    assert_eq!(store.last_tagged("nope:1").unwrap(), None);

    // Removing one of two tags only untags.
    let r = store.remove("a:1", false).unwrap();
    assert_eq!(r.untagged, vec!["docker.io/library/a:1"]);
    assert!(r.deleted.is_empty());
    assert_eq!(
        store.last_tagged("a:1").unwrap(),
        None,
        "forgotten with its tag"
    );
    assert!(store.last_tagged("a:2").unwrap().is_some());
    // In use by a container: refused, then kept with -f.
    let c = t.path().join("containers/web-1");
    fs::create_dir_all(&c).unwrap();
    fs::write(c.join(CONTAINER_IMAGE_ID_FILE), a.id.as_str()).unwrap();
    let e = store.remove("a:2", false).unwrap_err();
    assert!(e.to_string().contains("web-1"), "{e}");
    let r = store.remove("a:2", true).unwrap();
    assert_eq!(r.kept_in_use, vec![a.id.clone()]);
    assert!(
        store.resolve(a.id.as_str()).is_ok(),
        "kept for its container"
    );
    // Prune: `a` is dangling but in use; nothing else is dangling.
    let r = store.prune(false).unwrap();
    assert!(r.deleted.is_empty());
    fs::remove_dir_all(&c).unwrap();
    let r = store.prune(false).unwrap();
    assert_eq!(r.deleted, vec![a.id.clone()]);
    assert_eq!(r.layers_deleted, 1);
    assert!(!a.layer_dirs()[0].exists());
    assert!(!store.blobs().has(&a.manifest_digest));
    // Removing by tag the last name deletes image, layer and blobs.
    let r = store.remove("b", false).unwrap();
    assert_eq!(r.deleted, vec![b.id.clone()]);
    assert!(store.blobs().list().unwrap().is_empty());
    assert_eq!(fs::read_dir(store.dir().join("l")).unwrap().count(), 0);
}

#[test_with::root()]
#[test]
fn concurrent_writers_share_layers_and_lose_no_tag() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().to_owned();
    let tar = layer(&[("shared", "s")]);
    let handles: Vec<_> = (0..6)
        .map(|i| {
            let root = root.clone();
            let tar = tar.clone();
            std::thread::spawn(move || {
                let store = ImageStore::open(&root).unwrap();
                let img = store
                    .import(&mut &tar[..], "t", Default::default())
                    .unwrap();
                store.tag(&img.id, &format!("img{i}")).unwrap();
                img.layer_dirs()
            })
        })
        .collect();
    let dirs: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(dirs.windows(2).all(|w| w[0] == w[1]));
    let store = ImageStore::open(&root).unwrap();
    let rows = store.list().unwrap();
    assert_eq!(rows.len(), 6, "{rows:?}");
    let l: Vec<_> = fs::read_dir(store.dir().join("l")).unwrap().collect();
    assert_eq!(l.len(), 1, "one unpacked layer for one chain");
}

/// Unmounts on drop.
struct Mount(std::path::PathBuf);
impl Drop for Mount {
    fn drop(&mut self) {
        let c = std::ffi::CString::new(self.0.as_os_str().as_encoded_bytes()).unwrap();
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Mounts the layers read-only as overlayfs (TOP first in lowerdir, as the executor will).
fn mount_overlay(dirs: &[std::path::PathBuf], at: &Path) -> Mount {
    let lower: Vec<String> = dirs.iter().rev().map(|d| d.display().to_string()).collect();
    let st = std::process::Command::new("mount")
        .args([
            "-t",
            "overlay",
            "overlay",
            "-o",
            &format!("ro,lowerdir={}", lower.join(":")),
        ])
        .arg(at)
        .status()
        .unwrap();
    assert!(st.success(), "mount overlay");
    Mount(at.to_owned())
}

#[test_with::root()]
#[test]
fn overlay_view_applies_whiteouts_and_opaque_dirs() {
    let t = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&t.path().join("root")).unwrap();
    let base = store
        .import(
            &mut &layer(&[
                ("etc/", ""),
                ("etc/keep", "k"),
                ("etc/gone", "g"),
                ("var/", ""),
                ("var/old1", "1"),
                ("var/old2", "2"),
            ])[..],
            "t",
            Default::default(),
        )
        .unwrap();
    // Upper: delete etc/gone, make var opaque with one new file, replace etc/keep.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(0);
    b.append_data(&mut h.clone(), "etc/.wh.gone", std::io::empty())
        .unwrap();
    let mut d = tar::Header::new_gnu();
    d.set_entry_type(tar::EntryType::Directory);
    d.set_mode(0o755);
    d.set_size(0);
    b.append_data(&mut d, "var", std::io::empty()).unwrap();
    b.append_data(&mut h.clone(), "var/.wh..wh..opq", std::io::empty())
        .unwrap();
    h.set_size(3);
    b.append_data(&mut h.clone(), "var/new", &b"new"[..])
        .unwrap();
    b.append_data(&mut h, "etc/keep", &b"K2!"[..]).unwrap();
    let upper = b.into_inner().unwrap();
    let img = store
        .commit(Some(&mut &upper[..]), Some(&base.id), new_image("x"))
        .unwrap();
    let mnt = t.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let _m = mount_overlay(&img.layer_dirs(), &mnt);
    assert_eq!(fs::read(mnt.join("etc/keep")).unwrap(), b"K2!");
    assert!(!mnt.join("etc/gone").exists());
    let mut var: Vec<_> = fs::read_dir(mnt.join("var"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    var.sort();
    assert_eq!(var, vec!["new"]);
}

fn tool(name: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn sh(cmd: &str) -> String {
    let o = std::process::Command::new("sh")
        .args(["-c", cmd])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A busybox rootfs tar: a real tiny image.
fn busybox_tar(dir: &Path) -> Vec<u8> {
    let r = dir.join("bbroot");
    fs::create_dir_all(r.join("bin")).unwrap();
    fs::copy("/bin/busybox", r.join("bin/busybox")).unwrap();
    for l in ["sh", "ls", "cat"] {
        std::os::unix::fs::symlink("busybox", r.join("bin").join(l)).unwrap();
    }
    fs::create_dir_all(r.join("etc")).unwrap();
    fs::write(r.join("etc/hostname"), "bb\n").unwrap();
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.append_dir_all(".", &r).unwrap();
    b.into_inner().unwrap()
}

#[test_with::root()]
#[test]
fn save_is_readable_by_skopeo_and_load_round_trips() {
    if !tool("skopeo") {
        panic!("skopeo is missing: run scripts/deps.sh");
    }
    let t = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&t.path().join("a")).unwrap();
    let base = store
        .import(&mut &busybox_tar(t.path())[..], "bb", Default::default())
        .unwrap();
    let img = store
        .commit(
            Some(&mut &layer(&[("-etc/hostname", ""), ("etc/motd", "hi")])[..]),
            Some(&base.id),
            new_image("/bin/sh"),
        )
        .unwrap();
    store.tag(&img.id, "bb:t").unwrap();
    let archive = t.path().join("bb.tar");
    berth_runtime::image::archive::save(
        &store,
        &["bb:t".to_owned()],
        fs::File::create(&archive).unwrap(),
    )
    .unwrap();

    let d: serde_json::Value = serde_json::from_str(&sh(&format!(
        "skopeo inspect docker-archive:{}",
        archive.display()
    )))
    .unwrap();
    assert_eq!(d["Layers"].as_array().unwrap().len(), 2);
    let o: serde_json::Value = serde_json::from_str(&sh(&format!(
        "skopeo inspect oci-archive:{}:t",
        archive.display()
    )))
    .unwrap();
    assert_eq!(o["Digest"].as_str().unwrap(), img.manifest_digest.as_str());

    // Our own archive loads into another store with the same id and tag.
    let other = ImageStore::open(&t.path().join("b")).unwrap();
    let loaded =
        berth_runtime::image::archive::load(&other, fs::File::open(&archive).unwrap(), None)
            .unwrap();
    assert_eq!(loaded[0].id, img.id);
    assert_eq!(other.resolve("bb:t").unwrap().id, img.id);

    // Archives written by skopeo (a foreign producer) load too: docker-archive and OCI.
    let dock = t.path().join("sk-docker.tar");
    sh(&format!(
        "skopeo copy -q oci-archive:{}:t docker-archive:{}:sk/bb:x",
        archive.display(),
        dock.display()
    ));
    let third = ImageStore::open(&t.path().join("c")).unwrap();
    let l =
        berth_runtime::image::archive::load(&third, fs::File::open(&dock).unwrap(), None).unwrap();
    assert_eq!(l[0].id, img.id, "same config, same id");
    assert_eq!(third.resolve("sk/bb:x").unwrap().id, img.id);
    let oci = t.path().join("sk-oci.tar");
    sh(&format!(
        "skopeo copy -q docker-archive:{} oci-archive:{}:v2",
        dock.display(),
        oci.display()
    ));
    let fourth = ImageStore::open(&t.path().join("d")).unwrap();
    let l = berth_runtime::image::archive::load(
        &fourth,
        fs::File::open(&oci).unwrap(),
        Some("docker.io/library/sk"),
    )
    .unwrap();
    assert_eq!(l[0].tags, vec!["docker.io/library/sk:v2"]);
    let loaded = fourth.resolve("sk:v2").unwrap();
    assert!(loaded.layer_dirs()[0].join("bin/busybox").is_file());
}

/// Walks a tree into sorted (path, kind, mode, uid, gid, content-or-target) rows.
fn snapshot(root: &Path) -> Vec<String> {
    let mut rows = Vec::new();
    fn walk(root: &Path, dir: &Path, rows: &mut Vec<String>) {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let m = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let what = if m.file_type().is_symlink() {
                format!("-> {}", fs::read_link(&p).unwrap().display())
            } else if m.is_file() {
                let mut s = String::new();
                let mut f = fs::File::open(&p).unwrap();
                let mut buf = Vec::new();
                f.read_to_end(&mut buf).unwrap();
                s.push_str(Digest::of_bytes(&buf).short());
                s
            } else {
                String::new()
            };
            let mode = if m.file_type().is_symlink() {
                0
            } else {
                m.mode()
            };
            rows.push(format!("{rel} {mode:o} {}:{} {what}", m.uid(), m.gid()));
            if m.is_dir() {
                walk(root, &p, rows);
            }
        }
    }
    walk(root, root, &mut rows);
    rows
}

#[test_with::root()]
#[test]
fn overlay_view_matches_umoci_unpack() {
    if !tool("umoci") || !tool("skopeo") {
        panic!("umoci/skopeo missing: run scripts/deps.sh");
    }
    let t = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&t.path().join("root")).unwrap();
    let base = store
        .import(&mut &busybox_tar(t.path())[..], "bb", Default::default())
        .unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut d = tar::Header::new_gnu();
    d.set_entry_type(tar::EntryType::Directory);
    d.set_mode(0o700);
    d.set_uid(1000);
    d.set_gid(1000);
    d.set_size(0);
    b.append_data(&mut d, "etc", std::io::empty()).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(0);
    b.append_data(&mut h.clone(), "etc/.wh..wh..opq", std::io::empty())
        .unwrap();
    b.append_data(&mut h.clone(), "bin/.wh.cat", std::io::empty())
        .unwrap();
    h.set_size(5);
    h.set_uid(42);
    b.append_data(&mut h, "etc/motd", &b"hello"[..]).unwrap();
    let img = store
        .commit(
            Some(&mut &b.into_inner().unwrap()[..]),
            Some(&base.id),
            new_image("/bin/sh"),
        )
        .unwrap();
    store.tag(&img.id, "conf:t").unwrap();

    let archive = t.path().join("x.tar");
    berth_runtime::image::archive::save(
        &store,
        &["conf:t".to_owned()],
        fs::File::create(&archive).unwrap(),
    )
    .unwrap();
    let layout = t.path().join("layout");
    sh(&format!(
        "skopeo copy -q oci-archive:{}:t oci:{}:t",
        archive.display(),
        layout.display()
    ));
    let bundle = t.path().join("bundle");
    sh(&format!(
        "umoci unpack --image {}:t {}",
        layout.display(),
        bundle.display()
    ));

    let mnt = t.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let _m = mount_overlay(&img.layer_dirs(), &mnt);
    let ours = snapshot(&mnt);
    let theirs = snapshot(&bundle.join("rootfs"));
    assert_eq!(ours, theirs);
    // The flattened rootfs (whiteouts applied) is the same tree too.
    let flat = t.path().join("flat");
    fs::create_dir(&flat).unwrap();
    store.flatten(&img, &flat).unwrap();
    assert_eq!(snapshot(&flat), theirs);
    assert!(
        ours.iter().any(|r| r.starts_with("etc/motd 100644 42:0")),
        "{ours:?}"
    );
    assert!(!ours.iter().any(|r| r.starts_with("bin/cat")));
    assert!(!ours.iter().any(|r| r.starts_with("etc/hostname")));
}

#[test_with::root()]
#[test]
fn overlay_upper_dir_commits_as_a_layer() {
    let t = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&t.path().join("root")).unwrap();
    let base = store
        .import(
            &mut &layer(&[
                ("etc/", ""),
                ("etc/gone", "g"),
                ("etc/keep", "k"),
                ("var/", ""),
                ("var/old", "o"),
            ])[..],
            "t",
            Default::default(),
        )
        .unwrap();
    // A container's rootfs: the image's layers + an upper dir; change things through it.
    let (upper, work, mnt) = (
        t.path().join("upper"),
        t.path().join("work"),
        t.path().join("mnt"),
    );
    for d in [&upper, &work, &mnt] {
        fs::create_dir(d).unwrap();
    }
    let lower: Vec<String> = base
        .layer_dirs()
        .iter()
        .rev()
        .map(|d| d.display().to_string())
        .collect();
    let st = std::process::Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o"])
        .arg(format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.join(":"),
            upper.display(),
            work.display()
        ))
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(st.success());
    {
        let _m = Mount(mnt.clone());
        fs::remove_file(mnt.join("etc/gone")).unwrap();
        fs::remove_dir_all(mnt.join("var")).unwrap();
        fs::create_dir(mnt.join("var")).unwrap();
        fs::write(mnt.join("var/new"), "n").unwrap();
        fs::write(mnt.join("etc/added"), "a").unwrap();
        fs::hard_link(mnt.join("etc/added"), mnt.join("etc/added2")).unwrap();
    }
    let diff = berth_runtime::image::diff::write_upper_diff(&upper, Vec::new()).unwrap();
    let img = store
        .commit(Some(&mut &diff[..]), Some(&base.id), new_image("commit"))
        .unwrap();
    let view = t.path().join("view");
    fs::create_dir(&view).unwrap();
    let _v = mount_overlay(&img.layer_dirs(), &view);
    assert!(!view.join("etc/gone").exists());
    assert_eq!(fs::read_to_string(view.join("etc/keep")).unwrap(), "k");
    assert_eq!(fs::read_to_string(view.join("etc/added2")).unwrap(), "a");
    assert_eq!(
        fs::metadata(view.join("etc/added")).unwrap().ino(),
        fs::metadata(view.join("etc/added2")).unwrap().ino()
    );
    let var: Vec<_> = fs::read_dir(view.join("var"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(var, vec!["new"]);
}

#[test_with::root()]
#[test]
fn loads_a_classic_docker_save_archive_with_symlinked_layers() {
    // The pre-25 `docker save` layout: <id>/layer.tar per layer, a repeated layer as a symlink,
    // <config>.json, manifest.json and repositories.
    let l1 = layer(&[("a", "1")]);
    let l2 = layer(&[("b", "2")]);
    let d = |b: &[u8]| Digest::of_bytes(b).to_string();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["/b"]},
        "rootfs": {"type": "layers", "diff_ids": [d(&l1), d(&l2), d(&l1)]},
    });
    let config = serde_json::to_vec(&config).unwrap();
    let cfg_name = format!("{}.json", Digest::of_bytes(&config).hex());
    let manifest = serde_json::json!([{"Config": cfg_name, "RepoTags": ["legacy:1"], "Layers": ["aaa/layer.tar", "bbb/layer.tar", "ccc/layer.tar"]}]);
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, path, data).unwrap();
    };
    add(&cfg_name, &config);
    add("aaa/layer.tar", &l1);
    add("bbb/layer.tar", &l2);
    add("manifest.json", &serde_json::to_vec(&manifest).unwrap());
    add("repositories", br#"{"legacy":{"1":"x"}}"#);
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "ccc/layer.tar", "../aaa/layer.tar")
        .unwrap();
    let archive = b.into_inner().unwrap();

    let t = tempfile::tempdir().unwrap();
    let store = ImageStore::open(t.path()).unwrap();
    let loaded = berth_runtime::image::archive::load(&store, &archive[..], None).unwrap();
    assert_eq!(loaded[0].id, Digest::of_bytes(&config));
    let img = store.resolve("legacy:1").unwrap();
    let dirs = img.layer_dirs();
    assert_eq!(dirs.len(), 3);
    assert!(dirs[0].join("a").exists() && dirs[1].join("b").exists() && dirs[2].join("a").exists());
    assert_ne!(
        dirs[0], dirs[2],
        "same diff, different chain: its own directory"
    );
}

#[test_with::root()]
#[test]
fn a_layer_committed_as_a_directory_saves_and_loads_with_the_same_files_and_digests() {
    if !tool("skopeo") {
        panic!("skopeo is missing: run scripts/deps.sh");
    }
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&t.path().join("a")).unwrap();
    let base = store
        .import(&mut &busybox_tar(t.path())[..], "bb", Default::default())
        .unwrap();
    // What a COPY (or a container's upper dir) leaves: modes, owners, set-id bits, a symlink,
    // hard links, an empty file, a name past tar's 100 bytes, a whiteout (0/0 char device,
    // mode 0, as overlayfs makes them) and an opaque dir.
    let draft = store.layer_draft().unwrap();
    let d = draft.path().to_path_buf();
    assert!(
        d.starts_with(store.dir()),
        "drafts live in the store: {d:?}"
    );
    fs::create_dir_all(d.join("app/sub")).unwrap();
    fs::set_permissions(d.join("app/sub"), fs::Permissions::from_mode(0o750)).unwrap();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(d.join("app/big.bin"), &big).unwrap();
    fs::write(d.join("app/empty"), "").unwrap();
    fs::write(d.join("app/sub/tool"), "#!/bin/sh\n").unwrap();
    std::os::unix::fs::chown(d.join("app/sub/tool"), Some(1000), Some(50)).unwrap();
    fs::set_permissions(d.join("app/sub/tool"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::hard_link(d.join("app/big.bin"), d.join("app/big.link")).unwrap();
    std::os::unix::fs::symlink("../bin/busybox", d.join("app/bb")).unwrap();
    let long = format!("app/{}", "n".repeat(120));
    fs::write(d.join(&long), "long").unwrap();
    fs::create_dir(d.join("etc")).unwrap();
    let wh = std::ffi::CString::new(d.join("etc/hostname").as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(
        unsafe { libc::mknod(wh.as_ptr(), libc::S_IFCHR, 0) },
        0,
        "whiteout"
    );
    let sub = std::ffi::CString::new(d.join("app/sub").as_os_str().as_encoded_bytes()).unwrap();
    let r = unsafe {
        libc::lsetxattr(
            sub.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            b"y".as_ptr().cast(),
            1,
            0,
        )
    };
    assert_eq!(r, 0, "opaque xattr: {}", std::io::Error::last_os_error());
    let img = store
        .commit_dir(draft, Some(&base.id), new_image("dir"), &Default::default())
        .unwrap();
    assert!(
        !d.exists(),
        "the draft became the layer (renamed, not copied)"
    );
    let top = img.record.layers.last().unwrap().clone();
    assert_eq!(
        top.blob, top.diff_id,
        "a plain tar: its digest is the diff id"
    );
    assert!(!store.blobs().has(&top.blob), "no tar is stored at commit");
    let layer_dir = img.layer_dirs().last().unwrap().clone();
    assert_eq!(fs::read(layer_dir.join("app/big.bin")).unwrap(), big);
    let before = snapshot(&layer_dir);

    // The tar made on demand hashes to the diff id; flatten applies it (whiteout included).
    let flat = t.path().join("flat");
    fs::create_dir(&flat).unwrap();
    store.flatten(&img, &flat).unwrap();
    assert!(!flat.join("etc/hostname").exists());
    assert_eq!(fs::read(flat.join("app/big.link")).unwrap(), big);

    store.tag(&img.id, "dir:t").unwrap();
    let archive = t.path().join("dir.tar");
    berth_runtime::image::archive::save(
        &store,
        &["dir:t".to_owned()],
        fs::File::create(&archive).unwrap(),
    )
    .unwrap();
    // skopeo (a foreign reader) verifies every blob's digest and size when it copies.
    let o: serde_json::Value = serde_json::from_str(&sh(&format!(
        "skopeo inspect oci-archive:{}:t",
        archive.display()
    )))
    .unwrap();
    assert_eq!(o["Digest"].as_str().unwrap(), img.manifest_digest.as_str());
    let oci = t.path().join("copied-oci");
    sh(&format!(
        "skopeo copy -q --dest-oci-accept-uncompressed-layers docker-archive:{} oci:{}:t",
        archive.display(),
        oci.display()
    ));
    assert!(oci.join("blobs/sha256").join(top.blob.hex()).is_file());

    // Into a fresh root: the same image id, and the layer unpacks to the same files.
    let other = ImageStore::open(&t.path().join("b")).unwrap();
    let loaded =
        berth_runtime::image::archive::load(&other, fs::File::open(&archive).unwrap(), None)
            .unwrap();
    assert_eq!(loaded[0].id, img.id);
    let back = other.resolve("dir:t").unwrap();
    assert_eq!(back.manifest_digest, img.manifest_digest);
    assert_eq!(snapshot(back.layer_dirs().last().unwrap()), before);
    let a = fs::metadata(back.layer_dirs().last().unwrap().join("app/big.bin")).unwrap();
    let b = fs::metadata(back.layer_dirs().last().unwrap().join("app/big.link")).unwrap();
    assert_eq!(a.ino(), b.ino(), "hard link kept");

    // The same content committed again is found, and its draft removed.
    let layers_before = fs::read_dir(store.dir().join("l")).unwrap().count();
    let again = store.layer_draft().unwrap();
    let again_dir = again.path().to_path_buf();
    sh(&format!(
        "cp -a {}/. {}",
        layer_dir.display(),
        again_dir.display()
    ));
    let img2 = store
        .commit_dir(again, Some(&base.id), new_image("dir"), &Default::default())
        .unwrap();
    assert_eq!(img2.record.layers.last().unwrap().chain_id, top.chain_id);
    assert!(!again_dir.exists());
    assert_eq!(
        fs::read_dir(store.dir().join("l")).unwrap().count(),
        layers_before
    );

    // A layer directory changed behind the store's back fails the save, never writes a
    // wrong blob.
    fs::write(layer_dir.join(&long), "LONG").unwrap();
    let err = berth_runtime::image::archive::save(&store, &["dir:t".to_owned()], std::io::sink())
        .expect_err("changed layer");
    let chain = anyhow_chain(&err);
    assert!(chain.contains("was changed"), "{chain}");
    fs::write(layer_dir.join("app/empty"), "grown").unwrap();
    let err = berth_runtime::image::archive::save(&store, &["dir:t".to_owned()], std::io::sink())
        .expect_err("changed layer");
    let chain = anyhow_chain(&err);
    let want = format!("not the {} bytes", top.blob_size);
    assert!(chain.contains(&want), "{chain}");
}

fn anyhow_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
