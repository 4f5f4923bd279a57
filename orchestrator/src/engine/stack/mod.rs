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
use berth_runtime::container::volumes::CreateWithVolumesError;
use berth_runtime::container::{NetworkMode, Record, Runtime, RuntimeConfig, State, Status};
use berth_runtime::image::ImageStore;

use super::execute::{Backend, ExecOptions, ExecReport, execute};
use super::health::{Health, HealthBook};
use super::labels;
use super::observed::{ContainerState, Observed, ObservedContainer};
use super::plan::Step;
use super::project_members::{self, Member, OneOffs};
use super::reconcile::{PlanError, plan_down, plan_up, rmi_images};
use super::translate;
use crate::api::project::{
    BuildOptions, DownOptions, OneOff, Outcome, PsRow, UpOptions, VerbOutcome,
};
use crate::compose::{DependsCondition, Project, service_hash};

mod api_socket;
mod attach;
mod backend;
mod build;
mod build_order;
mod connect;
mod external_links;
mod network_join;
mod observe;
mod shared_namespaces;
mod sweep;
mod verbs;
mod volumes_from;

use attach::*;
pub use backend::*;
pub use connect::*;

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
    #[error("no such service: {0}")]
    NoSuchService(String),
}

/// What the services (`selected`, or all) ask that this host's cgroups cannot apply
/// (block I/O weights without a scheduler that has them, `oom_kill_disable` on cgroup v2),
/// named by service and key, as Docker warns at create.
fn host_warnings(project: &Project, selected: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for (name, svc) in &project.services {
        if !selected.is_empty() && !selected.contains(name) {
            continue;
        }
        // A spec that does not translate fails at create, with its own error.
        let Ok(spec) = super::translate::service_spec(project, name, svc, name) else {
            continue;
        };
        for w in super::container_spec::host_warnings(&spec.host_config, true) {
            out.push(format!("service {name:?}: {w}"));
        }
    }
    out
}

/// What executing `plan` did, as the CLI prints it.
fn outcome(plan: &super::plan::Plan, report: ExecReport) -> Outcome {
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

fn rand_bytes() -> [u8; 4] {
    let mut b = [0u8; 4];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut b);
    }
    b
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
    /// Restarts made by a container's restart policy, by container id, since the daemon
    /// started (Docker's `RestartCount`).
    restarts: Mutex<HashMap<String, u32>>,
    /// One `up`/`down` per project at a time.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// The runtime config of an instance, the one place it is made: the daemon's engine, its
/// Docker API and event watch, and the CLI all open their runtime with it (their containers
/// must land under the same cgroup parent): `BERTH_CGROUP_PARENT`, when set,
/// keeps an instance's cgroups apart (tests and benches prove they leave none).
pub fn runtime_config(root: &Path, run: &Path, shim_exe: PathBuf) -> RuntimeConfig {
    let mut cfg = RuntimeConfig::new(root.to_path_buf(), run.to_path_buf(), shim_exe);
    if let Ok(parent) = std::env::var("BERTH_CGROUP_PARENT")
        && !parent.is_empty()
    {
        cfg.cgroup_parent = parent;
    }
    cfg
}

impl Engine {
    /// Opens every part for the instance; netd reconciles what it finds on disk.
    pub async fn open(
        root: &Path,
        run: &Path,
        shim_exe: PathBuf,
    ) -> Result<Arc<Self>, EngineError> {
        Self::open_with(root, run, shim_exe, true).await
    }

