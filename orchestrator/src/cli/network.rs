//! `berth network …`: networks.
//!
//! The daemon owns the instance's netd (and its lock), so each command is a call of the
//! network routes of the API (typed requests and answers, Docker's shapes); this file holds
//! the clap arguments, turns them into those requests and renders the answers as the terminal
//! shows them.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use berth_netd::ipam::{IpamError, Ipv4Net};
use berth_netd::ipam6::{Ipam6Error, Ipv6Net};
use berth_netd::ports::PortMapping;
use clap::{Args, Subcommand};

use super::{EXIT_BERTH_ERROR, GlobalOpts};
use crate::api::client::{Client, ClientError};
use crate::api::network::{
    EndpointConfig, EndpointIpamConfig, Ipam, IpamConfig, Network, NetworkConnectRequest,
    NetworkCreateRequest, NetworkDisconnectRequest, NetworkPruneResponse, OPT_BRIDGE_NAME, OPT_MTU,
    ReconcileResponse,
};

/// `berth network` subcommands.
#[derive(Subcommand, Debug)]
pub enum NetworkCommand {
    /// Create a network
    Create(CreateArgs),
    /// List networks
    #[command(alias = "list")]
    Ls {
        /// Only print network ids
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show networks and their endpoints as JSON
    Inspect {
        /// Network names or ids
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove networks
    #[command(alias = "remove")]
    Rm {
        /// Network names or ids
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove every network without endpoints
    Prune {
        /// Do not ask (berth never asks); accepted as `docker network prune -f` is typed
        #[arg(short, long)]
        force: bool,
    },
    /// Connect a running container's network namespace to a network
    Connect(ConnectArgs),
    /// Disconnect a container from a network
    Disconnect {
        /// Network name or id
        network: String,
        /// Container id
        container: String,
    },
    /// Repair kernel state from the recorded networks (bridges, veths, nft table) and print
    /// what was repaired
    Reconcile,
}

/// `berth network create`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Network name
    pub name: String,
    /// Driver (only `bridge`)
    #[arg(short, long, default_value = "bridge")]
    pub driver: String,
    /// Subnet in CIDR form, IPv4 or IPv6, at most one of each (default: the next free /24 of
    /// the pool; with --ipv6 also the next free /64 of fd00:b5e7::/48)
    #[arg(long)]
    pub subnet: Vec<Cidr>,
    /// Gateway address, IPv4 or IPv6, at most one of each (default: the subnet's first
    /// address; for IPv6 the IPv4 gateway's counterpart)
    #[arg(long)]
    pub gateway: Vec<IpAddr>,
    /// Range automatic addresses come from
    #[arg(long)]
    pub ip_range: Option<Ipv4Net>,
    /// No egress from the network
    #[arg(long)]
    pub internal: bool,
    /// Enable IPv6 (dual stack: an IPv6 subnet next to the IPv4 one); implied by an IPv6
    /// --subnet
    #[arg(long)]
    pub ipv6: bool,
    /// MTU (default: the host's egress interface's)
    #[arg(long)]
    pub mtu: Option<u32>,
    /// Label KEY=VALUE (repeatable)
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Driver option KEY=VALUE, as Docker's bridge driver names them (repeatable):
    /// com.docker.network.bridge.name, .enable_icc, .enable_ip_masquerade,
    /// .host_binding_ipv4, com.docker.network.driver.mtu,
    /// com.docker.network.container_iface_prefix
    #[arg(short = 'o', long = "opt", value_parser = key_value)]
    pub opts: Vec<(String, String)>,
    /// Address reserved by host name, NAME=IP, inside the network's subnet of its family:
    /// never given to a container (repeatable)
    #[arg(long = "aux-address", value_parser = aux_address)]
    pub aux_addresses: Vec<(String, IpAddr)>,
}

/// A `KEY=VALUE` flag value.
fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

/// An `--aux-address NAME=IP` value.
fn aux_address(s: &str) -> Result<(String, IpAddr), String> {
    let (k, v) = key_value(s)?;
    let ip = v
        .parse()
        .map_err(|_| format!("{s:?}: {v:?} is not an IP address"))?;
    Ok((k, ip))
}

/// A `--subnet` value: either family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cidr {
    /// An IPv4 prefix.
    V4(Ipv4Net),
    /// An IPv6 prefix.
    V6(Ipv6Net),
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.contains(':') {
            s.parse()
                .map(Cidr::V6)
                .map_err(|e: Ipam6Error| e.to_string())
        } else {
            s.parse()
                .map(Cidr::V4)
                .map_err(|e: IpamError| e.to_string())
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cidr::V4(n) => n.fmt(f),
            Cidr::V6(n) => n.fmt(f),
        }
    }
}

