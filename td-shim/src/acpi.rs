//! ACPI tables from QEMU's fw_cfg `etc/table-loader`: the VMM's own tables (RSDP, XSDT/RSDT,
//! FADT, DSDT, MADT with every vCPU, ...) are installed by running its linker script.
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
//! region first; [`link`] then fills and patches the files in firmware memory, ready to be copied
//! to their addresses.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Bytes of one command.
pub const COMMAND_SIZE: usize = 128;
/// Bytes of a file name field.
pub const NAME_SIZE: usize = 56;
/// Most commands accepted.
pub const MAX_COMMANDS: usize = 1024;
/// Most bytes one file may have.
pub const MAX_FILE_SIZE: u64 = 4 << 20;
/// Largest alignment an ALLOCATE may ask for.
pub const MAX_ALIGN: u32 = 4096;

const ALLOCATE: u32 = 1;
const ADD_POINTER: u32 = 2;
const ADD_CHECKSUM: u32 = 3;
const WRITE_POINTER: u32 = 4;
/// ALLOCATE zone of the RSDP: the legacy F segment (any address below 1 MiB... or, for a loader
/// that passes the RSDP's address explicitly, anywhere below 4 GiB).
pub const ZONE_FSEG: u8 = 2;
const ZONE_HIGH: u8 = 1;

/// Why the table loader's script was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcpiError {
    /// The VMM offers no `etc/table-loader`: there would be no tables to publish the CC event
    /// log in (CCEL), so a Linux boot is refused.
    NoTables,
    /// The script is not a whole number of commands, or has too many.
    BadScriptLength(usize),
    /// Command `index` has an unknown type.
    UnknownCommand {
        /// Command index.
        index: usize,
        /// Its type.
        command: u32,
    },
    /// Command `index` names a file that is not NUL-terminated or not UTF-8.
    BadName {
        /// Command index.
        index: usize,
    },
    /// ALLOCATE `index` has an alignment that is not a power of two up to [`MAX_ALIGN`], or an
    /// unknown zone.
    BadAllocate {
        /// Command index.
        index: usize,
    },
    /// A file is allocated twice.
    DuplicateAllocate {
        /// Command index.
        index: usize,
    },
    /// A command refers to a file no ALLOCATE loaded before it.
    NotAllocated {
        /// Command index.
        index: usize,
    },
    /// A file is empty, missing from fw_cfg, or larger than [`MAX_FILE_SIZE`].
    BadFile {
        /// Command index.
        index: usize,
        /// Its size (0 if missing).
        size: u64,
    },
    /// A pointer or checksum field is outside its file, or a pointer has a bad width.
    OutOfBounds {
        /// Command index.
        index: usize,
    },
    /// A pointer does not fit its field once the address is added.
    PointerOverflow {
        /// Command index.
        index: usize,
    },
    /// The script loads no RSDP (no file in the F-segment zone).
    NoRsdp,
    /// The files do not fit below 4 GiB at the address given.
    TooLarge,
    /// The linked RSDP, RSDT or XSDT is missing, outside the region, or malformed.
    BadRootTables,
    /// The firmware's own tables do not fit the room left for them.
    NoRoomForTables,
}

