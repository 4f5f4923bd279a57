//! A small eBPF instruction builder: the fast path's program is a couple of dozen
//! instructions, written here as data (no compiler or ELF object at build time). Each helper
//! names one instruction form of the kernel's eBPF ISA (`Documentation/bpf/standardization`).

/// One eBPF instruction as the kernel reads it (`struct bpf_insn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Insn {
    /// Opcode: class, size/mode or operation, source.
    pub code: u8,
    /// Destination register in the low nibble, source register in the high one.
    pub regs: u8,
    /// Signed offset (memory access or jump distance in instructions).
    pub off: i16,
    /// Signed immediate.
    pub imm: i32,
}

/// The eleven registers: r0 return value, r1-r5 arguments, r6-r9 callee-saved, r10 frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Reg {
    R0 = 0,
    R1,
    R2,
    R3,
    R4,
    R5,
    R6,
    R7,
    R8,
    R9,
    /// Read-only frame pointer (the stack grows down from it).
    R10,
}

/// Access width of a load or store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// 8 bits.
    B,
    /// 16 bits.
    H,
    /// 32 bits.
    W,
    /// 64 bits.
    Dw,
}

impl Size {
    fn bits(self) -> u8 {
        match self {
            Size::W => 0x00,
            Size::H => 0x08,
            Size::B => 0x10,
            Size::Dw => 0x18,
        }
    }
}

/// Conditional jump tests (64-bit compares).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cond {
    /// `==`
    Eq,
    /// `>` unsigned
    Gt,
    /// `!=`
    Ne,
}

impl Cond {
    fn op(self) -> u8 {
        match self {
            Cond::Eq => 0x10,
            Cond::Gt => 0x20,
            Cond::Ne => 0x50,
        }
    }
}

const CLASS_LD: u8 = 0x00;
const CLASS_LDX: u8 = 0x01;
const CLASS_ST: u8 = 0x02;
const CLASS_STX: u8 = 0x03;
const CLASS_JMP: u8 = 0x05;
const CLASS_ALU64: u8 = 0x07;
const MODE_IMM: u8 = 0x00;
const MODE_MEM: u8 = 0x60;
const SRC_K: u8 = 0x00;
const SRC_X: u8 = 0x08;
const ALU_ADD: u8 = 0x00;
const ALU_MOV: u8 = 0xb0;
const JMP_CALL: u8 = 0x80;
const JMP_EXIT: u8 = 0x90;
/// `src_reg` of a 64-bit immediate load whose immediate is a map's file descriptor.
const PSEUDO_MAP_FD: u8 = 1;

fn insn(code: u8, dst: Reg, src: Reg, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (dst as u8) | ((src as u8) << 4),
        off,
        imm,
    }
}

/// `dst = src` (64-bit).
pub fn mov64_reg(dst: Reg, src: Reg) -> Insn {
    insn(CLASS_ALU64 | ALU_MOV | SRC_X, dst, src, 0, 0)
}

/// `dst = imm` (64-bit, sign-extended).
pub fn mov64_imm(dst: Reg, imm: i32) -> Insn {
    insn(CLASS_ALU64 | ALU_MOV | SRC_K, dst, Reg::R0, 0, imm)
}

/// `dst += imm` (64-bit).
pub fn add64_imm(dst: Reg, imm: i32) -> Insn {
    insn(CLASS_ALU64 | ALU_ADD | SRC_K, dst, Reg::R0, 0, imm)
}

/// `dst = *(size *)(src + off)`.
pub fn load(size: Size, dst: Reg, src: Reg, off: i16) -> Insn {
    insn(CLASS_LDX | MODE_MEM | size.bits(), dst, src, off, 0)
}

/// `*(size *)(dst + off) = src`.
pub fn store(size: Size, dst: Reg, off: i16, src: Reg) -> Insn {
    insn(CLASS_STX | MODE_MEM | size.bits(), dst, src, off, 0)
}

/// `*(size *)(dst + off) = imm`.
pub fn store_imm(size: Size, dst: Reg, off: i16, imm: i32) -> Insn {
    insn(CLASS_ST | MODE_MEM | size.bits(), dst, Reg::R0, off, imm)
}

/// `dst = map` (the two-slot 64-bit immediate load the kernel rewrites to the map's address
/// when the program is loaded).
pub fn load_map_fd(dst: Reg, fd: i32) -> [Insn; 2] {
    let mut first = insn(CLASS_LD | MODE_IMM | Size::Dw.bits(), dst, Reg::R0, 0, fd);
    first.regs |= PSEUDO_MAP_FD << 4;
    [
        first,
        Insn {
            code: 0,
            regs: 0,
            off: 0,
            imm: 0,
        },
    ]
}

/// `if dst <cond> src goto +off`.
pub fn jump_reg(cond: Cond, dst: Reg, src: Reg, off: i16) -> Insn {
    insn(CLASS_JMP | cond.op() | SRC_X, dst, src, off, 0)
}

