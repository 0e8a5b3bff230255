//! The measurement plan: every event the firmware records, in order, with its register, type,
//! data and digest, computed from the boot inputs alone.
//!
//! This is the one source of truth: the firmware executes [`plan`] on the bytes it is about to
//! boot, and `td-shim-tool measure` runs the same function on the host, so a reference value
//! cannot drift from what the firmware does. The events (docs/measurement.md has the full spec):
//!
//! | # | register | type | data | digest over |
//! |---|---|---|---|---|
//! | 1 | RTMR0 | `EV_PLATFORM_CONFIG_FLAGS` | config info "td_launch_params" + [`LaunchParams::text`] | the text |
//! | 1a | RTMR0 | `EV_PLATFORM_CONFIG_FLAGS` | config info "td_hob" + the TD HOB list (TDX only) | the list |
//! | 1b | RTMR0 | `EV_PLATFORM_CONFIG_FLAGS` | config info "td_acpi_file" + fw_cfg file name, one per ACPI file (TDX only) | the file as delivered |
//! | 2 | RTMR0 | `EV_SEPARATOR` | `00000000` | the same 4 bytes |
//! | 3 | RTMR1 | `EV_EFI_PLATFORM_FIRMWARE_BLOB2` | blob "td_kernel", base 0, length | the bzImage, loader fields normalized |
//! | 4 | RTMR1 | `EV_SEPARATOR` | `00000000` | the same 4 bytes |
//! | 5 | RTMR2 | `EV_PLATFORM_CONFIG_FLAGS` | config info "td_cmdline" + the command line | the command line |
//! | 6 | RTMR2 | `EV_EFI_PLATFORM_FIRMWARE_BLOB2` | blob "td_initrd", base 0, length (only with an initrd) | the initrd |
//!
//! For an ELF payload, event 3 is blob "td_payload" over the ELF file, and there are no RTMR2
//! events.
//!
//! With a secure-boot key enrolled in the image ([`plan_with_secure_boot`]) three more
//! `EV_PLATFORM_CONFIG_FLAGS` events, digest over the info: RTMR0 "secure_policy" (the 96-byte
//! enrolled record) just before event 2; RTMR1 "payload_signer" (SHA-384 of the signer's key)
//! then "td_payload_svn" (the signed SVN, u64 little-endian) just before event 3, which is over
//! the payload without its signature trailer.
//!
//! RTMR3 is never touched by the firmware. Exact bytes with their lengths are measured, never
//! zero-padded regions.

use crate::eventlog::{EventLogWriter, ExtendError, Extender, WriteError};
use crate::platform::Platform;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use sha2::{Digest, Sha384};
use td_layout::handoff::PlatformKind;
use zerocopy::little_endian::{U32, U64};
use zerocopy::{Immutable, IntoBytes, KnownLayout, Unaligned};

/// CC measurement register index of RTMR0 (index 0 is MRTD, never extended by the log).
pub const MR_RTMR0: u32 = 1;
/// CC measurement register index of RTMR1.
pub const MR_RTMR1: u32 = 2;
/// CC measurement register index of RTMR2.
pub const MR_RTMR2: u32 = 3;

/// The event types the plan logs, defined in [`crate::eventlog::event_types`].
pub use crate::eventlog::event_types::{
    EV_EFI_PLATFORM_FIRMWARE_BLOB2, EV_PLATFORM_CONFIG_FLAGS, EV_SEPARATOR,
};

/// Data of a normal separator.
pub const SEPARATOR: [u8; 4] = 0u32.to_le_bytes();
/// Data of the error separator, recorded when the boot fails.
pub const ERROR_SEPARATOR: [u8; 4] = 1u32.to_le_bytes();

/// The launch parameters the firmware relies on, normalised so a verifier can predict them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaunchParams {
    /// The platform the firmware runs on.
    pub platform: PlatformKind,
    /// Bytes of RAM the VMM's memory map describes (the `-m` size under QEMU).
    pub ram_bytes: u64,
    /// Number of vCPUs the VMM announces.
    pub vcpus: u32,
}

impl LaunchParams {
    /// The text measured for them: `key=value` lines, in this order, each ending in `\n`:
    /// `firmware=td-shim/<version>`, `platform=<plain|tdx|sev-snp>`, `ram_bytes=<decimal>`,
    /// `vcpus=<decimal>`.
    pub fn text(&self) -> String {
        format!(
            "firmware=td-shim/{}\nplatform={}\nram_bytes={}\nvcpus={}\n",
            env!("CARGO_PKG_VERSION"),
            self.platform.name(),
            self.ram_bytes,
            self.vcpus
        )
    }
}

