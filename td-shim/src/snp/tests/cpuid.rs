//! The CPUID page: parsing, lookup, Linux's post-processing, the C-bit.

extern crate std;

use super::super::cpu::CpuidResult;
use super::super::cpuid::*;
use super::super::model::Model;
use super::super::msr_protocol;
use super::{cpuid_page, epyc_functions, func, no_hv, ready, with_session};
use proptest::prelude::*;
use std::vec::Vec;

fn epyc() -> CpuidTable {
    CpuidTable::parse(&cpuid_page(&epyc_functions())).unwrap()
}

fn r(eax: u32, ebx: u32, ecx: u32, edx: u32) -> CpuidResult {
    CpuidResult { eax, ebx, ecx, edx }
}

/// A hypervisor answering `answer` for every question, recording them.
fn hv_answering(
    answer: CpuidResult,
    asked: &mut Vec<(u32, u32)>,
) -> impl FnMut(u32, u32) -> Result<CpuidResult, CpuidError> + '_ {
    move |l, s| {
        asked.push((l, s));
        Ok(answer)
    }
}

#[test]
fn the_page_is_parsed_from_its_layout() {
    let t = epyc();
    assert_eq!(t.functions().len(), epyc_functions().len());
    assert_eq!(t.functions()[1], epyc_functions()[1]);
    let mut p = cpuid_page(&[func(0x8000_0008, 0, [1, 2, 3, 4])]);
    // Reserved fields are not looked at.
    p[4] = 0xFF;
    p[16 + 40] = 0xEE;
    let t = CpuidTable::parse(&p).unwrap();
    assert_eq!(t.functions()[0].reserved, 0xEE);
    // Exactly the bytes the entries need are enough.
    assert!(CpuidTable::parse(&p[..16 + 48]).is_ok());
}

#[test]
fn bad_pages_are_refused() {
    let mut p = cpuid_page(&[]);
    assert_eq!(CpuidTable::parse(&p), Err(CpuidError::Count(0)));
    p[..4].copy_from_slice(&65u32.to_le_bytes());
    assert_eq!(CpuidTable::parse(&p), Err(CpuidError::Count(65)));
    p[..4].copy_from_slice(&64u32.to_le_bytes());
    assert!(CpuidTable::parse(&p).is_ok());
    assert_eq!(
        CpuidTable::parse(&p[..3000]),
        Err(CpuidError::Truncated {
            len: 3000,
            need: 16 + 64 * 48
        })
    );
    assert!(matches!(
        CpuidTable::parse(&p[..10]),
        Err(CpuidError::Truncated { need: 16, .. })
    ));
    assert!(CpuidTable::parse(&[]).is_err());
}

#[test]
fn lookup_matches_subleaves_of_indexed_leaves_only() {
    let t = CpuidTable::parse(&cpuid_page(&[
        func(0, 0, [0x20, 0, 0, 0]),
        func(4, 0, [0x40, 0, 0, 0]),
        func(4, 1, [0x41, 0, 0, 0]),
        func(6, 0, [0x60, 0, 0, 0]),
        // Not indexed for Linux, but listed with two subleaves: matched on the subleaf.
        func(0x1C, 0, [0x1C0, 0, 0, 0]),
        func(0x1C, 1, [0x1C1, 0, 0, 0]),
    ]))
    .unwrap();
    let s = CpuState::default();
    let look = |l, sl| t.lookup(l, sl, &s, &mut no_hv).unwrap().eax;
    assert_eq!((look(4, 0), look(4, 1), look(4, 2)), (0x40, 0x41, 0));
    assert_eq!((look(6, 0), look(6, 9)), (0x60, 0x60));
    assert_eq!((look(0x1C, 1), look(0x1C, 2)), (0x1C1, 0));
    assert!(is_indexed(0xB) && is_indexed(0x8000_001D) && !is_indexed(1));
    assert!(t.indexed(0x1C) && !t.indexed(6));
    // Out of the standard range: zeros, not post-processed.
    assert_eq!(look(0x21, 0), 0);
    assert_eq!(
        t.lookup(0x8000_0001, 0, &s, &mut no_hv).unwrap(),
        r(0, 0, 0, 0)
    );
}

#[test]
fn leaf_1_takes_the_apic_id_from_the_hypervisor() {
    let t = epyc();
    let mut asked = Vec::new();
    let hv = r(0xFFFF_FFFF, 0x0700_0000, 0xFFFF_FFFF, 0xFFFF_FFFF);
    let s = CpuState::default();
    let got = t
        .lookup(1, 0, &s, &mut hv_answering(hv, &mut asked))
        .unwrap();
    // EBX 31:24 and EDX bit 9 from the hypervisor, the rest from the page.
    assert_eq!(got, r(0x00A0_0F11, 0x0780_0800, 0x76FA_3203, 0x178B_FBFF));
    assert_eq!(asked, [(1, 0)]);
    let s = CpuState {
        osxsave: true,
        ..CpuState::default()
    };
    let hv = r(0, 0, 0, 0);
    let got = t
        .lookup(1, 0, &s, &mut hv_answering(hv, &mut asked))
        .unwrap();
    assert_eq!(got.ecx, 0x76FA_3203 | 1 << 27);
    assert_eq!(got.edx, 0x178B_FBFF & !(1 << 9));
}

