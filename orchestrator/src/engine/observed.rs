//! A snapshot of what runs for one project, as the planner sees it.

use std::collections::{BTreeMap, BTreeSet};

/// Lifecycle state of an observed container, reduced to what planning needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running,
    Paused,
    Exited(i32),
}

/// One existing container of the project, read back from its labels and state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedContainer {
    pub id: String,
    pub name: String,
    pub service: String,
    pub number: u32,
    pub config_hash: String,
    pub image_id: Option<String>,
    pub oneoff: bool,
    pub state: ContainerState,
    /// Its anonymous volumes by target path (what a recreate hands to the new container).
    pub anonymous_volumes: BTreeMap<String, String>,
    /// Id of the container whose network namespace it shares (`network_mode: service:X`).
    pub network_from: Option<String>,
}

/// Everything of one project that exists now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub containers: Vec<ObservedContainer>,
    /// Names of the networks that exist (berth-level names, e.g. `lnmp_default`).
    pub networks: BTreeSet<String>,
    /// Names of the volumes that exist.
    pub volumes: BTreeSet<String>,
    /// Image ids the desired services resolve to now, by service (absent: not in the store yet).
    pub images: BTreeMap<String, String>,
}

impl Observed {
    /// The project's non-one-off containers of `service`, sorted by replica number.
    pub fn service_containers(&self, service: &str) -> Vec<&ObservedContainer> {
        let mut out: Vec<&ObservedContainer> = self
            .containers
            .iter()
            .filter(|c| c.service == service && !c.oneoff)
            .collect();
        out.sort_by_key(|c| c.number);
        out
    }
}
