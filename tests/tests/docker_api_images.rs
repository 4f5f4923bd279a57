//! The Docker Engine API's image routes, with the real docker CLI as the oracle: `docker
//! images/image inspect/history/tag/rmi/image prune`, `save`/`load`/`import`, `pull` from a
//! registry of the test's own, `commit` and `build`, against a berth instance of the test's
//! own; images made by berth's CLI are seen by docker's and the other way round.

use std::process::Command;

use berth_tests::docker::Docker;
use berth_tests::host::{self, Host};
use berth_tests::registry::Registry;

/// The image id of `name` as `docker image inspect` gives it.
fn image_id(docker: &Docker, name: &str) -> String {
    docker
        .ok(&["image", "inspect", "-f", "{{.Id}}", name])
        .trim()
        .to_string()
}

#[test_with::root()]
#[test_with::executable(docker, ip, nsenter)]
#[test]
fn docker_cli_lists_inspects_tags_and_removes_images() {
    host::require_tools();
    let h = Host::new("dkimg");
    h.busybox_image();
    let docker = Docker::new(&h);

    // The image berth's CLI imported, as Docker shows it.
    let ls = docker.ok(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
    let id = image_id(&docker, "busybox:e2e");
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    assert_eq!(ls.trim(), format!("busybox:e2e {}", &id[7..19]));
    let insp = docker.ok(&[
        "image",
        "inspect",
        "-f",
        "{{json .RepoTags}} {{.Os}} {{.RootFS.Type}} {{len .RootFS.Layers}}",
        "busybox:e2e",
    ]);
    assert_eq!(insp.trim(), r#"["busybox:e2e"] linux layers 1"#);
    let err = docker.fails(&["image", "inspect", "nope:1"]);
    assert!(err.contains("No such image: nope:1"), "{err}");
    let hist = docker.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.ID}} {{.CreatedBy}}",
        "busybox:e2e",
    ]);
    assert!(hist.starts_with(&id), "{hist}");
    assert!(hist.contains("import"), "{hist}");

    // docker tag is seen by berth's CLI, berth's tag by docker's.
    docker.ok(&["tag", "busybox:e2e", "mine/bb:v1"]);
    let berth_ls = h.ok(&["image", "ls"]);
    assert!(
        berth_ls.contains("mine/bb") && berth_ls.contains("v1"),
        "{berth_ls}"
    );
    h.ok(&["image", "tag", "busybox:e2e", "other:2"]);
    let ls = docker.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    let mut names: Vec<&str> = ls.lines().collect();
    names.sort();
    assert_eq!(names, ["busybox:e2e", "mine/bb:v1", "other:2"], "{ls}");
    // Filters: reference (a glob), dangling.
    let ls = docker.ok(&[
        "images",
        "--filter",
        "reference=mine/*",
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ]);
    assert_eq!(ls.trim(), "mine/bb:v1");
    let ls = docker.ok(&["images", "-q", "--filter", "dangling=true"]);
    assert!(ls.trim().is_empty(), "{ls}");

    // rmi of one of several names only untags it.
    let out = docker.ok(&["rmi", "mine/bb:v1"]);
    assert_eq!(out.trim(), "Untagged: mine/bb:v1");
    docker.ok(&["rmi", "other:2"]);

    // An image a container uses is not removed, in Docker's words.
    let cid = docker.ok(&["create", "--name", "c", "busybox:e2e", "true"]);
    let err = docker.fails(&["rmi", "busybox:e2e"]);
    assert!(
        err.contains(&format!(
            "conflict: unable to remove repository reference \"busybox:e2e\" (must force) - \
             container {} is using its referenced image {}",
            &cid.trim()[..12],
            &id[7..19]
        )),
        "{err}"
    );
    let err = docker.fails(&["rmi", &id[7..19]]);
    assert!(
        err.contains(&format!(
            "conflict: unable to delete {} (must be forced) - image is being used by stopped \
             container {}",
            &id[7..19],
            &cid.trim()[..12]
        )),
        "{err}"
    );
    docker.ok(&["rm", "c"]);
    let out = docker.ok(&["rmi", "busybox:e2e"]);
    assert!(out.contains("Untagged: busybox:e2e"), "{out}");
    assert!(out.contains(&format!("Deleted: {id}")), "{out}");
    assert!(docker.ok(&["images", "-qa"]).trim().is_empty());
    let err = docker.fails(&["rmi", "busybox:e2e"]);
    assert!(err.contains("No such image: busybox:e2e"), "{err}");

    // An untagged import is dangling; prune removes it, and berth's CLI no longer lists it.
    let tar = h.dir.path().join("rootfs.tar");
    h.ok(&["image", "import", &tar.display().to_string(), "keep:1"]);
    // Another content: the same tar imported within the same second is the same image (its
    // config, creation time included, is identical), tagged `keep:1`, not dangling.
    let other = h.dir.path().join("other.tar");
    std::fs::copy(&tar, &other).expect("copy tar");
    std::fs::write(h.dir.path().join("extra"), "other\n").expect("extra file");
    let st = std::process::Command::new("tar")
        .arg("-C")
        .arg(h.dir.path())
        .arg("-rf")
        .arg(&other)
        .arg("extra")
        .status()
        .expect("tar -r");
    assert!(st.success(), "tar -r");
    let out = h.ok(&["image", "import", &other.display().to_string()]);
    let dangling = out.trim().to_string();
    let ls = docker.ok(&["images", "--no-trunc", "-q", "--filter", "dangling=true"]);
    assert_eq!(ls.trim(), dangling, "{ls}");
    let out = docker.ok(&["image", "prune", "-f"]);
    assert!(out.contains(&format!("deleted: {dangling}")), "{out}");
    assert!(
        !h.ok(&["image", "ls", "-q", "--no-trunc"])
            .contains(&dangling)
    );
    assert_eq!(
        docker
            .ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
            .trim(),
        "keep:1"
    );
}

