//! The TDCALL instruction: the only code that executes it, behind [`Tdcall`].
//!
//! # What has and has not been verified
//!
//! There is no TDX hardware here. Verified: the code compiles for `x86_64-unknown-none`; the
//! encoding is `66 0F 01 CC` (as in td-shim's `tdvmcall.asm` and EDK2's `TdVmcall.nasm`); the
//! register usage below was checked against the research notes (TDX module 1.5 source, Linux,
//! EDK2; /work/shared/research/tdx-boot.md §2, §3); the same `asm!` block, compiled alone for
//! this target with rustc 1.95 `-O`, disassembles to `66 0f 01 cc` (`tdcall`) between loads and
//! stores of all eleven registers, with the pointer to the registers held in RBX across the
//! instruction (so RBX being preserved, see below, is load-bearing); and everything above this
//! file is tested on the host against a model of the module and the VMM. **Not** verified: execution itself —
//! that a real module returns exactly what the notes say in these registers, that the leaves
//! used leave RBX and RBP untouched, and the behaviour of TDX module versions after 1.5. The
//! first boot on hardware is the first run of this code.
//!
//! # Register usage
//!
//! * RAX (leaf in, status out), RCX, RDX and R8–R15 are all `inout`: the compiler assumes any
//!   of them may change, whatever the leaf. This covers TDG.VP.VMCALL, where the registers
//!   exposed in the RCX bitmap come back holding the VMM's values, and the leaves that return
//!   values in RCX, RDX, R8–R11.
//! * RSI and RDI are marked clobbered although no leaf used here writes them: cheap insurance.
//! * RBX and RBP cannot be named as operands (LLVM reserves them). They are safe because (a)
//!   only the leaves listed in [`SUPPORTED_LEAVES`] are executed, and none of them returns
//!   anything in RBX or RBP (§2.2–§2.6), and (b) a TDG.VP.VMCALL is executed only if its bitmap
//!   exposes nothing outside RDX and R8–R15 ([`vmcall::EXPOSABLE`]). Registers not exposed
//!   are restored by the module on return, and the VMM sees them as zero (§3.1).
//! * XMM registers: never exposed (bitmap bits 31:16 must be zero), so the module preserves
//!   them.
//! * Flags: not preserved (the default for `asm!`). Memory: the module writes the buffers whose
//!   GPAs are passed (TDREPORT) and the VMM may write shared memory, so `nomem`/`readonly` are
//!   not used and callers expose the buffers' provenance. The stack is not touched (`nostack`).
//! * TDG.MEM.PAGE.ACCEPT of a 2 MiB page returns without advancing RIP when an interrupt is
//!   pending (§2.4); the TDCALL is re-executed after the interrupt with the same registers, so
//!   this is invisible here provided interrupt handlers preserve all GPRs (they must anyway).
//!
//! A call outside those rules is not executed: [`status::INSTR_REFUSED`] is returned instead.
//!
//! TDCALL raises #GP(0) outside 64-bit mode (§1.2); this code only runs in long mode.

use super::calls::{leaf, status, vmcall, Tdcall, TdcallArgs};

/// The leaves this layer executes: the ones whose register outputs were checked (§2).
pub const SUPPORTED_LEAVES: [u64; 6] = [
    leaf::VP_VMCALL,
    leaf::VP_INFO,
    leaf::MR_RTMR_EXTEND,
    leaf::VP_VEINFO_GET,
    leaf::MR_REPORT,
    leaf::MEM_PAGE_ACCEPT,
];

/// The TDCALL instruction itself (zero-sized). See the module documentation for what it
/// assumes and what has been verified.
#[derive(Debug, Clone, Copy, Default)]
pub struct TdcallInstr;

impl Tdcall for TdcallInstr {
    fn tdcall(&self, regs: &mut TdcallArgs) -> u64 {
        if !SUPPORTED_LEAVES.contains(&regs.rax)
            || (regs.rax == leaf::VP_VMCALL && regs.rcx & !vmcall::EXPOSABLE != 0)
        {
            regs.rax = status::INSTR_REFUSED;
            return status::INSTR_REFUSED;
        }
        // TDCALL (66 0F 01 CC) with a leaf from SUPPORTED_LEAVES, executed in 64-bit
        // mode. It reads and writes only the registers declared here (all inout or clobbered)
        // and, for leaves that take buffer GPAs, the buffers whose addresses the safe wrappers
        // in `calls` derived from live references (provenance exposed) of the required size
        // and alignment. For TDG.VP.VMCALL the bitmap was checked above to expose only
        // registers declared here, so RBX/RBP/RSP are restored by the module. It does not use
        // the stack.
        // SAFETY: a supported leaf in long mode; only declared registers and checked buffers change.
        unsafe {
            core::arch::asm!(
                ".byte 0x66, 0x0f, 0x01, 0xcc",
                inout("rax") regs.rax,
                inout("rcx") regs.rcx,
                inout("rdx") regs.rdx,
                inout("r8") regs.r8,
                inout("r9") regs.r9,
                inout("r10") regs.r10,
                inout("r11") regs.r11,
                inout("r12") regs.r12,
                inout("r13") regs.r13,
                inout("r14") regs.r14,
                inout("r15") regs.r15,
                out("rsi") _,
                out("rdi") _,
                options(nostack),
            );
        }
        regs.rax
    }
}
