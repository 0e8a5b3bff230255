//! The wrappers against the model: every wrapper, every status path.

extern crate std;

use super::model::{addr_of, Inject, Model};
use super::*;
use sha2::{Digest, Sha384};
use std::format;
use std::vec;

const BUSY_RTMR: u64 = status::OPERAND_BUSY | status::OPERAND_RTMR;
const BUSY_RCX: u64 = status::OPERAND_BUSY | status::OPERAND_RCX;
const VMCALL: u64 = leaf::VP_VMCALL;

#[test]
fn vp_info_decodes_every_field() {
    let m = Model::new();
    m.set_vp_info(52, (1 << 28) | 1, 4, 8, 3);
    let info = vp_info(&m).unwrap();
    assert_eq!(info.gpa_width, GpaWidth::W52);
    assert_eq!(info.gpa_width.shared_bit(), 1 << 51);
    assert!(info.attributes.debug() && info.attributes.sept_ve_disable());
    assert_eq!((info.num_vcpus, info.max_vcpus, info.vcpu_index), (4, 8, 3));
    assert!(info.sys_rd_available);
    assert_eq!(m.sequence(), vec![(leaf::VP_INFO, None)]);
    assert_eq!(GpaWidth::W48.shared_bit(), 1 << 47);
    m.assert_clean();
}

#[test]
fn vp_info_refuses_unknown_gpa_width_and_errors() {
    let m = Model::new();
    m.set_vp_info(50, 0, 1, 1, 0);
    assert_eq!(vp_info(&m), Err(TdxError::UnsupportedGpaWidth(50)));
    // Bits above 5:0 are ignored, as Linux and td-shim do.
    m.set_vp_info(0x40 | 48, 0, 1, 1, 0);
    assert_eq!(vp_info(&m).unwrap().gpa_width, GpaWidth::W48);
    m.inject(leaf::VP_INFO, None, Inject::Status(status::OPERAND_INVALID));
    assert_eq!(
        vp_info(&m),
        Err(TdxError::Tdcall {
            leaf: leaf::VP_INFO,
            status: status::OPERAND_INVALID
        })
    );
    // No retry of busy on a leaf that takes no lock.
    m.inject(leaf::VP_INFO, None, Inject::Status(status::OPERAND_BUSY));
    assert!(vp_info(&m).is_err());
    assert_eq!(m.calls().len(), 4);
    m.assert_clean();
}

#[test]
fn model_enforces_vp_info_first_when_asked() {
    let m = Model::new();
    m.require_vp_info_first();
    io_write(&m, 0x3F8, IoSize::Byte, b'a'.into()).unwrap();
    assert_eq!(m.violations().len(), 1);
    let m = Model::new();
    m.require_vp_info_first();
    vp_info(&m).unwrap();
    io_write(&m, 0x3F8, IoSize::Byte, b'a'.into()).unwrap();
    m.assert_clean();
}

#[test]
fn rtmr_extend_extends_the_register() {
    let m = Model::new();
    let d = Digest48Aligned([7; 48]);
    m.expose_digest(&d);
    rtmr_extend(&m, 2, &d).unwrap();
    let mut h = Sha384::new();
    h.update([0u8; 48]);
    h.update([7u8; 48]);
    assert_eq!(m.rtmr(2)[..], h.finalize()[..]);
    assert_eq!(m.rtmr(0), [0; 48]);
    let c = &m.calls()[0];
    assert_eq!((c.input.rax, c.input.rcx, c.input.rdx), (2, addr_of(&d), 2));
    assert_eq!(c.input.rcx % 64, 0);
    m.assert_clean();
}

#[test]
fn rtmr_extend_refuses_index_without_calling() {
    let m = Model::new();
    let d = Digest48Aligned([0; 48]);
    for i in [4, usize::MAX] {
        assert!(matches!(
            rtmr_extend(&m, i, &d),
            Err(TdxError::InvalidArgument { leaf: 2, .. })
        ));
    }
    assert!(m.calls().is_empty());
}

