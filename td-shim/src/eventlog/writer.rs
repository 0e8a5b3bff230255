//! Writing a CC event log into the firmware's log area, and extending the RTMRs with it.
//!
//! The writer needs no allocator: it writes straight into the log area (the memory the CCEL
//! ACPI table will announce) and hands each digest to an [`Extender`], the platform's way of
//! extending an RTMR (TDG.MR.RTMR.EXTEND under TDX, emulated registers elsewhere,
//! [`SoftwareRtmrs`] in tests and on the host).
//!
//! # What it writes
//!
//! [`EventLogWriter::new`] fills the whole area with 0xFF, so a reader finds the end of the log
//! after the last record (see the module documentation of [`crate::eventlog`]), then writes the
//! Spec ID event in the SHA-1 `TCG_PCR_EVENT` layout: `PCRIndex` 0, `EV_NO_ACTION`, a zero
//! digest, and a `TCG_EfiSpecIdEvent` (TCG PC Client PFP, "Specification ID Version Event")
//! with
//!
//! | field | value | why |
//! |---|---|---|
//! | `signature` | `"Spec ID Event03\0"` | the crypto-agile log |
//! | `platformClass` | 0 | client; all four real logs in `testdata/eventlogs` write 0 |
//! | `specVersionMinor`, `specVersionMajor` | 0, 2 | the crypto-agile format; all four write 2.0 |
//! | `specErrata` | [`SPEC_ERRATA`] = 106 | see below |
//! | `uintnSize` | 2 | UINTN is 64 bits; all four write 2 |
//! | algorithms | one: SHA-384 `{0x000C, 48}` | the RTMRs' hash, the only one TDX logs carry |
//! | `vendorInfo` | the caller's bytes, at most 255 | upstream td-shim writes `"td-shim"` |
//!
//! `specErrata` names the revision of the PC Client PFP the log follows: edk2 defines 105 and
//! 106 as `TCG_EfiSpecIDEventStruct_SPEC_ERRATA_TPM2_REV_105` / `_REV_106` for PFP revisions
//! 1.05 and 1.06, and 0 for older ones. Upstream td-shim's log in `testdata/eventlogs` says
//! 105, the three OVMF logs say 0; our parser accepts any value, and a replay does not depend
//! on it. We write 106, the latest of these revisions (the event data structures we log, such
//! as `UEFI_PLATFORM_FIRMWARE_BLOB2`, are those of 1.05 and 1.06). With the same vendor info
//! our Spec ID event differs from upstream td-shim's in that one byte (a test checks it).
//!
//! Every later event is a `TCG_PCR_EVENT2` / `CC_EVENT` with exactly one digest, SHA-384:
//! `MrIndex` u32, `EventType` u32, `count` u32 = 1, `hashAlg` u16 = 0x000C, the 48-byte digest,
//! `EventSize` u32, the event data ([`EVENT2_HEADER_SIZE`] = 66 bytes before the data).
//!
//! # Rules
//!
//! - [`EventLogWriter::log`] checks everything before it changes anything: the CC MR index
//!   (1 to 4), the type (not `EV_NO_ACTION`, which extends nothing: a replay would skip the
//!   event the register has taken), the data size ([`MAX_EVENT_DATA_SIZE`]), the number of
//!   events ([`MAX_EVENTS`]), and that the record fits in the area. On any of these errors
//!   neither the area nor the registers change.
//! - It extends `RTMR[mr_index - 1]` first and writes the record only if that succeeded, so
//!   the log never holds an event the register has not taken. (An [`Extender`] that fails
//!   must leave its register unchanged: that is its contract.)
//! - It writes nothing outside the area and nothing past the record it appends: the bytes
//!   after [`EventLogWriter::used`] stay 0xFF.
//! - It never writes what [`crate::eventlog::parse`] refuses: what it wrote always parses, and
//!   replays to the registers it extended (if they started at zero).

use super::{
    event_types::EV_NO_ACTION, extend, rtmr_of_mr_index, AlgorithmSize, PcrEvent2Head,
    PcrEventHeader, Rtmrs, SpecIdEventHeader, ALG_SHA384, MAX_EVENTS, MAX_EVENT_DATA_SIZE,
    PCR_EVENT_HEADER_SIZE, RTMR_COUNT, SHA384_DIGEST_SIZE, SPEC_ID_FIXED_SIZE, SPEC_ID_SIGNATURE,
};
use core::fmt;
use sha2::{Digest, Sha384};
use zerocopy::little_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// `specVersionMajor` of the Spec ID event the writer writes.
pub const SPEC_VERSION_MAJOR: u8 = 2;
/// `specVersionMinor` of the Spec ID event the writer writes.
pub const SPEC_VERSION_MINOR: u8 = 0;
/// `specErrata` of the Spec ID event the writer writes: PC Client PFP revision 1.06 (see the
/// module documentation).
pub const SPEC_ERRATA: u8 = 106;
/// `uintnSize` of the Spec ID event the writer writes: 2, UINTN is 64 bits.
pub const UINTN_SIZE: u8 = 2;
/// Longest vendor info of the Spec ID event (`vendorInfoSize` is a u8).
pub const MAX_VENDOR_INFO_SIZE: usize = 255;
/// Bytes of the Spec ID record the writer writes, before its vendor info: the 32-byte
/// `TCG_PCR_EVENT` header, the fixed part of `TCG_EfiSpecIdEvent`, one algorithm and
/// `vendorInfoSize`.
pub const SPEC_ID_RECORD_SIZE: usize = PCR_EVENT_HEADER_SIZE + SPEC_ID_FIXED_SIZE + 4 + 1;
/// Bytes of a `TCG_PCR_EVENT2` with one SHA-384 digest, before its event data.
pub const EVENT2_HEADER_SIZE: usize = 4 + 4 + 4 + 2 + SHA384_DIGEST_SIZE + 4;