impl fmt::Display for AcpiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoTables => write!(
                f,
                "acpi: the VMM offers no ACPI tables (no etc/table-loader), so the CC event log \
                 cannot be published to Linux (CCEL): refusing to boot a kernel unmeasured to \
                 its verifier"
            ),
            Self::BadScriptLength(n) => write!(
                f,
                "acpi: table-loader has {n} bytes, not a whole number of at most {MAX_COMMANDS} commands"
            ),
            Self::UnknownCommand { index, command } => {
                write!(f, "acpi: table-loader command {index} has unknown type {command}")
            }
            Self::BadName { index } => {
                write!(f, "acpi: table-loader command {index} has a malformed file name")
            }
            Self::BadAllocate { index } => write!(
                f,
                "acpi: table-loader command {index} asks for a bad alignment or zone"
            ),
            Self::DuplicateAllocate { index } => {
                write!(f, "acpi: table-loader command {index} allocates a file twice")
            }
            Self::NotAllocated { index } => write!(
                f,
                "acpi: table-loader command {index} uses a file that was not allocated before"
            ),
            Self::BadFile { index, size } => write!(
                f,
                "acpi: table-loader command {index} loads a file of {size} bytes (missing, empty or too large)"
            ),
            Self::OutOfBounds { index } => write!(
                f,
                "acpi: table-loader command {index} reaches outside its file"
            ),
            Self::PointerOverflow { index } => write!(
                f,
                "acpi: table-loader command {index} makes a pointer overflow its field"
            ),
            Self::NoRsdp => write!(f, "acpi: the table-loader script loads no RSDP"),
            Self::TooLarge => write!(f, "acpi: the tables do not fit below 4 GiB"),
            Self::BadRootTables => write!(
                f,
                "acpi: the VMM's RSDP, RSDT or XSDT is missing, misplaced or malformed"
            ),
            Self::NoRoomForTables => {
                write!(f, "acpi: no room for the firmware's own tables")
            }
        }
    }
}

/// One decoded command.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Command {
    Allocate {
        file: String,
        align: u32,
        zone: u8,
    },
    AddPointer {
        dest: String,
        src: String,
        offset: u32,
        size: u8,
    },
    AddChecksum {
        file: String,
        offset: u32,
        start: u32,
        length: u32,
    },
    WritePointer,
}

fn name(field: &[u8], index: usize) -> Result<String, AcpiError> {
    let end = field
        .iter()
        .position(|&b| b == 0)
        .ok_or(AcpiError::BadName { index })?;
    let s = core::str::from_utf8(&field[..end]).map_err(|_| AcpiError::BadName { index })?;
    if s.is_empty() {
        return Err(AcpiError::BadName { index });
    }
    Ok(String::from(s))
}

fn u32_at(c: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([c[at], c[at + 1], c[at + 2], c[at + 3]])
}

/// Decodes the script. Every command is `COMMAND_SIZE` bytes, so all fixed offsets below are
/// inside it.
fn decode(script: &[u8]) -> Result<Vec<Command>, AcpiError> {
    if !script.len().is_multiple_of(COMMAND_SIZE) || script.len() / COMMAND_SIZE > MAX_COMMANDS {
        return Err(AcpiError::BadScriptLength(script.len()));
    }
    let mut out = Vec::new();
    for (index, c) in script.chunks_exact(COMMAND_SIZE).enumerate() {
        let n = NAME_SIZE;
        let cmd = match u32_at(c, 0) {
            0 => continue, // zero padding after the last command
            ALLOCATE => Command::Allocate {
                file: name(&c[4..4 + n], index)?,
                align: u32_at(c, 4 + n),
                zone: c[8 + n],
            },
            ADD_POINTER => Command::AddPointer {
                dest: name(&c[4..4 + n], index)?,
                src: name(&c[4 + n..4 + 2 * n], index)?,
                offset: u32_at(c, 4 + 2 * n),
                size: c[8 + 2 * n],
            },
            ADD_CHECKSUM => Command::AddChecksum {
                file: name(&c[4..4 + n], index)?,
                offset: u32_at(c, 4 + n),
                start: u32_at(c, 8 + n),
                length: u32_at(c, 12 + n),
            },
            WRITE_POINTER => Command::WritePointer,
            command => return Err(AcpiError::UnknownCommand { index, command }),
        };
        out.push(cmd);
    }
    Ok(out)
}

/// Where each file of the script goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    commands: Vec<Command>,
    /// (name, offset from the region base, size) per allocated file, in script order.
    files: Vec<(String, u64, u64)>,
    /// Bytes of the region, page-rounded.
    pub size: u64,
    /// How many WRITE_POINTER commands will be skipped.
    pub skipped_write_pointers: usize,
}

