//! The TD HOB: the guest memory map a TDX VMM hands the firmware, parsed and checked.
//!
//! # Where it is and who writes it
//!
//! The image's TDX metadata has a TD_HOB section ([`td_layout::layout::TD_HOB`],
//! `[0x800000, 0x820000)`). The VMM PAGE.ADDs those pages zeroed, writes a UEFI PI "hand-off
//! block" list at their start and passes the list's guest-physical address to every vCPU in RCX
//! (QEMU `tdx_finalize_vm()`, research/tdx-boot.md §6.2). The contents are **not** in MRTD
//! (only the pages' GPAs are) and come from the untrusted VMM: the firmware measures the bytes
//! (the `td_hob` event) and then parses them here, where every field is checked before use and
//! no input panics.
//!
//! # Format
//!
//! A list of HOBs (UEFI PI spec vol. 3), each starting with the generic header, little-endian,
//! each a multiple of 8 bytes long and following the previous one directly:
//!
//! ```text
//! EFI_HOB_GENERIC_HEADER (8)   +0 u16 HobType   +2 u16 HobLength (whole HOB)   +4 u32 Reserved
//!
//! offset 0: PHIT, EFI_HOB_HANDOFF_INFO_TABLE, type 0x0001, 56 bytes
//!   +8  u32 Version (EFI_HOB_HANDOFF_TABLE_VERSION = 0x0009)   +12 u32 BootMode
//!   +16 u64 EfiMemoryTop      +24 u64 EfiMemoryBottom
//!   +32 u64 EfiFreeMemoryTop  +40 u64 EfiFreeMemoryBottom
//!   +48 u64 EfiEndOfHobList
//! then: resource descriptors, EFI_HOB_RESOURCE_DESCRIPTOR, type 0x0003, 48 bytes
//!   +8  Owner GUID (16)   +24 u32 ResourceType   +28 u32 ResourceAttribute
//!   +32 u64 PhysicalStart +40 u64 ResourceLength
//! (other HOB types may be interleaved: they are skipped)
//! last: end of list, type 0xFFFF, 8 bytes (header only)
//! ```
//!
//! What QEMU writes (`hw/i386/tdvf-hob.c: tdvf_hob_create()`, research/tdx-boot.md §6.3): a
//! 56-byte PHIT with Version 9, BootMode 0, the four memory fields 0, and EfiEndOfHobList = the
//! guest address **just past** the end-of-list header; then one 48-byte resource descriptor per
//! RAM piece, sorted by address, Owner GUID zero, ResourceAttribute 0x7
//! (PRESENT | INITIALIZED | TESTED); then the 8-byte end of list. The RAM pieces are QEMU's e820
//! `E820_RAM` entries with the TD_HOB and TempMem sections split out: those, already PAGE.ADDed,
//! are type 0 (system memory); the rest is type 7 (EFI_RESOURCE_MEMORY_UNACCEPTED). So for a
//! q35 TD with 2 GiB and this image's layout:
//!
//! ```text
//! [0x0,       0x100000)   type 7 unaccepted   (below 1 MiB too: the firmware must accept it)
//! [0x100000,  0x800000)   type 0 system       TempMem
//! [0x800000,  0x820000)   type 0 system       TD_HOB
//! [0x820000, 0x80000000)  type 7 unaccepted
//! ```
//!
//! and with 5 GiB, q35 puts 2 GiB below the 32-bit hole and adds `[4 GiB, 7 GiB)` type 7.
//! QEMU writes no MMIO, I/O, ACPI or GUID HOB (ACPI and e820 come from fw_cfg); the BFV at
//! the top of 4 GiB has no HOB. Cloud Hypervisor (§6.3) also writes MMIO descriptors (type 1,
//! attribute 0x403) and GUID HOBs for ACPI tables and payload information.
//!
//! # Rules checked, each with its own [`HobError`] variant
//!
//! | Rule | Error |
//! |---|---|
//! | a whole 8-byte header is left wherever the walk needs one (the list ends with an end-of-list HOB inside the buffer) | [`HobError::MissingEnd`] |
//! | at most [`MAX_HOBS`] HOBs, end of list included | [`HobError::TooManyHobs`] |
//! | the first HOB is the PHIT | [`HobError::FirstNotPhit`] |
//! | HobLength ≥ the structure size of its type (PHIT 56, resource descriptor 48, any other type 8) | [`HobError::LengthTooShort`] |
//! | HobLength a multiple of 8 | [`HobError::LengthNotMultipleOf8`] |
//! | the HOB lies within the buffer | [`HobError::PastBuffer`] |
//! | no PHIT other than the first HOB | [`HobError::ExtraPhit`] |
//! | PHIT Version = 0x0009 | [`HobError::PhitVersion`] |
//! | PHIT EfiEndOfHobList = the address just past the end-of-list HOB (QEMU, Cloud Hypervisor) or the address of that HOB (EDK2's PEI core convention) | [`HobError::EndPointerMismatch`] |
//! | ResourceType one of 0 system memory, 1 MMIO, 2 I/O, 5 reserved, 7 unaccepted | [`HobError::UnknownResourceType`] |
//! | ResourceLength > 0 | [`HobError::EmptyResource`] |
//! | PhysicalStart + ResourceLength does not wrap and is ≤ 2^52 ([`MAX_PHYS_ADDR`]) | [`HobError::ResourceOutOfRange`] |
//! | system and unaccepted memory 4 KiB aligned at both ends (acceptance works on pages) | [`HobError::UnalignedRam`] |
//! | memory resources (all but I/O) do not overlap | [`HobError::Overlap`] |
//!
//! [`TdHob::memory_map`] then goes through [`MemoryMap::from_e820_bytes`], so the memory map's
//! own checks (at least one RAM range, no RAM over the firmware image or the APIC windows, at
//! most [`crate::memory_map::MAX_VMM_ENTRIES`] records) apply once, in one place
//! ([`HobError::MemoryMap`]).
//!
//! # Decisions
//!
//! * **EfiEndOfHobList.** The walk is the authority (it stops at the first end-of-list HOB);
//!   the PHIT pointer is only cross-checked against it, with the HOB list's guest address
//!   ([`TD_HOB`]'s base for [`parse`], the caller's for [`parse_at`]). Both readings of the
//!   field are accepted because they identify the same end-of-list HOB unambiguously; any other
//!   value means the VMM's list contradicts itself and is refused. Bytes after the end-of-list
//!   HOB (the rest of the zeroed region) are ignored.
//! * **Unknown resource types are refused**, not ignored: the spec's other types (3 firmware
//!   device, 4 memory-mapped I/O port, 6 I/O reserved) and anything above 7 are written by no
//!   VMM this firmware targets, and guessing whether such a range is memory would be worse than
//!   stopping with the offset named.
//! * **I/O descriptors (type 2)** describe port space, not memory: they are checked like the
//!   others (non-empty, no wrap, below 2^52), take no part in the overlap check and are then
//!   dropped; the firmware's port I/O goes through TDVMCALL whatever the VMM says.
//! * **Other HOB types** (GUID extension, memory allocation, CPU, FV…) are checked only for the
//!   generic header rules and skipped: Cloud Hypervisor's GUID HOBs are valid list members.
//! * **Not checked:** the header's Reserved field, the PHIT's BootMode and memory fields
//!   (QEMU: "ignored", all 0), Owner GUID, ResourceAttribute (QEMU writes 0x7 for RAM, Cloud
//!   Hypervisor 0x403 for MMIO; nothing here depends on it), bytes of a HOB beyond its
//!   structure (a longer HOB is accepted).
//! * **Not checked here, for the caller:** that the addresses are below the TD's shared bit
//!   (GPAW − 1, 47 or 51, from TDG.VP.INFO; only 2^52 is checked), and that the system-memory
//!   (type 0) ranges are really accepted: the firmware accepts all RAM before hand-off anyway
//!   (accepting an accepted page is only a warning, research §2.4).
//!
//! # Not confirmed
//!
//! * QEMU's HOB is known from reading `tdvf_hob_create()` and `tdx_accept_ram_range()` (research
//!   §6.3), not from a dump of a running TD: the 2 GiB and 5 GiB examples in the tests are built
//!   from that reading. Whether QEMU merges the adjacent TempMem and TD_HOB pieces into one
//!   type-0 descriptor is not confirmed (the tests split them; either parses).
//! * The q35 split of 5 GiB as 2 GiB below 4 GiB and 3 GiB above is QEMU's usual q35 rule, not
//!   re-checked for TDX; that the first e820 RAM entry starts at 0 (so low memory arrives
//!   unaccepted) is an inference in the research note.
//! * The PI spec's wording for EfiEndOfHobList was not read directly; "just past the end
//!   header" is QEMU's and Cloud Hypervisor's value, "at the end header" EDK2's PEI core usage.
//! * Upstream QEMU refuses this image's Payload section (research §9.1), so today its HOB
//!   reaches this parser only from a QEMU that accepts the image or from Cloud Hypervisor, whose
//!   HOB was read in code only.

