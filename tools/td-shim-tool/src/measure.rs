//! `td-shim-tool measure`: the RTMRs and the CC event log a td-shim boot produces, computed
//! before any guest runs, from the boot inputs alone.
//!
//! Nothing here describes an event. The events are `td_shim::measurement::plan`'s, the function
//! the firmware executes on what it boots, and they are recorded by
//! `td_shim::measurement::Recording`, the firmware's own recorder (vendor info `td-shim`, the
//! firmware's 64 KiB log area, [`EVENT_LOG`]), into software RTMRs that extend as the platform's
//! do. So the expected log is, byte for byte, the used part of the firmware's log area, and the
//! expected registers are what the firmware extends: a reference value cannot drift from the
//! firmware.
//!
//! The inputs are those of the firmware:
//! - the payload: a Linux kernel with its initrd and command line as QEMU's direct boot
//!   (`-kernel`, `-initrd`, `-append`) hands them over ([`linux_payload`]), or the payload an
//!   image's payload table lists ([`image_payload`]). The firmware boots a direct-boot kernel in
//!   preference to the image's payload, so a caller with both measures the kernel;
//! - the launch parameters ([`LaunchParams`]): the platform, the RAM size (QEMU's `-m`, read by
//!   [`memory::parse_memory`]) and the vCPU count (`-smp`);
//! - under TDX, the VMM's configuration the firmware measures into RTMR0 ([`VmmInputs`], read by
//!   [`vmm`]): the TD HOB, and for a Linux boot QEMU's ACPI fw_cfg files. Without them RTMR0
//!   cannot be predicted: the measurement says so ([`Measurement::rtmr0_unknown`]) and its
//!   RTMR0 and log are not the firmware's; RTMR1 to RTMR3 are exact either way.
//!
//! Secure boot is automatic, as in the firmware ([`measure_boot`], [`secure`]): when the image
//! enrolls a key, the payload must verify against it (else the boot is refused with the
//! firmware's reason) and the prediction has secure boot's three events.
//!
//! Inputs the firmware would refuse are refused here, by the same checks: a kernel
//! `td_loader::linux::parse` rejects, a command line longer than the kernel takes, an ELF
//! payload `td_loader` cannot parse, an image whose payload table is invalid.

pub mod layout;

pub mod memory;

pub mod secure;

pub mod vmm;

use crate::eventlog::dump;
use crate::files::{self, FileError, Limit};
use serde::Serialize;
use sha2::{Digest, Sha384};
use std::fmt::Write as _;
use std::path::Path;
use td_layout::handoff::PlatformKind;
use td_layout::layout::{EVENT_LOG, IMAGE_PAYLOAD, IMAGE_SIZE, MIN_RAM_TOP};
use td_layout::payload::{PayloadKind, PayloadTable, PayloadTableError};
use td_loader::elf::{ElfError, ElfFile};
use td_loader::linux::KernelHeader;
use td_loader::linux::LinuxError;
use td_shim::eventlog::{self, rtmr_of_mr_index, EventType, Rtmrs, SoftwareRtmrs, WriteError};
#[cfg(test)]
use td_shim::measurement::plan_with;
use td_shim::measurement::{
    plan_with_secure_boot, Blob, ConfigFile, KernelHasher, PlannedEvent, Recording, VmmConfig,
};

pub use td_shim::measurement::{LaunchParams, Payload};

/// Why a boot could not be measured: the firmware would not boot these inputs either.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    /// The kernel is not a bzImage the firmware boots.
    #[error("kernel: {0} (the firmware refuses this kernel)")]
    Kernel(LinuxError),
    /// The command line holds a NUL byte.
    #[error("cmdline: it contains a NUL byte")]
    CmdlineNul,
    /// The command line is longer than the kernel's `cmdline_size`.
    #[error("cmdline: {len} bytes, but the kernel takes at most {max}")]
    CmdlineTooLong {
        /// Its length.
        len: usize,
        /// The kernel's `cmdline_size`.
        max: u32,
    },
    /// The ELF payload is not one the firmware loads.
    #[error("ELF payload: {0}")]
    Elf(ElfError),
    /// The image is not the size of a td-shim image.
    #[error("image: {0} bytes, but a td-shim image is {IMAGE_SIZE} bytes")]
    ImageSize(usize),
    /// A file could not be read, or was refused by its size bound.
    #[error(transparent)]
    File(#[from] FileError),
    /// The image's payload table is invalid.
    #[error("image: {0}")]
    PayloadTable(PayloadTableError),
    /// The image's payload table lists neither a kernel nor an ELF payload.
    #[error("image: the payload table lists neither a kernel nor an ELF payload")]
    NoPayload,
    /// Less RAM than the firmware needs.
    #[error(
        "memory: {0} bytes, but td-shim needs RAM up to {MIN_RAM_TOP:#x} ({mib} MiB)",
        mib = MIN_RAM_TOP >> 20
    )]
    TooLittleRam(u64),
    /// The firmware's log area cannot hold the events (the firmware would fail the same way).
    #[error("event log: {0}")]
    Log(WriteError),
    /// The recorded log does not replay to the recorded registers (a bug).
    #[error("the expected event log does not replay to the expected registers: {0}")]
    SelfCheck(String),
    /// The firmware cannot lay the boot out in the VM's memory ([`layout::check`]).
    #[error("{0} (the firmware refuses this setup)")]
    Layout(layout::LayoutError),
    /// A TD HOB or ACPI files were given for a platform whose firmware measures neither.
    #[error(
        "the TD HOB and ACPI files are measured only under TDX (--platform tdx); the {0} \
         firmware measures neither"
    )]
    VmmConfigNotMeasured(&'static str),
    /// ACPI files were given for an ELF payload, which the firmware boots without ACPI tables.
    #[error(
        "an ELF payload boots without ACPI tables: the firmware measures no ACPI files for it \
         (omit --acpi-dir)"
    )]
    AcpiWithElf,
    /// The image's enrolled key record is malformed: the firmware stops on it.
    #[error("secure boot: {0} (the firmware refuses this image)")]
    EnrolledKey(td_layout::signed::RecordError),
    /// The image enrolls a key and the payload does not verify against it: the firmware stops
    /// with this reason.
    #[error("secure boot: {0} (the firmware refuses this payload)")]
    SecureBoot(td_shim::secure_boot::Refused),
    /// The TD HOB describes another RAM size than the launch parameters give.
    #[error(
        "the TD HOB describes {hob} bytes of RAM, but --memory gives {memory}: the firmware \
         measures the HOB's RAM size (ram_bytes) in the launch parameters; give the --memory of \
         the VM that HOB comes from"
    )]
    HobRam {
        /// RAM in the HOB's memory map.
        hob: u64,
        /// RAM in the launch parameters.
        memory: u64,
    },
}

