//! `td-shim-tool eventlog`: list the events of a CC event log (the CCEL log area, from any
//! firmware), replay it into RTMR0-3, and check the result against a TDX quote.
//!
//! Parsing and replay are `td_shim::eventlog`'s; this module adds what a person reading a log
//! needs: register names, type names and a short description of each event's data.

use serde::Serialize;
use std::fmt::Write as _;
use td_layout::guid::Guid;
use td_shim::eventlog::{self, Event, EventLog, EventLogError, EventType, LogEnd, RTMR_COUNT};

/// TDX quote v4 (research/tdx-attestation.md §5.1): offsets from the start of the quote.
pub mod quote_v4 {
    /// `version` u16.
    pub const VERSION: usize = 0;
    /// `tee_type` u32.
    pub const TEE_TYPE: usize = 4;
    /// `tee_type` of a TDX quote.
    pub const TEE_TYPE_TDX: u32 = 0x81;
    /// MRTD, 48 bytes.
    pub const MRTD: usize = 0xB8;
    /// RTMR0; RTMR1 to RTMR3 follow, 48 bytes each.
    pub const RTMR0: usize = 0x178;
    /// End of RTMR3: the shortest quote this tool reads.
    pub const MIN_SIZE: usize = RTMR0 + 4 * 48;
}

/// Why `eventlog` failed.
#[derive(Debug, thiserror::Error)]
pub enum EventLogCommandError {
    /// The log was refused.
    #[error(transparent)]
    Log(#[from] EventLogError),
    /// The quote is too short to hold RTMR3.
    #[error("quote: {0} bytes, too short for a TDX quote v4 (at least {min})", min = quote_v4::MIN_SIZE)]
    QuoteTooShort(usize),
    /// The quote is not version 4.
    #[error("quote: version {0}, but only TDX quote version 4 is read")]
    QuoteVersion(u16),
    /// The quote is not a TDX quote.
    #[error("quote: TEE type {0:#x}, not TDX (0x81)")]
    QuoteNotTdx(u32),
}

/// The registers of a TDX quote v4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteRegisters {
    /// MRTD.
    pub mrtd: [u8; 48],
    /// RTMR0 to RTMR3.
    pub rtmrs: eventlog::Rtmrs,
}

fn bytes48(bytes: &[u8], at: usize) -> Option<[u8; 48]> {
    bytes.get(at..at.checked_add(48)?)?.try_into().ok()
}

