//! `td-shim-tool measure --platform snp`: the SEV-SNP launch digest from the command line.
//!
//! - the golden vectors of sev-snp-measure v0.0.13's test suite on its firmware fixtures
//!   (testdata/sev-snp/, research §1.10), through the CLI;
//! - Debian's OVMF.fd (testdata/tdx/OVMF.fd.gz, an OvmfPkgX64 build with SEV metadata):
//!   digests computed by sev-snp-measure 0.0.13 (`pip install sev-snp-measure==0.0.13`) with
//!   the same arguments;
//! - the JSON shape, and the refusals (typed errors, exit 1; usage errors, exit 2).
//!
//! The random differential against sev-snp-measure is tests/snp_differential.rs.

mod common;

use common::{arg, ok, root, tool};
use serde_json::Value;
use std::io::Read as _;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> String {
    arg(&root().join("testdata/sev-snp").join(name))
}

/// Debian's OVMF.fd and an empty file, in a temporary directory (kept alive by the guard).
fn files() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let gz = std::fs::File::open(root().join("testdata/tdx/OVMF.fd.gz")).expect("OVMF.fd.gz");
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut bytes)
        .expect("gunzip OVMF.fd.gz");
    let dir = tempfile::tempdir().expect("temporary directory");
    let ovmf = dir.path().join("OVMF.fd");
    std::fs::write(&ovmf, &bytes).expect("write OVMF.fd");
    let null = dir.path().join("null");
    std::fs::write(&null, b"").expect("write null");
    (dir, ovmf, null)
}

fn digest(args: &[&str]) -> String {
    let mut all = vec!["measure", "--platform", "snp"];
    all.extend_from_slice(args);
    ok(&all).trim_end().to_owned()
}

#[test]
fn golden_vectors_through_the_cli() {
    let (_dir, _, null) = files();
    let null = arg(&null);
    let amd = fixture("ovmf_AmdSev_suffix.bin");
    let x64 = fixture("ovmf_OvmfX64_suffix.bin");
    let direct = ["--kernel", &null, "--initrd", &null, "--cmdline", ""];
    let with = |extra: &[&'static str], vcpus: &'static str, image: &str, boot: bool| {
        let mut a = vec!["--image", image, "--vcpus", vcpus, "--vcpu-type", "EPYC-v4"];
        if boot {
            a.extend_from_slice(&direct);
        }
        a.extend_from_slice(extra);
        digest(&a)
    };
    assert_eq!(
        with(&["--guest-features", "0x21"], "1", &amd, true),
        "329c8ce0972ae52343b64d34a434a86f245dfd74f5ed7aae15d22efc78fb9683632b9b50e4e1d7fa41179ef98a7ef198"
    );
    assert_eq!(
        with(&[], "4", &amd, true),
        "5061fffb019493a903613d56d54b94912a1a2f9e4502385f5c194616753720a92441310ba6c4933de877c36e23046ad5"
    );
    assert_eq!(
        with(&["--vmm-type", "ec2", "--guest-features", "0x21"], "1", &amd, true),
        "0ce9ccc06bab55eebe8abc234f3df6514883977a68a591b71052498ab52b2f1aa415db338033946ef93aa8278c0d67fb"
    );
    assert_eq!(
        with(&["--vmm-type", "gce"], "4", &amd, true),
        "5c5debf100fc339f90276e761ee1f1658d08922c3b20e2a2e6c7a6c3370b2452a15a00eae11886a93d6fd1e7ab81e29d"
    );
    assert_eq!(
        with(&["--guest-features", "1"], "1", &x64, false),
        "da0296de8193586a5512078dcd719eccecbd87e2b825ad4148c44f665dc87df21e5b49e21523a9ad993afdb6a30b4005"
    );
    assert_eq!(
        with(&["--mode", "seves"], "4", &amd, true),
        "0dccbcaba8e90b261bd0d2e1863a2f9da714768b7b2a19363cd6ae35aa90de91"
    );
    let ovmf_hash = "086e2e9149ebf45abdc3445fba5b2da8270bdbb04094d7a2c37faaa4b24af3aa16aff8c374c2a55c467a50da6d466b74";
    assert_eq!(
        digest(&["--image", &amd, "--mode", "snp:ovmf-hash"]),
        ovmf_hash
    );
    // Seeded with the firmware's digest: the same answer.
    assert_eq!(
        with(&["--ovmf-hash", ovmf_hash], "4", &amd, true),
        "5061fffb019493a903613d56d54b94912a1a2f9e4502385f5c194616753720a92441310ba6c4933de877c36e23046ad5"
    );
    assert_eq!(
        digest(&[
            "--image",
            &amd,
            "--mode",
            "sev",
            "--kernel",
            &null,
            "--initrd",
            &null,
            "--cmdline",
            "console=ttyS0 loglevel=7"
        ]),
        "82a3ee5d537c3620628270c292ae30cb40c3c878666a7890ee7ef2a08fb535ff"
    );
}

/// Debian's whole OVMF.fd; the expected values are sev-snp-measure 0.0.13's.
#[test]
fn debian_ovmf_matches_sev_snp_measure() {
    let (_dir, ovmf, _) = files();
    let ovmf = arg(&ovmf);
    let cases: &[(&[&str], &str)] = &[
        (&["--vcpus", "2", "--vcpu-type", "EPYC-v4"], "a5b54e62ae971b58274dd24cc6c47b842662617036e7bd67d7326c07ac6363f35399ef933330a5ea160cead90a00603f"),
        (&["--vcpus", "4", "--vcpu-type", "EPYC-Milan", "--vmm-type", "ec2", "--guest-features", "0x21"], "3f757d05a96701b52146defb95eaf8c6e574b281ef60526d1496b13fa734085ae58e5e3996bf622a60c3c014226716a8"),
        (&["--vcpus", "64", "--vcpu-type", "EPYC-Genoa", "--vmm-type", "gce"], "ab35dd493e70ba9aec26396a80e8c1ca4c7a116b291c8e98be7f03efb6668fdd530e9e69326f9a5ae6d02e499da41adf"),
        (&["--mode", "seves", "--vcpus", "2", "--vcpu-type", "EPYC-v4"], "5b1d28d8e8b3c2c9939d39bf18a7f05b16935279425c1c1e1ab19109acca9ffd"),
        (&["--mode", "sev"], "7b456907dd0786d415999e801a1ac4637b8ed4d7cf5378cfc6edbe5e574dd773"),
        (&["--mode", "snp:ovmf-hash"], "ba2c811512ef868474f239a21f7d7057d65a20de87a003c4f116e4fb1573183bfbcd75c3e99b2f558575a5d0094f73c6"),
    ];
    for (args, expected) in cases {
        let mut a = vec!["--image", ovmf.as_str()];
        a.extend_from_slice(args);
        assert_eq!(digest(&a), *expected, "{args:?}");
    }
}

#[test]
fn json_report() {
    let (_dir, _, null) = files();
    let null = arg(&null);
    let amd = fixture("ovmf_AmdSev_suffix.bin");
    let out = digest(&[
        "--image",
        &amd,
        "--vcpus",
        "4",
        "--vcpu-type",
        "EPYC-v4",
        "--kernel",
        &null,
        "--initrd",
        &null,
        "--json",
    ]);
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["platform"], "snp");
    assert_eq!(v["mode"], "snp");
    assert_eq!(
        v["launch_digest"],
        "5061fffb019493a903613d56d54b94912a1a2f9e4502385f5c194616753720a92441310ba6c4933de877c36e23046ad5"
    );
    assert_eq!(v["vcpus"], 4);
    assert_eq!(v["vcpu_sig"], "0x800f12");
    assert_eq!(v["vmm_type"], "qemu");
    assert_eq!(v["guest_features"], "0x1");
    assert_eq!(v["firmware_gpa"], "0xfffff000");
    assert_eq!(
        v["kernel_hashes"]["cmdline"],
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    );
    let sections = v["sections"].as_array().expect("sections");
    assert_eq!(sections.len(), 7);
    assert_eq!(sections[5]["type"], "snp_kernel_hashes");
    assert_eq!(sections[5]["measured_as"], "normal");
}

