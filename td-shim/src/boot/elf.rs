//! Booting the image's ELF payload with the firmware's own hand-off block.

use super::secure::Enrolled;
use super::{enable_paging, log_map, measure};
use crate::arch::{cpu, phys};
use crate::measurement::{LaunchParams, Payload, VmmConfig};
use crate::memory_map::{MemoryMap, MemoryMapError};
use crate::platform::Platform;
use crate::BootError;
use core::convert::Infallible;
use td_layout::handoff::E820_RESERVED;
use td_layout::layout::{EVENT_LOG, FW_STACK, HANDOFF, PAYLOAD_LOAD};
use td_layout::payload::PayloadTable;

pub(super) fn boot(
    platform: &dyn Platform,
    mut map: MemoryMap,
    params: &LaunchParams,
    table: &PayloadTable<'_>,
    enrolled: Option<&Enrolled>,
    deferred: alloc::vec::Vec<(u64, u64)>,
) -> Result<Infallible, BootError> {
    if !map.is_ram(PAYLOAD_LOAD.base, PAYLOAD_LOAD.size) {
        return Err(MemoryMapError::NotRam {
            what: PAYLOAD_LOAD.name,
            base: PAYLOAD_LOAD.base,
            length: PAYLOAD_LOAD.size,
        }
        .into());
    }
    platform.before_handoff()?;
    enable_paging(
        platform,
        &map,
        (PAYLOAD_LOAD.base, PAYLOAD_LOAD.size),
        false,
    )?;
    super::accept_deferred(platform, &deferred)?;

    let copy = crate::payload::copy_elf_payload(table)?;
    // Secure boot: the firmware's copy is verified before anything of it is measured or run;
    // what is measured and loaded is the payload without its signature trailer.
    let (payload, secure) = match enrolled {
        Some(e) => {
            let (payload, _, secure) = e.verify("ELF payload", &copy)?;
            (payload, Some(secure))
        }
        None => (copy.as_slice(), None),
    };
    let config = VmmConfig {
        td_hob: platform.td_hob(),
        acpi: alloc::vec::Vec::new(),
    };
    measure::record(
        platform,
        params,
        &config,
        secure.as_ref(),
        &Payload::Elf(payload),
    )?;
    let dst = phys::take(phys::RamRegion::PayloadLoad)
        .ok_or(BootError::RegionUnavailable("payload-load"))?;
    let loaded = crate::payload::load_elf_payload(payload, dst, PAYLOAD_LOAD.base)?;
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
    let boot_info = crate::handoff::write_boot_info(
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
