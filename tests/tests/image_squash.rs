//! `image squash`, `image build --squash` and `image analyze`: an image whose later layer deletes
//! what an earlier one added shows the waste, squashes smaller with its whole config, and runs
//! the same; whiteouts and opaque directories keep their meaning over a kept base; a symlink a
//! layer planted never carries a later layer's write out of the squashed layer.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use berth_runtime::build::exec::{BuildRequest, Builder};
use berth_runtime::image::analyze::analyze;
use berth_runtime::image::squash::{keep_for, shared_layers, squash};
use berth_runtime::image::{Image, ImageStore, NewImage};
use berth_tests::container_util::build_env::BuildEnv;
use berth_tests::container_util::{stderr, stdout};
use berth_tests::host::{self, Host};

const WASTEFUL: &str = "FROM bb:1
ENV APP=squashy
RUN dd if=/dev/zero of=/big bs=1024 count=3072 2>/dev/null && echo keep > /keep
RUN rm /big /bin/vi && echo more >> /keep
WORKDIR /srv
USER app
EXPOSE 8080/tcp
VOLUME /data
LABEL purpose=squash
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s CMD true
CMD [\"sh\", \"-c\", \"echo $APP $(id -un) $(pwd) $(cat /keep | tr '\\\\n' ' ')\"]
";

fn run(be: &BuildEnv, image: &str, cmd: &[&str]) -> (bool, String) {
    let mut args = vec!["container", "run", "--rm", "--network", "none", image];
    args.extend_from_slice(cmd);
    let out = be.env.berth(&args);
    (out.status.success(), stdout(&out))
}

fn build(be: &BuildEnv, tag: &str) -> (Image, Option<String>) {
    let rt = be.env.runtime();
    let b = Builder::new(&be.store, &rt, &be.env.root);
    let req = BuildRequest {
        context: be.ctx.clone(),
        tags: vec![tag.into()],
        ..Default::default()
    };
    let res = b.build(&req, |_| {}).expect("build");
    let base = res.final_base().map(str::to_owned);
    (res.image, base)
}

#[test_with::root()]
#[test]
fn analyze_shows_the_waste_and_squash_drops_it_keeping_the_config() {
    let be = BuildEnv::new();
    be.write("Dockerfile", WASTEFUL);
    let (img, base) = build(&be, "waste:1");
    assert_eq!(img.record.layers.len(), 3, "bb, dd, rm");

    // analyze: the dd layer's 3 MiB are wasted, the rm layer deleted /big and /bin/vi.
    let a = analyze(&img).expect("analyze");
    assert!(a.layers[1].wasted >= 3 << 20, "{a:?}");
    assert!(a.layers[1].instruction.contains("dd if=/dev/zero"), "{a:?}");
    assert_eq!(a.layers[2].deleted, 2, "{a:?}");
    assert_eq!(a.layers[2].changed, 1, "/keep rewritten: {a:?}");
    assert!(a.efficiency < 0.9, "{a:?}");
    assert_eq!(a.wasted_paths[0].path, "/big", "{a:?}");
    let out = be
        .env
        .berth(&["image", "analyze", "--format", "json", "waste:1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let j: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert!(j["layers"][1]["wasted"].as_u64() >= Some(3 << 20), "{j}");
    let table = be.env.berth(&["image", "analyze", "waste:1"]);
    assert!(stdout(&table).contains("Efficiency:"), "{}", stdout(&table));

    // squash through the CLI, to a new tag.
    let out = be
        .env
        .berth(&["image", "squash", "-t", "waste:squashed", "waste:1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let sq = be.store.resolve("waste:squashed").expect("squashed");
    assert_eq!(stdout(&out).trim(), sq.id.as_str());
    assert_eq!(sq.record.layers.len(), 1);
    assert!(
        sq.size() + (3 << 20) <= img.size(),
        "{} vs {}",
        sq.size(),
        img.size()
    );
    assert_eq!(
        sq.raw_config["config"], img.raw_config["config"],
        "the whole runtime config (Healthcheck included) is kept"
    );
    assert!(sq.healthcheck().is_some());
    let hist = sq.config.history().clone().unwrap_or_default();
    assert_eq!(hist.len(), 1, "{hist:?}");
    let comment = hist[0].comment().clone().unwrap_or_default();
    assert!(comment.contains("rm /big /bin/vi"), "{comment}");
    assert!(comment.contains("dd if=/dev/zero"), "{comment}");
    assert_eq!(
        be.store.resolve("waste:1").expect("original").id,
        img.id,
        "-t leaves the original tag alone"
    );

    // The squashed image runs as the original does.
    let (ok, want) = run(&be, "waste:1", &[]);
    assert!(ok && want.contains("squashy app /srv keep more"), "{want}");
    assert_eq!(run(&be, "waste:squashed", &[]), (true, want.clone()));
    assert!(!run(&be, "waste:squashed", &["ls", "/big"]).0);
    assert!(!run(&be, "waste:squashed", &["ls", "/bin/vi"]).0);

    // --from 0 keeps the base layer: the deletion of its /bin/vi is a whiteout over it.
    let keep = keep_for(&img, "0").expect("layer 0");
    let from = squash(&be.store, &img, keep, "test --from 0").expect("squash --from 0");
    assert_eq!(from.image.record.layers.len(), 2);
    assert_eq!(
        from.image.record.layers[0].chain_id,
        img.record.layers[0].chain_id
    );
    let hist = from.image.config.history().clone().unwrap_or_default();
    assert_eq!(hist[0].created_by().as_deref(), Some("busybox rootfs"));
    let top = from.image.layer_dirs()[1].clone();
    let vi = fs::symlink_metadata(top.join("bin/vi")).expect("whiteout");
    assert!(vi.file_type().is_char_device() && vi.rdev() == 0);
    assert!(!top.join("big").exists());
    be.store
        .tag(&from.image.id, "waste:from0")
        .expect("tag --from 0");
    assert_eq!(run(&be, "waste:from0", &[]), (true, want.clone()));
    assert!(!run(&be, "waste:from0", &["ls", "/bin/vi"]).0);
    assert!(run(&be, "waste:from0", &["ls", "/bin/ls"]).0);

    // What `build --squash` does: the layers over the FROM image become one.
    let base = be.store.resolve(&base.expect("FROM bb:1")).expect("base");
    assert_eq!(shared_layers(&img, &base), 1);

    // Without -t the squashed image takes the tag over.
    let out = be.env.berth(&["image", "squash", "waste:1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let now = be.store.resolve("waste:1").expect("retagged");
    assert_eq!(now.id.as_str(), stdout(&out).trim());
    assert_eq!(now.record.layers.len(), 1);
}

/// A store in a temp dir (whiteouts and opaque marks need root: mknod, trusted xattrs).
fn store() -> (tempfile::TempDir, ImageStore) {
    let tmp = tempfile::tempdir().expect("tmp");
    let s = ImageStore::open(tmp.path()).expect("store");
    (tmp, s)
}

enum Entry<'a> {
    Dir(&'a str),
    File(&'a str, &'a str),
    Link(&'a str, &'a str),
}

fn layer_tar(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1);
        match e {
            Entry::Dir(p) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, p, std::io::empty()).expect("dir");
            }
            Entry::File(p, body) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(body.len() as u64);
                b.append_data(&mut h, p, body.as_bytes()).expect("file");
            }
            Entry::Link(p, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, p, target).expect("link");
            }
        }
    }
    b.into_inner().expect("tar")
}

fn stack(store: &ImageStore, layers: &[Vec<u8>]) -> Image {
    let mut parent = None;
    let mut img = None;
    for (i, l) in layers.iter().enumerate() {
        let mut cfg = oci_spec::image::Config::default();
        cfg.set_cmd(Some(vec!["/bin/true".into()]));
        let new = NewImage {
            config: cfg,
            created_by: format!("layer {i}"),
            ..Default::default()
        };
        let im = store
            .commit(Some(&mut l.as_slice()), parent.as_ref(), new)
            .expect("commit");
        parent = Some(im.id.clone());
        img = Some(im);
    }
    img.expect("layers")
}

fn opaque(p: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).expect("path");
    let mut v = [0u8; 8];
    // SAFETY: NUL-terminated strings and a buffer of the length passed.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            v.as_mut_ptr().cast(),
            v.len(),
        )
    };
    n == 1 && v[0] == b'y'
}

