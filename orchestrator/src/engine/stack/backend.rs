//! [`StackBackend`]: the [`Backend`] that runs a project's plan steps against the engine
//! (networks, volumes, containers, their wiring, starts, stops and dependency waits).

use super::*;
use berth_runtime::container::volumes::VolumeError;

/// Runs plan steps of one project against the engine.
pub struct StackBackend {
    pub(super) engine: Arc<Engine>,
    pub(super) project: Arc<Project>,
    /// `-t` of `down`: how long a container may take to stop (its own grace period if unset).
    pub(super) stop_timeout: Option<u64>,
    /// `down` only: removals that go on once their container has stopped. Dependents must
    /// stop before what they depend on; the removals (files, cgroups, netns, netd) need no
    /// order, so a `RemoveContainer` step ends with the stop and the chain of levels is not
    /// paid once per removal. Networks and volumes wait for them.
    pub(super) deferred: Option<tokio::sync::Mutex<tokio::task::JoinSet<Result<(), String>>>>,
    /// Failures of deferred removals, reported with the outcome.
    pub(super) late_failures: Mutex<Vec<String>>,
    /// How many deferred removals run at once: each holds a blocking thread for a while, and
    /// stops that end together (hundreds in a `down`) must not start that many threads.
    pub(super) removal_slots: Arc<tokio::sync::Semaphore>,
    /// `up --no-build` / `--pull never`: a missing image is an error instead.
    pub(super) no_build: bool,
    pub(super) pull_never: bool,
    /// `up` only: each service's containers (ids), from the observation plus what this run
    /// creates minus what it removes, so `WaitDependency` polls its dependency's few
    /// containers instead of reading every record of the instance ten times a second.
    pub(super) members: Option<Mutex<BTreeMap<String, BTreeSet<String>>>>,
    /// Project verbs only: `Container NAME  Stopped` (Started, ...) lines, as steps end.
    pub(super) progress: Option<Mutex<Vec<String>>>,
}

impl StackBackend {
    pub(super) fn new(engine: Arc<Engine>, project: Project) -> StackBackend {
        StackBackend {
            members: None,
            progress: None,
            engine,
            project: Arc::new(project),
            stop_timeout: None,
            deferred: None,
            late_failures: Mutex::new(Vec::new()),
            removal_slots: Arc::new(tokio::sync::Semaphore::new(super::teardown_parallelism())),
            no_build: false,
            pull_never: false,
        }
    }

    /// Waits for every deferred removal (their failures go to `late_failures`).
    pub(super) async fn settle(&self) {
        let Some(set) = &self.deferred else {
            return;
        };
        let mut set = set.lock().await;
        while let Some(done) = set.join_next().await {
            let failure = match done {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => e,
                Err(e) => format!("a removal task failed: {e}"),
            };
            self.late_failures
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(failure);
        }
    }

    /// Records that `name` went through `what` (Started, Stopped, ...), for a project verb.
    fn report(&self, name: &str, what: &str) {
        if let Some(progress) = &self.progress {
            progress
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(format!("Container {name}  {what}"));
        }
    }

    /// Hands over the progress lines recorded so far.
    pub(super) fn take_progress(&self) -> Vec<String> {
        self.progress
            .as_ref()
            .map(|p| std::mem::take(&mut *p.lock().unwrap_or_else(PoisonError::into_inner)))
            .unwrap_or_default()
    }

    /// Settles the deferred removals and hands over their failures.
    pub(super) async fn finish(&self) -> Vec<String> {
        self.settle().await;
        std::mem::take(
            &mut *self
                .late_failures
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }
}

type StepFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

impl Backend for StackBackend {
    fn run(&self, step: Step) -> StepFuture<'_> {
        Box::pin(async move { self.step(step).await })
    }
}

/// Runs blocking runtime work off the async workers.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("worker task failed: {e}"))?
}

