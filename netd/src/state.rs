//! Desired state on disk: the networks and endpoints netd made, so a restarted netd (or the CLI
//! run twice) knows what exists and `reconcile()` can rebuild kernel state from it.
//!
//! One JSON document, written to a temp file and renamed (atomic, not fsynced), under
//! `<root>/netd/state.json`, followed by the journal of the changes since
//! (`state.<journal>.log`, [`crate::state_journal`]): a save appends what changed, and writes
//! the state whole only when the journal has grown past the state's own size, so a save costs
//! about the size of the change whatever the number of endpoints. An advisory `flock` on
//! `<root>/netd/lock` serialises writers of one instance.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::ipam::Ipv4Net;
use crate::ports::PortMapping;
use crate::state_journal;

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
    /// Addresses reserved by host name (`aux_addresses`): no endpoint is given one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aux_addresses: BTreeMap<String, std::net::IpAddr>,
    /// Docker bridge driver options other than the MTU and the bridge's name.
    #[serde(default, flatten)]
    pub options: BridgeOptions,
}

/// What a network's bridge does beyond berth's defaults, as Docker's bridge driver options
/// (`com.docker.network.bridge.*`, `com.docker.network.container_iface_prefix`) ask: kept
/// in the network's record so attaches, the firewall and reconcile all follow them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeOptions {
    /// `enable_icc=false`: the containers of the network cannot reach each other (their
    /// bridge ports are isolated), only the gateway and beyond.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_icc: bool,
    /// `enable_ip_masquerade=false`: the subnet's traffic leaves unmasqueraded (routed with
    /// the containers' own addresses).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_masquerade: bool,
    /// `host_binding_ipv4`: the host address of published ports that name none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_binding_ipv4: Option<Ipv4Addr>,
    /// `container_iface_prefix`: containers' interfaces on the network are `<prefix>N`
    /// instead of `ethN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iface_prefix: Option<String>,
    /// The bridge's name was given (`com.docker.network.bridge.name`), not derived.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub named_bridge: bool,
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
    /// Extra link-local addresses on the container's interface (`link_local_ips`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub link_local_ips: Vec<std::net::IpAddr>,
    /// Sysctls of the container's interface (Docker's `com.docker.network.endpoint.sysctls`):
    /// full names with `IFNAME` standing for the interface, and their values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sysctls: Vec<(String, String)>,
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
    /// What the files hold now, as this process last read or wrote them.
    written: Arc<Mutex<Option<Written>>>,
}

/// The files as last read or written: the state they give, the journal's number, the size of
/// `state.json` and of the journal.
#[derive(Debug)]
struct Written {
    state: State,
    journal: u64,
    base_len: u64,
    log_len: u64,
}

/// A journal is written whole into `state.json` once it is larger than both this and the
/// state itself, so the bytes written per change stay about twice the change.
const MIN_JOURNAL: u64 = 64 << 10;

/// `state.json` as written: the state and the number of the journal that follows it.
#[derive(Serialize)]
struct BaseOut<'a> {
    #[serde(flatten)]
    state: &'a State,
    journal: u64,
}

