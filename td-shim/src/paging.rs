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
    /// A 4 KiB remap ([`remap_4k`]) found the live tables or its arguments unusable.
    Remap {
        /// What is wrong.
        what: &'static str,
        /// The address concerned.
        addr: u64,
    },
}

impl fmt::Display for PagingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Remap { what, addr } => {
                write!(f, "paging: cannot remap {addr:#x}: {what}")
            }
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
    leaf_mask: u64,
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
            leaf_mask: 0,
        })
    }

    /// Sets an address bit every leaf entry made from now on carries: the SEV C-bit, which makes
    /// a page private (encrypted). `mask` must be 0 or one bit in [2^32, 2^52), and every range
    /// mapped afterwards must lie below it.
    pub fn set_leaf_mask(&mut self, mask: u64) -> Result<(), PagingError> {
        if mask != 0 && (!mask.is_power_of_two() || !(1 << 32..MAX_PHYS).contains(&mask)) {
            return Err(PagingError::Remap {
                what: "the leaf mask is not one address bit in [2^32, 2^52)",
                addr: mask,
            });
        }
        self.leaf_mask = mask;
        Ok(())
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
        let limit = match self.leaf_mask {
            0 => 1 << 47,
            m => m.min(1 << 47),
        };
        match base.checked_add(size) {
            Some(end) if end <= limit => {}
            _ => return Err(PagingError::OutOfRange { base, size }),
        }
        let mut addr = base;
        while addr < base + size {
            let pdpt = self.next_table(0, ((addr >> 39) & 0x1FF) as usize)?;
            let pd = self.next_table(pdpt, ((addr >> 30) & 0x1FF) as usize)?;
            self.tables[pd][((addr >> 21) & 0x1FF) as usize].set_addr(
                PhysAddr::new(addr | self.leaf_mask),
                flags | F::PRESENT | F::HUGE_PAGE,
            );
            addr += LARGE_PAGE;
        }
        Ok(())
    }

    /// Remaps the 4 KiB pages of `[base, base + len)` to `page | phys_or` in these tables
    /// ([`remap_4k`]; SNP: `phys_or` 0 maps a page shared), taking a fresh table from the pool
    /// for the split of its 2 MiB page.
    pub fn remap_4k(&mut self, base: u64, len: u64, phys_or: u64) -> Result<(), PagingError> {
        let capacity = self.tables.len();
        if self.used >= capacity {
            return Err(PagingError::OutOfTables { capacity });
        }
        let spare = self.used;
        self.tables[spare].zero();
        self.used += 1;
        let spare_phys = self.phys_base + spare as u64 * TABLE;
        let root = self.phys_base;
        remap_4k(self, root, spare_phys, base, len, phys_or)
    }

    /// Walks the tables for `addr`: the physical address (with the leaf mask, if any) and the
    /// leaf's flags, if mapped.
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

impl TableMemory for IdentityMapper<'_> {
    fn table(&mut self, phys: u64) -> Option<&mut PageTable> {
        let offset = phys.checked_sub(self.phys_base)?;
        if !offset.is_multiple_of(TABLE) {
            return None;
        }
        let index = usize::try_from(offset / TABLE).ok()?;
        if index >= self.used {
            return None;
        }
        self.tables.get_mut(index)
    }
}

/// Page tables in memory, reached by their physical address (the firmware: identity-mapped
/// table pages it owns; the tests: an array).
pub trait TableMemory {
    /// The table at `phys`, if `phys` is a table page this memory may change.
    fn table(&mut self, phys: u64) -> Option<&mut PageTable>;
}

const PAGE: u64 = 0x1000;
/// The highest physical address bit 4-level entries can carry (bits 51:12).
const MAX_PHYS: u64 = 1 << 52;

