//! Reading and writing `/proc/sys` values (blocking; run on the namespace worker so the
//! namespace is the one meant: `/proc/sys/net` belongs to the calling thread's namespace).

/// A sysctl that could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write sysctl {path}")]
pub struct SysctlError {
    /// The full `/proc/sys/...` path.
    pub path: String,
    /// What the file system said.
    #[source]
    pub source: std::io::Error,
}

/// The value of `path` (relative to `/proc/sys`), trimmed.
pub fn read(path: &str) -> Result<String, SysctlError> {
    let full = format!("/proc/sys/{path}");
    std::fs::read_to_string(&full)
        .map(|v| v.trim().to_string())
        .map_err(|source| SysctlError { path: full, source })
}

/// Sets `path` (relative to `/proc/sys`) to `value`; returns whether the value changed.
pub fn write(path: &str, value: &str) -> Result<bool, SysctlError> {
    if read(path)? == value {
        return Ok(false);
    }
    let full = format!("/proc/sys/{path}");
    std::fs::write(&full, value).map_err(|source| SysctlError { path: full, source })?;
    Ok(true)
}

/// The `/proc/sys`-relative path of an endpoint sysctl named with the `IFNAME` placeholder
/// (`net.ipv4.conf.IFNAME.log_martians`) for the interface `ifname`. The name is split on
/// dots before the interface is put in, so an interface name with a dot stays one component.
pub fn interface_path(name: &str, ifname: &str) -> String {
    name.split('.')
        .map(|part| if part == "IFNAME" { ifname } else { part })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    #[test]
    fn interface_paths_put_the_interface_in_as_one_component() {
        assert_eq!(
            super::interface_path("net.ipv4.conf.IFNAME.log_martians", "eth0"),
            "net/ipv4/conf/eth0/log_martians"
        );
        assert_eq!(
            super::interface_path("net.ipv6.conf.IFNAME.accept_ra", "eth0.5"),
            "net/ipv6/conf/eth0.5/accept_ra"
        );
    }
}
