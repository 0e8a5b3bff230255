//! `td-shim-tool build`: lays the firmware ELF's load segments, the payload table, the TDX
//! metadata and the SEV metadata into a firmware image that ends at 4 GiB. The same inputs give
//! the same bytes.
//!
//! One image serves TDX and SEV-SNP, as OVMF's do: the footer GUID table holds the TDX metadata
//! entry (walked first) and the SEV entries (metadata, the APs' SEV-ES reset address read from
//! the firmware's `sev_ap_reset_entry` symbol, the kernel-hashes table), see
//! docs/image-format.md.

use crate::elf_symbols::{find_global_symbol, SymbolError};
use crate::inspect::{inspect, Vmm};
use td_layout::footer::{
    write_footer_table, write_legacy_metadata_pointer, FooterEntry, FooterError,
    TDX_METADATA_OFFSET_GUID,
};
use td_layout::layout::{
    Region, FOOTER_TABLE_END, FW_CODE, FW_DATA, IMAGE_BASE, IMAGE_FIRMWARE, IMAGE_FOOTER,
    IMAGE_METADATA, IMAGE_PAYLOAD, IMAGE_SIZE, PAYLOAD_LOAD, RESET_VECTOR, SEV_METADATA_BASE,
};
use td_layout::metadata::{td_shim_sections, write_metadata, MetadataError, GUID_SIZE};
use td_layout::payload::{write_payload_table, PayloadKind, PayloadTableError};
use td_layout::sev::{
    ap_reset_eip_ok, check_qemu_snp_rules, td_shim_sev_sections, write_sev_metadata,
    SevMetadataError, AP_RESET_SEGMENT, SEV_ES_RESET_BLOCK_GUID, SEV_HASH_TABLE_BASE,
    SEV_HASH_TABLE_GUID, SEV_HASH_TABLE_SIZE, SEV_METADATA_FROM_END, SEV_METADATA_GUID,
};
use td_loader::elf::{ElfError, ElfFile, ElfType};

/// The firmware ELF's global symbol the APs start at under SEV-ES and SEV-SNP: a real-mode entry
/// in the reset code (td-shim `arch/reset.rs`). Its address is the SEV-ES reset block's value.
pub const SEV_AP_RESET_SYMBOL: &str = "sev_ap_reset_entry";

