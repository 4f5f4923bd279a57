//! `image bootstrap`: a Debian base image made with debootstrap, the way official Debian images
//! are made, for machines without a registry. Also turns any rootfs directory into a layer
//! ([`commit_rootfs_dir`]), which the builder reuses.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use oci_spec::image::Config;

use super::blobs::unique_suffix;
use super::store::{Image, ImageStore, NewImage, StoreError};

/// Bootstrap failures, naming the tool or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// Adding the image to the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A tool could not be started (debootstrap or tar missing).
    #[error("cannot run {tool} (is it installed? `apt-get install {tool}`)")]
    Spawn {
        /// The program.
        tool: &'static str,
        #[source]
        source: io::Error,
    },
    /// debootstrap failed; the tail of its log says why.
    #[error("debootstrap {suite} from {mirror} failed ({status}); last lines of {log}:\n{tail}")]
    Debootstrap {
        /// The suite.
        suite: String,
        /// The mirror.
        mirror: String,
        /// Exit status.
        status: String,
        /// Its full log.
        log: PathBuf,
        /// The log's last lines.
        tail: String,
    },
    /// tar of the rootfs failed.
    #[error("tar of {dir} failed: {status}")]
    Tar {
        /// The rootfs.
        dir: PathBuf,
        /// Exit status.
        status: String,
    },
    /// No mirror was given and none is configured in /etc/apt.
    #[error("no Debian mirror found in /etc/apt/sources.list(.d); pass --mirror URL")]
    NoMirror,
    /// A file operation failed.
    #[error("cannot {op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What to bootstrap.
#[derive(Debug, Clone)]
pub struct BootstrapOptions {
    /// Debian suite (bookworm …).
    pub suite: String,
    /// debootstrap variant (minbase …).
    pub variant: String,
    /// Extra packages.
    pub include: Vec<String>,
    /// Mirror URL; the host's configured Debian mirror when None.
    pub mirror: Option<String>,
}

impl Default for BootstrapOptions {
    fn default() -> Self {
        BootstrapOptions {
            suite: "bookworm".into(),
            variant: "minbase".into(),
            include: Vec::new(),
            mirror: None,
        }
    }
}

/// The first non-security Debian mirror in the host's apt sources (one-line and deb822).
pub fn host_mirror() -> Option<String> {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(rd) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        more.sort();
        files.extend(more);
    }
    for f in files {
        let Ok(text) = fs::read_to_string(&f) else {
            continue;
        };
        if let Some(m) = mirror_in(&text) {
            return Some(m);
        }
    }
    None
}

/// Finds a Debian archive URI (not the security archive) in a sources file's text.
pub fn mirror_in(text: &str) -> Option<String> {
    let ok = |u: &str| {
        (u.starts_with("http://") || u.starts_with("https://")) && !u.contains("security")
    };
    for line in text.lines() {
        let line = line.trim();
        let rest = line
            .strip_prefix("deb ")
            .or_else(|| line.strip_prefix("URIs:"));
        if let Some(uri) = rest.and_then(|r| r.split_whitespace().find(|w| ok(w))) {
            return Some(uri.to_owned());
        }
    }
    None
}

