//! The container process's identity and environment: user and groups resolved in the
//! container's own /etc/passwd and /etc/group, the executable found in the container's PATH,
//! rlimits. Errors carry Docker's exit codes (126 not executable, 127 not found).

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Errors preparing the container's process; each knows its Docker exit code.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("unable to find user {user}: no matching entries in passwd file")]
    UnknownUser { user: String },
    #[error("unable to find group {group}: no matching entries in group file")]
    UnknownGroup { group: String },
    #[error("exec: {cmd:?}: executable file not found in $PATH")]
    NotFound { cmd: String },
    #[error("exec: {cmd:?}: stat {path}: no such file or directory")]
    NoSuchFile { cmd: String, path: PathBuf },
    #[error("exec: {cmd:?}: permission denied")]
    NotExecutable { cmd: String },
    #[error("exec: {cmd:?}: {source}")]
    Exec {
        cmd: String,
        #[source]
        source: nix::Error,
    },
    #[error("no command given (the image has no Cmd or Entrypoint and none was passed)")]
    NoCommand,
    #[error(
        "ulimit {name}: the requested hard limit {hard} is above the current hard limit {current}; raising it needs CAP_SYS_RESOURCE, which berth does not have here"
    )]
    RlimitAboveHard {
        name: String,
        hard: u64,
        current: u64,
    },
    #[error("setting ulimit {name}")]
    Rlimit {
        name: String,
        #[source]
        source: nix::Error,
    },
    #[error("creating working directory {path}")]
    WorkDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("switching to uid {uid} gid {gid}")]
    SetId {
        uid: u32,
        gid: u32,
        #[source]
        source: nix::Error,
    },
}

impl ProcessError {
    /// The exit code Docker reports for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            ProcessError::NotFound { .. } | ProcessError::NoSuchFile { .. } => 127,
            ProcessError::NotExecutable { .. } | ProcessError::Exec { .. } => 126,
            _ => 125,
        }
    }
}

/// A user resolved inside the container.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups from /etc/group.
    pub groups: Vec<u32>,
    pub home: String,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

/// A text file of the container's, its path resolved inside `root` (an image's link to a host
/// file is followed as if `root` were `/`, never to the host's file); empty when unreadable.
fn read_in_root(root: &Path, rel: &str) -> String {
    let read = || -> std::io::Result<String> {
        let mut text = String::new();
        crate::inroot::InRoot::open(root, crate::inroot::Follow::InRoot)?
            .open_file(rel.as_bytes())?
            .read_to_string(&mut text)?;
        Ok(text)
    };
    read().unwrap_or_default()
}

fn passwd(root: &Path) -> Vec<PasswdEntry> {
    read_in_root(root, "etc/passwd")
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 6 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_string(),
            })
        })
        .collect()
}

/// (name, gid, members) from /etc/group.
fn groups(root: &Path) -> Vec<(String, u32, Vec<String>)> {
    read_in_root(root, "etc/group")
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 3 {
                return None;
            }
            let members = f
                .get(3)
                .map(|m| {
                    m.split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            Some((f[0].to_string(), f[2].parse().ok()?, members))
        })
        .collect()
}

/// Resolves `user` (`name`, `uid`, `uid:gid`, `name:group`; `None` = root) against the files
/// under `root`. A numeric uid absent from passwd is allowed, as Docker does.
pub fn resolve_user(user: Option<&str>, root: &Path) -> Result<User, ProcessError> {
    let spec = user.unwrap_or("").trim();
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let users = passwd(root);
    let (uid, mut gid, name, home) = if u.is_empty() {
        (0, 0, Some("root".to_string()), "/root".to_string())
    } else if let Ok(uid) = u.parse::<u32>() {
        match users.iter().find(|e| e.uid == uid) {
            Some(e) => (uid, e.gid, Some(e.name.clone()), e.home.clone()),
            None => (uid, 0, None, "/".to_string()),
        }
    } else {
        let e = users
            .iter()
            .find(|e| e.name == u)
            .ok_or_else(|| ProcessError::UnknownUser {
                user: u.to_string(),
            })?;
        (e.uid, e.gid, Some(e.name.clone()), e.home.clone())
    };
    let all_groups = groups(root);
    if let Some(g) = g.filter(|g| !g.is_empty()) {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                all_groups
                    .iter()
                    .find(|(n, _, _)| n == g)
                    .ok_or_else(|| ProcessError::UnknownGroup {
                        group: g.to_string(),
                    })?
                    .1
            }
        };
    }
    let mut supp = Vec::new();
    if let Some(name) = &name {
        for (_, id, members) in &all_groups {
            if members.iter().any(|m| m == name) && !supp.contains(id) && *id != gid {
                supp.push(*id);
            }
        }
    }
    Ok(User {
        uid,
        gid,
        groups: supp,
        home,
    })
}

