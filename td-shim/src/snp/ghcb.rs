//! The GHCB page (protocol version 2) and the NAE events the firmware sends through it.
//!
//! # Layout
//!
//! Offsets from Linux `struct ghcb_save_area` / `struct ghcb` (`arch/x86/include/asm/svm.h`,
//! which checks them at build time) and the research notes §2.4. Register fields sit at their
//! VMSA offsets; the **valid bitmap is at 0x3F0** (16 bytes), and bit *n* says the quadword at
//! offset 8·*n* holds a value (Linux `GHCB_BITMAP_IDX`). The 2032-byte shared buffer is at
//! 0x800, the protocol version (u16) at 0xFFA and the usage (u32, 0 = standard) at 0xFFC; the
//! ten bytes at 0xFF0 are reserved.
//!
//! # One call ([`Session::call`], as Linux `sev_es_ghcb_hv_call`)
//!
//! 1. The caller starts from [`Ghcb::invalidate`] (SW_EXITCODE and the valid bitmap cleared,
//!    Linux `vc_ghcb_invalidate`) and sets its inputs with [`Ghcb::set`], which also sets their
//!    valid bits.
//! 2. Protocol version 2, usage 0, SW_EXITCODE, SW_EXITINFO1, SW_EXITINFO2 are set.
//! 3. The GHCB MSR is written with the GHCB's GPA (every call: an MSR-protocol request in
//!    between may have changed it) and VMGEXIT runs ([`SevCpu::vmgexit`] with the private copy:
//!    the shared page is only touched by the instruction layer).
//! 4. SW_EXITINFO1 bits 31:0: 0 is success. 1 means the hypervisor asks to inject an exception
//!    described by SW_EXITINFO2; accepted as [`GhcbError::Exception`] only if it is a valid
//!    #GP or #UD of type "exception" (Linux `verify_exception_info`), which the firmware treats
//!    as fatal anyway. Anything else (including 2, a GHCB error code in SW_EXITINFO2) is
//!    [`GhcbError::Hypervisor`].
//! 5. Each event's outputs must have their valid bits set by the hypervisor
//!    ([`GhcbError::MissingOutput`] otherwise), as Linux checks for CPUID, IOIO IN, RDTSC.
//!
//! # Events
//!
//! | Event | SW_EXITCODE | Inputs | SW_EXITINFO1 / 2 | Outputs |
//! |---|---|---|---|---|
//! | CPUID | 0x72 | RAX leaf, RCX subleaf, XCR0 (1 if OSXSAVE is off), XSS if needed | 0 / 0 | RAX, RBX, RCX, RDX |
//! | IOIO | 0x7B | RAX (the value for OUT, 0 for IN) | [`ioio`] encoding / 0 | RAX for IN |
//! | MSR | 0x7C | RCX; RAX, RDX for a write | 0 read, 1 write / 0 | RAX, RDX for a read |
//! | RDTSC, RDTSCP | 0x6E, 0x87 | — | 0 / 0 | RAX, RDX (+ RCX) |
//! | MMIO read, write | 0x8000_0001, 0x8000_0002 | SW_SCRATCH = GHCB GPA + 0x800; the data in the shared buffer for a write | GPA / size | the data in the shared buffer for a read |
//! | page state change | 0x8000_0010 | see [`super::psc`] | 0 / 0 | the updated buffer |

use super::cpu::{CpuidResult, SevCpu};
use super::msr_protocol::GHCB_PROTOCOL_VERSION;
use core::fmt;

/// Bytes of the GHCB page.
pub const GHCB_SIZE: usize = 4096;

