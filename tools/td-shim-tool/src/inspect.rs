//! `td-shim-tool inspect`: what a firmware image says about itself. Works on any image with an
//! OVMF-style footer table or a legacy TDX metadata pointer (OVMF/TDVF, upstream td-shim, ours);
//! for our own images it also lists the layout regions and the payload table. It also reports
//! whether the image passes the TDX loader rules of upstream QEMU and of Cloud Hypervisor
//! (`td_layout::metadata::check_qemu_rules`, `check_cloud_hypervisor_rules`) and QEMU's SEV-SNP
//! rules (`td_layout::sev::check_qemu_snp_rules`, with the SEV metadata it finds); with
//! `--check VMM`, breaking them is a refusal ([`Report::require`]).

use serde::Serialize;
use std::fmt::Write as _;
use td_layout::footer::{parse_footer_table, FooterError, FOOTER_GUID, TDX_METADATA_OFFSET_GUID};
use td_layout::guid::Guid;
use td_layout::layout::{self, FOUR_GIB, IMAGE_PAYLOAD, IMAGE_SIZE};
use td_layout::metadata::{
    check_cloud_hypervisor_rules, check_qemu_rules, parse_metadata, qemu_ignored_attributes,
    MetadataError, SectionType, ATTR_MR_EXTEND, ATTR_PAGE_AUG, CLOUD_HYPERVISOR_RULES, QEMU_RULES,
    QEMU_RULE_TD_HOB,
};
use td_layout::payload::{PayloadTable, PAYLOAD_TABLE_MAGIC};
use td_layout::sev::{
    check_qemu_snp_rules, SnpImage, QEMU_SNP_RULES, SEV_ES_RESET_BLOCK_GUID, SEV_HASH_TABLE_GUID,
    SEV_METADATA_GUID, SEV_SECRET_BLOCK_GUID,
};

/// Why an image was refused.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// Too small to be a firmware image.
    #[error("image is {0} bytes: too small to be a firmware image (at least 4096)")]
    TooSmall(usize),
    /// QEMU maps -bios images in 64 KiB blocks.
    #[error("image is {0} bytes, not a multiple of 64 KiB")]
    BadSize(usize),
    /// The footer table is malformed.
    #[error("footer table: {0}")]
    Footer(FooterError),
    /// The TDX metadata is missing or breaks a rule.
    #[error("TDX metadata: {0}")]
    Metadata(MetadataError),
    /// An image of our size and payload magic whose payload table is invalid.
    #[error("payload table: {0}")]
    PayloadTable(td_layout::payload::PayloadTableError),
    /// `--check VMM`: the image breaks a rule of that VMM's TDX loader (holds the message,
    /// which names the rule).
    #[error("{vmm}: {message}")]
    VmmRules {
        /// The VMM's name, as given to `--check`.
        vmm: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// A VMM whose TDX firmware-loading rules `inspect` checks (`--check VMM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Vmm {
    /// Upstream QEMU with `-object tdx-guest` and `-bios` (hw/i386/tdvf.c and friends): only
    /// BFV, CFV, TD_HOB and TempMem sections, found through the footer GUID table.
    QemuTdx,
    /// Cloud Hypervisor with TDX: section types 0-6, footer table or legacy pointer.
    CloudHypervisorTdx,
    /// Upstream QEMU with `-object sev-snp-guest` and `-bios` (target/i386/sev.c), with the
    /// digest sev-snp-measure predicts: the SEV metadata, the SEV-ES reset block and the
    /// kernel-hashes table, found through the footer GUID table.
    QemuSnp,
}

impl Vmm {
    /// The name used by `--check` and in the report.
    pub const fn name(self) -> &'static str {
        match self {
            Vmm::QemuTdx => "qemu-tdx",
            Vmm::CloudHypervisorTdx => "cloud-hypervisor-tdx",
            Vmm::QemuSnp => "qemu-snp",
        }
    }
}

