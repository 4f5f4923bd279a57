//! Real-time CPU time of a container (`--cpu-rt-period`, `--cpu-rt-runtime`): its cgroup's
//! `cpu.rt_period_us` / `cpu.rt_runtime_us` (cgroup v1 with RT group scheduling; v2 has no
//! such files), and the budget of the cgroups above it.
//!
//! The kernel lets a cgroup claim real-time runtime only within its parent's, counted as a
//! share of each one's period, and a new cgroup has none. So before a container's runtime is
//! written, each cgroup between the hierarchy's root and the container gets the container's
//! share added to its own, from the top down (a parent first); when the container's cgroup
//! goes, or its runtime is lowered, the share is taken back from the bottom up, never below
//! what the remaining children claim. A budget someone set by hand on a parent stays as it
//! was. The root's budget is the host's (`kernel.sched_rt_runtime_us`) and is never changed: a
//! claim beyond what it has left fails, saying how much is left. A lock on the hierarchy's
//! root directory serialises the berth processes (daemon, shims) changing budgets.

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::cgroups::{Cgroup, CgroupError, write};

const PERIOD: &str = "cpu.rt_period_us";
const RUNTIME: &str = "cpu.rt_runtime_us";

/// A cgroup's real-time runtime per period, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    pub period: u64,
    pub runtime: u64,
}

impl Claim {
    /// This claim as runtime per `period` of another cgroup, rounded up (so that the
    /// kernel's comparison of the two shares holds).
    fn share(self, period: u64) -> u64 {
        if self.period == 0 {
            return 0;
        }
        let n = u128::from(self.runtime) * u128::from(period);
        u64::try_from(n.div_ceil(u128::from(self.period))).unwrap_or(u64::MAX)
    }
}

/// A claim the host's real-time budget cannot hold: what was asked, what the root of the
/// cpu hierarchy has left for it.
#[derive(Debug)]
pub struct BudgetLeft {
    pub asked: Claim,
    pub left: Claim,
    pub root: PathBuf,
}

impl std::fmt::Display for BudgetLeft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "real-time CPU time of {} µs per {} µs was asked, but the host's real-time budget \
             ({}/{RUNTIME} less what other cgroups claim) has {} µs per {} µs left",
            self.asked.runtime,
            self.asked.period,
            self.root.display(),
            self.left.runtime,
            self.left.period
        )
    }
}

fn read_u64(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The claim of the cgroup at `dir` (`None` without RT files there).
pub fn read_claim(dir: &Path) -> Option<Claim> {
    Some(Claim {
        period: read_u64(&dir.join(PERIOD))?,
        runtime: read_u64(&dir.join(RUNTIME))?,
    })
}

/// Whether this host can give a container real-time CPU time: cgroup v1 with the cpu
/// controller's RT files (a kernel with `CONFIG_RT_GROUP_SCHED`).
pub fn supported() -> bool {
    match Cgroup::locate("") {
        Ok(cg @ Cgroup::V1 { .. }) => cg.v1_dir("cpu").is_some_and(|d| d.join(RUNTIME).exists()),
        _ => false,
    }
}

/// An exclusive lock on a cgroup directory (advisory, between berth processes), released
/// when dropped.
struct DirLock {
    _file: fs::File,
}

impl DirLock {
    fn take(dir: &Path) -> Result<DirLock, CgroupError> {
        let f = fs::File::open(dir).map_err(|source| CgroupError::Create {
            path: dir.to_path_buf(),
            source,
        })?;
        loop {
            // SAFETY: flock on a descriptor we own.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(DirLock { _file: f });
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(CgroupError::Create {
                    path: dir.to_path_buf(),
                    source: e,
                });
            }
        }
    }
}

/// The cgroups strictly between `root` and `dir`, the top one first.
fn ancestors(root: &Path, dir: &Path) -> Vec<PathBuf> {
    let Ok(rel) = dir.strip_prefix(root) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut at = root.to_path_buf();
    let parts: Vec<_> = rel.components().collect();
    for part in parts.iter().take(parts.len().saturating_sub(1)) {
        at.push(part);
        out.push(at.clone());
    }
    out
}

/// What the children of `dir` claim, as runtime per `period` (`dir`'s own).
fn children_claim(dir: &Path, period: u64) -> u64 {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| read_claim(&e.path()))
        .map(|c| c.share(period))
        .sum()
}

