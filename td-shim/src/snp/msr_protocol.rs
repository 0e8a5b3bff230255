//! The GHCB MSR protocol: requests written to the GHCB MSR ([`super::cpu::GHCB_MSR`]), a VMGEXIT, and the
//! hypervisor's response read back from the same MSR. It needs no shared page, so it is what the
//! firmware uses before the GHCB exists (and for termination, which must work whatever state
//! the GHCB is in).
//!
//! Layout (GHCB specification as quoted in Linux `arch/x86/include/asm/sev-common.h`; research
//! notes §2.3): bits 11:0 are the request or response code (`GHCBInfo`), bits 63:12 the data.
//!
//! | Request | Data | Response | Checked here |
//! |---|---|---|---|
//! | 0x002 SEV information | — | 0x001: [63:48] max version, [47:32] min version, [31:24] C-bit | code; the version window must include [`GHCB_PROTOCOL_VERSION`] |
//! | 0x004 CPUID | [31:30] register, [63:32] leaf | 0x005: [63:32] the value | code |
//! | 0x012 register GHCB GPA | [63:12] GFN | 0x013: [63:12] the GFN registered | code; the GFN must be ours (all ones = refused) |
//! | 0x014 page state change | [51:12] GFN, [55:52] operation | 0x015: [63:32] error | code; error must be 0 |
//! | 0x080 hypervisor features | — | 0x081: [63:12] feature bitmap | code |
//! | 0x100 termination | [15:12] reason set, [23:16] reason code | none: the guest is not resumed | a response is an error |
//!
//! A response with the wrong code is always an error ([`MsrProtocolError::WrongResponse`]),
//! whatever its data. Reserved response bits are not checked: Linux does not check them either,
//! and nothing here depends on them. The CPUID response's echo of the register index (bits
//! 31:30) is not checked for the same reason.
//!
//! Whoever uses the GHCB page protocol afterwards writes the GHCB GPA into the MSR before each
//! call (see [`super::ghcb::Session`]), so an MSR-protocol request in between cannot leave the
//! MSR holding something else.

use super::cpu::{CpuidResult, SevCpu};
use super::psc::PageOp;
use core::fmt;

/// Request and response codes (bits 11:0).
pub mod code {
    /// SEV information response.
    pub const SEV_INFO_RESP: u64 = 0x001;
    /// SEV information request.
    pub const SEV_INFO_REQ: u64 = 0x002;
    /// CPUID request.
    pub const CPUID_REQ: u64 = 0x004;
    /// CPUID response.
    pub const CPUID_RESP: u64 = 0x005;
    /// Register GHCB GPA request.
    pub const REGISTER_GHCB_REQ: u64 = 0x012;
    /// Register GHCB GPA response.
    pub const REGISTER_GHCB_RESP: u64 = 0x013;
    /// SNP page state change request.
    pub const PSC_REQ: u64 = 0x014;
    /// SNP page state change response.
    pub const PSC_RESP: u64 = 0x015;
    /// Hypervisor feature request.
    pub const HV_FEATURES_REQ: u64 = 0x080;
    /// Hypervisor feature response.
    pub const HV_FEATURES_RESP: u64 = 0x081;
    /// Termination request.
    pub const TERM_REQ: u64 = 0x100;

    /// A name for messages.
    pub fn name(code: u64) -> &'static str {
        match code & super::INFO_MASK {
            SEV_INFO_RESP => "SEV information response",
            SEV_INFO_REQ => "SEV information request",
            CPUID_REQ => "CPUID request",
            CPUID_RESP => "CPUID response",
            REGISTER_GHCB_REQ => "GHCB GPA registration request",
            REGISTER_GHCB_RESP => "GHCB GPA registration response",
            PSC_REQ => "page state change request",
            PSC_RESP => "page state change response",
            HV_FEATURES_REQ => "hypervisor feature request",
            HV_FEATURES_RESP => "hypervisor feature response",
            TERM_REQ => "termination request",
            _ => "unknown GHCB MSR code",
        }
    }
}

/// Bits 11:0: the request or response code.
pub const INFO_MASK: u64 = 0xFFF;

/// The GHCB protocol version this firmware speaks: 2, the first with SNP (hypervisor features,
/// GHCB GPA registration, page state change). Version 1 (SEV-ES only) cannot run an SNP guest.
pub const GHCB_PROTOCOL_VERSION: u16 = 2;

