//! `measure --platform tdx --td-hob --acpi-dir`, `refvals` and `eventlog extract-hob`: RTMR0
//! under TDX holds the VMM's TD HOB and QEMU's ACPI fw_cfg files. With a synthetic QEMU-like HOB
//! and table loader, the predicted RTMR0 is checked against the firmware's own `plan_with` and
//! `Recording`, every input byte against the register it moves, and the refusals and the
//! "unknown" report without the inputs.

mod common;

use common::{
    arg, artefacts, direct_boot, ok, qemu_acpi, qemu_hob, tdx_config_args, tool, write_fw_cfg,
    HOB_UNCHECKED_BYTE,
};
use serde_json::Value;
use std::path::Path;
use td_layout::handoff::PlatformKind;
use td_shim::eventlog::SoftwareRtmrs;
use td_shim::measurement::{
    plan_with, Blob, ConfigFile, LaunchParams, Payload, Recording, VmmConfig,
};

const RAM: u64 = 512 << 20;

/// `measure --platform tdx --image IMAGE` with the direct boot of the real kernel and initrd
/// (`console=ttyS0`, 512M, 2 vCPUs), then `extra`.
fn tdx_boot(extra: &[String]) -> Vec<String> {
    let mut args: Vec<String> = ["measure", "--platform", "tdx", "--image"]
        .map(str::to_owned)
        .to_vec();
    args.push(arg(&artefacts().image));
    args.extend(direct_boot("console=ttyS0", "512M"));
    args.extend_from_slice(extra);
    args
}

fn json(args: &[String]) -> Value {
    let mut all = args.to_vec();
    all.push("--json".into());
    serde_json::from_str(&ok(&all)).expect("JSON")
}

fn rtmrs(v: &Value) -> Vec<Value> {
    ["rtmr0", "rtmr1", "rtmr2", "rtmr3"]
        .map(|k| v[k].clone())
        .to_vec()
}

