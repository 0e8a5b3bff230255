//! The report: one JSON document between two marker lines on the console, and how a reader of the
//! console (the end-to-end tests) finds it again.

use serde::{Deserialize, Serialize};

/// The line before the JSON document.
pub const BEGIN_MARKER: &str = "----- BEGIN TD-SHIM AGENT REPORT -----";

/// The line after the JSON document.
pub const END_MARKER: &str = "----- END TD-SHIM AGENT REPORT -----";

/// What the agent saw. A value it could not read is `null` (or an empty array) and its reason is
/// in `errors`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The kernel release (`/proc/sys/kernel/osrelease`, else `uname`).
    pub kernel: Option<String>,
    /// The kernel command line (`/proc/cmdline` without its trailing newline).
    pub cmdline: Option<String>,
    /// The online CPUs as the kernel lists them (`/sys/devices/system/cpu/online`, e.g. `0-3`).
    pub cpus_online: Option<String>,
    /// The number of `processor` entries in `/proc/cpuinfo`.
    pub cpu_count: Option<usize>,
    /// `MemTotal` from `/proc/meminfo`, in KiB.
    pub mem_total_kib: Option<u64>,
    /// The ACPI tables the kernel found (`/sys/firmware/acpi/tables`), sorted by name.
    pub acpi_tables: Vec<String>,
    /// The firmware memory map as the kernel saw it (`/sys/firmware/memmap`), sorted by start.
    pub e820: Vec<MemmapEntry>,
    /// The identifier of the initrd the agent came from (`/etc/initrd-id`).
    pub initrd_id: Option<String>,
    /// The firmware's measurements: the CC event log the CCEL table points at, replayed and
    /// compared with the platform's registers. `null` when there is no CCEL table or the log
    /// cannot be read or parsed.
    pub measurement: Option<Measurement>,
    /// How the kernel woke the application processors: the MADT's Multiprocessor Wakeup
    /// Structure (ACPI 6.4 §5.2.12.19) and what the kernel left in the mailbox it points at (see
    /// [`crate::mp_wakeup`]). `null` when the MADT has no such structure (without an error line),
    /// and when the MADT or the mailbox cannot be read or parsed (with one). A MADT whose
    /// mailbox address the OS cleared is no error: see [`MpWakeup::cleared_by_os`].
    pub mp_wakeup: Option<MpWakeup>,
    /// The platform's evidence for an attester: on TDX a quote from Linux's configfs-tsm with the
    /// nonce of the kernel command line in its REPORTDATA, compared with the nonce and with
    /// `measurement.replayed_rtmrs`; on SEV-SNP an attestation report with the nonce in its
    /// REPORT_DATA, compared with the nonce (see [`crate::evidence`]). `null`, without an error
    /// line, when the guest has neither `/sys/kernel/config/tsm/report` nor `/dev/tdx_guest` nor
    /// `/dev/sev-guest` (a plain VM, or a kernel without the drivers). A missing field in an
    /// older report reads as `null`.
    #[serde(default)]
    pub evidence: Option<Evidence>,
    /// Every failure line, in the order they happened.
    pub errors: Vec<String>,
}

/// One range of the firmware memory map.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MemmapEntry {
    /// First address.
    pub start: u64,
    /// Last address (inclusive, as the kernel writes it).
    pub end: u64,
    /// The kernel's name for the type: `System RAM`, `Reserved`, `ACPI Tables`, ….
    #[serde(rename = "type")]
    pub kind: String,
}

