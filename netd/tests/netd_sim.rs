//! Root integration tests of netd on a simulated host (network namespaces only).

mod common;

use std::net::SocketAddrV4;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_netd::ports::PortMapping;
use berth_netd::state::NetnsRef;
use berth_netd::{Config, Netd};
use common::sim::*;
use common::*;

#[test_with::root()]
#[test]
fn attach_configures_eth0_and_peers_reach_each_other() {
    let fx = Fx::<3>::new();
    let [c1, c2, c3] = &fx.c;
    // Dies without a detach below.
    let c4 = NetnsGuard::new("c");
    let root = fx.root();
    let sim_host = fx.sim.host.name.clone();
    // A host route into the pool: IPAM must skip that subnet.
    ip(
        &fx.sim.host.name,
        &["route", "add", "10.201.0.0/24", "via", &ISP_A.to_string()],
    );
    fx.with_netd(async |n| {
        let front = n.create_network(net("front")).await.expect("create");
        assert_eq!(
            front.subnet.to_string(),
            "10.201.1.0/24",
            "pool skips host routes"
        );
        let back = n.create_network(net("back")).await.expect("create");
        assert_ne!(front.subnet, back.subnet);
        let br = ip(&sim_host, &["link", "show", &front.bridge]);
        let br_mac = berth_netd::names::mac_string(&berth_netd::names::endpoint_mac(front.gateway));
        assert!(br.contains(&br_mac), "bridge MAC is fixed: {br}");
        assert!(
            n.create_network(net("front")).await.is_err(),
            "duplicate name"
        );
        let e1 = attach(&n, c1, vec![ep("front")]).await;
        let e2 = attach(&n, c2, vec![ep("front")]).await;
        assert_eq!(e1[0].ifname, "eth0");
        assert!(e1[0].default_route);
        let addr = ip(&c1.name, &["-o", "-4", "addr", "show", "dev", "eth0"]);
        assert!(addr.contains(&format!("{}/24", e1[0].address)), "{addr}");
        let link = ip(&c1.name, &["link", "show", "eth0"]);
        assert!(
            link.contains(&berth_netd::names::mac_string(
                &berth_netd::names::endpoint_mac(e1[0].address)
            )),
            "{link}"
        );
        assert!(link.contains(",UP"), "{link}");
        let route = ip(&c1.name, &["route", "show", "default"]);
        assert!(route.contains(&format!("via {}", front.gateway)), "{route}");
        assert!(ip(&c1.name, &["link", "show", "lo"]).contains(",UP"));
        let _srv = tcp_server(&c2.path(), 8000, "c2");
        let to = SocketAddrV4::new(e2[0].address, 8000);
        let p1 = c1.path();
        let body = blocking(move || http_get_retry(&p1, to, Duration::from_secs(5))).await;
        assert_eq!(body.expect("c1 -> c2"), "c2");
        // Several networks at once: eth0 is the highest priority; the default route goes,
        // among equal gw_priority, via the network whose name sorts first (Docker 28's
        // order); a static address is honoured, a taken one refused.
        let mut hi = ep("front");
        hi.priority = 10;
        let mut lo = ep("back");
        lo.mac_address = Some("02:42:ac:11:00:99".into());
        lo.ipv4_address = Some(back.subnet.nth(50).expect("addr"));
        let e = attach(&n, c3, vec![lo, hi]).await;
        assert_eq!(
            (
                e[0].ifname.as_str(),
                e[0].network.as_str(),
                e[0].default_route
            ),
            ("eth0", front.id.as_str(), false)
        );
        assert_eq!(
            (e[1].ifname.as_str(), e[1].address, e[1].default_route),
            ("eth1", back.subnet.nth(50).expect("addr"), true)
        );
        assert!(ip(&c3.name, &["link", "show", "eth1"]).contains("02:42:ac:11:00:99"));
        let mut dup = ep("back");
        dup.ipv4_address = Some(back.subnet.nth(50).expect("addr"));
        assert!(
            n.attach(&c4.name, NetnsRef::Path(c4.path()), vec![dup])
                .await
                .is_err(),
            "address in use"
        );
        // A container that dies without a detach: its endpoints are forgotten by reconcile.
        attach(&n, &c4, vec![ep("back")]).await;
        let c4_name = c4.name.clone();
        drop(c4);
        let rep = n.reconcile().await;
        assert_eq!(
            rep.repairs
                .iter()
                .filter(|r| r.what.contains("forgotten"))
                .count(),
            1,
            "{:?}",
            rep.repairs
        );
        assert!(
            n.state()
                .await
                .endpoints
                .iter()
                .all(|e| e.container != c4_name)
        );
        n.detach(&c3.name, None).await.expect("detach c3");
        // A second network (connect) becomes eth1, without a second default route.
        let e3 = attach(&n, c1, vec![ep("back")]).await;
        assert_eq!(e3[0].ifname, "eth1");
        assert!(!e3[0].default_route);
        // A restarted netd sees the same state.
        let st = n.state().await;
        drop(n);
        let n = Netd::open(Config::new(&root)).await.expect("reopen");
        assert_eq!(n.state().await, st);
        let rep = n.reconcile().await;
        assert!(rep.errors.is_empty(), "{:?}", rep.errors);
        let eg = std::fs::read_to_string(root.join("netd/egress.json")).expect("egress.json");
        assert!(
            eg.contains(&HOST_A.to_string()),
            "egress kept for a restart: {eg}"
        );
        n.detach(&c1.name, None).await.expect("detach c1");
        assert!(
            ip(&c1.name, &["-o", "link"])
                .lines()
                .all(|l| !l.contains("eth0"))
        );
        n.detach(&c2.name, None).await.expect("detach c2");
        n.remove_network("front").await.expect("rm");
        n.remove_network("back").await.expect("rm");
    });
}

