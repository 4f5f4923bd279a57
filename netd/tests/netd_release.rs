//! Root tests of `release`, the detach of a container that is going away: it answers before
//! the kernel has deleted the host veth, and nothing may notice but timing.

mod common;

use common::sim::*;
use common::*;

#[test_with::root()]
#[test]
fn a_released_endpoints_name_can_be_attached_again_at_once_and_settle_leaves_no_veth() {
    let fx = Fx::<3>::new();
    let [c1, c2, c3] = &fx.c;
    let sim_host = fx.sim.host.name.clone();
    fx.with_netd(async |n| {
        let front = n.create_network(net("front")).await.expect("create");
        let first = attach(&n, c1, vec![ep("front")]).await;
        let host_if = first[0].host_ifname.clone();
        n.release(&c1.name).await.expect("release");
        assert!(
            n.state()
                .await
                .endpoints
                .iter()
                .all(|e| e.container != c1.name),
            "netd forgot the endpoint when release answered"
        );
        // The same container and network again: the same host veth name, whose delete may
        // still be under way. The attach waits for it instead of failing on the old link.
        let again = attach(&n, c1, vec![ep("front")]).await;
        assert_eq!(again[0].host_ifname, host_if);
        let addr = ip(&c1.name, &["-o", "-4", "addr", "show", "dev", "eth0"]);
        assert!(
            addr.contains(&format!("{}/24", again[0].address)),
            "the new eth0 is configured: {addr}"
        );
        // And it carries traffic (the old link's delete did not take the new one with it).
        let peer = attach(&n, c2, vec![ep("front")]).await;
        let _srv = common::tcp_server(&c2.path(), 8000, "c2");
        let to = std::net::SocketAddrV4::new(peer[0].address, 8000);
        let p1 = c1.path();
        let body =
            blocking(move || common::http_get_retry(&p1, to, std::time::Duration::from_secs(5)))
                .await;
        assert_eq!(body.expect("c1 -> c2 after the re-attach"), "c2");
        // A container recreated at once gets the address, and so the MAC, of the one just
        // released, whose veth may still be on the bridge: it must have the MAC's place on the
        // fast path and the bridge, not the leaving veth.
        n.release(&c1.name).await.expect("release");
        let recreated = attach(&n, c3, vec![ep("front")]).await;
        assert_eq!(
            recreated[0].address, again[0].address,
            "IPAM gives the freed address"
        );
        let shown = ip(
            &sim_host,
            &["-o", "link", "show", &recreated[0].host_ifname],
        );
        let index: String = shown.chars().take_while(|c| c.is_ascii_digit()).collect();
        let entries = n.fast_path_entries("front").await.expect("fast path map");
        assert!(
            entries.iter().any(|(_, port)| port.to_string() == index),
            "the recreated container's MAC leads to its veth ({index}): {entries:?}"
        );
        n.release(&c3.name).await.expect("release");
        n.attach(
            &c1.name,
            berth_netd::state::NetnsRef::Path(c1.path()),
            vec![ep("front")],
        )
        .await
        .expect("attach c1 again");
        // A release of a container with no endpoint is no error (network_mode none).
        n.release("never-attached").await.expect("release of none");
        for c in [c1, c2] {
            n.release(&c.name).await.expect("release");
        }
        n.settle().await;
        let links = ip(&sim_host, &["-o", "link", "show"]);
        assert!(
            !links.contains(&host_if),
            "the host veth is gone after settle: {links}"
        );
        // A network whose last containers were released goes at once, veths and all.
        n.remove_network(&front.name).await.expect("remove");
    });
}
