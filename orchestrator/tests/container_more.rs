//! Single containers beyond the basics (issue 4): bridge networks and published ports for
//! `berth container run`, anonymous and named volumes, `commit`, `ls --format`. Each test runs
//! its berth instance in a network namespace of its own (harness in `common/`), so bridges,
//! nft rules and published ports never touch the host's network.

mod common;

use common::{Host, runnable};

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

fn endpoints(h: &Host, net: &str) -> Vec<serde_json::Value> {
    let out = h.ok(&["network", "inspect", net]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("inspect json");
    v[0]["Endpoints"].as_array().cloned().unwrap_or_default()
}

#[test]
fn containers_on_a_network_reach_each_other_by_name_and_publish_ports() {
    if !runnable() {
        return;
    }
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
    assert!(text(&o).contains("no such network: nosuchnet"), "{}", text(&o));
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
