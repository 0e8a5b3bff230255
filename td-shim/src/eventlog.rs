//! Reading and replaying a confidential-computing (CC) event log: the TCG PC Client
//! crypto-agile log as TDX firmware writes it (td-shim, OVMF/TDVF), published through the CCEL
//! ACPI table.
//!
//! # Format (TCG PC Client Platform Firmware Profile, "crypto agile log"; all little-endian)
//!
//! The log starts with one `TCG_PCR_EVENT` in the old SHA-1 layout, 32 bytes of header:
//!
//! | offset | field | value |
//! |---|---|---|
//! | 0 | `PCRIndex` u32 | not checked (td-shim writes 0, OVMF 1) |
//! | 4 | `EventType` u32 | `EV_NO_ACTION` (3) |
//! | 8 | `Digest[20]` | zero |
//! | 28 | `EventSize` u32 | size of the `TCG_EfiSpecIdEvent` that follows |
//!
//! `TCG_EfiSpecIdEvent`: `signature[16]` = `"Spec ID Event03\0"`, `platformClass` u32,
//! `specVersionMinor` u8, `specVersionMajor` u8, `specErrata` u8, `uintnSize` u8,
//! `numberOfAlgorithms` u32, then that many `{algorithmId u16, digestSize u16}`, then
//! `vendorInfoSize` u8 and `vendorInfo`. Its fields must fill `EventSize` exactly.
//!
//! Every later record is a `TCG_PCR_EVENT2` (UEFI's `CC_EVENT` has the same layout):
//! `MrIndex` u32, `EventType` u32, `TPML_DIGEST_VALUES` = {`count` u32, then `count` ×
//! {`hashAlg` u16, digest of the size the Spec ID event declares for `hashAlg`}}, `EventSize`
//! u32, event data. With SHA-384 alone the fixed part is 66 bytes.
//!
//! # CC measurement register index
//!
//! `MrIndex` is the CC MR index of UEFI's `EFI_CC_MEASUREMENT_PROTOCOL` (td-shim spec table
//! 3.5-3), not a TPM PCR number. On TDX:
//!
//! | CC MR index | register | content |
//! |---|---|---|
//! | 0 | MRTD | the initial TD image; never extended through the log |
//! | 1 | RTMR0 | firmware configuration |
//! | 2 | RTMR1 | OS loader, kernel |
//! | 3 | RTMR2 | OS: command line, initrd, boot loader commands |
//! | 4 | RTMR3 | runtime (OS, guest agent) |
//!
//! So an event with CC MR index `m` in `1..=4` extends `RTMR[m - 1]`. `EV_NO_ACTION` events are
//! informational and extend nothing. The parser refuses a measured event (any other type) whose
//! index is not in `1..=4`, and any event with an index above 4, so every event it returns is
//! either informational or extends exactly one RTMR.
//!
//! # End of the log
//!
//! The log area (the CCEL table's LAML bytes) has no terminator record and no event count: it
//! ends where the unused tail starts. At each record boundary the log ends when
//! - no bytes are left, or
//! - the next 8 bytes (a record's `MrIndex` and `EventType`; fewer if the buffer ends first) are
//!   all 0xFF — the erased-flash pattern OVMF and td-shim fill the area with, or
//! - they are all 0x00 — a zero-filled area (`MrIndex` 0 / `EventType` 0 would be an
//!   `EV_PREBOOT_CERT` in MRTD, which a CC log never holds).
//!
//! Neither pattern can start a valid record (`MrIndex` 0xFFFFFFFF, or 0 with a measured type, is
//! refused), so the rule never hides an event.
//!
//! The real logs in `testdata/eventlogs` show both: the go-tdx-guest log (OVMF + grub, 43
//! events) and trustee's OVMF logs end in 0xFF, trustee's td-shim log (5 events) in 0x00. The
//! bytes after the end are not examined; [`EventLog::end_offset`] says where the next record
//! would go.
//!
//! # Limits
//!
//! Everything is bounds-checked and the arithmetic is checked: no input makes the parser or
//! the replay panic. Beyond the format's own rules the parser refuses absurd logs: more than
//! [`MAX_ALGORITHMS`] algorithms, digests longer than [`MAX_DIGEST_SIZE`], event data longer
//! than [`MAX_EVENT_DATA_SIZE`], more than [`MAX_EVENTS`] events. A log must carry SHA-384 (the
//! RTMRs' hash) in every event.
//!
//! # Writing
//!
//! [`EventLogWriter`] writes a log the parser reads back: a SHA-384-only log in a log area,
//! each event extending its RTMR through an [`Extender`]. It needs no allocator, for the
//! firmware; [`writer`] describes the Spec ID event it writes and its rules.

pub mod writer;

pub use writer::{
    EventLogWriter, ExtendError, Extender, SoftwareRtmrs, WriteError, EVENT2_HEADER_SIZE,
    MAX_VENDOR_INFO_SIZE, SPEC_ERRATA, SPEC_ID_RECORD_SIZE, SPEC_VERSION_MAJOR, SPEC_VERSION_MINOR,
    UINTN_SIZE,
};

use alloc::vec::Vec;
use core::fmt;
use sha2::{Digest, Sha384};
use zerocopy::little_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// `TPM_ALG_SHA1`.
pub const ALG_SHA1: u16 = 0x0004;
/// `TPM_ALG_SHA256`.
pub const ALG_SHA256: u16 = 0x000B;
/// `TPM_ALG_SHA384`: the hash of the RTMRs, required in every event.
pub const ALG_SHA384: u16 = 0x000C;
/// `TPM_ALG_SHA512`.
pub const ALG_SHA512: u16 = 0x000D;
/// `TPM_ALG_SM3_256`.
pub const ALG_SM3_256: u16 = 0x0012;

/// Bytes of a SHA-384 digest, and of an RTMR.
pub const SHA384_DIGEST_SIZE: usize = 48;
/// Number of RTMRs (CC MR indices 1 to 4).
pub const RTMR_COUNT: usize = 4;
/// `TCG_EfiSpecIdEvent.signature` of a crypto-agile log.
pub const SPEC_ID_SIGNATURE: &[u8; 16] = b"Spec ID Event03\0";
/// Bytes of the first record's header (`TCG_PCR_EVENT` without its event data).
pub const PCR_EVENT_HEADER_SIZE: usize = 32;
/// Bytes of `TCG_EfiSpecIdEvent` before its algorithm list.
pub const SPEC_ID_FIXED_SIZE: usize = 28;

/// Most algorithms a Spec ID event may declare.
pub const MAX_ALGORITHMS: usize = 16;
/// Longest digest an algorithm may declare (SHA-512's).
pub const MAX_DIGEST_SIZE: u16 = 64;
/// Longest event data accepted (a firmware event is at most a few KiB: a TD HOB, a UEFI
/// variable, a command-line region).
pub const MAX_EVENT_DATA_SIZE: u32 = 16 << 20;
/// Most events accepted after the Spec ID event (firmware logs hold tens).
pub const MAX_EVENTS: usize = 1 << 16;

/// `TCG_PCR_EVENT` without its event data: the first record's header, in the SHA-1 layout.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct PcrEventHeader {
    pcr_index: U32,
    event_type: U32,
    digest: [u8; 20],
    event_size: U32,
}

/// `TCG_EfiSpecIdEvent` before its algorithm list.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct SpecIdEventHeader {
    signature: [u8; 16],
    platform_class: U32,
    spec_version_minor: u8,
    spec_version_major: u8,
    spec_errata: u8,
    uintn_size: u8,
    number_of_algorithms: U32,
}

/// `TCG_EfiSpecIdEventAlgorithmSize`: one entry of the Spec ID event's algorithm list.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct AlgorithmSize {
    algorithm_id: U16,
    digest_size: U16,
}

