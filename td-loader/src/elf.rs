//! ELF64 payloads: validation, loading into a caller-given buffer, and relocation.
//!
//! The firmware boots an x86-64 ELF executable (`ET_EXEC`) at the address it was linked for, or a
//! position-independent one (`ET_DYN`, e.g. a static PIE) at any 4 KiB-aligned address, applying
//! its `R_X86_64_RELATIVE` relocations.
//!
//! The bytes are untrusted input (whoever built the image controls them). [`ElfFile::parse`]
//! checks every field it relies on, including the dynamic section and every relocation of a
//! position-independent image, so a file that parses can be loaded into any buffer that is large
//! enough; [`ElfFile::load`] then checks only the buffer and the load address. Neither function
//! panics on any input, and neither allocates.
//!
//! What [`ElfFile::parse`] requires (the [`ElfError`] variant for each rule in brackets):
//!
//! - Header: at least 64 bytes [`TruncatedHeader`](ElfError::TruncatedHeader), the ELF magic
//!   [`BadMagic`](ElfError::BadMagic), `ELFCLASS64` [`UnsupportedClass`](ElfError::UnsupportedClass),
//!   little-endian [`NotLittleEndian`](ElfError::NotLittleEndian), `EI_VERSION` 1
//!   [`UnsupportedVersion`](ElfError::UnsupportedVersion), `EM_X86_64`
//!   [`UnsupportedMachine`](ElfError::UnsupportedMachine), `ET_EXEC` or `ET_DYN`
//!   [`UnsupportedType`](ElfError::UnsupportedType), `e_phentsize` 56
//!   [`BadProgramHeaderSize`](ElfError::BadProgramHeaderSize), at most [`MAX_PROGRAM_HEADERS`]
//!   [`TooManyProgramHeaders`](ElfError::TooManyProgramHeaders), table inside the file
//!   [`ProgramHeadersOutOfBounds`](ElfError::ProgramHeadersOutOfBounds).
//! - Each `PT_LOAD`: file bytes inside the file [`SegmentOutOfFile`](ElfError::SegmentOutOfFile),
//!   `p_filesz <= p_memsz` [`FileSizeExceedsMemSize`](ElfError::FileSizeExceedsMemSize),
//!   `p_vaddr + p_memsz` does not wrap [`SegmentAddressOverflow`](ElfError::SegmentAddressOverflow),
//!   `p_align` 0 or a power of two [`BadSegmentAlignment`](ElfError::BadSegmentAlignment),
//!   `p_vaddr ≡ p_offset (mod p_align)` [`MisalignedSegment`](ElfError::MisalignedSegment), no
//!   overlap with another in memory [`OverlappingSegments`](ElfError::OverlappingSegments).
//! - At least one `PT_LOAD` [`NoLoadSegment`](ElfError::NoLoadSegment); the entry point inside an
//!   executable one [`EntryNotExecutable`](ElfError::EntryNotExecutable); the 4 KiB-rounded span
//!   fits the address space [`ImageTooLarge`](ElfError::ImageTooLarge); at most one `PT_DYNAMIC`
//!   [`MultipleDynamicSegments`](ElfError::MultipleDynamicSegments).
//! - `ET_DYN` only: the dynamic section lies in the file bytes of a `PT_LOAD`
//!   [`DynamicOutOfBounds`](ElfError::DynamicOutOfBounds) and ends with `DT_NULL`
//!   [`MissingDynamicNull`](ElfError::MissingDynamicNull); no `DT_NEEDED`, `DT_REL`, `DT_JMPREL`,
//!   `DT_RELR` [`UnsupportedDynamicTag`](ElfError::UnsupportedDynamicTag), no `DT_TEXTREL` /
//!   `DF_TEXTREL` [`TextRelocations`](ElfError::TextRelocations); `DT_RELA`, `DT_RELASZ`,
//!   `DT_RELAENT` at most once each [`DuplicateDynamicTag`](ElfError::DuplicateDynamicTag) and
//!   together [`MissingDynamicTag`](ElfError::MissingDynamicTag); `DT_RELAENT` 24
//!   [`BadRelaEntrySize`](ElfError::BadRelaEntrySize), `DT_RELASZ` whole entries
//!   [`BadRelaSize`](ElfError::BadRelaSize); the table in the file bytes of one `PT_LOAD`
//!   [`RelaTableOutOfBounds`](ElfError::RelaTableOutOfBounds); every relocation
//!   `R_X86_64_NONE` (ignored) or `R_X86_64_RELATIVE`
//!   [`UnsupportedRelocation`](ElfError::UnsupportedRelocation), the latter with symbol 0
//!   [`RelocationWithSymbol`](ElfError::RelocationWithSymbol) and its 8 bytes inside one
//!   `PT_LOAD` [`RelocationOutOfBounds`](ElfError::RelocationOutOfBounds).
//!
//! [`ElfFile::load`] adds: a 4 KiB-aligned load address
//! [`UnalignedLoadBase`](ElfError::UnalignedLoadBase) with room for the image below the top of
//! the address space [`LoadBaseOverflow`](ElfError::LoadBaseOverflow); `ET_EXEC` only at its own
//! span start [`NotRelocatable`](ElfError::NotRelocatable); a buffer at least the span
//! [`BufferTooSmall`](ElfError::BufferTooSmall).
//!
//! Other program headers (`PT_INTERP`, `PT_TLS`, `PT_GNU_*`, ...) are ignored, as is the dynamic
//! section of an `ET_EXEC` file.
//!
//! Formats (all little-endian, offsets in bytes):
//!
//! ```text
//! ELF header (64 bytes)        program header (56 bytes)   Elf64_Dyn (16)   Elf64_Rela (24)
//! 0x00 e_ident[16]             0x00 p_type   u32           0x00 d_tag i64   0x00 r_offset u64
//! 0x10 e_type      u16         0x04 p_flags  u32           0x08 d_val u64   0x08 r_info   u64
//! 0x12 e_machine   u16         0x08 p_offset u64                            0x10 r_addend i64
//! 0x14 e_version   u32         0x10 p_vaddr  u64
//! 0x18 e_entry     u64         0x18 p_paddr  u64           r_info: symbol index in the high
//! 0x20 e_phoff     u64         0x20 p_filesz u64           32 bits, relocation type in the low
//! 0x36 e_phentsize u16         0x28 p_memsz  u64           32 bits
//! 0x38 e_phnum     u16         0x30 p_align  u64
//! ```

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Alignment of the loaded image: its span starts and ends on a 4 KiB boundary, and
/// [`ElfFile::load`] requires a 4 KiB-aligned load address.
pub const IMAGE_ALIGN: u64 = 0x1000;
/// Most program headers a file may have.
pub const MAX_PROGRAM_HEADERS: u16 = 64;

/// Segment flag: executable.
pub const PF_X: u32 = 1;
/// Segment flag: writable.
pub const PF_W: u32 = 2;
/// Segment flag: readable.
pub const PF_R: u32 = 4;

const ELF_MAGIC: [u8; 4] = *b"\x7fELF";
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const EV_CURRENT: u8 = 1;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const EM_X86_64: u16 = 62;

const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
const DYN_SIZE: usize = 16;
const RELA_SIZE: usize = 24;

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;

const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_RELA: u64 = 7;
const DT_RELASZ: u64 = 8;
const DT_RELAENT: u64 = 9;
const DT_REL: u64 = 17;
const DT_TEXTREL: u64 = 22;
const DT_JMPREL: u64 = 23;
const DT_FLAGS: u64 = 30;
const DT_RELR: u64 = 36;
const DF_TEXTREL: u64 = 4;

const R_X86_64_NONE: u32 = 0;
const R_X86_64_RELATIVE: u32 = 8;

/// `Elf64_Ehdr`, the ELF header as stored (little-endian, the only encoding accepted).
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Elf64Ehdr {
    e_ident: [u8; 16],
    e_type: U16,
    e_machine: U16,
    e_version: U32,
    e_entry: U64,
    e_phoff: U64,
    e_shoff: U64,
    e_flags: U32,
    e_ehsize: U16,
    e_phentsize: U16,
    e_phnum: U16,
    e_shentsize: U16,
    e_shnum: U16,
    e_shstrndx: U16,
}

/// `Elf64_Phdr`, a program header as stored.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Elf64Phdr {
    p_type: U32,
    p_flags: U32,
    p_offset: U64,
    p_vaddr: U64,
    p_paddr: U64,
    p_filesz: U64,
    p_memsz: U64,
    p_align: U64,
}

/// `Elf64_Dyn`, a dynamic section entry as stored (`d_tag` is signed in the spec; every tag
/// used here is non-negative, so it is compared as a u64).
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Elf64Dyn {
    d_tag: U64,
    d_val: U64,
}

/// `Elf64_Rela`, a relocation as stored (`r_addend` is signed; it is added with wrapping
/// arithmetic, which is the same thing in two's complement).
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Elf64Rela {
    r_offset: U64,
    r_info: U64,
    r_addend: U64,
}

