//! Where each selected context file lands in the image: Docker's COPY/ADD destination rules as
//! a pure function, so the executor only creates what this list says.
//!
//! The rules: a directory source copies its *contents* into the destination; a file source
//! lands at `dest/<name>` when the destination is a directory (ends with `/`, several sources,
//! or already a directory in the parent rootfs) and at `dest` itself otherwise; a heredoc is a
//! file named after its delimiter. ADD extracts a local tar archive (plain, gzip, bzip2, xz)
//! into the destination directory instead of copying it.
//!
//! The second half writes the items into the step's layer directory through
//! [`crate::inroot`], with the parent image's layers as lowers: every path resolves inside the
//! image (a link placed by this COPY, an earlier one or the base image is followed as if the
//! image were `/`), never onto the host.

use std::fs;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::context::{Context, ContextError, EntryKind};
use super::exec::BuildError;
use super::ignore::{IgnoreRules, clean_path};
use super::plan::{CopySource, CopySpec};
use crate::image::unpack::{self, Extract, Owners, Whiteouts};
use crate::inroot::{self, Follow, InRoot};

/// What to create at one destination path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemKind {
    /// A directory with these permission bits.
    Dir {
        /// Permission bits (`--chmod` applied).
        mode: u32,
    },
    /// A regular file copied from a context entry.
    File {
        /// Index in [`Context::entries`].
        entry: usize,
        /// Permission bits (`--chmod` applied).
        mode: u32,
    },
    /// A symlink, created as is (never resolved on the host).
    Symlink {
        /// The link target as stored in the context.
        target: String,
    },
    /// A heredoc file.
    Inline {
        /// The content.
        content: String,
        /// Permission bits (0644 unless `--chmod`).
        mode: u32,
    },
    /// ADD of an http(s) URL: the downloaded file (mode 0600, as Docker), checked against
    /// `checksum` (`sha256:<hex>`) when given.
    Download {
        /// The URL.
        url: String,
        /// The digest the bytes must have.
        checksum: Option<String>,
    },
    /// ADD of a local tar archive: extract its members under `dest` (a directory).
    Archive {
        /// Index in [`Context::entries`].
        entry: usize,
        /// The compression found by its magic bytes.
        compression: Compression,
    },
}

/// Compression of an archive ADD extracts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip.
    Gzip,
    /// bzip2.
    Bzip2,
    /// xz.
    Xz,
    /// zstd.
    Zstd,
}

/// One thing to create in the new layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyItem {
    /// Absolute path in the image.
    pub dest: String,
    /// What to create there.
    pub kind: ItemKind,
}

/// Identify a tar archive (possibly compressed) by its first bytes, as Docker's ADD does.
pub fn sniff_archive(ctx: &Context, entry: usize) -> Result<Option<Compression>, ContextError> {
    let (mut f, io) = ctx.open_entry(entry)?;
    let mut head = Vec::with_capacity(512);
    f.by_ref().take(512).read_to_end(&mut head).map_err(io)?;
    let c = if head.starts_with(&[0x1f, 0x8b]) {
        Some(Compression::Gzip)
    } else if head.starts_with(b"BZh") {
        Some(Compression::Bzip2)
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Some(Compression::Xz)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(Compression::Zstd)
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        Some(Compression::None)
    } else {
        None
    };
    Ok(c)
}

fn join(dir: &str, name: &str) -> String {
    clean_path(&format!("{}/{name}", dir.trim_end_matches('/')))
}

fn base_name(rel: &str) -> &str {
    rel.rsplit('/').next().unwrap_or(rel)
}

