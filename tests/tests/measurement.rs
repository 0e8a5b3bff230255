//! Measured boot end to end: what the firmware records in a real Linux boot is exactly what
//! `td-shim-tool measure` predicts from the inputs alone. The guest agent's replay of the CC
//! event log, the emulated registers the firmware publishes, and the host's prediction are all
//! equal, and so is the log itself, byte for byte. Changing one input changes exactly the
//! documented register, and `eventlog diff` names the event. The 6.1 kernel leaves the agent to
//! read the log from `/dev/mem`; Debian's 6.12 kernel (or `$SHIM_KERNEL_612`) exports it as the
//! CCEL sysfs file, and that file holds the predicted log too.

use base64::Engine;
use guest_agent::measurement::{CCEL_DATA, DEV_MEM};
use guest_agent::report::{find_report, Measurement, Report};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tests::{
    artifacts, boot, build_linux_image, check_mp_wakeup, kernel, kernel_612, Boot, MadtAfterBoot,
};

const TIMEOUT: Duration = Duration::from_secs(180);

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("td-shim-measure-{}-{name}", std::process::id()))
}

/// What `td-shim-tool measure` predicts: RTMR0..3 (hex) and the expected log's bytes.
fn predict(
    kernel: &Path,
    initrd: &Path,
    cmdline: &str,
    memory: &str,
    vcpus: &str,
) -> ([String; 4], Vec<u8>) {
    let log = tmp(&format!("expected-{memory}-{vcpus}-{}.log", cmdline.len()));
    let out = Command::new(&artifacts().tool)
        .args(["measure", "--kernel"])
        .arg(kernel)
        .arg("--initrd")
        .arg(initrd)
        .args([
            "--cmdline",
            cmdline,
            "--memory",
            memory,
            "--vcpus",
            vcpus,
            "--json",
            "--log-out",
        ])
        .arg(&log)
        .output()
        .expect("run td-shim-tool measure");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let reg = |i: usize| v[format!("rtmr{i}")].as_str().unwrap().to_string();
    (
        [reg(0), reg(1), reg(2), reg(3)],
        std::fs::read(log).unwrap(),
    )
}

/// Boots Linux through fw_cfg with the agent and returns its measurement report.
fn measured_boot(
    kernel: &Path,
    initrd: &Path,
    cmdline: &str,
    memory: &str,
    vcpus: &str,
) -> Measurement {
    measured_boot_report(kernel, initrd, cmdline, memory, vcpus)
        .1
        .measurement
        .expect("the agent found the measurements")
}

/// [`measured_boot`]'s boot and the agent's whole report, which has no errors.
fn measured_boot_report(
    kernel: &Path,
    initrd: &Path,
    cmdline: &str,
    memory: &str,
    vcpus: &str,
) -> (Boot, Report) {
    let b = boot(
        &artifacts().image,
        memory,
        &[
            "-smp",
            vcpus,
            "-kernel",
            kernel.to_str().unwrap(),
            "-initrd",
            initrd.to_str().unwrap(),
            "-append",
            cmdline,
        ],
        TIMEOUT,
    );
    println!("{}", b.console);
    assert_eq!(b.status, Some(0), "the boot ends in ACPI power-off");
    let report = find_report(&b.console).expect("the agent's report");
    assert_eq!(report.errors, Vec::<String>::new(), "no agent errors");
    (b, report)
}

fn log_bytes(m: &Measurement) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(&m.event_log)
        .expect("base64 log")
}

/// The guest's replay, the platform's registers and the prediction agree, and so do the logs.
fn assert_predicted(m: &Measurement, predicted: &([String; 4], Vec<u8>)) {
    assert_eq!(m.events, 6);
    assert!(
        m.rtmrs_match,
        "replayed registers equal the emulated registers"
    );
    assert_eq!(
        m.replayed_rtmrs.as_slice(),
        predicted.0.as_slice(),
        "replay = prediction"
    );
    assert_eq!(
        m.platform_rtmrs.as_ref(),
        Some(&predicted.0),
        "platform registers = prediction"
    );
    assert_eq!(log_bytes(m), predicted.1, "the log, byte for byte");
}

const CMDLINE: &str = "console=ttyS0 panic=-1 quiet";

#[test]
fn the_guest_sees_what_the_host_predicted_for_two_machine_shapes() {
    let (k, i) = (kernel(), &artifacts().initrd);
    for (memory, vcpus) in [("512M", "2"), ("1G", "1")] {
        let predicted = predict(k, i, CMDLINE, memory, vcpus);
        let m = measured_boot(k, i, CMDLINE, memory, vcpus);
        assert_predicted(&m, &predicted);
        // 6.1 has no CCEL sysfs file.
        assert_eq!(m.log_source, DEV_MEM);
    }
    // The two shapes differ in RTMR0 only.
    let a = predict(k, i, CMDLINE, "512M", "2").0;
    let b = predict(k, i, CMDLINE, "1G", "1").0;
    assert_ne!(a[0], b[0]);
    assert_eq!(a[1..], b[1..]);
}