#[test_with::root()]
#[test_with::executable(docker, ip, nsenter)]
#[test]
fn docker_cli_saves_loads_and_imports_images() {
    host::require_tools();
    let h = Host::new("dksave");
    h.busybox_image();
    let docker = Docker::new(&h);
    let id = image_id(&docker, "busybox:e2e");

    // save, rmi, load: the same image back under its name.
    let archive = h.dir.path().join("bb.tar");
    docker.ok(&["save", "-o", &archive.display().to_string(), "busybox:e2e"]);
    let listed = Command::new("tar")
        .arg("-tf")
        .arg(&archive)
        .output()
        .expect("tar");
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("manifest.json"), "{listed}");
    docker.ok(&["rmi", "busybox:e2e"]);
    let out = docker.ok(&["load", "-i", &archive.display().to_string()]);
    assert!(out.contains("Loaded image: busybox:e2e"), "{out}");
    assert_eq!(image_id(&docker, "busybox:e2e"), id);
    let nowhere = h.dir.path().join("nope.tar").display().to_string();
    let err = docker.fails(&["save", "-o", &nowhere, "nope:1"]);
    assert!(err.contains("No such image: nope:1"), "{err}");
    // A broken archive is Docker's error, and the daemon keeps serving.
    let bad = h.dir.path().join("bad.tar");
    std::fs::write(&bad, b"not a tar at all").expect("bad tar");
    docker.fails(&["load", "-i", &bad.display().to_string()]);
    docker.ok(&["version"]);

    // import with changes berth applies; one it does not is refused by name.
    let tar = h.dir.path().join("rootfs.tar");
    let tar = tar.display().to_string();
    let out = docker.ok(&[
        "import",
        "--change",
        "CMD [\"sh\", \"-c\", \"echo hi\"]",
        "--change",
        "ENV A=1",
        &tar,
        "imp:1",
    ]);
    assert!(out.trim().starts_with("sha256:"), "{out}");
    let cfg = docker.ok(&[
        "image",
        "inspect",
        "-f",
        "{{json .Config.Cmd}} {{json .Config.Env}}",
        "imp:1",
    ]);
    assert_eq!(cfg.trim(), r#"["sh","-c","echo hi"] ["A=1"]"#);
    assert!(
        h.ok(&["image", "ls"]).contains("imp"),
        "berth sees docker's import"
    );
    let err = docker.fails(&["import", "--change", "RUN true", &tar, "imp:2"]);
    assert!(err.contains("RUN"), "{err}");
    // berth's CLI runs what docker imported (docker run attached is another route).
    let out = h.ok(&["container", "run", "--rm", "imp:1"]);
    assert_eq!(out.trim(), "hi");
}

