//! The little of AMD SEV the firmware executes before an SNP platform exists: the GHCB MSR
//! protocol's termination request.

use crate::sev_entry::GHCB_MSR;

/// Asks the hypervisor to terminate the guest (GHCB MSR protocol request 0x100 with reason set
/// `set` and code `code`) and never returns: if the hypervisor resumes the guest anyway, the CPU
/// spins (`hlt` would be intercepted and come back as #VC).
pub fn ghcb_terminate(set: u8, code: u8) -> ! {
    let request: u64 = 0x100 | (u64::from(set & 0xF) << 12) | (u64::from(code) << 16);
    // SAFETY: writing the GHCB MSR and VMGEXIT (F3 0F 01 D9) only hands the hypervisor a
    // request; this runs only when the reset code found SEV-SNP active, where both exist.
    unsafe {
        core::arch::asm!(
            "wrmsr",
            ".byte 0xf3, 0x0f, 0x01, 0xd9",
            "2:",
            "cli",
            "pause",
            "jmp 2b",
            in("ecx") GHCB_MSR,
            in("eax") request as u32,
            in("edx") (request >> 32) as u32,
            options(noreturn, nostack)
        )
    }
}
