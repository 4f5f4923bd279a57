//! Defaults compose fills in after merging: the implicit `default` network and the real names of
//! networks, volumes, configs and secrets (`<project>_<key>` unless set or external).

use super::model::{Network, Project};

/// Applies the defaults in place.
pub fn apply(p: &mut Project) {
    let mut uses_default = false;
    let project_dir = p.working_dir.to_string_lossy().into_owned();
    for svc in p.services.values_mut() {
        if let Some(b) = &mut svc.build
            && b.context.is_empty()
        {
            b.context = project_dir.clone();
        }
        if let Some(b) = &mut svc.build
            && b.dockerfile.is_none()
            && b.dockerfile_inline.is_none()
        {
            b.dockerfile = Some("Dockerfile".into());
        }
        if svc.networks.is_empty() && svc.network_mode.is_none() {
            svc.networks.insert("default".into(), None);
        }
        if svc.networks.contains_key("default") {
            uses_default = true;
        }
    }
    if uses_default && !p.networks.contains_key("default") {
        p.networks.insert("default".into(), Network::default());
    }
    let project = p.name.clone();
    let name_of = |key: &str, name: &mut String, external: bool| {
        if name.is_empty() {
            *name = if external {
                key.to_string()
            } else {
                format!("{project}_{key}")
            };
        }
    };
    for (k, n) in &mut p.networks {
        name_of(k, &mut n.name, n.external);
    }
    for (k, v) in &mut p.volumes {
        name_of(k, &mut v.name, v.external);
    }
    for (k, c) in p.configs.iter_mut().chain(p.secrets.iter_mut()) {
        name_of(k, &mut c.name, c.external);
    }
}
