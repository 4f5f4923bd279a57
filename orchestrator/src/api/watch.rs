//! `POST /v1/project/watch`: the daemon follows the services' `develop.watch` rules and
//! streams what it does as NDJSON until the client closes the stream (Ctrl-C in `berth
//! watch`), which ends the watch.

use serde::{Deserialize, Serialize};

use super::project::ProjectRequest;

/// Body of `POST /v1/project/watch`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WatchRequest {
    pub project: ProjectRequest,
    /// Services to watch (empty: every service with `develop.watch` rules).
    #[serde(default)]
    pub services: Vec<String>,
}

/// One line of the watch stream: what the daemon noticed or did, in the order it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WatchEvent {
    /// The watch is set up: these host paths are followed for `service`.
    Watching { service: String, paths: Vec<String> },
    /// A batch of `changes` changed paths matched a rule of `service`; its action runs now.
    Syncing {
        service: String,
        action: String,
        changes: usize,
    },
    /// Files were written into (and deleted from) the service's containers.
    Synced {
        service: String,
        copied: usize,
        deleted: usize,
        elapsed_ms: u64,
    },
    /// The service's containers were restarted.
    Restarted { service: String },
    /// The rule's command ran in a container of the service with this exit code.
    Exec {
        service: String,
        container: String,
        code: i32,
    },
    /// The service's image was rebuilt and the service recreated.
    Rebuilt { service: String },
    /// An action failed; the watch goes on.
    Error { service: String, message: String },
}

impl std::fmt::Display for WatchEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WatchEvent::Watching { service, paths } => {
                write!(f, "Watching {} for service \"{service}\"", paths.join(", "))
            }
            WatchEvent::Syncing {
                service,
                action,
                changes,
            } => {
                let verb = match action.as_str() {
                    "rebuild" => "Rebuilding",
                    "restart" => "Restarting",
                    _ => "Syncing",
                };
                let what = if *changes == 1 {
                    "1 change was".to_string()
                } else {
                    format!("{changes} changes were")
                };
                write!(f, "{verb} service \"{service}\" after {what} detected")
            }
            WatchEvent::Synced {
                service,
                copied,
                deleted,
                elapsed_ms,
            } => write!(
                f,
                "Synced service \"{service}\": {copied} copied, {deleted} deleted in {elapsed_ms} ms"
            ),
            WatchEvent::Restarted { service } => write!(f, "Restarted service \"{service}\""),
            WatchEvent::Exec {
                service,
                container,
                code,
            } => write!(
                f,
                "Ran the sync+exec command of service \"{service}\" in {container}: exit {code}"
            ),
            WatchEvent::Rebuilt { service } => {
                write!(f, "Rebuilt and recreated service \"{service}\"")
            }
            WatchEvent::Error { service, message } => {
                write!(f, "error: service \"{service}\": {message}")
            }
        }
    }
}