/// The first fields of `TCG_PCR_EVENT2`, before `TPML_DIGEST_VALUES` (whose `count` u32, then
/// `count` × {`hashAlg` u16, digest}, follow, then `EventSize` u32 and the data).
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct PcrEvent2Head {
    mr_index: U32,
    event_type: U32,
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<PcrEventHeader>() == PCR_EVENT_HEADER_SIZE);
    assert!(offset_of!(PcrEventHeader, event_type) == 4);
    assert!(offset_of!(PcrEventHeader, digest) == 8);
    assert!(offset_of!(PcrEventHeader, event_size) == 28);
    assert!(size_of::<SpecIdEventHeader>() == SPEC_ID_FIXED_SIZE);
    assert!(offset_of!(SpecIdEventHeader, platform_class) == 16);
    assert!(offset_of!(SpecIdEventHeader, spec_version_minor) == 20);
    assert!(offset_of!(SpecIdEventHeader, uintn_size) == 23);
    assert!(offset_of!(SpecIdEventHeader, number_of_algorithms) == 24);
    assert!(size_of::<AlgorithmSize>() == 4);
    assert!(size_of::<PcrEvent2Head>() == 8);
};

/// The `T` stored at `log[at..]`; `None` if the log ends first.
fn read_at<T: FromBytes + KnownLayout + Immutable>(log: &[u8], at: usize) -> Option<T> {
    T::read_from_prefix(log.get(at..)?)
        .ok()
        .map(|(value, _)| value)
}

/// The replayed RTMR0 to RTMR3.
pub type Rtmrs = [[u8; SHA384_DIGEST_SIZE]; RTMR_COUNT];

/// The size a known algorithm's digest must have.
fn known_digest_size(algorithm: u16) -> Option<u16> {
    match algorithm {
        ALG_SHA1 => Some(20),
        ALG_SHA256 | ALG_SM3_256 => Some(32),
        ALG_SHA384 => Some(48),
        ALG_SHA512 => Some(64),
        _ => None,
    }
}

/// Defines every known event type once: as a `u32` constant `EV_*` in [`event_types`], as an
/// associated constant of [`EventType`], and its name for [`EventType::name`].
macro_rules! event_types {
    ($($konst:ident = $ev:ident = $value:literal,)*) => {
        /// The event types (TCG PC Client PFP §10.4.1 and the UEFI types from 0x80000000) as
        /// plain `u32` values, the `EventType` field of an event record. This is their one
        /// definition in the workspace: [`EventType`] has the same values as associated
        /// constants, and `crate::measurement` re-exports the ones it logs.
        pub mod event_types {
            $(
                #[doc = concat!("`", stringify!($ev), "` (", stringify!($value), ").")]
                pub const $ev: u32 = $value;
            )*
        }

        impl EventType {
            $(
                #[doc = concat!("`", stringify!($ev), "`.")]
                pub const $konst: Self = Self(event_types::$ev);
            )*

            /// The TCG or UEFI name of the type (`"EV_SEPARATOR"`), if it is a known one.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $(event_types::$ev => Some(stringify!($ev)),)*
                    _ => None,
                }
            }
        }
    };
}

/// An event's type (TCG PC Client PFP §10.4.1 and the UEFI types from 0x80000000).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EventType(pub u32);

event_types! {
    PREBOOT_CERT = EV_PREBOOT_CERT = 0x0,
    POST_CODE = EV_POST_CODE = 0x1,
    UNUSED = EV_UNUSED = 0x2,
    NO_ACTION = EV_NO_ACTION = 0x3,
    SEPARATOR = EV_SEPARATOR = 0x4,
    ACTION = EV_ACTION = 0x5,
    EVENT_TAG = EV_EVENT_TAG = 0x6,
    S_CRTM_CONTENTS = EV_S_CRTM_CONTENTS = 0x7,
    S_CRTM_VERSION = EV_S_CRTM_VERSION = 0x8,
    CPU_MICROCODE = EV_CPU_MICROCODE = 0x9,
    PLATFORM_CONFIG_FLAGS = EV_PLATFORM_CONFIG_FLAGS = 0xA,
    TABLE_OF_DEVICES = EV_TABLE_OF_DEVICES = 0xB,
    COMPACT_HASH = EV_COMPACT_HASH = 0xC,
    IPL = EV_IPL = 0xD,
    IPL_PARTITION_DATA = EV_IPL_PARTITION_DATA = 0xE,
    NONHOST_CODE = EV_NONHOST_CODE = 0xF,
    NONHOST_CONFIG = EV_NONHOST_CONFIG = 0x10,
    NONHOST_INFO = EV_NONHOST_INFO = 0x11,
    OMIT_BOOT_DEVICE_EVENTS = EV_OMIT_BOOT_DEVICE_EVENTS = 0x12,
    EFI_EVENT_BASE = EV_EFI_EVENT_BASE = 0x8000_0000,
    EFI_VARIABLE_DRIVER_CONFIG = EV_EFI_VARIABLE_DRIVER_CONFIG = 0x8000_0001,
    EFI_VARIABLE_BOOT = EV_EFI_VARIABLE_BOOT = 0x8000_0002,
    EFI_BOOT_SERVICES_APPLICATION = EV_EFI_BOOT_SERVICES_APPLICATION = 0x8000_0003,
    EFI_BOOT_SERVICES_DRIVER = EV_EFI_BOOT_SERVICES_DRIVER = 0x8000_0004,
    EFI_RUNTIME_SERVICES_DRIVER = EV_EFI_RUNTIME_SERVICES_DRIVER = 0x8000_0005,
    EFI_GPT_EVENT = EV_EFI_GPT_EVENT = 0x8000_0006,
    EFI_ACTION = EV_EFI_ACTION = 0x8000_0007,
    EFI_PLATFORM_FIRMWARE_BLOB = EV_EFI_PLATFORM_FIRMWARE_BLOB = 0x8000_0008,
    EFI_HANDOFF_TABLES = EV_EFI_HANDOFF_TABLES = 0x8000_0009,
    EFI_PLATFORM_FIRMWARE_BLOB2 = EV_EFI_PLATFORM_FIRMWARE_BLOB2 = 0x8000_000A,
    EFI_HANDOFF_TABLES2 = EV_EFI_HANDOFF_TABLES2 = 0x8000_000B,
    EFI_VARIABLE_BOOT2 = EV_EFI_VARIABLE_BOOT2 = 0x8000_000C,
    EFI_GPT_EVENT2 = EV_EFI_GPT_EVENT2 = 0x8000_000D,
    EFI_HCRTM_EVENT = EV_EFI_HCRTM_EVENT = 0x8000_0010,
    EFI_VARIABLE_AUTHORITY = EV_EFI_VARIABLE_AUTHORITY = 0x8000_00E0,
    EFI_SPDM_FIRMWARE_BLOB = EV_EFI_SPDM_FIRMWARE_BLOB = 0x8000_00E1,
    EFI_SPDM_FIRMWARE_CONFIG = EV_EFI_SPDM_FIRMWARE_CONFIG = 0x8000_00E2,
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "{:#010x}", self.0),
        }
    }
}

/// The RTMR (0 to 3) that CC MR index `mr_index` extends: `Some(mr_index - 1)` for 1 to 4,
/// `None` for 0 (MRTD, which the log never extends) and anything larger.
pub const fn rtmr_of_mr_index(mr_index: u32) -> Option<usize> {
    match mr_index {
        1..=4 => Some(mr_index as usize - 1),
        _ => None,
    }
}

/// One algorithm a Spec ID event declares: every digest of that algorithm in the log has
/// `digest_size` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Algorithm {
    /// `TPM_ALG_ID` (e.g. [`ALG_SHA384`]).
    pub id: u16,
    /// Bytes of its digests.
    pub digest_size: u16,
}

impl Algorithm {
    /// The algorithm's usual name (`"sha384"`), if it is a known one.
    pub const fn name(&self) -> Option<&'static str> {
        match self.id {
            ALG_SHA1 => Some("sha1"),
            ALG_SHA256 => Some("sha256"),
            ALG_SHA384 => Some("sha384"),
            ALG_SHA512 => Some("sha512"),
            ALG_SM3_256 => Some("sm3_256"),
            _ => None,
        }
    }
}

