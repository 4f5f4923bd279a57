//! Running one container from the CLI: lower the flags into a spec, have the daemon make it
//! (`POST /v1/containers/create`, whatever the network mode), then start it and follow it
//! in the foreground, as `berth run` does for one-offs.

use super::*;

pub(super) fn run_container(
    rt: &Runtime,
    g: &GlobalOpts,
    a: RunArgs,
    start: bool,
) -> anyhow::Result<ExitCode> {
    let (name, spec) = run_spec(&a)?;
    let streams = (spec.attach_stdout, spec.attach_stderr);
    // Pulled here, as the docker CLI does, so the progress shows where the user looks.
    if spec.rootfs.is_none() {
        let store = berth_runtime::image::ImageStore::open(&g.root)
            .with_context(|| format!("image store under {}", g.root.display()))?;
        image_for_run(&store, &spec.image, &a.pull)?;
    }
    if let Some(p) = &a.cidfile
        && p.exists()
    {
        bail!("--cidfile {}: the file exists already", p.display());
    }
    let attached = crate::api::container::is_bridge_mode(&spec.host_config.network_mode);
    // The daemon makes every container (its networks, names and restart policy are its
    // own): one request, whatever the network mode.
    let created: Created = daemon_post(g, "/containers/create", &CreateContainer { name, spec })
        .map_err(daemon_message)?;
    let (rec, warnings) = (rt.resolve(&created.id)?, created.warnings);
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    if let Some(p) = &a.cidfile
        && let Err(e) = std::fs::write(p, &rec.id)
    {
        let _ = remove_container(rt, g, &rec.id, true, true);
        return Err(anyhow::Error::new(e).context(format!("writing --cidfile {}", p.display())));
    }
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
        start_foreground_streams(rt, &rec, a.interactive, a.tty, streams)
    };
    // `--rm`: the shim removed the container when it exited (or failed to start); its
    // endpoints and DNS names go too (a detached one is swept by the daemon when it exits).
    if attached && a.rm && (!a.detach || code.is_err()) && !rec.dir.exists() {
        disconnect(g, &rec.id);
    }
    code
}

/// A refusal of the daemon as its own words (the route is no news to the user).
fn daemon_message(e: anyhow::Error) -> anyhow::Error {
    match e.downcast_ref::<crate::api::client::ClientError>() {
        Some(crate::api::client::ClientError::Api { message, .. }) => {
            anyhow::anyhow!("{message}")
        }
        _ => e,
    }
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

/// What the daemon (netd's owner) knows of each container's networks, by id. An instance
/// that never made a bridge network has none, and no daemon is started to say so.
pub(super) fn container_networks(g: &GlobalOpts) -> BTreeMap<String, ContainerNetworks> {
    if !g.root.join("netd").exists() {
        return BTreeMap::new();
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth: cannot start the tokio runtime: {e}");
            return BTreeMap::new();
        }
    };
    let got = rt.block_on(async {
        let client = crate::api::client::Client::connect_or_start(&g.root, &g.run).await?;
        anyhow::Ok(client.get("/containers/networks").await?)
    });
    got.unwrap_or_else(|e| {
        eprintln!("berth: reading the containers' networks from the daemon: {e:#}");
        BTreeMap::new()
    })
}

/// Whether the container has endpoints on bridge networks.
fn has_endpoints(g: &GlobalOpts, id: &str) -> bool {
    container_networks(g).contains_key(id)
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
    if has_endpoints(g, &rec.id) {
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
    start_foreground_streams(rt, rec, interactive, tty, (true, true))
}

/// [`start_foreground`] showing only the streams `-a` asks for (stdout, stderr) when it
/// follows the log.
fn start_foreground_streams(
    rt: &Runtime,
    rec: &berth_runtime::container::Record,
    interactive: bool,
    tty: bool,
    (stdout, stderr): (bool, bool),
) -> anyhow::Result<ExitCode> {
    let shown = |e: &logs::LogEntry| match e.stream.as_str() {
        "stdout" => stdout,
        "stderr" => stderr,
        _ => true,
    };
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
        for e in follower.poll().into_iter().filter(shown) {
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
    for e in follower.poll().into_iter().filter(shown) {
        let _ = logs::LogSink::entry(&mut sink, &e, &opts);
    }
    let _ = std::io::stdout().flush();
    Ok(exit_code(info.code))
}
