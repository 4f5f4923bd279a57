//! `RUN --mount=type=ssh` with a real `ssh-agent` holding a fresh key: `berth image build
//! --ssh ID=SOCKET` and Compose's `build.ssh` forward it into the step (where the host's
//! `ssh-add -l` lists the key through `SSH_AUTH_SOCK`), and nothing of it stays in the image.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use berth_tests::host::{self, Host};

/// An `ssh-agent -D` of the test's, killed when dropped.
struct Agent {
    child: Child,
    sock: PathBuf,
}

impl Agent {
    /// Starts an agent at `sock` and adds a new ed25519 key commented `comment`.
    fn start(dir: &Path, comment: &str) -> Agent {
        let sock = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("ssh-agent (openssh-client: run scripts/deps.sh)");
        let agent = Agent { child, sock };
        for _ in 0..100 {
            if agent.sock.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let key = dir.join("id_test");
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(&key)
            .status()
            .expect("ssh-keygen");
        assert!(st.success(), "ssh-keygen");
        let st = Command::new("ssh-add")
            .arg("-q")
            .arg(&key)
            .env("SSH_AUTH_SOCK", &agent.sock)
            .status()
            .expect("ssh-add");
        assert!(st.success(), "ssh-add");
        agent
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The host's `ssh-add` with the libraries it links and its loader, in `dir`, so a busybox
/// image can run it as `/t/ld.so --library-path /t /t/ssh-add`.
fn host_ssh_add(dir: &Path) {
    fs::create_dir_all(dir).expect("tools");
    fs::copy("/usr/bin/ssh-add", dir.join("ssh-add")).expect("copy ssh-add");
    let ldd = Command::new("ldd")
        .arg("/usr/bin/ssh-add")
        .output()
        .expect("ldd");
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let path = match line.split_once("=> ") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line
                .split_whitespace()
                .next()
                .filter(|p| p.starts_with('/')),
        };
        let Some(path) = path.filter(|p| p.starts_with('/')) else {
            continue;
        };
        let name = if line.contains("=>") {
            Path::new(path)
                .file_name()
                .expect("library name")
                .to_owned()
        } else {
            "ld.so".into()
        };
        fs::copy(path, dir.join(name)).expect("copy library");
    }
    assert!(dir.join("ld.so").exists(), "ldd named no loader: {ldd:?}");
}

#[test_with::root()]
#[test_with::executable(ldd)]
#[test]
fn ssh_agents_reach_run_steps_but_not_the_image() {
    host::require_tools();
    let h = Host::new("bssh");
    h.busybox_image();
    let agent = Agent::start(h.dir.path(), "berth-build-test-key");
    host_ssh_add(&h.stack.join("tools"));
    fs::write(
        h.stack.join("Dockerfile"),
        "FROM busybox:e2e\n\
         RUN --network=none --mount=type=bind,source=tools,target=/t --mount=type=ssh \
         echo \"sock=$SSH_AUTH_SOCK\" > /seen && /t/ld.so --library-path /t /t/ssh-add -l >> /seen \
         && /bin/busybox stat -c 'mode=%a uid=%u' \"$SSH_AUTH_SOCK\" >> /seen\n\
         RUN --network=none --mount=type=ssh,id=gh,target=/agent,mode=0660,uid=7 \
         /bin/busybox stat -c 'gh=%a uid=%u' /agent > /gh\n\
         RUN --network=none (test -e /run/buildkit || echo no-buildkit; test -e /agent || echo no-agent) > /after\n",
    )
    .expect("Dockerfile");
    let ctx = h.stack.display().to_string();
    let default = format!("default={}", agent.sock.display());
    let gh = format!("gh={}", agent.sock.display());
    h.ok(&[
        "image", "build", "-t", "ssh:cli", "--ssh", &default, "--ssh", &gh, &ctx,
    ]);
    let seen = h.ok(&["container", "run", "--rm", "ssh:cli", "cat", "/seen", "/gh"]);
    assert!(seen.contains("sock=/run/buildkit/ssh_agent.0\n"), "{seen}");
    assert!(seen.contains("berth-build-test-key (ED25519)"), "{seen}");
    assert!(seen.contains("mode=600 uid=0\n"), "{seen}");
    assert!(seen.contains("gh=660 uid=7\n"), "{seen}");
    // The sockets and the directories made for them are not in the image, nor in its config.
    let left = h.ok(&["container", "run", "--rm", "ssh:cli", "cat", "/after"]);
    assert_eq!(left, "no-buildkit\nno-agent\n");
    let inspect = h.ok(&["image", "inspect", "ssh:cli"]);
    assert!(!inspect.contains("SSH_AUTH_SOCK"), "{inspect}");
    assert!(!inspect.contains("agent.sock"), "{inspect}");

    // A required agent not given, and a key file given for a socket: clear errors, before
    // anything runs.
    fs::write(
        h.stack.join("Dockerfile.req"),
        "FROM busybox:e2e\nRUN --mount=type=ssh,id=deploy,required=true true\n",
    )
    .expect("Dockerfile.req");
    let out = h.berth(&["image", "build", "-f", "Dockerfile.req", &ctx]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("ssh agent \"deploy\" is required"), "{err}");
    let key = format!("deploy={}", h.dir.path().join("id_test").display());
    let out = h.berth(&[
        "image",
        "build",
        "--ssh",
        &key,
        "-f",
        "Dockerfile.req",
        &ctx,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("is not a socket"), "{err}");
    // Not required and not given: the step runs without it.
    fs::write(
        h.stack.join("Dockerfile.opt"),
        "FROM busybox:e2e\nRUN --mount=type=ssh,id=none echo \"[$SSH_AUTH_SOCK]\" > /opt\n",
    )
    .expect("Dockerfile.opt");
    h.ok(&[
        "image",
        "build",
        "-t",
        "ssh:opt",
        "-f",
        "Dockerfile.opt",
        &ctx,
    ]);
    let opt = h.ok(&["container", "run", "--rm", "ssh:opt", "cat", "/opt"]);
    assert_eq!(opt, "[]\n");

    // Compose `build.ssh` (map form: ID: SOCKET) through the daemon's build.
    fs::write(
        h.stack.join("compose.yaml"),
        format!(
            "name: bssh\nservices:\n  app:\n    build:\n      context: .\n      ssh:\n        default: {}\n        gh: {}\n",
            agent.sock.display(),
            agent.sock.display()
        ),
    )
    .expect("compose");
    let out = h.ok(&["build", "--no-cache"]);
    assert!(!out.contains("build.ssh"), "not warned any more: {out}");
    let seen = h.ok(&["container", "run", "--rm", "bssh-app", "cat", "/seen"]);
    assert!(seen.contains("berth-build-test-key (ED25519)"), "{seen}");
    drop(agent);
}
