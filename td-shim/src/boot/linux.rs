//! Booting Linux through the 64-bit boot protocol, from QEMU's direct boot or from the image.

use super::secure::Enrolled;
use super::{acpi, enable_paging, log_map, measure};
use crate::arch::phys::{self, RamArena};
use crate::arch::{cpu, mp};
use crate::fw_cfg::{linux_boot, FwCfg};
use crate::linux;
use crate::measurement::{Blob, LaunchParams, Payload, VmmConfig};
use crate::memory_map::{release_for_linux, InUseAtHandoff, MemoryMap};
use crate::platform::Platform;
use crate::BootError;
use core::convert::Infallible;
use td_layout::handoff::PlatformKind;
use td_layout::layout::{EVENT_LOG, FW_DATA, FW_STACK, HANDOFF, MP_MAILBOX, PAGE_TABLES};
use td_layout::payload::{PayloadKind, PayloadTable};
use td_loader::linux::BootParamsInput;

/// The zero page sits at the start of the hand-off region, the command line right after it.
const CMDLINE_OFFSET: usize = 4096;
/// The last bytes of the hand-off region: the CC blob and its `setup_data` node (SNP).
const CC_AREA: usize = 64;

/// Where the bytes of a Linux boot come from.
pub(super) enum Source {
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

impl Source {
    pub(super) fn fw_cfg(fw_cfg: &FwCfg<'_>) -> Result<Self, BootError> {
        Ok(Source::FwCfg {
            setup: fw_cfg.read_u32(linux_boot::SETUP_SIZE)?,
            kernel: fw_cfg.read_u32(linux_boot::KERNEL_SIZE)?,
            initrd: fw_cfg.read_u32(linux_boot::INITRD_SIZE)?,
            cmdline: fw_cfg.read_u32(linux_boot::CMDLINE_SIZE)?,
        })
    }

    fn describe(&self) -> &'static str {
        match self {
            Source::FwCfg { .. } => "direct boot from fw_cfg",
            Source::Image(_) => "from the image",
        }
    }

    fn bzimage_len(&self) -> u64 {
        match self {
            Source::FwCfg { setup, kernel, .. } => u64::from(*setup) + u64::from(*kernel),
            Source::Image(t) => t.find(PayloadKind::Kernel).map_or(0, |k| k.len() as u64),
        }
    }

    fn initrd_len(&self) -> u64 {
        match self {
            Source::FwCfg { initrd, .. } => u64::from(*initrd),
            Source::Image(t) => t.find(PayloadKind::Initrd).map_or(0, |i| i.len() as u64),
        }
    }

    fn read_bzimage(&self, fw_cfg: &FwCfg<'_>, dst: &mut [u8]) -> Result<(), BootError> {
        match self {
            Source::FwCfg { setup, .. } => {
                let (s, k) = dst.split_at_mut(*setup as usize);
                fw_cfg.read_item(linux_boot::SETUP_DATA, s)?;
                Ok(fw_cfg.read_item(linux_boot::KERNEL_DATA, k)?)
            }
            Source::Image(t) => copy(t, PayloadKind::Kernel, dst),
        }
    }

    fn read_initrd(&self, fw_cfg: &FwCfg<'_>, dst: &mut [u8]) -> Result<(), BootError> {
        match self {
            Source::FwCfg { .. } => Ok(fw_cfg.read_item(linux_boot::INITRD_DATA, dst)?),
            Source::Image(t) => copy(t, PayloadKind::Initrd, dst),
        }
    }

