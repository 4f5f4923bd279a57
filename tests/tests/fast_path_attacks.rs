//! Attacks on the container-to-container fast path, as root with the real binary, each run
//! first with the fast path switched off (`BERTH_NO_FAST_PATH=1`: the plain bridge, the
//! control) and then on: whatever the bridge keeps apart or delivers, the fast path must too.
//!
//! - A service whose `mac_address` is the network's gateway MAC (the bridge's, derived from the
//!   gateway address) or another container's MAC is refused by name and takes none of their
//!   frames: the others still reach the gateway and the victim.
//! - A frame a container of one network sends to the MAC of a container of another network
//!   (raw, from inside its namespace) never arrives, while the same frame from a container of
//!   the receiver's own network does (plain, 802.1Q-tagged and non-IP frames alike).
//! - A container that sends frames with another container's source MAC does not keep the
//!   frames the bridge carries to that container (from the host, through the gateway) while
//!   the victim keeps talking to its peer.
//! - The fast path switched off between daemon runs leaves no static FDB entry behind.
//! - Names (DNS at the gateway) and published ports (the host's and a container's way in
//!   through the gateway) still work with the fast path on; so do IPv6 (neighbour discovery
//!   through the bridge) and a restarted container (a new veth); an `enable_icc=false`
//!   network gets no fast path and keeps its containers apart.

use std::path::Path;

use berth_tests::host::Host;

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn exec(host: &Host, container: &str, cmd: &str) -> std::process::Output {
    host.berth(&["container", "exec", container, "busybox", "sh", "-c", cmd])
}

/// Brings the stack up with a daemon that has the fast path on or off (the daemon is killed
/// first so the next command starts one with the switch as asked).
fn up(host: &Host, fast: bool) {
    host.kill_daemon();
    let env = if fast { "" } else { "BERTH_NO_FAST_PATH=1" };
    host.berth_env(env, "up -d");
}

fn down(host: &Host) {
    host.ok(&["down", "-t", "1"]);
}

/// Whether `from` gets an answer from `ip` (three tries).
fn pings(host: &Host, from: &str, ip: &str) -> bool {
    exec(host, from, &format!("ping -c 3 -W 1 {ip}"))
        .status
        .success()
}

const SPOOF_STACK: &str = r#"
name: fpx
x-box: &box
  image: busybox:e2e
  init: true
  stop_grace_period: 1s
  command: ["sleep", "3600"]
services:
  a:
    <<: *box
    networks: [spoof]
  victim:
    <<: *box
    networks:
      spoof:
        ipv4_address: 10.201.131.10
  # The bridge's MAC: 02:b7 and the gateway address 10.201.131.1.
  gwmac:
    <<: *box
    depends_on: [victim, a]
    mac_address: "02:b7:0a:c9:83:01"
    networks: [spoof]
  # The victim's MAC: 02:b7 and its address 10.201.131.10.
  twin:
    <<: *box
    depends_on: [victim, a]
    mac_address: "02:b7:0a:c9:83:0a"
    networks: [spoof]
networks:
  spoof:
    driver_opts:
      com.docker.network.bridge.name: br-fpx
    ipam:
      config:
        - subnet: 10.201.131.0/24
"#;

/// What goes wrong in the spoofing stack: the gateway or the victim unreachable from `a`, or
/// the bridge's own MAC no longer the bridge's.
fn spoof_failures(host: &Host) -> Vec<String> {
    let mut bad = Vec::new();
    // Forget whatever a learned before, so its ARP runs again.
    let _ = exec(host, "fpx-a-1", "ip neigh flush dev eth0");
    if !pings(host, "fpx-a-1", "10.201.131.1") {
        bad.push("a cannot reach the gateway 10.201.131.1 (its frames go to gwmac)".to_string());
    }
    if !pings(host, "fpx-a-1", "10.201.131.10") {
        bad.push("a cannot reach the victim 10.201.131.10 (its frames go to twin)".to_string());
    }
    let fdb = text(&host.sh("bridge fdb show br br-fpx"));
    if !fdb
        .lines()
        .any(|l| l.starts_with("02:b7:0a:c9:83:01 dev br-fpx") && l.contains("permanent"))
    {
        bad.push(format!("the bridge lost its own MAC's local entry:\n{fdb}"));
    }
    for l in fdb.lines().filter(|l| l.starts_with("02:b7:0a:c9:83:01 ")) {
        if !l.contains("dev br-fpx") && !l.contains("permanent") {
            bad.push(format!("the bridge's own MAC was moved to a port: {l}"));
        }
    }
    bad
}

