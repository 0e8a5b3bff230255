//! The #VC handler (vector 29): pure functions over an [`ExceptionFrame`], the GHCB
//! ([`Session`]), the CPUID page and a small [`VcEnv`] for what only the firmware can read
//! (instruction bytes, its page tables, CR4/XCR0/XSS). Tested on the host against the model of
//! the hypervisor.
//!
//! # What happens on a #VC
//!
//! The error code is the SVM exit code of the intercepted instruction. Unlike a TDX #VE there
//! is no instruction length or address in hardware-provided information: the handler reads the
//! instruction at RIP ([`VcEnv::fetch`]) and decodes it (Linux `vc_decode_insn`,
//! `vc_check_opcode_bytes`), so the decoder accepts only the encodings below and refuses
//! everything else — no prefix, operand or addressing form is guessed.
//!
//! | Exit code | Instruction accepted | Emulation |
//! |---|---|---|
//! | CPUID 0x72 | `0F A2` | from the CPUID page ([`CpuidTable::lookup`]; the hypervisor is asked, through the GHCB, only for the APIC/topology IDs Linux takes from it); EAX..EDX zero-extended into RAX..RDX |
//! | IOIO 0x7B | `E4`–`E7` (port imm8), `EC`–`EF` (port DX), with optional `66` (16-bit), `67` (32-bit addresses), a REX last | IOIO event; IN writes AL/AX (rest of RAX kept) or EAX (zero-extended). String forms `6C`–`6F` are refused ([`VcError::StringIo`]), as are REP, LOCK and segment prefixes |
//! | MSR 0x7C | `0F 32` RDMSR, `0F 30` WRMSR | MSR event; the hypervisor asking for #GP is fatal |
//! | RDTSC 0x6E, RDTSCP 0x87 | `0F 31`, `0F 01 F9` | RDTSC(P) event; refused under Secure TSC (the hypervisor must not intercept it then; Linux `vc_handle_rdtsc`) |
//! | NPF 0x400 | `MOV` to/from memory: `88`, `89`, `8A`, `8B`, `C6 /0`, `C7 /0`, `MOVZX` `0F B6`, `0F B7`; prefixes `66` and REX only; ModRM/SIB addressing with base, index, scale, disp8/disp32 and RIP-relative | the linear address is computed from the registers, [`VcEnv::mmio_gpa`] must say it is shared MMIO (the firmware's page tables, C-bit clear), the access must be naturally aligned; MMIO read/write event with the data in the GHCB shared buffer. Loads write the register as the instruction would (8/16-bit: merged; 32-bit: zero-extended) |
//! | anything else | — | fatal, naming the exit code ([`VcError::Unsupported`]) |
//!
//! On success RIP advances by the decoded length; on any error the frame is unchanged, so the
//! fatal path shows the registers of the instruction that raised the #VC.
//!
//! # Re-entry
//!
//! A #VC raised while the handler is using the GHCB would clobber it. Nothing the handler does
//! raises one (it reads the CPUID page and the GHCB, uses the GHCB MSR and VMGEXIT); the
//! firmware's wiring must still take the GHCB with a try-lock and treat a held lock as fatal.

use super::cpu::{CpuidResult, SevCpu};
use super::cpuid::{hv_via_ghcb, CpuState, CpuidError, CpuidTable};
use super::ghcb::{exit_code, ioio_exit_info, AddrSize, GhcbError, Session, Width};
use crate::exception::{ExceptionFrame, Handled};
use crate::fatal::Message;
use core::fmt;

/// The longest x86 instruction.
pub const MAX_INSN: usize = 15;

/// What only the firmware can provide.
pub trait VcEnv {
    /// Copies the instruction bytes at `rip` (at most [`MAX_INSN`]) into `buf` and returns how
    /// many could be read (the firmware: up to the end of the mapped code).
    fn fetch(&self, rip: u64, buf: &mut [u8; MAX_INSN]) -> usize;

    /// The GPA of the MMIO access of `len` bytes at linear address `va`, if the firmware's page
    /// tables map it as shared MMIO (C-bit clear); `None` refuses the access.
    fn mmio_gpa(&self, va: u64, len: u64) -> Option<u64>;

    /// CR4.OSXSAVE, CR4.PKE, XCR0, IA32_XSS.
    fn cpu_state(&self) -> CpuState;

