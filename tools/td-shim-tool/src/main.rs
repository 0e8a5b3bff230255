//! `td-shim-tool`: build td-shim images, inspect firmware images, pack the guest initramfs, read
//! CC event logs, compute a boot's measurements and reference values.
//!
//! Exit status: 0 success, 1 the input was refused or could not be read or written, 2 usage;
//! `verify-signature` has its own: 0 boots, 1 refused, 2 usage or input error.
//! Standard output whose reader has gone (a closed pipe, as after `| head -c1`) ends the
//! command with status 1 and no message; any other output error is status 1 with a message.
//! Inputs are read with size bounds, outputs written without following or removing what lies
//! next to them: see [`td_shim_tool::files`].
#![forbid(unsafe_code)]

use anyhow::{Context, Result};
use clap::{error::ErrorKind, Args, CommandFactory, Parser, Subcommand, ValueEnum};
use serde::Serialize;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use td_layout::handoff::PlatformKind;
use td_shim_tool::initramfs::{build_initramfs, ExtraFile, DEFAULT_ID};
use td_shim_tool::{
    build::{build_image, Payload},
    eventlog,
    files::{self, FileError, Limit},
    inspect::inspect,
    measure::{self, memory::parse_memory, vmm, Measurement, VmmInputs},
    mrtd::{self, PageOrder},
    refvals, secure_boot, snp, verify,
};

