//! The image's SEV self-description, as QEMU's `sev-snp-guest` and sev-snp-measure read it, and
//! the rules an SEV-SNP `-bios` image must pass.
//!
//! An OVMF-style image tells an AMD SEV VMM what to do through three entries of its footer GUID
//! table ([`crate::footer`]) and the table one of them points to (docs/image-format.md
//! "SEV-SNP"; research/sev.md §1.4-1.6; QEMU `target/i386/sev.c`, sev-snp-measure `ovmf.py`):
//!
//! - [`SEV_METADATA_GUID`]: u32, the distance of the SEV metadata from the end of the image;
//! - [`SEV_ES_RESET_BLOCK_GUID`]: u32, the real-mode address the APs start at (CS base
//!   `addr & 0xFFFF0000`, IP `addr & 0xFFFF`);
//! - [`SEV_HASH_TABLE_GUID`]: u32 GPA and u32 size of the area QEMU writes the kernel, initrd
//!   and command-line hashes of a direct boot into (`kernel-hashes=on`).
//!
//! The SEV metadata ("ASEV", version 1) is a 16-byte header (signature, u32 length of header and
//! sections, u32 version, u32 number of sections) and 12-byte sections (u32 GPA, u32 size, u32
//! type, [`SevSectionType`]). Under SNP the VMM hands every section's pages to the AMD-SP in
//! table order after the image itself, each as its type says, so they are part of the launch
//! digest (docs/sev-measurement.md).
//!
//! td-shim's own sections are [`td_shim_sev_sections`]: its [`TEMP_MEM`] as pre-validated zero
//! memory, and in it the secrets, CPUID and kernel-hashes pages. [`check_qemu_snp_rules`] states
//! what QEMU (and sev-snp-measure) require of any image, [`QEMU_SNP_RULES`] lists the rules with
//! their sources. Everything that parses image bytes is panic-free on any input.

use core::fmt;

use zerocopy::little_endian::U32;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::footer::{parse_footer_table, read_at, write_at, FooterError};
use crate::guid::Guid;
use crate::layout::{
    Region, FOUR_GIB, IMAGE_BASE, IMAGE_METADATA, LEGACY_HOLE, PAGE_SIZE, SEV_METADATA_BASE,
    SNP_CPUID, SNP_GHCB, SNP_KERNEL_HASHES, SNP_SECRETS, TD_HOB, TEMP_MEM,
};
use crate::metadata::{encoded_len, td_shim_sections, VmmRule};

/// Footer entry `dc886566-984a-4798-a75e-5585a7bf67cc`: u32 LE, the distance of the "ASEV"
/// header from the end of the image.
pub const SEV_METADATA_GUID: Guid = Guid::from_fields(
    0xdc88_6566,
    0x984a,
    0x4798,
    [0xa7, 0x5e, 0x55, 0x85, 0xa7, 0xbf, 0x67, 0xcc],
);
/// Footer entry `00f771de-1a7e-4fcb-890e-68c77e2fb44e` (QEMU's "SEV info block"): u32 LE, the
/// APs' reset address under SEV-ES and SEV-SNP.
pub const SEV_ES_RESET_BLOCK_GUID: Guid = Guid::from_fields(
    0x00f7_71de,
    0x1a7e,
    0x4fcb,
    [0x89, 0x0e, 0x68, 0xc7, 0x7e, 0x2f, 0xb4, 0x4e],
);
/// Footer entry `7255371f-3a3b-4b04-927b-1da6efa8d454`: u32 LE GPA and u32 LE size of the area
/// QEMU writes the kernel-hashes table into. OVMF builds that cannot measure a direct boot
/// carry it as 0/0.
pub const SEV_HASH_TABLE_GUID: Guid = Guid::from_fields(
    0x7255_371f,
    0x3a3b,
    0x4b04,
    [0x92, 0x7b, 0x1d, 0xa6, 0xef, 0xa8, 0xd4, 0x54],
);
/// Footer entry `4c2eb361-7d9b-4cc3-8081-127c90d3d294`: u32 base and u32 size of the area for
/// SEV/SEV-ES `LAUNCH_SECRET` (QEMU `sev-inject-launch-secret`). Not used under SNP; td-shim
/// images do not carry it. Named only so `inspect` can say what it is in OVMF images.
pub const SEV_SECRET_BLOCK_GUID: Guid = Guid::from_fields(
    0x4c2e_b361,
    0x7d9b,
    0x4cc3,
    [0x80, 0x81, 0x12, 0x7c, 0x90, 0xd3, 0xd2, 0x94],
);

/// "ASEV" read as a little-endian u32.
pub const ASEV_SIGNATURE: u32 = u32::from_le_bytes(*b"ASEV");
/// The only SEV metadata version defined.
pub const ASEV_VERSION: u32 = 1;
/// Bytes of the SEV metadata header.
pub const ASEV_HEADER_SIZE: usize = 16;
/// Bytes of one SEV metadata section.
pub const ASEV_SECTION_SIZE: usize = 12;
/// Most sections [`check_qemu_snp_rules`] accepts (OVMF has 5 to 7): bounds the work on
/// untrusted input. A bound of this checker, not of QEMU.
pub const MAX_SEV_SECTIONS: u32 = 256;

/// Bytes of the SEV metadata with `n` sections.
pub const fn sev_metadata_len(n: usize) -> usize {
    ASEV_HEADER_SIZE + ASEV_SECTION_SIZE * n
}

/// The 16-byte SEV metadata header as stored.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct AsevHeader {
    signature: U32,
    length: U32,
    version: U32,
    count: U32,
}

/// One 12-byte SEV metadata section as stored.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct AsevSectionWire {
    gpa: U32,
    size: U32,
    kind: U32,
}

