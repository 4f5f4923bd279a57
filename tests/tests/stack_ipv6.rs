//! IPv6 in a compose stack, end to end as root with the real binary: an `enable_ipv6` network
//! with an IPv6 `ipam.config` pool and `ip_range`, AAAA answers from the embedded DNS (on both
//! gateways), HTTP over IPv6 between containers, a freely chosen static `ipv6_address`, the
//! v6 line in /etc/hosts, the IPv6 gateway as a nameserver after the IPv4 ones, a port
//! published on `[::]` only, an empty NOERROR for AAAA on an IPv4-only network, `down`
//! leaving nothing (no ip6 table), and clear refusals of a taken `ipv6_address` and of a
//! `[::1]` port.

use berth_tests::host::{self, Host};

const STACK: &str = r#"
name: six
x-quick: &quick
  image: busybox:e2e
  init: true
  stop_grace_period: 1s
services:
  web:
    <<: *quick
    command: ["httpd", "-f", "-p", "80", "-h", "/var/www"]
    ports: ["18080:80", "[::]:18081:80"]
    networks:
      dual: { ipv6_address: "fd00:b5e7:77::1:10" }
      four: {}
  client:
    <<: *quick
    command: ["sleep", "3600"]
    networks: [dual, four]
networks:
  dual:
    enable_ipv6: true
    ipam:
      config:
        - subnet: 10.201.77.0/24
        - subnet: "fd00:b5e7:77::/64"
          gateway: "fd00:b5e7:77::1"
          ip_range: "fd00:b5e7:77::200/120"
  four:
    ipam:
      config:
        - subnet: 10.201.78.0/24
"#;

#[test_with::root()]
#[test]
fn ipv6_network_answers_aaaa_serves_http_over_v6_and_down_leaves_nothing() {
    host::require_tools();
    let host = Host::new("v6");
    host.busybox_image();
    std::fs::write(host.stack.join("compose.yaml"), STACK).expect("compose");
    let out = host.ok(&["up", "--wait", "--wait-timeout", "60"]);
    assert!(out.contains("every service is running"), "{out}");
    let ids: Vec<String> = host
        .ps()
        .iter()
        .map(|r| r["id"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");

    let exec = |args: &[&str]| {
        let mut all = vec!["container", "exec", "six-client-1"];
        all.extend_from_slice(args);
        host.berth(&all)
    };
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };

    // AAAA through the resolver the container was given (the IPv4 gateway) ...
    let got = text(&exec(&["nslookup", "-type=AAAA", "web"]));
    assert!(got.contains("fd00:b5e7:77::1:10"), "{got}");
    // ... and from the server on the IPv6 gateway, over IPv6.
    let got = text(&exec(&["nslookup", "-type=AAAA", "web", "fd00:b5e7:77::1"]));
    assert!(got.contains("fd00:b5e7:77::1:10"), "AAAA over IPv6: {got}");
    // The automatic IPv6 address comes from the ip_range.
    let got = text(&exec(&[
        "nslookup",
        "-type=AAAA",
        "client",
        "fd00:b5e7:77::1",
    ]));
    assert!(
        got.contains("fd00:b5e7:77::2"),
        "client's AAAA in the ip_range: {got}"
    );
    // The IPv6 gateway is a nameserver too, after the IPv4 ones.
    let resolv = text(&exec(&["cat", "/etc/resolv.conf"]));
    let servers: Vec<&str> = resolv
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver "))
        .collect();
    assert_eq!(
        servers,
        ["10.201.77.1", "10.201.78.1", "fd00:b5e7:77::1"],
        "{resolv}"
    );

    // HTTP to the other service over IPv6.
    let got = text(&exec(&["wget", "-qO-", "http://[fd00:b5e7:77::1:10]/"]));
    assert!(got.contains("hello from web"), "{got}");
    // The container knows its own IPv6 address.
    let hosts = host.ok(&["container", "exec", "six-web-1", "cat", "/etc/hosts"]);
    assert!(hosts.contains("fd00:b5e7:77::1:10\t"), "{hosts}");

    // On the IPv4-only network the same name has no AAAA: an empty NOERROR, not a timeout.
    let o = exec(&["nslookup", "-type=AAAA", "web", "10.201.78.1"]);
    let got = text(&o);
    assert!(o.status.success(), "{got}");
    assert!(
        !got.contains("timed out") && !got.contains("NXDOMAIN") && !got.contains("fd00:"),
        "{got}"
    );
    assert_eq!(
        got.matches("Address:").count(),
        1,
        "only the server's: {got}"
    );
    let got4 = text(&exec(&["nslookup", "web", "10.201.78.1"]));
    assert!(
        got4.contains("10.201.78."),
        "A on the IPv4-only network: {got4}"
    );

    // The published port still answers on the host's loopback.
    let curl = host.curl("http://127.0.0.1:18080/");
    assert!(curl.contains("hello from web"), "{curl}");
    // [::]:18081 answers on the host's IPv6 addresses (the gateway is one), not on IPv4.
    let curl = host.curl("-g http://[fd00:b5e7:77::1]:18081/");
    assert!(
        curl.contains("hello from web"),
        "[::]:18081 over IPv6: {curl}"
    );
    let curl = host.curl("--max-time 2 http://10.201.77.1:18081/");
    assert!(
        !curl.contains("hello from web"),
        "[::]:18081 answered on IPv4"
    );
    let tables = String::from_utf8_lossy(&host.sh("nft list tables").stdout).to_string();
    assert!(tables.contains("ip6 "), "an ip6 table while up: {tables}");

    // A restarted daemon re-adopts the network: AAAA again from the IPv6 gateway's server.
    let pid = std::fs::read_to_string(host.run.join("berth.pid")).expect("daemon pid");
    let st = std::process::Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .expect("kill");
    assert!(st.success());
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(host.ps().len(), 2, "the next call starts a new daemon");
    let got = text(&exec(&[
        "nslookup",
        "-type=AAAA",
        "client",
        "fd00:b5e7:77::1",
    ]));
    assert!(
        got.contains("fd00:b5e7:77::"),
        "AAAA after a restart: {got}"
    );

    host.ok(&["down"]);
    assert!(host.ps().is_empty());
    let leaks = host.leaks(&ids);
    assert!(leaks.is_empty(), "down left: {leaks:#?}");

    // A taken ipv6_address is refused naming the service and the key, and a [::1] port as
    // not supported, naming the port; each failed up leaves nothing behind after down.
    for (bad, want) in [
        (
            STACK.replace(
                "networks: [dual, four]",
                "networks:\n      dual: { ipv6_address: \"fd00:b5e7:77::1:10\" }\n      four: {}",
            ),
            [
                "service ",
                "networks.dual.ipv6_address fd00:b5e7:77::1:10",
                "already in use",
            ],
        ),
        (
            STACK.replace("\"[::]:18081:80\"", "\"[::1]:18082:80\""),
            ["[::1]:18082", "not supported", "port"],
        ),
    ] {
        std::fs::write(host.stack.join("compose.yaml"), bad).expect("compose");
        let o = host.berth(&["up", "-d"]);
        let got = text(&o);
        assert!(!o.status.success(), "{got}");
        assert!(want.iter().all(|w| got.contains(w)), "{want:?}: {got}");
        let ids: Vec<String> = host
            .ps()
            .iter()
            .map(|r| r["id"].as_str().unwrap_or_default().to_string())
            .collect();
        host.ok(&["down"]);
        let leaks = host.leaks(&ids);
        assert!(leaks.is_empty(), "down after a failed up left: {leaks:#?}");
    }
}