/// Decodes and checks `script`, and lays the files it allocates out one after another (each at
/// its alignment) from offset 0, asking `file_size` for each file's size.
pub fn plan(
    script: &[u8],
    mut file_size: impl FnMut(&str) -> Option<u64>,
) -> Result<Plan, AcpiError> {
    let commands = decode(script)?;
    let mut files: Vec<(String, u64, u64)> = Vec::new();
    let mut cursor = 0u64;
    let mut rsdp = false;
    let mut skipped = 0;
    for (index, c) in commands.iter().enumerate() {
        let known = |f: &str| files.iter().any(|(n, _, _)| n == f);
        match c {
            Command::Allocate { file, align, zone } => {
                if !align.is_power_of_two()
                    || *align > MAX_ALIGN
                    || ![ZONE_HIGH, ZONE_FSEG].contains(zone)
                {
                    return Err(AcpiError::BadAllocate { index });
                }
                if known(file) {
                    return Err(AcpiError::DuplicateAllocate { index });
                }
                let size = file_size(file).unwrap_or(0);
                if size == 0 || size > MAX_FILE_SIZE {
                    return Err(AcpiError::BadFile { index, size });
                }
                let at = cursor.div_ceil(u64::from(*align)) * u64::from(*align);
                cursor = at + size;
                rsdp |= *zone == ZONE_FSEG;
                files.push((file.clone(), at, size));
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
    Ok(Plan {
        commands,
        files,
        size: cursor.div_ceil(4096) * 4096,
        skipped_write_pointers: skipped,
    })
}

/// The linked tables: each file's bytes at its guest address, and the RSDP's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Linked {
    /// (guest address, bytes) per file.
    pub files: Vec<(u64, Vec<u8>)>,
    /// Guest address of the RSDP (the file allocated in the F-segment zone).
    pub rsdp: u64,
}

/// Runs the script with the region at guest address `base`: loads each file with `read_file`
/// (which must return exactly the size [`plan`] was given), patches pointers and checksums.
pub fn link(
    plan: &Plan,
    base: u64,
    mut read_file: impl FnMut(&str, &mut [u8]) -> bool,
) -> Result<Linked, AcpiError> {
    if base.checked_add(plan.size).is_none_or(|end| end > 1 << 32) {
        return Err(AcpiError::TooLarge);
    }
    let mut bytes: Vec<Vec<u8>> = Vec::with_capacity(plan.files.len());
    let mut rsdp = None;
    let find = |f: &str| plan.files.iter().position(|(n, _, _)| n == f);
    for (index, c) in plan.commands.iter().enumerate() {
        match c {
            Command::Allocate { file, zone, .. } => {
                let i = bytes.len();
                let (_, offset, size) = &plan.files[i];
                let mut data = alloc::vec![0u8; *size as usize];
                if !read_file(file, &mut data) {
                    return Err(AcpiError::BadFile { index, size: *size });
                }
                if *zone == ZONE_FSEG {
                    rsdp = Some(base + offset);
                }
                bytes.push(data);
            }
            Command::AddPointer {
                dest,
                src,
                offset,
                size,
            } => {
                let (d, s) = (find(dest), find(src));
                let (Some(d), Some(s)) = (d, s) else {
                    return Err(AcpiError::NotAllocated { index });
                };
                if d >= bytes.len() || s >= bytes.len() {
                    return Err(AcpiError::NotAllocated { index });
                }
                let width = usize::from(*size);
                if ![1, 2, 4, 8].contains(&width) {
                    return Err(AcpiError::OutOfBounds { index });
                }
                let at = *offset as usize;
                let field = bytes[d]
                    .get_mut(at..at.saturating_add(width))
                    .filter(|f| f.len() == width)
                    .ok_or(AcpiError::OutOfBounds { index })?;
                let mut v = [0u8; 8];
                v[..width].copy_from_slice(field);
                let value = u64::from_le_bytes(v)
                    .checked_add(base + plan.files[s].1)
                    .ok_or(AcpiError::PointerOverflow { index })?;
                if width < 8 && value >> (8 * width) != 0 {
                    return Err(AcpiError::PointerOverflow { index });
                }
                field.copy_from_slice(&value.to_le_bytes()[..width]);
            }
            Command::AddChecksum {
                file,
                offset,
                start,
                length,
            } => {
                let Some(i) = find(file).filter(|&i| i < bytes.len()) else {
                    return Err(AcpiError::NotAllocated { index });
                };
                let data = &mut bytes[i];
                let (start, end) = (
                    *start as usize,
                    (*start as usize).saturating_add(*length as usize),
                );
                if end > data.len() || *offset as usize >= data.len() {
                    return Err(AcpiError::OutOfBounds { index });
                }
                let sum = data[start..end].iter().fold(0u8, |a, &b| a.wrapping_add(b));
                let at = *offset as usize;
                data[at] = data[at].wrapping_sub(sum);
            }
            Command::WritePointer => {}
        }
    }
    let rsdp = rsdp.ok_or(AcpiError::NoRsdp)?;
    Ok(Linked {
        files: plan
            .files
            .iter()
            .zip(bytes)
            .map(|((_, offset, _), b)| (base + offset, b))
            .collect(),
        rsdp,
    })
}

/// Bytes of an ACPI table header.
pub const HEADER_SIZE: usize = 36;
/// Room reserved after the VMM's tables for the firmware's own tables and the rebuilt RSDT/XSDT.
pub const FIRMWARE_TABLES_ROOM: u64 = 4096;

fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |a, &b| a.wrapping_add(b)))
}

