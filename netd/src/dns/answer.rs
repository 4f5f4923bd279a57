//! What to do with one query from one client of one network: answer from the records,
//! forward, or refuse. Pure apart from the round-robin counter, so scoping is unit-tested
//! without sockets.

use std::net::{IpAddr, SocketAddr};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::records::{DnsRecords, NameAnswer, PtrAnswer};
use super::wire;

/// The UDP payload size we advertise in EDNS answers (the DNS flag day 2020 value).
pub const EDNS_PAYLOAD: u16 = 1232;

/// The decision for one query.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Send these bytes back.
    Reply(Vec<u8>),
    /// Forward the query upstream (to `servers`, or the host's upstreams when empty).
    Forward {
        /// Per-container upstreams (compose `dns:`).
        servers: Vec<SocketAddr>,
    },
    /// Say nothing (not a query, or too short to answer).
    Drop,
}

/// Answer knobs shared by every network's server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerConfig {
    /// TTL of local answers: short, since containers come and go.
    pub ttl: u32,
    /// Extra domain suffixes under which local names also answer (besides the host's search
    /// domains), e.g. a project domain.
    pub domains: Vec<String>,
}

impl Default for AnswerConfig {
    fn default() -> Self {
        Self {
            ttl: 5,
            domains: Vec::new(),
        }
    }
}

/// Decides what to do with `bytes` received from `src` on the server of `network`.
/// `search` is the host's current search domains. The parsed query comes back too, so the UDP
/// path can read the client's EDNS buffer size without parsing twice.
pub fn decide(
    records: &DnsRecords,
    network: &str,
    src: IpAddr,
    bytes: &[u8],
    search: &[String],
    config: &AnswerConfig,
) -> (Action, Option<Message>) {
    let msg = match Message::from_vec(bytes) {
        Ok(m) => m,
        Err(_) => {
            let reply = wire::error_response(bytes, wire::RCODE_FORMERR);
            let looks_like_query = bytes.len() >= 12 && bytes[2] & 0x80 == 0;
            return if looks_like_query && !reply.is_empty() {
                (Action::Reply(reply), None)
            } else {
                (Action::Drop, None)
            };
        }
    };
    if msg.metadata.message_type != MessageType::Query {
        return (Action::Drop, None);
    }
    let action = decide_msg(records, network, src, &msg, search, config);
    (action, Some(msg))
}

fn decide_msg(
    records: &DnsRecords,
    network: &str,
    src: IpAddr,
    msg: &Message,
    search: &[String],
    config: &AnswerConfig,
) -> Action {
    if msg.metadata.op_code != OpCode::Query {
        return Action::Reply(error(msg, ResponseCode::NotImp));
    }
    let [query] = msg.queries.as_slice() else {
        return Action::Reply(error(msg, ResponseCode::FormErr));
    };
    let Some(asker) = records.asker(network, src) else {
        tracing::debug!(network, %src, "dns query from outside the network refused");
        return Action::Reply(error(msg, ResponseCode::Refused));
    };
    let forward = || {
        if asker.may_forward {
            Action::Forward {
                servers: asker.dns_servers().to_vec(),
            }
        } else {
            Action::Reply(error(msg, ResponseCode::Refused))
        }
    };
    if query.query_class() != DNSClass::IN {
        return forward();
    }
    let name = query.name();
    if query.query_type() == RecordType::PTR
        && let Ok(net) = name.parse_arpa_name()
        && net.prefix_len() == net.max_prefix_len()
    {
        return match records.reverse(&asker, net.addr()) {
            PtrAnswer::Names(names) => {
                let records: Vec<Record> = names
                    .iter()
                    .filter_map(|n| Name::from_ascii(format!("{n}.")).ok())
                    .map(|target| {
                        Record::from_rdata(name.clone(), config.ttl, RData::PTR(PTR(target)))
                    })
                    .collect();
                Action::Reply(answer(msg, ResponseCode::NoError, records))
            }
            PtrAnswer::NoSuchAddress => {
                Action::Reply(answer(msg, ResponseCode::NXDomain, Vec::new()))
            }
            PtrAnswer::Unknown => forward(),
        };
    }
    let ascii = name.to_ascii();
    let suffixes: Vec<String> = search.iter().chain(&config.domains).cloned().collect();
    match records.resolve(&asker, &ascii, &suffixes) {
        NameAnswer::Known(addrs) => {
            let qtype = query.query_type();
            let records = addrs
                .into_iter()
                .filter_map(|a| match (a, qtype) {
                    (IpAddr::V4(v4), RecordType::A | RecordType::ANY) => Some(RData::A(A(v4))),
                    (IpAddr::V6(v6), RecordType::AAAA | RecordType::ANY) => {
                        Some(RData::AAAA(AAAA(v6)))
                    }
                    _ => None,
                })
                .map(|rd| Record::from_rdata(name.clone(), config.ttl, rd))
                .collect();
            // A known name without addresses of the asked type: NOERROR with no answer, so
            // the client moves on at once (no NXDOMAIN, no timeout).
            Action::Reply(answer(msg, ResponseCode::NoError, records))
        }
        NameAnswer::Unknown => forward(),
    }
}

