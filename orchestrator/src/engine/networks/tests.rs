use super::*;
use std::sync::Arc;

use crate::api::network::IpamConfig;

fn pool(subnet: Option<&str>, gateway: Option<&str>) -> IpamConfig {
    IpamConfig {
        subnet: subnet.map(str::to_string),
        ip_range: None,
        gateway: gateway.map(str::to_string),
        ..Default::default()
    }
}

fn ipam(config: Vec<IpamConfig>) -> Ipam {
    Ipam {
        config,
        ..Ipam::default()
    }
}

#[test]
fn pools_split_by_family() {
    let a = by_family(&ipam(vec![
        pool(Some("10.9.0.0/24"), Some("10.9.0.1")),
        pool(Some("fd00:9::/64"), Some("fd00:9::1")),
    ]))
    .expect("split");
    assert_eq!(
        a.subnet.map(|s| s.to_string()).as_deref(),
        Some("10.9.0.0/24")
    );
    assert_eq!(
        a.subnet6.map(|s| s.to_string()).as_deref(),
        Some("fd00:9::/64")
    );
    assert_eq!(
        a.gateway.map(|s| s.to_string()).as_deref(),
        Some("10.9.0.1")
    );
    assert_eq!(
        a.gateway6.map(|s| s.to_string()).as_deref(),
        Some("fd00:9::1")
    );
    let two = by_family(&ipam(vec![
        pool(Some("10.9.0.0/24"), None),
        pool(Some("10.8.0.0/24"), None),
    ]))
    .expect_err("two v4");
    assert_eq!(two.kind, ErrorKind::InvalidArgument);
    let bad = by_family(&ipam(vec![pool(Some("fd00::/200"), None)])).expect_err("bad");
    assert_eq!(bad.kind, ErrorKind::InvalidArgument);
    assert!(bad.message.contains("fd00::/200"), "{}", bad.message);
    // A gateway alone keeps the pool's next subnet.
    let g = by_family(&ipam(vec![pool(None, Some("10.9.0.1"))])).expect("gateway only");
    assert!(g.subnet.is_none() && g.gateway.is_some());
}

#[test]
fn netd_errors_get_dockers_kinds() {
    let cases = [
        (
            NetdError::NoNetwork { key: "x".into() },
            ErrorKind::NotFound,
        ),
        (
            NetdError::NetworkExists { name: "x".into() },
            ErrorKind::Conflict,
        ),
        (
            NetdError::NetworkInUse {
                name: "x".into(),
                containers: "c".into(),
            },
            ErrorKind::Forbidden,
        ),
        (
            NetdError::NotAttached {
                container: "c".into(),
                network: "x".into(),
            },
            ErrorKind::NotFound,
        ),
        (
            NetdError::BadName { name: "x y".into() },
            ErrorKind::InvalidArgument,
        ),
    ];
    for (e, kind) in cases {
        let api = netd_error(&e);
        assert_eq!(api.kind, kind, "{e}");
        assert_eq!(api.message, e.to_string());
    }
}

/// A network namespace of the test's own, deleted on drop (the tests that make one are
/// marked root-only, so they show as ignored without root).
struct ThrowawayNetns(String);

impl ThrowawayNetns {
    fn new(tag: &str) -> Self {
        let ns = format!("{tag}{}", std::process::id());
        let ok = std::process::Command::new("ip")
            .args(["netns", "add", &ns])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "ip netns add {ns}");
        Self(ns)
    }
}

impl Drop for ThrowawayNetns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

/// Runs `f` with a fresh netd inside the throwaway namespace `ns`.
fn in_netns<T: Send + 'static>(
    ns: &str,
    table: &str,
    f: impl AsyncFnOnce(Arc<Netd>) -> T + Send + 'static,
) -> T {
    let root = tempfile::tempdir().expect("tempdir");
    let path = format!("/run/netns/{ns}");
    let rootp = root.path().to_path_buf();
    let table = format!("{table}_{}", std::process::id());
    std::thread::spawn(move || {
        let f_ns = std::fs::File::open(&path).expect("netns");
        nix::sched::setns(f_ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let mut cfg = berth_netd::Config::new(&rootp);
            cfg.table = Some(table);
            let n = Netd::open(cfg).await.expect("netd");
            f(n).await
        })
    })
    .join()
    .expect("thread")
}

fn create_req(name: &str, subnets: &[&str], ipv6: bool) -> NetworkCreateRequest {
    NetworkCreateRequest {
        name: name.into(),
        driver: "bridge".into(),
        internal: false,
        enable_ipv6: ipv6,
        ipam: ipam(subnets.iter().map(|s| pool(Some(s), None)).collect()),
        options: BTreeMap::new(),
        labels: BTreeMap::new(),
    }
}

