//! The SEV-SNP instructions: the only code that executes them, behind [`SevCpu`].
//!
//! # Encodings and register use (sources)
//!
//! * **VMGEXIT** = `rep vmmcall` = `F3 0F 01 D9` (Linux `VMGEXIT()`: `"rep; vmmcall"`; AMD APM
//!   vol. 3). No register operands: under SEV-ES/SNP the hypervisor cannot read or write the
//!   guest's registers (they are in the encrypted VMSA); it sees the GHCB MSR and the shared
//!   GHCB page only. Memory is not marked untouched (`nomem` is not used): for the page
//!   protocol the hypervisor writes the shared page.
//! * **PVALIDATE** = `F2 0F 01 FF` (Linux `pvalidate()`: `.byte 0xF2, 0x0F, 0x01, 0xFF`, binutils
//!   ≥ 2.36 know the mnemonic): RAX = virtual address, ECX = page size (0 4 KiB, 1 2 MiB),
//!   EDX = 1 validate / 0 rescind; returns the status in EAX and sets RFLAGS.CF when the RMP
//!   entry was not changed (Linux reads CF with `CC_SET(c)`; here `setc`).
//! * **RDMSR/WRMSR** of the GHCB MSR 0xC001_0130: ECX = index, EDX:EAX = value. This MSR is
//!   never intercepted under SEV-ES/SNP (it is how the guest talks to the hypervisor), so no #VC.
//!
//! # The GHCB page
//!
//! [`SevInstr::vmgexit`] with a GHCB copies the caller's private [`Ghcb`] to the shared page
//! with volatile 8-byte writes, executes VMGEXIT and copies the page back with volatile reads:
//! the hypervisor's answer is read exactly once, and everything above checks the private copy.
//!
//! # What has and has not been verified
//!
//! There is no SEV hardware here. Verified: this file compiles for `x86_64-unknown-none`; the
//! byte sequences are the ones Linux uses; everything above this file is tested on the host
//! against the model (`super::model`). **Not** verified: execution itself — that PVALIDATE
//! and VMGEXIT behave as the documentation says on a real CPU and hypervisor. This layer runs at
//! VMPL0 only (no SVSM). The first boot on hardware is the first run of this code.

use super::cpu::{pvalidate_status, PageSize, PvalidateResult, SevCpu, GHCB_MSR, PAGE_4K};
use super::ghcb::{Field, Ghcb, GHCB_SIZE};
use core::sync::atomic::{compiler_fence, Ordering};

/// The instructions (and the GHCB page's address, if there is one yet).
#[derive(Debug)]
pub struct SevInstr {
    /// The shared GHCB page's virtual address, or 0 before there is one.
    ghcb_va: usize,
}

impl SevInstr {
    /// The MSR protocol only: a GHCB-page VMGEXIT is refused.
    pub const fn msr_only() -> Self {
        SevInstr { ghcb_va: 0 }
    }

    /// With the GHCB page at `ghcb_va`.
    ///
    /// # Safety
    ///
    /// `ghcb_va` is the 4 KiB-aligned virtual address of a 4 KiB page mapped writable and
    /// shared (C-bit clear) for as long as this value is used, and used by nothing else. Every
    /// address later given to [`SevCpu::pvalidate`] or [`SevCpu::touch_pages`] is RAM mapped
    /// private (identity map) for the whole range it names.
    pub const unsafe fn new(ghcb_va: usize) -> Self {
        SevInstr { ghcb_va }
    }
}

/// Whether `va` is canonical for 4-level paging (bits 63:47 all equal).
const fn canonical(va: u64) -> bool {
    let top = va >> 47;
    top == 0 || top == (1 << 17) - 1
}

impl SevCpu for SevInstr {
    fn ghcb_msr_read(&self) -> u64 {
        let (lo, hi): (u32, u32);
        // RDMSR of the GHCB MSR, which exists on every SEV-ES/SNP guest (this code only
        // runs on one, after detection) and is never intercepted. Reads only EDX:EAX.
        // SAFETY: RDMSR of the GHCB MSR on an SEV-ES/SNP guest: never intercepted, EDX:EAX only.
        unsafe {
            core::arch::asm!(
                "rdmsr",
                in("ecx") GHCB_MSR,
                out("eax") lo,
                out("edx") hi,
                options(nomem, nostack, preserves_flags),
            );
        }
        u64::from(hi) << 32 | u64::from(lo)
    }

