//! `image analyze`: what each layer of an image adds, changes and deletes, and the bytes it
//! carries that a later layer deletes or overwrites, so nobody ever sees them (what `dive`
//! calls wasted space), with the image's efficiency: the share of its layers' file bytes that
//! the final filesystem still shows.
//!
//! The layers are read from the store's unpacked directories (overlayfs format: a whiteout is a
//! 0/0 character device, an opaque directory hides everything below it), through directory
//! descriptors, bottom to top, keeping which layer shows each path.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::inroot::{self, cname, list_dir, lstat_at, open_dir_at};

use super::diff::xattrs;
use super::store::Image;
use super::unpack::OVERLAY_OPAQUE_XATTR;

/// How many of the most wasteful paths the report lists.
const TOP_WASTED: usize = 20;

/// A layer directory could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot {op} {path}")]
pub struct AnalyzeError {
    op: &'static str,
    path: PathBuf,
    #[source]
    source: io::Error,
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> AnalyzeError + use<> {
    let path = path.to_owned();
    move |source| AnalyzeError { op, path, source }
}

/// One layer's line of the report.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct LayerReport {
    /// 0-based, bottom first.
    pub index: usize,
    /// The layer's diff id.
    pub diff_id: String,
    /// Bytes of file content in the layer.
    pub size: u64,
    /// The history entry that made it (the Dockerfile instruction), when the history has one.
    pub instruction: String,
    /// Files (non-directories) new at their path.
    pub added: u64,
    /// Files that replace one a lower layer had at their path.
    pub changed: u64,
    /// Paths deleted (whiteouts that hid something, files under an opaque directory).
    pub deleted: u64,
    /// Bytes of this layer's files that a later layer deletes or overwrites.
    pub wasted: u64,
}

/// A path whose copies cost bytes nobody sees.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct WastedPath {
    /// The path in the image.
    pub path: String,
    /// Copies of it that later layers hid.
    pub count: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// What `image analyze` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    /// The image id.
    pub image: String,
    /// Layers, bottom first.
    pub layers: Vec<LayerReport>,
    /// Bytes of file content over all layers.
    pub total_size: u64,
    /// Bytes of it that a later layer hides.
    pub wasted: u64,
    /// `(total_size - wasted) / total_size`, 1 for an empty image.
    pub efficiency: f64,
    /// The paths that waste most, most first.
    pub wasted_paths: Vec<WastedPath>,
}

/// Who shows a path and how big it is there.
#[derive(Clone, Copy)]
struct Shown {
    layer: usize,
    size: u64,
}

struct Walk {
    /// Visible non-directories, by path ("/a/b").
    files: BTreeMap<Vec<u8>, Shown>,
    layers: Vec<LayerReport>,
    wasted_by_path: HashMap<Vec<u8>, (u64, u64)>,
}

impl Walk {
    /// `path` (and with `tree` everything under it) stops being shown; returns how many.
    fn hide(&mut self, path: &[u8], tree: bool) -> u64 {
        let mut gone: Vec<Vec<u8>> = Vec::new();
        if self.files.contains_key(path) {
            gone.push(path.to_vec());
        }
        if tree {
            let mut lo = path.to_vec();
            lo.push(b'/');
            let mut hi = path.to_vec();
            hi.push(b'/' + 1);
            gone.extend(self.files.range(lo..hi).map(|(k, _)| k.clone()));
        }
        let n = gone.len() as u64;
        for k in gone {
            if let Some(s) = self.files.remove(&k) {
                self.layers[s.layer].wasted += s.size;
                let w = self.wasted_by_path.entry(k).or_default();
                w.0 += 1;
                w.1 += s.size;
            }
        }
        n
    }

    fn layer(
        &mut self,
        i: usize,
        src: BorrowedFd<'_>,
        rel: &[u8],
        top: &Path,
    ) -> Result<(), AnalyzeError> {
        let here =
            top.join(String::from_utf8_lossy(rel.strip_prefix(b"/").unwrap_or(rel)).as_ref());
        let mut names = list_dir(src).map_err(io_err("list", &here))?;
        names.sort();
        for name in names {
            let mut path = rel.to_vec();
            path.push(b'/');
            path.extend_from_slice(&name);
            let at = top.join(String::from_utf8_lossy(&path[1..]).as_ref());
            let cn = cname(&name).map_err(io_err("read", &at))?;
            let Some(st) = lstat_at(src, &cn).map_err(io_err("read", &at))? else {
                continue;
            };
            if inroot::is_whiteout(&st) {
                let n = self.hide(&path, true);
                self.layers[i].deleted += n;
                continue;
            }
            if inroot::is_dir(&st) {
                // A directory replaces a file there; an opaque one hides all below it.
                let mut n = self.hide(&path, false);
                let opaque = xattrs(src, &cn)
                    .map_err(io_err("read xattrs of", &at))?
                    .iter()
                    .any(|(k, v)| k == OVERLAY_OPAQUE_XATTR && v == b"y");
                if opaque {
                    n += self.hide(&path, true);
                }
                self.layers[i].deleted += n;
                let sub: OwnedFd = open_dir_at(src, &cn).map_err(io_err("open", &at))?;
                self.layer(i, sub.as_fd(), &path, top)?;
                continue;
            }
            let size = if st.st_mode & libc::S_IFMT == libc::S_IFREG {
                st.st_size.max(0) as u64
            } else {
                0
            };
            // A file replaces whatever was there, a directory tree included.
            if self.hide(&path, true) > 0 {
                self.layers[i].changed += 1;
            } else {
                self.layers[i].added += 1;
            }
            self.files.insert(path, Shown { layer: i, size });
        }
        Ok(())
    }
}

/// Analyzes `image`'s layers (see the module doc).
pub fn analyze(image: &Image) -> Result<Analysis, AnalyzeError> {
    let history = image.config.history().clone().unwrap_or_default();
    let made: Vec<String> = history
        .iter()
        .filter(|h| !h.empty_layer().unwrap_or(false))
        .map(|h| h.created_by().clone().unwrap_or_default())
        .collect();
    let dirs = image.layer_dirs();
    let mut w = Walk {
        files: BTreeMap::new(),
        layers: image
            .record
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| LayerReport {
                index: i,
                diff_id: l.diff_id.to_string(),
                size: image.layer_sizes.get(i).copied().unwrap_or(0),
                instruction: if made.len() == dirs.len() {
                    made[i].clone()
                } else {
                    String::new()
                },
                ..Default::default()
            })
            .collect(),
        wasted_by_path: HashMap::new(),
    };
    for (i, d) in dirs.iter().enumerate() {
        let fd: OwnedFd = fs::File::open(d).map_err(io_err("open", d))?.into();
        w.layer(i, fd.as_fd(), b"", d)?;
    }
    let total_size: u64 = w.layers.iter().map(|l| l.size).sum();
    let wasted: u64 = w.layers.iter().map(|l| l.wasted).sum();
    let efficiency = if total_size == 0 {
        1.0
    } else {
        total_size.saturating_sub(wasted) as f64 / total_size as f64
    };
    let mut wasted_paths: Vec<WastedPath> = w
        .wasted_by_path
        .into_iter()
        .filter(|(_, (_, b))| *b > 0)
        .map(|(p, (count, bytes))| WastedPath {
            path: String::from_utf8_lossy(&p).into_owned(),
            count,
            bytes,
        })
        .collect();
    wasted_paths.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.path.cmp(&b.path)));
    wasted_paths.truncate(TOP_WASTED);
    Ok(Analysis {
        image: image.id.to_string(),
        layers: w.layers,
        total_size,
        wasted,
        efficiency,
        wasted_paths,
    })
}
