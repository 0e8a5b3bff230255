//! The test payload: a position-independent `no_std` ELF that the firmware loads from the image.
//!
//! It prints what it was handed (entry registers, the hand-off block, the memory map) on COM1
//! and checks it against what it can find out for itself: the VMM's own E820 (read from fw_cfg
//! independently of the firmware), its own load address, relocations and `.bss`. Then it ends
//! QEMU through `isa-debug-exit` with [`DEBUG_EXIT_PAYLOAD_OK`] or [`DEBUG_EXIT_PAYLOAD_BAD`].
#![no_std]
#![no_main]

use core::arch::{asm, global_asm};
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, Ordering};
use td_layout::handoff::{
    BootInfo, MemoryMapEntry, PlatformKind, BOOT_INFO_MAGIC, BOOT_INFO_VERSION,
    DEBUG_EXIT_PAYLOAD_BAD, DEBUG_EXIT_PAYLOAD_OK, DEBUG_EXIT_PORT, E820_RAM,
};

// Entry: keep the stack pointer the firmware gave us for checking, align, call Rust.
global_asm!(
    ".global _start",
    "_start:",
    "mov rdx, rsp",
    "and rsp, -16",
    "call {main}",
    "ud2",
    main = sym payload_main,
);

extern "C" {
    // Defined by the linker at the ELF header, i.e. at the load address.
    static __ehdr_start: u8;
}

/// Must be zero at entry: the loader zeroes `.bss`.
static BSS_PROBE: [AtomicU64; 64] = [const { AtomicU64::new(0) }; 64];
static MARKER: u8 = 0xA5;
/// Holds an absolute address, so it is only right if the loader applied the relocations.
static MARKER_ADDRESS: &u8 = &MARKER;

fn outb(port: u16, value: u8) {
    // SAFETY: port output in a test VM; no memory effects.
    unsafe { asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack)) };
}

fn outw(port: u16, value: u16) {
    // SAFETY: as for `outb`.
    unsafe { asm!("out dx, ax", in("dx") port, in("ax") value, options(nomem, nostack)) };
}

fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: port input in a test VM; no memory effects.
    unsafe { asm!("in al, dx", in("dx") port, out("al") v, options(nomem, nostack)) };
    v
}

struct Serial;

impl Write for Serial {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                outb(0x3F8, b'\r');
            }
            outb(0x3F8, b);
        }
        Ok(())
    }
}

macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(Serial, "payload: {}", format_args!($($arg)*));
    }};
}

/// The VMM's E820, read from fw_cfg by the payload itself.
struct VmmMap {
    entries: [(u64, u64, u32); 64],
    count: usize,
}

fn fw_cfg_read(buf: &mut [u8]) {
    buf.iter_mut().for_each(|b| *b = inb(0x511));
}

/// Selects the fw_cfg file `name` (NUL-terminated) and returns its size.
fn fw_cfg_select(name: &[u8]) -> Option<usize> {
    outw(0x510, 0x19);
    let mut count = [0u8; 4];
    fw_cfg_read(&mut count);
    let files = u32::from_be_bytes(count).min(1024);
    for _ in 0..files {
        let mut e = [0u8; 64];
        fw_cfg_read(&mut e);
        if e[8..].starts_with(name) {
            outw(0x510, u16::from_be_bytes([e[4], e[5]]));
            return Some(u32::from_be_bytes([e[0], e[1], e[2], e[3]]) as usize);
        }
    }
    None
}

fn read_vmm_e820() -> Option<VmmMap> {
    let size = fw_cfg_select(b"etc/e820\0")?;
    let mut map = VmmMap {
        entries: [(0, 0, 0); 64],
        count: (size / 20).min(64),
    };
    for slot in map.entries[..map.count].iter_mut() {
        let mut r = [0u8; 20];
        fw_cfg_read(&mut r);
        let base = u64::from_le_bytes(r[0..8].try_into().ok()?);
        let len = u64::from_le_bytes(r[8..16].try_into().ok()?);
        *slot = (base, len, u32::from_le_bytes(r[16..20].try_into().ok()?));
    }
    Some(map)
}

