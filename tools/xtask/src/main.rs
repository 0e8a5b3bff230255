//! Developer workflows, reached as `cargo xtask <command>`:
//!
//! - `build`: the firmware and the test payload for x86_64-unknown-none, then
//!   `td-shim-tool build` → `target/images/td-shim.bin`;
//! - `qemu [--image PATH] [--memory SIZE] [-- QEMU ARGS]`: boot an image under QEMU TCG with the
//!   serial console on stdout;
//! - `demo`: build and boot, then say what happened;
//! - `ci`: every check CI runs.
//!
//! Each command first installs what is missing: the Rust toolchain and target named in
//! rust-toolchain.toml (through rustup), and QEMU (Debian's `qemu-system-x86`, through apt when
//! running as root).

use anyhow::{bail, Context, Result};
use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const TARGET: &str = "x86_64-unknown-none";
const QEMU: &str = "qemu-system-x86_64";
/// QEMU's exit status when the test payload reports success through isa-debug-exit.
const PAYLOAD_PASS: i32 = 33;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("tools/xtask is two levels below the workspace root")
        .to_path_buf()
}

fn cargo() -> Command {
    let mut c = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// This workspace's `td-shim-tool`, built if needed.
fn td_shim_tool() -> Command {
    let mut c = cargo();
    c.args(["run", "--quiet", "-p", "td-shim-tool", "--"]);
    c
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn have(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Installs the pinned toolchain with its firmware target if the target is missing.
fn ensure_rust_target() -> Result<()> {
    let sysroot = Command::new("rustc")
        .current_dir(root())
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(sysroot) = sysroot {
        if sysroot.join("lib/rustlib").join(TARGET).exists() {
            return Ok(());
        }
    }
    // `rustup toolchain install` with no name reads rust-toolchain.toml, target included.
    run(Command::new("rustup")
        .current_dir(root())
        .args(["toolchain", "install"]))
    .context("installing the toolchain of rust-toolchain.toml (is rustup on PATH?)")
}

/// Makes sure QEMU is installed: apt-get as root, else a clear message.
fn ensure_qemu() -> Result<()> {
    if have(QEMU, "--version") {
        return Ok(());
    }
    let root_user = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if !root_user {
        bail!("{QEMU} is missing: install Debian's package qemu-system-x86 (sudo apt-get install qemu-system-x86)");
    }
    eprintln!("xtask: installing qemu-system-x86 with apt-get");
    run(Command::new("apt-get").args(["update", "-q"]))?;
    run(Command::new("apt-get")
        .args([
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            "qemu-system-x86",
        ])
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    if !have(QEMU, "--version") {
        bail!("{QEMU} is still missing after installing qemu-system-x86");
    }
    Ok(())
}

fn firmware_dir() -> PathBuf {
    root().join("target").join(TARGET).join("release")
}

/// The kernel for Linux boots: `$SHIM_KERNEL` if set, else Debian's cloud kernel, fetched once
/// with `apt-get download` and extracted with `dpkg-deb` into `target/kernel/`.
fn kernel() -> Result<PathBuf> {
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

/// The default image `build` writes.
fn default_image() -> PathBuf {
    root().join("target/images/td-shim.bin")
}

/// The initramfs `build` writes: the guest agent as /init.
fn default_initrd() -> PathBuf {
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

fn build() -> Result<PathBuf> {
    ensure_rust_target()?;
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

/// The QEMU command line users know: q35, TCG, serial on stdio, the image as -bios.
fn qemu_command(image: &Path, memory: &str, extra: &[String]) -> Command {
    let mut c = Command::new(QEMU);
    c.args(["-machine", "q35", "-m", memory, "-nographic", "-no-reboot"])
        .arg("-bios")
        .arg(image)
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        .args(extra);
    c
}

fn qemu(image: &Path, memory: &str, extra: &[String]) -> Result<i32> {
    ensure_qemu()?;
    let mut cmd = qemu_command(image, memory, extra);
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

/// Boots Debian's kernel through td-shim with the agent's initramfs (QEMU direct boot), shows
/// the console, then the agent's report.
fn demo() -> Result<()> {
    let image = build()?;
    let kernel = kernel()?;
    ensure_qemu()?;
    let cmdline = "console=ttyS0 panic=-1 quiet";
    let mut cmd = qemu_command(&image, "1G", &["-smp".into(), "2".into()]);
    cmd.arg("-kernel")
        .arg(&kernel)
        .arg("-initrd")
        .arg(default_initrd())
        .args(["-append", cmdline]);
    eprintln!("xtask: running {cmd:?}");
    let out = cmd
        .output()
        .with_context(|| format!("cannot start {QEMU}"))?;
    let console = String::from_utf8_lossy(&out.stdout);
    print!("{console}");
    let report = guest_agent::report::find_report(&console)
        .context("the guest agent's report is missing from the console")?;
    println!(
        "demo: td-shim booted {} with {} CPUs and {} MiB; the agent saw the command line {:?} \
         and the initrd {:?}; QEMU exited with {}",
        report.kernel.as_deref().unwrap_or("?"),
        report.cpu_count.unwrap_or(0),
        report.mem_total_kib.unwrap_or(0) / 1024,
        report.cmdline.as_deref().unwrap_or("?"),
        report.initrd_id.as_deref().unwrap_or("(none)"),
        out.status
    );
    if report.cmdline.as_deref() != Some(cmdline) || !out.status.success() {
        bail!("the demo's boot did not go as expected");
    }
    show_prediction(&kernel, cmdline, &report)
}

/// The host's prediction for the demo's boot, from the same inputs, next to what the guest
/// reported; also writes the expected log and the reference values for a KBS.
fn show_prediction(
    kernel: &Path,
    cmdline: &str,
    report: &guest_agent::report::Report,
) -> Result<()> {
    let demo_dir = root().join("target/demo");
    std::fs::create_dir_all(&demo_dir)?;
    let inputs = |c: &mut Command| {
        c.arg("--kernel")
            .arg(kernel)
            .arg("--initrd")
            .arg(default_initrd())
            .args(["--cmdline", cmdline, "--memory", "1G", "--vcpus", "2"]);
    };
    let mut measure = td_shim_tool();
    measure
        .args(["measure", "--json", "--log-out"])
        .arg(demo_dir.join("expected.log"));
    inputs(&mut measure);
    let predicted = measure.output().context("run td-shim-tool measure")?;
    if !predicted.status.success() {
        bail!(
            "td-shim-tool measure failed: {}",
            String::from_utf8_lossy(&predicted.stderr)
        );
    }
    let predicted = String::from_utf8_lossy(&predicted.stdout).into_owned();
    let refvals = demo_dir.join("refvals.json");
    let mut rv = td_shim_tool();
    rv.args(["refvals", "--output"])
        .arg(&refvals)
        .arg("--policy")
        .arg(demo_dir.join("policy.rego"));
    inputs(&mut rv);
    run(&mut rv)?;

    let m = report
        .measurement
        .as_ref()
        .context("the agent's report has no measurements")?;
    println!("\ndemo: RTMRs, guest (replayed log = published registers) and host (td-shim-tool measure):");
    let mut equal = m.rtmrs_match;
    for (i, guest) in m.replayed_rtmrs.iter().enumerate() {
        let host = predicted
            .split(&format!("\"rtmr{i}\": \""))
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("?");
        let same = guest == host && m.platform_rtmrs.as_ref().is_some_and(|p| &p[i] == guest);
        equal &= same;
        println!(
            "  RTMR{i} guest {guest}\n        host  {host}  {}",
            if same { "equal" } else { "DIFFERENT" }
        );
    }
    println!(
        "demo: {} events in the guest's log; the host's expected log: {}",
        m.events,
        demo_dir.join("expected.log").display()
    );
    println!(
        "demo: reference values for a Trustee KBS: {} (policy: {})",
        refvals.display(),
        demo_dir.join("policy.rego").display()
    );
    if !equal {
        bail!("the guest's measurements differ from the host's prediction");
    }
    println!("demo: the guest's evidence equals the host's prediction");
    Ok(())
}

/// One firmware in the benchmark.
struct Firmware {
    name: &'static str,
    bios: PathBuf,
    /// The Debian package that ships it.
    package: &'static str,
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
    let mut child = qemu_command(bios, &format!("{memory_mib}M"), &[])
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
fn bench(rounds: usize) -> Result<()> {
    let image = build()?;
    let kernel = kernel()?;
    let initrd = default_initrd();
    ensure_qemu()?;
    let firmwares = [
        Firmware {
            name: "td-shim",
            bios: image,
            package: "(this project)",
        },
        Firmware {
            name: "SeaBIOS",
            bios: "/usr/share/seabios/bios-256k.bin".into(),
            package: "seabios",
        },
        Firmware {
            name: "qboot",
            bios: "/usr/share/qemu/qboot.rom".into(),
            package: "qemu-system-data",
        },
        Firmware {
            name: "OVMF",
            bios: "/usr/share/ovmf/OVMF.fd".into(),
            package: "ovmf",
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
            let s = time_boot(&f.bios, &kernel, &initrd, memory_mib)?;
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
    let mut measuring: Vec<f64> = samples[0].iter().filter_map(|s| s.measuring_ms).collect();
    if !measuring.is_empty() {
        let bytes = std::fs::metadata(&kernel)?.len() + std::fs::metadata(&initrd)?.len();
        println!(
            "\ntd-shim's measuring under TCG (kernel + initrd, {} bytes): median {:.1} ms",
            bytes,
            median(&mut measuring)
        );
    }
    bench_measure_tool(&kernel, &initrd, rounds)
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

fn ci() -> Result<()> {
    ensure_rust_target()?;
    ensure_qemu()?;
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(cargo().args([
        "clippy",
        "--release",
        "--target",
        TARGET,
        "-p",
        "td-shim",
        "-p",
        "test-payload",
        "--features",
        "td-shim/firmware,test-payload/firmware",
        "--",
        "-D",
        "warnings",
    ]))?;
    build()?;
    kernel()?;
    // Unit tests, property tests, CLI tests and the QEMU boot tests.
    run(cargo().args(["test", "--workspace"]))?;
    Ok(())
}

fn usage() -> &'static str {
    "usage: cargo xtask <command>\n\
     \n\
     commands:\n  \
       build                       build the firmware and test payload, write target/images/td-shim.bin\n  \
       qemu [--image PATH] [--memory SIZE] [-- QEMU ARGS]\n                              \
       boot an image under QEMU TCG (default: the built image, 256M)\n  \
       demo                        boot Debian's kernel with the guest agent through td-shim\n  \
       kernel                      fetch Debian's cloud kernel into target/kernel (or print $SHIM_KERNEL)\n  \
       bench [--rounds N]          time to kernel entry: td-shim vs SeaBIOS, qboot, OVMF\n  \
       ci                          every check: fmt, clippy (host and firmware), tests, QEMU boots"
}

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("build") => build().map(|image| {
            println!("{}", image.display());
            0
        }),
        Some("qemu") => {
            let (ours, extra) = match args.iter().position(|a| a == "--") {
                Some(i) => (&args[1..i], args[i + 1..].to_vec()),
                None => (&args[1..], Vec::new()),
            };
            let mut image = None;
            let mut memory = "256M".to_string();
            let mut it = ours.iter();
            let mut bad = None;
            while let Some(a) = it.next() {
                match (a.as_str(), it.next()) {
                    ("--image", Some(v)) => image = Some(PathBuf::from(v)),
                    ("--memory", Some(v)) => memory = v.clone(),
                    _ => bad = Some(a.clone()),
                }
            }
            match bad {
                Some(a) => Err(anyhow::anyhow!(
                    "unknown or incomplete option {a}\n{}",
                    usage()
                )),
                None => match image {
                    Some(i) => qemu(&i, &memory, &extra),
                    None => build().and_then(|i| qemu(&i, &memory, &extra)),
                },
            }
        }
        Some("demo") => demo().map(|()| 0),
        Some("ci") => ci().map(|()| 0),
        Some("bench") => {
            let rounds = match args.get(1).map(String::as_str) {
                Some("--rounds") => args.get(2).and_then(|n| n.parse().ok()).unwrap_or(0),
                None => 7,
                Some(_) => 0,
            };
            if rounds == 0 {
                Err(anyhow::anyhow!("usage: cargo xtask bench [--rounds N]"))
            } else {
                bench(rounds).map(|()| 0)
            }
        }
        Some("kernel") => kernel().map(|k| {
            println!("{}", k.display());
            0
        }),
        Some("-h" | "--help" | "help") | None => {
            println!("{}", usage());
            Ok(0)
        }
        Some(other) => Err(anyhow::anyhow!("unknown command {other}\n{}", usage())),
    };
    match result {
        Ok(0) => ExitCode::SUCCESS,
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