#[derive(Parser)]
#[command(
    name = "td-shim-tool",
    version,
    about = "Build td-shim firmware images, inspect firmware images and CC event logs, compute \
             measurements and reference values",
    after_help = "Exit status: 0 success; 1 an input was refused (the message names the rule) or \
                  a file could not be read or written; 2 usage error (verify-signature: 0 the \
                  payload would boot, 1 the firmware would refuse it, 2 usage or input error). \
                  When standard output is a pipe whose reader has gone (`| head -c1`), the command stops and exits 1 \
                  without a message.\n\
                  Inputs are read with size bounds (an event log 16 MiB, a quote 1 MiB, a \
                  firmware image 64 MiB, a kernel or initrd a regular file under 4 GiB). An \
                  output file is written through a new temporary file renamed over it; an \
                  output that is a FIFO or a device is written in place."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Lay the firmware ELF, the payload and the TDX and SEV metadata into an image ending at
    /// 4 GiB (one image for TDX and SEV-SNP).
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
    /// Print an image's regions, TDX metadata sections, SEV metadata and footer table, after
    /// validating them.
    ///
    /// The report always says whether the image passes the TDX loader rules of upstream QEMU
    /// (qemu-tdx) and Cloud Hypervisor (cloud-hypervisor-tdx) and QEMU's SEV-SNP rules
    /// (qemu-snp), and which rule fails.
    Inspect {
        /// The firmware image (ours, upstream td-shim's or OVMF/TDVF's).
        image: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// After the report, exit 1 if the image breaks a rule of this VMM's loader (the
        /// message names the rule). Without it, rule failures are reported and the exit is 0.
        #[arg(long, value_enum, value_name = "VMM")]
        check: Option<td_shim_tool::inspect::Vmm>,
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
    /// Read a CC event log (the CCEL log area, from any firmware): list it, replay it, compare
    /// it with another, or take the TD HOB a td-shim TD measured out of it.
    Eventlog {
        #[command(subcommand)]
        command: EventlogCommand,
    },
    /// Compute the RTMRs and the CC event log td-shim will produce, before any guest runs.
    ///
    /// The events are those of td_shim::measurement::plan_with, the function the firmware runs,
    /// for the payload, launch parameters and (under TDX) VMM configuration given. With --kernel, the payload is what QEMU's direct
    /// boot (-kernel, -initrd, -append) hands the firmware; else it is what the --image's payload
    /// table lists.
    ///
    /// With --platform tdx it also computes MRTD from the --image's TDVF metadata (any TDVF
    /// image: td-shim's or OVMF's), and the RTMRs only if --memory and --vcpus are given. Under
    /// TDX the firmware also measures the TD HOB and (for a Linux boot) QEMU's ACPI fw_cfg files
    /// into RTMR0: RTMR0 is predicted only with --td-hob (and --acpi-dir); without them it is
    /// reported unknown ("rtmr0": null, with "rtmr0_unknown" saying why), RTMR1-3 stay exact,
    /// and --log-out is refused (the expected log's RTMR0 events would be wrong).
    ///
    /// With --platform snp it prints only the AMD SEV-SNP launch digest (hex; --mode seves/sev:
    /// SEV-ES/SEV) of the --image's OVMF-style SEV metadata, booting --kernel/--initrd/--cmdline
    /// if given (QEMU kernel-hashes=on), as sev-snp-measure computes it; --json prints
    /// {"platform", "mode", "launch_digest", "vcpus", "vcpu_sig", "vmm_type", "guest_features",
    /// "firmware_gpa", "firmware_size", "kernel_hashes", "sections"} (docs/sev-measurement.md).
    Measure {
        #[command(flatten)]
        boot: BootInputs,
        #[command(flatten)]
        snp: snp::cli::SnpArgs,
        /// With --platform tdx: the order in which the VMM adds and extends each section's pages
        /// (qemu: per page, as upstream QEMU/KVM; two-pass: all adds, then all extends, as the
        /// QEMU 8.x-era TDX trees). Default qemu.
        #[arg(long, value_enum)]
        vmm: Option<VmmArg>,
        /// Print JSON: {"rtmr0".."rtmr3", "events": [{"index", "mr_index", "register", "type",
        /// "name", "digest", "description"}], "launch_params"}; with --platform tdx also
        /// "mrtd", "vmm", "tdvf_source", "tdvf_offset", "tdvf_sections" (the RTMR keys only
        /// with --memory and --vcpus; "rtmr0" null and "rtmr0_unknown" when RTMR0 cannot be
        /// predicted).
        #[arg(long)]
        json: bool,
        /// Write the expected CC event log (the bytes td-shim writes in its log area), for
        /// `eventlog diff EXPECTED ACTUAL` against a guest's log. Refused (exit 1, nothing
        /// written) when RTMR0 cannot be predicted (--platform tdx without --td-hob or
        /// --acpi-dir).
        #[arg(long, value_name = "FILE")]
        log_out: Option<PathBuf>,
    },
    /// Write the expected measurements as reference values for Trustee's RVPS, and a policy.
    ///
    /// The output is an RVPS message in the "sample" provenance format:
    /// {"version": "0.1.0", "type": "sample", "payload": base64 of {ID: [hex value]}}. The IDs:
    /// td-shim.rtmr0, td-shim.rtmr1, td-shim.rtmr2, td-shim.rtmr3 (the registers);
    /// td-shim.launch_params, td-shim.kernel, td-shim.cmdline, td-shim.initrd (the SHA-384
    /// digests of those events; td-shim.initrd only with an initrd; for an ELF payload,
    /// td-shim.payload instead of kernel, cmdline and initrd).
    ///
    /// With --platform tdx (needs --image): mr_td (MRTD of the --image, in the --vmm page
    /// order) and rtmr_0, rtmr_1, rtmr_2 (RTMR0-2) instead of td-shim.rtmr0-3 (RTMR3 is the
    /// guest OS's); mr_td, rtmr_1 and rtmr_2 are the IDs Trustee's default policy reads. The
    /// event digests as above, plus td-shim.td_hob with --td-hob. rtmr_0 only when RTMR0 can be
    /// predicted (--td-hob, and --acpi-dir for a Linux boot): otherwise it is left out, a note
    /// says so on standard error, and the --policy does not check RTMR0 (it checks the
    /// launch-parameters event only). The --policy then also checks MRTD, the TCB status and
    /// the DEBUG attribute (docs/tdx-measurement.md §8).
    ///
    /// With --platform snp (needs --image, --vcpus and --vcpu-type; the launch as for `measure
    /// --platform snp`, mode snp): snp_launch_measurement (the launch digest, [hex, base64]),
    /// and from --guest-policy (default 0x30000, QEMU's) snp_guest_abi_major,
    /// snp_guest_abi_minor (numbers), snp_single_socket and snp_smt_allowed (booleans): the IDs
    /// Trustee's default SNP policy reads. A guest policy allowing debugging or a migration
    /// agent is refused. The --policy also checks the reported TCB under snp_bootloader,
    /// snp_tee_svn, snp_snp_svn and snp_microcode, which refvals does not write (the host's
    /// firmware: register them yourself) (docs/sev-measurement.md §7).
    Refvals {
        #[command(flatten)]
        boot: BootInputs,
        #[command(flatten)]
        snp: snp::cli::SnpArgs,
        /// With --platform snp: the guest policy the VMM launches with (QEMU sev-snp-guest's
        /// `policy`), 0x-hex or decimal. Default 0x30000.
        #[arg(long, value_name = "POLICY", value_parser = snp::cli::parse_u64)]
        guest_policy: Option<u64>,
        /// With --platform tdx: the VMM's page order for MRTD, as for `measure`. Default qemu.
        #[arg(long, value_enum)]
        vmm: Option<VmmArg>,
        /// The output is always JSON; accepted for symmetry with the other commands.
        #[arg(long)]
        json: bool,
        /// Write the message here instead of standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Also write a Rego attestation policy that accepts exactly these reference values
        /// (its header states the evidence claims it assumes).
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
    },
    /// Check a TDX quote's measurements (the CC event log's replay against its RTMRs, and its
    /// MRTD and RTMRs against expected values) or, with --platform snp, an SEV-SNP attestation
    /// report's launch digest, nonce and guest policy. Measurements only: the quote's signature
    /// and certificate chain are NOT verified, nor the SNP report's signature, VCEK and AMD
    /// certificate chain.
    ///
    /// The quote must be version 4 with TEE type 0x81 (TDX). The log is replayed as `eventlog
    /// replay` does (RTMR0-2 always, RTMR3 if the log extends it); the first register that
    /// differs is named with the events that extend it. The expected values come from
    /// --expected (the JSON `measure --platform tdx --json` prints) or from --mrtd and
    /// --rtmr0..--rtmr3; only those given are compared. A debug TD (TD_ATTRIBUTES bit 0) is a
    /// warning. Exit 0 if everything compared matches, 1 on a mismatch (the message names the
    /// first) or a refused input, 2 on a usage error.
    ///
    /// NOT checked: the quote's signature, attestation key, QE report and PCK certificate
    /// chain, nor the TCB status. Anyone can write a quote that passes this command; trusting
    /// one takes a verifier with Intel's collateral (Trustee's attestation service / KBS, or
    /// another DCAP verifier).
    ///
    /// With --platform snp: --report is the 1184-byte attestation report (version 2 to 5).
    /// Compared, in this order, when given: MEASUREMENT with the expected launch digest
    /// (--expected, the JSON `measure --platform snp --json` prints, or --measurement HEX),
    /// REPORT_DATA with --nonce (zero-padded to 64 bytes), POLICY with --guest-policy. The first
    /// difference is named; exit status as for TDX. A policy that allows debugging or a
    /// migration agent, a VMPL other than 0 or an unsigned report is a warning. NOT checked:
    /// the report's signature (ECDSA P-384 by the VCEK or VLEK), the VCEK's certificate chain
    /// up to AMD's ARK, and whether the TCB is current: anyone can write a report that passes;
    /// trusting one takes a verifier with AMD's certificates (Trustee's SNP verifier, snpguest).
    Verify(verify::VerifyArgs),
    /// Secure boot: make an ECDSA P-384 key pair (private key PKCS#8, public key
    /// SubjectPublicKeyInfo), with `ring`.
    ///
    /// The private key file is created with mode 0600; an existing file is never overwritten
    /// without --force. Prints the key hash (SHA-384 of the point's X ‖ Y) that `enroll` writes
    /// into an image.
    Keygen(secure_boot::cli::KeygenArgs),
    /// Secure boot: append a signature trailer to a payload (ELF or bzImage), so that a
    /// td-shim image that enrolls the key boots it.
    ///
    /// The trailer is the public key (X ‖ Y), the signature (R ‖ S) and a 48-byte header with
    /// the SVN and version, at the very end: a signed bzImage still boots with QEMU -kernel. The
    /// signed message is the header and the payload's SHA-384 (a bzImage's boot-loader fields
    /// zeroed before hashing: the digest the measurement records), 96 bytes.
    /// The output is checked with the firmware's own verification before it is written.
    ///
    /// External signing (an HSM, openssl): `sign --pubkey PUB --print-message --svn N INPUT >
    /// MSG` writes the message; sign it with ECDSA P-384 over SHA-384 (`openssl dgst -sha384
    /// -sign KEY -out SIG MSG`); `sign --pubkey PUB --signature SIG --svn N INPUT -o OUT`
    /// attaches the signature (DER or raw R ‖ S) if it verifies. Give both steps the same --svn
    /// and --payload-version.
    Sign(secure_boot::cli::SignArgs),
    /// Secure boot: write a key's record (SHA-384 of the key, minimum payload SVN) into a copy
    /// of a td-shim image, at file offset 0xF00C00 in the measured metadata page.
    ///
    /// The image must be a td-shim image (16 MiB) whose record is empty or valid (a key already
    /// enrolled is replaced); --remove writes zeros (no key: payloads boot unverified). The
    /// record changes the image's MRTD and SEV-SNP launch digest: compute reference values for
    /// the new image.
    Enroll(secure_boot::cli::EnrollArgs),
    /// Secure boot: say whether the firmware would boot a signed payload, with the firmware's
    /// own verification (td_shim::secure_boot::verify).
    ///
    /// Against --pubkey (and --min-svn, default 0) or the key and minimum SVN an --image
    /// enrolls. Prints the verdict, the payload's SVN and version and the signer's key hash.
    /// Exit status (its own): 0 the payload would boot; 1 the firmware would refuse it (the
    /// message is the firmware's reason, word for word); 2 a usage error or an input that
    /// cannot be used (unreadable file, bad key, an image that enrolls no key or a malformed
    /// record).
    VerifySignature(secure_boot::cli::VerifySignatureArgs),
}

