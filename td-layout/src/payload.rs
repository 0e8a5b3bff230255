//! The payload table: how the image lists what the firmware boots.
//!
//! The [`IMAGE_PAYLOAD`](crate::layout::IMAGE_PAYLOAD) region starts with one page holding this
//! table; the payloads follow, each at a page-aligned offset from the start of the region.
//!
//! ```text
//! offset  size  field
//! 0x00    8     magic "TDSHPAYL"
//! 0x08    4     version (1)
//! 0x0C    4     entry count n (<= MAX_ENTRIES)
//! 0x10    24*n  entries: kind u32, reserved u32 (0), offset u64, size u64
//! ```
//!
//! All fields are little-endian. The table is untrusted input to the firmware (the VMM or
//! whoever built the image controls it): [`PayloadTable::parse`] checks every field and never
//! panics.

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::footer::{read_at, write_at};
use crate::layout::PAGE_SIZE;

/// Magic at the start of the payload region.
pub const PAYLOAD_TABLE_MAGIC: [u8; 8] = *b"TDSHPAYL";
/// The only version this crate writes and reads.
pub const PAYLOAD_TABLE_VERSION: u32 = 1;
/// Bytes of the table header.
pub const HEADER_SIZE: usize = 16;
/// Bytes of one table entry.
pub const ENTRY_SIZE: usize = 24;
/// Most entries a table may hold.
pub const MAX_ENTRIES: usize = 16;
/// Payload data starts after the table page.
pub const FIRST_PAYLOAD_OFFSET: u64 = PAGE_SIZE;

/// The table header as stored.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct TableHeader {
    /// [`PAYLOAD_TABLE_MAGIC`].
    magic: [u8; 8],
    /// [`PAYLOAD_TABLE_VERSION`].
    version: U32,
    /// Number of entries that follow.
    count: U32,
}

/// One table entry as stored.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct TableEntry {
    /// A [`PayloadKind`] code.
    kind: U32,
    /// Zero.
    reserved: U32,
    /// Offset from the start of the payload region.
    offset: U64,
    /// Size in bytes.
    size: U64,
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<TableHeader>() == HEADER_SIZE);
    assert!(offset_of!(TableHeader, version) == 0x08);
    assert!(offset_of!(TableHeader, count) == 0x0C);
    assert!(size_of::<TableEntry>() == ENTRY_SIZE);
    assert!(offset_of!(TableEntry, reserved) == 4);
    assert!(offset_of!(TableEntry, offset) == 8);
    assert!(offset_of!(TableEntry, size) == 16);
};

/// What a payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKind {
    /// An x86-64 ELF executable, loaded and relocated by the firmware and entered with the
    /// firmware's hand-off (see [`crate::handoff`]).
    Elf,
    /// A Linux bzImage, booted with the Linux 64-bit boot protocol.
    Kernel,
    /// The initrd handed to the kernel.
    Initrd,
    /// The kernel command line, without a terminating NUL.
    Cmdline,
}

impl PayloadKind {
    /// The value stored in the table.
    pub const fn code(self) -> u32 {
        match self {
            PayloadKind::Elf => 1,
            PayloadKind::Kernel => 2,
            PayloadKind::Initrd => 3,
            PayloadKind::Cmdline => 4,
        }
    }

    /// The kind stored as `code`, if known.
    pub const fn from_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(PayloadKind::Elf),
            2 => Some(PayloadKind::Kernel),
            3 => Some(PayloadKind::Initrd),
            4 => Some(PayloadKind::Cmdline),
            _ => None,
        }
    }

    /// Name used in logs and tool output.
    pub const fn name(self) -> &'static str {
        match self {
            PayloadKind::Elf => "elf",
            PayloadKind::Kernel => "kernel",
            PayloadKind::Initrd => "initrd",
            PayloadKind::Cmdline => "cmdline",
        }
    }
}

