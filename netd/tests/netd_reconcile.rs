//! netd's reconcile on a simulated host: a bridge, veth or ruleset broken or removed behind its
//! back, and a container's side drifting, are repaired and the paths work again.

mod common;

use std::time::{Duration, Instant};

use common::sim::*;
use common::*;

#[test_with::root()]
#[test]
fn reconcile_repairs_bridge_veth_and_ruleset() {
    let fx = Fx::<2>::new();
    let [c1, c2] = &fx.c;
    let host = fx.sim.host.name.clone();
    fx.with_netd(async |n| {
        let spec = n.create_network(net("app")).await.expect("create");
        let e1 = attach(&n, c1, vec![ep("app")]).await;
        let e2 = attach(&n, c2, vec![ep("app")]).await;
        let _srv = tcp_server(&c2.path(), 8000, "c2");
        let check = |what: &'static str| check_paths(what, c1.path(), e2[0].address);
        check("before").await;
        assert!(
            n.reconcile().await.repairs.is_empty(),
            "nothing to repair at first"
        );

        ip(&host, &["link", "del", &spec.bridge]);
        let r = n.reconcile().await;
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert!(
            r.repairs
                .iter()
                .any(|x| x.what.contains("missing: recreated")),
            "{:?}",
            r.repairs
        );
        assert!(
            r.repairs.iter().any(|x| x.what.contains("re-attached")),
            "{:?}",
            r.repairs
        );
        eprintln!("bridge deleted: {:?}", r.repairs);
        check("after bridge delete").await;

        ip(&host, &["link", "set", &e1[0].host_ifname, "nomaster"]);
        let r = n.reconcile().await;
        assert!(
            r.repairs
                .iter()
                .any(|x| x.what.contains(&e1[0].host_ifname)),
            "{:?}",
            r.repairs
        );
        eprintln!("veth nomaster: {:?}", r.repairs);
        check("after nomaster").await;

        ip(&c2.name, &["link", "del", "eth0"]);
        let r = n.reconcile().await;
        assert!(
            r.repairs
                .iter()
                .any(|x| x.what.contains(&e2[0].host_ifname) && x.what.contains("recreated")),
            "{:?}",
            r.repairs
        );
        eprintln!("container eth0 deleted: {:?}", r.repairs);
        check("after eth0 delete").await;

        // One rule of berth's table deleted by hand: the masquerade.
        let listing = run(
            "ip",
            &[
                "netns",
                "exec",
                &host,
                "nft",
                "-a",
                "list",
                "chain",
                "ip",
                "berth",
                "postrouting",
            ],
        );
        let handle = listing
            .lines()
            .find(|l| l.contains("masquerade") && l.contains("!="))
            .and_then(|l| l.rsplit_once("# handle "))
            .map(|(_, h)| h.trim().to_string())
            .expect("masquerade rule handle");
        run(
            "ip",
            &[
                "netns",
                "exec",
                &host,
                "nft",
                "delete",
                "rule",
                "ip",
                "berth",
                "postrouting",
                "handle",
                &handle,
            ],
        );
        let r = n.reconcile().await;
        assert!(
            r.repairs.iter().any(|x| x.what.contains("differed")),
            "{:?}",
            r.repairs
        );
        eprintln!("masquerade rule deleted: {:?}", r.repairs);
        check("after a rule delete").await;

        run("ip", &["netns", "exec", &host, "nft", "flush", "ruleset"]);
        let r = n.reconcile().await;
        assert!(
            r.repairs.iter().any(|x| x.what.contains("nft table")),
            "{:?}",
            r.repairs
        );
        eprintln!("nft flush ruleset: {:?}", r.repairs);
        check("after nft flush").await;

        n.detach(&c1.name, None).await.expect("detach");
        n.detach(&c2.name, None).await.expect("detach");
        n.remove_network("app").await.expect("rm");
    });
}

#[test_with::root()]
#[test]
fn reconcile_repairs_container_side_drift() {
    let fx = Fx::<2>::new();
    let [c1, c2] = &fx.c;
    let host = fx.sim.host.name.clone();
    fx.with_netd(async |n| {
        let spec = n.create_network(net("drift")).await.expect("create");
        let e1 = attach(&n, c1, vec![ep("drift")]).await;
        let e2 = attach(&n, c2, vec![ep("drift")]).await;
        let _srv = tcp_server(&c2.path(), 8000, "c2");
        let check = |what: &'static str| check_paths(what, c1.path(), e2[0].address);
        check("before").await;
        let r = n.reconcile().await;
        assert!(r.repairs.is_empty(), "nothing to repair: {:?}", r.repairs);
        let gw = spec.gateway.to_string();
        // Each drift, inside the container or on the host end, and the repair it must get.
        let cases: [(&str, &[&str], &str); 5] = [
            (
                "address flushed",
                &["addr", "flush", "dev", "eth0"],
                "lost its address",
            ),
            (
                "default route deleted",
                &["route", "del", "default", "via", &gw],
                "lost the default route",
            ),
            ("eth0 down", &["link", "set", "eth0", "down"], "was down"),
            (
                "loopback down",
                &["link", "set", "lo", "down"],
                "loopback down",
            ),
            (
                "eth0 renamed",
                &["link", "set", "eth0", "name", "foo0"],
                "gone from its namespace",
            ),
        ];
        for (what, cmd, want) in cases {
            if what == "eth0 renamed" {
                ip(&c1.name, &["link", "set", "eth0", "down"]);
            }
            ip(&c1.name, cmd);
            let r = n.reconcile().await;
            assert!(r.errors.is_empty(), "{what}: {:?}", r.errors);
            assert!(
                r.repairs
                    .iter()
                    .any(|x| x.what.contains(want) && x.what.contains(&c1.name)),
                "{what}: {:?}",
                r.repairs
            );
            eprintln!("{what}: {:?}", r.repairs);
            assert!(
                n.recent_repairs()
                    .await
                    .iter()
                    .any(|x| x.what.contains(want)),
                "{what}: no repair event"
            );
            check(what).await;
            let again = n.reconcile().await;
            assert!(
                again.repairs.is_empty(),
                "{what}: repaired twice: {:?}",
                again.repairs
            );
        }
        let addr = ip(&c1.name, &["-o", "-4", "addr", "show", "dev", "eth0"]);
        assert!(addr.contains(&format!("{}/24", e1[0].address)), "{addr}");
        assert!(
            !ip(&c1.name, &["-o", "link"]).contains("foo0"),
            "the renamed interface went with its old pair"
        );
        // The host end downed: seen by the watcher (a host link event), no explicit call.
        let watcher = tokio::spawn(n.clone().run(Duration::from_secs(30)));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let hv = n
            .state()
            .await
            .endpoints
            .iter()
            .find(|e| e.container == c1.name)
            .map(|e| e.host_ifname.clone())
            .expect("endpoint");
        ip(&host, &["link", "set", &hv, "down"]);
        let t0 = Instant::now();
        let mut repaired = false;
        while t0.elapsed() < Duration::from_secs(5) && !repaired {
            tokio::time::sleep(Duration::from_millis(10)).await;
            repaired = n
                .recent_repairs()
                .await
                .iter()
                .any(|r| r.what.contains(&hv) && r.what.contains("was down: set up"));
        }
        assert!(repaired, "host end down was not repaired by the watcher");
        watcher.abort();
        check("host end down").await;
        n.detach(&c1.name, None).await.expect("detach");
        n.detach(&c2.name, None).await.expect("detach");
        n.remove_network("drift").await.expect("rm");
    });
}
