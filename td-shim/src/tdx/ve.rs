//! The #VE handler (vector 20): pure functions over an [`ExceptionFrame`] and [`Tdcall`], tested
//! on the host against the model of the TDX module and the VMM.
//!
//! # What happens on a #VE
//!
//! 1. TDG.VP.VEINFO.GET, first and before anything that could fault: a second #VE before it
//!    becomes a #DF (research notes §4). Its failure is fatal.
//! 2. The exit reason decides (§4, "Exits that become #VE"):
//!
//! | Exit reason | Emulation |
//! |---|---|
//! | CPUID (10) | leaves `0x4000_0000..=0x4FFF_FFFF` (the hypervisor range) go to the VMM with TDVMCALL<Instruction.CPUID>; every other leaf reads as zeros, as Linux `handle_cpuid()` does (§4, pitfall 18: the VMM's CPUID values are untrusted, and the leaves the TDX module virtualises never reach here). EAX, EBX, ECX, EDX written zero-extended into RAX, RBX, RCX, RDX |
//! | HLT (12) | with RFLAGS.IF = 0 (the firmware never enables interrupts): TDVMCALL<Instruction.HLT> with R12 = 1 ("interrupts blocked"), as Linux `handle_halt()` does for a non-safe halt; the VMM keeps the vCPU halted. With IF = 1: fatal (this firmware takes no interrupts, and an `sti; hlt` could lose its wake-up, §3.3) |
//! | I/O (30) | exit qualification: size = bits 2:0 + 1 (1, 2 or 4), IN = bit 3, string = bit 4, REP = bit 5, port = bits 31:16. String and REP forms are fatal (Linux refuses them too). TDVMCALL<Instruction.IO>; IN writes AL/AX (the rest of RAX kept) or EAX (zero-extended, as a 32-bit register write does) |
//! | RDMSR (31) | TDVMCALL<Instruction.RDMSR> of ECX; EDX:EAX = the value (zero-extended). A VMM error is fatal (hardware would raise #GP) |
//! | WRMSR (32) | TDVMCALL<Instruction.WRMSR> of ECX with EDX:EAX |
//! | EPT violation (48) | **refused**, fatal, naming the GPA, the linear address, the qualification and whether the GPA is shared. See "MMIO" below |
//! | anything else (INVD 13, VMCALL 18, CR access 28, MWAIT 36, MONITOR 39, WBINVD 54, APIC write 56, PCONFIG 65, unknown) | fatal, naming the reason and the qualification |
//!
//! 3. On success RIP advances by the instruction length VEINFO reports (R10 bits 31:0). The
//!    length is checked first: it must lie between the shortest encoding of the instruction
//!    (CPUID, RDMSR, WRMSR: 2 bytes; HLT, IN/OUT: 1) and 15 (the architectural maximum), and
//!    RIP + length must not overflow; otherwise the #VE is fatal **before** any TDVMCALL is made.
//!    The frame is changed only when the whole emulation succeeded, so the fatal path's report
//!    always shows the registers of the instruction that raised the #VE.
//!
//! # MMIO: refused (decision)
//!
//! An EPT-violation #VE on a shared GPA is an MMIO access the VMM chose to trap. Emulating it
//! means decoding the instruction at RIP (VEINFO's instruction length is not defined for EPT
//! violations, §4), which needs a reader of guest memory and an x86 decoder for every MOV form
//! a compiler may emit. The firmware does no MMIO under TDX except through explicit
//! TDVMCALL<#VE.RequestMMIO> ([`crate::tdx::calls::mmio_read`] / `mmio_write`), so such a #VE
//! can only come from a bug (or a shared mapping of memory that is no longer shared, e.g. the
//! bounce buffer touched after its release). A #VE on a private GPA means an access to a
//! pending page (only possible if the TD runs without SEPT_VE_DISABLE) and is fatal too
//! (Linux: "Unexpected EPT-violation on private memory").
//!
//! # Messages
//!
//! [`Handled::Fatal`] carries a `&'static str`. The first fatal #VE's full message (reason,
//! qualification, addresses, status) is formatted into a fixed static buffer ([`fatal_message`];
//! no heap: a #VE may come before the heap exists); a later one, which can only happen while
//! the first is being reported, gets a fixed text. The fatal path prints the frame after it.

