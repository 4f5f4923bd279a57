//! Volumes: directories under `<root>/volumes/NAME/_data` that outlive containers. Named ones
//! come from `volume create`, `-v NAME:/dst` or a compose file; anonymous ones (`-v /dst`, an
//! image's VOLUME) get a random name and go with `rm -v`, with `--rm`, or with `volume prune`.
//! A volume some container still mounts (running or not) is never removed.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::volume_mount::{self, VolumeMount};
use super::{ContainerConfig, MountSpec, Record, Runtime, RuntimeError, random_id, valid_name};
use crate::inroot::{self, CopyTreeError, Follow, InRoot, Special, TreeCopy};

/// Why a volume operation failed; names the volume (and the containers using it).
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("volume name {0:?} is invalid: use letters, digits, '_', '.', '-'")]
    BadName(String),
    #[error("volume {0} already exists")]
    Exists(String),
    #[error("no such volume: {0}")]
    NotFound(String),
    #[error("volume device {0:?} must be an existing directory given by an absolute path")]
    BadDevice(PathBuf),
    #[error("volume {name} is in use by container {}", containers.join(", "))]
    InUse {
        name: String,
        /// `NAME (id12)` of each container that mounts it.
        containers: Vec<String>,
    },
    #[error(transparent)]
    Mount(#[from] super::volume_mount::VolumeMountError),
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Why [`Runtime::create_pending_with_volumes`] failed: making an anonymous volume, or the
/// container itself.
#[derive(Debug, thiserror::Error)]
pub enum CreateWithVolumesError {
    #[error("anonymous volume: {0}")]
    Volume(#[from] VolumeError),
    #[error(transparent)]
    Create(#[from] RuntimeError),
}

/// Why a volume could not be filled from the image, naming the image path and the volume.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("opening {path} to fill the volume")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("copying the image content of {target} into the volume {volume}")]
    Copy {
        target: PathBuf,
        volume: PathBuf,
        #[source]
        source: CopyTreeError,
    },
}

/// Fills an empty volume with what the image has at `target`, as Docker does on a volume's
/// first use. `target` resolves inside `rootfs` (an image link at or above it is the image's
/// path, never the host's) and the copy is made inside the volume, from descriptors; links
/// are copied as links. Returns whether it copied.
pub fn seed(volume: &Path, rootfs: &Path, target: &Path) -> Result<bool, SeedError> {
    let open = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SeedError::Open { path, source }
    };
    let vol = InRoot::open(volume, Follow::Never).map_err(open(volume))?;
    if !inroot::list_dir(vol.fd()).map_err(open(volume))?.is_empty() {
        return Ok(false);
    }
    let root = InRoot::open(rootfs, Follow::InRoot).map_err(open(rootfs))?;
    let src = match root.dir(target.as_os_str().as_encoded_bytes(), None) {
        Ok(d) => d,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
            return Ok(false);
        }
        Err(e) => return Err(open(target)(e)),
    };
    let opts = TreeCopy {
        owner: None,
        chmod: None,
        special: Special::Skip,
    };
    inroot::copy_tree(src.as_ref().as_fd(), None, &vol, b"", &opts).map_err(|source| {
        SeedError::Copy {
            target: target.to_path_buf(),
            volume: volume.to_path_buf(),
            source,
        }
    })?;
    Ok(true)
}

/// What berth keeps about a volume besides its data (`<root>/volumes/NAME/meta.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VolumeMeta {
    /// RFC 3339.
    #[serde(default)]
    pub created: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Made for one container (`-v /dst`, image VOLUME): removed with it by `rm -v`.
    #[serde(default)]
    pub anonymous: bool,
    /// The local driver's options it was made with (`type`, `o`, `device` of a bind).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// A volume as `volume ls`/`inspect` show it.
#[derive(Debug, Clone, Serialize)]
pub struct VolumeInfo {
    pub name: String,
    /// The directory mounted into containers.
    pub mountpoint: PathBuf,
    pub meta: VolumeMeta,
    /// `NAME (id12)` of the containers that mount it.
    pub used_by: Vec<String>,
}

