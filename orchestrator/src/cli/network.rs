//! `berth network …`: networks.
//!
//! The daemon owns the instance's netd (and its lock), so the CLI sends the command to the
//! daemon (`POST /v1/network`), which runs [`execute`] on its netd and returns the output.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use berth_netd::ipam::{IpamError, Ipv4Net};
use berth_netd::ipam6::{Ipam6Error, Ipv6Net};
use berth_netd::ports::PortMapping;
use berth_netd::state::NetnsRef;
use berth_netd::{EndpointRequest, Ipv6Create, Netd, NetworkCreate};
use clap::{Args, Subcommand};

use super::GlobalOpts;

/// `berth network` subcommands.
#[derive(Subcommand, Debug, serde::Serialize, serde::Deserialize)]
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
    Prune,
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
#[derive(Args, Debug, serde::Serialize, serde::Deserialize)]
pub struct CreateArgs {
    /// Network name
    pub name: String,
    /// Driver (only `bridge`)
    #[arg(short, long, default_value = "bridge")]
    pub driver: String,
    /// Subnet in CIDR form, IPv4 or IPv6, at most one of each (default: the next free /24 of
    /// the pool; with --ipv6 also the next free /64 of fd00:b5e7::/48)
    #[arg(long)]
    #[serde(default, deserialize_with = "one_or_many")]
    pub subnet: Vec<Cidr>,
    /// Gateway address, IPv4 or IPv6, at most one of each (default: the subnet's first
    /// address; for IPv6 the IPv4 gateway's counterpart)
    #[arg(long)]
    #[serde(default, deserialize_with = "one_or_many")]
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
}

/// The request body keeps accepting what it accepted when `subnet`/`gateway` were single
/// optional values (`null` or one string, as other callers of `POST /v1/network` send), as
/// well as a list.
fn one_or_many<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let items = match <Option<OneOrMany> as serde::Deserialize>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v,
    };
    items
        .iter()
        .map(|s| s.parse().map_err(serde::de::Error::custom))
        .collect()
}

/// A `--subnet` value: either family (a plain CIDR string on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
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

/// `--subnet`/`--gateway` values split by family.
#[derive(Debug, Default, PartialEq, Eq)]
struct Addressing {
    subnet: Option<Ipv4Net>,
    subnet6: Option<Ipv6Net>,
    gateway: Option<Ipv4Addr>,
    gateway6: Option<Ipv6Addr>,
}

impl TryFrom<String> for Cidr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Cidr> for String {
    fn from(c: Cidr) -> String {
        match c {
            Cidr::V4(n) => n.to_string(),
            Cidr::V6(n) => n.to_string(),
        }
    }
}

/// Splits `--subnet`/`--gateway` values by family: at most one of each.
fn by_family(subnets: &[Cidr], gateways: &[IpAddr]) -> anyhow::Result<Addressing> {
    let v4: Vec<Ipv4Net> = subnets
        .iter()
        .filter_map(|c| match c {
            Cidr::V4(n) => Some(*n),
            Cidr::V6(_) => None,
        })
        .collect();
    let v6: Vec<Ipv6Net> = subnets
        .iter()
        .filter_map(|c| match c {
            Cidr::V6(n) => Some(*n),
            Cidr::V4(_) => None,
        })
        .collect();
    let g4: Vec<Ipv4Addr> = gateways
        .iter()
        .filter_map(|g| match g {
            IpAddr::V4(a) => Some(*a),
            IpAddr::V6(_) => None,
        })
        .collect();
    let g6: Vec<Ipv6Addr> = gateways
        .iter()
        .filter_map(|g| match g {
            IpAddr::V6(a) => Some(*a),
            IpAddr::V4(_) => None,
        })
        .collect();
    if v4.len() > 1 || v6.len() > 1 || g4.len() > 1 || g6.len() > 1 {
        bail!("at most one --subnet and one --gateway per address family");
    }
    Ok(Addressing {
        subnet: v4.first().copied(),
        subnet6: v6.first().copied(),
        gateway: g4.first().copied(),
        gateway6: g6.first().copied(),
    })
}

/// `berth network connect`.
#[derive(Args, Debug, serde::Serialize, serde::Deserialize)]
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
    /// Publish a port, [HOST_IP:]HOST_PORT:CONTAINER_PORT[/PROTO] (repeatable)
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<PortMapping>,
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// What a network command printed and how it ended, as the daemon returns it.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct NetworkOutput {
    pub out: String,
    pub err: String,
    pub code: u8,
}

