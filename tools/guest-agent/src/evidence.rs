//! The platform's evidence for an attester: on TDX, a quote with a nonce in its REPORTDATA, next to
//! the CC event log that [`crate::measurement`] already read and replayed; on SEV-SNP, an
//! attestation report with the nonce in its REPORT_DATA.
//!
//! # The nonce
//!
//! `/init` takes no options, so the nonce comes from the kernel command line parameter
//! `td_shim.nonce=<hex>`: 2 to 128 hex digits (an even number, either case), zero-padded on the
//! right to the 64 bytes of TDX REPORTDATA. Without the parameter, or when it is invalid (with an
//! error line) or given more than once (likewise: which one counts would be a guess), the report
//! data is 64 zero bytes, and the report's `nonce_source` says why. The kernel leaves a dotted
//! parameter it does not know to modules, so it reaches neither `/init`'s arguments nor its
//! environment; the agent reads it from `/proc/cmdline`.
//!
//! # configfs-tsm (Linux 6.7 and later)
//!
//! When `/sys/kernel/config/tsm/report` exists (PID 1 mounts configfs on `/sys/kernel/config` when
//! the kernel has it), the agent:
//!
//! 1. makes a report entry `td-shim-agent-<pid>-<n>` (the first `n` from 0 that is free);
//! 2. writes the 64 bytes of report data to its `inblob` (the TDX driver takes exactly 64);
//! 3. reads `generation` (1 after its own write), `provider` and `outblob`, which makes the quote,
//!    then `generation` again: a changed or unreadable generation means another writer may have
//!    changed `inblob` in between, and the quote is refused (an error line, `quote_base64`
//!    `null`);
//! 4. removes the entry (`rmdir`), whatever happened after it was made.
//!
//! Reads are bounded: `outblob` to [`MAX_QUOTE`] (64 KiB; a TDX quote with its certification
//! data is 5 to 8 KiB), `generation` and `provider` to [`MAX_ATTRIBUTE`] (a configfs attribute is
//! one page).
//!
//! The quote is parsed when the provider is `tdx_guest` (or unreadable, unless the guest has
//! `/dev/sev-guest` and not `/dev/tdx_guest`): TD quote version 4, TEE
//! type 0x81, MRTD, RTMR0 to RTMR3, REPORTDATA, with the signature data inside the outblob
//! (`td_shim::tdx::quote::parse`, shared with `td-shim-tool`). Its REPORTDATA is compared with
//! the report data written (`report_data_matches`) and its RTMRs with the registers replayed from
//! the CC event log (`rtmrs_match_quote`). The quote's signature is not checked: that is the
//! verifier's job, with Intel's collateral.
//!
//! # SEV-SNP (provider `sev_guest`)
//!
//! The same request gives, under SEV-SNP, the 1184-byte attestation report the AMD secure
//! processor signed, with the 64 bytes of `inblob` as its REPORT_DATA (Linux's sev-guest driver
//! takes exactly 64 and asks at the entry's `privlevel`, 0 unless written). It is parsed with
//! [`crate::snp_report`] (td-shim-tool's parser, the same file) when the provider is `sev_guest`,
//! or when the provider is unreadable and the guest has `/dev/sev-guest`. The report's fields
//! are in `snp_report` (MEASUREMENT, the launch digest `td-shim-tool measure --platform snp`
//! predicts; POLICY; VMPL; the TCBs; CHIP_ID ...), its REPORT_DATA in `report_data`, compared
//! with the nonce (`report_data_matches`). SEV-SNP has no RTMRs: `mrtd` and `rtmrs` are `null`
//! and `rtmrs_match_quote` is `false`. The report's signature is not checked: that is the
//! verifier's job, with the VCEK and AMD's certificate chain (`td-shim-tool verify --platform
//! snp` compares the values only, too).
//!
//! # /dev/tdx_guest (Linux 6.2 to 6.6) and /dev/sev-guest
//!
//! Older kernels give a TDREPORT (not a quote) through the `TDX_CMD_GET_REPORT0` ioctl of
//! `/dev/tdx_guest`. The agent only detects the device: `tdx_guest_device` is `present, not used`,
//! and without configfs-tsm the evidence has `source` `/dev/tdx_guest` and no quote. Likewise
//! `/dev/sev-guest` (the `SNP_GET_REPORT` ioctl; the agent has no unsafe code to issue it):
//! `sev_guest_device` is `present, not used`, and without configfs-tsm or `/dev/tdx_guest` the
//! evidence has `source` `/dev/sev-guest` and no report.

use crate::failure::Failures;
use crate::report::{Evidence, SnpReport, SnpTcb};
use crate::snp_report;
use crate::tree::Tree;
use base64::Engine as _;
use td_shim::tdx::quote;

/// The configfs-tsm report directory; an entry made in it is one report request.
pub const TSM_REPORT: &str = "/sys/kernel/config/tsm/report";
/// The TDX guest driver's ioctl device.
pub const TDX_GUEST: &str = "/dev/tdx_guest";
/// The SEV-SNP guest driver's ioctl device.
pub const SEV_GUEST: &str = "/dev/sev-guest";
/// The kernel command line parameter carrying the nonce.
pub const NONCE_PARAM: &str = "td_shim.nonce";
/// The size of TDX REPORTDATA, and of what the agent writes to `inblob`.
pub const REPORT_DATA_SIZE: usize = quote::REPORT_DATA_SIZE;
/// The largest `outblob` the agent reads: a bigger one is an error, not an allocation.
pub const MAX_QUOTE: usize = 64 << 10;
/// The largest `generation` or `provider` the agent reads.
pub const MAX_ATTRIBUTE: usize = 4096;
/// The `provider` of the TDX guest driver.
pub const PROVIDER_TDX: &str = "tdx_guest";
/// The `provider` of the SEV-SNP guest driver.
pub const PROVIDER_SNP: &str = "sev_guest";
/// How many entry names the agent tries before giving up.
const ENTRY_ATTEMPTS: u32 = 16;

/// Where the report data came from, for the report's `nonce_source`.
const NONCE_FROM_PARAM: &str = "td_shim.nonce";
const NONCE_ABSENT: &str = "no td_shim.nonce on the kernel command line: 64 zero bytes";
const NONCE_INVALID: &str = "td_shim.nonce is invalid: 64 zero bytes";
const NONCE_NO_CMDLINE: &str = "the kernel command line could not be read: 64 zero bytes";

