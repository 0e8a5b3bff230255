//! `td-shim-tool inspect`: what a firmware image says about itself. Works on any image with an
//! OVMF-style footer table or a legacy TDX metadata pointer (OVMF/TDVF, upstream td-shim, ours);
//! for our own images it also lists the layout regions and the payload table. It also reports
//! whether the image passes the TDX loader rules of upstream QEMU and of Cloud Hypervisor
//! (`td_layout::metadata::check_qemu_rules`, `check_cloud_hypervisor_rules`); with
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
}

impl Vmm {
    /// The name used by `--check` and in the report.
    pub const fn name(self) -> &'static str {
        match self {
            Vmm::QemuTdx => "qemu-tdx",
            Vmm::CloudHypervisorTdx => "cloud-hypervisor-tdx",
        }
    }
}

/// Whether the image passes one VMM's TDX loader rules.
#[derive(Debug, Serialize)]
pub struct VmmCheck {
    /// "qemu-tdx" or "cloud-hypervisor-tdx".
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
    ]
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
    /// Our layout's regions, if the image is one of ours.
    pub regions: Option<Vec<RegionReport>>,
    /// Our payload table, if the image is one of ours.
    pub payloads: Option<Vec<PayloadReport>>,
    /// Whether the image passes each VMM's TDX loader rules: QEMU, then Cloud Hypervisor.
    pub vmm_rules: Vec<VmmCheck>,
}

fn guid_name(g: &Guid) -> &'static str {
    if *g == FOOTER_GUID {
        "footer"
    } else if *g == TDX_METADATA_OFFSET_GUID {
        "tdx-metadata-offset"
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
    Ok(Report {
        size: image.len(),
        base: FOUR_GIB - image.len() as u64,
        footer,
        metadata_source: md.source().name(),
        descriptor_offset: md.descriptor_offset(),
        sections,
        regions,
        payloads,
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
        let _ = writeln!(
            s,
            "VMM TDX loader rules (checked in software, not on a TDX host):"
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