use crate::exception::{ExceptionFrame, Handled};
use crate::tdx::calls::{
    self, leaf, status, vmcall, CpuidResult, GpaWidth, IoSize, Tdcall, TdcallArgs, TdxError, VeInfo,
};
use core::fmt;

/// The VMX exit reasons a #VE reports (research notes §4), with the ones emulated here.
pub mod exit_reason {
    /// CPUID: emulated.
    pub const CPUID: u32 = 10;
    /// HLT: emulated with interrupts disabled.
    pub const HLT: u32 = 12;
    /// INVD.
    pub const INVD: u32 = 13;
    /// VMCALL.
    pub const VMCALL: u32 = 18;
    /// A control-register write the TDX module does not allow.
    pub const CR_ACCESS: u32 = 28;
    /// IN/OUT (and their string forms): emulated except string/REP forms.
    pub const IO: u32 = 30;
    /// RDMSR: emulated.
    pub const MSR_READ: u32 = 31;
    /// WRMSR: emulated.
    pub const MSR_WRITE: u32 = 32;
    /// MWAIT.
    pub const MWAIT: u32 = 36;
    /// MONITOR.
    pub const MONITOR: u32 = 39;
    /// EPT violation (MMIO on a shared GPA, or a pending private page): refused.
    pub const EPT_VIOLATION: u32 = 48;
    /// WBINVD.
    pub const WBINVD: u32 = 54;
    /// APIC write.
    pub const APIC_WRITE: u32 = 56;
    /// PCONFIG.
    pub const PCONFIG: u32 = 65;

    /// A name for messages.
    pub fn name(reason: u32) -> &'static str {
        match reason {
            CPUID => "CPUID",
            HLT => "HLT",
            INVD => "INVD",
            VMCALL => "VMCALL",
            CR_ACCESS => "control-register access",
            IO => "I/O instruction",
            MSR_READ => "RDMSR",
            MSR_WRITE => "WRMSR",
            MWAIT => "MWAIT",
            MONITOR => "MONITOR",
            EPT_VIOLATION => "EPT violation",
            WBINVD => "WBINVD",
            APIC_WRITE => "APIC write",
            PCONFIG => "PCONFIG",
            _ => "unknown exit reason",
        }
    }
}

/// TDVMCALL sub-function Instruction.HLT (GHCI; equal to the exit reason, §3.3). Not in
/// [`vmcall`], so defined here.
pub const VMCALL_HLT: u64 = 0x0C;

/// The longest x86 instruction.
pub const MAX_INSTRUCTION_LENGTH: u32 = 15;

/// The CPUID leaves forwarded to the VMM: the range reserved for hypervisors.
pub const HYPERVISOR_CPUID_LEAVES: core::ops::RangeInclusive<u32> = 0x4000_0000..=0x4FFF_FFFF;

/// RFLAGS.IF.
const RFLAGS_IF: u64 = 1 << 9;

/// Exit qualification of an I/O instruction (Intel SDM Vol. 3, table 28-5).
mod io_qual {
    pub const SIZE_MASK: u64 = 0x7;
    pub const IN: u64 = 1 << 3;
    pub const STRING: u64 = 1 << 4;
    pub const REP: u64 = 1 << 5;
    pub const PORT_SHIFT: u32 = 16;
}

