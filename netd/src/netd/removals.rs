//! The endpoints netd removed lately (detached, or forgotten by reconcile when their namespace
//! died), numbered, so that a caller holding something per endpoint (the daemon's DNS names)
//! can follow what went without copying and comparing the whole state.

use std::collections::{HashSet, VecDeque};

use super::Netd;
use crate::state::Endpoint;

/// How many removals are kept; a caller further behind is told to look at everything.
const KEEP: usize = 4096;

/// The latest removals: (number, network id, container).
#[derive(Default)]
pub(crate) struct Removals {
    next: u64,
    recent: VecDeque<(u64, String, String)>,
}

impl Removals {
    /// Notes the removal of `e`.
    pub(crate) fn push(&mut self, e: &Endpoint) {
        if self.recent.len() == KEEP {
            self.recent.pop_front();
        }
        self.recent
            .push_back((self.next, e.network.clone(), e.container.clone()));
        self.next += 1;
    }

    /// The removals numbered `cursor` and later, or `None` when some of them were dropped.
    fn since(&self, cursor: u64) -> Option<Vec<(String, String)>> {
        let first = self.recent.front().map_or(self.next, |r| r.0);
        if cursor < first {
            return None;
        }
        Some(
            self.recent
                .iter()
                .filter(|r| r.0 >= cursor)
                .map(|(_, n, c)| (n.clone(), c.clone()))
                .collect(),
        )
    }
}

/// What [`Netd::removed_since`] answers.
pub struct Removed {
    /// The cursor to pass next time.
    pub cursor: u64,
    /// (network id, container) of each endpoint removed since the cursor given, oldest
    /// first; `None` when more were removed than netd keeps (look at everything instead).
    pub endpoints: Option<Vec<(String, String)>>,
}

impl Netd {
    /// The cursor that [`Netd::removed_since`] answers everything after: the number the next
    /// removal will get.
    pub async fn removal_cursor(&self) -> u64 {
        self.lock().await.removals.next
    }

    /// The endpoints removed (detached or forgotten) since `cursor`.
    pub async fn removed_since(&self, cursor: u64) -> Removed {
        let inner = self.lock().await;
        Removed {
            cursor: inner.removals.next,
            endpoints: inner.removals.since(cursor),
        }
    }

    /// The endpoints of the given containers, copied; one pass over the endpoints whatever
    /// their number.
    pub async fn endpoints_of_containers(&self, containers: &HashSet<&str>) -> Vec<Endpoint> {
        if containers.is_empty() {
            return Vec::new();
        }
        self.lock()
            .await
            .state
            .endpoints
            .iter()
            .filter(|e| containers.contains(e.container.as_str()))
            .cloned()
            .collect()
    }

    /// A network by id, exact name, or unique id prefix (as [`crate::state::State::find_network`]),
    /// copied alone rather than with the whole state.
    pub async fn find_network(&self, key: &str) -> Option<crate::state::NetworkSpec> {
        self.lock().await.state.find_network(key).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::NetnsRef;

    fn ep(c: &str) -> Endpoint {
        Endpoint {
            container: c.into(),
            network: "n".into(),
            netns: NetnsRef::Pid(1),
            ifname: "eth0".into(),
            host_ifname: format!("vb{c}"),
            address: std::net::Ipv4Addr::new(10, 0, 0, 2),
            mac: String::new(),
            default_route: true,
            ports: Vec::new(),
            aliases: Vec::new(),
            address6: None,
            link_local_ips: Vec::new(),
            sysctls: Vec::new(),
        }
    }

    #[test]
    fn removals_since_a_cursor_and_a_cursor_left_behind() {
        let mut r = Removals::default();
        assert_eq!(r.since(0), Some(vec![]));
        r.push(&ep("a"));
        r.push(&ep("b"));
        let names = |v: Option<Vec<(String, String)>>| {
            v.map(|v| v.into_iter().map(|(_, c)| c).collect::<Vec<_>>())
        };
        assert_eq!(names(r.since(0)), Some(vec!["a".to_string(), "b".into()]));
        assert_eq!(names(r.since(1)), Some(vec!["b".to_string()]));
        assert_eq!(names(r.since(2)), Some(vec![]));
        for i in 0..KEEP {
            r.push(&ep(&format!("c{i}")));
        }
        // Removals 0 and 1 were dropped: a caller at 1 must look at everything.
        assert_eq!(r.since(1), None);
        assert_eq!(r.since(2).map(|v| v.len()), Some(KEEP));
    }
}
