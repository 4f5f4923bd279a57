//! The local driver's mounted volumes (`driver_opts` / `-o` / `DriverOpts` `type`, `o`,
//! `device`, as Docker's local driver takes them: `type=tmpfs,device=tmpfs,o=size=64m`): the
//! filesystem is mounted on the volume's own `_data` directory when the volume is made, again
//! when a container using it starts after the host lost the mount (a reboot), and unmounted
//! when the volume is removed.
//!
//! What a user gives is checked first, each refusal naming the volume and the option: the keys
//! are `type`, `o` and `device`; `o` may not hold flags that change what is mounted or where
//! (`bind`, `remount`, `move`, propagation), since a bind through `o` would mount a host path
//! the `device` check never saw; `device` is any label for tmpfs and otherwise an existing
//! absolute path (a block device, or what the filesystem reads). The mount is made with the
//! kernel's file-system context calls (`fsopen`, `fsconfig`, `fsmount`, `move_mount`): each
//! option is handed over alone, so one the filesystem refuses is named, and the mount lands
//! on the `_data` directory opened without following links, never on a path from the user.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Why a volume's options or its mount failed; names the volume and the option.
#[derive(Debug, thiserror::Error)]
pub enum VolumeMountError {
    #[error(
        "volume {volume}: option {option:?} is not one the local driver takes (type, o, device)"
    )]
    UnknownKey { volume: String, option: String },
    #[error(
        "volume {volume}: option {option:?} is missing (a mounted volume needs type and device)"
    )]
    Missing {
        volume: String,
        option: &'static str,
    },
    #[error("volume {volume}: o={flag} is refused: it changes what is mounted or where ({why})")]
    RefusedFlag {
        volume: String,
        flag: String,
        why: &'static str,
    },
    #[error(
        "volume {volume}: device {device:?} must be an existing absolute path (a block device \
         or what type {fstype} reads); only tmpfs takes any name"
    )]
    BadDevice {
        volume: String,
        device: String,
        fstype: String,
    },
    #[error("volume {volume}: type {fstype:?} is not a filesystem name")]
    BadType { volume: String, fstype: String },
    #[error("volume {volume}: mounting type {fstype}: {what}{}", kernel_says(.said))]
    Mount {
        volume: String,
        fstype: String,
        what: String,
        said: Option<String>,
        #[source]
        source: io::Error,
    },
    #[error("volume {volume}: unmounting {path}")]
    Unmount {
        volume: String,
        path: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
}

fn kernel_says(said: &Option<String>) -> String {
    said.as_ref()
        .map(|s| format!(" (the kernel says: {s})"))
        .unwrap_or_default()
}

/// The mount of a volume, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    pub fstype: String,
    pub device: String,
    /// `MOUNT_ATTR_*` flags of the mount (`ro`, `nosuid`, `nodev`, `noexec`, atime).
    attrs: u64,
    /// The filesystem's own options, `(key, value)` (`("size", Some("64m"))`).
    params: Vec<(String, Option<String>)>,
}

/// Whether `opts` ask for a mounted volume (anything but none, or the bind form, which links).
pub fn is_mount_form(opts: &BTreeMap<String, String>) -> bool {
    !opts.is_empty() && !is_bind_form(opts)
}

/// The bind form (`type=none`, `o` holding `bind`): the volume's data is a host directory,
/// linked rather than mounted.
pub fn is_bind_form(opts: &BTreeMap<String, String>) -> bool {
    opts.get("type").map(String::as_str) == Some("none")
        && opts
            .get("o")
            .is_some_and(|o| o.split(',').any(|x| matches!(x.trim(), "bind" | "rbind")))
}

