//! The fast path's program: on a host-side veth's ingress (a frame a container sent), look the
//! destination MAC up in its network's map and, on a hit, hand the frame straight to the
//! destination container's interface (`bpf_redirect_peer`); anything else (the gateway's MAC,
//! broadcast, multicast, an unknown MAC, a frame to its own sender) goes on to the bridge.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use super::insn::{
    Asm, Cond, Insn, Reg, Size, add64_imm, call, exit, load, load_map_fd, mov64_imm, mov64_reg,
    store,
};
use super::sys;

/// The name every fast-path program is loaded with; how netd recognises its own among the
/// programs attached to a device.
pub const PROG_NAME: &str = "berth_fastpath";

/// Offsets in `struct __sk_buff` (the program's context).
const SKB_IFINDEX: i16 = 40;
const SKB_DATA: i16 = 76;
const SKB_DATA_END: i16 = 80;

/// Kernel helpers called.
const HELPER_MAP_LOOKUP_ELEM: i32 = 1;
const HELPER_REDIRECT_PEER: i32 = 155;

/// `TC_ACT_UNSPEC`: let the following filter, then the device's normal path, have it.
const TC_ACT_UNSPEC: i32 = -1;

/// Ethernet address length: the map's key size.
pub const MAC_LEN: usize = 6;

/// The program's instructions for the map whose file descriptor is `map_fd`.
pub fn program(map_fd: i32) -> Vec<Insn> {
    use Reg::*;
    let mut a = Asm::default();
    a.push([
        mov64_reg(R6, R1),
        // r2 = start of the frame, r3 = its end; pass frames shorter than a MAC.
        load(Size::W, R2, R1, SKB_DATA),
        load(Size::W, R3, R1, SKB_DATA_END),
        mov64_reg(R4, R2),
        add64_imm(R4, MAC_LEN as i32),
    ])
    .jump_reg_to(Cond::Gt, R4, R3, "pass")
    // The destination MAC (the frame's first 6 bytes) as the key at fp-8.
    .push([
        load(Size::W, R4, R2, 0),
        store(Size::W, R10, -8, R4),
        load(Size::H, R4, R2, 4),
        store(Size::H, R10, -4, R4),
    ])
    .push(load_map_fd(R1, map_fd))
    .push([
        mov64_reg(R2, R10),
        add64_imm(R2, -8),
        call(HELPER_MAP_LOOKUP_ELEM),
    ])
    .jump_imm_to(Cond::Eq, R0, 0, "pass")
    // r1 = the destination's host-side veth; a frame for its own sender goes to the bridge,
    // which drops it as it always has.
    .push([load(Size::W, R1, R0, 0), load(Size::W, R2, R6, SKB_IFINDEX)])
    .jump_reg_to(Cond::Eq, R1, R2, "pass")
    .push([mov64_imm(R2, 0), call(HELPER_REDIRECT_PEER), exit()])
    .label("pass")
    .push([mov64_imm(R0, TC_ACT_UNSPEC), exit()]);
    a.finish()
}

/// Loads the program for `map`; the error carries the verifier's log.
pub fn load_for(map: BorrowedFd<'_>) -> Result<OwnedFd, sys::LoadError> {
    let insns = program(map.as_raw_fd());
    sys::prog_load(
        sys::PROG_TYPE_SCHED_CLS,
        &insns,
        c"Apache-2.0",
        PROG_NAME,
        0,
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn program_is_small_and_ends_in_exits() {
        let p = super::program(3);
        assert!(p.len() < 32, "{}", p.len());
        assert_eq!(p.last().map(|i| i.code), Some(0x95));
        // Both jumps to "pass" land on `r0 = -1`.
        let pass = p.len() - 2;
        for (i, ins) in p.iter().enumerate() {
            if ins.code & 0x07 == 0x05 && ins.code & 0xf0 != 0x80 && ins.code & 0xf0 != 0x90 {
                assert_eq!(i as i64 + 1 + ins.off as i64, pass as i64, "jump at {i}");
            }
        }
    }
}
