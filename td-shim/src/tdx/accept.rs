//! Accepting private memory (TDG.MEM.PAGE.ACCEPT): a pure plan of the pages for a range, its
//! execution over [`Tdcall`], and the split of a list of ranges across vCPUs so a large TD does
//! not accept all its memory on one core.
//!
//! # Plan
//!
//! `[base, base + len)` (4 KiB aligned) becomes at most three runs: 4 KiB pages up to the first
//! 2 MiB boundary, 2 MiB pages while a whole aligned 2 MiB page fits, 4 KiB pages for the tail
//! (OVMF PR #11525: odd RAM sizes leave a tail that only 4 KiB accepts cover). Module 1.5 does
//! not accept 1 GiB pages (§2.4), so 2 MiB is the largest size used.
//!
//! # Outcomes (research notes §2.4)
//!
//! * success: the page is accepted and zeroed;
//! * `PAGE_ALREADY_ACCEPTED` (bits 63:32 `0x00000B0A`, any level in the low bits): done, counted
//!   separately (the page is not zeroed again; it is private, so only the TD can have written
//!   it);
//! * `PAGE_SIZE_MISMATCH` on a 2 MiB accept (the VMM mapped the range with 4 KiB entries):
//!   accepted again as 512 × 4 KiB. On a 4 KiB accept it is an error;
//! * `OPERAND_BUSY`: retried by [`mem_page_accept`] (bounded, see [`super::calls`]);
//! * anything else: [`AcceptError::Failed`] with the GPA and page size.
//!
//! # Several vCPUs
//!
//! [`share`] / [`share_of`] cut the concatenation of the ranges into `n` pieces of (almost)
//! equal bytes. A cut inside a range is always at a 2 MiB-aligned address, so no 2 MiB page is
//! split between vCPUs and the pieces need no more TDCALLs together than the whole would. A
//! cut may also fall on a range boundary. Each piece differs from `total / n` by at most
//! 2 MiB + 4 KiB. [`accept_share`] runs one vCPU's piece; running the pieces on the APs in
//! parallel is the caller's (the mailbox work is not here yet).

use super::calls::{leaf, mem_page_accept, AcceptOutcome, PageLevel, Tdcall, TdxError};
use crate::pages::{down_2m, up_2m};
use alloc::vec::Vec;
use core::fmt;

/// 4 KiB.
pub const PAGE_4K: u64 = 0x1000;
/// 2 MiB.
pub const PAGE_2M: u64 = 0x20_0000;

/// Why memory could not be accepted or the work not be split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptError {
    /// The range's base or length is not 4 KiB aligned.
    Unaligned {
        /// Base.
        base: u64,
        /// Length.
        len: u64,
    },
    /// The range wraps past the end of the address space, or the total length overflows.
    Overflow {
        /// Base.
        base: u64,
        /// Length.
        len: u64,
    },
    /// Range `index` starts below the end of the range before it (unsorted or overlapping).
    Unsorted {
        /// Its index in the list.
        index: usize,
    },
    /// No vCPUs, or a vCPU index not below the count.
    Vcpu {
        /// The index asked for.
        index: usize,
        /// The vCPU count.
        count: usize,
    },
    /// A TDG.MEM.PAGE.ACCEPT failed.
    Failed {
        /// The page.
        gpa: u64,
        /// Its size.
        level: PageLevel,
        /// What the call reported.
        error: TdxError,
    },
}

impl fmt::Display for AcceptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unaligned { base, len } => {
                write!(f, "accept: range {base:#x} + {len:#x} is not 4 KiB aligned")
            }
            Self::Overflow { base, len } => {
                write!(f, "accept: range {base:#x} + {len:#x} overflows")
            }
            Self::Unsorted { index } => write!(
                f,
                "accept: range {index} overlaps or precedes the range before it"
            ),
            Self::Vcpu { index, count } => {
                write!(f, "accept: vCPU {index} of {count} does not exist")
            }
            Self::Failed { gpa, level, error } => write!(
                f,
                "accept: {} KiB page at {gpa:#x}: {error}",
                level.size() / 1024
            ),
        }
    }
}

/// A run of equally sized pages in a [`Plan`].
pub type Run = crate::pages::Run<PageLevel>;

/// The runs of pages that accept one range, in address order: at most three (4 KiB head,
/// 2 MiB body, 4 KiB tail), empty ones left out.
pub type Plan = crate::pages::Plan<PageLevel>;

/// Checks a range and returns its end.
fn range_end(base: u64, len: u64) -> Result<u64, AcceptError> {
    if !base.is_multiple_of(PAGE_4K) || !len.is_multiple_of(PAGE_4K) {
        return Err(AcceptError::Unaligned { base, len });
    }
    base.checked_add(len)
        .ok_or(AcceptError::Overflow { base, len })
}

