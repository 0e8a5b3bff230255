//! Secure boot end to end, under QEMU TCG with Debian's kernel: an image that enrolls a key
//! (`td-shim-tool keygen`, `sign`, `enroll`, as a user makes them) boots a kernel signed by that
//! key through QEMU's `-kernel`, and the guest's replayed registers and log are what
//! `td-shim-tool measure` predicts for that image and file; every other payload is refused
//! before anything of it is measured or run, on the fatal path with the firmware's reason and
//! the error separators, and `measure` refuses it with the same reason.
//!
//! An image without a key booting an unsigned kernel is what every other Linux test does
//! (tests/tests/measurement.rs and linux.rs boot `target/images/td-shim.bin`, whose record is
//! empty), so it is not repeated here.

use base64::Engine;
use guest_agent::report::find_report;
use sha2::{Digest, Sha384};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use td_layout::handoff::{qemu_exit_status, DEBUG_EXIT_FIRMWARE_FATAL, DEBUG_EXIT_PAYLOAD_OK};
use td_layout::signed::enrolled_key_image_offset;
use td_shim::eventlog::extend;
use td_shim::measurement::ERROR_SEPARATOR;
use tests::{artifacts, boot, kernel, Boot};

const TIMEOUT: Duration = Duration::from_secs(180);
const CMDLINE: &str = "console=ttyS0 panic=-1 quiet";
const MEMORY: &str = "512M";

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs td-shim-tool.
fn tool(args: &[&str]) -> Output {
    Command::new(&artifacts().tool)
        .args(args)
        .output()
        .expect("run td-shim-tool")
}

