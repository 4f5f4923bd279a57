//! The container-to-container fast path: a unicast frame from one container to another of
//! the same network is handed from the sender's host-side veth straight to the receiver's
//! interface by a tc program (a `bpf` filter on the veth's ingress, `bpf_redirect_peer`),
//! past the bridge and the host's IP hooks that br_netfilter runs on bridged frames (wherever
//! Docker runs, `bridge-nf-call-iptables=1`, which berth must not flip host-wide). Anything
//! the program does not know (the gateway, broadcast, multicast) still goes through the
//! bridge.
//!
//! Per network: one MAC map and one program using it ([`NetProgram`]), attached to each of
//! the network's host veths; a static FDB entry per endpoint keeps the bridge from flooding
//! frames for a MAC it no longer sees. Never on `enable_icc=false` networks (the redirect
//! would pass the port isolation). Where the kernel refuses (no cls_bpf, no permission, the
//! verifier), netd warns once with the reason and uses the bridge alone; an attach never fails
//! for it. After a restart the program and map are found again through the programs attached
//! to the network's veths (nothing is pinned).

pub mod attach;
pub mod fdb;
pub mod insn;
pub mod map;
pub mod prog;
pub mod sys;

mod repair;

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, PoisonError};

use crate::links::{self, LinkError};
use crate::names;
use crate::netd::Netd;
use crate::state::{Endpoint, NetworkSpec};

use map::MacMap;

/// Why the fast path could not be set up for a network or an endpoint.
#[derive(Debug, thiserror::Error)]
pub enum FastPathError {
    /// The kernel refused the program; its verifier's log says why.
    #[error("the kernel refused the fast-path program ({source}){}", verifier(log))]
    Load {
        #[source]
        source: io::Error,
        log: String,
    },
    /// A bpf(2) call failed.
    #[error("bpf: cannot {op}")]
    Bpf {
        op: String,
        #[source]
        source: io::Error,
    },
    /// A netlink call (the veth's index, the FDB) failed.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// Putting the program on a veth (or finding it there) failed.
    #[error(transparent)]
    Attach(#[from] attach::AttachError),
}

fn verifier(log: &str) -> String {
    if log.is_empty() {
        String::new()
    } else {
        format!("; verifier log:\n{log}")
    }
}

impl FastPathError {
    fn bpf(op: impl Into<String>) -> impl FnOnce(io::Error) -> Self {
        let op = op.into();
        move |source| FastPathError::Bpf { op, source }
    }

    /// Whether this is the kernel saying it cannot do it at all (no cls_bpf, no bpf(2), no
    /// permission, the verifier), as opposed to a passing failure for one endpoint.
    fn kernel_cannot(&self) -> bool {
        let e = match self {
            FastPathError::Load { .. } => return true,
            FastPathError::Bpf { source, .. } => source.raw_os_error(),
            FastPathError::Attach(e) => e.errno(),
            FastPathError::Link(_) => return false,
        };
        matches!(
            e,
            Some(libc::EPERM | libc::EACCES | libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP | 524)
        )
    }
}

/// One network's program and the map it reads.
#[derive(Debug)]
pub struct NetProgram {
    /// The loaded program.
    pub prog: OwnedFd,
    /// Its kernel id (how it is recognised among a device's programs).
    pub id: u32,
    /// Its map.
    pub map: MacMap,
}

impl NetProgram {
    fn new() -> Result<Self, FastPathError> {
        let map = MacMap::create().map_err(FastPathError::bpf("create the MAC map"))?;
        let prog = prog::load_for(map.fd()).map_err(|e| FastPathError::Load {
            source: e.err,
            log: e.log,
        })?;
        let id = sys::prog_info(prog.as_fd())
            .map_err(FastPathError::bpf("read the program's id"))?
            .id;
        Ok(Self { prog, id, map })
    }

