//! Installing the VMM's ACPI tables and the firmware's own (CCEL, and RTMR where registers are
//! emulated) for a Linux hand-off.

use crate::acpi;
use crate::arch::phys::RamArena;
use crate::chipset;
use crate::fw_cfg::FwCfg;
use crate::linux;
use crate::measurement::ConfigFile;
use crate::memory_map::MemoryMap;
use crate::mp;
use crate::platform::Platform;
use crate::BootError;
use td_layout::layout::EVENT_LOG;

/// The ACPI tables as installed.
pub(super) struct Acpi {
    /// Guest address of the RSDP.
    pub rsdp: u64,
    /// Where the RTMR table of emulated registers sits, to be filled in at hand-off.
    pub rtmr_table: Option<&'static mut [u8]>,
    /// The files as read from fw_cfg, script first, if the platform measures them
    /// ([`Platform::measures_acpi`]); empty otherwise.
    pub measured: alloc::vec::Vec<ConfigFile>,
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
    mp_mailbox: Option<u64>,
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
    // The script is the only VMM-sized buffer on the heap: at most 128 KiB (1024 commands).
    let script_len = loader.size as usize;
    if script_len > acpi::MAX_COMMANDS * acpi::COMMAND_SIZE {
        return Err(acpi::AcpiError::BadScriptLength(script_len).into());
    }
    let mut script = alloc::vec![0u8; script_len];
    fw_cfg.read_item(loader.select, &mut script)?;
    // Measured as delivered, before anything is patched (the patching itself follows from
    // the script's bytes).
    let measure = platform.measures_acpi();
    let mut measured = alloc::vec::Vec::new();
    if measure {
        measured.push(ConfigFile::of("etc/table-loader", &script));
    }
    let size_of = |name: &str| fw_cfg.lookup(name).map(|f| u64::from(f.size));
    // At most MAX_FILES_SIZE (8 MiB) of files, page-rounded.
    let plan = acpi::plan(&script, size_of)?;
    drop(script);
    let size = plan
        .size
        .checked_add(acpi::FIRMWARE_TABLES_ROOM)
        .ok_or(acpi::AcpiError::TooLarge)?;
    let base = linux::top_of_low_ram(map, size).ok_or(acpi::AcpiError::TooLarge)?;
    let region = arena
        .take(base, size)
        .ok_or(BootError::RegionUnavailable("acpi"))?;
    // Each file is read from fw_cfg straight into its place in the region: no heap copy.
    let linked = acpi::link(&plan, region, base, |name, dst| match fw_cfg.lookup(name) {
        Some(f) if f.size as usize == dst.len() => {
            let read = fw_cfg.read_item(f.select, dst).is_ok();
            if read && measure {
                measured.push(ConfigFile::of(name, dst));
            }
            read
        }
        _ => false,
    })?;
    let files_end = usize::try_from(plan.size).map_err(|_| acpi::AcpiError::TooLarge)?;
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
    // With APs to park, the MADT gets the multiprocessor wakeup structure: an extended copy of
    // the VMM's MADT replaces it in the root tables.
    if let Some(mailbox) = mp_mailbox {
        let madt = acpi::find_table(region, base, linked.rsdp, files_end, b"APIC")?
            .and_then(|r| region.get(r))
            .ok_or(acpi::AcpiError::BadMadt)?;
        own.push(mp::extend_madt(madt, &mp::wakeup_structure(mailbox))?);
    }
    let added = acpi::add_tables(region, base, linked.rsdp, files_end, &own)?;
    let rtmr_table = match (emulated.is_some(), added.get(1), own.get(1)) {
        (true, Some(&addr), Some(table)) => {
            let at = addr
                .checked_sub(base)
                .and_then(|a| usize::try_from(a).ok())
                .ok_or(acpi::AcpiError::TooLarge)?;
            region.get_mut(at..at.saturating_add(table.len()))
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
        linked.rsdp.addr
    );
    Ok(Acpi {
        rsdp: linked.rsdp.addr,
        rtmr_table,
        measured,
    })
}