/// The log's first record: the `TCG_EfiSpecIdEvent` and the header around it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecIdEvent<'a> {
    /// The header's `PCRIndex` (not meaningful; td-shim writes 0, OVMF 1).
    pub mr_index: u32,
    /// `platformClass` (0 = client).
    pub platform_class: u32,
    /// `specVersionMinor`.
    pub spec_version_minor: u8,
    /// `specVersionMajor`.
    pub spec_version_major: u8,
    /// `specErrata`.
    pub spec_errata: u8,
    /// `uintnSize`: 1 for UINT32, 2 for UINT64.
    pub uintn_size: u8,
    /// The declared algorithms, in log order; distinct, one of them SHA-384.
    pub algorithms: Vec<Algorithm>,
    /// `vendorInfo` (td-shim writes `"td-shim"`, OVMF nothing).
    pub vendor_info: &'a [u8],
}

impl SpecIdEvent<'_> {
    /// The declared algorithm `id`, with its position in [`Self::algorithms`].
    fn algorithm(&self, id: u16) -> Option<(usize, Algorithm)> {
        self.algorithms
            .iter()
            .copied()
            .enumerate()
            .find(|(_, a)| a.id == id)
    }
}

/// One `TCG_PCR_EVENT2` record after the Spec ID event.
///
/// Only the parser builds events, so every event is either `EV_NO_ACTION` (extends nothing)
/// or extends one RTMR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event<'a> {
    index: usize,
    offset: usize,
    mr_index: u32,
    event_type: EventType,
    digest: &'a [u8; SHA384_DIGEST_SIZE],
    data: &'a [u8],
}

impl<'a> Event<'a> {
    /// Position in the log: the Spec ID event is 0, so the first event here is 1.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Byte offset of the record in the log.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The CC MR index (see the module documentation): 1 to 4 for RTMR0 to RTMR3, 0 to 4 for
    /// `EV_NO_ACTION`.
    pub fn mr_index(&self) -> u32 {
        self.mr_index
    }

    /// The event type.
    pub fn event_type(&self) -> EventType {
        self.event_type
    }

    /// The SHA-384 digest, the one the RTMR is extended with.
    pub fn digest(&self) -> &'a [u8; SHA384_DIGEST_SIZE] {
        self.digest
    }

    /// The event data.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The RTMR (0 to 3) this event extends; `None` for `EV_NO_ACTION`.
    pub fn rtmr(&self) -> Option<usize> {
        if self.event_type == EventType::NO_ACTION {
            None
        } else {
            rtmr_of_mr_index(self.mr_index)
        }
    }
}

/// How the log ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogEnd {
    /// The last record ended exactly at the end of the buffer.
    EndOfBuffer,
    /// The bytes where the next record would start are this padding byte (0xFF or 0x00).
    Padding(u8),
}

/// A parsed log: the Spec ID event and every event after it, borrowing the log bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventLog<'a> {
    spec_id: SpecIdEvent<'a>,
    events: Vec<Event<'a>>,
    end_offset: usize,
    end: LogEnd,
}

impl<'a> EventLog<'a> {
    /// The Spec ID event.
    pub fn spec_id(&self) -> &SpecIdEvent<'a> {
        &self.spec_id
    }

    /// The events after the Spec ID event, in log order.
    pub fn events(&self) -> &[Event<'a>] {
        &self.events
    }

    /// Byte offset just past the last event: where the next event would be written.
    pub fn end_offset(&self) -> usize {
        self.end_offset
    }

    /// What follows the last event.
    pub fn end(&self) -> LogEnd {
        self.end
    }

    /// The RTMRs the log's events produce (see [`replay`]).
    pub fn replay(&self) -> Rtmrs {
        replay(&self.events)
    }
}

/// Why a log was refused. `event` is the record's position (0 for the Spec ID event) and
/// `offset` a byte offset in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventLogError {
    /// The log ends inside a record's fixed fields or digests.
    TruncatedHeader {
        /// Record position.
        event: usize,
        /// Offset of the record.
        offset: usize,
    },
    /// The first record is not `EV_NO_ACTION`.
    FirstEventNotNoAction {
        /// Its type.
        event_type: u32,
    },
    /// The first record's SHA-1 digest field is not zero.
    FirstEventDigestNotZero,
    /// The first record's data does not start with `"Spec ID Event03\0"`.
    BadSignature,
    /// The Spec ID event's data ends before the fields it declares.
    SpecIdTooShort {
        /// Its `EventSize`.
        size: u32,
    },
    /// The Spec ID event's fields do not fill its `EventSize` exactly.
    SpecIdSizeMismatch {
        /// Its `EventSize`.
        size: u32,
        /// Bytes its fields use.
        used: usize,
    },
    /// The Spec ID event declares no algorithm.
    NoAlgorithms,
    /// The Spec ID event declares more than [`MAX_ALGORITHMS`] algorithms.
    TooManyAlgorithms {
        /// `numberOfAlgorithms`.
        count: u32,
    },
    /// An algorithm's declared digest size is 0, above [`MAX_DIGEST_SIZE`], or not the size
    /// of that (known) algorithm.
    BadDigestSize {
        /// `algorithmId`.
        algorithm: u16,
        /// `digestSize`.
        size: u16,
    },
    /// The Spec ID event declares an algorithm twice.
    DuplicateAlgorithm {
        /// `algorithmId`.
        algorithm: u16,
    },
    /// The Spec ID event does not declare SHA-384.
    NoSha384,
    /// A record's digest count is 0 or above the number of declared algorithms.
    BadDigestCount {
        /// Record position.
        event: usize,
        /// Its `count`.
        count: u32,
    },
    /// A record carries a digest of an algorithm the Spec ID event does not declare.
    UnknownAlgorithm {
        /// Record position.
        event: usize,
        /// Its `hashAlg`.
        algorithm: u16,
    },
    /// A record carries two digests of one algorithm.
    DuplicateDigest {
        /// Record position.
        event: usize,
        /// The repeated `hashAlg`.
        algorithm: u16,
    },
    /// A record has no SHA-384 digest.
    MissingSha384 {
        /// Record position.
        event: usize,
    },
    /// A record's CC MR index is above 4, or 0 (MRTD) for a type other than `EV_NO_ACTION`.
    BadMrIndex {
        /// Record position.
        event: usize,
        /// Its `MrIndex`.
        mr_index: u32,
        /// Its `EventType`.
        event_type: u32,
    },
    /// A record's `EventSize` is above [`MAX_EVENT_DATA_SIZE`].
    EventTooLarge {
        /// Record position.
        event: usize,
        /// Its `EventSize`.
        size: u32,
    },
    /// A record's event data runs past the end of the log.
    EventDataOutOfBounds {
        /// Record position.
        event: usize,
        /// Offset of the event data.
        offset: usize,
        /// Its `EventSize`.
        size: u32,
    },
    /// The log has more than [`MAX_EVENTS`] events.
    TooManyEvents,
}