/// `if dst <cond> imm goto +off`.
pub fn jump_imm(cond: Cond, dst: Reg, imm: i32, off: i16) -> Insn {
    insn(CLASS_JMP | cond.op() | SRC_K, dst, Reg::R0, off, imm)
}

/// Calls kernel helper number `helper` (arguments in r1-r5, result in r0).
pub fn call(helper: i32) -> Insn {
    insn(CLASS_JMP | JMP_CALL, Reg::R0, Reg::R0, 0, helper)
}

/// Returns r0.
pub fn exit() -> Insn {
    insn(CLASS_JMP | JMP_EXIT, Reg::R0, Reg::R0, 0, 0)
}

/// A program being written, with forward jumps to named labels patched when the label is
/// placed (so no jump distance is counted by hand).
#[derive(Debug, Default)]
pub struct Asm {
    insns: Vec<Insn>,
    pending: Vec<(usize, &'static str)>,
}

impl Asm {
    /// Appends instructions.
    pub fn push(&mut self, i: impl IntoIterator<Item = Insn>) -> &mut Self {
        self.insns.extend(i);
        self
    }

    /// Appends a conditional jump (`if dst <cond> imm`) to `label`, placed later.
    pub fn jump_imm_to(
        &mut self,
        cond: Cond,
        dst: Reg,
        imm: i32,
        label: &'static str,
    ) -> &mut Self {
        self.pending.push((self.insns.len(), label));
        self.push([jump_imm(cond, dst, imm, 0)])
    }

    /// Appends a conditional jump (`if dst <cond> src`) to `label`, placed later.
    pub fn jump_reg_to(
        &mut self,
        cond: Cond,
        dst: Reg,
        src: Reg,
        label: &'static str,
    ) -> &mut Self {
        self.pending.push((self.insns.len(), label));
        self.push([jump_reg(cond, dst, src, 0)])
    }

    /// Places `label` at the next instruction, patching the jumps to it.
    pub fn label(&mut self, label: &'static str) -> &mut Self {
        let here = self.insns.len();
        self.pending.retain(|(at, l)| {
            if *l != label {
                return true;
            }
            // Jump distances count from the instruction after the jump.
            self.insns[*at].off = (here - at - 1) as i16;
            false
        });
        self
    }

    /// The finished program; panics (a bug in the program's text, not an input) when a jump
    /// names a label that was never placed.
    pub fn finish(self) -> Vec<Insn> {
        assert!(
            self.pending.is_empty(),
            "unplaced labels: {:?}",
            self.pending
        );
        self.insns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_match_the_kernel_isa() {
        // Values as `bpftool prog dump xlated` / the kernel's filter.h macros produce them.
        assert_eq!(
            mov64_reg(Reg::R6, Reg::R1),
            Insn {
                code: 0xbf,
                regs: 0x16,
                off: 0,
                imm: 0
            }
        );
        assert_eq!(
            mov64_imm(Reg::R0, -1),
            Insn {
                code: 0xb7,
                regs: 0x00,
                off: 0,
                imm: -1
            }
        );
        assert_eq!(
            add64_imm(Reg::R2, -8),
            Insn {
                code: 0x07,
                regs: 0x02,
                off: 0,
                imm: -8
            }
        );
        assert_eq!(
            load(Size::W, Reg::R2, Reg::R1, 76),
            Insn {
                code: 0x61,
                regs: 0x12,
                off: 76,
                imm: 0
            }
        );
        assert_eq!(load(Size::H, Reg::R4, Reg::R2, 4).code, 0x69);
        assert_eq!(
            store(Size::W, Reg::R10, -8, Reg::R4),
            Insn {
                code: 0x63,
                regs: 0x4a,
                off: -8,
                imm: 0
            }
        );
        assert_eq!(store_imm(Size::H, Reg::R10, -2, 0).code, 0x6a);
        let m = load_map_fd(Reg::R1, 7);
        assert_eq!(
            m[0],
            Insn {
                code: 0x18,
                regs: 0x11,
                off: 0,
                imm: 7
            }
        );
        assert_eq!(
            m[1],
            Insn {
                code: 0,
                regs: 0,
                off: 0,
                imm: 0
            }
        );
        assert_eq!(jump_reg(Cond::Gt, Reg::R4, Reg::R3, 3).code, 0x2d);
        assert_eq!(jump_imm(Cond::Eq, Reg::R0, 0, 2).code, 0x15);
        assert_eq!(
            call(155),
            Insn {
                code: 0x85,
                regs: 0,
                off: 0,
                imm: 155
            }
        );
        assert_eq!(exit().code, 0x95);
    }

    #[test]
    fn labels_patch_forward_jumps() {
        let mut a = Asm::default();
        a.jump_imm_to(Cond::Eq, Reg::R0, 0, "out")
            .push([mov64_imm(Reg::R0, 1), exit()])
            .label("out")
            .push([mov64_imm(Reg::R0, 2), exit()]);
        let p = a.finish();
        assert_eq!(p[0].off, 2);
    }
}
