//! `td-shim-tool eventlog` on the real logs of testdata/eventlogs: output, JSON and exit status.

use std::path::PathBuf;
use std::process::{Command, Output};

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/eventlogs")
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
    assert_eq!(tool(&["eventlog", "diff", "a"]).status.code(), Some(2));
    assert_eq!(
        tool(&["eventlog", "diff", "a", "b", "c"]).status.code(),
        Some(2)
    );
    assert_eq!(
        tool(&["eventlog", "diff", "a", "b", "--frob"])
            .status
            .code(),
        Some(2)
    );
}

/// Writes `bytes` to a file in `dir` and returns its path as an argument.
fn file(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("write log");
    path.to_str().expect("utf-8 path").to_owned()
}

#[test]
fn diff_of_a_real_log_with_itself_is_equal() {
    for name in ["gotdx-ccel_data.dat", "trustee-CCEL_data"] {
        let out = tool(&["eventlog", "diff", &arg(name), &arg(name)]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let text = stdout(&out);
        assert!(text.contains("the logs have the same"), "{text}");
        assert!(text.contains("the replayed registers are equal"), "{text}");
        assert!(stderr(&out).is_empty());
    }
}

#[test]
fn diff_names_the_event_whose_digest_was_flipped() {
    let original = std::fs::read(testdata("gotdx-ccel_data.dat")).expect("read log");
    let log = td_shim::eventlog::parse(&original).expect("parse log");
    let dir = tempfile::tempdir().expect("tempdir");
    // The first event (RTMR0), the RTMR1 separator, a grub command (RTMR2), the last event.
    for k in [1usize, 16, 33, 43] {
        let event = &log.events()[k - 1];
        let register = format!("RTMR{}", event.rtmr().expect("a measured event"));
        let mut tampered = original.clone();
        tampered[event.offset() + 14 + 47] ^= 1; // the digest's last byte
        let path = file(&dir, &format!("tampered-{k}.dat"), &tampered);
        let out = tool(&["eventlog", "diff", &arg("gotdx-ccel_data.dat"), &path]);
        assert_eq!(out.status.code(), Some(1), "event {k}");
        let text = stdout(&out);
        assert!(
            text.contains(&format!("first difference: event {k} (digest)")),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "  EXPECTED  event {k} at {:#08x}  {register} ",
                event.offset()
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!("  ACTUAL    event {k} at ")),
            "{text}"
        );
        assert!(text.contains(&format!("sha384 {}", hex::encode(event.digest()))));
        assert!(
            text.contains(&format!("replayed registers that differ: {register}\n")),
            "{text}"
        );
        assert!(
            stderr(&out).contains(&format!(
                "the logs differ at event {k}, which changes {register}"
            )),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn diff_describes_the_input_of_the_event() {
    let original = std::fs::read(testdata("trustee-CCEL_data")).expect("read log");
    let log = td_shim::eventlog::parse(&original).expect("parse log");
    let mut tampered = original.clone();
    tampered[log.events()[3].offset() + 14] ^= 1;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = file(&dir, "payload.dat", &tampered);
    let out = tool(&["eventlog", "diff", &arg("trustee-CCEL_data"), &path]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("RTMR1 EV_EFI_PLATFORM_FIRMWARE_BLOB2 (MR index 2)  28 bytes  td_payload: base 0x901000, length 0x10000000"),
        "{text}"
    );
}

#[test]
fn diff_of_logs_of_different_length() {
    let original = std::fs::read(testdata("gotdx-ccel_data.dat")).expect("read log");
    let log = td_shim::eventlog::parse(&original).expect("parse log");
    // Keep 40 events; the area after them is 0xFF, as the firmware leaves it.
    let mut short = original.clone();
    short[log.events()[40].offset()..].fill(0xFF);
    let dir = tempfile::tempdir().expect("tempdir");
    let short = file(&dir, "short.dat", &short);
    let full = arg("gotdx-ccel_data.dat");

    let out = tool(&["eventlog", "diff", &short, &full]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("EXPECTED: 40 events, ACTUAL: 43 events"),
        "{text}"
    );
    assert!(
        text.contains("first difference: ACTUAL has 3 more events after event 40\n"),
        "{text}"
    );
    assert!(
        text.contains("  ACTUAL    event 41 at 0x0042c3  RTMR2 EV_IPL"),
        "{text}"
    );
    assert!(stderr(&out).contains(
        "the logs differ: ACTUAL has 3 more events after event 40, which changes RTMR1 and RTMR2"
    ));

    let out = tool(&["eventlog", "diff", &full, &short]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("first difference: EXPECTED has 3 more events after event 40"));
}

#[test]
fn diff_as_json() {
    let original = std::fs::read(testdata("gotdx-ccel_data.dat")).expect("read log");
    let log = td_shim::eventlog::parse(&original).expect("parse log");
    let mut tampered = original.clone();
    tampered[log.events()[15].offset() + 14] ^= 1;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = file(&dir, "tampered.dat", &tampered);
    let out = tool(&[
        "eventlog",
        "diff",
        &arg("gotdx-ccel_data.dat"),
        &path,
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["equal"], false);
    assert_eq!(v["expected_events"], 43);
    assert_eq!(v["actual_events"], 43);
    assert_eq!(v["spec_id_differs"], false);
    let d = &v["first_difference"];
    assert_eq!(d["index"], 16);
    assert_eq!(d["fields"], serde_json::json!(["digest"]));
    assert_eq!(d["registers"], serde_json::json!(["RTMR1"]));
    assert!(d["extra"].is_null());
    for side in ["expected", "actual"] {
        let e = &d[side];
        assert_eq!(e["index"], 16);
        assert_eq!(e["offset"], 0x250c);
        assert_eq!(e["mr_index"], 2);
        assert_eq!(e["register"], "RTMR1");
        assert_eq!(e["event_type"], 4);
        assert_eq!(e["type_name"], "EV_SEPARATOR");
        assert_eq!(e["data_length"], 4);
        assert_eq!(e["description"], "separator (0x00000000)");
    }
    assert_eq!(
        d["expected"]["digest"],
        "394341b7182cd227c5c6b07ef8000cdfd86136c4292b8e576573ad7ed9ae41019f5818b4b971c9effc60e1ad9f1289f0"
    );
    assert_eq!(
        d["actual"]["digest"],
        "384341b7182cd227c5c6b07ef8000cdfd86136c4292b8e576573ad7ed9ae41019f5818b4b971c9effc60e1ad9f1289f0"
    );
    assert_eq!(v["differing_registers"], serde_json::json!(["RTMR1"]));
    assert_eq!(v["expected_rtmrs"][1], RTMR1);
    assert_ne!(v["actual_rtmrs"][1], RTMR1);
    assert_eq!(v["actual_rtmrs"][2], RTMR2);

    // Equal logs; a length difference.
    let out = tool(&[
        "eventlog",
        "diff",
        &arg("gotdx-ccel_data.dat"),
        &arg("gotdx-ccel_data.dat"),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["equal"], true);
    assert!(v["first_difference"].is_null());
    assert_eq!(v["differing_registers"], serde_json::json!([]));
    let mut short = original.clone();
    short[log.events()[42].offset()..].fill(0xFF);
    let short = file(&dir, "short.dat", &short);
    let out = tool(&[
        "eventlog",
        "diff",
        &arg("gotdx-ccel_data.dat"),
        &short,
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let d = &v["first_difference"];
    assert_eq!(
        d["extra"],
        serde_json::json!({"log": "EXPECTED", "count": 1, "after": 42})
    );
    assert!(d["actual"].is_null());
    assert_eq!(d["expected"]["index"], 43);
    assert_eq!(d["fields"], serde_json::json!([]));
}

#[test]
fn diff_refuses_unreadable_input_with_status_1() {
    let log = arg("gotdx-ccel_data.dat");
    let out = tool(&["eventlog", "diff", &log, "/nonexistent/log"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot read /nonexistent/log"));
    let quote = arg("gotdx-cos-113-tdx-quote.dat");
    let out = tool(&["eventlog", "diff", &quote, &log]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("(EXPECTED) with")
            && err
                .contains("EXPECTED is not a valid event log: event log: the first event has type"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let out = tool(&["eventlog", "diff", &log, &quote]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("ACTUAL is not a valid event log"));
    assert!(stdout(&out).is_empty());
}