/// Reads MRTD and RTMR0-3 from a TDX quote v4, after checking its version and TEE type.
pub fn quote_registers(quote: &[u8]) -> Result<QuoteRegisters, EventLogCommandError> {
    if quote.len() < quote_v4::MIN_SIZE {
        return Err(EventLogCommandError::QuoteTooShort(quote.len()));
    }
    let too_short = || EventLogCommandError::QuoteTooShort(quote.len());
    let version = quote
        .get(quote_v4::VERSION..quote_v4::VERSION + 2)
        .and_then(|b| b.try_into().ok())
        .map(u16::from_le_bytes)
        .ok_or_else(too_short)?;
    if version != 4 {
        return Err(EventLogCommandError::QuoteVersion(version));
    }
    let tee_type = quote
        .get(quote_v4::TEE_TYPE..quote_v4::TEE_TYPE + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or_else(too_short)?;
    if tee_type != quote_v4::TEE_TYPE_TDX {
        return Err(EventLogCommandError::QuoteNotTdx(tee_type));
    }
    let mut rtmrs = [[0u8; 48]; RTMR_COUNT];
    for (i, rtmr) in rtmrs.iter_mut().enumerate() {
        *rtmr = bytes48(quote, quote_v4::RTMR0 + 48 * i).ok_or_else(too_short)?;
    }
    Ok(QuoteRegisters {
        mrtd: bytes48(quote, quote_v4::MRTD).ok_or_else(too_short)?,
        rtmrs,
    })
}

/// One algorithm of the Spec ID event.
#[derive(Debug, Serialize)]
pub struct AlgorithmReport {
    /// `TPM_ALG_ID`.
    pub id: u16,
    /// Its name, or the ID in hex.
    pub name: String,
    /// Bytes of its digests.
    pub digest_size: u16,
}

/// The Spec ID event.
#[derive(Debug, Serialize)]
pub struct SpecIdReport {
    /// The header's MR/PCR index.
    pub mr_index: u32,
    /// `platformClass`.
    pub platform_class: u32,
    /// `specVersionMajor.specVersionMinor`.
    pub spec_version: String,
    /// `specErrata`.
    pub spec_errata: u8,
    /// `uintnSize` (1 = UINT32, 2 = UINT64).
    pub uintn_size: u8,
    /// The declared algorithms.
    pub algorithms: Vec<AlgorithmReport>,
    /// `vendorInfo`, as text if it is text, else in hex.
    pub vendor_info: String,
}

/// One event after the Spec ID event.
#[derive(Debug, Serialize)]
pub struct EventReport {
    /// Position in the log (the Spec ID event is 0).
    pub index: usize,
    /// Byte offset in the log.
    pub offset: usize,
    /// The CC MR index.
    pub mr_index: u32,
    /// The register it extends ("RTMR0" to "RTMR3"), none for `EV_NO_ACTION`.
    pub register: Option<String>,
    /// `EventType`.
    pub event_type: u32,
    /// The type's name, or its value in hex.
    pub type_name: String,
    /// The SHA-384 digest in hex.
    pub digest: String,
    /// Bytes of event data.
    pub data_length: usize,
    /// What the data says, when it can be read.
    pub description: Option<String>,
}

/// `eventlog dump`: the whole log.
#[derive(Debug, Serialize)]
pub struct DumpReport {
    /// The Spec ID event.
    pub spec_id: SpecIdReport,
    /// The events, in log order.
    pub events: Vec<EventReport>,
    /// Byte offset just past the last event.
    pub end_offset: usize,
    /// What follows the last event.
    pub end: String,
}

fn register_name(rtmr: usize) -> String {
    format!("RTMR{rtmr}")
}

fn end_text(end: LogEnd) -> String {
    match end {
        LogEnd::EndOfBuffer => "end of file".into(),
        LogEnd::Padding(b) => format!("{b:#04x} padding"),
    }
}

fn spec_id_report(log: &EventLog<'_>) -> SpecIdReport {
    let s = log.spec_id();
    SpecIdReport {
        mr_index: s.mr_index,
        platform_class: s.platform_class,
        spec_version: format!("{}.{}", s.spec_version_major, s.spec_version_minor),
        spec_errata: s.spec_errata,
        uintn_size: s.uintn_size,
        algorithms: s
            .algorithms
            .iter()
            .map(|a| AlgorithmReport {
                id: a.id,
                name: a
                    .name()
                    .map_or_else(|| format!("{:#06x}", a.id), str::to_owned),
                digest_size: a.digest_size,
            })
            .collect(),
        vendor_info: ascii_z(s.vendor_info).unwrap_or_else(|| hex::encode(s.vendor_info)),
    }
}

fn event_report(e: &Event<'_>) -> EventReport {
    EventReport {
        index: e.index(),
        offset: e.offset(),
        mr_index: e.mr_index(),
        register: e.rtmr().map(register_name),
        event_type: e.event_type().0,
        type_name: e.event_type().to_string(),
        digest: hex::encode(e.digest()),
        data_length: e.data().len(),
        description: describe(e.event_type(), e.data()),
    }
}

/// Parses a log for `eventlog dump`.
pub fn dump(log: &[u8]) -> Result<DumpReport, EventLogCommandError> {
    let parsed = eventlog::parse(log)?;
    Ok(DumpReport {
        spec_id: spec_id_report(&parsed),
        events: parsed.events().iter().map(event_report).collect(),
        end_offset: parsed.end_offset(),
        end: end_text(parsed.end()),
    })
}

impl DumpReport {
    /// The human-readable form.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let sp = &self.spec_id;
        let _ = writeln!(
            s,
            "Spec ID event: MR index {}, spec {} errata {}, platform class {}, uintn size {}, vendor info {:?}",
            sp.mr_index, sp.spec_version, sp.spec_errata, sp.platform_class, sp.uintn_size, sp.vendor_info
        );
        for a in &sp.algorithms {
            let _ = writeln!(
                s,
                "  algorithm {} ({:#06x}), {} bytes",
                a.name, a.id, a.digest_size
            );
        }
        let _ = writeln!(
            s,
            "{} events; the log ends at offset {:#x} ({})",
            self.events.len(),
            self.end_offset,
            self.end
        );
        for e in &self.events {
            let _ = writeln!(
                s,
                "{:>4} {:#08x} {:<5} {:<32} {:>6} bytes  {}",
                e.index,
                e.offset,
                e.register.as_deref().unwrap_or("-"),
                e.type_name,
                e.data_length,
                e.description.as_deref().unwrap_or("")
            );
            let _ = writeln!(s, "     sha384 {}", e.digest);
        }
        s
    }
}

