//! Setting up a RUN step's `--mount`s before its container starts, and taking away what they
//! leave in the layer afterwards.
//!
//! - cache: a directory per id under `<builder>/cache-mounts/`, kept across builds and never
//!   part of a layer. `sharing=shared` holds a shared flock while the step runs, `locked` an
//!   exclusive one (steps take turns), `private` an exclusive one without waiting: when that
//!   fails, the next numbered instance of the id that is free (created when none is).
//! - bind: the source is copied into a scratch directory and that is bound (read only unless
//!   `rw`; writes land in the copy, which goes with the step). From the context only the
//!   files `.dockerignore` keeps, with links resolved inside the context; from a stage or an
//!   image its flattened rootfs, the source path resolved inside it. Nothing outside the
//!   source's root is ever reached.
//! - tmpfs: a tmpfs of `size=`.
//! - secret: the value is written to a scratch file (mode 0400 unless `mode=`) bound read
//!   only at its target, and/or put in the step's environment (`env=`); it never enters a
//!   layer, the history or a cache key.
//! - ssh: a socket of the builder's forwarding to the agent the build was given
//!   ([`super::ssh_agent`]), bound at its target with the mount's owner and mode (0600 unless
//!   `mode=`); the first one is the step's `SSH_AUTH_SOCK`.
//!
//! The runtime creates a mount's target when the image lacks it; those stubs (empty
//! directories or files, and the missing parents made for them) are removed from the upper
//! dir before it becomes the layer, as BuildKit does.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::PermissionsExt;

use super::ssh_agent::BuildSsh;
use super::step::ScratchDir;
use super::*;
use crate::build::mounts::{MountKind, RunMount, Sharing};
use crate::build::steps::{MountOrigin, PlannedMount};
use crate::container::MountSpec;

/// A secret a build is given (`--secret id=ID,src=FILE|env=VAR`, Compose `build.secrets`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSecret {
    /// The id `RUN --mount=type=secret,id=ID` names.
    pub id: String,
    /// Where its value is read (when the build starts).
    pub source: SecretSource,
}

/// Where a build secret's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A file on the machine running the build.
    File(PathBuf),
    /// An environment variable of the process running the build.
    Env(String),
    /// The value itself (read by a caller that had it already).
    Value(Vec<u8>),
}

impl BuildSecret {
    /// Docker's `--secret` syntax: `id=ID[,type=file|env][,src=|source=PATH][,env=VAR]`.
    /// `id=ID` alone reads the variable `ID`, as buildx does.
    pub fn parse(spec: &str) -> Result<BuildSecret, String> {
        let (mut id, mut src, mut env, mut kind) = (None, None, None, None);
        for f in spec.split(',').filter(|f| !f.is_empty()) {
            let (k, v) = f
                .split_once('=')
                .ok_or_else(|| format!("--secret {spec:?}: {f:?} is not key=value"))?;
            match k.trim().to_ascii_lowercase().as_str() {
                "id" => id = Some(v.to_string()),
                "src" | "source" => src = Some(v.to_string()),
                "env" => env = Some(v.to_string()),
                "type" => kind = Some(v.to_string()),
                other => return Err(format!("--secret {spec:?}: unexpected key {other:?}")),
            }
        }
        let source = match (kind.as_deref(), src, env) {
            (None | Some("file"), Some(s), None) => SecretSource::File(PathBuf::from(s)),
            (Some("env"), Some(v), None) | (None | Some("env"), None, Some(v)) => {
                SecretSource::Env(v)
            }
            (Some(t), _, _) if t != "file" && t != "env" => {
                return Err(format!("--secret {spec:?}: type={t}: expected file or env"));
            }
            (_, Some(_), Some(_)) => {
                return Err(format!("--secret {spec:?}: give src= or env=, not both"));
            }
            (Some("file"), None, _) => {
                return Err(format!("--secret {spec:?}: type=file needs src="));
            }
            (_, None, None) => match &id {
                Some(id) => SecretSource::Env(id.clone()),
                None => return Err(format!("--secret {spec:?}: id= is required")),
            },
            _ => return Err(format!("--secret {spec:?}: cannot tell where the value is")),
        };
        let id = match id {
            Some(id) if !id.is_empty() => id,
            _ => match &source {
                SecretSource::File(p) => p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .ok_or_else(|| format!("--secret {spec:?}: id= is required"))?,
                _ => return Err(format!("--secret {spec:?}: id= is required")),
            },
        };
        Ok(BuildSecret { id, source })
    }

