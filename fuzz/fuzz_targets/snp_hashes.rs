//! The kernel-hashes table QEMU writes for measured direct boot (`kernel-hashes=on`):
//! `td_shim::snp::hashes::HashesTable::parse` and `verify`.
//!
//! Input: the table area (at least 168 bytes), then, after byte 176, the blobs fw_cfg would
//! deliver, separated by `|`: command line (with its NUL), initrd (absent if there is no second
//! `|`), setup ‖ kernel. Checked: a parsed table holds the hashes at their offsets; each error is
//! true of the input; `verify` succeeds exactly when every hash matches, and otherwise names the
//! first mismatch in table order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use td_shim::snp::hashes::{
    verify, Blob, HashesError, HashesTable, CMDLINE_GUID, ENTRY_SIZE, INITRD_GUID, KERNEL_GUID,
    TABLE_GUID, TABLE_SIZE,
};

fuzz_target!(|data: &[u8]| {
    let t = match HashesTable::parse(data) {
        Ok(t) => t,
        Err(e) => {
            let _ = e.to_string();
            match e {
                HashesError::Truncated { len } => assert!(len < TABLE_SIZE && len == data.len()),
                HashesError::Missing => assert!(data[..18].iter().all(|&b| b == 0)),
                HashesError::BadTableGuid(g) => assert_ne!(g, TABLE_GUID),
                HashesError::BadTableLength(l) => assert_ne!(usize::from(l), TABLE_SIZE),
                HashesError::BadEntryGuid { expected, found } => assert_ne!(found, expected.guid()),
                HashesError::BadEntryLength { len, .. } => assert_ne!(usize::from(len), ENTRY_SIZE),
                HashesError::Mismatch(_) => panic!("parse cannot report a mismatch"),
            }
            return;
        }
    };
    assert_eq!(&data[..16], TABLE_GUID.as_bytes());
    for (i, g) in [CMDLINE_GUID, INITRD_GUID, KERNEL_GUID].iter().enumerate() {
        assert_eq!(&data[18 + i * ENTRY_SIZE..][..16], g.as_bytes());
    }
    assert_eq!(&data[18 + 18..][..32], &t.cmdline);
    assert_eq!(&data[18 + 50 + 18..][..32], &t.initrd);
    assert_eq!(&data[18 + 100 + 18..][..32], &t.kernel);
    assert_eq!(verify(&t, &t), Ok(()));

    let rest = data.get(176..).unwrap_or(&[]);
    let mut parts = rest.splitn(3, |&b| b == b'|');
    let cmdline = parts.next().unwrap_or(&[]);
    let (initrd, kernel) = match (parts.next(), parts.next()) {
        (Some(i), Some(k)) => (Some(i), k),
        (Some(k), None) => (None, k),
        _ => (None, &[][..]),
    };
    let (setup, kernel) = kernel.split_at(kernel.len() / 2);
    let blobs = HashesTable::of_blobs(setup, kernel, initrd, cmdline);
    let first = [
        (Blob::Cmdline, t.cmdline == blobs.cmdline),
        (Blob::Initrd, t.initrd == blobs.initrd),
        (Blob::Kernel, t.kernel == blobs.kernel),
    ]
    .into_iter()
    .find(|(_, ok)| !ok);
    match first {
        None => assert_eq!(verify(&t, &blobs), Ok(())),
        Some((b, _)) => assert_eq!(verify(&t, &blobs), Err(HashesError::Mismatch(b))),
    }
});