/// `network create --ipv6` as the daemon runs it, on a netd inside a throwaway network
/// namespace (root only); a second create of the name is a conflict, an unknown driver option
/// is refused by name.
#[test_with::root()]
#[test]
fn create_ipv6_network_and_inspect_it() {
    let ns = ThrowawayNetns::new("btnet6");
    let (a, b, dup, opt, i, rm, gone) = in_netns(&ns.0, "berth_net6", async |n| {
        let a = create(&n, create_req("v6a", &[], true)).await;
        let b = create(
            &n,
            create_req("v6b", &["fd00:77::/64", "10.219.7.0/24"], false),
        )
        .await;
        let dup = create(&n, create_req("v6a", &[], false)).await;
        let mut with_opt = create_req("v6c", &[], false);
        with_opt.options.insert(
            "com.docker.network.bridge.inhibit_ipv4".into(),
            "false".into(),
        );
        let opt = create(&n, with_opt).await;
        let i = (inspect(&n, "v6a").await, inspect(&n, "v6b").await);
        let rm = (remove(&n, "v6a").await, remove(&n, "v6b").await);
        let gone = inspect(&n, "v6a").await;
        (a, b, dup, opt, i, rm, gone)
    });
    assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
    let dup = dup.expect_err("duplicate");
    assert_eq!(dup.kind, ErrorKind::Conflict);
    assert!(
        dup.message.starts_with("cannot create network v6a: "),
        "{}",
        dup.message
    );
    let opt = opt.expect_err("option");
    assert_eq!(opt.kind, ErrorKind::InvalidArgument);
    assert!(opt.message.contains("inhibit_ipv4"), "{}", opt.message);
    let (va, vb) = (i.0.expect("inspect a"), i.1.expect("inspect b"));
    assert!(va.enable_ipv6);
    let v6a = va.ipv6_config().expect("v6 pool");
    assert_eq!(v6a.subnet.as_deref(), Some("fd00:b5e7::/64"));
    let v6b = vb.ipv6_config().expect("v6 pool");
    assert_eq!(v6b.subnet.as_deref(), Some("fd00:77::/64"));
    assert_eq!(v6b.gateway.as_deref(), Some("fd00:77::1"));
    assert_eq!(
        vb.ipv4_config().and_then(|c| c.subnet.as_deref()),
        Some("10.219.7.0/24")
    );
    assert_eq!(rm.0.expect("rm a").name, "v6a");
    assert!(rm.1.is_ok());
    assert_eq!(gone.expect_err("gone").kind, ErrorKind::NotFound);
}

/// A host address that overlaps a network's subnet after it was made: reconcile, list and
/// inspect name it (network, subnet, interface), and stop once it is gone. Root only, in a
/// throwaway network namespace.
#[test_with::root()]
#[test]
fn subnet_conflict_is_shown_by_reconcile_list_and_inspect() {
    let ns = ThrowawayNetns::new("btnetc");
    let ipn = |args: &[&str]| {
        let st = std::process::Command::new("ip")
            .args(["-n", &ns.0])
            .args(args)
            .status()
            .expect("ip");
        assert!(st.success(), "ip {args:?}");
    };
    // A veth pair stands in for the Wi-Fi NIC (no dummy module on every kernel).
    ipn(&[
        "link", "add", "wifi0", "type", "veth", "peer", "name", "wifi0p",
    ]);
    ipn(&["link", "set", "wifi0", "up"]);
    let nsn = ns.0.clone();
    let (c, r, ls, i, r2, rm) = in_netns(&ns.0, "berth_netc", async move |n| {
        let c = create(&n, create_req("lan", &["10.219.9.0/24"], false)).await;
        // The Wi-Fi joined afterwards is on the same /24.
        let ip = |verb: &str| {
            std::process::Command::new("ip")
                .args(["-n", &nsn, "addr", verb, "10.219.9.77/24", "dev", "wifi0"])
                .status()
                .is_ok_and(|s| s.success())
        };
        assert!(ip("add"));
        let r = reconcile(&n).await;
        let ls = list(&n).await;
        let i = inspect(&n, "lan").await;
        assert!(ip("del"));
        let r2 = reconcile(&n).await;
        let rm = remove(&n, "lan").await;
        (c, r, ls, i, r2, rm)
    });
    assert!(c.is_ok() && rm.is_ok(), "{c:?} {rm:?}");
    assert!(r.errors.is_empty(), "{r:?}");
    let want = "network lan (10.219.9.0/24) overlaps host address 10.219.9.77/24 on wifi0";
    assert!(r.conflicts.iter().any(|c| c.contains(want)), "{r:?}");
    assert!(ls[0].conflicts.iter().any(|c| c.contains(want)), "{ls:?}");
    assert!(i.expect("inspect").conflicts[0].contains("wifi0"));
    assert!(r2.conflicts.is_empty(), "{r2:?}");
}
