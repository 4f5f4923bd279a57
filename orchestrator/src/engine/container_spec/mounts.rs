//! A spec's mounts: binds, volumes (with subpaths), the image's VOLUMEs no mount covers,
//! other containers' volumes (`volumes_from`) and tmpfs, checked and lowered to the runtime's
//! [`MountSpec`]s, each error naming its field.

use super::*;
use crate::api::container::Mount;
use berth_runtime::container::BindRecursive;

/// Binds, mounts, anonymous volumes (the spec's and the image's VOLUMEs no mount covers),
/// volumes of other containers and tmpfs, in that order.
pub(super) fn mounts(
    spec: &ContainerSpec,
    cx: &Context,
    c: &mut ContainerConfig,
) -> Result<(), SpecError> {
    let hc = &spec.host_config;
    let mut anonymous = Vec::new();
    let mut fresh = |target: &Path| -> String {
        let name = cx
            .inherit
            .and_then(|m| m.iter().find(|(t, _)| Path::new(t) == target))
            .map(|(_, n)| n.clone())
            .unwrap_or_else(anonymous_name);
        anonymous.push(name.clone());
        name
    };
    let absolute = |field: String, target: &str| -> Result<PathBuf, SpecError> {
        if target.starts_with('/') {
            Ok(PathBuf::from(target))
        } else {
            Err(invalid(
                field,
                format!("target {target:?} must be an absolute path in the container"),
            ))
        }
    };
    for (i, b) in hc.binds.iter().enumerate() {
        let field = format!("HostConfig.Binds[{i}]");
        let parts: Vec<&str> = b.split(':').collect();
        let (src, dst, opts) = match parts.as_slice() {
            [src, dst] => (*src, *dst, ""),
            [src, dst, opts] => (*src, *dst, *opts),
            _ => return Err(invalid(field, format!("{b:?}: expected SRC:DST[:OPTIONS]"))),
        };
        let target = absolute(field.clone(), dst)?;
        let read_only = opts.split(',').any(|o| o == "ro");
        let propagation = opts.split(',').find_map(|o| Propagation::parse(o).ok());
        if src.starts_with('/') {
            shared_source(&field, Path::new(src), propagation)?;
        }
        c.mounts.push(if src.starts_with('/') {
            MountSpec::Bind {
                recursive: Default::default(),
                propagation,
                source: src.into(),
                target,
                read_only,
                owned_copy: None,
            }
        } else {
            MountSpec::Volume {
                subpath: None,
                name: src.to_string(),
                target,
                read_only,
                nocopy: opts.split(',').any(|o| o == "nocopy"),
            }
        });
    }
    for (i, m) in hc.mounts.iter().enumerate() {
        let field = format!("HostConfig.Mounts[{i}]");
        let target = absolute(field.clone(), &m.target)?;
        if let (true, Some(p)) = (
            m.r#type == "bind",
            m.bind_options
                .as_ref()
                .and_then(|o| Propagation::parse(&o.propagation).ok()),
        ) {
            let f = format!("{field}.BindOptions.Propagation");
            shared_source(&f, Path::new(&m.source), Some(p))?;
        }
        c.mounts.push(match m.r#type.as_str() {
            "bind" if m.source.is_empty() => {
                return Err(invalid(
                    field,
                    format!("a bind mount needs a Source for target {}", m.target),
                ));
            }
            "bind" => MountSpec::Bind {
                recursive: bind_recursive(&field, m)?,
                propagation: match m.bind_options.as_ref().map(|o| o.propagation.as_str()) {
                    None | Some("") => None,
                    Some(p) => Some(
                        Propagation::parse(p)
                            .map_err(|e| invalid(format!("{field}.BindOptions.Propagation"), e))?,
                    ),
                },
                source: m.source.clone().into(),
                target,
                read_only: m.read_only,
                owned_copy: None,
            },
            "volume" | "" => MountSpec::Volume {
                subpath: match m.volume_options.as_ref().map(|o| o.subpath.as_str()) {
                    None | Some("") => None,
                    Some(sub) => Some(
                        volume_subpath(sub)
                            .map_err(|e| invalid(format!("{field}.VolumeOptions.Subpath"), e))?,
                    ),
                },
                name: if m.source.is_empty() {
                    fresh(&target)
                } else {
                    m.source.clone()
                },
                target,
                read_only: m.read_only,
                nocopy: m.volume_options.as_ref().is_some_and(|o| o.no_copy),
            },
            "tmpfs" => {
                let mut options = Vec::new();
                if let Some(t) = &m.tmpfs_options {
                    options.extend(t.size_bytes.map(|s| format!("size={s}")));
                    options.extend(t.mode.map(|mode| format!("mode={mode:o}")));
                    options.extend(t.options.iter().map(|o| o.join("=")));
                }
                MountSpec::Tmpfs { target, options }
            }
            other => {
                return Err(invalid(
                    format!("{field}.Type"),
                    format!("{other:?} is not supported (bind, volume or tmpfs)"),
                ));
            }
        });
    }
    // Checked now, made below with the image's: a path a bind or mount already covers gets
    // no anonymous volume (docker-py sends `Volumes` beside the `Binds` that fill them).
    let mut asked = Vec::new();
    for t in spec.volumes.keys() {
        asked.push(absolute("Volumes".into(), t)?);
    }
    // Without a lookup the caller (the engine, for services) shares them after the
    // translation, with [`share_volumes_from`].
    if let Some(lookup) = cx.containers {
        for v in &hc.volumes_from {
            let (name, read_only) = volumes_from_entry(v);
            let other =
                lookup(name).map_err(|e| invalid("HostConfig.VolumesFrom", format!("{v}: {e}")))?;
            c.mounts.extend(shared_mounts(&other, read_only));
        }
    }
    for (target, opts) in &hc.tmpfs {
        c.mounts.push(MountSpec::Tmpfs {
            target: absolute("HostConfig.Tmpfs".into(), target)?,
            options: opts
                .split(',')
                .filter(|o| !o.is_empty())
                .map(str::to_string)
                .collect(),
        });
    }
    // The spec's `Volumes` and the image's VOLUMEs that no mount covers get an anonymous
    // volume, as Docker gives them.
    let image_volumes = cx
        .image
        .and_then(|i| i.config.config().as_ref().and_then(|c| c.volumes().clone()))
        .unwrap_or_default();
    for target in asked
        .into_iter()
        .chain(image_volumes.into_iter().map(PathBuf::from))
    {
        let covered = c.mounts.iter().any(|m| match m {
            MountSpec::Bind { target: mt, .. }
            | MountSpec::Volume { target: mt, .. }
            | MountSpec::Tmpfs { target: mt, .. } => *mt == target,
        });
        if covered || !target.is_absolute() {
            continue;
        }
        let name = fresh(&target);
        c.mounts.push(MountSpec::Volume {
            subpath: None,
            name,
            target,
            read_only: false,
            nocopy: false,
        });
    }
    c.anonymous_volumes = anonymous;
    Ok(())
}

