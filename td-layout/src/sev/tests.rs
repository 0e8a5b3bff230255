extern crate std;

use super::*;
use crate::footer::{write_footer_table, FooterEntry};
use proptest::prelude::*;
use std::string::ToString;
use std::{vec, vec::Vec};

const AMD_SEV: &[u8] = include_bytes!("../../../testdata/sev-snp/ovmf_AmdSev_suffix.bin");
const OVMF_X64: &[u8] = include_bytes!("../../../testdata/sev-snp/ovmf_OvmfX64_suffix.bin");

/// A 4 KiB fixture (the last page of an OVMF build) as the end of a 64 KiB image, QEMU's
/// smallest -bios: the footer table and the SEV metadata keep their distance from the end.
fn padded(suffix: &[u8]) -> Vec<u8> {
    let mut image = vec![0u8; 0x1_0000 - suffix.len()];
    image.extend_from_slice(suffix);
    image
}

/// A synthetic 64 KiB image: the SEV metadata 0x1000 bytes before the end, then the footer
/// table with the entries chosen.
#[derive(Clone)]
struct Img {
    len: usize,
    /// The SEV metadata bytes, written `from_end` bytes before the end of the image.
    asev: Vec<u8>,
    from_end: u32,
    /// The metadata entry's data (None: no entry).
    metadata_entry: Option<Vec<u8>>,
    reset: Option<Vec<u8>>,
    hash: Option<Vec<u8>>,
    extra: Vec<(Guid, Vec<u8>)>,
}

fn asev(sections: &[SevSection]) -> Vec<u8> {
    let mut v = vec![0u8; sev_metadata_len(sections.len())];
    write_sev_metadata(sections, &mut v).unwrap();
    v
}

fn hash_entry(base: u64, size: u64) -> Vec<u8> {
    let mut d = (base as u32).to_le_bytes().to_vec();
    d.extend_from_slice(&(size as u32).to_le_bytes());
    d
}

impl Img {
    fn ours() -> Self {
        Img {
            len: 0x1_0000,
            asev: asev(&td_shim_sev_sections()),
            from_end: 0x1000,
            metadata_entry: Some(0x1000u32.to_le_bytes().to_vec()),
            reset: Some(0xFFFF_F1B1u32.to_le_bytes().to_vec()),
            hash: Some(hash_entry(SEV_HASH_TABLE_BASE, SEV_HASH_TABLE_SIZE)),
            extra: vec![],
        }
    }

    fn with_sections(sections: &[SevSection]) -> Self {
        Img {
            asev: asev(sections),
            ..Self::ours()
        }
    }

    fn build(&self) -> Vec<u8> {
        let mut image = vec![0u8; self.len];
        let at = self.len - self.from_end as usize;
        image[at..at + self.asev.len()].copy_from_slice(&self.asev);
        let mut entries = Vec::new();
        if let Some(d) = &self.metadata_entry {
            entries.push(FooterEntry {
                guid: SEV_METADATA_GUID,
                data: d,
            });
        }
        if let Some(d) = &self.reset {
            entries.push(FooterEntry {
                guid: SEV_ES_RESET_BLOCK_GUID,
                data: d,
            });
        }
        if let Some(d) = &self.hash {
            entries.push(FooterEntry {
                guid: SEV_HASH_TABLE_GUID,
                data: d,
            });
        }
        for (g, d) in &self.extra {
            entries.push(FooterEntry { guid: *g, data: d });
        }
        write_footer_table(&mut image, &entries).unwrap();
        image
    }

    fn check(&self) -> Result<(), QemuSnpRuleError> {
        check_qemu_snp_rules(&self.build()).map(|_| ())
    }

    /// Sets the header's u32 field `i` (0 signature, 1 length, 2 version, 3 count).
    fn header(mut self, i: usize, v: u32) -> Self {
        self.asev[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
        self
    }
}

fn sec(gpa: u32, size: u32, kind: SevSectionType) -> SevSection {
    SevSection {
        gpa,
        size,
        section_type: kind.code(),
    }
}

fn rule_of(r: Result<(), QemuSnpRuleError>) -> &'static str {
    let e = r.expect_err("the image should break a rule");
    assert!(e.to_string().contains(e.rule().id), "{e}");
    e.rule().id
}

