//! `eventlog replay`: the log replayed into RTMR0-3 and, given a TDX quote v4, compared with
//! the quote's registers.

use super::{register_name, EventLogCommandError};
use serde::Serialize;
use std::fmt::Write as _;
use td_shim::eventlog::{self, Event, RTMR_COUNT, SHA384_DIGEST_SIZE};
use td_shim::tdx::quote::{self as tdx_quote, QuoteError};

/// TDX quote v4 (research/tdx-attestation.md §5.1): offsets from the start of the quote, as
/// `td_shim::tdx::quote` reads it, and the shortest quote this command reads.
pub mod quote_v4 {
    pub use td_shim::tdx::quote::layout::*;
    pub use td_shim::tdx::quote::TEE_TYPE_TDX;

    /// The shortest quote this tool reads: the header, the TD report body and the signature
    /// data's length. The signature data is neither needed for the registers nor checked here
    /// (`td-shim-tool verify` checks its length).
    pub const MIN_SIZE: usize = SIGNATURE_DATA;
}

/// The registers of a TDX quote v4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteRegisters {
    /// MRTD.
    pub mrtd: [u8; SHA384_DIGEST_SIZE],
    /// RTMR0 to RTMR3.
    pub rtmrs: eventlog::Rtmrs,
}

/// Reads MRTD and RTMR0-3 from a TDX quote v4 with `td_shim::tdx::quote`, after checking its
/// length (at least [`quote_v4::MIN_SIZE`]), version and TEE type.
pub fn quote_registers(quote: &[u8]) -> Result<QuoteRegisters, EventLogCommandError> {
    // The length first, as before: something too short to be a quote is named as such.
    if quote.len() < quote_v4::MIN_SIZE {
        return Err(EventLogCommandError::QuoteTooShort(quote.len()));
    }
    let body = tdx_quote::parse_report_body(quote).map_err(|e| match e {
        QuoteError::Version(version) => EventLogCommandError::QuoteVersion(version),
        QuoteError::TeeType(tee_type) => EventLogCommandError::QuoteNotTdx(tee_type),
        QuoteError::HeaderTruncated { size }
        | QuoteError::BodyTruncated { size }
        | QuoteError::SignatureTruncated { size, .. } => EventLogCommandError::QuoteTooShort(size),
    })?;
    Ok(QuoteRegisters {
        mrtd: *body.mrtd(),
        rtmrs: *body.rtmrs(),
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventlog::tests::testdata;
    use proptest::prelude::*;

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
        // Up to the signature data's length: the signature data is not read.
        assert!(matches!(
            quote_registers(&quote[..0x27B]),
            Err(EventLogCommandError::QuoteTooShort(0x27B))
        ));
        assert!(quote_registers(&quote[..0x27C]).is_ok());
        // The length is checked first.
        assert!(matches!(
            quote_registers(&[0; 64]),
            Err(EventLogCommandError::QuoteTooShort(64))
        ));
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

    proptest! {
        #[test]
        fn any_quote_never_panics(q in proptest::collection::vec(any::<u8>(), 0..0x300)) {
            let _ = quote_registers(&q);
        }
    }
}
