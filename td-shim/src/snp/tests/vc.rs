//! The #VC handler: every exit code it emulates, the decoder's accepted and refused forms.

extern crate std;

use super::super::cpuid::{CpuState, CpuidTable};
use super::super::ghcb::{exit_code, ioio, AddrSize, GhcbError, Width};
use super::super::model::{Call, Model};
use super::super::vc::*;
use super::{cpuid_page, epyc_functions, ready, with_session, Env};
use crate::exception::{ExceptionFrame, Handled};
use proptest::prelude::*;
use std::string::ToString;

const RIP: u64 = 0x10_0000;

fn frame(exit: u64) -> ExceptionFrame {
    ExceptionFrame {
        vector: 29,
        error_code: exit,
        rip: RIP,
        rflags: 0x2,
        rax: 0xAAAA_AAAA_AAAA_AAAA,
        rbx: 0xBBBB_BBBB_BBBB_BBBB,
        rcx: 0xCCCC_CCCC_CCCC_CCCC,
        rdx: 0xDDDD_DDDD_DDDD_DDDD,
        rsi: 0x5151_5151_5151_5151,
        rdi: 0xD1D1_D1D1_D1D1_D1D1,
        ..ExceptionFrame::default()
    }
}

fn table() -> CpuidTable {
    CpuidTable::parse(&cpuid_page(&epyc_functions())).unwrap()
}

/// Emulates `insn` (at [`RIP`]) with `f` against `m`.
fn run(m: &Model, env: &Env, f: &mut ExceptionFrame) -> Result<Decoded, VcError> {
    let t = table();
    with_session(m, |s| emulate(s, &t, env, f))
}

fn run_insn(m: &Model, insn: &[u8], f: &mut ExceptionFrame) -> Result<Decoded, VcError> {
    run(m, &Env::new(RIP, insn), f)
}

fn ghcb_infos(m: &Model) -> std::vec::Vec<(u64, u64, u64)> {
    m.calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Ghcb {
                exit_code,
                info1,
                info2,
            } => Some((exit_code, info1, info2)),
            _ => None,
        })
        .collect()
}

#[test]
fn cpuid_is_answered_from_the_page() {
    let m = ready();
    m.set_cpuid(1, 0, [0, 0x0500_0000, 0, 1 << 9]);
    let mut f = frame(exit_code::CPUID);
    f.rax = 0xFFFF_FFFF_0000_0001;
    f.rcx = 0;
    let d = run_insn(&m, &[0x0F, 0xA2, 0x90], &mut f).unwrap();
    assert_eq!(
        d,
        Decoded {
            insn: Insn::Cpuid,
            len: 2
        }
    );
    assert_eq!(
        (f.rax, f.rbx, f.rcx, f.rdx),
        (0x00A0_0F11, 0x0580_0800, 0x76FA_3203, 0x178B_FBFF)
    );
    assert_eq!(f.rip, RIP + 2);
    // Only leaf 1 went to the hypervisor.
    assert_eq!(ghcb_infos(&m), [(exit_code::CPUID, 0, 0)]);
    // A leaf the page answers alone.
    let mut f = frame(exit_code::CPUID);
    f.rax = 0x8000_001F;
    run_insn(&m, &[0x0F, 0xA2], &mut f).unwrap();
    assert_eq!((f.rax, f.rbx), (0x0001_003F | 1 << 4, 0x73));
    assert_eq!(ghcb_infos(&m).len(), 1);
    m.assert_clean();
}