#[test]
fn rtmr_extend_retries_busy_then_succeeds() {
    let m = Model::new();
    let d = Digest48Aligned([1; 48]);
    m.expose_digest(&d);
    for _ in 0..3 {
        m.inject(leaf::MR_RTMR_EXTEND, None, Inject::Status(BUSY_RTMR));
    }
    rtmr_extend(&m, 0, &d).unwrap();
    let calls = m.calls();
    assert_eq!(calls.len(), 4);
    assert!(
        calls.iter().all(|c| c.input == calls[0].input),
        "same inputs each time"
    );
    assert_ne!(m.rtmr(0), [0; 48]);
    m.assert_clean();
}

#[test]
fn rtmr_extend_gives_up_after_the_busy_bound() {
    let m = Model::new();
    let d = Digest48Aligned([1; 48]);
    for _ in 0..BUSY_ATTEMPTS {
        m.inject(leaf::MR_RTMR_EXTEND, None, Inject::Status(BUSY_RTMR));
    }
    assert_eq!(
        rtmr_extend(&m, 1, &d),
        Err(TdxError::Busy {
            leaf: 2,
            status: BUSY_RTMR,
            attempts: BUSY_ATTEMPTS
        })
    );
    assert_eq!(m.calls().len(), BUSY_ATTEMPTS as usize);
    assert_eq!(m.rtmr(1), [0; 48]);
    m.assert_clean();
}

#[test]
fn rtmr_extend_other_errors_are_not_retried() {
    let m = Model::new();
    let d = Digest48Aligned([1; 48]);
    let s = status::OPERAND_INVALID | status::OPERAND_RCX;
    m.inject(leaf::MR_RTMR_EXTEND, None, Inject::Status(s));
    assert_eq!(
        rtmr_extend(&m, 1, &d),
        Err(TdxError::Tdcall { leaf: 2, status: s })
    );
    assert_eq!(m.calls().len(), 1);
    m.assert_clean();
}

#[test]
fn model_refuses_misaligned_or_bad_raw_calls() {
    let m = Model::new();
    let d = Digest48Aligned([1; 48]);
    m.expose_digest(&d);
    let raw = |r: TdcallArgs| {
        let mut r = r;
        m.tdcall(&mut r)
    };
    let base = TdcallArgs {
        rax: leaf::MR_RTMR_EXTEND,
        rcx: addr_of(&d) + 8,
        ..TdcallArgs::default()
    };
    assert_eq!(raw(base), status::OPERAND_INVALID | status::OPERAND_RCX);
    let bad_index = TdcallArgs {
        rcx: addr_of(&d),
        rdx: 4,
        ..base
    };
    assert_eq!(
        raw(bad_index),
        status::OPERAND_INVALID | status::OPERAND_RDX
    );
    let version = TdcallArgs {
        rax: leaf::VP_INFO | 1 << 16,
        ..TdcallArgs::default()
    };
    assert_eq!(raw(version), status::OPERAND_INVALID);
    let report = TdcallArgs {
        rax: leaf::MR_REPORT,
        rcx: 0x1000 + 64,
        rdx: 0x2000,
        ..TdcallArgs::default()
    };
    assert_eq!(raw(report), status::OPERAND_INVALID | status::OPERAND_RCX);
    let level2 = TdcallArgs {
        rax: leaf::MEM_PAGE_ACCEPT,
        rcx: 0x4000_0000 | 2,
        ..TdcallArgs::default()
    };
    assert_eq!(raw(level2), status::OPERAND_INVALID | status::OPERAND_RCX);
    // A TDVMCALL exposing RBX, or RSP, or leaking a secret in an unused register.
    let vm = |rcx, rdx| TdcallArgs {
        rax: VMCALL,
        rcx,
        rdx,
        r11: vmcall::IO,
        r12: 1,
        r14: 0x80,
        ..TdcallArgs::default()
    };
    assert_eq!(raw(vm(0xFC08, 0)), status::SUCCESS);
    assert_eq!(
        raw(vm(0xFC10, 0)),
        status::OPERAND_INVALID | status::OPERAND_RCX
    );
    assert_eq!(raw(vm(0xFC04, 0x5EC2E7)), status::SUCCESS);
    assert_eq!(m.violations().len(), 8, "{:#?}", m.violations());
}

