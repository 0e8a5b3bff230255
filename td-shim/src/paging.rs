//! Identity page tables, built into a caller-given array of tables with the `x86_64` crate's
//! types. The array stands for the physical memory at `phys_base`, so the same code runs on the
//! host in tests and in the firmware on the [`PAGE_TABLES`](td_layout::layout::PAGE_TABLES) region.
//!
//! Only 2 MiB pages are used (every x86-64 CPU has them; 1 GiB pages are optional).

use core::fmt;
use x86_64::structures::paging::{PageTable, PageTableFlags as F};
use x86_64::PhysAddr;

/// 2 MiB.
pub const LARGE_PAGE: u64 = 0x20_0000;
const GIB: u64 = 0x4000_0000;
const TABLE: u64 = 0x1000;

/// Why the page tables could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PagingError {
    /// The range is not 2 MiB aligned.
    Unaligned {
        /// First address.
        base: u64,
        /// Size.
        size: u64,
    },
    /// The range wraps or is above the 48-bit address space.
    OutOfRange {
        /// First address.
        base: u64,
        /// Size.
        size: u64,
    },
    /// The table area is full.
    OutOfTables {
        /// Tables available.
        capacity: usize,
    },
}

impl fmt::Display for PagingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unaligned { base, size } => {
                write!(f, "paging: [{base:#x}, +{size:#x}) is not 2 MiB aligned")
            }
            Self::OutOfRange { base, size } => write!(
                f,
                "paging: [{base:#x}, +{size:#x}) is outside the 48-bit address space"
            ),
            Self::OutOfTables { capacity } => write!(
                f,
                "paging: {capacity} page tables are not enough to map this memory"
            ),
        }
    }
}

/// Builds a 4-level identity map into `tables`, which live at guest-physical `phys_base`.
pub struct IdentityMapper<'a> {
    tables: &'a mut [PageTable],
    phys_base: u64,
    used: usize,
}

impl<'a> IdentityMapper<'a> {
    /// Starts with an empty PML4 in `tables[0]`. `tables` must not be empty.
    pub fn new(tables: &'a mut [PageTable], phys_base: u64) -> Result<Self, PagingError> {
        let first = tables
            .first_mut()
            .ok_or(PagingError::OutOfTables { capacity: 0 })?;
        first.zero();
        Ok(IdentityMapper {
            tables,
            phys_base,
            used: 1,
        })
    }

    /// The value for CR3: the physical address of the PML4.
    pub fn root(&self) -> u64 {
        self.phys_base
    }

    /// Tables used so far.
    pub fn tables_used(&self) -> usize {
        self.used
    }

    fn index_of(&self, phys: u64) -> usize {
        ((phys - self.phys_base) / TABLE) as usize
    }

    // The table that `table[index]` points to, allocating it if the entry is empty.
    fn next_table(&mut self, table: usize, index: usize) -> Result<usize, PagingError> {
        let entry = &self.tables[table][index];
        if !entry.is_unused() {
            return Ok(self.index_of(entry.addr().as_u64()));
        }
        let capacity = self.tables.len();
        if self.used >= capacity {
            return Err(PagingError::OutOfTables { capacity });
        }
        let new = self.used;
        self.used += 1;
        self.tables[new].zero();
        let addr = PhysAddr::new(self.phys_base + new as u64 * TABLE);
        // Intermediate entries allow everything; the leaf decides.
        self.tables[table][index].set_addr(addr, F::PRESENT | F::WRITABLE);
        Ok(new)
    }

