//! `cargo xtask build`: the firmware and the test payload for x86_64-unknown-none, then
//! `td-shim-tool build` → `target/images/td-shim.bin`; and the guest agent's initramfs.

use crate::setup;
use crate::util::{cargo, root, run, td_shim_tool, TARGET};
use anyhow::Result;
use std::path::PathBuf;

/// Where cargo puts the firmware binaries.
pub fn firmware_dir() -> PathBuf {
    root().join("target").join(TARGET).join("release")
}

/// The default image `build` writes.
pub fn default_image() -> PathBuf {
    root().join("target/images/td-shim.bin")
}

/// The initramfs `build` writes: the guest agent as /init.
pub fn default_initrd() -> PathBuf {
    root().join("target/images/agent-initrd.cpio.gz")
}

/// The identity `build` gives the agent's initramfs (reported back by the agent).
const INITRD_ID: &str = "td-shim-agent";

/// Builds the guest agent as a static binary and packs it into [`default_initrd`].
fn build_initrd() -> Result<PathBuf> {
    run(cargo()
        .env("RUSTFLAGS", guest_agent::STATIC_RUSTFLAGS)
        .args(["build", "--release", "-p", "guest-agent", "--target"])
        .arg(guest_agent::STATIC_TARGET))?;
    let initrd = default_initrd();
    run(td_shim_tool()
        .args(["initramfs", "--agent"])
        .arg(root().join(guest_agent::STATIC_BINARY))
        .args(["--id", INITRD_ID, "--output"])
        .arg(&initrd))?;
    Ok(initrd)
}

/// Builds the firmware and the test payload, lays them into [`default_image`], builds the
/// agent's initramfs, and returns the image's path.
pub fn image() -> Result<PathBuf> {
    setup::ensure_toolchain()?;
    for (package, feature) in [
        ("td-shim", "td-shim/firmware"),
        ("test-payload", "test-payload/firmware"),
    ] {
        run(cargo().args([
            "build",
            "--release",
            "--target",
            TARGET,
            "-p",
            package,
            "--features",
            feature,
        ]))?;
    }
    let image = default_image();
    std::fs::create_dir_all(image.parent().expect("image path has a parent"))?;
    run(td_shim_tool()
        .args(["build", "--firmware"])
        .arg(firmware_dir().join("td-shim"))
        .arg("--payload")
        .arg(firmware_dir().join("test-payload"))
        .arg("--output")
        .arg(&image))?;
    build_initrd()?;
    Ok(image)
}
