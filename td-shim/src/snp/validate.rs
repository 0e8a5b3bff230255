//! Making guest RAM usable under SEV-SNP: page state change to private, then PVALIDATE, for
//! every page the OS will use (Linux booted without EFI has no "unaccepted memory": everything
//! must be validated before the hand-off; research notes §2.5).
//!
//! # Plan
//!
//! [`pieces`] takes one RAM range and the ranges that are already validated and returns what
//! is left to do; [`plan`] cuts each piece into at most three runs — 4 KiB pages up to the
//! first 2 MiB boundary, 2 MiB pages while a whole aligned 2 MiB page fits, 4 KiB pages for the
//! tail — as for TDX ([`crate::tdx::accept`]). [`validate_ram`] runs them in batches of up to
//! [`MAX_ENTRIES`] pages: one page state change (to private) for the batch, then one PVALIDATE
//! per page, in that order (Linux `__set_pages_state` for private pages: the RMP entry must be
//! assigned before it can be validated).
//!
//! # PVALIDATE outcomes (decision)
//!
//! | Outcome | Action |
//! |---|---|
//! | EAX 0, CF 0 | validated; counted |
//! | EAX 6 (FAIL_SIZEMISMATCH) on a 2 MiB page | the hypervisor backs the range with 4 KiB RMP entries: the same 2 MiB page is validated as 512 × 4 KiB (Linux `pval_pages`); counted in [`ValidateStats::split_2m`] |
//! | EAX 6 on a 4 KiB page, EAX 1 (FAIL_INPUT), any other EAX | fatal: [`ValidateError::Pvalidate`] with the address, size and result |
//! | CF = 1 (the RMP entry already had the validated state) | **fatal**: [`ValidateError::AlreadyValidated`] |
//!
//! CF = 1 is fatal because the firmware knows every page that is validated before it asks:
//! the image's ROM (launch-validated by the PSP) and the ranges given as `prevalidated` (the
//! SEV metadata sections the PSP validated at launch, pages the firmware validated earlier).
//! Those are skipped before any call and counted in [`ValidateStats::skipped_4k`]. Any other
//! page the PSC just made private cannot be validated (RMPUPDATE clears the bit), so CF = 1 on
//! one means the hypervisor did not perform the change it acknowledged and the page may still
//! hold — or alias — memory validated earlier: Linux terminates
//! (`GHCB_TERM_PVALIDATE`), and Oak stage0 treats it as a double-validation attack (research
//! notes §2.5).
//!
//! # The firmware's own ROM
//!
//! A RAM range that overlaps [`FIRMWARE_ROM`] (the image, launch-validated, up to 4 GiB) is
//! refused ([`ValidateError::OverlapsFirmware`]), not trimmed: a VMM that reports RAM there is
//! wrong, and validating those pages again would re-key them under the hypervisor's mapping
//! (Oak refuses such E820 entries too).
//!
//! # Sharing a page (the GHCB, a DMA buffer)
//!
//! [`make_shared_4k`] goes the other way in Linux's order (`__page_state_change`): PVALIDATE
//! rescind first, so no validated page is ever shared, then the page state change to shared
//! through the MSR protocol (it runs before the GHCB exists). CF = 1 on the rescind is fatal as
//! in Linux (the firmware only shares pages it knows to be validated). The caller then maps the
//! page with the C-bit clear and flushes the TLB. [`make_shared`] does the same for a range
//! (the fw_cfg bounce buffer, [`super::bounce`]) through the GHCB: rescind every page of a
//! batch, then one page state change to shared for the batch. Back to private (the bounce
//! buffer before the hand-off): the caller maps the range with the C-bit first, then
//! [`validate_ram`] (page state change to private, then PVALIDATE), as Linux's
//! `set_memory_encrypted` does.
//!
//! # After validation
//!
//! Validated memory is **not** zeroed: its contents are whatever the page held. With
//! `evict_cache` (CPUs without `COHERENCY_SFW_NO`, CPUID 0x8000001F EBX bit 31 clear, taken from
//! the CPUID page: [`super::cpuid::CpuidTable::needs_cache_eviction`]), every newly validated
//! page is touched ([`SevCpu::touch_pages`]) as Linux does.
//!
//! Addresses are GPAs and virtual addresses at once (the firmware's identity map).

use super::cpu::{pvalidate_status, PageSize, PvalidateResult, SevCpu, PAGE_4K};
use super::ghcb::Session;
use super::msr_protocol::{self, MsrProtocolError};
use super::psc::{self, PageOp, PscEntry, PscError, MAX_ENTRIES};
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