pub fn run(g: &GlobalOpts, cmd: NetworkCommand) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let o: NetworkOutput = rt.block_on(async {
        let client = crate::api::client::Client::connect_or_start(&g.root, &g.run).await?;
        anyhow::Ok(client.post("/network", &cmd).await?)
    })?;
    print!("{}", o.out);
    eprint!("{}", o.err);
    Ok(ExitCode::from(o.code))
}

/// Appends a line to the command's standard output.
macro_rules! out {
    ($o:expr, $($arg:tt)*) => {{
        let _ = writeln!($o.out, $($arg)*);
    }};
}

/// Appends a line to the command's standard error.
macro_rules! err {
    ($o:expr, $($arg:tt)*) => {{
        let _ = writeln!($o.err, $($arg)*);
    }};
}

/// Warns on standard error about every network whose subnet overlaps a host route or address
/// (as of netd's latest reconcile), so `network ls` does not hide a shadowed LAN.
async fn conflict_warnings(n: &Netd, o: &mut NetworkOutput) {
    for c in n
        .last_report()
        .await
        .map(|r| r.conflicts)
        .unwrap_or_default()
    {
        err!(o, "berth: warning: {c}");
    }
}

/// Runs a network command on the daemon's netd; errors become output with status 125.
pub(crate) async fn execute(n: &Arc<Netd>, cmd: NetworkCommand) -> NetworkOutput {
    let mut o = NetworkOutput::default();
    if let Err(e) = run_async(n, cmd, &mut o).await {
        let _ = writeln!(o.err, "berth: {e:#}");
        o.code = super::EXIT_BERTH_ERROR;
    }
    o
}

