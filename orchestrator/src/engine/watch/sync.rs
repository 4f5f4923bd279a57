//! Writing a batch of host changes into a service's containers. Copies go through the
//! runtime's in-root copy (a helper whose root is the container's, so a symlink inside the
//! container resolves inside it and never reaches the host), one stream per container and
//! batch; deletions run `rm -rf` inside the container, as Compose does, so they resolve
//! links the same way.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use berth_runtime::container::{ExecConfig, Record, Runtime};

use super::rules::Rule;

/// What one batch does to a rule's target: host entries to copy and container paths to
/// delete, both relative to the rule's path (empty: the rule's path itself).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    pub copies: Vec<PathBuf>,
    pub deletes: Vec<PathBuf>,
}

impl Batch {
    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.copies.is_empty() && self.deletes.is_empty()
    }
}

/// The batch for the changed paths `rels` of `rule` as the host has them now: a path that
/// exists is copied (a directory with what it holds that the rule follows), one that is gone
/// is deleted.
pub fn plan(rule: &Rule, rels: &BTreeSet<PathBuf>) -> Batch {
    let mut b = Batch::default();
    let mut copies = BTreeSet::new();
    for rel in rels {
        let host = if rel.as_os_str().is_empty() {
            rule.path.clone()
        } else {
            rule.path.join(rel)
        };
        match std::fs::symlink_metadata(&host) {
            Ok(md) if md.is_dir() => {
                if !rel.as_os_str().is_empty() {
                    copies.insert(rel.clone());
                }
                walk(rule, &host, &mut copies);
            }
            Ok(_) => {
                copies.insert(rel.clone());
            }
            Err(_) => b.deletes.push(rel.clone()),
        }
    }
    b.copies = copies.into_iter().collect();
    b
}

/// Every entry under `dir` the rule follows, relative to the rule's path (a directory the
/// rule ignores is not entered).
pub fn walk(rule: &Rule, dir: &Path, out: &mut BTreeSet<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let Some(rel) = rule.matches(&p) else {
            continue;
        };
        let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
        out.insert(rel);
        if is_dir {
            walk(rule, &p, out);
        }
    }
}

/// The initial sync of a rule: everything it follows, except the Dockerfile and Compose
/// files, which Compose never copies at start either.
pub fn initial(rule: &Rule) -> Batch {
    let mut all = BTreeSet::new();
    if rule.path.is_dir() {
        walk(rule, &rule.path, &mut all);
    } else if rule.path.exists() {
        all.insert(PathBuf::new());
    }
    all.retain(|rel| {
        let name = rel
            .file_name()
            .or_else(|| rule.path.file_name())
            .and_then(|n| n.to_str())
            .unwrap_or("");
        !(name == "Dockerfile"
            || (name.contains("compose") && (name.ends_with(".yml") || name.ends_with(".yaml"))))
    });
    Batch {
        copies: all.into_iter().collect(),
        deletes: Vec::new(),
    }
}

/// Writes `batch` of `rule` into the container `rec`.
pub fn apply(rt: &Runtime, rec: &Record, rule: &Rule, batch: &Batch) -> Result<(), String> {
    let Some(target) = &rule.target else {
        return Ok(());
    };
    let name = &rec.config.name;
    if !batch.deletes.is_empty() {
        let mut args = vec!["rm".to_string(), "-rf".to_string(), "--".to_string()];
        for rel in &batch.deletes {
            if let Some(p) = rule.container_path(rel) {
                args.push(p.display().to_string());
            }
        }
        let cfg = ExecConfig {
            args,
            user: Some("0".into()),
            ..Default::default()
        };
        let (code, err) = run_in(rt, rec, &cfg)?;
        if code != 0 {
            return Err(format!("deleting in {name}: rm exited {code}: {err}"));
        }
    }
    if batch.copies.is_empty() {
        return Ok(());
    }
    // Named from `/` so that missing directories above the target are made too.
    let entries: Vec<(PathBuf, PathBuf)> = batch
        .copies
        .iter()
        .filter_map(|rel| {
            let host = if rel.as_os_str().is_empty() {
                rule.path.clone()
            } else {
                rule.path.join(rel)
            };
            let inside = rule.container_path(rel)?;
            let name = inside.strip_prefix("/").ok()?.to_path_buf();
            (!name.as_os_str().is_empty()).then_some((host, name))
        })
        .collect();
    rt.copy_in_entries(rec, &entries, Path::new("/"))
        .map_err(|e| {
            format!(
                "copying into {name}:{}: {}",
                target.display(),
                crate::api::error::error_chain(&e)
            )
        })
}

/// Runs `cfg` in the container and waits; answers its exit status and what it wrote to
/// stderr.
pub fn run_in(rt: &Runtime, rec: &Record, cfg: &ExecConfig) -> Result<(i32, String), String> {
    let what = cfg.args.join(" ");
    let mut cmd = rt
        .exec_command(rec, cfg)
        .map_err(|e| format!("{what} in {}: {e}", rec.config.name))?;
    let out = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .map_err(|e| format!("{what} in {}: {e}", rec.config.name))?;
    use std::os::unix::process::ExitStatusExt;
    let code = out
        .status
        .code()
        .unwrap_or_else(|| 128 + out.status.signal().unwrap_or(0));
    Ok((
        code,
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    ))
}
