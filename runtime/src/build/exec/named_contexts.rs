//! Named build contexts (`berth image build --build-context NAME=PATH|docker-image://REF`,
//! Compose `build.additional_contexts`): `FROM NAME`, `COPY --from=NAME` and `RUN
//! --mount=from=NAME` read the named directory or image instead of a stage or registry image
//! of that name, as BuildKit's do.
//!
//! A directory becomes a one-layer image of the store (listed as the main context is:
//! `.dockerignore` applied, symlinks kept as links, never followed), so every path a build
//! reads from it is resolved inside that image's root like any stage's: a `..` or a link
//! pointing out of the directory ends inside it, never on the host. Its files are owned by
//! root with their modes and a zero mtime, so the image (and the keys of the steps that use
//! it) depend on the content only; the image made for a content is remembered under
//! `<builder>/named-contexts/` and used again while the store has it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::{BuildError, Builder};
use crate::build::context::{Context, EntryKind, field};

/// A named context as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedContext {
    /// The name the Dockerfile uses (`FROM NAME`, `--from=NAME`).
    pub name: String,
    /// What it stands for.
    pub source: NamedSource,
}

/// What a named context stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamedSource {
    /// A directory on the machine running the build.
    Dir(PathBuf),
    /// An image reference (`docker-image://REF`), resolved like a FROM image.
    Image(String),
    /// An image of the local store only (Compose's `service:NAME`, the image built for
    /// another service): never looked for in a registry, `--pull` or not.
    Local(String),
}

impl NamedContext {
    /// `NAME=PATH` or `NAME=docker-image://REF`; a relative PATH is `base`'s. Other sources
    /// BuildKit takes (URLs, `target:`, `oci-layout://`) are refused by name.
    pub fn parse(spec: &str, base: &Path) -> Result<NamedContext, String> {
        let (name, value) = spec
            .split_once('=')
            .ok_or_else(|| format!("build context {spec:?}: expected NAME=PATH"))?;
        NamedContext::new(name, value, base)
    }

    /// The context `name` standing for `value` (a path, or `docker-image://REF`).
    pub fn new(name: &str, value: &str, base: &Path) -> Result<NamedContext, String> {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c));
        if !valid {
            return Err(format!("build context {name:?}: not a valid name"));
        }
        let source = if let Some(r) = value.strip_prefix("docker-image://") {
            if r.is_empty() {
                return Err(format!(
                    "build context {name}: docker-image:// names no image"
                ));
            }
            NamedSource::Image(r.to_string())
        } else if let Some((scheme, _)) = value.split_once("://") {
            return Err(format!(
                "build context {name}={value}: {scheme}:// sources are not supported (a directory or docker-image://REF)"
            ));
        } else if value.starts_with("target:") {
            return Err(format!(
                "build context {name}={value}: target: (a bake target) is not supported"
            ));
        } else if value.is_empty() {
            return Err(format!("build context {name}: empty path"));
        } else {
            NamedSource::Dir(base.join(value))
        };
        Ok(NamedContext {
            name: name.to_string(),
            source,
        })
    }
}