/// The firmware's measurements as the guest sees them (see [`crate::measurement`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Measurement {
    /// The CCEL table's `CC Type` (ACPI 6.5 §5.2.34): 1 AMD SEV, 2 Intel TDX; 0 (reserved in
    /// ACPI) is what this firmware writes on a plain VM, whose registers are emulated.
    pub cc_type: u8,
    /// The CCEL table's `LASA`: the physical address of the log area.
    pub log_base: u64,
    /// The CCEL table's `LAML`: the size of the log area, in bytes.
    pub log_area_size: u64,
    /// The guest path the log area was read from: `/sys/firmware/acpi/tables/data/CCEL`
    /// (Linux 6.4 and later) or `/dev/mem` (at `log_base`).
    pub log_source: String,
    /// The used part of the log area (the Spec ID event to the end of the last event, without
    /// the padding after it), in base64 with the standard alphabet and padding (RFC 4648 §4).
    pub event_log: String,
    /// The number of events after the Spec ID event.
    pub events: usize,
    /// RTMR0 to RTMR3 replayed from the log, in lower-case hex.
    pub replayed_rtmrs: [String; 4],
    /// RTMR0 to RTMR3 as the platform holds them, in lower-case hex. On a plain VM (CC type 0)
    /// they are the emulated registers of the firmware's RTMR ACPI table. `null` on every other
    /// platform: on TDX the registers are in the quote, compared with the replay in the report's
    /// `evidence` (`rtmrs`, `rtmrs_match_quote`), and SEV-SNP has no RTMRs. Also `null` when the
    /// RTMR table of a plain VM cannot be read, with the reason in `errors`.
    pub platform_rtmrs: Option<[String; 4]>,
    /// Whether `replayed_rtmrs` equal `platform_rtmrs`; `false` when there are no platform
    /// registers to compare with.
    pub rtmrs_match: bool,
}

/// The ACPI multiprocessor wakeup mailbox the firmware parks the application processors on, as
/// the kernel left it after waking them (see [`crate::mp_wakeup`]). To wake an AP the kernel
/// writes its `ApicId` and `WakeupVector`, then `Command` 1; the AP acknowledges with `Command` 0.
/// So once the kernel has woken its APs, `apic_id` is the last one woken, `wakeup_vector` the
/// kernel's trampoline (Linux's is below 1 MiB) and `command` 0.
///
/// Linux 6.12 (not 6.1) zeroes the version 0 structure's `MailboxAddress` in the MADT after
/// reading it, without fixing the checksum (see [`crate::acpi::parse_madt_mp_wakeup`]). The agent
/// reports that state as such: `cleared_by_os` is `true`, `mailbox` 0, and `command`, `apic_id`
/// and `wakeup_vector` are `null`, because the mailbox's address is no longer known (the agent
/// does not read `/dev/mem` at 0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MpWakeup {
    /// The MADT Multiprocessor Wakeup Structure's `MailboxVersion`: 0 (a 16-byte structure) or 1
    /// (24 bytes, with a reset vector).
    pub mailbox_version: u16,
    /// The structure's `MailboxAddress`: the physical address of the 4 KiB mailbox; 0 when
    /// `cleared_by_os`.
    pub mailbox: u64,
    /// Whether the OS cleared `MailboxAddress` in the MADT after reading it, leaving the table's
    /// checksum wrong: Linux's protocol to keep a kexec'd kernel off a version 0 mailbox.
    pub cleared_by_os: bool,
    /// The mailbox's `Command` (offset 0): 0 (noop) before the first wakeup and once the AP woken
    /// last has acknowledged; 1 (wakeup) while a wakeup waits for its AP. `null` when
    /// `cleared_by_os`.
    pub command: Option<u16>,
    /// The mailbox's `ApicId` (offset 4): the APIC ID of the AP woken last. `null` when
    /// `cleared_by_os`.
    pub apic_id: Option<u32>,
    /// The mailbox's `WakeupVector` (offset 8): the physical address that AP was sent to. `null`
    /// when `cleared_by_os`.
    pub wakeup_vector: Option<u64>,
}

