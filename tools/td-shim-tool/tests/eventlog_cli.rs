//! `td-shim-tool eventlog` on the real logs of testdata/eventlogs: output, JSON and exit status.

use std::path::PathBuf;
use std::process::{Command, Output};

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata/eventlogs")
        .join(name)
}

fn tool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_td-shim-tool"))
        .args(args)
        .output()
        .expect("run td-shim-tool")
}

fn arg(name: &str) -> String {
    testdata(name).to_str().expect("utf-8 path").to_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const RTMR0: &str = "3fa2f61f395b7f5feefb4ec2df61297f109ad8abcd6410c1b7df60f21f37b19297fc35e544039c7e1edece752afd17f6";
const RTMR1: &str = "f62dbc072bd5d3f3438b7b35c39a727f5aea2ffc2473f43723953f530daf62504f0a7944aa62c41a86e8a878c2b122c1";
const RTMR2: &str = "4969684dc87381fc3b3134176c8d8806eaf0a901859f5f70cfae8d17714b46c10a8de219048c9fc09f11f381a6fbe7c1";

#[test]
fn replay_matches_the_quote() {
    let out = tool(&[
        "eventlog",
        "replay",
        &arg("gotdx-ccel_data.dat"),
        "--quote",
        &arg("gotdx-cos-113-tdx-quote.dat"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for (i, value) in [RTMR0, RTMR1, RTMR2].iter().enumerate() {
        assert!(
            text.contains(&format!("  RTMR{i} {value}  matches the log")),
            "{text}"
        );
    }
    assert!(text.contains("RTMR3 000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000  not compared"));
}

#[test]
fn replay_as_json() {
    let out = tool(&[
        "eventlog",
        "replay",
        &arg("gotdx-ccel_data.dat"),
        "--quote",
        &arg("gotdx-cos-113-tdx-quote.dat"),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["events"], 43);
    assert_eq!(v["rtmrs"][0], RTMR0);
    assert_eq!(v["rtmrs"][1], RTMR1);
    assert_eq!(v["rtmrs"][2], RTMR2);
    assert_eq!(v["extended"], serde_json::json!([true, true, true, false]));
    assert_eq!(v["quote"]["registers"][2]["quote"], RTMR2);
    assert_eq!(v["quote"]["registers"][2]["matches"], true);
    assert_eq!(v["quote"]["registers"][3]["compared"], false);
}

#[test]
fn replay_without_a_quote() {
    let out = tool(&["eventlog", "replay", &arg("trustee-CCEL_data")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("replayed 5 events"));
    assert!(text.contains("RTMR0 2dc712306a963eadb894ad47dbaa17df44814151555aee11cbb843becca88950ffd079664902e6f22c66f7c8213543f4"));
    assert!(text.contains("RTMR1 0fa3be56af61208bbd179dc7b124988eb929319154663c539d6f46445ecac2fec287075047ff7bd1922829fec28cd3cf"));
}

#[test]
fn replay_names_the_register_that_differs() {
    // Flip one bit of the digest of event 16, the separator in RTMR1 (offset 0x250c; the
    // digest starts 14 bytes in).
    let mut log = std::fs::read(testdata("gotdx-ccel_data.dat")).expect("read log");
    log[0x250c + 14] ^= 1;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tampered.dat");
    std::fs::write(&path, &log).expect("write log");
    let out = tool(&[
        "eventlog",
        "replay",
        path.to_str().expect("utf-8 path"),
        "--quote",
        &arg("gotdx-cos-113-tdx-quote.dat"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("RTMR1 differs: the log's replay does not match the quote"),
        "{err}"
    );
    assert!(!err.contains("RTMR0") && !err.contains("RTMR2"), "{err}");
    assert!(stdout(&out).contains("DIFFERS from the log"));
}

#[test]
fn dump_lists_every_event() {
    let out = tool(&["eventlog", "dump", &arg("trustee-CCEL_data_grub")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("37 events; the log ends at offset 0x3b1a (0xff padding)"));
    assert!(text.contains("EV_EFI_VARIABLE_AUTHORITY"));
    assert!(text.contains("tag 0x8f3b22ec: Linux initrd"));

    let out = tool(&["eventlog", "dump", &arg("gotdx-ccel_data.dat"), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let events = v["events"].as_array().expect("events");
    assert_eq!(events.len(), 43);
    assert_eq!(v["spec_id"]["algorithms"][0]["id"], 12);
    assert_eq!(v["spec_id"]["algorithms"][0]["digest_size"], 48);
    assert_eq!(events[7]["type_name"], "EV_SEPARATOR");
    assert_eq!(events[7]["register"], "RTMR0");
    assert_eq!(events[7]["offset"], 0x2181);
    assert_eq!(
        events[7]["digest"],
        "394341b7182cd227c5c6b07ef8000cdfd86136c4292b8e576573ad7ed9ae41019f5818b4b971c9effc60e1ad9f1289f0"
    );
    assert_eq!(events[40]["data_length"], 743);
}

#[test]
fn bad_input_is_refused_with_status_1() {
    // The quote is not an event log.
    let out = tool(&["eventlog", "dump", &arg("gotdx-cos-113-tdx-quote.dat")]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("is not a valid event log"), "{err}");
    assert!(err.contains("not EV_NO_ACTION"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // The log is not a quote.
    let out = tool(&[
        "eventlog",
        "replay",
        &arg("gotdx-ccel_data.dat"),
        "--quote",
        &arg("gotdx-nonce.dat"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("too short for a TDX quote v4"));
    // A missing file.
    let out = tool(&["eventlog", "replay", "/nonexistent/log"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot read /nonexistent/log"));
}

#[test]
fn usage_errors_are_status_2() {
    assert_eq!(tool(&["eventlog"]).status.code(), Some(2));
    assert_eq!(tool(&["eventlog", "frobnicate"]).status.code(), Some(2));
    assert_eq!(
        tool(&["eventlog", "replay", "a", "--quote"]).status.code(),
        Some(2)
    );
}
