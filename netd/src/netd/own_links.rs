//! A look at just the links an event burst named, before a whole reconcile.
//!
//! Every attach announces its new host veth before it joins its bridge, and every detach its
//! veth's deletion: for the kernel both are netd's own links "in a state that may need
//! repair". A whole reconcile per such burst reads every link and every container's inside,
//! so an `up` of N containers did O(N) reconciles of O(N) each. Here netd checks only the
//! named links against its state: a link of an endpoint it still holds must exist, be up and
//! sit on its network's bridge; a bridge of a network it holds must exist and be up. Links it
//! no longer holds (detached, half-made by an attach that failed) need nothing.

use super::Netd;
use crate::links;

/// What one named link should look like, from netd's state.
enum Expect {
    /// An endpoint's host veth, on the bridge of this name, isolated on it when the network
    /// keeps its containers apart (`enable_icc=false`).
    Port { bridge: String, isolated: bool },
    /// A network's bridge.
    Bridge,
}

impl Netd {
    /// Whether any of `names` (own links from an event burst) is missing, down or off its
    /// bridge while netd's state holds it; an error reading the kernel counts as yes.
    pub(crate) async fn own_links_need_repair(&self, names: &[String]) -> bool {
        let expected: Vec<(String, Expect)> = {
            let inner = self.lock().await;
            names
                .iter()
                .filter_map(|name| {
                    if let Some(e) = inner
                        .state
                        .endpoints
                        .iter()
                        .find(|e| &e.host_ifname == name)
                    {
                        // A container whose namespace is gone is being removed (its veth
                        // went with the namespace): the reconcile forgets it, no repair.
                        if !e.netns.path().exists() {
                            return None;
                        }
                        let n = inner.state.networks.get(&e.network)?;
                        let (bridge, isolated) = (n.bridge.clone(), n.options.no_icc);
                        return Some((name.clone(), Expect::Port { bridge, isolated }));
                    }
                    inner
                        .state
                        .networks
                        .values()
                        .any(|n| &n.bridge == name)
                        .then(|| (name.clone(), Expect::Bridge))
                })
                .collect()
        };
        for (name, expect) in expected {
            let link = match links::link_by_name(self.kernel.host(), &name).await {
                Ok(Some(l)) if l.up => l,
                _ => return true,
            };
            if let Expect::Port { bridge, isolated } = expect {
                match links::link_by_name(self.kernel.host(), &bridge).await {
                    Ok(Some(br)) if link.controller == Some(br.index) => {}
                    _ => return true,
                }
                // A port taken off its bridge and put back within one burst has lost its
                // isolation (and its hairpin and static FDB entry, which the backstop
                // reconcile brings back); isolation is what keeps containers apart.
                if isolated && link.isolated != Some(true) {
                    return true;
                }
            }
        }
        false
    }
}
