//! The engine over the real parts: runtime (containers, images), netd (networks) and the
//! embedded DNS. It observes a project, plans with [`super::reconcile`] and executes the plan
//! through [`StackBackend`], the [`Backend`] that turns each step into runtime/netd calls.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use berth_netd::dns::{
    AnswerConfig, ContainerResolvOverrides, DnsRecords, DnsService, Endpoint as DnsEndpoint,
    ForwardConfig, HostResolvPaths, KeeperConfig, NetworkScope, ResolvWatcher, ServerLimits,
    Upstreams, container_resolv_conf,
};
use berth_netd::ports::{PortMapping, Protocol};
use berth_netd::state::NetnsRef;
use berth_netd::{EndpointRequest, Ipv6Create, Netd, NetworkCreate};
use berth_runtime::container::{
    ExecConfig, NetworkMode, Record, Runtime, RuntimeConfig, State, Status,
};
use berth_runtime::image::ImageStore;
use serde::{Deserialize, Serialize};

use super::execute::{Backend, ExecOptions, ExecReport, execute};
use super::health::{Health, HealthBook};
use super::labels;
use super::observed::{ContainerState, Observed, ObservedContainer};
use super::plan::Step;
use super::reconcile::{DownOptions, PlanError, UpOptions, plan_down, plan_up};
use super::translate;
use crate::compose::{DependsCondition, Project, service_hash};

/// Why the engine could not start or finish; names the part involved.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("image store under {root}")]
    Images {
        root: PathBuf,
        #[source]
        source: berth_runtime::image::StoreError,
    },
    #[error("network daemon")]
    Netd(#[source] berth_netd::NetdError),
    #[error("DNS: following the host's resolv.conf")]
    DnsWatch(#[source] berth_netd::dns::watch::WatchError),
    #[error("DNS: setting up the DNS keeper")]
    DnsKeeper(#[source] berth_netd::dns::LinkError),
    #[error(transparent)]
    Plan(#[from] PlanError),
}

/// A project as the CLI sends it: the model plus what serde skips in it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProjectRequest {
    pub project: Project,
    pub working_dir: PathBuf,
    pub compose_files: Vec<PathBuf>,
}

impl ProjectRequest {
    /// The project with its skipped fields restored.
    pub fn into_project(self) -> Project {
        let mut p = self.project;
        p.working_dir = self.working_dir;
        p.compose_files = self.compose_files;
        p
    }
}

/// What an `up` or `down` did: the plan as text and how its execution went.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Outcome {
    pub plan: String,
    pub warnings: Vec<String>,
    pub done: usize,
    pub failures: Vec<String>,
    pub skipped: Vec<String>,
    /// Images `down --rmi` removed (untagged or deleted), as `image rm` reports them.
    #[serde(default)]
    pub removed_images: Vec<String>,
}

impl Outcome {
    fn from(plan: &super::plan::Plan, report: ExecReport) -> Self {
        Outcome {
            plan: plan.to_string(),
            warnings: plan.warnings.clone(),
            done: report.done.len(),
            failures: report
                .failures
                .iter()
                .map(|f| format!("{}: {}", f.step, f.error))
                .collect(),
            skipped: report
                .skipped
                .iter()
                .filter_map(|i| plan.nodes.get(*i))
                .map(|n| n.step.to_string())
                .collect(),
            removed_images: Vec::new(),
        }
    }
}

/// What `berth run` overrides in the service for its one-off container.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OneOff {
    pub command: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    pub env: Vec<String>,
    pub name: Option<String>,
    pub tty: bool,
    /// `-p`: ports to publish (the service's own are never published for a one-off).
    #[serde(default)]
    pub ports: Vec<crate::compose::Port>,
    /// `-v`: extra mounts.
    #[serde(default)]
    pub volumes: Vec<crate::compose::ServiceVolume>,
}

fn rand_bytes() -> [u8; 4] {
    let mut b = [0u8; 4];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut b);
    }
    b
}

/// One container of a project as `berth ps` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PsRow {
    pub id: String,
    pub name: String,
    pub service: String,
    pub image: String,
    pub command: String,
    pub status: String,
    pub health: Option<String>,
    pub exit_code: Option<i32>,
    pub ports: Vec<String>,
}

/// The engine of one berth instance.
pub struct Engine {
    pub root: PathBuf,
    pub runtime: Runtime,
    pub images: ImageStore,
    pub netd: Arc<Netd>,
    pub dns: DnsService,
    resolv: ResolvWatcher,
    health: Arc<HealthBook>,
    /// One `up`/`down` per project at a time.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Engine {
    /// Opens every part for the instance; netd reconciles what it finds on disk.
    pub async fn open(
        root: &Path,
        run: &Path,
        shim_exe: PathBuf,
    ) -> Result<Arc<Self>, EngineError> {
        let runtime = Runtime::new(RuntimeConfig::new(
            root.to_path_buf(),
            run.to_path_buf(),
            shim_exe.clone(),
        ));
        let images = ImageStore::open(root).map_err(|source| EngineError::Images {
            root: root.to_path_buf(),
            source,
        })?;
        let mut netd_cfg = berth_netd::Config::new(root);
        netd_cfg.table = Some(table_name(root));
        let netd = Netd::open(netd_cfg).await.map_err(EngineError::Netd)?;
        let upstreams = Arc::new(Upstreams::new(vec![], vec![], ForwardConfig::default()));
        let resolv = ResolvWatcher::spawn(
            HostResolvPaths::default(),
            upstreams.clone(),
            Duration::from_millis(50),
        )
        .map_err(EngineError::DnsWatch)?;
        // The servers run in the DNS keeper (`berth dns <run>/dns`), which outlives a crash
        // or a shutdown of the daemon while containers run.
        let keeper = KeeperConfig {
            dir: run.join("dns"),
            program: shim_exe.clone(),
            args: vec!["dns".into(), run.join("dns").into()],
        };
        let dns = DnsService::with_keeper(
            Arc::new(DnsRecords::new()),
            upstreams,
            AnswerConfig::default(),
            ServerLimits::default(),
            keeper,
        )
        .map_err(EngineError::DnsKeeper)?;
        let engine = Arc::new(Engine {
            root: root.to_path_buf(),
            runtime,
            images,
            netd,
            dns,
            resolv,
            health: Arc::new(HealthBook::default()),
            locks: Mutex::new(HashMap::new()),
        });
        engine.recover().await;
        engine.restore_dns().await;
        engine.dns.restored();
        for (rec, _) in engine.runtime.list() {
            if engine.runtime.is_running(&rec) {
                engine.arm_health(rec);
            }
        }
        let netd = engine.netd.clone();
        tokio::spawn(async move {
            if let Err(err) = netd.run(Duration::from_secs(30)).await {
                tracing::error!(%err, "network reconcile loop ended");
            }
        });
        // Checks for runs started outside the daemon (`berth start`, `restart`).
        tokio::spawn(super::health::watch(
            engine.runtime.clone(),
            engine.health.clone(),
        ));
        let watch = engine.clone();
        tokio::spawn(async move { watch.follow_host_changes().await });
        tokio::spawn(super::restart::run(engine.clone()));
        tokio::spawn(engine.clone().sweep_loop());
        Ok(engine)
    }

    /// After a host change netd repaired, refresh the DNS upstreams too.
    async fn follow_host_changes(self: Arc<Self>) {
        let mut rx = self.netd.host_changes();
        while rx.changed().await.is_ok() {
            if let Err(err) = self.resolv.refresh() {
                tracing::warn!(%err, "re-reading the host's resolv.conf");
            }
            self.dns.host_changed();
        }
    }

    /// Rolls back what a killed daemon (or CLI) left half-made: containers whose creation
    /// never finished lose their processes, files, netns pin, name and endpoints (the next
    /// `up` makes them again, whole), and the name index loses entries without a container.
    /// Runs at open, before the DNS is rebuilt from netd's endpoints.
    async fn recover(&self) {
        let rt = self.runtime.clone();
        let half = blocking(move || Ok(rt.half_made()))
            .await
            .unwrap_or_default();
        for h in half {
            let id = h.id.clone();
            let name = h.record.as_ref().map(|r| r.config.name.clone());
            tracing::warn!(container = %id, name = ?name, "rolling back a container whose creation never finished");
            let rt = self.runtime.clone();
            let _ = blocking(move || {
                rt.discard(&h);
                Ok(())
            })
            .await;
            if let Err(err) = self.netd.detach(&id, None).await {
                let msg = format!("{err:#}");
                if !msg.contains("not attached") {
                    tracing::warn!(container = %id, %msg, "detaching a half-made container");
                }
            }
        }
        let rt = self.runtime.clone();
        let _ = blocking(move || {
            rt.repair_index();
            Ok(())
        })
        .await;
    }