impl fmt::Display for EventLogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TruncatedHeader { event, offset } => write!(
                f,
                "event log: event {event} at offset {offset:#x} is cut off by the end of the log"
            ),
            Self::FirstEventNotNoAction { event_type } => write!(
                f,
                "event log: the first event has type {event_type:#x}, not EV_NO_ACTION: not a crypto-agile log"
            ),
            Self::FirstEventDigestNotZero => {
                write!(f, "event log: the first event's SHA-1 digest is not zero")
            }
            Self::BadSignature => write!(
                f,
                "event log: the first event is not a \"Spec ID Event03\" event: not a crypto-agile log"
            ),
            Self::SpecIdTooShort { size } => write!(
                f,
                "event log: the Spec ID event's {size} bytes end before the fields it declares"
            ),
            Self::SpecIdSizeMismatch { size, used } => write!(
                f,
                "event log: the Spec ID event is {size} bytes but its fields use {used}"
            ),
            Self::NoAlgorithms => write!(f, "event log: the Spec ID event declares no algorithm"),
            Self::TooManyAlgorithms { count } => write!(
                f,
                "event log: the Spec ID event declares {count} algorithms (at most {MAX_ALGORITHMS})"
            ),
            Self::BadDigestSize { algorithm, size } => write!(
                f,
                "event log: the Spec ID event declares algorithm {algorithm:#06x} with a bad digest size {size}"
            ),
            Self::DuplicateAlgorithm { algorithm } => write!(
                f,
                "event log: the Spec ID event declares algorithm {algorithm:#06x} twice"
            ),
            Self::NoSha384 => write!(
                f,
                "event log: the Spec ID event does not declare SHA-384, the hash of the RTMRs"
            ),
            Self::BadDigestCount { event, count } => write!(
                f,
                "event log: event {event} has {count} digests (at least 1, at most the declared algorithms)"
            ),
            Self::UnknownAlgorithm { event, algorithm } => write!(
                f,
                "event log: event {event} has a digest of algorithm {algorithm:#06x}, which the Spec ID event does not declare"
            ),
            Self::DuplicateDigest { event, algorithm } => write!(
                f,
                "event log: event {event} has two digests of algorithm {algorithm:#06x}"
            ),
            Self::MissingSha384 { event } => {
                write!(f, "event log: event {event} has no SHA-384 digest")
            }
            Self::BadMrIndex {
                event,
                mr_index,
                event_type,
            } => write!(
                f,
                "event log: event {event} (type {event_type:#x}) has CC MR index {mr_index}, which extends no RTMR"
            ),
            Self::EventTooLarge { event, size } => write!(
                f,
                "event log: event {event} has {size} bytes of data (at most {MAX_EVENT_DATA_SIZE})"
            ),
            Self::EventDataOutOfBounds {
                event,
                offset,
                size,
            } => write!(
                f,
                "event log: event {event}'s {size} bytes of data at offset {offset:#x} run past the end of the log"
            ),
            Self::TooManyEvents => {
                write!(f, "event log: more than {MAX_EVENTS} events")
            }
        }
    }
}

impl core::error::Error for EventLogError {}

/// The `EventSize` bytes of data at `at`, checked against the limit and the log's end.
fn event_data(log: &[u8], event: usize, at: usize, size: u32) -> Result<&[u8], EventLogError> {
    if size > MAX_EVENT_DATA_SIZE {
        return Err(EventLogError::EventTooLarge { event, size });
    }
    let out_of_bounds = EventLogError::EventDataOutOfBounds {
        event,
        offset: at,
        size,
    };
    let end = usize::try_from(size)
        .ok()
        .and_then(|n| at.checked_add(n))
        .ok_or_else(|| out_of_bounds.clone())?;
    log.get(at..end).ok_or(out_of_bounds)
}

/// Parses the first record; returns it and the offset of the next record.
fn parse_spec_id(log: &[u8]) -> Result<(SpecIdEvent<'_>, usize), EventLogError> {
    let truncated = EventLogError::TruncatedHeader {
        event: 0,
        offset: 0,
    };
    let header = read_at::<PcrEventHeader>(log, 0).ok_or(truncated)?;
    let mr_index = header.pcr_index.get();
    let event_type = header.event_type.get();
    let size = header.event_size.get();
    if event_type != event_types::EV_NO_ACTION {
        return Err(EventLogError::FirstEventNotNoAction { event_type });
    }
    if header.digest.iter().any(|&b| b != 0) {
        return Err(EventLogError::FirstEventDigestNotZero);
    }
    let data = event_data(log, 0, PCR_EVENT_HEADER_SIZE, size)?;
    if data.get(..SPEC_ID_SIGNATURE.len()) != Some(SPEC_ID_SIGNATURE.as_slice()) {
        return Err(EventLogError::BadSignature);
    }
    let too_short = EventLogError::SpecIdTooShort { size };
    let fixed = read_at::<SpecIdEventHeader>(data, 0).ok_or(too_short.clone())?;
    let platform_class = fixed.platform_class.get();
    let (spec_version_minor, spec_version_major) =
        (fixed.spec_version_minor, fixed.spec_version_major);
    let (spec_errata, uintn_size) = (fixed.spec_errata, fixed.uintn_size);
    let count = fixed.number_of_algorithms.get();
    if count == 0 {
        return Err(EventLogError::NoAlgorithms);
    }
    let n = usize::try_from(count)
        .ok()
        .filter(|&n| n <= MAX_ALGORITHMS)
        .ok_or(EventLogError::TooManyAlgorithms { count })?;
    let mut algorithms: Vec<Algorithm> = Vec::with_capacity(n);
    // n <= MAX_ALGORITHMS: these offsets cannot overflow.
    for i in 0..n {
        let at = SPEC_ID_FIXED_SIZE + core::mem::size_of::<AlgorithmSize>() * i;
        let entry = read_at::<AlgorithmSize>(data, at).ok_or(too_short.clone())?;
        let (id, digest_size) = (entry.algorithm_id.get(), entry.digest_size.get());
        if digest_size == 0
            || digest_size > MAX_DIGEST_SIZE
            || known_digest_size(id).is_some_and(|s| s != digest_size)
        {
            return Err(EventLogError::BadDigestSize {
                algorithm: id,
                size: digest_size,
            });
        }
        if algorithms.iter().any(|a| a.id == id) {
            return Err(EventLogError::DuplicateAlgorithm { algorithm: id });
        }
        algorithms.push(Algorithm { id, digest_size });
    }
    let vendor_at = SPEC_ID_FIXED_SIZE + core::mem::size_of::<AlgorithmSize>() * n;
    let vendor_size = usize::from(read_at::<u8>(data, vendor_at).ok_or(too_short.clone())?);
    let used = vendor_at + 1 + vendor_size;
    let vendor_info = data.get(vendor_at + 1..used).ok_or(too_short)?;
    if used != data.len() {
        return Err(EventLogError::SpecIdSizeMismatch { size, used });
    }
    if !algorithms.iter().any(|a| a.id == ALG_SHA384) {
        return Err(EventLogError::NoSha384);
    }
    let spec_id = SpecIdEvent {
        mr_index,
        platform_class,
        spec_version_minor,
        spec_version_major,
        spec_errata,
        uintn_size,
        algorithms,
        vendor_info,
    };
    Ok((spec_id, PCR_EVENT_HEADER_SIZE + data.len()))
}

/// If the log ends at `offset`, how.
fn end_at(log: &[u8], offset: usize) -> Option<LogEnd> {
    let rest = log.get(offset..)?;
    let head = rest.get(..8).unwrap_or(rest);
    match head.first() {
        None => Some(LogEnd::EndOfBuffer),
        Some(&b) if (b == 0xFF || b == 0) && head.iter().all(|&x| x == b) => {
            Some(LogEnd::Padding(b))
        }
        Some(_) => None,
    }
}

