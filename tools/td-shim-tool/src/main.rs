//! `td-shim-tool`: build td-shim images, inspect firmware images, pack the guest initramfs.
//!
//! Exit status: 0 success, 1 the input was refused or could not be read or written, 2 usage.
#![forbid(unsafe_code)]

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use td_shim_tool::initramfs::{build_initramfs, ExtraFile, DEFAULT_ID};
use td_shim_tool::{
    build::{build_image, Payload},
    inspect::inspect,
};

#[derive(Parser)]
#[command(
    name = "td-shim-tool",
    version,
    about = "Build td-shim firmware images and inspect firmware images"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Lay the firmware ELF, the payload and the TDX metadata into an image ending at 4 GiB.
    Build {
        /// The firmware ELF (target/x86_64-unknown-none/release/td-shim).
        #[arg(long)]
        firmware: PathBuf,
        /// An ELF payload to embed.
        #[arg(long, required_unless_present = "kernel", conflicts_with = "kernel")]
        payload: Option<PathBuf>,
        /// A Linux bzImage to embed (booted with the 64-bit boot protocol).
        #[arg(long)]
        kernel: Option<PathBuf>,
        /// An initrd to embed with the kernel.
        #[arg(long, requires = "kernel")]
        initrd: Option<PathBuf>,
        /// The kernel command line to embed.
        #[arg(long, requires = "kernel")]
        cmdline: Option<String>,
        /// Where to write the image.
        #[arg(short, long)]
        output: PathBuf,
        /// Print the image's description as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print an image's regions, TDX metadata sections and footer table, after validating them.
    Inspect {
        /// The firmware image (ours, upstream td-shim's or OVMF/TDVF's).
        image: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Pack the guest agent as /init into a gzip-compressed newc initramfs (same inputs, same bytes).
    Initramfs {
        /// The guest agent, a static Linux executable; installed as /init, mode 0755.
        #[arg(long)]
        agent: PathBuf,
        /// An extra file SRC:DEST (repeatable); mode 0755 if SRC is executable, else 0644.
        #[arg(long = "file", value_name = "SRC:DEST")]
        files: Vec<ExtraFile>,
        /// The identifier written to /etc/initrd-id, which the agent reports.
        #[arg(long, default_value = DEFAULT_ID)]
        id: String,
        /// Where to write the archive (e.g. initramfs.cpio.gz).
        #[arg(short, long)]
        output: PathBuf,
        /// Print the archive's description as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Writes through a temporary file, so a failed write leaves no partial output.
fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("cannot write {}", path.display()))
}

fn print<T: Serialize>(json: bool, value: &T, text: impl FnOnce() -> String) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        print!("{}", text());
    }
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Build {
            firmware,
            payload,
            kernel,
            initrd,
            cmdline,
            output,
            json,
        } => {
            let fw = read(&firmware)?;
            let (payload_bytes, what) = match (&payload, &kernel) {
                (Some(p), _) => (read(p)?, p.display().to_string()),
                (None, Some(k)) => (read(k)?, k.display().to_string()),
                (None, None) => anyhow::bail!("give --payload or --kernel"),
            };
            let initrd_bytes = initrd.as_deref().map(read).transpose()?;
            let input = if payload.is_some() {
                Payload::Elf(&payload_bytes)
            } else {
                Payload::Linux {
                    kernel: &payload_bytes,
                    initrd: initrd_bytes.as_deref(),
                    cmdline: cmdline.as_deref(),
                }
            };
            let image = build_image(&fw, input).with_context(|| {
                format!(
                    "cannot build an image from {} and {what}",
                    firmware.display()
                )
            })?;
            write(&output, &image)?;
            let report = inspect(&image)?;
            print(json, &report, || {
                format!("wrote {}\n{}", output.display(), report.to_text())
            })
        }
        Command::Inspect { image, json } => {
            let bytes = read(&image)?;
            let report = inspect(&bytes)
                .with_context(|| format!("{} is not a valid firmware image", image.display()))?;
            print(json, &report, || report.to_text())
        }
        Command::Initramfs {
            agent,
            files,
            id,
            output,
            json,
        } => {
            let initramfs = build_initramfs(&agent, &files, &id)?;
            write(&output, &initramfs.archive)?;
            print(json, &initramfs, || {
                format!("wrote {}\n{}", output.display(), initramfs.to_text())
            })
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("td-shim-tool: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
