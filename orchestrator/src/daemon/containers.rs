//! Single-container routes: `POST /v1/containers/create` takes "a container to create"
//! (Docker's create body) and answers its id (the client starts and attaches it);
//! `GET /v1/containers/networks` answers what netd holds of each container's networks.

use std::collections::BTreeMap;

use super::*;
use crate::api::container::{ContainerNetworks, CreateContainer};

/// `POST /v1/containers/create`: translates, creates and connects the container.
pub(super) async fn create(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let r: CreateContainer = match body(req).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let engine = match engine(shared).await {
        Ok(e) => e,
        Err(resp) => return resp,
    };
    match engine.create_container(r.name, r.spec).await {
        Ok(created) => json(StatusCode::CREATED, &created),
        Err(e) => api_error(&e),
    }
}

/// `GET /v1/containers/networks`: every container with endpoints, by id.
pub(super) async fn networks(shared: &Shared) -> Response<Body> {
    let engine = match engine(shared).await {
        Ok(e) => e,
        Err(resp) => return resp,
    };
    json(StatusCode::OK, &by_container(&engine.netd.state().await))
}

/// netd's endpoints grouped by container: network names, published ports and Docker's
/// `NetworkSettings` (networks with address, gateway, aliases, MAC; ports as
/// `"80/tcp": [{"HostIp", "HostPort"}]`; the first network's address on top).
pub(in crate::daemon) fn by_container(
    netd: &berth_netd::state::State,
) -> BTreeMap<String, ContainerNetworks> {
    let mut out: BTreeMap<String, ContainerNetworks> = BTreeMap::new();
    for ep in &netd.endpoints {
        let net = netd.networks.get(&ep.network);
        let name = net
            .map(|n| n.name.clone())
            .unwrap_or_else(|| ep.network.clone());
        let entry = out
            .entry(ep.container.clone())
            .or_insert_with(|| ContainerNetworks {
                settings: serde_json::json!({
                    "Networks": {},
                    "Ports": {},
                    "IPAddress": ep.address.to_string(),
                }),
                ..Default::default()
            });
        if net.is_some() {
            entry.names.push(name.clone());
        }
        entry.ports.extend(ep.ports.iter().cloned());
        entry.settings["Networks"][&name] = serde_json::json!({
            "NetworkID": ep.network,
            "IPAddress": ep.address.to_string(),
            "IPPrefixLen": net.map(|n| n.subnet.prefix()),
            "Gateway": net.map(|n| n.gateway.to_string()),
            "MacAddress": ep.mac,
            "Aliases": ep.aliases,
            "Interface": ep.ifname,
        });
        for p in &ep.ports {
            for (host, cont) in p.pairs() {
                let binding = serde_json::json!({
                    "HostIp": p.host_ip.map(|i| i.to_string()).unwrap_or_else(|| "0.0.0.0".into()),
                    "HostPort": host.to_string(),
                });
                let key = format!("{cont}/{}", p.protocol.as_str());
                match entry.settings["Ports"][&key].as_array_mut() {
                    Some(list) => list.push(binding),
                    None => entry.settings["Ports"][&key] = serde_json::json!([binding]),
                }
            }
        }
    }
    out
}