/// The items a context COPY/ADD creates. `dest_exists_as_dir` is whether the destination
/// already is a directory in the parent rootfs (only the executor can look).
pub fn context_items(
    spec: &CopySpec,
    ctx: &Context,
    dest_exists_as_dir: bool,
) -> Result<Vec<CopyItem>, ContextError> {
    let dest_exists_as_dir = dest_exists_as_dir || spec.parents;
    let into_dir = spec.dest_is_dir || dest_exists_as_dir;
    let mode_of = |m: u32| spec.chmod.unwrap_or(m);
    let mut out = Vec::new();
    // Patterns were checked by the planner; an unparsable one excludes nothing.
    let exclude = if spec.exclude.is_empty() {
        None
    } else {
        IgnoreRules::parse(&spec.exclude.join("\n")).ok()
    };
    let excluded = |rel: &str| exclude.as_ref().is_some_and(|r| r.is_excluded(rel));
    for (si, src) in spec.sources.iter().enumerate() {
        // --parents: the source's own path (less what precedes a `/./`) is kept under dest.
        let kept;
        let dest = match src {
            CopySource::Context(sel) if spec.parents => {
                let strip = spec.parent_strip.get(si).map(String::as_str).unwrap_or("");
                let rel = sel.rel.strip_prefix(strip).unwrap_or(&sel.rel);
                let rel = rel.trim_start_matches('/');
                let keep = if sel.is_dir {
                    rel
                } else {
                    rel.rsplit_once('/').map_or("", |(d, _)| d)
                };
                kept = join(&spec.dest, keep);
                kept.as_str()
            }
            _ => spec.dest.as_str(),
        };
        match src {
            CopySource::Path(_) => {
                // Paths of another stage or image are resolved by the executor in that rootfs.
                continue;
            }
            CopySource::Url(url) => {
                let name = url_file_name(url);
                out.push(CopyItem {
                    dest: if into_dir || name.is_empty() {
                        join(dest, name)
                    } else {
                        clean_path(dest)
                    },
                    kind: ItemKind::Download {
                        url: url.clone(),
                        checksum: spec.checksum.clone(),
                    },
                });
            }
            CopySource::Inline { name, content } => out.push(CopyItem {
                dest: if into_dir {
                    join(dest, name)
                } else {
                    clean_path(dest)
                },
                kind: ItemKind::Inline {
                    content: content.clone(),
                    mode: mode_of(0o644),
                },
            }),
            CopySource::Context(sel) => {
                if sel.is_dir {
                    // The contents of the directory go into dest.
                    let base = match sel.entry {
                        Some(i) => format!("{}/", ctx.entries()[i].rel),
                        None => String::new(),
                    };
                    if let Some(i) = sel.entry {
                        out.push(CopyItem {
                            dest: clean_path(dest),
                            kind: ItemKind::Dir {
                                mode: mode_of(ctx.entries()[i].mode),
                            },
                        });
                    }
                    for i in ctx.members(sel) {
                        let e = &ctx.entries()[i];
                        let rel = e.rel.strip_prefix(&base).unwrap_or(&e.rel);
                        if excluded(rel) {
                            continue;
                        }
                        out.push(item(ctx, join(dest, rel), i, &mode_of));
                    }
                    continue;
                }
                let Some(i) = sel.entry else { continue };
                if excluded(&sel.rel) || excluded(base_name(&sel.rel)) {
                    continue;
                }
                let target = if into_dir {
                    join(dest, base_name(&sel.rel))
                } else {
                    clean_path(dest)
                };
                if spec.add
                    && ctx.entries()[i].kind == EntryKind::File
                    && let Some(compression) = sniff_archive(ctx, i)?
                {
                    out.push(CopyItem {
                        dest: clean_path(dest),
                        kind: ItemKind::Archive {
                            entry: i,
                            compression,
                        },
                    });
                    continue;
                }
                out.push(item(ctx, target, i, &mode_of));
            }
        }
    }
    Ok(out)
}

fn item(ctx: &Context, dest: String, i: usize, mode_of: &dyn Fn(u32) -> u32) -> CopyItem {
    let e = &ctx.entries()[i];
    let kind = match &e.kind {
        EntryKind::Dir => ItemKind::Dir {
            mode: mode_of(e.mode),
        },
        EntryKind::File => ItemKind::File {
            entry: i,
            mode: mode_of(e.mode),
        },
        EntryKind::Symlink(t) => ItemKind::Symlink { target: t.clone() },
    };
    CopyItem { dest, kind }
}

/// The file name an ADD of `url` gets in a directory: the last path segment (query and
/// fragment left out), as Docker names it.
fn url_file_name(url: &str) -> &str {
    let no_query = url.split(['?', '#']).next().unwrap_or(url);
    let path = no_query.split_once("://").map_or(no_query, |(_, r)| r);
    match path.split_once('/') {
        Some((_, p)) => p.rsplit('/').next().unwrap_or(""),
        None => "",
    }
}

