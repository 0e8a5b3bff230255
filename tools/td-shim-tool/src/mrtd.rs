//! MRTD: the TDX measurement of a TD's initial memory, computed from a firmware image's TDVF
//! metadata before any TD runs.
//!
//! The TDX module keeps one SHA-384 context per TD. TDH.MNG.INIT starts it, every
//! TDH.MEM.PAGE.ADD and TDH.MR.EXTEND the VMM issues before TDH.MR.FINALIZE feeds it, and
//! finalizing it gives MRTD (docs/tdx-measurement.md; research/tdx-attestation.md §1.1):
//!
//! - TDH.MEM.PAGE.ADD of the 4 KiB page at GPA `g` hashes one 128-byte buffer:
//!   `"MEM.PAGE.ADD"` (12 bytes), zeros to byte 16, `g` as u64 little-endian at bytes 16..24,
//!   zeros to byte 128. The page's contents are not hashed.
//! - TDH.MR.EXTEND of the 256-byte chunk at GPA `g` hashes 384 bytes: a 128-byte buffer
//!   `"MR.EXTEND"` (9 bytes), zeros to byte 16, `g` at bytes 16..24, zeros to byte 128; then the
//!   chunk's 256 bytes. A page takes 16 extends, at `page + 0x000` ... `page + 0xF00`.
//! - TDH.MEM.PAGE.AUG (pages accepted later by the guest) does not touch MRTD.
//!
//! Which pages are added and extended is what the image's TDVF metadata says, section by
//! section, in descriptor order (QEMU issues `KVM_TDX_INIT_MEM_REGION` per section in metadata
//! order). The decision depends on the attributes, never on the section type:
//!
//! - every page of `[MemoryAddress, MemoryAddress + MemoryDataSize)` is PAGE.ADDed unless the
//!   PAGE.AUG attribute (bit 1) is set: BFV, CFV, TD_HOB, TempMem, Payload and PayloadParam
//!   sections all put their GPAs into MRTD, whatever their contents;
//! - the pages of a section with the MR.EXTEND attribute (bit 0; BFV always, a Payload
//!   optionally) are also extended, with the section's raw data `[DataOffset, +RawDataSize)`
//!   zero-filled to `MemoryDataSize` as content: only those sections put bytes into MRTD;
//! - PermMem (PAGE.AUG) sections and TD_INFO/TD_PARAMS sections (no memory) add nothing.
//!
//! The TDX module fixes the buffers; the order of the calls is the VMM's ([`PageOrder`]).
//!
//! [`compute`] reads untrusted bytes: every field is checked, each failure is a [`MrtdError`],
//! and it never panics. The work is bounded: at most [`MAX_SECTIONS`] sections and
//! [`MAX_ADDED_BYTES`] of added memory.

use serde::Serialize;
use sha2::{Digest, Sha384};
use std::fmt::Write as _;
use td_layout::metadata::{self, MetadataError, MetadataSource, SectionType, TdvfSection};

use crate::measure::MeasureReport;

/// Bytes of a TDX page (what TDH.MEM.PAGE.ADD adds).
pub const PAGE_SIZE: u64 = 4096;
/// Bytes of the chunk one TDH.MR.EXTEND measures.
pub const CHUNK_SIZE: usize = 256;
/// Bytes of the buffer each call hashes before any chunk data (one SHA-384 block).
pub const BUFFER_SIZE: usize = 128;
/// Most sections accepted. The TDVF format has no limit; real images have fewer than 16. It
/// bounds the pairwise overlap check on untrusted input.
pub const MAX_SECTIONS: usize = 256;
/// Most memory, summed over all sections, that the image may ask the VMM to add: 16 GiB,
/// far above any real firmware (OVMF adds about 2.5 MiB, td-shim about 24 MiB). It bounds the
/// work on untrusted input (128 hashed bytes per added page, 6 KiB per extended page).
pub const MAX_ADDED_BYTES: u64 = 16 << 30;

/// Bytes of the TDVF descriptor header (signature, length, version, section count).
const DESCRIPTOR_SIZE: usize = 16;
/// Bytes of one TDVF section.
const SECTION_SIZE: usize = 32;
/// `"TDVF"` read as a little-endian u32.
const TDVF_SIGNATURE: u32 = u32::from_le_bytes(*b"TDVF");
/// The only descriptor version defined.
const TDVF_VERSION: u32 = 1;
/// Attribute bit 0: the VMM extends the section's pages into MRTD.
const ATTR_MR_EXTEND: u32 = 1;
/// Attribute bit 1: the VMM adds the section's pages with TDH.MEM.PAGE.AUG.
const ATTR_PAGE_AUG: u32 = 2;

