//! Building the firmware's ACPI tables and adding them to the VMM's: the RSDP (ACPI 6.5 §5.2.5),
//! the common table header (§5.2.6), the RSDT (§5.2.7) and XSDT (§5.2.8), CCEL (§5.2.34).
//!
//! # The RSDP's size
//!
//! The RSDP is the file the table-loader allocated in the F-segment zone, and nothing of it is
//! read or written beyond that file. Its revision decides its layout: below 2 it is the ACPI 1.0
//! structure of 20 bytes (RsdtAddress only); from 2 on it is the 36-byte structure with Length,
//! XsdtAddress and the extended checksum, and the spec's readers (ACPICA, so Linux) then read and
//! check 36 bytes. A revision 2+ RSDP whose file is shorter than 36 bytes, or whose Length is
//! below 36 or reaches past its file, is therefore refused ([`AcpiError::RsdpTooShort`],
//! [`AcpiError::BadRsdpLength`]): treating it as ACPI 1.0 would leave the revision that makes the
//! kernel read bytes outside the file, and the spec gives a reader no rule to downgrade it. The
//! extended checksum covers Length bytes ("the entire table"), 36 for every RSDP QEMU makes.
//!
//! # Which root tables
//!
//! An RSDP names an RSDT (RsdtAddress not 0), an XSDT (revision 2+, XsdtAddress not 0), or both.
//! [`add_tables`] adds the firmware's tables to each one that exists and leaves an absent one
//! absent; an RSDP that names neither is refused.

use super::loader::Extent;
use super::AcpiError;
use alloc::vec::Vec;
use core::ops::Range;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Bytes of an ACPI table header.
pub const HEADER_SIZE: usize = 36;
/// Bytes of an ACPI 1.0 RSDP (revision 0).
pub const RSDP_V1_SIZE: usize = 20;
/// Bytes of an ACPI 2.0+ RSDP (revision 2 and later).
pub const RSDP_V2_SIZE: usize = 36;
/// Room reserved after the VMM's tables for the firmware's own tables (CCEL, RTMR, the MADT
/// extended with the wakeup structure: 16 bytes per x2APIC vCPU, about 4.6 KiB for 288) and the
/// rebuilt RSDT/XSDT.
pub const FIRMWARE_TABLES_ROOM: u64 = 0x1_0000;

/// The ACPI 1.0 part of the RSDP: its first 20 bytes, covered by `checksum`.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct RsdpV1 {
    /// "RSD PTR ".
    pub signature: [u8; 8],
    /// Makes the 20 bytes sum to zero.
    pub checksum: u8,
    /// OEM ID.
    pub oem_id: [u8; 6],
    /// 0 for ACPI 1.0, 2 for ACPI 2.0 and later.
    pub revision: u8,
    /// 32-bit address of the RSDT, 0 if there is none.
    pub rsdt_address: U32,
}

/// The ACPI 2.0+ RSDP (revision 2 and later).
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Rsdp {
    /// The ACPI 1.0 part.
    pub v1: RsdpV1,
    /// Bytes of the whole structure (36).
    pub length: U32,
    /// 64-bit address of the XSDT, 0 if there is none.
    pub xsdt_address: U64,
    /// Makes the whole structure (`length` bytes) sum to zero.
    pub extended_checksum: u8,
    /// Reserved.
    pub reserved: [u8; 3],
}

/// The header every ACPI table but the RSDP starts with.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct SdtHeader {
    /// The table's signature, e.g. "RSDT".
    pub signature: [u8; 4],
    /// Bytes of the table, header included.
    pub length: U32,
    /// The table's revision.
    pub revision: u8,
    /// Makes the whole table sum to zero.
    pub checksum: u8,
    /// OEM ID.
    pub oem_id: [u8; 6],
    /// OEM table ID.
    pub oem_table_id: [u8; 8],
    /// OEM revision.
    pub oem_revision: U32,
    /// Creator ID.
    pub creator_id: [u8; 4],
    /// Creator revision.
    pub creator_revision: U32,
}