#[test]
fn leaf_7_reports_ospke_from_cr4() {
    let t = epyc();
    let page_ecx = 0x0040_069C | 1 << 4;
    let off = t.lookup(7, 0, &CpuState::default(), &mut no_hv).unwrap();
    assert_eq!(off.ecx, page_ecx & !(1 << 4));
    let on = CpuState {
        pke: true,
        ..CpuState::default()
    };
    assert_eq!(t.lookup(7, 0, &on, &mut no_hv).unwrap().ecx, page_ecx);
}

#[test]
fn leaf_b_takes_the_x2apic_id_from_subleaf_0() {
    let t = epyc();
    let mut asked = Vec::new();
    let hv = r(9, 9, 9, 0x42);
    let s = CpuState::default();
    let got = t
        .lookup(0xB, 1, &s, &mut hv_answering(hv, &mut asked))
        .unwrap();
    assert_eq!(got, r(4, 2, 0x201, 0x42));
    // A subleaf the page lacks: zeros, post-processed (the leaf is in range).
    let got = t
        .lookup(0xB, 7, &s, &mut hv_answering(hv, &mut asked))
        .unwrap();
    assert_eq!(got, r(0, 0, 0, 0x42));
    assert_eq!(asked, [(0xB, 0), (0xB, 0)]);
}

#[test]
fn leaf_d_sizes_are_computed_from_the_page() {
    let t = epyc();
    // CR4.OSXSAVE clear: XCR0 is taken as 1 (x87 only).
    let base = t.lookup(0xD, 0, &CpuState::default(), &mut no_hv).unwrap();
    assert_eq!(base, r(0x7, XSAVE_LEGACY_SIZE, 0x340, 0));
    let avx = CpuState {
        osxsave: true,
        xcr0: 0x7,
        ..CpuState::default()
    };
    assert_eq!(t.lookup(0xD, 0, &avx, &mut no_hv).unwrap().ebx, 0x340);
    // Compacted (subleaf 1): XSAVES is supported (EAX bit 3), so XSS counts too.
    assert_eq!(t.lookup(0xD, 1, &avx, &mut no_hv).unwrap().ebx, 0x340);
    let cet = CpuState {
        xss: 1 << 11,
        ..avx
    };
    assert_eq!(t.lookup(0xD, 1, &cet, &mut no_hv).unwrap().ebx, 0x350);
    // A feature without a size in the page.
    let avx512 = CpuState { xcr0: 0xE7, ..avx };
    assert_eq!(
        t.lookup(0xD, 0, &avx512, &mut no_hv),
        Err(CpuidError::XsaveSize { xfeatures: 0xE7 })
    );
    // Subleaves other than 0 and 1 are the page's.
    assert_eq!(t.lookup(0xD, 2, &avx, &mut no_hv).unwrap().eax, 0x100);
    // Neither XSAVEC nor XSAVES: refused.
    let mut f = epyc_functions();
    f[7].eax = 0x1;
    let t = CpuidTable::parse(&cpuid_page(&f)).unwrap();
    assert_eq!(
        t.lookup(0xD, 1, &avx, &mut no_hv),
        Err(CpuidError::XsaveNotCompacted { eax: 1 })
    );
    // Only the XCR0_IN 1/3, XSS_IN 0 entry is used for subleaf 0: without it, zeros.
    let f: Vec<CpuidFunction> = epyc_functions()
        .into_iter()
        .filter(|f| !(f.eax_in == 0xD && f.ecx_in == 0 && f.xcr0_in == 1))
        .collect();
    let t = CpuidTable::parse(&cpuid_page(&f)).unwrap();
    assert_eq!(
        t.lookup(0xD, 0, &avx, &mut no_hv).unwrap(),
        r(0, 0x340, 0, 0)
    );
}

#[test]
fn the_xsave_size_matches_linuxs_rules() {
    let t = epyc();
    assert_eq!(t.xsave_size(0x3, false), Some(0x240));
    assert_eq!(t.xsave_size(0x7, false), Some(0x340));
    assert_eq!(t.xsave_size(0x7, true), Some(0x340));
    assert_eq!(t.xsave_size(0x7 | 1 << 11, true), Some(0x350));
    assert_eq!(t.xsave_size(1 << 5, true), None);
}