#[test]
fn td_shim_sections_pass_and_cover_temp_mem() {
    let image = Img::ours().build();
    let snp = check_qemu_snp_rules(&image).unwrap();
    let got: Vec<_> = snp.sections().collect();
    assert_eq!(got, td_shim_sev_sections());
    assert_eq!(snp.ap_reset_eip, 0xFFFF_F1B1);
    assert_eq!(
        snp.hash_table,
        Some((SEV_HASH_TABLE_BASE as u32, SEV_HASH_TABLE_SIZE as u32))
    );
    assert_eq!(snp.ram_needed, TEMP_MEM.end());
    assert_eq!(snp.metadata_from_end, 0x1000);
    // The numbers docs/image-format.md gives.
    let s = td_shim_sev_sections();
    assert_eq!((s[0].gpa, s[0].size), (0x10_0000, 0x8_8000));
    assert_eq!(
        (s[1].gpa, s[2].gpa, s[3].gpa),
        (0x18_8000, 0x18_9000, 0x18_A000)
    );
    assert_eq!((s[4].gpa, s[4].size), (0x18_B000, 0x67_5000));
    assert_eq!(SEV_HASH_TABLE_BASE, 0x18_AC00);
    assert_eq!(SEV_METADATA_FROM_END, 0xF_F800);
    let pages: u32 = s.iter().map(|x| x.size / 0x1000).sum();
    assert_eq!(pages, 0x700);
}

#[test]
fn ovmf_fixtures_pass() {
    // AmdSevX64 (edk2-stable202405): can measure a direct boot.
    let amd = padded(AMD_SEV);
    let snp = check_qemu_snp_rules(&amd).unwrap();
    assert_eq!(snp.metadata_from_end, 0x554);
    assert_eq!(snp.ap_reset_eip, 0x0080_B004);
    assert_eq!(snp.hash_table, Some((0x0081_0C00, 0x400)));
    assert_eq!(snp.sections().count(), 7);
    assert_eq!(snp.ram_needed, 0x82_0000);
    // OvmfPkgX64: no kernel-hashes section, so no direct boot, and that is no error.
    let x64 = padded(OVMF_X64);
    let snp = check_qemu_snp_rules(&x64).unwrap();
    assert_eq!(snp.hash_table, None);
    assert!(snp
        .sections()
        .all(|s| s.kind() != Some(SevSectionType::SnpKernelHashes)));
}

#[test]
fn rule_bios_size() {
    for len in [0x1_0000 - 0x1000, 0x1_0000 + 0x1000] {
        let img = Img { len, ..Img::ours() };
        assert_eq!(rule_of(img.check()), "bios-size");
    }
    assert_eq!(
        check_qemu_snp_rules(&[]).unwrap_err(),
        QemuSnpRuleError::BiosSize { len: 0 }
    );
    // The unpadded 4 KiB fixture is no -bios image.
    assert_eq!(
        rule_of(check_qemu_snp_rules(AMD_SEV).map(|_| ())),
        "bios-size"
    );
}

#[test]
fn rule_footer_table() {
    let mut image = Img::ours().build();
    let n = image.len();
    image[n - 0x30] ^= 1;
    assert_eq!(
        check_qemu_snp_rules(&image).unwrap_err(),
        QemuSnpRuleError::FooterTable(FooterError::MissingFooterGuid)
    );
    assert_eq!(
        rule_of(check_qemu_snp_rules(&image).map(|_| ())),
        "footer-table"
    );
}

#[test]
fn rule_unique_sev_entries() {
    let mut img = Img::ours();
    img.extra
        .push((SEV_ES_RESET_BLOCK_GUID, 0x1234u32.to_le_bytes().to_vec()));
    assert_eq!(
        img.check().unwrap_err(),
        QemuSnpRuleError::DuplicateEntry {
            guid: SEV_ES_RESET_BLOCK_GUID,
            count: 2
        }
    );
    assert_eq!(rule_of(img.check()), "unique-sev-entries");
    // Other GUIDs may repeat.
    let mut img = Img::ours();
    img.extra.push((Guid([1; 16]), vec![]));
    img.extra.push((Guid([1; 16]), vec![]));
    assert!(img.check().is_ok());
}

