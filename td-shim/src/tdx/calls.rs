//! TDCALL leaves and TDG.VP.VMCALL sub-functions as typed Rust functions over one primitive,
//! [`Tdcall::tdcall`]. Only `super::instr` executes the instruction; everything here is plain
//! Rust and is tested on the host against a model of the TDX module and the VMM.
//!
//! Register usage, status codes and sub-function numbers follow the TDX module 1.5 source and
//! the GHCI as used by Linux, EDK2 and QEMU (docs in /work/shared/research/tdx-boot.md §2, §3).
//!
//! # Status handling
//!
//! Every status is looked at. Status comparisons mask the low 32 bits, which carry an operand ID
//! or a SEPT level (§2.8, pitfall 9).
//!
//! | Call | Retried | Treated as done | Everything else |
//! |---|---|---|---|
//! | TDG.VP.INFO, TDG.VP.VEINFO.GET | never: they take no lock | — | error |
//! | TDG.MR.RTMR.EXTEND, TDG.MR.REPORT | `OPERAND_BUSY` (another vCPU holds the RTMR lock, §2.3, §2.6), at most [`BUSY_ATTEMPTS`] attempts | — | error |
//! | TDG.MEM.PAGE.ACCEPT | `OPERAND_BUSY` (SEPT entry locked by a concurrent operation, §2.4), at most [`BUSY_ATTEMPTS`] attempts | `PAGE_ALREADY_ACCEPTED` (a warning, bit 63 clear) → [`AcceptOutcome::AlreadyAccepted`] | `PAGE_SIZE_MISMATCH` → [`AcceptOutcome::SizeMismatch`] for the caller to split; error otherwise |
//! | TDG.VP.VMCALL (RAX ≠ 0) | never: the call itself was malformed | — | error |
//! | MapGPA, VMM status `RETRY` | resumed from the address the VMM returns in R11, which must lie in `[current start, end)` and be 4 KiB aligned; at most [`MAP_GPA_STALLS`] consecutive retries without progress (Linux, EDK2 and td-shim use 3, §3.3) | — | error |
//! | other TDVMCALLs | never (`RETRY` is defined for MapGPA and GetQuote only) | — | error |
//!
//! The busy bound is a policy: EDK2 retries 3 times, td-shim 5. Busy means another vCPU (or
//! the host) holds a lock for the duration of one short module operation, so 64 attempts with a
//! `pause` in between is generous without letting a misbehaving host stall the boot forever.
//!
//! # Addresses of buffers
//!
//! TDG.MR.RTMR.EXTEND and TDG.MR.REPORT take guest-physical addresses of private buffers. The
//! firmware runs on identity-mapped private memory (`crate::paging`), so a buffer's address is
//! its GPA. The buffer types carry the alignment the module requires ([`Digest48Aligned`]: 64,
//! [`ReportData`]: 64, [`TdReport`]: 1024), so a misaligned call cannot be written.

use crate::port_io::PortIo;
use core::fmt;

#[cfg(test)]
pub(crate) mod model;
#[cfg(test)]
mod tests;

/// The registers of one TDCALL: RAX carries the leaf in and the status out; the other registers
/// are inputs and outputs as the leaf defines. For TDG.VP.VMCALL, RCX is the bitmap of the
/// registers exposed to the VMM. RBX, RSI, RDI and RBP are never used (no leaf called here takes
/// or returns them, and no TDVMCALL here exposes them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TdcallArgs {
    /// Leaf (bits 15:0) and version (bits 23:16) in; completion status out.
    pub rax: u64,
    /// RCX.
    pub rcx: u64,
    /// RDX.
    pub rdx: u64,
    /// R8.
    pub r8: u64,
    /// R9.
    pub r9: u64,
    /// R10.
    pub r10: u64,
    /// R11.
    pub r11: u64,
    /// R12.
    pub r12: u64,
    /// R13.
    pub r13: u64,
    /// R14.
    pub r14: u64,
    /// R15.
    pub r15: u64,
}

/// The one primitive: executes TDCALL with `regs`, writes back every register the instruction
/// returns (RAX included) and returns RAX, the completion status.
pub trait Tdcall {
    /// Executes TDCALL. `regs.rax` is the leaf in and the status out; the status is also
    /// returned.
    fn tdcall(&self, regs: &mut TdcallArgs) -> u64;
}

impl<T: Tdcall + ?Sized> Tdcall for &T {
    fn tdcall(&self, regs: &mut TdcallArgs) -> u64 {
        (**self).tdcall(regs)
    }
}

/// TDCALL leaf numbers (TDX module `tdx_api_defs.h`, §2.1).
pub mod leaf {
    /// TDG.VP.VMCALL: a call to the VMM.
    pub const VP_VMCALL: u64 = 0;
    /// TDG.VP.INFO.
    pub const VP_INFO: u64 = 1;
    /// TDG.MR.RTMR.EXTEND.
    pub const MR_RTMR_EXTEND: u64 = 2;
    /// TDG.VP.VEINFO.GET.
    pub const VP_VEINFO_GET: u64 = 3;
    /// TDG.MR.REPORT.
    pub const MR_REPORT: u64 = 4;
    /// TDG.MEM.PAGE.ACCEPT.
    pub const MEM_PAGE_ACCEPT: u64 = 6;

