//! `berth network …` end to end as root with the real binary and daemon in a netns of the
//! test's own (harness in `berth_tests::host`): what each command prints and its status, including the
//! daemon's refusals (a taken name, an unknown network, a network in use), which reach the
//! terminal as the daemon's words with status 125.

use berth_tests::host::{self, Host};

use std::process::Output;

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A network namespace standing in for a container's, deleted on drop.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

#[test_with::root()]
#[test]
fn network_commands_print_and_refuse_as_before() {
    host::require_tools();
    let h = Host::new("ncli");
    let id = h.ok(&[
        "network",
        "create",
        "--subnet",
        "10.231.5.0/24",
        "--label",
        "tier=db",
        "--mtu",
        "1400",
        "neta",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64, "{id}");
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");

    // A taken name, an unsupported driver: status 125 and the daemon's words.
    let dup = h.berth(&["network", "create", "neta"]);
    assert_eq!(dup.status.code(), Some(125), "{dup:?}");
    assert_eq!(
        err(&dup),
        "berth: cannot create network neta: network \"neta\" already exists\n"
    );
    let drv = h.berth(&["network", "create", "-d", "overlay", "netx"]);
    assert_eq!(drv.status.code(), Some(125));
    assert_eq!(
        err(&drv),
        "berth: network driver \"overlay\" is not supported (only \"bridge\")\n"
    );

    let ls = h.ok(&["network", "ls"]);
    assert!(ls.starts_with("NETWORK ID    NAME"), "{ls}");
    assert!(
        ls.contains(&format!(
            "{}  neta                  bridge   10.231.5.0/24       10.231.5.1       false",
            &id[..12]
        )),
        "{ls}"
    );
    assert_eq!(h.ok(&["network", "ls", "-q"]), format!("{}\n", &id[..12]));

    let inspect = h.ok(&["network", "inspect", "neta"]);
    let v: serde_json::Value = serde_json::from_str(inspect.trim()).expect("inspect json");
    assert_eq!(v[0]["Id"], id);
    assert_eq!(v[0]["Subnet"], "10.231.5.0/24");
    assert_eq!(v[0]["Gateway"], "10.231.5.1");
    assert_eq!(v[0]["MTU"], 1400);
    assert_eq!(v[0]["Labels"]["tier"], "db");
    assert_eq!(v[0]["EnableIPv6"], false);
    assert!(v[0]["Bridge"].as_str().is_some_and(|b| !b.is_empty()));
    let missing = h.berth(&["network", "inspect", "neta", "nope"]);
    assert_eq!(missing.status.code(), Some(125));
    assert_eq!(out(&missing), "");
    assert_eq!(err(&missing), "berth: no such network: nope\n");

    // On the wire: Docker's status for each kind, and the kind beside the message.
    let sock = h.run.join("berth.sock");
    let curl = |args: &str| {
        let o = h.sh(&format!(
            "curl -s -w ' %{{http_code}}' --unix-socket {} {args}",
            sock.display()
        ));
        out(&o)
    };
    assert_eq!(
        curl("http://b/v1/networks/nope"),
        r#"{"kind":"not_found","message":"no such network: nope"} 404"#
    );
    let dup = curl(
        r#"-X POST -H 'content-type: application/json' -d '{"Name":"neta"}' http://b/v1/networks/create"#,
    );
    assert!(
        dup.starts_with(r#"{"kind":"conflict","#) && dup.ends_with(" 409"),
        "{dup}"
    );
    let opt = curl(
        r#"-X POST -d '{"Name":"x","Options":{"com.docker.network.bridge.inhibit_ipv4":"true"}}' http://b/v1/networks/create"#,
    );
    assert!(
        opt.starts_with(r#"{"kind":"invalid_argument","#) && opt.ends_with(" 400"),
        "{opt}"
    );
    let one = curl("http://b/v1/networks/neta");
    let v: serde_json::Value =
        serde_json::from_str(one.trim_end_matches(" 200")).expect("network json");
    assert_eq!(v["IPAM"]["Config"][0]["Subnet"], "10.231.5.0/24");
    assert_eq!(v["Options"]["com.docker.network.driver.mtu"], "1400");

    // A namespace joined by hand: connect prints the endpoint; the network is then in use.
    let ns = Netns(format!("bt-ncli-c-{}", std::process::id()));
    let made = std::process::Command::new("ip")
        .args(["netns", "add", &ns.0])
        .status();
    assert!(made.is_ok_and(|s| s.success()));
    let netns = format!("/run/netns/{}", ns.0);
    let c = h.ok(&[
        "network",
        "connect",
        "--netns",
        &netns,
        "--ip",
        "10.231.5.9",
        "--link-local-ip",
        "169.254.9.9",
        "neta",
        "ctr1",
    ]);
    assert!(c.starts_with("eth0 10.231.5.9 "), "{c}");
    let addr = std::process::Command::new("ip")
        .args(["-n", &ns.0, "-4", "addr", "show", "eth0"])
        .output()
        .expect("ip addr");
    let addr = String::from_utf8_lossy(&addr.stdout);
    assert!(
        addr.contains("inet 169.254.9.9/16"),
        "--link-local-ip: {addr}"
    );
    let forbidden = curl("-X DELETE http://b/v1/networks/neta");
    assert!(forbidden.ends_with(" 403"), "{forbidden}");
    let inuse = h.berth(&["network", "rm", "neta"]);
    assert_eq!(inuse.status.code(), Some(125));
    assert_eq!(
        err(&inuse),
        "berth: cannot remove network neta: network neta is in use by container(s) ctr1\n"
    );
    let ep = h.ok(&["network", "inspect", "neta"]);
    assert!(ep.contains("\"address\": \"10.231.5.9\""), "{ep}");
    h.ok(&["network", "disconnect", "neta", "ctr1"]);
    let again = h.berth(&["network", "disconnect", "neta", "ctr1"]);
    assert_eq!(again.status.code(), Some(125));
    assert_eq!(
        err(&again),
        "berth: cannot disconnect ctr1 from network neta: container ctr1 is not attached to network neta\n"
    );

    // rm goes on past a failure and says which; prune deletes what has no endpoints.
    h.ok(&["network", "create", "netb"]);
    let rm = h.berth(&["network", "rm", "nope", "netb"]);
    assert_eq!(rm.status.code(), Some(125));
    assert_eq!(out(&rm), "netb\n");
    assert_eq!(
        err(&rm),
        "berth: cannot remove network nope: no such network: nope\n"
    );
    assert_eq!(h.ok(&["network", "prune"]), "Deleted network neta\n");
    assert_eq!(h.ok(&["network", "ls", "-q"]), "");
    // Typed as with docker: `-f` is accepted (berth never asks).
    h.ok(&["network", "create", "netc"]);
    assert_eq!(h.ok(&["network", "prune", "-f"]), "Deleted network netc\n");
    let rec = h.ok(&["network", "reconcile"]);
    assert!(rec.contains("reconcile took "), "{rec}");
}
