//! The #VE handler against the model: every exit reason, the length checks, the refusals.

extern crate std;

use super::*;
use crate::tdx::calls::model::{Inject, Model};
use crate::tdx::calls::{leaf, status, vmcall, TdcallArgs};
use std::cell::RefCell;
use std::string::ToString;
use std::vec;
use std::vec::Vec;

const VMCALL: u64 = leaf::VP_VMCALL;
const VEINFO: (u64, Option<u64>) = (leaf::VP_VEINFO_GET, None);

fn ve(reason: u32, qualification: u64, length: u32) -> VeInfo {
    VeInfo {
        exit_reason: reason,
        exit_qualification: qualification,
        instruction_length: length,
        ..VeInfo::default()
    }
}

fn frame() -> ExceptionFrame {
    ExceptionFrame {
        vector: 20,
        rip: 0x10_0000,
        rflags: 0x2,
        rax: 0xAAAA_AAAA_AAAA_AAAA,
        rbx: 0xBBBB_BBBB_BBBB_BBBB,
        rcx: 0xCCCC_CCCC_CCCC_CCCC,
        rdx: 0xDDDD_DDDD_DDDD_DDDD,
        ..ExceptionFrame::default()
    }
}

/// The model plus the VMM's answer to TDVMCALL<Instruction.HLT>, which the model does not know.
struct WithHalt<'a> {
    m: &'a Model,
    halts: RefCell<Vec<TdcallArgs>>,
    halt_status: u64,
}

impl<'a> WithHalt<'a> {
    fn new(m: &'a Model) -> Self {
        WithHalt {
            m,
            halts: RefCell::new(Vec::new()),
            halt_status: vmcall::SUCCESS,
        }
    }
}

impl Tdcall for WithHalt<'_> {
    fn tdcall(&self, regs: &mut TdcallArgs) -> u64 {
        if regs.rax == VMCALL && regs.r11 == VMCALL_HLT {
            self.halts.borrow_mut().push(*regs);
            regs.r10 = self.halt_status;
            regs.rax = 0;
            return 0;
        }
        self.m.tdcall(regs)
    }
}

#[test]
fn cpuid_in_the_hypervisor_range_goes_to_the_vmm() {
    let m = Model::new();
    m.set_cpuid(
        0x4000_0000,
        0,
        [0x4000_0001, 0x4B4D_564B, 0x564B_4D56, 0x4d],
    );
    m.set_ve(ve(exit_reason::CPUID, 0, 2));
    let mut f = frame();
    f.rax = 0xFFFF_FFFF_4000_0000; // upper half ignored
    f.rcx = 0;
    assert_eq!(handle(&m, &mut f, None), Handled::Resume);
    assert_eq!(
        (f.rax, f.rbx, f.rcx, f.rdx),
        (0x4000_0001, 0x4B4D_564B, 0x564B_4D56, 0x4d)
    );
    assert_eq!(f.rip, 0x10_0002);
    assert_eq!(m.sequence(), vec![VEINFO, (VMCALL, Some(vmcall::CPUID))]);
    m.assert_clean();
}

#[test]
fn cpuid_outside_the_hypervisor_range_reads_zeros_without_asking_the_vmm() {
    let m = Model::new();
    m.set_cpuid(0xB, 0, [1, 2, 3, 4]);
    m.set_ve(ve(exit_reason::CPUID, 0, 2));
    let mut f = frame();
    f.rax = 0xB;
    assert_eq!(handle(&m, &mut f, None), Handled::Resume);
    assert_eq!((f.rax, f.rbx, f.rcx, f.rdx, f.rip), (0, 0, 0, 0, 0x10_0002));
    assert_eq!(m.sequence(), vec![VEINFO]);
    m.assert_clean();
}

