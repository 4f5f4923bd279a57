//! A failed `image load` or `image import` leaves the store as it found it: no blob, layer,
//! image record or tag of the failed archive, nothing in tmp, and what was there before kept.

use std::fs;
use std::path::Path;

use berth_runtime::image::{Digest, ImageStore, archive};

/// A layer tar of (path, contents) files.
fn layer(entries: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (p, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, p, data.as_bytes())
            .expect("tar entry");
    }
    b.into_inner().expect("tar")
}

/// One image of a docker-save archive: its config and layers.
struct Entry {
    tag: &'static str,
    config: Vec<u8>,
    layers: Vec<Vec<u8>>,
}

fn entry(tag: &'static str, files: &[&[(&str, &str)]]) -> Entry {
    let layers: Vec<Vec<u8>> = files.iter().map(|f| layer(f)).collect();
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| Digest::of_bytes(l).to_string())
        .collect();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["/x"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    Entry {
        tag,
        config: serde_json::to_vec(&config).expect("config"),
        layers,
    }
}

/// A docker-save archive of `entries`; `manifest` replaces the generated manifest.json.
fn docker_archive(entries: &[Entry], manifest: Option<&[u8]>) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, path, data).expect("member");
    };
    let mut list = Vec::new();
    for e in entries {
        let cfg = format!("{}.json", Digest::of_bytes(&e.config).hex());
        add(&cfg, &e.config);
        let mut names = Vec::new();
        for l in &e.layers {
            let name = format!("{}/layer.tar", Digest::of_bytes(l).hex());
            add(&name, l);
            names.push(name);
        }
        list.push(serde_json::json!({"Config": cfg, "RepoTags": [e.tag], "Layers": names}));
    }
    let generated = serde_json::to_vec(&list).expect("manifest");
    add("manifest.json", manifest.unwrap_or(&generated));
    b.into_inner().expect("archive")
}

/// Everything the store holds, by kind: blobs, image records, tags, layer records, unpacked
/// layer dirs, temp files.
fn contents(store: &ImageStore) -> Vec<String> {
    let mut out = Vec::new();
    for d in store.blobs().list().expect("blobs") {
        out.push(format!("blob {d}"));
    }
    for i in store.list().expect("images") {
        out.push(format!("image {} {}:{}", i.id, i.repository, i.tag));
    }
    for sub in ["layers", "l", "tmp", "imagedb"] {
        let dir = store.dir().join(sub);
        for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
            out.push(format!("{sub}/{}", e.file_name().to_string_lossy()));
        }
    }
    out.sort();
    out
}

fn store_with_one_image(dir: &Path) -> (ImageStore, Vec<String>) {
    let store = ImageStore::open(dir).expect("store");
    let ok = docker_archive(&[entry("kept:1", &[&[("k", "kept")]])], None);
    archive::load(&store, &ok[..], None).expect("a good load");
    let before = contents(&store);
    assert!(before.iter().any(|c| c.contains("kept:1")), "{before:?}");
    (store, before)
}

#[test_with::root()]
#[test]
fn failed_loads_leave_nothing_behind() {
    let good = || entry("new:1", &[&[("a", "1")], &[("b", "22")]]);
    let second = || entry("new:2", &[&[("c", "333")]]);
    let full = docker_archive(&[good()], None);
    // A layer that is not a tar: its digest and diff id are the bytes', so it is stored and
    // only unpacking finds out.
    let mut corrupt = entry("new:1", &[&[("a", "1")]]);
    corrupt
        .layers
        .push(b"not a tar at all, but 512 bytes or more? no".repeat(20));
    let diff_ids: Vec<String> = corrupt
        .layers
        .iter()
        .map(|l| Digest::of_bytes(l).to_string())
        .collect();
    corrupt.config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .expect("config");
    // A layer over the size kept in memory is streamed into the blob store as it is read.
    let big = "z".repeat(5 << 20);
    let with_big = docker_archive(&[entry("big:1", &[&[("big", &big)], &[("s", "1")]])], None);
    let mut bad_tag = second();
    bad_tag.tag = "Not A Valid:Reference!";
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated archive", full[..full.len() * 2 / 3].to_vec()),
        (
            "truncated after a big layer",
            with_big[..with_big.len() - 3000].to_vec(),
        ),
        (
            "bad manifest.json",
            docker_archive(&[good()], Some(b"[{\"Config\": 1")),
        ),
        (
            "manifest naming a missing member",
            docker_archive(
                &[good()],
                Some(br#"[{"Config": "nope.json", "RepoTags": ["x:1"], "Layers": []}]"#),
            ),
        ),
        ("corrupt layer", docker_archive(&[corrupt], None)),
        (
            "second image bad after the first was added",
            docker_archive(&[good(), bad_tag], None),
        ),
    ];
    for (what, bytes) in cases {
        let t = tempfile::tempdir().expect("tempdir");
        let (store, before) = store_with_one_image(t.path());
        let err = archive::load(&store, &bytes[..], None);
        assert!(err.is_err(), "{what}: loaded");
        assert_eq!(contents(&store), before, "{what}: left behind");
        assert!(store.resolve("kept:1").is_ok(), "{what}: the old image");
    }
}

#[test_with::root()]
#[test]
fn failed_import_leaves_nothing_behind() {
    let t = tempfile::tempdir().expect("tempdir");
    let (store, before) = store_with_one_image(t.path());
    let big = "x".repeat(64 << 10);
    let tar = layer(&[("a", &big), ("b", &big)]);
    let truncated = &tar[..tar.len() / 2];
    let err = store.import(&mut &truncated[..], "truncated.tar", Default::default());
    assert!(err.is_err(), "imported a truncated tar");
    assert_eq!(contents(&store), before, "left behind");
    let err = store.import(
        &mut &b"not a tar at all"[..],
        "junk.tar",
        Default::default(),
    );
    assert!(err.is_err(), "imported junk");
    assert_eq!(contents(&store), before, "left behind");
}
