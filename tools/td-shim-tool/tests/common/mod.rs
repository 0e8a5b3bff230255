//! Shared by the CLI tests: the real artefacts and running the tool.
// Each test file uses a part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The QEMU-like TD HOB, shared with the crate's unit tests (`#[path]` there).
#[path = "hob.rs"]
mod hob;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The real inputs: Debian's kernel, the agent's initramfs, the firmware ELF, the test payload
/// and the default image.
pub struct Artefacts {
    /// The bzImage (`cargo xtask kernel`: `$SHIM_KERNEL` or Debian's cloud kernel).
    pub kernel: PathBuf,
    /// The guest agent's initramfs (`cargo xtask build`).
    pub initrd: PathBuf,
    /// The firmware ELF (`cargo xtask build`).
    pub firmware: PathBuf,
    /// The test payload, an ELF (`cargo xtask build`).
    pub payload: PathBuf,
    /// The default image, the firmware with the test payload (`cargo xtask build`).
    pub image: PathBuf,
}

fn cargo_xtask(args: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(root())
        .arg("xtask")
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .expect("run cargo xtask");
    assert!(out.status.success(), "cargo xtask {args:?} failed");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The artefacts, built once per test process if they are missing.
pub fn artefacts() -> &'static Artefacts {
    static ARTEFACTS: OnceLock<Artefacts> = OnceLock::new();
    ARTEFACTS.get_or_init(|| {
        let initrd = root().join("target/images/agent-initrd.cpio.gz");
        let firmware = root().join("target/x86_64-unknown-none/release/td-shim");
        let payload = root().join("target/x86_64-unknown-none/release/test-payload");
        let image = root().join("target/images/td-shim.bin");
        if [&initrd, &firmware, &payload, &image]
            .iter()
            .any(|p| !p.is_file())
        {
            cargo_xtask(&["build"]);
        }
        let kernel = PathBuf::from(cargo_xtask(&["kernel"]));
        assert!(kernel.is_file(), "no kernel at {}", kernel.display());
        Artefacts {
            kernel,
            initrd,
            firmware,
            payload,
            image,
        }
    })
}

/// Runs td-shim-tool with `args`.
pub fn tool<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_td-shim-tool"))
        .args(args)
        .output()
        .expect("run td-shim-tool")
}

