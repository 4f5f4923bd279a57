//! `berth ps` as `docker compose ps` prints it: the table, `--format json` (one object per
//! line, Compose's field names), `--format TEMPLATE`, `-q`, `--services`, and the
//! `--status`/`--filter status=` selections.

use std::process::ExitCode;

use anyhow::bail;
use serde_json::{Value, json};

use super::GlobalOpts;
use super::compose_args::PsArgs;
use super::compose_lifecycle::runtime;
use crate::api::client::Client;
use crate::api::project::PsRow;

/// The states `--status` takes, as Compose lists them.
const STATES: [&str; 7] = [
    "paused",
    "restarting",
    "removing",
    "running",
    "dead",
    "created",
    "exited",
];

/// `berth ps`.
pub fn ps(g: &GlobalOpts, args: PsArgs) -> anyhow::Result<ExitCode> {
    let mut statuses = args.status.clone();
    for f in &args.filter {
        match f.split_once('=') {
            Some(("status", v)) => statuses.push(v.to_string()),
            _ => bail!("--filter {f:?}: only status=STATE is supported (as Compose)"),
        }
    }
    for s in &statuses {
        if !STATES.contains(&s.as_str()) {
            bail!("--status {s:?}: use one of {}", STATES.join(", "));
        }
    }
    let template = match args.format.as_deref() {
        None | Some("table") | Some("json") => None,
        Some(t) => Some(super::format::Template::parse(t)?),
    };
    let project = super::compose_args::load_project(g, &[], true)?;
    // A status selection looks at stopped containers too.
    let all = args.all || !statuses.is_empty();
    let mut rows: Vec<PsRow> = runtime()?.block_on(async {
        let client = Client::connect_or_start(&g.root, &g.run).await?;
        anyhow::Ok(client.ps(&project.name, all).await?)
    })?;
    rows.retain(|r| args.service_names.is_empty() || args.service_names.contains(&r.service));
    rows.retain(|r| statuses.is_empty() || statuses.contains(&r.status));
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    if args.quiet {
        rows.iter().for_each(|r| println!("{}", r.id));
    } else if args.services {
        let mut s: Vec<&str> = rows.iter().map(|r| r.service.as_str()).collect();
        s.sort_unstable();
        s.dedup();
        s.iter().for_each(|r| println!("{r}"));
    } else if args.format.as_deref() == Some("json") {
        for r in &rows {
            println!("{}", compose_row(&project.name, r));
        }
    } else if let Some(t) = template {
        let values: Vec<Value> = rows.iter().map(|r| compose_row(&project.name, r)).collect();
        print!("{}", t.render_all(&values, &super::format::default_header));
    } else {
        table(&rows);
    }
    Ok(ExitCode::SUCCESS)
}

fn table(rows: &[PsRow]) {
    println!(
        "{:<28} {:<12} {:<28} {:<20} PORTS",
        "NAME", "SERVICE", "COMMAND", "STATUS"
    );
    for r in rows {
        let status = match (&r.health, r.exit_code) {
            (Some(h), _) if r.status == "running" => format!("running ({h})"),
            (_, Some(c)) if r.status != "running" => format!("{} ({c})", r.status),
            _ => r.status.clone(),
        };
        let mut cmd = r.command.clone();
        if cmd.len() > 26 {
            cmd.truncate(25);
            cmd.push('…');
        }
        println!(
            "{:<28} {:<12} {:<28} {:<20} {}",
            r.name,
            r.service,
            cmd,
            status,
            r.ports.join(", ")
        );
    }
}

/// One row with Compose's field names: `ID`, `Name`, `Names`, `Image`, `Command`, `Project`,
/// `Service`, `State`, `Status`, `Health` (empty without a check), `ExitCode`, `Ports` and
/// `Publishers` (`URL`, `TargetPort`, `PublishedPort`, `Protocol`).
pub(super) fn compose_row(project: &str, r: &PsRow) -> Value {
    let health = r.health.clone().unwrap_or_default();
    let status = match r.status.as_str() {
        "running" if health.is_empty() => "Up".to_string(),
        "running" => format!("Up ({health})"),
        "paused" => "Up (Paused)".to_string(),
        "exited" => format!("Exited ({})", r.exit_code.unwrap_or(0)),
        "created" => "Created".to_string(),
        other => other.to_string(),
    };
    let publishers: Vec<Value> = r.ports.iter().filter_map(|p| publisher(p)).collect();
    json!({
        "ID": r.id,
        "Name": r.name,
        "Names": r.name,
        "Image": r.image,
        "Command": r.command,
        "Project": project,
        "Service": r.service,
        "State": r.status,
        "Status": status,
        "Health": health,
        "ExitCode": r.exit_code.unwrap_or(0),
        "Ports": r.ports.join(", "),
        "Publishers": publishers,
    })
}

/// `HOST_IP:HOST_PORT->PORT/PROTO` as Compose's publisher object.
fn publisher(p: &str) -> Option<Value> {
    let (host, target) = p.split_once("->")?;
    let (ip, published) = host.rsplit_once(':')?;
    let (port, proto) = target.split_once('/').unwrap_or((target, "tcp"));
    Some(json!({
        "URL": ip,
        "TargetPort": port.parse::<u16>().ok()?,
        "PublishedPort": published.parse::<u16>().ok()?,
        "Protocol": proto,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_carry_composes_field_names() {
        let r = PsRow {
            id: "abc".into(),
            name: "p-web-1".into(),
            service: "web".into(),
            image: "nginx".into(),
            command: "nginx -g daemon off;".into(),
            status: "running".into(),
            health: Some("healthy".into()),
            exit_code: None,
            ports: vec!["0.0.0.0:8080->80/tcp".into()],
        };
        let v = compose_row("p", &r);
        assert_eq!(v["Service"], "web");
        assert_eq!(v["State"], "running");
        assert_eq!(v["Status"], "Up (healthy)");
        assert_eq!(v["Health"], "healthy");
        assert_eq!(v["ExitCode"], 0);
        assert_eq!(
            v["Publishers"],
            json!([{"URL": "0.0.0.0", "TargetPort": 80, "PublishedPort": 8080, "Protocol": "tcp"}])
        );
        assert!(publisher("bad").is_none());
    }
}