const _: () = {
    assert!(core::mem::size_of::<AsevHeader>() == ASEV_HEADER_SIZE);
    assert!(core::mem::size_of::<AsevSectionWire>() == ASEV_SECTION_SIZE);
};

/// The type of an SEV metadata section: how the VMM hands its pages to the AMD-SP (edk2
/// `OvmfPkg/ResetVector/X64/OvmfSevMetadata.asm`, sev-snp-measure `SectionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SevSectionType {
    /// 1: memory the guest uses before it can validate memory itself: QEMU adds it as
    /// pre-validated ZERO pages.
    SnpSecMem,
    /// 2: the secrets page, filled by the AMD-SP (one page).
    SnpSecrets,
    /// 3: the CPUID page, filled by the VMM and checked by the AMD-SP (one page).
    Cpuid,
    /// 4: the SVSM calling area (ZERO pages).
    SvsmCaa,
    /// 0x10: the page QEMU writes the kernel-hashes table into: measured as a NORMAL page for a
    /// direct boot with `kernel-hashes=on`, ZERO pages otherwise.
    SnpKernelHashes,
}

impl SevSectionType {
    /// The type's code in a section.
    pub const fn code(self) -> u32 {
        match self {
            Self::SnpSecMem => 1,
            Self::SnpSecrets => 2,
            Self::Cpuid => 3,
            Self::SvsmCaa => 4,
            Self::SnpKernelHashes => 0x10,
        }
    }

    /// The type for a code, if it is one of those defined.
    pub const fn from_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(Self::SnpSecMem),
            2 => Some(Self::SnpSecrets),
            3 => Some(Self::Cpuid),
            4 => Some(Self::SvsmCaa),
            0x10 => Some(Self::SnpKernelHashes),
            _ => None,
        }
    }

    /// edk2's name, without the `OVMF_SECTION_TYPE_` prefix.
    pub const fn name(self) -> &'static str {
        match self {
            Self::SnpSecMem => "SNP_SEC_MEM",
            Self::SnpSecrets => "SNP_SECRETS",
            Self::Cpuid => "CPUID",
            Self::SvsmCaa => "SVSM_CAA",
            Self::SnpKernelHashes => "SNP_KERNEL_HASHES",
        }
    }
}