/// The largest GFN the protocol carries: 40 bits (PSC data [51:12]); GPAs are below 2^52.
pub const MAX_GFN: u64 = (1 << 40) - 1;

/// A CPUID register for the MSR-protocol CPUID request (bits 31:30).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuidRegister {
    /// EAX (0).
    Eax = 0,
    /// EBX (1).
    Ebx = 1,
    /// ECX (2).
    Ecx = 2,
    /// EDX (3).
    Edx = 3,
}

/// What the SEV information response says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SevInfo {
    /// The highest GHCB protocol version the hypervisor speaks.
    pub max_version: u16,
    /// The lowest.
    pub min_version: u16,
    /// The C-bit position the **hypervisor** reports. Untrusted: compare it with the CPUID
    /// page's ([`super::cpuid::CpuidTable::c_bit`]), never use it alone.
    pub c_bit: u8,
}

/// The hypervisor feature bitmap (response data [63:12]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HvFeatures(pub u64);

impl HvFeatures {
    /// Bit 0: SEV-SNP is supported (the GHCB's SNP events exist). Required.
    pub const fn snp(self) -> bool {
        self.0 & 1 != 0
    }

    /// Bit 1: SNP AP creation (NAE 0x8000_0013).
    pub const fn ap_creation(self) -> bool {
        self.0 & 2 != 0
    }

    /// Bit 2: restricted injection.
    pub const fn restricted_injection(self) -> bool {
        self.0 & 4 != 0
    }
}

/// A termination reason: a reason-code set (4 bits) and a code in it (8 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TermReason {
    set: u8,
    code: u8,
}

impl TermReason {
    /// Set 0 (GHCB-defined), code 0: general termination request.
    pub const GENERAL: TermReason = TermReason { set: 0, code: 0 };
    /// Set 0, code 1: the GHCB protocol range is not supported.
    pub const PROTOCOL_UNSUPPORTED: TermReason = TermReason { set: 0, code: 1 };
    /// Set 0, code 2: SEV-SNP features are not supported.
    pub const SNP_UNSUPPORTED: TermReason = TermReason { set: 0, code: 2 };

    /// A reason from `set` (0..=15) and `code`; `None` if the set does not fit in 4 bits.
    pub const fn new(set: u8, code: u8) -> Option<TermReason> {
        if set > 0xF {
            None
        } else {
            Some(TermReason { set, code })
        }
    }

    /// The reason-code set.
    pub const fn set(self) -> u8 {
        self.set
    }

    /// The code.
    pub const fn code(self) -> u8 {
        self.code
    }
}

/// Why an MSR-protocol exchange failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsrProtocolError {
    /// The response code is not the one the request calls for.
    WrongResponse {
        /// What was written.
        request: u64,
        /// What came back.
        response: u64,
    },
    /// The hypervisor's version window does not include [`GHCB_PROTOCOL_VERSION`].
    UnsupportedVersion {
        /// Its lowest version.
        min: u16,
        /// Its highest.
        max: u16,
    },
    /// The hypervisor does not report SEV-SNP support in its features.
    NoSnp {
        /// The feature bitmap.
        features: u64,
    },
    /// The GHCB registration response names another GFN (all ones: refused).
    GhcbRegistration {
        /// The GFN asked for.
        gfn: u64,
        /// The response.
        response: u64,
    },
    /// The page state change response carries an error.
    PageStateChange {
        /// The page.
        gpa: u64,
        /// The operation.
        op: PageOp,
        /// The error (response [63:32]).
        error: u32,
    },
    /// An argument was refused before any request was made.
    InvalidArgument {
        /// What was wrong.
        what: &'static str,
        /// The offending value.
        value: u64,
    },
    /// The hypervisor resumed the guest after a termination request.
    TerminateReturned {
        /// The MSR afterwards.
        response: u64,
    },
}

impl fmt::Display for MsrProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::WrongResponse { request, response } => write!(
                f,
                "snp: GHCB MSR protocol: {} ({request:#x}) answered with {} ({response:#x})",
                code::name(request),
                code::name(response)
            ),
            Self::UnsupportedVersion { min, max } => write!(
                f,
                "snp: the hypervisor speaks GHCB protocol versions {min}..={max}, this firmware needs {GHCB_PROTOCOL_VERSION}"
            ),
            Self::NoSnp { features } => write!(
                f,
                "snp: the hypervisor features ({features:#x}) do not include SEV-SNP"
            ),
            Self::GhcbRegistration { gfn, response } => write!(
                f,
                "snp: registering the GHCB at GFN {gfn:#x} was refused (response {response:#x})"
            ),
            Self::PageStateChange { gpa, op, error } => write!(
                f,
                "snp: page state change of {gpa:#x} to {op} (MSR protocol) failed with error {error:#x}"
            ),
            Self::InvalidArgument { what, value } => {
                write!(f, "snp: GHCB MSR protocol: {what} ({value:#x})")
            }
            Self::TerminateReturned { response } => write!(
                f,
                "snp: the hypervisor resumed the guest after a termination request (GHCB MSR {response:#x})"
            ),
        }
    }
}