/// Why a register could not be extended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExtendError {
    /// The register index is not 0 to 3.
    BadRegister {
        /// The index asked for.
        rtmr: usize,
    },
    /// The platform refused the extension.
    Refused {
        /// The platform's status code (for TDX, TDG.MR.RTMR.EXTEND's completion status).
        status: u64,
    },
}

impl fmt::Display for ExtendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadRegister { rtmr } => {
                write!(f, "RTMR extend: there is no RTMR{rtmr} (RTMR0 to RTMR3)")
            }
            Self::Refused { status } => {
                write!(
                    f,
                    "RTMR extend: the platform refused it (status {status:#x})"
                )
            }
        }
    }
}

impl core::error::Error for ExtendError {}

/// The platform's RTMRs: extends one of them with a digest.
pub trait Extender {
    /// Extends `RTMR[rtmr]` (0 to 3) with `digest`: `RTMR := SHA384(RTMR || digest)`. On error
    /// the register must be unchanged.
    fn extend(&mut self, rtmr: usize, digest: &[u8; SHA384_DIGEST_SIZE])
        -> Result<(), ExtendError>;
}

/// RTMR0 to RTMR3 computed in software, as a replay computes them: for tests, for the host
/// tool, and for platforms without hardware registers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SoftwareRtmrs(pub Rtmrs);

impl Default for SoftwareRtmrs {
    /// All four registers zero, as at TD start.
    fn default() -> Self {
        Self([[0; SHA384_DIGEST_SIZE]; RTMR_COUNT])
    }
}

impl Extender for SoftwareRtmrs {
    fn extend(
        &mut self,
        rtmr: usize,
        digest: &[u8; SHA384_DIGEST_SIZE],
    ) -> Result<(), ExtendError> {
        let register = self
            .0
            .get_mut(rtmr)
            .ok_or(ExtendError::BadRegister { rtmr })?;
        *register = extend(register, digest);
        Ok(())
    }
}

/// Why the writer refused to write. Nothing was changed: not the area, not the registers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteError {
    /// The record does not fit in what is left of the area.
    AreaTooSmall {
        /// Bytes the record needs.
        needed: usize,
        /// Bytes left in the area.
        available: usize,
    },
    /// The CC MR index is not 1 to 4 (RTMR0 to RTMR3).
    BadMrIndex {
        /// The index given.
        mr_index: u32,
    },
    /// The type is `EV_NO_ACTION`, which extends no register: such an event cannot be logged
    /// as a measurement.
    NotMeasured,
    /// The event data is longer than [`MAX_EVENT_DATA_SIZE`].
    EventTooLarge {
        /// Bytes of event data given.
        size: usize,
    },
    /// The log already holds [`MAX_EVENTS`] events after the Spec ID event.
    TooManyEvents,
    /// The register could not be extended, so the event was not logged.
    Extend(ExtendError),
    /// The Spec ID event's vendor info is longer than [`MAX_VENDOR_INFO_SIZE`].
    VendorInfoTooLong {
        /// Bytes given.
        size: usize,
    },
    /// The log was closed by a failure (error separators recorded): nothing more is measured.
    Closed,
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AreaTooSmall { needed, available } => write!(
                f,
                "event log: the record needs {needed} bytes but the log area has {available} left"
            ),
            Self::BadMrIndex { mr_index } => write!(
                f,
                "event log: CC MR index {mr_index} extends no RTMR (1 to 4 for RTMR0 to RTMR3)"
            ),
            Self::NotMeasured => write!(
                f,
                "event log: an EV_NO_ACTION event extends no register and cannot be logged as a measurement"
            ),
            Self::EventTooLarge { size } => write!(
                f,
                "event log: {size} bytes of event data (at most {MAX_EVENT_DATA_SIZE})"
            ),
            Self::TooManyEvents => {
                write!(f, "event log: the log already holds {MAX_EVENTS} events")
            }
            Self::Extend(e) => write!(f, "event log: the event was not logged: {e}"),
            Self::VendorInfoTooLong { size } => write!(
                f,
                "event log: {size} bytes of vendor info (at most {MAX_VENDOR_INFO_SIZE})"
            ),
            Self::Closed => write!(f, "event log: closed by a failure, nothing more is measured"),
        }
    }
}

impl core::error::Error for WriteError {}

/// The Spec ID record the writer writes, without its vendor info (layout in the module
/// documentation).
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct SpecIdRecord {
    header: PcrEventHeader,
    spec_id: SpecIdEventHeader,
    /// The one algorithm: SHA-384.
    algorithm: AlgorithmSize,
    vendor_info_size: u8,
}