/// Runs td-shim-tool, requires exit status 0, returns standard output.
pub fn ok<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> String {
    let out = tool(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// `path` as an argument.
pub fn arg(path: &Path) -> String {
    path.to_str().expect("UTF-8 path").to_owned()
}

/// The arguments for a direct boot of the real kernel and initrd with `cmdline` and `memory`.
pub fn direct_boot(cmdline: &str, memory: &str) -> Vec<String> {
    let a = artefacts();
    [
        "--kernel",
        &arg(&a.kernel),
        "--initrd",
        &arg(&a.initrd),
        "--cmdline",
        cmdline,
        "--memory",
        memory,
        "--vcpus",
        "2",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Builds an image carrying the test kernel, the agent's initrd and the command line
/// `console=ttyS0` (`build --kernel --initrd --cmdline`) at `image`.
pub fn build_linux_image(image: &Path) {
    let a = artefacts();
    ok(&[
        "build",
        "--firmware",
        &arg(&a.firmware),
        "--kernel",
        &arg(&a.kernel),
        "--initrd",
        &arg(&a.initrd),
        "--cmdline",
        "console=ttyS0",
        "-o",
        &arg(image),
    ]);
}

pub use hob::qemu_hob;

/// Offset in [`qemu_hob`] of a byte the firmware does not check (the first descriptor's
/// ResourceAttribute): changing it keeps the HOB valid.
pub const HOB_UNCHECKED_BYTE: usize = 56 + 28;

/// A 128-byte table-loader command: `kind`, the `names` (56 bytes each), then `tail`.
pub fn loader_command(kind: u32, names: &[&str], tail: &[u8]) -> Vec<u8> {
    let mut c = kind.to_le_bytes().to_vec();
    for n in names {
        let mut field = [0u8; 56];
        field[..n.len()].copy_from_slice(n.as_bytes());
        c.extend_from_slice(&field);
    }
    c.extend_from_slice(tail);
    c.resize(128, 0);
    c
}

/// ALLOCATE (1): load `name`, aligned to `align`, in `zone` (1 high memory, 2 F segment).
pub fn loader_allocate(name: &str, align: u32, zone: u8) -> Vec<u8> {
    let mut tail = align.to_le_bytes().to_vec();
    tail.push(zone);
    loader_command(1, &[name], &tail)
}

/// ADD_POINTER (2): add `src`'s address to the `size`-byte field at `offset` of `dest`.
pub fn loader_add_pointer(dest: &str, src: &str, offset: u32, size: u8) -> Vec<u8> {
    let mut tail = offset.to_le_bytes().to_vec();
    tail.push(size);
    loader_command(2, &[dest, src], &tail)
}

/// ADD_CHECKSUM (3): set the byte at `offset` of `file` so `[start, start + length)` sums to 0.
pub fn loader_add_checksum(file: &str, offset: u32, start: u32, length: u32) -> Vec<u8> {
    let tail: Vec<u8> = [offset, start, length]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    loader_command(3, &[file], &tail)
}

/// QEMU-like ACPI fw_cfg files: `etc/table-loader` first, then the files it allocates in its
/// ALLOCATE order (which is not name order): tables, the RSDP (F segment), a TPM log.
pub fn qemu_acpi() -> Vec<(String, Vec<u8>)> {
    let mut script = loader_allocate("etc/acpi/tables", 64, 1);
    script.extend(loader_allocate("etc/acpi/rsdp", 16, 2));
    script.extend(loader_add_pointer(
        "etc/acpi/rsdp",
        "etc/acpi/tables",
        16,
        4,
    ));
    script.extend(loader_add_pointer(
        "etc/acpi/rsdp",
        "etc/acpi/tables",
        24,
        8,
    ));
    script.extend(loader_add_checksum("etc/acpi/rsdp", 8, 0, 20));
    script.extend(loader_allocate("etc/tpm/log", 4096, 1));
    let tables: Vec<u8> = (0..0x2000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let mut rsdp = vec![0u8; 36];
    rsdp[..8].copy_from_slice(b"RSD PTR ");
    rsdp[15] = 2;
    rsdp[16..20].copy_from_slice(&0x40u32.to_le_bytes());
    rsdp[24..32].copy_from_slice(&0x80u64.to_le_bytes());
    vec![
        ("etc/table-loader".into(), script),
        ("etc/acpi/tables".into(), tables),
        ("etc/acpi/rsdp".into(), rsdp),
        ("etc/tpm/log".into(), vec![0xFF; 0x100]),
    ]
}

/// Writes `files` under `dir` by fw_cfg name (`dir/etc/acpi/tables`), or with `sysfs` as Linux
/// shows them (`dir/etc/acpi/tables/raw`).
pub fn write_fw_cfg(dir: &Path, files: &[(String, Vec<u8>)], sysfs: bool) {
    for (name, bytes) in files {
        let path = if sysfs {
            dir.join(name).join("raw")
        } else {
            dir.join(name)
        };
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
    }
}

/// Writes the synthetic TD HOB for `ram` bytes and [`qemu_acpi`] under `dir`; returns the
/// arguments `--td-hob FILE --acpi-dir DIR` for them.
pub fn tdx_config_args(dir: &Path, ram: u64) -> Vec<String> {
    let hob = dir.join("td-hob.bin");
    std::fs::write(&hob, qemu_hob(ram)).unwrap();
    let acpi = dir.join("fw_cfg");
    write_fw_cfg(&acpi, &qemu_acpi(), false);
    vec![
        "--td-hob".into(),
        arg(&hob),
        "--acpi-dir".into(),
        arg(&acpi),
    ]
}

/// `image` with a fresh key enrolled (minimum SVN 1), made with `keygen` and `enroll` as a user
/// makes it, written into `dir`.
pub fn enrolled_image(dir: &Path, image: &Path) -> PathBuf {
    let key = dir.join("signing.pem");
    ok(&["keygen", "--out", &arg(&key)]);
    let out = dir.join("enrolled.bin");
    ok(&[
        "enroll",
        "--image",
        &arg(image),
        "--pubkey",
        &arg(&dir.join("signing.pub.pem")),
        "--min-svn",
        "1",
        "-o",
        &arg(&out),
    ]);
    out
}
