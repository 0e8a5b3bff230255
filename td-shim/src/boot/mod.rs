//! The boot pipeline, once for every platform (docs/architecture.md): a firmware binary detects
//! its platform and calls [`run`]; from there everything is platform-neutral code written against
//! [`Platform`].
//!
//! 1. The platform is chosen once ([`crate::platform::select`]); the IDT goes in, so every
//!    exception is dispatched from the first instruction on (#VE/#VC to the platform).
//! 2. The platform's early initialisation, then the console: no port is touched before.
//! 3. The heap, fw_cfg (probed once), the memory map (untrusted, checked), the firmware's own
//!    regions carved out; from here on the CC event log records, and any failure records the
//!    error separator.
//! 4. Linux (QEMU's direct boot, then the image's kernel) or the image's ELF payload.

mod acpi;
mod elf;
mod linux;
mod measure;
mod secure;

use crate::arch::{cpu, exceptions, heap, mp, phys};
use crate::fw_cfg::{linux_boot, FwCfg, FwCfgError};
use crate::measurement::LaunchParams;
use crate::memory_map::{carve_firmware_regions, MemoryMap};
use crate::paging::{map_firmware_address_space, AddressSpace, IdentityMapper};
use crate::platform::{self, Platform};
use crate::serial::SerialLogger;
use crate::BootError;
use core::convert::Infallible;
use td_layout::handoff::PlatformKind;
use td_layout::layout::{
    AP_TRAMPOLINE, FW_CODE, IMAGE_BASE, IMAGE_PAYLOAD, IMAGE_SIZE, PAGE_TABLES,
};
use td_layout::payload::{PayloadKind, PayloadTable};

/// How the boot CPU arrived, as the reset code passes it on.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// 16 (entered in real mode: a plain VM, SNP) or 32 (entered in protected mode: TDX).
    pub mode: u32,
    /// The vCPU index (TDX: ESI at reset; 0 otherwise).
    pub vcpu_index: u32,
    /// EBX at reset (TDX: the GPA width; 0 otherwise).
    pub ebx: u32,
}

static CONSOLE: SerialLogger = SerialLogger::new();

/// Boots on `platform`: never returns; every failure ends on the fatal path.
pub fn run(platform: &'static dyn Platform, entry: Entry) -> ! {
    let platform = platform::select(platform);
    exceptions::install();
    crate::fatal::set_hook(measure::record_failure);
    crate::fatal::set_console(&CONSOLE);
    if let Err(e) = platform.early_init() {
        // No console yet: the platform's report is all there is.
        crate::fatal::fatal(format_args!("{e}"))
    }
    CONSOLE.attach(platform.io());
    if log::set_logger(&CONSOLE).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
    if !heap::init() {
        crate::fatal::fatal(format_args!("heap region already taken"));
    }
    log::info!(
        "td-shim {} entered in {}-bit mode (vcpu {}, ebx {:#x})",
        env!("CARGO_PKG_VERSION"),
        entry.mode,
        entry.vcpu_index,
        entry.ebx
    );
    match boot(platform) {
        Ok(never) => match never {},
        Err(e) => crate::fatal::fatal(format_args!("{e}")),
    }
}

fn boot(platform: &'static dyn Platform) -> Result<Infallible, BootError> {
    log::info!("platform: {}", platform.kind().name());
    let fw_cfg = match FwCfg::probe(platform.io(), platform.fw_cfg_dma()) {
        Ok(f) => Some(f),
        Err(FwCfgError::NotPresent) => None,
        Err(e) => return Err(e.into()),
    };
    let fw_cfg = fw_cfg.as_ref();
    if let Some(f) = fw_cfg {
        // Under SEV-SNP the platform offers DMA only with a shared bounce buffer, which it may
        // have declined in early_init (before the console): say which way fw_cfg is read.
        log::info!(
            "fw_cfg: {}",
            if f.has_dma() {
                "read by DMA"
            } else {
                "read through the data port (no DMA channel)"
            }
        );
    }

    let mut map = platform.memory_map(fw_cfg)?;
    let vmm_ram = map.ram_bytes();
    carve_firmware_regions(&mut map)?;
    for r in platform.reserved_regions() {
        map.carve(r.name, r.base, r.size, td_layout::handoff::E820_RESERVED)?;
    }
    // From here on a failure is recorded in the measurements (the error separator).
    measure::start()?;
    // Secure boot: the key the image enrolls, if any (a damaged record is fatal, never "no key").
    let enrolled = secure::enrolled()?;
    let params = LaunchParams {
        platform: platform.kind(),
        ram_bytes: vmm_ram,
        vcpus: platform.vcpu_count(fw_cfg)?,
    };

    // A kernel given to the VMM (`-kernel`) is the user's explicit choice; else the image's payload.
    let kernel_size = match fw_cfg {
        Some(f) => f.read_u32(linux_boot::KERNEL_SIZE)?,
        None => 0,
    };
    let region = phys::image(IMAGE_PAYLOAD).ok_or(BootError::RegionUnavailable("payload"))?;
    let table = PayloadTable::parse(region)?;
    let linux = kernel_size > 0 || table.find(PayloadKind::Kernel).is_some();
    // For Linux the APs are started now: they help accept memory, then park in the wakeup
    // mailbox. An ELF payload gets the boot CPU alone.
    let helpers = match (linux, params.vcpus.checked_sub(1)) {
        (true, Some(aps)) if aps > 0 && platform.parks_aps() => {
            Some(start_aps(platform, &mut map, aps)?)
        }
        _ => None,
    };
    let deferred = accept_ram(platform, &map, helpers.as_ref())?;
    log::info!(
        "memory: {} MiB of RAM, top {:#x}",
        map.ram_bytes() >> 20,
        map.ram_top()
    );

    if let (Some(f), true) = (fw_cfg, kernel_size > 0) {
        return linux::boot(
            platform,
            f,
            map,
            &params,
            linux::Source::fw_cfg(f)?,
            enrolled.as_ref(),
            helpers,
            deferred,
        );
    }
    if linux {
        let f = fw_cfg.ok_or(FwCfgError::NotPresent)?;
        linux::boot(
            platform,
            f,
            map,
            &params,
            linux::Source::Image(alloc::boxed::Box::new(table)),
            enrolled.as_ref(),
            helpers,
            deferred,
        )
    } else {
        elf::boot(platform, map, &params, &table, enrolled.as_ref(), deferred)
    }
}