/// The firmware image's address range: the top 16 MiB below 4 GiB. Launch-validated; never
/// part of guest RAM.
pub const FIRMWARE_ROM: Range<u64> = 0xFF00_0000..0x1_0000_0000;

/// Why memory could not be validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidateError {
    /// A range's base or length is not 4 KiB aligned.
    Unaligned {
        /// Base.
        base: u64,
        /// Length.
        len: u64,
    },
    /// A range wraps past the end of the address space or reaches 2^52.
    Overflow {
        /// Base.
        base: u64,
        /// Length.
        len: u64,
    },
    /// The RAM range overlaps the firmware's ROM ([`FIRMWARE_ROM`]).
    OverlapsFirmware {
        /// Base.
        base: u64,
        /// Length.
        len: u64,
    },
    /// A page state change through the GHCB failed.
    Psc {
        /// The first page of the batch.
        gpa: u64,
        /// What failed.
        error: PscError,
    },
    /// A page state change through the MSR protocol failed.
    MsrPsc {
        /// The page.
        gpa: u64,
        /// What failed.
        error: MsrProtocolError,
    },
    /// PVALIDATE failed.
    Pvalidate {
        /// The page.
        va: u64,
        /// Its size.
        size: PageSize,
        /// What it returned.
        result: PvalidateResult,
    },
    /// PVALIDATE found the page already validated (CF = 1): see the module documentation.
    AlreadyValidated {
        /// The page.
        va: u64,
        /// Its size.
        size: PageSize,
    },
}

impl fmt::Display for ValidateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kib = |s: &PageSize| s.bytes() / 1024;
        match self {
            Self::Unaligned { base, len } => {
                write!(f, "snp: validate: range {base:#x} + {len:#x} is not 4 KiB aligned")
            }
            Self::Overflow { base, len } => write!(
                f,
                "snp: validate: range {base:#x} + {len:#x} wraps or reaches 2^52"
            ),
            Self::OverlapsFirmware { base, len } => write!(
                f,
                "snp: validate: RAM {base:#x} + {len:#x} overlaps the firmware ROM {:#x}..{:#x}",
                FIRMWARE_ROM.start, FIRMWARE_ROM.end
            ),
            Self::Psc { gpa, error } => write!(f, "snp: validate: batch at {gpa:#x}: {error}"),
            Self::MsrPsc { gpa, error } => write!(f, "snp: validate: page {gpa:#x}: {error}"),
            Self::Pvalidate { va, size, result } => write!(
                f,
                "snp: PVALIDATE of the {} KiB page at {va:#x} failed: {result}",
                kib(size)
            ),
            Self::AlreadyValidated { va, size } => write!(
                f,
                "snp: PVALIDATE: the {} KiB page at {va:#x} was already validated (CF=1); the firmware did not validate it",
                kib(size)
            ),
        }
    }
}

/// How pages are made private: through the GHCB (batches) or the MSR protocol (one 4 KiB page
/// per exchange, before the GHCB exists).
pub trait PageStateChanger {
    /// Makes `entries` (1..=[`MAX_ENTRIES`]) private or shared as each says.
    fn change(&mut self, entries: &[PscEntry]) -> Result<(), ValidateError>;
}

impl<C: SevCpu + ?Sized> PageStateChanger for Session<'_, C> {
    fn change(&mut self, entries: &[PscEntry]) -> Result<(), ValidateError> {
        psc::page_state_change(self, entries)
            .map(|_| ())
            .map_err(|error| ValidateError::Psc {
                gpa: entries.first().map_or(0, PscEntry::gpa),
                error,
            })
    }
}

/// Page state changes through the MSR protocol: a 2 MiB entry becomes 512 requests.
pub struct MsrPsc<'a, C: SevCpu + ?Sized>(pub &'a C);

impl<C: SevCpu + ?Sized> PageStateChanger for MsrPsc<'_, C> {
    fn change(&mut self, entries: &[PscEntry]) -> Result<(), ValidateError> {
        for e in entries {
            for i in 0..e.size().pages_4k() {
                let gpa = e.gpa().saturating_add(i * PAGE_4K);
                msr_protocol::page_state_change(self.0, gpa, e.op())
                    .map_err(|error| ValidateError::MsrPsc { gpa, error })?;
            }
        }
        Ok(())
    }
}

/// A run of equally sized pages.
pub type Run = crate::pages::Run<PageSize>;

/// The runs of one range, in address order: at most three, empty ones left out.
pub type Plan = crate::pages::Plan<PageSize>;

