//! `td-shim-tool verify --platform snp` on a real SEV-SNP attestation report (virtee/sev's Milan
//! report, testdata/sev-snp/virtee-report_milan.hex): verdicts, the first mismatch named, JSON,
//! exit status, usage errors, and the --expected JSON of `measure --platform snp --json`.

mod common;

use common::{arg, ok, root, tool};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

// Read by hand from the report's bytes (testdata/README.md).
const MEASUREMENT: &str = "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f";
const REPORT_DATA: &str = "d447b55d197491bfe15cf298f9de9986b7a7c4be2468b4f6e2d53b71d7c645810b0f2cdfca0040433be063fc1a8293f0f3f8dae7b79fecb3d1cd82bd6a93ebfd";

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The report's bytes, decoded from the hex file, in a temporary directory.
fn report_file() -> (tempfile::TempDir, PathBuf, Vec<u8>) {
    let text = std::fs::read_to_string(root().join("testdata/sev-snp/virtee-report_milan.hex"))
        .expect("report hex");
    let bytes = hex::decode(text.trim()).expect("hex");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("report.bin");
    std::fs::write(&path, &bytes).expect("write report");
    (dir, path, bytes)
}

fn verify(report: &Path, extra: &[&str]) -> Output {
    let report = arg(report);
    let mut args = vec!["verify", "--platform", "snp", "--report", &report];
    args.extend_from_slice(extra);
    tool(&args)
}