#[test_with::root()]
#[test]
fn nat_egress_survives_default_route_switch_without_restart() {
    let fx = Fx::<1>::new();
    let [c1] = &fx.c;
    let host = fx.sim.host.name.clone();
    fx.with_netd(async |n| {
        n.create_network(net("web")).await.expect("create");
        let e1 = attach(&n, c1, vec![ep("web")]).await;
        let hook_calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let hc = hook_calls.clone();
        n.on_reconcile(move |_| {
            hc.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        });
        let watcher = tokio::spawn(n.clone().run(Duration::from_secs(30)));
        let mut changes = n.host_changes();
        // The watcher reconciles once at start: that records the current egress address.
        tokio::time::timeout(Duration::from_secs(5), changes.changed())
            .await
            .expect("first reconcile")
            .expect("channel");
        let p = c1.path();
        let http = SocketAddrV4::new(INTERNET, 80);
        let udp = SocketAddrV4::new(INTERNET, 5300);
        let pp = p.clone();
        assert_eq!(
            blocking(move || http_get_retry(&pp, http, Duration::from_secs(5)))
                .await
                .expect("egress via isp-a"),
            "isp-a"
        );
        let pp = p.clone();
        let first = blocking(move || udp_ask(&pp, 40000, udp, Duration::from_secs(2))).await;
        assert_eq!(first.expect("udp via isp-a"), "isp-a");
        changes.borrow_and_update();

        // The switch: the default route moves to isp-b (isp-a's link stays up).
        let t0 = Instant::now();
        ip(
            &host,
            &["route", "replace", "default", "via", &ISP_B.to_string()],
        );
        // The same UDP flow (same source port) must move to isp-b: that needs the stale
        // masquerade entry flushed by the event-driven reconcile.
        let mut answer = String::new();
        while t0.elapsed() < Duration::from_secs(10) {
            let pp = p.clone();
            if let Ok(a) =
                blocking(move || udp_ask(&pp, 40000, udp, Duration::from_millis(100))).await
                && a == "isp-b"
            {
                answer = a;
                break;
            }
        }
        let took = t0.elapsed();
        assert_eq!(answer, "isp-b", "UDP flow did not move to isp-b");
        eprintln!("default-route switch: same UDP flow answered by isp-b after {took:?}");
        let pp = p.clone();
        assert_eq!(
            blocking(move || http_get_retry(&pp, http, Duration::from_secs(5)))
                .await
                .expect("egress via isp-b"),
            "isp-b"
        );
        // The hook fires when netd's watcher has seen the switch, which on a loaded
        // machine may come after the kernel already routes the flow through isp-b.
        let seen = tokio::time::timeout(
            Duration::from_secs(10),
            changes.wait_for(|c| c.egress.contains(&HOST_B)),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        assert!(seen, "DNS hook saw no host change: {:?}", changes.borrow());
        let end = Instant::now() + Duration::from_secs(10);
        while hook_calls.load(std::sync::atomic::Ordering::Relaxed) < 2 && Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            hook_calls.load(std::sync::atomic::Ordering::Relaxed) >= 2,
            "reconcile hook not called at start and after the switch"
        );
        let reps = n.recent_repairs().await;
        assert!(
            ip(&c1.name, &["link", "show", "eth0"]).contains("mtu 1400"),
            "MTU did not follow isp-b's uplink: {reps:?}"
        );
        assert!(
            reps.iter().any(|r| r
                .what
                .contains(&format!("egress address {HOST_A} went away"))),
            "{reps:?}"
        );
        // Event-driven repair, no explicit reconcile: a veth pulled off its bridge.
        ip(&host, &["link", "set", &e1[0].host_ifname, "nomaster"]);
        let t0 = Instant::now();
        let mut repaired = false;
        while t0.elapsed() < Duration::from_secs(5) && !repaired {
            tokio::time::sleep(Duration::from_millis(10)).await;
            repaired = n
                .recent_repairs()
                .await
                .iter()
                .any(|r| r.what.contains(&e1[0].host_ifname) && r.what.contains("re-attached"));
        }
        assert!(
            repaired,
            "the watcher did not repair a veth pulled off its bridge"
        );
        eprintln!("watcher repaired nomaster after {:?}", t0.elapsed());
        watcher.abort();
        n.detach(&c1.name, None).await.expect("detach");
        n.remove_network("web").await.expect("rm");
    });
}