#[test]
fn leaf_8000001e_takes_topology_ids_from_the_hypervisor() {
    let t = epyc();
    let mut asked = Vec::new();
    let hv = r(0x11, 0xFFFF_FF22, 0xFFFF_FF33, 0x44);
    let got = t
        .lookup(
            0x8000_001E,
            0,
            &CpuState::default(),
            &mut hv_answering(hv, &mut asked),
        )
        .unwrap();
    assert_eq!(got, r(0x11, 0x0000_0122, 0x33, 0));
    // Not in the page and out of the extended range: zeros, the hypervisor is not asked.
    let mut f = epyc_functions();
    f[11].eax = 0x8000_0008;
    f.remove(12);
    let t = CpuidTable::parse(&cpuid_page(&f)).unwrap();
    assert_eq!(
        t.lookup(0x8000_001E, 0, &CpuState::default(), &mut no_hv),
        Ok(r(0, 0, 0, 0))
    );
    // In the page: post-processed whatever the range (as Linux).
    let mut f = epyc_functions();
    f[11].eax = 0x8000_0008;
    let t = CpuidTable::parse(&cpuid_page(&f)).unwrap();
    let got = t
        .lookup(
            0x8000_001E,
            0,
            &CpuState::default(),
            &mut hv_answering(hv, &mut asked),
        )
        .unwrap();
    assert_eq!(got.eax, 0x11);
}

#[test]
fn the_c_bit_comes_from_the_page_and_must_match_the_hypervisor() {
    let t = epyc();
    assert_eq!(t.c_bit(), Ok(51));
    assert_eq!(t.check_c_bit(51), Ok(51));
    assert_eq!(
        t.check_c_bit(47),
        Err(CpuidError::CBitMismatch {
            page: 51,
            hypervisor: 47
        })
    );
    assert!(t.needs_cache_eviction());
    let with = |eax: u32, ebx: u32| {
        let mut f = epyc_functions();
        f[13].eax = eax;
        f[13].ebx = ebx;
        CpuidTable::parse(&cpuid_page(&f)).unwrap()
    };
    assert_eq!(
        with(0x0F, 0x73).c_bit(),
        Err(CpuidError::NoSnp { eax: 0x0F })
    );
    assert_eq!(
        with(0x10, 0x6F).c_bit(),
        Err(CpuidError::NoSnp { eax: 0x10 })
    );
    assert_eq!(with(0x13, 0x5F).c_bit(), Err(CpuidError::CBit(31)));
    assert_eq!(with(0x13, 0x74).c_bit(), Err(CpuidError::CBit(52)));
    assert_eq!(with(0x13, 0x6F).c_bit(), Ok(47));
    assert!(!with(0x13, 0x73 | 1 << 31).needs_cache_eviction());
    let none = CpuidTable::parse(&cpuid_page(&[func(0, 0, [1, 0, 0, 0])])).unwrap();
    assert_eq!(none.c_bit(), Err(CpuidError::NoSevLeaf));
    assert!(none.needs_cache_eviction());
}

#[test]
fn the_hypervisor_is_asked_through_the_ghcb_or_the_msr_protocol() {
    let t = epyc();
    let m = ready();
    m.set_cpuid(1, 0, [0, 0x0300_0000, 0, 1 << 9]);
    let s = CpuState {
        osxsave: true,
        xcr0: 7,
        ..CpuState::default()
    };
    let got = with_session(&m, |sess| t.lookup(1, 0, &s, &mut hv_via_ghcb(sess, &s))).unwrap();
    assert_eq!(got.ebx >> 24, 3);
    m.assert_clean();

    let m = Model::new();
    msr_protocol::negotiate(&m).unwrap();
    m.set_cpuid(0xB, 0, [0, 0, 0, 5]);
    let got = t.lookup(0xB, 1, &s, &mut hv_via_msr(&m)).unwrap();
    assert_eq!(got.edx, 5);
    assert_eq!(
        hv_via_msr(&m)(0xB, 1),
        Err(CpuidError::MsrSubleaf {
            leaf: 0xB,
            subleaf: 1
        })
    );
    m.assert_clean();
}

proptest! {
    #[test]
    fn arbitrary_pages_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..3200),
        leaf in any::<u32>(), subleaf in any::<u32>(), state in any::<(bool, bool, u64, u64)>(),
    ) {
        let mut bytes = bytes;
        if bytes.len() >= 4 {
            // Mostly valid counts.
            bytes[0] %= 70;
            bytes[1] = 0; bytes[2] = 0; bytes[3] = 0;
        }
        if let Ok(t) = CpuidTable::parse(&bytes) {
            prop_assert!(!t.functions().is_empty() && t.functions().len() <= 64);
            let s = CpuState { osxsave: state.0, pke: state.1, xcr0: state.2, xss: state.3 };
            let mut hv = |_, _| Ok(CpuidResult::default());
            let _ = t.lookup(leaf, subleaf, &s, &mut hv);
            let _ = t.lookup(leaf % 0x20, subleaf % 4, &s, &mut hv);
            let _ = t.lookup(0xD, subleaf % 2, &s, &mut hv);
            let _ = t.c_bit();
        }
    }
}
