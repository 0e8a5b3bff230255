//! The constants the reset code's SEV detection uses (`arch/reset.rs`), in one host-visible
//! place. Before Rust runs, the reset code (entered in real mode) installs an IDT whose only
//! entry is #VC, asks CPUID 0x80000000 and 0x8000001F whether SEV exists (under SEV-ES/SNP each
//! CPUID raises #VC, answered through the GHCB MSR protocol), reads `SEV_STATUS`, and under
//! SEV-SNP takes the C-bit position from the CPUID page the PSP validated at launch. SEV or
//! SEV-ES without SNP ends there: SEV-ES with a GHCB termination request, plain SEV with a
//! message on COM1 (its port I/O works).
//!
//! Sources: the research notes' reading of the GHCB specification (MSR protocol codes as in
//! Linux `arch/x86/include/asm/sev-common.h`, exit codes as in `arch/x86/include/uapi/asm/svm.h`)
//! and of the SEV-SNP ABI (CPUID page: a 16-byte header with the count, then up to 64 entries of
//! 48 bytes: function, index, XCR0, XSS, EAX, EBX, ECX, EDX, reserved).

/// `SEV_STATUS` (MSR 0xC0010131): bit 0 SEV, bit 1 SEV-ES, bit 2 SEV-SNP. Never intercepted.
pub const SEV_STATUS_MSR: u32 = 0xC001_0131;
/// `SEV_STATUS` bit: SEV active.
pub const SEV_STATUS_SEV: u32 = 1 << 0;
/// `SEV_STATUS` bit: SEV-ES active.
pub const SEV_STATUS_SEV_ES: u32 = 1 << 1;
/// `SEV_STATUS` bit: SEV-SNP active.
pub const SEV_STATUS_SNP: u32 = 1 << 2;
/// The GHCB MSR (0xC0010130), which carries the MSR protocol before a GHCB page exists.
pub const GHCB_MSR: u32 = 0xC001_0130;
/// MSR protocol: CPUID request (register in bits 31:30, leaf in 63:32).
pub const GHCB_MSR_CPUID_REQ: u32 = 0x004;
/// MSR protocol: CPUID response (value in 63:32).
pub const GHCB_MSR_CPUID_RESP: u32 = 0x005;
/// SVM exit code of CPUID, the #VC error code the early handler serves.
pub const EXIT_CPUID: u32 = 0x72;
/// Most entries a CPUID page holds.
pub const CPUID_PAGE_MAX_ENTRIES: u32 = 64;
/// Termination reason-code set for the firmware's own codes (set 0 is the GHCB
/// specification's; 0xF is ours, not a standard value).
pub const TERM_REASON_SET: u32 = 0xF;
const _: () = assert!(TERM_REASON_SET <= 0xF, "a reason set is 4 bits");

/// Our code: the CPUID page has no valid leaf 0x8000001F (or more than 64 entries, or a C-bit
/// position outside 32..=51).
pub const TERM_BAD_CPUID_PAGE: u32 = 1;
/// Our code: a #VC other than CPUID before Rust.
pub const TERM_UNEXPECTED_VC: u32 = 2;
/// Our code: the hypervisor answered the MSR protocol with the wrong response code.
pub const TERM_GHCB_PROTOCOL: u32 = 3;
/// SEV-ES without SNP ends with the GHCB specification's own reason: set 0, code 2 ("SEV-SNP
/// features not supported").
pub const TERM_SNP_UNSUPPORTED: (u32, u32) = (0, 2);

/// How the reset code describes an SNP entry to Rust in EBX (entered in real mode):
/// `SEV_STATUS[15:0] << 16 | C-bit position`. Zero on a plain VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnpEntry {
    /// `SEV_STATUS` bits 15:0 as read at reset.
    pub sev_status: u16,
    /// The C-bit position from the CPUID page (32..=51).
    pub c_bit: u8,
}

impl SnpEntry {
    /// Decodes the entry registers: `Some` only for a real-mode entry (16) whose EBX says SNP
    /// with a C-bit position the reset code accepts.
    pub const fn from_entry(mode: u32, ebx: u32) -> Option<SnpEntry> {
        if mode != 16 || ebx == 0 {
            return None;
        }
        let sev_status = (ebx >> 16) as u16;
        let c_bit = (ebx & 0x3F) as u8;
        if sev_status as u32 & SEV_STATUS_SNP == 0 || c_bit < 32 || c_bit > 51 {
            return None;
        }
        Some(SnpEntry { sev_status, c_bit })
    }

    /// The C-bit as a mask for page-table entries.
    pub const fn c_bit_mask(self) -> u64 {
        1 << self.c_bit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_entry_registers_say_snp_only_with_a_sane_c_bit() {
        // SEV_STATUS = SEV | SEV-ES | SNP (7), C-bit 51.
        let e = SnpEntry::from_entry(16, (7 << 16) | 51).unwrap();
        assert_eq!(e.sev_status, 7);
        assert_eq!(e.c_bit, 51);
        assert_eq!(e.c_bit_mask(), 1 << 51);
        // A plain VM (EBX 0), a TDX entry (32-bit, EBX = GPA width), no SNP bit, odd C-bits.
        assert_eq!(SnpEntry::from_entry(16, 0), None);
        assert_eq!(SnpEntry::from_entry(32, (7 << 16) | 51), None);
        assert_eq!(SnpEntry::from_entry(32, 52), None);
        assert_eq!(SnpEntry::from_entry(16, (3 << 16) | 51), None);
        assert_eq!(SnpEntry::from_entry(16, (7 << 16) | 31), None);
        assert_eq!(SnpEntry::from_entry(16, (7 << 16) | 52), None);
    }

    #[test]
    fn the_reset_code_constants_are_the_specification_values() {
        assert_eq!(SEV_STATUS_MSR, 0xC001_0131);
        assert_eq!(GHCB_MSR, 0xC001_0130);
        assert_eq!((GHCB_MSR_CPUID_REQ, GHCB_MSR_CPUID_RESP), (4, 5));
        assert_eq!(EXIT_CPUID, 0x72);
    }
}