/// `up` of a service whose `mac_address` is taken is refused, naming the MAC and the network
/// (and the holder), and leaves no container of it.
fn refusal_failures(host: &Host, service: &str, mac: &str, why: &str) -> Vec<String> {
    let o = host.berth(&["up", "-d", service]);
    let out = text(&o);
    let mut bad = Vec::new();
    if o.status.success() {
        bad.push(format!("up -d {service} was not refused: {out}"));
    } else if !(out.contains(mac) && out.contains("fpx_spoof") && out.contains(why)) {
        bad.push(format!(
            "the refusal of {service} does not name {mac}, fpx_spoof and {why:?}: {out}"
        ));
    }
    let left = format!("fpx-{service}-1");
    if let Some(r) = host.ps().iter().find(|r| r.to_string().contains(&left)) {
        bad.push(format!("a container of {service} was left: {r}"));
    }
    bad
}

/// A service that sets its `mac_address` to the gateway's MAC or to another container's MAC
/// is refused by name (with the plain bridge as with the fast path): it takes nothing of
/// theirs, and leaves nothing broken behind.
#[test_with::root()]
#[test_with::executable(ip, bridge, nsenter, nft, busybox)]
#[test]
fn a_borrowed_mac_takes_no_frames_of_the_gateway_or_the_victim() {
    let host = Host::new("fpx");
    host.busybox_image();
    std::fs::write(host.stack.join("compose.yaml"), SPOOF_STACK).expect("compose");
    let run = |fast: bool| {
        host.kill_daemon();
        let env = if fast { "" } else { "BERTH_NO_FAST_PATH=1" };
        host.berth_env(env, "up -d a victim");
        let mut bad = refusal_failures(&host, "gwmac", "02:b7:0a:c9:83:01", "gateway");
        // netd names containers by id.
        let victim_id = host
            .ps()
            .iter()
            .find(|r| r.to_string().contains("fpx-victim-1"))
            .and_then(|r| r["id"].as_str().map(str::to_string))
            .expect("the victim's id");
        bad.extend(refusal_failures(
            &host,
            "twin",
            "02:b7:0a:c9:83:0a",
            &victim_id,
        ));
        bad.extend(spoof_failures(&host));
        bad
    };
    let control = run(false);
    down(&host);
    let fast = run(true);
    host.down_clean();
    assert!(!Path::new("/sys/class/net/br-fpx").exists());
    assert!(
        control.is_empty(),
        "with the plain bridge (the control): {control:?}"
    );
    assert!(fast.is_empty(), "with the fast path on: {fast:?}");
}

const CROSS_STACK: &str = r#"
name: fpy
x-box: &box
  image: busybox:e2e
  init: true
  stop_grace_period: 1s
  command: ["sleep", "3600"]
services:
  # The sender of network A.
  a:
    <<: *box
    networks:
      na:
        ipv4_address: 10.201.132.10
  # In both networks: it sends from its interface on A.
  both:
    <<: *box
    networks:
      na:
        ipv4_address: 10.201.132.20
      nb:
        ipv4_address: 10.201.133.20
  # The receiver, on B.
  b:
    <<: *box
    networks:
      nb:
        ipv4_address: 10.201.133.10
  # The control sender, on B like the receiver.
  c:
    <<: *box
    networks:
      nb:
        ipv4_address: 10.201.133.30
networks:
  na:
    driver_opts:
      com.docker.network.bridge.name: br-fpya
    ipam:
      config:
        - subnet: 10.201.132.0/24
  nb:
    driver_opts:
      com.docker.network.bridge.name: br-fpyb
    ipam:
      config:
        - subnet: 10.201.133.0/24
"#;

/// Sends `count` raw frames from the interface that holds `src_ip` in the namespace of `pid`
/// to `dst_mac`: `kind` "ip" (UDP to 10.201.133.10:9), "vlan" (the same inside an 802.1Q tag,
/// VID 7) or "raw" (ethertype 0x88b5, local experimental).
const SENDER: &str = r#"
import socket, struct, sys, subprocess
src_ip, dst_mac, kind, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ifname = None
for l in subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True).stdout.splitlines():
    w = l.split()
    if w[3].split("/")[0] == src_ip:
        ifname = w[1]
