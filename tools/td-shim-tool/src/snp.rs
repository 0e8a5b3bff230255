//! AMD SEV-SNP (and SEV-ES, SEV) launch digests of OVMF-style firmware images, computed on the
//! host before any guest runs: what the attestation report's MEASUREMENT will be
//! (docs/sev-measurement.md).
//!
//! The image tells the VMM what to do through its footer GUID table ([`metadata`]): the "ASEV"
//! SEV metadata sections, the APs' reset EIP, where the kernel-hashes table goes. For
//! `--mode snp` the digest is the chain of SHA-384 PAGE_INFO updates ([`digest`]) over, in
//! this order (as QEMU/KVM hand the pages to the AMD-SP):
//!
//! 1. the firmware image as NORMAL pages, ending at 4 GiB;
//! 2. the metadata sections in table order, each as its type and the VMM say
//!    ([`measurement_of`]), the kernel-hashes page ([`hashes`]) filled for a direct boot;
//! 3. one VMSA page per vCPU ([`vmsa`]): the BSP, then the APs.
//!
//! The answers are sev-snp-measure's (v0.0.13) for the same arguments: its golden vectors are
//! unit tests here, and tests/snp_differential.rs compares against it on random launches.
//! Untrusted images give an [`SnpError`], never a panic.

pub mod cli;
pub mod digest;
pub mod hashes;
pub mod metadata;
pub mod refvals;
pub mod report;
pub mod verify;
pub mod vmsa;

use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::Path;

use crate::files::{self, FileError, Limit};
use digest::{LaunchDigest, PageType, PAGE_SIZE};
use hashes::KernelHashes;
use metadata::{Section, SectionType, SevFooter};
use td_layout::footer::FooterError;
pub use vmsa::{vcpu_sig, vcpu_type_sig, VmmType, VCPU_TYPES};

/// Which digest to compute (sev-snp-measure's `--mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// SEV-SNP: the launch digest, SHA-384 (48 bytes).
    #[default]
    Snp,
    /// SEV-SNP, the firmware pages only: the value to seed [`LaunchParams::ovmf_hash`] with.
    SnpOvmfHash,
    /// SEV-ES: SHA-256 of the firmware, the padded hashes table, the VMSAs (GCTX.LD before
    /// LAUNCH_MEASURE's HMAC).
    SevEs,
    /// SEV: SHA-256 of the firmware and the padded hashes table.
    Sev,
}

impl Mode {
    /// The name used by the CLI and in reports (sev-snp-measure's).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Snp => "snp",
            Self::SnpOvmfHash => "snp:ovmf-hash",
            Self::SevEs => "seves",
            Self::Sev => "sev",
        }
    }
}

/// Everything a launch digest depends on besides the firmware image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchParams {
    /// Which digest.
    pub mode: Mode,
    /// vCPUs (QEMU's `-smp`); at least 1 for SNP and SEV-ES.
    pub vcpus: u32,
    /// The vCPUs' CPUID signature ([`vcpu_type_sig`]); only QEMU puts it in the VMSA.
    pub vcpu_sig: u32,
    /// The VMM.
    pub vmm: VmmType,
    /// SEV_FEATURES of the VMSAs for SNP (QEMU on Linux >= 6.8: 0x1). Ignored otherwise.
    pub guest_features: u64,
    /// The direct boot's hashes (QEMU `-kernel` with `kernel-hashes=on`), if any.
    pub kernel_hashes: Option<KernelHashes>,
    /// For SNP: the digest after the firmware pages, instead of measuring them.
    pub ovmf_hash: Option<[u8; 48]>,
}

impl Default for LaunchParams {
    fn default() -> Self {
        Self {
            mode: Mode::Snp,
            vcpus: 1,
            vcpu_sig: vcpu_sig(23, 1, 2),
            vmm: VmmType::Qemu,
            guest_features: 1,
            kernel_hashes: None,
            ovmf_hash: None,
        }
    }
}