impl fmt::Display for SevSectionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One SEV metadata section, its type as stored (it may be one no VMM knows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SevSection {
    /// Guest-physical address of the first byte.
    pub gpa: u32,
    /// Bytes.
    pub size: u32,
    /// The type's code ([`SevSectionType::code`]).
    pub section_type: u32,
}

impl SevSection {
    /// The section's type, if it is one of those defined.
    pub const fn kind(&self) -> Option<SevSectionType> {
        SevSectionType::from_code(self.section_type)
    }

    /// One past the last byte (never wraps: computed in u64).
    pub const fn end(&self) -> u64 {
        self.gpa as u64 + self.size as u64
    }

    /// A section covering `region`, which must lie below 4 GiB (checked at compile time for
    /// td-shim's sections).
    pub const fn of(region: &Region, kind: SevSectionType) -> Self {
        SevSection {
            gpa: region.base as u32,
            size: region.size as u32,
            section_type: kind.code(),
        }
    }

    fn from_wire(w: &AsevSectionWire) -> Self {
        SevSection {
            gpa: w.gpa.get(),
            size: w.size.get(),
            section_type: w.kind.get(),
        }
    }
}

/// Where the kernel-hashes table sits in [`SNP_KERNEL_HASHES`]: at the same page offset as in
/// OVMF's AmdSevX64 and Oak's stage0 (research/sev.md §1.4-1.5). QEMU writes the table at the
/// table GPA's offset in the section's page, so any offset that leaves room would do.
pub const SEV_HASH_TABLE_OFFSET: u64 = 0xC00;
/// Bytes of the kernel-hashes table area (the rest of the page).
pub const SEV_HASH_TABLE_SIZE: u64 = PAGE_SIZE - SEV_HASH_TABLE_OFFSET;
/// GPA of the kernel-hashes table: the value of td-shim's [`SEV_HASH_TABLE_GUID`] entry.
pub const SEV_HASH_TABLE_BASE: u64 = SNP_KERNEL_HASHES.base + SEV_HASH_TABLE_OFFSET;
/// Bytes QEMU writes there: its `PaddedSevHashTable`, a 168-byte table (GUID, u16 length, the
/// command-line, initrd and kernel entries of 50 bytes each) padded to a multiple of 16.
pub const PADDED_HASH_TABLE_SIZE: u64 = 176;
/// Bytes of QEMU's SNP CPUID table (`SnpCpuidInfo`: a 16-byte header and 64 entries of 48
/// bytes); QEMU asserts the CPUID section holds it.
pub const SNP_CPUID_TABLE_SIZE: u64 = 16 + 64 * 48;

/// The real-mode code segment an SEV-ES AP reset address must lie in for td-shim: QEMU starts
/// the APs with CS base `addr & 0xFFFF0000`, and td-shim's real-mode AP entry addresses its GDT
/// through CS base 0xFFFF0000, the reset segment: so the address is in the last 64 KiB.
pub const AP_RESET_SEGMENT: Region = Region {
    name: "sev-ap-reset-segment",
    base: FOUR_GIB - 0x1_0000,
    size: 0x1_0000,
};

/// The distance of td-shim's SEV metadata from the end of the image: the value of its
/// [`SEV_METADATA_GUID`] entry.
pub const SEV_METADATA_FROM_END: u32 = (FOUR_GIB - SEV_METADATA_BASE) as u32;

/// td-shim's SEV metadata sections, in the order the VMM measures them:
///
/// 1. SNP_SEC_MEM `[TEMP_MEM.base, SNP_SECRETS.base)`: the firmware's data, stack, reset page
///    tables and AP rendezvous page;
/// 2. SNP_SECRETS: [`SNP_SECRETS`];
/// 3. CPUID: [`SNP_CPUID`];
/// 4. SNP_KERNEL_HASHES: [`SNP_KERNEL_HASHES`], the hashes table at [`SEV_HASH_TABLE_OFFSET`];
/// 5. SNP_SEC_MEM `[SNP_KERNEL_HASHES.end(), TEMP_MEM.end())`: the GHCB page, the hand-off
///    area, the event log, the bounce buffer, the firmware's code, page tables and heap.
///
/// Together they cover [`TEMP_MEM`] exactly, the RAM the firmware writes before it can
/// validate memory itself: under SNP the VMM adds it validated, as TDX's TempMem section is
/// added accepted. Nothing else needs a section: the image itself is measured page by page, and
/// [`TD_HOB`] is TDX's (under SNP QEMU writes no HOB; it is RAM the firmware validates like any
/// other before use).
pub const fn td_shim_sev_sections() -> [SevSection; 5] {
    let low = Region {
        name: "snp-sec-mem-low",
        base: TEMP_MEM.base,
        size: SNP_SECRETS.base - TEMP_MEM.base,
    };
    let high = Region {
        name: "snp-sec-mem-high",
        base: SNP_KERNEL_HASHES.end(),
        size: TEMP_MEM.end() - SNP_KERNEL_HASHES.end(),
    };
    [
        SevSection::of(&low, SevSectionType::SnpSecMem),
        SevSection::of(&SNP_SECRETS, SevSectionType::SnpSecrets),
        SevSection::of(&SNP_CPUID, SevSectionType::Cpuid),
        SevSection::of(&SNP_KERNEL_HASHES, SevSectionType::SnpKernelHashes),
        SevSection::of(&high, SevSectionType::SnpSecMem),
    ]
}

const fn sections_cover_temp_mem(s: &[SevSection]) -> bool {
    // Sorted, touching, page aligned, inside TEMP_MEM from its start to its end.
    let mut at = TEMP_MEM.base;
    let mut i = 0;
    while i < s.len() {
        let sec = &s[i];
        if sec.gpa as u64 != at
            || sec.size == 0
            || !(sec.size as u64).is_multiple_of(PAGE_SIZE)
            || sec.kind().is_none()
        {
            return false;
        }
        at = sec.end();
        i += 1;
    }
    at == TEMP_MEM.end()
}

const _: () = {
    let s = td_shim_sev_sections();
    // Every GPA and size fits the u32 fields; the sections cover TEMP_MEM exactly, in address
    // order, so they are disjoint; TD_HOB is not among them.
    assert!(TEMP_MEM.end() <= u32::MAX as u64);
    assert!(sections_cover_temp_mem(&s));
    assert!(!TD_HOB.overlaps(&TEMP_MEM));
    // The special pages are one page each, inside TEMP_MEM and not the GHCB (which stays in
    // the zero memory of SNP_SEC_MEM).
    assert!(TEMP_MEM.contains_range(SNP_SECRETS.base, SNP_SECRETS.size));
    assert!(TEMP_MEM.contains_range(SNP_GHCB.base, SNP_GHCB.size));
    assert!(s[1].size as u64 == PAGE_SIZE && s[2].size as u64 == PAGE_SIZE);
    assert!(s[3].size as u64 == PAGE_SIZE && s[4].gpa as u64 <= SNP_GHCB.base);
    // QEMU's CPUID table fits its page; the hashes table area lies inside the kernel-hashes
    // page and holds QEMU's padded table.
    assert!(SNP_CPUID_TABLE_SIZE <= PAGE_SIZE);
    assert!(SNP_KERNEL_HASHES.contains_range(SEV_HASH_TABLE_BASE, SEV_HASH_TABLE_SIZE));
    assert!(
        SEV_HASH_TABLE_SIZE >= PADDED_HASH_TABLE_SIZE && SEV_HASH_TABLE_BASE <= u32::MAX as u64
    );
    // Everything lies in low RAM below 2 GiB, above the legacy hole (rule section-in-low-ram).
    assert!(TEMP_MEM.base >= LEGACY_HOLE.end() && TEMP_MEM.end() <= LOW_RAM_LIMIT);
    // The SEV metadata follows the TDX metadata in the metadata page, u32 aligned, and fits.
    assert!(
        IMAGE_METADATA.base + encoded_len(td_shim_sections().len()) as u64 <= SEV_METADATA_BASE
    );
    assert!(SEV_METADATA_BASE.is_multiple_of(16));
    assert!(SEV_METADATA_BASE + sev_metadata_len(s.len()) as u64 <= IMAGE_METADATA.end());
    assert!(SEV_METADATA_BASE >= IMAGE_BASE);
};

/// Why SEV metadata could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SevMetadataError {
    /// More sections than a u32 count (or [`MAX_SEV_SECTIONS`]) allows.
    TooManySections(usize),
    /// The output is shorter than the metadata.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
}

impl fmt::Display for SevMetadataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooManySections(n) => {
                write!(f, "{n} SEV metadata sections, more than {MAX_SEV_SECTIONS}")
            }
            Self::BufferTooSmall { needed, available } => write!(
                f,
                "the SEV metadata needs {needed} bytes, {available} available"
            ),
        }
    }
}

