//! `container commit`: what a container changed (its overlay upper directory) becomes a new
//! layer on top of its image, with the image's config plus the `--change` instructions
//! (parsed by the Dockerfile parser, so JSON and shell forms behave as in a Dockerfile).
//!
//! The diff is read from the upper directory while the container may run; berth does not
//! pause it (Docker does by default), so commit a busy container after stopping it.

use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use oci_spec::image::Config;

use super::{Record, RootfsSource, Runtime};
use crate::build::dockerfile::{Command, Dockerfile, InstructionKind};
use crate::image::store::CONTAINER_IMAGE_ID_FILE;
use crate::image::{Image, ImageStore, NewImage, StoreError};
use crate::inroot::{self, Follow, InRoot};

/// Why a commit failed; names the container, change or path at fault.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error(
        "container {name} runs from a --rootfs directory, not an image: there is no layer to commit onto"
    )]
    NotFromImage { name: String },
    #[error("container {name}: its image is unknown ({path} is missing)")]
    NoImageRecord {
        name: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("--change {change:?}: {reason}")]
    Change { change: String, reason: String },
    #[error("reading the changes of container {name}")]
    Diff {
        name: String,
        #[source]
        source: crate::image::diff::DiffError,
    },
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("storing the committed image")]
    Store(#[source] StoreError),
}

/// What `commit` adds besides the layer.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// Dockerfile instructions: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER,
    /// VOLUME, WORKDIR.
    pub changes: Vec<String>,
    /// The history comment (`-m`).
    pub message: Option<String>,
    /// `-a`, stored as the image author.
    pub author: Option<String>,
    /// `REPO[:TAG]` to tag the new image with.
    pub reference: Option<String>,
}

/// `KEY="a b"` as the parser keeps it: one level of matching quotes goes.
fn unquote(v: &str) -> String {
    let b = v.as_bytes();
    if b.len() >= 2 && (b[0] == b'"' || b[0] == b'\'') && b[b.len() - 1] == b[0] {
        v[1..v.len() - 1].replace("\\\"", "\"")
    } else {
        v.to_string()
    }
}

fn argv(c: &Command) -> Vec<String> {
    match c {
        Command::Exec(v) => v.clone(),
        Command::Shell(s) => vec!["/bin/sh".into(), "-c".into(), s.clone()],
    }
}

/// Applies `--change` instructions to an image config, in order.
pub fn apply_changes(cfg: &mut Config, changes: &[String]) -> Result<(), CommitError> {
    let mut cmd_set = false;
    for change in changes {
        let bad = |reason: String| CommitError::Change {
            change: change.clone(),
            reason,
        };
        let df = Dockerfile::parse(&format!("FROM scratch\n{change}\n"), "--change")
            .map_err(|e| bad(e.to_string()))?;
        let kinds: Vec<InstructionKind> = df
            .stages
            .into_iter()
            .flat_map(|s| s.instructions)
            .map(|i| i.kind)
            .collect();
        let [kind] = kinds.as_slice() else {
            return Err(bad("give exactly one instruction".into()));
        };
        match kind {
            InstructionKind::Cmd(c) => {
                cfg.set_cmd(Some(argv(c)));
                cmd_set = true;
            }
            InstructionKind::Entrypoint(c) => {
                cfg.set_entrypoint(Some(argv(c)));
                // As in a Dockerfile: a new ENTRYPOINT drops an inherited CMD.
                if !cmd_set {
                    cfg.set_cmd(None);
                }
            }
            InstructionKind::Env(pairs) => {
                let mut env = cfg.env().clone().unwrap_or_default();
                for (k, v) in pairs {
                    let entry = format!("{k}={}", unquote(v));
                    match env.iter_mut().find(|e| e.split('=').next() == Some(k)) {
                        Some(slot) => *slot = entry,
                        None => env.push(entry),
                    }
                }
                cfg.set_env(Some(env));
            }
            InstructionKind::Label(pairs) => {
                let mut labels = cfg.labels().clone().unwrap_or_default();
                for (k, v) in pairs {
                    labels.insert(unquote(k), unquote(v));
                }
                cfg.set_labels(Some(labels));
            }
            InstructionKind::Expose(ports) => {
                let mut all = cfg.exposed_ports().clone().unwrap_or_default();
                for p in ports {
                    let p = if p.contains('/') {
                        p.clone()
                    } else {
                        format!("{p}/tcp")
                    };
                    if !all.contains(&p) {
                        all.push(p);
                    }
                }
                cfg.set_exposed_ports(Some(all));
            }
            InstructionKind::Volume(paths) => {
                let mut all = cfg.volumes().clone().unwrap_or_default();
                for p in paths {
                    if !all.contains(p) {
                        all.push(p.clone());
                    }
                }
                cfg.set_volumes(Some(all));
            }
            InstructionKind::Workdir(w) => {
                cfg.set_working_dir(Some(w.clone()));
            }
            InstructionKind::User(u) => {
                cfg.set_user(Some(u.clone()));
            }
            InstructionKind::StopSignal(s) => {
                cfg.set_stop_signal(Some(s.clone()));
            }
            other => {
                return Err(bad(format!(
                    "{} cannot be applied by commit (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR can)",
                    other.keyword()
                )));
            }
        }
    }
    Ok(())
}

/// Removes the temporary layer file however the commit ends.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

