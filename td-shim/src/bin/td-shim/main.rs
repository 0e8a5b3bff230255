//! td-shim: the firmware. The reset vector (in `td_shim::arch`) brings the CPU to long mode and
//! calls [`shim_entry`]; from there the boot pipeline of DESIGN.md runs on the detected platform.
#![no_std]
#![no_main]

extern crate alloc;

use core::convert::Infallible;
use td_layout::layout::{
    FW_CODE, FW_STACK, HANDOFF, IMAGE_BASE, IMAGE_PAYLOAD, IMAGE_SIZE, PAGE_TABLES, PAYLOAD_LOAD,
};
use td_shim::arch::{cpu, exceptions, heap, phys};
use td_shim::fatal::fatal;
use td_shim::memory_map::carve_firmware_regions;
use td_shim::paging::{map_firmware_address_space, AddressSpace, IdentityMapper};
use td_shim::plain::PlainPlatform;
use td_shim::platform::Platform;
use td_shim::serial::{SerialLogger, Uart, COM1};
use td_shim::BootError;

static PLAIN: PlainPlatform = PlainPlatform;
static CONSOLE: SerialLogger = SerialLogger::new(&PLAIN);

/// Called by the reset code on the boot CPU: `entry_mode` is 16 (entered in real mode) or 32
/// (entered in 32-bit protected mode, as TDX does); `vcpu_index` and `ebx` are the entry
/// registers (TDX: vCPU index and GPA width; plain VM: 0).
#[no_mangle]
extern "sysv64" fn shim_entry(entry_mode: u32, vcpu_index: u32, ebx: u32) -> ! {
    Uart::new(&PLAIN, COM1).init();
    td_shim::fatal::install(&PLAIN, &CONSOLE);
    if log::set_logger(&CONSOLE).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
    exceptions::install();
    if !heap::init() {
        fatal(format_args!("heap region already taken"));
    }
    log::info!(
        "td-shim {} entered in {entry_mode}-bit mode (vcpu {vcpu_index}, ebx {ebx:#x})",
        env!("CARGO_PKG_VERSION")
    );
    match boot(&PLAIN) {
        Ok(never) => match never {},
        Err(e) => fatal(format_args!("{e}")),
    }
}

fn boot(platform: &'static dyn Platform) -> Result<Infallible, BootError> {
    if cpu::tdx_detected() {
        return Err(BootError::UnsupportedPlatform("tdx"));
    }
    log::info!("platform: {}", platform.kind().name());

    let mut map = platform.memory_map()?;
    carve_firmware_regions(&mut map)?;
    for r in map.ram() {
        platform.accept_memory(r.base, r.length)?;
    }
    log::info!(
        "memory: {} MiB of RAM, top {:#x}",
        map.ram_bytes() >> 20,
        map.ram_top()
    );

    let nx = cpu::nx_supported();
    let tables = phys::take_page_tables().ok_or(BootError::RegionUnavailable("page-tables"))?;
    let root = {
        let mut mapper = IdentityMapper::new(tables, PAGE_TABLES.base)?;
        let space = AddressSpace {
            ram_top: map.ram_top(),
            code: (FW_CODE.base, FW_CODE.size),
            image: (IMAGE_BASE, IMAGE_SIZE),
            payload: (PAYLOAD_LOAD.base, PAYLOAD_LOAD.size),
        };
        map_firmware_address_space(&mut mapper, &space, nx)?;
        log::info!(
            "paging: identity map up to {:#x} in {} tables, nx {}",
            map.ram_top().max(1 << 32),
            mapper.tables_used(),
            if nx { "on" } else { "unsupported" }
        );
        mapper.root()
    };
    if nx {
        cpu::enable_nx();
    }
    cpu::load_page_tables(root);

    let image_payload =
        phys::image(IMAGE_PAYLOAD).ok_or(BootError::RegionUnavailable("payload"))?;
    let payload = td_shim::payload::copy_elf_payload(image_payload)?;
    let dst = phys::take(phys::RamRegion::PayloadLoad)
        .ok_or(BootError::RegionUnavailable("payload-load"))?;
    let loaded = td_shim::payload::load_elf_payload(&payload, dst, PAYLOAD_LOAD.base)?;
    log::info!(
        "payload: ELF of {} bytes loaded at {:#x} ({:#x} bytes, {} relocations), entry {:#x}",
        payload.len(),
        loaded.base,
        loaded.size,
        loaded.relocations,
        loaded.entry
    );
    map.carve(
        "payload",
        loaded.base,
        loaded.size,
        td_layout::handoff::E820_RESERVED,
    )?;

    let handoff =
        phys::take(phys::RamRegion::Handoff).ok_or(BootError::RegionUnavailable("handoff"))?;
    let boot_info = td_shim::handoff::write_boot_info(
        handoff,
        HANDOFF.base,
        platform.kind(),
        &map,
        loaded.base,
        loaded.size,
    )?;
    log::info!("hand-off: {} memory map entries", map.ranges().len());
    for r in map.ranges() {
        log::info!("  [{:#014x}, {:#014x}) type {}", r.base, r.end(), r.kind);
    }
    log::info!(
        "jumping to the payload: rdi={boot_info:#x} rsi={:#x}",
        loaded.base
    );
    cpu::enter_payload(loaded.entry, boot_info, loaded.base, FW_STACK.end())
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    fatal(format_args!("panic: {info}"))
}
