//! CPU exceptions, platform-neutral: the saved state the IDT stubs hand over, the names of the
//! vectors, the report the fatal path prints, and the dispatch rule: a vector the platform owns
//! (#VE under TDX, #VC under SEV-ES/SNP) goes to the platform; every other one is fatal.
//! The IDT and its stubs are in `arch::exceptions`.

use crate::platform::Platform;
use core::fmt;

/// #VE, the virtualization exception TDX raises for instructions the TDX module will not run.
pub const VECTOR_VE: u8 = 20;
/// #VC, the VMM communication exception SEV-ES/SNP raises for intercepted instructions.
pub const VECTOR_VC: u8 = 29;

/// The registers as the common exception stub saves them, lowest address first: the general
/// registers, the vector and error code the stub pushes, then the CPU's interrupt frame. A
/// handler that resumes may change them; they are restored on return.
#[repr(C)]
#[derive(Debug, Default, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct ExceptionFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// What a platform's handler decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Return to the interrupted code with the frame's registers.
    Resume,
    /// Take the fatal path, saying why.
    Fatal(&'static str),
}

/// Where an exception goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// To the platform's [`Platform::handle_exception`].
    Platform,
    /// To the fatal path with the register report.
    Fatal,
}

/// The dispatch rule: `vector` goes to `platform` if one is chosen and owns it.
pub fn route(vector: u64, platform: Option<&dyn Platform>) -> Route {
    match (u8::try_from(vector), platform) {
        (Ok(v), Some(p)) if p.owns_vector(v) => Route::Platform,
        _ => Route::Fatal,
    }
}

const NAMES: [&str; 32] = [
    "divide error (#DE)",
    "debug (#DB)",
    "NMI",
    "breakpoint (#BP)",
    "overflow (#OF)",
    "bound range (#BR)",
    "invalid opcode (#UD)",
    "device not available (#NM)",
    "double fault (#DF)",
    "coprocessor segment overrun",
    "invalid TSS (#TS)",
    "segment not present (#NP)",
    "stack fault (#SS)",
    "general protection (#GP)",
    "page fault (#PF)",
    "reserved 15",
    "x87 floating point (#MF)",
    "alignment check (#AC)",
    "machine check (#MC)",
    "SIMD floating point (#XM)",
    "virtualization (#VE)",
    "control protection (#CP)",
    "reserved 22",
    "reserved 23",
    "reserved 24",
    "reserved 25",
    "reserved 26",
    "reserved 27",
    "hypervisor injection (#HV)",
    "VMM communication (#VC)",
    "security (#SX)",
    "reserved 31",
];

/// The name of exception `vector`.
pub fn name(vector: u64) -> &'static str {
    usize::try_from(vector)
        .ok()
        .and_then(|v| NAMES.get(v))
        .copied()
        .unwrap_or("unknown")
}

/// The fatal path's report of an exception: vector, name, where, and every register.
pub struct Report<'a> {
    /// The saved state.
    pub frame: &'a ExceptionFrame,
    /// CR2 at the time (the faulting address of a #PF).
    pub cr2: u64,
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fr = self.frame;
        write!(
            f,
            "CPU exception {} {} at rip={:#x} error_code={:#x} cr2={:#x} rsp={:#x} \
             rflags={:#x} cs={:#x} ss={:#x}\n  rax={:#x} rbx={:#x} rcx={:#x} rdx={:#x} \
             rsi={:#x} rdi={:#x} rbp={:#x}\n  r8={:#x} r9={:#x} r10={:#x} r11={:#x} r12={:#x} \
             r13={:#x} r14={:#x} r15={:#x}",
            fr.vector,
            name(fr.vector),
            fr.rip,
            fr.error_code,
            self.cr2,
            fr.rsp,
            fr.rflags,
            fr.cs,
            fr.ss,
            fr.rax,
            fr.rbx,
            fr.rcx,
            fr.rdx,
            fr.rsi,
            fr.rdi,
            fr.rbp,
            fr.r8,
            fr.r9,
            fr.r10,
            fr.r11,
            fr.r12,
            fr.r13,
            fr.r14,
            fr.r15
        )
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::eventlog::{ExtendError, Rtmrs};
    use crate::fw_cfg::{FwCfg, FwCfgDma};
    use crate::memory_map::MemoryMap;
    use crate::port_io::PortIo;
    use crate::BootError;
    use std::string::ToString;
    use td_layout::handoff::PlatformKind;

    /// A platform that owns #VE, as TDX will.
    struct OwnsVe;
    impl PortIo for OwnsVe {
        fn inb(&self, _: u16) -> u8 {
            0
        }
        fn outb(&self, _: u16, _: u8) {}
        fn outw(&self, _: u16, _: u16) {}
        fn outl(&self, _: u16, _: u32) {}
        fn inl(&self, _: u16) -> u32 {
            0
        }
    }
    impl Platform for OwnsVe {
        fn kind(&self) -> PlatformKind {
            PlatformKind::Tdx
        }
        fn io(&self) -> &(dyn PortIo + Sync) {
            self
        }
        fn owns_vector(&self, vector: u8) -> bool {
            vector == VECTOR_VE
        }
        fn fw_cfg_dma(&self) -> Option<&dyn FwCfgDma> {
            None
        }
        fn memory_map(&self, _: Option<&FwCfg<'_>>) -> Result<MemoryMap, BootError> {
            Err(BootError::NoPayload)
        }
        fn accept_memory(&self, _: u64, _: u64) -> Result<(), BootError> {
            Ok(())
        }
        fn vcpu_count(&self, _: Option<&FwCfg<'_>>) -> Result<u32, BootError> {
            Ok(1)
        }
        fn extend_rtmr(&self, _: usize, _: &[u8; 48]) -> Result<(), ExtendError> {
            Ok(())
        }
        fn emulated_rtmrs(&self) -> Option<Rtmrs> {
            None
        }
        fn fatal_report(&self, message: &str) -> ! {
            panic!("fatal: {message}")
        }
    }

    #[test]
    fn platform_vectors_go_to_the_platform_and_the_rest_is_fatal() {
        let p = OwnsVe;
        assert_eq!(route(20, Some(&p)), Route::Platform);
        assert_eq!(route(29, Some(&p)), Route::Fatal);
        assert_eq!(route(14, Some(&p)), Route::Fatal);
        assert_eq!(route(20 + 256, Some(&p)), Route::Fatal);
        // Before a platform is chosen, everything is fatal.
        assert_eq!(route(20, None), Route::Fatal);
        assert_eq!(p.cc_type(), 2);
    }

    #[test]
    fn the_report_names_the_exception_and_registers() {
        let frame = ExceptionFrame {
            vector: 14,
            error_code: 0x11,
            rip: 0x1234,
            rax: 0xAA,
            ..Default::default()
        };
        let text = Report {
            frame: &frame,
            cr2: 0xdead_0000,
        }
        .to_string();
        assert!(text.starts_with(
            "CPU exception 14 page fault (#PF) at rip=0x1234 error_code=0x11 cr2=0xdead0000"
        ));
        assert!(text.contains("rax=0xaa"));
        assert_eq!(name(99), "unknown");
        assert_eq!(core::mem::size_of::<ExceptionFrame>(), 22 * 8);
    }
}