/// The platform of the launch.
#[derive(Clone, Copy, ValueEnum)]
enum PlatformArg {
    /// A VM without a TEE (emulated RTMRs). The only platform td-shim boots on so far.
    Plain,
    /// Intel TDX: `measure` also computes MRTD from the --image's TDVF metadata.
    Tdx,
    /// AMD SEV-SNP: `measure` computes the launch digest of the --image's SEV metadata (only);
    /// `refvals` writes it and the guest policy's fields as reference values.
    Snp,
}

/// The VMM's page order for MRTD (see td_shim_tool::mrtd::PageOrder).
#[derive(Clone, Copy, ValueEnum)]
enum VmmArg {
    /// Per page: TDH.MEM.PAGE.ADD then its 16 TDH.MR.EXTEND (upstream QEMU >= 10.1 on KVM).
    Qemu,
    /// Per section: all TDH.MEM.PAGE.ADD, then all TDH.MR.EXTEND (QEMU 8.x-era TDX trees).
    TwoPass,
}

/// Where the payload comes from: at least one of the two.
#[derive(Args)]
#[group(required = true, multiple = true)]
struct PayloadSource {
    /// A td-shim image (from `build`): the payload is the kernel, initrd and command line, or
    /// the ELF payload, its payload table lists. Not used when --kernel is given: the firmware
    /// boots a kernel given to QEMU (-kernel) instead of the image's payload. Required by
    /// --platform tdx: its TDVF metadata gives MRTD; and by --platform snp.
    #[arg(long, required_if_eq_any([("platform", "tdx"), ("platform", "snp")]))]
    image: Option<PathBuf>,
    /// A Linux bzImage, as given to QEMU's -kernel; takes precedence over --image.
    #[arg(long, value_name = "BZIMAGE")]
    kernel: Option<PathBuf>,
}

