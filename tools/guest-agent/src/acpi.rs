//! The ACPI tables the agent reads, as the kernel exports them under `/sys/firmware/acpi/tables`:
//! the two the firmware publishes about its measurements (the CCEL table, which says where the CC
//! event log is, and, on a plain VM, the RTMR table holding the emulated registers), and the MADT
//! (`APIC`), whose Multiprocessor Wakeup Structure says where the mailbox is that the firmware
//! parks the application processors on; the mailbox's layout is here too.

use td_shim::acpi::HEADER_SIZE;
use td_shim::eventlog::{Rtmrs, RTMR_COUNT, SHA384_DIGEST_SIZE};
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

/// The ACPI table header (ACPI 6.5 §5.2.6).
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Header {
    signature: [u8; 4],
    length: U32,
    revision: u8,
    checksum: u8,
    oem_id: [u8; 6],
    oem_table_id: [u8; 8],
    oem_revision: U32,
    creator_id: [u8; 4],
    creator_revision: U32,
}

/// The CCEL table (ACPI 6.5 §5.2.34).
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct CcelTable {
    _header: Header,
    cc_type: u8,
    cc_subtype: u8,
    _reserved: [u8; 2],
    laml: U64,
    lasa: U64,
}

/// The RTMR table: the header, then RTMR0 to RTMR3.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct RtmrTable {
    _header: Header,
    rtmrs: Rtmrs,
}

const _: () = assert!(size_of::<Header>() == HEADER_SIZE);

/// Bytes of the CCEL table (ACPI 6.5 §5.2.34).
pub const CCEL_SIZE: usize = size_of::<CcelTable>();
const _: () = assert!(CCEL_SIZE == 56);
/// Bytes of the RTMR table: the header, then RTMR0 to RTMR3.
pub const RTMR_TABLE_SIZE: usize = size_of::<RtmrTable>();
const _: () = assert!(RTMR_TABLE_SIZE == HEADER_SIZE + RTMR_COUNT * SHA384_DIGEST_SIZE);

/// The CCEL table's fields (ACPI 6.5 §5.2.34, "Confidential Computing Event Log Table").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ccel {
    /// `CC Type` @36: 1 AMD SEV, 2 Intel TDX; 0 (reserved in ACPI) is what this firmware writes
    /// on a plain VM, whose registers are emulated.
    pub cc_type: u8,
    /// `CC Subtype` @37.
    pub cc_subtype: u8,
    /// `LAML` @40: log area minimum length, in bytes.
    pub laml: u64,
    /// `LASA` @48: log area start, a physical address.
    pub lasa: u64,
}

/// The CC type byte of a plain VM's CCEL table (this firmware's choice; reserved in ACPI).
pub const CC_TYPE_PLAIN: u8 = 0;

/// The MADT's fixed part (ACPI 6.5 §5.2.12): the header, the local interrupt controller address
/// and the flags; the interrupt controller structures follow.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct MadtFixed {
    header: Header,
    _local_apic_address: U32,
    _flags: U32,
}

/// The two bytes every MADT interrupt controller structure starts with.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct StructureHeader {
    kind: u8,
    length: u8,
}

/// The Multiprocessor Wakeup Structure, version 0 (ACPI 6.4 §5.2.12.19).
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct MpWakeupV0 {
    _header: StructureHeader,
    mailbox_version: U16,
    _reserved: U32,
    mailbox_address: U64,
}

/// The Multiprocessor Wakeup Structure, version 1: version 0 and the reset vector.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct MpWakeupV1 {
    v0: MpWakeupV0,
    reset_vector: U64,
}

/// The start of the multiprocessor wakeup mailbox (ACPI 6.4 §5.2.12.19, "Multiprocessor Wakeup
/// Mailbox Structure"): the part the OS writes; the rest of the 4 KiB belongs to the firmware.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct MailboxHead {
    command: U16,
    _reserved: U16,
    apic_id: U32,
    wakeup_vector: U64,
}