/// The body of the CCEL table.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct CcelBody {
    cc_type: u8,
    subtype: u8,
    reserved: U16,
    laml: U64,
    lasa: U64,
}

const _: () = assert!(core::mem::size_of::<RsdpV1>() == RSDP_V1_SIZE);
const _: () = assert!(core::mem::size_of::<Rsdp>() == RSDP_V2_SIZE);
const _: () = assert!(core::mem::size_of::<SdtHeader>() == HEADER_SIZE);
const _: () = assert!(core::mem::size_of::<CcelBody>() == 20);

/// The byte that makes `bytes` sum to zero when added.
fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |a, &b| a.wrapping_add(b)))
}

/// An ACPI table (ACPI 6.5 §5.2.6 header): `signature`, length, `revision`, checksum, OEM ID
/// "TDSHIM", OEM table ID "TD-SHIM ", OEM revision 1, creator "TDSH", creator revision 1, then
/// `body`. The firmware's bodies are small and fixed; a body that would not fit the u32 length
/// is cut at that length.
pub fn table(signature: [u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
    let max_body = u32::MAX as usize - HEADER_SIZE;
    let body = &body[..body.len().min(max_body)];
    let len = HEADER_SIZE + body.len();
    let header = SdtHeader {
        signature,
        length: U32::new(len as u32),
        revision,
        checksum: 0,
        oem_id: *b"TDSHIM",
        oem_table_id: *b"TD-SHIM ",
        oem_revision: U32::new(1),
        creator_id: *b"TDSH",
        creator_revision: U32::new(1),
    };
    let mut t = Vec::with_capacity(len);
    t.extend_from_slice(header.as_bytes());
    t.extend_from_slice(body);
    t[9] = checksum(&t);
    t
}

/// The CCEL table (ACPI 6.5 §5.2.34): CC type (1 SEV, 2 TDX; this firmware uses 0 on a plain VM),
/// subtype, reserved u16, LAML (log area minimum length) u64, LASA (log area start) u64.
pub fn ccel(cc_type: u8, subtype: u8, laml: u64, lasa: u64) -> Vec<u8> {
    let body = CcelBody {
        cc_type,
        subtype,
        reserved: U16::ZERO,
        laml: U64::new(laml),
        lasa: U64::new(lasa),
    };
    table(*b"CCEL", 1, body.as_bytes())
}

/// The table publishing a plain VM's emulated registers: signature "RTMR", body RTMR0..RTMR3,
/// 48 bytes each (docs/measurement.md).
pub fn rtmr_table(registers: &crate::eventlog::Rtmrs) -> Vec<u8> {
    table(*b"RTMR", 1, registers.as_flattened())
}

/// `[at, at + len)` as a range of a region of `limit` bytes, if it lies inside.
fn span(at: u64, len: usize, limit: usize) -> Result<Range<usize>, AcpiError> {
    let start = usize::try_from(at).map_err(|_| AcpiError::BadRootTables)?;
    let end = start.checked_add(len).ok_or(AcpiError::BadRootTables)?;
    if end > limit {
        return Err(AcpiError::BadRootTables);
    }
    Ok(start..end)
}

/// One of the VMM's root tables, and where its rebuilt copy goes.
struct Root {
    /// The old table in the region.
    old: Range<usize>,
    /// Bytes per entry: 4 (RSDT) or 8 (XSDT).
    width: usize,
    /// The new table in the region.
    new: Range<usize>,
    /// For each new table: whether it is appended to this root table (no entry of its
    /// signature to replace).
    append: Vec<bool>,
}

impl Root {
    /// Finds the root table `signature` at guest address `addr` (`base` is the region's), which
    /// must lie in the VMM's part of the region, `[0, vmm_end)`.
    fn find(
        region: &[u8],
        base: u64,
        addr: u64,
        signature: &[u8; 4],
        width: usize,
        vmm_end: usize,
    ) -> Result<(Range<usize>, usize), AcpiError> {
        let off = addr.checked_sub(base).ok_or(AcpiError::BadRootTables)?;
        let head = span(off, HEADER_SIZE, vmm_end)?;
        let (header, _) = SdtHeader::ref_from_prefix(&region[head.clone()])
            .map_err(|_| AcpiError::BadRootTables)?;
        let len = usize::try_from(header.length.get()).map_err(|_| AcpiError::BadRootTables)?;
        if &header.signature != signature
            || len < HEADER_SIZE
            || !(len - HEADER_SIZE).is_multiple_of(width)
        {
            return Err(AcpiError::BadRootTables);
        }
        Ok((span(off, len, vmm_end)?, width))
    }
}

/// The RSDP and the root tables it names, found in the VMM's part of a region.
struct Roots {
    /// The RSDP's bytes (its Length from revision 2, else 20).
    rsdp: Range<usize>,
    /// The RSDT and the XSDT, where present.
    tables: [Option<Root>; 2],
}

impl Roots {
    fn find(region: &[u8], base: u64, rsdp: Extent, vmm_end: usize) -> Result<Self, AcpiError> {
        // The RSDP's bytes are its file's.
        let file_size = rsdp.size;
        let rsdp_off = rsdp
            .addr
            .checked_sub(base)
            .ok_or(AcpiError::BadRootTables)?;
        let file_len = usize::try_from(file_size).map_err(|_| AcpiError::BadRootTables)?;
        let file = span(rsdp_off, file_len, vmm_end)?;
        let too_short = |needed| AcpiError::RsdpTooShort { file_size, needed };
        let (v1, _) =
            RsdpV1::ref_from_prefix(&region[file.clone()]).map_err(|_| too_short(RSDP_V1_SIZE))?;
        if &v1.signature != b"RSD PTR " {
            return Err(AcpiError::BadRootTables);
        }
        let (rsdp_len, rsdt, xsdt) = if v1.revision >= 2 {
            let (v2, _) = Rsdp::ref_from_prefix(&region[file.clone()])
                .map_err(|_| too_short(RSDP_V2_SIZE))?;
            let length = v2.length.get();
            let len = usize::try_from(length)
                .ok()
                .filter(|&l| l >= RSDP_V2_SIZE && l <= file_len)
                .ok_or(AcpiError::BadRsdpLength { length, file_size })?;
            (len, v2.v1.rsdt_address.get(), v2.xsdt_address.get())
        } else {
            (RSDP_V1_SIZE, v1.rsdt_address.get(), 0)
        };
        let mut tables: [Option<Root>; 2] = [None, None];
        for (slot, (addr, signature, width)) in tables
            .iter_mut()
            .zip([(u64::from(rsdt), b"RSDT", 4), (xsdt, b"XSDT", 8)])
        {
            if addr != 0 {
                let (old, width) = Root::find(region, base, addr, signature, width, vmm_end)?;
                *slot = Some(Root {
                    old,
                    width,
                    new: 0..0,
                    append: Vec::new(),
                });
            }
        }
        if tables.iter().all(Option::is_none) {
            return Err(AcpiError::BadRootTables);
        }
        Ok(Roots {
            rsdp: file.start..file.start + rsdp_len,
            tables,
        })
    }
}

impl Root {
    /// The guest addresses this root table lists.
    fn entries<'r>(&self, region: &'r [u8]) -> impl Iterator<Item = u64> + 'r {
        let width = self.width;
        region[self.old.start + HEADER_SIZE..self.old.end]
            .chunks_exact(width)
            .map(move |e| {
                let mut a = [0u8; 8];
                a[..width].copy_from_slice(e);
                u64::from_le_bytes(a)
            })
    }
}

