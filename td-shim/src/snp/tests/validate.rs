//! Validation planning and execution: runs, exclusions, every PVALIDATE outcome, both PSC
//! channels, the cache-eviction touch.

extern crate std;

use super::super::cpu::{pvalidate_status, PageSize, PvalidateResult, PAGE_2M, PAGE_4K};
use super::super::ghcb::{Ghcb, Session};
use super::super::model::{Call, Inject, Model};
use super::super::msr_protocol;
use super::super::psc::{PscError, MAX_ENTRIES};
use super::super::validate::*;
use super::{ready, GHCB_GPA, MIB};
use proptest::prelude::*;
use std::vec;
use std::vec::Vec;

fn runs(base: u64, len: u64) -> Vec<(u64, u64, u64)> {
    plan(base, len)
        .unwrap()
        .map(|r| (r.base, r.pages, r.size.bytes()))
        .collect()
}

fn validate(
    m: &Model,
    base: u64,
    len: u64,
    pre: &[(u64, u64)],
    evict: bool,
) -> Result<ValidateStats, ValidateError> {
    let mut g = Ghcb::new();
    let mut s = Session::new(m, &mut g, GHCB_GPA).unwrap();
    validate_ram(m, &mut s, base, len, pre, evict)
}

fn pvalidates(m: &Model) -> Vec<(u64, PageSize)> {
    m.calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Pvalidate { va, size, .. } => Some((va, size)),
            _ => None,
        })
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
    assert_eq!(runs(0x3000, 0x5000), vec![(0x3000, 5, PAGE_4K)]);
    assert_eq!(runs(MIB, MIB), vec![(MIB, 256, PAGE_4K)]);
    assert!(runs(5 * MIB, 0).is_empty());
    assert!(matches!(
        plan(0x800, 0x1000),
        Err(ValidateError::Unaligned { .. })
    ));
    assert!(matches!(
        plan((1 << 52) - 0x1000, 0x2000),
        Err(ValidateError::Overflow { .. })
    ));
    assert!(matches!(
        plan(u64::MAX - 0xFFF, 0x2000),
        Err(ValidateError::Unaligned { .. } | ValidateError::Overflow { .. })
    ));
}

#[test]
fn pieces_leave_out_the_prevalidated_ranges() {
    // Unsorted, overlapping, partly outside the RAM range.
    let pre = [
        (0x9000, 0x2000),
        (0x0, 0x2000),
        (0x8000, 0x2000),
        (0x10_0000, 0x1000),
    ];
    let (p, skipped) = pieces(0x1000, 0x10000, &pre).unwrap();
    assert_eq!(p, vec![(0x2000, 0x6000), (0xB000, 0x6000)]);
    assert_eq!(skipped, 1 + 3);
    let (p, skipped) = pieces(0, 0x4000, &[]).unwrap();
    assert_eq!((p, skipped), (vec![(0, 0x4000)], 0));
    let (p, skipped) = pieces(0, 0x4000, &[(0, 0x4000)]).unwrap();
    assert_eq!((p, skipped), (vec![], 4));
    assert!(matches!(
        pieces(0, 0x4000, &[(0x100, 0x1000)]),
        Err(ValidateError::Unaligned { .. })
    ));
}

#[test]
fn ram_overlapping_the_rom_is_refused() {
    assert_eq!(
        pieces(0xFE00_0000, 0x100_1000, &[]),
        Err(ValidateError::OverlapsFirmware {
            base: 0xFE00_0000,
            len: 0x100_1000
        })
    );
    assert!(pieces(0xFFFF_F000, 0x1000, &[]).is_err());
    assert!(pieces(0xF000_0000, 0x2_0000_0000, &[]).is_err());
    // Up to the ROM, and from 4 GiB on, are fine.
    assert!(pieces(0xFE00_0000, 0x100_0000, &[]).is_ok());
    assert!(pieces(0x1_0000_0000, 0x1000, &[]).is_ok());
    // Even if the overlap is declared prevalidated.
    assert!(pieces(0xFE00_0000, 0x200_0000, &[(0xFF00_0000, 0x100_0000)]).is_err());
}

