//! Collecting the report from a root directory: `/` in the guest, a fake tree in tests. Every path
//! below is the guest's path; it is looked up under the root, and failure lines name the guest path.

use crate::failure::Failures;
use crate::report::{MemmapEntry, Report};
use crate::tree::{parse_or_record, Tree};
use crate::{evidence, measurement, mp_wakeup};
use std::fs;
use std::io;
use std::path::Path;

const OSRELEASE: &str = "/proc/sys/kernel/osrelease";
const CMDLINE: &str = "/proc/cmdline";
const CPUS_ONLINE: &str = "/sys/devices/system/cpu/online";
const CPUINFO: &str = "/proc/cpuinfo";
const MEMINFO: &str = "/proc/meminfo";
const ACPI_TABLES: &str = "/sys/firmware/acpi/tables";
const MEMMAP: &str = "/sys/firmware/memmap";
/// Written by `td-shim-tool initramfs`.
const INITRD_ID: &str = "/etc/initrd-id";

/// Collects the report under `root`. `uname_release` gives the kernel release when
/// `/proc/sys/kernel/osrelease` cannot be read. Failures seen before (`failures`) and during the
/// collection end up in the report's `errors`.
pub fn collect(
    root: &Path,
    uname_release: impl FnOnce() -> io::Result<String>,
    failures: Failures,
) -> Report {
    collect_from(&Tree::new(root), uname_release, failures)
}

/// [`collect`] from `tree`, which in tests may have a fake kernel.
pub(crate) fn collect_from(
    tree: &Tree<'_>,
    uname_release: impl FnOnce() -> io::Result<String>,
    mut failures: Failures,
) -> Report {
    let f = &mut failures;
    let kernel = tree
        .read_text(OSRELEASE, f)
        .map(|text| text.trim().to_owned())
        .or_else(|| match uname_release() {
            Ok(release) => Some(release),
            Err(e) => {
                f.record("uname", e);
                None
            }
        });
    let cmdline = tree
        .read_text(CMDLINE, f)
        .map(|text| strip_newline(&text).to_owned());
    let cpus_online = tree
        .read_text(CPUS_ONLINE, f)
        .map(|text| text.trim().to_owned());
    let cpu_count = tree
        .read_text(CPUINFO, f)
        .and_then(|text| parse_or_record(CPUINFO, count_processors(&text), f));
    let mem_total_kib = tree
        .read_text(MEMINFO, f)
        .and_then(|text| parse_or_record(MEMINFO, parse_mem_total_kib(&text), f));
    let acpi_tables = acpi_tables(tree, f);
    let e820 = memmap(tree, f);
    let initrd_id = tree
        .read_text(INITRD_ID, f)
        .map(|text| strip_newline(&text).to_owned());
    let measurement = measurement::collect(tree, f);
    let mp_wakeup = mp_wakeup::collect(tree, f);
    let replayed = measurement.as_ref().map(|m| &m.replayed_rtmrs);
    let evidence = evidence::collect(tree, cmdline.as_deref(), replayed, f);
    Report {
        kernel,
        cmdline,
        cpus_online,
        cpu_count,
        mem_total_kib,
        acpi_tables,
        e820,
        initrd_id,
        measurement,
        mp_wakeup,
        evidence,
        errors: failures.into_lines(),
    }
}

fn acpi_tables(tree: &Tree<'_>, failures: &mut Failures) -> Vec<String> {
    let mut names = Vec::new();
    for entry in tree.list_dir(ACPI_TABLES, failures) {
        let name = match entry.file_name().into_string() {
            Ok(name) => name,
            Err(raw) => {
                failures.record(
                    format_args!("list {ACPI_TABLES}"),
                    format_args!("{raw:?} is not UTF-8"),
                );
                continue;
            }
        };
        match fs::metadata(entry.path()) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => names.push(name),
            Err(e) => failures.record(format_args!("stat {ACPI_TABLES}/{name}"), e),
        }
    }
    names.sort_unstable();
    names
}

