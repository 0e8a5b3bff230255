//! The one narrow interface to the SEV-SNP hardware: the GHCB MSR, VMGEXIT, PVALIDATE, and the
//! cache-line touch after validation. Everything else in [`crate::snp`] is plain Rust over
//! [`SevCpu`] and runs on the host against the model of the hypervisor and the SNP firmware.
//! The firmware's implementation is `super::instr` (built for `x86_64-unknown-none` only).

use super::ghcb::Ghcb;
use core::fmt;

/// The GHCB MSR (`MSR_AMD64_SEV_ES_GHCB`): the MSR protocol's request/response register, and the
/// GHCB's GPA when the page protocol is used. Read and written directly: it never raises #VC.
pub const GHCB_MSR: u32 = 0xC001_0130;

/// SEV_STATUS (`MSR_AMD64_SEV`): which of SEV, SEV-ES and SEV-SNP are active (see
/// [`super::detect`]). Read directly: it never raises #VC, but it raises #GP on CPUs without
/// it, so it is read only after CPUID says SEV exists.
pub const SEV_STATUS_MSR: u32 = 0xC001_0131;

/// 4 KiB.
pub const PAGE_4K: u64 = 0x1000;
/// 2 MiB.
pub const PAGE_2M: u64 = 0x20_0000;

/// The page size of an RMP operation (PVALIDATE's ECX, a PSC entry's page-size bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageSize {
    /// 4 KiB (`RMP_PG_SIZE_4K` = 0).
    Size4K,
    /// 2 MiB (`RMP_PG_SIZE_2M` = 1).
    Size2M,
}

impl PageSize {
    /// The encoding (PVALIDATE ECX, PSC entry bit 56): 0 for 4 KiB, 1 for 2 MiB.
    pub const fn code(self) -> u64 {
        match self {
            Self::Size4K => 0,
            Self::Size2M => 1,
        }
    }

    /// Bytes.
    pub const fn bytes(self) -> u64 {
        match self {
            Self::Size4K => PAGE_4K,
            Self::Size2M => PAGE_2M,
        }
    }

    /// 4 KiB pages in one page of this size.
    pub const fn pages_4k(self) -> u64 {
        self.bytes() / PAGE_4K
    }
}

/// PVALIDATE return codes in EAX (Linux `asm/sev.h`; AMD APM vol. 3, PVALIDATE).
pub mod pvalidate_status {
    /// The RMP entry was updated (or, with CF = 1, already was in the requested state).
    pub const SUCCESS: u32 = 0;
    /// Invalid input: e.g. an unaligned address or a page not assigned to the guest.
    pub const FAIL_INPUT: u32 = 1;
    /// A 2 MiB PVALIDATE of a range the RMP describes with 4 KiB entries (or the reverse).
    pub const FAIL_SIZEMISMATCH: u32 = 6;
    /// Not a hardware code: the firmware's instruction layer refused to execute the call.
    pub const INSTR_REFUSED: u32 = u32::MAX;

    /// A name for messages.
    pub fn name(code: u32) -> &'static str {
        match code {
            SUCCESS => "success",
            FAIL_INPUT => "FAIL_INPUT",
            FAIL_SIZEMISMATCH => "FAIL_SIZEMISMATCH",
            INSTR_REFUSED => "refused by the firmware's instruction layer",
            _ => "unknown PVALIDATE code",
        }
    }
}

/// What PVALIDATE returned: EAX and the carry flag. CF = 1 means the RMP entry was **not**
/// changed because it already had the requested validated state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PvalidateResult {
    /// EAX: one of [`pvalidate_status`].
    pub eax: u32,
    /// RFLAGS.CF after the instruction.
    pub cf: bool,
}

impl PvalidateResult {
    /// Success with the RMP entry changed.
    pub const CHANGED: PvalidateResult = PvalidateResult { eax: 0, cf: false };
}

impl fmt::Display for PvalidateResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "EAX {} ({}), CF {}",
            self.eax,
            pvalidate_status::name(self.eax),
            u8::from(self.cf)
        )
    }
}

/// The hardware operations. Implementations: `super::instr::SevInstr` (the firmware) and the
/// test model. Nothing here interprets results; the callers in [`crate::snp`] check every one.
pub trait SevCpu {
    /// RDMSR of [`GHCB_MSR`].
    fn ghcb_msr_read(&self) -> u64;

    /// WRMSR of [`GHCB_MSR`].
    fn ghcb_msr_write(&self, value: u64);

    /// VMGEXIT (`rep vmmcall`, F3 0F 01 D9).
    ///
    /// `None`: an MSR-protocol request; the GHCB MSR holds the request and afterwards the
    /// response. `Some(ghcb)`: a GHCB-page request; the GHCB MSR must hold the registered
    /// GHCB's GPA. `ghcb` is the caller's **private** copy: the implementation copies it to the
    /// shared GHCB page, executes VMGEXIT and copies the page back into `ghcb`, so every check
    /// the caller makes afterwards reads one snapshot the hypervisor can no longer change.
    fn vmgexit(&self, ghcb: Option<&mut Ghcb>);

    /// PVALIDATE (F2 0F 01 FF): RAX = `va`, ECX = `size`, EDX = `validate` (1 validate,
    /// 0 rescind). Returns EAX and CF.
    fn pvalidate(&self, va: u64, size: PageSize, validate: bool) -> PvalidateResult;

    /// Reads the first and the last byte of each of the `pages` 4 KiB pages from `va`, through
    /// the guest's key: the cache-eviction mitigation Linux applies after validating memory on
    /// CPUs without `COHERENCY_SFW_NO` (CPUID 0x8000001F EBX bit 31 clear; AMD SB-3017 /
    /// CVE-2025-38560).
    fn touch_pages(&self, va: u64, pages: u64);
}

impl<T: SevCpu + ?Sized> SevCpu for &T {
    fn ghcb_msr_read(&self) -> u64 {
        (**self).ghcb_msr_read()
    }
    fn ghcb_msr_write(&self, value: u64) {
        (**self).ghcb_msr_write(value)
    }
    fn vmgexit(&self, ghcb: Option<&mut Ghcb>) {
        (**self).vmgexit(ghcb)
    }
    fn pvalidate(&self, va: u64, size: PageSize, validate: bool) -> PvalidateResult {
        (**self).pvalidate(va, size, validate)
    }
    fn touch_pages(&self, va: u64, pages: u64) {
        (**self).touch_pages(va, pages)
    }
}

/// The four registers CPUID returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuidResult {
    /// EAX.
    pub eax: u32,
    /// EBX.
    pub ebx: u32,
    /// ECX.
    pub ecx: u32,
    /// EDX.
    pub edx: u32,
}
