//! The application processors: started once, they help accept memory, then park in the
//! multiprocessor wakeup loop for the OS (`crate::mp` describes the mailbox protocol).
//!
//! 1. **Start** ([`start_helpers`]). The boot CPU writes the rendezvous page (`AP_RENDEZVOUS`:
//!    its page-table root, EFER bits, the 64-bit entry `ap_entry64`, the AP stacks, its IDT),
//!    then the go word. The APs wait for the go word in 32-bit mode in the reset code
//!    (`reset_ap_wait`), enter long mode and jump to `ap_entry64`, which takes an index with
//!    `lock xadd`, a stack, the IDT, and calls [`ap_main`]: a loop waiting for jobs.
//!    How the APs get to `reset_ap_wait` is the only difference between platforms
//!    ([`ApStart`]): under TDX every vCPU starts at the reset vector and the APs go there at
//!    once; on a plain VM the boot CPU copies a real-mode trampoline to [`TRAMPOLINE`] (below
//!    1 MiB, as a start-up IPI needs) and sends INIT and two start-up IPIs; the trampoline
//!    enters protected mode and jumps to the same code. So a plain VM under QEMU TCG runs the
//!    TDX path from `reset_ap_wait` on.
//! 2. **Accept** ([`Helpers::accept`]): each vCPU accepts its share of the RAM
//!    ([`crate::tdx::accept::share_of`], 2 MiB-aligned cuts), the boot CPU its own; the boot CPU
//!    checks the shares add up to the whole.
//! 3. **Park** ([`Helpers::park`]): the loop is copied into the mailbox page; each AP sets
//!    EFER.NXE if the final tables need it, loads them and jumps to the loop, where it counts
//!    itself and waits for the OS.

use crate::mp::{
    icr_sipi_all_but_self, MpError, Rendezvous, COMMAND_TEST, COMMAND_WAKEUP, ICR_DELIVERY_PENDING,
    ICR_INIT_ALL_BUT_SELF, ICR_LOW, LAPIC_BASE, MAILBOX_ARRIVED, MAILBOX_FIRMWARE,
    RENDEZVOUS_CAPACITY, RENDEZVOUS_GO, RENDEZVOUS_GO_WORD, RENDEZVOUS_IDTR, RENDEZVOUS_INDEX,
    RENDEZVOUS_STACKS, RENDEZVOUS_STACK_SIZE,
};
use crate::tdx::accept::share_of;
use crate::BootError;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use td_layout::layout::AP_RENDEZVOUS;

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

/* The APs' 64-bit entry (reached by the far jump in `reset_ap_wait`, on the boot CPU's page
   tables at the time): an index, a stack, the IDT, then Rust. */
.section .text.ap_entry64, "ax"
.code64
.global ap_entry64
ap_entry64:
    mov ax, 0x18
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov eax, 1
    lock xadd dword ptr [{rdv} + {index}], eax
    cmp eax, dword ptr [{rdv} + {capacity}]
    jae 2f
    lidt [{rdv} + {idtr}]
    mov ecx, eax
    inc rcx
    imul rcx, qword ptr [{rdv} + {stack_size}]
    mov rsp, qword ptr [{rdv} + {stacks}]
    add rsp, rcx
    and rsp, -16
    xor ebp, ebp
    mov edi, eax
    call {ap_main}
2:
    cli
    pause
    jmp 2b

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
    rdv = const AP_RENDEZVOUS.base,
    index = const RENDEZVOUS_INDEX,
    capacity = const RENDEZVOUS_CAPACITY,
    idtr = const RENDEZVOUS_IDTR,
    stack_size = const RENDEZVOUS_STACK_SIZE,
    stacks = const RENDEZVOUS_STACKS,
    ap_main = sym ap_main,
    firmware_half = const MAILBOX_FIRMWARE,
    arrived = const MAILBOX_ARRIVED,
    wakeup = const COMMAND_WAKEUP,
    test = const COMMAND_TEST,
);