/// The order in which a VMM issues TDH.MEM.PAGE.ADD and TDH.MR.EXTEND within a section. The
/// sections themselves are always processed in metadata order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PageOrder {
    /// Per page: TDH.MEM.PAGE.ADD, then the page's 16 TDH.MR.EXTEND. Upstream QEMU (TDX merged
    /// in QEMU 10.1, on KVM >= 6.16): QEMU issues `KVM_TDX_INIT_MEM_REGION` per section with
    /// `KVM_TDX_MEASURE_MEMORY_REGION` when MR.EXTEND is set, and KVM's
    /// `tdx_gmem_post_populate()` runs PAGE.ADD then the extends for each page. dstack-mr calls
    /// this "single-pass" (QEMU >= 9 era TDX trees).
    #[default]
    Qemu,
    /// Per section: TDH.MEM.PAGE.ADD of every page, then TDH.MR.EXTEND of every page. The
    /// QEMU 8.x-era TDX trees (Intel's and distributions' pre-upstream QEMU/KVM) do this;
    /// dstack-mr calls it `two_pass_add_pages`, mosaik's MRTD precomputation does only this.
    TwoPass,
}

impl PageOrder {
    /// The name used by the CLI (`--vmm`) and in reports.
    pub const fn name(self) -> &'static str {
        match self {
            PageOrder::Qemu => "qemu",
            PageOrder::TwoPass => "two-pass",
        }
    }
}

/// Why MRTD could not be computed: the image has no TDVF metadata, or metadata a VMM could not
/// follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MrtdError {
    /// No TDVF descriptor: neither the footer GUID table's TDX entry nor the legacy pointer
    /// leads to one (holds why, as td-layout reports it).
    #[error("no TDVF metadata: {0}")]
    NoMetadata(MetadataError),
    /// The descriptor (16 bytes, or 16 + 32 * sections) runs past the end of the image.
    #[error("the TDVF descriptor at {offset:#x} needs {length} bytes, past the end of the image")]
    DescriptorOutOfBounds {
        /// Offset of the descriptor in the image.
        offset: usize,
        /// Bytes it needs.
        length: u64,
    },
    /// The descriptor's signature is not "TDVF".
    #[error("the TDVF descriptor's signature is {0:#010x}, not \"TDVF\"")]
    BadSignature(u32),
    /// The descriptor's version is not 1.
    #[error("the TDVF descriptor's version is {0}, not 1")]
    UnsupportedVersion(u32),
    /// The descriptor lists no sections.
    #[error("the TDVF descriptor lists no sections")]
    NoSections,
    /// The descriptor lists more than [`MAX_SECTIONS`] sections.
    #[error("the TDVF descriptor lists {0} sections, more than {MAX_SECTIONS}")]
    TooManySections(u32),
    /// The descriptor's length is not 16 + 32 * sections.
    #[error("the TDVF descriptor's length is {length}, but its sections need {expected}")]
    BadLength {
        /// The stored length.
        length: u32,
        /// 16 + 32 * the number of sections.
        expected: u64,
    },
    /// A section's type is not a TDVF type, so what a VMM does with it is unknown.
    #[error("TDVF section {index}: unknown type {code}")]
    UnknownSectionType {
        /// Position in the descriptor, from 0.
        index: usize,
        /// The stored type.
        code: u32,
    },
    /// Reserved attribute bits (31:2) are set.
    #[error("TDVF section {index}: reserved attribute bits set ({attributes:#x})")]
    ReservedAttributes {
        /// Position in the descriptor, from 0.
        index: usize,
        /// The stored attributes.
        attributes: u32,
    },
    /// Both MR.EXTEND and PAGE.AUG: a page added after TDH.MR.FINALIZE cannot be extended.
    #[error(
        "TDVF section {index}: MR.EXTEND and PAGE.AUG together (an AUGed page is never extended)"
    )]
    ExtendWithPageAug {
        /// Position in the descriptor, from 0.
        index: usize,
    },
    /// The memory address is not 4 KiB aligned.
    #[error("TDVF section {index}: memory address {address:#x} is not 4 KiB aligned")]
    UnalignedAddress {
        /// Position in the descriptor, from 0.
        index: usize,
        /// The stored address.
        address: u64,
    },
    /// The memory size is not a multiple of 4 KiB.
    #[error("TDVF section {index}: memory size {size:#x} is not a multiple of 4 KiB")]
    UnalignedSize {
        /// Position in the descriptor, from 0.
        index: usize,
        /// The stored size.
        size: u64,
    },
    /// The memory range wraps past 2^64.
    #[error("TDVF section {index}: memory range overflows")]
    MemoryRangeOverflow {
        /// Position in the descriptor, from 0.
        index: usize,
    },
    /// The raw data lies (partly) outside the image.
    #[error(
        "TDVF section {index}: raw data [{offset:#x}, +{size:#x}) lies outside the image \
         ({image_len:#x} bytes)"
    )]
    SectionOutsideImage {
        /// Position in the descriptor, from 0.
        index: usize,
        /// The stored data offset.
        offset: u32,
        /// The stored raw data size.
        size: u32,
        /// Bytes in the image.
        image_len: usize,
    },
    /// More raw data than memory to copy it into.
    #[error("TDVF section {index}: raw data size {raw:#x} exceeds memory size {memory:#x}")]
    RawDataLargerThanMemory {
        /// Position in the descriptor, from 0.
        index: usize,
        /// The stored raw data size.
        raw: u32,
        /// The stored memory size.
        memory: u64,
    },
    /// Two sections add the same page (the second TDH.MEM.PAGE.ADD would fail).
    #[error("TDVF sections {first} and {second} add overlapping memory")]
    Overlap {
        /// The earlier section.
        first: usize,
        /// The later section.
        second: usize,
    },
    /// The sections add more than [`MAX_ADDED_BYTES`] of memory.
    #[error("the TDVF sections add more than {MAX_ADDED_BYTES:#x} bytes of memory")]
    TooMuchMemory,
}

