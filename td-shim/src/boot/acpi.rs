//! Installing the VMM's ACPI tables and the firmware's own (CCEL, and RTMR where registers are
//! emulated) for a Linux hand-off.

use crate::acpi;
use crate::arch::phys::RamArena;
use crate::chipset;
use crate::fw_cfg::FwCfg;
use crate::linux;
use crate::memory_map::MemoryMap;
use crate::platform::Platform;
use crate::BootError;
use td_layout::layout::EVENT_LOG;

/// The ACPI tables as installed.
pub(super) struct Acpi {
    /// Guest address of the RSDP.
    pub rsdp: u64,
    /// Where the RTMR table of emulated registers sits, to be filled in at hand-off.
    pub rtmr_table: Option<&'static mut [u8]>,
}

/// Installs the VMM's ACPI tables by running fw_cfg `etc/table-loader`, at the top of low RAM,
/// which becomes ACPI NVS in the memory map (the FACS among them must never be reclaimed), and
/// adds the firmware's own: CCEL (the event log) and, where registers are emulated, RTMR.
///
/// Linux finds the CC event log only through CCEL, so a VMM that offers no tables (`-machine
/// ...,acpi=off`) is refused: the firmware does not boot a kernel whose measurements it cannot
/// publish (docs/linux-boot.md).
pub(super) fn install(
    platform: &dyn Platform,
    fw_cfg: &FwCfg<'_>,
    map: &mut MemoryMap,
    arena: &mut RamArena,
) -> Result<Acpi, BootError> {
    // QEMU builds the tables from the chipset's state when they are first read.
    match chipset::enable_acpi_pm(platform.io()) {
        chipset::AcpiPm::Ich9 { base } => log::info!("acpi: ICH9 PM I/O at {base:#x}"),
        chipset::AcpiPm::Unknown => {
            log::warn!("acpi: unknown chipset, PM I/O left as the VMM set it")
        }
    }
    let loader = fw_cfg
        .lookup("etc/table-loader")
        .ok_or(acpi::AcpiError::NoTables)?;
    let max = acpi::MAX_COMMANDS * acpi::COMMAND_SIZE;
    if loader.size as usize > max {
        return Err(acpi::AcpiError::BadScriptLength(loader.size as usize).into());
    }
    let mut script = alloc::vec![0u8; loader.size as usize];
    fw_cfg.read_item(loader.select, &mut script)?;
    let size_of = |name: &str| fw_cfg.lookup(name).map(|f| u64::from(f.size));
    let plan = acpi::plan(&script, size_of)?;
    let size = plan
        .size
        .checked_add(acpi::FIRMWARE_TABLES_ROOM)
        .ok_or(acpi::AcpiError::TooLarge)?;
    let base = linux::top_of_low_ram(map, size).ok_or(acpi::AcpiError::TooLarge)?;
    let region = arena
        .take(base, size)
        .ok_or(BootError::RegionUnavailable("acpi"))?;
    let linked = acpi::link(&plan, base, |name, dst| match fw_cfg.lookup(name) {
        Some(f) if f.size as usize == dst.len() => fw_cfg.read_item(f.select, dst).is_ok(),
        _ => false,
    })?;
    for (addr, bytes) in &linked.files {
        let at = usize::try_from(addr - base).map_err(|_| acpi::AcpiError::TooLarge)?;
        region
            .get_mut(at..at + bytes.len())
            .ok_or(acpi::AcpiError::TooLarge)?
            .copy_from_slice(bytes);
    }
    let mut own = alloc::vec![acpi::ccel(
        platform.cc_type(),
        0,
        EVENT_LOG.size,
        EVENT_LOG.base
    )];
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
    Ok(Acpi {
        rsdp: linked.rsdp,
        rtmr_table,
    })
}