impl VolumeMount {
    /// Checks the local driver's options of volume `volume`.
    pub fn parse(volume: &str, opts: &BTreeMap<String, String>) -> Result<Self, VolumeMountError> {
        if let Some(k) = opts
            .keys()
            .find(|k| !matches!(k.as_str(), "type" | "o" | "device"))
        {
            return Err(VolumeMountError::UnknownKey {
                volume: volume.to_string(),
                option: k.clone(),
            });
        }
        let get = |k: &'static str| {
            opts.get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .ok_or(VolumeMountError::Missing {
                    volume: volume.to_string(),
                    option: k,
                })
        };
        let fstype = get("type")?;
        let device = get("device")?;
        if !fstype
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            || fstype == "none"
        {
            return Err(VolumeMountError::BadType {
                volume: volume.to_string(),
                fstype,
            });
        }
        let device_ok = if fstype == "tmpfs" {
            !device.chars().any(char::is_control)
        } else {
            let p = Path::new(&device);
            p.is_absolute()
                && !p.components().any(|c| c == std::path::Component::ParentDir)
                && fs::symlink_metadata(p).is_ok()
        };
        if !device_ok {
            return Err(VolumeMountError::BadDevice {
                volume: volume.to_string(),
                device,
                fstype,
            });
        }
        let mut attrs = 0u64;
        let mut params = Vec::new();
        for item in opts.get("o").map(String::as_str).unwrap_or("").split(',') {
            let item = item.trim();
            let refuse = |why| VolumeMountError::RefusedFlag {
                volume: volume.to_string(),
                flag: item.to_string(),
                why,
            };
            match item {
                "" | "defaults" | "rw" | "suid" | "dev" | "exec" | "symfollow" => {}
                "bind" | "rbind" => return Err(refuse("a bind mounts a host path")),
                "remount" | "move" => return Err(refuse("it acts on an existing mount")),
                "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate"
                | "unbindable" | "runbindable" => {
                    return Err(refuse("propagation is berth's to set"));
                }
                "ro" => attrs |= libc::MOUNT_ATTR_RDONLY,
                "nosuid" => attrs |= libc::MOUNT_ATTR_NOSUID,
                "nodev" => attrs |= libc::MOUNT_ATTR_NODEV,
                "noexec" => attrs |= libc::MOUNT_ATTR_NOEXEC,
                "nosymfollow" => attrs |= libc::MOUNT_ATTR_NOSYMFOLLOW,
                "nodiratime" => attrs |= libc::MOUNT_ATTR_NODIRATIME,
                "noatime" => attrs = (attrs & !libc::MOUNT_ATTR__ATIME) | libc::MOUNT_ATTR_NOATIME,
                "strictatime" => {
                    attrs = (attrs & !libc::MOUNT_ATTR__ATIME) | libc::MOUNT_ATTR_STRICTATIME
                }
                "relatime" | "atime" => attrs &= !libc::MOUNT_ATTR__ATIME,
                _ => match item.split_once('=') {
                    Some((k, v)) => params.push((k.to_string(), Some(v.to_string()))),
                    None => params.push((item.to_string(), None)),
                },
            }
        }
        Ok(VolumeMount {
            fstype,
            device,
            attrs,
            params,
        })
    }

    /// Mounts the filesystem on `data` (the volume's `_data` directory, opened without
    /// following a link).
    pub fn mount(&self, volume: &str, data: &Path) -> Result<(), VolumeMountError> {
        let fail =
            |what: String, said: Option<String>, source: io::Error| VolumeMountError::Mount {
                volume: volume.to_string(),
                fstype: self.fstype.clone(),
                what,
                said,
                source,
            };
        let cstr =
            |s: &str| CString::new(s).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput));
        let ty = cstr(&self.fstype).map_err(|e| fail("its name".into(), None, e))?;
        // SAFETY: `ty` is NUL-terminated; the descriptor returned is owned below.
        let fd = unsafe { libc::syscall(libc::SYS_fsopen, ty.as_ptr(), libc::FSOPEN_CLOEXEC) };
        if fd < 0 {
            let e = io::Error::last_os_error();
            let what = if e.raw_os_error() == Some(libc::ENODEV) {
                "the kernel has no such filesystem".to_string()
            } else {
                "opening a filesystem context".to_string()
            };
            return Err(fail(what, None, e));
        }
        // SAFETY: fsopen returned a new descriptor that nothing else owns.
        let fs_fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let set = |key: &str, value: Option<&str>| -> Result<(), VolumeMountError> {
            let shown = match value {
                Some(v) => format!("{key}={v}"),
                None => key.to_string(),
            };
            let k = cstr(key).map_err(|e| fail(format!("option {shown:?}"), None, e))?;
            let v = value
                .map(cstr)
                .transpose()
                .map_err(|e| fail(format!("option {shown:?}"), None, e))?;
            let (cmd, vp) = match &v {
                Some(v) => (FSCONFIG_SET_STRING, v.as_ptr()),
                None => (FSCONFIG_SET_FLAG, std::ptr::null()),
            };
            // SAFETY: key and value are NUL-terminated strings alive across the call.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_fsconfig,
                    fs_fd.as_raw_fd(),
                    cmd,
                    k.as_ptr(),
                    vp,
                    0,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                let what = if key == "source" {
                    format!("device {:?}", self.device)
                } else {
                    format!("option {shown:?} of o")
                };
                return Err(fail(what, context_message(&fs_fd), e));
            }
            Ok(())
        };
        set("source", Some(&self.device))?;
        for (k, v) in &self.params {
            set(k, v.as_deref())?;
        }
        // SAFETY: a command with no key or value on our descriptor.
        let r = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs_fd.as_raw_fd(),
                FSCONFIG_CMD_CREATE,
                std::ptr::null::<libc::c_char>(),
                std::ptr::null::<libc::c_void>(),
                0,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return Err(fail(
                format!("creating it from device {:?}", self.device),
                context_message(&fs_fd),
                e,
            ));
        }
        // SAFETY: our context descriptor; the mount descriptor returned is owned below.
        let m = unsafe {
            libc::syscall(
                libc::SYS_fsmount,
                fs_fd.as_raw_fd(),
                libc::FSMOUNT_CLOEXEC,
                self.attrs as libc::c_uint,
            )
        };
        if m < 0 {
            let e = io::Error::last_os_error();
            return Err(fail("making the mount".into(), context_message(&fs_fd), e));
        }
        // SAFETY: fsmount returned a new descriptor that nothing else owns.
        let mnt = unsafe { OwnedFd::from_raw_fd(m as i32) };
        let target = open_dir_nofollow(data)
            .map_err(|e| fail(format!("opening its directory {}", data.display()), None, e))?;
        let empty = c"";
        // SAFETY: both descriptors are ours; the empty paths select them.
        let r = unsafe {
            libc::syscall(
                libc::SYS_move_mount,
                mnt.as_raw_fd(),
                empty.as_ptr(),
                target.as_raw_fd(),
                empty.as_ptr(),
                libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return Err(fail(format!("attaching it at {}", data.display()), None, e));
        }
        Ok(())
    }
}