/// Bytes of the MADT before its first interrupt controller structure.
pub const MADT_FIXED_SIZE: usize = size_of::<MadtFixed>();
const _: () = assert!(MADT_FIXED_SIZE == 44);
/// The MADT structure type of the Multiprocessor Wakeup Structure.
pub const MP_WAKEUP_TYPE: u8 = 0x10;
/// Bytes of a version 0 Multiprocessor Wakeup Structure.
pub const MP_WAKEUP_V0_SIZE: usize = size_of::<MpWakeupV0>();
const _: () = assert!(MP_WAKEUP_V0_SIZE == 16);
/// Bytes of a version 1 Multiprocessor Wakeup Structure (with the reset vector).
pub const MP_WAKEUP_V1_SIZE: usize = size_of::<MpWakeupV1>();
const _: () = assert!(MP_WAKEUP_V1_SIZE == 24);
/// Bytes of the mailbox the OS writes (`Command`, reserved, `ApicId`, `WakeupVector`): what the
/// agent reads.
pub const MAILBOX_HEAD_SIZE: usize = size_of::<MailboxHead>();
const _: () = assert!(MAILBOX_HEAD_SIZE == 16);
/// The mailbox `Command` of an idle mailbox: the firmware's initial value, and an AP's
/// acknowledgement of a wakeup.
pub const MAILBOX_COMMAND_NOOP: u16 = 0;
/// The mailbox `Command` the OS writes to wake the AP whose `ApicId` it wrote.
pub const MAILBOX_COMMAND_WAKEUP: u16 = 1;

/// The MADT's Multiprocessor Wakeup Structure (ACPI 6.4 §5.2.12.19).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MadtMpWakeup {
    /// `MailboxVersion` @2: 0, or 1 with a reset vector.
    pub mailbox_version: u16,
    /// `MailboxAddress` @8: the physical address of the 4 KiB mailbox; 0 when the OS cleared it
    /// (`cleared_by_os`).
    pub mailbox_address: u64,
    /// `ResetVector` @16 of a 24-byte (version 1) structure; `None` in a 16-byte one.
    pub reset_vector: Option<u64>,
    /// Whether the OS zeroed `MailboxAddress` in place after reading it, leaving the table's
    /// checksum wrong (see [`parse_madt_mp_wakeup`]): `mailbox_address` is then 0 and the
    /// mailbox's real address is unknown.
    pub cleared_by_os: bool,
}

/// The part of the mailbox the OS writes, as read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxState {
    /// `Command` @0: [`MAILBOX_COMMAND_WAKEUP`] while a wakeup waits for its AP,
    /// [`MAILBOX_COMMAND_NOOP`] before the first and once the AP has acknowledged it.
    pub command: u16,
    /// `ApicId` @4: the processor the last wakeup was for.
    pub apic_id: u32,
    /// `WakeupVector` @8: where that processor was sent.
    pub wakeup_vector: u64,
}

/// Checks a table that must be `signature` and exactly `size_of::<T>()` bytes: the signature,
/// the length field against both, and the checksum (all bytes sum to zero); returns it.
fn checked_table<'b, T>(bytes: &'b [u8], signature: &[u8; 4]) -> Result<&'b T, String>
where
    T: FromBytes + KnownLayout + Immutable + Unaligned,
{
    let name = String::from_utf8_lossy(signature);
    let size = size_of::<T>();
    let table = T::ref_from_bytes(bytes)
        .map_err(|_| format!("{} bytes, but the {name} table has {size}", bytes.len()))?;
    // The table is longer than the header: the prefix is there.
    let (header, _) = Header::ref_from_prefix(bytes)
        .map_err(|_| format!("{} bytes, shorter than an ACPI header", bytes.len()))?;
    if &header.signature != signature {
        return Err(format!(
            "signature {:?} is not {name}",
            String::from_utf8_lossy(&header.signature)
        ));
    }
    let length = header.length.get();
    if usize::try_from(length).ok() != Some(size) {
        return Err(format!("the header's length is {length}, not {size}"));
    }
    if !sums_to_zero(bytes) {
        return Err(checksum_error());
    }
    Ok(table)
}