#[test_with::root()]
#[test]
fn published_port_from_localhost_uplink_and_hairpin() {
    let fx = Fx::<2>::new();
    let [web, client] = &fx.c;
    let host_path = fx.sim.host.path();
    let isp_a = fx.sim.isp_a.path();
    fx.with_netd_multi(async |n| {
        n.create_network(net("pub")).await.expect("create");
        let mut r = ep("pub");
        r.ports = vec![
            "8080:80".parse::<PortMapping>().expect("port"),
            "127.0.0.1:8081:80".parse::<PortMapping>().expect("port"),
            "5353:5353/udp".parse::<PortMapping>().expect("port"),
        ];
        let ew = attach(&n, web, vec![r]).await;
        attach(&n, client, vec![ep("pub")]).await;
        let _srv = tcp_server(&web.path(), 80, "web");
        let _usrv = udp_server(&web.path(), ew[0].address, 5353, "web-udp");
        // UDP through the uplink address.
        let ia = isp_a.clone();
        let u = blocking(move || {
            udp_ask(
                &ia,
                41000,
                SocketAddrV4::new(HOST_A, 5353),
                Duration::from_secs(2),
            )
        })
        .await;
        assert_eq!(u.expect("udp published port from isp-a"), "web-udp");
        // host_ip 127.0.0.1: the host reaches it, the outside does not.
        let hp = host_path.clone();
        let l = blocking(move || {
            http_get_retry(
                &hp,
                SocketAddrV4::new([127, 0, 0, 1].into(), 8081),
                Duration::from_secs(5),
            )
        })
        .await;
        assert_eq!(l.expect("127.0.0.1:8081 from the host"), "web");
        let ia = isp_a.clone();
        let o = blocking(move || {
            http_get(
                &ia,
                SocketAddrV4::new(HOST_A, 8081),
                Duration::from_millis(500),
            )
        })
        .await;
        assert!(
            o.is_err(),
            "a 127.0.0.1-only port answered from outside: {o:?}"
        );
        let hp = host_path.clone();
        let local = blocking(move || {
            http_get_retry(
                &hp,
                SocketAddrV4::new([127, 0, 0, 1].into(), 8080),
                Duration::from_secs(5),
            )
        })
        .await;
        assert_eq!(local.expect("127.0.0.1:8080 from the host"), "web");
        let ia = isp_a.clone();
        let outside = blocking(move || {
            http_get_retry(&ia, SocketAddrV4::new(HOST_A, 8080), Duration::from_secs(5))
        })
        .await;
        assert_eq!(outside.expect("uplink address from isp-a"), "web");
        let cp = client.path();
        let hair = blocking(move || {
            http_get_retry(&cp, SocketAddrV4::new(HOST_A, 8080), Duration::from_secs(5))
        })
        .await;
        assert_eq!(hair.expect("hairpin from a container"), "web");
        let wp = web.path();
        let own = blocking(move || {
            http_get_retry(&wp, SocketAddrV4::new(HOST_A, 8080), Duration::from_secs(5))
        })
        .await;
        assert_eq!(
            own.expect("a container reaching its own published port"),
            "web"
        );
        // A clashing publication is refused.
        let mut again = ep("pub");
        again.ports = vec!["8080:81".parse::<PortMapping>().expect("port")];
        let other = NetnsGuard::new("c");
        assert!(
            n.attach(&other.name, NetnsRef::Path(other.path()), vec![again])
                .await
                .is_err()
        );
        n.unpublish(&web.name).await.expect("unpublish");
        let hp = host_path.clone();
        let gone = blocking(move || {
            http_get(
                &hp,
                SocketAddrV4::new([127, 0, 0, 1].into(), 8080),
                Duration::from_millis(300),
            )
        })
        .await;
        assert!(gone.is_err(), "port still answers after unpublish");
        n.detach(&web.name, None).await.expect("detach");
        n.detach(&client.name, None).await.expect("detach");
        n.remove_network("pub").await.expect("rm");
    });
}