/// `berth network connect`.
#[derive(Args, Debug)]
pub struct ConnectArgs {
    /// Network name or id
    pub network: String,
    /// Container id
    pub container: String,
    /// The container's network namespace file
    #[arg(long, conflicts_with = "pid", required_unless_present = "pid")]
    pub netns: Option<PathBuf>,
    /// A process in the container (its /proc/PID/ns/net is used)
    #[arg(long)]
    pub pid: Option<u32>,
    /// Static IPv4 address
    #[arg(long)]
    pub ip: Option<Ipv4Addr>,
    /// MAC address of the container end (default: derived from its IPv4 address)
    #[arg(long)]
    pub mac: Option<String>,
    /// DNS alias (repeatable)
    #[arg(long = "alias")]
    pub aliases: Vec<String>,
    /// Extra link-local address on the interface, 169.254.0.0/16 or fe80::/10 (repeatable)
    #[arg(long = "link-local-ip", value_parser = link_local_ip)]
    pub link_local_ips: Vec<IpAddr>,
    /// Publish a port, [HOST_IP:]HOST_PORT:CONTAINER_PORT[/PROTO] (repeatable)
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<PortMapping>,
}

/// A `--link-local-ip` value: an address of 169.254.0.0/16 or fe80::/10.
pub fn link_local_ip(s: &str) -> Result<IpAddr, String> {
    let ip: IpAddr = s
        .parse()
        .map_err(|_| format!("{s:?} is not an IP address"))?;
    let ok = match ip {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => a.is_unicast_link_local(),
    };
    if !ok {
        return Err(format!(
            "{s} is not a link-local address (169.254.0.0/16 or fe80::/10)"
        ));
    }
    Ok(ip)
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// What a command prints and how it ends, built before anything is written so that the
/// rendering is testable without a daemon.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rendered {
    pub out: String,
    pub err: String,
    pub code: u8,
}

impl Rendered {
    fn out(&mut self, line: impl std::fmt::Display) {
        self.out.push_str(&format!("{line}\n"));
    }

    fn err(&mut self, line: impl std::fmt::Display) {
        self.err.push_str(&format!("{line}\n"));
    }

    /// A failed call: the daemon's words (or why it was not reached), status 125.
    fn failed(&mut self, e: &ClientError) {
        self.err(format!("berth: {}", e.message()));
        self.code = EXIT_BERTH_ERROR;
    }
}

pub fn run(g: &GlobalOpts, cmd: NetworkCommand) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let o = rt.block_on(async {
        let client = Client::connect_or_start(&g.root, &g.run).await?;
        anyhow::Ok(execute(&client, cmd).await)
    })?;
    print!("{}", o.out);
    eprint!("{}", o.err);
    Ok(ExitCode::from(o.code))
}

