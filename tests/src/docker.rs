//! The docker CLI pointed at one berth instance's Docker Engine API socket and nothing else:
//! `DOCKER_HOST` is the instance's `docker.sock`, `DOCKER_CONFIG` a directory of the test's,
//! and the variables that would pick another daemon or its TLS are removed, so no test ever
//! reaches another Docker daemon or reads the user's docker configuration.

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::host::Host;

/// The docker CLI for one instance (its socket as `berth system docker-host` names it).
pub struct Docker {
    /// The instance's `docker.sock`.
    pub sock: PathBuf,
    config: tempfile::TempDir,
}

impl Docker {
    /// The docker CLI for `h`'s instance; checks that `berth system docker-host` names its
    /// socket.
    pub fn new(h: &Host) -> Docker {
        let host = h.ok(&["system", "docker-host"]);
        let sock = h.run.join("docker.sock");
        assert_eq!(
            host.trim(),
            format!("unix://{}", sock.display()),
            "berth system docker-host"
        );
        Docker {
            sock,
            config: tempfile::tempdir().expect("docker config dir"),
        }
    }

    /// The CLI's `DOCKER_CONFIG` directory (a test writes `config.json` here to give the CLI
    /// registry credentials).
    pub fn config_dir(&self) -> &std::path::Path {
        self.config.path()
    }

    /// `docker ARGS` (bounded to 60 s) with this instance's environment, not yet run.
    pub fn cmd(&self, args: &[&str]) -> Command {
        self.tool("docker", 60, args)
    }

    /// Docker Compose v2 (`docker-compose`, from scripts/deps.sh's venv) with this instance's
    /// environment, bounded to `secs`, not yet run.
    pub fn compose_cmd(&self, secs: u32, args: &[&str]) -> Command {
        self.tool("docker-compose", secs, args)
    }

    /// stdout of a Docker Compose command that must succeed within `secs`.
    pub fn compose_ok(&self, secs: u32, args: &[&str]) -> String {
        let out = self
            .compose_cmd(secs, args)
            .output()
            .expect("run docker-compose");
        assert!(
            out.status.success(),
            "docker-compose {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `PROGRAM ARGS` bounded to `secs`, speaking to this instance only (any Docker client:
    /// docker, docker-compose, a Python script using docker-py).
    pub fn tool(&self, program: &str, secs: u32, args: &[&str]) -> Command {
        let mut c = Command::new("timeout");
        c.arg(secs.to_string()).arg(program).args(args);
        for var in [
            "DOCKER_CONTEXT",
            "DOCKER_TLS_VERIFY",
            "DOCKER_CERT_PATH",
            "DOCKER_API_VERSION",
            "COMPOSE_FILE",
            "COMPOSE_PROJECT_NAME",
            "COMPOSE_PROFILES",
        ] {
            c.env_remove(var);
        }
        c.env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
            .env("DOCKER_CONFIG", self.config.path());
        c
    }

    /// Runs `docker ARGS`: its output, whatever its status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run docker")
    }

    /// stdout of a docker command that must succeed.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// stderr of a docker command that must fail.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "docker {args:?} succeeded:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}
