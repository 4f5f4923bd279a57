//! The resolv.conf of a container without a bridge network (`--network host|none`, compose
//! `network_mode: host|none`): the host's file, with `--dns`/`dns:`, `--dns-search`/
//! `dns_search:` and `--dns-option`/`dns_opt:` replacing the lines of their kind. (On a bridge
//! network the file names the embedded DNS instead and the servers become its upstreams.)

use std::net::IpAddr;

/// `base` with each non-empty override replacing the lines of its kind (`nameserver`;
/// `search` and `domain`; `options`), the rest kept in order.
pub fn override_resolv(
    base: &str,
    servers: &[IpAddr],
    search: &[String],
    options: &[String],
) -> String {
    let mut out = String::new();
    for l in base.lines() {
        let key = l.split_whitespace().next().unwrap_or("");
        let replaced = (key == "nameserver" && !servers.is_empty())
            || ((key == "search" || key == "domain") && !search.is_empty())
            || (key == "options" && !options.is_empty());
        if !replaced {
            out.push_str(l);
            out.push('\n');
        }
    }
    for d in servers {
        out.push_str(&format!("nameserver {d}\n"));
    }
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::override_resolv;

    #[test]
    fn overrides_replace_their_kind_only() {
        let host =
            "# from dhcp\nnameserver 10.0.0.1\nnameserver 10.0.0.2\nsearch lan\noptions ndots:1\n";
        assert_eq!(override_resolv(host, &[], &[], &[]), host);
        let ip: std::net::IpAddr = "192.0.2.53".parse().expect("address");
        assert_eq!(
            override_resolv(host, &[ip], &["corp".into()], &[]),
            "# from dhcp\noptions ndots:1\nnameserver 192.0.2.53\nsearch corp\n"
        );
        assert_eq!(
            override_resolv(host, &[], &[], &["edns0".into(), "rotate".into()]),
            "# from dhcp\nnameserver 10.0.0.1\nnameserver 10.0.0.2\nsearch lan\noptions edns0 rotate\n"
        );
    }
}
