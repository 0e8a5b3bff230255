//! `td-shim-tool refvals --platform snp` on sev-snp-measure's firmware fixtures
//! (testdata/sev-snp/): the RVPS message's IDs and values against `measure --platform snp`'s
//! digest, the guest policy's fields, the policy file, refusals and usage errors.

mod common;

use base64::Engine as _;
use common::{arg, ok, root, tool};
use serde_json::{json, Value};
use std::collections::BTreeMap;

fn fixture(name: &str) -> String {
    arg(&root().join("testdata/sev-snp").join(name))
}

/// The provenance a message carries: ID → any JSON value.
fn provenance(message: &str) -> BTreeMap<String, Value> {
    let message: Value = serde_json::from_str(message).expect("JSON");
    assert_eq!(message["version"], "0.1.0");
    assert_eq!(message["type"], "sample");
    let payload = base64::engine::general_purpose::STANDARD
        .decode(message["payload"].as_str().expect("payload is a string"))
        .expect("payload is base64");
    serde_json::from_slice(&payload).expect("payload is a JSON map")
}

fn launch(extra: &[&str]) -> Vec<String> {
    launch_with("4", extra)
}

/// The launch of the AmdSev fixture on `vcpus` EPYC-v4 vCPUs, with `extra`.
fn launch_with(vcpus: &str, extra: &[&str]) -> Vec<String> {
    let mut a = vec![
        "--platform".to_owned(),
        "snp".into(),
        "--image".into(),
        fixture("ovmf_AmdSev_suffix.bin"),
        "--vcpus".into(),
        vcpus.into(),
        "--vcpu-type".into(),
        "EPYC-v4".into(),
    ];
    a.extend(extra.iter().map(|s| (*s).to_owned()));
    a
}

fn run(command: &str, args: &[String]) -> String {
    let mut all = vec![command.to_owned()];
    all.extend_from_slice(args);
    ok(&all)
}

#[test]
fn the_launch_digest_and_policy_fields_under_trustees_ids() {
    let args = launch(&[]);
    let values = provenance(&run("refvals", &args));
    let ids: Vec<_> = values.keys().map(String::as_str).collect();
    assert_eq!(
        ids,
        [
            "snp_guest_abi_major",
            "snp_guest_abi_minor",
            "snp_launch_measurement",
            "snp_single_socket",
            "snp_smt_allowed",
        ]
    );
    let digest = run("measure", &args).trim().to_owned();
    // The digest `measure` prints for the same launch, in both encodings.
    let bytes = hex::decode(&digest).expect("hex digest");
    assert_eq!(bytes.len(), 48);
    let base64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
    assert_eq!(values["snp_launch_measurement"], json!([digest, base64]));
    // QEMU's default guest policy 0x30000.
    assert_eq!(values["snp_guest_abi_major"], 0);
    assert_eq!(values["snp_guest_abi_minor"], 0);
    assert_eq!(values["snp_single_socket"], false);
    assert_eq!(values["snp_smt_allowed"], true);
}

#[test]
fn a_direct_boot_and_other_launch_options_reach_the_digest() {
    let dir = tempfile::tempdir().expect("temp dir");
    let null = dir.path().join("null");
    std::fs::write(&null, b"").expect("write");
    let null = arg(&null);
    // sev-snp-measure v0.0.13's golden vector (AmdSev, 1 vCPU, empty kernel and initrd, empty
    // command line, SEV_FEATURES 0x21; testdata/README.md).
    let args = launch_with(
        "1",
        &[
            "--kernel",
            &null,
            "--initrd",
            &null,
            "--cmdline",
            "",
            "--guest-features",
            "0x21",
        ],
    );
    let values = provenance(&run("refvals", &args));
    assert_eq!(
        values["snp_launch_measurement"][0],
        "329c8ce0972ae52343b64d34a434a86f245dfd74f5ed7aae15d22efc78fb9683632b9b50e4e1d7fa41179ef98a7ef198"
    );
    // A guest policy: ABI 1.55, single socket, no SMT.
    let args = launch(&["--guest-policy", "0x120137"]);
    let values = provenance(&run("refvals", &args));
    assert_eq!(values["snp_guest_abi_major"], 1);
    assert_eq!(values["snp_guest_abi_minor"], 0x37);
    assert_eq!(values["snp_single_socket"], true);
    assert_eq!(values["snp_smt_allowed"], false);
}

