//! `td-shim-tool eventlog`: list the events of a CC event log (the CCEL log area, from any
//! firmware), replay it into RTMR0-3, check the result against a TDX quote, and compare two
//! logs event by event.
//!
//! Parsing and replay are `td_shim::eventlog`'s; this module adds what a person reading a log
//! needs: register names, type names and a short description of each event's data.

use serde::Serialize;
use std::collections::BTreeSet;
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
    /// One of the two logs `eventlog diff` compares was refused.
    #[error("{log} is not a valid event log: {error}")]
    DiffLog {
        /// [`EXPECTED`] or [`ACTUAL`].
        log: &'static str,
        /// Why it was refused.
        error: EventLogError,
    },
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

/// The name of the first log `eventlog diff` compares: the reference.
pub const EXPECTED: &str = "EXPECTED";
/// The name of the second log `eventlog diff` compares: the one under test.
pub const ACTUAL: &str = "ACTUAL";

/// Where one log has events the other lacks.
#[derive(Debug, Serialize)]
pub struct ExtraEvents {
    /// The longer log: [`EXPECTED`] or [`ACTUAL`].
    pub log: &'static str,
    /// How many more events it has.
    pub count: usize,
    /// The last event both logs have (0: only the Spec ID event).
    pub after: usize,
}

/// The first event at which two logs differ.
#[derive(Debug, Serialize)]
pub struct Difference {
    /// Position of the event (the Spec ID event is 0).
    pub index: usize,
    /// Which of "mr_index", "event_type", "digest" and "data" differ; empty when only one log
    /// has an event here.
    pub fields: Vec<&'static str>,
    /// EXPECTED's event here, if it has one.
    pub expected: Option<EventReport>,
    /// ACTUAL's event here, if it has one.
    pub actual: Option<EventReport>,
    /// Set when the logs agree up to here and one of them ends.
    pub extra: Option<ExtraEvents>,
    /// The registers this difference changes: those either event extends, unless both extend
    /// the same register with the same digest (only the data or the type differ); for extra
    /// events, every register they extend.
    pub registers: Vec<String>,
}

/// `eventlog diff`: two logs compared event by event (MR index, type, digest, data).
#[derive(Debug, Serialize)]
pub struct DiffReport {
    /// Whether the logs have the same events. The Spec ID events are not compared: no
    /// register depends on them.
    pub equal: bool,
    /// Events in EXPECTED.
    pub expected_events: usize,
    /// Events in ACTUAL.
    pub actual_events: usize,
    /// Whether the Spec ID events differ (a note, not a difference).
    pub spec_id_differs: bool,
    /// The first difference, if any.
    pub first_difference: Option<Difference>,
    /// RTMR0 to RTMR3 replayed from EXPECTED, in hex.
    pub expected_rtmrs: Vec<String>,
    /// RTMR0 to RTMR3 replayed from ACTUAL, in hex.
    pub actual_rtmrs: Vec<String>,
    /// The registers whose replayed values differ.
    pub differing_registers: Vec<String>,
}

fn register_names(registers: BTreeSet<usize>) -> Vec<String> {
    registers.into_iter().map(register_name).collect()
}

fn differing_fields(e: &Event<'_>, a: &Event<'_>) -> Vec<&'static str> {
    [
        ("mr_index", e.mr_index() != a.mr_index()),
        ("event_type", e.event_type() != a.event_type()),
        ("digest", e.digest() != a.digest()),
        ("data", e.data() != a.data()),
    ]
    .into_iter()
    .filter_map(|(name, differs)| differs.then_some(name))
    .collect()
}

