//! Detecting SEV, SEV-ES and SEV-SNP from CPUID and SEV_STATUS, safely (research notes §2.1).
//!
//! The order matters: CPUID 0x8000_0000 must report leaf 0x8000_001F, and that leaf's EAX
//! bit 1 (SEV) must be set, before SEV_STATUS ([`super::cpu::SEV_STATUS_MSR`]) is read: the
//! MSR does not exist elsewhere (on Intel the RDMSR raises #GP). [`detect`] therefore takes the
//! MSR read as a closure it calls only then. Under SEV-ES and SNP the two CPUID instructions
//! themselves raise #VC, so the #VC handler (MSR protocol; the CPUID page is not known yet)
//! must be in place first; their answers come from the hypervisor and are only a hint here —
//! SEV_STATUS is what the hardware says.
//!
//! SEV_STATUS bits (Linux `asm/msr-index.h`): 0 SEV, 1 SEV-ES, 2 SNP, 3 vTOM, 4 ReflectVC,
//! 5 restricted injection, 6 alternate injection, 7 DebugSwap, 8 prevent host IBS, 9 BTB
//! isolation, 10 VMPL SSS, 11 Secure TSC, 12 VMGEXIT parameter, 13 reserved, 14 IBS
//! virtualization, 15 reserved, 16 VMSA register protection, 17 SMT protection, 18 and up
//! reserved (18 is Secure AVIC in newer kernels).
//!
//! # Features this firmware refuses (decision)
//!
//! Like Linux `snp_get_unsupported_features`, an SNP guest refuses features that change what
//! guest code must do and that it does not implement, and every reserved bit
//! ([`UNSUPPORTED`]): vTOM (private/shared is decided by an address limit, not the C-bit),
//! ReflectVC (#VC is delivered differently), alternate injection (interrupt delivery through a
//! VMSA the guest maintains), the VMGEXIT parameter (a different VMGEXIT convention), bits 13,
//! 15 and 18..=63. The others need nothing from this firmware: restricted injection (it takes
//! no interrupts), DebugSwap (it does not touch debug registers), Secure TSC (RDTSC is then not
//! intercepted; an intercepted one is refused by [`super::vc`]), IBS and BTB protections, VMPL
//! supervisor shadow stacks, VMSA register protection and SMT protection.

use core::fmt;

/// SEV_STATUS bits.
pub mod status {
    /// SEV.
    pub const SEV: u64 = 1 << 0;
    /// SEV-ES.
    pub const SEV_ES: u64 = 1 << 1;
    /// SEV-SNP.
    pub const SNP: u64 = 1 << 2;
    /// Virtual top of memory.
    pub const VTOM: u64 = 1 << 3;
    /// ReflectVC.
    pub const REFLECT_VC: u64 = 1 << 4;
    /// Restricted injection.
    pub const RESTRICTED_INJ: u64 = 1 << 5;
    /// Alternate injection.
    pub const ALT_INJ: u64 = 1 << 6;
    /// DebugSwap.
    pub const DEBUG_SWAP: u64 = 1 << 7;
    /// Secure TSC.
    pub const SECURE_TSC: u64 = 1 << 11;
    /// VMGEXIT parameter.
    pub const VMGEXIT_PARAM: u64 = 1 << 12;
    /// Reserved bit 13.
    pub const RESERVED_13: u64 = 1 << 13;
    /// Reserved bit 15.
    pub const RESERVED_15: u64 = 1 << 15;
    /// Bits 63:18 (18: Secure AVIC in newer kernels).
    pub const RESERVED_HIGH: u64 = !((1 << 18) - 1);
}

/// The SNP features this firmware refuses (module documentation).
pub const UNSUPPORTED: u64 = status::VTOM
    | status::REFLECT_VC
    | status::ALT_INJ
    | status::VMGEXIT_PARAM
    | status::RESERVED_13
    | status::RESERVED_15
    | status::RESERVED_HIGH;

/// The memory-encryption mode of this guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Not an SEV guest (or not an AMD CPU).
    None,
    /// SEV: memory encrypted, registers not.
    Sev,
    /// SEV-ES: registers encrypted too; #VC.
    SevEs,
    /// SEV-SNP: the RMP; PVALIDATE, the CPUID and secrets pages.
    Snp,
}

/// What [`detect`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detected {
    /// The mode.
    pub mode: Mode,
    /// SEV_STATUS, if it was read.
    pub status: Option<u64>,
}

impl Detected {
    /// Whether Secure TSC is on (SEV_STATUS bit 11).
    pub fn secure_tsc(&self) -> bool {
        self.status.is_some_and(|s| s & status::SECURE_TSC != 0)
    }
}

/// Why detection refused the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetectError {
    /// SEV_STATUS is self-contradictory (SNP without SEV-ES, SEV-ES without SEV).
    Inconsistent(u64),
    /// SNP with features this firmware refuses.
    Unsupported {
        /// SEV_STATUS.
        status: u64,
        /// The refused bits.
        bits: u64,
    },
}

impl fmt::Display for DetectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Inconsistent(s) => write!(f, "snp: SEV_STATUS {s:#x} is inconsistent"),
            Self::Unsupported { status, bits } => write!(
                f,
                "snp: SEV_STATUS {status:#x} enables features this firmware does not implement ({bits:#x})"
            ),
        }
    }
}

/// Decides the mode from CPUID 0x8000_0000 EAX (`max_ext_leaf`), CPUID 0x8000_001F EAX (only
/// looked at if the leaf exists) and SEV_STATUS, which `read_status` reads only if CPUID
/// reports SEV.
pub fn detect(
    max_ext_leaf: u32,
    leaf_8000001f_eax: u32,
    read_status: impl FnOnce() -> u64,
) -> Result<Detected, DetectError> {
    let none = Detected {
        mode: Mode::None,
        status: None,
    };
    if max_ext_leaf < 0x8000_001F || leaf_8000001f_eax & (1 << 1) == 0 {
        return Ok(none);
    }
    let s = read_status();
    let mode = match (s & status::SEV, s & status::SEV_ES, s & status::SNP) {
        (0, 0, 0) => Mode::None,
        (0, _, _) | (_, 0, status::SNP) => return Err(DetectError::Inconsistent(s)),
        (_, 0, 0) => Mode::Sev,
        (_, _, 0) => Mode::SevEs,
        _ => Mode::Snp,
    };
    if mode == Mode::Snp && s & UNSUPPORTED != 0 {
        return Err(DetectError::Unsupported {
            status: s,
            bits: s & UNSUPPORTED,
        });
    }
    Ok(Detected {
        mode,
        status: Some(s),
    })
}