    /// Whether Secure TSC is on (SEV_STATUS bit 11).
    fn secure_tsc(&self) -> bool;
}

/// Where a port number comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// An 8-bit immediate.
    Imm(u8),
    /// DX.
    Dx,
}

/// How a loaded value is written to its register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// The low byte of register `n` (AL, CL, …, SPL…R15B).
    Low8(u8),
    /// Bits 15:8 of register `n` (0..=3: AH, CH, DH, BH; only without REX).
    High8(u8),
    /// The low 16 bits of register `n` (the rest kept).
    R16(u8),
    /// Register `n` as 32 bits, zero-extended.
    R32(u8),
    /// Register `n`.
    R64(u8),
}

/// An MMIO access decoded from a MOV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmioOp {
    /// Read `width` bytes into `dest` (zero-extended to it).
    Load {
        /// The register.
        dest: Dest,
    },
    /// Write `value` (already cut to the width).
    Store {
        /// The value.
        value: u64,
    },
}

/// A decoded instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insn {
    /// CPUID.
    Cpuid,
    /// RDMSR.
    Rdmsr,
    /// WRMSR.
    Wrmsr,
    /// RDTSC.
    Rdtsc,
    /// RDTSCP.
    Rdtscp,
    /// IN or OUT.
    Io {
        /// IN.
        input: bool,
        /// The width.
        width: Width,
        /// The port.
        port: Port,
        /// The address size (for the IOIO encoding).
        addr: AddrSize,
    },
    /// A MOV to or from MMIO.
    Mmio {
        /// Load or store.
        op: MmioOp,
        /// The width of the memory access.
        width: Width,
        /// The linear address.
        addr: u64,
    },
}

/// An instruction and its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// The instruction.
    pub insn: Insn,
    /// Its length in bytes.
    pub len: usize,
}

/// Why a #VC could not be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VcError {
    /// The instruction bytes could not be decoded as one this handler accepts.
    Decode {
        /// The exit code.
        exit_code: u64,
        /// RIP.
        rip: u64,
        /// What was wrong.
        what: &'static str,
        /// The bytes read.
        bytes: [u8; MAX_INSN],
        /// How many.
        len: u8,
    },
    /// A string (INS/OUTS) I/O instruction.
    StringIo {
        /// RIP.
        rip: u64,
    },
    /// RIP + length overflows.
    RipOverflow {
        /// RIP.
        rip: u64,
    },
    /// An MMIO access the firmware does not map as shared MMIO, or unaligned.
    NotMmio {
        /// The linear address.
        va: u64,
        /// Bytes.
        len: u64,
    },
    /// A GHCB event failed.
    Ghcb {
        /// The exit code.
        exit_code: u64,
        /// What failed.
        error: GhcbError,
    },
    /// CPUID could not be answered.
    Cpuid {
        /// The leaf.
        leaf: u32,
        /// The subleaf.
        subleaf: u32,
        /// Why.
        error: CpuidError,
    },
    /// RDTSC(P) intercepted although Secure TSC is on.
    SecureTsc {
        /// The exit code.
        exit_code: u64,
    },
    /// An exit code this handler does not emulate.
    Unsupported {
        /// The exit code.
        exit_code: u64,
        /// RIP.
        rip: u64,
    },
}

struct Hex<'a>(&'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Display for VcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Decode {
                exit_code: e,
                rip,
                what,
                bytes,
                len,
            } => write!(
                f,
                "#VC {} ({e:#x}) at rip {rip:#x}: {what} [{}]",
                exit_code::name(e),
                Hex(bytes.get(..usize::from(len)).unwrap_or(&[]))
            ),
            Self::StringIo { rip } => {
                write!(f, "#VC IOIO at rip {rip:#x}: string I/O is not emulated")
            }
            Self::RipOverflow { rip } => write!(f, "#VC at rip {rip:#x}: RIP overflows"),
            Self::NotMmio { va, len } => write!(
                f,
                "#VC NPF: {len}-byte access at {va:#x} is not aligned shared MMIO"
            ),
            Self::Ghcb {
                exit_code: e,
                error,
            } => write!(f, "#VC {} ({e:#x}): {error}", exit_code::name(e)),
            Self::Cpuid {
                leaf,
                subleaf,
                error,
            } => write!(f, "#VC CPUID {leaf:#x}.{subleaf:#x}: {error}"),
            Self::SecureTsc { exit_code: e } => write!(
                f,
                "#VC {} ({e:#x}) intercepted although Secure TSC is on",
                exit_code::name(e)
            ),
            Self::Unsupported { exit_code: e, rip } => write!(
                f,
                "#VC exit code {e:#x} ({}) at rip {rip:#x} is not emulated",
                exit_code::name(e)
            ),
        }
    }
}