/// `state.json` as read (a file from before journals has number 0).
#[derive(Deserialize)]
struct BaseIn {
    #[serde(flatten)]
    state: State,
    #[serde(default)]
    journal: u64,
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
        Ok(Self {
            dir,
            written: Arc::new(Mutex::new(None)),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    fn journal_file(&self, journal: u64) -> PathBuf {
        self.dir.join(format!("state.{journal}.log"))
    }

    fn written(&self) -> std::sync::MutexGuard<'_, Option<Written>> {
        self.written.lock().unwrap_or_else(PoisonError::into_inner)
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

    /// Reads the state (`state.json` and its journal); a missing file is an empty state.
    pub fn load(&self) -> Result<State, StateError> {
        let path = self.file();
        let read = |path: &Path| match fs::read(path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StateError::Io {
                op: "read",
                path: path.to_path_buf(),
                source,
            }),
        };
        let Some(bytes) = read(&path)? else {
            *self.written() = None;
            return Ok(State::default());
        };
        let base: BaseIn = serde_json::from_slice(&bytes).map_err(|source| StateError::Parse {
            path: path.clone(),
            source,
        })?;
        let mut state = base.state;
        let log_path = self.journal_file(base.journal);
        let log = read(&log_path)?.unwrap_or_default();
        let whole =
            state_journal::replay(&mut state, &log).map_err(|source| StateError::Parse {
                path: log_path,
                source,
            })?;
        // A journal whose last append was cut short is not appended to: the next save writes
        // the state whole.
        *self.written() = whole.then(|| Written {
            state: state.clone(),
            journal: base.journal,
            base_len: bytes.len() as u64,
            log_len: log.len() as u64,
        });
        Ok(state)
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

    /// Records the state: appends what changed since the last save to the journal, or writes
    /// it whole (temp file + rename) when the journal would outgrow it or the change cannot be
    /// journalled. No fsync: what the state describes (bridges, veths, namespaces) does not
    /// survive a power loss either, while a crashed or killed daemon finds the files in the
    /// page cache; an fsync cost 1-6 ms per attach on this machine, more than everything else
    /// an attach does.
    pub fn save(&self, state: &State) -> Result<(), StateError> {
        let mut written = self.written();
        if let Some(w) = written.as_mut()
            && let Some(appended) = self.append(w, state)?
        {
            w.log_len += appended;
            w.state = state.clone();
            return Ok(());
        }
        let previous = match written.as_ref() {
            Some(w) => w.journal,
            None => self.journal_on_disk(),
        };
        let journal = previous + 1;
        let base_len = self.write_whole(state, previous, journal)?;
        *written = Some(Written {
            state: state.clone(),
            journal,
            base_len,
            log_len: 0,
        });
        Ok(())
    }

    /// Records the state after a change its caller names: `ops` turn the state last saved
    /// into `state`. They are appended without comparing the two states, so an attach or a
    /// detach costs the size of the change, not of every endpoint (a stack's `up` would be
    /// quadratic otherwise); when the journal cannot take them, the state is written as
    /// [`StateStore::save`] does.
    pub fn save_change(
        &self,
        state: &State,
        ops: Vec<state_journal::Op>,
    ) -> Result<(), StateError> {
        let mut written = self.written();
        if let Some(w) = written.as_mut()
            && let Some(appended) = self.append_ops(w, &ops)?
        {
            w.log_len += appended;
            for op in ops {
                state_journal::apply(&mut w.state, op);
            }
            debug_assert!(
                w.state == *state,
                "the change given to save_change is not the change made"
            );
            return Ok(());
        }
        drop(written);
        self.save(state)
    }

    /// Appends the change from `w` to `state` to the journal; `None` when it has to be written
    /// whole instead (not expressible, the journal too large, or the files changed behind us).
    fn append(&self, w: &Written, state: &State) -> Result<Option<u64>, StateError> {
        let Some(ops) = state_journal::diff(&w.state, state) else {
            return Ok(None);
        };
        self.append_ops(w, &ops)
    }

    /// Appends `ops` to the journal of `w`; `None` when the state has to be written whole
    /// instead (the journal too large, or the files changed behind us).
    fn append_ops(
        &self,
        w: &Written,
        ops: &[state_journal::Op],
    ) -> Result<Option<u64>, StateError> {
        if ops.is_empty() {
            return Ok(Some(0));
        }
        let path = self.journal_file(w.journal);
        let on_disk = match fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(_) => return Ok(None),
        };
        let bytes = state_journal::encode(ops).map_err(|source| StateError::Parse {
            path: path.clone(),
            source,
        })?;
        let len = bytes.len() as u64;
        if on_disk != w.log_len || w.log_len + len > w.base_len.max(MIN_JOURNAL) {
            return Ok(None);
        }
        let io = |op, source| StateError::Io {
            op,
            path: path.clone(),
            source,
        };
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io("open", e))?;
        f.write_all(&bytes).map_err(|e| io("append to", e))?;
        Ok(Some(len))
    }

    /// The journal number in `state.json` (0 when there is none or it cannot be read).
    fn journal_on_disk(&self) -> u64 {
        fs::read(self.file())
            .ok()
            .and_then(|b| serde_json::from_slice::<BaseIn>(&b).ok())
            .map_or(0, |b| b.journal)
    }

    /// Writes `state.json` whole, followed by the (empty) journal `journal`, and removes the
    /// journal `previous` it replaces. Returns the file's size.
    fn write_whole(&self, state: &State, previous: u64, journal: u64) -> Result<u64, StateError> {
        let path = self.file();
        let tmp = self.dir.join(".state.json.tmp");
        let io = |op, source| StateError::Io {
            op,
            path: tmp.clone(),
            source,
        };
        let bytes = serde_json::to_vec_pretty(&BaseOut { state, journal }).map_err(|source| {
            StateError::Parse {
                path: path.clone(),
                source,
            }
        })?;
        // A journal of this number left by some earlier run must not be read after this base.
        match fs::remove_file(self.journal_file(journal)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("remove the stale journal next to", e)),
        }
        let mut f = File::create(&tmp).map_err(|e| io("create", e))?;
        f.write_all(&bytes).map_err(|e| io("write", e))?;
        fs::rename(&tmp, &path).map_err(|source| StateError::Io {
            op: "rename into place",
            path,
            source,
        })?;
        // The old journal is now in the base; a crash before this removal leaves a file no
        // base names, which is never read.
        let _ = fs::remove_file(self.journal_file(previous));
        Ok(bytes.len() as u64)
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
                aux_addresses: Default::default(),
                options: Default::default(),
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