/// Checks a kernel (given by its first bytes, which include the setup header, and its length)
/// and its command line as the firmware does before it boots them.
fn check_linux(head: &[u8], kernel_len: usize, cmdline: &[u8]) -> Result<(), MeasureError> {
    let cmdline_size =
        td_loader::linux::check_header(head, kernel_len).map_err(MeasureError::Kernel)?;
    if cmdline.contains(&0) {
        return Err(MeasureError::CmdlineNul);
    }
    if cmdline.len() > cmdline_size as usize {
        return Err(MeasureError::CmdlineTooLong {
            len: cmdline.len(),
            max: cmdline_size,
        });
    }
    Ok(())
}

/// Bytes read from the start of a kernel file for the header check: the setup header ends by
/// [`td_loader::linux::MAX_HEADER_END`].
const KERNEL_HEAD: usize = 4096;
const _: () = assert!(KERNEL_HEAD >= td_loader::linux::MAX_HEADER_END);

/// Reads `path` within `limit` in chunks into `sink`; returns the first [`KERNEL_HEAD`] bytes.
fn stream(
    path: &Path,
    limit: &Limit,
    mut sink: impl FnMut(&[u8]),
) -> Result<Vec<u8>, MeasureError> {
    let mut head = Vec::with_capacity(KERNEL_HEAD);
    files::stream(path, limit, |chunk| {
        let take = chunk.len().min(KERNEL_HEAD.saturating_sub(head.len()));
        head.extend_from_slice(chunk.get(..take).unwrap_or_default());
        sink(chunk);
    })?;
    Ok(head)
}

/// A Linux boot from files, as QEMU's direct boot delivers them, hashed while they are read (one
/// pass, a small buffer: as fast as `sha384sum`), with the same checks and digests as
/// [`linux_payload`].
///
/// Returns the payload and the kernel's setup header, which [`measure_with_header`] needs to lay
/// the boot out (the payload carries only the kernel's digest).
pub fn linux_payload_from_files<'a>(
    kernel: &Path,
    initrd: Option<&Path>,
    cmdline: &'a [u8],
) -> Result<(Payload<'a>, KernelHeader), MeasureError> {
    let mut hasher = KernelHasher::new();
    let head = stream(kernel, &Limit::KERNEL, |c| hasher.update(c))?;
    let (digest, len) = hasher.finalize();
    check_linux(&head, usize::try_from(len).unwrap_or(usize::MAX), cmdline)?;
    let header = td_loader::linux::parse_header(&head, usize::try_from(len).unwrap_or(usize::MAX))
        .map_err(MeasureError::Kernel)?;
    let initrd = initrd.map(hash_initrd).transpose()?;
    Ok((
        Payload::Linux {
            kernel: Blob::Hashed { digest, len },
            cmdline,
            initrd,
        },
        header,
    ))
}

/// A Linux boot as QEMU's direct boot delivers it: the bzImage file, the initrd file, the
/// command line (without NUL; empty when `-append` is not given).
pub fn linux_payload<'a>(
    kernel: &'a [u8],
    initrd: Option<&'a [u8]>,
    cmdline: &'a [u8],
) -> Result<Payload<'a>, MeasureError> {
    check_linux(kernel, kernel.len(), cmdline)?;
    Ok(Payload::Linux {
        kernel: Blob::Bytes(kernel),
        cmdline,
        initrd: initrd.map(Blob::Bytes),
    })
}

/// The payload a td-shim image boots when the VMM gives no kernel: a Linux kernel if the payload
/// table lists one (with the initrd and command line it lists), else its ELF payload.
pub fn image_payload(image: &[u8]) -> Result<Payload<'_>, MeasureError> {
    image_entries(image)?.check(None)
}

/// What an image's payload table lists for the firmware to boot, not checked yet.
#[derive(Debug, Clone, Copy)]
enum ImagePayload<'a> {
    /// A kernel, with the initrd and command line the table lists.
    Linux {
        kernel: &'a [u8],
        initrd: Option<&'a [u8]>,
        cmdline: &'a [u8],
    },
    /// An ELF payload.
    Elf(&'a [u8]),
}

