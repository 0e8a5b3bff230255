//! `eventlog extract-hob`: the TD HOB a td-shim TD measured, taken from its CC event log.
//!
//! Under TDX td-shim measures the VMM's TD HOB list into RTMR0 as one `EV_PLATFORM_CONFIG_FLAGS`
//! event with config-info descriptor `td_hob`, whose info is the list itself and whose digest is
//! SHA-384 of the list (docs/measurement.md, event 1a). So the log of a TD's first boot carries
//! the HOB a verifier needs to predict RTMR0 (`measure --td-hob`). A replay checks only the
//! digests, not the data: the data is accepted here only if its SHA-384 is the event's digest,
//! and only as a HOB list the firmware accepts, exactly (nothing after the end-of-list HOB).
//! The log itself proves nothing until it is replayed against a quote.

use super::describe::{config_info, ram_text};
use serde::Serialize;
use sha2::{Digest, Sha384};
use std::fmt::Write as _;
use std::path::Path;
use td_shim::eventlog::{self, EventLogError, EventType};
use td_shim::measurement::{MR_RTMR0, TD_HOB_DESCRIPTOR};
use td_shim::tdx::hob::{self, HobError, HobResource};

/// Why no TD HOB could be taken from the log.
#[derive(Debug, thiserror::Error)]
pub enum ExtractHobError {
    /// The log was refused.
    #[error(transparent)]
    Log(#[from] EventLogError),
    /// No `td_hob` event.
    #[error(
        "the log has no td_hob event (td-shim records one in RTMR0 under TDX; a plain VM's log, \
         or another firmware's, has none)"
    )]
    NoHob,
    /// More than one `td_hob` event.
    #[error("the log has td_hob events at indices {0:?}; td-shim records exactly one")]
    Several(Vec<usize>),
    /// The event does not extend RTMR0.
    #[error("event {index}: the td_hob event has MR index {mr_index}, not 1 (RTMR0)")]
    NotRtmr0 {
        /// The event's index.
        index: usize,
        /// Its MR index.
        mr_index: u32,
    },
    /// The data is not what the digest covers.
    #[error(
        "event {index}: the td_hob data is not what the event's digest covers (a replay checks \
         digests, not data: the data was altered)"
    )]
    DigestMismatch {
        /// The event's index.
        index: usize,
    },
    /// The data is not a HOB list the firmware accepts.
    #[error("event {index}: the td_hob data is not a TD HOB the firmware accepts: {error}")]
    Hob {
        /// The event's index.
        index: usize,
        /// The rule it breaks.
        error: HobError,
    },
    /// Bytes follow the end-of-list HOB: the firmware measures the list only.
    #[error(
        "event {index}: the td_hob data has {extra} bytes after the end-of-list HOB (the \
         firmware measures the list only)"
    )]
    Trailing {
        /// The event's index.
        index: usize,
        /// Bytes after the list.
        extra: usize,
    },
}

/// The TD HOB of a log.
#[derive(Debug, Clone)]
pub struct ExtractedHob {
    /// The `td_hob` event's index.
    pub index: usize,
    /// The HOB list, exactly as measured.
    pub list: Vec<u8>,
    /// Its SHA-384 digest (the event's).
    pub digest: [u8; 48],
    /// Its memory ranges (I/O port ranges are not kept).
    pub ranges: Vec<HobResource>,
    /// RAM in its memory map (the firmware's `ram_bytes`), or why td-shim refuses that memory
    /// map (a HOB another firmware accepted, e.g. upstream td-shim's, whose layout differs).
    pub ram_bytes: Result<u64, String>,
}

/// Finds the one `td_hob` event of `log` and checks its data (see the module documentation).
pub fn extract_hob(log: &[u8]) -> Result<ExtractedHob, ExtractHobError> {
    let parsed = eventlog::parse(log)?;
    let found: Vec<_> = parsed
        .events()
        .iter()
        .filter(|e| e.event_type() == EventType::PLATFORM_CONFIG_FLAGS)
        .filter_map(|e| {
            let (descriptor, info) = config_info(e.data())?;
            (descriptor == TD_HOB_DESCRIPTOR).then_some((e, info))
        })
        .collect();
    let (event, list) = match found.as_slice() {
        [] => return Err(ExtractHobError::NoHob),
        [one] => *one,
        several => {
            return Err(ExtractHobError::Several(
                several.iter().map(|(e, _)| e.index()).collect(),
            ))
        }
    };
    let index = event.index();
    if event.mr_index() != MR_RTMR0 {
        return Err(ExtractHobError::NotRtmr0 {
            index,
            mr_index: event.mr_index(),
        });
    }
    let digest: [u8; 48] = Sha384::digest(list).into();
    if &digest != event.digest() {
        return Err(ExtractHobError::DigestMismatch { index });
    }
    let parsed = hob::parse(list).map_err(|error| ExtractHobError::Hob { index, error })?;
    if parsed.list_len() != list.len() {
        return Err(ExtractHobError::Trailing {
            index,
            extra: list.len() - parsed.list_len(),
        });
    }
    Ok(ExtractedHob {
        index,
        list: list.to_vec(),
        digest,
        ranges: parsed.ranges().to_vec(),
        ram_bytes: parsed
            .memory_map()
            .map(|m| m.ram_bytes())
            .map_err(|e| e.to_string()),
    })
}