/// The platform's evidence (see [`crate::evidence`]). What could not be obtained is `null` (and
/// the comparisons `false`), with the reason in the report's `errors`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// Where the evidence came from: `configfs-tsm` (the directory
    /// `/sys/kernel/config/tsm/report` exists), else `/dev/tdx_guest` or `/dev/sev-guest`, which
    /// the agent only detects: it asks those devices for nothing, so every quote and report field
    /// is then `null`.
    pub source: String,
    /// `present, not used` when the guest has `/dev/tdx_guest` (the TDX guest driver's ioctl
    /// device, which gives a TDREPORT on kernels before configfs-tsm), else `absent`.
    pub tdx_guest_device: String,
    /// `present, not used` when the guest has `/dev/sev-guest` (the SEV-SNP guest driver's
    /// ioctl device), else `absent`. Empty in a report of an agent before SEV-SNP support.
    #[serde(default)]
    pub sev_guest_device: String,
    /// The 64 bytes of report data the agent asked for, in lower-case hex: the kernel command
    /// line's `td_shim.nonce`, zero-padded on the right, or 64 zero bytes.
    pub nonce: String,
    /// Where `nonce` came from: `td_shim.nonce`, or why it is 64 zero bytes (`no td_shim.nonce
    /// on the kernel command line`, `td_shim.nonce is invalid`, `the kernel command line could
    /// not be read`).
    pub nonce_source: String,
    /// The configfs-tsm entry's `provider`: `tdx_guest` on TDX, `sev_guest` on SEV-SNP.
    pub provider: Option<String>,
    /// The entry's `generation` once `inblob` was written (1 for the agent's own entry), read
    /// again after `outblob`: a change means another writer, and the quote is refused.
    pub generation: Option<u64>,
    /// The entry's `outblob` as read (on TDX the quote, on SEV-SNP the 1184-byte attestation
    /// report), in base64 with the standard alphabet and padding; also when it does not parse,
    /// `null` when it could not be read or was refused.
    pub quote_base64: Option<String>,
    /// The size of `outblob`, in bytes.
    pub quote_size: Option<usize>,
    /// The quote's MRTD, in lower-case hex; `null` when the quote does not parse.
    pub mrtd: Option<String>,
    /// The quote's RTMR0 to RTMR3, in lower-case hex.
    pub rtmrs: Option<[String; 4]>,
    /// The quote's REPORTDATA, or the SNP report's REPORT_DATA (64 bytes), in lower-case hex.
    pub report_data: Option<String>,
    /// Whether `report_data` equals `nonce`: the quote or report was made for this request.
    pub report_data_matches: bool,
    /// Whether `rtmrs` equal `measurement.replayed_rtmrs`: the CC event log explains the quote's
    /// registers. `false` without a quote or without a replayed log (and always on SEV-SNP,
    /// which has no RTMRs).
    pub rtmrs_match_quote: bool,
    /// The SEV-SNP attestation report's fields, when the provider is `sev_guest` and `outblob`
    /// parses (see [`crate::snp_report`]); `null` otherwise. Its signature is not checked.
    #[serde(default)]
    pub snp_report: Option<SnpReport>,
}

/// A TCB_VERSION of an SEV-SNP report: the SVNs of the platform's firmware.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnpTcb {
    /// The 8 bytes as a little-endian u64, in hex (`0x...`).
    pub raw: String,
    /// FMC (Turin and later; `null` before).
    pub fmc: Option<u8>,
    /// The PSP boot loader's SVN.
    pub bootloader: u8,
    /// The PSP OS's (TEE) SVN.
    pub tee: u8,
    /// The SNP firmware's SVN.
    pub snp: u8,
    /// The microcode patch level.
    pub microcode: u8,
}