#[test_with::root()]
#[test]
fn whiteouts_and_opaque_directories_keep_their_meaning() {
    let (_t, s) = store();
    let img = stack(
        &s,
        &[
            layer_tar(&[
                Entry::Dir("a"),
                Entry::File("a/x", "xx"),
                Entry::File("a/y", "yyy"),
                Entry::File("f", "ffff"),
            ]),
            layer_tar(&[
                Entry::Dir("a"),
                Entry::File("a/.wh.x", ""),
                Entry::File(".wh.f", ""),
                Entry::File("g", "g"),
            ]),
            layer_tar(&[
                Entry::Dir("a"),
                Entry::File("a/.wh..wh..opq", ""),
                Entry::File("a/z", "z"),
                Entry::File("f", "again"),
            ]),
        ],
    );
    let a = analyze(&img).expect("analyze");
    assert_eq!(a.layers[0].wasted, 2 + 3 + 4, "{a:?}");
    assert_eq!(a.layers[1].deleted, 2, "{a:?}");
    assert_eq!(a.layers[2].deleted, 1, "a/y under the opaque dir: {a:?}");
    assert_eq!(a.layers[2].added, 2, "{a:?}");

    let all = squash(&s, &img, 0, "all").expect("squash");
    let d = all.image.layer_dirs()[0].clone();
    let mut names: Vec<String> = walk(&d);
    names.sort();
    assert_eq!(names, ["a", "a/z", "f", "g"]);
    assert_eq!(fs::read_to_string(d.join("f")).expect("f"), "again");
    assert!(!opaque(&d.join("a")), "no base: nothing to hide");

    // Over layer 0: a/x deleted (whiteout kept only through the opaque dir), a opaque.
    let over = squash(&s, &img, 1, "over").expect("squash --from 0");
    let d = over.image.layer_dirs()[1].clone();
    assert!(
        opaque(&d.join("a")),
        "a replaced: the base's a/y must not show"
    );
    assert_eq!(fs::read_to_string(d.join("f")).expect("f"), "again");
    assert_eq!(fs::read_to_string(d.join("g")).expect("g"), "g");

    // Over layers 0-1: only the last layer's changes; f was a whiteout below, now a file.
    let top = squash(&s, &img, 2, "top").expect("squash --from 1");
    assert_eq!(top.image.record.layers.len(), 3);
    let err = squash(&s, &img, 3, "none").expect_err("nothing above the last layer");
    assert!(err.to_string().contains("no layers above"), "{err}");
    let err = keep_for(&img, "7").expect_err("no layer 7");
    assert!(err.to_string().contains("index from 0 to 2"), "{err}");
    assert_eq!(
        keep_for(&img, &img.record.layers[1].diff_id.to_string()).expect("by diff id"),
        2
    );
}