/// Writes the "ASEV" header and `sections` at `out[0..]`; returns the bytes written
/// ([`sev_metadata_len`]). Checks the count and the space only: [`check_qemu_snp_rules`]
/// checks the sections in the built image.
pub fn write_sev_metadata(
    sections: &[SevSection],
    out: &mut [u8],
) -> Result<usize, SevMetadataError> {
    let n = sections.len();
    let count = u32::try_from(n)
        .ok()
        .filter(|&c| c <= MAX_SEV_SECTIONS)
        .ok_or(SevMetadataError::TooManySections(n))?;
    let needed = sev_metadata_len(n);
    let too_small = SevMetadataError::BufferTooSmall {
        needed,
        available: out.len(),
    };
    let out = out.get_mut(..needed).ok_or(too_small)?;
    let length = u32::try_from(needed).map_err(|_| too_small)?;
    let header = AsevHeader {
        signature: U32::new(ASEV_SIGNATURE),
        length: U32::new(length),
        version: U32::new(ASEV_VERSION),
        count: U32::new(count),
    };
    let mut ok = write_at(out, 0, &header);
    for (i, s) in sections.iter().enumerate() {
        let wire = AsevSectionWire {
            gpa: U32::new(s.gpa),
            size: U32::new(s.size),
            kind: U32::new(s.section_type),
        };
        ok &= write_at(out, ASEV_HEADER_SIZE + ASEV_SECTION_SIZE * i, &wire);
    }
    if ok {
        Ok(needed)
    } else {
        Err(too_small)
    }
}

// ---------------------------------------------------------------------------------------------
// QEMU's rules for an SEV-SNP -bios image.

/// q35 maps at most 2 GiB of RAM below 4 GiB once the guest has 2.75 GiB or more (QEMU
/// `pc_q35_init()`: `lowmem = 0x80000000` for `ram_size >= 0xb0000000`, else the RAM size up
/// to 0xb0000000): a section below this is RAM for any `-m` at least its end.
pub const LOW_RAM_LIMIT: u64 = 0x8000_0000;

/// The rules an SEV-SNP image must pass to be launched by upstream QEMU (`-object
/// sev-snp-guest`, `-bios`) with a digest sev-snp-measure predicts, in the order
/// [`check_qemu_snp_rules`] checks them. Index with [`QemuSnpRuleError::rule`]. `source` names
/// the code that applies each rule; `confirmed` is false where the refusal is inferred from what
/// the code does with the value rather than read in it.
pub const QEMU_SNP_RULES: [VmmRule; 18] = [
    VmmRule {
        id: "bios-size",
        text: "the image size is a non-zero multiple of 64 KiB, at most 4 GiB (it is mapped at 4 GiB - size)",
        source: "hw/i386/x86-common.c x86_bios_rom_init()",
        confirmed: true,
    },
    VmmRule {
        id: "footer-table",
        text: "the OVMF footer GUID table ends at image end - 0x20 and is well-formed (QEMU finds the SEV entries only there)",
        source: "hw/i386/pc_sysfw_ovmf.c pc_system_parse_ovmf_flash(), pc_system_ovmf_table_find()",
        confirmed: true,
    },
    VmmRule {
        id: "unique-sev-entries",
        text: "the SEV metadata, SEV-ES reset block and SEV hash table entries appear at most once each: QEMU takes the one nearest the footer, sev-snp-measure the farthest",
        source: "hw/i386/pc_sysfw_ovmf.c pc_system_ovmf_table_find(); sev-snp-measure ovmf.py OVMF._parse_footer_table()",
        confirmed: true,
    },
    VmmRule {
        id: "sev-metadata-entry",
        text: "the footer table has an SEV metadata entry (dc886566-...) holding a u32; without it QEMU stops at launch (\"Failed to locate SEV metadata header\")",
        source: "target/i386/sev.c pc_system_parse_sev_metadata(), sev_snp_launch_finish()",
        confirmed: true,
    },
    VmmRule {
        id: "metadata-in-image",
        text: "the 16-byte ASEV header at image end - u32 lies inside the image (QEMU reads it there without a bounds check)",
        source: "target/i386/sev.c pc_system_parse_sev_metadata()",
        confirmed: true,
    },
    VmmRule {
        id: "signature",
        text: "the SEV metadata starts with \"ASEV\"",
        source: "target/i386/sev.c pc_system_parse_sev_metadata(); sev-snp-measure OvmfSevMetadataHeader.verify()",
        confirmed: true,
    },
    VmmRule {
        id: "length",
        text: "the SEV metadata length is at least the 16-byte header and does not run past the end of the image",
        source: "target/i386/sev.c pc_system_parse_sev_metadata()",
        confirmed: true,
    },
    VmmRule {
        id: "version",
        text: "the SEV metadata version is 1 (sev-snp-measure: \"Wrong SEV metadata version\"; QEMU does not read it)",
        source: "sev-snp-measure ovmf.py OvmfSevMetadataHeader.verify()",
        confirmed: true,
    },
    VmmRule {
        id: "sections-fit",
        text: "the length covers the header and all 12-byte sections (QEMU copies `length` bytes and reads `count` sections from the copy)",
        source: "target/i386/sev.c pc_system_parse_sev_metadata(), snp_populate_metadata_pages() (inferred: no check is made)",
        confirmed: false,
    },
    VmmRule {
        id: "section-count",
        text: "at most 256 sections (a work bound of this checker and of td-shim-tool measure; OVMF has 5 to 7)",
        source: "td-shim-tool (QEMU and sev-snp-measure have no bound)",
        confirmed: true,
    },
    VmmRule {
        id: "section-type",
        text: "every section type is SNP_SEC_MEM (1), SNP_SECRETS (2), CPUID (3), SVSM_CAA (4) or SNP_KERNEL_HASHES (0x10): sev-snp-measure refuses others, QEMU 9.1 refused them (\"Invalid memory type\"), later QEMU adds them as ZERO pages",
        source: "sev-snp-measure guest.py snp_update_section(); target/i386/sev.c snp_metadata_desc_to_page_type()",
        confirmed: true,
    },
    VmmRule {
        id: "section-4k",
        text: "every section's GPA and size are multiples of 4 KiB and the size is not 0 (KVM refuses other lengths, QEMU refuses a GPA range KVM did not cover)",
        source: "target/i386/sev.c sev_snp_launch_update(); Linux arch/x86/kvm/svm/sev.c snp_launch_update()",
        confirmed: true,
    },
    VmmRule {
        id: "section-not-firmware",
        text: "no section overlaps the -bios mapping [4 GiB - size, 4 GiB): those pages are already added and measured as the firmware, and a page is populated only once",
        source: "target/i386/sev.c sev_encrypt_flash(), snp_populate_metadata_pages(); KVM kvm_gmem_populate() (inferred)",
        confirmed: false,
    },
    VmmRule {
        id: "section-in-low-ram",
        text: "every section lies in guest RAM: below 2 GiB (q35's RAM below 4 GiB for any -m of at least the section's end) and outside [0xA0000, 0x100000), where q35 maps VGA, option ROMs and the BIOS shadow; QEMU stops otherwise (\"Failed to get HVA for GPA\")",
        source: "target/i386/sev.c snp_populate_metadata_pages() gpa2hva(); hw/i386/pc_q35.c pc_q35_init() (the hole: inferred)",
        confirmed: false,
    },
    VmmRule {
        id: "sections-disjoint",
        text: "no two sections share a page: each page is handed to the AMD-SP once",
        source: "target/i386/sev.c snp_populate_metadata_pages(); KVM kvm_gmem_populate() (inferred)",
        confirmed: false,
    },
    VmmRule {
        id: "one-page-sections",
        text: "SNP_SECRETS, CPUID and SNP_KERNEL_HASHES sections are one page each: sev-snp-measure measures one page for each (QEMU would hand over the whole section, a digest it cannot predict); QEMU asserts the CPUID section holds its 3088-byte table",
        source: "sev-snp-measure gctx.py update_secrets_page(), update_cpuid_page(), guest.py snp_update_kernel_hashes(); target/i386/sev.c snp_launch_update_cpuid()",
        confirmed: true,
    },
    VmmRule {
        id: "reset-block",
        text: "the footer table has an SEV-ES reset block entry (00f771de-...) with a non-zero u32 address: SNP implies SEV-ES and QEMU stops without it (\"failed to locate and/or save reset vector\", \"SEV-ES reset address is zero\")",
        source: "target/i386/sev.c sev_es_find_reset_vector(), sev_es_parse_reset_block(); hw/i386/pc_sysfw.c x86_firmware_configure()",
        confirmed: true,
    },
    VmmRule {
        id: "hashes-table",
        text: "if the image can measure a direct boot (a non-zero SEV hash table entry or an SNP_KERNEL_HASHES section), both exist, the area is at least QEMU's 176-byte padded table and lies inside an SNP_KERNEL_HASHES section (QEMU writes the table at the area's page offset in that section); an image with neither passes, but QEMU refuses its -kernel with kernel-hashes=on",
        source: "target/i386/sev.c sev_add_kernel_loader_hashes(), snp_launch_update_kernel_hashes(); sev-snp-measure guest.py (the section)",
        confirmed: true,
    },
];

