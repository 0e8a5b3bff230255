//! The OVMF-style footer GUID table at the end of the image, and the legacy TDX metadata pointer.
//!
//! QEMU, Cloud Hypervisor and the MRTD tools find the TDX metadata (and, for SEV, the SEV
//! metadata) through a table of GUID-tagged entries that ends 0x20 bytes before the end of the
//! image (research/tdx-attestation.md §1.2, research/td-shim.md §3.2). Read backwards from its
//! end:
//!
//! ```text
//! image.len() - 0x20           end of the table (FOOTER_TABLE_END in the layout)
//!   - 16                       footer GUID 96b582de-1fb2-45f7-baea-a366c55a082d
//!   - 2                        u16 LE: length of the whole table, this 18-byte footer included
//!   then, walking backwards, entries laid out as
//!     data || u16 LE len || GUID          len = data length + 18
//!   until the start of the table is reached exactly.
//! ```
//!
//! The legacy pointer (td-shim, Cloud Hypervisor's fallback) is a u32 LE at `image.len() - 0x20`:
//! the offset of the TDVF descriptor from the *start* of the image.
//!
//! Both parsers take untrusted bytes, work on any image length and never panic.

use core::fmt;

use zerocopy::little_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::guid::Guid;

/// GUID of the footer entry that closes the table (`96b582de-1fb2-45f7-baea-a366c55a082d`).
pub const FOOTER_GUID: Guid = Guid::from_fields(
    0x96b5_82de,
    0x1fb2,
    0x45f7,
    [0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d],
);

/// GUID of the TDX metadata offset entry (`e47a6535-984a-4798-865e-4685a7bf8ec2`): its data is a
/// u32 LE, the offset of the TDVF descriptor counted back from the end of the image.
pub const TDX_METADATA_OFFSET_GUID: Guid = Guid::from_fields(
    0xe47a_6535,
    0x984a,
    0x4798,
    [0x86, 0x5e, 0x46, 0x85, 0xa7, 0xbf, 0x8e, 0xc2],
);

/// Bytes between the end of the table and the end of the image.
pub const TABLE_END_FROM_IMAGE_END: usize = 0x20;
/// Bytes of an entry's trailer (`u16` length + GUID); also the size of the footer entry.
pub const ENTRY_HEADER_SIZE: usize = 18;
/// Distance of the legacy TDX metadata pointer from the end of the image.
pub const LEGACY_POINTER_FROM_IMAGE_END: usize = 0x20;

/// An entry's trailer as stored, right after its data: the entry length (data + 18) and the
/// GUID. The footer that closes the table is one of these with the table length.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct EntryTrailer {
    /// `u16` LE: bytes of the entry (or, in the footer, of the table), trailer included.
    len: U16,
    /// The GUID in its on-disk byte order.
    guid: [u8; 16],
}

const _: () = {
    assert!(core::mem::size_of::<EntryTrailer>() == ENTRY_HEADER_SIZE);
    assert!(core::mem::offset_of!(EntryTrailer, guid) == 2);
};

/// Why a footer table or legacy pointer could not be read or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FooterError {
    /// The image is too short to hold the footer entry (or the legacy pointer).
    ImageTooSmall {
        /// Length of the image.
        len: usize,
    },
    /// The 16 bytes ending at `image.len() - 0x20` are not [`FOOTER_GUID`].
    MissingFooterGuid,
    /// The table length in the footer is below 18, the footer's own size.
    TableTooShort {
        /// The stored table length.
        len: u16,
    },
    /// The table length in the footer reaches before the start of the image.
    TableTooLarge {
        /// The stored table length.
        len: u16,
        /// Bytes before the end of the table.
        available: usize,
    },
    /// An entry has a length below 18.
    EntryTooShort {
        /// Position in walk order (0 = next to the footer).
        index: usize,
        /// The stored entry length.
        len: u16,
    },
    /// An entry's length reaches before the start of the table.
    EntryPastTableStart {
        /// Position in walk order (0 = next to the footer).
        index: usize,
        /// The stored entry length.
        len: u16,
    },
    /// After the last whole entry, fewer than 18 bytes are left at the table start.
    TrailingBytes {
        /// Bytes left over.
        len: usize,
    },
    /// Writing: an entry has more data than a u16 length can describe.
    EntryTooLong {
        /// Position in the list given to [`write_footer_table`].
        index: usize,
        /// Bytes of data in the entry.
        data_len: usize,
    },
    /// Writing: the table would be longer than a u16 length can describe.
    TableTooLong {
        /// Bytes the table would need.
        len: usize,
    },
    /// Writing: the table does not fit before its end.
    DoesNotFit {
        /// Bytes the table needs.
        needed: usize,
        /// Bytes before `image.len() - 0x20`.
        available: usize,
    },
}

