//! Starting the application processors of a plain VM into the multiprocessor wakeup loop
//! (`crate::mp` describes the protocol).
//!
//! The boot CPU copies a real-mode trampoline to [`TRAMPOLINE`] (below 1 MiB, as a start-up IPI
//! needs) and the AP loop into the firmware half of the mailbox, then sends INIT and two
//! start-up IPIs to all processors but itself. Each AP goes from real mode to long mode on the
//! firmware's GDT and page tables (the final ones, which stay reserved after hand-off), jumps to
//! the loop, counts itself in the mailbox and waits for the OS. Under TDX the APs start at the
//! reset vector instead and reach the same loop (the TDX issue).

use crate::mp::{
    icr_sipi_all_but_self, MpError, COMMAND_TEST, COMMAND_WAKEUP, ICR_DELIVERY_PENDING,
    ICR_INIT_ALL_BUT_SELF, ICR_LOW, LAPIC_BASE, MAILBOX_ARRIVED, MAILBOX_FIRMWARE,
};
use core::sync::atomic::{AtomicU32, Ordering};

/// Where the real-mode trampoline is copied: a start-up IPI starts an AP at `page << 12`.
pub const TRAMPOLINE: u64 = td_layout::layout::AP_TRAMPOLINE.base;
/// Offsets of the trampoline's data, written by the boot CPU (the code reads them at these
/// absolute addresses).
const DATA_GDTR: usize = 0xF00;
const DATA_CR3: usize = 0xF10;
const DATA_EFER: usize = 0xF18;
const DATA_TARGET: usize = 0xF20;

core::arch::global_asm!(
    r#"
.section .text.ap_trampoline, "ax"
.code16
.global ap_trampoline_start
ap_trampoline_start:
    cli
    cld
    xor ax, ax
    mov ds, ax
    /* o32 lgdt [TRAMPOLINE + DATA_GDTR] */
    .byte 0x66, 0x0f, 0x01, 0x16
    .word {tramp} + {gdtr}
    mov eax, cr0
    or al, 1
    mov cr0, eax
    /* o32 jmp far 0x08:ap_trampoline32 (as copied) */
    .byte 0x66, 0xea
    .long {tramp} + (ap_trampoline32 - ap_trampoline_start)
    .word 0x08
.code32
ap_trampoline32:
    mov ax, 0x18
    mov ds, ax
    mov es, ax
    mov ss, ax
    /* CR4: PAE, OSFXSR, OSXMMEXCPT, as on the boot CPU. */
    mov eax, cr4
    or eax, 0x620
    mov cr4, eax
    mov eax, [{tramp} + {cr3}]
    mov cr3, eax
    /* EFER: LME, and NXE where the boot CPU has it (the tables carry NX bits). */
    mov ecx, 0xC0000080
    rdmsr
    or eax, [{tramp} + {efer}]
    wrmsr
    mov eax, cr0
    and eax, 0x9FFFFFFB
    or eax, 0x80010023
    mov cr0, eax
    /* jmp far 0x10:ap_trampoline64 (as copied) */
    .byte 0xea
    .long {tramp} + (ap_trampoline64 - ap_trampoline_start)
    .word 0x10
.code64
ap_trampoline64:
    mov ax, 0x18
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov rax, [{tramp} + {target}]
    jmp rax
.global ap_trampoline_end
ap_trampoline_end:

/* The loop, copied to the mailbox page's firmware half; position-independent. No stack. */
.global ap_loop_start
ap_loop_start:
    lea r8, [rip + ap_loop_start]
    sub r8, {firmware_half}
    /* The APIC ID the OS will name: CPUID 0xB EDX (x2APIC ID) where the CPU has leaf 0xB,
       else the initial APIC ID in CPUID 1 EBX[31:24]. */
    xor eax, eax
    cpuid
    cmp eax, 0xB
    jb 2f
    mov eax, 0xB
    xor ecx, ecx
    cpuid
    mov r9d, edx
    jmp 3f
2:
    mov eax, 1
    cpuid
    shr ebx, 24
    mov r9d, ebx
3:
    lock inc dword ptr [r8 + {arrived}]
4:
    pause
    movzx eax, word ptr [r8]
    cmp eax, {wakeup}
    je 5f
    cmp eax, {test}
    jne 4b
    cmp dword ptr [r8 + 4], r9d
    jne 4b
    mov word ptr [r8], 0
    jmp 4b
5:
    cmp dword ptr [r8 + 4], r9d
    jne 4b
    /* Read the vector before acknowledging: the OS may reuse the mailbox at once. */
    mov rax, [r8 + 8]
    mov word ptr [r8], 0
    jmp rax
.global ap_loop_end
ap_loop_end:
.code64
"#,
    tramp = const TRAMPOLINE,
    gdtr = const DATA_GDTR,
    cr3 = const DATA_CR3,
    efer = const DATA_EFER,
    target = const DATA_TARGET,
    firmware_half = const MAILBOX_FIRMWARE,
    arrived = const MAILBOX_ARRIVED,
    wakeup = const COMMAND_WAKEUP,
    test = const COMMAND_TEST,
);

extern "C" {
    static ap_trampoline_start: u8;
    static ap_trampoline_end: u8;
    static ap_loop_start: u8;
    static ap_loop_end: u8;
}

