//! Measured direct boot: the kernel-hashes table QEMU writes (`-object sev-snp-guest,...,
//! kernel-hashes=on`) into the firmware's hashes area, which the launch digest covers, and its
//! verification against what fw_cfg delivers.
//!
//! # Layout (QEMU `target/i386/sev.c` `SevHashTable` / `PaddedSevHashTable`; OVMF
//! `BlobVerifierLibSevHashes`; research notes §1.6)
//!
//! Packed, little-endian: the table GUID `9438d606-4f22-4cc9-b479-a793d411fd21`, a u16 length
//! (QEMU writes `sizeof(SevHashTable)` = 168), then three entries of GUID, u16 length (50) and
//! SHA-256 (32 bytes), in the order command line (`97d02dd8-bd20-4c94-aa78-e7714d36ab2a`),
//! initrd (`44baf731-3a2f-4bd7-9af1-41e29169781d`), kernel
//! (`4de79437-abd2-427f-b835-d5b172d2045b`). QEMU pads the table with zeros to 176 bytes.
//!
//! # What is hashed (QEMU `build_kernel_loader_hashes`)
//!
//! * command line: its bytes **with** the terminating NUL (`"\0"` alone without `-append`),
//!   which is also what fw_cfg's command-line item holds;
//! * initrd: its bytes; without `-initrd`, the empty input (SHA-256 `e3b0c442…`);
//! * kernel: the setup part (fw_cfg setup item) followed by the rest of the bzImage (kernel
//!   item), as QEMU hands them to the guest — hashed **before** the firmware patches the setup
//!   header.
//!
//! # Verification (decision: exact QEMU layout, all or nothing)
//!
//! [`HashesTable::parse`] accepts only QEMU's layout: the table GUID (an all-zero header is
//! [`HashesError::Missing`]: the area as launched without `kernel-hashes=on`), length 168, the
//! three entry GUIDs in QEMU's order, each with length 50. [`verify`] compares all three hashes
//! in constant time (no early exit on the first differing byte, nor on the first differing
//! hash) and then reports the first mismatch in table order. The 8 padding bytes are not
//! checked (they are measured, and nothing reads them).

use sha2::{Digest, Sha256};
use td_layout::guid::Guid;

use core::fmt;

/// The table GUID.
pub const TABLE_GUID: Guid = Guid::from_fields(
    0x9438_d606,
    0x4f22,
    0x4cc9,
    [0xb4, 0x79, 0xa7, 0x93, 0xd4, 0x11, 0xfd, 0x21],
);
/// The kernel entry's GUID.
pub const KERNEL_GUID: Guid = Guid::from_fields(
    0x4de7_9437,
    0xabd2,
    0x427f,
    [0xb8, 0x35, 0xd5, 0xb1, 0x72, 0xd2, 0x04, 0x5b],
);
/// The initrd entry's GUID.
pub const INITRD_GUID: Guid = Guid::from_fields(
    0x44ba_f731,
    0x3a2f,
    0x4bd7,
    [0x9a, 0xf1, 0x41, 0xe2, 0x91, 0x69, 0x78, 0x1d],
);
/// The command-line entry's GUID.
pub const CMDLINE_GUID: Guid = Guid::from_fields(
    0x97d0_2dd8,
    0xbd20,
    0x4c94,
    [0xaa, 0x78, 0xe7, 0x71, 0x4d, 0x36, 0xab, 0x2a],
);

/// Bytes of one entry: GUID, u16, SHA-256.
pub const ENTRY_SIZE: usize = 16 + 2 + 32;
/// Bytes of the table (QEMU `sizeof(SevHashTable)`).
pub const TABLE_SIZE: usize = 16 + 2 + 3 * ENTRY_SIZE;
/// Bytes QEMU writes: the table padded to a multiple of 16.
pub const PADDED_TABLE_SIZE: usize = 176;

/// Which entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blob {
    /// The command line.
    Cmdline,
    /// The initrd.
    Initrd,
    /// The kernel.
    Kernel,
}

impl Blob {
    /// In table order.
    pub const ORDER: [Blob; 3] = [Blob::Cmdline, Blob::Initrd, Blob::Kernel];

    /// The entry's GUID.
    pub const fn guid(self) -> Guid {
        match self {
            Self::Cmdline => CMDLINE_GUID,
            Self::Initrd => INITRD_GUID,
            Self::Kernel => KERNEL_GUID,
        }
    }

    /// A name for messages.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Cmdline => "command line",
            Self::Initrd => "initrd",
            Self::Kernel => "kernel",
        }
    }
}

/// Why the table was refused or a blob does not match it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashesError {
    /// The area is shorter than the table.
    Truncated {
        /// Its length.
        len: usize,
    },
    /// The area holds no table (its header is all zeros): the VM was launched without
    /// `kernel-hashes=on`, or the firmware's area is not where QEMU wrote it.
    Missing,
    /// The table GUID is wrong.
    BadTableGuid(Guid),
    /// The table length is not 168.
    BadTableLength(u16),
    /// An entry's GUID is not the one expected at its position.
    BadEntryGuid {
        /// The entry expected there.
        expected: Blob,
        /// The GUID found.
        found: Guid,
    },
    /// An entry's length is not 50.
    BadEntryLength {
        /// The entry.
        blob: Blob,
        /// Its length.
        len: u16,
    },
    /// A blob's SHA-256 differs from the table's.
    Mismatch(Blob),
}