/// The first difference of two event lists.
fn first_difference(expected: &[Event<'_>], actual: &[Event<'_>]) -> Option<Difference> {
    for (e, a) in expected.iter().zip(actual) {
        let fields = differing_fields(e, a);
        if fields.is_empty() {
            continue;
        }
        let mut registers = BTreeSet::new();
        if (e.rtmr(), e.digest()) != (a.rtmr(), a.digest()) {
            registers.extend(e.rtmr());
            registers.extend(a.rtmr());
        }
        return Some(Difference {
            index: e.index(),
            fields,
            expected: Some(event_report(e)),
            actual: Some(event_report(a)),
            extra: None,
            registers: register_names(registers),
        });
    }
    let common = expected.len().min(actual.len());
    let (log, longer) = if expected.len() > actual.len() {
        (EXPECTED, expected)
    } else {
        (ACTUAL, actual)
    };
    let rest = longer.get(common..).unwrap_or_default();
    let first = rest.first()?;
    let registers = register_names(rest.iter().filter_map(Event::rtmr).collect());
    let report = Some(event_report(first));
    let (expected, actual) = if log == EXPECTED {
        (report, None)
    } else {
        (None, report)
    };
    Some(Difference {
        index: first.index(),
        fields: Vec::new(),
        expected,
        actual,
        extra: Some(ExtraEvents {
            log,
            count: rest.len(),
            after: common,
        }),
        registers,
    })
}

/// Compares two logs event by event and finds the first event that differs.
pub fn diff(expected: &[u8], actual: &[u8]) -> Result<DiffReport, EventLogCommandError> {
    let parse = |log: &'static str, bytes| {
        eventlog::parse(bytes).map_err(|error| EventLogCommandError::DiffLog { log, error })
    };
    let e = parse(EXPECTED, expected)?;
    let a = parse(ACTUAL, actual)?;
    let (e_rtmrs, a_rtmrs) = (e.replay(), a.replay());
    let first_difference = first_difference(e.events(), a.events());
    let differing_registers = (0..RTMR_COUNT)
        .filter(|&i| e_rtmrs.get(i) != a_rtmrs.get(i))
        .map(register_name)
        .collect();
    Ok(DiffReport {
        equal: first_difference.is_none(),
        expected_events: e.events().len(),
        actual_events: a.events().len(),
        spec_id_differs: e.spec_id() != a.spec_id(),
        first_difference,
        expected_rtmrs: e_rtmrs.iter().map(hex::encode).collect(),
        actual_rtmrs: a_rtmrs.iter().map(hex::encode).collect(),
        differing_registers,
    })
}

fn event_line(s: &mut String, log: &str, e: &EventReport) {
    let _ = writeln!(
        s,
        "  {log:<8}  event {} at {:#08x}  {:<5} {} (MR index {})  {} bytes  {}",
        e.index,
        e.offset,
        e.register.as_deref().unwrap_or("-"),
        e.type_name,
        e.mr_index,
        e.data_length,
        e.description.as_deref().unwrap_or("")
    );
    let _ = writeln!(s, "  {:<8}  sha384 {}", "", e.digest);
}

