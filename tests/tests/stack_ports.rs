//! Port conflicts found before `up` starts anything (USERS.md §7), end to end as root with the
//! real binary, runtime and netd in a netns of the test's own (harness in `berth_tests::host`): a host
//! process holding a port, a port another project publishes, and the project's own ports on
//! recreate (which are no conflict), and two replicas of a service on one fixed port.

use berth_tests::host::{self, Host};
use berth_tests::neighbour::Neighbour;

use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsFd;

/// A TCP listener bound to `addr` inside the host's namespace, held by this test process.
fn listen_in(host: &Host, addr: &str) -> TcpListener {
    let ns = format!("/run/netns/{}", host.ns);
    let addr: SocketAddr = addr.parse().expect("address");
    std::thread::spawn(move || {
        let f = std::fs::File::open(&ns).expect("open netns");
        nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        TcpListener::bind(addr).expect("bind in the namespace")
    })
    .join()
    .expect("listener thread")
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn compose(name: &str, port: &str, env: &str) -> String {
    format!(
        r#"
name: {name}
x-quick: &quick
  image: busybox:e2e
  init: true
  stop_grace_period: 1s
  command: ["sleep", "3600"]
services:
  first:
    <<: *quick
  second:
    <<: *quick
    environment:
      MARK: "{env}"
    ports:
      - "{port}"
"#
    )
}

#[test_with::root()]
#[test]
fn up_refuses_a_taken_port_before_starting_anything() {
    host::require_tools();
    let host = Host::new("ports");
    host.busybox_image();
    let me = format!("process {} (", std::process::id());

    // A host process on 127.0.0.1:18080: the wildcard publication would take its traffic.
    let holder = listen_in(&host, "127.0.0.1:18080");
    std::fs::write(
        host.stack.join("compose.yaml"),
        compose("pp", "18080:80", "a"),
    )
    .expect("compose");
    let out = host.berth(&["up", "-d"]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(
        msg.contains("service second")
            && msg.contains("tcp/18080")
            && msg.contains("127.0.0.1:18080")
            && msg.contains(&me),
        "the error names the service, the port and the holder: {msg}"
    );
    assert!(
        host.ps().is_empty(),
        "no container of the project was created or started: {:?}",
        host.ps()
    );
    let nets = host.ok(&["network", "ls"]);
    assert!(!nets.contains("pp_default"), "nothing was created: {nets}");

    // Once the host process lets go, up succeeds; recreating the service keeps its own
    // port (the container being replaced is no conflict).
    drop(holder);
    host.ok(&["up", "-d"]);
    let first_ids: Vec<String> = host
        .ps()
        .iter()
        .map(|r| r["id"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(first_ids.len(), 2);
    std::fs::write(
        host.stack.join("compose.yaml"),
        compose("pp", "18080:80", "b"),
    )
    .expect("compose");
    host.ok(&["up", "-d"]);
    let ids: Vec<String> = host
        .ps()
        .iter()
        .map(|r| r["id"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(
        ids.iter().any(|i| !first_ids.contains(i)),
        "second was recreated"
    );

    // Another project publishing the same port is refused naming the container holding it,
    // with none of its containers made.
    std::fs::write(
        host.stack.join("other.yaml"),
        compose("qq", "127.0.0.1:18080:80", "a"),
    )
    .expect("compose");
    let out = host.berth(&["-f", "other.yaml", "up", "-d"]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(
        msg.contains("service second")
            && msg.contains("tcp/18080")
            && msg.contains("published by container pp-second-1"),
        "{msg}"
    );
    assert!(host.ps_of(&["-f", "other.yaml"]).is_empty());

    // Two replicas of one service claiming the same fixed port (two services doing so are
    // refused by the loader already).
    std::fs::write(
        host.stack.join("twice.yaml"),
        r#"
name: tw
services:
  b:
    image: busybox:e2e
    command: ["sleep", "3600"]
    ports: ["18090:80"]
"#,
    )
    .expect("compose");
    let out = host.berth(&["-f", "twice.yaml", "up", "-d", "--scale", "b=2"]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(
        msg.contains(
            "service b: containers tw-b-1 and tw-b-2 would both publish host port tcp/18090"
        ),
        "{msg}"
    );
    assert!(host.ps_of(&["-f", "twice.yaml"]).is_empty());

    host.ok(&["down", "-t", "1"]);
    assert!(host.ps().is_empty());
    let mut all = first_ids;
    all.extend(ids);
    let leaks = host.leaks(&all);
    assert!(leaks.is_empty(), "down left: {leaks:#?}");
}

/// A service publishing port 53 on every address (a Pi-hole-like DNS container) must not
/// capture the other containers' queries to their gateway, i.e. the embedded DNS: the DNAT
/// for the published port matches every local address, the gateway included.
#[test_with::root()]
#[test]
fn publishing_port_53_leaves_the_embedded_dns_alone() {
    host::require_tools();
    let host = Host::new("p53");
    host.busybox_image();
    let stack = r#"
name: p53
x-quick: &quick
  image: busybox:e2e
  init: true
  stop_grace_period: 1s
services:
  resolver:
    <<: *quick
    ports: ["53:53/udp", "53:53/tcp"]
    command: ["sh", "-c", "nc -lk -p 53 -e true & nc -u -l -p 53 -e true & sleep 300"]
  client:
    <<: *quick
    command: ["sleep", "300"]
"#;
    std::fs::write(host.stack.join("compose.yaml"), stack).expect("compose");
    host.ok(&["up", "-d"]);
    let mut last = String::new();
    let mut ok = false;
    for _ in 0..20 {
        let o = host.berth(&["exec", "-T", "client", "nslookup", "-type=a", "resolver"]);
        last = text(&o);
        if o.status.success() && last.contains("Name:") {
            ok = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert!(
        ok,
        "the embedded DNS answers despite the published port 53: {last}"
    );
    // The extra rules read back as written: reconcile finds nothing to rewrite.
    host.ok(&["network", "reconcile"]);
    let again = host.ok(&["network", "reconcile"]);
    assert!(!again.contains("nft table"), "{again}");
    let ids: Vec<String> = host
        .ps()
        .iter()
        .filter_map(|r| r["id"].as_str().map(String::from))
        .collect();
    host.ok(&["down"]);
    let leaks = host.leaks(&ids);
    assert!(leaks.is_empty(), "down left: {leaks:#?}");
}

#[test_with::root()]
#[test]
fn a_lan_neighbour_reaches_only_ports_published_on_the_hosts_addresses() {
    let host = Host::new("expose");
    host.busybox_image();
    let stack = r#"
name: ex
services:
  web:
    image: busybox:e2e
    init: true
    stop_grace_period: 1s
    ports: ["18080:80", "127.0.0.1:18081:80"]
    command: ["sh", "-c", "httpd -p 8000 -h /var/www; httpd -f -p 80 -h /var/www"]
"#;
    std::fs::write(host.stack.join("compose.yaml"), stack).expect("compose");
    host.ok(&["up", "-d"]);
    let ip = host
        .ok(&[
            "container",
            "inspect",
            "-f",
            "{{.NetworkSettings.IPAddress}}",
            "ex-web-1",
        ])
        .trim()
        .to_string();
    assert!(ip.starts_with("10."), "{ip}");
    let nb = Neighbour::new(&host);
    // The neighbour routes the container's address through the host, as a LAN peer can.
    let o = std::process::Command::new("ip")
        .args(["-n", &nb.ns, "route", "add", &ip, "via", "192.168.177.1"])
        .output()
        .expect("ip route");
    assert!(o.status.success());
    let hello = "hello from web\n";
    let mut published = String::new();
    for _ in 0..20 {
        published = nb.curl("http://192.168.177.1:18080/");
        if published == hello {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert_eq!(published, hello, "the published port from the neighbour");
    assert_eq!(
        host.curl("http://127.0.0.1:18081/"),
        hello,
        "127.0.0.1 from the host"
    );
    assert_eq!(host.curl("http://127.0.0.1:18080/"), hello);
    assert_eq!(
        host.curl(&format!("http://{ip}:8000/")),
        hello,
        "the host reaches its containers"
    );
    for (what, url) in [
        ("unpublished port", format!("http://{ip}:8000/")),
        ("published container port", format!("http://{ip}:80/")),
        (
            "127.0.0.1-only publication",
            "http://192.168.177.1:18081/".into(),
        ),
    ] {
        assert_eq!(
            nb.curl(&url),
            "",
            "the neighbour reached the {what} at {url}"
        );
    }
    let ids: Vec<String> = host
        .ps()
        .iter()
        .filter_map(|r| r["id"].as_str().map(String::from))
        .collect();
    host.ok(&["down"]);
    drop(nb);
    let leaks = host.leaks(&ids);
    assert!(leaks.is_empty(), "down left: {leaks:#?}");
}
