//! Project routes: `POST /v1/up`, `/v1/down`, `/v1/build` (NDJSON progress), `/v1/run`,
//! `/v1/rm`, `GET /v1/ps`, and the single-container network routes
//! `POST /v1/container/{connect,disconnect,rename}`.
//!
//! The project, the options and the outcome are still defined beside the engine code that
//! reads them and re-exported here, so that callers name them through the contract.

use serde::{Deserialize, Serialize};

pub use crate::engine::reconcile::{DownOptions, RmiScope, UpOptions, Verb};
pub use crate::engine::stack::{
    BuildOptions, ContainerConnect, ContainerNetwork, OneOff, Outcome, ProjectRequest, PsRow,
    VerbOutcome, VerbRequest,
};

/// Body of `POST /v1/up`.
#[derive(Serialize, Deserialize)]
pub struct UpRequest {
    pub project: ProjectRequest,
    pub options: UpOptions,
}

/// Body of `POST /v1/down`.
#[derive(Serialize, Deserialize)]
pub struct DownRequest {
    pub project: ProjectRequest,
    pub options: DownOptions,
}

/// The query of `GET /v1/ps?project=NAME[&all=1]`: the project and whether stopped
/// containers are listed too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PsQuery {
    pub project: Option<String>,
    pub all: bool,
}

impl PsQuery {
    /// Reads a query string; unknown keys are ignored. Public so the fuzz target can feed
    /// it arbitrary queries.
    pub fn parse(query: &str) -> Self {
        let mut q = PsQuery::default();
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("project", v)) => q.project = Some(super::decode_segment(v)),
                Some(("all", v)) => q.all = v == "1" || v == "true",
                _ => {}
            }
        }
        q
    }

    /// The query string the client sends.
    pub fn to_query(&self) -> String {
        let mut out = Vec::new();
        if let Some(p) = &self.project {
            out.push(format!("project={}", super::encode_segment(p)));
        }
        out.push(format!("all={}", if self.all { 1 } else { 0 }));
        out.join("&")
    }
}

/// Body of `POST /v1/rm`: the containers, and whether their anonymous volumes go too.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RmRequest {
    pub ids: Vec<String>,
    /// `rm -v`, `run --rm`: remove the containers' anonymous volumes (unless another
    /// container mounts one).
    #[serde(default)]
    pub volumes: bool,
}

/// Body of `POST /v1/run`.
#[derive(Serialize, Deserialize)]
pub struct RunRequest {
    pub project: ProjectRequest,
    pub service: String,
    pub run: OneOff,
}

/// Body of `POST /v1/build`.
#[derive(Serialize, Deserialize)]
pub struct BuildRequest {
    pub project: ProjectRequest,
    /// The services to build (all with `build:` when empty).
    pub services: Vec<String>,
    /// Also the services that `services` depend on (`up --build web` builds web's
    /// dependencies too; `berth build web` builds web only).
    #[serde(default)]
    pub with_deps: bool,
    #[serde(flatten)]
    pub options: BuildOptions,
}

/// One line of `POST /v1/build`'s NDJSON answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BuildLine {
    /// A step finished (`[3/7] RUN make`), from the cache or run.
    Step {
        service: String,
        display: String,
        cached: bool,
        elapsed_ms: u64,
    },
    /// Every requested build ended; the failures, each naming its service.
    Done { failures: Vec<String> },
}

/// Answer of `POST /v1/container/rename`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RenameReply {
    /// The container whose DNS names now follow its new name.
    pub renamed: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_query_round_trips() {
        let q = PsQuery {
            project: Some("my app&x".into()),
            all: true,
        };
        assert_eq!(PsQuery::parse(&q.to_query()), q);
        assert_eq!(
            PsQuery::parse("project=demo&all=0&junk"),
            PsQuery {
                project: Some("demo".into()),
                all: false
            }
        );
        assert_eq!(PsQuery::parse(""), PsQuery::default());
    }
}