#[test]
fn mr_report_passes_aligned_buffers_and_subtype_zero() {
    let m = Model::new();
    let mut report = std::boxed::Box::new(TdReport::default());
    let data = ReportData([9; 64]);
    mr_report(&m, &mut report, &data).unwrap();
    assert_eq!(m.reports(), vec![(addr_of(&*report), addr_of(&data))]);
    assert_eq!(m.calls()[0].input.r8, 0);
    // Busy (RTMR lock) is retried, other errors are not.
    m.inject(leaf::MR_REPORT, None, Inject::Status(BUSY_RTMR));
    mr_report(&m, &mut report, &data).unwrap();
    let s = status::OPERAND_INVALID | status::OPERAND_RCX;
    m.inject(leaf::MR_REPORT, None, Inject::Status(s));
    assert_eq!(
        mr_report(&m, &mut report, &data),
        Err(TdxError::Tdcall { leaf: 4, status: s })
    );
    assert_eq!(m.calls().len(), 4);
    m.assert_clean();
}

#[test]
fn veinfo_get_reads_and_consumes_the_info() {
    let m = Model::new();
    let ve = VeInfo {
        exit_reason: 30,
        exit_qualification: 0x3F8_0008,
        guest_linear_address: 0,
        guest_physical_address: 0,
        instruction_length: 1,
        instruction_info: 0xABCD,
    };
    m.set_ve(ve);
    assert_eq!(vp_veinfo_get(&m), Ok(ve));
    assert_eq!(
        vp_veinfo_get(&m),
        Err(TdxError::Tdcall {
            leaf: 3,
            status: status::NO_VALID_VE_INFO
        })
    );
    m.assert_clean();
}

#[test]
fn accept_outcomes_follow_the_module() {
    let m = Model::new();
    m.add_ram(0, 0x100_0000);
    let a = |gpa, level| mem_page_accept(&m, gpa, level);
    assert_eq!(a(0x20_0000, PageLevel::Size2M), Ok(AcceptOutcome::Accepted));
    assert!(matches!(
        a(0x20_0000, PageLevel::Size2M),
        Ok(AcceptOutcome::AlreadyAccepted { status: s }) if s == status::PAGE_ALREADY_ACCEPTED | 1
    ));
    assert!(matches!(
        a(0x20_1000, PageLevel::Size4K),
        Ok(AcceptOutcome::AlreadyAccepted { .. })
    ));
    assert_eq!(a(0x40_0000, PageLevel::Size4K), Ok(AcceptOutcome::Accepted));
    assert!(matches!(
        a(0x40_0000, PageLevel::Size4K),
        Ok(AcceptOutcome::AlreadyAccepted {
            status: status::PAGE_ALREADY_ACCEPTED
        })
    ));
    assert!(matches!(
        a(0x40_0000, PageLevel::Size2M),
        Ok(AcceptOutcome::SizeMismatch { .. })
    ));
    let c = m.calls();
    assert_eq!(c[0].input.rcx, 0x20_0000 | 1);
    assert_eq!(c[3].input.rcx, 0x40_0000);
    m.assert_clean();
}

#[test]
fn accept_refuses_bad_arguments_and_reports_errors() {
    let m = Model::new();
    m.add_ram(0, 0x100_0000);
    for (gpa, level) in [
        (0x1000, PageLevel::Size2M),
        (0x800, PageLevel::Size4K),
        (1 << 52, PageLevel::Size4K),
    ] {
        assert!(matches!(
            mem_page_accept(&m, gpa, level),
            Err(TdxError::InvalidArgument { leaf: 6, .. })
        ));
    }
    assert!(m.calls().is_empty());
    m.inject(leaf::MEM_PAGE_ACCEPT, None, Inject::Status(BUSY_RCX));
    m.inject(leaf::MEM_PAGE_ACCEPT, None, Inject::Status(BUSY_RCX));
    assert_eq!(
        mem_page_accept(&m, 0, PageLevel::Size4K),
        Ok(AcceptOutcome::Accepted)
    );
    assert_eq!(m.calls().len(), 3);
    let s = status::OPERAND_INVALID | status::OPERAND_RCX;
    m.inject(leaf::MEM_PAGE_ACCEPT, None, Inject::Status(s));
    assert_eq!(
        mem_page_accept(&m, 0x1000, PageLevel::Size4K),
        Err(TdxError::Tdcall { leaf: 6, status: s })
    );
    // A warning class the firmware does not know is an error, not success.
    m.inject(
        leaf::MEM_PAGE_ACCEPT,
        None,
        Inject::Status(0x0000_0B0C_0000_0000),
    );
    assert!(mem_page_accept(&m, 0x1000, PageLevel::Size4K).is_err());
    // Low bits alone are not success either.
    m.inject(leaf::MEM_PAGE_ACCEPT, None, Inject::Status(1));
    assert!(mem_page_accept(&m, 0x1000, PageLevel::Size4K).is_err());
    m.assert_clean();
}