/// Whether the image passes one VMM's loader rules.
#[derive(Debug, Serialize)]
pub struct VmmCheck {
    /// "qemu-tdx", "cloud-hypervisor-tdx" or "qemu-snp".
    pub vmm: &'static str,
    /// True when no rule is broken.
    pub passes: bool,
    /// The id of the first rule broken (see docs/image-format.md), if any.
    pub failed_rule: Option<&'static str>,
    /// What is wrong, naming the rule, if a rule is broken.
    pub message: Option<String>,
    /// The ids of the rules checked, in order.
    pub rules: Vec<&'static str>,
    /// The ids of the rules that are inferred, not confirmed from the VMM's source.
    pub unconfirmed_rules: Vec<&'static str>,
    /// Things the VMM does not refuse but handles differently than the image may expect
    /// (e.g. attribute bits QEMU ignores).
    pub notes: Vec<String>,
}

fn vmm_checks(image: &[u8]) -> Vec<VmmCheck> {
    let qemu_rules = || QEMU_RULES.iter().chain([&QEMU_RULE_TD_HOB]);
    let qemu = check_qemu_rules(image);
    let mut notes = Vec::new();
    if let Ok(offset) = qemu {
        // The sections QEMU read: the same descriptor as `parse_metadata` found through the
        // footer table (QEMU has no other way in).
        if let Ok(md) = parse_metadata(image) {
            if md.descriptor_offset() == offset {
                for (i, s) in md.sections().enumerate() {
                    let ignored = qemu_ignored_attributes(&s);
                    if ignored != 0 {
                        notes.push(format!(
                            "section {i} ({}): QEMU ignores attribute bits {ignored:#x} (it reads \
                             only MR.EXTEND; PAGE.AUG sections are still PAGE.ADDed)",
                            section_name(s.section_type)
                        ));
                    }
                }
            }
        }
    }
    let ch = check_cloud_hypervisor_rules(image);
    let snp = check_qemu_snp_rules(image);
    vec![
        VmmCheck {
            vmm: Vmm::QemuTdx.name(),
            passes: qemu.is_ok(),
            failed_rule: qemu.as_ref().err().map(|e| e.rule().id),
            message: qemu.as_ref().err().map(ToString::to_string),
            rules: qemu_rules().map(|r| r.id).collect(),
            unconfirmed_rules: qemu_rules()
                .filter(|r| !r.confirmed)
                .map(|r| r.id)
                .collect(),
            notes,
        },
        VmmCheck {
            vmm: Vmm::CloudHypervisorTdx.name(),
            passes: ch.is_ok(),
            failed_rule: ch.as_ref().err().map(|e| e.rule().id),
            message: ch.as_ref().err().map(ToString::to_string),
            rules: CLOUD_HYPERVISOR_RULES.iter().map(|r| r.id).collect(),
            unconfirmed_rules: CLOUD_HYPERVISOR_RULES
                .iter()
                .filter(|r| !r.confirmed)
                .map(|r| r.id)
                .collect(),
            notes: ch
                .map(|source| vec![format!("finds the metadata through the {}", source.name())])
                .unwrap_or_default(),
        },
        VmmCheck {
            vmm: Vmm::QemuSnp.name(),
            passes: snp.is_ok(),
            failed_rule: snp.as_ref().err().map(|e| e.rule().id),
            message: snp.as_ref().err().map(ToString::to_string),
            rules: QEMU_SNP_RULES.iter().map(|r| r.id).collect(),
            unconfirmed_rules: QEMU_SNP_RULES
                .iter()
                .filter(|r| !r.confirmed)
                .map(|r| r.id)
                .collect(),
            notes: snp.as_ref().map(snp_notes).unwrap_or_default(),
        },
    ]
}

fn snp_notes(snp: &SnpImage<'_>) -> Vec<String> {
    let mib = snp.ram_needed.div_ceil(1 << 20);
    let mut notes = vec![format!(
        "the SEV metadata sections need guest RAM up to {:#x} (-m {mib}M or more)",
        snp.ram_needed
    )];
    notes.push(match snp.hash_table {
        Some((base, size)) => format!(
            "measured direct boot: QEMU (kernel-hashes=on) writes the kernel, initrd and \
             command-line hashes at {base:#x} ({size:#x}-byte area)"
        ),
        None => "no measured direct boot: QEMU refuses -kernel with kernel-hashes=on for this \
                 image"
            .to_string(),
    });
    notes
}

