//! `RUN --mount` end to end over the busybox base: cache mounts kept across builds and out of
//! the layers, binds from the context and a stage (read only, `rw` writes discarded, no
//! escape through links or `..`), tmpfs, and secrets that reach no layer, history or key.

use std::fs;
use std::path::Path;

use berth_runtime::build::exec::{BuildError, BuildRequest, BuildSecret, Builder, StepReport};
use berth_tests::container_util::build_env::BuildEnv;
use berth_tests::container_util::{stderr, stdout};

fn build(
    be: &BuildEnv,
    tag: &str,
    no_cache: bool,
    secrets: Vec<BuildSecret>,
) -> Result<(String, Vec<StepReport>), BuildError> {
    let rt = be.env.runtime();
    let b = Builder::new(&be.store, &rt, &be.env.root);
    let req = BuildRequest {
        context: be.ctx.clone(),
        tags: vec![tag.into()],
        no_cache,
        secrets,
        ..Default::default()
    };
    let res = b.build(&req, |_| {})?;
    Ok((res.image.id.to_string(), res.steps))
}

fn run(be: &BuildEnv, image: &str, cmd: &str) -> String {
    let out = be.env.berth(&[
        "container",
        "run",
        "--rm",
        "--network",
        "none",
        image,
        "sh",
        "-c",
        cmd,
    ]);
    assert!(out.status.success(), "run {image}: {}", stderr(&out));
    stdout(&out)
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            out.extend(files_containing(&p, needle));
        } else if ft.is_file()
            && let Ok(b) = fs::read(&p)
            && b.windows(needle.len()).any(|w| w == needle)
        {
            out.push(p.display().to_string());
        }
    }
    out
}

fn layer_paths(be: &BuildEnv, id: &str, rel: &str) -> Vec<String> {
    let img = be.store.resolve(id).expect("resolve");
    img.layer_dirs()
        .iter()
        .map(|d| d.join(rel))
        .filter(|p| fs::symlink_metadata(p).is_ok())
        .map(|p| p.display().to_string())
        .collect()
}

#[test_with::root()]
#[test]
fn cache_mount_persists_across_builds_and_stays_out_of_the_layer() {
    let be = BuildEnv::new();
    be.write(
        "Dockerfile",
        "FROM bb:1\nRUN --mount=type=cache,target=/var/cache/app,id=app,sharing=locked echo run >> /var/cache/app/log && cat /var/cache/app/log > /seen\n",
    );
    let (id1, _) = build(&be, "cache:1", false, vec![]).expect("first build");
    assert_eq!(run(&be, "cache:1", "cat /seen"), "run\n");
    // The step itself reruns (--no-cache) and finds what the first build left in the cache.
    let (id2, steps) = build(&be, "cache:1", true, vec![]).expect("second build");
    assert!(!steps[1].cached);
    assert_eq!(run(&be, "cache:1", "cat /seen"), "run\nrun\n");
    for id in [&id1, &id2] {
        assert!(layer_paths(&be, id, "var/cache/app").is_empty(), "{id}");
        assert!(
            layer_paths(&be, id, "var/cache").len() <= 1,
            "only bb's own"
        );
    }
    // The mount point the runtime made for the target is not in the image either.
    assert_eq!(
        run(
            &be,
            "cache:1",
            "test -e /var/cache/app && echo there || echo gone"
        ),
        "gone\n"
    );
    drop(be.store);
    be.env.assert_clean();
}