impl Runtime {
    /// Commits the container's changes as a new image in `store` (tagged when asked).
    pub fn commit(
        &self,
        store: &ImageStore,
        rec: &Record,
        opts: &CommitOptions,
    ) -> Result<Image, CommitError> {
        let name = rec.config.name.clone();
        if !matches!(rec.config.rootfs, RootfsSource::Layers(_)) {
            return Err(CommitError::NotFromImage { name });
        }
        let id_path = rec.dir.join(CONTAINER_IMAGE_ID_FILE);
        let parent_id =
            fs::read_to_string(&id_path).map_err(|source| CommitError::NoImageRecord {
                name: name.clone(),
                path: id_path.clone(),
                source,
            })?;
        let parent = store
            .resolve(parent_id.trim())
            .map_err(CommitError::Store)?;
        let mut cfg = parent.config.config().clone().unwrap_or_default();
        apply_changes(&mut cfg, &opts.changes)?;
        let upper = rec.dir.join("upper");
        let tmp = TempFile(rec.dir.join(format!("commit-{}.tar", std::process::id())));
        let io_err = |what, source| CommitError::Io {
            what,
            path: tmp.0.clone(),
            source,
        };
        let file = fs::File::create(&tmp.0).map_err(|e| io_err("creating", e))?;
        let file = crate::image::diff::write_upper_diff(&upper, io::BufWriter::new(file)).map_err(
            |source| CommitError::Diff {
                name: name.clone(),
                source,
            },
        )?;
        file.into_inner()
            .map_err(|e| io_err("writing", e.into_error()))?
            .sync_all()
            .map_err(|e| io_err("writing", e))?;
        let mut f = fs::File::open(&tmp.0).map_err(|e| io_err("opening", e))?;
        let mut created_by = format!("berth container commit {name}");
        if let Some(a) = &opts.author {
            created_by.push_str(&format!(" (author {a})"));
        }
        let img = store
            .commit(
                Some(&mut f),
                Some(&parent.id),
                NewImage {
                    config: cfg,
                    healthcheck: parent.healthcheck(),
                    created_by,
                    comment: opts.message.clone(),
                },
            )
            .map_err(CommitError::Store)?;
        if let Some(r) = &opts.reference {
            store.tag(&img.id, r).map_err(CommitError::Store)?;
        }
        Ok(img)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_follow_dockerfile_rules() {
        let mut cfg = Config::default();
        cfg.set_cmd(Some(vec!["old".into()]));
        cfg.set_env(Some(vec!["A=1".into()]));
        apply_changes(
            &mut cfg,
            &[
                r#"ENV A=2 B="two words""#.into(),
                "ENTRYPOINT [\"/app\"]".into(),
                "EXPOSE 80 53/udp".into(),
                "WORKDIR /srv".into(),
                "LABEL k=v".into(),
            ],
        )
        .expect("apply");
        assert_eq!(
            cfg.env().clone().unwrap_or_default(),
            ["A=2", "B=two words"]
        );
        assert_eq!(cfg.entrypoint().clone().unwrap_or_default(), ["/app"]);
        assert_eq!(cfg.cmd(), &None, "a new ENTRYPOINT drops the inherited CMD");
        assert_eq!(
            cfg.exposed_ports().clone().unwrap_or_default(),
            ["80/tcp", "53/udp"]
        );
        assert_eq!(cfg.working_dir().as_deref(), Some("/srv"));
        apply_changes(&mut cfg, &["CMD echo hi".into()]).expect("cmd");
        assert_eq!(
            cfg.cmd().clone().unwrap_or_default(),
            ["/bin/sh", "-c", "echo hi"]
        );
        let e = apply_changes(&mut cfg, &["RUN true".into()]).expect_err("RUN refused");
        assert!(e.to_string().contains("RUN cannot be applied"), "{e}");
    }
}

/// One line of `container diff`: `A` added, `C` changed, `D` deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: char,
    /// Absolute path inside the container.
    pub path: PathBuf,
}

impl Runtime {
    /// What the container changed against its image, from its overlay upper directory:
    /// whiteouts are deletions, paths the layers have are changes, the rest additions.
    pub fn changes(&self, rec: &Record) -> Result<Vec<Change>, CommitError> {
        let RootfsSource::Layers(lowers) = &rec.config.rootfs else {
            return Err(CommitError::NotFromImage {
                name: rec.config.name.clone(),
            });
        };
        // Read through descriptors, never following a link: what a running container does
        // to its upper dir cannot point this walk at a host path.
        let upper = rec.dir.join("upper");
        let io = |path: PathBuf| {
            move |source| CommitError::Io {
                what: "reading",
                path,
                source,
            }
        };
        let layers: Vec<InRoot> = lowers
            .iter()
            .filter_map(|l| InRoot::open(l, Follow::Never).ok())
            .collect();
        let root: OwnedFd = fs::File::open(&upper).map_err(io(upper.clone()))?.into();
        let mut out = Vec::new();
        let mut todo = vec![(PathBuf::new(), root)];
        while let Some((rel, dir)) = todo.pop() {
            let names = inroot::list_dir(dir.as_fd()).map_err(io(upper.join(&rel)))?;
            for name in names {
                let Ok(cn) = inroot::cname(&name) else {
                    continue;
                };
                let Ok(Some(st)) = inroot::lstat_at(dir.as_fd(), &cn) else {
                    continue;
                };
                let rel = rel.join(std::ffi::OsStr::from_bytes(&name));
                let path = Path::new("/").join(&rel);
                if inroot::is_whiteout(&st) {
                    out.push(Change { kind: 'D', path });
                    continue;
                }
                let key = rel.as_os_str().as_bytes();
                let in_image = layers.iter().any(|l| matches!(l.lstat(key), Ok(Some(_))));
                out.push(Change {
                    kind: if in_image { 'C' } else { 'A' },
                    path,
                });
                if inroot::is_dir(&st)
                    && let Ok(sub) = inroot::open_dir_at(dir.as_fd(), &cn)
                {
                    todo.push((rel, sub));
                }
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }
}
