//! Planning and sharing (examples and properties) and execution against the model.

extern crate std;

use super::*;
use crate::tdx::calls::model::{Inject, Model};
use crate::tdx::calls::{status, TdxError};
use proptest::prelude::*;
use std::vec;
use std::vec::Vec;

const MIB: u64 = 0x10_0000;
const GIB: u64 = 0x4000_0000;

fn runs(base: u64, len: u64) -> Vec<(u64, u64, u64)> {
    plan(base, len)
        .unwrap()
        .map(|r| (r.base, r.pages, r.size.size()))
        .collect()
}

#[test]
fn plan_uses_2m_pages_where_aligned() {
    assert_eq!(runs(0, 4 * MIB), vec![(0, 2, PAGE_2M)]);
    assert_eq!(
        runs(0x1000, 4 * MIB),
        vec![
            (0x1000, 511, PAGE_4K),
            (2 * MIB, 1, PAGE_2M),
            (4 * MIB, 1, PAGE_4K)
        ]
    );
    // Within one 2 MiB page: 4 KiB only.
    assert_eq!(runs(0x3000, 0x5000), vec![(0x3000, 5, PAGE_4K)]);
    // Ends exactly on a boundary after a head.
    assert_eq!(runs(MIB, MIB), vec![(MIB, 256, PAGE_4K)]);
    // The top of the address space.
    assert_eq!(
        runs(u64::MAX - 4 * MIB + 1 - 0x1000, 4 * MIB),
        vec![
            (u64::MAX - 4 * MIB + 1 - 0x1000, 1, PAGE_4K),
            (u64::MAX - 4 * MIB + 1, 1, PAGE_2M),
            (u64::MAX - 2 * MIB + 1, 511, PAGE_4K)
        ]
    );
    assert!(runs(5 * MIB, 0).is_empty());
}

#[test]
fn plan_refuses_unaligned_or_wrapping_ranges() {
    assert_eq!(
        plan(0x800, 0x1000).unwrap_err(),
        AcceptError::Unaligned {
            base: 0x800,
            len: 0x1000
        }
    );
    assert!(matches!(plan(0, 0x10), Err(AcceptError::Unaligned { .. })));
    assert!(matches!(
        plan(u64::MAX - 0xFFF, 0x2000),
        Err(AcceptError::Overflow { .. })
    ));
}

#[test]
fn accept_range_on_fresh_ram() {
    let m = Model::new();
    m.add_ram(0, 16 * MIB);
    let stats = accept_range(&m, 0x1000, 6 * MIB).unwrap();
    assert_eq!(
        stats,
        AcceptStats {
            accepted_2m: 2,
            accepted_4k: 511 + 1,
            ..AcceptStats::default()
        }
    );
    assert_eq!(m.accepted_pages(), 6 * MIB / PAGE_4K);
    assert!(!m.is_accepted(0) && m.is_accepted(0x1000) && m.is_accepted(6 * MIB));
    assert!(!m.is_accepted(6 * MIB + 0x1000));
    // Order: the 4 KiB head, then the 2 MiB pages, then the tail.
    let rcx: Vec<u64> = m.calls().iter().map(|c| c.input.rcx).collect();
    assert_eq!(rcx[0], 0x1000);
    assert_eq!(rcx[510], 0x1FF000);
    assert_eq!(&rcx[511..513], &[(2 * MIB) | 1, (4 * MIB) | 1]);
    assert_eq!(rcx[513], 6 * MIB);
    assert_eq!(rcx.len(), 514);
    m.assert_clean();
}

#[test]
fn size_mismatch_falls_back_to_4k_pages() {
    let m = Model::new();
    m.add_ram(0, 8 * MIB);
    m.map_small(2 * MIB, 2 * MIB);
    let stats = accept_range(&m, 0, 6 * MIB).unwrap();
    assert_eq!(
        stats,
        AcceptStats {
            accepted_2m: 2,
            accepted_4k: 512,
            split_2m: 1,
            ..AcceptStats::default()
        }
    );
    let c = m.calls();
    assert_eq!(c.len(), 1 + 1 + 512 + 1);
    assert_eq!(c[1].input.rcx, (2 * MIB) | 1);
    assert_eq!(c[1].status, status::PAGE_SIZE_MISMATCH | 1);
    assert_eq!(c[2].input.rcx, 2 * MIB);
    assert_eq!(c[513].input.rcx, 4 * MIB - PAGE_4K);
    assert_eq!(c[514].input.rcx, (4 * MIB) | 1);
    assert_eq!(m.accepted_pages(), 6 * MIB / PAGE_4K);
    m.assert_clean();
}

