//! Host escapes through symlinks: every write into a layer, a container rootfs, a volume or a
//! `cp` destination resolves its path inside that root, never outside. Each test points its
//! symlinks at a sentinel directory on the host (a temp dir, never a real system path) and
//! checks that nothing appeared or changed there, and that the image or container got what a
//! Docker user expects (the link followed as if the root were `/`).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use berth_runtime::build::exec::{BuildError, BuildRequest, Builder};
use berth_tests::container_util::build_env::BuildEnv;
use berth_tests::container_util::{Env, stderr, stdout};

/// A host directory that must stay as it is: empty, mode 0750.
struct Sentinel {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Sentinel {
    fn new() -> Sentinel {
        let dir = tempfile::Builder::new()
            .prefix("berth-sentinel")
            .tempdir_in("/tmp")
            .expect("sentinel dir");
        let path = dir.path().to_path_buf();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o750)).expect("chmod");
        fs::write(path.join("secret"), "host secret\n").expect("secret");
        Sentinel { _dir: dir, path }
    }

    fn s(&self) -> &str {
        self.path.to_str().expect("utf-8 temp path")
    }

    /// Nothing but `secret` there, the mode and owner unchanged.
    fn assert_untouched(&self) {
        let names: Vec<String> = fs::read_dir(&self.path)
            .expect("read sentinel")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["secret"], "something was written on the host");
        let md = fs::metadata(&self.path).expect("stat sentinel");
        assert_eq!(md.mode() & 0o7777, 0o750, "the host dir was chmodded");
        assert_eq!((md.uid(), md.gid()), (0, 0), "the host dir was chowned");
        assert_eq!(
            fs::read_to_string(self.path.join("secret")).expect("secret"),
            "host secret\n"
        );
    }
}

/// This file's build and run helpers on the harness's builder instance.
trait EscapeBuild {
    fn link(&self, rel: &str, target: &str);
    fn build(&self, tag: &str, dockerfile: &str) -> Result<String, BuildError>;
    fn sh(&self, image: &str, script: &str) -> String;
}

impl EscapeBuild for BuildEnv {
    fn link(&self, rel: &str, target: &str) {
        let p = self.ctx.join(rel);
        if let Some(d) = p.parent() {
            fs::create_dir_all(d).expect("dir");
        }
        symlink(target, p).expect("symlink");
    }

    fn build(&self, tag: &str, dockerfile: &str) -> Result<String, BuildError> {
        self.write("Dockerfile", dockerfile);
        let rt = self.env.runtime();
        let b = Builder::new(&self.store, &rt, &self.env.root);
        let req = BuildRequest {
            context: self.ctx.clone(),
            tags: vec![tag.into()],
            no_cache: true,
            ..Default::default()
        };
        Ok(b.build(&req, |_| {})?.image.id.to_string())
    }

    /// `sh -c SCRIPT` in a throwaway container of `image`: its stdout.
    fn sh(&self, image: &str, script: &str) -> String {
        let out = self.env.berth(&[
            "container",
            "run",
            "--rm",
            "--network",
            "none",
            image,
            "sh",
            "-c",
            script,
        ]);
        assert!(out.status.success(), "run {image}: {}", stderr(&out));
        stdout(&out)
    }
}

fn tar_bytes(entries: &[(&str, Option<&str>, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, link, data) in entries {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_mtime(0);
        match link {
            Some(t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, path, t).expect("link entry");
            }
            None => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, path, data.as_bytes())
                    .expect("file entry");
            }
        }
    }
    b.into_inner().expect("tar")
}

#[test_with::root()]
#[test]
fn copy_of_several_sources_never_writes_through_a_link_the_first_placed() {
    let s = Sentinel::new();
    let be = BuildEnv::new();
    be.link("a/x", s.s());
    be.write("b/x/file", "from b\n");
    // b/x is also a directory: its mode must not land on the host dir.
    fs::set_permissions(be.ctx.join("b/x"), fs::Permissions::from_mode(0o777)).expect("chmod");
    be.build("several:1", "FROM bb:1\nCOPY a b /dst/\n")
        .expect("build");
    s.assert_untouched();
    // Inside the image the link is followed as if the root were `/`.
    let out = be.sh("several:1", &format!("readlink /dst/x; cat {}/file", s.s()));
    assert_eq!(out, format!("{}\nfrom b\n", s.s()));
    drop(be.store);
    be.env.assert_clean();
}