fn io_err(name: &str, op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BuildError {
    let (step, path) = (format!("build context {name}"), path.to_path_buf());
    move |source| BuildError::Io {
        step,
        op,
        path,
        source,
    }
}

impl Builder<'_> {
    /// The image reference standing for each named context (directories made into images),
    /// and those that are the store's own (directories' and local images': a `--pull` does not
    /// look for them in a registry).
    pub(super) fn named_contexts(
        &self,
        contexts: &[NamedContext],
    ) -> Result<(BTreeMap<String, String>, Vec<String>), BuildError> {
        let mut map = BTreeMap::new();
        let mut local = Vec::new();
        for c in contexts {
            let reference = match &c.source {
                NamedSource::Image(r) => r.clone(),
                NamedSource::Local(r) => {
                    local.push(r.clone());
                    r.clone()
                }
                NamedSource::Dir(d) => {
                    let id = self.dir_image(&c.name, d)?;
                    local.push(id.clone());
                    id
                }
            };
            map.insert(c.name.clone(), reference);
        }
        Ok((map, local))
    }

    /// The id of the one-layer image holding directory `dir`, made when the store lacks it.
    fn dir_image(&self, name: &str, dir: &Path) -> Result<String, BuildError> {
        let ctx_err = |source| BuildError::Context {
            step: format!("build context {name}"),
            source,
        };
        if !dir.is_dir() {
            return Err(BuildError::Context {
                step: format!("build context {name}"),
                source: crate::build::context::ContextError::Io {
                    path: dir.to_path_buf(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "not a directory (a named context is a directory or docker-image://REF)",
                    ),
                },
            });
        }
        let ctx = Context::scan(dir).map_err(ctx_err)?;
        let mut h = Sha256::new();
        for (i, e) in ctx.entries().iter().enumerate() {
            field(&mut h, e.rel.as_bytes());
            field(&mut h, &e.mode.to_le_bytes());
            match &e.kind {
                EntryKind::Dir => field(&mut h, b"d"),
                EntryKind::File => field(&mut h, &ctx.file_digest(i).map_err(ctx_err)?),
                EntryKind::Symlink(t) => field(&mut h, format!("l{t}").as_bytes()),
            }
        }
        let key = hex::encode(h.finalize());
        let index = self.dir.join("named-contexts");
        std::fs::create_dir_all(&index).map_err(io_err(name, "creating", &index))?;
        let known = index.join(&key);
        if let Ok(id) = std::fs::read_to_string(&known)
            && self.store.resolve(id.trim()).is_ok()
        {
            return Ok(id.trim().to_string());
        }
        let scratch = self.scratch(&format!("build context {name}"), "named")?;
        let tar_path = scratch.0.join("context.tar");
        write_tar(&ctx, &tar_path).map_err(io_err(name, "writing", &tar_path))?;
        let mut tar = std::fs::File::open(&tar_path).map_err(io_err(name, "opening", &tar_path))?;
        let img = self
            .store
            .import(
                &mut tar,
                &format!("(build context {name})"),
                oci_spec::image::Config::default(),
            )
            .map_err(|source| BuildError::Store {
                step: format!("build context {name}"),
                source,
            })?;
        let id = img.id.to_string();
        std::fs::write(&known, &id).map_err(io_err(name, "writing", &known))?;
        Ok(id)
    }
}

/// The listed entries as a plain tar: owner root, the entries' modes, mtime 0.
fn write_tar(ctx: &Context, out: &Path) -> std::io::Result<()> {
    let file = std::fs::File::create(out)?;
    let mut b = tar::Builder::new(std::io::BufWriter::new(file));
    for (i, e) in ctx.entries().iter().enumerate() {
        if e.rel.is_empty() {
            continue;
        }
        let mut hd = tar::Header::new_gnu();
        hd.set_mode(e.mode);
        hd.set_uid(0);
        hd.set_gid(0);
        hd.set_mtime(0);
        match &e.kind {
            EntryKind::Dir => {
                hd.set_entry_type(tar::EntryType::Directory);
                hd.set_size(0);
                b.append_data(&mut hd, format!("{}/", e.rel), std::io::empty())?;
            }
            EntryKind::Symlink(target) => {
                hd.set_entry_type(tar::EntryType::Symlink);
                hd.set_size(0);
                b.append_link(&mut hd, &e.rel, target)?;
            }
            EntryKind::File => {
                let (f, _) = ctx
                    .open_entry(i)
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                hd.set_entry_type(tar::EntryType::Regular);
                hd.set_size(f.metadata()?.len());
                b.append_data(&mut hd, &e.rel, f)?;
            }
        }
    }
    b.into_inner()?.into_inner().map_err(|e| e.into_error())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_read_as_buildkits() {
        let base = Path::new("/proj");
        let d = NamedContext::parse("src=./lib", base).expect("dir");
        assert_eq!(d.source, NamedSource::Dir(base.join("./lib")));
        let a = NamedContext::parse("shared=/abs", base).expect("abs");
        assert_eq!(a.source, NamedSource::Dir(PathBuf::from("/abs")));
        let i = NamedContext::parse("alpine=docker-image://busybox:1", base).expect("image");
        assert_eq!(i.source, NamedSource::Image("busybox:1".into()));
        for bad in [
            "noequals",
            "=x",
            "a=https://example.com/x.git",
            "a=target:other",
            "a=docker-image://",
            "a b=x",
            "a=",
        ] {
            assert!(NamedContext::parse(bad, base).is_err(), "{bad}");
        }
    }
}