/// How much real-time runtime `root` has left for one more child, per its period.
fn left_at(root: &Path) -> Option<Claim> {
    let own = read_claim(root)?;
    Some(Claim {
        period: own.period,
        runtime: own.runtime.saturating_sub(children_claim(root, own.period)),
    })
}

/// Adds `claim`'s share (less `had`'s, which the cgroups already hold) to each of
/// `ancestors`, top first; on a refusal the ones raised go back and the error says what the
/// hierarchy's `root` has left.
fn grant(root: &Path, ancestors: &[PathBuf], claim: Claim, had: Claim) -> Result<(), CgroupError> {
    let mut raised: Vec<(PathBuf, u64)> = Vec::new();
    for a in ancestors {
        let Some(cur) = read_claim(a) else { continue };
        let more = claim
            .share(cur.period)
            .saturating_sub(had.share(cur.period));
        if more == 0 {
            continue;
        }
        let file = a.join(RUNTIME);
        if let Err(e) = write(&file, &(cur.runtime + more).to_string()) {
            for (p, old) in raised.iter().rev() {
                let _ = write(&p.join(RUNTIME), &old.to_string());
            }
            return Err(match (raised.is_empty(), left_at(root)) {
                (true, Some(left)) if left.share(claim.period) < claim.runtime => {
                    CgroupError::RealtimeBudget(Box::new(BudgetLeft {
                        asked: claim,
                        left,
                        root: root.to_path_buf(),
                    }))
                }
                _ => e,
            });
        }
        raised.push((a.clone(), cur.runtime));
    }
    Ok(())
}

