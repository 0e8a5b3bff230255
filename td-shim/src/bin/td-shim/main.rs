//! td-shim: the firmware. The reset vector (in `td_shim::arch`) brings the CPU to long mode and
//! calls [`shim_entry`]; from there the boot pipeline of DESIGN.md runs on the detected platform.
#![no_std]
#![no_main]

extern crate alloc;

use core::convert::Infallible;
use td_layout::handoff::E820_RESERVED;
use td_layout::layout::{
    EVENT_LOG, FW_CODE, FW_STACK, HANDOFF, IMAGE_BASE, IMAGE_PAYLOAD, IMAGE_SIZE, PAGE_TABLES,
    PAYLOAD_LOAD, TEMP_MEM,
};
use td_layout::payload::{PayloadKind, PayloadTable};
use td_loader::linux::BootParamsInput;
use td_shim::arch::phys::RamArena;
use td_shim::arch::{cpu, exceptions, heap, phys};
use td_shim::fatal::fatal;
use td_shim::fw_cfg::{linux_boot, FwCfg, FwCfgError};
use td_shim::linux;
use td_shim::measurement::{self, Blob, LaunchParams, Payload, PlatformExtender, Recording};
use td_shim::memory_map::carve_firmware_regions;
use td_shim::memory_map::{MemoryMap, MemoryMapError};
use td_shim::paging::{map_firmware_address_space, AddressSpace, IdentityMapper};
use td_shim::plain::PlainPlatform;
use td_shim::platform::Platform;
use td_shim::serial::{SerialLogger, Uart, COM1};
use td_shim::BootError;
use td_shim::{acpi, chipset};

static PLAIN: PlainPlatform = PlainPlatform::new();
static CONSOLE: SerialLogger = SerialLogger::new(&PLAIN);
/// This boot's measurements, reachable from the fatal path.
static RECORDING: spin::Mutex<Option<Recording<'static>>> = spin::Mutex::new(None);

/// The fatal path's hook: close the firmware registers with the error separator.
fn record_failure() {
    if let Some(mut guard) = RECORDING.try_lock() {
        if let Some(rec) = guard.as_mut() {
            rec.record_failure(&mut PlatformExtender(&PLAIN));
            // Emulated registers die with the VM: say what they were.
            if let Some(regs) = PLAIN.emulated_rtmrs() {
                CONSOLE.write_line(format_args!(
                    "td-shim: measurement: error separator recorded; RTMR0 {} RTMR1 {}",
                    Hex(&regs[0]),
                    Hex(&regs[1])
                ));
            }
        }
    }
}

/// Called by the reset code on the boot CPU: `entry_mode` is 16 (entered in real mode) or 32
/// (entered in 32-bit protected mode, as TDX does); `vcpu_index` and `ebx` are the entry
/// registers (TDX: vCPU index and GPA width; plain VM: 0).
#[no_mangle]
extern "sysv64" fn shim_entry(entry_mode: u32, vcpu_index: u32, ebx: u32) -> ! {
    Uart::new(&PLAIN, COM1).init();
    td_shim::fatal::install(&PLAIN, &CONSOLE);
    td_shim::fatal::set_hook(record_failure);
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
    let vmm_ram = map.ram_bytes();
    carve_firmware_regions(&mut map)?;
    // From here on a failure is recorded in the measurements (the error separator).
    let log_area =
        phys::take(phys::RamRegion::EventLog).ok_or(BootError::RegionUnavailable("event-log"))?;
    *RECORDING.lock() = Some(Recording::new(log_area)?);
    let params = LaunchParams {
        platform: platform.kind(),
        ram_bytes: vmm_ram,
        vcpus: platform.vcpu_count()?,
    };
    for r in map.ram() {
        platform.accept_memory(r.base, r.length)?;
    }
    log::info!(
        "memory: {} MiB of RAM, top {:#x}",
        map.ram_bytes() >> 20,
        map.ram_top()
    );

    // A kernel given to the VMM (`-kernel`) is the user's explicit choice; else the image's payload.
    let mut size = [0u8; 4];
    let kernel_size = match platform.fw_cfg_read_item(linux_boot::KERNEL_SIZE, &mut size) {
        Ok(()) => u32::from_le_bytes(size),
        Err(FwCfgError::NotPresent) => 0,
        Err(e) => return Err(e.into()),
    };
    if kernel_size > 0 {
        return boot_linux(platform, map, &params, LinuxSource::fw_cfg(platform)?);
    }
    let region = phys::image(IMAGE_PAYLOAD).ok_or(BootError::RegionUnavailable("payload"))?;
    let table = PayloadTable::parse(region)?;
    if table.find(PayloadKind::Kernel).is_some() {
        boot_linux(
            platform,
            map,
            &params,
            LinuxSource::Image(alloc::boxed::Box::new(table)),
        )
    } else {
        boot_elf_from_image(platform, map, &params, &table)
    }
}

