//! The guest memory map: read from the VMM (untrusted), checked, then carved by the firmware
//! for what it keeps (its working memory, the payload) before it is handed on.

use alloc::vec::Vec;
use core::fmt;
use td_layout::handoff::{MemoryMapEntry, E820_RAM, E820_RESERVED};
use td_layout::layout::{PAGE_SIZE, TEMP_MEM};
use zerocopy::FromBytes;

/// Bytes of one E820 record (`base u64, length u64, type u32`, little-endian).
pub const E820_ENTRY_SIZE: usize = 20;
/// Most records accepted from the VMM.
pub const MAX_VMM_ENTRIES: usize = 128;
/// Highest guest-physical address plus one that x86-64 can have (52-bit MAXPHYADDR).
pub const MAX_PHYS_ADDR: u64 = 1 << 52;

/// One range of the map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryRange {
    /// First address.
    pub base: u64,
    /// Length in bytes, never zero.
    pub length: u64,
    /// E820 type.
    pub kind: u32,
}

impl MemoryRange {
    /// One past the last address (never overflows: checked on construction).
    pub fn end(&self) -> u64 {
        self.base + self.length
    }
}

/// Why a memory map was refused or could not be carved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryMapError {
    /// The E820 data is not a whole number of 20-byte records.
    BadLength(usize),
    /// No records, or more than [`MAX_VMM_ENTRIES`].
    BadEntryCount(usize),
    /// Record `index` has length 0.
    EmptyEntry {
        /// Record index as given.
        index: usize,
    },
    /// Record `index` runs past [`MAX_PHYS_ADDR`] or wraps.
    EntryOutOfRange {
        /// Record index as given.
        index: usize,
    },
    /// Two records overlap.
    Overlap {
        /// Base of the later record.
        base: u64,
    },
    /// No usable RAM at all.
    NoRam,
    /// A range the firmware needs as RAM is not RAM in the VMM's map.
    NotRam {
        /// What the firmware wanted there.
        what: &'static str,
        /// Its first address.
        base: u64,
        /// Its length.
        length: u64,
    },
    /// The map has more ranges than the caller's buffer holds.
    TooManyRanges,
    /// The VMM declares RAM over something that cannot be RAM: the firmware image or the
    /// local/IO APIC windows.
    RamOverReserved {
        /// What is there.
        what: &'static str,
        /// Base of the offending RAM record.
        base: u64,
    },
}

/// Address windows no RAM record may cover: the image (it ends at 4 GiB) and the APICs' MMIO.
pub const NEVER_RAM: [(&str, u64, u64); 3] = [
    (
        "the firmware image",
        td_layout::layout::IMAGE_BASE,
        td_layout::layout::FOUR_GIB,
    ),
    ("the IOAPIC window", 0xFEC0_0000, 0xFEC0_1000),
    ("the local APIC window", 0xFEE0_0000, 0xFEE0_1000),
];

impl fmt::Display for MemoryMapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadLength(n) => write!(
                f,
                "memory map: {n} bytes is not a whole number of 20-byte E820 records"
            ),
            Self::BadEntryCount(n) => {
                write!(f, "memory map: {n} records (must be 1..={MAX_VMM_ENTRIES})")
            }
            Self::EmptyEntry { index } => write!(f, "memory map: record {index} has length 0"),
            Self::EntryOutOfRange { index } => write!(
                f,
                "memory map: record {index} runs past the 52-bit physical address space"
            ),
            Self::Overlap { base } => write!(f, "memory map: records overlap at {base:#x}"),
            Self::NoRam => write!(f, "memory map: no usable RAM"),
            Self::NotRam { what, base, length } => write!(
                f,
                "memory map: {what} [{base:#x}, {:#x}) is not RAM",
                base.saturating_add(*length)
            ),
            Self::TooManyRanges => write!(f, "memory map: too many ranges for the hand-off"),
            Self::RamOverReserved { what, base } => write!(
                f,
                "memory map: the RAM record at {base:#x} covers {what}, which cannot be RAM"
            ),
        }
    }
}

/// A sorted, non-overlapping list of memory ranges.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemoryMap {
    ranges: Vec<MemoryRange>,
}