#[test]
fn the_real_report_with_its_own_values_passes() {
    let (_dir, report, _) = report_file();
    let out = verify(
        &report,
        &[
            "--measurement",
            MEASUREMENT,
            "--nonce",
            REPORT_DATA,
            "--guest-policy",
            "0x30000",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for line in [
        "report: SEV-SNP attestation report v2, 1184 bytes, VMPL 0, signing key vcek \
         (signature, VCEK and AMD certificate chain NOT verified)",
        &format!("  MEASUREMENT   {MEASUREMENT}"),
        &format!("  MEASUREMENT {MEASUREMENT}  matches the report"),
        "  POLICY      0x30000  matches the report",
        "verdict: ok",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} missing:\n{text}");
    }
    assert!(text.contains("warning: report version 2"), "{text}");
    // Without expected values the report is only read.
    let out = verify(&report, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("expected values: none given"));
}

#[test]
fn each_mismatch_is_named_and_exits_1() {
    let (_dir, report, _) = report_file();
    let other = "00".repeat(48);
    let out = verify(&report, &["--measurement", &other]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "td-shim-tool: error: MEASUREMENT: the report's launch digest differs from the \
         expected one (from command line)\n"
    );
    assert!(stdout(&out).contains(&format!("DIFFERS: the report has {MEASUREMENT}")));
    let out = verify(&report, &["--nonce", "00112233"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("REPORT_DATA: the report was not made for this nonce"),
        "{}",
        stderr(&out)
    );
    let out = verify(&report, &["--guest-policy", "0x70000"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(
            "POLICY: the report's guest policy 0x30000 differs from \
             --guest-policy 0x70000"
        ),
        "{}",
        stderr(&out)
    );
    // Several: the first in MEASUREMENT, REPORT_DATA, POLICY order, and a count.
    let out = verify(
        &report,
        &[
            "--guest-policy",
            "196608",
            "--nonce",
            "ff",
            "--measurement",
            &other,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("error: MEASUREMENT: "), "{err}");
    assert!(err.contains("(and 1 more mismatch)"), "{err}");
}

#[test]
fn expected_values_from_measure_json() {
    let (dir, report, _) = report_file();
    let fixture = arg(&root().join("testdata/sev-snp/ovmf_AmdSev_suffix.bin"));
    let json = ok(&[
        "measure",
        "--platform",
        "snp",
        "--image",
        &fixture,
        "--vcpus",
        "1",
        "--vcpu-type",
        "EPYC-v4",
        "--json",
    ]);
    let measured = dir.path().join("measured.json");
    std::fs::write(&measured, &json).expect("write");
    // The fixture's launch digest is not the real report's: named, exit 1.
    let out = verify(&report, &["--expected", &arg(&measured)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!(
            "MEASUREMENT: the report's launch digest differs from the expected one (from {})",
            measured.display()
        )),
        "{}",
        stderr(&out)
    );
    // The same JSON with the report's digest in it passes.
    let mut value: Value = serde_json::from_str(&json).expect("JSON");
    value["launch_digest"] = MEASUREMENT.into();
    let matching = dir.path().join("matching.json");
    std::fs::write(&matching, value.to_string()).expect("write");
    let out = verify(
        &report,
        &["--expected", &arg(&matching), "--nonce", REPORT_DATA],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Another mode's digest, or TDX's JSON, is refused (exit 1, the rule named).
    let seves = ok(&[
        "measure",
        "--platform",
        "snp",
        "--mode",
        "seves",
        "--image",
        &fixture,
        "--vcpus",
        "1",
        "--vcpu-type",
        "EPYC-v4",
        "--json",
    ]);
    let seves_path = dir.path().join("seves.json");
    std::fs::write(&seves_path, seves).expect("write");
    let out = verify(&report, &["--expected", &arg(&seves_path)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("only a --mode snp digest"),
        "{}",
        stderr(&out)
    );
    let tdx = dir.path().join("tdx.json");
    std::fs::write(&tdx, format!(r#"{{"mrtd":"{MEASUREMENT}"}}"#)).expect("write");
    let out = verify(&report, &["--expected", &arg(&tdx)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("measure --platform tdx"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn json_verdict_shape() {
    let (_dir, report, _) = report_file();
    let out = verify(&report, &["--measurement", MEASUREMENT, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["platform"], "snp");
    assert_eq!(v["verdict"], "ok");
    assert_eq!(v["signature_verified"], false);
    assert_eq!(v["report"]["version"], 2);
    assert_eq!(v["report"]["measurement"], MEASUREMENT);
    assert_eq!(v["report"]["report_data"], REPORT_DATA);
    assert_eq!(v["report"]["policy"]["value"], "0x30000");
    assert_eq!(v["report"]["policy"]["smt_allowed"], true);
    assert_eq!(v["report"]["policy"]["debug_allowed"], false);
    assert_eq!(v["report"]["reported_tcb"]["microcode"], 0x73);
    assert_eq!(v["report"]["chip_id"].as_str().map(str::len), Some(128));
    assert_eq!(v["expected"]["source"], "command line");
    assert_eq!(
        v["expected"]["compared"],
        serde_json::json!(["MEASUREMENT"])
    );
    assert_eq!(v["expected"]["mismatches"], serde_json::json!([]));
    // A mismatch in JSON: still printed, then exit 1.
    let out = verify(&report, &["--guest-policy", "0", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["verdict"], "mismatch");
    assert_eq!(v["expected"]["mismatches"][0]["field"], "POLICY");
    assert_eq!(v["expected"]["mismatches"][0]["report"], "0x30000");
}

#[test]
fn refused_reports_exit_1_without_a_panic() {
    let (dir, _, bytes) = report_file();
    for (name, content, why) in [
        (
            "short",
            bytes[..1000].to_vec(),
            "report: 1000 bytes, not the 1184 bytes",
        ),
        ("empty", vec![], "report: 0 bytes"),
        ("long", [bytes.as_slice(), &[0]].concat(), "trailing bytes"),
        (
            "v7",
            [&[7, 0, 0, 0][..], &bytes[4..]].concat(),
            "attestation report version 7",
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, content).expect("write");
        let out = verify(&path, &[]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        assert!(stderr(&out).contains(why), "{name}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{name}");
    }
    let out = verify(&dir.path().join("missing"), &[]);
    assert_eq!(out.status.code(), Some(1));
    // A file far larger than a report is not read whole.
    let big = dir.path().join("big");
    std::fs::write(&big, vec![0u8; 128 << 10]).expect("write");
    let out = verify(&big, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("SEV-SNP attestation report"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn usage_errors_exit_2() {
    let (dir, report, _) = report_file();
    let report = arg(&report);
    let json = dir.path().join("m.json");
    std::fs::write(&json, "{}").expect("write");
    let json = arg(&json);
    let quote = arg(&root().join("testdata/eventlogs/gotdx-cos-113-tdx-quote.dat"));
    for args in [
        // SNP without a report, or with TDX inputs.
        vec!["verify", "--platform", "snp"],
        vec![
            "verify",
            "--platform",
            "snp",
            "--report",
            &report,
            "--quote",
            &quote,
        ],
        vec![
            "verify",
            "--platform",
            "snp",
            "--report",
            &report,
            "--mrtd",
            MEASUREMENT,
        ],
        // SNP options without --platform snp.
        vec!["verify", "--report", &report],
        vec![
            "verify", "--quote", &quote, "--log", &quote, "--nonce", "00",
        ],
        // Bad values, and two sources of the launch digest.
        vec![
            "verify",
            "--platform",
            "snp",
            "--report",
            &report,
            "--nonce",
            "xyz",
        ],
        vec![
            "verify",
            "--platform",
            "snp",
            "--report",
            &report,
            "--nonce",
            "",
        ],
        vec![
            "verify",
            "--platform",
            "snp",
            "--report",
            &report,
            "--guest-policy",
            "q",
        ],
        vec![
            "verify",
            "--platform",
            "snp",
            "--report",
            &report,
            "--measurement",
            "ab",
        ],
        vec![
            "verify",
            "--platform",
            "snp",
            "--report",
            &report,
            "--expected",
            &json,
            "--measurement",
            MEASUREMENT,
        ],
        vec!["verify", "--platform", "sev", "--report", &report],
    ] {
        let out = tool(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn help_says_the_signature_is_not_verified() {
    let out = tool(&["verify", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = stdout(&out);
    for needle in [
        "--platform snp",
        "VCEK",
        "NOT verified",
        "--nonce",
        "--guest-policy",
        "--measurement",
    ] {
        assert!(help.contains(needle), "{needle}: {help}");
    }
}