/// Downloads `url` into `dest` of `root`, hashing the bytes as they arrive; with `checksum`, a
/// mismatch fails the step naming both digests and leaves nothing at `dest`.
fn download(
    step: &str,
    url: &str,
    checksum: Option<&str>,
    root: &InRoot,
    dest: &[u8],
    owner: Option<(u32, u32)>,
) -> Result<(), BuildError> {
    use sha2::Digest as _;
    let shown = String::from_utf8_lossy(dest).into_owned();
    let fail = |message: String| BuildError::Download {
        step: step.to_string(),
        url: url.to_string(),
        message,
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(std::time::Duration::from_secs(30)))
        .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let resp = agent.get(url).call().map_err(|e| fail(e.to_string()))?;
    let mut body = resp.into_body();
    let mut reader = body.as_reader();
    let mut to = root
        .create_file(dest)
        .map_err(step_io(step, "creating", &shown))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf).map_err(|e| fail(e.to_string()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        io::Write::write_all(&mut to, &buf[..n]).map_err(step_io(step, "writing", &shown))?;
    }
    let got = format!("sha256:{}", hex::encode(h.finalize()));
    if let Some(want) = checksum
        && !got.eq_ignore_ascii_case(want)
    {
        drop(to);
        if let Ok((dir, Some(name))) = root.parent(dest, None) {
            let _ = inroot::remove_at(dir.as_fd(), &name);
        }
        return Err(fail(format!(
            "checksum mismatch: expected {want}, got {got}"
        )));
    }
    let (uid, gid) = owner.unwrap_or((0, 0));
    inroot::fchown(to.as_fd(), uid, gid).map_err(step_io(step, "chown", &shown))?;
    inroot::fchmod(to.as_fd(), 0o600).map_err(step_io(step, "chmod", &shown))?;
    Ok(())
}

/// The error of I/O `op` on image or host path `path` in build step `step`, for `map_err`.
pub(super) fn step_io<P: AsRef<Path>>(
    step: &str,
    op: &'static str,
    path: P,
) -> impl FnOnce(io::Error) -> BuildError + use<P> {
    let (step, path) = (step.to_string(), path.as_ref().to_path_buf());
    move |source| BuildError::Io {
        step,
        op,
        path,
        source,
    }
}

/// The parent image's merged rootfs, read-only (the top layer with the others as lowers):
/// for `--chown` names and whether the destination is a directory. `None` for `FROM scratch`.
pub(super) fn image_view(step: &str, layers: &[PathBuf]) -> Result<Option<InRoot>, BuildError> {
    let Some((top, rest)) = layers.split_last() else {
        return Ok(None);
    };
    InRoot::open(top, Follow::InRoot)
        .and_then(|r| r.with_lowers(rest))
        .map(Some)
        .map_err(step_io(step, "opening the layers of", top))
}

/// Whether `path` is a directory (links followed inside the image) in `view`.
pub(super) fn is_dir_in(view: Option<&InRoot>, path: &str) -> bool {
    view.is_some_and(|v| v.is_dir(path.as_bytes()))
}

/// The layer directory of a COPY/ADD step as a root over the parent's layers.
pub(super) fn layer_root(
    step: &str,
    upper: &Path,
    layers: &[PathBuf],
) -> Result<InRoot, BuildError> {
    InRoot::open(upper, Follow::InRoot)
        .and_then(|r| r.with_lowers(layers))
        .map_err(step_io(step, "opening", upper))
}

fn lookup_id(view: Option<&InRoot>, file: &str, name: &str, field: usize) -> Option<u32> {
    let mut text = String::new();
    view?
        .open_file(file.as_bytes())
        .ok()?
        .take(16 << 20)
        .read_to_string(&mut text)
        .ok()?;
    text.lines().find_map(|l| {
        let parts: Vec<&str> = l.split(':').collect();
        (parts.first() == Some(&name))
            .then(|| parts.get(field).and_then(|v| v.parse().ok()))
            .flatten()
    })
}

/// `--chown user[:group]`: numbers as is, names through the image's /etc/passwd and /etc/group
/// (read inside the image); a user alone also sets its primary group (Docker's rule).
pub(super) fn resolve_owner(
    step: &str,
    spec: &str,
    view: Option<&InRoot>,
) -> Result<(u32, u32), BuildError> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let unknown = |what, name: &str| BuildError::UnknownOwner {
        step: step.to_string(),
        spec: spec.to_string(),
        what,
        name: name.to_string(),
    };
    let uid = match user.parse::<u32>() {
        Ok(n) => n,
        Err(_) => lookup_id(view, "/etc/passwd", user, 2).ok_or_else(|| unknown("user", user))?,
    };
    let gid = match group {
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => lookup_id(view, "/etc/group", g, 2).ok_or_else(|| unknown("group", g))?,
        },
        None => match user.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                lookup_id(view, "/etc/passwd", user, 3).ok_or_else(|| unknown("user", user))?
            }
        },
    };
    Ok((uid, gid))
}

