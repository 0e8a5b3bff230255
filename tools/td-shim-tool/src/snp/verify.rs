//! `td-shim-tool verify --platform snp`: check an SEV-SNP attestation report against expected
//! values.
//!
//! The report is read with [`super::report::parse`] (1184 bytes, version 2 to 5). Then, in this
//! order, each value given is compared and the first that differs is named:
//!
//! 1. MEASUREMENT against the expected launch digest: the `launch_digest` of the JSON that
//!    `td-shim-tool measure --platform snp --json` prints ([`SnpExpected::from_measure_json`]),
//!    or `--measurement HEX`;
//! 2. REPORT_DATA against `--nonce HEX` (1 to 64 bytes, zero-padded on the right to 64, as the
//!    guest agent pads the nonce it asks for and as Trustee's verifier pads its own);
//! 3. POLICY against `--guest-policy` (the 64-bit guest policy the VMM launched with; QEMU's
//!    default is 0x30000).
//!
//! **Not checked**: the report's signature, the VCEK (or VLEK) that made it, AMD's certificate
//! chain (ARK, ASK), and whether the platform's TCB is current. Without them anyone can write a
//! report that passes this command; that is the verifier's job (Trustee's SNP verifier fetches
//! the VCEK from AMD's KDS and checks the chain). The report says `signature_verified: false`.
//!
//! Warnings, which do not fail the check: a policy that allows debugging (the host can read and
//! change the guest's memory) or a migration agent, a report requested above VMPL 0 (Trustee
//! refuses those), a report not signed by the VCEK or VLEK, a signature algorithm other than
//! ECDSA P-384, a version 2 report (Trustee's current verifier reads version 3 and later).

use super::report::{self, AttestationReport, GuestPolicy, TcbVersion, REPORT_DATA_SIZE};
use crate::verify::{parse_digest, Digest, VerifyError};
use serde::Serialize;
use std::fmt::Write as _;

/// What the report is expected to hold. `None`: not given, not compared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnpExpected {
    /// Where the launch digest comes from (the file, or "command line").
    pub source: Option<String>,
    /// The launch digest (MEASUREMENT).
    pub measurement: Option<Digest>,
    /// REPORT_DATA: the nonce, zero-padded to 64 bytes.
    pub report_data: Option<[u8; REPORT_DATA_SIZE]>,
    /// POLICY.
    pub guest_policy: Option<u64>,
}

/// A nonce in hex: 1 to 64 bytes (2 to 128 hex digits, either case), zero-padded on the right
/// to the 64 bytes of REPORT_DATA.
pub fn parse_nonce(s: &str) -> Result<[u8; REPORT_DATA_SIZE], String> {
    let bytes = hex::decode(s.trim()).map_err(|e| format!("not hex: {e}"))?;
    if bytes.is_empty() || bytes.len() > REPORT_DATA_SIZE {
        return Err(format!(
            "{} bytes: a nonce is 1 to {REPORT_DATA_SIZE} bytes (REPORT_DATA)",
            bytes.len()
        ));
    }
    let mut out = [0; REPORT_DATA_SIZE];
    out[..bytes.len()].copy_from_slice(&bytes);
    Ok(out)
}

