//! Deleting host links off the caller's path.
//!
//! The kernel unregisters a deleted device in the task that sent RTM_DELLINK, and ends that
//! by waiting for every pending RCU callback (`rcu_barrier`, ~20 ms on a small VM, and longer
//! when deletes queue behind each other's barrier). A container that is going away does not
//! need its host veth gone before `rm` answers: nothing reads it but a later attach that
//! reuses the same name. So the delete runs here, on a thread of its own with its own netlink
//! socket (the wait would otherwise stall netd's shared host connection and a runtime worker),
//! and whoever needs the name again waits for it with [`LinkDeleter::wait`]. A pending link also
//! still holds what it was made with (its MAC on its bridge, with a static FDB entry there; a
//! port of its network): those are named by keys, and whoever is about to use one waits for
//! it with [`LinkDeleter::wait_key`].
//!
//! Rule for callers: a name is queued only once netd's state no longer holds it, and a name
//! is made again only after [`LinkDeleter::wait`] (the delete looks the name up when it runs).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use rtnetlink::sys::{Socket, TokioSocket};
use tokio::sync::{mpsc, watch};

use crate::links::{self, LinkError};

/// How a delete ended: `None` while queued or under way, then the error's text if it failed.
type Outcome = Option<Result<(), String>>;

/// Names being deleted, each with the keys it still holds and the outcome of its delete.
type Pending = Arc<Mutex<HashMap<String, (Vec<String>, watch::Receiver<Outcome>)>>>;

/// The queue of host links to delete and the names still in it.
pub struct LinkDeleter {
    tx: mpsc::UnboundedSender<(String, watch::Sender<Outcome>)>,
    pending: Pending,
}

impl LinkDeleter {
    /// Starts the deleting thread on `sock`, a netlink socket opened in the host namespace.
    pub fn start(sock: Socket) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let pending: Pending = Arc::default();
        let p = pending.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        std::thread::Builder::new()
            .name("netd-link-delete".into())
            .spawn(move || rt.block_on(run(sock, rx, p)))?;
        Ok(Self { tx, pending })
    }

    /// Queues the delete of host link `name`, which holds `keys` until it is gone, and returns
    /// at once. A name already queued is not queued twice. Returns false when the deleting
    /// thread is gone (the caller deletes the link itself).
    pub fn queue(&self, name: &str, keys: Vec<String>) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if pending.contains_key(name) {
            return true;
        }
        let (done_tx, done_rx) = watch::channel(None);
        if self.tx.send((name.to_string(), done_tx)).is_err() {
            tracing::warn!(link = %name, "netd's link deleting thread is gone");
            return false;
        }
        pending.insert(name.to_string(), (keys, done_rx));
        true
    }

    /// Waits until no pending delete holds `key` any more.
    pub async fn wait_key(&self, key: &str) {
        let holders: Vec<watch::Receiver<Outcome>> = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter(|(keys, _)| keys.iter().any(|k| k == key))
            .map(|(_, rx)| rx.clone())
            .collect();
        for mut rx in holders {
            let _ = rx.wait_for(Option::is_some).await;
        }
    }

    /// Waits until no delete of `name` is queued or under way (at once when none is); the
    /// error is that of the delete it waited for.
    pub async fn wait(&self, name: &str) -> Result<(), LinkError> {
        let rx = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .map(|(_, rx)| rx.clone());
        let Some(mut rx) = rx else {
            return Ok(());
        };
        let outcome = match rx.wait_for(Option::is_some).await {
            Ok(o) => o.clone(),
            Err(_) => Some(Err("netd's link deleting thread is gone".to_string())),
        };
        match outcome {
            Some(Err(why)) => Err(LinkError::Delete {
                name: name.to_string(),
                why,
            }),
            _ => Ok(()),
        }
    }

    /// Waits until every delete queued so far is over.
    pub async fn settle(&self) {
        let all: Vec<watch::Receiver<Outcome>> = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|(_, rx)| rx.clone())
            .collect();
        for mut rx in all {
            let _ = rx.wait_for(Option::is_some).await;
        }
    }
}

async fn run(
    sock: Socket,
    mut rx: mpsc::UnboundedReceiver<(String, watch::Sender<Outcome>)>,
    pending: Pending,
) {
    use std::os::fd::{FromRawFd, IntoRawFd};
    // SAFETY: the fd comes from a socket we own and give away here.
    let ts = unsafe { TokioSocket::from_raw_fd(sock.into_raw_fd()) };
    let (conn, handle, _) = rtnetlink::from_socket(ts);
    tokio::spawn(conn);
    while let Some((name, done)) = rx.recv().await {
        let outcome = match links::delete_link(&handle, &name).await {
            Ok(_) => Ok(()),
            Err(err) => {
                // Nothing else deletes it; it goes with its container's namespace at the latest.
                tracing::warn!(link = %name, %err, "deleting a detached endpoint's host veth");
                Err(causes(&err))
            }
        };
        pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&name);
        let _ = done.send(Some(outcome));
    }
}

/// An error's causes as one line (its own text when it has none).
fn causes(err: &LinkError) -> String {
    let mut out = Vec::new();
    let mut src = std::error::Error::source(err);
    while let Some(e) = src {
        out.push(e.to_string());
        src = e.source();
    }
    if out.is_empty() {
        err.to_string()
    } else {
        out.join(": ")
    }
}
