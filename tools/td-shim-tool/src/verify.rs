//! `td-shim-tool verify`: check a TDX quote's measurements against a CC event log and against
//! expected values.
//!
//! Three things are checked, all on the measurement registers:
//! 1. the quote is a TDX quote version 4 ([`parse_quote`], with `td_shim::tdx::quote`: header,
//!    TD report body, and a signature-data length that fits the file);
//! 2. the CC event log, replayed with `eventlog replay`'s code ([`crate::eventlog::replay`]),
//!    gives the quote's RTMR0-2, and RTMR3 when the log extends it. The first register that
//!    differs is named with the events that extend it ([`crate::eventlog::dump`]);
//! 3. the quote's MRTD and RTMRs equal the expected values given: those that
//!    `td-shim-tool measure --platform tdx --json` prints ([`Expected::from_measure_json`]), or
//!    hex values given one by one.
//!
//! **Not checked**: the quote's signature, its attestation key, the QE report and the PCK
//! certificate chain. Trusting a quote needs Intel's collateral (PCK CRLs, TCB info, QE
//! identity); that is the verifier's job (Trustee's attestation service, or any DCAP quote
//! verifier). Without it, anyone can write a quote that passes this command: it only tells
//! whether the measurements in the quote are the ones expected and are explained by the log.
//!
//! A debug TD (TD_ATTRIBUTES bit 0) is reported with a warning, not a mismatch: its
//! measurements may be right, but the host can read and change its memory.
//!
//! `verify --platform snp` checks an SEV-SNP attestation report instead ([`crate::snp::verify`]:
//! MEASUREMENT, REPORT_DATA and POLICY against expected values; its signature is not verified
//! either). The arguments are shared ([`VerifyArgs`]); each platform refuses the other's.

use crate::eventlog::{self, EventLogCommandError, EventReport};
use crate::files::{self, FileError, Limit};
use crate::snp::verify::{SnpExpected, SnpVerifyReport};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use td_shim::eventlog::{RTMR_COUNT, SHA384_DIGEST_SIZE};
use td_shim::tdx::quote::{self, QuoteError};

/// A SHA-384 measurement register value.
pub type Digest = [u8; SHA384_DIGEST_SIZE];

/// The offsets of TDX quote v4 (research/tdx-attestation.md §5.1), from the start of the quote:
/// `td_shim::tdx::quote`'s, which reads the quote.
pub use td_shim::tdx::quote::layout as quote_v4;
pub use td_shim::tdx::quote::{QuoteV4, TD_ATTRIBUTES_DEBUG};

/// Reads a TDX quote v4 ([`quote::parse`]): checks the version, the TEE type, and that the file
/// is long enough for the header, the TD report body and the signature data it declares
/// (trailing bytes are allowed: quote buffers are often padded). The signature is not verified.
pub fn parse_quote(bytes: &[u8]) -> Result<QuoteV4<'_>, VerifyError> {
    Ok(quote::parse(bytes)?)
}

impl From<QuoteError> for VerifyError {
    fn from(e: QuoteError) -> Self {
        match e {
            QuoteError::HeaderTruncated { size } | QuoteError::BodyTruncated { size } => {
                Self::QuoteTooShort {
                    size,
                    min: quote_v4::SIGNATURE_DATA,
                }
            }
            QuoteError::Version(version) => Self::QuoteVersion(version),
            QuoteError::TeeType(tee_type) => Self::QuoteNotTdx(tee_type),
            QuoteError::SignatureTruncated { size, declared } => {
                Self::QuoteSignatureTruncated { size, declared }
            }
        }
    }
}

