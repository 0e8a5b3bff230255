//! Guest-physical memory as Rust slices, under the identity map.
//!
//! The image is read-only and may be shared freely. Each RAM region of the layout that the boot
//! core writes can be taken once as `&'static mut`: a second take returns `None`, so two mutable
//! views of one region can never exist.

use crate::memory_map::{MemoryMap, RangeAllocator};
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use td_layout::layout::{
    Region, AP_RENDEZVOUS, AP_TRAMPOLINE, EVENT_LOG, FW_CFG_BOUNCE, HANDOFF, HEAP, IMAGE_BASE,
    IMAGE_SIZE, PAGE_TABLES, PAYLOAD_LOAD, TD_HOB,
};
use x86_64::structures::paging::PageTable;

/// The RAM regions the boot core may take.
#[derive(Debug, Clone, Copy)]
pub enum RamRegion {
    /// [`HEAP`].
    Heap,
    /// [`PAGE_TABLES`].
    PageTables,
    /// [`HANDOFF`].
    Handoff,
    /// [`PAYLOAD_LOAD`].
    PayloadLoad,
    /// [`EVENT_LOG`].
    EventLog,
    /// [`FW_CFG_BOUNCE`].
    FwCfgBounce,
    /// [`AP_RENDEZVOUS`].
    ApRendezvous,
    /// [`AP_TRAMPOLINE`] (VMM RAM below 1 MiB: take it only after checking it is RAM and
    /// reserving it in the memory map).
    ApTrampoline,
}

impl RamRegion {
    /// The layout region.
    pub const fn region(self) -> Region {
        match self {
            RamRegion::Heap => HEAP,
            RamRegion::PageTables => PAGE_TABLES,
            RamRegion::Handoff => HANDOFF,
            RamRegion::PayloadLoad => PAYLOAD_LOAD,
            RamRegion::EventLog => EVENT_LOG,
            RamRegion::FwCfgBounce => FW_CFG_BOUNCE,
            RamRegion::ApRendezvous => AP_RENDEZVOUS,
            RamRegion::ApTrampoline => AP_TRAMPOLINE,
        }
    }
}

static TAKEN: AtomicU32 = AtomicU32::new(0);

/// The bytes of `region` of the image, or `None` if it is not inside the image.
pub fn image(region: Region) -> Option<&'static [u8]> {
    if region.base < IMAGE_BASE || !region.contains_range(region.base, region.size) {
        return None;
    }
    if region.end() > IMAGE_BASE + IMAGE_SIZE {
        return None;
    }
    // The image is never written: ROM on a plain VM, measured private pages under TDX/SNP.
    // SAFETY: the image is identity-mapped at [IMAGE_BASE, 4 GiB) for the firmware's whole life.
    Some(unsafe { core::slice::from_raw_parts(region.base as *const u8, region.size as usize) })
}

/// The TD_HOB region as the VMM wrote it before the TD started (TDX only: the TDVF metadata's
/// TD_HOB section, private memory the VMM added). The firmware never writes it: the platform
/// keeps it out of the memory map it hands out ([`crate::platform::Platform::reserved_regions`]).
pub fn td_hob() -> &'static [u8] {
    // Under TDX the region is accepted private RAM holding the VMM's HOB, identity-mapped
    // below 4 GiB by every page table of the firmware, and never written or handed out by it.
    // SAFETY: TDX: accepted, identity-mapped RAM the firmware never writes or hands out.
    unsafe { core::slice::from_raw_parts(TD_HOB.base as *const u8, TD_HOB.size as usize) }
}

/// The SEV-SNP CPUID page as the PSP validated it at launch (SNP only: the SEV metadata's CPUID
/// section). Read-only for the firmware; reserved for the OS.
pub fn snp_cpuid_page() -> &'static [u8] {
    let r = td_layout::layout::SNP_CPUID;
    // Under SNP the page is validated private RAM in TempMem, identity-mapped, written
    // only by the PSP before launch and never by the firmware.
    // SAFETY: SNP: validated, identity-mapped page written only by the PSP, read-only here.
    unsafe { core::slice::from_raw_parts(r.base as *const u8, r.size as usize) }
}