    /// [`Engine::open`] choosing whether netd takes the container-to-container fast path
    /// (`berth daemon --no-fast-path` does not).
    pub async fn open_with(
        root: &Path,
        run: &Path,
        shim_exe: PathBuf,
        fast_path: bool,
    ) -> Result<Arc<Self>, EngineError> {
        let runtime = Runtime::new(runtime_config(root, run, shim_exe.clone()));
        let images = ImageStore::open(root).map_err(|source| EngineError::Images {
            root: root.to_path_buf(),
            source,
        })?;
        let mut netd_cfg = berth_netd::Config::new(root);
        netd_cfg.table = Some(table_name(root));
        netd_cfg.fast_path = fast_path;
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
            restarts: Mutex::new(HashMap::new()),
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
        // One record cache for both pollers: it holds the records of containers with a
        // healthcheck or a restart policy (the only ones either poller looks at).
        let records = super::record_cache::RecordCache::shared(&engine.root, |r| {
            let l = &r.config.labels;
            l.contains_key(super::labels::HEALTHCHECK) || l.contains_key(super::labels::RESTART)
        });
        tokio::spawn(super::health::watch(
            engine.runtime.clone(),
            records.clone(),
            engine.health.clone(),
        ));
        let watch = engine.clone();
        tokio::spawn(async move { watch.follow_host_changes().await });
        tokio::spawn(super::restart::run(engine.clone(), records));
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
            let links = rec
                .map(|(r, _)| super::labels::links(&r.config.labels))
                .unwrap_or_default();
            let mut names: Vec<String> = name.into_iter().collect();
            names.extend(ep.aliases.iter().cloned());
            let net_name = state
                .networks
                .values()
                .find(|n| n.id == ep.network || n.name == ep.network)
                .map(|n| n.name.clone())
                .unwrap_or_else(|| ep.network.clone());
            let _ =
                self.dns.records().add_endpoint(
                    &net_name,
                    DnsEndpoint {
                        id: ep.container.clone(),
                        container: ep.container.clone(),
                        addresses: endpoint_addresses(ep),
                        names,
                        dns_servers,
                        links: links
                            .into_iter()
                            .chain(rec.map_or_else(Vec::new, |(r, _)| {
                                super::connect_links::of(r, &net_name)
                            }))
                            .collect(),
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
        let (rec, waiter) = blocking(move || {
            // By id (what plans carry) the record is read directly; `resolve` reads every
            // container's record, which made a teardown of N containers O(N²).
            let rec = match Record::load(&e.root.join("containers").join(&key)) {
                Ok(rec) if rec.id == key => rec,
                _ => e
                    .runtime
                    .resolve(&key)
                    .map_err(|err| crate::api::error::error_chain(&err))?,
            };
            // A failing pre_stop hook does not keep the container from stopping.
            if e.runtime.is_running(&rec)
                && let Err(err) =
                    crate::engine::hooks::run(&e.runtime, &rec, crate::engine::hooks::PRE_STOP)
            {
                tracing::warn!(container = %rec.config.name, %err, "pre_stop hook failed");
            }
            let waiter = e
                .runtime
                .stop_begin(&rec, timeout)
                .map_err(|err| crate::api::error::error_chain(&err))?;
            Ok((rec, waiter))
        })
        .await?;
        // The grace period passes on the event loop, not on a blocking thread: a `down` of
        // hundreds of containers would otherwise hold hundreds of threads (and their stacks)
        // while they stop.
        let t = std::time::Instant::now();
        let rec = match waiter {
            Some(w) => {
                exit_told(&w).await;
                let e = self.clone();
                blocking(move || {
                    e.runtime
                        .finish_wait(&rec, w)
                        .map_err(|err| crate::api::error::error_chain(&err))?;
                    Ok(rec)
                })
                .await?
            }
            None => rec,
        };
        tracing::debug!(container = %rec.config.name, stop_ms = t.elapsed().as_millis() as u64, "stopped");
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
                .map_err(|err| crate::api::error::error_chain(&err))?;
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
        if let Err(err) = self.netd.release(&id).await {
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
        let mut t =
            translate::container_config(&project, service, &svc, 0, &image, "", &BTreeMap::new())
                .map_err(|err| crate::api::error::error_chain(&err))?;
        if !run.use_aliases
            && let Some(connect) = &mut t.connect
        {
            for net in &mut connect.networks {
                net.aliases.clear();
            }
        }
        let cfg = &mut t.config;
        let suffix = hex::encode(rand_bytes());
        cfg.name = run
            .name
            .unwrap_or_else(|| format!("{}-{service}-run-{suffix}", project.name));
        cfg.hostname = Some(cfg.name.clone());
        cfg.labels.insert(labels::ONEOFF.into(), "True".into());
        cfg.labels.remove(labels::RESTART);
        cfg.tty = run.tty;
        cfg.open_stdin = run.tty;
        self.create_service_container(&project, service, &svc, t, &reference)
            .await
            .map(|rec| rec.id)
    }

    /// Makes a translated container of `service` (a replica or a one-off): joins the
    /// namespace `network_mode: service:|container:` names, makes its anonymous volumes,
    /// records its image through the runtime, joins its networks through the one attach
    /// path (errors worded by the service's keys) and marks it whole; on failure nothing of
    /// it is left.
    pub(super) async fn create_service_container(
        self: &Arc<Self>,
        project: &Project,
        service: &str,
        svc: &crate::compose::Service,
        mut t: super::container_spec::Translated,
        reference: &str,
    ) -> Result<Record, String> {
        self.join_shared_network(project, service, svc, &mut t.config)?;
        self.join_shared_namespaces(project, service, svc, &mut t.config)?;
        self.bind_api_socket(service, svc, &mut t.config)?;
        self.share_service_volumes(project, service, svc, &mut t.config)?;
        // A service on no network (its own namespace, nothing attached) joins none.
        let connect = t.connect.filter(|_| !svc.networks.is_empty());
        let rec = self.create_with_volumes(t.config).await?;
        let mut failed = None;
        if let Some(id) = &t.image_id
            && let Err(err) = self.runtime.record_image(&rec, id, reference)
        {
            failed = Some(crate::api::error::error_chain(&err));
        }
        if failed.is_none()
            && let Some(mut req) = connect
        {
            req.container = rec.id.clone();
            failed = match self.external_links(service, svc) {
                Ok(links) => {
                    req.links = links;
                    self.connect_service(project, service, svc, &rec, req)
                        .await
                        .err()
                }
                Err(err) => Some(err),
            };
        }
        if failed.is_none() {
            failed = self
                .runtime
                .finish_create(&rec)
                .err()
                .map(|e| crate::api::error::error_chain(&e));
        }
        if let Some(err) = failed {
            let cleanup = self.stop_and_remove(&rec.id, true, true, None).await;
            return Err(match cleanup {
                Ok(()) => err,
                Err(c) => format!("{err}; cleanup also failed: {c}"),
            });
        }
        Ok(rec)
    }

    /// [`Engine::connect_record`] for a container of `service`, naming the service and the
    /// key the user wrote in netd's refusals of a static IPv6 address and in `extra_hosts`
    /// errors.
    async fn connect_service(
        &self,
        project: &Project,
        service: &str,
        svc: &crate::compose::Service,
        rec: &Record,
        req: crate::api::project::ContainerConnect,
    ) -> Result<(), String> {
        let name = rec.config.name.clone();
        let keys_with_ipv6: BTreeMap<String, (String, String)> = svc
            .networks
            .iter()
            .filter_map(|(key, opt)| {
                let a6 = opt.as_ref()?.ipv6_address.clone()?;
                let net = project.networks.get(key)?;
                Some((net.name.clone(), (key.clone(), a6)))
            })
            .collect();
        let netd_error = |err: berth_netd::NetdError| match &err {
            berth_netd::NetdError::Ipv6Address { network, what } => {
                match keys_with_ipv6.get(network) {
                    Some((key, a6)) => {
                        format!("service {service}: networks.{key}.ipv6_address {a6}: {what}")
                    }
                    None => format!("attaching {name}: {}", crate::api::error::error_chain(&err)),
                }
            }
            _ => format!("attaching {name}: {}", crate::api::error::error_chain(&err)),
        };
        let name_files_error = |err| match err {
            NameFilesError::ExtraHost(what) => format!("service {service}: extra_hosts.{what}"),
            NameFilesError::Write(what) => what,
        };
        self.connect_record(rec, req, netd_error, name_files_error)
            .await
            .map(|_| ())
    }

    /// Creates a container, marked as being created, with its anonymous volumes (see
    /// [`Runtime::create_pending_with_volumes`]).
    async fn create_with_volumes(
        self: &Arc<Self>,
        cfg: berth_runtime::container::ContainerConfig,
    ) -> Result<Record, String> {
        let runtime = self.runtime.clone();
        blocking(move || {
            let name = cfg.name.clone();
            runtime
                .create_pending_with_volumes(cfg)
                .map_err(|err| match err {
                    CreateWithVolumesError::Volume(err) => {
                        format!("container {name}: anonymous volume: {err}")
                    }
                    CreateWithVolumesError::Create(err) => crate::api::error::error_chain(&err),
                })
        })
        .await
    }

    /// The health of a container with a healthcheck, as its checks found it so far.
    pub fn health_of(&self, id: &str) -> Option<Health> {
        self.health.get(id)
    }

    /// The health inspect shows: status, failures in a row and the last checks' results.
    pub fn health_report(
        &self,
        rec: &Record,
        st: &berth_runtime::container::State,
        running: bool,
    ) -> Option<super::health::HealthReport> {
        self.health.report(rec, st, running)
    }

    /// How many times the restart policy restarted the container since the daemon started.
    pub fn restart_count(&self, id: &str) -> u32 {
        self.restarts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .copied()
            .unwrap_or(0)
    }

    /// Counts one policy restart of `id`; `forget` drops the count of a container gone.
    pub(super) fn count_restart(&self, id: &str, forget: bool) {
        let mut map = self.restarts.lock().unwrap_or_else(PoisonError::into_inner);
        if forget {
            map.remove(id);
        } else {
            *map.entry(id.to_string()).or_default() += 1;
        }
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

    /// `berth up`: converge the project and report.
    pub async fn up(
        self: &Arc<Self>,
        project: Project,
        opts: UpOptions,
    ) -> Result<Outcome, EngineError> {
        let lock = self.project_lock(&project.name);
        let _held = lock.lock().await;
        if opts.build && !opts.dry_run {
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
        let mut plan = plan_up(&project, &observed, &opts)?;
        plan.warnings
            .extend(host_warnings(&project, &opts.services));
        if opts.dry_run {
            return Ok(Outcome {
                plan: plan.to_string(),
                ..Outcome::default()
            });
        }
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
        super::memory::give_back().await;
        Ok(outcome(&plan, report))
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
        if opts.dry_run {
            return Ok(Outcome {
                plan: plan.to_string(),
                ..Outcome::default()
            });
        }
        let images = opts.rmi.map(|scope| rmi_images(scope, &project));
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
            release_on_failure: false,
        };
        let report = execute(&plan, backend.clone(), exec).await;
        let mut outcome = outcome(&plan, report);
        outcome.failures.extend(backend.finish().await);
        for image in images.unwrap_or_default() {
            let store = self.images.clone();
            let reference = image.clone();
            let removed = blocking(move || match store.remove(&reference, false) {
                Ok(rep) => Ok(Some(rep)),
                // Never pulled or built: nothing to remove, as compose.
                Err(berth_runtime::image::StoreError::NotFound { .. }) => Ok(None),
                Err(err) => Err(crate::api::error::error_chain(&err)),
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
        super::memory::give_back().await;
        Ok(outcome)
    }
}

/// How many teardown steps run at once: `BERTH_TEARDOWN_PARALLEL` (at most 4096), else 32.
pub(super) fn teardown_parallelism() -> usize {
    std::env::var("BERTH_TEARDOWN_PARALLEL")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(32)
        .min(4096)
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

/// Waits, without a thread, until the shim's answer to a stop is readable on `w` (its line,
/// or the end of the connection when the shim died); `w` is blocking again afterwards, to be
/// read at once. Where the wait cannot be set up, the read simply blocks.
async fn exit_told(w: &std::os::unix::net::UnixStream) {
    let Ok(dup) = w.try_clone() else {
        return;
    };
    // O_NONBLOCK belongs to the open file, which the duplicate shares.
    if dup.set_nonblocking(true).is_ok()
        && let Ok(tw) = tokio::net::UnixStream::from_std(dup)
    {
        let _ = tw.readable().await;
    }
    let _ = w.set_nonblocking(false);
}
