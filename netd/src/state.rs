//! Desired state on disk: the networks and endpoints netd made, so a restarted netd (or the CLI
//! run twice) knows what exists and `reconcile()` can rebuild kernel state from it.
//!
//! One JSON document, written to a temp file and renamed (atomic, not fsynced), under `<root>/netd/state.json`; an
//! advisory `flock` on `<root>/netd/lock` serialises writers of one instance.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ipam::Ipv4Net;
use crate::ports::PortMapping;

/// One berth network as the user asked for it, with what IPAM chose.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSpec {
    /// 64 hex digits, unique.
    pub id: String,
    /// User-visible name, unique per instance.
    pub name: String,
    /// Kernel bridge name (derived from `id`).
    pub bridge: String,
    /// IPv4 subnet of the network.
    pub subnet: Ipv4Net,
    /// The bridge's address; containers' default route and DNS server.
    pub gateway: Ipv4Addr,
    /// Sub-range automatic addresses come from.
    #[serde(default)]
    pub ip_range: Option<Ipv4Net>,
    /// No egress and no published ports from outside.
    #[serde(default)]
    pub internal: bool,
    /// MTU given at creation; `None` follows the host egress interface.
    #[serde(default)]
    pub mtu: Option<u32>,
    /// Free-form labels (compose project, network key).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Seconds since the epoch.
    #[serde(default)]
    pub created: u64,
    /// IPv6 subnet (`enable_ipv6`); `None` for an IPv4-only network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<crate::ipam6::Ipv6Net>,
    /// The bridge's IPv6 address: containers' IPv6 default route and DNS server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<std::net::Ipv6Addr>,
    /// Sub-range automatic IPv6 addresses come from (`ip_range` of the IPv6 pool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range6: Option<crate::ipam6::Ipv6Net>,
}

/// Where a container's network namespace is found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetnsRef {
    /// A bind-mounted netns file (the pinned namespace of the design).
    Path(PathBuf),
    /// A process whose namespace is used (`/proc/PID/ns/net`).
    Pid(u32),
}

impl NetnsRef {
    /// The file to open.
    pub fn path(&self) -> PathBuf {
        match self {
            NetnsRef::Path(p) => p.clone(),
            NetnsRef::Pid(pid) => PathBuf::from(format!("/proc/{pid}/ns/net")),
        }
    }
}

/// One veth between a container and a network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Container id (opaque to netd).
    pub container: String,
    /// Network id.
    pub network: String,
    /// The container's namespace.
    pub netns: NetnsRef,
    /// Name inside the container (`eth0`, `eth1`, ...).
    pub ifname: String,
    /// Host end name (derived from container + network).
    pub host_ifname: String,
    /// Endpoint address.
    pub address: Ipv4Addr,
    /// MAC of the container end (derived from the address unless the user gave one).
    pub mac: String,
    /// Whether this endpoint carries the container's default route.
    pub default_route: bool,
    /// Published ports.
    #[serde(default)]
    pub ports: Vec<PortMapping>,
    /// DNS aliases (read by the DNS part).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// IPv6 address on an `enable_ipv6` network (given, or by default the IPv4 address's
    /// host index in the IPv6 subnet); the DNS part answers AAAA with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address6: Option<std::net::Ipv6Addr>,
}

/// Everything netd made.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// By id.
    pub networks: BTreeMap<String, NetworkSpec>,
    /// In attach order.
    pub endpoints: Vec<Endpoint>,
}

impl State {
    /// A network by id, exact name, or unique id prefix (as the docker CLI accepts).
    pub fn find_network(&self, key: &str) -> Option<&NetworkSpec> {
        if let Some(n) = self.networks.get(key) {
            return Some(n);
        }
        if let Some(n) = self.networks.values().find(|n| n.name == key) {
            return Some(n);
        }
        let mut it = self.networks.values().filter(|n| n.id.starts_with(key));
        match (it.next(), it.next()) {
            (Some(n), None) if key.len() >= 3 => Some(n),
            _ => None,
        }
    }

    /// Endpoints on a network.
    pub fn endpoints_of(&self, network_id: &str) -> impl Iterator<Item = &Endpoint> {
        self.endpoints
            .iter()
            .filter(move |e| e.network == network_id)
    }
}