fn base(msg: &Message, code: ResponseCode) -> Message {
    let mut out = Message::response(msg.metadata.id, msg.metadata.op_code);
    out.metadata.recursion_desired = msg.metadata.recursion_desired;
    out.metadata.recursion_available = true;
    out.metadata.checking_disabled = msg.metadata.checking_disabled;
    out.metadata.response_code = code;
    out.add_queries(msg.queries.iter().cloned());
    if msg.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        out.set_edns(edns);
    }
    out
}

fn encode(msg: &Message, fallback_for: &Message) -> Vec<u8> {
    match msg.to_vec() {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "dns: cannot encode an answer; SERVFAIL");
            let mut f = base(fallback_for, ResponseCode::ServFail);
            f.edns = None;
            f.to_vec().unwrap_or_default()
        }
    }
}

fn error(msg: &Message, code: ResponseCode) -> Vec<u8> {
    encode(&base(msg, code), msg)
}

fn answer(msg: &Message, code: ResponseCode, records: Vec<Record>) -> Vec<u8> {
    let mut out = base(msg, code);
    out.metadata.authoritative = true;
    out.insert_answers(records);
    encode(&out, msg)
}

/// The largest UDP answer the client accepts: its EDNS size (capped at ours) or 512.
pub fn client_udp_limit(msg: Option<&Message>) -> usize {
    usize::from(msg.map_or(512, |m| m.max_payload().min(EDNS_PAYLOAD.max(512))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::records::{Endpoint, NetworkScope};

    fn records() -> DnsRecords {
        let r = DnsRecords::new();
        r.add_network(NetworkScope {
            id: "n".into(),
            subnets: vec!["10.9.0.0/24".parse().unwrap()],
            internal: false,
        });
        r.add_network(NetworkScope {
            id: "i".into(),
            subnets: vec!["10.8.0.0/24".parse().unwrap()],
            internal: true,
        });
        r.add_endpoint(
            "n",
            Endpoint {
                id: "c1".into(),
                container: "c1".into(),
                addresses: vec!["10.9.0.5".parse().unwrap()],
                names: vec!["proj-db-1".into(), "db".into()],
                ..Default::default()
            },
        )
        .unwrap();
        r
    }

    fn query(name: &str, t: RecordType) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.recursion_desired = true;
        m.add_query(hickory_proto::op::Query::query(
            Name::from_ascii(name).unwrap(),
            t,
        ));
        m.to_vec().unwrap()
    }

    fn reply(a: Action) -> Message {
        match a {
            Action::Reply(b) => Message::from_vec(&b).unwrap(),
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    #[test]
    fn answers_and_scopes() {
        let r = records();
        let cfg = AnswerConfig::default();
        let src: IpAddr = "10.9.0.7".parse().unwrap();
        let m = reply(decide(&r, "n", src, &query("DB.", RecordType::A), &[], &cfg).0);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(m.answers.len(), 1);
        let m = reply(decide(&r, "n", src, &query("db", RecordType::AAAA), &[], &cfg).0);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.answers.is_empty());
        let m = reply(
            decide(
                &r,
                "n",
                src,
                &query("5.0.9.10.in-addr.arpa.", RecordType::PTR),
                &[],
                &cfg,
            )
            .0,
        );
        assert_eq!(m.answers.len(), 2);
        let m = reply(
            decide(
                &r,
                "n",
                src,
                &query("6.0.9.10.in-addr.arpa.", RecordType::PTR),
                &[],
                &cfg,
            )
            .0,
        );
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        let (a, _) = decide(
            &r,
            "n",
            src,
            &query("example.test.", RecordType::A),
            &[],
            &cfg,
        );
        assert_eq!(a, Action::Forward { servers: vec![] });
        let outsider: IpAddr = "10.8.0.7".parse().unwrap();
        let m = reply(decide(&r, "n", outsider, &query("db.", RecordType::A), &[], &cfg).0);
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
        let m = reply(
            decide(
                &r,
                "i",
                outsider,
                &query("example.test.", RecordType::A),
                &[],
                &cfg,
            )
            .0,
        );
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::Refused,
            "internal networks do not forward"
        );
    }

    #[test]
    fn garbage_is_formerr_or_dropped() {
        let r = records();
        let cfg = AnswerConfig::default();
        let src: IpAddr = "10.9.0.7".parse().unwrap();
        assert_eq!(decide(&r, "n", src, &[1, 2, 3], &[], &cfg).0, Action::Drop);
        let bad = [0x12, 0x34, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0, 63];
        let m = decide(&r, "n", src, &bad, &[], &cfg).0;
        assert!(matches!(m, Action::Reply(b) if wire::rcode(&b) == wire::RCODE_FORMERR));
    }
}
