//! `GET /containers/{id}/top?ps_args=` (`docker top`): as dockerd does, the host's `ps` with
//! the client's arguments (default `-ef`), keeping the rows whose PID is one of the
//! container's (its cgroup's, the list `berth container top` shows).

use std::sync::Arc;

use hyper::{Response, StatusCode};

use super::containers::{blocking, find};
use super::errors::ApiError;
use super::{Body, Docker, json, query};

/// `GET /containers/{id}/top`: `{Titles, Processes}`; 409 when it is not running.
pub(super) async fn top(
    docker: &Arc<Docker>,
    what: &str,
    query: &str,
) -> Result<Response<Body>, ApiError> {
    let args = query::get(query, "ps_args")
        .filter(|a| !a.trim().is_empty())
        .unwrap_or_else(|| "-ef".into());
    let rt = docker.rt.clone();
    let w = what.to_string();
    let (titles, procs) = blocking(move || {
        let rec = find(&rt, &w)?;
        // A paused container's processes are listed too (ps reads them frozen).
        if !rt.is_running(&rec) {
            return Err(ApiError {
                status: StatusCode::CONFLICT,
                message: format!("Container {} is not running", rec.id),
            });
        }
        let pids = rt.pids(&rec);
        let out = std::process::Command::new("ps")
            .args(args.split_whitespace())
            .output()
            .map_err(|e| ApiError::internal(format!("running ps: {e}")))?;
        if !out.status.success() {
            return Err(ApiError::internal(format!(
                "ps: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        parse_ps(&String::from_utf8_lossy(&out.stdout), &pids)
    })
    .await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"Titles": titles, "Processes": procs}),
    ))
}

/// `ps` output as Docker answers it: the header's words as titles, and for each row of one
/// of `pids` its fields, the last title taking the rest of the line (the command).
fn parse_ps(out: &str, pids: &[i32]) -> Result<(Vec<String>, Vec<Vec<String>>), ApiError> {
    let mut lines = out.lines();
    let titles: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let pid_at = titles
        .iter()
        .position(|t| t == "PID")
        .ok_or_else(|| ApiError::internal("Couldn't find PID field in ps output"))?;
    let mut procs = Vec::new();
    for line in lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < titles.len() {
            continue;
        }
        let Ok(pid) = fields[pid_at].parse::<i32>() else {
            continue;
        };
        if !pids.contains(&pid) {
            continue;
        }
        let last = titles.len() - 1;
        let mut row: Vec<String> = fields[..last].iter().map(|f| f.to_string()).collect();
        row.push(fields[last..].join(" "));
        procs.push(row);
    }
    Ok((titles, procs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_rows_of_the_container_with_the_command_whole() {
        let out = "UID  PID  PPID  C STIME TTY TIME CMD\n\
                   root 1 0 0 10:00 ? 00:00:01 /sbin/init\n\
                   root 42 41 0 10:01 ? 00:00:00 sleep 60 now\n";
        let (titles, procs) = parse_ps(out, &[42]).unwrap_or_default();
        assert_eq!(titles.len(), 8);
        assert_eq!(procs.len(), 1);
        assert_eq!(procs[0][1], "42");
        assert_eq!(procs[0][7], "sleep 60 now");
        assert!(parse_ps("USER CMD\nroot x\n", &[1]).is_err());
    }
}