    fn endpoint(i: u8) -> Endpoint {
        Endpoint {
            container: format!("c{i}"),
            network: "abcdef".into(),
            netns: NetnsRef::Pid(u32::from(i)),
            ifname: "eth0".into(),
            host_ifname: format!("vb{i:010}"),
            address: Ipv4Addr::new(10, 201, 0, i),
            mac: String::new(),
            default_route: true,
            ports: Vec::new(),
            aliases: vec![format!("c{i}")],
            address6: None,
            link_local_ips: Vec::new(),
            sysctls: Vec::new(),
        }
    }

    #[test]
    fn a_save_appends_the_change_and_compacts_when_the_journal_outgrows_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let mut st = State::default();
        store.save(&st).unwrap();
        let base = fs::metadata(dir.path().join("netd/state.json"))
            .unwrap()
            .len();
        let mut wrote_whole = 0;
        for i in 2..250u8 {
            st.endpoints.push(endpoint(i));
            if i % 3 == 0 {
                st.endpoints
                    .retain(|e| e.host_ifname != endpoint(i - 1).host_ifname);
            }
            let before = fs::metadata(dir.path().join("netd/state.json"))
                .unwrap()
                .len();
            store.save(&st).unwrap();
            if fs::metadata(dir.path().join("netd/state.json"))
                .unwrap()
                .len()
                != before
            {
                wrote_whole += 1;
            }
            // Another process (a restarted daemon) reads the same state.
            assert_eq!(StateStore::open(dir.path()).unwrap().load().unwrap(), st);
        }
        assert!(base > 0);
        assert!(
            wrote_whole <= 3,
            "state.json written whole {wrote_whole} times"
        );
        let logs = fs::read_dir(dir.path().join("netd"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".log")
            })
            .count();
        assert_eq!(logs, 1, "one journal at a time");
        // A reorder cannot be journalled: written whole, read back the same.
        st.endpoints.reverse();
        store.save(&st).unwrap();
        assert_eq!(StateStore::open(dir.path()).unwrap().load().unwrap(), st);
    }

    #[test]
    fn a_named_change_is_journalled_and_read_back_the_same() {
        use crate::state_journal::Op;
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let mut st = State::default();
        // Before anything was written, a named change writes the state whole.
        st.endpoints.push(endpoint(2));
        store
            .save_change(&st, vec![Op::Endpoint(endpoint(2))])
            .unwrap();
        assert_eq!(StateStore::open(dir.path()).unwrap().load().unwrap(), st);
        let base = fs::read(dir.path().join("netd/state.json")).unwrap();
        for i in 3..40u8 {
            st.endpoints.push(endpoint(i));
            let mut ops = vec![Op::Endpoint(endpoint(i))];
            if i % 4 == 0 {
                let gone = endpoint(i - 2).host_ifname;
                st.endpoints.retain(|e| e.host_ifname != gone);
                ops.push(Op::EndpointGone(gone));
            }
            store.save_change(&st, ops).unwrap();
            assert_eq!(StateStore::open(dir.path()).unwrap().load().unwrap(), st);
        }
        // Appended, not written whole; and a whole-state save after it still diffs right.
        assert_eq!(fs::read(dir.path().join("netd/state.json")).unwrap(), base);
        st.endpoints
            .retain(|e| e.host_ifname != endpoint(3).host_ifname);
        store.save(&st).unwrap();
        assert_eq!(StateStore::open(dir.path()).unwrap().load().unwrap(), st);
    }

    #[test]
    fn a_torn_journal_line_is_dropped_and_the_next_save_writes_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let mut st = State::default();
        store.save(&st).unwrap();
        st.endpoints.push(endpoint(2));
        store.save(&st).unwrap();
        let good = st.clone();
        st.endpoints.push(endpoint(3));
        store.save(&st).unwrap();
        let log = fs::read_dir(dir.path().join("netd"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == "log"))
            .unwrap();
        let bytes = fs::read(&log).unwrap();
        fs::write(&log, &bytes[..bytes.len() - 5]).unwrap();
        let again = StateStore::open(dir.path()).unwrap();
        assert_eq!(again.load().unwrap(), good);
        let mut next = good.clone();
        next.endpoints.push(endpoint(4));
        again.save(&next).unwrap();
        assert_eq!(StateStore::open(dir.path()).unwrap().load().unwrap(), next);
    }

    #[test]
    fn a_state_file_without_journal_number_is_read() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("netd")).unwrap();
        let mut st = State::default();
        st.endpoints.push(endpoint(2));
        fs::write(
            dir.path().join("netd/state.json"),
            serde_json::to_vec_pretty(&st).unwrap(),
        )
        .unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        assert_eq!(store.load().unwrap(), st);
        st.endpoints.push(endpoint(3));
        store.save(&st).unwrap();
        assert_eq!(StateStore::open(dir.path()).unwrap().load().unwrap(), st);
    }
}