/// One register compared with the quote.
#[derive(Debug, Serialize)]
pub struct Comparison {
    /// "RTMR0" to "RTMR3".
    pub register: String,
    /// The quote's value in hex.
    pub quote: String,
    /// Whether it was compared: RTMR0-2 always, RTMR3 only if the log extends it.
    pub compared: bool,
    /// Whether the replayed value equals the quote's (false when not compared).
    pub matches: bool,
}

/// The quote side of `eventlog replay --quote`.
#[derive(Debug, Serialize)]
pub struct QuoteReport {
    /// The quote's MRTD in hex (shown, not compared: the log never extends it).
    pub mrtd: String,
    /// RTMR0 to RTMR3.
    pub registers: Vec<Comparison>,
}

/// `eventlog replay`: the replayed registers, and the comparison with a quote if one was given.
#[derive(Debug, Serialize)]
pub struct ReplayReport {
    /// Number of events replayed.
    pub events: usize,
    /// RTMR0 to RTMR3 in hex.
    pub rtmrs: Vec<String>,
    /// Whether the log extends each of RTMR0 to RTMR3.
    pub extended: Vec<bool>,
    /// The comparison with the quote.
    pub quote: Option<QuoteReport>,
}

/// Replays a log and, given a TDX quote v4, compares the registers.
pub fn replay(log: &[u8], quote: Option<&[u8]>) -> Result<ReplayReport, EventLogCommandError> {
    let parsed = eventlog::parse(log)?;
    let rtmrs = parsed.replay();
    let mut extended = vec![false; RTMR_COUNT];
    for i in parsed.events().iter().filter_map(Event::rtmr) {
        if let Some(x) = extended.get_mut(i) {
            *x = true;
        }
    }
    let quote = quote
        .map(|q| {
            let regs = quote_registers(q)?;
            let registers = (0..RTMR_COUNT)
                .zip(rtmrs.iter().zip(regs.rtmrs.iter()))
                .map(|(i, (ours, theirs))| {
                    // RTMR3 belongs to the OS: compare it only if the log claims it.
                    let compared = i < 3 || extended.get(i).copied().unwrap_or(false);
                    Comparison {
                        register: register_name(i),
                        quote: hex::encode(theirs),
                        compared,
                        matches: compared && ours == theirs,
                    }
                })
                .collect();
            Ok::<_, EventLogCommandError>(QuoteReport {
                mrtd: hex::encode(regs.mrtd),
                registers,
            })
        })
        .transpose()?;
    Ok(ReplayReport {
        events: parsed.events().len(),
        rtmrs: rtmrs.iter().map(hex::encode).collect(),
        extended,
        quote,
    })
}

