//! A network's MAC map: destination MAC -> ifindex of the host-side veth of the container
//! that has it. One per network, so a program only ever redirects within its own network.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::prog::MAC_LEN;
use super::sys;

/// The name every fast-path map is created with.
pub const MAP_NAME: &str = "berth_fp_macs";

/// At most this many endpoints per network take the fast path (the map grows as endpoints
/// come; it is not allocated up front). Endpoints past it use the bridge.
pub const MAX_ENDPOINTS: u32 = 65_536;

/// A MAC -> ifindex hash map in the kernel.
#[derive(Debug)]
pub struct MacMap {
    fd: OwnedFd,
}

impl MacMap {
    /// Creates an empty map.
    pub fn create() -> io::Result<Self> {
        let fd = sys::map_create(
            sys::MAP_TYPE_HASH,
            MAC_LEN as u32,
            4,
            MAX_ENDPOINTS,
            sys::F_NO_PREALLOC,
            MAP_NAME,
        )?;
        Ok(Self { fd })
    }

    /// The map the kernel knows by `id` (found again through a program that uses it).
    pub fn by_id(id: u32) -> io::Result<Self> {
        Ok(Self {
            fd: sys::map_fd_by_id(id)?,
        })
    }

    /// Its file descriptor (for loading a program that uses it).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Sends frames for `mac` to the container behind `ifindex`.
    pub fn set(&self, mac: &[u8; MAC_LEN], ifindex: u32) -> io::Result<()> {
        sys::map_update(self.fd(), mac, &ifindex.to_ne_bytes())
    }

    /// Where frames for `mac` go, `None` when nowhere.
    pub fn get(&self, mac: &[u8; MAC_LEN]) -> io::Result<Option<u32>> {
        let mut v = [0u8; 4];
        Ok(sys::map_lookup(self.fd(), mac, &mut v)?.then(|| u32::from_ne_bytes(v)))
    }

    /// Stops sending frames for `mac` anywhere; whether it was there.
    pub fn remove(&self, mac: &[u8; MAC_LEN]) -> io::Result<bool> {
        sys::map_delete(self.fd(), mac)
    }

    /// Every entry.
    pub fn entries(&self) -> io::Result<BTreeMap<[u8; MAC_LEN], u32>> {
        let mut out = BTreeMap::new();
        let mut key: Option<[u8; MAC_LEN]> = None;
        loop {
            let mut next = [0u8; MAC_LEN];
            if !sys::map_next_key(self.fd(), key.as_ref().map(|k| &k[..]), &mut next)? {
                return Ok(out);
            }
            let mut v = [0u8; 4];
            // A key deleted between the two calls is simply left out.
            if sys::map_lookup(self.fd(), &next, &mut v)? {
                out.insert(next, u32::from_ne_bytes(v));
            }
            key = Some(next);
        }
    }
}
