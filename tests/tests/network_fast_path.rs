//! The container-to-container fast path end to end, as root with the real binary: two
//! containers of a Compose network exchange 8 MiB over HTTP intact while the bridge carries
//! none of it to the receiver's host veth; each endpoint has a static FDB entry; after the
//! daemon is killed and comes back (and after an FDB entry is deleted by hand) reconcile keeps
//! the fast path; a daemon started with `BERTH_NO_FAST_PATH=1` takes it off (the bridge carries
//! the data again); `down` leaves nothing.

use std::path::Path;

use berth_tests::host::Host;

const STACK: &str = r#"
name: fpe
x-box: &box
  image: busybox:e2e
  init: true
  stop_grace_period: 1s
services:
  a:
    <<: *box
    command: ["sleep", "3600"]
    networks: [fast]
  b:
    <<: *box
    command: ["sh", "-c", "mkdir -p /w && dd if=/dev/urandom of=/w/big bs=64k count=128 2>/dev/null && exec busybox httpd -f -p 80 -h /w"]
    networks: [fast]
networks:
  fast:
    driver_opts:
      com.docker.network.bridge.name: br-fpe
    ipam:
      config:
        - subnet: 10.201.120.0/24
"#;

const BYTES: u64 = 128 * 64 * 1024;

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn exec(host: &Host, container: &str, cmd: &str) -> String {
    host.ok(&["container", "exec", container, "busybox", "sh", "-c", cmd])
}

/// The static FDB entries of br-fpe, as (MAC, port).
fn static_fdb(host: &Host) -> Vec<(String, String)> {
    text(&host.sh("bridge fdb show br br-fpe"))
        .lines()
        .filter(|l| l.split_whitespace().any(|w| w == "static"))
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() > 2 && w[1] == "dev").then(|| (w[0].to_string(), w[2].to_string()))
        })
        .collect()
}

/// A container's endpoint on the network as `network inspect` lists it: (MAC, host veth),
/// found by the container's address.
fn endpoint_of(host: &Host, container: &str) -> (String, String) {
    let ip = exec(host, container, "ip -4 -o addr show eth0");
    let ip = ip
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .expect("an inet address")
        .to_string();
    let out = host.ok(&["network", "inspect", "fpe_fast"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("inspect json");
    let eps = v[0]["Endpoints"].as_array().cloned().unwrap_or_default();
    let e = eps
        .iter()
        .find(|e| e["address"] == ip.as_str())
        .unwrap_or_else(|| panic!("no endpoint with {ip}: {eps:?}"));
    (
        e["mac"].as_str().expect("mac").to_lowercase(),
        e["host_ifname"].as_str().expect("host_ifname").to_string(),
    )
}

/// The host veth that carries `mac` (its static FDB entry's port).
fn port_of(host: &Host, mac: &str) -> String {
    static_fdb(host)
        .into_iter()
        .find(|(m, _)| m == mac)
        .map(|(_, p)| p)
        .unwrap_or_else(|| panic!("no static FDB entry for {mac}: {:?}", static_fdb(host)))
}

fn tx_bytes(host: &Host, ifname: &str) -> u64 {
    let out = text(&host.sh(&format!("ip -s -j link show dev {ifname}")));
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("ip -j");
    v[0]["stats64"]["tx"]["bytes"].as_u64().expect("tx bytes")
}

/// Fetches b's 8 MiB file into a; checks it arrived intact; the bytes a's host veth sent
/// meanwhile (what the bridge carried to a).
fn transfer(host: &Host, a_port: &str) -> u64 {
    let before = tx_bytes(host, a_port);
    exec(
        host,
        "fpe-a-1",
        "rm -f /tmp/big; wget -q -O /tmp/big http://b/big",
    );
    let after = tx_bytes(host, a_port);
    let sum = |c: &str, f: &str| {
        exec(host, c, &format!("md5sum {f}"))
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(
        sum("fpe-a-1", "/tmp/big"),
        sum("fpe-b-1", "/w/big"),
        "the data arrived intact"
    );
    after - before
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !f() {
        assert!(
            std::time::Instant::now() < end,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test_with::root()]
#[test_with::executable(ip, bridge, nsenter, nft, busybox)]
#[test]
fn containers_talk_past_the_bridge_through_restarts_and_repairs() {
    let host = Host::new("fpe");
    host.busybox_image();
    std::fs::write(host.stack.join("compose.yaml"), STACK).expect("compose");
    host.ok(&["up", "-d"]);
    wait_for("b's httpd", || {
        host.berth(&[
            "container",
            "exec",
            "fpe-a-1",
            "busybox",
            "wget",
            "-q",
            "-O",
            "/dev/null",
            "http://b/big",
        ])
        .status
        .success()
    });
    let (ma, a_port) = endpoint_of(&host, "fpe-a-1");
    let (mb, b_port) = endpoint_of(&host, "fpe-b-1");
    assert_eq!(port_of(&host, &ma), a_port, "a's static FDB entry");
    assert_eq!(port_of(&host, &mb), b_port, "b's static FDB entry");

    let carried = transfer(&host, &a_port);
    assert!(
        carried < BYTES / 8,
        "the bridge carried {carried} bytes to a"
    );

    // The daemon dies and comes back: netd finds its programs again and keeps the path.
    host.kill_daemon();
    host.ok(&["network", "ls"]);
    let carried = transfer(&host, &a_port);
    assert!(
        carried < BYTES / 8,
        "after a restart the bridge carried {carried} bytes"
    );

    // An FDB entry deleted by hand comes back with reconcile.
    host.sh(&format!("bridge fdb del {ma} dev {a_port} master"));
    assert!(!static_fdb(&host).iter().any(|(m, _)| *m == ma));
    host.ok(&["network", "reconcile"]);
    assert_eq!(port_of(&host, &ma), a_port, "static FDB entry repaired");

    // Switched off: a daemon started with BERTH_NO_FAST_PATH=1 takes the programs off.
    host.kill_daemon();
    let out = host.berth_env("BERTH_NO_FAST_PATH=1", "network reconcile");
    let _ = out;
    wait_for("the bridge carrying the data", || {
        transfer(&host, &a_port) >= BYTES
    });

    // Back on for `down`, which must leave nothing (programs go with the veths).
    host.kill_daemon();
    host.ok(&["network", "reconcile"]);
    host.down_clean();
    assert!(!Path::new("/sys/class/net/br-fpe").exists());
}
