//! Reading what runs: the observation a plan starts from and the rows of `berth ps`, both
//! over the one members query.

use super::*;

impl Engine {
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
        for m in project_members::of_project(&self.runtime, &project.name, OneOffs::Include) {
            let (rec, st) = (&m.rec, &m.state);
            let l = &rec.config.labels;
            let (attached, defects) = wiring(rec, &net_state, &named);
            obs.containers.push(ObservedContainer {
                id: rec.id.clone(),
                name: rec.config.name.clone(),
                service: m.service.clone(),
                number: m.number,
                config_hash: l.get(labels::CONFIG_HASH).cloned().unwrap_or_default(),
                image_id: l.get(labels::IMAGE).cloned(),
                oneoff: m.oneoff,
                state: container_state(&self.runtime, rec, st),
                anonymous_volumes: anonymous_mounts(rec),
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
            if self.runtime.volume_exists(&v.name) {
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

    /// `berth ps`: the project's containers (all of them with `all`).
    pub async fn ps(&self, project: &str, all: bool) -> Vec<PsRow> {
        let state = self.netd.state().await;
        // Each container's endpoints, found once: a scan of every endpoint per container
        // would grow with the square of the containers.
        let mut endpoints: HashMap<&str, Vec<&berth_netd::state::Endpoint>> = HashMap::new();
        for e in &state.endpoints {
            endpoints.entry(e.container.as_str()).or_default().push(e);
        }
        let mut rows = Vec::new();
        for m in project_members::of_project(&self.runtime, project, OneOffs::Include) {
            let (rec, st) = (m.rec, m.state);
            let l = &rec.config.labels;
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
            let own = endpoints
                .get(rec.id.as_str())
                .map_or(&[][..], Vec::as_slice);
            let ports = own
                .iter()
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
            let (image, _) = crate::engine::status_text::image_of(&rec.dir, l);
            let now = std::time::SystemTime::now();
            let docker_state = crate::engine::status_text::state(&self.runtime, &rec, &st);
            let mut mounts = Vec::new();
            let mut local_volumes = 0;
            for m in &rec.config.mounts {
                match m {
                    berth_runtime::container::MountSpec::Volume { name, .. } => {
                        local_volumes += 1;
                        mounts.push(name.clone());
                    }
                    berth_runtime::container::MountSpec::Bind { source, .. } => {
                        mounts.push(source.display().to_string());
                    }
                    _ => {}
                }
            }
            let networks = own
                .iter()
                .filter_map(|e| state.networks.get(&e.network).map(|n| n.name.clone()))
                .collect();
            rows.push(PsRow {
                id: rec.id.clone(),
                name: rec.config.name.clone(),
                service: m.service.clone(),
                image,
                // As Docker lists it: the arguments joined by spaces, unquoted.
                command: rec.config.args.join(" "),
                status,
                health: self
                    .health
                    .current(&rec, &st, running)
                    .map(|h| h.as_str().to_string()),
                exit_code: st.exit_code,
                ports,
                created: st
                    .created_at
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64),
                status_line: crate::engine::status_text::status_line(docker_state, &st, now),
                running_for: format!(
                    "{} ago",
                    crate::engine::status_text::human_duration(
                        now.duration_since(st.created_at).unwrap_or_default()
                    )
                ),
                labels: l.clone(),
                mounts,
                local_volumes,
                networks,
            });
        }
        drop(endpoints);
        drop(state);
        crate::engine::memory::give_back().await;
        rows
    }
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
        let defects = crate::engine::observed::wiring_defects(&crate::engine::observed::Wiring {
            half_made,
            ..Default::default()
        });
        return (None, defects);
    }
    let mut w = crate::engine::observed::Wiring {
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
    let defects = crate::engine::observed::wiring_defects(&w);
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
