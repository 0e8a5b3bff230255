//! TDX metadata: the TDVF descriptor and its sections, which tell a TDX VMM which guest pages
//! to add before the TD starts, from which image bytes, and which of them to measure into MRTD.
//!
//! Wire format (td-shim spec v0.7 Part I; TDVF design guide; research/tdx-attestation.md §1.3,
//! research/td-shim.md §3.4), all little-endian:
//!
//! ```text
//! GUID e9eaf9f3-168e-44d5-a8eb-7f4d8738f6ae      16 bytes, immediately before the descriptor
//! TDVF_DESCRIPTOR                                 16 bytes
//!   0x00 u32 signature "TDVF" (0x46564454)
//!   0x04 u32 length = 16 + 32 * n (the GUID excluded)
//!   0x08 u32 version = 1
//!   0x0C u32 number_of_section_entry n (>= 1)
//! TDVF_SECTION x n                                32 bytes each
//!   0x00 u32 data_offset       file offset of the raw data
//!   0x04 u32 raw_data_size
//!   0x08 u64 memory_address    GPA, 4 KiB aligned
//!   0x10 u64 memory_data_size  4 KiB multiple, >= raw_data_size (the VMM zero-fills the rest)
//!   0x18 u32 type              a SectionType
//!   0x1C u32 attributes        bit 0 MR.EXTEND, bit 1 PAGE.AUG, bits 31:2 reserved
//! ```
//!
//! A VMM finds the descriptor through the footer GUID table (see [`crate::footer`]), whose TDX
//! entry holds the descriptor's offset from the *end* of the image, or through the legacy u32 at
//! `image.len() - 0x20`, the descriptor's offset from the *start* of the image
//! (research/tdx-attestation.md §1.2). This image carries both.
//!
//! [`parse_metadata`] takes untrusted bytes: it checks every rule of the spec, each with its own
//! [`MetadataError`], on any image length, and never panics.
//!
//! The VMMs that load the image apply their own rules, which this module encodes too, one typed
//! error per rule (research/tdx-boot.md §6): [`check_qemu_rules`] for upstream QEMU
//! ([`QEMU_RULES`]: only BFV, CFV, TD_HOB and TempMem sections, the footer table only, ...)
//! and [`check_cloud_hypervisor_rules`] for Cloud Hypervisor ([`CLOUD_HYPERVISOR_RULES`]: the
//! legacy pointer as fallback, types 0-6). Our image passes all three sets.

use core::fmt;

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::footer::{self, read_at, write_at, FooterError, TDX_METADATA_OFFSET_GUID};
use crate::guid::Guid;
use crate::layout::{IMAGE_BFV, IMAGE_PAYLOAD, PAGE_SIZE, TD_HOB, TEMP_MEM};

/// GUID stored in the 16 bytes immediately before the TDVF descriptor
/// (`e9eaf9f3-168e-44d5-a8eb-7f4d8738f6ae`).
pub const TDX_METADATA_GUID: Guid = Guid::from_fields(
    0xe9ea_f9f3,
    0x168e,
    0x44d5,
    [0xa8, 0xeb, 0x7f, 0x4d, 0x87, 0x38, 0xf6, 0xae],
);

/// `TDVF_DESCRIPTOR.Signature`: "TDVF" read as a little-endian u32.
pub const TDVF_SIGNATURE: u32 = 0x4656_4454;
/// `TDVF_DESCRIPTOR.Version`: the only version defined.
pub const TDVF_VERSION: u32 = 1;
/// Bytes of the GUID before the descriptor.
pub const GUID_SIZE: usize = 16;
/// Bytes of `TDVF_DESCRIPTOR` without its sections.
pub const DESCRIPTOR_SIZE: usize = 16;
/// Bytes of one `TDVF_SECTION`.
pub const SECTION_SIZE: usize = 32;
/// Most sections this crate accepts. Not a spec limit: it bounds the work of the pairwise
/// overlap check on untrusted input. Real images have fewer than 16.
pub const MAX_SECTIONS: usize = 256;
/// Attribute bit 0: the VMM extends every page of the section into MRTD (TDH.MR.EXTEND).
pub const ATTR_MR_EXTEND: u32 = 1;
/// Attribute bit 1: the VMM adds the pages with TDH.MEM.PAGE.AUG (unmeasured, accepted by the
/// guest) instead of TDH.MEM.PAGE.ADD.
pub const ATTR_PAGE_AUG: u32 = 2;
/// The attribute bits defined by the spec; bits 31:2 are reserved and must be zero.
pub const ATTR_DEFINED: u32 = ATTR_MR_EXTEND | ATTR_PAGE_AUG;

/// The bytes [`write_metadata`] writes for `n` sections: GUID, descriptor and sections
/// (saturates instead of overflowing).
pub const fn encoded_len(n: usize) -> usize {
    n.saturating_mul(SECTION_SIZE)
        .saturating_add(GUID_SIZE + DESCRIPTOR_SIZE)
}

/// `TDVF_SECTION.Type` (td-shim spec Part I, table "TDVF section types").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionType {
    /// Boot firmware volume: PAGE.ADD + MR.EXTEND, measured into MRTD.
    Bfv = 0,
    /// Configuration firmware volume: PAGE.ADD of raw data copied from the image, not extended.
    /// The td-shim spec has the firmware measure it into RTMR\[0\]; this project's CFV is the
    /// payload region, whose payload the firmware measures into RTMR\[1\].
    Cfv = 1,
    /// Where the VMM writes the TD HOB: PAGE.ADD, no raw data.
    TdHob = 2,
    /// Temporary firmware memory: PAGE.ADD, no raw data.
    TempMem = 3,
    /// Permanent memory: PAGE.AUG, accepted by the firmware.
    PermMem = 4,
    /// The payload: PAGE.ADD, optionally MR.EXTEND.
    Payload = 5,
    /// Payload parameters (e.g. a kernel command line): PAGE.ADD.
    PayloadParam = 6,
    /// td-shim TD_INFO: raw data inside a BFV, no memory.
    TdInfo = 7,
    /// td-shim TD_PARAMS: raw data inside a BFV, no memory.
    TdParams = 8,
}

impl SectionType {
    /// The value stored in `TDVF_SECTION.Type`.
    pub const fn code(self) -> u32 {
        match self {
            SectionType::Bfv => 0,
            SectionType::Cfv => 1,
            SectionType::TdHob => 2,
            SectionType::TempMem => 3,
            SectionType::PermMem => 4,
            SectionType::Payload => 5,
            SectionType::PayloadParam => 6,
            SectionType::TdInfo => 7,
            SectionType::TdParams => 8,
        }
    }

    /// The type stored as `code`, if known.
    pub const fn from_code(code: u32) -> Option<Self> {
        match code {
            0 => Some(SectionType::Bfv),
            1 => Some(SectionType::Cfv),
            2 => Some(SectionType::TdHob),
            3 => Some(SectionType::TempMem),
            4 => Some(SectionType::PermMem),
            5 => Some(SectionType::Payload),
            6 => Some(SectionType::PayloadParam),
            7 => Some(SectionType::TdInfo),
            8 => Some(SectionType::TdParams),
            _ => None,
        }
    }

    /// Name used in logs and tool output (the spec's name).
    pub const fn name(self) -> &'static str {
        match self {
            SectionType::Bfv => "BFV",
            SectionType::Cfv => "CFV",
            SectionType::TdHob => "TD_HOB",
            SectionType::TempMem => "TempMem",
            SectionType::PermMem => "PermMem",
            SectionType::Payload => "Payload",
            SectionType::PayloadParam => "PayloadParam",
            SectionType::TdInfo => "TD_INFO",
            SectionType::TdParams => "TD_PARAMS",
        }
    }

    /// TD_INFO and TD_PARAMS describe bytes of the image only: they have no guest memory.
    const fn is_info(self) -> bool {
        matches!(self, SectionType::TdInfo | SectionType::TdParams)
    }

    /// The attributes the spec allows for this type, for error messages.
    const fn allowed_attributes(self) -> &'static str {
        match self {
            SectionType::Bfv => "0x1 (MR.EXTEND)",
            SectionType::PermMem => "0x2 (PAGE.AUG)",
            SectionType::Payload => "0x0 or 0x1 (MR.EXTEND)",
            _ => "0x0",
        }
    }
}

impl fmt::Display for SectionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `TDVF_DESCRIPTOR` as stored (16 bytes, little-endian), without its sections.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct TdvfDescriptor {
    /// [`TDVF_SIGNATURE`].
    signature: U32,
    /// 16 + 32 * n: the descriptor and its sections, the GUID excluded.
    length: U32,
    /// [`TDVF_VERSION`].
    version: U32,
    /// n, the number of sections.
    number_of_section_entry: U32,
}

/// `TDVF_SECTION` as stored (32 bytes, little-endian); [`TdvfSection`] is its decoded form.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct TdvfSectionWire {
    data_offset: U32,
    raw_data_size: U32,
    memory_address: U64,
    memory_data_size: U64,
    section_type: U32,
    attributes: U32,
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<TdvfDescriptor>() == DESCRIPTOR_SIZE);
    assert!(offset_of!(TdvfDescriptor, length) == 0x04);
    assert!(offset_of!(TdvfDescriptor, version) == 0x08);
    assert!(offset_of!(TdvfDescriptor, number_of_section_entry) == 0x0C);
    assert!(size_of::<TdvfSectionWire>() == SECTION_SIZE);
    assert!(offset_of!(TdvfSectionWire, raw_data_size) == 0x04);
    assert!(offset_of!(TdvfSectionWire, memory_address) == 0x08);
    assert!(offset_of!(TdvfSectionWire, memory_data_size) == 0x10);
    assert!(offset_of!(TdvfSectionWire, section_type) == 0x18);
    assert!(offset_of!(TdvfSectionWire, attributes) == 0x1C);
};

/// One `TDVF_SECTION` as stored (spec Part I, TDVF_SECTION; 32 bytes, little-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TdvfSection {
    /// Offset of the raw data from the start of the image file (0 when there is none).
    pub data_offset: u32,
    /// Bytes of raw data in the image.
    pub raw_data_size: u32,
    /// Guest-physical address of the section's memory (4 KiB aligned).
    pub memory_address: u64,
    /// Bytes of guest memory (a 4 KiB multiple, at least `raw_data_size`).
    pub memory_data_size: u64,
    /// A [`SectionType`] code, kept raw so unknown types can be reported.
    pub section_type: u32,
    /// [`ATTR_MR_EXTEND`] and/or [`ATTR_PAGE_AUG`].
    pub attributes: u32,
}

impl TdvfSection {
    /// The section's type, if known.
    pub const fn kind(&self) -> Option<SectionType> {
        SectionType::from_code(self.section_type)
    }

    /// The 32 bytes as stored in the descriptor.
    pub const fn to_bytes(&self) -> [u8; SECTION_SIZE] {
        zerocopy::transmute!(self.to_wire())
    }

    /// Decodes the 32 bytes of a stored section. Any bytes decode; [`validate_sections`]
    /// judges the values.
    pub const fn from_bytes(b: &[u8; SECTION_SIZE]) -> Self {
        let wire: TdvfSectionWire = zerocopy::transmute!(*b);
        Self::from_wire(&wire)
    }

    const fn to_wire(self) -> TdvfSectionWire {
        TdvfSectionWire {
            data_offset: U32::new(self.data_offset),
            raw_data_size: U32::new(self.raw_data_size),
            memory_address: U64::new(self.memory_address),
            memory_data_size: U64::new(self.memory_data_size),
            section_type: U32::new(self.section_type),
            attributes: U32::new(self.attributes),
        }
    }

    const fn from_wire(w: &TdvfSectionWire) -> Self {
        TdvfSection {
            data_offset: w.data_offset.get(),
            raw_data_size: w.raw_data_size.get(),
            memory_address: w.memory_address.get(),
            memory_data_size: w.memory_data_size.get(),
            section_type: w.section_type.get(),
            attributes: w.attributes.get(),
        }
    }
}

/// This project's TDX sections, in MRTD order (the order the VMM adds and extends them):
///
/// 1. BFV: metadata + firmware, raw = memory = [`IMAGE_BFV`], MR.EXTEND (MRTD covers it);
/// 2. TempMem: [`TEMP_MEM`], no raw data;
/// 3. TD_HOB: [`TD_HOB`], no raw data;
/// 4. CFV: the payload region [`IMAGE_PAYLOAD`] (payload table and payloads) at its own GPA,
///    copied in by the VMM and not extended: the firmware measures the payload it boots into
///    RTMR\[1\]. It was a Payload (type 5) section until upstream QEMU's TDX loader, which
///    accepts only BFV, CFV, TD_HOB and TempMem, had to load the image ([`check_qemu_rules`]).
///    The type changes nothing in MRTD: both are PAGE.ADDed without MR.EXTEND at the same GPAs.
///
/// The firmware itself never reads these sections at run time.
pub const fn td_shim_sections() -> [TdvfSection; 4] {
    // Every image offset and size fits the u32 fields (checked at compile time below).
    [
        TdvfSection {
            data_offset: IMAGE_BFV.image_offset() as u32,
            raw_data_size: IMAGE_BFV.size as u32,
            memory_address: IMAGE_BFV.base,
            memory_data_size: IMAGE_BFV.size,
            section_type: SectionType::Bfv.code(),
            attributes: ATTR_MR_EXTEND,
        },
        TdvfSection {
            data_offset: 0,
            raw_data_size: 0,
            memory_address: TEMP_MEM.base,
            memory_data_size: TEMP_MEM.size,
            section_type: SectionType::TempMem.code(),
            attributes: 0,
        },
        TdvfSection {
            data_offset: 0,
            raw_data_size: 0,
            memory_address: TD_HOB.base,
            memory_data_size: TD_HOB.size,
            section_type: SectionType::TdHob.code(),
            attributes: 0,
        },
        TdvfSection {
            data_offset: IMAGE_PAYLOAD.image_offset() as u32,
            raw_data_size: IMAGE_PAYLOAD.size as u32,
            memory_address: IMAGE_PAYLOAD.base,
            memory_data_size: IMAGE_PAYLOAD.size,
            section_type: SectionType::Cfv.code(),
            attributes: 0,
        },
    ]
}

