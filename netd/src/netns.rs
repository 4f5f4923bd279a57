//! Network namespace switching, confined to one dedicated OS thread.
//!
//! `setns(CLONE_NEWNET)` changes only the calling thread. Doing it on a tokio worker would leave
//! that worker (and every task it later runs) in the wrong namespace if switching back failed,
//! so all switching happens on one thread that netd owns: it enters a target namespace, runs a
//! short job (open a netlink socket, which stays bound to that namespace; spawn `nft` or
//! `conntrack`, which inherit it; write a per-namespace sysctl), and returns to the host
//! namespace. The "host" namespace is the one netd was created in, which lets tests run netd
//! inside a simulated host namespace.

use std::fs::File;
use std::os::fd::{AsFd, FromRawFd, IntoRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;

use nix::sched::{CloneFlags, setns};
use rtnetlink::Handle;
use rtnetlink::sys::{Socket, TokioSocket, protocols::NETLINK_ROUTE};

/// Why a namespace job failed.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("cannot open network namespace {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot enter network namespace {what}")]
    Enter {
        what: String,
        #[source]
        source: nix::Error,
    },
    #[error("cannot open a netlink socket in namespace {what}")]
    Socket {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the namespace worker thread")]
    Spawn(#[source] std::io::Error),
    #[error("the namespace worker thread is gone")]
    WorkerGone,
}

/// An open network namespace file with a name for messages.
#[derive(Debug, Clone)]
pub struct Netns {
    fd: Arc<OwnedFd>,
    what: String,
}

impl Netns {
    /// Opens a namespace file (`/run/netns/x`, `/proc/PID/ns/net`, a bind mount).
    pub fn open(path: &Path) -> Result<Self, NetnsError> {
        let f = File::open(path).map_err(|source| NetnsError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            fd: Arc::new(OwnedFd::from(f)),
            what: path.display().to_string(),
        })
    }

    /// The namespace of the calling thread (not of the process: tests run netd on a thread that
    /// entered a simulated host namespace).
    pub fn current() -> Result<Self, NetnsError> {
        Self::open(Path::new("/proc/thread-self/ns/net"))
    }

    /// The descriptor (to move links into this namespace by fd).
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Description for messages.
    pub fn what(&self) -> &str {
        &self.what
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// The stream of raw notifications of a multicast connection.
pub type Messages = futures::channel::mpsc::UnboundedReceiver<(
    netlink_packet_core::NetlinkMessage<netlink_packet_route::RouteNetlinkMessage>,
    rtnetlink::sys::SocketAddr,
)>;

/// The dedicated namespace thread; cheap to clone.
#[derive(Clone, Debug)]
pub struct NetnsWorker {
    tx: mpsc::Sender<Job>,
    host: Netns,
}

impl NetnsWorker {
    /// Starts the thread in `host`, the namespace netd manages.
    pub fn start(host: Netns) -> Result<Self, NetnsError> {
        let (tx, rx) = mpsc::channel::<Job>();
        let h = host.clone();
        let (ready_tx, ready_rx) = mpsc::channel();
        thread::Builder::new()
            .name("netd-netns".into())
            .spawn(move || {
                let r = setns(h.fd.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|source| {
                    NetnsError::Enter {
                        what: h.what.clone(),
                        source,
                    }
                });
                let ok = r.is_ok();
                let _ = ready_tx.send(r);
                if !ok {
                    return;
                }
                while let Ok(job) = rx.recv() {
                    job();
                }
            })
            .map_err(NetnsError::Spawn)?;
        ready_rx.recv().map_err(|_| NetnsError::WorkerGone)??;
        Ok(Self { tx, host })
    }

    /// The host namespace.
    pub fn host(&self) -> &Netns {
        &self.host
    }

    /// Runs `f` on the worker inside `ns` (or the host namespace when `None`), then returns the
    /// thread to the host namespace. If it cannot return, the thread exits rather than run
    /// later jobs in the wrong namespace.
    pub async fn run<R, F>(&self, ns: Option<&Netns>, f: F) -> Result<R, NetnsError>
    where
        R: Send + 'static,
        F: FnOnce() -> R + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let target = ns.cloned();
        let host = self.host.clone();
        let job: Job = Box::new(move || {
            let res = match &target {
                None => Ok(f()),
                Some(t) => match setns(t.fd.as_fd(), CloneFlags::CLONE_NEWNET) {
                    Err(source) => Err(NetnsError::Enter {
                        what: t.what.clone(),
                        source,
                    }),
                    Ok(()) => {
                        let r = f();
                        if setns(host.fd.as_fd(), CloneFlags::CLONE_NEWNET).is_err() {
                            tracing::error!(ns = %host.what, "netns worker cannot return to the host namespace; stopping it");
                            let _ = tx.send(Ok(r));
                            panic!("netns worker stranded outside the host namespace");
                        }
                        Ok(r)
                    }
                },
            };
            let _ = tx.send(res);
        });
        self.tx.send(job).map_err(|_| NetnsError::WorkerGone)?;
        rx.await.map_err(|_| NetnsError::WorkerGone)?
    }

    /// Opens an rtnetlink connection bound to `ns` (host when `None`) and spawns its driver on
    /// the current tokio runtime. The driver ends when the last handle is dropped.
    pub async fn connect(&self, ns: Option<&Netns>) -> Result<Handle, NetnsError> {
        let what = ns.map_or_else(|| self.host.what.clone(), |n| n.what.clone());
        let sock = self
            .run(ns, || Socket::new(NETLINK_ROUTE))
            .await?
            .map_err(|source| NetnsError::Socket {
                what: what.clone(),
                source,
            })?;
        Ok(handle_from_socket(sock))
    }

    /// A plain rtnetlink socket opened in the host namespace, for a connection driven
    /// elsewhere (the link deleter's own thread).
    pub async fn host_socket(&self) -> Result<Socket, NetnsError> {
        let what = self.host.what.clone();
        self.run(None, || Socket::new(NETLINK_ROUTE))
            .await?
            .map_err(|source| NetnsError::Socket { what, source })
    }

    /// A multicast rtnetlink connection in the host namespace for the given groups; returns
    /// the handle (kept alive by the caller) and the message stream.
    pub async fn subscribe(
        &self,
        groups: &'static [rtnetlink::MulticastGroup],
    ) -> Result<(Handle, Messages), NetnsError> {
        let what = self.host.what.clone();
        let sock = self
            .run(None, move || -> std::io::Result<Socket> {
                let mut s = Socket::new(NETLINK_ROUTE)?;
                let mut mask = 0u32;
                for g in groups {
                    let n = *g as u32;
                    if n <= 32 {
                        mask |= 1 << (n - 1);
                    }
                }
                s.bind(&rtnetlink::sys::SocketAddr::new(0, mask))?;
                // Room for a burst (hundreds of veths at `up`) before the kernel drops events.
                s.set_rx_buf_sz(4 << 20)?;
                Ok(s)
            })
            .await?
            .map_err(|source| NetnsError::Socket { what, source })?;
        // SAFETY: the fd comes from a socket we own and give away here.
        let ts = unsafe { TokioSocket::from_raw_fd(sock.into_raw_fd()) };
        let (conn, handle, msgs) = rtnetlink::from_socket(ts);
        tokio::spawn(conn);
        Ok((handle, msgs))
    }
}

fn handle_from_socket(sock: Socket) -> Handle {
    // SAFETY: the fd comes from a socket we own and give away here.
    let ts = unsafe { TokioSocket::from_raw_fd(sock.into_raw_fd()) };
    let (conn, handle, _) = rtnetlink::from_socket(ts);
    tokio::spawn(conn);
    handle
}
