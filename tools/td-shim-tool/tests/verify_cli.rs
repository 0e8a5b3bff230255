//! `td-shim-tool verify` on the real quote and CC event log of go-tdx-guest
//! (testdata/eventlogs/gotdx-*): verdicts, messages, JSON and exit status.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(name)
}

fn tool<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_td-shim-tool"))
        .args(args)
        .output()
        .expect("run td-shim-tool")
}

fn arg(path: &Path) -> String {
    path.to_str().expect("utf-8 path").to_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn quote() -> String {
    arg(&testdata("eventlogs/gotdx-cos-113-tdx-quote.dat"))
}

fn log() -> String {
    arg(&testdata("eventlogs/gotdx-ccel_data.dat"))
}

/// A file in a fresh temporary directory (kept until the test ends).
fn temp_file(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("write temp file");
    arg(&path)
}

// The quote's registers (go-tdx-guest, COS 113 on TDX); the replay of the log gives RTMR0-2.
const MRTD: &str = "dae67181d3d65e073ad8f95b7907d5e927bfe9761c9ff3e9b89734a45d8954dba41394c7717cb2735396c1d04231f94a";
const RTMR0: &str = "3fa2f61f395b7f5feefb4ec2df61297f109ad8abcd6410c1b7df60f21f37b19297fc35e544039c7e1edece752afd17f6";
const RTMR1: &str = "f62dbc072bd5d3f3438b7b35c39a727f5aea2ffc2473f43723953f530daf62504f0a7944aa62c41a86e8a878c2b122c1";
const RTMR2: &str = "4969684dc87381fc3b3134176c8d8806eaf0a901859f5f70cfae8d17714b46c10a8de219048c9fc09f11f381a6fbe7c1";
const ZERO: &str = "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";

/// The quote's own values as expected-value flags.
fn own_values() -> Vec<String> {
    [
        "--mrtd", MRTD, "--rtmr0", RTMR0, "--rtmr1", RTMR1, "--rtmr2", RTMR2, "--rtmr3", ZERO,
    ]
    .map(str::to_owned)
    .to_vec()
}

fn verify(extra: &[String]) -> Output {
    let mut args = vec!["verify".to_owned(), "--quote".into(), quote()];
    args.extend(["--log".to_owned(), log()]);
    args.extend_from_slice(extra);
    tool(&args)
}

#[test]
fn the_real_quote_and_log_with_their_own_values_pass() {
    let out = verify(&own_values());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for (i, value) in [RTMR0, RTMR1, RTMR2].iter().enumerate() {
        assert!(
            text.contains(&format!("  RTMR{i} {value}  matches the quote")),
            "{text}"
        );
    }
    assert!(text.contains(&format!("  MRTD  {MRTD}  matches the quote")));
    assert!(text.contains("NOT verified"), "{text}");
    assert!(text.ends_with("verdict: ok\n"), "{text}");
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}

#[test]
fn without_expected_values_only_the_replay_is_checked() {
    let out = verify(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("expected values: none given"));
}

#[test]
fn a_flipped_byte_in_the_log_names_the_register() {
    // Find an RTMR1 event with the tool's own dump, and flip a byte of its digest.
    let dump = tool(&["eventlog", "dump", &log(), "--json"]);
    assert_eq!(dump.status.code(), Some(0), "{}", stderr(&dump));
    let dump: serde_json::Value = serde_json::from_slice(&dump.stdout).expect("JSON");
    let event = dump["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["register"] == "RTMR1")
        .expect("an RTMR1 event");
    let offset = event["offset"].as_u64().expect("offset") as usize;
    let mut bytes = std::fs::read(log()).expect("read log");
    // The SHA-384 digest follows mr_index, event_type, digest count and algorithm ID.
    let digest = hex::decode(event["digest"].as_str().expect("digest")).expect("hex");
    assert_eq!(&bytes[offset + 14..offset + 62], digest.as_slice());
    bytes[offset + 14] ^= 0x01;
    let dir = tempfile::tempdir().expect("temp dir");
    let flipped = temp_file(&dir, "flipped.dat", &bytes);

    let out = tool(&[
        "verify",
        "--quote",
        &quote(),
        "--log",
        &flipped,
        "--mrtd",
        MRTD,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("error: RTMR1: the event log's replay differs from the quote's RTMR1"),
        "{err}"
    );
    let text = stdout(&out);
    assert!(text.contains("RTMR1 "), "{text}");
    assert!(text.contains("DIFFERS from the quote"), "{text}");
    assert!(text.contains("first difference: RTMR1"), "{text}");
    // The event whose digest changed is listed among those extending RTMR1.
    let index = event["index"].as_u64().expect("index");
    let flipped_digest = hex::encode(&bytes[offset + 14..offset + 62]);
    assert!(
        text.lines().any(
            |l| l.trim_start().starts_with(&format!("{index} ")) && l.contains(&flipped_digest)
        ),
        "{text}"
    );
    assert!(text.ends_with("verdict: mismatch\n"), "{text}");
}

#[test]
fn a_wrong_expected_mrtd_is_named() {
    let mut values = own_values();
    values[1] = "ab".repeat(48);
    let out = verify(&values);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("error: MRTD: the quote's MRTD differs from the expected value"),
        "{err}"
    );
    assert!(!err.contains("more mismatch"), "{err}");
    assert!(stdout(&out).contains(&format!("DIFFERS: the quote has {MRTD}")));
}

#[test]
fn refused_quotes_exit_1_without_a_panic() {
    let real = std::fs::read(quote()).expect("read quote");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut v5 = real.clone();
    v5[0] = 5;
    let mut sgx = real.clone();
    sgx[4] = 0;
    let cases = [
        (temp_file(&dir, "short", &real[..0x200]), "too short"),
        (
            temp_file(&dir, "cut", &real[..2000]),
            "the quote is truncated",
        ),
        (temp_file(&dir, "empty", &[]), "0 bytes, too short"),
        (temp_file(&dir, "v5", &v5), "version 5"),
        (temp_file(&dir, "sgx", &sgx), "not TDX"),
        ("/dev/zero".to_owned(), "larger than"),
    ];
    for (path, message) in cases {
        let out = tool(&["verify", "--quote", &path, "--log", &log()]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{path}: {err}");
        assert!(err.contains(message), "{path}: {err}");
        assert!(!err.contains("panicked"), "{path}: {err}");
        assert!(out.stdout.is_empty(), "{path}");
    }
    // A log that is not a log.
    let out = tool(&["verify", "--quote", &quote(), "--log", "/dev/null"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("event log"), "{}", stderr(&out));
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = temp_file(&dir, "m.json", format!(r#"{{"mrtd":"{MRTD}"}}"#).as_bytes());
    for extra in [
        vec!["--mrtd".to_owned(), "abcd".into()],
        vec!["--rtmr1".to_owned(), "zz".repeat(48)],
        vec!["--expected".to_owned(), json, "--mrtd".into(), MRTD.into()],
    ] {
        let out = verify(&extra);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {}", stderr(&out));
    }
    let out = tool(&["verify", "--quote", &quote()]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn help_says_the_signature_is_not_verified() {
    let out = tool(&["verify", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = stdout(&out);
    assert!(
        help.contains("certificate chain are NOT verified"),
        "{help}"
    );
    assert!(help.contains("Intel's collateral"), "{help}");
}

/// The JSON `measure --platform tdx --image OVMF.fd --json` prints, with the quote's values
/// put in as `measure --memory --vcpus` would print them.
fn measure_json_with(mrtd: &str, rtmrs: Option<[&str; 4]>) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("temp dir");
    let gz = std::fs::read(testdata("tdx/OVMF.fd.gz")).expect("read OVMF.fd.gz");
    let mut ovmf = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(gz.as_slice()), &mut ovmf)
        .expect("gunzip OVMF");
    let image = temp_file(&dir, "OVMF.fd", &ovmf);
    let out = tool(&["measure", "--platform", "tdx", "--image", &image, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(v["mrtd"].is_string() && v["tdvf_sections"].is_array());
    v["mrtd"] = mrtd.into();
    if let Some(rtmrs) = rtmrs {
        for (i, r) in rtmrs.iter().enumerate() {
            v[format!("rtmr{i}")] = (*r).into();
        }
        v["events"] = serde_json::json!([]);
        v["launch_params"] = "".into();
    }
    serde_json::to_vec_pretty(&v).expect("JSON")
}

#[test]
fn expected_values_from_measure_json() {
    let dir = tempfile::tempdir().expect("temp dir");
    // MRTD only, as `measure --platform tdx` prints without --memory and --vcpus.
    let only = temp_file(&dir, "mrtd.json", &measure_json_with(MRTD, None));
    let out = verify(&["--expected".to_owned(), only.clone()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("RTMR0 not given"));

    let full = temp_file(
        &dir,
        "full.json",
        &measure_json_with(MRTD, Some([RTMR0, RTMR1, RTMR2, ZERO])),
    );
    let out = verify(&["--expected".to_owned(), full, "--json".into()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["expected"]["compared"].as_array().map(Vec::len), Some(5));
    assert_eq!(v["verdict"], "ok");

    // The real OVMF's MRTD is not the quote's.
    let ovmf = temp_file(
        &dir,
        "ovmf.json",
        &measure_json_with(
            "4c7206f0f483c524f12c366c711e9049030a8d47c471ee5aa9c4999a08de4057fb887fed0744d5631a212967fb231c47",
            None,
        ),
    );
    let out = verify(&["--expected".to_owned(), ovmf]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("error: MRTD: "), "{}", stderr(&out));

    // Not what `measure --platform tdx` prints: refused, exit 1.
    for (name, bytes) in [
        ("plain.json", format!(r#"{{"rtmr0":"{RTMR0}"}}"#)),
        (
            "partial.json",
            format!(r#"{{"mrtd":"{MRTD}","rtmr0":"{RTMR0}"}}"#),
        ),
        ("short.json", r#"{"mrtd":"abcd"}"#.to_owned()),
        ("text.json", "not json".to_owned()),
    ] {
        let path = temp_file(&dir, name, bytes.as_bytes());
        let out = verify(&["--expected".to_owned(), path]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        assert!(stderr(&out).contains(name), "{name}: {}", stderr(&out));
    }
}

#[test]
fn json_verdict_shape() {
    let out = verify(&[own_values(), vec!["--json".to_owned()]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let q = &v["quote"];
    assert_eq!(q["version"], 4);
    assert_eq!(q["tee_type"], 0x81);
    assert_eq!(q["mrtd"], MRTD);
    assert_eq!(q["rtmrs"], serde_json::json!([RTMR0, RTMR1, RTMR2, ZERO]));
    assert_eq!(q["report_data"], "00".repeat(64));
    assert_eq!(q["td_attributes"], "0000001000000000");
    assert_eq!(q["debug"], false);
    let r = &v["replay"];
    assert_eq!(r["rtmrs"], serde_json::json!([RTMR0, RTMR1, RTMR2, ZERO]));
    assert_eq!(r["matches_quote"], true);
    assert!(r["first_mismatch"].is_null());
    let e = &v["expected"];
    assert_eq!(e["mrtd"], MRTD);
    assert_eq!(e["mismatches"], serde_json::json!([]));
    assert_eq!(v["signature_verified"], false);
    assert_eq!(v["warnings"], serde_json::json!([]));
    assert_eq!(v["verdict"], "ok");

    // A mismatch: verdict and the register named, still valid JSON on standard output.
    let mut values = own_values();
    values[5] = ZERO.to_owned(); // --rtmr1
    let out = verify(&[values, vec!["--json".to_owned()]].concat());
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["verdict"], "mismatch");
    assert_eq!(v["expected"]["mismatches"][0]["register"], "RTMR1");
    assert_eq!(v["expected"]["mismatches"][0]["quote"], RTMR1);
    assert!(stderr(&out).contains("error: RTMR1: "), "{}", stderr(&out));
}

#[test]
fn a_debug_td_is_a_warning() {
    let mut bytes = std::fs::read(quote()).expect("read quote");
    bytes[0xA8] |= 1; // TD_ATTRIBUTES bit 0
    let dir = tempfile::tempdir().expect("temp dir");
    let debug = temp_file(&dir, "debug.dat", &bytes);
    let out = tool(&["verify", "--quote", &debug, "--log", &log(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["quote"]["debug"], true);
    assert!(v["warnings"][0]
        .as_str()
        .is_some_and(|w| w.contains("debug TD")));
    let out = tool(&["verify", "--quote", &debug, "--log", &log()]);
    assert!(stdout(&out).contains("warning: the quote is from a debug TD"));
}
