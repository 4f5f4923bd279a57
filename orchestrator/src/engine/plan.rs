//! A plan: the engine operations one `up`, `down` or project verb (`stop`, `kill`, ...) needs,
//! with the order they must respect.
//!
//! Each node is one runtime or netd call; edges say what must finish first. The executor walks
//! the nodes in parallel as their edges allow. `Display` renders one line per node so that
//! tests can assert whole plans as golden text and `--dry-run` can print them.

use std::collections::BTreeMap;
use std::fmt;

use crate::compose::DependsCondition;

/// One operation of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    CreateNetwork {
        key: String,
        name: String,
    },
    CreateVolume {
        key: String,
        name: String,
    },
    /// Pull or build the service's image according to its pull policy and `build:`.
    EnsureImage {
        service: String,
        image: String,
        build: bool,
    },
    /// Stop (if running) and remove an existing container.
    RemoveContainer {
        service: String,
        name: String,
        id: String,
        cause: String,
        /// `down -v`: its anonymous volumes go too (else they stay, dangling or inherited).
        volumes: bool,
    },
    CreateContainer {
        service: String,
        number: u32,
        name: String,
        cause: String,
        /// Anonymous volumes of the container it replaces, by target path: the new container
        /// mounts them again at the same targets (empty with `-V`, for a new replica).
        inherit: BTreeMap<String, String>,
    },
    StartContainer {
        service: String,
        name: String,
    },
    /// Restart a kept container because a dependency declared with `restart: true` changed.
    RestartContainer {
        service: String,
        name: String,
        cause: String,
    },
    /// Block until `dependency` meets `condition`, before `service` may start.
    WaitDependency {
        service: String,
        dependency: String,
        condition: DependsCondition,
        required: bool,
    },
    /// Stop a container (its own grace period unless the verb gives one).
    StopContainer {
        service: String,
        name: String,
        id: String,
    },
    /// Send a signal to a running container.
    KillContainer {
        service: String,
        name: String,
        id: String,
        signal: i32,
    },
    /// Freeze a running container with the cgroup freezer.
    PauseContainer {
        service: String,
        name: String,
        id: String,
    },
    /// Thaw a paused container.
    UnpauseContainer {
        service: String,
        name: String,
        id: String,
    },
    RemoveNetwork {
        name: String,
    },
    RemoveVolume {
        name: String,
    },
}

/// A step and the indexes of the nodes it waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanNode {
    pub step: Step,
    pub after: Vec<usize>,
}

/// An ordered set of steps; empty when the project already is as desired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub nodes: Vec<PlanNode>,
    /// Things the user should know but that change nothing (orphans kept, ...).
    pub warnings: Vec<String>,
}

impl Plan {
    /// Adds a node and returns its index, for later nodes' `after` lists.
    pub fn push(&mut self, step: Step, mut after: Vec<usize>) -> usize {
        after.sort_unstable();
        after.dedup();
        self.nodes.push(PlanNode { step, after });
        self.nodes.len() - 1
    }

    /// True when nothing needs to be done.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

fn condition_name(c: DependsCondition) -> &'static str {
    match c {
        DependsCondition::ServiceStarted => "service_started",
        DependsCondition::ServiceHealthy => "service_healthy",
        DependsCondition::ServiceCompletedSuccessfully => "service_completed_successfully",
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::CreateNetwork { key, name } => write!(f, "CreateNetwork {name} ({key})"),
            Step::CreateVolume { key, name } => write!(f, "CreateVolume {name} ({key})"),
            Step::EnsureImage {
                service,
                image,
                build,
            } => {
                let how = if *build { "build" } else { "pull if missing" };
                write!(f, "EnsureImage {image} for {service} ({how})")
            }
            Step::RemoveContainer {
                name,
                cause,
                volumes,
                ..
            } => {
                write!(f, "RemoveContainer {name} ({cause})")?;
                if *volumes {
                    write!(f, " with its anonymous volumes")?;
                }
                Ok(())
            }
            Step::CreateContainer {
                name,
                cause,
                inherit,
                ..
            } => {
                write!(f, "CreateContainer {name} ({cause})")?;
                if !inherit.is_empty() {
                    let targets: Vec<&str> = inherit.keys().map(String::as_str).collect();
                    write!(f, " keeping anonymous volumes at {}", targets.join(" "))?;
                }
                Ok(())
            }
            Step::StartContainer { name, .. } => write!(f, "StartContainer {name}"),
            Step::RestartContainer { name, cause, .. } => {
                write!(f, "RestartContainer {name} ({cause})")
            }
            Step::WaitDependency {
                service,
                dependency,
                condition,
                required,
            } => {
                let opt = if *required { "" } else { ", optional" };
                write!(
                    f,
                    "WaitDependency {service} on {dependency} {}{opt}",
                    condition_name(*condition)
                )
            }
            Step::StopContainer { name, .. } => write!(f, "StopContainer {name}"),
            Step::KillContainer { name, signal, .. } => {
                write!(f, "KillContainer {name} (signal {signal})")
            }
            Step::PauseContainer { name, .. } => write!(f, "PauseContainer {name}"),
            Step::UnpauseContainer { name, .. } => write!(f, "UnpauseContainer {name}"),
            Step::RemoveNetwork { name } => write!(f, "RemoveNetwork {name}"),
            Step::RemoveVolume { name } => write!(f, "RemoveVolume {name}"),
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, node) in self.nodes.iter().enumerate() {
            write!(f, "[{i}] {}", node.step)?;
            if !node.after.is_empty() {
                let after: Vec<String> = node.after.iter().map(|a| format!("#{a}")).collect();
                write!(f, " after {}", after.join(" "))?;
            }
            writeln!(f)?;
        }
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        Ok(())
    }
}