    /// The specification name of `leaf`, for messages.
    pub fn name(leaf: u64) -> &'static str {
        match leaf {
            VP_VMCALL => "TDG.VP.VMCALL",
            VP_INFO => "TDG.VP.INFO",
            MR_RTMR_EXTEND => "TDG.MR.RTMR.EXTEND",
            VP_VEINFO_GET => "TDG.VP.VEINFO.GET",
            MR_REPORT => "TDG.MR.REPORT",
            MEM_PAGE_ACCEPT => "TDG.MEM.PAGE.ACCEPT",
            _ => "TDCALL (unknown leaf)",
        }
    }
}

/// TDCALL completion statuses (`tdx_error_codes_defs.h`, §2.8). Compare with [`status::class`]:
/// the low 32 bits carry an operand ID or a SEPT level.
pub mod status {
    /// Success.
    pub const SUCCESS: u64 = 0;
    /// An operand is invalid (the low bits name it).
    pub const OPERAND_INVALID: u64 = 0xC000_0100_0000_0000;
    /// An operand is locked by a concurrent operation: retryable.
    pub const OPERAND_BUSY: u64 = 0x8000_0200_0000_0000;
    /// TDG.VP.VEINFO.GET: no #VE information is pending.
    pub const NO_VALID_VE_INFO: u64 = 0xC000_0704_0000_0000;
    /// TDG.MEM.PAGE.ACCEPT: the page is already accepted (a warning: bit 63 clear).
    pub const PAGE_ALREADY_ACCEPTED: u64 = 0x0000_0B0A_0000_0000;
    /// TDG.MEM.PAGE.ACCEPT: a 2 MiB accept of a range mapped with 4 KiB entries.
    pub const PAGE_SIZE_MISMATCH: u64 = 0xC000_0B0B_0000_0000;
    /// Operand ID of RCX in the low 32 bits.
    pub const OPERAND_RCX: u64 = 1;
    /// Operand ID of RDX.
    pub const OPERAND_RDX: u64 = 2;
    /// Operand ID of R8.
    pub const OPERAND_R8: u64 = 8;
    /// Operand ID of the RTMR lock (busy on RTMR.EXTEND and MR.REPORT).
    pub const OPERAND_RTMR: u64 = 168;
    /// Not a TDX module status: the firmware's instruction layer refused to execute the call
    /// (a leaf or exposure bitmap it was not written for). All ones, which the module never
    /// returns (its bits 59:48 are reserved zero).
    pub const INSTR_REFUSED: u64 = u64::MAX;

    /// The status without its low 32 bits (operand ID or level).
    pub const fn class(status: u64) -> u64 {
        status & 0xFFFF_FFFF_0000_0000
    }

    /// Whether `status` is `OPERAND_BUSY` on any operand.
    pub const fn is_busy(status: u64) -> bool {
        class(status) == OPERAND_BUSY
    }

    /// A short name of the status class, for messages.
    pub fn name(status: u64) -> &'static str {
        match class(status) {
            SUCCESS if status == SUCCESS => "success",
            OPERAND_INVALID => "OPERAND_INVALID",
            OPERAND_BUSY => "OPERAND_BUSY",
            NO_VALID_VE_INFO => "NO_VALID_VE_INFO",
            PAGE_ALREADY_ACCEPTED => "PAGE_ALREADY_ACCEPTED",
            PAGE_SIZE_MISMATCH => "PAGE_SIZE_MISMATCH",
            _ if status == INSTR_REFUSED => "refused by the firmware's instruction layer",
            _ => "unknown status",
        }
    }
}

/// TDG.VP.VMCALL sub-function numbers (R11, GHCI; §3.3).
pub mod vmcall {
    /// Instruction.CPUID.
    pub const CPUID: u64 = 0x0A;
    /// Instruction.IO.
    pub const IO: u64 = 0x1E;
    /// Instruction.RDMSR.
    pub const RDMSR: u64 = 0x1F;
    /// Instruction.WRMSR.
    pub const WRMSR: u64 = 0x20;
    /// #VE.RequestMMIO.
    pub const MMIO: u64 = 0x30;
    /// MapGPA.
    pub const MAP_GPA: u64 = 0x10001;
    /// ReportFatalError.
    pub const REPORT_FATAL_ERROR: u64 = 0x10003;

    /// TDVMCALL status (R10): success.
    pub const SUCCESS: u64 = 0;
    /// TDVMCALL status: retry (MapGPA: resume from R11).
    pub const RETRY: u64 = 1;
    /// TDVMCALL status: invalid operand.
    pub const INVALID_OPERAND: u64 = 0x8000_0000_0000_0000;
    /// TDVMCALL status: GPA already in use.
    pub const GPA_INUSE: u64 = 0x8000_0000_0000_0001;
    /// TDVMCALL status: alignment error.
    pub const ALIGN_ERROR: u64 = 0x8000_0000_0000_0002;
    /// TDVMCALL status: sub-function not supported (newer KVM).
    pub const SUBFUNC_UNSUPPORTED: u64 = 0x8000_0000_0000_0003;