/// Checks a range (4 KiB aligned, below 2^52) and returns its end.
fn range_end(base: u64, len: u64) -> Result<u64, ValidateError> {
    if !base.is_multiple_of(PAGE_4K) || !len.is_multiple_of(PAGE_4K) {
        return Err(ValidateError::Unaligned { base, len });
    }
    match base.checked_add(len) {
        Some(end) if end <= 1 << 52 => Ok(end),
        _ => Err(ValidateError::Overflow { base, len }),
    }
}

/// Plans `[base, base + len)` (4 KiB aligned, below 2^52).
pub fn plan(base: u64, len: u64) -> Result<Plan, ValidateError> {
    let end = range_end(base, len)?;
    Ok(crate::pages::plan(
        base,
        end,
        PageSize::Size4K,
        PageSize::Size2M,
    ))
}

/// The parts of RAM `[base, base + len)` not covered by `prevalidated`, in address order, and
/// the number of 4 KiB pages of RAM the prevalidated ranges cover. The RAM range must not
/// overlap [`FIRMWARE_ROM`]; every range must be 4 KiB aligned and below 2^52; prevalidated
/// ranges may be unsorted, overlap each other, or lie partly outside the RAM range.
pub fn pieces(
    base: u64,
    len: u64,
    prevalidated: &[(u64, u64)],
) -> Result<(Vec<(u64, u64)>, u64), ValidateError> {
    let end = range_end(base, len)?;
    if len != 0 && base < FIRMWARE_ROM.end && end > FIRMWARE_ROM.start {
        return Err(ValidateError::OverlapsFirmware { base, len });
    }
    let mut holes: Vec<(u64, u64)> = Vec::with_capacity(prevalidated.len());
    for &(b, l) in prevalidated {
        let e = range_end(b, l)?;
        let (s, e) = (b.max(base), e.min(end));
        if s < e {
            holes.push((s, e));
        }
    }
    holes.sort_unstable();
    let mut out = Vec::new();
    let mut skipped: u64 = 0;
    let mut at = base;
    for (s, e) in holes {
        if e <= at {
            continue;
        }
        let s = s.max(at);
        if s > at {
            out.push((at, s - at));
        }
        skipped = skipped.saturating_add((e - s) / PAGE_4K);
        at = e;
    }
    if at < end {
        out.push((at, end - at));
    }
    Ok((out, skipped))
}

/// What a validation did, in pages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ValidateStats {
    /// 2 MiB pages validated as such.
    pub validated_2m: u64,
    /// 4 KiB pages validated (including those of split 2 MiB pages).
    pub validated_4k: u64,
    /// 2 MiB pages validated as 512 × 4 KiB after FAIL_SIZEMISMATCH.
    pub split_2m: u64,
    /// 4 KiB pages of RAM skipped because they were given as already validated.
    pub skipped_4k: u64,
    /// Page state change batches.
    pub psc_batches: u64,
}

impl ValidateStats {
    /// 4 KiB pages now validated by this call.
    pub fn pages_4k(&self) -> u64 {
        self.validated_2m
            .saturating_mul(512)
            .saturating_add(self.validated_4k)
    }
}

fn pvalidate_4k<C: SevCpu + ?Sized>(
    cpu: &C,
    va: u64,
    evict: bool,
    stats: &mut ValidateStats,
) -> Result<(), ValidateError> {
    let size = PageSize::Size4K;
    let r = cpu.pvalidate(va, size, true);
    if r.cf {
        return Err(ValidateError::AlreadyValidated { va, size });
    }
    if r.eax != pvalidate_status::SUCCESS {
        return Err(ValidateError::Pvalidate {
            va,
            size,
            result: r,
        });
    }
    if evict {
        cpu.touch_pages(va, 1);
    }
    stats.validated_4k = stats.validated_4k.saturating_add(1);
    Ok(())
}

fn pvalidate_2m<C: SevCpu + ?Sized>(
    cpu: &C,
    va: u64,
    evict: bool,
    stats: &mut ValidateStats,
) -> Result<(), ValidateError> {
    let size = PageSize::Size2M;
    let r = cpu.pvalidate(va, size, true);
    if r.cf {
        return Err(ValidateError::AlreadyValidated { va, size });
    }
    match r.eax {
        pvalidate_status::SUCCESS => {
            if evict {
                cpu.touch_pages(va, 512);
            }
            stats.validated_2m = stats.validated_2m.saturating_add(1);
            Ok(())
        }
        pvalidate_status::FAIL_SIZEMISMATCH => {
            stats.split_2m = stats.split_2m.saturating_add(1);
            for i in 0..512 {
                pvalidate_4k(cpu, va.saturating_add(i * PAGE_4K), evict, stats)?;
            }
            Ok(())
        }
        _ => Err(ValidateError::Pvalidate {
            va,
            size,
            result: r,
        }),
    }
}