    /// The value, read now; a missing file or variable is an error naming the secret.
    pub fn read(&self) -> Result<Vec<u8>, String> {
        match &self.source {
            SecretSource::File(p) => std::fs::read(p)
                .map_err(|e| format!("secret {:?}: reading {}: {e}", self.id, p.display())),
            SecretSource::Env(v) => std::env::var_os(v)
                .map(|v| v.into_encoded_bytes())
                .ok_or_else(|| format!("secret {:?}: the variable {v} is not set", self.id)),
            SecretSource::Value(v) => Ok(v.clone()),
        }
    }
}

/// What a RUN step's mounts hold while it runs: the runtime's mounts and extra environment,
/// the locks and scratch copies kept until the step is done, and the stubs to remove.
#[derive(Default)]
pub(super) struct StepMounts {
    pub(super) specs: Vec<MountSpec>,
    pub(super) env: Vec<String>,
    /// Targets missing from the image: (target, first missing component of its path).
    stubs: Vec<(String, String)>,
    _locks: Vec<File>,
    /// Dropped before the scratch dirs that hold their sockets.
    _agents: Vec<super::ssh_agent::AgentProxy>,
    _scratch: Vec<ScratchDir>,
}

fn io_at(
    step: &str,
    op: &'static str,
    path: &Path,
) -> impl FnOnce(io::Error) -> BuildError + use<> {
    let (step, path) = (step.to_string(), path.to_path_buf());
    move |source| BuildError::Io {
        step,
        op,
        path,
        source,
    }
}

fn flock(file: &File, op: libc::c_int) -> io::Result<bool> {
    loop {
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) => return Ok(false),
            _ => return Err(e),
        }
    }
}

/// The parts of `target` in order (`/a/b` -> `a`, `a/b`).
fn prefixes(target: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in target.split('/').filter(|c| !c.is_empty()) {
        if !cur.is_empty() {
            cur.push('/');
        }
        cur.push_str(c);
        out.push(cur.clone());
    }
    out
}