#[test]
fn tdvmcalls_expose_r10_to_r15_only_with_r10_zero() {
    let m = Model::new();
    m.set_msr(0x1B, 0xFEE0_0900);
    m.set_cpuid(0x4000_0000, 0, [1, 2, 3, 4]);
    io_write(&m, 0x80, IoSize::Byte, 1).unwrap();
    io_read(&m, 0x80, IoSize::Word).unwrap();
    rdmsr(&m, 0x1B).unwrap();
    wrmsr(&m, 0x1B, 5).unwrap();
    cpuid(&m, 0x4000_0000, 0).unwrap();
    mmio_read(&m, 1 << 47 | 0x1000, MmioSize::Dword).unwrap();
    map_gpa(&m, GpaWidth::W48, 0x1000, 0x1000, true).unwrap();
    let calls = m.calls();
    assert_eq!(calls.len(), 7);
    for c in &calls {
        assert_eq!(c.input.rax, VMCALL);
        assert_eq!(c.input.rcx, 0xFC00);
        assert_eq!(c.input.r10, 0);
        assert_eq!((c.input.rdx, c.input.r8, c.input.r9), (0, 0, 0));
        assert_eq!(c.vmcall_status, Some(vmcall::SUCCESS));
    }
    m.assert_clean();
}

#[test]
fn io_cuts_values_to_the_access_size() {
    let m = Model::new();
    m.set_port(0x3F8, 0xDEAD_BEEF_1234_5678);
    assert_eq!(io_read(&m, 0x3F8, IoSize::Byte), Ok(0x78));
    assert_eq!(io_read(&m, 0x3F8, IoSize::Word), Ok(0x5678));
    assert_eq!(io_read(&m, 0x3F8, IoSize::Dword), Ok(0x1234_5678));
    io_write(&m, 0x510, IoSize::Byte, 0x1234).unwrap();
    io_write(&m, 0x510, IoSize::Word, 0x1_2345).unwrap();
    io_write(&m, 0x514, IoSize::Dword, 0xFFFF_FFFF).unwrap();
    assert_eq!(
        m.port_writes(),
        vec![
            (0x510, 1, 0x34),
            (0x510, 2, 0x2345),
            (0x514, 4, 0xFFFF_FFFF)
        ]
    );
    let c = &m.calls()[0];
    assert_eq!(
        (c.input.r11, c.input.r12, c.input.r13, c.input.r14),
        (30, 1, 0, 0x3F8)
    );
    // The VMM's upper bits never reach the caller.
    m.inject(VMCALL, Some(vmcall::IO), Inject::RawR11(u64::MAX - 0xBE));
    assert_eq!(io_read(&m, 0x60, IoSize::Word), Ok(0xFF41));
    m.inject(VMCALL, Some(vmcall::MMIO), Inject::RawR11(u64::MAX - 0xBE));
    assert_eq!(mmio_read(&m, (1 << 47) | 0x1000, MmioSize::Byte), Ok(0x41));
    m.assert_clean();
}

#[test]
fn io_errors_are_reported_not_retried() {
    let m = Model::new();
    m.inject(
        VMCALL,
        Some(vmcall::IO),
        Inject::Status(vmcall::INVALID_OPERAND),
    );
    assert_eq!(
        io_read(&m, 0x3F8, IoSize::Byte),
        Err(TdxError::Vmcall {
            sub_function: vmcall::IO,
            status: vmcall::INVALID_OPERAND
        })
    );
    m.inject(VMCALL, Some(vmcall::IO), Inject::Status(vmcall::RETRY));
    assert!(io_write(&m, 0x3F8, IoSize::Byte, 0).is_err());
    let s = status::OPERAND_INVALID | status::OPERAND_RCX;
    m.inject(VMCALL, Some(vmcall::IO), Inject::TdcallStatus(s));
    assert_eq!(
        io_write(&m, 0x3F8, IoSize::Byte, 0),
        Err(TdxError::VmcallTdcall {
            sub_function: vmcall::IO,
            status: s
        })
    );
    assert_eq!(m.calls().len(), 3);
    m.assert_clean();
}