/// Adds `extra` groups (numbers, or names in the group file under `root`) to `user`'s
/// supplementary groups (`--group-add`).
pub fn add_groups(user: &mut User, extra: &[String], root: &Path) -> Result<(), ProcessError> {
    if extra.is_empty() {
        return Ok(());
    }
    let all = groups(root);
    for g in extra {
        let id = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                all.iter()
                    .find(|(n, _, _)| n == g)
                    .ok_or_else(|| ProcessError::UnknownGroup { group: g.clone() })?
                    .1
            }
        };
        if !user.groups.contains(&id) {
            user.groups.push(id);
        }
    }
    Ok(())
}

fn is_executable(p: &Path) -> Option<bool> {
    let md = fs::metadata(p).ok()?;
    Some(md.is_file() && md.permissions().mode() & 0o111 != 0)
}

/// Finds `cmd` as execve would through `path_env` (the container's PATH), relative to the
/// current root.
pub fn find_executable(cmd: &str, path_env: Option<&str>) -> Result<PathBuf, ProcessError> {
    if cmd.contains('/') {
        let p = PathBuf::from(cmd);
        return match is_executable(&p) {
            Some(true) => Ok(p),
            Some(false) => Err(ProcessError::NotExecutable {
                cmd: cmd.to_string(),
            }),
            None => Err(ProcessError::NoSuchFile {
                cmd: cmd.to_string(),
                path: p,
            }),
        };
    }
    let path_env =
        path_env.unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    let mut saw_non_exec = false;
    for dir in path_env.split(':').filter(|d| !d.is_empty()) {
        let p = Path::new(dir).join(cmd);
        match is_executable(&p) {
            Some(true) => return Ok(p),
            Some(false) => saw_non_exec = true,
            None => {}
        }
    }
    if saw_non_exec {
        return Err(ProcessError::NotExecutable {
            cmd: cmd.to_string(),
        });
    }
    Err(ProcessError::NotFound {
        cmd: cmd.to_string(),
    })
}

/// OCI rlimit type name -> the libc resource.
fn resource(name: &str) -> Option<libc::__rlimit_resource_t> {
    Some(match name {
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        "RLIMIT_AS" => libc::RLIMIT_AS,
        _ => return None,
    })
}

fn current_hard(res: libc::__rlimit_resource_t) -> u64 {
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    unsafe { libc::getrlimit(res, &mut cur) };
    cur.rlim_max
}

/// Checks that `hard` does not exceed this process's hard limit (we cannot raise it without
/// CAP_SYS_RESOURCE); done before anything is created, so the error comes early and clean.
pub fn check_rlimit(name: &str, hard: u64) -> Result<(), ProcessError> {
    let Some(res) = resource(name) else {
        return Ok(());
    };
    let current = current_hard(res);
    if hard > current {
        return Err(ProcessError::RlimitAboveHard {
            name: name.to_string(),
            hard,
            current,
        });
    }
    Ok(())
}

/// Applies one rlimit.
pub fn set_rlimit(name: &str, soft: u64, hard: u64) -> Result<(), ProcessError> {
    check_rlimit(name, hard)?;
    let Some(res) = resource(name) else {
        return Ok(());
    };
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads the struct we own.
    let rc = unsafe { libc::setrlimit(res, &lim) };
    if rc != 0 {
        return Err(ProcessError::Rlimit {
            name: name.to_string(),
            source: nix::Error::last(),
        });
    }
    Ok(())
}

/// Creates the working directory (owned by the user, as Docker does) when missing.
pub fn ensure_workdir(dir: &Path, user: &User) -> Result<(), ProcessError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|source| ProcessError::WorkDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let _ = std::os::unix::fs::chown(dir, Some(user.uid), Some(user.gid));
    Ok(())
}

