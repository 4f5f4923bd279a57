//! Legacy links given when a container joins a network after its create (Docker's `network
//! connect --link`, `EndpointConfig.Links`): they resolve on that network alone, for that
//! container alone. Links given at create live in the record's `berth.links` label; these are
//! kept beside the record (`network-links.json`, by network name) so that a restarted daemon
//! re-registering the DNS, a rename and a re-attach find them again.

use std::collections::BTreeMap;
use std::path::PathBuf;

use berth_netd::dns::LinkAlias;
use berth_runtime::container::Record;

/// The file in the container's directory.
pub const FILE: &str = "network-links.json";

fn path(rec: &Record) -> PathBuf {
    rec.dir.join(FILE)
}

fn read(rec: &Record) -> BTreeMap<String, Vec<LinkAlias>> {
    std::fs::read(path(rec))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// The links `rec` was connected to `network` with (none when it was not, or without links).
pub fn of(rec: &Record, network: &str) -> Vec<LinkAlias> {
    read(rec).remove(network).unwrap_or_default()
}

/// Keeps `links` as those of `rec` on `network` (none: forgets the network's), written whole
/// (a temporary file renamed over the old one).
pub fn set(rec: &Record, network: &str, links: &[LinkAlias]) -> Result<(), String> {
    let mut all = read(rec);
    if links.is_empty() {
        if all.remove(network).is_none() {
            return Ok(());
        }
    } else {
        all.insert(network.to_string(), links.to_vec());
    }
    let p = path(rec);
    let err = |e: std::io::Error| format!("writing {}: {e}", p.display());
    if all.is_empty() {
        return match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(err(e)),
            _ => Ok(()),
        };
    }
    let bytes = serde_json::to_vec(&all).map_err(|e| format!("encoding links: {e}"))?;
    let tmp = rec.dir.join(format!("{FILE}.tmp"));
    std::fs::write(&tmp, bytes).map_err(err)?;
    std::fs::rename(&tmp, &p).map_err(err)
}