/// Remaps the 4 KiB pages of `[base, base + len)` in the live tables rooted at `root`: each
/// virtual page `va` then maps physical `va | alias` (`alias` 0: identity again; under TDX the
/// shared bit), keeping its rights. The range must lie inside one 2 MiB page; if that page is
/// still a 2 MiB mapping it is first split into `spare`, a 4 KiB table with the same
/// translations and rights, so nothing else changes. The caller flushes the TLB afterwards.
///
/// Checked: alignment, the range inside one 2 MiB page and below `alias`, `alias` zero or a
/// single bit in [2^32, 2^52), every table on the walk present and in `mem`.
pub fn remap_4k(
    mem: &mut dyn TableMemory,
    root: u64,
    spare: u64,
    base: u64,
    len: u64,
    alias: u64,
) -> Result<(), PagingError> {
    let bad = |what| PagingError::Remap { what, addr: base };
    if len == 0 || !base.is_multiple_of(PAGE) || !len.is_multiple_of(PAGE) {
        return Err(bad("the range is empty or not 4 KiB aligned"));
    }
    let last = base.checked_add(len - 1).ok_or(bad("the range wraps"))?;
    if base / LARGE_PAGE != last / LARGE_PAGE {
        return Err(bad("the range crosses a 2 MiB boundary"));
    }
    if alias != 0 && (!alias.is_power_of_two() || !(1 << 32..MAX_PHYS).contains(&alias)) {
        return Err(bad("the alias is not one address bit in [2^32, 2^52)"));
    }
    if last >= 1 << 47 || (alias != 0 && last >= alias) {
        return Err(bad("the range is not below the alias bit and 2^47"));
    }
    let mut table = root;
    for shift in [39u64, 30] {
        let e = &mem
            .table(table)
            .ok_or(bad("a table is outside the table memory"))?[((base >> shift) & 0x1FF) as usize];
        if e.is_unused() || e.flags().contains(F::HUGE_PAGE) {
            return Err(bad("the walk has no page directory for the range"));
        }
        table = e.addr().as_u64();
    }
    let pd = table;
    let pde_index = ((base >> 21) & 0x1FF) as usize;
    let pde = mem
        .table(pd)
        .ok_or(bad("the page directory is outside the table memory"))?[pde_index]
        .clone();
    if pde.is_unused() {
        return Err(bad("the 2 MiB page is not mapped"));
    }
    let pt = if pde.flags().contains(F::HUGE_PAGE) {
        let start = pde.addr().as_u64() & !(LARGE_PAGE - 1);
        // Bit 12 of a 2 MiB entry is PAT; the 4 KiB entries carry it at bit 7.
        let mut flags = pde.flags() - F::HUGE_PAGE;
        let pat = start & PAGE != 0;
        if pat {
            flags |= F::HUGE_PAGE;
        }
        let t = mem
            .table(spare)
            .ok_or(bad("the spare table is outside the table memory"))?;
        for (i, e) in t.iter_mut().enumerate() {
            e.set_addr(PhysAddr::new(start + i as u64 * PAGE), flags);
        }
        let keep = pde.flags() & (F::USER_ACCESSIBLE | F::ACCESSED);
        mem.table(pd).ok_or(bad("the page directory vanished"))?[pde_index]
            .set_addr(PhysAddr::new(spare), F::PRESENT | F::WRITABLE | keep);
        spare
    } else {
        pde.addr().as_u64()
    };
    let t = mem
        .table(pt)
        .ok_or(bad("the page table is outside the table memory"))?;
    let mut page = base;
    while page <= last {
        let e = &mut t[((page >> 12) & 0x1FF) as usize];
        if e.is_unused() {
            return Err(PagingError::Remap {
                what: "a 4 KiB page of the range is not mapped",
                addr: page,
            });
        }
        let flags = e.flags();
        e.set_addr(PhysAddr::new(page | alias), flags);
        page += PAGE;
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

    impl IdentityMapper<'_> {
        /// The physical address of `va` through 2 MiB and 4 KiB leaves.
        fn translate_4k(&mut self, va: u64) -> Option<u64> {
            let root = self.phys_base;
            let mut t = root;
            for shift in [39u64, 30, 21, 12] {
                let e = self.table(t)?[((va >> shift) & 0x1FF) as usize].clone();
                if e.is_unused() {
                    return None;
                }
                if shift == 12 || (shift == 21 && e.flags().contains(F::HUGE_PAGE)) {
                    let size = 1u64 << shift;
                    return Some((e.addr().as_u64() & !(size - 1)) + (va & (size - 1)));
                }
                t = e.addr().as_u64();
            }
            None
        }
    }

    /// Tables in an array at `base`, as [`TableMemory`].
    struct ArrayMemory<'a> {
        tables: &'a mut [PageTable],
        base: u64,
    }

    impl TableMemory for ArrayMemory<'_> {
        fn table(&mut self, phys: u64) -> Option<&mut PageTable> {
            let i = phys.checked_sub(self.base)? / TABLE;
            if !phys.is_multiple_of(TABLE) {
                return None;
            }
            self.tables.get_mut(usize::try_from(i).ok()?)
        }
    }

    /// A 4-level walk of `va`, 2 MiB and 4 KiB leaves: (physical, leaf flags).
    fn walk(mem: &mut ArrayMemory<'_>, root: u64, va: u64) -> Option<(u64, F)> {
        let mut t = root;
        for shift in [39u64, 30, 21, 12] {
            let e = mem.table(t)?[((va >> shift) & 0x1FF) as usize].clone();
            if e.is_unused() {
                return None;
            }
            let leaf = shift == 12 || (shift == 21 && e.flags().contains(F::HUGE_PAGE));
            if leaf {
                let size = 1u64 << shift;
                let frame = e.addr().as_u64() & !(size - 1);
                return Some((frame + (va & (size - 1)), e.flags() - F::HUGE_PAGE));
            }
            t = e.addr().as_u64();
        }
        None
    }

    const BASE: u64 = 0x40_0000;
    const SHARED: u64 = 1 << 47;

    /// The reset tables' shape: [0, 4 GiB) in 2 MiB pages, with a spare table after them.
    fn reset_like(t: &mut [PageTable]) -> (u64, u64) {
        let mut m = IdentityMapper::new(t, BASE).unwrap();
        m.map(0, 4 * GIB, F::WRITABLE | F::ACCESSED | F::DIRTY)
            .unwrap();
        let used = m.tables_used() as u64;
        (BASE, BASE + used * TABLE)
    }

    #[test]
    fn remap_4k_splits_one_large_page_and_changes_only_the_range() {
        let mut t = tables(8);
        let (root, spare) = reset_like(&mut t);
        let mut mem = ArrayMemory {
            tables: &mut t,
            base: BASE,
        };
        let before: Vec<_> = (0..512u64)
            .map(|i| walk(&mut mem, root, i * TABLE + 0x18).unwrap())
            .collect();
        let (b, len) = (0x1B_0000, 0x4_0000);
        remap_4k(&mut mem, root, spare, b, len, SHARED).unwrap();
        for (i, was) in before.iter().enumerate() {
            let va = i as u64 * TABLE + 0x18;
            let (phys, flags) = walk(&mut mem, root, va).unwrap();
            assert_eq!(flags, was.1, "rights kept at {va:#x}");
            if (b..b + len).contains(&va) {
                assert_eq!(phys, va | SHARED);
            } else {
                assert_eq!(phys, va, "outside the range at {va:#x}");
            }
        }
        // The next 2 MiB page is untouched, still a large page.
        let pd = mem.table(root + 2 * TABLE).unwrap();
        assert!(pd[1].flags().contains(F::HUGE_PAGE));
        assert!(!pd[0].flags().contains(F::HUGE_PAGE));
        assert_eq!(pd[0].addr().as_u64(), spare);
        // Back to private: the same translations as before the split, page for page; a second
        // remap uses the split table and needs no spare.
        remap_4k(&mut mem, root, u64::MAX, b, len, 0).unwrap();
        for (i, was) in before.iter().enumerate() {
            assert_eq!(walk(&mut mem, root, i as u64 * TABLE + 0x18), Some(*was));
        }
    }

    #[test]
    fn remap_4k_refuses_what_it_cannot_do_and_changes_nothing() {
        let mut t = tables(8);
        let (root, spare) = reset_like(&mut t);
        let mut mem = ArrayMemory {
            tables: &mut t,
            base: BASE,
        };
        for (b, len, alias, sp) in [
            (0x1B_0000, 0, SHARED, spare),                   // empty
            (0x1B_0800, 0x1000, SHARED, spare),              // unaligned
            (0x1F_F000, 0x2000, SHARED, spare),              // crosses 2 MiB
            (0x1B_0000, 0x1000, SHARED | 1, spare),          // not one bit
            (0x1B_0000, 0x1000, 0x1000, spare),              // below 4 GiB
            (0x1B_0000, 0x1000, 1 << 52, spare),             // past 52 bits
            (SHARED, 0x1000, SHARED, spare),                 // not below the alias
            (0x1_2000_0000, 0x1000, SHARED, spare),          // not mapped (above 4 GiB)
            (0x1B_0000, 0x1000, SHARED, BASE + 100 * TABLE), // spare outside
            (u64::MAX - 0xFFF, 0x1000, SHARED, spare),       // wraps/out of range
        ] {
            assert!(
                matches!(
                    remap_4k(&mut mem, root, sp, b, len, alias),
                    Err(PagingError::Remap { .. })
                ),
                "{b:#x}+{len:#x} alias {alias:#x}"
            );
        }
        for i in 0..2048u64 {
            let va = i * LARGE_PAGE + 0x1234;
            assert_eq!(walk(&mut mem, root, va).map(|w| w.0), Some(va));
        }
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
    fn a_leaf_mask_marks_every_leaf_and_nothing_else() {
        let mut t = tables(16);
        let mut m = IdentityMapper::new(&mut t, 0x40_0000).unwrap();
        m.set_leaf_mask(1 << 51).unwrap();
        let space = AddressSpace {
            ram_top: 6 * GIB,
            code: (0x20_0000, 0x20_0000),
            image: (0xFF00_0000, 0x100_0000),
            payload: (0x100_0000, 0x200_0000),
            low_memory_exec: false,
        };
        map_firmware_address_space(&mut m, &space, true).unwrap();
        for va in [0x1000u64, 0x20_1000, 0xFFFF_FFF0, 5 * GIB + 0x123] {
            assert_eq!(m.translate(va).unwrap().0, va | 1 << 51, "{va:#x}");
        }
        // Non-leaf entries point at the tables themselves, unmasked.
        let mut mem = ArrayMemory {
            tables: &mut t,
            base: 0x40_0000,
        };
        let pml4 = mem.table(0x40_0000).unwrap()[0].addr().as_u64();
        assert_eq!(pml4 & (1 << 51), 0);
        // And the 4 KiB remap keeps the mask of a split page: private stays private.
        let mut t = tables(16);
        let mut m = IdentityMapper::new(&mut t, 0x40_0000).unwrap();
        m.set_leaf_mask(1 << 51).unwrap();
        m.map(0, 4 * GIB, F::WRITABLE).unwrap();
        let spare = 0x40_0000 + m.tables_used() as u64 * TABLE;
        let mut mem = ArrayMemory {
            tables: &mut t,
            base: 0x40_0000,
        };
        // SNP: the GHCB page shared (no C-bit), its neighbours private as before.
        remap_4k(&mut mem, 0x40_0000, spare, 0x18_B000, 0x1000, 0).unwrap();
        assert_eq!(walk(&mut mem, 0x40_0000, 0x18_B008).unwrap().0, 0x18_B008);
        assert_eq!(
            walk(&mut mem, 0x40_0000, 0x18_A008).unwrap().0,
            0x18_A008 | 1 << 51
        );
        // The mapper's own remap: the GHCB page shared in the firmware's final tables.
        let mut t = tables(16);
        let mut m = IdentityMapper::new(&mut t, 0x40_0000).unwrap();
        m.set_leaf_mask(1 << 51).unwrap();
        m.map(0, 4 * GIB, F::WRITABLE).unwrap();
        let before = m.tables_used();
        m.remap_4k(0x18_B000, 0x1000, 0).unwrap();
        assert_eq!(m.tables_used(), before + 1, "one table for the split");
        assert_eq!(m.translate_4k(0x18_B010), Some(0x18_B010));
        assert_eq!(m.translate_4k(0x18_C010), Some(0x18_C010 | 1 << 51));
        assert_eq!(m.translate_4k(0x20_0010), Some(0x20_0010 | 1 << 51));
        // Refused: not one bit, or below 4 GiB; ranges at or above the mask bit.
        let mut t = tables(4);
        let mut m = IdentityMapper::new(&mut t, 0).unwrap();
        assert!(m.set_leaf_mask(3 << 40).is_err());
        assert!(m.set_leaf_mask(1 << 31).is_err());
        assert!(m.set_leaf_mask(1 << 52).is_err());
        m.set_leaf_mask(1 << 40).unwrap();
        assert_eq!(
            m.map(1 << 40, LARGE_PAGE, F::empty()),
            Err(PagingError::OutOfRange {
                base: 1 << 40,
                size: LARGE_PAGE
            })
        );
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