assert ifname, "no interface holds " + src_ip
src = bytes.fromhex(open("/sys/class/net/%s/address" % ifname).read().strip().replace(":", ""))
dst = bytes.fromhex(dst_mac.replace(":", ""))
payload = b"fast-path-attack" * 4
udp = struct.pack("!HHHH", 4444, 9, 8 + len(payload), 0) + payload
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                  socket.inet_aton(src_ip), socket.inet_aton("10.201.133.10"))
hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
ip = hdr + udp
if kind == "ip":
    frame = dst + src + b"\x08\x00" + ip
elif kind == "vlan":
    frame = dst + src + b"\x81\x00" + struct.pack("!H", 7) + b"\x08\x00" + ip
else:
    frame = dst + src + b"\x88\xb5" + payload
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
for _ in range(count):
    s.send(frame)
"#;

/// Counts, for `secs` seconds, the frames on eth0 (in the namespace it runs in) that carry the
/// senders' payload; prints the count.
const RECEIVER: &str = r#"
import socket, sys, time
secs = float(sys.argv[1])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind(("eth0", 0))
s.settimeout(0.2)
print("ready", flush=True)
end = time.time() + secs
n = 0
while time.time() < end:
    try:
        f = s.recv(65535)
    except socket.timeout:
        continue
    if b"fast-path-attack" in f:
        n += 1
print(n, flush=True)
"#;

const PYTHON: &str = "/var/cache/berth-ci/pyvenv/bin/python3";

fn pid_of(host: &Host, container: &str) -> String {
    host.ok(&["container", "inspect", "-f", "{{.State.Pid}}", container])
        .trim()
        .to_string()
}

/// How many of `count` frames from `sender` (its interface with `src_ip`) to b's MAC arrived
/// at b's eth0 (seen there by a packet socket).
fn arrived(host: &Host, sender: &str, src_ip: &str, kind: &str, count: u32) -> u64 {
    use std::io::BufRead;
    let b_mac =
        String::from_utf8_lossy(&exec(host, "fpy-b-1", "cat /sys/class/net/eth0/address").stdout)
            .trim()
            .to_string();
    let send = host.dir.path().join("send.py");
    let recv = host.dir.path().join("recv.py");
    std::fs::write(&send, SENDER).expect("sender script");
    std::fs::write(&recv, RECEIVER).expect("receiver script");
    let mut rx = std::process::Command::new("timeout")
        .args([
            "20",
            "nsenter",
            "-t",
            &pid_of(host, "fpy-b-1"),
            "-n",
            PYTHON,
        ])
        .arg(&recv)
        .arg("3")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("receiver");
    let mut lines = std::io::BufReader::new(rx.stdout.take().expect("stdout")).lines();
    assert_eq!(
        lines.next().and_then(Result::ok).as_deref(),
        Some("ready"),
        "the receiver started"
    );
    let o = host.sh(&format!(
        "nsenter -t {} -n {PYTHON} {} {src_ip} {b_mac} {kind} {count}",
        pid_of(host, sender),
        send.display()
    ));
    assert!(o.status.success(), "sending from {sender}: {}", text(&o));
    let n = lines
        .next()
        .and_then(Result::ok)
        .and_then(|l| l.trim().parse().ok())
        .expect("the receiver's count");
    let _ = rx.wait();
    n
}

/// (sender, kind, frames arrived) for each sender and kind.
fn cross_counts(host: &Host) -> Vec<(String, String, u64)> {
    let mut out = Vec::new();
    for kind in ["ip", "vlan", "raw"] {
        for (sender, ip) in [
            ("fpy-a-1", "10.201.132.10"),
            ("fpy-both-1", "10.201.132.20"),
            ("fpy-c-1", "10.201.133.30"),
        ] {
            out.push((
                sender.to_string(),
                kind.to_string(),
                arrived(host, sender, ip, kind, 200),
            ));
        }
    }
    out
}