/// A bind with shared propagation needs its source on a shared mount (else nothing would
/// propagate): refused otherwise, in Docker's words. A source that is not there is left to
/// the error that names it at start.
fn shared_source(field: &str, src: &Path, p: Option<Propagation>) -> Result<(), SpecError> {
    if !matches!(p, Some(Propagation::Shared | Propagation::Rshared)) {
        return Ok(());
    }
    let Ok(real) = std::fs::canonicalize(src) else {
        return Ok(());
    };
    let (mount_point, shared) = berth_runtime::container::rootfs::mount_sharing(&real);
    if shared {
        return Ok(());
    }
    Err(invalid(
        field,
        format!(
            "path {} is mounted on {} but it is not a shared mount",
            src.display(),
            mount_point.display()
        ),
    ))
}

/// A bind's `BindOptions` recursion flags, checked as Docker checks them.
fn bind_recursive(field: &str, m: &Mount) -> Result<BindRecursive, SpecError> {
    let Some(o) = &m.bind_options else {
        return Ok(BindRecursive::Enabled);
    };
    let f = |k: &str| format!("{field}.BindOptions.{k}");
    let conflict = |a: &str, b: &str| invalid(f(a), format!("option '{a}' conflicts with '{b}'"));
    let needs_ro = |k: &str| {
        invalid(
            f(k),
            format!("option '{k}' requires 'ReadOnly' to be specified in conjunction"),
        )
    };
    if o.non_recursive && o.read_only_non_recursive {
        return Err(conflict("ReadOnlyNonRecursive", "NonRecursive"));
    }
    if o.non_recursive && o.read_only_force_recursive {
        return Err(conflict("ReadOnlyForceRecursive", "NonRecursive"));
    }
    if o.read_only_non_recursive && o.read_only_force_recursive {
        return Err(conflict("ReadOnlyForceRecursive", "ReadOnlyNonRecursive"));
    }
    if o.read_only_non_recursive && !m.read_only {
        return Err(needs_ro("ReadOnlyNonRecursive"));
    }
    if o.read_only_force_recursive && !m.read_only {
        return Err(needs_ro("ReadOnlyForceRecursive"));
    }
    if o.read_only_force_recursive && !matches!(o.propagation.as_str(), "" | "rprivate") {
        return Err(invalid(
            f("ReadOnlyForceRecursive"),
            "option 'ReadOnlyForceRecursive' requires propagation to be 'rprivate'",
        ));
    }
    Ok(if o.non_recursive {
        BindRecursive::Disabled
    } else if o.read_only_non_recursive {
        BindRecursive::Writable
    } else if o.read_only_force_recursive {
        BindRecursive::Readonly
    } else {
        BindRecursive::Enabled
    })
}

