//! What the SEV-SNP platform needs from the firmware itself (the instructions are in
//! `crate::snp::instr`).

/// What the SNP #VC handler needs from the firmware ([`crate::snp::vc::VcEnv`]).
pub struct FirmwareVcEnv {
    secure_tsc: bool,
}

impl FirmwareVcEnv {
    /// `secure_tsc`: SEV_STATUS bit 11 as the reset code read it.
    pub const fn new(secure_tsc: bool) -> Self {
        FirmwareVcEnv { secure_tsc }
    }
}

impl crate::snp::vc::VcEnv for FirmwareVcEnv {
    /// Instruction bytes are read only from the firmware's own code in RAM: a #VC anywhere else
    /// is not the firmware's and is refused (0 bytes).
    fn fetch(&self, rip: u64, buf: &mut [u8; crate::snp::vc::MAX_INSN]) -> usize {
        let (base, size) = super::phys::firmware_code();
        let end = base.saturating_add(size);
        if rip < base || rip >= end {
            return 0;
        }
        let n = usize::try_from(end - rip).map_or(buf.len(), |left| left.min(buf.len()));
        for (i, b) in buf.iter_mut().take(n).enumerate() {
            // `rip + i` lies in the firmware's code in RAM (checked above), mapped
            // readable for the firmware's whole life.
            // SAFETY: rip + i is inside the firmware's mapped code (bounds checked above).
            *b = unsafe { core::ptr::read_volatile((rip as *const u8).add(i)) };
        }
        n
    }

    /// The firmware maps no MMIO shared under SNP: every MMIO access is refused.
    fn mmio_gpa(&self, _va: u64, _len: u64) -> Option<u64> {
        None
    }

    /// CR4.OSXSAVE and CR4.PKE as set (the firmware sets neither); XCR0 only if OSXSAVE;
    /// IA32_XSS is never set by the firmware, so its reset value 0.
    fn cpu_state(&self) -> crate::snp::cpuid::CpuState {
        use x86_64::registers::control::{Cr4, Cr4Flags};
        let cr4 = Cr4::read();
        let osxsave = cr4.contains(Cr4Flags::OSXSAVE);
        let xcr0 = if osxsave {
            x86_64::registers::xcontrol::XCr0::read_raw()
        } else {
            1
        };
        crate::snp::cpuid::CpuState {
            osxsave,
            pke: cr4.contains(Cr4Flags::PROTECTION_KEY_USER),
            xcr0,
            xss: 0,
        }
    }

    fn secure_tsc(&self) -> bool {
        self.secure_tsc
    }
}
