//! The image config a build produces, and the per-step changes to it.
//!
//! Config-only instructions (ENV, CMD, LABEL, ...) make no layer: they change this config. Each
//! plan step carries an [`ImageConfigDelta`], a pure description of its change, so the builder can
//! apply config-only steps without running anything and so history and cache can show them.
//! The field names serialize as Docker's config JSON (`Env`, `Cmd`, `Healthcheck`, ...): the
//! OCI image config lacks Healthcheck and Shell, which Docker images carry as extra fields.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `{}` in Docker's `ExposedPorts` / `Volumes` maps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// A container health check as Docker stores it in an image config (durations in nanoseconds).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    /// `["NONE"]`, `["CMD", args...]` or `["CMD-SHELL", command]`.
    pub test: Vec<String>,
    /// Zero means "inherit the default".
    #[serde(default, skip_serializing_if = "is_zero")]
    pub interval: u64,
    /// Zero means the default.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timeout: u64,
    /// Zero means the default.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_period: u64,
    /// Zero means the default.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_interval: u64,
    /// Zero means the default.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub retries: u32,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}
fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

/// Nanoseconds as Docker stores durations.
pub fn nanos(d: Option<Duration>) -> u64 {
    d.map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The runtime config of an image, the part a Dockerfile can change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageConfig {
    /// `USER`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `EXPOSE`: `port/proto` keys.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub exposed_ports: BTreeMap<String, Empty>,
    /// `ENV`: `KEY=value`, in the order first set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// `ENTRYPOINT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// `CMD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// `VOLUME`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, Empty>,
    /// `WORKDIR`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// `LABEL`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `STOPSIGNAL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// `HEALTHCHECK`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    /// `SHELL` (used for shell-form RUN/CMD/ENTRYPOINT of this image and its children).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    /// ONBUILD triggers of a base image. berth never writes them, and refuses a base image
    /// that has some rather than silently skip what its author meant to run.
    #[serde(default, rename = "OnBuild", skip_serializing_if = "Vec::is_empty")]
    pub on_build: Vec<String>,
}

impl ImageConfig {
    /// The value of an environment variable, as substitution sees it.
    pub fn env_get(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find_map(|e| e.split_once('=').and_then(|(k, v)| (k == key).then_some(v)))
    }

    /// Set (replace in place, or append) one environment variable.
    pub fn env_set(&mut self, key: &str, value: &str) {
        let entry = format!("{key}={value}");
        match self
            .env
            .iter_mut()
            .find(|e| e.split_once('=').map(|(k, _)| k) == Some(key) || e.as_str() == key)
        {
            Some(e) => *e = entry,
            None => self.env.push(entry),
        }
    }

    /// The shell for shell-form commands: SHELL, else Docker's default `/bin/sh -c`.
    pub fn shell_or_default(&self) -> Vec<String> {
        self.shell
            .clone()
            .unwrap_or_else(|| vec!["/bin/sh".to_string(), "-c".to_string()])
    }
}

/// One change an instruction makes to the image config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigChange {
    /// Set these variables, in order.
    Env(Vec<(String, String)>),
    /// Replace Cmd.
    Cmd(Vec<String>),
    /// Replace Entrypoint; `reset_cmd` when no CMD was set earlier in the stage (Docker then
    /// clears the Cmd inherited from the base, which was meant for the old entrypoint).
    Entrypoint {
        /// The new entrypoint.
        entrypoint: Vec<String>,
        /// Clear Cmd.
        reset_cmd: bool,
    },
    /// Absolute working directory.
    WorkingDir(String),
    /// User (and group).
    User(String),
    /// Add `port/proto` entries.
    ExposedPorts(Vec<String>),
    /// Add volume paths.
    Volumes(Vec<String>),
    /// Set labels.
    Labels(Vec<(String, String)>),
    /// Replace the health check (`["NONE"]` disables an inherited one).
    Healthcheck(HealthConfig),
    /// Set the stop signal.
    StopSignal(String),
    /// Set the shell.
    Shell(Vec<String>),
    /// MAINTAINER: the image's `author` field (outside the runtime config in OCI).
    Author(String),
    /// ONBUILD: add a trigger for images built FROM this one.
    OnBuild(String),
}

/// The config changes of one step; empty for RUN/COPY/ADD.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfigDelta {
    /// Applied in order.
    pub changes: Vec<ConfigChange>,
}

impl ImageConfigDelta {
    /// A delta with one change.
    pub fn one(change: ConfigChange) -> Self {
        ImageConfigDelta {
            changes: vec![change],
        }
    }

    /// True when the step changes no config.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Apply to a config; the author (not part of the runtime config) is returned if set.
    pub fn apply(&self, cfg: &mut ImageConfig) -> Option<String> {
        let mut author = None;
        for c in &self.changes {
            match c {
                ConfigChange::Env(kv) => {
                    for (k, v) in kv {
                        cfg.env_set(k, v);
                    }
                }
                ConfigChange::Cmd(v) => cfg.cmd = Some(v.clone()),
                ConfigChange::Entrypoint {
                    entrypoint,
                    reset_cmd,
                } => {
                    cfg.entrypoint = Some(entrypoint.clone());
                    if *reset_cmd {
                        cfg.cmd = None;
                    }
                }
                ConfigChange::WorkingDir(d) => cfg.working_dir = Some(d.clone()),
                ConfigChange::User(u) => cfg.user = Some(u.clone()),
                ConfigChange::ExposedPorts(p) => {
                    for port in p {
                        cfg.exposed_ports.insert(port.clone(), Empty {});
                    }
                }
                ConfigChange::Volumes(v) => {
                    for path in v {
                        cfg.volumes.insert(path.clone(), Empty {});
                    }
                }
                ConfigChange::Labels(kv) => {
                    for (k, v) in kv {
                        cfg.labels.insert(k.clone(), v.clone());
                    }
                }
                ConfigChange::Healthcheck(h) => cfg.healthcheck = Some(h.clone()),
                ConfigChange::StopSignal(s) => cfg.stop_signal = Some(s.clone()),
                ConfigChange::Shell(s) => cfg.shell = Some(s.clone()),
                ConfigChange::Author(a) => author = Some(a.clone()),
                ConfigChange::OnBuild(t) => cfg.on_build.push(t.clone()),
            }
        }
        author
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_and_serialize() {
        let mut cfg = ImageConfig {
            cmd: Some(vec!["bash".into()]),
            env: vec!["PATH=/bin".into()],
            ..Default::default()
        };
        let d = ImageConfigDelta {
            changes: vec![
                ConfigChange::Env(vec![("A".into(), "1".into()), ("PATH".into(), "/x".into())]),
                ConfigChange::Entrypoint {
                    entrypoint: vec!["/e".into()],
                    reset_cmd: true,
                },
                ConfigChange::ExposedPorts(vec!["80/tcp".into()]),
                ConfigChange::Author("me".into()),
            ],
        };
        assert_eq!(d.apply(&mut cfg).as_deref(), Some("me"));
        assert_eq!(cfg.env, vec!["PATH=/x", "A=1"]);
        assert_eq!(cfg.cmd, None);
        assert_eq!(cfg.env_get("A"), Some("1"));
        let json = serde_json::to_string(&cfg).unwrap();
        assert_eq!(
            json,
            r#"{"ExposedPorts":{"80/tcp":{}},"Env":["PATH=/x","A=1"],"Entrypoint":["/e"]}"#
        );
        let back: ImageConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cfg);
    }
}
