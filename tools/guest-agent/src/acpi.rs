//! The two ACPI tables the firmware publishes about its measurements, as the kernel exports them
//! under `/sys/firmware/acpi/tables`: the CCEL table, which says where the CC event log is, and,
//! on a plain VM, the RTMR table holding the emulated registers.

use td_shim::acpi::HEADER_SIZE;
use td_shim::eventlog::{Rtmrs, RTMR_COUNT, SHA384_DIGEST_SIZE};

/// Bytes of the CCEL table (ACPI 6.5 §5.2.34).
pub const CCEL_SIZE: usize = 56;
/// Bytes of the RTMR table: the header, then RTMR0 to RTMR3.
pub const RTMR_TABLE_SIZE: usize = HEADER_SIZE + RTMR_COUNT * SHA384_DIGEST_SIZE;

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

/// Checks the header of a table that must be `signature` and exactly `size` bytes: the
/// signature, the length field against both, and the checksum (all bytes sum to zero).
fn check_header(bytes: &[u8], signature: &[u8; 4], size: usize) -> Result<(), String> {
    let name = String::from_utf8_lossy(signature);
    if bytes.len() != size {
        return Err(format!(
            "{} bytes, but the {name} table has {size}",
            bytes.len()
        ));
    }
    if bytes.get(..4) != Some(signature.as_slice()) {
        return Err(format!(
            "signature {:?} is not {name}",
            String::from_utf8_lossy(bytes.get(..4).unwrap_or_default())
        ));
    }
    let length = u32_at(bytes, 4)?;
    if usize::try_from(length).ok() != Some(size) {
        return Err(format!("the header's length is {length}, not {size}"));
    }
    if bytes.iter().fold(0u8, |sum, &b| sum.wrapping_add(b)) != 0 {
        return Err("the checksum does not make the bytes sum to zero".into());
    }
    Ok(())
}

fn u32_at(bytes: &[u8], at: usize) -> Result<u32, String> {
    bytes
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| format!("no u32 at offset {at}"))
}

fn u64_at(bytes: &[u8], at: usize) -> Result<u64, String> {
    bytes
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| format!("no u64 at offset {at}"))
}

/// Parses the CCEL table.
pub fn parse_ccel(bytes: &[u8]) -> Result<Ccel, String> {
    check_header(bytes, b"CCEL", CCEL_SIZE)?;
    // 56 bytes checked above: offsets 36 and 37 exist.
    Ok(Ccel {
        cc_type: bytes[36],
        cc_subtype: bytes[37],
        laml: u64_at(bytes, 40)?,
        lasa: u64_at(bytes, 48)?,
    })
}

/// Parses the RTMR table: RTMR0 to RTMR3 after the header.
pub fn parse_rtmr_table(bytes: &[u8]) -> Result<Rtmrs, String> {
    check_header(bytes, b"RTMR", RTMR_TABLE_SIZE)?;
    let mut rtmrs = [[0u8; SHA384_DIGEST_SIZE]; RTMR_COUNT];
    for (register, bytes) in rtmrs
        .iter_mut()
        .zip(bytes[HEADER_SIZE..].chunks_exact(SHA384_DIGEST_SIZE))
    {
        register.copy_from_slice(bytes);
    }
    Ok(rtmrs)
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