/// Why an image breaks [`QEMU_SNP_RULES`]; the message names the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QemuSnpRuleError {
    /// `bios-size`: the image length is 0, not a multiple of 64 KiB, or over 4 GiB.
    BiosSize {
        /// The image length.
        len: u64,
    },
    /// `footer-table`: no footer GUID at end - 0x30, or a malformed table.
    FooterTable(FooterError),
    /// `unique-sev-entries`: an SEV entry appears more than once.
    DuplicateEntry {
        /// The entry's GUID.
        guid: Guid,
        /// How many times.
        count: usize,
    },
    /// `sev-metadata-entry`: no SEV metadata entry.
    NoMetadataEntry,
    /// `sev-metadata-entry`: the entry holds fewer than 4 bytes.
    MetadataEntryTooShort {
        /// Bytes of data.
        len: usize,
    },
    /// `metadata-in-image`: the header at image end - value is not inside the image.
    MetadataOutOfImage {
        /// The entry's value.
        from_end: u32,
    },
    /// `signature`: not "ASEV" (holds the value found).
    Signature(u32),
    /// `length`: below 16 or past the end of the image.
    Length {
        /// The stored length.
        length: u32,
        /// Bytes from the header to the end of the image.
        available: u32,
    },
    /// `version`: not 1.
    Version(u32),
    /// `sections-fit`: the length does not cover the sections.
    SectionsDontFit {
        /// The stored length.
        length: u32,
        /// The stored count.
        count: u32,
    },
    /// `section-count`: more than [`MAX_SEV_SECTIONS`].
    TooManySections(u32),
    /// `section-type`: a type no VMM knows.
    SectionType {
        /// The section's position, from 0.
        index: usize,
        /// The stored type.
        code: u32,
    },
    /// `section-4k`: a GPA or size not a multiple of 4 KiB, or size 0.
    Misaligned {
        /// The section's position, from 0.
        index: usize,
        /// The section.
        section: SevSection,
    },
    /// `section-not-firmware`: the section overlaps the -bios mapping (or runs past 4 GiB).
    SectionInFirmware {
        /// The section's position, from 0.
        index: usize,
        /// The section.
        section: SevSection,
        /// Where the -bios mapping starts.
        bios_base: u64,
    },
    /// `section-in-low-ram`: the section is above 2 GiB or in the legacy hole.
    SectionNotInLowRam {
        /// The section's position, from 0.
        index: usize,
        /// The section.
        section: SevSection,
    },
    /// `sections-disjoint`: two sections share a page.
    Overlap {
        /// The first section's position.
        first: usize,
        /// The second section's position.
        second: usize,
    },
    /// `one-page-sections`: a secrets, CPUID or kernel-hashes section that is not one page.
    NotOnePage {
        /// The section's position, from 0.
        index: usize,
        /// Its type.
        kind: SevSectionType,
        /// Its size.
        size: u32,
    },
    /// `reset-block`: no SEV-ES reset block entry.
    NoResetBlock,
    /// `reset-block`: the entry holds fewer than 4 bytes.
    ResetBlockTooShort {
        /// Bytes of data.
        len: usize,
    },
    /// `reset-block`: the address is 0.
    ResetAddressZero,
    /// `hashes-table`: the hash table entry holds fewer than 8 bytes.
    HashTableEntryTooShort {
        /// Bytes of data.
        len: usize,
    },
    /// `hashes-table`: a hash table area but no SNP_KERNEL_HASHES section.
    HashTableWithoutSection {
        /// The area's GPA.
        base: u32,
    },
    /// `hashes-table`: an SNP_KERNEL_HASHES section but no (non-zero) hash table entry.
    HashesSectionWithoutTable {
        /// The section's position.
        index: usize,
    },
    /// `hashes-table`: the area is smaller than QEMU's padded table.
    HashTableTooSmall {
        /// The area's GPA.
        base: u32,
        /// Its size.
        size: u32,
    },
    /// `hashes-table`: the area is not inside an SNP_KERNEL_HASHES section.
    HashTableOutsideSection {
        /// The area's GPA.
        base: u32,
        /// Its size.
        size: u32,
    },
}