    /// Identity-maps `[base, base + size)` with 2 MiB pages carrying `flags` (PRESENT and
    /// HUGE_PAGE are added). Mapping a page again replaces its flags.
    pub fn map(&mut self, base: u64, size: u64, flags: F) -> Result<(), PagingError> {
        if !base.is_multiple_of(LARGE_PAGE) || !size.is_multiple_of(LARGE_PAGE) {
            return Err(PagingError::Unaligned { base, size });
        }
        match base.checked_add(size) {
            Some(end) if end <= 1 << 47 => {}
            _ => return Err(PagingError::OutOfRange { base, size }),
        }
        let mut addr = base;
        while addr < base + size {
            let pdpt = self.next_table(0, ((addr >> 39) & 0x1FF) as usize)?;
            let pd = self.next_table(pdpt, ((addr >> 30) & 0x1FF) as usize)?;
            self.tables[pd][((addr >> 21) & 0x1FF) as usize]
                .set_addr(PhysAddr::new(addr), flags | F::PRESENT | F::HUGE_PAGE);
            addr += LARGE_PAGE;
        }
        Ok(())
    }

    /// Walks the tables for `addr`: the physical address and the leaf's flags, if mapped.
    pub fn translate(&self, addr: u64) -> Option<(u64, F)> {
        let mut table = 0;
        for shift in [39u64, 30] {
            let e = &self.tables[table][((addr >> shift) & 0x1FF) as usize];
            if e.is_unused() {
                return None;
            }
            table = self.index_of(e.addr().as_u64());
        }
        let e = &self.tables[table][((addr >> 21) & 0x1FF) as usize];
        if e.is_unused() {
            return None;
        }
        Some((e.addr().as_u64() + (addr & (LARGE_PAGE - 1)), e.flags()))
    }
}

/// The regions [`map_firmware_address_space`] maps with other rights than read-write data.
/// Each `(base, size)` is widened to whole 2 MiB pages.
#[derive(Debug, Clone, Copy)]
pub struct AddressSpace {
    /// One past the highest RAM address.
    pub ram_top: u64,
    /// The firmware's code in RAM: read-only, executable.
    pub code: (u64, u64),
    /// The image: read-only, not executable.
    pub image: (u64, u64),
    /// Where the payload is loaded: read-write, executable.
    pub payload: (u64, u64),
    /// Whether the first 2 MiB are executable too: Linux's decompressor runs a trampoline below
    /// 1 MiB to switch to 5-level paging (LA57), found in usable low RAM. Only for a Linux
    /// hand-off, when the firmware's own data there is no longer used as data.
    pub low_memory_exec: bool,
}

