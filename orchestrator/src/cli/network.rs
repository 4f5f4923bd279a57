//! `berth network …`: networks (issue 5).
//!
//! Until the daemon lands (issue 6) the CLI drives netd as a library against the instance
//! selected by `--root`, taking the instance lock for the duration of the command.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use berth_netd::ipam::Ipv4Net;
use berth_netd::ports::PortMapping;
use berth_netd::state::NetnsRef;
use berth_netd::{Config, EndpointRequest, Netd, NetworkCreate};
use clap::{Args, Subcommand};

use super::GlobalOpts;

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
#[derive(Args, Debug)]
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
    /// Publish a port, [HOST_IP:]HOST_PORT:CONTAINER_PORT[/PROTO] (repeatable)
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<PortMapping>,
}

async fn open(g: &GlobalOpts) -> anyhow::Result<Arc<Netd>> {
    Netd::open(Config::new(&g.root))
        .await
        .with_context(|| format!("cannot open the network state under {}", g.root.display()))
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

pub fn run(g: &GlobalOpts, cmd: NetworkCommand) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    rt.block_on(run_async(g, cmd))
}

async fn run_async(g: &GlobalOpts, cmd: NetworkCommand) -> anyhow::Result<ExitCode> {
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
            let n = open(g).await?;
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
            println!("{}", spec.id);
        }
        NetworkCommand::Ls { quiet } => {
            let n = open(g).await?;
            let nets = n.networks().await;
            if quiet {
                for x in &nets {
                    println!("{}", short(&x.id));
                }
            } else {
                println!(
                    "{:<12}  {:<20}  {:<7}  {:<18}  {:<15}  INTERNAL",
                    "NETWORK ID", "NAME", "DRIVER", "SUBNET", "GATEWAY"
                );
                for x in &nets {
                    println!(
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
            let n = open(g).await?;
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
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        NetworkCommand::Rm { networks } => {
            let n = open(g).await?;
            let mut failed = false;
            for key in &networks {
                match n.remove_network(key).await {
                    Ok(x) => println!("{}", x.name),
                    Err(e) => {
                        eprintln!("berth: cannot remove network {key}: {e}");
                        failed = true;
                    }
                }
            }
            if failed {
                return Ok(ExitCode::from(super::EXIT_BERTH_ERROR));
            }
        }
        NetworkCommand::Prune => {
            let n = open(g).await?;
            for x in n.networks().await {
                match n.remove_network(&x.id).await {
                    Ok(_) => println!("Deleted network {}", x.name),
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
            let n = open(g).await?;
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
                println!("{} {} {}", e.ifname, e.address, e.host_ifname);
            }
        }
        NetworkCommand::Disconnect { network, container } => {
            let n = open(g).await?;
            n.detach(&container, Some(&network))
                .await
                .with_context(|| format!("cannot disconnect {container} from network {network}"))?;
        }
        NetworkCommand::Reconcile => {
            let n = open(g).await?;
            let r = n.reconcile().await;
            for rep in &r.repairs {
                println!("repaired in {:?}: {}", rep.duration, rep.what);
            }
            for e in &r.errors {
                eprintln!("berth: not repaired: {e}");
            }
            println!("reconcile took {:?}", r.duration);
            if !r.errors.is_empty() {
                return Ok(ExitCode::from(super::EXIT_BERTH_ERROR));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
