//! The interpreter of QEMU's `etc/table-loader` script.
//!
//! The script is an array of 128-byte commands (little-endian):
//!
//! | command | fields after the u32 command |
//! |---|---|
//! | 1 ALLOCATE | file[56], align u32, zone u8 (1 high memory, 2 the F segment) |
//! | 2 ADD_POINTER | dest file[56], src file[56], offset u32, size u8 (1, 2, 4, 8) |
//! | 3 ADD_CHECKSUM | file[56], offset u32, start u32, length u32 |
//! | 4 WRITE_POINTER | dest file[56], src file[56], dest offset u32, src offset u32, size u8 |
//!
//! ALLOCATE loads a fw_cfg file into guest memory; ADD_POINTER adds the guest address of one
//! loaded file to a little-endian field of another; ADD_CHECKSUM sets a byte so that a range sums
//! to zero; WRITE_POINTER tells the VMM where a file landed (used by optional devices such as
//! vmgenid; this firmware skips it and says so). Everything in the script comes from the VMM and
//! is checked: names, alignments, offsets, sizes, overflow, the order of commands.
//!
//! [`plan`] computes where each file goes from the file sizes, so the firmware can reserve one
//! region first; [`link`] then reads each file straight into its place in that region and
//! patches it. No file is ever copied through the heap: the heap holds only the decoded commands
//! and one [`Extent`] per file, both bounded by [`MAX_COMMANDS`].

use super::AcpiError;
use alloc::vec::Vec;
use core::ops::Range;
use zerocopy::little_endian::U32;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Bytes of one command.
pub const COMMAND_SIZE: usize = 128;
/// Bytes of a file name field.
pub const NAME_SIZE: usize = 56;
/// Most commands accepted.
pub const MAX_COMMANDS: usize = 1024;
/// Most bytes one file may have.
pub const MAX_FILE_SIZE: u64 = 4 << 20;
/// Most bytes all files may take together, alignment padding included: 8 MiB.
///
/// The files go to a region the firmware reserves in RAM below 4 GiB (not to its 3 MiB heap),
/// together with [`FIRMWARE_TABLES_ROOM`](super::FIRMWARE_TABLES_ROOM). QEMU's q35 tables total
/// about 132 KiB (`etc/acpi/tables` padded to 128 KiB, 256 KiB for very large VMs, plus the RSDP
/// and, with a TPM, a 64 KiB log), so 8 MiB is far above anything QEMU makes, admits one file of
/// [`MAX_FILE_SIZE`] with room to spare, and keeps the region (at most 8 MiB + 4 KiB, and well
/// inside `usize` and 4 GiB) small next to the RAM any guest that boots Linux has. A VMM asking
/// for more is refused before anything is reserved ([`AcpiError::FilesTooLarge`]); a guest with
/// too little RAM for the region is refused when it is placed ([`AcpiError::TooLarge`]).
pub const MAX_FILES_SIZE: u64 = 8 << 20;
/// Largest alignment an ALLOCATE may ask for.
pub const MAX_ALIGN: u32 = 4096;
/// ALLOCATE zone of the RSDP: the legacy F segment (any address below 1 MiB... or, for a loader
/// that passes the RSDP's address explicitly, anywhere below 4 GiB). At most one file may be
/// allocated there: it is the RSDP.
pub const ZONE_FSEG: u8 = 2;
/// ALLOCATE zone of every other file: anywhere in RAM (below 4 GiB here).
pub const ZONE_HIGH: u8 = 1;

/// Command ALLOCATE: load a file.
pub const ALLOCATE: u32 = 1;
/// Command ADD_POINTER: add a file's address to a field of another.
pub const ADD_POINTER: u32 = 2;
/// Command ADD_CHECKSUM: make a range of a file sum to zero.
pub const ADD_CHECKSUM: u32 = 3;
/// Command WRITE_POINTER: tell the VMM where a file is (skipped by this firmware).
pub const WRITE_POINTER: u32 = 4;

const _: () = assert!(MAX_FILE_SIZE <= MAX_FILES_SIZE && MAX_FILES_SIZE <= u32::MAX as u64);

