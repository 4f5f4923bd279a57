//! The netd root tests' shared steps: a network and an endpoint request by name, attaching a
//! namespace, and the two paths every container must have (to its peer, to the internet).

use std::net::SocketAddrV4;
use std::time::Duration;

use berth_netd::state::NetnsRef;
use berth_netd::{EndpointRequest, Netd, NetworkCreate};

use super::*;

pub fn net(name: &str) -> NetworkCreate {
    NetworkCreate {
        name: name.into(),
        ..Default::default()
    }
}

pub fn ep(network: &str) -> EndpointRequest {
    EndpointRequest {
        network: network.into(),
        ..Default::default()
    }
}

pub async fn attach(
    n: &Netd,
    c: &NetnsGuard,
    reqs: Vec<EndpointRequest>,
) -> Vec<berth_netd::state::Endpoint> {
    n.attach(&c.name, NetnsRef::Path(c.path()), reqs)
        .await
        .expect("attach")
}

pub async fn blocking<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

/// `from` reaches the server answering "c2" at `peer`:8000, and the internet through isp-a.
pub async fn check_paths(what: &str, from: std::path::PathBuf, peer: std::net::Ipv4Addr) {
    let to = SocketAddrV4::new(peer, 8000);
    let inet = SocketAddrV4::new(INTERNET, 80);
    let p = from.clone();
    let b = blocking(move || http_get_retry(&p, to, Duration::from_secs(5))).await;
    assert_eq!(b.unwrap_or_else(|e| panic!("{what}: c1 -> c2: {e}")), "c2");
    let b = blocking(move || http_get_retry(&from, inet, Duration::from_secs(5))).await;
    assert_eq!(b.unwrap_or_else(|e| panic!("{what}: egress: {e}")), "isp-a");
}