impl SnpExpected {
    /// Reads the JSON object `td-shim-tool measure --platform snp --json` prints: its
    /// `launch_digest` (96 hex digits), from `"mode": "snp"` (an `snp:ovmf-hash`, `seves` or
    /// `sev` digest is no SNP launch measurement, and output of `measure --platform tdx` has no
    /// `launch_digest`). Its other keys are not read. `path` names the file in errors.
    pub fn from_measure_json(path: &str, json: &[u8]) -> Result<Self, VerifyError> {
        let shape = |reason: String| VerifyError::SnpExpectedShape {
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
        match object.get("platform") {
            None => {}
            Some(serde_json::Value::String(p)) if p == "snp" => {}
            Some(other) => return Err(shape(format!("\"platform\" is {other}, not \"snp\""))),
        }
        match object.get("mode") {
            None => {}
            Some(serde_json::Value::String(m)) if m == "snp" => {}
            Some(other) => {
                return Err(shape(format!(
                    "\"mode\" is {other}: only a --mode snp digest is an SNP launch measurement"
                )))
            }
        }
        let digest = match object.get("launch_digest") {
            None if object.contains_key("mrtd") => {
                return Err(shape(
                    "no \"launch_digest\" (this is the output of `measure --platform tdx`)".into(),
                ))
            }
            None => return Err(shape("no \"launch_digest\"".into())),
            Some(serde_json::Value::String(s)) => {
                parse_digest(s).map_err(|e| shape(format!("\"launch_digest\": {e}")))?
            }
            Some(_) => return Err(shape("\"launch_digest\" is not a string".into())),
        };
        Ok(Self {
            source: Some(path.to_owned()),
            measurement: Some(digest),
            report_data: None,
            guest_policy: None,
        })
    }

    /// Whether any value is given.
    pub fn is_empty(&self) -> bool {
        self.measurement.is_none() && self.report_data.is_none() && self.guest_policy.is_none()
    }
}

/// A TCB_VERSION in a report.
#[derive(Debug, Serialize)]
pub struct TcbSummary {
    /// The 8 bytes as a little-endian u64, hex.
    pub raw: String,
    /// FMC (Turin and later only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fmc: Option<u8>,
    /// Boot loader SVN.
    pub bootloader: u8,
    /// TEE (PSP OS) SVN.
    pub tee: u8,
    /// SNP firmware SVN.
    pub snp: u8,
    /// Microcode patch level.
    pub microcode: u8,
}

impl From<TcbVersion> for TcbSummary {
    fn from(t: TcbVersion) -> Self {
        Self {
            raw: format!("{:#018x}", t.raw),
            fmc: t.fmc,
            bootloader: t.bootloader,
            tee: t.tee,
            snp: t.snp,
            microcode: t.microcode,
        }
    }
}

/// The guest policy's fields, named as Trustee's SNP verifier names them.
#[derive(Debug, Serialize)]
pub struct PolicySummary {
    /// The 64 bits, hex.
    pub value: String,
    /// Bits 15:8.
    pub abi_major: u8,
    /// Bits 7:0.
    pub abi_minor: u8,
    /// Bit 16.
    pub smt_allowed: bool,
    /// Bit 18.
    pub migrate_ma_allowed: bool,
    /// Bit 19.
    pub debug_allowed: bool,
    /// Bit 20.
    pub single_socket_required: bool,
}

impl From<GuestPolicy> for PolicySummary {
    fn from(p: GuestPolicy) -> Self {
        Self {
            value: format!("{:#x}", p.0),
            abi_major: p.abi_major(),
            abi_minor: p.abi_minor(),
            smt_allowed: p.smt_allowed(),
            migrate_ma_allowed: p.migrate_ma_allowed(),
            debug_allowed: p.debug_allowed(),
            single_socket_required: p.single_socket_required(),
        }
    }
}

/// The report's fields, as `verify --platform snp` shows them (byte strings in lower-case hex).
#[derive(Debug, Serialize)]
pub struct ReportSummary {
    /// Bytes in the file (1184).
    pub size: usize,
    /// VERSION.
    pub version: u32,
    /// GUEST_SVN.
    pub guest_svn: u32,
    /// POLICY and its fields.
    pub policy: PolicySummary,
    /// VMPL.
    pub vmpl: u32,
    /// SIGNATURE_ALGO (1: ECDSA P-384 with SHA-384).
    pub signature_algo: u32,
    /// SIGNING_KEY: vcek, vlek, none or reserved.
    pub signing_key: &'static str,
    /// AUTHOR_KEY_EN.
    pub author_key_en: bool,
    /// MASK_CHIP_KEY.
    pub mask_chip_key: bool,
    /// MEASUREMENT: the launch digest.
    pub measurement: String,
    /// REPORT_DATA.
    pub report_data: String,
    /// HOST_DATA.
    pub host_data: String,
    /// FAMILY_ID.
    pub family_id: String,
    /// IMAGE_ID.
    pub image_id: String,
    /// ID_KEY_DIGEST.
    pub id_key_digest: String,
    /// AUTHOR_KEY_DIGEST.
    pub author_key_digest: String,
    /// REPORT_ID.
    pub report_id: String,
    /// REPORT_ID_MA.
    pub report_id_ma: String,
    /// CHIP_ID.
    pub chip_id: String,
    /// PLATFORM_INFO, hex.
    pub platform_info: String,
    /// PLATFORM_INFO bit 0.
    pub platform_smt_enabled: bool,
    /// PLATFORM_INFO bit 1.
    pub platform_tsme_enabled: bool,
    /// CURRENT_TCB.
    pub current_tcb: TcbSummary,
    /// REPORTED_TCB (the VCEK's).
    pub reported_tcb: TcbSummary,
    /// COMMITTED_TCB.
    pub committed_tcb: TcbSummary,
    /// LAUNCH_TCB.
    pub launch_tcb: TcbSummary,
    /// The firmware's current version, major.minor.build.
    pub current_version: String,
    /// The committed version.
    pub committed_version: String,
    /// CPUID family, model and stepping, hex (version 3 and later).
    pub cpuid: Option<[String; 3]>,
    /// LAUNCH_MIT_VECTOR, hex (version 5).
    pub launch_mit_vector: Option<String>,
    /// CURRENT_MIT_VECTOR, hex (version 5).
    pub current_mit_vector: Option<String>,
}

impl ReportSummary {
    /// The summary of `r`, a report of `size` bytes.
    pub fn of(r: &AttestationReport, size: usize) -> Self {
        let version = |v: report::FirmwareVersion| format!("{}.{}.{}", v.major, v.minor, v.build);
        Self {
            size,
            version: r.version,
            guest_svn: r.guest_svn,
            policy: r.policy.into(),
            vmpl: r.vmpl,
            signature_algo: r.signature_algo,
            signing_key: r.signing_key.name(),
            author_key_en: r.author_key_en,
            mask_chip_key: r.mask_chip_key,
            measurement: hex::encode(r.measurement),
            report_data: hex::encode(r.report_data),
            host_data: hex::encode(r.host_data),
            family_id: hex::encode(r.family_id),
            image_id: hex::encode(r.image_id),
            id_key_digest: hex::encode(r.id_key_digest),
            author_key_digest: hex::encode(r.author_key_digest),
            report_id: hex::encode(r.report_id),
            report_id_ma: hex::encode(r.report_id_ma),
            chip_id: hex::encode(r.chip_id),
            platform_info: format!("{:#x}", r.platform_info.0),
            platform_smt_enabled: r.platform_info.smt_enabled(),
            platform_tsme_enabled: r.platform_info.tsme_enabled(),
            current_tcb: r.current_tcb.into(),
            reported_tcb: r.reported_tcb.into(),
            committed_tcb: r.committed_tcb.into(),
            launch_tcb: r.launch_tcb.into(),
            current_version: version(r.current_version),
            committed_version: version(r.committed_version),
            cpuid: r.cpuid.map(|c| c.map(|b| format!("{b:#x}"))),
            launch_mit_vector: r.launch_mit_vector.map(|v| format!("{v:#x}")),
            current_mit_vector: r.current_mit_vector.map(|v| format!("{v:#x}")),
        }
    }
}

/// One expected value the report does not hold.
#[derive(Debug, Serialize)]
pub struct SnpMismatch {
    /// "MEASUREMENT", "REPORT_DATA" or "POLICY".
    pub field: &'static str,
    /// The expected value.
    pub expected: String,
    /// The report's.
    pub report: String,
}

/// The expected-values side of the report.
#[derive(Debug, Serialize)]
pub struct SnpExpectedCheck {
    /// Where the launch digest comes from: the file, "command line", or null.
    pub source: Option<String>,
    /// The expected MEASUREMENT, null when not given.
    pub measurement: Option<String>,
    /// The expected REPORT_DATA (the padded nonce), null when not given.
    pub report_data: Option<String>,
    /// The expected POLICY, hex, null when not given.
    pub guest_policy: Option<String>,
    /// The fields compared, in order.
    pub compared: Vec<&'static str>,
    /// The fields that differ, in order.
    pub mismatches: Vec<SnpMismatch>,
}

/// `verify --platform snp`'s report.
#[derive(Debug, Serialize)]
pub struct SnpVerifyReport {
    /// Always "snp".
    pub platform: &'static str,
    /// The report's fields.
    pub report: ReportSummary,
    /// The expected values against the report.
    pub expected: SnpExpectedCheck,
    /// Things that do not fail the check but a verifier should know.
    pub warnings: Vec<String>,
    /// Always false: the signature, VCEK and AMD's chain are not checked here.
    pub signature_verified: bool,
    /// "ok" when every compared value matches, else "mismatch".
    pub verdict: &'static str,
}

/// Checks an attestation report against expected values. A report that does not parse is an
/// error; mismatches are in the result ([`SnpVerifyReport::result`]).
pub fn verify(bytes: &[u8], expected: &SnpExpected) -> Result<SnpVerifyReport, VerifyError> {
    let r = report::parse(bytes)?;
    let mut compared = Vec::new();
    let mut mismatches = Vec::new();
    let mut compare = |field: &'static str, want: Option<String>, got: String| {
        let Some(want) = want else { return };
        compared.push(field);
        if want != got {
            mismatches.push(SnpMismatch {
                field,
                expected: want,
                report: got,
            });
        }
    };
    compare(
        "MEASUREMENT",
        expected.measurement.map(hex::encode),
        hex::encode(r.measurement),
    );
    compare(
        "REPORT_DATA",
        expected.report_data.map(hex::encode),
        hex::encode(r.report_data),
    );
    compare(
        "POLICY",
        expected.guest_policy.map(|p| format!("{p:#x}")),
        format!("{:#x}", r.policy.0),
    );
    let warnings = warnings(&r);
    let ok = mismatches.is_empty();
    Ok(SnpVerifyReport {
        platform: "snp",
        report: ReportSummary::of(&r, bytes.len()),
        expected: SnpExpectedCheck {
            source: expected.source.clone(),
            measurement: expected.measurement.map(hex::encode),
            report_data: expected.report_data.map(hex::encode),
            guest_policy: expected.guest_policy.map(|p| format!("{p:#x}")),
            compared,
            mismatches,
        },
        warnings,
        signature_verified: false,
        verdict: if ok { "ok" } else { "mismatch" },
    })
}