#[test_with::root()]
#[test]
fn successive_copies_follow_an_earlier_link_inside_the_image() {
    let s = Sentinel::new();
    let be = BuildEnv::new();
    be.link("a/x", s.s());
    be.write("b/x/file", "from b\n");
    be.link("c/y", "../../../../../../..");
    be.write("d/y/up", "up\n");
    be.build(
        "successive:1",
        "FROM bb:1\nCOPY a /dst/\nCOPY b /dst/\nCOPY c /d2/\nCOPY d /d2/\n",
    )
    .expect("build");
    s.assert_untouched();
    let out = be.sh("successive:1", &format!("cat {}/file /up", s.s()));
    assert_eq!(out, "from b\nup\n");
    drop(be.store);
    be.env.assert_clean();
}

#[test_with::root()]
#[test]
fn copy_from_a_stage_reads_and_writes_inside_the_roots() {
    let s = Sentinel::new();
    let be = BuildEnv::new();
    let df = format!(
        "FROM bb:1 AS src\n\
         RUN ln -s {0} /lnk && mkdir -p /d /e/x && ln -s {0} /d/x && echo staged > /e/x/file \
         && echo in-stage > /own\n\
         FROM bb:1\n\
         COPY --from=src /lnk/secret /got\n\
         COPY --from=src /d /e /dst/\n",
        s.s()
    );
    // The stage has no {sentinel}/secret: reading the host's copy is the escape. Docker fails
    // the same way ("not found").
    let err = be.build("from:1", &df);
    assert!(
        err.is_err(),
        "COPY --from read the host's file through a stage's link"
    );
    s.assert_untouched();
    let df = format!(
        "FROM bb:1 AS src\n\
         RUN mkdir -p /d /e/x && ln -s {0} /d/x && echo staged > /e/x/file\n\
         FROM bb:1\n\
         COPY --from=src /d /e /dst/\n",
        s.s()
    );
    be.build("from:2", &df).expect("build");
    s.assert_untouched();
    let out = be.sh("from:2", &format!("cat {}/file", s.s()));
    assert_eq!(out, "staged\n");
    drop(be.store);
    be.env.assert_clean();
}

#[test_with::root()]
#[test]
fn add_of_a_tar_writes_through_links_only_inside_the_image() {
    let s = Sentinel::new();
    let be = BuildEnv::new();
    be.link("a/x", s.s());
    fs::write(
        be.ctx.join("t.tar"),
        tar_bytes(&[("x/file", None, "from tar\n")]),
    )
    .expect("tar");
    // A link the archive places itself, then an entry through it.
    fs::write(
        be.ctx.join("self.tar"),
        tar_bytes(&[("l", Some(s.s()), ""), ("l/own", None, "own link\n")]),
    )
    .expect("tar");
    // A link an earlier layer placed.
    be.link("e/x", s.s());
    fs::write(
        be.ctx.join("later.tar"),
        tar_bytes(&[("x/later", None, "later\n")]),
    )
    .expect("tar");
    be.build(
        "addtar:1",
        "FROM bb:1\nADD a t.tar /dst/\nADD self.tar /s/\nCOPY e /e/\nADD later.tar /e/\n",
    )
    .expect("build");
    s.assert_untouched();
    let out = be.sh(
        "addtar:1",
        &format!(
            "cat {0}/file {0}/own {0}/later; readlink /dst/x; readlink /e/x",
            s.s()
        ),
    );
    assert_eq!(out, format!("from tar\nown link\nlater\n{0}\n{0}\n", s.s()));
    drop(be.store);
    be.env.assert_clean();
}

/// A created (never started) container from `image` named `name`.
fn create(env: &Env, name: &str, image: &str, extra: &[&str]) {
    let mut args = vec!["container", "create", "--name", name, "--network", "none"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[image, "sleep", "1000"]);
    let out = env.berth(&args);
    assert!(out.status.success(), "create: {}", stderr(&out));
}

