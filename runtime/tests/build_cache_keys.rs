//! Cache-key properties users rely on, checked on real context directories (no root needed):
//! what keeps a key, what changes it, and from which step on.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::time::{Duration, SystemTime};

use berth_runtime::build::ImageConfig;
use berth_runtime::build::context::Context;
use berth_runtime::build::dockerfile::Dockerfile;
use berth_runtime::build::plan::{self, BaseImage, PlanOptions};

fn store(digest: &str) -> HashMap<String, BaseImage> {
    ["debian", "alpine"]
        .iter()
        .map(|r| {
            (
                r.to_string(),
                BaseImage {
                    digest: format!("{digest}-{r}"),
                    config: ImageConfig {
                        env: vec!["PATH=/bin".into()],
                        ..Default::default()
                    },
                },
            )
        })
        .collect()
}

fn keys_with(src: &str, ctx: &Path, args: &[(&str, &str)], digest: &str) -> Vec<String> {
    let df = Dockerfile::parse(src, "Dockerfile").expect("parse");
    let opts = PlanOptions {
        build_args: args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        target: None,
        labels: BTreeMap::new(),
        contexts: BTreeMap::new(),
    };
    let ctx = Context::scan(ctx).expect("scan");
    let p = plan::plan(&df, &opts, &ctx, &store(digest)).expect("plan");
    p.steps.iter().map(|s| s.cache_key.0.clone()).collect()
}

fn keys(src: &str, ctx: &Path) -> Vec<String> {
    keys_with(src, ctx, &[], "sha256:base")
}

/// Index of the first differing key; asserts everything before it is equal and everything
/// from it on differs.
fn first_change(a: &[String], b: &[String]) -> Option<usize> {
    assert_eq!(a.len(), b.len());
    let first = a.iter().zip(b).position(|(x, y)| x != y)?;
    for i in first..a.len() {
        assert_ne!(
            a[i],
            b[i],
            "step {} kept its key after step {} changed",
            i + 1,
            first + 1
        );
    }
    Some(first)
}

fn context() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    let r = d.path();
    fs::create_dir_all(r.join("src")).expect("mkdir");
    fs::write(r.join("deps.txt"), "serde\n").expect("write");
    fs::write(r.join("src/main.rs"), "fn main() {}\n").expect("write");
    fs::write(r.join("src/lib.rs"), "pub fn f() {}\n").expect("write");
    fs::write(r.join("notes.md"), "notes\n").expect("write");
    d
}