impl VolumeInfo {
    /// Whether it carries the label `KEY` or `KEY=VALUE` (the `label` filter of `volume ls`).
    pub fn has_label(&self, filter: &str) -> bool {
        match filter.split_once('=') {
            Some((k, v)) => self.meta.labels.get(k).is_some_and(|x| x == v),
            None => self.meta.labels.contains_key(filter),
        }
    }

    /// Mounted by no container (the `dangling` filter).
    pub fn dangling(&self) -> bool {
        self.used_by.is_empty()
    }
}

const META: &str = "meta.json";

/// The label dockerd puts on the anonymous volumes it makes.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> VolumeError + use<> {
    let path = path.to_path_buf();
    move |source| VolumeError::Io { what, path, source }
}

/// A fresh name for an anonymous volume (64 hex digits, as Docker's).
pub fn anonymous_name() -> String {
    random_id()
}

/// Removes the anonymous volumes of a container that is being removed (`--rm`, `rm -v`),
/// found from its record alone (the shim has no [`Runtime`]).
pub fn remove_anonymous(rec: &Record) {
    for name in &rec.config.anonymous_volumes {
        let dir = rec
            .volumes
            .iter()
            .filter_map(|d| d.parent())
            .find(|p| p.file_name() == Some(name.as_ref()));
        if let Some(dir) = dir
            && let Err(err) = fs::remove_dir_all(dir)
        {
            tracing::warn!(volume = %name, %err, "removing an anonymous volume");
        }
    }
}

impl Runtime {
    fn volumes_root(&self) -> PathBuf {
        self.cfg.root.join("volumes")
    }

    /// Creates a volume (a random name when `name` is `None`); refuses an existing name.
    pub fn volume_create(
        &self,
        name: Option<&str>,
        labels: BTreeMap<String, String>,
        anonymous: bool,
    ) -> Result<VolumeInfo, VolumeError> {
        let name = name.map(str::to_string).unwrap_or_else(anonymous_name);
        if !valid_name(&name) {
            return Err(VolumeError::BadName(name));
        }
        let dir = self.volumes_root().join(&name);
        if dir.exists() {
            return Err(VolumeError::Exists(name));
        }
        let data = dir.join("_data");
        crate::modes::root_dir(&self.cfg.root, &dir).map_err(io_err("creating", &dir))?;
        crate::modes::mkdir(&data, crate::modes::CONTAINER_DIR)
            .map_err(io_err("creating", &data))?;
        self.volume_mark(&name, labels, anonymous)?;
        self.volume_inspect(&name)
    }

    /// Records a volume's metadata (created now). An anonymous volume also gets dockerd's
    /// `com.docker.volume.anonymous` label, so `volume ls -f label=…` finds it as with Docker.
    fn volume_mark(
        &self,
        name: &str,
        mut labels: BTreeMap<String, String>,
        anonymous: bool,
    ) -> Result<(), VolumeError> {
        if anonymous {
            labels.insert(ANONYMOUS_LABEL.to_string(), String::new());
        }
        self.write_meta(
            name,
            &VolumeMeta {
                created: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
                labels,
                anonymous,
                options: BTreeMap::new(),
            },
        )
    }

    fn write_meta(&self, name: &str, meta: &VolumeMeta) -> Result<(), VolumeError> {
        let p = self.volumes_root().join(name).join(META);
        super::state::write_json_atomic(&p, meta).map_err(io_err("writing", &p))
    }

    /// Makes volume `name`'s data the host directory `device` (the local driver's bind:
    /// `type=none,o=bind,device=PATH`): `_data` is a link the bind mount follows; removing the
    /// volume removes the link, never the directory.
    pub fn volume_link(&self, name: &str, device: &Path) -> Result<(), VolumeError> {
        if !device.is_absolute() || !device.is_dir() {
            return Err(VolumeError::BadDevice(device.to_path_buf()));
        }
        let dir = self.volumes_root().join(name);
        fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
        let data = dir.join("_data");
        std::os::unix::fs::symlink(device, &data).map_err(io_err("linking", &data))
    }