/// Where the bytes of a Linux boot come from.
enum LinuxSource {
    /// QEMU's direct boot: sizes of the setup sectors, the protected-mode kernel, the initrd and
    /// the NUL-terminated command line.
    FwCfg {
        setup: u32,
        kernel: u32,
        initrd: u32,
        cmdline: u32,
    },
    /// The image's payload table (kernel, optional initrd and command line).
    Image(alloc::boxed::Box<PayloadTable<'static>>),
}

impl LinuxSource {
    fn fw_cfg(platform: &dyn Platform) -> Result<Self, BootError> {
        let item = |key: u16| -> Result<u32, BootError> {
            let mut v = [0u8; 4];
            platform.fw_cfg_read_item(key, &mut v)?;
            Ok(u32::from_le_bytes(v))
        };
        Ok(LinuxSource::FwCfg {
            setup: item(linux_boot::SETUP_SIZE)?,
            kernel: item(linux_boot::KERNEL_SIZE)?,
            initrd: item(linux_boot::INITRD_SIZE)?,
            cmdline: item(linux_boot::CMDLINE_SIZE)?,
        })
    }

    fn describe(&self) -> &'static str {
        match self {
            LinuxSource::FwCfg { .. } => "direct boot from fw_cfg",
            LinuxSource::Image(_) => "from the image",
        }
    }

    fn bzimage_len(&self) -> u64 {
        match self {
            LinuxSource::FwCfg { setup, kernel, .. } => u64::from(*setup) + u64::from(*kernel),
            LinuxSource::Image(t) => t.find(PayloadKind::Kernel).map_or(0, |k| k.len() as u64),
        }
    }

    fn initrd_len(&self) -> u64 {
        match self {
            LinuxSource::FwCfg { initrd, .. } => u64::from(*initrd),
            LinuxSource::Image(t) => t.find(PayloadKind::Initrd).map_or(0, |i| i.len() as u64),
        }
    }

    fn read_bzimage(&self, platform: &dyn Platform, dst: &mut [u8]) -> Result<(), BootError> {
        match self {
            LinuxSource::FwCfg { setup, .. } => {
                let (s, k) = dst.split_at_mut(*setup as usize);
                platform.fw_cfg_read_item(linux_boot::SETUP_DATA, s)?;
                Ok(platform.fw_cfg_read_item(linux_boot::KERNEL_DATA, k)?)
            }
            LinuxSource::Image(t) => copy(t, PayloadKind::Kernel, dst),
        }
    }

    fn read_initrd(&self, platform: &dyn Platform, dst: &mut [u8]) -> Result<(), BootError> {
        match self {
            LinuxSource::FwCfg { .. } => {
                Ok(platform.fw_cfg_read_item(linux_boot::INITRD_DATA, dst)?)
            }
            LinuxSource::Image(t) => copy(t, PayloadKind::Initrd, dst),
        }
    }

    /// Writes the command line and its NUL into `area`; returns its length without the NUL.
    fn read_cmdline(&self, platform: &dyn Platform, area: &mut [u8]) -> Result<usize, BootError> {
        let room = area.len().saturating_sub(1);
        match self {
            LinuxSource::FwCfg { cmdline, .. } => {
                let bad = linux::LinuxBootError::BadCmdline { size: *cmdline };
                let raw = area.get_mut(..*cmdline as usize).ok_or(bad)?;
                platform.fw_cfg_read_item(linux_boot::CMDLINE_DATA, raw)?;
                Ok(linux::cmdline_text(raw, room)?.len())
            }
            LinuxSource::Image(t) => {
                let text = t.find(PayloadKind::Cmdline).unwrap_or(&[]);
                if text.len() > room || text.contains(&0) {
                    let size = u32::try_from(text.len()).unwrap_or(u32::MAX);
                    return Err(linux::LinuxBootError::BadCmdline { size }.into());
                }
                area[..text.len()].copy_from_slice(text);
                area[text.len()] = 0;
                Ok(text.len())
            }
        }
    }
}