/// The create request of `berth network create`: one `IPAM.Config` entry per `--subnet`,
/// each `--gateway` and `--ip-range` with the first pool of its family (a pool of its own
/// when there is none), the MTU as Docker's driver option.
pub fn create_request(a: &CreateArgs) -> NetworkCreateRequest {
    let mut config: Vec<IpamConfig> = a
        .subnet
        .iter()
        .map(|s| IpamConfig {
            subnet: Some(s.to_string()),
            ..Default::default()
        })
        .collect();
    let v6 = |c: &IpamConfig| c.subnet.as_deref().is_some_and(|s| s.contains(':'));
    for g in &a.gateway {
        let slot = config
            .iter_mut()
            .find(|c| c.subnet.is_some() && c.gateway.is_none() && v6(c) == g.is_ipv6());
        match slot {
            Some(c) => c.gateway = Some(g.to_string()),
            None => config.push(IpamConfig {
                gateway: Some(g.to_string()),
                ..Default::default()
            }),
        }
    }
    for (host, ip) in &a.aux_addresses {
        let entry = config
            .iter_mut()
            .find(|c| c.subnet.is_some() && v6(c) == ip.is_ipv6());
        let entry = match entry {
            Some(c) => c,
            None => {
                config.push(IpamConfig::default());
                let last = config.len() - 1;
                &mut config[last]
            }
        };
        entry
            .auxiliary_addresses
            .insert(host.clone(), ip.to_string());
    }
    if let Some(r) = a.ip_range {
        match config
            .iter_mut()
            .find(|c| c.subnet.is_some() && !v6(c) && c.ip_range.is_none())
        {
            Some(c) => c.ip_range = Some(r.to_string()),
            None => config.push(IpamConfig {
                ip_range: Some(r.to_string()),
                ..Default::default()
            }),
        }
    }
    let mut labels = BTreeMap::new();
    for l in &a.labels {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        labels.insert(k.to_string(), v.to_string());
    }
    NetworkCreateRequest {
        name: a.name.clone(),
        driver: a.driver.clone(),
        internal: a.internal,
        enable_ipv6: a.ipv6,
        ipam: Ipam {
            config,
            ..Ipam::default()
        },
        options: a
            .opts
            .iter()
            .cloned()
            .chain(a.mtu.map(|m| (OPT_MTU.to_string(), m.to_string())))
            .collect(),
        labels,
    }
}

/// `network ls`: the table (or the short ids), and a warning for each network whose subnet
/// overlaps a host route or address, so `ls` does not hide a shadowed LAN.
pub fn render_ls(nets: &[Network], quiet: bool) -> Rendered {
    let mut o = Rendered::default();
    if quiet {
        for x in nets {
            o.out(short(&x.id));
        }
        return o;
    }
    o.out(format!(
        "{:<12}  {:<20}  {:<7}  {:<18}  {:<15}  INTERNAL",
        "NETWORK ID", "NAME", "DRIVER", "SUBNET", "GATEWAY"
    ));
    for x in nets {
        let v4 = x.ipv4_config();
        o.out(format!(
            "{:<12}  {:<20}  {:<7}  {:<18}  {:<15}  {}",
            short(&x.id),
            x.name,
            x.driver,
            v4.and_then(|c| c.subnet.as_deref()).unwrap_or_default(),
            v4.and_then(|c| c.gateway.as_deref()).unwrap_or_default(),
            x.internal
        ));
    }
    for c in nets.iter().flat_map(|x| &x.conflicts) {
        o.err(format!("berth: warning: {c}"));
    }
    o
}

/// One network as `berth network inspect` prints it.
pub fn inspect_json(x: &Network) -> serde_json::Value {
    let v4 = x.ipv4_config();
    let v6 = x.ipv6_config();
    serde_json::json!({
        "Id": x.id,
        "Name": x.name,
        "Driver": x.driver,
        "Bridge": x.options.get(OPT_BRIDGE_NAME).cloned().unwrap_or_default(),
        "Subnet": v4.and_then(|c| c.subnet.clone()),
        "Gateway": v4.and_then(|c| c.gateway.clone()),
        "IPRange": v4.and_then(|c| c.ip_range.clone()),
        "Internal": x.internal,
        "EnableIPv6": x.enable_ipv6,
        "IPv6Subnet": v6.and_then(|c| c.subnet.clone()),
        "IPv6Gateway": v6.and_then(|c| c.gateway.clone()),
        "IPv6IPRange": v6.and_then(|c| c.ip_range.clone()),
        "AuxiliaryAddresses": v4
            .into_iter()
            .chain(v6)
            .flat_map(|c| c.auxiliary_addresses.clone())
            .collect::<BTreeMap<_, _>>(),
        "MTU": x.mtu(),
        // The bridge driver's options as Docker names them (bridge name, non-defaults).
        "Options": x.options,
        "Labels": x.labels,
        "Created": x.created_unix,
        "Endpoints": x.endpoints,
        // Host routes/addresses overlapping the subnet, as of the latest reconcile.
        "Conflicts": x.conflicts,
    })
}