    /// Creates a volume bound to the host directory `device` (see [`Runtime::volume_link`]),
    /// recording the driver `options` it was asked with; refuses an existing name.
    pub fn volume_create_bound(
        &self,
        name: Option<&str>,
        labels: BTreeMap<String, String>,
        options: BTreeMap<String, String>,
        device: &Path,
    ) -> Result<VolumeInfo, VolumeError> {
        let name = name.map(str::to_string).unwrap_or_else(anonymous_name);
        if !valid_name(&name) {
            return Err(VolumeError::BadName(name));
        }
        if self.volumes_root().join(&name).exists() {
            return Err(VolumeError::Exists(name));
        }
        self.volume_link(&name, device)?;
        let meta = VolumeMeta {
            created: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            labels,
            anonymous: false,
            options,
        };
        if let Err(e) = self.write_meta(&name, &meta) {
            let _ = fs::remove_dir_all(self.volumes_root().join(&name));
            return Err(e);
        }
        self.volume_inspect(&name)
    }

    /// Creates a volume whose data is a filesystem the local driver mounts (`options`:
    /// `type`, `o`, `device`; see [`super::volume_mount`]), recording the options so that it
    /// is mounted again after a reboot; refuses an existing name. Nothing is left when the
    /// options are refused or the mount fails.
    pub fn volume_create_mounted(
        &self,
        name: Option<&str>,
        labels: BTreeMap<String, String>,
        options: BTreeMap<String, String>,
    ) -> Result<VolumeInfo, VolumeError> {
        let name = name.map(str::to_string).unwrap_or_else(anonymous_name);
        if !valid_name(&name) {
            return Err(VolumeError::BadName(name));
        }
        let mount = VolumeMount::parse(&name, &options)?;
        let dir = self.volumes_root().join(&name);
        if dir.exists() {
            return Err(VolumeError::Exists(name));
        }
        let data = dir.join("_data");
        let made = (|| {
            crate::modes::root_dir(&self.cfg.root, &dir).map_err(io_err("creating", &dir))?;
            crate::modes::mkdir(&data, crate::modes::CONTAINER_DIR)
                .map_err(io_err("creating", &data))?;
            mount.mount(&name, &data)?;
            self.write_meta(
                &name,
                &VolumeMeta {
                    created: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
                    labels,
                    anonymous: false,
                    options,
                },
            )
        })();
        if let Err(e) = made {
            let _ = volume_mount::unmount(&name, &data);
            if !volume_mount::is_mounted(&data) {
                let _ = fs::remove_dir_all(&dir);
            }
            return Err(e);
        }
        self.volume_inspect(&name)
    }

    /// Mounts again the mounted volumes among a container's volume directories that lost
    /// their mount (the host rebooted): a container never gets the bare directory instead.
    pub(super) fn volumes_ensure_mounted(&self, data_dirs: &[PathBuf]) -> Result<(), VolumeError> {
        for data in data_dirs {
            let Some(dir) = data.parent() else { continue };
            let Some(name) = dir.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if dir.parent() != Some(self.volumes_root().as_path()) {
                continue;
            }
            let meta = self.volume_info(name, &BTreeMap::new()).meta;
            if volume_mount::is_mount_form(&meta.options) && !volume_mount::is_mounted(data) {
                VolumeMount::parse(name, &meta.options)?.mount(name, data)?;
            }
        }
        Ok(())
    }

    /// Containers (any state) that mount each volume, as `NAME (id12)`.
    fn volume_users(&self) -> BTreeMap<String, Vec<String>> {
        let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (rec, _) in self.list() {
            for m in &rec.config.mounts {
                if let MountSpec::Volume { name, .. } = m {
                    users.entry(name.clone()).or_default().push(format!(
                        "{} ({})",
                        rec.config.name,
                        &rec.id[..12]
                    ));
                }
            }
        }
        users
    }

    fn volume_info(&self, name: &str, users: &BTreeMap<String, Vec<String>>) -> VolumeInfo {
        let dir = self.volumes_root().join(name);
        let meta = fs::read(dir.join(META))
            .ok()
            .and_then(|b| serde_json::from_slice::<VolumeMeta>(&b).ok())
            .unwrap_or_else(|| VolumeMeta {
                // Made by a compose file or an older berth: the directory's time.
                created: fs::metadata(&dir)
                    .and_then(|m| m.modified())
                    .map(|t| humantime::format_rfc3339_seconds(t).to_string())
                    .unwrap_or_default(),
                ..VolumeMeta::default()
            });
        VolumeInfo {
            name: name.to_string(),
            mountpoint: dir.join("_data"),
            meta,
            used_by: users.get(name).cloned().unwrap_or_default(),
        }
    }

