//! netd's one hold on the kernel: the worker thread that enters namespaces, the host
//! namespace's rtnetlink handle, the thread that deletes host links, and the connections into
//! container namespaces. Every netlink handle netd uses comes from here.

use std::path::Path;

use rtnetlink::Handle;

use crate::link_deleter::LinkDeleter;
use crate::netns::{Netns, NetnsError, NetnsWorker};

/// The worker and the host handle of one netd instance.
pub struct Kernel {
    worker: NetnsWorker,
    host: Handle,
    deleter: LinkDeleter,
}

impl Kernel {
    /// Starts the worker in the calling thread's network namespace (the "host") and connects
    /// to it.
    pub async fn open() -> Result<Self, NetnsError> {
        let worker = NetnsWorker::start(Netns::current()?)?;
        let host = worker.connect(None).await?;
        let deleter = LinkDeleter::start(worker.host_socket().await?).map_err(NetnsError::Spawn)?;
        Ok(Self {
            worker,
            host,
            deleter,
        })
    }

    /// The host namespace's rtnetlink handle.
    pub fn host(&self) -> &Handle {
        &self.host
    }

    /// The queue that deletes host links off the caller's path.
    pub fn deleter(&self) -> &LinkDeleter {
        &self.deleter
    }

    /// The namespace worker (for event subscriptions).
    pub fn worker(&self) -> &NetnsWorker {
        &self.worker
    }

    /// Runs blocking `f` (nft, sysctl, /proc reads) on the worker in the host namespace.
    pub async fn run_host<R, F>(&self, f: F) -> Result<R, NetnsError>
    where
        R: Send + 'static,
        F: FnOnce() -> R + Send + 'static,
    {
        self.worker.run(None, f).await
    }

    /// A connection into an opened container namespace.
    pub async fn connect(&self, ns: &Netns) -> Result<Handle, NetnsError> {
        self.worker.connect(Some(ns)).await
    }

    /// Opens the container namespace at `path` and connects into it.
    pub async fn enter(&self, path: &Path) -> Result<(Netns, Handle), NetnsError> {
        let ns = Netns::open(path)?;
        let h = self.connect(&ns).await?;
        Ok((ns, h))
    }
}