    /// The program found on a port and its map.
    fn from_found(f: attach::Found) -> Result<Option<Self>, FastPathError> {
        let [map_id] = f.info.map_ids[..] else {
            return Ok(None);
        };
        let map = MacMap::by_id(map_id).map_err(FastPathError::bpf("open the MAC map by id"))?;
        Ok(Some(Self {
            prog: f.fd,
            id: f.info.id,
            map,
        }))
    }
}

/// netd's fast-path bookkeeping: whether it is on, why it went off, each network's program.
#[derive(Debug)]
pub(crate) struct FastPath {
    /// The switch (`Config::fast_path`).
    wanted: bool,
    /// Set (and warned about, once) when the kernel cannot do it.
    off: Arc<Mutex<Option<String>>>,
    /// By network id.
    nets: Mutex<HashMap<String, Arc<NetProgram>>>,
    /// The ifindex each endpoint's host veth had when it was put on the fast path (by host
    /// interface name): its map entry is removed only while it still points there.
    ports: Mutex<HashMap<String, u32>>,
}

impl FastPath {
    pub(crate) fn new(wanted: bool) -> Self {
        Self {
            wanted,
            off: Arc::new(Mutex::new(None)),
            nets: Mutex::new(HashMap::new()),
            ports: Mutex::new(HashMap::new()),
        }
    }

    fn active(&self) -> bool {
        self.wanted
            && self
                .off
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_none()
    }

    fn cached(&self, network: &str) -> Option<Arc<NetProgram>> {
        self.nets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(network)
            .cloned()
    }

    fn keep(&self, network: &str, p: NetProgram) -> Arc<NetProgram> {
        let p = Arc::new(p);
        self.nets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(network.to_string(), p.clone());
        p
    }

    fn record_port(&self, host_ifname: &str, port: u32) {
        self.ports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(host_ifname.to_string(), port);
    }

    fn forget_port(&self, host_ifname: &str) -> Option<u32> {
        self.ports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(host_ifname)
    }

    /// Handles a failure: the kernel cannot (warned once, then off) or a passing one.
    fn failed(&self, what: &str, err: &FastPathError) {
        note_failure(&self.off, what, err)
    }
}

/// A failure of the fast path: the kernel cannot (warned once naming the reason, then off
/// for this netd) or a passing one (warned, this endpoint uses the bridge).
fn note_failure(off: &Mutex<Option<String>>, what: &str, err: &FastPathError) {
    let chain = crate::report::chain(err);
    if err.kernel_cannot() {
        let mut off = off.lock().unwrap_or_else(PoisonError::into_inner);
        if off.is_none() {
            tracing::warn!(reason = %chain, "container-to-container fast path off: {what} failed; containers talk through the bridge");
            *off = Some(chain);
        }
    } else {
        tracing::warn!(error = %chain, "fast path: {what} failed; this endpoint's frames go through the bridge");
    }
}

/// Whether a network's containers may take the fast path (they may talk to each other).
pub(crate) fn applies_to(n: &NetworkSpec) -> bool {
    !n.options.no_icc
}

/// The MAC an endpoint's interface has.
pub(crate) fn mac_of(e: &Endpoint) -> [u8; 6] {
    names::parse_mac(&e.mac).unwrap_or_else(|| names::endpoint_mac(e.address))
}

impl Netd {
    /// The network's program: kept, else found on one of `ports` (a restarted netd), else
    /// loaded afresh.
    async fn net_program(
        &self,
        n: &NetworkSpec,
        ports: &[u32],
    ) -> Result<Arc<NetProgram>, FastPathError> {
        if let Some(p) = self.fast_path.cached(&n.id) {
            return Ok(p);
        }
        for &port in ports {
            let Ok(Some(f)) = attach::ours_on(self.kernel.host(), port).await else {
                continue;
            };
            if let Some(p) = NetProgram::from_found(f)? {
                tracing::info!(network = %n.name, prog_id = p.id, "fast path: found the network's program again");
                return Ok(self.fast_path.keep(&n.id, p));
            }
        }
        Ok(self.fast_path.keep(&n.id, NetProgram::new()?))
    }

    /// Puts a new endpoint on its network's fast path: the program on its host veth's
    /// ingress, its MAC in the map, a static FDB entry. A failure is warned about, never
    /// returned: the endpoint then talks through the bridge.
    pub(crate) async fn fast_path_add(&self, n: &NetworkSpec, e: &Endpoint, bridge: u32) {
        if !self.fast_path.active() || !applies_to(n) {
            return;
        }
        if let Err(err) = self.try_fast_path_add(n, e, bridge).await {
            self.fast_path
                .failed(&format!("adding {}", e.host_ifname), &err);
        }
    }

