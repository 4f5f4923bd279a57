//! The one query for "the containers of project P": every caller (observe, `ps`, dependency
//! waits, `network_mode: service:X`, the project verbs) asks here, with one reading of the
//! labels and one spelling of the one-off check.

use std::collections::BTreeMap;

use berth_runtime::container::{Record, Runtime, State};

use super::labels;

/// Whether `berth run` one-off containers count as members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OneOffs {
    /// Every container of the project (observe, `ps`, `down`).
    Include,
    /// Only the services' own containers (the project verbs, dependency waits).
    Exclude,
}

/// True for a container `berth run` made (compose writes `True`; any case is accepted).
pub fn is_oneoff(l: &BTreeMap<String, String>) -> bool {
    l.get(labels::ONEOFF)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// True when labels `l` make the container a member of `project` under `oneoffs`.
pub fn is_member(l: &BTreeMap<String, String>, project: &str, oneoffs: OneOffs) -> bool {
    l.get(labels::PROJECT).map(String::as_str) == Some(project)
        && (oneoffs == OneOffs::Include || !is_oneoff(l))
}

/// One container of a project, read back from its labels.
#[derive(Debug, Clone)]
pub struct Member {
    pub rec: Record,
    pub state: State,
    /// Its service (empty when the label is missing).
    pub service: String,
    /// Its replica number (1 when the label is missing).
    pub number: u32,
    /// Made by `berth run`.
    pub oneoff: bool,
}

impl Member {
    /// Reads a member from a record and its state.
    pub fn new(rec: Record, state: State) -> Member {
        let l = &rec.config.labels;
        Member {
            service: l.get(labels::SERVICE).cloned().unwrap_or_default(),
            number: l
                .get(labels::NUMBER)
                .and_then(|n| n.parse().ok())
                .unwrap_or(1),
            oneoff: is_oneoff(l),
            rec,
            state,
        }
    }

    /// Compose's short name in log prefixes: `service-N`.
    pub fn short(&self) -> String {
        format!("{}-{}", self.service, self.number)
    }
}

/// The containers of `project` (one-offs per `oneoffs`), oldest first.
pub fn of_project(runtime: &Runtime, project: &str, oneoffs: OneOffs) -> Vec<Member> {
    runtime
        .list()
        .into_iter()
        .filter(|(rec, _)| is_member(&rec.config.labels, project, oneoffs))
        .map(|(rec, state)| Member::new(rec, state))
        .collect()
}

/// Sorts members by service, then replica number (the order the project verbs list them).
pub fn sort_by_service(members: &mut [Member]) {
    members.sort_by(|a, b| (&a.service, a.number).cmp(&(&b.service, b.number)));
}