const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;

/// The messages the filesystem left on its context (`e tmpfs: Unknown parameter 'x'`).
fn context_message(fd: &OwnedFd) -> Option<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    for _ in 0..8 {
        // SAFETY: reading into a buffer we own, of the length given.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        let line = String::from_utf8_lossy(&buf[..n as usize])
            .trim()
            .to_string();
        out.push(
            line.strip_prefix("e ")
                .or_else(|| line.strip_prefix("w "))
                .unwrap_or(&line)
                .to_string(),
        );
    }
    (!out.is_empty()).then(|| out.join("; "))
}

fn open_dir_nofollow(p: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is NUL-terminated; the descriptor returned is owned below.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: open returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether something is mounted on `data` (its device differs from its parent's).
pub fn is_mounted(data: &Path) -> bool {
    let (Ok(me), Some(Ok(parent))) = (
        fs::symlink_metadata(data),
        data.parent().map(fs::symlink_metadata),
    ) else {
        return false;
    };
    me.is_dir() && me.dev() != parent.dev()
}

/// Unmounts what is mounted on `data` (every layer of it), not following a link there.
pub fn unmount(volume: &str, data: &Path) -> Result<(), VolumeMountError> {
    let c = CString::new(data.as_os_str().as_bytes()).map_err(|_| VolumeMountError::Unmount {
        volume: volume.to_string(),
        path: data.to_path_buf(),
        source: io::Error::from(io::ErrorKind::InvalidInput),
    })?;
    while is_mounted(data) {
        // SAFETY: `c` is a NUL-terminated path.
        let r = unsafe { libc::umount2(c.as_ptr(), libc::UMOUNT_NOFOLLOW) };
        if r < 0 {
            return Err(VolumeMountError::Unmount {
                volume: volume.to_string(),
                path: data.to_path_buf(),
                source: io::Error::last_os_error(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn tmpfs_options_split_into_mount_flags_and_the_filesystems_own() {
        let m = VolumeMount::parse(
            "v",
            &opts(&[
                ("type", "tmpfs"),
                ("device", "tmpfs"),
                ("o", "size=64m,uid=1000,nosuid,noexec,huge=never"),
            ]),
        )
        .expect("valid");
        assert_eq!(m.attrs, libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NOEXEC);
        assert_eq!(
            m.params,
            [
                ("size".to_string(), Some("64m".to_string())),
                ("uid".to_string(), Some("1000".to_string())),
                ("huge".to_string(), Some("never".to_string())),
            ]
        );
    }

    #[test]
    fn flags_that_mount_elsewhere_or_something_else_are_refused_by_name() {
        for flag in ["bind", "rbind", "remount", "move", "rshared"] {
            let e = VolumeMount::parse(
                "v",
                &opts(&[("type", "tmpfs"), ("device", "/etc"), ("o", flag)]),
            )
            .expect_err("refused");
            assert!(
                e.to_string().contains(&format!("o={flag} is refused")),
                "{e}"
            );
        }
    }

    #[test]
    fn a_device_other_than_an_absolute_existing_path_is_refused_unless_tmpfs() {
        for dev in [
            "../../etc",
            "etc",
            "/nonexistent/berth-x",
            "/tmp/../etc",
            "server:/export",
        ] {
            let e = VolumeMount::parse("v", &opts(&[("type", "ext4"), ("device", dev)]))
                .expect_err("refused");
            assert!(
                matches!(e, VolumeMountError::BadDevice { .. }),
                "{dev}: {e}"
            );
            assert!(e.to_string().contains("volume v"), "{e}");
        }
        VolumeMount::parse("v", &opts(&[("type", "tmpfs"), ("device", "anything")]))
            .expect("tmpfs takes any name");
    }

    #[test]
    fn unknown_keys_missing_ones_and_odd_types_are_named() {
        let e = VolumeMount::parse(
            "v",
            &opts(&[("type", "tmpfs"), ("device", "t"), ("size", "1")]),
        )
        .expect_err("refused");
        assert!(e.to_string().contains("\"size\""), "{e}");
        let e = VolumeMount::parse("v", &opts(&[("type", "tmpfs")])).expect_err("refused");
        assert!(e.to_string().contains("\"device\""), "{e}");
        let e = VolumeMount::parse("v", &opts(&[("type", "../x"), ("device", "/")]))
            .expect_err("refused");
        assert!(matches!(e, VolumeMountError::BadType { .. }), "{e}");
    }

    #[test]
    fn the_bind_form_is_not_a_mount() {
        let bind = opts(&[("type", "none"), ("o", "bind"), ("device", "/srv")]);
        assert!(is_bind_form(&bind) && !is_mount_form(&bind));
        assert!(is_mount_form(&opts(&[
            ("type", "tmpfs"),
            ("device", "tmpfs")
        ])));
        assert!(!is_mount_form(&BTreeMap::new()));
    }
}
