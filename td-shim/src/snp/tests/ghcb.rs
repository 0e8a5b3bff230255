//! The GHCB page layout and every status path of one event.

extern crate std;

use super::super::ghcb::*;
use super::super::model::{Call, Inject, Model};
use super::{ready, with_session, GHCB_GPA};
use std::string::ToString;

#[test]
fn the_layout_is_linuxs() {
    assert_eq!(core::mem::size_of::<Ghcb>(), 4096);
    assert_eq!(core::mem::align_of::<Ghcb>(), 4096);
    // Valid-bitmap bits: the quadword index of each field (Linux GHCB_BITMAP_IDX).
    let bits = [
        (Field::Xss, 40),
        (Field::Rax, 63),
        (Field::Rcx, 97),
        (Field::Rdx, 98),
        (Field::Rbx, 99),
        (Field::SwExitCode, 114),
        (Field::SwExitInfo1, 115),
        (Field::SwExitInfo2, 116),
        (Field::SwScratch, 117),
        (Field::Xcr0, 125),
    ];
    for (f, bit) in bits {
        assert_eq!(f.valid_bit(), bit, "{f:?}");
    }
    assert_eq!(offset::VALID_BITMAP, 0x3F0);
    assert_eq!(offset::SHARED_BUFFER + SHARED_BUFFER_SIZE, 0xFF0);
    let mut g = Ghcb::new();
    g.set(Field::Rcx, 0x1122_3344_5566_7788);
    assert_eq!(
        &g.as_bytes()[0x308..0x310],
        &0x1122_3344_5566_7788u64.to_le_bytes()
    );
    assert_eq!(g.valid_bitmap(), 1 << 97);
    assert_eq!(g.as_bytes()[0x3F0 + 12], 0b10, "bit 97 is bit 1 of byte 12");
    g.set(Field::SwExitCode, 0x72);
    g.clear_valid(Field::Rcx);
    assert!(!g.is_valid(Field::Rcx) && g.is_valid(Field::SwExitCode));
    g.set_protocol_version(2);
    g.set_usage(7);
    assert_eq!(&g.as_bytes()[0xFFA..], &[2, 0, 7, 0, 0, 0]);
    g.invalidate();
    assert_eq!((g.valid_bitmap(), g.get(Field::SwExitCode)), (0, 0));
    assert_eq!(g.get(Field::Rcx), 0x1122_3344_5566_7788, "values stay");
}

#[test]
fn ioio_exit_info_follows_the_svm_encoding() {
    // OUT DX, AL to 0x3F8 in long mode: port 31:16, A64 (bit 9), 8-bit (bit 4), OUT (bit 0 = 0).
    assert_eq!(
        ioio_exit_info(0x3F8, Width::W8, false, AddrSize::A64),
        Some(0x03F8_0210)
    );
    assert_eq!(
        ioio_exit_info(0x511, Width::W32, true, AddrSize::A32),
        Some(0x0511_0141)
    );
    assert_eq!(
        ioio_exit_info(0xCFC, Width::W16, true, AddrSize::A16),
        Some(0x0CFC_00A1)
    );
    assert_eq!(ioio_exit_info(0, Width::W64, true, AddrSize::A64), None);
}

#[test]
fn a_session_needs_an_aligned_ghcb() {
    let m = ready();
    let mut g = Ghcb::new();
    assert!(Session::new(&m, &mut g, GHCB_GPA + 0x10).is_err());
    assert!(Session::new(&m, &mut g, 1 << 52).is_err());
}

#[test]
fn a_call_fills_the_header_and_points_the_msr_at_the_ghcb() {
    let m = ready();
    m.set_cpuid(0x8000_0000, 0, [0x8000_0021, 1, 2, 3]);
    let r = with_session(&m, |s| {
        let r = s.cpuid(0x8000_0000, 0, 1, None).unwrap();
        let g = s.ghcb();
        assert_eq!((g.protocol_version(), g.usage()), (2, 0));
        r
    });
    assert_eq!((r.eax, r.ebx, r.ecx, r.edx), (0x8000_0021, 1, 2, 3));
    assert_eq!(super::super::cpu::SevCpu::ghcb_msr_read(&m), GHCB_GPA);
    assert_eq!(
        m.calls(),
        [Call::Ghcb {
            exit_code: exit_code::CPUID,
            info1: 0,
            info2: 0
        }]
    );
    m.assert_clean();
}