/// An ACPI table (ACPI 6.5 §5.2.6 header): `signature`, length, `revision`, checksum, OEM ID
/// "TDSHIM", OEM table ID "TD-SHIM ", OEM revision 1, creator "TDSH", creator revision 1, then
/// `body`.
pub fn table(signature: [u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
    let len = HEADER_SIZE + body.len();
    let mut t = Vec::with_capacity(len);
    t.extend_from_slice(&signature);
    t.extend_from_slice(&(len as u32).to_le_bytes());
    t.push(revision);
    t.push(0);
    t.extend_from_slice(b"TDSHIM");
    t.extend_from_slice(b"TD-SHIM ");
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(b"TDSH");
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(body);
    t[9] = checksum(&t);
    t
}

/// The CCEL table (ACPI 6.5 §5.2.34): CC type (1 SEV, 2 TDX; this firmware uses 0 on a plain VM),
/// subtype, reserved u16, LAML (log area minimum length) u64, LASA (log area start) u64.
pub fn ccel(cc_type: u8, subtype: u8, laml: u64, lasa: u64) -> Vec<u8> {
    let mut body = Vec::with_capacity(20);
    body.push(cc_type);
    body.push(subtype);
    body.extend_from_slice(&[0, 0]);
    body.extend_from_slice(&laml.to_le_bytes());
    body.extend_from_slice(&lasa.to_le_bytes());
    table(*b"CCEL", 1, &body)
}

/// The table publishing a plain VM's emulated registers: signature "RTMR", body RTMR0..RTMR3,
/// 48 bytes each (docs/measurement.md).
pub fn rtmr_table(registers: &crate::eventlog::Rtmrs) -> Vec<u8> {
    table(*b"RTMR", 1, registers.as_flattened())
}

fn get(region: &[u8], at: u64, len: usize) -> Result<&[u8], AcpiError> {
    let at = usize::try_from(at).map_err(|_| AcpiError::BadRootTables)?;
    region
        .get(at..at.checked_add(len).ok_or(AcpiError::BadRootTables)?)
        .ok_or(AcpiError::BadRootTables)
}

/// Adds `tables` to the linked tables in `region` (at guest address `base`): writes them from
/// offset `at`, then a new RSDT (and XSDT, if the RSDP has one) listing the VMM's entries and
/// the new tables, and points the RSDP (at guest address `rsdp`) at them with fixed checksums.
/// Returns the guest address of each added table.
pub fn add_tables(
    region: &mut [u8],
    base: u64,
    rsdp: u64,
    at: usize,
    tables: &[Vec<u8>],
) -> Result<Vec<u64>, AcpiError> {
    let rsdp_off = rsdp.checked_sub(base).ok_or(AcpiError::BadRootTables)?;
    let r = get(region, rsdp_off, 20)?;
    if &r[..8] != b"RSD PTR " {
        return Err(AcpiError::BadRootTables);
    }
    let revision = r[15];
    let rsdt = u64::from(u32_at(r, 16));
    let xsdt = if revision >= 2 {
        let x = get(region, rsdp_off, 36)?;
        u64::from_le_bytes(x[24..32].try_into().map_err(|_| AcpiError::BadRootTables)?)
    } else {
        0
    };
    // The old root tables' entries.
    let entries = |addr: u64, width: usize| -> Result<(Vec<u8>, Vec<u64>), AcpiError> {
        let off = addr.checked_sub(base).ok_or(AcpiError::BadRootTables)?;
        let header = get(region, off, HEADER_SIZE)?;
        let len = u32_at(header, 4) as usize;
        if len < HEADER_SIZE || !(len - HEADER_SIZE).is_multiple_of(width) {
            return Err(AcpiError::BadRootTables);
        }
        let whole = get(region, off, len)?;
        let list = whole[HEADER_SIZE..]
            .chunks_exact(width)
            .map(|c| {
                let mut v = [0u8; 8];
                v[..width].copy_from_slice(c);
                u64::from_le_bytes(v)
            })
            .collect();
        Ok((whole[..HEADER_SIZE].to_vec(), list))
    };
    let old_rsdt = entries(rsdt, 4)?;
    let old_xsdt = if xsdt != 0 {
        Some(entries(xsdt, 8)?)
    } else {
        None
    };
    let mut cursor = at;
    let mut put = |bytes: &[u8]| -> Result<u64, AcpiError> {
        let start = cursor.div_ceil(8) * 8;
        let end = start
            .checked_add(bytes.len())
            .ok_or(AcpiError::NoRoomForTables)?;
        region
            .get_mut(start..end)
            .ok_or(AcpiError::NoRoomForTables)?
            .copy_from_slice(bytes);
        cursor = end;
        Ok(base + start as u64)
    };
    let mut added = Vec::with_capacity(tables.len());
    for t in tables {
        added.push(put(t)?);
    }
    let rebuild = |header: Vec<u8>, mut list: Vec<u64>, width: usize| -> Vec<u8> {
        list.extend_from_slice(&added);
        let mut t = header;
        for e in list {
            t.extend_from_slice(&e.to_le_bytes()[..width]);
        }
        let len = t.len() as u32;
        t[4..8].copy_from_slice(&len.to_le_bytes());
        t[9] = 0;
        t[9] = checksum(&t);
        t
    };
    let (h, list) = old_rsdt;
    let new_rsdt = put(&rebuild(h, list, 4))?;
    let new_xsdt = match old_xsdt {
        Some((h, list)) => Some(put(&rebuild(h, list, 8))?),
        None => None,
    };
    // Point the RSDP at the new tables and fix its checksums.
    let off = rsdp_off as usize;
    let rsdp_len = if revision >= 2 { 36 } else { 20 };
    let r = region
        .get_mut(off..off + rsdp_len)
        .ok_or(AcpiError::BadRootTables)?;
    r[16..20].copy_from_slice(
        &u32::try_from(new_rsdt)
            .map_err(|_| AcpiError::TooLarge)?
            .to_le_bytes(),
    );
    if let Some(x) = new_xsdt {
        r[24..32].copy_from_slice(&x.to_le_bytes());
    }
    r[8] = 0;
    r[8] = checksum(&r[..20]);
    if revision >= 2 {
        r[32] = 0;
        r[32] = checksum(&r[..36]);
    }
    Ok(added)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::vec;

    fn cmd(kind: u32, fields: &[(&str, usize)], tail: &[(usize, u64, usize)]) -> std::vec::Vec<u8> {
        let mut c = vec![0u8; COMMAND_SIZE];
        c[0..4].copy_from_slice(&kind.to_le_bytes());
        for (name, at) in fields {
            c[*at..*at + name.len()].copy_from_slice(name.as_bytes());
        }
        for &(at, v, w) in tail {
            c[at..at + w].copy_from_slice(&v.to_le_bytes()[..w]);
        }
        c
    }

    const N: usize = NAME_SIZE;

    fn allocate(file: &str, align: u64, zone: u64) -> std::vec::Vec<u8> {
        cmd(
            ALLOCATE,
            &[(file, 4)],
            &[(4 + N, align, 4), (8 + N, zone, 1)],
        )
    }
    fn pointer(dest: &str, src: &str, offset: u64, size: u64) -> std::vec::Vec<u8> {
        cmd(
            ADD_POINTER,
            &[(dest, 4), (src, 4 + N)],
            &[(4 + 2 * N, offset, 4), (8 + 2 * N, size, 1)],
        )
    }
    fn checksum(file: &str, offset: u64, start: u64, length: u64) -> std::vec::Vec<u8> {
        cmd(
            ADD_CHECKSUM,
            &[(file, 4)],
            &[(4 + N, offset, 4), (8 + N, start, 4), (12 + N, length, 4)],
        )
    }

    /// A script shaped like QEMU's: tables in high memory, an RSDP whose RSDT/XSDT pointers are
    /// patched, then checksummed.
    fn qemu_like() -> (std::vec::Vec<u8>, std::vec::Vec<u8>, std::vec::Vec<u8>) {
        let mut script = vec![];
        script.extend(allocate("etc/acpi/tables", 64, 1));
        script.extend(allocate("etc/acpi/rsdp", 16, 2));
        // RSDP: RsdtAddress at 16 (u32), XsdtAddress at 24 (u64), both relative to the tables.
        script.extend(pointer("etc/acpi/rsdp", "etc/acpi/tables", 16, 4));
        script.extend(pointer("etc/acpi/rsdp", "etc/acpi/tables", 24, 8));
        script.extend(checksum("etc/acpi/rsdp", 8, 0, 20));
        script.extend(vec![0u8; COMMAND_SIZE]); // padding
        let mut rsdp = vec![0u8; 36];
        rsdp[0..8].copy_from_slice(b"RSD PTR ");
        rsdp[16..20].copy_from_slice(&0x40u32.to_le_bytes());
        rsdp[24..32].copy_from_slice(&0x80u64.to_le_bytes());
        (script, vec![0xAB; 0x1000], rsdp)
    }

    fn run(script: &[u8], tables: &[u8], rsdp: &[u8], base: u64) -> Result<Linked, AcpiError> {
        let size = |f: &str| match f {
            "etc/acpi/tables" => Some(tables.len() as u64),
            "etc/acpi/rsdp" => Some(rsdp.len() as u64),
            _ => None,
        };
        let p = plan(script, size)?;
        link(&p, base, |f, dst| {
            let src = if f == "etc/acpi/tables" { tables } else { rsdp };
            dst.copy_from_slice(src);
            true
        })
    }

    #[test]
    fn links_a_qemu_like_script() {
        let (script, tables, rsdp) = qemu_like();
        let linked = run(&script, &tables, &rsdp, 0x7F0_0000).unwrap();
        assert_eq!(linked.files[0].0, 0x7F0_0000);
        // The RSDP follows the 4 KiB of tables at its 16-byte alignment.
        assert_eq!(linked.rsdp, 0x7F0_1000);
        let r = &linked.files[1].1;
        assert_eq!(
            u32::from_le_bytes(r[16..20].try_into().unwrap()),
            0x7F0_0040
        );
        assert_eq!(
            u64::from_le_bytes(r[24..32].try_into().unwrap()),
            0x7F0_0080
        );
        assert_eq!(r[..20].iter().fold(0u8, |a, &b| a.wrapping_add(b)), 0);
    }

    #[test]
    fn every_rule_has_its_error() {
        let (script, tables, rsdp) = qemu_like();
        let at = |i: usize| i * COMMAND_SIZE;
        let with = |i: usize, c: std::vec::Vec<u8>| {
            let mut s = script.clone();
            s[at(i)..at(i) + COMMAND_SIZE].copy_from_slice(&c);
            s
        };
        assert_eq!(
            run(&script[..100], &tables, &rsdp, 0),
            Err(AcpiError::BadScriptLength(100))
        );
        assert_eq!(
            run(&with(2, cmd(9, &[], &[])), &tables, &rsdp, 0),
            Err(AcpiError::UnknownCommand {
                index: 2,
                command: 9
            })
        );
        let mut unterminated = script.clone();
        unterminated[4..4 + N].fill(b'a');
        assert_eq!(
            run(&unterminated, &tables, &rsdp, 0),
            Err(AcpiError::BadName { index: 0 })
        );
        assert_eq!(
            run(
                &with(0, allocate("etc/acpi/tables", 3, 1)),
                &tables,
                &rsdp,
                0
            ),
            Err(AcpiError::BadAllocate { index: 0 })
        );
        assert_eq!(
            run(
                &with(0, allocate("etc/acpi/tables", 64, 7)),
                &tables,
                &rsdp,
                0
            ),
            Err(AcpiError::BadAllocate { index: 0 })
        );
        assert_eq!(
            run(
                &with(1, allocate("etc/acpi/tables", 16, 2)),
                &tables,
                &rsdp,
                0
            ),
            Err(AcpiError::DuplicateAllocate { index: 1 })
        );
        assert_eq!(
            run(&with(0, allocate("etc/missing", 64, 1)), &tables, &rsdp, 0),
            Err(AcpiError::BadFile { index: 0, size: 0 })
        );
        assert_eq!(
            run(
                &with(2, pointer("etc/acpi/rsdp", "etc/nope", 16, 4)),
                &tables,
                &rsdp,
                0
            ),
            Err(AcpiError::NotAllocated { index: 2 })
        );
        assert_eq!(
            run(
                &with(2, pointer("etc/acpi/rsdp", "etc/acpi/tables", 34, 4)),
                &tables,
                &rsdp,
                0
            ),
            Err(AcpiError::OutOfBounds { index: 2 })
        );
        assert_eq!(
            run(
                &with(2, pointer("etc/acpi/rsdp", "etc/acpi/tables", 16, 3)),
                &tables,
                &rsdp,
                0
            ),
            Err(AcpiError::OutOfBounds { index: 2 })
        );
        // The tables' address no longer fits a 16-bit pointer field.
        assert_eq!(
            run(
                &with(2, pointer("etc/acpi/rsdp", "etc/acpi/tables", 16, 2)),
                &tables,
                &rsdp,
                0x7F0_0000
            ),
            Err(AcpiError::PointerOverflow { index: 2 })
        );
        assert_eq!(
            run(
                &with(4, checksum("etc/acpi/rsdp", 8, 30, 10)),
                &tables,
                &rsdp,
                0
            ),
            Err(AcpiError::OutOfBounds { index: 4 })
        );
        assert_eq!(
            run(
                &with(1, allocate("etc/acpi/rsdp", 16, 1)),
                &tables,
                &rsdp,
                0
            ),
            Err(AcpiError::NoRsdp)
        );
        assert_eq!(
            run(&script, &tables, &rsdp, 0xFFFF_F000),
            Err(AcpiError::TooLarge)
        );
    }

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |a, &x| a.wrapping_add(x))
    }

    #[test]
    fn adds_tables_to_the_rsdt_and_xsdt() {
        // A region with an RSDT of one entry at 0x40, an XSDT at 0x80, an RSDP v2 at 0x100.
        let base = 0x7F0_0000u64;
        let mut region = vec![0u8; 0x1000];
        let rsdt = table(*b"RSDT", 1, &0x1234u32.to_le_bytes());
        let xsdt = table(*b"XSDT", 1, &0x1234u64.to_le_bytes());
        region[0x40..0x40 + rsdt.len()].copy_from_slice(&rsdt);
        region[0x80..0x80 + xsdt.len()].copy_from_slice(&xsdt);
        let mut rsdp = vec![0u8; 36];
        rsdp[..8].copy_from_slice(b"RSD PTR ");
        rsdp[15] = 2;
        rsdp[16..20].copy_from_slice(&((base + 0x40) as u32).to_le_bytes());
        rsdp[20..24].copy_from_slice(&36u32.to_le_bytes());
        rsdp[24..32].copy_from_slice(&(base + 0x80).to_le_bytes());
        region[0x100..0x124].copy_from_slice(&rsdp);

        let ccel = ccel(0, 0, 0x1_0000, 0x1A_0000);
        assert_eq!(ccel.len(), 56);
        assert_eq!(sum(&ccel), 0);
        let added = add_tables(
            &mut region,
            base,
            base + 0x100,
            0x200,
            core::slice::from_ref(&ccel),
        )
        .unwrap();
        assert_eq!(added, [base + 0x200]);
        assert_eq!(&region[0x200..0x200 + 56], &ccel[..]);
        // The RSDP points at new root tables that list the old entry and the CCEL.
        let r = &region[0x100..0x124];
        assert_eq!(sum(&r[..20]), 0);
        assert_eq!(sum(r), 0);
        let new_rsdt = (u32::from_le_bytes(r[16..20].try_into().unwrap()) as u64 - base) as usize;
        let t = &region[new_rsdt..new_rsdt + 44];
        assert_eq!(&t[..4], b"RSDT");
        assert_eq!(u32::from_le_bytes(t[4..8].try_into().unwrap()), 44);
        assert_eq!(sum(t), 0);
        assert_eq!(u32::from_le_bytes(t[36..40].try_into().unwrap()), 0x1234);
        assert_eq!(
            u64::from(u32::from_le_bytes(t[40..44].try_into().unwrap())),
            base + 0x200
        );
        let new_xsdt = (u64::from_le_bytes(r[24..32].try_into().unwrap()) - base) as usize;
        let x = &region[new_xsdt..new_xsdt + 52];
        assert_eq!(&x[..4], b"XSDT");
        assert_eq!(sum(x), 0);
        assert_eq!(
            u64::from_le_bytes(x[44..52].try_into().unwrap()),
            base + 0x200
        );
    }

    #[test]
    fn add_tables_refuses_what_does_not_fit_or_is_not_there() {
        let mut region = vec![0u8; 0x200];
        assert_eq!(
            add_tables(&mut region, 0, 0x100, 0x180, &[]),
            Err(AcpiError::BadRootTables)
        );
        region[0x100..0x108].copy_from_slice(b"RSD PTR ");
        region[0x110..0x114].copy_from_slice(&0x40u32.to_le_bytes());
        let rsdt = table(*b"RSDT", 1, &[]);
        region[0x40..0x40 + rsdt.len()].copy_from_slice(&rsdt);
        assert_eq!(
            add_tables(&mut region, 0, 0x100, 0x1F0, &[ccel(0, 0, 1, 2)]),
            Err(AcpiError::NoRoomForTables)
        );
        assert!(add_tables(&mut region, 0, 0x100, 0x140, &[]).is_ok());
    }

    #[test]
    fn write_pointers_are_counted_and_skipped() {
        let (mut script, tables, rsdp) = qemu_like();
        script.extend(cmd(
            WRITE_POINTER,
            &[("etc/vmgenid_addr", 4), ("etc/vmgenid_guid", 4 + N)],
            &[],
        ));
        let size = |f: &str| {
            Some(if f == "etc/acpi/tables" {
                tables.len()
            } else {
                rsdp.len()
            } as u64)
        };
        assert_eq!(plan(&script, size).unwrap().skipped_write_pointers, 1);
    }

    proptest! {
        #[test]
        fn any_script_never_panics(script in proptest::collection::vec(any::<u8>(), 0..1024),
                                   base in any::<u64>()) {
            if let Ok(p) = plan(&script, |_| Some(64)) {
                let _ = link(&p, base, |_, d| { d.fill(1); true });
            }
        }

        #[test]
        fn mutated_scripts_never_panic(at in 0usize..640, byte in any::<u8>(), base in 0u64..0x1_0000_0000) {
            let (mut script, tables, rsdp) = qemu_like();
            script[at] = byte;
            let _ = run(&script, &tables, &rsdp, base);
        }
    }
}
