//! A container's mounts as Docker reports them (`Mounts` of `docker inspect` and of
//! `GET /containers/json`), made from its record in one place for the CLI's `container
//! inspect` and the Docker API alike, so the two cannot drift.

use berth_runtime::container::{MountSpec, Record, Runtime};

/// The record's mounts in Docker's `MountPoint` shape (a volume with its host directory and the
/// local driver); berth adds `Anonymous` to a volume and a tmpfs's `Options`, which Docker's
/// clients pass over.
pub fn docker_mounts(rt: &Runtime, rec: &Record) -> Vec<serde_json::Value> {
    rec.config
        .mounts
        .iter()
        .map(|m| match m {
            MountSpec::Bind {
                source,
                target,
                read_only,
                ..
            } => serde_json::json!({
                "Type": "bind", "Source": source, "Destination": target, "Mode": "",
                "RW": !read_only, "Propagation": "rprivate",
            }),
            MountSpec::Volume {
                name,
                target,
                read_only,
                ..
            } => serde_json::json!({
                "Type": "volume", "Name": name, "Source": rt.volume_dir(name),
                "Destination": target, "Driver": "local", "Mode": "", "RW": !read_only,
                "Propagation": "", "Anonymous": rec.config.anonymous_volumes.contains(name),
            }),
            MountSpec::Tmpfs { target, options } => serde_json::json!({
                "Type": "tmpfs", "Source": "", "Destination": target, "Mode": "", "RW": true,
                "Propagation": "", "Options": options,
            }),
        })
        .collect()
}
