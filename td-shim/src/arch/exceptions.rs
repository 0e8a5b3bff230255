//! The IDT: every CPU exception (vectors 0-31) prints what happened and where, then takes the
//! fatal path. Interrupts stay disabled throughout the firmware.

use core::fmt;
use x86_64::instructions::tables::lidt;
use x86_64::structures::DescriptorTablePointer;
use x86_64::VirtAddr;

// One 16-byte stub per vector: push a zero error code where the CPU pushes none, push the
// vector, and join the common path, which saves the general registers and calls the handler.
core::arch::global_asm!(
    r#"
.section .text.exceptions, "ax"
.macro EXC_NOERR n
    .balign 16
    push 0
    push \n
    jmp exception_common
.endm
.macro EXC_ERR n
    .balign 16
    push \n
    jmp exception_common
.endm
.balign 16
.global exception_stubs
exception_stubs:
    EXC_NOERR 0
    EXC_NOERR 1
    EXC_NOERR 2
    EXC_NOERR 3
    EXC_NOERR 4
    EXC_NOERR 5
    EXC_NOERR 6
    EXC_NOERR 7
    EXC_ERR 8
    EXC_NOERR 9
    EXC_ERR 10
    EXC_ERR 11
    EXC_ERR 12
    EXC_ERR 13
    EXC_ERR 14
    EXC_NOERR 15
    EXC_NOERR 16
    EXC_ERR 17
    EXC_NOERR 18
    EXC_NOERR 19
    EXC_NOERR 20
    EXC_ERR 21
    EXC_NOERR 22
    EXC_NOERR 23
    EXC_NOERR 24
    EXC_NOERR 25
    EXC_NOERR 26
    EXC_NOERR 27
    EXC_NOERR 28
    EXC_ERR 29
    EXC_ERR 30
    EXC_NOERR 31
.balign 16
exception_common:
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
    mov rdi, rsp
    call {handler}
    ud2
"#,
    handler = sym exception_handler,
);

extern "C" {
    // The first of 32 stubs, each 16 bytes apart.
    fn exception_stubs();
}

/// The stack as `exception_common` leaves it.
#[repr(C)]
pub struct ExceptionFrame {
    r15: u64,
    r14: u64,
    r13: u64,
    r12: u64,
    r11: u64,
    r10: u64,
    r9: u64,
    r8: u64,
    rbp: u64,
    rdi: u64,
    rsi: u64,
    rdx: u64,
    rcx: u64,
    rbx: u64,
    rax: u64,
    vector: u64,
    error_code: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
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

struct Report<'a>(&'a ExceptionFrame);

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fr = self.0;
        let name = NAMES.get(fr.vector as usize).copied().unwrap_or("unknown");
        let cr2 = x86_64::registers::control::Cr2::read_raw();
        write!(
            f,
            "CPU exception {} {name} at rip={:#x} error_code={:#x} cr2={cr2:#x} rsp={:#x} \
             rflags={:#x} cs={:#x} ss={:#x}\n  rax={:#x} rbx={:#x} rcx={:#x} rdx={:#x} \
             rsi={:#x} rdi={:#x} rbp={:#x}\n  r8={:#x} r9={:#x} r10={:#x} r11={:#x} r12={:#x} \
             r13={:#x} r14={:#x} r15={:#x}",
            fr.vector,
            fr.rip,
            fr.error_code,
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

extern "sysv64" fn exception_handler(frame: &ExceptionFrame) -> ! {
    crate::fatal::fatal(format_args!("{}", Report(frame)))
}

/// An IDT gate (Intel SDM Vol. 3, 6.14.1): 64-bit interrupt gate, DPL 0.
#[derive(Clone, Copy)]
#[repr(C)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

#[repr(C, align(16))]
struct Idt([Gate; 32]);

static IDT: spin::Once<Idt> = spin::Once::new();

/// Installs the IDT. Call once, early, with the firmware's 64-bit code selector in CS.
pub fn install() {
    let base = exception_stubs as *const () as u64;
    let cs = {
        use x86_64::instructions::segmentation::{Segment, CS};
        CS::get_reg().0
    };
    let idt = IDT.call_once(|| {
        let mut gates = [Gate {
            offset_low: 0,
            selector: 0,
            ist: 0,
            type_attr: 0,
            offset_mid: 0,
            offset_high: 0,
            reserved: 0,
        }; 32];
        for (i, g) in gates.iter_mut().enumerate() {
            let addr = base + 16 * i as u64;
            *g = Gate {
                offset_low: addr as u16,
                selector: cs,
                ist: 0,
                type_attr: 0x8E,
                offset_mid: (addr >> 16) as u16,
                offset_high: (addr >> 32) as u32,
                reserved: 0,
            };
        }
        Idt(gates)
    });
    let pointer = DescriptorTablePointer {
        limit: (core::mem::size_of::<Idt>() - 1) as u16,
        base: VirtAddr::from_ptr(idt),
    };
    // SAFETY: the IDT is a 'static, fully initialised table of valid gates pointing at the stubs.
    unsafe { lidt(&pointer) };
}