/// Parses the CCEL table.
pub fn parse_ccel(bytes: &[u8]) -> Result<Ccel, String> {
    let table: &CcelTable = checked_table(bytes, b"CCEL")?;
    Ok(Ccel {
        cc_type: table.cc_type,
        cc_subtype: table.cc_subtype,
        laml: table.laml.get(),
        lasa: table.lasa.get(),
    })
}

/// Parses the RTMR table: RTMR0 to RTMR3 after the header.
pub fn parse_rtmr_table(bytes: &[u8]) -> Result<Rtmrs, String> {
    let table: &RtmrTable = checked_table(bytes, b"RTMR")?;
    Ok(table.rtmrs)
}

/// Finds the Multiprocessor Wakeup Structure in a MADT: checks the table (signature `APIC`, the
/// header's length against the bytes, the checksum), then walks its interrupt controller
/// structures, each of which must have a length of at least 2 and end within the table. `None`
/// when the table has no such structure; an error for a second one, which ACPI does not allow.
///
/// # A checksum the OS broke
///
/// A wrong checksum is an error, with one exception: the state Linux leaves the table in. Linux
/// 6.12 (not 6.1), after reading a version 0 wakeup structure, writes 0 to its `MailboxAddress`
/// in the in-memory MADT and does not fix the checksum (`acpi_parse_mp_wake()` calls
/// `acpi_mp_disable_offlining()`, in `arch/x86/kernel/acpi/madt_wakeup.c`): a Linux-specific
/// protocol, not ACPI's, so that a kexec'd kernel does not use the mailbox again.
/// `/sys/firmware/acpi/tables/APIC` exports that copy. So a table whose checksum fails is
/// accepted only when it is otherwise well-formed (everything above holds) and has exactly one
/// wakeup structure, of version 0 and 16 bytes, whose `MailboxAddress` is 0. It is returned with
/// [`MadtMpWakeup::cleared_by_os`] set; the address the firmware wrote cannot be recovered. Any
/// other checksum failure (no wakeup structure, version 1, a non-zero address, a malformed
/// structure, …) is the error "the checksum does not make the bytes sum to zero", as before any
/// other check of the structures. The checksum cannot say which bytes changed: a table whose
/// address was zeroed and some other byte changed as well passes as the state Linux leaves.
pub fn parse_madt_mp_wakeup(bytes: &[u8]) -> Result<Option<MadtMpWakeup>, String> {
    let (fixed, _) = MadtFixed::ref_from_prefix(bytes).map_err(|_| {
        format!(
            "{} bytes, shorter than the MADT's {MADT_FIXED_SIZE}",
            bytes.len()
        )
    })?;
    let header = &fixed.header;
    if &header.signature != b"APIC" {
        return Err(format!(
            "signature {:?} is not APIC",
            String::from_utf8_lossy(&header.signature)
        ));
    }
    let length = header.length.get();
    if usize::try_from(length).ok() != Some(bytes.len()) {
        return Err(format!(
            "the header's length is {length}, but the table has {} bytes",
            bytes.len()
        ));
    }
    let walked = find_mp_wakeup(bytes);
    if sums_to_zero(bytes) {
        return walked;
    }
    match walked {
        Ok(Some(wakeup))
            if wakeup.mailbox_version == 0
                && wakeup.reset_vector.is_none()
                && wakeup.mailbox_address == 0 =>
        {
            Ok(Some(MadtMpWakeup {
                cleared_by_os: true,
                ..wakeup
            }))
        }
        _ => Err(checksum_error()),
    }
}