/// The SEV metadata of an image that passes QEMU's SNP rules.
#[derive(Debug, Serialize)]
pub struct SevReport {
    /// The SEV metadata entry's value: the "ASEV" header's distance from the end of the image.
    pub metadata_from_end: u32,
    /// Offset of the header in the file.
    pub metadata_offset: usize,
    /// The sections, in the order the VMM measures them.
    pub sections: Vec<SevSectionReport>,
    /// The APs' SEV-ES reset address.
    pub ap_reset_eip: u32,
    /// GPA of the kernel-hashes table area, if the image can measure a direct boot.
    pub hash_table_gpa: Option<u32>,
    /// Its size.
    pub hash_table_size: Option<u32>,
}

/// One SEV metadata section.
#[derive(Debug, Serialize)]
pub struct SevSectionReport {
    /// Section type name (edk2's).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Guest-physical address.
    pub gpa: u32,
    /// Bytes.
    pub size: u32,
}

fn sev_report(snp: &SnpImage<'_>) -> SevReport {
    SevReport {
        metadata_from_end: snp.metadata_from_end,
        metadata_offset: snp.metadata_offset,
        sections: snp
            .sections()
            .map(|s| SevSectionReport {
                kind: s.kind().map_or("unknown", |k| k.name()),
                gpa: s.gpa,
                size: s.size,
            })
            .collect(),
        ap_reset_eip: snp.ap_reset_eip,
        hash_table_gpa: snp.hash_table.map(|(b, _)| b),
        hash_table_size: snp.hash_table.map(|(_, s)| s),
    }
}

fn section_name(code: u32) -> String {
    SectionType::from_code(code)
        .map(|t| t.name().to_string())
        .unwrap_or_else(|| format!("unknown({code})"))
}

/// One footer table entry.
#[derive(Debug, Serialize)]
pub struct FooterEntryReport {
    /// The GUID.
    pub guid: String,
    /// What the GUID means, if known.
    pub name: &'static str,
    /// The entry's data in hex.
    pub data: String,
}

/// One TDX metadata section.
#[derive(Debug, Serialize)]
pub struct SectionReport {
    /// Section type name (spec spelling).
    #[serde(rename = "type")]
    pub kind: String,
    /// Offset of the raw data in the image file.
    pub data_offset: u32,
    /// Bytes of raw data.
    pub raw_data_size: u32,
    /// Guest-physical address.
    pub memory_address: u64,
    /// Bytes of guest memory.
    pub memory_data_size: u64,
    /// Attribute bits.
    pub attributes: u32,
    /// Attribute names.
    pub attribute_names: Vec<&'static str>,
}

/// A layout region of our own images.
#[derive(Debug, Serialize)]
pub struct RegionReport {
    /// Region name.
    pub name: &'static str,
    /// First guest-physical address.
    pub base: u64,
    /// Size in bytes.
    pub size: u64,
}

/// One payload listed in the payload table.
#[derive(Debug, Serialize)]
pub struct PayloadReport {
    /// Payload kind.
    pub kind: &'static str,
    /// Offset from the payload region's start.
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
}

/// Everything `inspect` reports.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Image size in bytes.
    pub size: usize,
    /// Guest-physical address of the first byte (the image ends at 4 GiB).
    pub base: u64,
    /// Footer table entries, in walk order (absent if the image has none).
    pub footer: Option<Vec<FooterEntryReport>>,
    /// How the TDX metadata was found: "footer GUID table" or "legacy metadata pointer".
    pub metadata_source: &'static str,
    /// Offset of the TDVF descriptor in the file.
    pub descriptor_offset: usize,
    /// TDX metadata sections, in MRTD order.
    pub sections: Vec<SectionReport>,
    /// The SEV metadata, if the image passes QEMU's SEV-SNP rules (see `vmm_rules` otherwise).
    pub sev: Option<SevReport>,
    /// Our layout's regions, if the image is one of ours.
    pub regions: Option<Vec<RegionReport>>,
    /// Our payload table, if the image is one of ours.
    pub payloads: Option<Vec<PayloadReport>>,
    /// The enrolled secure-boot key, if the image is one of ours: {"enrolled", "algorithm",
    /// "key_hash", "min_svn", "error"} ("error" when the record is malformed).
    pub secure_boot: Option<crate::secure_boot::EnrolledReport>,
    /// Whether the image passes each VMM's loader rules: QEMU TDX, Cloud Hypervisor TDX, QEMU
    /// SEV-SNP.
    pub vmm_rules: Vec<VmmCheck>,
}

