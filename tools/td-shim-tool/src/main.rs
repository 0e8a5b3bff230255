//! `td-shim-tool`: build td-shim images, inspect firmware images, pack the guest initramfs, read
//! CC event logs.
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
    eventlog,
    inspect::inspect,
};

#[derive(Parser)]
#[command(
    name = "td-shim-tool",
    version,
    about = "Build td-shim firmware images, inspect firmware images and CC event logs"
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
    /// Read a CC event log (the CCEL log area, from any firmware): list it, replay it, or
    /// compare it with another.
    Eventlog {
        #[command(subcommand)]
        command: EventlogCommand,
    },
}

#[derive(Subcommand)]
enum EventlogCommand {
    /// List every event: register, type, SHA-384 digest, data size and what the data says.
    Dump {
        /// The log area's bytes (e.g. /sys/firmware/acpi/tables/data/CCEL).
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Replay the log into RTMR0-3; with --quote, compare them with a TDX quote's (exit 1 if
    /// RTMR0-2, or RTMR3 when the log extends it, differ).
    Replay {
        /// The log area's bytes.
        file: PathBuf,
        /// A TDX quote (version 4) taken in the same boot.
        #[arg(long)]
        quote: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Compare two logs event by event (MR index, type, digest, data) and name the first event
    /// that differs and the registers it changes (exit 1 if the events differ).
    Diff {
        /// The reference log (e.g. the one `measure` predicts).
        expected: PathBuf,
        /// The log to check against it (e.g. the guest's).
        actual: PathBuf,
        /// Print JSON instead of text.
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
        Command::Eventlog {
            command: EventlogCommand::Dump { file, json },
        } => {
            let bytes = read(&file)?;
            let report = eventlog::dump(&bytes)
                .with_context(|| format!("{} is not a valid event log", file.display()))?;
            print(json, &report, || report.to_text())
        }
        Command::Eventlog {
            command: EventlogCommand::Replay { file, quote, json },
        } => {
            let bytes = read(&file)?;
            let quote_bytes = quote.as_deref().map(read).transpose()?;
            let report = eventlog::replay(&bytes, quote_bytes.as_deref())
                .with_context(|| format!("cannot replay {}", file.display()))?;
            print(json, &report, || report.to_text())?;
            let differ = report.mismatches();
            if !differ.is_empty() {
                anyhow::bail!(
                    "{} {}: the log's replay does not match the quote",
                    differ.join(", "),
                    if differ.len() == 1 {
                        "differs"
                    } else {
                        "differ"
                    }
                );
            }
            Ok(())
        }
        Command::Eventlog {
            command:
                EventlogCommand::Diff {
                    expected,
                    actual,
                    json,
                },
        } => {
            let (expected_bytes, actual_bytes) = (read(&expected)?, read(&actual)?);
            let report = eventlog::diff(&expected_bytes, &actual_bytes).with_context(|| {
                format!(
                    "cannot compare {} ({}) with {} ({})",
                    expected.display(),
                    eventlog::EXPECTED,
                    actual.display(),
                    eventlog::ACTUAL
                )
            })?;
            print(json, &report, || report.to_text())?;
            match report.summary() {
                Some(summary) => anyhow::bail!("{summary}"),
                None => Ok(()),
            }
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