#[test]
fn io_in_and_out_of_every_size() {
    let m = Model::new();
    // IN AL, DX from port 0x3FD: size 0 (1 byte), bit 3 IN, port in bits 31:16.
    m.set_port(0x3FD, 0xFFFF_FF60); // the VMM's upper bits are dropped
    m.set_ve(ve(exit_reason::IO, (0x3FD << 16) | (1 << 3), 1));
    let mut f = frame();
    assert_eq!(handle(&m, &mut f, None), Handled::Resume);
    assert_eq!(f.rax, 0xAAAA_AAAA_AAAA_AA60, "AL replaced, the rest kept");
    assert_eq!(f.rip, 0x10_0001);

    // IN AX, imm8 (2 bytes with the immediate; bit 6 = immediate operand).
    m.set_port(0x70, 0x1234_5678);
    m.set_ve(ve(
        exit_reason::IO,
        (0x70 << 16) | (1 << 6) | (1 << 3) | 1,
        3,
    ));
    let mut f = frame();
    assert_eq!(handle(&m, &mut f, None), Handled::Resume);
    assert_eq!(f.rax, 0xAAAA_AAAA_AAAA_5678);

    // IN EAX, DX: zero-extends into RAX.
    m.set_port(0xCFC, 0xDEAD_BEEF);
    m.set_ve(ve(exit_reason::IO, (0xCFC << 16) | (1 << 3) | 3, 1));
    let mut f = frame();
    assert_eq!(handle(&m, &mut f, None), Handled::Resume);
    assert_eq!(f.rax, 0xDEAD_BEEF);

    // OUT DX, AL / AX / EAX: only the low bytes are sent.
    for (q, expect) in [(0u64, (1, 0xAA)), (1, (2, 0xAAAA)), (3, (4, 0xAAAA_AAAA))] {
        m.set_ve(ve(exit_reason::IO, (0x3F8 << 16) | q, 1));
        let mut f = frame();
        assert_eq!(handle(&m, &mut f, None), Handled::Resume);
        assert_eq!(f.rax, frame().rax, "OUT leaves RAX alone");
        assert_eq!(f.rip, 0x10_0001);
        let last = *m.port_writes().last().unwrap();
        assert_eq!(last, (0x3F8, expect.0, expect.1));
    }
    m.assert_clean();
}

#[test]
fn string_rep_and_bad_size_io_is_refused_without_a_call() {
    for q in [
        (0x3F8 << 16) | (1 << 4),            // OUTS
        (0x3F8 << 16) | (1 << 4) | (1 << 5), // REP OUTS
        (0x3F8 << 16) | (1 << 5),            // REP without string (malformed)
        (0x3F8 << 16) | (1 << 3) | 2,        // size 3
        (0x3F8 << 16) | 7,                   // size 8
    ] {
        let m = Model::new();
        m.set_ve(ve(exit_reason::IO, q, 2));
        let mut f = frame();
        let err = emulate(&m, &mut f, None).unwrap_err();
        assert!(matches!(
            err,
            VeError::StringIo { qualification } | VeError::IoSize { qualification }
                if qualification == q
        ));
        assert_eq!(f, frame(), "the frame is unchanged on refusal");
        assert_eq!(m.sequence(), vec![VEINFO]);
    }
}

#[test]
fn rdmsr_and_wrmsr() {
    let m = Model::new();
    m.set_msr(0x4B56_4D00, 0x1122_3344_5566_7788);
    m.set_ve(ve(exit_reason::MSR_READ, 0, 2));
    let mut f = frame();
    f.rcx = 0xFFFF_FFFF_4B56_4D00;
    assert_eq!(handle(&m, &mut f, None), Handled::Resume);
    assert_eq!((f.rax, f.rdx, f.rip), (0x5566_7788, 0x1122_3344, 0x10_0002));

    m.set_ve(ve(exit_reason::MSR_WRITE, 0, 2));
    let mut f = frame();
    f.rcx = 0x4B56_4D01;
    f.rax = 0xFFFF_FFFF_0000_0001; // upper halves of RAX/RDX are not part of the value
    f.rdx = 0xFFFF_FFFF_0000_0002;
    assert_eq!(handle(&m, &mut f, None), Handled::Resume);
    assert_eq!(f.rip, 0x10_0002);
    let c = m.calls().last().unwrap().clone();
    assert_eq!(
        (c.input.r11, c.input.r12, c.input.r13),
        (vmcall::WRMSR, 0x4B56_4D01, 0x2_0000_0001)
    );
    m.assert_clean();
}