/// Sends `bytes` over TCP from `client` to a listener on `to` in `server`; the byte count
/// the server received.
fn bulk_tcp(
    server: &std::path::Path,
    client: &std::path::Path,
    to: SocketAddrV4,
    bytes: usize,
) -> usize {
    use std::io::{Read, Write};
    let (tx, rx) = std::sync::mpsc::channel();
    let server = server.to_path_buf();
    let t = std::thread::spawn(move || {
        in_ns(&server, || {
            let l = std::net::TcpListener::bind(to).expect("bind");
            tx.send(()).ok();
            let (mut c, _) = l.accept().expect("accept");
            c.set_read_timeout(Some(Duration::from_secs(10))).ok();
            let mut buf = vec![0u8; 1 << 16];
            let mut n = 0;
            while let Ok(k) = c.read(&mut buf) {
                if k == 0 {
                    break;
                }
                n += k;
            }
            n
        })
    });
    rx.recv_timeout(Duration::from_secs(5))
        .expect("listener up");
    in_ns(client, || {
        let mut c = std::net::TcpStream::connect_timeout(&to.into(), Duration::from_secs(2))
            .expect("connect");
        let chunk = vec![7u8; 1 << 20];
        for _ in 0..bytes / chunk.len() {
            c.write_all(&chunk).expect("send");
        }
    });
    t.join().expect("server thread")
}

#[test_with::root()]
#[test]
fn networks_are_isolated_and_internal_has_no_egress() {
    let fx = Fx::<4>::new();
    let [a, b, i1, i2] = &fx.c;
    fx.with_netd(async |n| {
        n.create_network(net("na")).await.expect("create");
        n.create_network(net("nb")).await.expect("create");
        let mut ni = net("ni");
        ni.internal = true;
        ni.subnet = Some("10.202.5.0/24".parse().expect("subnet"));
        n.create_network(ni).await.expect("create internal");
        attach(&n, a, vec![ep("na")]).await;
        let eb = attach(&n, b, vec![ep("nb")]).await;
        attach(&n, i1, vec![ep("ni")]).await;
        let ei2 = attach(&n, i2, vec![ep("ni")]).await;
        assert!(
            !ei2[0].default_route,
            "internal networks give no default route"
        );
        let mut pub_internal = ep("ni");
        pub_internal.ports = vec!["9999:80".parse::<PortMapping>().expect("port")];
        let x = NetnsGuard::new("c");
        assert!(
            n.attach(&x.name, NetnsRef::Path(x.path()), vec![pub_internal])
                .await
                .is_err(),
            "ports on an internal network are refused, not ignored"
        );
        let _sb = tcp_server(&b.path(), 8000, "b");
        let _si = tcp_server(&i2.path(), 8000, "i2");
        let pa = a.path();
        let to_b = SocketAddrV4::new(eb[0].address, 8000);
        let r = blocking(move || http_get(&pa, to_b, Duration::from_millis(500))).await;
        assert!(r.is_err(), "na reached nb: {r:?}");
        let pa = a.path();
        let r = blocking(move || {
            http_get_retry(&pa, SocketAddrV4::new(INTERNET, 80), Duration::from_secs(5))
        })
        .await;
        assert_eq!(r.expect("na has egress"), "isp-a");
        let p1 = i1.path();
        let to_i2 = SocketAddrV4::new(ei2[0].address, 8000);
        let r = blocking(move || http_get_retry(&p1, to_i2, Duration::from_secs(5))).await;
        assert_eq!(r.expect("internal peers reach each other"), "i2");
        // Internal networks' veths carry 192 KiB IPv4 GSO packets (BIG TCP; the kernel
        // here has it), networks with egress keep the 64 KiB default; a bulk transfer
        // through the bridge, br_netfilter and berth's table arrives whole.
        for (c, want) in [(&i1, 196_608), (&i2, 196_608), (&a, 65_536)] {
            assert_eq!(
                gso_ipv4_max_size(&c.path(), "eth0"),
                Some(want),
                "IPv4 GSO limit of {}",
                c.name
            );
        }
        let (p1, p2) = (i1.path(), i2.path());
        let to = SocketAddrV4::new(ei2[0].address, 8001);
        let got = blocking(move || bulk_tcp(&p2, &p1, to, 32 << 20)).await;
        assert_eq!(got, 32 << 20, "bytes received over the internal network");
        // Even with a default route inside, the internal network's traffic is dropped.
        let gw = n
            .state()
            .await
            .find_network("ni")
            .map(|x| x.gateway)
            .expect("ni");
        ip(
            &i1.name,
            &["route", "add", "default", "via", &gw.to_string()],
        );
        let p1 = i1.path();
        let r = blocking(move || {
            http_get(
                &p1,
                SocketAddrV4::new(INTERNET, 80),
                Duration::from_millis(500),
            )
        })
        .await;
        assert!(r.is_err(), "internal network has egress: {r:?}");
        for c in [&a, &b, &i1, &i2] {
            n.detach(&c.name, None).await.expect("detach");
        }
        for x in ["na", "nb", "ni"] {
            n.remove_network(x).await.expect("rm");
        }
    });
}