/// What one section contributes to MRTD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SectionContribution {
    /// Position in the descriptor, from 0 (the order in which it is measured).
    pub index: usize,
    /// The type's name ("BFV", "CFV", "TD_HOB", "TempMem", ...).
    #[serde(rename = "type")]
    pub type_name: &'static str,
    /// Guest-physical address of its memory.
    pub memory_address: u64,
    /// Bytes of its memory.
    pub memory_data_size: u64,
    /// Pages added with TDH.MEM.PAGE.ADD (their GPAs are in MRTD).
    pub added_pages: u64,
    /// Pages extended with 16 TDH.MR.EXTEND each (their contents are in MRTD).
    pub extended_pages: u64,
}

/// One checked section, with its raw data.
#[derive(Debug, Clone, Copy)]
struct Section<'a> {
    contribution: SectionContribution,
    /// The raw data; the memory past it is zero.
    data: &'a [u8],
}

impl Section<'_> {
    /// The 4 KiB content of page `page` (raw data, zero-filled).
    fn page(&self, page: u64) -> [u8; PAGE_SIZE as usize] {
        let mut out = [0u8; PAGE_SIZE as usize];
        let start = usize::try_from(page.saturating_mul(PAGE_SIZE)).unwrap_or(usize::MAX);
        if let Some(rest) = self.data.get(start..) {
            let n = rest.len().min(out.len());
            out[..n].copy_from_slice(&rest[..n]);
        }
        out
    }

    /// GPA of page `page`. Cannot overflow: the range was checked.
    fn gpa(&self, page: u64) -> u64 {
        self.contribution
            .memory_address
            .wrapping_add(page.wrapping_mul(PAGE_SIZE))
    }
}

/// The TDVF metadata a VMM follows: where it was found and its sections.
#[derive(Debug, Clone)]
struct Tdvf<'a> {
    source: MetadataSource,
    descriptor_offset: usize,
    sections: Vec<Section<'a>>,
}

/// Reads a little-endian u32 at `at`, if inside `b`.
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let bytes = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