/// Register `n` (0 RAX … 15 R15) of the frame.
pub fn reg(frame: &ExceptionFrame, n: u8) -> u64 {
    match n & 0xF {
        0 => frame.rax,
        1 => frame.rcx,
        2 => frame.rdx,
        3 => frame.rbx,
        4 => frame.rsp,
        5 => frame.rbp,
        6 => frame.rsi,
        7 => frame.rdi,
        8 => frame.r8,
        9 => frame.r9,
        10 => frame.r10,
        11 => frame.r11,
        12 => frame.r12,
        13 => frame.r13,
        14 => frame.r14,
        _ => frame.r15,
    }
}

fn reg_mut(frame: &mut ExceptionFrame, n: u8) -> &mut u64 {
    match n & 0xF {
        0 => &mut frame.rax,
        1 => &mut frame.rcx,
        2 => &mut frame.rdx,
        3 => &mut frame.rbx,
        4 => &mut frame.rsp,
        5 => &mut frame.rbp,
        6 => &mut frame.rsi,
        7 => &mut frame.rdi,
        8 => &mut frame.r8,
        9 => &mut frame.r9,
        10 => &mut frame.r10,
        11 => &mut frame.r11,
        12 => &mut frame.r12,
        13 => &mut frame.r13,
        14 => &mut frame.r14,
        _ => &mut frame.r15,
    }
}

/// Writes `value` (already zero-extended from the memory width) to `dest` as a MOV would.
pub fn write_dest(frame: &mut ExceptionFrame, dest: Dest, value: u64) {
    match dest {
        Dest::Low8(n) => {
            let r = reg_mut(frame, n);
            *r = (*r & !0xFF) | (value & 0xFF);
        }
        Dest::High8(n) => {
            let r = reg_mut(frame, n);
            *r = (*r & !0xFF00) | ((value & 0xFF) << 8);
        }
        Dest::R16(n) => {
            let r = reg_mut(frame, n);
            *r = (*r & !0xFFFF) | (value & 0xFFFF);
        }
        Dest::R32(n) => *reg_mut(frame, n) = value & 0xFFFF_FFFF,
        Dest::R64(n) => *reg_mut(frame, n) = value,
    }
}

/// The value of an 8-bit register operand `n` (REX present or not).
fn byte_reg(frame: &ExceptionFrame, n: u8, rex: bool) -> u64 {
    if !rex && (4..8).contains(&n) {
        (reg(frame, n - 4) >> 8) & 0xFF
    } else {
        reg(frame, n) & 0xFF
    }
}

fn byte_dest(n: u8, rex: bool) -> Dest {
    if !rex && (4..8).contains(&n) {
        Dest::High8(n - 4)
    } else {
        Dest::Low8(n)
    }
}

/// A small cursor over the instruction bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn next(&mut self) -> Result<u8, &'static str> {
        let b = *self
            .bytes
            .get(self.at)
            .ok_or("the instruction is truncated")?;
        self.at += 1;
        if self.at > MAX_INSN {
            return Err("the instruction is longer than 15 bytes");
        }
        Ok(b)
    }

    fn imm(&mut self, n: usize) -> Result<u64, &'static str> {
        let mut v: u64 = 0;
        for i in 0..n {
            v |= u64::from(self.next()?) << (8 * i);
        }
        Ok(v)
    }
}

/// Sign-extends the low `bits` of `v`.
const fn sext(v: u64, bits: u32) -> u64 {
    let shift = 64 - bits;
    (((v << shift) as i64) >> shift) as u64
}

