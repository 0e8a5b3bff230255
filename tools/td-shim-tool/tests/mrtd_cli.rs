//! `td-shim-tool measure --platform tdx`: MRTD cross-checked, bit for bit, against other
//! implementations (testdata/tdx/README.md, docs/tdx-measurement.md):
//!
//! - Debian's OVMF.fd (bookworm, ovmf 2022.11-6+deb12u2): golden values from mosaik 0.4.2's
//!   MRTD function (two-pass, a third-party implementation) and from testdata/tdx/mrtd.py (both
//!   orders), and mrtd.py run live;
//! - our own image (`cargo xtask build`): mrtd.py run live, both orders (it changes with the
//!   firmware, so there is no golden value).
//!
//! Plus the CLI's shape and its refusals.

mod common;

use common::{arg, artefacts, ok, root, tool};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// SHA-256 of Debian's OVMF.fd, decompressed from testdata/tdx/OVMF.fd.gz.
const OVMF_SHA256: &str = "7b456907dd0786d415999e801a1ac4637b8ed4d7cf5378cfc6edbe5e574dd773";
/// Its MRTD in the qemu order (per page: add, then 16 extends); from mrtd.py.
const OVMF_MRTD_QEMU: &str = "4c7206f0f483c524f12c366c711e9049030a8d47c471ee5aa9c4999a08de4057\
                              fb887fed0744d5631a212967fb231c47";
/// Its MRTD in the two-pass order; from mosaik 0.4.2 and from mrtd.py.
const OVMF_MRTD_TWO_PASS: &str = "acccbcc870a381adab0d3919d90a7f268ac3b0364771f202ed4bb4e892d045b3\
                                  3db3b32e6924cba830a724eed443f7e1";

/// testdata/tdx/OVMF.fd.gz decompressed into a temporary directory (kept alive by the guard).
fn ovmf() -> (tempfile::TempDir, PathBuf) {
    let gz = std::fs::File::open(root().join("testdata/tdx/OVMF.fd.gz")).expect("OVMF.fd.gz");
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut bytes)
        .expect("gunzip OVMF.fd.gz");
    assert_eq!(hex::encode(Sha256::digest(&bytes)), OVMF_SHA256);
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("OVMF.fd");
    std::fs::write(&path, &bytes).expect("write OVMF.fd");
    (dir, path)
}

