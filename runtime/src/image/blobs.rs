//! Content-addressed blob files: written to a temp file, checked against their digest, then
//! renamed into place, so a reader never sees a partial or wrong blob under a digest's name.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::digest::{Digest, HashingWriter};
use super::lock::FileLock;

/// Failures of the blob area, with the digest and path at fault.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The content did not hash to the digest it was announced with; nothing was stored.
    #[error(
        "digest mismatch: expected {expected}, content hashes to {actual} ({size} bytes); not stored"
    )]
    Mismatch {
        /// The digest the source announced.
        expected: Digest,
        /// What the bytes hash to.
        actual: Digest,
        /// How many bytes were read.
        size: u64,
    },
    /// The blob is not in the store.
    #[error("blob {digest} is not in the store")]
    Missing {
        /// The digest looked up.
        digest: Digest,
    },
    /// A file operation failed.
    #[error("cannot {op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file at fault.
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> BlobError + use<> {
    let path = path.to_owned();
    move |source| BlobError::Io { op, path, source }
}

/// The blob area of a store: `<images>/blobs/sha256/<hex>`, temp files in `<images>/tmp`.
#[derive(Debug, Clone)]
pub struct Blobs {
    dir: PathBuf,
    tmp: PathBuf,
    locks: PathBuf,
}

impl Blobs {
    /// Opens (and creates, private to root) the blob area under `images`.
    pub fn open(images: &Path) -> Result<Blobs, BlobError> {
        let b = Blobs {
            dir: images.join("blobs/sha256"),
            tmp: images.join("tmp"),
            locks: images.join("locks"),
        };
        for d in [&b.dir, &b.tmp, &b.locks] {
            crate::modes::private_dir(images, d).map_err(io_err("create", d))?;
        }
        Ok(b)
    }

    /// Where the blob with this digest lives (whether or not it is there).
    pub fn path(&self, d: &Digest) -> PathBuf {
        self.dir.join(d.hex())
    }

    /// Whether the blob is stored.
    pub fn has(&self, d: &Digest) -> bool {
        self.path(d).is_file()
    }

    /// The temp directory on the same filesystem as the blobs (for atomic renames elsewhere).
    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    /// Holds an exclusive lock named after `d` so that concurrent writers of the same blob
    /// (two pulls of one layer) do the work once: the second finds the blob present.
    pub fn lock(&self, d: &Digest) -> Result<FileLock, BlobError> {
        let p = self.locks.join(d.hex());
        FileLock::exclusive(&p).map_err(io_err("lock", &p))
    }

    /// Stores a stream whose digest is known in advance; the stream is hashed as it is written
    /// and a mismatch discards it. Returns the size.
    pub fn put_verified<R: Read>(&self, r: R, expected: &Digest) -> Result<u64, BlobError> {
        if let Ok(m) = fs::metadata(self.path(expected)) {
            return Ok(m.len());
        }
        let (tmp, actual, size) = self.write_temp(r)?;
        if &actual != expected {
            let _ = fs::remove_file(&tmp);
            return Err(BlobError::Mismatch {
                expected: expected.clone(),
                actual,
                size,
            });
        }
        self.commit(&tmp, expected)?;
        Ok(size)
    }

    /// Stores a stream whose digest is computed while writing (import, commit, load).
    pub fn put<R: Read>(&self, r: R) -> Result<(Digest, u64), BlobError> {
        let (tmp, d, size) = self.write_temp(r)?;
        if self.has(&d) {
            let _ = fs::remove_file(&tmp);
        } else {
            self.commit(&tmp, &d)?;
        }
        Ok((d, size))
    }

    /// Stores bytes held in memory (manifests, configs).
    pub fn put_bytes(&self, b: &[u8]) -> Result<Digest, BlobError> {
        Ok(self.put(b)?.0)
    }

    /// Reads a whole blob (manifests and configs: small).
    pub fn read(&self, d: &Digest) -> Result<Vec<u8>, BlobError> {
        let p = self.path(d);
        fs::read(&p).map_err(|e| self.missing_or(d, &p, e))
    }

    /// Opens a blob for streaming (layers).
    pub fn open_blob(&self, d: &Digest) -> Result<File, BlobError> {
        let p = self.path(d);
        File::open(&p).map_err(|e| self.missing_or(d, &p, e))
    }

    /// Removes a blob (garbage collection).
    pub fn remove(&self, d: &Digest) -> Result<(), BlobError> {
        let p = self.path(d);
        match fs::remove_file(&p) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", &p)(e)),
            _ => Ok(()),
        }
    }

    /// Every stored blob digest.
    pub fn list(&self) -> Result<Vec<Digest>, BlobError> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.dir).map_err(io_err("list", &self.dir))? {
            let e = e.map_err(io_err("list", &self.dir))?;
            if let Some(d) = e
                .file_name()
                .to_str()
                .and_then(|n| Digest::from_hex(n).ok())
            {
                out.push(d);
            }
        }
        Ok(out)
    }

    fn missing_or(&self, d: &Digest, p: &Path, e: io::Error) -> BlobError {
        if e.kind() == io::ErrorKind::NotFound {
            BlobError::Missing { digest: d.clone() }
        } else {
            io_err("read", p)(e)
        }
    }

    fn write_temp<R: Read>(&self, mut r: R) -> Result<(PathBuf, Digest, u64), BlobError> {
        let (file, tmp) = temp_file(&self.tmp).map_err(io_err("create temp file in", &self.tmp))?;
        let res = (|| {
            let mut w = HashingWriter::new(io::BufWriter::with_capacity(256 * 1024, file));
            io::copy(&mut r, &mut w)?;
            let (d, n, buf) = w.finish();
            let file = buf.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            Ok((d, n))
        })();
        match res {
            Ok((d, n)) => Ok((tmp, d, n)),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(io_err("write", &tmp)(e))
            }
        }
    }

    fn commit(&self, tmp: &Path, d: &Digest) -> Result<(), BlobError> {
        let dst = self.path(d);
        fs::rename(tmp, &dst).map_err(io_err("rename into", &dst))
    }
}

/// Creates a uniquely named file in `dir` (for atomic writes: write, sync, rename).
pub fn temp_file(dir: &Path) -> io::Result<(File, PathBuf)> {
    for _ in 0..16 {
        let p = dir.join(format!(".tmp-{}", unique_suffix()));
        match fs::OpenOptions::new().write(true).create_new(true).open(&p) {
            Ok(f) => return Ok((f, p)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free temp name",
    ))
}

/// A name suffix unique across processes and threads (pid, time, counter).
pub fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}-{}-{}",
        std::process::id(),
        t,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Writes `bytes` to `path` atomically (temp file in `tmp`, fsync, rename).
pub fn write_atomic(tmp: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let (mut f, t) = temp_file(tmp)?;
    let res = f
        .write_all(bytes)
        .and_then(|_| f.sync_all())
        .and_then(|_| fs::rename(&t, path));
    if res.is_err() {
        let _ = fs::remove_file(&t);
    }
    res
}