/// What the firmware maps: everything below 4 GiB (RAM, MMIO, the image) and all RAM above,
/// read-write and non-executable, except the regions of `space`. `nx` says whether the CPU
/// supports the NX bit.
pub fn map_firmware_address_space(
    mapper: &mut IdentityMapper<'_>,
    space: &AddressSpace,
    nx: bool,
) -> Result<(), PagingError> {
    let no_exec = if nx { F::NO_EXECUTE } else { F::empty() };
    let data = if nx {
        F::WRITABLE | F::NO_EXECUTE
    } else {
        F::WRITABLE
    };
    let top = space.ram_top.max(4 * GIB).div_ceil(LARGE_PAGE) * LARGE_PAGE;
    mapper.map(0, top, data)?;
    let align = |(base, size): (u64, u64)| {
        let start = base / LARGE_PAGE * LARGE_PAGE;
        let end = base.saturating_add(size).div_ceil(LARGE_PAGE) * LARGE_PAGE;
        (start, end - start)
    };
    let (b, s) = align(space.image);
    mapper.map(b, s, no_exec)?;
    let (b, s) = align(space.code);
    mapper.map(b, s, F::empty())?;
    let (b, s) = align(space.payload);
    mapper.map(b, s, F::WRITABLE)?;
    if space.low_memory_exec {
        mapper.map(0, LARGE_PAGE, F::WRITABLE)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    fn tables(n: usize) -> Vec<PageTable> {
        (0..n).map(|_| PageTable::new()).collect()
    }

    #[test]
    fn maps_ram_above_4g_with_the_right_permissions() {
        let mut t = tables(64);
        let mut m = IdentityMapper::new(&mut t, 0x20_0000).unwrap();
        let space = AddressSpace {
            ram_top: 7 * GIB,
            code: (0x20_0000, 0x20_0000),
            image: (0xFF00_0000, 0x100_0000),
            payload: (0x100_0000, 0x200_0000),
            low_memory_exec: false,
        };
        map_firmware_address_space(&mut m, &space, true).unwrap();
        // PML4 + 1 PDPT + 7 PDs.
        assert_eq!(m.tables_used(), 9);
        let (phys, flags) = m.translate(6 * GIB + 0x1234).unwrap();
        assert_eq!(phys, 6 * GIB + 0x1234);
        assert!(flags.contains(F::WRITABLE | F::NO_EXECUTE));
        let (_, code) = m.translate(0x20_1000).unwrap();
        assert!(!code.contains(F::WRITABLE) && !code.contains(F::NO_EXECUTE));
        let (_, rom) = m.translate(0xFFFF_FFF0).unwrap();
        assert!(!rom.contains(F::WRITABLE) && rom.contains(F::NO_EXECUTE));
        let (_, data) = m.translate(0x14_0000).unwrap();
        assert!(data.contains(F::WRITABLE | F::NO_EXECUTE));
        let (_, payload) = m.translate(0x100_0000).unwrap();
        assert!(payload.contains(F::WRITABLE) && !payload.contains(F::NO_EXECUTE));
        assert!(m.translate(7 * GIB).is_none());
        assert_eq!(m.root(), 0x20_0000);
    }

    #[test]
    fn without_nx_nothing_is_marked_no_execute() {
        let mut t = tables(16);
        let mut m = IdentityMapper::new(&mut t, 0).unwrap();
        let space = AddressSpace {
            ram_top: GIB,
            code: (0x20_0000, 0x20_0000),
            image: (0xFFE0_0000, 0x20_0000),
            payload: (0, 0),
            low_memory_exec: false,
        };
        map_firmware_address_space(&mut m, &space, false).unwrap();
        assert!(!m.translate(0x1000).unwrap().1.contains(F::NO_EXECUTE));
    }

    #[test]
    fn low_memory_is_executable_only_for_a_linux_hand_off() {
        // Linux's 5-level paging trampoline runs below 1 MiB (issue: LA57 kernels died on NX).
        for low_memory_exec in [false, true] {
            let mut t = tables(16);
            let mut m = IdentityMapper::new(&mut t, 0x40_0000).unwrap();
            let space = AddressSpace {
                ram_top: GIB,
                code: (0x20_0000, 0x20_0000),
                image: (0xFF00_0000, 0x100_0000),
                payload: (0x100_0000, 0x200_0000),
                low_memory_exec,
            };
            map_firmware_address_space(&mut m, &space, true).unwrap();
            let (_, low) = m.translate(0x9_D000).unwrap();
            assert!(low.contains(F::WRITABLE));
            assert_eq!(low.contains(F::NO_EXECUTE), !low_memory_exec);
        }
    }

    #[test]
    fn refuses_bad_ranges_and_running_out_of_tables() {
        let mut t = tables(3);
        let mut m = IdentityMapper::new(&mut t, 0).unwrap();
        assert_eq!(
            m.map(0x1000, LARGE_PAGE, F::empty()),
            Err(PagingError::Unaligned {
                base: 0x1000,
                size: LARGE_PAGE
            })
        );
        assert!(matches!(
            m.map(u64::MAX - LARGE_PAGE + 1, LARGE_PAGE, F::empty()),
            Err(PagingError::Unaligned { .. }) | Err(PagingError::OutOfRange { .. })
        ));
        assert_eq!(
            m.map(1 << 47, LARGE_PAGE, F::empty()),
            Err(PagingError::OutOfRange {
                base: 1 << 47,
                size: LARGE_PAGE
            })
        );
        // Two GiB need two page directories: PML4 + PDPT + PD fills 3 tables.
        assert_eq!(
            m.map(0, 2 * GIB, F::empty()),
            Err(PagingError::OutOfTables { capacity: 3 })
        );
        assert!(IdentityMapper::new(&mut [], 0).is_err());
    }
}
