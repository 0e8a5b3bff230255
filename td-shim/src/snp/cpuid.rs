//! The SNP CPUID page: the CPUID values the VMM supplied at launch and the PSP checked against
//! the platform's policy. Under SNP the CPUID instruction raises #VC and the hypervisor's answer
//! is untrusted, so the #VC handler answers from this page ([`CpuidTable::lookup`]) the way
//! Linux does (`arch/x86/boot/startup/sev-shared.c`: `snp_cpuid`, `snp_cpuid_postprocess`,
//! `snp_cpuid_calc_xsave_size`; research notes §2.7).
//!
//! # Layout (Linux `struct snp_cpuid_table`, SNP ABI "CPUID page")
//!
//! A 16-byte header — `count` u32, reserved u32, reserved u64 — then up to [`MAX_ENTRIES`] (64)
//! entries of 48 bytes: EAX_IN u32, ECX_IN u32, XCR0_IN u64, XSS_IN u64, EAX, EBX, ECX, EDX
//! (u32 each), reserved u64. 16 + 64 × 48 = 3088 bytes of the 4 KiB page are used.
//!
//! # What [`CpuidTable::parse`] checks
//!
//! `count` must be 1..=64 (Linux terminates otherwise) and the entries must fit in the bytes
//! given. Reserved fields are **not** checked: Linux does not check them, and the PSP, not the
//! guest, is what vouches for the values. The table is copied out of the page once; the ranges
//! of the standard (leaf 0), hypervisor (0x4000_0000) and extended (0x8000_0000) leaves come
//! from their EAX, as Linux computes them.
//!
//! # Lookup
//!
//! 1. The first entry whose EAX_IN is the leaf, and — for indexed leaves — whose ECX_IN is the
//!    subleaf. Indexed: the leaves of Linux `cpuid_function_is_indexed` ([`is_indexed`]), **and**
//!    any leaf the table lists with more than one ECX_IN (a leaf Linux's list does not know yet;
//!    matching on the subleaf is then the only answer that cannot be wrong in a way the page
//!    disagrees with). For leaf 0xD subleaves 0 and 1 only the entry with XCR0_IN 1 or 3 and
//!    XSS_IN 0 is used; the sizes are recomputed (step 3).
//! 2. Not found: zeros. If the leaf is outside the standard, hypervisor and extended ranges the
//!    zeros are the answer; otherwise they are post-processed like a found entry.
//! 3. Post-processing (exactly Linux's):
//!    * 0x1: EBX[31:24] (initial APIC ID) and EDX bit 9 (APIC) from the hypervisor's leaf 1;
//!      ECX bit 27 (OSXSAVE) set if CR4.OSXSAVE is.
//!    * 0x7: ECX bit 4 (OSPKE) = CR4.PKE.
//!    * 0xB: EDX (x2APIC ID) from the hypervisor's leaf 0xB subleaf 0.
//!    * 0xD subleaves 0 and 1: EBX = the XSAVE area size for XCR0 (1 if CR4.OSXSAVE is clear)
//!      and, for subleaf 1 if EAX bit 3 (XSAVES), IA32_XSS — 0x240 plus, per enabled feature
//!      2..=63, its size (compacted, subleaf 1) or the largest offset + size (standard,
//!      subleaf 0), from the page's subleaves 2..=63. **Refused** if a feature enabled in
//!      XCR0|XSS has no entry, or for subleaf 1 if neither XSAVEC (EAX bit 1) nor XSAVES is
//!      set (Linux: the size would be ambiguous).
//!    * 0x8000001E: EAX (extended APIC ID) and the low bytes of EBX (compute unit ID) and ECX
//!      (node ID) from the hypervisor.
//!    * every other leaf: the entry as it is.
//!
//! The hypervisor's values only ever replace APIC/topology identifiers, never feature bits.

use super::cpu::{CpuidResult, SevCpu};
use super::ghcb::{GhcbError, Session};
use super::msr_protocol::{self, MsrProtocolError};
use core::fmt;