impl<'a> ImagePayload<'a> {
    /// The file that boots: the kernel, or the ELF payload.
    fn file(&self) -> &'a [u8] {
        match *self {
            ImagePayload::Linux { kernel, .. } => kernel,
            ImagePayload::Elf(elf) => elf,
        }
    }

    /// The payload as the firmware checks it, with `file` (the payload without its trailer,
    /// under secure boot) in place of the table's file.
    fn check(self, file: Option<&'a [u8]>) -> Result<Payload<'a>, MeasureError> {
        let file = file.unwrap_or(self.file());
        match self {
            ImagePayload::Linux {
                initrd, cmdline, ..
            } => linux_payload(file, initrd, cmdline),
            ImagePayload::Elf(_) => {
                ElfFile::parse(file).map_err(MeasureError::Elf)?;
                Ok(Payload::Elf(file))
            }
        }
    }
}

/// The entries of `image`'s payload table the firmware boots: a kernel if it lists one, else
/// its ELF payload.
fn image_entries(image: &[u8]) -> Result<ImagePayload<'_>, MeasureError> {
    if image.len() as u64 != IMAGE_SIZE {
        return Err(MeasureError::ImageSize(image.len()));
    }
    let start = IMAGE_PAYLOAD.image_offset() as usize;
    let region = &image[start..start + IMAGE_PAYLOAD.size as usize];
    let table = PayloadTable::parse(region).map_err(MeasureError::PayloadTable)?;
    if let Some(kernel) = table.find(PayloadKind::Kernel) {
        return Ok(ImagePayload::Linux {
            kernel,
            initrd: table.find(PayloadKind::Initrd),
            cmdline: table.find(PayloadKind::Cmdline).unwrap_or(&[]),
        });
    }
    table
        .find(PayloadKind::Elf)
        .map(ImagePayload::Elf)
        .ok_or(MeasureError::NoPayload)
}

/// A Linux boot from files given to the VMM (`--kernel`, `--initrd`, `--cmdline`).
#[derive(Debug, Clone, Copy)]
pub struct KernelFiles<'a> {
    /// The bzImage (signed when the image enrolls a key).
    pub kernel: &'a Path,
    /// The initrd, if any.
    pub initrd: Option<&'a Path>,
    /// The command line, without NUL.
    pub cmdline: &'a [u8],
}

/// The firmware's measurements for a boot of `image` (a whole td-shim image), or of `kernel`
/// given to the VMM, which the firmware boots in preference to the image's payload; at least one
/// must be given. Secure boot is automatic, as in the firmware: when `image` enrolls a key
/// ([`secure::enrolled`]), the payload that boots (the kernel file, or the image's kernel or
/// ELF payload) must verify against it, else the boot is refused with the firmware's reason;
/// without `image` nothing is known of a key and the boot is measured as unsigned.
pub fn measure_boot(
    params: &LaunchParams,
    inputs: &VmmInputs,
    kernel: Option<KernelFiles<'_>>,
    image: Option<&[u8]>,
) -> Result<Measurement, MeasureError> {
    // With a kernel given, an image that is not a td-shim image is not read here (as before
    // secure boot): its payload is not used, and the caller decides what else it is for (e.g.
    // refvals' MRTD refuses it).
    let image_with_key = image.filter(|i| kernel.is_none() || i.len() as u64 == IMAGE_SIZE);
    let enrolled = image_with_key.map(secure::enrolled).transpose()?.flatten();
    match (kernel, &enrolled) {
        (Some(k), None) => {
            let (payload, header) = linux_payload_from_files(k.kernel, k.initrd, k.cmdline)?;
            measure_with(params, inputs, &payload, Some(&header))
        }
        (Some(k), Some(enrolled)) => {
            let file = files::read(k.kernel, &Limit::KERNEL)?;
            let verified = enrolled.verify(&file)?;
            let initrd = k.initrd.map(hash_initrd).transpose()?;
            let len = verified.payload.len();
            check_linux(verified.payload, len, k.cmdline)?;
            let header = td_loader::linux::parse_header(verified.payload, len)
                .map_err(MeasureError::Kernel)?;
            // The signed digest of a bzImage is its kernel digest, as in the firmware: the
            // kernel is not hashed a second time.
            let payload = Payload::Linux {
                kernel: Blob::Hashed {
                    digest: verified.payload_digest,
                    len: len as u64,
                },
                cmdline: k.cmdline,
                initrd,
            };
            measure_secure_boot(params, inputs, Some(&verified), &payload, Some(&header))
        }
        (None, _) => {
            let entries = image_entries(image.ok_or(MeasureError::NoPayload)?)?;
            let Some(enrolled) = &enrolled else {
                return measure_with(params, inputs, &entries.check(None)?, None);
            };
            let verified = enrolled.verify(entries.file())?;
            let payload = entries.check(Some(verified.payload))?;
            measure_secure_boot(params, inputs, Some(&verified), &payload, None)
        }
    }
}

/// SHA-384 of an initrd file, streamed.
fn hash_initrd(path: &Path) -> Result<Blob<'static>, MeasureError> {
    let mut h = Sha384::new();
    let mut n = 0u64;
    stream(path, &Limit::INITRD, |c| {
        n += c.len() as u64;
        h.update(c);
    })?;
    Ok(Blob::Hashed {
        digest: h.finalize().into(),
        len: n,
    })
}

