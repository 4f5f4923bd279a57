//! What a build asks of its RUN containers beyond the Dockerfile: the network mode, extra
//! `/etc/hosts` entries, the size of `/dev/shm`, ulimits and privilege (`docker build
//! --network --add-host --shm-size --ulimit`, Compose's `build.network`, `build.extra_hosts`,
//! `build.shm_size`, `build.ulimits`, `build.privileged`). One struct that every caller (the
//! CLI, Compose builds, Docker's `POST /build`) fills, so each option is translated once.
//! None of them changes a cache key, as with Docker: they shape how RUN runs, not what the
//! Dockerfile says.

use std::net::IpAddr;

use super::dockerfile::RunNetworkMode;
use crate::container::config::Ulimit;

/// A build option given a value berth cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunOptionError {
    /// A network mode other than default, bridge, host or none.
    #[error(
        "network mode {0:?}: RUN steps run on the build network (default, bridge), host or none"
    )]
    Network(String),
    /// An extra host that is not `NAME:IP` (or `NAME=IP`).
    #[error("extra host {0:?}: expected NAME:IP")]
    ExtraHost(String),
    /// `host-gateway` names the gateway of a container network; RUN steps have none fixed.
    #[error("extra host {0:?}: host-gateway is not supported for RUN steps; give the IP address")]
    HostGateway(String),
}

/// How RUN containers of one build are set up.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunOptions {
    /// The network of RUN steps without `RUN --network` (which wins, as in Docker).
    pub network: RunNetworkMode,
    /// `NAME IP` lines added to each RUN container's `/etc/hosts`.
    pub extra_hosts: Vec<(String, IpAddr)>,
    /// Size of `/dev/shm` in bytes; the runtime's default (64 MiB) when None.
    pub shm_size: Option<u64>,
    /// Resource limits of the RUN process.
    pub ulimits: Vec<Ulimit>,
    /// RUN with every capability and device access, as `docker run --privileged`.
    pub privileged: bool,
}

impl RunOptions {
    /// Reads a build network mode as Docker names them: empty, `default` and `bridge` mean the
    /// build network; `host` and `none` as given. Named networks and `container:X` are refused.
    pub fn parse_network(mode: &str) -> Result<RunNetworkMode, RunOptionError> {
        match mode {
            "" | "default" | "bridge" => Ok(RunNetworkMode::Default),
            "host" => Ok(RunNetworkMode::Host),
            "none" => Ok(RunNetworkMode::None),
            other => Err(RunOptionError::Network(other.to_string())),
        }
    }

    /// Reads `NAME:IP` or `NAME=IP` (an IPv6 address may hold colons: the name ends at the
    /// first separator), as `--add-host` takes it.
    pub fn parse_extra_host(entry: &str) -> Result<(String, IpAddr), RunOptionError> {
        let (name, ip) = entry
            .split_once(['=', ':'])
            .ok_or_else(|| RunOptionError::ExtraHost(entry.to_string()))?;
        let ip = ip.trim_start_matches('[').trim_end_matches(']');
        if ip == "host-gateway" {
            return Err(RunOptionError::HostGateway(entry.to_string()));
        }
        if name.is_empty() {
            return Err(RunOptionError::ExtraHost(entry.to_string()));
        }
        let ip = ip
            .parse()
            .map_err(|_| RunOptionError::ExtraHost(entry.to_string()))?;
        Ok((name.to_string(), ip))
    }

    /// The lines appended to a RUN container's `/etc/hosts` (`IP\tNAME`, as Docker writes them).
    pub fn hosts_lines(&self) -> String {
        self.extra_hosts
            .iter()
            .map(|(name, ip)| format!("{ip}\t{name}\n"))
            .collect()
    }

    /// The network of one RUN step: its own `--network` when given, else the build's.
    pub fn network_for(&self, step: RunNetworkMode) -> RunNetworkMode {
        match step {
            RunNetworkMode::Default => self.network,
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_modes_read_as_dockers() {
        assert_eq!(RunOptions::parse_network(""), Ok(RunNetworkMode::Default));
        assert_eq!(
            RunOptions::parse_network("bridge"),
            Ok(RunNetworkMode::Default)
        );
        assert_eq!(RunOptions::parse_network("host"), Ok(RunNetworkMode::Host));
        assert_eq!(RunOptions::parse_network("none"), Ok(RunNetworkMode::None));
        assert!(RunOptions::parse_network("container:x").is_err());
        let o = RunOptions {
            network: RunNetworkMode::None,
            ..Default::default()
        };
        assert_eq!(o.network_for(RunNetworkMode::Default), RunNetworkMode::None);
        assert_eq!(o.network_for(RunNetworkMode::Host), RunNetworkMode::Host);
    }

    #[test]
    fn extra_hosts_read_and_print_as_dockers() {
        let h = RunOptions::parse_extra_host("db:10.0.0.9").expect("v4");
        assert_eq!(h, ("db".to_string(), "10.0.0.9".parse().expect("ip")));
        let h6 = RunOptions::parse_extra_host("six=::1").expect("v6");
        assert_eq!(h6.1, "::1".parse::<IpAddr>().expect("ip"));
        let h6c = RunOptions::parse_extra_host("six:::1").expect("v6 with colon");
        assert_eq!(h6c.1, "::1".parse::<IpAddr>().expect("ip"));
        assert!(RunOptions::parse_extra_host("nohost").is_err());
        assert!(RunOptions::parse_extra_host("db:not-an-ip").is_err());
        assert!(matches!(
            RunOptions::parse_extra_host("gw:host-gateway"),
            Err(RunOptionError::HostGateway(_))
        ));
        let o = RunOptions {
            extra_hosts: vec![h, h6],
            ..Default::default()
        };
        assert_eq!(o.hosts_lines(), "10.0.0.9\tdb\n::1\tsix\n");
    }
}