/// Why `verify` could not check, or found a mismatch.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// An input file could not be read, or is too large.
    #[error(transparent)]
    File(#[from] FileError),
    /// The quote is shorter than a TDX quote v4's header, body and signature-data length.
    #[error(
        "quote: {size} bytes, too short for a TDX quote v4 (header, TD report body and \
         signature-data length: at least {min})"
    )]
    QuoteTooShort {
        /// The file's length.
        size: usize,
        /// The shortest quote.
        min: usize,
    },
    /// The quote is not version 4.
    #[error("quote: version {0}, but only TDX quote version 4 is read")]
    QuoteVersion(u16),
    /// The quote is not a TDX quote.
    #[error("quote: TEE type {0:#x}, not TDX (0x81)")]
    QuoteNotTdx(u32),
    /// The quote ends before the signature data it declares.
    #[error(
        "quote: {size} bytes, but it declares {declared} bytes of signature data after byte \
         {start}: the quote is truncated",
        start = quote_v4::SIGNATURE_DATA
    )]
    QuoteSignatureTruncated {
        /// The file's length.
        size: usize,
        /// The declared signature-data length.
        declared: u32,
    },
    /// The SEV-SNP attestation report was refused (`verify --platform snp`).
    #[error("report: {0}")]
    SnpReport(#[from] crate::snp::report::ReportError),
    /// The expected-values file is JSON, but not what `measure --platform snp --json` prints.
    #[error(
        "{path}: {reason}; give the JSON that `td-shim-tool measure --platform snp --image IMG \
         --vcpus N --vcpu-type TYPE --json` prints, or --measurement HEX"
    )]
    SnpExpectedShape {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The event log was refused (the message starts with "event log").
    #[error(transparent)]
    Log(#[from] EventLogCommandError),
    /// The expected-values file is not JSON.
    #[error("{path}: not JSON: {error}")]
    ExpectedJson {
        /// The file.
        path: String,
        /// Why.
        error: serde_json::Error,
    },
    /// The expected-values file is JSON, but not what `measure --platform tdx --json` prints.
    #[error(
        "{path}: {reason}; give the JSON that `td-shim-tool measure --platform tdx --image IMG \
         --json` prints (with --memory and --vcpus for the RTMRs)"
    )]
    ExpectedShape {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A required input is missing (the CLI checks this before; the library says it again).
    #[error("{0}")]
    Missing(&'static str),
    /// A value differs: the first one, in the order the report lists them.
    #[error("{first}{}", more_text(*.more))]
    Mismatch {
        /// The first mismatch, as a sentence naming the register.
        first: String,
        /// How many more there are.
        more: usize,
    },
}

/// One line of `verify`'s text report: `field` (padded to `width`), the expected value, and
/// whether the `evidence` ("quote", "report") agrees, or what it has instead (`differs`).
pub(crate) fn comparison_line(
    s: &mut String,
    field: &str,
    width: usize,
    want: &str,
    evidence: &str,
    differs: Option<&impl std::fmt::Display>,
) {
    let _ = match differs {
        None => writeln!(s, "  {field:<width$} {want}  matches the {evidence}"),
        Some(got) => writeln!(
            s,
            "  {field:<width$} {want}  DIFFERS: the {evidence} has {got}"
        ),
    };
}

fn more_text(more: usize) -> String {
    match more {
        0 => String::new(),
        1 => " (and 1 more mismatch)".into(),
        n => format!(" (and {n} more mismatches)"),
    }
}

/// A register value in hex: 96 hex digits (48 bytes), either case.
pub fn parse_digest(s: &str) -> Result<Digest, String> {
    let bytes = hex::decode(s.trim()).map_err(|e| format!("not hex: {e}"))?;
    let len = bytes.len();
    Digest::try_from(bytes).map_err(|_| {
        format!(
            "{len} bytes, but a measurement register is {SHA384_DIGEST_SIZE} bytes \
             ({} hex digits)",
            2 * SHA384_DIGEST_SIZE
        )
    })
}

/// The register names, in the order they are compared: MRTD, then RTMR0 to RTMR3.
const REGISTERS: [&str; 1 + RTMR_COUNT] = ["MRTD", "RTMR0", "RTMR1", "RTMR2", "RTMR3"];

/// The values the quote is expected to hold. `None`: not given, not compared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    /// Where they come from (the file, or "command line"); `None` when nothing is given.
    pub source: Option<String>,
    /// MRTD.
    pub mrtd: Option<Digest>,
    /// RTMR0 to RTMR3.
    pub rtmrs: [Option<Digest>; RTMR_COUNT],
}

impl Expected {
    /// The most bytes an expected-values file can have: `measure --json` prints a few KiB.
    pub const LIMIT: Limit = Limit {
        what: "expected values",
        max: 4 << 20,
        regular_only: false,
        rule: "the JSON `measure --json` prints is a few KiB; at most 4 MiB is read",
    };

