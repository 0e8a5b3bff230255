//! The kernel-hashes table: a table built byte by byte from QEMU's documented layout parses
//! and verifies; every tampering case has its error.

extern crate std;

use super::super::hashes::*;
use sha2::{Digest, Sha256};
use std::string::ToString;
use std::vec::Vec;

/// A GUID's stored bytes from its text, independently of `Guid::from_fields`: the first three
/// fields little-endian, the last two as written.
fn guid_bytes(text: &str) -> [u8; 16] {
    let hex: Vec<u8> = text
        .split('-')
        .flat_map(|part| {
            (0..part.len())
                .step_by(2)
                .map(move |i| u8::from_str_radix(&part[i..i + 2], 16).unwrap())
        })
        .collect();
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&[hex[3], hex[2], hex[1], hex[0]]);
    b[4..6].copy_from_slice(&[hex[5], hex[4]]);
    b[6..8].copy_from_slice(&[hex[7], hex[6]]);
    b[8..].copy_from_slice(&hex[8..]);
    b
}

const TABLE: &str = "9438d606-4f22-4cc9-b479-a793d411fd21";
const CMDLINE: &str = "97d02dd8-bd20-4c94-aa78-e7714d36ab2a";
const INITRD: &str = "44baf731-3a2f-4bd7-9af1-41e29169781d";
const KERNEL: &str = "4de79437-abd2-427f-b835-d5b172d2045b";

/// The 176 bytes QEMU writes: table GUID, u16 168, three 50-byte entries (cmdline, initrd,
/// kernel), 8 zero bytes.
fn qemu_table(cmdline: [u8; 32], initrd: [u8; 32], kernel: [u8; 32]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&guid_bytes(TABLE));
    t.extend_from_slice(&168u16.to_le_bytes());
    for (g, h) in [(CMDLINE, cmdline), (INITRD, initrd), (KERNEL, kernel)] {
        t.extend_from_slice(&guid_bytes(g));
        t.extend_from_slice(&50u16.to_le_bytes());
        t.extend_from_slice(&h);
    }
    t.extend_from_slice(&[0; 8]);
    assert_eq!(t.len(), 176);
    t
}