extern "C" {
    static ap_entry64: u8;
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

/// Bytes of stack each AP gets (it runs the acceptance loop and, on a fault, the fatal path).
pub const AP_STACK_SIZE: usize = 0x2000;

const JOB_NONE: u32 = 0;
const JOB_ACCEPT: u32 = 1;
const JOB_PARK: u32 = 2;

/// APs that reached [`ap_main`].
static ARRIVED: AtomicU32 = AtomicU32::new(0);
/// The job: its kind, then its sequence number (bumped last, with release ordering).
static JOB_KIND: AtomicU32 = AtomicU32::new(JOB_NONE);
static JOB_SEQ: AtomicU32 = AtomicU32::new(0);
/// The accept job: the ranges (a leaked slice, never freed while APs may read it) and how many
/// vCPUs share them.
static ACCEPT_RANGES: AtomicUsize = AtomicUsize::new(0);
static ACCEPT_COUNT: AtomicUsize = AtomicUsize::new(0);
static ACCEPT_SHARES: AtomicUsize = AtomicUsize::new(0);
/// Progress of the accept job: APs done, bytes accepted, the first failing address + 1.
static DONE: AtomicU32 = AtomicU32::new(0);
static DONE_BYTES: AtomicU64 = AtomicU64::new(0);
static FAILED_AT: AtomicU64 = AtomicU64::new(0);
/// The park job: the final page tables, whether they need EFER.NXE, the loop's address.
static PARK_CR3: AtomicU64 = AtomicU64::new(0);
static PARK_NXE: AtomicU32 = AtomicU32::new(0);
static PARK_TARGET: AtomicU64 = AtomicU64::new(0);

fn wait_for_job(seen: &mut u32) -> u32 {
    loop {
        let seq = JOB_SEQ.load(Ordering::Acquire);
        if seq != *seen {
            *seen = seq;
            return JOB_KIND.load(Ordering::Acquire);
        }
        core::hint::spin_loop();
    }
}

fn post_job(kind: u32) {
    JOB_KIND.store(kind, Ordering::Release);
    JOB_SEQ.fetch_add(1, Ordering::AcqRel);
}

/// An AP in Rust: waits for jobs until it is parked. `index` is its place among the APs (0
/// for the first to arrive); in an accept job it takes share `index + 1` (the boot CPU has 0).
extern "sysv64" fn ap_main(index: u32) -> ! {
    ARRIVED.fetch_add(1, Ordering::AcqRel);
    let mut seen = 0;
    loop {
        match wait_for_job(&mut seen) {
            JOB_ACCEPT => {
                let ranges = accept_ranges();
                let n = ACCEPT_SHARES.load(Ordering::Acquire);
                let me = index as usize + 1;
                if me < n {
                    accept_share(ranges, n, me);
                }
                DONE.fetch_add(1, Ordering::AcqRel);
            }
            JOB_PARK => park_self(),
            _ => {}
        }
    }
}

fn accept_ranges() -> &'static [(u64, u64)] {
    let ptr = ACCEPT_RANGES.load(Ordering::Acquire) as *const (u64, u64);
    let len = ACCEPT_COUNT.load(Ordering::Acquire);
    if ptr.is_null() {
        return &[];
    }
    // The boot CPU stored a leaked `&'static [(u64, u64)]`'s pointer and length before posting
    // the job (release/acquire on JOB_SEQ orders them); it is never freed.
    // SAFETY: a valid, immutable, 'static slice of `len` elements.
    unsafe { core::slice::from_raw_parts(ptr, len) }
}

/// Accepts share `me` of `n` of `ranges` on this CPU through the platform, counting bytes.
fn accept_share(ranges: &[(u64, u64)], n: usize, me: usize) {
    let Some(platform) = crate::platform::current() else {
        FAILED_AT.store(1, Ordering::Release);
        return;
    };
    let Ok(share) = share_of(ranges, n, me) else {
        FAILED_AT.store(1, Ordering::Release);
        return;
    };
    for (base, len) in share {
        if platform.accept_memory(base, len).is_err() {
            let _ = FAILED_AT.compare_exchange(
                0,
                base.saturating_add(1),
                Ordering::AcqRel,
                Ordering::Acquire,
            );
            return;
        }
        DONE_BYTES.fetch_add(len, Ordering::AcqRel);
    }
}

/// The park job on this AP: EFER.NXE if the final tables need it (written only if missing:
/// under TDX it is set and a write changing EFER raises #VE), the final tables, the loop.
fn park_self() -> ! {
    let cr3 = PARK_CR3.load(Ordering::Acquire);
    let target = PARK_TARGET.load(Ordering::Acquire);
    if PARK_NXE.load(Ordering::Acquire) != 0 {
        use x86_64::registers::model_specific::{Efer, EferFlags};
        if !Efer::read().contains(EferFlags::NO_EXECUTE_ENABLE) {
            // NXE only gives bit 63 of page-table entries a meaning; the tables this CPU
            // uses set none yet.
            // SAFETY: NXE set while this CPU's tables have no NX bit: nothing changes meaning.
            unsafe { Efer::update(|f| f.insert(EferFlags::NO_EXECUTE_ENABLE)) };
        }
    }
    // The final tables identity-map the firmware code (executable) this runs from, and the
    // loop in the mailbox page (executable low memory); no stack is used after the switch.
    // `cr3` is the root of the firmware's final tables and `target` the loop, written
    // by the boot CPU before it posted the job.
    // SAFETY: cr3 = final tables mapping this code and the loop; target = that loop (BSP-written).
    unsafe {
        core::arch::asm!(
            "mov cr3, {cr3}",
            "jmp {target}",
            cr3 = in(reg) cr3,
            target = in(reg) target,
            options(noreturn)
        )
    }
}