/// Field offsets in the GHCB page.
pub mod offset {
    /// XSS.
    pub const XSS: usize = 0x140;
    /// RAX.
    pub const RAX: usize = 0x1F8;
    /// RCX.
    pub const RCX: usize = 0x308;
    /// RDX.
    pub const RDX: usize = 0x310;
    /// RBX.
    pub const RBX: usize = 0x318;
    /// SW_EXITCODE.
    pub const SW_EXIT_CODE: usize = 0x390;
    /// SW_EXITINFO1.
    pub const SW_EXIT_INFO_1: usize = 0x398;
    /// SW_EXITINFO2.
    pub const SW_EXIT_INFO_2: usize = 0x3A0;
    /// SW_SCRATCH.
    pub const SW_SCRATCH: usize = 0x3A8;
    /// XCR0.
    pub const XCR0: usize = 0x3E8;
    /// The valid bitmap (16 bytes).
    pub const VALID_BITMAP: usize = 0x3F0;
    /// The shared buffer.
    pub const SHARED_BUFFER: usize = 0x800;
    /// The protocol version (u16).
    pub const PROTOCOL_VERSION: usize = 0xFFA;
    /// The GHCB usage (u32).
    pub const USAGE: usize = 0xFFC;
}

/// Bytes of the shared buffer (0x800..0xFF0).
pub const SHARED_BUFFER_SIZE: usize = 2032;

/// GHCB usage 0: the standard layout.
pub const USAGE_STANDARD: u32 = 0;

/// SW_EXITCODE values: the SVM exit codes of intercepted instructions (also the #VC error code)
/// and the software-defined VMGEXIT events (Linux `uapi/asm/svm.h`).
pub mod exit_code {
    /// RDTSC.
    pub const RDTSC: u64 = 0x6E;
    /// CPUID.
    pub const CPUID: u64 = 0x72;
    /// HLT.
    pub const HLT: u64 = 0x78;
    /// IN/OUT (and the string forms).
    pub const IOIO: u64 = 0x7B;
    /// RDMSR/WRMSR.
    pub const MSR: u64 = 0x7C;
    /// VMMCALL.
    pub const VMMCALL: u64 = 0x81;
    /// RDTSCP.
    pub const RDTSCP: u64 = 0x87;
    /// WBINVD.
    pub const WBINVD: u64 = 0x89;
    /// Nested page fault: under SEV-ES/SNP, an access to a page the hypervisor marked as MMIO.
    pub const NPF: u64 = 0x400;
    /// MMIO read (software-defined).
    pub const MMIO_READ: u64 = 0x8000_0001;
    /// MMIO write (software-defined).
    pub const MMIO_WRITE: u64 = 0x8000_0002;
    /// SNP page state change (software-defined).
    pub const PSC: u64 = 0x8000_0010;

    /// A name for messages.
    pub fn name(code: u64) -> &'static str {
        match code {
            RDTSC => "RDTSC",
            CPUID => "CPUID",
            HLT => "HLT",
            IOIO => "IOIO",
            MSR => "MSR",
            VMMCALL => "VMMCALL",
            RDTSCP => "RDTSCP",
            WBINVD => "WBINVD",
            NPF => "NPF (MMIO)",
            MMIO_READ => "MMIO read",
            MMIO_WRITE => "MMIO write",
            PSC => "page state change",
            0x00..=0x1F => "control-register access",
            0x20..=0x3F => "debug-register access",
            0x40..=0x5F => "exception intercept",
            _ => "unknown exit code",
        }
    }
}

/// SW_EXITINFO1 of an IOIO event (the SVM IOIO intercept information; Linux
/// `coco/sev/vc-shared.c`).
pub mod ioio {
    /// IN (clear: OUT).
    pub const TYPE_IN: u64 = 1;
    /// String (INS/OUTS).
    pub const TYPE_STR: u64 = 1 << 2;
    /// REP prefix.
    pub const REP: u64 = 1 << 3;
    /// 8-bit data.
    pub const DATA_8: u64 = 1 << 4;
    /// 16-bit data.
    pub const DATA_16: u64 = 1 << 5;
    /// 32-bit data.
    pub const DATA_32: u64 = 1 << 6;
    /// 16-bit address size.
    pub const ADDR_16: u64 = 1 << 7;
    /// 32-bit address size.
    pub const ADDR_32: u64 = 1 << 8;
    /// 64-bit address size.
    pub const ADDR_64: u64 = 1 << 9;
    /// The port is in bits 31:16.
    pub const PORT_SHIFT: u32 = 16;
}

