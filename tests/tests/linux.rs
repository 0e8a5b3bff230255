//! td-shim boots a real Linux kernel (Debian's cloud kernel, or `$SHIM_KERNEL`) from QEMU's
//! fw_cfg direct boot with the guest agent's initramfs. The agent, running as /init, reports
//! what the kernel saw: exactly the command line and initrd given, every vCPU, the firmware's
//! memory map (RAM above 4 GiB included) and the VMM's ACPI tables, then powers off through ACPI.
//! Kernels that are truncated, not bzImages, or lack a 64-bit entry are refused before they run.
//! Debian's 6.12 cloud kernel (or `$SHIM_KERNEL_612`) is a second kernel, booted once.

use guest_agent::report::{find_report, Report};
use sha2::{Digest, Sha384};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;
use td_layout::handoff::{qemu_exit_status, DEBUG_EXIT_FIRMWARE_FATAL};
use tests::{
    artifacts, boot, build_linux_image, check_mp_wakeup, kernel, kernel_612, Boot, MadtAfterBoot,
    AGENT_INITRD_ID,
};

const TIMEOUT: Duration = Duration::from_secs(180);

fn sha384(bytes: &[u8]) -> [u8; 48] {
    Sha384::digest(bytes).into()
}

fn direct_boot(kernel: &Path, memory: &str, smp: &str, cmdline: &str, extra: &[&str]) -> Boot {
    let a = artifacts();
    let mut args = vec![
        "-smp",
        smp,
        "-kernel",
        kernel.to_str().unwrap(),
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

/// (first, last, kind) from the firmware's `linux: e820` log lines, with the kernel's names.
fn firmware_e820(console: &str) -> BTreeSet<(u64, u64, String)> {
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
            let name = match kind.trim() {
                "1" => "System RAM",
                "2" => "Reserved",
                "3" => "ACPI Tables",
                "4" => "ACPI Non-volatile Storage",
                other => panic!("unexpected E820 type {other}"),
            };
            (p(a), p(b) - 1, name.to_string())
        })
        .collect()
}

/// Boots, then checks everything the agent reports against what was given.
fn boot_and_check(memory: &str, smp: usize) -> Report {
    boot_and_check_with(memory, smp, &[])
}

/// [`boot_and_check`] with more QEMU arguments.
fn boot_and_check_with(memory: &str, smp: usize, extra: &[&str]) -> Report {
    boot_kernel_and_check(kernel(), MadtAfterBoot::Intact, memory, smp, extra)
}

/// [`boot_and_check_with`] for the kernel file `kernel`, which treats the MADT's wakeup
/// structure as `madt` says.
fn boot_kernel_and_check(
    kernel: &Path,
    madt: MadtAfterBoot,
    memory: &str,
    smp: usize,
    extra: &[&str],
) -> Report {
    let cmdline = format!("console=ttyS0 panic=-1 quiet td_shim.test=m{memory}-c{smp}");
    let b = direct_boot(kernel, memory, &smp.to_string(), &cmdline, extra);
    assert!(b.said("linux: direct boot from fw_cfg"));
    let report = find_report(&b.console).expect("the agent's report");
    assert_eq!(report.errors, Vec::<String>::new(), "no agent errors");
    assert_eq!(
        report.cmdline.as_deref(),
        Some(cmdline.as_str()),
        "exact command line"
    );
    assert_eq!(
        report.initrd_id.as_deref(),
        Some(AGENT_INITRD_ID),
        "the initrd given"
    );
    assert_eq!(report.cpu_count, Some(smp), "every vCPU came up");
    for table in ["APIC", "DSDT", "FACP", "FACS"] {
        assert!(
            report.acpi_tables.iter().any(|t| t == table),
            "ACPI table {table}"
        );
    }
    let kernel_map: BTreeSet<_> = report
        .e820
        .iter()
        .map(|e| (e.start, e.end, e.kind.clone()))
        .collect();
    assert_eq!(
        kernel_map,
        firmware_e820(&b.console),
        "the kernel's E820 is the firmware's"
    );
    // What the firmware still uses when the kernel starts is not the kernel's RAM: its data (the
    // IDT) and stack, its code, the page tables CR3 points at, the zero page and the event log.
    for (what, addr) in [
        ("firmware data", 0x10_0000u64),
        ("firmware stack top", 0x17_FFF8),
        ("firmware code", 0x20_0000),
        ("page tables", 0x40_0000),
        ("zero page", 0x19_0000),
        ("event log", 0x1A_0000),
    ] {
        assert!(
            report
                .e820
                .iter()
                .any(|e| e.start <= addr && addr <= e.end && e.kind == "Reserved"),
            "{what} at {addr:#x} is reserved in the kernel's map"
        );
    }
    // With more than one vCPU the APs were parked in the wakeup mailbox, and Linux woke them
    // through it: 6.1 leaves the MADT as it was, and the last AP woken left its APIC ID, the
    // kernel's 64-bit trampoline below 1 MiB and the acknowledgement (Command 0) in the mailbox;
    // 6.12 clears the mailbox's address in the MADT, which the agent reports as such. With one
    // vCPU there is no mailbox.
    check_mp_wakeup(&report, &b, smp, madt);
    // The APs helped accept the RAM (a no-op per page on a plain VM, but the same start-up,
    // split, job and accounting code as under TDX): every vCPU took a share and the shares
    // added up to the whole, which the firmware checks before it says so.
    if smp > 1 {
        assert!(
            b.said(&format!("by {smp} vCPUs (the boot CPU")),
            "acceptance split across {smp} vCPUs"
        );
        assert!(b.said(&format!("mp: {} application processors running", smp - 1)));
    } else {
        assert!(!b.said("vCPUs (the boot CPU"));
    }
    // ACPI power-off ends QEMU with status 0.
    assert!(b.said("reboot: Power down"));
    assert_eq!(b.status, Some(0));
    report
}

