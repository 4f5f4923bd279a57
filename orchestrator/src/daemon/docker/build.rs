//! `POST /build` (`docker build` with Docker's classic builder): the body is the context as a
//! tar, unpacked into a temporary directory by the runtime's layer unpacker (paths stay
//! inside it); then the runtime's Dockerfile builder runs exactly as for the daemon's compose
//! builds (`Builder` with the engine's build network, `.dockerignore` applied by its context
//! scan). The answer is Docker's classic stream: `{"stream":"Step 1/3 : FROM x\n"}` per step
//! (` ---> Using cache` for a cache hit), `{"aux":{"ID":"sha256:…"}}`, `Successfully built`
//! and `Successfully tagged` lines, or `{"errorDetail":{"message"},"error"}`. No label is
//! added to what the Dockerfile and `labels` say.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use berth_runtime::build::exec::{BuildRequest, Builder, StepReport};
use berth_runtime::build::steps::PlanOptions;
use berth_runtime::image::unpack::{Whiteouts, unpack_layer};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::json;

use super::errors::ApiError;
use super::images::{familiar, flag};
use super::images_stream::{BodyReader, Sender, streamed};
use super::{Body, Docker, query};

/// Query parameters that ask for what berth's builder does not do, refused by name when set.
const REFUSED: &[&str] = &[
    "remote",
    "extrahosts",
    "cachefrom",
    "squash",
    "isolation",
    "cpusetcpus",
    "cpuperiod",
    "cpuquota",
    "cpushares",
    "memory",
    "memswap",
    "shmsize",
    "ulimits",
    "outputs",
];

/// A JSON map parameter (`buildargs`, `labels`): string values; `null` ones are left out.
fn map_param(q: &str, key: &str) -> Result<BTreeMap<String, String>, ApiError> {
    let Some(raw) = query::get(q, key).filter(|r| !r.trim().is_empty()) else {
        return Ok(BTreeMap::new());
    };
    let m: BTreeMap<String, Option<String>> = serde_json::from_str(&raw)
        .map_err(|e| ApiError::bad_request(format!("invalid {key}: {e}")))?;
    Ok(m.into_iter().filter_map(|(k, v)| Some((k, v?))).collect())
}

/// The Dockerfile's path inside the context (never outside it).
fn dockerfile_in(context: &Path, name: &str) -> Result<PathBuf, ApiError> {
    let rel = Path::new(if name.is_empty() { "Dockerfile" } else { name });
    if rel
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(ApiError::bad_request(format!(
            "the Dockerfile ({name}) must be within the build context"
        )));
    }
    Ok(context.join(rel))
}

/// What the request asks to build, checked before the answer starts.
struct Asked {
    tags: Vec<String>,
    dockerfile: String,
    options: PlanOptions,
    no_cache: bool,
    pull: bool,
    quiet: bool,
}

fn asked(q: &str) -> Result<Asked, ApiError> {
    for key in REFUSED {
        if query::get(q, key)
            .is_some_and(|v| !v.is_empty() && v != "0" && v != "[]" && v != "{}" && v != "null")
        {
            return Err(ApiError::bad_request(format!(
                "berth's builder does not support {key}"
            )));
        }
    }
    if query::get(q, "version").is_some_and(|v| v == "2") {
        return Err(ApiError::bad_request(
            "berth serves Docker's classic builder (version 1), not BuildKit",
        ));
    }
    if let Some(m) = query::get(q, "networkmode")
        && !matches!(m.as_str(), "" | "default" | "bridge")
    {
        return Err(ApiError::bad_request(format!(
            "berth's builder runs RUN steps on its build network, not networkmode {m}"
        )));
    }
    if let Some(p) = query::get(q, "platform").filter(|p| !p.is_empty())
        && p != format!("linux/{}", berth_runtime::image::store::host_arch())
    {
        return Err(ApiError::bad_request(format!(
            "berth builds for this host's platform only, not {p}"
        )));
    }
    let tags: Vec<String> = query::pairs(q)
        .into_iter()
        .filter(|(k, v)| k == "t" && !v.is_empty())
        .map(|(_, v)| v)
        .collect();
    for t in &tags {
        berth_runtime::image::store::tag_key(t)
            .map_err(|_| ApiError::bad_request(format!("invalid reference format: {t}")))?;
    }
    Ok(Asked {
        tags,
        dockerfile: query::get(q, "dockerfile").unwrap_or_default(),
        options: PlanOptions {
            build_args: map_param(q, "buildargs")?,
            target: query::get(q, "target").filter(|t| !t.is_empty()),
            labels: map_param(q, "labels")?,
        },
        no_cache: flag(q, "nocache"),
        pull: flag(q, "pull"),
        quiet: flag(q, "q"),
    })
}

/// A step as the classic builder shows it: `[2/5] RUN x` becomes `Step 2/5 : RUN x`.
fn step_line(s: &StepReport) -> String {
    let text = match s.display.strip_prefix('[').and_then(|r| r.split_once("] ")) {
        Some((n, rest)) => {
            let n = n.rsplit(' ').next().unwrap_or(n);
            format!("Step {n} : {rest}")
        }
        None => s.display.clone(),
    };
    format!("{text}\n")
}