#[test]
fn fresh_ram_is_changed_then_validated() {
    let m = ready();
    let stats = validate(&m, 0x1000, 6 * MIB, &[], false).unwrap();
    assert_eq!(
        stats,
        ValidateStats {
            validated_2m: 2,
            validated_4k: 512,
            split_2m: 0,
            skipped_4k: 0,
            // 511 head pages: 253 + 253 + 5; two 2 MiB pages; one tail page.
            psc_batches: 5,
        }
    );
    assert_eq!(stats.pages_4k(), 6 * MIB / PAGE_4K);
    assert_eq!(m.validated_pages(), 6 * MIB / PAGE_4K);
    assert!(!m.is_private(0) && m.is_validated(0x1000) && m.is_validated(6 * MIB));
    // Every batch's PSC comes before its PVALIDATEs.
    let calls = m.calls();
    assert!(matches!(calls[0], Call::Ghcb { .. }));
    assert!(matches!(calls[1], Call::Pvalidate { va: 0x1000, .. }));
    assert!(matches!(calls[253], Call::Pvalidate { .. }));
    assert!(matches!(calls[254], Call::Ghcb { .. }));
    let pv = pvalidates(&m);
    assert_eq!(pv[511], (2 * MIB, PageSize::Size2M));
    assert_eq!(pv[513], (6 * MIB, PageSize::Size4K));
    assert!(m.touched().is_empty());
    m.assert_clean();
}

#[test]
fn prevalidated_pages_are_skipped_and_counted() {
    let m = ready();
    m.pre_validate(0x80_1000, 0x3000);
    let stats = validate(
        &m,
        8 * MIB,
        2 * MIB,
        &[(0x80_1000, 0x3000), (GHCB_GPA, 0x1000)],
        false,
    );
    // The GHCB itself (shared) and the three launch-validated pages are left alone.
    let stats = stats.unwrap();
    assert_eq!(stats.skipped_4k, 4);
    assert_eq!(stats.validated_4k, 512 - 4);
    assert!(!pvalidates(&m)
        .iter()
        .any(|&(va, _)| (GHCB_GPA..0x80_4000).contains(&va)));
    assert!(!m.is_private(GHCB_GPA));
    m.assert_clean();
}

#[test]
fn a_size_mismatch_splits_the_2m_page() {
    let m = ready();
    m.map_small(4 * MIB, 2 * MIB);
    let stats = validate(&m, 2 * MIB, 6 * MIB, &[], false).unwrap();
    assert_eq!(stats.validated_2m, 2);
    assert_eq!(stats.split_2m, 1);
    assert_eq!(stats.validated_4k, 512);
    assert_eq!(m.validated_pages(), 6 * MIB / PAGE_4K);
    let pv = pvalidates(&m);
    assert_eq!(pv[1], (4 * MIB, PageSize::Size2M));
    assert_eq!(pv[2], (4 * MIB, PageSize::Size4K));
    assert_eq!(pv[513], (6 * MIB - PAGE_4K, PageSize::Size4K));
    assert_eq!(pv[514], (6 * MIB, PageSize::Size2M));
    m.assert_clean();
}

#[test]
fn pvalidate_failures_name_the_page() {
    let fail = |eax| PvalidateResult { eax, cf: false };
    // FAIL_INPUT on a 2 MiB page; size mismatch and an unknown code on 4 KiB pages.
    let cases = [
        (
            0,
            4 * MIB,
            fail(pvalidate_status::FAIL_INPUT),
            0,
            PageSize::Size2M,
        ),
        (
            1,
            0x5000,
            fail(pvalidate_status::FAIL_SIZEMISMATCH),
            0x6000,
            PageSize::Size4K,
        ),
        (0, 0x5000, fail(3), 0x5000, PageSize::Size4K),
    ];
    for (skip, len, result, va, size) in cases {
        let m = ready();
        // Let `skip` PVALIDATEs through, then inject.
        for _ in 0..skip {
            m.inject(Inject::Pvalidate(PvalidateResult::CHANGED));
        }
        m.inject(Inject::Pvalidate(result));
        let base = if size == PageSize::Size2M { 0 } else { 0x5000 };
        assert_eq!(
            validate(&m, base, len, &[], false),
            Err(ValidateError::Pvalidate { va, size, result })
        );
        m.assert_clean();
    }
}

