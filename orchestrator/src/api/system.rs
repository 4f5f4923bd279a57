//! The daemon's own routes: `GET /v1/ping`, `GET /v1/info`, `GET /v1/events`,
//! `POST /v1/engine`, `POST /v1/shutdown`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What `berth system info` shows: enough to tell which instance answered and how it runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Info {
    pub version: String,
    pub pid: u32,
    pub root: String,
    pub run: String,
    /// How cgroups are mounted on this host (`v2`, `hybrid` or `v1`): decides the limit backend.
    pub cgroup: String,
    pub started_at: String,
    pub uptime_secs: u64,
}

/// One lifecycle event, streamed by `GET /v1/events` as one JSON object per line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// RFC 3339 time the event happened.
    pub time: String,
    /// What kind of object it concerns: daemon, container, network, image, reconcile.
    pub kind: String,
    /// What happened: start, stop, die, create, destroy, repair ...
    pub action: String,
    /// The object's id or name.
    pub id: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

/// Answer of `POST /v1/shutdown`: the daemon stops once it has answered.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShutdownReply {
    /// Always true: the daemon is stopping.
    pub stopping: bool,
}

/// Answer of `POST /v1/engine`: the engine is open (restart policies, DNS and the endpoint
/// sweep run from then on).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct EngineReply {
    /// Always true: the engine is open.
    pub engine: bool,
}