#[test]
fn an_msr_the_vmm_refuses_is_fatal_and_leaves_the_frame() {
    let m = Model::new();
    m.set_ve(ve(exit_reason::MSR_READ, 0, 2));
    let mut f = frame();
    f.rcx = 0x1234;
    assert_eq!(
        emulate(&m, &mut f, None),
        Err(VeError::Emulation {
            exit_reason: 31,
            error: TdxError::Vmcall {
                sub_function: vmcall::RDMSR,
                status: vmcall::INVALID_OPERAND
            }
        })
    );
    let mut expect = frame();
    expect.rcx = 0x1234;
    assert_eq!(f, expect);
    // A TDVMCALL the module refuses, likewise.
    m.set_ve(ve(exit_reason::CPUID, 0, 2));
    m.inject(
        VMCALL,
        Some(vmcall::CPUID),
        Inject::TdcallStatus(status::OPERAND_INVALID),
    );
    let mut f = frame();
    f.rax = 0x4000_0000;
    assert!(matches!(
        emulate(&m, &mut f, None),
        Err(VeError::Emulation {
            exit_reason: 10,
            ..
        })
    ));
    assert_eq!(f.rip, frame().rip);
    m.assert_clean();
}

#[test]
fn hlt_with_interrupts_disabled_halts_through_the_vmm() {
    let m = Model::new();
    let t = WithHalt::new(&m);
    m.set_ve(ve(exit_reason::HLT, 0, 1));
    let mut f = frame();
    assert_eq!(handle(&t, &mut f, None), Handled::Resume);
    assert_eq!(f.rip, 0x10_0001);
    let halts = t.halts.borrow();
    assert_eq!(halts.len(), 1);
    let h = halts[0];
    assert_eq!(
        (h.rcx, h.r10, h.r11, h.r12, h.r13, h.r14, h.r15, h.rdx, h.r8, h.r9),
        (vmcall::EXPOSE_R10_R15, 0, VMCALL_HLT, 1, 0, 0, 0, 0, 0, 0)
    );
    m.assert_clean();
}

#[test]
fn hlt_with_interrupts_enabled_or_refused_by_the_vmm_is_fatal() {
    let m = Model::new();
    let t = WithHalt::new(&m);
    m.set_ve(ve(exit_reason::HLT, 0, 1));
    let mut f = frame();
    f.rflags = 0x202;
    assert_eq!(
        emulate(&t, &mut f, None),
        Err(VeError::HaltWithInterrupts { rflags: 0x202 })
    );
    assert!(t.halts.borrow().is_empty());

    let mut t = WithHalt::new(&m);
    t.halt_status = vmcall::SUBFUNC_UNSUPPORTED;
    m.set_ve(ve(exit_reason::HLT, 0, 1));
    let mut f = frame();
    assert_eq!(
        emulate(&t, &mut f, None),
        Err(VeError::Emulation {
            exit_reason: 12,
            error: TdxError::Vmcall {
                sub_function: VMCALL_HLT,
                status: vmcall::SUBFUNC_UNSUPPORTED
            }
        })
    );
    assert_eq!(f, frame());
    m.assert_clean();
}

#[test]
fn a_wrong_instruction_length_is_fatal_before_any_call() {
    for (reason, length) in [
        (exit_reason::CPUID, 0),
        (exit_reason::CPUID, 1),
        (exit_reason::MSR_READ, 1),
        (exit_reason::MSR_WRITE, 16),
        (exit_reason::IO, 0),
        (exit_reason::HLT, 0),
        (exit_reason::HLT, u32::MAX),
    ] {
        let m = Model::new();
        m.set_ve(ve(reason, 0x3F8 << 16, length));
        let mut f = frame();
        f.rax = 0x4000_0000;
        assert_eq!(
            emulate(&m, &mut f, None),
            Err(VeError::InstructionLength {
                exit_reason: reason,
                length
            })
        );
        assert_eq!(m.sequence(), vec![VEINFO], "no emulation call");
        assert_eq!(f.rip, frame().rip);
    }
    // RIP at the top of the address space cannot advance.
    let m = Model::new();
    m.set_ve(ve(exit_reason::CPUID, 0, 2));
    let mut f = frame();
    f.rip = u64::MAX - 1;
    assert_eq!(
        emulate(&m, &mut f, None),
        Err(VeError::RipOverflow {
            rip: u64::MAX - 1,
            length: 2
        })
    );
    assert_eq!(m.sequence(), vec![VEINFO]);
}

