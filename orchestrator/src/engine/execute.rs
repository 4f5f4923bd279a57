//! Runs a plan: every node whose predecessors finished is started, up to a concurrency limit.
//!
//! The executor carries no decisions (those are the planner's); it only respects edges, bounds
//! parallelism (USERS.md §4: unbounded parallelism brings hosts to a crawl) and collects errors.
//! `up` stops scheduling at the first failure; `down` keeps going and reports every failure.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::task::JoinSet;

use super::plan::{Plan, Step};

/// Does one step for real; implemented over the runtime and netd by the daemon.
pub trait Backend: Send + Sync + 'static {
    /// Performs `step`; the error is shown to the user with the step in front of it.
    fn run(&self, step: Step) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>>;
}

/// How to run a plan.
#[derive(Debug, Clone, Copy)]
pub struct ExecOptions {
    /// At most this many steps at once.
    pub parallel: usize,
    /// Keep starting independent steps after a failure (teardown), instead of stopping (setup).
    pub keep_going: bool,
    /// A failed step still releases the steps after it: the edges only order (the project
    /// verbs try every container, level by level, whatever happened to the level before).
    pub release_on_failure: bool,
}

impl Default for ExecOptions {
    fn default() -> Self {
        Self {
            parallel: std::thread::available_parallelism()
                .map(|n| n.get() * 4)
                .unwrap_or(8),
            keep_going: false,
            release_on_failure: false,
        }
    }
}

/// A step that failed, with the daemon-side reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFailure {
    pub node: usize,
    pub step: String,
    pub error: String,
}

/// What happened to a plan: failures, and the nodes never started because of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecReport {
    pub done: Vec<usize>,
    pub failures: Vec<StepFailure>,
    pub skipped: Vec<usize>,
}

impl ExecReport {
    /// True when every node ran and none failed.
    pub fn ok(&self) -> bool {
        self.failures.is_empty() && self.skipped.is_empty()
    }
}