/// Why a launch digest could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnpError {
    /// The image cannot be mapped below 4 GiB as whole pages.
    #[error("the image is {len} bytes: not a whole number of 4 KiB pages between 4 KiB and 4 GiB")]
    ImageSize {
        /// Its length.
        len: usize,
    },
    /// No valid OVMF footer GUID table (so no SEV metadata).
    #[error("no SEV metadata: the image has no valid OVMF footer GUID table ({0})")]
    NoFooterTable(FooterError),
    /// A footer entry is too short for its data.
    #[error("the footer table's {entry} entry has {len} data bytes, fewer than {need}")]
    ShortFooterEntry {
        /// Which entry.
        entry: &'static str,
        /// Its data bytes.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// The footer table has no SEV metadata entry.
    #[error(
        "no SEV metadata: the footer table has no SEV metadata entry \
         (dc886566-984a-4798-a75e-5585a7bf67cc); the image cannot be launched as an SEV-SNP guest"
    )]
    NoSevMetadata,
    /// The SEV metadata offset points outside the image.
    #[error("the SEV metadata offset {offset:#x} (from the end) points outside the image")]
    MetadataOutOfBounds {
        /// The offset from the end of the image.
        offset: u32,
    },
    /// The metadata does not start with "ASEV".
    #[error("the SEV metadata's signature is {0:#010x}, not \"ASEV\"")]
    BadMetadataSignature(u32),
    /// The metadata version is not 1.
    #[error("the SEV metadata's version is {0}, not 1")]
    UnsupportedMetadataVersion(u32),
    /// More sections than [`metadata::MAX_SECTIONS`].
    #[error("the SEV metadata lists {0} sections, more than {max}", max = metadata::MAX_SECTIONS)]
    TooManySections(u32),
    /// The metadata length does not cover its sections.
    #[error("the SEV metadata's length {length} does not cover its {count} sections")]
    MetadataLengthTooShort {
        /// The stored length.
        length: u32,
        /// The stored section count.
        count: u32,
    },
    /// The sections cover more than [`metadata::MAX_SECTION_BYTES`].
    #[error(
        "the SEV metadata sections cover {total:#x} bytes, more than {max:#x}",
        max = metadata::MAX_SECTION_BYTES
    )]
    SectionsTooLarge {
        /// Bytes covered.
        total: u64,
    },
    /// A section type no VMM knows.
    #[error("SEV metadata section {index} has unknown type {kind:#x}")]
    UnknownSectionType {
        /// Its index.
        index: usize,
        /// Its type.
        kind: u32,
    },
    /// A kernel was given but the metadata has no kernel-hashes section.
    #[error(
        "a kernel was given but the SEV metadata has no SNP_KERNEL_HASHES section: this \
         firmware (e.g. OvmfPkgX64) cannot measure a direct boot; use an AmdSevX64 build"
    )]
    KernelWithoutHashesSection,
    /// A kernel was given but the footer has no hashes-table entry.
    #[error(
        "a kernel was given but the footer table has no SEV hash table entry \
         (7255371f-3a3b-4b04-927b-1da6efa8d454): the firmware cannot measure a direct boot"
    )]
    KernelWithoutHashTable,
    /// The kernel-hashes section is not one page.
    #[error("the SNP_KERNEL_HASHES section is {size:#x} bytes, not one 4 KiB page")]
    HashesSectionSize {
        /// Its size.
        size: u32,
    },
    /// The table does not fit in its page at that offset.
    #[error("the kernel-hashes table at page offset {offset:#x} runs past the end of its page")]
    HashTableCrossesPage {
        /// Its offset in the page.
        offset: usize,
    },
    /// More than one vCPU but no SEV-ES reset block for the APs.
    #[error(
        "{vcpus} vCPUs but the footer table has no SEV-ES reset block \
         (00f771de-1a7e-4fcb-890e-68c77e2fb44e) to start the APs at"
    )]
    NoResetBlock {
        /// The vCPUs asked for.
        vcpus: u32,
    },
    /// Page digests computed ahead do not match the image (a caller's error).
    #[error("the precomputed page digests do not cover the image")]
    PageDigestsMismatch,
    /// No vCPUs.
    #[error("at least one vCPU is needed")]
    NoVcpus,
}

