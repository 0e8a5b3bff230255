//! What every command uses: the workspace root, cargo, td-shim-tool, and running a program.

use anyhow::{bail, Context, Result};
use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The firmware target.
pub const TARGET: &str = "x86_64-unknown-none";

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("tools/xtask is two levels below the workspace root")
        .to_path_buf()
}

/// The cargo that runs xtask, in the workspace root.
pub fn cargo() -> Command {
    let mut c = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// This workspace's `td-shim-tool`, built if needed.
pub fn td_shim_tool() -> Command {
    let mut c = cargo();
    c.args(["run", "--quiet", "-p", "td-shim-tool", "--"]);
    c
}

/// Runs `cmd` with its output on the console; fails unless it exits with status 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// Runs `cmd` quietly and returns its standard output, or `None` if it cannot start or fails.
pub fn output(cmd: &mut Command) -> Option<String> {
    cmd.output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Whether `program arg` runs and succeeds (e.g. `have("qemu-system-x86_64", "--version")`).
pub fn have(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}
