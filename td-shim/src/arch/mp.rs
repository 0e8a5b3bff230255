//! Starting the application processors of a plain VM into the multiprocessor wakeup loop
//! (`crate::mp` describes the protocol).
//!
//! The boot CPU copies the AP loop into the firmware half of the mailbox and writes the
//! rendezvous page (`AP_RENDEZVOUS`: page-table root, EFER bits, the loop's address, then the go
//! word). The APs wait for the go word in 32-bit mode in the reset code (`reset_ap_wait`), enter
//! long mode on the firmware's GDT and final page tables (which stay reserved after hand-off),
//! jump to the loop, count themselves in the mailbox and wait for the OS.
//!
//! How they get to `reset_ap_wait` is the only difference between platforms ([`ApStart`]): under
//! TDX every vCPU starts at the reset vector and the APs go there at once; on a plain VM the
//! boot CPU copies a real-mode trampoline to [`TRAMPOLINE`] (below 1 MiB, as a start-up IPI
//! needs) and sends INIT and two start-up IPIs to all processors but itself; the trampoline
//! enters protected mode and jumps to the same code. So a plain VM under QEMU TCG runs the TDX
//! path from `reset_ap_wait` on.

use crate::mp::{
    icr_sipi_all_but_self, rendezvous_fields, MpError, COMMAND_TEST, COMMAND_WAKEUP,
    ICR_DELIVERY_PENDING, ICR_INIT_ALL_BUT_SELF, ICR_LOW, LAPIC_BASE, MAILBOX_ARRIVED,
    MAILBOX_FIRMWARE,
};
use core::sync::atomic::{AtomicU32, Ordering};

/// Where the real-mode trampoline is copied: a start-up IPI starts an AP at `page << 12`.
pub const TRAMPOLINE: u64 = td_layout::layout::AP_TRAMPOLINE.base;
/// Offset of the GDT pointer in the trampoline page, written by the boot CPU (the code reads
/// it at this absolute address).
const DATA_GDTR: usize = 0xF00;

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
    /* From here on the same path as a TDX AP entering at the reset vector. */
    mov eax, offset reset_ap_wait
    jmp eax
.global ap_trampoline_end
ap_trampoline_end:
.code64

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
/// microsecond on real hardware (an I/O exit under a VMM takes at least that). Plain VM only.
fn delay(micros: u32) {
    for _ in 0..micros {
        super::io::outb(0x80, 0);
    }
}

/// Spins about `micros` microseconds without leaving the guest (a PAUSE takes tens of
/// nanoseconds; port I/O would be a TDVMCALL under TDX): a bound, not a clock.
fn spin(micros: u32) {
    for _ in 0..u64::from(micros) * 32 {
        core::hint::spin_loop();
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

/// How the application processors reach `reset_ap_wait`.
pub enum ApStart<'a> {
    /// They are already there: every vCPU started at the reset vector (TDX).
    AtResetVector,
    /// INIT and two start-up IPIs through the trampoline page at [`TRAMPOLINE`] (a plain VM).
    StartupIpi {
        /// The page at [`TRAMPOLINE`].
        trampoline: &'a mut [u8],
    },
}

/// Sends `expected` APs into the wakeup loop in `mailbox` (at guest address `mailbox_base`):
/// the loop is copied there, the rendezvous page (`rendezvous`, the `AP_RENDEZVOUS` region) gets
/// the page-table root `cr3` (the firmware's final tables), the EFER bits (`nxe`: the tables use
/// NX) and the loop's address, then the go word; `start` says how the APs get there. Waits about
/// one second for all of them to count themselves in the mailbox.
pub fn park_aps(
    expected: u32,
    start: ApStart<'_>,
    rendezvous: &mut [u8],
    mailbox: &mut [u8],
    mailbox_base: u64,
    cr3: u64,
    nxe: bool,
) -> Result<(), MpError> {
    // Taking an extern static's address needs no `unsafe`; its bytes are read in `code`.
    let ap_loop = code(
        core::ptr::addr_of!(ap_loop_start),
        core::ptr::addr_of!(ap_loop_end),
    );
    if mailbox.len() != 4096 || rendezvous.len() != 4096 {
        return Err(MpError::BadPage);
    }
    if ap_loop.len() > MAILBOX_ARRIVED - MAILBOX_FIRMWARE {
        return Err(MpError::CodeTooLarge);
    }
    mailbox.fill(0);
    mailbox[MAILBOX_FIRMWARE..MAILBOX_FIRMWARE + ap_loop.len()].copy_from_slice(ap_loop);
    let target = mailbox_base + MAILBOX_FIRMWARE as u64;
    let fields = rendezvous_fields(cr3, nxe, target).ok_or(MpError::BadPage)?;
    let page = rendezvous.as_mut_ptr();
    for (at, bytes) in fields {
        // Under TDX the APs are polling the go word of this page: every write is volatile and
        // the go word comes last, after a release fence.
        core::sync::atomic::fence(Ordering::Release);
        for (i, b) in bytes.iter().enumerate() {
            // SAFETY: `at + i` < 24 <= the page's 4096 bytes (checked above), which this
            // function borrows mutably; other CPUs only read it.
            unsafe { core::ptr::write_volatile(page.add(at + i), *b) };
        }
    }
    core::sync::atomic::fence(Ordering::SeqCst);

    let wait: fn(u32) = match start {
        ApStart::AtResetVector => spin,
        ApStart::StartupIpi { trampoline } => {
            let tramp = code(
                core::ptr::addr_of!(ap_trampoline_start),
                core::ptr::addr_of!(ap_trampoline_end),
            );
            if trampoline.len() != 4096 {
                return Err(MpError::BadPage);
            }
            if tramp.len() > DATA_GDTR {
                return Err(MpError::CodeTooLarge);
            }
            trampoline.fill(0);
            trampoline[..tramp.len()].copy_from_slice(tramp);
            let gdtr = x86_64::instructions::tables::sgdt();
            trampoline[DATA_GDTR..DATA_GDTR + 2].copy_from_slice(&gdtr.limit.to_le_bytes());
            // The GDT is in the image, below 4 GiB: its base fits the 32-bit field real mode
            // loads.
            trampoline[DATA_GDTR + 2..DATA_GDTR + 6]
                .copy_from_slice(&(gdtr.base.as_u64() as u32).to_le_bytes());
            core::sync::atomic::fence(Ordering::SeqCst);
            // INIT, then two start-up IPIs (Intel SDM Vol. 3, 9.4.4.1: 10 ms, then 200 us
            // apart).
            send_ipi(ICR_INIT_ALL_BUT_SELF);
            delay(10_000);
            let vector_page = (TRAMPOLINE >> 12) as u8;
            for _ in 0..2 {
                send_ipi(icr_sipi_all_but_self(vector_page));
                delay(200);
            }
            delay
        }
    };
    let arrived_at = mailbox[MAILBOX_ARRIVED..].as_mut_ptr().cast::<u32>();
    // The counter is 4-byte aligned in the page and only ever updated with `lock inc` by APs.
    // SAFETY: an aligned u32 inside `mailbox`, which this function borrows exclusively.
    let arrived = unsafe { AtomicU32::from_ptr(arrived_at) };
    for _ in 0..1_000 {
        if arrived.load(Ordering::Acquire) >= expected {
            return Ok(());
        }
        wait(1_000);
    }
    Err(MpError::Missing {
        expected,
        arrived: arrived.load(Ordering::Acquire),
    })
}