#[test_with::root()]
#[test_with::executable(docker, ip, nsenter, skopeo, curl, docker-registry)]
#[test]
fn docker_cli_pulls_from_a_registry() {
    host::require_tools();
    let h = Host::new("dkpull");
    h.busybox_image();
    let docker = Docker::new(&h);
    let reg = Registry::start(&h);

    // Push what berth saved into the registry, then forget it locally.
    let archive = h.dir.path().join("bb.tar");
    h.ok(&[
        "image",
        "save",
        "-o",
        &archive.display().to_string(),
        "busybox:e2e",
    ]);
    let dest = format!("docker://{}/bb:1", reg.addr);
    let out = h.sh(&format!(
        "skopeo copy --dest-tls-verify=false docker-archive:{} {dest}",
        archive.display()
    ));
    assert!(
        out.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    h.ok(&["image", "rm", "busybox:e2e"]);
    h.ok(&["image", "prune", "-a"]);

    let name = format!("{}/bb:1", reg.addr);
    let out = docker.ok(&["pull", &name]);
    assert!(out.contains("Pull complete"), "{out}");
    assert!(out.contains("Digest: sha256:"), "{out}");
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {name}")),
        "{out}"
    );
    let ls = docker.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(ls.trim(), name);
    assert!(h.ok(&["image", "ls"]).contains(&format!("{}/bb", reg.addr)));
    let out = docker.ok(&["pull", &name]);
    assert!(
        out.contains(&format!("Status: Image is up to date for {name}")),
        "{out}"
    );

    // A missing image is Docker's 404, not a 500, and the daemon keeps serving.
    let err = docker.fails(&["pull", &format!("{}/nope:1", reg.addr)]);
    assert!(err.contains("nope"), "{err}");
    let code = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
        .arg("--unix-socket")
        .arg(&docker.sock)
        .arg(format!(
            "http://docker/v1.41/images/create?fromImage={}/nope&tag=1",
            reg.addr
        ))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&code.stdout), "404");
    docker.ok(&["version"]);
}

#[test_with::root()]
#[test_with::executable(docker, ip, nsenter)]
#[test]
fn docker_cli_commits_and_builds_images() {
    host::require_tools();
    let h = Host::new("dkbuild");
    h.busybox_image();
    let docker = Docker::new(&h);

    // commit a running container (frozen while read) with a change and a message.
    docker.ok(&[
        "run",
        "-d",
        "--name",
        "w",
        "busybox:e2e",
        "sh",
        "-c",
        "echo made > /made; sleep 60",
    ]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let out = docker.ok(&[
        "commit",
        "-c",
        "CMD [\"cat\", \"/made\"]",
        "-m",
        "by test",
        "w",
        "committed:1",
    ]);
    assert!(out.trim().starts_with("sha256:"), "{out}");
    let st = docker.ok(&["inspect", "-f", "{{.State.Status}}", "w"]);
    assert_eq!(st.trim(), "running", "thawed after the commit");
    let c = docker.ok(&[
        "image",
        "inspect",
        "-f",
        "{{.Comment}} {{json .Config.Cmd}}",
        "committed:1",
    ]);
    assert_eq!(c.trim(), r#"by test ["cat","/made"]"#);
    assert_eq!(
        h.ok(&["container", "run", "--rm", "committed:1"]).trim(),
        "made"
    );
    let err = docker.fails(&["commit", "nope", "x:1"]);
    assert!(err.contains("No such container: nope"), "{err}");
    let err = docker.fails(&["commit", "-c", "RUN true", "w", "x:1"]);
    assert!(err.contains("RUN"), "{err}");
    docker.ok(&["rm", "-f", "w"]);

    // build: FROM the imported busybox, a build arg, RUN, COPY, .dockerignore honoured.
    let ctx = h.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).expect("ctx");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox:e2e\nARG WHO=nobody\nRUN echo \"built by $WHO\" > /built\n\
         COPY . /ctx/\nCMD [\"sh\", \"-c\", \"cat /built /ctx/hello.txt; ls /ctx\"]\n",
    )
    .expect("Dockerfile");
    std::fs::write(ctx.join("hello.txt"), "hello\n").expect("hello");
    std::fs::write(ctx.join("secret.txt"), "secret\n").expect("secret");
    std::fs::write(ctx.join(".dockerignore"), "secret.txt\n").expect("ignore");
    let ctx = ctx.display().to_string();
    let out = docker.ok(&["build", "-t", "t1", "--build-arg", "WHO=docker", &ctx]);
    assert!(out.contains("Step 1/"), "{out}");
    assert!(out.contains("Successfully built"), "{out}");
    assert!(out.contains("Successfully tagged t1:latest"), "{out}");
    let run = h.ok(&["container", "run", "--rm", "t1"]);
    assert!(run.contains("built by docker\nhello\n"), "{run}");
    assert!(!run.contains("secret.txt"), "{run}");
    let labels = docker.ok(&["image", "inspect", "-f", "{{json .Config.Labels}}", "t1"]);
    assert_eq!(labels.trim(), "null", "no labels added");
    // A second build hits the cache; -q prints the id only.
    let out = docker.ok(&["build", "-q", "-t", "t1", "--build-arg", "WHO=docker", &ctx]);
    assert_eq!(out.trim(), image_id(&docker, "t1"));
    // A failing step is Docker's error.
    std::fs::write(
        h.dir.path().join("ctx/Dockerfile"),
        "FROM busybox:e2e\nRUN exit 3\n",
    )
    .expect("Dockerfile");
    let err = docker.fails(&["build", &ctx]);
    assert!(err.to_lowercase().contains("exit"), "{err}");
    docker.ok(&["version"]);
}