impl MemoryMap {
    /// Parses and checks E820 records as the VMM gave them (fw_cfg `etc/e820`): every record
    /// non-empty and inside the 52-bit address space, none overlapping, at least one RAM record.
    /// Records may come in any order; the map is sorted.
    pub fn from_e820_bytes(bytes: &[u8]) -> Result<Self, MemoryMapError> {
        if !bytes.len().is_multiple_of(E820_ENTRY_SIZE) {
            return Err(MemoryMapError::BadLength(bytes.len()));
        }
        let count = bytes.len() / E820_ENTRY_SIZE;
        if count == 0 || count > MAX_VMM_ENTRIES {
            return Err(MemoryMapError::BadEntryCount(count));
        }
        let mut ranges = Vec::with_capacity(count);
        let records = <[MemoryMapEntry]>::ref_from_bytes(bytes)
            .map_err(|_| MemoryMapError::BadLength(bytes.len()))?;
        for (index, rec) in records.iter().enumerate() {
            let (base, length, kind) = (rec.base, rec.length, rec.kind);
            if length == 0 {
                return Err(MemoryMapError::EmptyEntry { index });
            }
            match base.checked_add(length) {
                Some(end) if end <= MAX_PHYS_ADDR => {}
                _ => return Err(MemoryMapError::EntryOutOfRange { index }),
            }
            ranges.push(MemoryRange { base, length, kind });
        }
        ranges.sort_unstable_by_key(|r| r.base);
        for pair in ranges.windows(2) {
            if pair[0].end() > pair[1].base {
                return Err(MemoryMapError::Overlap { base: pair[1].base });
            }
        }
        if !ranges.iter().any(|r| r.kind == E820_RAM) {
            return Err(MemoryMapError::NoRam);
        }
        for r in ranges.iter().filter(|r| r.kind == E820_RAM) {
            if let Some(&(what, _, _)) = NEVER_RAM
                .iter()
                .find(|&&(_, b, e)| r.base < e && b < r.end())
            {
                return Err(MemoryMapError::RamOverReserved { what, base: r.base });
            }
        }
        Ok(MemoryMap { ranges })
    }

    /// The ranges, sorted by base.
    pub fn ranges(&self) -> &[MemoryRange] {
        &self.ranges
    }

    /// Usable RAM ranges.
    pub fn ram(&self) -> impl DoubleEndedIterator<Item = &MemoryRange> + '_ {
        self.ranges.iter().filter(|r| r.kind == E820_RAM)
    }

    /// One past the highest RAM address (0 if there is none).
    pub fn ram_top(&self) -> u64 {
        self.ram().map(|r| r.end()).max().unwrap_or(0)
    }

    /// Total bytes of usable RAM.
    pub fn ram_bytes(&self) -> u64 {
        self.ram().map(|r| r.length).sum()
    }

    /// Whether `[base, base + length)` is wholly usable RAM.
    pub fn is_ram(&self, base: u64, length: u64) -> bool {
        let Some(end) = base.checked_add(length) else {
            return false;
        };
        let mut at = base;
        for r in self.ram() {
            if r.base <= at && at < r.end() {
                at = r.end();
                if at >= end {
                    return true;
                }
            }
        }
        length == 0
    }

    /// Marks `[base, base + length)`, which must be usable RAM, as `kind`.
    pub fn carve(
        &mut self,
        what: &'static str,
        base: u64,
        length: u64,
        kind: u32,
    ) -> Result<(), MemoryMapError> {
        if length == 0 {
            return Ok(());
        }
        if !self.is_ram(base, length) {
            return Err(MemoryMapError::NotRam { what, base, length });
        }
        self.retype(base, length, E820_RAM, kind);
        Ok(())
    }

    /// Marks whatever RAM lies in `[base, base + length)` as `kind`, leaving other ranges as
    /// they are (for holes that may or may not be RAM, like the legacy BIOS area).
    pub fn retype_ram_within(&mut self, base: u64, length: u64, kind: u32) {
        let end = base.saturating_add(length);
        let parts: Vec<(u64, u64)> = self
            .ram()
            .filter(|r| r.base < end && base < r.end())
            .map(|r| (r.base.max(base), r.end().min(end)))
            .collect();
        for (b, e) in parts {
            self.retype(b, e - b, E820_RAM, kind);
        }
    }

    /// Gives reserved memory in `[base, base + length)` back as usable RAM: for firmware working
    /// memory the next stage does not need. Ranges of other kinds are left as they are.
    pub fn release(&mut self, base: u64, length: u64) {
        if base.checked_add(length).is_some() {
            self.retype(base, length, E820_RESERVED, E820_RAM);
        }
    }

    // Splits the ranges of kind `from` covering [base, base + length) so that part becomes `to`.
    // Callers ensure the span does not overflow.
    fn retype(&mut self, base: u64, length: u64, from: u32, to: u32) {
        let end = base + length;
        let mut out = Vec::with_capacity(self.ranges.len() + 2);
        for r in self.ranges.iter().copied() {
            if r.kind != from || r.end() <= base || end <= r.base {
                out.push(r);
                continue;
            }
            if r.base < base {
                out.push(MemoryRange {
                    base: r.base,
                    length: base - r.base,
                    kind: r.kind,
                });
            }
            let (b, e) = (r.base.max(base), r.end().min(end));
            out.push(MemoryRange {
                base: b,
                length: e - b,
                kind: to,
            });
            if end < r.end() {
                out.push(MemoryRange {
                    base: end,
                    length: r.end() - end,
                    kind: r.kind,
                });
            }
        }
        // Merge neighbours of the same kind so the map stays minimal.
        let mut merged: Vec<MemoryRange> = Vec::with_capacity(out.len());
        for r in out {
            match merged.last_mut() {
                Some(last) if last.kind == r.kind && last.end() == r.base => {
                    last.length += r.length;
                }
                _ => merged.push(r),
            }
        }
        self.ranges = merged;
    }

    /// Writes the map as E820 records into `out`, returning how many were written.
    pub fn write_entries(&self, out: &mut [MemoryMapEntry]) -> Result<usize, MemoryMapError> {
        if self.ranges.len() > out.len() {
            return Err(MemoryMapError::TooManyRanges);
        }
        for (slot, r) in out.iter_mut().zip(&self.ranges) {
            *slot = MemoryMapEntry {
                base: r.base,
                length: r.length,
                kind: r.kind,
            };
        }
        Ok(self.ranges.len())
    }
}