impl StackBackend {
    pub(super) async fn step(&self, step: Step) -> Result<(), String> {
        let e = &self.engine;
        match step {
            Step::CreateNetwork { key, name } => self.create_network(&key, &name).await,
            Step::CreateVolume { key, name } => self.create_volume(&key, &name),
            Step::EnsureImage {
                service,
                image,
                build,
            } => {
                if build && self.no_build {
                    return Err(format!(
                        "service {service}: image {image} is missing and --no-build forbids building it"
                    ));
                }
                if build {
                    return e.build_service(&self.project, &service, false).await;
                }
                if self.pull_never {
                    return Err(format!(
                        "service {service}: image {image} is missing and --pull never forbids pulling it"
                    ));
                }
                let policy = self
                    .project
                    .services
                    .get(&service)
                    .and_then(|s| s.pull_policy.clone());
                if policy == Some(crate::compose::PullPolicy::Never) {
                    return Err(format!(
                        "service {service}: image {image} is missing and its pull_policy is never"
                    ));
                }
                let store = e.images.clone();
                let reference = image.clone();
                blocking(move || {
                    berth_runtime::image::registry::pull(
                        &store,
                        &reference,
                        &Default::default(),
                        &|_| {},
                    )
                    .map(|_| ())
                    .map_err(|err| {
                        format!(
                            "image {reference} is not in the store and pulling it failed: {err}; \
                             make it with `berth image bootstrap`, `berth image load` or `berth image import`"
                        )
                    })
                })
                .await
            }
            Step::CreateContainer {
                service,
                number,
                inherit,
                ..
            } => self.create_container(&service, number, &inherit).await,
            Step::StartContainer { name, .. } => {
                let started = self.start(&name).await?;
                self.report(&name, if started { "Started" } else { "Running" });
                Ok(())
            }
            Step::StopContainer { name, id, .. } => {
                e.stop_container(&id, self.stop_timeout).await?;
                self.report(&name, "Stopped");
                Ok(())
            }
            Step::KillContainer {
                name, id, signal, ..
            } => {
                self.on_record(id, move |rt, rec| rt.kill(rec, signal))
                    .await?;
                self.report(&name, "Killed");
                Ok(())
            }
            Step::PauseContainer { name, id, .. } => {
                self.on_record(id, |rt, rec| rt.pause(rec)).await?;
                self.report(&name, "Paused");
                Ok(())
            }
            Step::UnpauseContainer { name, id, .. } => {
                self.on_record(id, |rt, rec| rt.unpause(rec)).await?;
                self.report(&name, "Unpaused");
                Ok(())
            }
            Step::RestartContainer { name, .. } => {
                self.remove_or_stop(&name, false, false).await?;
                self.start(&name).await.map(|_| ())
            }
            Step::WaitDependency {
                service,
                dependency,
                condition,
                required,
            } => match self.wait_dependency(&dependency, condition).await {
                Ok(()) => Ok(()),
                Err(err) if !required => {
                    tracing::warn!(%service, %dependency, %err, "optional dependency not ready; continuing");
                    Ok(())
                }
                Err(err) => Err(format!("{service} depends on {dependency}: {err}")),
            },
            Step::RemoveContainer { id, volumes, .. } => {
                self.forget_member(&id);
                match &self.deferred {
                    Some(set) => {
                        let rec = e.stop_container(&id, self.stop_timeout).await?;
                        let engine = e.clone();
                        let slots = self.removal_slots.clone();
                        set.lock().await.spawn(async move {
                            // Closed never: the semaphore lives as long as the backend.
                            let _slot = slots.acquire_owned().await;
                            engine.remove_stopped(rec, volumes).await
                        });
                        Ok(())
                    }
                    None => self.remove_or_stop(&id, true, volumes).await,
                }
            }
            Step::RemoveNetwork { name } => {
                self.settle().await;
                e.dns.stop_network(&name);
                e.netd
                    .remove_network(&name)
                    .await
                    .map(|_| ())
                    .map_err(|err| format!("{err:#}"))
            }
            Step::RemoveVolume { name } => {
                self.settle().await;
                // As Compose's `down -v`: a volume gone already is fine, and one another
                // container still mounts stays, with a warning instead of an error.
                match e.runtime.volume_remove(&name) {
                    Ok(()) | Err(VolumeError::NotFound(_)) => Ok(()),
                    Err(err @ VolumeError::InUse { .. }) => {
                        tracing::warn!(volume = %name, %err, "volume still in use; kept");
                        Ok(())
                    }
                    Err(err) => Err(crate::api::error::error_chain(&err)),
                }
            }
        }
    }

