//! What a hostile or unusual VMM can do to a Linux boot, under QEMU TCG with Debian's kernel:
//! every failure after the CC event log starts ends on the fatal path with the error separator
//! recorded, whatever stage it comes from, and machines the firmware cannot serve are refused
//! with a message instead of booting unmeasured.

use sha2::{Digest, Sha384};
use std::time::Duration;
use td_layout::handoff::{qemu_exit_status, DEBUG_EXIT_FIRMWARE_FATAL};
use td_shim::eventlog::extend;
use td_shim::measurement::ERROR_SEPARATOR;
use tests::{artifacts, boot, kernel, Boot};

const TIMEOUT: Duration = Duration::from_secs(120);

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> [u8; 48] {
    let v: Vec<u8> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect();
    v.try_into().expect("48 bytes")
}

fn linux(memory: &str, cmdline: &str, extra: &[&str]) -> Boot {
    let a = artifacts();
    let mut args = vec![
        "-kernel",
        kernel().to_str().unwrap(),
        "-initrd",
        a.initrd.to_str().unwrap(),
        "-append",
        cmdline,
    ];
    args.extend_from_slice(extra);
    let b = boot(&a.image, memory, &args, TIMEOUT);
    println!("{}", b.console);
    b
}

/// The value the firmware printed for `measurement: RTMR{i}` after recording the plan.
fn recorded(b: &Boot, i: usize) -> Option<[u8; 48]> {
    let prefix = format!("td-shim: INFO  measurement: RTMR{i} ");
    b.console
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| unhex(v.trim()))
}

/// Asserts the fatal path ran with `message` and recorded the error separator on top of
/// `before` (the registers when the failure happened).
fn assert_failed_measured(b: &Boot, message: &str, before: [[u8; 48]; 2]) {
    assert!(
        b.console
            .lines()
            .any(|l| l.starts_with("td-shim: FATAL ") && l.contains(message)),
        "expected FATAL ...{message}"
    );
    assert!(!b.said("Linux version"), "the kernel must not run");
    let sep: [u8; 48] = Sha384::digest(ERROR_SEPARATOR).into();
    let expect = before.map(|r| extend(&r, &sep));
    assert!(
        b.said(&format!(
            "td-shim: measurement: error separator recorded; RTMR0 {} RTMR1 {}",
            hex(&expect[0]),
            hex(&expect[1])
        )),
        "error separator on top of the registers at the failure"
    );
    assert_eq!(b.status, Some(qemu_exit_status(DEBUG_EXIT_FIRMWARE_FATAL)));
}

#[test]
fn a_failure_after_the_whole_plan_still_records_the_error_separator() {
    // 3000 characters are more than the kernel's cmdline_size (2047): refused when the boot
    // parameters are built, after the command line was measured. The registers used to stay
    // those of a successful boot.
    let cmdline = format!("console=ttyS0 {}", "x".repeat(3000));
    let b = linux("512M", &cmdline, &[]);
    let before = [
        recorded(&b, 0).expect("the plan was recorded"),
        recorded(&b, 1).expect("the plan was recorded"),
    ];
    assert_failed_measured(&b, "command line", before);
}

#[test]
fn a_failure_before_the_plan_records_the_error_separator_alone() {
    // Without ACPI (q35,acpi=off) the log could not be published to Linux: refused after the
    // log started, before anything was measured.
    let b = linux("512M", "console=ttyS0", &["-machine", "q35,acpi=off"]);
    assert!(recorded(&b, 0).is_none());
    assert_failed_measured(&b, "acpi: the VMM offers no ACPI tables", [[0; 48]; 2]);
}

#[test]
fn a_failure_before_the_log_records_nothing() {
    // Too little RAM for the working memory: the reset code refuses before any RAM is written,
    // so there is no log and no separator.
    let b = linux("4M", "console=ttyS0", &[]);
    assert!(b.said("td-shim: FATAL memory: the VM has less than 8 MiB of RAM"));
    assert!(!b.said("error separator"));
    assert_eq!(b.status, Some(qemu_exit_status(DEBUG_EXIT_FIRMWARE_FATAL)));
}