/// A `TCG_PCR_EVENT2` header with one SHA-384 digest, before the event data.
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Event2Sha384Header {
    head: PcrEvent2Head,
    /// `TPML_DIGEST_VALUES.count`: 1.
    digest_count: U32,
    hash_alg: U16,
    digest: [u8; SHA384_DIGEST_SIZE],
    event_size: U32,
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<SpecIdRecord>() == SPEC_ID_RECORD_SIZE);
    assert!(offset_of!(SpecIdRecord, spec_id) == 32);
    assert!(offset_of!(SpecIdRecord, algorithm) == 60);
    assert!(offset_of!(SpecIdRecord, vendor_info_size) == 64);
    assert!(size_of::<Event2Sha384Header>() == EVENT2_HEADER_SIZE);
    assert!(offset_of!(Event2Sha384Header, digest_count) == 8);
    assert!(offset_of!(Event2Sha384Header, hash_alg) == 12);
    assert!(offset_of!(Event2Sha384Header, digest) == 14);
    assert!(offset_of!(Event2Sha384Header, event_size) == 62);
};

/// The Spec ID record without its vendor info (layout in the module documentation).
fn spec_id_record(vendor_info_size: u8) -> SpecIdRecord {
    // `EventSize`: the `TCG_EfiSpecIdEvent` after the 32-byte header; at most 33 + 255.
    let event_size =
        (SPEC_ID_RECORD_SIZE - PCR_EVENT_HEADER_SIZE) as u32 + u32::from(vendor_info_size);
    SpecIdRecord {
        // TCG_PCR_EVENT: PCRIndex 0, EV_NO_ACTION, Digest[20] zero, EventSize.
        header: PcrEventHeader {
            pcr_index: U32::new(0),
            event_type: U32::new(EV_NO_ACTION),
            digest: [0; 20],
            event_size: U32::new(event_size),
        },
        // TCG_EfiSpecIdEvent: signature, platformClass 0, version, errata, uintnSize,
        // numberOfAlgorithms 1: {SHA-384, 48}; then vendorInfoSize.
        spec_id: SpecIdEventHeader {
            signature: *SPEC_ID_SIGNATURE,
            platform_class: U32::new(0),
            spec_version_minor: SPEC_VERSION_MINOR,
            spec_version_major: SPEC_VERSION_MAJOR,
            spec_errata: SPEC_ERRATA,
            uintn_size: UINTN_SIZE,
            number_of_algorithms: U32::new(1),
        },
        algorithm: AlgorithmSize {
            algorithm_id: U16::new(ALG_SHA384),
            digest_size: U16::new(SHA384_DIGEST_SIZE as u16),
        },
        vendor_info_size,
    }
}

/// A `TCG_PCR_EVENT2` header with one SHA-384 digest (layout in the module documentation).
fn event2_header(
    mr_index: u32,
    event_type: u32,
    digest: &[u8; SHA384_DIGEST_SIZE],
    event_size: u32,
) -> Event2Sha384Header {
    Event2Sha384Header {
        head: PcrEvent2Head {
            mr_index: U32::new(mr_index),
            event_type: U32::new(event_type),
        },
        digest_count: U32::new(1),
        hash_alg: U16::new(ALG_SHA384),
        digest: *digest,
        event_size: U32::new(event_size),
    }
}

/// A record that passed every check: what [`EventLogWriter::append`] writes.
struct Record {
    mr_index: u32,
    event_type: u32,
    /// The RTMR (0 to 3) `mr_index` extends.
    rtmr: usize,
    /// `EventSize`.
    event_size: u32,
    /// Bytes of the record.
    needed: usize,
}

/// Writes a CC event log into a log area and extends the RTMRs with its events.
pub struct EventLogWriter<'a> {
    /// The whole log area: the log, then 0xFF to the end.
    area: &'a mut [u8],
    /// Bytes of the log: where the next record goes. Never above `area.len()`.
    used: usize,
    /// Events after the Spec ID event.
    events: usize,
}

impl<'a> EventLogWriter<'a> {
    /// Starts a log in `area`: fills it with 0xFF and writes the Spec ID event with
    /// `vendor_info` (see the module documentation). On error `area` is unchanged.
    pub fn new(area: &'a mut [u8], vendor_info: &[u8]) -> Result<Self, WriteError> {
        let vendor_info_size =
            u8::try_from(vendor_info.len()).map_err(|_| WriteError::VendorInfoTooLong {
                size: vendor_info.len(),
            })?;
        // At most 65 + 255 bytes: no overflow.
        let needed = SPEC_ID_RECORD_SIZE + vendor_info.len();
        let too_small = WriteError::AreaTooSmall {
            needed,
            available: area.len(),
        };
        if area.len() < needed {
            return Err(too_small);
        }
        area.fill(0xFF);
        let (record, vendor) = area
            .get_mut(..needed)
            .and_then(|r| r.split_at_mut_checked(SPEC_ID_RECORD_SIZE))
            .ok_or(too_small)?;
        // `needed` bytes were there: `record` has SPEC_ID_RECORD_SIZE bytes, `vendor` as many
        // as `vendor_info`.
        record.copy_from_slice(spec_id_record(vendor_info_size).as_bytes());
        vendor.copy_from_slice(vendor_info);
        Ok(Self {
            area,
            used: needed,
            events: 0,
        })
    }