#[test_with::root()]
#[test]
fn docker_forward_drop_gets_a_narrow_accept_while_berth_has_networks() {
    let fx = Fx::<1>::new();
    let [c] = &fx.c;
    let host = fx.sim.host.name.clone();
    docker_forward_drop(&host);
    let ours = |h: &str| {
        run(
            "ip",
            &[
                "netns",
                "exec",
                h,
                "nft",
                "list",
                "chain",
                "ip",
                "filter",
                "DOCKER-USER",
            ],
        )
        .matches("comment \"berth\"")
        .count()
    };
    fx.with_netd(async |n| {
        n.create_network(net("d")).await.expect("create");
        assert_eq!(ours(&host), 3);
        let first = run(
            "ip",
            &[
                "netns",
                "exec",
                &host,
                "nft",
                "list",
                "chain",
                "ip",
                "filter",
                "DOCKER-USER",
            ],
        );
        let pos_ours = first.find("berth").expect("ours");
        let pos_ret = first.find("return").expect("docker's return");
        assert!(
            pos_ours < pos_ret,
            "accepts must precede docker's return: {first}"
        );
        attach(&n, c, vec![ep("d")]).await;
        let p = c.path();
        let r = blocking(move || {
            http_get_retry(&p, SocketAddrV4::new(INTERNET, 80), Duration::from_secs(5))
        })
        .await;
        assert_eq!(r.expect("egress through docker's drop policy"), "isp-a");
        n.detach(&c.name, None).await.expect("detach");
        n.remove_network("d").await.expect("rm");
        assert_eq!(ours(&host), 0, "accepts removed with the last network");
    });
}

/// dockerd's leftovers in the host namespace: `ip filter FORWARD` policy drop jumping to
/// DOCKER-USER.
fn docker_forward_drop(host: &str) {
    let script = "table ip filter {\n chain DOCKER-USER {\n counter return\n }\n chain FORWARD {\n type filter hook forward priority 0; policy drop;\n jump DOCKER-USER\n }\n}\n";
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", host, "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("nft");
    std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), script.as_bytes())
        .expect("write");
    drop(child.stdin.take());
    assert!(child.wait().expect("nft").success());
}