/// The nonce of the kernel command line `cmdline`: `Ok(None)` without `td_shim.nonce`, the report
/// data (the digits' bytes, zero-padded to 64) with it, an error when it is not 2 to 128 hex
/// digits in pairs or is given more than once.
pub fn nonce_from_cmdline(cmdline: &str) -> Result<Option<[u8; REPORT_DATA_SIZE]>, String> {
    let prefix = format!("{NONCE_PARAM}=");
    let values: Vec<&str> = cmdline
        .split_ascii_whitespace()
        .filter_map(|word| word.strip_prefix(&prefix))
        .collect();
    let value = match values[..] {
        [] => return Ok(None),
        [value] => value,
        _ => return Err(format!("given {} times", values.len())),
    };
    if value.is_empty() || value.len() > 2 * REPORT_DATA_SIZE || value.len() % 2 != 0 {
        return Err(format!(
            "{} hex digits, not an even number from 2 to {}",
            value.len(),
            2 * REPORT_DATA_SIZE
        ));
    }
    let bytes = hex::decode(value).map_err(|e| format!("not hex: {e}"))?;
    let mut report_data = [0; REPORT_DATA_SIZE];
    report_data
        .iter_mut()
        .zip(bytes)
        .for_each(|(out, byte)| *out = byte);
    Ok(Some(report_data))
}

/// The report data to ask for and where it came from; an error line for an invalid nonce.
fn report_data(
    cmdline: Option<&str>,
    failures: &mut Failures,
) -> ([u8; REPORT_DATA_SIZE], &'static str) {
    let zeros = [0; REPORT_DATA_SIZE];
    let Some(cmdline) = cmdline else {
        return (zeros, NONCE_NO_CMDLINE);
    };
    match nonce_from_cmdline(cmdline) {
        Ok(Some(nonce)) => (nonce, NONCE_FROM_PARAM),
        Ok(None) => (zeros, NONCE_ABSENT),
        Err(e) => {
            failures.record(
                format_args!("parse {NONCE_PARAM} on the kernel command line"),
                e,
            );
            (zeros, NONCE_INVALID)
        }
    }
}

/// Whether the guest path exists; an error line (and `false`) when that cannot be told.
fn exists(tree: &Tree<'_>, guest_path: &str, failures: &mut Failures) -> bool {
    tree.path(guest_path)
        .try_exists()
        .map_err(|e| failures.record(format_args!("look for {guest_path}"), e))
        .unwrap_or(false)
}

fn presence(present: bool) -> String {
    if present {
        "present, not used"
    } else {
        "absent"
    }
    .to_owned()
}

/// The evidence under `tree` (see the module documentation): `None`, without an error line, when
/// there is neither configfs-tsm nor `/dev/tdx_guest` nor `/dev/sev-guest`. `cmdline` is the
/// kernel command line (to find the nonce in), `replayed` the RTMRs replayed from the CC event
/// log, in hex.
pub(crate) fn collect(
    tree: &Tree<'_>,
    cmdline: Option<&str>,
    replayed: Option<&[String; 4]>,
    failures: &mut Failures,
) -> Option<Evidence> {
    let tsm = exists(tree, TSM_REPORT, failures);
    let tdx_guest = exists(tree, TDX_GUEST, failures);
    let sev_guest = exists(tree, SEV_GUEST, failures);
    if !tsm && !tdx_guest && !sev_guest {
        return None;
    }
    let (nonce, nonce_source) = report_data(cmdline, failures);
    let source = match (tsm, tdx_guest) {
        (true, _) => "configfs-tsm",
        (false, true) => TDX_GUEST,
        (false, false) => SEV_GUEST,
    };
    let mut evidence = Evidence {
        source: source.to_owned(),
        tdx_guest_device: presence(tdx_guest),
        sev_guest_device: presence(sev_guest),
        nonce: hex::encode(nonce),
        nonce_source: nonce_source.to_owned(),
        provider: None,
        generation: None,
        quote_base64: None,
        quote_size: None,
        mrtd: None,
        rtmrs: None,
        report_data: None,
        report_data_matches: false,
        rtmrs_match_quote: false,
        snp_report: None,
    };
    if !tsm {
        return Some(evidence);
    }
    let answer = tsm_request(tree, &nonce, failures);
    evidence.provider = answer.provider;
    evidence.generation = answer.generation;
    let Some(outblob) = answer.outblob else {
        return Some(evidence);
    };
    evidence.quote_base64 = Some(base64::engine::general_purpose::STANDARD.encode(&outblob));
    evidence.quote_size = Some(outblob.len());
    let snp = match evidence.provider.as_deref() {
        Some(PROVIDER_TDX) => false,
        Some(PROVIDER_SNP) => true,
        // Unreadable (an error line already): the guest's driver device decides.
        None => sev_guest && !tdx_guest,
        Some(provider) => {
            failures.record(
                "parse the configfs-tsm outblob",
                format_args!(
                    "provider `{provider}`: the agent parses only `{PROVIDER_TDX}` quotes and \
                     `{PROVIDER_SNP}` reports"
                ),
            );
            return Some(evidence);
        }
    };
    if snp {
        match snp_report::parse(&outblob) {
            Ok(report) => {
                evidence.report_data = Some(hex::encode(report.report_data));
                evidence.report_data_matches = report.report_data == nonce;
                evidence.snp_report = Some(snp_summary(&report));
            }
            Err(e) => failures.record(
                "parse the configfs-tsm outblob as an SEV-SNP attestation report",
                e,
            ),
        }
        return Some(evidence);
    }
    let quote = match quote::parse(&outblob) {
        Ok(quote) => quote,
        Err(e) => {
            failures.record("parse the configfs-tsm outblob as a TD quote", e);
            return Some(evidence);
        }
    };
    let rtmrs = quote.rtmrs().map(hex::encode);
    evidence.mrtd = Some(hex::encode(quote.mrtd()));
    evidence.report_data = Some(hex::encode(quote.report_data()));
    evidence.report_data_matches = *quote.report_data() == nonce;
    evidence.rtmrs_match_quote = replayed == Some(&rtmrs);
    evidence.rtmrs = Some(rtmrs);
    Some(evidence)
}

fn snp_tcb(t: snp_report::TcbVersion) -> SnpTcb {
    SnpTcb {
        raw: format!("{:#018x}", t.raw),
        fmc: t.fmc,
        bootloader: t.bootloader,
        tee: t.tee,
        snp: t.snp,
        microcode: t.microcode,
    }
}

