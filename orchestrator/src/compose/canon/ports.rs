//! Ports: the short syntax `[[IP:]PUBLISHED:]TARGET[/PROTOCOL]` (ranges expanded to one
//! entry per port) and the long syntax, both to long-form entries.
use yaml_serde::{Mapping, Value};

use super::Canon;
use super::values::{kind, scalar_string};

impl Canon<'_> {
    pub(super) fn ports(&mut self, p: &str, v: &mut Value) {
        let Value::Sequence(seq) = v else {
            if v.is_null() {
                *v = Value::Sequence(vec![]);
            } else {
                self.err(p, format!("must be a list, got {}", kind(v)));
            }
            return;
        };
        let mut out = Vec::new();
        for (i, item) in seq.iter().enumerate() {
            let ip = format!("{p}[{i}]");
            match item {
                Value::Mapping(m) => match long_port(m) {
                    Ok(lp) => out.push(lp),
                    Err(e) => self.err(&ip, e),
                },
                other => match scalar_string(other) {
                    Some(s) => match parse_port_spec(&s) {
                        Ok(mut ports) => out.append(&mut ports),
                        Err(e) => self.err(&ip, format!("{s:?}: {e}")),
                    },
                    None => self.err(
                        &ip,
                        format!("must be a string, number or mapping, got {}", kind(other)),
                    ),
                },
            }
        }
        *v = Value::Sequence(out);
    }
}

fn port_num(s: &str) -> Result<u16, String> {
    match s.parse::<u32>() {
        Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
        Ok(_) => Err("port out of range 1-65535".into()),
        Err(_) => Err(format!("{s:?} is not a port number")),
    }
}

fn port_range(s: &str) -> Result<(u16, u16), String> {
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (port_num(a)?, port_num(b)?);
            if a > b {
                return Err(format!("range {s:?} ends before it starts"));
            }
            Ok((a, b))
        }
        None => {
            let n = port_num(s)?;
            Ok((n, n))
        }
    }
}

fn port_value(
    host_ip: Option<&str>,
    target: u16,
    published: Option<String>,
    protocol: &str,
) -> Value {
    let mut m = Mapping::new();
    m.insert("mode".into(), "ingress".into());
    if let Some(ip) = host_ip.filter(|s| !s.is_empty()) {
        m.insert("host_ip".into(), ip.into());
    }
    m.insert("target".into(), Value::from(target));
    if let Some(p) = published {
        m.insert("published".into(), Value::String(p));
    }
    m.insert("protocol".into(), protocol.into());
    Value::Mapping(m)
}

/// Parses short port syntax into long-form entries (ranges expand to one entry per port).
pub fn parse_port_spec(spec: &str) -> Result<Vec<Value>, String> {
    let (rest, protocol) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, p),
        None => (spec, "tcp"),
    };
    if !["tcp", "udp", "sctp"].contains(&protocol) {
        return Err(format!("unknown protocol {protocol:?} (tcp, udp or sctp)"));
    }
    let (host_ip, rest) = if let Some(r) = rest.strip_prefix('[') {
        let end = r.find(']').ok_or("unclosed '[' in IPv6 address")?;
        let after = r[end + 1..]
            .strip_prefix(':')
            .ok_or("expected ':' after IPv6 address")?;
        (Some(&r[..end]), after)
    } else {
        (None, rest)
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, published, target) = match (host_ip, parts.as_slice()) {
        (None, [t]) => (None, None, *t),
        (ip, [p, t]) => (ip, Some(*p), *t),
        (None, [ip, p, t]) => (Some(*ip), Some(*p), *t),
        _ => return Err("expected [[IP:]PUBLISHED:]TARGET[/PROTOCOL]".into()),
    };
    if let Some(ip) = ip
        && !ip.is_empty()
        && ip.parse::<std::net::IpAddr>().is_err()
    {
        return Err(format!("{ip:?} is not an IP address"));
    }
    let (t0, t1) = port_range(target)?;
    let published = published.filter(|p| !p.is_empty());
    let pub_range = published.map(port_range).transpose()?;
    let count = (t1 - t0) as usize + 1;
    let mut out = Vec::with_capacity(count);
    match pub_range {
        None => {
            for t in t0..=t1 {
                out.push(port_value(ip, t, None, protocol));
            }
        }
        Some((p0, p1)) if count == 1 => {
            let published = if p0 == p1 {
                p0.to_string()
            } else {
                format!("{p0}-{p1}")
            };
            out.push(port_value(ip, t0, Some(published), protocol));
        }
        Some((p0, p1)) => {
            if (p1 - p0) as usize + 1 != count {
                return Err("published and target ranges differ in length".into());
            }
            for (i, t) in (t0..=t1).enumerate() {
                out.push(port_value(
                    ip,
                    t,
                    Some((p0 as usize + i).to_string()),
                    protocol,
                ));
            }
        }
    }
    Ok(out)
}