/// Bytes of the page.
pub const PAGE_SIZE: usize = 4096;
/// Bytes of the header.
pub const HEADER_SIZE: usize = 16;
/// Bytes of one entry.
pub const ENTRY_SIZE: usize = 48;
/// The most entries (SNP firmware limit; Linux `SNP_CPUID_COUNT_MAX`).
pub const MAX_ENTRIES: usize = 64;

/// The leaf of the memory-encryption information (SEV bits, C-bit position).
pub const LEAF_SEV: u32 = 0x8000_001F;

/// The legacy XSAVE area size (x87 + SSE + header), used instead of the page's.
pub const XSAVE_LEGACY_SIZE: u32 = 0x240;

/// One entry of the page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuidFunction {
    /// EAX_IN: the leaf.
    pub eax_in: u32,
    /// ECX_IN: the subleaf.
    pub ecx_in: u32,
    /// XCR0_IN.
    pub xcr0_in: u64,
    /// XSS_IN.
    pub xss_in: u64,
    /// EAX.
    pub eax: u32,
    /// EBX.
    pub ebx: u32,
    /// ECX.
    pub ecx: u32,
    /// EDX.
    pub edx: u32,
    /// Reserved.
    pub reserved: u64,
}

impl CpuidFunction {
    /// Decodes a 48-byte entry.
    fn read(b: &[u8]) -> Option<CpuidFunction> {
        let u32_at = |o: usize| -> Option<u32> {
            let s = b.get(o..o.checked_add(4)?)?;
            Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        };
        let u64_at = |o: usize| -> Option<u64> {
            Some(u64::from(u32_at(o)?) | u64::from(u32_at(o.checked_add(4)?)?) << 32)
        };
        Some(CpuidFunction {
            eax_in: u32_at(0)?,
            ecx_in: u32_at(4)?,
            xcr0_in: u64_at(8)?,
            xss_in: u64_at(16)?,
            eax: u32_at(24)?,
            ebx: u32_at(28)?,
            ecx: u32_at(32)?,
            edx: u32_at(36)?,
            reserved: u64_at(40)?,
        })
    }

    /// The four output registers.
    pub const fn result(&self) -> CpuidResult {
        CpuidResult {
            eax: self.eax,
            ebx: self.ebx,
            ecx: self.ecx,
            edx: self.edx,
        }
    }
}

/// The leaves whose ECX selects a subleaf (Linux `cpuid_function_is_indexed`).
pub const fn is_indexed(leaf: u32) -> bool {
    matches!(
        leaf,
        0x4 | 0x7
            | 0xB
            | 0xD
            | 0xF
            | 0x10
            | 0x12
            | 0x14
            | 0x17
            | 0x18
            | 0x1D
            | 0x1E
            | 0x1F
            | 0x24
            | 0x8000_001D
    )
}

/// The CPU state CPUID's answers depend on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuState {
    /// CR4.OSXSAVE.
    pub osxsave: bool,
    /// CR4.PKE.
    pub pke: bool,
    /// XCR0 (only read if `osxsave`).
    pub xcr0: u64,
    /// IA32_XSS (only read for leaf 0xD subleaf 1 when XSAVES is supported).
    pub xss: u64,
}

impl CpuState {
    /// XCR0 as the guest sees it: its value, or the reset value 1 if CR4.OSXSAVE is clear.
    pub const fn effective_xcr0(&self) -> u64 {
        if self.osxsave {
            self.xcr0
        } else {
            1
        }
    }
}

/// Why the CPUID page was refused or a lookup failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuidError {
    /// The bytes end before the entries do.
    Truncated {
        /// Bytes given.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// `count` is 0 or above 64.
    Count(u32),
    /// Leaf 0x8000001F is not in the page.
    NoSevLeaf,
    /// Leaf 0x8000001F does not report SEV (EAX bit 1) and SEV-SNP (bit 4).
    NoSnp {
        /// Its EAX.
        eax: u32,
    },
    /// The C-bit position is outside 32..=51.
    CBit(u8),
    /// The page's C-bit position differs from the hypervisor's.
    CBitMismatch {
        /// The page's.
        page: u8,
        /// The hypervisor's (MSR protocol SEV information).
        hypervisor: u8,
    },
    /// Leaf 0xD subleaf 1 without XSAVEC or XSAVES: the size is ambiguous.
    XsaveNotCompacted {
        /// Its EAX.
        eax: u32,
    },
    /// An XSAVE feature enabled in XCR0|XSS has no size in the page.
    XsaveSize {
        /// XCR0 | XSS.
        xfeatures: u64,
    },
    /// Asking the hypervisor (through the GHCB) failed.
    Ghcb(GhcbError),
    /// Asking the hypervisor (through the MSR protocol) failed.
    Msr(MsrProtocolError),
    /// The MSR protocol cannot ask for a subleaf other than 0 of an indexed leaf.
    MsrSubleaf {
        /// The leaf.
        leaf: u32,
        /// The subleaf.
        subleaf: u32,
    },
}

