//! Host network changes on a simulated host (network namespaces only): a LAN or VPN that
//! overlaps a berth network's subnet is reported by the next reconcile and forgotten when it
//! goes; the uplink going down and up as in suspend/resume (DHCP re-adding its address and
//! default route) gives containers their egress back with nothing restarted; the unmanaged
//! declarations match the links netd really makes.

mod common;

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use berth_netd::conflicts::ConflictKind;
use berth_netd::state::NetnsRef;
use berth_netd::{Config, EndpointRequest, Netd, NetworkCreate};
use common::*;

async fn blocking<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

fn ep(network: &str) -> EndpointRequest {
    EndpointRequest {
        network: network.into(),
        ..Default::default()
    }
}

#[test_with::root()]
#[test]
fn host_lan_or_route_overlapping_a_network_is_reported_until_it_goes() {
    let fx = Fx::<0>::new();
    let sim = &fx.sim;
    let host = sim.host.name.clone();
    fx.with_netd(async |n| {
        let spec = n
            .create_network(NetworkCreate {
                name: "app".into(),
                enable_ipv6: true,
                ..Default::default()
            })
            .await
            .expect("create");
        let subnet = spec.subnet.to_string();
        let r = n.reconcile().await;
        assert!(r.conflicts.is_empty(), "{:?}", r.conflicts);

        // The laptop joins a Wi-Fi whose LAN is the network's subnet (on isp-b's uplink).
        let o = spec.subnet.addr().octets();
        let lan_addr = format!("{}.{}.{}.200/{}", o[0], o[1], o[2], spec.subnet.prefix());
        ip(&host, &["addr", "add", &lan_addr, "dev", "upb"]);
        let r = n.reconcile().await;
        assert_eq!(r.conflicts.len(), 1, "{:?}", r.conflicts);
        let c = &r.conflicts[0];
        assert_eq!(c.kind, ConflictKind::Address);
        assert_eq!(
            (
                c.network.as_str(),
                c.subnet.as_str(),
                c.host.as_str(),
                c.interface.as_str()
            ),
            ("app", subnet.as_str(), lan_addr.as_str(), "upb")
        );
        let text = c.to_string();
        assert!(
            text.contains("network app") && text.contains("upb") && text.contains("another subnet"),
            "{text}"
        );
        assert_eq!(r.conflicts_new, r.conflicts, "a new conflict is announced");
        assert!(
            r.errors.is_empty(),
            "a conflict is not a repair failure: {:?}",
            r.errors
        );
        // Standing conflict: still reported, no longer announced (the backstop's runs
        // must not repeat the warning).
        let r = n.reconcile().await;
        assert_eq!(r.conflicts.len(), 1);
        assert!(r.conflicts_new.is_empty() && r.conflicts_resolved.is_empty());
        assert_eq!(n.last_report().await.expect("report").conflicts.len(), 1);

        // Wi-Fi left: the conflict is gone.
        ip(&host, &["addr", "del", &lan_addr, "dev", "upb"]);
        let r = n.reconcile().await;
        assert!(r.conflicts.is_empty(), "{:?}", r.conflicts);
        assert_eq!(r.conflicts_resolved.len(), 1, "{:?}", r.conflicts_resolved);

        // A VPN route covering the subnet (through isp-a's uplink) is one too; the default
        // route and its /1 halves are not.
        let wide = format!("{}.0.0.0/8", o[0]);
        ip(&host, &["route", "add", &wide, "via", &ISP_A.to_string()]);
        ip(
            &host,
            &["route", "add", "0.0.0.0/1", "via", &ISP_A.to_string()],
        );
        ip(
            &host,
            &["route", "add", "128.0.0.0/1", "via", &ISP_A.to_string()],
        );
        let r = n.reconcile().await;
        assert_eq!(r.conflicts.len(), 1, "{:?}", r.conflicts);
        let c = &r.conflicts[0];
        assert_eq!(c.kind, ConflictKind::Route);
        assert_eq!(c.host, format!("{wide} via {ISP_A}"));
        assert_eq!((c.network.as_str(), c.interface.as_str()), ("app", "upa"));
        for dst in [wide.as_str(), "0.0.0.0/1", "128.0.0.0/1"] {
            ip(&host, &["route", "del", dst]);
        }
        let r = n.reconcile().await;
        assert!(r.conflicts.is_empty(), "{:?}", r.conflicts);

        // IPv6 likewise: a LAN on the network's /64, and a VPN's ULA route around it.
        let s6 = spec.subnet6.expect("IPv6 subnet");
        let lan6 = format!("{}/64", s6.nth(0x200).expect("address in the /64"));
        ip(&host, &["-6", "addr", "add", &lan6, "dev", "upb", "nodad"]);
        ip(&host, &["-6", "route", "add", "fd00::/8", "dev", "upa"]);
        let r = n.reconcile().await;
        assert_eq!(r.conflicts.len(), 2, "{:?}", r.conflicts);
        let by = |kind| {
            r.conflicts
                .iter()
                .find(|c| c.kind == kind)
                .unwrap_or_else(|| panic!("no {kind:?} conflict: {:?}", r.conflicts))
        };
        let a = by(ConflictKind::Address);
        assert_eq!(
            (a.subnet.as_str(), a.host.as_str(), a.interface.as_str()),
            (s6.to_string().as_str(), lan6.as_str(), "upb")
        );
        let rt6 = by(ConflictKind::Route);
        assert_eq!(
            (rt6.host.as_str(), rt6.interface.as_str()),
            ("fd00::/8", "upa")
        );
        ip(&host, &["-6", "addr", "del", &lan6, "dev", "upb"]);
        ip(&host, &["-6", "route", "del", "fd00::/8", "dev", "upa"]);
        let r = n.reconcile().await;
        assert!(r.conflicts.is_empty(), "{:?}", r.conflicts);
        assert_eq!(r.conflicts_resolved.len(), 2);
        n.remove_network("app").await.expect("rm");
    });
}