fn berth_ok(env: &Env, args: &[&str]) -> String {
    let out = env.berth(args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

#[test_with::root()]
#[test]
fn cp_both_ways_resolves_container_links_in_the_container() {
    let s = Sentinel::new();
    let be = BuildEnv::new();
    let df = format!(
        "FROM bb:1\nRUN ln -s {0} /lnk && ln -s / /rootlnk && ln -s {0}/secret /sec \
         && mkdir -p {0} && echo container > {0}/secret\n",
        s.s()
    );
    be.build("cp:1", &df).expect("build");
    let env = &be.env;
    let name = format!("cp-{}", std::process::id());
    for running in [false, true] {
        let n = format!("{name}-{running}");
        create(env, &n, "cp:1", &[]);
        if running {
            berth_ok(env, &["container", "start", &n]);
        }
        let host = env.tmp.path().join(format!("host-{running}"));
        fs::create_dir_all(&host).expect("host dir");
        fs::write(host.join("in.txt"), "into\n").expect("write");
        // Host -> container through links to the container's own paths.
        let src = host.join("in.txt");
        let src = src.to_str().expect("utf-8");
        berth_ok(env, &["container", "cp", src, &format!("{n}:/lnk/")]);
        berth_ok(
            env,
            &["container", "cp", src, &format!("{n}:/rootlnk{}/", s.s())],
        );
        s.assert_untouched();
        // Container -> host: a link is copied as a link, never as the host's file.
        let out = host.join("out");
        fs::create_dir_all(&out).expect("out");
        let outs = out.to_str().expect("utf-8");
        berth_ok(env, &["container", "cp", &format!("{n}:/sec"), outs]);
        assert_eq!(
            fs::read_link(out.join("sec")).expect("a link"),
            Path::new(&format!("{}/secret", s.s()))
        );
        // Through a link the path is the container's.
        berth_ok(env, &["container", "cp", &format!("{n}:/lnk/secret"), outs]);
        assert_eq!(
            fs::read_to_string(out.join("secret")).expect("copied"),
            "container\n"
        );
        berth_ok(env, &["container", "cp", &format!("{n}:/lnk"), outs]);
        assert!(
            fs::symlink_metadata(out.join("lnk"))
                .expect("lnk")
                .is_symlink()
        );
        // What went in landed in the container's own sentinel path.
        berth_ok(
            env,
            &["container", "cp", &format!("{n}:{}/in.txt", s.s()), outs],
        );
        assert_eq!(
            fs::read_to_string(out.join("in.txt")).expect("back"),
            "into\n"
        );
        s.assert_untouched();
        berth_ok(env, &["container", "rm", "-f", &n]);
    }
    drop(be.store);
    be.env.assert_clean();
}

#[test_with::root()]
#[test]
fn cp_to_a_new_name_creates_it_both_ways() {
    let be = BuildEnv::new();
    be.build(
        "cpn:1",
        "FROM bb:1\nRUN mkdir -p /d/sub && echo f > /d/sub/f && echo one > /one\n",
    )
    .expect("build");
    let env = &be.env;
    let n = format!("cpn-{}", std::process::id());
    create(env, &n, "cpn:1", &[]);
    let host = env.tmp.path().join("h");
    fs::create_dir_all(&host).expect("host dir");
    let h = |p: &str| host.join(p).to_str().expect("utf-8").to_string();
    // Container -> host, a file and a dir under names that do not exist yet.
    berth_ok(
        env,
        &["container", "cp", &format!("{n}:/one"), &h("newfile")],
    );
    assert_eq!(
        fs::read_to_string(host.join("newfile")).expect("file"),
        "one\n"
    );
    berth_ok(env, &["container", "cp", &format!("{n}:/d"), &h("newdir")]);
    assert_eq!(
        fs::read_to_string(host.join("newdir/sub/f")).expect("dir"),
        "f\n"
    );
    // An existing file is overwritten.
    berth_ok(
        env,
        &["container", "cp", &format!("{n}:/one"), &h("newdir/sub/f")],
    );
    assert_eq!(
        fs::read_to_string(host.join("newdir/sub/f")).expect("f"),
        "one\n"
    );
    // Host -> container likewise.
    berth_ok(
        env,
        &["container", "cp", &h("newfile"), &format!("{n}:/renamed")],
    );
    berth_ok(env, &["container", "cp", &h("newdir"), &format!("{n}:/d2")]);
    berth_ok(env, &["container", "start", &n]);
    let out = berth_ok(
        env,
        &["container", "exec", &n, "cat", "/renamed", "/d2/sub/f"],
    );
    assert_eq!(out, "one\none\n");
    // A missing parent is an error naming the path.
    let bad = env.berth(&["container", "cp", &format!("{n}:/one"), &h("no/such/x")]);
    assert!(!bad.status.success());
    berth_ok(env, &["container", "rm", "-f", &n]);
    drop(be.store);
    be.env.assert_clean();
}

#[test_with::root()]
#[test]
fn volume_seeding_stays_inside_the_volume_and_the_image() {
    let s = Sentinel::new();
    let be = BuildEnv::new();
    let df = format!(
        "FROM bb:1\nRUN mkdir -p /data {0} && ln -s {0} /data/lnk && echo img > {0}/img \
         && ln -s {0} /vlink && echo seeded > /data/f\n",
        s.s()
    );
    be.build("vol:1", &df).expect("build");
    let env = &be.env;
    let pid = std::process::id();
    for (i, target) in ["/data", "/vlink"].iter().enumerate() {
        let vol = format!("v{pid}-{i}");
        berth_ok(env, &["volume", "create", &vol]);
        let out = berth_ok(
            env,
            &[
                "container",
                "run",
                "--rm",
                "--network",
                "none",
                "-v",
                &format!("{vol}:{target}"),
                "vol:1",
                "sh",
                "-c",
                &format!("ls {target} | sort | tr '\\n' ' '"),
            ],
        );
        // /vlink -> sentinel: resolved in the image, seeded from the image's dir.
        let want = if i == 0 { "f lnk " } else { "img " };
        assert_eq!(out, want);
        s.assert_untouched();
        berth_ok(env, &["volume", "rm", &vol]);
    }
    drop(be.store);
    be.env.assert_clean();
}

#[test_with::root()]
#[test]
fn commit_and_export_keep_links_as_links() {
    let s = Sentinel::new();
    let be = BuildEnv::new();
    be.build("cx:1", "FROM bb:1\n").expect("build");
    let env = &be.env;
    let n = format!("cx-{}", std::process::id());
    let script = format!(
        "ln -s {0} /lnk; ln -s {0}/secret /sec; echo mine > /mine",
        s.s()
    );
    let out = env.berth(&[
        "container",
        "run",
        "--name",
        &n,
        "--network",
        "none",
        "cx:1",
        "sh",
        "-c",
        &script,
    ]);
    assert!(out.status.success(), "run: {}", stderr(&out));
    berth_ok(env, &["container", "commit", &n, "cx:2"]);
    let tar = env.tmp.path().join("export.tar");
    berth_ok(
        env,
        &[
            "container",
            "export",
            "-o",
            tar.to_str().expect("utf-8"),
            &n,
        ],
    );
    let mut a = tar::Archive::new(fs::File::open(&tar).expect("tar"));
    let mut seen = 0;
    for e in a.entries().expect("entries") {
        let e = e.expect("entry");
        let p = e.path().expect("path").to_string_lossy().into_owned();
        if p == "lnk" || p == "sec" {
            assert_eq!(e.header().entry_type(), tar::EntryType::Symlink, "{p}");
            seen += 1;
        }
        assert!(!p.ends_with("secret"), "exported the host's {p}");
    }
    assert_eq!(seen, 2);
    let out = be.sh(
        "cx:2",
        "readlink /lnk; readlink /sec; cat /mine; cat /sec || echo dangling",
    );
    assert_eq!(out, format!("{0}\n{0}/secret\nmine\ndangling\n", s.s()));
    s.assert_untouched();
    berth_ok(env, &["container", "rm", "-f", &n]);
    drop(be.store);
    be.env.assert_clean();
}

#[test_with::root()]
#[test]
fn mount_targets_resolve_inside_the_rootfs() {
    let s = Sentinel::new();
    let be = BuildEnv::new();
    be.build(
        "mnt:1",
        &format!(
            "FROM bb:1\nRUN ln -s {0} /lnk && ln -s {0}/f /flink\n",
            s.s()
        ),
    )
    .expect("build");
    let env = &be.env;
    let host = env.tmp.path().join("bind");
    fs::create_dir_all(&host).expect("bind dir");
    fs::write(host.join("hello"), "bound\n").expect("write");
    let file = env.tmp.path().join("file");
    fs::write(&file, "file\n").expect("write");
    let out = berth_ok(
        env,
        &[
            "container",
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            &format!("{}:/lnk/m", host.display()),
            "-v",
            &format!("{}:/flink:ro", file.display()),
            "--tmpfs",
            "/lnk/t",
            "mnt:1",
            "sh",
            "-c",
            &format!(
                "cat {0}/m/hello {0}/f; grep -c ' {0}/t ' /proc/mounts",
                s.s()
            ),
        ],
    );
    assert_eq!(out, "bound\nfile\n1\n");
    s.assert_untouched();
    drop(be.store);
    be.env.assert_clean();
}