/// Sends a stream error in Docker's shape.
fn send_error(out: &Sender, message: &str) {
    out.json(&json!({ "errorDetail": { "message": message }, "error": message }));
}

/// `POST /build`.
pub(super) async fn build(
    docker: &Arc<Docker>,
    req: Request<Incoming>,
    q: &str,
) -> Result<Response<Body>, ApiError> {
    let asked = asked(q)?;
    let engine = docker
        .shared
        .engine()
        .await
        .map_err(|m| ApiError::internal(format!("the engine is unavailable: {m}")))?;
    let dir = tempfile::Builder::new()
        .prefix("docker-build-")
        .tempdir_in(&docker.shared.opts.run)
        .map_err(|e| ApiError::internal(format!("making the build context directory: {e}")))?;
    let reader = BodyReader::new(req.into_body());
    let (out, resp) = streamed("application/json");
    let net = crate::engine::build_net::EngineBuildNetwork::new(
        engine.clone(),
        tokio::runtime::Handle::current(),
    );
    tokio::task::spawn_blocking(move || {
        let context = dir.path().join("context");
        if let Err(e) = std::fs::create_dir(&context) {
            send_error(&out, &format!("making the build context directory: {e}"));
            return;
        }
        if let Err(e) = unpack_layer(reader, &context, Whiteouts::Keep) {
            send_error(
                &out,
                &format!(
                    "reading the build context: {}",
                    crate::api::error::error_chain(&e)
                ),
            );
            return;
        }
        let dockerfile = match dockerfile_in(&context, &asked.dockerfile) {
            Ok(d) => d,
            Err(e) => return send_error(&out, &e.message),
        };
        if !dockerfile.is_file() {
            return send_error(
                &out,
                &format!(
                    "Cannot locate specified Dockerfile: {}",
                    if asked.dockerfile.is_empty() {
                        "Dockerfile"
                    } else {
                        &asked.dockerfile
                    }
                ),
            );
        }
        let req = BuildRequest {
            context,
            dockerfile: Some(dockerfile),
            dockerfile_inline: None,
            options: asked.options,
            tags: asked.tags.clone(),
            no_cache: asked.no_cache,
            pull: asked.pull,
            pull_options: Default::default(),
            secrets: Vec::new(),
        };
        let quiet = asked.quiet;
        let res = Builder::new(&engine.images, &engine.runtime, &engine.root)
            .with_network(&net)
            .build(&req, |s| {
                if quiet {
                    return;
                }
                out.json(&json!({ "stream": step_line(s) }));
                if s.cached && !s.from {
                    out.json(&json!({ "stream": " ---> Using cache\n" }));
                }
            });
        match res {
            Ok(r) => {
                if !quiet {
                    for w in &r.warnings {
                        out.json(&json!({ "stream": format!("[Warning] {w}\n") }));
                    }
                }
                out.json(&json!({ "aux": { "ID": r.image.id.to_string() } }));
                if quiet {
                    // Quiet builds print what the stream says: the id alone.
                    out.json(&json!({ "stream": format!("{}\n", r.image.id) }));
                } else {
                    out.json(
                        &json!({ "stream": format!("Successfully built {}\n", r.image.id.short()) }),
                    );
                    for t in &asked.tags {
                        let shown = berth_runtime::image::store::tag_key(t)
                            .map(|k| familiar(&k))
                            .unwrap_or_else(|_| t.clone());
                        out.json(&json!({ "stream": format!("Successfully tagged {shown}\n") }));
                    }
                }
            }
            Err(e) => send_error(&out, &crate::api::error::error_chain(&e)),
        }
        drop(dir);
    });
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_parameters_read_as_dockers() {
        let q = "t=a%3A1&t=b&buildargs=%7B%22X%22%3A%221%22%2C%22Y%22%3Anull%7D&nocache=1&rm=1&forcerm=1";
        let a = asked(q).map_err(|e| e.message);
        let a = a.as_ref().expect("asked");
        assert_eq!(a.tags, ["a:1", "b"]);
        assert_eq!(a.options.build_args.len(), 1);
        assert!(a.no_cache && !a.pull);
        assert!(asked("extrahosts=h%3A1.2.3.4").is_err());
        assert!(asked("version=2").is_err());
        assert!(asked("t=Bad+Tag").is_err());
        assert!(asked("memory=0&cpushares=0").is_ok());
    }

    #[test]
    fn dockerfiles_stay_in_the_context_and_steps_read_as_classic() {
        let c = Path::new("/ctx");
        assert_eq!(dockerfile_in(c, "").ok(), Some(c.join("Dockerfile")));
        assert_eq!(dockerfile_in(c, "sub/D").ok(), Some(c.join("sub/D")));
        assert!(dockerfile_in(c, "../D").is_err());
        assert!(dockerfile_in(c, "/etc/passwd").is_err());
        let s = StepReport {
            display: "[2/3] RUN echo hi".into(),
            cached: false,
            from: false,
            elapsed_ms: 1,
        };
        assert_eq!(step_line(&s), "Step 2/3 : RUN echo hi\n");
    }
}
