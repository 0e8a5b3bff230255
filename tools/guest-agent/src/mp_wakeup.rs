//! How the kernel woke the application processors: through the ACPI multiprocessor wakeup mailbox
//! (ACPI 6.4 §5.2.12.19), where the firmware parks them.
//!
//! The MADT (`/sys/firmware/acpi/tables/APIC`) says where the mailbox is, in its Multiprocessor
//! Wakeup Structure (type 0x10). To wake an AP the kernel writes the AP's `ApicId` and its
//! `WakeupVector` into the mailbox, then `Command` = 1 (wakeup); the AP acknowledges by writing
//! `Command` = 0 (noop). What the kernel wrote stays there, so after boot the mailbox shows the
//! last AP woken, the vector it was sent to (Linux's real-mode trampoline, below 1 MiB) and,
//! when that AP took the wakeup, `Command` 0.
//!
//! The agent reads the mailbox's first 16 bytes from `/dev/mem` at `MailboxAddress`, the way
//! [`crate::measurement`] reads the log area of an older kernel; `CONFIG_STRICT_DEVMEM` allows it
//! for a range that is neither RAM nor a busy resource, so the firmware must not report the
//! mailbox as RAM in the E820 map. A MADT without the structure is no error: the report's
//! `mp_wakeup` is then `null`. A missing or malformed MADT, or a mailbox that cannot be read, is
//! a failure line, and `mp_wakeup` is `null` too.
//!
//! Linux 6.12 (not 6.1) zeroes a version 0 structure's `MailboxAddress` in the MADT once it has
//! read it, so that a kexec'd kernel does not use the mailbox, and leaves the table's checksum
//! wrong ([`acpi::parse_madt_mp_wakeup`] says exactly which tables count as that state). That is
//! no error either: `mp_wakeup` has `cleared_by_os` `true`, `mailbox` 0, and `null` for what
//! the mailbox holds, since its address is gone; `/dev/mem` is not read. The agent never reads
//! a mailbox at address 0: a structure whose checksum holds and whose address is 0 is a failure
//! line, and `mp_wakeup` is `null`.

use crate::acpi::{self, MAILBOX_HEAD_SIZE};
use crate::failure::Failures;
use crate::report::MpWakeup;
use crate::tree::{parse_or_record, Tree, DEV_MEM};

/// The MADT.
pub const MADT_TABLE: &str = "/sys/firmware/acpi/tables/APIC";

/// The bytes of the mailbox the agent reads: [`MAILBOX_HEAD_SIZE`] (16, so the cast is lossless).
const MAILBOX_READ: u64 = MAILBOX_HEAD_SIZE as u64;