/// A measured input: its bytes, or (for a host tool that streams large files) the digest and
/// length already computed the way [`plan`] would ([`KernelHasher`] for a kernel, SHA-384 for
/// an initrd).
#[derive(Debug, Clone, Copy)]
pub enum Blob<'a> {
    /// The bytes.
    Bytes(&'a [u8]),
    /// The measurement digest and the length in bytes.
    Hashed {
        /// The digest.
        digest: [u8; 48],
        /// The length.
        len: u64,
    },
}

/// What the firmware boots.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    /// A Linux kernel (the whole bzImage file, as delivered), its command line (without NUL)
    /// and initrd.
    Linux {
        /// The bzImage.
        kernel: Blob<'a>,
        /// The command line, exactly as the kernel gets it, without the NUL.
        cmdline: &'a [u8],
        /// The initrd, if any.
        initrd: Option<Blob<'a>>,
    },
    /// An ELF payload (the whole file).
    Elf(&'a [u8]),
}

/// A file of the VMM's configuration as the firmware read it: its name and SHA-384 digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    /// The fw_cfg file name (`etc/table-loader`, `etc/acpi/tables`, ...).
    pub name: String,
    /// SHA-384 of the bytes exactly as the VMM delivered them (before any loader patching).
    pub digest: [u8; 48],
    /// Their length.
    pub len: u64,
}

impl ConfigFile {
    /// The entry for `bytes` delivered as `name`.
    pub fn of(name: &str, bytes: &[u8]) -> Self {
        ConfigFile {
            name: String::from(name),
            digest: sha384(&[bytes]),
            len: bytes.len() as u64,
        }
    }
}

/// The VMM's configuration the firmware measures into RTMR0 on platforms whose hardware does
/// not (TDX): the TD HOB and the ACPI files. Empty on a plain VM, whose plan is unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VmmConfig<'a> {
    /// The TD HOB list (through its end-of-list HOB), if one was consumed.
    pub td_hob: Option<&'a [u8]>,
    /// The ACPI files in the order the firmware read them: `etc/table-loader` first, then each
    /// file its ALLOCATE commands name, in command order.
    pub acpi: Vec<ConfigFile>,
}

/// Event descriptor of the TD HOB event (td-shim's, so existing log parsers know it).
pub const TD_HOB_DESCRIPTOR: &str = "td_hob";
/// Event descriptor of an ACPI file event; the info is the fw_cfg file name.
pub const ACPI_FILE_DESCRIPTOR: &str = "td_acpi_file";

/// One event of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedEvent {
    /// What it records, for people (`launch_params`, `kernel`, ...).
    pub name: &'static str,
    /// CC measurement register index (1 = RTMR0, ...).
    pub mr_index: u32,
    /// TCG/UEFI event type.
    pub event_type: u32,
    /// The event data as it goes into the log.
    pub data: Vec<u8>,
    /// SHA-384 of the digest input.
    pub digest: [u8; 48],
}

fn sha384(parts: &[&[u8]]) -> [u8; 48] {
    let mut h = Sha384::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// `TD_SHIM_PLATFORM_CONFIG_INFO` without its info.
#[derive(IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct ConfigInfoHeader {
    /// ASCII, NUL-padded when shorter.
    descriptor: [u8; 16],
    info_length: U32,
}

/// The end of `UEFI_PLATFORM_FIRMWARE_BLOB2`, after the description.
#[derive(IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Blob2Tail {
    blob_base: U64,
    blob_length: U64,
}

const _: () = assert!(core::mem::size_of::<ConfigInfoHeader>() == 20);
const _: () = assert!(core::mem::size_of::<Blob2Tail>() == 16);

/// `TD_SHIM_PLATFORM_CONFIG_INFO`: a 16-byte descriptor (ASCII, NUL-padded when shorter), a u32
/// info length,
/// the info.
fn config_info(descriptor: &str, info: &[u8]) -> Vec<u8> {
    let mut header = ConfigInfoHeader {
        descriptor: [0; 16],
        info_length: U32::new(info.len() as u32),
    };
    let n = descriptor.len().min(16);
    header.descriptor[..n].copy_from_slice(&descriptor.as_bytes()[..n]);
    let mut v = Vec::with_capacity(core::mem::size_of::<ConfigInfoHeader>() + info.len());
    v.extend_from_slice(header.as_bytes());
    v.extend_from_slice(info);
    v
}

/// `UEFI_PLATFORM_FIRMWARE_BLOB2`: a u8 description size, the description (with its NUL), the
/// blob's base (0: the blob is measured from firmware memory whose address is not part of the
/// contract) and its length.
fn blob2(description: &str, length: u64) -> Vec<u8> {
    let tail = Blob2Tail {
        blob_base: U64::new(0),
        blob_length: U64::new(length),
    };
    let mut v = Vec::with_capacity(description.len() + 2 + core::mem::size_of::<Blob2Tail>());
    v.push((description.len() + 1) as u8);
    v.extend_from_slice(description.as_bytes());
    v.push(0);
    v.extend_from_slice(tail.as_bytes());
    v
}