/// Why a #VE could not be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VeError {
    /// TDG.VP.VEINFO.GET failed (e.g. `NO_VALID_VE_INFO`: a #VE vector without #VE information).
    VeInfo(TdxError),
    /// The TDVMCALL that emulates the instruction failed.
    Emulation {
        /// The exit reason.
        exit_reason: u32,
        /// What the call reported.
        error: TdxError,
    },
    /// The reported instruction length is impossible for the instruction.
    InstructionLength {
        /// The exit reason.
        exit_reason: u32,
        /// The length VEINFO reported.
        length: u32,
    },
    /// RIP + instruction length overflows.
    RipOverflow {
        /// RIP.
        rip: u64,
        /// The instruction length.
        length: u32,
    },
    /// A string (INS/OUTS) or REP I/O instruction: not emulated.
    StringIo {
        /// The exit qualification.
        qualification: u64,
    },
    /// An I/O size other than 1, 2 or 4 bytes.
    IoSize {
        /// The exit qualification.
        qualification: u64,
    },
    /// HLT with interrupts enabled: this firmware takes no interrupts.
    HaltWithInterrupts {
        /// RFLAGS.
        rflags: u64,
    },
    /// An EPT violation (MMIO or a pending page): not emulated.
    EptViolation {
        /// The guest-physical address.
        gpa: u64,
        /// The guest linear address.
        gla: u64,
        /// The exit qualification.
        qualification: u64,
        /// Whether the GPA has the shared bit set (`None`: the GPA width is not known yet).
        shared: Option<bool>,
    },
    /// An exit reason this handler does not emulate.
    Unsupported {
        /// The exit reason.
        exit_reason: u32,
        /// The exit qualification.
        qualification: u64,
    },
}

impl fmt::Display for VeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::VeInfo(e) => write!(f, "#VE: reading the #VE information failed: {e}"),
            Self::Emulation { exit_reason, error } => write!(
                f,
                "#VE: emulating {} (exit reason {exit_reason}) failed: {error}",
                exit_reason::name(exit_reason)
            ),
            Self::InstructionLength {
                exit_reason,
                length,
            } => write!(
                f,
                "#VE: {} (exit reason {exit_reason}) with impossible instruction length {length}",
                exit_reason::name(exit_reason)
            ),
            Self::RipOverflow { rip, length } => write!(
                f,
                "#VE: RIP {rip:#x} + instruction length {length} overflows"
            ),
            Self::StringIo { qualification } => write!(
                f,
                "#VE: string or REP I/O (exit qualification {qualification:#x}) is not emulated"
            ),
            Self::IoSize { qualification } => write!(
                f,
                "#VE: I/O of an invalid size (exit qualification {qualification:#x})"
            ),
            Self::HaltWithInterrupts { rflags } => write!(
                f,
                "#VE: HLT with interrupts enabled (rflags {rflags:#x}): this firmware takes no interrupts"
            ),
            Self::EptViolation {
                gpa,
                gla,
                qualification,
                shared,
            } => {
                let what = match shared {
                    Some(true) => "shared GPA: MMIO is not emulated",
                    Some(false) => "private GPA: a pending or unaccepted page",
                    None => "GPA width unknown",
                };
                write!(
                    f,
                    "#VE: EPT violation (exit reason 48) at GPA {gpa:#x}, linear {gla:#x}, \
                     exit qualification {qualification:#x} ({what})"
                )
            }
            Self::Unsupported {
                exit_reason,
                qualification,
            } => write!(
                f,
                "#VE: {} (exit reason {exit_reason}, exit qualification {qualification:#x}) is not emulated",
                exit_reason::name(exit_reason)
            ),
        }
    }
}

/// Handles a #VE: [`emulate`], then [`Handled::Resume`] or [`Handled::Fatal`] with
/// [`fatal_message`]. `width` is the TD's GPA width if TDG.VP.INFO has run (it only refines the
/// message of an EPT violation).
pub fn handle<T: Tdcall + ?Sized>(
    t: &T,
    frame: &mut ExceptionFrame,
    width: Option<GpaWidth>,
) -> Handled {
    match emulate(t, frame, width) {
        Ok(_) => Handled::Resume,
        Err(e) => Handled::Fatal(fatal_message(&e)),
    }
}