/// What a boot's measurements depend on: the payload and the launch parameters.
#[derive(Args)]
struct BootInputs {
    #[command(flatten)]
    source: PayloadSource,
    /// The initrd, as given to QEMU's -initrd.
    #[arg(long, requires = "kernel")]
    initrd: Option<PathBuf>,
    /// The kernel command line, as given to QEMU's -append (default: empty).
    #[arg(long, requires = "kernel")]
    cmdline: Option<String>,
    /// The VM's RAM, as given to QEMU's -m: 512M, 5G, 2048k, 1.5G, or a bare number of MiB
    /// (units B, K, M, G, T, P, E, either case, 1024-based).
    /// Required, except by `measure --platform tdx`, which without it prints MRTD only.
    #[arg(long, value_name = "SIZE", value_parser = parse_memory)]
    memory: Option<u64>,
    /// The number of vCPUs, as given to QEMU's -smp. Required, as --memory is.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=0xFFFF))]
    vcpus: Option<u32>,
    /// The platform the VM runs on: plain (td-shim's only platform so far), or tdx (the
    /// same RTMR plan, with platform=tdx in the launch parameters and the VMM's configuration
    /// in RTMR0, plus MRTD for `measure` and `refvals`), or snp (`measure` and `refvals`: the
    /// SEV-SNP launch digest only; no --memory).
    #[arg(long, value_enum, default_value = "plain")]
    platform: PlatformArg,
    /// With --platform tdx: the TD HOB as the VMM wrote it, either the HOB list alone (as
    /// `eventlog extract-hob` writes it from a TD's log) or the whole TD_HOB region starting
    /// with it (at most 128 KiB). Checked as the firmware checks it (exit 1 if refused); the
    /// list through its end-of-list HOB is measured. Its RAM must equal --memory.
    #[arg(long, value_name = "FILE")]
    td_hob: Option<PathBuf>,
    /// With --platform tdx and a Linux boot: a directory holding QEMU's fw_cfg files under
    /// their fw_cfg names (DIR/etc/table-loader, DIR/etc/acpi/tables, DIR/etc/acpi/rsdp, ...),
    /// or with Linux's layout DIR/NAME/raw (/sys/firmware/qemu_fw_cfg/by_name). The
    /// etc/table-loader script is checked as the firmware checks it and every file its
    /// ALLOCATE commands name is read, in command order (exit 1 naming a missing file).
    #[arg(long, value_name = "DIR")]
    acpi_dir: Option<PathBuf>,
}

/// A usage error (exit status 2), as clap reports one.
fn usage(kind: ErrorKind, message: &str) -> clap::Error {
    Cli::command().error(kind, message)
}