use alloc::vec::Vec;
use core::fmt;

use td_layout::handoff::{MemoryMapEntry, E820_RAM, E820_RESERVED};
use td_layout::layout::{PAGE_SIZE, TD_HOB};
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::memory_map::{MemoryMap, MemoryMapError, MAX_PHYS_ADDR};

/// HobType of the PHIT, `EFI_HOB_TYPE_HANDOFF`.
pub const HOB_TYPE_HANDOFF: u16 = 0x0001;
/// HobType of a resource descriptor, `EFI_HOB_TYPE_RESOURCE_DESCRIPTOR`.
pub const HOB_TYPE_RESOURCE_DESCRIPTOR: u16 = 0x0003;
/// HobType of a GUID extension HOB, `EFI_HOB_TYPE_GUID_EXTENSION` (skipped by the parser).
pub const HOB_TYPE_GUID_EXTENSION: u16 = 0x0004;
/// HobType that ends the list, `EFI_HOB_TYPE_END_OF_HOB_LIST`.
pub const HOB_TYPE_END_OF_HOB_LIST: u16 = 0xFFFF;
/// The only PHIT version accepted, `EFI_HOB_HANDOFF_TABLE_VERSION`.
pub const HOB_HANDOFF_TABLE_VERSION: u32 = 0x0009;

/// ResourceType `EFI_RESOURCE_SYSTEM_MEMORY`: RAM, already accepted under TDX.
pub const RESOURCE_SYSTEM_MEMORY: u32 = 0x0;
/// ResourceType `EFI_RESOURCE_MEMORY_MAPPED_IO`.
pub const RESOURCE_MEMORY_MAPPED_IO: u32 = 0x1;
/// ResourceType `EFI_RESOURCE_IO`: a range of I/O ports.
pub const RESOURCE_IO: u32 = 0x2;
/// ResourceType `EFI_RESOURCE_MEMORY_RESERVED`.
pub const RESOURCE_MEMORY_RESERVED: u32 = 0x5;
/// ResourceType `EFI_RESOURCE_MEMORY_UNACCEPTED`: TDX private RAM not accepted yet.
pub const RESOURCE_MEMORY_UNACCEPTED: u32 = 0x7;

/// Most HOBs walked, PHIT and end of list included. QEMU writes one descriptor per RAM piece
/// (about 5 for a q35 TD); the bound keeps every record count below the memory map's
/// [`crate::memory_map::MAX_VMM_ENTRIES`] and the work per HOB list small.
pub const MAX_HOBS: usize = 128;

/// `EFI_HOB_GENERIC_HEADER`: starts every HOB.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct HobHeader {
    /// HobType.
    pub hob_type: U16,
    /// HobLength: bytes of the whole HOB, this header included.
    pub hob_length: U16,
    /// Reserved (QEMU writes 0; not checked).
    pub reserved: U32,
}

/// `EFI_HOB_HANDOFF_INFO_TABLE` (PHIT), the first HOB.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct HandoffInfoTable {
    /// Type [`HOB_TYPE_HANDOFF`].
    pub header: HobHeader,
    /// [`HOB_HANDOFF_TABLE_VERSION`].
    pub version: U32,
    /// BootMode (QEMU: 0; not checked).
    pub boot_mode: U32,
    /// EfiMemoryTop (QEMU: 0; not checked).
    pub efi_memory_top: U64,
    /// EfiMemoryBottom (QEMU: 0; not checked).
    pub efi_memory_bottom: U64,
    /// EfiFreeMemoryTop (QEMU: 0; not checked).
    pub efi_free_memory_top: U64,
    /// EfiFreeMemoryBottom (QEMU: 0; not checked).
    pub efi_free_memory_bottom: U64,
    /// EfiEndOfHobList: guest address just past (or of) the end-of-list HOB.
    pub efi_end_of_hob_list: U64,
}

/// `EFI_HOB_RESOURCE_DESCRIPTOR`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct ResourceDescriptor {
    /// Type [`HOB_TYPE_RESOURCE_DESCRIPTOR`].
    pub header: HobHeader,
    /// Owner GUID (QEMU: zero; not checked).
    pub owner: [u8; 16],
    /// ResourceType: one of the `RESOURCE_*` constants.
    pub resource_type: U32,
    /// ResourceAttribute (QEMU: 0x7; not checked).
    pub resource_attribute: U32,
    /// PhysicalStart.
    pub physical_start: U64,
    /// ResourceLength.
    pub resource_length: U64,
}

/// Bytes of [`HobHeader`], also the smallest HOB (and the end of list).
pub const HOB_HEADER_SIZE: usize = 8;
/// Bytes of [`HandoffInfoTable`].
pub const PHIT_SIZE: usize = 56;
/// Bytes of [`ResourceDescriptor`].
pub const RESOURCE_DESCRIPTOR_SIZE: usize = 48;

const _: () = {
    assert!(core::mem::size_of::<HobHeader>() == HOB_HEADER_SIZE);
    assert!(core::mem::size_of::<HandoffInfoTable>() == PHIT_SIZE);
    assert!(core::mem::offset_of!(HandoffInfoTable, version) == 8);
    assert!(core::mem::offset_of!(HandoffInfoTable, efi_end_of_hob_list) == 48);
    assert!(core::mem::size_of::<ResourceDescriptor>() == RESOURCE_DESCRIPTOR_SIZE);
    assert!(core::mem::offset_of!(ResourceDescriptor, resource_type) == 24);
    assert!(core::mem::offset_of!(ResourceDescriptor, physical_start) == 32);
    assert!(core::mem::offset_of!(ResourceDescriptor, resource_length) == 40);
    // Every bound on the list keeps within the memory map's record limit.
    assert!(MAX_HOBS <= crate::memory_map::MAX_VMM_ENTRIES);
};

/// What a memory range of the TD HOB is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    /// System memory (type 0): RAM the VMM says is accepted (QEMU: TempMem and TD_HOB).
    Accepted,
    /// Unaccepted memory (type 7): RAM the firmware must accept before use.
    Unaccepted,
    /// Memory-mapped I/O (type 1).
    Mmio,
    /// Reserved memory (type 5).
    Reserved,
}

