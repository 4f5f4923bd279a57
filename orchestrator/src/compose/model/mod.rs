//! The typed Compose model: what the loader hands to the engine.
//!
//! Every field is in long form with the Compose Specification's field names, so `berth config`
//! output can be diffed against `docker compose config` and the engine never meets a short syntax.
//! Keys berth parses but does not run are kept (as raw YAML values where berth has no type for
//! them) and listed by [`Project::unsupported`], so they are warned about by name; the loader
//! refuses the few that cannot run at all.
//!
//! The project is here; a service and the long forms of its keys in `service` and
//! `service_keys`; top-level networks, volumes, configs and secrets in `objects`; what berth
//! does not run in `unsupported`. Every type is re-exported here.

mod objects;
mod service;
mod service_keys;
mod unsupported;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use yaml_serde::Value;

pub use objects::{FileObject, Ipam, IpamPool, Network, Volume, bind_device};
pub use service::{Restart, Service, volumes_from_service};
pub use service_keys::{
    BindOptions, BlkioConfig, BlkioRate, BlkioWeightDevice, Build, DependsCondition, DependsOn,
    Deploy, Device, EnvFile, Healthcheck, Logging, Port, PullPolicy, ResourceLimits, Resources,
    RestartPolicy, ServiceFileRef, ServiceNetwork, ServiceVolume, TmpfsOptions, Ulimit,
    VolumeOptions, VolumeType,
};
pub use unsupported::{Unsupported, is_host_platform, only_host_platform};

/// A fully resolved project: merged, interpolated, profiles applied, long syntax, absolute paths.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Project {
    /// Normalised project name (lowercase `[a-z0-9_-]`); prefixes every resource name.
    pub name: String,
    /// Directory relative paths were resolved against.
    #[serde(skip)]
    pub working_dir: PathBuf,
    /// The Compose files this project was loaded from, in merge order (`-` for stdin).
    #[serde(skip)]
    pub compose_files: Vec<PathBuf>,
    /// Active services by name (disabled profiles removed).
    #[serde(default)]
    pub services: BTreeMap<String, Service>,
    /// Services left out because none of their profiles is active; kept so errors can say why.
    #[serde(skip)]
    pub disabled_services: BTreeMap<String, Service>,
    /// Top-level networks, including the implicit `default` when a service uses it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, Network>,
    /// Top-level named volumes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, Volume>,
    /// Top-level configs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub configs: BTreeMap<String, FileObject>,
    /// Top-level secrets.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, FileObject>,
    /// Top-level `x-*` extension fields, kept verbatim.
    #[serde(skip)]
    pub extensions: BTreeMap<String, Value>,
    /// The profiles that were active while loading.
    #[serde(skip)]
    pub active_profiles: Vec<String>,
    /// The environment used for interpolation (process env over `.env`/`--env-file`).
    #[serde(skip)]
    pub environment: BTreeMap<String, String>,
    /// Warnings met while loading (unset variables, obsolete `version:` …), already logged.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

impl Project {
    /// The project as a YAML tree, with `x-*` extension fields put back (top level and services),
    /// as `berth config` prints it.
    pub fn to_yaml_value(&self) -> Result<Value, yaml_serde::Error> {
        let mut v = yaml_serde::to_value(self)?;
        if let Some(m) = v.as_mapping_mut() {
            for (k, x) in &self.extensions {
                m.insert(Value::String(k.clone()), x.clone());
            }
            if let Some(Value::Mapping(services)) = m.get_mut("services") {
                for (name, svc) in &self.services {
                    if let Some(Value::Mapping(sm)) = services.get_mut(name.as_str()) {
                        for (k, x) in &svc.extensions {
                            sm.insert(Value::String(k.clone()), x.clone());
                        }
                    }
                }
            }
        }
        Ok(v)
    }

    /// The image a service runs: `image:`, else the name berth gives a built image
    /// (`<project>-<service>`, as compose does).
    pub fn image_of(&self, service: &str) -> Option<String> {
        let svc = self.services.get(service)?;
        Some(
            svc.image
                .clone()
                .unwrap_or_else(|| format!("{}-{}", self.name, service)),
        )
    }

    /// The name of container `index` (1-based) of a service: `container_name` when set, else
    /// `<project>-<service>-<index>` as compose v2 names them.
    pub fn container_name(&self, service: &str, index: u32) -> String {
        match self
            .services
            .get(service)
            .and_then(|s| s.container_name.clone())
        {
            Some(n) => n,
            None => format!("{}-{}-{}", self.name, service, index),
        }
    }