/// The firmware memory map: one directory per range holding `start`, `end` and `type`.
fn memmap(tree: &Tree<'_>, failures: &mut Failures) -> Vec<MemmapEntry> {
    let mut entries: Vec<MemmapEntry> = tree
        .list_dir(MEMMAP, failures)
        .into_iter()
        .filter_map(|dir| {
            let guest_dir = format!("{MEMMAP}/{}", dir.file_name().to_string_lossy());
            memmap_entry(tree, &guest_dir, failures)
        })
        .collect();
    entries.sort_unstable();
    entries
}

fn memmap_entry(tree: &Tree<'_>, guest_dir: &str, failures: &mut Failures) -> Option<MemmapEntry> {
    let mut address = |field: &str| {
        let guest_path = format!("{guest_dir}/{field}");
        let text = tree.read_text(&guest_path, failures)?;
        parse_or_record(&guest_path, parse_hex_u64(&text), failures)
    };
    let start = address("start");
    let end = address("end");
    let kind = tree
        .read_text(&format!("{guest_dir}/type"), failures)
        .map(|text| text.trim().to_owned());
    Some(MemmapEntry {
        start: start?,
        end: end?,
        kind: kind?,
    })
}

fn strip_newline(text: &str) -> &str {
    text.strip_suffix('\n').unwrap_or(text)
}

/// The number of `processor : N` lines in `/proc/cpuinfo`.
fn count_processors(cpuinfo: &str) -> Result<usize, String> {
    let count = cpuinfo
        .lines()
        .filter(|line| line.split(':').next().map(str::trim) == Some("processor"))
        .count();
    if count == 0 {
        return Err("no `processor` line".into());
    }
    Ok(count)
}

/// `MemTotal:  16318012 kB` from `/proc/meminfo`.
fn parse_mem_total_kib(meminfo: &str) -> Result<u64, String> {
    let line = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .ok_or("no `MemTotal:` line")?;
    match line.split_whitespace().collect::<Vec<_>>()[..] {
        [number, "kB"] => number
            .parse()
            .map_err(|e| format!("MemTotal `{number}`: {e}")),
        _ => Err(format!("MemTotal `{}` is not `<number> kB`", line.trim())),
    }
}

