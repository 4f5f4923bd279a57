//! Making a single container from a [`ContainerSpec`] (`container run/create` and Docker's
//! create, both through the daemon): the one translation, the runtime's create, its anonymous
//! volumes and image recorded through the runtime's API, its name files, its networks joined
//! through [`Engine::connect_container`]. The client starts and attaches it, as for one-offs.

use std::sync::Arc;

use berth_runtime::container::volumes::{CreateWithVolumesError, VolumeError};
use berth_runtime::container::{Record, Runtime, RuntimeError};
use berth_runtime::image::Image;

use super::container_spec::{Context, SpecError, translate};
use super::stack::Engine;
use crate::api::container::{ContainerSpec, Created};
use crate::api::project::ContainerConnect;
use crate::api::{ApiError, ErrorKind};

/// Why a container could not be made; nothing of it is left.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("anonymous volume: {0}")]
    Volume(#[from] VolumeError),
    #[error("{0}")]
    Hosts(String),
}

/// A container made from a spec, not yet on its bridge networks.
#[derive(Debug)]
pub struct Made {
    pub rec: Record,
    /// The bridge networks to attach before start (container id filled in).
    pub connect: Option<ContainerConnect>,
    /// What was accepted and not applied, for the client to show.
    pub warnings: Vec<String>,
}

/// Drops a half-made container and its anonymous volumes.
fn undo(runtime: &Runtime, rec: &Record) {
    let _ = runtime.remove(rec, true);
    runtime.remove_anonymous_volumes(rec);
}

/// `ExtraHosts` for a container without a bridge network: its /etc/hosts (bind-mounted at
/// start) gets the lines (`host-gateway` is the host itself with `--network host`).
fn local_hosts(mode: &str, hosts: &[(String, String)], rec: &Record) -> Result<(), String> {
    if hosts.is_empty() {
        return Ok(());
    }
    let p = rec.dir.join("hosts");
    let mut content = std::fs::read_to_string(&p).unwrap_or_default();
    for (name, ip) in hosts {
        let ip = match (ip.as_str(), mode) {
            ("host-gateway", "host") => "127.0.0.1",
            ("host-gateway", _) => {
                return Err(format!(
                    "--add-host {name}:host-gateway needs a bridge network or host"
                ));
            }
            _ => ip.as_str(),
        };
        let addr: std::net::IpAddr = ip
            .parse()
            .map_err(|_| format!("--add-host {name}:{ip}: not an IP address"))?;
        content.push_str(&super::resolv::hosts_entry(addr, name).map_err(|e| e.to_string())?);
    }
    std::fs::write(&p, content).map_err(|e| format!("writing {}: {e}", p.display()))
}

/// Bind sources as Docker treats them at create, once the spec is valid: a `Mounts` bind whose source is not on the
/// host is refused, and a `Binds` entry's missing source is made as a directory.
fn bind_sources(spec: &ContainerSpec) -> Result<(), SpecError> {
    let hc = &spec.host_config;
    for (i, m) in hc.mounts.iter().enumerate() {
        if m.r#type == "bind" && !m.source.is_empty() && std::fs::metadata(&m.source).is_err() {
            return Err(SpecError::Invalid {
                field: format!("HostConfig.Mounts[{i}].Source"),
                message: format!(
                    "invalid mount config for type \"bind\": bind source path does not exist: {}",
                    m.source
                ),
            });
        }
    }
    for (i, b) in hc.binds.iter().enumerate() {
        let src = b.split(':').next().unwrap_or_default();
        if !src.starts_with('/') || std::fs::symlink_metadata(src).is_ok() {
            continue;
        }
        std::fs::create_dir_all(src).map_err(|err| SpecError::Invalid {
            field: format!("HostConfig.Binds[{i}]"),
            message: format!("making bind source path {src}: {err}"),
        })?;
    }
    Ok(())
}

