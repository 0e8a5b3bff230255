//! The IDT: every CPU exception (vectors 0-31) prints what happened and where, then takes the
//! fatal path. Interrupts stay disabled throughout the firmware.

use crate::exception::{route, ExceptionFrame, Handled, Report, Route};
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
    /* The handler returns only when the platform resumes the interrupted code. The frame is
       16-byte aligned here for the call: 15 pushes + vector + error code + the CPU's 5 words
       on a stack the CPU aligned to 16. */
    call {handler}
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rbp
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    pop rax
    add rsp, 16
    iretq
"#,
    handler = sym exception_handler,
);

extern "C" {
    // The first of 32 stubs, each 16 bytes apart.
    fn exception_stubs();
}

/// Every exception lands here with the saved state. A vector the chosen platform owns goes to
/// it (and may resume); everything else is reported on the fatal path.
extern "sysv64" fn exception_handler(frame: &mut ExceptionFrame) {
    let platform = crate::platform::current();
    if let (Route::Platform, Some(p)) = (route(frame.vector, platform), platform) {
        match p.handle_exception(frame) {
            Handled::Resume => return,
            Handled::Fatal(why) => crate::fatal::fatal(format_args!(
                "{why}: {}",
                Report {
                    frame,
                    cr2: x86_64::registers::control::Cr2::read_raw()
                }
            )),
        }
    }
    crate::fatal::fatal(format_args!(
        "{}",
        Report {
            frame,
            cr2: x86_64::registers::control::Cr2::read_raw()
        }
    ))
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
