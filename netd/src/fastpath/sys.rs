//! The bpf(2) syscall through libc: an attribute block filled by field offset (the kernel's
//! `union bpf_attr` layout, stable ABI) and one wrapper per command the fast path uses. No
//! crate fit: aya loads programs from ELF objects (which would need clang at build time), and
//! libbpf-sys builds C.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// bpf(2) commands.
const MAP_CREATE: u32 = 0;
const MAP_LOOKUP_ELEM: u32 = 1;
const MAP_UPDATE_ELEM: u32 = 2;
const MAP_DELETE_ELEM: u32 = 3;
const MAP_GET_NEXT_KEY: u32 = 4;
const PROG_LOAD: u32 = 5;
const PROG_GET_FD_BY_ID: u32 = 13;
const MAP_GET_FD_BY_ID: u32 = 14;
const OBJ_GET_INFO_BY_FD: u32 = 15;
const ENABLE_STATS: u32 = 32;

/// `BPF_PROG_TYPE_SCHED_CLS`: a tc classifier (what a tc `bpf` filter runs).
pub const PROG_TYPE_SCHED_CLS: u32 = 3;
/// `BPF_MAP_TYPE_HASH`.
pub const MAP_TYPE_HASH: u32 = 1;
/// `BPF_F_NO_PREALLOC`: a hash map's elements are allocated as they are added.
pub const F_NO_PREALLOC: u32 = 1;

/// The size of the attribute block passed (the kernel accepts a larger block whose tail is
/// zero, and a smaller one from older callers).
const ATTR_SIZE: usize = 144;

/// A zeroed `union bpf_attr`, written by byte offset.
#[repr(C, align(8))]
struct Attr([u8; ATTR_SIZE]);

