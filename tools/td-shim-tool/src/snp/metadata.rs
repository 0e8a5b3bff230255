//! What an OVMF-style image tells the VMM about SEV: the entries of its footer GUID table
//! (td_layout::footer) and the "ASEV" SEV metadata they point to (docs/sev-measurement.md §1).
//!
//! Every read is checked: untrusted bytes give an [`SnpError`], never a panic.

use td_layout::footer::parse_footer_table;
use td_layout::guid::Guid;

use super::SnpError;

/// The footer entries an SEV VMM reads (defined with the rest of the SEV self-description in
/// td-layout): the SEV metadata offset, the APs' SEV-ES reset address, the kernel-hashes table.
pub use td_layout::sev::{SEV_ES_RESET_BLOCK_GUID, SEV_HASH_TABLE_GUID, SEV_METADATA_GUID};

/// "ASEV" read as a little-endian u32.
const ASEV: u32 = u32::from_le_bytes(*b"ASEV");
/// Bytes of the metadata header.
const HEADER_SIZE: usize = 16;
/// Bytes of one section descriptor.
const SECTION_SIZE: usize = 12;
/// Most sections accepted (OVMF has 7): bounds the work on untrusted input.
pub const MAX_SECTIONS: u32 = 256;
/// Most bytes all sections together may cover: 256 MiB, far above OVMF's 128 KiB. Each 4 KiB
/// is one digest update, so this bounds the work on untrusted input.
pub const MAX_SECTION_BYTES: u64 = 256 << 20;

/// The type of an SEV metadata section, which decides how the VMM hands its pages over: the
/// layout crate's definition, shared with the image builder.
pub use td_layout::sev::SevSectionType as SectionType;

/// One SEV metadata section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Section {
    /// Guest-physical address of its first byte.
    pub gpa: u32,
    /// Bytes it covers.
    pub size: u32,
    /// What it is.
    pub kind: SectionType,
}

/// The SEV entries of an image's footer table. Each is `None` when the table lacks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SevFooter {
    /// Offset of the "ASEV" header counted back from the end of the image.
    pub metadata_offset: Option<u32>,
    /// The APs' reset EIP (SEV-ES reset block).
    pub ap_reset_eip: Option<u32>,
    /// GPA and size of the kernel-hashes table area.
    pub hash_table: Option<(u32, u32)>,
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    let bytes = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

/// Reads the SEV entries of `image`'s footer table.
pub fn read_footer(image: &[u8]) -> Result<SevFooter, SnpError> {
    let table = parse_footer_table(image).map_err(SnpError::NoFooterTable)?;
    let entry = |guid: Guid, name: &'static str, need: usize| -> Result<Option<&[u8]>, SnpError> {
        match table.find(guid) {
            None => Ok(None),
            Some(data) if data.len() < need => Err(SnpError::ShortFooterEntry {
                entry: name,
                len: data.len(),
                need,
            }),
            Some(data) => Ok(Some(data)),
        }
    };
    let metadata_offset = entry(SEV_METADATA_GUID, "SEV metadata", 4)?.and_then(|d| u32_at(d, 0));
    let ap_reset_eip =
        entry(SEV_ES_RESET_BLOCK_GUID, "SEV-ES reset block", 4)?.and_then(|d| u32_at(d, 0));
    let hash_table = entry(SEV_HASH_TABLE_GUID, "SEV hash table", 8)?
        .and_then(|d| Some((u32_at(d, 0)?, u32_at(d, 4)?)));
    Ok(SevFooter {
        metadata_offset,
        ap_reset_eip,
        hash_table,
    })
}