/// A frame for a container of network B sent by a container of network A (or from the A
/// interface of a container in both) never arrives, whatever its ethertype or tag; from a
/// container of B (the control) it does, with the fast path on as with the plain bridge.
#[test_with::root()]
#[test_with::executable(ip, bridge, nsenter, nft, busybox)]
#[test_with::file(/var/cache/berth-ci/pyvenv/bin/python3)]
#[test]
fn a_frame_for_another_network_never_arrives() {
    let host = Host::new("fpy");
    host.busybox_image();
    std::fs::write(host.stack.join("compose.yaml"), CROSS_STACK).expect("compose");

    up(&host, false);
    let plain = cross_counts(&host);
    down(&host);
    up(&host, true);
    let fast = cross_counts(&host);
    host.down_clean();
    assert!(!Path::new("/sys/class/net/br-fpya").exists());
    for (mode, counts) in [("plain bridge", &plain), ("fast path", &fast)] {
        for (sender, kind, n) in counts {
            if sender == "fpy-c-1" {
                assert!(
                    *n >= 200,
                    "{mode}: only {n} of 200 {kind} frames from the same network arrived: {counts:?}"
                );
            } else {
                assert!(
                    *n < 20,
                    "{mode}: {n} of 200 {kind} frames from {sender} (network A) reached b: {counts:?}"
                );
            }
        }
    }
}

const ROAM_STACK: &str = r#"
name: fpz
x-box: &box
  image: busybox:e2e
  init: true
  stop_grace_period: 1s
  command: ["sleep", "3600"]
services:
  peer:
    <<: *box
    networks:
      roam:
        ipv4_address: 10.201.134.30
  # Talks to its peer all the time (five pings a second).
  victim:
    <<: *box
    depends_on: [peer]
    command: ["busybox", "ping", "-i", "0.2", "10.201.134.30"]
    networks:
      roam:
        ipv4_address: 10.201.134.10
  mallory:
    <<: *box
    networks:
      roam:
        ipv4_address: 10.201.134.40
networks:
  roam:
    driver_opts:
      com.docker.network.bridge.name: br-fpz
    ipam:
      config:
        - subnet: 10.201.134.0/24
"#;

/// Broadcasts three frames (ethertype 0x88b5) with the source MAC `src_mac` from eth0 of the
/// namespace it runs in.
const SPOOFER: &str = r#"
import socket, sys
src = bytes.fromhex(sys.argv[1].replace(":", ""))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
for _ in range(3):
    s.send(b"\xff" * 6 + src + b"\x88\xb5" + b"fast-path-attack" * 4)
"#;

/// After mallory sends a few frames with the victim's source MAC, can the host (through the
/// bridge) still reach the victim, which keeps talking to its peer all along?
fn host_reaches_victim_after_spoof(host: &Host) -> Result<(), String> {
    let victim_mac = String::from_utf8_lossy(
        &exec(host, "fpz-victim-1", "cat /sys/class/net/eth0/address").stdout,
    )
    .trim()
    .to_string();
    // The host keeps the victim's MAC (as its ARP entry would for a while).
    let o = host.sh(&format!(
        "ip neigh replace 10.201.134.10 lladdr {victim_mac} dev br-fpz nud permanent"
    ));
    assert!(o.status.success(), "{}", text(&o));
    let ping = || {
        host.sh("busybox ping -c 3 -W 1 10.201.134.10")
            .status
            .success()
    };
    assert!(ping(), "the host reaches the victim before the spoof");
    // A fresh interface solicits routers (IPv6, multicast through the bridge) for its first
    // seconds: let that pass, so that what the victim sends is only its pings to its peer.
    std::thread::sleep(std::time::Duration::from_secs(15));
    let script = host.dir.path().join("spoof.py");
    std::fs::write(&script, SPOOFER).expect("spoofer script");
    let o = host.sh(&format!(
        "nsenter -t {} -n {PYTHON} {} {victim_mac}",
        pid_of(host, "fpz-mallory-1"),
        script.display()
    ));
    assert!(o.status.success(), "spoofing: {}", text(&o));
    std::thread::sleep(std::time::Duration::from_secs(1));
    let fdb = text(&host.sh("bridge fdb show br br-fpz"));
    let r = if ping() {
        Ok(())
    } else {
        Err(format!(
            "the host no longer reaches the victim: its frames go to mallory\nFDB:\n{fdb}"
        ))
    };
    host.sh("ip neigh del 10.201.134.10 dev br-fpz");
    r
}

