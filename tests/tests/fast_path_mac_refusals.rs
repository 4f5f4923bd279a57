//! A MAC address that is a network's gateway MAC (its bridge's) or another container's MAC on
//! it is refused by every front end, naming the value and the network, with nothing left
//! half-made: `berth container run --mac-address`, the Docker API (`docker run
//! --mac-address`, the real docker CLI) and `berth network connect --mac`. Compose's
//! `mac_address` is in `fast_path_attacks`. (Docker itself accepts a duplicate MAC; berth
//! refuses it: frames for it would go to one of the two.)

use berth_tests::docker::Docker;
use berth_tests::host::{self, Host};

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The output of a berth command that must fail.
fn berth_fails(h: &Host, args: &[&str]) -> String {
    let o = h.berth(args);
    assert!(
        !o.status.success(),
        "berth {args:?} succeeded: {}",
        text(&o)
    );
    text(&o)
}

#[test_with::root()]
#[test_with::executable(docker, ip, nsenter)]
#[test]
fn every_front_end_refuses_the_gateways_mac_and_a_held_mac() {
    host::require_tools();
    let h = Host::new("fpm");
    h.busybox_image();
    let docker = Docker::new(&h);
    // Gateway 10.201.137.1: its bridge's MAC is 02:b7 and the address.
    const GW_MAC: &str = "02:b7:0a:c9:89:01";
    const VICTIM_MAC: &str = "02:b7:0a:c9:89:0a";
    h.ok(&["network", "create", "--subnet", "10.201.137.0/24", "fpmnet"]);
    h.ok(&[
        "network",
        "create",
        "--subnet",
        "10.201.138.0/24",
        "fpmother",
    ]);
    let victim = h.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        "victim",
        "--network",
        "fpmnet",
        "--ip",
        "10.201.137.10",
        "busybox:e2e",
        "sleep",
        "3600",
    ]);
    let victim = victim.trim().to_string();

    let mut bad = Vec::new();
    let mut check = |front: &str, err: String, mac: &str, also: &[&str]| {
        let missing: Vec<&str> = [mac, "fpmnet"]
            .into_iter()
            .chain(also.iter().copied())
            .filter(|w| !err.contains(w))
            .collect();
        if !missing.is_empty() {
            bad.push(format!("{front}: the error lacks {missing:?}: {err}"));
        }
    };
    // netd names containers by id.
    let cases = [
        (GW_MAC, ["gateway", "gateway"]),
        (VICTIM_MAC, ["already the MAC", victim.as_str()]),
    ];
    for (mac, also) in cases {
        let err = berth_fails(
            &h,
            &[
                "container",
                "run",
                "-d",
                "--name",
                "thief",
                "--network",
                "fpmnet",
                "--mac-address",
                mac,
                "busybox:e2e",
                "sleep",
                "3600",
            ],
        );
        check("berth container run", err, mac, &also);
        let err = docker.fails(&[
            "run",
            "-d",
            "--name",
            "thief2",
            "--network",
            "fpmnet",
            "--mac-address",
            mac,
            "busybox:e2e",
            "sleep",
            "3600",
        ]);
        check("docker run", err, mac, &also);
    }
    // network connect: a container of another network asks for the victim's MAC here.
    let other = h.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        "other",
        "--network",
        "fpmother",
        "busybox:e2e",
        "sleep",
        "3600",
    ]);
    let other = other.trim().to_string();
    let pid = docker.ok(&["inspect", "-f", "{{.State.Pid}}", "other"]);
    // netd names containers by id.
    let cases = [
        (GW_MAC, ["gateway", "gateway"]),
        (VICTIM_MAC, ["already the MAC", victim.as_str()]),
    ];
    for (mac, also) in cases {
        let err = berth_fails(
            &h,
            &[
                "network",
                "connect",
                "--pid",
                pid.trim(),
                "--mac",
                mac,
                "fpmnet",
                &other,
            ],
        );
        check("berth network connect", err, mac, &also);
    }
    let names = docker.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    let other_nets = docker.ok(&[
        "inspect",
        "-f",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        "other",
    ]);
    let victim_ok = h
        .berth(&[
            "container",
            "exec",
            "victim",
            "busybox",
            "ping",
            "-c",
            "2",
            "-W",
            "1",
            "10.201.137.1",
        ])
        .status
        .success();
    docker.ok(&["rm", "-f", &victim, &other]);
    h.ok(&["network", "rm", "fpmnet", "fpmother"]);
    assert!(bad.is_empty(), "{bad:#?}");
    let mut names: Vec<&str> = names.lines().collect();
    names.sort();
    assert_eq!(names, ["other", "victim"], "nothing half-made");
    assert_eq!(
        other_nets.trim(),
        "fpmother",
        "other not connected to fpmnet"
    );
    assert!(victim_ok, "the victim still reaches its gateway");
}