#[test]
fn rule_sev_metadata_entry() {
    let img = Img {
        metadata_entry: None,
        ..Img::ours()
    };
    assert_eq!(img.check().unwrap_err(), QemuSnpRuleError::NoMetadataEntry);
    assert_eq!(rule_of(img.check()), "sev-metadata-entry");
    let img = Img {
        metadata_entry: Some(vec![0x00, 0x10]),
        ..Img::ours()
    };
    assert_eq!(
        img.check().unwrap_err(),
        QemuSnpRuleError::MetadataEntryTooShort { len: 2 }
    );
}

#[test]
fn rule_metadata_in_image() {
    for from_end in [0x2_0000u32, 8, u32::MAX] {
        let img = Img {
            metadata_entry: Some(from_end.to_le_bytes().to_vec()),
            ..Img::ours()
        };
        assert_eq!(
            img.check().unwrap_err(),
            QemuSnpRuleError::MetadataOutOfImage { from_end }
        );
        assert_eq!(rule_of(img.check()), "metadata-in-image");
    }
}

#[test]
fn rule_signature() {
    let img = Img::ours().header(0, u32::from_le_bytes(*b"TDVF"));
    assert_eq!(rule_of(img.check()), "signature");
}

#[test]
fn rule_length() {
    assert_eq!(rule_of(Img::ours().header(1, 15).check()), "length");
    assert_eq!(rule_of(Img::ours().header(1, 0x1001).check()), "length");
    // Up to the end of the image is fine.
    assert!(Img::ours().header(1, 0x1000).check().is_ok());
}

#[test]
fn rule_version() {
    let img = Img::ours().header(2, 2);
    assert_eq!(img.check().unwrap_err(), QemuSnpRuleError::Version(2));
    assert_eq!(rule_of(img.check()), "version");
}

#[test]
fn rule_sections_fit() {
    let img = Img::ours().header(1, 16 + 12 * 4);
    assert_eq!(
        img.check().unwrap_err(),
        QemuSnpRuleError::SectionsDontFit {
            length: 64,
            count: 5
        }
    );
    assert_eq!(rule_of(img.check()), "sections-fit");
    assert_eq!(
        rule_of(Img::ours().header(3, u32::MAX).check()),
        "sections-fit"
    );
}

#[test]
fn rule_section_count() {
    let many: Vec<SevSection> = (0..300u32)
        .map(|i| sec(0x10_0000 + i * 0x1000, 0x1000, SevSectionType::SnpSecMem))
        .collect();
    let img = Img::with_sections(&many[..256]);
    assert!(
        img.check().is_err_and(|e| e.rule().id == "hashes-table"),
        "256 sections pass the count rule"
    );
    let mut bytes = asev(&many[..256]);
    for s in &many[256..] {
        bytes.extend_from_slice(&s.gpa.to_le_bytes());
        bytes.extend_from_slice(&s.size.to_le_bytes());
        bytes.extend_from_slice(&s.section_type.to_le_bytes());
    }
    let img = Img {
        asev: bytes,
        ..Img::ours()
    }
    .header(1, 16 + 12 * 300)
    .header(3, 300);
    assert_eq!(
        img.check().unwrap_err(),
        QemuSnpRuleError::TooManySections(300)
    );
    assert_eq!(rule_of(img.check()), "section-count");
}

#[test]
fn rule_section_type() {
    let mut s = td_shim_sev_sections();
    s[2].section_type = 7;
    let img = Img::with_sections(&s);
    assert_eq!(
        img.check().unwrap_err(),
        QemuSnpRuleError::SectionType { index: 2, code: 7 }
    );
    assert_eq!(rule_of(img.check()), "section-type");
    // SVSM_CAA is known (sev-snp-measure 0.0.11 and later).
    let mut s = td_shim_sev_sections().to_vec();
    s.push(sec(0x90_0000, 0x1000, SevSectionType::SvsmCaa));
    assert!(Img::with_sections(&s).check().is_ok());
}