/// Walks the interrupt controller structures of a MADT whose header has been checked (`bytes`
/// is at least [`MADT_FIXED_SIZE`] long and exactly the table) and parses the one
/// Multiprocessor Wakeup Structure, if any.
fn find_mp_wakeup(bytes: &[u8]) -> Result<Option<MadtMpWakeup>, String> {
    let mut found = None;
    let mut offset = MADT_FIXED_SIZE;
    // `offset` never passes the end: each step adds a length that ends within the table.
    while let Some(rest) = bytes.get(offset..).filter(|rest| !rest.is_empty()) {
        let (head, _) = StructureHeader::ref_from_prefix(rest).map_err(|_| {
            format!("the structure at offset {offset} is cut off after its type byte")
        })?;
        let kind = head.kind;
        let length = usize::from(head.length);
        if length < size_of::<StructureHeader>() {
            return Err(format!(
                "the structure at offset {offset} (type {kind:#x}) has length {length}"
            ));
        }
        let structure = rest.get(..length).ok_or_else(|| {
            format!(
                "the structure at offset {offset} (type {kind:#x}, length {length}) runs past \
                 the table's end at {}",
                bytes.len()
            )
        })?;
        if kind == MP_WAKEUP_TYPE {
            if found.is_some() {
                return Err(format!(
                    "a second multiprocessor wakeup structure at offset {offset}"
                ));
            }
            let wakeup = parse_mp_wakeup(structure).map_err(|e| {
                format!("the multiprocessor wakeup structure at offset {offset}: {e}")
            })?;
            found = Some(wakeup);
        }
        offset += length;
    }
    Ok(found)
}

/// The error of a table whose bytes do not sum to zero.
fn checksum_error() -> String {
    "the checksum does not make the bytes sum to zero".into()
}

/// A Multiprocessor Wakeup Structure of its own length: 16 bytes (version 0) or 24 (version 1,
/// with the reset vector).
fn parse_mp_wakeup(structure: &[u8]) -> Result<MadtMpWakeup, String> {
    let wrong_length = || {
        format!(
            "length {}, not {MP_WAKEUP_V0_SIZE} (version 0) or {MP_WAKEUP_V1_SIZE} (version 1)",
            structure.len()
        )
    };
    let (v0, reset_vector) = match structure.len() {
        MP_WAKEUP_V0_SIZE => (
            MpWakeupV0::ref_from_bytes(structure).map_err(|_| wrong_length())?,
            None,
        ),
        MP_WAKEUP_V1_SIZE => {
            let v1 = MpWakeupV1::ref_from_bytes(structure).map_err(|_| wrong_length())?;
            (&v1.v0, Some(v1.reset_vector.get()))
        }
        _ => return Err(wrong_length()),
    };
    Ok(MadtMpWakeup {
        mailbox_version: v0.mailbox_version.get(),
        mailbox_address: v0.mailbox_address.get(),
        reset_vector,
        cleared_by_os: false,
    })
}

/// Parses the first [`MAILBOX_HEAD_SIZE`] bytes of the mailbox, exactly those.
pub fn parse_mailbox(bytes: &[u8]) -> Result<MailboxState, String> {
    let head = MailboxHead::ref_from_bytes(bytes).map_err(|_| {
        format!(
            "{} bytes, but the mailbox's command, APIC ID and wakeup vector are \
             {MAILBOX_HEAD_SIZE}",
            bytes.len()
        )
    })?;
    Ok(MailboxState {
        command: head.command.get(),
        apic_id: head.apic_id.get(),
        wakeup_vector: head.wakeup_vector.get(),
    })
}