    /// Rebuilds DNS servers and records from netd's state (a restarted daemon re-adopts).
    async fn restore_dns(&self) {
        for net in self.netd.networks().await {
            self.start_dns(&net);
        }
        let state = self.netd.state().await;
        let records = self.runtime.list();
        for ep in &state.endpoints {
            let rec = records.iter().find(|(r, _)| r.id == ep.container);
            let name = rec.map(|(r, _)| r.config.name.clone());
            let dns_servers = rec
                .map(|(r, _)| super::labels::dns_servers(&r.config.labels))
                .unwrap_or_default();
            let mut names: Vec<String> = name.into_iter().collect();
            names.extend(ep.aliases.iter().cloned());
            let net_name = state
                .networks
                .values()
                .find(|n| n.id == ep.network || n.name == ep.network)
                .map(|n| n.name.clone())
                .unwrap_or_else(|| ep.network.clone());
            let _ = self.dns.records().add_endpoint(
                &net_name,
                DnsEndpoint {
                    id: ep.container.clone(),
                    container: ep.container.clone(),
                    addresses: endpoint_addresses(ep),
                    names,
                    dns_servers,
                    ..Default::default()
                },
            );
        }
    }

    /// Names of netd's networks now (to compare before/after a `berth network` command).
    pub async fn network_names(&self) -> Vec<String> {
        self.netd
            .networks()
            .await
            .into_iter()
            .map(|n| n.name)
            .collect()
    }

    /// Brings DNS servers in line with netd's networks after a `berth network` command:
    /// a server for every new network, none for the ones that went.
    pub async fn sync_dns(&self, before: &[String]) {
        let nets = self.netd.networks().await;
        for net in &nets {
            if self.dns.listen_addrs(&net.name).is_empty() {
                self.start_dns(net);
            }
        }
        for gone in before
            .iter()
            .filter(|b| !nets.iter().any(|n| &n.name == *b))
        {
            self.dns.stop_network(gone);
        }
    }

