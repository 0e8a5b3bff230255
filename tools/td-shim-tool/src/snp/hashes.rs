//! The kernel-hashes table QEMU (`kernel-hashes=on`) writes into the firmware's hashes area for
//! a direct boot, and OVMF checks the kernel, initrd and command line against
//! (docs/sev-measurement.md §4). Packed, little-endian:
//!
//! ```text
//! table   GUID 9438d606-4f22-4cc9-b479-a793d411fd21, u16 length 168, then three entries
//! entry   GUID, u16 length 50, SHA-256 (32 bytes)      cmdline, initrd, kernel (this order)
//! padded  the table and 8 zero bytes: 176 bytes (a multiple of 16)
//! ```
//!
//! The hashes: kernel = SHA-256 of the bzImage file (QEMU does not patch its setup header
//! under SEV); initrd = SHA-256 of the file, SHA-256("") without one; cmdline = SHA-256 of the
//! bytes and one NUL (SHA-256("\0") for an empty or absent command line).

use sha2::{Digest, Sha256};

use super::digest::PAGE_SIZE;
use super::SnpError;

/// The table's and the entries' GUIDs: the firmware's, which checks the table at boot.
pub use td_shim::snp::hashes::{CMDLINE_GUID, INITRD_GUID, KERNEL_GUID, TABLE_GUID};

/// Bytes of one entry.
pub const ENTRY_SIZE: usize = 16 + 2 + 32;
/// Bytes of the table.
pub const TABLE_SIZE: usize = 16 + 2 + 3 * ENTRY_SIZE;
/// Bytes of the table padded to a multiple of 16 (what QEMU measures for SEV/SEV-ES).
pub const PADDED_TABLE_SIZE: usize = TABLE_SIZE.div_ceil(16) * 16;

/// The three SHA-256 hashes of a direct boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelHashes {
    /// SHA-256 of the bzImage.
    pub kernel: [u8; 32],
    /// SHA-256 of the initrd (of nothing without one).
    pub initrd: [u8; 32],
    /// SHA-256 of the command line and its NUL.
    pub cmdline: [u8; 32],
}

impl KernelHashes {
    /// The hashes from precomputed file hashes and the command line (`None`: no initrd).
    pub fn new(kernel: [u8; 32], initrd: Option<[u8; 32]>, cmdline: &[u8]) -> Self {
        Self {
            kernel,
            initrd: initrd.unwrap_or_else(|| Sha256::digest(b"").into()),
            cmdline: cmdline_hash(cmdline),
        }
    }

    /// The hashes of files held in memory.
    pub fn from_bytes(kernel: &[u8], initrd: Option<&[u8]>, cmdline: &[u8]) -> Self {
        Self::new(
            Sha256::digest(kernel).into(),
            initrd.map(|i| Sha256::digest(i).into()),
            cmdline,
        )
    }

    /// The table padded to [`PADDED_TABLE_SIZE`] bytes.
    pub fn padded_table(&self) -> [u8; PADDED_TABLE_SIZE] {
        let mut t = [0u8; PADDED_TABLE_SIZE];
        t[..16].copy_from_slice(TABLE_GUID.as_bytes());
        t[16..18].copy_from_slice(&(TABLE_SIZE as u16).to_le_bytes());
        let entries = [
            (CMDLINE_GUID, &self.cmdline),
            (INITRD_GUID, &self.initrd),
            (KERNEL_GUID, &self.kernel),
        ];
        for (i, (guid, hash)) in entries.into_iter().enumerate() {
            let at = 18 + i * ENTRY_SIZE;
            t[at..at + 16].copy_from_slice(guid.as_bytes());
            t[at + 16..at + 18].copy_from_slice(&(ENTRY_SIZE as u16).to_le_bytes());
            t[at + 18..at + ENTRY_SIZE].copy_from_slice(hash);
        }
        t
    }

    /// The 4 KiB page the SNP digest measures: zeros, with the padded table at `offset` (the
    /// table GPA's offset in its page).
    pub fn page(&self, offset: usize) -> Result<Box<[u8; PAGE_SIZE]>, SnpError> {
        let mut page = Box::new([0u8; PAGE_SIZE]);
        let dst = offset
            .checked_add(PADDED_TABLE_SIZE)
            .and_then(|end| page.get_mut(offset..end))
            .ok_or(SnpError::HashTableCrossesPage { offset })?;
        dst.copy_from_slice(&self.padded_table());
        Ok(page)
    }
}

/// SHA-256 of the command line followed by one NUL.
pub fn cmdline_hash(cmdline: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(cmdline);
    h.update([0u8]);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Research §1.10's intermediate value: empty kernel, empty initrd, empty command line.
    #[test]
    fn empty_table_hash() {
        assert_eq!(PADDED_TABLE_SIZE, 176);
        let t = KernelHashes::from_bytes(b"", Some(b""), b"");
        assert_eq!(
            hex::encode(Sha256::digest(t.padded_table())),
            "6e725681a17ae9f186635cbc1be742508b61e0e550918894f1a5363ac86b5a1a"
        );
        assert_eq!(
            hex::encode(t.cmdline),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        assert_eq!(t, KernelHashes::from_bytes(b"", None, b""));
    }

    #[test]
    fn page_placement() {
        let t = KernelHashes::from_bytes(b"k", None, b"c");
        let page = t.page(0xC00).unwrap();
        assert_eq!(&page[0xC00..0xC00 + 176], &t.padded_table()[..]);
        assert!(page[..0xC00].iter().all(|&b| b == 0));
        assert!(matches!(
            t.page(PAGE_SIZE - 175),
            Err(SnpError::HashTableCrossesPage { .. })
        ));
    }
}