/// One memory range of the HOB.
#[derive(Debug, Serialize)]
pub struct RangeReport {
    /// Its base address.
    pub base: u64,
    /// Its length in bytes.
    pub length: u64,
    /// accepted, unaccepted, mmio or reserved.
    pub kind: String,
}

/// `eventlog extract-hob --json`.
#[derive(Debug, Serialize)]
pub struct ExtractHobReport {
    /// The file written.
    pub output: String,
    /// The `td_hob` event's index.
    pub event_index: usize,
    /// Bytes of the HOB list.
    pub length: usize,
    /// Its SHA-384 digest, lower-case hex.
    pub sha384: String,
    /// RAM in its memory map; null if td-shim refuses that memory map.
    pub ram_bytes: Option<u64>,
    /// Why td-shim refuses its memory map (`measure --td-hob` refuses it too); absent if not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_map_refused: Option<String>,
    /// Its memory ranges, in address order.
    pub ranges: Vec<RangeReport>,
}

impl ExtractedHob {
    /// The report of writing it to `output`.
    pub fn report(&self, output: &Path) -> ExtractHobReport {
        ExtractHobReport {
            output: output.display().to_string(),
            event_index: self.index,
            length: self.list.len(),
            sha384: hex::encode(self.digest),
            ram_bytes: self.ram_bytes.as_ref().ok().copied(),
            memory_map_refused: self.ram_bytes.as_ref().err().cloned(),
            ranges: self
                .ranges
                .iter()
                .map(|r| RangeReport {
                    base: r.base,
                    length: r.length,
                    kind: format!("{:?}", r.kind).to_lowercase(),
                })
                .collect(),
        }
    }
}