fn separator(mr_index: u32, data: [u8; 4]) -> PlannedEvent {
    PlannedEvent {
        name: if data == SEPARATOR {
            "separator"
        } else {
            "error separator"
        },
        mr_index,
        event_type: EV_SEPARATOR,
        data: data.to_vec(),
        digest: sha384(&[&data]),
    }
}

/// The digest of a bzImage as measured: SHA-384 of the file with the boot loader's setup-header
/// fields normalized ([`td_loader::linux::normalize_setup_header`]), so a kernel gives the same
/// digest whether QEMU's direct boot (which patches them) or the image delivered it.
pub fn kernel_digest(kernel: &[u8]) -> [u8; 48] {
    let mut h = KernelHasher::new();
    h.update(kernel);
    h.finalize().0
}

/// Every loader field lies in the first 0x290 bytes (the end of the setup header area).
const KERNEL_HEAD: usize = 0x290;

/// [`kernel_digest`] over a bzImage that arrives in pieces.
pub struct KernelHasher {
    head: [u8; KERNEL_HEAD],
    head_len: usize,
    hash: Sha384,
    len: u64,
}

impl Default for KernelHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl KernelHasher {
    /// A hasher at the start of a bzImage.
    pub fn new() -> Self {
        KernelHasher {
            head: [0; KERNEL_HEAD],
            head_len: 0,
            hash: Sha384::new(),
            len: 0,
        }
    }

    /// Feeds the next bytes of the file.
    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.head_len < KERNEL_HEAD {
            let n = data.len().min(KERNEL_HEAD - self.head_len);
            self.head[self.head_len..self.head_len + n].copy_from_slice(&data[..n]);
            self.head_len += n;
            data = &data[n..];
            if self.head_len == KERNEL_HEAD {
                td_loader::linux::normalize_setup_header(&mut self.head);
                self.hash.update(self.head);
            }
        }
        self.hash.update(data);
    }

    /// The digest and the number of bytes fed.
    pub fn finalize(mut self) -> ([u8; 48], u64) {
        if self.head_len < KERNEL_HEAD {
            let head = &mut self.head[..self.head_len];
            td_loader::linux::normalize_setup_header(head);
            self.hash.update(head);
        }
        (self.hash.finalize().into(), self.len)
    }
}

impl Blob<'_> {
    fn kernel_measure(&self) -> ([u8; 48], u64) {
        match *self {
            Blob::Bytes(b) => (kernel_digest(b), b.len() as u64),
            Blob::Hashed { digest, len } => (digest, len),
        }
    }

    fn measure(&self) -> ([u8; 48], u64) {
        match *self {
            Blob::Bytes(b) => (sha384(&[b]), b.len() as u64),
            Blob::Hashed { digest, len } => (digest, len),
        }
    }
}

/// The ordered events for booting `payload` with `params` where the firmware measures no VMM
/// configuration (a plain VM): [`plan_with`] and an empty [`VmmConfig`].
pub fn plan(params: &LaunchParams, payload: &Payload<'_>) -> Vec<PlannedEvent> {
    plan_with(params, &VmmConfig::default(), payload)
}

/// The ordered events for booting `payload` with `params`, measuring `config` into RTMR0 after
/// the launch parameters: the TD HOB (descriptor [`TD_HOB_DESCRIPTOR`], the list as the info,
/// digest over the list), then one event per ACPI file (descriptor [`ACPI_FILE_DESCRIPTOR`],
/// the file name as the info, digest over the file's bytes), all `EV_PLATFORM_CONFIG_FLAGS`.
/// No key is enrolled: [`plan_with_secure_boot`] with `None`.
pub fn plan_with(
    params: &LaunchParams,
    config: &VmmConfig<'_>,
    payload: &Payload<'_>,
) -> Vec<PlannedEvent> {
    plan_with_secure_boot(params, config, None, payload)
}

/// Event descriptor of the enrolled key record's event in RTMR0 (secure boot).
pub const SECURE_POLICY_DESCRIPTOR: &str = "secure_policy";
/// Event descriptor of the payload signer's event in RTMR1 (secure boot).
pub const PAYLOAD_SIGNER_DESCRIPTOR: &str = "payload_signer";
/// Event descriptor of the payload SVN's event in RTMR1 (secure boot; upstream td-shim's name).
pub const PAYLOAD_SVN_DESCRIPTOR: &str = "td_payload_svn";