/// How the VMM hands a section's pages to the AMD-SP (the PAGE_TYPE, or `Kernel hashes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measured {
    /// Pages of this type, contents not measured.
    As(PageType),
    /// The kernel-hashes page, NORMAL, with the table in it.
    HashesPage,
}

/// How `vmm` measures a section of type `kind` (`with_kernel`: a direct boot's hashes given).
pub const fn measurement_of(kind: SectionType, vmm: VmmType, with_kernel: bool) -> Measured {
    match kind {
        SectionType::SnpSecMem => match vmm {
            VmmType::Gce => Measured::As(PageType::Unmeasured),
            VmmType::Qemu | VmmType::Ec2 => Measured::As(PageType::Zero),
        },
        SectionType::SnpSecrets => Measured::As(PageType::Secrets),
        SectionType::Cpuid => Measured::As(PageType::Cpuid),
        SectionType::SvsmCaa => Measured::As(PageType::Zero),
        SectionType::SnpKernelHashes if with_kernel => Measured::HashesPage,
        SectionType::SnpKernelHashes => Measured::As(PageType::Zero),
    }
}

/// The firmware's GPA: it ends at 4 GiB. Refuses what cannot be whole pages there.
pub fn firmware_gpa(image: &[u8]) -> Result<u64, SnpError> {
    let len = image.len();
    if len == 0 || !len.is_multiple_of(PAGE_SIZE) || len as u64 > 1 << 32 {
        return Err(SnpError::ImageSize { len });
    }
    Ok((1u64 << 32) - len as u64)
}

fn sections_of(image: &[u8], footer: &SevFooter) -> Result<Vec<Section>, SnpError> {
    let offset = footer.metadata_offset.ok_or(SnpError::NoSevMetadata)?;
    metadata::read_sections(image, offset)
}

fn ap_eip(footer: Option<&SevFooter>, vcpus: u32) -> Result<u32, SnpError> {
    match footer.and_then(|f| f.ap_reset_eip) {
        Some(eip) => Ok(eip),
        // Only the APs need it.
        None if vcpus <= 1 => Ok(0),
        None => Err(SnpError::NoResetBlock { vcpus }),
    }
}

/// The VMSA hashes of a launch's vCPUs: (BSP, each AP).
fn vmsa_hashes(eip: u32, p: &LaunchParams, features: u64) -> ([u8; 48], [u8; 48]) {
    let bsp = vmsa::vmsa_hash(vmsa::BSP_EIP, true, p.vmm, p.vcpu_sig, features);
    let ap = vmsa::vmsa_hash(eip, false, p.vmm, p.vcpu_sig, features);
    (bsp, ap)
}

/// The launch digest of `image` launched with `params`: 48 bytes for SNP, 32 for SEV-ES and
/// SEV.
pub fn compute(image: &[u8], params: &LaunchParams) -> Result<Vec<u8>, SnpError> {
    compute_with(image, params, None)
}

/// [`compute`] with the image's page digests computed ahead ([`digest::page_digests`] of
/// `image`), e.g. on another thread while the kernel and initrd were hashed. `None`: computed
/// here.
pub fn compute_with(
    image: &[u8],
    params: &LaunchParams,
    image_pages: Option<&[[u8; 48]]>,
) -> Result<Vec<u8>, SnpError> {
    if image_pages.is_some_and(|d| d.len() != image.len().div_ceil(PAGE_SIZE)) {
        return Err(SnpError::PageDigestsMismatch);
    }
    match params.mode {
        Mode::Snp => snp(image, params, image_pages).map(|d| d.to_vec()),
        Mode::SnpOvmfHash => {
            let mut ld = LaunchDigest::new();
            update_image(&mut ld, image, image_pages)?;
            Ok(ld.value().to_vec())
        }
        Mode::SevEs | Mode::Sev => sev(image, params),
    }
}

