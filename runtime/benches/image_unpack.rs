//! Unpack throughput of a multi-layer image: berth's safe unpack vs GNU `tar -x` of the same
//! layers, and vs `umoci unpack` of the same image; then pull of that image from a local
//! registry (Debian's docker-registry on a loopback port) vs `skopeo copy` to an OCI dir, and a
//! re-pull. Prints figures; asserts nothing.
//!
//! Run as root: `cargo bench -p berth-runtime --bench image_unpack` (or `bench/image-unpack.sh`).
//! BERTH_BENCH_MB sets the total uncompressed size (default 200).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use berth_runtime::image::ImageStore;
use berth_runtime::image::store::NewImage;
use berth_runtime::image::unpack::{Whiteouts, unpack_layer};

/// Deterministic pseudo-random bytes, half compressible (like real binaries and text).
struct Gen(u64);
impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for (i, chunk) in buf.chunks_mut(8).enumerate() {
            let v = if i % 2 == 0 {
                self.next()
            } else {
                0x2020_2020_6574_6164
            };
            for (j, b) in chunk.iter_mut().enumerate() {
                *b = (v >> (j * 8)) as u8;
            }
        }
    }
}

/// One layer of about `bytes`: many small files in nested dirs, a few large ones, symlinks.
fn make_layer(g: &mut Gen, idx: usize, bytes: usize) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::with_capacity(bytes + bytes / 8));
    let mut written = 0;
    let mut n = 0;
    let mut buf = vec![0u8; 4 << 20];
    let dir_header = |path: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_size(0);
        let _ = path;
        h
    };
    let mut last_dir = String::new();
    while written < bytes {
        let dir = format!("l{idx}/usr/share/d{}/s{}", n / 200, (n / 20) % 10);
        if dir != last_dir {
            let mut acc = String::new();
            for c in dir.split('/') {
                if !acc.is_empty() {
                    acc.push('/');
                }
                acc.push_str(c);
                if !last_dir.starts_with(&acc) {
                    b.append_data(&mut dir_header(&acc), &acc, std::io::empty())
                        .unwrap();
                }
            }
            last_dir = dir.clone();
        }
        let size = if n % 97 == 0 {
            2 << 20
        } else {
            1024 + (g.next() % 24_000) as usize
        };
        g.fill(&mut buf[..size]);
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_size(size as u64);
        b.append_data(&mut h, format!("{dir}/f{n}"), &buf[..size])
            .unwrap();
        if n % 50 == 0 {
            let mut s = tar::Header::new_gnu();
            s.set_entry_type(tar::EntryType::Symlink);
            s.set_mode(0o777);
            s.set_uid(0);
            s.set_gid(0);
            s.set_mtime(1_700_000_000);
            s.set_size(0);
            b.append_link(&mut s, format!("{dir}/ln{n}"), format!("f{n}"))
                .unwrap();
        }
        written += size;
        n += 1;
    }
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn best<F: FnMut() -> Duration>(runs: usize, mut f: F) -> Duration {
    (0..runs).map(|_| f()).min().unwrap_or_default()
}

fn fresh(dir: &Path) {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).unwrap();
}

fn sync() {
    // Count writeback in every method alike.
    let _ = Command::new("sync").status();
}

