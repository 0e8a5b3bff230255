//! The platform's evidence for an attester: on TDX, a quote with a nonce in its REPORTDATA, next to
//! the CC event log that [`crate::measurement`] already read and replayed.
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
//! The quote is parsed when the provider is `tdx_guest` (or unreadable): TD quote version 4, TEE
//! type 0x81, MRTD, RTMR0 to RTMR3, REPORTDATA, with the signature data inside the outblob
//! (`td_shim::tdx::quote::parse`, shared with `td-shim-tool`). Its REPORTDATA is compared with
//! the report data written (`report_data_matches`) and its RTMRs with the registers replayed from
//! the CC event log (`rtmrs_match_quote`). The quote's signature is not checked: that is the
//! verifier's job, with Intel's collateral.
//!
//! # /dev/tdx_guest (Linux 6.2 to 6.6)
//!
//! Older kernels give a TDREPORT (not a quote) through the `TDX_CMD_GET_REPORT0` ioctl of
//! `/dev/tdx_guest`. The agent only detects the device: `tdx_guest_device` is `present, not used`,
//! and without configfs-tsm the evidence has `source` `/dev/tdx_guest` and no quote.

use crate::failure::Failures;
use crate::report::Evidence;
use crate::tree::Tree;
use base64::Engine as _;
use td_shim::tdx::quote;

/// The configfs-tsm report directory; an entry made in it is one report request.
pub const TSM_REPORT: &str = "/sys/kernel/config/tsm/report";
/// The TDX guest driver's ioctl device.
pub const TDX_GUEST: &str = "/dev/tdx_guest";
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

/// The evidence under `tree` (see the module documentation): `None`, without an error line, when
/// there is neither configfs-tsm nor `/dev/tdx_guest`. `cmdline` is the kernel command line (to
/// find the nonce in), `replayed` the RTMRs replayed from the CC event log, in hex.
pub(crate) fn collect(
    tree: &Tree<'_>,
    cmdline: Option<&str>,
    replayed: Option<&[String; 4]>,
    failures: &mut Failures,
) -> Option<Evidence> {
    let tsm = exists(tree, TSM_REPORT, failures);
    let tdx_guest = exists(tree, TDX_GUEST, failures);
    if !tsm && !tdx_guest {
        return None;
    }
    let (nonce, nonce_source) = report_data(cmdline, failures);
    let mut evidence = Evidence {
        source: if tsm { "configfs-tsm" } else { TDX_GUEST }.to_owned(),
        tdx_guest_device: if tdx_guest {
            "present, not used"
        } else {
            "absent"
        }
        .to_owned(),
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
    if let Some(provider) = evidence.provider.as_deref().filter(|p| *p != PROVIDER_TDX) {
        failures.record(
            "parse the configfs-tsm outblob",
            format_args!("provider `{provider}`: the agent parses only `{PROVIDER_TDX}` quotes"),
        );
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
        provider: &'static str,
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
                provider: PROVIDER_TDX,
                outblob,
                concurrent_writer: false,
                inblobs: RefCell::default(),
                seen: RefCell::default(),
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
                    fs::write(path.join("provider"), format!("{}\n", self.provider)).unwrap();
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
                            quote[layout::REPORT_DATA..][..REPORT_DATA_SIZE]
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
        tsm.provider = "sev_guest";
        let (evidence, errors) = gather(root, &tsm);
        assert_eq!(
            errors,
            ["agent: parse the configfs-tsm outblob: provider `sev_guest`: the agent parses only \
              `tdx_guest` quotes"]
        );
        let e = evidence.unwrap();
        assert_eq!(e.provider.as_deref(), Some("sev_guest"));
        assert_eq!(e.quote_size, Some(1184));
        assert_eq!(e.mrtd, None);
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