impl fmt::Display for CpuidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Truncated { len, need } => write!(
                f,
                "snp: CPUID page: {len} bytes, but its entries need {need}"
            ),
            Self::Count(c) => write!(f, "snp: CPUID page: count {c} is not 1..=64"),
            Self::NoSevLeaf => write!(f, "snp: CPUID page has no leaf 0x8000001f"),
            Self::NoSnp { eax } => write!(
                f,
                "snp: CPUID page leaf 0x8000001f EAX {eax:#x} does not report SEV and SEV-SNP"
            ),
            Self::CBit(c) => write!(f, "snp: C-bit position {c} is not 32..=51"),
            Self::CBitMismatch { page, hypervisor } => write!(
                f,
                "snp: the CPUID page says C-bit {page}, the hypervisor says {hypervisor}"
            ),
            Self::XsaveNotCompacted { eax } => write!(
                f,
                "snp: CPUID 0xd.1 EAX {eax:#x} has neither XSAVEC nor XSAVES: XSAVE size refused"
            ),
            Self::XsaveSize { xfeatures } => write!(
                f,
                "snp: CPUID page lacks the XSAVE sizes of features {xfeatures:#x}"
            ),
            Self::Ghcb(e) => write!(f, "{e}"),
            Self::Msr(e) => write!(f, "{e}"),
            Self::MsrSubleaf { leaf, subleaf } => write!(
                f,
                "snp: CPUID {leaf:#x}.{subleaf:#x}: the MSR protocol has no subleaves"
            ),
        }
    }
}

/// The parsed page (a copy: the page itself may be handed to the OS untouched).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuidTable {
    functions: [CpuidFunction; MAX_ENTRIES],
    count: usize,
    std_max: u32,
    hyp_max: u32,
    ext_max: u32,
}

impl CpuidTable {
    /// Parses the page (see the module documentation for what is checked).
    pub fn parse(page: &[u8]) -> Result<CpuidTable, CpuidError> {
        let need_header = |len| CpuidError::Truncated {
            len,
            need: HEADER_SIZE,
        };
        let h = page.get(..4).ok_or(need_header(page.len()))?;
        if page.len() < HEADER_SIZE {
            return Err(need_header(page.len()));
        }
        let count = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        if count == 0 || count as usize > MAX_ENTRIES {
            return Err(CpuidError::Count(count));
        }
        let n = count as usize;
        let need = HEADER_SIZE + n * ENTRY_SIZE;
        if page.len() < need {
            return Err(CpuidError::Truncated {
                len: page.len(),
                need,
            });
        }
        let mut t = CpuidTable {
            functions: [CpuidFunction::default(); MAX_ENTRIES],
            count: n,
            std_max: 0,
            hyp_max: 0,
            ext_max: 0,
        };
        for (i, slot) in t.functions.iter_mut().take(n).enumerate() {
            let at = HEADER_SIZE + i * ENTRY_SIZE;
            let f = page
                .get(at..at + ENTRY_SIZE)
                .and_then(CpuidFunction::read)
                .ok_or(CpuidError::Truncated {
                    len: page.len(),
                    need,
                })?;
            *slot = f;
        }
        // As Linux: the last entry of each range leaf wins.
        let functions = t.functions;
        for f in functions.iter().take(n) {
            match f.eax_in {
                0 => t.std_max = f.eax,
                0x4000_0000 => t.hyp_max = f.eax,
                0x8000_0000 => t.ext_max = f.eax,
                _ => {}
            }
        }
        Ok(t)
    }