impl Cli {
    /// The usage rules clap cannot state: --memory and --vcpus are required unless
    /// `measure --platform tdx` (MRTD only), where they go together; --vmm, --td-hob and
    /// --acpi-dir need tdx.
    fn check(&self) -> Result<(), clap::Error> {
        if let Some(message) = self.check_snp() {
            return Err(usage(ErrorKind::ArgumentConflict, &message));
        }
        if let Some(message) = self.check_vmm_config() {
            return Err(usage(ErrorKind::ArgumentConflict, message));
        }
        if let Command::Verify(args) = &self.command {
            if let Some(message) = args.usage_error() {
                return Err(usage(ErrorKind::ArgumentConflict, message));
            }
        }
        if let Command::Sign(args) = &self.command {
            if let Some(message) = args.usage_error() {
                return Err(usage(ErrorKind::MissingRequiredArgument, message));
            }
        }
        let (boot, mrtd_only_ok, vmm, log_out) = match &self.command {
            Command::Measure { boot, .. } if matches!(boot.platform, PlatformArg::Snp) => {
                return Ok(())
            }
            Command::Measure {
                boot, vmm, log_out, ..
            } => (
                boot,
                matches!(boot.platform, PlatformArg::Tdx),
                vmm.is_some(),
                log_out.is_some(),
            ),
            Command::Refvals { boot, .. } if matches!(boot.platform, PlatformArg::Snp) => {
                return Ok(())
            }
            Command::Refvals { boot, vmm, .. } => (boot, false, vmm.is_some(), false),
            _ => return Ok(()),
        };
        if vmm && !matches!(boot.platform, PlatformArg::Tdx) {
            return Err(usage(
                ErrorKind::ArgumentConflict,
                "--vmm needs --platform tdx",
            ));
        }
        let given = (boot.memory.is_some(), boot.vcpus.is_some());
        match given {
            (true, true) => Ok(()),
            (false, false) if mrtd_only_ok && !log_out => Ok(()),
            (false, false) if mrtd_only_ok => Err(usage(
                ErrorKind::MissingRequiredArgument,
                "--log-out needs --memory and --vcpus (the RTMRs' event log)",
            )),
            _ if mrtd_only_ok => Err(usage(
                ErrorKind::MissingRequiredArgument,
                "--memory and --vcpus go together (omit both for MRTD only)",
            )),
            (_, _) => Err(usage(
                ErrorKind::MissingRequiredArgument,
                "the following required arguments were not provided: --memory <SIZE> --vcpus <N>",
            )),
        }
    }
}

impl Cli {
    /// The usage rules of --td-hob and --acpi-dir: --platform tdx, with the launch parameters.
    fn check_vmm_config(&self) -> Option<&'static str> {
        let boot = match &self.command {
            Command::Measure { boot, .. } | Command::Refvals { boot, .. } => boot,
            _ => return None,
        };
        if boot.td_hob.is_none() && boot.acpi_dir.is_none() {
            return None;
        }
        match boot.platform {
            PlatformArg::Tdx if boot.memory.is_none() || boot.vcpus.is_none() => Some(
                "--td-hob and --acpi-dir need --memory and --vcpus (they are measured into \
                 RTMR0 after the launch parameters)",
            ),
            PlatformArg::Tdx => None,
            PlatformArg::Plain | PlatformArg::Snp => Some(
                "--td-hob and --acpi-dir need --platform tdx (the plain firmware measures \
                 neither the TD HOB nor the ACPI files)",
            ),
        }
    }

    /// The usage rules of --platform snp (the SEV options need it; it takes no --memory).
    fn check_snp(&self) -> Option<String> {
        match &self.command {
            Command::Measure {
                boot,
                snp,
                vmm,
                log_out,
                ..
            } => match boot.platform {
                PlatformArg::Snp if boot.memory.is_some() => {
                    Some("--platform snp takes no --memory".into())
                }
                PlatformArg::Snp if vmm.is_some() || log_out.is_some() => {
                    Some("--vmm and --log-out are not used by --platform snp".into())
                }
                PlatformArg::Snp => snp.usage_error(boot.vcpus),
                _ if snp.any() => Some(
                    "--mode, --vcpu-type, --vcpu-sig, --vmm-type, --guest-features and \
                     --ovmf-hash need --platform snp"
                        .into(),
                ),
                _ => None,
            },
            Command::Refvals {
                boot,
                snp,
                vmm,
                guest_policy,
                ..
            } => match boot.platform {
                PlatformArg::Snp if boot.memory.is_some() => {
                    Some("--platform snp takes no --memory".into())
                }
                PlatformArg::Snp if vmm.is_some() => {
                    Some("--vmm is not used by --platform snp".into())
                }
                PlatformArg::Snp if snp.mode() != snp::Mode::Snp => Some(
                    "refvals --platform snp writes the SNP launch digest: --mode must be snp"
                        .into(),
                ),
                PlatformArg::Snp => snp.usage_error(boot.vcpus),
                _ if snp.any() || guest_policy.is_some() => Some(
                    "--mode, --vcpu-type, --vcpu-sig, --vmm-type, --guest-features, --ovmf-hash \
                     and --guest-policy need --platform snp"
                        .into(),
                ),
                _ => None,
            },
            _ => None,
        }
    }
}