#[test]
fn already_accepted_pages_count_as_done() {
    let m = Model::new();
    m.add_ram(0, 8 * MIB);
    m.pre_accept_2m(2 * MIB);
    m.pre_accept_4k(0x3000);
    // A 4 KiB page accepted inside a 2 MiB page: the 2 MiB accept mismatches, then 511 new.
    m.pre_accept_4k(4 * MIB + 0x5000);
    let stats = accept_range(&m, 0x1000, 6 * MIB - 0x1000).unwrap();
    assert_eq!(
        stats,
        AcceptStats {
            accepted_2m: 0,
            accepted_4k: 510 + 511,
            already_2m: 1,
            already_4k: 2,
            split_2m: 1,
        }
    );
    assert_eq!(m.accepted_pages(), 6 * MIB / PAGE_4K - 1);
    m.assert_clean();
    // Accepting it all again: everything is already there, nothing fails.
    let again = accept_range(&m, 0x1000, 6 * MIB - 0x1000).unwrap();
    assert_eq!(again.accepted_2m + again.accepted_4k, 0);
    m.assert_clean();
}

#[test]
fn busy_is_retried_inside_the_range() {
    let m = Model::new();
    m.add_ram(0, 4 * MIB);
    m.inject(
        leaf::MEM_PAGE_ACCEPT,
        None,
        Inject::Status(status::OPERAND_BUSY | status::OPERAND_RCX),
    );
    let stats = accept_range(&m, 0, 4 * MIB).unwrap();
    assert_eq!(stats.accepted_2m, 2);
    assert_eq!(m.calls().len(), 3);
    m.assert_clean();
}

#[test]
fn failures_name_the_page() {
    let m = Model::new();
    m.add_ram(0, 4 * MIB);
    let s = status::OPERAND_INVALID | status::OPERAND_RCX;
    // The head's first 4 KiB page succeeds, the second fails.
    m.inject(leaf::MEM_PAGE_ACCEPT, None, Inject::Status(status::SUCCESS));
    m.inject(leaf::MEM_PAGE_ACCEPT, None, Inject::Status(s));
    assert_eq!(
        accept_range(&m, MIB, 2 * MIB),
        Err(AcceptError::Failed {
            gpa: MIB + PAGE_4K,
            level: PageLevel::Size4K,
            error: TdxError::Tdcall {
                leaf: leaf::MEM_PAGE_ACCEPT,
                status: s
            }
        })
    );
    assert_eq!(m.calls().len(), 2, "stops at the first failure");
    m.assert_clean();
    // Size mismatch on a 4 KiB accept is an error, not a fallback.
    let m = Model::new();
    m.add_ram(0, 4 * MIB);
    m.inject(
        leaf::MEM_PAGE_ACCEPT,
        None,
        Inject::Status(status::PAGE_SIZE_MISMATCH),
    );
    assert!(matches!(
        accept_range(&m, 0x1000, 0x1000),
        Err(AcceptError::Failed {
            gpa: 0x1000,
            level: PageLevel::Size4K,
            ..
        })
    ));
    m.assert_clean();
    // Busy forever on a 2 MiB page.
    let m = Model::new();
    m.add_ram(0, 4 * MIB);
    for _ in 0..crate::tdx::calls::BUSY_ATTEMPTS {
        m.inject(
            leaf::MEM_PAGE_ACCEPT,
            None,
            Inject::Status(status::OPERAND_BUSY | 1),
        );
    }
    assert!(matches!(
        accept_range(&m, 2 * MIB, 2 * MIB),
        Err(AcceptError::Failed {
            gpa: 0x20_0000,
            level: PageLevel::Size2M,
            error: TdxError::Busy { .. }
        })
    ));
    m.assert_clean();
    // Outside the RAM the VMM added: the model notes it and fails the call.
    let m = Model::new();
    m.add_ram(0, 2 * MIB);
    assert!(accept_range(&m, 2 * MIB, 2 * MIB).is_err());
    assert_eq!(m.violations().len(), 1);
}

#[test]
fn accept_error_messages_name_the_page() {
    let e = AcceptError::Failed {
        gpa: 0x20_0000,
        level: PageLevel::Size2M,
        error: TdxError::Tdcall {
            leaf: 6,
            status: status::OPERAND_INVALID | 1,
        },
    };
    let s = std::format!("{e}");
    assert!(
        s.contains("2048 KiB page at 0x200000") && s.contains("TDG.MEM.PAGE.ACCEPT"),
        "{s}"
    );
}