/// The fields of an SEV-SNP attestation report, as the agent reports them (byte strings in
/// lower-case hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnpReport {
    /// VERSION (2 to 5).
    pub version: u32,
    /// GUEST_SVN.
    pub guest_svn: u32,
    /// POLICY, the guest policy the VMM launched with, in hex (`0x30000`).
    pub policy: String,
    /// POLICY bit 19: the host may debug the guest.
    pub policy_debug_allowed: bool,
    /// POLICY bit 18: a migration agent may be associated.
    pub policy_migrate_ma_allowed: bool,
    /// VMPL the report was requested at (the agent asks at 0, configfs-tsm's default).
    pub vmpl: u32,
    /// SIGNATURE_ALGO (1: ECDSA P-384 with SHA-384).
    pub signature_algo: u32,
    /// Which key signed the report: `vcek`, `vlek`, `none` or `reserved`.
    pub signing_key: String,
    /// MEASUREMENT: the launch digest, which `td-shim-tool measure --platform snp` predicts.
    pub measurement: String,
    /// HOST_DATA.
    pub host_data: String,
    /// ID_KEY_DIGEST.
    pub id_key_digest: String,
    /// REPORT_ID.
    pub report_id: String,
    /// CHIP_ID.
    pub chip_id: String,
    /// PLATFORM_INFO, in hex.
    pub platform_info: String,
    /// REPORTED_TCB: the TCB the signing VCEK is derived for.
    pub reported_tcb: SnpTcb,
    /// CURRENT_TCB.
    pub current_tcb: SnpTcb,
    /// LAUNCH_TCB.
    pub launch_tcb: SnpTcb,
    /// CPUID family, model and stepping (version 3 and later), e.g. `[25, 1, 1]`.
    pub cpuid: Option<[u8; 3]>,
}

/// Why a console transcript did not yield a report.
#[derive(Debug, thiserror::Error)]
pub enum FindError {
    /// No line equal to [`BEGIN_MARKER`].
    #[error("no `{BEGIN_MARKER}` line")]
    NoBegin,
    /// A begin marker without an [`END_MARKER`] line after it.
    #[error("no `{END_MARKER}` line after the begin marker")]
    NoEnd,
    /// The text between the markers is not a report.
    #[error("the report between the markers is not valid: {0}")]
    Json(serde_json::Error),
}

impl Report {
    /// The report as the agent prints it: an empty line (the console may be in the middle of a
    /// line: the firmware's last output need not end in one), the begin marker, the JSON document,
    /// the end marker, each ending in a newline.
    pub fn to_console(&self) -> Result<String, serde_json::Error> {
        let json = serde_json::to_string_pretty(self)?;
        Ok(format!("\n{BEGIN_MARKER}\n{json}\n{END_MARKER}\n"))
    }
}