impl ExtractHobReport {
    /// The human-readable form.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let ram = match (self.ram_bytes, &self.memory_map_refused) {
            (Some(bytes), _) => format!("{} of RAM", ram_text(bytes)),
            (None, why) => format!(
                "td-shim refuses its memory map: {}",
                why.as_deref().unwrap_or("?")
            ),
        };
        let _ = writeln!(
            s,
            "wrote {}: the TD HOB list of event {} ({} bytes, {ram})",
            self.output, self.event_index, self.length
        );
        let _ = writeln!(s, "sha384 {}", self.sha384);
        for r in &self.ranges {
            let _ = writeln!(
                s,
                "  [{:#x}, {:#x}) {}",
                r.base,
                r.base.saturating_add(r.length),
                r.kind
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::tests::synthetic_kernel;
    use crate::measure::vmm::{tests::qemu_hob, TdHob};
    use crate::measure::{linux_payload, measure_with, LaunchParams, VmmInputs};
    use td_layout::handoff::PlatformKind;
    use td_shim::measurement::ConfigFile;

    const TDX: LaunchParams = LaunchParams {
        platform: PlatformKind::Tdx,
        ram_bytes: 512 << 20,
        vcpus: 2,
    };

    fn tdx_log(hob: Option<Vec<u8>>) -> Vec<u8> {
        let kernel = synthetic_kernel(0x3000);
        let inputs = VmmInputs {
            td_hob: hob.map(|h| TdHob::parse(h).unwrap()),
            acpi: Some(vec![ConfigFile::of("etc/table-loader", b"script")]),
        };
        measure_with(
            &TDX,
            &inputs,
            &linux_payload(&kernel, None, b"").unwrap(),
            None,
        )
        .unwrap()
        .log
    }

    #[test]
    fn extracts_the_measured_list() {
        let hob = qemu_hob(512 << 20);
        let log = tdx_log(Some(hob.clone()));
        let got = extract_hob(&log).unwrap();
        assert_eq!(got.list, hob);
        assert_eq!(got.index, 2);
        assert_eq!(got.ram_bytes, Ok(512 << 20));
        assert_eq!(got.ranges.len(), 4);
        let report = got.report(Path::new("hob.bin"));
        assert_eq!(report.ranges[0].kind, "unaccepted");
        assert!(report.to_text().starts_with(
            "wrote hob.bin: the TD HOB list of event 2 (256 bytes, 512 MiB of RAM)\n"
        ));
    }

    #[test]
    fn extracts_upstream_td_shims_hob() {
        // Trustee's td-shim log (upstream td-shim): its td_hob event carries the VMM's HOB.
        let got = extract_hob(&crate::eventlog::tests::testdata("trustee-CCEL_data")).unwrap();
        assert_eq!((got.index, got.list.len()), (1, 5248));
        assert_eq!(hex::encode(got.digest)[..16], *"c6e6d33de4104b81");
        let ranges: Vec<_> = got.ranges.iter().map(|r| (r.base, r.length)).collect();
        assert_eq!(ranges[0], (0, 0x4000_0000));
        assert_eq!(ranges.len(), 6);
        // Its layout is not ours: td-shim refuses its memory map, and says why.
        let report = got.report(Path::new("hob.bin"));
        assert_eq!(report.ram_bytes, None);
        let why = report.memory_map_refused.clone().unwrap();
        assert!(report.to_text().contains(&why), "{}", report.to_text());
    }

    #[test]
    fn refuses_what_the_firmware_did_not_measure() {
        let hob = qemu_hob(512 << 20);
        let log = tdx_log(Some(hob.clone()));
        // No td_hob event.
        assert!(matches!(
            extract_hob(&tdx_log(None)),
            Err(ExtractHobError::NoHob)
        ));
        // A changed byte of the data (an unchecked attribute: still a valid HOB): the digest
        // no longer covers it.
        let at = log
            .windows(hob.len())
            .position(|w| w == hob.as_slice())
            .unwrap();
        let mut altered = log.clone();
        altered[at + 56 + 28] ^= 1;
        assert!(matches!(
            extract_hob(&altered),
            Err(ExtractHobError::DigestMismatch { index: 2 })
        ));
        // A changed digest byte, the same.
        let mut altered = log.clone();
        let digest = Sha384::digest(&hob);
        let d = log
            .windows(48)
            .position(|w| w == digest.as_slice())
            .unwrap();
        altered[d] ^= 1;
        assert!(matches!(
            extract_hob(&altered),
            Err(ExtractHobError::DigestMismatch { .. })
        ));
    }

    /// A log of td_hob events `(mr_index, info)`, each with the digest of its info.
    fn log_of(events: &[(u32, &[u8])]) -> Vec<u8> {
        let planned = events
            .iter()
            .map(|&(mr_index, info)| {
                let mut data = b"td_hob\0\0\0\0\0\0\0\0\0\0".to_vec();
                data.extend_from_slice(&(info.len() as u32).to_le_bytes());
                data.extend_from_slice(info);
                td_shim::measurement::PlannedEvent {
                    name: "td_hob",
                    mr_index,
                    event_type: td_shim::measurement::EV_PLATFORM_CONFIG_FLAGS,
                    data,
                    digest: Sha384::digest(info).into(),
                }
            })
            .collect();
        let mut area = vec![0u8; 0x1_0000];
        let mut registers = eventlog::SoftwareRtmrs::default();
        let mut recording = td_shim::measurement::Recording::new(&mut area).unwrap();
        recording.record(&mut registers, planned).unwrap();
        recording.log().to_vec()
    }

    #[test]
    fn refuses_logs_td_shim_does_not_write() {
        let hob = qemu_hob(512 << 20);
        assert_eq!(extract_hob(&log_of(&[(1, &hob)])).unwrap().list, hob);
        assert!(matches!(
            extract_hob(&log_of(&[(1, &hob), (1, &hob)])),
            Err(ExtractHobError::Several(v)) if v == [1, 2]
        ));
        assert!(matches!(
            extract_hob(&log_of(&[(2, &hob)])),
            Err(ExtractHobError::NotRtmr0 {
                index: 1,
                mr_index: 2
            })
        ));
        let mut padded = hob.clone();
        padded.extend_from_slice(&[0; 16]);
        assert!(matches!(
            extract_hob(&log_of(&[(1, &padded)])),
            Err(ExtractHobError::Trailing {
                index: 1,
                extra: 16
            })
        ));
        let err = extract_hob(&log_of(&[(1, &hob[..hob.len() - 8])])).unwrap_err();
        assert!(
            matches!(
                err,
                ExtractHobError::Hob {
                    error: HobError::MissingEnd { .. },
                    ..
                }
            ),
            "{err}"
        );
        assert!(matches!(extract_hob(b"junk"), Err(ExtractHobError::Log(_))));
    }
}