    /// Reads the JSON object `td-shim-tool measure --platform tdx --image IMG --json` prints:
    /// `mrtd` (required) and, when it was run with --memory and --vcpus, all four of `rtmr0` to
    /// `rtmr3`; each a string of 96 hex digits, except `rtmr0`, which is null when `measure`
    /// could not predict it (without --td-hob and --acpi-dir): RTMR0 is then not compared. Its
    /// other keys (`vmm`, `tdvf_sections`, `events`, `launch_params`, `rtmr0_unknown`, ...)
    /// are not read. `path` names the file in errors.
    pub fn from_measure_json(path: &str, json: &[u8]) -> Result<Self, VerifyError> {
        let shape = |reason: String| VerifyError::ExpectedShape {
            path: path.to_owned(),
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_slice(json).map_err(|error| VerifyError::ExpectedJson {
                path: path.to_owned(),
                error,
            })?;
        let object = value
            .as_object()
            .ok_or_else(|| shape("not a JSON object".into()))?;
        let digest = |key: &str| -> Result<Option<Digest>, VerifyError> {
            match object.get(key) {
                None => Ok(None),
                Some(serde_json::Value::String(s)) => parse_digest(s)
                    .map(Some)
                    .map_err(|e| shape(format!("\"{key}\": {e}"))),
                Some(_) => Err(shape(format!("\"{key}\" is not a string"))),
            }
        };
        let mrtd = digest("mrtd")?.ok_or_else(|| {
            shape("no \"mrtd\" (the output of `measure --platform plain` has none)".into())
        })?;
        // `measure` prints RTMR0 as null when it cannot predict it, with the others.
        let rtmr0_null = object.get("rtmr0").is_some_and(serde_json::Value::is_null);
        let mut rtmrs = [None; RTMR_COUNT];
        for (i, slot) in rtmrs.iter_mut().enumerate() {
            if i == 0 && rtmr0_null {
                continue;
            }
            *slot = digest(&format!("rtmr{i}"))?;
        }
        let given = rtmrs.iter().filter(|r| r.is_some()).count();
        let complete = if rtmr0_null {
            given == RTMR_COUNT - 1
        } else {
            given == 0 || given == RTMR_COUNT
        };
        if !complete {
            return Err(shape(format!(
                "{given} of \"rtmr0\" to \"rtmr3\"{}: `measure` prints all four (\"rtmr0\" \
                 null when unknown) or none",
                if rtmr0_null { " (rtmr0 null)" } else { "" }
            )));
        }
        Ok(Self {
            source: Some(path.to_owned()),
            mrtd: Some(mrtd),
            rtmrs,
        })
    }

    /// Whether any value is given.
    pub fn is_empty(&self) -> bool {
        self.mrtd.is_none() && self.rtmrs.iter().all(Option::is_none)
    }

    /// MRTD, RTMR0 to RTMR3, in [`REGISTERS`] order.
    fn values(&self) -> [Option<Digest>; 1 + RTMR_COUNT] {
        let [r0, r1, r2, r3] = self.rtmrs;
        [self.mrtd, r0, r1, r2, r3]
    }
}

/// The platform whose evidence `verify` checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VerifyPlatform {
    /// Intel TDX: a quote (--quote) and the CC event log (--log).
    Tdx,
    /// AMD SEV-SNP: an attestation report (--report).
    Snp,
}

/// `td-shim-tool verify`'s arguments.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The evidence's platform: tdx (--quote and --log) or snp (--report).
    #[arg(long, value_enum, default_value = "tdx")]
    pub platform: VerifyPlatform,
    /// With --platform tdx (required): the TDX quote (version 4), as the guest got it
    /// (configfs-tsm `outblob`).
    #[arg(long)]
    pub quote: Option<PathBuf>,
    /// With --platform tdx (required): the CC event log taken in the same boot (the CCEL log
    /// area, e.g. /sys/firmware/acpi/tables/data/CCEL).
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// With --platform snp (required): the SEV-SNP attestation report (1184 bytes), as the
    /// guest got it (configfs-tsm `outblob` with provider sev_guest, or the guest agent's
    /// `report_base64`).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// The expected values: the JSON `td-shim-tool measure --platform tdx --image IMG --json`
    /// prints (MRTD; the RTMRs too if it was given --memory and --vcpus); with --platform snp,
    /// the JSON `measure --platform snp ... --json` prints (its launch_digest, mode snp).
    #[arg(long, value_name = "EXPECTED.json",
          conflicts_with_all = ["mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "measurement"])]
    pub expected: Option<PathBuf>,
    /// With --platform snp: the expected launch digest (MEASUREMENT), 96 hex digits.
    #[arg(long, value_name = "HEX", value_parser = parse_digest)]
    pub measurement: Option<Digest>,
    /// With --platform snp: the nonce the report must carry in REPORT_DATA, 1 to 64 bytes in
    /// hex, zero-padded on the right to 64 bytes.
    #[arg(long, value_name = "HEX", value_parser = crate::snp::verify::parse_nonce)]
    pub nonce: Option<[u8; crate::snp::report::REPORT_DATA_SIZE]>,
    /// With --platform snp: the expected guest policy (POLICY, the 64 bits the VMM launched
    /// with; QEMU's default is 0x30000), 0x-hex or decimal.
    #[arg(long, value_name = "POLICY", value_parser = crate::snp::cli::parse_u64)]
    pub guest_policy: Option<u64>,
    /// The expected MRTD, 96 hex digits.
    #[arg(long, value_name = "HEX", value_parser = parse_digest)]
    pub mrtd: Option<Digest>,
    /// The expected RTMR0, 96 hex digits.
    #[arg(long, value_name = "HEX", value_parser = parse_digest)]
    pub rtmr0: Option<Digest>,
    /// The expected RTMR1, 96 hex digits.
    #[arg(long, value_name = "HEX", value_parser = parse_digest)]
    pub rtmr1: Option<Digest>,
    /// The expected RTMR2, 96 hex digits.
    #[arg(long, value_name = "HEX", value_parser = parse_digest)]
    pub rtmr2: Option<Digest>,
    /// The expected RTMR3, 96 hex digits.
    #[arg(long, value_name = "HEX", value_parser = parse_digest)]
    pub rtmr3: Option<Digest>,
    /// Print the verdict as JSON: {"quote": {"version", "tee_type", "mrtd", "rtmrs",
    /// "report_data", "td_attributes", "debug", ...}, "replay": {"rtmrs", "matches_quote",
    /// "first_mismatch", ...}, "expected": {"source", "mrtd", "rtmrs", "mismatches"},
    /// "warnings", "signature_verified": false, "verdict": "ok" or "mismatch"}. With
    /// --platform snp: {"platform": "snp", "report": {"version", "policy", "vmpl",
    /// "measurement", "report_data", "host_data", "reported_tcb", "chip_id", ...}, "expected":
    /// {"source", "measurement", "report_data", "guest_policy", "compared", "mismatches"},
    /// "warnings", "signature_verified": false, "verdict"}.
    #[arg(long)]
    pub json: bool,
}