fn walk(d: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        for e in fs::read_dir(d.join(&rel)).expect("read").flatten() {
            let r = rel.join(e.file_name());
            if e.file_type().expect("type").is_dir() {
                todo.push(r.clone());
            }
            out.push(r.display().to_string());
        }
    }
    out
}

#[test_with::root()]
#[test]
fn a_planted_symlink_never_carries_a_later_write_out_of_the_squash() {
    let sentinel = tempfile::Builder::new()
        .prefix("berth-sentinel")
        .tempdir_in("/tmp")
        .expect("sentinel");
    fs::set_permissions(sentinel.path(), fs::Permissions::from_mode(0o750)).expect("chmod");
    let target = sentinel.path().to_str().expect("utf-8").to_owned();
    let (_t, s) = store();
    let img = stack(
        &s,
        &[
            layer_tar(&[Entry::Link("evil", &target), Entry::Link("up", "/")]),
            layer_tar(&[
                Entry::Dir("evil"),
                Entry::File("evil/pwned", "owned"),
                Entry::Dir("up"),
                Entry::Dir("up/tmp"),
                Entry::File("up/tmp/pwned", "owned"),
            ]),
        ],
    );
    for keep in [0, 1] {
        let sq = squash(&s, &img, keep, "attack").expect("squash");
        let d = sq.image.layer_dirs()[keep].clone();
        assert!(fs::symlink_metadata(d.join("evil")).expect("evil").is_dir());
        assert_eq!(
            fs::read_to_string(d.join("evil/pwned")).expect("in the layer"),
            "owned"
        );
        assert!(fs::symlink_metadata(d.join("up/tmp/pwned")).is_ok());
        let left: Vec<_> = fs::read_dir(sentinel.path()).expect("read").collect();
        assert!(left.is_empty(), "written through the link: {left:?}");
        assert!(!Path::new("/tmp/pwned").exists(), "written through up -> /");
    }
    let a = analyze(&img).expect("analyze");
    assert_eq!(a.layers[1].changed + a.layers[1].added, 2, "{a:?}");
}

/// The CLI's `image build --squash`: the build's layers over busybox become one, the base's
/// stay, the tag names the squashed image.
#[test_with::root()]
#[test]
fn build_squash_merges_the_layers_over_the_base() {
    host::require_tools();
    let host = Host::new("bsquash");
    host.busybox_image();
    let mut f = fs::File::create(host.stack.join("Dockerfile")).expect("Dockerfile");
    f.write_all(
        b"FROM busybox:e2e\nRUN --network=none dd if=/dev/zero of=/big bs=1024 count=1024 2>/dev/null\nRUN --network=none rm /big && echo ok > /ok\nCMD [\"cat\", \"/ok\"]\n",
    )
    .expect("write");
    let ctx = host.stack.display().to_string();
    host.ok(&["image", "build", "-q", "-t", "plain:1", &ctx]);
    let id = host.ok(&["image", "build", "--squash", "-q", "-t", "sq:1", &ctx]);
    let layers = |r: &str| -> usize {
        let j: serde_json::Value =
            serde_json::from_str(&host.ok(&["image", "inspect", r])).expect("inspect");
        j[0]["RootFS"]["Layers"].as_array().map_or(0, Vec::len)
    };
    let base = layers("busybox:e2e");
    assert_eq!(layers("plain:1"), base + 2);
    assert_eq!(layers("sq:1"), base + 1);
    let j: serde_json::Value =
        serde_json::from_str(&host.ok(&["image", "inspect", "sq:1"])).expect("inspect");
    assert_eq!(j[0]["Id"].as_str(), Some(id.trim()));
    let out = host.ok(&["container", "run", "--rm", "--network", "none", "sq:1"]);
    assert_eq!(out.trim(), "ok");
}
