//! `td-shim-tool refvals` on the real kernel and initrd: the RVPS message's shape, its values
//! against `measure`'s, and the policy evaluated by Trustee's Rego engine; with `--platform tdx`
//! also MRTD (against `measure --platform tdx`'s) and the TDX policy.

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

/// Trustee's Rego engine with `policy`, `input`, and `values` in the RVPS.
fn engine(policy: &str, values: BTreeMap<String, Vec<String>>, input: &Value) -> regorus::Engine {
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
    engine
}

/// (executables, configuration, allow) of `policy` for `input`, with `values` in the RVPS.
fn evaluate(
    policy: &str,
    values: BTreeMap<String, Vec<String>>,
    input: &Value,
) -> (i64, i64, bool) {
    let mut engine = engine(policy, values, input);
    let mut rule = |name: &str| engine.eval_rule(format!("data.policy.{name}")).unwrap();
    (
        rule("executables").as_i64().unwrap(),
        rule("configuration").as_i64().unwrap(),
        *rule("allow").as_bool().unwrap(),
    )
}

/// (hardware, executables, configuration, allow) of a TDX `policy` for `input`.
fn evaluate_tdx(
    policy: &str,
    values: BTreeMap<String, Vec<String>>,
    input: &Value,
) -> (i64, i64, i64, bool) {
    let mut engine = engine(policy, values, input);
    let mut rule = |name: &str| engine.eval_rule(format!("data.policy.{name}")).unwrap();
    (
        rule("hardware").as_i64().unwrap(),
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

/// `--platform tdx --image IMAGE --vmm VMM`, the direct boot of the real kernel, initrd and
/// `console=ttyS0` with 512M and 2 vCPUs, and a QEMU-like TD HOB and ACPI files written in
/// `dir` (so RTMR0 is predicted).
fn tdx_args(image: &str, vmm: &str, dir: &std::path::Path) -> Vec<String> {
    let mut args: Vec<String> = ["--platform", "tdx", "--image", image, "--vmm", vmm]
        .map(str::to_owned)
        .to_vec();
    args.extend(direct_boot("console=ttyS0", "512M"));
    args.extend(common::tdx_config_args(dir, 512 << 20));
    args
}

/// The claims of Trustee's TDX verifier (the names of research/tdx-attestation.md §4.3) for a
/// TD whose registers and log `measure --platform tdx --json --log-out` predicted: an
/// up-to-date, non-debug TD.
fn tdx_claims(measured: &Value, log: &[u8]) -> Value {
    let mut input = claims(measured, log);
    let tdx = &mut input["tdx"];
    tdx["quote"]["header"] = json!({"tee_type": "81000000"});
    tdx["quote"]["body"]["mr_td"] = measured["mrtd"].clone();
    tdx["td_attributes"] = json!({"debug": false});
    tdx["tcb_status"] = "UpToDate".into();
    tdx["collateral_expiration_status"] = "0".into();
    input
}

#[test]
fn tdx_reference_values_carry_measures_mrtd_and_rtmrs() {
    let image = arg(&common::artefacts().image);
    let dir = tempfile::tempdir().unwrap();
    let mut mrtds = Vec::new();
    for vmm in ["qemu", "two-pass"] {
        let args = tdx_args(&image, vmm, dir.path());
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
                "mr_td",
                "rtmr_0",
                "rtmr_1",
                "rtmr_2",
                "td-shim.cmdline",
                "td-shim.initrd",
                "td-shim.kernel",
                "td-shim.launch_params",
                "td-shim.td_hob",
            ]
        );
        for (id, value) in &values {
            assert_eq!(value.len(), 1, "{id}");
            assert_eq!(value[0].len(), 96, "{id}");
            assert!(
                value[0]
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "{id}: {}",
                value[0]
            );
        }
        // The same MRTD, RTMRs and event digests as `measure --platform tdx` with the same
        // image, --vmm and boot.
        let measured: Value = serde_json::from_str(&run("measure", &args, &["--json"])).unwrap();
        assert_eq!(measured["vmm"], vmm);
        assert_eq!(values["mr_td"], [measured["mrtd"].as_str().unwrap()]);
        for i in 0..3 {
            assert_eq!(
                values[&format!("rtmr_{i}")],
                [measured[format!("rtmr{i}")].as_str().unwrap()]
            );
        }
        // Each event's digest, but the ACPI files' (rtmr_0 covers them).
        for event in measured["events"].as_array().unwrap() {
            let name = event["name"].as_str().unwrap();
            if name != "separator" && name != "acpi_file" {
                assert_eq!(
                    values[&format!("td-shim.{name}")],
                    [event["digest"].as_str().unwrap()]
                );
            }
        }
        // The event digests are the plain platform's; RTMR0 is not (platform=tdx is measured).
        let plain = provenance(
            &serde_json::from_str(&run("refvals", &direct_boot("console=ttyS0", "512M"), &[]))
                .unwrap(),
        );
        assert_eq!(values["td-shim.kernel"], plain["td-shim.kernel"]);
        assert_eq!(values["rtmr_1"], plain["td-shim.rtmr1"]);
        assert_ne!(values["rtmr_0"], plain["td-shim.rtmr0"]);
        mrtds.push(values["mr_td"][0].clone());
    }
    assert_ne!(mrtds[0], mrtds[1], "the page orders give different MRTDs");
    // --vmm defaults to qemu.
    let mut default_args = tdx_args(&image, "qemu", dir.path());
    default_args.drain(4..6);
    assert_eq!(
        run("refvals", &default_args, &[]),
        run("refvals", &tdx_args(&image, "qemu", dir.path()), &[])
    );
}