fn test_fatal(e: TdxError) -> ! {
    panic!("fatal hook: {e}")
}

#[test]
fn port_io_goes_through_tdvmcall_io() {
    let m = Model::new();
    m.set_port(0x511, 0xFFFF_FF41);
    m.set_port(0x3FD, 0x60);
    let io = TdxPortIo::new(&m, test_fatal);
    assert_eq!(io.inb(0x511), 0x41);
    assert_eq!(io.inl(0x511), 0xFFFF_FF41);
    io.outb(0x3F8, b'x');
    io.outw(0x510, 0x19);
    io.outl(0x518, 0xABCD_0123);
    assert_eq!(
        m.port_writes(),
        vec![(0x3F8, 1, 0x78), (0x510, 2, 0x19), (0x518, 4, 0xABCD_0123)]
    );
    m.assert_clean();
}

#[test]
#[should_panic(expected = "fatal hook: tdx: TDG.VP.VMCALL<Instruction.IO>")]
fn port_io_failure_goes_to_the_fatal_hook() {
    let m = Model::new();
    m.inject(
        VMCALL,
        Some(vmcall::IO),
        Inject::Status(vmcall::INVALID_OPERAND),
    );
    TdxPortIo::new(&m, test_fatal).outb(0x3F8, 0);
}

#[test]
fn mmio_reads_and_writes_shared_gpas() {
    let m = Model::new();
    let shared = 1u64 << 47;
    m.set_mmio(shared | 0xFED0_0000, 0x1122_3344_5566_7788);
    assert_eq!(
        mmio_read(&m, shared | 0xFED0_0000, MmioSize::Qword),
        Ok(0x1122_3344_5566_7788)
    );
    assert_eq!(
        mmio_read(&m, shared | 0xFED0_0000, MmioSize::Word),
        Ok(0x7788)
    );
    mmio_write(&m, shared | 0xFED0_0010, MmioSize::Byte, 0x1FF).unwrap();
    assert_eq!(
        mmio_read(&m, shared | 0xFED0_0010, MmioSize::Byte),
        Ok(0xFF)
    );
    let c = &m.calls()[2];
    assert_eq!(
        (c.input.r11, c.input.r12, c.input.r13, c.input.r15),
        (48, 1, 1, 0xFF)
    );
    // Misaligned: refused before the call.
    assert!(matches!(
        mmio_read(&m, shared | 0xFED0_0002, MmioSize::Dword),
        Err(TdxError::InvalidArgument { .. })
    ));
    assert_eq!(m.calls().len(), 4);
    m.assert_clean();
    // A private GPA: the VMM refuses it (and the model notes the caller's mistake).
    assert_eq!(
        mmio_write(&m, 0xFED0_0000, MmioSize::Dword, 1),
        Err(TdxError::Vmcall {
            sub_function: vmcall::MMIO,
            status: vmcall::INVALID_OPERAND
        })
    );
    assert_eq!(m.violations().len(), 1);
}

#[test]
fn cpuid_and_msrs() {
    let m = Model::new();
    m.set_cpuid(0xB, 1, [1, 2, 3, 4]);
    assert_eq!(
        cpuid(&m, 0xB, 1),
        Ok(CpuidResult {
            eax: 1,
            ebx: 2,
            ecx: 3,
            edx: 4
        })
    );
    let c = &m.calls()[0];
    assert_eq!((c.input.r11, c.input.r12, c.input.r13), (10, 0xB, 1));
    wrmsr(&m, 0xC000_0080, 0xD01).unwrap();
    assert_eq!(rdmsr(&m, 0xC000_0080), Ok(0xD01));
    assert_eq!(
        rdmsr(&m, 0x1234),
        Err(TdxError::Vmcall {
            sub_function: vmcall::RDMSR,
            status: vmcall::INVALID_OPERAND
        })
    );
    m.inject(
        VMCALL,
        Some(vmcall::WRMSR),
        Inject::Status(vmcall::INVALID_OPERAND),
    );
    assert!(wrmsr(&m, 0x10, 0).is_err());
    m.inject(
        VMCALL,
        Some(vmcall::CPUID),
        Inject::Status(vmcall::SUBFUNC_UNSUPPORTED),
    );
    assert!(cpuid(&m, 0, 0).is_err());
    m.assert_clean();
}

