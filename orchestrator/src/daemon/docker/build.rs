//! `POST /build` (`docker build` with Docker's classic builder): the body is the context as a
//! tar, unpacked into a temporary directory by the runtime's layer unpacker (paths stay
//! inside it); then the runtime's Dockerfile builder runs exactly as for the daemon's compose
//! builds (`Builder` with the engine's build network, `.dockerignore` applied by its context
//! scan). `extrahosts`, `networkmode`, `shmsize`, `ulimits` and `cachefrom` become the
//! runtime's one set of build options ([`BuildRequest::run`], [`BuildRequest::cache_from`]);
//! `squash=1` merges the layers the build added over its base into one afterwards. The classic
//! API has no parameter for named build contexts, SSH agents or cache export (BuildKit's
//! session carries those), so they exist on berth's own CLI and Compose builds only.
//! The answer is Docker's classic stream: `Step 1/3 : FROM x` per step, ` ---> Running in
//! <id>` and the RUN step's output as it comes, ` ---> Using cache` for a hit, ` ---> <id>`
//! after each step, `{"aux":{"ID":"sha256:…"}}`, `Successfully built` and `Successfully
//! tagged`, or `{"errorDetail":{"message"},"error"}`. No label is added to what the Dockerfile
//! and `labels` say.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use berth_runtime::build::exec::{BuildError, BuildEvent, BuildRequest, Builder, StepReport};
use berth_runtime::build::run_options::RunOptions;
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
    "isolation",
    "cpusetcpus",
    "cpuperiod",
    "cpuquota",
    "cpushares",
    "memory",
    "memswap",
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

/// A JSON parameter (`cachefrom`, `ulimits`); None when absent or empty.
fn json_param<T: serde::de::DeserializeOwned>(q: &str, key: &str) -> Result<Option<T>, ApiError> {
    let Some(raw) = query::get(q, key).filter(|r| !r.trim().is_empty()) else {
        return Ok(None);
    };
    serde_json::from_str(&raw)
        .map(Some)
        .map_err(|e| ApiError::bad_request(format!("invalid {key}: {e}")))
}

/// One `ulimits` entry as the docker CLI sends it.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ApiUlimit {
    name: String,
    soft: i64,
    hard: i64,
}

/// How RUN containers are set up: `networkmode`, `extrahosts` (repeated `NAME:IP`),
/// `shmsize` (bytes) and `ulimits`.
fn run_options(q: &str) -> Result<RunOptions, ApiError> {
    let bad =
        |e: berth_runtime::build::run_options::RunOptionError| ApiError::bad_request(e.to_string());
    let network = RunOptions::parse_network(&query::get(q, "networkmode").unwrap_or_default())
        .map_err(bad)?;
    let extra_hosts = query::pairs(q)
        .into_iter()
        .filter(|(k, v)| k == "extrahosts" && !v.is_empty())
        .flat_map(|(_, v)| {
            // Older clients join several entries with commas in one value.
            v.split(',').map(str::to_string).collect::<Vec<_>>()
        })
        .filter(|h| !h.is_empty())
        .map(|h| RunOptions::parse_extra_host(&h).map_err(bad))
        .collect::<Result<_, _>>()?;
    let shm_size = match query::get(q, "shmsize").filter(|v| !v.is_empty()) {
        Some(v) => Some(
            v.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid shmsize: {v:?}")))?,
        )
        .filter(|n| *n > 0),
        None => None,
    };
    let ulimits = json_param::<Vec<ApiUlimit>>(q, "ulimits")?
        .unwrap_or_default()
        .into_iter()
        .map(|u| berth_runtime::container::config::Ulimit {
            name: u.name,
            // -1 is "unlimited" in Docker's ulimits.
            soft: u64::try_from(u.soft).unwrap_or(u64::MAX),
            hard: u64::try_from(u.hard).unwrap_or(u64::MAX),
        })
        .collect();
    Ok(RunOptions {
        network,
        extra_hosts,
        shm_size,
        ulimits,
        privileged: false,
    })
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
    run: RunOptions,
    cache_from: Vec<String>,
    no_cache: bool,
    pull: bool,
    quiet: bool,
    squash: bool,
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
            contexts: Default::default(),
        },
        run: run_options(q)?,
        cache_from: json_param::<Vec<String>>(q, "cachefrom")?.unwrap_or_default(),
        no_cache: flag(q, "nocache"),
        pull: flag(q, "pull"),
        quiet: flag(q, "q"),
        squash: flag(q, "squash"),
    })
}