fn guid_name(g: &Guid) -> &'static str {
    if *g == FOOTER_GUID {
        "footer"
    } else if *g == TDX_METADATA_OFFSET_GUID {
        "tdx-metadata-offset"
    } else if *g == SEV_METADATA_GUID {
        "sev-metadata-offset"
    } else if *g == SEV_ES_RESET_BLOCK_GUID {
        "sev-es-reset-block"
    } else if *g == SEV_HASH_TABLE_GUID {
        "sev-hash-table"
    } else if *g == SEV_SECRET_BLOCK_GUID {
        "sev-secret-block"
    } else {
        "unknown"
    }
}

/// Parses and validates an image.
pub fn inspect(image: &[u8]) -> Result<Report, InspectError> {
    if image.len() < 4096 {
        return Err(InspectError::TooSmall(image.len()));
    }
    if !image.len().is_multiple_of(0x1_0000) {
        return Err(InspectError::BadSize(image.len()));
    }
    let footer = match parse_footer_table(image) {
        Ok(t) => Some(
            t.entries()
                .map(|e| FooterEntryReport {
                    guid: e.guid.to_string(),
                    name: guid_name(&e.guid),
                    data: hex(e.data),
                })
                .collect(),
        ),
        Err(FooterError::MissingFooterGuid) => None,
        Err(e) => return Err(InspectError::Footer(e)),
    };
    let md = parse_metadata(image).map_err(InspectError::Metadata)?;
    let sections = md
        .sections()
        .map(|s| SectionReport {
            kind: section_name(s.section_type),
            data_offset: s.data_offset,
            raw_data_size: s.raw_data_size,
            memory_address: s.memory_address,
            memory_data_size: s.memory_data_size,
            attributes: s.attributes,
            attribute_names: [(ATTR_MR_EXTEND, "MR.EXTEND"), (ATTR_PAGE_AUG, "PAGE.AUG")]
                .into_iter()
                .filter(|(bit, _)| s.attributes & bit != 0)
                .map(|(_, n)| n)
                .collect(),
        })
        .collect();
    let ours = image.len() as u64 == IMAGE_SIZE && image.starts_with(&PAYLOAD_TABLE_MAGIC);
    let (regions, payloads) = if ours {
        let start = IMAGE_PAYLOAD.image_offset() as usize;
        let table = PayloadTable::parse(&image[start..start + IMAGE_PAYLOAD.size as usize])
            .map_err(InspectError::PayloadTable)?;
        let mut regions: Vec<RegionReport> = layout::IMAGE_REGIONS
            .iter()
            .chain(&[
                layout::IMAGE_RESET_CODE,
                layout::IMAGE_FOOTER,
                layout::IMAGE_RESET_ENTRY,
            ])
            .chain(&[layout::TEMP_MEM])
            .chain(layout::TEMP_MEM_REGIONS.iter())
            .chain(&[layout::TD_HOB, layout::PAYLOAD_LOAD])
            .map(|r| RegionReport {
                name: r.name,
                base: r.base,
                size: r.size,
            })
            .collect();
        regions.sort_by_key(|r| r.base);
        let payloads = table
            .entries()
            .map(|e| PayloadReport {
                kind: e.kind.name(),
                offset: e.offset,
                size: e.size,
            })
            .collect();
        (Some(regions), Some(payloads))
    } else {
        (None, None)
    };
    let secure_boot = ours.then(|| {
        let at = td_layout::signed::enrolled_key_image_offset();
        crate::secure_boot::EnrolledReport::of(
            image
                .get(at..at + td_layout::signed::RECORD_SIZE)
                .unwrap_or_default(),
        )
    });
    Ok(Report {
        size: image.len(),
        base: FOUR_GIB - image.len() as u64,
        footer,
        metadata_source: md.source().name(),
        descriptor_offset: md.descriptor_offset(),
        sections,
        sev: check_qemu_snp_rules(image).ok().as_ref().map(sev_report),
        regions,
        payloads,
        secure_boot,
        vmm_rules: vmm_checks(image),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

impl Report {
    /// `--check VMM`: refuses the image if it breaks a rule of `vmm`'s TDX loader.
    pub fn require(&self, vmm: Vmm) -> Result<(), InspectError> {
        match self.vmm_rules.iter().find(|c| c.vmm == vmm.name()) {
            Some(c) if !c.passes => Err(InspectError::VmmRules {
                vmm: c.vmm,
                message: c.message.clone().unwrap_or_default(),
            }),
            _ => Ok(()),
        }
    }

    /// The human-readable form.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "image: {} bytes ({:#x}), mapped at [{:#x}, 4 GiB)",
            self.size, self.size, self.base
        );
        match &self.footer {
            Some(entries) => {
                let _ = writeln!(s, "footer table (walked from the end):");
                for e in entries {
                    let _ = writeln!(s, "  {} {:<20} {}", e.guid, e.name, e.data);
                }
            }
            None => {
                let _ = writeln!(s, "footer table: none");
            }
        }
        let _ = writeln!(
            s,
            "TDX metadata: descriptor at file offset {:#x} (found through the {}), {} sections, valid",
            self.descriptor_offset,
            self.metadata_source,
            self.sections.len()
        );
        let _ = writeln!(
            s,
            "  {:<13} {:>10} {:>10} {:>18} {:>12}  attributes",
            "type", "offset", "raw size", "address", "memory size"
        );
        for x in &self.sections {
            let _ = writeln!(
                s,
                "  {:<13} {:>#10x} {:>#10x} {:>#18x} {:>#12x}  {}",
                x.kind,
                x.data_offset,
                x.raw_data_size,
                x.memory_address,
                x.memory_data_size,
                x.attribute_names.join("|")
            );
        }
        match &self.sev {
            Some(sev) => {
                let _ = writeln!(
                    s,
                    "SEV metadata: \"ASEV\" at file offset {:#x} ({:#x} from the end), {} sections, \
                     measured in this order",
                    sev.metadata_offset,
                    sev.metadata_from_end,
                    sev.sections.len()
                );
                let _ = writeln!(s, "  {:<17} {:>12} {:>10}", "type", "address", "size");
                for x in &sev.sections {
                    let _ = writeln!(s, "  {:<17} {:>#12x} {:>#10x}", x.kind, x.gpa, x.size);
                }
                let eip = sev.ap_reset_eip;
                let _ = writeln!(
                    s,
                    "  SEV-ES AP reset address {eip:#x} (CS base {:#x}, IP {:#x})",
                    eip & 0xFFFF_0000,
                    eip & 0xFFFF
                );
                match (sev.hash_table_gpa, sev.hash_table_size) {
                    (Some(gpa), Some(size)) => {
                        let _ = writeln!(s, "  kernel-hashes table at {gpa:#x}, {size:#x} bytes");
                    }
                    _ => {
                        let _ = writeln!(s, "  no kernel-hashes table");
                    }
                }
            }
            None => {
                let _ = writeln!(
                    s,
                    "SEV metadata: none usable under SEV-SNP (see qemu-snp below)"
                );
            }
        }
        if let Some(regions) = &self.regions {
            let _ = writeln!(s, "layout (td-shim):");
            for r in regions {
                let _ = writeln!(
                    s,
                    "  {:<18} [{:#012x}, {:#012x})  {:>#10x} bytes",
                    r.name,
                    r.base,
                    r.base + r.size,
                    r.size
                );
            }
        }
        if let Some(payloads) = &self.payloads {
            let _ = writeln!(s, "payloads:");
            for p in payloads {
                let _ = writeln!(
                    s,
                    "  {:<6} at payload offset {:#x}, {} bytes",
                    p.kind, p.offset, p.size
                );
            }
        }
        if let Some(sb) = &self.secure_boot {
            let _ = writeln!(s, "{}", sb.to_text());
        }
        let _ = writeln!(
            s,
            "VMM loader rules (checked in software, not on a TDX or SEV-SNP host):"
        );
        for c in &self.vmm_rules {
            let verdict = match &c.message {
                None => format!(
                    "passes {} rules ({} inferred: {})",
                    c.rules.len(),
                    c.unconfirmed_rules.len(),
                    c.unconfirmed_rules.join(", ")
                ),
                Some(m) => format!("FAILS {m}"),
            };
            let _ = writeln!(s, "  {:<21} {verdict}", c.vmm);
            for n in &c.notes {
                let _ = writeln!(s, "  {:<21} note: {n}", "");
            }
        }
        s
    }
}
