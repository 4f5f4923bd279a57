//! Registry pull against a real registry: Debian's `docker-registry` (the CNCF distribution
//! registry) started on a free 127.0.0.1 port with a temp storage dir; images pushed with
//! `skopeo copy` from archives the test builds.

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use berth_runtime::image::registry::{self, Progress, PullOptions};
use berth_runtime::image::store::NewImage;
use berth_runtime::image::{Digest, ImageStore};

/// A registry process on a free loopback port; killed on drop.
struct Registry {
    child: Child,
    port: u16,
    storage: PathBuf,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("storage");
        fs::create_dir(&storage).unwrap();
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let cfg = dir.path().join("config.yml");
            fs::write(
                &cfg,
                format!(
                    "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                    storage.display()
                ),
            )
            .unwrap();
            let child = Command::new("docker-registry")
                .arg("serve")
                .arg(&cfg)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("docker-registry is missing: run scripts/deps.sh");
            let mut reg = Registry {
                child,
                port,
                storage: storage.clone(),
                _dir: tempfile::tempdir().unwrap(),
            };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    reg._dir = dir;
                    return reg;
                }
                if let Ok(Some(_)) = reg.child.try_wait() {
                    break; // port taken meanwhile: try another
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("docker-registry did not start");
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sh(cmd: &str) -> String {
    let o = Command::new("sh").args(["-c", cmd]).output().unwrap();
    assert!(
        o.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn layer(entries: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (p, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        if let Some(dir) = p.strip_suffix('/') {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            b.append_data(&mut h, dir, std::io::empty()).unwrap();
        } else {
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            b.append_data(&mut h, p, data.as_bytes()).unwrap();
        }
    }
    b.into_inner().unwrap()
}

fn busybox_layer(dir: &Path) -> Vec<u8> {
    let r = dir.join("bbroot");
    fs::create_dir_all(r.join("bin")).unwrap();
    fs::copy("/bin/busybox", r.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", r.join("bin/sh")).unwrap();
    fs::create_dir_all(r.join("etc/conf.d")).unwrap();
    fs::write(r.join("etc/hostname"), "bb\n").unwrap();
    fs::write(r.join("etc/conf.d/old"), "old\n").unwrap();
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.append_dir_all(".", &r).unwrap();
    b.into_inner().unwrap()
}

fn new_image(cmd: &str) -> NewImage {
    NewImage {
        config: oci_spec::image::ConfigBuilder::default()
            .cmd(vec![cmd.to_owned()])
            .build()
            .unwrap(),
        healthcheck: None,
        created_by: cmd.into(),
        comment: None,
    }
}

/// Builds a two-layer image (the upper deletes a file and makes a dir opaque) in a source
/// store and pushes it as `repo:t`. Returns the source image id.
fn push_two_layer(reg: &Registry, work: &Path, repo: &str, marker: &str) -> Digest {
    let src = ImageStore::open(&work.join(format!("src-{marker}"))).unwrap();
    let base = src
        .import(
            &mut &busybox_layer(&work.join(marker))[..],
            "bb",
            Default::default(),
        )
        .unwrap();
    let upper = layer(&[
        ("etc/.wh.hostname", ""),
        ("etc/conf.d/", ""),
        ("etc/conf.d/.wh..wh..opq", ""),
        ("etc/conf.d/new", marker),
    ]);
    let img = src
        .commit(Some(&mut &upper[..]), Some(&base.id), new_image("/bin/sh"))
        .unwrap();
    src.tag(&img.id, "x:t").unwrap();
    let archive = work.join(format!("{marker}.tar"));
    berth_runtime::image::archive::save(
        &src,
        &["x:t".to_owned()],
        fs::File::create(&archive).unwrap(),
    )
    .unwrap();
    sh(&format!(
        "skopeo copy -q --dest-tls-verify=false oci-archive:{}:t docker://{}/{repo}:t",
        archive.display(),
        reg.host()
    ));
    img.id
}

struct Mount(PathBuf);
impl Drop for Mount {
    fn drop(&mut self) {
        let c = std::ffi::CString::new(self.0.as_os_str().as_encoded_bytes()).unwrap();
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

fn opts() -> PullOptions {
    PullOptions {
        attempts: 2,
        backoff: Duration::from_millis(50),
        ..Default::default()
    }
}

#[test_with::root()]
#[test]
fn pull_by_tag_and_digest_with_whiteouts_and_no_redownload() {
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let src_id = push_two_layer(&reg, work.path(), "test/bb", "one");

    let store = ImageStore::open(&work.path().join("dst")).unwrap();
    let events = Mutex::new(Vec::new());
    let progress = |p: Progress| events.lock().unwrap().push(p);
    let reference = format!("{}/test/bb:t", reg.host());
    let img = registry::pull(&store, &reference, &opts(), &progress).unwrap();
    assert_eq!(img.id, src_id, "same config, same image id");
    assert_eq!(store.resolve(&reference).unwrap().id, img.id);
    assert_eq!(img.layer_dirs().len(), 2);
    let downloads = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, Progress::Done(_)))
        .count();
    assert_eq!(downloads, 2);

    // The merged view honours the upper layer's whiteout and opaque dir.
    let mnt = work.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let lower: Vec<String> = img
        .layer_dirs()
        .iter()
        .rev()
        .map(|d| d.display().to_string())
        .collect();
    sh(&format!(
        "mount -t overlay overlay -o ro,lowerdir={} {}",
        lower.join(":"),
        mnt.display()
    ));
    let _m = Mount(mnt.clone());
    assert!(mnt.join("bin/busybox").is_file());
    assert!(!mnt.join("etc/hostname").exists());
    assert!(!mnt.join("etc/conf.d/old").exists());
    assert_eq!(
        fs::read_to_string(mnt.join("etc/conf.d/new")).unwrap(),
        "one"
    );
    assert!(
        fs::symlink_metadata(img.layer_dirs()[1].join("etc/hostname"))
            .unwrap()
            .file_type()
            .is_char_device()
    );

    // Re-pull: nothing downloaded again.
    events.lock().unwrap().clear();
    registry::pull(&store, &reference, &opts(), &progress).unwrap();
    let ev = events.lock().unwrap();
    assert!(
        ev.iter().all(|e| matches!(e, Progress::Present(_))),
        "{ev:?}"
    );
    drop(ev);

    // By digest, into another store.
    let other = ImageStore::open(&work.path().join("dst2")).unwrap();
    let by_digest = format!("{}/test/bb@{}", reg.host(), img.manifest_digest);
    let d = registry::pull(&other, &by_digest, &opts(), &|_| {}).unwrap();
    assert_eq!(d.id, img.id);
    assert_eq!(other.resolve(&by_digest).unwrap().id, img.id);
    assert!(
        other.list().unwrap().iter().all(|r| r.tag == "<none>"),
        "a digest pull adds no tag"
    );
}

#[test_with::root()]
#[test]
fn errors_name_what_happened_and_store_nothing() {
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&work.path().join("dst")).unwrap();

    let e = registry::pull(
        &store,
        &format!("{}/test/nope:t", reg.host()),
        &opts(),
        &|_| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("not found"), "{e}");

    // A corrupted layer blob in the registry: digest mismatch, nothing stored.
    push_two_layer(&reg, work.path(), "test/corrupt", "two");
    // skopeo may recompress on push: ask the registry for the layer it serves.
    let raw = sh(&format!(
        "skopeo inspect --raw --tls-verify=false docker://{}/test/corrupt:t",
        reg.host()
    ));
    let m: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let blob: Digest = m["layers"][1]["digest"].as_str().unwrap().parse().unwrap();
    let data = reg.storage.join(format!(
        "docker/registry/v2/blobs/sha256/{}/{}/data",
        &blob.hex()[..2],
        blob.hex()
    ));
    let len = fs::metadata(&data).unwrap().len() as usize;
    fs::write(&data, vec![b'x'; len]).unwrap();
    let e = registry::pull(
        &store,
        &format!("{}/test/corrupt:t", reg.host()),
        &opts(),
        &|_| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("digest mismatch"), "{e}");
    assert!(!store.blobs().has(&blob));
    assert!(store.list().unwrap().is_empty());
    assert_eq!(
        fs::read_dir(store.dir().join("tmp")).unwrap().count(),
        0,
        "no partial download left"
    );

    // Unreachable: a closed port.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = registry::pull(&store, &format!("127.0.0.1:{port}/x:t"), &opts(), &|_| {}).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("cannot reach") && msg.contains("bootstrap"),
        "{msg}"
    );
}

#[test_with::root()]
#[test]
fn multi_arch_index_resolves_to_the_host_platform() {
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let src = ImageStore::open(&work.path().join("src")).unwrap();
    let amd = src
        .import(
            &mut &layer(&[("arch", "amd64")])[..],
            "a",
            Default::default(),
        )
        .unwrap();
    let arm = src
        .import(
            &mut &layer(&[("arch", "arm64")])[..],
            "b",
            Default::default(),
        )
        .unwrap();
    // An OCI layout: index.json -> nested index -> one manifest per platform.
    let layout = work.path().join("layout");
    fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    let copy = |d: &Digest| {
        fs::copy(
            src.blobs().path(d),
            layout.join("blobs/sha256").join(d.hex()),
        )
        .unwrap()
    };
    let mut entries = Vec::new();
    for (img, arch) in [(&amd, "amd64"), (&arm, "arm64")] {
        copy(&img.manifest_digest);
        copy(&img.id);
        for l in &img.record.layers {
            copy(&l.blob);
        }
        let size = fs::metadata(src.blobs().path(&img.manifest_digest))
            .unwrap()
            .len();
        entries.push(serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": img.manifest_digest, "size": size, "platform": {"architecture": arch, "os": "linux"}}));
    }
    let nested = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries})).unwrap();
    let nd = Digest::of_bytes(&nested);
    fs::write(layout.join("blobs/sha256").join(nd.hex()), &nested).unwrap();
    let top = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": nd, "size": nested.len(), "annotations": {"org.opencontainers.image.ref.name": "multi"}}]});
    fs::write(layout.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    sh(&format!(
        "skopeo copy -q --all --dest-tls-verify=false oci:{}:multi docker://{}/test/multi:t",
        layout.display(),
        reg.host()
    ));

    let store = ImageStore::open(&work.path().join("dst")).unwrap();
    let img = registry::pull(
        &store,
        &format!("{}/test/multi:t", reg.host()),
        &opts(),
        &|_| {},
    )
    .unwrap();
    let want = if berth_runtime::image::store::host_arch() == "arm64" {
        &arm
    } else {
        &amd
    };
    assert_eq!(img.id, want.id);
    assert_eq!(
        fs::read_to_string(img.layer_dirs()[0].join("arch")).unwrap(),
        berth_runtime::image::store::host_arch()
    );
}

/// A token-auth front for the real registry: `/v2/*` needs `Bearer tok-123`, which `/token`
/// gives only to Basic `user:pw` (as Docker Hub's auth service does for private repos).
struct AuthProxy {
    port: u16,
    token_calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl AuthProxy {
    /// `auth`: demand the token. `break_blobs`: cut that many blob responses off halfway
    /// (the connection drops mid-download), then serve normally.
    fn start(upstream: String) -> AuthProxy {
        Self::start_with(upstream, true, 0)
    }

    fn start_with(upstream: String, auth: bool, break_blobs: usize) -> AuthProxy {
        use std::io::{BufRead, BufReader, Write};
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let c2 = calls.clone();
        let mut broken = 0;
        std::thread::spawn(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into();
            for conn in l.incoming() {
                let Ok(mut s) = conn else { return };
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                if r.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let mut headers = Vec::new();
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = h.trim_end().split_once(':') {
                        headers.push((k.to_ascii_lowercase(), v.trim().to_owned()));
                    }
                }
                let get = |k: &str| headers.iter().find(|(h, _)| h == k).map(|(_, v)| v.clone());
                let (status, ctype, body, extra) = if path.starts_with("/token") {
                    c2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    // "user:pw" in base64
                    if get("authorization").as_deref() == Some("Basic dXNlcjpwdw==") {
                        (
                            200,
                            "application/json".to_owned(),
                            br#"{"token":"tok-123"}"#.to_vec(),
                            String::new(),
                        )
                    } else {
                        (401, "text/plain".to_owned(), b"no".to_vec(), String::new())
                    }
                } else if auth && get("authorization").as_deref() != Some("Bearer tok-123") {
                    let ch = format!(
                        "WWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"test\",scope=\"repository:test/bb:pull\"\r\n"
                    );
                    (401, "application/json".to_owned(), b"{}".to_vec(), ch)
                } else {
                    let mut req = agent.get(format!("http://{upstream}{path}"));
                    if let Some(a) = get("accept") {
                        req = req.header("Accept", a);
                    }
                    let mut resp = req.call().unwrap();
                    let ct = resp
                        .headers()
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    let st = resp.status().as_u16();
                    let body = resp
                        .body_mut()
                        .with_config()
                        .limit(1 << 30)
                        .read_to_vec()
                        .unwrap();
                    (st, ct, body, String::new())
                };
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes());
                if path.contains("/blobs/") && status == 200 && broken < break_blobs {
                    broken += 1;
                    let _ = s.write_all(&body[..body.len() / 2]);
                    let _ = s.shutdown(std::net::Shutdown::Both);
                    continue;
                }
                let _ = s.write_all(&body);
            }
        });
        AuthProxy {
            port,
            token_calls: calls,
        }
    }
}