/// The position of `needle` in `hay`, failing with the whole output when absent.
fn at(hay: &str, needle: &str) -> usize {
    hay.find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in:\n{hay}"))
}

#[test_with::root()]
#[test_with::executable(docker, ip, nsenter)]
#[test]
fn docker_cli_builds_with_hosts_networks_limits_and_streamed_output() {
    host::require_tools();
    let h = Host::new("dkbopt");
    h.busybox_image();
    let docker = Docker::new(&h);
    let ctx = h.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).expect("ctx");
    let ctx_s = ctx.display().to_string();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox:e2e\nRUN cat /etc/hosts\n\
         RUN echo first-line; sleep 1; echo second-line\n\
         RUN echo nets: $(ls /sys/class/net)\n\
         RUN grep /dev/shm /proc/mounts; echo nofile=$(ulimit -n)\n",
    )
    .expect("Dockerfile");

    // --add-host lands in RUN's /etc/hosts; --network none leaves loopback only; the RUN
    // output comes in the stream after its step, in Docker's classic lines.
    let out = docker.ok(&[
        "build",
        "--no-cache",
        "--add-host",
        "db.test:10.1.2.3",
        "--network",
        "none",
        "--shm-size",
        "16m",
        "--ulimit",
        "nofile=123:456",
        "-t",
        "opts:1",
        &ctx_s,
    ]);
    assert!(out.contains("10.1.2.3\tdb.test"), "{out}");
    assert!(out.contains("nets: lo\n"), "{out}");
    assert!(out.contains("size=16384k"), "{out}");
    assert!(out.contains("nofile=123\n"), "{out}");
    let step = at(&out, "Step 3/5 : RUN echo first-line");
    let running = at(&out, " ---> Running in ");
    let first = at(&out, "\nfirst-line\n");
    let second = at(&out, "\nsecond-line\n");
    let step4 = at(&out, "Step 4/5");
    assert!(
        step < first && first < second && second < step4 && running < first,
        "{out}"
    );
    assert!(out.contains("Removed intermediate container"), "{out}");
    let id = image_id(&docker, "opts:1");
    assert!(
        out.contains(&format!(" ---> {}\n", &id[7..19])),
        "each step ends with its image id:\n{out}"
    );
    assert!(out.contains("Successfully tagged opts:1"), "{out}");

    // --network host: RUN sees the host's interfaces (a veth pair the test adds too).
    let made = h.sh("ip link add bthost0 type veth peer name bthost1");
    assert!(made.status.success(), "{made:?}");
    let out = docker.ok(&["build", "--no-cache", "--network", "host", &ctx_s]);
    assert!(out.contains("nets: bthost0 bthost1 lo\n"), "{out}");
    // Without one, RUN is on the build network: its own interface and loopback.
    let out = docker.ok(&["build", "--no-cache", &ctx_s]);
    assert!(!out.contains("bthost0"), "{out}");
    assert!(out.contains("nets: eth0 lo\n"), "{out}");
    assert!(!out.contains("db.test"), "{out}");

    // A network berth cannot give RUN is refused by name.
    let err = docker.fails(&["build", "--network", "container:x", &ctx_s]);
    assert!(err.contains("network mode"), "{err}");

    // --cache-from: once the build cache is gone, the steps of a named local image serve
    // again (the RUN is not run: the stamp it wrote is the same).
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox:e2e\nENV A=1\nRUN cat /proc/sys/kernel/random/uuid > /stamp\nCMD [\"cat\", \"/stamp\"]\n",
    )
    .expect("Dockerfile");
    docker.ok(&["build", "-t", "src:1", &ctx_s]);
    let stamp = h.ok(&["container", "run", "--rm", "src:1"]);
    h.ok(&["builder", "prune"]);
    let out = docker.ok(&["build", "--cache-from", "src:1", "-t", "again:1", &ctx_s]);
    assert!(out.contains(" ---> Using cache"), "{out}");
    assert!(!out.contains("Running in"), "{out}");
    assert_eq!(h.ok(&["container", "run", "--rm", "again:1"]), stamp);
    // Without it, after another prune, the step runs again.
    h.ok(&["builder", "prune"]);
    docker.ok(&["build", "-t", "fresh:1", &ctx_s]);
    assert_ne!(h.ok(&["container", "run", "--rm", "fresh:1"]), stamp);

    // A RUN that fails is Docker's error, with the command and its code.
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox:e2e\nRUN exit 3\n").expect("Dockerfile");
    let err = docker.fails(&["build", &ctx_s]);
    assert!(
        err.contains("The command '/bin/sh -c exit 3' returned a non-zero code: 3"),
        "{err}"
    );
}