/// Copies the image's payload of `kind` into `dst`, which has its size.
fn copy(table: &PayloadTable<'_>, kind: PayloadKind, dst: &mut [u8]) -> Result<(), BootError> {
    let src = table.find(kind).ok_or(BootError::NoPayload)?;
    dst.get_mut(..src.len())
        .ok_or(BootError::NoPayload)?
        .copy_from_slice(src);
    Ok(())
}

/// Builds the firmware's page tables, with `exec` (the payload's window) executable, and
/// switches to them.
fn enable_paging(map: &MemoryMap, exec: (u64, u64)) -> Result<(), BootError> {
    let nx = cpu::nx_supported();
    let tables = phys::take_page_tables().ok_or(BootError::RegionUnavailable("page-tables"))?;
    let mut mapper = IdentityMapper::new(tables, PAGE_TABLES.base)?;
    let space = AddressSpace {
        ram_top: map.ram_top(),
        code: (FW_CODE.base, FW_CODE.size),
        image: (IMAGE_BASE, IMAGE_SIZE),
        payload: exec,
    };
    map_firmware_address_space(&mut mapper, &space, nx)?;
    log::info!(
        "paging: identity map up to {:#x} in {} tables, nx {}",
        map.ram_top().max(1 << 32),
        mapper.tables_used(),
        if nx { "on" } else { "unsupported" }
    );
    if nx {
        cpu::enable_nx();
    }
    cpu::load_page_tables(mapper.root());
    Ok(())
}

/// Records the measurement plan for `payload` in the registers and the log.
fn measure(
    platform: &'static dyn Platform,
    params: &LaunchParams,
    payload: &Payload<'_>,
) -> Result<(), BootError> {
    let planned = measurement::plan(params, payload);
    let count = planned.len();
    let mut guard = RECORDING.lock();
    let rec = guard
        .as_mut()
        .ok_or(BootError::RegionUnavailable("event-log"))?;
    rec.record(&mut PlatformExtender(platform), planned)?;
    log::info!(
        "measurement: {count} events, {} bytes of CC event log at {:#x}",
        rec.log().len(),
        EVENT_LOG.base
    );
    if let Some(regs) = platform.emulated_rtmrs() {
        for (i, r) in regs.iter().enumerate().take(3) {
            log::info!("measurement: RTMR{i} {}", Hex(r));
        }
    }
    Ok(())
}

/// Lower-case hex of a byte string.
struct Hex<'a>(&'a [u8]);

impl core::fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

fn log_map(what: &str, map: &MemoryMap) {
    log::info!("{what}: {} memory map entries", map.ranges().len());
    for r in map.ranges() {
        log::info!("  [{:#014x}, {:#014x}) type {}", r.base, r.end(), r.kind);
    }
}

fn boot_elf_from_image(
    platform: &'static dyn Platform,
    mut map: MemoryMap,
    params: &LaunchParams,
    table: &PayloadTable<'_>,
) -> Result<Infallible, BootError> {
    if !map.is_ram(PAYLOAD_LOAD.base, PAYLOAD_LOAD.size) {
        return Err(MemoryMapError::NotRam {
            what: PAYLOAD_LOAD.name,
            base: PAYLOAD_LOAD.base,
            length: PAYLOAD_LOAD.size,
        }
        .into());
    }
    enable_paging(&map, (PAYLOAD_LOAD.base, PAYLOAD_LOAD.size))?;

    let payload = td_shim::payload::copy_elf_payload(table)?;
    measure(platform, params, &Payload::Elf(&payload))?;
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
    map.carve("payload", loaded.base, loaded.size, E820_RESERVED)?;

    let handoff =
        phys::take(phys::RamRegion::Handoff).ok_or(BootError::RegionUnavailable("handoff"))?;
    let boot_info = td_shim::handoff::write_boot_info(
        handoff,
        HANDOFF.base,
        platform.kind(),
        &map,
        loaded.base,
        loaded.size,
        (EVENT_LOG.base, EVENT_LOG.size),
    )?;
    log_map("hand-off", &map);
    log::info!(
        "jumping to the payload: rdi={boot_info:#x} rsi={:#x}",
        loaded.base
    );
    cpu::enter_payload(loaded.entry, boot_info, loaded.base, FW_STACK.end())
}