const _: () = {
    let max = u32::MAX as u64;
    assert!(IMAGE_BFV.image_offset() <= max && IMAGE_BFV.size <= max);
    assert!(IMAGE_PAYLOAD.image_offset() <= max && IMAGE_PAYLOAD.size <= max);
};

/// How the descriptor was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataSource {
    /// The TDX entry of the footer GUID table (offset from the end of the image).
    FooterTable,
    /// The legacy u32 at `image.len() - 0x20` (offset from the start of the image).
    LegacyPointer,
}

impl MetadataSource {
    /// Name used in logs and tool output.
    pub const fn name(self) -> &'static str {
        match self {
            MetadataSource::FooterTable => "footer GUID table",
            MetadataSource::LegacyPointer => "legacy metadata pointer",
        }
    }
}

/// Why TDX metadata was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataError {
    // --- Locating the descriptor.
    /// No footer-table TDX entry, and the legacy pointer is absent (image shorter than 0x20
    /// bytes) or unset (0 or 0xFFFFFFFF).
    NotFound,
    /// The footer GUID is present but the table is malformed.
    Footer(FooterError),
    /// The footer table's TDX entry does not hold exactly a u32.
    BadOffsetEntrySize {
        /// Bytes of data in the entry.
        len: usize,
    },
    /// The pointer leaves no room for the metadata GUID inside the image.
    PointerOutOfBounds {
        /// Which pointer.
        source: MetadataSource,
        /// Its value.
        value: u32,
    },
    /// The 16 bytes before the descriptor are not [`TDX_METADATA_GUID`].
    MissingMetadataGuid {
        /// Which pointer led here.
        source: MetadataSource,
        /// Offset of the descriptor from the start of the image.
        offset: usize,
    },
    // --- The descriptor.
    /// The descriptor runs past the end of the image.
    DescriptorOutOfBounds {
        /// Offset of the descriptor from the start of the image.
        offset: usize,
        /// Bytes it needs (16, or 16 + 32 * sections once the header is read).
        length: u64,
    },
    /// The signature is not "TDVF" (holds the value found).
    BadSignature(u32),
    /// The version is not 1 (holds the value found).
    UnsupportedVersion(u32),
    /// The descriptor lists no sections.
    NoSections,
    /// More sections than [`MAX_SECTIONS`] (holds the count).
    TooManySections(u32),
    /// The length is not 16 + 32 * number of sections.
    BadLength {
        /// The stored length.
        length: u32,
        /// 16 + 32 * the stored number of sections.
        expected: u64,
    },
    /// Writing: the output buffer is smaller than [`encoded_len`].
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes in the buffer.
        available: usize,
    },
    // --- Each section.
    /// The type is not a [`SectionType`].
    UnknownSectionType {
        /// The section's position in the descriptor, from 0.
        index: usize,
        /// The stored type.
        code: u32,
    },
    /// Reserved attribute bits 31:2 are set.
    ReservedAttributes {
        /// The section's position in the descriptor, from 0.
        index: usize,
        /// The stored attributes.
        attributes: u32,
    },
    /// `memory_address` is not 4 KiB aligned.
    MisalignedAddress {
        /// The section's position in the descriptor, from 0.
        index: usize,
        /// The stored address.
        address: u64,
    },
    /// `memory_data_size` is not a multiple of 4 KiB.
    MisalignedSize {
        /// The section's position in the descriptor, from 0.
        index: usize,
        /// The stored size.
        size: u64,
    },
    /// `memory_address + memory_data_size` overflows.
    MemoryRangeOverflow {
        /// The section's position in the descriptor, from 0.
        index: usize,
    },
    /// `raw_data_size` is 0 but `data_offset` is not.
    DataOffsetWithoutData {
        /// The section's position in the descriptor, from 0.
        index: usize,
    },
    /// `raw_data_size` exceeds `memory_data_size`.
    RawDataLargerThanMemory {
        /// The section's position in the descriptor, from 0.
        index: usize,
    },
    /// `[data_offset, data_offset + raw_data_size)` is not inside the image.
    RawDataOutsideImage {
        /// The section's position in the descriptor, from 0.
        index: usize,
    },
    /// The attributes are not those allowed for the section's type (BFV: MR.EXTEND; PermMem:
    /// PAGE.AUG; Payload: 0 or MR.EXTEND; every other type: 0).
    BadAttributes {
        /// The section's position in the descriptor, from 0.
        index: usize,
        /// The section's type.
        kind: SectionType,
        /// The stored attributes.
        attributes: u32,
    },
    /// A BFV, CFV, TD_INFO or TD_PARAMS section without raw data.
    MissingRawData {
        /// The section's position in the descriptor, from 0.
        index: usize,
        /// The section's type.
        kind: SectionType,
    },
    /// A TD_HOB, TempMem or PermMem section with raw data.
    UnexpectedRawData {
        /// The section's position in the descriptor, from 0.
        index: usize,
        /// The section's type.
        kind: SectionType,
    },
    /// A second TD_HOB, Payload, PayloadParam, TD_INFO or TD_PARAMS section.
    DuplicateSection {
        /// The section's position in the descriptor, from 0.
        index: usize,
        /// The section's type.
        kind: SectionType,
    },
    /// A TD_INFO or TD_PARAMS section with a memory address or size.
    InfoSectionHasMemory {
        /// The section's position in the descriptor, from 0.
        index: usize,
        /// The section's type.
        kind: SectionType,
    },
    /// A TD_INFO or TD_PARAMS section whose raw data is not inside a BFV's file range.
    InfoSectionOutsideBfv {
        /// The section's position in the descriptor, from 0.
        index: usize,
        /// The section's type.
        kind: SectionType,
    },
    /// A PayloadParam section without a Payload section.
    PayloadParamWithoutPayload {
        /// The section's position in the descriptor, from 0.
        index: usize,
    },
    // --- The section list as a whole.
    /// No BFV section.
    MissingBfv,
    /// Neither a TD_HOB nor a PermMem section.
    MissingTdHobOrPermMem,
    /// The guest memory of two sections overlaps.
    Overlap {
        /// The earlier section.
        first: usize,
        /// The later section.
        second: usize,
    },
}

impl From<FooterError> for MetadataError {
    fn from(e: FooterError) -> Self {
        MetadataError::Footer(e)
    }
}

impl fmt::Display for MetadataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound => write!(
                f,
                "no TDX metadata: no footer-table entry {TDX_METADATA_OFFSET_GUID} and no legacy pointer"
            ),
            Self::Footer(e) => write!(f, "footer GUID table: {e}"),
            Self::BadOffsetEntrySize { len } => write!(
                f,
                "footer-table TDX metadata entry holds {len} bytes, not a 4-byte offset"
            ),
            Self::PointerOutOfBounds { source, value } => write!(
                f,
                "{} value {value:#x} points outside the image",
                source.name()
            ),
            Self::MissingMetadataGuid { source, offset } => write!(
                f,
                "no TDX metadata GUID {TDX_METADATA_GUID} before the descriptor at {offset:#x} \
                 (found through the {})",
                source.name()
            ),
            Self::DescriptorOutOfBounds { offset, length } => write!(
                f,
                "TDVF descriptor of {length} bytes at {offset:#x} runs past the end of the image"
            ),
            Self::BadSignature(s) => {
                write!(f, "TDVF descriptor signature {s:#010x} is not \"TDVF\"")
            }
            Self::UnsupportedVersion(v) => {
                write!(f, "TDVF descriptor version {v} is not {TDVF_VERSION}")
            }
            Self::NoSections => write!(f, "TDVF descriptor lists no sections"),
            Self::TooManySections(n) => write!(
                f,
                "TDVF descriptor lists {n} sections (this parser accepts at most {MAX_SECTIONS})"
            ),
            Self::BadLength { length, expected } => write!(
                f,
                "TDVF descriptor length {length} is not 16 + 32 * sections = {expected}"
            ),
            Self::BufferTooSmall { needed, available } => write!(
                f,
                "TDX metadata needs {needed} bytes but the buffer holds {available}"
            ),
            Self::UnknownSectionType { index, code } => {
                write!(f, "TDVF section {index} has unknown type {code}")
            }
            Self::ReservedAttributes { index, attributes } => write!(
                f,
                "TDVF section {index} sets reserved attribute bits ({attributes:#x})"
            ),
            Self::MisalignedAddress { index, address } => write!(
                f,
                "TDVF section {index} memory address {address:#x} is not 4 KiB aligned"
            ),
            Self::MisalignedSize { index, size } => write!(
                f,
                "TDVF section {index} memory size {size:#x} is not a multiple of 4 KiB"
            ),
            Self::MemoryRangeOverflow { index } => write!(
                f,
                "TDVF section {index} memory range wraps past the end of the address space"
            ),
            Self::DataOffsetWithoutData { index } => write!(
                f,
                "TDVF section {index} has a data offset but no raw data"
            ),
            Self::RawDataLargerThanMemory { index } => write!(
                f,
                "TDVF section {index} has more raw data than memory"
            ),
            Self::RawDataOutsideImage { index } => write!(
                f,
                "TDVF section {index} raw data runs past the end of the image"
            ),
            Self::BadAttributes {
                index,
                kind,
                attributes,
            } => write!(
                f,
                "TDVF section {index} ({kind}) has attributes {attributes:#x}; {kind} requires {}",
                kind.allowed_attributes()
            ),
            Self::MissingRawData { index, kind } => {
                write!(f, "TDVF section {index} ({kind}) has no raw data")
            }
            Self::UnexpectedRawData { index, kind } => write!(
                f,
                "TDVF section {index} ({kind}) has raw data; {kind} must have none"
            ),
            Self::DuplicateSection { index, kind } => write!(
                f,
                "TDVF section {index} is a second {kind} section (at most one is allowed)"
            ),
            Self::InfoSectionHasMemory { index, kind } => write!(
                f,
                "TDVF section {index} ({kind}) has a memory address or size; it must have neither"
            ),
            Self::InfoSectionOutsideBfv { index, kind } => write!(
                f,
                "TDVF section {index} ({kind}) raw data is not inside a BFV section's data"
            ),
            Self::PayloadParamWithoutPayload { index } => write!(
                f,
                "TDVF section {index} (PayloadParam) requires a Payload section"
            ),
            Self::MissingBfv => write!(f, "TDX metadata has no BFV section"),
            Self::MissingTdHobOrPermMem => {
                write!(f, "TDX metadata has neither a TD_HOB nor a PermMem section")
            }
            Self::Overlap { first, second } => write!(
                f,
                "TDVF sections {first} and {second} have overlapping memory"
            ),
        }
    }
}

/// Writes the metadata GUID, the descriptor and `sections` at `out[0..]`; returns the bytes
/// written ([`encoded_len`]). Checks the section count and the space only: call
/// [`validate_sections`] to check the sections themselves.
pub fn write_metadata(sections: &[TdvfSection], out: &mut [u8]) -> Result<usize, MetadataError> {
    let n = sections.len();
    if n == 0 {
        return Err(MetadataError::NoSections);
    }
    if n > MAX_SECTIONS {
        return Err(MetadataError::TooManySections(
            u32::try_from(n).unwrap_or(u32::MAX),
        ));
    }
    let needed = encoded_len(n);
    let too_small = MetadataError::BufferTooSmall {
        needed,
        available: out.len(),
    };
    let out = out.get_mut(..needed).ok_or(too_small)?;
    // n <= MAX_SECTIONS, so both fit a u32.
    let count = u32::try_from(n).map_err(|_| too_small)?;
    let length = u32::try_from(needed.saturating_sub(GUID_SIZE)).map_err(|_| too_small)?;
    let descriptor = TdvfDescriptor {
        signature: U32::new(TDVF_SIGNATURE),
        length: U32::new(length),
        version: U32::new(TDVF_VERSION),
        number_of_section_entry: U32::new(count),
    };
    let mut ok = write_at(out, 0, TDX_METADATA_GUID.as_bytes());
    ok &= write_at(out, GUID_SIZE, &descriptor);
    let first = GUID_SIZE + DESCRIPTOR_SIZE;
    for (i, s) in sections.iter().enumerate() {
        ok &= write_at(out, first + SECTION_SIZE * i, &s.to_wire());
    }
    if ok {
        Ok(needed)
    } else {
        Err(too_small)
    }
}

/// Finds the TDVF descriptor: returns its offset from the start of the image and where the
/// offset came from.
///
/// The footer GUID table is tried first: if it has a TDX entry, that entry decides (the
/// descriptor is at `image.len() - value`), and a malformed table or entry is an error. If the
/// image has no footer table, or the table has no TDX entry, the legacy pointer at
/// `image.len() - 0x20` is used (descriptor at `value`). Either way the 16 bytes before the
/// descriptor must be [`TDX_METADATA_GUID`].
pub fn locate_descriptor(image: &[u8]) -> Result<(usize, MetadataSource), MetadataError> {
    match footer::parse_footer_table(image) {
        Ok(table) => {
            if let Some(data) = table.find(TDX_METADATA_OFFSET_GUID) {
                let source = MetadataSource::FooterTable;
                let value = U32::read_from_bytes(data)
                    .map_err(|_| MetadataError::BadOffsetEntrySize { len: data.len() })?
                    .get();
                let offset = usize::try_from(value)
                    .ok()
                    .and_then(|v| image.len().checked_sub(v))
                    .ok_or(MetadataError::PointerOutOfBounds { source, value })?;
                return check_guid(image, offset, source, value).map(|o| (o, source));
            }
        }
        Err(FooterError::MissingFooterGuid | FooterError::ImageTooSmall { .. }) => {}
        Err(e) => return Err(MetadataError::Footer(e)),
    }
    let source = MetadataSource::LegacyPointer;
    let value = footer::read_legacy_metadata_pointer(image).map_err(|_| MetadataError::NotFound)?;
    if value == 0 || value == u32::MAX {
        return Err(MetadataError::NotFound);
    }
    let offset =
        usize::try_from(value).map_err(|_| MetadataError::PointerOutOfBounds { source, value })?;
    check_guid(image, offset, source, value).map(|o| (o, source))
}