/// Whether all bytes of a table sum to zero, as its checksum makes them.
fn sums_to_zero(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |sum, &b| sum.wrapping_add(b)) == 0
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use td_shim::acpi::{ccel, rtmr_table};

    fn fix_checksum(table: &mut [u8]) {
        table[9] = 0;
        table[9] = 0u8.wrapping_sub(table.iter().fold(0u8, |sum, &b| sum.wrapping_add(b)));
    }

    /// A MADT whose interrupt controller structures are `structures`, with a right length and
    /// checksum.
    pub(crate) fn madt(structures: &[&[u8]]) -> Vec<u8> {
        let mut table = Vec::new();
        table.extend_from_slice(b"APIC");
        table.extend_from_slice(&[0; 4]); // The length, below.
        table.push(5); // Revision.
        table.push(0); // Checksum, below.
        table.extend_from_slice(b"TDSHIM");
        table.extend_from_slice(b"TESTMADT");
        table.extend_from_slice(&1u32.to_le_bytes());
        table.extend_from_slice(b"TEST");
        table.extend_from_slice(&1u32.to_le_bytes());
        table.extend_from_slice(&0xfee0_0000u32.to_le_bytes());
        table.extend_from_slice(&0u32.to_le_bytes());
        assert_eq!(table.len(), MADT_FIXED_SIZE);
        for structure in structures {
            table.extend_from_slice(structure);
        }
        let length = u32::try_from(table.len()).unwrap();
        table[4..8].copy_from_slice(&length.to_le_bytes());
        fix_checksum(&mut table);
        table
    }

    /// A Processor Local APIC structure (type 0, 8 bytes), enabled.
    pub(crate) fn local_apic(apic_id: u8) -> Vec<u8> {
        vec![0, 8, apic_id, apic_id, 1, 0, 0, 0]
    }

    /// A Multiprocessor Wakeup Structure: version 0 (16 bytes) without a reset vector, version 1
    /// (24 bytes) with one.
    pub(crate) fn mp_wakeup(mailbox_address: u64, reset_vector: Option<u64>) -> Vec<u8> {
        let (version, length) = match reset_vector {
            None => (0u16, MP_WAKEUP_V0_SIZE),
            Some(_) => (1, MP_WAKEUP_V1_SIZE),
        };
        let mut structure = vec![MP_WAKEUP_TYPE, u8::try_from(length).unwrap()];
        structure.extend_from_slice(&version.to_le_bytes());
        structure.extend_from_slice(&0u32.to_le_bytes());
        structure.extend_from_slice(&mailbox_address.to_le_bytes());
        if let Some(vector) = reset_vector {
            structure.extend_from_slice(&vector.to_le_bytes());
        }
        assert_eq!(structure.len(), length);
        structure
    }

    #[test]
    fn finds_the_mp_wakeup_structure_among_the_others() {
        let v0 = madt(&[&local_apic(0), &mp_wakeup(0x7e000, None), &local_apic(1)]);
        assert_eq!(
            parse_madt_mp_wakeup(&v0),
            Ok(Some(MadtMpWakeup {
                mailbox_version: 0,
                mailbox_address: 0x7e000,
                reset_vector: None,
                cleared_by_os: false,
            }))
        );
        let v1 = madt(&[&local_apic(0), &mp_wakeup(0x7f_f000, Some(0x7f_f800))]);
        assert_eq!(
            parse_madt_mp_wakeup(&v1),
            Ok(Some(MadtMpWakeup {
                mailbox_version: 1,
                mailbox_address: 0x7f_f000,
                reset_vector: Some(0x7f_f800),
                cleared_by_os: false,
            }))
        );
    }

    #[test]
    fn a_madt_without_the_structure_has_none() {
        assert_eq!(
            parse_madt_mp_wakeup(&madt(&[&local_apic(0), &local_apic(1)])),
            Ok(None)
        );
        assert_eq!(parse_madt_mp_wakeup(&madt(&[])), Ok(None));
    }

    #[test]
    fn refuses_malformed_madts() {
        let wakeup = mp_wakeup(0x7e000, None);
        let mut wrong_length = mp_wakeup(0x7e000, Some(0));
        wrong_length[1] = 20;
        let mut cases: Vec<(Vec<u8>, &str)> =
            vec![
            (
                madt(&[&local_apic(0), &[0x7f, 0], &wakeup]),
                "the structure at offset 52 (type 0x7f) has length 0",
            ),
            (
                madt(&[&[0x10, 1]]),
                "the structure at offset 44 (type 0x10) has length 1",
            ),
            (
                madt(&[&local_apic(0), &wakeup[..12]]),
                "the structure at offset 52 (type 0x10, length 16) runs past the table's end at 64",
            ),
            (
                madt(&[&local_apic(0), &[0]]),
                "the structure at offset 52 is cut off after its type byte",
            ),
            (
                madt(&[&wrong_length[..20]]),
                "the multiprocessor wakeup structure at offset 44: length 20, not 16 (version 0) \
                 or 24 (version 1)",
            ),
            (
                madt(&[&[0x10, 8, 0, 0, 0, 0, 0, 0]]),
                "the multiprocessor wakeup structure at offset 44: length 8, not 16",
            ),
            (
                madt(&[&wakeup, &wakeup]),
                "a second multiprocessor wakeup structure at offset 60",
            ),
            (madt(&[])[..43].to_vec(), "43 bytes, shorter than the MADT's 44"),
            (Vec::new(), "0 bytes, shorter than the MADT's 44"),
        ];
        let mut renamed = madt(&[&wakeup]);
        renamed[..4].copy_from_slice(b"APIX");
        fix_checksum(&mut renamed);
        cases.push((renamed, "signature \"APIX\" is not APIC"));
        // The header says 60, the file has 61 bytes: the kernel exports exactly the table.
        let mut longer = madt(&[&wakeup]);
        longer.push(0);
        cases.push((
            longer,
            "the header's length is 60, but the table has 61 bytes",
        ));
        // A header length past the bytes would otherwise let the walk run past them.
        let mut overrun = madt(&[&wakeup]);
        overrun[4] = 200;
        fix_checksum(&mut overrun);
        cases.push((
            overrun,
            "the header's length is 200, but the table has 60 bytes",
        ));
        let mut flipped = madt(&[&wakeup]);
        flipped[50] ^= 1;
        cases.push((flipped, "checksum"));
        for (table, why) in cases {
            let error = parse_madt_mp_wakeup(&table).unwrap_err();
            assert!(error.contains(why), "{error:?} does not say {why:?}");
        }
    }

    /// Zeroes the `MailboxAddress` of the wakeup structure at `offset` in place, without fixing
    /// the checksum, as Linux 6.12 does.
    pub(crate) fn clear_mailbox_address(table: &mut [u8], offset: usize) {
        table[offset + 8..offset + 16].fill(0);
    }

    /// What Linux 6.12 leaves of a MADT with two local APICs and td-shim's wakeup structure
    /// (at offset 60).
    pub(crate) fn madt_cleared_by_linux() -> Vec<u8> {
        let mut table = madt(&[&local_apic(0), &local_apic(1), &mp_wakeup(0x9_e000, None)]);
        clear_mailbox_address(&mut table, 60);
        table
    }

    #[test]
    fn accepts_the_madt_linux_cleared_the_mailbox_address_of() {
        let table = madt_cleared_by_linux();
        assert!(!sums_to_zero(&table));
        assert_eq!(
            parse_madt_mp_wakeup(&table),
            Ok(Some(MadtMpWakeup {
                mailbox_version: 0,
                mailbox_address: 0,
                reset_vector: None,
                cleared_by_os: true,
            }))
        );
        // The structure may be anywhere among the others.
        let mut first = madt(&[&mp_wakeup(0x7e000, None), &local_apic(0)]);
        clear_mailbox_address(&mut first, 44);
        assert_eq!(
            parse_madt_mp_wakeup(&first).map(|w| w.map(|w| w.cleared_by_os)),
            Ok(Some(true))
        );
        // An address of 0 under a right checksum is what the table says, not the OS's doing.
        assert_eq!(
            parse_madt_mp_wakeup(&madt(&[&mp_wakeup(0, None)])),
            Ok(Some(MadtMpWakeup {
                mailbox_version: 0,
                mailbox_address: 0,
                reset_vector: None,
                cleared_by_os: false,
            }))
        );
    }

    #[test]
    fn a_bad_checksum_that_is_not_linux_s_doing_stays_an_error() {
        let checksum = Err("the checksum does not make the bytes sum to zero".to_owned());
        let mut cases = Vec::new();
        // A version 1 structure (24 bytes) with the address cleared.
        let mut v1 = madt(&[&local_apic(0), &mp_wakeup(0x9_e000, Some(0x9_e800))]);
        clear_mailbox_address(&mut v1, 52);
        cases.push(("version 1, 24 bytes", v1));
        // 16 bytes that say version 1.
        let mut says_v1 = mp_wakeup(0x9_e000, None);
        says_v1[2] = 1;
        let mut says_v1 = madt(&[&says_v1]);
        clear_mailbox_address(&mut says_v1, 44);
        cases.push(("version 1, 16 bytes", says_v1));
        // The address is not 0: another byte changed.
        let mut nonzero = madt_cleared_by_linux();
        nonzero[68] = 1;
        cases.push(("a non-zero address", nonzero));
        let mut flipped = madt(&[&local_apic(0), &mp_wakeup(0x9_e000, None)]);
        flipped[63] ^= 0x80;
        cases.push(("the address changed", flipped));
        // No wakeup structure at all.
        let mut no_wakeup = madt(&[&local_apic(0), &local_apic(1)]);
        no_wakeup[46] ^= 1;
        cases.push(("no wakeup structure", no_wakeup));
        // A malformed structure after the cleared one.
        let mut malformed = madt(&[&mp_wakeup(0x9_e000, None), &[0x7f, 0]]);
        clear_mailbox_address(&mut malformed, 44);
        cases.push(("a malformed structure", malformed));
        // Two wakeup structures, both cleared.
        let wakeup = mp_wakeup(0x9_e000, None);
        let mut two = madt(&[&wakeup, &wakeup]);
        clear_mailbox_address(&mut two, 44);
        clear_mailbox_address(&mut two, 60);
        cases.push(("two wakeup structures", two));
        for (what, table) in cases {
            assert!(!sums_to_zero(&table), "{what}");
            assert_eq!(parse_madt_mp_wakeup(&table), checksum, "{what}");
        }
        // The header's checks still come first.
        let mut longer = madt_cleared_by_linux();
        longer.push(0);
        assert_eq!(
            parse_madt_mp_wakeup(&longer),
            Err("the header's length is 76, but the table has 77 bytes".into())
        );
    }

    #[test]
    fn reads_the_mailbox_head() {
        let mut head = Vec::new();
        head.extend_from_slice(&MAILBOX_COMMAND_NOOP.to_le_bytes());
        head.extend_from_slice(&0xffffu16.to_le_bytes());
        head.extend_from_slice(&3u32.to_le_bytes());
        head.extend_from_slice(&0x9_a000u64.to_le_bytes());
        assert_eq!(
            parse_mailbox(&head),
            Ok(MailboxState {
                command: 0,
                apic_id: 3,
                wakeup_vector: 0x9_a000
            })
        );
        assert_eq!(
            parse_mailbox(&head[..15]),
            Err("15 bytes, but the mailbox's command, APIC ID and wakeup vector are 16".into())
        );
    }

    #[test]
    fn reads_what_the_firmware_writes() {
        let table = ccel(2, 1, 0x1_0000, 0x1a_0000);
        assert_eq!(
            parse_ccel(&table),
            Ok(Ccel {
                cc_type: 2,
                cc_subtype: 1,
                laml: 0x1_0000,
                lasa: 0x1a_0000
            })
        );
        let mut registers = [[0u8; 48]; 4];
        for (i, r) in registers.iter_mut().enumerate() {
            r.fill(i as u8 + 1);
        }
        assert_eq!(parse_rtmr_table(&rtmr_table(&registers)), Ok(registers));
    }

    #[test]
    fn refuses_wrong_tables() {
        let table = ccel(0, 0, 0x1000, 0x2000);
        assert!(parse_ccel(&table[..55]).unwrap_err().contains("55 bytes"));
        let mut longer = table.clone();
        longer.push(0);
        assert!(parse_ccel(&longer).unwrap_err().contains("57 bytes"));
        let mut renamed = table.clone();
        renamed[..4].copy_from_slice(b"RTMR");
        fix_checksum(&mut renamed);
        assert!(parse_ccel(&renamed).unwrap_err().contains("is not CCEL"));
        let mut length = table.clone();
        length[4] = 57;
        fix_checksum(&mut length);
        assert_eq!(
            parse_ccel(&length),
            Err("the header's length is 57, not 56".into())
        );
        let mut flipped = table.clone();
        flipped[48] ^= 1;
        assert!(parse_ccel(&flipped).unwrap_err().contains("checksum"));
        assert!(parse_rtmr_table(&table)
            .unwrap_err()
            .contains("the RTMR table has 228"));
        assert!(parse_ccel(&[]).is_err());
    }
}