    /// Makes a project volume through the runtime's volume API (its metadata, with the
    /// labels Compose puts on the volumes it makes): a plain local volume, the local
    /// driver's bind (`driver_opts: {type: none, o: bind, device: PATH}`), whose data is that
    /// host directory (removing the volume removes the link, never the directory), or the
    /// local driver's mount of any other `driver_opts` (`type: tmpfs, device: tmpfs, o:
    /// size=64m`), unmounted when the volume is removed. One made meanwhile by another `up`
    /// is used as it is.
    fn create_volume(&self, key: &str, name: &str) -> Result<(), String> {
        let runtime = &self.engine.runtime;
        let vol = self.project.volumes.get(key);
        // The file's `labels:`, then Compose's own (which a file cannot override).
        let mut labels = vol.map(|v| v.labels.clone()).unwrap_or_default();
        labels.extend([
            (
                crate::engine::labels::PROJECT.to_string(),
                self.project.name.clone(),
            ),
            (crate::engine::labels::VOLUME.to_string(), key.to_string()),
        ]);
        let made = match vol.and_then(|v| crate::compose::bind_device(&v.driver_opts)) {
            Some(device) => {
                let options = vol.map(|v| v.driver_opts.clone()).unwrap_or_default();
                runtime.volume_create_bound(
                    Some(name),
                    labels,
                    options,
                    std::path::Path::new(device),
                )
            }
            // Any other `driver_opts`: the local driver's mount (tmpfs, a block device...).
            None if vol.is_some_and(|v| !v.driver_opts.is_empty()) => runtime
                .volume_create_mounted(
                    Some(name),
                    labels,
                    vol.map(|v| v.driver_opts.clone()).unwrap_or_default(),
                ),
            None => runtime.volume_create(Some(name), labels, false),
        };
        match made {
            Ok(_) | Err(VolumeError::Exists(_)) => Ok(()),
            Err(err @ VolumeError::Mount(_)) => Err(format!("volumes.{key}.driver_opts: {err}")),
            Err(VolumeError::BadDevice(d)) => Err(format!(
                "volume {key}: driver_opts.device {:?} must be an existing directory given by an absolute path",
                d.display()
            )),
            Err(err) => Err(crate::api::error::error_chain(&err)),
        }
    }