fn warnings(r: &AttestationReport) -> Vec<String> {
    let mut w = Vec::new();
    if r.policy.debug_allowed() {
        w.push(
            "the guest policy allows debugging (POLICY bit 19): the host can read and change \
             the guest's memory, so its measurement proves nothing about what runs in it"
                .to_owned(),
        );
    }
    if r.policy.migrate_ma_allowed() {
        w.push(
            "the guest policy allows a migration agent (POLICY bit 18): Trustee's default \
             policy refuses that configuration"
                .to_owned(),
        );
    }
    if r.vmpl != 0 {
        w.push(format!(
            "the report was requested at VMPL {}: Trustee's SNP verifier accepts VMPL 0 only",
            r.vmpl
        ));
    }
    if !matches!(
        r.signing_key,
        report::SigningKey::Vcek | report::SigningKey::Vlek
    ) {
        w.push(format!(
            "SIGNING_KEY is {}: the report is not signed by a VCEK or VLEK",
            r.signing_key.name()
        ));
    }
    if r.signature_algo != report::SIGNATURE_ALGO_ECDSA_P384_SHA384 {
        w.push(format!(
            "SIGNATURE_ALGO is {}, not 1 (ECDSA P-384 with SHA-384)",
            r.signature_algo
        ));
    }
    if r.version < 3 {
        w.push(format!(
            "report version {}: Trustee's current SNP verifier reads versions 3 to 5 (older \
             SNP firmware)",
            r.version
        ));
    }
    w
}