/// Checks that [`TDX_METADATA_GUID`] sits right before `offset`.
fn check_guid(
    image: &[u8],
    offset: usize,
    source: MetadataSource,
    value: u32,
) -> Result<usize, MetadataError> {
    let guid = offset
        .checked_sub(GUID_SIZE)
        .and_then(|at| read_at::<[u8; GUID_SIZE]>(image, at))
        .map(Guid)
        .ok_or(MetadataError::PointerOutOfBounds { source, value })?;
    if guid != TDX_METADATA_GUID {
        return Err(MetadataError::MissingMetadataGuid { source, offset });
    }
    Ok(offset)
}

/// Checks the descriptor at `offset` and returns the bytes of its sections.
fn parse_descriptor(image: &[u8], offset: usize) -> Result<&[u8], MetadataError> {
    let header_oob = MetadataError::DescriptorOutOfBounds {
        offset,
        length: DESCRIPTOR_SIZE as u64,
    };
    let header = read_at::<TdvfDescriptor>(image, offset).ok_or(header_oob)?;
    let signature = header.signature.get();
    let length = header.length.get();
    let version = header.version.get();
    let count = header.number_of_section_entry.get();
    if signature != TDVF_SIGNATURE {
        return Err(MetadataError::BadSignature(signature));
    }
    if version != TDVF_VERSION {
        return Err(MetadataError::UnsupportedVersion(version));
    }
    if count == 0 {
        return Err(MetadataError::NoSections);
    }
    if u64::from(count) > MAX_SECTIONS as u64 {
        return Err(MetadataError::TooManySections(count));
    }
    // count <= MAX_SECTIONS: no overflow.
    let expected = DESCRIPTOR_SIZE as u64 + SECTION_SIZE as u64 * u64::from(count);
    if u64::from(length) != expected {
        return Err(MetadataError::BadLength { length, expected });
    }
    let oob = MetadataError::DescriptorOutOfBounds {
        offset,
        length: expected,
    };
    let end = usize::try_from(expected)
        .ok()
        .and_then(|len| offset.checked_add(len))
        .ok_or(oob)?;
    offset
        .checked_add(DESCRIPTOR_SIZE)
        .and_then(|start| image.get(start..end))
        .ok_or(oob)
}

/// Decodes section bytes (a multiple of [`SECTION_SIZE`]).
fn decode_sections(bytes: &[u8]) -> impl Iterator<Item = TdvfSection> + Clone + '_ {
    bytes
        .chunks_exact(SECTION_SIZE)
        .filter_map(|c| TdvfSectionWire::ref_from_bytes(c).ok())
        .map(TdvfSection::from_wire)
}

/// Validated TDX metadata: a descriptor whose every rule holds, over the image's bytes.
#[derive(Debug, Clone, Copy)]
pub struct Metadata<'a> {
    sections: &'a [u8],
    descriptor_offset: usize,
    source: MetadataSource,
}

impl<'a> Metadata<'a> {
    /// The sections in descriptor order (the MRTD order).
    pub fn sections(&self) -> impl Iterator<Item = TdvfSection> + Clone + 'a {
        decode_sections(self.sections)
    }

    /// Number of sections.
    pub fn section_count(&self) -> usize {
        self.sections.len() / SECTION_SIZE
    }

    /// Offset of the TDVF descriptor from the start of the image (the GUID is 16 bytes before).
    pub fn descriptor_offset(&self) -> usize {
        self.descriptor_offset
    }

    /// Which pointer led to the descriptor.
    pub fn source(&self) -> MetadataSource {
        self.source
    }
}

/// Locates ([`locate_descriptor`]), parses and validates ([`validate_sections`]) the TDX
/// metadata of `image`.
pub fn parse_metadata(image: &[u8]) -> Result<Metadata<'_>, MetadataError> {
    let (descriptor_offset, source) = locate_descriptor(image)?;
    let sections = parse_descriptor(image, descriptor_offset)?;
    let image_len = u64::try_from(image.len()).unwrap_or(u64::MAX);
    validate_sections(decode_sections(sections), image_len)?;
    Ok(Metadata {
        sections,
        descriptor_offset,
        source,
    })
}

/// Checks every rule of the spec for a list of sections in an image of `image_len` bytes
/// (td-shim spec Part I "TDVF metadata"; research/td-shim.md §3.4). Per section, in order:
/// known type; reserved attribute bits clear; memory address 4 KiB aligned; memory size a 4 KiB
/// multiple; memory range does not wrap; no data offset without raw data; raw data no larger
/// than memory (except TD_INFO/TD_PARAMS, which have no memory); raw data inside the image;
/// then the rules of its type (attributes, raw data required or forbidden, memory forbidden,
/// at most one). Then for the whole list: PayloadParam needs a Payload; TD_INFO/TD_PARAMS data
/// inside a BFV's data; at least one BFV; a TD_HOB or a PermMem; no two memory ranges overlap.
///
/// The iterator is walked several times (hence `Clone`); the work is quadratic in its length.
pub fn validate_sections<I>(sections: I, image_len: u64) -> Result<(), MetadataError>
where
    I: Iterator<Item = TdvfSection> + Clone,
{
    use MetadataError as E;
    use SectionType as T;

    let mut has_bfv = false;
    let mut has_perm_mem = false;
    let mut hob: Option<usize> = None;
    let mut payload: Option<usize> = None;
    let mut payload_param: Option<usize> = None;
    let mut td_info: Option<usize> = None;
    let mut td_params: Option<usize> = None;

    for (index, s) in sections.clone().enumerate() {
        let kind = s.kind().ok_or(E::UnknownSectionType {
            index,
            code: s.section_type,
        })?;
        let attributes = s.attributes;
        let raw = u64::from(s.raw_data_size);

        // Rules common to every type.
        if attributes & !ATTR_DEFINED != 0 {
            return Err(E::ReservedAttributes { index, attributes });
        }
        if !s.memory_address.is_multiple_of(PAGE_SIZE) {
            return Err(E::MisalignedAddress {
                index,
                address: s.memory_address,
            });
        }
        if !s.memory_data_size.is_multiple_of(PAGE_SIZE) {
            return Err(E::MisalignedSize {
                index,
                size: s.memory_data_size,
            });
        }
        if s.memory_address.checked_add(s.memory_data_size).is_none() {
            return Err(E::MemoryRangeOverflow { index });
        }
        if raw == 0 && s.data_offset != 0 {
            return Err(E::DataOffsetWithoutData { index });
        }
        if !kind.is_info() && raw > s.memory_data_size {
            return Err(E::RawDataLargerThanMemory { index });
        }
        // Two u32s: the sum fits a u64.
        if u64::from(s.data_offset) + raw > image_len {
            return Err(E::RawDataOutsideImage { index });
        }

        // Rules of the type.
        let bad_attributes = E::BadAttributes {
            index,
            kind,
            attributes,
        };
        let attributes_ok = match kind {
            T::Bfv => attributes == ATTR_MR_EXTEND,
            T::PermMem => attributes == ATTR_PAGE_AUG,
            T::Payload => attributes & !ATTR_MR_EXTEND == 0,
            T::Cfv | T::TdHob | T::TempMem | T::PayloadParam | T::TdInfo | T::TdParams => {
                attributes == 0
            }
        };
        if !attributes_ok {
            return Err(bad_attributes);
        }
        let needs_raw = matches!(kind, T::Bfv | T::Cfv | T::TdInfo | T::TdParams);
        let forbids_raw = matches!(kind, T::TdHob | T::TempMem | T::PermMem);
        if needs_raw && raw == 0 {
            return Err(E::MissingRawData { index, kind });
        }
        if forbids_raw && raw != 0 {
            return Err(E::UnexpectedRawData { index, kind });
        }
        if kind.is_info() && (s.memory_address != 0 || s.memory_data_size != 0) {
            return Err(E::InfoSectionHasMemory { index, kind });
        }
        let once = match kind {
            T::TdHob => Some(&mut hob),
            T::Payload => Some(&mut payload),
            T::PayloadParam => Some(&mut payload_param),
            T::TdInfo => Some(&mut td_info),
            T::TdParams => Some(&mut td_params),
            T::Bfv | T::Cfv | T::TempMem | T::PermMem => None,
        };
        if let Some(seen) = once {
            if seen.is_some() {
                return Err(E::DuplicateSection { index, kind });
            }
            *seen = Some(index);
        }
        has_bfv |= kind == T::Bfv;
        has_perm_mem |= kind == T::PermMem;
    }

    if let (Some(index), None) = (payload_param, payload) {
        return Err(E::PayloadParamWithoutPayload { index });
    }
    for (index, kind) in [(td_info, T::TdInfo), (td_params, T::TdParams)] {
        let Some(index) = index else { continue };
        let Some(s) = sections.clone().nth(index) else {
            continue;
        };
        let start = u64::from(s.data_offset);
        let end = start + u64::from(s.raw_data_size);
        let inside = sections.clone().any(|b| {
            let b_start = u64::from(b.data_offset);
            let b_end = b_start + u64::from(b.raw_data_size);
            b.kind() == Some(T::Bfv) && b_start <= start && end <= b_end
        });
        if !inside {
            return Err(E::InfoSectionOutsideBfv { index, kind });
        }
    }
    if !has_bfv {
        return Err(E::MissingBfv);
    }
    if hob.is_none() && !has_perm_mem {
        return Err(E::MissingTdHobOrPermMem);
    }
    for (second, b) in sections.clone().enumerate() {
        if b.memory_data_size == 0 {
            continue;
        }
        for (first, a) in sections.clone().take(second).enumerate() {
            // Neither range wraps (checked above), so the additions cannot overflow.
            if a.memory_data_size != 0
                && a.memory_address < b.memory_address.saturating_add(b.memory_data_size)
                && b.memory_address < a.memory_address.saturating_add(a.memory_data_size)
            {
                return Err(E::Overlap { first, second });
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The rules of the VMMs that load the image. The spec rules above say what a descriptor may
// contain; these say what a given VMM accepts, which is narrower (QEMU) or looser (Cloud
// Hypervisor). research/tdx-boot.md §6 is the source of every rule.

/// One rule a VMM applies to a firmware image (TDX here, SEV-SNP in [`crate::sev`]), for docs,
/// tool output and error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmmRule {
    /// Short stable identifier, printed in error messages and `td-shim-tool inspect`.
    pub id: &'static str,
    /// What the rule requires.
    pub text: &'static str,
    /// Where the VMM applies it (file and function, per research/tdx-boot.md).
    pub source: &'static str,
    /// False when the research notes do not show the VMM making this check: the rule is then
    /// inferred (what the VMM does with the field) and encoded as documented, marked unconfirmed.
    pub confirmed: bool,
}

/// Upstream QEMU's TDX firmware rules (`-object tdx-guest` with `-bios`), in the order
/// [`check_qemu_rules`] checks them. Index with [`QemuRuleError::rule`].
pub const QEMU_RULES: [VmmRule; 17] = [
    VmmRule {
        id: "bios-size",
        text: "the image size is a non-zero multiple of 64 KiB, at most 4 GiB (it is mapped at 4 GiB - size)",
        source: "hw/i386/x86-common.c x86_bios_rom_init()",
        confirmed: true,
    },
    VmmRule {
        id: "footer-table",
        text: "the OVMF footer GUID table ends at image end - 0x20 and is well-formed; QEMU has no legacy-pointer fallback",
        source: "hw/i386/pc_sysfw_ovmf.c pc_system_parse_ovmf_flash()",
        confirmed: true,
    },
    VmmRule {
        id: "tdx-offset-entry",
        text: "the footer table has a TDX_METADATA_OFFSET_GUID entry whose data is a u32",
        source: "hw/i386/tdvf.c tdvf_get_metadata(), pc_system_ovmf_table_find()",
        confirmed: true,
    },
    VmmRule {
        id: "descriptor-in-image",
        text: "the 16-byte TDVF descriptor at image size - u32 lies inside the image",
        source: "hw/i386/tdvf.c tdvf_get_metadata()",
        confirmed: true,
    },
    VmmRule {
        id: "signature",
        text: "the descriptor signature is \"TDVF\" (0x46564454)",
        source: "hw/i386/tdvf.c tdvf_get_metadata()",
        confirmed: true,
    },
    VmmRule {
        id: "version",
        text: "the descriptor version is 1",
        source: "hw/i386/tdvf.c tdvf_parse_metadata()",
        confirmed: true,
    },
    VmmRule {
        id: "min-sections",
        text: "NumberOfSectionEntries is at least 2",
        source: "hw/i386/tdvf.c tdvf_parse_metadata()",
        confirmed: true,
    },
    VmmRule {
        id: "length",
        text: "the descriptor Length is 16 + 32 * NumberOfSectionEntries",
        source: "hw/i386/tdvf.c tdvf_parse_metadata()",
        confirmed: true,
    },
    VmmRule {
        id: "sections-in-image",
        text: "the 32-byte sections after the descriptor lie inside the image (QEMU copies them without a bounds check)",
        source: "hw/i386/tdvf.c tdvf_parse_metadata() (inferred)",
        confirmed: false,
    },
    VmmRule {
        id: "section-type",
        text: "every section is BFV (0), CFV (1), TD_HOB (2) or TempMem (3); others fail with \"TDVF contains unsupported section type N\"",
        source: "hw/i386/tdvf.c tdvf_parse_and_check_section_entry()",
        confirmed: true,
    },
    VmmRule {
        id: "address-4k",
        text: "MemoryAddress is 4 KiB aligned",
        source: "hw/i386/tdvf.c tdvf_parse_and_check_section_entry()",
        confirmed: true,
    },
    VmmRule {
        id: "size-4k",
        text: "MemoryDataSize is a multiple of 4 KiB",
        source: "hw/i386/tdvf.c tdvf_parse_and_check_section_entry()",
        confirmed: true,
    },
    VmmRule {
        id: "raw-within-memory",
        text: "MemoryDataSize >= RawDataSize",
        source: "hw/i386/tdvf.c tdvf_parse_and_check_section_entry()",
        confirmed: true,
    },
    VmmRule {
        id: "bfv-cfv-raw",
        text: "BFV and CFV sections have RawDataSize != 0 (they are copied from the image)",
        source: "hw/i386/tdvf.c tdvf_parse_and_check_section_entry()",
        confirmed: true,
    },
    VmmRule {
        id: "hob-tempmem-raw",
        text: "TD_HOB and TempMem sections have RawDataSize 0 (they are zero pages)",
        source: "hw/i386/tdvf.c tdvf_parse_and_check_section_entry()",
        confirmed: true,
    },
    VmmRule {
        id: "raw-in-image",
        text: "BFV and CFV raw data [DataOffset, DataOffset + RawDataSize) lies inside the image (QEMU copies it from there)",
        source: "target/i386/kvm/tdx.c (inferred: no bounds check is named)",
        confirmed: false,
    },
    VmmRule {
        id: "ram-not-firmware",
        text: "TD_HOB and TempMem sections do not overlap the -bios mapping [4 GiB - size, 4 GiB), which is no e820 RAM (QEMU >= 9: \"Failed to accept memory for TDVF section N\"); the whole rule, inside one e820 RAM entry, depends on -m and is checked at launch",
        source: "target/i386/kvm/tdx.c tdx_accept_ram_range()",
        confirmed: true,
    },
];

/// The rule QEMU's TD HOB handling implies: checked after the sections, reported as
/// [`QemuRuleError::MissingTdHob`].
pub const QEMU_RULE_TD_HOB: VmmRule = VmmRule {
    id: "td-hob-present",
    text: "a TD_HOB section exists (QEMU writes the TD HOB there and passes its GPA in RCX/R8)",
    source: "target/i386/kvm/tdx.c tdx_finalize_vm() (inferred: the notes name no error)",
    confirmed: false,
};

/// The section types upstream QEMU accepts.
pub const QEMU_SECTION_TYPES: [SectionType; 4] = [
    SectionType::Bfv,
    SectionType::Cfv,
    SectionType::TdHob,
    SectionType::TempMem,
];

/// The name of a section type code, or "unknown".
fn type_name(code: u32) -> &'static str {
    match SectionType::from_code(code) {
        Some(t) => t.name(),
        None => "unknown",
    }
}

/// Why upstream QEMU's TDX loader would refuse an image: one variant per rule of
/// [`QEMU_RULES`] (plus [`QEMU_RULE_TD_HOB`]); the message names the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QemuRuleError {
    /// `bios-size`: the image length is 0, not a multiple of 64 KiB, or over 4 GiB.
    BiosSize {
        /// The image length.
        len: u64,
    },
    /// `footer-table`: no footer GUID at end - 0x30, or a malformed table.
    FooterTable(FooterError),
    /// `tdx-offset-entry`: the table has no TDX_METADATA_OFFSET_GUID entry.
    NoTdxOffsetEntry,
    /// `tdx-offset-entry`: the entry's data is shorter than a u32.
    OffsetEntryTooShort {
        /// Bytes of data in the entry.
        len: usize,
    },
    /// `descriptor-in-image`: image size - value leaves no room for the 16-byte descriptor.
    DescriptorOutOfImage {
        /// The entry's value (offset of the descriptor back from the end of the image).
        value: u32,
    },
    /// `signature`: not "TDVF" (holds the value found).
    Signature(u32),
    /// `version`: not 1 (holds the value found).
    Version(u32),
    /// `min-sections`: fewer than 2 sections (holds the count).
    TooFewSections(u32),
    /// `length`: Length is not 16 + 32 * n.
    Length {
        /// The stored length.
        length: u32,
        /// 16 + 32 * the stored count.
        expected: u64,
    },
    /// `sections-in-image` (unconfirmed): the section array runs past the end of the image.
    SectionsOutOfImage {
        /// Offset of the descriptor in the image.
        offset: usize,
        /// The stored number of sections.
        count: u32,
    },
    /// `section-type`: a type other than BFV, CFV, TD_HOB and TempMem.
    SectionType {
        /// The section's position in the descriptor, from 0.
        index: usize,
        /// The stored type.
        code: u32,
    },
    /// `address-4k`: MemoryAddress is not 4 KiB aligned.
    MisalignedAddress {
        /// The section's position in the descriptor, from 0.
        index: usize,
        /// The section's type.
        kind: SectionType,
        /// The stored address.
        address: u64,
    },
    /// `size-4k`: MemoryDataSize is not a multiple of 4 KiB.
    MisalignedSize {
        /// The section's position in the descriptor, from 0.
        index: usize,
        /// The section's type.
        kind: SectionType,
        /// The stored size.
        size: u64,
    },
    /// `raw-within-memory`: RawDataSize exceeds MemoryDataSize.
    RawDataLargerThanMemory {
        /// The section's position in the descriptor, from 0.
        index: usize,
        /// The section's type.
        kind: SectionType,
        /// RawDataSize.
        raw: u32,
        /// MemoryDataSize.
        memory: u64,
    },
    /// `bfv-cfv-raw`: a BFV or CFV with RawDataSize 0.
    MissingRawData {
        /// The section's position in the descriptor, from 0.
        index: usize,
        /// The section's type.
        kind: SectionType,
    },
    /// `hob-tempmem-raw`: a TD_HOB or TempMem with RawDataSize other than 0.
    UnexpectedRawData {
        /// The section's position in the descriptor, from 0.
        index: usize,
        /// The section's type.
        kind: SectionType,
        /// RawDataSize.
        raw: u32,
    },
    /// `raw-in-image` (unconfirmed): BFV or CFV raw data runs past the end of the image.
    RawDataOutsideImage {
        /// The section's position in the descriptor, from 0.
        index: usize,
        /// The section's type.
        kind: SectionType,
        /// DataOffset + RawDataSize.
        end: u64,
        /// The image length.
        image_len: u64,
    },
    /// `ram-not-firmware`: a TD_HOB or TempMem section overlaps the firmware's own mapping.
    RamSectionInFirmware {
        /// The section's position in the descriptor, from 0.
        index: usize,
        /// The section's type.
        kind: SectionType,
        /// MemoryAddress.
        address: u64,
        /// Where the -bios mapping starts (4 GiB - image size).
        bios_base: u64,
    },
    /// `td-hob-present` (unconfirmed): no TD_HOB section.
    MissingTdHob,
}

impl QemuRuleError {
    /// The rule this error breaks.
    pub fn rule(&self) -> &'static VmmRule {
        let i = match self {
            Self::BiosSize { .. } => 0,
            Self::FooterTable(_) => 1,
            Self::NoTdxOffsetEntry | Self::OffsetEntryTooShort { .. } => 2,
            Self::DescriptorOutOfImage { .. } => 3,
            Self::Signature(_) => 4,
            Self::Version(_) => 5,
            Self::TooFewSections(_) => 6,
            Self::Length { .. } => 7,
            Self::SectionsOutOfImage { .. } => 8,
            Self::SectionType { .. } => 9,
            Self::MisalignedAddress { .. } => 10,
            Self::MisalignedSize { .. } => 11,
            Self::RawDataLargerThanMemory { .. } => 12,
            Self::MissingRawData { .. } => 13,
            Self::UnexpectedRawData { .. } => 14,
            Self::RawDataOutsideImage { .. } => 15,
            Self::RamSectionInFirmware { .. } => 16,
            Self::MissingTdHob => return &QEMU_RULE_TD_HOB,
        };
        &QEMU_RULES[i]
    }
}