/// The signature of the table at guest address `addr`, if it lies in `region[..vmm_end]`.
fn signature_at(region: &[u8], base: u64, addr: u64, vmm_end: usize) -> Option<[u8; 4]> {
    let off = addr.checked_sub(base)?;
    let r = span(off, 4, vmm_end).ok()?;
    region[r].try_into().ok()
}

/// The bytes (offsets in `region`) of the VMM's table with `signature`, found through the root
/// tables of `rsdp` in the VMM's part of the region, `[0, at)`: the first one listed (XSDT first,
/// then RSDT), with its Length checked against the region. `None` if no root table lists one.
pub fn find_table(
    region: &[u8],
    base: u64,
    rsdp: Extent,
    at: usize,
    signature: &[u8; 4],
) -> Result<Option<Range<usize>>, AcpiError> {
    let vmm_end = at.min(region.len());
    let roots = Roots::find(region, base, rsdp, vmm_end)?;
    for root in roots.tables.iter().rev().flatten() {
        for addr in root.entries(region) {
            if signature_at(region, base, addr, vmm_end).as_ref() != Some(signature) {
                continue;
            }
            let off = addr.checked_sub(base).ok_or(AcpiError::BadRootTables)?;
            let head = span(off, HEADER_SIZE, vmm_end)?;
            let (header, _) =
                SdtHeader::ref_from_prefix(&region[head]).map_err(|_| AcpiError::BadRootTables)?;
            let len = usize::try_from(header.length.get()).map_err(|_| AcpiError::BadRootTables)?;
            if len < HEADER_SIZE {
                return Err(AcpiError::BadRootTables);
            }
            return Ok(Some(span(off, len, vmm_end)?));
        }
    }
    Ok(None)
}