/// A `VolumesFrom` entry (`NAME[:ro|:rw]`): the container and the access it asks for (`None`:
/// each mount's own).
pub fn volumes_from_entry(entry: &str) -> (&str, Option<bool>) {
    match entry.rsplit_once(':') {
        Some((n, "ro")) => (n, Some(true)),
        Some((n, "rw")) => (n, Some(false)),
        _ => (entry, None),
    }
}

/// The volumes and bind mounts of `other` as another container mounts them (its tmpfs mounts
/// are its own, as in Docker).
fn shared_mounts(other: &Record, read_only: Option<bool>) -> Vec<MountSpec> {
    let mut out = Vec::new();
    for m in &other.config.mounts {
        let mut m = m.clone();
        match &mut m {
            MountSpec::Bind { read_only: ro, .. } | MountSpec::Volume { read_only: ro, .. } => {
                if let Some(want) = read_only {
                    *ro = want;
                }
            }
            MountSpec::Tmpfs { .. } => continue,
        }
        out.push(m);
    }
    out
}

fn mount_target(m: &MountSpec) -> &Path {
    match m {
        MountSpec::Bind { target, .. }
        | MountSpec::Volume { target, .. }
        | MountSpec::Tmpfs { target, .. } => target,
    }
}

/// Adds the volumes and bind mounts of `other` to a translated config, as Docker's
/// `VolumesFrom` does: a mount the container asks for itself wins at its target; an anonymous
/// volume made for the target (the image's VOLUME) gives way and is not made.
pub fn share_volumes_from(c: &mut ContainerConfig, other: &Record, read_only: Option<bool>) {
    for m in shared_mounts(other, read_only) {
        let target = mount_target(&m).to_path_buf();
        let anonymous = |n: &str| c.anonymous_volumes.iter().any(|a| a == n);
        let at = c.mounts.iter().position(|x| mount_target(x) == target);
        match at.map(|i| &c.mounts[i]) {
            Some(MountSpec::Volume { name, .. }) if anonymous(name) => {
                let name = name.clone();
                c.anonymous_volumes.retain(|a| *a != name);
                if let Some(i) = at {
                    c.mounts[i] = m;
                }
            }
            Some(_) => {}
            None => c.mounts.push(m),
        }
    }
}

/// A volume's `Subpath` as Docker takes it: a relative path that stays inside the volume
/// (no `..` leads out of it; links are resolved inside the volume at mount time).
pub(super) fn volume_subpath(sub: &str) -> Result<PathBuf, String> {
    let mut depth = 0i32;
    for c in Path::new(sub).components() {
        match c {
            std::path::Component::Normal(_) => depth += 1,
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => depth -= 1,
            _ => return Err(format!("{sub:?} must be a relative path inside the volume")),
        }
        if depth < 0 {
            return Err(format!("{sub:?} leads out of the volume"));
        }
    }
    Ok(PathBuf::from(sub))
}