    /// A server on the gateway (and on the IPv6 gateway of a dual-stack network, so that
    /// containers resolving over IPv6 get answers too), scoped to both subnets.
    fn start_dns(&self, net: &berth_netd::state::NetworkSpec) {
        let subnet6 = net.subnet6.map(|s| s.to_string());
        let mut subnets = Vec::new();
        for s in std::iter::once(net.subnet.to_string()).chain(subnet6) {
            match s.parse() {
                Ok(s) => subnets.push(s),
                Err(err) => {
                    tracing::warn!(network = %net.name, subnet = %s, %err, "DNS scope");
                    return;
                }
            }
        }
        let scope = NetworkScope {
            id: net.name.clone(),
            subnets,
            internal: net.internal,
        };
        let gateways = std::iter::once(IpAddr::V4(net.gateway)).chain(net.gateway6.map(IpAddr::V6));
        let start = || {
            for gw in gateways {
                if let Err(err) = self
                    .dns
                    .start_network(scope.clone(), SocketAddr::new(gw, 53))
                {
                    tracing::warn!(network = %net.name, gateway = %gw, %err, "DNS server for the network");
                }
            }
        };
        // Starting a server waits for the DNS keeper's report (milliseconds; seconds when the
        // keeper has to be started again): tell the runtime, so other tasks move on meanwhile.
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(start)
            }
            _ => start(),
        }
    }

    /// Stops a container; with `remove`, also drops its DNS names, detaches it from its
    /// networks (freeing addresses and ports) and deletes it, with its anonymous volumes when
    /// `volumes` (`rm -v`, `down -v`, `run --rm`).
    pub async fn stop_and_remove(
        self: &Arc<Self>,
        what: &str,
        remove: bool,
        volumes: bool,
        timeout: Option<u64>,
    ) -> Result<(), String> {
        let rec = self.stop_container(what, timeout).await?;
        if !remove {
            return Ok(());
        }
        self.remove_stopped(rec, volumes).await
    }

    /// Stops a container (by id, name or id prefix) and forgets its health.
    async fn stop_container(
        self: &Arc<Self>,
        what: &str,
        timeout: Option<u64>,
    ) -> Result<Record, String> {
        let e = self.clone();
        let key = what.to_string();
        let rec = blocking(move || {
            // By id (what plans carry) the record is read directly; `resolve` reads every
            // container's record, which made a teardown of N containers O(N²).
            let rec = match Record::load(&e.root.join("containers").join(&key)) {
                Ok(rec) if rec.id == key => rec,
                _ => e.runtime.resolve(&key).map_err(|err| err.to_string())?,
            };
            let t = std::time::Instant::now();
            e.runtime
                .stop(&rec, timeout)
                .map_err(|err| err.to_string())?;
            tracing::debug!(container = %rec.config.name, stop_ms = t.elapsed().as_millis() as u64, "stopped");
            Ok(rec)
        })
        .await?;
        self.health.forget(&rec.id);
        Ok(rec)
    }

    /// Drops a stopped container's DNS names, removes it and detaches it from its networks
    /// (freeing addresses and ports); then its anonymous volumes when `volumes` (those another
    /// container still mounts stay, and are reported).
    async fn remove_stopped(self: &Arc<Self>, rec: Record, volumes: bool) -> Result<(), String> {
        let t0 = std::time::Instant::now();
        let mut errors = Vec::new();
        for net in self.netd.networks().await {
            self.dns.records().remove_endpoint(&net.name, &rec.id);
        }
        // Remove the container (which drops its pinned network namespace) before netd
        // detaches it: the kernel then deletes the container's veth pairs with their
        // namespaces, in batches, where a `link del` per veth costs ~25 ms of RTNL time
        // each, one after the other (most of `down`'s time for 50 services).
        let e = self.clone();
        let (id, name) = (rec.id.clone(), rec.config.name.clone());
        let removed = blocking(move || {
            e.runtime
                .remove(&rec, true)
                .map_err(|err| err.to_string())?;
            let mut errs = Vec::new();
            if volumes {
                errs = e.runtime.remove_anonymous_volumes(&rec);
            }
            Ok(errs)
        })
        .await;
        match removed {
            Ok(errs) => errors.extend(errs.into_iter().map(|err| err.to_string())),
            Err(err) => errors.push(err),
        }
        let removed = t0.elapsed();
        if let Err(err) = self.netd.detach(&id, None).await {
            // A container never attached (network_mode host/none) has nothing to detach.
            let msg = format!("{err:#}");
            if !msg.contains("not attached") {
                errors.push(format!("detaching {name}: {msg}"));
            }
        }
        tracing::debug!(
            container = %name,
            removed_ms = removed.as_millis() as u64,
            detached_ms = t0.elapsed().as_millis() as u64,
            "removed"
        );
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// `berth run`: creates (does not start) a one-off container of `service`, attached to the
    /// service's networks without its published ports, as compose does; returns its id.
    pub async fn create_oneoff(
        self: &Arc<Self>,
        project: Project,
        service: &str,
        run: OneOff,
    ) -> Result<String, String> {
        let mut svc = project
            .services
            .get(service)
            .cloned()
            .ok_or_else(|| format!("no such service: {service}"))?;
        svc.ports = run.ports;
        svc.volumes.extend(run.volumes);
        svc.container_name = None;
        if let Some(ep) = run.entrypoint {
            svc.entrypoint = Some(ep);
            svc.command = None;
        }
        if !run.command.is_empty() {
            svc.command = Some(run.command);
        }
        for kv in run.env {
            let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
            svc.environment.insert(k.to_string(), Some(v.to_string()));
        }
        let reference = project.image_of(service).unwrap_or_default();
        let image = self
            .images
            .resolve(&reference)
            .map_err(|err| format!("service {service}: image {reference}: {err}"))?;
        let mut cfg =
            translate::container_config(&project, service, &svc, 0, &image, "", &BTreeMap::new())
                .map_err(|err| err.to_string())?;
        let suffix = hex::encode(rand_bytes());
        cfg.name = run
            .name
            .unwrap_or_else(|| format!("{}-{service}-run-{suffix}", project.name));
        cfg.hostname = Some(cfg.name.clone());
        cfg.labels.insert(labels::ONEOFF.into(), "True".into());
        cfg.labels.remove(labels::RESTART);
        cfg.tty = run.tty;
        cfg.open_stdin = run.tty;
        self.join_shared_network(&project, service, &svc, &mut cfg)?;
        let name = cfg.name.clone();
        let wants_net = cfg.network == NetworkMode::New && !svc.networks.is_empty();
        let rec = self.create_with_volumes(cfg).await?;
        let id_file = rec
            .dir
            .join(berth_runtime::image::store::CONTAINER_IMAGE_ID_FILE);
        let _ = std::fs::write(&id_file, image.id.to_string());
        let mut failed = None;
        if wants_net {
            let backend = StackBackend::new(self.clone(), project);
            failed = backend
                .connect(service, &svc, &rec, &name, &name)
                .await
                .err();
        }
        if failed.is_none() {
            failed = self
                .runtime
                .finish_create(&rec)
                .err()
                .map(|e| e.to_string());
        }
        if let Some(err) = failed {
            let cleanup = self.stop_and_remove(&rec.id, true, true, None).await;
            return Err(match cleanup {
                Ok(()) => err,
                Err(c) => format!("{err}; cleanup also failed: {c}"),
            });
        }
        Ok(rec.id)
    }

    /// Creates a container after making its anonymous volumes that do not exist yet (recorded
    /// as anonymous, so `volume ls` shows them and `volume prune` takes them once dangling);
    /// the ones made here go again if the creation fails.
    async fn create_with_volumes(
        self: &Arc<Self>,
        cfg: berth_runtime::container::ContainerConfig,
    ) -> Result<Record, String> {
        let runtime = self.runtime.clone();
        blocking(move || {
            let mut made = Vec::new();
            for name in &cfg.anonymous_volumes {
                // Inherited from the replaced container: its data stays.
                if runtime.volume_dir(name).is_dir() {
                    continue;
                }
                if let Err(err) = runtime.volume_create(Some(name), BTreeMap::new(), true) {
                    drop_volumes(&runtime, &made);
                    return Err(format!("container {}: anonymous volume: {err}", cfg.name));
                }
                made.push(name.clone());
            }
            // Marked as being created until the caller has attached and named it.
            runtime.create_pending(cfg).map_err(|err| {
                drop_volumes(&runtime, &made);
                err.to_string()
            })
        })
        .await
    }

    /// Builds a service's image from its `build:` section and tags it as the service's image
    /// (`image:` or `<project>-<service>`), with the layer cache unless `no_cache`.
    pub async fn build_service(
        self: &Arc<Self>,
        project: &Project,
        service: &str,
        no_cache: bool,
    ) -> Result<(), String> {
        self.build_service_with(project, service, no_cache, false, &BTreeMap::new())
            .await
    }

    /// [`Self::build_service`] with `berth build`'s `--pull` (re-resolve base images from
    /// their registries) and `--build-arg` values (over the service's `build.args`).
    pub async fn build_service_with(
        self: &Arc<Self>,
        project: &Project,
        service: &str,
        no_cache: bool,
        pull: bool,
        build_args: &BTreeMap<String, String>,
    ) -> Result<(), String> {
        self.build_service_reporting(project, service, no_cache, pull, build_args, |_| {})
            .await
    }

    /// [`Self::build_service_with`], handing each finished step to `report` (the `[n/N] ...`
    /// lines `berth build` streams to its user while the build runs).
    pub async fn build_service_reporting(
        self: &Arc<Self>,
        project: &Project,
        service: &str,
        no_cache: bool,
        pull: bool,
        build_args: &BTreeMap<String, String>,
        report: impl Fn(&berth_runtime::build::exec::StepReport) + Send + 'static,
    ) -> Result<(), String> {
        use berth_runtime::build::exec::{BuildRequest, Builder};
        let svc = project
            .services
            .get(service)
            .ok_or_else(|| format!("no such service: {service}"))?;
        let b = svc
            .build
            .clone()
            .ok_or_else(|| format!("service {service} has no build: section"))?;
        let context = PathBuf::from(&b.context);
        let options = berth_runtime::build::steps::PlanOptions {
            build_args: b
                .args
                .iter()
                .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
                .chain(build_args.iter().map(|(k, v)| (k.clone(), v.clone())))
                .collect(),
            target: b.target.clone(),
            labels: b.labels.clone(),
        };
        let req = BuildRequest {
            dockerfile: b.dockerfile.as_ref().map(|d| context.join(d)),
            context,
            dockerfile_inline: b.dockerfile_inline.clone(),
            options,
            tags: vec![project.image_of(service).unwrap_or_default()],
            no_cache: no_cache || b.no_cache.unwrap_or(false),
            pull: pull || b.pull.unwrap_or(false),
            pull_options: Default::default(),
        };
        let e = self.clone();
        let svc_name = service.to_string();
        let net = super::build_net::EngineBuildNetwork::new(
            self.clone(),
            tokio::runtime::Handle::current(),
        );
        blocking(move || {
            Builder::new(&e.images, &e.runtime, &e.root)
                .with_network(&net)
                .build(&req, |step| {
                    tracing::info!(service = %svc_name, step = %step.display, cached = step.cached, "build");
                    report(step);
                })
                .map(|_| ())
                .map_err(|err| format!("building service {svc_name}: {err}"))
        })
        .await
    }

    /// Builds the images of `services` (those with `build:`) all at once, as compose does:
    /// builds mostly wait on downloads and single-threaded steps, so on two cores three
    /// apt-get builds overlap well. Services sharing one image tag build it once. `report`
    /// gets each finished step with its service. Answers one failure per failed build, in
    /// service order.
    pub async fn build_services(
        self: &Arc<Self>,
        project: &Project,
        services: &BTreeSet<String>,
        opts: &BuildOptions,
        report: impl Fn(&str, &berth_runtime::build::exec::StepReport) + Send + Sync + 'static,
    ) -> Vec<String> {
        let project = Arc::new(project.clone());
        let report = Arc::new(report);
        let mut tags = BTreeSet::new();
        let mut builds = tokio::task::JoinSet::new();
        for name in services {
            let Some(svc) = project.services.get(name) else {
                continue;
            };
            let tag = project.image_of(name).unwrap_or_default();
            if svc.build.is_none() || !tags.insert(tag.clone()) {
                continue;
            }
            // `pull_policy: build` builds on every `up`, as compose does.
            let always = svc.pull_policy == Some(crate::compose::PullPolicy::Build);
            if opts.missing_only && !always && self.images.resolve(&tag).is_ok() {
                continue;
            }
            let (e, p, r, o, n) = (
                self.clone(),
                project.clone(),
                report.clone(),
                opts.clone(),
                name.clone(),
            );
            builds.spawn(async move {
                let service = n.clone();
                let result = e
                    .build_service_reporting(&p, &n, o.no_cache, o.pull, &o.build_args, move |s| {
                        r(&service, s)
                    })
                    .await;
                (n, result)
            });
        }
        let mut failures = Vec::new();
        while let Some(done) = builds.join_next().await {
            match done {
                Ok((_, Ok(()))) => {}
                Ok((name, Err(e))) => failures.push((name, e)),
                Err(e) => failures.push((String::new(), format!("a build task failed: {e}"))),
            }
        }
        failures.sort();
        failures.into_iter().map(|(_, e)| e).collect()
    }

    /// The health of a container with a healthcheck, as its checks found it so far.
    pub fn health_of(&self, id: &str) -> Option<Health> {
        self.health.get(id)
    }

    /// Starts the healthcheck loop recorded on a running container, if it has one.
    pub fn arm_health(&self, rec: Record) {
        if let Some(check) = super::health::Check::from_labels(&rec.config.labels) {
            super::health::spawn(self.runtime.clone(), self.health.clone(), rec, check);
        }
    }

    fn project_lock(&self, project: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(project.to_string())
            .or_default()
            .clone()
    }

    /// The project's containers, networks, volumes and current image ids.
    pub async fn observe(&self, project: &Project) -> Observed {
        let mut obs = Observed::default();
        let net_state = self.netd.state().await;
        // Network name -> the containers its DNS names.
        let named: BTreeMap<String, BTreeSet<String>> = net_state
            .networks
            .values()
            .map(|n| {
                let ids = self.dns.records().endpoints(&n.name);
                (
                    n.name.clone(),
                    ids.into_iter().map(|r| r.container).collect(),
                )
            })
            .collect();
        for (rec, st) in self.runtime.list() {
            let l = &rec.config.labels;
            if l.get(labels::PROJECT) != Some(&project.name) {
                continue;
            }
            let (attached, defects) = wiring(&rec, &net_state, &named);
            obs.containers.push(ObservedContainer {
                id: rec.id.clone(),
                name: rec.config.name.clone(),
                service: l.get(labels::SERVICE).cloned().unwrap_or_default(),
                number: l
                    .get(labels::NUMBER)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1),
                config_hash: l.get(labels::CONFIG_HASH).cloned().unwrap_or_default(),
                image_id: l.get(labels::IMAGE).cloned(),
                oneoff: l.get(labels::ONEOFF).is_some_and(|v| v == "True"),
                state: container_state(&self.runtime, &rec, &st),
                anonymous_volumes: anonymous_mounts(&rec),
                network_from: l.get(labels::NETWORK_FROM).cloned(),
                attached,
                defects,
            });
        }
        obs.networks = self
            .netd
            .networks()
            .await
            .into_iter()
            .map(|n| n.name)
            .collect();
        for v in project.volumes.values() {
            if self.root.join("volumes").join(&v.name).is_dir() {
                obs.volumes.insert(v.name.clone());
            }
        }
        for name in project.services.keys() {
            if let Some(image) = project.image_of(name)
                && let Ok(img) = self.images.resolve(&image)
            {
                obs.images.insert(name.clone(), img.id.to_string());
            }
        }
        obs
    }

    /// `berth up`: converge the project and report.
    pub async fn up(
        self: &Arc<Self>,
        project: Project,
        opts: UpOptions,
    ) -> Result<Outcome, EngineError> {
        let lock = self.project_lock(&project.name);
        let _held = lock.lock().await;
        if opts.build {
            // Build first, so a changed image is seen as such by the planner.
            let graph =
                crate::graph::ServiceGraph::from_project(&project).map_err(PlanError::from)?;
            let selected = graph
                .select(&opts.services, opts.no_deps)
                .map_err(PlanError::from)?;
            let failures = self
                .build_services(&project, &selected, &BuildOptions::default(), |_, _| {})
                .await;
            if !failures.is_empty() {
                return Ok(Outcome {
                    failures,
                    ..Outcome::default()
                });
            }
        }
        let observed = self.observe(&project).await;
        let plan = plan_up(&project, &observed, &opts)?;
        tracing::info!(project = %project.name, steps = plan.nodes.len(), "up");
        if let Err(failure) =
            super::preflight::check(&self.netd, &self.runtime, &project, &plan).await
        {
            return Ok(super::preflight::refused(&plan, failure));
        }
        let mut members: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for c in observed.containers.iter().filter(|c| !c.oneoff) {
            members
                .entry(c.service.clone())
                .or_default()
                .insert(c.id.clone());
        }
        let backend = Arc::new(StackBackend {
            no_build: opts.no_build,
            pull_never: opts.pull_never,
            members: Some(Mutex::new(members)),
            ..StackBackend::new(self.clone(), project)
        });
        let report = execute(&plan, backend, ExecOptions::default()).await;
        Ok(Outcome::from(&plan, report))
    }

    /// `berth down`: remove the project's containers and networks (volumes with -v).
    pub async fn down(
        self: &Arc<Self>,
        project: Project,
        opts: DownOptions,
    ) -> Result<Outcome, EngineError> {
        let lock = self.project_lock(&project.name);
        let _held = lock.lock().await;
        let observed = self.observe(&project).await;
        let plan = plan_down(&project, &observed, &opts)?;
        let images = opts.rmi.map(|scope| scope.images(&project));
        let backend = Arc::new(StackBackend {
            stop_timeout: opts.timeout,
            deferred: Some(Default::default()),
            ..StackBackend::new(self.clone(), project)
        });
        // Teardown steps mostly wait (for a process to exit, for the kernel to tear down
        // namespaces and cgroups), so more of them overlap than setup steps.
        let exec = ExecOptions {
            keep_going: true,
            parallel: teardown_parallelism(),
        };
        let report = execute(&plan, backend.clone(), exec).await;
        let mut outcome = Outcome::from(&plan, report);
        outcome.failures.extend(backend.finish().await);
        for image in images.unwrap_or_default() {
            let store = self.images.clone();
            let reference = image.clone();
            let removed = blocking(move || match store.remove(&reference, false) {
                Ok(rep) => Ok(Some(rep)),
                // Never pulled or built: nothing to remove, as compose.
                Err(berth_runtime::image::StoreError::NotFound { .. }) => Ok(None),
                Err(err) => Err(err.to_string()),
            })
            .await;
            match removed {
                Ok(Some(rep)) => {
                    let lines = rep.untagged.iter().map(|t| format!("Untagged: {t}"));
                    outcome.removed_images.extend(lines);
                    let lines = rep.deleted.iter().map(|d| format!("Deleted: {d}"));
                    outcome.removed_images.extend(lines);
                }
                Ok(None) => {}
                Err(msg) => outcome
                    .failures
                    .push(format!("removing image {image}: {msg}")),
            }
        }
        Ok(outcome)
    }

    /// `berth ps`: the project's containers (all of them with `all`).
    pub async fn ps(&self, project: &str, all: bool) -> Vec<PsRow> {
        let state = self.netd.state().await;
        let mut rows = Vec::new();
        for (rec, st) in self.runtime.list() {
            let l = &rec.config.labels;
            if l.get(labels::PROJECT).map(String::as_str) != Some(project) {
                continue;
            }
            let running = self.runtime.is_running(&rec);
            if !all && !running {
                continue;
            }
            let status = if running && self.runtime.is_paused(&rec) {
                "paused".to_string()
            } else if running {
                "running".to_string()
            } else {
                st.status.as_str().to_string()
            };
            let ports = state
                .endpoints
                .iter()
                .filter(|e| e.container == rec.id)
                .flat_map(|e| e.ports.iter())
                .map(|p| {
                    let host = p
                        .host_ip
                        .map(|i| i.to_string())
                        .unwrap_or_else(|| "0.0.0.0".into());
                    let proto = match p.protocol {
                        Protocol::Tcp => "tcp",
                        Protocol::Udp => "udp",
                    };
                    format!("{host}:{}->{}/{proto}", p.host_port, p.container_port)
                })
                .collect();
            rows.push(PsRow {
                id: rec.id.clone(),
                name: rec.config.name.clone(),
                service: l.get(labels::SERVICE).cloned().unwrap_or_default(),
                image: l.get(labels::IMAGE).cloned().unwrap_or_default(),
                command: shell_words::join(&rec.config.args),
                status,
                health: self
                    .health
                    .current(&rec, &st, running)
                    .map(|h| h.as_str().to_string()),
                exit_code: st.exit_code,
                ports,
            });
        }
        rows
    }
}

