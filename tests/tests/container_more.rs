//! Single containers beyond the basics: bridge networks and published ports for
//! `berth container run`, anonymous and named volumes, `commit`, `ls --format`. Each test runs
//! its berth instance in a network namespace of its own (harness in `berth_tests::host`), so bridges,
//! nft rules and published ports never touch the host's network.

use berth_tests::host::{self, Host};

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Retries `f` for up to `secs` seconds until it returns true.
fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    false
}

/// The address `.last` in the /24 of an endpoint's address.
fn ip_in(ep: &serde_json::Value, last: u8) -> String {
    let a = ep["address"].as_str().unwrap_or_default();
    let (net, _) = a.rsplit_once('.').unwrap_or((a, ""));
    format!("{net}.{last}")
}

fn endpoints(h: &Host, net: &str) -> Vec<serde_json::Value> {
    let out = h.ok(&["network", "inspect", net]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("inspect json");
    v[0]["Endpoints"].as_array().cloned().unwrap_or_default()
}

#[test_with::root()]
#[test]
fn containers_on_a_network_reach_each_other_by_name_and_publish_ports() {
    host::require_tools();
    let h = Host::new("cnet");
    h.busybox_image();
    h.ok(&["network", "create", "appnet"]);
    let web = h.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "appnet",
        "--network-alias",
        "www",
        "-p",
        "18080:80",
        "busybox:e2e",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/var/www",
    ]);
    let web_id = web.trim().to_string();

    // A second container on the same network finds web by name and by alias (embedded DNS).
    let mut last = String::new();
    let ok = eventually(20, || {
        let o = h.berth(&[
            "container",
            "run",
            "--rm",
            "--network",
            "appnet",
            "busybox:e2e",
            "sh",
            "-c",
            "timeout 5 wget -qO- http://web/ && timeout 5 wget -qO- http://www/",
        ]);
        last = text(&o);
        o.status.success() && last.matches("hello from web").count() == 2
    });
    assert!(ok, "by name: {last}");
    // The published port answers on the host's loopback (DNAT).
    let curl = h.sh("curl -sS --max-time 5 http://127.0.0.1:18080/");
    assert!(text(&curl).contains("hello from web"), "{}", text(&curl));
    // The foreground --rm clients left no endpoint behind: only web is on the network.
    let eps = endpoints(&h, "appnet");
    assert_eq!(eps.len(), 1, "{eps:?}");
    // A fixed address and MAC.
    let o = h.ok(&[
        "container",
        "run",
        "--rm",
        "--network",
        "appnet",
        "--ip",
        &ip_in(&eps[0], 200),
        "--mac-address",
        "02:42:ac:11:00:c8",
        "busybox:e2e",
        "sh",
        "-c",
        "ip -o -4 addr show eth0; cat /sys/class/net/eth0/address",
    ]);
    assert!(o.contains(&format!("{}/", ip_in(&eps[0], 200))), "{o}");
    assert!(o.contains("02:42:ac:11:00:c8"), "{o}");
    assert_eq!(eps[0]["container"], web_id.as_str());

    // -p alone means the default `bridge` network, made on first use.
    let b1 = h.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        "b1",
        "-p",
        "127.0.0.1:18081:80",
        "busybox:e2e",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/var/www",
    ]);
    let b1_id = b1.trim().to_string();
    let ok = eventually(20, || {
        text(&h.sh("curl -sS --max-time 5 http://127.0.0.1:18081/")).contains("hello from web")
    });
    assert!(ok, "published on the default bridge");
    assert!(h.ok(&["network", "ls"]).contains("bridge"));
    // On both networks: both names resolve, through eth0 and eth1.
    let both = h.ok(&[
        "container",
        "run",
        "--rm",
        "--network",
        "appnet",
        "--network",
        "bridge",
        "busybox:e2e",
        "sh",
        "-c",
        "timeout 5 wget -qO- http://web/ && timeout 5 wget -qO- http://b1/ && ls /sys/class/net",
    ]);
    assert_eq!(both.matches("hello from web").count(), 2, "{both}");
    assert!(both.contains("eth1"), "{both}");
    // Not on the same network: b1 does not resolve web.
    let o = h.berth(&["container", "exec", "b1", "nslookup", "web"]);
    assert!(!o.status.success(), "{}", text(&o));

    // A detached --rm container is detached by the daemon when it exits.
    h.ok(&[
        "container",
        "run",
        "-d",
        "--rm",
        "--network",
        "appnet",
        "busybox:e2e",
        "sleep",
        "1",
    ]);
    assert!(
        eventually(20, || endpoints(&h, "appnet").len() == 1),
        "the --rm -d container's endpoint was swept"
    );

    // Errors name what is wrong and leave nothing behind.
    let o = h.berth(&[
        "container",
        "run",
        "--rm",
        "--network",
        "nosuchnet",
        "busybox:e2e",
        "true",
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("no such network: nosuchnet"),
        "{}",
        text(&o)
    );
    let o = h.berth(&[
        "container",
        "run",
        "--rm",
        "--network",
        "host",
        "-p",
        "1:1",
        "busybox:e2e",
        "true",
    ]);
    assert!(text(&o).contains("needs a bridge network"), "{}", text(&o));

    // -p without a host port picks a free one (shown by `port`).
    h.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        "eph",
        "--network",
        "appnet",
        "-p",
        "80",
        "busybox:e2e",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/var/www",
    ]);
    let bound = h.ok(&["container", "port", "eph", "80"]);
    let url = format!(
        "http://127.0.0.1:{}/",
        bound.trim().rsplit(':').next().unwrap_or("")
    );
    let ok = eventually(20, || {
        text(&h.sh(&format!("curl -sS --max-time 5 {url}"))).contains("hello from web")
    });
    assert!(ok, "ephemeral port {bound}");
    h.ok(&["container", "rm", "-f", "eph"]);

    // --add-host (host-gateway is the network's gateway) and --dns-search on a bridge network,
    // and --dns on a container without one.
    let files = h.ok(&[
        "container",
        "run",
        "--rm",
        "--network",
        "appnet",
        "--add-host",
        "gw:host-gateway",
        "--add-host",
        "db.local:10.9.9.9",
        "--dns-search",
        "example.test",
        "busybox:e2e",
        "sh",
        "-c",
        "cat /etc/hosts /etc/resolv.conf",
    ]);
    assert!(files.contains("10.9.9.9\tdb.local"), "{files}");
    assert!(
        files
            .lines()
            .any(|l| l.ends_with("\tgw") && l.starts_with("10.")),
        "{files}"
    );
    assert!(files.contains("search example.test"), "{files}");
    let files = h.ok(&[
        "container",
        "run",
        "--rm",
        "--network",
        "none",
        "--add-host",
        "x:1.2.3.4",
        "--dns",
        "10.0.0.53",
        "--dns-option",
        "ndots:3",
        "busybox:e2e",
        "sh",
        "-c",
        "cat /etc/hosts /etc/resolv.conf",
    ]);
    assert!(files.contains("1.2.3.4\tx"), "{files}");
    assert!(
        files.contains("nameserver 10.0.0.53") && files.contains("options ndots:3"),
        "{files}"
    );
    assert_eq!(files.matches("nameserver").count(), 1, "{files}");
    // --dns on a bridge network: the embedded DNS still answers the network's names and
    // forwards the rest to that server (here dnsmasq on a loopback address of the simulated
    // host, which is where netd forwards from), not to the host's resolvers.
    let pid_file = h.stack.join("dnsmasq.pid");
    let up = h.sh(&format!(
        "dnsmasq --conf-file=/dev/null --no-resolv --no-hosts --bind-interfaces \
         --listen-address=127.0.0.54 --port=53 --address=/upstream.test/10.77.0.7 \
         --pid-file={}",
        pid_file.display()
    ));
    assert!(up.status.success(), "dnsmasq: {}", text(&up));
    let ready = eventually(10, || {
        text(&h.sh("dig +short +time=1 +tries=1 @127.0.0.54 upstream.test")).contains("10.77.0.7")
    });
    assert!(ready, "dnsmasq answers");
    let web_ip = endpoints(&h, "appnet")[0]["address"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let o = h.berth(&[
        "container",
        "run",
        "--rm",
        "--network",
        "appnet",
        "--dns",
        "127.0.0.54",
        "busybox:e2e",
        "sh",
        "-c",
        "nslookup -type=a upstream.test; nslookup -type=a web; cat /etc/resolv.conf",
    ]);
    if let Ok(pid) = std::fs::read_to_string(&pid_file) {
        let _ = h.sh(&format!("kill {}", pid.trim()));
    }
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("10.77.0.7"), "forwarded to --dns: {out}");
    assert!(
        !web_ip.is_empty() && out.contains(&web_ip),
        "{web_ip} by name: {out}"
    );
    assert!(
        !out.contains("nameserver 127.0.0.54"),
        "the embedded DNS stays the nameserver: {out}"
    );

    // Without --network a container is on the default bridge network, as with Docker.
    let out = h.ok(&[
        "container",
        "run",
        "--rm",
        "busybox:e2e",
        "sh",
        "-c",
        "ip -o -4 addr show eth0 && cat /etc/resolv.conf",
    ]);
    let bridge = h.ok(&["network", "inspect", "bridge"]);
    let v: serde_json::Value = serde_json::from_str(bridge.trim()).expect("inspect json");
    let gw = v[0]["Gateway"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_default();
    assert!(out.contains("eth0") && !gw.is_empty(), "{out}\n{bridge}");
    assert!(out.contains(&format!("nameserver {gw}")), "{out}\n{bridge}");

    // rename: the DNS name follows.
    h.ok(&["container", "rename", "web", "web2"]);
    let o = h.berth(&["container", "exec", "web2", "nslookup", "web2"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = h.berth(&["container", "exec", "web2", "nslookup", "web"]);
    assert!(!o.status.success(), "old name gone: {}", text(&o));
    h.ok(&["container", "rename", "web2", "web"]);

    // port and inspect show what netd made.
    let port = h.ok(&["container", "port", "web"]);
    assert_eq!(port.trim(), "80/tcp -> 0.0.0.0:18080", "{port}");
    assert_eq!(
        h.ok(&["container", "port", "web", "80"]).trim(),
        "0.0.0.0:18080"
    );
    let o = h.berth(&["container", "port", "web", "81"]);
    assert!(text(&o).contains("no public port 81/tcp"), "{}", text(&o));
    let ip = h.ok(&[
        "container",
        "inspect",
        "-f",
        "{{.NetworkSettings.IPAddress}} {{.State.Status}}",
        "web",
    ]);
    assert!(
        ip.starts_with("10.") && ip.trim().ends_with(" running"),
        "{ip}"
    );
    let inspect: serde_json::Value =
        serde_json::from_str(h.ok(&["container", "inspect", "web"]).trim()).expect("inspect");
    let net = &inspect[0]["NetworkSettings"]["Networks"]["appnet"];
    assert!(
        net["IPAddress"]
            .as_str()
            .is_some_and(|a| a.starts_with("10.")),
        "{net}"
    );
    assert!(net["Aliases"].to_string().contains("www"), "{net}");

    // ls --format: docker's template subset, with the published ports and networks.
    let ls = h.ok(&[
        "container",
        "ls",
        "--format",
        "{{.Names}} {{.Ports}} {{.Networks}}",
    ]);
    assert!(
        ls.lines().any(|l| l == "web 0.0.0.0:18080->80/tcp appnet"),
        "{ls}"
    );
    assert!(
        ls.lines().any(|l| l == "b1 127.0.0.1:18081->80/tcp bridge"),
        "{ls}"
    );
    let json = h.ok(&["container", "ls", "--format", "json"]);
    let rows: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let web_row = rows.iter().find(|r| r["Names"] == "web").expect("web row");
    assert_eq!(web_row["Image"], "busybox:e2e");
    assert_eq!(web_row["State"], "running");
    assert_eq!(web_row["ID"], &web_id[..12]);
    let table = h.ok(&[
        "container",
        "ls",
        "--format",
        "table {{.Names}}\\t{{.Status}}",
    ]);
    let mut lines = table.lines();
    assert!(
        lines
            .next()
            .is_some_and(|l| l.starts_with("NAMES") && l.ends_with("STATUS")),
        "{table}"
    );
    assert!(lines.all(|l| l.contains("Up ")), "{table}");

    // rm detaches (endpoint, DNS name, published port) so the networks can go.
    h.ok(&["container", "rm", "-f", "web", "b1"]);
    assert!(endpoints(&h, "appnet").is_empty());
    let curl = h.sh("curl -sS --max-time 2 http://127.0.0.1:18080/");
    assert!(!curl.status.success(), "port unpublished");
    h.ok(&["network", "rm", "appnet", "bridge"]);
    h.ok(&["system", "shutdown"]);
    let leaks = h.leaks(&[web_id, b1_id]);
    assert!(leaks.is_empty(), "left: {leaks:#?}");
}

#[test_with::root()]
#[test]
fn anonymous_and_named_volumes_live_and_go_as_docker_users_expect() {
    host::require_tools();
    let h = Host::new("cvol");
    h.busybox_image();
    assert_eq!(
        h.ok(&["volume", "create", "--label", "tier=db", "named1"])
            .trim(),
        "named1"
    );
    h.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        "v1",
        "-v",
        "named1:/n",
        "-v",
        "/anon",
        "busybox:e2e",
        "sh",
        "-c",
        "echo kept > /n/f; echo gone > /anon/f; sleep 300",
    ]);
    let inspect: serde_json::Value =
        serde_json::from_str(h.ok(&["container", "inspect", "v1"]).trim()).expect("inspect");
    let anon = inspect[0]["Config"]["anonymous_volumes"][0]
        .as_str()
        .expect("one anonymous volume")
        .to_string();
    let mounts = h.ok(&["container", "inspect", "--format", "{{json .Mounts}}", "v1"]);
    let mounts: serde_json::Value = serde_json::from_str(mounts.trim()).expect("mounts json");
    assert_eq!(mounts[0]["Name"], "named1");
    assert_eq!(mounts[1]["Anonymous"], true);
    assert_eq!(mounts[1]["Destination"], "/anon");
    let vols = h.ok(&[
        "volume",
        "ls",
        "--format",
        "{{.Name}} {{.Anonymous}} {{.Labels.tier}}",
    ]);
    assert!(vols.lines().any(|l| l == "named1 false db"), "{vols}");
    assert!(
        vols.lines().any(|l| l == format!("{anon} true <no value>")),
        "{vols}"
    );
    let data = h.root.join("volumes").join(&anon).join("_data/f");
    assert!(
        eventually(10, || data.exists()),
        "the container wrote its volume"
    );

    // --volumes-from sees the same data (read-only here), --cidfile records the id.
    let cid = h.dir.path().join("cid");
    let cid_s = cid.display().to_string();
    let seen = h.ok(&[
        "container",
        "run",
        "--rm",
        "--cidfile",
        &cid_s,
        "--volumes-from",
        "v1:ro",
        "busybox:e2e",
        "sh",
        "-c",
        "cat /n/f /anon/f; touch /n/ro 2>/dev/null || echo read-only",
    ]);
    assert_eq!(seen.trim(), "kept\ngone\nread-only", "{seen}");
    assert_eq!(std::fs::read_to_string(&cid).expect("cidfile").len(), 64);
    let o = h.berth(&[
        "container",
        "run",
        "--rm",
        "--cidfile",
        &cid_s,
        "busybox:e2e",
        "true",
    ]);
    assert!(text(&o).contains("exists already"), "{}", text(&o));

    let dangling = h.ok(&["volume", "ls", "-q", "--filter", "dangling=true"]);
    assert_eq!(dangling.trim(), "", "both are mounted by v1");
    let labelled = h.ok(&[
        "volume",
        "ls",
        "-q",
        "-f",
        "label=tier=db",
        "-f",
        "dangling=false",
    ]);
    assert_eq!(labelled.trim(), "named1");

    // In use: refused, naming the container.
    let o = h.berth(&["volume", "rm", "named1"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("in use by container v1"), "{}", text(&o));

    // rm -v takes the anonymous volume, never the named one.
    h.ok(&["container", "rm", "-f", "-v", "v1"]);
    assert!(
        !h.root.join("volumes").join(&anon).exists(),
        "anonymous volume removed"
    );
    let kept = std::fs::read_to_string(h.root.join("volumes/named1/_data/f")).expect("named data");
    assert_eq!(kept.trim(), "kept");
    let again = h.ok(&[
        "container",
        "run",
        "--rm",
        "-v",
        "named1:/n",
        "busybox:e2e",
        "cat",
        "/n/f",
    ]);
    assert!(again.contains("kept"), "{again}");
    h.ok(&["volume", "rm", "named1"]);

    // --rm removes its anonymous volumes (--mount without a source is one).
    h.ok(&[
        "container",
        "run",
        "--rm",
        "--mount",
        "type=volume,target=/m",
        "busybox:e2e",
        "sh",
        "-c",
        "echo x > /m/x",
    ]);
    assert_eq!(h.ok(&["volume", "ls", "-q"]).trim(), "");

    // Plain rm keeps it; prune removes unused anonymous volumes only.
    h.ok(&[
        "container",
        "create",
        "--name",
        "v2",
        "-v",
        "/keep",
        "busybox:e2e",
        "true",
    ]);
    h.ok(&["volume", "create", "stays"]);
    let o = h.berth(&["volume", "prune"]);
    assert!(
        text(&o).contains("Total reclaimed: 0"),
        "in use: {}",
        text(&o)
    );
    h.ok(&["container", "rm", "v2"]);
    let pruned = h.ok(&["volume", "prune"]);
    assert!(pruned.contains("Total reclaimed: 1"), "{pruned}");
    assert_eq!(h.ok(&["volume", "ls", "-q"]).trim(), "stays");
    h.ok(&["volume", "prune", "-a"]);
    assert_eq!(h.ok(&["volume", "ls", "-q"]).trim(), "");
    let o = h.berth(&["volume", "inspect", "stays"]);
    assert!(text(&o).contains("no such volume: stays"), "{}", text(&o));
    // The default network the containers were on stays until removed, as Docker's does.
    h.ok(&["network", "rm", "bridge"]);
    assert!(h.leaks(&[]).is_empty(), "{:?}", h.leaks(&[]));
}

#[test_with::root()]
#[test]
fn commit_turns_a_containers_changes_into_an_image() {
    host::require_tools();
    let h = Host::new("ccom");
    h.busybox_image();
    // Adds a file, deletes one (a whiteout), replaces a directory (an opaque dir).
    h.ok(&[
        "container",
        "run",
        "--name",
        "c1",
        "busybox:e2e",
        "sh",
        "-c",
        "echo added > /added; rm /etc/group; rm -rf /var/www; mkdir /var/www; echo fresh > /var/www/new.html",
    ]);
    let diff = h.ok(&["container", "diff", "c1"]);
    for line in [
        "A /added",
        "D /etc/group",
        "C /var/www",
        "A /var/www/new.html",
    ] {
        assert!(diff.lines().any(|l| l == line), "{line} in {diff}");
    }
    let o = h.berth(&[
        "container",
        "commit",
        "-c",
        "CMD [\"cat\", \"/added\"]",
        "-c",
        "ENV COMMITTED=yes",
        "-c",
        "VOLUME /state",
        "-m",
        "from c1",
        "c1",
        "committed:v1",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).trim().starts_with("sha256:"), "{}", text(&o));

    // CMD from the change, the new file from the layer.
    let out = h.ok(&["container", "run", "--rm", "committed:v1"]);
    assert_eq!(out.trim(), "added");
    // The deletion and the replaced directory, and the ENV change.
    let out = h.ok(&[
        "container",
        "run",
        "--rm",
        "committed:v1",
        "sh",
        "-c",
        "test ! -e /etc/group && echo group-gone; ls /var/www; echo env=$COMMITTED",
    ]);
    assert_eq!(out.trim(), "group-gone\nnew.html\nenv=yes", "{out}");
    // The image's VOLUME gives a container an anonymous volume; --rm removes it.
    let o = h.ok(&["container", "create", "--name", "c2", "committed:v1"]);
    assert!(!o.trim().is_empty());
    assert_eq!(h.ok(&["volume", "ls", "-q"]).lines().count(), 1);
    h.ok(&["container", "rm", "-v", "c2"]);
    assert_eq!(h.ok(&["volume", "ls", "-q"]).trim(), "");
    let hist = h.ok(&["image", "history", "committed:v1"]);
    assert!(
        hist.contains("from c1") || hist.contains("commit c1"),
        "{hist}"
    );

    // A running container is frozen for the commit and runs on afterwards.
    h.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        "c3",
        "busybox:e2e",
        "sleep",
        "300",
    ]);
    let o = h.berth(&["container", "commit", "c3", "paused:v1"]);
    assert!(o.status.success(), "{}", text(&o));
    let st = h.ok(&["container", "inspect", "-f", "{{.State.Status}}", "c3"]);
    assert_eq!(st.trim(), "running", "thawed after the commit");
    let o = h.berth(&["container", "commit", "--pause=false", "c3", "running:v1"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = h.berth(&["container", "commit", "-c", "RUN true", "c1"]);
    assert!(text(&o).contains("RUN cannot be applied"), "{}", text(&o));
    // ls filters; prune takes the stopped ones and keeps the running one.
    let names = |f: &[&str]| {
        let mut args = vec!["container", "ls", "--format", "{{.Names}}"];
        args.extend_from_slice(f);
        h.ok(&args).lines().map(str::to_string).collect::<Vec<_>>()
    };
    assert_eq!(names(&[]), ["c3"]);
    assert_eq!(names(&["--filter", "status=exited"]), ["c1"]);
    assert_eq!(
        names(&[
            "-a",
            "--filter",
            "name=c",
            "--filter",
            "ancestor=busybox:e2e"
        ]),
        ["c3", "c1"]
    );
    assert_eq!(names(&["--latest"]), ["c3"]);
    assert_eq!(names(&["-f", "exited=0"]), ["c1"]);
    let pruned = h.ok(&["container", "prune", "-f"]);
    assert!(pruned.contains("Total: 1 container(s)"), "{pruned}");
    assert_eq!(names(&["-a"]), ["c3"]);
    h.ok(&["container", "rm", "-f", "c3"]);
    h.ok(&["image", "rm", "committed:v1", "running:v1"]);
    h.ok(&["network", "rm", "bridge"]);
    assert!(h.leaks(&[]).is_empty(), "{:?}", h.leaks(&[]));
}

use berth_tests::container_util;

const PROBE: &str = "grep -E '^(CapPrm|CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; \
    hostname; id; ps -o pid,comm | head -2; ulimit -n; kc; echo keyctl=$?; \
    cat /proc/mounts | cut -d' ' -f2 | sort | tr '\\n' ' '";

/// berth's executor, crun and runc run the same bundle (`--runtime`) and the container sees
/// the same thing: hostname, uid, capabilities, seccomp, PID 1, mounts.
#[test_with::root()]
#[test]
fn crun_and_runc_run_the_bundle_as_berth_does() {
    let env = container_util::Env::new();
    let rootfs = env.rootfs.display().to_string();
    let probe = |runtime: Option<&str>, extra: &[&str]| {
        let mut args = vec![
            "container",
            "run",
            "--rm",
            "--hostname",
            "probe",
            "--rootfs",
            rootfs.as_str(),
        ];
        if let Some(r) = runtime {
            args.extend(["--runtime", r]);
        }
        args.extend_from_slice(extra);
        args.extend(["sh", "-c", PROBE]);
        let o = env.berth(&args);
        assert!(o.status.success(), "{runtime:?}: {}", text(&o));
        container_util::stdout(&o)
    };
    for extra in [
        &[][..],
        &["-u", "app", "--cap-drop", "ALL", "--read-only"][..],
    ] {
        let ours = probe(None, extra);
        assert!(
            ours.contains("probe\n") && ours.contains("keyctl=0"),
            "{ours}"
        );
        assert_eq!(probe(Some("crun"), extra), ours, "crun vs berth {extra:?}");
        assert_eq!(probe(Some("runc"), extra), ours, "runc vs berth {extra:?}");
    }

    // Exit codes, logs, limits, exec and stop work the same through the shim.
    for rt in ["crun", "runc"] {
        let o = env.run(
            &["--rm", "--runtime", rt],
            &["sh", "-c", "echo out; exit 7"],
        );
        assert_eq!(o.status.code(), Some(7), "{rt}: {}", text(&o));
        assert_eq!(container_util::stdout(&o).trim(), "out");
        let name = format!("bg-{rt}");
        let o = env.run(
            &["-d", "--name", &name, "--runtime", rt, "--memory", "48m"],
            &["sh", "-c", "echo started; sleep 300"],
        );
        assert!(o.status.success(), "{rt}: {}", text(&o));
        let id = container_util::stdout(&o).trim().to_string();
        let limit = std::fs::read_to_string(format!(
            "/sys/fs/cgroup/memory/{}/{id}/memory.limit_in_bytes",
            env.cgroup_parent()
        ))
        .unwrap_or_default();
        assert_eq!(
            limit.trim(),
            (48u64 << 20).to_string(),
            "{rt}: memory limit"
        );
        let o = env.berth(&["container", "exec", &name, "hostname"]);
        assert_eq!(container_util::stdout(&o).trim(), &id[..12], "{rt}: exec");
        env.eventually(10, "log line", || {
            container_util::stdout(&env.berth(&["container", "logs", &name])).contains("started")
        });
        let t = std::time::Instant::now();
        assert!(
            env.berth(&["container", "stop", "-t", "1", &name])
                .status
                .success()
        );
        assert!(
            t.elapsed() < std::time::Duration::from_secs(8),
            "{rt}: stop"
        );
        let o = env.berth(&["container", "wait", &name]);
        assert_eq!(
            container_util::stdout(&o).trim(),
            "137",
            "{rt}: SIGKILL after grace"
        );
        assert!(env.berth(&["container", "rm", &name]).status.success());
    }

    // An image (overlay root, built in the runtime child's own mount namespace).
    let tar = env.tmp.path().join("img.tar");
    let st = std::process::Command::new("tar")
        .arg("-C")
        .arg(&env.rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .expect("tar");
    assert!(st.success());
    let tar_s = tar.display().to_string();
    assert!(
        env.berth(&["image", "import", &tar_s, "probe:1"])
            .status
            .success()
    );
    let o = env.berth(&[
        "container",
        "run",
        "--rm",
        "--runtime",
        "crun",
        "probe:1",
        "sh",
        "-c",
        "echo layered > /x && cat /x",
    ]);
    assert_eq!(container_util::stdout(&o).trim(), "layered", "{}", text(&o));
    // What an external runtime cannot do is refused by name.
    let o = env.run(&["--rm", "--init", "--runtime", "crun"], &["true"]);
    assert!(text(&o).contains("--init is not supported"), "{}", text(&o));
    let o = env.run(&["--rm", "--runtime", "youki"], &["true"]);
    assert!(
        text(&o).contains("unknown OCI runtime \"youki\""),
        "{}",
        text(&o)
    );
    assert!(env.berth(&["image", "rm", "probe:1"]).status.success());
    env.sweep_cgroups();
    env.assert_clean();
}

#[test_with::root()]
#[test]
fn restart_policies_apply_to_single_containers() {
    host::require_tools();
    let h = Host::new("crst");
    h.busybox_image();
    h.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        "busybox:e2e",
        "sh",
        "-c",
        "echo try; exit 3",
    ]);
    // The first run and two restarts, then it stays down with its status.
    let ok = eventually(30, || {
        h.ok(&["container", "logs", "flaky"]).matches("try").count() == 3
            && h.ok(&["container", "ls", "-a", "--format", "{{.Names}} {{.State}}"])
                .contains("flaky exited")
    });
    assert!(ok, "{}", h.ok(&["container", "logs", "flaky"]));
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert_eq!(
        h.ok(&["container", "logs", "flaky"]).matches("try").count(),
        3
    );

    // `always` restarts after a crash, but a user's stop is respected.
    h.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        "steady",
        "--restart",
        "always",
        "-v",
        "/v",
        "busybox:e2e",
        "sh",
        "-c",
        // Crashes once (the marker lives in a volume, so it survives the restart), then runs.
        "echo up; if [ -e /v/once ]; then sleep 300; else touch /v/once; exit 1; fi",
    ]);
    assert!(eventually(30, || h
        .ok(&["container", "logs", "steady"])
        .matches("up")
        .count()
        == 2
        && h.ok(&["container", "ls", "--format", "{{.Names}}"])
            .contains("steady")));
    h.ok(&["container", "stop", "-t", "1", "steady"]);
    let after = h.ok(&["container", "logs", "steady"]).matches("up").count();
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(
        h.ok(&["container", "logs", "steady"]).matches("up").count(),
        after
    );
    let o = h.berth(&[
        "container",
        "run",
        "--rm",
        "--restart",
        "always",
        "busybox:e2e",
        "true",
    ]);
    assert!(text(&o).contains("conflict"), "{}", text(&o));
    let o = h.berth(&[
        "container",
        "run",
        "--restart",
        "sometimes",
        "busybox:e2e",
        "true",
    ]);
    assert!(text(&o).contains("expected no, always"), "{}", text(&o));
    // --pull: never fails at once; missing tries the registry (a dead loopback port here).
    let o = h.berth(&["container", "run", "--pull", "never", "absent:1", "true"]);
    assert!(text(&o).contains("--pull never"), "{}", text(&o));
    let o = h.berth(&["container", "run", "127.0.0.1:9/absent:1", "true"]);
    assert!(
        text(&o).contains("Unable to find image") && text(&o).contains("could not be pulled"),
        "{}",
        text(&o)
    );
    h.ok(&["container", "rm", "-f", "-v", "flaky", "steady"]);
    h.ok(&["network", "rm", "bridge"]);
    h.ok(&["system", "shutdown"]);
    assert!(h.leaks(&[]).is_empty(), "{:?}", h.leaks(&[]));
}