fn refused(args: &[&str], code: i32, needle: &str) {
    let out = tool(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
    assert!(stderr.contains(needle), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn refusals() {
    let (dir, _, null) = files();
    let null = arg(&null);
    let x64 = fixture("ovmf_OvmfX64_suffix.bin");
    let snp = ["measure", "--platform", "snp"];
    let cmd =
        |rest: &[&str]| -> Vec<String> { snp.iter().chain(rest).map(|s| s.to_string()).collect() };
    let run = |rest: &[&str], code, needle| {
        let a = cmd(rest);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        refused(&a, code, needle)
    };
    // No SEV metadata: typed errors, exit 1.
    let plain = dir.path().join("plain.bin");
    std::fs::write(&plain, vec![0u8; 8192]).expect("write");
    let plain = arg(&plain);
    run(
        &["--image", &plain, "--vcpus", "1", "--vcpu-type", "EPYC"],
        1,
        "no SEV metadata",
    );
    let odd = Path::new(&null).with_file_name("odd.bin");
    std::fs::write(&odd, vec![0u8; 100]).expect("write");
    run(
        &["--image", &arg(&odd), "--vcpus", "1", "--vcpu-type", "EPYC"],
        1,
        "4 KiB pages",
    );
    // OvmfPkgX64 cannot measure a kernel (sev-snp-measure's negative vectors).
    run(
        &[
            "--image",
            &x64,
            "--vcpus",
            "1",
            "--vcpu-type",
            "EPYC-v4",
            "--kernel",
            &null,
        ],
        1,
        "SNP_KERNEL_HASHES",
    );
    run(
        &["--image", &x64, "--mode", "sev", "--kernel", &null],
        1,
        "hash table",
    );
    // Usage errors, exit 2.
    run(&["--image", &x64, "--vcpus", "1"], 2, "--vcpu-type");
    run(&["--image", &x64, "--vcpu-type", "EPYC"], 2, "--vcpus");
    run(
        &["--image", &x64, "--vcpus", "1", "--vcpu-type", "EPYC-v9"],
        2,
        "unknown --vcpu-type",
    );
    run(
        &[
            "--image",
            &x64,
            "--vcpus",
            "1",
            "--vcpu-type",
            "EPYC",
            "--memory",
            "1G",
        ],
        2,
        "--memory",
    );
    run(&["--vcpus", "1", "--vcpu-type", "EPYC"], 2, "--image");
    run(
        &["--image", &x64, "--mode", "sev", "--ovmf-hash", "00"],
        2,
        "96 hex",
    );
    refused(
        &[
            "measure",
            "--image",
            &x64,
            "--vcpus",
            "1",
            "--memory",
            "1G",
            "--vcpu-type",
            "EPYC",
        ],
        2,
        "need --platform snp",
    );
}