/// Removes volumes just made for a container that could not be created.
fn drop_volumes(runtime: &Runtime, names: &[String]) {
    for name in names {
        if let Err(err) = runtime.volume_remove(name) {
            tracing::warn!(volume = %name, %err, "removing an unused anonymous volume");
        }
    }
}

/// How many teardown steps run at once: `BERTH_TEARDOWN_PARALLEL`, else 32.
fn teardown_parallelism() -> usize {
    std::env::var("BERTH_TEARDOWN_PARALLEL")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(32)
}

/// nftables table of this instance: `berth` for the default root, else `berth-<hash of root>`,
/// so that instances side by side never rewrite each other's rules.
pub fn table_name(root: &Path) -> String {
    if root == Path::new("/var/lib/berth") {
        return "berth".into();
    }
    use sha2::Digest;
    let h = sha2::Sha256::digest(root.as_os_str().as_encoded_bytes());
    format!("berth-{}", &hex::encode(h)[..8])
}

/// A container's anonymous volumes by target path.
fn anonymous_mounts(rec: &Record) -> BTreeMap<String, String> {
    rec.config
        .mounts
        .iter()
        .filter_map(|m| match m {
            berth_runtime::container::MountSpec::Volume { name, target, .. }
                if rec.config.anonymous_volumes.contains(name) =>
            {
                Some((target.display().to_string(), name.clone()))
            }
            _ => None,
        })
        .collect()
}