/// SW_EXITINFO2 when SW_EXITINFO1 is 1: an event to inject (SVM EVENTINJ format).
pub mod event_inj {
    /// Vector, bits 7:0.
    pub const VECTOR_MASK: u64 = 0xFF;
    /// Type, bits 10:8.
    pub const TYPE_MASK: u64 = 7 << 8;
    /// Type 3: exception.
    pub const TYPE_EXCEPTION: u64 = 3 << 8;
    /// An error code is pushed (in bits 63:32).
    pub const VALID_ERR: u64 = 1 << 11;
    /// The event is valid.
    pub const VALID: u64 = 1 << 31;
    /// #UD.
    pub const UD: u8 = 6;
    /// #GP.
    pub const GP: u8 = 13;
}

/// GHCB error codes in SW_EXITINFO2 when SW_EXITINFO1 is 2 (Linux `sev-common.h`).
pub fn ghcb_error_name(code: u64) -> &'static str {
    match code {
        1 => "GHCB not registered",
        2 => "invalid GHCB usage",
        3 => "invalid scratch area",
        4 => "missing input",
        5 => "invalid input",
        6 => "invalid event",
        _ => "unknown GHCB error",
    }
}

/// A quadword field of the save area that has a valid bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// RAX.
    Rax,
    /// RBX.
    Rbx,
    /// RCX.
    Rcx,
    /// RDX.
    Rdx,
    /// XSS.
    Xss,
    /// XCR0.
    Xcr0,
    /// SW_EXITCODE.
    SwExitCode,
    /// SW_EXITINFO1.
    SwExitInfo1,
    /// SW_EXITINFO2.
    SwExitInfo2,
    /// SW_SCRATCH.
    SwScratch,
}

impl Field {
    /// Its offset in the page.
    pub const fn offset(self) -> usize {
        match self {
            Self::Rax => offset::RAX,
            Self::Rbx => offset::RBX,
            Self::Rcx => offset::RCX,
            Self::Rdx => offset::RDX,
            Self::Xss => offset::XSS,
            Self::Xcr0 => offset::XCR0,
            Self::SwExitCode => offset::SW_EXIT_CODE,
            Self::SwExitInfo1 => offset::SW_EXIT_INFO_1,
            Self::SwExitInfo2 => offset::SW_EXIT_INFO_2,
            Self::SwScratch => offset::SW_SCRATCH,
        }
    }

    /// Its bit in the valid bitmap: the quadword index.
    pub const fn valid_bit(self) -> usize {
        self.offset() / 8
    }

    /// A name for messages.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Rax => "RAX",
            Self::Rbx => "RBX",
            Self::Rcx => "RCX",
            Self::Rdx => "RDX",
            Self::Xss => "XSS",
            Self::Xcr0 => "XCR0",
            Self::SwExitCode => "SW_EXITCODE",
            Self::SwExitInfo1 => "SW_EXITINFO1",
            Self::SwExitInfo2 => "SW_EXITINFO2",
            Self::SwScratch => "SW_SCRATCH",
        }
    }
}

/// A GHCB page's contents: the firmware's private copy, which the instruction layer exchanges
/// with the shared page around VMGEXIT.
#[derive(Clone, PartialEq, Eq)]
#[repr(C, align(4096))]
pub struct Ghcb([u8; GHCB_SIZE]);

impl Default for Ghcb {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Ghcb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ghcb")
            .field("sw_exit_code", &self.get(Field::SwExitCode))
            .field("valid_bitmap", &self.valid_bitmap())
            .finish_non_exhaustive()
    }
}

impl Ghcb {
    /// All zeros.
    pub const fn new() -> Self {
        Ghcb([0; GHCB_SIZE])
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8; GHCB_SIZE] {
        &self.0
    }

    /// The bytes, writable (the instruction layer copies the shared page back into them).
    pub fn as_bytes_mut(&mut self) -> &mut [u8; GHCB_SIZE] {
        &mut self.0
    }

