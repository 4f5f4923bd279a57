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
    rows.retain(|r| args.orphans || project.services.contains_key(&r.service));
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
            println!("{}", compose_row(&project.name, r, !args.no_trunc));
        }
    } else if let Some(t) = template {
        let values: Vec<Value> = rows
            .iter()
            .map(|r| compose_row(&project.name, r, !args.no_trunc))
            .collect();
        print!("{}", t.render_all(&values, &super::format::default_header));
    } else {
        table(&project.name, &rows, !args.no_trunc);
    }
    Ok(ExitCode::SUCCESS)
}

/// Compose's table: NAME IMAGE COMMAND SERVICE CREATED STATUS PORTS, columns as wide as their
/// longest cell.
fn table(project: &str, rows: &[PsRow], trunc: bool) {
    let head = [
        "NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS", "PORTS",
    ];
    let keys = [
        "Name",
        "Image",
        "Command",
        "Service",
        "RunningFor",
        "Status",
        "Ports",
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let v = compose_row(project, r, trunc);
            keys.iter()
                .map(|k| v[*k].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .collect();
    let width = |i: usize| {
        cells
            .iter()
            .map(|c| c[i].chars().count())
            .chain([head[i].len()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..head.len()).map(width).collect();
    let line = |c: &[String]| {
        let mut out = String::new();
        for (i, cell) in c.iter().enumerate() {
            if i + 1 == c.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}   ", w = widths[i]));
            }
        }
        out.trim_end().to_string()
    };
    println!("{}", line(&head.map(String::from)));
    for c in &cells {
        println!("{}", line(c));
    }
}

/// One row with Compose's field names and forms: `ID` (12 hex digits when `trunc`), `Name`,
/// `Names`, `Image`, `Command` (quoted, cut to 20 characters when `trunc`), `Project`,
/// `Service`, `CreatedAt`, `RunningFor`, `State`, `Status` (Docker's line), `Health`,
/// `ExitCode`, `Labels`, `LocalVolumes`, `Mounts`, `Networks` (comma-joined strings), `Ports`,
/// `Publishers` (`URL`, `TargetPort`, `PublishedPort`, `Protocol`) and `Size`.
pub(super) fn compose_row(project: &str, r: &PsRow, trunc: bool) -> Value {
    let health = r.health.clone().unwrap_or_default();
    let mut status = if r.status_line.is_empty() {
        r.status.clone()
    } else {
        r.status_line.clone()
    };
    if r.status == "running" && !health.is_empty() {
        status.push_str(&format!(" ({health})"));
    }
    let publishers: Vec<Value> = r.ports.iter().filter_map(|p| publisher(p)).collect();
    let id = if trunc {
        r.id.chars().take(12).collect()
    } else {
        r.id.clone()
    };
    let labels: Vec<String> = r.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    json!({
        "Command": quote(&if trunc { ellipsis(&r.command, 20) } else { r.command.clone() }),
        "CreatedAt": created_at(r.created),
        "ExitCode": r.exit_code.unwrap_or(0),
        "Health": health,
        "ID": id,
        "Image": r.image,
        "Labels": labels.join(","),
        "LocalVolumes": r.local_volumes.to_string(),
        "Mounts": r.mounts.join(","),
        "Name": r.name,
        "Names": r.name,
        "Networks": r.networks.join(","),
        "Ports": r.ports.join(", "),
        "Project": project,
        "Publishers": publishers,
        "RunningFor": r.running_for,
        "Service": r.service,
        "Size": "0B",
        "State": r.status,
        "Status": status,
    })
}

/// Go's time printing of a UTC instant, as Compose shows `CreatedAt`:
/// `2026-12-07 13:22:41 +0000 UTC`.
fn created_at(secs: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    let iso = humantime::format_rfc3339_seconds(t).to_string();
    format!(
        "{} +0000 UTC",
        iso.trim_end_matches('Z').replacen('T', " ", 1)
    )
}

/// `s` cut to `max` characters, its last one an ellipsis, as Docker's tables cut commands.
fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// `s` in double quotes with quotes, backslashes and control characters escaped, as Go's
/// `strconv.Quote` writes the command Docker's tables show.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
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
            created: 1_796_649_761,
            status_line: "Up 3 seconds".into(),
            running_for: "4 seconds ago".into(),
            labels: [("a".to_string(), "1".to_string()), ("b".into(), "2".into())].into(),
            mounts: vec!["p_data".into(), "/srv".into()],
            local_volumes: 1,
            networks: vec!["p_default".into()],
        };
        let v = compose_row("p", &r, true);
        assert_eq!(v["Service"], "web");
        assert_eq!(v["State"], "running");
        assert_eq!(v["Status"], "Up 3 seconds (healthy)");
        assert_eq!(v["Command"], "\"nginx -g daemon off;\"");
        assert_eq!(v["CreatedAt"], "2026-12-07 13:22:41 +0000 UTC");
        assert_eq!(v["Labels"], "a=1,b=2");
        assert_eq!(v["Mounts"], "p_data,/srv");
        assert_eq!(v["LocalVolumes"], "1");
        assert_eq!(v["Size"], "0B");
        assert_eq!(
            quote(&ellipsis("sh -c 'echo \"a\"; sleep 3600'", 20)),
            "\"sh -c 'echo \\\"a\\\"; sl…\""
        );
        assert_eq!(compose_row("p", &r, false)["ID"], "abc");
        assert_eq!(v["Health"], "healthy");
        assert_eq!(v["ExitCode"], 0);
        assert_eq!(
            v["Publishers"],
            json!([{"URL": "0.0.0.0", "TargetPort": 80, "PublishedPort": 8080, "Protocol": "tcp"}])
        );
        assert!(publisher("bad").is_none());
    }
}
