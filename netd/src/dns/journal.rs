//! The journal of `records.json`: each generation after the one written whole is one JSON line
//! of what changed (`records.<journal>.log`, the number named by the base file), so
//! registering one container writes its own record, not every container's. The daemon
//! appends ([`Writer`]) and writes the table whole again only once the journal has outgrown
//! it; the keeper follows the base and the journal ([`Reader`]).

use std::io::{Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::handoff::{self, HandoffError, PublishedNetwork, RECORDS, RecordsFile};
use super::records::{Endpoint, NetworkScope};

/// A journal is folded into `records.json` once it is larger than both this and the table.
const MIN_JOURNAL: u64 = 64 << 10;

/// The journal file of base `journal`.
pub fn journal_name(journal: u64) -> String {
    format!("records.{journal}.log")
}

/// Whether a file name in the keeper's directory is one of the records' files.
pub fn is_records_file(name: &std::ffi::OsStr) -> bool {
    let n = name.to_string_lossy();
    n == RECORDS || (n.starts_with("records.") && n.ends_with(".log"))
}

/// One change of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// A network added, or its scope or listen addresses changed (its endpoints kept).
    Network {
        /// Who its clients are.
        scope: NetworkScope,
        /// Where its servers listen.
        listen: Vec<SocketAddr>,
    },
    /// A network removed with its endpoints.
    NetworkGone {
        /// Its id.
        id: String,
    },
    /// An endpoint added or replaced (same id).
    Endpoint {
        /// Its network.
        network: String,
        /// The record.
        endpoint: Endpoint,
    },
    /// An endpoint removed.
    EndpointGone {
        /// Its network.
        network: String,
        /// Its id.
        id: String,
    },
}

/// One generation after the base: one line of the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    /// The generation this line makes.
    pub generation: u64,
    /// The host epoch from this generation on.
    pub host_epoch: u64,
    /// What changed.
    pub ops: Vec<Op>,
}

fn network_slot(file: &RecordsFile, id: &str) -> Result<usize, usize> {
    file.networks
        .binary_search_by(|n| n.scope.id.as_str().cmp(id))
}

/// Applies one generation (networks kept in id order, endpoints in id order).
pub fn apply(file: &mut RecordsFile, delta: Delta) {
    file.generation = delta.generation;
    file.host_epoch = delta.host_epoch;
    for op in delta.ops {
        match op {
            Op::Network { scope, listen } => match network_slot(file, &scope.id) {
                Ok(i) => {
                    file.networks[i].scope = scope;
                    file.networks[i].listen = listen;
                }
                Err(i) => file.networks.insert(
                    i,
                    PublishedNetwork {
                        scope,
                        listen,
                        endpoints: Vec::new(),
                    },
                ),
            },
            Op::NetworkGone { id } => {
                if let Ok(i) = network_slot(file, &id) {
                    file.networks.remove(i);
                }
            }
            Op::Endpoint { network, endpoint } => {
                if let Ok(i) = network_slot(file, &network) {
                    let eps = &mut file.networks[i].endpoints;
                    match eps.binary_search_by(|e| e.id.cmp(&endpoint.id)) {
                        Ok(j) => eps[j] = endpoint,
                        Err(j) => eps.insert(j, endpoint),
                    }
                }
            }
            Op::EndpointGone { network, id } => {
                if let Ok(i) = network_slot(file, &network) {
                    file.networks[i].endpoints.retain(|e| e.id != id);
                }
            }
        }
    }
}

