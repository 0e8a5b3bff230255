//! The SEV-SNP launch digest chain (GCTX.LD), as the AMD-SP extends it on every
//! `SNP_LAUNCH_UPDATE` (docs/sev-measurement.md §2).
//!
//! Each page the VMM hands over replaces the digest with SHA-384 of a 112-byte PAGE_INFO:
//!
//! ```text
//! 0x00  48  DIGEST_CUR   the digest so far
//! 0x30  48  CONTENTS     SHA-384 of the 4 KiB page for NORMAL and VMSA pages, zeros otherwise
//! 0x60   2  LENGTH       0x0070
//! 0x62   1  PAGE_TYPE    PageType
//! 0x63   1  IMI_PAGE     0
//! 0x64   4  VMPL perms   0 (a VMPL0-only guest)
//! 0x68   8  GPA          the page's guest-physical address (VMSA_GPA for a VMSA)
//! ```

use sha2::{Digest, Sha384};

/// Bytes of a page.
pub const PAGE_SIZE: usize = 4096;
/// Bytes of a PAGE_INFO structure.
pub const PAGE_INFO_SIZE: usize = 0x70;
/// The GPA a VMSA page is measured at: the RMP's `u64::MAX`, page-aligned, bits 52-63 clear.
pub const VMSA_GPA: u64 = 0x0000_FFFF_FFFF_F000;

/// The PAGE_TYPE of an `SNP_LAUNCH_UPDATE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PageType {
    /// Contents measured.
    Normal = 1,
    /// A vCPU's save area; contents measured, at [`VMSA_GPA`].
    Vmsa = 2,
    /// A zero page: only its type and GPA are measured.
    Zero = 3,
    /// Memory whose contents are not measured (type and GPA only).
    Unmeasured = 4,
    /// The secrets page the AMD-SP fills (type and GPA only).
    Secrets = 5,
    /// The CPUID page: the AMD-SP checks its values, the digest takes type and GPA only.
    Cpuid = 6,
}

/// A launch digest being extended page by page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaunchDigest {
    ld: [u8; 48],
}

impl Default for LaunchDigest {
    fn default() -> Self {
        Self::new()
    }
}

impl LaunchDigest {
    /// The digest of a fresh guest context: 48 zero bytes.
    pub const fn new() -> Self {
        Self { ld: [0; 48] }
    }

    /// A digest seeded with a precomputed value (sev-snp-measure's `--snp-ovmf-hash`: the
    /// digest after the firmware pages).
    pub const fn from_seed(ld: [u8; 48]) -> Self {
        Self { ld }
    }

    /// The current value.
    pub const fn value(&self) -> [u8; 48] {
        self.ld
    }

    /// Extends the digest with one PAGE_INFO.
    pub fn update(&mut self, page_type: PageType, gpa: u64, contents: &[u8; 48]) {
        let mut info = [0u8; PAGE_INFO_SIZE];
        info[..0x30].copy_from_slice(&self.ld);
        info[0x30..0x60].copy_from_slice(contents);
        info[0x60..0x62].copy_from_slice(&(PAGE_INFO_SIZE as u16).to_le_bytes());
        info[0x62] = page_type as u8;
        info[0x68..0x70].copy_from_slice(&gpa.to_le_bytes());
        self.ld = Sha384::digest(info).into();
    }

    /// Extends the digest with NORMAL pages: `bytes` split into 4 KiB pages from `gpa` on. A
    /// last partial page is measured zero-padded (callers pass whole pages).
    pub fn update_normal_pages(&mut self, gpa: u64, bytes: &[u8]) {
        self.update_hashed_pages(gpa, &page_digests(bytes));
    }

    /// Extends the digest with NORMAL pages from `gpa` on whose contents' SHA-384s
    /// ([`page_digests`]) are `digests`, in order: the chain is sequential, the page hashes are
    /// not, so a caller can compute them ahead, on another thread.
    pub fn update_hashed_pages(&mut self, gpa: u64, digests: &[[u8; 48]]) {
        let mut at = gpa;
        for contents in digests {
            self.update(PageType::Normal, at, contents);
            at = at.wrapping_add(PAGE_SIZE as u64);
        }
    }
}

/// The SHA-384 of each 4 KiB page of `bytes` (a last partial page zero-padded), as NORMAL pages
/// are measured.
pub fn page_digests(bytes: &[u8]) -> Vec<[u8; 48]> {
    bytes
        .chunks(PAGE_SIZE)
        .map(|chunk| page_digest(chunk).unwrap_or(ZERO_PAGE_DIGEST))
        .collect()
}