/// Adds `tables` to the linked tables in `region` (at guest address `base`).
///
/// `rsdp` is the RSDP's file as [`link`](super::link) placed it; the RSDP, the RSDT and the
/// XSDT must lie before offset `at`, the VMM's part of the region. From `at` on (8-byte
/// aligned) this writes `tables`, then a copy of each root table the RSDP names (RSDT, XSDT or
/// both) with the new tables' addresses, and finally points the RSDP at the copies and fixes
/// its checksum (and its extended checksum from revision 2). A new table whose signature a
/// root table already lists (the firmware's extended MADT, say) **replaces** that entry; the
/// others are appended. Nothing is written unless everything fits. Returns the guest address of
/// each added table.
pub fn add_tables(
    region: &mut [u8],
    base: u64,
    rsdp: Extent,
    at: usize,
    tables: &[Vec<u8>],
) -> Result<Vec<u64>, AcpiError> {
    let vmm_end = at.min(region.len());
    let Roots {
        rsdp: rsdp_range,
        tables: mut roots,
    } = Roots::find(region, base, rsdp, vmm_end)?;
    let rsdp_len = rsdp_range.len();
    // A new table replaces, in a root table, the entry of a table with its signature; otherwise
    // that root table gets it appended. Decided per root table.
    let sig = |t: &Vec<u8>| -> Option<[u8; 4]> { t.get(..4)?.try_into().ok() };
    // The VMM's root tables may not point into the firmware's room, where the new tables go.
    let room = base.saturating_add(vmm_end as u64)..base.saturating_add(region.len() as u64);
    if roots
        .iter()
        .flatten()
        .any(|root| root.entries(region).any(|a| room.contains(&a)))
    {
        return Err(AcpiError::BadRootTables);
    }
    // How many entries of `root` are tables with `t`'s signature.
    let listed = |root: &Root, t: &Vec<u8>| -> usize {
        match sig(t) {
            Some(s) => root
                .entries(region)
                .filter(|&a| signature_at(region, base, a, vmm_end) == Some(s))
                .count(),
            None => 0,
        }
    };

    // Lay out the new tables and root tables from `at`, checking that all fit.
    let mut cursor = at;
    let mut place = |len: usize| -> Result<Range<usize>, AcpiError> {
        let start = cursor
            .checked_next_multiple_of(8)
            .ok_or(AcpiError::NoRoomForTables)?;
        let end = start
            .checked_add(len)
            .filter(|&e| e <= region.len())
            .ok_or(AcpiError::NoRoomForTables)?;
        cursor = end;
        Ok(start..end)
    };
    let guest = |off: usize| -> Result<u64, AcpiError> {
        u64::try_from(off)
            .ok()
            .and_then(|o| base.checked_add(o))
            .ok_or(AcpiError::TooLarge)
    };
    let mut placed = Vec::with_capacity(tables.len());
    let mut added = Vec::with_capacity(tables.len());
    for t in tables {
        let r = place(t.len())?;
        added.push(guest(r.start)?);
        placed.push(r);
    }
    for root in roots.iter_mut().flatten() {
        root.append = Vec::with_capacity(tables.len());
        for t in tables {
            match listed(root, t) {
                0 => root.append.push(true),
                1 => root.append.push(false),
                // Which one would the new table replace? The OS would see two.
                _ => return Err(AcpiError::DuplicateTable),
            }
        }
        let appended = root.append.iter().filter(|&&a| a).count();
        let len = appended
            .checked_mul(root.width)
            .and_then(|n| n.checked_add(root.old.len()))
            .filter(|&n| u32::try_from(n).is_ok())
            .ok_or(AcpiError::NoRoomForTables)?;
        root.new = place(len)?;
    }
    // Every address an RSDT or the RSDP holds is 32 bits.
    let narrow = |a: u64| u32::try_from(a).map_err(|_| AcpiError::TooLarge);
    if roots[0].is_some() {
        for &a in &added {
            narrow(a)?;
        }
    }
    let new_rsdt = match &roots[0] {
        Some(r) => Some(narrow(guest(r.new.start)?)?),
        None => None,
    };
    let new_xsdt = match &roots[1] {
        Some(r) => Some(guest(r.new.start)?),
        None => None,
    };

    // Everything fits: write.
    for (t, r) in tables.iter().zip(&placed) {
        region[r.clone()].copy_from_slice(t);
    }
    for root in roots.iter().flatten() {
        let old_len = root.old.len();
        region.copy_within(root.old.clone(), root.new.start);
        // Each listed entry keeps its address unless a new table of its signature replaces it.
        // The VMM's part, which the signatures are read from, is below `at` and unchanged.
        let mut slot = root.new.start + HEADER_SIZE;
        while slot + root.width <= root.new.start + old_len {
            let mut a = [0u8; 8];
            a[..root.width].copy_from_slice(&region[slot..slot + root.width]);
            let s = signature_at(region, base, u64::from_le_bytes(a), vmm_end);
            if let Some((_, new)) = tables
                .iter()
                .zip(&added)
                .find(|(t, _)| s.is_some() && sig(t) == s)
            {
                region[slot..slot + root.width].copy_from_slice(&new.to_le_bytes()[..root.width]);
            }
            slot += root.width;
        }
        let appended_at = root.new.start + old_len..root.new.end;
        let new_ones = added
            .iter()
            .zip(&root.append)
            .filter(|(_, &a)| a)
            .map(|(a, _)| a);
        for (slot, a) in region[appended_at]
            .chunks_exact_mut(root.width)
            .zip(new_ones)
        {
            slot.copy_from_slice(&a.to_le_bytes()[..root.width]);
        }
        let table = &mut region[root.new.clone()];
        let (header, _) =
            SdtHeader::mut_from_prefix(table).map_err(|_| AcpiError::BadRootTables)?;
        header.length = U32::new(narrow(root.new.len() as u64)?);
        header.checksum = 0;
        let sum = checksum(table);
        if let Ok((header, _)) = SdtHeader::mut_from_prefix(table) {
            header.checksum = sum;
        }
    }
    // Point the RSDP at the new root tables and fix its checksums.
    let r = &mut region[rsdp_range];
    if let Ok((v1, _)) = RsdpV1::mut_from_prefix(r) {
        if let Some(a) = new_rsdt {
            v1.rsdt_address = U32::new(a);
        }
        v1.checksum = 0;
    }
    if rsdp_len >= RSDP_V2_SIZE {
        if let Ok((v2, _)) = Rsdp::mut_from_prefix(r) {
            if let Some(a) = new_xsdt {
                v2.xsdt_address = U64::new(a);
            }
            v2.extended_checksum = 0;
        }
    }
    let sum = checksum(&r[..RSDP_V1_SIZE]);
    if let Ok((v1, _)) = RsdpV1::mut_from_prefix(r) {
        v1.checksum = sum;
    }
    if rsdp_len >= RSDP_V2_SIZE {
        let sum = checksum(r);
        if let Ok((v2, _)) = Rsdp::mut_from_prefix(r) {
            v2.extended_checksum = sum;
        }
    }
    Ok(added)
}