/// Runs `plan` on `backend` and reports what happened.
pub async fn execute<B: Backend>(plan: &Plan, backend: Arc<B>, opts: ExecOptions) -> ExecReport {
    let n = plan.nodes.len();
    // Each node's count of predecessors not released yet, and who waits on whom: a finished
    // step releases its successors directly, rather than every node being checked again
    // after each step (a stack of N services would cost N^2).
    let mut waiting: Vec<usize> = Vec::with_capacity(n);
    let mut successors: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, node) in plan.nodes.iter().enumerate() {
        let preds: BTreeSet<usize> = node.after.iter().copied().collect();
        waiting.push(preds.len());
        for p in preds {
            if let Some(s) = successors.get_mut(p) {
                s.push(i);
            }
        }
    }
    // Nodes whose predecessors are all released, started in index order.
    let mut ready: BTreeSet<usize> = (0..n).filter(|i| waiting[*i] == 0).collect();
    let mut failed: BTreeSet<usize> = BTreeSet::new();
    let mut started: BTreeSet<usize> = BTreeSet::new();
    let mut report = ExecReport::default();
    let mut running: JoinSet<(usize, Result<(), String>)> = JoinSet::new();
    let parallel = opts.parallel.max(1);
    let release = |i: usize, waiting: &mut Vec<usize>, ready: &mut BTreeSet<usize>| {
        for &s in &successors[i] {
            waiting[s] -= 1;
            if waiting[s] == 0 {
                ready.insert(s);
            }
        }
    };
    loop {
        let stop = !opts.keep_going && !failed.is_empty();
        if !stop {
            while running.len() < parallel {
                let Some(i) = ready.pop_first() else {
                    break;
                };
                started.insert(i);
                let backend = backend.clone();
                let step = plan.nodes[i].step.clone();
                running.spawn(async move { (i, backend.run(step).await) });
            }
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        match joined {
            Ok((i, Ok(()))) => {
                release(i, &mut waiting, &mut ready);
                report.done.push(i);
            }
            Ok((i, Err(error))) => {
                failed.insert(i);
                if opts.release_on_failure {
                    release(i, &mut waiting, &mut ready);
                }
                report.failures.push(StepFailure {
                    node: i,
                    step: plan.nodes[i].step.to_string(),
                    error,
                });
            }
            Err(join_err) => {
                // A panicking step is a bug; report it as that step's failure is not possible
                // (the index is lost), so record it against no node.
                report.failures.push(StepFailure {
                    node: usize::MAX,
                    step: "unknown step".into(),
                    error: format!("step task failed: {join_err}"),
                });
                failed.insert(usize::MAX);
            }
        }
    }
    report.skipped = (0..n).filter(|i| !started.contains(i)).collect();
    report
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    /// Records when each step starts and ends; fails the steps it is told to.
    #[derive(Default)]
    struct Recorder {
        log: Mutex<Vec<String>>,
        fail: Vec<String>,
        active: Mutex<(usize, usize)>,
    }

    impl Backend for Recorder {
        fn run(&self, step: Step) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
            Box::pin(async move {
                let name = step.to_string();
                {
                    let mut a = self.active.lock().expect("lock");
                    a.0 += 1;
                    a.1 = a.1.max(a.0);
                }
                self.log.lock().expect("lock").push(format!("start {name}"));
                tokio::time::sleep(Duration::from_millis(5)).await;
                self.log.lock().expect("lock").push(format!("end {name}"));
                self.active.lock().expect("lock").0 -= 1;
                if self.fail.contains(&name) {
                    Err("boom".into())
                } else {
                    Ok(())
                }
            })
        }
    }

    fn net(name: &str) -> Step {
        Step::CreateNetwork {
            key: name.into(),
            name: name.into(),
        }
    }

    fn pos(log: &[String], what: &str) -> usize {
        log.iter()
            .position(|l| l == what)
            .unwrap_or_else(|| panic!("{what} not in {log:?}"))
    }

    #[tokio::test]
    async fn edges_are_respected_and_independent_steps_overlap() {
        let mut plan = Plan::default();
        let a = plan.push(net("a"), vec![]);
        let b = plan.push(net("b"), vec![]);
        plan.push(net("c"), vec![a, b]);
        let rec = Arc::new(Recorder::default());
        let report = execute(&plan, rec.clone(), ExecOptions::default()).await;
        assert!(report.ok(), "{report:?}");
        let log = rec.log.lock().expect("lock").clone();
        let c = pos(&log, "start CreateNetwork c (c)");
        assert!(pos(&log, "end CreateNetwork a (a)") < c);
        assert!(pos(&log, "end CreateNetwork b (b)") < c);
        assert_eq!(
            rec.active.lock().expect("lock").1,
            2,
            "a and b ran together"
        );
    }

    #[tokio::test]
    async fn parallelism_is_bounded() {
        let mut plan = Plan::default();
        for i in 0..10 {
            plan.push(net(&format!("n{i}")), vec![]);
        }
        let rec = Arc::new(Recorder::default());
        let opts = ExecOptions {
            parallel: 3,
            ..ExecOptions::default()
        };
        assert!(execute(&plan, rec.clone(), opts).await.ok());
        assert_eq!(rec.active.lock().expect("lock").1, 3);
    }

    #[tokio::test]
    async fn setup_stops_at_first_failure_teardown_keeps_going() {
        let mut plan = Plan::default();
        let a = plan.push(net("a"), vec![]);
        plan.push(net("after-a"), vec![a]);
        let rec = Arc::new(Recorder {
            fail: vec!["CreateNetwork a (a)".into()],
            ..Recorder::default()
        });
        let opts = ExecOptions {
            parallel: 1,
            ..ExecOptions::default()
        };
        let report = execute(&plan, rec, opts).await;
        assert_eq!(report.failures.len(), 1);
        assert_eq!(report.failures[0].error, "boom");
        assert_eq!(report.skipped, vec![1]);

        let mut plan = Plan::default();
        plan.push(net("x"), vec![]);
        plan.push(net("y"), vec![]);
        let rec = Arc::new(Recorder {
            fail: vec!["CreateNetwork x (x)".into()],
            ..Recorder::default()
        });
        let opts = ExecOptions {
            parallel: 1,
            keep_going: true,
            ..ExecOptions::default()
        };
        let report = execute(&plan, rec, opts).await;
        assert_eq!(report.failures.len(), 1);
        assert_eq!(report.done, vec![1], "y still ran");
    }

    #[tokio::test]
    async fn released_on_failure_the_next_level_still_runs() {
        let mut plan = Plan::default();
        let a = plan.push(net("a"), vec![]);
        plan.push(net("after-a"), vec![a]);
        let fail_a = || {
            Arc::new(Recorder {
                fail: vec!["CreateNetwork a (a)".into()],
                ..Recorder::default()
            })
        };
        let opts = ExecOptions {
            keep_going: true,
            ..ExecOptions::default()
        };
        let report = execute(&plan, fail_a(), opts).await;
        assert_eq!(
            report.skipped,
            vec![1],
            "a failure holds back what needs it"
        );
        let opts = ExecOptions {
            keep_going: true,
            release_on_failure: true,
            ..ExecOptions::default()
        };
        let report = execute(&plan, fail_a(), opts).await;
        assert_eq!(report.failures.len(), 1);
        assert_eq!(report.done, vec![1], "after-a ran once a had finished");
    }
}