/// `measure --platform tdx --image IMAGE --vmm ORDER --json`, parsed.
fn measure(image: &Path, order: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "measure".to_owned(),
        "--json".to_owned(),
        "--platform".to_owned(),
        "tdx".to_owned(),
        "--image".to_owned(),
        arg(image),
        "--vmm".to_owned(),
        order.to_owned(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    serde_json::from_str(&ok(&args)).expect("measure --json prints JSON")
}

fn mrtd(image: &Path, order: &str) -> String {
    measure(image, order, &[])["mrtd"]
        .as_str()
        .expect("mrtd")
        .to_owned()
}

/// testdata/tdx/mrtd.py's MRTD of `image` in `order` (needs python3 on PATH).
fn python_mrtd(image: &Path, order: &str) -> String {
    let out = Command::new("python3")
        .arg(root().join("testdata/tdx/mrtd.py"))
        .arg(image)
        .arg(order)
        .output()
        .expect("run python3 testdata/tdx/mrtd.py (python3 must be on PATH)");
    assert!(
        out.status.success(),
        "mrtd.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .trim()
        .to_owned()
}

#[test]
fn debian_ovmf_matches_the_golden_values() {
    let (_dir, ovmf) = ovmf();
    assert_eq!(mrtd(&ovmf, "qemu"), OVMF_MRTD_QEMU);
    assert_eq!(mrtd(&ovmf, "two-pass"), OVMF_MRTD_TWO_PASS);
    // Default order: qemu.
    let out = ok(&["measure", "--platform", "tdx", "--image", &arg(&ovmf)]);
    assert!(out.starts_with(&format!("MRTD {OVMF_MRTD_QEMU} (VMM page order: qemu)\n")));
    assert!(out.contains("RTMRs not computed"));
    let v = measure(&ovmf, "qemu", &[]);
    assert_eq!(v["tdvf_source"], "footer GUID table");
    let shape: Vec<_> = v["tdvf_sections"]
        .as_array()
        .expect("sections")
        .iter()
        .map(|s| {
            (
                s["type"].as_str().unwrap().to_owned(),
                s["added_pages"].as_u64().unwrap(),
                s["extended_pages"].as_u64().unwrap(),
            )
        })
        .collect();
    let expect = [
        ("BFV", 480, 480),
        ("CFV", 32, 0),
        ("TempMem", 16, 0),
        ("TempMem", 2, 0),
        ("TD_HOB", 2, 0),
        ("TempMem", 6, 0),
    ]
    .map(|(t, a, e)| (t.to_owned(), a, e));
    assert_eq!(shape, expect);
    assert!(
        v.get("rtmr0").is_none(),
        "no RTMRs without --memory/--vcpus"
    );
}

#[test]
fn debian_ovmf_matches_the_python_implementation_live() {
    let (_dir, ovmf) = ovmf();
    assert_eq!(python_mrtd(&ovmf, "qemu"), OVMF_MRTD_QEMU);
    assert_eq!(python_mrtd(&ovmf, "two-pass"), OVMF_MRTD_TWO_PASS);
}

#[test]
fn our_image_matches_the_python_implementation() {
    let image = &artefacts().image;
    let qemu = mrtd(image, "qemu");
    let two_pass = mrtd(image, "two-pass");
    assert_ne!(qemu, two_pass, "the orders hash different streams");
    assert_eq!(qemu, python_mrtd(image, "qemu"));
    assert_eq!(two_pass, python_mrtd(image, "two-pass"));
}

#[test]
fn an_enrolled_key_is_in_mrtd_and_both_implementations_agree() {
    // The secure-boot record sits in the metadata page, the first page of the BFV, which the
    // TDX module extends into MRTD: enrolling must change MRTD, and the independent Python
    // implementation must see the same change.
    let image = &artefacts().image;
    let dir = tempfile::tempdir().unwrap();
    let enrolled = common::enrolled_image(dir.path(), image);
    let qemu = mrtd(&enrolled, "qemu");
    assert_ne!(qemu, mrtd(image, "qemu"), "the record is measured");
    assert_eq!(qemu, python_mrtd(&enrolled, "qemu"));
}

#[test]
fn with_launch_parameters_it_also_predicts_the_rtmrs() {
    let image = &artefacts().image;
    // The image's ELF payload: RTMR0 holds the TD HOB, given here (a QEMU-like one).
    let dir = tempfile::tempdir().unwrap();
    let hob = dir.path().join("td-hob.bin");
    std::fs::write(&hob, common::qemu_hob(512 << 20)).unwrap();
    let hob = arg(&hob);
    let v = measure(
        image,
        "qemu",
        &["--memory", "512M", "--vcpus", "2", "--td-hob", &hob],
    );
    assert_eq!(v["mrtd"].as_str().unwrap().len(), 96);
    for r in ["rtmr0", "rtmr1", "rtmr2", "rtmr3"] {
        assert_eq!(v[r].as_str().expect(r).len(), 96, "{r}");
    }
    // Without the HOB, RTMR0 is unknown, the others the same.
    let unknown = measure(image, "qemu", &["--memory", "512M", "--vcpus", "2"]);
    assert!(unknown["rtmr0"].is_null(), "{unknown:#}");
    assert!(unknown["rtmr0_unknown"]
        .as_str()
        .unwrap()
        .contains("--td-hob"));
    for r in ["rtmr1", "rtmr2", "rtmr3"] {
        assert_eq!(unknown[r], v[r], "{r}");
    }
    assert_eq!(
        v["launch_params"],
        "firmware=td-shim/0.1.0\nplatform=tdx\nram_bytes=536870912\nvcpus=2\n"
    );
    // MRTD does not depend on the launch parameters.
    assert_eq!(v["mrtd"], measure(image, "qemu", &[])["mrtd"]);
    // The plain platform's RTMR0 differs (platform= and the HOB are measured); RTMR1 does not.
    let plain: Value = serde_json::from_str(&ok(&[
        "measure",
        "--json",
        "--image",
        &arg(image),
        "--memory",
        "512M",
        "--vcpus",
        "2",
    ]))
    .unwrap();
    assert_ne!(plain["rtmr0"], v["rtmr0"]);
    assert_eq!(plain["rtmr1"], v["rtmr1"]);
    assert!(plain.get("mrtd").is_none());
}

#[test]
fn refusals_and_exit_status() {
    let status = |args: &[&str]| tool(args).status.code();
    let dir = tempfile::tempdir().unwrap();
    // No TDVF metadata: exit 1 with a message.
    let junk = dir.path().join("junk.bin");
    std::fs::write(&junk, vec![0u8; 0x10000]).unwrap();
    let out = tool(&["measure", "--platform", "tdx", "--image", &arg(&junk)]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no TDVF metadata"), "{err}");
    assert!(out.stdout.is_empty());
    // A missing file: exit 1.
    assert_eq!(
        status(&["measure", "--platform", "tdx", "--image", "/nonexistent/x"]),
        Some(1)
    );
    // Usage: tdx without --image, --vmm without tdx, --memory without --vcpus, a bad order,
    // --log-out without the launch parameters.
    let image = arg(&junk);
    assert_eq!(status(&["measure", "--platform", "tdx"]), Some(2));
    assert_eq!(
        status(&["measure", "--platform", "tdx", "--kernel", &image]),
        Some(2)
    );
    let tdx = ["measure", "--platform", "tdx", "--image", image.as_str()];
    let with = |extra: &[&str]| {
        let mut v = tdx.to_vec();
        v.extend_from_slice(extra);
        status(&v)
    };
    assert_eq!(with(&["--memory", "512M"]), Some(2));
    assert_eq!(with(&["--vcpus", "2"]), Some(2));
    assert_eq!(with(&["--vmm", "kvm"]), Some(2));
    assert_eq!(with(&["--log-out", "/dev/null"]), Some(2));
    assert_eq!(
        status(&[
            "measure", "--image", &image, "--memory", "512M", "--vcpus", "2", "--vmm", "qemu"
        ]),
        Some(2)
    );
    // Plain still needs the launch parameters; so does refvals, whatever the platform.
    assert_eq!(status(&["measure", "--image", &image]), Some(2));
    assert_eq!(
        status(&["refvals", "--platform", "tdx", "--image", &image]),
        Some(2)
    );
}
