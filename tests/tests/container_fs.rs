//! Root filesystem and mounts: overlay upper dir, named volumes, read-only root, tmpfs.

use std::fs;

use berth_runtime::container::{ContainerConfig, MountSpec, NetworkMode, RootfsSource};
use berth_tests::container_util::{Env, make_rootfs, stderr, stdout};

#[test]
fn overlay_writes_go_to_the_upper_dir_and_volumes_survive_rm() {
    let env = Env::new();
    let rt = env.runtime();
    let lower0 = env.tmp.path().join("l0");
    let lower1 = env.tmp.path().join("l1");
    make_rootfs(&lower0);
    fs::create_dir_all(lower1.join("data")).expect("l1");
    fs::write(lower1.join("data/seed"), "from-image\n").expect("seed");
    fs::write(lower1.join("top"), "upper-layer\n").expect("top");

    let mut cfg = ContainerConfig::new(
        RootfsSource::Layers(vec![lower0.clone(), lower1.clone()]),
        vec![
            "sh".into(),
            "-c".into(),
            "cat /top; cat /data/seed; echo new > /written; echo kept > /data/mine; rm /top".into(),
        ],
    );
    cfg.network = NetworkMode::None;
    cfg.mounts.push(MountSpec::Volume {
        name: "vol1".into(),
        target: "/data".into(),
        read_only: false,
        nocopy: false,
        subpath: None,
    });
    let rec = rt.create(cfg.clone()).expect("create");
    assert!(
        rec.netns.as_ref().is_some_and(|p| p.exists()),
        "netns pinned before start"
    );
    rt.start(&rec).expect("start");
    let exit = rt.wait(&rec).expect("wait");
    assert_eq!(exit.code, 0);
    let log = fs::read_to_string(rec.log_path()).expect("log");
    assert!(
        log.contains("upper-layer") && log.contains("from-image"),
        "{log}"
    );
    assert_eq!(
        fs::read_to_string(rec.dir.join("upper/written")).expect("upper"),
        "new\n"
    );
    assert!(!lower0.join("written").exists(), "lowers stay untouched");
    assert!(
        lower1.join("top").exists(),
        "a delete is a whiteout in the upper dir"
    );
    let vol = rt.volume_dir("vol1");
    assert_eq!(
        fs::read_to_string(vol.join("seed")).expect("seeded"),
        "from-image\n"
    );
    assert_eq!(
        fs::read_to_string(vol.join("mine")).expect("mine"),
        "kept\n"
    );

    // export: the merged view (upper over lowers, whiteouts honoured), without volumes.
    let mut tar = Vec::new();
    rt.export(&rec, &mut tar).expect("export");
    let names: Vec<String> = tar::Archive::new(&tar[..])
        .entries()
        .expect("entries")
        .filter_map(|e| Some(e.ok()?.path().ok()?.display().to_string()))
        .collect();
    assert!(names.iter().any(|n| n == "written"), "{names:?}");
    assert!(names.iter().any(|n| n == "bin/busybox"), "{names:?}");
    assert!(
        !names.iter().any(|n| n == "top"),
        "deleted in the container: {names:?}"
    );

    rt.remove(&rec, false).expect("rm");
    assert!(!rec.dir.exists(), "upper dir gone with rm");
    assert!(vol.join("mine").exists(), "volume data survives rm");

    // A second container sees the volume's data, not the image's (no re-seeding).
    fs::write(lower1.join("data/seed"), "changed\n").expect("seed");
    cfg.args = vec!["cat".into(), "/data/seed".into(), "/data/mine".into()];
    // Removed after the wait, not by its shim: an auto-removed container that exits before
    // `wait` opens leaves no state to read its exit code from.
    let rec = rt.create(cfg).expect("create");
    rt.start(&rec).expect("start");
    assert_eq!(rt.wait(&rec).expect("wait").code, 0);
    rt.remove(&rec, false).expect("rm");
    env.assert_clean();
}

#[test]
fn read_only_root_and_tmpfs() {
    let env = Env::new();
    let o = env.run(
        &["--rm", "--read-only", "--tmpfs", "/scratch:size=1m"],
        &[
            "sh",
            "-c",
            "touch /x 2>&1; echo root_rc=$?; echo ok > /scratch/f && cat /scratch/f; echo ok > /dev/shm/g && echo shm",
        ],
    );
    let out = stdout(&o);
    assert!(
        out.contains("Read-only file system") && out.contains("root_rc=1"),
        "{out}\n{}",
        stderr(&o)
    );
    assert!(out.contains("ok\nshm"), "{out}");
    let host = env.tmp.path().join("hostdir");
    fs::create_dir_all(&host).expect("hostdir");
    fs::write(host.join("f"), "hi\n").expect("f");
    let bind = format!("{}:/mnt/h:ro", host.display());
    let o = env.run(
        &["--rm", "-v", &bind],
        &["sh", "-c", "cat /mnt/h/f; touch /mnt/h/x"],
    );
    assert_eq!(stdout(&o), "hi\n");
    assert!(stderr(&o).contains("Read-only"), "{}", stderr(&o));
    assert!(!host.join("x").exists());
    let o = env.run(&["--rm", "-w", "/made/here"], &["pwd"]);
    assert_eq!(stdout(&o), "/made/here\n");
    env.assert_clean();
}

