//! The configuration hash that decides whether a service's containers must be recreated.
//!
//! As compose does, it covers the runtime-relevant resolved config and leaves out what does not
//! change a running container: build, pull_policy, scale, deploy.replicas, depends_on, profiles.

use sha2::{Digest, Sha256};

use super::model::Service;

/// Stable sha256 (hex) of a service's resolved configuration.
pub fn service_hash(svc: &Service) -> String {
    let mut s = svc.clone();
    s.build = None;
    s.pull_policy = None;
    s.scale = None;
    s.depends_on.clear();
    s.profiles.clear();
    // How a ulimit is written does not change the container.
    for u in s.ulimits.values_mut() {
        u.single = false;
    }
    if let Some(d) = &mut s.deploy {
        d.replicas = None;
    }
    // Struct fields serialise in declaration order and maps are BTreeMaps: the JSON is stable.
    let json = serde_json::to_vec(&s).unwrap_or_default();
    let ext = serde_json::to_vec(&s.extensions).unwrap_or_default();
    let mut h = Sha256::new();
    h.update(&json);
    h.update(&ext);
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::model::{DependsCondition, DependsOn};

    #[test]
    fn ignores_what_does_not_change_a_container() {
        let a = Service {
            image: Some("nginx".into()),
            ..Default::default()
        };
        let mut b = a.clone();
        b.scale = Some(3);
        b.profiles = vec!["x".into()];
        b.depends_on.insert(
            "db".into(),
            DependsOn {
                condition: DependsCondition::ServiceStarted,
                restart: false,
                required: true,
            },
        );
        assert_eq!(service_hash(&a), service_hash(&b));
        b.image = Some("nginx:2".into());
        assert_ne!(service_hash(&a), service_hash(&b));
        assert_eq!(service_hash(&a).len(), 64);
    }
}