#[test]
fn exit_info_1_other_than_zero_is_an_error() {
    let m = ready();
    let gp_with_code =
        event_inj::VALID | event_inj::TYPE_EXCEPTION | event_inj::VALID_ERR | 13 | 0x18 << 32;
    let cases = [
        (
            (1, gp_with_code),
            GhcbError::Exception {
                exit_code: exit_code::MSR,
                vector: 13,
                error_code: Some(0x18),
            },
        ),
        (
            (1, event_inj::VALID | event_inj::TYPE_EXCEPTION | 6),
            GhcbError::Exception {
                exit_code: exit_code::MSR,
                vector: 6,
                error_code: None,
            },
        ),
        // Not valid, not an exception, or not #GP/#UD: a hypervisor error.
        (
            (1, event_inj::TYPE_EXCEPTION | 13),
            GhcbError::Hypervisor {
                exit_code: exit_code::MSR,
                exit_info_1: 1,
                exit_info_2: event_inj::TYPE_EXCEPTION | 13,
            },
        ),
        (
            (1, event_inj::VALID | 13),
            GhcbError::Hypervisor {
                exit_code: exit_code::MSR,
                exit_info_1: 1,
                exit_info_2: event_inj::VALID | 13,
            },
        ),
        (
            (1, event_inj::VALID | event_inj::TYPE_EXCEPTION | 14),
            GhcbError::Hypervisor {
                exit_code: exit_code::MSR,
                exit_info_1: 1,
                exit_info_2: event_inj::VALID | event_inj::TYPE_EXCEPTION | 14,
            },
        ),
        (
            (2, 4),
            GhcbError::Hypervisor {
                exit_code: exit_code::MSR,
                exit_info_1: 2,
                exit_info_2: 4,
            },
        ),
        (
            (0x1_0000_0003, 0),
            GhcbError::Hypervisor {
                exit_code: exit_code::MSR,
                exit_info_1: 0x1_0000_0003,
                exit_info_2: 0,
            },
        ),
    ];
    for ((i1, i2), want) in cases {
        m.inject(Inject::ExitInfo(i1, i2));
        let e = with_session(&m, |s| s.wrmsr(0x10, 1)).unwrap_err();
        assert_eq!(e, want);
    }
    // Only bits 31:0 are the result.
    m.inject(Inject::ExitInfo(0xFFFF_FFFF_0000_0000, 0));
    with_session(&m, |s| s.wrmsr(0x10, 1)).unwrap();
    m.inject(Inject::ExitInfo(2, 4));
    let text = with_session(&m, |s| s.wrmsr(0x10, 1))
        .unwrap_err()
        .to_string();
    assert!(text.contains("missing input"), "{text}");
    m.assert_clean();
}

#[test]
fn outputs_must_be_marked_valid() {
    let m = ready();
    for (f, call) in [
        (Field::Rbx, 0),
        (Field::Rax, 1),
        (Field::Rdx, 2),
        (Field::Rax, 3),
        (Field::Rcx, 4),
    ] {
        m.inject(Inject::DropOutput(f));
        m.set_msr(0x1B, 0xFEE0_0900);
        let e = with_session(&m, |s| match call {
            0 => s.cpuid(1, 0, 1, None).map(|_| ()),
            1 => s.io_read(0x71, Width::W8).map(|_| ()),
            2 => s.rdmsr(0x1B).map(|_| ()),
            3 => s.rdtsc().map(|_| ()),
            _ => s.rdtscp().map(|_| ()),
        })
        .unwrap_err();
        assert!(
            matches!(e, GhcbError::MissingOutput { field, .. } if field == f),
            "{e:?}"
        );
    }
    m.assert_clean();
}

