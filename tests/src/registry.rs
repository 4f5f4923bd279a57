//! A Debian `docker-registry` of a test's own, for pull and push tests.

use std::process::Command;

use crate::host::Host;

/// A Debian `docker-registry` on a loopback port of the test's own, with its own config and
/// storage in a temporary directory; killed when dropped.
pub struct Registry {
    child: std::process::Child,
    /// `127.0.0.1:PORT`, inside the host's namespace.
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts it in `h`'s network namespace (where the daemon's loopback is).
    pub fn start(h: &Host) -> Registry {
        Registry::start_with(h, |_| String::new())
    }

    /// Starts one that asks for HTTP Basic auth: `user` with `password` (a bcrypt htpasswd
    /// entry made with python3's crypt).
    pub fn start_with_basic_auth(h: &Host, user: &str, password: &str) -> Registry {
        Registry::start_with(h, |dir| {
            let out = Command::new("python3")
                .args([
                    "-W",
                    "ignore",
                    "-c",
                    "import crypt,sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))",
                    password,
                ])
                .output()
                .expect("python3 crypt");
            let hash = String::from_utf8_lossy(&out.stdout).trim().to_string();
            assert!(hash.starts_with("$2"), "no bcrypt hash: {hash}");
            let file = dir.join("htpasswd");
            std::fs::write(&file, format!("{user}:{hash}\n")).expect("htpasswd");
            format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                file.display()
            )
        })
    }

    /// Starts it with `extra` configuration (given the registry's directory).
    fn start_with(h: &Host, extra: impl FnOnce(&std::path::Path) -> String) -> Registry {
        let dir = tempfile::tempdir().expect("registry dir");
        let extra = extra(dir.path());
        let addr = "127.0.0.1:5000".to_string();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n{extra}",
                dir.path().join("data").display()
            ),
        )
        .expect("registry config");
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", h.ns))
            .arg("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let reg = Registry {
            child,
            addr,
            _dir: dir,
        };
        for _ in 0..100 {
            // Any answer will do (401 with auth): the registry listens.
            let probe = h.sh(&format!("curl -s -o /dev/null http://{}/v2/", reg.addr));
            if probe.status.success() {
                return reg;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("docker-registry did not listen on {}", reg.addr);
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// skopeo's idea of the digest of `name` (`ADDR/REPO:TAG`) in a registry reachable from `h`'s
/// namespace: the oracle of what berth pushed.
pub fn registry_digest(h: &Host, name: &str) -> String {
    let out = h.sh(&format!(
        "skopeo inspect --tls-verify=false --format '{{{{.Digest}}}}' docker://{name}"
    ));
    assert!(
        out.status.success(),
        "skopeo inspect {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
