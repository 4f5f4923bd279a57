//! The embedded DNS server's handling of untrusted datagrams: the answer path (hickory's
//! parser, scoping by source address, local answers, PTR, refusals, FORMERR synthesis), the
//! byte-level helpers of the forwarding path on queries and on upstream responses, and the UDP
//! truncation. Besides panics, a finding is an answer we would send that is not a valid DNS
//! response to the query's id, or a truncated answer without the TC bit.
#![no_main]

use std::net::IpAddr;
use std::sync::LazyLock;

use berth_netd::dns::answer::{Action, AnswerConfig, client_udp_limit, decide};
use berth_netd::dns::records::{DnsRecords, Endpoint, LinkAlias, NetworkScope};
use berth_netd::dns::wire;
use hickory_proto::op::{Message, MessageType};
use libfuzzer_sys::fuzz_target;

/// Two networks (one internal) with a few containers, links and per-container upstreams.
static RECORDS: LazyLock<DnsRecords> = LazyLock::new(|| {
    let r = DnsRecords::new();
    let scope = |id: &str, subnet: &str, internal| NetworkScope {
        id: id.into(),
        subnets: vec![subnet.parse().expect("subnet")],
        internal,
    };
    r.add_network(scope("n", "10.9.0.0/24", false));
    r.add_network(scope("i", "10.8.0.0/24", true));
    r.add_network(NetworkScope {
        id: "v6".into(),
        subnets: vec!["fd00:9::/64".parse().expect("subnet")],
        internal: false,
    });
    let ep = |id: &str, addrs: &[&str], names: &[&str]| Endpoint {
        id: id.into(),
        container: id.into(),
        addresses: addrs.iter().map(|a| a.parse().expect("addr")).collect(),
        names: names.iter().map(|n| n.to_string()).collect(),
        ..Default::default()
    };
    let mut web = ep("web", &["10.9.0.5"], &["proj-web-1", "web", "www.example"]);
    web.links = vec![LinkAlias {
        alias: "database".into(),
        target: "db".into(),
    }];
    web.dns_servers = vec!["127.0.0.1:53".parse().expect("addr")];
    r.add_endpoint("n", web).expect("endpoint");
    r.add_endpoint("n", ep("db", &["10.9.0.6"], &["proj-db-1", "db"]))
        .expect("endpoint");
    r.add_endpoint("i", ep("cache", &["10.8.0.7"], &["proj-cache-1", "cache"]))
        .expect("endpoint");
    r.add_endpoint("v6", ep("six", &["fd00:9::5"], &["proj-six-1", "six"]))
        .expect("endpoint");
    r
});

/// A well-formed query `web. A IN`, id 0x1234, RD: the one the forwarding path sent upstream.
const QUERY: [u8; 21] = [
    0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'w', b'e', b'b', 0, 0, 1, 0, 1,
];

fn check_reply(query: &[u8], reply: &[u8], msg: Option<&Message>) {
    let parsed = Message::from_vec(reply)
        .unwrap_or_else(|e| panic!("our answer does not parse ({e}): {reply:02x?}"));
    assert_eq!(parsed.metadata.message_type, MessageType::Response);
    assert_eq!(
        &reply[..2],
        &query[..2],
        "answer id differs from the query's"
    );
    let limit = client_udp_limit(msg);
    if reply.len() > limit {
        let cut = wire::truncate_response(reply);
        assert!(cut.len() <= limit, "truncated answer still too long");
        assert!(wire::truncated(&cut), "truncated answer without TC");
        if let Err(e) = Message::from_vec(&cut) {
            panic!("truncated answer does not parse ({e}): {cut:02x?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let config = AnswerConfig {
        ttl: 5,
        domains: vec!["proj.internal".into()],
    };
    let search = ["example.com".to_string()];
    let sources: [(&str, IpAddr); 4] = [
        ("n", "10.9.0.5".parse().expect("addr")),
        ("i", "10.8.0.7".parse().expect("addr")),
        ("n", "192.0.2.1".parse().expect("addr")),
        ("v6", "fd00:9::5".parse().expect("addr")),
    ];
    for (network, src) in sources {
        let (action, msg) = decide(&RECORDS, network, src, data, &search, &config);
        if let Action::Reply(reply) = action {
            check_reply(data, &reply, msg.as_ref());
        }
    }

    // The forwarding path on the client's query.
    let qend = wire::question_end(data);
    if let Some(end) = qend {
        assert!(
            end <= data.len() && end >= 17,
            "question end {end} out of range"
        );
    }
    let err = wire::error_response(data, wire::RCODE_SERVFAIL);
    if !err.is_empty() {
        assert_eq!(wire::rcode(&err), wire::RCODE_SERVFAIL);
        assert_eq!(&err[..2], &data[..2]);
    }

    // An upstream's response to our QUERY.
    let _ = wire::rcode(data);
    let _ = wire::truncated(data);
    if wire::answers(data, &QUERY, QUERY.len(), 0x1234) {
        assert!(data.len() >= QUERY.len());
    }
    if let Some(end) = qend {
        let _ = wire::answers(&QUERY, data, end, 0x1234);
    }
    let cut = wire::truncate_response(data);
    if !cut.is_empty() {
        assert!(wire::truncated(&cut));
        assert!(cut.len() <= data.len().max(12));
    }
});