/// The generation that turns `old` into `new`, or `None` when it would not give exactly `new`
/// (then the table is written whole).
pub fn diff(old: &RecordsFile, new: &RecordsFile) -> Option<Delta> {
    let mut ops = Vec::new();
    for n in &new.networks {
        let before = old.networks.iter().find(|o| o.scope.id == n.scope.id);
        if before.is_none_or(|o| o.scope != n.scope || o.listen != n.listen) {
            ops.push(Op::Network {
                scope: n.scope.clone(),
                listen: n.listen.clone(),
            });
        }
        let before_eps: &[Endpoint] = before.map_or(&[], |o| &o.endpoints);
        let old_by_id: std::collections::HashMap<&str, &Endpoint> =
            before_eps.iter().map(|e| (e.id.as_str(), e)).collect();
        let new_ids: std::collections::HashSet<&str> =
            n.endpoints.iter().map(|e| e.id.as_str()).collect();
        for e in before_eps {
            if !new_ids.contains(e.id.as_str()) {
                ops.push(Op::EndpointGone {
                    network: n.scope.id.clone(),
                    id: e.id.clone(),
                });
            }
        }
        for e in &n.endpoints {
            if old_by_id.get(e.id.as_str()) != Some(&e) {
                ops.push(Op::Endpoint {
                    network: n.scope.id.clone(),
                    endpoint: e.clone(),
                });
            }
        }
    }
    for o in &old.networks {
        if !new.networks.iter().any(|n| n.scope.id == o.scope.id) {
            ops.push(Op::NetworkGone {
                id: o.scope.id.clone(),
            });
        }
    }
    let delta = Delta {
        generation: new.generation,
        host_epoch: new.host_epoch,
        ops,
    };
    let mut check = old.clone();
    apply(&mut check, delta.clone());
    check.journal = new.journal;
    (check == *new).then_some(delta)
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> HandoffError {
    let path = path.to_path_buf();
    move |source| HandoffError::Io { op, path, source }
}

/// The daemon's side: what the files hold now.
#[derive(Debug, Default)]
pub struct Writer {
    /// The table as the files give it (`None`: write whole next).
    written: Option<RecordsFile>,
    /// The base's journal number.
    journal: u64,
    base_len: u64,
    log_len: u64,
    /// A base was written by this writer (a journal may follow it).
    based: bool,
}

impl Writer {
    /// Continues after the base numbered `journal` (the next write is whole).
    pub fn after(journal: u64) -> Self {
        Self {
            journal,
            ..Self::default()
        }
    }

    /// Publishes `file` (its `journal` is set here): one journal line when the change can be
    /// expressed and the journal is still small, else the whole table.
    pub fn publish(&mut self, dir: &Path, mut file: RecordsFile) -> Result<(), HandoffError> {
        file.journal = self.journal;
        if let Some(old) = &self.written
            && let Some(delta) = diff(old, &file)
            && let Some(len) = self.append(dir, &delta)?
        {
            self.log_len += len;
            self.written = Some(file);
            return Ok(());
        }
        let previous = self.journal;
        file.journal = previous + 1;
        self.based = false;
        // A journal of the new number left by some earlier daemon must not follow this base.
        remove_quietly(&dir.join(journal_name(file.journal)));
        self.written = None;
        self.base_len = handoff::write_json(dir, RECORDS, &file)?;
        remove_quietly(&dir.join(journal_name(previous)));
        self.journal = file.journal;
        self.log_len = 0;
        self.written = Some(file);
        self.based = true;
        Ok(())
    }

    /// Appends one generation to the journal; `false` when the table must be written whole
    /// instead (no base written yet, or the journal outgrew it).
    pub fn append_delta(&mut self, dir: &Path, delta: &Delta) -> Result<bool, HandoffError> {
        if !self.based {
            return Ok(false);
        }
        match self.append(dir, delta)? {
            Some(len) => {
                self.log_len += len;
                // What the files give is known by the changes now, not by a copy.
                self.written = None;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Writes `file` whole as a new base.
    pub fn publish_whole(&mut self, dir: &Path, file: RecordsFile) -> Result<(), HandoffError> {
        self.written = None;
        self.publish(dir, file)
    }

    fn append(&self, dir: &Path, delta: &Delta) -> Result<Option<u64>, HandoffError> {
        let path = dir.join(journal_name(self.journal));
        let mut line = serde_json::to_vec(delta).map_err(|source| HandoffError::Parse {
            path: path.clone(),
            source,
        })?;
        line.push(b'\n');
        let len = line.len() as u64;
        let on_disk = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(_) => return Ok(None),
        };
        if on_disk != self.log_len || self.log_len + len > self.base_len.max(MIN_JOURNAL) {
            return Ok(None);
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err("open", &path))?;
        f.write_all(&line).map_err(io_err("append to", &path))?;
        Ok(Some(len))
    }
}

fn remove_quietly(path: &Path) {
    let _ = std::fs::remove_file(path);
}

/// The keeper's side: follows `records.json` (re-read when replaced) and its journal (read on
/// from where it stopped).
#[derive(Debug, Default)]
pub struct Reader {
    /// Inode of the base read.
    base: Option<u64>,
    /// Bytes of its journal consumed.
    offset: u64,
    file: Option<RecordsFile>,
    /// The base was (re)read since the last [`Reader::take_ops`].
    rebased: bool,
    /// The journal's operations applied since then.
    ops: Vec<Op>,
}

impl Reader {
    /// The current table and whether it changed since the last call; `None` when there is
    /// no `records.json`.
    pub fn read(&mut self, dir: &Path) -> Result<Option<(&RecordsFile, bool)>, HandoffError> {
        let path = dir.join(RECORDS);
        let mut changed = false;
        let f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                *self = Self::default();
                return Ok(None);
            }
            Err(e) => return Err(io_err("open", &path)(e)),
        };
        let ino = f.metadata().map_err(io_err("stat", &path))?.ino();
        if self.base != Some(ino) || self.file.is_none() {
            self.file = None;
            let file: RecordsFile = handoff::parse_limited(f, &path)?;
            self.file = Some(file);
            self.base = Some(ino);
            self.offset = 0;
            self.rebased = true;
            self.ops.clear();
            changed = true;
        }
        let Some(file) = self.file.as_mut() else {
            return Ok(None);
        };
        let log = dir.join(journal_name(file.journal));
        let mut bytes = Vec::new();
        match std::fs::File::open(&log) {
            Ok(mut f) => {
                f.seek(SeekFrom::Start(self.offset))
                    .map_err(io_err("seek", &log))?;
                f.read_to_end(&mut bytes).map_err(io_err("read", &log))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("open", &log)(e)),
        }
        // Only whole lines: an append being written is read at its next event.
        let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        for line in bytes[..whole].split(|b| *b == b'\n') {
            if line.is_empty() {
                continue;
            }
            let delta = match serde_json::from_slice::<Delta>(line) {
                Ok(d) => d,
                Err(source) => {
                    // Start over from the base at the next event rather than skip a generation.
                    self.base = None;
                    return Err(HandoffError::Parse {
                        path: log.clone(),
                        source,
                    });
                }
            };
            if !self.rebased {
                self.ops.extend(delta.ops.iter().cloned());
            }
            apply(file, delta);
            changed = true;
        }
        self.offset += whole as u64;
        Ok(self.file.as_ref().map(|f| (f, changed)))
    }
}

impl Reader {
    /// The operations read from the journal since the last call, for a follower that keeps
    /// its own table by delta; `None` when the base was read again (take the table whole).
    pub fn take_ops(&mut self) -> Option<Vec<Op>> {
        if std::mem::take(&mut self.rebased) {
            self.ops.clear();
            return None;
        }
        Some(std::mem::take(&mut self.ops))
    }

    /// The table as last read.
    pub fn table(&self) -> Option<&RecordsFile> {
        self.file.as_ref()
    }
}

/// Where a directory's records end now: the journal number and generation of the newest
/// table (`records.json` and its journal), for a restarted daemon to continue from.
pub fn latest(dir: &Path) -> (u64, u64, u64) {
    let mut r = Reader::default();
    match r.read(dir) {
        Ok(Some((f, _))) => (f.journal, f.generation, f.host_epoch),
        _ => handoff::read_json::<RecordsFile>(dir, RECORDS)
            .ok()
            .flatten()
            .map_or((0, 0, 0), |f| (f.journal, f.generation, f.host_epoch)),
    }
}

/// The path of a journal (for messages).
pub fn journal_path(dir: &Path, journal: u64) -> PathBuf {
    dir.join(journal_name(journal))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn scope(id: &str) -> NetworkScope {
        NetworkScope {
            id: id.into(),
            subnets: Vec::new(),
            internal: false,
        }
    }

    fn ep(id: &str, last: u8) -> Endpoint {
        Endpoint {
            id: id.into(),
            container: format!("c-{id}"),
            names: vec![format!("n{id}")],
            addresses: vec![IpAddr::from([10, 9, 0, last])],
            ..Endpoint::default()
        }
    }

    fn table(generation: u64, eps: &[(&str, u8)]) -> RecordsFile {
        let mut endpoints: Vec<Endpoint> = eps.iter().map(|(i, l)| ep(i, *l)).collect();
        endpoints.sort_by(|a, b| a.id.cmp(&b.id));
        RecordsFile {
            generation,
            host_epoch: 0,
            journal: 0,
            networks: vec![PublishedNetwork {
                scope: scope("net"),
                listen: vec!["10.9.0.1:53".parse().unwrap()],
                endpoints,
            }],
        }
    }

    #[test]
    fn one_endpoint_is_one_op() {
        let old = table(1, &[("a", 2), ("c", 4)]);
        let new = table(2, &[("a", 2), ("b", 3), ("c", 4)]);
        let d = diff(&old, &new).expect("expressible");
        assert_eq!(d.ops.len(), 1);
        let mut back = old.clone();
        apply(&mut back, d);
        assert_eq!(back, new);
    }

    #[test]
    fn the_reader_follows_appends_and_rewrites() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::default();
        let mut r = Reader::default();
        let mut eps: Vec<(String, u8)> = Vec::new();
        let mut whole_writes = 0;
        for i in 2..200u8 {
            eps.push((format!("e{i:03}"), i));
            if i % 4 == 0 {
                eps.remove(0);
            }
            let refs: Vec<(&str, u8)> = eps.iter().map(|(s, l)| (s.as_str(), *l)).collect();
            let mut want = table(u64::from(i), &refs);
            let before = std::fs::metadata(dir.path().join(RECORDS))
                .map(|m| m.ino())
                .ok();
            w.publish(dir.path(), want.clone()).unwrap();
            if std::fs::metadata(dir.path().join(RECORDS))
                .map(|m| m.ino())
                .ok()
                != before
            {
                whole_writes += 1;
            }
            let (got, changed) = r.read(dir.path()).unwrap().unwrap();
            assert!(changed);
            want.journal = got.journal;
            assert_eq!(*got, want);
            // Nothing new: unchanged.
            assert!(!r.read(dir.path()).unwrap().unwrap().1);
            // A reader starting now sees the same table.
            let mut fresh = Reader::default();
            assert_eq!(*fresh.read(dir.path()).unwrap().unwrap().0, want);
            assert_eq!(latest(dir.path()).1, u64::from(i));
        }
        assert!(
            whole_writes <= 4,
            "records.json written whole {whole_writes} times"
        );
    }

    #[test]
    fn a_line_being_written_waits_for_its_newline() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::default();
        w.publish(dir.path(), table(1, &[("a", 2)])).unwrap();
        let mut r = Reader::default();
        assert_eq!(r.read(dir.path()).unwrap().unwrap().0.generation, 1);
        let journal = r.file.as_ref().unwrap().journal;
        let line = serde_json::to_vec(&Delta {
            generation: 2,
            host_epoch: 0,
            ops: vec![],
        })
        .unwrap();
        let log = journal_path(dir.path(), journal);
        std::fs::write(&log, &line).unwrap();
        assert!(!r.read(dir.path()).unwrap().unwrap().1);
        let mut full = line.clone();
        full.push(b'\n');
        std::fs::write(&log, &full).unwrap();
        let (f, changed) = r.read(dir.path()).unwrap().unwrap();
        assert!(changed);
        assert_eq!(f.generation, 2);
    }
}
