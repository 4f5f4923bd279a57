//! The container name index: `<root>/container-names/<name>` holds the id of the container
//! that owns the name.
//!
//! Creating, resolving and renaming by name read one small file instead of every container's
//! record (without it, a 50-service `up` reads all 50 records for each of its 50 creates and
//! 50 starts). The index is a cache over the records, never trusted alone: a hit counts only
//! when the record it points to carries that name, and an entry whose owner is gone is stale
//! and may be taken over. Claims use `O_EXCL`, so two processes creating one name at once
//! cannot both win. A root without the index gets it built from its records on first use.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::record::Record;

/// The index of one instance.
pub(crate) struct Names {
    dir: PathBuf,
    containers: PathBuf,
}

/// Why a name could not be claimed.
pub(crate) enum ClaimError {
    /// A live container (this id) owns the name.
    Taken(String),
    /// The index could not be written.
    Io(io::Error),
}

impl Names {
    /// The index of the instance whose containers live in `containers` (`<root>/containers`).
    pub(crate) fn new(containers: &Path) -> Names {
        let root = containers.parent().unwrap_or(containers);
        Names {
            dir: root.join("container-names"),
            containers: containers.to_path_buf(),
        }
    }

    /// The index of the instance a container belongs to.
    pub(crate) fn of(rec: &Record) -> Names {
        Names::new(rec.dir.parent().unwrap_or(&rec.dir))
    }

    /// Builds the index from the records when it does not exist yet (built aside, then
    /// renamed into place, so a reader never sees half of it).
    pub(crate) fn ensure(&self) -> io::Result<()> {
        if self.dir.is_dir() {
            return Ok(());
        }
        let tmp = self
            .dir
            .with_file_name(format!("container-names.tmp-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        let root = self.dir.parent().unwrap_or(&self.dir);
        crate::modes::root_dir(root, &tmp)?;
        if let Ok(rd) = fs::read_dir(&self.containers) {
            for e in rd
                .flatten()
                .filter(|e| !e.file_name().as_encoded_bytes().starts_with(b"."))
            {
                if let Ok(rec) = Record::load(&e.path()) {
                    fs::write(tmp.join(&rec.config.name), &rec.id)?;
                }
            }
        }
        match fs::rename(&tmp, &self.dir) {
            Ok(()) => Ok(()),
            // Another process built it first: theirs is as good.
            Err(_) if self.dir.is_dir() => {
                let _ = fs::remove_dir_all(&tmp);
                Ok(())
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                Err(e)
            }
        }
    }

    /// The record of the container named `name`, if the index knows one that still carries
    /// that name.
    pub(crate) fn lookup(&self, name: &str) -> Option<Record> {
        if name.is_empty() || name.contains('/') {
            return None;
        }
        let id = fs::read_to_string(self.dir.join(name)).ok()?;
        let rec = Record::load(&self.containers.join(id.trim())).ok()?;
        (rec.config.name == name).then_some(rec)
    }

    /// Makes `id` the owner of `name`. Fails with the owner's id when a live container has
    /// it; a stale entry (its container gone or renamed) is taken over.
    pub(crate) fn claim(&self, name: &str, id: &str) -> Result<(), ClaimError> {
        let path = self.dir.join(name);
        // The entry appears whole or not at all: written aside, then hard-linked into place
        // (link fails if the name exists). A created-then-written file would be seen empty
        // by a racing claim, taken for stale, and removed.
        let tmp = self
            .dir
            .join(format!(".claim-{}-{}", std::process::id(), id));
        fs::write(&tmp, id).map_err(ClaimError::Io)?;
        let result = self.link_claim(&tmp, &path, name, id);
        let _ = fs::remove_file(&tmp);
        result
    }

    fn link_claim(&self, tmp: &Path, path: &Path, name: &str, id: &str) -> Result<(), ClaimError> {
        for _ in 0..3 {
            match fs::hard_link(tmp, path) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let holder = fs::read_to_string(path).unwrap_or_default();
                    let holder = holder.trim();
                    if holder == id {
                        return Ok(());
                    }
                    if let Some(rec) = self.lookup(name) {
                        return Err(ClaimError::Taken(rec.id));
                    }
                    // Stale: remove it only if it still names the same stale holder.
                    if fs::read_to_string(path).is_ok_and(|h| h.trim() == holder) {
                        let _ = fs::remove_file(path);
                    }
                }
                Err(e) => return Err(ClaimError::Io(e)),
            }
        }
        Err(ClaimError::Io(io::Error::other(format!(
            "the name index entry {} keeps changing",
            path.display()
        ))))
    }

    /// Gives `name` up if `id` owns it.
    pub(crate) fn release(&self, name: &str, id: &str) {
        let path = self.dir.join(name);
        if fs::read_to_string(&path).is_ok_and(|h| h.trim() == id) {
            let _ = fs::remove_file(&path);
        }
    }
}
