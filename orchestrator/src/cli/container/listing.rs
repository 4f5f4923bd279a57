//! What `container ls`, `inspect` and `logs` print.

use super::*;

/// A container as `ls --format` sees it: docker's `ps --format json` fields, all strings.
pub(super) fn ls_row(
    rt: &Runtime,
    rec: &berth_runtime::container::Record,
    st: &berth_runtime::container::State,
    nets: Option<&ContainerNetworks>,
    no_trunc: bool,
) -> serde_json::Value {
    let running = st.status == Status::Running && rt.is_running(rec);
    let ago = |t: SystemTime| {
        let d = SystemTime::now().duration_since(t).unwrap_or_default();
        format!(
            "{} ago",
            humantime::format_duration(Duration::from_secs(d.as_secs()))
        )
    };
    let (status, state) = match (st.status, running) {
        (Status::Running, true) => (
            format!("Up {}", st.started_at.map(ago).unwrap_or_default())
                .trim_end_matches(" ago")
                .to_string(),
            "running",
        ),
        (Status::Created, _) => ("Created".to_string(), "created"),
        // Recorded as running but its shim is gone (killed, or the host rebooted).
        (Status::Running, false) => ("Dead (shim gone)".to_string(), "dead"),
        _ => (
            format!(
                "Exited ({}) {}",
                st.exit_code.unwrap_or(0),
                st.finished_at.map(ago).unwrap_or_default()
            ),
            "exited",
        ),
    };
    let mut cmd = shell_words::join(&rec.config.args);
    if !no_trunc && cmd.chars().count() > 20 {
        cmd = cmd.chars().take(19).collect::<String>() + "…";
    }
    let image = std::fs::read_to_string(rec.dir.join(IMAGE_REF_FILE))
        .ok()
        .or_else(|| rec.config.labels.get(crate::engine::labels::IMAGE).cloned())
        .or_else(|| {
            std::fs::read_to_string(
                rec.dir
                    .join(berth_runtime::image::store::CONTAINER_IMAGE_ID_FILE),
            )
            .ok()
        })
        .map(|i| {
            let i = i.trim().to_string();
            match i.strip_prefix("sha256:") {
                Some(h) if !no_trunc => h.chars().take(12).collect(),
                _ => i,
            }
        })
        .unwrap_or_else(|| match &rec.config.rootfs {
            RootfsSource::Dir(d) => d.display().to_string(),
            RootfsSource::Layers(_) => String::new(),
        });
    let mut ports = Vec::new();
    let mut networks = Vec::new();
    if let Some(n) = nets {
        networks.extend(n.names.iter().cloned());
        for p in &n.ports {
            // Display names the host address only when one was given.
            let any = if p.host_ip.is_none() { "0.0.0.0:" } else { "" };
            ports.push(format!("{any}{p}"));
        }
    }
    let mounts: Vec<String> = rec
        .config
        .mounts
        .iter()
        .map(|m| match m {
            MountSpec::Bind { source, .. } => source.display().to_string(),
            MountSpec::Volume { name, .. } => name.clone(),
            MountSpec::Tmpfs { target, .. } => target.display().to_string(),
        })
        .collect();
    let labels: Vec<String> = rec
        .config
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let id = if no_trunc { &rec.id[..] } else { &rec.id[..12] };
    serde_json::json!({
        "ID": id,
        "Names": rec.config.name,
        "Image": image,
        "Command": format!("{cmd:?}"),
        "CreatedAt": humantime::format_rfc3339_seconds(st.created_at).to_string(),
        "RunningFor": ago(st.created_at),
        "Status": status,
        "State": state,
        "Ports": ports.join(", "),
        "Networks": networks.join(","),
        "Labels": labels.join(","),
        "Mounts": mounts.join(","),
    })
}

/// The file in a container's dir that keeps the image reference the user gave (`ls` shows it).
pub(super) use berth_runtime::container::IMAGE_REF_FILE;