impl SnpVerifyReport {
    /// Every mismatch as a sentence naming the field, in the order compared.
    pub fn mismatch_messages(&self) -> Vec<String> {
        let source = self.expected.source.as_deref().unwrap_or("command line");
        self.expected
            .mismatches
            .iter()
            .map(|m| match m.field {
                "MEASUREMENT" => format!(
                    "MEASUREMENT: the report's launch digest differs from the expected one \
                     (from {source})"
                ),
                "REPORT_DATA" => {
                    "REPORT_DATA: the report was not made for this nonce (REPORT_DATA differs \
                     from --nonce, zero-padded to 64 bytes)"
                        .to_owned()
                }
                _ => format!(
                    "POLICY: the report's guest policy {} differs from --guest-policy {}",
                    m.report, m.expected
                ),
            })
            .collect()
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
        let r = &self.report;
        let _ = writeln!(
            s,
            "report: SEV-SNP attestation report v{}, {} bytes, VMPL {}, signing key {} \
             (signature, VCEK and AMD certificate chain NOT verified)",
            r.version, r.size, r.vmpl, r.signing_key
        );
        let _ = writeln!(s, "  MEASUREMENT   {}", r.measurement);
        let _ = writeln!(s, "  REPORT_DATA   {}", r.report_data);
        let p = &r.policy;
        let _ = writeln!(
            s,
            "  POLICY        {} (ABI {}.{}, SMT {}, migration agent {}, debug {}, single \
             socket {})",
            p.value,
            p.abi_major,
            p.abi_minor,
            allowed(p.smt_allowed),
            allowed(p.migrate_ma_allowed),
            allowed(p.debug_allowed),
            if p.single_socket_required {
                "required"
            } else {
                "not required"
            }
        );
        let _ = writeln!(s, "  HOST_DATA     {}", r.host_data);
        let t = &r.reported_tcb;
        let _ = writeln!(
            s,
            "  REPORTED_TCB  {} (boot loader {}, TEE {}, SNP {}, microcode {}{})",
            t.raw,
            t.bootloader,
            t.tee,
            t.snp,
            t.microcode,
            t.fmc.map(|f| format!(", FMC {f}")).unwrap_or_default()
        );
        let _ = writeln!(s, "  CHIP_ID       {}", r.chip_id);
        let x = &self.expected;
        if x.compared.is_empty() {
            let _ = writeln!(s, "expected values: none given (the report was only read)");
        } else {
            let _ = writeln!(
                s,
                "expected values{}:",
                x.source
                    .as_deref()
                    .map(|src| format!(" (launch digest from {src})"))
                    .unwrap_or_default()
            );
            for field in &x.compared {
                let want = match *field {
                    "MEASUREMENT" => x.measurement.as_deref(),
                    "REPORT_DATA" => x.report_data.as_deref(),
                    _ => x.guest_policy.as_deref(),
                }
                .unwrap_or("");
                let got = x.mismatches.iter().find(|m| m.field == *field);
                crate::verify::comparison_line(
                    &mut s,
                    field,
                    11,
                    want,
                    "report",
                    got.map(|m| &m.report),
                );
            }
        }
        for w in &self.warnings {
            let _ = writeln!(s, "warning: {w}");
        }
        let _ = writeln!(s, "verdict: {}", self.verdict);
        s
    }
}

