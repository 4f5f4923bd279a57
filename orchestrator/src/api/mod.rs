//! The daemon API: HTTP/1.1 over `<run>/berth.sock`, JSON bodies, NDJSON for streams.
//!
//! HTTP keeps the socket inspectable with `curl --unix-socket`; the wire types live here so the
//! daemon and the CLI cannot drift apart.

pub mod client;
pub mod container;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Path prefix of every route, so a later incompatible API can live beside this one.
pub const API_PREFIX: &str = "/v1";

/// File name of the daemon's socket inside the run directory.
pub const SOCKET_NAME: &str = "berth.sock";

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

/// Body of every non-2xx answer, so the CLI can print the daemon's own words.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorBody {
    pub message: String,
}