/// Why an image could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The firmware file is not a loadable ELF.
    #[error("firmware: {0}")]
    FirmwareElf(ElfError),
    /// The firmware ELF is position-independent; it must be linked at fixed addresses.
    #[error(
        "firmware: the ELF must be a fixed-address executable (ET_EXEC), not position-independent"
    )]
    FirmwareNotFixed,
    /// A firmware segment's bytes fall outside the image's firmware region.
    #[error("firmware: segment {index} at [{base:#x}, {end:#x}) lies outside the firmware region [{:#x}, {:#x})", IMAGE_FIRMWARE.base, IMAGE_FIRMWARE.end())]
    SegmentOutsideFirmware {
        /// Segment index among the load segments.
        index: usize,
        /// First load (physical) address.
        base: u64,
        /// One past the last.
        end: u64,
    },
    /// A firmware segment overlaps the footer area the tool writes.
    #[error("firmware: segment {index} overlaps the footer area [{:#x}, {:#x})", IMAGE_FOOTER.base, IMAGE_FOOTER.end())]
    SegmentOverlapsFooter {
        /// Segment index.
        index: usize,
    },
    /// Two firmware segments load to the same image bytes.
    #[error("firmware: segments {first} and {second} overlap in the image")]
    SegmentsOverlap {
        /// First segment index.
        first: usize,
        /// Second segment index.
        second: usize,
    },
    /// A segment that runs from RAM is linked outside the firmware's RAM regions.
    #[error("firmware: segment {index} runs at [{base:#x}, {end:#x}), outside fw-code [{:#x}, {:#x}) and fw-data [{:#x}, {:#x})", FW_CODE.base, FW_CODE.end(), FW_DATA.base, FW_DATA.end())]
    SegmentOutsideRam {
        /// Segment index.
        index: usize,
        /// First run-time address.
        base: u64,
        /// One past the last.
        end: u64,
    },
    /// A segment that runs in place in the image has zero-fill the image cannot hold.
    #[error("firmware: segment {index} runs in place but has {extra} bytes of zero-fill")]
    ZeroFillInImage {
        /// Segment index.
        index: usize,
        /// Bytes of memory size beyond file size.
        extra: u64,
    },
    /// No segment holds the reset vector.
    #[error("firmware: no load segment holds the reset vector at {RESET_VECTOR:#x}")]
    NoResetVector,
    /// The firmware ELF has no usable `sev_ap_reset_entry` symbol.
    #[error(
        "firmware: the global symbol `{SEV_AP_RESET_SYMBOL}` (the APs' SEV-ES reset entry): {0}"
    )]
    ApResetSymbol(SymbolError),
    /// `sev_ap_reset_entry` is outside the real-mode reset segment.
    #[error(
        "firmware: `{SEV_AP_RESET_SYMBOL}` is at {addr:#x}, not in the last 64 KiB [{:#x}, 4 GiB): \
         SEV-ES/SNP APs start there in real mode with CS base 0xFFFF0000", AP_RESET_SEGMENT.base
    )]
    ApResetOutsideSegment {
        /// The symbol's value.
        addr: u64,
    },
    /// `sev_ap_reset_entry` is not in bytes the image holds at their run address.
    #[error("firmware: `{SEV_AP_RESET_SYMBOL}` at {addr:#x} is not in a load segment that runs in place in the image")]
    ApResetNotInImage {
        /// The symbol's value.
        addr: u64,
    },
    /// The payload is not a loadable ELF.
    #[error("payload: {0}")]
    PayloadElf(ElfError),
    /// The payload does not fit the payload region of the image.
    #[error("payload: {0}")]
    PayloadTable(PayloadTableError),
    /// The loaded payload would not fit its load region.
    #[error("payload: it spans {span:#x} bytes when loaded, more than the {:#x}-byte load region", PAYLOAD_LOAD.size)]
    PayloadTooLargeToLoad {
        /// Bytes from the lowest to the highest loaded address.
        span: u64,
    },
    /// The kernel is not a bzImage the firmware would boot.
    #[error("kernel: {0}")]
    Kernel(td_loader::linux::LinuxError),
    /// The command line is longer than the kernel accepts, or holds a NUL.
    #[error("cmdline: {len} bytes (the kernel accepts {max}), or it contains a NUL byte")]
    BadCmdline {
        /// Its length.
        len: usize,
        /// The kernel's `cmdline_size`.
        max: u32,
    },
    /// Writing the TDX metadata failed.
    #[error("metadata: {0}")]
    Metadata(MetadataError),
    /// Writing the SEV metadata failed.
    #[error("SEV metadata: {0}")]
    SevMetadata(SevMetadataError),
    /// Writing the footer table failed.
    #[error("footer: {0}")]
    Footer(FooterError),
    /// The image built does not pass `inspect` (a bug in the tool).
    #[error("the built image does not validate: {0}")]
    SelfCheck(String),
}

fn image_range(region: &Region) -> std::ops::Range<usize> {
    let start = region.image_offset() as usize;
    start..start + region.size as usize
}

/// What the image boots.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    /// An ELF executable, entered with the firmware's hand-off.
    Elf(&'a [u8]),
    /// A Linux bzImage with an optional initrd and command line.
    Linux {
        /// The bzImage.
        kernel: &'a [u8],
        /// The initrd.
        initrd: Option<&'a [u8]>,
        /// The command line (no NUL).
        cmdline: Option<&'a str>,
    },
}