/// Why a payload table was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadTableError {
    /// The region is smaller than the table page.
    RegionTooSmall,
    /// The first 8 bytes are not [`PAYLOAD_TABLE_MAGIC`].
    BadMagic,
    /// Unknown table version.
    UnsupportedVersion(u32),
    /// No entries, or more than [`MAX_ENTRIES`].
    BadEntryCount(u32),
    /// Entry `index` has an unknown kind.
    UnknownKind {
        /// Entry index in the table.
        index: usize,
        /// The kind code stored.
        code: u32,
    },
    /// Entry `index` has non-zero reserved bits.
    ReservedNotZero {
        /// Entry index in the table.
        index: usize,
    },
    /// Entry `index` is empty.
    EmptyPayload {
        /// Entry index in the table.
        index: usize,
    },
    /// Entry `index` starts inside the table page or not on a page boundary.
    MisplacedPayload {
        /// Entry index in the table.
        index: usize,
    },
    /// Entry `index` runs past the end of the region.
    PayloadOutOfBounds {
        /// Entry index in the table.
        index: usize,
    },
    /// Entries `first` and `second` overlap.
    Overlap {
        /// The earlier entry.
        first: usize,
        /// The later entry.
        second: usize,
    },
    /// Two entries of the same kind.
    DuplicateKind {
        /// Entry index in the table.
        index: usize,
    },
    /// The payloads given to [`write_payload_table`] do not fit in the region.
    DoesNotFit {
        /// Bytes the payloads need, from the region start.
        needed: u64,
        /// Bytes the region holds.
        available: u64,
    },
}

impl core::fmt::Display for PayloadTableError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::RegionTooSmall => write!(f, "payload region is smaller than its table page"),
            Self::BadMagic => write!(f, "payload table magic is not \"TDSHPAYL\""),
            Self::UnsupportedVersion(v) => write!(f, "payload table version {v} is not supported"),
            Self::BadEntryCount(n) => {
                write!(
                    f,
                    "payload table has {n} entries (must be 1..={MAX_ENTRIES})"
                )
            }
            Self::UnknownKind { index, code } => {
                write!(f, "payload entry {index} has unknown kind {code}")
            }
            Self::ReservedNotZero { index } => {
                write!(f, "payload entry {index} has non-zero reserved bits")
            }
            Self::EmptyPayload { index } => write!(f, "payload entry {index} is empty"),
            Self::MisplacedPayload { index } => write!(
                f,
                "payload entry {index} does not start on a page after the table"
            ),
            Self::PayloadOutOfBounds { index } => {
                write!(f, "payload entry {index} runs past the payload region")
            }
            Self::Overlap { first, second } => {
                write!(f, "payload entries {first} and {second} overlap")
            }
            Self::DuplicateKind { index } => {
                write!(
                    f,
                    "payload entry {index} repeats the kind of an earlier entry"
                )
            }
            Self::DoesNotFit { needed, available } => write!(
                f,
                "payloads need {needed} bytes but the payload region holds {available}"
            ),
        }
    }
}

/// One validated table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadEntry {
    /// What the payload is.
    pub kind: PayloadKind,
    /// Offset from the start of the payload region.
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
}

/// A validated payload table over the bytes of the payload region.
#[derive(Debug, Clone, Copy)]
pub struct PayloadTable<'a> {
    region: &'a [u8],
    entries: [Option<PayloadEntry>; MAX_ENTRIES],
    count: usize,
}