/// One command as it is on the wire: its type, then a body whose layout depends on it.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct RawCommand {
    command: U32,
    body: [u8; COMMAND_SIZE - 4],
}

/// The body of ALLOCATE.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct RawAllocate {
    file: [u8; NAME_SIZE],
    align: U32,
    zone: u8,
}

/// The body of ADD_POINTER.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct RawAddPointer {
    dest: [u8; NAME_SIZE],
    src: [u8; NAME_SIZE],
    offset: U32,
    size: u8,
}

/// The body of ADD_CHECKSUM.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct RawAddChecksum {
    file: [u8; NAME_SIZE],
    offset: U32,
    start: U32,
    length: U32,
}

const _: () = assert!(core::mem::size_of::<RawCommand>() == COMMAND_SIZE);
const _: () = assert!(core::mem::size_of::<RawAddPointer>() <= COMMAND_SIZE - 4);
const _: () = assert!(core::mem::size_of::<RawAllocate>() <= COMMAND_SIZE - 4);
const _: () = assert!(core::mem::size_of::<RawAddChecksum>() <= COMMAND_SIZE - 4);

/// A checked file name: non-empty UTF-8 of at most `NAME_SIZE - 1` bytes, kept in place (no heap).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Name {
    bytes: [u8; NAME_SIZE],
    len: usize,
}

impl Name {
    fn parse(field: &[u8; NAME_SIZE], index: usize) -> Result<Self, AcpiError> {
        let len = field
            .iter()
            .position(|&b| b == 0)
            .ok_or(AcpiError::BadName { index })?;
        if len == 0 || core::str::from_utf8(&field[..len]).is_err() {
            return Err(AcpiError::BadName { index });
        }
        Ok(Name { bytes: *field, len })
    }

    fn as_str(&self) -> &str {
        // Checked in `parse`; the fallback is never taken.
        self.bytes
            .get(..self.len)
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or("")
    }
}

/// One decoded command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    Allocate {
        file: Name,
        align: u32,
        zone: u8,
    },
    AddPointer {
        dest: Name,
        src: Name,
        offset: u32,
        size: u8,
    },
    AddChecksum {
        file: Name,
        offset: u32,
        start: u32,
        length: u32,
    },
    WritePointer,
}

/// Decodes the script: at most [`MAX_COMMANDS`] commands, so the result is bounded.
fn decode(script: &[u8]) -> Result<Vec<Command>, AcpiError> {
    let bad_length = AcpiError::BadScriptLength(script.len());
    let raw = <[RawCommand]>::ref_from_bytes(script).map_err(|_| bad_length.clone())?;
    if raw.len() > MAX_COMMANDS {
        return Err(bad_length);
    }
    let mut out = Vec::with_capacity(raw.len());
    for (index, c) in raw.iter().enumerate() {
        let body = &c.body;
        let cmd = match c.command.get() {
            0 => continue, // zero padding after the last command
            ALLOCATE => {
                let (a, _) = RawAllocate::ref_from_prefix(body).map_err(|_| bad_length.clone())?;
                Command::Allocate {
                    file: Name::parse(&a.file, index)?,
                    align: a.align.get(),
                    zone: a.zone,
                }
            }
            ADD_POINTER => {
                let (p, _) =
                    RawAddPointer::ref_from_prefix(body).map_err(|_| bad_length.clone())?;
                Command::AddPointer {
                    dest: Name::parse(&p.dest, index)?,
                    src: Name::parse(&p.src, index)?,
                    offset: p.offset.get(),
                    size: p.size,
                }
            }
            ADD_CHECKSUM => {
                let (k, _) =
                    RawAddChecksum::ref_from_prefix(body).map_err(|_| bad_length.clone())?;
                Command::AddChecksum {
                    file: Name::parse(&k.file, index)?,
                    offset: k.offset.get(),
                    start: k.start.get(),
                    length: k.length.get(),
                }
            }
            WRITE_POINTER => Command::WritePointer,
            command => return Err(AcpiError::UnknownCommand { index, command }),
        };
        out.push(cmd);
    }
    Ok(out)
}