    fn ghcb_msr_write(&self, value: u64) {
        // WRMSR of the GHCB MSR, which holds only a request or a GPA for the
        // hypervisor; it changes no state of this guest's execution.
        // SAFETY: WRMSR of the GHCB MSR: a request/GPA for the hypervisor, no guest state changed.
        unsafe {
            core::arch::asm!(
                "wrmsr",
                in("ecx") GHCB_MSR,
                in("eax") value as u32,
                in("edx") (value >> 32) as u32,
                options(nostack, preserves_flags),
            );
        }
    }

    fn vmgexit(&self, ghcb: Option<&mut Ghcb>) {
        let Some(g) = ghcb else {
            // VMGEXIT (F3 0F 01 D9) with an MSR-protocol request in the GHCB MSR: the
            // hypervisor answers in the MSR; no guest register or private memory changes.
            // SAFETY: MSR-protocol VMGEXIT: the answer comes back in the MSR, nothing else changes.
            unsafe {
                core::arch::asm!(".byte 0xf3, 0x0f, 0x01, 0xd9", options(nostack));
            }
            return;
        };
        if self.ghcb_va == 0 {
            // Refused: no GHCB page. Reported as a hypervisor error the caller checks.
            g.write_u64(Field::SwExitInfo1.offset(), u64::MAX);
            return;
        }
        let page = self.ghcb_va as *mut u64;
        for (i, chunk) in g.as_bytes().chunks_exact(8).enumerate() {
            let mut q = [0u8; 8];
            q.copy_from_slice(chunk);
            // `page` is the shared GHCB page (contract of `new`), 4 KiB and 8-byte
            // aligned; i < GHCB_SIZE / 8, so the write stays inside it.
            // SAFETY: inside the shared GHCB page (contract of `new`), aligned, i < GHCB_SIZE / 8.
            unsafe { page.add(i).write_volatile(u64::from_le_bytes(q)) };
        }
        compiler_fence(Ordering::SeqCst);
        // VMGEXIT with the GHCB MSR holding the registered GHCB's GPA (the caller,
        // `ghcb::Session::call`, wrote it): the hypervisor reads and writes the shared page only.
        // SAFETY: GHCB VMGEXIT, registered GPA: the hypervisor touches only the shared page.
        unsafe {
            core::arch::asm!(".byte 0xf3, 0x0f, 0x01, 0xd9", options(nostack));
        }
        compiler_fence(Ordering::SeqCst);
        for (i, chunk) in g.as_bytes_mut().chunks_exact_mut(8).enumerate() {
            // SAFETY: as for the writes above.
            let q = unsafe { page.add(i).read_volatile() };
            chunk.copy_from_slice(&q.to_le_bytes());
        }
        debug_assert_eq!(GHCB_SIZE % 8, 0);
    }

    fn pvalidate(&self, va: u64, size: PageSize, validate: bool) -> PvalidateResult {
        if !canonical(va) {
            return PvalidateResult {
                eax: pvalidate_status::INSTR_REFUSED,
                cf: false,
            };
        }
        let eax: u64;
        let cf: u8;
        // PVALIDATE (F2 0F 01 FF) of a canonical address the caller maps as private RAM
        // (contract of `new`); it changes the page's RMP validated state, which the memory
        // model sees as the page's contents becoming undefined: the caller validates pages
        // before using them and never while anything lives in them.
        // SAFETY: PVALIDATE of caller-mapped private RAM (contract of `new`) holding nothing live.
        unsafe {
            core::arch::asm!(
                ".byte 0xf2, 0x0f, 0x01, 0xff",
                "setc {cf}",
                cf = out(reg_byte) cf,
                inout("rax") va => eax,
                in("ecx") size.code() as u32,
                in("edx") u32::from(validate),
                options(nostack),
            );
        }
        PvalidateResult {
            eax: eax as u32,
            cf: cf != 0,
        }
    }

    fn touch_pages(&self, va: u64, pages: u64) {
        for i in 0..pages {
            let page = va.wrapping_add(i.wrapping_mul(PAGE_4K)) as usize as *const u8;
            // The page was just validated and is identity-mapped private RAM (contract
            // of `new`); a volatile byte read of its first and last byte has no other effect.
            // SAFETY: volatile reads of a just-validated, identity-mapped private page.
            unsafe {
                let _ = page.read_volatile();
                let _ = page.add(PAGE_4K as usize - 1).read_volatile();
            }
        }
    }
}
