//! The SEV-SNP CPUID page (written by the VMM, checked by the PSP, trusted by the #VC handler):
//! `td_shim::snp::cpuid::CpuidTable::parse`, then `lookup` of every leaf the handler
//! post-processes and `c_bit`.
//!
//! Input: the page's bytes. Checked: the entries sit at their documented offsets; an error says
//! something true of the input; a lookup of a leaf that is not post-processed returns the first
//! matching entry's registers or zeros; leaves 0x1, 0xB and 0x8000001E only take identifiers
//! from the hypervisor; a C-bit is in 32..=51 and is the page's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use td_shim::snp::cpu::CpuidResult;
use td_shim::snp::cpuid::{
    CpuState, CpuidError, CpuidTable, ENTRY_SIZE, HEADER_SIZE, LEAF_SEV, MAX_ENTRIES,
};

fn u32_at(d: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(d[at..at + 4].try_into().unwrap())
}

fuzz_target!(|data: &[u8]| {
    let t = match CpuidTable::parse(data) {
        Ok(t) => t,
        Err(e) => {
            let _ = e.to_string();
            match e {
                CpuidError::Count(c) => {
                    assert!(c == 0 || c as usize > MAX_ENTRIES);
                    assert_eq!(c, u32_at(data, 0));
                }
                CpuidError::Truncated { len, need } => {
                    assert_eq!(len, data.len());
                    assert!(len < need);
                }
                other => panic!("parse cannot fail with {other:?}"),
            }
            return;
        }
    };
    let n = t.functions().len();
    assert!((1..=MAX_ENTRIES).contains(&n));
    assert_eq!(n as u32, u32_at(data, 0));
    assert!(data.len() >= HEADER_SIZE + n * ENTRY_SIZE);
    for (i, f) in t.functions().iter().enumerate() {
        let at = HEADER_SIZE + i * ENTRY_SIZE;
        assert_eq!(f.eax_in, u32_at(data, at));
        assert_eq!(f.ecx_in, u32_at(data, at + 4));
        assert_eq!(f.ebx, u32_at(data, at + 28));
        assert_eq!(f.edx, u32_at(data, at + 36));
    }
    // The hypervisor answers all ones: only identifier bits may come from it.
    let hv_all = CpuidResult {
        eax: u32::MAX,
        ebx: u32::MAX,
        ecx: u32::MAX,
        edx: u32::MAX,
    };
    let state = CpuState {
        osxsave: data.len() % 2 == 0,
        pke: data.len() % 3 == 0,
        xcr0: 0x7,
        xss: 0,
    };
    let mut leaves: Vec<(u32, u32)> = vec![
        (0x1, 0),
        (0x7, 0),
        (0xB, 1),
        (0xD, 0),
        (0xD, 1),
        (0x8000_001E, 0),
        (LEAF_SEV, 0),
        (0x4000_0000, 0),
    ];
    leaves.extend(t.functions().iter().map(|f| (f.eax_in, f.ecx_in)));
    for (leaf, subleaf) in leaves {
        let mut asked = 0u32;
        let mut hv = |_: u32, _: u32| {
            asked += 1;
            Ok(hv_all)
        };
        let Ok(r) = t.lookup(leaf, subleaf, &state, &mut hv) else {
            continue;
        };
        let found = t.find(leaf, subleaf).map(|f| f.result());
        match leaf {
            0x1 => {
                let page = found.unwrap_or_default();
                assert_eq!(r.ebx & 0x00FF_FFFF, page.ebx & 0x00FF_FFFF);
                assert_eq!(r.eax, page.eax);
            }
            0xB => assert_eq!((r.eax, r.ebx, r.ecx), {
                let p = found.unwrap_or_default();
                (p.eax, p.ebx, p.ecx)
            }),
            0x8000_001E => {
                let p = found.unwrap_or_default();
                if asked > 0 {
                    assert_eq!(r.ebx & !0xFF, p.ebx & !0xFF);
                }
            }
            0x7 | 0xD => {}
            _ => {
                assert_eq!(asked, 0, "leaf {leaf:#x} asked the hypervisor");
                assert_eq!(r, found.unwrap_or_default());
            }
        }
    }
    if let Ok(c) = t.c_bit() {
        assert!((32..=51).contains(&c));
        assert_eq!(u32::from(c), t.find(LEAF_SEV, 0).unwrap().ebx & 0x3F);
        assert_eq!(t.check_c_bit(c), Ok(c));
    }
});
