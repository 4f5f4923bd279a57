//! Docker's network routes: list (filters), inspect, create, remove, connect, disconnect and
//! prune. They run on the engine's network functions and types (`engine/networks.rs`,
//! `api/network.rs`, the ones `/v1/networks` serves) and the engine's joins of a container to
//! one more network; only the wire is Docker's: its status codes and words, `bridge` listed as
//! the predefined default network, container names in `Containers`, `Warning` on create.

use std::collections::BTreeMap;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use super::errors::ApiError;
use super::query::{self, Filters};
use super::{Body, Docker, json};
use crate::api::ErrorKind;
use crate::api::network::{Network, NetworkCreateRequest};
use crate::api::project::ContainerNetwork;
use crate::engine::networks;
use crate::engine::stack::{DEFAULT_BRIDGE, Engine};

/// The largest request body read (a real one is well under a KiB).
const MAX_BODY: usize = 1 << 20;

/// One network route of Docker's API.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Route {
    List,
    Create,
    Prune,
    Inspect(String),
    Remove(String),
    Connect(String),
    Disconnect(String),
}

impl Route {
    /// The route `method path` names, if it is a network route berth serves.
    pub(super) fn parse(method: &Method, path: &str) -> Option<Route> {
        if path == "/networks" && method == Method::GET {
            return Some(Route::List);
        }
        let rest = path.strip_prefix("/networks/")?;
        let segs: Vec<&str> = rest.split('/').collect();
        let id = |s: &str| (!s.is_empty()).then(|| crate::api::decode_segment(s));
        match (method, segs.as_slice()) {
            (&Method::POST, ["create"]) => Some(Route::Create),
            (&Method::POST, ["prune"]) => Some(Route::Prune),
            (&Method::GET, [n]) => id(n).map(Route::Inspect),
            (&Method::DELETE, [n]) => id(n).map(Route::Remove),
            (&Method::POST, [n, "connect"]) => id(n).map(Route::Connect),
            (&Method::POST, [n, "disconnect"]) => id(n).map(Route::Disconnect),
            _ => None,
        }
    }
}

/// Serves one network route.
pub(super) async fn serve(
    docker: &Arc<Docker>,
    req: Request<Incoming>,
    route: Route,
    query: &str,
) -> Result<Response<Body>, ApiError> {
    let engine = docker
        .shared
        .engine()
        .await
        .map_err(|m| ApiError::internal(format!("the engine is unavailable: {m}")))?;
    match route {
        Route::List => list(docker, &engine, query).await,
        Route::Inspect(n) => {
            let net = find(&engine, &n).await?;
            let net = named(docker, vec![net]).await.pop();
            Ok(json(StatusCode::OK, &net))
        }
        Route::Create => create(docker, &engine, req).await,
        Route::Remove(n) => remove(docker, &engine, &n).await,
        Route::Prune => prune(docker, &engine, query).await,
        Route::Connect(n) => connect(docker, &engine, &n, req).await,
        Route::Disconnect(n) => disconnect(docker, &engine, &n, req).await,
    }
}

/// berth's failure in Docker's status and words.
fn docker_error(e: crate::api::ApiError) -> ApiError {
    let status = StatusCode::from_u16(e.kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    ApiError {
        status,
        message: e.message,
    }
}

fn not_found(what: &str) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: format!("network {what} not found"),
    }
}

/// Docker's other predefined networks, by name with their driver: what `NetworkMode` `host`
/// and `none` name. Listed and inspectable as Docker's; netd has no record of them.
const MODES: [(&str, &str); 2] = [("host", "host"), ("none", "null")];

/// A stable id for a predefined mode network: its name's hex, repeated to 64 digits.
fn mode_id(name: &str) -> String {
    let hex: String = name.bytes().map(|b| format!("{b:02x}")).collect();
    hex.repeat(64 / hex.len() + 1)[..64].to_string()
}

/// The predefined mode network `what` names (name or id prefix).
fn mode_network(what: &str) -> Option<Network> {
    let (name, driver) = MODES
        .iter()
        .find(|(n, _)| *n == what || (what.len() >= 3 && mode_id(n).starts_with(what)))?;
    Some(Network {
        name: name.to_string(),
        id: mode_id(name),
        created: "0001-01-01T00:00:00Z".into(),
        scope: "local".into(),
        driver: driver.to_string(),
        enable_ipv4: true,
        enable_ipv6: false,
        ipam: Default::default(),
        internal: false,
        attachable: false,
        ingress: false,
        containers: BTreeMap::new(),
        options: BTreeMap::new(),
        labels: BTreeMap::new(),
        endpoints: Vec::new(),
        conflicts: Vec::new(),
        created_unix: 0,
    })
}