#[test]
fn rule_section_4k() {
    for (gpa, size) in [(0x90_0800, 0x1000), (0x90_0000, 0), (0x90_0000, 0x1800)] {
        let mut s = td_shim_sev_sections().to_vec();
        s.push(sec(gpa, size, SevSectionType::SnpSecMem));
        let img = Img::with_sections(&s);
        assert_eq!(rule_of(img.check()), "section-4k", "{gpa:#x} {size:#x}");
    }
}

#[test]
fn rule_section_not_firmware() {
    // Inside the 64 KiB -bios mapping, and running past 4 GiB.
    for (gpa, size) in [
        (0xFFFF_0000u32, 0x1000),
        (0xFFFE_F000, 0x2000),
        (0xFFFF_F000, 0x2000),
    ] {
        let mut s = td_shim_sev_sections().to_vec();
        s.push(sec(gpa, size, SevSectionType::SnpSecMem));
        let img = Img::with_sections(&s);
        assert_eq!(rule_of(img.check()), "section-not-firmware");
    }
}

#[test]
fn rule_section_in_low_ram() {
    for (gpa, size) in [
        (0x8000_0000u32, 0x1000),
        (0x7FFF_F000, 0x2000),
        (0xA_0000, 0x1000),
        (0xF_F000, 0x1000),
        (0x9_F000, 0x2000),
    ] {
        let mut s = td_shim_sev_sections().to_vec();
        s.push(sec(gpa, size, SevSectionType::SnpSecMem));
        let img = Img::with_sections(&s);
        assert_eq!(rule_of(img.check()), "section-in-low-ram", "{gpa:#x}");
    }
    // Low memory below the hole is RAM.
    let mut s = td_shim_sev_sections().to_vec();
    s.push(sec(0, 0xA_0000, SevSectionType::SnpSecMem));
    let snp = Img::with_sections(&s).build();
    assert!(check_qemu_snp_rules(&snp).is_ok());
}

#[test]
fn rule_sections_disjoint() {
    let mut s = td_shim_sev_sections().to_vec();
    s.push(sec(0x18_9000, 0x1000, SevSectionType::SnpSecMem));
    let img = Img::with_sections(&s);
    assert_eq!(
        img.check().unwrap_err(),
        QemuSnpRuleError::Overlap {
            first: 2,
            second: 5
        }
    );
    assert_eq!(rule_of(img.check()), "sections-disjoint");
}

#[test]
fn rule_one_page_sections() {
    for i in [1, 2, 3] {
        // The page moved to a free place and grown to two pages.
        let mut s = td_shim_sev_sections();
        s[i].gpa = 0x90_0000;
        s[i].size = 0x2000;
        let img = Img::with_sections(&s);
        assert_eq!(rule_of(img.check()), "one-page-sections", "section {i}");
    }
}

#[test]
fn rule_reset_block() {
    let none = Img {
        reset: None,
        ..Img::ours()
    };
    assert_eq!(none.check().unwrap_err(), QemuSnpRuleError::NoResetBlock);
    let short = Img {
        reset: Some(vec![1, 2]),
        ..Img::ours()
    };
    assert_eq!(
        short.check().unwrap_err(),
        QemuSnpRuleError::ResetBlockTooShort { len: 2 }
    );
    let zero = Img {
        reset: Some(vec![0; 4]),
        ..Img::ours()
    };
    assert_eq!(
        zero.check().unwrap_err(),
        QemuSnpRuleError::ResetAddressZero
    );
    for img in [none, short, zero] {
        assert_eq!(rule_of(img.check()), "reset-block");
    }
}