#[test_with::root()]
#[test]
fn two_instances_with_their_own_tables_do_not_interfere() {
    common::require_tools();
    let sim = Sim::new();
    let host = sim.host.name.clone();
    docker_forward_drop(&host);
    let (ca, cb) = (NetnsGuard::new("c"), NetnsGuard::new("c"));
    let roots = [
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    ];
    let tables = [
        format!("berth_t{}a", std::process::id()),
        format!("berth_t{}b", std::process::id()),
    ];
    let comments = |h: &str, t: &str| {
        run(
            "ip",
            &[
                "netns",
                "exec",
                h,
                "nft",
                "list",
                "chain",
                "ip",
                "filter",
                "DOCKER-USER",
            ],
        )
        .matches(&format!("comment \"berth:{t}\""))
        .count()
    };
    let isp_a = sim.isp_a.path();
    sim.on_host(|| {
        rt().block_on(async {
            let open = |i: usize| {
                let mut cfg = Config::new(roots[i].path());
                cfg.table = Some(tables[i].clone());
                Netd::open(cfg)
            };
            let (a, b) = (
                open(0).await.expect("open a"),
                open(1).await.expect("open b"),
            );
            // The same network name in both instances: names are per instance.
            let na = a.create_network(net("app")).await.expect("create a");
            let nb = b.create_network(net("app")).await.expect("create b");
            assert_ne!(na.subnet, nb.subnet, "b's IPAM skips a's bridge route");
            assert_ne!(na.bridge, nb.bridge);
            let mut ra = ep("app");
            ra.ports = vec!["8080:80".parse::<PortMapping>().expect("port")];
            let mut rb = ep("app");
            rb.ports = vec!["8081:80".parse::<PortMapping>().expect("port")];
            let ea = attach(&a, &ca, vec![ra]).await;
            let eb = attach(&b, &cb, vec![rb]).await;
            let _sa = tcp_server(&ca.path(), 80, "a");
            let _sb = tcp_server(&cb.path(), 80, "b");
            assert_eq!(
                (comments(&host, &tables[0]), comments(&host, &tables[1])),
                (3, 3)
            );
            for (who, c) in [("a", &ca), ("b", &cb)] {
                let p = c.path();
                let r = blocking(move || {
                    http_get_retry(&p, SocketAddrV4::new(INTERNET, 80), Duration::from_secs(5))
                })
                .await;
                assert_eq!(r.unwrap_or_else(|e| panic!("{who} egress: {e}")), "isp-a");
            }
            for (port, body) in [(8080, "a"), (8081, "b")] {
                let ia = isp_a.clone();
                let r = blocking(move || {
                    http_get_retry(&ia, SocketAddrV4::new(HOST_A, port), Duration::from_secs(5))
                })
                .await;
                assert_eq!(r.expect("published port from isp-a"), body);
            }
            // Isolated both ways.
            for (from, to) in [(&ca, eb[0].address), (&cb, ea[0].address)] {
                let p = from.path();
                let r = blocking(move || {
                    http_get(&p, SocketAddrV4::new(to, 80), Duration::from_millis(500))
                })
                .await;
                assert!(r.is_err(), "{} reached {to}: {r:?}", from.name);
            }
            // Neither instance rewrote the other's table.
            for (who, n) in [("a", &a), ("b", &b)] {
                let r = n.reconcile().await;
                assert!(
                    r.repairs.is_empty() && r.errors.is_empty(),
                    "{who}: {:?} {:?}",
                    r.repairs,
                    r.errors
                );
            }
            // a goes away entirely: b's containers keep their egress at once (no reconcile of
            // b), and b's accepts stay.
            a.detach(&ca.name, None).await.expect("detach a");
            a.remove_network("app").await.expect("rm a");
            assert_eq!(
                (comments(&host, &tables[0]), comments(&host, &tables[1])),
                (0, 3)
            );
            let tabs = run("ip", &["netns", "exec", &host, "nft", "list", "tables"]);
            assert!(
                !tabs.contains(&tables[0]) && tabs.contains(&tables[1]),
                "{tabs}"
            );
            let p = cb.path();
            let r = blocking(move || {
                http_get(&p, SocketAddrV4::new(INTERNET, 80), Duration::from_secs(2))
            })
            .await;
            assert_eq!(r.expect("b's egress after a left"), "isp-a");
            b.detach(&cb.name, None).await.expect("detach b");
            b.remove_network("app").await.expect("rm b");
            assert_eq!(comments(&host, &tables[1]), 0);
        })
    });
    assert!(sim.leftovers().is_empty(), "{:?}", sim.leftovers());
}