/// The MADT's Multiprocessor Wakeup Structure and the mailbox it points at, under `tree`; `None`
/// when the MADT has no such structure, or, with a failure line, when the MADT or the mailbox
/// cannot be read or parsed, or the MADT, with a right checksum, puts the mailbox at 0. When the
/// OS cleared the mailbox's address, the structure without the mailbox's contents.
pub(crate) fn collect(tree: &Tree<'_>, failures: &mut Failures) -> Option<MpWakeup> {
    let table = tree.read_bytes(MADT_TABLE, failures)?;
    let wakeup = parse_or_record(MADT_TABLE, acpi::parse_madt_mp_wakeup(&table), failures)??;
    let mut report = MpWakeup {
        mailbox_version: wakeup.mailbox_version,
        mailbox: wakeup.mailbox_address,
        cleared_by_os: wakeup.cleared_by_os,
        command: None,
        apic_id: None,
        wakeup_vector: None,
    };
    if wakeup.cleared_by_os {
        return Some(report);
    }
    let what = || {
        format!(
            "read the multiprocessor wakeup mailbox ({MAILBOX_HEAD_SIZE} bytes at {:#x}) from \
             {DEV_MEM}",
            wakeup.mailbox_address
        )
    };
    if wakeup.mailbox_address == 0 {
        failures.record(
            what(),
            "the MADT says the mailbox is at 0, with a checksum that holds: not read",
        );
        return None;
    }
    let mailbox = tree
        .read_physical(wakeup.mailbox_address, MAILBOX_READ)
        .and_then(|bytes| acpi::parse_mailbox(&bytes))
        .map_err(|e| failures.record(what(), e))
        .ok()?;
    report.command = Some(mailbox.command);
    report.apic_id = Some(mailbox.apic_id);
    report.wakeup_vector = Some(mailbox.wakeup_vector);
    Some(report)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::acpi::tests::{clear_mailbox_address, local_apic, madt, mp_wakeup};
    use crate::acpi::{MAILBOX_COMMAND_NOOP, MAILBOX_COMMAND_WAKEUP};
    use crate::measurement::tests::{write, write_mem};
    use std::fs;
    use std::path::Path;

    /// Where the fake mailbox is: a page below 1 MiB, as td-shim might put it.
    pub(crate) const MAILBOX: u64 = 0x7_e000;
    /// The wakeup vector Linux left: its trampoline, below 1 MiB.
    pub(crate) const WAKEUP_VECTOR: u64 = 0x9_a000;

    /// The mailbox's first 16 bytes.
    fn mailbox(command: u16, apic_id: u32, wakeup_vector: u64) -> Vec<u8> {
        let mut head = Vec::new();
        head.extend_from_slice(&command.to_le_bytes());
        head.extend_from_slice(&0u16.to_le_bytes());
        head.extend_from_slice(&apic_id.to_le_bytes());
        head.extend_from_slice(&wakeup_vector.to_le_bytes());
        head
    }

    /// A two-CPU VM under `root` whose kernel woke APIC ID 1 through the mailbox: the MADT with
    /// two local APICs and a version 0 wakeup structure, and the acknowledged mailbox in
    /// `/dev/mem` (the rest of the page is the firmware's, here 0xCC).
    pub(crate) fn write_woken_vm(root: &Path) {
        let table = madt(&[&local_apic(0), &local_apic(1), &mp_wakeup(MAILBOX, None)]);
        write(root, MADT_TABLE, &table);
        let mut page = vec![0xCC; 0x1000];
        page[..MAILBOX_HEAD_SIZE].copy_from_slice(&mailbox(MAILBOX_COMMAND_NOOP, 1, WAKEUP_VECTOR));
        write_mem(root, MAILBOX, &page);
    }

    /// The wakeup structure and mailbox under `root`, and the failure lines.
    fn wakeup(root: &Path) -> (Option<MpWakeup>, Vec<String>) {
        let mut failures = Failures::quiet();
        let wakeup = collect(&Tree::new(root), &mut failures);
        (wakeup, failures.into_lines())
    }

    #[test]
    fn the_mailbox_shows_the_last_ap_woken() {
        let dir = tempfile::tempdir().unwrap();
        write_woken_vm(dir.path());
        let (w, errors) = wakeup(dir.path());
        assert_eq!(errors, Vec::<String>::new());
        assert_eq!(
            w,
            Some(MpWakeup {
                mailbox_version: 0,
                mailbox: MAILBOX,
                cleared_by_os: false,
                command: Some(MAILBOX_COMMAND_NOOP),
                apic_id: Some(1),
                wakeup_vector: Some(WAKEUP_VECTOR),
            })
        );
    }

    #[test]
    fn a_version_1_structure_and_a_pending_wakeup_are_reported_as_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mailbox_address = 0x7fff_f000;
        let table = madt(&[
            &mp_wakeup(mailbox_address, Some(0x7fff_f800)),
            &local_apic(0),
        ]);
        write(root, MADT_TABLE, &table);
        write_mem(
            root,
            mailbox_address,
            &mailbox(MAILBOX_COMMAND_WAKEUP, 7, 0x1_0000),
        );
        let (w, errors) = wakeup(root);
        assert_eq!(errors, Vec::<String>::new());
        assert_eq!(
            w,
            Some(MpWakeup {
                mailbox_version: 1,
                mailbox: mailbox_address,
                cleared_by_os: false,
                command: Some(MAILBOX_COMMAND_WAKEUP),
                apic_id: Some(7),
                wakeup_vector: Some(0x1_0000),
            })
        );
    }

    /// What Linux 6.12 leaves under `root` after waking APIC ID 1: [`write_woken_vm`]'s MADT
    /// with the wakeup structure's `MailboxAddress` zeroed and the checksum left as it was.
    pub(crate) fn write_cleared_vm(root: &Path) {
        write_woken_vm(root);
        let mut table = madt(&[&local_apic(0), &local_apic(1), &mp_wakeup(MAILBOX, None)]);
        clear_mailbox_address(&mut table, 60);
        write(root, MADT_TABLE, &table);
    }

    #[test]
    fn a_mailbox_address_the_os_cleared_is_reported_without_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_cleared_vm(root);
        let cleared = Some(MpWakeup {
            mailbox_version: 0,
            mailbox: 0,
            cleared_by_os: true,
            command: None,
            apic_id: None,
            wakeup_vector: None,
        });
        assert_eq!(wakeup(root), (cleared.clone(), Vec::new()));
        // Nothing is read from /dev/mem, not even at 0.
        fs::remove_file(root.join("dev/mem")).unwrap();
        assert_eq!(wakeup(root), (cleared, Vec::new()));
    }

    #[test]
    fn a_bad_checksum_that_is_not_the_os_s_doing_is_an_error_line() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_woken_vm(root);
        let checksum = vec![
            "agent: parse /sys/firmware/acpi/tables/APIC: the checksum does not make the bytes \
             sum to zero"
                .to_owned(),
        ];
        // A version 1 structure with its address cleared.
        let mut v1 = madt(&[&local_apic(0), &mp_wakeup(MAILBOX, Some(MAILBOX + 0x800))]);
        clear_mailbox_address(&mut v1, 52);
        write(root, MADT_TABLE, &v1);
        assert_eq!(wakeup(root), (None, checksum.clone()));
        // A version 0 structure whose address is not 0, under a wrong checksum.
        let mut changed = madt(&[&local_apic(0), &local_apic(1), &mp_wakeup(MAILBOX, None)]);
        changed[69] ^= 0x10;
        write(root, MADT_TABLE, &changed);
        assert_eq!(wakeup(root), (None, checksum));
    }

    #[test]
    fn a_mailbox_at_0_under_a_right_checksum_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_woken_vm(root);
        write(root, MADT_TABLE, &madt(&[&mp_wakeup(0, None)]));
        assert_eq!(
            wakeup(root),
            (
                None,
                vec![
                    "agent: read the multiprocessor wakeup mailbox (16 bytes at 0x0) from \
                     /dev/mem: the MADT says the mailbox is at 0, with a checksum that holds: \
                     not read"
                        .to_owned()
                ]
            )
        );
    }

    #[test]
    fn a_madt_without_the_structure_is_null_without_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, MADT_TABLE, &madt(&[&local_apic(0), &local_apic(1)]));
        // No /dev/mem either: it is not read.
        assert_eq!(wakeup(root), (None, Vec::new()));
    }

    #[test]
    fn a_malformed_madt_is_an_error_line() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_woken_vm(root);
        let zero = madt(&[&local_apic(0), &[0x10, 0], &mp_wakeup(MAILBOX, None)]);
        write(root, MADT_TABLE, &zero);
        assert_eq!(
            wakeup(root),
            (
                None,
                vec![
                    "agent: parse /sys/firmware/acpi/tables/APIC: the structure at offset 52 \
                     (type 0x10) has length 0"
                        .to_owned()
                ]
            )
        );
        let cut = madt(&[&local_apic(0), &mp_wakeup(MAILBOX, None)[..10]]);
        write(root, MADT_TABLE, &cut);
        assert_eq!(
            wakeup(root),
            (
                None,
                vec![
                    "agent: parse /sys/firmware/acpi/tables/APIC: the structure at offset 52 \
                     (type 0x10, length 16) runs past the table's end at 62"
                        .to_owned()
                ]
            )
        );
        write(root, MADT_TABLE, b"table");
        assert_eq!(
            wakeup(root),
            (
                None,
                vec![
                    "agent: parse /sys/firmware/acpi/tables/APIC: 5 bytes, shorter than the \
                     MADT's 44"
                        .to_owned()
                ]
            )
        );
        fs::remove_file(root.join("sys/firmware/acpi/tables/APIC")).unwrap();
        assert_eq!(
            wakeup(root),
            (
                None,
                vec![
                    "agent: read /sys/firmware/acpi/tables/APIC: No such file or directory \
                     (os error 2)"
                        .to_owned()
                ]
            )
        );
    }

    #[test]
    fn a_mailbox_dev_mem_cannot_read_is_an_error_line() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_woken_vm(root);
        let mem_size = fs::metadata(root.join("dev/mem")).unwrap().len();
        for (address, why) in [
            (mem_size - 8, "failed to fill whole buffer"),
            (mem_size + 0x1000, "failed to fill whole buffer"),
            (
                u64::MAX - 8,
                "the area runs past the end of the address space",
            ),
        ] {
            write(root, MADT_TABLE, &madt(&[&mp_wakeup(address, None)]));
            let (w, errors) = wakeup(root);
            assert_eq!(w, None);
            assert_eq!(
                errors,
                [format!(
                    "agent: read the multiprocessor wakeup mailbox (16 bytes at {address:#x}) \
                     from /dev/mem: {why}"
                )]
            );
        }
        write_woken_vm(root);
        fs::remove_file(root.join("dev/mem")).unwrap();
        assert_eq!(
            wakeup(root),
            (
                None,
                vec![
                    "agent: read the multiprocessor wakeup mailbox (16 bytes at 0x7e000) from \
                     /dev/mem: open: No such file or directory (os error 2)"
                        .to_owned()
                ]
            )
        );
    }
}