/// Reads the #VE information and emulates the instruction (see the module documentation).
/// On success the frame holds the results and RIP points past the instruction; on error the
/// frame is unchanged. Returns the #VE information.
pub fn emulate<T: Tdcall + ?Sized>(
    t: &T,
    frame: &mut ExceptionFrame,
    width: Option<GpaWidth>,
) -> Result<VeInfo, VeError> {
    let ve = calls::vp_veinfo_get(t).map_err(VeError::VeInfo)?;
    let reason = ve.exit_reason;
    let call = |error| VeError::Emulation {
        exit_reason: reason,
        error,
    };
    match reason {
        exit_reason::CPUID => {
            let next = next_rip(frame, &ve, 2)?;
            let (leaf, subleaf) = (low32(frame.rax), low32(frame.rcx));
            let r = if HYPERVISOR_CPUID_LEAVES.contains(&leaf) {
                calls::cpuid(t, leaf, subleaf).map_err(call)?
            } else {
                CpuidResult::default()
            };
            frame.rax = u64::from(r.eax);
            frame.rbx = u64::from(r.ebx);
            frame.rcx = u64::from(r.ecx);
            frame.rdx = u64::from(r.edx);
            frame.rip = next;
        }
        exit_reason::HLT => {
            let next = next_rip(frame, &ve, 1)?;
            if frame.rflags & RFLAGS_IF != 0 {
                return Err(VeError::HaltWithInterrupts {
                    rflags: frame.rflags,
                });
            }
            tdvmcall_halt(t).map_err(call)?;
            frame.rip = next;
        }
        exit_reason::IO => {
            let next = next_rip(frame, &ve, 1)?;
            let q = ve.exit_qualification;
            if q & (io_qual::STRING | io_qual::REP) != 0 {
                return Err(VeError::StringIo { qualification: q });
            }
            let size = match q & io_qual::SIZE_MASK {
                0 => IoSize::Byte,
                1 => IoSize::Word,
                3 => IoSize::Dword,
                _ => return Err(VeError::IoSize { qualification: q }),
            };
            let port = ((q >> io_qual::PORT_SHIFT) & 0xFFFF) as u16;
            if q & io_qual::IN != 0 {
                let value = calls::io_read(t, port, size).map_err(call)?;
                frame.rax = merge_in(frame.rax, size, value);
            } else {
                let value = low32(frame.rax) & low32(size_mask(size));
                calls::io_write(t, port, size, value).map_err(call)?;
            }
            frame.rip = next;
        }
        exit_reason::MSR_READ => {
            let next = next_rip(frame, &ve, 2)?;
            let value = calls::rdmsr(t, low32(frame.rcx)).map_err(call)?;
            frame.rax = value & 0xFFFF_FFFF;
            frame.rdx = value >> 32;
            frame.rip = next;
        }
        exit_reason::MSR_WRITE => {
            let next = next_rip(frame, &ve, 2)?;
            let value = (frame.rdx << 32) | (frame.rax & 0xFFFF_FFFF);
            calls::wrmsr(t, low32(frame.rcx), value).map_err(call)?;
            frame.rip = next;
        }
        exit_reason::EPT_VIOLATION => {
            let gpa = ve.guest_physical_address;
            return Err(VeError::EptViolation {
                gpa,
                gla: ve.guest_linear_address,
                qualification: ve.exit_qualification,
                shared: width.map(|w| gpa & w.shared_bit() != 0),
            });
        }
        _ => {
            return Err(VeError::Unsupported {
                exit_reason: reason,
                qualification: ve.exit_qualification,
            })
        }
    }
    Ok(ve)
}

/// RIP past the instruction, after checking the reported length against `min` (the shortest
/// encoding of the instruction) and [`MAX_INSTRUCTION_LENGTH`].
fn next_rip(frame: &ExceptionFrame, ve: &VeInfo, min: u32) -> Result<u64, VeError> {
    let length = ve.instruction_length;
    if length < min || length > MAX_INSTRUCTION_LENGTH {
        return Err(VeError::InstructionLength {
            exit_reason: ve.exit_reason,
            length,
        });
    }
    frame
        .rip
        .checked_add(u64::from(length))
        .ok_or(VeError::RipOverflow {
            rip: frame.rip,
            length,
        })
}

