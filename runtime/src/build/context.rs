//! The build context: a sorted, symlink-safe listing of the context directory after
//! `.dockerignore`, content digests on demand, and COPY/ADD source selection.
//!
//! Symlinks are never followed while walking: they are listed (and later copied) as symlinks.
//! When a COPY source itself goes through a symlink, it is resolved inside the listing with the
//! context as root (`..` stops at the root, absolute targets start at the root), so a source can
//! never reach a file outside the context. The order is deterministic (pre-order, siblings sorted
//! by name), and a directory's subtree is a contiguous range, so selecting `COPY dir/` is a slice.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use globset::GlobBuilder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::ignore::{IgnoreError, IgnoreRules, ParentMatches, clean_path};

/// Reading the context or selecting sources failed.
#[derive(Debug, Error)]
pub enum ContextError {
    /// A directory or file of the context could not be read.
    #[error("reading the build context at {path}")]
    Io {
        /// The path on the host.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// `.dockerignore` is invalid.
    #[error(transparent)]
    Ignore(#[from] IgnoreError),
    /// A COPY/ADD source that is not in the context (or is excluded by `.dockerignore`).
    #[error("{path:?} not found in the build context (or excluded by .dockerignore)")]
    NotFound {
        /// The source as given, relative to the context.
        path: String,
    },
    /// A glob that matched nothing.
    #[error("no source files were specified: {pattern:?} matches nothing in the build context")]
    NoMatch {
        /// The glob.
        pattern: String,
    },
    /// A bad glob in a COPY source.
    #[error("invalid source pattern {pattern:?}")]
    BadGlob {
        /// The pattern.
        pattern: String,
        /// globset's reason.
        #[source]
        source: globset::Error,
    },
    /// A symlink loop or a chain too long to resolve.
    #[error("too many levels of symbolic links resolving {path:?} in the build context")]
    SymlinkLoop {
        /// The source path.
        path: String,
    },
}

/// What a context entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symlink, with its target as stored (never followed while walking).
    Symlink(String),
}

/// One file, directory or symlink of the context.
#[derive(Debug)]
pub struct Entry {
    /// Path relative to the context root, `/`-separated, no leading `/`.
    pub rel: String,
    /// The kind.
    pub kind: EntryKind,
    /// Permission bits (`0o7777`), part of the cache key.
    pub mode: u32,
    /// Size in bytes (files).
    pub size: u64,
    /// One past the last entry of this entry's subtree (itself + 1 for non-directories).
    pub subtree_end: usize,
    /// What identifies this version of the file for the digest cache (never for the key).
    stat: StatKey,
    /// Present only as the parent of a re-included path (`!` in `.dockerignore`); not copied
    /// by itself, but needed to hold what is inside.
    pub implied: bool,
    digest: OnceLock<[u8; 32]>,
}

/// The stat fields that change whenever a file's content may have changed. ctime cannot be
/// set by users, so a rewrite that restores mtime is still noticed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatKey {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
}

impl StatKey {
    fn of(m: &fs::Metadata) -> StatKey {
        StatKey {
            dev: m.dev(),
            ino: m.ino(),
            size: m.len(),
            mtime_ns: m
                .mtime()
                .saturating_mul(1_000_000_000)
                .saturating_add(m.mtime_nsec()),
            ctime_ns: m
                .ctime()
                .saturating_mul(1_000_000_000)
                .saturating_add(m.ctime_nsec()),
        }
    }
}

/// Content digests remembered between builds of the same context directory, so a cached
/// rebuild only stats files instead of reading them. It only saves work: a digest is reused
/// when the file's stat key (device, inode, size, mtime, ctime) is unchanged, and the cache key
/// itself is always made from content. Files changed within [`DigestCache::RACY_NS`] of the
/// scan are not remembered (a write in the same timestamp tick could go unnoticed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestCache {
    files: BTreeMap<String, (StatKey, String)>,
}

impl DigestCache {
    /// How recent a change must be for its digest not to be remembered (2 s).
    pub const RACY_NS: i64 = 2_000_000_000;

    /// Number of remembered digests.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    fn get(&self, rel: &str, stat: &StatKey) -> Option<[u8; 32]> {
        let (k, hexd) = self.files.get(rel)?;
        if k != stat {
            return None;
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(hexd, &mut out).ok()?;
        Some(out)
    }
}

/// The build context directory, listed once per build.
#[derive(Debug)]
pub struct Context {
    root: PathBuf,
    entries: Vec<Entry>,
    index: HashMap<String, usize>,
    cache: DigestCache,
    scanned_at_ns: i64,
    /// Paths skipped because they are not files, directories or symlinks (sockets, devices).
    pub skipped_special: Vec<String>,
}