/// The report's fields as the agent reports them.
fn snp_summary(r: &snp_report::AttestationReport) -> SnpReport {
    SnpReport {
        version: r.version,
        guest_svn: r.guest_svn,
        policy: format!("{:#x}", r.policy.0),
        policy_debug_allowed: r.policy.debug_allowed(),
        policy_migrate_ma_allowed: r.policy.migrate_ma_allowed(),
        vmpl: r.vmpl,
        signature_algo: r.signature_algo,
        signing_key: r.signing_key.name().to_owned(),
        measurement: hex::encode(r.measurement),
        host_data: hex::encode(r.host_data),
        id_key_digest: hex::encode(r.id_key_digest),
        report_id: hex::encode(r.report_id),
        chip_id: hex::encode(r.chip_id),
        platform_info: format!("{:#x}", r.platform_info.0),
        reported_tcb: snp_tcb(r.reported_tcb),
        current_tcb: snp_tcb(r.current_tcb),
        launch_tcb: snp_tcb(r.launch_tcb),
        cpuid: r.cpuid,
    }
}

/// What a configfs-tsm request gave.
struct TsmAnswer {
    provider: Option<String>,
    generation: Option<u64>,
    /// The quote, when it was read and no other writer was seen.
    outblob: Option<Vec<u8>>,
}

/// One configfs-tsm request (steps 1 to 4 of the module documentation).
fn tsm_request(
    tree: &Tree<'_>,
    report_data: &[u8; REPORT_DATA_SIZE],
    failures: &mut Failures,
) -> TsmAnswer {
    let mut answer = TsmAnswer {
        provider: None,
        generation: None,
        outblob: None,
    };
    let Some(entry) = make_entry(tree, failures) else {
        return answer;
    };
    let inblob = format!("{entry}/inblob");
    match tree.write_existing(&inblob, report_data) {
        Ok(()) => {
            let before = read_generation(tree, &entry, failures);
            answer.provider = tree
                .read_bounded(&format!("{entry}/provider"), MAX_ATTRIBUTE)
                .map_err(|e| failures.record(format_args!("read {entry}/provider"), e))
                .ok()
                .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned());
            let outblob = tree
                .read_bounded(&format!("{entry}/outblob"), MAX_QUOTE)
                .map_err(|e| failures.record(format_args!("read {entry}/outblob"), e))
                .ok();
            let after = read_generation(tree, &entry, failures);
            answer.generation = before;
            match (before, after) {
                (Some(before), Some(after)) if before == after => answer.outblob = outblob,
                (Some(before), Some(after)) => failures.record(
                    format_args!("read {entry}/outblob"),
                    format_args!(
                        "generation {before} became {after} while the quote was read: another \
                         writer changed the request, the quote is refused"
                    ),
                ),
                _ if outblob.is_some() => failures.record(
                    format_args!("read {entry}/outblob"),
                    "without both generations no other writer can be ruled out, the quote is \
                     refused",
                ),
                _ => {}
            }
        }
        Err(e) => failures.record(format_args!("write {inblob}"), e),
    }
    if let Err(e) = tree.remove_dir(&entry) {
        failures.record(format_args!("remove {entry}"), e);
    }
    answer
}

/// Makes a new report entry and returns its guest path; an error line if none can be made.
fn make_entry(tree: &Tree<'_>, failures: &mut Failures) -> Option<String> {
    let pid = std::process::id();
    for n in 0..ENTRY_ATTEMPTS {
        let entry = format!("{TSM_REPORT}/td-shim-agent-{pid}-{n}");
        match tree.make_dir(&entry) {
            Ok(()) => return Some(entry),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                failures.record(format_args!("make {entry}"), e);
                return None;
            }
        }
    }
    failures.record(
        format_args!("make an entry in {TSM_REPORT}"),
        format_args!("td-shim-agent-{pid}-0 to -{} all exist", ENTRY_ATTEMPTS - 1),
    );
    None
}

