//! Running one container from the CLI: create, connect its networks through the daemon, write
//! its name files, start it, and follow it in the foreground.

use super::*;

pub(super) fn run_container(
    rt: &Runtime,
    g: &GlobalOpts,
    a: RunArgs,
    start: bool,
) -> anyhow::Result<ExitCode> {
    let (cfg, image_id) = build_config(rt, &g.root, &a)?;
    // -P: every port the image exposes ("80/tcp"), each on a free host port.
    let exposed: Vec<String> = match (a.publish_all, a.rootfs.is_none(), a.args.first()) {
        (true, true, Some(image)) => berth_runtime::image::ImageStore::open(&g.root)
            .and_then(|s| s.resolve(image))
            .ok()
            .and_then(|i| {
                i.config
                    .config()
                    .as_ref()
                    .and_then(|c| c.exposed_ports().clone())
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let connect = network_request(&a, &exposed)?;
    if let Some(p) = &a.cidfile
        && p.exists()
    {
        bail!("--cidfile {}: the file exists already", p.display());
    }
    let rec = rt.create(cfg).map_err(start_error)?;
    if let Some(p) = &a.cidfile
        && let Err(e) = std::fs::write(p, &rec.id)
    {
        let _ = rt.remove(&rec, true);
        return Err(anyhow::Error::new(e).context(format!("writing --cidfile {}", p.display())));
    }
    for name in &rec.config.anonymous_volumes {
        if let Err(e) = rt.volume_mark(name, BTreeMap::new(), true) {
            let _ = rt.remove(&rec, true);
            rt.remove_anonymous_volumes(&rec);
            return Err(e.into());
        }
    }
    if let Some(id) = image_id {
        let p = rec
            .dir
            .join(berth_runtime::image::store::CONTAINER_IMAGE_ID_FILE);
        std::fs::write(&p, id).with_context(|| format!("writing {}", p.display()))?;
        if let Some(reference) = a.args.first() {
            let _ = std::fs::write(rec.dir.join(IMAGE_REF_FILE), reference);
        }
    }
    if connect.is_none()
        && let Err(e) = local_name_files(&a, &rec)
    {
        let _ = rt.remove(&rec, true);
        rt.remove_anonymous_volumes(&rec);
        return Err(e);
    }
    if let Some(mut req) = connect {
        req.container = rec.id.clone();
        if let Err(e) = daemon_post::<Vec<String>>(g, "/container/connect", &req) {
            let _ = rt.remove(&rec, true);
            rt.remove_anonymous_volumes(&rec);
            return Err(e.context(format!("cannot connect container {}", rec.config.name)));
        }
    }
    // Restart policies are the daemon's: make sure it watches this instance.
    if a.restart != "no" {
        daemon_post::<serde_json::Value>(g, "/engine", &serde_json::json!({}))
            .context("starting the daemon that enforces --restart")?;
    }
    let attached = is_named_network(&network_of(&a));
    let code = if !start {
        println!("{}", rec.id);
        Ok(ExitCode::SUCCESS)
    } else if a.detach {
        match rt.start(&rec) {
            Ok(_) => {
                println!("{}", rec.id);
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => Err(start_error(e)),
        }
    } else {
        start_foreground(rt, &rec, a.interactive, a.tty)
    };
    // `--rm`: the shim removed the container when it exited (or failed to start); its
    // endpoints and DNS names go too (a detached one is swept by the daemon when it exits).
    if attached && a.rm && (!a.detach || code.is_err()) && !rec.dir.exists() {
        disconnect(g, &rec.id);
    }
    code
}

/// The `--network` value in effect: `bridge` (made on first use) unless one is given, as
/// with Docker.
pub(super) fn network_of(a: &RunArgs) -> String {
    match a.network.first().map(String::as_str) {
        Some("default") | None => DEFAULT_BRIDGE.into(),
        Some(n) => n.into(),
    }
}

/// A bridge network that netd attaches (not none, host or container:X).
pub(super) fn is_named_network(n: &str) -> bool {
    !matches!(n, "none" | "host" | "") && !n.starts_with("container:")
}

/// What to ask the daemon to attach, for a bridge network.
/// A free host port for `proto` right now (the kernel's ephemeral range, as Docker's).
pub(super) fn free_port(proto: &str) -> anyhow::Result<u16> {
    let port = if proto == "udp" {
        std::net::UdpSocket::bind("0.0.0.0:0").and_then(|s| s.local_addr())
    } else {
        std::net::TcpListener::bind("0.0.0.0:0").and_then(|s| s.local_addr())
    }
    .context("finding a free host port")?
    .port();
    Ok(port)
}

/// Docker's `-p` forms, with a free host port where none is given (`80`, `127.0.0.1::80`).
pub(super) fn parse_publish(p: &str) -> anyhow::Result<berth_netd::ports::PortMapping> {
    let (body, proto) = match p.rsplit_once('/') {
        Some((b, proto)) => (b, proto),
        None => (p, "tcp"),
    };
    let parts: Vec<&str> = body.split(':').collect();
    let filled = match parts.as_slice() {
        [cont] => format!("{}:{cont}/{proto}", free_port(proto)?),
        [ip, "", cont] => format!("{ip}:{}:{cont}/{proto}", free_port(proto)?),
        ["", cont] => format!("{}:{cont}/{proto}", free_port(proto)?),
        _ => p.to_string(),
    };
    if filled != p && body.contains('-') {
        bail!("-p {p:?}: a port range needs its host ports (HOST-RANGE:CONTAINER-RANGE)");
    }
    filled
        .parse::<berth_netd::ports::PortMapping>()
        .with_context(|| format!("-p {p:?}"))
}

pub(super) fn network_request(
    a: &RunArgs,
    exposed: &[String],
) -> anyhow::Result<Option<ContainerConnect>> {
    let network = network_of(a);
    if !is_named_network(&network) {
        if a.network.len() > 1 {
            bail!("--network {network} cannot be combined with other networks");
        }
        return Ok(None);
    }
    // More --network values: further bridge networks (eth1 ...), no aliases or fixed address.
    let mut more = Vec::new();
    for n in a.network.iter().skip(1) {
        if !is_named_network(n) {
            bail!("--network {n} cannot be combined with other networks");
        }
        more.push(ContainerNetwork {
            name: if n == "default" {
                DEFAULT_BRIDGE.into()
            } else {
                n.clone()
            },
            ..ContainerNetwork::default()
        });
    }
    let mut ports = Vec::new();
    for p in a.publish.iter().chain(exposed) {
        ports.push(parse_publish(p)?);
    }
    Ok(Some(ContainerConnect {
        container: String::new(),
        networks: std::iter::once(ContainerNetwork {
            name: network,
            aliases: a.network_alias.clone(),
            ipv4_address: a.ip,
            mac_address: a.mac_address.clone(),
        })
        .chain(more)
        .collect(),
        ports,
        extra_hosts: extra_hosts(a)?,
        dns_search: a.dns_search.clone(),
        dns_options: a.dns_option.clone(),
    }))
}

/// `--add-host NAME:IP` (or NAME=IP) pairs.
pub(super) fn extra_hosts(a: &RunArgs) -> anyhow::Result<Vec<(String, String)>> {
    a.add_host
        .iter()
        .map(|h| {
            let (name, ip) = h
                .split_once(['=', ':'])
                .with_context(|| format!("--add-host {h:?}: expected NAME:IP"))?;
            if ip != "host-gateway" && ip.parse::<std::net::IpAddr>().is_err() {
                bail!("--add-host {h:?}: {ip:?} is not an IP address or host-gateway");
            }
            Ok((name.to_string(), ip.to_string()))
        })
        .collect()
}

/// `--add-host`, `--dns*` for a container without a bridge network: its /etc/hosts and
/// /etc/resolv.conf (bind-mounted at start) are edited in place.
pub(super) fn local_name_files(
    a: &RunArgs,
    rec: &berth_runtime::container::Record,
) -> anyhow::Result<()> {
    let network = network_of(a);
    let hosts = extra_hosts(a)?;
    if !hosts.is_empty() {
        let p = rec.dir.join("hosts");
        let mut content = std::fs::read_to_string(&p).unwrap_or_default();
        for (name, ip) in hosts {
            let ip = match (ip.as_str(), network.as_str()) {
                ("host-gateway", "host") => "127.0.0.1".to_string(),
                ("host-gateway", _) => {
                    bail!("--add-host {name}:host-gateway needs a bridge network or host")
                }
                _ => ip,
            };
            let addr: std::net::IpAddr = ip
                .parse()
                .with_context(|| format!("--add-host {name}:{ip}: not an IP address"))?;
            content.push_str(&crate::engine::resolv::hosts_entry(addr, &name)?);
        }
        std::fs::write(&p, content).with_context(|| format!("writing {}", p.display()))?;
    }
    if !a.dns.is_empty() || !a.dns_search.is_empty() || !a.dns_option.is_empty() {
        let p = rec.dir.join("resolv.conf");
        let old = std::fs::read_to_string(&p).unwrap_or_default();
        let out =
            crate::engine::resolv::override_resolv(&old, &a.dns, &a.dns_search, &a.dns_option)?;
        std::fs::write(&p, out).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

/// One JSON call to the instance's daemon (started when none answers).
pub(super) fn daemon_post<T: serde::de::DeserializeOwned>(
    g: &GlobalOpts,
    route: &str,
    body: &impl serde::Serialize,
) -> anyhow::Result<T> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    rt.block_on(async {
        let client = crate::api::client::Client::connect_or_start(&g.root, &g.run).await?;
        anyhow::Ok(client.post(route, body).await?)
    })
}

/// Drops a removed container's endpoints and DNS names in the daemon; reports failures.
pub(super) fn disconnect(g: &GlobalOpts, id: &str) {
    match daemon_post::<Vec<String>>(g, "/container/disconnect", &vec![id.to_string()]) {
        Ok(failures) => {
            for f in failures {
                eprintln!("berth: {f}");
            }
        }
        Err(e) => eprintln!("berth: detaching {id} from its networks: {e:#}"),
    }
}

/// Whether netd has endpoints of this container (read from its state file: no daemon needed).
pub(super) fn has_endpoints(root: &Path, id: &str) -> bool {
    netd_state(root).endpoints.iter().any(|e| e.container == id)
}

/// netd's recorded networks and endpoints, read from its state file (empty when none).
pub(super) fn netd_state(root: &Path) -> berth_netd::state::State {
    std::fs::read(root.join("netd").join("state.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<berth_netd::state::State>(&b).ok())
        .unwrap_or_default()
}

/// `NetworkSettings` of `inspect`, in Docker's shape: networks with address, gateway,
/// aliases, MAC; published ports as `"80/tcp": [{"HostIp", "HostPort"}]`.
pub(super) fn network_settings(netd: &berth_netd::state::State, id: &str) -> serde_json::Value {
    let mut networks = serde_json::Map::new();
    let mut ports = serde_json::Map::new();
    for ep in netd.endpoints.iter().filter(|e| e.container == id) {
        let net = netd.networks.get(&ep.network);
        networks.insert(
            net.map(|n| n.name.clone())
                .unwrap_or_else(|| ep.network.clone()),
            serde_json::json!({
                "NetworkID": ep.network,
                "IPAddress": ep.address.to_string(),
                "IPPrefixLen": net.map(|n| n.subnet.prefix()),
                "Gateway": net.map(|n| n.gateway.to_string()),
                "MacAddress": ep.mac,
                "Aliases": ep.aliases,
                "Interface": ep.ifname,
            }),
        );
        for p in &ep.ports {
            for (host, cont) in p.pairs() {
                let binding = serde_json::json!({
                    "HostIp": p.host_ip.map(|i| i.to_string()).unwrap_or_else(|| "0.0.0.0".into()),
                    "HostPort": host.to_string(),
                });
                let key = format!("{cont}/{}", p.protocol.as_str());
                match ports.get_mut(&key).and_then(|v| v.as_array_mut()) {
                    Some(list) => list.push(binding),
                    None => {
                        ports.insert(key, serde_json::json!([binding]));
                    }
                }
            }
        }
    }
    // Docker's top-level address: the first network's.
    let first = netd.endpoints.iter().find(|e| e.container == id);
    serde_json::json!({
        "Networks": networks,
        "Ports": ports,
        "IPAddress": first.map(|e| e.address.to_string()).unwrap_or_default(),
    })
}

/// `rm`: removes the container and, when it was on bridge networks, its endpoints and DNS
/// names (through the daemon, which owns netd).
pub(super) fn remove_container(
    rt: &Runtime,
    g: &GlobalOpts,
    what: &str,
    force: bool,
    volumes: bool,
) -> anyhow::Result<()> {
    let rec = rt.resolve(what)?;
    rt.remove(&rec, force)?;
    if has_endpoints(&g.root, &rec.id) {
        disconnect(g, &rec.id);
    }
    if volumes && let Some(e) = rt.remove_anonymous_volumes(&rec).into_iter().next() {
        return Err(e.into());
    }
    Ok(())
}

/// Starts a created container in the foreground: attached with `-i`/`-t`, else following its
/// log; returns its exit status (also used by `berth run`).
pub(crate) fn start_foreground(
    rt: &Runtime,
    rec: &berth_runtime::container::Record,
    interactive: bool,
    tty: bool,
) -> anyhow::Result<ExitCode> {
    let rec = rec.clone();
    if interactive || tty {
        let (_, watch, stream) = rt.start_attached(&rec, interactive).map_err(start_error)?;
        attach_loop(rt, &rec, stream, interactive)?;
        let info = watch.wait()?;
        return Ok(exit_code(info.code));
    }
    // Foreground: follow the log while the container runs, then exit with its status.
    let mut follower = logs::Follower::new(&rec.log_path(), true);
    let proxy = SigProxy::new();
    let (_, watch) = rt.start_watched(&rec).map_err(start_error)?;
    let opts = LogOptions::default();
    let mut sink = StdSink;
    loop {
        for e in follower.poll() {
            let _ = logs::LogSink::entry(&mut sink, &e, &opts);
        }
        let mut fds = vec![nix::poll::PollFd::new(
            watch.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        if let Some(p) = &proxy {
            fds.push(nix::poll::PollFd::new(
                std::os::fd::AsFd::as_fd(&p.fd),
                nix::poll::PollFlags::POLLIN,
            ));
        }
        if nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(50u16)).is_err() {
            break;
        }
        let ready = |f: &nix::poll::PollFd| f.revents().is_some_and(|r| !r.is_empty());
        if fds.get(1).is_some_and(ready)
            && let Some(p) = &proxy
        {
            p.forward(rt, &rec);
        }
        if ready(&fds[0]) {
            break;
        }
    }
    let info = watch.wait()?;
    for e in follower.poll() {
        let _ = logs::LogSink::entry(&mut sink, &e, &opts);
    }
    let _ = std::io::stdout().flush();
    Ok(exit_code(info.code))
}
