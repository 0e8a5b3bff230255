//! `cargo xtask kernel`: the kernel for Linux boots.

use crate::util::{root, run};
use anyhow::{bail, Context, Result};
use std::env;
use std::path::PathBuf;
use std::process::Command;

/// The kernel for Linux boots: `$SHIM_KERNEL` if set, else Debian's cloud kernel, fetched once
/// with `apt-get download` and extracted with `dpkg-deb` into `target/kernel/`.
pub fn vmlinuz() -> Result<PathBuf> {
    if let Ok(path) = env::var("SHIM_KERNEL") {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!("SHIM_KERNEL={} is not a file", path.display());
        }
        return Ok(path);
    }
    let cache = root().join("target/kernel");
    let vmlinuz = cache.join("vmlinuz");
    if vmlinuz.is_file() {
        return Ok(vmlinuz);
    }
    std::fs::create_dir_all(&cache)?;
    // The metapackage names the current ABI; the unsigned package has the same kernel without
    // the Secure Boot signature.
    let depends = |update: bool| -> Result<Option<String>> {
        if update {
            run(Command::new("apt-get").args(["update", "-q"]))?;
        }
        let out = Command::new("apt-cache")
            .args(["depends", "linux-image-cloud-amd64"])
            .output()
            .context("run apt-cache (is this a Debian machine?)")?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Depends: "))
            .find(|p| p.starts_with("linux-image-"))
            .map(str::to_string))
    };
    let package = match depends(false)? {
        Some(p) => p,
        None => depends(true)?.context("apt-cache knows no linux-image-cloud-amd64")?,
    };
    let package = format!("{package}-unsigned");
    run(Command::new("apt-get")
        .current_dir(&cache)
        .args(["download", "-q", &package]))?;
    let deb = std::fs::read_dir(&cache)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .context("apt-get download left no .deb")?;
    let unpacked = cache.join("unpacked");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;
    let boot = std::fs::read_dir(unpacked.join("boot"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .context("the kernel package has no boot/vmlinuz-*")?;
    std::fs::copy(&boot, &vmlinuz)?;
    std::fs::write(cache.join("package"), format!("{package}\n"))?;
    std::fs::remove_dir_all(&unpacked)?;
    std::fs::remove_file(&deb)?;
    eprintln!("xtask: kernel {} from {package}", vmlinuz.display());
    Ok(vmlinuz)
}