/// The SEV information request.
pub const fn sev_info_request() -> u64 {
    code::SEV_INFO_REQ
}

/// The CPUID request for `register` of `leaf` (subleaf 0: the protocol has none).
pub const fn cpuid_request(leaf: u32, register: CpuidRegister) -> u64 {
    code::CPUID_REQ | ((register as u64) << 30) | ((leaf as u64) << 32)
}

/// The GHCB GPA registration request for `gfn` (< 2^40, refused otherwise).
pub fn register_ghcb_request(gfn: u64) -> Result<u64, MsrProtocolError> {
    if gfn > MAX_GFN {
        return Err(MsrProtocolError::InvalidArgument {
            what: "GHCB GFN does not fit in 40 bits",
            value: gfn,
        });
    }
    Ok(code::REGISTER_GHCB_REQ | (gfn << 12))
}

/// The page state change request for the 4 KiB page `gfn` (< 2^40, refused otherwise).
pub fn psc_request(gfn: u64, op: PageOp) -> Result<u64, MsrProtocolError> {
    if gfn > MAX_GFN {
        return Err(MsrProtocolError::InvalidArgument {
            what: "page state change GFN does not fit in 40 bits",
            value: gfn,
        });
    }
    Ok(code::PSC_REQ | (gfn << 12) | (op.code() << 52))
}

/// The hypervisor feature request.
pub const fn hv_features_request() -> u64 {
    code::HV_FEATURES_REQ
}

/// The termination request with `reason`.
pub const fn terminate_request(reason: TermReason) -> u64 {
    code::TERM_REQ | ((reason.set as u64 & 0xF) << 12) | ((reason.code as u64) << 16)
}

fn expect(request: u64, response: u64, want: u64) -> Result<u64, MsrProtocolError> {
    if response & INFO_MASK != want {
        return Err(MsrProtocolError::WrongResponse { request, response });
    }
    Ok(response)
}

/// Decodes the SEV information response.
pub fn decode_sev_info(response: u64) -> Result<SevInfo, MsrProtocolError> {
    let v = expect(sev_info_request(), response, code::SEV_INFO_RESP)?;
    Ok(SevInfo {
        max_version: (v >> 48) as u16,
        min_version: ((v >> 32) & 0xFFFF) as u16,
        c_bit: ((v >> 24) & 0xFF) as u8,
    })
}

/// Decodes the CPUID response to `request`: the register's value.
pub fn decode_cpuid(request: u64, response: u64) -> Result<u32, MsrProtocolError> {
    expect(request, response, code::CPUID_RESP).map(|v| (v >> 32) as u32)
}

/// Checks the GHCB registration response for `gfn`.
pub fn decode_register_ghcb(gfn: u64, response: u64) -> Result<(), MsrProtocolError> {
    let request = code::REGISTER_GHCB_REQ | (gfn << 12);
    let v = expect(request, response, code::REGISTER_GHCB_RESP)?;
    if v >> 12 != gfn {
        return Err(MsrProtocolError::GhcbRegistration { gfn, response });
    }
    Ok(())
}

/// Checks the page state change response for the page at `gpa`.
pub fn decode_psc(gpa: u64, op: PageOp, response: u64) -> Result<(), MsrProtocolError> {
    let request = code::PSC_REQ | (gpa & !INFO_MASK) | (op.code() << 52);
    let v = expect(request, response, code::PSC_RESP)?;
    let error = (v >> 32) as u32;
    if error != 0 {
        return Err(MsrProtocolError::PageStateChange { gpa, op, error });
    }
    Ok(())
}

/// Decodes the hypervisor feature response.
pub fn decode_hv_features(response: u64) -> Result<HvFeatures, MsrProtocolError> {
    expect(hv_features_request(), response, code::HV_FEATURES_RESP).map(|v| HvFeatures(v >> 12))
}