/// A COPY/ADD source after globbing and symlink resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectedSource {
    /// The matched path as named (relative to the context): its base name is what lands in
    /// the destination for files.
    pub rel: String,
    /// The entry whose content is copied (the symlink's target when the named path is one);
    /// None for the context root itself (`COPY . /app`).
    pub entry: Option<usize>,
    /// True for a directory: its contents (not itself) are copied into the destination.
    pub is_dir: bool,
}

impl Context {
    /// List `root`, applying `root/.dockerignore` if present.
    pub fn scan(root: &Path) -> Result<Context, ContextError> {
        Context::scan_for(root, None)
    }

    /// List `root` for a build with this Dockerfile: `<dockerfile>.dockerignore` next to it
    /// wins over `root/.dockerignore` when it exists (BuildKit's per-Dockerfile ignore file).
    pub fn scan_for(root: &Path, dockerfile: Option<&Path>) -> Result<Context, ContextError> {
        let specific = dockerfile.map(|d| {
            let mut name = d.as_os_str().to_os_string();
            name.push(".dockerignore");
            PathBuf::from(name)
        });
        let ignore_path = match specific {
            Some(p) if p.is_file() => p,
            _ => root.join(".dockerignore"),
        };
        let rules = match fs::read_to_string(&ignore_path) {
            Ok(text) => IgnoreRules::parse(&text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => IgnoreRules::default(),
            Err(source) => {
                return Err(ContextError::Io {
                    path: ignore_path,
                    source,
                });
            }
        };
        Context::scan_with(root, &rules)
    }

    /// List `root` with the given rules.
    pub fn scan_with(root: &Path, rules: &IgnoreRules) -> Result<Context, ContextError> {
        let scanned_at_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let mut ctx = Context {
            root: root.to_path_buf(),
            entries: Vec::new(),
            index: HashMap::new(),
            cache: DigestCache::default(),
            scanned_at_ns,
            skipped_special: Vec::new(),
        };
        ctx.walk(root, "", rules, &rules.root())?;
        ctx.index = ctx
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.rel.clone(), i))
            .collect();
        tracing::debug!(root = %root.display(), entries = ctx.entries.len(), "build context listed");
        Ok(ctx)
    }

    fn walk(
        &mut self,
        dir: &Path,
        prefix: &str,
        rules: &IgnoreRules,
        parent: &ParentMatches,
    ) -> Result<(), ContextError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ContextError::Io { path, source }
        };
        let mut items: Vec<fs::DirEntry> = fs::read_dir(dir)
            .map_err(io(dir))?
            .collect::<Result<_, _>>()
            .map_err(io(dir))?;
        items.sort_by_key(|e| e.file_name());
        for item in items {
            let Some(name) = item.file_name().to_str().map(str::to_string) else {
                // Non-UTF-8 names cannot be written in a Dockerfile or .dockerignore; keep them
                // out rather than mangle them.
                tracing::warn!(dir = %dir.display(), "skipping a non-UTF-8 file name in the build context");
                continue;
            };
            let rel = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            let path = item.path();
            let (excluded, matches) = rules.check(&rel, parent);
            // The directory entry's type costs no system call; skip excluded files unstat'ed.
            let quick = item.file_type().map_err(io(&path))?;
            if excluded && !(quick.is_dir() && rules.has_exceptions()) {
                continue;
            }
            // Never follows a symlink (fstatat with AT_SYMLINK_NOFOLLOW on the open directory).
            let meta = item.metadata().map_err(io(&path))?;
            let ft = meta.file_type();
            if ft.is_dir() {
                let at = self.entries.len();
                self.entries.push(Entry {
                    rel: rel.clone(),
                    kind: EntryKind::Dir,
                    mode: meta.mode() & 0o7777,
                    size: 0,
                    stat: StatKey::default(),
                    subtree_end: 0,
                    implied: excluded,
                    digest: OnceLock::new(),
                });
                self.walk(&path, &rel, rules, &matches)?;
                let end = self.entries.len();
                if excluded && end == at + 1 {
                    // Excluded and nothing inside was re-included.
                    self.entries.pop();
                } else {
                    self.entries[at].subtree_end = end;
                }
                continue;
            }
            if excluded {
                continue;
            }
            let kind = if ft.is_symlink() {
                let target = fs::read_link(&path).map_err(io(&path))?;
                EntryKind::Symlink(target.to_string_lossy().into_owned())
            } else if ft.is_file() {
                EntryKind::File
            } else {
                self.skipped_special.push(rel);
                continue;
            };
            let end = self.entries.len() + 1;
            self.entries.push(Entry {
                rel,
                kind,
                mode: meta.mode() & 0o7777,
                size: meta.len(),
                stat: StatKey::of(&meta),
                subtree_end: end,
                implied: false,
                digest: OnceLock::new(),
            });
        }
        Ok(())
    }

    /// Reuse digests from an earlier build of this directory (see [`DigestCache`]).
    pub fn with_digest_cache(mut self, cache: DigestCache) -> Context {
        self.cache = cache;
        self
    }

    /// The digests known after planning, to keep for the next build of this directory.
    pub fn digest_cache(&self) -> DigestCache {
        let limit = self.scanned_at_ns.saturating_sub(DigestCache::RACY_NS);
        let files = self
            .entries
            .iter()
            .filter(|e| e.stat.mtime_ns < limit && e.stat.ctime_ns < limit)
            .filter_map(|e| Some((e.rel.clone(), (e.stat, hex::encode(e.digest.get()?)))))
            .collect();
        DigestCache { files }
    }

    /// Compute the digests of these entries on all CPUs (files only; known ones are skipped).
    pub fn prehash(&self, entries: impl Iterator<Item = usize>) -> Result<(), ContextError> {
        let todo: Vec<usize> = entries
            .filter(|i| {
                self.entries[*i].kind == EntryKind::File && self.entries[*i].digest.get().is_none()
            })
            .filter(|i| {
                let e = &self.entries[*i];
                match self.cache.get(&e.rel, &e.stat) {
                    Some(d) => {
                        let _ = e.digest.set(d);
                        false
                    }
                    None => true,
                }
            })
            .collect();
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(todo.len() / 16 + 1);
        if threads <= 1 {
            for i in todo {
                self.file_digest(i)?;
            }
            return Ok(());
        }
        let chunk = todo.len().div_ceil(threads);
        std::thread::scope(|s| {
            let handles: Vec<_> = todo
                .chunks(chunk)
                .map(|part| {
                    s.spawn(move || -> Result<(), ContextError> {
                        for &i in part {
                            self.file_digest(i)?;
                        }
                        Ok(())
                    })
                })
                .collect();
            for h in handles {
                match h.join() {
                    Ok(r) => r?,
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            Ok(())
        })
    }

    /// The context directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// All entries, in walk order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The host path of an entry (to open it when copying).
    pub fn host_path(&self, entry: usize) -> PathBuf {
        self.root.join(&self.entries[entry].rel)
    }

    /// The entry at a relative path, without following symlinks.
    pub fn lookup(&self, rel: &str) -> Option<usize> {
        self.index.get(rel).copied()
    }

    /// Opens a regular file of the context for reading, never through a symlink (one swapped
    /// in after the walk is refused), with the mapping of read errors that names its path.
    pub fn open_entry(
        &self,
        entry: usize,
    ) -> Result<(fs::File, impl Fn(std::io::Error) -> ContextError), ContextError> {
        let path = self.host_path(entry);
        let io = move |source| ContextError::Io {
            path: path.clone(),
            source,
        };
        let f = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(self.host_path(entry))
            .map_err(&io)?;
        Ok((f, io))
    }

    /// sha256 of a regular file's content, computed once (O_NOFOLLOW: a file swapped for a
    /// symlink after the walk is refused, not followed).
    pub fn file_digest(&self, entry: usize) -> Result<[u8; 32], ContextError> {
        let e = &self.entries[entry];
        if let Some(d) = e.digest.get() {
            return Ok(*d);
        }
        if let Some(d) = self.cache.get(&e.rel, &e.stat) {
            return Ok(*e.digest.get_or_init(|| d));
        }
        let (mut f, io) = self.open_entry(entry)?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = f.read(&mut buf).map_err(&io)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        let d: [u8; 32] = h.finalize().into();
        Ok(*e.digest.get_or_init(|| d))
    }

    /// Resolve a relative path inside the context, following symlinks scoped to the context
    /// root (`follow_last` also follows the final component).
    pub fn resolve(&self, rel: &str, follow_last: bool) -> Result<Option<usize>, ContextError> {
        let mut pending: Vec<String> = clean_path(rel)
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .rev()
            .map(str::to_string)
            .collect();
        let mut cur: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(comp) = pending.pop() {
            if comp == ".." {
                cur.pop();
                continue;
            }
            cur.push(comp);
            let Some(i) = self.lookup(&cur.join("/")) else {
                return Ok(None);
            };
            if let EntryKind::Symlink(target) = &self.entries[i].kind
                && (follow_last || !pending.is_empty())
            {
                hops += 1;
                if hops > 40 {
                    return Err(ContextError::SymlinkLoop {
                        path: rel.to_string(),
                    });
                }
                cur.pop();
                if target.starts_with('/') {
                    cur.clear();
                }
                for c in target.split('/').rev() {
                    if !c.is_empty() && c != "." {
                        pending.push(c.to_string());
                    }
                }
            }
        }
        if cur.is_empty() {
            return Ok(None);
        }
        Ok(self.lookup(&cur.join("/")))
    }

    /// Select the sources a COPY/ADD path (or glob) names. `.` is the whole context.
    pub fn select(&self, source: &str) -> Result<Vec<SelectedSource>, ContextError> {
        let cleaned = clean_path(source.trim_start_matches('/'));
        if cleaned == "." || cleaned.is_empty() {
            // The context root: every top-level entry, as the contents of a directory.
            return Ok(vec![SelectedSource {
                rel: ".".into(),
                entry: None,
                is_dir: true,
            }]);
        }
        if cleaned.starts_with("..") {
            return Err(ContextError::NotFound {
                path: source.to_string(),
            });
        }
        let is_glob = cleaned.contains(['*', '?', '[']);
        if !is_glob {
            let i = self
                .resolve(&cleaned, true)?
                .filter(|i| !self.entries[*i].implied || self.entries[*i].kind == EntryKind::Dir)
                .ok_or_else(|| ContextError::NotFound {
                    path: source.to_string(),
                })?;
            return Ok(vec![SelectedSource {
                rel: cleaned,
                entry: Some(i),
                is_dir: self.entries[i].kind == EntryKind::Dir,
            }]);
        }
        let m = GlobBuilder::new(&cleaned)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| ContextError::BadGlob {
                pattern: source.to_string(),
                source: e,
            })?
            .compile_matcher();
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.entries.len() {
            let e = &self.entries[i];
            if m.is_match(&e.rel) {
                let target = self.resolve(&e.rel, true)?.unwrap_or(i);
                out.push(SelectedSource {
                    rel: e.rel.clone(),
                    entry: Some(target),
                    is_dir: self.entries[target].kind == EntryKind::Dir,
                });
                i = e.subtree_end.max(i + 1);
            } else {
                i += 1;
            }
        }
        if out.is_empty() {
            return Err(ContextError::NoMatch {
                pattern: source.to_string(),
            });
        }
        Ok(out)
    }

    /// The entries copied for a selected source: a directory's subtree (without itself), the
    /// whole context for `.`, or the single entry.
    pub fn members(&self, s: &SelectedSource) -> std::ops::Range<usize> {
        let Some(i) = s.entry else {
            return 0..self.entries.len();
        };
        if s.is_dir {
            i + 1..self.entries[i].subtree_end
        } else {
            i..i + 1
        }
    }

    /// Feed a selected source into a cache-key hasher: for every member its path relative to
    /// the source, kind, mode and content digest or symlink target. Never mtime, atime, ctime,
    /// inode, owner: touching a file or checking it out again keeps the key.
    pub fn hash_source(&self, s: &SelectedSource, h: &mut Sha256) -> Result<(), ContextError> {
        let base = match s.entry {
            Some(i) if s.is_dir => format!("{}/", self.entries[i].rel),
            _ => String::new(),
        };
        self.prehash(self.members(s))?;
        field(h, s.rel.as_bytes());
        if let Some(i) = s.entry.filter(|_| s.is_dir) {
            field(h, format!("{:o}", self.entries[i].mode).as_bytes());
        }
        for i in self.members(s) {
            let e = &self.entries[i];
            let rel = e.rel.strip_prefix(&base).unwrap_or(&e.rel);
            field(h, rel.as_bytes());
            field(h, format!("{:o}", e.mode).as_bytes());
            match &e.kind {
                EntryKind::Dir => field(h, b"d"),
                EntryKind::Symlink(t) => {
                    field(h, b"l");
                    field(h, t.as_bytes());
                }
                EntryKind::File => {
                    field(h, b"f");
                    field(h, &self.file_digest(i)?);
                }
            }
        }
        Ok(())
    }
}