/// Decodes the instruction `bytes` (read at `frame.rip`) that raised #VC with `exit_code` (see
/// the module documentation for what is accepted).
pub fn decode(exit_code: u64, bytes: &[u8], frame: &ExceptionFrame) -> Result<Decoded, VcError> {
    let bytes = bytes.get(..bytes.len().min(MAX_INSN)).unwrap_or(&[]);
    let error = |what: &'static str| {
        let mut b = [0u8; MAX_INSN];
        b[..bytes.len()].copy_from_slice(bytes);
        VcError::Decode {
            exit_code,
            rip: frame.rip,
            what,
            bytes: b,
            len: bytes.len() as u8,
        }
    };
    let mut c = Cursor { bytes, at: 0 };
    let r = match exit_code {
        exit_code::CPUID => fixed(&mut c, &[0x0F, 0xA2], Insn::Cpuid),
        exit_code::RDTSC => fixed(&mut c, &[0x0F, 0x31], Insn::Rdtsc),
        exit_code::RDTSCP => fixed(&mut c, &[0x0F, 0x01, 0xF9], Insn::Rdtscp),
        exit_code::MSR => match (c.next(), c.next()) {
            (Ok(0x0F), Ok(0x32)) => Ok(Decoded {
                insn: Insn::Rdmsr,
                len: 2,
            }),
            (Ok(0x0F), Ok(0x30)) => Ok(Decoded {
                insn: Insn::Wrmsr,
                len: 2,
            }),
            (Err(e), _) | (_, Err(e)) => Err(e),
            _ => Err("not RDMSR or WRMSR"),
        },
        exit_code::IOIO => match decode_io(&mut c) {
            Err(STRING_IO) => return Err(VcError::StringIo { rip: frame.rip }),
            r => r,
        },
        exit_code::NPF => decode_mmio(&mut c, frame),
        _ => {
            return Err(VcError::Unsupported {
                exit_code,
                rip: frame.rip,
            })
        }
    };
    r.map_err(error)
}

/// The decoder's reason for a string I/O instruction (turned into [`VcError::StringIo`]).
const STRING_IO: &str = "string I/O";