// Steps (0-based): 0 FROM, 1 RUN, 2 COPY deps, 3 RUN, 4 COPY src, 5 RUN, 6 CMD
const DF: &str = "FROM debian
RUN apt-get update
COPY deps.txt /app/
RUN install deps
COPY src /app/src
RUN build
CMD [\"/app/run\"]
";

#[test]
fn keys_are_deterministic_and_independent_of_the_context_location() {
    let a = context();
    let b = context();
    assert_eq!(keys(DF, a.path()), keys(DF, a.path()));
    assert_eq!(keys(DF, a.path()), keys(DF, b.path()));
}

#[test]
fn touching_a_file_keeps_every_key() {
    let d = context();
    let before = keys(DF, d.path());
    let later = SystemTime::now() + Duration::from_secs(7200);
    for f in ["deps.txt", "src/main.rs"] {
        let file = fs::File::options()
            .write(true)
            .open(d.path().join(f))
            .expect("open");
        file.set_modified(later).expect("touch");
    }
    // Rewriting identical content (new ctime, maybe new inode) keeps the keys too.
    fs::remove_file(d.path().join("src/lib.rs")).expect("rm");
    fs::write(d.path().join("src/lib.rs"), "pub fn f() {}\n").expect("write");
    assert_eq!(before, keys(DF, d.path()));
}

#[test]
fn content_change_invalidates_from_the_copy_on() {
    let d = context();
    let before = keys(DF, d.path());
    fs::write(d.path().join("src/main.rs"), "fn main() { changed() }\n").expect("write");
    assert_eq!(first_change(&before, &keys(DF, d.path())), Some(4));
    fs::write(d.path().join("deps.txt"), "serde\ntokio\n").expect("write");
    assert_eq!(first_change(&before, &keys(DF, d.path())), Some(2));
}

#[test]
fn mode_change_invalidates_from_the_copy_on() {
    let d = context();
    let before = keys(DF, d.path());
    fs::set_permissions(
        d.path().join("src/main.rs"),
        fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    assert_eq!(first_change(&before, &keys(DF, d.path())), Some(4));
}

#[test]
fn adding_or_renaming_a_file_in_a_copied_directory_invalidates() {
    let d = context();
    let before = keys(DF, d.path());
    fs::rename(d.path().join("src/lib.rs"), d.path().join("src/lib2.rs")).expect("mv");
    assert_eq!(first_change(&before, &keys(DF, d.path())), Some(4));
}

#[test]
fn files_not_copied_do_not_matter() {
    let d = context();
    let before = keys(DF, d.path());
    fs::write(d.path().join("notes.md"), "other notes\n").expect("write");
    fs::write(d.path().join("new.txt"), "new\n").expect("write");
    assert_eq!(before, keys(DF, d.path()));
}

#[test]
fn editing_instruction_n_changes_keys_from_n_only() {
    let d = context();
    let before = keys(DF, d.path());
    for (n, from, to) in [
        (1, "RUN apt-get update", "RUN apt-get update -q"),
        (3, "RUN install deps", "RUN install  deps"),
        (5, "RUN build", "RUN build --release"),
        (6, "CMD [\"/app/run\"]", "CMD [\"/app/run2\"]"),
    ] {
        let edited = DF.replace(from, to);
        assert_eq!(
            first_change(&before, &keys(&edited, d.path())),
            Some(n),
            "{to}"
        );
    }
    // A config-only instruction inserted in the middle changes what follows, not what precedes.
    let with_env = DF.replace("RUN build\n", "ENV MODE=release\nRUN build\n");
    let after = keys(&with_env, d.path());
    assert_eq!(before[..5], after[..5]);
    assert_ne!(before[5], after[6]);
}

#[test]
fn base_image_digest_changes_everything() {
    let d = context();
    let a = keys_with(DF, d.path(), &[], "sha256:one");
    let b = keys_with(DF, d.path(), &[], "sha256:two");
    assert_eq!(first_change(&a, &b), Some(0));
}

// 0 FROM, 1 COPY deps, 2 ARG V, 3 COPY src, 4 RUN, 5 COPY notes, 6 LABEL
const ARGS: &str = "FROM debian
COPY deps.txt /app/
ARG V=1
COPY src /app/src
RUN echo build
COPY notes.md /app/
LABEL x=y
FROM alpine AS other
ARG W
RUN echo $W
";

#[test]
fn arg_value_changes_only_steps_that_see_it() {
    let d = context();
    // The last stage is `other`; build the first one as target by reordering: plan both.
    let df_first = ARGS.replace("FROM alpine AS other\nARG W\nRUN echo $W\n", "");
    let base = keys_with(&df_first, d.path(), &[], "sha256:b");
    // The default and an explicit equal value are the same build.
    assert_eq!(
        base,
        keys_with(&df_first, d.path(), &[("V", "1")], "sha256:b")
    );
    // A new value: FROM, COPY deps, ARG and the COPY that does not use it keep their keys;
    // the RUN (which sees every ARG in scope, as in Docker) and everything after change.
    let changed = keys_with(&df_first, d.path(), &[("V", "2")], "sha256:b");
    assert_eq!(first_change(&base, &changed), Some(4));
    // A COPY that uses the ARG changes at the COPY.
    let uses = df_first.replace("COPY src /app/src", "COPY src /app/src$V");
    let a = keys_with(&uses, d.path(), &[], "sha256:b");
    let b = keys_with(&uses, d.path(), &[("V", "2")], "sha256:b");
    assert_eq!(first_change(&a, &b), Some(3));
    // An ARG of another stage does not touch this stage.
    let both = keys_with(ARGS, d.path(), &[], "sha256:b");
    let w = keys_with(ARGS, d.path(), &[("W", "x")], "sha256:b");
    assert_eq!(both.len(), 3, "only the target stage `other` is built");
    assert_eq!(first_change(&both, &w), Some(2));
}

#[test]
fn undeclared_proxy_args_are_not_in_keys() {
    let d = context();
    let a = keys(DF, d.path());
    let b = keys_with(
        DF,
        d.path(),
        &[("HTTP_PROXY", "http://p:3128")],
        "sha256:base",
    );
    assert_eq!(a, b);
}

#[test]
fn env_shadowing_an_arg_hides_its_value() {
    let d = context();
    let src = "FROM debian\nARG V\nENV V=fixed\nRUN echo $V\n";
    let a = keys_with(src, d.path(), &[("V", "1")], "sha256:b");
    let b = keys_with(src, d.path(), &[("V", "2")], "sha256:b");
    assert_eq!(a, b);
}

#[test]
fn dockerignored_files_do_not_affect_keys() {
    let d = context();
    fs::write(d.path().join(".dockerignore"), "*.md\nsrc/lib.rs\n").expect("write");
    let src = "FROM debian\nCOPY . /app/\nRUN build\n";
    let before = keys(src, d.path());
    fs::write(d.path().join("notes.md"), "changed\n").expect("write");
    fs::write(d.path().join("src/lib.rs"), "changed\n").expect("write");
    fs::write(d.path().join("more.md"), "new\n").expect("write");
    assert_eq!(before, keys(src, d.path()));
    fs::write(d.path().join("src/main.rs"), "changed\n").expect("write");
    assert_eq!(first_change(&before, &keys(src, d.path())), Some(1));
}

#[test]
fn symlinks_out_of_the_context_are_not_followed() {
    let outside = tempfile::tempdir().expect("tempdir");
    let secret = outside.path().join("secret");
    fs::write(&secret, "v1").expect("write");
    let d = context();
    symlink(&secret, d.path().join("link")).expect("symlink");
    symlink(outside.path(), d.path().join("dirlink")).expect("symlink");
    let src = "FROM debian\nCOPY . /app/\n";
    let before = keys(src, d.path());
    // The target's content is outside: changing it must not matter (the link is copied as a
    // link, its target string is what counts).
    fs::write(&secret, "v2, much longer").expect("write");
    assert_eq!(before, keys(src, d.path()));
    // Naming the link as a source resolves it inside the context, where nothing is found.
    let df = Dockerfile::parse("FROM debian\nCOPY link /x\n", "Dockerfile").expect("parse");
    let ctx = Context::scan(d.path()).expect("scan");
    let err = plan::plan(&df, &PlanOptions::default(), &ctx, &store("sha256:b"))
        .expect_err("must not follow the link out");
    assert_eq!(
        err.to_string(),
        "Dockerfile:2: COPY: \"link\" not found in the build context (or excluded by .dockerignore)"
    );
    let df =
        Dockerfile::parse("FROM debian\nCOPY dirlink/secret /x\n", "Dockerfile").expect("parse");
    assert!(plan::plan(&df, &PlanOptions::default(), &ctx, &store("sha256:b")).is_err());
    // Retargeting the link changes the key.
    fs::remove_file(d.path().join("link")).expect("rm");
    symlink("/elsewhere", d.path().join("link")).expect("symlink");
    assert_eq!(first_change(&before, &keys(src, d.path())), Some(1));
}

#[test]
fn multi_stage_keys_follow_dependencies() {
    let d = context();
    let src = "FROM debian AS deps
COPY deps.txt /d/
RUN fetch
FROM alpine AS unused
RUN x
FROM debian
COPY src /src
COPY --from=deps /out /out
RUN link
";
    let before = keys(src, d.path());
    assert_eq!(before.len(), 3 + 4, "the unused stage is skipped");
    // Editing the unused stage changes nothing.
    assert_eq!(before, keys(&src.replace("RUN x", "RUN y"), d.path()));
    // Editing the deps stage changes its keys and, in the final stage, the COPY --from on.
    let after = keys(&src.replace("RUN fetch", "RUN fetch --all"), d.path());
    assert_eq!(first_change(&before[..3], &after[..3]), Some(2));
    assert_eq!(first_change(&before[3..], &after[3..]), Some(2));
}

#[test]
fn base_image_onbuild_triggers_run_first_and_are_not_inherited() {
    let d = context();
    fs::write(d.path().join("app.txt"), "x").expect("write");
    let df =
        Dockerfile::parse("FROM debian\nRUN x\nONBUILD RUN child\n", "Dockerfile").expect("parse");
    let ctx = Context::scan(d.path()).expect("scan");
    let mut images = store("sha256:b");
    if let Some(img) = images.get_mut("debian") {
        img.config.on_build = vec!["RUN make".into(), "COPY app.txt /app/".into()];
    }
    let p = plan::plan(&df, &PlanOptions::default(), &ctx, &images).expect("plan");
    let shown: Vec<&str> = p.steps.iter().map(|s| s.display.as_str()).collect();
    assert_eq!(
        shown,
        [
            "[1/5] FROM debian",
            "[2/5] ONBUILD RUN make",
            "[3/5] ONBUILD COPY app.txt /app/",
            "[4/5] RUN x",
            "[5/5] ONBUILD RUN child",
        ],
        "{shown:?}"
    );
    // The base's triggers are spent; the child's own trigger is kept for its children.
    assert_eq!(
        p.target_stage().config.on_build,
        vec!["RUN child".to_string()]
    );
    if let Some(img) = images.get_mut("debian") {
        img.config.on_build = vec!["COPY --from=x /a /b".into()];
    }
    let err = plan::plan(&df, &PlanOptions::default(), &ctx, &images).expect_err("refused");
    assert!(err.to_string().contains("--from in a trigger"), "{err}");
}

#[test]
fn run_mount_definitions_are_in_the_key_but_secret_values_are_not() {
    let d = context();
    fs::write(d.path().join("go.mod"), "module x").expect("write");
    let k = |run: &str| keys(&format!("FROM debian\nRUN {run}\n"), d.path())[1].clone();
    let plain = k("make");
    let cache = k("--mount=type=cache,target=/root/.cache make");
    assert_ne!(plain, cache);
    assert_ne!(
        cache,
        k("--mount=type=cache,target=/root/.cache,id=other make")
    );
    assert_ne!(
        cache,
        k("--mount=type=cache,target=/root/.cache,sharing=locked make")
    );
    let secret = k("--mount=type=secret,id=tok make");
    assert_ne!(secret, k("--mount=type=secret,id=tok2 make"));
    // A bound context file's content is an input of the step.
    let bind = k("--mount=type=bind,source=go.mod,target=/src/go.mod make");
    fs::write(d.path().join("go.mod"), "module y").expect("write");
    assert_ne!(
        bind,
        k("--mount=type=bind,source=go.mod,target=/src/go.mod make")
    );
    assert_eq!(cache, k("--mount=type=cache,target=/root/.cache make"));
    // Sources outside the context are refused at planning.
    let df = Dockerfile::parse(
        "FROM debian\nRUN --mount=type=bind,source=../etc,target=/x make\n",
        "Dockerfile",
    )
    .expect("parse");
    let ctx = Context::scan(d.path()).expect("scan");
    assert!(plan::plan(&df, &PlanOptions::default(), &ctx, &store("sha256:b")).is_err());
}

#[test]
fn build_labels_change_the_config_not_the_keys() {
    let d = context();
    let df = Dockerfile::parse(DF, "Dockerfile").expect("parse");
    let ctx = Context::scan(d.path()).expect("scan");
    let plain = plan::plan(&df, &PlanOptions::default(), &ctx, &store("sha256:b")).expect("plan");
    let opts = PlanOptions {
        labels: BTreeMap::from([("team".to_string(), "infra".to_string())]),
        ..Default::default()
    };
    let labelled = plan::plan(&df, &opts, &ctx, &store("sha256:b")).expect("plan");
    let keys = |p: &plan::BuildPlan| -> Vec<String> {
        p.steps.iter().map(|s| s.cache_key.0.clone()).collect()
    };
    assert_eq!(keys(&plain), keys(&labelled));
    assert_eq!(
        labelled
            .target_stage()
            .config
            .labels
            .get("team")
            .map(String::as_str),
        Some("infra")
    );
}

#[test]
fn run_network_mode_is_part_of_the_key_and_default_is_no_flag() {
    let ctx = context();
    let plain = keys("FROM debian\nRUN make\nRUN echo done\n", ctx.path());
    let default = keys(
        "FROM debian\nRUN --network=default make\nRUN echo done\n",
        ctx.path(),
    );
    assert_eq!(plain, default, "the default network keeps the key");
    let none = keys(
        "FROM debian\nRUN --network=none make\nRUN echo done\n",
        ctx.path(),
    );
    let host = keys(
        "FROM debian\nRUN --network=host make\nRUN echo done\n",
        ctx.path(),
    );
    assert_eq!(first_change(&plain, &none), Some(1));
    assert_eq!(first_change(&none, &host), Some(1));
}

#[test]
fn excluded_files_do_not_change_the_copy_key() {
    let d = context();
    fs::create_dir_all(d.path().join("src")).expect("mkdir");
    fs::write(d.path().join("src/main.c"), "int main;").expect("write");
    fs::write(d.path().join("src/notes.md"), "one").expect("write");
    let src = "FROM debian\nCOPY --exclude=*.md src /src/\n";
    let before = keys(src, d.path());
    fs::write(d.path().join("src/notes.md"), "two").expect("write");
    assert_eq!(before, keys(src, d.path()));
    fs::write(d.path().join("src/main.c"), "int main2;").expect("write");
    assert_ne!(before, keys(src, d.path()));
    // The patterns themselves and --parents are part of the key.
    assert_ne!(
        keys(src, d.path())[1],
        keys("FROM debian\nCOPY --exclude=*.txt src /src/\n", d.path())[1]
    );
    assert_ne!(
        keys("FROM debian\nCOPY src /src/\n", d.path())[1],
        keys("FROM debian\nCOPY --parents src /src/\n", d.path())[1]
    );
}

/// A named context stands in for the name wherever a stage or image is named, over a stage of
/// that name (as BuildKit's), and its image is what the plan asks the store for.
#[test]
fn named_contexts_replace_images_and_stages() {
    let df = Dockerfile::parse(
        "FROM alpine:3 AS lib\nRUN true\nFROM lib\nCOPY --from=tools /t /t\n\
         RUN --mount=from=tools,target=/x true\n",
        "Dockerfile",
    )
    .expect("parse");
    let opts = PlanOptions {
        contexts: BTreeMap::from([
            ("lib".to_string(), "sha256:aaaa".to_string()),
            ("tools".to_string(), "busybox:1".to_string()),
        ]),
        ..Default::default()
    };
    let refs: Vec<String> = plan::external_images(&df, &opts)
        .expect("images")
        .into_iter()
        .map(|r| r.reference)
        .collect();
    assert_eq!(
        refs,
        ["sha256:aaaa", "busybox:1"],
        "the stage `lib` is not built"
    );
    let plain: Vec<String> = plan::external_images(&df, &PlanOptions::default())
        .expect("images")
        .into_iter()
        .map(|r| r.reference)
        .collect();
    assert_eq!(plain, ["alpine:3", "tools"]);
}