#[test]
fn two_vcpus_512m() {
    boot_and_check("512M", 2);
}

#[test]
fn linux_6_12_two_vcpus_512m() {
    // The newer kernel's own ways with the same firmware: its MADT wakeup code wakes the APs
    // from the mailbox, then clears the mailbox's address in the MADT (without fixing the
    // checksum), and the agent reports `cleared_by_os` without an error.
    let r = boot_kernel_and_check(kernel_612(), MadtAfterBoot::ClearedByLinux, "512M", 2, &[]);
    let release = r.kernel.as_deref().unwrap_or_default();
    assert!(release.starts_with("6.12."), "kernel release {release:?}");
    assert!(r.acpi_tables.iter().any(|t| t == "CCEL"));
}

#[test]
fn one_vcpu_128m() {
    let r = boot_and_check("128M", 1);
    assert!(r.mem_total_kib.unwrap() > 64 * 1024);
}

#[test]
fn a_cpu_with_5_level_paging() {
    // `-cpu max` has LA57: the kernel's decompressor switches to 5-level paging through a
    // trampoline in low memory, which the firmware used to map no-execute (the kernel died
    // silently after "entering the kernel"). Ice Lake and later hosts are like this.
    let r = boot_and_check_with("512M", 2, &["-cpu", "max"]);
    assert_eq!(r.cpu_count, Some(2));
}

#[test]
fn four_vcpus_with_ram_above_4g() {
    let r = boot_and_check("5G", 4);
    // q35: 2 GiB below the PCI hole, 3 GiB from 4 GiB up.
    assert!(r
        .e820
        .iter()
        .any(|e| e.start == 1 << 32 && e.end == 0x1_bfff_ffff && e.kind == "System RAM"));
    assert!(r.mem_total_kib.unwrap() > 4 * 1024 * 1024);
}

fn refused(name: &str, bytes: &[u8], message: &str) {
    let path = std::env::temp_dir().join(format!("td-shim-kernel-{name}-{}", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    // No -initrd: QEMU itself refuses an initrd next to a kernel it cannot read as a bzImage, and
    // this test is about what reaches the firmware.
    let k = path.to_str().unwrap();
    let b = boot(
        &artifacts().image,
        "512M",
        &["-kernel", k, "-append", "console=ttyS0"],
        TIMEOUT,
    );
    println!("{}", b.console);
    let fatal = b
        .console
        .lines()
        .find(|l| l.starts_with("td-shim: FATAL linux: bzImage: "))
        .unwrap_or_else(|| panic!("{name}: no FATAL line"));
    assert!(fatal.contains(message), "{name}: {fatal}");
    assert!(!b.said("Linux version"), "{name}: the kernel must not run");
    // Refused before its measurement: both firmware registers end in the error separator alone.
    let one = td_shim::eventlog::extend(&[0; 48], &sha384(&td_shim::measurement::ERROR_SEPARATOR));
    let hex: String = one.iter().map(|b| format!("{b:02x}")).collect();
    assert!(
        b.said(&format!(
            "td-shim: measurement: error separator recorded; RTMR0 {hex} RTMR1 {hex}"
        )),
        "{name}: error separator"
    );
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

#[test]
fn kernel_initrd_and_cmdline_from_the_image() {
    let cmdline = "console=ttyS0 panic=-1 quiet td_shim.test=from-image";
    let image = build_linux_image("from-image", cmdline);
    // No -kernel: the firmware boots what the image carries.
    let b = boot(&image, "512M", &["-smp", "2"], TIMEOUT);
    println!("{}", b.console);
    assert!(b.said("linux: from the image"));
    let report = find_report(&b.console).expect("the agent's report");
    assert_eq!(report.cmdline.as_deref(), Some(cmdline));
    assert_eq!(report.initrd_id.as_deref(), Some(AGENT_INITRD_ID));
    assert_eq!(report.errors, Vec::<String>::new());
    check_mp_wakeup(&report, &b, 2, MadtAfterBoot::Intact);
    assert_eq!(b.status, Some(0));
}