impl Attr {
    fn new() -> Self {
        Self([0; ATTR_SIZE])
    }
    fn u32(&mut self, off: usize, v: u32) -> &mut Self {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64(&mut self, off: usize, v: u64) -> &mut Self {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn ptr<T>(&mut self, off: usize, p: *const T) -> &mut Self {
        self.u64(off, p as usize as u64)
    }
    fn name(&mut self, off: usize, name: &str) -> &mut Self {
        // BPF_OBJ_NAME_LEN is 16 with the NUL; names are [A-Za-z0-9_.].
        let b = name.as_bytes();
        let n = b.len().min(15);
        self.0[off..off + n].copy_from_slice(&b[..n]);
        self
    }
}

fn bpf(cmd: u32, attr: &mut Attr) -> io::Result<i64> {
    // SAFETY: `attr` is a valid, writable block of ATTR_SIZE bytes; every pointer stored in it
    // points to a live buffer of the size stored next to it, owned by the caller for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr.0.as_mut_ptr(),
            ATTR_SIZE as libc::c_long,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn fd_of(r: i64) -> OwnedFd {
    // SAFETY: the command returned a new file descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(r as i32) }
}

/// Creates a map; its file descriptor.
pub fn map_create(
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    flags: u32,
    name: &str,
) -> io::Result<OwnedFd> {
    let mut a = Attr::new();
    a.u32(0, map_type)
        .u32(4, key_size)
        .u32(8, value_size)
        .u32(12, max_entries)
        .u32(16, flags)
        .name(28, name);
    bpf(MAP_CREATE, &mut a).map(fd_of)
}

fn elem(map: BorrowedFd<'_>, key: &[u8], value: *const u8, flags: u64) -> Attr {
    let mut a = Attr::new();
    a.u32(0, map.as_raw_fd() as u32)
        .ptr(8, key.as_ptr())
        .ptr(16, value)
        .u64(24, flags);
    a
}

/// Sets `key` to `value` (creating or replacing it; `BPF_ANY`).
pub fn map_update(map: BorrowedFd<'_>, key: &[u8], value: &[u8]) -> io::Result<()> {
    bpf(MAP_UPDATE_ELEM, &mut elem(map, key, value.as_ptr(), 0)).map(drop)
}

/// Reads `key` into `value`; `Ok(false)` when the map has no such key.
pub fn map_lookup(map: BorrowedFd<'_>, key: &[u8], value: &mut [u8]) -> io::Result<bool> {
    match bpf(MAP_LOOKUP_ELEM, &mut elem(map, key, value.as_mut_ptr(), 0)) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Deletes `key`; `Ok(false)` when it was not there.
pub fn map_delete(map: BorrowedFd<'_>, key: &[u8]) -> io::Result<bool> {
    match bpf(MAP_DELETE_ELEM, &mut elem(map, key, std::ptr::null(), 0)) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The key after `key` (the first key when `key` is `None`) into `next`; `Ok(false)` at the
/// end of the map.
pub fn map_next_key(map: BorrowedFd<'_>, key: Option<&[u8]>, next: &mut [u8]) -> io::Result<bool> {
    let mut a = Attr::new();
    a.u32(0, map.as_raw_fd() as u32).ptr(16, next.as_mut_ptr());
    if let Some(k) = key {
        a.ptr(8, k.as_ptr());
    }
    match bpf(MAP_GET_NEXT_KEY, &mut a) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Why a program load failed: the errno and the verifier's log.
#[derive(Debug)]
pub struct LoadError {
    /// The syscall's error.
    pub err: io::Error,
    /// The verifier's log (empty when it said nothing).
    pub log: String,
}

/// Loads a program; on failure the verifier's log comes with the error.
pub fn prog_load(
    prog_type: u32,
    insns: &[super::insn::Insn],
    license: &std::ffi::CStr,
    name: &str,
    expected_attach_type: u32,
) -> Result<OwnedFd, LoadError> {
    let mut log = vec![0u8; 64 * 1024];
    let mut a = Attr::new();
    a.u32(0, prog_type)
        .u32(4, insns.len() as u32)
        .ptr(8, insns.as_ptr())
        .ptr(16, license.as_ptr())
        .u32(24, 1)
        .u32(28, log.len() as u32)
        .ptr(32, log.as_mut_ptr())
        .name(48, name)
        .u32(68, expected_attach_type);
    bpf(PROG_LOAD, &mut a).map(fd_of).map_err(|err| {
        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
        LoadError {
            err,
            log: String::from_utf8_lossy(&log[..end]).trim().to_string(),
        }
    })
}

/// A file descriptor for the program with this id.
pub fn prog_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut a = Attr::new();
    a.u32(0, id);
    bpf(PROG_GET_FD_BY_ID, &mut a).map(fd_of)
}

/// A file descriptor for the map with this id.
pub fn map_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut a = Attr::new();
    a.u32(0, id);
    bpf(MAP_GET_FD_BY_ID, &mut a).map(fd_of)
}

/// What the fast path reads of a loaded program (`struct bpf_prog_info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgInfo {
    /// Kernel id.
    pub id: u32,
    /// Name given at load.
    pub name: String,
    /// Ids of the maps it uses.
    pub map_ids: Vec<u32>,
    /// Times it ran (counted only while run-time statistics are enabled).
    pub run_cnt: u64,
}

/// Reads a program's id, name, maps and run count.
pub fn prog_info(prog: BorrowedFd<'_>) -> io::Result<ProgInfo> {
    // Offsets in `struct bpf_prog_info`.
    const ID: usize = 4;
    const NR_MAP_IDS: usize = 52;
    const MAP_IDS: usize = 56;
    const NAME: usize = 64;
    const RUN_CNT: usize = 200;
    let mut info = [0u8; 232];
    let mut map_ids = [0u32; 8];
    info[NR_MAP_IDS..NR_MAP_IDS + 4].copy_from_slice(&(map_ids.len() as u32).to_ne_bytes());
    info[MAP_IDS..MAP_IDS + 8]
        .copy_from_slice(&(map_ids.as_mut_ptr() as usize as u64).to_ne_bytes());
    let mut a = Attr::new();
    a.u32(0, prog.as_raw_fd() as u32)
        .u32(4, info.len() as u32)
        .ptr(8, info.as_mut_ptr());
    bpf(OBJ_GET_INFO_BY_FD, &mut a)?;
    let u32_at = |o: usize| u32::from_ne_bytes([info[o], info[o + 1], info[o + 2], info[o + 3]]);
    let mut run = [0u8; 8];
    run.copy_from_slice(&info[RUN_CNT..RUN_CNT + 8]);
    let name_bytes = &info[NAME..NAME + 16];
    let end = name_bytes.iter().position(|&b| b == 0).unwrap_or(16);
    let n = (u32_at(NR_MAP_IDS) as usize).min(map_ids.len());
    Ok(ProgInfo {
        id: u32_at(ID),
        name: String::from_utf8_lossy(&name_bytes[..end]).into_owned(),
        map_ids: map_ids[..n].to_vec(),
        run_cnt: u64::from_ne_bytes(run),
    })
}

/// Turns on run-time statistics (run counts) of every program while the returned file
/// descriptor is open (`BPF_ENABLE_STATS`, `BPF_STATS_RUN_TIME`).
pub fn enable_stats() -> io::Result<OwnedFd> {
    let mut a = Attr::new();
    a.u32(0, 0);
    bpf(ENABLE_STATS, &mut a).map(fd_of)
}