fn and_list(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

impl Difference {
    /// Where the logs part: "event 16" or "ACTUAL has 3 more events after event 12".
    fn place(&self) -> String {
        match &self.extra {
            None => format!("event {}", self.index),
            Some(x) if x.after == 0 => format!(
                "{} has {} after the Spec ID event",
                x.log,
                plural(x.count, "more event")
            ),
            Some(x) => format!(
                "{} has {} after event {}",
                x.log,
                plural(x.count, "more event"),
                x.after
            ),
        }
    }

    /// Which registers the difference changes, as a phrase.
    fn effect(&self) -> String {
        if !self.registers.is_empty() {
            return format!("changes {}", and_list(&self.registers));
        }
        let register = self
            .expected
            .as_ref()
            .or(self.actual.as_ref())
            .and_then(|e| e.register.clone());
        match (&self.extra, register) {
            (Some(_), _) => "changes no register (the extra events extend none)".into(),
            (None, Some(r)) => {
                format!("changes no register (both events extend {r} with the same digest)")
            }
            (None, None) => "changes no register (neither event extends one)".into(),
        }
    }
}

impl DiffReport {
    /// Why the logs are not equal, in one line; `None` if they are.
    pub fn summary(&self) -> Option<String> {
        let d = self.first_difference.as_ref()?;
        let place = d.place();
        let effect = d.effect();
        Some(match d.extra {
            None => format!("the logs differ at {place}, which {effect}"),
            Some(_) => format!("the logs differ: {place}, which {effect}"),
        })
    }

    /// The human-readable form.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{EXPECTED}: {}, {ACTUAL}: {}",
            plural(self.expected_events, "event"),
            plural(self.actual_events, "event")
        );
        if self.spec_id_differs {
            let _ = writeln!(
                s,
                "note: the Spec ID events differ (no register depends on them; compare them with `eventlog dump`)"
            );
        }
        match &self.first_difference {
            None => {
                let _ = writeln!(
                    s,
                    "the logs have the same {}",
                    plural(self.expected_events, "event")
                );
            }
            Some(d) => {
                let _ = if d.fields.is_empty() {
                    writeln!(s, "first difference: {}", d.place())
                } else {
                    writeln!(
                        s,
                        "first difference: {} ({})",
                        d.place(),
                        d.fields.join(", ")
                    )
                };
                if let Some(e) = &d.expected {
                    event_line(&mut s, EXPECTED, e);
                }
                if let Some(a) = &d.actual {
                    event_line(&mut s, ACTUAL, a);
                }
                let _ = writeln!(s, "this difference {}", d.effect());
            }
        }
        if self.differing_registers.is_empty() {
            let _ = writeln!(s, "the replayed registers are equal");
        } else {
            let _ = writeln!(
                s,
                "replayed registers that differ: {}",
                and_list(&self.differing_registers)
            );
            for (i, (e, a)) in self
                .expected_rtmrs
                .iter()
                .zip(&self.actual_rtmrs)
                .enumerate()
            {
                if e != a {
                    let _ = writeln!(s, "  RTMR{i} {EXPECTED:<8} {e}");
                    let _ = writeln!(s, "  RTMR{i} {ACTUAL:<8} {a}");
                }
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
            .join("../../testdata/eventlogs")
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

    /// The log with one bit of event `index`'s SHA-384 digest flipped.
    fn flip_digest(log: &[u8], index: usize) -> Vec<u8> {
        let offset = eventlog::parse(log).unwrap().events()[index - 1].offset();
        let mut out = log.to_vec();
        // MrIndex, EventType, count, hashAlg: the digest starts 14 bytes in.
        out[offset + 14] ^= 0x80;
        out
    }

    /// The log cut after its first `events` events, the rest of the area 0xFF.
    fn keep_events(log: &[u8], events: usize) -> Vec<u8> {
        let parsed = eventlog::parse(log).unwrap();
        let end = parsed
            .events()
            .get(events)
            .map_or(parsed.end_offset(), Event::offset);
        let mut out = log.to_vec();
        out[end..].fill(0xFF);
        out
    }

    const REAL_LOGS: [&str; 4] = [
        "gotdx-ccel_data.dat",
        "trustee-CCEL_data",
        "trustee-CCEL_data_ovmf",
        "trustee-CCEL_data_grub",
    ];

    #[test]
    fn diff_of_a_log_with_itself_is_equal() {
        for name in REAL_LOGS {
            let log = testdata(name);
            let report = diff(&log, &log).unwrap();
            assert!(report.equal, "{name}");
            assert!(!report.spec_id_differs);
            assert!(report.first_difference.is_none());
            assert!(report.differing_registers.is_empty());
            assert_eq!(report.expected_events, report.actual_events);
            assert_eq!(report.expected_rtmrs, report.actual_rtmrs);
            assert_eq!(report.summary(), None);
            assert!(report.to_text().contains("the logs have the same"));
        }
    }

    #[test]
    fn diff_names_the_event_whose_digest_differs() {
        let log = testdata("gotdx-ccel_data.dat");
        let parsed = eventlog::parse(&log).unwrap();
        for e in parsed.events() {
            let k = e.index();
            let register = register_name(e.rtmr().unwrap());
            let report = diff(&log, &flip_digest(&log, k)).unwrap();
            assert!(!report.equal);
            let d = report.first_difference.as_ref().unwrap();
            assert_eq!(d.index, k);
            assert_eq!(d.fields, ["digest"]);
            assert_eq!(d.registers, std::slice::from_ref(&register));
            assert_eq!(report.differing_registers, std::slice::from_ref(&register));
            let (x, y) = (d.expected.as_ref().unwrap(), d.actual.as_ref().unwrap());
            assert_ne!(x.digest, y.digest);
            assert_eq!(
                (x.index, x.offset, &x.type_name),
                (k, e.offset(), &y.type_name)
            );
            assert_eq!(x.description, y.description);
            assert_eq!(
                report.summary().unwrap(),
                format!("the logs differ at event {k}, which changes {register}")
            );
        }
    }

    #[test]
    fn diff_describes_both_events() {
        let log = testdata("trustee-CCEL_data");
        let report = diff(&log, &flip_digest(&log, 4)).unwrap();
        let text = report.to_text();
        assert!(
            text.contains("first difference: event 4 (digest)"),
            "{text}"
        );
        assert!(text.contains(
            "  EXPECTED  event 4 at 0x0015aa  RTMR1 EV_EFI_PLATFORM_FIRMWARE_BLOB2 (MR index 2)  28 bytes  td_payload: base 0x901000, length 0x10000000"
        ), "{text}");
        assert!(
            text.contains("  ACTUAL    event 4 at 0x0015aa  RTMR1"),
            "{text}"
        );
        assert!(text.contains("this difference changes RTMR1\n"), "{text}");
        assert!(
            text.contains("replayed registers that differ: RTMR1\n"),
            "{text}"
        );
        assert!(
            text.contains("  RTMR1 EXPECTED 0fa3be56af61208bbd17"),
            "{text}"
        );
    }

    #[test]
    fn diff_of_data_alone_changes_no_register() {
        // The grub command of event 33 (RTMR2): its text differs, its digest does not.
        let log = testdata("gotdx-ccel_data.dat");
        let offset = eventlog::parse(&log).unwrap().events()[32].offset();
        let mut other = log.clone();
        other[offset + 66 + 10] ^= 0x20;
        let report = diff(&log, &other).unwrap();
        assert!(!report.equal);
        let d = report.first_difference.as_ref().unwrap();
        assert_eq!((d.index, d.fields.as_slice()), (33, ["data"].as_slice()));
        assert!(d.registers.is_empty());
        assert!(report.differing_registers.is_empty());
        assert_eq!(
            report.summary().unwrap(),
            "the logs differ at event 33, which changes no register (both events extend RTMR2 with the same digest)"
        );
        assert!(report
            .to_text()
            .contains("the replayed registers are equal"));
    }

    #[test]
    fn diff_of_a_moved_event_names_both_registers() {
        // The last event (Exit Boot Services, RTMR1) moved to RTMR3.
        let log = testdata("gotdx-ccel_data.dat");
        let last = eventlog::parse(&log).unwrap().events()[42].offset();
        let mut moved = log.clone();
        moved[last] = 4;
        let report = diff(&log, &moved).unwrap();
        let d = report.first_difference.as_ref().unwrap();
        assert_eq!(
            (d.index, d.fields.as_slice()),
            (43, ["mr_index"].as_slice())
        );
        assert_eq!(d.registers, ["RTMR1", "RTMR3"]);
        assert_eq!(report.differing_registers, ["RTMR1", "RTMR3"]);
        assert_eq!(
            report.summary().unwrap(),
            "the logs differ at event 43, which changes RTMR1 and RTMR3"
        );
    }

    #[test]
    fn diff_of_logs_of_different_length() {
        let log = testdata("gotdx-ccel_data.dat");
        let short = keep_events(&log, 40);
        let report = diff(&short, &log).unwrap();
        assert!(!report.equal);
        assert_eq!((report.expected_events, report.actual_events), (40, 43));
        let d = report.first_difference.as_ref().unwrap();
        assert_eq!(d.index, 41);
        assert!(d.fields.is_empty());
        assert!(d.expected.is_none());
        assert_eq!(d.actual.as_ref().unwrap().index, 41);
        let x = d.extra.as_ref().unwrap();
        assert_eq!((x.log, x.count, x.after), (ACTUAL, 3, 40));
        // Events 41 to 43: the kernel command line (RTMR2), then "Exit Boot Services" twice
        // (RTMR1).
        assert_eq!(d.registers, ["RTMR1", "RTMR2"]);
        assert_eq!(
            report.summary().unwrap(),
            "the logs differ: ACTUAL has 3 more events after event 40, which changes RTMR1 and RTMR2"
        );
        let text = report.to_text();
        assert!(text.contains("first difference: ACTUAL has 3 more events after event 40\n"));
        assert!(text.contains("  ACTUAL    event 41 at "));
        // The other way round.
        let report = diff(&log, &keep_events(&log, 42)).unwrap();
        let x = report
            .first_difference
            .as_ref()
            .unwrap()
            .extra
            .as_ref()
            .unwrap();
        assert_eq!((x.log, x.count, x.after), (EXPECTED, 1, 42));
        assert_eq!(
            report.summary().unwrap(),
            "the logs differ: EXPECTED has 1 more event after event 42, which changes RTMR1"
        );
        // Nothing but the Spec ID event.
        let report = diff(&keep_events(&log, 0), &log).unwrap();
        assert!(report
            .summary()
            .unwrap()
            .starts_with("the logs differ: ACTUAL has 43 more events after the Spec ID event, which changes RTMR0, RTMR1 and RTMR2"));
    }

    #[test]
    fn diff_ignores_the_spec_id_event_but_says_so() {
        // Upstream td-shim's log rewritten with our writer: the same events, a Spec ID event
        // with another specErrata.
        let log = testdata("trustee-CCEL_data");
        let real = eventlog::parse(&log).unwrap();
        let mut area = vec![0u8; log.len()];
        let mut rtmrs = eventlog::SoftwareRtmrs::default();
        let mut writer = eventlog::EventLogWriter::new(&mut area, b"td-shim").unwrap();
        for e in real.events() {
            writer
                .log_digest(
                    &mut rtmrs,
                    e.mr_index(),
                    e.event_type().0,
                    *e.digest(),
                    e.data(),
                )
                .unwrap();
        }
        let report = diff(&log, writer.area()).unwrap();
        assert!(report.equal);
        assert!(report.spec_id_differs);
        assert!(report.differing_registers.is_empty());
        assert!(report.to_text().contains("note: the Spec ID events differ"));
    }

    #[test]
    fn diff_names_the_log_it_refuses() {
        let log = testdata("gotdx-ccel_data.dat");
        let quote = testdata("gotdx-cos-113-tdx-quote.dat");
        for (e, a, which) in [(&quote, &log, EXPECTED), (&log, &quote, ACTUAL)] {
            let err = diff(e, a).unwrap_err();
            assert!(matches!(err, EventLogCommandError::DiffLog { log, .. } if log == which));
            assert!(err
                .to_string()
                .starts_with(&format!("{which} is not a valid event log: event log: ")));
        }
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

        #[test]
        fn diff_of_mutated_logs_never_panics(
            which in 0..REAL_LOGS.len(),
            position in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let log = testdata(REAL_LOGS[which]);
            let end = eventlog::parse(&log).unwrap().end_offset() + 16;
            let mut other = log[..end].to_vec();
            let at = position.index(other.len());
            other[at] = byte;
            for (e, a) in [(&log[..], &other[..]), (&other[..], &log[..])] {
                if let Ok(report) = diff(e, a) {
                    let _ = report.to_text();
                    // Equal events replay to equal registers.
                    if report.equal {
                        prop_assert!(report.differing_registers.is_empty());
                    }
                    prop_assert_eq!(report.equal, report.summary().is_none());
                }
            }
        }
    }
}
