//! The daemon's request decoding on untrusted bytes: every body type its routes accept (as
//! JSON), the `ps` query string and path segments, and what the daemon computes from a
//! decoded project before it touches the system (the dependency graph, service hashes, the
//! `up` and `down` plans against an empty instance). Anything that can reach the socket can
//! send these, and a project decoded here never went through the Compose loader's
//! validation. The same bytes are also decoded as the answers the CLI reads back. Errors are
//! fine; a panic is a finding.
#![no_main]

use berth::api::network::{
    Network, NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest,
    NetworkPruneResponse, ReconcileResponse,
};
use berth::api::project::{
    BuildLine, BuildRequest, ContainerConnect, DownRequest, Outcome, PsQuery, RmRequest,
    RunRequest, UpRequest,
};
use berth::api::{ErrorBody, Event, Info, decode_segment};
use berth::compose::{Project, service_hash};
use berth::engine::observed::Observed;
use berth::engine::reconcile::{plan_down, plan_up};
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
        let _ = PsQuery::parse(q);
        let _ = decode_segment(q);
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
    let _ = serde_json::from_slice::<RmRequest>(data);
    let _ = serde_json::from_slice::<NetworkCreateRequest>(data);
    let _ = serde_json::from_slice::<NetworkConnectRequest>(data);
    let _ = serde_json::from_slice::<NetworkDisconnectRequest>(data);
    let _ = serde_json::from_slice::<Network>(data);
    let _ = serde_json::from_slice::<NetworkPruneResponse>(data);
    let _ = serde_json::from_slice::<ReconcileResponse>(data);
    let _ = serde_json::from_slice::<BuildLine>(data);
    let _ = serde_json::from_slice::<ContainerConnect>(data);
    let _ = serde_json::from_slice::<Vec<String>>(data);
    let _ = serde_json::from_slice::<String>(data);
    let _ = serde_json::from_slice::<Info>(data);
    let _ = serde_json::from_slice::<Event>(data);
    let _ = serde_json::from_slice::<ErrorBody>(data);
    let _ = serde_json::from_slice::<Outcome>(data);
});