/// `network prune`: the networks deleted, then why it stopped if it did.
pub fn render_prune(r: &NetworkPruneResponse) -> Rendered {
    let mut o = Rendered::default();
    for name in &r.networks_deleted {
        o.out(format!("Deleted network {name}"));
    }
    if let Some(e) = &r.error {
        o.err(format!("berth: {e}"));
        o.code = EXIT_BERTH_ERROR;
    }
    o
}

/// `network reconcile`: the repairs, what could not be repaired (status 125), and the subnet
/// conflicts as warnings (the user's to resolve, not a failed repair: status 0).
pub fn render_reconcile(r: &ReconcileResponse) -> Rendered {
    let mut o = Rendered::default();
    for rep in &r.repairs {
        o.out(format!("repaired in {:?}: {}", rep.duration, rep.what));
    }
    for e in &r.errors {
        o.err(format!("berth: not repaired: {e}"));
    }
    for c in &r.conflicts {
        o.err(format!("berth: warning: {c}"));
    }
    o.out(format!("reconcile took {:?}", r.duration));
    if !r.errors.is_empty() {
        o.code = EXIT_BERTH_ERROR;
    }
    o
}

/// Runs a network command through the daemon's network routes.
pub async fn execute(client: &Client, cmd: NetworkCommand) -> Rendered {
    let mut o = Rendered::default();
    match cmd {
        NetworkCommand::Create(a) => match client.network_create(&create_request(&a)).await {
            Ok(r) => o.out(r.id),
            Err(e) => o.failed(&e),
        },
        NetworkCommand::Ls { quiet } => match client.network_list().await {
            Ok(nets) => o = render_ls(&nets, quiet),
            Err(e) => o.failed(&e),
        },
        NetworkCommand::Inspect { networks } => {
            let mut out = Vec::new();
            for key in &networks {
                match client.network_inspect(key).await {
                    Ok(n) => out.push(inspect_json(&n)),
                    Err(e) => {
                        o.failed(&e);
                        return o;
                    }
                }
            }
            match serde_json::to_string_pretty(&out) {
                Ok(text) => o.out(text),
                Err(e) => {
                    o.err(format!("berth: {e}"));
                    o.code = EXIT_BERTH_ERROR;
                }
            }
        }
        NetworkCommand::Rm { networks } => {
            for key in &networks {
                match client.network_remove(key).await {
                    Ok(x) => o.out(x.name),
                    Err(e) => {
                        o.err(format!(
                            "berth: cannot remove network {key}: {}",
                            e.message()
                        ));
                        o.code = EXIT_BERTH_ERROR;
                    }
                }
            }
        }
        NetworkCommand::Prune { force: _ } => match client.network_prune().await {
            Ok(r) => o = render_prune(&r),
            Err(e) => o.failed(&e),
        },
        NetworkCommand::Connect(a) => {
            let req = NetworkConnectRequest {
                container: a.container,
                endpoint_config: EndpointConfig {
                    ipam_config: (a.ip.is_some() || !a.link_local_ips.is_empty()).then(|| {
                        EndpointIpamConfig {
                            ipv4_address: a.ip,
                            link_local_ips: a.link_local_ips.clone(),
                        }
                    }),
                    mac_address: a.mac,
                    aliases: a.aliases,
                },
                netns: a.netns,
                pid: a.pid,
                ports: a.publish,
            };
            match client.network_connect(&a.network, &req).await {
                Ok(r) => {
                    for e in r.endpoints {
                        o.out(format!("{} {} {}", e.ifname, e.address, e.host_ifname));
                    }
                }
                Err(e) => o.failed(&e),
            }
        }
        NetworkCommand::Disconnect { network, container } => {
            let req = NetworkDisconnectRequest {
                container,
                force: false,
            };
            if let Err(e) = client.network_disconnect(&network, &req).await {
                o.failed(&e);
            }
        }
        NetworkCommand::Reconcile => match client.network_reconcile().await {
            Ok(r) => o = render_reconcile(&r),
            Err(e) => o.failed(&e),
        },
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::network::Repair;

    fn args(subnet: &[&str], gateway: &[&str]) -> CreateArgs {
        CreateArgs {
            name: "n".into(),
            driver: "bridge".into(),
            subnet: subnet.iter().map(|s| s.parse().expect("cidr")).collect(),
            gateway: gateway.iter().map(|s| s.parse().expect("ip")).collect(),
            ip_range: None,
            internal: false,
            ipv6: false,
            mtu: None,
            labels: vec!["a=1".into(), "flag".into()],
            opts: Vec::new(),
            aux_addresses: Vec::new(),
        }
    }

    #[test]
    fn opts_and_aux_addresses_reach_the_request() {
        let mut a = args(&["10.9.0.0/24", "fd00:9::/64"], &[]);
        a.opts = vec![key_value("com.docker.network.bridge.enable_icc=false").unwrap()];
        a.aux_addresses = vec![
            aux_address("router=10.9.0.5").unwrap(),
            aux_address("r6=fd00:9::5").unwrap(),
        ];
        let r = create_request(&a);
        assert_eq!(r.options["com.docker.network.bridge.enable_icc"], "false");
        assert_eq!(r.ipam.config[0].auxiliary_addresses["router"], "10.9.0.5");
        assert_eq!(r.ipam.config[1].auxiliary_addresses["r6"], "fd00:9::5");
        assert!(aux_address("router").is_err());
        assert!(aux_address("router=nowhere").is_err());
        assert!(link_local_ip("169.254.3.4").is_ok());
        assert!(
            link_local_ip("10.0.0.1")
                .unwrap_err()
                .contains("not a link-local")
        );
    }

    #[test]
    fn create_flags_become_dockers_create_request() {
        let mut a = args(&["10.9.0.0/24", "fd00:9::/64"], &["fd00:9::1", "10.9.0.1"]);
        a.ip_range = Some("10.9.0.128/25".parse().expect("range"));
        a.mtu = Some(1400);
        let r = create_request(&a);
        assert_eq!(
            r.ipam.config,
            vec![
                IpamConfig {
                    subnet: Some("10.9.0.0/24".into()),
                    ip_range: Some("10.9.0.128/25".into()),
                    gateway: Some("10.9.0.1".into()),
                    ..Default::default()
                },
                IpamConfig {
                    subnet: Some("fd00:9::/64".into()),
                    ip_range: None,
                    gateway: Some("fd00:9::1".into()),
                    ..Default::default()
                },
            ]
        );
        assert_eq!(r.options[OPT_MTU], "1400");
        assert_eq!(r.labels["a"], "1");
        assert_eq!(r.labels["flag"], "");
        // Docker's field names on the wire.
        let v = serde_json::to_value(&r).expect("json");
        assert_eq!(v["IPAM"]["Config"][0]["Subnet"], "10.9.0.0/24");
        assert_eq!(v["Name"], "n");
        assert_eq!(v["EnableIPv6"], false);
        // A gateway without a subnet of its family keeps a pool entry of its own, and two
        // subnets of one family both reach the daemon (which refuses them).
        let r = create_request(&args(&["10.9.0.0/24", "10.8.0.0/24"], &["fd00::1"]));
        assert_eq!(r.ipam.config.len(), 3);
        assert_eq!(r.ipam.config[2].gateway.as_deref(), Some("fd00::1"));
        assert!("fd00::/200".parse::<Cidr>().is_err());
        assert!("10.0.0.0/40".parse::<Cidr>().is_err());
    }

    fn network(name: &str, conflicts: &[&str]) -> Network {
        serde_json::from_value(serde_json::json!({
            "Name": name, "Id": format!("{name}0123456789abcdef"), "Created": "2026-01-01T00:00:00Z",
            "Scope": "local", "Driver": "bridge", "EnableIPv4": true, "EnableIPv6": true,
            "IPAM": {"Driver": "default", "Config": [
                {"Subnet": "10.9.0.0/24", "Gateway": "10.9.0.1"},
                {"Subnet": "fd00:9::/64", "Gateway": "fd00:9::1"}], "Options": {}},
            "Internal": false, "Attachable": false, "Ingress": false, "Containers": {},
            "Options": {OPT_BRIDGE_NAME: "berth-1", OPT_MTU: "1400"}, "Labels": {"k": "v"},
            "Conflicts": conflicts, "CreatedUnix": 7,
        }))
        .expect("network")
    }

    #[test]
    fn ls_renders_the_table_and_warns_of_conflicts() {
        let nets = [network("lan", &["network lan overlaps"]), network("b", &[])];
        let o = render_ls(&nets, false);
        let lines: Vec<&str> = o.out.lines().collect();
        assert_eq!(
            lines[0],
            "NETWORK ID    NAME                  DRIVER   SUBNET              GATEWAY          INTERNAL"
        );
        assert_eq!(
            lines[1],
            "lan012345678  lan                   bridge   10.9.0.0/24         10.9.0.1         false"
        );
        assert_eq!(o.err, "berth: warning: network lan overlaps\n");
        assert_eq!(render_ls(&nets, true).out, "lan012345678\nb0123456789a\n");
    }

    #[test]
    fn inspect_prints_berths_fields() {
        let v = inspect_json(&network("lan", &["c"]));
        assert_eq!(v["Bridge"], "berth-1");
        assert_eq!(v["Subnet"], "10.9.0.0/24");
        assert_eq!(v["IPv6Subnet"], "fd00:9::/64");
        assert_eq!(v["IPv6Gateway"], "fd00:9::1");
        assert_eq!(v["IPRange"], serde_json::Value::Null);
        assert_eq!(v["MTU"], 1400);
        assert_eq!(v["Created"], 7);
        assert_eq!(v["EnableIPv6"], true);
        assert_eq!(v["Conflicts"][0], "c");
        assert_eq!(v["Endpoints"], serde_json::json!([]));
    }

    #[test]
    fn prune_and_reconcile_render_with_their_status() {
        let ok = render_prune(&NetworkPruneResponse {
            networks_deleted: vec!["a".into()],
            error: None,
        });
        assert_eq!((ok.out.as_str(), ok.code), ("Deleted network a\n", 0));
        let stopped = render_prune(&NetworkPruneResponse {
            networks_deleted: vec!["a".into()],
            error: Some("cannot remove network b: boom".into()),
        });
        assert_eq!(stopped.err, "berth: cannot remove network b: boom\n");
        assert_eq!(stopped.code, EXIT_BERTH_ERROR);
        let r = render_reconcile(&ReconcileResponse {
            repairs: vec![Repair {
                what: "bridge up".into(),
                duration: std::time::Duration::from_micros(5),
            }],
            errors: vec![],
            conflicts: vec!["overlap".into()],
            duration: std::time::Duration::from_millis(2),
        });
        assert_eq!(r.out, "repaired in 5µs: bridge up\nreconcile took 2ms\n");
        assert_eq!(r.err, "berth: warning: overlap\n");
        assert_eq!(r.code, 0);
    }
}