#[test]
fn a_size_mismatch_inside_a_split_is_fatal() {
    let m = ready();
    m.inject(Inject::Pvalidate(PvalidateResult {
        eax: pvalidate_status::FAIL_SIZEMISMATCH,
        cf: false,
    }));
    m.inject(Inject::Pvalidate(PvalidateResult {
        eax: pvalidate_status::FAIL_SIZEMISMATCH,
        cf: false,
    }));
    assert_eq!(
        validate(&m, 0, 2 * MIB, &[], false),
        Err(ValidateError::Pvalidate {
            va: 0,
            size: PageSize::Size4K,
            result: PvalidateResult {
                eax: pvalidate_status::FAIL_SIZEMISMATCH,
                cf: false
            }
        })
    );
    m.assert_clean();
}

#[test]
fn cf_1_is_fatal() {
    // Injected, on a 4 KiB and on a 2 MiB page.
    for (base, len, size) in [
        (0x1000, 0x1000, PageSize::Size4K),
        (0, 2 * MIB, PageSize::Size2M),
    ] {
        let m = ready();
        m.inject(Inject::Pvalidate(PvalidateResult { eax: 0, cf: true }));
        assert_eq!(
            validate(&m, base, len, &[], false),
            Err(ValidateError::AlreadyValidated { va: base, size })
        );
        m.assert_clean();
    }
    // For real: the hypervisor acknowledges a PSC it did not perform on pages validated at
    // launch that the firmware was not told about.
    let m = ready();
    m.pre_validate(0x10_0000, 0x2000);
    m.inject(Inject::PscLie);
    assert_eq!(
        validate(&m, 0x10_0000, 0x2000, &[], false),
        Err(ValidateError::AlreadyValidated {
            va: 0x10_0000,
            size: PageSize::Size4K
        })
    );
    m.assert_clean();
    // The same lie about shared pages: PVALIDATE fails (the model records the RMP fault).
    let m = ready();
    m.inject(Inject::PscLie);
    assert!(matches!(
        validate(&m, 0x10_0000, 0x2000, &[], false),
        Err(ValidateError::Pvalidate { va: 0x10_0000, .. })
    ));
    assert_eq!(m.violations().len(), 1);
}

#[test]
fn psc_failures_stop_the_validation() {
    let m = ready();
    m.inject(Inject::PscError(7));
    assert!(matches!(
        validate(&m, 0x4000, 0x2000, &[], false),
        Err(ValidateError::Psc {
            gpa: 0x4000,
            error: PscError::Hypervisor { code: 7, .. }
        })
    ));
    assert!(pvalidates(&m).is_empty());
    m.assert_clean();
}

#[test]
fn validated_pages_are_touched_when_the_cpu_needs_it() {
    let m = ready();
    m.map_small(2 * MIB, 2 * MIB);
    validate(&m, 0x1F_F000, 4 * MIB + 0x2000, &[], true).unwrap();
    let t = m.touched();
    assert_eq!(t[0], (0x1F_F000, 1));
    assert_eq!(t[1], (2 * MIB, 1), "the split 2 MiB page, page by page");
    assert_eq!(t[513], (4 * MIB, 512));
    assert_eq!(t.last(), Some(&(6 * MIB, 1)));
    let touched: u64 = t.iter().map(|&(_, n)| n).sum();
    assert_eq!(touched, m.validated_pages());
    m.assert_clean();
}

#[test]
fn the_msr_protocol_validates_page_by_page() {
    let m = Model::new();
    m.add_ram(0, 1 << 30);
    msr_protocol::negotiate(&m).unwrap();
    let stats = validate_ram(
        &m,
        &mut MsrPsc(&m),
        2 * MIB - 0x1000,
        2 * MIB + 0x2000,
        &[],
        false,
    )
    .unwrap();
    assert_eq!((stats.validated_2m, stats.validated_4k), (1, 2));
    let msr_requests = m
        .calls()
        .iter()
        .filter(|c| matches!(c, Call::Msr { .. }))
        .count();
    assert_eq!(msr_requests, 1 + 512 + 2);
    assert_eq!(m.validated_pages(), 514);
    m.assert_clean();

    m.inject(Inject::MsrResponse(0x3_0000_0015));
    assert_eq!(
        validate_ram(&m, &mut MsrPsc(&m), 64 * MIB, 0x1000, &[], false),
        Err(ValidateError::MsrPsc {
            gpa: 64 * MIB,
            error: msr_protocol::MsrProtocolError::PageStateChange {
                gpa: 64 * MIB,
                op: super::super::psc::PageOp::Private,
                error: 3
            }
        })
    );
}

