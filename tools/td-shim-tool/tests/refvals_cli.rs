//! `td-shim-tool refvals` on the real kernel and initrd: the RVPS message's shape, its values
//! against `measure`'s, and the policy evaluated by Trustee's Rego engine.

mod common;

use base64::Engine as _;
use common::{arg, build_linux_image, direct_boot, ok, tool};
use serde_json::{json, Value};
use std::collections::BTreeMap;

fn run(command: &str, args: &[String], extra: &[&str]) -> String {
    let mut all = vec![command.to_owned()];
    all.extend_from_slice(args);
    all.extend(extra.iter().map(|s| (*s).to_owned()));
    ok(&all)
}

/// The provenance a message carries.
fn provenance(message: &Value) -> BTreeMap<String, Vec<String>> {
    let payload = base64::engine::general_purpose::STANDARD
        .decode(message["payload"].as_str().expect("payload is a string"))
        .expect("payload is base64");
    serde_json::from_slice(&payload).expect("payload is a JSON map of arrays of strings")
}

#[test]
fn the_message_carries_measures_values_under_the_documented_ids() {
    let args = direct_boot("console=ttyS0", "512M");
    let message: Value = serde_json::from_str(&run("refvals", &args, &[])).expect("JSON");
    let keys: Vec<_> = message.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["payload", "type", "version"]);
    assert_eq!(message["version"], "0.1.0");
    assert_eq!(message["type"], "sample");

    let values = provenance(&message);
    let ids: Vec<_> = values.keys().map(String::as_str).collect();
    assert_eq!(
        ids,
        [
            "td-shim.cmdline",
            "td-shim.initrd",
            "td-shim.kernel",
            "td-shim.launch_params",
            "td-shim.rtmr0",
            "td-shim.rtmr1",
            "td-shim.rtmr2",
            "td-shim.rtmr3",
        ]
    );
    let measured: Value = serde_json::from_str(&run("measure", &args, &["--json"])).unwrap();
    for i in 0..4 {
        assert_eq!(
            values[&format!("td-shim.rtmr{i}")],
            [measured[format!("rtmr{i}")].as_str().unwrap()]
        );
    }
    for event in measured["events"].as_array().unwrap() {
        let name = event["name"].as_str().unwrap();
        if name != "separator" {
            assert_eq!(
                values[&format!("td-shim.{name}")],
                [event["digest"].as_str().unwrap()]
            );
        }
    }

    // Deterministic; --json is accepted; --output writes the same message.
    assert_eq!(
        run("refvals", &args, &["--json"]),
        run("refvals", &args, &[])
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("refvals.json");
    assert_eq!(run("refvals", &args, &["-o", &arg(&out)]), "");
    assert_eq!(
        serde_json::from_slice::<Value>(&std::fs::read(&out).unwrap()).unwrap(),
        message
    );
}

/// The claims the policy assumes (Trustee's TDX verifier's shape), from a measurement's JSON
/// and expected log.
fn claims(measured: &Value, log: &[u8]) -> Value {
    let parsed = td_shim::eventlog::parse(log).unwrap();
    let events: Vec<_> = parsed
        .events()
        .iter()
        .map(|e| {
            json!({
                "index": e.mr_index(),
                "type_name": e.event_type().to_string(),
                "digests": [{"alg": "SHA-384", "digest": hex::encode(e.digest())}],
            })
        })
        .collect();
    json!({"tdx": {
        "quote": {"body": {
            "rtmr_0": measured["rtmr0"], "rtmr_1": measured["rtmr1"],
            "rtmr_2": measured["rtmr2"], "rtmr_3": measured["rtmr3"],
        }},
        "uefi_event_logs": events,
    }})
}

/// (executables, configuration, allow) of `policy` for `input`, with `values` in the RVPS.
fn evaluate(
    policy: &str,
    values: BTreeMap<String, Vec<String>>,
    input: &Value,
) -> (i64, i64, bool) {
    let mut engine = regorus::Engine::new();
    engine
        .add_extension(
            "query_reference_value".into(),
            1,
            Box::new(move |args: Vec<regorus::Value>| {
                let id = args[0].as_string()?.to_string();
                Ok(match values.get(&id) {
                    Some(v) => regorus::Value::from_json_str(&serde_json::to_string(v)?)?,
                    None => regorus::Value::Null,
                })
            }),
        )
        .unwrap();
    engine
        .add_policy("td-shim.rego".into(), policy.into())
        .unwrap();
    engine.set_input(regorus::Value::from_json_str(&input.to_string()).unwrap());
    let mut rule = |name: &str| engine.eval_rule(format!("data.policy.{name}")).unwrap();
    (
        rule("executables").as_i64().unwrap(),
        rule("configuration").as_i64().unwrap(),
        *rule("allow").as_bool().unwrap(),
    )
}

#[test]
fn the_policy_accepts_this_boot_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("td-shim.rego");
    let args = direct_boot("console=ttyS0", "512M");
    let message: Value =
        serde_json::from_str(&run("refvals", &args, &["--policy", &arg(&policy)])).unwrap();
    let policy = std::fs::read_to_string(&policy).unwrap();
    assert!(policy.contains("ASSUMED INPUT"), "{policy}");

    let boot = |cmdline: &str, memory: &str| {
        let log = dir.path().join(format!("{cmdline}-{memory}.log"));
        let measured: Value = serde_json::from_str(&run(
            "measure",
            &direct_boot(cmdline, memory),
            &["--json", "--log-out", &arg(&log)],
        ))
        .unwrap();
        claims(&measured, &std::fs::read(&log).unwrap())
    };
    let values = provenance(&message);
    assert_eq!(
        evaluate(&policy, values.clone(), &boot("console=ttyS0", "512M")),
        (3, 2, true)
    );
    assert_eq!(
        evaluate(&policy, values.clone(), &boot("console=ttyS1", "512M")),
        (33, 2, false)
    );
    assert_eq!(
        evaluate(&policy, values, &boot("console=ttyS0", "1G")),
        (3, 36, false)
    );
}

#[test]
fn an_image_of_the_same_files_has_the_same_reference_values() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("linux.bin");
    build_linux_image(&image);
    let from_image = run(
        "refvals",
        &["--image", &arg(&image), "--memory", "512M", "--vcpus", "2"].map(str::to_owned),
        &[],
    );
    assert_eq!(
        from_image,
        run("refvals", &direct_boot("console=ttyS0", "512M"), &[])
    );
}

#[test]
fn refusals_and_exit_status() {
    let args = direct_boot("console=ttyS0", "512M");
    // No payload is a usage error; a missing kernel is refused input.
    assert_eq!(
        tool(&["refvals", "--memory", "512M", "--vcpus", "2"])
            .status
            .code(),
        Some(2)
    );
    let mut missing = vec!["refvals".to_owned()];
    missing.extend_from_slice(&args);
    missing[2] = "/nonexistent/vmlinuz".into();
    let out = tool(&missing);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
}