/// The image's pages as NORMAL pages at its GPA, from precomputed digests if given.
fn update_image(
    ld: &mut LaunchDigest,
    image: &[u8],
    image_pages: Option<&[[u8; 48]]>,
) -> Result<(), SnpError> {
    let gpa = firmware_gpa(image)?;
    match image_pages {
        Some(d) => ld.update_hashed_pages(gpa, d),
        None => ld.update_normal_pages(gpa, image),
    }
    Ok(())
}

fn snp(
    image: &[u8],
    p: &LaunchParams,
    image_pages: Option<&[[u8; 48]]>,
) -> Result<[u8; 48], SnpError> {
    let mut ld = match p.ovmf_hash {
        Some(seed) => LaunchDigest::from_seed(seed),
        None => {
            let mut ld = LaunchDigest::new();
            update_image(&mut ld, image, image_pages)?;
            ld
        }
    };
    let footer = metadata::read_footer(image)?;
    let sections = sections_of(image, &footer)?;
    if p.vcpus == 0 {
        return Err(SnpError::NoVcpus);
    }
    let eip = ap_eip(Some(&footer), p.vcpus)?;
    let hashes_page = match &p.kernel_hashes {
        None => None,
        Some(h) => {
            if !sections
                .iter()
                .any(|s| s.kind == SectionType::SnpKernelHashes)
            {
                return Err(SnpError::KernelWithoutHashesSection);
            }
            let (gpa, _) = footer.hash_table.ok_or(SnpError::KernelWithoutHashTable)?;
            Some(h.page(gpa as usize & (PAGE_SIZE - 1))?)
        }
    };
    let with_kernel = hashes_page.is_some();
    // EC2 hands the CPUID pages over after all the other sections.
    let deferred = |s: &Section| p.vmm == VmmType::Ec2 && s.kind == SectionType::Cpuid;
    let in_order = sections.iter().filter(|s| !deferred(s));
    for s in in_order.chain(sections.iter().filter(|s| deferred(s))) {
        let gpa = u64::from(s.gpa);
        match measurement_of(s.kind, p.vmm, with_kernel) {
            Measured::As(t @ (PageType::Secrets | PageType::Cpuid)) => {
                ld.update_unmeasured_pages(t, gpa, PAGE_SIZE as u64)
            }
            Measured::As(t) => ld.update_unmeasured_pages(t, gpa, u64::from(s.size)),
            Measured::HashesPage => {
                if s.size as usize != PAGE_SIZE {
                    return Err(SnpError::HashesSectionSize { size: s.size });
                }
                if let Some(page) = &hashes_page {
                    ld.update_normal_pages(gpa, &page[..]);
                }
            }
        }
    }
    let (bsp, ap) = vmsa_hashes(eip, p, p.guest_features);
    ld.update_vmsa(&bsp);
    for _ in 1..p.vcpus {
        ld.update_vmsa(&ap);
    }
    Ok(ld.value())
}

fn sev(image: &[u8], p: &LaunchParams) -> Result<Vec<u8>, SnpError> {
    let footer = match (&p.kernel_hashes, p.mode, p.vcpus) {
        (None, Mode::Sev, _) | (None, _, 0 | 1) => metadata::read_footer(image).ok(),
        _ => Some(metadata::read_footer(image)?),
    };
    let mut h = Sha256::new();
    h.update(image);
    if let Some(kh) = &p.kernel_hashes {
        // A table at GPA 0 (OvmfPkgX64 has 0/0) is no table; its size is not checked
        // (sev-snp-measure's rules).
        if footer
            .and_then(|f| f.hash_table)
            .is_none_or(|(gpa, _)| gpa == 0)
        {
            return Err(SnpError::KernelWithoutHashTable);
        }
        h.update(kh.padded_table());
    }
    if p.mode == Mode::SevEs {
        if p.vcpus == 0 {
            return Err(SnpError::NoVcpus);
        }
        let eip = ap_eip(footer.as_ref(), p.vcpus)?;
        let bsp = vmsa::vmsa_page(vmsa::BSP_EIP, true, p.vmm, p.vcpu_sig, 0);
        let ap = vmsa::vmsa_page(eip, false, p.vmm, p.vcpu_sig, 0);
        h.update(&bsp[..]);
        for _ in 1..p.vcpus {
            h.update(&ap[..]);
        }
    }
    Ok(h.finalize().to_vec())
}

