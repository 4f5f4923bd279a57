//! Capability sets: the bounding set is cut before the user switch, the other sets are set
//! after it (with keep-caps), so a root container keeps exactly its configured set and a
//! non-root one ends up with none in effect, as with Docker.

use caps::{CapSet, Capability, CapsHashSet};

/// Errors applying capabilities.
#[derive(Debug, thiserror::Error)]
pub enum CapError {
    #[error("unknown capability {name:?} in the runtime spec")]
    Unknown { name: String },
    #[error("setting the {set} capability set")]
    Set {
        set: &'static str,
        #[source]
        source: caps::errors::CapsError,
    },
}

/// Parses capability names (`CAP_CHOWN`, or `CHOWN` as oci-spec prints them).
pub fn parse(names: &[String]) -> Result<CapsHashSet, CapError> {
    names
        .iter()
        .map(|n| {
            let full = if n.starts_with("CAP_") {
                n.clone()
            } else {
                format!("CAP_{n}")
            };
            full.parse::<Capability>()
                .map_err(|_| CapError::Unknown { name: n.clone() })
        })
        .collect()
}

/// Drops every capability outside `keep` from the bounding set.
pub fn limit_bounding(keep: &CapsHashSet) -> Result<(), CapError> {
    for cap in caps::all() {
        if !keep.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap).map_err(|source| CapError::Set {
                set: "bounding",
                source,
            })?;
        }
    }
    Ok(())
}

/// Sets effective and permitted to `set` and clears the inheritable and ambient sets.
pub fn apply(set: &CapsHashSet) -> Result<(), CapError> {
    let err = |set: &'static str| move |source| CapError::Set { set, source };
    let current = caps::read(None, CapSet::Permitted).map_err(err("permitted"))?;
    let eff: CapsHashSet = set.intersection(&current).copied().collect();
    caps::set(None, CapSet::Effective, &eff).map_err(err("effective"))?;
    caps::set(None, CapSet::Permitted, &eff).map_err(err("permitted"))?;
    // Empty, as Docker since CVE-2022-24769.
    caps::clear(None, CapSet::Inheritable).map_err(err("inheritable"))?;
    caps::clear(None, CapSet::Ambient).map_err(err("ambient"))?;
    Ok(())
}