/// Switches groups and ids, keeping capabilities across the uid change so that the caller
/// can then set exactly the configured sets.
pub fn switch_user(user: &User) -> Result<(), ProcessError> {
    use nix::unistd::{Gid, Uid, setgroups, setresgid, setresuid};
    let err = |source| ProcessError::SetId {
        uid: user.uid,
        gid: user.gid,
        source,
    };
    // SAFETY: prctl(PR_SET_KEEPCAPS) takes plain integers.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) };
    let groups: Vec<Gid> = user.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    setgroups(&groups).map_err(err)?;
    let g = Gid::from_raw(user.gid);
    setresgid(g, g, g).map_err(err)?;
    let u = Uid::from_raw(user.uid);
    setresuid(u, u, u).map_err(err)?;
    Ok(())
}

/// Adds HOME from passwd when the env has none, as Docker does.
pub fn with_home(mut env: Vec<String>, user: &User) -> Vec<String> {
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home));
    }
    env
}

/// The value of `key` in a `KEY=VALUE` list (last one wins).
pub fn env_get<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find_map(|e| e.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_and_groups_resolve_in_the_container_files() {
        let dir = tempfile::tempdir().expect("tmp");
        fs::create_dir_all(dir.path().join("etc")).expect("etc");
        fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33:www:/var/www:/bin/false\n",
        )
        .expect("passwd");
        fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nwww:x:33:\nadm:x:4:www,other\nstaff:x:50:www\n",
        )
        .expect("group");
        let u = resolve_user(Some("www"), dir.path()).expect("www");
        assert_eq!((u.uid, u.gid, u.groups.clone()), (33, 33, vec![4, 50]));
        assert_eq!(u.home, "/var/www");
        let u = resolve_user(Some("1000:1000"), dir.path()).expect("numeric");
        assert_eq!((u.uid, u.gid), (1000, 1000));
        let u = resolve_user(Some("www:adm"), dir.path()).expect("name:group");
        assert_eq!(u.gid, 4);
        assert!(matches!(
            resolve_user(Some("nobody"), dir.path()),
            Err(ProcessError::UnknownUser { .. })
        ));
        assert_eq!(resolve_user(None, dir.path()).expect("root").uid, 0);
    }

    /// An image whose /etc/passwd is a link to a host file (absolute or by `..`): the user is
    /// looked up in the image's own file at that path, never the host's.
    #[test]
    fn a_passwd_link_never_reads_the_hosts_file() {
        let host = tempfile::tempdir().expect("tmp");
        fs::write(
            host.path().join("passwd"),
            "secret:x:4242:4242::/:/bin/sh\n",
        )
        .expect("host passwd");
        let root = tempfile::tempdir().expect("tmp");
        fs::create_dir_all(root.path().join("etc")).expect("etc");
        std::os::unix::fs::symlink(host.path().join("passwd"), root.path().join("etc/passwd"))
            .expect("link");
        assert!(matches!(
            resolve_user(Some("secret"), root.path()),
            Err(ProcessError::UnknownUser { .. })
        ));
        fs::remove_file(root.path().join("etc/passwd")).expect("rm");
        let up = "../".repeat(16) + &host.path().join("passwd").display().to_string()[1..];
        std::os::unix::fs::symlink(up, root.path().join("etc/passwd")).expect("link");
        assert!(matches!(
            resolve_user(Some("secret"), root.path()),
            Err(ProcessError::UnknownUser { .. })
        ));
    }

    #[test]
    fn missing_commands_map_to_docker_codes() {
        let e = find_executable("definitely-not-here", Some("/nonexistent")).unwrap_err();
        assert_eq!(e.exit_code(), 127);
        assert_eq!(
            e.to_string(),
            "exec: \"definitely-not-here\": executable file not found in $PATH"
        );
        let dir = tempfile::tempdir().expect("tmp");
        let plain = dir.path().join("plain");
        fs::write(&plain, "data").expect("file");
        fs::set_permissions(&plain, fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = find_executable(&plain.display().to_string(), None).unwrap_err();
        assert_eq!(e.exit_code(), 126);
    }
}