/// A container that sends frames with another container's source MAC does not take the
/// frames the bridge carries to it (from the gateway: the host, published ports, DNS replies)
/// for longer than the plain bridge lets it.
#[test_with::root()]
#[test_with::executable(ip, bridge, nsenter, nft, busybox)]
#[test_with::file(/var/cache/berth-ci/pyvenv/bin/python3)]
#[test]
fn a_spoofed_source_mac_does_not_keep_the_victims_frames() {
    let host = Host::new("fpz");
    host.busybox_image();
    std::fs::write(host.stack.join("compose.yaml"), ROAM_STACK).expect("compose");

    up(&host, false);
    let plain = host_reaches_victim_after_spoof(&host);
    down(&host);
    up(&host, true);
    let fast = host_reaches_victim_after_spoof(&host);
    host.down_clean();
    assert!(!Path::new("/sys/class/net/br-fpz").exists());
    if let Err(e) = plain {
        panic!("the plain bridge (the control): {e}");
    }
    if let Err(e) = fast {
        panic!("with the fast path on (the plain bridge recovered at once): {e}");
    }
}

const FLIP_STACK: &str = r#"
name: fpw
x-box: &box
  image: busybox:e2e
  init: true
  stop_grace_period: 1s
  command: ["sleep", "3600"]
services:
  a:
    <<: *box
    networks: [flip]
  b:
    <<: *box
    networks: [flip]
networks:
  flip:
    driver_opts:
      com.docker.network.bridge.name: br-fpw
    ipam:
      config:
        - subnet: 10.201.135.0/24
"#;

/// The static FDB entries of br-fpw's ports (lines of `bridge fdb show`).
fn static_entries(host: &Host) -> Vec<String> {
    text(&host.sh("bridge fdb show br br-fpw"))
        .lines()
        .filter(|l| l.split_whitespace().any(|w| w == "static"))
        .map(str::to_string)
        .collect()
}

/// The fast path switched off between daemon runs leaves none of its static FDB entries: with
/// them the bridge never ages a container's MAC and a spoofed source MAC keeps it (see
/// `a_spoofed_source_mac_does_not_keep_the_victims_frames`) even with the switch off.
#[test_with::root()]
#[test_with::executable(ip, bridge, nsenter, nft, busybox)]
#[test]
fn switched_off_it_leaves_no_static_fdb_entry() {
    let host = Host::new("fpw");
    host.busybox_image();
    std::fs::write(host.stack.join("compose.yaml"), FLIP_STACK).expect("compose");
    up(&host, true);
    let on = static_entries(&host);
    host.kill_daemon();
    host.berth_env("BERTH_NO_FAST_PATH=1", "network reconcile");
    let off = static_entries(&host);
    host.down_clean();
    assert!(!Path::new("/sys/class/net/br-fpw").exists());
    assert_eq!(
        on.len(),
        2,
        "one static entry per container with the fast path: {on:?}"
    );
    assert!(
        off.is_empty(),
        "static FDB entries left with the fast path switched off: {off:?}"
    );
}

const PORTS_STACK: &str = r#"
name: fpv
x-box: &box
  image: busybox:e2e
  init: true
  stop_grace_period: 1s
services:
  web:
    <<: *box
    command: ["sh", "-c", "mkdir -p /w && echo fast-path-web > /w/index.html && exec busybox httpd -f -p 80 -h /w"]
    ports: ["18081:80"]
    networks: [pub]
  client:
    <<: *box
    command: ["sleep", "3600"]
    networks: [pub]
networks:
  pub:
    driver_opts:
      com.docker.network.bridge.name: br-fpv
    ipam:
      config:
        - subnet: 10.201.136.0/24
"#;

/// With the fast path on, what goes through the gateway still works: a container reaches
/// another by name (DNS at the gateway, then the fast path), the host reaches the published
/// port, and a container reaches it through the gateway's address (DNAT and masquerade,
/// the reply back through the bridge).
#[test_with::root()]
#[test_with::executable(ip, bridge, nsenter, nft, busybox, curl)]
#[test]
fn published_ports_and_names_work_beside_the_fast_path() {
    let host = Host::new("fpv");
    host.busybox_image();
    std::fs::write(host.stack.join("compose.yaml"), PORTS_STACK).expect("compose");
    up(&host, true);
    let fetch = |what: &str, cmd: &str| -> Result<(), String> {
        let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let o = exec(&host, "fpv-client-1", cmd);
            if String::from_utf8_lossy(&o.stdout).contains("fast-path-web") {
                return Ok(());
            }
            if std::time::Instant::now() > end {
                return Err(format!("{what}: {}", text(&o)));
            }
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    };
    let by_name = fetch("client -> web by name", "wget -q -O - http://web/");
    let hairpin = fetch(
        "client -> the published port at the gateway",
        "wget -q -O - http://10.201.136.1:18081/",
    );
    let from_host = host.sh("curl -s --max-time 5 http://10.201.136.1:18081/");
    let fdb = text(&host.sh("bridge fdb show br br-fpv"));
    host.down_clean();
    assert!(!Path::new("/sys/class/net/br-fpv").exists());
    assert!(
        fdb.lines().any(|l| l.contains(" static")),
        "the fast path was on: {fdb}"
    );
    by_name.expect("by name");
    hairpin.expect("hairpin");
    assert!(
        text(&from_host).contains("fast-path-web"),
        "host -> published port: {}",
        text(&from_host)
    );
}