fn long_port(m: &Mapping) -> Result<Value, String> {
    let mut out = m.clone();
    let target = m.get("target").ok_or("long syntax needs `target`")?;
    let t = scalar_string(target).ok_or("`target` must be a port number")?;
    out.insert(
        "target".into(),
        Value::from(port_num(&t).map_err(|e| format!("target {t:?}: {e}"))?),
    );
    if let Some(p) = m.get("published") {
        let ps = scalar_string(p).ok_or("`published` must be a port or range")?;
        if !ps.is_empty() {
            port_range(&ps).map_err(|e| format!("published {ps:?}: {e}"))?;
        }
        out.insert("published".into(), Value::String(ps));
    }
    let proto = m
        .get("protocol")
        .and_then(scalar_string)
        .unwrap_or_else(|| "tcp".into());
    if !["tcp", "udp", "sctp"].contains(&proto.as_str()) {
        return Err(format!("unknown protocol {proto:?} (tcp, udp or sctp)"));
    }
    out.insert("protocol".into(), Value::String(proto));
    let mode = m
        .get("mode")
        .and_then(scalar_string)
        .unwrap_or_else(|| "ingress".into());
    if !["ingress", "host"].contains(&mode.as_str()) {
        return Err(format!("unknown mode {mode:?} (ingress or host)"));
    }
    out.insert("mode".into(), Value::String(mode));
    Ok(Value::Mapping(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::canon::testing::run;

    fn ports(s: &str) -> Vec<String> {
        parse_port_spec(s)
            .unwrap()
            .iter()
            .map(|v| {
                format!(
                    "{}|{}|{}|{}",
                    v.get("host_ip").and_then(Value::as_str).unwrap_or(""),
                    v.get("published").and_then(Value::as_str).unwrap_or(""),
                    v["target"].as_u64().unwrap(),
                    v["protocol"].as_str().unwrap()
                )
            })
            .collect()
    }

    #[test]
    fn port_short_syntax() {
        assert_eq!(ports("80"), ["||80|tcp"]);
        assert_eq!(ports("8080:80"), ["|8080|80|tcp"]);
        assert_eq!(ports("127.0.0.1:8080:80/udp"), ["127.0.0.1|8080|80|udp"]);
        assert_eq!(ports("127.0.0.1::80"), ["127.0.0.1||80|tcp"]);
        assert_eq!(ports("[::1]:53:53/udp"), ["::1|53|53|udp"]);
        assert_eq!(
            ports("3000-3002:4000-4002"),
            ["|3000|4000|tcp", "|3001|4001|tcp", "|3002|4002|tcp"]
        );
        assert_eq!(ports("9000-9010:80"), ["|9000-9010|80|tcp"]);
        assert_eq!(ports("5000-5001"), ["||5000|tcp", "||5001|tcp"]);
        assert!(
            parse_port_spec("99999:80")
                .unwrap_err()
                .contains("out of range 1-65535")
        );
        assert!(parse_port_spec("80/xtp").unwrap_err().contains("protocol"));
        assert!(parse_port_spec("1-3:1-2").unwrap_err().contains("differ"));
        assert!(parse_port_spec("abc").is_err());
    }

    #[test]
    fn ports_pass_takes_short_and_long_syntax() {
        let (v, issues) = run(
            "[80, '8000-8001:90-91/udp', {target: 22, published: '2222'}, {target: 0}]",
            |cx, v| cx.ports("ports", v),
        );
        let got: Vec<String> = v
            .as_sequence()
            .unwrap()
            .iter()
            .map(|p| {
                format!(
                    "{}:{}",
                    p["published"].as_str().unwrap_or(""),
                    p["target"].as_u64().unwrap()
                )
            })
            .collect();
        assert_eq!(got, [":80", "8000:90", "8001:91", "2222:22"]);
        assert_eq!(
            issues,
            ["ports[3]: target \"0\": port out of range 1-65535"]
        );
    }
}
