//! `cargo xtask kernel [--series 6.1|6.12]`: the kernels for Linux boots.

use crate::util::{root, run};
use anyhow::{bail, Context, Result};
use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A series of Debian's cloud kernel the tests boot.
#[derive(Debug, PartialEq, Eq)]
pub struct Series {
    /// What `--series` takes.
    pub name: &'static str,
    /// The metapackage that depends on the series' current ABI package.
    metapackage: &'static str,
    /// How that ABI package's name starts (`linux-image-6.1.`): anything else is refused.
    abi_prefix: &'static str,
    /// The variable that names a kernel file instead.
    pub env: &'static str,
    /// The cache, relative to the workspace root.
    cache: &'static str,
}

/// Bookworm's own kernel, 6.1: what `cargo xtask kernel` fetches without `--series`.
pub const DEFAULT: &Series = &SERIES[0];

/// Every series: 6.1 from bookworm's `linux-image-cloud-amd64`; 6.12 from
/// `linux-image-6.12-cloud-amd64`, which bookworm-security carries (the `linux-6.12` source
/// package Debian ships for bookworm), so it needs no backports entry.
pub const SERIES: [Series; 2] = [
    Series {
        name: "6.1",
        metapackage: "linux-image-cloud-amd64",
        abi_prefix: "linux-image-6.1.",
        env: "SHIM_KERNEL",
        cache: "target/kernel",
    },
    Series {
        name: "6.12",
        metapackage: "linux-image-6.12-cloud-amd64",
        abi_prefix: "linux-image-6.12.",
        env: "SHIM_KERNEL_612",
        cache: "target/kernel/6.12",
    },
];

/// The series named `name`.
pub fn series(name: &str) -> Option<&'static Series> {
    SERIES.iter().find(|s| s.name == name)
}

impl Series {
    /// Whether the ABI package `package` is of this series.
    fn has(&self, package: &str) -> bool {
        package.starts_with(self.abi_prefix)
    }
}

/// The 6.1 kernel (see [`vmlinuz_of`]).
pub fn vmlinuz() -> Result<PathBuf> {
    vmlinuz_of(DEFAULT)
}

/// The kernel of `series`: `$SHIM_KERNEL` (6.1) or `$SHIM_KERNEL_612` (6.12) if set, else
/// Debian's cloud kernel of that series, fetched once with `apt-get download` and extracted with
/// `dpkg-deb` into `target/kernel/` (6.1) or `target/kernel/6.12/`.
pub fn vmlinuz_of(series: &Series) -> Result<PathBuf> {
    if let Ok(path) = env::var(series.env) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!("{}={} is not a file", series.env, path.display());
        }
        return Ok(path);
    }
    let cache = root().join(series.cache);
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
            .args(["depends", series.metapackage])
            .output()
            .context("run apt-cache (is this a Debian machine?)")?;
        Ok(abi_package(&String::from_utf8_lossy(&out.stdout)))
    };
    let package = match depends(false)? {
        Some(p) => p,
        None => {
            depends(true)?.with_context(|| format!("apt-cache knows no {}", series.metapackage))?
        }
    };
    if !series.has(&package) {
        bail!(
            "{} depends on {package}, not a {} kernel",
            series.metapackage,
            series.name
        );
    }
    let package = format!("{package}-unsigned");
    // A directory of this process's own, so that concurrent fetches and leftovers of an
    // interrupted one do not mix; the kernel is renamed into place.
    let work = cache.join(format!("fetch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let fetched = fetch(&package, &work);
    let _ = std::fs::remove_dir_all(&work);
    let staged = fetched?;
    std::fs::rename(&staged, &vmlinuz)?;
    std::fs::write(cache.join("package"), format!("{package}\n"))?;
    eprintln!("xtask: kernel {} from {package}", vmlinuz.display());
    Ok(vmlinuz)
}

/// The ABI package in `apt-cache depends` output: the first `Depends: linux-image-…`.
fn abi_package(depends: &str) -> Option<String> {
    depends
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|p| p.starts_with("linux-image-"))
        .map(str::to_string)
}

/// Downloads `package` into `work`, unpacks it there and returns its kernel, moved to a file
/// beside `work` (so that removing `work` keeps it and renaming it into the cache is atomic).
fn fetch(package: &str, work: &Path) -> Result<PathBuf> {
    run(Command::new("apt-get")
        .current_dir(work)
        .args(["download", "-q", package]))?;
    let deb = std::fs::read_dir(work)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .context("apt-get download left no .deb")?;
    let unpacked = work.join("unpacked");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;
    let boot = std::fs::read_dir(unpacked.join("boot"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .context("the kernel package has no boot/vmlinuz-*")?;
    let staged = work.with_extension("vmlinuz");
    std::fs::copy(&boot, &staged)?;
    Ok(staged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_series_has_its_own_name_variable_and_cache() {
        assert_eq!(DEFAULT.name, "6.1");
        assert_eq!(DEFAULT.env, "SHIM_KERNEL");
        assert_eq!(DEFAULT.cache, "target/kernel");
        let s = series("6.12").unwrap();
        assert_eq!((s.env, s.cache), ("SHIM_KERNEL_612", "target/kernel/6.12"));
        assert_eq!(series("6.2"), None);
        for (i, a) in SERIES.iter().enumerate() {
            for b in &SERIES[i + 1..] {
                assert_ne!(a.env, b.env);
                assert_ne!(a.cache, b.cache);
            }
        }
    }

    #[test]
    fn a_metapackage_resolving_to_another_series_is_recognised() {
        let (old, new) = (DEFAULT, series("6.12").unwrap());
        assert!(old.has("linux-image-6.1.0-57-cloud-amd64"));
        assert!(!old.has("linux-image-6.12.117+deb12-cloud-amd64"));
        assert!(new.has("linux-image-6.12.117+deb12-cloud-amd64"));
        assert!(!new.has("linux-image-6.1.0-57-cloud-amd64"));
        assert!(!new.has("linux-image-6.13.1-cloud-amd64"));
    }

    #[test]
    fn the_abi_package_is_the_first_linux_image_dependency() {
        let out =
            "linux-image-6.12-cloud-amd64\n  Depends: linux-image-6.12.117+deb12-cloud-amd64\n";
        assert_eq!(
            abi_package(out).as_deref(),
            Some("linux-image-6.12.117+deb12-cloud-amd64")
        );
        let out = "linux-image-cloud-amd64\n  Depends: firmware-foo\n  Depends: linux-image-6.1.0-57-cloud-amd64\n";
        assert_eq!(
            abi_package(out).as_deref(),
            Some("linux-image-6.1.0-57-cloud-amd64")
        );
        assert_eq!(abi_package("linux-image-cloud-amd64\n"), None);
    }
}
