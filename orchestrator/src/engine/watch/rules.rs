//! A service's `develop.watch` rules, read from the Compose model, and the pure question
//! "which rule does this changed host path concern, and where does it go in the container".
//!
//! As Compose does: a rule's `path` is relative to the project directory and watched
//! recursively; its `ignore` and `include` patterns are `.dockerignore` patterns relative to
//! that path; the build context's `.dockerignore` applies to paths inside the context; `.git`
//! directories and editors' temporary files are always ignored. A path outside the project
//! directory is refused, so a Compose file cannot make the daemon follow (and copy into a
//! container) any file of the host.

use std::path::{Component, Path, PathBuf};

use berth_runtime::build::ignore::IgnoreRules;
use serde::Deserialize;

use crate::compose::Project;

/// A rule that cannot be followed: the service and rule are named.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("service {service}: develop.watch[{index}]: {message}")]
    Invalid {
        service: String,
        index: usize,
        message: String,
    },
    #[error("service {service}: develop: {message}")]
    Develop { service: String, message: String },
}

/// What a rule does when a path it follows changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Copy the changes (deletions too) into the running containers.
    Sync,
    /// Rebuild the image and recreate the service.
    Rebuild,
    /// Restart the service's containers.
    Restart,
    /// Sync, then restart.
    SyncRestart,
    /// Sync, then run the rule's command in each container.
    SyncExec,
}

impl Action {
    fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "sync" => Action::Sync,
            "rebuild" => Action::Rebuild,
            "restart" => Action::Restart,
            "sync+restart" => Action::SyncRestart,
            "sync+exec" => Action::SyncExec,
            _ => return None,
        })
    }

    /// The spelling of the Compose file.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Sync => "sync",
            Action::Rebuild => "rebuild",
            Action::Restart => "restart",
            Action::SyncRestart => "sync+restart",
            Action::SyncExec => "sync+exec",
        }
    }

    /// True when the action copies files into the containers first.
    pub fn syncs(self) -> bool {
        matches!(self, Action::Sync | Action::SyncRestart | Action::SyncExec)
    }
}

/// The command of a `sync+exec` rule.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExecCommand {
    pub command: Vec<String>,
    pub user: Option<String>,
    pub working_dir: Option<PathBuf>,
    pub environment: Vec<String>,
}

/// One rule, resolved against the project directory.
#[derive(Debug, Clone)]
pub struct Rule {
    pub action: Action,
    /// Absolute, lexically clean host path.
    pub path: PathBuf,
    /// The container path the rule syncs to (sync actions only).
    pub target: Option<PathBuf>,
    ignore: IgnoreRules,
    include: Option<IgnoreRules>,
    /// The build context and its `.dockerignore`, when the service builds.
    context: Option<(PathBuf, IgnoreRules)>,
    pub exec: Option<ExecCommand>,
    pub initial_sync: bool,
}