/// Plans the accept of `[base, base + len)`, which must be 4 KiB aligned and not wrap.
pub fn plan(base: u64, len: u64) -> Result<Plan, AcceptError> {
    let end = range_end(base, len)?;
    Ok(crate::pages::plan(
        base,
        end,
        PageLevel::Size4K,
        PageLevel::Size2M,
    ))
}

/// What an accept did, in pages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AcceptStats {
    /// 2 MiB pages accepted.
    pub accepted_2m: u64,
    /// 4 KiB pages accepted.
    pub accepted_4k: u64,
    /// 2 MiB pages that were already accepted.
    pub already_2m: u64,
    /// 4 KiB pages that were already accepted.
    pub already_4k: u64,
    /// 2 MiB pages accepted as 512 × 4 KiB after `PAGE_SIZE_MISMATCH`.
    pub split_2m: u64,
}

impl AcceptStats {
    /// Adds `other` (saturating: these are counters).
    pub fn add(&mut self, other: &AcceptStats) {
        self.accepted_2m = self.accepted_2m.saturating_add(other.accepted_2m);
        self.accepted_4k = self.accepted_4k.saturating_add(other.accepted_4k);
        self.already_2m = self.already_2m.saturating_add(other.already_2m);
        self.already_4k = self.already_4k.saturating_add(other.already_4k);
        self.split_2m = self.split_2m.saturating_add(other.split_2m);
    }
}

fn accept_4k<T: Tdcall + ?Sized>(
    t: &T,
    gpa: u64,
    stats: &mut AcceptStats,
) -> Result<(), AcceptError> {
    let failed = |error| AcceptError::Failed {
        gpa,
        level: PageLevel::Size4K,
        error,
    };
    match mem_page_accept(t, gpa, PageLevel::Size4K).map_err(failed)? {
        AcceptOutcome::Accepted => stats.accepted_4k = stats.accepted_4k.saturating_add(1),
        AcceptOutcome::AlreadyAccepted { .. } => {
            stats.already_4k = stats.already_4k.saturating_add(1)
        }
        AcceptOutcome::SizeMismatch { status } => {
            return Err(failed(TdxError::Tdcall {
                leaf: leaf::MEM_PAGE_ACCEPT,
                status,
            }))
        }
    }
    Ok(())
}

fn accept_2m<T: Tdcall + ?Sized>(
    t: &T,
    gpa: u64,
    stats: &mut AcceptStats,
) -> Result<(), AcceptError> {
    let outcome =
        mem_page_accept(t, gpa, PageLevel::Size2M).map_err(|error| AcceptError::Failed {
            gpa,
            level: PageLevel::Size2M,
            error,
        })?;
    match outcome {
        AcceptOutcome::Accepted => stats.accepted_2m = stats.accepted_2m.saturating_add(1),
        AcceptOutcome::AlreadyAccepted { .. } => {
            stats.already_2m = stats.already_2m.saturating_add(1)
        }
        AcceptOutcome::SizeMismatch { .. } => {
            stats.split_2m = stats.split_2m.saturating_add(1);
            let mut page = gpa;
            let end = gpa.checked_add(PAGE_2M).ok_or(AcceptError::Overflow {
                base: gpa,
                len: PAGE_2M,
            })?;
            while page < end {
                accept_4k(t, page, stats)?;
                page = page.saturating_add(PAGE_4K);
            }
        }
    }
    Ok(())
}

/// Accepts `[base, base + len)` (4 KiB aligned) following [`plan`]. Stops at the first page
/// that fails, naming it.
pub fn accept_range<T: Tdcall + ?Sized>(
    t: &T,
    base: u64,
    len: u64,
) -> Result<AcceptStats, AcceptError> {
    let mut stats = AcceptStats::default();
    for run in plan(base, len)? {
        let size = run.size.size();
        for i in 0..run.pages {
            let gpa = i
                .checked_mul(size)
                .and_then(|o| run.base.checked_add(o))
                .ok_or(AcceptError::Overflow { base, len })?;
            match run.size {
                PageLevel::Size2M => accept_2m(t, gpa, &mut stats)?,
                PageLevel::Size4K => accept_4k(t, gpa, &mut stats)?,
            }
        }
    }
    Ok(stats)
}

