//! The image builder end to end: Dockerfiles over a busybox-static base image, run by
//! the real runtime into the real image store. Network only inside namespaces and on loopback
//! the tests make (a web server playing the internet, a local registry for `--pull`).

use berth_tests::host::{self, Host};

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;
use std::process::Command;

use berth_runtime::build::exec::{BUILD_LABEL, BuildError, BuildRequest, Builder, StepReport};
use berth_runtime::container::{ContainerConfig, RootfsSource};
use berth_runtime::image::{ImageStore, NewImage};
use berth_tests::container_util::build_env::BuildEnv;
use berth_tests::container_util::{stderr, stdout};

/// This file's build and run helpers on the harness's builder instance.
trait ImageBuild {
    fn build(&self, tag: &str, no_cache: bool) -> Result<(String, Vec<StepReport>), BuildError>;
    fn run(&self, image: &str, cmd: &[&str]) -> String;
}

impl ImageBuild for BuildEnv {
    fn build(&self, tag: &str, no_cache: bool) -> Result<(String, Vec<StepReport>), BuildError> {
        let rt = self.env.runtime();
        let b = Builder::new(&self.store, &rt, &self.env.root);
        let req = BuildRequest {
            context: self.ctx.clone(),
            tags: vec![tag.into()],
            no_cache,
            ..Default::default()
        };
        let res = b.build(&req, |_| {})?;
        Ok((res.image.id.to_string(), res.steps))
    }

    /// `berth container run --rm IMAGE CMD...` stdout.
    fn run(&self, image: &str, cmd: &[&str]) -> String {
        let mut args = vec!["container", "run", "--rm", "--network", "none", image];
        args.extend_from_slice(cmd);
        let out = self.env.berth(&args);
        assert!(out.status.success(), "run {image}: {}", stderr(&out));
        stdout(&out)
    }
}

fn cached(steps: &[StepReport]) -> Vec<bool> {
    steps.iter().map(|s| s.cached).collect()
}

