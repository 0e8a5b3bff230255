//! Shared by the CLI tests: the real artefacts and running the tool.
// Each test file uses a part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

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