/// The launch parameters of a VM on `platform` with `ram_bytes` of RAM and `vcpus` vCPUs.
pub fn launch_params(
    platform: PlatformKind,
    ram_bytes: u64,
    vcpus: u32,
) -> Result<LaunchParams, MeasureError> {
    if ram_bytes < MIN_RAM_TOP {
        return Err(MeasureError::TooLittleRam(ram_bytes));
    }
    Ok(LaunchParams {
        platform,
        ram_bytes,
        vcpus,
    })
}

/// One expected event.
#[derive(Debug, Clone, Serialize)]
pub struct ExpectedEvent {
    /// Position in the log (the Spec ID event is 0, so the first event is 1).
    pub index: usize,
    /// The CC MR index (1 = RTMR0).
    pub mr_index: u32,
    /// The register it extends, "RTMR0" to "RTMR3".
    pub register: String,
    /// The event type's TCG/UEFI name.
    #[serde(rename = "type")]
    pub type_name: String,
    /// What it records, as the measurement plan names it (`launch_params`, `kernel`, ...).
    pub name: &'static str,
    /// The SHA-384 digest, lower-case hex.
    pub digest: String,
    /// What the event data says, as `eventlog dump` shows it.
    pub description: Option<String>,
}

/// The expected measurements of one boot.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// The launch-parameter text the firmware measures ([`LaunchParams::text`]).
    pub launch_params: String,
    /// The plan's events, in order.
    pub planned: Vec<PlannedEvent>,
    /// RTMR0 to RTMR3 after the firmware's events. RTMR0 only if [`Self::rtmr0_unknown`] is
    /// `None`.
    pub rtmrs: Rtmrs,
    /// The log as the firmware writes it: the used part of its log area. Not the firmware's
    /// when [`Self::rtmr0_unknown`] is set (RTMR0's events are missing).
    pub log: Vec<u8>,
    /// Why RTMR0 cannot be predicted (under TDX, the VMM's configuration the firmware measures
    /// into RTMR0 was not given, [`VmmInputs`]); `None` when RTMR0 is exact.
    pub rtmr0_unknown: Option<String>,
}

/// The VMM's configuration measured into RTMR0 under TDX, as read by [`vmm`].
#[derive(Debug, Clone, Default)]
pub struct VmmInputs {
    /// The TD HOB (`--td-hob`).
    pub td_hob: Option<vmm::TdHob>,
    /// The ACPI files in the order the firmware measures them (`--acpi-dir`).
    pub acpi: Option<Vec<ConfigFile>>,
}

impl VmmInputs {
    /// Whether anything is given.
    pub fn is_empty(&self) -> bool {
        self.td_hob.is_none() && self.acpi.is_none()
    }
}

/// The configuration the firmware measures for `params` and `payload` from `inputs`, and why
/// RTMR0 cannot be predicted if something it measures is missing. Refuses inputs the firmware
/// does not measure, and a HOB whose RAM is not `params.ram_bytes`.
fn vmm_config<'a>(
    params: &LaunchParams,
    inputs: &'a VmmInputs,
    payload: &Payload<'_>,
) -> Result<(VmmConfig<'a>, Option<String>), MeasureError> {
    // Only td-shim's TDX platform measures the VMM's configuration (Platform::td_hob and
    // Platform::measures_acpi); the plain VM measures neither.
    if params.platform != PlatformKind::Tdx {
        if !inputs.is_empty() {
            return Err(MeasureError::VmmConfigNotMeasured(params.platform.name()));
        }
        return Ok((VmmConfig::default(), None));
    }
    if let Some(hob) = &inputs.td_hob {
        if hob.ram_bytes != params.ram_bytes {
            return Err(MeasureError::HobRam {
                hob: hob.ram_bytes,
                memory: params.ram_bytes,
            });
        }
    }
    let linux = matches!(payload, Payload::Linux { .. });
    if !linux && inputs.acpi.is_some() {
        return Err(MeasureError::AcpiWithElf);
    }
    let mut missing = Vec::new();
    if inputs.td_hob.is_none() {
        missing.push("--td-hob");
    }
    if linux && inputs.acpi.is_none() {
        missing.push("--acpi-dir");
    }
    let unknown = (!missing.is_empty()).then(|| {
        format!(
            "needs {}: under TDX the firmware measures the TD HOB{} into RTMR0",
            missing.join(" and "),
            if linux {
                " and the ACPI fw_cfg files"
            } else {
                ""
            }
        )
    });
    let config = VmmConfig {
        td_hob: inputs.td_hob.as_ref().map(|h| h.list.as_slice()),
        acpi: inputs.acpi.clone().unwrap_or_default(),
    };
    Ok((config, unknown))
}