/// Detaches every mount below `dir` (debootstrap mounts /proc and /sys in the target and a
/// failed run can leave them), deepest first, so removing the tree never touches the host.
fn unmount_below(dir: &Path) {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in points {
        if let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) {
            // SAFETY: plain syscall with a valid C string.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// Tars a rootfs directory (numeric owners, xattrs, hardlinks, devices: GNU tar) and commits
/// it as a new layer on top of `parent`.
pub fn commit_rootfs_dir(
    store: &ImageStore,
    dir: &Path,
    parent: Option<&super::Digest>,
    new: NewImage,
) -> Result<Image, BootstrapError> {
    let mut child = Command::new("tar")
        .args([
            "--numeric-owner",
            "--xattrs",
            "--xattrs-include=*",
            "--sort=name",
            "-C",
        ])
        .arg(dir)
        .args(["-cf", "-", "."])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|source| BootstrapError::Spawn {
            tool: "tar",
            source,
        })?;
    let mut out = child.stdout.take().ok_or_else(|| BootstrapError::Tar {
        dir: dir.to_owned(),
        status: "no stdout".into(),
    })?;
    let res = store.commit(Some(&mut out as &mut dyn Read), parent, new);
    drop(out);
    let status = child.wait().map_err(|source| BootstrapError::Spawn {
        tool: "tar",
        source,
    })?;
    let img = res?;
    if !status.success() {
        return Err(BootstrapError::Tar {
            dir: dir.to_owned(),
            status: status.to_string(),
        });
    }
    Ok(img)
}

/// Runs debootstrap into a temp dir of the store, trims apt caches, and stores the result as a
/// one-layer image tagged `reference`, with PATH and `Cmd ["bash"]` as Debian's images have.
pub fn bootstrap(
    store: &ImageStore,
    reference: &str,
    opts: &BootstrapOptions,
) -> Result<Image, BootstrapError> {
    let mirror = match &opts.mirror {
        Some(m) => m.clone(),
        None => host_mirror().ok_or(BootstrapError::NoMirror)?,
    };
    let work = store
        .dir()
        .join("tmp")
        .join(format!(".tmp-boot-{}", unique_suffix()));
    let rootfs = work.join("rootfs");
    fs::create_dir_all(&rootfs).map_err(|source| BootstrapError::Io {
        op: "create",
        path: rootfs.clone(),
        source,
    })?;
    let res = (|| {
        let log = work.join("debootstrap.log");
        let logf = fs::File::create(&log).map_err(|source| BootstrapError::Io {
            op: "create",
            path: log.clone(),
            source,
        })?;
        let mut cmd = Command::new("debootstrap");
        cmd.arg(format!("--variant={}", opts.variant));
        if !opts.include.is_empty() {
            cmd.arg(format!("--include={}", opts.include.join(",")));
        }
        cmd.arg(&opts.suite).arg(&rootfs).arg(&mirror);
        let errf = logf.try_clone().map_err(|source| BootstrapError::Io {
            op: "open",
            path: log.clone(),
            source,
        })?;
        tracing::info!(suite = %opts.suite, %mirror, variant = %opts.variant, "running debootstrap");
        let status = cmd
            .stdout(logf)
            .stderr(errf)
            .stdin(Stdio::null())
            .status()
            .map_err(|source| BootstrapError::Spawn {
                tool: "debootstrap",
                source,
            })?;
        unmount_below(&rootfs);
        if !status.success() {
            let text = fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            let keep = store
                .dir()
                .join(format!("debootstrap-{}.log", unique_suffix()));
            let _ = fs::copy(&log, &keep);
            return Err(BootstrapError::Debootstrap {
                suite: opts.suite.clone(),
                mirror: mirror.clone(),
                status: status.to_string(),
                log: keep,
                tail: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
            });
        }
        for d in ["var/cache/apt/archives", "var/lib/apt/lists"] {
            let p = rootfs.join(d);
            if let Ok(rd) = fs::read_dir(&p) {
                for e in rd.flatten() {
                    let name = e.file_name();
                    let n = name.to_string_lossy();
                    if n.ends_with(".deb")
                        || (d.ends_with("lists") && e.path().is_file() && n != "lock")
                    {
                        let _ = fs::remove_file(e.path());
                    }
                }
            }
        }
        let config = oci_spec::image::ConfigBuilder::default()
            .env(vec![
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
            ])
            .cmd(vec!["bash".to_owned()])
            .build()
            .unwrap_or_else(|_| Config::default());
        let new = NewImage {
            config,
            healthcheck: None,
            created_by: format!(
                "debootstrap --variant={} {} {}",
                opts.variant, opts.suite, mirror
            ),
            comment: Some("berth image bootstrap".into()),
        };
        let img = commit_rootfs_dir(store, &rootfs, None, new)?;
        store.tag(&img.id, reference)?;
        store.resolve(img.id.as_str()).map_err(BootstrapError::from)
    })();
    unmount_below(&work);
    let _ = fs::remove_dir_all(&work);
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_mirrors_in_both_formats() {
        let deb822 = "Types: deb\n# http://snapshot.debian.org/x\nURIs: http://deb.debian.org/debian\nSuites: bookworm\n\nTypes: deb\nURIs: http://deb.debian.org/debian-security\n";
        assert_eq!(
            mirror_in(deb822).as_deref(),
            Some("http://deb.debian.org/debian")
        );
        let one = "deb http://security.debian.org/debian-security bookworm-security main\ndeb [arch=amd64] http://ftp.fr.debian.org/debian bookworm main\n";
        assert_eq!(
            mirror_in(one).as_deref(),
            Some("http://ftp.fr.debian.org/debian")
        );
        assert_eq!(mirror_in("# nothing\n"), None);
    }
}