impl VerifyArgs {
    /// The expected values: from --expected, or from the hex flags.
    pub fn expected(&self) -> Result<Expected, VerifyError> {
        if let Some(path) = &self.expected {
            let bytes = files::read(path, &Expected::LIMIT)?;
            return Expected::from_measure_json(&path.display().to_string(), &bytes);
        }
        let mut expected = Expected {
            source: None,
            mrtd: self.mrtd,
            rtmrs: [self.rtmr0, self.rtmr1, self.rtmr2, self.rtmr3],
        };
        if !expected.is_empty() {
            expected.source = Some("command line".into());
        }
        Ok(expected)
    }

    /// Reads the inputs (bounded) and checks them. A mismatch is in the report
    /// ([`VerifyReport::result`]); an error here means an input was refused.
    pub fn run(&self) -> Result<VerifyReport, VerifyError> {
        let (Some(quote), Some(log)) = (&self.quote, &self.log) else {
            return Err(VerifyError::Missing(
                "--platform tdx needs --quote and --log",
            ));
        };
        let quote = read(quote, &Limit::QUOTE)?;
        let log = read(log, &Limit::EVENT_LOG)?;
        let expected = self.expected()?;
        verify(&quote, &log, &expected)
    }

    /// The SEV-SNP expected values: the launch digest from --expected or --measurement, the
    /// nonce and the guest policy.
    pub fn snp_expected(&self) -> Result<SnpExpected, VerifyError> {
        let mut expected = match &self.expected {
            Some(path) => {
                let bytes = files::read(path, &Expected::LIMIT)?;
                SnpExpected::from_measure_json(&path.display().to_string(), &bytes)?
            }
            None => SnpExpected {
                source: self.measurement.map(|_| "command line".to_owned()),
                measurement: self.measurement,
                ..SnpExpected::default()
            },
        };
        expected.report_data = self.nonce;
        expected.guest_policy = self.guest_policy;
        Ok(expected)
    }

    /// `verify --platform snp`: reads the report (bounded) and checks it. A mismatch is in the
    /// report ([`SnpVerifyReport::result`]); an error here means an input was refused.
    pub fn run_snp(&self) -> Result<SnpVerifyReport, VerifyError> {
        let Some(report) = &self.report else {
            return Err(VerifyError::Missing("--platform snp needs --report"));
        };
        let bytes = read(report, &Limit::SNP_REPORT)?;
        let expected = self.snp_expected()?;
        crate::snp::verify::verify(&bytes, &expected)
    }

    /// The usage rules clap cannot state (the options of the other platform), as the message of
    /// the first broken.
    pub fn usage_error(&self) -> Option<&'static str> {
        match self.platform {
            VerifyPlatform::Tdx => {
                if self.report.is_some()
                    || self.measurement.is_some()
                    || self.nonce.is_some()
                    || self.guest_policy.is_some()
                {
                    Some("--report, --measurement, --nonce and --guest-policy need --platform snp")
                } else if self.quote.is_none() || self.log.is_none() {
                    Some(
                        "the following required arguments were not provided: --quote <QUOTE> \
                         --log <LOG>",
                    )
                } else {
                    None
                }
            }
            VerifyPlatform::Snp => {
                let tdx_values = [self.mrtd, self.rtmr0, self.rtmr1, self.rtmr2, self.rtmr3];
                if self.quote.is_some()
                    || self.log.is_some()
                    || tdx_values.iter().any(Option::is_some)
                {
                    Some("--quote, --log, --mrtd and --rtmr0..--rtmr3 need --platform tdx")
                } else if self.report.is_none() {
                    Some("the following required arguments were not provided: --report <FILE>")
                } else {
                    None
                }
            }
        }
    }
}

fn read(path: &Path, limit: &Limit) -> Result<Vec<u8>, VerifyError> {
    Ok(files::read(path, limit)?)
}