fn fixed(c: &mut Cursor<'_>, want: &[u8], insn: Insn) -> Result<Decoded, &'static str> {
    for &w in want {
        if c.next()? != w {
            return Err("not the instruction the exit code names");
        }
    }
    Ok(Decoded { insn, len: c.at })
}

fn decode_io(c: &mut Cursor<'_>) -> Result<Decoded, &'static str> {
    let (mut opsize16, mut addr32, mut rex) = (false, false, false);
    let op = loop {
        let b = c.next()?;
        match b {
            0x66 if !rex => opsize16 = true,
            0x67 if !rex => addr32 = true,
            0x40..=0x4F if !rex => rex = true,
            0x6C..=0x6F => return Err(STRING_IO),
            _ if is_opcode_io(b) => break b,
            _ => return Err("an unsupported prefix or opcode for port I/O"),
        }
    };
    let width = match op {
        0xE4 | 0xE6 | 0xEC | 0xEE => Width::W8,
        _ if opsize16 => Width::W16,
        _ => Width::W32,
    };
    let port = match op {
        0xE4..=0xE7 => Port::Imm(c.next()?),
        _ => Port::Dx,
    };
    Ok(Decoded {
        insn: Insn::Io {
            input: matches!(op, 0xE4 | 0xE5 | 0xEC | 0xED),
            width,
            port,
            addr: if addr32 { AddrSize::A32 } else { AddrSize::A64 },
        },
        len: c.at,
    })
}

const fn is_opcode_io(b: u8) -> bool {
    matches!(b, 0xE4..=0xE7 | 0xEC..=0xEF)
}

fn decode_mmio(c: &mut Cursor<'_>, frame: &ExceptionFrame) -> Result<Decoded, &'static str> {
    let (mut opsize16, mut rex) = (false, 0u8);
    let mut op = loop {
        let b = c.next()?;
        match b {
            0x66 if rex == 0 => opsize16 = true,
            0x40..=0x4F if rex == 0 => rex = b,
            0x40..=0x4F | 0x66 => return Err("a prefix after REX"),
            _ => break b,
        }
    };
    let two_byte = op == 0x0F;
    if two_byte {
        op = c.next()?;
        if op != 0xB6 && op != 0xB7 {
            return Err("an unsupported two-byte opcode for MMIO");
        }
    } else if !matches!(op, 0x88 | 0x89 | 0x8A | 0x8B | 0xC6 | 0xC7) {
        return Err("an unsupported opcode or prefix for MMIO");
    }
    let has_rex = rex != 0;
    let (w, r, x, b) = (rex & 8 != 0, rex >> 2 & 1, rex >> 1 & 1, rex & 1);
    let opsize = if w {
        Width::W64
    } else if opsize16 {
        Width::W16
    } else {
        Width::W32
    };
    let modrm = c.next()?;
    let md = modrm >> 6;
    let regf = (modrm >> 3 & 7) | r << 3;
    let rm = modrm & 7;
    if md == 3 {
        return Err("a register operand, not memory");
    }
    let mut rip_relative = false;
    let mut addr: u64 = 0;
    if rm == 4 {
        let sib = c.next()?;
        let scale = 1u64 << (sib >> 6);
        let index = (sib >> 3 & 7) | x << 3;
        let base = sib & 7;
        if index != 4 {
            addr = reg(frame, index).wrapping_mul(scale);
        }
        if base == 5 && md == 0 {
            addr = addr.wrapping_add(sext(c.imm(4)?, 32));
        } else {
            addr = addr.wrapping_add(reg(frame, base | b << 3));
        }
    } else if rm == 5 && md == 0 {
        rip_relative = true;
        addr = sext(c.imm(4)?, 32);
    } else {
        addr = reg(frame, rm | b << 3);
    }
    match md {
        1 => addr = addr.wrapping_add(sext(c.imm(1)?, 8)),
        2 => addr = addr.wrapping_add(sext(c.imm(4)?, 32)),
        _ => {}
    }
    let (op, width) = match (two_byte, op) {
        (false, 0x88) => (
            MmioOp::Store {
                value: byte_reg(frame, regf, has_rex),
            },
            Width::W8,
        ),
        (false, 0x89) => (
            MmioOp::Store {
                value: reg(frame, regf) & opsize.mask(),
            },
            opsize,
        ),
        (false, 0x8A) => (
            MmioOp::Load {
                dest: byte_dest(regf, has_rex),
            },
            Width::W8,
        ),
        (false, 0x8B) => (
            MmioOp::Load {
                dest: full_dest(regf, opsize),
            },
            opsize,
        ),
        (false, 0xC6) | (false, 0xC7) => {
            if regf & 7 != 0 {
                return Err("C6/C7 with a ModRM reg field other than 0");
            }
            let (width, value) = match (op, opsize) {
                (0xC6, _) => (Width::W8, c.imm(1)?),
                (_, Width::W16) => (Width::W16, c.imm(2)?),
                (_, Width::W64) => (Width::W64, sext(c.imm(4)?, 32)),
                _ => (Width::W32, c.imm(4)?),
            };
            (MmioOp::Store { value }, width)
        }
        (true, 0xB6) => (
            MmioOp::Load {
                dest: full_dest(regf, opsize),
            },
            Width::W8,
        ),
        (true, _) => (
            MmioOp::Load {
                dest: full_dest(regf, opsize),
            },
            Width::W16,
        ),
        _ => return Err("an unsupported opcode for MMIO"),
    };
    if rip_relative {
        let next = frame.rip.wrapping_add(c.at as u64);
        addr = addr.wrapping_add(next);
    }
    Ok(Decoded {
        insn: Insn::Mmio { op, width, addr },
        len: c.at,
    })
}

fn full_dest(n: u8, opsize: Width) -> Dest {
    match opsize {
        Width::W16 => Dest::R16(n),
        Width::W64 => Dest::R64(n),
        _ => Dest::R32(n),
    }
}

/// RAX after an IN of `width`: AL or AX replaced (the rest kept), or EAX zero-extended.
pub fn merge_in(rax: u64, width: Width, value: u64) -> u64 {
    let v = value & width.mask();
    match width {
        Width::W8 | Width::W16 => (rax & !width.mask()) | v,
        _ => v,
    }
}

/// Handles a #VC: [`emulate`], then [`Handled::Resume`], or [`Handled::Fatal`] with
/// [`fatal_message`].
pub fn handle<C: SevCpu + ?Sized>(
    s: &mut Session<'_, C>,
    cpuid: &CpuidTable,
    env: &dyn VcEnv,
    frame: &mut ExceptionFrame,
) -> Handled {
    match emulate(s, cpuid, env, frame) {
        Ok(_) => Handled::Resume,
        Err(e) => Handled::Fatal(fatal_message(&e)),
    }
}

/// Decodes and emulates the instruction that raised the #VC described by `frame` (error code =
/// exit code). On success the frame holds the results and RIP points past the instruction;
/// on error the frame is unchanged. Returns what was decoded.
pub fn emulate<C: SevCpu + ?Sized>(
    s: &mut Session<'_, C>,
    cpuid: &CpuidTable,
    env: &dyn VcEnv,
    frame: &mut ExceptionFrame,
) -> Result<Decoded, VcError> {
    let e = frame.error_code;
    let mut buf = [0u8; MAX_INSN];
    let n = env.fetch(frame.rip, &mut buf).min(MAX_INSN);
    let d = decode(e, &buf[..n], frame)?;
    let next = frame
        .rip
        .checked_add(d.len as u64)
        .ok_or(VcError::RipOverflow { rip: frame.rip })?;
    let ghcb = |error| VcError::Ghcb {
        exit_code: e,
        error,
    };
    match d.insn {
        Insn::Cpuid => {
            let (leaf, subleaf) = (frame.rax as u32, frame.rcx as u32);
            let state = env.cpu_state();
            let r: CpuidResult = cpuid
                .lookup(leaf, subleaf, &state, &mut hv_via_ghcb(s, &state))
                .map_err(|error| VcError::Cpuid {
                    leaf,
                    subleaf,
                    error,
                })?;
            frame.rax = u64::from(r.eax);
            frame.rbx = u64::from(r.ebx);
            frame.rcx = u64::from(r.ecx);
            frame.rdx = u64::from(r.edx);
        }
        Insn::Io {
            input,
            width,
            port,
            addr,
        } => {
            let port = match port {
                Port::Imm(p) => u16::from(p),
                Port::Dx => frame.rdx as u16,
            };
            let info = ioio_exit_info(port, width, input, addr).ok_or(VcError::Unsupported {
                exit_code: e,
                rip: frame.rip,
            })?;
            if input {
                let v = s.ioio(info, 0).map_err(ghcb)?;
                frame.rax = merge_in(frame.rax, width, v);
            } else {
                s.ioio(info, frame.rax & width.mask()).map_err(ghcb)?;
            }
        }
        Insn::Rdmsr => {
            let v = s.rdmsr(frame.rcx as u32).map_err(ghcb)?;
            frame.rax = v & 0xFFFF_FFFF;
            frame.rdx = v >> 32;
        }
        Insn::Wrmsr => {
            let v = (frame.rdx & 0xFFFF_FFFF) << 32 | (frame.rax & 0xFFFF_FFFF);
            s.wrmsr(frame.rcx as u32, v).map_err(ghcb)?;
        }
        Insn::Rdtsc | Insn::Rdtscp => {
            if env.secure_tsc() {
                return Err(VcError::SecureTsc { exit_code: e });
            }
            if d.insn == Insn::Rdtsc {
                let t = s.rdtsc().map_err(ghcb)?;
                frame.rax = t & 0xFFFF_FFFF;
                frame.rdx = t >> 32;
            } else {
                let (t, aux) = s.rdtscp().map_err(ghcb)?;
                frame.rax = t & 0xFFFF_FFFF;
                frame.rdx = t >> 32;
                frame.rcx = u64::from(aux);
            }
        }
        Insn::Mmio { op, width, addr } => {
            let len = width.bytes();
            let gpa = env
                .mmio_gpa(addr, len)
                .filter(|g| g.is_multiple_of(len))
                .ok_or(VcError::NotMmio { va: addr, len })?;
            match op {
                MmioOp::Store { value } => s.mmio_write(gpa, width, value).map_err(ghcb)?,
                MmioOp::Load { dest } => {
                    let v = s.mmio_read(gpa, width).map_err(ghcb)?;
                    write_dest(frame, dest, v);
                }
            }
        }
    }
    frame.rip = next;
    Ok(d)
}

static FIRST_FATAL: spin::Once<Message> = spin::Once::new();

/// The text for [`Handled::Fatal`]: the first error, formatted once into a static buffer; a
/// later call (only possible while the first is being reported) gets a fixed text.
pub fn fatal_message(e: &VcError) -> &'static str {
    if FIRST_FATAL.is_completed() {
        return "#VC: another #VC could not be handled while the first was being reported";
    }
    FIRST_FATAL
        .call_once(|| {
            let mut m = Message::new();
            // Writing to a Message never fails (it truncates).
            let _ = fmt::write(&mut m, format_args!("{e}"));
            m
        })
        .as_str()
}