impl<'a> PayloadTable<'a> {
    /// Parses and validates the table at the start of `region` (the payload region's bytes).
    pub fn parse(region: &'a [u8]) -> Result<Self, PayloadTableError> {
        // The table page holds the header and MAX_ENTRIES entries, so once the region is a page
        // long the reads below cannot fail; they are bounds-checked all the same.
        const _: () = assert!(HEADER_SIZE + MAX_ENTRIES * ENTRY_SIZE <= PAGE_SIZE as usize);
        if region.len() < PAGE_SIZE as usize {
            return Err(PayloadTableError::RegionTooSmall);
        }
        let header = read_at::<TableHeader>(region, 0).ok_or(PayloadTableError::RegionTooSmall)?;
        if header.magic != PAYLOAD_TABLE_MAGIC {
            return Err(PayloadTableError::BadMagic);
        }
        let version = header.version.get();
        if version != PAYLOAD_TABLE_VERSION {
            return Err(PayloadTableError::UnsupportedVersion(version));
        }
        let count = header.count.get();
        if count == 0 || count as usize > MAX_ENTRIES {
            return Err(PayloadTableError::BadEntryCount(count));
        }
        let count = count as usize;
        let region_len = region.len() as u64;
        let mut entries: [Option<PayloadEntry>; MAX_ENTRIES] = [None; MAX_ENTRIES];
        for index in 0..count {
            let at = HEADER_SIZE + index * ENTRY_SIZE;
            let stored =
                read_at::<TableEntry>(region, at).ok_or(PayloadTableError::RegionTooSmall)?;
            let code = stored.kind.get();
            let kind = PayloadKind::from_code(code)
                .ok_or(PayloadTableError::UnknownKind { index, code })?;
            if stored.reserved.get() != 0 {
                return Err(PayloadTableError::ReservedNotZero { index });
            }
            let offset = stored.offset.get();
            let size = stored.size.get();
            if size == 0 {
                return Err(PayloadTableError::EmptyPayload { index });
            }
            if offset < FIRST_PAYLOAD_OFFSET || !offset.is_multiple_of(PAGE_SIZE) {
                return Err(PayloadTableError::MisplacedPayload { index });
            }
            match offset.checked_add(size) {
                Some(end) if end <= region_len => {}
                _ => return Err(PayloadTableError::PayloadOutOfBounds { index }),
            }
            let entry = PayloadEntry { kind, offset, size };
            for (first, other) in entries[..index].iter().enumerate() {
                let Some(other) = other else { continue };
                if other.kind == kind {
                    return Err(PayloadTableError::DuplicateKind { index });
                }
                // Both ends are in bounds (checked above), so the additions cannot overflow.
                if entry.offset < other.offset + other.size && other.offset < entry.offset + size {
                    return Err(PayloadTableError::Overlap {
                        first,
                        second: index,
                    });
                }
            }
            entries[index] = Some(entry);
        }
        Ok(PayloadTable {
            region,
            entries,
            count,
        })
    }

    /// The entries in table order.
    pub fn entries(&self) -> impl Iterator<Item = PayloadEntry> + '_ {
        self.entries[..self.count].iter().flatten().copied()
    }

    /// The bytes of the payload of `kind`, if the table lists one.
    pub fn find(&self, kind: PayloadKind) -> Option<&'a [u8]> {
        let e = self.entries().find(|e| e.kind == kind)?;
        // Bounds were validated in `parse`; `get` keeps this panic-free regardless.
        let start = usize::try_from(e.offset).ok()?;
        let end = usize::try_from(e.offset + e.size).ok()?;
        self.region.get(start..end)
    }
}