    /// The GPR bits of the exposure bitmap (RCX bits 15:0, order RAX, RCX, RDX, RBX, RSP, RBP,
    /// RSI, RDI, R8–R15) of R10–R15: what every TDVMCALL here exposes, and nothing else.
    pub const EXPOSE_R10_R15: u64 = 0xFC00;
    /// The registers a TDVMCALL may expose through [`super::TdcallArgs`]: RDX and R8–R15.
    /// Exposing any other register would let the VMM change a register the compiler owns.
    pub const EXPOSABLE: u64 = 0xFF04;

    /// The specification name of sub-function `f`, for messages.
    pub fn name(f: u64) -> &'static str {
        match f {
            CPUID => "Instruction.CPUID",
            IO => "Instruction.IO",
            RDMSR => "Instruction.RDMSR",
            WRMSR => "Instruction.WRMSR",
            MMIO => "#VE.RequestMMIO",
            MAP_GPA => "MapGPA",
            REPORT_FATAL_ERROR => "ReportFatalError",
            _ => "unknown sub-function",
        }
    }
}

/// Attempts of a TDCALL that returns `OPERAND_BUSY` before the busy status becomes an error.
pub const BUSY_ATTEMPTS: u32 = 64;

/// Consecutive MapGPA `RETRY` answers without progress before the call fails.
pub const MAP_GPA_STALLS: u32 = 3;

/// Why a TDX call failed. Every variant names the leaf (and sub-function) and the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TdxError {
    /// A TDCALL leaf returned a status this firmware treats as fatal.
    Tdcall {
        /// The leaf.
        leaf: u64,
        /// The completion status (RAX).
        status: u64,
    },
    /// A TDCALL leaf stayed `OPERAND_BUSY` for [`BUSY_ATTEMPTS`] attempts.
    Busy {
        /// The leaf.
        leaf: u64,
        /// The last status.
        status: u64,
        /// Attempts made.
        attempts: u32,
    },
    /// TDG.VP.VMCALL itself failed (RAX ≠ 0): the call was malformed.
    VmcallTdcall {
        /// The sub-function.
        sub_function: u64,
        /// The completion status (RAX).
        status: u64,
    },
    /// The VMM answered a TDVMCALL with an error status (R10).
    Vmcall {
        /// The sub-function.
        sub_function: u64,
        /// The TDVMCALL status (R10).
        status: u64,
    },
    /// The VMM answered against the GHCI (e.g. a MapGPA resume address outside the range).
    VmmProtocol {
        /// The sub-function.
        sub_function: u64,
        /// What was wrong.
        what: &'static str,
        /// The offending value.
        value: u64,
    },
    /// MapGPA made no progress for [`MAP_GPA_STALLS`] retries.
    MapGpaStalled {
        /// Where it stopped.
        gpa: u64,
    },
    /// An argument was refused before any call was made.
    InvalidArgument {
        /// The leaf (for TDVMCALL: [`leaf::VP_VMCALL`]).
        leaf: u64,
        /// What was wrong.
        what: &'static str,
        /// The offending value.
        value: u64,
    },
    /// TDG.VP.INFO reported a GPA width other than 48 or 52 (RCX as returned).
    UnsupportedGpaWidth(u64),
    /// ReportFatalError returned to the TD (a VMM is expected not to resume it); `status` is
    /// its R10.
    FatalReportReturned {
        /// The TDVMCALL status (R10), or the TDCALL status if that failed.
        status: u64,
    },
}

impl fmt::Display for TdxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Tdcall { leaf: l, status: s } => write!(
                f,
                "tdx: {} (leaf {l}) failed: status {s:#018x} ({})",
                leaf::name(l),
                status::name(s)
            ),
            Self::Busy {
                leaf: l,
                status: s,
                attempts,
            } => write!(
                f,
                "tdx: {} (leaf {l}) still busy after {attempts} attempts: status {s:#018x}",
                leaf::name(l)
            ),
            Self::VmcallTdcall {
                sub_function,
                status: s,
            } => write!(
                f,
                "tdx: TDG.VP.VMCALL<{}> ({sub_function:#x}) was refused by the TDX module: status {s:#018x} ({})",
                vmcall::name(sub_function),
                status::name(s)
            ),
            Self::Vmcall {
                sub_function,
                status: s,
            } => write!(
                f,
                "tdx: TDG.VP.VMCALL<{}> ({sub_function:#x}) failed: VMM status {s:#018x}",
                vmcall::name(sub_function)
            ),
            Self::VmmProtocol {
                sub_function,
                what,
                value,
            } => write!(
                f,
                "tdx: TDG.VP.VMCALL<{}>: the VMM {what} ({value:#x})",
                vmcall::name(sub_function)
            ),
            Self::MapGpaStalled { gpa } => write!(
                f,
                "tdx: TDG.VP.VMCALL<MapGPA> made no progress at {gpa:#x} after {MAP_GPA_STALLS} retries"
            ),
            Self::InvalidArgument { leaf: l, what, value } => {
                write!(f, "tdx: {}: {what} ({value:#x})", leaf::name(l))
            }
            Self::UnsupportedGpaWidth(rcx) => {
                write!(f, "tdx: TDG.VP.INFO reports GPA width {rcx:#x}; only 48 and 52 are supported")
            }
            Self::FatalReportReturned { status: s } => write!(
                f,
                "tdx: TDG.VP.VMCALL<ReportFatalError> returned to the TD (status {s:#x})"
            ),
        }
    }
}