/// Writes a context COPY/ADD's items into `root` (the step's layer over the parent's).
pub(super) fn write_items(
    step: &str,
    items: &[CopyItem],
    ctx: &Context,
    root: &InRoot,
    owner: Option<(u32, u32)>,
) -> Result<(), BuildError> {
    // Context files are read inside the context too: a directory swapped for a link after
    // the scan is refused, not followed.
    let ctx_root = InRoot::open(ctx.root(), Follow::Never).map_err(step_io(
        step,
        "opening the context",
        ctx.root(),
    ))?;
    let (uid, gid) = owner.unwrap_or((0, 0));
    for item in items {
        let dest = item.dest.as_bytes();
        let err = |op| step_io(step, op, &item.dest);
        match &item.kind {
            ItemKind::Dir { mode } => {
                let fd = root.mkdir_all(dest, 0o755).map_err(err("creating"))?;
                inroot::fchown(fd.as_fd(), uid, gid).map_err(err("chown"))?;
                inroot::fchmod(fd.as_fd(), *mode).map_err(err("chmod"))?;
            }
            ItemKind::File { entry, mode } => {
                let rel = &ctx.entries()[*entry].rel;
                let mut from = ctx_root.open_file(rel.as_bytes()).map_err(step_io(
                    step,
                    "opening",
                    ctx.host_path(*entry),
                ))?;
                let mut to = root.create_file(dest).map_err(err("creating"))?;
                io::copy(&mut from, &mut to).map_err(err("copying to"))?;
                inroot::fchown(to.as_fd(), uid, gid).map_err(err("chown"))?;
                inroot::fchmod(to.as_fd(), *mode).map_err(err("chmod"))?;
            }
            ItemKind::Symlink { target } => {
                root.symlink(dest, target.as_bytes())
                    .map_err(err("linking"))?;
                root.lchown(dest, uid, gid).map_err(err("chown"))?;
            }
            ItemKind::Inline { content, mode } => {
                let mut to = root.create_file(dest).map_err(err("creating"))?;
                io::Write::write_all(&mut to, content.as_bytes()).map_err(err("writing"))?;
                inroot::fchown(to.as_fd(), uid, gid).map_err(err("chown"))?;
                inroot::fchmod(to.as_fd(), *mode).map_err(err("chmod"))?;
            }
            ItemKind::Download { url, checksum } => {
                download(step, url, checksum.as_deref(), root, dest, owner)?;
            }
            ItemKind::Archive { entry, compression } => {
                let src = ctx.host_path(*entry);
                root.mkdir_all(dest, 0o755).map_err(err("creating"))?;
                let opts = Extract {
                    whiteouts: Whiteouts::Keep,
                    owners: owner.map_or(Owners::Keep, |(u, g)| Owners::Set(u, g)),
                    into: dest.to_vec(),
                    rename_top: None,
                    keep_kinds: false,
                };
                let file = ctx_root
                    .open_file(ctx.entries()[*entry].rel.as_bytes())
                    .map_err(step_io(step, "opening", &src))?;
                extract(step, &src, file, *compression, root, &opts)?;
            }
        }
    }
    Ok(())
}