/// Translates `spec` (with its resolved `image`, `None` with `Rootfs`) and creates container
/// `name` (generated when empty): anonymous volumes made, image recorded, /etc/hosts lines
/// written when no bridge network will; all or nothing. Blocking.
fn create_from_spec(
    runtime: &Runtime,
    image: Option<&Image>,
    name: &str,
    spec: &ContainerSpec,
) -> Result<Made, CreateError> {
    let lookup = |n: &str| runtime.resolve(n).map_err(|err| err.to_string());
    let cx = Context {
        image,
        inherit: None,
        containers: Some(&lookup),
    };
    let t = translate(name, spec, &cx)?;
    bind_sources(spec)?;
    let rec = runtime
        .create_pending_with_volumes(t.config)
        .map_err(|err| match err {
            CreateWithVolumesError::Volume(err) => CreateError::Volume(err),
            CreateWithVolumesError::Create(err) => CreateError::Runtime(err),
        })?;
    let recorded = (|| {
        runtime.finish_create(&rec)?;
        if let Some(id) = &t.image_id {
            runtime.record_image(&rec, id, &spec.image)?;
        }
        if t.connect.is_none() {
            local_hosts(&spec.host_config.network_mode, &t.extra_hosts, &rec)
                .map_err(CreateError::Hosts)?;
        }
        Ok::<(), CreateError>(())
    })();
    if let Err(err) = recorded {
        undo(runtime, &rec);
        return Err(err);
    }
    let connect = t.connect.map(|mut c| {
        c.container = rec.id.clone();
        c
    });
    Ok(Made {
        rec,
        connect,
        warnings: t.warnings,
    })
}

impl Engine {
    /// `POST /v1/containers/create`: creates (does not start) container `name` from `spec`
    /// and joins its bridge networks (names, name files); on any failure nothing is left.
    pub async fn create_container(
        self: &Arc<Self>,
        name: String,
        spec: ContainerSpec,
    ) -> Result<Created, ApiError> {
        let e = self.clone();
        let made = tokio::task::spawn_blocking(move || {
            let image = match &spec.rootfs {
                Some(_) => None,
                None => Some(e.images.resolve(&spec.image).map_err(|err| {
                    let kind = match err {
                        berth_runtime::image::store::StoreError::NotFound { .. } => {
                            ErrorKind::NotFound
                        }
                        _ => ErrorKind::InvalidArgument,
                    };
                    ApiError::new(kind, format!("image {}: {err}", spec.image))
                })?),
            };
            create_from_spec(&e.runtime, image.as_ref(), &name, &spec).map_err(|err| {
                let kind = match &err {
                    CreateError::Runtime(RuntimeError::NameInUse { .. }) => ErrorKind::Conflict,
                    _ => ErrorKind::InvalidArgument,
                };
                ApiError::new(kind, err.to_string())
            })
        })
        .await
        .map_err(|err| ApiError::internal(format!("worker task failed: {err}")))??;
        if let Some(req) = made.connect
            && let Err(err) = self.connect_container(req).await
        {
            let e = self.clone();
            let rec = made.rec.clone();
            let _ = tokio::task::spawn_blocking(move || undo(&e.runtime, &rec)).await;
            return Err(ApiError::invalid(format!(
                "cannot connect container {}: {err}",
                made.rec.config.name
            )));
        }
        Ok(Created {
            id: made.rec.id,
            warnings: made.warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::container::HealthConfig;
    use crate::engine::labels;

    /// A single container's healthcheck (docker run --health-cmd, a Compose file through
    /// Docker's API) is kept as the label the daemon's health watch arms for every running
    /// container, whoever started it: never refused, never left unrun.
    #[test]
    fn a_single_containers_healthcheck_becomes_the_armed_label() {
        let spec = ContainerSpec {
            rootfs: Some("/".into()),
            cmd: Some(vec!["true".into()]),
            healthcheck: Some(HealthConfig {
                test: vec!["CMD".into(), "true".into()],
                interval: 1_000_000_000,
                ..Default::default()
            }),
            ..Default::default()
        };
        let cx = Context {
            image: None,
            inherit: None,
            containers: None,
        };
        let t = translate("x", &spec, &cx).expect("translated");
        let label = t
            .config
            .labels
            .get(labels::HEALTHCHECK)
            .expect("healthcheck label");
        assert!(label.contains("true"), "{label}");
    }
}
