//! One network's name table, kept by delta: adding or removing an endpoint touches only the
//! names and addresses that endpoint carries, so registering the 800th container of a network
//! costs what registering the first did.
//!
//! The answers are those of a table built whole from the endpoints in id order: a name maps
//! to the addresses of every endpoint carrying it, in endpoint id order without repeats, and
//! an address belongs to the last endpoint (in id order) that holds it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use super::records::{Endpoint, NetworkScope, normalize};

/// One network's endpoints and the lookups derived from them.
#[derive(Debug, Default, Clone)]
pub(super) struct NetState {
    pub(super) scope: Option<NetworkScope>,
    pub(super) endpoints: BTreeMap<String, Arc<Endpoint>>,
    /// Lower-case name -> addresses, in endpoint order.
    pub(super) names: HashMap<String, Vec<IpAddr>>,
    /// Address -> the endpoint answering for it.
    pub(super) by_addr: HashMap<IpAddr, Arc<Endpoint>>,
    /// Lower-case name -> ids of the endpoints carrying it.
    name_holders: HashMap<String, BTreeSet<String>>,
    /// Address -> ids of the endpoints holding it.
    addr_holders: HashMap<IpAddr, BTreeSet<String>>,
}

impl NetState {
    /// A network with `endpoints`.
    pub(super) fn new(
        scope: NetworkScope,
        endpoints: impl IntoIterator<Item = Arc<Endpoint>>,
    ) -> Self {
        let mut net = Self {
            scope: Some(scope),
            ..Self::default()
        };
        for ep in endpoints {
            net.insert(ep);
        }
        net
    }

    pub(super) fn id(&self) -> &str {
        self.scope.as_ref().map(|s| s.id.as_str()).unwrap_or("")
    }

    pub(super) fn internal(&self) -> bool {
        self.scope.as_ref().is_some_and(|s| s.internal)
    }

    pub(super) fn covers(&self, ip: IpAddr) -> bool {
        self.scope
            .as_ref()
            .is_some_and(|s| s.subnets.iter().any(|n| n.contains(ip)))
    }

    /// Ids of the endpoints other than `id` that hold one of `addrs`.
    pub(super) fn holders_of(&self, addrs: &[IpAddr], id: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for a in addrs {
            for h in self.addr_holders.get(a).into_iter().flatten() {
                if h != id && !out.contains(h) {
                    out.push(h.clone());
                }
            }
        }
        out
    }

    /// Adds `ep`, replacing the endpoint of the same id; returns the replaced one.
    pub(super) fn insert(&mut self, ep: Arc<Endpoint>) -> Option<Arc<Endpoint>> {
        let old = self.remove(&ep.id);
        self.endpoints.insert(ep.id.clone(), Arc::clone(&ep));
        for name in &ep.names {
            let key = normalize(name);
            self.name_holders
                .entry(key.clone())
                .or_default()
                .insert(ep.id.clone());
            self.refresh_name(&key);
        }
        for a in &ep.addresses {
            self.addr_holders
                .entry(*a)
                .or_default()
                .insert(ep.id.clone());
            self.refresh_addr(*a);
        }
        old
    }

    /// Removes the endpoint `id`; returns it if it was there.
    pub(super) fn remove(&mut self, id: &str) -> Option<Arc<Endpoint>> {
        let old = self.endpoints.remove(id)?;
        for name in &old.names {
            let key = normalize(name);
            if let Some(set) = self.name_holders.get_mut(&key) {
                set.remove(id);
            }
            self.refresh_name(&key);
        }
        for a in &old.addresses {
            if let Some(set) = self.addr_holders.get_mut(a) {
                set.remove(id);
            }
            self.refresh_addr(*a);
        }
        Some(old)
    }

    /// Recomputes one name's addresses from the endpoints carrying it.
    fn refresh_name(&mut self, key: &str) {
        let Some(holders) = self.name_holders.get(key).filter(|h| !h.is_empty()) else {
            self.name_holders.remove(key);
            self.names.remove(key);
            return;
        };
        let mut list: Vec<IpAddr> = Vec::new();
        for ep in holders.iter().filter_map(|id| self.endpoints.get(id)) {
            for a in &ep.addresses {
                if !list.contains(a) {
                    list.push(*a);
                }
            }
        }
        self.names.insert(key.to_string(), list);
    }