fn main() {
    let total_mb: usize = std::env::var("BERTH_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let layers = 4;
    let work = tempfile::Builder::new()
        .prefix("berth-bench-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let w = work.path();
    println!("generating {layers} layers, {total_mb} MB uncompressed in total …");
    let mut g = Gen(0x9e37_79b9_7f4a_7c15);
    let plain: Vec<Vec<u8>> = (0..layers)
        .map(|i| make_layer(&mut g, i, total_mb * 1_000_000 / layers))
        .collect();
    let gz: Vec<Vec<u8>> = plain.iter().map(|p| gzip(p)).collect();
    let tar_bytes: usize = plain.iter().map(Vec::len).sum();
    let gz_bytes: usize = gz.iter().map(Vec::len).sum();
    let mut files = Vec::new();
    for (i, (p, z)) in plain.iter().zip(&gz).enumerate() {
        let pf = w.join(format!("layer{i}.tar"));
        let zf = w.join(format!("layer{i}.tar.gz"));
        fs::write(&pf, p).unwrap();
        fs::write(&zf, z).unwrap();
        files.push((pf, zf));
    }
    println!(
        "tar stream {:.1} MB, gzip {:.1} MB",
        tar_bytes as f64 / 1e6,
        gz_bytes as f64 / 1e6
    );
    let out = w.join("out");
    let runs = 2;

    let mut results: Vec<(String, Duration)> = Vec::new();
    for (label, gzipped) in [("plain", false), ("gzip", true)] {
        let t_berth = best(runs, || {
            fresh(&out);
            let t = Instant::now();
            for (i, (pf, zf)) in files.iter().enumerate() {
                let d = out.join(format!("{i}"));
                fs::create_dir(&d).unwrap();
                let f = fs::File::open(if gzipped { zf } else { pf }).unwrap();
                unpack_layer(f, &d, Whiteouts::Overlay).unwrap();
            }
            sync();
            t.elapsed()
        });
        let t_tar = best(runs, || {
            fresh(&out);
            let t = Instant::now();
            for (i, (pf, zf)) in files.iter().enumerate() {
                let d = out.join(format!("{i}"));
                fs::create_dir(&d).unwrap();
                let st = Command::new("tar")
                    .arg(if gzipped { "-xzf" } else { "-xf" })
                    .arg(if gzipped { zf } else { pf })
                    .arg("--numeric-owner")
                    .arg("-C")
                    .arg(&d)
                    .status()
                    .unwrap();
                assert!(st.success());
            }
            sync();
            t.elapsed()
        });
        results.push((format!("berth unpack ({label})"), t_berth));
        results.push((format!("tar -x ({label})"), t_tar));
    }

    // umoci on the same image (gzip layers), from an OCI layout the store writes.
    let umoci = Command::new("sh")
        .args(["-c", "command -v umoci"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if umoci {
        let store = ImageStore::open(&w.join("store")).unwrap();
        let mut parent = None;
        for (_, zf) in &files {
            let new = NewImage {
                created_by: "bench".into(),
                ..Default::default()
            };
            let img = store
                .commit(Some(&mut fs::File::open(zf).unwrap()), parent.as_ref(), new)
                .unwrap();
            parent = Some(img.id);
        }
        let Some(id) = parent else { return };
        store.tag(&id, "bench:t").unwrap();
        let archive = w.join("img.tar");
        berth_runtime::image::archive::save(
            &store,
            &["bench:t".into()],
            fs::File::create(&archive).unwrap(),
        )
        .unwrap();
        let layout = w.join("layout");
        fs::create_dir(&layout).unwrap();
        assert!(
            Command::new("tar")
                .arg("-xf")
                .arg(&archive)
                .arg("-C")
                .arg(&layout)
                .status()
                .unwrap()
                .success()
        );
        let t_umoci = best(runs, || {
            let bundle = w.join("bundle");
            let _ = fs::remove_dir_all(&bundle);
            let t = Instant::now();
            let st = Command::new("umoci")
                .args(["unpack", "--image"])
                .arg(format!("{}:t", layout.display()))
                .arg(&bundle)
                .output()
                .unwrap();
            assert!(
                st.status.success(),
                "{}",
                String::from_utf8_lossy(&st.stderr)
            );
            sync();
            t.elapsed()
        });
        results.push(("umoci unpack (gzip)".into(), t_umoci));
        pull_bench(w, &layout, tar_bytes);
    }

    println!("\n{:<24} {:>9} {:>12}", "method", "seconds", "MB/s (tar)");
    for (label, d) in &results {
        println!(
            "{label:<24} {:>9.3} {:>12.1}",
            d.as_secs_f64(),
            tar_bytes as f64 / 1e6 / d.as_secs_f64()
        );
    }
    let get = |k: &str| {
        results
            .iter()
            .find(|(l, _)| l == k)
            .map(|(_, d)| d.as_secs_f64())
    };
    for label in ["plain", "gzip"] {
        if let (Some(b), Some(t)) = (
            get(&format!("berth unpack ({label})")),
            get(&format!("tar -x ({label})")),
        ) {
            println!(
                "berth / tar throughput ({label}): {:.2}x (goal >= 0.8x)",
                t / b
            );
        }
    }
    if let (Some(b), Some(u)) = (get("berth unpack (gzip)"), get("umoci unpack (gzip)")) {
        println!("berth vs umoci (gzip): {:.2}x faster (goal > 1x)", u / b);
    }
    let _: PathBuf = out;
}

/// Pushes the image to a local registry, then times berth's pull (download, verify, unpack)
/// against `skopeo copy` (download, verify, no unpack), and a re-pull.
fn pull_bench(w: &Path, layout: &Path, tar_bytes: usize) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = w.join("registry.yml");
    fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            w.join("registry").display()
        ),
    )
    .unwrap();
    let Ok(mut child) = Command::new("docker-registry")
        .arg("serve")
        .arg(&cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    else {
        println!("docker-registry missing: pull figures skipped");
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let reference = format!("127.0.0.1:{port}/bench/img:t");
    let pushed = Command::new("skopeo")
        .args(["copy", "-q", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:t", layout.display()))
        .arg(format!("docker://{reference}"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if pushed {
        let opts = berth_runtime::image::registry::PullOptions::default();
        let t_pull = best(2, || {
            let root = w.join("pull-store");
            let _ = fs::remove_dir_all(&root);
            let store = ImageStore::open(&root).unwrap();
            let t = Instant::now();
            berth_runtime::image::registry::pull(&store, &reference, &opts, &|_| {}).unwrap();
            sync();
            t.elapsed()
        });
        let store = ImageStore::open(&w.join("pull-store")).unwrap();
        let t = Instant::now();
        berth_runtime::image::registry::pull(&store, &reference, &opts, &|_| {}).unwrap();
        let t_repull = t.elapsed();
        let t_skopeo = best(2, || {
            let dir = w.join("skopeo-oci");
            let _ = fs::remove_dir_all(&dir);
            let t = Instant::now();
            let st = Command::new("skopeo")
                .args(["copy", "-q", "--src-tls-verify=false"])
                .arg(format!("docker://{reference}"))
                .arg(format!("oci:{}:t", dir.display()))
                .status()
                .unwrap();
            assert!(st.success());
            sync();
            t.elapsed()
        });
        println!("\n{:<40} {:>9}", "pull from a loopback registry", "seconds");
        println!(
            "{:<40} {:>9.3}",
            "berth pull (download+verify+unpack)",
            t_pull.as_secs_f64()
        );
        println!(
            "{:<40} {:>9.3}",
            "skopeo copy to oci: (download+verify)",
            t_skopeo.as_secs_f64()
        );
        println!(
            "{:<40} {:>9.3}",
            "berth re-pull (layers present)",
            t_repull.as_secs_f64()
        );
        println!(
            "berth pull vs skopeo copy: {:.2}x ({:.0} MB of layers)",
            t_skopeo.as_secs_f64() / t_pull.as_secs_f64(),
            tar_bytes as f64 / 1e6
        );
    } else {
        println!("skopeo push to the local registry failed: pull figures skipped");
    }
    let _ = child.kill();
    let _ = child.wait();
}