    fn read_bytes<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut b = [0u8; N];
        if let Some(src) = at.checked_add(N).and_then(|end| self.0.get(at..end)) {
            b.copy_from_slice(src);
        }
        b
    }

    fn write_bytes(&mut self, at: usize, bytes: &[u8]) {
        if let Some(dst) = at
            .checked_add(bytes.len())
            .and_then(|end| self.0.get_mut(at..end))
        {
            dst.copy_from_slice(bytes);
        }
    }

    /// The quadword at `offset` (zero if it does not fit, which the constants never do).
    pub fn read_u64(&self, offset: usize) -> u64 {
        u64::from_le_bytes(self.read_bytes(offset))
    }

    /// Writes the quadword at `offset` without touching the valid bitmap.
    pub fn write_u64(&mut self, offset: usize, value: u64) {
        self.write_bytes(offset, &value.to_le_bytes());
    }

    /// The valid bitmap.
    pub fn valid_bitmap(&self) -> u128 {
        u128::from_le_bytes(self.read_bytes(offset::VALID_BITMAP))
    }

    fn set_valid_bitmap(&mut self, bitmap: u128) {
        self.write_bytes(offset::VALID_BITMAP, &bitmap.to_le_bytes());
    }

    /// Whether `field`'s valid bit is set.
    pub fn is_valid(&self, field: Field) -> bool {
        self.valid_bitmap() >> field.valid_bit() & 1 != 0
    }

    /// `field`'s value (whatever its valid bit).
    pub fn get(&self, field: Field) -> u64 {
        self.read_u64(field.offset())
    }

    /// Sets `field` and its valid bit.
    pub fn set(&mut self, field: Field, value: u64) {
        self.write_u64(field.offset(), value);
        self.set_valid_bitmap(self.valid_bitmap() | 1 << field.valid_bit());
    }

    /// Clears `field`'s valid bit (the value stays).
    pub fn clear_valid(&mut self, field: Field) {
        self.set_valid_bitmap(self.valid_bitmap() & !(1 << field.valid_bit()));
    }

    /// Starts a new event: SW_EXITCODE zero and every valid bit clear (Linux
    /// `vc_ghcb_invalidate`).
    pub fn invalidate(&mut self) {
        self.write_u64(offset::SW_EXIT_CODE, 0);
        self.set_valid_bitmap(0);
    }

    /// The protocol version field.
    pub fn protocol_version(&self) -> u16 {
        u16::from_le_bytes(self.read_bytes(offset::PROTOCOL_VERSION))
    }

    /// Sets the protocol version field.
    pub fn set_protocol_version(&mut self, v: u16) {
        self.write_bytes(offset::PROTOCOL_VERSION, &v.to_le_bytes());
    }

    /// The GHCB usage field.
    pub fn usage(&self) -> u32 {
        u32::from_le_bytes(self.read_bytes(offset::USAGE))
    }

    /// Sets the GHCB usage field.
    pub fn set_usage(&mut self, v: u32) {
        self.write_bytes(offset::USAGE, &v.to_le_bytes());
    }

    /// The shared buffer.
    pub fn shared_buffer(&self) -> &[u8] {
        self.0
            .get(offset::SHARED_BUFFER..offset::SHARED_BUFFER + SHARED_BUFFER_SIZE)
            .unwrap_or(&[])
    }

    /// The shared buffer, writable.
    pub fn shared_buffer_mut(&mut self) -> &mut [u8] {
        self.0
            .get_mut(offset::SHARED_BUFFER..offset::SHARED_BUFFER + SHARED_BUFFER_SIZE)
            .unwrap_or(&mut [])
    }
}

/// The width of a port or MMIO access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    /// 1 byte.
    W8,
    /// 2 bytes.
    W16,
    /// 4 bytes.
    W32,
    /// 8 bytes (MMIO only).
    W64,
}

impl Width {
    /// Bytes.
    pub const fn bytes(self) -> u64 {
        match self {
            Self::W8 => 1,
            Self::W16 => 2,
            Self::W32 => 4,
            Self::W64 => 8,
        }
    }