/// Runs the tool, requires exit status `code` and nothing on standard output; returns standard
/// error.
fn fails(args: &[String], code: i32) -> String {
    let out = tool(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
    assert!(out.stdout.is_empty(), "{args:?}");
    err
}

/// The log and registers the firmware records for the direct boot of [`tdx_boot`] with `hob`
/// and `acpi` (in order): its own `plan_with` and `Recording`.
fn firmware_log(hob: &[u8], acpi: &[(String, Vec<u8>)]) -> (Vec<u8>, [[u8; 48]; 4]) {
    let kernel = std::fs::read(&artefacts().kernel).unwrap();
    let initrd = std::fs::read(&artefacts().initrd).unwrap();
    let params = LaunchParams {
        platform: PlatformKind::Tdx,
        ram_bytes: RAM,
        vcpus: 2,
    };
    let config = VmmConfig {
        td_hob: Some(hob),
        acpi: acpi.iter().map(|(n, b)| ConfigFile::of(n, b)).collect(),
    };
    let payload = Payload::Linux {
        kernel: Blob::Bytes(&kernel),
        cmdline: b"console=ttyS0",
        initrd: Some(Blob::Bytes(&initrd)),
    };
    let mut area = vec![0u8; 0x1_0000];
    let mut registers = SoftwareRtmrs::default();
    let mut recording = Recording::new(&mut area).unwrap();
    recording
        .record(&mut registers, plan_with(&params, &config, &payload))
        .unwrap();
    let log = recording.log().to_vec();
    let replayed = td_shim::eventlog::parse(&log).unwrap().replay();
    assert_eq!(replayed, registers.0);
    (log, replayed)
}

#[test]
fn rtmr0_is_the_replay_of_the_firmwares_plan_with_the_same_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let config = tdx_config_args(dir.path(), RAM);
    let log_out = dir.path().join("expected.log");
    let mut args = tdx_boot(&config);
    args.extend(["--log-out".to_owned(), arg(&log_out)]);
    let v = json(&args);
    let (log, replayed) = firmware_log(&qemu_hob(RAM), &qemu_acpi());
    assert_eq!(std::fs::read(&log_out).unwrap(), log, "the expected log");
    for (i, r) in replayed.iter().enumerate() {
        assert_eq!(v[format!("rtmr{i}")], hex::encode(r), "RTMR{i}");
    }
    assert!(v.get("rtmr0_unknown").is_none());
    // The events, described: the HOB, then the script and each allocated file in ALLOCATE
    // order (not name order).
    let events: Vec<(String, String)> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .take(7)
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["description"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let launch = format!(
        "td_launch_params, {} bytes of information",
        v["launch_params"].as_str().unwrap().len()
    );
    let expected = [
        ("launch_params", launch.as_str()),
        (
            "td_hob",
            "td_hob: HOB list of 256 bytes, 4 memory ranges, 512 MiB of RAM",
        ),
        ("acpi_file", "td_acpi_file: fw_cfg etc/table-loader"),
        ("acpi_file", "td_acpi_file: fw_cfg etc/acpi/tables"),
        ("acpi_file", "td_acpi_file: fw_cfg etc/acpi/rsdp"),
        ("acpi_file", "td_acpi_file: fw_cfg etc/tpm/log"),
        ("separator", "separator (0x00000000)"),
    ];
    assert_eq!(
        events,
        expected.map(|(a, b)| (a.to_owned(), b.to_owned())),
        "{v:#}"
    );
    // The text form prints the same RTMR0.
    let text = ok(&args);
    assert!(
        text.contains(&format!("RTMR0 {}\n", hex::encode(replayed[0]))),
        "{text}"
    );
    // `eventlog dump` of the expected log shows the same descriptions.
    let dump = ok(&["eventlog", "dump", &arg(&log_out)]);
    assert!(dump.contains("td_acpi_file: fw_cfg etc/tpm/log"), "{dump}");
    assert!(dump.contains("td_hob: HOB list of 256 bytes"), "{dump}");
}

#[test]
fn each_byte_of_the_vmm_configuration_moves_rtmr0_only() {
    let dir = tempfile::tempdir().unwrap();
    let base = json(&tdx_boot(&tdx_config_args(dir.path(), RAM)));
    let files = qemu_acpi();
    // (what, which ACPI file to change or None for the HOB, the byte)
    let mut cases: Vec<(String, Option<usize>, usize)> = vec![
        // The script: the unused tail of its first command (still a valid script).
        ("etc/table-loader".into(), Some(0), 127),
        ("td hob".into(), None, HOB_UNCHECKED_BYTE),
    ];
    for (i, (name, bytes)) in files.iter().enumerate().skip(1) {
        cases.push((name.clone(), Some(i), bytes.len() - 1));
        cases.push((name.clone(), Some(i), 0));
    }
    let mut seen = vec![base["rtmr0"].clone()];
    for (what, file, at) in cases {
        let case = tempfile::tempdir().unwrap();
        let mut acpi = files.clone();
        let mut hob = qemu_hob(RAM);
        match file {
            Some(i) => acpi[i].1[at] ^= 0x01,
            None => hob[at] ^= 0x01,
        }
        write_fw_cfg(&case.path().join("fw_cfg"), &acpi, false);
        std::fs::write(case.path().join("hob"), &hob).unwrap();
        let changed = json(&tdx_boot(&[
            "--td-hob".into(),
            arg(&case.path().join("hob")),
            "--acpi-dir".into(),
            arg(&case.path().join("fw_cfg")),
        ]));
        let (a, b) = (rtmrs(&base), rtmrs(&changed));
        assert_ne!(a[0], b[0], "{what} byte {at}: RTMR0");
        assert_eq!(a[1..], b[1..], "{what} byte {at}: RTMR1-3");
        // Each change gives its own RTMR0.
        assert!(!seen.contains(&b[0]), "{what} byte {at}");
        seen.push(b[0].clone());
    }
    // Reordering the ALLOCATE commands (same files) moves RTMR0 too.
    let case = tempfile::tempdir().unwrap();
    let mut acpi = files.clone();
    let script = &mut acpi[0].1;
    let first: Vec<u8> = script.drain(..128).collect();
    script.splice(128..128, first);
    write_fw_cfg(&case.path().join("fw_cfg"), &acpi, false);
    let mut args = tdx_boot(&tdx_config_args(dir.path(), RAM));
    let at = args.iter().position(|a| a == "--acpi-dir").unwrap();
    args[at + 1] = arg(&case.path().join("fw_cfg"));
    let reordered = json(&args);
    assert_ne!(reordered["rtmr0"], base["rtmr0"]);
    let (_, replayed) = firmware_log(
        &qemu_hob(RAM),
        &[
            acpi[0].clone(),
            acpi[2].clone(),
            acpi[1].clone(),
            acpi[3].clone(),
        ],
    );
    assert_eq!(reordered["rtmr0"], hex::encode(replayed[0]));
}

#[test]
fn a_region_dump_and_the_sysfs_layout_measure_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let base = json(&tdx_boot(&tdx_config_args(dir.path(), RAM)));
    // The whole TD_HOB region: the list, then zeros and stray bytes the firmware ignores.
    let mut region = qemu_hob(RAM);
    region.resize(0x2_0000, 0);
    region[0x1_0000] = 0xAA;
    let region_path = dir.path().join("region.bin");
    std::fs::write(&region_path, &region).unwrap();
    // The ACPI files as /sys/firmware/qemu_fw_cfg/by_name shows them: NAME/raw.
    let sysfs = dir.path().join("by_name");
    write_fw_cfg(&sysfs, &qemu_acpi(), true);
    let v = json(&tdx_boot(&[
        "--td-hob".into(),
        arg(&region_path),
        "--acpi-dir".into(),
        arg(&sysfs),
    ]));
    assert_eq!(rtmrs(&v), rtmrs(&base));
    // Larger than the region: refused.
    region.push(0);
    std::fs::write(&region_path, &region).unwrap();
    let err = fails(
        &tdx_boot(&[
            "--td-hob".into(),
            arg(&region_path),
            "--acpi-dir".into(),
            arg(&sysfs),
        ]),
        1,
    );
    assert!(err.contains("is larger than 131072 bytes"), "{err}");
}