/// Lays a Linux boot out in QEMU's memory map as the firmware will ([`layout::check`]): an
/// error is a boot the firmware refuses. A kernel given by digest needs `header` (from
/// [`linux_payload_from_files`]); one given by its bytes has its own.
fn check_layout(
    params: &LaunchParams,
    payload: &Payload<'_>,
    header: Option<&KernelHeader>,
    file_len: Option<u64>,
) -> Result<(), MeasureError> {
    let Payload::Linux { kernel, initrd, .. } = payload else {
        return Ok(());
    };
    let (header, kernel_len) = match kernel {
        Blob::Bytes(k) => (
            td_loader::linux::parse_header(k, k.len()).map_err(MeasureError::Kernel)?,
            k.len() as u64,
        ),
        Blob::Hashed { len, .. } => (
            *header.ok_or(MeasureError::Layout(layout::LayoutError::UnknownHeader))?,
            *len,
        ),
    };
    let initrd_len = match initrd {
        None => 0,
        Some(Blob::Bytes(b)) => b.len() as u64,
        Some(Blob::Hashed { len, .. }) => *len,
    };
    // A signed kernel is staged whole, trailer included.
    let kernel_len = file_len.unwrap_or(kernel_len);
    layout::check(params.ram_bytes, &header, kernel_len, initrd_len)
        .map(|_| ())
        .map_err(MeasureError::Layout)
}

/// The firmware's measurements for booting `payload` with `params`, refused exactly where the
/// firmware refuses the boot, without the VMM's configuration (under TDX RTMR0 is then
/// unknown: [`measure_with`]). A kernel given by digest needs [`measure_with_header`].
pub fn measure(params: &LaunchParams, payload: &Payload<'_>) -> Result<Measurement, MeasureError> {
    measure_with_header(params, payload, None)
}

/// [`measure`], with the setup header of a kernel given by digest.
pub fn measure_with_header(
    params: &LaunchParams,
    payload: &Payload<'_>,
    header: Option<&KernelHeader>,
) -> Result<Measurement, MeasureError> {
    measure_with(params, &VmmInputs::default(), payload, header)
}

/// The firmware's measurements for booting `payload` with `params` and the VMM's configuration
/// `inputs` (`td_shim::measurement::plan_with`). Under TDX RTMR0 is exact only with the TD HOB
/// and, for a Linux boot, the ACPI files; otherwise [`Measurement::rtmr0_unknown`] says what is
/// missing. A kernel given by digest needs its setup `header`.
pub fn measure_with(
    params: &LaunchParams,
    inputs: &VmmInputs,
    payload: &Payload<'_>,
    header: Option<&KernelHeader>,
) -> Result<Measurement, MeasureError> {
    measure_secure_boot(params, inputs, None, payload, header)
}

/// [`measure_with`] for a payload that verified against the image's enrolled key
/// ([`secure::Enrolled::verify`]; `None`: no key, [`measure_with`]): `payload` is the payload
/// without its trailer, and the plan has secure boot's three events
/// (`td_shim::measurement::plan_with_secure_boot`).
pub fn measure_secure_boot(
    params: &LaunchParams,
    inputs: &VmmInputs,
    secure: Option<&secure::Verified<'_>>,
    payload: &Payload<'_>,
    header: Option<&KernelHeader>,
) -> Result<Measurement, MeasureError> {
    let (config, rtmr0_unknown) = vmm_config(params, inputs, payload)?;
    check_layout(params, payload, header, secure.map(|s| s.file_len))?;
    let planned = plan_with_secure_boot(params, &config, secure.map(|s| &s.events), payload);
    let mut area = vec![0u8; EVENT_LOG.size as usize];
    let mut registers = SoftwareRtmrs::default();
    let mut recording = Recording::new(&mut area).map_err(MeasureError::Log)?;
    recording
        .record(&mut registers, planned.clone())
        .map_err(MeasureError::Log)?;
    let log = recording.log().to_vec();
    let replayed = eventlog::parse(&log)
        .map_err(|e| MeasureError::SelfCheck(e.to_string()))?
        .replay();
    if replayed != registers.0 {
        return Err(MeasureError::SelfCheck("the registers differ".into()));
    }
    Ok(Measurement {
        launch_params: params.text(),
        planned,
        rtmrs: registers.0,
        log,
        rtmr0_unknown,
    })
}

/// `measure --json`.
#[derive(Debug, Serialize)]
pub struct MeasureReport {
    /// RTMR0, lower-case hex; null when it cannot be predicted ([`Self::rtmr0_unknown`]).
    pub rtmr0: Option<String>,
    /// Why RTMR0 cannot be predicted; absent when it is exact.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtmr0_unknown: Option<String>,
    /// RTMR1.
    pub rtmr1: String,
    /// RTMR2.
    pub rtmr2: String,
    /// RTMR3 (the firmware never extends it).
    pub rtmr3: String,
    /// The events, in log order.
    pub events: Vec<ExpectedEvent>,
    /// The launch-parameter text measured in RTMR0.
    pub launch_params: String,
}

impl Measurement {
    /// The expected events, described as `eventlog dump` describes them.
    pub fn events(&self) -> Vec<ExpectedEvent> {
        let described = dump(&self.log).map(|d| d.events).unwrap_or_default();
        self.planned
            .iter()
            .enumerate()
            .map(|(i, e)| ExpectedEvent {
                index: i + 1,
                mr_index: e.mr_index,
                register: rtmr_of_mr_index(e.mr_index)
                    .map_or_else(|| "-".into(), |r| format!("RTMR{r}")),
                type_name: EventType(e.event_type).to_string(),
                name: e.name,
                digest: hex::encode(e.digest),
                description: described.get(i).and_then(|d| d.description.clone()),
            })
            .collect()
    }