/// Reads the "ASEV" sections of `image`, whose header lies `offset` bytes before its end.
pub fn read_sections(image: &[u8], offset: u32) -> Result<Vec<Section>, SnpError> {
    let start = image
        .len()
        .checked_sub(offset as usize)
        .filter(|s| s.checked_add(HEADER_SIZE).is_some_and(|e| e <= image.len()))
        .ok_or(SnpError::MetadataOutOfBounds { offset })?;
    let header = &image[start..start + HEADER_SIZE];
    let field = |i: usize| u32_at(header, i * 4).unwrap_or(0);
    let (signature, length, version, count) = (field(0), field(1), field(2), field(3));
    if signature != ASEV {
        return Err(SnpError::BadMetadataSignature(signature));
    }
    if version != 1 {
        return Err(SnpError::UnsupportedMetadataVersion(version));
    }
    if count > MAX_SECTIONS {
        return Err(SnpError::TooManySections(count));
    }
    let need = HEADER_SIZE + SECTION_SIZE * count as usize;
    if (length as usize) < need {
        return Err(SnpError::MetadataLengthTooShort { length, count });
    }
    let body = image
        .get(start + HEADER_SIZE..start + need)
        .ok_or(SnpError::MetadataOutOfBounds { offset })?;
    let sections = body
        .chunks_exact(SECTION_SIZE)
        .enumerate()
        .map(|(index, s)| {
            let (gpa, size, kind) = (
                u32_at(s, 0).unwrap_or(0),
                u32_at(s, 4).unwrap_or(0),
                u32_at(s, 8).unwrap_or(0),
            );
            let kind =
                SectionType::from_code(kind).ok_or(SnpError::UnknownSectionType { index, kind })?;
            Ok(Section { gpa, size, kind })
        })
        .collect::<Result<Vec<_>, SnpError>>()?;
    let total: u64 = sections.iter().map(|s| u64::from(s.size)).sum();
    if total > MAX_SECTION_BYTES {
        return Err(SnpError::SectionsTooLarge { total });
    }
    Ok(sections)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AMD_SEV: &[u8] = include_bytes!("../../../../testdata/sev-snp/ovmf_AmdSev_suffix.bin");
    const OVMF_X64: &[u8] = include_bytes!("../../../../testdata/sev-snp/ovmf_OvmfX64_suffix.bin");

    /// The values research §1.4/§1.5 lists for the AmdSev fixture.
    #[test]
    fn amd_sev_fixture() {
        let footer = read_footer(AMD_SEV).unwrap();
        assert_eq!(footer.ap_reset_eip, Some(0x0080_B004));
        assert_eq!(footer.hash_table, Some((0x0081_0C00, 0x400)));
        assert_eq!(footer.metadata_offset, Some(0x554));
        let sections = read_sections(AMD_SEV, 0x554).unwrap();
        let got: Vec<_> = sections.iter().map(|s| (s.gpa, s.size, s.kind)).collect();
        use SectionType::*;
        assert_eq!(
            got,
            [
                (0x80_0000, 0x9000, SnpSecMem),
                (0x80_A000, 0x3000, SnpSecMem),
                (0x80_D000, 0x1000, SnpSecrets),
                (0x80_E000, 0x1000, Cpuid),
                (0x80_F000, 0x1000, SvsmCaa),
                (0x81_0000, 0x1000, SnpKernelHashes),
                (0x81_1000, 0xF000, SnpSecMem),
            ]
        );
    }

    #[test]
    fn ovmf_x64_fixture_has_no_hashes_section() {
        let footer = read_footer(OVMF_X64).unwrap();
        let sections = read_sections(OVMF_X64, footer.metadata_offset.unwrap()).unwrap();
        assert!(sections
            .iter()
            .all(|s| s.kind != SectionType::SnpKernelHashes));
    }

    #[test]
    fn refusals() {
        assert!(matches!(
            read_footer(&[0u8; 4096]),
            Err(SnpError::NoFooterTable(_))
        ));
        assert!(matches!(
            read_sections(AMD_SEV, 0x10_0000),
            Err(SnpError::MetadataOutOfBounds { .. })
        ));
        assert!(matches!(
            read_sections(AMD_SEV, 0x550),
            Err(SnpError::BadMetadataSignature(_))
        ));
        let mut bad = AMD_SEV.to_vec();
        let at = 4096 - 0x554 + 16 + 8;
        bad[at] = 7;
        assert!(matches!(
            read_sections(&bad, 0x554),
            Err(SnpError::UnknownSectionType { index: 0, kind: 7 })
        ));
        // Every truncation of the tail: an error or a value, never a panic.
        for cut in 0..AMD_SEV.len() {
            let _ = read_footer(&AMD_SEV[cut..]);
            let _ = read_sections(&AMD_SEV[cut..], 0x554);
        }
    }
}