/// The network `what` names (name, id or id prefix); `bridge` exists from the first look.
async fn find(engine: &Arc<Engine>, what: &str) -> Result<Network, ApiError> {
    if let Some(n) = mode_network(what) {
        return Ok(n);
    }
    if what == DEFAULT_BRIDGE {
        engine
            .ensure_default_bridge()
            .await
            .map_err(ApiError::internal)?;
    }
    networks::inspect(&engine.netd, what)
        .await
        .map_err(|e| match e.kind {
            ErrorKind::NotFound => not_found(what),
            _ => docker_error(e),
        })
}

/// Fills in the container names of the networks' endpoints (Docker's `Containers.*.Name`).
async fn named(docker: &Arc<Docker>, mut nets: Vec<Network>) -> Vec<Network> {
    let rt = docker.rt.clone();
    let names: BTreeMap<String, String> = tokio::task::spawn_blocking(move || {
        rt.list()
            .into_iter()
            .map(|(rec, _)| (rec.id, rec.config.name))
            .collect()
    })
    .await
    .unwrap_or_default();
    for n in &mut nets {
        for (id, ep) in n.containers.iter_mut() {
            ep.name = names.get(id).cloned().unwrap_or_default();
        }
    }
    nets
}

/// Docker's predefined networks (`bridge`, `host`, `none`) are `builtin`, the rest `custom`.
fn is_builtin(n: &Network) -> bool {
    n.name == DEFAULT_BRIDGE || MODES.iter().any(|(m, _)| *m == n.name)
}

/// `label` filter values (`k` or `k=v`), all of which must match.
pub(super) fn labels_match(labels: &BTreeMap<String, String>, wanted: &Filters) -> bool {
    wanted.get("label").is_none_or(|set| {
        set.iter().all(|l| match l.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
            None => labels.contains_key(l),
        })
    })
}

/// A boolean filter value as Docker reads it; anything else is its 400.
pub(super) fn bool_filter(key: &str, v: &str) -> Result<bool, ApiError> {
    match v {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "invalid filter '{key}={v}': use true or false"
        ))),
    }
}

/// Whether network `n` passes Docker's network filters (values of one key: any; keys: all).
fn matches(n: &Network, f: &Filters) -> Result<bool, ApiError> {
    let any =
        |key: &str, ok: &dyn Fn(&str) -> bool| f.get(key).is_none_or(|s| s.iter().any(|v| ok(v)));
    let dangling = match f.get("dangling").and_then(|s| s.iter().next()) {
        Some(v) => Some(bool_filter("dangling", v)?),
        None => None,
    };
    for t in f.get("type").into_iter().flatten() {
        if !matches!(t.as_str(), "custom" | "builtin") {
            return Err(ApiError::bad_request(format!(
                "invalid filter: 'type'='{t}'"
            )));
        }
    }
    Ok(any("name", &|v| n.name.contains(v))
        && any("id", &|v| n.id.starts_with(v))
        && any("driver", &|v| n.driver == v)
        && any("scope", &|v| n.scope == v)
        && any("type", &|v| (v == "builtin") == is_builtin(n))
        && labels_match(&n.labels, f)
        && dangling.is_none_or(|d| d == (n.containers.is_empty() && !is_builtin(n))))
}

/// `GET /networks?filters=`.
async fn list(
    docker: &Arc<Docker>,
    engine: &Arc<Engine>,
    query: &str,
) -> Result<Response<Body>, ApiError> {
    let f = query::filters(
        query,
        &["name", "id", "label", "driver", "type", "dangling", "scope"],
    )?;
    engine
        .ensure_default_bridge()
        .await
        .map_err(ApiError::internal)?;
    let mut out = Vec::new();
    let modes = MODES.iter().filter_map(|(m, _)| mode_network(m));
    for n in networks::list(&engine.netd).await.into_iter().chain(modes) {
        if matches(&n, &f)? {
            out.push(n);
        }
    }
    Ok(json(StatusCode::OK, &named(docker, out).await))
}

/// Reads a JSON body, refusing an empty or malformed one with Docker's 400.
async fn body(req: Request<Incoming>) -> Result<serde_json::Value, ApiError> {
    use http_body_util::BodyExt;
    let bytes = http_body_util::Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the request: {e}")))?
        .to_bytes();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::json!({}));
    }
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
}