#[test]
fn share_examples() {
    // 64 GiB on 8 vCPUs: 8 GiB each, cut at 2 MiB boundaries.
    let s = share(&[(0, 64 * GIB)], 8).unwrap();
    for (i, piece) in s.iter().enumerate() {
        assert_eq!(piece, &vec![(i as u64 * 8 * GIB, 8 * GIB)]);
    }
    // Below and above the 32-bit hole, 3 vCPUs.
    let ranges = [(0, 2 * GIB), (4 * GIB, 4 * GIB)];
    let s = share(&ranges, 3).unwrap();
    assert_eq!(
        s,
        vec![
            vec![(0, 2 * GIB)],
            vec![(4 * GIB, 2 * GIB)],
            vec![(6 * GIB, 2 * GIB)]
        ]
    );
    // One vCPU: the ranges themselves, empty ones left out.
    let ranges = [(0x1000, 0x3000), (MIB, 0), (8 * MIB, 5 * MIB)];
    assert_eq!(
        share(&ranges, 1).unwrap(),
        vec![vec![(0x1000, 0x3000), (8 * MIB, 5 * MIB)]]
    );
    // More vCPUs than work: some get nothing, nobody gets a split 2 MiB page.
    let s = share(&[(0, 4 * MIB)], 8).unwrap();
    let sizes: Vec<u64> = s.iter().map(|p| p.iter().map(|r| r.1).sum()).collect();
    assert_eq!(sizes.iter().sum::<u64>(), 4 * MIB);
    assert!(sizes.iter().all(|&x| x.is_multiple_of(PAGE_2M)));
    // Nothing to do.
    assert_eq!(share(&[], 4).unwrap(), vec![Vec::new(); 4]);
    assert_eq!(share(&[(MIB, 0)], 2).unwrap(), vec![Vec::new(); 2]);
}

#[test]
fn share_refuses_bad_input() {
    assert_eq!(
        share(&[(0, MIB)], 0),
        Err(AcceptError::Vcpu { index: 0, count: 0 })
    );
    assert!(matches!(
        share_of(&[(0, MIB)], 2, 2),
        Err(AcceptError::Vcpu { index: 2, count: 2 })
    ));
    assert_eq!(
        share(&[(2 * MIB, MIB), (0, MIB)], 2),
        Err(AcceptError::Unsorted { index: 1 })
    );
    assert_eq!(
        share(&[(0, 2 * MIB), (MIB, MIB)], 2),
        Err(AcceptError::Unsorted { index: 1 })
    );
    assert!(matches!(
        share(&[(0x10, MIB)], 2),
        Err(AcceptError::Unaligned { .. })
    ));
    assert!(matches!(
        share(&[(0, u64::MAX - 0xFFF), (u64::MAX - 0xFFF, 0x1000)], 2),
        Err(AcceptError::Overflow { .. })
    ));
}

#[test]
fn shares_accepted_one_after_another_cover_everything_once() {
    let m = Model::new();
    let ranges = [
        (0x1000, 3 * MIB),
        (5 * MIB + 0x3000, 9 * MIB),
        (20 * MIB, 7 * MIB),
    ];
    for &(b, l) in &ranges {
        m.add_ram(b, l);
    }
    let whole: u64 = ranges.iter().map(|r| r.1).sum();
    let mut total = AcceptStats::default();
    for i in 0..5 {
        total.add(&accept_share(&m, share_of(&ranges, 5, i).unwrap()).unwrap());
    }
    assert_eq!(
        total.already_2m + total.already_4k,
        0,
        "no page accepted twice"
    );
    assert_eq!(m.accepted_pages(), whole / PAGE_4K);
    // The same number of TDCALLs as one accept of each range: no 2 MiB page was split.
    let calls_shared = m.calls().len();
    let m2 = Model::new();
    for &(b, l) in &ranges {
        m2.add_ram(b, l);
    }
    accept_share(&m2, ranges.iter().copied()).unwrap();
    assert_eq!(calls_shared, m2.calls().len());
    m.assert_clean();
    m2.assert_clean();
}