/// The entry's `generation`, a decimal number; an error line if it cannot be read or parsed.
fn read_generation(tree: &Tree<'_>, entry: &str, failures: &mut Failures) -> Option<u64> {
    let guest_path = format!("{entry}/generation");
    tree.read_bounded(&guest_path, MAX_ATTRIBUTE)
        .and_then(|bytes| {
            let text = String::from_utf8_lossy(&bytes);
            text.trim()
                .parse()
                .map_err(|e| format!("`{}` is not a number: {e}", text.trim()))
        })
        .map_err(|e| failures.record(format_args!("read {guest_path}"), e))
        .ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::measurement::{self, tests::write, CCEL_DATA, CCEL_TABLE};
    use crate::tree::{Change, FakeKernel};
    use proptest::prelude::*;
    use std::cell::RefCell;
    use std::fs;
    use std::path::Path;
    use td_shim::tdx::quote::layout;

    // A real boot's quote, log and CCEL table (provenance in testdata/README.md): replaying the
    // log gives the quote's RTMR0 to RTMR3.
    pub(crate) const REAL_QUOTE: &[u8] =
        include_bytes!("../../../testdata/eventlogs/gotdx-cos-113-tdx-quote.dat");
    pub(crate) const REAL_LOG: &[u8] =
        include_bytes!("../../../testdata/eventlogs/gotdx-ccel_data.dat");
    pub(crate) const REAL_CCEL: &[u8] =
        include_bytes!("../../../testdata/eventlogs/gotdx-ccel_table.dat");

    /// The nonce the tests put on the kernel command line, and the report data it gives.
    pub(crate) const NONCE_HEX: &str = "00112233445566778899aabbccddeeff";
    pub(crate) fn nonce() -> [u8; REPORT_DATA_SIZE] {
        let mut data = [0; REPORT_DATA_SIZE];
        data[..16].copy_from_slice(&hex::decode(NONCE_HEX).unwrap());
        data
    }

    /// What the fake's `outblob` holds once `inblob` has its 64 bytes.
    pub(crate) enum Outblob {
        /// These bytes, whatever `inblob` holds (like a replayed quote).
        Fixed(Vec<u8>),
        /// This quote with its REPORTDATA replaced by `inblob`, as the kernel's quote would be.
        Binding(Vec<u8>),
    }

    /// configfs-tsm as a test scripts it: an entry made in the report directory gets the
    /// attributes; `inblob` writes bump `generation`; reading `outblob` makes the scripted quote
    /// (none, so an error, unless `inblob` has 64 bytes) and, with `concurrent_writer`, bumps
    /// `generation` as another writer would; removing the entry removes its attributes.
    pub(crate) struct FakeTsm {
        /// `None`: the entry has no `provider` file, so reading it fails.
        provider: Option<&'static str>,
        /// Where `Outblob::Binding` puts `inblob` (TDX REPORTDATA, or SNP REPORT_DATA).
        report_data_offset: usize,
        outblob: Outblob,
        concurrent_writer: bool,
        /// What was written to `inblob`, oldest first.
        inblobs: RefCell<Vec<Vec<u8>>>,
        /// The changes seen, as `<what> <file or directory name>`.
        seen: RefCell<Vec<String>>,
    }

    impl FakeTsm {
        pub(crate) fn new(outblob: Outblob) -> Self {
            Self {
                provider: Some(PROVIDER_TDX),
                report_data_offset: layout::REPORT_DATA,
                outblob,
                concurrent_writer: false,
                inblobs: RefCell::default(),
                seen: RefCell::default(),
            }
        }

        /// The SEV-SNP guest driver: provider `sev_guest`, REPORT_DATA at 0x50 of the report.
        pub(crate) fn snp(outblob: Outblob) -> Self {
            Self {
                provider: Some(PROVIDER_SNP),
                report_data_offset: snp_report::layout::REPORT_DATA,
                ..Self::new(outblob)
            }
        }

        fn bump_generation(dir: &Path) {
            let path = dir.join("generation");
            let old: u64 = fs::read_to_string(&path).unwrap().trim().parse().unwrap();
            fs::write(path, format!("{}\n", old + 1)).unwrap();
        }
    }

    impl FakeKernel for FakeTsm {
        fn act(&self, root: &Path, change: Change<'_>) {
            let (Change::MadeDir(guest_path)
            | Change::Wrote(guest_path, _)
            | Change::Reading(guest_path)
            | Change::RemovingDir(guest_path)) = change;
            let path = root.join(guest_path.trim_start_matches('/'));
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let dir = path.parent().unwrap();
            match change {
                Change::MadeDir(_) => {
                    assert!(guest_path.starts_with(&format!("{TSM_REPORT}/")));
                    self.seen.borrow_mut().push("mkdir".into());
                    for attribute in ["inblob", "outblob"] {
                        fs::write(path.join(attribute), b"").unwrap();
                    }
                    if let Some(provider) = self.provider {
                        fs::write(path.join("provider"), format!("{provider}\n")).unwrap();
                    }
                    fs::write(path.join("generation"), "0\n").unwrap();
                }
                Change::Wrote(_, bytes) => {
                    self.seen.borrow_mut().push(format!("write {name}"));
                    assert_eq!(name, "inblob");
                    self.inblobs.borrow_mut().push(bytes.to_vec());
                    Self::bump_generation(dir);
                }
                Change::Reading(_) => {
                    self.seen.borrow_mut().push(format!("read {name}"));
                    if name != "outblob" {
                        return;
                    }
                    let inblob = fs::read(dir.join("inblob")).unwrap();
                    let quote = match (&self.outblob, inblob.len()) {
                        (_, n) if n != REPORT_DATA_SIZE => None,
                        (Outblob::Fixed(bytes), _) => Some(bytes.clone()),
                        (Outblob::Binding(quote), _) => {
                            let mut quote = quote.clone();
                            quote[self.report_data_offset..][..REPORT_DATA_SIZE]
                                .copy_from_slice(&inblob);
                            Some(quote)
                        }
                    };
                    match quote {
                        Some(quote) => fs::write(&path, quote).unwrap(),
                        None => fs::remove_file(&path).unwrap(),
                    }
                    if self.concurrent_writer {
                        Self::bump_generation(dir);
                    }
                }
                Change::RemovingDir(_) => {
                    self.seen.borrow_mut().push("rmdir".into());
                    for entry in fs::read_dir(&path).unwrap() {
                        fs::remove_file(entry.unwrap().path()).unwrap();
                    }
                }
            }
        }
    }

    /// A TD's tree: the real CCEL table and log (sysfs), the command line, the TSM directory.
    pub(crate) fn write_td(root: &Path, cmdline: &str) {
        write(root, CCEL_TABLE, REAL_CCEL);
        write(root, CCEL_DATA, REAL_LOG);
        write(root, "/proc/cmdline", format!("{cmdline}\n").as_bytes());
        fs::create_dir_all(root.join(TSM_REPORT.trim_start_matches('/'))).unwrap();
    }

    /// The evidence under `root` with `tsm` as the kernel, the log replayed first as the agent
    /// does, and the failure lines.
    fn gather(root: &Path, tsm: &FakeTsm) -> (Option<Evidence>, Vec<String>) {
        let tree = Tree::with_kernel(root, tsm);
        let mut failures = Failures::quiet();
        let measurement = measurement::collect(&tree, &mut failures);
        let cmdline = fs::read_to_string(root.join("proc/cmdline")).ok();
        let replayed = measurement.as_ref().map(|m| &m.replayed_rtmrs);
        let evidence = collect(&tree, cmdline.as_deref(), replayed, &mut failures);
        (evidence, failures.into_lines())
    }

    /// The entries left in the TSM directory.
    fn leftover_entries(root: &Path) -> usize {
        fs::read_dir(root.join(TSM_REPORT.trim_start_matches('/')))
            .unwrap()
            .count()
    }

    fn real_rtmr(i: usize) -> String {
        hex::encode(&REAL_QUOTE[0x178 + 48 * i..][..48])
    }

    #[test]
    fn the_real_quote_and_log_parse_at_the_documented_offsets() {
        let quote = quote::parse(REAL_QUOTE).unwrap();
        assert_eq!(quote.att_key_type(), 2);
        // 0x10CB bytes of signature data; the 8000-byte file is zero after it.
        assert_eq!(quote.len(), 0x27C + 0x10CB);
        assert!(REAL_QUOTE[quote.len()..].iter().all(|&b| b == 0));
        assert_eq!(quote.mrtd()[..], REAL_QUOTE[48 + 136..][..48]);
        assert_eq!(*quote.report_data(), [0; 64]);
        let replayed = td_shim::eventlog::parse(REAL_LOG).unwrap().replay();
        assert_eq!(*quote.rtmrs(), replayed);
        assert_eq!(
            hex::encode(quote.rtmrs()[0]),
            "3fa2f61f395b7f5feefb4ec2df61297f109ad8abcd6410c1b7df60f21f37b19297fc35e544039c7e1edece752afd17f6"
        );
    }

    #[test]
    fn the_real_quote_matches_the_real_log_but_not_our_nonce() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_td(
            root,
            &format!("console=hvc0 {NONCE_PARAM}={NONCE_HEX} quiet"),
        );
        let tsm = FakeTsm::new(Outblob::Fixed(REAL_QUOTE.to_vec()));
        let (evidence, errors) = gather(root, &tsm);
        assert_eq!(errors, Vec::<String>::new());
        let e = evidence.unwrap();
        // The kernel was asked with our nonce, in the documented order, and the entry is gone.
        assert_eq!(*tsm.inblobs.borrow(), [nonce().to_vec()]);
        assert_eq!(
            *tsm.seen.borrow(),
            [
                "mkdir",
                "write inblob",
                "read generation",
                "read provider",
                "read outblob",
                "read generation",
                "rmdir"
            ]
        );
        assert_eq!(leftover_entries(root), 0);
        assert_eq!(e.source, "configfs-tsm");
        assert_eq!(e.tdx_guest_device, "absent");
        assert_eq!(e.nonce, hex::encode(nonce()));
        assert_eq!(e.nonce_source, "td_shim.nonce");
        assert_eq!(e.provider.as_deref(), Some("tdx_guest"));
        assert_eq!(e.generation, Some(1));
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(e.quote_base64.unwrap())
            .unwrap();
        assert_eq!(decoded, REAL_QUOTE);
        assert_eq!(e.quote_size, Some(8000));
        assert_eq!(e.mrtd, Some(hex::encode(&REAL_QUOTE[0xB8..][..48])));
        assert_eq!(e.rtmrs, Some([0, 1, 2, 3].map(real_rtmr)));
        assert_eq!(e.report_data, Some("00".repeat(64)));
        assert!(!e.report_data_matches);
        assert!(e.rtmrs_match_quote);
    }

    #[test]
    fn a_quote_bound_to_the_nonce_matches_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_td(root, &format!("{NONCE_PARAM}={NONCE_HEX}"));
        let tsm = FakeTsm::new(Outblob::Binding(REAL_QUOTE.to_vec()));
        let (evidence, errors) = gather(root, &tsm);
        assert_eq!(errors, Vec::<String>::new());
        let e = evidence.unwrap();
        assert_eq!(e.report_data, Some(hex::encode(nonce())));
        assert!(e.report_data_matches);
        assert!(e.rtmrs_match_quote);
    }

    #[test]
    fn a_quote_the_log_does_not_explain_does_not_match() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_td(root, &format!("{NONCE_PARAM}={NONCE_HEX}"));
        let mut quote = REAL_QUOTE.to_vec();
        // RTMR3's last byte: the log never extends RTMR3.
        quote[layout::RTMR0 + 4 * 48 - 1] ^= 1;
        let tsm = FakeTsm::new(Outblob::Binding(quote));
        let (evidence, errors) = gather(root, &tsm);
        assert_eq!(errors, Vec::<String>::new());
        let e = evidence.unwrap();
        assert!(e.report_data_matches);
        assert!(!e.rtmrs_match_quote);
        assert_eq!(e.rtmrs.unwrap()[3], format!("{}01", "00".repeat(47)));
    }

    #[test]
    fn without_a_nonce_the_report_data_is_zero_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_td(root, "console=hvc0");
        let tsm = FakeTsm::new(Outblob::Fixed(REAL_QUOTE.to_vec()));
        let (evidence, errors) = gather(root, &tsm);
        assert_eq!(errors, Vec::<String>::new());
        let e = evidence.unwrap();
        assert_eq!(*tsm.inblobs.borrow(), [vec![0; 64]]);
        assert_eq!(e.nonce, "00".repeat(64));
        assert_eq!(
            e.nonce_source,
            "no td_shim.nonce on the kernel command line: 64 zero bytes"
        );
        // The real quote was taken with zero report data too.
        assert!(e.report_data_matches);
    }

    #[test]
    fn an_invalid_nonce_is_an_error_line_and_zero_report_data() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_td(root, &format!("{NONCE_PARAM}=xyz1"));
        let tsm = FakeTsm::new(Outblob::Binding(REAL_QUOTE.to_vec()));
        let (evidence, errors) = gather(root, &tsm);
        assert_eq!(
            errors,
            [
                "agent: parse td_shim.nonce on the kernel command line: not hex: \
              Invalid character 'x' at position 0"
            ]
        );
        let e = evidence.unwrap();
        assert_eq!(e.nonce_source, "td_shim.nonce is invalid: 64 zero bytes");
        assert_eq!(*tsm.inblobs.borrow(), [vec![0; 64]]);
        // Without a command line at all.
        let tree = Tree::with_kernel(root, &tsm);
        let mut failures = Failures::quiet();
        let e = collect(&tree, None, None, &mut failures).unwrap();
        assert_eq!(failures.lines(), Vec::<String>::new());
        assert_eq!(
            e.nonce_source,
            "the kernel command line could not be read: 64 zero bytes"
        );
        assert!(!e.rtmrs_match_quote, "no replayed log to compare with");
    }

    #[test]
    fn a_generation_change_refuses_the_quote() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_td(root, &format!("{NONCE_PARAM}={NONCE_HEX}"));
        let mut tsm = FakeTsm::new(Outblob::Binding(REAL_QUOTE.to_vec()));
        tsm.concurrent_writer = true;
        let (evidence, errors) = gather(root, &tsm);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with(&format!("agent: read {TSM_REPORT}/td-shim-agent-")));
        assert!(errors[0].ends_with(
            "/outblob: generation 1 became 2 while the quote was read: another writer changed \
             the request, the quote is refused"
        ));
        let e = evidence.unwrap();
        assert_eq!(e.generation, Some(1));
        assert_eq!(e.provider.as_deref(), Some("tdx_guest"));
        assert_eq!((e.quote_base64, e.quote_size, e.mrtd), (None, None, None));
        assert!(!e.report_data_matches && !e.rtmrs_match_quote);
        assert_eq!(leftover_entries(root), 0);
    }

    #[test]
    fn broken_quotes_are_error_lines() {
        let mut version_5 = REAL_QUOTE.to_vec();
        version_5[0] = 5;
        let mut sev = REAL_QUOTE.to_vec();
        sev[4] = 0;
        let mut long_signature = REAL_QUOTE.to_vec();
        long_signature[0x278..0x27C].copy_from_slice(&u32::MAX.to_le_bytes());
        let cases: [(Vec<u8>, &str); 7] = [
            (
                vec![],
                "0 bytes, shorter than the 48 bytes of a TD quote v4's header",
            ),
            (REAL_QUOTE[..7].to_vec(), "7 bytes, shorter than the 48"),
            (
                REAL_QUOTE[..600].to_vec(),
                "600 bytes, shorter than the 636 bytes of a TD quote v4's header, TD report body \
                 and signature data length",
            ),
            (
                REAL_QUOTE[..4000].to_vec(),
                "the signature data of 4299 bytes runs past the end of the 4000-byte quote",
            ),
            (
                long_signature,
                "the signature data of 4294967295 bytes runs past the end of the 8000-byte quote",
            ),
            (version_5, "quote version 5, not 4"),
            (sev, "TEE type 0x0, not 0x81 (TDX)"),
        ];
        for (outblob, why) in cases {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path();
            write_td(root, "");
            let size = outblob.len();
            let tsm = FakeTsm::new(Outblob::Fixed(outblob));
            let (evidence, errors) = gather(root, &tsm);
            assert_eq!(errors.len(), 1, "{errors:?}");
            let prefix = "agent: parse the configfs-tsm outblob as a TD quote: ";
            assert!(errors[0].starts_with(prefix), "{errors:?}");
            assert!(errors[0].contains(why), "{errors:?} vs {why}");
            let e = evidence.unwrap();
            assert_eq!(e.quote_size, Some(size));
            assert!(e.quote_base64.is_some(), "the bytes are kept to look at");
            assert_eq!((e.mrtd, e.rtmrs, e.report_data), (None, None, None));
            assert!(!e.report_data_matches && !e.rtmrs_match_quote);
            assert_eq!(leftover_entries(root), 0);
        }
    }

    #[test]
    fn an_outblob_above_the_bound_is_an_error_line() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_td(root, "");
        let tsm = FakeTsm::new(Outblob::Fixed(vec![0; MAX_QUOTE + 1]));
        let (evidence, errors) = gather(root, &tsm);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].ends_with("/outblob: more than the 65536 bytes the agent reads"));
        assert_eq!(evidence.unwrap().quote_size, None);
        // Exactly at the bound is read (and is no quote).
        let tsm = FakeTsm::new(Outblob::Fixed(vec![0; MAX_QUOTE]));
        let (evidence, errors) = gather(root, &tsm);
        assert_eq!(evidence.unwrap().quote_size, Some(MAX_QUOTE));
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("quote version 0, not 4"), "{errors:?}");
    }

    #[test]
    fn another_provider_is_not_parsed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_td(root, "");
        let mut tsm = FakeTsm::new(Outblob::Fixed(vec![2; 1184]));
        tsm.provider = Some("other_guest");
        let (evidence, errors) = gather(root, &tsm);
        assert_eq!(
            errors,
            [
                "agent: parse the configfs-tsm outblob: provider `other_guest`: the agent parses \
              only `tdx_guest` quotes and `sev_guest` reports"
            ]
        );
        let e = evidence.unwrap();
        assert_eq!(e.provider.as_deref(), Some("other_guest"));
        assert_eq!(e.quote_size, Some(1184));
        assert_eq!((e.mrtd, e.snp_report), (None, None));
    }

    #[test]
    fn a_tsm_directory_that_refuses_entries_is_an_error_line() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_td(root, "");
        // A file where the directory should be: mkdir under it fails.
        let tsm_dir = root.join(TSM_REPORT.trim_start_matches('/'));
        fs::remove_dir(&tsm_dir).unwrap();
        fs::write(&tsm_dir, "").unwrap();
        let tsm = FakeTsm::new(Outblob::Fixed(REAL_QUOTE.to_vec()));
        let (evidence, errors) = gather(root, &tsm);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with(&format!("agent: make {TSM_REPORT}/td-shim-agent-")));
        assert!(errors[0].ends_with("-0: Not a directory (os error 20)"));
        let e = evidence.unwrap();
        assert_eq!((e.provider, e.generation, e.quote_size), (None, None, None));
        assert!(tsm.seen.borrow().is_empty());
    }

    #[test]
    fn a_taken_entry_name_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_td(root, "");
        let taken = format!("{TSM_REPORT}/td-shim-agent-{}-0", std::process::id());
        fs::create_dir(root.join(taken.trim_start_matches('/'))).unwrap();
        let tsm = FakeTsm::new(Outblob::Fixed(REAL_QUOTE.to_vec()));
        let (evidence, errors) = gather(root, &tsm);
        assert_eq!(errors, Vec::<String>::new());
        assert!(evidence.unwrap().mrtd.is_some());
        assert_eq!(leftover_entries(root), 1, "only the other one");
    }

    #[test]
    fn no_tsm_and_no_device_is_no_evidence_and_no_error() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_td(root, &format!("{NONCE_PARAM}={NONCE_HEX}"));
        fs::remove_dir(root.join(TSM_REPORT.trim_start_matches('/'))).unwrap();
        let tsm = FakeTsm::new(Outblob::Fixed(REAL_QUOTE.to_vec()));
        let (evidence, errors) = gather(root, &tsm);
        assert_eq!(errors, Vec::<String>::new());
        assert_eq!(evidence, None);
        assert!(tsm.seen.borrow().is_empty());
    }

    #[test]
    fn the_tdx_guest_device_is_detected_and_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_td(root, &format!("{NONCE_PARAM}={NONCE_HEX}"));
        write(root, TDX_GUEST, b"");
        let tsm = FakeTsm::new(Outblob::Fixed(REAL_QUOTE.to_vec()));
        let (evidence, errors) = gather(root, &tsm);
        assert_eq!(errors, Vec::<String>::new());
        let e = evidence.unwrap();
        assert_eq!(e.source, "configfs-tsm");
        assert_eq!(e.tdx_guest_device, "present, not used");
        assert!(e.rtmrs_match_quote);
        // An older kernel: the device only.
        fs::remove_dir(root.join(TSM_REPORT.trim_start_matches('/'))).unwrap();
        let (evidence, errors) = gather(root, &tsm);
        assert_eq!(errors, Vec::<String>::new());
        let e = evidence.unwrap();
        assert_eq!(e.source, "/dev/tdx_guest");
        assert_eq!(e.tdx_guest_device, "present, not used");
        assert_eq!(e.nonce, hex::encode(nonce()));
        assert_eq!((e.provider, e.quote_base64, e.rtmrs), (None, None, None));
        assert!(!e.report_data_matches && !e.rtmrs_match_quote);
    }

    /// A real SEV-SNP attestation report (virtee/sev's Milan report; provenance in
    /// testdata/README.md), decoded from its hex file.
    pub(crate) fn real_snp_report() -> Vec<u8> {
        const HEX: &str = include_str!("../../../testdata/sev-snp/virtee-report_milan.hex");
        hex::decode(HEX.trim()).unwrap()
    }

    /// Its MEASUREMENT and REPORT_DATA, read by hand from the bytes.
    const SNP_MEASUREMENT: &str = "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f";
    const SNP_REPORT_DATA: &str = "d447b55d197491bfe15cf298f9de9986b7a7c4be2468b4f6e2d53b71d7c645810b0f2cdfca0040433be063fc1a8293f0f3f8dae7b79fecb3d1cd82bd6a93ebfd";

    /// An SEV-SNP guest's tree: the command line, the TSM directory and `/dev/sev-guest` (no
    /// CCEL: the evidence does not need it).
    fn write_snp(root: &Path, cmdline: &str) {
        write(root, "/proc/cmdline", format!("{cmdline}\n").as_bytes());
        write(root, SEV_GUEST, b"");
        fs::create_dir_all(root.join(TSM_REPORT.trim_start_matches('/'))).unwrap();
    }

    /// The evidence of an SEV-SNP guest (no replayed log), and the failure lines.
    fn gather_snp(root: &Path, tsm: &FakeTsm) -> (Option<Evidence>, Vec<String>) {
        let tree = Tree::with_kernel(root, tsm);
        let mut failures = Failures::quiet();
        let cmdline = fs::read_to_string(root.join("proc/cmdline")).ok();
        let evidence = collect(&tree, cmdline.as_deref(), None, &mut failures);
        (evidence, failures.into_lines())
    }

    #[test]
    fn the_real_snp_report_is_parsed_under_sev_guest() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_snp(root, &format!("console=ttyS0 {NONCE_PARAM}={NONCE_HEX}"));
        let tsm = FakeTsm::snp(Outblob::Fixed(real_snp_report()));
        let (evidence, errors) = gather_snp(root, &tsm);
        assert_eq!(errors, Vec::<String>::new());
        let e = evidence.unwrap();
        // Asked with our nonce, in the documented order, and the entry is gone.
        assert_eq!(*tsm.inblobs.borrow(), [nonce().to_vec()]);
        assert_eq!(
            *tsm.seen.borrow(),
            [
                "mkdir",
                "write inblob",
                "read generation",
                "read provider",
                "read outblob",
                "read generation",
                "rmdir"
            ]
        );
        assert_eq!(leftover_entries(root), 0);
        assert_eq!(e.source, "configfs-tsm");
        assert_eq!(e.tdx_guest_device, "absent");
        assert_eq!(e.sev_guest_device, "present, not used");
        assert_eq!(e.provider.as_deref(), Some("sev_guest"));
        assert_eq!(e.quote_size, Some(1184));
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(e.quote_base64.as_deref().unwrap())
            .unwrap();
        assert_eq!(decoded, real_snp_report());
        // The report's REPORT_DATA, not our nonce: it was taken elsewhere.
        assert_eq!(e.report_data.as_deref(), Some(SNP_REPORT_DATA));
        assert!(!e.report_data_matches);
        // No RTMRs under SNP.
        assert_eq!((e.mrtd, e.rtmrs), (None, None));
        assert!(!e.rtmrs_match_quote);
        let r = e.snp_report.unwrap();
        assert_eq!(r.version, 2);
        assert_eq!(r.measurement, SNP_MEASUREMENT);
        assert_eq!(r.policy, "0x30000");
        assert!(!r.policy_debug_allowed && !r.policy_migrate_ma_allowed);
        assert_eq!((r.vmpl, r.signature_algo), (0, 1));
        assert_eq!(r.signing_key, "vcek");
        assert_eq!(r.host_data, "00".repeat(32));
        assert_eq!(
            r.report_id,
            "92b3b47d59f0a2a10a74c5678868a80238cf593c01a82f3cffb878e904c28d5b"
        );
        assert!(r.chip_id.starts_with("d49554ec717f4e5b"));
        assert_eq!(r.platform_info, "0x1");
        let tcb = SnpTcb {
            raw: "0x7308000000000003".into(),
            fmc: None,
            bootloader: 3,
            tee: 0,
            snp: 8,
            microcode: 0x73,
        };
        assert_eq!(
            (&r.reported_tcb, &r.current_tcb, &r.launch_tcb),
            (&tcb, &tcb, &tcb)
        );
        assert_eq!(r.cpuid, None);
    }

    #[test]
    fn an_snp_report_bound_to_the_nonce_matches_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_snp(root, &format!("{NONCE_PARAM}={NONCE_HEX}"));
        let tsm = FakeTsm::snp(Outblob::Binding(real_snp_report()));
        let (evidence, errors) = gather_snp(root, &tsm);
        assert_eq!(errors, Vec::<String>::new());
        let e = evidence.unwrap();
        assert_eq!(e.report_data, Some(hex::encode(nonce())));
        assert!(e.report_data_matches);
        assert_eq!(e.snp_report.unwrap().measurement, SNP_MEASUREMENT);
        // Without a nonce: 64 zero bytes asked for and bound.
        write(root, "/proc/cmdline", b"console=ttyS0\n");
        let (evidence, errors) = gather_snp(root, &tsm);
        assert_eq!(errors, Vec::<String>::new());
        let e = evidence.unwrap();
        assert_eq!(e.report_data, Some("00".repeat(64)));
        assert!(e.report_data_matches);
        assert_eq!(
            e.nonce_source,
            "no td_shim.nonce on the kernel command line: 64 zero bytes"
        );
    }

    #[test]
    fn an_unreadable_provider_on_an_snp_guest_still_parses_the_report() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_snp(root, "");
        let mut tsm = FakeTsm::snp(Outblob::Fixed(real_snp_report()));
        tsm.provider = None;
        let (evidence, errors) = gather_snp(root, &tsm);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("/provider: "), "{errors:?}");
        let e = evidence.unwrap();
        assert_eq!(e.provider, None);
        assert_eq!(e.snp_report.unwrap().measurement, SNP_MEASUREMENT);
    }

    #[test]
    fn broken_snp_reports_are_error_lines() {
        let real = real_snp_report();
        let mut version_9 = real.clone();
        version_9[0] = 9;
        let mut vmpl_4 = real.clone();
        vmpl_4[snp_report::layout::VMPL] = 4;
        let long = [real.as_slice(), &[0; 16]].concat();
        let cases: [(Vec<u8>, &str); 6] = [
            (
                vec![],
                "0 bytes, not the 1184 bytes of an SEV-SNP attestation report",
            ),
            (real[..1000].to_vec(), "1000 bytes, not the 1184"),
            (long, "trailing bytes are not accepted"),
            (version_9, "attestation report version 9"),
            (vmpl_4, "VMPL 4"),
            // A TDX quote where a report was expected.
            (REAL_QUOTE.to_vec(), "8000 bytes"),
        ];
        for (outblob, why) in cases {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path();
            write_snp(root, "");
            let size = outblob.len();
            let tsm = FakeTsm::snp(Outblob::Fixed(outblob));
            let (evidence, errors) = gather_snp(root, &tsm);
            assert_eq!(errors.len(), 1, "{errors:?}");
            let prefix = "agent: parse the configfs-tsm outblob as an SEV-SNP attestation report: ";
            assert!(errors[0].starts_with(prefix), "{errors:?}");
            assert!(errors[0].contains(why), "{errors:?} vs {why}");
            let e = evidence.unwrap();
            assert_eq!(e.quote_size, Some(size));
            assert!(e.quote_base64.is_some(), "the bytes are kept to look at");
            assert_eq!((e.snp_report, e.report_data), (None, None));
            assert!(!e.report_data_matches);
            assert_eq!(leftover_entries(root), 0);
        }
    }

    #[test]
    fn the_sev_guest_device_is_detected_and_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_snp(root, &format!("{NONCE_PARAM}={NONCE_HEX}"));
        fs::remove_dir(root.join(TSM_REPORT.trim_start_matches('/'))).unwrap();
        let tsm = FakeTsm::snp(Outblob::Fixed(real_snp_report()));
        let (evidence, errors) = gather_snp(root, &tsm);
        assert_eq!(errors, Vec::<String>::new());
        let e = evidence.unwrap();
        assert_eq!(e.source, "/dev/sev-guest");
        assert_eq!(e.sev_guest_device, "present, not used");
        assert_eq!(e.tdx_guest_device, "absent");
        assert_eq!(e.nonce, hex::encode(nonce()));
        assert_eq!(
            (e.provider, e.quote_base64, e.snp_report),
            (None, None, None)
        );
        assert!(tsm.seen.borrow().is_empty());
    }

    #[test]
    fn nonces_from_the_command_line() {
        let full = "ab".repeat(64);
        let parse = |cmdline: &str| nonce_from_cmdline(cmdline);
        assert_eq!(parse("console=hvc0 rw"), Ok(None));
        assert_eq!(parse(""), Ok(None));
        assert_eq!(
            parse(&format!("a td_shim.nonce={NONCE_HEX} b")),
            Ok(Some(nonce()))
        );
        assert_eq!(
            parse(&format!("td_shim.nonce={}", NONCE_HEX.to_uppercase())),
            Ok(Some(nonce()))
        );
        assert_eq!(
            parse(&format!("td_shim.nonce={full}")),
            Ok(Some([0xab; 64]))
        );
        // Not the parameter: a prefix of another word.
        assert_eq!(parse("xtd_shim.nonce=00 td_shim.noncex=00"), Ok(None));
        for (cmdline, why) in [
            ("td_shim.nonce=", "0 hex digits"),
            ("td_shim.nonce=abc", "3 hex digits"),
            (&format!("td_shim.nonce={full}00"), "130 hex digits"),
            ("td_shim.nonce=0g", "not hex"),
            ("td_shim.nonce=00 td_shim.nonce=00", "given 2 times"),
        ] {
            let error = parse(cmdline).unwrap_err();
            assert!(error.starts_with(why), "{cmdline}: {error}");
        }
    }

    proptest! {
        #[test]
        fn any_bytes_parse_or_fail_without_panic(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
            let _ = quote::parse(&bytes);
        }

        #[test]
        fn a_damaged_real_quote_parses_or_fails_without_panic(
            cut in 0..REAL_QUOTE.len(),
            flips in prop::collection::vec((0..0x300usize, any::<u8>()), 0..8),
        ) {
            let mut bytes = REAL_QUOTE[..cut].to_vec();
            for (at, value) in flips {
                if let Some(byte) = bytes.get_mut(at) {
                    *byte = value;
                }
            }
            if let Ok(quote) = quote::parse(&bytes) {
                prop_assert!(quote.len() <= bytes.len());
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn any_snp_outblob_gives_evidence_without_panic(
            bytes in prop::collection::vec(any::<u8>(), 0..1400),
            version in 0u32..7,
        ) {
            let mut outblob = bytes;
            if outblob.len() >= 4 {
                outblob[..4].copy_from_slice(&version.to_le_bytes());
            }
            let dir = tempfile::tempdir().unwrap();
            write_snp(dir.path(), "");
            let tsm = FakeTsm::snp(Outblob::Fixed(outblob.clone()));
            let (evidence, errors) = gather_snp(dir.path(), &tsm);
            let e = evidence.unwrap();
            prop_assert_eq!(e.quote_size, Some(outblob.len()));
            prop_assert_eq!(e.snp_report.is_some(), errors.is_empty());
            prop_assert_eq!(leftover_entries(dir.path()), 0);
        }

        #[test]
        fn any_outblob_gives_evidence_without_panic(
            bytes in prop::collection::vec(any::<u8>(), 0..2048),
            header in any::<bool>(),
        ) {
            let mut outblob = bytes;
            if header && outblob.len() >= 8 {
                // Often a plausible header, so the body checks run too.
                outblob[..8].copy_from_slice(&REAL_QUOTE[..8]);
            }
            let dir = tempfile::tempdir().unwrap();
            write_td(dir.path(), "");
            let tsm = FakeTsm::new(Outblob::Fixed(outblob.clone()));
            let (evidence, errors) = gather(dir.path(), &tsm);
            let e = evidence.unwrap();
            prop_assert_eq!(e.quote_size, Some(outblob.len()));
            prop_assert_eq!(e.mrtd.is_some(), errors.is_empty());
            prop_assert_eq!(leftover_entries(dir.path()), 0);
        }
    }
}
