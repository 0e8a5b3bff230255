//! `cargo xtask fuzz`: builds the libFuzzer targets of `fuzz/` on the stable toolchain and runs
//! each for a fixed time from its committed seeds.
//!
//! cargo-fuzz needs nightly (for `-Zsanitizer`); this runner does not use it. It builds
//! `fuzz/` with libFuzzer's coverage instrumentation given as stable `-C` flags (no sanitizer:
//! the targets are `forbid(unsafe_code)` Rust built with debug assertions and overflow checks,
//! so a bug shows as a panic, which libFuzzer reports as a crash). The build has its own target
//! directory, `fuzz/target`, and `--target` set to the host so that the instrumentation is not
//! applied to build scripts and proc macros (which would not link).
//!
//! Each target runs with a scratch corpus directory first (where libFuzzer writes what it
//! finds) and the committed seeds `fuzz/corpus/<target>` second, which libFuzzer only reads: the
//! seeds are never polluted. Crashing inputs are written to `fuzz/artifacts/<target>/`, as
//! cargo-fuzz does.

use anyhow::{bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// libFuzzer's coverage instrumentation (what cargo-fuzz passes, less its nightly-only
/// sanitizer flags), plus `--cfg fuzzing` and the checks that turn bugs into panics.
const RUSTFLAGS: &[&str] = &[
    "-Cpasses=sancov-module",
    "-Cllvm-args=-sanitizer-coverage-level=4",
    "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
    "-Cllvm-args=-sanitizer-coverage-pc-table",
    "-Cllvm-args=-sanitizer-coverage-trace-compares",
    "--cfg",
    "fuzzing",
    "-Cdebug-assertions",
    "-Coverflow-checks",
];

/// Memory limit per target process, in MiB.
const RSS_LIMIT_MB: u32 = 2048;
/// An input that runs this many seconds is reported as a hang.
const TIMEOUT_SECONDS: u32 = 30;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("tools/xtask is two levels below the workspace root")
        .to_path_buf()
}

/// The targets: one `fuzz/fuzz_targets/<name>.rs` each, sorted.
fn targets(fuzz: &Path) -> Result<Vec<String>> {
    let dir = fuzz.join("fuzz_targets");
    let mut names = Vec::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "rs") {
            if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                names.push(stem.to_owned());
            }
        }
    }
    names.sort();
    Ok(names)
}

/// The host's target triple, from `rustc -vV`.
fn host_triple() -> Result<String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(&rustc)
        .arg("-vV")
        .output()
        .with_context(|| format!("cannot run {rustc} -vV"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(|h| h.trim().to_owned())
        .context("rustc -vV names no host triple")
}

fn build(root: &Path, fuzz: &Path, triple: &str, only: Option<&str>) -> Result<()> {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root)
        .args(["build", "--release", "--manifest-path"])
        .arg(fuzz.join("Cargo.toml"))
        .args(["--target", triple]);
    match only {
        Some(name) => cmd.args(["--bin", name]),
        None => cmd.arg("--bins"),
    };
    cmd.env("RUSTFLAGS", RUSTFLAGS.join(" "))
        .env("CARGO_TARGET_DIR", fuzz.join("target"))
        // These would take precedence over RUSTFLAGS.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove(format!(
            "CARGO_TARGET_{}_RUSTFLAGS",
            triple.to_uppercase().replace('-', "_")
        ));
    eprintln!("xtask: building the fuzz targets: {cmd:?}");
    let status = cmd.status().context("cannot start cargo")?;
    if !status.success() {
        bail!("building the fuzz targets failed with {status}");
    }
    Ok(())
}

/// What one target's run found.
struct Outcome {
    name: String,
    seconds: f64,
    executions: Option<u64>,
    /// The crashing (or hanging, or out-of-memory) input and libFuzzer's log, if it failed.
    failure: Option<(Option<PathBuf>, PathBuf)>,
}