/// A container's networks (by name, `None` without a namespace of its own) and the defects a
/// crash left in its wiring. A creation marker of this very process counts as abandoned:
/// observe runs under the project lock, so no creation of this project is under way here.
fn wiring(
    rec: &Record,
    net: &berth_netd::state::State,
    named: &BTreeMap<String, BTreeSet<String>>,
) -> (Option<BTreeSet<String>>, Vec<String>) {
    use berth_runtime::container::{Creation, recover};
    let half_made = matches!(
        recover::creation(&rec.dir),
        Creation::Abandoned | Creation::InProgress { own: true }
    );
    if rec.netns.is_none() || rec.config.network != NetworkMode::New {
        let defects = super::observed::wiring_defects(&super::observed::Wiring {
            half_made,
            ..Default::default()
        });
        return (None, defects);
    }
    let mut w = super::observed::Wiring {
        half_made,
        ..Default::default()
    };
    for ep in net.endpoints.iter().filter(|e| e.container == rec.id) {
        let Some(n) = net.find_network(&ep.network) else {
            continue;
        };
        w.attached.insert(n.name.clone());
        w.dns_servers.push(IpAddr::V4(n.gateway));
        if named.get(&n.name).is_some_and(|ids| ids.contains(&rec.id)) {
            w.named.insert(n.name.clone());
        }
    }
    let resolv = std::fs::read_to_string(rec.dir.join("resolv.conf")).ok();
    w.resolv_conf = resolv.as_deref();
    let defects = super::observed::wiring_defects(&w);
    (Some(w.attached), defects)
}

fn container_state(runtime: &Runtime, rec: &Record, st: &State) -> ContainerState {
    if runtime.is_running(rec) {
        return ContainerState::Running;
    }
    match st.status {
        Status::Created => ContainerState::Created,
        Status::Running | Status::Exited => ContainerState::Exited(st.exit_code.unwrap_or(0)),
    }
}

/// How [`Engine::build_services`] builds: `berth build`'s flags and `up`'s "only what is
/// missing" pre-build.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct BuildOptions {
    /// `--no-cache`: run every step.
    #[serde(default)]
    pub no_cache: bool,
    /// `--pull`: re-resolve base images from their registries.
    #[serde(default)]
    pub pull: bool,
    /// `--build-arg KEY=VALUE`, over each service's `build.args`.
    #[serde(default)]
    pub build_args: BTreeMap<String, String>,
    /// Skip services whose image is already in the store (`up` without `--build`).
    #[serde(default)]
    pub missing_only: bool,
}

/// Runs plan steps of one project against the engine.
pub struct StackBackend {
    engine: Arc<Engine>,
    project: Arc<Project>,
    /// `-t` of `down`: how long a container may take to stop (its own grace period if unset).
    stop_timeout: Option<u64>,
    /// `down` only: removals that go on once their container has stopped. Dependents must
    /// stop before what they depend on; the removals (files, cgroups, netns, netd) need no
    /// order, so a `RemoveContainer` step ends with the stop and the chain of levels is not
    /// paid once per removal. Networks and volumes wait for them.
    deferred: Option<tokio::sync::Mutex<tokio::task::JoinSet<Result<(), String>>>>,
    /// Failures of deferred removals, reported with the outcome.
    late_failures: Mutex<Vec<String>>,
    /// `up --no-build` / `--pull never`: a missing image is an error instead.
    no_build: bool,
    pull_never: bool,
    /// `up` only: each service's containers (ids), from the observation plus what this run
    /// creates minus what it removes, so `WaitDependency` polls its dependency's few
    /// containers instead of reading every record of the instance ten times a second.
    members: Option<Mutex<BTreeMap<String, BTreeSet<String>>>>,
}

impl StackBackend {
    fn new(engine: Arc<Engine>, project: Project) -> StackBackend {
        StackBackend {
            members: None,
            engine,
            project: Arc::new(project),
            stop_timeout: None,
            deferred: None,
            late_failures: Mutex::new(Vec::new()),
            no_build: false,
            pull_never: false,
        }
    }

    /// Waits for every deferred removal (their failures go to `late_failures`).
    async fn settle(&self) {
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

    /// Settles the deferred removals and hands over their failures.
    async fn finish(&self) -> Vec<String> {
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
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("worker task failed: {e}"))?
}

pub(super) fn parse_ports(spec: &crate::compose::Port) -> Result<Option<PortMapping>, String> {
    let Some(published) = &spec.published else {
        return Ok(None);
    };
    let (first, last) = match published.split_once('-') {
        Some((a, b)) => (a, b),
        None => (published.as_str(), published.as_str()),
    };
    let first: u16 = first
        .parse()
        .map_err(|_| format!("ports: published {published:?} is not a port"))?;
    let last: u16 = last
        .parse()
        .map_err(|_| format!("ports: published {published:?} is not a port range"))?;
    let host_ip = match spec.host_ip.as_deref() {
        None | Some("") | Some("0.0.0.0") => None,
        Some(ip) => Some(
            ip.trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .map_err(|_| format!("ports: host_ip {ip:?} is not an IP address"))?,
        ),
    };
    let protocol = match spec.protocol.as_str() {
        "udp" => Protocol::Udp,
        "tcp" | "" => Protocol::Tcp,
        other => {
            return Err(format!(
                "ports: protocol {other:?} cannot be published (tcp or udp)"
            ));
        }
    };
    Ok(Some(PortMapping {
        protocol,
        host_ip,
        host_port: first,
        container_port: spec.target,
        count: last.saturating_sub(first) + 1,
    }))
}

impl StackBackend {
    async fn step(&self, step: Step) -> Result<(), String> {
        let e = &self.engine;
        match step {
            Step::CreateNetwork { key, name } => self.create_network(&key, &name).await,
            Step::CreateVolume { key, name } => {
                let dir = e.runtime.volume_dir(&name);
                let bound = self
                    .project
                    .volumes
                    .get(&key)
                    .and_then(|v| crate::compose::bind_device(&v.driver_opts));
                match bound {
                    // `driver_opts: {type: none, o: bind, device: PATH}`: the volume's data
                    // is that host directory (a symlink the bind mount follows; removing the
                    // volume removes the link, never the directory).
                    Some(device) => {
                        let device = std::path::Path::new(device);
                        if !device.is_absolute() || !device.is_dir() {
                            return Err(format!(
                                "volume {key}: driver_opts.device {:?} must be an existing directory given by an absolute path",
                                device.display()
                            ));
                        }
                        let parent = dir.parent().unwrap_or(&dir);
                        std::fs::create_dir_all(parent)
                            .map_err(|err| format!("creating {}: {err}", parent.display()))?;
                        std::os::unix::fs::symlink(device, &dir).map_err(|err| {
                            format!("linking {} to {}: {err}", dir.display(), device.display())
                        })
                    }
                    None => std::fs::create_dir_all(&dir)
                        .map_err(|err| format!("creating {}: {err}", dir.display())),
                }
            }
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
                    .and_then(|s| s.pull_policy);
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
            Step::StartContainer { name, .. } => self.start(&name).await,
            Step::RestartContainer { name, .. } => {
                self.remove_or_stop(&name, false, false).await?;
                self.start(&name).await
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
                        set.lock()
                            .await
                            .spawn(async move { engine.remove_stopped(rec, volumes).await });
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
                let dir = e.root.join("volumes").join(&name);
                std::fs::remove_dir_all(&dir)
                    .map_err(|err| format!("removing {}: {err}", dir.display()))
            }
        }
    }

    async fn create_network(&self, key: &str, name: &str) -> Result<(), String> {
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
            mtu: net
                .driver_opts
                .get("com.docker.network.driver.mtu")
                .and_then(|m| m.parse().ok()),
            labels,
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
            .map_err(|err| crate::daemon::anyhow_chain(&err))?;
        self.engine.start_dns(&spec);
        Ok(())
    }

