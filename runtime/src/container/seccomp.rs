//! Seccomp: translates the OCI `linux.seccomp` section into BPF programs with `seccompiler`
//! (pure Rust, no libseccomp). seccompiler has one match action per filter, so rules are
//! grouped by action into several filters; the kernel applies the strictest verdict.

use std::collections::BTreeMap;

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// Errors compiling or installing a seccomp profile.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error(
        "seccomp default action {0:?} is not supported (berth's executor supports an allow-by-default profile)"
    )]
    DefaultAction(LinuxSeccompAction),
    #[error("seccomp action {action:?} for {syscall} is not supported")]
    Action {
        syscall: String,
        action: LinuxSeccompAction,
    },
    #[error("compiling the seccomp filter")]
    Compile(#[source] seccompiler::BackendError),
    #[error("compiling the seccomp filter")]
    Bpf(#[source] seccompiler::Error),
    #[error("installing the seccomp filter")]
    Install(#[source] seccompiler::Error),
}

macro_rules! syscalls {
    ($($name:ident),* $(,)?) => {
        /// The x86_64 number of a syscall by name; `None` for names this build does not know.
        pub fn syscall_number(name: &str) -> Option<i64> {
            $(
                if name == &stringify!($name)[4..] {
                    return Some(libc::$name);
                }
            )*
            None
        }
    };
}

syscalls!(
    SYS_acct,
    SYS_add_key,
    SYS_bpf,
    SYS_clock_adjtime,
    SYS_clock_settime,
    SYS_clone,
    SYS_clone3,
    SYS_delete_module,
    SYS_finit_module,
    SYS_fsconfig,
    SYS_fsmount,
    SYS_fsopen,
    SYS_fspick,
    SYS_init_module,
    SYS_ioperm,
    SYS_iopl,
    SYS_io_uring_enter,
    SYS_io_uring_register,
    SYS_io_uring_setup,
    SYS_kcmp,
    SYS_kexec_file_load,
    SYS_kexec_load,
    SYS_keyctl,
    SYS_lookup_dcookie,
    SYS_mount,
    SYS_mount_setattr,
    SYS_move_mount,
    SYS_name_to_handle_at,
    SYS_nfsservctl,
    SYS_open_by_handle_at,
    SYS_open_tree,
    SYS_perf_event_open,
    SYS_pivot_root,
    SYS_process_vm_readv,
    SYS_process_vm_writev,
    SYS_ptrace,
    SYS_quotactl,
    SYS_reboot,
    SYS_request_key,
    SYS_setns,
    SYS_settimeofday,
    SYS_swapoff,
    SYS_swapon,
    SYS__sysctl,
    SYS_syslog,
    SYS_umount2,
    SYS_unshare,
    SYS_uselib,
    SYS_userfaultfd,
    SYS_ustat,
    SYS_personality,
);

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Option<SeccompAction> {
    Some(match a {
        LinuxSeccompAction::ScmpActAllow => SeccompAction::Allow,
        LinuxSeccompAction::ScmpActErrno => {
            SeccompAction::Errno(errno.unwrap_or(libc::EPERM as u32))
        }
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            SeccompAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => SeccompAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => SeccompAction::Trap,
        LinuxSeccompAction::ScmpActLog => SeccompAction::Log,
        _ => return None,
    })
}

/// Rules per syscall number; `None` matches the syscall unconditionally.
type SyscallRules = BTreeMap<i64, Option<Vec<SeccompRule>>>;

fn action_key(a: &SeccompAction) -> String {
    format!("{a:?}")
}

/// Compiles `profile` into one BPF program per distinct action.
pub fn compile(profile: &LinuxSeccomp) -> Result<Vec<BpfProgram>, SeccompError> {
    if profile.default_action() != LinuxSeccompAction::ScmpActAllow {
        return Err(SeccompError::DefaultAction(profile.default_action()));
    }
    // action key -> (action, syscall -> rules; an empty rule list matches unconditionally)
    let mut groups: BTreeMap<String, (SeccompAction, SyscallRules)> = BTreeMap::new();
    for sc in profile.syscalls().as_deref().unwrap_or_default() {
        let Some(act) = action(sc.action(), sc.errno_ret()) else {
            return Err(SeccompError::Action {
                syscall: sc.names().join(","),
                action: sc.action(),
            });
        };
        if act == SeccompAction::Allow {
            continue;
        }
        let mut conds = Vec::new();
        for arg in sc.args().as_deref().unwrap_or_default() {
            let op = match arg.op() {
                LinuxSeccompOperator::ScmpCmpNe => SeccompCmpOp::Ne,
                LinuxSeccompOperator::ScmpCmpLt => SeccompCmpOp::Lt,
                LinuxSeccompOperator::ScmpCmpLe => SeccompCmpOp::Le,
                LinuxSeccompOperator::ScmpCmpEq => SeccompCmpOp::Eq,
                LinuxSeccompOperator::ScmpCmpGe => SeccompCmpOp::Ge,
                LinuxSeccompOperator::ScmpCmpGt => SeccompCmpOp::Gt,
                LinuxSeccompOperator::ScmpCmpMaskedEq => SeccompCmpOp::MaskedEq(arg.value()),
            };
            let value = match arg.op() {
                LinuxSeccompOperator::ScmpCmpMaskedEq => arg.value_two().unwrap_or(0),
                _ => arg.value(),
            };
            conds.push(
                SeccompCondition::new(arg.index() as u8, SeccompCmpArgLen::Qword, op, value)
                    .map_err(SeccompError::Compile)?,
            );
        }
        let entry = groups
            .entry(action_key(&act))
            .or_insert_with(|| (act.clone(), BTreeMap::new()));
        for name in sc.names() {
            let Some(nr) = syscall_number(name) else {
                tracing::debug!(syscall = %name, "seccomp: syscall unknown to this build, skipped");
                continue;
            };
            let slot = entry.1.entry(nr).or_insert_with(|| Some(Vec::new()));
            match (slot.as_mut(), conds.is_empty()) {
                (Some(_), true) => *slot = None,
                (Some(rules), false) => {
                    rules.push(SeccompRule::new(conds.clone()).map_err(SeccompError::Compile)?)
                }
                (None, _) => {}
            }
        }
    }
    let mut progs = Vec::new();
    for (_, (act, rules)) in groups {
        let rules: BTreeMap<i64, Vec<SeccompRule>> = rules
            .into_iter()
            .map(|(nr, r)| (nr, r.unwrap_or_default()))
            .collect();
        if rules.is_empty() {
            continue;
        }
        let filter = SeccompFilter::new(rules, SeccompAction::Allow, act, TargetArch::x86_64)
            .map_err(SeccompError::Compile)?;
        progs.push(BpfProgram::try_from(filter).map_err(SeccompError::Compile)?);
    }
    Ok(progs)
}

/// Installs compiled programs on the calling thread (it also sets no_new_privs).
pub fn install(progs: &[BpfProgram]) -> Result<(), SeccompError> {
    for p in progs {
        seccompiler::apply_filter(p).map_err(SeccompError::Install)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_profile_compiles_into_two_filters() {
        let v = crate::container::spec::default_seccomp();
        let profile: LinuxSeccomp = serde_json::from_value(v).expect("profile");
        let progs = compile(&profile).expect("compile");
        assert_eq!(progs.len(), 2, "EPERM and ENOSYS groups");
        for name in crate::container::spec::DENIED_SYSCALLS {
            if !matches!(
                *name,
                "vm86" | "vm86old" | "create_module" | "get_kernel_syms" | "query_module"
            ) {
                assert!(syscall_number(name).is_some(), "{name}");
            }
        }
    }
}