const SIX_STACK: &str = r#"
name: fpu
x-box: &box
  image: busybox:e2e
  init: true
  stop_grace_period: 1s
  command: ["sleep", "3600"]
services:
  a:
    <<: *box
    networks:
      dual: { ipv6_address: "fd00:fa57:137::10" }
  b:
    <<: *box
    networks:
      dual: { ipv6_address: "fd00:fa57:137::20", ipv4_address: 10.201.137.20 }
networks:
  dual:
    enable_ipv6: true
    driver_opts:
      com.docker.network.bridge.name: br-fpu
    ipam:
      config:
        - subnet: 10.201.137.0/24
        - subnet: "fd00:fa57:137::/64"
"#;

/// With the fast path on, IPv6 (neighbour discovery by multicast through the bridge, then
/// unicast) and IPv4 reach a container, also after it restarted with a new veth: the map
/// follows the new port, the old one forwards nothing.
#[test_with::root()]
#[test_with::executable(ip, bridge, nsenter, nft, busybox)]
#[test]
fn ipv6_and_a_restarted_container_work_beside_the_fast_path() {
    let host = Host::new("fpu");
    host.busybox_image();
    std::fs::write(host.stack.join("compose.yaml"), SIX_STACK).expect("compose");
    up(&host, true);
    let reach = |what: &str| -> Vec<String> {
        let mut bad = Vec::new();
        for ip in ["fd00:fa57:137::20", "10.201.137.20"] {
            if !pings(&host, "fpu-a-1", ip) {
                bad.push(format!("{what}: a cannot reach b at {ip}"));
            }
        }
        bad
    };
    let statics = || {
        text(&host.sh("bridge fdb show br br-fpu"))
            .lines()
            .filter(|l| l.contains(" static"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let mut bad = reach("at first");
    let before = statics();
    host.ok(&["restart", "-t", "1", "b"]);
    bad.extend(reach("after b restarted"));
    let after = statics();
    host.down_clean();
    assert!(!Path::new("/sys/class/net/br-fpu").exists());
    assert_eq!(before.len(), 2, "the fast path was on: {before:?}");
    assert_eq!(after.len(), 2, "one static entry per container: {after:?}");
    assert!(bad.is_empty(), "{bad:?}");
}

const ICC_STACK: &str = r#"
name: fpt
x-box: &box
  image: busybox:e2e
  init: true
  stop_grace_period: 1s
  command: ["sleep", "3600"]
services:
  a:
    <<: *box
    networks: [iso]
  b:
    <<: *box
    networks:
      iso: { ipv4_address: 10.201.138.20 }
networks:
  iso:
    driver_opts:
      com.docker.network.bridge.name: br-fpt
      com.docker.network.bridge.enable_icc: "false"
    ipam:
      config:
        - subnet: 10.201.138.0/24
"#;

/// On an `enable_icc=false` network the fast path stays away (no static FDB entry) and the
/// containers still cannot reach each other, while both reach the gateway.
#[test_with::root()]
#[test_with::executable(ip, bridge, nsenter, nft, busybox)]
#[test]
fn icc_off_keeps_containers_apart_with_the_fast_path_on() {
    let host = Host::new("fpt");
    host.busybox_image();
    std::fs::write(host.stack.join("compose.yaml"), ICC_STACK).expect("compose");
    up(&host, true);
    let to_gateway = pings(&host, "fpt-a-1", "10.201.138.1");
    let to_b = pings(&host, "fpt-a-1", "10.201.138.20");
    let fdb = text(&host.sh("bridge fdb show br br-fpt"));
    host.down_clean();
    assert!(!Path::new("/sys/class/net/br-fpt").exists());
    assert!(to_gateway, "a reaches the gateway");
    assert!(!to_b, "a reached b on an enable_icc=false network");
    assert!(
        !fdb.lines().any(|l| l.contains(" static")),
        "no fast path on an enable_icc=false network: {fdb}"
    );
}
