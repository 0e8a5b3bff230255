//! The td-shim guest agent: a static Linux binary that runs as `/init` in the initramfs that
//! `td-shim-tool initramfs` packs. As PID 1 it mounts `/proc`, `/sys` and `/dev`, collects what the
//! kernel saw (version, command line, CPUs, memory, ACPI tables, the firmware memory map, the
//! initrd's identifier), the firmware's measurements (the CC event log, replayed and compared
//! with the platform's registers: [`measurement`]) and how the kernel woke the application
//! processors (the ACPI multiprocessor wakeup mailbox: [`mp_wakeup`]), and on TDX a quote (on
//! SEV-SNP an attestation report, read with [`snp_report`]) with the nonce of the kernel command
//! line's `td_shim.nonce` ([`evidence`]), prints it as one JSON
//! document between [`BEGIN_MARKER`] and [`END_MARKER`] on the console, and powers off. Run anywhere else (not PID 1) it only collects and
//! prints, so it can be tried on the host, against the host or, with `--root DIR`, a fake tree.
//!
//! It never panics: every failure is one line `agent: <what failed>: <error>` on stderr, also kept
//! in the report's `errors` array, and the agent goes on with what it can still do.
//!
//! # Building the static binary
//!
//! The initramfs has no dynamic loader or shared libraries, so the binary must be fully static.
//! Static linking is chosen on the command line, for this build only (RUSTFLAGS given with an
//! explicit `--target` reach neither build scripts nor proc-macros, which must stay dynamic):
//!
//! ```text
//! RUSTFLAGS="-C target-feature=+crt-static" cargo build -p guest-agent --release --target x86_64-unknown-linux-gnu
//! ```
//!
//! The binary is then `target/x86_64-unknown-linux-gnu/release/guest-agent`; `file` calls it
//! "statically linked" and `ldd` "not a dynamic executable". The pieces of that command are
//! [`STATIC_RUSTFLAGS`], [`STATIC_TARGET`] and [`STATIC_BINARY`], for tools that run the build.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod acpi;
pub mod collect;
pub mod evidence;
pub mod failure;
pub mod measurement;
pub mod mp_wakeup;
pub mod report;
// The SEV-SNP attestation report parser is td-shim-tool's `snp::report`, compiled here from the
// same file (it needs only `core`, `zerocopy` and `thiserror`): the agent does not depend on
// td-shim-tool, and one parser serves both.
#[path = "../../td-shim-tool/src/snp/report.rs"]
pub mod snp_report;
mod tree;

pub use collect::collect;
pub use failure::Failures;
pub use report::{
    find_report, Evidence, Measurement, MemmapEntry, MpWakeup, Report, SnpReport, SnpTcb,
    BEGIN_MARKER, END_MARKER,
};

/// The `RUSTFLAGS` of the static build (glibc, statically linked).
pub const STATIC_RUSTFLAGS: &str = "-C target-feature=+crt-static";

/// The `--target` of the static build. Naming it keeps `RUSTFLAGS` away from build scripts and
/// proc-macros, which cannot be linked statically.
pub const STATIC_TARGET: &str = "x86_64-unknown-linux-gnu";

/// Where the static build puts the binary, relative to the workspace root.
pub const STATIC_BINARY: &str = "target/x86_64-unknown-linux-gnu/release/guest-agent";