/// Reserves what the firmware keeps: the legacy BIOS area, and the firmware's working memory
/// ([`td_layout::layout::TEMP_MEM`]), which must be RAM.
pub fn carve_firmware_regions(map: &mut MemoryMap) -> Result<(), MemoryMapError> {
    use td_layout::layout::{LEGACY_HOLE, TEMP_MEM};
    map.retype_ram_within(LEGACY_HOLE.base, LEGACY_HOLE.size, E820_RESERVED);
    map.carve(TEMP_MEM.name, TEMP_MEM.base, TEMP_MEM.size, E820_RESERVED)
}

/// A range as `(base, length)`, if not empty.
pub type Piece = Option<(u64, u64)>;

/// `[base, end)` split at `limit`: the part below and the part at or above it.
pub fn split_at(base: u64, end: u64, limit: u64) -> (Piece, Piece) {
    let low_end = end.min(limit);
    let high_base = base.max(limit);
    (
        (low_end > base).then(|| (base, low_end - base)),
        (end > high_base).then(|| (high_base, end - high_base)),
    )
}

/// The bookkeeping of the firmware's RAM arena: which usable RAM below 4 GiB has been handed
/// out. It never hands out page 0 (a null pointer to Rust), memory above 4 GiB (not mapped
/// before the firmware's own page tables), an empty range, or anything twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeAllocator {
    usable: Vec<(u64, u64)>,
    taken: Vec<(u64, u64)>,
}

impl RangeAllocator {
    /// An allocator over `map`'s usable RAM.
    pub fn new(map: &MemoryMap) -> Self {
        RangeAllocator {
            usable: map.ram().map(|r| (r.base, r.end())).collect(),
            taken: Vec::new(),
        }
    }

    /// Claims `[base, base + len)`; `None` if it is not wholly usable RAM in `[4 KiB, 4 GiB)`,
    /// is empty, or overlaps a range claimed before.
    pub fn take(&mut self, base: u64, len: u64) -> Option<(u64, u64)> {
        let end = base.checked_add(len)?;
        let inside = self.usable.iter().any(|&(b, e)| b <= base && end <= e);
        let free = self.taken.iter().all(|&(b, e)| end <= b || e <= base);
        if len == 0 || base < PAGE_SIZE || end > td_layout::layout::FOUR_GIB || !inside || !free {
            return None;
        }
        self.taken.push((base, end));
        Some((base, len))
    }
}

