//! `cargo xtask demo`: boot Debian's cloud kernel through td-shim with the guest agent, show its
//! report, and set the guest's measurements beside the host's prediction.

use crate::qemu::{self, QEMU};
use crate::util::{root, run, td_shim_tool};
use crate::{build, kernel, setup};
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::Command;

/// Boots Debian's kernel through td-shim with the agent's initramfs (QEMU direct boot), shows
/// the console, then the agent's report.
pub fn demo() -> Result<()> {
    let image = build::image()?;
    let kernel = kernel::vmlinuz()?;
    setup::ensure_qemu()?;
    let cmdline = "console=ttyS0 panic=-1 quiet";
    let mut cmd = qemu::command(&image, "1G", &["-smp".into(), "2".into()]);
    cmd.arg("-kernel")
        .arg(&kernel)
        .arg("-initrd")
        .arg(build::default_initrd())
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
            .arg(build::default_initrd())
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