/// The APs, once started: how many reached [`ap_main`].
pub struct Helpers {
    count: u32,
}

/// Starts the `expected` APs into [`ap_main`] (see the module documentation), with stacks from
/// the heap. Waits about one second for them: fewer is an error (the ones that came would
/// wait for jobs forever; the boot cannot park the others).
pub fn start_helpers(
    expected: u32,
    start: ApStart<'_>,
    rendezvous: &mut [u8],
) -> Result<Helpers, BootError> {
    if rendezvous.len() != 4096 {
        return Err(MpError::BadPage.into());
    }
    let stacks_len = AP_STACK_SIZE
        .checked_mul(expected as usize)
        .ok_or(BootError::RegionUnavailable("AP stacks"))?;
    let layout = core::alloc::Layout::from_size_align(stacks_len, 4096)
        .map_err(|_| BootError::RegionUnavailable("AP stacks"))?;
    // The stacks live as long as the APs run firmware code: until they are parked, and the
    // firmware's memory is only given to the OS after that. Leaked on purpose.
    // SAFETY: a non-zero size (expected >= 1, checked by the caller) and a valid layout.
    let stacks = unsafe { alloc::alloc::alloc(layout) };
    if stacks.is_null() {
        return Err(BootError::RegionUnavailable(
            "AP stacks (the heap is too small for this many vCPUs)",
        ));
    }
    let idt = x86_64::instructions::tables::sidt();
    let (cr3, _) = x86_64::registers::control::Cr3::read();
    let efer = x86_64::registers::model_specific::Efer::read();
    let fields = Rendezvous {
        cr3: cr3.start_address().as_u64(),
        nxe: efer.contains(x86_64::registers::model_specific::EferFlags::NO_EXECUTE_ENABLE),
        entry: core::ptr::addr_of!(ap_entry64) as u64,
        stacks: stacks as u64,
        stack_size: AP_STACK_SIZE as u64,
        capacity: expected,
        idt: (idt.limit, idt.base.as_u64()),
    }
    .fields()
    .ok_or(MpError::BadPage)?;
    let page = rendezvous.as_mut_ptr();
    for (i, b) in fields.iter().enumerate().skip(8) {
        // Under TDX the APs are polling this page: volatile writes, the go word last.
        // SAFETY: i < RENDEZVOUS_LEN <= 4096, inside the page this function borrows mutably.
        unsafe { core::ptr::write_volatile(page.add(i), *b) };
    }
    core::sync::atomic::fence(Ordering::SeqCst);
    let go = page.wrapping_add(RENDEZVOUS_GO_WORD).cast::<u64>();
    // SAFETY: the go word is 8-byte aligned at the start of the 4 KiB-aligned page.
    unsafe { core::ptr::write_volatile(go, RENDEZVOUS_GO) };
    core::sync::atomic::fence(Ordering::SeqCst);

    let wait: fn(u32) = match start {
        ApStart::AtResetVector => spin,
        ApStart::StartupIpi { trampoline } => {
            send_startup(trampoline)?;
            delay
        }
    };
    for _ in 0..1_000 {
        if ARRIVED.load(Ordering::Acquire) >= expected {
            return Ok(Helpers { count: expected });
        }
        wait(1_000);
    }
    Err(MpError::Missing {
        expected,
        arrived: ARRIVED.load(Ordering::Acquire),
    }
    .into())
}

/// Copies the trampoline and sends INIT and two start-up IPIs to all processors but this one.
fn send_startup(trampoline: &mut [u8]) -> Result<(), MpError> {
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
    // The GDT is in the image, below 4 GiB: its base fits the 32-bit field real mode loads.
    trampoline[DATA_GDTR + 2..DATA_GDTR + 6]
        .copy_from_slice(&(gdtr.base.as_u64() as u32).to_le_bytes());
    core::sync::atomic::fence(Ordering::SeqCst);
    // INIT, then two start-up IPIs (Intel SDM Vol. 3, 9.4.4.1: 10 ms, then 200 us apart).
    send_ipi(ICR_INIT_ALL_BUT_SELF);
    delay(10_000);
    let vector_page = (TRAMPOLINE >> 12) as u8;
    for _ in 0..2 {
        send_ipi(icr_sipi_all_but_self(vector_page));
        delay(200);
    }
    Ok(())
}

