//! Address management of a compose stack's networks, end to end as root with the real
//! binary: `ipam.config[].aux_addresses` are reserved (no container is given one, even when
//! the subnet is so small that the containers need every other address), reported by
//! `network inspect`, and one outside the subnet is refused naming the key; a service's
//! `link_local_ips` are on its interface inside the container besides its address (and back
//! after a reconcile when removed), and one
//! that is not link-local is refused naming the key; on two networks the default route goes
//! via the one of the highest `gw_priority`, the first network's without one.

use berth_tests::host::{self, Host};

const STACK: &str = r#"
name: aux
services:
  box:
    image: busybox:e2e
    init: true
    stop_grace_period: 1s
    command: ["sleep", "3600"]
    scale: 3
    networks: [tight]
networks:
  tight:
    ipam:
      config:
        - subnet: 10.201.93.0/29
          aux_addresses: { router: 10.201.93.2, printer: 10.201.93.4 }
"#;

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test_with::root()]
#[test]
fn aux_addresses_are_never_given_to_a_container() {
    host::require_tools();
    let host = Host::new("aux");
    host.busybox_image();
    std::fs::write(host.stack.join("compose.yaml"), STACK).expect("compose");
    let out = host.ok(&["up", "--wait", "--wait-timeout", "60"]);
    assert!(out.contains("every service is running"), "{out}");
    let ids = host.ps_ids();
    assert_eq!(ids.len(), 3, "{ids:?}");

    // A /29 has five host addresses after the gateway's: two reserved, three containers.
    let inspect = host.ok(&["network", "inspect", "aux_tight"]);
    let v: serde_json::Value = serde_json::from_str(inspect.trim()).expect("inspect json");
    let mut got: Vec<String> = v[0]["Endpoints"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| e["address"].as_str().unwrap_or_default().to_string())
        .collect();
    got.sort();
    assert_eq!(
        got,
        ["10.201.93.3", "10.201.93.5", "10.201.93.6"],
        "{inspect}"
    );
    assert_eq!(
        v[0]["AuxiliaryAddresses"],
        serde_json::json!({"printer": "10.201.93.4", "router": "10.201.93.2"}),
        "{inspect}"
    );
    // Inside, each container has the address netd recorded, none a reserved one.
    for i in 1..=3 {
        let c = format!("aux-box-{i}");
        let addr = host.ok(&[
            "container",
            "exec",
            &c,
            "busybox",
            "ip",
            "-4",
            "addr",
            "show",
            "eth0",
        ]);
        assert!(
            addr.contains("inet 10.201.93.")
                && !addr.contains("10.201.93.2/")
                && !addr.contains("10.201.93.4/"),
            "{c}: {addr}"
        );
    }

    host.down_clean();

    // An address outside the subnet is refused naming the key; nothing is left.
    std::fs::write(
        host.stack.join("compose.yaml"),
        STACK.replace("printer: 10.201.93.4", "printer: 10.201.94.4"),
    )
    .expect("compose");
    let o = host.berth(&["up", "-d"]);
    let got = text(&o);
    assert!(!o.status.success(), "{got}");
    assert!(
        got.contains("networks.tight.ipam.config[0].aux_addresses.printer")
            && got.contains("10.201.94.4"),
        "{got}"
    );
    host.down_clean();
}

const LINK_LOCAL: &str = r#"
name: lla
services:
  box:
    image: busybox:e2e
    init: true
    stop_grace_period: 1s
    command: ["sleep", "3600"]
    networks:
      lan: { link_local_ips: ["169.254.8.8", "fe80::8:8"] }
networks:
  lan:
    ipam:
      config:
        - subnet: 10.201.95.0/24
"#;

#[test_with::root()]
#[test]
fn link_local_ips_are_on_the_containers_interface() {
    host::require_tools();
    let host = Host::new("lla");
    host.busybox_image();
    std::fs::write(host.stack.join("compose.yaml"), LINK_LOCAL).expect("compose");
    let out = host.ok(&["up", "--wait", "--wait-timeout", "60"]);
    assert!(out.contains("every service is running"), "{out}");
    let ids = host.ps_ids();
    let addr = host.ok(&[
        "container",
        "exec",
        "lla-box-1",
        "busybox",
        "ip",
        "addr",
        "show",
        "eth0",
    ]);
    for want in [
        "inet 10.201.95.2/24",
        "inet 169.254.8.8/16",
        "inet6 fe80::8:8/64",
    ] {
        assert!(addr.contains(want), "{want}: {addr}");
    }
    // Removed behind berth's back, they come back with the next reconcile.
    let pin = host.run.join("netns").join(&ids[0][..12]);
    let del = host.sh(&format!(
        "nsenter --net={p} ip addr del 169.254.8.8/16 dev eth0 && \
         nsenter --net={p} ip addr del fe80::8:8/64 dev eth0",
        p = pin.display()
    ));
    assert!(del.status.success(), "{}", text(&del));
    let rec = host.ok(&["network", "reconcile"]);
    assert!(rec.contains("link_local_ips"), "{rec}");
    let addr = host.ok(&[
        "container",
        "exec",
        "lla-box-1",
        "busybox",
        "ip",
        "addr",
        "show",
        "eth0",
    ]);
    for want in ["inet 169.254.8.8/16", "inet6 fe80::8:8/64"] {
        assert!(addr.contains(want), "after reconcile, {want}: {addr}");
    }
    host.down_clean();

    std::fs::write(
        host.stack.join("compose.yaml"),
        LINK_LOCAL.replace("169.254.8.8", "10.1.8.8"),
    )
    .expect("compose");
    let o = host.berth(&["up", "-d"]);
    let got = text(&o);
    assert!(!o.status.success(), "{got}");
    assert!(
        got.contains("networks.lan.link_local_ips") && got.contains("10.1.8.8"),
        "{got}"
    );
    host.down_clean();
}

const GW_PRIORITY: &str = r#"
name: gwp
x-box: &box
  image: busybox:e2e
  init: true
  stop_grace_period: 1s
  command: ["sleep", "3600"]
services:
  picked:
    <<: *box
    networks:
      alpha: {}
      beta: { gw_priority: 10 }
  plain:
    <<: *box
    networks: [alpha, beta]
networks:
  alpha:
    ipam:
      config:
        - subnet: 10.201.96.0/24
  beta:
    ipam:
      config:
        - subnet: 10.201.97.0/24
"#;

#[test_with::root()]
#[test]
fn the_default_route_goes_via_the_highest_gw_priority() {
    host::require_tools();
    let host = Host::new("gwp");
    host.busybox_image();
    std::fs::write(host.stack.join("compose.yaml"), GW_PRIORITY).expect("compose");
    let out = host.ok(&["up", "--wait", "--wait-timeout", "60"]);
    assert!(out.contains("every service is running"), "{out}");
    let default_via = |c: &str| {
        let routes = host.ok(&["container", "exec", c, "busybox", "ip", "route"]);
        let defaults: Vec<String> = routes
            .lines()
            .filter(|l| l.starts_with("default"))
            .map(String::from)
            .collect();
        assert_eq!(defaults.len(), 1, "{c}: {routes}");
        defaults[0].clone()
    };
    let picked = default_via("gwp-picked-1");
    assert!(picked.starts_with("default via 10.201.97.1 "), "{picked}");
    let plain = default_via("gwp-plain-1");
    assert!(plain.starts_with("default via 10.201.96.1 "), "{plain}");
    host.down_clean();
}