    /// Recomputes who answers for one address.
    fn refresh_addr(&mut self, a: IpAddr) {
        let owner = self
            .addr_holders
            .get(&a)
            .and_then(|h| h.last())
            .and_then(|id| self.endpoints.get(id))
            .cloned();
        match owner {
            Some(ep) => {
                self.by_addr.insert(a, ep);
            }
            None => {
                self.addr_holders.remove(&a);
                self.by_addr.remove(&a);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> NetworkScope {
        NetworkScope {
            id: "n".into(),
            subnets: Vec::new(),
            internal: false,
        }
    }

    fn ep(id: &str, addrs: &[u8], names: &[&str]) -> Arc<Endpoint> {
        Arc::new(Endpoint {
            id: id.into(),
            container: id.into(),
            addresses: addrs.iter().map(|l| IpAddr::from([10, 3, 0, *l])).collect(),
            names: names.iter().map(|n| n.to_string()).collect(),
            ..Endpoint::default()
        })
    }

    /// The table built whole from the endpoints, as the delta must always give.
    fn whole(endpoints: &BTreeMap<String, Arc<Endpoint>>) -> NetState {
        let mut names: HashMap<String, Vec<IpAddr>> = HashMap::new();
        let mut by_addr = HashMap::new();
        for e in endpoints.values() {
            for n in &e.names {
                let list = names.entry(normalize(n)).or_default();
                for a in &e.addresses {
                    if !list.contains(a) {
                        list.push(*a);
                    }
                }
            }
            for a in &e.addresses {
                by_addr.insert(*a, Arc::clone(e));
            }
        }
        NetState {
            scope: Some(scope()),
            endpoints: endpoints.clone(),
            names,
            by_addr,
            ..NetState::default()
        }
    }

    fn assert_same(delta: &NetState, whole: &NetState) {
        assert_eq!(delta.names, whole.names);
        let owners = |n: &NetState| -> BTreeMap<IpAddr, String> {
            n.by_addr.iter().map(|(a, e)| (*a, e.id.clone())).collect()
        };
        assert_eq!(owners(delta), owners(whole));
        assert_eq!(
            delta.endpoints.keys().collect::<Vec<_>>(),
            whole.endpoints.keys().collect::<Vec<_>>()
        );
    }

    #[test]
    fn replicas_share_a_name_in_id_order() {
        let mut net = NetState::new(scope(), []);
        net.insert(ep("c", &[4], &["web", "proj-web-3"]));
        net.insert(ep("a", &[2], &["Web", "proj-web-1"]));
        net.insert(ep("b", &[3], &["web.", "proj-web-2"]));
        let ip = |l| IpAddr::from([10, 3, 0, l]);
        assert_eq!(net.names["web"], vec![ip(2), ip(3), ip(4)]);
        net.remove("b");
        assert_eq!(net.names["web"], vec![ip(2), ip(4)]);
        assert!(!net.names.contains_key("proj-web-2"));
        assert!(!net.by_addr.contains_key(&ip(3)));
        net.remove("a");
        net.remove("c");
        assert!(net.names.is_empty() && net.by_addr.is_empty());
        assert!(net.name_holders.is_empty() && net.addr_holders.is_empty());
    }

    #[test]
    fn a_shared_address_goes_back_to_the_remaining_holder() {
        let mut net = NetState::new(scope(), [ep("a", &[2], &["x"]), ep("b", &[2], &["y"])]);
        let ip = IpAddr::from([10, 3, 0, 2]);
        assert_eq!(net.by_addr[&ip].id, "b", "last in id order");
        assert_eq!(net.holders_of(&[ip], "b"), vec!["a".to_string()]);
        net.remove("b");
        assert_eq!(net.by_addr[&ip].id, "a");
        // Replacing an endpoint drops its old names and addresses.
        net.insert(ep("a", &[5], &["z"]));
        assert!(!net.by_addr.contains_key(&ip));
        assert!(!net.names.contains_key("x"));
        assert_eq!(net.names["z"], vec![IpAddr::from([10, 3, 0, 5])]);
    }

    #[test]
    fn any_sequence_of_changes_answers_as_the_whole_table() {
        // A small linear congruential sequence: the same adds, replaces and removes each run.
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |m: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % m
        };
        let pool = ["web", "db", "cache", "api", "WEB"];
        let mut net = NetState::new(scope(), []);
        let mut model: BTreeMap<String, Arc<Endpoint>> = BTreeMap::new();
        for _ in 0..2000 {
            let id = format!("e{}", next(12));
            if next(3) == 0 {
                assert_eq!(net.remove(&id).is_some(), model.remove(&id).is_some());
            } else {
                let addrs: Vec<u8> = (0..=next(2)).map(|_| next(16) as u8).collect();
                let names: Vec<&str> = (0..=next(2)).map(|_| pool[next(5) as usize]).collect();
                let e = ep(&id, &addrs, &names);
                model.insert(id, Arc::clone(&e));
                net.insert(e);
            }
            assert_same(&net, &whole(&model));
        }
    }
}