#[test_with::root()]
#[test]
fn bearer_token_flow_with_docker_config_credentials() {
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let src_id = push_two_layer(&reg, work.path(), "test/bb", "auth");
    let proxy = AuthProxy::start(reg.host());
    let reference = format!("127.0.0.1:{}/test/bb:t", proxy.port);

    // No credentials: the token service refuses, the error says to log in.
    let store = ImageStore::open(&work.path().join("dst")).unwrap();
    let mut o = opts();
    o.auth_file = Some(work.path().join("none.json"));
    let e = registry::pull(&store, &reference, &o, &|_| {}).unwrap_err();
    assert!(e.to_string().contains("berth login"), "{e}");

    // Credentials in a docker config.json: Basic to the token service, Bearer to the registry.
    let cfg = work.path().join("config.json");
    registry::store_credentials(
        &cfg,
        &format!("127.0.0.1:{}", proxy.port),
        Some(("user", "pw")),
    )
    .unwrap();
    o.auth_file = Some(cfg);
    let img = registry::pull(&store, &reference, &o, &|_| {}).unwrap();
    assert_eq!(img.id, src_id);
    assert!(proxy.token_calls.load(std::sync::atomic::Ordering::SeqCst) >= 2);
}

#[test_with::root()]
#[test]
fn downloads_cut_off_midway_are_retried_or_fail_cleanly() {
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let src_id = push_two_layer(&reg, work.path(), "test/bb", "flaky");

    // Two broken downloads, then good ones: the retries make the pull succeed.
    let flaky = AuthProxy::start_with(reg.host(), false, 2);
    let store = ImageStore::open(&work.path().join("dst")).unwrap();
    let mut o = opts();
    o.attempts = 4;
    o.parallel = 1;
    let img = registry::pull(
        &store,
        &format!("127.0.0.1:{}/test/bb:t", flaky.port),
        &o,
        &|_| {},
    )
    .unwrap();
    assert_eq!(img.id, src_id);

    // Every download broken: a clean error, no image, no partial file.
    let dead = AuthProxy::start_with(reg.host(), false, usize::MAX);
    let other = ImageStore::open(&work.path().join("dst2")).unwrap();
    let e = registry::pull(
        &other,
        &format!("127.0.0.1:{}/test/bb:t", dead.port),
        &o,
        &|_| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("127.0.0.1"), "{e}");
    assert!(other.list().unwrap().is_empty());
    assert_eq!(fs::read_dir(other.dir().join("tmp")).unwrap().count(), 0);
    // The registry back to normal: the same store pulls fine.
    let img = registry::pull(&other, &format!("{}/test/bb:t", reg.host()), &o, &|_| {}).unwrap();
    assert_eq!(img.id, src_id);
}