/// The quote's side of the report.
#[derive(Debug, Serialize)]
pub struct QuoteSummary {
    /// Bytes in the file.
    pub size: usize,
    /// `version` (4).
    pub version: u16,
    /// `att_key_type` (2: ECDSA-256 with P-256).
    pub att_key_type: u16,
    /// `tee_type` (129 = 0x81, TDX).
    pub tee_type: u32,
    /// MRTD, lower-case hex.
    pub mrtd: String,
    /// RTMR0 to RTMR3.
    pub rtmrs: Vec<String>,
    /// REPORTDATA (64 bytes).
    pub report_data: String,
    /// TD_ATTRIBUTES: the 8 bytes as they sit in the quote (little-endian), as Trustee's
    /// claims show them.
    pub td_attributes: String,
    /// TD_ATTRIBUTES bit 0: a debug TD.
    pub debug: bool,
}

/// The first register whose replay differs from the quote.
#[derive(Debug, Serialize)]
pub struct ReplayMismatch {
    /// "RTMR0" to "RTMR3".
    pub register: String,
    /// What the log's replay gives.
    pub replayed: String,
    /// What the quote holds.
    pub quote: String,
    /// The log's events that extend this register, as `eventlog dump` lists them.
    pub events: Vec<EventReport>,
}

/// The replay side of the report.
#[derive(Debug, Serialize)]
pub struct ReplayCheck {
    /// Events replayed.
    pub events: usize,
    /// RTMR0 to RTMR3 as the log's replay gives them.
    pub rtmrs: Vec<String>,
    /// Whether the log extends each register.
    pub extended: Vec<bool>,
    /// Whether each register was compared with the quote: RTMR0-2 always, RTMR3 only if the
    /// log extends it (the OS may extend RTMR3 through another log).
    pub compared: Vec<bool>,
    /// Whether every compared register equals the quote's.
    pub matches_quote: bool,
    /// The first register that differs, if any.
    pub first_mismatch: Option<ReplayMismatch>,
    /// Every register that differs.
    pub mismatched: Vec<String>,
}

/// One expected value the quote does not hold.
#[derive(Debug, Serialize)]
pub struct ExpectedMismatch {
    /// "MRTD" or "RTMR0" to "RTMR3".
    pub register: String,
    /// The expected value.
    pub expected: String,
    /// The quote's.
    pub quote: String,
}

/// The expected-values side of the report.
#[derive(Debug, Serialize)]
pub struct ExpectedCheck {
    /// Where the values come from: the file, "command line", or null when none were given.
    pub source: Option<String>,
    /// The expected MRTD, null when not given.
    pub mrtd: Option<String>,
    /// The expected RTMR0 to RTMR3, null where not given.
    pub rtmrs: Vec<Option<String>>,
    /// The registers compared, in order.
    pub compared: Vec<String>,
    /// The registers that differ from the quote's, in order.
    pub mismatches: Vec<ExpectedMismatch>,
}

/// `verify`'s report: what the quote holds, what the log's replay gives, what was expected.
#[derive(Debug, Serialize)]
pub struct VerifyReport {
    /// The quote.
    pub quote: QuoteSummary,
    /// The log's replay against the quote.
    pub replay: ReplayCheck,
    /// The expected values against the quote.
    pub expected: ExpectedCheck,
    /// Things that do not fail the check but a verifier should know (a debug TD).
    pub warnings: Vec<String>,
    /// Always false: the quote's signature and certificate chain are not checked here.
    pub signature_verified: bool,
    /// "ok" when every compared value matches, else "mismatch".
    pub verdict: &'static str,
}

