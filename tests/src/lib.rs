//! End-to-end test support: building the image once and booting images under QEMU TCG.

use guest_agent::report::Report;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The artefacts `cargo xtask build` produces.
pub struct Artifacts {
    /// The firmware image.
    pub image: PathBuf,
    /// The firmware ELF.
    pub firmware_elf: PathBuf,
    /// The test payload ELF.
    pub payload_elf: PathBuf,
    /// The td-shim-tool binary.
    pub tool: PathBuf,
    /// The guest agent's initramfs (identity [`AGENT_INITRD_ID`]).
    pub initrd: PathBuf,
}

/// The identity `cargo xtask build` gives the agent's initramfs.
pub const AGENT_INITRD_ID: &str = "td-shim-agent";

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is one level below the root")
        .to_path_buf()
}

/// Builds everything once per test process (`cargo xtask build`, a no-op when up to date).
pub fn artifacts() -> &'static Artifacts {
    static BUILT: OnceLock<Artifacts> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(&cargo)
            .current_dir(root())
            .args(["xtask", "build"])
            .stdout(Stdio::null())
            .status()
            .expect("run cargo xtask build");
        assert!(status.success(), "cargo xtask build failed");
        let status = Command::new(&cargo)
            .current_dir(root())
            .args(["build", "--quiet", "-p", "td-shim-tool"])
            .status()
            .expect("build td-shim-tool");
        assert!(status.success(), "building td-shim-tool failed");
        let fw = root().join("target/x86_64-unknown-none/release");
        Artifacts {
            image: root().join("target/images/td-shim.bin"),
            firmware_elf: fw.join("td-shim"),
            payload_elf: fw.join("test-payload"),
            tool: root().join("target/debug/td-shim-tool"),
            initrd: root().join("target/images/agent-initrd.cpio.gz"),
        }
    })
}

/// The kernel for Linux boots (`cargo xtask kernel`: `$SHIM_KERNEL` or Debian's 6.1 cloud
/// kernel), fetched once per test process.
pub fn kernel() -> &'static Path {
    static KERNEL: OnceLock<PathBuf> = OnceLock::new();
    KERNEL.get_or_init(|| xtask_kernel(&[]))
}

/// The second test kernel (`cargo xtask kernel --series 6.12`: `$SHIM_KERNEL_612` or Debian's
/// 6.12 cloud kernel, which has the CCEL sysfs file; configfs-tsm only as modules, which the
/// agent's initramfs does not carry), fetched once per test process.
pub fn kernel_612() -> &'static Path {
    static KERNEL: OnceLock<PathBuf> = OnceLock::new();
    KERNEL.get_or_init(|| xtask_kernel(&["--series", "6.12"]))
}

/// What the kernel leaves of the wakeup structure td-shim adds to the MADT (version 0, mailbox
/// at [`MAILBOX`]), with more than one vCPU.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MadtAfterBoot {
    /// As the firmware wrote it (Linux 6.1).
    Intact,
    /// `MailboxAddress` zeroed in place, the checksum left wrong (Linux 6.12, not 6.1: after
    /// reading a version 0 structure, `acpi_mp_disable_offlining()` in
    /// `arch/x86/kernel/acpi/madt_wakeup.c` clears it so that a kexec'd kernel does not use the
    /// mailbox; a Linux convention, not ACPI's). The agent reports `cleared_by_os` and no error.
    ClearedByLinux,
}

/// The physical address of td-shim's multiprocessor wakeup mailbox.
pub const MAILBOX: u64 = 0x9_E000;