impl fmt::Display for FooterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ImageTooSmall { len } => {
                write!(f, "image of {len} bytes is too small for the footer")
            }
            Self::MissingFooterGuid => write!(
                f,
                "no footer GUID {FOOTER_GUID} at 0x30 bytes before the end of the image"
            ),
            Self::TableTooShort { len } => write!(
                f,
                "footer table length {len} is shorter than the {ENTRY_HEADER_SIZE}-byte footer"
            ),
            Self::TableTooLarge { len, available } => write!(
                f,
                "footer table length {len} exceeds the {available} bytes before its end"
            ),
            Self::EntryTooShort { index, len } => write!(
                f,
                "footer table entry {index} has length {len} (minimum {ENTRY_HEADER_SIZE})"
            ),
            Self::EntryPastTableStart { index, len } => write!(
                f,
                "footer table entry {index} with length {len} reaches before the table start"
            ),
            Self::TrailingBytes { len } => write!(
                f,
                "footer table starts with {len} bytes that are not a whole entry"
            ),
            Self::EntryTooLong { index, data_len } => write!(
                f,
                "footer table entry {index} has {data_len} data bytes, more than a u16 length allows"
            ),
            Self::TableTooLong { len } => write!(
                f,
                "footer table of {len} bytes is longer than a u16 length allows"
            ),
            Self::DoesNotFit { needed, available } => write!(
                f,
                "footer table needs {needed} bytes but only {available} precede its end"
            ),
        }
    }
}

/// One entry of the footer table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FooterEntry<'a> {
    /// What the entry is.
    pub guid: Guid,
    /// The entry's data (its length excludes the 18-byte trailer).
    pub data: &'a [u8],
}

/// A validated footer table: every entry walks cleanly back to the table start.
#[derive(Debug, Clone, Copy)]
pub struct FooterTable<'a> {
    /// The whole table, footer included.
    bytes: &'a [u8],
    /// Offset of `bytes` in the image.
    offset: usize,
}

impl<'a> FooterTable<'a> {
    /// The entries (the footer itself excluded) in walk order: nearest the footer first.
    pub fn entries(&self) -> FooterEntries<'a> {
        FooterEntries {
            table: self.bytes,
            cursor: self.bytes.len().saturating_sub(ENTRY_HEADER_SIZE),
        }
    }

    /// The data of the first entry (in walk order) tagged `guid`.
    pub fn find(&self, guid: Guid) -> Option<&'a [u8]> {
        self.entries().find(|e| e.guid == guid).map(|e| e.data)
    }

    /// Length of the table in bytes, footer included (the value stored in the footer).
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always false: a parsed table holds at least its footer.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Offset of the first byte of the table from the start of the image.
    pub fn offset(&self) -> usize {
        self.offset
    }
}

/// Iterator over the entries of a [`FooterTable`], nearest the footer first.
#[derive(Debug, Clone)]
pub struct FooterEntries<'a> {
    table: &'a [u8],
    /// End (exclusive) of the next entry to yield, relative to the table start.
    cursor: usize,
}

impl<'a> Iterator for FooterEntries<'a> {
    type Item = FooterEntry<'a>;

    fn next(&mut self) -> Option<FooterEntry<'a>> {
        // The table was validated by `parse_footer_table`; every step is still checked so a
        // logic slip ends the walk instead of panicking.
        let (entry, start) = entry_ending_at(self.table, self.cursor)?;
        self.cursor = start;
        Some(entry)
    }
}

/// Reads the entry whose trailer ends at `end` in `table`: returns it and the offset its data
/// starts at. `None` if the trailer or the data does not fit.
fn entry_ending_at(table: &[u8], end: usize) -> Option<(FooterEntry<'_>, usize)> {
    let at = end.checked_sub(ENTRY_HEADER_SIZE)?;
    let trailer = read_at::<EntryTrailer>(table, at)?;
    let data_start = end.checked_sub(usize::from(trailer.len.get()))?;
    let data = table.get(data_start..at)?;
    let guid = Guid(trailer.guid);
    Some((FooterEntry { guid, data }, data_start))
}

