//! Host tests of the SNP modules against the model of the hypervisor and the SNP hardware
//! (`super::model`), plus property tests of the parsers and the fuzz seeds.

extern crate std;

mod cpuid;
mod detect;
mod ghcb;
mod hashes;
mod msr_protocol;
mod psc;
mod seeds;
mod validate;
mod vc;

use super::cpu::CpuidResult;
use super::cpuid::{CpuState, CpuidFunction, HEADER_SIZE};
use super::ghcb::{Ghcb, Session};
use super::model::Model;
use super::vc::{VcEnv, MAX_INSN};
use std::vec::Vec;

/// Where the tests put the GHCB (shared RAM).
pub(crate) const GHCB_GPA: u64 = 0x80_0000;
pub(crate) const MIB: u64 = 0x10_0000;

/// A model that has negotiated and registered the GHCB at [`GHCB_GPA`], with RAM
/// `[0, 2 GiB)`.
pub(crate) fn ready() -> Model {
    let m = Model::ready(GHCB_GPA);
    m.add_ram(0, 0x8000_0000);
    m
}

/// Runs `f` with a session on `m`.
pub(crate) fn with_session<R>(m: &Model, f: impl FnOnce(&mut Session<'_, Model>) -> R) -> R {
    let mut g = Ghcb::new();
    let mut s = Session::new(m, &mut g, GHCB_GPA).unwrap();
    f(&mut s)
}

/// One CPUID-page entry.
pub(crate) fn func(eax_in: u32, ecx_in: u32, r: [u32; 4]) -> CpuidFunction {
    CpuidFunction {
        eax_in,
        ecx_in,
        eax: r[0],
        ebx: r[1],
        ecx: r[2],
        edx: r[3],
        ..CpuidFunction::default()
    }
}

/// The bytes of a CPUID page holding `functions`, built from the documented layout.
pub(crate) fn cpuid_page(functions: &[CpuidFunction]) -> Vec<u8> {
    let mut p = std::vec![0u8; 4096];
    p[..4].copy_from_slice(&(functions.len() as u32).to_le_bytes());
    for (i, f) in functions.iter().enumerate() {
        let at = HEADER_SIZE + i * 48;
        let e = &mut p[at..at + 48];
        e[0..4].copy_from_slice(&f.eax_in.to_le_bytes());
        e[4..8].copy_from_slice(&f.ecx_in.to_le_bytes());
        e[8..16].copy_from_slice(&f.xcr0_in.to_le_bytes());
        e[16..24].copy_from_slice(&f.xss_in.to_le_bytes());
        e[24..28].copy_from_slice(&f.eax.to_le_bytes());
        e[28..32].copy_from_slice(&f.ebx.to_le_bytes());
        e[32..36].copy_from_slice(&f.ecx.to_le_bytes());
        e[36..40].copy_from_slice(&f.edx.to_le_bytes());
        e[40..48].copy_from_slice(&f.reserved.to_le_bytes());
    }
    p
}

/// A CPUID page like QEMU's for an EPYC guest, reduced to what the tests look at.
pub(crate) fn epyc_functions() -> Vec<CpuidFunction> {
    std::vec![
        func(0, 0, [0xD, 0x6874_7541, 0x444D_4163, 0x6974_6E65]),
        // Leaf 1: APIC ID bits (31:24) and the APIC bit (EDX 9) are the hypervisor's.
        func(1, 0, [0x00A0_0F11, 0x0080_0800, 0x76FA_3203, 0x178B_FBFF]),
        func(7, 0, [0, 0x219C_97A9, 0x0040_069C | 1 << 4, 0]),
        func(0xB, 0, [1, 1, 0x100, 0]),
        func(0xB, 1, [4, 2, 0x201, 0]),
        // XSAVE: subleaf 0 (XCR0_IN 1), 1 (XSAVEC | XSAVES), 2 (AVX: 256 bytes at 576).
        func(0xD, 0, [0x7, 0x340, 0x340, 0]),
        CpuidFunction {
            xcr0_in: 1,
            ..func(0xD, 0, [0x7, 0x240, 0x340, 0])
        },
        CpuidFunction {
            xcr0_in: 1,
            ..func(0xD, 1, [0xF, 0x240, 0x1800, 0])
        },
        func(0xD, 2, [0x100, 0x240, 0, 0]),
        func(0xD, 11, [0x10, 0, 1, 0]),
        func(0x4000_0000, 0, [0x4000_0001, 0, 0, 0]),
        func(
            0x8000_0000,
            0,
            [0x8000_0021, 0x6874_7541, 0x444D_4163, 0x6974_6E65]
        ),
        func(0x8000_001E, 0, [0, 0x0000_0100, 0, 0]),
        // SEV, SEV-ES, SNP, VMPL; C-bit 51, 1 bit of physical-address reduction.
        func(
            0x8000_001F,
            0,
            [0x0001_003F | 1 << 4, 0x0000_0073, 0x1FD, 1]
        ),
        func(0x8000_0021, 0, [0x45, 0, 0, 0]),
    ]
}

/// The firmware side of a #VC: the instruction bytes at RIP and which addresses are MMIO.
pub(crate) struct Env {
    pub rip: u64,
    pub insn: Vec<u8>,
    /// `[base, end)` of shared MMIO, identity mapped.
    pub mmio: (u64, u64),
    pub state: CpuState,
    pub secure_tsc: bool,
}

impl Env {
    pub fn new(rip: u64, insn: &[u8]) -> Self {
        Env {
            rip,
            insn: insn.to_vec(),
            mmio: (0xFEC0_0000, 0xFF00_0000),
            state: CpuState::default(),
            secure_tsc: false,
        }
    }
}

impl VcEnv for Env {
    fn fetch(&self, rip: u64, buf: &mut [u8; MAX_INSN]) -> usize {
        assert_eq!(rip, self.rip, "fetch at the wrong RIP");
        let n = self.insn.len().min(MAX_INSN);
        buf[..n].copy_from_slice(&self.insn[..n]);
        n
    }

    fn mmio_gpa(&self, va: u64, len: u64) -> Option<u64> {
        (va >= self.mmio.0 && va.checked_add(len)? <= self.mmio.1).then_some(va)
    }

    fn cpu_state(&self) -> CpuState {
        self.state
    }

    fn secure_tsc(&self) -> bool {
        self.secure_tsc
    }
}

/// A hypervisor CPUID callback that must not be called.
pub(crate) fn no_hv(_: u32, _: u32) -> Result<CpuidResult, super::cpuid::CpuidError> {
    panic!("the hypervisor was asked")
}
