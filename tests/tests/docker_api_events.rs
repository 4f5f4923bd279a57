//! `docker events` for images, networks and volumes, with the real docker CLI as the oracle:
//! image verbs (tag, untag, delete, import, save, load, build's tag), a network's
//! create/connect/disconnect/destroy and a volume's create/mount/unmount/destroy, as `docker
//! events --filter type=… / event=… / image=… / network=… / volume=…` shows them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_tests::docker::Docker;
use berth_tests::host::{self, Host};

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The events since `t0` passing `filters`, as `TYPE ACTION ACTOR-NAME` lines.
fn events(docker: &Docker, t0: u64, filters: &[&str]) -> Vec<String> {
    let since = t0.to_string();
    let until = (now_secs() + 1).to_string();
    std::thread::sleep(Duration::from_millis(1100));
    let mut args = vec!["events", "--since", &since, "--until", &until];
    for f in filters {
        args.push("--filter");
        args.push(f);
    }
    args.extend([
        "--format",
        "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
    ]);
    docker
        .ok(&args)
        .lines()
        .map(|l| l.trim_end().to_string())
        .collect()
}

#[test_with::root()]
#[test_with::executable(docker, ip, nsenter)]
#[test]
fn docker_events_show_image_network_and_volume_verbs() {
    host::require_tools();
    let h = Host::new("dkev");
    h.busybox_image();
    let docker = Docker::new(&h);
    docker.ok(&["version"]);
    let t0 = now_secs();
    std::thread::sleep(Duration::from_millis(1100));

    // Images: tag, untag, save, load, import, build's tag, delete.
    docker.ok(&["tag", "busybox:e2e", "evimg:1"]);
    docker.ok(&["rmi", "evimg:1"]);
    let tar = h.dir.path().join("bb.tar");
    let tar_s = tar.display().to_string();
    docker.ok(&["save", "-o", &tar_s, "busybox:e2e"]);
    docker.ok(&["load", "-i", &tar_s]);
    let rootfs = h.dir.path().join("rootfs.tar");
    let made = std::process::Command::new("tar")
        .arg("-cf")
        .arg(&rootfs)
        .arg("-C")
        .arg(h.dir.path())
        .arg("bb.tar")
        .status()
        .expect("tar");
    assert!(made.success());
    docker.ok(&["import", &rootfs.display().to_string(), "evimp:1"]);
    let ctx = h.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).expect("ctx");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox:e2e\nRUN echo x > /x\n",
    )
    .expect("df");
    docker.ok(&["build", "-t", "evbuilt:1", &ctx.display().to_string()]);
    docker.ok(&["rmi", "evbuilt:1"]);

    // A network and a volume used by a container, then removed.
    docker.ok(&["network", "create", "evnet"]);
    docker.ok(&["volume", "create", "evvol"]);
    docker.ok(&[
        "run",
        "-d",
        "--name",
        "evc",
        "--network",
        "evnet",
        "-v",
        "evvol:/data",
        "busybox:e2e",
        "sleep",
        "30",
    ]);
    docker.ok(&["stop", "-t", "1", "evc"]);
    docker.ok(&["rm", "evc"]);
    docker.ok(&["network", "rm", "evnet"]);
    docker.ok(&["volume", "rm", "evvol"]);

    let images = events(&docker, t0, &["type=image"]);
    for want in [
        "image tag evimg:1",
        "image untag",
        "image save",
        "image load",
        "image import",
        "image tag evimp:1",
        "image tag evbuilt:1",
        "image delete",
    ] {
        assert!(
            images.iter().any(|l| l.starts_with(want)),
            "{want:?} not in {images:#?}"
        );
    }
    assert!(
        images.iter().all(|l| l.starts_with("image ")),
        "{images:#?}"
    );
    let tags = events(&docker, t0, &["type=image", "event=tag"]);
    assert!(
        tags.iter().all(|l| l.starts_with("image tag ")) && tags.len() >= 2,
        "{tags:#?}"
    );
    let by_image = events(&docker, t0, &["image=evimg"]);
    assert_eq!(by_image, ["image tag evimg:1"], "image=evimg");

    let nets = events(&docker, t0, &["type=network"]);
    let order: Vec<&str> = nets
        .iter()
        .filter(|l| l.ends_with(" evnet"))
        .map(|l| l.split(' ').nth(1).unwrap_or(""))
        .collect();
    assert_eq!(
        order,
        ["create", "connect", "disconnect", "destroy"],
        "{nets:#?}"
    );
    assert_eq!(
        events(&docker, t0, &["network=evnet", "event=connect"]),
        ["network connect evnet"]
    );

    let vols: Vec<String> = events(&docker, t0, &["type=volume", "volume=evvol"])
        .into_iter()
        .map(|l| l.split(' ').nth(1).unwrap_or("").to_string())
        .collect();
    assert_eq!(
        vols,
        ["create", "mount", "unmount", "destroy"],
        "volume events"
    );
    // Docker's JSON for a volume mount: the container and destination as attributes.
    let since = t0.to_string();
    let until = now_secs().to_string();
    let json = docker.ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "event=mount",
        "--format",
        "{{json .}}",
    ]);
    let v: serde_json::Value =
        serde_json::from_str(json.lines().next().unwrap_or("{}")).expect("event JSON");
    assert_eq!(v["Type"], "volume", "{v}");
    assert_eq!(v["Actor"]["ID"], "evvol", "{v}");
    assert_eq!(v["Actor"]["Attributes"]["destination"], "/data", "{v}");
    assert_eq!(v["Actor"]["Attributes"]["driver"], "local", "{v}");
}