/// Drops the `null` members of an object (Docker's clients send `null` for "not given").
fn drop_nulls(v: &mut serde_json::Value) {
    if let Some(m) = v.as_object_mut() {
        m.retain(|_, x| !x.is_null());
        for x in m.values_mut() {
            drop_nulls(x);
        }
    }
}

/// Docker's create body as berth's [`NetworkCreateRequest`]: `""` drivers are the defaults,
/// what berth cannot make is refused by name.
fn create_request(mut v: serde_json::Value) -> Result<NetworkCreateRequest, ApiError> {
    drop_nulls(&mut v);
    let orig = v.clone();
    let get = |k: &str| orig.get(k).cloned();
    if get("Name")
        .and_then(|n| n.as_str().map(str::to_string))
        .unwrap_or_default()
        .is_empty()
    {
        return Err(ApiError::bad_request("network name is required"));
    }
    if let Some(serde_json::Value::String(d)) = get("Driver") {
        if d.is_empty() {
            v["Driver"] = "bridge".into();
        } else if d != "bridge" {
            return Err(ApiError::bad_request(format!(
                "network driver \"{d}\" is not supported by berth (only \"bridge\")"
            )));
        }
    }
    if let Some(serde_json::Value::String(d)) = v.pointer("/IPAM/Driver").cloned()
        && d.is_empty()
    {
        v["IPAM"]["Driver"] = "default".into();
    }
    for field in ["Ingress", "ConfigOnly"] {
        if get(field).and_then(|b| b.as_bool()) == Some(true) {
            return Err(ApiError::bad_request(format!(
                "{field} networks are not supported by berth"
            )));
        }
    }
    if get("ConfigFrom").is_some_and(|c| {
        c.get("Network")
            .and_then(|n| n.as_str())
            .is_some_and(|n| !n.is_empty())
    }) {
        return Err(ApiError::bad_request(
            "ConfigFrom is not supported by berth",
        ));
    }
    if get("EnableIPv4").and_then(|b| b.as_bool()) == Some(false) {
        return Err(ApiError::bad_request(
            "EnableIPv4 false is not supported by berth: its networks are IPv4",
        ));
    }
    if let Some(s) = get("Scope").and_then(|s| s.as_str().map(str::to_string))
        && !matches!(s.as_str(), "" | "local")
    {
        return Err(ApiError::bad_request(format!(
            "network scope \"{s}\" is not supported by berth (only \"local\")"
        )));
    }
    serde_json::from_value(v).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
}

/// `POST /networks/create`: 201 `{Id, Warning}`; a taken name is Docker's 409.
async fn create(
    docker: &Docker,
    engine: &Arc<Engine>,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let r = create_request(body(req).await?)?;
    if r.name == DEFAULT_BRIDGE
        || MODES.iter().any(|(m, _)| *m == r.name)
        || engine
            .netd
            .networks()
            .await
            .iter()
            .any(|n| n.name == r.name)
    {
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            message: format!("network with name {} already exists", r.name),
        });
    }
    let before = engine.network_names().await;
    let (name, driver) = (r.name.clone(), r.driver.clone());
    let out = networks::create(&engine.netd, r).await;
    engine.sync_dns(&before).await;
    let created = out.map_err(docker_error)?;
    super::events::emit(
        docker,
        "network",
        "create",
        &created.id,
        &[("name", &name), ("type", &driver)],
    );
    Ok(json(
        StatusCode::CREATED,
        &serde_json::json!({ "Id": created.id, "Warning": created.warning }),
    ))
}

/// `DELETE /networks/{id}`: 204; 403 for `bridge` and a network with endpoints.
async fn remove(
    docker: &Docker,
    engine: &Arc<Engine>,
    what: &str,
) -> Result<Response<Body>, ApiError> {
    let net = find(engine, what).await?;
    if is_builtin(&net) {
        return Err(ApiError {
            status: StatusCode::FORBIDDEN,
            message: format!(
                "{} is a pre-defined network and cannot be removed",
                net.name
            ),
        });
    }
    let before = engine.network_names().await;
    let out = networks::remove(&engine.netd, &net.id).await;
    engine.sync_dns(&before).await;
    match out {
        Ok(_) => {
            // Its last containers' disconnects (derived from their changes) come first.
            docker.shared.watcher.look_now(&docker.shared).await;
            super::events::emit(
                docker,
                "network",
                "destroy",
                &net.id,
                &[("name", &net.name), ("type", &net.driver)],
            );
            Ok(super::containers::empty(StatusCode::NO_CONTENT))
        }
        Err(e) if e.kind == ErrorKind::Forbidden => {
            let users: Vec<String> = net
                .endpoints
                .iter()
                .map(|ep| format!("id:\"{}\"", &ep.container[..ep.container.len().min(12)]))
                .collect();
            Err(ApiError {
                status: StatusCode::FORBIDDEN,
                message: format!(
                    "error while removing network: network {} has active endpoints ({})",
                    net.name,
                    users.join(", ")
                ),
            })
        }
        Err(e) => Err(docker_error(e)),
    }
}

