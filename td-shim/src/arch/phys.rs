//! Guest-physical memory as Rust slices, under the identity map.
//!
//! The image is read-only and may be shared freely. Each RAM region of the layout that the boot
//! core writes can be taken once as `&'static mut`: a second take returns `None`, so two mutable
//! views of one region can never exist.

use crate::memory_map::MemoryMap;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use td_layout::layout::{
    Region, EVENT_LOG, HANDOFF, HEAP, IMAGE_BASE, IMAGE_SIZE, PAGE_TABLES, PAYLOAD_LOAD,
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
/// so no two mutable views of the same RAM can be made through it.
pub struct RamArena {
    usable: Vec<(u64, u64)>,
    taken: Vec<(u64, u64)>,
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
            usable: map.ram().map(|r| (r.base, r.end())).collect(),
            taken: Vec::new(),
        })
    }

    /// `[base, base + len)` as a slice, if it is usable RAM below 4 GiB (mapped by the reset
    /// page tables and the firmware's own), non-empty, and not handed out before.
    pub fn take(&mut self, base: u64, len: u64) -> Option<&'static mut [u8]> {
        let end = base.checked_add(len)?;
        let inside = self.usable.iter().any(|&(b, e)| b <= base && end <= e);
        let free = self.taken.iter().all(|&(b, e)| end <= b || e <= base);
        if len == 0 || end > td_layout::layout::FOUR_GIB || !inside || !free {
            return None;
        }
        self.taken.push((base, end));
        // The range is usable RAM by the memory map, so it overlaps no firmware region, image
        // or MMIO (all reserved or outside RAM), and it is identity-mapped below 4 GiB.
        // SAFETY: RAM, mapped, disjoint from every other slice this arena handed out.
        Some(unsafe { core::slice::from_raw_parts_mut(base as *mut u8, len as usize) })
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
