//! `berth network …`: networks (issue 5).
//!
//! The daemon owns the instance's netd (and its lock), so the CLI sends the command to the
//! daemon (`POST /v1/network`), which runs [`execute`] on its netd and returns the output.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use berth_netd::ipam::Ipv4Net;
use berth_netd::ports::PortMapping;
use berth_netd::state::NetnsRef;
use berth_netd::{EndpointRequest, Netd, NetworkCreate};
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
    /// Subnet in CIDR form (default: the next free /24 of the pool)
    #[arg(long)]
    pub subnet: Option<Ipv4Net>,
    /// Gateway address (default: the subnet's first address)
    #[arg(long)]
    pub gateway: Option<Ipv4Addr>,
    /// Range automatic addresses come from
    #[arg(long)]
    pub ip_range: Option<Ipv4Net>,
    /// No egress from the network
    #[arg(long)]
    pub internal: bool,
    /// Enable IPv6 (not supported yet: refused with an error)
    #[arg(long)]
    pub ipv6: bool,
    /// MTU (default: the host's egress interface's)
    #[arg(long)]
    pub mtu: Option<u32>,
    /// Label KEY=VALUE (repeatable)
    #[arg(long = "label")]
    pub labels: Vec<String>,
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
            let spec = n
                .create_network(NetworkCreate {
                    name: a.name.clone(),
                    subnet: a.subnet,
                    gateway: a.gateway,
                    ip_range: a.ip_range,
                    internal: a.internal,
                    enable_ipv6: a.ipv6,
                    mtu: a.mtu,
                    labels,
                })
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
            }
        }
        NetworkCommand::Inspect { networks } => {
            let st = n.state().await;
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
                    "MTU": x.mtu,
                    "Labels": x.labels,
                    "Created": x.created,
                    "Endpoints": eps,
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
            out!(o, "reconcile took {:?}", r.duration);
            if !r.errors.is_empty() {
                o.code = super::EXIT_BERTH_ERROR;
                return Ok(());
            }
        }
    }
    Ok(())
}
