//! The firmware's measurements as the guest sees them: the CCEL ACPI table says where the CC event
//! log is (LASA) and how large its area is (LAML); the agent reads the area, parses and replays
//! the log with `td_shim::eventlog`, and compares the replayed RTMRs with the platform's.
//!
//! # Where the log is read
//!
//! Linux 6.4 and later export the log area as `/sys/firmware/acpi/tables/data/CCEL`; when that
//! file exists it is read. Older kernels (Debian's 6.1 cloud kernel) do not, so the agent reads
//! LAML bytes at offset LASA of `/dev/mem`. `CONFIG_STRICT_DEVMEM` lets `/dev/mem` read a range
//! that is neither RAM nor a busy resource; the firmware reports the log area as reserved in the
//! E820 map, which the kernel does not mark busy, so the read is allowed. Both paths are looked
//! up under the collection's root, so a fake tree can provide them.
//!
//! # The platform's registers
//!
//! On a plain VM (CC type 0) the firmware publishes its emulated RTMRs in an ACPI table with the
//! signature `RTMR`. On TDX the registers are in the quote that [`crate::evidence`] gets through
//! configfs-tsm and compares with this replay; SEV-SNP has no RTMRs. There the report's
//! `platform_rtmrs` is `null`, without an error line.

use crate::acpi::{self, Ccel, CC_TYPE_PLAIN};
use crate::failure::Failures;
use crate::report::Measurement;
use crate::tree::{parse_or_record, Tree};
use base64::Engine as _;
use td_shim::eventlog::{self, Rtmrs, RTMR_COUNT};

/// The CCEL table.
pub const CCEL_TABLE: &str = "/sys/firmware/acpi/tables/CCEL";
/// The log area, on Linux 6.4 and later.
pub const CCEL_DATA: &str = "/sys/firmware/acpi/tables/data/CCEL";
/// The emulated registers of a plain VM.
pub const RTMR_TABLE: &str = "/sys/firmware/acpi/tables/RTMR";
/// Physical memory, where older kernels leave the log area to be read.
pub use crate::tree::DEV_MEM;
/// The largest log area the agent reads (td-shim's is 64 KiB, OVMF's 256 KiB): a bigger LAML is
/// refused rather than allocated.
pub const MAX_LOG_AREA: u64 = 16 << 20;

/// The measurements under `tree`; `None`, with a failure line, when there is no CCEL table or
/// the log cannot be read or parsed.
pub(crate) fn collect(tree: &Tree<'_>, failures: &mut Failures) -> Option<Measurement> {
    let table = tree.read_bytes(CCEL_TABLE, failures)?;
    let ccel = parse_or_record(CCEL_TABLE, acpi::parse_ccel(&table), failures)?;
    let (source, area) = read_log_area(tree, &ccel, failures)?;
    let log = eventlog::parse(&area)
        .map_err(|e| failures.record(format_args!("parse the CC event log from {source}"), e))
        .ok()?;
    // The parser's end offset lies within the bytes it parsed.
    let used = &area[..log.end_offset()];
    let replayed = log.replay();
    let platform = platform_rtmrs(tree, ccel.cc_type, failures);
    Some(Measurement {
        cc_type: ccel.cc_type,
        log_base: ccel.lasa,
        log_area_size: ccel.laml,
        log_source: source.to_owned(),
        event_log: base64::engine::general_purpose::STANDARD.encode(used),
        events: log.events().len(),
        replayed_rtmrs: hex_registers(&replayed),
        platform_rtmrs: platform.as_ref().map(hex_registers),
        rtmrs_match: platform == Some(replayed),
    })
}