/// A hex number as sysfs writes addresses: `0x1fffffff`, optional `0x`, surrounding whitespace
/// (the trailing newline) ignored.
pub fn parse_hex_u64(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let digits = trimmed
        .strip_prefix("0x")
        .or_else(|| trimmed.strip_prefix("0X"))
        .unwrap_or(trimmed);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("`{trimmed}` is not a hex number"));
    }
    u64::from_str_radix(digits, 16).map_err(|e| format!("`{trimmed}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake guest tree with the files a small VM has.
    fn fake_tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let write = |path: &str, text: &str| {
            let path = dir.path().join(path.trim_start_matches('/'));
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        };
        write(OSRELEASE, "6.1.0-28-cloud-amd64\n");
        write(CMDLINE, "console=ttyS0 panic=-1 \n");
        write(CPUS_ONLINE, "0-1\n");
        write(
            CPUINFO,
            "processor\t: 0\nvendor_id\t: GenuineIntel\n\nprocessor\t: 1\nvendor_id\t: GenuineIntel\n\n",
        );
        write(
            MEMINFO,
            "MemFree:          900000 kB\nMemTotal:        2014624 kB\n",
        );
        for table in ["FACP", "DSDT", "SSDT1"] {
            write(&format!("{ACPI_TABLES}/{table}"), "table");
        }
        // The MADT with the multiprocessor wakeup structure, and the mailbox in /dev/mem.
        mp_wakeup::tests::write_woken_vm(dir.path());
        // CCEL, RTMR and the log in /dev/mem, as Linux 6.1 shows them.
        measurement::tests::write_plain_vm(dir.path());
        fs::create_dir_all(dir.path().join("sys/firmware/acpi/tables/dynamic")).unwrap();
        let ranges = [
            ("0x100000", "0x7fffffff", "System RAM"),
            ("0x0", "0x9fbff", "System RAM"),
            ("0xffffffffff000000", "0xFFFFFFFFFFFFFFFF", "Reserved"),
            ("0x9fc00", "0x9ffff", "Reserved"),
        ];
        // Directory order does not follow addresses: 10 sorts before 2 as a name.
        for (n, (start, end, kind)) in [10, 2, 0, 1].into_iter().zip(ranges) {
            write(&format!("{MEMMAP}/{n}/start"), &format!("{start}\n"));
            write(&format!("{MEMMAP}/{n}/end"), &format!("{end}\n"));
            write(&format!("{MEMMAP}/{n}/type"), &format!("{kind}\n"));
        }
        write(INITRD_ID, "td-shim-agent");
        dir
    }

    fn no_uname() -> io::Result<String> {
        Err(io::Error::other("not asked"))
    }

    #[test]
    fn collects_a_complete_tree_without_errors() {
        let tree = fake_tree();
        let report = collect(tree.path(), no_uname, Failures::quiet());
        assert_eq!(report.errors, Vec::<String>::new());
        assert_eq!(report.kernel.as_deref(), Some("6.1.0-28-cloud-amd64"));
        assert_eq!(report.cmdline.as_deref(), Some("console=ttyS0 panic=-1 "));
        assert_eq!(report.cpus_online.as_deref(), Some("0-1"));
        assert_eq!(report.cpu_count, Some(2));
        assert_eq!(report.mem_total_kib, Some(2_014_624));
        assert_eq!(
            report.acpi_tables,
            ["APIC", "CCEL", "DSDT", "FACP", "RTMR", "SSDT1"]
        );
        assert_eq!(report.initrd_id.as_deref(), Some("td-shim-agent"));
        // A plain VM: no configfs-tsm, no /dev/tdx_guest.
        assert_eq!(report.evidence, None);
        let measurement = report.measurement.unwrap();
        assert_eq!(measurement.events, 5);
        assert!(measurement.rtmrs_match);
        let wakeup = report.mp_wakeup.unwrap();
        assert_eq!(wakeup.mailbox, mp_wakeup::tests::MAILBOX);
        assert!(!wakeup.cleared_by_os);
        assert_eq!((wakeup.command, wakeup.apic_id), (Some(0), Some(1)));
        assert!(wakeup.wakeup_vector.is_some_and(|v| v < 0x10_0000));
    }

    #[test]
    fn a_td_with_configfs_tsm_reports_the_quote_next_to_the_log() {
        use evidence::tests::{write_td, FakeTsm, Outblob, NONCE_HEX, REAL_QUOTE};
        let dir = fake_tree();
        let root = dir.path();
        // The real CCEL table (TDX) and log replace the plain VM's; the TSM returns the real quote.
        write_td(root, &format!("console=hvc0 td_shim.nonce={NONCE_HEX}"));
        let tsm = FakeTsm::new(Outblob::Fixed(REAL_QUOTE.to_vec()));
        let report = collect_from(&Tree::with_kernel(root, &tsm), no_uname, Failures::quiet());
        assert_eq!(report.errors, Vec::<String>::new());
        let value = serde_json::to_value(&report).unwrap();
        assert_eq!(value["measurement"]["cc_type"], 2);
        assert!(value["measurement"]["platform_rtmrs"].is_null());
        let evidence = &value["evidence"];
        let mut keys: Vec<&str> = evidence
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "generation",
                "mrtd",
                "nonce",
                "nonce_source",
                "provider",
                "quote_base64",
                "quote_size",
                "report_data",
                "report_data_matches",
                "rtmrs",
                "rtmrs_match_quote",
                "sev_guest_device",
                "snp_report",
                "source",
                "tdx_guest_device"
            ]
        );
        assert_eq!(evidence["rtmrs"], value["measurement"]["replayed_rtmrs"]);
        assert_eq!(evidence["rtmrs_match_quote"], true);
        assert_eq!(evidence["report_data_matches"], false);
        assert_eq!(evidence["nonce"], format!("{NONCE_HEX:0<128}"));
        assert_eq!(evidence["quote_size"], 8000);
        assert_eq!(evidence["provider"], "tdx_guest");
        assert_eq!(serde_json::from_value::<Report>(value).unwrap(), report);
    }

    #[test]
    fn a_madt_the_kernel_cleared_the_mailbox_address_of_is_no_error() {
        let tree = fake_tree();
        mp_wakeup::tests::write_cleared_vm(tree.path());
        let report = collect(tree.path(), no_uname, Failures::quiet());
        assert_eq!(report.errors, Vec::<String>::new());
        let value = serde_json::to_value(&report).unwrap();
        assert_eq!(
            value["mp_wakeup"],
            serde_json::json!({
                "mailbox_version": 0,
                "mailbox": 0,
                "cleared_by_os": true,
                "command": null,
                "apic_id": null,
                "wakeup_vector": null,
            })
        );
    }

    #[test]
    fn memmap_is_sorted_by_start_and_parsed_from_hex() {
        let tree = fake_tree();
        let report = collect(tree.path(), no_uname, Failures::quiet());
        let ranges: Vec<(u64, u64, &str)> = report
            .e820
            .iter()
            .map(|e| (e.start, e.end, e.kind.as_str()))
            .collect();
        assert_eq!(
            ranges,
            [
                (0, 0x9fbff, "System RAM"),
                (0x9fc00, 0x9ffff, "Reserved"),
                (0x10_0000, 0x7fff_ffff, "System RAM"),
                (0xffff_ffff_ff00_0000, u64::MAX, "Reserved"),
            ]
        );
    }

    #[test]
    fn report_json_has_the_documented_shape() {
        let tree = fake_tree();
        let report = collect(tree.path(), no_uname, Failures::quiet());
        let value = serde_json::to_value(&report).unwrap();
        assert_eq!(value["kernel"], "6.1.0-28-cloud-amd64");
        assert_eq!(value["cpus_online"], "0-1");
        assert_eq!(value["cpu_count"], 2);
        assert_eq!(value["mem_total_kib"], 2_014_624);
        assert_eq!(value["acpi_tables"][0], "APIC");
        assert_eq!(value["e820"][2]["start"], 0x10_0000);
        assert_eq!(value["e820"][2]["end"], 0x7fff_ffff);
        assert_eq!(value["e820"][2]["type"], "System RAM");
        assert_eq!(value["initrd_id"], "td-shim-agent");
        assert_eq!(value["measurement"]["cc_type"], 0);
        assert_eq!(value["measurement"]["log_base"], 0x1a_0000);
        assert_eq!(value["measurement"]["log_area_size"], 0x1_0000);
        assert_eq!(value["measurement"]["log_source"], "/dev/mem");
        assert!(value["measurement"]["event_log"].is_string());
        assert_eq!(value["measurement"]["events"], 5);
        assert_eq!(
            value["measurement"]["replayed_rtmrs"]
                .as_array()
                .unwrap()
                .len(),
            4
        );
        assert_eq!(
            value["measurement"]["replayed_rtmrs"],
            value["measurement"]["platform_rtmrs"]
        );
        assert_eq!(value["measurement"]["rtmrs_match"], true);
        assert_eq!(value["mp_wakeup"]["mailbox_version"], 0);
        assert_eq!(value["mp_wakeup"]["mailbox"], 0x7_e000);
        assert_eq!(value["mp_wakeup"]["cleared_by_os"], false);
        assert_eq!(value["mp_wakeup"]["command"], 0);
        assert_eq!(value["mp_wakeup"]["apic_id"], 1);
        assert_eq!(value["mp_wakeup"]["wakeup_vector"], 0x9_a000);
        assert!(value["evidence"].is_null());
        assert_eq!(value["errors"], serde_json::json!([]));
    }

    #[test]
    fn an_empty_root_gives_error_lines_not_a_panic() {
        let empty = tempfile::tempdir().unwrap();
        let mut before = Failures::quiet();
        before.record("mount /proc", "denied");
        let report = collect(empty.path(), no_uname, before);
        assert_eq!(report.kernel, None);
        assert_eq!(report.cmdline, None);
        assert_eq!(report.cpu_count, None);
        assert_eq!(report.mem_total_kib, None);
        assert!(report.acpi_tables.is_empty());
        assert!(report.e820.is_empty());
        assert_eq!(report.initrd_id, None);
        assert_eq!(report.measurement, None);
        assert_eq!(report.mp_wakeup, None);
        assert_eq!(report.errors[0], "agent: mount /proc: denied");
        assert_eq!(
            report.errors[1].split(": ").take(2).collect::<Vec<_>>(),
            ["agent", "read /proc/sys/kernel/osrelease"]
        );
        assert_eq!(report.errors[2], "agent: uname: not asked");
        for path in [
            CMDLINE,
            CPUS_ONLINE,
            CPUINFO,
            MEMINFO,
            INITRD_ID,
            measurement::CCEL_TABLE,
            mp_wakeup::MADT_TABLE,
        ] {
            let prefix = format!("agent: read {path}: ");
            assert!(
                report.errors.iter().any(|line| line.starts_with(&prefix)),
                "{prefix}"
            );
        }
        for dir in [ACPI_TABLES, MEMMAP] {
            let prefix = format!("agent: list {dir}: ");
            assert!(
                report.errors.iter().any(|line| line.starts_with(&prefix)),
                "{prefix}"
            );
        }
        assert_eq!(report.errors.len(), 12);
        assert!(report.errors.iter().all(|line| !line.contains('\n')));
    }

    #[test]
    fn uname_stands_in_for_osrelease() {
        let empty = tempfile::tempdir().unwrap();
        let report = collect(empty.path(), || Ok("6.9.0".into()), Failures::quiet());
        assert_eq!(report.kernel.as_deref(), Some("6.9.0"));
    }

    #[test]
    fn broken_files_give_error_lines_and_skip_only_what_is_broken() {
        let tree = fake_tree();
        let root = tree.path();
        fs::write(root.join("sys/firmware/memmap/2/start"), "0xzz\n").unwrap();
        fs::remove_file(root.join("sys/firmware/memmap/0/type")).unwrap();
        fs::write(root.join("proc/meminfo"), "MemTotal: 12 MB\n").unwrap();
        fs::write(root.join("proc/cpuinfo"), "flags: fpu\n").unwrap();
        fs::write(root.join("proc/cmdline"), [0xff, 0xfe]).unwrap();
        let report = collect(root, no_uname, Failures::quiet());
        assert_eq!(report.e820.len(), 2);
        assert_eq!(report.mem_total_kib, None);
        assert_eq!(report.cpu_count, None);
        assert_eq!(report.cmdline, None);
        // The memmap directories are read in directory order: compare the lines as a set.
        let mut errors = report.errors.clone();
        errors.sort_unstable();
        assert_eq!(
            errors,
            [
                "agent: parse /proc/cpuinfo: no `processor` line",
                "agent: parse /proc/meminfo: MemTotal `12 MB` is not `<number> kB`",
                "agent: parse /sys/firmware/memmap/2/start: `0xzz` is not a hex number",
                "agent: read /proc/cmdline: stream did not contain valid UTF-8",
                "agent: read /sys/firmware/memmap/0/type: No such file or directory (os error 2)",
            ]
        );
    }

    #[test]
    fn hex_parsing() {
        assert_eq!(parse_hex_u64("0x0\n"), Ok(0));
        assert_eq!(parse_hex_u64("0xFFFFFFFFFFFFFFFF"), Ok(u64::MAX));
        assert_eq!(parse_hex_u64("1f"), Ok(0x1f));
        assert!(parse_hex_u64("0x").is_err());
        assert!(parse_hex_u64("").is_err());
        assert!(parse_hex_u64("0x+1").is_err());
        assert!(parse_hex_u64("0x10000000000000000").is_err());
        assert!(parse_hex_u64("-0x1").is_err());
    }
}