/// Length-prefixed field, so no two different inputs hash the same byte stream.
pub fn field(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("src/sub")).unwrap();
        fs::create_dir_all(r.join("node_modules/x")).unwrap();
        fs::write(r.join("src/a.rs"), "a").unwrap();
        fs::write(r.join("src/sub/b.rs"), "b").unwrap();
        fs::write(r.join("node_modules/x/i.js"), "i").unwrap();
        fs::write(r.join("node_modules/keep.txt"), "k").unwrap();
        fs::write(r.join("README"), "r").unwrap();
        symlink("/etc/passwd", r.join("abs")).unwrap();
        symlink("../../etc/passwd", r.join("rel")).unwrap();
        symlink("src", r.join("srclink")).unwrap();
        d
    }

    fn rels(c: &Context) -> Vec<&str> {
        c.entries().iter().map(|e| e.rel.as_str()).collect()
    }

    #[test]
    fn walk_is_sorted_and_ignores() {
        let d = tree();
        fs::write(
            d.path().join(".dockerignore"),
            "node_modules\n!node_modules/keep.txt\n",
        )
        .unwrap();
        let c = Context::scan(d.path()).unwrap();
        assert_eq!(
            rels(&c),
            vec![
                ".dockerignore",
                "README",
                "abs",
                "node_modules",
                "node_modules/keep.txt",
                "rel",
                "src",
                "src/a.rs",
                "src/sub",
                "src/sub/b.rs",
                "srclink"
            ]
        );
        assert!(c.entries()[3].implied);
        let src = c.lookup("src").unwrap();
        assert_eq!(c.entries()[src].subtree_end, src + 4);
    }

    #[test]
    fn symlinks_never_leave_the_context() {
        let d = tree();
        let c = Context::scan(d.path()).unwrap();
        // Kept as symlinks in the listing.
        let abs = c.lookup("abs").unwrap();
        assert_eq!(
            c.entries()[abs].kind,
            EntryKind::Symlink("/etc/passwd".into())
        );
        // Resolved with the context as root: /etc/passwd is <ctx>/etc/passwd, which is absent.
        assert!(matches!(
            c.select("abs"),
            Err(ContextError::NotFound { .. })
        ));
        assert!(matches!(
            c.select("rel"),
            Err(ContextError::NotFound { .. })
        ));
        // A symlink to a directory inside the context is followed.
        let s = c.select("srclink/sub/b.rs").unwrap();
        assert_eq!(c.entries()[s[0].entry.unwrap()].rel, "src/sub/b.rs");
    }

    #[test]
    fn select_globs_dirs_and_missing() {
        let d = tree();
        let c = Context::scan(d.path()).unwrap();
        let s = c.select("src/*.rs").unwrap();
        assert_eq!(s.len(), 1);
        let s = c.select("src").unwrap();
        assert!(s[0].is_dir);
        assert_eq!(c.members(&s[0]).len(), 3);
        assert!(
            matches!(c.select("nope/x"), Err(ContextError::NotFound { path }) if path == "nope/x")
        );
        assert!(matches!(
            c.select("*.none"),
            Err(ContextError::NoMatch { .. })
        ));
        assert!(matches!(
            c.select("../x"),
            Err(ContextError::NotFound { .. })
        ));
    }

    #[test]
    fn digest_cache_reuses_only_unchanged_files() {
        let d = tree();
        let key = |cache: DigestCache| {
            let c = Context::scan(d.path()).unwrap().with_digest_cache(cache);
            let mut h = Sha256::new();
            let s = c.select("src").unwrap();
            c.hash_source(&s[0], &mut h).unwrap();
            (hex::encode(h.finalize()), c)
        };
        let (k0, c) = key(DigestCache::default());
        // Files written just now are too recent to be remembered.
        assert!(c.digest_cache().is_empty());
        // An entry whose stat key matches is trusted (a forged digest shows it is used)...
        let a = c.lookup("src/a.rs").unwrap();
        let mut forged = DigestCache::default();
        forged.files.insert(
            "src/a.rs".into(),
            (c.entries()[a].stat, hex::encode([0u8; 32])),
        );
        let (k1, _) = key(forged.clone());
        assert_ne!(k0, k1);
        // ...and ignored once the file changed.
        fs::write(d.path().join("src/a.rs"), "changed").unwrap();
        let (fresh, _) = key(DigestCache::default());
        let (k2, _) = key(forged);
        assert_eq!(fresh, k2);
        assert_ne!(k0, k2);
    }

    #[test]
    fn hash_ignores_mtime_but_not_mode() {
        let d = tree();
        let digest = |c: &Context| {
            let mut h = Sha256::new();
            let s = c.select("src").unwrap();
            c.hash_source(&s[0], &mut h).unwrap();
            hex::encode(h.finalize())
        };
        let k1 = digest(&Context::scan(d.path()).unwrap());
        let f = d.path().join("src/a.rs");
        let t = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
        fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(t)
            .unwrap();
        assert_eq!(k1, digest(&Context::scan(d.path()).unwrap()));
        fs::set_permissions(&f, fs::Permissions::from_mode(0o755)).unwrap();
        assert_ne!(k1, digest(&Context::scan(d.path()).unwrap()));
    }
}
