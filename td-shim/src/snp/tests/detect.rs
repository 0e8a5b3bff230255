//! Detection: the MSR is read only when CPUID allows it; every SEV_STATUS combination.

extern crate std;

use super::super::detect::*;
use std::cell::Cell;

#[test]
fn sev_status_is_read_only_after_cpuid_reports_sev() {
    let read = Cell::new(false);
    let status = |v: u64| {
        let read = &read;
        move || {
            read.set(true);
            v
        }
    };
    assert_eq!(
        detect(0x8000_001E, 0x2, status(7)).unwrap().mode,
        Mode::None
    );
    assert!(!read.get(), "leaf 0x8000001f absent: no RDMSR");
    assert_eq!(
        detect(0x8000_0021, 0x1, status(7)).unwrap().mode,
        Mode::None
    );
    assert!(!read.get(), "no SEV bit: no RDMSR");
    let d = detect(0x8000_0021, 0x1_003F, status(7)).unwrap();
    assert!(read.get());
    assert_eq!(
        d,
        Detected {
            mode: Mode::Snp,
            status: Some(7)
        }
    );
}

#[test]
fn every_mode_and_inconsistency() {
    let d = |s: u64| detect(0x8000_001F, 0x2, || s);
    assert_eq!(d(0).unwrap().mode, Mode::None);
    assert_eq!(d(1).unwrap().mode, Mode::Sev);
    assert_eq!(d(3).unwrap().mode, Mode::SevEs);
    assert_eq!(d(7).unwrap().mode, Mode::Snp);
    for bad in [2, 4, 5, 6] {
        assert_eq!(d(bad), Err(DetectError::Inconsistent(bad)), "{bad:#x}");
    }
    // Features this firmware does not need to implement.
    let ok = 7 | status::DEBUG_SWAP | status::SECURE_TSC | status::RESTRICTED_INJ | 1 << 17;
    let got = d(ok).unwrap();
    assert_eq!(got.mode, Mode::Snp);
    assert!(got.secure_tsc());
    assert!(!d(7).unwrap().secure_tsc());
    // Ones it refuses, and reserved bits.
    for bit in [3, 4, 6, 12, 13, 15, 18, 40, 63] {
        assert_eq!(
            d(7 | 1 << bit),
            Err(DetectError::Unsupported {
                status: 7 | 1 << bit,
                bits: 1 << bit
            }),
            "bit {bit}"
        );
    }
    // Not an SNP guest: the SNP feature bits are not looked at.
    assert_eq!(d(3 | status::VTOM).unwrap().mode, Mode::SevEs);
}