    /// Writes the command line and its NUL into `area`; returns its length without the NUL.
    fn read_cmdline(&self, fw_cfg: &FwCfg<'_>, area: &mut [u8]) -> Result<usize, BootError> {
        let room = area.len().saturating_sub(1);
        match self {
            Source::FwCfg { cmdline, .. } => {
                let bad = linux::LinuxBootError::BadCmdline { size: *cmdline };
                let raw = area.get_mut(..*cmdline as usize).ok_or(bad)?;
                fw_cfg.read_item(linux_boot::CMDLINE_DATA, raw)?;
                Ok(linux::cmdline_text(raw, room)?.len())
            }
            Source::Image(t) => {
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

// The pipeline's state is handed over whole: each argument is one distinct input of the boot.
#[allow(clippy::too_many_arguments)]
pub(super) fn boot(
    platform: &dyn Platform,
    fw_cfg: &FwCfg<'_>,
    mut map: MemoryMap,
    params: &LaunchParams,
    source: Source,
    enrolled: Option<&Enrolled>,
    helpers: Option<mp::Helpers>,
    deferred: alloc::vec::Vec<(u64, u64)>,
) -> Result<Infallible, BootError> {
    let mut arena = RamArena::new(&map).ok_or(BootError::RegionUnavailable("ram"))?;
    // With more than one vCPU the APs are parked in the multiprocessor wakeup mailbox, which
    // the MADT then announces (Linux wakes them through it).
    let park = helpers.is_some();
    let mut tables = acpi::install(
        platform,
        fw_cfg,
        &mut map,
        &mut arena,
        park.then_some(MP_MAILBOX.base),
    )?;
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
    source.read_bzimage(fw_cfg, bz)?;
    let mut initrd: Option<&[u8]> = None;
    if let Some((base, len)) = staging.initrd {
        let staged = arena
            .take(base, len)
            .ok_or(BootError::RegionUnavailable("initrd staging"))?;
        source.read_initrd(fw_cfg, staged)?;
        log::info!("linux: initrd at [{base:#x}, {:#x})", base + len);
        initrd = Some(staged);
    }

    let handoff =
        phys::take(phys::RamRegion::Handoff).ok_or(BootError::RegionUnavailable("handoff"))?;
    let (zero_page, rest) = handoff.split_at_mut(CMDLINE_OFFSET);
    let (cmdline_area, cc_area) = rest.split_at_mut(rest.len().saturating_sub(CC_AREA));
    let cmdline_len = source.read_cmdline(fw_cfg, cmdline_area)?;
    // Where the hardware measured what QEMU's blobs must be (SNP's kernel-hashes table), they
    // are checked before anything else looks at them.
    if let Source::FwCfg { setup, cmdline, .. } = &source {
        let (setup_bytes, kernel_bytes) =
            bz.split_at_checked(*setup as usize)
                .ok_or(BootError::RegionUnavailable(
                    "kernel staging (setup sectors)",
                ))?;
        let raw_cmdline = cmdline_area
            .get(..*cmdline as usize)
            .ok_or(linux::LinuxBootError::BadCmdline { size: *cmdline })?;
        platform.verify_direct_boot(setup_bytes, kernel_bytes, initrd, raw_cmdline)?;
    }
    // Secure boot: the staged copy (the signed file, as SNP's hashes covered it) is verified
    // before anything of it is parsed further, measured or run; from here on the kernel is the
    // bzImage without its signature trailer. The initrd and command line are not signed.
    // The signature covers the kernel's digest as measured (loader fields normalized), so a
    // verified kernel is not hashed a second time for its measurement.
    let (bz, kernel_blob, secure) = match enrolled {
        Some(e) => {
            let (kernel, digest, secure) = e.verify("kernel", bz)?;
            let blob = Blob::Hashed {
                digest,
                len: kernel.len() as u64,
            };
            (kernel, blob, Some(secure))
        }
        None => (&*bz, Blob::Bytes(bz), None),
    };

    let image = td_loader::linux::parse(bz)?;
    // Where the kernel goes, by the same code `td-shim-tool measure` runs on the host
    // (`linux::layout` = `plan_staging` + `place`), so the host refuses exactly the setups
    // refused here. Checked before anything is measured.
    let layout = linux::place(&map, staging, &image.header())?;
    let load = layout.kernel_load;
    let cmdline = &cmdline_area[..cmdline_len];
    let config = VmmConfig {
        td_hob: platform.td_hob(),
        acpi: core::mem::take(&mut tables.measured),
    };
    measure::record(
        platform,
        params,
        &config,
        secure.as_ref(),
        &Payload::Linux {
            kernel: kernel_blob,
            cmdline,
            initrd: initrd.map(Blob::Bytes),
        },
    )?;
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

    // fw_cfg is done with: the platform takes back shared memory before the final tables.
    platform.before_handoff()?;
    // Low memory is executable for the kernel's 5-level paging trampoline (LA57 CPUs).
    let tables_used = enable_paging(platform, &map, (load, u64::from(image.init_size())), true)?;
    super::accept_deferred(platform, &deferred)?;
    // The APs go to the wakeup loop now that the final page tables (which they keep using) are
    // loaded.
    if let Some(helpers) = helpers {
        let mailbox = arena
            .take(MP_MAILBOX.base, MP_MAILBOX.size)
            .ok_or(BootError::RegionUnavailable(MP_MAILBOX.name))?;
        let aps = helpers.count();
        helpers.park(
            mailbox,
            MP_MAILBOX.base,
            PAGE_TABLES.base,
            cpu::nx_supported(),
            platform.kind() == PlatformKind::Tdx,
        )?;
        log::info!(
            "mp: {aps} application processors wait in the wakeup mailbox at {:#x}",
            MP_MAILBOX.base
        );
    }
    // The firmware's working memory goes back to Linux as RAM, except what is still in use when
    // the kernel is entered: the data (IDT) and stack, the code that enters it, the page tables
    // CR3 points at, the zero page and command line, and the event log (kept for the OS and its
    // attestation agent).
    release_for_linux(
        &mut map,
        &InUseAtHandoff {
            data_and_stack: (FW_DATA.base, FW_STACK.end() - FW_DATA.base),
            code: phys::firmware_code(),
            page_tables: (PAGE_TABLES.base, tables_used),
            handoff_and_log: (HANDOFF.base, EVENT_LOG.end() - HANDOFF.base),
        },
    );
    // What the platform keeps (the TD HOB; under SNP its pages inside TempMem) stays reserved
    // though TempMem went back to Linux (a region outside TempMem is still reserved: no-op).
    for r in platform.reserved_regions() {
        map.retype_ram_within(r.base, r.size, td_layout::handoff::E820_RESERVED);
    }
    if park {
        // The mailbox and the loop the APs run stay the firmware's: ACPI NVS, as ACPI asks.
        map.carve(
            MP_MAILBOX.name,
            MP_MAILBOX.base,
            MP_MAILBOX.size,
            td_layout::handoff::E820_NVS,
        )?;
    }
    // The CC blob (SNP: the secrets and CPUID pages) in the last bytes of the hand-off region,
    // announced by a SETUP_CC_BLOB node right after it.
    let mut setup_data = 0;
    if let Some(blob) = platform.cc_blob() {
        let cc_base = HANDOFF.end() - CC_AREA as u64;
        let node_at = blob.len().next_multiple_of(8);
        let data = td_loader::linux::cc_setup_data(cc_base)
            .ok_or(BootError::RegionUnavailable("cc blob"))?;
        let (blob_area, node_area) = cc_area
            .split_at_mut_checked(node_at)
            .ok_or(BootError::RegionUnavailable("cc blob"))?;
        blob_area
            .get_mut(..blob.len())
            .ok_or(BootError::RegionUnavailable("cc blob"))?
            .copy_from_slice(&blob);
        td_loader::linux::write_setup_data(node_area, 0, td_loader::linux::SETUP_CC_BLOB, &data)?;
        setup_data = cc_base + node_at as u64;
    }
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
            acpi_rsdp: tables.rsdp,
            e820: &e820,
            setup_data,
        },
    )?;
    log_map("linux: e820", &map);
    // Publish the emulated registers' final values.
    if let (Some(slot), Some(regs)) = (tables.rtmr_table, platform.emulated_rtmrs()) {
        slot.copy_from_slice(&crate::acpi::rtmr_table(&regs));
    }
    let entry = td_loader::linux::entry64(load).ok_or(BootError::RegionUnavailable("entry"))?;
    log::info!(
        "linux: entering the kernel at {entry:#x}, zero page at {:#x}",
        HANDOFF.base
    );
    cpu::enter_linux(entry, HANDOFF.base, FW_STACK.end())
}
