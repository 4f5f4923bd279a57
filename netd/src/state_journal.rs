//! The journal of netd's state: the changes since `state.json` was last written whole, one JSON
//! line each, so that attaching or detaching one container writes a few hundred bytes instead
//! of the whole state (which grows with every endpoint, making a stack's up quadratic).
//!
//! A change is found by comparing the state before and after (networks by id, endpoints by
//! host interface name); a change the journal cannot express exactly (endpoints reordered) is
//! reported as `None`, and the caller writes the state whole.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::state::{Endpoint, NetworkSpec, State};

/// One change of the state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// A network added or changed.
    Network(NetworkSpec),
    /// A network removed, by id.
    NetworkGone(String),
    /// An endpoint changed in place, or appended when its host interface is new.
    Endpoint(Endpoint),
    /// An endpoint removed, by host interface name.
    EndpointGone(String),
}

/// Applies one change.
pub fn apply(state: &mut State, op: Op) {
    match op {
        Op::Network(n) => {
            state.networks.insert(n.id.clone(), n);
        }
        Op::NetworkGone(id) => {
            state.networks.remove(&id);
        }
        Op::Endpoint(e) => match state
            .endpoints
            .iter_mut()
            .find(|x| x.host_ifname == e.host_ifname)
        {
            Some(slot) => *slot = e,
            None => state.endpoints.push(e),
        },
        Op::EndpointGone(host) => state.endpoints.retain(|x| x.host_ifname != host),
    }
}

/// The changes that turn `old` into `new`, or `None` when they would not give exactly `new`.
pub fn diff(old: &State, new: &State) -> Option<Vec<Op>> {
    let mut ops = Vec::new();
    for (id, n) in &new.networks {
        if old.networks.get(id) != Some(n) {
            ops.push(Op::Network(n.clone()));
        }
    }
    for id in old.networks.keys() {
        if !new.networks.contains_key(id) {
            ops.push(Op::NetworkGone(id.clone()));
        }
    }
    let before: HashMap<&str, &Endpoint> = old
        .endpoints
        .iter()
        .map(|e| (e.host_ifname.as_str(), e))
        .collect();
    let after: HashMap<&str, &Endpoint> = new
        .endpoints
        .iter()
        .map(|e| (e.host_ifname.as_str(), e))
        .collect();
    if before.len() != old.endpoints.len() || after.len() != new.endpoints.len() {
        return None;
    }
    for e in &old.endpoints {
        if !after.contains_key(e.host_ifname.as_str()) {
            ops.push(Op::EndpointGone(e.host_ifname.clone()));
        }
    }
    for e in &new.endpoints {
        if before.get(e.host_ifname.as_str()) != Some(&e) {
            ops.push(Op::Endpoint(e.clone()));
        }
    }
    // Order matters (attach order decides eth numbering on restore): check the result.
    let mut check = old.clone();
    for op in ops.iter().cloned() {
        apply(&mut check, op);
    }
    (check == *new).then_some(ops)
}

/// The journal's lines for these changes (each ends in a newline).
pub fn encode(ops: &[Op]) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::new();
    for op in ops {
        serde_json::to_writer(&mut out, op)?;
        out.push(b'\n');
    }
    Ok(out)
}

/// Replays a journal onto its base. A last line without its newline is a write cut short
/// (a crash mid-append) and is ignored; any other line that does not parse is an error.
/// Returns whether every line was whole.
pub fn replay(state: &mut State, bytes: &[u8]) -> Result<bool, serde_json::Error> {
    let mut lines = bytes.split_inclusive(|b| *b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let complete = line.ends_with(b"\n");
        if !complete && lines.peek().is_none() {
            return Ok(false);
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        apply(state, serde_json::from_slice(line)?);
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::NetnsRef;
    use std::collections::BTreeMap;
    use std::net::Ipv4Addr;

    fn net(id: &str) -> NetworkSpec {
        NetworkSpec {
            id: id.into(),
            name: format!("n{id}"),
            bridge: format!("berth-{id}"),
            subnet: "10.201.0.0/24".parse().unwrap(),
            gateway: Ipv4Addr::new(10, 201, 0, 1),
            ip_range: None,
            internal: false,
            mtu: None,
            labels: BTreeMap::new(),
            created: 1,
            subnet6: None,
            gateway6: None,
            ip_range6: None,
            aux_addresses: Default::default(),
            options: Default::default(),
        }
    }

    fn ep(c: &str, n: &str, last: u8) -> Endpoint {
        Endpoint {
            container: c.into(),
            network: n.into(),
            netns: NetnsRef::Pid(u32::from(last)),
            ifname: "eth0".into(),
            host_ifname: format!("vb{c}{n}"),
            address: Ipv4Addr::new(10, 201, 0, last),
            mac: String::new(),
            default_route: true,
            ports: Vec::new(),
            aliases: vec![c.into()],
            address6: None,
            link_local_ips: Vec::new(),
            sysctls: Vec::new(),
        }
    }

    #[test]
    fn one_attach_is_one_line_and_replays() {
        let mut old = State::default();
        old.networks.insert("a".into(), net("a"));
        old.endpoints = (2..40).map(|i| ep(&format!("c{i}"), "a", i)).collect();
        let mut new = old.clone();
        new.endpoints.push(ep("x", "a", 99));
        let ops = diff(&old, &new).expect("expressible");
        assert_eq!(ops, vec![Op::Endpoint(ep("x", "a", 99))]);
        let mut back = old.clone();
        replay(&mut back, &encode(&ops).unwrap()).unwrap();
        assert_eq!(back, new);
    }

    #[test]
    fn removals_changes_and_networks_replay() {
        let mut old = State::default();
        old.networks.insert("a".into(), net("a"));
        old.networks.insert("b".into(), net("b"));
        old.endpoints = vec![ep("1", "a", 2), ep("2", "a", 3), ep("3", "b", 4)];
        let mut new = old.clone();
        new.networks.remove("b");
        new.networks.insert("c".into(), net("c"));
        new.endpoints.retain(|e| e.network != "b");
        new.endpoints[0].ports.push(crate::ports::PortMapping {
            host_ip: None,
            host_port: 8080,
            container_port: 80,
            count: 1,
            protocol: crate::ports::Protocol::Tcp,
        });
        new.endpoints.remove(1);
        let ops = diff(&old, &new).expect("expressible");
        let mut back = old.clone();
        replay(&mut back, &encode(&ops).unwrap()).unwrap();
        assert_eq!(back, new);
    }

    #[test]
    fn reordering_is_not_journalled() {
        let old = State {
            endpoints: vec![ep("1", "a", 2), ep("2", "a", 3)],
            ..State::default()
        };
        let mut new = old.clone();
        new.endpoints.reverse();
        assert!(diff(&old, &new).is_none());
    }

    #[test]
    fn a_torn_last_line_is_ignored_and_other_bad_lines_fail() {
        let base = State::default();
        let ops = vec![Op::Endpoint(ep("1", "a", 2)), Op::Endpoint(ep("2", "a", 3))];
        let mut bytes = encode(&ops).unwrap();
        bytes.truncate(bytes.len() - 10);
        let mut back = base.clone();
        assert!(!replay(&mut back, &bytes).unwrap());
        assert_eq!(back.endpoints, vec![ep("1", "a", 2)]);
        let mut bad = b"{not json}\n".to_vec();
        bad.extend(encode(&ops).unwrap());
        assert!(replay(&mut base.clone(), &bad).is_err());
    }
}