/// What the test asked the payload to do after its checks, through
/// `-fw_cfg name=opt/test-payload/action,string=ACTION`: provoke a CPU exception so the test
/// can see the firmware's exception report (the firmware's IDT is still loaded).
fn requested_action() -> [u8; 16] {
    let mut action = [0u8; 16];
    if let Some(size) = fw_cfg_select(b"opt/test-payload/action\0") {
        let n = size.min(action.len());
        fw_cfg_read(&mut action[..n]);
    }
    action
}

fn act(action: &[u8; 16]) {
    let name = action.split(|&b| b == 0).next().unwrap_or(&[]);
    match name {
        b"" => {}
        b"ud2" => {
            say!("action: executing ud2");
            // SAFETY: deliberately raises #UD; the firmware's handler never returns.
            unsafe { asm!("ud2") };
        }
        b"page-fault" => {
            say!("action: reading unmapped address 0x400000000000");
            // SAFETY: deliberately faults; the firmware's handler never returns.
            let v = unsafe { core::ptr::read_volatile(0x4000_0000_0000 as *const u64) };
            say!("action: read {v:#x}, expected a page fault");
        }
        b"exec-stack" => {
            let code = [0xC3u8; 16]; // `ret`, on the stack: NX must stop it being fetched
            say!("action: calling code on the stack at {:p}", code.as_ptr());
            // SAFETY: deliberately jumps to non-executable memory; with NX this raises #PF.
            unsafe { asm!("call {}", in(reg) code.as_ptr(), clobber_abi("sysv64")) };
            say!("action: the stack was executable");
        }
        _ => say!("action: unknown action ignored"),
    }
}

struct Checks {
    failed: u32,
}

impl Checks {
    fn check(&mut self, name: &str, ok: bool, detail: fmt::Arguments<'_>) {
        if ok {
            say!("check {name}: ok");
        } else {
            self.failed += 1;
            say!("check {name}: FAILED ({detail})");
        }
    }
}

fn kind_at(map: &[MemoryMapEntry], addr: u64) -> Option<u32> {
    map.iter()
        .find(|e| e.base <= addr && addr - e.base < e.length)
        .map(|e| e.kind)
}