#[test]
fn large_ranges_use_full_batches() {
    let m = ready();
    let stats = validate(&m, 0, 600 * PAGE_2M, &[], false).unwrap();
    assert_eq!(stats.validated_2m, 600);
    assert_eq!(stats.psc_batches, 600u64.div_ceil(MAX_ENTRIES as u64));
    m.assert_clean();
}

#[test]
fn a_page_is_shared_after_its_validation_is_rescinded() {
    let m = Model::new();
    m.add_ram(0, 1 << 30);
    msr_protocol::negotiate(&m).unwrap();
    m.pre_validate(GHCB_GPA, PAGE_4K);
    make_shared_4k(&m, GHCB_GPA).unwrap();
    assert!(!m.is_private(GHCB_GPA));
    // Rescind, then the change: in that order.
    let calls = m.calls();
    assert!(matches!(
        calls[1],
        Call::Pvalidate {
            va: GHCB_GPA,
            validate: false,
            ..
        }
    ));
    assert!(matches!(calls[2], Call::Msr { request, .. } if request == 0x0020_0000_0080_0014));
    // And back to private, validated again.
    validate_ram(&m, &mut MsrPsc(&m), GHCB_GPA, PAGE_4K, &[], false).unwrap();
    assert!(m.is_validated(GHCB_GPA));
    m.assert_clean();

    // Not validated (CF = 1), a failed rescind, a refused change, an unaligned page.
    m.inject(Inject::Pvalidate(PvalidateResult { eax: 0, cf: true }));
    assert_eq!(
        make_shared_4k(&m, GHCB_GPA),
        Err(ValidateError::AlreadyValidated {
            va: GHCB_GPA,
            size: PageSize::Size4K
        })
    );
    let input = PvalidateResult {
        eax: pvalidate_status::FAIL_INPUT,
        cf: false,
    };
    m.inject(Inject::Pvalidate(input));
    assert!(matches!(
        make_shared_4k(&m, GHCB_GPA),
        Err(ValidateError::Pvalidate { result, .. }) if result == input
    ));
    m.inject(Inject::MsrResponse(0x9_0000_0015));
    assert!(matches!(
        make_shared_4k(&m, GHCB_GPA),
        Err(ValidateError::MsrPsc { gpa: GHCB_GPA, .. })
    ));
    assert!(matches!(
        make_shared_4k(&m, GHCB_GPA + 8),
        Err(ValidateError::Unaligned { .. })
    ));
    m.assert_clean();
}

proptest! {
    #[test]
    fn pieces_and_holes_tile_the_range(
        base in 0u64..64, len in 0u64..64,
        holes in proptest::collection::vec((0u64..80, 0u64..16), 0..6),
    ) {
        let (base, len) = (base * PAGE_4K, len * PAGE_4K);
        let holes: Vec<(u64, u64)> = holes.iter().map(|&(b, l)| (b * PAGE_4K, l * PAGE_4K)).collect();
        let (p, skipped) = pieces(base, len, &holes).unwrap();
        let covered: u64 = p.iter().map(|&(_, l)| l / PAGE_4K).sum();
        prop_assert_eq!(covered + skipped, len / PAGE_4K);
        for w in p.windows(2) {
            prop_assert!(w[0].0 + w[0].1 < w[1].0, "pieces are separated by holes");
        }
        for &(b, l) in &p {
            prop_assert!(l > 0 && b >= base && b + l <= base + len);
            for &(hb, hl) in holes.iter().filter(|h| h.1 > 0) {
                prop_assert!(b + l <= hb || hb + hl <= b);
            }
        }
    }
}