impl QemuSnpRuleError {
    /// The rule this error breaks.
    pub fn rule(&self) -> &'static VmmRule {
        let i = match self {
            Self::BiosSize { .. } => 0,
            Self::FooterTable(_) => 1,
            Self::DuplicateEntry { .. } => 2,
            Self::NoMetadataEntry | Self::MetadataEntryTooShort { .. } => 3,
            Self::MetadataOutOfImage { .. } => 4,
            Self::Signature(_) => 5,
            Self::Length { .. } => 6,
            Self::Version(_) => 7,
            Self::SectionsDontFit { .. } => 8,
            Self::TooManySections(_) => 9,
            Self::SectionType { .. } => 10,
            Self::Misaligned { .. } => 11,
            Self::SectionInFirmware { .. } => 12,
            Self::SectionNotInLowRam { .. } => 13,
            Self::Overlap { .. } => 14,
            Self::NotOnePage { .. } => 15,
            Self::NoResetBlock | Self::ResetBlockTooShort { .. } | Self::ResetAddressZero => 16,
            Self::HashTableEntryTooShort { .. }
            | Self::HashTableWithoutSection { .. }
            | Self::HashesSectionWithoutTable { .. }
            | Self::HashTableTooSmall { .. }
            | Self::HashTableOutsideSection { .. } => 17,
        };
        &QEMU_SNP_RULES[i]
    }
}

fn entry_name(g: &Guid) -> &'static str {
    if *g == SEV_METADATA_GUID {
        "SEV metadata"
    } else if *g == SEV_ES_RESET_BLOCK_GUID {
        "SEV-ES reset block"
    } else {
        "SEV hash table"
    }
}

fn kind_name(code: u32) -> &'static str {
    match SevSectionType::from_code(code) {
        Some(k) => k.name(),
        None => "unknown",
    }
}

