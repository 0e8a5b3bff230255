//! The SEV-SNP #VC handler: `td_shim::snp::vc::decode` on arbitrary instruction bytes, then
//! `emulate` against a hypervisor that answers every GHCB event with values from the input.
//!
//! Input: a byte choosing the exit code (CPUID, IOIO, MSR, RDTSC, RDTSCP, NPF, or an arbitrary
//! one), RIP (8 bytes), RAX, RCX, RDX, RBX, RSI, RDI, R8, R12 (8 bytes each), then the
//! instruction bytes at RIP. Checked: a decoded length is between 1 and the bytes given (at
//! most 15); an emulation that succeeds moves RIP past exactly that length; one that fails
//! leaves every register as it was.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::cell::Cell;
use td_shim::exception::ExceptionFrame;
use td_shim::snp::cpu::{PageSize, PvalidateResult, SevCpu};
use td_shim::snp::cpuid::{CpuState, CpuidTable, ENTRY_SIZE, HEADER_SIZE};
use td_shim::snp::ghcb::{exit_code, Field, Ghcb, Session};
use td_shim::snp::vc::{decode, emulate, VcEnv, MAX_INSN};

const GHCB_GPA: u64 = 0x80_0000;
const EXITS: [u64; 6] = [
    exit_code::CPUID,
    exit_code::IOIO,
    exit_code::MSR,
    exit_code::RDTSC,
    exit_code::RDTSCP,
    exit_code::NPF,
];

/// Answers every event with success and `value` in RAX..RDX and the shared buffer.
struct Echo {
    value: u64,
    msr: Cell<u64>,
}

impl SevCpu for Echo {
    fn ghcb_msr_read(&self) -> u64 {
        self.msr.get()
    }
    fn ghcb_msr_write(&self, v: u64) {
        self.msr.set(v);
    }
    fn vmgexit(&self, ghcb: Option<&mut Ghcb>) {
        let g = ghcb.expect("#VC uses the GHCB page");
        let odd = self.value & 1 == 1;
        g.invalidate();
        for f in [Field::Rax, Field::Rbx, Field::Rcx, Field::Rdx] {
            g.set(f, self.value);
        }
        if odd {
            // Sometimes an output is missing.
            g.clear_valid(Field::Rdx);
        }
        g.shared_buffer_mut()[..8].copy_from_slice(&self.value.to_le_bytes());
        g.set(Field::SwExitInfo1, 0);
        g.set(Field::SwExitInfo2, 0);
    }
    fn pvalidate(&self, _: u64, _: PageSize, _: bool) -> PvalidateResult {
        unreachable!("#VC does not validate")
    }
    fn touch_pages(&self, _: u64, _: u64) {
        unreachable!("#VC does not touch pages")
    }
}

struct Env<'a> {
    rip: u64,
    insn: &'a [u8],
    mmio: bool,
}

impl VcEnv for Env<'_> {
    fn fetch(&self, rip: u64, buf: &mut [u8; MAX_INSN]) -> usize {
        assert_eq!(rip, self.rip);
        let n = self.insn.len().min(MAX_INSN);
        buf[..n].copy_from_slice(&self.insn[..n]);
        n
    }
    fn mmio_gpa(&self, va: u64, _: u64) -> Option<u64> {
        (self.mmio && va >> 52 == 0).then_some(va)
    }
    fn cpu_state(&self) -> CpuState {
        CpuState {
            osxsave: true,
            pke: false,
            xcr0: 0x3,
            xss: 0,
        }
    }
    fn secure_tsc(&self) -> bool {
        !self.mmio
    }
}

/// A small CPUID page, from the documented layout.
fn table() -> CpuidTable {
    let entries: [[u32; 6]; 4] = [
        [0, 0, 0xD, 0, 0, 0],
        [1, 0, 0xA00F11, 0x800, 0, 1 << 9],
        [0xD, 0, 7, 0x240, 0x340, 0],
        [0x8000_0000, 0, 0x8000_0021, 0, 0, 0],
    ];
    let mut p = vec![0u8; HEADER_SIZE + entries.len() * ENTRY_SIZE];
    p[..4].copy_from_slice(&(entries.len() as u32).to_le_bytes());
    for (i, e) in entries.iter().enumerate() {
        let at = HEADER_SIZE + i * ENTRY_SIZE;
        p[at..at + 4].copy_from_slice(&e[0].to_le_bytes());
        p[at + 4..at + 8].copy_from_slice(&e[1].to_le_bytes());
        if e[0] == 0xD {
            p[at + 8] = 1; // XCR0_IN = 1: the entry Linux uses for subleaf 0
        }
        for (j, v) in e[2..].iter().enumerate() {
            p[at + 24 + 4 * j..at + 28 + 4 * j].copy_from_slice(&v.to_le_bytes());
        }
    }
    CpuidTable::parse(&p).unwrap()
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 1 + 8 + 64 {
        return;
    }
    let q = |i: usize| u64::from_le_bytes(data[1 + 8 * i..9 + 8 * i].try_into().unwrap());
    let exit = EXITS
        .get(usize::from(data[0]))
        .copied()
        .unwrap_or(u64::from(data[0]) << 8 | u64::from(data[0]));
    let frame = ExceptionFrame {
        vector: 29,
        error_code: exit,
        rip: q(0),
        rax: q(1),
        rcx: q(2),
        rdx: q(3),
        rbx: q(4),
        rsi: q(5),
        rdi: q(6),
        r8: q(7),
        r12: q(8),
        ..ExceptionFrame::default()
    };
    let insn = &data[1 + 8 + 64..];
    let d = decode(exit, insn, &frame);
    if let Ok(d) = d {
        assert!(d.len >= 1 && d.len <= insn.len().min(MAX_INSN));
    }

    let cpu = Echo {
        value: q(1) ^ q(8),
        msr: Cell::new(0),
    };
    let env = Env {
        rip: frame.rip,
        insn,
        mmio: q(2) & 1 == 0,
    };
    let t = table();
    let mut g = Ghcb::new();
    let mut s = Session::new(&cpu, &mut g, GHCB_GPA).unwrap();
    let mut f = frame.clone();
    match emulate(&mut s, &t, &env, &mut f) {
        Ok(done) => {
            assert_eq!(Ok(done), d);
            assert_eq!(f.rip, frame.rip + done.len as u64);
        }
        Err(e) => {
            let _ = e.to_string();
            assert_eq!(f, frame, "a failed emulation changed the frame");
        }
    }
});