/// Parses the `TCG_PCR_EVENT2` record at `offset`; returns it and the offset of the next one.
fn parse_event<'a>(
    log: &'a [u8],
    spec_id: &SpecIdEvent<'_>,
    index: usize,
    offset: usize,
) -> Result<(Event<'a>, usize), EventLogError> {
    let truncated = EventLogError::TruncatedHeader {
        event: index,
        offset,
    };
    let field = |delta: usize| offset.checked_add(delta).ok_or(truncated.clone());
    let head = read_at::<PcrEvent2Head>(log, offset).ok_or(truncated.clone())?;
    let (mr_index, event_type) = (head.mr_index.get(), head.event_type.get());
    let measured = event_type != event_types::EV_NO_ACTION;
    if mr_index > 4 || (measured && mr_index == 0) {
        return Err(EventLogError::BadMrIndex {
            event: index,
            mr_index,
            event_type,
        });
    }
    let count = read_at::<U32>(log, field(8)?)
        .ok_or(truncated.clone())?
        .get();
    if count == 0 || usize::try_from(count).map_or(true, |c| c > spec_id.algorithms.len()) {
        return Err(EventLogError::BadDigestCount {
            event: index,
            count,
        });
    }
    let mut at = field(12)?;
    let mut seen = 0u32; // bit i: algorithm i of the Spec ID event (i < MAX_ALGORITHMS)
    let mut sha384 = None;
    for _ in 0..count {
        let algorithm = read_at::<U16>(log, at).ok_or(truncated.clone())?.get();
        let (i, declared) =
            spec_id
                .algorithm(algorithm)
                .ok_or(EventLogError::UnknownAlgorithm {
                    event: index,
                    algorithm,
                })?;
        let bit = 1u32 << i;
        if seen & bit != 0 {
            return Err(EventLogError::DuplicateDigest {
                event: index,
                algorithm,
            });
        }
        seen |= bit;
        let start = at.checked_add(2).ok_or(truncated.clone())?;
        let end = start
            .checked_add(usize::from(declared.digest_size))
            .ok_or(truncated.clone())?;
        let digest = log.get(start..end).ok_or(truncated.clone())?;
        if algorithm == ALG_SHA384 {
            sha384 = <&[u8; SHA384_DIGEST_SIZE]>::try_from(digest).ok();
        }
        at = end;
    }
    let size = read_at::<U32>(log, at).ok_or(truncated.clone())?.get();
    let digest = sha384.ok_or(EventLogError::MissingSha384 { event: index })?;
    let data_at = at.checked_add(4).ok_or(truncated)?;
    let data = event_data(log, index, data_at, size)?;
    let event = Event {
        index,
        offset,
        mr_index,
        event_type: EventType(event_type),
        digest,
        data,
    };
    // `data` lies inside `log`, so this cannot overflow.
    Ok((event, data_at + data.len()))
}

/// Parses a CC event log: the log area's bytes, from the Spec ID event to the end of the
/// buffer or the padding after the last event (see the module documentation).
pub fn parse(log: &[u8]) -> Result<EventLog<'_>, EventLogError> {
    let (spec_id, mut offset) = parse_spec_id(log)?;
    let mut events = Vec::new();
    loop {
        if let Some(end) = end_at(log, offset) {
            return Ok(EventLog {
                spec_id,
                events,
                end_offset: offset,
                end,
            });
        }
        if events.len() >= MAX_EVENTS {
            return Err(EventLogError::TooManyEvents);
        }
        let (event, next) = parse_event(log, &spec_id, events.len() + 1, offset)?;
        events.push(event);
        offset = next;
    }
}

/// One RTMR extension: `SHA384(register || digest)`.
pub fn extend(
    register: &[u8; SHA384_DIGEST_SIZE],
    digest: &[u8; SHA384_DIGEST_SIZE],
) -> [u8; SHA384_DIGEST_SIZE] {
    let mut hash = Sha384::new();
    hash.update(register);
    hash.update(digest);
    hash.finalize().into()
}