// Offsets as in the format table of the module documentation.
const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<Elf64Ehdr>() == EHDR_SIZE);
    assert!(offset_of!(Elf64Ehdr, e_type) == 0x10);
    assert!(offset_of!(Elf64Ehdr, e_machine) == 0x12);
    assert!(offset_of!(Elf64Ehdr, e_version) == 0x14);
    assert!(offset_of!(Elf64Ehdr, e_entry) == 0x18);
    assert!(offset_of!(Elf64Ehdr, e_phoff) == 0x20);
    assert!(offset_of!(Elf64Ehdr, e_ehsize) == 0x34);
    assert!(offset_of!(Elf64Ehdr, e_phentsize) == 0x36);
    assert!(offset_of!(Elf64Ehdr, e_phnum) == 0x38);
    assert!(size_of::<Elf64Phdr>() == PHDR_SIZE);
    assert!(offset_of!(Elf64Phdr, p_flags) == 0x04);
    assert!(offset_of!(Elf64Phdr, p_offset) == 0x08);
    assert!(offset_of!(Elf64Phdr, p_vaddr) == 0x10);
    assert!(offset_of!(Elf64Phdr, p_paddr) == 0x18);
    assert!(offset_of!(Elf64Phdr, p_filesz) == 0x20);
    assert!(offset_of!(Elf64Phdr, p_memsz) == 0x28);
    assert!(offset_of!(Elf64Phdr, p_align) == 0x30);
    assert!(size_of::<Elf64Dyn>() == DYN_SIZE);
    assert!(offset_of!(Elf64Dyn, d_val) == 0x08);
    assert!(size_of::<Elf64Rela>() == RELA_SIZE);
    assert!(offset_of!(Elf64Rela, r_info) == 0x08);
    assert!(offset_of!(Elf64Rela, r_addend) == 0x10);
};

/// The `T` stored at `bytes[at..]`; `None` if it does not fit.
fn read_at<T: FromBytes + KnownLayout + Immutable>(bytes: &[u8], at: usize) -> Option<T> {
    T::read_from_prefix(bytes.get(at..)?)
        .ok()
        .map(|(value, _)| value)
}

/// Why an ELF file was refused, or could not be loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfError {
    /// The file is shorter than the 64-byte ELF header.
    TruncatedHeader,
    /// The file does not start with `\x7fELF`.
    BadMagic,
    /// `EI_CLASS` is not `ELFCLASS64` (2).
    UnsupportedClass(u8),
    /// `EI_DATA` is not `ELFDATA2LSB` (1).
    NotLittleEndian(u8),
    /// `EI_VERSION` is not 1.
    UnsupportedVersion(u8),
    /// `e_machine` is not `EM_X86_64` (62).
    UnsupportedMachine(u16),
    /// `e_type` is neither `ET_EXEC` (2) nor `ET_DYN` (3).
    UnsupportedType(u16),
    /// `e_phentsize` is not 56.
    BadProgramHeaderSize(u16),
    /// `e_phnum` is above [`MAX_PROGRAM_HEADERS`].
    TooManyProgramHeaders(u16),
    /// The program header table runs past the end of the file.
    ProgramHeadersOutOfBounds,
    /// The file bytes of `PT_LOAD` program header `index` run past the end of the file.
    SegmentOutOfFile {
        /// Program header index.
        index: usize,
    },
    /// `PT_LOAD` program header `index` has `p_filesz > p_memsz`.
    FileSizeExceedsMemSize {
        /// Program header index.
        index: usize,
    },
    /// `p_vaddr + p_memsz` of `PT_LOAD` program header `index` wraps the address space.
    SegmentAddressOverflow {
        /// Program header index.
        index: usize,
    },
    /// `p_align` of `PT_LOAD` program header `index` is not 0 or a power of two.
    BadSegmentAlignment {
        /// Program header index.
        index: usize,
        /// The `p_align` value.
        align: u64,
    },
    /// `p_vaddr` and `p_offset` of `PT_LOAD` program header `index` differ modulo `p_align`.
    MisalignedSegment {
        /// Program header index.
        index: usize,
    },
    /// The file has no `PT_LOAD` program header.
    NoLoadSegment,
    /// `PT_LOAD` program headers `first` and `second` overlap in virtual memory.
    OverlappingSegments {
        /// Program header index of the earlier segment.
        first: usize,
        /// Program header index of the later segment.
        second: usize,
    },
    /// The entry point is not inside an executable `PT_LOAD` segment.
    EntryNotExecutable {
        /// The `e_entry` value.
        entry: u64,
    },
    /// The image span, rounded up to 4 KiB, does not fit the address space or a `usize`.
    ImageTooLarge,
    /// The file has more than one `PT_DYNAMIC` program header.
    MultipleDynamicSegments,
    /// The `PT_DYNAMIC` bytes are not inside the file, or not inside the file-backed part of a
    /// `PT_LOAD` segment at the matching offset.
    DynamicOutOfBounds,
    /// The dynamic section has no `DT_NULL` terminator.
    MissingDynamicNull,
    /// The dynamic section uses a feature this loader does not support (`DT_NEEDED`, `DT_REL`,
    /// `DT_JMPREL`, `DT_RELR`).
    UnsupportedDynamicTag {
        /// The `d_tag` value.
        tag: u64,
    },
    /// The dynamic section asks for relocations in read-only segments (`DT_TEXTREL`, or
    /// `DF_TEXTREL` in `DT_FLAGS`).
    TextRelocations,
    /// A dynamic tag this loader uses appears more than once.
    DuplicateDynamicTag {
        /// The `d_tag` value.
        tag: u64,
    },
    /// A dynamic tag needed by the others is absent (e.g. `DT_RELA` without `DT_RELASZ`).
    MissingDynamicTag {
        /// The missing `d_tag` value.
        tag: u64,
    },
    /// `DT_RELAENT` is not 24.
    BadRelaEntrySize(u64),
    /// `DT_RELASZ` is not a multiple of 24.
    BadRelaSize(u64),
    /// The RELA table is not inside the file-backed part of a `PT_LOAD` segment.
    RelaTableOutOfBounds,
    /// A relocation has a type other than `R_X86_64_NONE` (0) or `R_X86_64_RELATIVE` (8).
    UnsupportedRelocation {
        /// The relocation type (low 32 bits of `r_info`).
        kind: u32,
    },
    /// An `R_X86_64_RELATIVE` relocation names a symbol.
    RelocationWithSymbol {
        /// Index of the relocation in the RELA table.
        index: usize,
        /// The symbol index (high 32 bits of `r_info`).
        symbol: u32,
    },
    /// The 8 bytes a relocation writes are not inside one `PT_LOAD` segment.
    RelocationOutOfBounds {
        /// The relocation's `r_offset`.
        offset: u64,
    },
    /// The load address is not 4 KiB aligned.
    UnalignedLoadBase {
        /// The load address asked for.
        base: u64,
    },
    /// The image loaded at `base` would run past the end of the address space.
    LoadBaseOverflow {
        /// The load address asked for.
        base: u64,
        /// The image size.
        size: u64,
    },
    /// An `ET_EXEC` image can only be loaded at the address it was linked for.
    NotRelocatable {
        /// The load address asked for.
        base: u64,
        /// The only address the image can be loaded at (its span start).
        expected: u64,
    },
    /// The destination buffer is smaller than the image span.
    BufferTooSmall {
        /// Bytes the image span needs.
        needed: u64,
        /// Bytes the buffer has.
        available: u64,
    },
}

fn dynamic_tag_name(tag: u64) -> &'static str {
    match tag {
        DT_NULL => "DT_NULL",
        DT_NEEDED => "DT_NEEDED",
        DT_RELA => "DT_RELA",
        DT_RELASZ => "DT_RELASZ",
        DT_RELAENT => "DT_RELAENT",
        DT_REL => "DT_REL",
        DT_TEXTREL => "DT_TEXTREL",
        DT_JMPREL => "DT_JMPREL",
        DT_RELR => "DT_RELR",
        _ => "tag",
    }
}