/// `POST /networks/prune?filters=`: the custom networks without endpoints that pass the
/// `label`/`label!`/`until` filters go.
async fn prune(
    docker: &Docker,
    engine: &Arc<Engine>,
    query: &str,
) -> Result<Response<Body>, ApiError> {
    let f = query::filters(query, &["label", "label!", "until"])?;
    let until = match f.get("until").and_then(|s| s.iter().next()) {
        Some(u) => Some(until_secs(u)?),
        None => None,
    };
    let before = engine.network_names().await;
    let known: Vec<(String, String)> = engine
        .netd
        .networks()
        .await
        .into_iter()
        .map(|n| (n.name.clone(), n.id.clone()))
        .collect();
    let out = networks::prune_matching(&engine.netd, |n| {
        n.name != DEFAULT_BRIDGE
            && labels_match(&n.labels, &f)
            && !f.get("label!").is_some_and(|s| {
                s.iter().any(|l| match l.split_once('=') {
                    Some((k, v)) => n.labels.get(k).is_some_and(|x| x == v),
                    None => n.labels.contains_key(l),
                })
            })
            && until.is_none_or(|u| n.created < u)
    })
    .await;
    engine.sync_dns(&before).await;
    docker.shared.watcher.look_now(&docker.shared).await;
    for (name, id) in &known {
        if out.networks_deleted.contains(name) {
            super::events::emit(
                docker,
                "network",
                "destroy",
                id,
                &[("name", name), ("type", "bridge")],
            );
        }
    }
    if let Some(err) = out.error {
        return Err(ApiError::internal(err));
    }
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "NetworksDeleted": out.networks_deleted }),
    ))
}

/// An `until` filter: Unix seconds (with a fraction), RFC 3339, or a duration before now
/// (`10m`, `24h`).
pub(super) fn until_secs(u: &str) -> Result<u64, ApiError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    if let Ok(s) = u.parse::<f64>() {
        return Ok(s.max(0.0) as u64);
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(u) {
        return Ok(t
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default());
    }
    humantime::parse_duration(u)
        .map(|d| now.saturating_sub(d.as_secs()))
        .map_err(|_| ApiError::bad_request(format!("invalid filter 'until={u}'")))
}

/// Docker's 400 for connecting to or disconnecting from `host` or `none`: those are a
/// container's network mode, chosen when it is created.
fn refuse_mode(net: &Network) -> Result<(), ApiError> {
    match MODES.iter().find(|(m, _)| *m == net.name) {
        Some((m, _)) => Err(ApiError::bad_request(format!(
            "container cannot be disconnected from {m} network or connected to {m} network"
        ))),
        None => Ok(()),
    }
}

/// The container a connect or disconnect body names.
fn container_of(v: &serde_json::Value) -> Result<String, ApiError> {
    v.get("Container")
        .and_then(|c| c.as_str())
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .ok_or_else(|| ApiError::bad_request("container is required"))
}