/// One allocated file in the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PlannedFile {
    name: Name,
    /// Offset from the region base.
    offset: u64,
    size: u64,
}

/// Where each file of the script goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    commands: Vec<Command>,
    /// Per allocated file, in script order.
    files: Vec<PlannedFile>,
    /// Bytes of the region, page-rounded; at most [`MAX_FILES_SIZE`].
    pub size: u64,
    /// How many WRITE_POINTER commands will be skipped.
    pub skipped_write_pointers: usize,
}

/// Decodes and checks `script`, and lays the files it allocates out one after another (each at
/// its alignment) from offset 0, asking `file_size` for each file's size. The files may total at
/// most [`MAX_FILES_SIZE`] bytes, and exactly one of them must be in the F-segment zone (the
/// RSDP).
pub fn plan(
    script: &[u8],
    mut file_size: impl FnMut(&str) -> Option<u64>,
) -> Result<Plan, AcpiError> {
    let commands = decode(script)?;
    let mut files: Vec<PlannedFile> = Vec::new();
    let mut cursor = 0u64;
    let mut rsdp = false;
    let mut skipped = 0;
    for (index, c) in commands.iter().enumerate() {
        let known = |f: &Name| files.iter().any(|p| p.name == *f);
        match c {
            Command::Allocate { file, align, zone } => {
                if !align.is_power_of_two()
                    || *align > MAX_ALIGN
                    || ![ZONE_HIGH, ZONE_FSEG].contains(zone)
                    || (*zone == ZONE_FSEG && rsdp)
                {
                    return Err(AcpiError::BadAllocate { index });
                }
                if known(file) {
                    return Err(AcpiError::DuplicateAllocate { index });
                }
                let size = file_size(file.as_str()).unwrap_or(0);
                if size == 0 || size > MAX_FILE_SIZE {
                    return Err(AcpiError::BadFile { index, size });
                }
                let too_large = AcpiError::FilesTooLarge { index };
                let at = cursor
                    .checked_next_multiple_of(u64::from(*align))
                    .ok_or(too_large.clone())?;
                cursor = at
                    .checked_add(size)
                    .filter(|&end| end <= MAX_FILES_SIZE)
                    .ok_or(too_large)?;
                rsdp |= *zone == ZONE_FSEG;
                files.push(PlannedFile {
                    name: *file,
                    offset: at,
                    size,
                });
            }
            Command::AddPointer { dest, src, .. } => {
                if !known(dest) || !known(src) {
                    return Err(AcpiError::NotAllocated { index });
                }
            }
            Command::AddChecksum { file, .. } => {
                if !known(file) {
                    return Err(AcpiError::NotAllocated { index });
                }
            }
            Command::WritePointer => skipped += 1,
        }
    }
    if !rsdp {
        return Err(AcpiError::NoRsdp);
    }
    // At most MAX_FILES_SIZE (a multiple of 4096) rounded up: cannot overflow.
    let size = cursor.next_multiple_of(4096);
    Ok(Plan {
        commands,
        files,
        size,
        skipped_write_pointers: skipped,
    })
}

/// Where one file lies in guest memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// Guest address of its first byte.
    pub addr: u64,
    /// Its size in bytes (the file's size in fw_cfg).
    pub size: u64,
}

/// The linked tables: where each file landed, and which one is the RSDP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Linked {
    /// Per file, in script order.
    pub files: Vec<Extent>,
    /// The RSDP's file (the one allocated in the F-segment zone): its size is the most the RSDP
    /// may take.
    pub rsdp: Extent,
}

/// The bytes `[offset, offset + len)` of file `file` as a range of the region, if they lie inside
/// that file.
fn field(file: &PlannedFile, offset: u64, len: u64) -> Option<Range<usize>> {
    let end = offset.checked_add(len).filter(|&e| e <= file.size)?;
    let start = usize::try_from(file.offset.checked_add(offset)?).ok()?;
    let end = usize::try_from(file.offset.checked_add(end)?).ok()?;
    Some(start..end)
}