#[test]
fn linux_6_12_reads_the_predicted_log_from_the_ccel_sysfs_file() {
    let (k, i) = (kernel_612(), &artifacts().initrd);
    let predicted = predict(k, i, CMDLINE, "512M", "2");
    let (b, report) = measured_boot_report(k, i, CMDLINE, "512M", "2");
    // 6.12 clears the MADT's mailbox address after reading it, which the agent reports as such
    // (see `MadtAfterBoot::ClearedByLinux`), without an error.
    check_mp_wakeup(&report, &b, 2, MadtAfterBoot::ClearedByLinux);
    let m = report
        .measurement
        .expect("the agent found the measurements");
    assert_eq!(m.log_source, CCEL_DATA);
    assert_predicted(&m, &predicted);
    // A different kernel is a different RTMR1 only (the launch parameters and the command line
    // are the same).
    let six_one = predict(kernel(), i, CMDLINE, "512M", "2").0;
    assert_eq!(m.replayed_rtmrs[0], six_one[0]);
    assert_ne!(m.replayed_rtmrs[1], six_one[1]);
    assert_eq!(m.replayed_rtmrs[2..], six_one[2..]);
}

fn diff(expected: &[u8], actual: &[u8], name: &str) -> (Option<i32>, String, String) {
    let (e, a) = (tmp(&format!("{name}-e.log")), tmp(&format!("{name}-a.log")));
    std::fs::write(&e, expected).unwrap();
    std::fs::write(&a, actual).unwrap();
    let out = Command::new(&artifacts().tool)
        .args(["eventlog", "diff"])
        .arg(&e)
        .arg(&a)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn changing_one_input_changes_exactly_its_register() {
    let (k, i) = (kernel(), artifacts().initrd.clone());
    let base = predict(k, &i, CMDLINE, "512M", "1");

    // A different command line: RTMR2 only, event 5 (td_cmdline).
    let cmdline = "console=ttyS0 panic=-1 quiet td_shim.test=changed";
    let m = measured_boot(k, &i, cmdline, "512M", "1");
    assert_predicted(&m, &predict(k, &i, cmdline, "512M", "1"));
    assert_eq!(m.replayed_rtmrs[..2], base.0[..2]);
    assert_ne!(m.replayed_rtmrs[2], base.0[2]);
    let (code, out, err) = diff(&base.1, &log_bytes(&m), "cmdline");
    assert_eq!(code, Some(1));
    assert!(
        err.contains("differ at event 5, which changes RTMR2"),
        "{err}"
    );
    assert!(out.contains("td_cmdline"), "{out}");

    // One byte of the kernel's real-mode setup code (not run on a 64-bit boot, so the kernel
    // still boots): RTMR1 only, event 3 (td_kernel).
    let mut bytes = std::fs::read(k).unwrap();
    bytes[0x300] ^= 0xFF;
    let changed_kernel = tmp("kernel");
    std::fs::write(&changed_kernel, &bytes).unwrap();
    let m = measured_boot(&changed_kernel, &i, CMDLINE, "512M", "1");
    assert_predicted(&m, &predict(&changed_kernel, &i, CMDLINE, "512M", "1"));
    assert_eq!(m.replayed_rtmrs[0], base.0[0]);
    assert_ne!(m.replayed_rtmrs[1], base.0[1]);
    assert_eq!(m.replayed_rtmrs[2], base.0[2]);
    let (_, out, err) = diff(&base.1, &log_bytes(&m), "kernel");
    assert!(
        err.contains("differ at event 3, which changes RTMR1"),
        "{err}"
    );
    assert!(out.contains("td_kernel"), "{out}");

    // Four zero bytes appended to the initrd (the kernel's initramfs unpacker skips zero padding
    // between archives, so it still boots): RTMR2 only, event 6 (td_initrd).
    let mut initrd = std::fs::read(&i).unwrap();
    initrd.extend_from_slice(&[0; 4]);
    let changed_initrd = tmp("initrd");
    std::fs::write(&changed_initrd, &initrd).unwrap();
    let m = measured_boot(k, &changed_initrd, CMDLINE, "512M", "1");
    assert_predicted(&m, &predict(k, &changed_initrd, CMDLINE, "512M", "1"));
    assert_eq!(m.replayed_rtmrs[..2], base.0[..2]);
    assert_ne!(m.replayed_rtmrs[2], base.0[2]);
    let (_, out, err) = diff(&base.1, &log_bytes(&m), "initrd");
    assert!(
        err.contains("differ at event 6, which changes RTMR2"),
        "{err}"
    );
    assert!(out.contains("td_initrd"), "{out}");
}

#[test]
fn both_payload_sources_measure_the_same() {
    let a = artifacts();
    let k = kernel();
    let image = build_linux_image("measure-image", CMDLINE);
    let b = boot(&image, "512M", &["-smp", "2"], TIMEOUT);
    println!("{}", b.console);
    let m = find_report(&b.console)
        .expect("report")
        .measurement
        .expect("measurement");
    // Predicted from the kernel file as QEMU's direct boot would give it.
    assert_predicted(&m, &predict(k, &a.initrd, CMDLINE, "512M", "2"));
}