    /// The report `measure` prints.
    pub fn report(&self) -> MeasureReport {
        let [rtmr0, rtmr1, rtmr2, rtmr3] = self.rtmrs.map(hex::encode);
        MeasureReport {
            rtmr0: self.rtmr0_unknown.is_none().then_some(rtmr0),
            rtmr0_unknown: self
                .rtmr0_unknown
                .as_ref()
                .map(|why| format!("unknown: {why}")),
            rtmr1,
            rtmr2,
            rtmr3,
            events: self.events(),
            launch_params: self.launch_params.clone(),
        }
    }
}

impl MeasureReport {
    /// The human-readable form.
    pub fn to_text(&self) -> String {
        let mut s = String::from("launch parameters:\n");
        for line in self.launch_params.lines() {
            let _ = writeln!(s, "  {line}");
        }
        match (&self.rtmr0, &self.rtmr0_unknown) {
            (Some(value), _) => {
                let _ = writeln!(s, "RTMR0 {value}");
            }
            (None, why) => {
                let _ = writeln!(s, "RTMR0 {}", why.as_deref().unwrap_or("unknown"));
            }
        }
        for (i, value) in [&self.rtmr1, &self.rtmr2, &self.rtmr3].iter().enumerate() {
            let _ = writeln!(s, "RTMR{} {value}", i + 1);
        }
        if self.rtmr0.is_some() {
            let _ = writeln!(s, "{} events:", self.events.len());
        } else {
            let _ = writeln!(
                s,
                "{} events (RTMR0's are incomplete: those of the inputs not given are missing):",
                self.events.len()
            );
        }
        for e in &self.events {
            let _ = writeln!(
                s,
                "{:>4} {:<5} {:<32} {:<14} {}",
                e.index,
                e.register,
                e.type_name,
                e.name,
                e.description.as_deref().unwrap_or("")
            );
            let _ = writeln!(s, "     sha384 {}", e.digest);
        }
        s
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use td_shim::measurement::{kernel_digest, plan};

    /// A minimal bzImage `td_loader::linux::parse` accepts: protocol 2.15, one setup sector,
    /// 64-bit entry, relocatable, 2 MiB alignment, `cmdline_size` 2047, `len` bytes.
    pub(crate) fn synthetic_kernel(len: usize) -> Vec<u8> {
        let mut k = vec![0x90u8; len];
        k[0x1F1] = 1; // setup_sects
        k[0x1F4..0x1F8].fill(0); // syssize
        k[0x1FE..0x200].copy_from_slice(&[0x55, 0xAA]);
        k[0x200] = 0xEB; // jmp
        k[0x201] = 0x66; // setup header ends at 0x268
        k[0x202..0x206].copy_from_slice(b"HdrS");
        k[0x206..0x208].copy_from_slice(&0x020Fu16.to_le_bytes());
        k[0x210] = 0xB0; // type_of_loader, as QEMU writes it: normalized away
        k[0x211] = 0x01; // LOADED_HIGH
        k[0x228..0x22C].copy_from_slice(&0x2_0000u32.to_le_bytes()); // cmd_line_ptr
        k[0x230..0x234].copy_from_slice(&0x20_0000u32.to_le_bytes());
        k[0x234] = 1; // relocatable
        k[0x235] = 0; // min_alignment
        k[0x236..0x238].copy_from_slice(&1u16.to_le_bytes()); // XLF_KERNEL_64
        k[0x238..0x23C].copy_from_slice(&2047u32.to_le_bytes());
        k[0x250..0x258].fill(0);
        k[0x258..0x260].fill(0);
        k[0x260..0x264].copy_from_slice(&0x10_0000u32.to_le_bytes()); // init_size
        k
    }

    pub(crate) const PARAMS: LaunchParams = LaunchParams {
        platform: PlatformKind::Plain,
        ram_bytes: 512 << 20,
        vcpus: 2,
    };

    #[test]
    fn the_events_are_the_plans_and_the_log_replays_to_the_registers() {
        let kernel = synthetic_kernel(0x3000);
        let payload = linux_payload(&kernel, Some(b"initrd"), b"console=ttyS0").unwrap();
        let m = measure(&PARAMS, &payload).unwrap();
        // Exactly plan()'s events and digests.
        assert_eq!(m.planned, plan(&PARAMS, &payload));
        let report = m.report();
        let digests: Vec<_> = report.events.iter().map(|e| e.digest.clone()).collect();
        let planned: Vec<_> = plan(&PARAMS, &payload)
            .iter()
            .map(|e| hex::encode(e.digest))
            .collect();
        assert_eq!(digests, planned);
        assert_eq!(report.events[2].digest, hex::encode(kernel_digest(&kernel)));
        // The log bytes replay to the printed registers.
        let replayed = eventlog::parse(&m.log).unwrap().replay();
        assert_eq!(replayed, m.rtmrs);
        assert_eq!(report.rtmr0, Some(hex::encode(replayed[0])));
        assert_eq!(report.rtmr1, hex::encode(replayed[1]));
        assert_eq!(report.rtmr2, hex::encode(replayed[2]));
        assert_eq!(report.rtmr3, "0".repeat(96));
        assert_eq!(report.launch_params, PARAMS.text());
        // The Spec ID event is the firmware's.
        assert_eq!(
            eventlog::parse(&m.log).unwrap().spec_id().vendor_info,
            b"td-shim"
        );
    }

    #[test]
    fn events_are_named_and_described() {
        let kernel = synthetic_kernel(0x3000);
        let payload = linux_payload(&kernel, None, b"console=ttyS0").unwrap();
        let events = measure(&PARAMS, &payload).unwrap().events();
        let shape: Vec<_> = events
            .iter()
            .map(|e| (e.index, e.register.as_str(), e.type_name.as_str(), e.name))
            .collect();
        assert_eq!(
            shape,
            [
                (1, "RTMR0", "EV_PLATFORM_CONFIG_FLAGS", "launch_params"),
                (2, "RTMR0", "EV_SEPARATOR", "separator"),
                (3, "RTMR1", "EV_EFI_PLATFORM_FIRMWARE_BLOB2", "kernel"),
                (4, "RTMR1", "EV_SEPARATOR", "separator"),
                (5, "RTMR2", "EV_PLATFORM_CONFIG_FLAGS", "cmdline"),
            ]
        );
        assert_eq!(
            events[2].description.as_deref(),
            Some("td_kernel: base 0x0, length 0x3000")
        );
        assert_eq!(
            events[4].description.as_deref(),
            Some("td_cmdline, 13 bytes of information")
        );
        let text = measure(&PARAMS, &payload).unwrap().report().to_text();
        assert!(text.contains("  ram_bytes=536870912\n"), "{text}");
        assert!(
            text.contains("   3 RTMR1 EV_EFI_PLATFORM_FIRMWARE_BLOB2"),
            "{text}"
        );
    }

    #[test]
    fn each_launch_parameter_changes_rtmr0_only() {
        let kernel = synthetic_kernel(0x3000);
        let payload = linux_payload(&kernel, None, b"").unwrap();
        let base = measure(&PARAMS, &payload).unwrap().rtmrs;
        for params in [
            launch_params(PlatformKind::Plain, 1 << 30, 2).unwrap(),
            launch_params(PlatformKind::Plain, 512 << 20, 4).unwrap(),
        ] {
            let other = measure(&params, &payload).unwrap().rtmrs;
            assert_ne!(other[0], base[0]);
            assert_eq!(other[1..], base[1..]);
        }
    }

    const TDX: LaunchParams = LaunchParams {
        platform: PlatformKind::Tdx,
        ram_bytes: 512 << 20,
        vcpus: 2,
    };

    fn tdx_inputs(hob: bool, acpi: bool) -> VmmInputs {
        VmmInputs {
            td_hob: hob.then(|| vmm::TdHob::parse(vmm::tests::qemu_hob(512 << 20)).unwrap()),
            acpi: acpi.then(|| {
                vec![
                    ConfigFile::of("etc/table-loader", b"script"),
                    ConfigFile::of("etc/acpi/tables", b"tables"),
                ]
            }),
        }
    }

    #[test]
    fn under_tdx_rtmr0_holds_the_vmm_configuration() {
        let kernel = synthetic_kernel(0x3000);
        let payload = linux_payload(&kernel, Some(b"initrd"), b"console=ttyS0").unwrap();
        let inputs = tdx_inputs(true, true);
        let m = measure_with(&TDX, &inputs, &payload, None).unwrap();
        assert_eq!(m.rtmr0_unknown, None);
        // The firmware's plan and recorder on the same configuration.
        let config = VmmConfig {
            td_hob: Some(&inputs.td_hob.as_ref().unwrap().list),
            acpi: inputs.acpi.clone().unwrap(),
        };
        let mut area = vec![0u8; EVENT_LOG.size as usize];
        let mut registers = SoftwareRtmrs::default();
        let mut recording = Recording::new(&mut area).unwrap();
        recording
            .record(&mut registers, plan_with(&TDX, &config, &payload))
            .unwrap();
        assert_eq!(m.log, recording.log());
        assert_eq!(m.rtmrs, registers.0);
        let names: Vec<_> = m.planned.iter().map(|e| e.name).collect();
        assert_eq!(
            names[..5],
            [
                "launch_params",
                "td_hob",
                "acpi_file",
                "acpi_file",
                "separator"
            ]
        );
        // Without them RTMR0 is unknown and said to be; RTMR1-3 are the same.
        let without = measure(&TDX, &payload).unwrap();
        assert_eq!(without.rtmrs[1..], m.rtmrs[1..]);
        assert_ne!(without.rtmrs[0], m.rtmrs[0]);
        let why = without.rtmr0_unknown.as_deref().unwrap();
        assert_eq!(
            why,
            "needs --td-hob and --acpi-dir: under TDX the firmware measures the TD HOB and the \
             ACPI fw_cfg files into RTMR0"
        );
        let report = without.report();
        assert_eq!(report.rtmr0, None);
        assert_eq!(
            report.rtmr0_unknown.as_deref(),
            Some(&*format!("unknown: {why}"))
        );
        let json = serde_json::to_value(&report).unwrap();
        assert!(json["rtmr0"].is_null());
        assert_eq!(json["rtmr1"], hex::encode(m.rtmrs[1]));
        let text = report.to_text();
        assert!(text.contains(&format!("RTMR0 unknown: {why}\n")), "{text}");
        assert!(text.contains("RTMR0's are incomplete"), "{text}");
        // One of the two is not enough for a Linux boot.
        for (hob, acpi, missing) in [(true, false, "--acpi-dir"), (false, true, "--td-hob")] {
            let m = measure_with(&TDX, &tdx_inputs(hob, acpi), &payload, None).unwrap();
            let why = m.rtmr0_unknown.unwrap();
            assert!(why.starts_with(&format!("needs {missing}:")), "{why}");
        }
        // Known: the report has RTMR0 and no reason.
        let json = serde_json::to_value(m.report()).unwrap();
        assert_eq!(json["rtmr0"], hex::encode(m.rtmrs[0]));
        assert!(json.get("rtmr0_unknown").is_none());
    }

    #[test]
    fn an_elf_payload_needs_the_hob_only() {
        let elf = Payload::Elf(b"\x7fELF");
        let m = measure_with(&TDX, &tdx_inputs(true, false), &elf, None).unwrap();
        assert_eq!(m.rtmr0_unknown, None);
        assert_eq!(m.planned[1].name, "td_hob");
        let m = measure_with(&TDX, &VmmInputs::default(), &elf, None).unwrap();
        assert!(m
            .rtmr0_unknown
            .unwrap()
            .starts_with("needs --td-hob: under TDX the firmware measures the TD HOB into"));
        assert!(matches!(
            measure_with(&TDX, &tdx_inputs(true, true), &elf, None),
            Err(MeasureError::AcpiWithElf)
        ));
    }

    #[test]
    fn the_vmm_configuration_is_refused_where_it_is_not_measured() {
        let kernel = synthetic_kernel(0x3000);
        let payload = linux_payload(&kernel, None, b"").unwrap();
        for (hob, acpi) in [(true, false), (false, true), (true, true)] {
            assert!(matches!(
                measure_with(&PARAMS, &tdx_inputs(hob, acpi), &payload, None),
                Err(MeasureError::VmmConfigNotMeasured("plain"))
            ));
        }
        // A HOB of another RAM size than the launch parameters'.
        let more = LaunchParams {
            ram_bytes: 1 << 30,
            ..TDX
        };
        let err = measure_with(&more, &tdx_inputs(true, true), &payload, None).unwrap_err();
        assert!(
            matches!(
                err,
                MeasureError::HobRam {
                    hob: 0x2000_0000,
                    memory: 0x4000_0000
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn refuses_what_the_firmware_refuses() {
        let mut kernel = synthetic_kernel(0x3000);
        assert!(matches!(
            linux_payload(&kernel, None, &[b'a'; 2048]),
            Err(MeasureError::CmdlineTooLong {
                len: 2048,
                max: 2047
            })
        ));
        assert!(linux_payload(&kernel, None, &[b'a'; 2047]).is_ok());
        assert!(matches!(
            linux_payload(&kernel, None, b"a\0b"),
            Err(MeasureError::CmdlineNul)
        ));
        kernel[0x202] = b'X';
        let err = linux_payload(&kernel, None, b"").unwrap_err();
        assert!(matches!(err, MeasureError::Kernel(LinuxError::BadMagic(_))));
        assert!(err.to_string().starts_with("kernel: "), "{err}");
        assert!(matches!(
            launch_params(PlatformKind::Plain, MIN_RAM_TOP - 1, 1),
            Err(MeasureError::TooLittleRam(_))
        ));
        assert!(launch_params(PlatformKind::Plain, MIN_RAM_TOP, 1).is_ok());
    }

    #[test]
    fn reads_the_images_payload_table() {
        // No key enrolled: an all-zero record.
        fn image_with(entries: &[(PayloadKind, &[u8])]) -> Vec<u8> {
            secure::tests::image(entries, [0; td_layout::signed::RECORD_SIZE])
        }
        assert!(matches!(
            image_payload(&[0; 4096]),
            Err(MeasureError::ImageSize(4096))
        ));
        assert!(matches!(
            image_payload(&vec![0u8; IMAGE_SIZE as usize]),
            Err(MeasureError::PayloadTable(PayloadTableError::BadMagic))
        ));
        // Kernel, initrd and command line from the table measure as the same files given
        // directly.
        let kernel = synthetic_kernel(0x3000);
        let image = image_with(&[
            (PayloadKind::Kernel, &kernel),
            (PayloadKind::Initrd, b"initrd"),
            (PayloadKind::Cmdline, b"console=ttyS0"),
        ]);
        let from_image = measure(&PARAMS, &image_payload(&image).unwrap()).unwrap();
        let direct = measure(
            &PARAMS,
            &linux_payload(&kernel, Some(b"initrd"), b"console=ttyS0").unwrap(),
        )
        .unwrap();
        assert_eq!(from_image.log, direct.log);
        // Without a command line entry, the command line is empty.
        let image = image_with(&[(PayloadKind::Kernel, &kernel)]);
        assert!(matches!(
            image_payload(&image).unwrap(),
            Payload::Linux {
                cmdline: b"",
                initrd: None,
                ..
            }
        ));
        // The kernel is checked as the firmware checks it.
        let mut bad = kernel.clone();
        bad[0x1FE] = 0;
        let image = image_with(&[(PayloadKind::Kernel, &bad)]);
        assert!(matches!(
            image_payload(&image),
            Err(MeasureError::Kernel(_))
        ));
        // An ELF entry must hold an ELF file; an initrd alone is no payload.
        let image = image_with(&[(PayloadKind::Elf, b"not an ELF file")]);
        assert!(matches!(image_payload(&image), Err(MeasureError::Elf(_))));
        let image = image_with(&[(PayloadKind::Initrd, b"initrd")]);
        assert!(matches!(
            image_payload(&image),
            Err(MeasureError::NoPayload)
        ));
    }
}
