//! Docker's bridge and endpoint driver options, applied end to end as root with the real
//! binary: a Compose network's `driver_opts` name its bridge, keep its containers apart
//! (`enable_icc: "false"`, tried with real traffic), leave its subnet unmasqueraded (a LAN
//! neighbour routing it back answers a container, but reaches none directly), bind its
//! published ports to one host address and prefix its interface names; a service's endpoint
//! `driver_opts` set sysctls of its interface. Each survives a daemon restart and is put back
//! by reconcile after it was undone by hand (the nft table flushed, the port's isolation
//! lifted, the sysctl rewritten). berth's CLI (`network create -o/--aux-address`, `container
//! run --link-local-ip`) and the Docker API with the docker CLI as the oracle do the same.

use berth_tests::docker::Docker;
use berth_tests::host::{self, Host};
use berth_tests::neighbour::Neighbour;

const STACK: &str = r#"
name: dro
x-box: &box
  image: busybox:e2e
  init: true
  stop_grace_period: 1s
  command: ["sleep", "3600"]
services:
  a:
    <<: *box
    networks:
      quiet:
        driver_opts:
          com.docker.network.endpoint.sysctls: "net.ipv4.conf.IFNAME.log_martians=1,net.ipv4.conf.IFNAME.accept_redirects=0"
  b:
    <<: *box
    command: ["busybox", "httpd", "-f", "-p", "80", "-h", "/etc"]
    networks: [quiet]
  web:
    <<: *box
    command: ["busybox", "httpd", "-f", "-p", "8080", "-h", "/etc"]
    ports: ["18080:8080"]
    networks: [bound]
networks:
  quiet:
    driver_opts:
      com.docker.network.bridge.name: br-dro-q
      com.docker.network.bridge.enable_icc: "false"
      com.docker.network.bridge.enable_ip_masquerade: "false"
      com.docker.network.container_iface_prefix: q
    ipam:
      config:
        - subnet: 10.201.110.0/24
  bound:
    driver_opts:
      com.docker.network.bridge.host_binding_ipv4: "127.0.0.1"
    ipam:
      config:
        - subnet: 10.201.111.0/24
"#;

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A shell command inside a container; its output and whether it succeeded.
fn exec(host: &Host, container: &str, cmd: &str) -> (bool, String) {
    let o = host.berth(&["container", "exec", container, "busybox", "sh", "-c", cmd]);
    (o.status.success(), text(&o))
}

