//! Layer extraction on untrusted archives (plain, gzip or zstd tar), in both whiteout modes,
//! each into a fresh temp layer directory. Besides panics, a finding is any change outside the
//! layer directory: the layer sits three levels below a temp root holding sentinel files, and
//! (in `Apply` mode, where earlier layers' content is already there) the layer starts with
//! symlinks that point out of it, relative and absolute, for entries to try to go through.
//! After each unpack everything under the temp root but the layer must be exactly as before
//! (type, mode, owner, size, mtime, content, link target, xattrs), and no file in the layer may
//! be a hardlink to a file outside it.
#![no_main]

use std::collections::{BTreeMap, HashSet};
use std::ffi::CString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};

use berth_runtime::image::unpack::{Compression, Whiteouts, decompress, unpack_layer};
use libfuzzer_sys::fuzz_target;

/// Decompressed size above which an input is skipped: a compression bomb is not a parser bug,
/// and the fuzzer must not fill the disk.
const MAX_PLAIN: u64 = 16 << 20;

/// What is compared, per path, before and after.
#[derive(Debug, PartialEq, Eq)]
struct Node {
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: (i64, i64),
    content: Option<Vec<u8>>,
    target: Option<PathBuf>,
    xattrs: Vec<u8>,
}

fn xattr_names(path: &Path) -> Vec<u8> {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return Vec::new();
    };
    let mut buf = vec![0u8; 4096];
    // SAFETY: the buffer is valid for its length; llistxattr does not follow symlinks.
    let n = unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    buf.truncate(usize::try_from(n).unwrap_or(0));
    buf
}

/// Everything under `root` except `skip` (the layer), without following symlinks.
fn snapshot(root: &Path, skip: &Path, out: &mut BTreeMap<PathBuf, Node>) {
    let Ok(rd) = std::fs::read_dir(root) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p == skip {
            continue;
        }
        let Ok(md) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        let ft = md.file_type();
        out.insert(
            p.clone(),
            Node {
                mode: md.mode(),
                uid: md.uid(),
                gid: md.gid(),
                size: if ft.is_dir() { 0 } else { md.size() },
                mtime: (md.mtime(), md.mtime_nsec()),
                content: ft.is_file().then(|| std::fs::read(&p).unwrap_or_default()),
                target: ft
                    .is_symlink()
                    .then(|| std::fs::read_link(&p).unwrap_or_default()),
                xattrs: xattr_names(&p),
            },
        );
        if ft.is_dir() {
            snapshot(&p, skip, out);
        }
    }
}

/// (dev, ino) of every regular file under `dir`, without following symlinks.
fn inodes(dir: &Path, out: &mut Vec<(u64, u64, PathBuf)>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(md) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if md.is_dir() {
            inodes(&p, out);
        } else if md.is_file() {
            out.push((md.dev(), md.ino(), p));
        }
    }
}

fn setup(mode: Whiteouts) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::Builder::new()
        .prefix("berth-fuzz-unpack")
        .tempdir()
        .expect("a temp root");
    let root = tmp.path();
    let outside = root.join("outside");
    std::fs::create_dir_all(outside.join("dir")).expect("outside dir");
    std::fs::write(outside.join("sentinel"), b"keep me\n").expect("sentinel");
    std::fs::write(outside.join("dir/inner"), b"inner\n").expect("sentinel");
    symlink("sentinel", outside.join("sentinel-link")).expect("outside link");
    let layer = root.join("a/b/layer");
    std::fs::create_dir_all(&layer).expect("layer dir");
    if mode == Whiteouts::Apply {
        // What an earlier layer could have left: links out of the layer.
        std::fs::create_dir_all(layer.join("etc")).expect("layer etc");
        std::fs::write(layer.join("etc/passwd"), b"root:x:0:0::/root:/bin/sh\n").expect("passwd");
        symlink("../../../outside", layer.join("up")).expect("relative link");
        symlink(&outside, layer.join("abs")).expect("absolute link");
        symlink("../../../../outside/dir", layer.join("etc/deep")).expect("deep link");
    }
    (tmp, layer)
}

fn plain_size(data: &[u8]) -> Option<u64> {
    let mut r = decompress(data).ok()?.take(MAX_PLAIN + 1);
    let n = std::io::copy(&mut r, &mut std::io::sink()).unwrap_or(0);
    (n <= MAX_PLAIN).then_some(n)
}

fuzz_target!(|data: &[u8]| {
    if Compression::detect(data) != Compression::None && plain_size(data).is_none() {
        return;
    }
    for mode in [Whiteouts::Overlay, Whiteouts::Apply] {
        let (tmp, layer) = setup(mode);
        let mut before = BTreeMap::new();
        snapshot(tmp.path(), &layer, &mut before);
        let mut outside_files = Vec::new();
        inodes(tmp.path(), &mut outside_files);
        outside_files.retain(|(_, _, p)| !p.starts_with(&layer));

        let _ = unpack_layer(data, &layer, mode);

        let mut after = BTreeMap::new();
        snapshot(tmp.path(), &layer, &mut after);
        if before != after {
            for (p, n) in &after {
                match before.get(p) {
                    None => eprintln!("created outside the layer: {}", p.display()),
                    Some(b) if b != n => eprintln!("changed outside the layer: {}", p.display()),
                    _ => {}
                }
            }
            for p in before.keys().filter(|p| !after.contains_key(*p)) {
                eprintln!("removed outside the layer: {}", p.display());
            }
            panic!("unpack ({mode:?}) changed something outside its layer directory");
        }
        let outside: HashSet<(u64, u64)> = outside_files.iter().map(|(d, i, _)| (*d, *i)).collect();
        let mut inside = Vec::new();
        inodes(&layer, &mut inside);
        for (d, i, p) in inside {
            assert!(
                !outside.contains(&(d, i)),
                "unpack ({mode:?}) made {} a hardlink to a file outside the layer",
                p.display()
            );
        }
    }
});