/// The zero page sits at the start of the hand-off region, the command line right after it.
const CMDLINE_OFFSET: usize = 4096;

/// The ACPI tables as installed.
struct Acpi {
    /// Guest address of the RSDP.
    rsdp: u64,
    /// Where the RTMR table of emulated registers sits, to be filled in at hand-off.
    rtmr_table: Option<&'static mut [u8]>,
}

/// Installs the VMM's ACPI tables by running fw_cfg `etc/table-loader`, at the top of low RAM,
/// which becomes ACPI NVS in the memory map (the FACS among them must never be reclaimed), and
/// adds the firmware's own: CCEL (the event log) and, where registers are emulated, RTMR.
/// Returns `None` when the VMM offers no tables.
fn install_acpi(
    platform: &'static dyn Platform,
    map: &mut MemoryMap,
    arena: &mut RamArena,
) -> Result<Option<Acpi>, BootError> {
    // QEMU builds the tables from the chipset's state when they are first read.
    match chipset::enable_acpi_pm(platform) {
        chipset::AcpiPm::Ich9 { base } => log::info!("acpi: ICH9 PM I/O at {base:#x}"),
        chipset::AcpiPm::Unknown => {
            log::warn!("acpi: unknown chipset, PM I/O left as the VMM set it")
        }
    }
    let fw_cfg = FwCfg::probe(platform)?;
    let Some(loader) = fw_cfg.lookup("etc/table-loader")? else {
        log::warn!("acpi: the VMM offers no etc/table-loader; booting without ACPI tables");
        return Ok(None);
    };
    let max = acpi::MAX_COMMANDS * acpi::COMMAND_SIZE;
    if loader.size as usize > max {
        return Err(acpi::AcpiError::BadScriptLength(loader.size as usize).into());
    }
    let mut script = alloc::vec![0u8; loader.size as usize];
    platform.fw_cfg_read_item(loader.select, &mut script)?;
    let size_of = |name: &str| {
        fw_cfg
            .lookup(name)
            .ok()
            .flatten()
            .map(|f| u64::from(f.size))
    };
    let plan = acpi::plan(&script, size_of)?;
    let size = plan.size + acpi::FIRMWARE_TABLES_ROOM;
    let base = linux::top_of_low_ram(map, size).ok_or(acpi::AcpiError::TooLarge)?;
    let region = arena
        .take(base, size)
        .ok_or(BootError::RegionUnavailable("acpi"))?;
    let linked = acpi::link(&plan, base, |name, dst| match fw_cfg.lookup(name) {
        Ok(Some(f)) if f.size as usize == dst.len() => {
            platform.fw_cfg_read_item(f.select, dst).is_ok()
        }
        _ => false,
    })?;
    for (addr, bytes) in &linked.files {
        let at = (addr - base) as usize;
        region[at..at + bytes.len()].copy_from_slice(bytes);
    }
    // CC type 0 (not 1 SEV / 2 TDX): a plain VM's log, extended into emulated registers.
    let mut own = alloc::vec![acpi::ccel(0, 0, EVENT_LOG.size, EVENT_LOG.base)];
    let emulated = platform.emulated_rtmrs();
    if let Some(regs) = &emulated {
        own.push(acpi::rtmr_table(regs));
    }
    let added = acpi::add_tables(region, base, linked.rsdp, plan.size as usize, &own)?;
    let rtmr_table = match (emulated, added.get(1)) {
        (Some(regs), Some(&addr)) => {
            let at = (addr - base) as usize;
            let len = acpi::rtmr_table(&regs).len();
            region.get_mut(at..at + len)
        }
        _ => None,
    };
    map.carve("acpi", base, size, td_loader::linux::E820_NVS)?;
    if plan.skipped_write_pointers > 0 {
        log::warn!(
            "acpi: skipped {} WRITE_POINTER commands (devices such as vmgenid will not see their buffers)",
            plan.skipped_write_pointers
        );
    }
    log::info!(
        "acpi: {} files from etc/table-loader at [{base:#x}, {:#x}), RSDP at {:#x}",
        linked.files.len(),
        base + plan.size,
        linked.rsdp
    );
    Ok(Some(Acpi {
        rsdp: linked.rsdp,
        rtmr_table,
    }))
}

