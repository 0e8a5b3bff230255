//! The live page tables as [`SharedPageTables`] (TDX) and `RemapPages` (SEV-SNP): pages are
//! remapped to their shared alias and back in whatever tables CR3 points at (the reset page
//! tables while the firmware runs), through the host-tested [`crate::paging::remap_4k`]. Under
//! TDX the shared side carries the shared bit; under SNP the private side carries the C-bit
//! (the GHCB page, and the fw_cfg bounce buffer while it is shared: [`crate::snp::bounce`]).

use crate::paging::{remap_4k, TableMemory};
use crate::tdx::bounce::SharedPageTables;
use td_layout::layout::{Region, BOUNCE_PAGE_TABLE, RESET_PAGE_TABLES};
use x86_64::registers::control::Cr3;
use x86_64::structures::paging::PageTable;

/// The table pages this module may change: the reset tables and the spare. The tables built in
/// Rust ([`td_layout::layout::PAGE_TABLES`]) are owned by their builder: the bounce buffer is
/// released before they are built ([`crate::platform::Platform::before_handoff`]), and a remap
/// while they are live is refused.
const TABLE_REGIONS: [Region; 2] = [RESET_PAGE_TABLES, BOUNCE_PAGE_TABLE];

struct OwnTables;

impl TableMemory for OwnTables {
    fn table(&mut self, phys: u64) -> Option<&mut PageTable> {
        if !phys.is_multiple_of(0x1000)
            || !TABLE_REGIONS.iter().any(|r| r.contains_range(phys, 0x1000))
        {
            return None;
        }
        // The page is one of the reset tables or the spare (checked above): identity-mapped,
        // 4 KiB aligned, and no Rust reference to them exists outside this module, which changes
        // them one remap at a time (the lock in `LiveTables`).
        // SAFETY: aligned, mapped, owned table memory; any bit pattern is a valid PageTable.
        Some(unsafe { &mut *(phys as *mut PageTable) })
    }
}

/// The live page tables; one remap at a time.
pub struct LiveTables {
    lock: spin::Mutex<()>,
}

impl LiveTables {
    /// The live tables (there is one set of them: use one value).
    pub const fn new() -> Self {
        LiveTables {
            lock: spin::Mutex::new(()),
        }
    }

    fn remap_live(&self, gpa: u64, len: u64, alias: u64) -> Result<(), &'static str> {
        let _one = self.lock.lock();
        let (frame, _) = Cr3::read();
        let root = frame.start_address().as_u64();
        remap_4k(
            &mut OwnTables,
            root,
            BOUNCE_PAGE_TABLE.base,
            gpa,
            len,
            alias,
        )
        .map_err(|e| {
            log::error!("{e}");
            "the live page tables could not be remapped"
        })?;
        // Reloading CR3 flushes every non-global translation (the firmware maps none global).
        let (frame, flags) = Cr3::read();
        // SAFETY: the same root again: only the TLB is flushed.
        unsafe { Cr3::write(frame, flags) };
        Ok(())
    }
}

impl Default for LiveTables {
    fn default() -> Self {
        Self::new()
    }
}

impl SharedPageTables for LiveTables {
    fn map_shared(&self, gpa: u64, len: u64, shared_bit: u64) -> Result<(), &'static str> {
        self.remap_live(gpa, len, shared_bit)
    }

    fn map_private(&self, gpa: u64, len: u64) -> Result<(), &'static str> {
        self.remap_live(gpa, len, 0)
    }
}

/// SEV-SNP: the C-bit is the private side (`phys_or` = C-bit) and 0 the shared side.
impl crate::snp::platform::RemapPages for LiveTables {
    fn remap(&self, gpa: u64, len: u64, phys_or: u64) -> Result<(), &'static str> {
        self.remap_live(gpa, len, phys_or)
    }
}
