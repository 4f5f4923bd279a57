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
