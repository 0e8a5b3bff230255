//! Developer workflows, reached as `cargo xtask <command>`:
//!
//! - `build`: the firmware and the test payload for x86_64-unknown-none, then
//!   `td-shim-tool build` → `target/images/td-shim.bin`;
//! - `qemu [--image PATH] [--memory SIZE] [-- QEMU ARGS]`: boot an image under QEMU TCG with the
//!   serial console on stdout;
//! - `demo`: build and boot, then say what happened;
//! - `kernel [--series 6.1|6.12]`: fetch Debian's cloud kernel (or name `$SHIM_KERNEL`,
//!   `$SHIM_KERNEL_612`);
//! - `bench [--rounds N]`: time to kernel entry against other firmware;
//! - `fuzz [--seconds N] [TARGET]`: run the fuzz targets;
//! - `ci`: every check CI runs.
//!
//! Each command first installs what is missing: the Rust toolchain, targets and components named
//! in rust-toolchain.toml (through rustup), and QEMU (Debian's `qemu-system-x86`, through apt when
//! running as root, and only if apt removes nothing).

mod bench;
mod build;
mod ci;
mod demo;
mod fuzz;
mod kernel;
mod qemu;
mod setup;
mod util;

use anyhow::Context as _;
use clap::{CommandFactory, Parser, Subcommand};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;

