//! `cargo xtask qemu`: boot an image under QEMU TCG with the serial console on stdout, and say
//! what QEMU's exit status means.

use crate::setup;
use anyhow::{Context, Result};
use std::path::Path;
use std::process::Command;

/// The QEMU binary every command runs.
pub const QEMU: &str = "qemu-system-x86_64";
/// QEMU's exit status when the test payload reports success through isa-debug-exit.
pub const PAYLOAD_PASS: i32 = 33;

/// The QEMU command line users know: q35, TCG, serial on stdio, the image as -bios.
pub fn command(image: &Path, memory: &str, extra: &[String]) -> Command {
    let mut c = Command::new(QEMU);
    c.args(["-machine", "q35", "-m", memory, "-nographic", "-no-reboot"])
        .arg("-bios")
        .arg(image)
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        .args(extra);
    c
}

/// Boots `image` with `memory` of RAM and the `extra` QEMU arguments; returns QEMU's exit status.
pub fn boot(image: &Path, memory: &str, extra: &[String]) -> Result<i32> {
    setup::ensure_qemu()?;
    let mut cmd = command(image, memory, extra);
    eprintln!("xtask: running {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {QEMU}"))?;
    let code = status.code().unwrap_or(-1);
    let meaning = match code {
        PAYLOAD_PASS => "the test payload checked everything it was handed: PASS",
        35 => "the test payload found something wrong: FAIL",
        253 => "the firmware took its fatal path",
        _ => "QEMU ended without a verdict",
    };
    eprintln!("xtask: QEMU exited with status {code}: {meaning}");
    Ok(code)
}