/// Replays events into RTMR0 to RTMR3: each starts as 48 zero bytes, and each event that
/// extends one (CC MR index `m` in 1..=4 extends `RTMR[m - 1]`; `EV_NO_ACTION` extends nothing)
/// is applied in order with [`extend`] and the event's SHA-384 digest. MRTD (CC MR index 0) is
/// never extended by the log. The events are taken as written: a log that puts both
/// separators in RTMR0, as some OVMF builds do, replays that way.
pub fn replay<'e, 'a: 'e>(events: impl IntoIterator<Item = &'e Event<'a>>) -> Rtmrs {
    let mut rtmrs = [[0u8; SHA384_DIGEST_SIZE]; RTMR_COUNT];
    for event in events {
        if let Some(register) = event.rtmr().and_then(|i| rtmrs.get_mut(i)) {
            *register = extend(register, event.digest());
        }
    }
    rtmrs
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use proptest::prelude::*;

    // The real logs of testdata/eventlogs (provenance in testdata/README.md).
    const GOTDX_LOG: &[u8] = include_bytes!("../../testdata/eventlogs/gotdx-ccel_data.dat");
    const GOTDX_QUOTE: &[u8] =
        include_bytes!("../../testdata/eventlogs/gotdx-cos-113-tdx-quote.dat");
    const TDSHIM_LOG: &[u8] = include_bytes!("../../testdata/eventlogs/trustee-CCEL_data");
    const OVMF_LOG: &[u8] = include_bytes!("../../testdata/eventlogs/trustee-CCEL_data_ovmf");
    const GRUB_LOG: &[u8] = include_bytes!("../../testdata/eventlogs/trustee-CCEL_data_grub");
    const REAL_LOGS: [&[u8]; 4] = [GOTDX_LOG, TDSHIM_LOG, OVMF_LOG, GRUB_LOG];

    /// Quote v4: RTMR0 at 0x178, 48 bytes apart.
    fn quote_rtmr(i: usize) -> [u8; 48] {
        let at = 0x178 + 48 * i;
        GOTDX_QUOTE[at..at + 48].try_into().unwrap()
    }

    fn unhex(s: &str) -> [u8; 48] {
        let mut out = [0u8; 48];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    /// SHA384(00 00 00 00), the separator's digest.
    const SEPARATOR_DIGEST: &str = "394341b7182cd227c5c6b07ef8000cdfd86136c4292b8e576573ad7ed9ae41019f5818b4b971c9effc60e1ad9f1289f0";

    fn spec_id_log(algorithms: &[(u16, u16)], vendor: &[u8]) -> Vec<u8> {
        let mut data = SPEC_ID_SIGNATURE.to_vec();
        data.extend_from_slice(&0u32.to_le_bytes());
        data.extend_from_slice(&[0, 2, 0, 2]);
        data.extend_from_slice(&(algorithms.len() as u32).to_le_bytes());
        for (id, size) in algorithms {
            data.extend_from_slice(&id.to_le_bytes());
            data.extend_from_slice(&size.to_le_bytes());
        }
        data.push(vendor.len() as u8);
        data.extend_from_slice(vendor);
        let mut log = vec![0u8; 28];
        log[4] = 3;
        log.extend_from_slice(&(data.len() as u32).to_le_bytes());
        log.extend_from_slice(&data);
        log
    }

    fn sha384_log() -> Vec<u8> {
        spec_id_log(&[(ALG_SHA384, 48)], b"")
    }

    fn record(mr: u32, event_type: u32, digests: &[(u16, &[u8])], data: &[u8]) -> Vec<u8> {
        let mut r = Vec::new();
        r.extend_from_slice(&mr.to_le_bytes());
        r.extend_from_slice(&event_type.to_le_bytes());
        r.extend_from_slice(&(digests.len() as u32).to_le_bytes());
        for (alg, d) in digests {
            r.extend_from_slice(&alg.to_le_bytes());
            r.extend_from_slice(d);
        }
        r.extend_from_slice(&(data.len() as u32).to_le_bytes());
        r.extend_from_slice(data);
        r
    }

    fn sha384_record(mr: u32, event_type: u32, digest: u8) -> Vec<u8> {
        record(mr, event_type, &[(ALG_SHA384, &[digest; 48])], b"data")
    }

    fn with(mut log: Vec<u8>, records: &[Vec<u8>]) -> Vec<u8> {
        for r in records {
            log.extend_from_slice(r);
        }
        log
    }

    #[test]
    fn gotdx_log_replays_to_the_quote() {
        let log = parse(GOTDX_LOG).unwrap();
        assert_eq!(log.events().len(), 43);
        let rtmrs = log.replay();
        for (i, rtmr) in rtmrs.iter().enumerate().take(3) {
            assert_eq!(*rtmr, quote_rtmr(i), "RTMR{i}");
        }
        assert_eq!(rtmrs[0], unhex("3fa2f61f395b7f5feefb4ec2df61297f109ad8abcd6410c1b7df60f21f37b19297fc35e544039c7e1edece752afd17f6"));
        // The log never extends RTMR3, and neither did anything else before the quote.
        assert_eq!(rtmrs[3], [0; 48]);
        assert_eq!(quote_rtmr(3), [0; 48]);
        assert_eq!(log.end(), LogEnd::Padding(0xFF));
        assert_eq!(log.end_offset(), 0x46b5);
    }

    #[test]
    fn gotdx_log_spec_id_and_events() {
        let log = parse(GOTDX_LOG).unwrap();
        let spec = log.spec_id();
        assert_eq!(spec.mr_index, 1);
        assert_eq!((spec.spec_version_major, spec.spec_version_minor), (2, 0));
        assert_eq!((spec.spec_errata, spec.uintn_size), (0, 2));
        assert_eq!(
            spec.algorithms,
            [Algorithm {
                id: ALG_SHA384,
                digest_size: 48
            }]
        );
        assert!(spec.vendor_info.is_empty());
        let first = &log.events()[0];
        assert_eq!((first.index(), first.offset()), (1, 0x41));
        assert_eq!(first.event_type(), EventType::EFI_HANDOFF_TABLES2);
        assert_eq!(first.mr_index(), 1);
        assert_eq!(first.rtmr(), Some(0));
        assert_eq!(first.data().len(), 42);
        assert_eq!(&first.data()[1..9], b"TdxTable");
        let separators: Vec<(usize, u32)> = log
            .events()
            .iter()
            .filter(|e| e.event_type() == EventType::SEPARATOR)
            .map(|e| (e.index(), e.mr_index()))
            .collect();
        // A correct log: one separator in RTMR0, one in RTMR1.
        assert_eq!(separators, [(8, 1), (16, 2)]);
        for e in log.events() {
            if e.event_type() == EventType::SEPARATOR {
                assert_eq!(*e.digest(), unhex(SEPARATOR_DIGEST));
                assert_eq!(e.data(), [0, 0, 0, 0]);
            }
        }
        let last = log.events().last().unwrap();
        assert_eq!(last.data(), b"Exit Boot Services Returned with Success");
        assert_eq!(last.rtmr(), Some(1));
    }

    #[test]
    fn tdshim_log_replays_to_its_known_values() {
        let log = parse(TDSHIM_LOG).unwrap();
        assert_eq!(log.events().len(), 5);
        assert_eq!(log.spec_id().mr_index, 0);
        assert_eq!(log.spec_id().spec_errata, 105);
        assert_eq!(log.spec_id().vendor_info, b"td-shim");
        // td-shim's area is zero after the last event here, not 0xFF.
        assert_eq!(log.end(), LogEnd::Padding(0));
        assert_eq!(log.end_offset(), 0x265e);
        let types: Vec<EventType> = log.events().iter().map(Event::event_type).collect();
        assert_eq!(
            types,
            [
                EventType::PLATFORM_CONFIG_FLAGS,
                EventType::SEPARATOR,
                EventType::SEPARATOR,
                EventType::EFI_PLATFORM_FIRMWARE_BLOB2,
                EventType::PLATFORM_CONFIG_FLAGS
            ]
        );
        assert_eq!(&log.events()[0].data()[..7], b"td_hob\0");
        let rtmrs = log.replay();
        assert_eq!(rtmrs[0], unhex("2dc712306a963eadb894ad47dbaa17df44814151555aee11cbb843becca88950ffd079664902e6f22c66f7c8213543f4"));
        assert_eq!(rtmrs[1], unhex("0fa3be56af61208bbd179dc7b124988eb929319154663c539d6f46445ecac2fec287075047ff7bd1922829fec28cd3cf"));
        assert_eq!(rtmrs[2], [0; 48]);
        assert_eq!(rtmrs[3], [0; 48]);
    }

    #[test]
    fn td_hob_event_digest_is_the_hash_of_the_hob() {
        let log = parse(TDSHIM_LOG).unwrap();
        let hob_event = &log.events()[0];
        // TD_SHIM_PLATFORM_CONFIG_INFO: descriptor[16], u32 length, then the HOB.
        let data = hob_event.data();
        let len = u32::from_le_bytes(data[16..20].try_into().unwrap()) as usize;
        assert_eq!(len, 5248);
        let hob = &data[20..20 + len];
        let digest: [u8; 48] = Sha384::digest(hob).into();
        assert_eq!(digest, *hob_event.digest());
    }

    #[test]
    fn ovmf_logs_parse_with_named_types() {
        for (bytes, count, rtmr0_separators) in [(OVMF_LOG, 20, 2), (GRUB_LOG, 37, 2)] {
            let log = parse(bytes).unwrap();
            assert_eq!(log.events().len(), count);
            assert_eq!(log.end(), LogEnd::Padding(0xFF));
            // These OVMF builds put both separators in RTMR0: followed as written.
            let separators = log
                .events()
                .iter()
                .filter(|e| e.event_type() == EventType::SEPARATOR && e.rtmr() == Some(0))
                .count();
            assert_eq!(separators, rtmr0_separators);
            let rtmrs = log.replay();
            assert_ne!(rtmrs[2], [0; 48]);
            assert_eq!(rtmrs[3], [0; 48]);
        }
        let grub = parse(GRUB_LOG).unwrap();
        assert!(grub
            .events()
            .iter()
            .any(|e| e.event_type() == EventType::EFI_VARIABLE_AUTHORITY));
        let ovmf = parse(OVMF_LOG).unwrap();
        assert_eq!(
            ovmf.replay()[0],
            unhex("8566f998798db09443b244c62de9a3041fb02e2e6936c4396d784bba2e90177329ec5aba3bb484404f2ab9cc90abe193")
        );
    }

    #[test]
    fn every_event_type_in_the_real_logs_is_named() {
        let mut seen = Vec::new();
        for bytes in REAL_LOGS {
            for e in parse(bytes).unwrap().events() {
                assert!(e.event_type().name().is_some(), "{:#x}", e.event_type().0);
                if !seen.contains(&e.event_type()) {
                    seen.push(e.event_type());
                }
            }
        }
        seen.sort_by_key(|t| t.0);
        let names: Vec<&str> = seen.iter().map(|t| t.name().unwrap()).collect();
        assert_eq!(
            names,
            [
                "EV_SEPARATOR",
                "EV_EVENT_TAG",
                "EV_PLATFORM_CONFIG_FLAGS",
                "EV_IPL",
                "EV_EFI_VARIABLE_DRIVER_CONFIG",
                "EV_EFI_VARIABLE_BOOT",
                "EV_EFI_BOOT_SERVICES_APPLICATION",
                "EV_EFI_GPT_EVENT",
                "EV_EFI_ACTION",
                "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
                "EV_EFI_HANDOFF_TABLES2",
                "EV_EFI_VARIABLE_AUTHORITY",
            ]
        );
    }

    #[test]
    fn event_type_names_and_display() {
        assert_eq!(EventType::NO_ACTION.name(), Some("EV_NO_ACTION"));
        assert_eq!(
            EventType(0x8000_00E0).name(),
            Some("EV_EFI_VARIABLE_AUTHORITY")
        );
        assert_eq!(EventType(0x1234).name(), None);
        assert_eq!(alloc::format!("{}", EventType(0x1234)), "0x00001234");
        assert_eq!(alloc::format!("{}", EventType::IPL), "EV_IPL");
    }

    #[test]
    fn mr_index_maps_to_rtmrs() {
        assert_eq!(rtmr_of_mr_index(0), None);
        assert_eq!(rtmr_of_mr_index(1), Some(0));
        assert_eq!(rtmr_of_mr_index(4), Some(3));
        assert_eq!(rtmr_of_mr_index(5), None);
    }

    #[test]
    fn replay_extends_by_mr_index_and_skips_no_action() {
        let log = with(
            sha384_log(),
            &[
                sha384_record(4, EventType::EVENT_TAG.0, 1),
                sha384_record(0, EventType::NO_ACTION.0, 2),
                sha384_record(2, EventType::NO_ACTION.0, 3),
                sha384_record(1, EventType::SEPARATOR.0, 4),
            ],
        );
        let parsed = parse(&log).unwrap();
        assert_eq!(parsed.events().len(), 4);
        assert_eq!(parsed.end(), LogEnd::EndOfBuffer);
        assert_eq!(parsed.end_offset(), log.len());
        let rtmrs = parsed.replay();
        let zero = [0u8; 48];
        assert_eq!(rtmrs[0], extend(&zero, &[4; 48]));
        assert_eq!(rtmrs[1], zero);
        assert_eq!(rtmrs[2], zero);
        assert_eq!(rtmrs[3], extend(&zero, &[1; 48]));
    }

    #[test]
    fn extend_is_sha384_of_register_and_digest() {
        // RTMR0 of the td-shim log: E(E(0, SHA384(hob)), separator).
        let log = parse(TDSHIM_LOG).unwrap();
        let first = extend(&[0; 48], log.events()[0].digest());
        assert_eq!(extend(&first, &unhex(SEPARATOR_DIGEST)), log.replay()[0]);
        let sep: [u8; 48] = Sha384::digest([0u8; 4]).into();
        assert_eq!(sep, unhex(SEPARATOR_DIGEST));
    }

    #[test]
    fn multi_algorithm_logs_use_the_sha384_digest() {
        let log = with(
            spec_id_log(&[(ALG_SHA256, 32), (ALG_SHA384, 48)], b"v"),
            &[
                record(
                    1,
                    EventType::SEPARATOR.0,
                    &[(ALG_SHA256, &[9; 32]), (ALG_SHA384, &[7; 48])],
                    &[0; 4],
                ),
                // Fewer digests than algorithms is allowed, as long as SHA-384 is there.
                record(2, EventType::IPL.0, &[(ALG_SHA384, &[8; 48])], b"x"),
            ],
        );
        let parsed = parse(&log).unwrap();
        assert_eq!(parsed.spec_id().algorithms.len(), 2);
        assert_eq!(parsed.spec_id().vendor_info, b"v");
        assert_eq!(*parsed.events()[0].digest(), [7; 48]);
        assert_eq!(parsed.replay()[0], extend(&[0; 48], &[7; 48]));
    }

    #[test]
    fn log_ends_at_ff_or_zero_padding() {
        for pad in [0xFFu8, 0] {
            let mut log = with(sha384_log(), &[sha384_record(1, 4, 1)]);
            let end = log.len();
            log.extend_from_slice(&[pad; 100]);
            let parsed = parse(&log).unwrap();
            assert_eq!(parsed.events().len(), 1);
            assert_eq!(parsed.end(), LogEnd::Padding(pad));
            assert_eq!(parsed.end_offset(), end);
            // A short tail of padding, too.
            log.truncate(end + 3);
            assert_eq!(parse(&log).unwrap().end(), LogEnd::Padding(pad));
        }
        // Mixed bytes are a record, here a truncated one.
        let mut log = with(sha384_log(), &[sha384_record(1, 4, 1)]);
        let end = log.len();
        log.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0]);
        assert_eq!(
            parse(&log),
            Err(EventLogError::BadMrIndex {
                event: 2,
                mr_index: u32::MAX,
                event_type: 0
            })
        );
        log.truncate(end + 2);
        log[end + 1] = 1;
        assert_eq!(
            parse(&log),
            Err(EventLogError::TruncatedHeader {
                event: 2,
                offset: end
            })
        );
        // Spec ID event alone.
        let alone = sha384_log();
        let parsed = parse(&alone).unwrap();
        assert!(parsed.events().is_empty());
        assert_eq!(parsed.end(), LogEnd::EndOfBuffer);
    }

    #[test]
    fn rule_truncated_header() {
        assert_eq!(
            parse(&[]),
            Err(EventLogError::TruncatedHeader {
                event: 0,
                offset: 0
            })
        );
        assert_eq!(
            parse(&sha384_log()[..31]),
            Err(EventLogError::TruncatedHeader {
                event: 0,
                offset: 0
            })
        );
        let base = sha384_log();
        let full = with(base.clone(), &[sha384_record(1, 4, 1)]);
        // Cut inside MrIndex/EventType, the count, the digest, EventSize.
        for cut in [
            base.len() + 9,
            base.len() + 13,
            base.len() + 40,
            base.len() + 63,
        ] {
            assert_eq!(
                parse(&full[..cut]),
                Err(EventLogError::TruncatedHeader {
                    event: 1,
                    offset: base.len()
                }),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn rule_first_event_is_no_action_with_zero_digest() {
        let mut log = sha384_log();
        log[4] = 4;
        assert_eq!(
            parse(&log),
            Err(EventLogError::FirstEventNotNoAction { event_type: 4 })
        );
        let mut log = sha384_log();
        log[8] = 1;
        assert_eq!(parse(&log), Err(EventLogError::FirstEventDigestNotZero));
    }

    #[test]
    fn rule_spec_id_signature() {
        let mut log = sha384_log();
        log[32 + 14] = b'2';
        assert_eq!(parse(&log), Err(EventLogError::BadSignature));
        // Shorter than the signature.
        let mut log = sha384_log()[..40].to_vec();
        log[28..32].copy_from_slice(&8u32.to_le_bytes());
        assert_eq!(parse(&log), Err(EventLogError::BadSignature));
    }

    #[test]
    fn rule_spec_id_size() {
        // EventSize cuts the algorithm list.
        let mut log = sha384_log();
        log.truncate(log.len() - 3);
        let size = (log.len() - 32) as u32;
        log[28..32].copy_from_slice(&size.to_le_bytes());
        assert_eq!(parse(&log), Err(EventLogError::SpecIdTooShort { size }));
        // Vendor info longer than the event.
        let mut log = spec_id_log(&[(ALG_SHA384, 48)], b"abc");
        let last = log.len() - 4;
        log[last] = 4;
        assert_eq!(parse(&log), Err(EventLogError::SpecIdTooShort { size: 36 }));
        // Trailing bytes inside EventSize.
        let mut log = spec_id_log(&[(ALG_SHA384, 48)], b"abc");
        let last = log.len() - 4;
        log[last] = 2;
        assert_eq!(
            parse(&log),
            Err(EventLogError::SpecIdSizeMismatch { size: 36, used: 35 })
        );
        // EventSize past the end of the log.
        let mut log = sha384_log();
        log[28..32].copy_from_slice(&1000u32.to_le_bytes());
        assert_eq!(
            parse(&log),
            Err(EventLogError::EventDataOutOfBounds {
                event: 0,
                offset: 32,
                size: 1000
            })
        );
    }

    #[test]
    fn rule_algorithm_count() {
        assert_eq!(
            parse(&spec_id_log(&[], b"")),
            Err(EventLogError::NoAlgorithms)
        );
        let many: Vec<(u16, u16)> = (0..17).map(|i| (0x100 + i, 32)).collect();
        assert_eq!(
            parse(&spec_id_log(&many, b"")),
            Err(EventLogError::TooManyAlgorithms { count: 17 })
        );
        let mut log = sha384_log();
        log[32 + 24..32 + 28].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            parse(&log),
            Err(EventLogError::TooManyAlgorithms { count: u32::MAX })
        );
        // 16 is the limit, and unknown algorithms are fine in the Spec ID event.
        let mut sixteen: Vec<(u16, u16)> = (0..15).map(|i| (0x100 + i, 32)).collect();
        sixteen.push((ALG_SHA384, 48));
        assert_eq!(
            parse(&spec_id_log(&sixteen, b""))
                .unwrap()
                .spec_id()
                .algorithms
                .len(),
            16
        );
    }

    #[test]
    fn rule_digest_sizes() {
        // A known algorithm with another size, an unknown one with size 0 or above 64.
        for (alg, size) in [(ALG_SHA1, 48), (ALG_SM3_256, 20), (0x100, 0), (0x100, 65)] {
            assert_eq!(
                parse(&spec_id_log(&[(ALG_SHA384, 48), (alg, size)], b"")),
                Err(EventLogError::BadDigestSize {
                    algorithm: alg,
                    size,
                })
            );
        }
        assert_eq!(
            parse(&spec_id_log(&[(ALG_SHA384, 32)], b"")),
            Err(EventLogError::BadDigestSize {
                algorithm: ALG_SHA384,
                size: 32
            })
        );
    }

    #[test]
    fn rule_duplicate_algorithm() {
        assert_eq!(
            parse(&spec_id_log(&[(ALG_SHA384, 48), (ALG_SHA384, 48)], b"")),
            Err(EventLogError::DuplicateAlgorithm {
                algorithm: ALG_SHA384
            })
        );
    }

    #[test]
    fn rule_sha384_declared() {
        assert_eq!(
            parse(&spec_id_log(&[(ALG_SHA256, 32)], b"")),
            Err(EventLogError::NoSha384)
        );
    }

    #[test]
    fn rule_digest_count() {
        for count in [0u32, 2, u32::MAX] {
            let mut r = sha384_record(1, 4, 1);
            r[8..12].copy_from_slice(&count.to_le_bytes());
            assert_eq!(
                parse(&with(sha384_log(), &[r])),
                Err(EventLogError::BadDigestCount { event: 1, count })
            );
        }
    }

    #[test]
    fn rule_unknown_algorithm_in_a_record() {
        let log = with(
            sha384_log(),
            &[
                sha384_record(1, 4, 1),
                record(1, 4, &[(ALG_SHA256, &[0; 32])], b""),
            ],
        );
        assert_eq!(
            parse(&log),
            Err(EventLogError::UnknownAlgorithm {
                event: 2,
                algorithm: ALG_SHA256
            })
        );
    }

    #[test]
    fn rule_duplicate_digest() {
        let log = with(
            spec_id_log(&[(ALG_SHA256, 32), (ALG_SHA384, 48)], b""),
            &[record(
                1,
                4,
                &[(ALG_SHA384, &[0; 48]), (ALG_SHA384, &[1; 48])],
                b"",
            )],
        );
        assert_eq!(
            parse(&log),
            Err(EventLogError::DuplicateDigest {
                event: 1,
                algorithm: ALG_SHA384
            })
        );
    }

    #[test]
    fn rule_sha384_in_every_record() {
        let log = with(
            spec_id_log(&[(ALG_SHA256, 32), (ALG_SHA384, 48)], b""),
            &[record(1, 4, &[(ALG_SHA256, &[0; 32])], b"")],
        );
        assert_eq!(parse(&log), Err(EventLogError::MissingSha384 { event: 1 }));
    }

    #[test]
    fn rule_mr_index() {
        for (mr, event_type) in [(5u32, 4u32), (0, 4), (0xFFFF_FFFE, 3)] {
            let log = with(sha384_log(), &[sha384_record(mr, event_type, 1)]);
            assert_eq!(
                parse(&log),
                Err(EventLogError::BadMrIndex {
                    event: 1,
                    mr_index: mr,
                    event_type
                })
            );
        }
    }

    #[test]
    fn rule_event_size() {
        let mut r = sha384_record(1, 4, 1);
        r[62..66].copy_from_slice(&5u32.to_le_bytes());
        let log = with(sha384_log(), &[r]);
        let data_at = sha384_log().len() + 66;
        assert_eq!(
            parse(&log),
            Err(EventLogError::EventDataOutOfBounds {
                event: 1,
                offset: data_at,
                size: 5
            })
        );
        let mut r = sha384_record(1, 4, 1);
        r[62..66].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            parse(&with(sha384_log(), &[r])),
            Err(EventLogError::EventTooLarge {
                event: 1,
                size: u32::MAX
            })
        );
    }

    #[test]
    fn rule_event_count() {
        let one = record(1, 4, &[(ALG_SHA384, &[1; 48])], b"");
        let mut log = sha384_log();
        for _ in 0..MAX_EVENTS {
            log.extend_from_slice(&one);
        }
        assert_eq!(parse(&log).unwrap().events().len(), MAX_EVENTS);
        log.extend_from_slice(&one);
        assert_eq!(parse(&log), Err(EventLogError::TooManyEvents));
    }

    #[test]
    fn every_error_has_a_message() {
        let errors = [
            EventLogError::TruncatedHeader {
                event: 1,
                offset: 2,
            },
            EventLogError::FirstEventNotNoAction { event_type: 4 },
            EventLogError::FirstEventDigestNotZero,
            EventLogError::BadSignature,
            EventLogError::SpecIdTooShort { size: 1 },
            EventLogError::SpecIdSizeMismatch { size: 1, used: 2 },
            EventLogError::NoAlgorithms,
            EventLogError::TooManyAlgorithms { count: 17 },
            EventLogError::BadDigestSize {
                algorithm: 1,
                size: 2,
            },
            EventLogError::DuplicateAlgorithm { algorithm: 12 },
            EventLogError::NoSha384,
            EventLogError::BadDigestCount { event: 1, count: 0 },
            EventLogError::UnknownAlgorithm {
                event: 1,
                algorithm: 11,
            },
            EventLogError::DuplicateDigest {
                event: 1,
                algorithm: 12,
            },
            EventLogError::MissingSha384 { event: 1 },
            EventLogError::BadMrIndex {
                event: 1,
                mr_index: 5,
                event_type: 4,
            },
            EventLogError::EventTooLarge { event: 1, size: 1 },
            EventLogError::EventDataOutOfBounds {
                event: 1,
                offset: 2,
                size: 3,
            },
            EventLogError::TooManyEvents,
        ];
        let mut messages: Vec<alloc::string::String> =
            errors.iter().map(|e| alloc::format!("{e}")).collect();
        assert!(messages.iter().all(|m| m.starts_with("event log: ")));
        messages.sort();
        messages.dedup();
        assert_eq!(messages.len(), errors.len());
    }

    #[test]
    fn tampering_with_a_digest_changes_the_replay() {
        let mut bytes = GOTDX_LOG.to_vec();
        let log = parse(GOTDX_LOG).unwrap();
        let event = &log.events()[15]; // the RTMR1 separator, 16th event
        assert_eq!(event.event_type(), EventType::SEPARATOR);
        let digest_at = event.offset() + 14;
        bytes[digest_at] ^= 1;
        let rtmrs = parse(&bytes).unwrap().replay();
        assert_eq!(rtmrs[0], quote_rtmr(0));
        assert_ne!(rtmrs[1], quote_rtmr(1));
        assert_eq!(rtmrs[2], quote_rtmr(2));
    }

    /// The part of a real log that holds events, plus some padding.
    fn used(log: &[u8]) -> usize {
        (parse(log).unwrap().end_offset() + 16).min(log.len())
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            if let Ok(log) = parse(&bytes) {
                let _ = log.replay();
            }
        }

        #[test]
        fn any_bytes_after_a_spec_id_never_panic(
            tail in proptest::collection::vec(any::<u8>(), 0..2048),
            two in any::<bool>(),
        ) {
            let mut bytes = if two {
                spec_id_log(&[(ALG_SHA1, 20), (ALG_SHA384, 48)], b"")
            } else {
                sha384_log()
            };
            bytes.extend_from_slice(&tail);
            if let Ok(log) = parse(&bytes) {
                let _ = log.replay();
            }
        }

        #[test]
        fn mutated_real_logs_never_panic(
            which in 0..REAL_LOGS.len(),
            position in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let original = REAL_LOGS[which];
            let mut bytes = original[..used(original)].to_vec();
            let at = position.index(bytes.len());
            bytes[at] = byte;
            if let Ok(log) = parse(&bytes) {
                let _ = log.replay();
            }
        }

        #[test]
        fn truncated_real_logs_never_panic(
            which in 0..REAL_LOGS.len(),
            position in any::<prop::sample::Index>(),
        ) {
            let original = REAL_LOGS[which];
            let cut = position.index(used(original) + 1);
            match parse(&original[..cut]) {
                Ok(log) => {
                    // A cut at a record boundary is a shorter, valid log.
                    prop_assert!(log.events().len() <= parse(original).unwrap().events().len());
                    let _ = log.replay();
                }
                Err(e) => {
                    let message = alloc::format!("{e}");
                    prop_assert!(message.starts_with("event log: "));
                }
            }
        }
    }
}