/// Builds an image from the firmware ELF and the payload.
pub fn build_image(firmware: &[u8], payload: Payload<'_>) -> Result<Vec<u8>, BuildError> {
    let mut image = vec![0u8; IMAGE_SIZE as usize];
    let in_place = place_firmware(&mut image, firmware)?;
    let ap_reset = sev_ap_reset_address(firmware, &in_place)?;
    let region = &mut image[image_range(&IMAGE_PAYLOAD)];
    match payload {
        Payload::Elf(elf) => {
            // Load the payload as the firmware will, so an image never carries a payload the
            // firmware would refuse (e.g. a fixed-address ELF linked elsewhere).
            let payload_elf = ElfFile::parse(elf).map_err(BuildError::PayloadElf)?;
            let (_, span) = payload_elf.image_span();
            if span > PAYLOAD_LOAD.size {
                return Err(BuildError::PayloadTooLargeToLoad { span });
            }
            payload_elf
                .load(&mut vec![0u8; span as usize], PAYLOAD_LOAD.base)
                .map_err(BuildError::PayloadElf)?;
            write_payload_table(region, &[(PayloadKind::Elf, elf)])
        }
        Payload::Linux {
            kernel,
            initrd,
            cmdline,
        } => {
            // The same checks the firmware makes before it boots the kernel.
            let bz = td_loader::linux::parse(kernel).map_err(BuildError::Kernel)?;
            let mut blobs = vec![(PayloadKind::Kernel, kernel)];
            if let Some(initrd) = initrd {
                blobs.push((PayloadKind::Initrd, initrd));
            }
            if let Some(cmdline) = cmdline.filter(|c| !c.is_empty()) {
                if cmdline.len() > bz.cmdline_size() as usize || cmdline.contains('\0') {
                    return Err(BuildError::BadCmdline {
                        len: cmdline.len(),
                        max: bz.cmdline_size(),
                    });
                }
                blobs.push((PayloadKind::Cmdline, cmdline.as_bytes()));
            }
            write_payload_table(region, &blobs)
        }
    }
    .map_err(BuildError::PayloadTable)?;

    let metadata_page = &mut image[image_range(&IMAGE_METADATA)];
    write_metadata(&td_shim_sections(), metadata_page).map_err(BuildError::Metadata)?;
    // The SEV metadata follows in the same page (td-layout checks they do not meet).
    let sev_at = (SEV_METADATA_BASE - IMAGE_METADATA.base) as usize;
    write_sev_metadata(&td_shim_sev_sections(), &mut metadata_page[sev_at..])
        .map_err(BuildError::SevMetadata)?;
    let descriptor = IMAGE_METADATA.image_offset() + GUID_SIZE as u64;
    let from_end = (IMAGE_SIZE - descriptor) as u32;
    let mut hash_table = [0u8; 8];
    hash_table[..4].copy_from_slice(&(SEV_HASH_TABLE_BASE as u32).to_le_bytes());
    hash_table[4..].copy_from_slice(&(SEV_HASH_TABLE_SIZE as u32).to_le_bytes());
    // Walk order: the TDX entry first (next to the footer), then the SEV entries.
    let table_len = write_footer_table(
        &mut image,
        &[
            FooterEntry {
                guid: TDX_METADATA_OFFSET_GUID,
                data: &from_end.to_le_bytes(),
            },
            FooterEntry {
                guid: SEV_METADATA_GUID,
                data: &SEV_METADATA_FROM_END.to_le_bytes(),
            },
            FooterEntry {
                guid: SEV_ES_RESET_BLOCK_GUID,
                data: &ap_reset.to_le_bytes(),
            },
            FooterEntry {
                guid: SEV_HASH_TABLE_GUID,
                data: &hash_table,
            },
        ],
    )
    .map_err(BuildError::Footer)?;
    // The footer area is reserved for the tool; the table must stay inside it.
    if FOOTER_TABLE_END - (table_len as u64) < IMAGE_FOOTER.base {
        return Err(BuildError::SelfCheck(format!(
            "footer table of {table_len} bytes exceeds the footer area"
        )));
    }
    write_legacy_metadata_pointer(&mut image, descriptor as u32).map_err(BuildError::Footer)?;

    // The image must validate, and load under both VMMs' TDX rules (QEMU: BFV, CFV, TD_HOB and
    // TempMem only, through the footer table; Cloud Hypervisor: also through the legacy pointer)
    // and under QEMU's SEV-SNP rules, with the measured direct boot possible.
    let report = inspect(&image).map_err(|e| BuildError::SelfCheck(e.to_string()))?;
    for vmm in [Vmm::QemuTdx, Vmm::CloudHypervisorTdx, Vmm::QemuSnp] {
        report
            .require(vmm)
            .map_err(|e| BuildError::SelfCheck(e.to_string()))?;
    }
    let snp = check_qemu_snp_rules(&image).map_err(|e| BuildError::SelfCheck(e.to_string()))?;
    if snp.hash_table.is_none() || snp.ap_reset_eip != ap_reset {
        return Err(BuildError::SelfCheck(
            "the SEV entries do not read back as written".into(),
        ));
    }
    Ok(image)
}