#[test]
fn a_cpuid_failure_leaves_the_frame_alone() {
    let m = ready();
    let mut f = frame(exit_code::CPUID);
    f.rax = 0xD;
    f.rcx = 0;
    let mut env = Env::new(RIP, &[0x0F, 0xA2]);
    env.state = CpuState {
        osxsave: true,
        xcr0: 0xE7,
        ..CpuState::default()
    };
    let before = f.clone();
    let e = run(&m, &env, &mut f).unwrap_err();
    assert!(
        matches!(
            e,
            VcError::Cpuid {
                leaf: 0xD,
                subleaf: 0,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(f, before);
    // The wrong opcode for the exit code.
    let e = run_insn(&m, &[0x0F, 0xA3], &mut f).unwrap_err();
    assert!(matches!(
        e,
        VcError::Decode {
            exit_code: 0x72,
            len: 2,
            ..
        }
    ));
    assert!(e.to_string().contains("[0f a3]"), "{e}");
    assert_eq!(f, before);
    m.assert_clean();
}

#[test]
fn port_input_merges_like_the_instruction() {
    let m = ready();
    m.set_port(0x3FD, 0xFFFF_FF60);
    m.set_port(0x71, 0x1234_5678);
    m.set_port(0x511, 0x8765_4321);
    let cases: [(&[u8], u64, u64, usize); 6] = [
        (&[0xEC], 0x3FD, 0xAAAA_AAAA_AAAA_AA60, 1), // in al, dx
        (&[0x66, 0xED], 0x3FD, 0xAAAA_AAAA_AAAA_FF60, 2), // in ax, dx
        (&[0xED], 0x511, 0x8765_4321, 1),           // in eax, dx (zero-extends)
        (&[0xE4, 0x71], 0, 0xAAAA_AAAA_AAAA_AA78, 2), // in al, 0x71
        (&[0x48, 0xE5, 0x71], 0, 0x1234_5678, 3),   // REX.W ignored: in eax, 0x71
        (&[0x67, 0xEC], 0x3FD, 0xAAAA_AAAA_AAAA_AA60, 2),
    ];
    for (insn, dx, rax, len) in cases {
        let mut f = frame(exit_code::IOIO);
        if dx != 0 {
            f.rdx = 0xFFFF_0000 | dx;
        }
        run_insn(&m, insn, &mut f).unwrap();
        assert_eq!((f.rax, f.rip), (rax, RIP + len as u64), "{insn:02x?}");
    }
    let infos = ghcb_infos(&m);
    assert_eq!(
        infos[0],
        (
            exit_code::IOIO,
            0x03FD_0000 | ioio::ADDR_64 | ioio::DATA_8 | 1,
            0
        )
    );
    assert_eq!(infos[1].1, 0x03FD_0000 | ioio::ADDR_64 | ioio::DATA_16 | 1);
    assert_eq!(infos[5].1, 0x03FD_0000 | ioio::ADDR_32 | ioio::DATA_8 | 1);
    m.assert_clean();
}

#[test]
fn port_output_sends_the_low_bits() {
    let m = ready();
    for (insn, width) in [
        (&[0xEE][..], 1u64),
        (&[0x66, 0xEF], 2),
        (&[0xEF], 4),
        (&[0xE6, 0x80], 1),
        (&[0xE7, 0x80], 4),
    ] {
        let mut f = frame(exit_code::IOIO);
        f.rdx = 0x3F8;
        let before = f.rax;
        run_insn(&m, insn, &mut f).unwrap();
        assert_eq!(f.rax, before, "OUT leaves RAX");
        let _ = width;
    }
    assert_eq!(
        m.port_writes(),
        [
            (0x3F8, 1, 0xAA),
            (0x3F8, 2, 0xAAAA),
            (0x3F8, 4, 0xAAAA_AAAA),
            (0x80, 1, 0xAA),
            (0x80, 4, 0xAAAA_AAAA)
        ]
    );
    m.assert_clean();
}

#[test]
fn string_rep_and_odd_port_forms_are_refused() {
    let m = ready();
    let mut f = frame(exit_code::IOIO);
    let before = f.clone();
    for insn in [&[0x6C][..], &[0x66, 0x6F], &[0x48, 0x6E]] {
        assert_eq!(
            run_insn(&m, insn, &mut f),
            Err(VcError::StringIo { rip: RIP })
        );
    }
    for insn in [
        &[0xF3, 0x6C][..],   // rep insb: the prefix is refused first
        &[0xF3, 0xEC],       // rep on a plain IN
        &[0x2E, 0xEC],       // a segment prefix
        &[0x48, 0x66, 0xEC], // a prefix after REX
        &[0xE4],             // truncated
        &[0x90],             // not I/O at all
        &[],
    ] {
        assert!(
            matches!(run_insn(&m, insn, &mut f), Err(VcError::Decode { .. })),
            "{insn:02x?}"
        );
    }
    assert_eq!(f, before);
    assert!(m.calls().is_empty());
}

#[test]
fn msrs_go_to_the_hypervisor() {
    let m = ready();
    m.set_msr(0x1B, 0x1_FEE0_0900);
    let mut f = frame(exit_code::MSR);
    f.rcx = 0xFFFF_FFFF_0000_001B;
    run_insn(&m, &[0x0F, 0x32], &mut f).unwrap();
    assert_eq!((f.rax, f.rdx, f.rip), (0xFEE0_0900, 1, RIP + 2));
    let mut f = frame(exit_code::MSR);
    f.rcx = 0xC000_0103;
    f.rax = 0xFFFF_FFFF_0000_0007;
    f.rdx = 0xFFFF_FFFF_0000_0001;
    run_insn(&m, &[0x0F, 0x30], &mut f).unwrap();
    assert_eq!(m.msr(0xC000_0103), Some(0x1_0000_0007));
    // An MSR the hypervisor refuses: fatal, frame unchanged.
    let mut f = frame(exit_code::MSR);
    f.rcx = 0x9999;
    let before = f.clone();
    let e = run_insn(&m, &[0x0F, 0x32], &mut f).unwrap_err();
    assert!(matches!(
        e,
        VcError::Ghcb {
            exit_code: 0x7C,
            error: GhcbError::Exception { vector: 13, .. }
        }
    ));
    assert_eq!(f, before);
    assert!(matches!(
        run_insn(&m, &[0x0F, 0x31], &mut f),
        Err(VcError::Decode { .. })
    ));
    m.assert_clean();
}

#[test]
fn rdtsc_unless_secure_tsc() {
    let m = ready();
    let mut f = frame(exit_code::RDTSC);
    run_insn(&m, &[0x0F, 0x31], &mut f).unwrap();
    assert_eq!((f.rax, f.rdx, f.rip), (0x5678_9ABC, 0x1234, RIP + 2));
    let mut f = frame(exit_code::RDTSCP);
    run_insn(&m, &[0x0F, 0x01, 0xF9], &mut f).unwrap();
    assert_eq!(
        (f.rax, f.rdx, f.rcx, f.rip),
        (0x5678_9ABC, 0x1234, 7, RIP + 3)
    );
    let mut env = Env::new(RIP, &[0x0F, 0x31]);
    env.secure_tsc = true;
    let mut f = frame(exit_code::RDTSC);
    assert_eq!(
        run(&m, &env, &mut f),
        Err(VcError::SecureTsc { exit_code: 0x6E })
    );
    m.assert_clean();
}

#[test]
fn mmio_loads_write_registers_as_mov_does() {
    let m = ready();
    m.set_mmio(0xFEE0_0030, 0x8877_6655_4433_2211);
    m.set_mmio(0xFEE0_0038, 0xF0F1_F2F3_F4F5_F6F7);
    type Case = (
        &'static [u8],
        fn(&mut ExceptionFrame),
        fn(&ExceptionFrame) -> u64,
        u64,
        usize,
    );
    let cases: [Case; 10] = [
        // mov eax, [rdi]: zero-extends.
        (
            &[0x8B, 0x07],
            |f| f.rdi = 0xFEE0_0030,
            |f| f.rax,
            0x4433_2211,
            2,
        ),
        // mov ax, [rdi]: merges.
        (
            &[0x66, 0x8B, 0x07],
            |f| f.rdi = 0xFEE0_0030,
            |f| f.rax,
            0xAAAA_AAAA_AAAA_2211,
            3,
        ),
        // mov rax, [rdi + 8]
        (
            &[0x48, 0x8B, 0x47, 0x08],
            |f| f.rdi = 0xFEE0_0030,
            |f| f.rax,
            0xF0F1_F2F3_F4F5_F6F7,
            4,
        ),
        // mov ah, [rdi]: the high byte.
        (
            &[0x8A, 0x27],
            |f| f.rdi = 0xFEE0_0030,
            |f| f.rax,
            0xAAAA_AAAA_AAAA_11AA,
            2,
        ),
        // mov sil, [rdi]: with REX, register 6 is SIL.
        (
            &[0x40, 0x8A, 0x37],
            |f| f.rdi = 0xFEE0_0030,
            |f| f.rsi,
            0x5151_5151_5151_5111,
            3,
        ),
        // movzx ecx, byte [rdi]
        (
            &[0x0F, 0xB6, 0x0F],
            |f| f.rdi = 0xFEE0_0030,
            |f| f.rcx,
            0x11,
            3,
        ),
        // movzx r9d, word [r8]
        (
            &[0x45, 0x0F, 0xB7, 0x08],
            |f| f.r8 = 0xFEE0_0030,
            |f| f.r9,
            0x2211,
            4,
        ),
        // mov edx, [rcx*4 + 0xfee00028] (SIB, no base)
        (
            &[0x8B, 0x14, 0x8D, 0x28, 0x00, 0xE0, 0x0E],
            |f| f.rcx = 2,
            |f| f.rdx,
            0x4433_2211,
            7,
        ),
        // mov eax, [rbx + rsi*2 - 0x10]
        (
            &[0x8B, 0x44, 0x73, 0xF0],
            |f| {
                f.rbx = 0xFEE0_0000;
                f.rsi = 0x20
            },
            |f| f.rax,
            0x4433_2211,
            4,
        ),
        // mov r10d, [r12 + 0x30] (REX.B base, disp32)
        (
            &[0x45, 0x8B, 0x94, 0x24, 0x30, 0, 0, 0],
            |f| f.r12 = 0xFEE0_0000,
            |f| f.r10,
            0x4433_2211,
            8,
        ),
    ];
    for (i, (insn, setup, get, want, len)) in cases.into_iter().enumerate() {
        let mut f = frame(exit_code::NPF);
        setup(&mut f);
        let mut env = Env::new(RIP, insn);
        env.mmio = (0xFEE0_0000, 0xFEE0_1000);
        if i == 7 {
            // The SIB form reads 0x0EE00028 + 2 * 4: its own window.
            env.mmio = (0x0EE0_0000, 0x0EE0_1000);
            m.set_mmio(0x0EE0_0030, 0x4433_2211);
        }
        run(&m, &env, &mut f).unwrap();
        assert_eq!(
            (get(&f), f.rip),
            (want, RIP + len as u64),
            "case {i}: {insn:02x?}"
        );
    }
    m.assert_clean();
}

#[test]
fn mmio_stores_send_the_register_or_immediate() {
    let m = ready();
    let mut env = Env::new(RIP, &[]);
    env.mmio = (0xFEE0_0000, 0xFEE0_1000);
    let cases: [(&[u8], u64, u64, u64); 6] = [
        (&[0x89, 0x07], 0xFEE0_0300, 4, 0xAAAA_AAAA), // mov [rdi], eax
        (&[0x66, 0x89, 0x07], 0xFEE0_0300, 2, 0xAAAA), // mov [rdi], ax
        (&[0x88, 0x3F], 0xFEE0_0300, 1, 0xBB),        // mov [rdi], bh
        (
            &[0xC7, 0x47, 0x10, 0x00, 0x45, 0x0C, 0x00],
            0xFEE0_0310,
            4,
            0x000C_4500,
        ), // mov dword [rdi+0x10], imm32
        (&[0xC6, 0x07, 0x5A], 0xFEE0_0300, 1, 0x5A),  // mov byte [rdi], 0x5a
        (
            &[0x48, 0xC7, 0x07, 0xFF, 0xFF, 0xFF, 0xFF],
            0xFEE0_0300,
            8,
            u64::MAX,
        ), // sign-extended
    ];
    for (insn, gpa, size, value) in cases {
        let mut f = frame(exit_code::NPF);
        f.rdi = 0xFEE0_0300;
        env.insn = insn.to_vec();
        let before = f.clone();
        run(&m, &env, &mut f).unwrap();
        assert_eq!(f.rip, RIP + insn.len() as u64);
        assert_eq!(
            ExceptionFrame { rip: RIP, ..f },
            before,
            "a store changes only RIP"
        );
        assert_eq!(
            m.mmio_writes().last(),
            Some(&(gpa, size, value)),
            "{insn:02x?}"
        );
    }
    // RIP-relative: mov [rip + disp32], eax — the address is after the instruction.
    let mut env = Env::new(RIP, &[0x89, 0x05, 0xFA, 0x0F, 0x00, 0x00]);
    env.mmio = (RIP, RIP + 0x2000);
    let mut f = frame(exit_code::NPF);
    run(&m, &env, &mut f).unwrap();
    assert_eq!(
        m.mmio_writes().last(),
        Some(&(RIP + 6 + 0xFFA, 4, 0xAAAA_AAAA))
    );
    m.assert_clean();
}

#[test]
fn mmio_outside_shared_mmio_or_odd_forms_are_refused() {
    let m = ready();
    let mut f = frame(exit_code::NPF);
    f.rdi = 0x20_0000;
    let before = f.clone();
    // Not MMIO the firmware maps shared.
    assert_eq!(
        run_insn(&m, &[0x8B, 0x07], &mut f),
        Err(VcError::NotMmio {
            va: 0x20_0000,
            len: 4
        })
    );
    // Unaligned.
    f.rdi = 0xFEE0_0302;
    assert_eq!(
        run_insn(&m, &[0x8B, 0x07], &mut f),
        Err(VcError::NotMmio {
            va: 0xFEE0_0302,
            len: 4
        })
    );
    f.rdi = 0xFEE0_0300;
    for insn in [
        &[0x8B, 0xC0][..],         // a register operand
        &[0xA1, 0, 0, 0, 0],       // mov eax, moffs
        &[0x64, 0x8B, 0x07],       // FS
        &[0x67, 0x8B, 0x07],       // 32-bit addressing
        &[0xF0, 0x89, 0x07],       // LOCK
        &[0x0F, 0xBE, 0x07],       // movsx
        &[0xC7, 0x4F, 0x10, 0, 0], // C7 /1, and truncated
        &[0x48, 0x66, 0x8B, 0x07], // a prefix after REX
        &[0x8B],                   // truncated
        &[0xA5],                   // movs
        &[0x66; 15],               // too long
    ] {
        assert!(
            matches!(
                run_insn(&m, insn, &mut f),
                Err(VcError::Decode {
                    exit_code: 0x400,
                    ..
                })
            ),
            "{insn:02x?}"
        );
    }
    assert_eq!(
        ExceptionFrame {
            rdi: 0x20_0000,
            ..f
        },
        before
    );
    assert!(m.calls().is_empty());
}

#[test]
fn other_exit_codes_are_fatal_with_the_code() {
    let m = ready();
    for code in [
        exit_code::HLT,
        exit_code::WBINVD,
        exit_code::VMMCALL,
        0x404,
        0x8000_0001,
    ] {
        let mut f = frame(code);
        let e = run_insn(&m, &[0xF4], &mut f).unwrap_err();
        assert_eq!(
            e,
            VcError::Unsupported {
                exit_code: code,
                rip: RIP
            }
        );
        assert!(e.to_string().contains(&std::format!("{code:#x}")));
    }
    // RIP + length overflows.
    let mut f = frame(exit_code::CPUID);
    f.rip = u64::MAX;
    let env = Env::new(u64::MAX, &[0x0F, 0xA2]);
    assert_eq!(
        run(&m, &env, &mut f),
        Err(VcError::RipOverflow { rip: u64::MAX })
    );
    assert!(m.calls().is_empty());
}

#[test]
fn handle_resumes_or_reports() {
    let m = ready();
    let t = table();
    let env = Env::new(RIP, &[0x0F, 0x31]);
    let mut f = frame(exit_code::RDTSC);
    let h = with_session(&m, |s| handle(s, &t, &env, &mut f));
    assert_eq!(h, Handled::Resume);
    // The only test that reports: the static message is this one's.
    let mut f = frame(0x404);
    let h = with_session(&m, |s| handle(s, &t, &env, &mut f));
    let Handled::Fatal(text) = h else {
        panic!("{h:?}")
    };
    assert!(text.starts_with("#VC exit code 0x404"), "{text}");
    assert_eq!(
        with_session(&m, |s| handle(s, &t, &env, &mut f)),
        Handled::Fatal("#VC: another #VC could not be handled while the first was being reported")
    );
}

#[test]
fn decoder_results() {
    let f = frame(0);
    assert_eq!(
        decode(exit_code::IOIO, &[0x66, 0xE7, 0x80], &f),
        Ok(Decoded {
            insn: Insn::Io {
                input: false,
                width: Width::W16,
                port: Port::Imm(0x80),
                addr: AddrSize::A64
            },
            len: 3
        })
    );
    assert_eq!(merge_in(u64::MAX, Width::W8, 0x12), 0xFFFF_FFFF_FFFF_FF12);
    assert_eq!(merge_in(u64::MAX, Width::W32, 0x1_0000_0012), 0x12);
    let mut g = frame(0);
    write_dest(&mut g, Dest::High8(3), 0x1FF);
    assert_eq!(g.rbx, 0xBBBB_BBBB_BBBB_FFBB);
    write_dest(&mut g, Dest::R32(15), u64::MAX);
    assert_eq!(g.r15, 0xFFFF_FFFF);
    assert_eq!(reg(&g, 4), g.rsp);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..20),
        exit in prop_oneof![Just(0x72u64), Just(0x7B), Just(0x7C), Just(0x6E), Just(0x87), Just(0x400), any::<u64>()],
        regs in any::<[u64; 4]>(),
    ) {
        let mut f = frame(exit);
        f.rdi = regs[0];
        f.rsi = regs[1];
        f.rbx = regs[2];
        f.rip = regs[3];
        if let Ok(d) = decode(exit, &bytes, &f) {
            prop_assert!(d.len >= 1 && d.len <= bytes.len().min(MAX_INSN));
        }
    }
}
