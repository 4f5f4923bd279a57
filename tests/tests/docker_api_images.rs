//! The Docker Engine API's image routes, with the real docker CLI as the oracle: `docker
//! images/image inspect/history/tag/rmi/image prune`, `save`/`load`/`import`, `pull` from a
//! registry of the test's own, `commit` and `build`, against a berth instance of the test's
//! own; images made by berth's CLI are seen by docker's and the other way round.

use std::process::Command;

use berth_tests::docker::Docker;
use berth_tests::host::{self, Host};

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
    let out = h.ok(&["image", "import", &tar.display().to_string()]);
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