impl Builder<'_> {
    /// The directory of the cache mounts.
    fn cache_mounts_dir(&self) -> PathBuf {
        self.dir.join("cache-mounts")
    }

    /// Everything `run`'s mounts need, set up; the stubs they will leave are noted.
    pub(super) fn prepare_mounts(
        &self,
        display: &str,
        run: &RunSpec,
        layers: &[PathBuf],
        ctx: &Context,
        stages: &HashMap<usize, StageState>,
        req: &BuildRequest,
    ) -> Result<StepMounts, BuildError> {
        let mut out = StepMounts::default();
        if run.mounts.is_empty() {
            return Ok(out);
        }
        let view = copy::image_view(display, layers)?;
        for pm in &run.mounts {
            let m = &pm.mount;
            if let Some(t) = &m.target {
                let missing = prefixes(t).into_iter().find(|p| {
                    view.as_ref()
                        .is_none_or(|v| v.lstat(p.as_bytes()).ok().flatten().is_none())
                });
                if let Some(first) = missing {
                    out.stubs.push((t.clone(), first));
                }
            }
            match m.kind {
                MountKind::Tmpfs => out.specs.push(MountSpec::Tmpfs {
                    target: PathBuf::from(m.target.clone().unwrap_or_default()),
                    options: m.size.map(|s| format!("size={s}")).into_iter().collect(),
                }),
                MountKind::Secret => self.secret_mount(display, m, &req.secrets, &mut out)?,
                MountKind::Ssh => self.ssh_mount(display, m, &req.ssh, run, &mut out)?,
                MountKind::Cache => {
                    let dir = self.cache_dir(display, pm, stages, &mut out)?;
                    out.specs.push(MountSpec::Bind {
                        recursive: Default::default(),
                        propagation: None,
                        source: dir,
                        target: PathBuf::from(m.target.clone().unwrap_or_default()),
                        read_only: m.read_only,
                        owned_copy: None,
                    });
                }
                MountKind::Bind => {
                    let source = self.bind_source(display, pm, ctx, stages, &mut out)?;
                    out.specs.push(MountSpec::Bind {
                        recursive: Default::default(),
                        propagation: None,
                        source,
                        target: PathBuf::from(m.target.clone().unwrap_or_default()),
                        read_only: m.read_only,
                        owned_copy: None,
                    });
                }
            }
        }
        Ok(out)
    }

    fn secret_mount(
        &self,
        display: &str,
        m: &RunMount,
        secrets: &[BuildSecret],
        out: &mut StepMounts,
    ) -> Result<(), BuildError> {
        let id = m.id.clone().unwrap_or_default();
        let Some(secret) = secrets.iter().rev().find(|s| s.id == id) else {
            if m.required {
                return Err(BuildError::Secret {
                    step: display.to_string(),
                    message: format!(
                        "secret {id:?} is required but was not given (berth image build --secret id={id},src=FILE)"
                    ),
                });
            }
            // Not given and not required: no mount, as BuildKit does.
            out.stubs.retain(|(t, _)| Some(t) != m.target.as_ref());
            return Ok(());
        };
        let value = secret.read().map_err(|message| BuildError::Secret {
            step: display.to_string(),
            message,
        })?;
        if let Some(var) = &m.env {
            out.env
                .push(format!("{var}={}", String::from_utf8_lossy(&value)));
        }
        let Some(target) = &m.target else {
            return Ok(());
        };
        let dir = self.scratch(display, "secret")?;
        let io = |op, p: &Path| io_at(display, op, p);
        fs::set_permissions(&dir.0, fs::Permissions::from_mode(0o700))
            .map_err(io("chmod", &dir.0))?;
        let file = dir.0.join("value");
        fs::write(&file, &value).map_err(io("writing", &file))?;
        let f = File::open(&file).map_err(io("opening", &file))?;
        inroot::fchown(f.as_fd(), m.uid.unwrap_or(0), m.gid.unwrap_or(0))
            .map_err(io("chown", &file))?;
        inroot::fchmod(f.as_fd(), m.mode.unwrap_or(0o400)).map_err(io("chmod", &file))?;
        out.specs.push(MountSpec::Bind {
            recursive: Default::default(),
            propagation: None,
            source: file,
            target: PathBuf::from(target),
            read_only: true,
            owned_copy: None,
        });
        out._scratch.push(dir);
        Ok(())
    }

    /// An SSH mount: a forwarding socket to the agent of its id at its target.
    fn ssh_mount(
        &self,
        display: &str,
        m: &RunMount,
        agents: &[BuildSsh],
        run: &RunSpec,
        out: &mut StepMounts,
    ) -> Result<(), BuildError> {
        let id = m.id.clone().unwrap_or_default();
        let target = m.target.clone().unwrap_or_default();
        let Some(agent) = agents.iter().rev().find(|a| a.id == id) else {
            if m.required {
                return Err(BuildError::Secret {
                    step: display.to_string(),
                    message: format!(
                        "ssh agent {id:?} is required but was not given (berth image build --ssh {id}=SOCKET, or --ssh default)"
                    ),
                });
            }
            out.stubs.retain(|(t, _)| *t != target);
            return Ok(());
        };
        let dir = self.scratch(display, "ssh")?;
        let io = |op, p: &Path| io_at(display, op, p);
        fs::set_permissions(&dir.0, fs::Permissions::from_mode(0o700))
            .map_err(io("chmod", &dir.0))?;
        let sock = dir.0.join("agent");
        let proxy = super::ssh_agent::AgentProxy::start(&sock, &agent.socket)
            .map_err(io("listening", &sock))?;
        std::os::unix::fs::chown(&sock, Some(m.uid.unwrap_or(0)), Some(m.gid.unwrap_or(0)))
            .map_err(io("chown", &sock))?;
        fs::set_permissions(&sock, fs::Permissions::from_mode(m.mode.unwrap_or(0o600)))
            .map_err(io("chmod", &sock))?;
        // The first agent is the step's SSH_AUTH_SOCK unless the step sets it itself.
        let set = |e: &String| e.starts_with("SSH_AUTH_SOCK=");
        if !out.env.iter().any(set) && !run.env.iter().any(set) {
            out.env.push(format!("SSH_AUTH_SOCK={target}"));
        }
        out.specs.push(MountSpec::Bind {
            recursive: Default::default(),
            source: sock,
            target: PathBuf::from(target),
            read_only: false,
            owned_copy: None,
            propagation: None,
        });
        out._agents.push(proxy);
        out._scratch.push(dir);
        Ok(())
    }

    /// The cache directory of a mount's id, locked as its `sharing` says (the lock is kept
    /// in `out` for the step), created (and seeded from `from=`) on first use.
    fn cache_dir(
        &self,
        display: &str,
        pm: &PlannedMount,
        stages: &HashMap<usize, StageState>,
        out: &mut StepMounts,
    ) -> Result<PathBuf, BuildError> {
        let m = &pm.mount;
        let base = self.cache_mounts_dir();
        fs::create_dir_all(&base).map_err(io_at(display, "creating", &base))?;
        let id = m.id.clone().unwrap_or_default();
        let name = Digest::of_bytes(id.as_bytes()).hex().to_string();
        let mut instance = 0usize;
        let (dir, lock) = loop {
            let dir = if instance == 0 {
                base.join(&name)
            } else {
                base.join(format!("{name}-{instance}"))
            };
            let lock_path = dir.with_extension("lock");
            let lock = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&lock_path)
                .map_err(io_at(display, "opening", &lock_path))?;
            let got = match m.sharing {
                Sharing::Shared => flock(&lock, libc::LOCK_SH),
                Sharing::Locked => flock(&lock, libc::LOCK_EX),
                Sharing::Private => flock(&lock, libc::LOCK_EX | libc::LOCK_NB),
            }
            .map_err(io_at(display, "locking", &lock_path))?;
            if got {
                break (dir, lock);
            }
            instance += 1;
        };
        let data = dir.join("data");
        if !data.exists() {
            // Made under a temporary name and renamed, so a half-seeded cache is never used.
            let fresh = self.scratch(display, "cache")?;
            let root = InRoot::open(&fresh.0, Follow::InRoot)
                .map_err(io_at(display, "opening", &fresh.0))?;
            let owner = (m.uid.unwrap_or(0), m.gid.unwrap_or(0));
            match self.origin_root(display, &pm.origin, stages)? {
                Some(src_root) => {
                    let src = InRoot::open(&src_root.0, Follow::InRoot).map_err(io_at(
                        display,
                        "opening",
                        &src_root.0,
                    ))?;
                    let source = m.source.as_deref().unwrap_or("/");
                    let rel = source.trim_start_matches('/');
                    if rel.is_empty() {
                        // The whole rootfs: its top-level entries, one by one.
                        root.mkdir_all(b"data", 0o755)
                            .map_err(io_at(display, "creating", &data))?;
                        let names = inroot::list_dir(src.fd()).map_err(io_at(
                            display,
                            "listing",
                            &src_root.0,
                        ))?;
                        for n in names {
                            let n = String::from_utf8_lossy(&n).into_owned();
                            let to = format!("data/{n}");
                            copy::copy_tree(display, &src, &n, &root, &to, owner, None)?;
                        }
                    } else {
                        copy::copy_tree(display, &src, rel, &root, "data", owner, None)?;
                    }
                }
                None => {
                    root.mkdir_all(b"data", 0o755)
                        .map_err(io_at(display, "creating", &data))?;
                }
            }
            let fd = File::open(fresh.0.join("data")).map_err(io_at(display, "opening", &data))?;
            inroot::fchown(fd.as_fd(), owner.0, owner.1).map_err(io_at(display, "chown", &data))?;
            inroot::fchmod(fd.as_fd(), m.mode.unwrap_or(0o755))
                .map_err(io_at(display, "chmod", &data))?;
            fs::create_dir_all(&dir).map_err(io_at(display, "creating", &dir))?;
            fs::write(dir.join("id"), id.as_bytes()).map_err(io_at(display, "writing", &dir))?;
            fs::rename(fresh.0.join("data"), &data).map_err(io_at(display, "creating", &data))?;
        }
        out._locks.push(lock);
        Ok(data)
    }

    /// The flattened rootfs of a stage or image a mount reads, in a scratch dir.
    fn origin_root(
        &self,
        display: &str,
        origin: &MountOrigin,
        stages: &HashMap<usize, StageState>,
    ) -> Result<Option<ScratchDir>, BuildError> {
        let image = match origin {
            MountOrigin::Stage(i) => stages.get(i).map(|s| s.image.clone()),
            MountOrigin::Image { reference, digest } => {
                Some(Some(self.store.resolve(digest).map_err(|source| {
                    BuildError::BaseImage {
                        reference: reference.clone(),
                        source,
                    }
                })?))
            }
            MountOrigin::None | MountOrigin::Context(_) => None,
        };
        let Some(image) = image else {
            return Ok(None);
        };
        let root = self.scratch(display, "mount-from")?;
        if let Some(img) = &image {
            self.store
                .flatten(img, &root.0)
                .map_err(|source| BuildError::Store {
                    step: display.to_string(),
                    source,
                })?;
        }
        Ok(Some(root))
    }

    /// The host path a bind mount binds: a private copy of its source, resolved inside its
    /// root.
    fn bind_source(
        &self,
        display: &str,
        pm: &PlannedMount,
        ctx: &Context,
        stages: &HashMap<usize, StageState>,
        out: &mut StepMounts,
    ) -> Result<PathBuf, BuildError> {
        if let MountOrigin::Context(sel) = &pm.origin {
            let dir = self.scratch(display, "bind")?;
            let spec = CopySpec {
                add: false,
                origin: CopyOrigin::Context,
                sources: vec![CopySource::Context(sel.clone())],
                dest: if sel.is_dir {
                    "/m/".into()
                } else {
                    "/m".into()
                },
                dest_is_dir: sel.is_dir,
                chown: None,
                chmod: None,
                link: false,
                parents: false,
                parent_strip: Vec::new(),
                exclude: Vec::new(),
                checksum: None,
            };
            let items =
                copy::context_items(&spec, ctx, false).map_err(|source| BuildError::Context {
                    step: display.to_string(),
                    source,
                })?;
            let root =
                InRoot::open(&dir.0, Follow::InRoot).map_err(io_at(display, "opening", &dir.0))?;
            if sel.is_dir {
                root.mkdir_all(b"m", 0o755)
                    .map_err(io_at(display, "creating", &dir.0))?;
            }
            copy::write_items(display, &items, ctx, &root, None)?;
            let path = dir.0.join("m");
            out._scratch.push(dir);
            return Ok(path);
        }
        let root =
            self.origin_root(display, &pm.origin, stages)?
                .ok_or(BuildError::Unsupported {
                    step: display.to_string(),
                    what: "a bind mount without a source",
                })?;
        let source = pm.mount.source.as_deref().unwrap_or("/");
        let in_root =
            InRoot::open(&root.0, Follow::InRoot).map_err(io_at(display, "opening", &root.0))?;
        let fd = in_root.open_path(source.as_bytes()).map_err(io_at(
            display,
            "finding the mount source",
            Path::new(source),
        ))?;
        let real = fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).map_err(io_at(
            display,
            "finding the mount source",
            Path::new(source),
        ))?;
        let top = fs::canonicalize(&root.0).map_err(io_at(display, "opening", &root.0))?;
        if !real.starts_with(&top) {
            return Err(BuildError::Io {
                step: display.to_string(),
                op: "resolving the mount source",
                path: PathBuf::from(source),
                source: io::Error::from(io::ErrorKind::PermissionDenied),
            });
        }
        out._scratch.push(root);
        Ok(real)
    }

    /// Removes the mount points the runtime made in `upper` for targets the image lacked:
    /// each target (an empty directory or file) and the parents made for it, deepest first,
    /// stopping at anything the step put there.
    pub(super) fn remove_mount_stubs(
        &self,
        display: &str,
        upper: &Path,
        mounts: &StepMounts,
    ) -> Result<(), BuildError> {
        if mounts.stubs.is_empty() {
            return Ok(());
        }
        let root = InRoot::open(upper, Follow::Never).map_err(io_at(display, "opening", upper))?;
        for (target, first) in &mounts.stubs {
            let mut chain: Vec<String> = prefixes(target)
                .into_iter()
                .filter(|p| p.len() >= first.len())
                .collect();
            chain.reverse();
            for p in chain {
                let Ok((dir, Some(name))) = root.parent(p.as_bytes(), None) else {
                    break;
                };
                let Ok(Some(st)) = inroot::lstat_at(dir.as_fd(), &name) else {
                    break;
                };
                let flags = if inroot::is_dir(&st) {
                    libc::AT_REMOVEDIR
                } else if st.st_mode & libc::S_IFMT == libc::S_IFREG && st.st_size == 0 {
                    0
                } else {
                    break;
                };
                // SAFETY: a valid directory descriptor and NUL-terminated name; AT_REMOVEDIR
                // only removes an empty directory.
                if unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) } != 0 {
                    break;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_specs() {
        let s = BuildSecret::parse("id=tok,src=/tmp/t").unwrap();
        assert_eq!(s.source, SecretSource::File("/tmp/t".into()));
        let s = BuildSecret::parse("id=tok,env=TOKEN").unwrap();
        assert_eq!(s.source, SecretSource::Env("TOKEN".into()));
        let s = BuildSecret::parse("id=TOKEN").unwrap();
        assert_eq!(s.source, SecretSource::Env("TOKEN".into()));
        let s = BuildSecret::parse("src=/run/npmrc").unwrap();
        assert_eq!(s.id, "npmrc");
        let s = BuildSecret::parse("id=a,type=env,source=V").unwrap();
        assert_eq!(s.source, SecretSource::Env("V".into()));
        assert!(BuildSecret::parse("id=a,src=x,env=y").is_err());
        assert!(BuildSecret::parse("id=a,type=ssh,src=x").is_err());
        assert!(BuildSecret::parse("nope").is_err());
        assert!(
            BuildSecret::parse("id=a,foo=b")
                .unwrap_err()
                .contains("foo")
        );
    }

    #[test]
    fn target_prefixes() {
        assert_eq!(
            prefixes("/run/secrets/x"),
            ["run", "run/secrets", "run/secrets/x"]
        );
    }
}
