//! The LNMP example (examples/lnmp) end to end, as its users run it: nginx passes PHP to
//! php-fpm by service name, the page reads MariaDB rows by service name, data survives
//! `down`/`up` in the named volume and goes with `down -v`. The images come from
//! scripts/prepare-examples.sh (built FROM debian:bookworm with apt-get), loaded into this
//! test's own instance; the stack runs in the test's own network namespace.

use berth_tests::host::{self, Host};

fn ids(host: &Host, f: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = host
        .ps_of(&["-f", f])
        .iter()
        .map(|r| {
            (
                r["service"].as_str().unwrap_or_default().to_string(),
                r["id"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn id_of<'a>(ids: &'a [(String, String)], service: &str) -> &'a str {
    ids.iter()
        .find(|(s, _)| s == service)
        .map(|(_, id)| id.as_str())
        .unwrap_or_default()
}

/// The page, retried briefly: right after a recreate nginx may answer 502 for a moment.
fn page(host: &Host) -> String {
    let mut body = String::new();
    for _ in 0..20 {
        body = host.curl("http://127.0.0.1:8080/");
        if body.contains("visits:") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    body
}

fn visits(body: &str) -> u64 {
    body.lines()
        .find_map(|l| l.strip_prefix("visits: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[test_with::root()]
#[test]
fn lnmp_serves_rows_by_service_name_keeps_data_and_down_v_removes_it() {
    host::require_tools();
    let host = Host::new("lnmp");
    let stack = host.example("lnmp");
    let f = stack.display().to_string();
    let up = [
        "-f",
        &f,
        "up",
        "-d",
        "--no-build",
        "--wait",
        "--wait-timeout",
        "110",
    ];

    host.ok(&up);
    let first = ids(&host, &f);
    assert_eq!(first.len(), 3, "{first:?}");
    for row in host.ps_of(&["-f", &f]) {
        assert_eq!(row["health"], "healthy", "{row}");
    }
    let body = page(&host);
    assert!(body.contains("LNMP on berth"), "{body}");
    assert!(body.contains("note 1: hello from MariaDB"), "{body}");
    assert!(body.contains("reached by service name: db"), "{body}");
    let v1 = visits(&body);
    assert!(v1 >= 1, "{body}");

    // Inside nginx, the other services resolve by name (no --link, no IP in any file).
    for name in ["php-fpm", "db"] {
        let got = host.ok(&["-f", &f, "exec", "-T", "nginx", "getent", "hosts", name]);
        assert!(got.starts_with("10."), "{name}: {got}");
    }

    // Restarting php-fpm alone leaves the others' containers alone, and the page works again.
    host.ok(&["-f", &f, "restart", "php-fpm"]);
    assert_eq!(ids(&host, &f), first, "restart keeps every container");
    host.ok(&[
        "-f",
        &f,
        "up",
        "-d",
        "--no-build",
        "--no-deps",
        "--force-recreate",
        "php-fpm",
    ]);
    let second = ids(&host, &f);
    assert_ne!(
        id_of(&second, "php-fpm"),
        id_of(&first, "php-fpm"),
        "php-fpm recreated"
    );
    assert_eq!(
        id_of(&second, "nginx"),
        id_of(&first, "nginx"),
        "nginx kept"
    );
    assert_eq!(id_of(&second, "db"), id_of(&first, "db"), "db kept");
    let body = page(&host);
    assert!(
        visits(&body) > v1,
        "the page works after php-fpm's recreation: {body}"
    );

    // down + up keeps the data (named volume); down -v removes it.
    host.ok(&["-f", &f, "down"]);
    host.ok(&up);
    let third = ids(&host, &f);
    let body = page(&host);
    let v2 = visits(&body);
    assert!(v2 > v1 + 1, "visits survive down/up: {body}");
    host.ok(&["-f", &f, "down", "-v"]);
    host.ok(&up);
    let fourth = ids(&host, &f);
    let body = page(&host);
    assert_eq!(visits(&body), 1, "down -v removed the data: {body}");
    host.ok(&["-f", &f, "down", "-v"]);

    let all: Vec<String> = [first, second, third, fourth]
        .iter()
        .flatten()
        .map(|(_, id)| id.clone())
        .collect();
    assert!(host.ps_of(&["-f", &f]).is_empty());
    let leaks = host.leaks(&all);
    assert!(leaks.is_empty(), "down left: {leaks:#?}");
    assert!(
        !host.root.join("volumes/lnmp_dbdata").exists(),
        "down -v removed the volume"
    );
}