impl ReplayReport {
    /// The registers that were compared with the quote and differ.
    pub fn mismatches(&self) -> Vec<&str> {
        self.quote.as_ref().map_or_else(Vec::new, |q| {
            q.registers
                .iter()
                .filter(|c| c.compared && !c.matches)
                .map(|c| c.register.as_str())
                .collect()
        })
    }

    /// The human-readable form.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "replayed {} events:", self.events);
        for (i, value) in self.rtmrs.iter().enumerate() {
            let note = if self.extended.get(i).copied().unwrap_or(false) {
                ""
            } else {
                "  (not extended by the log)"
            };
            let _ = writeln!(s, "  RTMR{i} {value}{note}");
        }
        if let Some(q) = &self.quote {
            let _ = writeln!(s, "quote (TDX v4):");
            let _ = writeln!(s, "  MRTD  {}", q.mrtd);
            for c in &q.registers {
                let verdict = match (c.compared, c.matches) {
                    (false, _) => "not compared (the log does not extend it)",
                    (true, true) => "matches the log",
                    (true, false) => "DIFFERS from the log",
                };
                let _ = writeln!(s, "  {} {}  {verdict}", c.register, c.quote);
            }
        }
        s
    }
}

// ---------------------------------------------------------------------------------------------
// Event data descriptions. Every reader is bounds-checked: the data is untrusted.

/// Longest description printed.
const MAX_DESCRIPTION: usize = 100;