#[test]
fn failures_before_exec_leave_nothing_behind() {
    let env = Env::new();
    let rt = env.runtime();
    // A layer that does not exist: the overlay mount fails inside the container's namespace.
    let mut cfg = ContainerConfig::new(
        RootfsSource::Layers(vec![env.tmp.path().join("no-such-layer")]),
        vec!["true".into()],
    );
    cfg.auto_remove = true;
    let rec = rt.create(cfg).expect("create");
    let err = rt.start(&rec).expect_err("overlay must fail");
    assert_eq!(err.exit_code(), 125);
    assert!(err.to_string().contains("overlay"), "{err}");
    env.assert_clean();

    // A cgroup value the kernel refuses: the shim cleans the cgroup up and reports it.
    let mut cfg = ContainerConfig::new(RootfsSource::Dir(env.rootfs.clone()), vec!["true".into()]);
    cfg.resources.cpuset_cpus = Some("4096-4097".into());
    cfg.auto_remove = true;
    let rec = rt.create(cfg).expect("create");
    let err = rt.start(&rec).expect_err("cpuset must fail");
    assert!(err.to_string().contains("cpuset.cpus"), "{err}");
    env.assert_clean();

    // A name in use and a bad name are refused before anything is made.
    let mut cfg = ContainerConfig::new(
        RootfsSource::Dir(env.rootfs.clone()),
        vec!["sleep".into(), "30".into()],
    );
    cfg.name = "taken".into();
    let rec = rt.create(cfg.clone()).expect("create");
    assert!(rt.create(cfg.clone()).is_err());
    cfg.name = "bad/name".into();
    assert!(rt.create(cfg).is_err());
    rt.start(&rec).expect("start");
    rt.remove(&rec, true).expect("rm -f");
    env.assert_clean();
}

#[test]
fn cp_works_both_ways_and_stays_inside_the_container() {
    let env = Env::new();
    let rootfs = env.rootfs.display().to_string();
    let o = env.berth(&[
        "container",
        "run",
        "-d",
        "--name",
        "files",
        "--rootfs",
        &rootfs,
        "sh",
        "-c",
        "mkdir -p /data && ln -s /etc /data/link && echo inside > /data/x && sleep 300",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    env.eventually(10, "the container's files", || {
        stdout(&env.berth(&["container", "exec", "files", "ls", "/data"])).contains("link")
    });
    let host = env.tmp.path().join("host");
    fs::create_dir_all(host.join("tree/sub")).expect("tree");
    fs::write(host.join("tree/sub/f"), "hello\n").expect("f");
    let marker = format!("berth-cp-{}", std::process::id());
    fs::write(host.join(&marker), "x\n").expect("marker");

    // host -> container, also through a symlink that points at /etc: the container's /etc.
    let tree = host.join("tree").display().to_string();
    assert!(
        env.berth(&["container", "cp", &tree, "files:/tmp"])
            .status
            .success()
    );
    let m = host.join(&marker).display().to_string();
    let o = env.berth(&["container", "cp", &m, "files:/data/link"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        !std::path::Path::new("/etc").join(&marker).exists(),
        "host /etc untouched"
    );
    let e = env.berth(&[
        "container",
        "exec",
        "files",
        "cat",
        "/tmp/tree/sub/f",
        &format!("/etc/{marker}"),
    ]);
    assert_eq!(stdout(&e), "hello\nx\n");

    // container -> host, following the symlink inside the container only.
    let out = host.join("out");
    fs::create_dir_all(&out).expect("out");
    let outs = out.display().to_string();
    assert!(
        env.berth(&["container", "cp", "files:/data", &outs])
            .status
            .success()
    );
    assert_eq!(
        fs::read_to_string(out.join("data/x")).expect("x"),
        "inside\n"
    );
    assert!(
        fs::symlink_metadata(out.join("data/link"))
            .expect("link")
            .file_type()
            .is_symlink()
    );
    let o = env.berth(&["container", "cp", "files:/data/link/passwd", &outs]);
    assert!(o.status.success(), "{}", stderr(&o));
    let passwd = fs::read_to_string(out.join("passwd")).expect("passwd");
    assert!(
        passwd.contains("app:x:1000"),
        "the container's passwd: {passwd}"
    );

    // A stopped container's files are reachable too.
    assert!(
        env.berth(&["container", "stop", "-t", "0", "files"])
            .status
            .success()
    );
    fs::remove_file(out.join("data/x")).expect("rm");
    assert!(
        env.berth(&["container", "cp", "files:/data/x", &outs])
            .status
            .success()
    );
    assert!(out.join("x").exists());
    assert!(env.berth(&["container", "rm", "files"]).status.success());
    env.assert_clean();
}