    /// The services whose output an attached `up` shows, as Compose chooses them: those named by
    /// `--attach` when any are, else the selected ones without `attach: false`; never those
    /// named by `--no-attach`.
    pub fn attached_services<'a>(
        &self,
        selected: impl IntoIterator<Item = &'a String>,
        attach: &[String],
        no_attach: &[String],
    ) -> Vec<String> {
        let wanted = |s: &&String| -> bool {
            self.services
                .get(s.as_str())
                .is_none_or(|svc| svc.attach != Some(false))
        };
        let shown: Vec<&String> = if attach.is_empty() {
            selected.into_iter().filter(wanted).collect()
        } else {
            attach.iter().collect()
        };
        shown
            .into_iter()
            .filter(|s| !no_attach.contains(s))
            .cloned()
            .collect()
    }

    /// Every profile named by any service, active or not, sorted.
    pub fn all_profiles(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .services
            .values()
            .chain(self.disabled_services.values())
            .flat_map(|s| s.profiles.iter().cloned())
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// Doubles every `$` in string values, as `docker compose config` does, so a printed (already
/// interpolated) model can be loaded again without being interpolated twice.
pub fn escape_dollars(v: &mut Value) {
    match v {
        Value::String(s) if s.contains('$') => *s = s.replace('$', "$$"),
        Value::Sequence(seq) => seq.iter_mut().for_each(escape_dollars),
        Value::Mapping(m) => m.values_mut().for_each(escape_dollars),
        Value::Tagged(t) => escape_dollars(&mut t.value),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        let mut s = Service::default();
        assert_eq!(s.restart_policy(), Restart::No);
        s.restart = Some("on-failure:3".into());
        assert_eq!(s.restart_policy(), Restart::OnFailure(Some(3)));
        s.restart = Some("unless-stopped".into());
        assert_eq!(s.restart_policy(), Restart::UnlessStopped);
        assert_eq!(s.stop_timeout().as_secs(), 10);
        assert_eq!(s.replicas(), 1);
        s.scale = Some(2);
        assert_eq!(s.replicas(), 2);
        s.links = vec!["db:database".into()];
        s.volumes_from = vec!["data:ro".into(), "container:other".into()];
        s.network_mode = Some("service:vpn".into());
        assert_eq!(s.dependencies(), ["data", "db", "vpn"]);
        let mut p = Project {
            name: "demo".into(),
            ..Default::default()
        };
        p.services.insert("web".into(), s.clone());
        assert_eq!(p.container_name("web", 2), "demo-web-2");
        assert_eq!(p.image_of("web").as_deref(), Some("demo-web"));
    }

    #[test]
    fn attach_false_leaves_a_service_out_of_attached_output_unless_named() {
        let mut p = Project::default();
        p.services.insert("web".into(), Service::default());
        let quiet = Service {
            attach: Some(false),
            ..Default::default()
        };
        p.services.insert("db".into(), quiet);
        let all = ["db".to_string(), "web".to_string()];
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(p.attached_services(&all, &[], &[]), names(&["web"]));
        assert_eq!(
            p.attached_services(&all, &names(&["db"]), &[]),
            names(&["db"])
        );
        assert!(p.attached_services(&all, &[], &names(&["web"])).is_empty());
    }

    #[test]
    fn ulimit_keeps_the_form_it_was_written_in() {
        let u: BTreeMap<String, Ulimit> =
            yaml_serde::from_str("{nofile: 10, nproc: {soft: 5, hard: 6}}").unwrap();
        assert_eq!((u["nofile"].soft, u["nofile"].hard), (10, 10));
        assert!(u["nofile"].single && !u["nproc"].single);
        let back = serde_json::to_value(&u).unwrap();
        assert_eq!(
            back,
            serde_json::json!({"nofile": 10, "nproc": {"soft": 5, "hard": 6}})
        );
        let mut a = Service::default();
        a.ulimits.insert("nofile".into(), u["nofile"]);
        let mut b = a.clone();
        b.ulimits.insert(
            "nofile".into(),
            Ulimit {
                single: false,
                ..u["nofile"]
            },
        );
        assert_eq!(
            crate::compose::service_hash(&a),
            crate::compose::service_hash(&b)
        );
    }

    #[test]
    fn pull_policy_values() {
        for ok in [
            "always",
            "refresh",
            "every_12h",
            "every_1w2d30m",
            "if_not_present",
        ] {
            let p: PullPolicy = yaml_serde::from_str(ok).unwrap();
            assert_eq!(p.as_str(), ok);
            assert_eq!(serde_json::to_value(&p).unwrap(), ok);
        }
        for bad in ["every_", "every_12", "every_h", "every_12x", "allways"] {
            let e = yaml_serde::from_str::<PullPolicy>(bad)
                .unwrap_err()
                .to_string();
            assert!(e.contains("unknown variant"), "{bad}: {e}");
        }
        let age = |s: &str| PullPolicy::parse(s).and_then(|p| p.max_age().map(|d| d.as_secs()));
        assert_eq!(age("daily"), Some(86_400));
        assert_eq!(age("weekly"), Some(604_800));
        assert_eq!(age("every_1w2d30m"), Some(604_800 + 2 * 86_400 + 1_800));
        assert_eq!(age("every_90s"), Some(90));
        assert_eq!(age("always"), None);
        assert_eq!(age("refresh"), None);
    }
}