/// Checks a quote against a log and expected values. Refused inputs are errors; mismatches are
/// in the report ([`VerifyReport::result`]).
pub fn verify(quote: &[u8], log: &[u8], expected: &Expected) -> Result<VerifyReport, VerifyError> {
    let q = parse_quote(quote)?;
    let replayed = eventlog::replay(log, Some(quote))?;
    let comparisons = replayed
        .quote
        .as_ref()
        .map(|r| r.registers.as_slice())
        .unwrap_or_default();
    let mismatched: Vec<String> = replayed
        .mismatches()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let first_mismatch = match mismatched.first() {
        None => None,
        Some(register) => {
            let rtmr = REGISTERS[1..]
                .iter()
                .position(|r| r == register)
                .unwrap_or_default();
            let events = eventlog::dump(log)?
                .events
                .into_iter()
                .filter(|e| e.register.as_deref() == Some(register.as_str()))
                .collect();
            Some(ReplayMismatch {
                register: register.clone(),
                replayed: replayed.rtmrs.get(rtmr).cloned().unwrap_or_default(),
                quote: q.rtmrs().get(rtmr).map(hex::encode).unwrap_or_default(),
                events,
            })
        }
    };
    let replay = ReplayCheck {
        events: replayed.events,
        compared: comparisons.iter().map(|c| c.compared).collect(),
        matches_quote: mismatched.is_empty(),
        first_mismatch,
        mismatched,
        rtmrs: replayed.rtmrs,
        extended: replayed.extended,
    };

    let [r0, r1, r2, r3] = *q.rtmrs();
    let actual = [*q.mrtd(), r0, r1, r2, r3];
    let mut compared = Vec::new();
    let mut mismatches = Vec::new();
    for ((name, want), got) in REGISTERS.iter().zip(expected.values()).zip(actual) {
        let Some(want) = want else { continue };
        compared.push((*name).to_owned());
        if want != got {
            mismatches.push(ExpectedMismatch {
                register: (*name).to_owned(),
                expected: hex::encode(want),
                quote: hex::encode(got),
            });
        }
    }
    let expected = ExpectedCheck {
        source: expected.source.clone(),
        mrtd: expected.mrtd.map(hex::encode),
        rtmrs: expected.rtmrs.iter().map(|r| r.map(hex::encode)).collect(),
        compared,
        mismatches,
    };

    let mut warnings = Vec::new();
    if q.debug() {
        warnings.push(
            "the quote is from a debug TD (TD_ATTRIBUTES bit 0): the host can read and change \
             its memory and registers, so its measurements prove nothing about what runs in it"
                .to_owned(),
        );
    }
    if !replay.extended.get(3).copied().unwrap_or(false) && r3 != [0; SHA384_DIGEST_SIZE] {
        warnings.push(
            "the quote's RTMR3 is not zero but the log does not extend it: something else \
             (e.g. the attestation agent's own log) extended it; RTMR3 was not replayed"
                .to_owned(),
        );
    }
    let ok = replay.matches_quote && expected.mismatches.is_empty();
    Ok(VerifyReport {
        quote: QuoteSummary {
            size: quote.len(),
            version: q.version(),
            att_key_type: q.att_key_type(),
            tee_type: q.tee_type(),
            mrtd: hex::encode(q.mrtd()),
            rtmrs: q.rtmrs().iter().map(hex::encode).collect(),
            report_data: hex::encode(q.report_data()),
            td_attributes: hex::encode(q.td_attributes().to_le_bytes()),
            debug: q.debug(),
        },
        replay,
        expected,
        warnings,
        signature_verified: false,
        verdict: if ok { "ok" } else { "mismatch" },
    })
}

impl VerifyReport {
    /// Every mismatch as a sentence naming the register: the replay's first, then the
    /// expected values', in register order.
    pub fn mismatch_messages(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .replay
            .mismatched
            .iter()
            .map(|r| format!("{r}: the event log's replay differs from the quote's {r}"))
            .collect();
        out.extend(self.expected.mismatches.iter().map(|m| {
            format!(
                "{}: the quote's {} differs from the expected value (from {})",
                m.register,
                m.register,
                self.expected.source.as_deref().unwrap_or("?")
            )
        }));
        out
    }

    /// `Ok` when everything compared matches, else [`VerifyError::Mismatch`] naming the first.
    pub fn result(&self) -> Result<(), VerifyError> {
        let messages = self.mismatch_messages();
        match messages.first() {
            None => Ok(()),
            Some(first) => Err(VerifyError::Mismatch {
                first: first.clone(),
                more: messages.len() - 1,
            }),
        }
    }

    /// The human-readable form.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let q = &self.quote;
        let _ = writeln!(
            s,
            "quote: TDX quote v{}, TEE type {:#x}, {} bytes (signature and certificate chain \
             NOT verified)",
            q.version, q.tee_type, q.size
        );
        let _ = writeln!(s, "  MRTD          {}", q.mrtd);
        for (i, r) in q.rtmrs.iter().enumerate() {
            let _ = writeln!(s, "  RTMR{i}         {r}");
        }
        let _ = writeln!(s, "  REPORTDATA    {}", q.report_data);
        let _ = writeln!(
            s,
            "  TD_ATTRIBUTES {}{}",
            q.td_attributes,
            if q.debug { "  DEBUG TD" } else { "" }
        );

        let r = &self.replay;
        let _ = writeln!(s, "event log: {} events replayed", r.events);
        for (i, value) in r.rtmrs.iter().enumerate() {
            let name = REGISTERS.get(1 + i).copied().unwrap_or("?");
            let verdict = if !r.compared.get(i).copied().unwrap_or(false) {
                "not compared (the log does not extend it)"
            } else if r.mismatched.iter().any(|m| m == name) {
                "DIFFERS from the quote"
            } else {
                "matches the quote"
            };
            let _ = writeln!(s, "  {name} {value}  {verdict}");
        }
        if let Some(m) = &r.first_mismatch {
            let _ = writeln!(
                s,
                "  first difference: {} (replayed {}, quote {}); the {} events extending it:",
                m.register,
                m.replayed,
                m.quote,
                m.events.len()
            );
            for e in &m.events {
                let _ = writeln!(
                    s,
                    "  {:>5} {:<32} {}  {}",
                    e.index,
                    e.type_name,
                    e.digest,
                    e.description.as_deref().unwrap_or("")
                );
            }
        }