/// Reads a firmware image for its launch digest: the image's bytes and the SHA-384 of each of
/// its 4 KiB pages ([`digest::page_digests`]), in one pass. The buffer starts zeroed and only
/// the pages that are not all zero are written into it, so the zero pages, most of a firmware
/// image, are never touched: no page fault, no copy, no hash.
pub fn read_image_pages(path: &Path, limit: &Limit) -> Result<(Vec<u8>, Vec<[u8; 48]>), FileError> {
    let size = std::fs::metadata(path)
        .map_or(0, |m| m.len())
        .min(limit.max);
    // Zeroed memory from the allocator is not touched until written.
    let mut bytes = vec![0u8; usize::try_from(size).unwrap_or(0)];
    let mut digests = Vec::with_capacity(bytes.len().div_ceil(PAGE_SIZE));
    let mut page = [0u8; PAGE_SIZE];
    let mut fill = 0usize;
    let mut at = 0usize;
    let mut put = |page: &[u8], at: usize, bytes: &mut Vec<u8>| {
        let digest = digest::page_digest(page);
        if digest.is_some() {
            // A file that grew after its size was read: the buffer grows with it.
            if bytes.len() < at + page.len() {
                bytes.resize(at + page.len(), 0);
            }
            bytes[at..at + page.len()].copy_from_slice(page);
        }
        digests.push(digest.unwrap_or(digest::ZERO_PAGE_DIGEST));
    };
    let total = files::stream(path, limit, |mut chunk| {
        while !chunk.is_empty() {
            let n = chunk.len().min(PAGE_SIZE - fill);
            page[fill..fill + n].copy_from_slice(&chunk[..n]);
            fill += n;
            chunk = &chunk[n..];
            if fill == PAGE_SIZE {
                put(&page, at, &mut bytes);
                at += PAGE_SIZE;
                fill = 0;
            }
        }
    })?;
    if fill > 0 {
        put(&page[..fill], at, &mut bytes);
    }
    // A file that shrank after its size was read: its end is where reading stopped.
    bytes.truncate(usize::try_from(total).unwrap_or(usize::MAX));
    Ok((bytes, digests))
}

/// The hashes of a direct boot read from files (kernel and initrd streamed with their
/// [`Limit`]s) and the command line. The two files are hashed on two threads.
pub fn kernel_hashes_from_files(
    kernel: &Path,
    initrd: Option<&Path>,
    cmdline: &[u8],
) -> Result<KernelHashes, FileError> {
    fn sha(path: &Path, limit: &Limit) -> Result<[u8; 32], FileError> {
        let mut h = Sha256::new();
        files::stream(path, limit, |chunk| h.update(chunk))?;
        Ok(h.finalize().into())
    }
    let (kernel, initrd) = std::thread::scope(|scope| {
        let initrd = initrd.map(|i| scope.spawn(move || sha(i, &Limit::INITRD)));
        let kernel = sha(kernel, &Limit::KERNEL);
        let initrd = initrd.map(|t| {
            t.join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        });
        (kernel, initrd)
    });
    Ok(KernelHashes::new(kernel?, initrd.transpose()?, cmdline))
}

/// One SEV metadata section in a report.
#[derive(Debug, Clone, Serialize)]
pub struct SectionReport {
    /// GPA, hex.
    pub gpa: String,
    /// Bytes.
    pub size: u32,
    /// The section type's name.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// How it was measured: a page type (normal, zero, unmeasured, secrets, cpuid).
    pub measured_as: &'static str,
}