/// Runs the script with `region` at guest address `base`: zeroes the first [`Plan::size`] bytes
/// of `region`, reads each file straight into its place with `read_file` (given the file's name
/// and exactly the bytes [`plan`] was told it has; it returns false if the file cannot be read),
/// and patches pointers and checksums in place.
pub fn link(
    plan: &Plan,
    region: &mut [u8],
    base: u64,
    mut read_file: impl FnMut(&str, &mut [u8]) -> bool,
) -> Result<Linked, AcpiError> {
    if base.checked_add(plan.size).is_none_or(|end| end > 1 << 32) {
        return Err(AcpiError::TooLarge);
    }
    let too_small = AcpiError::RegionTooSmall {
        needed: plan.size,
        len: region.len(),
    };
    let planned = usize::try_from(plan.size).map_err(|_| too_small.clone())?;
    region.get_mut(..planned).ok_or(too_small)?.fill(0);
    // Below 4 GiB (checked above), so no guest address below overflows.
    let addr = |f: &PlannedFile| base + f.offset;
    let mut loaded = 0usize;
    let mut rsdp = None;
    let find = |f: &Name, loaded: usize| plan.files[..loaded].iter().find(|p| p.name == *f);
    for (index, c) in plan.commands.iter().enumerate() {
        match c {
            Command::Allocate { file, zone, .. } => {
                let p = plan
                    .files
                    .get(loaded)
                    .filter(|p| p.name == *file)
                    .ok_or(AcpiError::NotAllocated { index })?;
                let bad = AcpiError::BadFile {
                    index,
                    size: p.size,
                };
                let dst = field(p, 0, p.size)
                    .and_then(|r| region.get_mut(r))
                    .ok_or(bad.clone())?;
                if !read_file(file.as_str(), dst) {
                    return Err(bad);
                }
                if *zone == ZONE_FSEG {
                    rsdp = Some(Extent {
                        addr: addr(p),
                        size: p.size,
                    });
                }
                loaded += 1;
            }
            Command::AddPointer {
                dest,
                src,
                offset,
                size,
            } => {
                let (Some(d), Some(s)) = (find(dest, loaded), find(src, loaded)) else {
                    return Err(AcpiError::NotAllocated { index });
                };
                let width = usize::from(*size);
                if ![1, 2, 4, 8].contains(&width) {
                    return Err(AcpiError::OutOfBounds { index });
                }
                let bytes = field(d, u64::from(*offset), u64::from(*size))
                    .and_then(|r| region.get_mut(r))
                    .ok_or(AcpiError::OutOfBounds { index })?;
                let mut v = [0u8; 8];
                v[..width].copy_from_slice(bytes);
                let value = u64::from_le_bytes(v)
                    .checked_add(addr(s))
                    .ok_or(AcpiError::PointerOverflow { index })?;
                if width < 8 && value >> (8 * width) != 0 {
                    return Err(AcpiError::PointerOverflow { index });
                }
                bytes.copy_from_slice(&value.to_le_bytes()[..width]);
            }
            Command::AddChecksum {
                file,
                offset,
                start,
                length,
            } => {
                let f = find(file, loaded).ok_or(AcpiError::NotAllocated { index })?;
                let range = field(f, u64::from(*start), u64::from(*length))
                    .ok_or(AcpiError::OutOfBounds { index })?;
                let at = field(f, u64::from(*offset), 1)
                    .ok_or(AcpiError::OutOfBounds { index })?
                    .start;
                let sum = region
                    .get(range)
                    .ok_or(AcpiError::OutOfBounds { index })?
                    .iter()
                    .fold(0u8, |a, &b| a.wrapping_add(b));
                let byte = region.get_mut(at).ok_or(AcpiError::OutOfBounds { index })?;
                *byte = byte.wrapping_sub(sum);
            }
            Command::WritePointer => {}
        }
    }
    let rsdp = rsdp.ok_or(AcpiError::NoRsdp)?;
    Ok(Linked {
        files: plan
            .files
            .iter()
            .map(|f| Extent {
                addr: addr(f),
                size: f.size,
            })
            .collect(),
        rsdp,
    })
}