#[derive(Deserialize)]
struct RawDevelop {
    #[serde(default)]
    watch: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    action: String,
    path: String,
    target: Option<String>,
    #[serde(default)]
    ignore: Vec<String>,
    #[serde(default)]
    include: Vec<String>,
    exec: Option<RawExec>,
    #[serde(default)]
    initial_sync: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StringOrList {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum EnvForm {
    List(Vec<String>),
    Map(std::collections::BTreeMap<String, Option<serde_json::Value>>),
}

#[derive(Deserialize)]
struct RawExec {
    command: StringOrList,
    user: Option<String>,
    #[serde(default)]
    privileged: bool,
    working_dir: Option<String>,
    environment: Option<EnvForm>,
}

/// Go's `path.Clean` on a host path: `.` dropped, `..` taken back lexically.
pub fn clean(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// The `develop.watch` rules of `service` (none when it has no `develop`).
pub fn rules_of(project: &Project, service: &str) -> Result<Vec<Rule>, RuleError> {
    let Some(svc) = project.services.get(service) else {
        return Err(RuleError::Develop {
            service: service.to_string(),
            message: "no such service".into(),
        });
    };
    let Some(develop) = &svc.develop else {
        return Ok(Vec::new());
    };
    let develop: RawDevelop = serde_json::to_value(develop)
        .and_then(serde_json::from_value)
        .map_err(|e| RuleError::Develop {
            service: service.to_string(),
            message: e.to_string(),
        })?;
    let context = svc.build.as_ref().map(|b| {
        let dir = clean(&project.working_dir.join(&b.context));
        let rules = std::fs::read_to_string(dir.join(".dockerignore"))
            .ok()
            .and_then(|t| IgnoreRules::parse(&t).ok())
            .unwrap_or_default();
        (dir, rules)
    });
    let project_dir = clean(&project.working_dir);
    develop
        .watch
        .into_iter()
        .enumerate()
        .map(|(index, raw)| {
            let bad = |message: String| RuleError::Invalid {
                service: service.to_string(),
                index,
                message,
            };
            resolve(raw, &project_dir, context.clone()).map_err(bad)
        })
        .collect()
}

fn patterns(list: &[String], what: &str) -> Result<IgnoreRules, String> {
    IgnoreRules::parse(&list.join("\n")).map_err(|e| format!("{what}: {e}"))
}

fn resolve(
    raw: RawRule,
    project_dir: &Path,
    context: Option<(PathBuf, IgnoreRules)>,
) -> Result<Rule, String> {
    let action = Action::parse(&raw.action).ok_or_else(|| {
        format!(
            "action {:?}: use sync, rebuild, restart, sync+restart or sync+exec",
            raw.action
        )
    })?;
    if raw.path.is_empty() {
        return Err("path is empty".into());
    }
    let path = clean(&project_dir.join(&raw.path));
    if !path.starts_with(project_dir) {
        return Err(format!(
            "path {} is outside the project directory {}",
            path.display(),
            project_dir.display()
        ));
    }
    let target = match (&raw.target, action.syncs()) {
        (Some(t), true) => {
            let t = clean(Path::new(t));
            if !t.is_absolute() {
                return Err(format!("target {:?} must be an absolute path", raw.target));
            }
            Some(t)
        }
        (None, true) => return Err(format!("action {} needs a target", action.as_str())),
        (_, false) => None,
    };
    let exec = match (raw.exec, action) {
        (Some(e), Action::SyncExec) => {
            if e.privileged {
                return Err("exec.privileged: berth runs watch commands unprivileged only".into());
            }
            let command = match e.command {
                StringOrList::One(s) => {
                    shell_words::split(&s).map_err(|err| format!("exec.command {s:?}: {err}"))?
                }
                StringOrList::Many(v) => v,
            };
            if command.is_empty() {
                return Err("exec.command is empty".into());
            }
            let environment = match e.environment {
                None => Vec::new(),
                Some(EnvForm::List(l)) => l,
                Some(EnvForm::Map(m)) => m
                    .into_iter()
                    .map(|(k, v)| match v {
                        Some(serde_json::Value::String(s)) => format!("{k}={s}"),
                        Some(serde_json::Value::Null) | None => k,
                        Some(other) => format!("{k}={other}"),
                    })
                    .collect(),
            };
            Some(ExecCommand {
                command,
                user: e.user,
                working_dir: e.working_dir.map(PathBuf::from),
                environment,
            })
        }
        (None, Action::SyncExec) => return Err("action sync+exec needs exec.command".into()),
        (Some(_), _) => return Err("exec is only for action sync+exec".into()),
        (None, _) => None,
    };
    Ok(Rule {
        action,
        path,
        target,
        ignore: patterns(&raw.ignore, "ignore")?,
        include: if raw.include.is_empty() {
            None
        } else {
            Some(patterns(&raw.include, "include")?)
        },
        context,
        exec,
        initial_sync: raw.initial_sync,
    })
}

/// Editors' temporary and backup files and `.git` directories, which no rule follows
/// (Vim swap files and its `4913` probe, Emacs lock and autosave files, `~` backups,
/// JetBrains' safe-write files, macOS folder metadata).
pub fn is_ephemeral(rel: &Path) -> bool {
    if rel.components().any(|c| c.as_os_str() == ".git") {
        return true;
    }
    let Some(name) = rel.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    name.ends_with(".swp")
        || name.ends_with(".swx")
        || name.ends_with(".swo")
        || name.ends_with('~')
        || name.starts_with(".#")
        || (name.starts_with('#') && name.ends_with('#') && name.len() > 1)
        || name == "4913"
        || name == ".DS_Store"
        || name.ends_with("___jb_tmp___")
        || name.ends_with("___jb_old___")
}

fn slash(rel: &Path) -> String {
    rel.to_string_lossy().into_owned()
}

impl Rule {
    /// The path of `host` relative to the rule's path when the rule follows it (empty when
    /// the rule's path is that very file), `None` when it is outside, ignored or not
    /// included.
    pub fn matches(&self, host: &Path) -> Option<PathBuf> {
        let host = clean(host);
        let rel = host.strip_prefix(&self.path).ok()?.to_path_buf();
        if is_ephemeral(&rel) {
            return None;
        }
        if !rel.as_os_str().is_empty() {
            let r = slash(&rel);
            if self.ignore.is_excluded(&r) {
                return None;
            }
            if let Some(include) = &self.include
                && !include.is_excluded(&r)
            {
                return None;
            }
        }
        if let Some((dir, rules)) = &self.context
            && let Ok(in_ctx) = host.strip_prefix(dir)
            && !in_ctx.as_os_str().is_empty()
            && rules.is_excluded(&slash(in_ctx))
        {
            return None;
        }
        Some(rel)
    }

    /// Where the host file at `rel` (from [`Rule::matches`]) lands in the container.
    pub fn container_path(&self, rel: &Path) -> Option<PathBuf> {
        let t = self.target.as_ref()?;
        Some(if rel.as_os_str().is_empty() {
            t.clone()
        } else {
            t.join(rel)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(yaml_rules: &str, dir: &Path) -> Project {
        let mut p = Project {
            working_dir: dir.to_path_buf(),
            ..Default::default()
        };
        let develop: yaml_serde::Value =
            yaml_serde::from_str(&format!("watch:\n{yaml_rules}")).expect("fixture yaml");
        let svc = crate::compose::Service {
            develop: Some(develop),
            ..Default::default()
        };
        p.services.insert("web".into(), svc);
        p
    }

    fn rules(yaml_rules: &str) -> Result<Vec<Rule>, RuleError> {
        rules_of(&project(yaml_rules, Path::new("/proj")), "web")
    }

    #[test]
    fn sync_rule_maps_paths_under_target() {
        let r = rules("  - {action: sync, path: ./src, target: /app}\n").expect("rules");
        assert_eq!(r.len(), 1);
        let rule = &r[0];
        assert_eq!(rule.path, PathBuf::from("/proj/src"));
        let rel = rule
            .matches(Path::new("/proj/src/a/b.js"))
            .expect("matches");
        assert_eq!(rel, PathBuf::from("a/b.js"));
        assert_eq!(
            rule.container_path(&rel),
            Some(PathBuf::from("/app/a/b.js"))
        );
        assert_eq!(rule.matches(Path::new("/proj/srcfoo/x")), None);
        assert_eq!(rule.matches(Path::new("/proj/other/x")), None);
    }

    #[test]
    fn ignore_patterns_are_relative_to_the_rule_path() {
        let r = rules(
            "  - action: sync\n    path: src\n    target: /app\n    ignore: [node_modules/, '*.log']\n",
        )
        .expect("rules");
        let rule = &r[0];
        assert_eq!(
            rule.matches(Path::new("/proj/src/node_modules/x/y.js")),
            None
        );
        assert_eq!(rule.matches(Path::new("/proj/src/debug.log")), None);
        assert!(rule.matches(Path::new("/proj/src/sub/debug.log")).is_some());
        assert!(rule.matches(Path::new("/proj/src/index.js")).is_some());
    }

    #[test]
    fn include_limits_what_triggers() {
        let r = rules("  - action: rebuild\n    path: .\n    include: ['*.json', 'lib/**']\n")
            .expect("rules");
        let rule = &r[0];
        assert!(rule.matches(Path::new("/proj/package.json")).is_some());
        assert!(rule.matches(Path::new("/proj/lib/a/b.c")).is_some());
        assert_eq!(rule.matches(Path::new("/proj/README.md")), None);
    }

    #[test]
    fn git_and_editor_files_never_match() {
        let r = rules("  - {action: sync, path: ., target: /app}\n").expect("rules");
        let rule = &r[0];
        for p in [
            "/proj/.git/index",
            "/proj/a/.main.c.swp",
            "/proj/a/main.c~",
            "/proj/a/.#main.c",
            "/proj/a/#main.c#",
            "/proj/a/4913",
        ] {
            assert_eq!(rule.matches(Path::new(p)), None, "{p}");
        }
        assert!(rule.matches(Path::new("/proj/a/main.c")).is_some());
    }

    #[test]
    fn dockerignore_of_the_build_context_applies() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(".dockerignore"), "secret.txt\nbuild/\n").expect("write");
        let mut p = project("  - {action: sync, path: ., target: /app}\n", dir.path());
        if let Some(svc) = p.services.get_mut("web") {
            svc.build = Some(crate::compose::Build {
                context: dir.path().display().to_string(),
                ..Default::default()
            });
        }
        let r = rules_of(&p, "web").expect("rules");
        let rule = &r[0];
        assert_eq!(rule.matches(&dir.path().join("secret.txt")), None);
        assert_eq!(rule.matches(&dir.path().join("build/out.o")), None);
        assert!(rule.matches(&dir.path().join("main.c")).is_some());
    }

    #[test]
    fn a_file_rule_maps_to_its_target() {
        let r = rules("  - {action: sync, path: ./nginx.conf, target: /etc/nginx/nginx.conf}\n")
            .expect("rules");
        let rule = &r[0];
        let rel = rule
            .matches(Path::new("/proj/nginx.conf"))
            .expect("matches");
        assert!(rel.as_os_str().is_empty());
        assert_eq!(
            rule.container_path(&rel),
            Some(PathBuf::from("/etc/nginx/nginx.conf"))
        );
    }

    #[test]
    fn bad_rules_are_refused_by_name() {
        let e = |y: &str| rules(y).expect_err("refused").to_string();
        assert!(e("  - {action: sync, path: ../etc, target: /app}\n").contains("outside"));
        assert!(e("  - {action: sync, path: /etc, target: /app}\n").contains("outside"));
        assert!(e("  - {action: sync, path: ./src}\n").contains("needs a target"));
        assert!(e("  - {action: copy, path: ./src}\n").contains("action \"copy\""));
        assert!(e("  - {action: sync, path: src, target: app}\n").contains("absolute"));
        assert!(e("  - {action: sync+exec, path: src, target: /app}\n").contains("exec.command"));
        assert!(e("  - {action: sync, path: src, target: /app, bogus: 1}\n").contains("bogus"));
        assert!(
            e("  - {action: sync+exec, path: src, target: /app, exec: {command: x, privileged: true}}\n")
                .contains("privileged")
        );
    }

    #[test]
    fn sync_exec_reads_its_command() {
        let r = rules(
            "  - action: sync+exec\n    path: src\n    target: /app\n    exec:\n      command: sh -c 'echo hi'\n      user: '0'\n      environment: {A: b}\n",
        )
        .expect("rules");
        let ex = r[0].exec.clone().expect("exec");
        assert_eq!(ex.command, vec!["sh", "-c", "echo hi"]);
        assert_eq!(ex.user.as_deref(), Some("0"));
        assert_eq!(ex.environment, vec!["A=b"]);
    }
}
