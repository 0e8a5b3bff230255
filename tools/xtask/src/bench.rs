//! `cargo xtask bench`: time from QEMU start to kernel entry, td-shim against SeaBIOS, qboot and
//! OVMF; and `td-shim-tool measure` against `sha384sum`.

use crate::qemu::{self, QEMU};
use crate::util::{cargo, have, root, run};
use crate::{build, kernel, setup};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// One firmware in the benchmark.
struct Firmware {
    name: &'static str,
    bios: PathBuf,
    /// The Debian package that ships it.
    package: &'static str,
    /// The kernel it boots, when not the common one (secure boot: the signed kernel).
    kernel: Option<PathBuf>,
}

/// What one boot took.
struct Sample {
    /// Milliseconds from starting QEMU to the kernel's first serial output.
    to_kernel_ms: f64,
    /// Guest RAM the kernel's E820 does not list as usable, in KiB.
    not_usable_kib: u64,
    /// td-shim only: milliseconds between the console lines that bracket the firmware's
    /// measuring (`linux: initrd at` → `measurement: N events`); serial output is synchronous
    /// under TCG, so their arrival times bound the work between them.
    measuring_ms: Option<f64>,
}

/// Starts QEMU with `bios` and the given kernel, initrd and command line, and times the first
/// line the kernel's decompressor prints (`earlyprintk=serial`); then reads the kernel's E820 and
/// stops QEMU.
fn time_boot(bios: &Path, kernel: &Path, initrd: &Path, memory_mib: u64) -> Result<Sample> {
    use std::io::{BufRead, BufReader};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};
    let cmdline = "console=ttyS0 earlyprintk=serial panic=-1";
    let start = Instant::now();
    let mut child = qemu::command(bios, &format!("{memory_mib}M"), &[])
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", cmdline])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {QEMU}"))?;
    let stdout = child.stdout.take().context("piped stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n').map_while(Result::ok) {
            let text = String::from_utf8_lossy(&line).into_owned();
            if tx.send((Instant::now(), text)).is_err() {
                break;
            }
        }
    });
    let deadline = Duration::from_secs(120);
    let mut entry = None;
    let mut before_measuring = None;
    let mut measuring_ms = None;
    let mut usable_kib = 0u64;
    let result = loop {
        let Ok((at, line)) = rx.recv_timeout(deadline.saturating_sub(start.elapsed())) else {
            break Err(anyhow::anyhow!(
                "{}: no kernel output within {deadline:?}",
                bios.display()
            ));
        };
        if line.contains("td-shim: INFO  linux: initrd at") {
            before_measuring = Some(at);
        }
        if let (Some(b), true) = (
            before_measuring,
            line.contains("td-shim: INFO  measurement: "),
        ) {
            if measuring_ms.is_none() {
                measuring_ms = Some(at.duration_since(b).as_secs_f64() * 1000.0);
            }
        }
        if entry.is_none()
            && (line.contains("Decompressing Linux") || line.contains("Linux version"))
        {
            entry = Some(at.duration_since(start));
        }
        if let Some((_, range)) = line.split_once("BIOS-e820: [mem ") {
            if let Some((r, kind)) = range.split_once("] ") {
                if kind.trim() == "usable" {
                    if let Some((a, b)) = r.split_once('-') {
                        let p = |x: &str| u64::from_str_radix(x.trim_start_matches("0x"), 16);
                        if let (Ok(a), Ok(b)) = (p(a), p(b)) {
                            usable_kib += (b + 1 - a) / 1024;
                        }
                    }
                }
            }
        }
        // The E820 is printed right after "Linux version"; NX is reported after it.
        if line.contains("NX (Execute Disable)") {
            break match entry {
                Some(e) => Ok(Sample {
                    to_kernel_ms: e.as_secs_f64() * 1000.0,
                    not_usable_kib: (memory_mib * 1024).saturating_sub(usable_kib),
                    measuring_ms,
                }),
                None => Err(anyhow::anyhow!("{}: no entry marker", bios.display())),
            };
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Time from QEMU start to kernel entry, td-shim against SeaBIOS, qboot and OVMF booting the
/// same kernel, initrd and command line through fw_cfg; interleaved rounds, medians, ratios.
pub fn bench(rounds: usize) -> Result<()> {
    let image = build::image()?;
    let kernel = kernel::vmlinuz()?;
    let initrd = build::default_initrd();
    setup::ensure_qemu()?;
    let (enrolled, signed) = secure_boot_inputs(&image, &kernel)?;
    let firmwares = [
        Firmware {
            name: "td-shim",
            bios: image,
            package: "(this project)",
            kernel: None,
        },
        Firmware {
            name: "td-shim, secure boot",
            bios: enrolled,
            package: "(this project)",
            kernel: Some(signed),
        },
        Firmware {
            name: "SeaBIOS",
            bios: "/usr/share/seabios/bios-256k.bin".into(),
            package: "seabios",
            kernel: None,
        },
        Firmware {
            name: "qboot",
            bios: "/usr/share/qemu/qboot.rom".into(),
            package: "qemu-system-data",
            kernel: None,
        },
        Firmware {
            name: "OVMF",
            bios: "/usr/share/ovmf/OVMF.fd".into(),
            package: "ovmf",
            kernel: None,
        },
    ];
    for f in &firmwares {
        if !f.bios.is_file() {
            bail!(
                "{} is missing: install Debian's package {}",
                f.bios.display(),
                f.package
            );
        }
    }
    let memory_mib = 1024;
    let mut samples: Vec<Vec<Sample>> = firmwares.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        for (f, out) in firmwares.iter().zip(samples.iter_mut()) {
            let k = f.kernel.as_deref().unwrap_or(&kernel);
            let s = time_boot(&f.bios, k, &initrd, memory_mib)?;
            eprintln!(
                "xtask: bench round {} {:<8} {:>8.1} ms",
                round + 1,
                f.name,
                s.to_kernel_ms
            );
            out.push(s);
        }
    }
    let medians: Vec<f64> = samples
        .iter()
        .map(|v| median(&mut v.iter().map(|s| s.to_kernel_ms).collect::<Vec<_>>()))
        .collect();
    println!(
        "QEMU start to kernel entry, q35, TCG, {memory_mib} MiB, {rounds} interleaved rounds, \
         kernel {}:",
        kernel.display()
    );
    println!("| firmware | median ms | ratio to td-shim | guest RAM not usable (KiB) |");
    println!("|---|---:|---:|---:|");
    for ((f, m), v) in firmwares.iter().zip(&medians).zip(&samples) {
        println!(
            "| {} | {:.1} | {:.2} | {} |",
            f.name,
            m,
            m / medians[0],
            v.last().map_or(0, |s| s.not_usable_kib)
        );
    }
    let bytes = std::fs::metadata(&kernel)?.len() + std::fs::metadata(&initrd)?.len();
    for (f, v) in firmwares.iter().zip(&samples).take(2) {
        let mut measuring: Vec<f64> = v.iter().filter_map(|s| s.measuring_ms).collect();
        if !measuring.is_empty() {
            println!(
                "{}: from `linux: initrd at` to `measurement: N events` under TCG (kernel + \
                 initrd, {} bytes; with secure boot this includes the verification): median \
                 {:.1} ms",
                f.name,
                bytes,
                median(&mut measuring)
            );
        }
    }
    bench_measure_tool(&kernel, &initrd, rounds)
}

/// The secure-boot variant of the benchmark's boot: a key made with `td-shim-tool keygen`,
/// enrolled into a copy of `image`, and `kernel` signed with it, in `target/bench-secure-boot/`.
fn secure_boot_inputs(image: &Path, kernel: &Path) -> Result<(PathBuf, PathBuf)> {
    run(cargo().args(["build", "--release", "-q", "-p", "td-shim-tool"]))?;
    let tool = root().join("target/release/td-shim-tool");
    let dir = root().join("target/bench-secure-boot");
    std::fs::create_dir_all(&dir)?;
    let key = dir.join("signing.pem");
    let (enrolled, signed) = (dir.join("enrolled.bin"), dir.join("vmlinuz.signed"));
    let mut keygen = Command::new(&tool);
    keygen.arg("keygen").arg("--force").arg("--out").arg(&key);
    run(&mut keygen)?;
    let mut enroll = Command::new(&tool);
    enroll
        .arg("enroll")
        .arg("--image")
        .arg(image)
        .arg("--pubkey")
        .arg(dir.join("signing.pub.pem"))
        .args(["--min-svn", "1", "-o"])
        .arg(&enrolled);
    run(&mut enroll)?;
    let mut sign = Command::new(&tool);
    sign.arg("sign")
        .arg("--key")
        .arg(&key)
        .args(["--svn", "1"])
        .arg(kernel)
        .arg("-o")
        .arg(&signed);
    run(&mut sign)?;
    Ok((enrolled, signed))
}

/// `td-shim-tool measure` against `sha384sum` over the same kernel and initrd: one SHA-384 pass
/// over the inputs is the floor, so the ratio says how close the tool gets to it.
fn bench_measure_tool(kernel: &Path, initrd: &Path, rounds: usize) -> Result<()> {
    use std::time::Instant;
    run(cargo().args(["build", "--release", "-q", "-p", "td-shim-tool"]))?;
    let tool = root().join("target/release/td-shim-tool");
    if !have("sha384sum", "--version") {
        bail!("sha384sum is missing: install Debian's package coreutils");
    }
    let time = |cmd: &mut Command| -> Result<f64> {
        let start = Instant::now();
        let out = cmd
            .stdout(std::process::Stdio::null())
            .status()
            .with_context(|| format!("cannot start {cmd:?}"))?;
        if !out.success() {
            bail!("{cmd:?} failed");
        }
        Ok(start.elapsed().as_secs_f64() * 1000.0)
    };
    let (mut tool_ms, mut sum_ms) = (Vec::new(), Vec::new());
    for _ in 0..rounds.max(5) {
        tool_ms.push(time(
            Command::new(&tool)
                .args(["measure", "--memory", "1G", "--vcpus", "2", "--kernel"])
                .arg(kernel)
                .arg("--initrd")
                .arg(initrd),
        )?);
        sum_ms.push(time(Command::new("sha384sum").arg(kernel).arg(initrd))?);
    }
    let bytes = (std::fs::metadata(kernel)?.len() + std::fs::metadata(initrd)?.len()) as f64;
    let (t, s) = (median(&mut tool_ms), median(&mut sum_ms));
    println!(
        "\n| hashing {} bytes | median ms | MB/s | throughput vs sha384sum |",
        bytes as u64
    );
    println!("|---|---:|---:|---:|");
    for (name, ms) in [("td-shim-tool measure", t), ("sha384sum", s)] {
        println!(
            "| {name} | {ms:.1} | {:.0} | {:.2} |",
            bytes / ms / 1000.0,
            s / ms
        );
    }
    Ok(())
}