fn sha(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

struct Boot {
    setup: Vec<u8>,
    kernel: Vec<u8>,
    initrd: Option<Vec<u8>>,
    cmdline: Vec<u8>, // with its NUL, as fw_cfg holds it
}

fn boot() -> Boot {
    let bzimage: Vec<u8> = (0..9000u32).map(|i| (i * 7 % 251) as u8).collect();
    Boot {
        setup: bzimage[..0x1000].to_vec(),
        kernel: bzimage[0x1000..].to_vec(),
        initrd: Some(b"initrd contents".to_vec()),
        cmdline: b"console=ttyS0 root=/dev/vda\0".to_vec(),
    }
}

fn blobs(b: &Boot) -> HashesTable {
    HashesTable::of_blobs(&b.setup, &b.kernel, b.initrd.as_deref(), &b.cmdline)
}

fn table_for(b: &Boot) -> Vec<u8> {
    let whole: Vec<u8> = [b.setup.clone(), b.kernel.clone()].concat();
    qemu_table(
        sha(&b.cmdline),
        sha(b.initrd.as_deref().unwrap_or(&[])),
        sha(&whole),
    )
}

#[test]
fn the_guids_and_sizes_are_qemus() {
    assert_eq!(TABLE_GUID.as_bytes(), &guid_bytes(TABLE));
    assert_eq!(CMDLINE_GUID.as_bytes(), &guid_bytes(CMDLINE));
    assert_eq!(INITRD_GUID.as_bytes(), &guid_bytes(INITRD));
    assert_eq!(KERNEL_GUID.as_bytes(), &guid_bytes(KERNEL));
    assert_eq!((ENTRY_SIZE, TABLE_SIZE, PADDED_TABLE_SIZE), (50, 168, 176));
    assert_eq!(TABLE_GUID.to_string(), TABLE);
}

#[test]
fn the_empty_boot_table_has_the_golden_hash() {
    // Research notes §1.10 (sev-snp-measure's intermediate value for an empty kernel, initrd
    // and command line): SHA-256 of the padded table.
    let t = qemu_table(sha(b"\0"), sha(b""), sha(b""));
    assert_eq!(
        hex(&sha(&t)),
        "6e725681a17ae9f186635cbc1be742508b61e0e550918894f1a5363ac86b5a1a"
    );
    let parsed = HashesTable::parse(&t).unwrap();
    assert_eq!(parsed, HashesTable::of_blobs(b"", b"", None, b"\0"));
    assert_eq!(
        hex(&cmdline_hash(b"")),
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    );
    assert_eq!(
        hex(&initrd_hash(None)),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

fn hex(b: &[u8]) -> std::string::String {
    b.iter().map(|x| std::format!("{x:02x}")).collect()
}

#[test]
fn a_qemu_table_parses_and_verifies() {
    let b = boot();
    let t = table_for(&b);
    let parsed = HashesTable::parse(&t).unwrap();
    assert_eq!(verify(&parsed, &blobs(&b)), Ok(()));
    // The table inside the 4 KiB page, as the firmware reads it: the rest does not matter.
    let mut page = std::vec![0xEEu8; 4096];
    page[0xC00..0xC00 + 176].copy_from_slice(&t);
    assert_eq!(HashesTable::parse(&page[0xC00..]).unwrap(), parsed);
    // Where the bzImage is cut between setup and kernel does not change the kernel hash.
    let whole = [b.setup.clone(), b.kernel.clone()].concat();
    assert_eq!(kernel_hash(&whole[..512], &whole[512..]), parsed.kernel);
    assert_eq!(cmdline_hash(b"console=ttyS0 root=/dev/vda"), parsed.cmdline);
}

#[test]
fn a_missing_initrd_is_the_hash_of_nothing() {
    let mut b = boot();
    b.initrd = None;
    let t = HashesTable::parse(&table_for(&b)).unwrap();
    assert_eq!(verify(&t, &blobs(&b)), Ok(()));
    assert_eq!(t.initrd, sha(b""));
    // An initrd delivered although the table says none.
    let mut with = boot();
    with.initrd = Some(b"x".to_vec());
    assert_eq!(
        verify(&t, &blobs(&with)),
        Err(HashesError::Mismatch(Blob::Initrd))
    );
}

#[test]
fn each_mismatch_is_named() {
    let b = boot();
    let t = HashesTable::parse(&table_for(&b)).unwrap();
    let mut k = boot();
    k.kernel[100] ^= 1;
    assert_eq!(
        verify(&t, &blobs(&k)),
        Err(HashesError::Mismatch(Blob::Kernel))
    );
    let mut s = boot();
    s.setup[0x1F1] ^= 1; // a patched setup header
    assert_eq!(
        verify(&t, &blobs(&s)),
        Err(HashesError::Mismatch(Blob::Kernel))
    );
    let mut i = boot();
    i.initrd = Some(b"initrd contentz".to_vec());
    assert_eq!(
        verify(&t, &blobs(&i)),
        Err(HashesError::Mismatch(Blob::Initrd))
    );
    let mut c = boot();
    c.cmdline.pop(); // without its NUL
    assert_eq!(
        verify(&t, &blobs(&c)),
        Err(HashesError::Mismatch(Blob::Cmdline))
    );
    // Several: the first in table order.
    let mut all = k;
    all.cmdline = b"x\0".to_vec();
    assert_eq!(
        verify(&t, &blobs(&all)),
        Err(HashesError::Mismatch(Blob::Cmdline))
    );
    assert!(HashesError::Mismatch(Blob::Kernel)
        .to_string()
        .contains("kernel"));
}

#[test]
fn each_malformed_table_is_refused() {
    let good = table_for(&boot());
    assert_eq!(HashesTable::parse(&[0u8; 176]), Err(HashesError::Missing));
    assert_eq!(
        HashesTable::parse(&good[..167]),
        Err(HashesError::Truncated { len: 167 })
    );
    let mut t = good.clone();
    t[15] ^= 0x80;
    assert!(matches!(
        HashesTable::parse(&t),
        Err(HashesError::BadTableGuid(_))
    ));
    // A zero GUID with a length is not "missing": something is there.
    let mut t = good.clone();
    t[..16].fill(0);
    assert!(matches!(
        HashesTable::parse(&t),
        Err(HashesError::BadTableGuid(_))
    ));
    for len in [0u16, 150, 176, 0xFFFF] {
        let mut t = good.clone();
        t[16..18].copy_from_slice(&len.to_le_bytes());
        assert_eq!(
            HashesTable::parse(&t),
            Err(HashesError::BadTableLength(len))
        );
    }
    // The kernel entry first (another order).
    let mut t = good.clone();
    t[18..34].copy_from_slice(&guid_bytes(KERNEL));
    assert_eq!(
        HashesTable::parse(&t),
        Err(HashesError::BadEntryGuid {
            expected: Blob::Cmdline,
            found: KERNEL_GUID
        })
    );
    let mut t = good.clone();
    t[18 + 2 * 50] ^= 1;
    assert!(matches!(
        HashesTable::parse(&t),
        Err(HashesError::BadEntryGuid {
            expected: Blob::Kernel,
            ..
        })
    ));
    for (entry, blob) in [(0, Blob::Cmdline), (1, Blob::Initrd), (2, Blob::Kernel)] {
        let mut t = good.clone();
        let at = 18 + entry * 50 + 16;
        t[at..at + 2].copy_from_slice(&52u16.to_le_bytes());
        assert_eq!(
            HashesTable::parse(&t),
            Err(HashesError::BadEntryLength { blob, len: 52 })
        );
    }
    // The padding is not looked at.
    let mut t = good.clone();
    t[170] = 0xFF;
    assert!(HashesTable::parse(&t).is_ok());
}

#[test]
fn the_comparison_sees_every_byte() {
    let a = [7u8; 32];
    for i in 0..32 {
        let mut b = a;
        b[i] ^= 0x40;
        assert!(!ct_eq(&a, &b));
    }
    assert!(ct_eq(&a, &[7u8; 32]));
}