impl Helpers {
    /// How many APs help.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Accepts `ranges` (sorted, disjoint, 4 KiB aligned) with every helper and this CPU, each
    /// its share. Returns the bytes accepted, which must be the whole.
    pub fn accept(
        &self,
        ranges: alloc::vec::Vec<(u64, u64)>,
        accept: impl Fn(u64, u64) -> Result<(), BootError>,
    ) -> Result<u64, BootError> {
        let n = self.count as usize + 1;
        let ranges: &'static [(u64, u64)] = alloc::vec::Vec::leak(ranges);
        DONE.store(0, Ordering::Release);
        DONE_BYTES.store(0, Ordering::Release);
        FAILED_AT.store(0, Ordering::Release);
        ACCEPT_RANGES.store(ranges.as_ptr() as usize, Ordering::Release);
        ACCEPT_COUNT.store(ranges.len(), Ordering::Release);
        ACCEPT_SHARES.store(n, Ordering::Release);
        post_job(JOB_ACCEPT);
        let mut mine = 0u64;
        let share =
            share_of(ranges, n, 0).map_err(|_| BootError::RegionUnavailable("RAM to accept"))?;
        for (base, len) in share {
            accept(base, len)?;
            mine = mine.saturating_add(len);
        }
        while DONE.load(Ordering::Acquire) < self.count {
            core::hint::spin_loop();
        }
        let failed = FAILED_AT.load(Ordering::Acquire);
        if failed != 0 {
            log::error!("mp: an AP failed to accept memory at {:#x}", failed - 1);
            return Err(BootError::RegionUnavailable(
                "RAM to accept (an application processor failed)",
            ));
        }
        let total = mine.saturating_add(DONE_BYTES.load(Ordering::Acquire));
        let whole = ranges.iter().fold(0u64, |a, r| a.saturating_add(r.1));
        if total != whole {
            log::error!("mp: {total:#x} of {whole:#x} bytes were accepted");
            return Err(BootError::RegionUnavailable(
                "RAM to accept (the shares do not add up)",
            ));
        }
        log::info!(
            "accept: {} MiB by {n} vCPUs (the boot CPU {} MiB)",
            whole >> 20,
            mine >> 20
        );
        Ok(whole)
    }

    /// Parks every helper in the wakeup loop in `mailbox` (at guest address `mailbox_base`):
    /// the loop is copied there, then each AP loads the final tables `cr3` (setting EFER.NXE
    /// first if `nxe`) and jumps to it. Waits about one second for all to count themselves.
    pub fn park(
        self,
        mailbox: &mut [u8],
        mailbox_base: u64,
        cr3: u64,
        nxe: bool,
        tdx: bool,
    ) -> Result<(), MpError> {
        // Taking an extern static's address needs no `unsafe`; its bytes are read in `code`.
        let ap_loop = code(
            core::ptr::addr_of!(ap_loop_start),
            core::ptr::addr_of!(ap_loop_end),
        );
        if mailbox.len() != 4096 {
            return Err(MpError::BadPage);
        }
        if ap_loop.len() > MAILBOX_ARRIVED - MAILBOX_FIRMWARE {
            return Err(MpError::CodeTooLarge);
        }
        mailbox.fill(0);
        mailbox[MAILBOX_FIRMWARE..MAILBOX_FIRMWARE + ap_loop.len()].copy_from_slice(ap_loop);
        PARK_CR3.store(cr3, Ordering::Release);
        PARK_NXE.store(u32::from(nxe), Ordering::Release);
        PARK_TARGET.store(mailbox_base + MAILBOX_FIRMWARE as u64, Ordering::Release);
        core::sync::atomic::fence(Ordering::SeqCst);
        post_job(JOB_PARK);
        let wait: fn(u32) = if tdx { spin } else { delay };
        let arrived_at = mailbox[MAILBOX_ARRIVED..].as_mut_ptr().cast::<u32>();
        // The counter is 4-byte aligned in the page and only ever updated with `lock inc` by
        // APs.
        // SAFETY: an aligned u32 inside `mailbox`, which this function borrows exclusively.
        let arrived = unsafe { AtomicU32::from_ptr(arrived_at) };
        for _ in 0..1_000 {
            if arrived.load(Ordering::Acquire) >= self.count {
                return Ok(());
            }
            wait(1_000);
        }
        Err(MpError::Missing {
            expected: self.count,
            arrived: arrived.load(Ordering::Acquire),
        })
    }
}