#[test]
fn the_policy_file_and_the_output_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rego = dir.path().join("snp.rego");
    let message = dir.path().join("message.json");
    let mut args = vec!["refvals".to_owned()];
    args.extend(launch(&[]));
    args.extend(["--policy".into(), arg(&rego), "-o".into(), arg(&message)]);
    let out = tool(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("snp_bootloader, snp_tee_svn, snp_snp_svn, snp_microcode"),
        "{stderr}"
    );
    let text = std::fs::read_to_string(&rego).expect("policy written");
    assert!(
        text.starts_with("# Attestation policy for an SEV-SNP launch"),
        "{text}"
    );
    assert!(text.contains("evidence := input.snp.evidence"), "{text}");
    let written = std::fs::read_to_string(&message).expect("message written");
    assert_eq!(
        provenance(&written),
        provenance(&run("refvals", &launch(&[])))
    );
}

#[test]
fn unsafe_guest_policies_are_refused() {
    for (policy, why) in [
        ("0xb0000", "allows debugging"),
        ("0x70000", "migration agent"),
        ("0x10000", "bit 17"),
    ] {
        let mut args = vec!["refvals".to_owned()];
        args.extend(launch(&["--guest-policy", policy]));
        let out = tool(&args);
        assert_eq!(out.status.code(), Some(1), "{policy}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(why), "{policy}: {stderr}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn usage_errors_exit_2() {
    let image = fixture("ovmf_AmdSev_suffix.bin");
    for args in [
        // No --image, no --vcpus, no vCPU type, --memory, another mode, --vmm.
        vec![
            "refvals",
            "--platform",
            "snp",
            "--vcpus",
            "1",
            "--vcpu-type",
            "EPYC-v4",
        ],
        vec![
            "refvals",
            "--platform",
            "snp",
            "--image",
            &image,
            "--vcpu-type",
            "EPYC-v4",
        ],
        vec![
            "refvals",
            "--platform",
            "snp",
            "--image",
            &image,
            "--vcpus",
            "1",
        ],
        vec![
            "refvals",
            "--platform",
            "snp",
            "--image",
            &image,
            "--vcpus",
            "1",
            "--vcpu-type",
            "EPYC-v4",
            "--memory",
            "1G",
        ],
        vec![
            "refvals",
            "--platform",
            "snp",
            "--image",
            &image,
            "--vcpus",
            "1",
            "--vcpu-type",
            "EPYC-v4",
            "--mode",
            "seves",
        ],
        vec![
            "refvals",
            "--platform",
            "snp",
            "--image",
            &image,
            "--vcpus",
            "1",
            "--vcpu-type",
            "EPYC-v4",
            "--vmm",
            "qemu",
        ],
        vec![
            "refvals",
            "--platform",
            "snp",
            "--image",
            &image,
            "--vcpus",
            "1",
            "--vcpu-type",
            "EPYC-v4",
            "--guest-policy",
            "x",
        ],
        // SNP options on another platform.
        vec![
            "refvals",
            "--image",
            &image,
            "--memory",
            "1G",
            "--vcpus",
            "1",
            "--guest-policy",
            "0x30000",
        ],
        vec![
            "refvals",
            "--platform",
            "tdx",
            "--image",
            &image,
            "--memory",
            "1G",
            "--vcpus",
            "1",
            "--vcpu-type",
            "EPYC-v4",
        ],
    ] {
        let out = tool(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
