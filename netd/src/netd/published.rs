//! Published ports: adding them to an attached container, checking them before `up`, and
//! withdrawing them.

use std::collections::BTreeSet;

use super::{Netd, NetdError};
use crate::links;
use crate::ports::{PortError, PortMapping};

impl Netd {
    /// Publishes more ports of an attached container through its endpoint on `network`.
    pub async fn publish(
        &self,
        container: &str,
        network: &str,
        ports: Vec<PortMapping>,
    ) -> Result<(), NetdError> {
        let mut inner = self.lock().await;
        let n = inner
            .state
            .find_network(network)
            .cloned()
            .ok_or_else(|| NetdError::NoNetwork {
                key: network.to_string(),
            })?;
        if n.internal && !ports.is_empty() {
            return Err(NetdError::InternalPorts { name: n.name });
        }
        for p in &ports {
            p.validate()?;
            for e in &inner.state.endpoints {
                for q in &e.ports {
                    if let Some(port) = p.clashes(q) {
                        return Err(PortError::Conflict {
                            proto: p.protocol.as_str(),
                            port,
                            owner: e.container.clone(),
                        }
                        .into());
                    }
                }
            }
        }
        if !inner
            .state
            .endpoints
            .iter()
            .any(|e| e.container == container && e.network == n.id)
        {
            return Err(NetdError::NotAttached {
                container: container.to_string(),
                network: n.name.clone(),
            });
        }
        if let Some((_, err)) = self.host_listeners(ports.clone()).await? {
            return Err(err.into());
        }
        let ep = inner
            .state
            .endpoints
            .iter_mut()
            .find(|e| e.container == container && e.network == n.id)
            .ok_or_else(|| NetdError::NotAttached {
                container: container.to_string(),
                network: n.name.clone(),
            })?;
        ep.ports.extend(ports);
        let host_if = ep.host_ifname.clone();
        links::set_hairpin(self.kernel.host(), &host_if).await?;
        self.store.save(&inner.state)?;
        self.apply_firewall(&inner.state).await
    }

    /// Checks publications before anything is made (`up`'s preflight): against the ports
    /// other containers publish (those in `except`, about to be replaced, do not count) and
    /// against the host's listening sockets. Answers the index of the first refused one
    /// with the reason, `None` when all are free; an error only when the check itself
    /// failed. Clashes among `ports` themselves are the caller's to find.
    pub async fn check_ports(
        &self,
        ports: &[PortMapping],
        except: &BTreeSet<String>,
    ) -> Result<Option<(usize, PortError)>, NetdError> {
        {
            let inner = self.inner.lock().await;
            for (i, p) in ports.iter().enumerate() {
                if let Err(err) = p.validate() {
                    return Ok(Some((i, err)));
                }
                for e in inner
                    .state
                    .endpoints
                    .iter()
                    .filter(|e| !except.contains(&e.container))
                {
                    for q in &e.ports {
                        if let Some(port) = p.clashes(q) {
                            return Ok(Some((
                                i,
                                PortError::Conflict {
                                    proto: p.protocol.as_str(),
                                    port,
                                    owner: e.container.clone(),
                                },
                            )));
                        }
                    }
                }
            }
        }
        self.host_listeners(ports.to_vec()).await
    }

    /// The first of `ports` a host socket holds (read on the worker, in the host namespace).
    pub(super) async fn host_listeners(
        &self,
        ports: Vec<PortMapping>,
    ) -> Result<Option<(usize, PortError)>, NetdError> {
        if ports.is_empty() {
            return Ok(None);
        }
        self.kernel
            .run_host(move || crate::listeners::check(&ports))
            .await?
            .map_err(|e| PortError::HostCheck(e).into())
    }

    /// Withdraws every published port of a container.
    pub async fn unpublish(&self, container: &str) -> Result<(), NetdError> {
        let mut inner = self.lock().await;
        let mut changed = false;
        for e in inner
            .state
            .endpoints
            .iter_mut()
            .filter(|e| e.container == container)
        {
            changed |= !e.ports.is_empty();
            e.ports.clear();
        }
        if changed {
            self.store.save(&inner.state)?;
            self.apply_firewall(&inner.state).await?;
        }
        Ok(())
    }
}