/// What secure boot adds to the plan when a key is enrolled: the enrolled record as the image
/// holds it, and what [`crate::secure_boot::verify`] found in the payload's trailer. The payload
/// given with it is the verified payload without its trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecureBoot<'a> {
    /// The enrolled key record, its 96 bytes as the image holds them.
    pub record: &'a [u8; td_layout::signed::RECORD_SIZE],
    /// SHA-384 of the signer's public key ([`crate::secure_boot::Verified::signer`]).
    pub signer: [u8; 48],
    /// The payload's SVN from its signed header ([`crate::secure_boot::Verified::svn`]).
    pub svn: u64,
}

impl SecureBoot<'_> {
    /// The event recording the enrolled record (RTMR0, before its separator).
    pub fn policy_event(&self) -> PlannedEvent {
        config_event(
            "secure_policy",
            MR_RTMR0,
            SECURE_POLICY_DESCRIPTOR,
            self.record,
        )
    }

    /// The event recording the signer's key hash (RTMR1, first).
    pub fn signer_event(&self) -> PlannedEvent {
        config_event(
            "payload_signer",
            MR_RTMR1,
            PAYLOAD_SIGNER_DESCRIPTOR,
            &self.signer,
        )
    }

    /// The event recording the payload's SVN, u64 little-endian (RTMR1, after the signer).
    pub fn svn_event(&self) -> PlannedEvent {
        config_event(
            "payload_svn",
            MR_RTMR1,
            PAYLOAD_SVN_DESCRIPTOR,
            &self.svn.to_le_bytes(),
        )
    }
}

/// An `EV_PLATFORM_CONFIG_FLAGS` event whose digest is over its info.
fn config_event(name: &'static str, mr_index: u32, descriptor: &str, info: &[u8]) -> PlannedEvent {
    PlannedEvent {
        name,
        mr_index,
        event_type: EV_PLATFORM_CONFIG_FLAGS,
        data: config_info(descriptor, info),
        digest: sha384(&[info]),
    }
}

/// [`plan_with`], and with a key enrolled (`secure`) secure boot's three events, all
/// `EV_PLATFORM_CONFIG_FLAGS` with the digest over the info: RTMR0 "secure_policy" (the
/// 96-byte enrolled record) after the VMM's configuration and before RTMR0's separator; RTMR1
/// "payload_signer" (the signer's 48-byte key hash) then "td_payload_svn" (the SVN, u64
/// little-endian) before the payload's blob event. `payload` is the payload without its
/// signature trailer, measured as an unsigned payload is. With `None` this is [`plan_with`]'s
/// plan, event for event.
pub fn plan_with_secure_boot(
    params: &LaunchParams,
    config: &VmmConfig<'_>,
    secure: Option<&SecureBoot<'_>>,
    payload: &Payload<'_>,
) -> Vec<PlannedEvent> {
    let text = params.text();
    let mut events = Vec::with_capacity(10 + config.acpi.len());
    events.push(PlannedEvent {
        name: "launch_params",
        mr_index: MR_RTMR0,
        event_type: EV_PLATFORM_CONFIG_FLAGS,
        data: config_info("td_launch_params", text.as_bytes()),
        digest: sha384(&[text.as_bytes()]),
    });
    if let Some(hob) = config.td_hob {
        events.push(PlannedEvent {
            name: "td_hob",
            mr_index: MR_RTMR0,
            event_type: EV_PLATFORM_CONFIG_FLAGS,
            data: config_info(TD_HOB_DESCRIPTOR, hob),
            digest: sha384(&[hob]),
        });
    }
    for file in &config.acpi {
        events.push(PlannedEvent {
            name: "acpi_file",
            mr_index: MR_RTMR0,
            event_type: EV_PLATFORM_CONFIG_FLAGS,
            data: config_info(ACPI_FILE_DESCRIPTOR, file.name.as_bytes()),
            digest: file.digest,
        });
    }
    if let Some(secure) = secure {
        events.push(secure.policy_event());
    }
    events.push(separator(MR_RTMR0, SEPARATOR));
    if let Some(secure) = secure {
        events.push(secure.signer_event());
        events.push(secure.svn_event());
    }
    match payload {
        Payload::Linux {
            kernel,
            cmdline,
            initrd,
        } => {
            let (digest, len) = kernel.kernel_measure();
            events.push(PlannedEvent {
                name: "kernel",
                mr_index: MR_RTMR1,
                event_type: EV_EFI_PLATFORM_FIRMWARE_BLOB2,
                data: blob2("td_kernel", len),
                digest,
            });
            events.push(separator(MR_RTMR1, SEPARATOR));
            events.push(PlannedEvent {
                name: "cmdline",
                mr_index: MR_RTMR2,
                event_type: EV_PLATFORM_CONFIG_FLAGS,
                data: config_info("td_cmdline", cmdline),
                digest: sha384(&[cmdline]),
            });
            if let Some(initrd) = initrd {
                let (digest, len) = initrd.measure();
                events.push(PlannedEvent {
                    name: "initrd",
                    mr_index: MR_RTMR2,
                    event_type: EV_EFI_PLATFORM_FIRMWARE_BLOB2,
                    data: blob2("td_initrd", len),
                    digest,
                });
            }
        }
        Payload::Elf(elf) => {
            events.push(PlannedEvent {
                name: "payload",
                mr_index: MR_RTMR1,
                event_type: EV_EFI_PLATFORM_FIRMWARE_BLOB2,
                data: blob2("td_payload", elf.len() as u64),
                digest: sha384(&[elf]),
            });
            events.push(separator(MR_RTMR1, SEPARATOR));
        }
    }
    events
}