impl BootInputs {
    /// Reads --td-hob and --acpi-dir.
    fn vmm_inputs(&self) -> Result<VmmInputs> {
        let td_hob = self.td_hob.as_deref().map(vmm::TdHob::read).transpose()?;
        let acpi = match &self.acpi_dir {
            Some(dir) => Some(vmm::read_acpi_dir(dir).with_context(|| {
                format!("cannot read the ACPI fw_cfg files in {}", dir.display())
            })?),
            None => None,
        };
        Ok(VmmInputs { td_hob, acpi })
    }

    /// Reads the inputs and computes the boot's measurements.
    fn measure(&self) -> Result<Measurement> {
        let platform = match self.platform {
            PlatformArg::Plain => PlatformKind::Plain,
            PlatformArg::Tdx => PlatformKind::Tdx,
            PlatformArg::Snp => anyhow::bail!("--platform snp has no RTMR measurements"),
        };
        let (Some(memory), Some(vcpus)) = (self.memory, self.vcpus) else {
            anyhow::bail!("give --memory and --vcpus")
        };
        let params = measure::launch_params(platform, memory, vcpus)?;
        let inputs = self.vmm_inputs()?;
        // The image is read even with --kernel: a key it enrolls puts the prediction in
        // secure-boot mode, as it does the firmware (measure::measure_boot).
        let image_bytes = match &self.source.image {
            Some(image) => Some(read(image, &Limit::TD_SHIM_IMAGE)?),
            None => None,
        };
        let kernel = self
            .source
            .kernel
            .as_deref()
            .map(|kernel| measure::KernelFiles {
                kernel,
                initrd: self.initrd.as_deref(),
                cmdline: self.cmdline.as_deref().unwrap_or("").as_bytes(),
            });
        let what = match (&kernel, &self.source.image) {
            (Some(k), Some(image)) => {
                say(format_args!(
                    "td-shim-tool: note: --kernel given: the payload of {} is not used",
                    image.display()
                ));
                k.kernel
            }
            (Some(k), None) => k.kernel,
            (None, Some(image)) => image.as_path(),
            (None, None) => anyhow::bail!("give --kernel or --image"),
        };
        measure::measure_boot(&params, &inputs, kernel, image_bytes.as_deref())
            .with_context(|| format!("cannot measure a boot of {}", what.display()))
    }
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
    /// Write the TD HOB a td-shim TD measured (its td_hob event in RTMR0) to a file, for
    /// `measure --td-hob`: exit 1 unless the log has exactly one td_hob event, whose data is
    /// what its digest covers and a HOB list the firmware accepts. Trust the file only once the
    /// log has been replayed against a quote (`verify`, `eventlog replay --quote`).
    ExtractHob {
        /// The log area's bytes (e.g. /sys/firmware/acpi/tables/data/CCEL).
        file: PathBuf,
        /// Where to write the HOB list.
        #[arg(short, long)]
        output: PathBuf,
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

/// Writes the expected log, unless its RTMR0 events cannot be predicted.
fn write_log(path: &Path, measurement: &Measurement) -> Result<()> {
    if let Some(why) = &measurement.rtmr0_unknown {
        anyhow::bail!(
            "{} not written: RTMR0 is unknown ({why}), so the expected log's RTMR0 events would \
             be wrong",
            path.display()
        );
    }
    write(path, &measurement.log)
}

fn read(path: &Path, limit: &Limit) -> Result<Vec<u8>> {
    Ok(files::read(path, limit)?)
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(files::write(path, bytes)?)
}

fn print<T: Serialize>(json: bool, value: &T, text: impl FnOnce() -> String) -> Result<()> {
    let out = if json {
        let mut s = serde_json::to_string_pretty(value)?;
        s.push('\n');
        s
    } else {
        text()
    };
    Ok(files::write_stdout(out.as_bytes())?)
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
            let fw = read(&firmware, &Limit::FIRMWARE_ELF)?;
            let embedded = Limit::EMBEDDED_PAYLOAD;
            let (payload_bytes, what) = match (&payload, &kernel) {
                (Some(p), _) => (read(p, &embedded)?, p.display().to_string()),
                (None, Some(k)) => (read(k, &embedded)?, k.display().to_string()),
                (None, None) => anyhow::bail!("give --payload or --kernel"),
            };
            let initrd_bytes = initrd.as_deref().map(|i| read(i, &embedded)).transpose()?;
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
        Command::Inspect { image, json, check } => {
            let bytes = read(&image, &Limit::FIRMWARE_IMAGE)?;
            let report = inspect(&bytes)
                .with_context(|| format!("{} is not a valid firmware image", image.display()))?;
            print(json, &report, || report.to_text())?;
            match check {
                Some(vmm) => Ok(report.require(vmm)?),
                None => Ok(()),
            }
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
        Command::Measure {
            boot,
            snp,
            vmm,
            json,
            log_out,
        } => {
            if let (PlatformArg::Snp, Some(image)) = (boot.platform, &boot.source.image) {
                // The image (read, and its page hashes) does not depend on the kernel: it is
                // done on its own thread while the kernel and initrd are read and hashed (the
                // chain itself is sequential).
                let (image_pages, params) = std::thread::scope(|scope| {
                    let image_pages =
                        scope.spawn(|| snp::read_image_pages(image, &Limit::FIRMWARE_IMAGE));
                    let params = snp.params(
                        boot.vcpus,
                        boot.source.kernel.as_deref(),
                        boot.initrd.as_deref(),
                        boot.cmdline.as_deref(),
                    );
                    let image_pages = image_pages
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                    (image_pages, params)
                });
                let (bytes, pages) = image_pages?;
                let params = params?;
                let report =
                    snp::report_with(&bytes, &params, Some(&pages)).with_context(|| {
                        format!("cannot compute the launch digest of {}", image.display())
                    })?;
                return print(json, &report, || report.to_text());
            }
            if let (PlatformArg::Tdx, Some(image)) = (boot.platform, &boot.source.image) {
                let order = match vmm {
                    Some(VmmArg::TwoPass) => PageOrder::TwoPass,
                    Some(VmmArg::Qemu) | None => PageOrder::Qemu,
                };
                let bytes = read(image, &Limit::FIRMWARE_IMAGE)?;
                let mrtd = mrtd::report(&bytes, order)
                    .with_context(|| format!("cannot compute the MRTD of {}", image.display()))?;
                let mut rtmrs = None;
                if boot.memory.is_some() {
                    let measurement = boot.measure()?;
                    if let Some(path) = &log_out {
                        write_log(path, &measurement)?;
                    }
                    rtmrs = Some(measurement.report());
                }
                let report = mrtd::TdxReport { mrtd, rtmrs };
                return print(json, &report, || report.to_text());
            }
            let measurement = boot.measure()?;
            if let Some(path) = &log_out {
                write_log(path, &measurement)?;
            }
            let report = measurement.report();
            print(json, &report, || report.to_text())
        }
        Command::Refvals {
            boot,
            snp,
            guest_policy,
            output,
            policy,
            ..
        } if matches!(boot.platform, PlatformArg::Snp) => {
            // clap requires --image with --platform snp.
            let Some(image) = &boot.source.image else {
                anyhow::bail!("--platform snp needs --image")
            };
            let params = snp.params(
                boot.vcpus,
                boot.source.kernel.as_deref(),
                boot.initrd.as_deref(),
                boot.cmdline.as_deref(),
            )?;
            let bytes = read(image, &Limit::FIRMWARE_IMAGE)?;
            let digest = snp::compute(&bytes, &params).with_context(|| {
                format!("cannot compute the launch digest of {}", image.display())
            })?;
            let digest: [u8; 48] = digest
                .try_into()
                .map_err(|_| anyhow::anyhow!("the SNP launch digest is not 48 bytes"))?;
            let guest_policy = guest_policy.unwrap_or(snp::refvals::QEMU_DEFAULT_POLICY);
            let values = snp::refvals::reference_values(&digest, guest_policy)?;
            let message = serde_json::to_string_pretty(&refvals::rvps_message_json(&values))?;
            if let Some(path) = &policy {
                write(path, snp::refvals::policy().as_bytes())?;
                say(format_args!(
                    "td-shim-tool: note: the policy also reads the reported TCB under {}: \
                     register the host firmware SVNs you accept under them",
                    snp::refvals::TCB_IDS.join(", ")
                ));
            }
            match &output {
                Some(path) => write(path, format!("{message}\n").as_bytes()),
                None => Ok(files::write_stdout(format!("{message}\n").as_bytes())?),
            }
        }
        Command::Refvals {
            boot,
            vmm,
            output,
            policy,
            ..
        } => {
            let measurement = boot.measure()?;
            let (values, policy_text) = match (boot.platform, &boot.source.image) {
                (PlatformArg::Tdx, Some(image)) => {
                    let order = match vmm {
                        Some(VmmArg::TwoPass) => PageOrder::TwoPass,
                        Some(VmmArg::Qemu) | None => PageOrder::Qemu,
                    };
                    let bytes = read(image, &Limit::FIRMWARE_IMAGE)?;
                    let mrtd = mrtd::compute(&bytes, order).with_context(|| {
                        format!("cannot compute the MRTD of {}", image.display())
                    })?;
                    if let Some(why) = &measurement.rtmr0_unknown {
                        say(format_args!(
                            "td-shim-tool: note: no rtmr_0 reference value: RTMR0 is unknown \
                             ({why}); the policy checks the launch-parameters event in RTMR0, \
                             not RTMR0"
                        ));
                    }
                    (
                        refvals::tdx_reference_values(&measurement, &mrtd)?,
                        policy.is_some().then(|| refvals::tdx_policy(&measurement)),
                    )
                }
                // clap requires --image with --platform tdx.
                (PlatformArg::Tdx, None) => anyhow::bail!("--platform tdx needs --image"),
                // Handled above.
                (PlatformArg::Snp, _) => anyhow::bail!("--platform snp is handled separately"),
                (PlatformArg::Plain, _) => (
                    refvals::reference_values(&measurement)?,
                    policy.is_some().then(|| refvals::policy(&measurement)),
                ),
            };
            let message = serde_json::to_string_pretty(&refvals::rvps_message(&values))?;
            if let (Some(path), Some(text)) = (&policy, policy_text) {
                write(path, text?.as_bytes())?;
            }
            match &output {
                Some(path) => write(path, format!("{message}\n").as_bytes()),
                None => Ok(files::write_stdout(format!("{message}\n").as_bytes())?),
            }
        }
        Command::Verify(args) if args.platform == verify::VerifyPlatform::Snp => {
            let report = args.run_snp()?;
            print(args.json, &report, || report.to_text())?;
            Ok(report.result()?)
        }
        Command::Verify(args) => {
            let report = args.run()?;
            print(args.json, &report, || report.to_text())?;
            Ok(report.result()?)
        }
        Command::Keygen(args) => args.run(),
        Command::Sign(args) => args.run(),
        Command::Enroll(args) => args.run(),
        // Handled by `verify_signature`, which has its own exit statuses.
        Command::VerifySignature(args) => match verify_signature(&args) {
            ExitCode::SUCCESS => Ok(()),
            _ => anyhow::bail!("the payload would not boot"),
        },
        Command::Eventlog {
            command: EventlogCommand::Dump { file, json },
        } => {
            let bytes = read(&file, &Limit::EVENT_LOG)?;
            let report = eventlog::dump(&bytes)
                .with_context(|| format!("{} is not a valid event log", file.display()))?;
            print(json, &report, || report.to_text())
        }
        Command::Eventlog {
            command: EventlogCommand::Replay { file, quote, json },
        } => {
            let bytes = read(&file, &Limit::EVENT_LOG)?;
            let quote_bytes = quote
                .as_deref()
                .map(|q| read(q, &Limit::QUOTE))
                .transpose()?;
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
            command: EventlogCommand::ExtractHob { file, output, json },
        } => {
            let bytes = read(&file, &Limit::EVENT_LOG)?;
            let hob = eventlog::extract_hob(&bytes)
                .with_context(|| format!("cannot extract the TD HOB from {}", file.display()))?;
            write(&output, &hob.list)?;
            let report = hob.report(&output);
            print(json, &report, || report.to_text())
        }
        Command::Eventlog {
            command:
                EventlogCommand::Diff {
                    expected,
                    actual,
                    json,
                },
        } => {
            let expected_bytes = read(&expected, &Limit::EVENT_LOG)?;
            let actual_bytes = read(&actual, &Limit::EVENT_LOG)?;
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

/// Writes one line to standard error. If that fails there is nowhere left to say so.
fn say(line: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Whether an error is standard output's reader having gone.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<FileError>()
            .is_some_and(FileError::is_broken_pipe)
    })
}

/// `verify-signature`: 0 the payload would boot, 1 the firmware would refuse it (its reason on
/// standard error), 2 a usage or input error.
fn verify_signature(args: &secure_boot::cli::VerifySignatureArgs) -> ExitCode {
    let report = match args.run() {
        Ok(report) => report,
        Err(e) => {
            say(format_args!("td-shim-tool: error: {e:#}"));
            return ExitCode::from(2);
        }
    };
    if let Err(e) = args.print(&report) {
        if !is_broken_pipe(&e) {
            say(format_args!("td-shim-tool: error: {e:#}"));
        }
        return ExitCode::from(2);
    }
    match &report.reason {
        None => ExitCode::SUCCESS,
        Some(reason) => {
            say(format_args!("td-shim-tool: refused: {reason}"));
            ExitCode::from(1)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = cli.check() {
        e.exit()
    }
    if let Command::VerifySignature(args) = &cli.command {
        return verify_signature(args);
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The reader of standard output has gone: stop, quietly.
            if !is_broken_pipe(&e) {
                say(format_args!("td-shim-tool: error: {e:#}"));
            }
            ExitCode::from(1)
        }
    }
}