/// The log area and the guest path it was read from: the sysfs file if it exists, else
/// `/dev/mem`.
fn read_log_area(
    tree: &Tree<'_>,
    ccel: &Ccel,
    failures: &mut Failures,
) -> Option<(&'static str, Vec<u8>)> {
    if ccel.laml > MAX_LOG_AREA {
        failures.record(
            format_args!("read the CC event log"),
            format_args!(
                "the CCEL table's LAML {:#x} is above the {MAX_LOG_AREA:#x} bytes the agent reads",
                ccel.laml
            ),
        );
        return None;
    }
    match tree.path(CCEL_DATA).try_exists() {
        Ok(true) => tree
            .read_bytes(CCEL_DATA, failures)
            .map(|area| (CCEL_DATA, area)),
        Ok(false) => tree
            .read_physical(ccel.lasa, ccel.laml)
            .map_err(|e| {
                failures.record(
                    format_args!(
                        "read the CC event log ({:#x} bytes at LASA {:#x}) from {DEV_MEM}",
                        ccel.laml, ccel.lasa
                    ),
                    e,
                )
            })
            .ok()
            .map(|area| (DEV_MEM, area)),
        Err(e) => {
            failures.record(format_args!("look for {CCEL_DATA}"), e);
            None
        }
    }
}

/// The registers the platform holds (see the module documentation): the RTMR table on a plain
/// VM, `None` elsewhere.
fn platform_rtmrs(tree: &Tree<'_>, cc_type: u8, failures: &mut Failures) -> Option<Rtmrs> {
    if cc_type != CC_TYPE_PLAIN {
        return None;
    }
    let table = tree.read_bytes(RTMR_TABLE, failures)?;
    parse_or_record(RTMR_TABLE, acpi::parse_rtmr_table(&table), failures)
}