#[test]
fn missing_or_invalid_inputs_are_refused_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let good_hob = dir.path().join("hob");
    std::fs::write(&good_hob, qemu_hob(RAM)).unwrap();
    let with = |hob: &Path, acpi: &[(String, Vec<u8>)]| {
        let case = tempfile::tempdir().unwrap();
        write_fw_cfg(case.path(), acpi, false);
        let args = tdx_boot(&[
            "--td-hob".into(),
            arg(hob),
            "--acpi-dir".into(),
            arg(case.path()),
        ]);
        fails(&args, 1)
    };
    let files = qemu_acpi();
    // A file the script allocates is missing: named.
    let err = with(
        &good_hob,
        &[files[0].clone(), files[1].clone(), files[3].clone()],
    );
    assert!(
        err.contains("fw_cfg file etc/acpi/rsdp is missing")
            && err.contains("etc/table-loader allocates it"),
        "{err}"
    );
    let err = with(&good_hob, &files[1..]);
    assert!(
        err.contains("fw_cfg file etc/table-loader is missing"),
        "{err}"
    );
    // An empty file; a script the firmware refuses; a name outside the directory.
    let mut empty = files.clone();
    empty[3].1.clear();
    let err = with(&good_hob, &empty);
    assert!(
        err.contains("etc/tpm/log") && err.contains("is empty"),
        "{err}"
    );
    let mut bad = files.clone();
    bad[0].1[128] = 9;
    let err = with(&good_hob, &bad);
    assert!(
        err.contains("unknown type 9") && err.contains("the firmware refuses this table loader"),
        "{err}"
    );
    let mut escape = files.clone();
    escape[0]
        .1
        .extend(common::loader_allocate("../../etc/passwd", 16, 1));
    let err = with(&good_hob, &escape);
    assert!(
        err.contains("\"../../etc/passwd\", which is not a relative fw_cfg name"),
        "{err}"
    );
    // The HOB: missing, not one the firmware accepts, or for another RAM size.
    let err = with(&dir.path().join("nonexistent"), &files);
    assert!(
        err.contains("cannot read") && err.contains("TD HOB"),
        "{err}"
    );
    let mut wrong = qemu_hob(RAM);
    wrong[8] = 8;
    let wrong_path = dir.path().join("wrong");
    std::fs::write(&wrong_path, &wrong).unwrap();
    let err = with(&wrong_path, &files);
    assert!(
        err.contains("not a TD HOB the firmware accepts") && err.contains("version"),
        "{err}"
    );
    let other = dir.path().join("1g");
    std::fs::write(&other, qemu_hob(1 << 30)).unwrap();
    let err = with(&other, &files);
    assert!(
        err.contains("the TD HOB describes 1073741824 bytes of RAM, but --memory gives 536870912"),
        "{err}"
    );
    // ACPI files with an ELF payload (the default image's): the firmware measures none.
    let acpi_dir = dir.path().join("fw_cfg");
    write_fw_cfg(&acpi_dir, &files, false);
    let elf = [
        "measure",
        "--platform",
        "tdx",
        "--image",
        &arg(&artefacts().image),
        "--memory",
        "512M",
        "--vcpus",
        "2",
        "--td-hob",
        &arg(&good_hob),
        "--acpi-dir",
        &arg(&acpi_dir),
    ]
    .map(str::to_owned);
    let err = fails(&elf, 1);
    assert!(
        err.contains("an ELF payload boots without ACPI tables"),
        "{err}"
    );
    // Usage (exit 2): the plain platform, or tdx without the launch parameters.
    let mut plain: Vec<String> = vec!["measure".into()];
    plain.extend(direct_boot("console=ttyS0", "512M"));
    plain.extend(["--td-hob".into(), arg(&good_hob)]);
    let err = fails(&plain, 2);
    assert!(
        err.contains("--td-hob and --acpi-dir need --platform tdx"),
        "{err}"
    );
    plain[0] = "refvals".into();
    fails(&plain, 2);
    let mrtd_only = [
        "measure",
        "--platform",
        "tdx",
        "--image",
        &arg(&artefacts().image),
        "--acpi-dir",
        &arg(&acpi_dir),
    ]
    .map(str::to_owned);
    let err = fails(&mrtd_only, 2);
    assert!(err.contains("need --memory and --vcpus"), "{err}");
}