#[test_with::root()]
#[test]
fn uplink_down_and_up_as_in_suspend_gives_egress_back_without_restart() {
    let fx = Fx::<0>::new();
    let sim = &fx.sim;
    let c1 = NetnsGuard::new("c");
    let host = sim.host.name.clone();
    fx.with_netd_multi(async |n| {
        n.create_network(NetworkCreate {
            name: "web".into(),
            ..Default::default()
        })
        .await
        .expect("create");
        n.attach(&c1.name, NetnsRef::Path(c1.path()), vec![ep("web")])
            .await
            .expect("attach");
        let watcher = tokio::spawn(n.clone().run(Duration::from_secs(30)));
        let mut changes = n.host_changes();
        tokio::time::timeout(Duration::from_secs(5), changes.changed())
            .await
            .expect("first reconcile")
            .expect("channel");
        let http = SocketAddrV4::new(INTERNET, 80);
        let p = c1.path();
        assert_eq!(
            blocking(move || http_get_retry(&p, http, Duration::from_secs(5)))
                .await
                .expect("egress before suspend"),
            "isp-a"
        );

        // Suspend: the uplink goes down and the DHCP client drops its lease (address and,
        // with the link, the default route). Egress is gone meanwhile.
        ip(&host, &["link", "set", "upa", "down"]);
        ip(&host, &["addr", "flush", "dev", "upa"]);
        let p = c1.path();
        assert!(
            blocking(move || http_get(&p, http, Duration::from_millis(300)))
                .await
                .is_err(),
            "egress while the uplink is down"
        );
        let seen = tokio::time::timeout(
            Duration::from_secs(10),
            changes.wait_for(|c| !c.egress.contains(&HOST_A)),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        assert!(seen, "netd never saw the uplink go: {:?}", changes.borrow());

        // Resume: link up, DHCP gives the lease back (address, default route). Nothing
        // of berth's is touched; the container must reach the ISP again within 5 s.
        let t0 = Instant::now();
        ip(&host, &["link", "set", "upa", "up"]);
        ip(
            &host,
            &["addr", "add", &format!("{HOST_A}/24"), "dev", "upa"],
        );
        ip(
            &host,
            &["route", "replace", "default", "via", &ISP_A.to_string()],
        );
        let p = c1.path();
        let back = blocking(move || http_get_retry(&p, http, Duration::from_secs(5))).await;
        let took = t0.elapsed();
        assert_eq!(back.expect("egress after resume"), "isp-a");
        assert!(took < Duration::from_secs(5), "egress back after {took:?}");
        eprintln!("suspend/resume: egress back {took:?} after the uplink's lease returned");
        let seen = tokio::time::timeout(
            Duration::from_secs(10),
            changes.wait_for(|c| c.egress.contains(&HOST_A)),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        assert!(
            seen,
            "netd never saw the uplink return: {:?}",
            changes.borrow()
        );
        watcher.abort();
        n.detach(&c1.name, None).await.expect("detach");
        n.remove_network("web").await.expect("rm");
    });
}

#[test_with::root()]
#[test]
fn unmanaged_declarations_match_the_links_netd_makes() {
    let fx = Fx::<0>::new();
    let sim = &fx.sim;
    let c1 = NetnsGuard::new("c");
    let root = sim.root.path().to_path_buf();
    let decl = tempfile::tempdir().expect("tempdir");
    let dir = decl.path().to_path_buf();
    let host = sim.host.name.clone();
    sim.on_host(|| {
        rt().block_on(async {
            // Outside the initial namespace the default declares nothing (no host manager
            // sees these links); a directory given explicitly is written.
            assert_eq!(Config::new(&root).managers_dir, None);
            let mut cfg = Config::new(&root);
            cfg.managers_dir = Some(dir.clone());
            let n = Netd::open(cfg).await.expect("open");
            let spec = n
                .create_network(NetworkCreate {
                    name: "decl".into(),
                    ..Default::default()
                })
                .await
                .expect("create");
            let eps = n
                .attach(&c1.name, NetnsRef::Path(c1.path()), vec![ep("decl")])
                .await
                .expect("attach");
            // The names the kernel has, against the globs each file carries.
            let names: Vec<String> = ip(&host, &["-o", "link", "show"])
                .lines()
                .filter_map(|l| l.split(": ").nth(1))
                .map(|n| n.split('@').next().unwrap_or(n).to_string())
                .collect();
            assert!(names.contains(&spec.bridge) && names.contains(&eps[0].host_ifname));
            let globs = [
                berth_netd::unmanaged::bridge_glob(),
                berth_netd::unmanaged::veth_glob(),
            ];
            for f in berth_netd::unmanaged::files() {
                let text = std::fs::read_to_string(dir.join(f.rel)).expect("declaration written");
                assert_eq!(text, f.text);
                for g in &globs {
                    assert!(text.contains(g.as_str()), "{} lacks {g}", f.rel);
                }
            }
            let matched = |name: &str| {
                globs
                    .iter()
                    .any(|g| berth_netd::unmanaged::glob_match(g, name))
            };
            for ours in [&spec.bridge, &eps[0].host_ifname] {
                assert!(matched(ours), "{ours} not covered");
            }
            for theirs in names
                .iter()
                .filter(|x| **x != spec.bridge && **x != eps[0].host_ifname)
            {
                assert!(
                    !matched(theirs),
                    "host link {theirs} would be declared unmanaged"
                );
            }
            n.detach(&c1.name, None).await.expect("detach");
            n.remove_network("decl").await.expect("rm");
        })
    });
    assert!(sim.leftovers().is_empty(), "{:?}", sim.leftovers());
}