/// The error separators recorded when the boot fails at any point after the log was started:
/// one in each firmware register, RTMR0 then RTMR1, whatever was recorded before. A failed boot
/// therefore never leaves registers a successful boot can produce, even when it fails after the
/// whole plan was recorded (a command line refused after it was measured, a kernel that cannot
/// be placed).
pub fn error_separators() -> Vec<PlannedEvent> {
    [MR_RTMR0, MR_RTMR1]
        .into_iter()
        .map(|mr| separator(mr, ERROR_SEPARATOR))
        .collect()
}

/// A platform's measurement registers as an [`Extender`] for the log writer.
pub struct PlatformExtender<'a>(pub &'a dyn Platform);

impl Extender for PlatformExtender<'_> {
    fn extend(&mut self, rtmr: usize, digest: &[u8; 48]) -> Result<(), ExtendError> {
        self.0.extend_rtmr(rtmr, digest)
    }
}

/// A boot's measurements in progress: the log, and whether it was closed by a failure (the
/// fatal path closes it with [`error_separators`]).
pub struct Recording<'a> {
    writer: EventLogWriter<'a>,
    closed: bool,
}

impl<'a> Recording<'a> {
    /// Starts the log in `area` (the Spec ID event, vendor info "td-shim").
    pub fn new(area: &'a mut [u8]) -> Result<Self, WriteError> {
        Ok(Recording {
            writer: EventLogWriter::new(area, b"td-shim")?,
            closed: false,
        })
    }

    /// Records `planned` in order: each event is extended into its register and appended to the
    /// log, or, on the first failure, nothing more is.
    pub fn record(
        &mut self,
        extender: &mut dyn Extender,
        planned: Vec<PlannedEvent>,
    ) -> Result<(), WriteError> {
        if self.closed {
            return Err(WriteError::Closed);
        }
        for e in &planned {
            self.writer
                .log_digest(extender, e.mr_index, e.event_type, e.digest, &e.data)?;
        }
        Ok(())
    }

    /// Records the error separators of a failed boot, once; later calls add nothing. Returns
    /// whether every separator was recorded (the log area can be full; the boot is failing
    /// anyway, so the caller only reports it).
    pub fn record_failure(&mut self, extender: &mut dyn Extender) -> bool {
        if core::mem::replace(&mut self.closed, true) {
            return true;
        }
        error_separators().iter().all(|e| {
            self.writer
                .log_digest(extender, e.mr_index, e.event_type, e.digest, &e.data)
                .is_ok()
        })
    }