/// The endpoints of a network as `network inspect` lists them.
fn endpoints(host: &Host, network: &str) -> Vec<serde_json::Value> {
    let out = host.ok(&["network", "inspect", network]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("inspect json");
    v[0]["Endpoints"].as_array().cloned().unwrap_or_default()
}

/// berth's `ip` table in the host's namespace (its name is the instance's).
fn table(host: &Host) -> String {
    let tables = text(&host.sh("nft list tables"));
    tables
        .lines()
        .find_map(|l| l.strip_prefix("table ip "))
        .map(|t| t.trim().to_string())
        .unwrap_or_else(|| panic!("no ip table: {tables}"))
}

/// The masquerade rules of berth's table for outbound traffic of `subnet` (the hairpin and
/// host-local ones, which match `ct status dnat` or a loopback source, left out).
fn outbound_masquerade(host: &Host, table: &str, subnet: &str) -> usize {
    let chain = text(&host.sh(&format!("nft list chain ip {table} postrouting")));
    chain
        .lines()
        .filter(|l| {
            l.contains(&format!("ip saddr {subnet}"))
                && l.contains("oifname !=")
                && l.contains("masquerade")
        })
        .count()
}

/// The IPv4 address of `ifname` in a container.
fn ip_of(host: &Host, container: &str, ifname: &str) -> String {
    let (ok, out) = exec(host, container, &format!("ip -4 -o addr show {ifname}"));
    assert!(ok, "{out}");
    out.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .expect("an inet address")
        .to_string()
}

/// Whether container `from` gets `url` over HTTP within a few seconds.
fn fetches(host: &Host, from: &str, url: &str) -> bool {
    exec(host, from, &format!("timeout 4 wget -qO- {url}")).0
}

#[test_with::root()]
#[test]
fn compose_driver_opts_are_applied_and_kept() {
    host::require_tools();
    let host = Host::new("dro");
    host.busybox_image();
    std::fs::write(host.stack.join("compose.yaml"), STACK).expect("compose");
    let out = host.ok(&["up", "--wait", "--wait-timeout", "60"]);
    assert!(out.contains("every service is running"), "{out}");

    // The bridge has the given name; inspect shows the options as Docker does.
    let link = text(&host.sh("ip -o link show br-dro-q"));
    assert!(link.contains("br-dro-q"), "{link}");
    // Known for berth's by its alias (not an uplink, its events not a host change).
    assert!(link.contains("alias berth-netd bridge"), "{link}");
    let inspect = host.ok(&["network", "inspect", "dro_quiet"]);
    let v: serde_json::Value = serde_json::from_str(inspect.trim()).expect("inspect json");
    let opts = &v[0]["Options"];
    assert_eq!(opts["com.docker.network.bridge.name"], "br-dro-q");
    assert_eq!(opts["com.docker.network.bridge.enable_icc"], "false");
    assert_eq!(
        opts["com.docker.network.bridge.enable_ip_masquerade"],
        "false"
    );

    // The interface prefix and the endpoint's sysctls, seen inside the container.
    let (ok, links) = exec(&host, "dro-a-1", "ip -o link show");
    assert!(
        ok && links.contains(" q0@") && !links.contains(" eth0@"),
        "{links}"
    );
    let sysctl = |name: &str| {
        let (ok, v) = exec(
            &host,
            "dro-a-1",
            &format!("cat /proc/sys/net/ipv4/conf/q0/{name}"),
        );
        assert!(ok, "{v}");
        v.trim().to_string()
    };
    assert_eq!(sysctl("log_martians"), "1");
    assert_eq!(sysctl("accept_redirects"), "0");

    // enable_icc=false: a cannot reach b's web server; both reach their gateway (the
    // embedded DNS answers there), and with the port's isolation lifted by hand a reaches b.
    let b_ip = ip_of(&host, "dro-b-1", "q0");
    let a_ip = ip_of(&host, "dro-a-1", "q0");
    let a_veth = endpoints(&host, "dro_quiet")
        .iter()
        .find(|e| e["address"] == a_ip.as_str())
        .and_then(|e| e["host_ifname"].as_str().map(String::from))
        .expect("a's veth");
    let url = format!("http://{b_ip}/hostname");
    assert!(
        !fetches(&host, "dro-a-1", &url),
        "a reached b across enable_icc=false"
    );
    let (ok, dns) = exec(&host, "dro-a-1", "nslookup b 10.201.110.1");
    assert!(ok && dns.contains(&b_ip), "the gateway answers: {dns}");
    host.sh(&format!(
        "ip link set dev {a_veth} type bridge_slave isolated off"
    ));
    assert!(
        fetches(&host, "dro-a-1", &url),
        "without isolation a reaches b"
    );

    // No outbound masquerade for the quiet subnet, one for the other.
    let t = table(&host);
    assert_eq!(outbound_masquerade(&host, &t, "10.201.110.0/24"), 0);
    assert_eq!(outbound_masquerade(&host, &t, "10.201.111.0/24"), 1);

    // host_binding_ipv4: the port is published on 127.0.0.1 alone.
    let nat = text(&host.sh(&format!("nft list chain ip {t} output")));
    assert!(
        nat.lines()
            .any(|l| l.contains("ip daddr 127.0.0.1") && l.contains("dport 18080")),
        "{nat}"
    );
    let o = host
        .sh("curl -s -o /dev/null -w '%{http_code}' --max-time 5 http://127.0.0.1:18080/hostname");
    assert_eq!(text(&o).trim(), "200", "published on 127.0.0.1");
    host.sh("ip link add bt-dro-d0 type dummy && ip addr add 10.250.1.1/24 dev bt-dro-d0 && ip link set bt-dro-d0 up");
    let o = host
        .sh("curl -s -o /dev/null -w '%{http_code}' --max-time 3 http://10.250.1.1:18080/hostname");
    host.sh("ip link del bt-dro-d0");
    assert_ne!(
        text(&o).trim(),
        "200",
        "not published on another host address"
    );

    // Unmasqueraded: a LAN neighbour that routes the subnet back through the host answers a
    // container (its replies come in addressed to the container), but cannot open a
    // connection to one itself.
    let nb = Neighbour::new(&host);
    assert!(
        nb.sh("ip route add 10.201.110.0/24 via 192.168.177.1")
            .status
            .success()
    );
    let mut srv = std::process::Command::new("ip")
        .args([
            "netns", "exec", &nb.ns, "busybox", "httpd", "-f", "-p", "8099", "-h", "/etc",
        ])
        .spawn()
        .expect("neighbour's httpd");
    let mut reached = false;
    for _ in 0..10 {
        if fetches(&host, "dro-a-1", "http://192.168.177.2:8099/hostname") {
            reached = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let direct = nb.curl(&format!("http://{b_ip}/hostname"));
    let _ = srv.kill();
    let _ = srv.wait();
    assert!(
        reached,
        "the neighbour's replies reach the unmasqueraded container"
    );
    assert!(
        direct.is_empty(),
        "the neighbour reached b directly: {direct:?}"
    );
    drop(nb);

    // Undo by hand what the options made, once with the daemon stopped (the next daemon
    // reads the network from netd's state) and once with it running; reconcile puts it back.
    let a_id = host
        .ps_ids()
        .into_iter()
        .find(|id| host.ok(&["container", "inspect", id]).contains("dro-a-1"))
        .expect("a's id");
    let netns = host.run.join("netns").join(&a_id[..12]);
    let isolated =
        || text(&host.sh(&format!("ip -d link show dev {a_veth}"))).contains("isolated on");
    for round in ["after a daemon restart", "with the daemon running"] {
        if round.starts_with("after") {
            host.ok(&["system", "shutdown"]);
        }
        host.sh(&format!("nft flush table ip {t}"));
        host.sh(&format!(
            "ip link set dev {a_veth} type bridge_slave isolated off"
        ));
        assert!(!isolated(), "{round}: isolation lifted");
        let w = std::process::Command::new("nsenter")
            .arg(format!("--net={}", netns.display()))
            .args([
                "sh",
                "-c",
                "echo 0 > /proc/sys/net/ipv4/conf/q0/log_martians",
            ])
            .status();
        assert!(
            w.is_ok_and(|s| s.success()),
            "rewrite the sysctl in {}",
            netns.display()
        );
        // (A daemon starting reconciles before it answers, so the repairs may be its.)
        let rep = host.ok(&["network", "reconcile"]);
        assert!(isolated(), "{round}: isolation restored: {rep}");
        assert!(!fetches(&host, "dro-a-1", &url), "{round}: a reached b");
        assert_eq!(
            outbound_masquerade(&host, &t, "10.201.110.0/24"),
            0,
            "{round}"
        );
        assert_eq!(
            outbound_masquerade(&host, &t, "10.201.111.0/24"),
            1,
            "{round}: table restored: {rep}"
        );
        assert_eq!(
            sysctl("log_martians"),
            "1",
            "{round}: sysctl restored: {rep}"
        );
        let o = host.sh(
            "curl -s -o /dev/null -w '%{http_code}' --max-time 5 http://127.0.0.1:18080/hostname",
        );
        assert_eq!(
            text(&o).trim(),
            "200",
            "{round}: the port after the restore"
        );
    }
    host.down_clean();
}

#[test_with::root()]
#[test]
fn cli_options_are_applied_and_bad_ones_refused() {
    host::require_tools();
    let host = Host::new("droc");
    host.busybox_image();
    host.ok(&[
        "network",
        "create",
        "--subnet",
        "10.201.112.0/29",
        "--aux-address",
        "router=10.201.112.2",
        "-o",
        "com.docker.network.bridge.name=br-droc",
        "-o",
        "com.docker.network.container_iface_prefix=lan",
        "cliopts",
    ]);
    let ins = host.ok(&["network", "inspect", "cliopts"]);
    assert!(ins.contains("\"router\""), "{ins}");
    host.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        "ll",
        "--network",
        "cliopts",
        "--link-local-ip",
        "169.254.7.7",
        "busybox:e2e",
        "sleep",
        "3600",
    ]);
    let (ok, addr) = exec(&host, "ll", "ip -4 addr show lan0");
    assert!(ok, "{addr}");
    assert!(
        addr.contains("inet 10.201.112.3/29"),
        "the reserved .2 is skipped: {addr}"
    );
    assert!(
        addr.contains("inet 169.254.7.7/16"),
        "--link-local-ip: {addr}"
    );
    let link = text(&host.sh("ip -o link show br-droc"));
    assert!(link.contains("br-droc"), "{link}");

    // Refusals name the option and the value, and make nothing.
    for (opt, want) in [
        (
            "com.docker.network.bridge.name=lo",
            "already an interface of the host",
        ),
        (
            "com.docker.network.bridge.name=br-droc",
            "already the bridge of network cliopts",
        ),
        (
            "com.docker.network.bridge.name=a-name-far-too-long",
            "is not an interface name",
        ),
        (
            "com.docker.network.bridge.name=berth-1234abcd",
            "is reserved",
        ),
        (
            "com.docker.network.bridge.enable_icc=maybe",
            "is not a boolean",
        ),
        (
            "com.docker.network.bridge.inhibit_ipv4=true",
            "not supported",
        ),
    ] {
        let o = host.berth(&["network", "create", "-o", opt, "refused"]);
        let msg = text(&o);
        assert!(!o.status.success() && msg.contains(want), "{opt}: {msg}");
    }
    let ls = host.ok(&["network", "ls"]);
    assert!(!ls.contains("refused"), "{ls}");
    let o = host.berth(&[
        "container",
        "run",
        "--link-local-ip",
        "10.0.0.1",
        "busybox:e2e",
        "true",
    ]);
    assert!(
        !o.status.success() && text(&o).contains("not a link-local"),
        "{}",
        text(&o)
    );

    // A Compose file's bad option fails `up` naming the key and value, with nothing made.
    let net_opt =
        "networks:\n  n:\n    driver_opts: {com.docker.network.bridge.enable_icc: \"maybe\"}\n";
    let ep_opt = "networks:\n  n: {}\n";
    for (nets, ep, want) in [
        (
            net_opt,
            "",
            "networks.n.driver_opts.com.docker.network.bridge.enable_icc",
        ),
        (
            ep_opt,
            "\n        driver_opts: {com.docker.network.endpoint.sysctls: \"kernel.pid_max=5\"}",
            "networks.n.driver_opts.com.docker.network.endpoint.sysctls",
        ),
    ] {
        let file = format!(
            "name: bad\nservices:\n  s:\n    image: busybox:e2e\n    networks:\n      n:{}\n{nets}",
            if ep.is_empty() { " {}" } else { ep }
        );
        std::fs::write(host.stack.join("compose.yaml"), file).expect("compose");
        let o = host.berth(&["up", "-d"]);
        let msg = text(&o);
        assert!(!o.status.success() && msg.contains(want), "{want}: {msg}");
        assert!(host.ps().is_empty(), "{want}");
        assert!(!host.ok(&["network", "ls"]).contains("bad_n"), "{want}");
    }

    host.ok(&["container", "rm", "-f", "ll"]);
    host.ok(&["network", "rm", "cliopts"]);
    let leaks = host.leaks(&[]);
    assert!(leaks.is_empty(), "{leaks:#?}");
}

#[test_with::root()]
#[test_with::executable(docker)]
#[test]
fn docker_cli_driver_options_are_applied() {
    host::require_tools();
    let h = Host::new("drok");
    h.busybox_image();
    let docker = Docker::new(&h);
    docker.ok(&[
        "network",
        "create",
        "--subnet",
        "10.231.40.0/24",
        "-o",
        "com.docker.network.bridge.enable_icc=false",
        "-o",
        "com.docker.network.bridge.name=br-drok",
        "dkicc",
    ]);
    let icc = docker.ok(&[
        "network",
        "inspect",
        "-f",
        "{{index .Options \"com.docker.network.bridge.enable_icc\"}} {{index .Options \"com.docker.network.bridge.name\"}}",
        "dkicc",
    ]);
    assert_eq!(icc.trim(), "false br-drok");
    // The endpoint option through the extended --network syntax's driver-opt.
    docker.ok(&[
        "run",
        "-d",
        "--name",
        "k1",
        "--network",
        "name=dkicc,driver-opt=com.docker.network.endpoint.sysctls=net.ipv4.conf.IFNAME.log_martians=1",
        "busybox:e2e",
        "sleep",
        "3600",
    ]);
    docker.ok(&[
        "run",
        "-d",
        "--name",
        "k2",
        "--network",
        "dkicc",
        "busybox:e2e",
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ]);
    let sys = docker.ok(&[
        "exec",
        "k1",
        "cat",
        "/proc/sys/net/ipv4/conf/eth0/log_martians",
    ]);
    assert_eq!(sys.trim(), "1");
    let k2 = docker.ok(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        "k2",
    ]);
    let url = format!("http://{}/hostname", k2.trim());
    let got = docker.run(&[
        "exec", "k1", "busybox", "timeout", "4", "wget", "-qO-", &url,
    ]);
    assert!(
        !got.status.success(),
        "k1 reached k2 across enable_icc=false"
    );
    // A connect's --driver-opt carries them too; an unknown one is refused by name.
    docker.ok(&["network", "create", "--subnet", "10.231.41.0/29", "dkplain"]);
    docker.ok(&[
        "network",
        "connect",
        "--driver-opt",
        "com.docker.network.endpoint.sysctls=net.ipv4.conf.IFNAME.accept_redirects=0",
        "dkplain",
        "k1",
    ]);
    let sys = docker.ok(&[
        "exec",
        "k1",
        "cat",
        "/proc/sys/net/ipv4/conf/eth1/accept_redirects",
    ]);
    assert_eq!(sys.trim(), "0");
    let err = docker.fails(&[
        "network",
        "connect",
        "--driver-opt",
        "com.docker.network.endpoint.nope=1",
        "dkplain",
        "k2",
    ]);
    assert!(err.contains("com.docker.network.endpoint.nope"), "{err}");
    let err = docker.fails(&[
        "network",
        "create",
        "-o",
        "com.docker.network.bridge.inhibit_ipv4=true",
        "dkbad",
    ]);
    assert!(
        err.contains("com.docker.network.bridge.inhibit_ipv4"),
        "{err}"
    );
    docker.ok(&["rm", "-f", "k1", "k2"]);
    docker.ok(&["network", "rm", "dkicc", "dkplain"]);
}