#[test_with::root()]
#[test]
fn bind_tmpfs_and_stage_mounts_are_read_only_or_discarded() {
    let be = BuildEnv::new();
    be.write("a.txt", "from context\n");
    be.write("ignored.txt", "should not be seen\n");
    be.write(".dockerignore", "ignored.txt\n");
    be.write(
        "Dockerfile",
        "FROM bb:1 AS s
RUN echo from stage > /f
FROM bb:1
RUN --mount=type=bind,target=/src cat /src/a.txt > /out && (test -e /src/ignored.txt || echo ignored >> /out) && (touch /src/new 2>/dev/null || echo ro >> /out)
RUN --mount=type=bind,target=/src,rw echo changed > /src/a.txt && cat /src/a.txt >> /out
RUN --mount=from=s,source=/f,target=/mnt/f cat /mnt/f >> /out
RUN --mount=type=tmpfs,target=/scratch,size=1m echo x > /scratch/f && grep -q ' /scratch tmpfs' /proc/mounts && echo tmpfs >> /out
",
    );
    let (id, _) = build(&be, "bind:1", false, vec![]).expect("build");
    assert_eq!(
        run(
            &be,
            "bind:1",
            "cat /out; test -e /src || echo nosrc; test -e /scratch || echo noscratch"
        ),
        "from context\nignored\nro\nchanged\nfrom stage\ntmpfs\nnosrc\nnoscratch\n"
    );
    assert_eq!(
        fs::read_to_string(be.ctx.join("a.txt")).expect("ctx"),
        "from context\n",
        "rw writes are discarded"
    );
    assert!(layer_paths(&be, &id, "scratch/f").is_empty());
    // A change to the bound file reruns the step (its content is in the key).
    be.write("a.txt", "edited\n");
    let (_, steps) = build(&be, "bind:1", false, vec![]).expect("rebuild");
    assert!(!steps[3].cached, "{steps:?}");
    drop(be.store);
    be.env.assert_clean();
}

#[test_with::root()]
#[test]
fn mount_sources_never_leave_their_roots() {
    let be = BuildEnv::new();
    let outside = be.env.tmp.path().join("host-secret");
    fs::write(&outside, "HOST-ONLY-BYTES\n").expect("host file");
    // Context: a link to the host file, and `..` out of the context.
    std::os::unix::fs::symlink(&outside, be.ctx.join("link")).expect("link");
    for (n, df) in [
        "FROM bb:1\nRUN --mount=type=bind,source=link,target=/x cat /x > /out\n".to_string(),
        "FROM bb:1\nRUN --mount=type=bind,source=../host-secret,target=/x cat /x > /out\n"
            .to_string(),
        // A stage whose file is a link to the host path: resolved inside the stage.
        format!(
            "FROM bb:1 AS s\nRUN ln -s {} /evil\nFROM bb:1\nRUN --mount=from=s,source=/evil,target=/x cat /x > /out\n",
            outside.display()
        ),
        format!(
            "FROM bb:1 AS s\nRUN true\nFROM bb:1\nRUN --mount=from=s,source=/../../../../../../..{},target=/x cat /x > /out\n",
            outside.display()
        ),
    ]
    .into_iter()
    .enumerate()
    {
        be.write("Dockerfile", &df);
        let tag = format!("escape:{n}");
        match build(&be, &tag, false, vec![]) {
            Err(e) => assert!(!e.to_string().contains("HOST-ONLY"), "{n}: {e}"),
            Ok(_) => panic!("{n}: the build read a file outside its root"),
        }
    }
    drop(be.store);
    be.env.assert_clean();
}

#[test_with::root()]
#[test]
fn secrets_reach_the_step_but_no_layer_history_or_cache_key() {
    let be = BuildEnv::new();
    let secret_file = be.env.tmp.path().join("token");
    fs::write(&secret_file, "s3cr3t-value").expect("secret");
    be.write(
        "Dockerfile",
        "FROM bb:1
RUN --mount=type=secret,id=tok wc -c < /run/secrets/tok > /len && stat -c %a /run/secrets/tok >> /len
RUN --mount=type=secret,id=tok,env=TOK,target=/etc/tok,mode=0444 test -n \"$TOK\" && test \"$TOK\" = \"$(cat /etc/tok)\" && echo envok > /envok
",
    );
    let secret = |p: &Path| BuildSecret::parse(&format!("id=tok,src={}", p.display())).unwrap();
    let (id, _) = build(&be, "sec:1", false, vec![secret(&secret_file)]).expect("build");
    assert_eq!(
        run(
            &be,
            "sec:1",
            "cat /len /envok; test -e /run/secrets/tok || echo gone"
        ),
        "12\n400\nenvok\ngone\n"
    );
    let needle = b"s3cr3t-value";
    let img = be.store.resolve(&id).expect("resolve");
    for d in img.layer_dirs() {
        assert!(files_containing(&d, needle).is_empty(), "in a layer: {d:?}");
    }
    let hist = be.store.history("sec:1").expect("history");
    assert!(hist.iter().all(|h| !h.created_by.contains("s3cr3t")));
    // Nowhere in the instance: layers, cache index, scratch files, container records.
    assert!(files_containing(&be.env.root, needle).is_empty());
    // Another value: same keys (the content is not in them), so every step is cached.
    fs::write(&secret_file, "other-value!").expect("secret");
    let (_, steps) = build(&be, "sec:1", false, vec![secret(&secret_file)]).expect("rebuild");
    assert!(steps.iter().all(|s| s.cached), "{steps:?}");
    // A secret file that does not exist, and a required secret not given: clear errors.
    let e = build(
        &be,
        "sec:2",
        true,
        vec![secret(&be.env.tmp.path().join("nope"))],
    )
    .expect_err("missing file");
    assert!(e.to_string().contains("secret \"tok\": reading"), "{e}");
    be.write(
        "Dockerfile",
        "FROM bb:1\nRUN --mount=type=secret,id=other,required=true true\n",
    );
    let e = build(&be, "sec:3", false, vec![]).expect_err("required");
    assert!(e.to_string().contains("\"other\" is required"), "{e}");
    drop(be.store);
    be.env.assert_clean();
}