/// ADD's archive extraction: gzip and zstd in process, bzip2 and xz through the system's
/// decompressor (a filter from stdin to stdout); the entries land through [`unpack::unpack_into`].
fn extract(
    step: &str,
    src: &Path,
    file: fs::File,
    compression: Compression,
    root: &InRoot,
    opts: &Extract,
) -> Result<(), BuildError> {
    let unpack_err = |e: unpack::UnpackError| BuildError::Io {
        step: step.to_string(),
        op: "extracting",
        path: src.to_path_buf(),
        source: io::Error::other(crate::container::init::chain(&e)),
    };
    let tool = match compression {
        Compression::Bzip2 => "bzip2",
        Compression::Xz => "xz",
        Compression::None | Compression::Gzip | Compression::Zstd => {
            return unpack::unpack_into(file, root, opts)
                .map(drop)
                .map_err(unpack_err);
        }
    };
    let mut child = Command::new(tool)
        .arg("-dc")
        .stdin(file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(step_io(step, "running the decompressor for", src))?;
    let out = child.stdout.take().ok_or_else(|| BuildError::Io {
        step: step.to_string(),
        op: "decompressing",
        path: src.to_path_buf(),
        source: io::Error::other("no output pipe"),
    })?;
    let res = unpack::unpack_into(out, root, opts).map(drop);
    let status = child
        .wait_with_output()
        .map_err(step_io(step, "decompressing", src))?;
    res.map_err(unpack_err)?;
    if !status.status.success() {
        return Err(BuildError::Io {
            step: step.to_string(),
            op: "decompressing",
            path: src.to_path_buf(),
            source: io::Error::other(String::from_utf8_lossy(&status.stderr).trim().to_string()),
        });
    }
    Ok(())
}

/// Copies `src_path` of `src` (file, symlink or directory tree; links on the way followed
/// inside `src`, the last one copied as a link) to `dst_path` of `dst`, owned by `owner`,
/// with `chmod` replacing the permission bits when given.
pub(super) fn copy_tree(
    step: &str,
    src: &InRoot,
    src_path: &str,
    dst: &InRoot,
    dst_path: &str,
    owner: (u32, u32),
    chmod: Option<u32>,
) -> Result<(), BuildError> {
    let shown = format!("/{}", src_path.trim_start_matches('/'));
    let (dir, name) = src.parent(src_path.as_bytes(), None).map_err(step_io(
        step,
        "finding the COPY --from source",
        &shown,
    ))?;
    let opts = inroot::TreeCopy {
        owner: Some(owner),
        chmod,
        // Docker copies them; rare in COPY --from.
        special: inroot::Special::Refuse,
    };
    inroot::copy_tree(
        dir.as_fd(),
        name.as_deref(),
        dst,
        dst_path.as_bytes(),
        &opts,
    )
    .map_err(|e| match e {
        inroot::CopyTreeError::Io { op, path, source } => BuildError::Io {
            step: step.to_string(),
            op,
            path,
            source,
        },
        inroot::CopyTreeError::Special { .. } => BuildError::Unsupported {
            step: step.to_string(),
            what: "COPY --from of device, fifo or socket files",
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::plan::CopyOrigin;

    fn spec(ctx: &Context, sources: &[&str], dest: &str, add: bool) -> CopySpec {
        let mut s = Vec::new();
        for p in sources {
            for sel in ctx.select(p).unwrap() {
                s.push(CopySource::Context(sel));
            }
        }
        CopySpec {
            add,
            origin: CopyOrigin::Context,
            dest_is_dir: dest.ends_with('/') || s.len() > 1,
            sources: s,
            dest: dest.to_string(),
            chown: None,
            chmod: None,
            link: false,
            parents: false,
            parent_strip: Vec::new(),
            exclude: Vec::new(),
            checksum: None,
        }
    }

    fn dests(items: &[CopyItem]) -> Vec<&str> {
        items.iter().map(|i| i.dest.as_str()).collect()
    }

    #[test]
    fn docker_destination_rules() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("dir/sub")).unwrap();
        fs::write(r.join("dir/sub/f"), "f").unwrap();
        fs::write(r.join("a.txt"), "a").unwrap();
        std::os::unix::fs::symlink("a.txt", r.join("lnk")).unwrap();
        // A tar archive: 512-byte header with "ustar" at 257.
        let mut tar = vec![0u8; 1024];
        tar[257..262].copy_from_slice(b"ustar");
        fs::write(r.join("x.tar"), &tar).unwrap();
        let ctx = Context::scan(r).unwrap();

        let items = context_items(&spec(&ctx, &["dir"], "/app", false), &ctx, false).unwrap();
        assert_eq!(dests(&items), vec!["/app", "/app/sub", "/app/sub/f"]);
        let items = context_items(&spec(&ctx, &["a.txt"], "/b", false), &ctx, false).unwrap();
        assert_eq!(dests(&items), vec!["/b"]);
        let items = context_items(&spec(&ctx, &["a.txt"], "/b", false), &ctx, true).unwrap();
        assert_eq!(dests(&items), vec!["/b/a.txt"]);
        let items = context_items(&spec(&ctx, &["a.txt"], "/b/", false), &ctx, false).unwrap();
        assert_eq!(dests(&items), vec!["/b/a.txt"]);
        // A named symlink source copies the target's content under the link's name.
        let items = context_items(&spec(&ctx, &["lnk"], "/c/", false), &ctx, false).unwrap();
        assert!(matches!(items[0].kind, ItemKind::File { .. }));
        assert_eq!(items[0].dest, "/c/lnk");
        // Inside a copied directory symlinks stay symlinks.
        let items = context_items(&spec(&ctx, &["."], "/all/", false), &ctx, false).unwrap();
        let l = items.iter().find(|i| i.dest == "/all/lnk").unwrap();
        assert_eq!(
            l.kind,
            ItemKind::Symlink {
                target: "a.txt".into()
            }
        );
        // ADD extracts archives, COPY does not.
        let items = context_items(&spec(&ctx, &["x.tar"], "/opt/", true), &ctx, false).unwrap();
        assert!(matches!(
            items[0].kind,
            ItemKind::Archive {
                compression: Compression::None,
                ..
            }
        ));
        let items = context_items(&spec(&ctx, &["x.tar"], "/opt/", false), &ctx, false).unwrap();
        assert!(matches!(items[0].kind, ItemKind::File { .. }));
    }
}
