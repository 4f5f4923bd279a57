//! The NIC change end to end: a simulated laptop on "ethernet" (isp-a) switches to "wifi"
//! (isp-b): the default route moves, the ethernet link goes down and resolv.conf is replaced,
//! all at once. A container attached before the switch, never touched afterwards, must
//! resolve an outside name through the embedded DNS (now answered by isp-b's resolver) and
//! reach the web server it names through NAT. Network namespaces only.

mod common;
mod dns_util;
mod nic_util;

use std::net::{SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use berth_netd::dns::Endpoint as DnsEndpoint;
use berth_netd::state::NetnsRef;
use berth_netd::{EndpointRequest, NetworkCreate};
use common::*;
use dns_util::resolve_a;
use nic_util::*;

async fn blocking<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

/// From inside the container: resolve `example.test` through the embedded DNS, then GET the
/// address it names. Returns (answer, body).
fn lookup_and_get(
    ns: &std::path::Path,
    dns: SocketAddr,
    timeout: Duration,
) -> std::io::Result<(std::net::Ipv4Addr, String)> {
    let ips = in_ns(ns, || resolve_a(dns, "example.test", timeout))?;
    let first = *ips
        .first()
        .ok_or_else(|| std::io::Error::other("empty answer"))?;
    let body = http_get(ns, SocketAddrV4::new(first, 80), timeout)?;
    Ok((first, body))
}

#[test_with::root()]
#[test]
fn ethernet_to_wifi_dns_and_egress_follow_without_touching_the_container() {
    let fx = Fx::<0>::new();
    let sim = &fx.sim;
    let up = Uplinks::new(sim);
    let c = NetnsGuard::new("c");
    let peer = NetnsGuard::new("c");
    fx.with_netd_multi(async |n| {
            let dns = StackDns::wire(&n, &up.resolv_conf);
            let spec = n
                .create_network(NetworkCreate {
                    name: "app".into(),
                    ..Default::default()
                })
                .await
                .expect("create");
            let server = dns.start(&spec);
            let mut eps = Vec::new();
            for (ns, name) in [(&c, "web"), (&peer, "db")] {
                let e = n
                    .attach(
                        &ns.name,
                        NetnsRef::Path(ns.path()),
                        vec![EndpointRequest {
                            network: "app".into(),
                            ..Default::default()
                        }],
                    )
                    .await
                    .expect("attach");
                dns.dns
                    .records()
                    .add_endpoint(
                        "app",
                        DnsEndpoint {
                            id: ns.name.clone(),
                            container: ns.name.clone(),
                            addresses: vec![e[0].address.into()],
                            names: vec![name.into()],
                            ..Default::default()
                        },
                    )
                    .expect("records");
                eps.push(e);
            }
            let watcher = tokio::spawn(n.clone().run(Duration::from_secs(30)));
            let mut changes = n.host_changes();
            tokio::time::timeout(Duration::from_secs(5), changes.changed())
                .await
                .expect("first reconcile")
                .expect("channel");

            // On ethernet: isp-a's resolver answers, isp-a's web server serves.
            let p = c.path();
            let before = blocking(move || {
                let end = Instant::now() + Duration::from_secs(5);
                loop {
                    match lookup_and_get(&p, server, Duration::from_millis(500)) {
                        Ok(r) => return Ok(r),
                        Err(e) if Instant::now() > end => return Err(e),
                        Err(_) => std::thread::sleep(Duration::from_millis(50)),
                    }
                }
            })
            .await;
            assert_eq!(
                before.expect("before the switch"),
                (A_WEB, "isp-a".to_string())
            );
            let p = c.path();
            let local = blocking(move || {
                in_ns(&p, || resolve_a(server, "db", Duration::from_secs(2)))
            })
            .await
            .expect("local name");
            assert_eq!(local, vec![eps[1][0].address]);
            let a_queries = up.a.queries.load(std::sync::atomic::Ordering::SeqCst);
            assert!(a_queries >= 1, "isp-a's resolver was not asked");

            // The switch. From here on nothing touches the container.
            let t0 = Instant::now();
            up.switch_to_b(sim);
            let p = c.path();
            let (dns_ok, web_ok) = blocking(move || {
                let mut dns_ok = None;
                while t0.elapsed() < Duration::from_secs(10) {
                    match in_ns(&p, || {
                        resolve_a(server, "example.test", Duration::from_millis(100))
                    }) {
                        Ok(ips) if ips == [B_WEB] => {
                            dns_ok = Some(t0.elapsed());
                            break;
                        }
                        _ => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
                let mut web_ok = None;
                while dns_ok.is_some() && t0.elapsed() < Duration::from_secs(10) {
                    if let Ok(b) = http_get(&p, SocketAddrV4::new(B_WEB, 80), Duration::from_millis(100))
                        && b == "isp-b"
                    {
                        web_ok = Some(t0.elapsed());
                        break;
                    }
                }
                (dns_ok, web_ok)
            })
            .await;
            let dns_ok = dns_ok.expect("the container never got isp-b's DNS answer");
            let web_ok = web_ok.expect("the container never reached isp-b's web server");
            eprintln!(
                "ethernet -> wifi: outside name answered by isp-b after {dns_ok:?}, web via NAT after {web_ok:?}"
            );
            assert!(up.b.queries.load(std::sync::atomic::Ordering::SeqCst) >= 1);
            // The full path once more, as an application would do it.
            let p = c.path();
            let after = blocking(move || lookup_and_get(&p, server, Duration::from_secs(2))).await;
            assert_eq!(after.expect("after the switch"), (B_WEB, "isp-b".to_string()));
            let host = dns.watcher.host().expect("host resolv.conf read");
            assert_eq!(host.conf.search, vec!["lan-b.test".to_string()]);
            // netd publishes the new egress when its own watcher has seen the route change,
            // which on a loaded machine can come after the kernel already routes through it.
            let seen = tokio::time::timeout(
                Duration::from_secs(10),
                changes.wait_for(|c| c.egress.contains(&HOST_B)),
            )
            .await
            .is_ok_and(|r| r.is_ok());
            assert!(
                seen,
                "netd never reported the new egress: {:?}",
                changes.borrow()
            );
            watcher.abort();
            for ns in [&c, &peer] {
                n.detach(&ns.name, None).await.expect("detach");
            }
            dns.dns.stop_network("app");
            n.remove_network("app").await.expect("rm");
    });
    drop(up);
}