/// Validates RAM `[base, base + len)` except `prevalidated` (see [`pieces`]): page state
/// change to private through `psc`, then PVALIDATE, batch by batch, stopping at the first
/// failure, which names the page. `evict_cache`: touch each newly validated page (see the
/// module documentation).
pub fn validate_ram<C: SevCpu + ?Sized, P: PageStateChanger + ?Sized>(
    cpu: &C,
    psc: &mut P,
    base: u64,
    len: u64,
    prevalidated: &[(u64, u64)],
    evict_cache: bool,
) -> Result<ValidateStats, ValidateError> {
    let (todo, skipped) = pieces(base, len, prevalidated)?;
    let mut stats = ValidateStats {
        skipped_4k: skipped,
        ..ValidateStats::default()
    };
    let mut batch: Vec<PscEntry> = Vec::with_capacity(MAX_ENTRIES);
    for (b, l) in todo {
        for run in plan(b, l)? {
            let step = run.size.bytes();
            let mut i: u64 = 0;
            while i < run.pages {
                batch.clear();
                while i < run.pages && batch.len() < MAX_ENTRIES {
                    // In range: the run lies below 2^52.
                    let gpa = run.base.saturating_add(i.saturating_mul(step));
                    let e = PscEntry::new(gpa, PageOp::Private, run.size)
                        .map_err(|error| ValidateError::Psc { gpa, error })?;
                    batch.push(e);
                    i = i.saturating_add(1);
                }
                psc.change(&batch)?;
                stats.psc_batches = stats.psc_batches.saturating_add(1);
                for e in &batch {
                    match e.size() {
                        PageSize::Size2M => pvalidate_2m(cpu, e.gpa(), evict_cache, &mut stats)?,
                        PageSize::Size4K => pvalidate_4k(cpu, e.gpa(), evict_cache, &mut stats)?,
                    }
                }
            }
        }
    }
    Ok(stats)
}

/// PVALIDATE rescind of the validated 4 KiB page at `va` (mapped private, with the C-bit).
/// CF = 1 (it was not validated) is fatal, as in Linux: the firmware only shares pages it knows
/// to be validated ([`ValidateError::AlreadyValidated`] names the page).
fn rescind_4k<C: SevCpu + ?Sized>(cpu: &C, va: u64) -> Result<(), ValidateError> {
    let size = PageSize::Size4K;
    let r = cpu.pvalidate(va, size, false);
    if r.cf {
        return Err(ValidateError::AlreadyValidated { va, size });
    }
    if r.eax != pvalidate_status::SUCCESS {
        return Err(ValidateError::Pvalidate {
            va,
            size,
            result: r,
        });
    }
    Ok(())
}

/// Makes the validated private 4 KiB page at `gpa` shared: PVALIDATE rescind, then the page
/// state change to shared through the MSR protocol (see the module documentation).
pub fn make_shared_4k<C: SevCpu + ?Sized>(cpu: &C, gpa: u64) -> Result<(), ValidateError> {
    range_end(gpa, PAGE_4K)?;
    rescind_4k(cpu, gpa)?;
    msr_protocol::page_state_change(cpu, gpa, PageOp::Shared)
        .map_err(|error| ValidateError::MsrPsc { gpa, error })
}

/// Makes the validated private RAM `[base, base + len)` (4 KiB aligned, below 2^52, mapped
/// private) shared, batch by batch of up to [`MAX_ENTRIES`] 4 KiB pages: PVALIDATE rescind of
/// every page of the batch, then one page state change to shared through `psc` (which handles
/// partial processing), in Linux's order (`__set_pages_state`: no validated page is ever
/// shared). Stops at the first failure, which names the page or batch; the pages before it are
/// then rescinded or shared: treat it as fatal. The caller then maps the range without the
/// C-bit and flushes the TLB.
pub fn make_shared<C: SevCpu + ?Sized, P: PageStateChanger + ?Sized>(
    cpu: &C,
    psc: &mut P,
    base: u64,
    len: u64,
) -> Result<(), ValidateError> {
    let end = range_end(base, len)?;
    let mut batch: Vec<PscEntry> = Vec::with_capacity(MAX_ENTRIES);
    let mut page = base;
    while page < end {
        batch.clear();
        while page < end && batch.len() < MAX_ENTRIES {
            let e = PscEntry::new(page, PageOp::Shared, PageSize::Size4K)
                .map_err(|error| ValidateError::Psc { gpa: page, error })?;
            rescind_4k(cpu, page)?;
            batch.push(e);
            // No overflow: page < end <= 2^52.
            page = page.saturating_add(PAGE_4K);
        }
        psc.change(&batch)?;
    }
    Ok(())
}
