//! How a range of private memory splits into pages for acceptance (TDX's TDG.MEM.PAGE.ACCEPT,
//! SNP's PVALIDATE): 4 KiB pages up to the first 2 MiB boundary, 2 MiB pages while whole ones
//! fit, 4 KiB pages after. Each TEE's module turns the three runs into its own page sizes.

/// 4 KiB.
pub const PAGE_4K: u64 = 0x1000;
/// 2 MiB.
pub const PAGE_2M: u64 = 0x20_0000;

/// `a` rounded down to 2 MiB.
pub const fn down_2m(a: u64) -> u64 {
    a & !(PAGE_2M - 1)
}

/// `a` rounded up to 2 MiB, if that fits in 64 bits.
pub fn up_2m(a: u64) -> Option<u64> {
    a.checked_add(PAGE_2M - 1).map(down_2m)
}

/// The three runs of `[base, end)` (`base <= end`): `(from, to, is_2m)` for the 4 KiB head, the
/// 2 MiB body and the 4 KiB tail, in address order; a run may be empty (`from == to`). Exact for
/// 4 KiB-aligned bounds; rounding `base` up cannot overflow (the head then ends at `end`).
pub fn runs(base: u64, end: u64) -> [(u64, u64, bool); 3] {
    let end = end.max(base);
    let head_end = up_2m(base).map_or(end, |a| a.min(end));
    let body_end = down_2m(end).max(head_end);
    [
        (base, head_end, false),
        (head_end, body_end, true),
        (body_end, end, false),
    ]
}

/// A run of equally sized pages of size `S` (each TEE's own page-size type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run<S> {
    /// The first page.
    pub base: u64,
    /// How many pages.
    pub pages: u64,
    /// Their size.
    pub size: S,
}

/// The runs of one range, in address order: at most three (4 KiB head, 2 MiB body, 4 KiB
/// tail), empty ones left out.
#[derive(Debug, Clone)]
pub struct Plan<S> {
    runs: [Run<S>; 3],
    next: usize,
}

impl<S: Copy> Iterator for Plan<S> {
    type Item = Run<S>;

    fn next(&mut self) -> Option<Run<S>> {
        while let Some(run) = self.runs.get(self.next).copied() {
            self.next = self.next.saturating_add(1);
            if run.pages != 0 {
                return Some(run);
            }
        }
        None
    }
}

/// The [`runs`] of `[base, end)` as a [`Plan`] in the page sizes `small` (4 KiB) and `large`
/// (2 MiB). Exact for 4 KiB-aligned bounds.
pub fn plan<S: Copy>(base: u64, end: u64, small: S, large: S) -> Plan<S> {
    Plan {
        runs: runs(base, end).map(|(from, to, is_2m)| Run {
            base: from,
            // to >= from by construction; the division is exact for aligned bounds.
            pages: to.saturating_sub(from) / if is_2m { PAGE_2M } else { PAGE_4K },
            size: if is_2m { large } else { small },
        }),
        next: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn head_body_tail() {
        const M: u64 = PAGE_2M;
        assert_eq!(
            runs(0x1000, 3 * M + 0x3000),
            [
                (0x1000, M, false),
                (M, 3 * M, true),
                (3 * M, 3 * M + 0x3000, false)
            ]
        );
        assert_eq!(
            runs(M, 2 * M),
            [(M, M, false), (M, 2 * M, true), (2 * M, 2 * M, false)]
        );
        // Inside one 2 MiB page: all head.
        assert_eq!(
            runs(0x1000, 0x5000),
            [
                (0x1000, 0x5000, false),
                (0x5000, 0x5000, true),
                (0x5000, 0x5000, false)
            ]
        );
        // Near the top of the address space.
        let top = !(PAGE_4K - 1);
        assert_eq!(runs(top - 0x1000, top)[0], (top - 0x1000, top, false));
    }

    proptest! {
        #[test]
        fn the_runs_tile_the_range_with_aligned_2m_pages(
            base in (0u64..(1 << 40)).prop_map(|b| b & !(PAGE_4K - 1)),
            len in (0u64..(1 << 26)).prop_map(|l| l & !(PAGE_4K - 1)),
        ) {
            let r = runs(base, base + len);
            prop_assert_eq!(r[0].0, base);
            prop_assert_eq!(r[0].1, r[1].0);
            prop_assert_eq!(r[1].1, r[2].0);
            prop_assert_eq!(r[2].1, base + len);
            prop_assert!(
                r[1].0 == r[1].1 || (r[1].0.is_multiple_of(PAGE_2M) && r[1].1.is_multiple_of(PAGE_2M))
            );
            // No 2 MiB page fits in the head or the tail.
            prop_assert!(r[0].1 - r[0].0 < PAGE_2M && r[2].1 - r[2].0 < PAGE_2M);
        }
    }
}