/// Runs td-shim-tool and requires success.
fn tool_ok(args: &[&str]) -> Output {
    let out = tool(args);
    assert!(
        out.status.success(),
        "td-shim-tool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// Everything the tests boot, made once per test process with the CLI.
struct Files {
    /// The built image with key A enrolled, minimum SVN 2.
    image: PathBuf,
    /// The same image with a malformed record (struct_version 2).
    malformed: PathBuf,
    /// The test kernel signed by key A, SVN 3.
    signed: PathBuf,
    /// The signed kernel with one byte of its code flipped.
    flipped: PathBuf,
    /// The test kernel signed by key B, SVN 3.
    other_key: PathBuf,
    /// The test kernel signed by key A, SVN 1 (below the minimum).
    rollback: PathBuf,
    /// An image whose ELF payload is the test payload signed by key A (SVN 2), key A enrolled.
    signed_elf_image: PathBuf,
}

fn files() -> &'static Files {
    static FILES: OnceLock<Files> = OnceLock::new();
    FILES.get_or_init(|| {
        let a = artifacts();
        let dir = std::env::temp_dir().join(format!("td-shim-secure-boot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = |name: &str| dir.join(name);
        let k = s(kernel());
        for key in ["a", "b"] {
            tool_ok(&["keygen", "--out", s(&p(&format!("{key}.pem")))]);
        }
        let sign = |key: &str, svn: &str, input: &str, out: &str| {
            tool_ok(&[
                "sign",
                "--key",
                s(&p(&format!("{key}.pem"))),
                "--svn",
                svn,
                input,
                "-o",
                s(&p(out)),
            ]);
            p(out)
        };
        let enroll = |image: &Path, min: &str, out: &str| {
            tool_ok(&[
                "enroll",
                "--image",
                s(image),
                "--pubkey",
                s(&p("a.pub.pem")),
                "--min-svn",
                min,
                "-o",
                s(&p(out)),
            ]);
            p(out)
        };
        let image = enroll(&a.image, "2", "enrolled.bin");
        let mut bytes = std::fs::read(&image).unwrap();
        bytes[enrolled_key_image_offset() + 0x10] = 2;
        std::fs::write(p("malformed.bin"), bytes).unwrap();
        let signed = sign("a", "3", k, "signed");
        let mut bytes = std::fs::read(&signed).unwrap();
        bytes[0x10_0000] ^= 1;
        std::fs::write(p("flipped"), bytes).unwrap();
        let elf = sign("a", "2", s(&a.payload_elf), "payload.signed");
        tool_ok(&[
            "build",
            "--firmware",
            s(&a.firmware_elf),
            "--payload",
            s(&elf),
            "--output",
            s(&p("elf.bin")),
        ]);
        Files {
            signed_elf_image: enroll(&p("elf.bin"), "2", "elf-enrolled.bin"),
            image,
            malformed: p("malformed.bin"),
            signed,
            flipped: p("flipped"),
            other_key: sign("b", "3", k, "other-key"),
            rollback: sign("a", "1", k, "rollback"),
        }
    })
}

/// `measure --json` for a direct boot of `kernel` with the agent's initramfs, `--image image`:
/// RTMR0..3 and the expected log.
fn predict(image: &Path, kernel: &Path) -> ([String; 4], Vec<u8>, serde_json::Value) {
    let log = image.with_extension(format!(
        "{}.log",
        kernel.file_name().unwrap().to_str().unwrap()
    ));
    let out = tool_ok(&[
        "measure",
        "--image",
        s(image),
        "--kernel",
        s(kernel),
        "--initrd",
        s(&artifacts().initrd),
        "--cmdline",
        CMDLINE,
        "--memory",
        MEMORY,
        "--vcpus",
        "1",
        "--json",
        "--log-out",
        s(&log),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let reg = |i: usize| v[format!("rtmr{i}")].as_str().unwrap().to_string();
    (
        [reg(0), reg(1), reg(2), reg(3)],
        std::fs::read(log).unwrap(),
        v,
    )
}

/// The digest `measure --json` gives the event named `name`.
fn event_digest(v: &serde_json::Value, name: &str) -> String {
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no {name} event"))["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

fn direct_boot(image: &Path, kernel: &Path, initrd: bool) -> Boot {
    let a = artifacts();
    let mut args = vec!["-smp", "1", "-kernel", s(kernel), "-append", CMDLINE];
    if initrd {
        args.extend(["-initrd", s(&a.initrd)]);
    }
    let start = Instant::now();
    let b = boot(image, MEMORY, &args, TIMEOUT);
    println!("{}", b.console);
    println!("boot took {:.2} s", start.elapsed().as_secs_f64());
    b
}

/// The fatal path ran with exactly `td-shim: FATAL secure boot: <reason>`, before anything was
/// measured (both firmware registers hold the error separator alone), the payload never ran,
/// and QEMU ended with the firmware-fatal status.
fn assert_refused(b: &Boot, reason: &str) {
    let fatal: Vec<&str> = b
        .console
        .lines()
        .filter(|l| l.starts_with("td-shim: FATAL "))
        .collect();
    assert_eq!(fatal, [format!("td-shim: FATAL secure boot: {reason}")]);
    assert!(!b.said("Linux version"), "the kernel must not run");
    assert!(!b.said("payload: started"), "the payload must not run");
    assert!(!b.said("measurement: RTMR0"), "nothing was measured");
    let sep: [u8; 48] = Sha384::digest(ERROR_SEPARATOR).into();
    let one = hex(&extend(&[0; 48], &sep));
    assert!(
        b.said(&format!(
            "td-shim: measurement: error separator recorded; RTMR0 {one} RTMR1 {one}"
        )),
        "the error separators alone"
    );
    assert_eq!(b.status, Some(qemu_exit_status(DEBUG_EXIT_FIRMWARE_FATAL)));
}

/// `measure` refuses the same boot with the firmware's reason.
fn assert_host_refuses(image: &Path, kernel: &Path, reason: &str) {
    let out = tool(&[
        "measure",
        "--image",
        s(image),
        "--kernel",
        s(kernel),
        "--memory",
        MEMORY,
        "--vcpus",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("secure boot: {reason} (the firmware refuses")),
        "{err}"
    );
}

#[test]
fn a_signed_kernel_boots_and_the_guest_sees_the_prediction() {
    let f = files();
    let predicted = predict(&f.image, &f.signed);
    let b = direct_boot(&f.image, &f.signed, true);
    assert_eq!(b.status, Some(0), "the boot ends in ACPI power-off");
    let unsigned_len = std::fs::metadata(kernel()).unwrap().len();
    assert!(b.said(&format!(
        "td-shim: INFO  secure boot: kernel of {unsigned_len} bytes verified"
    )));
    let report = find_report(&b.console).expect("the agent's report");
    assert_eq!(report.errors, Vec::<String>::new(), "no agent errors");
    let m = report
        .measurement
        .expect("the agent found the measurements");
    // launch_params, secure_policy, separator | payload_signer, td_payload_svn, kernel,
    // separator | cmdline, initrd.
    assert_eq!(m.events, 9);
    assert!(m.rtmrs_match, "replayed = emulated registers");
    assert_eq!(m.replayed_rtmrs.as_slice(), predicted.0.as_slice());
    assert_eq!(m.platform_rtmrs.as_ref(), Some(&predicted.0));
    let log = base64::engine::general_purpose::STANDARD
        .decode(&m.event_log)
        .unwrap();
    assert_eq!(log, predicted.1, "the log, byte for byte");
    // The kernel is measured without its trailer: the unsigned file's digest, and RTMR2 is the
    // unsigned boot's (the initrd and command line are not signed).
    let out = tool_ok(&[
        "measure",
        "--kernel",
        s(kernel()),
        "--initrd",
        s(&artifacts().initrd),
        "--cmdline",
        CMDLINE,
        "--memory",
        MEMORY,
        "--vcpus",
        "1",
        "--json",
    ]);
    let unsigned: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        event_digest(&predicted.2, "kernel"),
        event_digest(&unsigned, "kernel")
    );
    assert_eq!(predicted.0[2], unsigned["rtmr2"].as_str().unwrap());
    assert_ne!(predicted.0[1], unsigned["rtmr1"].as_str().unwrap());
}

#[test]
fn every_other_kernel_is_refused_before_it_is_measured() {
    let f = files();
    // The other key's hash, as the refusal names it (the key in its trailer).
    let other = std::fs::read(&f.other_key).unwrap();
    let key_at = other.len() - 48 - 96 - 96;
    let other_hash = hex(&Sha384::digest(&other[key_at..key_at + 96])[..8]);
    let cases = [
        (&f.flipped, "the signature does not verify".to_owned()),
        (
            &f.other_key,
            format!(
                "the payload is signed by a key that is not enrolled (SHA-384 {other_hash}...)"
            ),
        ),
        (
            &kernel().to_path_buf(),
            "the payload is not signed (no signature header)".to_owned(),
        ),
        (
            &f.rollback,
            "payload SVN 1 is below the enrolled minimum 2 (rollback)".to_owned(),
        ),
    ];
    for (file, reason) in &cases {
        let b = direct_boot(&f.image, file, true);
        assert_refused(&b, reason);
        assert_host_refuses(&f.image, file, reason);
    }
}

#[test]
fn a_malformed_enrolled_record_is_refused_not_ignored() {
    let f = files();
    let reason = "enrolled key record: version 2 is not supported (1)";
    let b = direct_boot(&f.malformed, &f.signed, false);
    assert_refused(&b, reason);
    assert!(!b.said("secure boot: key"), "no key was read from it");
    assert_host_refuses(&f.malformed, &f.signed, reason);
}

#[test]
fn the_images_elf_payload_is_verified_too() {
    let f = files();
    // The built image's test payload is unsigned: refused once a key is enrolled.
    let b = boot(&f.image, "256M", &[], TIMEOUT);
    println!("{}", b.console);
    assert_refused(&b, "the payload is not signed (no signature header)");
    // Signed, it boots, and the firmware's registers are measure's prediction for the image.
    let b = boot(&f.signed_elf_image, "256M", &[], TIMEOUT);
    println!("{}", b.console);
    assert!(b.said("secure boot: ELF payload of"), "verified");
    assert!(b.said("payload: verdict: PASS"));
    assert_eq!(b.status, Some(qemu_exit_status(DEBUG_EXIT_PAYLOAD_OK)));
    let out = tool_ok(&[
        "measure",
        "--image",
        s(&f.signed_elf_image),
        "--memory",
        "256M",
        "--vcpus",
        "1",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "launch_params",
            "secure_policy",
            "separator",
            "payload_signer",
            "payload_svn",
            "payload",
            "separator"
        ]
    );
    for i in 0..3 {
        let value = v[format!("rtmr{i}")].as_str().unwrap();
        assert!(
            b.said(&format!("td-shim: INFO  measurement: RTMR{i} {value}")),
            "RTMR{i} = prediction"
        );
    }
}