/// One exchange: write `request`, VMGEXIT, read the response.
fn exchange<C: SevCpu + ?Sized>(cpu: &C, request: u64) -> u64 {
    cpu.ghcb_msr_write(request);
    cpu.vmgexit(None);
    cpu.ghcb_msr_read()
}

/// Negotiates the protocol: the SEV information exchange. The hypervisor's window
/// `min..=max` must include [`GHCB_PROTOCOL_VERSION`], which is then the version used.
pub fn negotiate<C: SevCpu + ?Sized>(cpu: &C) -> Result<SevInfo, MsrProtocolError> {
    let info = decode_sev_info(exchange(cpu, sev_info_request()))?;
    if info.min_version > GHCB_PROTOCOL_VERSION || info.max_version < GHCB_PROTOCOL_VERSION {
        return Err(MsrProtocolError::UnsupportedVersion {
            min: info.min_version,
            max: info.max_version,
        });
    }
    Ok(info)
}

/// The hypervisor features (protocol version 2). An SNP guest must then check
/// [`HvFeatures::snp`]; [`require_snp`] does both.
pub fn hv_features<C: SevCpu + ?Sized>(cpu: &C) -> Result<HvFeatures, MsrProtocolError> {
    decode_hv_features(exchange(cpu, hv_features_request()))
}

/// The hypervisor features, which must include SEV-SNP (as Linux requires before anything
/// SNP-specific).
pub fn require_snp<C: SevCpu + ?Sized>(cpu: &C) -> Result<HvFeatures, MsrProtocolError> {
    let f = hv_features(cpu)?;
    if !f.snp() {
        return Err(MsrProtocolError::NoSnp { features: f.0 });
    }
    Ok(f)
}

/// CPUID `leaf` (subleaf 0) from the hypervisor, one register per exchange. Untrusted: under
/// SNP the CPUID page is the source; this is only for the leaves Linux also asks the
/// hypervisor for (see [`super::cpuid`]).
pub fn cpuid<C: SevCpu + ?Sized>(cpu: &C, leaf: u32) -> Result<CpuidResult, MsrProtocolError> {
    let mut regs = [0u32; 4];
    let which = [
        CpuidRegister::Eax,
        CpuidRegister::Ebx,
        CpuidRegister::Ecx,
        CpuidRegister::Edx,
    ];
    for (r, reg) in regs.iter_mut().zip(which) {
        let request = cpuid_request(leaf, reg);
        *r = decode_cpuid(request, exchange(cpu, request))?;
    }
    Ok(CpuidResult {
        eax: regs[0],
        ebx: regs[1],
        ecx: regs[2],
        edx: regs[3],
    })
}

/// Registers the GHCB at `gpa` (4 KiB aligned, below 2^52), as SNP requires before the first
/// GHCB-page request. The response must name the same GFN.
pub fn register_ghcb<C: SevCpu + ?Sized>(cpu: &C, gpa: u64) -> Result<(), MsrProtocolError> {
    if gpa & INFO_MASK != 0 {
        return Err(MsrProtocolError::InvalidArgument {
            what: "GHCB GPA is not 4 KiB aligned",
            value: gpa,
        });
    }
    let gfn = gpa >> 12;
    let request = register_ghcb_request(gfn)?;
    decode_register_ghcb(gfn, exchange(cpu, request))
}

/// Page state change of the one 4 KiB page at `gpa` (aligned, below 2^52) to `op`. Only the
/// hypervisor's RMP update: validating (private) or rescinding (before shared) is the
/// caller's, in the order [`super::validate`] documents.
pub fn page_state_change<C: SevCpu + ?Sized>(
    cpu: &C,
    gpa: u64,
    op: PageOp,
) -> Result<(), MsrProtocolError> {
    if gpa & INFO_MASK != 0 {
        return Err(MsrProtocolError::InvalidArgument {
            what: "page state change address is not 4 KiB aligned",
            value: gpa,
        });
    }
    let request = psc_request(gpa >> 12, op)?;
    decode_psc(gpa, op, exchange(cpu, request))
}

/// Asks the hypervisor to terminate the guest with `reason`. A hypervisor does not resume the
/// guest; if it does, the error says so and the caller must stop the vCPU itself.
pub fn terminate<C: SevCpu + ?Sized>(cpu: &C, reason: TermReason) -> MsrProtocolError {
    MsrProtocolError::TerminateReturned {
        response: exchange(cpu, terminate_request(reason)),
    }
}