impl fmt::Display for QemuRuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rule = self.rule();
        write!(f, "QEMU TDX rule {}: ", rule.id)?;
        match self {
            Self::BiosSize { len } => write!(
                f,
                "QEMU requires a -bios image of a non-zero multiple of 64 KiB up to 4 GiB, found {len:#x} bytes"
            ),
            Self::FooterTable(e) => write!(
                f,
                "QEMU finds the TDX metadata only through the OVMF footer GUID table: {e}"
            ),
            Self::NoTdxOffsetEntry => write!(
                f,
                "the footer table has no {TDX_METADATA_OFFSET_GUID} entry (QEMU: \"Cannot find TDX_METADATA_OFFSET_GUID\")"
            ),
            Self::OffsetEntryTooShort { len } => write!(
                f,
                "the footer-table TDX entry holds {len} bytes; QEMU reads a u32"
            ),
            Self::DescriptorOutOfImage { value } => write!(
                f,
                "the footer-table TDX entry {value:#x} puts the 16-byte descriptor outside the image"
            ),
            Self::Signature(sig) => write!(
                f,
                "QEMU requires the descriptor signature \"TDVF\", found {sig:#010x}"
            ),
            Self::Version(v) => write!(f, "QEMU requires descriptor version 1, found {v}"),
            Self::TooFewSections(n) => write!(
                f,
                "QEMU requires at least 2 sections (\"Invalid number of fw entries\"), found {n}"
            ),
            Self::Length { length, expected } => write!(
                f,
                "QEMU requires Length 16 + 32 * sections = {expected}, found {length}"
            ),
            Self::SectionsOutOfImage { offset, count } => write!(
                f,
                "the {count} sections of the descriptor at {offset:#x} run past the end of the image"
            ),
            Self::SectionType { index, code } => write!(
                f,
                "section {index} ({}): QEMU accepts only BFV (0), CFV (1), TD_HOB (2) and TempMem (3), \
                 found type {code} (\"TDVF contains unsupported section type {code}\")",
                type_name(*code)
            ),
            Self::MisalignedAddress {
                index,
                kind,
                address,
            } => write!(
                f,
                "section {index} ({kind}): QEMU requires a 4 KiB-aligned MemoryAddress, found {address:#x}"
            ),
            Self::MisalignedSize { index, kind, size } => write!(
                f,
                "section {index} ({kind}): QEMU requires MemoryDataSize a multiple of 4 KiB, found {size:#x}"
            ),
            Self::RawDataLargerThanMemory {
                index,
                kind,
                raw,
                memory,
            } => write!(
                f,
                "section {index} ({kind}): QEMU requires MemoryDataSize >= RawDataSize, found {memory:#x} < {raw:#x}"
            ),
            Self::MissingRawData { index, kind } => write!(
                f,
                "section {index} ({kind}): QEMU requires RawDataSize != 0 for BFV and CFV, found 0"
            ),
            Self::UnexpectedRawData { index, kind, raw } => write!(
                f,
                "section {index} ({kind}): QEMU requires RawDataSize 0, found {raw}"
            ),
            Self::RawDataOutsideImage {
                index,
                kind,
                end,
                image_len,
            } => write!(
                f,
                "section {index} ({kind}): raw data ends at {end:#x}, past the image's {image_len:#x} bytes"
            ),
            Self::RamSectionInFirmware {
                index,
                kind,
                address,
                bios_base,
            } => write!(
                f,
                "section {index} ({kind}) at {address:#x} overlaps the -bios mapping from {bios_base:#x}, \
                 which is not RAM (QEMU: \"Failed to accept memory for TDVF section {index}\")"
            ),
            Self::MissingTdHob => write!(f, "no TD_HOB section: QEMU has nowhere to write the TD HOB"),
        }?;
        if !rule.confirmed {
            write!(f, " (rule inferred, not confirmed from QEMU's source)")?;
        }
        Ok(())
    }
}

/// Checks that upstream QEMU's TDX loader would accept `image` as `-bios`: every rule of
/// [`QEMU_RULES`], in that order, then [`QEMU_RULE_TD_HOB`]; the first rule broken is returned.
/// On success returns the descriptor's offset in the image.
///
/// QEMU reads the descriptor only through the footer GUID table (never the legacy pointer) and
/// does not check the metadata GUID before it, so neither does this. Rules that depend on the
/// guest (TD_HOB and TempMem inside one e820 RAM entry for the `-m` given) are checked only as
/// far as the image decides them. Takes untrusted bytes; never panics.
pub fn check_qemu_rules(image: &[u8]) -> Result<usize, QemuRuleError> {
    use QemuRuleError as E;
    let len = u64::try_from(image.len()).unwrap_or(u64::MAX);
    if len == 0 || !len.is_multiple_of(0x1_0000) || len > crate::layout::FOUR_GIB {
        return Err(E::BiosSize { len });
    }
    let table = footer::parse_footer_table(image).map_err(E::FooterTable)?;
    let data = table
        .find(TDX_METADATA_OFFSET_GUID)
        .ok_or(E::NoTdxOffsetEntry)?;
    let value = data
        .get(..4)
        .and_then(|b| U32::read_from_bytes(b).ok())
        .ok_or(E::OffsetEntryTooShort { len: data.len() })?
        .get();
    let offset = usize::try_from(value)
        .ok()
        .and_then(|v| image.len().checked_sub(v))
        .ok_or(E::DescriptorOutOfImage { value })?;
    let header =
        read_at::<TdvfDescriptor>(image, offset).ok_or(E::DescriptorOutOfImage { value })?;
    let signature = header.signature.get();
    if signature != TDVF_SIGNATURE {
        return Err(E::Signature(signature));
    }
    let version = header.version.get();
    if version != TDVF_VERSION {
        return Err(E::Version(version));
    }
    let count = header.number_of_section_entry.get();
    if count < 2 {
        return Err(E::TooFewSections(count));
    }
    let length = header.length.get();
    // A u32 times 32 plus 16 fits a u64.
    let expected = DESCRIPTOR_SIZE as u64 + SECTION_SIZE as u64 * u64::from(count);
    if u64::from(length) != expected {
        return Err(E::Length { length, expected });
    }
    let bytes = usize::try_from(expected)
        .ok()
        .and_then(|n| Some(offset.checked_add(DESCRIPTOR_SIZE)?..offset.checked_add(n)?))
        .and_then(|r| image.get(r))
        .ok_or(E::SectionsOutOfImage { offset, count })?;
    check_qemu_sections(decode_sections(bytes), len)?;
    Ok(offset)
}