#[test]
fn rule_hashes_table() {
    use QemuSnpRuleError as E;
    let cases: Vec<(Img, E)> = vec![
        (
            Img {
                hash: Some(vec![0; 6]),
                ..Img::ours()
            },
            E::HashTableEntryTooShort { len: 6 },
        ),
        // No entry, or OVMF's 0/0 "none", with a kernel-hashes section.
        (
            Img {
                hash: None,
                ..Img::ours()
            },
            E::HashesSectionWithoutTable { index: 3 },
        ),
        (
            Img {
                hash: Some(hash_entry(0, 0)),
                ..Img::ours()
            },
            E::HashesSectionWithoutTable { index: 3 },
        ),
        (
            Img {
                hash: Some(hash_entry(SEV_HASH_TABLE_BASE, 0x80)),
                ..Img::ours()
            },
            E::HashTableTooSmall {
                base: SEV_HASH_TABLE_BASE as u32,
                size: 0x80,
            },
        ),
        (
            Img {
                hash: Some(hash_entry(SEV_HASH_TABLE_BASE + 0x300, 0x400)),
                ..Img::ours()
            },
            E::HashTableOutsideSection {
                base: SEV_HASH_TABLE_BASE as u32 + 0x300,
                size: 0x400,
            },
        ),
        (
            Img {
                hash: Some(hash_entry(0x18_9C00, 0x400)),
                ..Img::ours()
            },
            E::HashTableOutsideSection {
                base: 0x18_9C00,
                size: 0x400,
            },
        ),
    ];
    for (img, err) in cases {
        assert_eq!(img.check().unwrap_err(), err);
        assert_eq!(rule_of(img.check()), "hashes-table");
    }
    // A table but no kernel-hashes section (it is zero memory instead).
    let mut s = td_shim_sev_sections();
    s[3].section_type = SevSectionType::SnpSecMem.code();
    let img = Img::with_sections(&s);
    assert_eq!(
        img.check().unwrap_err(),
        E::HashTableWithoutSection {
            base: SEV_HASH_TABLE_BASE as u32
        }
    );
    // Neither: passes, no direct boot.
    let img = Img {
        hash: None,
        ..Img::with_sections(&s)
    };
    assert_eq!(check_qemu_snp_rules(&img.build()).unwrap().hash_table, None);
}

#[test]
fn rules_have_unique_ids_and_every_error_a_message() {
    for (i, r) in QEMU_SNP_RULES.iter().enumerate() {
        assert!(QEMU_SNP_RULES[..i].iter().all(|o| o.id != r.id), "{}", r.id);
        assert!(!r.text.is_empty() && !r.source.is_empty());
    }
    let s = td_shim_sev_sections()[0];
    let all = [
        QemuSnpRuleError::BiosSize { len: 1 },
        QemuSnpRuleError::FooterTable(FooterError::MissingFooterGuid),
        QemuSnpRuleError::DuplicateEntry {
            guid: SEV_HASH_TABLE_GUID,
            count: 2,
        },
        QemuSnpRuleError::NoMetadataEntry,
        QemuSnpRuleError::MetadataEntryTooShort { len: 1 },
        QemuSnpRuleError::MetadataOutOfImage { from_end: 1 },
        QemuSnpRuleError::Signature(1),
        QemuSnpRuleError::Length {
            length: 1,
            available: 2,
        },
        QemuSnpRuleError::Version(2),
        QemuSnpRuleError::SectionsDontFit {
            length: 1,
            count: 2,
        },
        QemuSnpRuleError::TooManySections(300),
        QemuSnpRuleError::SectionType { index: 0, code: 9 },
        QemuSnpRuleError::Misaligned {
            index: 0,
            section: s,
        },
        QemuSnpRuleError::SectionInFirmware {
            index: 0,
            section: s,
            bios_base: 0,
        },
        QemuSnpRuleError::SectionNotInLowRam {
            index: 0,
            section: s,
        },
        QemuSnpRuleError::Overlap {
            first: 0,
            second: 1,
        },
        QemuSnpRuleError::NotOnePage {
            index: 0,
            kind: SevSectionType::Cpuid,
            size: 0,
        },
        QemuSnpRuleError::NoResetBlock,
        QemuSnpRuleError::ResetBlockTooShort { len: 0 },
        QemuSnpRuleError::ResetAddressZero,
        QemuSnpRuleError::HashTableEntryTooShort { len: 0 },
        QemuSnpRuleError::HashTableWithoutSection { base: 0 },
        QemuSnpRuleError::HashesSectionWithoutTable { index: 0 },
        QemuSnpRuleError::HashTableTooSmall { base: 0, size: 0 },
        QemuSnpRuleError::HashTableOutsideSection { base: 0, size: 0 },
    ];
    let mut seen = Vec::new();
    for e in all {
        let m = e.to_string();
        assert!(m.starts_with("QEMU SNP rule "), "{m}");
        if !e.rule().confirmed {
            assert!(m.ends_with("(rule inferred, not confirmed from QEMU's source)"));
        }
        seen.push(e.rule().id);
    }
    // Every rule has at least one error.
    for r in &QEMU_SNP_RULES {
        assert!(seen.contains(&r.id), "{}", r.id);
    }
}

