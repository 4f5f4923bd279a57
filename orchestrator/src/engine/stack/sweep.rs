//! The sweeps that drop what netd no longer has or should not have: the endpoints of a
//! container that is gone without a clean detach (a `--rm` container the shim removed when it
//! exited), and the DNS names of endpoints netd forgot (its reconcile forgets the endpoints of
//! a container whose namespace died), so a dead container's names never answer with, or pose
//! as, a new container's address.
//!
//! Every two seconds, and driven by what changed: the containers removed since the last look
//! (inotify on the containers directory) and the endpoints netd removed since then
//! ([`Netd::removed_since`]), so a sweep costs the changes, not a copy of netd's state and a
//! `stat` per endpoint. When either cannot say (no inotify, its queue overflowed, netd's log
//! of removals left behind) the sweep looks at everything once, as it does at start.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::Path;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use super::*;

/// The containers directory under inotify, for the names of container directories that went
/// (deleted, or renamed aside as a removal does first).
struct Removals {
    fd: Inotify,
}

impl Removals {
    fn watch(dir: &Path) -> Option<Self> {
        let fd = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
        fd.add_watch(
            dir,
            AddWatchFlags::IN_DELETE | AddWatchFlags::IN_MOVED_FROM | AddWatchFlags::IN_ONLYDIR,
        )
        .ok()?;
        Some(Self { fd })
    }

    /// The container directories that went since the last call; `None` when the watch lost
    /// track (its queue overflowed, the directory itself went).
    fn drain(&mut self) -> Option<HashSet<OsString>> {
        let mut names = HashSet::new();
        loop {
            let events = match self.fd.read_events() {
                Ok(ev) => ev,
                Err(nix::errno::Errno::EAGAIN) => return Some(names),
                Err(_) => return None,
            };
            if events.is_empty() {
                return Some(names);
            }
            for ev in events {
                if ev
                    .mask
                    .intersects(AddWatchFlags::IN_Q_OVERFLOW | AddWatchFlags::IN_IGNORED)
                {
                    return None;
                }
                if let Some(n) = ev.name
                    && !n.as_encoded_bytes().starts_with(b".")
                {
                    names.insert(n);
                }
            }
        }
    }
}

/// Where the sweep loop is: what it follows, and whether it must look at everything.
struct Sweeper {
    removals: Option<Removals>,
    cursor: u64,
    whole: bool,
}

impl Engine {
    /// Detaches endpoints whose container is gone (its directory and its pinned namespace no
    /// longer exist), and drops the DNS names of containers netd has no endpoint for: the
    /// whole-state sweep, for when what changed is not known.
    pub async fn sweep_orphan_endpoints(&self) {
        let state = self.netd.state().await;
        let mut gone: Vec<String> = state
            .endpoints
            .iter()
            .filter(|ep| self.container_gone(ep))
            .map(|ep| ep.container.clone())
            .collect();
        gone.dedup();
        self.detach_removed(&gone).await;
        // DNS records whose endpoint netd no longer has. A record missing from the first
        // snapshot may have been attached since (its attach comes before its record): only
        // those are checked again, against a state read after the records.
        // (network, container) of every endpoint, looked up once per record: a scan of every
        // endpoint per record would grow with the square of the containers.
        let index = |st: &berth_netd::state::State| -> HashSet<(String, String)> {
            st.endpoints
                .iter()
                .map(|ep| (ep.network.clone(), ep.container.clone()))
                .collect()
        };
        let before = index(&state);
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
            .filter(|(id, name, r)| !attached(&before, id, name, &r.container))
            .collect();
        if suspects.is_empty() {
            return;
        }
        let now = index(&self.netd.state().await);
        for (net_id, net_name, rec) in suspects {
            if !attached(&now, &net_id, &net_name, &rec.container) {
                tracing::info!(container = %rec.container, network = %net_name, "dropping the DNS names of a detached container");
                self.dns.records().remove_endpoint(&net_name, &rec.id);
            }
        }
    }