        let x = &self.expected;
        match &x.source {
            None => {
                let _ = writeln!(
                    s,
                    "expected values: none given (only the log was checked against the quote)"
                );
            }
            Some(source) => {
                let _ = writeln!(s, "expected values (from {source}):");
                let given = std::iter::once(&x.mrtd).chain(x.rtmrs.iter());
                for (name, want) in REGISTERS.iter().zip(given) {
                    let Some(want) = want else {
                        let _ = writeln!(s, "  {name:<5} not given");
                        continue;
                    };
                    let got = x.mismatches.iter().find(|m| m.register == *name);
                    comparison_line(&mut s, name, 5, want, "quote", got.map(|m| &m.quote));
                }
            }
        }
        for w in &self.warnings {
            let _ = writeln!(s, "warning: {w}");
        }
        let _ = writeln!(s, "verdict: {}", self.verdict);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventlog::tests::testdata;
    use proptest::prelude::*;

    const QUOTE: &str = "gotdx-cos-113-tdx-quote.dat";
    const LOG: &str = "gotdx-ccel_data.dat";

    fn quote_expected(q: &QuoteV4<'_>) -> Expected {
        Expected {
            source: Some("test".into()),
            mrtd: Some(*q.mrtd()),
            rtmrs: q.rtmrs().map(Some),
        }
    }

    #[test]
    fn reads_the_real_quote() {
        let bytes = testdata(QUOTE);
        let q = parse_quote(&bytes).unwrap();
        assert_eq!((q.version(), q.att_key_type(), q.tee_type()), (4, 2, 0x81));
        assert_eq!(q.signature_data_len(), 4299);
        assert_eq!(q.td_attributes(), 1 << 28, "SEPT_VE_DISABLE only");
        assert!(!q.debug());
        // The same registers `eventlog replay --quote` reads.
        let regs = eventlog::quote_registers(&bytes).unwrap();
        assert_eq!((*q.mrtd(), *q.rtmrs()), (regs.mrtd, regs.rtmrs));
        // REPORTDATA is the nonce the quote was requested with.
        assert_eq!(q.report_data().as_slice(), testdata("gotdx-nonce.dat"));
    }

    #[test]
    fn the_real_quote_and_log_agree() {
        let bytes = testdata(QUOTE);
        let expected = quote_expected(&parse_quote(&bytes).unwrap());
        let report = verify(&bytes, &testdata(LOG), &expected).unwrap();
        assert_eq!(report.verdict, "ok");
        assert!(report.result().is_ok());
        assert!(report.replay.matches_quote);
        assert_eq!(report.replay.compared, [true, true, true, false]);
        assert_eq!(report.expected.compared.len(), 5);
        assert!(report.warnings.is_empty());
        assert!(!report.signature_verified);
        assert!(report.to_text().contains("NOT verified"));
    }

    #[test]
    fn an_expected_mismatch_is_named() {
        let bytes = testdata(QUOTE);
        let mut expected = quote_expected(&parse_quote(&bytes).unwrap());
        expected.rtmrs[2] = Some([7; 48]);
        let report = verify(&bytes, &testdata(LOG), &expected).unwrap();
        assert_eq!(report.verdict, "mismatch");
        let names: Vec<_> = report
            .expected
            .mismatches
            .iter()
            .map(|m| m.register.as_str())
            .collect();
        assert_eq!(names, ["RTMR2"]);
        let err = report.result().unwrap_err().to_string();
        assert!(err.starts_with("RTMR2: "), "{err}");
    }

    #[test]
    fn a_replay_mismatch_names_the_register_and_its_events() {
        let quote = testdata(QUOTE);
        let mut log = testdata(LOG);
        let events = eventlog::dump(&log).unwrap().events;
        let target = events
            .iter()
            .find(|e| e.register.as_deref() == Some("RTMR1"))
            .unwrap();
        // The digest follows mr_index, event_type, digest count and algorithm ID.
        log[target.offset + 14] ^= 1;
        let report = verify(&quote, &log, &Expected::default()).unwrap();
        assert_eq!(report.replay.mismatched, ["RTMR1"]);
        let first = report.replay.first_mismatch.as_ref().unwrap();
        assert_eq!(first.register, "RTMR1");
        let rtmr1_events = events
            .iter()
            .filter(|e| e.register.as_deref() == Some("RTMR1"))
            .count();
        assert_eq!(first.events.len(), rtmr1_events);
        assert!(first.events.iter().any(|e| e.index == target.index));
        assert!(report
            .result()
            .unwrap_err()
            .to_string()
            .starts_with("RTMR1: the event log's replay differs"));
    }