    /// The mask of the low `bytes()` bytes.
    pub const fn mask(self) -> u64 {
        match self {
            Self::W8 => 0xFF,
            Self::W16 => 0xFFFF,
            Self::W32 => 0xFFFF_FFFF,
            Self::W64 => u64::MAX,
        }
    }

    /// The width of `bytes` bytes.
    pub const fn of_bytes(bytes: u64) -> Option<Width> {
        match bytes {
            1 => Some(Self::W8),
            2 => Some(Self::W16),
            4 => Some(Self::W32),
            8 => Some(Self::W64),
            _ => None,
        }
    }
}

/// The address size of an IOIO event (bits 9:7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrSize {
    /// 16-bit.
    A16,
    /// 32-bit.
    A32,
    /// 64-bit (the default in long mode).
    A64,
}

/// SW_EXITINFO1 of a non-string IN or OUT of `width` (not 64 bits) at `port`.
pub fn ioio_exit_info(port: u16, width: Width, input: bool, addr: AddrSize) -> Option<u64> {
    let data = match width {
        Width::W8 => ioio::DATA_8,
        Width::W16 => ioio::DATA_16,
        Width::W32 => ioio::DATA_32,
        Width::W64 => return None,
    };
    let addr = match addr {
        AddrSize::A16 => ioio::ADDR_16,
        AddrSize::A32 => ioio::ADDR_32,
        AddrSize::A64 => ioio::ADDR_64,
    };
    let dir = if input { ioio::TYPE_IN } else { 0 };
    Some(u64::from(port) << ioio::PORT_SHIFT | addr | data | dir)
}

/// Why a GHCB event failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GhcbError {
    /// An argument was refused before any call was made.
    InvalidArgument {
        /// What was wrong.
        what: &'static str,
        /// The offending value.
        value: u64,
    },
    /// The hypervisor asks to inject #GP or #UD for the instruction (e.g. an MSR it does not
    /// emulate). The firmware does not emulate that either: fatal.
    Exception {
        /// The event.
        exit_code: u64,
        /// The vector.
        vector: u8,
        /// The error code, if one is pushed.
        error_code: Option<u32>,
    },
    /// The hypervisor reported an error (SW_EXITINFO1 not 0, or 1 without a sane exception).
    Hypervisor {
        /// The event.
        exit_code: u64,
        /// SW_EXITINFO1.
        exit_info_1: u64,
        /// SW_EXITINFO2.
        exit_info_2: u64,
    },
    /// The hypervisor did not mark an output as valid.
    MissingOutput {
        /// The event.
        exit_code: u64,
        /// The output.
        field: Field,
    },
}

impl fmt::Display for GhcbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::InvalidArgument { what, value } => write!(f, "snp: GHCB: {what} ({value:#x})"),
            Self::Exception {
                exit_code,
                vector,
                error_code,
            } => {
                write!(
                    f,
                    "snp: GHCB {} ({exit_code:#x}): the hypervisor asks to inject exception {vector}",
                    exit_code::name(exit_code)
                )?;
                if let Some(e) = error_code {
                    write!(f, " with error code {e:#x}")?;
                }
                Ok(())
            }
            Self::Hypervisor {
                exit_code,
                exit_info_1,
                exit_info_2,
            } => {
                write!(
                    f,
                    "snp: GHCB {} ({exit_code:#x}) failed: SW_EXITINFO1 {exit_info_1:#x}, SW_EXITINFO2 {exit_info_2:#x}",
                    exit_code::name(exit_code)
                )?;
                if exit_info_1 & 0xFFFF_FFFF == 2 {
                    write!(f, " ({})", ghcb_error_name(exit_info_2))?;
                }
                Ok(())
            }
            Self::MissingOutput { exit_code, field } => write!(
                f,
                "snp: GHCB {} ({exit_code:#x}): the hypervisor did not return {}",
                exit_code::name(exit_code),
                field.name()
            ),
        }
    }
}