impl ResourceKind {
    /// Whether the range is RAM (accepted or not).
    pub const fn is_ram(self) -> bool {
        matches!(self, Self::Accepted | Self::Unaccepted)
    }

    /// The E820 type it becomes: RAM for both kinds of RAM (the firmware accepts everything
    /// before hand-off), reserved otherwise.
    pub const fn e820_type(self) -> u32 {
        if self.is_ram() {
            E820_RAM
        } else {
            E820_RESERVED
        }
    }
}

/// One memory range of the TD HOB, checked: non-empty, inside the 52-bit address space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HobResource {
    /// PhysicalStart.
    pub base: u64,
    /// ResourceLength, never zero.
    pub length: u64,
    /// What it is.
    pub kind: ResourceKind,
}

impl HobResource {
    /// One past the last address (checked at parse time to be at most 2^52).
    pub fn end(&self) -> u64 {
        self.base.saturating_add(self.length)
    }
}

/// The memory ranges of a checked TD HOB.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TdHob {
    /// Sorted by base, non-overlapping; I/O port ranges are not kept.
    ranges: Vec<HobResource>,
    /// Bytes of the list, through the end of the end-of-list HOB.
    list_len: usize,
}

/// Why a TD HOB was refused. Offsets are from the start of the HOB list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HobError {
    /// Fewer than 8 bytes are left at `offset`, where the walk expected a HOB header: the list
    /// has no end-of-list HOB inside the buffer.
    MissingEnd {
        /// Where the next header would start.
        offset: usize,
    },
    /// The list has more than [`MAX_HOBS`] HOBs; `offset` is the first one past the limit.
    TooManyHobs {
        /// Offset of the HOB past the limit.
        offset: usize,
    },
    /// The first HOB is not the PHIT.
    FirstNotPhit {
        /// Its HobType.
        hob_type: u16,
    },
    /// HobLength is below the size of the HOB type's structure.
    LengthTooShort {
        /// Offset of the HOB.
        offset: usize,
        /// Its HobType.
        hob_type: u16,
        /// Its HobLength.
        length: u16,
        /// The structure size for that type.
        minimum: usize,
    },
    /// HobLength is not a multiple of 8.
    LengthNotMultipleOf8 {
        /// Offset of the HOB.
        offset: usize,
        /// Its HobLength.
        length: u16,
    },
    /// The HOB runs past the end of the buffer.
    PastBuffer {
        /// Offset of the HOB.
        offset: usize,
        /// Its HobLength.
        length: u16,
        /// Bytes of the buffer.
        buffer: usize,
    },
    /// A PHIT that is not the first HOB.
    ExtraPhit {
        /// Offset of the second PHIT.
        offset: usize,
    },
    /// The PHIT's Version is not [`HOB_HANDOFF_TABLE_VERSION`].
    PhitVersion {
        /// The version found.
        version: u32,
    },
    /// The PHIT's EfiEndOfHobList is neither the address of the end-of-list HOB nor the address
    /// just past it.
    EndPointerMismatch {
        /// Offset of the end-of-list HOB.
        offset: usize,
        /// EfiEndOfHobList as given.
        pointer: u64,
        /// The address just past the end-of-list HOB (saturated if the base address wraps).
        expected: u64,
    },
    /// A resource descriptor's ResourceType is not one this firmware handles.
    UnknownResourceType {
        /// Offset of the descriptor.
        offset: usize,
        /// The type found.
        resource_type: u32,
    },
    /// A resource descriptor with ResourceLength 0.
    EmptyResource {
        /// Offset of the descriptor.
        offset: usize,
    },
    /// A resource descriptor that wraps or runs past [`MAX_PHYS_ADDR`].
    ResourceOutOfRange {
        /// Offset of the descriptor.
        offset: usize,
        /// Its PhysicalStart.
        base: u64,
        /// Its ResourceLength.
        length: u64,
    },
    /// A system- or unaccepted-memory descriptor whose start or length is not a multiple of
    /// 4 KiB.
    UnalignedRam {
        /// Offset of the descriptor.
        offset: usize,
        /// Its PhysicalStart.
        base: u64,
        /// Its ResourceLength.
        length: u64,
    },
    /// Two memory descriptors overlap.
    Overlap {
        /// Offset of the descriptor with the higher (or equal) base.
        offset: usize,
        /// Offset of the descriptor it overlaps.
        other: usize,
        /// Base of the descriptor at `offset`, inside the other one.
        base: u64,
    },
    /// The ranges do not make a valid memory map (no RAM, RAM over the firmware image or the
    /// APIC windows, ...).
    MemoryMap(MemoryMapError),
}

impl fmt::Display for HobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingEnd { offset } => write!(
                f,
                "TD HOB: no end-of-list HOB: the buffer ends at offset {offset:#x}, \
                 where a HOB header was expected"
            ),
            Self::TooManyHobs { offset } => write!(
                f,
                "TD HOB: more than {MAX_HOBS} HOBs (the one at offset {offset:#x} is past the limit)"
            ),
            Self::FirstNotPhit { hob_type } => write!(
                f,
                "TD HOB: the first HOB (offset 0x0) has type {hob_type:#06x}, not the PHIT (0x0001)"
            ),
            Self::LengthTooShort {
                offset,
                hob_type,
                length,
                minimum,
            } => write!(
                f,
                "TD HOB: HOB at offset {offset:#x} (type {hob_type:#06x}) has length {length}, \
                 below its structure size {minimum}"
            ),
            Self::LengthNotMultipleOf8 { offset, length } => write!(
                f,
                "TD HOB: HOB at offset {offset:#x} has length {length}, not a multiple of 8"
            ),
            Self::PastBuffer {
                offset,
                length,
                buffer,
            } => write!(
                f,
                "TD HOB: HOB at offset {offset:#x} with length {length} runs past the end of \
                 the {buffer}-byte buffer"
            ),
            Self::ExtraPhit { offset } => write!(
                f,
                "TD HOB: a second PHIT at offset {offset:#x} (only the first HOB may be one)"
            ),
            Self::PhitVersion { version } => write!(
                f,
                "TD HOB: the PHIT (offset 0x0) has version {version:#x}, not \
                 {HOB_HANDOFF_TABLE_VERSION:#x}"
            ),
            Self::EndPointerMismatch {
                offset,
                pointer,
                expected,
            } => write!(
                f,
                "TD HOB: the PHIT's EfiEndOfHobList {pointer:#x} is neither {expected:#x}, just \
                 past the end-of-list HOB at offset {offset:#x}, nor that HOB's own address"
            ),
            Self::UnknownResourceType {
                offset,
                resource_type,
            } => write!(
                f,
                "TD HOB: resource descriptor at offset {offset:#x} has type {resource_type:#x}, \
                 not system memory (0), MMIO (1), I/O (2), reserved (5) or unaccepted (7)"
            ),
            Self::EmptyResource { offset } => write!(
                f,
                "TD HOB: resource descriptor at offset {offset:#x} has length 0"
            ),
            Self::ResourceOutOfRange {
                offset,
                base,
                length,
            } => write!(
                f,
                "TD HOB: resource descriptor at offset {offset:#x} (base {base:#x}, length \
                 {length:#x}) wraps or runs past the 52-bit physical address space"
            ),
            Self::UnalignedRam {
                offset,
                base,
                length,
            } => write!(
                f,
                "TD HOB: memory descriptor at offset {offset:#x} (base {base:#x}, length \
                 {length:#x}) is not 4 KiB aligned"
            ),
            Self::Overlap {
                offset,
                other,
                base,
            } => write!(
                f,
                "TD HOB: resource descriptors at offsets {offset:#x} and {other:#x} overlap \
                 at {base:#x}"
            ),
            Self::MemoryMap(e) => write!(f, "TD HOB: {e}"),
        }
    }
}