#[test_with::root()]
#[test_with::executable(docker, python3, ip, nsenter)]
#[test]
fn docker_py_build_squash_merges_what_the_build_added() {
    host::require_tools();
    let h = Host::new("dksquash");
    h.busybox_image();
    let docker = Docker::new(&h);
    let ctx = h.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).expect("ctx");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox:e2e\nRUN head -c 300000 /dev/zero > /big\nRUN echo a > /a\n\
         RUN rm /big\nENV KEEP=1\nCMD [\"cat\", \"/a\"]\n",
    )
    .expect("Dockerfile");
    let layers = |img: &str| -> usize {
        docker
            .ok(&["image", "inspect", "-f", "{{len .RootFS.Layers}}", img])
            .trim()
            .parse()
            .expect("layer count")
    };
    let base = layers("busybox:e2e");
    // docker-py sends `squash=1` on POST /build, as `docker build --squash` does.
    let script = format!(
        "import docker\n\
         c = docker.from_env()\n\
         for p in ('plain:1', 'squashed:1'):\n\
         \x20   out = list(c.api.build(path={ctx:?}, tag=p, squash=(p == 'squashed:1'), decode=True))\n\
         \x20   assert any('Successfully tagged' in l.get('stream', '') for l in out), out\n\
         \x20   assert not any('error' in l for l in out), out\n\
         print('built')\n",
        ctx = ctx.display().to_string()
    );
    let out = docker
        .tool("python3", 120, &["-c", &script])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(layers("plain:1"), base + 3);
    assert_eq!(layers("squashed:1"), base + 1, "the build's layers as one");
    let env = docker.ok(&[
        "image",
        "inspect",
        "-f",
        "{{json .Config.Env}}",
        "squashed:1",
    ]);
    assert!(env.contains("KEEP=1"), "config kept: {env}");
    assert_eq!(h.ok(&["container", "run", "--rm", "squashed:1"]), "a\n");
    let big = h.berth(&["container", "run", "--rm", "squashed:1", "ls", "/big"]);
    assert!(!big.status.success(), "the deleted file stays deleted");
}