    #[test]
    fn a_debug_td_is_a_warning() {
        let mut quote = testdata(QUOTE);
        quote[quote_v4::TD_ATTRIBUTES] |= 1;
        let report = verify(&quote, &testdata(LOG), &Expected::default()).unwrap();
        assert!(report.quote.debug);
        assert_eq!(report.verdict, "ok");
        assert!(report.warnings[0].contains("debug TD"));
    }

    #[test]
    fn quotes_are_checked() {
        let quote = testdata(QUOTE);
        assert!(matches!(
            parse_quote(&quote[..quote_v4::SIGNATURE_DATA - 1]),
            Err(VerifyError::QuoteTooShort { size: 0x27B, .. })
        ));
        assert!(matches!(
            parse_quote(&quote[..1000]),
            Err(VerifyError::QuoteSignatureTruncated {
                size: 1000,
                declared: 4299
            })
        ));
        assert!(parse_quote(&quote[..quote_v4::SIGNATURE_DATA + 4299]).is_ok());
        assert!(matches!(
            parse_quote(&[]),
            Err(VerifyError::QuoteTooShort { .. })
        ));
        let mut v5 = quote.clone();
        v5[0] = 5;
        assert!(matches!(
            parse_quote(&v5),
            Err(VerifyError::QuoteVersion(5))
        ));
        let mut sgx = quote.clone();
        sgx[4] = 0;
        assert!(matches!(
            parse_quote(&sgx),
            Err(VerifyError::QuoteNotTdx(0))
        ));
        assert!(matches!(
            parse_quote(&vec![0; 8000]),
            Err(VerifyError::QuoteVersion(0))
        ));
    }

    #[test]
    fn expected_json_is_what_measure_prints() {
        let mrtd = "ab".repeat(48);
        let r = "CD".repeat(48);
        let full = format!(
            r#"{{"mrtd":"{mrtd}","vmm":"qemu","tdvf_source":"x","tdvf_offset":1,
               "tdvf_sections":[],"rtmr0":"{r}","rtmr1":"{r}","rtmr2":"{r}","rtmr3":"{r}",
               "events":[],"launch_params":""}}"#
        );
        let e = Expected::from_measure_json("m.json", full.as_bytes()).unwrap();
        assert_eq!(e.mrtd, Some([0xab; 48]));
        assert_eq!(e.rtmrs, [Some([0xcd; 48]); 4]);
        let only = format!(r#"{{"mrtd":"{mrtd}","vmm":"qemu"}}"#);
        let e = Expected::from_measure_json("m.json", only.as_bytes()).unwrap();
        assert_eq!(e.rtmrs, [None; 4]);
        // RTMR0 unknown (TDX without the VMM's configuration): the other three are compared.
        let unknown = format!(
            r#"{{"mrtd":"{mrtd}","rtmr0":null,"rtmr0_unknown":"unknown: needs --td-hob",
               "rtmr1":"{r}","rtmr2":"{r}","rtmr3":"{r}"}}"#
        );
        let e = Expected::from_measure_json("m.json", unknown.as_bytes()).unwrap();
        assert_eq!(
            e.rtmrs,
            [None, Some([0xcd; 48]), Some([0xcd; 48]), Some([0xcd; 48])]
        );
        for bad in [
            "[]".to_owned(),
            "{".to_owned(),
            format!(r#"{{"rtmr0":"{r}"}}"#),
            format!(r#"{{"mrtd":"{mrtd}","rtmr0":"{r}"}}"#),
            format!(r#"{{"mrtd":"{mrtd}","rtmr0":null}}"#),
            format!(r#"{{"mrtd":"{mrtd}","rtmr0":null,"rtmr1":"{r}","rtmr2":"{r}"}}"#),
            format!(r#"{{"mrtd":"{mrtd}","rtmr1":"{r}","rtmr2":"{r}","rtmr3":"{r}"}}"#),
            format!(r#"{{"mrtd":"{}"}}"#, "ab".repeat(47)),
            r#"{"mrtd":"xyz"}"#.to_owned(),
            r#"{"mrtd":5}"#.to_owned(),
        ] {
            assert!(
                Expected::from_measure_json("m.json", bad.as_bytes()).is_err(),
                "{bad}"
            );
        }
    }

    proptest! {
        #[test]
        fn any_quote_never_panics(q in proptest::collection::vec(any::<u8>(), 0..0x400)) {
            let _ = parse_quote(&q);
        }

        #[test]
        fn any_quote_with_the_real_header_never_panics(
            body in proptest::collection::vec(any::<u8>(), 0..0x400),
        ) {
            let mut q = testdata(QUOTE)[..quote_v4::HEADER_SIZE].to_vec();
            q.extend_from_slice(&body);
            let _ = verify(&q, &testdata(LOG), &Expected::default());
        }

        #[test]
        fn any_expected_json_never_panics(j in proptest::collection::vec(any::<u8>(), 0..0x200)) {
            let _ = Expected::from_measure_json("x", &j);
        }
    }
}