/// The section rules of [`check_qemu_rules`] (from `section-type` on, then `td-hob-present`)
/// for `sections` of an image of `image_len` bytes mapped to end at 4 GiB.
pub fn check_qemu_sections<I>(sections: I, image_len: u64) -> Result<(), QemuRuleError>
where
    I: Iterator<Item = TdvfSection>,
{
    use QemuRuleError as E;
    use SectionType as T;
    let bios_base = crate::layout::FOUR_GIB.saturating_sub(image_len);
    let mut has_hob = false;
    for (index, s) in sections.enumerate() {
        let code = s.section_type;
        let kind = s
            .kind()
            .filter(|k| QEMU_SECTION_TYPES.contains(k))
            .ok_or(E::SectionType { index, code })?;
        if !s.memory_address.is_multiple_of(PAGE_SIZE) {
            return Err(E::MisalignedAddress {
                index,
                kind,
                address: s.memory_address,
            });
        }
        if !s.memory_data_size.is_multiple_of(PAGE_SIZE) {
            return Err(E::MisalignedSize {
                index,
                kind,
                size: s.memory_data_size,
            });
        }
        let raw = s.raw_data_size;
        if u64::from(raw) > s.memory_data_size {
            return Err(E::RawDataLargerThanMemory {
                index,
                kind,
                raw,
                memory: s.memory_data_size,
            });
        }
        match kind {
            T::Bfv | T::Cfv => {
                if raw == 0 {
                    return Err(E::MissingRawData { index, kind });
                }
                // Two u32s: the sum fits a u64.
                let end = u64::from(s.data_offset) + u64::from(raw);
                if end > image_len {
                    return Err(E::RawDataOutsideImage {
                        index,
                        kind,
                        end,
                        image_len,
                    });
                }
            }
            _ => {
                if raw != 0 {
                    return Err(E::UnexpectedRawData { index, kind, raw });
                }
                let end = s.memory_address.saturating_add(s.memory_data_size);
                if s.memory_data_size != 0
                    && s.memory_address < crate::layout::FOUR_GIB
                    && bios_base < end
                {
                    return Err(E::RamSectionInFirmware {
                        index,
                        kind,
                        address: s.memory_address,
                        bios_base,
                    });
                }
                has_hob |= kind == T::TdHob;
            }
        }
    }
    if !has_hob {
        return Err(E::MissingTdHob);
    }
    Ok(())
}

/// The attribute bits of `s` that QEMU does not act on: everything but MR.EXTEND (which it
/// honours for any section type). PAGE.AUG is defined in QEMU but never read, so such a section
/// is still PAGE.ADDed; QEMU checks no attribute bit (research/tdx-boot.md §6.2).
pub const fn qemu_ignored_attributes(s: &TdvfSection) -> u32 {
    s.attributes & !ATTR_MR_EXTEND
}

/// Cloud Hypervisor's TDX firmware rules (`arch/src/x86_64/tdx/mod.rs`), in the order
/// [`check_cloud_hypervisor_rules`] checks them.
pub const CLOUD_HYPERVISOR_RULES: [VmmRule; 3] = [
    VmmRule {
        id: "locate",
        text: "the descriptor is named by the footer table's TDX entry or, without one, by the legacy u32 at image end - 0x20 (offset from the start); this crate also requires the metadata GUID before it, as td-shim's tools do",
        source: "arch/src/x86_64/tdx/mod.rs tdvf_descriptor_offset()",
        confirmed: true,
    },
    VmmRule {
        id: "descriptor",
        text: "signature \"TDVF\", version 1, at least one section, Length 16 + 32 * n, sections inside the image (the td-shim spec's rules; Cloud Hypervisor's own checks are not in the notes)",
        source: "td-shim spec Part I (Cloud Hypervisor: not confirmed)",
        confirmed: false,
    },
    VmmRule {
        id: "section-type",
        text: "every section type is 0-6 (BFV, CFV, TD_HOB, TempMem, PermMem, Payload, PayloadParam)",
        source: "arch/src/x86_64/tdx/mod.rs",
        confirmed: true,
    },
];

/// Why Cloud Hypervisor would refuse an image: one variant per rule of
/// [`CLOUD_HYPERVISOR_RULES`]; the message names the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloudHypervisorRuleError {
    /// `locate`: neither pointer leads to a descriptor (holds why).
    Locate(MetadataError),
    /// `descriptor`: the descriptor header or its extent is wrong (holds why).
    Descriptor(MetadataError),
    /// `section-type`: a type above 6 (TD_INFO, TD_PARAMS or unknown).
    SectionType {
        /// The section's position in the descriptor, from 0.
        index: usize,
        /// The stored type.
        code: u32,
    },
}

impl CloudHypervisorRuleError {
    /// The rule this error breaks.
    pub fn rule(&self) -> &'static VmmRule {
        match self {
            Self::Locate(_) => &CLOUD_HYPERVISOR_RULES[0],
            Self::Descriptor(_) => &CLOUD_HYPERVISOR_RULES[1],
            Self::SectionType { .. } => &CLOUD_HYPERVISOR_RULES[2],
        }
    }
}

impl fmt::Display for CloudHypervisorRuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cloud Hypervisor TDX rule {}: ", self.rule().id)?;
        match self {
            Self::Locate(e) | Self::Descriptor(e) => write!(f, "{e}")?,
            Self::SectionType { index, code } => write!(
                f,
                "section {index} ({}): Cloud Hypervisor accepts section types 0-6, found {code}",
                type_name(*code)
            )?,
        }
        if !self.rule().confirmed {
            write!(f, " (rule not confirmed from Cloud Hypervisor's source)")?;
        }
        Ok(())
    }
}