/// The SEV-SNP kernel-hashes area (QEMU writes the table there at launch with
/// `kernel-hashes=on`; zeros otherwise). Read-only for the firmware.
pub fn snp_kernel_hashes() -> &'static [u8] {
    use td_layout::sev::{SEV_HASH_TABLE_BASE, SEV_HASH_TABLE_SIZE};
    // Under SNP the area is validated private RAM in TempMem (measured at launch),
    // identity-mapped and never written by the firmware.
    // SAFETY: SNP: validated, identity-mapped area measured at launch, read-only here.
    unsafe {
        core::slice::from_raw_parts(
            SEV_HASH_TABLE_BASE as *const u8,
            SEV_HASH_TABLE_SIZE as usize,
        )
    }
}

/// Takes `which` as a mutable slice, once.
pub fn take(which: RamRegion) -> Option<&'static mut [u8]> {
    let bit = 1 << which as u32;
    if TAKEN.fetch_or(bit, Ordering::SeqCst) & bit != 0 {
        return None;
    }
    let r = which.region();
    // The region is RAM the firmware owns (checked against the memory map before any take),
    // identity-mapped, and disjoint from every other region, .data/.bss and the stack (layout
    // checks at compile time).
    // SAFETY: owned, mapped, disjoint RAM, handed out at most once (the bit above).
    Some(unsafe { core::slice::from_raw_parts_mut(r.base as *mut u8, r.size as usize) })
}

/// The usable RAM of the memory map, handed out as disjoint slices. Only one arena can exist,
/// so no two mutable views of the same RAM can be made through it. Which ranges it may hand out
/// is decided by [`RangeAllocator`] (host-tested): never page 0, never above 4 GiB, never twice.
pub struct RamArena {
    ranges: RangeAllocator,
}

static ARENA: AtomicBool = AtomicBool::new(false);

impl RamArena {
    /// The arena over `map`'s usable RAM (after the firmware has reserved its own regions), or
    /// `None` if one was made before.
    pub fn new(map: &MemoryMap) -> Option<Self> {
        if ARENA.swap(true, Ordering::SeqCst) {
            return None;
        }
        Some(RamArena {
            ranges: RangeAllocator::new(map),
        })
    }

    /// `[base, base + len)` as a slice, if [`RangeAllocator::take`] grants it.
    pub fn take(&mut self, base: u64, len: u64) -> Option<&'static mut [u8]> {
        let (base, len) = self.ranges.take(base, len)?;
        let len = usize::try_from(len).ok()?;
        // The range is usable RAM by the memory map at or above 4 KiB (so the pointer is not
        // null), below 4 GiB (identity-mapped by the reset page tables and the firmware's own),
        // overlapping no firmware region, image or MMIO (all reserved or outside RAM).
        // SAFETY: non-null, mapped RAM, disjoint from every other slice this arena handed out.
        Some(unsafe { core::slice::from_raw_parts_mut(base as *mut u8, len) })
    }
}

/// Takes the page-table region as page tables, once.
pub fn take_page_tables() -> Option<&'static mut [PageTable]> {
    let bytes = take(RamRegion::PageTables)?;
    let count = bytes.len() / core::mem::size_of::<PageTable>();
    // The region is 4 KiB aligned (layout check), as a PageTable must be, and any bit pattern is a
    // valid PageTable (512 u64 entries).
    // SAFETY: aligned, valid for any bytes, and exclusively ours (see `take`).
    Some(unsafe { core::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast::<PageTable>(), count) })
}

extern "C" {
    // Linker-script symbols (build.rs): the firmware code's link address and size in RAM.
    static __code_start: u8;
    static __code_size: u8;
}

/// The firmware's code as copied to RAM at reset: `(base, size)`.
pub fn firmware_code() -> (u64, u64) {
    // Only the symbols' addresses are used, never their contents.
    let base = core::ptr::addr_of!(__code_start) as u64;
    let size = core::ptr::addr_of!(__code_size) as u64;
    (base, size)
}