fn hex_registers(registers: &Rtmrs) -> [String; RTMR_COUNT] {
    registers.map(hex::encode)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::FileExt as _;
    use std::path::Path;
    use td_shim::acpi::{ccel, rtmr_table};
    use td_shim::eventlog::{EventLogWriter, EventType, SoftwareRtmrs};

    /// Where the fake log area is, as td-shim puts it.
    pub(crate) const LASA: u64 = 0x1a_0000;
    /// The size of the fake log area, td-shim's.
    pub(crate) const LAML: u64 = 0x1_0000;

    /// A log area written by td-shim's writer with one event in each RTMR and a second one in
    /// RTMR1; the area, the used part's length and the registers the writer extended.
    pub(crate) fn fake_log() -> (Vec<u8>, usize, Rtmrs) {
        let mut area = vec![0; LAML as usize];
        let mut rtmrs = SoftwareRtmrs::default();
        let mut writer = EventLogWriter::new(&mut area, b"td-shim").unwrap();
        let events: [(u32, EventType, &[u8]); 5] = [
            (1, EventType::EFI_HANDOFF_TABLES2, b"td hob"),
            (2, EventType::EFI_BOOT_SERVICES_APPLICATION, b"kernel"),
            (2, EventType::SEPARATOR, b"\0\0\0\0"),
            (3, EventType::IPL, b"cmdline"),
            (4, EventType::EVENT_TAG, b"runtime"),
        ];
        for (mr_index, event_type, data) in events {
            writer
                .log(&mut rtmrs, mr_index, event_type.0, data, data)
                .unwrap();
        }
        let used = writer.used();
        (area, used, rtmrs.0)
    }

    /// Writes `bytes` to the guest path `guest_path` under `root`.
    pub(crate) fn write(root: &Path, guest_path: &str, bytes: &[u8]) {
        let path = root.join(guest_path.trim_start_matches('/'));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }

    /// Writes `bytes` at physical address `at` of the fake `/dev/mem`, creating it if needed; what
    /// was there before stays (zeros where nothing was written).
    pub(crate) fn write_mem(root: &Path, at: u64, bytes: &[u8]) {
        fs::create_dir_all(root.join("dev")).unwrap();
        let mem = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(root.join("dev/mem"))
            .unwrap();
        mem.write_all_at(bytes, at).unwrap();
    }

    /// A plain VM's measurements under `root`, as the 6.1 kernel shows them: the CCEL table, the
    /// log area in `/dev/mem` and the RTMR table with the registers the log replays to. Returns
    /// the used part of the log and the registers.
    pub(crate) fn write_plain_vm(root: &Path) -> (Vec<u8>, Rtmrs) {
        let (area, used, rtmrs) = fake_log();
        write(root, CCEL_TABLE, &ccel(CC_TYPE_PLAIN, 0, LAML, LASA));
        write(root, RTMR_TABLE, &rtmr_table(&rtmrs));
        write_mem(root, LASA, &area);
        (area[..used].to_vec(), rtmrs)
    }

    /// The measurements under `root` and the failure lines.
    fn measure(root: &Path) -> (Option<Measurement>, Vec<String>) {
        let mut failures = Failures::quiet();
        let measurement = collect(&Tree::new(root), &mut failures);
        (measurement, failures.into_lines())
    }

    #[test]
    fn a_plain_vm_log_replays_to_its_registers() {
        let dir = tempfile::tempdir().unwrap();
        let (used, rtmrs) = write_plain_vm(dir.path());
        let (m, errors) = measure(dir.path());
        assert_eq!(errors, Vec::<String>::new());
        let m = m.unwrap();
        assert_eq!(m.cc_type, 0);
        assert_eq!(m.log_base, LASA);
        assert_eq!(m.log_area_size, LAML);
        assert_eq!(m.log_source, DEV_MEM);
        assert_eq!(m.events, 5);
        let expected = rtmrs.map(hex::encode);
        assert_eq!(m.replayed_rtmrs, expected);
        assert_eq!(m.platform_rtmrs, Some(expected));
        assert!(m.rtmrs_match);
        // The used part only: no 0xFF padding, and it parses and replays the same.
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(&m.event_log)
            .unwrap();
        assert_eq!(decoded, used);
        assert!(decoded.len() < LAML as usize);
        let log = eventlog::parse(&decoded).unwrap();
        assert_eq!(log.end(), eventlog::LogEnd::EndOfBuffer);
        assert_eq!(log.replay(), rtmrs);
    }

    #[test]
    fn the_sysfs_log_file_is_read_when_the_kernel_has_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let (area, used, rtmrs) = fake_log();
        write(root, CCEL_TABLE, &ccel(CC_TYPE_PLAIN, 0, LAML, LASA));
        write(root, RTMR_TABLE, &rtmr_table(&rtmrs));
        write(root, CCEL_DATA, &area);
        // No /dev/mem at all: it is not needed.
        let (m, errors) = measure(root);
        assert_eq!(errors, Vec::<String>::new());
        let m = m.unwrap();
        assert_eq!(m.log_source, CCEL_DATA);
        assert!(m.rtmrs_match);
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(&m.event_log)
            .unwrap();
        assert_eq!(decoded, area[..used]);
    }

    #[test]
    fn a_tampered_rtmr_table_does_not_match() {
        let dir = tempfile::tempdir().unwrap();
        let (_, mut rtmrs) = write_plain_vm(dir.path());
        rtmrs[2][47] ^= 1;
        write(dir.path(), RTMR_TABLE, &rtmr_table(&rtmrs));
        let (m, errors) = measure(dir.path());
        assert_eq!(errors, Vec::<String>::new());
        let m = m.unwrap();
        assert_eq!(m.platform_rtmrs, Some(rtmrs.map(hex::encode)));
        assert_ne!(m.platform_rtmrs.as_ref(), Some(&m.replayed_rtmrs));
        assert!(!m.rtmrs_match);
    }

    #[test]
    fn a_tampered_log_does_not_match() {
        let dir = tempfile::tempdir().unwrap();
        let (area, _, _) = fake_log();
        write_plain_vm(dir.path());
        let mut tampered = area;
        // The first event's digest: after the Spec ID record and 14 bytes of header.
        let digest_at = eventlog::SPEC_ID_RECORD_SIZE + b"td-shim".len() + 14;
        tampered[digest_at] ^= 1;
        write_mem(dir.path(), LASA, &tampered);
        let (m, errors) = measure(dir.path());
        assert_eq!(errors, Vec::<String>::new());
        let m = m.unwrap();
        assert_eq!(m.events, 5);
        assert_ne!(m.replayed_rtmrs[0], m.platform_rtmrs.as_ref().unwrap()[0]);
        assert_eq!(m.replayed_rtmrs[1], m.platform_rtmrs.as_ref().unwrap()[1]);
        assert!(!m.rtmrs_match);
    }

    #[test]
    fn a_ccel_pointing_outside_memory_is_an_error_line() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_plain_vm(root);
        let mem_size = fs::metadata(root.join("dev/mem")).unwrap().len();
        for (lasa, laml, why) in [
            (mem_size - 0x100, LAML, "failed to fill whole buffer"),
            (mem_size + 0x1000, LAML, "failed to fill whole buffer"),
            (
                u64::MAX - 0x10,
                LAML,
                "runs past the end of the address space",
            ),
            (LASA, MAX_LOG_AREA + 1, "above the 0x1000000 bytes"),
        ] {
            write(root, CCEL_TABLE, &ccel(CC_TYPE_PLAIN, 0, laml, lasa));
            let (m, errors) = measure(root);
            assert_eq!(m, None);
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert!(errors[0].starts_with("agent: read the CC event log"));
            assert!(errors[0].contains(why), "{errors:?}");
        }
        fs::remove_file(root.join("dev/mem")).unwrap();
        write(root, CCEL_TABLE, &ccel(CC_TYPE_PLAIN, 0, LAML, LASA));
        let (_, errors) = measure(root);
        assert_eq!(
            errors,
            [
                "agent: read the CC event log (0x10000 bytes at LASA 0x1a0000) from /dev/mem: \
              open: No such file or directory (os error 2)"
            ]
        );
    }

    #[test]
    fn a_log_the_parser_refuses_is_an_error_line() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_plain_vm(root);
        // Not a crypto-agile log: the first event is not EV_NO_ACTION.
        let (mut area, _, _) = fake_log();
        area[4] = 4;
        write_mem(root, LASA, &area);
        let (m, errors) = measure(root);
        assert_eq!(m, None);
        assert_eq!(
            errors,
            [
                "agent: parse the CC event log from /dev/mem: event log: the first event has type \
              0x4, not EV_NO_ACTION: not a crypto-agile log"
            ]
        );
        // An all-0xFF area: nothing was ever written.
        write_mem(root, LASA, &vec![0xFF; LAML as usize]);
        let (_, errors) = measure(root);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with("agent: parse the CC event log from /dev/mem: event log: "));
    }

    #[test]
    fn no_ccel_table_is_an_error_line() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_plain_vm(root);
        fs::remove_file(root.join("sys/firmware/acpi/tables/CCEL")).unwrap();
        let (m, errors) = measure(root);
        assert_eq!(m, None);
        assert_eq!(
            errors,
            ["agent: read /sys/firmware/acpi/tables/CCEL: No such file or directory (os error 2)"]
        );
        write(root, CCEL_TABLE, b"CCEL");
        let (_, errors) = measure(root);
        assert_eq!(
            errors,
            ["agent: parse /sys/firmware/acpi/tables/CCEL: 4 bytes, but the CCEL table has 56"]
        );
    }

    #[test]
    fn a_plain_vm_without_rtmr_table_has_no_platform_registers() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_plain_vm(root);
        fs::remove_file(root.join("sys/firmware/acpi/tables/RTMR")).unwrap();
        let (m, errors) = measure(root);
        let m = m.unwrap();
        assert_eq!(m.platform_rtmrs, None);
        assert!(!m.rtmrs_match);
        assert_eq!(
            errors,
            ["agent: read /sys/firmware/acpi/tables/RTMR: No such file or directory (os error 2)"]
        );
        write(root, RTMR_TABLE, &ccel(0, 0, 0, 0));
        let (m, errors) = measure(root);
        assert_eq!(m.unwrap().platform_rtmrs, None);
        assert_eq!(
            errors,
            ["agent: parse /sys/firmware/acpi/tables/RTMR: 56 bytes, but the RTMR table has 228"]
        );
    }

    #[test]
    fn tdx_has_no_platform_registers_yet_and_says_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_plain_vm(root);
        write(root, CCEL_TABLE, &ccel(2, 0, LAML, LASA));
        let (m, errors) = measure(root);
        assert_eq!(errors, Vec::<String>::new());
        let m = m.unwrap();
        assert_eq!(m.cc_type, 2);
        assert_eq!(m.events, 5);
        assert_eq!(m.platform_rtmrs, None);
        assert!(!m.rtmrs_match);
    }
}