/// Finds the first report in a console transcript: serial consoles may add `\r`, other lines may
/// come before and after, and the begin marker may end a line that other output began.
pub fn find_report(console: &str) -> Result<Report, FindError> {
    let mut lines = console.lines().map(|line| line.trim_end_matches('\r'));
    lines
        .by_ref()
        .find(|line| line.ends_with(BEGIN_MARKER))
        .ok_or(FindError::NoBegin)?;
    let mut json = String::new();
    for line in lines {
        if line == END_MARKER {
            return serde_json::from_str(&json).map_err(FindError::Json);
        }
        json.push_str(line);
        json.push('\n');
    }
    Err(FindError::NoEnd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        Report {
            kernel: Some("6.1.0-test".into()),
            cmdline: None,
            cpus_online: Some("0-1".into()),
            cpu_count: Some(2),
            mem_total_kib: Some(1024),
            acpi_tables: vec!["APIC".into(), "DSDT".into()],
            e820: vec![MemmapEntry {
                start: 0,
                end: u64::MAX,
                kind: "System RAM".into(),
            }],
            initrd_id: None,
            measurement: Some(Measurement {
                cc_type: 0,
                log_base: 0x1a_0000,
                log_area_size: 0x1_0000,
                log_source: "/dev/mem".into(),
                event_log: "AAAA".into(),
                events: 6,
                replayed_rtmrs: [
                    "00".repeat(48),
                    "11".repeat(48),
                    "22".repeat(48),
                    "33".repeat(48),
                ],
                platform_rtmrs: None,
                rtmrs_match: false,
            }),
            mp_wakeup: Some(MpWakeup {
                mailbox_version: 0,
                mailbox: 0x7_e000,
                cleared_by_os: false,
                command: Some(0),
                apic_id: Some(1),
                wakeup_vector: Some(0x9_a000),
            }),
            evidence: None,
            errors: vec!["agent: read /proc/cmdline: gone".into()],
        }
    }

    #[test]
    fn console_output_has_markers_and_round_trips() {
        let report = sample();
        let console = report.to_console().unwrap();
        let lines: Vec<&str> = console.lines().collect();
        assert_eq!(lines[..2], ["", BEGIN_MARKER]);
        assert_eq!(lines.last(), Some(&END_MARKER));
        let serial = console.replace('\n', "\r\n");
        let noisy = format!("[    1.0] boot\r\n{serial}[    2.0] reboot: Power down\r\n");
        assert_eq!(find_report(&noisy).unwrap(), report);
        // SeaBIOS leaves the line open after clearing the screen.
        let glued = format!("Booting from ROM..\x1bc\x1b[2J{}", console.trim_start());
        assert_eq!(find_report(&glued).unwrap(), report);
    }

    #[test]
    fn json_has_the_documented_fields_and_types() {
        let value: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&sample()).unwrap()).unwrap();
        let object = value.as_object().unwrap();
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "acpi_tables",
                "cmdline",
                "cpu_count",
                "cpus_online",
                "e820",
                "errors",
                "evidence",
                "initrd_id",
                "kernel",
                "measurement",
                "mem_total_kib",
                "mp_wakeup"
            ]
        );
        let mut keys: Vec<&str> = object["measurement"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "cc_type",
                "event_log",
                "events",
                "log_area_size",
                "log_base",
                "log_source",
                "platform_rtmrs",
                "replayed_rtmrs",
                "rtmrs_match"
            ]
        );
        assert_eq!(object["measurement"]["cc_type"], 0);
        assert_eq!(object["measurement"]["replayed_rtmrs"][3], "33".repeat(48));
        assert!(object["measurement"]["platform_rtmrs"].is_null());
        let mut keys: Vec<&str> = object["mp_wakeup"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "apic_id",
                "cleared_by_os",
                "command",
                "mailbox",
                "mailbox_version",
                "wakeup_vector"
            ]
        );
        assert_eq!(object["mp_wakeup"]["mailbox"], 0x7_e000);
        assert_eq!(object["mp_wakeup"]["cleared_by_os"], false);
        assert_eq!(object["mp_wakeup"]["wakeup_vector"], 0x9_a000);
        let mut cleared = sample();
        cleared.mp_wakeup = Some(MpWakeup {
            mailbox_version: 0,
            mailbox: 0,
            cleared_by_os: true,
            command: None,
            apic_id: None,
            wakeup_vector: None,
        });
        let value = serde_json::to_value(&cleared).unwrap();
        assert_eq!(value["mp_wakeup"]["cleared_by_os"], true);
        assert_eq!(value["mp_wakeup"]["mailbox"], 0);
        for field in ["command", "apic_id", "wakeup_vector"] {
            assert!(value["mp_wakeup"][field].is_null(), "{field}");
        }
        assert_eq!(serde_json::from_value::<Report>(value).unwrap(), cleared);
        let mut none = sample();
        none.mp_wakeup = None;
        let value = serde_json::to_value(&none).unwrap();
        assert!(value["mp_wakeup"].is_null());
        assert_eq!(
            serde_json::from_value::<Report>(value).unwrap().mp_wakeup,
            None
        );
        assert!(object["cmdline"].is_null());
        assert!(object["cpus_online"].is_string());
        assert_eq!(object["e820"][0]["end"].as_u64(), Some(u64::MAX));
        assert_eq!(object["e820"][0]["type"], "System RAM");
    }

    #[test]
    fn missing_or_broken_reports_are_errors() {
        assert!(matches!(find_report("nothing"), Err(FindError::NoBegin)));
        let cut = format!("{BEGIN_MARKER}\n{{}}\n");
        assert!(matches!(find_report(&cut), Err(FindError::NoEnd)));
        let bad = format!("{BEGIN_MARKER}\n{{\"kernel\": 1}}\n{END_MARKER}\n");
        assert!(matches!(find_report(&bad), Err(FindError::Json(_))));
    }
}