/// Developer workflows for td-shim: build, boot, demo, benchmark, fuzz, and every CI check.
///
/// Each command first installs what is missing: the Rust toolchain, targets and components of
/// rust-toolchain.toml (through rustup), and QEMU (Debian's qemu-system-x86, through apt-get when
/// running as root, and only if apt's simulation shows it removes no package).
#[derive(Parser)]
#[command(name = "xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the firmware and test payload, write target/images/td-shim.bin
    ///
    /// Also builds the guest agent and packs it into target/images/agent-initrd.cpio.gz. Prints
    /// the image's path.
    Build,
    /// Boot an image under QEMU TCG (default: the built image, 256M)
    ///
    /// The serial console goes to stdout. Exits with QEMU's status: 33 the test payload checked
    /// everything it was handed, 35 it found something wrong, 253 the firmware took its fatal
    /// path.
    Qemu {
        /// The image to boot [default: the built image, built first]
        #[arg(long, value_name = "PATH")]
        image: Option<PathBuf>,
        /// Guest RAM, as QEMU's -m takes it
        #[arg(long, value_name = "SIZE", default_value = "256M")]
        memory: String,
        /// More QEMU arguments, after `--`
        #[arg(last = true, value_name = "QEMU ARGS")]
        qemu_args: Vec<String>,
    },
    /// Boot Debian's kernel with the guest agent through td-shim
    ///
    /// Shows the console and the agent's report, then the guest's measurements beside the host's
    /// prediction; writes the expected log, the reference values and a policy to target/demo/.
    Demo,
    /// Fetch Debian's cloud kernel into target/kernel (or print $SHIM_KERNEL)
    ///
    /// Fetched once with apt-get download and cached. Prints the kernel's path. With
    /// `--series 6.12`: Debian's 6.12 cloud kernel into target/kernel/6.12 (or $SHIM_KERNEL_612).
    Kernel {
        /// The kernel series
        #[arg(long, value_name = "SERIES", default_value = kernel::DEFAULT.name,
              value_parser = clap::builder::PossibleValuesParser::new(
                  kernel::SERIES.iter().map(|s| s.name)))]
        series: String,
    },
    /// Time to kernel entry: td-shim vs SeaBIOS, qboot, OVMF
    ///
    /// Boots the same kernel, initrd and command line with each firmware in interleaved rounds
    /// and reports medians and ratios; then times `td-shim-tool measure` against sha384sum over
    /// the same bytes.
    Bench {
        /// Interleaved rounds per firmware
        #[arg(long, value_name = "N", default_value = "7")]
        rounds: NonZeroUsize,
    },
    /// Run the fuzz targets from their corpus
    ///
    /// Each target (or only TARGET) runs for the given seconds; stops at the first crash.
    Fuzz {
        /// Seconds per target
        #[arg(long, value_name = "N", default_value_t = 60,
              value_parser = clap::value_parser!(u64).range(1..))]
        seconds: u64,
        /// Run only this target [default: all]
        target: Option<String>,
    },
    /// Install the SEV-SNP differential test's oracle
    ///
    /// sev-snp-measure (pinned) from PyPI into target/sev-snp-measure-venv, which
    /// tools/td-shim-tool/tests/snp_differential.rs compares `measure --platform snp` with.
    /// `ci` does this before the tests.
    Oracle,
    /// Every check: fmt, clippy (host and firmware), tests, QEMU boots, a short fuzz run
    ///
    /// This is what CI runs (.ci/run).
    Ci,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Cmd::Build) => build::image().map(|image| {
            println!("{}", image.display());
            0
        }),
        Some(Cmd::Qemu {
            image,
            memory,
            qemu_args,
        }) => match image {
            Some(i) => qemu::boot(&i, &memory, &qemu_args),
            None => build::image().and_then(|i| qemu::boot(&i, &memory, &qemu_args)),
        },
        Some(Cmd::Demo) => demo::demo().map(|()| 0),
        Some(Cmd::Kernel { series }) => kernel::series(&series)
            .context("unknown kernel series")
            .and_then(kernel::vmlinuz_of)
            .map(|k| {
                println!("{}", k.display());
                0
            }),
        Some(Cmd::Bench { rounds }) => bench::bench(rounds.get()).map(|()| 0),
        Some(Cmd::Fuzz { seconds, target }) => fuzz::run(seconds, target.as_deref()).map(|()| 0),
        Some(Cmd::Oracle) => setup::ensure_sev_snp_measure().map(|()| {
            println!("{}", setup::sev_snp_measure_venv().display());
            0
        }),
        Some(Cmd::Ci) => ci::ci().map(|()| 0),
        None => Cli::command().print_help().map(|()| 0).map_err(Into::into),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn qemu_takes_its_options_and_everything_after_the_double_dash() {
        let cli =
            Cli::try_parse_from(["xtask", "qemu", "--memory", "5G", "--", "-smp", "2"]).unwrap();
        let Some(Cmd::Qemu {
            image,
            memory,
            qemu_args,
        }) = cli.command
        else {
            panic!("not qemu");
        };
        assert_eq!((image, memory.as_str()), (None, "5G"));
        assert_eq!(qemu_args, ["-smp", "2"]);
        // QEMU's own options need the `--`.
        assert!(Cli::try_parse_from(["xtask", "qemu", "-smp", "2"]).is_err());
    }

    #[test]
    fn kernel_takes_a_known_series_and_defaults_to_6_1() {
        let series = |args: &[&str]| match Cli::try_parse_from(args).map(|c| c.command) {
            Ok(Some(Cmd::Kernel { series })) => Ok(series),
            Ok(_) => panic!("not kernel"),
            Err(e) => Err(e),
        };
        assert_eq!(series(&["xtask", "kernel"]).unwrap(), "6.1");
        assert_eq!(
            series(&["xtask", "kernel", "--series", "6.12"]).unwrap(),
            "6.12"
        );
        assert!(series(&["xtask", "kernel", "--series", "6.2"]).is_err());
    }

    #[test]
    fn bench_and_fuzz_refuse_zero() {
        assert!(Cli::try_parse_from(["xtask", "bench", "--rounds", "0"]).is_err());
        assert!(Cli::try_parse_from(["xtask", "fuzz", "--seconds", "0"]).is_err());
        let cli = Cli::try_parse_from(["xtask", "fuzz", "eventlog"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Cmd::Fuzz { seconds: 60, target: Some(t) }) if t == "eventlog"
        ));
    }
}
