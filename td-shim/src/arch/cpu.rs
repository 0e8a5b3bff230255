//! CPU control: features, control registers, halting, and entering the payload.

use core::arch::asm;
use core::arch::x86_64::__cpuid;
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::registers::model_specific::{Efer, EferFlags};
use x86_64::structures::paging::PhysFrame;
use x86_64::PhysAddr;

/// Whether the CPU supports the no-execute bit (CPUID 0x8000_0001 EDX bit 20).
pub fn nx_supported() -> bool {
    let max = __cpuid(0x8000_0000).eax;
    max >= 0x8000_0001 && __cpuid(0x8000_0001).edx & (1 << 20) != 0
}

/// Whether CPUID leaf 0x21 says "IntelTDX    " (we run inside a TDX trust domain).
pub fn tdx_detected() -> bool {
    if __cpuid(0).eax < 0x21 {
        return false;
    }
    let r = __cpuid(0x21);
    let mut sig = [0u8; 12];
    sig[0..4].copy_from_slice(&r.ebx.to_le_bytes());
    sig[4..8].copy_from_slice(&r.edx.to_le_bytes());
    sig[8..12].copy_from_slice(&r.ecx.to_le_bytes());
    &sig == b"IntelTDX    "
}

/// Sets EFER.NXE so page-table entries may carry the NX bit. EFER is written only if NXE is
/// missing: a TD starts with it set, and a WRMSR of EFER in a TD raises #VE.
pub fn enable_nx() {
    if Efer::read().contains(EferFlags::NO_EXECUTE_ENABLE) {
        return;
    }
    // SAFETY: NXE only makes bit 63 of page-table entries meaningful; the live tables do not set it.
    unsafe { Efer::update(|f| f.insert(EferFlags::NO_EXECUTE_ENABLE)) };
}

/// Switches to the page tables rooted at `pml4`.
///
/// The caller guarantees the tables identity-map all memory the firmware uses (checked by
/// [`crate::paging::map_firmware_address_space`]'s construction).
pub fn load_page_tables(pml4: u64) {
    let frame = PhysFrame::containing_address(PhysAddr::new(pml4));
    // SAFETY: the new tables identity-map code, stack, data and MMIO exactly as before.
    unsafe { Cr3::write(frame, Cr3Flags::empty()) };
}

/// Stops this CPU for good.
pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

/// Enters an ELF payload: `entry(boot_info, load_base)` with the System V ABI on a fresh stack
/// ending at `stack_top`. Never returns; a payload that returns ends in [`payload_returned`].
pub fn enter_payload(entry: u64, boot_info: u64, load_base: u64, stack_top: u64) -> ! {
    // The firmware state left behind is never used again.
    // SAFETY: `entry` is the relocated entry of a payload loaded into mapped, executable memory.
    unsafe {
        asm!(
            "mov rsp, rcx",
            "xor ebp, ebp",
            "call rax",
            "call {returned}",
            // Fixed registers: `xor ebp, ebp` must not clear an operand the compiler put in RBP
            // (it did once, and the payload was entered at 0).
            in("rcx") stack_top & !0xF,
            in("rax") entry,
            returned = sym payload_returned,
            in("rdi") boot_info,
            in("rsi") load_base,
            options(noreturn)
        )
    }
}

/// Enters a Linux kernel through its 64-bit entry point, as the boot protocol asks: RSI = the
/// zero page, interrupts off, CS = 0x10 and DS/ES/SS = 0x18 (the firmware's own GDT), identity
/// paging covering the kernel, the zero page and the command line.
pub fn enter_linux(entry: u64, boot_params: u64, stack_top: u64) -> ! {
    // The firmware state left behind is never used again.
    // SAFETY: `entry` is a kernel's 64-bit entry in mapped, executable RAM; RSI is a valid zero page.
    unsafe {
        asm!(
            "cli",
            "mov rsp, rcx",
            "xor ebp, ebp",
            "jmp rax",
            // Fixed registers, as in `enter_payload`: RBP is cleared before the jump.
            in("rcx") stack_top & !0xF,
            in("rax") entry,
            in("rsi") boot_params,
            options(noreturn)
        )
    }
}

extern "sysv64" fn payload_returned() -> ! {
    crate::fatal::fatal(format_args!("the payload returned to the firmware"))
}