/// Checks the agent's `mp_wakeup` and the firmware's parking line after a boot with `vcpus`
/// vCPUs. With one vCPU there is no mailbox. With more, the firmware parked `vcpus - 1` APs in
/// the mailbox (ACPI NVS in the kernel's map), every vCPU came up (`cpu_count`), and the MADT's
/// version 0 wakeup structure is either intact, with what Linux left in the mailbox (the last
/// AP's APIC ID, its trampoline below 1 MiB, the acknowledgement `Command` 0), or cleared by
/// Linux, which leaves the agent no address to read the mailbox at.
pub fn check_mp_wakeup(report: &Report, b: &Boot, vcpus: usize, madt: MadtAfterBoot) {
    assert_eq!(report.cpu_count, Some(vcpus), "every vCPU came up");
    if vcpus <= 1 {
        assert_eq!(report.mp_wakeup, None, "one vCPU, no mailbox");
        assert!(!b.said("application processors wait"));
        return;
    }
    assert!(
        b.said(&format!(
            "mp: {} application processors wait in the wakeup mailbox at {MAILBOX:#x}",
            vcpus - 1
        )),
        "the firmware's parking line"
    );
    assert!(
        report.e820.iter().any(|e| e.start == MAILBOX
            && e.end == MAILBOX + 0xFFF
            && e.kind == "ACPI Non-volatile Storage"),
        "the mailbox page is ACPI NVS"
    );
    let mp = report
        .mp_wakeup
        .as_ref()
        .unwrap_or_else(|| panic!("{vcpus} vCPUs, no wakeup mailbox in the report"));
    assert_eq!(mp.mailbox_version, 0);
    match madt {
        MadtAfterBoot::Intact => {
            assert!(!mp.cleared_by_os, "{mp:?}");
            assert_eq!(mp.mailbox, MAILBOX);
            assert_eq!(mp.command, Some(0), "acknowledged");
            assert_eq!(
                mp.apic_id.map(|id| id as usize),
                Some(vcpus - 1),
                "the last AP woken"
            );
            assert!(
                mp.wakeup_vector.is_some_and(|v| v > 0 && v < 1 << 20),
                "{:?}",
                mp.wakeup_vector
            );
        }
        MadtAfterBoot::ClearedByLinux => {
            assert!(mp.cleared_by_os, "{mp:?}");
            assert_eq!(mp.mailbox, 0);
            assert_eq!(
                (mp.command, mp.apic_id, mp.wakeup_vector),
                (None, None, None),
                "the mailbox is not read"
            );
        }
    }
}

/// The path `cargo xtask kernel ARGS` prints.
fn xtask_kernel(args: &[&str]) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(root())
        .args(["xtask", "kernel"])
        .args(args)
        .output()
        .expect("run cargo xtask kernel");
    assert!(
        out.status.success(),
        "cargo xtask kernel {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Builds an image carrying the test kernel, the agent's initramfs and `cmdline`
/// (`td-shim-tool build --kernel --initrd --cmdline`) and returns its path.
pub fn build_linux_image(name: &str, cmdline: &str) -> PathBuf {
    let a = artifacts();
    let image = std::env::temp_dir().join(format!("td-shim-{name}-{}.bin", std::process::id()));
    let out = Command::new(&a.tool)
        .args(["build", "--firmware"])
        .arg(&a.firmware_elf)
        .arg("--kernel")
        .arg(kernel())
        .arg("--initrd")
        .arg(&a.initrd)
        .args(["--cmdline", cmdline, "--output"])
        .arg(&image)
        .output()
        .expect("run td-shim-tool build");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    image
}

/// What a QEMU run left behind.
#[derive(Debug)]
pub struct Boot {
    /// QEMU's exit status (`None` if it was killed at the timeout).
    pub status: Option<i32>,
    /// Everything on the serial console.
    pub console: String,
}

impl Boot {
    /// Whether the console has `text`.
    pub fn said(&self, text: &str) -> bool {
        self.console.contains(text)
    }
}

/// Boots `image` with `qemu-system-x86_64 -machine q35 -m MEMORY -nographic -bios IMAGE` and
/// isa-debug-exit, plus `extra`, killing QEMU after `timeout`.
pub fn boot(image: &Path, memory: &str, extra: &[&str], timeout: Duration) -> Boot {
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-machine", "q35", "-m", memory, "-nographic", "-no-reboot"])
        .arg("-bios")
        .arg(image)
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start qemu-system-x86_64 (cargo xtask ci installs it)");
    let mut out = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for qemu") {
            break s.code();
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let console =
        String::from_utf8_lossy(&reader.join().expect("reader thread")).into_owned() + &err;
    Boot { status, console }
}