/// Finds, reads and checks the TDVF metadata of `image` as a VMM follows it.
fn read_tdvf(image: &[u8]) -> Result<Tdvf<'_>, MrtdError> {
    let (offset, source) = metadata::locate_descriptor(image).map_err(MrtdError::NoMetadata)?;
    let header_oob = MrtdError::DescriptorOutOfBounds {
        offset,
        length: DESCRIPTOR_SIZE as u64,
    };
    let field = |at: usize| u32_at(image, offset.checked_add(at)?);
    let (signature, length, version, count) = match (field(0), field(4), field(8), field(12)) {
        (Some(s), Some(l), Some(v), Some(n)) => (s, l, v, n),
        _ => return Err(header_oob),
    };
    if signature != TDVF_SIGNATURE {
        return Err(MrtdError::BadSignature(signature));
    }
    if version != TDVF_VERSION {
        return Err(MrtdError::UnsupportedVersion(version));
    }
    if count == 0 {
        return Err(MrtdError::NoSections);
    }
    let n = usize::try_from(count)
        .ok()
        .filter(|&n| n <= MAX_SECTIONS)
        .ok_or(MrtdError::TooManySections(count))?;
    // n <= MAX_SECTIONS: no overflow.
    let expected = DESCRIPTOR_SIZE + SECTION_SIZE * n;
    if u64::from(length) != expected as u64 {
        return Err(MrtdError::BadLength {
            length,
            expected: expected as u64,
        });
    }
    let table = offset
        .checked_add(DESCRIPTOR_SIZE)
        .zip(offset.checked_add(expected))
        .and_then(|(start, end)| image.get(start..end))
        .ok_or(MrtdError::DescriptorOutOfBounds {
            offset,
            length: expected as u64,
        })?;

    let mut sections = Vec::with_capacity(n);
    let mut added: u64 = 0;
    for (index, raw) in table.chunks_exact(SECTION_SIZE).enumerate() {
        let bytes: &[u8; SECTION_SIZE] =
            raw.try_into()
                .map_err(|_| MrtdError::DescriptorOutOfBounds {
                    offset,
                    length: expected as u64,
                })?;
        let s = TdvfSection::from_bytes(bytes);
        let section = check_section(index, &s, image)?;
        added = added
            .checked_add(section.contribution.added_pages.saturating_mul(PAGE_SIZE))
            .filter(|&a| a <= MAX_ADDED_BYTES)
            .ok_or(MrtdError::TooMuchMemory)?;
        sections.push(section);
    }
    check_overlaps(&sections)?;
    Ok(Tdvf {
        source,
        descriptor_offset: offset,
        sections,
    })
}

/// Checks one section as a VMM must before adding it, and says what it contributes.
fn check_section<'a>(
    index: usize,
    s: &TdvfSection,
    image: &'a [u8],
) -> Result<Section<'a>, MrtdError> {
    let kind = SectionType::from_code(s.section_type).ok_or(MrtdError::UnknownSectionType {
        index,
        code: s.section_type,
    })?;
    let attributes = s.attributes;
    if attributes & !(ATTR_MR_EXTEND | ATTR_PAGE_AUG) != 0 {
        return Err(MrtdError::ReservedAttributes { index, attributes });
    }
    let extend = attributes & ATTR_MR_EXTEND != 0;
    let aug = attributes & ATTR_PAGE_AUG != 0;
    if extend && aug {
        return Err(MrtdError::ExtendWithPageAug { index });
    }
    if !s.memory_address.is_multiple_of(PAGE_SIZE) {
        return Err(MrtdError::UnalignedAddress {
            index,
            address: s.memory_address,
        });
    }
    if !s.memory_data_size.is_multiple_of(PAGE_SIZE) {
        return Err(MrtdError::UnalignedSize {
            index,
            size: s.memory_data_size,
        });
    }
    if s.memory_address.checked_add(s.memory_data_size).is_none() {
        return Err(MrtdError::MemoryRangeOverflow { index });
    }
    let outside = MrtdError::SectionOutsideImage {
        index,
        offset: s.data_offset,
        size: s.raw_data_size,
        image_len: image.len(),
    };
    let start = usize::try_from(s.data_offset).map_err(|_| outside)?;
    let len = usize::try_from(s.raw_data_size).map_err(|_| outside)?;
    let data = start
        .checked_add(len)
        .and_then(|end| image.get(start..end))
        .ok_or(outside)?;
    // A section without memory (TD_INFO, TD_PARAMS) is data inside the BFV for the firmware:
    // the VMM adds nothing for it.
    if s.memory_data_size != 0 && u64::from(s.raw_data_size) > s.memory_data_size {
        return Err(MrtdError::RawDataLargerThanMemory {
            index,
            raw: s.raw_data_size,
            memory: s.memory_data_size,
        });
    }
    let pages = s.memory_data_size / PAGE_SIZE;
    let added_pages = if aug { 0 } else { pages };
    let extended_pages = if extend { pages } else { 0 };
    Ok(Section {
        contribution: SectionContribution {
            index,
            type_name: kind.name(),
            memory_address: s.memory_address,
            memory_data_size: s.memory_data_size,
            added_pages,
            extended_pages,
        },
        data,
    })
}