/// Sorted, non-overlapping, 4 KiB aligned ranges (some empty), up to about 64 GiB in total.
fn arb_ranges() -> impl Strategy<Value = Vec<(u64, u64)>> {
    proptest::collection::vec(
        (0u64..(4 * GIB / PAGE_4K), 0u64..(8 * GIB / PAGE_4K)),
        0..12,
    )
    .prop_map(|gaps| {
        let mut at = 0u64;
        gaps.into_iter()
            .map(|(gap, len)| {
                let base = at + gap * PAGE_4K;
                at = base + len * PAGE_4K;
                (base, len * PAGE_4K)
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn plan_covers_the_range_minimally(base in 0u64..(1 << 40), len in 0u64..(1 << 22)) {
        let (base, len) = (base * PAGE_4K, len * PAGE_4K);
        let mut at = base;
        let mut small = 0;
        let mut count = 0;
        for r in plan(base, len).unwrap() {
            count += 1;
            prop_assert_eq!(r.base, at);
            prop_assert!(r.pages > 0);
            if r.size == PageLevel::Size2M {
                prop_assert_eq!(r.base % PAGE_2M, 0);
            } else {
                // A 4 KiB run never holds a whole aligned 2 MiB page.
                prop_assert!(r.pages < 512);
                small += r.pages;
            }
            at += r.pages * r.size.size();
        }
        prop_assert_eq!(at, base + len);
        prop_assert!(count <= 3);
        prop_assert!(small < 1024);
    }

    #[test]
    fn share_is_exact_aligned_and_balanced(ranges in arb_ranges(), n in 1usize..64) {
        let total: u64 = ranges.iter().map(|r| r.1).sum();
        let shares = share(&ranges, n).unwrap();
        prop_assert_eq!(shares.len(), n);
        // In order, the pieces are the ranges again: nothing lost, nothing twice.
        let flat: Vec<(u64, u64)> = shares.iter().flatten().copied().collect();
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for &(b, l) in &flat {
            prop_assert!(l > 0);
            match merged.last_mut() {
                Some(last) if last.0 + last.1 == b
                    && ranges.iter().any(|r| r.0 <= last.0 && b + l <= r.0 + r.1) => last.1 += l,
                Some(last) => { prop_assert!(last.0 + last.1 <= b); merged.push((b, l)); }
                None => merged.push((b, l)),
            }
        }
        let nonempty: Vec<(u64, u64)> = ranges.iter().copied().filter(|r| r.1 > 0).collect();
        prop_assert_eq!(&merged, &nonempty);
        for (i, piece) in shares.iter().enumerate() {
            let size: u64 = piece.iter().map(|r| r.1).sum();
            let ideal = total / n as u64;
            prop_assert!(size.abs_diff(ideal) <= PAGE_2M + PAGE_4K,
                "vCPU {} has {:#x}, ideal {:#x}", i, size, ideal);
            // Every cut strictly inside a range is 2 MiB aligned.
            for &(b, l) in piece {
                let r = ranges.iter().find(|r| r.0 <= b && b + l <= r.0 + r.1).unwrap();
                if b != r.0 { prop_assert_eq!(b % PAGE_2M, 0); }
                if b + l != r.0 + r.1 { prop_assert_eq!((b + l) % PAGE_2M, 0); }
            }
            // The allocation-free per-vCPU view agrees.
            let mine: Vec<(u64, u64)> = share_of(&ranges, n, i).unwrap().collect();
            prop_assert_eq!(&mine, piece);
        }
    }

    #[test]
    fn accept_range_accepts_exactly_the_range(
        start in 0u64..4096,
        len in 0u64..4096,
        small in proptest::collection::vec(0u64..8, 0..4),
        pre4k in proptest::collection::vec(0u64..4096, 0..8),
        pre2m in proptest::collection::vec(0u64..8, 0..3),
    ) {
        // A 16 MiB window of RAM at 1 GiB.
        let base = GIB + start * PAGE_4K;
        let len = len.min(4096 - start) * PAGE_4K;
        let m = Model::new();
        m.add_ram(GIB, 16 * MIB);
        for r in &small { m.map_small(GIB + r * PAGE_2M, PAGE_2M); }
        for r in &pre2m {
            if !small.contains(r) { m.pre_accept_2m(GIB + r * PAGE_2M); }
        }
        for p in &pre4k {
            if !pre2m.contains(&(p / 512)) || small.contains(&(p / 512)) {
                m.pre_accept_4k(GIB + p * PAGE_4K);
            }
        }
        let before: Vec<bool> = (0..4096).map(|p| m.is_accepted(GIB + p * PAGE_4K)).collect();
        let stats = accept_range(&m, base, len).unwrap();
        for p in 0..4096u64 {
            let gpa = GIB + p * PAGE_4K;
            let inside = gpa >= base && gpa < base + len;
            prop_assert_eq!(m.is_accepted(gpa), inside || before[p as usize], "page {:#x}", gpa);
        }
        let fresh = (0..4096u64)
            .filter(|p| !before[*p as usize] && GIB + p * PAGE_4K >= base && GIB + p * PAGE_4K < base + len)
            .count() as u64;
        prop_assert_eq!(stats.accepted_4k + 512 * stats.accepted_2m, fresh);
        prop_assert!(m.violations().is_empty(), "{:?}", m.violations());
    }
}