#[test]
fn without_the_inputs_rtmr0_is_reported_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let exact = json(&tdx_boot(&tdx_config_args(dir.path(), RAM)));
    let v = json(&tdx_boot(&[]));
    assert!(v["rtmr0"].is_null(), "{v:#}");
    assert_eq!(
        v["rtmr0_unknown"],
        "unknown: needs --td-hob and --acpi-dir: under TDX the firmware measures the TD HOB and \
         the ACPI fw_cfg files into RTMR0"
    );
    assert_eq!(rtmrs(&v)[1..], rtmrs(&exact)[1..]);
    assert_eq!(v["mrtd"], exact["mrtd"]);
    let text = ok(&tdx_boot(&[]));
    assert!(
        text.contains("RTMR0 unknown: needs --td-hob and --acpi-dir"),
        "{text}"
    );
    assert!(!text.contains(&format!("RTMR0 {}", exact["rtmr0"].as_str().unwrap())));
    // One of the two is not enough for a Linux boot.
    let half = json(&tdx_boot(&tdx_config_args(dir.path(), RAM)[..2]));
    assert!(half["rtmr0"].is_null());
    assert!(half["rtmr0_unknown"]
        .as_str()
        .unwrap()
        .starts_with("unknown: needs --acpi-dir:"));
    // No expected log: it would have the wrong RTMR0 events.
    let log = dir.path().join("expected.log");
    let err = fails(&tdx_boot(&["--log-out".to_owned(), arg(&log)]), 1);
    assert!(err.contains("not written: RTMR0 is unknown"), "{err}");
    assert!(!log.exists());
    // An ELF payload gets no ACPI tables: the HOB alone makes RTMR0 exact.
    let hob = dir.path().join("td-hob.bin");
    let elf = |extra: &[&str]| {
        let mut args: Vec<String> = [
            "measure",
            "--platform",
            "tdx",
            "--image",
            &arg(&artefacts().image),
            "--memory",
            "512M",
            "--vcpus",
            "2",
        ]
        .map(str::to_owned)
        .to_vec();
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        json(&args)
    };
    let without = elf(&[]);
    assert!(without["rtmr0"].is_null());
    assert!(without["rtmr0_unknown"]
        .as_str()
        .unwrap()
        .starts_with("unknown: needs --td-hob:"));
    let with = elf(&["--td-hob", &arg(&hob)]);
    let image = std::fs::read(&artefacts().image).unwrap();
    let payload = td_shim_tool::measure::image_payload(&image).unwrap();
    let params = LaunchParams {
        platform: PlatformKind::Tdx,
        ram_bytes: RAM,
        vcpus: 2,
    };
    let hob_bytes = qemu_hob(RAM);
    let config = VmmConfig {
        td_hob: Some(&hob_bytes),
        acpi: Vec::new(),
    };
    let mut registers = SoftwareRtmrs::default();
    let mut area = vec![0u8; 0x1_0000];
    Recording::new(&mut area)
        .unwrap()
        .record(&mut registers, plan_with(&params, &config, &payload))
        .unwrap();
    assert_eq!(with["rtmr0"], hex::encode(registers.0[0]));
    assert_eq!(rtmrs(&with)[1..], rtmrs(&without)[1..]);
}

