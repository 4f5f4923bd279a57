//! The resolv.conf of a container without a bridge network (`--network host|none`, compose
//! `network_mode: host|none`): the host's file, with `--dns`/`dns:`, `--dns-search`/
//! `dns_search:` and `--dns-option`/`dns_opt:` replacing the lines of their kind. (On a bridge
//! network the file names the embedded DNS instead and the servers become its upstreams.)
//!
//! It also holds the one rule every writer of a container's name files (`/etc/hosts`,
//! `/etc/hostname`, `/etc/resolv.conf`) follows: a value written into a line must stay in that
//! line. The front ends refuse such values first, with their own key names; these checks are
//! the last line of defence.

use std::net::IpAddr;

/// A value with a control character (a newline above all), which would end its line of a
/// name file and let whoever chose it add lines of their own (`db` mapped to their address).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{key} {value:?} contains a control character (it would add lines to the container's {file})"
)]
pub struct NotOneLine {
    /// What the value is (`--add-host`, `services.web.dns_search[0]`, `search domain`).
    pub key: String,
    /// The value as given.
    pub value: String,
    /// The file it was going to (`/etc/hosts`, `/etc/resolv.conf`, `/etc/hostname`).
    pub file: &'static str,
}

/// Refuses `value` when it holds a control character; `key` and `file` name it in the error.
pub fn one_line(key: &str, value: &str, file: &'static str) -> Result<(), NotOneLine> {
    if value.chars().any(char::is_control) {
        return Err(NotOneLine {
            key: key.to_string(),
            value: value.to_string(),
            file,
        });
    }
    Ok(())
}

/// Checks `--dns-search`/`dns_search` domains and `--dns-option`/`dns_opt` options before
/// they become `search` and `options` lines.
pub fn check_overrides(search: &[String], options: &[String]) -> Result<(), NotOneLine> {
    for s in search {
        one_line("search domain", s, "/etc/resolv.conf")?;
    }
    for o in options {
        one_line("resolver option", o, "/etc/resolv.conf")?;
    }
    Ok(())
}

/// One `/etc/hosts` line mapping `name` to `addr`, refused when `name` would break the line.
pub fn hosts_entry(addr: IpAddr, name: &str) -> Result<String, NotOneLine> {
    one_line("host name", name, "/etc/hosts")?;
    Ok(format!("{addr}\t{name}\n"))
}

/// `base` with each non-empty override replacing the lines of its kind (`nameserver`;
/// `search` and `domain`; `options`), the rest kept in order.
pub fn override_resolv(
    base: &str,
    servers: &[IpAddr],
    search: &[String],
    options: &[String],
) -> Result<String, NotOneLine> {
    check_overrides(search, options)?;
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
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{hosts_entry, override_resolv};

    #[test]
    fn overrides_replace_their_kind_only() {
        let host =
            "# from dhcp\nnameserver 10.0.0.1\nnameserver 10.0.0.2\nsearch lan\noptions ndots:1\n";
        assert_eq!(override_resolv(host, &[], &[], &[]), Ok(host.to_string()));
        let ip: std::net::IpAddr = "192.0.2.53".parse().expect("address");
        assert_eq!(
            override_resolv(host, &[ip], &["corp".into()], &[]),
            Ok("# from dhcp\noptions ndots:1\nnameserver 192.0.2.53\nsearch corp\n".to_string())
        );
        assert_eq!(
            override_resolv(host, &[], &[], &["edns0".into(), "rotate".into()]),
            Ok("# from dhcp\nnameserver 10.0.0.1\nnameserver 10.0.0.2\nsearch lan\noptions edns0 rotate\n".to_string())
        );
    }

    #[test]
    fn a_value_never_adds_a_line() {
        let err = override_resolv("", &[], &["corp\nnameserver 6.6.6.6".into()], &[])
            .expect_err("newline in a search domain");
        assert_eq!(err.key, "search domain");
        assert!(override_resolv("", &[], &[], &["ndots:1\roptions x".into()]).is_err());
        let ip: std::net::IpAddr = "10.0.0.1".parse().expect("address");
        assert!(hosts_entry(ip, "evil\n1.2.3.4 db").is_err());
        assert!(hosts_entry(ip, "evil\u{0}").is_err());
        assert_eq!(
            hosts_entry(ip, "db.example"),
            Ok("10.0.0.1\tdb.example\n".into())
        );
    }
}
