//! The daemon's request decoding on untrusted bytes: every body type its routes accept (as
//! JSON), the `ps` query string, and what the daemon computes from a decoded project before it
//! touches the system (the dependency graph, service hashes, the `up` and `down` plans against
//! an empty instance). Anything that can reach the socket can send these, and a project
//! decoded here never went through the Compose loader's validation. The same bytes are also
//! decoded as the answers the CLI reads back. Errors are fine; a panic is a finding.
#![no_main]

use berth::api::{ErrorBody, Event, Info};
use berth::cli::network::NetworkCommand;
use berth::compose::{Project, service_hash};
use berth::daemon::routes::{BuildRequest, DownRequest, RmBody, RunRequest, UpRequest, ps_query};
use berth::engine::observed::Observed;
use berth::engine::reconcile::{plan_down, plan_up};
use berth::engine::stack::{ContainerConnect, Outcome};
use berth::graph::ServiceGraph;
use libfuzzer_sys::fuzz_target;

/// What the daemon derives from a project before acting on it.
fn project_paths(p: &Project) {
    for svc in p.services.values() {
        let _ = service_hash(svc);
        let _ = svc.replicas();
    }
    if let Ok(g) = ServiceGraph::from_project(p) {
        let _ = g.start_levels(None);
        let _ = g.stop_levels(None);
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(q) = std::str::from_utf8(data) {
        let _ = ps_query(q);
    }
    let empty = Observed::default();
    if let Ok(r) = serde_json::from_slice::<UpRequest>(data) {
        let p = r.project.into_project();
        project_paths(&p);
        if let Ok(plan) = plan_up(&p, &empty, &r.options) {
            let _ = plan.to_string();
        }
    }
    if let Ok(r) = serde_json::from_slice::<DownRequest>(data) {
        let p = r.project.into_project();
        project_paths(&p);
        if let Ok(plan) = plan_down(&p, &empty, &r.options) {
            let _ = plan.to_string();
        }
    }
    if let Ok(r) = serde_json::from_slice::<RunRequest>(data) {
        project_paths(&r.project.into_project());
    }
    if let Ok(r) = serde_json::from_slice::<BuildRequest>(data) {
        project_paths(&r.project.into_project());
    }
    let _ = serde_json::from_slice::<RmBody>(data);
    let _ = serde_json::from_slice::<NetworkCommand>(data);
    let _ = serde_json::from_slice::<ContainerConnect>(data);
    let _ = serde_json::from_slice::<Vec<String>>(data);
    let _ = serde_json::from_slice::<String>(data);
    let _ = serde_json::from_slice::<Info>(data);
    let _ = serde_json::from_slice::<Event>(data);
    let _ = serde_json::from_slice::<ErrorBody>(data);
    let _ = serde_json::from_slice::<Outcome>(data);
});