    pub(super) async fn create_network(&self, key: &str, name: &str) -> Result<(), String> {
        let net = self
            .project
            .networks
            .get(key)
            .ok_or_else(|| format!("network {key} is not declared"))?;
        // One pool per family: the first IPv4 entry and the first IPv6 entry (by address).
        let pools = net
            .ipam
            .as_ref()
            .map(|i| i.config.as_slice())
            .unwrap_or_default();
        let is_v6 = |p: &crate::compose::IpamPool| {
            p.subnet
                .as_deref()
                .or(p.gateway.as_deref())
                .is_some_and(|a| a.contains(':'))
        };
        let v4 = pools.iter().enumerate().find(|(_, p)| !is_v6(p));
        let v6 = pools.iter().enumerate().find(|(_, p)| is_v6(p));
        fn parse<T: std::str::FromStr>(
            key: &str,
            at: Option<(usize, &crate::compose::IpamPool)>,
            what: &str,
            field: fn(&crate::compose::IpamPool) -> Option<&String>,
        ) -> Result<Option<T>, String> {
            let Some((i, p)) = at else { return Ok(None) };
            field(p)
                .map(|s| {
                    s.parse().map_err(|_| {
                        format!("networks.{key}.ipam.config[{i}].{what}: {s:?} is invalid")
                    })
                })
                .transpose()
        }
        if let Some((i, _)) = v6
            && net.enable_ipv6 == Some(false)
        {
            return Err(format!(
                "networks.{key}.ipam.config[{i}] is an IPv6 pool but enable_ipv6 is false"
            ));
        }
        let aux_addresses = aux_addresses(key, v4.into_iter().chain(v6))?;
        // Options berth does not run were warned about by name; the others must parse.
        let applied = net
            .driver_opts
            .iter()
            .filter(|(k, _)| crate::api::bridge_options::APPLIED.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let driver = crate::api::bridge_options::parse(&applied)
            .map_err(|e| format!("networks.{key}.driver_opts.{e}"))?;
        let mut labels = net.labels.clone();
        labels.insert(labels::PROJECT.into(), self.project.name.clone());
        labels.insert("com.docker.compose.network".into(), key.into());
        let req = NetworkCreate {
            name: name.to_string(),
            subnet: parse(key, v4, "subnet", |p| p.subnet.as_ref())?,
            gateway: parse(key, v4, "gateway", |p| p.gateway.as_ref())?,
            ip_range: parse(key, v4, "ip_range", |p| p.ip_range.as_ref())?,
            internal: net.internal,
            enable_ipv6: net.enable_ipv6.unwrap_or(false) || v6.is_some(),
            mtu: driver.mtu,
            labels,
            aux_addresses,
            bridge_name: driver.bridge_name,
            options: driver.options,
        };
        let req6 = Ipv6Create {
            subnet: parse(key, v6, "subnet", |p| p.subnet.as_ref())?,
            gateway: parse(key, v6, "gateway", |p| p.gateway.as_ref())?,
            ip_range: parse(key, v6, "ip_range", |p| p.ip_range.as_ref())?,
        };
        let spec = self
            .engine
            .netd
            .create_network_with_ipv6(req, req6)
            .await
            .map_err(|err| crate::api::error::error_chain(&err))?;
        self.engine.start_dns(&spec);
        Ok(())
    }

    pub(super) async fn create_container(
        &self,
        service: &str,
        number: u32,
        inherit: &BTreeMap<String, String>,
    ) -> Result<(), String> {
        let id = self.create_container_only(service, number, inherit).await?;
        if let Some(members) = &self.members {
            members
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(service.to_string())
                .or_default()
                .insert(id);
        }
        Ok(())
    }

    /// Drops a removed container from [`Self::members`].
    pub(super) fn forget_member(&self, id: &str) {
        if let Some(members) = &self.members {
            for ids in members
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .values_mut()
            {
                ids.retain(|m| m != id);
            }
        }
    }

    /// The containers of `service` (one-offs excepted) with their states: from
    /// [`Self::members`] when this run tracks them, else through the members query.
    pub(super) fn containers_of(&self, service: &str) -> Vec<(Record, State)> {
        let runtime = &self.engine.runtime;
        if let Some(members) = &self.members {
            let ids: Vec<String> = members
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(service)
                .map(|ids| ids.iter().cloned().collect())
                .unwrap_or_default();
            return ids
                .iter()
                .filter_map(|id| {
                    let rec = runtime.resolve(id).ok()?;
                    let st = runtime.state(&rec).ok()?;
                    Some((rec, st))
                })
                .collect();
        }
        project_members::of_project(runtime, &self.project.name, OneOffs::Exclude)
            .into_iter()
            .filter(|m| m.service == service)
            .map(|m| (m.rec, m.state))
            .collect()
    }

    /// Creates (and connects) one container of `service`; answers its id.
    pub(super) async fn create_container_only(
        &self,
        service: &str,
        number: u32,
        inherit: &BTreeMap<String, String>,
    ) -> Result<String, String> {
        let e = &self.engine;
        let p = &self.project;
        let svc = p
            .services
            .get(service)
            .ok_or_else(|| format!("no service {service}"))?;
        let reference = p.image_of(service).unwrap_or_default();
        let image = e
            .images
            .resolve(&reference)
            .map_err(|err| format!("service {service}: image {reference}: {err}"))?;
        let hash = service_hash(svc);
        let t = translate::container_config(p, service, svc, number, &image, &hash, inherit)
            .map_err(|err| crate::api::error::error_chain(&err))?;
        e.create_service_container(p, service, svc, t, &reference)
            .await
            .map(|rec| rec.id)
    }

    /// Runs a runtime operation on the container `id`, off the async workers.
    async fn on_record(
        &self,
        id: String,
        op: impl FnOnce(&Runtime, &Record) -> Result<(), berth_runtime::container::RuntimeError>
        + Send
        + 'static,
    ) -> Result<(), String> {
        let e = self.engine.clone();
        blocking(move || {
            let rec = e
                .runtime
                .resolve(&id)
                .map_err(|err| crate::api::error::error_chain(&err))?;
            op(&e.runtime, &rec).map_err(|err| crate::api::error::error_chain(&err))
        })
        .await
    }

    /// Starts the container `name` and runs its post-start hooks; `false` when it was found
    /// running already, by a live shim: one that a daemon killed mid-start had spawned and
    /// that finished after this plan's observation. The container is where the plan wants it.
    pub(super) async fn start(&self, name: &str) -> Result<bool, String> {
        let e = self.engine.clone();
        let what = name.to_string();
        let (rec, started) = blocking(move || {
            let rec = e.runtime.resolve(&what).map_err(|err| crate::api::error::error_chain(&err))?;
            match e.runtime.start(&rec) {
                Ok(_) => {}
                Err(berth_runtime::container::RuntimeError::AlreadyRunning { .. }) => {
                    tracing::info!(container = %rec.config.name, "found running when about to start it");
                    return Ok((rec, false));
                }
                Err(err) => return Err(crate::api::error::error_chain(&err)),
            }
            crate::engine::hooks::run(&e.runtime, &rec, crate::engine::hooks::POST_START)?;
            Ok((rec, true))
        })
        .await?;
        self.engine.arm_health(rec);
        Ok(started)
    }

    pub(super) async fn remove_or_stop(
        &self,
        what: &str,
        remove: bool,
        volumes: bool,
    ) -> Result<(), String> {
        self.engine
            .stop_and_remove(what, remove, volumes, self.stop_timeout)
            .await
    }

    /// Waits until every container of `dependency` meets `condition`.
    pub(super) async fn wait_dependency(
        &self,
        dependency: &str,
        condition: DependsCondition,
    ) -> Result<(), String> {
        loop {
            let mut ready = true;
            let mut any = false;
            for (rec, st) in self.containers_of(dependency) {
                any = true;
                let running = self.engine.runtime.is_running(&rec);
                let health = self.engine.health.current(&rec, &st, running);
                match condition {
                    DependsCondition::ServiceStarted => {
                        if !running && st.status != Status::Exited {
                            ready = false;
                        }
                    }
                    DependsCondition::ServiceHealthy => match health {
                        Some(Health::Healthy) => {}
                        Some(Health::Unhealthy) => {
                            return Err(format!("container {} is unhealthy", rec.config.name));
                        }
                        None if !running => {
                            return Err(format!(
                                "container {} exited ({}) before it was healthy",
                                rec.config.name,
                                st.exit_code.unwrap_or(-1)
                            ));
                        }
                        None if !crate::engine::health::has_check(&self.project, dependency) => {
                            return Err(format!(
                                "service {dependency} has no healthcheck, so service_healthy can never be met"
                            ));
                        }
                        _ => ready = false,
                    },
                    DependsCondition::ServiceCompletedSuccessfully => {
                        if running || st.status != Status::Exited {
                            ready = false;
                        } else if st.exit_code != Some(0) {
                            return Err(format!(
                                "container {} exited with {} (service_completed_successfully needs 0)",
                                rec.config.name,
                                st.exit_code.unwrap_or(-1)
                            ));
                        }
                    }
                }
            }
            if !any {
                return Err(format!("service {dependency} has no container"));
            }
            if ready {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The `aux_addresses` of a network's pools (one per family), each an address of its family
/// inside the pool's subnet when one is given; netd checks those of an automatic subnet.
fn aux_addresses<'a>(
    key: &str,
    pools: impl Iterator<Item = (usize, &'a crate::compose::IpamPool)>,
) -> Result<BTreeMap<String, std::net::IpAddr>, String> {
    use std::net::IpAddr;
    let mut out = BTreeMap::new();
    for (i, p) in pools {
        for (host, a) in &p.aux_addresses {
            let at = format!("networks.{key}.ipam.config[{i}].aux_addresses.{host}");
            let addr: IpAddr = a
                .parse()
                .map_err(|_| format!("{at}: {a:?} is not an IP address"))?;
            let inside = match (addr, p.subnet.as_deref()) {
                (_, None) => true,
                (IpAddr::V4(v4), Some(s)) => s
                    .parse::<berth_netd::ipam::Ipv4Net>()
                    .is_ok_and(|n| n.contains(v4)),
                (IpAddr::V6(v6), Some(s)) => s
                    .parse::<berth_netd::ipam6::Ipv6Net>()
                    .is_ok_and(|n| n.contains(v6)),
            };
            if !inside {
                return Err(format!(
                    "{at}: {a} is not inside the pool's subnet {}",
                    p.subnet.as_deref().unwrap_or_default()
                ));
            }
            if out.insert(host.clone(), addr).is_some() {
                return Err(format!("{at}: host {host} is given twice"));
            }
        }
    }
    Ok(out)
}