#[test]
fn port_io_is_cut_to_its_width() {
    let m = ready();
    m.set_port(0x71, 0xFFFF_FF5A);
    m.set_port(0x511, 0x1_2345_6789);
    with_session(&m, |s| {
        assert_eq!(s.io_read(0x71, Width::W8).unwrap(), 0x5A);
        assert_eq!(s.io_read(0x71, Width::W16).unwrap(), 0xFF5A);
        assert_eq!(s.io_read(0x511, Width::W32).unwrap(), 0x2345_6789);
        s.io_write(0x3F8, Width::W8, 0x1234).unwrap();
        s.io_write(0x510, Width::W16, 0xABCD_0019).unwrap();
        s.io_write(0xCF8, Width::W32, 0x8000_0000).unwrap();
        assert!(s.io_read(0x70, Width::W64).is_err());
        // String I/O is refused before any call.
        assert!(s.ioio(ioio::TYPE_STR | ioio::DATA_8, 0).is_err());
    });
    assert_eq!(
        m.port_writes(),
        [(0x3F8, 1, 0x34), (0x510, 2, 0x19), (0xCF8, 4, 0x8000_0000)]
    );
    assert_eq!(m.calls().len(), 6);
    m.assert_clean();
}

#[test]
fn mmio_goes_through_the_shared_buffer() {
    let m = ready();
    m.set_mmio(0xFEE0_0030, 0xAAAA_BBBB_0005_0014);
    with_session(&m, |s| {
        assert_eq!(s.mmio_read(0xFEE0_0030, Width::W32).unwrap(), 0x0005_0014);
        assert_eq!(
            s.mmio_read(0xFEE0_0030, Width::W64).unwrap(),
            0xAAAA_BBBB_0005_0014
        );
        s.mmio_write(0xFEE0_0300, Width::W32, 0x1_000C_4500)
            .unwrap();
        s.mmio_write(0xFEC0_0000, Width::W8, 0x1FF).unwrap();
        // Misaligned or too high: refused before any call.
        assert!(s.mmio_read(0xFEE0_0031, Width::W32).is_err());
        assert!(s.mmio_write(1 << 52, Width::W8, 0).is_err());
    });
    assert_eq!(
        m.mmio_writes(),
        [(0xFEE0_0300, 4, 0x000C_4500), (0xFEC0_0000, 1, 0xFF)]
    );
    assert_eq!(m.calls().len(), 4);
    m.assert_clean();
}

#[test]
fn msrs_and_the_tsc() {
    let m = ready();
    m.set_msr(0x1B, 0xFEE0_0900);
    with_session(&m, |s| {
        assert_eq!(s.rdmsr(0x1B).unwrap(), 0xFEE0_0900);
        s.wrmsr(0xC000_0080, 0x1234_5678_0000_0D01).unwrap();
        // An MSR the hypervisor does not know: #GP asked.
        assert!(matches!(
            s.rdmsr(0x9999),
            Err(GhcbError::Exception { vector: 13, .. })
        ));
        assert_eq!(s.rdtsc().unwrap(), 0x1234_5678_9ABC);
        assert_eq!(s.rdtscp().unwrap(), (0x1234_5678_9ABC, 7));
    });
    assert_eq!(m.msr(0xC000_0080), Some(0x1234_5678_0000_0D01));
    m.assert_clean();
}

#[test]
fn the_model_refuses_an_unregistered_or_wrong_ghcb() {
    let m = Model::new();
    m.add_ram(0, 1 << 30);
    let e = with_session(&m, |s| s.rdtsc()).unwrap_err();
    assert!(matches!(
        e,
        GhcbError::Hypervisor {
            exit_info_1: 2,
            exit_info_2: 1,
            ..
        }
    ));
    assert_eq!(m.violations().len(), 1);

    let m = Model::ready(GHCB_GPA + 0x1000);
    m.add_ram(0, 1 << 30);
    assert!(with_session(&m, |s| s.rdtsc()).is_err());
    assert_eq!(m.violations().len(), 1, "{:?}", m.violations());
}
