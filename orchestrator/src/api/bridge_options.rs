//! Docker's bridge driver options, read once: `docker network create -o`, `berth network
//! create -o`, Compose's `networks.X.driver_opts` and the Engine API's `Options` all name them
//! the same way, so one parser turns them into what netd applies, and refuses a bad value or
//! an option berth does not run by its key.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use berth_netd::state::{BridgeOptions, NetworkSpec};

use super::network::{OPT_BRIDGE_NAME, OPT_MTU};

/// `false` keeps the network's containers from reaching each other (they still reach the
/// gateway and beyond).
pub const OPT_ICC: &str = "com.docker.network.bridge.enable_icc";

/// `false` leaves the subnet's outgoing traffic unmasqueraded.
pub const OPT_MASQUERADE: &str = "com.docker.network.bridge.enable_ip_masquerade";

/// The host address of published ports that name none.
pub const OPT_HOST_BINDING: &str = "com.docker.network.bridge.host_binding_ipv4";

/// The prefix of the containers' interface names on the network (`ethN` by default).
pub const OPT_IFACE_PREFIX: &str = "com.docker.network.container_iface_prefix";

/// Every bridge driver option berth applies.
pub const APPLIED: [&str; 6] = [
    OPT_MTU,
    OPT_BRIDGE_NAME,
    OPT_ICC,
    OPT_MASQUERADE,
    OPT_HOST_BINDING,
    OPT_IFACE_PREFIX,
];

/// The options of a new network, as netd takes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriverOptions {
    /// [`OPT_MTU`].
    pub mtu: Option<u32>,
    /// [`OPT_BRIDGE_NAME`].
    pub bridge_name: Option<String>,
    /// The rest.
    pub options: BridgeOptions,
}

/// A refused option: its key and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionError {
    /// The option's key.
    pub key: String,
    /// What is wrong, naming the value.
    pub message: String,
}

impl std::fmt::Display for OptionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// A boolean as Docker's driver reads one (Go's `strconv.ParseBool`).
fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Reads the driver options of a bridge network; an option berth does not apply, or a value
/// that does not parse, is an error naming the key.
pub fn parse(opts: &BTreeMap<String, String>) -> Result<DriverOptions, OptionError> {
    let mut out = DriverOptions::default();
    for (k, v) in opts {
        let err = |message: String| OptionError {
            key: k.clone(),
            message,
        };
        let boolean =
            || parse_bool(v).ok_or_else(|| err(format!("{v:?} is not a boolean (true or false)")));
        match k.as_str() {
            OPT_MTU => {
                out.mtu = Some(
                    v.parse::<u32>()
                        .ok()
                        .filter(|m| (68..=65535).contains(m))
                        .ok_or_else(|| err(format!("{v:?} is not an MTU (68 to 65535)")))?,
                )
            }
            OPT_BRIDGE_NAME => out.bridge_name = Some(v.clone()),
            OPT_ICC => out.options.no_icc = !boolean()?,
            OPT_MASQUERADE => out.options.no_masquerade = !boolean()?,
            OPT_HOST_BINDING => {
                let ip: Ipv4Addr = v
                    .parse()
                    .map_err(|_| err(format!("{v:?} is not an IPv4 address")))?;
                out.options.host_binding_ipv4 = (!ip.is_unspecified()).then_some(ip);
            }
            OPT_IFACE_PREFIX => out.options.iface_prefix = Some(v.clone()),
            _ => {
                return Err(err(format!(
                    "not supported by berth's bridge driver (it runs {})",
                    APPLIED.join(", ")
                )));
            }
        }
    }
    Ok(out)
}

/// A network's driver options as `network inspect` shows them: the bridge's name always, the
/// others when they differ from the default.
pub fn shown(x: &NetworkSpec) -> BTreeMap<String, String> {
    let mut o = BTreeMap::from([(OPT_BRIDGE_NAME.to_string(), x.bridge.clone())]);
    if let Some(mtu) = x.mtu {
        o.insert(OPT_MTU.into(), mtu.to_string());
    }
    if x.options.no_icc {
        o.insert(OPT_ICC.into(), "false".into());
    }
    if x.options.no_masquerade {
        o.insert(OPT_MASQUERADE.into(), "false".into());
    }
    if let Some(ip) = x.options.host_binding_ipv4 {
        o.insert(OPT_HOST_BINDING.into(), ip.to_string());
    }
    if let Some(p) = &x.options.iface_prefix {
        o.insert(OPT_IFACE_PREFIX.into(), p.clone());
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn options_are_read_as_docker_writes_them() {
        let d = parse(&opts(&[
            (OPT_MTU, "1400"),
            (OPT_BRIDGE_NAME, "br-app"),
            (OPT_ICC, "False"),
            (OPT_MASQUERADE, "0"),
            (OPT_HOST_BINDING, "127.0.0.1"),
            (OPT_IFACE_PREFIX, "app"),
        ]))
        .unwrap();
        assert_eq!(d.mtu, Some(1400));
        assert_eq!(d.bridge_name.as_deref(), Some("br-app"));
        assert!(d.options.no_icc && d.options.no_masquerade);
        assert_eq!(d.options.host_binding_ipv4, Some(Ipv4Addr::LOCALHOST));
        assert_eq!(d.options.iface_prefix.as_deref(), Some("app"));
        // 0.0.0.0 is the default binding.
        let any = parse(&opts(&[(OPT_HOST_BINDING, "0.0.0.0"), (OPT_ICC, "true")])).unwrap();
        assert_eq!(any, DriverOptions::default());
    }

    #[test]
    fn bad_values_and_unknown_options_name_their_key() {
        for (k, v, want) in [
            (OPT_ICC, "maybe", "is not a boolean"),
            (OPT_HOST_BINDING, "::1", "is not an IPv4 address"),
            (OPT_MTU, "9", "is not an MTU"),
            (
                "com.docker.network.bridge.inhibit_ipv4",
                "true",
                "not supported",
            ),
        ] {
            let e = parse(&opts(&[(k, v)])).unwrap_err();
            assert_eq!(e.key, k);
            assert!(e.to_string().contains(want), "{e}");
        }
    }
}