impl fmt::Display for QemuSnpRuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rule = self.rule();
        write!(f, "QEMU SNP rule {}: ", rule.id)?;
        match self {
            Self::BiosSize { len } => write!(
                f,
                "QEMU requires a -bios image of a non-zero multiple of 64 KiB up to 4 GiB, found {len:#x} bytes"
            ),
            Self::FooterTable(e) => write!(
                f,
                "QEMU finds the SEV entries only through the OVMF footer GUID table: {e}"
            ),
            Self::DuplicateEntry { guid, count } => write!(
                f,
                "the footer table has {count} {} entries ({guid}): QEMU and sev-snp-measure would read different ones",
                entry_name(guid)
            ),
            Self::NoMetadataEntry => write!(
                f,
                "the footer table has no SEV metadata entry ({SEV_METADATA_GUID}) (QEMU: \"Failed to locate SEV metadata header\")"
            ),
            Self::MetadataEntryTooShort { len } => write!(
                f,
                "the footer-table SEV metadata entry holds {len} bytes; QEMU reads a u32"
            ),
            Self::MetadataOutOfImage { from_end } => write!(
                f,
                "the SEV metadata entry {from_end:#x} puts the 16-byte ASEV header outside the image"
            ),
            Self::Signature(sig) => write!(
                f,
                "the SEV metadata signature is {sig:#010x}, not \"ASEV\" (QEMU ignores the table, then stops at launch)"
            ),
            Self::Length { length, available } => write!(
                f,
                "the SEV metadata length {length} is below 16 or past the {available} bytes to the end of the image (QEMU ignores the table)"
            ),
            Self::Version(v) => write!(
                f,
                "the SEV metadata version is {v}, not 1 (sev-snp-measure: \"Wrong SEV metadata version\")"
            ),
            Self::SectionsDontFit { length, count } => write!(
                f,
                "the SEV metadata length {length} does not cover its header and {count} sections of 12 bytes"
            ),
            Self::TooManySections(n) => write!(
                f,
                "the SEV metadata lists {n} sections, more than {MAX_SEV_SECTIONS}"
            ),
            Self::SectionType { index, code } => write!(
                f,
                "section {index} has type {code:#x}, not one of 1, 2, 3, 4, 0x10 (sev-snp-measure: \"{code} is not a valid SectionType\")"
            ),
            Self::Misaligned { index, section } => write!(
                f,
                "section {index} ({}) at {:#x}, {:#x} bytes: GPA and size must be non-zero multiples of 4 KiB (KVM: -EINVAL)",
                kind_name(section.section_type),
                section.gpa,
                section.size
            ),
            Self::SectionInFirmware {
                index,
                section,
                bios_base,
            } => write!(
                f,
                "section {index} ({}) [{:#x}, {:#x}) overlaps the -bios mapping from {bios_base:#x}, whose pages are already measured",
                kind_name(section.section_type),
                section.gpa,
                section.end()
            ),
            Self::SectionNotInLowRam { index, section } => write!(
                f,
                "section {index} ({}) [{:#x}, {:#x}) is not guest RAM: it must lie below {LOW_RAM_LIMIT:#x} and outside [{:#x}, {:#x}) (QEMU: \"Failed to get HVA for GPA\")",
                kind_name(section.section_type),
                section.gpa,
                section.end(),
                LEGACY_HOLE.base,
                LEGACY_HOLE.end()
            ),
            Self::Overlap { first, second } => write!(
                f,
                "sections {first} and {second} share pages: each page is handed to the AMD-SP once"
            ),
            Self::NotOnePage { index, kind, size } => write!(
                f,
                "section {index} ({kind}) is {size:#x} bytes, not one 4 KiB page: sev-snp-measure measures one page"
            ),
            Self::NoResetBlock => write!(
                f,
                "the footer table has no SEV-ES reset block entry ({SEV_ES_RESET_BLOCK_GUID}): QEMU cannot start the APs (\"failed to locate and/or save reset vector\")"
            ),
            Self::ResetBlockTooShort { len } => write!(
                f,
                "the SEV-ES reset block entry holds {len} bytes; QEMU reads a u32"
            ),
            Self::ResetAddressZero => write!(
                f,
                "the SEV-ES reset address is 0 (QEMU: \"SEV-ES reset address is zero\")"
            ),
            Self::HashTableEntryTooShort { len } => write!(
                f,
                "the SEV hash table entry holds {len} bytes; QEMU reads a u32 base and a u32 size"
            ),
            Self::HashTableWithoutSection { base } => write!(
                f,
                "the SEV hash table area at {base:#x} has no SNP_KERNEL_HASHES section: QEMU would not measure the hashes (sev-snp-measure: \"Kernel specified but OVMF metadata doesn't include SNP_KERNEL_HASHES section\")"
            ),
            Self::HashesSectionWithoutTable { index } => write!(
                f,
                "section {index} is SNP_KERNEL_HASHES but the footer table has no non-zero SEV hash table entry ({SEV_HASH_TABLE_GUID}) (QEMU: \"kernel specified but guest firmware has no hashes table GUID\")"
            ),
            Self::HashTableTooSmall { base, size } => write!(
                f,
                "the SEV hash table area at {base:#x} is {size:#x} bytes, less than QEMU's {PADDED_HASH_TABLE_SIZE}-byte table (QEMU: \"guest firmware hashes table area is invalid\")"
            ),
            Self::HashTableOutsideSection { base, size } => write!(
                f,
                "the SEV hash table area [{base:#x}, {:#x}) is not inside an SNP_KERNEL_HASHES section, where QEMU writes the table",
                u64::from(*base) + u64::from(*size)
            ),
        }?;
        if !rule.confirmed {
            write!(f, " (rule inferred, not confirmed from QEMU's source)")?;
        }
        Ok(())
    }
}

/// What an image that passes [`check_qemu_snp_rules`] tells an SNP VMM.
#[derive(Debug, Clone, Copy)]
pub struct SnpImage<'a> {
    /// The SEV metadata entry's value: the header's distance from the end of the image.
    pub metadata_from_end: u32,
    /// The header's offset in the image.
    pub metadata_offset: usize,
    /// The sections' bytes (a whole number of 12-byte sections).
    sections: &'a [u8],
    /// The APs' reset address.
    pub ap_reset_eip: u32,
    /// GPA and size of the kernel-hashes table area, if the image can measure a direct boot.
    pub hash_table: Option<(u32, u32)>,
    /// The end of the highest section: the guest needs at least this much RAM below 4 GiB.
    pub ram_needed: u64,
}

impl<'a> SnpImage<'a> {
    /// The sections in table order (the order the VMM measures them).
    pub fn sections(&self) -> impl Iterator<Item = SevSection> + Clone + 'a {
        decode_sections(self.sections)
    }
}

fn decode_sections(bytes: &[u8]) -> impl Iterator<Item = SevSection> + Clone + '_ {
    bytes
        .chunks_exact(ASEV_SECTION_SIZE)
        .filter_map(|c| read_at::<AsevSectionWire>(c, 0))
        .map(|w| SevSection::from_wire(&w))
}

fn u32_of(data: &[u8], at: usize) -> Option<u32> {
    data.get(at..at.checked_add(4)?)
        .and_then(|b| U32::read_from_bytes(b).ok())
        .map(U32::get)
}