    /// Measures `digest_input`: logs an event of `event_type` with `event_data` whose digest is
    /// SHA384(`digest_input`) and extends RTMR[`mr_index` - 1] with it (see the module
    /// documentation for the rules). Returns the digest.
    pub fn log(
        &mut self,
        extender: &mut dyn Extender,
        mr_index: u32,
        event_type: u32,
        digest_input: &[u8],
        event_data: &[u8],
    ) -> Result<[u8; SHA384_DIGEST_SIZE], WriteError> {
        // Refuse before hashing: a refused event costs nothing.
        let record = self.plan(mr_index, event_type, event_data)?;
        let digest: [u8; SHA384_DIGEST_SIZE] = Sha384::digest(digest_input).into();
        self.append(extender, record, digest, event_data)?;
        Ok(digest)
    }

    /// Like [`Self::log`], for a digest the caller has already computed (e.g. over data it
    /// streamed through SHA-384).
    pub fn log_digest(
        &mut self,
        extender: &mut dyn Extender,
        mr_index: u32,
        event_type: u32,
        digest: [u8; SHA384_DIGEST_SIZE],
        event_data: &[u8],
    ) -> Result<(), WriteError> {
        let record = self.plan(mr_index, event_type, event_data)?;
        self.append(extender, record, digest, event_data)
    }

    /// Every check of a record, before anything changes.
    fn plan(
        &self,
        mr_index: u32,
        event_type: u32,
        event_data: &[u8],
    ) -> Result<Record, WriteError> {
        let rtmr = rtmr_of_mr_index(mr_index).ok_or(WriteError::BadMrIndex { mr_index })?;
        if event_type == EV_NO_ACTION {
            return Err(WriteError::NotMeasured);
        }
        let too_large = WriteError::EventTooLarge {
            size: event_data.len(),
        };
        let event_size = u32::try_from(event_data.len())
            .ok()
            .filter(|&s| s <= MAX_EVENT_DATA_SIZE)
            .ok_or(too_large.clone())?;
        let needed = EVENT2_HEADER_SIZE
            .checked_add(event_data.len())
            .ok_or(too_large)?;
        if self.events >= MAX_EVENTS {
            return Err(WriteError::TooManyEvents);
        }
        let available = self.area.len().saturating_sub(self.used);
        if needed > available {
            return Err(WriteError::AreaTooSmall { needed, available });
        }
        Ok(Record {
            mr_index,
            event_type,
            rtmr,
            event_size,
            needed,
        })
    }

    /// Extends the register, then writes the planned record at the end of the log.
    fn append(
        &mut self,
        extender: &mut dyn Extender,
        record: Record,
        digest: [u8; SHA384_DIGEST_SIZE],
        event_data: &[u8],
    ) -> Result<(), WriteError> {
        let too_small = WriteError::AreaTooSmall {
            needed: record.needed,
            available: self.area.len().saturating_sub(self.used),
        };
        // `plan` checked that the record fits: these cannot fail, but are checked anyway,
        // before the register changes.
        let end = self
            .used
            .checked_add(record.needed)
            .ok_or(too_small.clone())?;
        let (header, data) = self
            .area
            .get_mut(self.used..end)
            .and_then(|r| r.split_at_mut_checked(EVENT2_HEADER_SIZE))
            .filter(|(_, data)| data.len() == event_data.len())
            .ok_or(too_small)?;
        extender
            .extend(record.rtmr, &digest)
            .map_err(WriteError::Extend)?;
        // The register has taken the digest: now the record, which cannot fail.
        header.copy_from_slice(
            event2_header(
                record.mr_index,
                record.event_type,
                &digest,
                record.event_size,
            )
            .as_bytes(),
        );
        data.copy_from_slice(event_data);
        self.used = end;
        self.events = self.events.saturating_add(1);
        Ok(())
    }

    /// Bytes of the log written so far, the Spec ID event included.
    pub fn used(&self) -> usize {
        self.used
    }

    /// The log written so far: the first [`Self::used`] bytes of the area.
    pub fn bytes(&self) -> &[u8] {
        self.area.get(..self.used).unwrap_or_default()
    }

    /// The whole area: the log, then 0xFF to the end. This is what the CCEL table announces.
    pub fn area(&self) -> &[u8] {
        self.area
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse, replay, EventType, LogEnd, MAX_EVENTS};
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    // A real log written by upstream td-shim (provenance in testdata/README.md).
    const TDSHIM_LOG: &[u8] = include_bytes!("../../../testdata/eventlogs/trustee-CCEL_data");