/// Accepts one vCPU's share (`(base, len)` ranges, e.g. from [`share_of`] or one element of
/// [`share`]). Stops at the first failure.
pub fn accept_share<T: Tdcall + ?Sized>(
    t: &T,
    share: impl IntoIterator<Item = (u64, u64)>,
) -> Result<AcceptStats, AcceptError> {
    let mut stats = AcceptStats::default();
    for (base, len) in share {
        stats.add(&accept_range(t, base, len)?);
    }
    Ok(stats)
}

/// Checks the ranges (4 KiB aligned, no wrap, sorted, not overlapping) and returns their total
/// length.
fn total_len(ranges: &[(u64, u64)]) -> Result<u64, AcceptError> {
    let mut total: u64 = 0;
    let mut prev_end: u64 = 0;
    for (index, &(base, len)) in ranges.iter().enumerate() {
        let end = range_end(base, len)?;
        if index > 0 && base < prev_end {
            return Err(AcceptError::Unsorted { index });
        }
        prev_end = end;
        total = total
            .checked_add(len)
            .ok_or(AcceptError::Overflow { base, len })?;
    }
    Ok(total)
}

/// A cut point: an address inside (or at either end of) range `range`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cut {
    range: usize,
    addr: u64,
}

/// Cut `k` of `n` over ranges of total length `total` (> 0): the point `k * total / n` bytes
/// into the concatenation, moved to the nearest 2 MiB boundary or range end within its range.
fn cut(ranges: &[(u64, u64)], total: u64, n: usize, k: usize) -> Cut {
    // k <= n, so the quotient is <= total and fits in u64.
    let target = u128::from(total)
        .saturating_mul(k as u128)
        .checked_div(n as u128)
        .and_then(|t| u64::try_from(t).ok())
        .unwrap_or(total);
    let mut before: u64 = 0;
    let mut last = Cut { range: 0, addr: 0 };
    for (j, &(base, len)) in ranges.iter().enumerate() {
        if len == 0 {
            continue;
        }
        let end = base.saturating_add(len);
        let after = before.saturating_add(len);
        if target < after {
            let p = base.saturating_add(target.saturating_sub(before));
            let lo = down_2m(p).max(base);
            let hi = up_2m(p).map_or(end, |a| a.min(end));
            let addr = if p.saturating_sub(lo) <= hi.saturating_sub(p) {
                lo
            } else {
                hi
            };
            return Cut { range: j, addr };
        }
        before = after;
        last = Cut {
            range: j,
            addr: end,
        };
    }
    last
}

/// One vCPU's share of the ranges: `(base, len)` pieces in address order.
#[derive(Debug, Clone)]
pub struct ShareIter<'a> {
    ranges: &'a [(u64, u64)],
    from: Cut,
    to: Cut,
    next: usize,
}

impl Iterator for ShareIter<'_> {
    type Item = (u64, u64);

    fn next(&mut self) -> Option<(u64, u64)> {
        while self.next <= self.to.range {
            let j = self.next;
            let &(base, len) = self.ranges.get(j)?;
            self.next = j.saturating_add(1);
            let lo = if j == self.from.range {
                self.from.addr
            } else {
                base
            };
            let hi = if j == self.to.range {
                self.to.addr
            } else {
                base.saturating_add(len)
            };
            if hi > lo {
                return Some((lo, hi.saturating_sub(lo)));
            }
        }
        None
    }
}

/// The share of vCPU `index` (of `n`) of `ranges` (sorted, not overlapping, 4 KiB aligned
/// `(base, len)` pairs), without allocating: what an AP computes for itself.
pub fn share_of(
    ranges: &[(u64, u64)],
    n: usize,
    index: usize,
) -> Result<ShareIter<'_>, AcceptError> {
    if index >= n {
        return Err(AcceptError::Vcpu { index, count: n });
    }
    let total = total_len(ranges)?;
    if total == 0 {
        let none = Cut { range: 0, addr: 0 };
        return Ok(ShareIter {
            ranges,
            from: none,
            to: none,
            next: 1,
        });
    }
    let from = cut(ranges, total, n, index);
    let to = cut(ranges, total, n, index.saturating_add(1));
    Ok(ShareIter {
        ranges,
        from,
        to,
        next: from.range,
    })
}

/// Every vCPU's share of `ranges` across `n` vCPUs (see [`share_of`]): element `i` is vCPU
/// `i`'s list of `(base, len)`.
pub fn share(ranges: &[(u64, u64)], n: usize) -> Result<Vec<Vec<(u64, u64)>>, AcceptError> {
    if n == 0 {
        return Err(AcceptError::Vcpu { index: 0, count: 0 });
    }
    (0..n)
        .map(|i| share_of(ranges, n, i).map(Iterator::collect))
        .collect()
}

#[cfg(test)]
mod tests;