#[test]
fn map_gpa_converts_both_ways() {
    let m = Model::new();
    m.add_ram(0, 0x40_0000);
    crate::tdx::accept::accept_range(&m, 0, 0x40_0000).unwrap();
    map_gpa(&m, GpaWidth::W48, 0x20_0000, 0x3000, true).unwrap();
    let c = m.calls().last().unwrap().clone();
    assert_eq!((c.input.r12, c.input.r13), ((1 << 47) | 0x20_0000, 0x3000));
    assert!(m.is_shared(0x20_2000) && !m.is_shared(0x20_3000));
    assert!(
        !m.is_accepted(0x20_0000),
        "a shared page has no private page"
    );
    map_gpa(&m, GpaWidth::W48, 0x20_0000, 0x3000, false).unwrap();
    assert!(!m.is_shared(0x20_0000));
    // Shared -> private: accept again before use.
    crate::tdx::accept::accept_range(&m, 0x20_0000, 0x3000).unwrap();
    assert!(m.is_accepted(0x20_2000));
    m.assert_clean();
}

#[test]
fn map_gpa_resumes_from_the_vmm_address() {
    let m = Model::new();
    let sb = 1u64 << 47;
    m.inject(VMCALL, Some(vmcall::MAP_GPA), Inject::MapGpaPartial(0x2000));
    m.inject(VMCALL, Some(vmcall::MAP_GPA), Inject::MapGpaPartial(0x1000));
    map_gpa(&m, GpaWidth::W48, 0x10_0000, 0x5000, true).unwrap();
    let c = m.calls();
    let args: std::vec::Vec<_> = c.iter().map(|c| (c.input.r12, c.input.r13)).collect();
    assert_eq!(
        args,
        vec![
            (sb | 0x10_0000, 0x5000),
            (sb | 0x10_2000, 0x3000),
            (sb | 0x10_3000, 0x2000)
        ]
    );
    assert_eq!(c[0].vmcall_status, Some(vmcall::RETRY));
    assert!((0..5).all(|i| m.is_shared(0x10_0000 + i * 0x1000)));
    m.assert_clean();
}

#[test]
fn map_gpa_bounds_retries_without_progress() {
    let m = Model::new();
    for _ in 0..MAP_GPA_STALLS {
        m.inject(VMCALL, Some(vmcall::MAP_GPA), Inject::MapGpaPartial(0));
    }
    assert_eq!(
        map_gpa(&m, GpaWidth::W48, 0x10_0000, 0x2000, false),
        Err(TdxError::MapGpaStalled { gpa: 0x10_0000 })
    );
    assert_eq!(m.calls().len(), MAP_GPA_STALLS as usize);
    m.assert_clean();
    // Progress resets the count.
    let m = Model::new();
    for bytes in [0, 0, 0x1000, 0, 0] {
        m.inject(VMCALL, Some(vmcall::MAP_GPA), Inject::MapGpaPartial(bytes));
    }
    map_gpa(&m, GpaWidth::W48, 0x10_0000, 0x2000, false).unwrap();
    assert_eq!(m.calls().len(), 6);
    m.assert_clean();
}

#[test]
fn map_gpa_refuses_resume_addresses_outside_the_range() {
    let sb = 1u64 << 47;
    for bad in [
        sb | 0x10_2000,
        sb | 0x0F_F000,
        sb | 0x10_0800,
        0x10_1000,
        u64::MAX,
    ] {
        let m = Model::new();
        m.inject(VMCALL, Some(vmcall::MAP_GPA), Inject::MapGpaResumeAt(bad));
        assert!(
            matches!(
                map_gpa(&m, GpaWidth::W48, 0x10_0000, 0x2000, true),
                Err(TdxError::VmmProtocol { value, .. }) if value == bad
            ),
            "{bad:#x}"
        );
        assert_eq!(m.calls().len(), 1);
        m.assert_clean();
    }
}