    /// The entries.
    pub fn functions(&self) -> &[CpuidFunction] {
        self.functions.get(..self.count).unwrap_or(&[])
    }

    /// Whether `leaf` is looked up with its subleaf: [`is_indexed`], or listed with more than
    /// one ECX_IN in this table.
    pub fn indexed(&self, leaf: u32) -> bool {
        if is_indexed(leaf) {
            return true;
        }
        let mut first: Option<u32> = None;
        for f in self.functions().iter().filter(|f| f.eax_in == leaf) {
            match first {
                None => first = Some(f.ecx_in),
                Some(e) if e != f.ecx_in => return true,
                Some(_) => {}
            }
        }
        false
    }

    /// The entry for `leaf`/`subleaf` as step 1 of the lookup finds it, unprocessed.
    pub fn find(&self, leaf: u32, subleaf: u32) -> Option<&CpuidFunction> {
        let indexed = self.indexed(leaf);
        self.functions().iter().find(|f| {
            if f.eax_in != leaf || (indexed && f.ecx_in != subleaf) {
                return false;
            }
            if f.eax_in == 0xD && (f.ecx_in == 0 || f.ecx_in == 1) {
                return (f.xcr0_in == 1 || f.xcr0_in == 3) && f.xss_in == 0;
            }
            true
        })
    }

    fn in_range(&self, leaf: u32) -> bool {
        leaf <= self.std_max
            || (0x4000_0000..=self.hyp_max).contains(&leaf)
            || (0x8000_0000..=self.ext_max).contains(&leaf)
    }

    /// The XSAVE area size for `xfeatures` (Linux `snp_cpuid_calc_xsave_size`), or `None` if a
    /// feature in bits 63:2 has no subleaf in the page.
    pub fn xsave_size(&self, xfeatures: u64, compacted: bool) -> Option<u32> {
        let mut found: u64 = 0;
        let mut size = XSAVE_LEGACY_SIZE;
        for f in self.functions() {
            if f.eax_in != 0xD || f.ecx_in <= 1 || f.ecx_in >= 64 {
                continue;
            }
            let bit = 1u64 << f.ecx_in;
            if xfeatures & bit == 0 || found & bit != 0 {
                continue;
            }
            found |= bit;
            size = if compacted {
                size.checked_add(f.eax)?
            } else {
                size.max(f.eax.checked_add(f.ebx)?)
            };
        }
        (found == xfeatures & !3).then_some(size)
    }

    /// CPUID `leaf`/`subleaf` as the #VC handler answers it (module documentation). `hv` asks
    /// the hypervisor (for leaves 0x1, 0xB, 0x8000001E only).
    pub fn lookup(
        &self,
        leaf: u32,
        subleaf: u32,
        state: &CpuState,
        hv: &mut dyn FnMut(u32, u32) -> Result<CpuidResult, CpuidError>,
    ) -> Result<CpuidResult, CpuidError> {
        let mut r = match self.find(leaf, subleaf) {
            Some(f) => f.result(),
            None if !self.in_range(leaf) => return Ok(CpuidResult::default()),
            None => CpuidResult::default(),
        };
        match leaf {
            0x1 => {
                let h = hv(leaf, subleaf)?;
                r.ebx = (h.ebx & 0xFF00_0000) | (r.ebx & 0x00FF_FFFF);
                r.edx = (h.edx & (1 << 9)) | (r.edx & !(1 << 9));
                if state.osxsave {
                    r.ecx |= 1 << 27;
                }
            }
            0x7 => {
                r.ecx &= !(1 << 4);
                if state.pke {
                    r.ecx |= 1 << 4;
                }
            }
            0xB => {
                r.edx = hv(leaf, 0)?.edx;
            }
            0xD if subleaf == 0 || subleaf == 1 => {
                let xcr0 = state.effective_xcr0();
                let mut xss = 0;
                let compacted = subleaf == 1;
                if compacted {
                    if r.eax & (1 << 3) != 0 {
                        xss = state.xss;
                    }
                    if r.eax & ((1 << 1) | (1 << 3)) == 0 {
                        return Err(CpuidError::XsaveNotCompacted { eax: r.eax });
                    }
                }
                let xfeatures = xcr0 | xss;
                r.ebx = self
                    .xsave_size(xfeatures, compacted)
                    .ok_or(CpuidError::XsaveSize { xfeatures })?;
            }
            0x8000_001E => {
                let h = hv(leaf, subleaf)?;
                r.eax = h.eax;
                r.ebx = (r.ebx & 0xFFFF_FF00) | (h.ebx & 0xFF);
                r.ecx = (r.ecx & 0xFFFF_FF00) | (h.ecx & 0xFF);
            }
            _ => {}
        }
        Ok(r)
    }