    /// The log bytes written so far.
    pub fn log(&self) -> &[u8] {
        self.writer.bytes()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    const PARAMS: LaunchParams = LaunchParams {
        platform: PlatformKind::Plain,
        ram_bytes: 512 << 20,
        vcpus: 2,
    };

    fn fake_kernel() -> Vec<u8> {
        let mut k = alloc::vec![0x11u8; 0x3000];
        k[0x211] = 0x01;
        k
    }

    #[test]
    fn linux_plan_order_registers_and_digests() {
        let kernel = fake_kernel();
        let events = plan(
            &PARAMS,
            &Payload::Linux {
                kernel: Blob::Bytes(&kernel),
                cmdline: b"console=ttyS0",
                initrd: Some(Blob::Bytes(b"initrd bytes")),
            },
        );
        let shape: Vec<_> = events
            .iter()
            .map(|e| (e.name, e.mr_index, e.event_type))
            .collect();
        assert_eq!(
            shape,
            [
                ("launch_params", 1, EV_PLATFORM_CONFIG_FLAGS),
                ("separator", 1, EV_SEPARATOR),
                ("kernel", 2, EV_EFI_PLATFORM_FIRMWARE_BLOB2),
                ("separator", 2, EV_SEPARATOR),
                ("cmdline", 3, EV_PLATFORM_CONFIG_FLAGS),
                ("initrd", 3, EV_EFI_PLATFORM_FIRMWARE_BLOB2),
            ]
        );
        // Digests over exact bytes.
        assert_eq!(events[4].digest, sha384(&[b"console=ttyS0"]));
        assert_eq!(events[5].digest, sha384(&[b"initrd bytes"]));
        assert_eq!(events[1].digest, sha384(&[&[0, 0, 0, 0]]));
        // The launch parameters are readable in the log.
        let text = PARAMS.text();
        assert!(text.contains("ram_bytes=536870912\nvcpus=2\n"));
        assert_eq!(&events[0].data[20..], text.as_bytes());
        assert_eq!(&events[0].data[..16], b"td_launch_params");
        // The command line is in the event data after the 16-byte descriptor and length.
        assert_eq!(&events[4].data[..10], b"td_cmdline");
        assert_eq!(&events[4].data[20..], b"console=ttyS0");
        // Blob: description "td_kernel\0", base 0, length.
        assert_eq!(events[2].data[0], 10);
        assert_eq!(&events[2].data[1..11], b"td_kernel\0");
        assert_eq!(events[2].data[11..19], [0; 8]);
        assert_eq!(
            u64::from_le_bytes(events[2].data[19..27].try_into().unwrap()),
            0x3000
        );
    }

    #[test]
    fn each_input_changes_only_its_own_event() {
        let kernel = fake_kernel();
        let base = plan(
            &PARAMS,
            &Payload::Linux {
                kernel: Blob::Bytes(&kernel),
                cmdline: b"a",
                initrd: Some(Blob::Bytes(b"i")),
            },
        );
        let mut k2 = kernel.clone();
        k2[0x2FFF] ^= 1;
        let other_kernel = plan(
            &PARAMS,
            &Payload::Linux {
                kernel: Blob::Bytes(&k2),
                cmdline: b"a",
                initrd: Some(Blob::Bytes(b"i")),
            },
        );
        let other_cmdline = plan(
            &PARAMS,
            &Payload::Linux {
                kernel: Blob::Bytes(&kernel),
                cmdline: b"b",
                initrd: Some(Blob::Bytes(b"i")),
            },
        );
        let other_initrd = plan(
            &PARAMS,
            &Payload::Linux {
                kernel: Blob::Bytes(&kernel),
                cmdline: b"a",
                initrd: Some(Blob::Bytes(b"j")),
            },
        );
        let more_ram = plan(
            &LaunchParams {
                ram_bytes: 1 << 30,
                ..PARAMS
            },
            &Payload::Linux {
                kernel: Blob::Bytes(&kernel),
                cmdline: b"a",
                initrd: Some(Blob::Bytes(b"i")),
            },
        );
        let differing = |other: &[PlannedEvent]| -> Vec<&str> {
            base.iter()
                .zip(other)
                .filter(|(a, b)| a != b)
                .map(|(a, _)| a.name)
                .collect()
        };
        assert_eq!(differing(&other_kernel), ["kernel"]);
        assert_eq!(differing(&other_cmdline), ["cmdline"]);
        assert_eq!(differing(&other_initrd), ["initrd"]);
        assert_eq!(differing(&more_ram), ["launch_params"]);
    }

    #[test]
    fn streaming_and_pre_hashed_inputs_measure_the_same() {
        let kernel = fake_kernel();
        for chunk in [1, 7, 0x28F, 0x290, 0x291, 4096] {
            let mut h = KernelHasher::new();
            kernel.chunks(chunk).for_each(|c| h.update(c));
            assert_eq!(
                h.finalize(),
                (kernel_digest(&kernel), kernel.len() as u64),
                "chunk {chunk}"
            );
        }
        let mut tiny = KernelHasher::new();
        tiny.update(&[1, 2, 3]);
        assert_eq!(tiny.finalize().0, kernel_digest(&[1, 2, 3]));
        let (digest, len) = {
            let mut h = KernelHasher::new();
            h.update(&kernel);
            h.finalize()
        };
        let bytes = plan(
            &PARAMS,
            &Payload::Linux {
                kernel: Blob::Bytes(&kernel),
                cmdline: b"c",
                initrd: Some(Blob::Bytes(b"i")),
            },
        );
        let hashed = plan(
            &PARAMS,
            &Payload::Linux {
                kernel: Blob::Hashed { digest, len },
                cmdline: b"c",
                initrd: Some(Blob::Hashed {
                    digest: sha384(&[b"i"]),
                    len: 1,
                }),
            },
        );
        assert_eq!(bytes, hashed);
    }

    #[test]
    fn the_loader_fields_do_not_change_the_kernel_digest() {
        let file = fake_kernel();
        let mut patched = file.clone();
        patched[0x210] = 0xB0; // type_of_loader, as QEMU writes it
        patched[0x228..0x22C].copy_from_slice(&0x2_0000u32.to_le_bytes()); // cmd_line_ptr
        assert_eq!(kernel_digest(&file), kernel_digest(&patched));
        let mut code = file.clone();
        code[0x1000] ^= 1;
        assert_ne!(kernel_digest(&file), kernel_digest(&code));
        // Tiny inputs are handled.
        let _ = kernel_digest(&[1, 2, 3]);
    }

    #[test]
    fn a_recorded_plan_replays_to_the_registers() {
        use crate::eventlog::{parse, SoftwareRtmrs};
        let kernel = fake_kernel();
        let planned = plan(
            &PARAMS,
            &Payload::Linux {
                kernel: Blob::Bytes(&kernel),
                cmdline: b"console=ttyS0",
                initrd: None,
            },
        );
        let mut area = alloc::vec![0u8; 4096];
        let mut regs = SoftwareRtmrs::default();
        let mut rec = Recording::new(&mut area).unwrap();
        rec.record(&mut regs, planned.clone()).unwrap();
        let log = parse(rec.log()).unwrap();
        assert_eq!(log.events().len(), planned.len());
        assert_eq!(log.replay(), regs.0);
        assert_eq!(regs.0[3], [0; 48], "RTMR3 is the OS's");
        // A failure after recording everything still adds both error separators (issue: a
        // command line refused after it was measured left a successful boot's registers), and
        // closes the log: a second failure adds nothing, and nothing more can be recorded.
        let success = regs.0;
        assert!(rec.record_failure(&mut regs));
        let log = parse(rec.log()).unwrap();
        assert_eq!(log.events().len(), planned.len() + 2);
        assert_ne!(regs.0[0], success[0]);
        assert_ne!(regs.0[1], success[1]);
        assert_eq!(regs.0[2], success[2]);
        assert!(rec.record_failure(&mut regs));
        assert_eq!(parse(rec.log()).unwrap().events().len(), planned.len() + 2);
        assert_eq!(
            rec.record(&mut regs, planned.clone()),
            Err(WriteError::Closed)
        );
        let mut area = alloc::vec![0u8; 4096];
        let mut regs = SoftwareRtmrs::default();
        let mut rec = Recording::new(&mut area).unwrap();
        rec.record_failure(&mut regs);
        let log = parse(rec.log()).unwrap();
        let seps: Vec<_> = log
            .events()
            .iter()
            .map(|e| (e.mr_index(), e.data().to_vec()))
            .collect();
        assert_eq!(
            seps,
            [(1, ERROR_SEPARATOR.to_vec()), (2, ERROR_SEPARATOR.to_vec())]
        );
        assert_eq!(log.replay(), regs.0);
    }

    #[test]
    fn vmm_config_goes_into_rtmr0_between_the_launch_parameters_and_the_separator() {
        let hob = [7u8; 40];
        let config = VmmConfig {
            td_hob: Some(&hob),
            acpi: alloc::vec![
                ConfigFile::of("etc/table-loader", b"script"),
                ConfigFile::of("etc/acpi/tables", b"DSDT..."),
            ],
        };
        let payload = Payload::Elf(b"\x7fELF");
        let with = plan_with(&PARAMS, &config, &payload);
        let names: Vec<_> = with.iter().map(|e| (e.name, e.mr_index)).collect();
        assert_eq!(
            names,
            [
                ("launch_params", 1),
                ("td_hob", 1),
                ("acpi_file", 1),
                ("acpi_file", 1),
                ("separator", 1),
                ("payload", 2),
                ("separator", 2)
            ]
        );
        assert_eq!(with[1].digest, sha384(&[&hob]));
        assert_eq!(&with[1].data[..6], b"td_hob");
        assert_eq!(&with[1].data[20..], &hob);
        assert_eq!(with[3].digest, sha384(&[b"DSDT..."]));
        assert_eq!(&with[3].data[20..], b"etc/acpi/tables");
        assert_eq!(&with[3].data[..12], b"td_acpi_file");
        // An empty configuration is the plain plan, event for event.
        assert_eq!(
            plan_with(&PARAMS, &VmmConfig::default(), &payload),
            plan(&PARAMS, &payload)
        );
        // Every input changes the plan.
        let mut other = config.clone();
        other.acpi[1] = ConfigFile::of("etc/acpi/tables", b"DSDT...!");
        assert_ne!(plan_with(&PARAMS, &other, &payload), with);
        let hob2 = [8u8; 40];
        let other = VmmConfig {
            td_hob: Some(&hob2),
            ..config.clone()
        };
        assert_ne!(plan_with(&PARAMS, &other, &payload), with);
    }

    #[test]
    fn elf_plan_and_error_separators() {
        let events = plan(&PARAMS, &Payload::Elf(b"\x7fELF"));
        let names: Vec<_> = events.iter().map(|e| e.name).collect();
        assert_eq!(
            names,
            ["launch_params", "separator", "payload", "separator"]
        );
        // Whatever failed, both firmware registers get an error separator, RTMR0 first.
        let errs = error_separators();
        assert_eq!(errs.iter().map(|e| e.mr_index).collect::<Vec<_>>(), [1, 2]);
        assert!(errs
            .iter()
            .all(|e| e.data == ERROR_SEPARATOR && e.event_type == EV_SEPARATOR));
    }

    #[test]
    fn secure_boot_adds_its_three_events_and_nothing_else() {
        let kernel = fake_kernel();
        let hob = [7u8; 40];
        let config = VmmConfig {
            td_hob: Some(&hob),
            acpi: alloc::vec![ConfigFile::of("etc/table-loader", b"script")],
        };
        let linux = Payload::Linux {
            kernel: Blob::Bytes(&kernel),
            cmdline: b"console=ttyS0",
            initrd: Some(Blob::Bytes(b"i")),
        };
        let record = [0x42u8; td_layout::signed::RECORD_SIZE];
        let secure = SecureBoot {
            record: &record,
            signer: [0xAB; 48],
            svn: 0x0102_0304_0506_0708,
        };
        let with = plan_with_secure_boot(&PARAMS, &config, Some(&secure), &linux);
        let shape: Vec<_> = with
            .iter()
            .map(|e| (e.name, e.mr_index, e.event_type))
            .collect();
        assert_eq!(
            shape,
            [
                ("launch_params", 1, EV_PLATFORM_CONFIG_FLAGS),
                ("td_hob", 1, EV_PLATFORM_CONFIG_FLAGS),
                ("acpi_file", 1, EV_PLATFORM_CONFIG_FLAGS),
                ("secure_policy", 1, EV_PLATFORM_CONFIG_FLAGS),
                ("separator", 1, EV_SEPARATOR),
                ("payload_signer", 2, EV_PLATFORM_CONFIG_FLAGS),
                ("payload_svn", 2, EV_PLATFORM_CONFIG_FLAGS),
                ("kernel", 2, EV_EFI_PLATFORM_FIRMWARE_BLOB2),
                ("separator", 2, EV_SEPARATOR),
                ("cmdline", 3, EV_PLATFORM_CONFIG_FLAGS),
                ("initrd", 3, EV_EFI_PLATFORM_FIRMWARE_BLOB2),
            ]
        );
        // Descriptors, infos and digests over the infos.
        assert_eq!(&with[3].data[..16], b"secure_policy\0\0\0");
        assert_eq!(&with[3].data[16..20], &96u32.to_le_bytes());
        assert_eq!(&with[3].data[20..], &record);
        assert_eq!(with[3].digest, sha384(&[&record]));
        assert_eq!(&with[5].data[..16], b"payload_signer\0\0");
        assert_eq!(&with[5].data[20..], &[0xAB; 48]);
        assert_eq!(with[5].digest, sha384(&[&[0xAB; 48]]));
        assert_eq!(&with[6].data[..16], b"td_payload_svn\0\0");
        assert_eq!(&with[6].data[20..], &0x0102_0304_0506_0708u64.to_le_bytes());
        assert_eq!(
            with[6].digest,
            sha384(&[&0x0102_0304_0506_0708u64.to_le_bytes()])
        );
        // Every other event is the unsigned plan's, in the same order.
        let without = plan_with(&PARAMS, &config, &linux);
        let rest: Vec<_> = with
            .iter()
            .filter(|e| !matches!(e.name, "secure_policy" | "payload_signer" | "payload_svn"))
            .cloned()
            .collect();
        assert_eq!(rest, without);
        // No key: exactly plan_with's plan.
        assert_eq!(
            plan_with_secure_boot(&PARAMS, &config, None, &linux),
            without
        );
        // An ELF payload: the same two RTMR1 events before td_payload, no RTMR2.
        let elf = plan_with_secure_boot(
            &PARAMS,
            &VmmConfig::default(),
            Some(&secure),
            &Payload::Elf(b"\x7fELF"),
        );
        let names: Vec<_> = elf.iter().map(|e| e.name).collect();
        assert_eq!(
            names,
            [
                "launch_params",
                "secure_policy",
                "separator",
                "payload_signer",
                "payload_svn",
                "payload",
                "separator"
            ]
        );
        // Each secure-boot input changes only its own event.
        let other_svn = SecureBoot { svn: 1, ..secure };
        let other_signer = SecureBoot {
            signer: [0xCD; 48],
            ..secure
        };
        let record2 = [0x43u8; 96];
        let other_record = SecureBoot {
            record: &record2,
            ..secure
        };
        let differing = |s: &SecureBoot<'_>| -> Vec<&str> {
            with.iter()
                .zip(plan_with_secure_boot(&PARAMS, &config, Some(s), &linux))
                .filter(|(a, b)| *a != b)
                .map(|(a, _)| a.name)
                .collect()
        };
        assert_eq!(differing(&other_svn), ["payload_svn"]);
        assert_eq!(differing(&other_signer), ["payload_signer"]);
        assert_eq!(differing(&other_record), ["secure_policy"]);
    }
}