/// `POST /networks/{id}/connect`: `Container` joins the network with
/// `EndpointConfig.{Aliases, IPAMConfig.IPv4Address, MacAddress}` (legacy `Links` become
/// aliases of the linked containers' names on the network, as names resolve there).
async fn connect(
    docker: &Arc<Docker>,
    engine: &Arc<Engine>,
    network: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let mut v = body(req).await?;
    drop_nulls(&mut v);
    let who = container_of(&v)?;
    let cfg = v.get("EndpointConfig").cloned().unwrap_or_default();
    let strings = |k: &str| -> Vec<String> {
        cfg.get(k)
            .and_then(|a| a.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let ipv4_address = match cfg
        .pointer("/IPAMConfig/IPv4Address")
        .and_then(|a| a.as_str())
    {
        None | Some("") => None,
        Some(a) => Some(
            a.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid IPv4 address: {a}")))?,
        ),
    };
    if cfg
        .pointer("/IPAMConfig/IPv6Address")
        .and_then(|a| a.as_str())
        .is_some_and(|a| !a.is_empty())
    {
        return Err(ApiError::bad_request(
            "EndpointConfig.IPAMConfig.IPv6Address is not supported by berth on connect",
        ));
    }
    if let Some(p) = cfg
        .get("GwPriority")
        .and_then(|p| p.as_i64())
        .filter(|p| *p != 0)
    {
        return Err(ApiError::bad_request(format!(
            "EndpointConfig.GwPriority ({p}) is not supported by berth on connect"
        )));
    }
    let mut link_local_ips = Vec::new();
    for a in cfg
        .pointer("/IPAMConfig/LinkLocalIPs")
        .and_then(|a| a.as_array())
        .into_iter()
        .flatten()
    {
        let ip = a
            .as_str()
            .and_then(|s| s.parse().ok())
            .filter(|ip| crate::engine::container_spec::is_link_local(*ip))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "EndpointConfig.IPAMConfig.LinkLocalIPs: {a} is not a link-local address (169.254.0.0/16 or fe80::/10)"
                ))
            })?;
        link_local_ips.push(ip);
    }
    let mut interface_name = None;
    let mut sysctls = Vec::new();
    if let Some(opts) = cfg.get("DriverOpts").and_then(|o| o.as_object()) {
        for (k, v) in opts {
            match (k.as_str(), v.as_str()) {
                (crate::api::container::IFNAME_OPT, Some(name)) => {
                    interface_name = Some(name.to_string())
                }
                (crate::api::container::SYSCTLS_OPT, Some(list)) => {
                    sysctls = crate::api::container::endpoint_sysctls(list).map_err(|e| {
                        ApiError::bad_request(format!("EndpointConfig.DriverOpts.{k}: {e}"))
                    })?
                }
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "EndpointConfig.DriverOpts.{k} is not supported by berth (only {})",
                        crate::api::container::ENDPOINT_OPTS.join(" and ")
                    )));
                }
            }
        }
    }
    let mac_address = cfg
        .get("MacAddress")
        .and_then(|m| m.as_str())
        .filter(|m| !m.is_empty())
        .map(str::to_string);
    let net = find(engine, network).await?;
    refuse_mode(&net)?;
    let rt = docker.rt.clone();
    let rec = tokio::task::spawn_blocking(move || super::containers::find(&rt, &who))
        .await
        .map_err(|e| ApiError::internal(format!("worker task failed: {e}")))??;
    if net.containers.contains_key(&rec.id) {
        return Err(ApiError {
            status: StatusCode::FORBIDDEN,
            message: format!(
                "endpoint with name {} already exists in network {}",
                rec.config.name, net.name
            ),
        });
    }
    let mut aliases = strings("Aliases");
    aliases.sort();
    aliases.dedup();
    // A legacy link `TARGET[:ALIAS]` names the target for the connected container alone.
    let mut links = Vec::new();
    for l in strings("Links") {
        let (target, alias) = l.split_once(':').unwrap_or((&l, &l));
        let (rt, t) = (docker.rt.clone(), target.to_string());
        let found = tokio::task::spawn_blocking(move || super::containers::find(&rt, &t))
            .await
            .map_err(|e| ApiError::internal(format!("worker task failed: {e}")))?;
        let target = found
            .map_err(|_| ApiError::bad_request(format!("could not get container for {target}")))?
            .config
            .name;
        links.push(berth_netd::dns::LinkAlias {
            alias: alias.trim_start_matches('/').to_string(),
            target,
        });
    }
    engine
        .join_network(
            &rec,
            ContainerNetwork {
                name: net.name.clone(),
                aliases,
                ipv4_address,
                mac_address,
                ipv6_address: None,
                priority: 0,
                interface_name,
                link_local_ips,
                gw_priority: 0,
                sysctls,
            },
            links,
        )
        .await
        .map_err(docker_error)?;
    // A stopped container is connected when it starts (the start's events say so).
    if docker.rt.is_running(&rec) {
        super::events::emit(
            docker,
            "network",
            "connect",
            &net.id,
            &[
                ("container", &rec.id),
                ("name", &net.name),
                ("type", &net.driver),
            ],
        );
    }
    Ok(super::containers::empty(StatusCode::OK))
}