/// The guest-physical address width of the TD (TDG.VP.INFO RCX).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpaWidth {
    /// 48 bits: the shared bit is bit 47.
    W48,
    /// 52 bits: the shared bit is bit 51.
    W52,
}

impl GpaWidth {
    /// The width in bits.
    pub const fn bits(self) -> u32 {
        match self {
            Self::W48 => 48,
            Self::W52 => 52,
        }
    }

    /// The shared bit, `1 << (width - 1)` (§5).
    pub const fn shared_bit(self) -> u64 {
        1 << (self.bits() - 1)
    }
}

/// TD attributes (TDG.VP.INFO RDX).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TdAttributes(pub u64);

impl TdAttributes {
    /// Bit 0: the TD is a debug TD (its state is visible to the host).
    pub const fn debug(self) -> bool {
        self.0 & 1 != 0
    }

    /// Bit 28: EPT violations on pending private pages do not become #VE.
    pub const fn sept_ve_disable(self) -> bool {
        self.0 & (1 << 28) != 0
    }
}

/// What TDG.VP.INFO reports (§2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VpInfo {
    /// The GPA width.
    pub gpa_width: GpaWidth,
    /// The TD attributes.
    pub attributes: TdAttributes,
    /// vCPUs initialised by the VMM (R8 bits 31:0).
    pub num_vcpus: u32,
    /// The most vCPUs the TD may have (R8 bits 63:32).
    pub max_vcpus: u32,
    /// This vCPU's index, 0..num_vcpus in the VMM's initialisation order (R9).
    pub vcpu_index: u32,
    /// Whether TDG.SYS.RD is available (R10 bit 0).
    pub sys_rd_available: bool,
}

/// A SHA-384 digest in a 64-byte aligned buffer, as TDG.MR.RTMR.EXTEND requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct Digest48Aligned(pub [u8; 48]);

/// The 64 bytes of REPORTDATA for TDG.MR.REPORT, 64-byte aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct ReportData(pub [u8; 64]);

/// The 1024-byte TDREPORT_STRUCT TDG.MR.REPORT writes, 1024-byte aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, align(1024))]
pub struct TdReport(pub [u8; 1024]);

impl Default for TdReport {
    fn default() -> Self {
        TdReport([0; 1024])
    }
}

/// What TDG.VP.VEINFO.GET reports about the pending #VE (§2.5).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VeInfo {
    /// The exit reason (RCX bits 31:0).
    pub exit_reason: u32,
    /// The exit qualification (RDX).
    pub exit_qualification: u64,
    /// The guest linear address (R8; EPT violations only).
    pub guest_linear_address: u64,
    /// The guest physical address (R9; EPT violations only).
    pub guest_physical_address: u64,
    /// The instruction length (R10 bits 31:0; not defined for EPT violations).
    pub instruction_length: u32,
    /// The instruction information (R10 bits 63:32).
    pub instruction_info: u32,
}

/// The page size of a TDG.MEM.PAGE.ACCEPT. Module 1.5 accepts 4 KiB and 2 MiB only (level 2,
/// 1 GiB, gives `OPERAND_INVALID`; §2.4), so 1 GiB is not offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageLevel {
    /// 4 KiB (level 0).
    Size4K,
    /// 2 MiB (level 1).
    Size2M,
}

impl PageLevel {
    /// The level number in RCX bits 2:0.
    pub const fn level(self) -> u64 {
        match self {
            Self::Size4K => 0,
            Self::Size2M => 1,
        }
    }

    /// The page size in bytes.
    pub const fn size(self) -> u64 {
        match self {
            Self::Size4K => 0x1000,
            Self::Size2M => 0x20_0000,
        }
    }
}

/// The non-error outcomes of TDG.MEM.PAGE.ACCEPT.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptOutcome {
    /// The page was accepted (and zeroed by the module).
    Accepted,
    /// The page was already accepted (not zeroed again); `status` is the warning, whose low bits
    /// carry the level it is mapped at.
    AlreadyAccepted {
        /// The status.
        status: u64,
    },
    /// A 2 MiB accept of a range the VMM mapped with 4 KiB entries: accept it as 512 × 4 KiB.
    SizeMismatch {
        /// The status.
        status: u64,
    },
}

/// The size of a port access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoSize {
    /// 1 byte.
    Byte,
    /// 2 bytes.
    Word,
    /// 4 bytes.
    Dword,
}

impl IoSize {
    /// Bytes.
    pub const fn bytes(self) -> u64 {
        match self {
            Self::Byte => 1,
            Self::Word => 2,
            Self::Dword => 4,
        }
    }