/// Writes a payload table listing `payloads` (in order) into `region`, which must be zeroed and
/// have the payload region's size. Returns the entries written.
pub fn write_payload_table(
    region: &mut [u8],
    payloads: &[(PayloadKind, &[u8])],
) -> Result<usize, PayloadTableError> {
    if region.len() < PAGE_SIZE as usize {
        return Err(PayloadTableError::RegionTooSmall);
    }
    if payloads.is_empty() || payloads.len() > MAX_ENTRIES {
        return Err(PayloadTableError::BadEntryCount(payloads.len() as u32));
    }
    let available = region.len() as u64;
    let mut offset = FIRST_PAYLOAD_OFFSET;
    for (index, (kind, data)) in payloads.iter().enumerate() {
        if data.is_empty() {
            return Err(PayloadTableError::EmptyPayload { index });
        }
        if payloads[..index].iter().any(|(k, _)| k == kind) {
            return Err(PayloadTableError::DuplicateKind { index });
        }
        let size = data.len() as u64;
        let end = offset.saturating_add(size);
        if end > available {
            return Err(PayloadTableError::DoesNotFit {
                needed: end,
                available,
            });
        }
        let entry = TableEntry {
            kind: U32::new(kind.code()),
            reserved: U32::new(0),
            offset: U64::new(offset),
            size: U64::new(size),
        };
        // The table page holds MAX_ENTRIES entries after the header (asserted in `parse`).
        write_at(region, HEADER_SIZE + index * ENTRY_SIZE, &entry);
        region[offset as usize..end as usize].copy_from_slice(data);
        offset = end.div_ceil(PAGE_SIZE) * PAGE_SIZE;
    }
    let header = TableHeader {
        magic: PAYLOAD_TABLE_MAGIC,
        version: U32::new(PAYLOAD_TABLE_VERSION),
        count: U32::new(payloads.len() as u32),
    };
    write_at(region, 0, &header);
    Ok(payloads.len())
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::vec;

    fn table_with(data: &[u8]) -> std::vec::Vec<u8> {
        let mut region = vec![0u8; 4 * PAGE_SIZE as usize];
        write_payload_table(&mut region, &[(PayloadKind::Elf, data)]).unwrap();
        region
    }

    #[test]
    fn round_trip() {
        let region = table_with(b"\x7fELF payload");
        let t = PayloadTable::parse(&region).unwrap();
        assert_eq!(t.find(PayloadKind::Elf), Some(&b"\x7fELF payload"[..]));
        assert_eq!(t.entries().count(), 1);
    }

    #[test]
    fn every_rule_has_its_error() {
        let good = table_with(b"abc");
        let set = |at: usize, bytes: &[u8]| {
            let mut r = good.clone();
            r[at..at + bytes.len()].copy_from_slice(bytes);
            PayloadTable::parse(&r).unwrap_err()
        };
        assert_eq!(
            PayloadTable::parse(&good[..100]).unwrap_err(),
            PayloadTableError::RegionTooSmall
        );
        assert_eq!(set(0, b"X"), PayloadTableError::BadMagic);
        assert_eq!(
            set(8, &2u32.to_le_bytes()),
            PayloadTableError::UnsupportedVersion(2)
        );
        assert_eq!(
            set(12, &0u32.to_le_bytes()),
            PayloadTableError::BadEntryCount(0)
        );
        assert_eq!(
            set(12, &17u32.to_le_bytes()),
            PayloadTableError::BadEntryCount(17)
        );
        assert_eq!(
            set(16, &9u32.to_le_bytes()),
            PayloadTableError::UnknownKind { index: 0, code: 9 }
        );
        assert_eq!(
            set(20, &1u32.to_le_bytes()),
            PayloadTableError::ReservedNotZero { index: 0 }
        );
        assert_eq!(
            set(32, &0u64.to_le_bytes()),
            PayloadTableError::EmptyPayload { index: 0 }
        );
        assert_eq!(
            set(24, &0u64.to_le_bytes()),
            PayloadTableError::MisplacedPayload { index: 0 }
        );
        assert_eq!(
            set(24, &0x1001u64.to_le_bytes()),
            PayloadTableError::MisplacedPayload { index: 0 }
        );
        assert_eq!(
            set(32, &u64::MAX.to_le_bytes()),
            PayloadTableError::PayloadOutOfBounds { index: 0 }
        );
        // A second entry that overlaps the first, then one that repeats its kind.
        let mut two = good.clone();
        two[12..16].copy_from_slice(&2u32.to_le_bytes());
        two[40..64].copy_from_slice(&good[16..40]);
        assert_eq!(
            PayloadTable::parse(&two).unwrap_err(),
            PayloadTableError::DuplicateKind { index: 1 }
        );
    }

    #[test]
    fn writer_refuses_what_does_not_fit() {
        let mut region = vec![0u8; 2 * PAGE_SIZE as usize];
        let big = vec![1u8; PAGE_SIZE as usize + 1];
        assert_eq!(
            write_payload_table(&mut region, &[(PayloadKind::Elf, &big)]).unwrap_err(),
            PayloadTableError::DoesNotFit {
                needed: 2 * PAGE_SIZE + 1,
                available: 2 * PAGE_SIZE
            }
        );
        assert_eq!(
            write_payload_table(&mut region, &[]).unwrap_err(),
            PayloadTableError::BadEntryCount(0)
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..8192)) {
            let _ = PayloadTable::parse(&bytes);
        }

        #[test]
        fn mutated_tables_never_panic(at in 0usize..0x1000, byte in any::<u8>(), len in 0x1000usize..0x4000) {
            let mut region = table_with(b"payload bytes");
            region[at] = byte;
            region.truncate(len);
            if let Ok(t) = PayloadTable::parse(&region) {
                let _ = t.find(PayloadKind::Elf);
            }
        }
    }
}