/// A step as the classic builder shows it: `[2/5] RUN x` becomes `Step 2/5 : RUN x`.
fn step_line(s: &StepReport) -> String {
    step_line_of(&s.display)
}

fn step_line_of(display: &str) -> String {
    let text = match display.strip_prefix('[').and_then(|r| r.split_once("] ")) {
        Some((n, rest)) => {
            let n = n.rsplit(' ').next().unwrap_or(n);
            format!("Step {n} : {rest}")
        }
        None => display.to_string(),
    };
    format!("{text}\n")
}

/// Sends a stream error in Docker's shape.
fn send_error(out: &Sender, message: &str) {
    out.json(&json!({ "errorDetail": { "message": message }, "error": message }));
}

/// A failed build as the classic builder reports it: a RUN that exited non-zero names its
/// command and code (with the code in `errorDetail`), anything else its error chain.
fn send_build_error(out: &Sender, e: &BuildError) {
    match e {
        BuildError::RunFailed { command, code, .. } => {
            let message = format!(
                "The command '{}' returned a non-zero code: {code}",
                command.join(" ")
            );
            out.json(&json!({
                "errorDetail": { "code": code, "message": message },
                "error": message,
            }));
        }
        _ => send_error(out, &crate::api::error::error_chain(e)),
    }
}

/// The short id Docker prints after ` ---> `.
fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

/// Docker's classic lines for the build's progress, from the step reports and the RUN
/// events: a step's header is sent when its RUN starts (so its output follows it) or when
/// it ends, never twice.
struct ClassicStream<'a> {
    out: &'a Sender,
    /// The step whose header went out with its RUN start, and that RUN's container.
    running: std::sync::Mutex<Option<(String, String)>>,
}

impl ClassicStream<'_> {
    fn event(&self, e: &BuildEvent) {
        match e {
            BuildEvent::RunStarted { display, container } => {
                self.out.json(&json!({ "stream": step_line_of(display) }));
                self.out.json(
                    &json!({ "stream": format!(" ---> Running in {}\n", short_id(container)) }),
                );
                *self.running.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((display.clone(), container.clone()));
            }
            BuildEvent::Output(line) => {
                self.out.json(&json!({ "stream": line }));
            }
        }
    }

    fn step(&self, s: &StepReport) {
        let ran = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .filter(|(d, _)| *d == s.display);
        match ran {
            Some((_, container)) => {
                self.out.json(&json!({
                    "stream": format!(" ---> Removed intermediate container {}\n", short_id(&container))
                }));
            }
            None => {
                self.out.json(&json!({ "stream": step_line(s) }));
                if s.cached && !s.from {
                    self.out.json(&json!({ "stream": " ---> Using cache\n" }));
                }
            }
        }
        if let Some(id) = &s.image {
            self.out
                .json(&json!({ "stream": format!(" ---> {}\n", short_id(id)) }));
        }
    }
}

/// The most of a refused request's context read before answering: the client sends the
/// context before it reads the answer, so the error reaches it instead of a broken pipe.
const DRAIN_LIMIT: usize = 64 << 20;

/// Reads and drops the request body (up to [`DRAIN_LIMIT`]).
async fn drain(mut body: Incoming) {
    use http_body_util::BodyExt;
    let mut read = 0;
    while read < DRAIN_LIMIT {
        match body.frame().await {
            Some(Ok(f)) => read += f.data_ref().map_or(0, |d| d.len()),
            _ => return,
        }
    }
}

/// `squash=1`: the layers the build added over its final stage's base image become one (the
/// classic builder's experimental `--squash`: the base's layers stay), tagged with the
/// build's tags; a build that added no layer is left as it is. Gives the image id to report
/// and the build's warnings.
fn squash_built(
    store: &berth_runtime::image::ImageStore,
    built: berth_runtime::build::exec::BuildResult,
    tags: &[String],
) -> Result<(String, Vec<String>), String> {
    use berth_runtime::image::squash;
    let chain = |e: &dyn std::error::Error| crate::api::error::error_chain(e);
    let keep = match built.final_base() {
        Some(b) => {
            let base = store
                .resolve(b)
                .map_err(|e| format!("squash: {}", chain(&e)))?;
            squash::shared_layers(&built.image, &base)
        }
        None => 0,
    };
    if keep >= built.image.record.layers.len() {
        return Ok((built.image.id.to_string(), built.warnings));
    }
    let done = squash::squash(store, &built.image, keep, "docker build --squash")
        .map_err(|e| format!("squash: {}", chain(&e)))?;
    for t in tags {
        store
            .tag(&done.image.id, t)
            .map_err(|e| format!("tagging {t}: {}", chain(&e)))?;
    }
    Ok((done.image.id.to_string(), built.warnings))
}