impl core::error::Error for HobError {}

impl From<MemoryMapError> for HobError {
    fn from(e: MemoryMapError) -> Self {
        Self::MemoryMap(e)
    }
}

/// Parses the TD HOB as found at the start of the TD_HOB region ([`TD_HOB`]): `bytes` is the
/// region (or its start), the list's guest address is `TD_HOB.base`. See the module
/// documentation for the rules.
pub fn parse(bytes: &[u8]) -> Result<TdHob, HobError> {
    parse_at(bytes, TD_HOB.base)
}

/// Parses a TD HOB whose first byte is at guest-physical address `base` (for the PHIT's
/// EfiEndOfHobList check), e.g. the address the VMM passed in RCX.
pub fn parse_at(bytes: &[u8], base: u64) -> Result<TdHob, HobError> {
    // (range, offset of its descriptor)
    let mut found: Vec<(HobResource, usize)> = Vec::new();
    let mut end_pointer = 0u64;
    let mut offset = 0usize;
    let mut count = 0usize;
    let list_len = loop {
        let header = bytes
            .get(offset..)
            .and_then(|rest| HobHeader::read_from_prefix(rest).ok())
            .map(|(h, _)| h)
            .ok_or(HobError::MissingEnd { offset })?;
        if count == MAX_HOBS {
            return Err(HobError::TooManyHobs { offset });
        }
        count += 1;
        let hob_type = header.hob_type.get();
        let length = header.hob_length.get();
        if offset == 0 && hob_type != HOB_TYPE_HANDOFF {
            return Err(HobError::FirstNotPhit { hob_type });
        }
        let minimum = match hob_type {
            HOB_TYPE_HANDOFF => PHIT_SIZE,
            HOB_TYPE_RESOURCE_DESCRIPTOR => RESOURCE_DESCRIPTOR_SIZE,
            _ => HOB_HEADER_SIZE,
        };
        if usize::from(length) < minimum {
            return Err(HobError::LengthTooShort {
                offset,
                hob_type,
                length,
                minimum,
            });
        }
        if !length.is_multiple_of(8) {
            return Err(HobError::LengthNotMultipleOf8 { offset, length });
        }
        let past_buffer = HobError::PastBuffer {
            offset,
            length,
            buffer: bytes.len(),
        };
        let end = offset.checked_add(usize::from(length)).ok_or(past_buffer)?;
        let hob = bytes.get(offset..end).ok_or(past_buffer)?;
        match hob_type {
            HOB_TYPE_HANDOFF => {
                if offset != 0 {
                    return Err(HobError::ExtraPhit { offset });
                }
                let (phit, _) = HandoffInfoTable::read_from_prefix(hob).map_err(|_| past_buffer)?;
                let version = phit.version.get();
                if version != HOB_HANDOFF_TABLE_VERSION {
                    return Err(HobError::PhitVersion { version });
                }
                end_pointer = phit.efi_end_of_hob_list.get();
            }
            HOB_TYPE_RESOURCE_DESCRIPTOR => {
                let (desc, _) =
                    ResourceDescriptor::read_from_prefix(hob).map_err(|_| past_buffer)?;
                if let Some(range) = check_resource(&desc, offset)? {
                    found.push((range, offset));
                }
            }
            HOB_TYPE_END_OF_HOB_LIST => {
                let address = |o: usize| u64::try_from(o).ok().and_then(|o| base.checked_add(o));
                let (at, past) = (address(offset), address(end));
                if Some(end_pointer) != at && Some(end_pointer) != past {
                    return Err(HobError::EndPointerMismatch {
                        offset,
                        pointer: end_pointer,
                        expected: past.unwrap_or(u64::MAX),
                    });
                }
                break end;
            }
            // Other HOB types are valid list members this firmware has no use for.
            _ => {}
        }
        offset = end;
    };

    found.sort_unstable_by_key(|&(r, o)| (r.base, o));
    for pair in found.windows(2) {
        let ((a, a_offset), (b, b_offset)) = (pair[0], pair[1]);
        if a.end() > b.base {
            return Err(HobError::Overlap {
                offset: b_offset,
                other: a_offset,
                base: b.base,
            });
        }
    }
    Ok(TdHob {
        ranges: found.into_iter().map(|(r, _)| r).collect(),
        list_len,
    })
}

/// Checks one resource descriptor; `None` for an I/O port range (checked, not kept).
fn check_resource(
    desc: &ResourceDescriptor,
    offset: usize,
) -> Result<Option<HobResource>, HobError> {
    let resource_type = desc.resource_type.get();
    let kind = match resource_type {
        RESOURCE_SYSTEM_MEMORY => Some(ResourceKind::Accepted),
        RESOURCE_MEMORY_MAPPED_IO => Some(ResourceKind::Mmio),
        RESOURCE_IO => None,
        RESOURCE_MEMORY_RESERVED => Some(ResourceKind::Reserved),
        RESOURCE_MEMORY_UNACCEPTED => Some(ResourceKind::Unaccepted),
        _ => {
            return Err(HobError::UnknownResourceType {
                offset,
                resource_type,
            })
        }
    };
    let base = desc.physical_start.get();
    let length = desc.resource_length.get();
    if length == 0 {
        return Err(HobError::EmptyResource { offset });
    }
    match base.checked_add(length) {
        Some(end) if end <= MAX_PHYS_ADDR => {}
        _ => {
            return Err(HobError::ResourceOutOfRange {
                offset,
                base,
                length,
            })
        }
    }
    let ram = kind.is_some_and(ResourceKind::is_ram);
    if ram && !(base.is_multiple_of(PAGE_SIZE) && length.is_multiple_of(PAGE_SIZE)) {
        return Err(HobError::UnalignedRam {
            offset,
            base,
            length,
        });
    }
    Ok(kind.map(|kind| HobResource { base, length, kind }))
}

impl TdHob {
    /// The memory ranges, sorted by base and non-overlapping (I/O port ranges are not kept).
    pub fn ranges(&self) -> &[HobResource] {
        &self.ranges
    }

    /// Bytes of the list from its start through the end-of-list HOB: what the firmware
    /// measures (the VMM's bytes after the list are not part of it).
    pub fn list_len(&self) -> usize {
        self.list_len
    }

    /// The ranges to accept, as `(base, length)`, in address order: every unaccepted-memory
    /// (type 7) descriptor. Each is non-empty, 4 KiB aligned and below 2^52.
    pub fn unaccepted(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges
            .iter()
            .filter(|r| r.kind == ResourceKind::Unaccepted)
            .map(|r| (r.base, r.length))
    }

