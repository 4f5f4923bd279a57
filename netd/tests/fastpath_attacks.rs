//! Root tests that attack the fast path's bookkeeping through netd's API: an endpoint removed
//! after its veth already went must not take the map entry of the container that has since
//! taken its MAC over.

mod common;

use berth_netd::EndpointRequest;
use common::sim::*;
use common::*;

fn ifindex(host: &str, ifname: &str) -> u32 {
    let out = ip(host, &["-j", "link", "show", "dev", ifname]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j");
    v[0]["ifindex"].as_u64().expect("ifindex") as u32
}

/// c1 (a fixed `mac_address`) dies: its namespace, so its veth pair, is gone. c2 takes the
/// same MAC (a container recreated with it). Then c1's endpoint is detached: c2's entry stays.
#[test_with::root()]
#[test]
fn a_late_detach_keeps_the_entry_of_the_macs_new_owner() {
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
        // c1's container is gone: its veth pair with it.
        ip(&host, &["link", "del", &e1.host_ifname]);
        let e2 = attach(&n, c2, vec![with_mac()]).await.remove(0);
        let port2 = ifindex(&host, &e2.host_ifname);
        let before = n.fast_path_entries("fpl").await.expect("map");
        assert_eq!(before, vec![(MAC.to_string(), port2)], "c2 owns the MAC");

        n.detach(&c1.name, None).await.expect("detach c1");
        let after = n.fast_path_entries("fpl").await.expect("map");
        n.detach(&c2.name, None).await.expect("detach c2");
        n.remove_network("fpl").await.expect("remove");
        assert_eq!(
            after,
            vec![(MAC.to_string(), port2)],
            "detaching the dead c1 took c2's map entry (c2 left the fast path)"
        );
    });
}