/// SHA-384 of a 4 KiB page of zeros.
pub const ZERO_PAGE_DIGEST: [u8; 48] = [
    0xc0, 0xe5, 0x9a, 0x3e, 0x3f, 0xfb, 0xd3, 0xb5, 0xc7, 0x54, 0x28, 0xfb, 0x36, 0x43, 0x2f, 0xac,
    0xab, 0xc7, 0x45, 0x94, 0x42, 0x96, 0xff, 0x51, 0x5f, 0x73, 0x7c, 0x4f, 0xef, 0x4e, 0xfc, 0x64,
    0x58, 0x68, 0x09, 0xf7, 0xa1, 0x6f, 0x56, 0x35, 0x4a, 0x1e, 0xae, 0xcf, 0x2a, 0xa8, 0xd7, 0x74,
];

/// The SHA-384 of one page (at most 4 KiB, zero-padded to 4 KiB), or `None` if it is all zero:
/// its digest is then [`ZERO_PAGE_DIGEST`]. A zero check runs at memory speed, SHA-384 at well
/// under 1 GB/s, and most of a firmware image is zero pages.
pub fn page_digest(page: &[u8]) -> Option<[u8; 48]> {
    if is_zero(page) {
        None
    } else if page.len() == PAGE_SIZE {
        Some(Sha384::digest(page).into())
    } else {
        let mut p = [0u8; PAGE_SIZE];
        p[..page.len().min(PAGE_SIZE)].copy_from_slice(&page[..page.len().min(PAGE_SIZE)]);
        Some(Sha384::digest(p).into())
    }
}

/// Whether every byte of `bytes` is zero, eight at a time.
fn is_zero(bytes: &[u8]) -> bool {
    let (words, tail) = bytes.as_chunks::<8>();
    words.iter().all(|w| u64::from_ne_bytes(*w) == 0) && tail.iter().all(|&b| b == 0)
}

impl LaunchDigest {
    /// Extends the digest with pages whose contents are not measured (ZERO, UNMEASURED,
    /// SECRETS, CPUID): one per 4 KiB (rounded up) of `len` bytes from `gpa`.
    pub fn update_unmeasured_pages(&mut self, page_type: PageType, gpa: u64, len: u64) {
        let pages = len.div_ceil(PAGE_SIZE as u64);
        for i in 0..pages {
            self.update(page_type, gpa.wrapping_add(i * PAGE_SIZE as u64), &[0; 48]);
        }
    }

    /// Extends the digest with a VMSA page given its SHA-384.
    pub fn update_vmsa(&mut self, page_hash: &[u8; 48]) {
        self.update(PageType::Vmsa, VMSA_GPA, page_hash);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The firmware-only digest of the AmdSev fixture (one page at 0xFFFFF000):
    /// sev-snp-measure v0.0.13's `snp:ovmf-hash` vector (research §1.10).
    #[test]
    fn ovmf_hash_vector() {
        let fw = include_bytes!("../../../../testdata/sev-snp/ovmf_AmdSev_suffix.bin");
        let mut ld = LaunchDigest::new();
        ld.update_normal_pages(0xFFFF_F000, fw);
        assert_eq!(
            hex::encode(ld.value()),
            "086e2e9149ebf45abdc3445fba5b2da8270bdbb04094d7a2c37faaa4b24af3aa\
             16aff8c374c2a55c467a50da6d466b74"
        );
    }

    #[test]
    fn zero_pages_get_the_digest_of_a_hashed_zero_page() {
        let mut bytes = vec![0u8; 3 * PAGE_SIZE + 100];
        bytes[PAGE_SIZE + 7] = 1;
        let d = page_digests(&bytes);
        let hashed = |page: &[u8]| -> [u8; 48] {
            let mut p = [0u8; PAGE_SIZE];
            p[..page.len()].copy_from_slice(page);
            Sha384::digest(p).into()
        };
        assert_eq!(d.len(), 4);
        for (i, chunk) in bytes.chunks(PAGE_SIZE).enumerate() {
            assert_eq!(d[i], hashed(chunk), "page {i}");
        }
        assert_ne!(d[0], d[1]);
        assert_eq!(d[0], d[3], "a zero tail pads to a zero page");
        assert_eq!(ZERO_PAGE_DIGEST, hashed(&[]));
        assert!(!is_zero(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 1]));
        assert!(is_zero(&[0; 17]));
    }

    #[test]
    fn unmeasured_pages_round_up() {
        let mut a = LaunchDigest::new();
        a.update_unmeasured_pages(PageType::Zero, 0x1000, 0x1001);
        let mut b = LaunchDigest::new();
        b.update(PageType::Zero, 0x1000, &[0; 48]);
        b.update(PageType::Zero, 0x2000, &[0; 48]);
        assert_eq!(a, b);
    }
}