/// The bytes between two linker symbols of this module's assembly.
fn code(start: *const u8, end: *const u8) -> &'static [u8] {
    let len = (end as usize).saturating_sub(start as usize);
    // The symbols delimit assembled code in the firmware's (read-only, mapped) code segment.
    // SAFETY: `start..end` is one contiguous, initialised range of the firmware image in RAM.
    unsafe { core::slice::from_raw_parts(start, len) }
}

fn lapic_write(offset: u64, value: u32) {
    // The local APIC's registers are identity-mapped MMIO below 4 GiB (uncached by the VMM).
    // SAFETY: an aligned 32-bit MMIO write to the local APIC, which the firmware owns.
    unsafe { core::ptr::write_volatile((LAPIC_BASE + offset) as *mut u32, value) }
}

fn lapic_read(offset: u64) -> u32 {
    // SAFETY: an aligned 32-bit MMIO read of the local APIC.
    unsafe { core::ptr::read_volatile((LAPIC_BASE + offset) as *const u32) }
}

/// Waits about `micros` microseconds: each write to the POST port 0x80 takes about one
/// microsecond on real hardware (an I/O exit under a VMM takes at least that).
fn delay(micros: u32) {
    for _ in 0..micros {
        super::io::outb(0x80, 0);
    }
}

fn send_ipi(command: u32) {
    lapic_write(ICR_LOW, command);
    for _ in 0..100_000 {
        if lapic_read(ICR_LOW) & ICR_DELIVERY_PENDING == 0 {
            break;
        }
        core::hint::spin_loop();
    }
}

/// Starts `expected` APs into the wakeup loop in `mailbox` (at guest address `mailbox_base`),
/// through `trampoline` (the page at [`TRAMPOLINE`]). `cr3` is the page-table root the APs use
/// (the firmware's final tables) and `nxe` whether the boot CPU set EFER.NXE. Waits about one
/// second for all of them.
pub fn park_aps(
    expected: u32,
    trampoline: &mut [u8],
    mailbox: &mut [u8],
    mailbox_base: u64,
    cr3: u64,
    nxe: bool,
) -> Result<(), MpError> {
    // Taking an extern static's address needs no `unsafe`; its bytes are read in `code`.
    let tramp = code(
        core::ptr::addr_of!(ap_trampoline_start),
        core::ptr::addr_of!(ap_trampoline_end),
    );
    let ap_loop = code(
        core::ptr::addr_of!(ap_loop_start),
        core::ptr::addr_of!(ap_loop_end),
    );
    if trampoline.len() != 4096 || mailbox.len() != 4096 {
        return Err(MpError::BadPage);
    }
    if tramp.len() > DATA_GDTR || ap_loop.len() > MAILBOX_ARRIVED - MAILBOX_FIRMWARE {
        return Err(MpError::CodeTooLarge);
    }
    mailbox.fill(0);
    mailbox[MAILBOX_FIRMWARE..MAILBOX_FIRMWARE + ap_loop.len()].copy_from_slice(ap_loop);
    trampoline.fill(0);
    trampoline[..tramp.len()].copy_from_slice(tramp);
    let gdtr = x86_64::instructions::tables::sgdt();
    trampoline[DATA_GDTR..DATA_GDTR + 2].copy_from_slice(&gdtr.limit.to_le_bytes());
    // The GDT is in the image, below 4 GiB: its base fits the 32-bit field real mode loads.
    trampoline[DATA_GDTR + 2..DATA_GDTR + 6]
        .copy_from_slice(&(gdtr.base.as_u64() as u32).to_le_bytes());
    trampoline[DATA_CR3..DATA_CR3 + 4].copy_from_slice(&(cr3 as u32).to_le_bytes());
    let efer: u32 = 0x100 | if nxe { 0x800 } else { 0 };
    trampoline[DATA_EFER..DATA_EFER + 4].copy_from_slice(&efer.to_le_bytes());
    let target = mailbox_base + MAILBOX_FIRMWARE as u64;
    trampoline[DATA_TARGET..DATA_TARGET + 8].copy_from_slice(&target.to_le_bytes());
    core::sync::atomic::fence(Ordering::SeqCst);

    // INIT, then two start-up IPIs (Intel SDM Vol. 3, 9.4.4.1: 10 ms, then 200 us apart).
    send_ipi(ICR_INIT_ALL_BUT_SELF);
    delay(10_000);
    let page = (TRAMPOLINE >> 12) as u8;
    for _ in 0..2 {
        send_ipi(icr_sipi_all_but_self(page));
        delay(200);
    }
    let arrived_at = mailbox[MAILBOX_ARRIVED..].as_mut_ptr().cast::<u32>();
    // The counter is 4-byte aligned in the page and only ever updated with `lock inc` by APs.
    // SAFETY: an aligned u32 inside `mailbox`, which this function borrows exclusively.
    let arrived = unsafe { AtomicU32::from_ptr(arrived_at) };
    for _ in 0..1_000 {
        if arrived.load(Ordering::Acquire) >= expected {
            return Ok(());
        }
        delay(1_000);
    }
    Err(MpError::Missing {
        expected,
        arrived: arrived.load(Ordering::Acquire),
    })
}