/// Parses and validates the footer table ending at `image.len() - 0x20`.
pub fn parse_footer_table(image: &[u8]) -> Result<FooterTable<'_>, FooterError> {
    let too_small = FooterError::ImageTooSmall { len: image.len() };
    let end = image
        .len()
        .checked_sub(TABLE_END_FROM_IMAGE_END)
        .ok_or(too_small)?;
    let footer = end
        .checked_sub(ENTRY_HEADER_SIZE)
        .and_then(|at| read_at::<EntryTrailer>(image, at))
        .ok_or(too_small)?;
    if Guid(footer.guid) != FOOTER_GUID {
        return Err(FooterError::MissingFooterGuid);
    }
    let len = footer.len.get();
    if usize::from(len) < ENTRY_HEADER_SIZE {
        return Err(FooterError::TableTooShort { len });
    }
    let start = end
        .checked_sub(usize::from(len))
        .ok_or(FooterError::TableTooLarge {
            len,
            available: end,
        })?;
    let bytes = image.get(start..end).ok_or(too_small)?;

    // Walk every entry back to the table start; the walk must land on it exactly.
    let mut cursor = bytes.len().saturating_sub(ENTRY_HEADER_SIZE);
    let mut index = 0usize;
    while cursor > 0 {
        let Some(trailer) = cursor.checked_sub(ENTRY_HEADER_SIZE) else {
            return Err(FooterError::TrailingBytes { len: cursor });
        };
        let entry_len = read_at::<EntryTrailer>(bytes, trailer)
            .ok_or(too_small)?
            .len
            .get();
        if usize::from(entry_len) < ENTRY_HEADER_SIZE {
            return Err(FooterError::EntryTooShort {
                index,
                len: entry_len,
            });
        }
        cursor =
            cursor
                .checked_sub(usize::from(entry_len))
                .ok_or(FooterError::EntryPastTableStart {
                    index,
                    len: entry_len,
                })?;
        index = index.saturating_add(1);
    }
    Ok(FooterTable {
        bytes,
        offset: start,
    })
}