/// `POST /networks/{id}/disconnect`: `Container` leaves the network (`Force` changes nothing:
/// a disconnect is always complete).
async fn disconnect(
    docker: &Arc<Docker>,
    engine: &Arc<Engine>,
    network: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let v = body(req).await?;
    let who = container_of(&v)?;
    let net = find(engine, network).await?;
    refuse_mode(&net)?;
    let rt = docker.rt.clone();
    let w = who.clone();
    let rec = tokio::task::spawn_blocking(move || super::containers::find(&rt, &w))
        .await
        .map_err(|e| ApiError::internal(format!("worker task failed: {e}")))??;
    if !net.containers.contains_key(&rec.id) {
        return Err(ApiError {
            status: StatusCode::FORBIDDEN,
            message: format!(
                "container {} is not connected to network {}",
                rec.id, net.name
            ),
        });
    }
    engine
        .leave_network(&rec, &net.name)
        .await
        .map_err(docker_error)?;
    if docker.rt.is_running(&rec) {
        super::events::emit(
            docker,
            "network",
            "disconnect",
            &net.id,
            &[
                ("container", &rec.id),
                ("name", &net.name),
                ("type", &net.driver),
            ],
        );
    }
    Ok(super::containers::empty(StatusCode::OK))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_routes_parse() {
        let p = Route::parse;
        assert_eq!(p(&Method::GET, "/networks"), Some(Route::List));
        assert_eq!(p(&Method::POST, "/networks/create"), Some(Route::Create));
        assert_eq!(p(&Method::POST, "/networks/prune"), Some(Route::Prune));
        assert_eq!(
            p(&Method::GET, "/networks/n1"),
            Some(Route::Inspect("n1".into()))
        );
        assert_eq!(
            p(&Method::POST, "/networks/n1/connect"),
            Some(Route::Connect("n1".into()))
        );
        assert_eq!(p(&Method::PUT, "/networks/n1"), None);
        assert_eq!(p(&Method::GET, "/networks/"), None);
    }

    #[test]
    fn create_bodies_read_as_dockers() {
        let r = create_request(serde_json::json!({
            "Name": "n1", "CheckDuplicate": true, "Driver": "", "Scope": "",
            "IPAM": {"Driver": "", "Options": null, "Config": [{"Subnet": "10.7.1.0/24"}]},
            "ConfigFrom": null, "Options": null, "Labels": {"com.docker.compose.project": "p"},
        }));
        let r = r.expect("create body");
        assert_eq!(r.driver, "bridge");
        assert_eq!(r.ipam.driver, "default");
        assert_eq!(r.labels["com.docker.compose.project"], "p");
        let e = create_request(serde_json::json!({"Name": "n", "Driver": "overlay"}));
        assert!(e.is_err_and(|e| e.message.contains("\"overlay\"")));
        assert!(create_request(serde_json::json!({"Driver": "bridge"})).is_err());
    }

    #[test]
    fn filters_match_as_dockers() {
        let n: Network = serde_json::from_value(serde_json::json!({
            "Name": "proj_default", "Id": "abcdef", "Created": "", "Scope": "local",
            "Driver": "bridge", "EnableIPv4": true, "EnableIPv6": false,
            "IPAM": {"Config": []}, "Internal": false, "Attachable": false, "Ingress": false,
            "Containers": {}, "Options": {}, "Labels": {"com.docker.compose.project": "proj"},
        }))
        .expect("network");
        let f = |q: &str| {
            query::filters(
                &format!("filters={q}"),
                &["name", "id", "label", "driver", "type", "dangling"],
            )
            .unwrap_or_default()
        };
        assert!(
            matches(&n, &f(r#"{"label":["com.docker.compose.project=proj"]}"#)).unwrap_or(false)
        );
        assert!(!matches(&n, &f(r#"{"label":["com.docker.compose.project=x"]}"#)).unwrap_or(true));
        assert!(
            matches(
                &n,
                &f(r#"{"name":["proj_"],"type":["custom"],"dangling":["true"]}"#)
            )
            .unwrap_or(false)
        );
        assert!(!matches(&n, &f(r#"{"type":["builtin"]}"#)).unwrap_or(true));
        assert!(matches(&n, &f(r#"{"type":["x"]}"#)).is_err());
        let host = mode_network("host").expect("host");
        assert_eq!((host.driver.as_str(), host.id.len()), ("host", 64));
        assert!(matches(&host, &f(r#"{"type":["builtin"]}"#)).unwrap_or(false));
        assert!(!matches(&host, &f(r#"{"dangling":["true"]}"#)).unwrap_or(true));
        assert_eq!(mode_network("none").map(|n| n.driver), Some("null".into()));
        assert!(mode_network("n1").is_none());
    }
}