#[test]
fn refvals_has_rtmr_0_only_when_it_is_predicted() {
    let dir = tempfile::tempdir().unwrap();
    let config = tdx_config_args(dir.path(), RAM);
    let refvals = |extra: &[String], policy: &Path| {
        let mut args = tdx_boot(extra);
        args[0] = "refvals".into();
        args.extend(["--policy".to_owned(), arg(policy)]);
        let out = tool(&args);
        assert_eq!(out.status.code(), Some(0));
        let message: Value = serde_json::from_slice(&out.stdout).unwrap();
        let payload = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            message["payload"].as_str().unwrap(),
        )
        .unwrap();
        let values: std::collections::BTreeMap<String, Vec<String>> =
            serde_json::from_slice(&payload).unwrap();
        (
            values,
            String::from_utf8_lossy(&out.stderr).into_owned(),
            std::fs::read_to_string(policy).unwrap(),
        )
    };
    let exact = json(&tdx_boot(&config));
    let (values, stderr, policy) = refvals(&config, &dir.path().join("exact.rego"));
    assert_eq!(values["rtmr_0"], [exact["rtmr0"].as_str().unwrap()]);
    let hob_event = exact["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "td_hob")
        .unwrap();
    assert_eq!(
        values["td-shim.td_hob"],
        [hob_event["digest"].as_str().unwrap()]
    );
    assert!(!stderr.contains("rtmr_0"), "{stderr}");
    assert!(policy.contains("evidence.quote.body.rtmr_0 in query_reference_value(\"rtmr_0\")"));
    assert!(!policy.contains("RTMR0 IS NOT CHECKED"));

    let (values, stderr, policy) = refvals(&[], &dir.path().join("unknown.rego"));
    assert!(!values.contains_key("rtmr_0"), "{values:?}");
    assert!(!values.contains_key("td-shim.td_hob"));
    assert_eq!(values["rtmr_1"], [exact["rtmr1"].as_str().unwrap()]);
    assert!(
        stderr.contains("note: no rtmr_0 reference value: RTMR0 is unknown (needs --td-hob"),
        "{stderr}"
    );
    assert!(policy.contains("# RTMR0 IS NOT CHECKED"), "{policy}");
    assert!(
        !policy.contains("rtmr_0 in query_reference_value"),
        "{policy}"
    );
}