impl core::fmt::Display for ElfError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::TruncatedHeader => write!(f, "ELF: file is shorter than the 64-byte ELF header"),
            Self::BadMagic => write!(f, "ELF: file does not start with the ELF magic"),
            Self::UnsupportedClass(c) => write!(f, "ELF: class {c} is not ELFCLASS64"),
            Self::NotLittleEndian(d) => write!(f, "ELF: data encoding {d} is not little-endian"),
            Self::UnsupportedVersion(v) => write!(f, "ELF: identification version {v} is not 1"),
            Self::UnsupportedMachine(m) => write!(f, "ELF: machine {m} is not x86-64"),
            Self::UnsupportedType(t) => {
                write!(f, "ELF: type {t} is neither ET_EXEC (2) nor ET_DYN (3)")
            }
            Self::BadProgramHeaderSize(s) => {
                write!(f, "ELF: program header entry size {s} is not 56")
            }
            Self::TooManyProgramHeaders(n) => write!(
                f,
                "ELF: {n} program headers (at most {MAX_PROGRAM_HEADERS} supported)"
            ),
            Self::ProgramHeadersOutOfBounds => {
                write!(f, "ELF: program header table runs past the end of the file")
            }
            Self::SegmentOutOfFile { index } => write!(
                f,
                "ELF: file bytes of loadable segment {index} run past the end of the file"
            ),
            Self::FileSizeExceedsMemSize { index } => write!(
                f,
                "ELF: loadable segment {index} has more file bytes than memory bytes"
            ),
            Self::SegmentAddressOverflow { index } => write!(
                f,
                "ELF: loadable segment {index} wraps the end of the address space"
            ),
            Self::BadSegmentAlignment { index, align } => write!(
                f,
                "ELF: loadable segment {index} has alignment {align:#x}, not a power of two"
            ),
            Self::MisalignedSegment { index } => write!(
                f,
                "ELF: loadable segment {index} has address and file offset that differ modulo its alignment"
            ),
            Self::NoLoadSegment => write!(f, "ELF: file has no loadable segment"),
            Self::OverlappingSegments { first, second } => write!(
                f,
                "ELF: loadable segments {first} and {second} overlap in memory"
            ),
            Self::EntryNotExecutable { entry } => write!(
                f,
                "ELF: entry point {entry:#x} is not inside an executable loadable segment"
            ),
            Self::ImageTooLarge => write!(
                f,
                "ELF: image span does not fit the address space once rounded to 4 KiB"
            ),
            Self::MultipleDynamicSegments => {
                write!(f, "ELF: file has more than one dynamic segment")
            }
            Self::DynamicOutOfBounds => write!(
                f,
                "ELF: dynamic segment is not inside the file bytes of a loadable segment"
            ),
            Self::MissingDynamicNull => {
                write!(f, "ELF: dynamic section has no DT_NULL terminator")
            }
            Self::UnsupportedDynamicTag { tag } => write!(
                f,
                "ELF: dynamic {} ({tag}) is not supported",
                dynamic_tag_name(tag)
            ),
            Self::TextRelocations => write!(
                f,
                "ELF: image needs relocations in read-only segments (TEXTREL), not supported"
            ),
            Self::DuplicateDynamicTag { tag } => write!(
                f,
                "ELF: dynamic {} ({tag}) appears more than once",
                dynamic_tag_name(tag)
            ),
            Self::MissingDynamicTag { tag } => write!(
                f,
                "ELF: dynamic section lacks {} ({tag})",
                dynamic_tag_name(tag)
            ),
            Self::BadRelaEntrySize(s) => write!(f, "ELF: DT_RELAENT is {s}, not 24"),
            Self::BadRelaSize(s) => write!(f, "ELF: DT_RELASZ {s} is not a multiple of 24"),
            Self::RelaTableOutOfBounds => write!(
                f,
                "ELF: RELA table is not inside the file bytes of a loadable segment"
            ),
            Self::UnsupportedRelocation { kind } => write!(
                f,
                "ELF: relocation type {kind} is not supported (only R_X86_64_RELATIVE)"
            ),
            Self::RelocationWithSymbol { index, symbol } => write!(
                f,
                "ELF: relative relocation {index} names symbol {symbol} (must be 0)"
            ),
            Self::RelocationOutOfBounds { offset } => write!(
                f,
                "ELF: relocation at {offset:#x} is not inside a loadable segment"
            ),
            Self::UnalignedLoadBase { base } => {
                write!(f, "ELF: load address {base:#x} is not 4 KiB aligned")
            }
            Self::LoadBaseOverflow { base, size } => write!(
                f,
                "ELF: image of {size:#x} bytes at {base:#x} runs past the end of the address space"
            ),
            Self::NotRelocatable { base, expected } => write!(
                f,
                "ELF: executable (ET_EXEC) must be loaded at {expected:#x}, not {base:#x}"
            ),
            Self::BufferTooSmall { needed, available } => write!(
                f,
                "ELF: image needs {needed:#x} bytes but the buffer holds {available:#x}"
            ),
        }
    }
}

/// What kind of ELF file this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfType {
    /// `ET_EXEC`: loaded only at the addresses it was linked for.
    Executable,
    /// `ET_DYN`: position-independent, loaded anywhere and relocated.
    PositionIndependent,
}

/// One `PT_LOAD` segment of a parsed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadSegment<'a> {
    /// Virtual address the segment is linked at (`p_vaddr`).
    pub vaddr: u64,
    /// Physical address (`p_paddr`), as stored; the loader does not use it.
    pub paddr: u64,
    /// Bytes the segment occupies in memory (`p_memsz`); the part past `data` is zero.
    pub memsz: u64,
    /// Segment flags ([`PF_X`], [`PF_W`], [`PF_R`]).
    pub flags: u32,
    /// The segment's file bytes (`p_filesz` of them).
    pub data: &'a [u8],
}

/// Where [`ElfFile::load`] put the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadedImage {
    /// Guest address of the first byte of the image span (the load address).
    pub base: u64,
    /// Bytes of the image span (a multiple of 4 KiB).
    pub size: u64,
    /// Guest address of the entry point, relocated.
    pub entry: u64,
    /// `R_X86_64_RELATIVE` relocations applied.
    pub relocations: usize,
}

/// A program header, as stored.
#[derive(Debug, Clone, Copy)]
struct ProgramHeader {
    p_type: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    paddr: u64,
    filesz: u64,
    memsz: u64,
    align: u64,
}

impl ProgramHeader {
    /// End of the segment in memory; `None` if it wraps (refused by `parse` for `PT_LOAD`).
    fn mem_end(&self) -> Option<u64> {
        self.vaddr.checked_add(self.memsz)
    }

    /// Whether `[start, start + len)` lies inside `[vaddr, vaddr + size)`.
    fn contains(&self, start: u64, len: u64, size: u64) -> bool {
        match (start.checked_add(len), self.vaddr.checked_add(size)) {
            (Some(end), Some(seg_end)) => start >= self.vaddr && end <= seg_end,
            _ => false,
        }
    }
}

fn read_phdr(b: &[u8], at: usize) -> Option<ProgramHeader> {
    let h = read_at::<Elf64Phdr>(b, at)?;
    Some(ProgramHeader {
        p_type: h.p_type.get(),
        flags: h.p_flags.get(),
        offset: h.p_offset.get(),
        vaddr: h.p_vaddr.get(),
        paddr: h.p_paddr.get(),
        filesz: h.p_filesz.get(),
        memsz: h.p_memsz.get(),
        align: h.p_align.get(),
    })
}

/// Start of the `len` bytes at `offset` in `bytes`, if they are all inside it.
fn file_range(bytes: &[u8], offset: u64, len: u64) -> Option<core::ops::Range<usize>> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    (end <= bytes.len()).then_some(start..end)
}

/// The RELA table of a position-independent file: where it is in the file, and its length.
#[derive(Debug, Clone, Copy)]
struct RelaTable {
    offset: usize,
    count: usize,
}

/// A validated ELF64 x86-64 file.
#[derive(Clone, Copy)]
pub struct ElfFile<'a> {
    bytes: &'a [u8],
    elf_type: ElfType,
    entry: u64,
    phoff: usize,
    phnum: usize,
    span_start: u64,
    span_size: u64,
    rela: Option<RelaTable>,
}

impl core::fmt::Debug for ElfFile<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The file bytes are left out: they can be megabytes.
        f.debug_struct("ElfFile")
            .field("len", &self.bytes.len())
            .field("elf_type", &self.elf_type)
            .field("entry", &self.entry)
            .field("phnum", &self.phnum)
            .field("span_start", &self.span_start)
            .field("span_size", &self.span_size)
            .field("relocations", &self.rela.map_or(0, |r| r.count))
            .finish()
    }
}

impl<'a> ElfFile<'a> {
    /// Parses and validates `bytes` as an x86-64 ELF64 executable or position-independent
    /// executable. See the module documentation for what is checked.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ElfError> {
        let h = read_at::<Elf64Ehdr>(bytes, 0).ok_or(ElfError::TruncatedHeader)?;
        let [m0, m1, m2, m3, class, data, version, ..] = h.e_ident;
        if [m0, m1, m2, m3] != ELF_MAGIC {
            return Err(ElfError::BadMagic);
        }
        if class != ELFCLASS64 {
            return Err(ElfError::UnsupportedClass(class));
        }
        if data != ELFDATA2LSB {
            return Err(ElfError::NotLittleEndian(data));
        }
        if version != EV_CURRENT {
            return Err(ElfError::UnsupportedVersion(version));
        }
        let machine = h.e_machine.get();
        if machine != EM_X86_64 {
            return Err(ElfError::UnsupportedMachine(machine));
        }
        let elf_type = match h.e_type.get() {
            ET_EXEC => ElfType::Executable,
            ET_DYN => ElfType::PositionIndependent,
            other => return Err(ElfError::UnsupportedType(other)),
        };
        let entry = h.e_entry.get();
        let phentsize = h.e_phentsize.get();
        if usize::from(phentsize) != PHDR_SIZE {
            return Err(ElfError::BadProgramHeaderSize(phentsize));
        }
        let phnum = h.e_phnum.get();
        if phnum > MAX_PROGRAM_HEADERS {
            return Err(ElfError::TooManyProgramHeaders(phnum));
        }
        let table_len = (u64::from(phnum)) * PHDR_SIZE as u64; // at most 64 * 56
        let phoff = file_range(bytes, h.e_phoff.get(), table_len)
            .ok_or(ElfError::ProgramHeadersOutOfBounds)?
            .start;