fn boot_linux(
    platform: &'static dyn Platform,
    mut map: MemoryMap,
    params: &LaunchParams,
    source: LinuxSource,
) -> Result<Infallible, BootError> {
    let mut arena = RamArena::new(&map).ok_or(BootError::RegionUnavailable("ram"))?;
    let acpi = install_acpi(platform, &mut map, &mut arena)?;
    log::info!(
        "linux: {}: bzImage {} bytes, initrd {} bytes",
        source.describe(),
        source.bzimage_len(),
        source.initrd_len()
    );

    // Stage the bzImage and initrd in RAM: what is checked (and measured) is what runs.
    let staging = linux::plan_staging(&map, source.bzimage_len(), source.initrd_len())?;
    let bz = arena
        .take(staging.bzimage.0, staging.bzimage.1)
        .ok_or(BootError::RegionUnavailable("kernel staging"))?;
    source.read_bzimage(platform, bz)?;
    let mut initrd: Option<&[u8]> = None;
    if let Some((base, len)) = staging.initrd {
        let staged = arena
            .take(base, len)
            .ok_or(BootError::RegionUnavailable("initrd staging"))?;
        source.read_initrd(platform, staged)?;
        log::info!("linux: initrd at [{base:#x}, {:#x})", base + len);
        initrd = Some(staged);
    }

    let handoff =
        phys::take(phys::RamRegion::Handoff).ok_or(BootError::RegionUnavailable("handoff"))?;
    let (zero_page, cmdline_area) = handoff.split_at_mut(CMDLINE_OFFSET);
    let cmdline_len = source.read_cmdline(platform, cmdline_area)?;

    let image = td_loader::linux::parse(bz)?;
    let cmdline = &cmdline_area[..cmdline_len];
    measure(
        platform,
        params,
        &Payload::Linux {
            kernel: Blob::Bytes(bz),
            cmdline,
            initrd: initrd.map(Blob::Bytes),
        },
    )?;
    let mut taken = alloc::vec![staging.bzimage];
    taken.extend(staging.initrd);
    let load = image.place_kernel(&linux::free_ranges(&map, &taken))?;
    let window = arena
        .take(load, u64::from(image.init_size()))
        .ok_or(BootError::RegionUnavailable("kernel window"))?;
    window[..image.kernel().len()].copy_from_slice(image.kernel());
    log::info!(
        "linux: boot protocol {}.{:02}, kernel of {} bytes at {load:#x} (window {:#x} bytes)",
        image.version() >> 8,
        image.version() & 0xFF,
        image.kernel().len(),
        image.init_size()
    );

    enable_paging(&map, (load, u64::from(image.init_size())))?;
    // Of the firmware's working memory Linux needs only the zero page and command line (the
    // hand-off region): it switches to its own stack, GDT, IDT and page tables before it
    // allocates any memory. The rest goes back to it as RAM.
    // The event log stays reserved too, for the OS and its attestation agent.
    map.release(TEMP_MEM.base, HANDOFF.base - TEMP_MEM.base);
    map.release(EVENT_LOG.end(), TEMP_MEM.end() - EVENT_LOG.end());
    let e820 = linux::e820(&map);
    let zero_page: &mut [u8; 4096] = zero_page
        .try_into()
        .map_err(|_| BootError::RegionUnavailable("zero page"))?;
    td_loader::linux::build_boot_params(
        zero_page,
        &image,
        &BootParamsInput {
            kernel_load: load,
            cmdline_addr: HANDOFF.base + CMDLINE_OFFSET as u64,
            cmdline_len: cmdline_len as u32,
            initrd: staging.initrd,
            acpi_rsdp: acpi.as_ref().map_or(0, |a| a.rsdp),
            e820: &e820,
            setup_data: 0,
        },
    )?;
    log_map("linux: e820", &map);
    // Publish the emulated registers' final values.
    if let (Some(slot), Some(regs)) = (acpi.and_then(|a| a.rtmr_table), platform.emulated_rtmrs()) {
        slot.copy_from_slice(&acpi::rtmr_table(&regs));
    }
    let entry = td_loader::linux::entry64(load).ok_or(BootError::RegionUnavailable("entry"))?;
    log::info!(
        "linux: entering the kernel at {entry:#x}, zero page at {:#x}",
        HANDOFF.base
    );
    cpu::enter_linux(entry, HANDOFF.base, FW_STACK.end())
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    fatal(format_args!("panic: {info}"))
}