#[test]
fn the_hob_goes_from_a_tds_log_back_into_measure() {
    let dir = tempfile::tempdir().unwrap();
    // The TD's log (here: the expected one, byte for byte what the firmware writes) with the
    // HOB given as a whole region dump.
    let mut region = qemu_hob(RAM);
    region.resize(0x2_0000, 0);
    let region_path = dir.path().join("region.bin");
    std::fs::write(&region_path, &region).unwrap();
    let acpi = dir.path().join("fw_cfg");
    write_fw_cfg(&acpi, &qemu_acpi(), false);
    let log = dir.path().join("td.log");
    let config = [
        "--td-hob".to_owned(),
        arg(&region_path),
        "--acpi-dir".to_owned(),
        arg(&acpi),
    ];
    let mut args = tdx_boot(&config);
    args.extend(["--log-out".to_owned(), arg(&log)]);
    let first = json(&args);
    // Extracted: exactly the list (not the region), the event's digest.
    let hob = dir.path().join("extracted.bin");
    let out = ok(&[
        "eventlog",
        "extract-hob",
        &arg(&log),
        "-o",
        &arg(&hob),
        "--json",
    ]);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(std::fs::read(&hob).unwrap(), qemu_hob(RAM));
    assert_eq!(report["event_index"], 2);
    assert_eq!(report["length"], 256);
    assert_eq!(report["ram_bytes"], RAM);
    assert_eq!(report["ranges"].as_array().unwrap().len(), 4);
    let event = &first["events"][1];
    assert_eq!(event["name"], "td_hob");
    assert_eq!(report["sha384"], event["digest"]);
    let text = ok(&["eventlog", "extract-hob", &arg(&log), "-o", &arg(&hob)]);
    assert!(
        text.starts_with(&format!(
            "wrote {}: the TD HOB list of event 2 (256 bytes, 512 MiB of RAM)\n",
            hob.display()
        )),
        "{text}"
    );
    // Measured again from the extracted HOB: the same registers.
    let again = json(&tdx_boot(&[
        "--td-hob".to_owned(),
        arg(&hob),
        "--acpi-dir".to_owned(),
        arg(&acpi),
    ]));
    assert_eq!(rtmrs(&again), rtmrs(&first));
    // A log without a td_hob event (the plain platform's), or with altered HOB bytes: refused,
    // nothing written.
    let plain_log = dir.path().join("plain.log");
    let mut plain: Vec<String> = vec!["measure".into()];
    plain.extend(direct_boot("console=ttyS0", "512M"));
    plain.extend(["--log-out".into(), arg(&plain_log)]);
    ok(&plain);
    let none = dir.path().join("none.bin");
    let err = fails(
        &[
            "eventlog".into(),
            "extract-hob".into(),
            arg(&plain_log),
            "-o".into(),
            arg(&none),
        ],
        1,
    );
    assert!(err.contains("the log has no td_hob event"), "{err}");
    assert!(!none.exists());
    let mut bytes = std::fs::read(&log).unwrap();
    let hob_list = qemu_hob(RAM);
    let at = bytes
        .windows(hob_list.len())
        .position(|w| w == hob_list.as_slice())
        .unwrap();
    bytes[at + HOB_UNCHECKED_BYTE] ^= 1;
    let altered = dir.path().join("altered.log");
    std::fs::write(&altered, &bytes).unwrap();
    let err = fails(
        &[
            "eventlog".into(),
            "extract-hob".into(),
            arg(&altered),
            "-o".into(),
            arg(&none),
        ],
        1,
    );
    assert!(err.contains("not what the event's digest covers"), "{err}");
    assert!(!none.exists());
}
