//! Root tests that attack the fast path's bookkeeping through netd's API and its FDB calls: a
//! MAC another endpoint of the network has, or the gateway's, is refused; a dead endpoint's
//! detach drops its own stale map entry only; the static FDB entry is added without taking
//! over the bridge's own entry or another endpoint's, and is sticky.

mod common;

use berth_netd::EndpointRequest;
use berth_netd::fastpath::fdb;
use berth_netd::names;
use common::sim::*;
use common::*;

fn ifindex(host: &str, ifname: &str) -> u32 {
    let out = ip(host, &["-j", "link", "show", "dev", ifname]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j");
    v[0]["ifindex"].as_u64().expect("ifindex") as u32
}

/// c1 (a fixed `mac_address`) dies: its namespace, so its veth pair, is gone. c2 asking for
/// the same MAC is refused, naming both, while c1's endpoint is there; detaching c1 drops its
/// stale entry, and then c2 gets the MAC and keeps its entry.
#[test_with::root()]
#[test]
fn a_held_mac_is_refused_and_a_late_detach_drops_only_its_own_entry() {
    let fx = Fx::<2>::new();
    let [c1, c2] = &fx.c;
    let host = fx.sim.host.name.clone();
    const MAC: &str = "02:42:0a:0b:0c:0e";
    fx.with_netd(async |n| {
        n.create_network(net("fpl")).await.expect("create");
        let with_mac = || EndpointRequest {
            mac_address: Some(MAC.into()),
            ..ep("fpl")
        };
        let e1 = attach(&n, c1, vec![with_mac()]).await.remove(0);
        let port1 = ifindex(&host, &e1.host_ifname);
        // c1's container is gone: its veth pair with it.
        ip(&host, &["link", "del", &e1.host_ifname]);
        let refused = n
            .attach(
                &c2.name,
                berth_netd::state::NetnsRef::Path(c2.path()),
                vec![with_mac()],
            )
            .await
            .map(|_| ())
            .map_err(|e| e.to_string());
        let stale = n.fast_path_entries("fpl").await.expect("map");

        n.detach(&c1.name, None).await.expect("detach c1");
        let after_c1 = n.fast_path_entries("fpl").await.expect("map");
        let e2 = attach(&n, c2, vec![with_mac()]).await.remove(0);
        let port2 = ifindex(&host, &e2.host_ifname);
        let with_c2 = n.fast_path_entries("fpl").await.expect("map");
        n.detach(&c2.name, None).await.expect("detach c2");
        n.remove_network("fpl").await.expect("remove");

        let err = refused.expect_err("a MAC c1 holds was given to c2");
        assert!(
            err.contains(MAC) && err.contains(&c1.name) && err.contains(&c2.name),
            "the refusal names the MAC and both containers: {err}"
        );
        assert_eq!(stale, vec![(MAC.to_string(), port1)], "c1's stale entry");
        assert_eq!(after_c1, vec![], "detaching c1 drops its own entry");
        assert_eq!(with_c2, vec![(MAC.to_string(), port2)], "c2 owns the MAC");
    });
}

/// `mac_address` set to the network's gateway MAC (the bridge's) is refused naming the value
/// and the network.
#[test_with::root()]
#[test]
fn the_gateways_mac_is_refused() {
    let fx = Fx::<1>::new();
    let [c1] = &fx.c;
    fx.with_netd(async |n| {
        let net = n.create_network(net("fpgw")).await.expect("create");
        let gw_mac = names::mac_string(&names::endpoint_mac(net.gateway));
        let r = n
            .attach(
                &c1.name,
                berth_netd::state::NetnsRef::Path(c1.path()),
                vec![EndpointRequest {
                    mac_address: Some(gw_mac.to_uppercase()),
                    ..ep("fpgw")
                }],
            )
            .await
            .map(|_| ())
            .map_err(|e| e.to_string());
        let entries = n.fast_path_entries("fpgw").await;
        n.remove_network("fpgw").await.expect("remove");
        let err = r.expect_err("the gateway's MAC was given to a container");
        assert!(
            err.contains(&gw_mac) && err.contains("fpgw") && err.contains("gateway"),
            "{err}"
        );
        assert!(
            entries.as_ref().is_none_or(|e| e.is_empty()),
            "nothing half-made: {entries:?}"
        );
    });
}

/// The FDB call itself never takes over the bridge's own (permanent) entry or another
/// endpoint's static entry, and the entries it makes are sticky.
#[test_with::root()]
#[test]
fn the_static_entry_takes_over_no_local_or_other_static_entry() {
    let fx = Fx::<2>::new();
    let [c1, c2] = &fx.c;
    let host = fx.sim.host.name.clone();
    fx.with_netd(async |n| {
        let net = n.create_network(net("fpf")).await.expect("create");
        let e1 = attach(&n, c1, vec![ep("fpf")]).await.remove(0);
        let e2 = attach(&n, c2, vec![ep("fpf")]).await.remove(0);
        let br = ifindex(&host, &net.bridge);
        let port1 = ifindex(&host, &e1.host_ifname);
        let gw_mac = names::endpoint_mac(net.gateway);
        let mac2 = names::parse_mac(&e2.mac).expect("c2's MAC");
        let (conn, h, _) = rtnetlink::new_connection().expect("netlink");
        tokio::spawn(conn);
        let on_gw = fdb::add_static(&h, br, port1, &gw_mac)
            .await
            .map_err(|e| e.to_string());
        let on_c2 = fdb::add_static(&h, br, port1, &mac2)
            .await
            .map_err(|e| e.to_string());
        let show = run("bridge", &["-n", &host, "fdb", "show", "br", &net.bridge]);
        for c in [c1, c2] {
            n.detach(&c.name, None).await.expect("detach");
        }
        n.remove_network("fpf").await.expect("remove");

        let gw = names::mac_string(&gw_mac);
        let m2 = names::mac_string(&mac2);
        assert!(on_gw.is_err_and(|e| e.contains(&gw)), "{show}");
        assert!(on_c2.is_err_and(|e| e.contains(&m2)), "{show}");
        assert!(
            show.lines()
                .any(|l| l.starts_with(&format!("{gw} dev {}", net.bridge))
                    && l.contains("permanent")),
            "the bridge keeps its own entry:\n{show}"
        );
        assert!(
            !show
                .lines()
                .any(|l| l.starts_with(&format!("{gw} dev {}", e1.host_ifname))),
            "the bridge's MAC put on c1's port:\n{show}"
        );
        for e in [&e1, &e2] {
            assert!(
                show.lines().any(|l| l.starts_with(&format!(
                    "{} dev {}",
                    e.mac.to_lowercase(),
                    e.host_ifname
                )) && l.contains("static")
                    && l.contains("sticky")),
                "{}'s entry static and sticky on its own port:\n{show}",
                e.host_ifname
            );
        }
    });
}