#[test]
fn ept_violations_are_refused_naming_the_address() {
    let m = Model::new();
    let gpa = (1 << 47) | 0xFEE0_0000;
    m.set_ve(VeInfo {
        exit_reason: exit_reason::EPT_VIOLATION,
        exit_qualification: 0x181,
        guest_linear_address: 0xFEE0_0000,
        guest_physical_address: gpa,
        instruction_length: 0,
        instruction_info: 0,
    });
    let mut f = frame();
    let e = emulate(&m, &mut f, Some(GpaWidth::W48)).unwrap_err();
    assert_eq!(
        e,
        VeError::EptViolation {
            gpa,
            gla: 0xFEE0_0000,
            qualification: 0x181,
            shared: Some(true)
        }
    );
    let text = e.to_string();
    assert!(text.contains("0x8000fee00000") && text.contains("0x181"));
    assert!(text.contains("MMIO is not emulated"));
    assert_eq!(f, frame());
    // A private GPA, and the width not yet known.
    m.set_ve(VeInfo {
        exit_reason: exit_reason::EPT_VIOLATION,
        guest_physical_address: 0x1000,
        ..VeInfo::default()
    });
    assert!(matches!(
        emulate(&m, &mut f, Some(GpaWidth::W52)),
        Err(VeError::EptViolation {
            shared: Some(false),
            ..
        })
    ));
    m.set_ve(ve(exit_reason::EPT_VIOLATION, 0, 0));
    assert!(matches!(
        emulate(&m, &mut f, None),
        Err(VeError::EptViolation { shared: None, .. })
    ));
    assert_eq!(m.sequence(), vec![VEINFO; 3]);
    m.assert_clean();
}

#[test]
fn unknown_and_unemulated_reasons_are_fatal_with_reason_and_qualification() {
    for reason in [
        exit_reason::INVD,
        exit_reason::VMCALL,
        exit_reason::CR_ACCESS,
        exit_reason::MWAIT,
        exit_reason::WBINVD,
        exit_reason::PCONFIG,
        0,
        999,
        u32::MAX,
    ] {
        let m = Model::new();
        m.set_ve(ve(reason, 0xABCD, 3));
        let mut f = frame();
        let e = emulate(&m, &mut f, None).unwrap_err();
        assert_eq!(
            e,
            VeError::Unsupported {
                exit_reason: reason,
                qualification: 0xABCD
            }
        );
        let text = e.to_string();
        assert!(
            text.contains(&std::format!("exit reason {reason}")),
            "{text}"
        );
        assert!(text.contains("0xabcd"), "{text}");
        assert!(matches!(handle(&m, &mut f, None), Handled::Fatal(_)));
        assert_eq!(f, frame());
    }
}

#[test]
fn no_ve_information_is_fatal() {
    let m = Model::new();
    let mut f = frame();
    assert_eq!(
        emulate(&m, &mut f, None),
        Err(VeError::VeInfo(TdxError::Tdcall {
            leaf: leaf::VP_VEINFO_GET,
            status: status::NO_VALID_VE_INFO
        }))
    );
    assert!(matches!(handle(&m, &mut f, None), Handled::Fatal(_)));
    assert_eq!(f, frame());
}

#[test]
fn messages_fit_the_static_buffer_and_are_cut_at_character_boundaries() {
    let e = VeError::Unsupported {
        exit_reason: 54,
        qualification: 7,
    };
    let m = Message::of(&e);
    assert_eq!(
        m.as_str(),
        "#VE: WBINVD (exit reason 54, exit qualification 0x7) is not emulated"
    );
    let mut long = Message::of(&e);
    let _ = fmt::Write::write_str(&mut long, &"é".repeat(200));
    assert!(long.as_str().len() <= MESSAGE_CAPACITY);
    assert!(long.as_str().ends_with('é'));
    // Whatever came first, the static message is never empty.
    assert!(!fatal_message(&e).is_empty());
    assert!(!fatal_message(&e).is_empty());
}