/// The firmware memory still in use when Linux is entered, kept reserved in the map Linux gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InUseAtHandoff {
    /// `.data`/`.bss` (the IDT and GDT pointers Linux inherits) and the stack: `[FW_DATA, FW_STACK)`.
    pub data_and_stack: (u64, u64),
    /// The firmware code that runs the hand-off itself.
    pub code: (u64, u64),
    /// The page tables CR3 points at on entry.
    pub page_tables: (u64, u64),
    /// The zero page and command line, and the event log (kept for the OS).
    pub handoff_and_log: (u64, u64),
}

/// Gives Linux back the firmware's working memory ([`TEMP_MEM`]) except what is still in use at
/// entry (`keep`): everything else in TEMP_MEM becomes RAM again.
pub fn release_for_linux(map: &mut MemoryMap, keep: &InUseAtHandoff) {
    let mut kept = [
        keep.data_and_stack,
        keep.code,
        keep.page_tables,
        keep.handoff_and_log,
    ]
    .map(|(b, l)| {
        let start = b & !(PAGE_SIZE - 1);
        let end = b.saturating_add(l).div_ceil(PAGE_SIZE) * PAGE_SIZE;
        (start, end)
    });
    kept.sort_unstable();
    let mut at = TEMP_MEM.base;
    for (b, e) in kept {
        let b = b.clamp(TEMP_MEM.base, TEMP_MEM.end());
        let e = e.clamp(TEMP_MEM.base, TEMP_MEM.end());
        if b > at {
            map.release(at, b - at);
        }
        at = at.max(e);
    }
    if TEMP_MEM.end() > at {
        map.release(at, TEMP_MEM.end() - at);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn split_at_a_limit() {
        const G4: u64 = 1 << 32;
        assert_eq!(split_at(0, 0x8000_0000, G4), (Some((0, 0x8000_0000)), None));
        assert_eq!(split_at(G4, G4 + 0x1000, G4), (None, Some((G4, 0x1000))));
        assert_eq!(
            split_at(0xC000_0000, G4 + 0x2000, G4),
            (Some((0xC000_0000, 0x4000_0000)), Some((G4, 0x2000)))
        );
        assert_eq!(split_at(5, 5, G4), (None, None));
        assert_eq!(split_at(0, u64::MAX, u64::MAX), (Some((0, u64::MAX)), None));
    }
    use proptest::prelude::*;
    use std::vec;

    fn e820(records: &[(u64, u64, u32)]) -> std::vec::Vec<u8> {
        let mut v = vec![];
        for (b, l, t) in records {
            v.extend_from_slice(&b.to_le_bytes());
            v.extend_from_slice(&l.to_le_bytes());
            v.extend_from_slice(&t.to_le_bytes());
        }
        v
    }

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    #[test]
    fn qemu_q35_5g_map_is_accepted_and_carved() {
        // What QEMU q35 gives for -m 5G: 2 GiB below the hole, 3 GiB above 4 GiB.
        let bytes = e820(&[(4 * GIB, 3 * GIB, 1), (0, 2 * GIB, 1)]);
        let mut map = MemoryMap::from_e820_bytes(&bytes).unwrap();
        assert_eq!(map.ram_top(), 7 * GIB);
        assert_eq!(map.ram_bytes(), 5 * GIB);
        carve_firmware_regions(&mut map).unwrap();
        let kinds: std::vec::Vec<_> = map
            .ranges()
            .iter()
            .map(|r| (r.base, r.length, r.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                (0, 0xA_0000, 1),
                (0xA_0000, 0x76_0000, 2), // legacy hole and temp-mem merged
                (0x80_0000, 2 * GIB - 0x80_0000, 1),
                (4 * GIB, 3 * GIB, 1),
            ]
        );
    }

    #[test]
    fn every_rule_has_its_error() {
        assert_eq!(
            MemoryMap::from_e820_bytes(&[0u8; 19]).unwrap_err(),
            MemoryMapError::BadLength(19)
        );
        assert_eq!(
            MemoryMap::from_e820_bytes(&[]).unwrap_err(),
            MemoryMapError::BadEntryCount(0)
        );
        assert_eq!(
            MemoryMap::from_e820_bytes(&vec![0u8; 20 * 129]).unwrap_err(),
            MemoryMapError::BadEntryCount(129)
        );
        assert_eq!(
            MemoryMap::from_e820_bytes(&e820(&[(0, 0, 1)])).unwrap_err(),
            MemoryMapError::EmptyEntry { index: 0 }
        );
        assert_eq!(
            MemoryMap::from_e820_bytes(&e820(&[(u64::MAX, 2, 1)])).unwrap_err(),
            MemoryMapError::EntryOutOfRange { index: 0 }
        );
        assert_eq!(
            MemoryMap::from_e820_bytes(&e820(&[(MAX_PHYS_ADDR - 1, 2, 1)])).unwrap_err(),
            MemoryMapError::EntryOutOfRange { index: 0 }
        );
        assert_eq!(
            MemoryMap::from_e820_bytes(&e820(&[(0, 2 * MIB, 1), (MIB, 2 * MIB, 2)])).unwrap_err(),
            MemoryMapError::Overlap { base: MIB }
        );
        assert_eq!(
            MemoryMap::from_e820_bytes(&e820(&[(0, MIB, 2)])).unwrap_err(),
            MemoryMapError::NoRam
        );
    }

    #[test]
    fn firmware_memory_must_be_ram() {
        // 4 MiB of RAM: temp-mem (1..8 MiB) is not covered.
        let mut map = MemoryMap::from_e820_bytes(&e820(&[(0, 4 * MIB, 1)])).unwrap();
        assert!(matches!(
            carve_firmware_regions(&mut map),
            Err(MemoryMapError::NotRam {
                what: "temp-mem",
                ..
            })
        ));
        // RAM with a reserved hole inside temp-mem is refused too.
        let mut map = MemoryMap::from_e820_bytes(&e820(&[
            (0, 2 * MIB, 1),
            (2 * MIB, MIB, 2),
            (3 * MIB, 125 * MIB, 1),
        ]))
        .unwrap();
        assert!(carve_firmware_regions(&mut map).is_err());
    }

    #[test]
    fn release_gives_back_only_reserved_memory() {
        let mut map =
            MemoryMap::from_e820_bytes(&e820(&[(0, 128 * MIB, 1), (128 * MIB, MIB, 2)])).unwrap();
        carve_firmware_regions(&mut map).unwrap();
        let before = map.ram_bytes();
        // Release temp-mem [1 MiB, 8 MiB) but a 64 KiB hand-off block at 0x190000.
        map.release(MIB, 0x9_0000);
        map.release(0x1A_0000, 8 * MIB - 0x1A_0000);
        assert_eq!(map.ram_bytes(), before + 7 * MIB - 0x1_0000);
        assert!(map.ranges().contains(&MemoryRange {
            base: 128 * MIB,
            length: MIB,
            kind: 2
        }));
        let kinds: std::vec::Vec<_> = map.ranges().iter().map(|r| (r.base, r.kind)).collect();
        assert!(kinds.contains(&(0xA_0000, 2)), "legacy hole kept");
        assert!(kinds.contains(&(MIB + 0x9_0000, 2)), "hand-off kept");
    }

    #[test]
    fn carve_splits_and_write_entries_bounds() {
        let mut map = MemoryMap::from_e820_bytes(&e820(&[(0, 128 * MIB, 1)])).unwrap();
        map.carve("x", 16 * MIB, MIB, 2).unwrap();
        assert_eq!(map.ranges().len(), 3);
        assert_eq!(map.ram_bytes(), 127 * MIB);
        let mut out = [MemoryMapEntry {
            base: 0,
            length: 0,
            kind: 0,
        }; 2];
        assert_eq!(
            map.write_entries(&mut out),
            Err(MemoryMapError::TooManyRanges)
        );
        let mut out = [out[0]; 3];
        assert_eq!(map.write_entries(&mut out), Ok(3));
        assert_eq!({ out[1].base }, 16 * MIB);
        assert!(map.carve("y", 127 * MIB, 2 * MIB, 2).is_err());
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(mut map) = MemoryMap::from_e820_bytes(&bytes) {
                let _ = carve_firmware_regions(&mut map);
                // Whatever was accepted stays sorted and disjoint.
                for pair in map.ranges().windows(2) {
                    prop_assert!(pair[0].end() <= pair[1].base);
                }
            }
        }

        #[test]
        fn carving_keeps_the_total(records in proptest::collection::vec((0u64..64, 1u64..16, 1u32..3), 1..8),
                                   cut in (0u64..1024, 1u64..64)) {
            // Records in MiB units, made disjoint by placing them one after another.
            let mut at = 0;
            let mut recs = vec![];
            for (gap, len, kind) in records {
                at += gap * MIB;
                recs.push((at, len * MIB, kind));
                at += len * MIB;
            }
            let Ok(mut map) = MemoryMap::from_e820_bytes(&e820(&recs)) else { return Ok(()); };
            let total: u64 = map.ranges().iter().map(|r| r.length).sum();
            let _ = map.carve("cut", cut.0 * MIB / 4, cut.1 * MIB / 4, 2);
            let after: u64 = map.ranges().iter().map(|r| r.length).sum();
            prop_assert_eq!(total, after);
        }
    }

    #[test]
    fn ram_over_the_image_or_the_apics_is_refused() {
        let low = (0u64, 0x800_0000u64, E820_RAM);
        for (base, what) in [
            (0xFF00_0000u64, "the firmware image"),
            (0xFFFF_F000, "the firmware image"),
            (0xFEC0_0000, "the IOAPIC window"),
            (0xFEE0_0000, "the local APIC window"),
        ] {
            let err = MemoryMap::from_e820_bytes(&e820(&[low, (base, 0x1000, E820_RAM)]));
            assert_eq!(err, Err(MemoryMapError::RamOverReserved { what, base }));
        }
        // Reserved records there are what QEMU gives, and fine.
        assert!(MemoryMap::from_e820_bytes(&e820(&[low, (0xFEC0_0000, 0x1000, 2)])).is_ok());
    }

    #[test]
    fn the_allocator_never_hands_out_page_zero_twice_or_above_4g() {
        let map = MemoryMap::from_e820_bytes(&e820(&[
            (0, 0x9_FC00, E820_RAM),
            (0x10_0000, 0x7FF0_0000, E820_RAM),
            (0x1_0000_0000, 0x4000_0000, E820_RAM),
        ]))
        .unwrap();
        let mut a = RangeAllocator::new(&map);
        // Page 0 would be a null pointer: refused whatever the map says (issue: UB in take(0)).
        assert_eq!(a.take(0, 0x1000), None);
        assert_eq!(a.take(0x800, 0x1000), None);
        assert_eq!(a.take(0x1000, 0x1000), Some((0x1000, 0x1000)));
        assert_eq!(a.take(0x1000, 0x1000), None, "taken twice");
        assert_eq!(a.take(0x2000, 0), None, "empty");
        assert_eq!(
            a.take(0x9_F000, 0x1000),
            None,
            "past the end of the RAM record"
        );
        assert_eq!(a.take(0x1_0000_0000, 0x1000), None, "above 4 GiB");
        assert_eq!(a.take(u64::MAX - 10, 100), None, "wraps");
        assert_eq!(a.take(0x20_0000, 0x1000), Some((0x20_0000, 0x1000)));
    }

    #[test]
    fn linux_gets_back_only_what_the_firmware_no_longer_uses() {
        use td_layout::layout::{FW_DATA, FW_STACK};
        let mut map = MemoryMap::from_e820_bytes(&e820(&[(0, 0x1000_0000, E820_RAM)])).unwrap();
        carve_firmware_regions(&mut map).unwrap();
        let keep = InUseAtHandoff {
            data_and_stack: (FW_DATA.base, FW_STACK.end() - FW_DATA.base),
            code: (0x20_0000, 0xA123),
            page_tables: (0x40_0000, 0x6000),
            handoff_and_log: (0x19_0000, 0x2_0000),
        };
        release_for_linux(&mut map, &keep);
        let kind_at = |a: u64| {
            map.ranges()
                .iter()
                .find(|r| r.base <= a && a < r.end())
                .unwrap()
                .kind
        };
        for in_use in [
            FW_DATA.base,
            FW_STACK.end() - 8,
            0x20_A000,
            0x40_5FF8,
            0x19_0000,
            0x1A_FFFF,
        ] {
            assert_eq!(
                kind_at(in_use),
                E820_RESERVED,
                "{in_use:#x} is in use at entry"
            );
        }
        for free in [0x18_0000, 0x1B_0000, 0x20_B000, 0x40_6000, 0x7F_F000] {
            assert_eq!(kind_at(free), E820_RAM, "{free:#x} is free at entry");
        }
    }
}