pub(super) fn ls(rt: &Runtime, g: &GlobalOpts, a: LsArgs) -> anyhow::Result<ExitCode> {
    let nets = container_networks(g);
    let mut filters: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in &a.filter {
        let (k, v) = f
            .split_once('=')
            .with_context(|| format!("--filter {f:?}: expected KEY=VALUE"))?;
        if !matches!(
            k,
            "name" | "id" | "status" | "label" | "network" | "ancestor" | "exited"
        ) {
            bail!(
                "--filter {f:?}: unknown key {k:?} (name, id, status, label, network, ancestor, exited)"
            );
        }
        filters
            .entry(k.to_string())
            .or_default()
            .push(v.to_string());
    }
    let last = if a.latest { Some(1) } else { a.last };
    // A status or exit-code filter looks at stopped containers without -a.
    let everything =
        a.all || last.is_some() || filters.contains_key("status") || filters.contains_key("exited");
    // Newest first, as docker.
    let mut all = rt.list();
    all.reverse();
    let mut rows: Vec<serde_json::Value> = Vec::new();
    for (rec, st) in &all {
        let row = ls_row(rt, rec, st, nets.get(&rec.id), a.no_trunc);
        let field = |k: &str| row[k].as_str().unwrap_or_default().to_string();
        let matches = |key: &str, test: &dyn Fn(&str) -> bool| {
            filters
                .get(key)
                .is_none_or(|vals| vals.iter().any(|v| test(v)))
        };
        let keep = matches("name", &|v| rec.config.name.contains(v))
            && matches("id", &|v| rec.id.starts_with(v))
            && matches("status", &|v| field("State") == v)
            && matches("label", &|v| match v.split_once('=') {
                Some((k, val)) => rec.config.labels.get(k).is_some_and(|x| x == val),
                None => rec.config.labels.contains_key(v),
            })
            && matches("network", &|v| field("Networks").split(',').any(|n| n == v))
            && matches("ancestor", &|v| field("Image") == v)
            && matches("exited", &|v| {
                field("State") == "exited"
                    && st.exit_code.map(|c| c.to_string()).as_deref() == Some(v)
            });
        if keep && (everything || row["State"] == "running") {
            rows.push(row);
        }
    }
    if let Some(n) = last {
        rows.truncate(n);
    }
    let field = |r: &serde_json::Value, k: &str| r[k].as_str().unwrap_or_default().to_string();
    if a.quiet {
        for r in &rows {
            println!("{}", field(r, "ID"));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let template = match a.format.as_deref() {
        Some("json") => {
            for r in &rows {
                println!("{r}");
            }
            return Ok(ExitCode::SUCCESS);
        }
        Some(t) if t != "table" => t.to_string(),
        _ => "table {{.ID}}\\t{{.Image}}\\t{{.Command}}\\t{{.RunningFor}}\\t{{.Status}}\\t{{.Ports}}\\t{{.Names}}"
            .to_string(),
    };
    let tpl = crate::cli::format::Template::parse(&template)?;
    print!(
        "{}",
        tpl.render_all(&rows, &|f| match f {
            "ID" => "CONTAINER ID".into(),
            "RunningFor" => "CREATED".into(),
            f => crate::cli::format::default_header(f),
        })
    );
    Ok(ExitCode::SUCCESS)
}

/// An RFC 3339 time, or a duration meaning "that long ago".
pub(super) fn parse_when(s: &str) -> anyhow::Result<SystemTime> {
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Ok(t);
    }
    let d = humantime::parse_duration(s)
        .with_context(|| format!("{s:?} is neither an RFC 3339 time nor a duration (10m)"))?;
    Ok(SystemTime::now() - d)
}

pub(super) fn show_logs(rt: &Runtime, a: LogsArgs) -> anyhow::Result<ExitCode> {
    let rec = rt.resolve(&a.container)?;
    let tail = match a.tail.as_str() {
        "all" | "-1" => None,
        n => Some(n.parse().with_context(|| format!("invalid --tail {n:?}"))?),
    };
    let opts = LogOptions {
        tail,
        timestamps: a.timestamps,
        since: a.since.as_deref().map(parse_when).transpose()?,
        until: a.until.as_deref().map(parse_when).transpose()?,
    };
    let mut alive = || rt.is_running(&rec);
    let follow: Option<&mut dyn FnMut() -> bool> = if a.follow { Some(&mut alive) } else { None };
    logs::print(&rec.log_path(), &opts, &mut StdSink, follow)?;
    Ok(ExitCode::SUCCESS)
}

/// CPU % over a one-second sample, as `docker stats` (100 % = one CPU); `format` is `table`
/// (the default), `json` (one object per line) or a template over Docker's fields
/// (`Container`, `ID`, `Name`, `CPUPerc`, `MemUsage`, `MemPerc`, `NetIO`, `BlockIO`, `PIDs`).
pub(crate) fn stats(
    rt: &Runtime,
    names: &[String],
    no_stream: bool,
    format: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let template = match format {
        None | Some("table") | Some("json") => None,
        Some(t) => Some(super::super::format::Template::parse(t)?),
    };
    loop {
        let recs: Vec<_> = if names.is_empty() {
            rt.list()
                .into_iter()
                .filter(|(r, _)| rt.is_running(r))
                .map(|(r, _)| r)
                .collect()
        } else {
            names
                .iter()
                .map(|n| rt.resolve(n))
                .collect::<Result<_, _>>()?
        };
        let first: Vec<_> = recs.iter().map(|r| rt.stats(r)).collect();
        let t0 = std::time::Instant::now();
        std::thread::sleep(Duration::from_secs(1));
        let dt = t0.elapsed().as_nanos() as f64;
        let mut rows = Vec::new();
        for (rec, before) in recs.iter().zip(first) {
            let (Some((a, _, _)), Some((b, rx, tx))) = (before, rt.stats(rec)) else {
                continue;
            };
            let cpu = (b.cpu_ns.saturating_sub(a.cpu_ns)) as f64 / dt * 100.0;
            let limit = b.memory_limit.unwrap_or_else(host_memory);
            let mem_pct = if limit > 0 {
                b.memory as f64 / limit as f64 * 100.0
            } else {
                0.0
            };
            rows.push(serde_json::json!({
                "Container": &rec.id[..12],
                "ID": &rec.id[..12],
                "Name": rec.config.name,
                "CPUPerc": format!("{cpu:.2}%"),
                "MemUsage": format!("{} / {}", human_bytes(b.memory), human_bytes(limit)),
                "MemPerc": format!("{mem_pct:.2}%"),
                "NetIO": format!("{} / {}", human_bytes(rx), human_bytes(tx)),
                "BlockIO": format!("{} / {}", human_bytes(b.io_read), human_bytes(b.io_write)),
                "PIDs": b.pids.to_string(),
            }));
        }
        if format == Some("json") {
            for r in &rows {
                println!("{r}");
            }
        } else if let Some(t) = &template {
            print!(
                "{}",
                t.render_all(&rows, &super::super::format::default_header)
            );
        } else {
            stats_table(&rows);
        }
        if no_stream {
            return Ok(ExitCode::SUCCESS);
        }
    }
}

fn stats_table(rows: &[serde_json::Value]) {
    println!(
        "{:<12}  {:<20}  {:>7}  {:>22}  {:>6}  {:>20}  {:>20}  {:>5}",
        "CONTAINER ID",
        "NAME",
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "NET I/O",
        "BLOCK I/O",
        "PIDS"
    );
    let s = |r: &serde_json::Value, k: &str| r[k].as_str().unwrap_or_default().to_string();
    for r in rows {
        println!(
            "{:<12}  {:<20}  {:>7}  {:>22}  {:>6}  {:>20}  {:>20}  {:>5}",
            s(r, "ID"),
            s(r, "Name"),
            s(r, "CPUPerc"),
            s(r, "MemUsage"),
            s(r, "MemPerc"),
            s(r, "NetIO"),
            s(r, "BlockIO"),
            s(r, "PIDs")
        );
    }
}

/// The host's memory: the limit `stats` shows for a container without one, as Docker does.
fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok())
        })
        .map_or(0, |k| k * 1024)
}