#[test]
fn map_gpa_refuses_bad_ranges_and_reports_vmm_errors() {
    let m = Model::new();
    for (gpa, len) in [
        (0x800, 0x1000),
        (0x1000, 0x800),
        (0x1000, 0),
        ((1 << 47) - 0x1000, 0x2000),
        (u64::MAX - 0xFFF, 0x2000),
    ] {
        assert!(matches!(
            map_gpa(&m, GpaWidth::W48, gpa, len, true),
            Err(TdxError::InvalidArgument { .. })
        ));
    }
    assert!(m.calls().is_empty());
    // GPAW 52 puts the shared bit at 51.
    map_gpa(&m, GpaWidth::W52, 1 << 48, 0x1000, true).unwrap_err();
    m.set_vp_info(52, 0, 1, 1, 0);
    map_gpa(&m, GpaWidth::W52, 1 << 48, 0x1000, true).unwrap();
    assert_eq!(m.calls()[1].input.r12, (1 << 51) | (1 << 48));
    m.inject(
        VMCALL,
        Some(vmcall::MAP_GPA),
        Inject::Status(vmcall::GPA_INUSE),
    );
    assert_eq!(
        map_gpa(&m, GpaWidth::W52, 0, 0x1000, true),
        Err(TdxError::Vmcall {
            sub_function: vmcall::MAP_GPA,
            status: vmcall::GPA_INUSE
        })
    );
    m.inject(
        VMCALL,
        Some(vmcall::MAP_GPA),
        Inject::Status(vmcall::SUBFUNC_UNSUPPORTED),
    );
    assert!(map_gpa(&m, GpaWidth::W52, 0, 0x1000, true).is_err());
    // The first GPAW-52 call went out while the model still had width 48: that one was noted.
    assert_eq!(m.violations().len(), 1);
}

#[test]
fn report_fatal_error_packs_code_message_and_gpa() {
    let m = Model::new();
    map_gpa(&m, GpaWidth::W48, 0x5000, 0x1000, true).unwrap();
    let shared = 0x5000 | 1 << 47;
    let e = report_fatal_error(&m, 0x1234, b"accept failed at 0x1000", Some(shared));
    assert_eq!(e, TdxError::FatalReportReturned { status: 0 });
    let (r12, r13, r14, r15) = m.fatal().unwrap();
    assert_eq!(r12, (1 << 63) | (0x1234 << 16));
    assert_eq!(r13, shared);
    assert_eq!(r14.to_le_bytes(), *b"accept f");
    assert_eq!(r15.to_le_bytes(), *b"ailed at");
    m.assert_clean();
    // The model refuses a GPA that is not a shared page's shared GPA.
    let bad = Model::new();
    report_fatal_error(&bad, 0, b"x", Some(0x5000));
    assert!(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| bad.assert_clean())).is_err());
    let m = Model::new();
    report_fatal_error(&m, 0, b"hi", None);
    assert_eq!(
        m.fatal(),
        Some((0, 0, u64::from_le_bytes(*b"hi\0\0\0\0\0\0"), 0))
    );
    m.inject(
        VMCALL,
        Some(vmcall::REPORT_FATAL_ERROR),
        Inject::TdcallStatus(5),
    );
    assert_eq!(
        report_fatal_error(&m, 0, b"", None),
        TdxError::FatalReportReturned { status: 5 }
    );
    m.assert_clean();
}

#[test]
fn errors_name_the_leaf_and_status() {
    let cases = [
        (
            TdxError::Tdcall {
                leaf: 6,
                status: status::PAGE_SIZE_MISMATCH | 1,
            },
            "TDG.MEM.PAGE.ACCEPT (leaf 6) failed: status 0xc0000b0b00000001 (PAGE_SIZE_MISMATCH)",
        ),
        (
            TdxError::Busy {
                leaf: 2,
                status: BUSY_RTMR,
                attempts: 64,
            },
            "TDG.MR.RTMR.EXTEND (leaf 2) still busy after 64 attempts",
        ),
        (
            TdxError::Vmcall {
                sub_function: vmcall::MAP_GPA,
                status: vmcall::ALIGN_ERROR,
            },
            "TDG.VP.VMCALL<MapGPA> (0x10001) failed: VMM status 0x8000000000000002",
        ),
        (
            TdxError::Tdcall {
                leaf: 0x99,
                status: status::INSTR_REFUSED,
            },
            "refused by the firmware's instruction layer",
        ),
    ];
    for (e, want) in cases {
        let s = format!("{e}");
        assert!(s.contains(want), "{s}");
    }
}