#[test]
fn write_sev_metadata_layout_and_refusals() {
    let s = td_shim_sev_sections();
    let mut out = [0u8; 0x100];
    assert_eq!(write_sev_metadata(&s, &mut out), Ok(16 + 60));
    assert_eq!(&out[0..4], b"ASEV");
    assert_eq!(&out[4..8], &76u32.to_le_bytes());
    assert_eq!(&out[8..12], &1u32.to_le_bytes());
    assert_eq!(&out[12..16], &5u32.to_le_bytes());
    assert_eq!(&out[16..20], &0x10_0000u32.to_le_bytes());
    assert_eq!(&out[20..24], &0x8_8000u32.to_le_bytes());
    assert_eq!(&out[24..28], &1u32.to_le_bytes());
    assert_eq!(&out[60..64], &0x10u32.to_le_bytes());
    assert!(out[76..].iter().all(|&b| b == 0));
    assert_eq!(
        write_sev_metadata(&s, &mut [0u8; 75]),
        Err(SevMetadataError::BufferTooSmall {
            needed: 76,
            available: 75
        })
    );
    let many = vec![s[0]; 257];
    assert_eq!(
        write_sev_metadata(&many, &mut vec![0u8; 0x1000]),
        Err(SevMetadataError::TooManySections(257))
    );
    assert!(!SevMetadataError::TooManySections(1).to_string().is_empty());
}

#[test]
fn ap_reset_segment() {
    assert!(ap_reset_eip_ok(0xFFFF_F1B1));
    assert!(ap_reset_eip_ok(0xFFFF_0000) && ap_reset_eip_ok(0xFFFF_FFFF));
    assert!(!ap_reset_eip_ok(0xFFFE_FFFF) && !ap_reset_eip_ok(0x80_B004));
    assert!(!ap_reset_eip_ok(FOUR_GIB));
}

#[test]
fn section_types_round_trip() {
    for t in [
        SevSectionType::SnpSecMem,
        SevSectionType::SnpSecrets,
        SevSectionType::Cpuid,
        SevSectionType::SvsmCaa,
        SevSectionType::SnpKernelHashes,
    ] {
        assert_eq!(SevSectionType::from_code(t.code()), Some(t));
        assert_eq!(t.to_string(), t.name());
    }
    assert_eq!(SevSectionType::from_code(0), None);
}

proptest! {
    #[test]
    fn never_panics_on_random_images(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut image = vec![0u8; 0x1_0000 - bytes.len()];
        image.extend_from_slice(&bytes);
        let _ = check_qemu_snp_rules(&image);
        let _ = check_qemu_snp_rules(&bytes);
    }

    #[test]
    fn never_panics_on_random_metadata(
        header in any::<[u32; 4]>(),
        body in proptest::collection::vec(any::<u32>(), 0..40),
        from_end in prop_oneof![Just(0x1000u32), any::<u32>()],
        reset in any::<u32>(),
        hash in any::<[u32; 2]>(),
    ) {
        let mut raw: Vec<u8> = header.iter().flat_map(|v| v.to_le_bytes()).collect();
        raw[0..4].copy_from_slice(b"ASEV");
        raw.extend(body.iter().flat_map(|v| v.to_le_bytes()));
        let img = Img {
            asev: raw,
            metadata_entry: Some(from_end.to_le_bytes().to_vec()),
            reset: Some(reset.to_le_bytes().to_vec()),
            hash: Some(hash_entry(u64::from(hash[0]), u64::from(hash[1]))),
            ..Img::ours()
        };
        if let Ok(snp) = check_qemu_snp_rules(&img.build()) {
            // What passes is what the rules say.
            for s in snp.sections() {
                prop_assert!(s.kind().is_some() && s.end() <= LOW_RAM_LIMIT);
                prop_assert!(u64::from(s.gpa).is_multiple_of(PAGE_SIZE) && s.size > 0);
            }
            prop_assert!(snp.ap_reset_eip != 0);
        }
    }
}