/// `measure --platform snp`: the digest and what it was computed from.
#[derive(Debug, Clone, Serialize)]
pub struct SnpReport {
    /// Always "snp" (the CLI platform).
    pub platform: &'static str,
    /// The mode's name.
    pub mode: &'static str,
    /// The digest, lower-case hex (96 characters for SNP, 64 for SEV-ES and SEV).
    pub launch_digest: String,
    /// vCPUs (not for sev and snp:ovmf-hash).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vcpus: Option<u32>,
    /// The vCPU signature, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vcpu_sig: Option<String>,
    /// The VMM's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vmm_type: Option<&'static str>,
    /// SEV_FEATURES, hex (snp only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest_features: Option<String>,
    /// GPA of the firmware's first byte, hex.
    pub firmware_gpa: String,
    /// Bytes of firmware.
    pub firmware_size: usize,
    /// The direct boot's hashes (hex), if a kernel was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_hashes: Option<KernelHashesReport>,
    /// The SEV metadata sections in table order (snp only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sections: Vec<SectionReport>,
}

/// The hashes of a direct boot, hex.
#[derive(Debug, Clone, Serialize)]
pub struct KernelHashesReport {
    /// SHA-256 of the kernel.
    pub kernel: String,
    /// SHA-256 of the initrd (of nothing without one).
    pub initrd: String,
    /// SHA-256 of the command line and its NUL.
    pub cmdline: String,
}

fn page_type_name(t: PageType) -> &'static str {
    match t {
        PageType::Normal => "normal",
        PageType::Vmsa => "vmsa",
        PageType::Zero => "zero",
        PageType::Unmeasured => "unmeasured",
        PageType::Secrets => "secrets",
        PageType::Cpuid => "cpuid",
    }
}

/// The section type as `measure --json` names it: edk2's name in lower case.
const fn section_name(kind: SectionType) -> &'static str {
    match kind {
        SectionType::SnpSecMem => "snp_sec_mem",
        SectionType::SnpSecrets => "snp_secrets",
        SectionType::Cpuid => "cpuid",
        SectionType::SvsmCaa => "svsm_caa",
        SectionType::SnpKernelHashes => "snp_kernel_hashes",
    }
}

/// Computes the digest of `image` and describes it.
pub fn report(image: &[u8], params: &LaunchParams) -> Result<SnpReport, SnpError> {
    report_with(image, params, None)
}

/// [`report`] with the image's page digests computed ahead (see [`compute_with`]).
pub fn report_with(
    image: &[u8],
    params: &LaunchParams,
    image_pages: Option<&[[u8; 48]]>,
) -> Result<SnpReport, SnpError> {
    let digest = compute_with(image, params, image_pages)?;
    let mode = params.mode;
    let uses_vcpus = matches!(mode, Mode::Snp | Mode::SevEs);
    let sections = if mode == Mode::Snp {
        let footer = metadata::read_footer(image)?;
        let with_kernel = params.kernel_hashes.is_some();
        sections_of(image, &footer)?
            .into_iter()
            .map(|s| SectionReport {
                gpa: format!("{:#x}", s.gpa),
                size: s.size,
                kind: section_name(s.kind),
                measured_as: match measurement_of(s.kind, params.vmm, with_kernel) {
                    Measured::As(t) => page_type_name(t),
                    Measured::HashesPage => "normal",
                },
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(SnpReport {
        platform: "snp",
        mode: mode.name(),
        launch_digest: hex::encode(digest),
        vcpus: uses_vcpus.then_some(params.vcpus),
        vcpu_sig: uses_vcpus.then(|| format!("{:#x}", params.vcpu_sig)),
        vmm_type: uses_vcpus.then_some(params.vmm.name()),
        guest_features: (mode == Mode::Snp).then(|| format!("{:#x}", params.guest_features)),
        firmware_gpa: format!("{:#x}", (1u64 << 32).saturating_sub(image.len() as u64)),
        firmware_size: image.len(),
        kernel_hashes: params.kernel_hashes.map(|h| KernelHashesReport {
            kernel: hex::encode(h.kernel),
            initrd: hex::encode(h.initrd),
            cmdline: hex::encode(h.cmdline),
        }),
        sections,
    })
}

impl SnpReport {
    /// The text output: the digest in hex on one line (as sev-snp-measure prints it).
    pub fn to_text(&self) -> String {
        format!("{}\n", self.launch_digest)
    }
}

#[cfg(test)]
mod tests;