/// Writes `entries` and the footer so that the table ends at `image.len() - 0x20`. The first
/// entry given is placed next to the footer (it is walked first). Returns the table length.
///
/// Only the table's own bytes are written; nothing else in `image` changes.
pub fn write_footer_table(
    image: &mut [u8],
    entries: &[FooterEntry<'_>],
) -> Result<usize, FooterError> {
    let end = image
        .len()
        .checked_sub(TABLE_END_FROM_IMAGE_END)
        .ok_or(FooterError::ImageTooSmall { len: image.len() })?;
    let mut total = ENTRY_HEADER_SIZE;
    for (index, e) in entries.iter().enumerate() {
        let too_long = FooterError::EntryTooLong {
            index,
            data_len: e.data.len(),
        };
        let len = e
            .data
            .len()
            .checked_add(ENTRY_HEADER_SIZE)
            .ok_or(too_long)?;
        if len > usize::from(u16::MAX) {
            return Err(too_long);
        }
        total = total
            .checked_add(len)
            .ok_or(FooterError::TableTooLong { len: usize::MAX })?;
    }
    let total_u16 = u16::try_from(total).map_err(|_| FooterError::TableTooLong { len: total })?;
    if total > end {
        return Err(FooterError::DoesNotFit {
            needed: total,
            available: end,
        });
    }

    // Every length was checked above, so every entry fits in `[end - total, end)`; the checked
    // steps below cannot fail but keep the writer panic-free by construction.
    let does_not_fit = FooterError::DoesNotFit {
        needed: total,
        available: end,
    };
    let footer = end.checked_sub(ENTRY_HEADER_SIZE).ok_or(does_not_fit)?;
    if !put_trailer(image, footer, total_u16, FOOTER_GUID) {
        return Err(does_not_fit);
    }
    let mut cursor = footer;
    for e in entries {
        let len = e
            .data
            .len()
            .checked_add(ENTRY_HEADER_SIZE)
            .and_then(|l| u16::try_from(l).ok())
            .ok_or(does_not_fit)?;
        let trailer = cursor.checked_sub(ENTRY_HEADER_SIZE).ok_or(does_not_fit)?;
        let data_start = trailer.checked_sub(e.data.len()).ok_or(does_not_fit)?;
        if !(put_trailer(image, trailer, len, e.guid) && write_at(image, data_start, e.data)) {
            return Err(does_not_fit);
        }
        cursor = data_start;
    }
    Ok(total)
}

/// Writes the legacy TDX metadata pointer: `descriptor_offset` (from the start of the image) as
/// a u32 LE at `image.len() - 0x20`.
pub fn write_legacy_metadata_pointer(
    image: &mut [u8],
    descriptor_offset: u32,
) -> Result<(), FooterError> {
    let too_small = FooterError::ImageTooSmall { len: image.len() };
    let at = image
        .len()
        .checked_sub(LEGACY_POINTER_FROM_IMAGE_END)
        .ok_or(too_small)?;
    if write_at(image, at, &U32::new(descriptor_offset)) {
        Ok(())
    } else {
        Err(too_small)
    }
}

/// Reads the legacy TDX metadata pointer at `image.len() - 0x20` (the descriptor's offset from
/// the start of the image; not validated here).
pub fn read_legacy_metadata_pointer(image: &[u8]) -> Result<u32, FooterError> {
    let too_small = FooterError::ImageTooSmall { len: image.len() };
    let at = image
        .len()
        .checked_sub(LEGACY_POINTER_FROM_IMAGE_END)
        .ok_or(too_small)?;
    read_at::<U32>(image, at).map(U32::get).ok_or(too_small)
}

// ---------------------------------------------------------------------------------------------
// Reading and writing wire structures (zerocopy), shared with `metadata` and `payload`.

/// The `T` stored at `b[at..]` (a little-endian wire structure, `U32`, a byte array, ...);
/// `None` if it does not fit.
pub(crate) fn read_at<T: FromBytes + KnownLayout + Immutable>(b: &[u8], at: usize) -> Option<T> {
    T::read_from_prefix(b.get(at..)?)
        .ok()
        .map(|(value, _)| value)
}

/// Writes `value`'s bytes to `out[at..]`; returns whether they fit (nothing is written if not).
pub(crate) fn write_at<T: IntoBytes + Immutable + ?Sized>(
    out: &mut [u8],
    at: usize,
    value: &T,
) -> bool {
    out.get_mut(at..)
        .is_some_and(|dst| value.write_to_prefix(dst).is_ok())
}

/// Writes an entry trailer (`u16` length, then GUID) at `out[at..at + 18]`.
fn put_trailer(out: &mut [u8], at: usize, len: u16, guid: Guid) -> bool {
    let trailer = EntryTrailer {
        len: U16::new(len),
        guid: guid.0,
    };
    write_at(out, at, &trailer)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::{vec, vec::Vec};

    const A: Guid = Guid([0xaa; 16]);
    const B: Guid = Guid([0xbb; 16]);

    fn image_with(entries: &[FooterEntry<'_>]) -> Vec<u8> {
        let mut image = vec![0u8; 0x1000];
        write_footer_table(&mut image, entries).unwrap();
        image
    }

    /// Sets the u16 at `image.len() - from_end` (a length field of the table).
    fn set_u16(image: &mut [u8], from_end: usize, v: u16) {
        let at = image.len() - from_end;
        image[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }

    #[test]
    fn tdx_offset_entry_matches_td_shim_layout() {
        // research/td-shim.md §3.2: u32 data, u16 22, TDX GUID, u16 40, footer GUID, ending 0x20
        // before the end of the image.
        let mut image = vec![0u8; 0x1000];
        let data = 0x1234_5678u32.to_le_bytes();
        let len = write_footer_table(
            &mut image,
            &[FooterEntry {
                guid: TDX_METADATA_OFFSET_GUID,
                data: &data,
            }],
        )
        .unwrap();
        assert_eq!(len, 40);
        let n = image.len();
        assert_eq!(&image[n - 0x30..n - 0x20], FOOTER_GUID.as_bytes());
        assert_eq!(&image[n - 0x32..n - 0x30], &40u16.to_le_bytes());
        assert_eq!(
            &image[n - 0x42..n - 0x32],
            TDX_METADATA_OFFSET_GUID.as_bytes()
        );
        assert_eq!(&image[n - 0x44..n - 0x42], &22u16.to_le_bytes());
        assert_eq!(&image[n - 0x48..n - 0x44], &data);
        assert!(image[..n - 0x48].iter().all(|&b| b == 0));
        assert!(image[n - 0x20..].iter().all(|&b| b == 0));

        let table = parse_footer_table(&image).unwrap();
        assert_eq!(table.len(), 40);
        assert!(!table.is_empty());
        assert_eq!(table.offset(), n - 0x48);
        assert_eq!(table.find(TDX_METADATA_OFFSET_GUID), Some(&data[..]));
        assert_eq!(table.find(A), None);
    }

    #[test]
    fn round_trip_keeps_walk_order() {
        let entries = [
            FooterEntry {
                guid: A,
                data: b"first",
            },
            FooterEntry { guid: B, data: b"" },
            FooterEntry {
                guid: A,
                data: b"third, same guid",
            },
        ];
        let image = image_with(&entries);
        let table = parse_footer_table(&image).unwrap();
        assert_eq!(table.entries().collect::<Vec<_>>(), entries);
        assert_eq!(table.find(A), Some(&b"first"[..]));
        assert_eq!(table.find(B), Some(&b""[..]));
        // An empty table (footer only) is valid.
        let image = image_with(&[]);
        let table = parse_footer_table(&image).unwrap();
        assert_eq!(table.len(), ENTRY_HEADER_SIZE);
        assert_eq!(table.entries().count(), 0);
    }

    #[test]
    fn image_too_small() {
        for len in [0, 0x1f, 0x20, 0x31] {
            assert_eq!(
                parse_footer_table(&vec![0u8; len]).unwrap_err(),
                FooterError::ImageTooSmall { len }
            );
        }
        assert_eq!(
            write_footer_table(&mut [0u8; 0x10], &[]).unwrap_err(),
            FooterError::ImageTooSmall { len: 0x10 }
        );
        // Exactly the footer and the 0x20-byte tail.
        let mut image = vec![0u8; 0x32];
        assert_eq!(write_footer_table(&mut image, &[]), Ok(18));
        assert!(parse_footer_table(&image).is_ok());
    }

    #[test]
    fn missing_footer_guid() {
        let mut image = image_with(&[]);
        let n = image.len();
        image[n - 0x21] ^= 1;
        assert_eq!(
            parse_footer_table(&image).unwrap_err(),
            FooterError::MissingFooterGuid
        );
    }

    #[test]
    fn table_too_short() {
        let mut image = image_with(&[]);
        set_u16(&mut image, 0x32, 17);
        assert_eq!(
            parse_footer_table(&image).unwrap_err(),
            FooterError::TableTooShort { len: 17 }
        );
    }

    #[test]
    fn table_too_large() {
        let mut image = image_with(&[]);
        let available = image.len() - 0x20;
        set_u16(&mut image, 0x32, available as u16 + 1);
        assert_eq!(
            parse_footer_table(&image).unwrap_err(),
            FooterError::TableTooLarge {
                len: available as u16 + 1,
                available
            }
        );
    }

    #[test]
    fn entry_too_short() {
        let mut image = image_with(&[FooterEntry { guid: A, data: b"" }]);
        // Entry 0's length sits right before the footer: 0x20 + 18 + 18 from the end.
        set_u16(&mut image, 0x44, 17);
        assert_eq!(
            parse_footer_table(&image).unwrap_err(),
            FooterError::EntryTooShort { index: 0, len: 17 }
        );
    }

    #[test]
    fn entry_past_table_start() {
        let mut image = image_with(&[
            FooterEntry { guid: A, data: b"" },
            FooterEntry { guid: B, data: b"" },
        ]);
        // Entry 1 claims more than the 18 bytes left before the table start.
        set_u16(&mut image, 0x56, 19);
        assert_eq!(
            parse_footer_table(&image).unwrap_err(),
            FooterError::EntryPastTableStart { index: 1, len: 19 }
        );
    }

    #[test]
    fn trailing_bytes() {
        let mut image = image_with(&[FooterEntry { guid: A, data: b"" }]);
        // Grow the table by 5 bytes that no entry accounts for.
        set_u16(&mut image, 0x32, 36 + 5);
        assert_eq!(
            parse_footer_table(&image).unwrap_err(),
            FooterError::TrailingBytes { len: 5 }
        );
    }

    #[test]
    fn writer_refuses_what_does_not_fit() {
        let mut image = vec![0u8; 0x40];
        let data = [0u8; 0x10];
        let e = FooterEntry {
            guid: A,
            data: &data,
        };
        assert_eq!(
            write_footer_table(&mut image, &[e]).unwrap_err(),
            FooterError::DoesNotFit {
                needed: 52,
                available: 0x20
            }
        );
        assert!(image.iter().all(|&b| b == 0), "nothing written on error");

        let big = vec![0u8; usize::from(u16::MAX) - 17];
        let mut image = vec![0u8; 0x2_0000];
        assert_eq!(
            write_footer_table(
                &mut image,
                &[FooterEntry {
                    guid: A,
                    data: &big
                }]
            )
            .unwrap_err(),
            FooterError::EntryTooLong {
                index: 0,
                data_len: big.len()
            }
        );
        let half = vec![0u8; 0x8000];
        let two = [FooterEntry {
            guid: A,
            data: &half,
        }; 2];
        assert_eq!(
            write_footer_table(&mut image, &two).unwrap_err(),
            FooterError::TableTooLong {
                len: 2 * (0x8000 + 18) + 18
            }
        );
    }

    #[test]
    fn legacy_pointer_round_trip() {
        let mut image = vec![0u8; 0x100];
        write_legacy_metadata_pointer(&mut image, 0xCAE010).unwrap();
        assert_eq!(&image[0xE0..0xE4], &0xCAE010u32.to_le_bytes());
        assert_eq!(read_legacy_metadata_pointer(&image), Ok(0xCAE010));
        // The pointer and the table share no byte.
        write_footer_table(&mut image, &[]).unwrap();
        assert_eq!(read_legacy_metadata_pointer(&image), Ok(0xCAE010));
        assert!(parse_footer_table(&image).is_ok());
        assert_eq!(
            read_legacy_metadata_pointer(&image[..0x1f]),
            Err(FooterError::ImageTooSmall { len: 0x1f })
        );
        assert_eq!(
            write_legacy_metadata_pointer(&mut image[..3], 1),
            Err(FooterError::ImageTooSmall { len: 3 })
        );
    }

    #[test]
    fn every_error_has_a_message() {
        extern crate std;
        use std::string::ToString;
        let all = [
            FooterError::ImageTooSmall { len: 1 },
            FooterError::MissingFooterGuid,
            FooterError::TableTooShort { len: 1 },
            FooterError::TableTooLarge {
                len: 1,
                available: 0,
            },
            FooterError::EntryTooShort { index: 3, len: 1 },
            FooterError::EntryPastTableStart { index: 3, len: 1 },
            FooterError::TrailingBytes { len: 1 },
            FooterError::EntryTooLong {
                index: 3,
                data_len: 1,
            },
            FooterError::TableTooLong { len: 1 },
            FooterError::DoesNotFit {
                needed: 1,
                available: 0,
            },
        ];
        for e in all {
            assert!(!e.to_string().is_empty());
        }
    }

    fn footer_tail(len: u16) -> Vec<u8> {
        let mut tail = Vec::new();
        tail.extend_from_slice(&len.to_le_bytes());
        tail.extend_from_slice(FOOTER_GUID.as_bytes());
        tail.extend_from_slice(&[0u8; 0x20]);
        tail
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(t) = parse_footer_table(&bytes) {
                let _ = t.entries().count();
            }
            let _ = read_legacy_metadata_pointer(&bytes);
        }

        #[test]
        fn random_tables_behind_a_real_footer_never_panic(
            body in proptest::collection::vec(any::<u8>(), 0..256),
            len in any::<u16>(),
        ) {
            let mut image = body;
            image.extend_from_slice(&footer_tail(len));
            if let Ok(t) = parse_footer_table(&image) {
                // A valid table walks back to its start exactly.
                let walked: usize = t.entries().map(|e| e.data.len() + ENTRY_HEADER_SIZE).sum();
                prop_assert_eq!(walked + ENTRY_HEADER_SIZE, t.len());
            }
        }

        #[test]
        fn write_then_parse_round_trips(
            entries in proptest::collection::vec(
                (any::<[u8; 16]>(), proptest::collection::vec(any::<u8>(), 0..40)),
                0..6,
            ),
            extra in 0usize..64,
        ) {
            let entries: Vec<FooterEntry<'_>> = entries
                .iter()
                .map(|(g, d)| FooterEntry { guid: Guid(*g), data: d })
                .collect();
            let needed: usize = entries.iter().map(|e| e.data.len() + 18).sum::<usize>() + 18;
            let mut image = vec![0u8; needed + 0x20 + extra];
            prop_assert_eq!(write_footer_table(&mut image, &entries), Ok(needed));
            let t = parse_footer_table(&image).unwrap();
            prop_assert_eq!(t.len(), needed);
            prop_assert_eq!(t.offset(), extra);
            prop_assert_eq!(t.entries().collect::<Vec<_>>(), entries);
        }
    }
}