/// Refuses two sections whose memory overlaps: the TDX module refuses to add a page twice.
fn check_overlaps(sections: &[Section<'_>]) -> Result<(), MrtdError> {
    for (second, b) in sections.iter().enumerate() {
        let b = &b.contribution;
        for (first, a) in sections.iter().take(second).enumerate() {
            let a = &a.contribution;
            // Neither range wraps (checked), so the additions cannot overflow.
            if a.memory_data_size != 0
                && b.memory_data_size != 0
                && a.memory_address < b.memory_address.saturating_add(b.memory_data_size)
                && b.memory_address < a.memory_address.saturating_add(a.memory_data_size)
            {
                return Err(MrtdError::Overlap { first, second });
            }
        }
    }
    Ok(())
}

/// The 128-byte buffer TDH.MEM.PAGE.ADD hashes for the page at `gpa`.
pub fn page_add_buffer(gpa: u64) -> [u8; BUFFER_SIZE] {
    let mut b = [0u8; BUFFER_SIZE];
    b[..12].copy_from_slice(b"MEM.PAGE.ADD");
    b[16..24].copy_from_slice(&gpa.to_le_bytes());
    b
}

/// The 128-byte buffer TDH.MR.EXTEND hashes, before the chunk's 256 bytes, for the chunk at
/// `gpa`.
pub fn mr_extend_buffer(gpa: u64) -> [u8; BUFFER_SIZE] {
    let mut b = [0u8; BUFFER_SIZE];
    b[..9].copy_from_slice(b"MR.EXTEND");
    b[16..24].copy_from_slice(&gpa.to_le_bytes());
    b
}

/// Hashes the TDH.MR.EXTEND of the 16 chunks of `page` at `gpa`.
fn extend_page(hasher: &mut Sha384, gpa: u64, page: &[u8; PAGE_SIZE as usize]) {
    for (i, chunk) in page.chunks_exact(CHUNK_SIZE).enumerate() {
        // i < 16: no overflow.
        hasher.update(mr_extend_buffer(gpa + (i * CHUNK_SIZE) as u64));
        hasher.update(chunk);
    }
}

/// Feeds `hasher` with what the VMM's calls for `section` hash, in `order`.
fn measure_section(hasher: &mut Sha384, section: &Section<'_>, order: PageOrder) {
    let c = &section.contribution;
    let pages = c.memory_data_size / PAGE_SIZE;
    let add = c.added_pages != 0;
    let extend = c.extended_pages != 0;
    match order {
        PageOrder::Qemu => {
            for p in 0..pages {
                let gpa = section.gpa(p);
                if add {
                    hasher.update(page_add_buffer(gpa));
                }
                if extend {
                    extend_page(hasher, gpa, &section.page(p));
                }
            }
        }
        PageOrder::TwoPass => {
            if add {
                for p in 0..pages {
                    hasher.update(page_add_buffer(section.gpa(p)));
                }
            }
            if extend {
                for p in 0..pages {
                    extend_page(hasher, section.gpa(p), &section.page(p));
                }
            }
        }
    }
}

/// The MRTD of a TD launched from `image` (any TDVF image: td-shim's, OVMF's) by a VMM that
/// issues its calls in `order`.
pub fn compute(image: &[u8], order: PageOrder) -> Result<[u8; 48], MrtdError> {
    let tdvf = read_tdvf(image)?;
    Ok(digest(&tdvf, order))
}

fn digest(tdvf: &Tdvf<'_>, order: PageOrder) -> [u8; 48] {
    let mut hasher = Sha384::new();
    for section in &tdvf.sections {
        measure_section(&mut hasher, section, order);
    }
    hasher.finalize().into()
}

/// `measure --platform tdx`: MRTD and what each section contributed.
#[derive(Debug, Clone, Serialize)]
pub struct MrtdReport {
    /// MRTD, lower-case hex.
    pub mrtd: String,
    /// The VMM page order it assumes ([`PageOrder::name`]).
    pub vmm: &'static str,
    /// How the TDVF descriptor was found ("footer GUID table" or "legacy metadata pointer").
    pub tdvf_source: &'static str,
    /// Offset of the TDVF descriptor in the image.
    pub tdvf_offset: usize,
    /// The sections, in measurement order.
    pub tdvf_sections: Vec<SectionContribution>,
}

/// [`compute`], with a description of what went in.
pub fn report(image: &[u8], order: PageOrder) -> Result<MrtdReport, MrtdError> {
    let tdvf = read_tdvf(image)?;
    Ok(MrtdReport {
        mrtd: hex::encode(digest(&tdvf, order)),
        vmm: order.name(),
        tdvf_source: tdvf.source.name(),
        tdvf_offset: tdvf.descriptor_offset,
        tdvf_sections: tdvf.sections.iter().map(|s| s.contribution).collect(),
    })
}

impl MrtdReport {
    /// The human-readable form.
    pub fn to_text(&self) -> String {
        let mut s = format!("MRTD {} (VMM page order: {})\n", self.mrtd, self.vmm);
        let _ = writeln!(
            s,
            "TDVF metadata at {:#x} ({}), {} sections, in measurement order:",
            self.tdvf_offset,
            self.tdvf_source,
            self.tdvf_sections.len()
        );
        for c in &self.tdvf_sections {
            let _ = writeln!(
                s,
                "{:>4} {:<12} {:#012x} {:#10x}  {:>6} pages added, {:>6} extended",
                c.index,
                c.type_name,
                c.memory_address,
                c.memory_data_size,
                c.added_pages,
                c.extended_pages
            );
        }
        s
    }
}

/// `measure --platform tdx --json`: MRTD, and the RTMRs when the launch parameters were given.
#[derive(Debug, Serialize)]
pub struct TdxReport {
    /// MRTD and its sections.
    #[serde(flatten)]
    pub mrtd: MrtdReport,
    /// The RTMRs and events, as `measure --platform plain` prints them.
    #[serde(flatten)]
    pub rtmrs: Option<MeasureReport>,
}

impl TdxReport {
    /// The human-readable form: MRTD, then the RTMRs if any.
    pub fn to_text(&self) -> String {
        let mut s = self.mrtd.to_text();
        match &self.rtmrs {
            Some(r) => s.push_str(&r.to_text()),
            None => s.push_str("RTMRs not computed (give --memory and --vcpus)\n"),
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use td_layout::footer::TDX_METADATA_OFFSET_GUID;
    use td_layout::footer::{write_footer_table, write_legacy_metadata_pointer, FooterEntry};
    use td_layout::metadata::write_metadata;

    const IMAGE: usize = 0x10000;
    const META_AT: usize = 0x1000;

    fn section(kind: u32, offset: u32, raw: u32, gpa: u64, size: u64, attr: u32) -> TdvfSection {
        TdvfSection {
            data_offset: offset,
            raw_data_size: raw,
            memory_address: gpa,
            memory_data_size: size,
            section_type: kind,
            attributes: attr,
        }
    }

    /// A 64 KiB image whose metadata (at 0x1000) lists `sections`, found through the legacy
    /// pointer; bytes from 0x8000 on are a pattern.
    fn image(sections: &[TdvfSection]) -> Vec<u8> {
        let mut img = vec![0u8; IMAGE];
        for (i, b) in img.iter_mut().enumerate().skip(0x8000) {
            *b = (i * 7 + i / 251) as u8;
        }
        write_metadata(sections, &mut img[META_AT..]).unwrap();
        write_legacy_metadata_pointer(&mut img, (META_AT + 16) as u32).unwrap();
        img
    }

    fn bfv() -> TdvfSection {
        section(0, 0x8000, 0x8000, 0xFFFF_8000, 0x8000, 1)
    }

    fn temp() -> TdvfSection {
        section(3, 0, 0, 0x80_0000, 0x2000, 0)
    }

    fn hob() -> TdvfSection {
        section(2, 0, 0, 0x80_2000, 0x1000, 0)
    }

    /// MRTD written out call by call from the definition, for `order`.
    fn by_hand(img: &[u8], sections: &[TdvfSection], order: PageOrder) -> [u8; 48] {
        let mut stream = Vec::new();
        for s in sections.iter().filter(|s| s.memory_data_size != 0) {
            let pages = s.memory_data_size / 4096;
            let mut mem = vec![0u8; s.memory_data_size as usize];
            let raw = &img[s.data_offset as usize..][..s.raw_data_size as usize];
            mem[..raw.len()].copy_from_slice(raw);
            let add = |stream: &mut Vec<u8>, p: u64| {
                let mut b = [0u8; 128];
                b[..12].copy_from_slice(b"MEM.PAGE.ADD");
                b[16..24].copy_from_slice(&(s.memory_address + p * 4096).to_le_bytes());
                stream.extend_from_slice(&b);
            };
            let ext = |stream: &mut Vec<u8>, p: u64| {
                for c in 0..16u64 {
                    let mut b = [0u8; 128];
                    b[..9].copy_from_slice(b"MR.EXTEND");
                    let gpa = s.memory_address + p * 4096 + c * 256;
                    b[16..24].copy_from_slice(&gpa.to_le_bytes());
                    stream.extend_from_slice(&b);
                    let off = (p * 4096 + c * 256) as usize;
                    stream.extend_from_slice(&mem[off..off + 256]);
                }
            };
            let (do_add, do_ext) = (s.attributes & 2 == 0, s.attributes & 1 != 0);
            match order {
                PageOrder::Qemu => {
                    for p in 0..pages {
                        if do_add {
                            add(&mut stream, p);
                        }
                        if do_ext {
                            ext(&mut stream, p);
                        }
                    }
                }
                PageOrder::TwoPass => {
                    for p in 0..pages {
                        if do_add {
                            add(&mut stream, p);
                        }
                    }
                    for p in 0..pages {
                        if do_ext {
                            ext(&mut stream, p);
                        }
                    }
                }
            }
        }
        Sha384::digest(&stream).into()
    }

    #[test]
    fn buffers_are_the_tdx_module_layout() {
        let add = page_add_buffer(0x1122_3344_5566_7000);
        assert_eq!(&add[..12], b"MEM.PAGE.ADD");
        assert_eq!(add[12..16], [0; 4]);
        assert_eq!(
            add[16..24],
            [0x00, 0x70, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]
        );
        assert!(add[24..].iter().all(|&b| b == 0));
        let ext = mr_extend_buffer(0xFFFF_FF00);
        assert_eq!(&ext[..9], b"MR.EXTEND");
        assert_eq!(ext[9..16], [0; 7]);
        assert_eq!(ext[16..24], 0xFFFF_FF00u64.to_le_bytes());
        assert!(ext[24..].iter().all(|&b| b == 0));
    }

    #[test]
    fn matches_the_definition_in_both_orders() {
        // A payload extended with raw data shorter than its memory (zero-filled tail), a
        // PermMem (PAGE.AUG: nothing), a TD_INFO without memory (nothing).
        let sections = [
            bfv(),
            temp(),
            hob(),
            section(5, 0x9000, 0x1234, 0x100_0000, 0x3000, 1),
            section(4, 0, 0, 0x200_0000, 0x10_0000, 2),
            section(7, 0x8000, 0x40, 0, 0, 0),
        ];
        let img = image(&sections);
        for order in [PageOrder::Qemu, PageOrder::TwoPass] {
            assert_eq!(
                compute(&img, order).unwrap(),
                by_hand(&img, &sections, order),
                "{order:?}"
            );
        }
        assert_ne!(
            compute(&img, PageOrder::Qemu).unwrap(),
            compute(&img, PageOrder::TwoPass).unwrap()
        );
    }

    #[test]
    fn unextended_sections_contribute_their_gpas_only() {
        let base = [bfv(), temp(), hob()];
        let mrtd = compute(&image(&base), PageOrder::Qemu).unwrap();
        // The TD_HOB moved: MRTD changes.
        let mut moved = base;
        moved[2].memory_address += 0x1000;
        assert_ne!(compute(&image(&moved), PageOrder::Qemu).unwrap(), mrtd);
        // A CFV's bytes changed: MRTD does not.
        let with_cfv = [
            bfv(),
            temp(),
            hob(),
            section(1, 0x2000, 0x1000, 0x10_0000, 0x1000, 0),
        ];
        let mut img = image(&with_cfv);
        let before = compute(&img, PageOrder::Qemu).unwrap();
        img[0x2000] ^= 1;
        assert_eq!(compute(&img, PageOrder::Qemu).unwrap(), before);
        // A BFV byte changed: it does.
        img[0x8000] ^= 1;
        assert_ne!(compute(&img, PageOrder::Qemu).unwrap(), before);
        // The type is not hashed: a CFV and a Payload at the same place give the same MRTD.
        let mut as_payload = with_cfv;
        as_payload[3].section_type = 5;
        assert_eq!(
            compute(&image(&as_payload), PageOrder::Qemu).unwrap(),
            before
        );
    }

    #[test]
    fn found_through_the_footer_table_too() {
        let sections = [bfv(), temp(), hob()];
        let mut img = image(&sections);
        // Clear the legacy pointer, write a footer table entry instead (over the BFV's tail).
        img[IMAGE - 0x20..IMAGE - 0x1C].fill(0);
        let from_end = ((IMAGE - META_AT - 16) as u32).to_le_bytes();
        write_footer_table(
            &mut img,
            &[FooterEntry {
                guid: TDX_METADATA_OFFSET_GUID,
                data: &from_end,
            }],
        )
        .unwrap();
        let r = report(&img, PageOrder::Qemu).unwrap();
        assert_eq!(r.tdvf_source, MetadataSource::FooterTable.name());
        assert_eq!(
            r.mrtd,
            hex::encode(by_hand(&img, &sections, PageOrder::Qemu))
        );
        assert_eq!(r.tdvf_sections.len(), 3);
        assert_eq!(r.tdvf_sections[0].extended_pages, 8);
        assert_eq!(r.tdvf_sections[1].added_pages, 2);
    }

    #[test]
    fn refuses_what_a_vmm_cannot_follow() {
        use MrtdError as E;
        let check = |s: &[TdvfSection]| compute(&image(s), PageOrder::Qemu);
        assert!(matches!(
            compute(&[0u8; 0x1000], PageOrder::Qemu),
            Err(E::NoMetadata(_))
        ));
        assert!(matches!(
            compute(&[], PageOrder::Qemu),
            Err(E::NoMetadata(_))
        ));
        let mut s = [bfv(), temp()];
        s[1].memory_data_size = 0x1800;
        assert_eq!(
            check(&s),
            Err(E::UnalignedSize {
                index: 1,
                size: 0x1800
            })
        );
        s = [bfv(), temp()];
        s[1].memory_address = 0x80_0800;
        assert!(matches!(
            check(&s),
            Err(E::UnalignedAddress { index: 1, .. })
        ));
        s = [bfv(), temp()];
        s[0].data_offset = 0xC000;
        assert!(matches!(
            check(&s),
            Err(E::SectionOutsideImage { index: 0, .. })
        ));
        s = [bfv(), temp()];
        s[0].data_offset = u32::MAX;
        assert!(matches!(check(&s), Err(E::SectionOutsideImage { .. })));
        s = [bfv(), temp()];
        s[0].memory_data_size = 0x4000;
        assert!(matches!(check(&s), Err(E::RawDataLargerThanMemory { .. })));
        s = [bfv(), temp()];
        s[1].section_type = 9;
        assert_eq!(check(&s), Err(E::UnknownSectionType { index: 1, code: 9 }));
        s = [bfv(), temp()];
        s[1].attributes = 4;
        assert!(matches!(check(&s), Err(E::ReservedAttributes { .. })));
        s = [bfv(), temp()];
        s[1].attributes = 3;
        assert_eq!(check(&s), Err(E::ExtendWithPageAug { index: 1 }));
        s = [bfv(), temp()];
        s[1].memory_address = 0xFFFF_9000;
        assert_eq!(
            check(&s),
            Err(E::Overlap {
                first: 0,
                second: 1
            })
        );
        s = [bfv(), temp()];
        s[1].memory_address = u64::MAX - 0xFFF;
        assert_eq!(check(&s), Err(E::MemoryRangeOverflow { index: 1 }));
        s = [bfv(), temp()];
        s[1].memory_data_size = MAX_ADDED_BYTES;
        assert_eq!(check(&s), Err(E::TooMuchMemory));
    }

    #[test]
    fn refuses_a_bad_descriptor() {
        use MrtdError as E;
        let img = image(&[bfv(), temp()]);
        let d = META_AT + 16;
        let with = |at: usize, v: u32| {
            let mut i = img.clone();
            i[d + at..d + at + 4].copy_from_slice(&v.to_le_bytes());
            compute(&i, PageOrder::Qemu)
        };
        assert_eq!(with(0, 0x1234), Err(E::BadSignature(0x1234)));
        assert_eq!(with(8, 2), Err(E::UnsupportedVersion(2)));
        assert_eq!(with(12, 0), Err(E::NoSections));
        assert_eq!(with(12, 100_000), Err(E::TooManySections(100_000)));
        assert_eq!(
            with(4, 81),
            Err(E::BadLength {
                length: 81,
                expected: 80
            })
        );
        // The pointer leads to the last 8 bytes: the header runs out of the image.
        let mut i = img.clone();
        let at = IMAGE - 8;
        i[at - 16..at].copy_from_slice(metadata::TDX_METADATA_GUID.as_bytes());
        i[IMAGE - 0x20..IMAGE - 0x1C].copy_from_slice(&(at as u32).to_le_bytes());
        assert_eq!(
            compute(&i, PageOrder::Qemu),
            Err(E::DescriptorOutOfBounds {
                offset: at,
                length: 16
            })
        );
        // A header that fits but sections that do not.
        let mut i = img.clone();
        let at = IMAGE - 0x38;
        i[at - 16..at].copy_from_slice(metadata::TDX_METADATA_GUID.as_bytes());
        i[at..at + 16].copy_from_slice(&img[d..d + 16]);
        i[IMAGE - 0x20..IMAGE - 0x1C].copy_from_slice(&(at as u32).to_le_bytes());
        assert_eq!(
            compute(&i, PageOrder::Qemu),
            Err(E::DescriptorOutOfBounds {
                offset: at,
                length: 80
            })
        );
    }

    proptest::proptest! {
        /// Any bytes, with or without a valid pointer to them: an answer or an error, never a
        /// panic.
        #[test]
        fn never_panics(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..0x300),
            at in 0usize..0x300,
        ) {
            let mut img = image(&[bfv(), temp(), hob()]);
            let end = (META_AT + at + bytes.len()).min(IMAGE);
            let n = end - (META_AT + at);
            img[META_AT + at..end].copy_from_slice(&bytes[..n]);
            let _ = compute(&img, PageOrder::Qemu);
            let _ = compute(&img, PageOrder::TwoPass);
            let _ = compute(&bytes, PageOrder::Qemu);
        }
    }
}