    /// Whether volume `name` exists (cheap: reads no container records).
    pub fn volume_exists(&self, name: &str) -> bool {
        valid_name(name) && self.volumes_root().join(name).join("_data").is_dir()
    }

    /// Every volume, by name.
    pub fn volume_list(&self) -> Vec<VolumeInfo> {
        let users = self.volume_users();
        let mut names: Vec<String> = fs::read_dir(self.volumes_root())
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join("_data").is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names.iter().map(|n| self.volume_info(n, &users)).collect()
    }

    /// One volume.
    pub fn volume_inspect(&self, name: &str) -> Result<VolumeInfo, VolumeError> {
        if !self.volume_exists(name) {
            return Err(VolumeError::NotFound(name.to_string()));
        }
        Ok(self.volume_info(name, &self.volume_users()))
    }

    /// Removes a volume nobody mounts; a volume in use is refused with the containers named.
    pub fn volume_remove(&self, name: &str) -> Result<(), VolumeError> {
        let info = self.volume_inspect(name)?;
        if !info.used_by.is_empty() {
            return Err(VolumeError::InUse {
                name: name.to_string(),
                containers: info.used_by,
            });
        }
        let dir = self.volumes_root().join(name);
        // A mounted volume's filesystem goes first: removing files under it would empty
        // it and then fail on the mount point.
        if volume_mount::is_mount_form(&info.meta.options) {
            volume_mount::unmount(name, &dir.join("_data"))?;
        }
        fs::remove_dir_all(&dir).map_err(io_err("removing", &dir))
    }

    /// Removes unused volumes: anonymous ones, or every unused one with `all`. Returns the
    /// names removed.
    pub fn volume_prune(&self, all: bool) -> Result<Vec<String>, VolumeError> {
        self.volume_prune_where(|v| all || v.meta.anonymous)
    }

    /// Removes the unused volumes `picked` chooses (Docker's prune filters). Returns the
    /// names removed.
    pub fn volume_prune_where(
        &self,
        picked: impl Fn(&VolumeInfo) -> bool,
    ) -> Result<Vec<String>, VolumeError> {
        let mut gone = Vec::new();
        for v in self.volume_list() {
            if v.dangling() && picked(&v) {
                self.volume_remove(&v.name)?;
                gone.push(v.name);
            }
        }
        Ok(gone)
    }

    /// [`Runtime::create_pending`] after making the container's anonymous volumes that do not
    /// exist yet, through [`Runtime::volume_create`] (recorded as anonymous, so `volume ls`
    /// shows them and `volume prune` takes them once dangling); one that exists is kept with
    /// its data (a replaced container's, handed on). The volumes made here go again if the
    /// creation fails. The one way every container with volumes is created.
    pub fn create_pending_with_volumes(
        &self,
        config: ContainerConfig,
    ) -> Result<Record, CreateWithVolumesError> {
        let mut made = Vec::new();
        for name in &config.anonymous_volumes {
            if self.volume_exists(name) {
                continue;
            }
            if let Err(err) = self.volume_create(Some(name), BTreeMap::new(), true) {
                self.drop_volumes(&made);
                return Err(err.into());
            }
            made.push(name.clone());
        }
        self.create_pending(config).map_err(|err| {
            self.drop_volumes(&made);
            err.into()
        })
    }

    /// Removes volumes just made for a container that could not be created.
    fn drop_volumes(&self, names: &[String]) {
        for name in names {
            if let Err(err) = self.volume_remove(name) {
                tracing::warn!(volume = %name, %err, "removing an unused anonymous volume");
            }
        }
    }

    /// `rm -v`: removes a removed container's anonymous volumes that no other container
    /// mounts.
    pub fn remove_anonymous_volumes(&self, rec: &Record) -> Vec<VolumeError> {
        let mut errs = Vec::new();
        for name in &rec.config.anonymous_volumes {
            match self.volume_remove(name) {
                Ok(()) | Err(VolumeError::NotFound(_)) => {}
                Err(e) => errs.push(e),
            }
        }
        errs
    }
}
