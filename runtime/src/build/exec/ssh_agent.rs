//! `RUN --mount=type=ssh`: an SSH agent the build was given (`berth image build --ssh
//! default|ID=SOCKET`, Compose `build.ssh`) reached from inside the step through a socket of
//! the builder's own, bound at the mount's target. The builder forwards each connection to
//! the agent, so the step sees a socket with the mount's owner and mode (not the agent's),
//! the agent sees the builder as its peer, and nothing of it is left in the layer: the
//! socket lives in a scratch directory and its target stub is taken out of the upper dir.

use std::io;
use std::net::Shutdown;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// An agent a build may forward (`--ssh ID=SOCKET`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSsh {
    /// The id `RUN --mount=type=ssh,id=ID` names (`default` when the mount names none).
    pub id: String,
    /// The agent's socket on the machine running the build.
    pub socket: PathBuf,
}

impl BuildSsh {
    /// Docker's `--ssh` syntax: `default` or `ID` (the agent of `SSH_AUTH_SOCK`, which
    /// `auth_sock` looks up), or `ID=SOCKET`. Key files and several paths per id, which
    /// BuildKit loads into an agent of its own, are refused: give an agent's socket.
    pub fn parse(spec: &str, auth_sock: impl Fn() -> Option<String>) -> Result<BuildSsh, String> {
        let (id, path) = match spec.split_once('=') {
            Some((id, path)) => (id.trim(), Some(path.trim())),
            None => (spec.trim(), None),
        };
        if id.is_empty() {
            return Err(format!("--ssh {spec:?}: expected default, ID or ID=SOCKET"));
        }
        let socket = match path {
            Some(p) if p.contains(',') => {
                return Err(format!(
                    "--ssh {spec:?}: one agent socket per id (berth forwards agents, it does not load keys)"
                ));
            }
            Some(p) if !p.is_empty() => p.to_string(),
            _ => auth_sock().filter(|s| !s.is_empty()).ok_or_else(|| {
                format!(
                    "--ssh {spec:?}: SSH_AUTH_SOCK is not set (start ssh-agent, or give ID=SOCKET)"
                )
            })?,
        };
        Ok(BuildSsh {
            id: id.to_string(),
            socket: PathBuf::from(socket),
        })
    }

    /// Checks that the socket is there and is a socket, naming the id and path otherwise (a
    /// key file is refused with what to do instead).
    pub fn check(&self) -> Result<(), String> {
        let meta = std::fs::metadata(&self.socket)
            .map_err(|e| format!("ssh {:?}: {}: {e}", self.id, self.socket.display()))?;
        if !meta.file_type().is_socket() {
            return Err(format!(
                "ssh {:?}: {} is not a socket: berth forwards a running agent (ssh-agent, then ssh-add the key)",
                self.id,
                self.socket.display()
            ));
        }
        Ok(())
    }
}

/// A listening socket forwarding every connection to one agent, for one step; stops
/// accepting when dropped (connections already made end with their peers).
pub(super) struct AgentProxy {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AgentProxy {
    /// Listens at `listen` (which must not exist) and forwards to `agent`.
    pub(super) fn start(listen: &Path, agent: &Path) -> io::Result<AgentProxy> {
        let listener = UnixListener::bind(listen)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let agent = agent.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("build-ssh-agent".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if stopped.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = conn else { continue };
                    let agent = agent.clone();
                    let _ = std::thread::Builder::new()
                        .name("build-ssh-conn".into())
                        .spawn(move || forward(client, &agent));
                }
            })?;
        Ok(AgentProxy {
            path: listen.to_path_buf(),
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for AgentProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Copies both ways between a step's connection and a fresh one to the agent.
fn forward(client: UnixStream, agent: &Path) {
    let Ok(upstream) = UnixStream::connect(agent) else {
        return;
    };
    let (Ok(client_in), Ok(upstream_out)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let up = std::thread::spawn(move || {
        let _ = io::copy(&mut &client_in, &mut &upstream_out);
        let _ = upstream_out.shutdown(Shutdown::Write);
    });
    let _ = io::copy(&mut &upstream, &mut &client);
    let _ = client.shutdown(Shutdown::Write);
    let _ = up.join();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn specs_read_as_dockers() {
        let sock = || Some("/tmp/agent.sock".to_string());
        let d = BuildSsh::parse("default", sock).expect("default");
        assert_eq!(
            (d.id.as_str(), d.socket.to_str()),
            ("default", Some("/tmp/agent.sock"))
        );
        let g = BuildSsh::parse("gh=/run/a.sock", || None).expect("id=socket");
        assert_eq!(
            (g.id.as_str(), g.socket.to_str()),
            ("gh", Some("/run/a.sock"))
        );
        assert!(BuildSsh::parse("default", || None).is_err_and(|e| e.contains("SSH_AUTH_SOCK")));
        assert!(BuildSsh::parse("k=/a,/b", || None).is_err());
        assert!(BuildSsh::parse("=/a", || None).is_err());
        let dir = tempfile::tempdir().expect("dir");
        let key = dir.path().join("id_ed25519");
        std::fs::write(&key, "key").expect("key");
        let e = BuildSsh::parse(&format!("k={}", key.display()), || None)
            .expect("parse")
            .check()
            .expect_err("a key file");
        assert!(e.contains("not a socket"), "{e}");
    }

    #[test]
    fn the_proxy_forwards_both_ways_and_stops() {
        let dir = tempfile::tempdir().expect("dir");
        let agent = dir.path().join("agent");
        let l = UnixListener::bind(&agent).expect("agent");
        let echo = std::thread::spawn(move || {
            let (mut c, _) = l.accept().expect("accept");
            let mut buf = [0u8; 5];
            c.read_exact(&mut buf).expect("read");
            c.write_all(&buf).expect("write");
        });
        let listen = dir.path().join("proxy");
        let p = AgentProxy::start(&listen, &agent).expect("proxy");
        let mut c = UnixStream::connect(&listen).expect("connect");
        c.write_all(b"hello").expect("send");
        let mut back = [0u8; 5];
        c.read_exact(&mut back).expect("answer");
        assert_eq!(&back, b"hello");
        echo.join().expect("echo");
        drop(p);
        assert!(!listen.exists());
    }
}
