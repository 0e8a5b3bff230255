//! `td-shim-tool eventlog`: list the events of a CC event log (the CCEL log area, from any
//! firmware), replay it into RTMR0-3, check the result against a TDX quote, and compare two
//! logs event by event.
//!
//! Parsing and replay are `td_shim::eventlog`'s; this module adds what a person reading a log
//! needs: register names, type names and a short description of each event's data.
//!
//! The command is split along its seams: [`dump`] lists the events, [`replay`] replays them and
//! reads a TDX quote, [`diff`] compares two logs, [`hob`] takes the TD HOB a TD measured out of
//! its log, and `describe` names and describes what an event's data says (bounds-checked: the
//! data is untrusted).

mod describe;
pub mod diff;
pub mod dump;
pub mod hob;
pub mod replay;

pub use diff::{diff, DiffReport, Difference, ExtraEvents, ACTUAL, EXPECTED};
pub use dump::{dump, AlgorithmReport, DumpReport, SpecIdReport};
pub use hob::{extract_hob, ExtractHobError, ExtractHobReport, ExtractedHob};
pub use replay::{
    quote_registers, quote_v4, replay, Comparison, QuoteRegisters, QuoteReport, ReplayReport,
};

use serde::Serialize;
use td_shim::eventlog::{Event, EventLogError};

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

/// The name of register `rtmr`: "RTMR0" to "RTMR3".
fn register_name(rtmr: usize) -> String {
    format!("RTMR{rtmr}")
}

/// The report of one event, as `dump` lists it and `diff` shows it.
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
        description: describe::describe(e.event_type(), e.data()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    /// A real event log or quote from the repository's testdata.
    pub(crate) fn testdata(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../testdata/eventlogs")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
}