/// The APs' SEV-ES reset address: the firmware's global `sev_ap_reset_entry`, which must lie in
/// the real-mode reset segment (the last 64 KiB) and in a segment placed in the image at its
/// run address (`in_place`: the image ranges of such segments).
fn sev_ap_reset_address(firmware: &[u8], in_place: &[(u64, u64)]) -> Result<u32, BuildError> {
    let sym =
        find_global_symbol(firmware, SEV_AP_RESET_SYMBOL).map_err(BuildError::ApResetSymbol)?;
    let addr = sym.value;
    if !ap_reset_eip_ok(addr) {
        return Err(BuildError::ApResetOutsideSegment { addr });
    }
    if !in_place.iter().any(|&(b, e)| b <= addr && addr < e) {
        return Err(BuildError::ApResetNotInImage { addr });
    }
    u32::try_from(addr).map_err(|_| BuildError::ApResetOutsideSegment { addr })
}

// Copies each load segment's file bytes to its load (physical) address in the image. Returns
// the image ranges of the segments that run in place (the reset code and entry).
fn place_firmware(image: &mut [u8], firmware: &[u8]) -> Result<Vec<(u64, u64)>, BuildError> {
    let elf = ElfFile::parse(firmware).map_err(BuildError::FirmwareElf)?;
    if elf.elf_type() != ElfType::Executable {
        return Err(BuildError::FirmwareNotFixed);
    }
    let mut placed: Vec<(usize, u64, u64)> = Vec::new();
    let mut in_place: Vec<(u64, u64)> = Vec::new();
    let mut reset_vector = false;
    for (index, seg) in elf.load_segments().enumerate() {
        let filesz = seg.data.len() as u64;
        let vend = seg.vaddr.saturating_add(seg.memsz);
        let in_ram = |r: &Region| r.contains_range(seg.vaddr, seg.memsz);
        if filesz == 0 {
            // Zero-fill only (.bss): must run from the firmware's RAM.
            if seg.memsz > 0 && !in_ram(&FW_DATA) {
                return Err(BuildError::SegmentOutsideRam {
                    index,
                    base: seg.vaddr,
                    end: vend,
                });
            }
            continue;
        }
        let end = seg.paddr.saturating_add(filesz);
        if !IMAGE_FIRMWARE.contains_range(seg.paddr, filesz) {
            return Err(BuildError::SegmentOutsideFirmware {
                index,
                base: seg.paddr,
                end,
            });
        }
        if seg.paddr < IMAGE_FOOTER.end() && IMAGE_FOOTER.base < end {
            return Err(BuildError::SegmentOverlapsFooter { index });
        }
        if seg.vaddr == seg.paddr {
            if seg.memsz != filesz {
                return Err(BuildError::ZeroFillInImage {
                    index,
                    extra: seg.memsz.saturating_sub(filesz),
                });
            }
        } else if !in_ram(&FW_CODE) && !in_ram(&FW_DATA) {
            return Err(BuildError::SegmentOutsideRam {
                index,
                base: seg.vaddr,
                end: vend,
            });
        }
        if let Some(&(first, _, _)) = placed.iter().find(|&&(_, b, e)| seg.paddr < e && b < end) {
            return Err(BuildError::SegmentsOverlap {
                first,
                second: index,
            });
        }
        placed.push((index, seg.paddr, end));
        if seg.vaddr == seg.paddr {
            in_place.push((seg.paddr, end));
        }
        if seg.vaddr == seg.paddr && seg.paddr <= RESET_VECTOR && RESET_VECTOR + 16 <= end {
            reset_vector = true;
        }
        let at = (seg.paddr - IMAGE_BASE) as usize;
        image[at..at + seg.data.len()].copy_from_slice(seg.data);
    }
    if !reset_vector {
        return Err(BuildError::NoResetVector);
    }
    Ok(in_place)
}
