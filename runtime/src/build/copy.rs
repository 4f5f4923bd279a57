//! Where each selected context file lands in the image: Docker's COPY/ADD destination rules as
//! a pure function, so the executor only creates what this list says.
//!
//! The rules: a directory source copies its *contents* into the destination; a file source
//! lands at `dest/<name>` when the destination is a directory (ends with `/`, several sources,
//! or already a directory in the parent rootfs) and at `dest` itself otherwise; a heredoc is a
//! file named after its delimiter. ADD extracts a local tar archive (plain, gzip, bzip2, xz)
//! into the destination directory instead of copying it.

use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;

use super::context::{Context, ContextError, EntryKind};
use super::ignore::clean_path;
use super::plan::{CopySource, CopySpec};

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
    let path = ctx.host_path(entry);
    let io = |source| ContextError::Io {
        path: path.clone(),
        source,
    };
    let mut f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(io)?;
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
    let into_dir = spec.dest_is_dir || dest_exists_as_dir;
    let dest = spec.dest.as_str();
    let mode_of = |m: u32| spec.chmod.unwrap_or(m);
    let mut out = Vec::new();
    for src in &spec.sources {
        match src {
            CopySource::Path(_) => {
                // Paths of another stage or image are resolved by the executor in that rootfs.
                continue;
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
                        out.push(item(ctx, join(dest, rel), i, &mode_of));
                    }
                    continue;
                }
                let Some(i) = sel.entry else { continue };
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