/// Why state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is held by another berth process (a running daemon?) for more than 15 s")]
    Busy { path: PathBuf },
    #[error("state file {path} is not valid")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// The on-disk home of one netd instance's state.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
}

/// Holds the instance's write lock until dropped.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

impl StateStore {
    /// `<root>/netd`, created if missing.
    pub fn open(root: &Path) -> Result<Self, StateError> {
        let dir = root.join("netd");
        fs::create_dir_all(&dir).map_err(|source| StateError::Io {
            op: "create directory",
            path: dir.clone(),
            source,
        })?;
        Ok(Self { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// Takes the instance lock, so two CLI processes do not interleave updates.
    pub fn lock(&self) -> Result<StateLock, StateError> {
        let path = self.dir.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| StateError::Io {
                op: "open",
                path: path.clone(),
                source,
            })?;
        // Poll a non-blocking flock: a second CLI command waits its turn, but a holder that
        // never lets go (a running daemon) gives a clear error instead of a silent hang.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            // SAFETY: flock on an fd we own.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                break;
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(StateError::Io {
                    op: "lock",
                    path,
                    source: err,
                });
            }
            if std::time::Instant::now() >= deadline {
                return Err(StateError::Busy { path });
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Ok(StateLock { _file: file })
    }

    /// Reads the state; a missing file is an empty state.
    pub fn load(&self) -> Result<State, StateError> {
        let path = self.file();
        match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| StateError::Parse { path, source })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(source) => Err(StateError::Io {
                op: "read",
                path,
                source,
            }),
        }
    }

    /// The host egress addresses seen by the last reconcile (kept so that a restarted netd
    /// still flushes NAT flows through an address that vanished while it was down).
    pub fn load_egress(&self) -> Vec<Ipv4Addr> {
        fs::read(self.dir.join("egress.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Records the egress addresses (best effort: losing them only skips one flush).
    pub fn save_egress(&self, addrs: &[Ipv4Addr]) {
        let tmp = self.dir.join(".egress.json.tmp");
        if let Ok(b) = serde_json::to_vec(addrs)
            && fs::write(&tmp, b).is_ok()
        {
            let _ = fs::rename(&tmp, self.dir.join("egress.json"));
        }
    }

    /// Writes the state atomically (temp file + rename). No fsync: what the state describes
    /// (bridges, veths, namespaces) does not survive a power loss either, while a crashed or
    /// killed daemon finds the renamed file in the page cache; an fsync cost 1-6 ms per
    /// attach on this machine, more than everything else an attach does.
    pub fn save(&self, state: &State) -> Result<(), StateError> {
        let path = self.file();
        let tmp = self.dir.join(".state.json.tmp");
        let io = |op, source| StateError::Io {
            op,
            path: tmp.clone(),
            source,
        };
        let bytes = serde_json::to_vec_pretty(state).map_err(|source| StateError::Parse {
            path: path.clone(),
            source,
        })?;
        let mut f = File::create(&tmp).map_err(|e| io("create", e))?;
        f.write_all(&bytes).map_err(|e| io("write", e))?;
        fs::rename(&tmp, &path).map_err(|source| StateError::Io {
            op: "rename into place",
            path,
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        assert_eq!(store.load().unwrap(), State::default());
        let mut st = State::default();
        st.networks.insert(
            "abcdef".into(),
            NetworkSpec {
                id: "abcdef".into(),
                name: "front".into(),
                bridge: "berth-x".into(),
                subnet: "10.201.0.0/24".parse().unwrap(),
                gateway: Ipv4Addr::new(10, 201, 0, 1),
                ip_range: None,
                internal: false,
                mtu: None,
                labels: BTreeMap::new(),
                created: 1,
                subnet6: None,
                gateway6: None,
                ip_range6: None,
            },
        );
        let _l = store.lock().unwrap();
        store.save(&st).unwrap();
        let back = store.load().unwrap();
        assert_eq!(back, st);
        assert!(back.find_network("front").is_some());
        assert!(back.find_network("abc").is_some());
        assert!(back.find_network("ab").is_none());
    }
}