fn allowed(yes: bool) -> &'static str {
    if yes {
        "allowed"
    } else {
        "not allowed"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn milan() -> Vec<u8> {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../testdata/sev-snp/virtee-report_milan.hex"),
        )
        .unwrap();
        hex::decode(text.trim()).unwrap()
    }

    const MEASUREMENT: &str = "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f";
    const REPORT_DATA: &str = "d447b55d197491bfe15cf298f9de9986b7a7c4be2468b4f6e2d53b71d7c645810b0f2cdfca0040433be063fc1a8293f0f3f8dae7b79fecb3d1cd82bd6a93ebfd";

    fn own_values() -> SnpExpected {
        SnpExpected {
            source: Some("test".into()),
            measurement: Some(parse_digest(MEASUREMENT).unwrap()),
            report_data: Some(parse_nonce(REPORT_DATA).unwrap()),
            guest_policy: Some(0x30000),
        }
    }

    #[test]
    fn the_real_report_with_its_own_values_passes() {
        let report = verify(&milan(), &own_values()).unwrap();
        assert_eq!(report.verdict, "ok");
        assert!(report.result().is_ok());
        assert_eq!(
            report.expected.compared,
            ["MEASUREMENT", "REPORT_DATA", "POLICY"]
        );
        assert_eq!(report.report.measurement, MEASUREMENT);
        assert_eq!(report.report.policy.value, "0x30000");
        assert_eq!(report.report.reported_tcb.snp, 8);
        assert_eq!(report.report.current_version, "1.52.4");
        assert!(!report.signature_verified);
        // Version 2 is older than what Trustee reads now.
        assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
        assert!(report.warnings[0].contains("version 2"));
        let text = report.to_text();
        assert!(text.contains("NOT verified"), "{text}");
        assert!(text.contains("verdict: ok"), "{text}");
    }

    #[test]
    fn the_first_mismatch_is_named() {
        let bytes = milan();
        let mut expected = own_values();
        expected.guest_policy = Some(0x30000 | GuestPolicy::SINGLE_SOCKET);
        let report = verify(&bytes, &expected).unwrap();
        assert_eq!(report.verdict, "mismatch");
        let err = report.result().unwrap_err().to_string();
        assert_eq!(
            err,
            "POLICY: the report's guest policy 0x30000 differs from --guest-policy 0x130000"
        );
        expected.measurement = Some([0; 48]);
        expected.report_data = Some(parse_nonce("00").unwrap());
        let report = verify(&bytes, &expected).unwrap();
        let err = report.result().unwrap_err().to_string();
        assert!(
            err.starts_with("MEASUREMENT: the report's launch digest differs"),
            "{err}"
        );
        assert!(err.ends_with("(and 2 more mismatches)"), "{err}");
        assert!(report
            .to_text()
            .contains("DIFFERS: the report has 7a1e5c26"));
    }

    #[test]
    fn nonces_are_padded() {
        let n = parse_nonce("00112233").unwrap();
        assert_eq!(n[..4], [0, 0x11, 0x22, 0x33]);
        assert_eq!(n[4..], [0; 60]);
        assert_eq!(parse_nonce(&"AB".repeat(64)).unwrap(), [0xab; 64]);
        for bad in ["", "0", "zz", &"00".repeat(65)] {
            assert!(parse_nonce(bad).is_err(), "{bad}");
        }
        // The real report's nonce, given as its first 48 bytes, is a different nonce.
        let short = parse_nonce(&REPORT_DATA[..96]).unwrap();
        let expected = SnpExpected {
            report_data: Some(short),
            ..SnpExpected::default()
        };
        let report = verify(&milan(), &expected).unwrap();
        assert_eq!(report.expected.mismatches[0].field, "REPORT_DATA");
    }

    #[test]
    fn warnings_for_debug_migration_vmpl_and_key() {
        let mut bytes = milan();
        bytes[report::layout::POLICY + 2] |= 0b1100; // bits 18 and 19
        bytes[report::layout::VMPL] = 2;
        bytes[report::layout::KEY_INFO] = 7 << 2;
        bytes[report::layout::SIGNATURE_ALGO] = 0;
        bytes[0] = 3;
        let report = verify(&bytes, &SnpExpected::default()).unwrap();
        assert_eq!(report.verdict, "ok", "warnings are not mismatches");
        let w = report.warnings.join("\n");
        for needle in [
            "allows debugging",
            "migration agent",
            "VMPL 2",
            "SIGNING_KEY is none",
            "SIGNATURE_ALGO is 0",
        ] {
            assert!(w.contains(needle), "{needle}: {w}");
        }
        assert!(!w.contains("version"), "{w}");
    }

    #[test]
    fn refused_reports_are_errors() {
        let bytes = milan();
        let err = verify(&bytes[..1000], &SnpExpected::default()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("report: 1000 bytes, not the 1184"),
            "{err}"
        );
        let mut v9 = bytes.clone();
        v9[0] = 9;
        let err = verify(&v9, &SnpExpected::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "report: attestation report version 9, but only versions 2 to 5 are read"
        );
    }

    #[test]
    fn expected_json_is_what_measure_prints() {
        let good = format!(
            r#"{{"platform":"snp","mode":"snp","launch_digest":"{MEASUREMENT}","vcpus":1,
               "vcpu_sig":"0x800f12","vmm_type":"qemu","guest_features":"0x1",
               "firmware_gpa":"0xff000000","firmware_size":16777216,"sections":[]}}"#
        );
        let e = SnpExpected::from_measure_json("m.json", good.as_bytes()).unwrap();
        assert_eq!(e.measurement, Some(parse_digest(MEASUREMENT).unwrap()));
        assert_eq!(e.source.as_deref(), Some("m.json"));
        for (bad, why) in [
            ("[]".to_owned(), "not a JSON object"),
            ("{".to_owned(), "not JSON"),
            (
                format!(r#"{{"mrtd":"{MEASUREMENT}"}}"#),
                "measure --platform tdx",
            ),
            (
                format!(
                    r#"{{"platform":"snp","mode":"snp:ovmf-hash","launch_digest":"{MEASUREMENT}"}}"#
                ),
                "only a --mode snp digest",
            ),
            (
                r#"{"platform":"snp","mode":"sev","launch_digest":"ab"}"#.to_owned(),
                "only a --mode snp digest",
            ),
            (
                format!(r#"{{"platform":"tdx","launch_digest":"{MEASUREMENT}"}}"#),
                "not \"snp\"",
            ),
            (r#"{"launch_digest":"abcd"}"#.to_owned(), "2 bytes"),
            (r#"{"launch_digest":5}"#.to_owned(), "not a string"),
            (r#"{}"#.to_owned(), "no \"launch_digest\""),
        ] {
            let err = SnpExpected::from_measure_json("m.json", bad.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    proptest! {
        #[test]
        fn any_report_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..1300),
            version in 0u32..7,
        ) {
            let mut b = bytes;
            if b.len() >= 4 {
                b[..4].copy_from_slice(&version.to_le_bytes());
            }
            if let Ok(report) = verify(&b, &own_values()) {
                let _ = report.to_text();
                let _ = report.result();
            }
        }

        #[test]
        fn any_expected_json_never_panics(j in proptest::collection::vec(any::<u8>(), 0..0x200)) {
            let _ = SnpExpected::from_measure_json("x", &j);
        }
    }
}
