//! The two ACPI tables the firmware publishes about its measurements, as the kernel exports them
//! under `/sys/firmware/acpi/tables`: the CCEL table, which says where the CC event log is, and,
//! on a plain VM, the RTMR table holding the emulated registers.

use td_shim::acpi::HEADER_SIZE;
use td_shim::eventlog::{Rtmrs, RTMR_COUNT, SHA384_DIGEST_SIZE};
use zerocopy::little_endian::{U32, U64};
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
    if bytes.iter().fold(0u8, |sum, &b| sum.wrapping_add(b)) != 0 {
        return Err("the checksum does not make the bytes sum to zero".into());
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

#[cfg(test)]
mod tests {
    use super::*;
    use td_shim::acpi::{ccel, rtmr_table};

    fn fix_checksum(table: &mut [u8]) {
        table[9] = 0;
        table[9] = 0u8.wrapping_sub(table.iter().fold(0u8, |sum, &b| sum.wrapping_add(b)));
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