/// Checks that Cloud Hypervisor would find and accept the TDX metadata of `image`: the rules of
/// [`CLOUD_HYPERVISOR_RULES`] in order. Returns which pointer it would use (the footer table
/// when it has a TDX entry, else the legacy pointer). Takes untrusted bytes; never panics.
pub fn check_cloud_hypervisor_rules(
    image: &[u8],
) -> Result<MetadataSource, CloudHypervisorRuleError> {
    use CloudHypervisorRuleError as E;
    let (offset, source) = locate_descriptor(image).map_err(E::Locate)?;
    let bytes = parse_descriptor(image, offset).map_err(E::Descriptor)?;
    for (index, s) in decode_sections(bytes).enumerate() {
        if s.section_type > SectionType::PayloadParam.code() {
            return Err(E::SectionType {
                index,
                code: s.section_type,
            });
        }
    }
    Ok(source)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::footer::{
        parse_footer_table, write_footer_table, write_legacy_metadata_pointer, FooterEntry,
    };
    use crate::layout::{IMAGE_METADATA, IMAGE_SIZE};
    use proptest::prelude::*;
    use std::{string::ToString, vec, vec::Vec};

    use MetadataError as E;
    use SectionType as T;

    /// Small test images: 64 KiB, metadata GUID at 0x1000 (descriptor at 0x1010).
    const SMALL: usize = 0x1_0000;
    const META_AT: usize = 0x1000;

    fn section(
        kind: SectionType,
        data_offset: u32,
        raw: u32,
        address: u64,
        size: u64,
        attributes: u32,
    ) -> TdvfSection {
        TdvfSection {
            data_offset,
            raw_data_size: raw,
            memory_address: address,
            memory_data_size: size,
            section_type: kind.code(),
            attributes,
        }
    }

    /// A valid section list for a 64 KiB image mapped below 4 GiB.
    fn small_sections() -> Vec<TdvfSection> {
        vec![
            section(T::Bfv, 0x1000, 0xF000, 0xFFFF_1000, 0xF000, ATTR_MR_EXTEND),
            section(T::TempMem, 0, 0, 0x10_0000, 0x1_0000, 0),
            section(T::TdHob, 0, 0, 0x20_0000, 0x1000, 0),
            section(T::Payload, 0, 0x1000, 0x30_0000, 0x1000, 0),
        ]
    }

    fn cfv() -> TdvfSection {
        section(T::Cfv, 0, 0x1000, 0x50_0000, 0x1000, 0)
    }
    fn perm_mem() -> TdvfSection {
        section(T::PermMem, 0, 0, 0x60_0000, 0x1000, ATTR_PAGE_AUG)
    }
    fn payload_param() -> TdvfSection {
        section(T::PayloadParam, 0, 0, 0x70_0000, 0x1000, 0)
    }
    fn td_info(kind: SectionType) -> TdvfSection {
        section(kind, 0x2000, 0x200, 0, 0, 0)
    }

    /// An image of `len` bytes with `sections` written at `meta_at` and the chosen pointers.
    fn build(
        sections: &[TdvfSection],
        len: usize,
        meta_at: usize,
        footer: bool,
        legacy: bool,
    ) -> Vec<u8> {
        let mut image = vec![0u8; len];
        write_metadata(sections, &mut image[meta_at..]).unwrap();
        let descriptor = meta_at + GUID_SIZE;
        if footer {
            let from_end = ((len - descriptor) as u32).to_le_bytes();
            let entry = FooterEntry {
                guid: TDX_METADATA_OFFSET_GUID,
                data: &from_end,
            };
            write_footer_table(&mut image, &[entry]).unwrap();
        }
        if legacy {
            write_legacy_metadata_pointer(&mut image, descriptor as u32).unwrap();
        }
        image
    }

    fn small_image() -> Vec<u8> {
        build(&small_sections(), SMALL, META_AT, true, true)
    }

    /// Parses a small image whose section list is `small_sections()` changed by `mutate`.
    fn with(mutate: impl FnOnce(&mut Vec<TdvfSection>)) -> Result<(), MetadataError> {
        let mut sections = small_sections();
        mutate(&mut sections);
        let image = build(&sections, SMALL, META_AT, true, true);
        let parsed = parse_metadata(&image).map(|m| m.sections().collect::<Vec<_>>());
        // The image path and the direct call agree.
        let direct = validate_sections(sections.iter().copied(), SMALL as u64);
        assert_eq!(parsed.clone().map(|_| ()), direct);
        if let Ok(parsed) = parsed {
            assert_eq!(parsed, sections);
        }
        direct
    }

    /// Sets the u32 at `at` in `image`.
    fn set_u32(image: &mut [u8], at: usize, v: u32) {
        image[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    const DESC: usize = META_AT + GUID_SIZE;

    // --- Types, constants, writer.

    #[test]
    fn section_types_round_trip() {
        for code in 0..9 {
            let t = SectionType::from_code(code).unwrap();
            assert_eq!(t.code(), code);
            assert!(!t.name().is_empty());
            assert_eq!(t.to_string(), t.name());
        }
        assert_eq!(SectionType::from_code(9), None);
        assert_eq!(SectionType::TdHob.name(), "TD_HOB");
    }

    #[test]
    fn constants_match_the_spec() {
        assert_eq!(&TDVF_SIGNATURE.to_le_bytes(), b"TDVF");
        assert_eq!(
            TDX_METADATA_GUID.as_bytes(),
            &[
                0xf3, 0xf9, 0xea, 0xe9, 0x8e, 0x16, 0xd5, 0x44, 0xa8, 0xeb, 0x7f, 0x4d, 0x87, 0x38,
                0xf6, 0xae
            ]
        );
        assert_eq!(
            TDX_METADATA_GUID.to_string(),
            "e9eaf9f3-168e-44d5-a8eb-7f4d8738f6ae"
        );
        assert_eq!(encoded_len(0), 32);
        assert_eq!(encoded_len(4), 32 + 128);
        assert_eq!(encoded_len(usize::MAX), usize::MAX);
    }

    #[test]
    fn section_bytes_round_trip() {
        let s = TdvfSection {
            data_offset: 0x0403_0201,
            raw_data_size: 0x0807_0605,
            memory_address: 0x100f_0e0d_0c0b_0a09,
            memory_data_size: 0x1817_1615_1413_1211,
            section_type: 0x1c1b_1a19,
            attributes: 0x201f_1e1d,
        };
        let b = s.to_bytes();
        assert_eq!(b, core::array::from_fn(|i| i as u8 + 1));
        assert_eq!(TdvfSection::from_bytes(&b), s);
    }

    #[test]
    fn writer_layout_and_errors() {
        let sections = small_sections();
        let mut out = vec![0u8; 0x100];
        assert_eq!(write_metadata(&sections, &mut out), Ok(encoded_len(4)));
        assert_eq!(&out[..16], TDX_METADATA_GUID.as_bytes());
        assert_eq!(&out[16..20], b"TDVF");
        assert_eq!(&out[20..24], &(16u32 + 4 * 32).to_le_bytes());
        assert_eq!(&out[24..28], &1u32.to_le_bytes());
        assert_eq!(&out[28..32], &4u32.to_le_bytes());
        assert_eq!(&out[32..64], &sections[0].to_bytes());
        assert!(out[encoded_len(4)..].iter().all(|&b| b == 0));

        assert_eq!(write_metadata(&[], &mut out), Err(E::NoSections));
        let many = vec![sections[0]; MAX_SECTIONS + 1];
        assert_eq!(
            write_metadata(&many, &mut vec![0u8; encoded_len(MAX_SECTIONS + 1)]),
            Err(E::TooManySections(MAX_SECTIONS as u32 + 1))
        );
        let mut short = vec![0u8; encoded_len(4) - 1];
        assert_eq!(
            write_metadata(&sections, &mut short),
            Err(E::BufferTooSmall {
                needed: encoded_len(4),
                available: encoded_len(4) - 1
            })
        );
        assert!(short.iter().all(|&b| b == 0), "nothing written on error");
    }

    // --- This project's image, both pointers.

    #[test]
    fn td_shim_sections_follow_the_layout() {
        let s = td_shim_sections();
        let kinds: Vec<_> = s.iter().map(|s| s.kind().unwrap()).collect();
        assert_eq!(kinds, [T::Bfv, T::TempMem, T::TdHob, T::Cfv]);
        assert_eq!(s[0].data_offset, 0xF0_0000);
        assert_eq!(s[0].memory_address, IMAGE_METADATA.base);
        assert_eq!(
            u64::from(s[0].data_offset) + s[0].memory_data_size,
            IMAGE_SIZE
        );
        assert_eq!(s[0].attributes, ATTR_MR_EXTEND);
        assert_eq!(s[3].data_offset, 0);
        assert_eq!(u64::from(s[3].raw_data_size), s[3].memory_data_size);
        assert_eq!(s[3].attributes, 0);
        assert_eq!(validate_sections(s.into_iter(), IMAGE_SIZE), Ok(()));
    }

    #[test]
    fn full_image_parses_through_both_pointers() {
        let sections = td_shim_sections();
        let len = IMAGE_SIZE as usize;
        let meta_at = IMAGE_METADATA.image_offset() as usize;
        let descriptor = meta_at + GUID_SIZE;

        let both = build(&sections, len, meta_at, true, true);
        let m = parse_metadata(&both).unwrap();
        assert_eq!(m.source(), MetadataSource::FooterTable);
        assert_eq!(m.descriptor_offset(), descriptor);
        assert_eq!(m.section_count(), 4);
        assert_eq!(m.sections().collect::<Vec<_>>(), sections);
        // The upstream td-shim tools read the legacy pointer: it agrees.
        assert_eq!(
            crate::footer::read_legacy_metadata_pointer(&both),
            Ok(descriptor as u32)
        );
        assert_eq!(
            parse_footer_table(&both)
                .unwrap()
                .find(TDX_METADATA_OFFSET_GUID),
            Some(&((len - descriptor) as u32).to_le_bytes()[..])
        );

        let legacy = build(&sections, len, meta_at, false, true);
        let m = parse_metadata(&legacy).unwrap();
        assert_eq!(m.source(), MetadataSource::LegacyPointer);
        assert_eq!(m.descriptor_offset(), descriptor);
        assert_eq!(m.sections().collect::<Vec<_>>(), sections);

        let footer_only = build(&sections, len, meta_at, true, false);
        let m = parse_metadata(&footer_only).unwrap();
        assert_eq!(m.source(), MetadataSource::FooterTable);
        assert_eq!(m.sections().collect::<Vec<_>>(), sections);
    }

    #[test]
    fn footer_table_without_tdx_entry_falls_back_to_legacy() {
        let mut image = build(&small_sections(), SMALL, META_AT, false, true);
        let other = FooterEntry {
            guid: Guid([7; 16]),
            data: b"abcd",
        };
        write_footer_table(&mut image, &[other]).unwrap();
        assert_eq!(
            locate_descriptor(&image),
            Ok((DESC, MetadataSource::LegacyPointer))
        );
    }

    // --- Locating.

    #[test]
    fn not_found() {
        assert_eq!(parse_metadata(&[]).unwrap_err(), E::NotFound);
        assert_eq!(parse_metadata(&vec![0u8; SMALL]).unwrap_err(), E::NotFound);
        let mut erased = vec![0u8; SMALL];
        set_u32(&mut erased, SMALL - 0x20, u32::MAX);
        assert_eq!(parse_metadata(&erased).unwrap_err(), E::NotFound);
    }

    #[test]
    fn malformed_footer_table() {
        let mut image = small_image();
        // Footer table length 17.
        image[SMALL - 0x32..SMALL - 0x30].copy_from_slice(&17u16.to_le_bytes());
        assert_eq!(
            parse_metadata(&image).unwrap_err(),
            E::Footer(FooterError::TableTooShort { len: 17 })
        );
    }

    #[test]
    fn bad_offset_entry_size() {
        let mut image = build(&small_sections(), SMALL, META_AT, false, true);
        let entry = FooterEntry {
            guid: TDX_METADATA_OFFSET_GUID,
            data: &[1, 2, 3],
        };
        write_footer_table(&mut image, &[entry]).unwrap();
        assert_eq!(
            parse_metadata(&image).unwrap_err(),
            E::BadOffsetEntrySize { len: 3 }
        );
    }

    #[test]
    fn pointer_out_of_bounds() {
        // Footer: more than the image length back from the end, or no room for the GUID.
        for value in [SMALL as u32 + 1, u32::MAX, SMALL as u32 - 8] {
            let mut image = small_image();
            set_u32(&mut image, SMALL - 0x48, value);
            assert_eq!(
                parse_metadata(&image).unwrap_err(),
                E::PointerOutOfBounds {
                    source: MetadataSource::FooterTable,
                    value
                },
                "footer value {value:#x}"
            );
        }
        // Legacy: no room for the GUID before the descriptor, or past the end.
        for value in [8, SMALL as u32 + 1] {
            let mut image = build(&small_sections(), SMALL, META_AT, false, true);
            set_u32(&mut image, SMALL - 0x20, value);
            assert_eq!(
                parse_metadata(&image).unwrap_err(),
                E::PointerOutOfBounds {
                    source: MetadataSource::LegacyPointer,
                    value
                },
                "legacy value {value:#x}"
            );
        }
    }

    #[test]
    fn missing_metadata_guid() {
        let mut image = small_image();
        image[META_AT + 3] ^= 0x10;
        assert_eq!(
            parse_metadata(&image).unwrap_err(),
            E::MissingMetadataGuid {
                source: MetadataSource::FooterTable,
                offset: DESC
            }
        );
        let mut image = build(&small_sections(), SMALL, META_AT, false, true);
        image[META_AT] ^= 1;
        assert_eq!(
            parse_metadata(&image).unwrap_err(),
            E::MissingMetadataGuid {
                source: MetadataSource::LegacyPointer,
                offset: DESC
            }
        );
    }

    // --- The descriptor.

    #[test]
    fn bad_signature() {
        let mut image = small_image();
        image[DESC] = b'X';
        let sig = u32::from_le_bytes(*b"XDVF");
        assert_eq!(parse_metadata(&image).unwrap_err(), E::BadSignature(sig));
    }

    #[test]
    fn unsupported_version() {
        let mut image = small_image();
        set_u32(&mut image, DESC + 8, 2);
        assert_eq!(
            parse_metadata(&image).unwrap_err(),
            E::UnsupportedVersion(2)
        );
    }

    #[test]
    fn no_sections() {
        let mut image = small_image();
        set_u32(&mut image, DESC + 12, 0);
        assert_eq!(parse_metadata(&image).unwrap_err(), E::NoSections);
    }

    #[test]
    fn too_many_sections() {
        let mut image = small_image();
        set_u32(&mut image, DESC + 12, MAX_SECTIONS as u32 + 1);
        assert_eq!(
            parse_metadata(&image).unwrap_err(),
            E::TooManySections(MAX_SECTIONS as u32 + 1)
        );
        set_u32(&mut image, DESC + 12, u32::MAX);
        assert_eq!(
            parse_metadata(&image).unwrap_err(),
            E::TooManySections(u32::MAX)
        );
    }

    #[test]
    fn bad_length() {
        let mut image = small_image();
        set_u32(&mut image, DESC + 4, 16 + 32 * 4 + 32);
        assert_eq!(
            parse_metadata(&image).unwrap_err(),
            E::BadLength {
                length: 16 + 32 * 5,
                expected: 16 + 32 * 4
            }
        );
        // A length that excludes the sections (or includes the GUID) is wrong too.
        set_u32(&mut image, DESC + 4, 16);
        assert!(matches!(
            parse_metadata(&image).unwrap_err(),
            E::BadLength { length: 16, .. }
        ));
    }

    #[test]
    fn descriptor_out_of_bounds() {
        // Legacy pointer to a descriptor 0x60 bytes before the end: its 4 sections need 0x90.
        let meta_at = SMALL - 0x70;
        let mut encoded = vec![0u8; encoded_len(4)];
        write_metadata(&small_sections(), &mut encoded).unwrap();
        let mut image = vec![0u8; SMALL];
        image[meta_at..SMALL - 0x20].copy_from_slice(&encoded[..0x50]);
        write_legacy_metadata_pointer(&mut image, (meta_at + GUID_SIZE) as u32).unwrap();
        assert_eq!(
            parse_metadata(&image).unwrap_err(),
            E::DescriptorOutOfBounds {
                offset: meta_at + GUID_SIZE,
                length: 16 + 32 * 4
            }
        );
        // Even the descriptor header is past the end: footer value 0, GUID in the last 16 bytes.
        let mut image = vec![0u8; SMALL];
        image[SMALL - 16..].copy_from_slice(TDX_METADATA_GUID.as_bytes());
        let from_end = 0u32.to_le_bytes();
        let entry = FooterEntry {
            guid: TDX_METADATA_OFFSET_GUID,
            data: &from_end,
        };
        write_footer_table(&mut image, &[entry]).unwrap();
        assert_eq!(
            parse_metadata(&image).unwrap_err(),
            E::DescriptorOutOfBounds {
                offset: SMALL,
                length: 16
            }
        );
    }

    // --- Each section rule.

    #[test]
    fn the_reference_lists_are_valid() {
        assert_eq!(with(|_| {}), Ok(()));
        // Every optional type, each once, still valid.
        assert_eq!(
            with(|s| {
                s.push(cfv());
                s.push(perm_mem());
                s.push(payload_param());
                s.push(td_info(T::TdInfo));
                s.push(td_info(T::TdParams));
            }),
            Ok(())
        );
        // PermMem instead of TD_HOB; a measured payload; raw data shorter than memory;
        // memory-less sections (size 0) may share an address.
        assert_eq!(
            with(|s| {
                s[2] = perm_mem();
                s[3].attributes = ATTR_MR_EXTEND;
                s[3].raw_data_size = 0x800;
                s.push(section(T::TempMem, 0, 0, 0x10_0000, 0, 0));
            }),
            Ok(())
        );
    }

    #[test]
    fn unknown_section_type() {
        assert_eq!(
            with(|s| s[1].section_type = 9),
            Err(E::UnknownSectionType { index: 1, code: 9 })
        );
    }

    #[test]
    fn reserved_attributes() {
        assert_eq!(
            with(|s| s[1].attributes = 4),
            Err(E::ReservedAttributes {
                index: 1,
                attributes: 4
            })
        );
        assert_eq!(
            with(|s| s[0].attributes = 0x8000_0001),
            Err(E::ReservedAttributes {
                index: 0,
                attributes: 0x8000_0001
            })
        );
    }

    #[test]
    fn misaligned_address() {
        assert_eq!(
            with(|s| s[2].memory_address += 0x800),
            Err(E::MisalignedAddress {
                index: 2,
                address: 0x20_0800
            })
        );
    }

    #[test]
    fn misaligned_size() {
        assert_eq!(
            with(|s| s[1].memory_data_size = 0x1_0800),
            Err(E::MisalignedSize {
                index: 1,
                size: 0x1_0800
            })
        );
    }

    #[test]
    fn memory_range_overflow() {
        assert_eq!(
            with(|s| s[1].memory_address = 0u64.wrapping_sub(0x1000)),
            Err(E::MemoryRangeOverflow { index: 1 })
        );
    }

    #[test]
    fn data_offset_without_data() {
        assert_eq!(
            with(|s| s[1].data_offset = 0x1000),
            Err(E::DataOffsetWithoutData { index: 1 })
        );
    }

    #[test]
    fn raw_data_larger_than_memory() {
        assert_eq!(
            with(|s| s[3].raw_data_size = 0x1001),
            Err(E::RawDataLargerThanMemory { index: 3 })
        );
    }

    #[test]
    fn raw_data_outside_image() {
        assert_eq!(
            with(|s| s[0].data_offset = 0x1001),
            Err(E::RawDataOutsideImage { index: 0 })
        );
        // u32 offset + u32 size does not wrap.
        assert_eq!(
            with(|s| {
                s[3].data_offset = u32::MAX;
                s[3].raw_data_size = 0x1000;
            }),
            Err(E::RawDataOutsideImage { index: 3 })
        );
    }

    #[test]
    fn bfv_rules() {
        for attributes in [0, ATTR_PAGE_AUG, ATTR_MR_EXTEND | ATTR_PAGE_AUG] {
            assert_eq!(
                with(|s| s[0].attributes = attributes),
                Err(E::BadAttributes {
                    index: 0,
                    kind: T::Bfv,
                    attributes
                })
            );
        }
        assert_eq!(
            with(|s| {
                s[0].raw_data_size = 0;
                s[0].data_offset = 0;
            }),
            Err(E::MissingRawData {
                index: 0,
                kind: T::Bfv
            })
        );
    }

    #[test]
    fn cfv_rules() {
        assert_eq!(
            with(|s| {
                s.push(cfv());
                s[4].attributes = ATTR_MR_EXTEND;
            }),
            Err(E::BadAttributes {
                index: 4,
                kind: T::Cfv,
                attributes: ATTR_MR_EXTEND
            })
        );
        assert_eq!(
            with(|s| {
                s.push(cfv());
                s[4].raw_data_size = 0;
            }),
            Err(E::MissingRawData {
                index: 4,
                kind: T::Cfv
            })
        );
        // Several CFVs are allowed.
        assert_eq!(
            with(|s| {
                s.push(cfv());
                s.push(cfv());
                s[5].memory_address += 0x1000;
            }),
            Ok(())
        );
    }

    #[test]
    fn td_hob_rules() {
        assert_eq!(
            with(|s| s[2].attributes = ATTR_MR_EXTEND),
            Err(E::BadAttributes {
                index: 2,
                kind: T::TdHob,
                attributes: ATTR_MR_EXTEND
            })
        );
        assert_eq!(
            with(|s| s[2].raw_data_size = 0x10),
            Err(E::UnexpectedRawData {
                index: 2,
                kind: T::TdHob
            })
        );
        assert_eq!(
            with(|s| {
                let mut second = s[2];
                second.memory_address = 0x40_0000;
                s.push(second);
            }),
            Err(E::DuplicateSection {
                index: 4,
                kind: T::TdHob
            })
        );
    }

    #[test]
    fn temp_mem_rules() {
        assert_eq!(
            with(|s| s[1].attributes = ATTR_PAGE_AUG),
            Err(E::BadAttributes {
                index: 1,
                kind: T::TempMem,
                attributes: ATTR_PAGE_AUG
            })
        );
        assert_eq!(
            with(|s| s[1].raw_data_size = 0x10),
            Err(E::UnexpectedRawData {
                index: 1,
                kind: T::TempMem
            })
        );
    }

    #[test]
    fn perm_mem_rules() {
        for attributes in [0, ATTR_MR_EXTEND, ATTR_MR_EXTEND | ATTR_PAGE_AUG] {
            assert_eq!(
                with(|s| {
                    s.push(perm_mem());
                    s[4].attributes = attributes;
                }),
                Err(E::BadAttributes {
                    index: 4,
                    kind: T::PermMem,
                    attributes
                })
            );
        }
        assert_eq!(
            with(|s| {
                s.push(perm_mem());
                s[4].raw_data_size = 0x10;
            }),
            Err(E::UnexpectedRawData {
                index: 4,
                kind: T::PermMem
            })
        );
    }

    #[test]
    fn payload_rules() {
        assert_eq!(
            with(|s| s[3].attributes = ATTR_PAGE_AUG),
            Err(E::BadAttributes {
                index: 3,
                kind: T::Payload,
                attributes: ATTR_PAGE_AUG
            })
        );
        assert_eq!(
            with(|s| {
                let mut second = s[3];
                second.memory_address = 0x40_0000;
                s.push(second);
            }),
            Err(E::DuplicateSection {
                index: 4,
                kind: T::Payload
            })
        );
    }

    #[test]
    fn payload_param_rules() {
        assert_eq!(
            with(|s| {
                s.push(payload_param());
                s[4].attributes = ATTR_MR_EXTEND;
            }),
            Err(E::BadAttributes {
                index: 4,
                kind: T::PayloadParam,
                attributes: ATTR_MR_EXTEND
            })
        );
        assert_eq!(
            with(|s| {
                s.push(payload_param());
                let mut second = payload_param();
                second.memory_address = 0x71_0000;
                s.push(second);
            }),
            Err(E::DuplicateSection {
                index: 5,
                kind: T::PayloadParam
            })
        );
        assert_eq!(
            with(|s| {
                s.push(payload_param());
                s.remove(3);
            }),
            Err(E::PayloadParamWithoutPayload { index: 3 })
        );
        // The Payload may come after its parameters.
        assert_eq!(
            with(|s| {
                let payload = s.remove(3);
                s.push(payload_param());
                s.push(payload);
            }),
            Ok(())
        );
    }

    #[test]
    fn td_info_and_td_params_rules() {
        for kind in [T::TdInfo, T::TdParams] {
            assert_eq!(
                with(|s| {
                    s.push(td_info(kind));
                    s[4].attributes = ATTR_MR_EXTEND;
                }),
                Err(E::BadAttributes {
                    index: 4,
                    kind,
                    attributes: ATTR_MR_EXTEND
                })
            );
            assert_eq!(
                with(|s| {
                    s.push(td_info(kind));
                    s[4].memory_address = 0x80_0000;
                }),
                Err(E::InfoSectionHasMemory { index: 4, kind })
            );
            assert_eq!(
                with(|s| {
                    s.push(td_info(kind));
                    s[4].memory_data_size = 0x1000;
                }),
                Err(E::InfoSectionHasMemory { index: 4, kind })
            );
            assert_eq!(
                with(|s| {
                    s.push(td_info(kind));
                    s[4].raw_data_size = 0;
                    s[4].data_offset = 0;
                }),
                Err(E::MissingRawData { index: 4, kind })
            );
            assert_eq!(
                with(|s| {
                    s.push(td_info(kind));
                    s.push(td_info(kind));
                }),
                Err(E::DuplicateSection { index: 5, kind })
            );
            // Before the BFV's data (the payload region) and straddling its start.
            for data_offset in [0, 0xF00] {
                assert_eq!(
                    with(|s| {
                        s.push(td_info(kind));
                        s[4].data_offset = data_offset;
                    }),
                    Err(E::InfoSectionOutsideBfv { index: 4, kind })
                );
            }
            // Inside the image but past a shortened BFV's end.
            assert_eq!(
                with(|s| {
                    s.push(td_info(kind));
                    s[0].raw_data_size = 0x1000;
                }),
                Err(E::InfoSectionOutsideBfv { index: 4, kind })
            );
        }
    }

    #[test]
    fn missing_bfv() {
        assert_eq!(
            with(|s| {
                s.remove(0);
            }),
            Err(E::MissingBfv)
        );
    }

    #[test]
    fn missing_td_hob_or_perm_mem() {
        assert_eq!(
            with(|s| {
                s.remove(2);
            }),
            Err(E::MissingTdHobOrPermMem)
        );
    }

    #[test]
    fn overlapping_memory() {
        assert_eq!(
            with(|s| s[2].memory_address = 0x10_f000),
            Err(E::Overlap {
                first: 1,
                second: 2
            })
        );
        // Touching ranges do not overlap.
        assert_eq!(with(|s| s[2].memory_address = 0x11_0000), Ok(()));
        assert_eq!(
            with(|s| s[0].memory_address = 0x30_0000 - 0xF000 + 0x1000),
            Err(E::Overlap {
                first: 0,
                second: 3
            })
        );
    }

    #[test]
    fn every_error_has_a_message() {
        let src = MetadataSource::FooterTable;
        let all = [
            E::NotFound,
            E::Footer(FooterError::MissingFooterGuid),
            E::BadOffsetEntrySize { len: 3 },
            E::PointerOutOfBounds {
                source: src,
                value: 1,
            },
            E::MissingMetadataGuid {
                source: src,
                offset: 1,
            },
            E::DescriptorOutOfBounds {
                offset: 1,
                length: 16,
            },
            E::BadSignature(0),
            E::UnsupportedVersion(2),
            E::NoSections,
            E::TooManySections(300),
            E::BadLength {
                length: 1,
                expected: 48,
            },
            E::BufferTooSmall {
                needed: 2,
                available: 1,
            },
            E::UnknownSectionType { index: 7, code: 9 },
            E::ReservedAttributes {
                index: 7,
                attributes: 4,
            },
            E::MisalignedAddress {
                index: 7,
                address: 1,
            },
            E::MisalignedSize { index: 7, size: 1 },
            E::MemoryRangeOverflow { index: 7 },
            E::DataOffsetWithoutData { index: 7 },
            E::RawDataLargerThanMemory { index: 7 },
            E::RawDataOutsideImage { index: 7 },
            E::BadAttributes {
                index: 7,
                kind: T::PermMem,
                attributes: 0,
            },
            E::MissingRawData {
                index: 7,
                kind: T::Bfv,
            },
            E::UnexpectedRawData {
                index: 7,
                kind: T::TdHob,
            },
            E::DuplicateSection {
                index: 7,
                kind: T::Payload,
            },
            E::InfoSectionHasMemory {
                index: 7,
                kind: T::TdInfo,
            },
            E::InfoSectionOutsideBfv {
                index: 7,
                kind: T::TdParams,
            },
            E::PayloadParamWithoutPayload { index: 7 },
            E::MissingBfv,
            E::MissingTdHobOrPermMem,
            E::Overlap {
                first: 7,
                second: 8,
            },
        ];
        for e in all {
            let msg = e.to_string();
            assert!(!msg.is_empty());
            let names_index = !matches!(
                e,
                E::NotFound
                    | E::Footer(_)
                    | E::BadOffsetEntrySize { .. }
                    | E::PointerOutOfBounds { .. }
                    | E::MissingMetadataGuid { .. }
                    | E::DescriptorOutOfBounds { .. }
                    | E::BadSignature(_)
                    | E::UnsupportedVersion(_)
                    | E::NoSections
                    | E::TooManySections(_)
                    | E::BadLength { .. }
                    | E::BufferTooSmall { .. }
                    | E::MissingBfv
                    | E::MissingTdHobOrPermMem
            );
            if names_index {
                assert!(
                    msg.contains("section 7") || msg.contains("sections 7"),
                    "{msg}"
                );
            }
        }
        assert!(E::BadAttributes {
            index: 0,
            kind: T::PermMem,
            attributes: 0
        }
        .to_string()
        .contains("PAGE.AUG"));
    }

    // --- QEMU's rules (one test per rule) and Cloud Hypervisor's.

    /// A QEMU-valid section list for a 64 KiB image mapped at [0xFFFF0000, 4 GiB): the CFV is
    /// the first page, the BFV the rest (holding the metadata at 0x1000).
    fn qemu_sections() -> Vec<TdvfSection> {
        vec![
            section(T::Bfv, 0x1000, 0xF000, 0xFFFF_1000, 0xF000, ATTR_MR_EXTEND),
            section(T::TempMem, 0, 0, 0x10_0000, 0x1_0000, 0),
            section(T::TdHob, 0, 0, 0x20_0000, 0x1000, 0),
            section(T::Cfv, 0, 0x1000, 0xFFFF_0000, 0x1000, 0),
        ]
    }

    /// Checks a 64 KiB image (footer table only, as QEMU reads it) whose sections are
    /// `qemu_sections()` changed by `mutate`. Section-level results agree with
    /// `check_qemu_sections`.
    fn qemu_with(mutate: impl FnOnce(&mut Vec<TdvfSection>)) -> Result<(), QemuRuleError> {
        let mut sections = qemu_sections();
        mutate(&mut sections);
        let image = build(&sections, SMALL, META_AT, true, false);
        let result = check_qemu_rules(&image).map(|offset| assert_eq!(offset, DESC));
        if sections.len() >= 2 {
            assert_eq!(
                result,
                check_qemu_sections(sections.iter().copied(), SMALL as u64)
            );
        }
        result
    }

    fn qemu_image() -> Vec<u8> {
        build(&qemu_sections(), SMALL, META_AT, true, false)
    }

    #[test]
    fn our_image_passes_qemu_and_cloud_hypervisor_rules() {
        let sections = td_shim_sections();
        let len = IMAGE_SIZE as usize;
        let meta_at = IMAGE_METADATA.image_offset() as usize;
        let both = build(&sections, len, meta_at, true, true);
        assert_eq!(check_qemu_rules(&both), Ok(meta_at + GUID_SIZE));
        assert_eq!(
            check_cloud_hypervisor_rules(&both),
            Ok(MetadataSource::FooterTable)
        );
        assert!(parse_metadata(&both).is_ok());
        // Cloud Hypervisor still finds it through the legacy pointer alone; QEMU does not.
        let legacy = build(&sections, len, meta_at, false, true);
        assert_eq!(
            check_cloud_hypervisor_rules(&legacy),
            Ok(MetadataSource::LegacyPointer)
        );
        assert_eq!(
            check_qemu_rules(&legacy),
            Err(QemuRuleError::FooterTable(FooterError::MissingFooterGuid))
        );
        // QEMU acts on no attribute of ours but MR.EXTEND.
        assert!(sections.iter().all(|s| qemu_ignored_attributes(s) == 0));
    }

    #[test]
    fn the_old_payload_section_breaks_qemus_section_type_rule() {
        let mut sections = td_shim_sections();
        sections[3].section_type = T::Payload.code();
        let image = build(
            &sections,
            IMAGE_SIZE as usize,
            IMAGE_METADATA.image_offset() as usize,
            true,
            true,
        );
        let e = check_qemu_rules(&image).unwrap_err();
        assert_eq!(e, QemuRuleError::SectionType { index: 3, code: 5 });
        assert!(e
            .to_string()
            .contains("TDVF contains unsupported section type 5"));
        // Cloud Hypervisor accepts type 5.
        assert!(check_cloud_hypervisor_rules(&image).is_ok());
    }

    #[test]
    fn an_ovmf_section_list_passes_qemus_section_rules() {
        // Debian bookworm's OVMF.fd (edk2 2022.11, 2 MiB), as `inspect` reads it.
        let ovmf = [
            section(T::Bfv, 0x2_0000, 0x1E_0000, 0xFFE2_0000, 0x1E_0000, 1),
            section(T::Cfv, 0, 0x2_0000, 0xFFE0_0000, 0x2_0000, 0),
            section(T::TempMem, 0, 0, 0x81_0000, 0x1_0000, 0),
            section(T::TempMem, 0, 0, 0x80_B000, 0x2000, 0),
            section(T::TdHob, 0, 0, 0x80_9000, 0x2000, 0),
            section(T::TempMem, 0, 0, 0x80_0000, 0x6000, 0),
        ];
        assert_eq!(check_qemu_sections(ovmf.into_iter(), 0x20_0000), Ok(()));
        // The same list in OVMF_CODE.fd (the code part only, 0x1E0000 bytes): the BFV's raw
        // data, described for the whole flash, runs past the file.
        assert_eq!(
            check_qemu_sections(ovmf.into_iter(), 0x1E_0000),
            Err(QemuRuleError::RawDataOutsideImage {
                index: 0,
                kind: T::Bfv,
                end: 0x20_0000,
                image_len: 0x1E_0000
            })
        );
    }

    #[test]
    fn qemu_reference_list_is_valid() {
        assert_eq!(qemu_with(|_| {}), Ok(()));
        // Attributes are not checked: PAGE.AUG and reserved bits pass (and are reported as
        // ignored), MR.EXTEND is honoured on any type.
        assert_eq!(
            qemu_with(|s| {
                s[1].attributes = ATTR_PAGE_AUG | 0x8000_0000;
                s[3].attributes = ATTR_MR_EXTEND;
            }),
            Ok(())
        );
        let mut s = qemu_sections()[1];
        s.attributes = ATTR_PAGE_AUG | ATTR_MR_EXTEND;
        assert_eq!(qemu_ignored_attributes(&s), ATTR_PAGE_AUG);
    }

    #[test]
    fn qemu_rule_bios_size() {
        let image = qemu_image();
        for len in [0usize, 0x1000, SMALL + 0x1000] {
            let mut img = vec![0u8; len];
            let keep = len.min(SMALL);
            img[len - keep..].copy_from_slice(&image[SMALL - keep..]);
            assert_eq!(
                check_qemu_rules(&img),
                Err(QemuRuleError::BiosSize { len: len as u64 })
            );
        }
    }

    #[test]
    fn qemu_rule_footer_table() {
        // No table (legacy pointer only): QEMU has no fallback.
        let legacy = build(&qemu_sections(), SMALL, META_AT, false, true);
        assert_eq!(
            check_qemu_rules(&legacy),
            Err(QemuRuleError::FooterTable(FooterError::MissingFooterGuid))
        );
        // A malformed table.
        let mut image = qemu_image();
        image[SMALL - 0x32..SMALL - 0x30].copy_from_slice(&17u16.to_le_bytes());
        assert_eq!(
            check_qemu_rules(&image),
            Err(QemuRuleError::FooterTable(FooterError::TableTooShort {
                len: 17
            }))
        );
    }

    #[test]
    fn qemu_rule_tdx_offset_entry() {
        let mut image = build(&qemu_sections(), SMALL, META_AT, false, true);
        let other = FooterEntry {
            guid: Guid([7; 16]),
            data: b"abcd",
        };
        write_footer_table(&mut image, &[other]).unwrap();
        assert_eq!(
            check_qemu_rules(&image),
            Err(QemuRuleError::NoTdxOffsetEntry)
        );
        let short = FooterEntry {
            guid: TDX_METADATA_OFFSET_GUID,
            data: &[1, 2, 3],
        };
        write_footer_table(&mut image, &[short]).unwrap();
        assert_eq!(
            check_qemu_rules(&image),
            Err(QemuRuleError::OffsetEntryTooShort { len: 3 })
        );
    }

    #[test]
    fn qemu_rule_descriptor_in_image() {
        for value in [SMALL as u32 + 1, u32::MAX, 8] {
            let mut image = qemu_image();
            set_u32(&mut image, SMALL - 0x48, value);
            assert_eq!(
                check_qemu_rules(&image),
                Err(QemuRuleError::DescriptorOutOfImage { value })
            );
        }
    }

    #[test]
    fn qemu_rule_signature() {
        let mut image = qemu_image();
        image[DESC] = b'X';
        assert_eq!(
            check_qemu_rules(&image),
            Err(QemuRuleError::Signature(u32::from_le_bytes(*b"XDVF")))
        );
    }

    #[test]
    fn qemu_rule_version() {
        let mut image = qemu_image();
        set_u32(&mut image, DESC + 8, 2);
        assert_eq!(check_qemu_rules(&image), Err(QemuRuleError::Version(2)));
    }

    #[test]
    fn qemu_rule_min_sections() {
        // One section is valid for the spec, not for QEMU.
        assert_eq!(
            qemu_with(|s| s.truncate(1)),
            Err(QemuRuleError::TooFewSections(1))
        );
        let mut image = qemu_image();
        set_u32(&mut image, DESC + 12, 0);
        assert_eq!(
            check_qemu_rules(&image),
            Err(QemuRuleError::TooFewSections(0))
        );
    }

    #[test]
    fn qemu_rule_length() {
        let mut image = qemu_image();
        set_u32(&mut image, DESC + 4, 16 + 32 * 5);
        assert_eq!(
            check_qemu_rules(&image),
            Err(QemuRuleError::Length {
                length: 16 + 32 * 5,
                expected: 16 + 32 * 4
            })
        );
    }

    #[test]
    fn qemu_rule_sections_in_image() {
        for count in [0x800u32, u32::MAX / 32] {
            let mut image = qemu_image();
            set_u32(&mut image, DESC + 12, count);
            set_u32(
                &mut image,
                DESC + 4,
                16u32.wrapping_add(32u32.wrapping_mul(count)),
            );
            assert_eq!(
                check_qemu_rules(&image),
                Err(QemuRuleError::SectionsOutOfImage {
                    offset: DESC,
                    count
                })
            );
        }
    }

    #[test]
    fn qemu_rule_section_type() {
        for code in [4, 5, 6, 7, 8, 9, u32::MAX] {
            assert_eq!(
                qemu_with(|s| s[3].section_type = code),
                Err(QemuRuleError::SectionType { index: 3, code })
            );
        }
    }

    #[test]
    fn qemu_rule_address_4k() {
        assert_eq!(
            qemu_with(|s| s[2].memory_address += 0x800),
            Err(QemuRuleError::MisalignedAddress {
                index: 2,
                kind: T::TdHob,
                address: 0x20_0800
            })
        );
    }

    #[test]
    fn qemu_rule_size_4k() {
        assert_eq!(
            qemu_with(|s| s[1].memory_data_size = 0x1_0800),
            Err(QemuRuleError::MisalignedSize {
                index: 1,
                kind: T::TempMem,
                size: 0x1_0800
            })
        );
    }

    #[test]
    fn qemu_rule_raw_within_memory() {
        assert_eq!(
            qemu_with(|s| s[3].raw_data_size = 0x1001),
            Err(QemuRuleError::RawDataLargerThanMemory {
                index: 3,
                kind: T::Cfv,
                raw: 0x1001,
                memory: 0x1000
            })
        );
    }

    #[test]
    fn qemu_rule_bfv_cfv_raw() {
        for (index, kind) in [(0, T::Bfv), (3, T::Cfv)] {
            assert_eq!(
                qemu_with(|s| s[index].raw_data_size = 0),
                Err(QemuRuleError::MissingRawData { index, kind })
            );
        }
    }

    #[test]
    fn qemu_rule_hob_tempmem_raw() {
        for (index, kind) in [(1, T::TempMem), (2, T::TdHob)] {
            let e = qemu_with(|s| s[index].raw_data_size = 0x1000).unwrap_err();
            assert_eq!(
                e,
                QemuRuleError::UnexpectedRawData {
                    index,
                    kind,
                    raw: 0x1000
                }
            );
            assert!(e.to_string().contains(&std::format!(
                "section {index} ({kind}): QEMU requires RawDataSize 0, found 4096"
            )));
        }
    }

    #[test]
    fn qemu_rule_raw_in_image() {
        assert_eq!(
            qemu_with(|s| s[3].data_offset = 0xF001),
            Err(QemuRuleError::RawDataOutsideImage {
                index: 3,
                kind: T::Cfv,
                end: 0x1_0001,
                image_len: SMALL as u64
            })
        );
        // u32 offset + u32 size does not wrap.
        assert!(matches!(
            qemu_with(|s| s[0].data_offset = u32::MAX),
            Err(QemuRuleError::RawDataOutsideImage { index: 0, .. })
        ));
    }

    #[test]
    fn qemu_rule_ram_not_firmware() {
        // TempMem inside the image's mapping, as upstream td-shim's mailbox/stack/heap once were.
        assert_eq!(
            qemu_with(|s| s[1].memory_address = 0xFFFF_8000),
            Err(QemuRuleError::RamSectionInFirmware {
                index: 1,
                kind: T::TempMem,
                address: 0xFFFF_8000,
                bios_base: 0xFFFF_0000
            })
        );
        // Straddling the mapping's start.
        assert_eq!(
            qemu_with(|s| {
                s[2].memory_address = 0xFFFE_F000;
                s[2].memory_data_size = 0x2000;
            }),
            Err(QemuRuleError::RamSectionInFirmware {
                index: 2,
                kind: T::TdHob,
                address: 0xFFFE_F000,
                bios_base: 0xFFFF_0000
            })
        );
        // Just below it, and above 4 GiB (RAM above 4 GiB), is fine.
        assert_eq!(qemu_with(|s| s[2].memory_address = 0xFFFE_F000), Ok(()));
        assert_eq!(qemu_with(|s| s[1].memory_address = 1 << 32), Ok(()));
    }

    #[test]
    fn qemu_rule_td_hob_present() {
        assert_eq!(
            qemu_with(|s| {
                s.remove(2);
            }),
            Err(QemuRuleError::MissingTdHob)
        );
    }

    #[test]
    fn every_qemu_error_names_its_rule() {
        use QemuRuleError as Q;
        let k = T::TempMem;
        let all = [
            Q::BiosSize { len: 1 },
            Q::FooterTable(FooterError::MissingFooterGuid),
            Q::NoTdxOffsetEntry,
            Q::OffsetEntryTooShort { len: 3 },
            Q::DescriptorOutOfImage { value: 9 },
            Q::Signature(0),
            Q::Version(2),
            Q::TooFewSections(1),
            Q::Length {
                length: 1,
                expected: 48,
            },
            Q::SectionsOutOfImage {
                offset: 1,
                count: 9,
            },
            Q::SectionType { index: 7, code: 5 },
            Q::MisalignedAddress {
                index: 7,
                kind: k,
                address: 1,
            },
            Q::MisalignedSize {
                index: 7,
                kind: k,
                size: 1,
            },
            Q::RawDataLargerThanMemory {
                index: 7,
                kind: k,
                raw: 2,
                memory: 1,
            },
            Q::MissingRawData {
                index: 7,
                kind: T::Cfv,
            },
            Q::UnexpectedRawData {
                index: 7,
                kind: k,
                raw: 1,
            },
            Q::RawDataOutsideImage {
                index: 7,
                kind: T::Bfv,
                end: 2,
                image_len: 1,
            },
            Q::RamSectionInFirmware {
                index: 7,
                kind: k,
                address: 0,
                bios_base: 0,
            },
            Q::MissingTdHob,
        ];
        let mut rules_seen = Vec::new();
        for e in all {
            let msg = e.to_string();
            let rule = e.rule();
            assert!(
                msg.starts_with(&std::format!("QEMU TDX rule {}: ", rule.id)),
                "{msg}"
            );
            assert_eq!(msg.contains("not confirmed"), !rule.confirmed, "{msg}");
            if !rules_seen.contains(&rule.id) {
                rules_seen.push(rule.id);
            }
        }
        // Every rule has an error; the ids are distinct.
        assert_eq!(rules_seen.len(), QEMU_RULES.len() + 1);
        for r in QEMU_RULES.iter().chain([&QEMU_RULE_TD_HOB]) {
            assert!(rules_seen.contains(&r.id), "{}", r.id);
        }
    }

    #[test]
    fn cloud_hypervisor_rules() {
        use CloudHypervisorRuleError as C;
        // Types 0-6 are accepted (here PermMem, Payload, PayloadParam too), 7 and up are not.
        let mut sections = small_sections();
        sections.push(perm_mem());
        sections.push(payload_param());
        let image = build(&sections, SMALL, META_AT, false, true);
        assert_eq!(
            check_cloud_hypervisor_rules(&image),
            Ok(MetadataSource::LegacyPointer)
        );
        sections.push(td_info(T::TdInfo));
        let image = build(&sections, SMALL, META_AT, true, true);
        let e = check_cloud_hypervisor_rules(&image).unwrap_err();
        assert_eq!(e, C::SectionType { index: 6, code: 7 });
        assert!(e
            .to_string()
            .starts_with("Cloud Hypervisor TDX rule section-type: section 6 (TD_INFO)"));
        // Neither pointer.
        let e = check_cloud_hypervisor_rules(&vec![0u8; SMALL]).unwrap_err();
        assert_eq!(e, C::Locate(E::NotFound));
        assert_eq!(e.rule().id, "locate");
        // A broken descriptor.
        let mut image = small_image();
        set_u32(&mut image, DESC + 8, 2);
        let e = check_cloud_hypervisor_rules(&image).unwrap_err();
        assert_eq!(e, C::Descriptor(E::UnsupportedVersion(2)));
        assert!(e.to_string().contains("not confirmed"));
    }

    // --- Never panics.

    fn any_section() -> impl Strategy<Value = TdvfSection> {
        (
            any::<u32>(),
            any::<u32>(),
            prop_oneof![any::<u64>(), (0u64..0x1000).prop_map(|p| p << 12)],
            prop_oneof![any::<u64>(), (0u64..0x100).prop_map(|p| p << 12)],
            0u32..11,
            0u32..5,
        )
            .prop_map(|(o, r, a, m, t, f)| TdvfSection {
                data_offset: o,
                raw_data_size: r,
                memory_address: a,
                memory_data_size: m,
                section_type: t,
                attributes: f,
            })
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let _ = parse_footer_table(&bytes);
            if let Ok(m) = parse_metadata(&bytes) {
                let _ = m.sections().count();
            }
        }

        #[test]
        fn mutated_images_never_panic(
            mutations in proptest::collection::vec((0usize..0x1100, any::<u8>()), 1..24),
        ) {
            let mut image = small_image();
            for (at, byte) in mutations {
                // 0..0x1000: the metadata page; 0x1000..0x1100: the last 0x100 bytes.
                let at = if at < 0x1000 { META_AT + at } else { SMALL - 0x1100 + at };
                image[at] = byte;
            }
            let _ = parse_footer_table(&image);
            if let Ok(m) = parse_metadata(&image) {
                let sections: Vec<_> = m.sections().collect();
                prop_assert_eq!(sections.len(), m.section_count());
                prop_assert_eq!(validate_sections(sections.into_iter(), SMALL as u64), Ok(()));
            }
        }

        #[test]
        fn random_descriptors_behind_valid_pointers_never_panic(
            descriptor in proptest::collection::vec(any::<u8>(), 0..512),
            count in 0u32..20,
            len in 0x200usize..0x2000,
        ) {
            // GUID + a header with a consistent length, then random section bytes.
            let mut image = vec![0u8; len];
            let meta_at = 0x20;
            image[meta_at..meta_at + 16].copy_from_slice(TDX_METADATA_GUID.as_bytes());
            let header = [TDVF_SIGNATURE, 16 + 32 * count, TDVF_VERSION, count];
            for (i, v) in header.iter().enumerate() {
                set_u32(&mut image, meta_at + 16 + 4 * i, *v);
            }
            let room = (len - 0x60).saturating_sub(meta_at + 32).min(descriptor.len());
            image[meta_at + 32..meta_at + 32 + room].copy_from_slice(&descriptor[..room]);
            write_legacy_metadata_pointer(&mut image, (meta_at + 16) as u32).unwrap();
            let _ = parse_metadata(&image);
        }

        #[test]
        fn vmm_rules_never_panic_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let _ = check_qemu_rules(&bytes);
            let _ = check_cloud_hypervisor_rules(&bytes);
        }

        #[test]
        fn vmm_rules_never_panic_on_mutated_images(
            mutations in proptest::collection::vec((0usize..0x1100, any::<u8>()), 1..24),
        ) {
            let mut image = qemu_image();
            for (at, byte) in mutations {
                let at = if at < 0x1000 { META_AT + at } else { SMALL - 0x1100 + at };
                image[at] = byte;
            }
            let _ = check_qemu_rules(&image).map_err(|e| e.to_string());
            let _ = check_cloud_hypervisor_rules(&image).map_err(|e| e.to_string());
        }

        #[test]
        fn qemu_sections_never_panic(
            sections in proptest::collection::vec(any_section(), 0..12),
            image_len in any::<u64>(),
        ) {
            let _ = check_qemu_sections(sections.iter().copied(), image_len);
        }

        #[test]
        fn validate_never_panics(
            sections in proptest::collection::vec(any_section(), 0..12),
            image_len in any::<u64>(),
        ) {
            let _ = validate_sections(sections.iter().copied(), image_len);
        }
    }
}