#[test]
fn the_tdx_policy_accepts_this_td_and_no_other() {
    let image = arg(&common::artefacts().image);
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("td-shim-tdx.rego");
    let args = tdx_args(&image, "qemu", dir.path());
    let message: Value =
        serde_json::from_str(&run("refvals", &args, &["--policy", &arg(&policy)])).unwrap();
    let policy = std::fs::read_to_string(&policy).unwrap();
    assert!(policy.contains("ASSUMED INPUT"), "{policy}");
    assert!(policy.contains("NOT checked against a running"), "{policy}");
    let values = provenance(&message);

    let td = |vmm: &str, cmdline: &str| {
        let log = dir.path().join(format!("{vmm}-{cmdline}.log"));
        let mut args = tdx_args(&image, vmm, dir.path());
        let at = args.iter().position(|a| a == "console=ttyS0").unwrap();
        args[at] = cmdline.to_owned();
        let measured: Value =
            serde_json::from_str(&run("measure", &args, &["--json", "--log-out", &arg(&log)]))
                .unwrap();
        tdx_claims(&measured, &std::fs::read(&log).unwrap())
    };
    let run = |input: &Value| evaluate_tdx(&policy, values.clone(), input);
    let good = td("qemu", "console=ttyS0");
    assert_eq!(run(&good), (2, 3, 2, true));
    // A changed MRTD or RTMR1 is refused.
    let mut changed = good.clone();
    changed["tdx"]["quote"]["body"]["mr_td"] = "00".repeat(48).into();
    assert_eq!(run(&changed), (97, 3, 2, false));
    let mut changed = good.clone();
    changed["tdx"]["quote"]["body"]["rtmr_1"] = "00".repeat(48).into();
    assert_eq!(run(&changed), (2, 33, 2, false));
    // The same image loaded by a two-pass VMM: another MRTD.
    assert_eq!(run(&td("two-pass", "console=ttyS0")), (97, 3, 2, false));
    // Another command line: another RTMR2 and cmdline event.
    assert_eq!(run(&td("qemu", "console=ttyS1")), (2, 33, 2, false));
    // RTMR3 is the guest OS's: the policy does not read it.
    let mut os = good.clone();
    os["tdx"]["quote"]["body"]["rtmr_3"] = "33".repeat(48).into();
    assert_eq!(run(&os), (2, 3, 2, true));
    // Another TD HOB (one byte the firmware does not check): another RTMR0 and HOB event.
    let other = tempfile::tempdir().unwrap();
    let args = tdx_args(&image, "qemu", other.path());
    let mut hob = common::qemu_hob(512 << 20);
    hob[common::HOB_UNCHECKED_BYTE] ^= 1;
    std::fs::write(other.path().join("td-hob.bin"), &hob).unwrap();
    let log = other.path().join("other.log");
    let measured: Value =
        serde_json::from_str(&run_tool(&args, &["--json", "--log-out", &arg(&log)])).unwrap();
    assert_ne!(measured["rtmr0"], good["tdx"]["quote"]["body"]["rtmr_0"]);
    assert_eq!(
        run(&tdx_claims(&measured, &std::fs::read(&log).unwrap())),
        (2, 3, 36, false)
    );
}

/// `measure ARGS EXTRA`'s standard output.
fn run_tool(args: &[String], extra: &[&str]) -> String {
    run("measure", args, extra)
}

#[test]
fn tdx_refusals_and_exit_status() {
    let image = arg(&common::artefacts().image);
    let status = |args: &[String]| {
        let mut all = vec!["refvals".to_owned()];
        all.extend_from_slice(args);
        tool(&all).status.code()
    };
    // --platform tdx without --image: usage (MRTD needs the firmware image).
    let mut no_image = vec!["--platform".to_owned(), "tdx".to_owned()];
    no_image.extend(direct_boot("console=ttyS0", "512M"));
    assert_eq!(status(&no_image), Some(2));
    // --vmm without tdx, an unknown --vmm: usage.
    let mut plain_vmm = direct_boot("console=ttyS0", "512M");
    plain_vmm.extend(["--vmm".to_owned(), "qemu".to_owned()]);
    assert_eq!(status(&plain_vmm), Some(2));
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(status(&tdx_args(&image, "kvm", dir.path())), Some(2));
    // An image without TDVF metadata: refused, exit 1, nothing written.
    let junk = dir.path().join("junk.bin");
    std::fs::write(&junk, vec![0u8; 0x10000]).unwrap();
    let policy = dir.path().join("p.rego");
    let mut args = tdx_args(&arg(&junk), "qemu", dir.path());
    args.extend(["--policy".to_owned(), arg(&policy)]);
    let mut all = vec!["refvals".to_owned()];
    all.extend(args);
    let out = tool(&all);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot compute the MRTD"), "{err}");
    assert!(!policy.exists());
}