/// `POST /build`.
pub(super) async fn build(
    docker: &Arc<Docker>,
    req: Request<Incoming>,
    q: &str,
) -> Result<Response<Body>, ApiError> {
    let asked = match asked(q) {
        Ok(a) => a,
        Err(e) => {
            drain(req.into_body()).await;
            return Err(e);
        }
    };
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
    let d = docker.clone();
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
            run: asked.run,
            cache_from: asked.cache_from,
            secrets: Vec::new(),
            ssh: Vec::new(),
            contexts: Vec::new(),
            cache_import: Vec::new(),
            cache_export: None,
        };
        let quiet = asked.quiet;
        let classic = ClassicStream {
            out: &out,
            running: Default::default(),
        };
        let on_event = |e: &BuildEvent| classic.event(e);
        let mut builder =
            Builder::new(&engine.images, &engine.runtime, &engine.root).with_network(&net);
        if !quiet {
            builder = builder.with_events(&on_event);
        }
        let res = builder.build(&req, |s| {
            if !quiet {
                classic.step(s);
            }
        });
        let res = match res {
            Ok(r) if asked.squash => match squash_built(&engine.images, r, &asked.tags) {
                Ok(done) => Ok(done),
                Err(m) => return send_error(&out, &m),
            },
            other => other.map(|r| (r.image.id.to_string(), r.warnings)),
        };
        match res {
            Ok((id, warnings)) => {
                for t in &asked.tags {
                    let shown = super::images::familiar_ref(t);
                    super::events::image_event(&d, "tag", &id, &shown);
                }
                if !quiet {
                    for w in &warnings {
                        out.json(&json!({ "stream": format!("[Warning] {w}\n") }));
                    }
                }
                out.json(&json!({ "aux": { "ID": id } }));
                if quiet {
                    // Quiet builds print what the stream says: the id alone.
                    out.json(&json!({ "stream": format!("{id}\n") }));
                } else {
                    out.json(
                        &json!({ "stream": format!("Successfully built {}\n", short_id(&id)) }),
                    );
                    for t in &asked.tags {
                        let shown = berth_runtime::image::store::tag_key(t)
                            .map(|k| familiar(&k))
                            .unwrap_or_else(|_| t.clone());
                        out.json(&json!({ "stream": format!("Successfully tagged {shown}\n") }));
                    }
                }
            }
            Err(e) => send_build_error(&out, &e),
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
        let h =
            asked("extrahosts=h%3A1.2.3.4&extrahosts=g%3A%3A%3A1&networkmode=none&shmsize=1048576")
                .map_err(|e| e.message);
        let h = h.as_ref().expect("asked");
        assert_eq!(h.run.hosts_lines(), "1.2.3.4\th\n::1\tg\n");
        assert_eq!(h.run.shm_size, Some(1 << 20));
        assert_eq!(
            h.run.network,
            berth_runtime::build::steps::RunNetworkMode::None
        );
        assert!(asked("networkmode=container%3Ax").is_err());
        assert!(asked("extrahosts=h%3Ahost-gateway").is_err());
        let c = asked("cachefrom=%5B%22app%3A1%22%5D&ulimits=%5B%7B%22Name%22%3A%22nofile%22%2C%22Soft%22%3A100%2C%22Hard%22%3A200%7D%5D")
            .map_err(|e| e.message);
        let c = c.as_ref().expect("asked");
        assert_eq!(c.cache_from, ["app:1"]);
        assert_eq!((c.run.ulimits[0].soft, c.run.ulimits[0].hard), (100, 200));
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
            image: None,
        };
        assert_eq!(step_line(&s), "Step 2/3 : RUN echo hi\n");
    }
}