async fn run_async(
    n: &Arc<Netd>,
    cmd: NetworkCommand,
    o: &mut NetworkOutput,
) -> anyhow::Result<()> {
    match cmd {
        NetworkCommand::Create(a) => {
            if a.driver != "bridge" {
                bail!(
                    "network driver {:?} is not supported (only \"bridge\")",
                    a.driver
                );
            }
            let mut labels = BTreeMap::new();
            for l in &a.labels {
                let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
                labels.insert(k.to_string(), v.to_string());
            }
            let Addressing {
                subnet,
                subnet6,
                gateway,
                gateway6,
            } = by_family(&a.subnet, &a.gateway)?;
            if !a.ipv6 && subnet6.is_none() && gateway6.is_some() {
                bail!("an IPv6 --gateway needs --ipv6 or an IPv6 --subnet");
            }
            let spec = n
                .create_network_with_ipv6(
                    NetworkCreate {
                        name: a.name.clone(),
                        subnet,
                        gateway,
                        ip_range: a.ip_range,
                        internal: a.internal,
                        enable_ipv6: a.ipv6 || subnet6.is_some(),
                        mtu: a.mtu,
                        labels,
                    },
                    Ipv6Create {
                        subnet: subnet6,
                        gateway: gateway6,
                        ip_range: None,
                    },
                )
                .await
                .with_context(|| format!("cannot create network {}", a.name))?;
            out!(o, "{}", spec.id);
        }
        NetworkCommand::Ls { quiet } => {
            let nets = n.networks().await;
            if quiet {
                for x in &nets {
                    out!(o, "{}", short(&x.id));
                }
            } else {
                out!(
                    o,
                    "{:<12}  {:<20}  {:<7}  {:<18}  {:<15}  INTERNAL",
                    "NETWORK ID",
                    "NAME",
                    "DRIVER",
                    "SUBNET",
                    "GATEWAY"
                );
                for x in &nets {
                    out!(
                        o,
                        "{:<12}  {:<20}  {:<7}  {:<18}  {:<15}  {}",
                        short(&x.id),
                        x.name,
                        "bridge",
                        x.subnet.to_string(),
                        x.gateway.to_string(),
                        x.internal
                    );
                }
                conflict_warnings(n, o).await;
            }
        }
        NetworkCommand::Inspect { networks } => {
            let st = n.state().await;
            let conflicts = n
                .last_report()
                .await
                .map(|r| r.conflicts)
                .unwrap_or_default();
            let mut out = Vec::new();
            for key in &networks {
                let Some(x) = st.find_network(key) else {
                    bail!("no such network: {key}");
                };
                let eps: Vec<_> = st.endpoints_of(&x.id).collect();
                out.push(serde_json::json!({
                    "Id": x.id,
                    "Name": x.name,
                    "Driver": "bridge",
                    "Bridge": x.bridge,
                    "Subnet": x.subnet.to_string(),
                    "Gateway": x.gateway.to_string(),
                    "IPRange": x.ip_range.map(|r| r.to_string()),
                    "Internal": x.internal,
                    "EnableIPv6": x.subnet6.is_some(),
                    "IPv6Subnet": x.subnet6.map(|s| s.to_string()),
                    "IPv6Gateway": x.gateway6.map(|g| g.to_string()),
                    "IPv6IPRange": x.ip_range6.map(|r| r.to_string()),
                    "MTU": x.mtu,
                    "Labels": x.labels,
                    "Created": x.created,
                    "Endpoints": eps,
                    // Host routes/addresses overlapping the subnet, as of the latest reconcile.
                    "Conflicts": conflicts
                        .iter()
                        .filter(|c| c.network == x.name)
                        .map(|c| c.to_string())
                        .collect::<Vec<_>>(),
                }));
            }
            out!(o, "{}", serde_json::to_string_pretty(&out)?);
        }
        NetworkCommand::Rm { networks } => {
            let mut failed = false;
            for key in &networks {
                match n.remove_network(key).await {
                    Ok(x) => out!(o, "{}", x.name),
                    Err(e) => {
                        err!(o, "berth: cannot remove network {key}: {e}");
                        failed = true;
                    }
                }
            }
            if failed {
                o.code = super::EXIT_BERTH_ERROR;
                return Ok(());
            }
        }
        NetworkCommand::Prune => {
            for x in n.networks().await {
                match n.remove_network(&x.id).await {
                    Ok(_) => out!(o, "Deleted network {}", x.name),
                    Err(berth_netd::NetdError::NetworkInUse { .. }) => {}
                    Err(e) => {
                        return Err(e).with_context(|| format!("cannot remove network {}", x.name));
                    }
                }
            }
        }
        NetworkCommand::Connect(a) => {
            let netns = match (a.netns, a.pid) {
                (Some(p), _) => NetnsRef::Path(p),
                (None, Some(pid)) => NetnsRef::Pid(pid),
                (None, None) => bail!("give --netns PATH or --pid PID"),
            };
            let eps = n
                .attach(
                    &a.container,
                    netns,
                    vec![EndpointRequest {
                        network: a.network.clone(),
                        ipv4_address: a.ip,
                        ipv6_address: None,
                        mac_address: a.mac,
                        priority: 0,
                        aliases: a.aliases,
                        ports: a.publish,
                    }],
                )
                .await
                .with_context(|| {
                    format!("cannot connect {} to network {}", a.container, a.network)
                })?;
            for e in eps {
                out!(o, "{} {} {}", e.ifname, e.address, e.host_ifname);
            }
        }
        NetworkCommand::Disconnect { network, container } => {
            n.detach(&container, Some(&network))
                .await
                .with_context(|| format!("cannot disconnect {container} from network {network}"))?;
        }
        NetworkCommand::Reconcile => {
            let r = n.reconcile().await;
            for rep in &r.repairs {
                out!(o, "repaired in {:?}: {}", rep.duration, rep.what);
            }
            for e in &r.errors {
                err!(o, "berth: not repaired: {e}");
            }
            // A conflict is the user's to resolve, not a failed repair: a warning, status 0.
            for c in &r.conflicts {
                err!(o, "berth: warning: {c}");
            }
            out!(o, "reconcile took {:?}", r.duration);
            if !r.errors.is_empty() {
                o.code = super::EXIT_BERTH_ERROR;
                return Ok(());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn subnet_and_gateway_split_by_family() {
        let subnets: Vec<Cidr> = ["10.9.0.0/24", "fd00:9::/64"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let gws: Vec<IpAddr> = vec!["10.9.0.1".parse().unwrap(), "fd00:9::1".parse().unwrap()];
        let a = by_family(&subnets, &gws).unwrap();
        assert_eq!(a.subnet.unwrap().to_string(), "10.9.0.0/24");
        assert_eq!(a.subnet6.unwrap().to_string(), "fd00:9::/64");
        assert_eq!(a.gateway.unwrap().to_string(), "10.9.0.1");
        assert_eq!(a.gateway6.unwrap().to_string(), "fd00:9::1");
        assert!("fd00::/200".parse::<Cidr>().is_err());
        assert!("10.0.0.0/40".parse::<Cidr>().is_err());
        let two: Vec<Cidr> = ["10.9.0.0/24", "10.8.0.0/24"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert!(by_family(&two, &[]).is_err());
    }

    #[test]
    fn create_request_body_accepts_null_one_or_many() {
        let old = r#"{"Create": {"name": "b", "driver": "bridge", "subnet": null, "gateway": null,
            "ip_range": null, "internal": false, "ipv6": false, "mtu": null, "labels": []}}"#;
        let NetworkCommand::Create(a) = serde_json::from_str(old).unwrap() else {
            panic!("not a create")
        };
        assert!(a.subnet.is_empty() && a.gateway.is_empty());
        let one = r#"{"Create": {"name": "b", "driver": "bridge", "subnet": "10.9.0.0/24",
            "gateway": "10.9.0.1", "internal": false, "ipv6": false, "labels": []}}"#;
        let NetworkCommand::Create(a) = serde_json::from_str(one).unwrap() else {
            panic!("not a create")
        };
        assert_eq!(a.subnet, vec!["10.9.0.0/24".parse::<Cidr>().unwrap()]);
        assert_eq!(a.gateway, vec!["10.9.0.1".parse::<IpAddr>().unwrap()]);
        // What the CLI sends now round-trips.
        let back: NetworkCommand = serde_json::from_str(
            &serde_json::to_string(&NetworkCommand::Create(CreateArgs {
                subnet: vec![
                    "10.9.0.0/24".parse().unwrap(),
                    "fd00:9::/64".parse().unwrap(),
                ],
                ..a
            }))
            .unwrap(),
        )
        .unwrap();
        let NetworkCommand::Create(b) = back else {
            panic!("not a create")
        };
        assert_eq!(b.subnet.len(), 2);
        assert!(serde_json::from_str::<NetworkCommand>(
            r#"{"Create": {"name": "b", "driver": "bridge", "subnet": "nope", "internal": false, "ipv6": false, "labels": []}}"#
        )
        .is_err());
    }

    /// `berth network create --ipv6` as the daemon runs it, on a netd inside a throwaway
    /// network namespace (root only).
    #[test_with::root()]
    #[test]
    fn create_ipv6_network_through_the_command() {
        let _del = ThrowawayNetns::new("btcli6");
        let ns = _del.0.clone();
        let root = tempfile::tempdir().unwrap();
        let path = format!("/run/netns/{ns}");
        let rootp = root.path().to_path_buf();
        let outs = std::thread::spawn(move || {
            let f = std::fs::File::open(&path).unwrap();
            nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut cfg = berth_netd::Config::new(&rootp);
                cfg.table = Some(format!("berth_cli6_{}", std::process::id()));
                let n = Netd::open(cfg).await.unwrap();
                let create = |name: &str, subnet: Vec<Cidr>, ipv6| {
                    NetworkCommand::Create(CreateArgs {
                        name: name.into(),
                        driver: "bridge".into(),
                        subnet,
                        gateway: vec![],
                        ip_range: None,
                        internal: false,
                        ipv6,
                        mtu: None,
                        labels: vec![],
                    })
                };
                let a = execute(&n, create("v6a", vec![], true)).await;
                let b = execute(
                    &n,
                    create(
                        "v6b",
                        vec![
                            "fd00:77::/64".parse().unwrap(),
                            "10.219.7.0/24".parse().unwrap(),
                        ],
                        false,
                    ),
                )
                .await;
                let i = execute(
                    &n,
                    NetworkCommand::Inspect {
                        networks: vec!["v6a".into(), "v6b".into()],
                    },
                )
                .await;
                let rm = execute(
                    &n,
                    NetworkCommand::Rm {
                        networks: vec!["v6a".into(), "v6b".into()],
                    },
                )
                .await;
                (a, b, i, rm)
            })
        })
        .join()
        .unwrap();
        let (a, b, i, rm) = outs;
        assert_eq!((a.code, b.code, rm.code), (0, 0, 0), "{a:?} {b:?} {rm:?}");
        let v: serde_json::Value = serde_json::from_str(&i.out).unwrap();
        assert_eq!(v[0]["EnableIPv6"], true, "{}", i.out);
        assert_eq!(v[0]["IPv6Subnet"], "fd00:b5e7::/64");
        assert_eq!(v[1]["IPv6Subnet"], "fd00:77::/64");
        assert_eq!(v[1]["IPv6Gateway"], "fd00:77::1");
        assert_eq!(v[1]["Subnet"], "10.219.7.0/24");
    }

    /// A host address that overlaps a network's subnet after it was made: `network
    /// reconcile`, `ls` and `inspect` name it (network, subnet, interface) as a warning, with
    /// status 0, and stop once it is gone. Root only, in a throwaway network namespace.
    #[test_with::root()]
    #[test]
    fn subnet_conflict_is_shown_by_reconcile_ls_and_inspect() {
        let _del = ThrowawayNetns::new("btclic");
        let ns = _del.0.clone();
        let ipn = |args: &[&str]| {
            let st = std::process::Command::new("ip")
                .args(["-n", &ns])
                .args(args)
                .status()
                .unwrap();
            assert!(st.success(), "ip {args:?}");
        };
        // A veth pair stands in for the Wi-Fi NIC (no dummy module on every kernel).
        ipn(&[
            "link", "add", "wifi0", "type", "veth", "peer", "name", "wifi0p",
        ]);
        ipn(&["link", "set", "wifi0", "up"]);
        let root = tempfile::tempdir().unwrap();
        let path = format!("/run/netns/{ns}");
        let rootp = root.path().to_path_buf();
        let nsn = ns.clone();
        let outs = std::thread::spawn(move || {
            let f = std::fs::File::open(&path).unwrap();
            nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut cfg = berth_netd::Config::new(&rootp);
                cfg.table = Some(format!("berth_clic_{}", std::process::id()));
                let n = Netd::open(cfg).await.unwrap();
                let c = execute(
                    &n,
                    NetworkCommand::Create(CreateArgs {
                        name: "lan".into(),
                        driver: "bridge".into(),
                        subnet: vec!["10.219.9.0/24".parse().unwrap()],
                        gateway: vec![],
                        ip_range: None,
                        internal: false,
                        ipv6: false,
                        mtu: None,
                        labels: vec![],
                    }),
                )
                .await;
                // The Wi-Fi joined afterwards is on the same /24.
                let st = std::process::Command::new("ip")
                    .args(["-n", &nsn, "addr", "add", "10.219.9.77/24", "dev", "wifi0"])
                    .status()
                    .unwrap();
                assert!(st.success());
                let r = execute(&n, NetworkCommand::Reconcile).await;
                let ls = execute(&n, NetworkCommand::Ls { quiet: false }).await;
                let i = execute(
                    &n,
                    NetworkCommand::Inspect {
                        networks: vec!["lan".into()],
                    },
                )
                .await;
                let st = std::process::Command::new("ip")
                    .args(["-n", &nsn, "addr", "del", "10.219.9.77/24", "dev", "wifi0"])
                    .status()
                    .unwrap();
                assert!(st.success());
                let r2 = execute(&n, NetworkCommand::Reconcile).await;
                let rm = execute(
                    &n,
                    NetworkCommand::Rm {
                        networks: vec!["lan".into()],
                    },
                )
                .await;
                (c, r, ls, i, r2, rm)
            })
        })
        .join()
        .unwrap();
        let (c, r, ls, i, r2, rm) = outs;
        assert_eq!(
            (c.code, r.code, ls.code, rm.code),
            (0, 0, 0, 0),
            "{c:?} {r:?} {ls:?} {rm:?}"
        );
        for o in [&r, &ls] {
            assert!(
                o.err.contains("berth: warning: network lan (10.219.9.0/24) overlaps host address 10.219.9.77/24 on wifi0"),
                "{o:?}"
            );
        }
        let v: serde_json::Value = serde_json::from_str(&i.out).unwrap();
        assert!(
            v[0]["Conflicts"][0]
                .as_str()
                .unwrap_or("")
                .contains("wifi0"),
            "{}",
            i.out
        );
        assert!(!r2.err.contains("warning"), "{r2:?}");
    }
}