/// Starts the `aps` application processors as helpers ([`mp::start_helpers`]): under TDX they
/// are waiting at the reset vector; on a plain VM they are sent there through the start-up IPI
/// trampoline, whose page is reserved for good (Linux keeps the first MiB to itself anyway).
fn start_aps(
    platform: &dyn Platform,
    map: &mut MemoryMap,
    aps: u32,
) -> Result<mp::Helpers, BootError> {
    let rendezvous = phys::take(phys::RamRegion::ApRendezvous)
        .ok_or(BootError::RegionUnavailable("ap-rendezvous"))?;
    let start = match platform.kind() {
        // Every vCPU of a TD starts at the reset vector: the APs are waiting already.
        PlatformKind::Tdx => mp::ApStart::AtResetVector,
        _ => {
            map.carve(
                AP_TRAMPOLINE.name,
                AP_TRAMPOLINE.base,
                AP_TRAMPOLINE.size,
                td_layout::handoff::E820_RESERVED,
            )?;
            let trampoline = phys::take(phys::RamRegion::ApTrampoline)
                .ok_or(BootError::RegionUnavailable(AP_TRAMPOLINE.name))?;
            mp::ApStart::StartupIpi { trampoline }
        }
    };
    let helpers = mp::start_helpers(aps, start, rendezvous)?;
    log::info!("mp: {} application processors running", helpers.count());
    Ok(helpers)
}

/// Accepts all RAM of `map` (TDX: TDG.MEM.PAGE.ACCEPT; SNP: PVALIDATE; nothing on a plain
/// VM), split across the helpers if there are any. Only whole 4 KiB pages can be accepted:
/// partial pages at the ends of a range (a plain VM's e820 may have them) are left out of the
/// split. Returns the RAM left for [`accept_deferred`]: where accepting needs a mapping
/// ([`Platform::accept_needs_mapping`]), RAM above 4 GiB, which the reset page tables do not
/// map.
fn accept_ram(
    platform: &dyn Platform,
    map: &MemoryMap,
    helpers: Option<&mp::Helpers>,
) -> Result<alloc::vec::Vec<(u64, u64)>, BootError> {
    let mut deferred = alloc::vec::Vec::new();
    let Some(helpers) = helpers else {
        let limit = if platform.accept_needs_mapping() {
            td_layout::layout::FOUR_GIB
        } else {
            u64::MAX
        };
        for r in map.ram() {
            let (low, high) = crate::memory_map::split_at(r.base, r.end(), limit);
            if let Some((base, len)) = low {
                platform.accept_memory(base, len)?;
            }
            deferred.extend(high);
        }
        return Ok(deferred);
    };
    let page = td_layout::layout::PAGE_SIZE;
    let ranges: alloc::vec::Vec<(u64, u64)> = map
        .ram()
        .filter_map(|r| {
            let start = r.base.checked_next_multiple_of(page)?;
            let end = r.end() / page * page;
            (end > start).then(|| (start, end - start))
        })
        .collect();
    helpers.accept(ranges, |base, len| platform.accept_memory(base, len))?;
    Ok(deferred)
}

/// Accepts the RAM [`accept_ram`] deferred, once the firmware's own page tables (which map all
/// RAM) are live. The payload is not entered before.
fn accept_deferred(platform: &dyn Platform, deferred: &[(u64, u64)]) -> Result<(), BootError> {
    for &(base, len) in deferred {
        platform.accept_memory(base, len)?;
    }
    if let Some(top) = deferred.last().map(|&(b, l)| b.saturating_add(l)) {
        log::info!(
            "memory: RAM above 4 GiB accepted on the firmware's page tables, up to {top:#x}"
        );
    }
    Ok(())
}

/// Builds the firmware's page tables, with `exec` (the payload's window) executable, and
/// switches to them. Returns how many bytes of page tables are in use.
fn enable_paging(
    platform: &dyn Platform,
    map: &MemoryMap,
    exec: (u64, u64),
    low_memory_exec: bool,
) -> Result<u64, BootError> {
    let nx = cpu::nx_supported();
    let tables = phys::take_page_tables().ok_or(BootError::RegionUnavailable("page-tables"))?;
    let mut mapper = IdentityMapper::new(tables, PAGE_TABLES.base)?;
    mapper.set_leaf_mask(platform.private_mask())?;
    let space = AddressSpace {
        ram_top: map.ram_top(),
        code: (FW_CODE.base, FW_CODE.size),
        image: (IMAGE_BASE, IMAGE_SIZE),
        payload: exec,
        low_memory_exec,
    };
    map_firmware_address_space(&mut mapper, &space, nx)?;
    // Pages still shared with the VMM (SNP: the GHCB) keep their mapping without the C-bit.
    for r in platform.shared_pages() {
        mapper.remap_4k(r.base, r.size, 0)?;
    }
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
    Ok(mapper.tables_used() as u64 * td_layout::layout::PAGE_SIZE)
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