/// The GHCB in use: the hardware, the private copy of the page and the page's GPA (registered
/// with [`super::msr_protocol::register_ghcb`], mapped shared by the caller).
pub struct Session<'a, C: SevCpu + ?Sized> {
    cpu: &'a C,
    ghcb: &'a mut Ghcb,
    gpa: u64,
}

impl<'a, C: SevCpu + ?Sized> Session<'a, C> {
    /// The GHCB at `gpa` (4 KiB aligned, below 2^52; refused otherwise).
    pub fn new(cpu: &'a C, ghcb: &'a mut Ghcb, gpa: u64) -> Result<Self, GhcbError> {
        if gpa & 0xFFF != 0 || gpa >> 52 != 0 {
            return Err(GhcbError::InvalidArgument {
                what: "GHCB GPA is not 4 KiB aligned or not below 2^52",
                value: gpa,
            });
        }
        Ok(Session { cpu, ghcb, gpa })
    }

    /// The GHCB's GPA.
    pub fn gpa(&self) -> u64 {
        self.gpa
    }

    /// The hardware.
    pub fn cpu(&self) -> &'a C {
        self.cpu
    }

    /// The private copy (as the last call left it).
    pub fn ghcb(&self) -> &Ghcb {
        self.ghcb
    }

    /// The private copy, writable: for events built outside this module (the PSC buffer).
    pub(crate) fn ghcb_mut(&mut self) -> &mut Ghcb {
        self.ghcb
    }

    /// The GPA of the shared buffer (SW_SCRATCH for MMIO and PSC).
    pub fn shared_buffer_gpa(&self) -> u64 {
        self.gpa | offset::SHARED_BUFFER as u64
    }

    /// Starts an event: [`Ghcb::invalidate`].
    pub fn begin(&mut self) -> &mut Ghcb {
        self.ghcb.invalidate();
        self.ghcb
    }

    /// Sends the event whose inputs were set since [`Session::begin`] and checks SW_EXITINFO1
    /// (see the module documentation).
    pub fn call(&mut self, exit_code: u64, info1: u64, info2: u64) -> Result<(), GhcbError> {
        let g = &mut *self.ghcb;
        g.set_protocol_version(GHCB_PROTOCOL_VERSION);
        g.set_usage(USAGE_STANDARD);
        g.set(Field::SwExitCode, exit_code);
        g.set(Field::SwExitInfo1, info1);
        g.set(Field::SwExitInfo2, info2);
        self.cpu.ghcb_msr_write(self.gpa);
        self.cpu.vmgexit(Some(g));
        let exit_info_1 = g.get(Field::SwExitInfo1);
        let exit_info_2 = g.get(Field::SwExitInfo2);
        match exit_info_1 & 0xFFFF_FFFF {
            0 => Ok(()),
            1 => {
                let vector = (exit_info_2 & event_inj::VECTOR_MASK) as u8;
                let sane = exit_info_2 & event_inj::VALID != 0
                    && (vector == event_inj::GP || vector == event_inj::UD)
                    && exit_info_2 & event_inj::TYPE_MASK == event_inj::TYPE_EXCEPTION;
                if sane {
                    Err(GhcbError::Exception {
                        exit_code,
                        vector,
                        error_code: (exit_info_2 & event_inj::VALID_ERR != 0)
                            .then_some((exit_info_2 >> 32) as u32),
                    })
                } else {
                    Err(GhcbError::Hypervisor {
                        exit_code,
                        exit_info_1,
                        exit_info_2,
                    })
                }
            }
            _ => Err(GhcbError::Hypervisor {
                exit_code,
                exit_info_1,
                exit_info_2,
            }),
        }
    }

    /// An output of the last event, which must be marked valid.
    pub fn output(&self, exit_code: u64, field: Field) -> Result<u64, GhcbError> {
        if !self.ghcb.is_valid(field) {
            return Err(GhcbError::MissingOutput { exit_code, field });
        }
        Ok(self.ghcb.get(field))
    }

    /// CPUID `leaf`/`subleaf` from the hypervisor (untrusted; see [`super::cpuid`]). `xcr0` is
    /// XCR0, or 1 if CR4.OSXSAVE is clear (XGETBV would #UD); `xss` is IA32_XSS where the
    /// caller needs leaf 0xD subleaf 1 sizes for it.
    pub fn cpuid(
        &mut self,
        leaf: u32,
        subleaf: u32,
        xcr0: u64,
        xss: Option<u64>,
    ) -> Result<CpuidResult, GhcbError> {
        let g = self.begin();
        g.set(Field::Rax, u64::from(leaf));
        g.set(Field::Rcx, u64::from(subleaf));
        g.set(Field::Xcr0, xcr0);
        if let Some(x) = xss {
            g.set(Field::Xss, x);
        }
        let e = exit_code::CPUID;
        self.call(e, 0, 0)?;
        Ok(CpuidResult {
            eax: self.output(e, Field::Rax)? as u32,
            ebx: self.output(e, Field::Rbx)? as u32,
            ecx: self.output(e, Field::Rcx)? as u32,
            edx: self.output(e, Field::Rdx)? as u32,
        })
    }

    /// An IOIO event with SW_EXITINFO1 `exit_info_1` (non-string: [`ioio_exit_info`]) and
    /// RAX `rax` (the value for OUT). Returns the hypervisor's RAX for IN (valid bit checked),
    /// or `rax` for OUT.
    pub fn ioio(&mut self, exit_info_1: u64, rax: u64) -> Result<u64, GhcbError> {
        if exit_info_1 & (ioio::TYPE_STR | ioio::REP) != 0 {
            return Err(GhcbError::InvalidArgument {
                what: "string or REP IOIO is not supported",
                value: exit_info_1,
            });
        }
        let input = exit_info_1 & ioio::TYPE_IN != 0;
        let g = self.begin();
        g.set(Field::Rax, if input { 0 } else { rax });
        let e = exit_code::IOIO;
        self.call(e, exit_info_1, 0)?;
        if input {
            self.output(e, Field::Rax)
        } else {
            Ok(rax)
        }
    }

    /// REP INSB: fills `dst` from `port`, up to [`SHARED_BUFFER_SIZE`] bytes per event through
    /// the shared buffer (SW_SCRATCH = its GPA, SW_EXITINFO2 = the count), as Linux's #VC
    /// handler does for string IN. Returns the number of events.
    pub fn io_read_string(&mut self, port: u16, dst: &mut [u8]) -> Result<u64, GhcbError> {
        let info = ioio_exit_info(port, Width::W8, true, AddrSize::A64).ok_or(
            GhcbError::InvalidArgument {
                what: "port",
                value: u64::from(port),
            },
        )? | ioio::TYPE_STR
            | ioio::REP;
        let scratch = self.shared_buffer_gpa();
        let mut events = 0u64;
        for chunk in dst.chunks_mut(SHARED_BUFFER_SIZE) {
            let g = self.begin();
            g.set(Field::SwScratch, scratch);
            self.call(exit_code::IOIO, info, chunk.len() as u64)?;
            let from =
                self.ghcb
                    .shared_buffer()
                    .get(..chunk.len())
                    .ok_or(GhcbError::InvalidArgument {
                        what: "string IN longer than the shared buffer",
                        value: chunk.len() as u64,
                    })?;
            chunk.copy_from_slice(from);
            events = events.saturating_add(1);
        }
        Ok(events)
    }

    /// IN of `width` (8, 16 or 32 bits) from `port`; the value is cut to the width.
    pub fn io_read(&mut self, port: u16, width: Width) -> Result<u32, GhcbError> {
        let info =
            ioio_exit_info(port, width, true, AddrSize::A64).ok_or(GhcbError::InvalidArgument {
                what: "64-bit port access",
                value: u64::from(port),
            })?;
        Ok((self.ioio(info, 0)? & width.mask()) as u32)
    }

    /// OUT of the low `width` bits of `value` to `port`.
    pub fn io_write(&mut self, port: u16, width: Width, value: u32) -> Result<(), GhcbError> {
        let info = ioio_exit_info(port, width, false, AddrSize::A64).ok_or(
            GhcbError::InvalidArgument {
                what: "64-bit port access",
                value: u64::from(port),
            },
        )?;
        self.ioio(info, u64::from(value) & width.mask()).map(|_| ())
    }

    fn check_mmio(gpa: u64, width: Width) -> Result<(), GhcbError> {
        if !gpa.is_multiple_of(width.bytes()) || gpa >> 52 != 0 {
            return Err(GhcbError::InvalidArgument {
                what: "MMIO address is not aligned to the access size or not below 2^52",
                value: gpa,
            });
        }
        Ok(())
    }

    /// MMIO read of `width` at `gpa` (a GPA without the C-bit, naturally aligned). The value
    /// comes back in the shared buffer.
    pub fn mmio_read(&mut self, gpa: u64, width: Width) -> Result<u64, GhcbError> {
        Self::check_mmio(gpa, width)?;
        let scratch = self.shared_buffer_gpa();
        let g = self.begin();
        g.set(Field::SwScratch, scratch);
        self.call(exit_code::MMIO_READ, gpa, width.bytes())?;
        let mut b = [0u8; 8];
        if let Some(src) = self.ghcb.shared_buffer().get(..width.bytes() as usize) {
            b[..src.len()].copy_from_slice(src);
        }
        Ok(u64::from_le_bytes(b) & width.mask())
    }

    /// MMIO write of the low `width` bytes of `value` at `gpa` (naturally aligned).
    pub fn mmio_write(&mut self, gpa: u64, width: Width, value: u64) -> Result<(), GhcbError> {
        Self::check_mmio(gpa, width)?;
        let scratch = self.shared_buffer_gpa();
        let g = self.begin();
        g.set(Field::SwScratch, scratch);
        let bytes = (value & width.mask()).to_le_bytes();
        let n = width.bytes() as usize;
        if let (Some(dst), Some(src)) = (g.shared_buffer_mut().get_mut(..n), bytes.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.call(exit_code::MMIO_WRITE, gpa, width.bytes())
    }

    /// RDMSR of `index` through the hypervisor (RAX and RDX must come back valid).
    pub fn rdmsr(&mut self, index: u32) -> Result<u64, GhcbError> {
        let g = self.begin();
        g.set(Field::Rcx, u64::from(index));
        let e = exit_code::MSR;
        self.call(e, 0, 0)?;
        let lo = self.output(e, Field::Rax)? & 0xFFFF_FFFF;
        let hi = self.output(e, Field::Rdx)? & 0xFFFF_FFFF;
        Ok(hi << 32 | lo)
    }

    /// WRMSR of `value` to `index` through the hypervisor.
    pub fn wrmsr(&mut self, index: u32, value: u64) -> Result<(), GhcbError> {
        let g = self.begin();
        g.set(Field::Rcx, u64::from(index));
        g.set(Field::Rax, value & 0xFFFF_FFFF);
        g.set(Field::Rdx, value >> 32);
        self.call(exit_code::MSR, 1, 0)
    }

    /// RDTSC through the hypervisor: EDX:EAX.
    pub fn rdtsc(&mut self) -> Result<u64, GhcbError> {
        self.begin();
        let e = exit_code::RDTSC;
        self.call(e, 0, 0)?;
        let lo = self.output(e, Field::Rax)? & 0xFFFF_FFFF;
        let hi = self.output(e, Field::Rdx)? & 0xFFFF_FFFF;
        Ok(hi << 32 | lo)
    }

    /// RDTSCP through the hypervisor: EDX:EAX and ECX (TSC_AUX).
    pub fn rdtscp(&mut self) -> Result<(u64, u32), GhcbError> {
        self.begin();
        let e = exit_code::RDTSCP;
        self.call(e, 0, 0)?;
        let lo = self.output(e, Field::Rax)? & 0xFFFF_FFFF;
        let hi = self.output(e, Field::Rdx)? & 0xFFFF_FFFF;
        let aux = self.output(e, Field::Rcx)? as u32;
        Ok((hi << 32 | lo, aux))
    }
}