/// Takes `amount(period)` back from each of `ancestors` that still exists (the runtime per
/// its own period), the bottom one first, never below what its children claim.
fn release(ancestors: &[PathBuf], amount: impl Fn(u64) -> u64) {
    for a in ancestors.iter().rev() {
        let Some(cur) = read_claim(a) else { continue };
        let floor = children_claim(a, cur.period);
        let new = cur.runtime.saturating_sub(amount(cur.period)).max(floor);
        if new >= cur.runtime {
            continue;
        }
        // A child just removed still counts until the kernel has released it (a few ms
        // after its rmdir): the lower value is refused until then.
        let mut tries = 0;
        while let Err(e) = write(&a.join(RUNTIME), &new.to_string()) {
            tries += 1;
            let einval = matches!(&e, CgroupError::Write { source, .. }
                if source.raw_os_error() == Some(libc::EINVAL));
            if !einval || tries >= 100 {
                tracing::warn!(cgroup = %a.display(), error = %e, "returning real-time CPU budget");
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// Gives the container cgroup `dir` (under the cpu hierarchy's `root`) the real-time
/// `period` and `runtime` asked (each `None`: unchanged), moving budget to or from the
/// cgroups above it.
pub(super) fn set(
    root: &Path,
    dir: &Path,
    period: Option<u64>,
    runtime: Option<u64>,
) -> Result<(), CgroupError> {
    let _lock = DirLock::take(root)?;
    let Some(old) = read_claim(dir) else {
        return Err(CgroupError::NotOnThisHost {
            what: "real-time CPU time",
            file: dir.join(RUNTIME),
        });
    };
    let new = Claim {
        period: period.unwrap_or(old.period),
        runtime: runtime.unwrap_or(old.runtime),
    };
    // The period is written before the runtime: the cgroup claims this on the way.
    let between = Claim {
        period: new.period,
        runtime: old.runtime,
    };
    let ups = ancestors(root, dir);
    let most = [old, new, between]
        .into_iter()
        .max_by_key(|c| c.share(1 << 20))
        .unwrap_or(new);
    grant(root, &ups, most, old)?;
    let written = (|| {
        if new.period != old.period {
            write(&dir.join(PERIOD), &new.period.to_string())?;
        }
        if new.runtime != old.runtime {
            write(&dir.join(RUNTIME), &new.runtime.to_string())?;
        }
        Ok(())
    })();
    let now = read_claim(dir).unwrap_or(old);
    // What was granted beyond the claim the cgroup ends with goes back.
    release(&ups, |p| most.share(p).saturating_sub(now.share(p)));
    written
}

/// A container cgroup's real-time claim, to give back once the cgroup is gone.
#[derive(Debug)]
pub struct Held {
    root: PathBuf,
    dir: PathBuf,
    claim: Claim,
}

impl Held {
    /// The claim of the cgroup `dir` under the cpu hierarchy's `root` (`None`: it has none).
    pub(super) fn of(root: PathBuf, dir: PathBuf) -> Option<Held> {
        let claim = read_claim(&dir).filter(|c| c.runtime > 0)?;
        Some(Held { root, dir, claim })
    }

    /// Drops the cgroup's own claim while it still exists (its tasks gone or no longer
    /// real-time), so the kernel stops counting it at once; best effort, before its rmdir.
    pub fn drop_own(&self) {
        let _ = fs::write(self.dir.join(RUNTIME), "0");
    }

    /// Gives the claim back to the cgroups above, once the cgroup is gone (while it exists
    /// the kernel still counts it).
    pub fn give_back(self) {
        if !self.dir.exists() {
            returned(&self.root, &self.dir, self.claim);
        }
    }
}

/// Returns the budget of a container cgroup at `dir` that was removed with `claim`.
fn returned(root: &Path, dir: &Path, claim: Claim) {
    if claim.runtime == 0 {
        return;
    }
    match DirLock::take(root) {
        Ok(_lock) => release(&ancestors(root, dir), |p| claim.share(p)),
        Err(e) => tracing::warn!(error = %e, "returning real-time CPU budget"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cg(dir: &Path, period: u64, runtime: u64) {
        fs::create_dir_all(dir).expect("mkdir");
        fs::write(dir.join(PERIOD), period.to_string()).expect("period");
        fs::write(dir.join(RUNTIME), runtime.to_string()).expect("runtime");
    }

    fn runtime_of(dir: &Path) -> u64 {
        read_claim(dir).expect("claim").runtime
    }

    #[test]
    fn shares_scale_by_period_and_round_up() {
        let c = Claim {
            period: 1_000_000,
            runtime: 1000,
        };
        assert_eq!(c.share(1_000_000), 1000);
        assert_eq!(c.share(500_000), 500);
        let odd = Claim {
            period: 3,
            runtime: 1,
        };
        assert_eq!(odd.share(10), 4);
    }

    #[test]
    fn ancestors_are_the_cgroups_between_root_and_the_container() {
        let a = ancestors(Path::new("/r"), Path::new("/r/x/y/id"));
        assert_eq!(a, [PathBuf::from("/r/x"), PathBuf::from("/r/x/y")]);
        assert!(ancestors(Path::new("/r"), Path::new("/r/id")).is_empty());
    }

    #[test]
    fn a_claim_is_granted_down_the_path_and_taken_back_up_it() {
        let t = tempfile::tempdir().expect("tmp");
        let root = t.path();
        cg(root, 1_000_000, 950_000);
        cg(&root.join("a"), 1_000_000, 300);
        cg(&root.join("a/b"), 500_000, 0);
        cg(&root.join("a/b/id"), 1_000_000, 0);
        set(root, &root.join("a/b/id"), None, Some(2000)).expect("set");
        assert_eq!(runtime_of(&root.join("a/b/id")), 2000);
        // A budget set by hand (300) stays; b's period is half the container's.
        assert_eq!(runtime_of(&root.join("a")), 2300);
        assert_eq!(runtime_of(&root.join("a/b")), 1000);
        let claim = read_claim(&root.join("a/b/id")).expect("claim");
        fs::remove_dir_all(root.join("a/b/id")).expect("rm");
        returned(root, &root.join("a/b/id"), claim);
        assert_eq!(runtime_of(&root.join("a")), 300);
        assert_eq!(runtime_of(&root.join("a/b")), 0);
    }

    #[test]
    fn lowering_a_claim_returns_the_difference() {
        let t = tempfile::tempdir().expect("tmp");
        let root = t.path();
        cg(root, 1_000_000, 950_000);
        cg(&root.join("p"), 1_000_000, 0);
        cg(&root.join("p/id"), 1_000_000, 0);
        set(root, &root.join("p/id"), Some(1_000_000), Some(5000)).expect("set");
        set(root, &root.join("p/id"), None, Some(1000)).expect("lower");
        assert_eq!(runtime_of(&root.join("p")), 1000);
    }

    #[test]
    fn the_return_never_goes_below_what_other_children_claim() {
        let t = tempfile::tempdir().expect("tmp");
        let root = t.path();
        cg(root, 1_000_000, 950_000);
        cg(&root.join("p"), 1_000_000, 1000);
        cg(&root.join("p/other"), 1_000_000, 800);
        let gone = Claim {
            period: 1_000_000,
            runtime: 1000,
        };
        returned(root, &root.join("p/id"), gone);
        assert_eq!(runtime_of(&root.join("p")), 800);
    }
}