    /// Whether the container of `ep` is gone: its pinned namespace and its directory.
    fn container_gone(&self, ep: &berth_netd::state::Endpoint) -> bool {
        matches!(&ep.netns, NetnsRef::Path(p) if !p.exists())
            && !self.root.join("containers").join(&ep.container).exists()
    }

    /// Drops the names and endpoints of containers found gone.
    async fn detach_removed(&self, gone: &[String]) {
        for id in gone {
            tracing::info!(container = %id, "detaching the endpoints of a removed container");
            if let Some(err) = self.disconnect_container(id).await {
                tracing::warn!(%err, "sweeping a removed container's endpoints");
            }
        }
    }

    /// The sweep for the containers whose directories went since the last one: those of them
    /// that still have endpoints (no clean detach) lose them and their names.
    async fn sweep_removed_containers(&self, removed: &HashSet<OsString>) {
        let ids: HashSet<&str> = removed.iter().filter_map(|n| n.to_str()).collect();
        let mut gone: Vec<String> = self
            .netd
            .endpoints_of_containers(&ids)
            .await
            .iter()
            .filter(|ep| self.container_gone(ep))
            .map(|ep| ep.container.clone())
            .collect();
        gone.sort();
        gone.dedup();
        self.detach_removed(&gone).await;
    }

    /// The sweep for the endpoints netd removed since the last one: the DNS names of each
    /// (network, container) that has no endpoint now are dropped. Record ids are container
    /// ids (every record the engine registers is named by its container).
    async fn sweep_removed_endpoints(&self, removed: Vec<(String, String)>) {
        if removed.is_empty() {
            return;
        }
        let names: HashMap<String, String> = self
            .netd
            .networks()
            .await
            .into_iter()
            .map(|n| (n.id, n.name))
            .collect();
        let ids: HashSet<&str> = removed.iter().map(|(_, c)| c.as_str()).collect();
        let now: HashSet<(String, String)> = self
            .netd
            .endpoints_of_containers(&ids)
            .await
            .into_iter()
            .map(|ep| (ep.network, ep.container))
            .collect();
        for (net_id, container) in &removed {
            let Some(net_name) = names.get(net_id) else {
                continue;
            };
            if !attached(&now, net_id, net_name, container)
                && self.dns.records().remove_endpoint(net_name, container)
            {
                tracing::info!(%container, network = %net_name, "dropping the DNS names of a detached container");
            }
        }
    }

    /// One round of the sweep loop.
    async fn sweep_once(&self, s: &mut Sweeper) {
        if s.whole {
            // Followed from here on: what changes while everything is looked at is seen
            // by the next round.
            s.removals = Removals::watch(&self.root.join("containers"));
            s.cursor = self.netd.removal_cursor().await;
            s.whole = s.removals.is_none();
            self.sweep_orphan_endpoints().await;
            return;
        }
        match s.removals.as_mut().map(Removals::drain) {
            Some(Some(removed)) if !removed.is_empty() => {
                self.sweep_removed_containers(&removed).await
            }
            Some(Some(_)) => {}
            _ => {
                s.whole = true;
                return;
            }
        }
        let r = self.netd.removed_since(s.cursor).await;
        s.cursor = r.cursor;
        match r.endpoints {
            Some(removed) => self.sweep_removed_endpoints(removed).await,
            None => s.whole = true,
        }
    }

    /// Sweeps every two seconds for the daemon's lifetime: everything at first, then what
    /// changed (see the module's doc).
    pub async fn sweep_loop(self: Arc<Self>) {
        let mut s = Sweeper {
            removals: None,
            cursor: 0,
            whole: true,
        };
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            self.sweep_once(&mut s).await;
        }
    }
}

/// Whether (network, container) is in `idx`, the network named by id or name.
fn attached(idx: &HashSet<(String, String)>, net_id: &str, net_name: &str, c: &str) -> bool {
    [net_id, net_name]
        .iter()
        .any(|n| idx.contains(&(n.to_string(), c.to_string())))
}