fn run_target(fuzz: &Path, bin_dir: &Path, name: &str, seconds: u64) -> Result<Outcome> {
    let seeds = fuzz.join("corpus").join(name);
    let scratch = fuzz.join("target").join("smoke-corpus").join(name);
    let artifacts = fuzz.join("artifacts").join(name);
    let log = fuzz
        .join("target")
        .join("smoke-logs")
        .join(format!("{name}.log"));
    if scratch.exists() {
        fs::remove_dir_all(&scratch)
            .with_context(|| format!("cannot clear {}", scratch.display()))?;
    }
    for dir in [&scratch, &artifacts, &log.parent().unwrap().to_path_buf()] {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut cmd = Command::new(bin_dir.join(name));
    cmd.arg(format!("-max_total_time={seconds}"))
        .arg(format!("-rss_limit_mb={RSS_LIMIT_MB}"))
        .arg(format!("-timeout={TIMEOUT_SECONDS}"))
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg("-print_final_stats=1")
        .arg(&scratch);
    if seeds.is_dir() {
        cmd.arg(&seeds);
    }
    let log_file =
        fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
    cmd.stdout(log_file.try_clone()?).stderr(log_file);
    cmd.stdin(Stdio::null());
    eprintln!("xtask: fuzzing {name} for {seconds} s");
    let start = Instant::now();
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {}", bin_dir.join(name).display()))?;
    let elapsed = start.elapsed().as_secs_f64();
    let text = fs::read_to_string(&log).unwrap_or_default();
    let executions = text
        .lines()
        .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
        .and_then(|n| n.trim().parse().ok());
    let failure = (!status.success()).then(|| {
        // libFuzzer: "Test unit written to <path>" after a crash, hang or OOM.
        let input = text
            .lines()
            .find_map(|l| l.split_once("Test unit written to "))
            .map(|(_, p)| PathBuf::from(p.trim()));
        (input, log.clone())
    });
    Ok(Outcome {
        name: name.to_owned(),
        seconds: elapsed,
        executions,
        failure,
    })
}

/// Builds the fuzz targets, then runs every one (or only `only`) for `seconds_per_target`
/// seconds each from its committed seeds. Every target runs even if an earlier one crashed;
/// then this fails, naming each crashing input, the log and the command that reproduces it.
pub fn run(seconds_per_target: u64, only: Option<&str>) -> Result<()> {
    let root = root();
    let fuzz = root.join("fuzz");
    let all = targets(&fuzz)?;
    let selected: Vec<String> = match only {
        Some(name) if all.iter().any(|t| t == name) => vec![name.to_owned()],
        Some(name) => bail!(
            "no fuzz target {name:?}; the targets are: {}",
            all.join(", ")
        ),
        None => all,
    };
    let triple = host_triple()?;
    let started = Instant::now();
    build(&root, &fuzz, &triple, only)?;
    let built = started.elapsed().as_secs_f64();
    let bin_dir = fuzz.join("target").join(&triple).join("release");

    let mut outcomes = Vec::new();
    for name in &selected {
        outcomes.push(run_target(&fuzz, &bin_dir, name, seconds_per_target)?);
    }

    eprintln!("xtask: fuzz build {built:.0} s, then:");
    let mut failed = Vec::new();
    for o in &outcomes {
        let runs = o
            .executions
            .map_or_else(|| "? runs".to_owned(), |n| format!("{n} runs"));
        match &o.failure {
            None => eprintln!("  {:<20} ok      {:>5.1} s  {runs}", o.name, o.seconds),
            Some((input, log)) => {
                eprintln!("  {:<20} FAILED  {:>5.1} s  {runs}", o.name, o.seconds);
                let input = input.as_ref().map_or_else(
                    || "(libFuzzer wrote no input)".to_owned(),
                    |p| p.display().to_string(),
                );
                failed.push(format!(
                    "{}: crashing input {input}\n    log: {}\n    reproduce: {} {input}",
                    o.name,
                    log.display(),
                    bin_dir.join(&o.name).display(),
                ));
            }
        }
    }
    if !failed.is_empty() {
        bail!("fuzz targets failed:\n  {}", failed.join("\n  "));
    }
    Ok(())
}