        let mut file = ElfFile {
            bytes,
            elf_type,
            entry,
            phoff,
            phnum: usize::from(phnum),
            span_start: 0,
            span_size: 0,
            rela: None,
        };
        file.check_segments()?;
        if elf_type == ElfType::PositionIndependent {
            file.rela = file.find_rela()?;
            file.for_each_relocation(|_, _, _| Ok(()))?;
        }
        Ok(file)
    }

    /// The program headers with their indices. All of them are readable once `parse` has
    /// checked the table bounds.
    fn program_headers(&self) -> impl Iterator<Item = (usize, ProgramHeader)> + 'a {
        let (bytes, phoff) = (self.bytes, self.phoff);
        (0..self.phnum).filter_map(move |i| {
            let at = i.checked_mul(PHDR_SIZE)?.checked_add(phoff)?;
            Some((i, read_phdr(bytes, at)?))
        })
    }

    fn loads(&self) -> impl Iterator<Item = (usize, ProgramHeader)> + 'a {
        self.program_headers().filter(|(_, p)| p.p_type == PT_LOAD)
    }

    /// Checks every `PT_LOAD`, the entry point and the span; sets the span.
    fn check_segments(&mut self) -> Result<(), ElfError> {
        let mut min_vaddr = u64::MAX;
        let mut max_end = 0u64;
        let mut any_load = false;
        let mut dynamic_count = 0usize;
        for (index, p) in self.program_headers() {
            if p.p_type == PT_DYNAMIC {
                dynamic_count += 1;
                if dynamic_count > 1 {
                    return Err(ElfError::MultipleDynamicSegments);
                }
            }
            if p.p_type != PT_LOAD {
                continue;
            }
            if file_range(self.bytes, p.offset, p.filesz).is_none() {
                return Err(ElfError::SegmentOutOfFile { index });
            }
            if p.filesz > p.memsz {
                return Err(ElfError::FileSizeExceedsMemSize { index });
            }
            let end = p
                .mem_end()
                .ok_or(ElfError::SegmentAddressOverflow { index })?;
            if p.align != 0 && !p.align.is_power_of_two() {
                return Err(ElfError::BadSegmentAlignment {
                    index,
                    align: p.align,
                });
            }
            if p.align > 1 && p.vaddr % p.align != p.offset % p.align {
                return Err(ElfError::MisalignedSegment { index });
            }
            for (first, q) in self.loads().take_while(|(j, _)| *j < index) {
                // `q` passed the checks above, so its end does not wrap.
                let q_end = q.mem_end().unwrap_or(u64::MAX);
                if p.memsz != 0 && q.memsz != 0 && p.vaddr < q_end && q.vaddr < end {
                    return Err(ElfError::OverlappingSegments {
                        first,
                        second: index,
                    });
                }
            }
            any_load = true;
            min_vaddr = min_vaddr.min(p.vaddr);
            max_end = max_end.max(end);
        }
        if !any_load {
            return Err(ElfError::NoLoadSegment);
        }
        let entry = self.entry;
        if !self
            .loads()
            .any(|(_, p)| p.flags & PF_X != 0 && p.contains(entry, 1, p.memsz))
        {
            return Err(ElfError::EntryNotExecutable { entry });
        }
        let start = min_vaddr & !(IMAGE_ALIGN - 1);
        let end = max_end
            .checked_next_multiple_of(IMAGE_ALIGN)
            .ok_or(ElfError::ImageTooLarge)?;
        // `end >= max_end > min_vaddr >= start`: the entry check proved one segment non-empty.
        let size = end.checked_sub(start).ok_or(ElfError::ImageTooLarge)?;
        if usize::try_from(size).is_err() {
            return Err(ElfError::ImageTooLarge);
        }
        self.span_start = start;
        self.span_size = size;
        Ok(())
    }

    /// The file offset of the `len` bytes at virtual address `vaddr`, if they lie in the
    /// file-backed part of one `PT_LOAD` segment.
    fn file_offset_of(&self, vaddr: u64, len: u64) -> Option<usize> {
        self.loads().find_map(|(_, p)| {
            if !p.contains(vaddr, len, p.filesz) {
                return None;
            }
            let offset = p.offset.checked_add(vaddr.checked_sub(p.vaddr)?)?;
            Some(file_range(self.bytes, offset, len)?.start)
        })
    }

    /// Reads the dynamic section and locates the RELA table.
    fn find_rela(&self) -> Result<Option<RelaTable>, ElfError> {
        let Some((_, dynamic)) = self.program_headers().find(|(_, p)| p.p_type == PT_DYNAMIC)
        else {
            return Ok(None);
        };
        let range = file_range(self.bytes, dynamic.offset, dynamic.filesz)
            .ok_or(ElfError::DynamicOutOfBounds)?;
        if self.file_offset_of(dynamic.vaddr, dynamic.filesz) != Some(range.start) {
            return Err(ElfError::DynamicOutOfBounds);
        }
        let section = self.bytes.get(range).ok_or(ElfError::DynamicOutOfBounds)?;

        let (mut rela, mut relasz, mut relaent) = (None, None, None);
        let mut terminated = false;
        // Whole entries only: trailing bytes short of an entry are not one.
        let (entries, _) =
            <[Elf64Dyn]>::ref_from_prefix_with_elems(section, section.len() / DYN_SIZE)
                .map_err(|_| ElfError::DynamicOutOfBounds)?;
        for entry in entries {
            let (tag, val) = (entry.d_tag.get(), entry.d_val.get());
            let slot = match tag {
                DT_NULL => {
                    terminated = true;
                    break;
                }
                DT_RELA => &mut rela,
                DT_RELASZ => &mut relasz,
                DT_RELAENT => &mut relaent,
                DT_NEEDED | DT_REL | DT_JMPREL | DT_RELR => {
                    return Err(ElfError::UnsupportedDynamicTag { tag })
                }
                DT_TEXTREL => return Err(ElfError::TextRelocations),
                DT_FLAGS if val & DF_TEXTREL != 0 => return Err(ElfError::TextRelocations),
                _ => continue,
            };
            if slot.replace(val).is_some() {
                return Err(ElfError::DuplicateDynamicTag { tag });
            }
        }
        if !terminated {
            return Err(ElfError::MissingDynamicNull);
        }
        if let Some(size) = relaent {
            if size != RELA_SIZE as u64 {
                return Err(ElfError::BadRelaEntrySize(size));
            }
        }
        let Some(address) = rela else {
            return match relasz {
                Some(size) if size != 0 => Err(ElfError::MissingDynamicTag { tag: DT_RELA }),
                _ => Ok(None),
            };
        };
        let size = relasz.ok_or(ElfError::MissingDynamicTag { tag: DT_RELASZ })?;
        if relaent.is_none() {
            return Err(ElfError::MissingDynamicTag { tag: DT_RELAENT });
        }
        if !size.is_multiple_of(RELA_SIZE as u64) {
            return Err(ElfError::BadRelaSize(size));
        }
        let offset = self
            .file_offset_of(address, size)
            .ok_or(ElfError::RelaTableOutOfBounds)?;
        let count =
            usize::try_from(size / RELA_SIZE as u64).map_err(|_| ElfError::RelaTableOutOfBounds)?;
        Ok(Some(RelaTable { offset, count }))
    }

    /// Checks every relocation and calls `apply(r_offset, offset in the span, addend)` for each
    /// `R_X86_64_RELATIVE` one. Returns how many there were.
    fn for_each_relocation(
        &self,
        mut apply: impl FnMut(u64, usize, u64) -> Result<(), ElfError>,
    ) -> Result<usize, ElfError> {
        let Some(table) = self.rela else {
            return Ok(0);
        };
        let mut applied = 0usize;
        for index in 0..table.count {
            let at = index
                .checked_mul(RELA_SIZE)
                .and_then(|o| o.checked_add(table.offset))
                .ok_or(ElfError::RelaTableOutOfBounds)?;
            let rela =
                read_at::<Elf64Rela>(self.bytes, at).ok_or(ElfError::RelaTableOutOfBounds)?;
            let (r_offset, r_info, addend) =
                (rela.r_offset.get(), rela.r_info.get(), rela.r_addend.get());
            let kind = (r_info & 0xffff_ffff) as u32;
            let symbol = (r_info >> 32) as u32;
            match kind {
                R_X86_64_NONE => continue,
                R_X86_64_RELATIVE => {}
                _ => return Err(ElfError::UnsupportedRelocation { kind }),
            }
            if symbol != 0 {
                return Err(ElfError::RelocationWithSymbol { index, symbol });
            }
            let out_of_bounds = ElfError::RelocationOutOfBounds { offset: r_offset };
            if !self.loads().any(|(_, p)| p.contains(r_offset, 8, p.memsz)) {
                return Err(out_of_bounds);
            }
            let in_span = r_offset
                .checked_sub(self.span_start)
                .and_then(|o| usize::try_from(o).ok())
                .ok_or(out_of_bounds)?;
            apply(r_offset, in_span, addend)?;
            applied += 1;
        }
        Ok(applied)
    }

    /// Whether this is an executable or a position-independent file.
    pub fn elf_type(&self) -> ElfType {
        self.elf_type
    }

    /// The entry point as linked (`e_entry`).
    pub fn entry(&self) -> u64 {
        self.entry
    }

    /// The `PT_LOAD` segments, in program header order.
    pub fn load_segments(&self) -> impl Iterator<Item = LoadSegment<'a>> + 'a {
        let bytes = self.bytes;
        self.loads().filter_map(move |(_, p)| {
            Some(LoadSegment {
                vaddr: p.vaddr,
                paddr: p.paddr,
                memsz: p.memsz,
                flags: p.flags,
                data: bytes.get(file_range(bytes, p.offset, p.filesz)?)?,
            })
        })
    }

    /// The image span as linked: the lowest segment address rounded down to 4 KiB, and the
    /// bytes from there to the end of the highest segment, rounded up to 4 KiB.
    pub fn image_span(&self) -> (u64, u64) {
        (self.span_start, self.span_size)
    }

    /// Lays the image into `dst`, the memory at guest address `load_base` (4 KiB aligned).
    ///
    /// The first [`image_span`](Self::image_span)`().1` bytes of `dst` are zeroed, each segment's
    /// file bytes are copied to its address relative to the span start, and for a
    /// position-independent file every `R_X86_64_RELATIVE` relocation is applied for the
    /// displacement `load_base - span start`. An executable (`ET_EXEC`) is only accepted at its
    /// span start. Bytes of `dst` past the span are left alone.
    ///
    /// The file itself was fully checked by [`parse`](Self::parse); `load` checks the load
    /// address and the buffer size, and does so before writing to `dst`.
    pub fn load(&self, dst: &mut [u8], load_base: u64) -> Result<LoadedImage, ElfError> {
        if !load_base.is_multiple_of(IMAGE_ALIGN) {
            return Err(ElfError::UnalignedLoadBase { base: load_base });
        }
        if self.elf_type == ElfType::Executable && load_base != self.span_start {
            return Err(ElfError::NotRelocatable {
                base: load_base,
                expected: self.span_start,
            });
        }
        let size = self.span_size;
        if load_base.checked_add(size).is_none() {
            return Err(ElfError::LoadBaseOverflow {
                base: load_base,
                size,
            });
        }
        let too_small = ElfError::BufferTooSmall {
            needed: size,
            available: u64::try_from(dst.len()).unwrap_or(u64::MAX),
        };
        let len = usize::try_from(size).map_err(|_| too_small)?;
        let image = dst.get_mut(..len).ok_or(too_small)?;
        let entry = self
            .entry
            .checked_sub(self.span_start)
            .and_then(|o| load_base.checked_add(o))
            .ok_or(ElfError::EntryNotExecutable { entry: self.entry })?;

        image.fill(0);
        for (index, p) in self.loads() {
            let source = file_range(self.bytes, p.offset, p.filesz)
                .and_then(|r| self.bytes.get(r))
                .ok_or(ElfError::SegmentOutOfFile { index })?;
            let target = p
                .vaddr
                .checked_sub(self.span_start)
                .and_then(|o| file_range(image, o, p.filesz))
                .and_then(|r| image.get_mut(r))
                .ok_or(ElfError::SegmentAddressOverflow { index })?;
            target.copy_from_slice(source);
        }
        let delta = load_base.wrapping_sub(self.span_start);
        let relocations = self.for_each_relocation(|r_offset, at, addend| {
            let out_of_bounds = ElfError::RelocationOutOfBounds { offset: r_offset };
            let slot = image.get_mut(at..).ok_or(out_of_bounds)?;
            U64::new(delta.wrapping_add(addend))
                .write_to_prefix(slot)
                .map_err(|_| out_of_bounds)
        })?;
        Ok(LoadedImage {
            base: load_base,
            size,
            entry,
            relocations,
        })
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;

    // ELF header fields.
    const E_TYPE: usize = 0x10;
    const E_MACHINE: usize = 0x12;
    const E_ENTRY: usize = 0x18;
    const E_PHOFF: usize = 0x20;
    const E_PHENTSIZE: usize = 0x36;
    const E_PHNUM: usize = 0x38;
    // Program header fields.
    const P_TYPE: usize = 0;
    const P_FLAGS: usize = 4;
    const P_OFFSET: usize = 8;
    const P_VADDR: usize = 16;
    const P_PADDR: usize = 24;
    const P_FILESZ: usize = 32;
    const P_MEMSZ: usize = 40;
    const P_ALIGN: usize = 48;

    /// Offset of program header `i`.
    const fn ph(i: usize) -> usize {
        EHDR_SIZE + i * PHDR_SIZE
    }

    // The test ET_DYN image (linked at 0):
    //   file 0x000..0x200 -> text  [0x0000, 0x0200)  R+X, entry at 0x180
    //   file 0x200..0x300 -> data  [0x1200, 0x1500)  R+W, .bss from 0x1300
    //   dynamic at 0x1200 (file 0x200), 5 entries: RELA, RELASZ, RELAENT, RELACOUNT, NULL
    //   two pointer slots at 0x1260 and 0x1268, RELA table at 0x1280 (file 0x280)
    const ENTRY: u64 = 0x180;
    const DYN_AT: usize = 0x200;
    const RELA_AT: usize = 0x280;
    const SLOT0: u64 = 0x1260;
    const SLOT1: u64 = 0x1268;
    const ADDEND0: u64 = ENTRY;
    const ADDEND1: u64 = 0x1270;
    const FILE_LEN: usize = 0x300;
    const SPAN: u64 = 0x2000;
    const DT_RELACOUNT: u64 = 0x6fff_fff9;
    /// Offset of the tag (`+ 8` for the value) of dynamic entry `i`.
    const fn dyn_entry(i: usize) -> usize {
        DYN_AT + i * DYN_SIZE
    }
    /// Offset of relocation `i` (`+ 8` for `r_info`, `+ 16` for the addend).
    const fn rela(i: usize) -> usize {
        RELA_AT + i * RELA_SIZE
    }

    const EXEC_BASE: u64 = 0x40_0000;

    fn put16(b: &mut [u8], at: usize, v: u16) {
        b[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }
    fn put32(b: &mut [u8], at: usize, v: u32) {
        b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn put64(b: &mut [u8], at: usize, v: u64) {
        b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }
    fn get64(b: &[u8], at: u64) -> u64 {
        let at = at as usize;
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    struct Seg {
        p_type: u32,
        flags: u32,
        offset: u64,
        vaddr: u64,
        filesz: u64,
        memsz: u64,
        align: u64,
    }

    /// A file of `len` bytes with an x86-64 ELF64 header and `segs` as program headers at 64.
    fn build(e_type: u16, entry: u64, segs: &[Seg], len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2; // ELFCLASS64
        b[5] = 1; // little-endian
        b[6] = 1; // EV_CURRENT
        put16(&mut b, E_TYPE, e_type);
        put16(&mut b, E_MACHINE, 62);
        put32(&mut b, 0x14, 1); // e_version
        put64(&mut b, E_ENTRY, entry);
        put64(&mut b, E_PHOFF, EHDR_SIZE as u64);
        put16(&mut b, 0x34, EHDR_SIZE as u16); // e_ehsize
        put16(&mut b, E_PHENTSIZE, PHDR_SIZE as u16);
        put16(&mut b, E_PHNUM, segs.len() as u16);
        for (i, s) in segs.iter().enumerate() {
            let at = ph(i);
            put32(&mut b, at + P_TYPE, s.p_type);
            put32(&mut b, at + P_FLAGS, s.flags);
            put64(&mut b, at + P_OFFSET, s.offset);
            put64(&mut b, at + P_VADDR, s.vaddr);
            put64(&mut b, at + P_PADDR, s.vaddr);
            put64(&mut b, at + P_FILESZ, s.filesz);
            put64(&mut b, at + P_MEMSZ, s.memsz);
            put64(&mut b, at + P_ALIGN, s.align);
        }
        // Some recognisable code at the entry point and data in the data segment.
        b[0x180..0x190].fill(0x90);
        b[0x2b0..0x300].fill(0x55);
        b
    }

    fn text_and_data(base: u64) -> [Seg; 2] {
        [
            Seg {
                p_type: PT_LOAD,
                flags: PF_R | PF_X,
                offset: 0,
                vaddr: base,
                filesz: 0x200,
                memsz: 0x200,
                align: 0x1000,
            },
            Seg {
                p_type: PT_LOAD,
                flags: PF_R | PF_W,
                offset: 0x200,
                vaddr: base + 0x1200,
                filesz: 0x100,
                memsz: 0x300,
                align: 0x1000,
            },
        ]
    }

    /// The valid ET_DYN image described above.
    fn dyn_image() -> Vec<u8> {
        let [text, data] = text_and_data(0);
        let dynamic = Seg {
            p_type: PT_DYNAMIC,
            flags: PF_R | PF_W,
            offset: DYN_AT as u64,
            vaddr: 0x1200,
            filesz: 5 * DYN_SIZE as u64,
            memsz: 5 * DYN_SIZE as u64,
            align: 8,
        };
        let mut b = build(ET_DYN, ENTRY, &[text, data, dynamic], FILE_LEN);
        let entries = [
            (DT_RELA, 0x1280),
            (DT_RELASZ, 2 * RELA_SIZE as u64),
            (DT_RELAENT, RELA_SIZE as u64),
            (DT_RELACOUNT, 2),
            (DT_NULL, 0),
        ];
        for (i, (tag, val)) in entries.into_iter().enumerate() {
            put64(&mut b, dyn_entry(i), tag);
            put64(&mut b, dyn_entry(i) + 8, val);
        }
        b[0x260..0x270].fill(0xaa); // the slots, overwritten by the relocations
        for (i, (slot, addend)) in [(SLOT0, ADDEND0), (SLOT1, ADDEND1)].into_iter().enumerate() {
            put64(&mut b, rela(i), slot);
            put64(&mut b, rela(i) + 8, u64::from(R_X86_64_RELATIVE));
            put64(&mut b, rela(i) + 16, addend);
        }
        b
    }

    /// The valid ET_EXEC image: the same two segments linked at `EXEC_BASE`, no dynamic section.
    fn exec_image() -> Vec<u8> {
        build(
            ET_EXEC,
            EXEC_BASE + ENTRY,
            &text_and_data(EXEC_BASE),
            FILE_LEN,
        )
    }

    /// The parse error after `change` is applied to the valid ET_DYN image.
    fn dyn_err(change: impl FnOnce(&mut Vec<u8>)) -> ElfError {
        let mut b = dyn_image();
        change(&mut b);
        ElfFile::parse(&b).unwrap_err()
    }

    /// Sets dynamic entry `i` to `(tag, val)` in the valid ET_DYN image and returns the error.
    fn dyn_tag_err(i: usize, tag: u64, val: u64) -> ElfError {
        dyn_err(|b| {
            put64(b, dyn_entry(i), tag);
            put64(b, dyn_entry(i) + 8, val);
        })
    }

    fn load_dyn(b: &[u8], base: u64) -> (Vec<u8>, LoadedImage) {
        let elf = ElfFile::parse(b).unwrap();
        let mut dst = vec![0xffu8; SPAN as usize + 0x1000];
        let loaded = elf.load(&mut dst, base).unwrap();
        (dst, loaded)
    }

    #[test]
    fn dyn_image_parses() {
        let b = dyn_image();
        let elf = ElfFile::parse(&b).unwrap();
        assert_eq!(elf.elf_type(), ElfType::PositionIndependent);
        assert_eq!(elf.entry(), ENTRY);
        assert_eq!(elf.image_span(), (0, SPAN));
        let segs: Vec<_> = elf.load_segments().collect();
        assert_eq!(segs.len(), 2);
        assert_eq!(
            segs[0],
            LoadSegment {
                vaddr: 0,
                paddr: 0,
                memsz: 0x200,
                flags: PF_R | PF_X,
                data: &b[..0x200],
            }
        );
        assert_eq!(
            segs[1],
            LoadSegment {
                vaddr: 0x1200,
                paddr: 0x1200,
                memsz: 0x300,
                flags: PF_R | PF_W,
                data: &b[0x200..0x300],
            }
        );
    }

    #[test]
    fn dyn_image_loads_relocated_elsewhere() {
        let b = dyn_image();
        let base = 0x20_0000;
        let (dst, loaded) = load_dyn(&b, base);
        assert_eq!(
            loaded,
            LoadedImage {
                base,
                size: SPAN,
                entry: base + ENTRY,
                relocations: 2,
            }
        );
        assert_eq!(get64(&dst, SLOT0), base + ADDEND0);
        assert_eq!(get64(&dst, SLOT1), base + ADDEND1);
        // Text and the unrelocated data copied; gap and .bss zeroed; past the span untouched.
        assert_eq!(dst[..0x200], b[..0x200]);
        assert!(dst[0x200..0x1200].iter().all(|&x| x == 0));
        assert_eq!(dst[0x1200..0x1260], b[0x200..0x260]);
        assert_eq!(dst[0x1270..0x1300], b[0x270..0x300]);
        assert!(dst[0x1300..SPAN as usize].iter().all(|&x| x == 0));
        assert!(dst[SPAN as usize..].iter().all(|&x| x == 0xff));
    }

    #[test]
    fn dyn_image_loads_at_its_link_address() {
        let (dst, loaded) = load_dyn(&dyn_image(), 0);
        assert_eq!(loaded.entry, ENTRY);
        assert_eq!(loaded.relocations, 2);
        assert_eq!(get64(&dst, SLOT0), ADDEND0);
        assert_eq!(get64(&dst, SLOT1), ADDEND1);
    }

    #[test]
    fn negative_addend_and_bss_target() {
        // A relocation may target .bss (it is memory of the segment) and have a negative addend.
        let mut b = dyn_image();
        put64(&mut b, rela(1), 0x14f8);
        put64(&mut b, rela(1) + 16, (-0x10i64) as u64);
        let (dst, _) = load_dyn(&b, 0x10_0000);
        assert_eq!(get64(&dst, 0x14f8), 0x10_0000 - 0x10);
    }

    #[test]
    fn none_relocations_are_ignored() {
        let mut b = dyn_image();
        put64(&mut b, rela(1) + 8, u64::from(R_X86_64_NONE) | (7 << 32));
        let (dst, loaded) = load_dyn(&b, 0x20_0000);
        assert_eq!(loaded.relocations, 1);
        assert_eq!(get64(&dst, SLOT1), 0xaaaa_aaaa_aaaa_aaaa);
    }

    #[test]
    fn dyn_without_relocations() {
        // No PT_DYNAMIC at all.
        let mut b = dyn_image();
        put16(&mut b, E_PHNUM, 2);
        let (dst, loaded) = load_dyn(&b, 0x20_0000);
        assert_eq!(loaded.relocations, 0);
        assert_eq!(get64(&dst, SLOT0), 0xaaaa_aaaa_aaaa_aaaa);
        // A dynamic section without DT_RELA (DT_RELAENT alone, DT_RELASZ of 0).
        let mut b = dyn_image();
        put64(&mut b, dyn_entry(0), DT_RELACOUNT);
        put64(&mut b, dyn_entry(1) + 8, 0);
        assert_eq!(load_dyn(&b, 0x20_0000).1.relocations, 0);
        // An empty RELA table.
        let mut b = dyn_image();
        put64(&mut b, dyn_entry(1) + 8, 0);
        assert_eq!(load_dyn(&b, 0x20_0000).1.relocations, 0);
    }

    #[test]
    fn ignored_dynamic_tags() {
        // DT_FLAGS without DF_TEXTREL (here DF_BIND_NOW) and unknown tags are ignored.
        let mut b = dyn_image();
        put64(&mut b, dyn_entry(3), DT_FLAGS);
        put64(&mut b, dyn_entry(3) + 8, 8);
        assert!(ElfFile::parse(&b).is_ok());
        put64(&mut b, dyn_entry(3), 0x1234_5678);
        assert!(ElfFile::parse(&b).is_ok());
    }

    #[test]
    fn exec_image_loads_only_at_its_address() {
        let b = exec_image();
        let elf = ElfFile::parse(&b).unwrap();
        assert_eq!(elf.elf_type(), ElfType::Executable);
        assert_eq!(elf.image_span(), (EXEC_BASE, SPAN));
        let mut dst = vec![0xffu8; SPAN as usize];
        let loaded = elf.load(&mut dst, EXEC_BASE).unwrap();
        assert_eq!(
            loaded,
            LoadedImage {
                base: EXEC_BASE,
                size: SPAN,
                entry: EXEC_BASE + ENTRY,
                relocations: 0,
            }
        );
        assert_eq!(dst[..0x200], b[..0x200]);
        assert_eq!(dst[0x1200..0x1300], b[0x200..0x300]);
        assert!(dst[0x1300..].iter().all(|&x| x == 0));
        assert_eq!(
            elf.load(&mut dst, 0x50_0000).unwrap_err(),
            ElfError::NotRelocatable {
                base: 0x50_0000,
                expected: EXEC_BASE
            }
        );
    }

    #[test]
    fn exec_span_rounds_down_an_unaligned_start() {
        // Segments at 0x400100 (file offset 0x100): the span starts at 0x400000.
        let mut b = exec_image();
        put64(&mut b, ph(0) + P_OFFSET, 0x100);
        put64(&mut b, ph(0) + P_VADDR, EXEC_BASE + 0x100);
        put64(&mut b, ph(0) + P_FILESZ, 0x100);
        put64(&mut b, ph(0) + P_MEMSZ, 0x100);
        let elf = ElfFile::parse(&b).unwrap();
        assert_eq!(elf.image_span(), (EXEC_BASE, SPAN));
        let mut dst = vec![0xffu8; SPAN as usize];
        elf.load(&mut dst, EXEC_BASE).unwrap();
        assert!(dst[..0x100].iter().all(|&x| x == 0));
        assert_eq!(dst[0x100..0x200], b[0x100..0x200]);
    }

    #[test]
    fn header_rules() {
        let b = dyn_image();
        assert_eq!(
            ElfFile::parse(&b[..EHDR_SIZE - 1]).unwrap_err(),
            ElfError::TruncatedHeader
        );
        assert_eq!(ElfFile::parse(&[]).unwrap_err(), ElfError::TruncatedHeader);
        assert_eq!(dyn_err(|b| b[1] = b'X'), ElfError::BadMagic);
        assert_eq!(dyn_err(|b| b[4] = 1), ElfError::UnsupportedClass(1));
        assert_eq!(dyn_err(|b| b[5] = 2), ElfError::NotLittleEndian(2));
        assert_eq!(dyn_err(|b| b[6] = 0), ElfError::UnsupportedVersion(0));
        assert_eq!(
            dyn_err(|b| put16(b, E_MACHINE, 3)),
            ElfError::UnsupportedMachine(3)
        );
        assert_eq!(
            dyn_err(|b| put16(b, E_TYPE, 1)),
            ElfError::UnsupportedType(1)
        );
        assert_eq!(
            dyn_err(|b| put16(b, E_TYPE, 4)),
            ElfError::UnsupportedType(4)
        );
        assert_eq!(
            dyn_err(|b| put16(b, E_PHENTSIZE, 64)),
            ElfError::BadProgramHeaderSize(64)
        );
        assert_eq!(
            dyn_err(|b| put16(b, E_PHNUM, MAX_PROGRAM_HEADERS + 1)),
            ElfError::TooManyProgramHeaders(MAX_PROGRAM_HEADERS + 1)
        );
        assert_eq!(
            dyn_err(|b| put16(b, E_PHNUM, 0xffff)),
            ElfError::TooManyProgramHeaders(0xffff)
        );
    }

    #[test]
    fn program_header_table_must_be_in_the_file() {
        let table = 3 * PHDR_SIZE as u64;
        assert_eq!(
            dyn_err(|b| put64(b, E_PHOFF, FILE_LEN as u64 - table + 1)),
            ElfError::ProgramHeadersOutOfBounds
        );
        assert_eq!(
            dyn_err(|b| put64(b, E_PHOFF, u64::MAX)),
            ElfError::ProgramHeadersOutOfBounds
        );
        assert_eq!(
            ElfFile::parse(&dyn_image()[..ph(3) - 1]).unwrap_err(),
            ElfError::ProgramHeadersOutOfBounds
        );
        // At the very end of the file is fine as far as the table goes.
        let mut b = dyn_image();
        b.truncate(ph(3));
        assert_ne!(
            ElfFile::parse(&b).unwrap_err(),
            ElfError::ProgramHeadersOutOfBounds
        );
    }

    #[test]
    fn segment_file_bytes_must_be_in_the_file() {
        assert_eq!(
            dyn_err(|b| put64(b, ph(1) + P_FILESZ, 0x101)),
            ElfError::SegmentOutOfFile { index: 1 }
        );
        assert_eq!(
            dyn_err(|b| put64(b, ph(1) + P_OFFSET, u64::MAX)),
            ElfError::SegmentOutOfFile { index: 1 }
        );
        assert_eq!(
            ElfFile::parse(&dyn_image()[..FILE_LEN - 1]).unwrap_err(),
            ElfError::SegmentOutOfFile { index: 1 }
        );
    }

    #[test]
    fn segment_filesz_must_not_exceed_memsz() {
        assert_eq!(
            dyn_err(|b| put64(b, ph(0) + P_MEMSZ, 0x1ff)),
            ElfError::FileSizeExceedsMemSize { index: 0 }
        );
    }

    #[test]
    fn segment_end_must_not_wrap() {
        assert_eq!(
            dyn_err(|b| put64(b, ph(1) + P_MEMSZ, u64::MAX - 0x1000)),
            ElfError::SegmentAddressOverflow { index: 1 }
        );
    }

    #[test]
    fn segment_alignment_must_be_a_power_of_two() {
        assert_eq!(
            dyn_err(|b| put64(b, ph(1) + P_ALIGN, 0x1800)),
            ElfError::BadSegmentAlignment {
                index: 1,
                align: 0x1800
            }
        );
        // 0 and 1 mean "no alignment": any address goes with any offset.
        for align in [0, 1] {
            let mut b = exec_image();
            put64(&mut b, ph(0) + P_ALIGN, align);
            put64(&mut b, ph(1) + P_ALIGN, align);
            put64(&mut b, ph(1) + P_VADDR, EXEC_BASE + 0x1300);
            assert!(ElfFile::parse(&b).is_ok());
        }
    }

    #[test]
    fn segment_address_and_offset_must_be_congruent() {
        assert_eq!(
            dyn_err(|b| put64(b, ph(1) + P_VADDR, 0x1300)),
            ElfError::MisalignedSegment { index: 1 }
        );
        assert_eq!(
            dyn_err(|b| put64(b, ph(1) + P_ALIGN, 0x2000)),
            ElfError::MisalignedSegment { index: 1 }
        );
    }

    #[test]
    fn at_least_one_load_segment() {
        assert_eq!(
            dyn_err(|b| {
                put32(b, ph(0) + P_TYPE, 0);
                put32(b, ph(1) + P_TYPE, 6);
            }),
            ElfError::NoLoadSegment
        );
        assert_eq!(dyn_err(|b| put16(b, E_PHNUM, 0)), ElfError::NoLoadSegment);
    }

    #[test]
    fn load_segments_must_not_overlap() {
        assert_eq!(
            dyn_err(|b| put64(b, ph(0) + P_MEMSZ, 0x1201)),
            ElfError::OverlappingSegments {
                first: 0,
                second: 1
            }
        );
        // Touching is fine.
        let mut b = dyn_image();
        put64(&mut b, ph(0) + P_MEMSZ, 0x1200);
        assert!(ElfFile::parse(&b).is_ok());
        // An empty segment overlaps nothing.
        put64(&mut b, ph(1) + P_FILESZ, 0);
        put64(&mut b, ph(1) + P_MEMSZ, 0);
        put16(&mut b, E_PHNUM, 2);
        put64(&mut b, ph(1) + P_VADDR, 0x200);
        assert!(ElfFile::parse(&b).is_ok());
    }

    #[test]
    fn entry_must_be_in_an_executable_segment() {
        for entry in [0x200, 0x1200, 0x1400, 0x8000, u64::MAX] {
            assert_eq!(
                dyn_err(|b| put64(b, E_ENTRY, entry)),
                ElfError::EntryNotExecutable { entry }
            );
        }
        assert_eq!(
            dyn_err(|b| put32(b, ph(0) + P_FLAGS, PF_R)),
            ElfError::EntryNotExecutable { entry: ENTRY }
        );
        // First and last byte of the text segment are fine.
        for entry in [0, 0x1ff] {
            let mut b = dyn_image();
            put64(&mut b, E_ENTRY, entry);
            assert_eq!(load_dyn(&b, 0x1000).1.entry, 0x1000 + entry);
        }
    }

    #[test]
    fn span_must_fit_the_address_space() {
        assert_eq!(
            dyn_err(|b| put64(b, ph(1) + P_VADDR, 0xffff_ffff_ffff_f200)),
            ElfError::ImageTooLarge
        );
    }

    #[test]
    fn one_dynamic_segment() {
        assert_eq!(
            dyn_err(|b| {
                let dynamic: Vec<u8> = b[ph(2)..ph(3)].to_vec();
                b[ph(3)..ph(4)].copy_from_slice(&dynamic);
                put16(b, E_PHNUM, 4);
            }),
            ElfError::MultipleDynamicSegments
        );
    }

    #[test]
    fn dynamic_must_be_in_a_loaded_part_of_the_file() {
        // Past the end of the file.
        assert_eq!(
            dyn_err(|b| put64(b, ph(2) + P_OFFSET, 0x2f0)),
            ElfError::DynamicOutOfBounds
        );
        assert_eq!(
            dyn_err(|b| put64(b, ph(2) + P_FILESZ, u64::MAX)),
            ElfError::DynamicOutOfBounds
        );
        // Address not matching its offset.
        assert_eq!(
            dyn_err(|b| put64(b, ph(2) + P_VADDR, 0x1210)),
            ElfError::DynamicOutOfBounds
        );
        // In .bss, or in no segment.
        assert_eq!(
            dyn_err(|b| put64(b, ph(2) + P_VADDR, 0x1300)),
            ElfError::DynamicOutOfBounds
        );
        assert_eq!(
            dyn_err(|b| put64(b, ph(2) + P_VADDR, 0x800)),
            ElfError::DynamicOutOfBounds
        );
    }

    #[test]
    fn dynamic_needs_a_null_terminator() {
        assert_eq!(
            dyn_tag_err(4, DT_RELACOUNT, 0),
            ElfError::MissingDynamicNull
        );
        assert_eq!(
            dyn_err(|b| put64(b, ph(2) + P_FILESZ, 4 * DYN_SIZE as u64)),
            ElfError::MissingDynamicNull
        );
        assert_eq!(
            dyn_err(|b| put64(b, ph(2) + P_FILESZ, 0)),
            ElfError::MissingDynamicNull
        );
    }

    #[test]
    fn unsupported_dynamic_features() {
        for tag in [DT_NEEDED, DT_REL, DT_JMPREL, DT_RELR] {
            assert_eq!(
                dyn_tag_err(3, tag, 0x1280),
                ElfError::UnsupportedDynamicTag { tag }
            );
        }
        assert_eq!(dyn_tag_err(3, DT_TEXTREL, 0), ElfError::TextRelocations);
        assert_eq!(
            dyn_tag_err(3, DT_FLAGS, DF_TEXTREL | 8),
            ElfError::TextRelocations
        );
    }

    #[test]
    fn dynamic_tags_must_not_repeat() {
        for tag in [DT_RELA, DT_RELASZ, DT_RELAENT] {
            assert_eq!(
                dyn_tag_err(3, tag, 0),
                ElfError::DuplicateDynamicTag { tag }
            );
        }
    }

    #[test]
    fn rela_tags_come_together() {
        assert_eq!(
            dyn_tag_err(0, DT_RELACOUNT, 0),
            ElfError::MissingDynamicTag { tag: DT_RELA }
        );
        assert_eq!(
            dyn_tag_err(1, DT_RELACOUNT, 0),
            ElfError::MissingDynamicTag { tag: DT_RELASZ }
        );
        assert_eq!(
            dyn_tag_err(2, DT_RELACOUNT, 0),
            ElfError::MissingDynamicTag { tag: DT_RELAENT }
        );
    }

    #[test]
    fn rela_entry_size_must_be_24() {
        assert_eq!(
            dyn_tag_err(2, DT_RELAENT, 16),
            ElfError::BadRelaEntrySize(16)
        );
    }

    #[test]
    fn rela_size_must_be_whole_entries() {
        assert_eq!(dyn_tag_err(1, DT_RELASZ, 40), ElfError::BadRelaSize(40));
    }

    #[test]
    fn rela_table_must_be_in_the_file() {
        // Running into .bss, outside any segment, past the file, or wrapping.
        for address in [0x12e0, 0x5000, 0x800, u64::MAX - 8] {
            assert_eq!(
                dyn_tag_err(0, DT_RELA, address),
                ElfError::RelaTableOutOfBounds
            );
        }
        assert_eq!(
            dyn_tag_err(1, DT_RELASZ, 24 * 0x1000),
            ElfError::RelaTableOutOfBounds
        );
        assert_eq!(
            dyn_tag_err(1, DT_RELASZ, u64::MAX - u64::MAX % 24),
            ElfError::RelaTableOutOfBounds
        );
    }

    #[test]
    fn only_relative_relocations() {
        for kind in [1u32, 6, 7, 37, 0xffff_ffff] {
            assert_eq!(
                dyn_err(|b| put64(b, rela(1) + 8, u64::from(kind))),
                ElfError::UnsupportedRelocation { kind }
            );
        }
    }

    #[test]
    fn relative_relocations_name_no_symbol() {
        assert_eq!(
            dyn_err(|b| put64(b, rela(1) + 8, (5 << 32) | u64::from(R_X86_64_RELATIVE))),
            ElfError::RelocationWithSymbol {
                index: 1,
                symbol: 5
            }
        );
    }

    #[test]
    fn relocation_target_must_be_in_a_segment() {
        // Straddling the end of data, in the gap, in the span's padding, past the span, wrapping.
        for offset in [0x14f9, 0x800, 0x1ff8, 0x2000, 0x1_0000_0000, u64::MAX - 3] {
            assert_eq!(
                dyn_err(|b| put64(b, rela(0), offset)),
                ElfError::RelocationOutOfBounds { offset }
            );
        }
        // The last 8 bytes of text are fine (the loader does not police TEXTREL by address).
        let mut b = dyn_image();
        put64(&mut b, rela(0), 0x1f8);
        assert_eq!(get64(&load_dyn(&b, 0x3000).0, 0x1f8), 0x3000 + ADDEND0);
    }

    #[test]
    fn load_base_must_be_page_aligned() {
        let b = dyn_image();
        let elf = ElfFile::parse(&b).unwrap();
        let mut dst = vec![0u8; SPAN as usize];
        assert_eq!(
            elf.load(&mut dst, 0x20_0010).unwrap_err(),
            ElfError::UnalignedLoadBase { base: 0x20_0010 }
        );
    }

    #[test]
    fn load_base_must_leave_room_for_the_image() {
        let b = dyn_image();
        let elf = ElfFile::parse(&b).unwrap();
        let mut dst = vec![0u8; SPAN as usize];
        let base = u64::MAX - 0xfff;
        assert_eq!(
            elf.load(&mut dst, base).unwrap_err(),
            ElfError::LoadBaseOverflow { base, size: SPAN }
        );
        // Ending exactly at the top of the address space is refused too (the end wraps to 0).
        let base = 0u64.wrapping_sub(SPAN);
        assert_eq!(
            elf.load(&mut dst, base).unwrap_err(),
            ElfError::LoadBaseOverflow { base, size: SPAN }
        );
    }

    #[test]
    fn buffer_must_hold_the_span() {
        let b = dyn_image();
        let elf = ElfFile::parse(&b).unwrap();
        let mut dst = vec![0x77u8; SPAN as usize - 1];
        assert_eq!(
            elf.load(&mut dst, 0x20_0000).unwrap_err(),
            ElfError::BufferTooSmall {
                needed: SPAN,
                available: SPAN - 1
            }
        );
        // Nothing was written.
        assert!(dst.iter().all(|&x| x == 0x77));
        assert_eq!(
            elf.load(&mut [], 0).unwrap_err(),
            ElfError::BufferTooSmall {
                needed: SPAN,
                available: 0
            }
        );
    }

    #[test]
    fn errors_have_clear_messages() {
        use std::string::ToString;
        assert_eq!(
            ElfError::UnsupportedMachine(3).to_string(),
            "ELF: machine 3 is not x86-64"
        );
        assert_eq!(
            ElfError::UnsupportedDynamicTag { tag: DT_REL }.to_string(),
            "ELF: dynamic DT_REL (17) is not supported"
        );
        assert_eq!(
            ElfError::BufferTooSmall {
                needed: 0x2000,
                available: 0x1000
            }
            .to_string(),
            "ELF: image needs 0x2000 bytes but the buffer holds 0x1000"
        );
        let all = [
            ElfError::TruncatedHeader,
            ElfError::BadMagic,
            ElfError::UnsupportedClass(1),
            ElfError::NotLittleEndian(2),
            ElfError::UnsupportedVersion(0),
            ElfError::UnsupportedMachine(3),
            ElfError::UnsupportedType(1),
            ElfError::BadProgramHeaderSize(64),
            ElfError::TooManyProgramHeaders(65),
            ElfError::ProgramHeadersOutOfBounds,
            ElfError::SegmentOutOfFile { index: 1 },
            ElfError::FileSizeExceedsMemSize { index: 1 },
            ElfError::SegmentAddressOverflow { index: 1 },
            ElfError::BadSegmentAlignment { index: 1, align: 3 },
            ElfError::MisalignedSegment { index: 1 },
            ElfError::NoLoadSegment,
            ElfError::OverlappingSegments {
                first: 0,
                second: 1,
            },
            ElfError::EntryNotExecutable { entry: 0x1000 },
            ElfError::ImageTooLarge,
            ElfError::MultipleDynamicSegments,
            ElfError::DynamicOutOfBounds,
            ElfError::MissingDynamicNull,
            ElfError::UnsupportedDynamicTag { tag: DT_NEEDED },
            ElfError::TextRelocations,
            ElfError::DuplicateDynamicTag { tag: DT_RELA },
            ElfError::MissingDynamicTag { tag: DT_RELASZ },
            ElfError::BadRelaEntrySize(16),
            ElfError::BadRelaSize(40),
            ElfError::RelaTableOutOfBounds,
            ElfError::UnsupportedRelocation { kind: 1 },
            ElfError::RelocationWithSymbol {
                index: 0,
                symbol: 1,
            },
            ElfError::RelocationOutOfBounds { offset: 0x2000 },
            ElfError::UnalignedLoadBase { base: 0x10 },
            ElfError::LoadBaseOverflow {
                base: 0x1000,
                size: 0x1000,
            },
            ElfError::NotRelocatable {
                base: 0,
                expected: 0x1000,
            },
            ElfError::BufferTooSmall {
                needed: 1,
                available: 0,
            },
        ];
        let messages: Vec<_> = all.iter().map(|e| e.to_string()).collect();
        for (i, m) in messages.iter().enumerate() {
            assert!(m.starts_with("ELF: "), "{m}");
            assert!(!messages[..i].contains(m), "duplicate message {m}");
        }
    }

    /// The host's own test binary is a real x86-64 PIE: it gets through the header and segment
    /// rules and is refused for needing shared libraries (or packed relocations).
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    #[test]
    fn real_host_binary() {
        let Ok(path) = std::env::current_exe() else {
            return;
        };
        let Ok(bytes) = std::fs::read(path) else {
            return;
        };
        match ElfFile::parse(&bytes) {
            Err(ElfError::UnsupportedDynamicTag { .. }) | Err(ElfError::TextRelocations) => {}
            // A statically linked, non-PIE host build.
            Ok(elf) => assert!(elf.load_segments().count() > 0),
            Err(e) => panic!("unexpected error for the host binary: {e}"),
        }
    }

    /// Parses `bytes` and, if that works, loads it a few ways; nothing may panic.
    fn parse_and_load(bytes: &[u8]) {
        let Ok(elf) = ElfFile::parse(bytes) else {
            return;
        };
        let _ = elf.entry();
        let _ = elf.elf_type();
        for s in elf.load_segments() {
            assert!(s.data.len() as u64 <= s.memsz);
        }
        let (start, size) = elf.image_span();
        assert_eq!(start % IMAGE_ALIGN, 0);
        assert_eq!(size % IMAGE_ALIGN, 0);
        let mut small = vec![0u8; 0x3000];
        let _ = elf.load(&mut small, 0x20_0000);
        let _ = elf.load(&mut small, start);
        if size <= 1 << 20 {
            let mut dst = vec![0u8; size as usize];
            // A file that parses loads into a large enough buffer at its own span start.
            let l = elf.load(&mut dst, start).unwrap();
            assert_eq!(l.entry, elf.entry());
            if elf.elf_type() == ElfType::PositionIndependent {
                let l = elf.load(&mut dst, 0x10_0000).unwrap();
                assert_eq!(l.size, size);
            }
        }
    }

    #[test]
    fn every_single_byte_change_is_handled() {
        let good = dyn_image();
        for at in 0..good.len() {
            for value in [
                0,
                0xff,
                good[at] ^ 1,
                good[at] ^ 0x80,
                good[at].wrapping_add(8),
            ] {
                let mut b = good.clone();
                b[at] = value;
                parse_and_load(&b);
            }
        }
    }

    /// Offsets of every u64 field of the valid ET_DYN image.
    fn u64_fields() -> Vec<usize> {
        let mut v = vec![E_ENTRY, E_PHOFF];
        for i in 0..3 {
            for f in [P_OFFSET, P_VADDR, P_PADDR, P_FILESZ, P_MEMSZ, P_ALIGN] {
                v.push(ph(i) + f);
            }
        }
        for i in 0..5 {
            v.extend([dyn_entry(i), dyn_entry(i) + 8]);
        }
        for i in 0..2 {
            v.extend([rela(i), rela(i) + 8, rela(i) + 16]);
        }
        v
    }

    fn interesting_u64() -> impl Strategy<Value = u64> {
        prop_oneof![
            Just(0u64),
            Just(1u64),
            Just(8u64),
            Just(24u64),
            Just(0x1000u64),
            Just(u64::MAX),
            Just(u64::MAX - 7),
            Just(1u64 << 63),
            0u64..0x4000,
            any::<u64>(),
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            parse_and_load(&bytes);
        }

        #[test]
        fn arbitrary_bytes_after_a_valid_header_never_panic(
            tail in proptest::collection::vec(any::<u8>(), 0..2048),
            phnum in 0u16..8,
        ) {
            let mut b = dyn_image()[..EHDR_SIZE].to_vec();
            put16(&mut b, E_PHNUM, phnum);
            b.extend_from_slice(&tail);
            parse_and_load(&b);
        }

        #[test]
        fn single_byte_mutations_never_panic(at in 0usize..FILE_LEN, byte in any::<u8>()) {
            let mut b = dyn_image();
            b[at] = byte;
            parse_and_load(&b);
        }

        #[test]
        fn u64_field_mutations_never_panic(
            field in proptest::sample::select(u64_fields()),
            value in interesting_u64(),
            second in proptest::sample::select(u64_fields()),
            second_value in interesting_u64(),
        ) {
            let mut b = dyn_image();
            put64(&mut b, field, value);
            parse_and_load(&b);
            put64(&mut b, second, second_value);
            parse_and_load(&b);
        }

        #[test]
        fn patches_and_truncations_never_panic(
            at in 0usize..FILE_LEN,
            patch in proptest::collection::vec(any::<u8>(), 1..64),
            len in 0usize..=FILE_LEN,
        ) {
            let mut b = dyn_image();
            let end = (at + patch.len()).min(FILE_LEN);
            b[at..end].copy_from_slice(&patch[..end - at]);
            parse_and_load(&b);
            parse_and_load(&dyn_image()[..len]);
        }

        #[test]
        fn relocation_follows_the_load_base(page in 0u64..(1 << 40)) {
            let base = page * IMAGE_ALIGN;
            let (dst, loaded) = load_dyn(&dyn_image(), base);
            prop_assert_eq!(loaded.entry, base + ENTRY);
            prop_assert_eq!(get64(&dst, SLOT0), base + ADDEND0);
            prop_assert_eq!(get64(&dst, SLOT1), base + ADDEND1);
        }
    }
}