    fn unhex(s: &str) -> [u8; 48] {
        let mut out = [0u8; 48];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    fn sha384(bytes: &[u8]) -> [u8; 48] {
        Sha384::digest(bytes).into()
    }

    /// An extender whose platform always refuses.
    struct Refusing;

    impl Extender for Refusing {
        fn extend(&mut self, _: usize, _: &[u8; 48]) -> Result<(), ExtendError> {
            Err(ExtendError::Refused {
                status: 0xC000_0000,
            })
        }
    }

    /// An extender that only counts: for tests that need many events fast.
    struct Counting(usize);

    impl Extender for Counting {
        fn extend(&mut self, _: usize, _: &[u8; 48]) -> Result<(), ExtendError> {
            self.0 += 1;
            Ok(())
        }
    }

    /// The events of a parsed log as (MR index, type, digest, data).
    fn events(log: &[u8]) -> Vec<(u32, u32, [u8; 48], Vec<u8>)> {
        parse(log)
            .unwrap()
            .events()
            .iter()
            .map(|e| {
                (
                    e.mr_index(),
                    e.event_type().0,
                    *e.digest(),
                    e.data().to_vec(),
                )
            })
            .collect()
    }

    #[test]
    fn spec_id_event_layout() {
        let mut area = vec![0u8; 100];
        let w = EventLogWriter::new(&mut area, b"td-shim").unwrap();
        assert_eq!(w.used(), 72);
        let mut expected = vec![0u8; 32];
        expected[4] = 3; // EV_NO_ACTION
        expected[28] = 40; // EventSize
        expected.extend_from_slice(b"Spec ID Event03\0");
        expected.extend_from_slice(&[0, 0, 0, 0]); // platformClass
        expected.extend_from_slice(&[0, 2, 106, 2]); // 2.0, errata 106, UINT64
        expected.extend_from_slice(&[1, 0, 0, 0, 0x0C, 0, 48, 0]); // {SHA-384, 48}
        expected.push(7);
        expected.extend_from_slice(b"td-shim");
        assert_eq!(w.bytes(), expected);
        assert!(w.area()[72..].iter().all(|&b| b == 0xFF));
        let log = parse(w.area()).unwrap();
        let spec = log.spec_id();
        assert_eq!(spec.mr_index, 0);
        assert_eq!(spec.platform_class, 0);
        assert_eq!((spec.spec_version_major, spec.spec_version_minor), (2, 0));
        assert_eq!(
            (spec.spec_errata, spec.uintn_size),
            (SPEC_ERRATA, UINTN_SIZE)
        );
        assert_eq!(spec.algorithms.len(), 1);
        assert_eq!(spec.algorithms[0].id, ALG_SHA384);
        assert_eq!(spec.algorithms[0].digest_size, 48);
        assert_eq!(spec.vendor_info, b"td-shim");
        assert!(log.events().is_empty());
        assert_eq!(log.end(), LogEnd::Padding(0xFF));
        assert_eq!(log.end_offset(), 72);
    }

    #[test]
    fn spec_id_is_upstream_td_shims_but_for_the_errata() {
        let mut area = vec![0u8; 72];
        let w = EventLogWriter::new(&mut area, b"td-shim").unwrap();
        let differ: Vec<usize> = (0..72).filter(|&i| w.bytes()[i] != TDSHIM_LOG[i]).collect();
        // specErrata, 32 + 22 bytes in: upstream writes 105.
        assert_eq!(differ, [54]);
        assert_eq!((TDSHIM_LOG[54], w.bytes()[54]), (105, 106));
        // Without vendor info it is OVMF's size: 33 bytes of TCG_EfiSpecIdEvent.
        let mut area = vec![0u8; 65];
        let w = EventLogWriter::new(&mut area, b"").unwrap();
        assert_eq!(w.used(), SPEC_ID_RECORD_SIZE);
        assert_eq!(parse(w.bytes()).unwrap().end(), LogEnd::EndOfBuffer);
    }

    #[test]
    fn rewriting_upstream_td_shims_log_gives_its_bytes_and_registers() {
        let real = parse(TDSHIM_LOG).unwrap();
        let mut area = vec![0u8; 16 << 10];
        let mut rtmrs = SoftwareRtmrs::default();
        let mut w = EventLogWriter::new(&mut area, b"td-shim").unwrap();
        for (i, e) in real.events().iter().enumerate() {
            let (mr, t, data) = (e.mr_index(), e.event_type().0, e.data());
            match i {
                // The TD HOB: TD_SHIM_PLATFORM_CONFIG_INFO (20 bytes) then the HOB, whose
                // hash is the digest.
                0 => assert_eq!(w.log(&mut rtmrs, mr, t, &data[20..], data), Ok(*e.digest())),
                // Separators measure their data.
                1 | 2 => assert_eq!(w.log(&mut rtmrs, mr, t, data, data), Ok(*e.digest())),
                // The payload and its parameters: digests of memory not in the log.
                _ => w.log_digest(&mut rtmrs, mr, t, *e.digest(), data).unwrap(),
            }
        }
        assert_eq!(w.used(), real.end_offset());
        assert_eq!(w.bytes()[72..], TDSHIM_LOG[72..real.end_offset()]);
        let ours = parse(w.area()).unwrap();
        assert_eq!(ours.replay(), real.replay());
        assert_eq!(rtmrs.0, real.replay());
        assert_eq!(rtmrs.0[0], unhex("2dc712306a963eadb894ad47dbaa17df44814151555aee11cbb843becca88950ffd079664902e6f22c66f7c8213543f4"));
        assert_eq!(rtmrs.0[1], unhex("0fa3be56af61208bbd179dc7b124988eb929319154663c539d6f46445ecac2fec287075047ff7bd1922829fec28cd3cf"));
    }

    #[test]
    fn several_events_parse_back_identically_and_replay_to_the_registers() {
        let mut area = vec![0u8; 4096];
        let mut rtmrs = SoftwareRtmrs::default();
        let mut w = EventLogWriter::new(&mut area, b"test").unwrap();
        let written = [
            (
                1,
                EventType::PLATFORM_CONFIG_FLAGS.0,
                &b"hob"[..],
                &b"td_hob\0"[..],
            ),
            (1, EventType::SEPARATOR.0, &[0u8; 4][..], &[0u8; 4][..]),
            (2, EventType::SEPARATOR.0, &[0u8; 4][..], &[0u8; 4][..]),
            (
                2,
                EventType::EFI_PLATFORM_FIRMWARE_BLOB2.0,
                &b"kernel"[..],
                &b"\x0atd_payload"[..],
            ),
            (3, EventType::EVENT_TAG.0, &b"console=ttyS0"[..], &b""[..]),
            (4, 0x1234_5678, &b""[..], &[0xFF; 8][..]),
        ];
        let mut offsets = Vec::new();
        for (mr, t, input, data) in written {
            offsets.push(w.used());
            assert_eq!(w.log(&mut rtmrs, mr, t, input, data), Ok(sha384(input)));
        }
        w.log_digest(&mut rtmrs, 3, EventType::IPL.0, [7; 48], b"streamed")
            .unwrap();
        let log = parse(w.bytes()).unwrap();
        assert_eq!(log.events().len(), 7);
        assert_eq!(log.end(), LogEnd::EndOfBuffer);
        for (i, (e, (mr, t, input, data))) in log.events().iter().zip(written).enumerate() {
            assert_eq!(e.index(), i + 1);
            assert_eq!(e.offset(), offsets[i]);
            assert_eq!((e.mr_index(), e.event_type().0), (mr, t));
            assert_eq!(*e.digest(), sha384(input));
            assert_eq!(e.data(), data);
        }
        assert_eq!(*log.events()[6].digest(), [7; 48]);
        assert_eq!(log.replay(), rtmrs.0);
        // Each register by hand.
        let zero = [0u8; 48];
        let sep = sha384(&[0; 4]);
        assert_eq!(rtmrs.0[0], extend(&extend(&zero, &sha384(b"hob")), &sep));
        assert_eq!(rtmrs.0[1], extend(&extend(&zero, &sep), &sha384(b"kernel")));
        assert_eq!(
            rtmrs.0[2],
            extend(&extend(&zero, &sha384(b"console=ttyS0")), &[7; 48])
        );
        assert_eq!(rtmrs.0[3], extend(&zero, &sha384(b"")));
        // The whole area reads the same: the 0xFF tail ends the log.
        let whole = parse(w.area()).unwrap();
        assert_eq!(whole.events(), log.events());
        assert_eq!(whole.end(), LogEnd::Padding(0xFF));
    }

    #[test]
    fn rule_area_too_small_for_the_spec_id_event() {
        for (size, vendor) in [(0, &b""[..]), (64, b""), (71, b"td-shim")] {
            let mut area = vec![0xA5u8; size];
            assert_eq!(
                EventLogWriter::new(&mut area, vendor).err(),
                Some(WriteError::AreaTooSmall {
                    needed: 65 + vendor.len(),
                    available: size
                })
            );
            assert!(area.iter().all(|&b| b == 0xA5), "the area is untouched");
        }
    }

    #[test]
    fn rule_area_too_small_for_an_event_in_a_tiny_area() {
        let mut area = vec![0u8; SPEC_ID_RECORD_SIZE + 7 + 10];
        let mut rtmrs = SoftwareRtmrs::default();
        let mut w = EventLogWriter::new(&mut area, b"td-shim").unwrap();
        let spec_id = w.bytes().to_vec();
        for len in [0usize, 1, 10, 100] {
            for mr in 1..=4 {
                assert_eq!(
                    w.log(&mut rtmrs, mr, EventType::SEPARATOR.0, b"x", &vec![0; len]),
                    Err(WriteError::AreaTooSmall {
                        needed: 66 + len,
                        available: 10
                    })
                );
                assert_eq!(
                    w.log_digest(&mut rtmrs, mr, EventType::IPL.0, [1; 48], &vec![2; len]),
                    Err(WriteError::AreaTooSmall {
                        needed: 66 + len,
                        available: 10
                    })
                );
                assert_eq!(w.bytes(), spec_id);
                assert_eq!(w.area().len(), SPEC_ID_RECORD_SIZE + 17);
                assert!(w.area()[w.used()..].iter().all(|&b| b == 0xFF));
                assert_eq!(rtmrs, SoftwareRtmrs::default());
            }
        }
        assert_eq!(parse(w.area()).unwrap().end(), LogEnd::Padding(0xFF));
    }

    #[test]
    fn rule_area_too_small_after_an_exact_fit() {
        let mut area = vec![0u8; SPEC_ID_RECORD_SIZE + 66 + 4];
        let mut rtmrs = SoftwareRtmrs::default();
        let mut w = EventLogWriter::new(&mut area, b"").unwrap();
        w.log(&mut rtmrs, 1, EventType::SEPARATOR.0, &[0; 4], &[0; 4])
            .unwrap();
        assert_eq!(w.used(), w.area().len());
        let full = rtmrs.clone();
        assert_eq!(
            w.log(&mut rtmrs, 1, EventType::SEPARATOR.0, &[0; 4], &[]),
            Err(WriteError::AreaTooSmall {
                needed: 66,
                available: 0
            })
        );
        assert_eq!(rtmrs, full);
        let log = parse(w.area()).unwrap();
        assert_eq!(log.events().len(), 1);
        assert_eq!(log.end(), LogEnd::EndOfBuffer);
        assert_eq!(log.replay(), rtmrs.0);
    }

    #[test]
    fn rule_bad_mr_index() {
        let mut area = vec![0u8; 1024];
        let mut rtmrs = SoftwareRtmrs::default();
        let mut w = EventLogWriter::new(&mut area, b"").unwrap();
        for mr_index in [0, 5, u32::MAX] {
            assert_eq!(
                w.log(&mut rtmrs, mr_index, EventType::SEPARATOR.0, b"", b""),
                Err(WriteError::BadMrIndex { mr_index })
            );
            assert_eq!(
                w.log_digest(&mut rtmrs, mr_index, EventType::IPL.0, [0; 48], b""),
                Err(WriteError::BadMrIndex { mr_index })
            );
        }
        assert_eq!(w.used(), SPEC_ID_RECORD_SIZE);
        assert_eq!(rtmrs, SoftwareRtmrs::default());
    }

    #[test]
    fn rule_no_action_is_not_measured() {
        let mut area = vec![0u8; 1024];
        let mut rtmrs = SoftwareRtmrs::default();
        let mut w = EventLogWriter::new(&mut area, b"").unwrap();
        assert_eq!(
            w.log(&mut rtmrs, 1, EventType::NO_ACTION.0, b"", b""),
            Err(WriteError::NotMeasured)
        );
        assert_eq!(w.used(), SPEC_ID_RECORD_SIZE);
        assert_eq!(rtmrs, SoftwareRtmrs::default());
    }

    #[test]
    fn rule_event_too_large() {
        let mut area = vec![0u8; 1024];
        let mut rtmrs = SoftwareRtmrs::default();
        let mut w = EventLogWriter::new(&mut area, b"").unwrap();
        let max = MAX_EVENT_DATA_SIZE as usize;
        let data = vec![0u8; max + 1];
        assert_eq!(
            w.log(&mut rtmrs, 2, EventType::IPL.0, b"", &data),
            Err(WriteError::EventTooLarge { size: max + 1 })
        );
        // The limit itself is only too large for this area.
        assert_eq!(
            w.log(&mut rtmrs, 2, EventType::IPL.0, b"", &data[..max]),
            Err(WriteError::AreaTooSmall {
                needed: 66 + max,
                available: 1024 - 65
            })
        );
        assert_eq!(w.used(), SPEC_ID_RECORD_SIZE);
        assert_eq!(rtmrs, SoftwareRtmrs::default());
    }

    #[test]
    fn rule_too_many_events() {
        let mut area = vec![0u8; SPEC_ID_RECORD_SIZE + 66 * (MAX_EVENTS + 1)];
        let mut counting = Counting(0);
        let mut w = EventLogWriter::new(&mut area, b"").unwrap();
        for _ in 0..MAX_EVENTS {
            w.log_digest(&mut counting, 1, EventType::IPL.0, [1; 48], b"")
                .unwrap();
        }
        let used = w.used();
        assert_eq!(
            w.log_digest(&mut counting, 1, EventType::IPL.0, [1; 48], b""),
            Err(WriteError::TooManyEvents)
        );
        assert_eq!(w.used(), used);
        assert_eq!(counting.0, MAX_EVENTS);
        // What was written is still a log the parser accepts.
        assert_eq!(parse(w.area()).unwrap().events().len(), MAX_EVENTS);
    }

    #[test]
    fn rule_a_failing_extender_leaves_the_log_unchanged() {
        let mut area = vec![0u8; 1024];
        let mut rtmrs = SoftwareRtmrs::default();
        let mut w = EventLogWriter::new(&mut area, b"").unwrap();
        w.log(&mut rtmrs, 1, EventType::SEPARATOR.0, &[0; 4], &[0; 4])
            .unwrap();
        let before = w.area().to_vec();
        let refused = Err(WriteError::Extend(ExtendError::Refused {
            status: 0xC000_0000,
        }));
        assert_eq!(
            w.log(&mut Refusing, 2, EventType::IPL.0, b"kernel", b"data"),
            refused.clone().map(|()| [0; 48])
        );
        assert_eq!(
            w.log_digest(&mut Refusing, 2, EventType::IPL.0, [3; 48], b"data"),
            refused
        );
        assert_eq!(w.area(), before);
        // The next event goes where the refused one would have.
        w.log(&mut rtmrs, 2, EventType::IPL.0, b"kernel", b"data")
            .unwrap();
        let log = parse(w.area()).unwrap();
        assert_eq!(log.events().len(), 2);
        assert_eq!(log.events()[1].data(), b"data");
        assert_eq!(log.replay(), rtmrs.0);
    }

    #[test]
    fn software_rtmrs_refuse_a_fifth_register() {
        let mut rtmrs = SoftwareRtmrs::default();
        assert_eq!(
            rtmrs.extend(4, &[0; 48]),
            Err(ExtendError::BadRegister { rtmr: 4 })
        );
        assert_eq!(rtmrs, SoftwareRtmrs::default());
        rtmrs.extend(3, &[1; 48]).unwrap();
        assert_eq!(rtmrs.0[3], extend(&[0; 48], &[1; 48]));
    }

    #[test]
    fn rule_vendor_info_too_long() {
        let mut area = vec![0xA5u8; 1024];
        assert_eq!(
            EventLogWriter::new(&mut area, &[b'v'; 256]).err(),
            Some(WriteError::VendorInfoTooLong { size: 256 })
        );
        assert!(area.iter().all(|&b| b == 0xA5));
        let w = EventLogWriter::new(&mut area, &[b'v'; MAX_VENDOR_INFO_SIZE]).unwrap();
        assert_eq!(w.used(), 65 + 255);
        assert_eq!(parse(w.area()).unwrap().spec_id().vendor_info, [b'v'; 255]);
    }

    #[test]
    fn every_error_has_a_message() {
        let errors = [
            WriteError::AreaTooSmall {
                needed: 1,
                available: 0,
            },
            WriteError::BadMrIndex { mr_index: 5 },
            WriteError::NotMeasured,
            WriteError::EventTooLarge { size: 1 },
            WriteError::TooManyEvents,
            WriteError::Extend(ExtendError::BadRegister { rtmr: 4 }),
            WriteError::Extend(ExtendError::Refused { status: 1 }),
            WriteError::VendorInfoTooLong { size: 256 },
        ];
        let mut messages: Vec<alloc::string::String> =
            errors.iter().map(|e| alloc::format!("{e}")).collect();
        assert!(messages.iter().all(|m| m.starts_with("event log: ")));
        assert!(messages[5].ends_with("RTMR extend: there is no RTMR4 (RTMR0 to RTMR3)"));
        messages.sort();
        messages.dedup();
        assert_eq!(messages.len(), errors.len());
    }

    /// One `log` or `log_digest` call of the property test.
    #[derive(Clone, Debug)]
    struct Call {
        mr_index: u32,
        event_type: u32,
        input: Vec<u8>,
        data: Vec<u8>,
        precomputed: bool,
        refused: bool,
    }

    fn call() -> impl Strategy<Value = Call> {
        (
            0u32..=5,
            prop::sample::select(vec![3u32, 4, 6, 0xA, 0x8000_000A, 0xFFFF_FFFF]),
            proptest::collection::vec(any::<u8>(), 0..32),
            proptest::collection::vec(any::<u8>(), 0..96),
            any::<bool>(),
            prop::bool::weighted(0.1),
        )
            .prop_map(
                |(mr_index, event_type, input, data, precomputed, refused)| Call {
                    mr_index,
                    event_type,
                    input,
                    data,
                    precomputed,
                    refused,
                },
            )
    }

    /// What the call must return, given the space left.
    fn expected(c: &Call, available: usize) -> Result<[u8; 48], WriteError> {
        let needed = 66 + c.data.len();
        if !(1..=4).contains(&c.mr_index) {
            Err(WriteError::BadMrIndex {
                mr_index: c.mr_index,
            })
        } else if c.event_type == 3 {
            Err(WriteError::NotMeasured)
        } else if needed > available {
            Err(WriteError::AreaTooSmall { needed, available })
        } else if c.refused {
            Err(WriteError::Extend(ExtendError::Refused {
                status: 0xC000_0000,
            }))
        } else {
            Ok(sha384(&c.input))
        }
    }

    proptest! {
        #[test]
        fn random_events_into_small_areas(
            size in 0usize..700,
            vendor in proptest::collection::vec(any::<u8>(), 0..12),
            calls in proptest::collection::vec(call(), 0..12),
        ) {
            let mut area = vec![0x5Au8; size];
            let mut rtmrs = SoftwareRtmrs::default();
            let mut logged: Vec<(u32, u32, [u8; 48], Vec<u8>)> = Vec::new();
            let Ok(mut w) = EventLogWriter::new(&mut area, &vendor) else {
                prop_assert!(size < 65 + vendor.len());
                prop_assert!(area.iter().all(|&b| b == 0x5A));
                return Ok(());
            };
            for c in &calls {
                let before = (w.area().to_vec(), rtmrs.clone());
                let want = expected(c, size - w.used());
                let mut refusing = Refusing;
                let extender: &mut dyn Extender = if c.refused { &mut refusing } else { &mut rtmrs };
                let got = if c.precomputed {
                    let digest = sha384(&c.input);
                    w.log_digest(extender, c.mr_index, c.event_type, digest, &c.data)
                        .map(|()| digest)
                } else {
                    w.log(extender, c.mr_index, c.event_type, &c.input, &c.data)
                };
                prop_assert_eq!(&got, &want);
                match got {
                    Ok(digest) => logged.push((c.mr_index, c.event_type, digest, c.data.clone())),
                    Err(_) => {
                        prop_assert_eq!(w.area(), &before.0[..]);
                        prop_assert_eq!(&rtmrs, &before.1);
                    }
                }
                prop_assert_eq!(w.area().len(), size);
                prop_assert!(w.area()[w.used()..].iter().all(|&b| b == 0xFF));
                prop_assert_eq!(&events(w.bytes()), &logged);
                prop_assert_eq!(&events(w.area()), &logged);
                prop_assert_eq!(parse(w.area()).unwrap().replay(), rtmrs.0);
            }
            let used = w.used();
            prop_assert!(area[used..].iter().all(|&b| b == 0xFF));
            let log = parse(&area).unwrap();
            prop_assert_eq!(log.end_offset(), used);
            prop_assert_eq!(replay(log.events()), rtmrs.0);
        }
    }
}