    async fn create_container(
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
    fn forget_member(&self, id: &str) {
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

    /// The containers of `service` with their states: from [`Self::members`] when this run
    /// tracks them, else by reading every record.
    fn containers_of(&self, service: &str) -> Vec<(Record, State)> {
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
        runtime.list()
    }

    /// Creates (and connects) one container of `service`; answers its id.
    async fn create_container_only(
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
        let mut cfg = translate::container_config(p, service, svc, number, &image, &hash, inherit)
            .map_err(|err| err.to_string())?;
        e.join_shared_network(p, service, svc, &mut cfg)?;
        let name = cfg.name.clone();
        let hostname = cfg.hostname.clone().unwrap_or_else(|| name.clone());
        let wants_net = cfg.network == NetworkMode::New && !svc.networks.is_empty();
        let rec = e.create_with_volumes(cfg).await?;
        // The image store refuses to remove an image a container still uses.
        let id_file = rec
            .dir
            .join(berth_runtime::image::store::CONTAINER_IMAGE_ID_FILE);
        if let Err(err) = std::fs::write(&id_file, image.id.to_string()) {
            tracing::warn!(path = %id_file.display(), %err, "recording the container's image");
        }
        if wants_net && let Err(err) = self.connect(service, svc, &rec, &name, &hostname).await {
            let cleanup = self.remove_or_stop(&rec.id, true, true).await;
            return match cleanup {
                Ok(()) => Err(err),
                Err(c) => Err(format!("{err}; cleanup also failed: {c}")),
            };
        }
        match e.runtime.finish_create(&rec) {
            Ok(()) => Ok(rec.id.clone()),
            Err(err) => {
                let err = err.to_string();
                let cleanup = self.remove_or_stop(&rec.id, true, true).await;
                match cleanup {
                    Ok(()) => Err(err),
                    Err(c) => Err(format!("{err}; cleanup also failed: {c}")),
                }
            }
        }
    }

    /// Attaches a created container to its networks, registers its names and writes its
    /// /etc/hosts and /etc/resolv.conf before it starts.
    async fn connect(
        &self,
        service: &str,
        svc: &crate::compose::Service,
        rec: &Record,
        name: &str,
        hostname: &str,
    ) -> Result<(), String> {
        let e = &self.engine;
        let p = &self.project;
        let netns = rec
            .netns
            .clone()
            .ok_or_else(|| format!("container {name} has no network namespace to attach"))?;
        let mut ports = Vec::new();
        for port in &svc.ports {
            if let Some(m) = parse_ports(port).map_err(|err| format!("service {service}: {err}"))? {
                ports.push(m);
            }
        }
        let mut reqs = Vec::new();
        let mut dns_names: BTreeMap<String, Vec<String>> = BTreeMap::new();
        // Network name -> (compose key, static IPv6 address), to name them in errors.
        let mut keys_with_ipv6: BTreeMap<String, (String, std::net::Ipv6Addr)> = BTreeMap::new();
        let linked_as = link_aliases(p, service);
        for (i, (key, opt)) in svc.networks.iter().enumerate() {
            let net = p
                .networks
                .get(key)
                .ok_or_else(|| format!("service {service}: network {key} is not declared"))?;
            let mut aliases = vec![service.to_string(), hostname.to_string()];
            if let Some(o) = opt {
                aliases.extend(o.aliases.iter().cloned());
            }
            aliases.extend(linked_as.iter().cloned());
            aliases.retain(|a| a != name);
            aliases.dedup();
            let mut names = vec![name.to_string()];
            names.extend(aliases.iter().cloned());
            dns_names.insert(net.name.clone(), names);
            let ipv4_address = opt
                .as_ref()
                .and_then(|o| o.ipv4_address.as_ref())
                .map(|a| a.parse())
                .transpose()
                .map_err(|_| {
                    format!("service {service}: networks.{key}.ipv4_address is invalid")
                })?;
            let ipv6_address = opt
                .as_ref()
                .and_then(|o| o.ipv6_address.as_ref())
                .map(|a| {
                    a.parse().map_err(|_| {
                        format!(
                            "service {service}: networks.{key}.ipv6_address: {a:?} is not an IPv6 address"
                        )
                    })
                })
                .transpose()?;
            if let Some(a6) = ipv6_address {
                keys_with_ipv6.insert(net.name.clone(), (key.clone(), a6));
            }
            reqs.push(EndpointRequest {
                network: net.name.clone(),
                ipv4_address,
                ipv6_address,
                mac_address: opt.as_ref().and_then(|o| o.mac_address.clone()),
                priority: opt
                    .as_ref()
                    .and_then(|o| o.priority)
                    .unwrap_or(0)
                    .clamp(i32::MIN as i64, i32::MAX as i64) as i32
                    - i as i32,
                aliases,
                ports: if i == 0 {
                    std::mem::take(&mut ports)
                } else {
                    Vec::new()
                },
            });
        }
        let endpoints = e
            .netd
            .attach(&rec.id, NetnsRef::Path(netns), reqs)
            .await
            .map_err(|err| match &err {
                // A refused static IPv6 address names the service and the key it came from.
                berth_netd::NetdError::Ipv6Address { network, what } => {
                    match keys_with_ipv6.get(network) {
                        Some((key, a6)) => {
                            format!("service {service}: networks.{key}.ipv6_address {a6}: {what}")
                        }
                        None => format!("attaching {name}: {}", crate::daemon::anyhow_chain(&err)),
                    }
                }
                _ => format!("attaching {name}: {}", crate::daemon::anyhow_chain(&err)),
            })?;
        let mut hosts =
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n".to_string();
        let mut gateways = Vec::new();
        // The IPv6 gateways (whose DNS servers answer too) follow every IPv4 one.
        let mut gateways6 = Vec::new();
        let nets = e.netd.networks().await;
        for ep in &endpoints {
            let net_name = nets
                .iter()
                .find(|n| n.id == ep.network || n.name == ep.network)
                .map(|n| {
                    gateways.push(IpAddr::V4(n.gateway));
                    gateways6.extend(n.gateway6.map(IpAddr::V6));
                    n.name.clone()
                })
                .unwrap_or_else(|| ep.network.clone());
            let names = dns_names.get(&net_name).cloned().unwrap_or_default();
            hosts.push_str(&hosts_lines(ep, hostname));
            e.dns
                .records()
                .add_endpoint(
                    &net_name,
                    DnsEndpoint {
                        id: rec.id.clone(),
                        container: rec.id.clone(),
                        addresses: endpoint_addresses(ep),
                        dns_servers: super::labels::dns_servers(&rec.config.labels),
                        names,
                        ..Default::default()
                    },
                )
                .map_err(|err| format!("DNS names of {name}: {err}"))?;
        }
        let extra: Vec<(String, String)> = svc
            .extra_hosts
            .iter()
            .flat_map(|(host, ips)| ips.iter().map(move |ip| (host.clone(), ip.clone())))
            .collect();
        let overrides = ContainerResolvOverrides {
            search: (!svc.dns_search.is_empty()).then(|| svc.dns_search.clone()),
            options: (!svc.dns_opt.is_empty()).then(|| svc.dns_opt.clone()),
        };
        e.write_name_files(rec, hosts, &gateways, &gateways6, &extra, &overrides)
            .map_err(|err| match err {
                NameFilesError::ExtraHost(what) => {
                    format!("service {service}: extra_hosts.{what}")
                }
                NameFilesError::Write(what) => what,
            })
    }

    async fn start(&self, name: &str) -> Result<(), String> {
        let e = self.engine.clone();
        let what = name.to_string();
        let rec = blocking(move || {
            let rec = e.runtime.resolve(&what).map_err(|err| err.to_string())?;
            e.runtime.start(&rec).map_err(|err| err.to_string())?;
            Ok(rec)
        })
        .await?;
        self.engine.arm_health(rec);
        Ok(())
    }

    async fn remove_or_stop(&self, what: &str, remove: bool, volumes: bool) -> Result<(), String> {
        self.engine
            .stop_and_remove(what, remove, volumes, self.stop_timeout)
            .await
    }

    /// Waits until every container of `dependency` meets `condition`.
    async fn wait_dependency(
        &self,
        dependency: &str,
        condition: DependsCondition,
    ) -> Result<(), String> {
        loop {
            let mut ready = true;
            let mut any = false;
            for (rec, st) in self.containers_of(dependency) {
                let l = &rec.config.labels;
                if l.get(labels::PROJECT) != Some(&self.project.name)
                    || l.get(labels::SERVICE).map(String::as_str) != Some(dependency)
                    || l.get(labels::ONEOFF).is_some_and(|v| v == "True")
                {
                    continue;
                }
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
                        None if !super::health::has_check(&self.project, dependency) => {
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

/// Runs a health check command once; used by [`super::health`].
pub(crate) fn exec_check(
    runtime: &Runtime,
    rec: &Record,
    args: Vec<String>,
) -> Result<i32, String> {
    runtime
        .exec(
            rec,
            &ExecConfig {
                args,
                env: Vec::new(),
                user: None,
                working_dir: None,
                tty: false,
                interactive: false,
                detach: false,
            },
        )
        .map_err(|err| err.to_string())
}

/// One network a single container joins (`berth container run --network NAME`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContainerNetwork {
    /// Network name or id; `bridge` is made on first use (the network Docker users expect).
    pub name: String,
    /// Extra DNS names on this network (`--network-alias`).
    pub aliases: Vec<String>,
    /// Static address (`--ip`).
    pub ipv4_address: Option<std::net::Ipv4Addr>,
    /// Static MAC (`--mac-address`), else derived from the address.
    #[serde(default)]
    pub mac_address: Option<String>,
}

/// Body of `POST /v1/container/connect`: attach a created single container before it starts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContainerConnect {
    /// Container id.
    pub container: String,
    /// In priority order: the first carries the default route and the published ports.
    pub networks: Vec<ContainerNetwork>,
    /// `-p/--publish`.
    pub ports: Vec<PortMapping>,
    /// `--add-host NAME:IP` lines for /etc/hosts (`host-gateway` is the first network's
    /// gateway).
    #[serde(default)]
    pub extra_hosts: Vec<(String, String)>,
    /// `--dns-search`, `--dns-option`: replace the host's in resolv.conf.
    #[serde(default)]
    pub dns_search: Vec<String>,
    #[serde(default)]
    pub dns_options: Vec<String>,
}

/// The name of the network `--network bridge` means, made on first use.
pub const DEFAULT_BRIDGE: &str = "bridge";

impl Engine {
    /// Attaches a single container (created, pinned netns) to networks, registers its DNS
    /// names (name, hostname, short id, aliases) and writes its /etc/hosts and
    /// /etc/resolv.conf, as [`StackBackend`] does for services. All or nothing: on failure
    /// what was attached is detached again. Returns `ethN address` lines.
    pub async fn connect_container(
        self: &Arc<Self>,
        req: ContainerConnect,
    ) -> Result<Vec<String>, String> {
        self.sweep_orphan_endpoints().await;
        let e = self.clone();
        let key = req.container.clone();
        let rec = blocking(move || e.runtime.resolve(&key).map_err(|err| err.to_string())).await?;
        let name = rec.config.name.clone();
        let hostname = rec
            .config
            .hostname
            .clone()
            .unwrap_or_else(|| rec.id[..12].to_string());
        let netns = rec
            .netns
            .clone()
            .ok_or_else(|| format!("container {name} has no network namespace to attach"))?;
        if req.networks.is_empty() {
            return Err(format!("container {name}: no network to connect"));
        }
        if req.networks.iter().any(|n| n.name == DEFAULT_BRIDGE) {
            self.ensure_default_bridge().await?;
        }
        let mut ports = req.ports.clone();
        let mut reqs = Vec::new();
        let mut dns_names: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let state = self.netd.state().await;
        for (i, n) in req.networks.iter().enumerate() {
            let spec = state
                .find_network(&n.name)
                .ok_or_else(|| format!("no such network: {}", n.name))?;
            let mut aliases = vec![hostname.clone(), rec.id[..12].to_string()];
            aliases.extend(n.aliases.iter().cloned());
            aliases.retain(|a| a != &name);
            aliases.sort();
            aliases.dedup();
            let mut names = vec![name.clone()];
            names.extend(aliases.iter().cloned());
            dns_names.insert(spec.name.clone(), names);
            reqs.push(EndpointRequest {
                network: spec.name.clone(),
                ipv4_address: n.ipv4_address,
                ipv6_address: None,
                mac_address: n.mac_address.clone(),
                priority: -(i as i32),
                aliases,
                ports: if i == 0 {
                    std::mem::take(&mut ports)
                } else {
                    Vec::new()
                },
            });
        }
        let endpoints = self
            .netd
            .attach(&rec.id, NetnsRef::Path(netns), reqs)
            .await
            .map_err(|err| format!("attaching {name}: {err:#}"))?;
        match self
            .register_container(&rec, &hostname, &endpoints, &dns_names, &req)
            .await
        {
            Ok(()) => Ok(endpoints
                .iter()
                .map(|ep| format!("{} {}", ep.ifname, ep.address))
                .collect()),
            Err(err) => {
                self.disconnect_container(&rec.id).await;
                Err(err)
            }
        }
    }

    /// DNS records, /etc/hosts and /etc/resolv.conf of a freshly attached single container.
    async fn register_container(
        &self,
        rec: &Record,
        hostname: &str,
        endpoints: &[berth_netd::state::Endpoint],
        dns_names: &BTreeMap<String, Vec<String>>,
        req: &ContainerConnect,
    ) -> Result<(), String> {
        let mut hosts =
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n".to_string();
        let mut gateways = Vec::new();
        // The IPv6 gateways (whose DNS servers answer too) follow every IPv4 one.
        let mut gateways6 = Vec::new();
        let nets = self.netd.networks().await;
        for ep in endpoints {
            let net_name = nets
                .iter()
                .find(|n| n.id == ep.network || n.name == ep.network)
                .map(|n| {
                    gateways.push(IpAddr::V4(n.gateway));
                    gateways6.extend(n.gateway6.map(IpAddr::V6));
                    n.name.clone()
                })
                .unwrap_or_else(|| ep.network.clone());
            hosts.push_str(&hosts_lines(ep, hostname));
            self.dns
                .records()
                .add_endpoint(
                    &net_name,
                    DnsEndpoint {
                        id: rec.id.clone(),
                        container: rec.id.clone(),
                        addresses: endpoint_addresses(ep),
                        dns_servers: super::labels::dns_servers(&rec.config.labels),
                        names: dns_names.get(&net_name).cloned().unwrap_or_default(),
                        ..Default::default()
                    },
                )
                .map_err(|err| format!("DNS names of {}: {err}", rec.config.name))?;
        }
        let overrides = ContainerResolvOverrides {
            search: (!req.dns_search.is_empty()).then(|| req.dns_search.clone()),
            options: (!req.dns_options.is_empty()).then(|| req.dns_options.clone()),
        };
        self.write_name_files(
            rec,
            hosts,
            &gateways,
            &gateways6,
            &req.extra_hosts,
            &overrides,
        )
        .map_err(|err| match err {
            NameFilesError::ExtraHost(what) => format!("--add-host {what}"),
            NameFilesError::Write(what) => what,
        })
    }

    /// Writes a connected container's `/etc/hosts` (`hosts`, its endpoint lines, then the
    /// `extra` NAME/IP pairs, where `host-gateway` is the first network's gateway) and
    /// `/etc/resolv.conf` (every IPv4 gateway's DNS, then the IPv6 ones, with the host's
    /// search domains), before it starts.
    fn write_name_files(
        &self,
        rec: &Record,
        mut hosts: String,
        gateways: &[IpAddr],
        gateways6: &[IpAddr],
        extra: &[(String, String)],
        overrides: &ContainerResolvOverrides,
    ) -> Result<(), NameFilesError> {
        for (name, ip) in extra {
            let addr = if ip == "host-gateway" {
                *gateways.first().ok_or_else(|| {
                    NameFilesError::ExtraHost(format!("{name}: host-gateway needs a network"))
                })?
            } else {
                ip.parse::<IpAddr>().map_err(|_| {
                    NameFilesError::ExtraHost(format!(
                        "{name}: {ip:?} is not an IP address or host-gateway"
                    ))
                })?
            };
            let line = super::resolv::hosts_entry(addr, name).map_err(|err| {
                NameFilesError::ExtraHost(format!("{}: {err}", name.escape_debug()))
            })?;
            hosts.push_str(&line);
        }
        super::resolv::check_overrides(
            overrides.search.as_deref().unwrap_or_default(),
            overrides.options.as_deref().unwrap_or_default(),
        )
        .map_err(|err| NameFilesError::Write(err.to_string()))?;
        let host = self.resolv.host().map(|h| h.conf).unwrap_or_default();
        let servers: Vec<IpAddr> = gateways.iter().chain(gateways6).copied().collect();
        let resolv = container_resolv_conf(&servers, &host, overrides);
        for (file, content) in [("hosts", hosts), ("resolv.conf", resolv)] {
            let path = rec.dir.join(file);
            std::fs::write(&path, content).map_err(|err| {
                NameFilesError::Write(format!("writing {}: {err}", path.display()))
            })?;
        }
        Ok(())
    }

    /// Creates the `bridge` network (a pool subnet, DNS on its gateway) unless it exists;
    /// serialised so that two first uses cannot both create it.
    async fn ensure_default_bridge(&self) -> Result<(), String> {
        let lock = self.project_lock("\0network:bridge");
        let _held = lock.lock().await;
        if self
            .netd
            .state()
            .await
            .find_network(DEFAULT_BRIDGE)
            .is_some()
        {
            return Ok(());
        }
        let mut labels = BTreeMap::new();
        labels.insert("berth.default-bridge".to_string(), "true".to_string());
        let spec = self
            .netd
            .create_network(NetworkCreate {
                name: DEFAULT_BRIDGE.into(),
                subnet: None,
                gateway: None,
                ip_range: None,
                internal: false,
                enable_ipv6: false,
                mtu: None,
                labels,
            })
            .await
            .map_err(|err| format!("creating the default network {DEFAULT_BRIDGE}: {err:#}"))?;
        self.start_dns(&spec);
        Ok(())
    }

    /// Drops a container's DNS names and detaches it from every network; for containers
    /// that are gone already (`--rm`), so nothing here needs the container's files.
    pub async fn disconnect_container(&self, id: &str) -> Option<String> {
        for net in self.netd.networks().await {
            self.dns.records().remove_endpoint(&net.name, id);
        }
        self.netd
            .detach(id, None)
            .await
            .err()
            .map(|err| format!("detaching {id}: {err:#}"))
    }

    /// Detaches endpoints whose container is gone (a `--rm` container the shim removed
    /// when it exited): its directory and its pinned namespace no longer exist.
    pub async fn sweep_orphan_endpoints(&self) {
        let state = self.netd.state().await;
        let mut gone: Vec<String> = state
            .endpoints
            .iter()
            .filter(|ep| {
                matches!(&ep.netns, NetnsRef::Path(p) if !p.exists())
                    && !self.root.join("containers").join(&ep.container).exists()
            })
            .map(|ep| ep.container.clone())
            .collect();
        gone.dedup();
        for id in &gone {
            tracing::info!(container = %id, "detaching the endpoints of a removed container");
            if let Some(err) = self.disconnect_container(id).await {
                tracing::warn!(%err, "sweeping a removed container's endpoints");
            }
        }
        // DNS records whose endpoint netd no longer has: netd's reconcile forgets the
        // endpoints of a container whose namespace died, and its names must stop answering.
        // A record missing from the first snapshot may have been attached since (its attach
        // comes before its record): only those are checked again, against a state read after
        // the records.
        let attached = |st: &berth_netd::state::State, net_id: &str, net_name: &str, c: &str| {
            st.endpoints
                .iter()
                .any(|ep| ep.container == c && (ep.network == net_id || ep.network == net_name))
        };
        let suspects: Vec<(String, String, DnsEndpoint)> = state
            .networks
            .values()
            .flat_map(|net| {
                self.dns
                    .records()
                    .endpoints(&net.name)
                    .into_iter()
                    .map(|r| (net.id.clone(), net.name.clone(), r))
            })
            .filter(|(id, name, r)| !attached(&state, id, name, &r.container))
            .collect();
        if suspects.is_empty() {
            return;
        }
        let now = self.netd.state().await;
        for (net_id, net_name, rec) in suspects {
            if !attached(&now, &net_id, &net_name, &rec.container) {
                tracing::info!(container = %rec.container, network = %net_name, "dropping the DNS names of a detached container");
                self.dns.records().remove_endpoint(&net_name, &rec.id);
            }
        }
    }

    /// Re-registers a container's DNS names from its current name and its endpoints'
    /// aliases (after `container rename`), so the old name stops answering.
    pub async fn refresh_container_dns(&self, id: &str) -> Result<(), String> {
        let rt = self.runtime.clone();
        let key = id.to_string();
        let rec = blocking(move || rt.resolve(&key).map_err(|err| err.to_string())).await?;
        let state = self.netd.state().await;
        for ep in state.endpoints.iter().filter(|e| e.container == rec.id) {
            let Some(net) = state.networks.get(&ep.network) else {
                continue;
            };
            let mut names = vec![rec.config.name.clone()];
            names.extend(ep.aliases.iter().cloned());
            self.dns.records().remove_endpoint(&net.name, &rec.id);
            self.dns
                .records()
                .add_endpoint(
                    &net.name,
                    DnsEndpoint {
                        id: rec.id.clone(),
                        container: rec.id.clone(),
                        addresses: endpoint_addresses(ep),
                        dns_servers: super::labels::dns_servers(&rec.config.labels),
                        names,
                        ..Default::default()
                    },
                )
                .map_err(|err| format!("DNS names of {}: {err}", rec.config.name))?;
        }
        Ok(())
    }

    /// `network_mode: service:NAME | container:NAME`: the container joins the network
    /// namespace of a running container of that service (the lowest replica, as compose
    /// picks) or of that container, and shares its /etc/hosts, /etc/resolv.conf and
    /// hostname, as Docker does. The planner made the service wait for that one to start.
    /// The label [`labels::NETWORK_FROM`] records whose namespace it is, so a recreated
    /// provider recreates its users (their namespace died with it).
    pub fn join_shared_network(
        &self,
        project: &Project,
        service: &str,
        svc: &crate::compose::Service,
        cfg: &mut berth_runtime::container::ContainerConfig,
    ) -> Result<(), String> {
        let Some(mode) = svc.network_mode.as_deref() else {
            return Ok(());
        };
        let target = if let Some(dep) = mode.strip_prefix("service:") {
            let mut running: Vec<(u32, Record)> = self
                .runtime
                .list()
                .into_iter()
                .filter(|(r, st)| {
                    st.status == Status::Running
                        && r.config.labels.get(labels::PROJECT) == Some(&project.name)
                        && r.config.labels.get(labels::SERVICE).map(String::as_str) == Some(dep)
                        && r.config.labels.get(labels::ONEOFF).map(String::as_str) != Some("True")
                })
                .map(|(r, _)| {
                    let n = r
                        .config
                        .labels
                        .get(labels::NUMBER)
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(u32::MAX);
                    (n, r)
                })
                .collect();
            running.sort_by_key(|(n, _)| *n);
            running.into_iter().next().map(|(_, r)| r).ok_or_else(|| {
                format!(
                    "service {service}: network_mode {mode}: service {dep} has no running container"
                )
            })?
        } else if let Some(name) = mode.strip_prefix("container:") {
            let rec = self
                .runtime
                .resolve(name)
                .map_err(|err| format!("service {service}: network_mode {mode}: {err}"))?;
            if !self.runtime.is_running(&rec) {
                return Err(format!(
                    "service {service}: network_mode {mode}: container {name} is not running"
                ));
            }
            rec
        } else {
            return Ok(());
        };
        cfg.network = match (&target.netns, &target.config.network) {
            (Some(ns), _) => NetworkMode::Join(ns.clone()),
            (None, NetworkMode::Join(ns)) => NetworkMode::Join(ns.clone()),
            (None, NetworkMode::Host) => NetworkMode::Host,
            _ => {
                return Err(format!(
                    "service {service}: network_mode {mode}: container {} has no network namespace to share (network_mode none)",
                    target.config.name
                ));
            }
        };
        let read = |f: &str| std::fs::read_to_string(target.dir.join(f)).ok();
        cfg.hosts = read("hosts");
        cfg.resolv_conf = read("resolv.conf");
        if svc.hostname.is_none() {
            cfg.hostname = read("hostname").map(|h| h.trim().to_string());
        }
        cfg.labels
            .insert(labels::NETWORK_FROM.into(), target.id.clone());
        Ok(())
    }

    /// Runs [`Engine::sweep_orphan_endpoints`] every two seconds for the daemon's lifetime.
    pub async fn sweep_loop(self: Arc<Self>) {
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            self.sweep_orphan_endpoints().await;
        }
    }
}

/// The addresses a container's names resolve to on one network: A, and AAAA on a dual-stack
/// network (an IPv4-only name still gets an empty NOERROR for AAAA from the server).
fn endpoint_addresses(ep: &berth_netd::state::Endpoint) -> Vec<IpAddr> {
    std::iter::once(IpAddr::V4(ep.address))
        .chain(ep.address6.map(IpAddr::V6))
        .collect()
}

/// /etc/hosts lines naming the container itself on one network (both families, as Docker
/// writes them).
/// The names other services give `service` through `links: ["service:alias"]`. Docker
/// scopes such an alias to the linking container; here it resolves on the networks the two
/// share, which is what a compose file written for `--link` needs.
fn link_aliases(p: &Project, service: &str) -> Vec<String> {
    p.services
        .values()
        .flat_map(|s| s.links.iter())
        .filter_map(|l| l.split_once(':'))
        .filter(|(target, alias)| *target == service && !alias.is_empty())
        .map(|(_, alias)| alias.to_string())
        .collect()
}

/// Why [`Engine::write_name_files`] failed; callers name the key the entry came from.
enum NameFilesError {
    /// An extra host entry (`NAME: why`).
    ExtraHost(String),
    /// A file could not be written.
    Write(String),
}

fn hosts_lines(ep: &berth_netd::state::Endpoint, hostname: &str) -> String {
    endpoint_addresses(ep)
        .iter()
        .map(|a| format!("{a}\t{hostname}\n"))
        .collect()
}