/// BIG TCP on a network with egress follows the uplinks: off while one uplink has the 64 KiB
/// default, on (new endpoints and, through reconcile, existing ones) once every uplink takes
/// 192 KiB packets, off again through reconcile when an uplink with the default appears, and
/// the traffic between containers arrives whole at each step.
#[test_with::root()]
#[test]
fn egress_network_gets_big_tcp_only_while_every_uplink_takes_it() {
    let fx = Fx::<2>::new();
    let [a, b] = &fx.c;
    let isp_c = NetnsGuard::new("a");
    let host = fx.sim.host.path();
    let (host_name, isp_c_name) = (fx.sim.host.name.clone(), isp_c.name.clone());
    fx.with_netd(async |n| {
        n.create_network(net("big")).await.expect("create");
        attach(&n, a, vec![ep("big")]).await;
        let gso = |c: &NetnsGuard| gso_ipv4_max_size(&c.path(), "eth0");
        assert!(
            gso(a).is_some(),
            "the kernel does not report IPv4 GSO limits (before 6.3): this test needs 6.3+"
        );
        assert_eq!(gso(a), Some(65_536), "uplinks have the 64 KiB default");

        // Both uplinks take BIG TCP: a new endpoint gets it, reconcile raises the old one.
        let h = host.clone();
        blocking(move || {
            for up in ["upa", "upb"] {
                set_gso_ipv4_max_size(&h, up, 196_608);
            }
        })
        .await;
        let eb = attach(&n, b, vec![ep("big")]).await;
        assert_eq!(gso(b), Some(196_608), "new endpoint once uplinks take it");
        let rep = n.reconcile().await;
        assert!(rep.errors.is_empty(), "{:?}", rep.errors);
        assert!(
            rep.repairs
                .iter()
                .any(|r| r.what.contains("IPv4 GSO limit")),
            "{:?}",
            rep.repairs
        );
        assert_eq!(gso(a), Some(196_608), "reconcile raised the old endpoint");
        let h = host.clone();
        let host_ends: Vec<String> = n
            .state()
            .await
            .endpoints
            .iter()
            .map(|e| e.host_ifname.clone())
            .collect();
        for e in &host_ends {
            let (h, e2) = (h.clone(), e.clone());
            let g = blocking(move || gso_ipv4_max_size(&h, &e2)).await;
            assert_eq!(g, Some(196_608), "host end {e}");
        }
        let (pa, pb) = (a.path(), b.path());
        let to = SocketAddrV4::new(eb[0].address, 8001);
        let got = blocking(move || bulk_tcp(&pb, &pa, to, 32 << 20)).await;
        assert_eq!(
            got,
            32 << 20,
            "bytes received with BIG TCP on an egress network"
        );

        // A new uplink with the default limit: reconcile lowers both endpoints.
        let (hn, icn) = (host_name.clone(), isp_c_name.clone());
        blocking(move || {
            run(
                "ip",
                &[
                    "link", "add", "upc", "netns", &hn, "type", "veth", "peer", "name", "eth0",
                    "netns", &icn,
                ],
            );
            ip(&hn, &["addr", "add", "172.30.3.2/24", "dev", "upc"]);
            ip(&hn, &["link", "set", "upc", "up"]);
        })
        .await;
        let rep = n.reconcile().await;
        assert!(rep.errors.is_empty(), "{:?}", rep.errors);
        for c in [&a, &b] {
            assert_eq!(gso(c), Some(65_536), "lowered in {}", c.name);
        }
        for e in &host_ends {
            let (h, e2) = (h.clone(), e.clone());
            let g = blocking(move || gso_ipv4_max_size(&h, &e2)).await;
            assert_eq!(g, Some(65_536), "host end {e}");
        }
        let rep = n.reconcile().await;
        assert!(
            !rep.repairs
                .iter()
                .any(|r| r.what.contains("IPv4 GSO limit")),
            "nothing left to change: {:?}",
            rep.repairs
        );
        let (pa, pb) = (a.path(), b.path());
        let to = SocketAddrV4::new(eb[0].address, 8002);
        let got = blocking(move || bulk_tcp(&pb, &pa, to, 32 << 20)).await;
        assert_eq!(got, 32 << 20, "bytes received after lowering");
        for c in [&a, &b] {
            n.detach(&c.name, None).await.expect("detach");
        }
        n.remove_network("big").await.expect("rm");
    });
    drop(isp_c);
}