    async fn try_fast_path_add(
        &self,
        n: &NetworkSpec,
        e: &Endpoint,
        bridge: u32,
    ) -> Result<(), FastPathError> {
        let host = self.kernel.host();
        let port = links::link_by_name(host, &e.host_ifname)
            .await?
            .ok_or(LinkError::Missing {
                name: e.host_ifname.clone(),
            })?
            .index;
        let p = match self.fast_path.cached(&n.id) {
            Some(p) => p,
            None => {
                // Once per network and netd run: look for the program on the bridge's ports.
                let ports: Vec<u32> = links::list_links(host)
                    .await?
                    .into_iter()
                    .filter(|l| l.controller == Some(bridge) && l.index != port)
                    .map(|l| l.index)
                    .collect();
                self.net_program(n, &ports).await?
            }
        };
        let mac = mac_of(e);
        // Never over another live endpoint's entry (the planner refuses a MAC held in the
        // network; this holds whatever got past it).
        if let Some(other) = p
            .map
            .get(&mac)
            .map_err(FastPathError::bpf("read the map"))?
            .filter(|o| *o != port)
            && links::list_links(host)
                .await?
                .iter()
                .any(|l| l.index == other && l.controller == Some(bridge))
        {
            return Err(LinkError::Refused {
                what: format!(
                    "{} for {}: the map sends it to port {other}, another endpoint's",
                    names::mac_string(&mac),
                    e.host_ifname
                ),
            }
            .into());
        }
        // The static FDB entry first: the bridge must know the port before frames skip it.
        fdb::add_static(host, bridge, port, &mac).await?;
        p.map
            .set(&mac, port)
            .map_err(FastPathError::bpf("add the endpoint's MAC to the map"))?;
        self.fast_path.record_port(&e.host_ifname, port);
        attach::attach(host, p.prog.as_fd(), port).await?;
        Ok(())
    }

    /// Takes an endpoint off its network's fast path before its veth goes (the program and
    /// FDB entry go with the device; the map entry would not).
    pub(crate) async fn fast_path_remove(&self, e: &Endpoint) {
        let recorded = self.fast_path.forget_port(&e.host_ifname);
        let Some(p) = self.fast_path.cached(&e.network) else {
            return;
        };
        let mac = mac_of(e);
        let Ok(Some(target)) = p.map.get(&mac) else {
            return;
        };
        // Only the entry that still points at this endpoint's veth: the index recorded when it
        // was put on the fast path, else the veth's if it is still there. A container that has
        // the MAC since keeps its entry; one nobody can place is left to reconcile, which drops
        // the entries of endpoints that are gone.
        let port = match recorded {
            Some(i) => Some(i),
            None => links::link_by_name(self.kernel.host(), &e.host_ifname)
                .await
                .ok()
                .flatten()
                .map(|l| l.index),
        };
        if port == Some(target)
            && let Err(err) = p.map.remove(&mac)
        {
            tracing::warn!(endpoint = %e.host_ifname, %err, "fast path: removing the MAC from the map");
        }
    }

    /// Forgets a removed network's program (its map and program are freed with the last
    /// device and this handle).
    pub(crate) fn fast_path_forget_network(&self, network_id: &str) {
        self.fast_path
            .nets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(network_id);
    }

    /// The fast path's MAC map of a network as the kernel holds it (MAC text -> ifindex);
    /// `None` when the network has no program. For tools and tests.
    pub async fn fast_path_entries(&self, network: &str) -> Option<Vec<(String, u32)>> {
        let id = self.lock().await.state.find_network(network)?.id.clone();
        let p = self.fast_path.cached(&id)?;
        let m = p.map.entries().ok()?;
        Some(m.iter().map(|(k, v)| (names::mac_string(k), *v)).collect())
    }

    /// The kernel id of a network's fast-path program, `None` when it has none. For tools and
    /// tests (with [`sys::enable_stats`] its run count is in [`sys::prog_info`]).
    pub async fn fast_path_program(&self, network: &str) -> Option<u32> {
        let id = self.lock().await.state.find_network(network)?.id.clone();
        self.fast_path.cached(&id).map(|p| p.id)
    }

    /// Why the fast path is off, `None` while it is on (or switched off by the config).
    pub fn fast_path_off_reason(&self) -> Option<String> {
        self.fast_path
            .off
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
