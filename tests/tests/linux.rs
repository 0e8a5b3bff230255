//! td-shim boots a real Linux kernel (Debian's cloud kernel, or `$SHIM_KERNEL`) from QEMU's
//! fw_cfg direct boot: the kernel gets exactly the command line given, the firmware's memory map,
//! and RAM above 4 GiB; kernels that are truncated, not bzImages, or lack a 64-bit entry are
//! refused before anything runs.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;
use td_layout::handoff::{qemu_exit_status, DEBUG_EXIT_FIRMWARE_FATAL};
use tests::{artifacts, boot, kernel, Boot};

const TIMEOUT: Duration = Duration::from_secs(120);

fn direct_boot(kernel: &Path, memory: &str, cmdline: &str) -> Boot {
    let k = kernel.to_str().unwrap();
    let b = boot(
        &artifacts().image,
        memory,
        &["-kernel", k, "-append", cmdline],
        TIMEOUT,
    );
    println!("{}", b.console);
    b
}

/// (first, last, type) from the firmware's `linux: e820` log lines.
fn firmware_e820(console: &str) -> BTreeSet<(u64, u64, String)> {
    let names = |t: &str| match t {
        "1" => "usable",
        "2" => "reserved",
        "3" => "ACPI data",
        "4" => "ACPI NVS",
        _ => "other",
    };
    console
        .lines()
        .skip_while(|l| !l.contains("linux: e820:"))
        .skip(1)
        .take_while(|l| l.contains("td-shim: INFO    ["))
        .map(|l| {
            let l = l.split('[').nth(1).unwrap();
            let (range, kind) = l.split_once(") type ").unwrap();
            let (a, b) = range.split_once(", ").unwrap();
            let p = |x: &str| u64::from_str_radix(x.trim_start_matches("0x"), 16).unwrap();
            (p(a), p(b) - 1, names(kind.trim()).to_string())
        })
        .collect()
}

/// (first, last, type) from the kernel's `BIOS-e820:` lines.
fn kernel_e820(console: &str) -> BTreeSet<(u64, u64, String)> {
    console
        .lines()
        .filter_map(|l| l.split_once("BIOS-e820: [mem "))
        .map(|(_, r)| r)
        .map(|r| {
            let (range, kind) = r.split_once("] ").unwrap();
            let (a, b) = range.split_once('-').unwrap();
            let p = |x: &str| u64::from_str_radix(x.trim_start_matches("0x"), 16).unwrap();
            (p(a), p(b), kind.trim().to_string())
        })
        .collect()
}

fn assert_linux_ran(b: &Boot, cmdline: &str) {
    assert!(b.said("linux: direct boot from fw_cfg"));
    assert!(b.said("] Linux version "), "the kernel started");
    assert!(
        b.said(&format!("] Command line: {cmdline}\n"))
            || b.said(&format!("] Command line: {cmdline}\r")),
        "the kernel got exactly the command line given"
    );
    let fw = firmware_e820(&b.console);
    assert!(!fw.is_empty());
    assert_eq!(
        kernel_e820(&b.console),
        fw,
        "the kernel's E820 is the firmware's map"
    );
    // Without an initrd the boot ends at the root mount, then panic=-1 reboots and
    // -no-reboot ends QEMU with status 0.
    assert!(b.said("VFS: Unable to mount root fs"));
    assert_eq!(b.status, Some(0));
}

#[test]
fn direct_boot_with_512m() {
    let cmdline = "console=ttyS0 panic=-1 td_shim.test=direct-512m";
    let b = direct_boot(kernel(), "512M", cmdline);
    assert_linux_ran(&b, cmdline);
    // The VMM's ACPI tables sit at the top of low RAM, in ACPI NVS.
    assert!(b.said("BIOS-e820: [mem 0x000000001ffdf000-0x000000001fffffff] ACPI NVS"));
}

#[test]
fn direct_boot_with_128m() {
    let cmdline = "console=ttyS0 panic=-1 td_shim.test=direct-128m";
    let b = direct_boot(kernel(), "128M", cmdline);
    assert_linux_ran(&b, cmdline);
}

#[test]
fn direct_boot_with_ram_above_4g() {
    let cmdline = "console=ttyS0 panic=-1 td_shim.test=direct-5g";
    let b = direct_boot(kernel(), "5G", cmdline);
    assert_linux_ran(&b, cmdline);
    assert!(b.said("BIOS-e820: [mem 0x0000000100000000-0x00000001bfffffff] usable"));
}

fn refused(name: &str, bytes: &[u8], message: &str) {
    let path = std::env::temp_dir().join(format!("td-shim-kernel-{name}-{}", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    let b = direct_boot(&path, "512M", "console=ttyS0");
    let fatal = b
        .console
        .lines()
        .find(|l| l.starts_with("td-shim: FATAL linux: bzImage: "))
        .unwrap_or_else(|| panic!("{name}: no FATAL line"));
    assert!(fatal.contains(message), "{name}: {fatal}");
    assert!(!b.said("Linux version"), "{name}: the kernel must not run");
    assert_eq!(
        b.status,
        Some(qemu_exit_status(DEBUG_EXIT_FIRMWARE_FATAL)),
        "{name}"
    );
}

#[test]
fn broken_kernels_are_refused() {
    let good = std::fs::read(kernel()).unwrap();
    refused("truncated", &good[..4 << 20], "truncated");
    let junk: Vec<u8> = (0..100_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    refused("junk", &junk, "boot flag");
    let mut no64 = good.clone();
    no64[0x236] &= !1;
    refused("no64", &no64, "lack XLF_KERNEL_64");
}