    /// The C-bit position from leaf 0x8000001F EBX[5:0], which must report SEV and SEV-SNP
    /// (EAX bits 1 and 4) and lie in 32..=51. The caller must also check that all RAM lies
    /// below `1 << c_bit`.
    pub fn c_bit(&self) -> Result<u8, CpuidError> {
        let f = self.find(LEAF_SEV, 0).ok_or(CpuidError::NoSevLeaf)?;
        if f.eax & (1 << 1) == 0 || f.eax & (1 << 4) == 0 {
            return Err(CpuidError::NoSnp { eax: f.eax });
        }
        let c = (f.ebx & 0x3F) as u8;
        if !(32..=51).contains(&c) {
            return Err(CpuidError::CBit(c));
        }
        Ok(c)
    }

    /// [`CpuidTable::c_bit`], which must also equal the hypervisor's
    /// ([`super::msr_protocol::SevInfo::c_bit`]).
    pub fn check_c_bit(&self, hypervisor: u8) -> Result<u8, CpuidError> {
        let page = self.c_bit()?;
        if page != hypervisor {
            return Err(CpuidError::CBitMismatch { page, hypervisor });
        }
        Ok(page)
    }

    /// Whether newly validated pages must be touched (leaf 0x8000001F EBX bit 31,
    /// `COHERENCY_SFW_NO`, clear or absent).
    pub fn needs_cache_eviction(&self) -> bool {
        self.find(LEAF_SEV, 0)
            .is_none_or(|f| f.ebx & (1 << 31) == 0)
    }

    /// Whether the hardware keeps the caches coherent across a page's C-bit changes (leaf
    /// 0x8000001F EAX bit 10, `SME_COHERENT`; absent: no). Without it Linux flushes the caches
    /// before it changes a page's encryption attribute (`amd_enc_cache_flush_required`,
    /// `arch/x86/mm/mem_encrypt_amd.c`); the firmware has no cache flush, so it converts no
    /// memory but the GHCB page then ([`super::bounce`]).
    pub fn sme_coherent(&self) -> bool {
        self.find(LEAF_SEV, 0)
            .is_some_and(|f| f.eax & (1 << 10) != 0)
    }
}

/// Asks the hypervisor through the GHCB (for [`CpuidTable::lookup`]).
pub fn hv_via_ghcb<'s, 'a: 's, C: SevCpu + ?Sized>(
    s: &'s mut Session<'a, C>,
    state: &'s CpuState,
) -> impl FnMut(u32, u32) -> Result<CpuidResult, CpuidError> + use<'s, 'a, C> {
    move |leaf, subleaf| {
        s.cpuid(leaf, subleaf, state.effective_xcr0(), None)
            .map_err(CpuidError::Ghcb)
    }
}

/// Asks the hypervisor through the MSR protocol (before the GHCB exists). Subleaves other than
/// 0 of indexed leaves are refused: the protocol cannot carry them (Linux refuses them too).
pub fn hv_via_msr<C: SevCpu + ?Sized>(
    cpu: &C,
) -> impl FnMut(u32, u32) -> Result<CpuidResult, CpuidError> + '_ {
    move |leaf, subleaf| {
        if subleaf != 0 && is_indexed(leaf) {
            return Err(CpuidError::MsrSubleaf { leaf, subleaf });
        }
        msr_protocol::cpuid(cpu, leaf).map_err(CpuidError::Msr)
    }
}