impl fmt::Display for HashesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Truncated { len } => write!(
                f,
                "snp: kernel hashes: the area has {len} bytes, the table needs {TABLE_SIZE}"
            ),
            Self::Missing => write!(
                f,
                "snp: kernel hashes: no table (launched without kernel-hashes=on?)"
            ),
            Self::BadTableGuid(g) => write!(f, "snp: kernel hashes: table GUID {g} is wrong"),
            Self::BadTableLength(l) => {
                write!(f, "snp: kernel hashes: table length {l}, not {TABLE_SIZE}")
            }
            Self::BadEntryGuid { expected, found } => write!(
                f,
                "snp: kernel hashes: expected the {} entry, found GUID {found}",
                expected.name()
            ),
            Self::BadEntryLength { blob, len } => write!(
                f,
                "snp: kernel hashes: {} entry length {len}, not {ENTRY_SIZE}",
                blob.name()
            ),
            Self::Mismatch(b) => write!(
                f,
                "snp: kernel hashes: the {} from fw_cfg does not match the measured table",
                b.name()
            ),
        }
    }
}

/// The three SHA-256 hashes, as the table holds them or as computed from the blobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashesTable {
    /// SHA-256 of the command line with its NUL.
    pub cmdline: [u8; 32],
    /// SHA-256 of the initrd (of nothing without one).
    pub initrd: [u8; 32],
    /// SHA-256 of setup ‖ kernel.
    pub kernel: [u8; 32],
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([
        b.get(at).copied().unwrap_or(0),
        b.get(at + 1).copied().unwrap_or(0),
    ])
}

fn guid_at(b: &[u8], at: usize) -> Guid {
    let mut g = [0u8; 16];
    if let Some(s) = b.get(at..at + 16) {
        g.copy_from_slice(s);
    }
    Guid(g)
}

impl HashesTable {
    /// Parses the table at the start of `area` (see the module documentation).
    pub fn parse(area: &[u8]) -> Result<HashesTable, HashesError> {
        let t = area
            .get(..TABLE_SIZE)
            .ok_or(HashesError::Truncated { len: area.len() })?;
        let guid = guid_at(t, 0);
        if guid != TABLE_GUID {
            if t[..18].iter().all(|&b| b == 0) {
                return Err(HashesError::Missing);
            }
            return Err(HashesError::BadTableGuid(guid));
        }
        let len = u16_at(t, 16);
        if usize::from(len) != TABLE_SIZE {
            return Err(HashesError::BadTableLength(len));
        }
        let mut hashes = [[0u8; 32]; 3];
        for (i, (blob, hash)) in Blob::ORDER.iter().zip(hashes.iter_mut()).enumerate() {
            let at = 18 + i * ENTRY_SIZE;
            let found = guid_at(t, at);
            if found != blob.guid() {
                return Err(HashesError::BadEntryGuid {
                    expected: *blob,
                    found,
                });
            }
            let len = u16_at(t, at + 16);
            if usize::from(len) != ENTRY_SIZE {
                return Err(HashesError::BadEntryLength { blob: *blob, len });
            }
            if let Some(h) = t.get(at + 18..at + ENTRY_SIZE) {
                hash.copy_from_slice(h);
            }
        }
        Ok(HashesTable {
            cmdline: hashes[0],
            initrd: hashes[1],
            kernel: hashes[2],
        })
    }

    /// The hashes of the blobs as fw_cfg delivers them: `setup` and `kernel` (the bzImage's
    /// two parts, unpatched), the initrd if any, and the command line **with** its NUL (the
    /// fw_cfg item as read; see [`cmdline_hash`] for a command line without it).
    pub fn of_blobs(
        setup: &[u8],
        kernel: &[u8],
        initrd: Option<&[u8]>,
        cmdline_with_nul: &[u8],
    ) -> HashesTable {
        HashesTable {
            cmdline: Sha256::digest(cmdline_with_nul).into(),
            initrd: initrd_hash(initrd),
            kernel: kernel_hash(setup, kernel),
        }
    }

    fn get(&self, b: Blob) -> &[u8; 32] {
        match b {
            Blob::Cmdline => &self.cmdline,
            Blob::Initrd => &self.initrd,
            Blob::Kernel => &self.kernel,
        }
    }
}

/// SHA-256 of setup ‖ kernel.
pub fn kernel_hash(setup: &[u8], kernel: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(setup);
    h.update(kernel);
    h.finalize().into()
}

/// SHA-256 of the initrd, or of the empty input without one.
pub fn initrd_hash(initrd: Option<&[u8]>) -> [u8; 32] {
    Sha256::digest(initrd.unwrap_or(&[])).into()
}

/// SHA-256 of `cmdline` (without its NUL) followed by one NUL.
pub fn cmdline_hash(cmdline: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(cmdline);
    h.update([0u8]);
    h.finalize().into()
}

/// Whether `a == b`, looking at every byte whatever the differences.
pub fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff: u8 = 0;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    // Keep the compiler from turning the loop into an early exit on the accumulated value.
    core::hint::black_box(diff) == 0
}

/// Checks `blobs` (hashes of what fw_cfg delivered) against the measured `table`: all three
/// compared in constant time, then the first mismatch in table order is reported.
pub fn verify(table: &HashesTable, blobs: &HashesTable) -> Result<(), HashesError> {
    let ok = Blob::ORDER.map(|b| ct_eq(table.get(b), blobs.get(b)));
    match Blob::ORDER.iter().zip(ok).find(|(_, ok)| !ok) {
        Some((b, _)) => Err(HashesError::Mismatch(*b)),
        None => Ok(()),
    }
}