const APP: &str = "FROM bb:1
ENV GREETING=hi
RUN echo built > /built && rm /bin/vi
WORKDIR /app
COPY hello.txt sub ./
COPY --chown=app:staff --chmod=600 hello.txt /owned
USER app
CMD [\"cat\", \"/app/hello.txt\"]
";

#[test]
fn run_copy_env_workdir_user_and_whiteouts_land_in_the_image() {
    let be = BuildEnv::new();
    be.write("Dockerfile", APP);
    be.write("hello.txt", "hello\n");
    be.write("sub/a", "a\n");
    let (id, steps) = be.build("app:1", false).expect("build");
    assert_eq!(steps.len(), 8);
    assert_eq!(
        steps[2].display, "[3/8] RUN echo built > /built && rm /bin/vi",
        "{steps:?}"
    );
    assert!(steps[1..].iter().all(|s| !s.cached), "{steps:?}");

    assert_eq!(be.run("app:1", &[]), "hello\n");
    let out = be.run(
        "app:1",
        &[
            "sh",
            "-c",
            "id -u; pwd; echo $GREETING; cat /built; cat /app/a; test -e /bin/vi || echo novi; stat -c '%u:%g %a' /owned",
        ],
    );
    assert_eq!(out, "1000\n/app\nhi\nbuilt\na\nnovi\n1000:50 600\n");

    // The RUN layer holds /bin/vi as an overlay whiteout: the lower layer still pays for it.
    let img = be.store.resolve(&id).expect("resolve");
    let dirs = img.layer_dirs();
    assert_eq!(dirs.len(), 4, "base + RUN + 2 COPY layers");
    let vi = fs::symlink_metadata(dirs[1].join("bin/vi")).expect("whiteout in the RUN layer");
    assert!(vi.file_type().is_char_device() && vi.rdev() == 0, "{vi:?}");
    assert!(fs::symlink_metadata(dirs[0].join("bin/vi")).is_ok());
    let hist = be.store.history("app:1").expect("history");
    assert_eq!(hist.len(), 8, "{hist:?}");
    assert_eq!(hist[0].created_by, "CMD [\"cat\", \"/app/hello.txt\"]");
    assert!(hist[0].empty_layer);
    drop(be.store);
    be.env.assert_clean();
}

#[test]
fn rebuilds_hit_the_cache_until_content_changes() {
    let be = BuildEnv::new();
    be.write("Dockerfile", APP);
    be.write("hello.txt", "hello\n");
    be.write("sub/a", "a\n");
    let (id1, _) = be.build("app:1", false).expect("first build");

    let (id2, steps) = be.build("app:1", false).expect("cached build");
    assert_eq!(id1, id2);
    assert!(steps.iter().all(|s| s.cached), "{steps:?}");
    assert!(be.env.container_ids().is_empty());

    // mtime only: still a hit.
    let st = Command::new("touch")
        .args(["-d", "2001-02-03 04:05:06"])
        .arg(be.ctx.join("hello.txt"))
        .status()
        .expect("touch");
    assert!(st.success());
    let (id3, steps) = be.build("app:1", false).expect("touched build");
    assert_eq!(id1, id3);
    assert!(steps.iter().all(|s| s.cached), "{steps:?}");

    // Content: everything from the first COPY of it on reruns, nothing before.
    be.write("hello.txt", "changed\n");
    let (id4, steps) = be.build("app:1", false).expect("changed build");
    assert_ne!(id1, id4);
    assert_eq!(
        cached(&steps),
        vec![true, true, true, true, false, false, false, false]
    );
    assert_eq!(be.run("app:1", &[]), "changed\n");

    // --no-cache reruns every step.
    let (_, steps) = be.build("app:1", true).expect("no-cache build");
    assert!(steps[1..].iter().all(|s| !s.cached), "{steps:?}");
    drop(be.store);
    be.env.assert_clean();
}

#[test]
fn failing_run_names_the_step_exit_code_and_output_and_leaves_no_container() {
    let be = BuildEnv::new();
    be.write(
        "Dockerfile",
        "FROM bb:1\nRUN echo first\nRUN echo to-stdout; echo to-stderr >&2; exit 3\nRUN echo never\n",
    );
    let err = be.build("bad:1", false).expect_err("must fail");
    match &err {
        BuildError::RunFailed {
            step, code, output, ..
        } => {
            assert_eq!(step, "[3/4] RUN echo to-stdout; echo to-stderr >&2; exit 3");
            assert_eq!(*code, 3);
            assert!(output.contains("to-stdout"), "{output}");
            assert!(output.contains("to-stderr"), "{output}");
        }
        other => panic!("unexpected error: {other:?}"),
    }
    assert!(be.env.container_ids().is_empty());
    assert!(be.store.resolve("bad:1").is_err());
    // The step before the failure stays cached.
    be.write("Dockerfile", "FROM bb:1\nRUN echo first\nRUN true\n");
    let (_, steps) = be.build("bad:1", false).expect("fixed build");
    assert_eq!(cached(&steps), vec![true, true, false]);
    drop(be.store);
    be.env.assert_clean();
}

#[test]
fn cli_build_prints_steps_and_cached_and_builder_prune_empties_the_cache() {
    let be = BuildEnv::new();
    be.write(
        "Dockerfile",
        // No network: this test runs in the host's namespace, where no daemon (and no build
        // bridge) may appear.
        "FROM bb:1\nARG WHO=world\nRUN --network=none echo $WHO > /who\n",
    );
    let ctx = be.ctx.display().to_string();
    let out = be.env.berth(&[
        "image",
        "build",
        "-t",
        "cli:1",
        "--build-arg",
        "WHO=berth",
        &ctx,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("[3/3] RUN --network=none echo $WHO > /who"),
        "{err}"
    );
    assert!(
        !err.contains("[3/3] RUN --network=none echo $WHO > /who CACHED"),
        "{err}"
    );
    assert!(stdout(&out).starts_with("sha256:"));
    assert_eq!(be.run("cli:1", &["cat", "/who"]), "berth\n");

    let out = be.env.berth(&[
        "image",
        "build",
        "-t",
        "cli:1",
        "--build-arg",
        "WHO=berth",
        &ctx,
    ]);
    assert!(stderr(&out).contains("[3/3] RUN --network=none echo $WHO > /who CACHED"));

    // A RUN container a killed build left behind goes with the prune.
    let img = be.store.resolve("bb:1").expect("bb");
    let mut cfg = ContainerConfig::new(RootfsSource::Layers(img.layer_dirs()), vec!["true".into()]);
    cfg.labels.insert(BUILD_LABEL.into(), "[2/3] RUN x".into());
    be.env.runtime().create(cfg).expect("left-over container");
    assert_eq!(be.env.container_ids().len(), 1);

    let out = be.env.berth(&["builder", "prune"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Deleted build cache entries: 2"),
        "{}",
        stdout(&out)
    );
    assert!(be.env.container_ids().is_empty(), "build container left");
    // The tagged result stays.
    assert_eq!(be.run("cli:1", &["cat", "/who"]), "berth\n");
    let out = be.env.berth(&[
        "image",
        "build",
        "-t",
        "cli:1",
        "--build-arg",
        "WHO=berth",
        &ctx,
    ]);
    assert!(!stderr(&out).contains("RUN --network=none echo $WHO > /who CACHED"));
    drop(be.store);
    be.env.assert_clean();
}

#[test]
fn multi_stage_copy_from_a_stage_and_target() {
    let be = BuildEnv::new();
    be.write(
        "Dockerfile",
        "FROM bb:1 AS build\nRUN mkdir -p /out/lib && echo artifact > /out/lib/a && echo bin > /out/tool\n\
         FROM bb:1 AS unused\nRUN exit 1\n\
         FROM bb:1\nCOPY --from=build /out/lib /opt/lib\nCOPY --from=build --chown=app --chmod=750 /out/to* /usr/bin/\n",
    );
    let (_, steps) = be.build("multi:1", false).expect("multi-stage build");
    assert!(
        steps.iter().all(|s| !s.display.contains("exit 1")),
        "unneeded stage built: {steps:?}"
    );
    let out = be.run(
        "multi:1",
        &[
            "sh",
            "-c",
            "cat /opt/lib/a; stat -c '%u:%g %a' /usr/bin/tool",
        ],
    );
    assert_eq!(out, "artifact\n1000:1000 750\n");
    let (_, steps) = be.build("multi:1", false).expect("cached");
    assert!(steps.iter().all(|s| s.cached), "{steps:?}");
    drop(be.store);
    be.env.assert_clean();
}

#[test]
fn add_extracts_archives_arg_changes_miss_where_used_and_dockerignore_applies() {
    let be = BuildEnv::new();
    let payload = be.env.tmp.path().join("payload");
    fs::create_dir_all(payload.join("d")).expect("payload");
    fs::write(payload.join("d/inside"), "from-tar\n").expect("inside");
    let st = Command::new("tar")
        .args(["-czf"])
        .arg(be.ctx.join("p.tar.gz"))
        .arg("-C")
        .arg(&payload)
        .arg("d")
        .status()
        .expect("tar");
    assert!(st.success());
    be.write(".dockerignore", "secret*\n");
    be.write("secret.txt", "no\n");
    be.write("keep.txt", "yes\n");
    be.write(
        "Dockerfile",
        "FROM bb:1\nADD p.tar.gz /x/\nCOPY . /ctx/\nARG FLAVOR=plain\nRUN echo one > /one\nRUN echo $FLAVOR > /flavor\n",
    );
    let rt = be.env.runtime();
    let b = Builder::new(&be.store, &rt, &be.env.root);
    let mut req = BuildRequest {
        context: be.ctx.clone(),
        tags: vec!["add:1".into()],
        ..Default::default()
    };
    b.build(&req, |_| {}).expect("build");
    let out = be.run(
        "add:1",
        &[
            "sh",
            "-c",
            "cat /x/d/inside /ctx/keep.txt /flavor; test -e /ctx/secret.txt || echo ignored",
        ],
    );
    assert_eq!(out, "from-tar\nyes\nplain\nignored\n");

    // A new build arg value misses from the first RUN that sees it on (as Docker: the ARG
    // step itself stays a hit, every RUN after it gets the value in its environment).
    req.options
        .build_args
        .insert("FLAVOR".into(), "spicy".into());
    let res = b.build(&req, |_| {}).expect("rebuild");
    assert_eq!(
        cached(&res.steps),
        vec![true, true, true, true, false, false],
        "{:?}",
        res.steps
    );
    assert_eq!(be.run("add:1", &["cat", "/flavor"]), "spicy\n");
    drop(be.store);
    be.env.assert_clean();
}

#[test]
fn run_heredocs_with_and_without_a_shebang() {
    let be = BuildEnv::new();
    be.write(
        "Dockerfile",
        "FROM bb:1\nRUN <<EOF\necho plain > /plain\necho more >> /plain\nEOF\nRUN <<EOF\n#!/bin/sh\necho script > /script\nEOF\n",
    );
    let (id, _) = be.build("heredoc:1", false).expect("build");
    let out = be.run(
        "heredoc:1",
        &[
            "sh",
            "-c",
            "cat /plain /script; test -e /.berth-build-script || echo clean",
        ],
    );
    assert_eq!(out, "plain\nmore\nscript\nclean\n");
    let img = be.store.resolve(&id).expect("resolve");
    for d in img.layer_dirs() {
        assert!(
            !d.join(".berth-build-script").exists(),
            "script left in {d:?}"
        );
    }
    drop(be.store);
    be.env.assert_clean();
}

#[test]
fn copy_follows_symlinked_parents_and_keeps_lower_directory_modes() {
    let be = BuildEnv::new();
    be.write("hello.txt", "hello\n");
    be.write(
        "Dockerfile",
        "FROM bb:1\nRUN mkdir -p /usr/lib && ln -s usr/lib /lib && chmod 1777 /tmp\n\
         COPY hello.txt /lib/x/hello\nCOPY hello.txt /tmp/h\n",
    );
    be.build("links:1", false).expect("build");
    let out = be.run(
        "links:1",
        &[
            "sh",
            "-c",
            "readlink /lib; cat /usr/lib/x/hello; stat -c %a /tmp; cat /tmp/h",
        ],
    );
    assert_eq!(out, "usr/lib\nhello\n1777\nhello\n");
    drop(be.store);
    be.env.assert_clean();
}

#[test]
fn builds_side_by_side_keep_each_others_cache_entries() {
    let be = BuildEnv::new();
    let ctxs: Vec<PathBuf> = (0..2)
        .map(|i| {
            let c = be.env.tmp.path().join(format!("ctx{i}"));
            fs::create_dir_all(&c).expect("ctx");
            fs::write(
                c.join("Dockerfile"),
                format!("FROM bb:1\nRUN echo {i} > /n\nENV N={i}\nRUN cat /n\n"),
            )
            .expect("Dockerfile");
            c
        })
        .collect();
    let rt = be.env.runtime();
    let b = Builder::new(&be.store, &rt, &be.env.root);
    let build = |c: &PathBuf, tag: &str| {
        let req = BuildRequest {
            context: c.clone(),
            tags: vec![tag.into()],
            ..Default::default()
        };
        b.build(&req, |_| {}).expect("build")
    };
    std::thread::scope(|s| {
        let a = s.spawn(|| build(&ctxs[0], "par:0"));
        let c = s.spawn(|| build(&ctxs[1], "par:1"));
        a.join().expect("thread a");
        c.join().expect("thread b");
    });
    for (i, c) in ctxs.iter().enumerate() {
        let res = build(c, &format!("par:{i}"));
        assert!(res.steps.iter().all(|s| s.cached), "{:?}", res.steps);
        assert_eq!(
            be.run(&format!("par:{i}"), &["cat", "/n"]),
            format!("{i}\n")
        );
    }
    drop(be.store);
    be.env.assert_clean();
}

#[test]
fn build_labels_land_on_the_image_and_stay_cached() {
    let be = BuildEnv::new();
    be.write("Dockerfile", "FROM bb:1\nRUN echo x > /x\nLABEL a=1\n");
    let rt = be.env.runtime();
    let b = Builder::new(&be.store, &rt, &be.env.root);
    let mut req = BuildRequest {
        context: be.ctx.clone(),
        tags: vec!["lab:1".into()],
        ..Default::default()
    };
    req.options
        .labels
        .insert("com.example.b".into(), "2".into());
    let first = b.build(&req, |_| {}).expect("build").image.id;
    let second = b.build(&req, |_| {}).expect("rebuild").image.id;
    assert_eq!(first, second);
    let img = be.store.resolve("lab:1").expect("resolve");
    let labels = img
        .runtime_config()
        .and_then(|c| c.labels().clone())
        .unwrap_or_default();
    assert_eq!(labels.get("a").map(String::as_str), Some("1"));
    assert_eq!(labels.get("com.example.b").map(String::as_str), Some("2"));
    drop(be.store);
    be.env.assert_clean();
}

/// A registry (Debian's `docker-registry`) on a free 127.0.0.1 port; killed on drop.
struct Registry {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let dir = tempfile::tempdir().expect("tempdir");
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            let cfg = dir.path().join("config.yml");
            fs::write(
                &cfg,
                format!(
                    "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                    dir.path().join("storage").display()
                ),
            )
            .expect("config");
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&cfg)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("docker-registry is missing: run scripts/deps.sh");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while std::time::Instant::now() < deadline {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Registry {
                        child,
                        port,
                        _dir: dir,
                    };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break; // the port was taken meanwhile: another one
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("docker-registry did not start");
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The registry tests' helpers on the harness's builder instance.
trait RegistryBuild {
    fn push_marked(&self, reference: &str, marker: &str);
    fn build_req(&self, tag: &str, pull: bool) -> Result<(String, Vec<StepReport>), BuildError>;
}

impl RegistryBuild for BuildEnv {
    /// Pushes `bb:1` plus a layer holding `/v` = `marker` to `reference` with skopeo.
    fn push_marked(&self, reference: &str, marker: &str) {
        let mut layer = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(marker.len() as u64);
        h.set_mtime(1_700_000_000);
        layer
            .append_data(&mut h, "v", marker.as_bytes())
            .expect("tar");
        let layer = layer.into_inner().expect("tar");
        let base = self.store.resolve("bb:1").expect("bb");
        let mut config = oci_spec::image::Config::default();
        config.set_env(Some(vec!["PATH=/bin".into()]));
        let img = self
            .store
            .commit(
                Some(&mut &layer[..]),
                Some(&base.id),
                NewImage {
                    config,
                    created_by: format!("marker {marker}"),
                    ..Default::default()
                },
            )
            .expect("commit");
        self.store.tag(&img.id, "push:src").expect("tag");
        let archive = self.env.tmp.path().join(format!("push-{marker}.tar"));
        berth_runtime::image::archive::save(
            &self.store,
            &["push:src".to_owned()],
            fs::File::create(&archive).expect("archive"),
        )
        .expect("save");
        let out = Command::new("skopeo")
            .args(["copy", "-q", "--dest-tls-verify=false"])
            .arg(format!("oci-archive:{}:src", archive.display()))
            .arg(format!("docker://{reference}"))
            .output()
            .expect("skopeo");
        assert!(out.status.success(), "skopeo: {}", stderr(&out));
    }

    fn build_req(&self, tag: &str, pull: bool) -> Result<(String, Vec<StepReport>), BuildError> {
        let rt = self.env.runtime();
        let req = BuildRequest {
            context: self.ctx.clone(),
            tags: vec![tag.into()],
            pull,
            ..Default::default()
        };
        let res = Builder::new(&self.store, &rt, &self.env.root).build(&req, |_| {})?;
        Ok((res.image.id.to_string(), res.steps))
    }
}

#[test]
fn pull_re_resolves_base_images_from_their_registry() {
    let be = BuildEnv::new();
    let reg = Registry::start();
    let base = format!("127.0.0.1:{}/bb:t", reg.port);
    be.push_marked(&base, "one");
    be.write(
        "Dockerfile",
        &format!("FROM {base}\nRUN --network=none cat /v > /seen\n"),
    );
    // Not in the store yet: --pull fetches it.
    let (_, steps) = be.build_req("pulled:1", true).expect("build --pull");
    assert!(!steps[1].cached, "{steps:?}");
    assert_eq!(be.run("pulled:1", &["cat", "/seen"]), "one");

    // The registry's tag moves on. Without --pull the store's copy (and the cache) is used...
    be.push_marked(&base, "two");
    let (_, steps) = be.build_req("pulled:1", false).expect("build");
    assert!(steps[1].cached, "{steps:?}");
    assert_eq!(be.run("pulled:1", &["cat", "/seen"]), "one");
    // ... with --pull the new base comes in, and the step on top of it runs again.
    let (_, steps) = be.build_req("pulled:1", true).expect("build --pull");
    assert!(!steps[1].cached, "{steps:?}");
    assert_eq!(be.run("pulled:1", &["cat", "/seen"]), "two");

    // No registry: a clear error naming the image, from the library and the CLI.
    drop(reg);
    let err = be.build_req("pulled:1", true).expect_err("no registry");
    assert!(
        matches!(&err, BuildError::Pull { reference, .. } if *reference == base),
        "{err:?}"
    );
    let ctx = be.ctx.display().to_string();
    let out = be
        .env
        .berth(&["image", "build", "--pull", "-t", "pulled:1", &ctx]);
    assert!(!out.status.success());
    let text = stderr(&out);
    assert!(
        text.contains(&format!("--pull: cannot pull base image {base}"))
            && text.contains("cannot reach registry"),
        "{text}"
    );
    drop(be.store);
    be.env.assert_clean();
}

#[test_with::root()]
#[test]
fn berth_build_takes_build_args_and_pull_errors_name_the_image() {
    host::require_tools();
    let host = Host::new("bargs");
    host.busybox_image();
    // A name whose registry is a closed loopback port of the test's namespace.
    host.ok(&["image", "tag", "busybox:e2e", "127.0.0.1:9/bb:e2e"]);
    fs::write(
        host.stack.join("Dockerfile"),
        "FROM 127.0.0.1:9/bb:e2e\nARG WHO=nobody\nRUN --network=none echo $WHO > /who\n",
    )
    .expect("Dockerfile");
    fs::write(
        host.stack.join("compose.yaml"),
        "name: bargs\nservices:\n  app:\n    build:\n      context: .\n      args:\n        WHO: compose\n",
    )
    .expect("compose");
    let who = |host: &Host| {
        host.ok(&[
            "container",
            "run",
            "--rm",
            "--network",
            "none",
            "bargs-app",
            "cat",
            "/who",
        ])
    };
    // Progress streams while the daemon builds: a line per step, CACHED when served from it.
    let out = host.ok(&["build"]);
    assert!(
        out.contains("app: [3/3] RUN --network=none echo $WHO > /who"),
        "{out}"
    );
    assert!(who(&host).contains("compose"));
    let out = host.ok(&["build"]);
    assert!(
        out.contains("app: [3/3] RUN --network=none echo $WHO > /who CACHED"),
        "{out}"
    );
    host.ok(&["build", "--build-arg", "WHO=cli"]);
    assert!(who(&host).contains("cli"));

    let out = host.berth(&["build", "--pull"]);
    assert!(!out.status.success(), "pulled from a closed port?");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("--pull: cannot pull base image 127.0.0.1:9/bb:e2e"),
        "{text}"
    );
}

#[test_with::root()]
#[test]
fn up_builds_missing_images_side_by_side_and_shows_their_steps() {
    host::require_tools();
    let host = Host::new("pbuild");
    host.busybox_image();
    for svc in ["one", "two"] {
        let dir = host.stack.join(svc);
        fs::create_dir_all(&dir).expect("context");
        fs::write(
            dir.join("Dockerfile"),
            format!("FROM busybox:e2e\nRUN --network=none sleep 3 && echo {svc} > /who\n"),
        )
        .expect("Dockerfile");
    }
    fs::write(
        host.stack.join("compose.yaml"),
        "name: pbuild\nservices:\n  one:\n    build: ./one\n    command: sleep 60\n  \
         two:\n    build: ./two\n    command: sleep 60\n    depends_on: [one]\n",
    )
    .expect("compose");
    let out = host.berth(&["up", "-d"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    // Both builds' steps reach the user while they run, and they ran at the same time: each
    // build's FROM finished before the other's 3-second RUN did (one after the other, two's
    // FROM would only come after one's RUN).
    let at = |needle: &str| {
        err.find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in:\n{err}"))
    };
    let run_one = at("one: [2/2] RUN --network=none sleep 3");
    let run_two = at("two: [2/2] RUN --network=none sleep 3");
    assert!(at("one: [1/2] FROM busybox:e2e") < run_two, "{err}");
    assert!(at("two: [1/2] FROM busybox:e2e") < run_one, "{err}");
    let who = host.ok(&["exec", "-T", "two", "cat", "/who"]);
    assert_eq!(who.trim(), "two");
    // Nothing missing any more: a second up builds nothing.
    let out = host.berth(&["up", "-d"]);
    assert!(out.status.success());
    assert!(!stderr(&out).contains("[2/2] RUN"), "{}", stderr(&out));
    host.ok(&["down"]);
}

#[test]
fn shell_is_inherited_prune_keeps_live_intermediates_and_tree_shows_cache_hits() {
    let be = BuildEnv::new();
    // SHELL lands in the committed config, and children built FROM the image use it.
    be.write(
        "Dockerfile",
        "FROM bb:1\nSHELL [\"/bin/sh\", \"-e\", \"-c\"]\nRUN --network=none echo p > /p\n",
    );
    let (first, _) = be.build("parent:1", false).expect("parent");
    let img = be.store.resolve("parent:1").expect("parent");
    assert_eq!(
        img.raw_config["config"]["Shell"],
        serde_json::json!(["/bin/sh", "-e", "-c"])
    );
    be.write(
        "Dockerfile",
        "FROM parent:1\nRUN --network=none false; echo after > /after\n",
    );
    match be.build("child:1", false) {
        Err(BuildError::RunFailed { code: 1, .. }) => {}
        other => panic!("`sh -e` from the parent's SHELL should stop at `false`: {other:?}"),
    }

    // `image tree` lists the last build's steps and which were cache hits.
    be.write(
        "Dockerfile",
        "FROM bb:1\nSHELL [\"/bin/sh\", \"-e\", \"-c\"]\nRUN --network=none echo p > /p\n",
    );
    let (again, steps) = be.build("parent:1", false).expect("parent again");
    assert_eq!(again, first);
    assert!(steps[1..].iter().all(|s| s.cached), "{steps:?}");
    let out = be.env.berth(&["image", "tree"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("Last build:"), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("RUN --network=none echo p > /p"))
        .unwrap_or_else(|| panic!("no RUN step in: {text}"));
    assert!(line.contains("CACHED"), "{text}");

    // A changed step makes the old result untagged: prune removes it, but keeps the
    // intermediates the new parent:1 descends from, so the cache still hits afterwards.
    be.write(
        "Dockerfile",
        "FROM bb:1\nSHELL [\"/bin/sh\", \"-e\", \"-c\"]\nRUN --network=none echo q > /p\n",
    );
    let (second, _) = be.build("parent:1", false).expect("changed");
    assert_ne!(second, first);
    let out = be.env.berth(&["image", "prune"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        be.store.resolve(&first).is_err(),
        "the old result is dangling"
    );
    let (third, steps) = be.build("parent:1", false).expect("after prune");
    assert_eq!(third, second);
    assert!(steps[1..].iter().all(|s| s.cached), "{steps:?}");
    let text = stdout(&be.env.berth(&["image", "tree"]));
    assert!(!text.contains(" built "), "{text}");
    drop(be.store);
    be.env.assert_clean();
}

/// Rows (path, type, mode, owner, content or link target) of a tree, sorted.
fn tree_rows(root: &std::path::Path) -> Vec<String> {
    let mut rows = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).expect("read_dir") {
            let p = e.expect("entry").path();
            let m = fs::symlink_metadata(&p).expect("lstat");
            let what = if m.file_type().is_symlink() {
                format!("-> {}", fs::read_link(&p).expect("link").display())
            } else if m.is_file() {
                String::from_utf8_lossy(&fs::read(&p).expect("read")).into_owned()
            } else {
                stack.push(p.clone());
                String::new()
            };
            let rel = p.strip_prefix(root).expect("prefix").display().to_string();
            rows.push(format!(
                "{rel} {:o} {}:{} {what}",
                m.mode(),
                m.uid(),
                m.gid()
            ));
        }
    }
    rows.sort();
    rows
}

#[test]
fn copy_layers_are_their_directories_and_save_and_load_into_a_fresh_root_unchanged() {
    let be = BuildEnv::new();
    be.write(
        "Dockerfile",
        "FROM bb:1\nCOPY --chown=app:staff app /srv/app/\nCOPY tool /usr/local/bin/\n",
    );
    be.write("app/index.html", "<p>hi</p>\n");
    be.write("app/conf/site.conf", "listen 80;\n");
    std::os::unix::fs::symlink("conf/site.conf", be.ctx.join("app/site")).expect("symlink");
    be.write("tool", "#!/bin/sh\necho tool\n");
    fs::set_permissions(
        be.ctx.join("tool"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let (id, _) = be.build("copied:1", false).expect("build");
    let img = be.store.resolve(&id).expect("resolve");
    let dirs = img.layer_dirs();
    let app_layer = &dirs[dirs.len() - 2];
    assert_eq!(
        tree_rows(app_layer),
        [
            "srv 40755 0:0 ",
            "srv/app 40755 1000:50 ",
            "srv/app/conf 40755 1000:50 ",
            "srv/app/conf/site.conf 100644 1000:50 listen 80;\n",
            "srv/app/index.html 100644 1000:50 <p>hi</p>\n",
            "srv/app/site 120777 1000:50 -> conf/site.conf",
        ]
    );
    for l in &img.record.layers[1..] {
        assert_eq!(l.blob, l.diff_id, "plain tar named by its diff id");
        assert!(!be.store.blobs().has(&l.blob), "COPY stores no tar");
    }
    assert_eq!(
        be.run(
            "copied:1",
            &["sh", "-c", "/usr/local/bin/tool; cat /srv/app/site"]
        ),
        "tool\nlisten 80;\n"
    );

    // --no-cache: COPY runs again (new files, new mtimes: new layers with the same content)
    // and leaves no draft behind.
    let (again, steps) = be.build("copied:1", true).expect("no-cache build");
    assert!(steps[1..].iter().all(|s| !s.cached), "{steps:?}");
    let img2 = be.store.resolve(&again).expect("resolve");
    let dirs = img2.layer_dirs();
    for (a, b) in img.layer_dirs().iter().zip(&dirs) {
        assert_eq!(tree_rows(a), tree_rows(b));
    }
    let drafts: Vec<_> = fs::read_dir(be.store.dir().join("l"))
        .expect("l")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
        .collect();
    assert!(drafts.is_empty(), "{drafts:?}");

    // image save (the tars made again from the directories) into a fresh root.
    let archive = be.env.tmp.path().join("copied.tar");
    let out = be.env.berth(&[
        "image",
        "save",
        "-o",
        archive.to_str().expect("utf-8"),
        "copied:1",
    ]);
    assert!(out.status.success(), "save: {}", stderr(&out));
    let fresh = ImageStore::open(&be.env.tmp.path().join("fresh")).expect("fresh store");
    let loaded = berth_runtime::image::archive::load(
        &fresh,
        fs::File::open(&archive).expect("archive"),
        None,
    )
    .expect("load");
    assert_eq!(loaded[0].id.to_string(), again);
    let back = fresh.resolve("copied:1").expect("loaded image");
    assert_eq!(back.manifest_digest, img2.manifest_digest);
    for (a, b) in dirs.iter().zip(back.layer_dirs()) {
        assert_eq!(tree_rows(a), tree_rows(&b));
    }
    drop(be.store);
    be.env.assert_clean();
}