    const fn mask(self) -> u64 {
        match self {
            Self::Byte => 0xFF,
            Self::Word => 0xFFFF,
            Self::Dword => 0xFFFF_FFFF,
        }
    }
}

/// The size of an MMIO access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmioSize {
    /// 1 byte.
    Byte,
    /// 2 bytes.
    Word,
    /// 4 bytes.
    Dword,
    /// 8 bytes.
    Qword,
}

impl MmioSize {
    /// Bytes.
    pub const fn bytes(self) -> u64 {
        match self {
            Self::Byte => 1,
            Self::Word => 2,
            Self::Dword => 4,
            Self::Qword => 8,
        }
    }

    const fn mask(self) -> u64 {
        match self {
            Self::Byte => 0xFF,
            Self::Word => 0xFFFF,
            Self::Dword => 0xFFFF_FFFF,
            Self::Qword => u64::MAX,
        }
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

/// The low 32 bits.
const fn low32(v: u64) -> u32 {
    (v & 0xFFFF_FFFF) as u32
}

/// The high 32 bits.
const fn high32(v: u64) -> u32 {
    (v >> 32) as u32
}

/// The GPA of a buffer: its address, since the firmware's memory is identity-mapped. The
/// pointer's provenance is exposed, so the instruction may read or write the buffer.
fn gpa_of<T>(buffer: *const T) -> u64 {
    // usize is 64 bits on x86_64, the only target of this code.
    buffer.expose_provenance() as u64
}

/// Runs a TDCALL leaf, retrying `OPERAND_BUSY` up to [`BUSY_ATTEMPTS`] times from the same
/// inputs. Returns the first non-busy status with the registers it came with.
fn tdcall_retry_busy<T: Tdcall + ?Sized>(
    t: &T,
    input: &TdcallArgs,
) -> Result<(u64, TdcallArgs), TdxError> {
    let mut attempts: u32 = 0;
    loop {
        let mut regs = *input;
        let s = t.tdcall(&mut regs);
        attempts = attempts.saturating_add(1);
        if !status::is_busy(s) {
            return Ok((s, regs));
        }
        if attempts >= BUSY_ATTEMPTS {
            return Err(TdxError::Busy {
                leaf: input.rax,
                status: s,
                attempts,
            });
        }
        core::hint::spin_loop();
    }
}

/// TDG.VP.INFO: the TD's GPA width, attributes and vCPU counts, and this vCPU's index. Any
/// non-zero status is an error; a GPA width other than 48 or 52 is refused (the shared bit
/// depends on it).
pub fn vp_info<T: Tdcall + ?Sized>(t: &T) -> Result<VpInfo, TdxError> {
    let mut r = TdcallArgs {
        rax: leaf::VP_INFO,
        ..TdcallArgs::default()
    };
    let s = t.tdcall(&mut r);
    if s != status::SUCCESS {
        return Err(TdxError::Tdcall {
            leaf: leaf::VP_INFO,
            status: s,
        });
    }
    // Linux and td-shim mask bits 5:0 (§2.2).
    let gpa_width = match r.rcx & 0x3F {
        48 => GpaWidth::W48,
        52 => GpaWidth::W52,
        _ => return Err(TdxError::UnsupportedGpaWidth(r.rcx)),
    };
    Ok(VpInfo {
        gpa_width,
        attributes: TdAttributes(r.rdx),
        num_vcpus: low32(r.r8),
        max_vcpus: high32(r.r8),
        vcpu_index: low32(r.r9),
        sys_rd_available: r.r10 & 1 != 0,
    })
}

/// TDG.MR.RTMR.EXTEND: RTMR[`index`] = SHA384(RTMR[`index`] ‖ `digest`). `index` must be 0..=3
/// (refused before the call otherwise). `OPERAND_BUSY` (RTMR lock) is retried; any other
/// non-zero status is an error and leaves the register unchanged.
pub fn rtmr_extend<T: Tdcall + ?Sized>(
    t: &T,
    index: usize,
    digest: &Digest48Aligned,
) -> Result<(), TdxError> {
    let index = match u64::try_from(index) {
        Ok(i) if i <= 3 => i,
        _ => {
            return Err(TdxError::InvalidArgument {
                leaf: leaf::MR_RTMR_EXTEND,
                what: "RTMR index is not 0..=3",
                value: u64::try_from(index).unwrap_or(u64::MAX),
            })
        }
    };
    let input = TdcallArgs {
        rax: leaf::MR_RTMR_EXTEND,
        rcx: gpa_of(digest),
        rdx: index,
        ..TdcallArgs::default()
    };
    match tdcall_retry_busy(t, &input)? {
        (status::SUCCESS, _) => Ok(()),
        (s, _) => Err(TdxError::Tdcall {
            leaf: leaf::MR_RTMR_EXTEND,
            status: s,
        }),
    }
}

/// TDG.MEM.PAGE.ACCEPT of the page at `gpa` (aligned to `level`, below 2^52; refused before the
/// call otherwise). `OPERAND_BUSY` is retried. Success, already-accepted and (for the caller to
/// split a 2 MiB page) size-mismatch are outcomes; any other status is an error.
pub fn mem_page_accept<T: Tdcall + ?Sized>(
    t: &T,
    gpa: u64,
    level: PageLevel,
) -> Result<AcceptOutcome, TdxError> {
    if !gpa.is_multiple_of(level.size()) || gpa >> 52 != 0 {
        return Err(TdxError::InvalidArgument {
            leaf: leaf::MEM_PAGE_ACCEPT,
            what: "GPA is not aligned to the page size or not below 2^52",
            value: gpa,
        });
    }
    let input = TdcallArgs {
        rax: leaf::MEM_PAGE_ACCEPT,
        rcx: gpa | level.level(),
        ..TdcallArgs::default()
    };
    let (s, _) = tdcall_retry_busy(t, &input)?;
    match status::class(s) {
        status::SUCCESS if s == status::SUCCESS => Ok(AcceptOutcome::Accepted),
        status::PAGE_ALREADY_ACCEPTED => Ok(AcceptOutcome::AlreadyAccepted { status: s }),
        status::PAGE_SIZE_MISMATCH => Ok(AcceptOutcome::SizeMismatch { status: s }),
        _ => Err(TdxError::Tdcall {
            leaf: leaf::MEM_PAGE_ACCEPT,
            status: s,
        }),
    }
}

/// TDG.VP.VEINFO.GET: the information of the pending #VE, which the call also consumes. Call it
/// first in the #VE handler: a second #VE before it becomes a #DF (§4). `NO_VALID_VE_INFO` and
/// every other non-zero status are errors.
pub fn vp_veinfo_get<T: Tdcall + ?Sized>(t: &T) -> Result<VeInfo, TdxError> {
    let mut r = TdcallArgs {
        rax: leaf::VP_VEINFO_GET,
        ..TdcallArgs::default()
    };
    let s = t.tdcall(&mut r);
    if s != status::SUCCESS {
        return Err(TdxError::Tdcall {
            leaf: leaf::VP_VEINFO_GET,
            status: s,
        });
    }
    Ok(VeInfo {
        exit_reason: low32(r.rcx),
        exit_qualification: r.rdx,
        guest_linear_address: r.r8,
        guest_physical_address: r.r9,
        instruction_length: low32(r.r10),
        instruction_info: high32(r.r10),
    })
}

/// TDG.MR.REPORT: the module writes the TDREPORT_STRUCT for `data` into `report` (subtype 0).
/// `OPERAND_BUSY` (RTMR lock) is retried; any other non-zero status is an error.
pub fn mr_report<T: Tdcall + ?Sized>(
    t: &T,
    report: &mut TdReport,
    data: &ReportData,
) -> Result<(), TdxError> {
    let input = TdcallArgs {
        rax: leaf::MR_REPORT,
        rcx: gpa_of(core::ptr::from_mut(report).cast_const()),
        rdx: gpa_of(data),
        r8: 0,
        ..TdcallArgs::default()
    };
    match tdcall_retry_busy(t, &input)? {
        (status::SUCCESS, _) => Ok(()),
        (s, _) => Err(TdxError::Tdcall {
            leaf: leaf::MR_REPORT,
            status: s,
        }),
    }
}

/// One standard TDVMCALL exposing R10–R15 only, with unused inputs zero. Returns the registers
/// when both the TDCALL and the VMM report success; `RETRY` and every other status are errors.
fn tdvmcall<T: Tdcall + ?Sized>(
    t: &T,
    sub_function: u64,
    r12: u64,
    r13: u64,
    r14: u64,
    r15: u64,
) -> Result<TdcallArgs, TdxError> {
    let (r10, regs) = tdvmcall_status(t, sub_function, r12, r13, r14, r15)?;
    if r10 != vmcall::SUCCESS {
        return Err(TdxError::Vmcall {
            sub_function,
            status: r10,
        });
    }
    Ok(regs)
}

/// Like [`tdvmcall`], but hands back the VMM's status (R10) with the registers.
fn tdvmcall_status<T: Tdcall + ?Sized>(
    t: &T,
    sub_function: u64,
    r12: u64,
    r13: u64,
    r14: u64,
    r15: u64,
) -> Result<(u64, TdcallArgs), TdxError> {
    let mut r = TdcallArgs {
        rax: leaf::VP_VMCALL,
        rcx: vmcall::EXPOSE_R10_R15,
        r10: 0,
        r11: sub_function,
        r12,
        r13,
        r14,
        r15,
        ..TdcallArgs::default()
    };
    let s = t.tdcall(&mut r);
    if s != status::SUCCESS {
        return Err(TdxError::VmcallTdcall {
            sub_function,
            status: s,
        });
    }
    Ok((r.r10, r))
}

/// TDVMCALL<Instruction.IO> read of `size` bytes from `port`. The VMM's value is cut to `size`
/// (its upper bits are untrusted and dropped).
pub fn io_read<T: Tdcall + ?Sized>(t: &T, port: u16, size: IoSize) -> Result<u32, TdxError> {
    let r = tdvmcall(t, vmcall::IO, size.bytes(), 0, u64::from(port), 0)?;
    Ok(low32(r.r11 & size.mask()))
}

/// TDVMCALL<Instruction.IO> write of the low `size` bytes of `value` to `port` (higher bits are
/// not sent).
pub fn io_write<T: Tdcall + ?Sized>(
    t: &T,
    port: u16,
    size: IoSize,
    value: u32,
) -> Result<(), TdxError> {
    tdvmcall(
        t,
        vmcall::IO,
        size.bytes(),
        1,
        u64::from(port),
        u64::from(value) & size.mask(),
    )
    .map(|_| ())
}

/// Refuses an MMIO GPA that is not naturally aligned to the access (which also keeps the
/// access within one page, as KVM requires).
fn check_mmio(gpa: u64, size: MmioSize) -> Result<(), TdxError> {
    if !gpa.is_multiple_of(size.bytes()) {
        return Err(TdxError::InvalidArgument {
            leaf: leaf::VP_VMCALL,
            what: "MMIO address is not aligned to the access size",
            value: gpa,
        });
    }
    Ok(())
}

/// TDVMCALL<#VE.RequestMMIO> read of `size` bytes at `gpa`, a **shared** GPA (shared bit set;
/// the VMM refuses private ones) aligned to `size`. The value is cut to `size`.
pub fn mmio_read<T: Tdcall + ?Sized>(t: &T, gpa: u64, size: MmioSize) -> Result<u64, TdxError> {
    check_mmio(gpa, size)?;
    let r = tdvmcall(t, vmcall::MMIO, size.bytes(), 0, gpa, 0)?;
    Ok(r.r11 & size.mask())
}

/// TDVMCALL<#VE.RequestMMIO> write of the low `size` bytes of `value` at `gpa`, a shared GPA
/// aligned to `size`.
pub fn mmio_write<T: Tdcall + ?Sized>(
    t: &T,
    gpa: u64,
    size: MmioSize,
    value: u64,
) -> Result<(), TdxError> {
    check_mmio(gpa, size)?;
    tdvmcall(t, vmcall::MMIO, size.bytes(), 1, gpa, value & size.mask()).map(|_| ())
}

/// TDVMCALL<Instruction.CPUID> for `leaf`/`subleaf`. The answer comes from the VMM and is
/// untrusted (§9.18); each register is cut to 32 bits.
pub fn cpuid<T: Tdcall + ?Sized>(t: &T, leaf: u32, subleaf: u32) -> Result<CpuidResult, TdxError> {
    let r = tdvmcall(t, vmcall::CPUID, u64::from(leaf), u64::from(subleaf), 0, 0)?;
    Ok(CpuidResult {
        eax: low32(r.r12),
        ebx: low32(r.r13),
        ecx: low32(r.r14),
        edx: low32(r.r15),
    })
}

/// TDVMCALL<Instruction.RDMSR> of MSR `index` (untrusted value from the VMM).
pub fn rdmsr<T: Tdcall + ?Sized>(t: &T, index: u32) -> Result<u64, TdxError> {
    tdvmcall(t, vmcall::RDMSR, u64::from(index), 0, 0, 0).map(|r| r.r11)
}

/// TDVMCALL<Instruction.WRMSR> of `value` to MSR `index`.
pub fn wrmsr<T: Tdcall + ?Sized>(t: &T, index: u32, value: u64) -> Result<(), TdxError> {
    tdvmcall(t, vmcall::WRMSR, u64::from(index), value, 0, 0).map(|_| ())
}

/// TDVMCALL<MapGPA>: asks the VMM to map `[gpa, gpa + len)` shared (`shared`) or private.
/// `gpa` is the address without the shared bit; `gpa` and `len` must be 4 KiB aligned, `len`
/// non-zero and the range below the shared bit of `width` (refused before any call otherwise).
///
/// On `RETRY` the VMM returns in R11 the GPA (in the same shared/private form) to resume from;
/// it must lie in `[current start, end)` and be 4 KiB aligned, else the answer is a protocol
/// error. A retry at the current start counts as no progress; [`MAP_GPA_STALLS`] of those in a
/// row fail. Every retry with progress advances by at least 4 KiB, so the loop is bounded.
///
/// Converting private to shared only tells the VMM: the page tables (shared bit) and TLB flush
/// are the caller's. After converting back to private, the pages must be accepted again (§5).
pub fn map_gpa<T: Tdcall + ?Sized>(
    t: &T,
    width: GpaWidth,
    gpa: u64,
    len: u64,
    shared: bool,
) -> Result<(), TdxError> {
    let invalid = |what, value| TdxError::InvalidArgument {
        leaf: leaf::VP_VMCALL,
        what,
        value,
    };
    if !gpa.is_multiple_of(0x1000) || !len.is_multiple_of(0x1000) || len == 0 {
        return Err(invalid("MapGPA range is empty or not 4 KiB aligned", gpa));
    }
    let end = gpa
        .checked_add(len)
        .ok_or(invalid("MapGPA range wraps", gpa))?;
    if end > width.shared_bit() {
        return Err(invalid("MapGPA range reaches the shared bit", end));
    }
    let bit = if shared { width.shared_bit() } else { 0 };
    let mut start = gpa | bit;
    let end = end | bit;
    let mut stalls: u32 = 0;
    loop {
        let size = end
            .checked_sub(start)
            .ok_or(invalid("MapGPA range", start))?;
        let (r10, r) = tdvmcall_status(t, vmcall::MAP_GPA, start, size, 0, 0)?;
        match r10 {
            vmcall::SUCCESS => return Ok(()),
            vmcall::RETRY => {
                let next = r.r11;
                if next < start || next >= end || !next.is_multiple_of(0x1000) {
                    return Err(TdxError::VmmProtocol {
                        sub_function: vmcall::MAP_GPA,
                        what: "returned a resume address outside the remaining range or unaligned",
                        value: next,
                    });
                }
                if next == start {
                    stalls = stalls.saturating_add(1);
                    if stalls >= MAP_GPA_STALLS {
                        return Err(TdxError::MapGpaStalled { gpa: start });
                    }
                } else {
                    stalls = 0;
                    start = next;
                }
            }
            s => {
                return Err(TdxError::Vmcall {
                    sub_function: vmcall::MAP_GPA,
                    status: s,
                })
            }
        }
    }
}

/// Bytes of message ReportFatalError carries here: R14 and R15, the first two message registers
/// of the GHCI order (R14, R15, RBX, RDI, RSI, R8, R9, RDX). The others are not exposed: RBX,
/// RDI and RSI cannot be carried by [`TdcallArgs`], and QEMU packs the exposed registers in
/// order, so exposing R8/R9/RDX without RBX/RDI/RSI would be read differently by VMMs that
/// use fixed positions.
pub const FATAL_MESSAGE_BYTES: usize = 16;

/// TDVMCALL<ReportFatalError>: tells the VMM the TD failed. `code` goes to R12 bits 31:16
/// (bits 15:0 stay zero: QEMU refuses the report otherwise, §3.3); the first
/// [`FATAL_MESSAGE_BYTES`] bytes of `message` (ASCII) go to R14/R15, little-endian; `gpa`, if
/// any, a shared 4 KiB page with more information, goes to R13 with R12 bit 63 set.
///
/// A VMM does not resume the TD after this; if it does, the returned error says how, and the
/// caller must stop the vCPU itself.
pub fn report_fatal_error<T: Tdcall + ?Sized>(
    t: &T,
    code: u16,
    message: &[u8],
    gpa: Option<u64>,
) -> TdxError {
    let mut words = [0u64; 2];
    for (i, b) in message.iter().take(FATAL_MESSAGE_BYTES).enumerate() {
        if let Some(w) = words.get_mut(i / 8) {
            *w |= u64::from(*b) << ((i % 8) * 8);
        }
    }
    let mut r12 = u64::from(code) << 16;
    let mut r13 = 0;
    if let Some(g) = gpa {
        r12 |= 1 << 63;
        r13 = g;
    }
    match tdvmcall_status(t, vmcall::REPORT_FATAL_ERROR, r12, r13, words[0], words[1]) {
        Ok((r10, _)) => TdxError::FatalReportReturned { status: r10 },
        Err(TdxError::VmcallTdcall { status: s, .. }) => {
            TdxError::FatalReportReturned { status: s }
        }
        Err(e) => e,
    }
}

/// Port I/O through TDVMCALL<Instruction.IO>, so the UART and fw_cfg drivers run unchanged in a
/// TD. [`PortIo`] cannot return errors: a failing call goes to the `fatal` hook given at
/// construction, which must not return (in the firmware: the fatal path, e.g.
/// `|e| td_shim::fatal::fatal(format_args!("{e}"))`). The hook must not itself use this port
/// I/O in a way that can fail recursively forever; the firmware's fatal path prints once and
/// then reports through the platform.
pub struct TdxPortIo<T> {
    tdcall: T,
    fatal: fn(TdxError) -> !,
}

impl<T: Tdcall> TdxPortIo<T> {
    /// Port I/O over `tdcall`, failing into `fatal`.
    pub const fn new(tdcall: T, fatal: fn(TdxError) -> !) -> Self {
        TdxPortIo { tdcall, fatal }
    }

    fn read(&self, port: u16, size: IoSize) -> u32 {
        match io_read(&self.tdcall, port, size) {
            Ok(v) => v,
            Err(e) => (self.fatal)(e),
        }
    }

    fn write(&self, port: u16, size: IoSize, value: u32) {
        if let Err(e) = io_write(&self.tdcall, port, size, value) {
            (self.fatal)(e)
        }
    }
}

impl<T: Tdcall> PortIo for TdxPortIo<T> {
    fn inb(&self, port: u16) -> u8 {
        (self.read(port, IoSize::Byte) & 0xFF) as u8
    }
    fn outb(&self, port: u16, value: u8) {
        self.write(port, IoSize::Byte, u32::from(value))
    }
    fn outw(&self, port: u16, value: u16) {
        self.write(port, IoSize::Word, u32::from(value))
    }
    fn outl(&self, port: u16, value: u32) {
        self.write(port, IoSize::Dword, value)
    }
    fn inl(&self, port: u16) -> u32 {
        self.read(port, IoSize::Dword)
    }
}