/// RAX after an IN of `size`: AL or AX replaced (the rest kept), or EAX zero-extended.
fn merge_in(rax: u64, size: IoSize, value: u32) -> u64 {
    let value = u64::from(value) & size_mask(size);
    match size {
        IoSize::Byte | IoSize::Word => (rax & !size_mask(size)) | value,
        IoSize::Dword => value,
    }
}

const fn size_mask(size: IoSize) -> u64 {
    match size {
        IoSize::Byte => 0xFF,
        IoSize::Word => 0xFFFF,
        IoSize::Dword => 0xFFFF_FFFF,
    }
}

const fn low32(v: u64) -> u32 {
    (v & 0xFFFF_FFFF) as u32
}

/// TDVMCALL<Instruction.HLT> with R12 = 1 (interrupts blocked): the VMM halts the vCPU; with
/// interrupts blocked it normally never resumes it. Exposes R10–R15 only, unused inputs zero.
/// Used for an emulated HLT and by the platform's fatal report instead of the `hlt`
/// instruction, which would itself raise a #VE.
pub fn tdvmcall_halt<T: Tdcall + ?Sized>(t: &T) -> Result<(), TdxError> {
    let mut r = TdcallArgs {
        rax: leaf::VP_VMCALL,
        rcx: vmcall::EXPOSE_R10_R15,
        r10: 0,
        r11: VMCALL_HLT,
        r12: 1,
        ..TdcallArgs::default()
    };
    let s = t.tdcall(&mut r);
    if s != status::SUCCESS {
        return Err(TdxError::VmcallTdcall {
            sub_function: VMCALL_HLT,
            status: s,
        });
    }
    if r.r10 != vmcall::SUCCESS {
        return Err(TdxError::Vmcall {
            sub_function: VMCALL_HLT,
            status: r.r10,
        });
    }
    Ok(())
}

/// Bytes of the static message buffer.
pub const MESSAGE_CAPACITY: usize = 256;

/// A message formatted into a fixed buffer, cut (at a character boundary) if it is longer.
pub struct Message {
    bytes: [u8; MESSAGE_CAPACITY],
    len: usize,
}

impl Message {
    /// `e`'s message.
    pub fn of(e: &VeError) -> Self {
        let mut m = Message {
            bytes: [0; MESSAGE_CAPACITY],
            len: 0,
        };
        // Writing to a Message never fails (it truncates), so the result carries nothing.
        let _ = fmt::write(&mut m, format_args!("{e}"));
        m
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        let bytes = self.bytes.get(..self.len).unwrap_or(&[]);
        core::str::from_utf8(bytes).unwrap_or("#VE: unhandled")
    }
}

impl fmt::Write for Message {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = MESSAGE_CAPACITY.saturating_sub(self.len);
        let mut n = s.len().min(room);
        while n > 0 && !s.is_char_boundary(n) {
            n -= 1;
        }
        let (Some(dst), Some(src)) = (
            self.bytes.get_mut(self.len..self.len.saturating_add(n)),
            s.as_bytes().get(..n),
        ) else {
            return Ok(());
        };
        dst.copy_from_slice(src);
        self.len = self.len.saturating_add(n);
        Ok(())
    }
}

static FIRST_FATAL: spin::Once<Message> = spin::Once::new();

/// The text for [`Handled::Fatal`]: the first call's error, formatted once into a static
/// buffer; any later call (only possible while the first is being reported) gets a fixed text.
pub fn fatal_message(e: &VeError) -> &'static str {
    if FIRST_FATAL.is_completed() {
        return "#VE: another #VE could not be handled while the first was being reported";
    }
    FIRST_FATAL.call_once(|| Message::of(e)).as_str()
}

#[cfg(test)]
mod tests;