fn u32_at(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        d.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u64_at(d: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        d.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

fn guid_at(d: &[u8], at: usize) -> Option<Guid> {
    Some(Guid(d.get(at..at.checked_add(16)?)?.try_into().ok()?))
}

fn byte_count(n: u64) -> String {
    if n == 1 {
        "1 byte".into()
    } else {
        format!("{n} bytes")
    }
}

fn shorten(mut text: String) -> String {
    if let Some((cut, _)) = text.char_indices().nth(MAX_DESCRIPTION) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// Printable ASCII (with tabs and line breaks, escaped), without trailing NULs.
fn text(d: &[u8]) -> Option<String> {
    let end = d.iter().rposition(|&b| b != 0)? + 1;
    let body = d.get(..end)?;
    if !body
        .iter()
        .all(|&b| b.is_ascii_graphic() || matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        return None;
    }
    let escaped: String = body
        .iter()
        .flat_map(|&b| char::from(b).escape_default())
        .collect();
    Some(shorten(escaped))
}

/// A NUL-terminated (or unterminated) printable ASCII string.
fn ascii_z(d: &[u8]) -> Option<String> {
    let body = d.split(|&b| b == 0).next()?;
    if body.iter().all(|&b| b.is_ascii_graphic() || b == b' ') {
        Some(String::from_utf8_lossy(body).into_owned())
    } else {
        None
    }
}

/// UTF-16LE up to the first NUL.
fn utf16(d: &[u8]) -> String {
    let units = d
        .as_chunks::<2>()
        .0
        .iter()
        .map(|&c| u16::from_le_bytes(c))
        .take_while(|&u| u != 0);
    char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

fn describe(event_type: EventType, d: &[u8]) -> Option<String> {
    let specific = match event_type {
        EventType::SEPARATOR => separator(d),
        EventType::EVENT_TAG => tagged_event(d),
        EventType::PLATFORM_CONFIG_FLAGS => platform_config(d),
        EventType::EFI_PLATFORM_FIRMWARE_BLOB2 => firmware_blob2(d),
        EventType::EFI_HANDOFF_TABLES2 => handoff_tables2(d),
        EventType::EFI_VARIABLE_DRIVER_CONFIG
        | EventType::EFI_VARIABLE_BOOT
        | EventType::EFI_VARIABLE_BOOT2
        | EventType::EFI_VARIABLE_AUTHORITY => variable(d),
        EventType::EFI_BOOT_SERVICES_APPLICATION
        | EventType::EFI_BOOT_SERVICES_DRIVER
        | EventType::EFI_RUNTIME_SERVICES_DRIVER => image_load(d),
        EventType::EFI_GPT_EVENT => gpt(d),
        _ => None,
    };
    specific.or_else(|| text(d)).map(shorten)
}

/// 0 closes a phase normally; 1 is td-shim's error separator.
fn separator(d: &[u8]) -> Option<String> {
    match u32_at(d, 0).filter(|_| d.len() == 4)? {
        0 => Some("separator (0x00000000)".into()),
        1 => Some("error separator (0x00000001)".into()),
        v => Some(format!("separator ({v:#010x})")),
    }
}

/// `TCG_PCClientTaggedEvent`: u32 taggedEventID, u32 taggedEventDataSize, data.
fn tagged_event(d: &[u8]) -> Option<String> {
    let id = u32_at(d, 0)?;
    let size = usize::try_from(u32_at(d, 4)?).ok()?;
    let data = d.get(8..8usize.checked_add(size)?)?;
    let what = text(data).unwrap_or_else(|| format!("{size} bytes"));
    Some(format!("tag {id:#010x}: {what}"))
}

/// td-shim's `TD_SHIM_PLATFORM_CONFIG_INFO` (descriptor[16], u32 length, info), else text
/// (OVMF's "ACPI DATA").
fn platform_config(d: &[u8]) -> Option<String> {
    let descriptor = d.get(..16).and_then(ascii_z).filter(|s| !s.is_empty());
    let length = u32_at(d, 16).and_then(|l| usize::try_from(l).ok());
    match (descriptor, length) {
        (Some(desc), Some(len)) if d.len().checked_sub(20) == Some(len) => {
            Some(format!("{desc}, {len} bytes of information"))
        }
        _ => text(d),
    }
}

/// u8 size, descriptor, then what follows it.
fn sized_descriptor(d: &[u8]) -> Option<(String, usize)> {
    let size = usize::from(*d.first()?);
    let descriptor = d.get(1..1 + size)?;
    Some((ascii_z(descriptor)?, 1 + size))
}

/// `UEFI_PLATFORM_FIRMWARE_BLOB2`: descriptor, u64 base, u64 length.
fn firmware_blob2(d: &[u8]) -> Option<String> {
    let (descriptor, at) = sized_descriptor(d)?;
    let base = u64_at(d, at)?;
    let length = u64_at(d, at.checked_add(8)?)?;
    Some(format!("{descriptor}: base {base:#x}, length {length:#x}"))
}

/// `TCG_HANDOFF_TABLE_POINTERS2`: descriptor, u64 count, {GUID, u64 address} × count.
fn handoff_tables2(d: &[u8]) -> Option<String> {
    let (descriptor, at) = sized_descriptor(d)?;
    let count = u64_at(d, at)?;
    let mut tables = Vec::new();
    let mut entry = at.checked_add(8)?;
    for _ in 0..count.min(4) {
        let guid = guid_at(d, entry)?;
        let address = u64_at(d, entry.checked_add(16)?)?;
        tables.push(format!("{guid} at {address:#x}"));
        entry = entry.checked_add(24)?;
    }
    Some(format!(
        "{descriptor}: {count} table(s) {}",
        tables.join(", ")
    ))
}

/// `UEFI_VARIABLE_DATA`: GUID, u64 name length (chars), u64 data length, UTF-16 name, data.
fn variable(d: &[u8]) -> Option<String> {
    let guid = guid_at(d, 0)?;
    let name_chars = usize::try_from(u64_at(d, 16)?).ok()?;
    let data_len = u64_at(d, 24)?;
    let name = d.get(32..32usize.checked_add(name_chars.checked_mul(2)?)?)?;
    Some(format!("{guid}:{}, {}", utf16(name), byte_count(data_len)))
}

/// `UEFI_IMAGE_LOAD_EVENT`: u64 address, u64 length, u64 link-time address, u64 device path
/// length, device path; the file path nodes of the device path are shown.
fn image_load(d: &[u8]) -> Option<String> {
    let address = u64_at(d, 0)?;
    let length = u64_at(d, 8)?;
    let path_len = usize::try_from(u64_at(d, 24)?).ok()?;
    let path = d.get(32..32usize.checked_add(path_len)?)?;
    let mut files = Vec::new();
    let mut node = path;
    // Device path nodes: u8 type, u8 subtype, u16 length (with this header), data.
    while let [kind, subtype, l0, l1, ..] = *node {
        let len = usize::from(u16::from_le_bytes([l0, l1]));
        let (this, rest) = (node.get(..len), node.get(len..));
        let (Some(this), Some(rest)) = (this, rest) else {
            break;
        };
        if len < 4 || kind == 0x7F {
            break;
        }
        if (kind, subtype) == (4, 4) {
            files.push(utf16(this.get(4..).unwrap_or_default()));
        }
        node = rest;
    }
    let mut s = format!("image at {address:#x}, {length:#x} bytes");
    if !files.is_empty() {
        let _ = write!(s, ", {}", files.join(""));
    }
    Some(s)
}

/// `UEFI_GPT_DATA`: the GPT header (its size at offset 12), u64 number of partitions, entries.
fn gpt(d: &[u8]) -> Option<String> {
    if d.get(..8)? != b"EFI PART" {
        return None;
    }
    let header_size = usize::try_from(u32_at(d, 12)?).ok()?;
    let partitions = u64_at(d, header_size)?;
    Some(format!("GPT, {partitions} partition(s)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn testdata(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/testdata/eventlogs")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn gotdx_replay_matches_the_quote() {
        let report = replay(
            &testdata("gotdx-ccel_data.dat"),
            Some(&testdata("gotdx-cos-113-tdx-quote.dat")),
        )
        .unwrap();
        assert_eq!(report.events, 43);
        assert!(report.mismatches().is_empty());
        assert_eq!(report.extended, [true, true, true, false]);
        let q = report.quote.as_ref().unwrap();
        assert_eq!(q.mrtd, "dae67181d3d65e073ad8f95b7907d5e927bfe9761c9ff3e9b89734a45d8954dba41394c7717cb2735396c1d04231f94a");
        assert_eq!(report.rtmrs[1], "f62dbc072bd5d3f3438b7b35c39a727f5aea2ffc2473f43723953f530daf62504f0a7944aa62c41a86e8a878c2b122c1");
        assert_eq!(report.rtmrs[2], "4969684dc87381fc3b3134176c8d8806eaf0a901859f5f70cfae8d17714b46c10a8de219048c9fc09f11f381a6fbe7c1");
        for (c, ours) in q.registers.iter().zip(&report.rtmrs).take(3) {
            assert!(c.compared && c.matches);
            assert_eq!(&c.quote, ours);
        }
        assert!(!q.registers[3].compared);
        let text = report.to_text();
        assert!(text.contains("RTMR2 4969684d"));
        assert!(text.contains("RTMR3 000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000  (not extended by the log)"));
        assert!(!text.contains("DIFFERS"));
    }

    #[test]
    fn a_log_from_another_boot_differs_from_the_quote() {
        let report = replay(
            &testdata("trustee-CCEL_data_grub"),
            Some(&testdata("gotdx-cos-113-tdx-quote.dat")),
        )
        .unwrap();
        assert_eq!(report.mismatches(), ["RTMR0", "RTMR1", "RTMR2"]);
        assert!(report.to_text().contains("RTMR1 f62dbc07"));
    }

    #[test]
    fn rtmr3_is_compared_when_the_log_extends_it() {
        let mut quote = testdata("gotdx-cos-113-tdx-quote.dat");
        let mut log = testdata("gotdx-ccel_data.dat");
        // Turn the last event (Exit Boot Services, MR 2) into an RTMR3 event: RTMR1 and
        // RTMR3 now differ from the quote.
        let last = eventlog::parse(&log)
            .unwrap()
            .events()
            .last()
            .unwrap()
            .offset();
        log[last] = 4;
        let report = replay(&log, Some(&quote)).unwrap();
        assert_eq!(report.extended, [true, true, true, true]);
        assert_eq!(report.mismatches(), ["RTMR1", "RTMR3"]);
        // Put the replayed RTMR3 into the quote: only RTMR1 is left.
        let rtmr3 = hex::decode(&report.rtmrs[3]).unwrap();
        quote[0x208..0x238].copy_from_slice(&rtmr3);
        assert_eq!(replay(&log, Some(&quote)).unwrap().mismatches(), ["RTMR1"]);
    }

    #[test]
    fn quote_is_checked() {
        let quote = testdata("gotdx-cos-113-tdx-quote.dat");
        let regs = quote_registers(&quote).unwrap();
        assert_eq!(regs.rtmrs[3], [0; 48]);
        assert!(matches!(
            quote_registers(&quote[..0x237]),
            Err(EventLogCommandError::QuoteTooShort(0x237))
        ));
        assert!(quote_registers(&quote[..0x238]).is_ok());
        let mut v5 = quote.clone();
        v5[0] = 5;
        assert!(matches!(
            quote_registers(&v5),
            Err(EventLogCommandError::QuoteVersion(5))
        ));
        let mut sgx = quote.clone();
        sgx[4] = 0;
        assert!(matches!(
            quote_registers(&sgx),
            Err(EventLogCommandError::QuoteNotTdx(0))
        ));
        assert!(matches!(
            quote_registers(&[]),
            Err(EventLogCommandError::QuoteTooShort(0))
        ));
    }

    #[test]
    fn dump_describes_the_gotdx_log() {
        let report = dump(&testdata("gotdx-ccel_data.dat")).unwrap();
        assert_eq!(report.events.len(), 43);
        assert_eq!(report.end_offset, 0x46b5);
        assert_eq!(report.end, "0xff padding");
        assert_eq!(report.spec_id.algorithms[0].name, "sha384");
        assert_eq!(report.spec_id.spec_version, "2.0");
        let d = |i: usize| report.events[i].description.clone().unwrap_or_default();
        let e = &report.events[0];
        assert_eq!(
            (e.index, e.offset, e.register.as_deref()),
            (1, 0x41, Some("RTMR0"))
        );
        assert_eq!(e.type_name, "EV_EFI_HANDOFF_TABLES2");
        assert_eq!(
            d(0),
            "TdxTable: 1 table(s) 93bb96af-b9f2-4eb8-9462-e0ba74564236 at 0x809000"
        );
        assert_eq!(
            d(1),
            "Fv(48DB5E17-707C-472D-91CD-1613E7EF51B0): base 0xffe00000, length 0x20000"
        );
        assert_eq!(
            d(2),
            "8be4df61-93ca-11d2-aa0d-00e098032b8c:SecureBoot, 1 byte"
        );
        assert_eq!(d(6), "d719b2cb-3d3a-4596-a3bc-dad00e67656f:dbx, 4461 bytes");
        assert_eq!(d(7), "separator (0x00000000)");
        assert_eq!(d(8), "ACPI DATA");
        assert_eq!(d(14), "Calling EFI Application from Boot Option");
        assert_eq!(d(16), "GPT, 12 partition(s)");
        assert_eq!(
            d(17),
            "image at 0xbcb5c018, 0xe1c10 bytes, \\EFI\\BOOT\\BOOTX64.EFI"
        );
        assert_eq!(d(18), "MokList");
        assert_eq!(
            d(20),
            "605dab50-e046-4300-abb6-3dd810dd8b23:SbatLevel, 18 bytes"
        );
        assert_eq!(d(24), "/efi/boot/grub.cfg");
        assert!(
            d(32).starts_with("grub_cmd: menuentry local image A {\\n  linux /syslinux/vmlinuz.A"),
            "{}",
            d(32)
        );
        assert!(d(32).ends_with('…'));
        assert_eq!(report.events[42].register.as_deref(), Some("RTMR1"));
        let text = report.to_text();
        assert!(text.contains("Spec ID event: MR index 1, spec 2.0 errata 0"));
        assert!(text.contains("43 events; the log ends at offset 0x46b5 (0xff padding)"));
        assert!(text.contains("algorithm sha384 (0x000c), 48 bytes"));
        assert!(text.contains(
            "   8 0x002181 RTMR0 EV_SEPARATOR                          4 bytes  separator (0x00000000)\n     sha384 394341b7182cd227c5c6b07ef8000cdfd86136c4292b8e576573ad7ed9ae41019f5818b4b971c9effc60e1ad9f1289f0"
        ));
    }

    #[test]
    fn dump_describes_the_tdshim_and_ovmf_logs() {
        let tdshim = dump(&testdata("trustee-CCEL_data")).unwrap();
        assert_eq!(tdshim.events.len(), 5);
        assert_eq!(tdshim.spec_id.vendor_info, "td-shim");
        assert_eq!(tdshim.spec_id.spec_errata, 105);
        assert_eq!(tdshim.end, "0x00 padding");
        let d: Vec<String> = tdshim
            .events
            .iter()
            .map(|e| e.description.clone().unwrap_or_default())
            .collect();
        assert_eq!(d[0], "td_hob, 5248 bytes of information");
        assert_eq!(d[1], "separator (0x00000000)");
        assert_eq!(d[3], "td_payload: base 0x901000, length 0x10000000");
        assert_eq!(d[4], "td_payload_info, 4096 bytes of information");
        let registers: Vec<&str> = tdshim
            .events
            .iter()
            .map(|e| e.register.as_deref().unwrap_or("-"))
            .collect();
        assert_eq!(registers, ["RTMR0", "RTMR0", "RTMR1", "RTMR1", "RTMR1"]);

        let ovmf = dump(&testdata("trustee-CCEL_data_ovmf")).unwrap();
        assert_eq!(ovmf.events.len(), 20);
        assert_eq!(
            ovmf.events[16].description.as_deref(),
            Some("tag 0x8f3b22ed: LOADED_IMAGE::LoadOptions")
        );
        assert_eq!(
            ovmf.events[17].description.as_deref(),
            Some("tag 0x8f3b22ec: Linux initrd")
        );
        let grub = dump(&testdata("trustee-CCEL_data_grub")).unwrap();
        assert_eq!(grub.events.len(), 37);
        for r in [&tdshim, &ovmf, &grub] {
            assert!(r.events.iter().all(|e| e.type_name.starts_with("EV_")));
            assert!(r.events.iter().all(|e| e.description.is_some()));
        }
    }

    #[test]
    fn descriptions_of_short_or_odd_data() {
        assert_eq!(
            separator(&[1, 0, 0, 0]).unwrap(),
            "error separator (0x00000001)"
        );
        assert_eq!(separator(&[0, 0, 0]), None);
        assert_eq!(text(b"ab\0\0").unwrap(), "ab");
        assert_eq!(text(b"\0\0"), None);
        assert_eq!(text(&[0x80]), None);
        assert_eq!(tagged_event(&[1, 0, 0, 0, 200, 0, 0, 0]), None);
        assert_eq!(gpt(b"EFI PART"), None);
        assert_eq!(image_load(&[0; 32]).unwrap(), "image at 0x0, 0x0 bytes");
        assert_eq!(describe(EventType(0x1234), b"hello").unwrap(), "hello");
        assert_eq!(shorten("x".repeat(101)).chars().count(), 101);
    }

    proptest! {
        #[test]
        fn describing_any_data_never_panics(
            t in prop::sample::select(vec![4u32, 6, 0xA, 0xD, 0x8000_0001, 0x8000_0003, 0x8000_0006,
                0x8000_000A, 0x8000_000B, 0x8000_00E0, 7]),
            data in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let _ = describe(EventType(t), &data);
        }

        #[test]
        fn any_quote_never_panics(q in proptest::collection::vec(any::<u8>(), 0..0x300)) {
            let _ = quote_registers(&q);
        }
    }
}