#[test_with::root()]
#[test]
fn cache_sharing_private_takes_a_fresh_dir_and_locked_waits_when_busy() {
    use berth_runtime::image::Digest;
    use berth_runtime::image::lock::FileLock;
    let be = BuildEnv::new();
    let df = |sharing: &str| {
        format!(
            "FROM bb:1\nRUN --mount=type=cache,id=shared-id,target=/c,sharing={sharing} ls /c > /seen; touch /c/{sharing}\n"
        )
    };
    be.write("Dockerfile", &df("shared"));
    build(&be, "share:1", false, vec![]).expect("first build");
    let lock = be
        .env
        .root
        .join("builder/cache-mounts")
        .join(format!("{}.lock", Digest::of_bytes(b"shared-id").hex()));
    // Another step holds the cache: a private one gets an empty instance of its own.
    let held = FileLock::exclusive(&lock).expect("lock");
    be.write("Dockerfile", &df("private"));
    build(&be, "share:1", true, vec![]).expect("private build");
    assert_eq!(run(&be, "share:1", "cat /seen"), "");
    drop(held);
    // Free again: a private step gets the id's first instance, with what steps left there.
    build(&be, "share:1", true, vec![]).expect("private build, free");
    assert_eq!(run(&be, "share:1", "cat /seen"), "shared\n");
    // locked: waits until the holder lets go.
    let held = FileLock::exclusive(&lock).expect("lock");
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(1500));
        drop(held);
    });
    be.write("Dockerfile", &df("locked"));
    let t0 = std::time::Instant::now();
    build(&be, "share:1", true, vec![]).expect("locked build");
    assert!(t0.elapsed() >= std::time::Duration::from_millis(1400));
    release.join().expect("thread");
    assert_eq!(run(&be, "share:1", "cat /seen"), "private\nshared\n");
    drop(be.store);
    be.env.assert_clean();
}

#[test_with::root()]
#[test]
fn a_new_cache_is_seeded_from_its_from_stage_with_its_owner_and_mode() {
    let be = BuildEnv::new();
    be.write(
        "Dockerfile",
        "FROM bb:1 AS seed\nRUN mkdir -p /deps && echo seeded > /deps/lib\nFROM bb:1\nRUN --mount=type=cache,id=seeded,target=/c,from=seed,source=/deps,uid=1000,gid=50,mode=0750 cat /c/lib > /out && stat -c '%u:%g %a' /c >> /out && echo more > /c/lib\nRUN --mount=type=cache,id=seeded,target=/c cat /c/lib >> /out\nRUN --mount=type=cache,id=whole,target=/w,from=seed cat /w/deps/lib >> /out\n",
    );
    build(&be, "seed:1", false, vec![]).expect("build");
    assert_eq!(
        run(&be, "seed:1", "cat /out"),
        "seeded\n1000:50 750\nmore\nseeded\n"
    );
    drop(be.store);
    be.env.assert_clean();
}