    /// The firmware's memory map: E820 RAM for accepted and unaccepted memory alike (the
    /// firmware accepts everything before hand-off), E820 reserved for MMIO and reserved memory.
    /// Neighbouring ranges of the same E820 type become one record. The records go through
    /// [`MemoryMap::from_e820_bytes`], so its checks apply ([`HobError::MemoryMap`]).
    pub fn memory_map(&self) -> Result<MemoryMap, HobError> {
        let mut records: Vec<(u64, u64, u32)> = Vec::with_capacity(self.ranges.len());
        for r in &self.ranges {
            let kind = r.kind.e820_type();
            match records.last_mut() {
                Some((base, length, k))
                    if *k == kind && base.checked_add(*length) == Some(r.base) =>
                {
                    // Both lie below 2^52: no overflow; saturate rather than trust that.
                    *length = length.saturating_add(r.length);
                }
                _ => records.push((r.base, r.length, kind)),
            }
        }
        let entries: Vec<MemoryMapEntry> = records
            .into_iter()
            .map(|(base, length, kind)| MemoryMapEntry { base, length, kind })
            .collect();
        Ok(MemoryMap::from_e820_bytes(entries.as_bytes())?)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use proptest::prelude::*;
    use std::format;
    use std::string::ToString;
    use std::vec;
    use td_layout::layout::TEMP_MEM;

    const KIB: u64 = 1 << 10;
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    fn header(hob_type: u16, length: usize) -> HobHeader {
        HobHeader {
            hob_type: hob_type.into(),
            hob_length: u16::try_from(length).unwrap().into(),
            reserved: 0.into(),
        }
    }

    fn phit(end_of_list: u64) -> HandoffInfoTable {
        HandoffInfoTable {
            header: header(HOB_TYPE_HANDOFF, PHIT_SIZE),
            version: HOB_HANDOFF_TABLE_VERSION.into(),
            boot_mode: 0.into(),
            efi_memory_top: 0.into(),
            efi_memory_bottom: 0.into(),
            efi_free_memory_top: 0.into(),
            efi_free_memory_bottom: 0.into(),
            efi_end_of_hob_list: end_of_list.into(),
        }
    }

    fn resource(resource_type: u32, attribute: u32, base: u64, length: u64) -> ResourceDescriptor {
        ResourceDescriptor {
            header: header(HOB_TYPE_RESOURCE_DESCRIPTOR, RESOURCE_DESCRIPTOR_SIZE),
            owner: [0; 16],
            resource_type: resource_type.into(),
            resource_attribute: attribute.into(),
            physical_start: base.into(),
            resource_length: length.into(),
        }
    }

    /// A HOB list at guest address `base`: PHIT (EfiEndOfHobList just past the end, as QEMU
    /// writes it), the given HOBs' bytes, end of list.
    fn list_at(base: u64, hobs: &[&[u8]]) -> std::vec::Vec<u8> {
        let body: usize = hobs.iter().map(|h| h.len()).sum();
        let total = PHIT_SIZE + body + HOB_HEADER_SIZE;
        let mut v = phit(base + total as u64).as_bytes().to_vec();
        for h in hobs {
            v.extend_from_slice(h);
        }
        v.extend_from_slice(header(HOB_TYPE_END_OF_HOB_LIST, HOB_HEADER_SIZE).as_bytes());
        v
    }

    /// A HOB list at [`TD_HOB`] with one descriptor per `(type, base, length)`, attribute 0x7.
    fn list(resources: &[(u32, u64, u64)]) -> std::vec::Vec<u8> {
        let descs: std::vec::Vec<_> = resources
            .iter()
            .map(|&(t, b, l)| resource(t, 0x7, b, l))
            .collect();
        let hobs: std::vec::Vec<&[u8]> = descs.iter().map(|d| d.as_bytes()).collect();
        list_at(TD_HOB.base, &hobs)
    }

    /// What QEMU's `tdvf_hob_create()` writes (research §6.3) for q35 e820 RAM entries: each
    /// RAM entry unaccepted, with the TempMem and TD_HOB sections split out as system memory
    /// (`tdx_accept_ram_range()`), sorted by address.
    fn qemu_hob(e820_ram: &[(u64, u64)]) -> std::vec::Vec<u8> {
        let mut pieces: std::vec::Vec<(u32, u64, u64)> = e820_ram
            .iter()
            .map(|&(b, l)| (RESOURCE_MEMORY_UNACCEPTED, b, l))
            .collect();
        for section in [TEMP_MEM, TD_HOB] {
            let (b, e) = (section.base, section.end());
            let i = pieces
                .iter()
                .position(|&(t, pb, pl)| t == RESOURCE_MEMORY_UNACCEPTED && pb <= b && e <= pb + pl)
                .expect("QEMU: the section lies in one RAM entry");
            let (_, pb, pl) = pieces.remove(i);
            if pb < b {
                pieces.push((RESOURCE_MEMORY_UNACCEPTED, pb, b - pb));
            }
            pieces.push((RESOURCE_SYSTEM_MEMORY, b, e - b));
            if e < pb + pl {
                pieces.push((RESOURCE_MEMORY_UNACCEPTED, e, pb + pl - e));
            }
        }
        pieces.sort_by_key(|&(_, b, _)| b);
        list(&pieces)
    }

    fn qemu_2g() -> std::vec::Vec<u8> {
        qemu_hob(&[(0, 2 * GIB)])
    }

    fn qemu_5g() -> std::vec::Vec<u8> {
        qemu_hob(&[(0, 2 * GIB), (4 * GIB, 3 * GIB)])
    }

    /// Cloud-Hypervisor-shaped (research §6.3, not from a dump): unaccepted RAM, a GUID HOB
    /// (payload info GUID, 8 bytes of data), the 32-bit MMIO hole as type 1 attribute 0x403.
    fn ch_style() -> std::vec::Vec<u8> {
        let mut guid_hob = header(HOB_TYPE_GUID_EXTENSION, 32).as_bytes().to_vec();
        guid_hob.extend_from_slice(&[
            0x12, 0xa4, 0x6f, 0xb9, 0xed, 0x46, 0xe3, 0x4b, 0x8c, 0x0d, 0xad, 0x80, 0x5a, 0x49,
            0x7a, 0xc0,
        ]);
        guid_hob.extend_from_slice(&0x1234u64.to_le_bytes());
        let low = resource(RESOURCE_MEMORY_UNACCEPTED, 0x7, 0, TEMP_MEM.base);
        let fw = resource(
            RESOURCE_SYSTEM_MEMORY,
            0x7,
            TEMP_MEM.base,
            TD_HOB.end() - TEMP_MEM.base,
        );
        let high = resource(
            RESOURCE_MEMORY_UNACCEPTED,
            0x7,
            TD_HOB.end(),
            GIB - TD_HOB.end(),
        );
        let mmio = resource(RESOURCE_MEMORY_MAPPED_IO, 0x403, 0xC000_0000, 0x3000_0000);
        list_at(
            TD_HOB.base,
            &[
                low.as_bytes(),
                guid_hob.as_slice(),
                fw.as_bytes(),
                high.as_bytes(),
                mmio.as_bytes(),
            ],
        )
    }

    fn set_u16(v: &mut [u8], at: usize, x: u16) {
        v[at..at + 2].copy_from_slice(&x.to_le_bytes());
    }
    fn set_u32(v: &mut [u8], at: usize, x: u32) {
        v[at..at + 4].copy_from_slice(&x.to_le_bytes());
    }
    fn set_u64(v: &mut [u8], at: usize, x: u64) {
        v[at..at + 8].copy_from_slice(&x.to_le_bytes());
    }

    /// Offset of descriptor `i` in a list built by [`list`].
    fn desc(i: usize) -> usize {
        PHIT_SIZE + i * RESOURCE_DESCRIPTOR_SIZE
    }

    fn r(kind: ResourceKind, base: u64, length: u64) -> HobResource {
        HobResource { base, length, kind }
    }

    /// What every parsed HOB satisfies.
    fn check_invariants(hob: &TdHob) {
        for x in hob.ranges() {
            assert!(x.length > 0);
            assert!(x
                .base
                .checked_add(x.length)
                .is_some_and(|e| e <= MAX_PHYS_ADDR));
            if x.kind.is_ram() {
                assert!(x.base % PAGE_SIZE == 0 && x.length % PAGE_SIZE == 0);
            }
        }
        for w in hob.ranges().windows(2) {
            assert!(w[0].end() <= w[1].base, "{w:?}");
        }
        assert!(hob.unaccepted().all(|(b, l)| l > 0 && b % PAGE_SIZE == 0));
        if let Ok(map) = hob.memory_map() {
            let ram: u64 = hob
                .ranges()
                .iter()
                .filter(|x| x.kind.is_ram())
                .map(|x| x.length)
                .sum();
            assert_eq!(map.ram_bytes(), ram);
            for (b, l) in hob.unaccepted() {
                assert!(map.is_ram(b, l));
            }
        }
    }

    #[test]
    fn qemu_2g_td() {
        let bytes = qemu_2g();
        assert_eq!(bytes.len(), PHIT_SIZE + 4 * RESOURCE_DESCRIPTOR_SIZE + 8);
        let hob = parse(&bytes).unwrap();
        use ResourceKind::*;
        assert_eq!(
            hob.ranges(),
            [
                r(Unaccepted, 0, MIB),
                r(Accepted, MIB, 7 * MIB),
                r(Accepted, 8 * MIB, 128 * KIB),
                r(Unaccepted, 0x82_0000, 2 * GIB - 0x82_0000),
            ]
        );
        assert_eq!(
            hob.unaccepted().collect::<std::vec::Vec<_>>(),
            [(0, MIB), (0x82_0000, 2 * GIB - 0x82_0000)]
        );
        let map = hob.memory_map().unwrap();
        assert_eq!(map.ranges().len(), 1, "{map:?}");
        assert_eq!(map.ram_bytes(), 2 * GIB);
        assert_eq!(map.ram_top(), 2 * GIB);
        check_invariants(&hob);
    }

    #[test]
    fn qemu_5g_td_has_ram_above_4g() {
        let hob = parse(&qemu_5g()).unwrap();
        assert_eq!(hob.ranges().len(), 5);
        assert_eq!(
            hob.unaccepted().collect::<std::vec::Vec<_>>(),
            [
                (0, MIB),
                (0x82_0000, 2 * GIB - 0x82_0000),
                (4 * GIB, 3 * GIB)
            ]
        );
        let map = hob.memory_map().unwrap();
        let ram: std::vec::Vec<_> = map.ram().map(|x| (x.base, x.length)).collect();
        assert_eq!(ram, [(0, 2 * GIB), (4 * GIB, 3 * GIB)]);
        assert_eq!(map.ram_bytes(), 5 * GIB);
        assert_eq!(map.ram_top(), 7 * GIB);
        check_invariants(&hob);
    }

    #[test]
    fn list_len_ends_at_the_end_of_list_hob() {
        let bytes = qemu_2g();
        let mut region = vec![0xAAu8; TD_HOB.size as usize];
        region[..bytes.len()].copy_from_slice(&bytes);
        assert_eq!(parse(&region).unwrap().list_len(), bytes.len());
        assert_eq!(parse(&bytes).unwrap().list_len(), bytes.len());
    }

    #[test]
    fn the_whole_zeroed_region_parses_like_the_list() {
        // QEMU zeroes the TD_HOB pages and writes the list at their start.
        let mut region = vec![0u8; TD_HOB.size as usize];
        let list = qemu_5g();
        region[..list.len()].copy_from_slice(&list);
        assert_eq!(parse(&region), parse(&list));
        assert!(parse(&region).is_ok());
    }

    #[test]
    fn cloud_hypervisor_style_mmio_and_guid_hobs() {
        let hob = parse(&ch_style()).unwrap();
        use ResourceKind::*;
        assert_eq!(
            hob.ranges(),
            [
                r(Unaccepted, 0, TEMP_MEM.base),
                r(Accepted, TEMP_MEM.base, TD_HOB.end() - TEMP_MEM.base),
                r(Unaccepted, TD_HOB.end(), GIB - TD_HOB.end()),
                r(Mmio, 0xC000_0000, 0x3000_0000),
            ]
        );
        let map = hob.memory_map().unwrap();
        let recs: std::vec::Vec<_> = map
            .ranges()
            .iter()
            .map(|x| (x.base, x.length, x.kind))
            .collect();
        assert_eq!(
            recs,
            [
                (0, GIB, E820_RAM),
                (0xC000_0000, 0x3000_0000, E820_RESERVED)
            ]
        );
        check_invariants(&hob);
    }

    #[test]
    fn end_pointer_at_the_end_hob_is_accepted_too() {
        // EDK2's PEI core keeps EfiEndOfHobList at the end-of-list header itself.
        let mut bytes = qemu_2g();
        let end_hob = TD_HOB.base + (bytes.len() - 8) as u64;
        set_u64(&mut bytes, 48, end_hob);
        assert!(parse(&bytes).is_ok());
        // Any other value is refused, with the expected value named.
        for wrong in [0, end_hob - 8, end_hob + 16, u64::MAX] {
            set_u64(&mut bytes, 48, wrong);
            assert_eq!(
                parse(&bytes),
                Err(HobError::EndPointerMismatch {
                    offset: bytes.len() - 8,
                    pointer: wrong,
                    expected: end_hob + 8,
                })
            );
        }
    }

    #[test]
    fn the_base_address_is_the_callers() {
        let bytes = qemu_2g();
        assert!(parse_at(&bytes, TD_HOB.base).is_ok());
        assert!(matches!(
            parse_at(&bytes, 0x1000),
            Err(HobError::EndPointerMismatch { .. })
        ));
        // A base so high that the end address wraps: refused, not a panic.
        assert!(matches!(
            parse_at(&bytes, u64::MAX - 8),
            Err(HobError::EndPointerMismatch {
                expected: u64::MAX,
                ..
            })
        ));
    }

    #[test]
    fn missing_end() {
        assert_eq!(parse(&[]), Err(HobError::MissingEnd { offset: 0 }));
        assert_eq!(parse(&[1, 0, 56]), Err(HobError::MissingEnd { offset: 0 }));
        let bytes = qemu_2g();
        let cut = bytes.len() - 8;
        assert_eq!(
            parse(&bytes[..cut]),
            Err(HobError::MissingEnd { offset: cut })
        );
        assert_eq!(
            parse(&bytes[..cut + 4]),
            Err(HobError::MissingEnd { offset: cut })
        );
    }

    #[test]
    fn first_hob_must_be_the_phit() {
        let mut bytes = qemu_2g();
        set_u16(&mut bytes, 0, HOB_TYPE_RESOURCE_DESCRIPTOR);
        assert_eq!(
            parse(&bytes),
            Err(HobError::FirstNotPhit {
                hob_type: HOB_TYPE_RESOURCE_DESCRIPTOR
            })
        );
        // An end-of-list first is not a list either.
        let end = header(HOB_TYPE_END_OF_HOB_LIST, 8);
        assert_eq!(
            parse(end.as_bytes()),
            Err(HobError::FirstNotPhit { hob_type: 0xFFFF })
        );
    }

    #[test]
    fn only_one_phit() {
        let second = phit(0);
        let bytes = list_at(TD_HOB.base, &[second.as_bytes()]);
        assert_eq!(
            parse(&bytes),
            Err(HobError::ExtraPhit { offset: PHIT_SIZE })
        );
    }

    #[test]
    fn phit_version_must_be_9() {
        for version in [0, 8, 10, 0xFFFF_FFFF] {
            let mut bytes = qemu_2g();
            set_u32(&mut bytes, 8, version);
            assert_eq!(parse(&bytes), Err(HobError::PhitVersion { version }));
        }
    }

    #[test]
    fn lengths_below_the_structure_size() {
        // PHIT shorter than 56.
        let mut bytes = qemu_2g();
        set_u16(&mut bytes, 2, 48);
        assert_eq!(
            parse(&bytes),
            Err(HobError::LengthTooShort {
                offset: 0,
                hob_type: HOB_TYPE_HANDOFF,
                length: 48,
                minimum: PHIT_SIZE
            })
        );
        // Resource descriptor shorter than 48.
        let mut bytes = qemu_2g();
        set_u16(&mut bytes, desc(1) + 2, 40);
        assert_eq!(
            parse(&bytes),
            Err(HobError::LengthTooShort {
                offset: desc(1),
                hob_type: HOB_TYPE_RESOURCE_DESCRIPTOR,
                length: 40,
                minimum: RESOURCE_DESCRIPTOR_SIZE
            })
        );
        // Any HOB of length 0 (the walk would never advance), here the end of list.
        let mut bytes = qemu_2g();
        let end = bytes.len() - 8;
        set_u16(&mut bytes, end + 2, 0);
        assert_eq!(
            parse(&bytes),
            Err(HobError::LengthTooShort {
                offset: end,
                hob_type: HOB_TYPE_END_OF_HOB_LIST,
                length: 0,
                minimum: HOB_HEADER_SIZE
            })
        );
    }

    #[test]
    fn lengths_must_be_multiples_of_8() {
        let mut bytes = qemu_2g();
        set_u16(&mut bytes, desc(0) + 2, 52);
        assert_eq!(
            parse(&bytes),
            Err(HobError::LengthNotMultipleOf8 {
                offset: desc(0),
                length: 52
            })
        );
        let mut bytes = qemu_2g();
        set_u16(&mut bytes, 2, 57);
        assert_eq!(
            parse(&bytes),
            Err(HobError::LengthNotMultipleOf8 {
                offset: 0,
                length: 57
            })
        );
    }

    #[test]
    fn hobs_must_lie_within_the_buffer() {
        let mut bytes = qemu_2g();
        set_u16(&mut bytes, desc(3) + 2, 0xFFF8);
        assert_eq!(
            parse(&bytes),
            Err(HobError::PastBuffer {
                offset: desc(3),
                length: 0xFFF8,
                buffer: bytes.len()
            })
        );
    }

    #[test]
    fn longer_hobs_and_other_types_are_skipped_over() {
        // A 56-byte resource descriptor (8 bytes of padding) and an unknown HOB type 0x1234.
        let mut long = resource(RESOURCE_SYSTEM_MEMORY, 7, 0, 2 * GIB)
            .as_bytes()
            .to_vec();
        long.extend_from_slice(&[0xAA; 8]);
        set_u16(&mut long, 2, 56);
        let other = header(0x1234, 16);
        let mut other = other.as_bytes().to_vec();
        other.extend_from_slice(&[0x55; 8]);
        let bytes = list_at(TD_HOB.base, &[&other, &long]);
        let hob = parse(&bytes).unwrap();
        assert_eq!(hob.ranges(), [r(ResourceKind::Accepted, 0, 2 * GIB)]);
    }

    #[test]
    fn hob_count_is_bounded() {
        let filler = header(HOB_TYPE_GUID_EXTENSION, 8);
        // PHIT + 126 others + end = MAX_HOBS: accepted (no RAM, so the map is refused).
        let hobs = vec![filler.as_bytes(); MAX_HOBS - 2];
        let bytes = list_at(TD_HOB.base, &hobs);
        let hob = parse(&bytes).unwrap();
        assert_eq!(
            hob.memory_map(),
            Err(HobError::MemoryMap(MemoryMapError::BadEntryCount(0)))
        );
        let hobs = vec![filler.as_bytes(); MAX_HOBS - 1];
        let bytes = list_at(TD_HOB.base, &hobs);
        assert_eq!(
            parse(&bytes),
            Err(HobError::TooManyHobs {
                offset: bytes.len() - 8
            })
        );
    }

    #[test]
    fn unknown_resource_types_are_refused() {
        for resource_type in [3, 4, 6, 8, 0x8000_0000, u32::MAX] {
            let bytes = list(&[(0, 0, GIB), (resource_type, GIB, MIB)]);
            assert_eq!(
                parse(&bytes),
                Err(HobError::UnknownResourceType {
                    offset: desc(1),
                    resource_type
                })
            );
        }
    }

    #[test]
    fn io_ranges_are_checked_and_dropped() {
        // Port 0..0x10000 overlaps RAM at address 0 only numerically: a different space.
        let bytes = list(&[(RESOURCE_IO, 0, 0x1_0000), (0, 0, GIB)]);
        let hob = parse(&bytes).unwrap();
        assert_eq!(hob.ranges(), [r(ResourceKind::Accepted, 0, GIB)]);
        let bytes = list(&[(0, 0, GIB), (RESOURCE_IO, 0, 0)]);
        assert_eq!(
            parse(&bytes),
            Err(HobError::EmptyResource { offset: desc(1) })
        );
    }

    #[test]
    fn empty_resources_are_refused() {
        for t in [0, 1, 5, 7] {
            let bytes = list(&[(t, GIB, 0)]);
            assert_eq!(
                parse(&bytes),
                Err(HobError::EmptyResource { offset: desc(0) })
            );
        }
    }

    #[test]
    fn resources_stay_in_the_52_bit_space() {
        let top = MAX_PHYS_ADDR;
        // Ending exactly at 2^52 is fine.
        assert!(parse(&list(&[(0, 0, GIB), (1, top - GIB, GIB)])).is_ok());
        for (base, length) in [
            (top - GIB, GIB + PAGE_SIZE),
            (top, PAGE_SIZE),
            (u64::MAX - 0xFFF, 0x2000),
        ] {
            let bytes = list(&[(0, 0, GIB), (7, base, length)]);
            assert_eq!(
                parse(&bytes),
                Err(HobError::ResourceOutOfRange {
                    offset: desc(1),
                    base,
                    length
                })
            );
        }
        // Wrapping MMIO too.
        let bytes = list(&[(1, u64::MAX, 2)]);
        assert!(matches!(
            parse(&bytes),
            Err(HobError::ResourceOutOfRange { .. })
        ));
    }

    #[test]
    fn ram_must_be_page_aligned() {
        for t in [RESOURCE_SYSTEM_MEMORY, RESOURCE_MEMORY_UNACCEPTED] {
            for (base, length) in [(0x800, GIB), (0, GIB + 0x10), (0x1000, 0xFFF)] {
                let bytes = list(&[(t, base, length)]);
                assert_eq!(
                    parse(&bytes),
                    Err(HobError::UnalignedRam {
                        offset: desc(0),
                        base,
                        length
                    })
                );
            }
        }
        // MMIO and reserved ranges need not be.
        let bytes = list(&[
            (0, 0, 0x9_F000),
            (5, 0x9_FC00, 0x400),
            (1, 0xFED0_0000, 0x400),
        ]);
        assert!(parse(&bytes).is_ok());
    }

    #[test]
    fn memory_resources_must_not_overlap() {
        // Unaccepted RAM over the accepted TempMem piece.
        let bytes = list(&[(7, 0, 2 * GIB), (0, TEMP_MEM.base, TEMP_MEM.size)]);
        assert_eq!(
            parse(&bytes),
            Err(HobError::Overlap {
                offset: desc(1),
                other: desc(0),
                base: TEMP_MEM.base
            })
        );
        // MMIO over RAM, listed first.
        let bytes = list(&[(1, GIB - PAGE_SIZE, MIB), (0, 0, GIB)]);
        assert_eq!(
            parse(&bytes),
            Err(HobError::Overlap {
                offset: desc(0),
                other: desc(1),
                base: GIB - PAGE_SIZE
            })
        );
        // The same range twice.
        let bytes = list(&[(0, 0, GIB), (0, 0, GIB)]);
        assert_eq!(
            parse(&bytes),
            Err(HobError::Overlap {
                offset: desc(1),
                other: desc(0),
                base: 0
            })
        );
        // Touching is not overlapping.
        assert!(parse(&list(&[(0, 0, GIB), (7, GIB, GIB)])).is_ok());
    }

    #[test]
    fn memory_map_checks_apply() {
        // Only MMIO: no RAM.
        let hob = parse(&list(&[(1, 0xC000_0000, 0x1000_0000)])).unwrap();
        assert_eq!(
            hob.memory_map(),
            Err(HobError::MemoryMap(MemoryMapError::NoRam))
        );
        // RAM over the firmware image at the top of 4 GiB.
        let hob = parse(&list(&[(0, 0, GIB), (7, 0xFF00_0000, 0x100_0000)])).unwrap();
        assert_eq!(
            hob.memory_map(),
            Err(HobError::MemoryMap(MemoryMapError::RamOverReserved {
                what: "the firmware image",
                base: 0xFF00_0000
            }))
        );
        // Reserved memory there is fine, and stays reserved.
        let hob = parse(&list(&[(0, 0, GIB), (5, 0xFF00_0000, 0x100_0000)])).unwrap();
        let map = hob.memory_map().unwrap();
        assert_eq!(map.ranges()[1].kind, E820_RESERVED);
    }

    #[test]
    fn every_error_names_its_rule_and_offset() {
        let errors = [
            HobError::MissingEnd { offset: 0x68 },
            HobError::TooManyHobs { offset: 0x68 },
            HobError::LengthTooShort {
                offset: 0x68,
                hob_type: 3,
                length: 40,
                minimum: 48,
            },
            HobError::LengthNotMultipleOf8 {
                offset: 0x68,
                length: 52,
            },
            HobError::PastBuffer {
                offset: 0x68,
                length: 48,
                buffer: 100,
            },
            HobError::ExtraPhit { offset: 0x68 },
            HobError::EndPointerMismatch {
                offset: 0x68,
                pointer: 0,
                expected: 0x80_0070,
            },
            HobError::UnknownResourceType {
                offset: 0x68,
                resource_type: 8,
            },
            HobError::EmptyResource { offset: 0x68 },
            HobError::ResourceOutOfRange {
                offset: 0x68,
                base: 0,
                length: 1,
            },
            HobError::UnalignedRam {
                offset: 0x68,
                base: 0,
                length: 1,
            },
            HobError::Overlap {
                offset: 0x68,
                other: 0x38,
                base: 0,
            },
        ];
        for e in errors {
            let s = e.to_string();
            assert!(s.starts_with("TD HOB: ") && s.contains("offset"), "{s}");
            assert!(s.contains("0x68"), "{s}");
        }
        let phit_errors = [
            HobError::FirstNotPhit { hob_type: 3 },
            HobError::PhitVersion { version: 8 },
        ];
        for e in phit_errors {
            let s = e.to_string();
            assert!(s.contains("PHIT") && s.contains("offset 0x0"), "{s}");
        }
        let e = HobError::MemoryMap(MemoryMapError::NoRam).to_string();
        assert_eq!(e, "TD HOB: memory map: no usable RAM");
        assert!(format!("{}", HobError::PhitVersion { version: 8 }).contains("0x9"));
    }

    // ---- fuzz seeds -----------------------------------------------------------------------

    const SEED_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/td_hob");

    fn seeds() -> [(&'static str, std::vec::Vec<u8>); 3] {
        [
            ("seed-qemu-2g", qemu_2g()),
            ("seed-qemu-5g", qemu_5g()),
            ("seed-ch-style", ch_style()),
        ]
    }

    /// The committed fuzz seeds are these HOBs. `TD_SHIM_WRITE_SEEDS=1 cargo test -p td-shim
    /// --lib tdx::hob::tests::fuzz_seeds` rewrites them after a change.
    #[test]
    fn fuzz_seeds_are_current_and_parse() {
        let write = std::env::var_os("TD_SHIM_WRITE_SEEDS").is_some();
        for (name, bytes) in seeds() {
            assert!(bytes.len() < 4096);
            assert!(parse(&bytes).unwrap().memory_map().is_ok(), "{name}");
            let path = format!("{SEED_DIR}/{name}");
            if write {
                std::fs::create_dir_all(SEED_DIR).unwrap();
                std::fs::write(&path, &bytes).unwrap();
            }
            let committed = std::fs::read(&path).unwrap_or_else(|e| {
                panic!("{name}: {e}; rewrite the seeds with TD_SHIM_WRITE_SEEDS=1")
            });
            assert_eq!(
                committed, bytes,
                "{name} is stale: rewrite with TD_SHIM_WRITE_SEEDS=1"
            );
        }
    }

    // ---- properties ------------------------------------------------------------------------

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
            if let Ok(hob) = parse(&bytes) {
                check_invariants(&hob);
            }
        }

        #[test]
        fn a_phit_then_arbitrary_bytes_never_panic(
            tail in proptest::collection::vec(any::<u8>(), 0..512),
            pointer_past in any::<bool>(),
        ) {
            let total = PHIT_SIZE + tail.len();
            let pointer = TD_HOB.base + total as u64 - if pointer_past { 0 } else { 8 };
            let mut bytes = phit(pointer).as_bytes().to_vec();
            bytes.extend_from_slice(&tail);
            if let Ok(hob) = parse(&bytes) {
                check_invariants(&hob);
            }
        }

        #[test]
        fn mutated_valid_hobs_parse_or_fail_cleanly(
            which in 0usize..3,
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in proptest::option::of(any::<prop::sample::Index>()),
        ) {
            let mut bytes = [qemu_2g(), qemu_5g(), ch_style()][which].clone();
            for (at, value) in edits {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
            if let Some(cut) = cut {
                bytes.truncate(cut.index(bytes.len()));
            }
            match parse(&bytes) {
                Ok(hob) => check_invariants(&hob),
                Err(e) => prop_assert!(e.to_string().starts_with("TD HOB: ")),
            }
        }

        #[test]
        fn generated_descriptor_lists_parse_or_fail_cleanly(
            descs in proptest::collection::vec(
                (
                    prop::sample::select(vec![0u32, 1, 2, 3, 5, 7, 8]),
                    prop_oneof![0u64..64, Just(1u64 << 40), Just(u64::MAX >> 12)],
                    prop_oneof![0u64..64, Just(1u64 << 40), Just(u64::MAX >> 12)],
                    any::<bool>(),
                ),
                0..12,
            ),
        ) {
            // Page-granular most of the time, raw values otherwise.
            let resources: std::vec::Vec<_> = descs
                .iter()
                .map(|&(t, b, l, pages)| {
                    if pages { (t, b.wrapping_mul(PAGE_SIZE), l.wrapping_mul(PAGE_SIZE)) } else { (t, b, l) }
                })
                .collect();
            if let Ok(hob) = parse(&list(&resources)) {
                check_invariants(&hob);
                let kept = resources.iter().filter(|r| r.0 != RESOURCE_IO).count();
                prop_assert_eq!(hob.ranges().len(), kept);
            }
        }
    }
}