/// Checks that upstream QEMU would launch `image` as the `-bios` of an `sev-snp-guest` and that
/// sev-snp-measure computes the digest QEMU's launch gets: every rule of [`QEMU_SNP_RULES`], in
/// that order; the first rule broken is returned (for per-section rules: the first section that
/// breaks it). Rules that depend on the launch (`-m`) are checked as far as the image decides
/// them: [`SnpImage::ram_needed`] says how much RAM the sections need.
///
/// Takes untrusted bytes; never panics.
pub fn check_qemu_snp_rules(image: &[u8]) -> Result<SnpImage<'_>, QemuSnpRuleError> {
    use QemuSnpRuleError as E;
    let len = u64::try_from(image.len()).unwrap_or(u64::MAX);
    if len == 0 || !len.is_multiple_of(0x1_0000) || len > FOUR_GIB {
        return Err(E::BiosSize { len });
    }
    let table = parse_footer_table(image).map_err(E::FooterTable)?;
    for guid in [
        SEV_METADATA_GUID,
        SEV_ES_RESET_BLOCK_GUID,
        SEV_HASH_TABLE_GUID,
    ] {
        let count = table.entries().filter(|e| e.guid == guid).count();
        if count > 1 {
            return Err(E::DuplicateEntry { guid, count });
        }
    }

    // The SEV metadata.
    let data = table.find(SEV_METADATA_GUID).ok_or(E::NoMetadataEntry)?;
    let from_end = u32_of(data, 0).ok_or(E::MetadataEntryTooShort { len: data.len() })?;
    let offset = usize::try_from(from_end)
        .ok()
        .and_then(|v| image.len().checked_sub(v))
        .ok_or(E::MetadataOutOfImage { from_end })?;
    let header = read_at::<AsevHeader>(image, offset).ok_or(E::MetadataOutOfImage { from_end })?;
    let signature = header.signature.get();
    if signature != ASEV_SIGNATURE {
        return Err(E::Signature(signature));
    }
    let length = header.length.get();
    if (length as usize) < ASEV_HEADER_SIZE || length > from_end {
        return Err(E::Length {
            length,
            available: from_end,
        });
    }
    let version = header.version.get();
    if version != ASEV_VERSION {
        return Err(E::Version(version));
    }
    let count = header.count.get();
    // A u32 times 12 plus 16 fits a u64.
    let needed = ASEV_HEADER_SIZE as u64 + ASEV_SECTION_SIZE as u64 * u64::from(count);
    if needed > u64::from(length) {
        return Err(E::SectionsDontFit { length, count });
    }
    if count > MAX_SEV_SECTIONS {
        return Err(E::TooManySections(count));
    }
    // needed <= length <= from_end, so the sections lie inside the image.
    let sections_bytes = usize::try_from(needed)
        .ok()
        .and_then(|n| image.get(offset.checked_add(ASEV_HEADER_SIZE)?..offset.checked_add(n)?))
        .ok_or(E::SectionsDontFit { length, count })?;
    let sections = || decode_sections(sections_bytes).enumerate();

    // Section rules, each over all sections in order.
    if let Some((index, s)) = sections().find(|(_, s)| s.kind().is_none()) {
        return Err(E::SectionType {
            index,
            code: s.section_type,
        });
    }
    let page = PAGE_SIZE;
    if let Some((index, section)) = sections().find(|(_, s)| {
        s.size == 0
            || !u64::from(s.gpa).is_multiple_of(page)
            || !u64::from(s.size).is_multiple_of(page)
    }) {
        return Err(E::Misaligned { index, section });
    }
    let bios_base = FOUR_GIB - len;
    if let Some((index, section)) = sections().find(|(_, s)| s.end() > bios_base) {
        return Err(E::SectionInFirmware {
            index,
            section,
            bios_base,
        });
    }
    if let Some((index, section)) = sections().find(|(_, s)| {
        s.end() > LOW_RAM_LIMIT
            || (u64::from(s.gpa) < LEGACY_HOLE.end() && s.end() > LEGACY_HOLE.base)
    }) {
        return Err(E::SectionNotInLowRam { index, section });
    }
    for (first, a) in sections() {
        if let Some((second, _)) = sections()
            .skip(first + 1)
            .find(|(_, b)| u64::from(a.gpa) < b.end() && u64::from(b.gpa) < a.end())
        {
            return Err(E::Overlap { first, second });
        }
    }
    for (index, s) in sections() {
        if let Some(
            kind @ (SevSectionType::SnpSecrets
            | SevSectionType::Cpuid
            | SevSectionType::SnpKernelHashes),
        ) = s.kind()
        {
            if u64::from(s.size) != page {
                return Err(E::NotOnePage {
                    index,
                    kind,
                    size: s.size,
                });
            }
        }
    }

    // The APs' reset block.
    let data = table.find(SEV_ES_RESET_BLOCK_GUID).ok_or(E::NoResetBlock)?;
    let ap_reset_eip = u32_of(data, 0).ok_or(E::ResetBlockTooShort { len: data.len() })?;
    if ap_reset_eip == 0 {
        return Err(E::ResetAddressZero);
    }

    // The kernel-hashes table.
    let hash_table = match table.find(SEV_HASH_TABLE_GUID) {
        None => None,
        Some(d) => {
            let short = E::HashTableEntryTooShort { len: d.len() };
            let base = u32_of(d, 0).ok_or(short)?;
            let size = u32_of(d, 4).ok_or(short)?;
            (base != 0).then_some((base, size))
        }
    };
    let hashes_section = |s: &SevSection| s.kind() == Some(SevSectionType::SnpKernelHashes);
    let first_hashes = sections().find(|(_, s)| hashes_section(s));
    match (hash_table, first_hashes) {
        (None, None) => {}
        (None, Some((index, _))) => return Err(E::HashesSectionWithoutTable { index }),
        (Some((base, _)), None) => return Err(E::HashTableWithoutSection { base }),
        (Some((base, size)), Some(_)) => {
            if u64::from(size) < PADDED_HASH_TABLE_SIZE {
                return Err(E::HashTableTooSmall { base, size });
            }
            let end = u64::from(base) + u64::from(size);
            if !sections().any(|(_, s)| {
                hashes_section(&s) && u64::from(base) >= u64::from(s.gpa) && end <= s.end()
            }) {
                return Err(E::HashTableOutsideSection { base, size });
            }
        }
    }

    Ok(SnpImage {
        metadata_from_end: from_end,
        metadata_offset: offset,
        sections: sections_bytes,
        ap_reset_eip,
        hash_table,
        ram_needed: sections().map(|(_, s)| s.end()).max().unwrap_or(0),
    })
}

/// Whether `eip` is an SEV-ES AP reset address td-shim's builder accepts: inside
/// [`AP_RESET_SEGMENT`], the real-mode code segment the APs start in.
pub const fn ap_reset_eip_ok(eip: u64) -> bool {
    AP_RESET_SEGMENT.contains_range(eip, 1)
}

#[cfg(test)]
mod tests;