extern "sysv64" fn payload_main(info_addr: u64, load_base: u64, entry_rsp: u64) -> ! {
    say!("started: rdi={info_addr:#x} rsi={load_base:#x} rsp={entry_rsp:#x}");
    let mut c = Checks { failed: 0 };
    let ehdr = core::ptr::addr_of!(__ehdr_start) as u64;
    c.check(
        "load-address",
        ehdr == load_base,
        format_args!("rsi {load_base:#x}, ELF header at {ehdr:#x}"),
    );
    // SAFETY: reading our own static through a volatile load, to see the relocated value.
    let marker = unsafe { core::ptr::read_volatile(&MARKER_ADDRESS) } as *const u8 as u64;
    let expected = core::ptr::addr_of!(MARKER) as u64;
    c.check(
        "relocations",
        marker == expected,
        format_args!("pointer holds {marker:#x}, object at {expected:#x}"),
    );
    let bss_zero = BSS_PROBE.iter().all(|w| w.load(Ordering::Relaxed) == 0);
    c.check("bss-zeroed", bss_zero, format_args!("non-zero .bss"));
    c.check(
        "stack-alignment",
        entry_rsp % 16 == 8,
        format_args!("rsp {entry_rsp:#x} at entry, expected 8 mod 16"),
    );

    let info_ok = info_addr != 0 && info_addr.is_multiple_of(8);
    c.check(
        "boot-info-pointer",
        info_ok,
        format_args!("rdi {info_addr:#x}"),
    );
    if !info_ok {
        finish(c.failed);
    }
    // The firmware hands a BootInfo at rdi in identity-mapped memory; its fields are checked.
    // SAFETY: rdi was checked non-null and aligned above; BootInfo is valid for any bytes.
    let info: BootInfo = unsafe { core::ptr::read(info_addr as *const BootInfo) };
    let header_ok = info.magic == BOOT_INFO_MAGIC
        && info.version == BOOT_INFO_VERSION
        && info.size as usize >= core::mem::size_of::<BootInfo>()
        && info.memory_map_entries > 0
        && info.memory_map_entries <= 256;
    c.check(
        "boot-info",
        header_ok,
        format_args!(
            "magic {:#x} version {} size {} entries {}",
            info.magic, info.version, info.size, info.memory_map_entries
        ),
    );
    if !header_ok {
        finish(c.failed);
    }
    say!(
        "boot-info: platform {} payload [{:#x}, +{:#x}) memory map at {:#x}",
        info.platform,
        info.payload_base,
        info.payload_size,
        info.memory_map_address
    );
    c.check(
        "platform",
        info.platform == PlatformKind::Plain as u32,
        format_args!("platform {}", info.platform),
    );
    c.check(
        "payload-base",
        info.payload_base == load_base && info.payload_size > 0,
        format_args!("boot info says {:#x}", info.payload_base),
    );

    // The map lives in the firmware's identity-mapped hand-off region.
    // SAFETY: the count is bounded (<= 256) above; MemoryMapEntry is valid for any bytes.
    let map: &[MemoryMapEntry] = unsafe {
        core::slice::from_raw_parts(
            info.memory_map_address as *const MemoryMapEntry,
            info.memory_map_entries as usize,
        )
    };
    say!("memory map ({} entries):", map.len());
    let (mut usable, mut highest) = (0u64, 0u64);
    for e in map {
        let (b, l, k) = (e.base, e.length, e.kind);
        say!("  [{b:#014x}, {:#014x}) type {k}", b.saturating_add(l));
        if k == E820_RAM {
            usable += l;
            highest = highest.max(b + l);
        }
    }
    let sorted = map
        .windows(2)
        .all(|w| w[0].base.saturating_add(w[0].length) <= w[1].base)
        && map.iter().all(|e| e.length > 0);
    c.check(
        "map-sorted",
        sorted,
        format_args!("overlapping or unsorted"),
    );

    match read_vmm_e820() {
        None => c.check("vmm-e820", false, format_args!("no etc/e820 in fw_cfg")),
        Some(vmm) => {
            let vmm = &vmm.entries[..vmm.count];
            let vmm_ram: u64 = vmm.iter().filter(|e| e.2 == E820_RAM).map(|e| e.1).sum();
            let vmm_top = vmm
                .iter()
                .filter(|e| e.2 == E820_RAM)
                .map(|e| e.0 + e.1)
                .max()
                .unwrap_or(0);
            say!(
                "ram: vmm {} MiB (top {vmm_top:#x}), usable {} MiB (top {highest:#x})",
                vmm_ram >> 20,
                usable >> 20
            );
            // Every usable range lies inside VMM RAM.
            let inside = map.iter().filter(|e| e.kind == E820_RAM).all(|e| {
                vmm.iter()
                    .any(|v| v.2 == E820_RAM && v.0 <= e.base && e.base + e.length <= v.0 + v.1)
            });
            c.check(
                "usable-is-ram",
                inside,
                format_args!("usable memory outside VMM RAM"),
            );
            // Every page of VMM RAM appears in the handed map (usable or reserved by the firmware).
            let covered = vmm.iter().filter(|v| v.2 == E820_RAM).all(|v| {
                let mut at = v.0;
                while at < v.0 + v.1 {
                    match map.iter().find(|e| e.base <= at && at - e.base < e.length) {
                        Some(e) => at = e.base + e.length,
                        None => return false,
                    }
                }
                true
            });
            c.check(
                "ram-accounted",
                covered,
                format_args!("VMM RAM missing from the map"),
            );
        }
    }
    // What the payload stands on must not be handed out as usable.
    for (name, addr) in [
        ("payload-reserved", load_base),
        ("stack-reserved", entry_rsp),
        ("handoff-reserved", info_addr),
    ] {
        let kind = kind_at(map, addr);
        c.check(
            name,
            kind.is_some() && kind != Some(E820_RAM),
            format_args!("{addr:#x} has type {kind:?}"),
        );
    }
    if c.failed == 0 {
        act(&requested_action());
    }
    finish(c.failed)
}

fn finish(failed: u32) -> ! {
    if failed == 0 {
        say!("verdict: PASS");
        outb(DEBUG_EXIT_PORT, DEBUG_EXIT_PAYLOAD_OK);
    } else {
        say!("verdict: FAIL ({failed} checks failed)");
        outb(DEBUG_EXIT_PORT, DEBUG_EXIT_PAYLOAD_BAD);
    }
    loop {
        // SAFETY: halting with interrupts off ends this test VM if isa-debug-exit is absent.
        unsafe { asm!("cli", "hlt") };
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    say!("panic: {info}");
    finish(1)
}
