//! `eventlog diff`: two logs compared event by event (MR index, type, digest, data), the first
//! difference named with the registers it changes.

use super::{event_report, register_name, EventLogCommandError, EventReport};
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use td_shim::eventlog::{self, Event, RTMR_COUNT};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventlog::tests::testdata;
    use proptest::prelude::*;

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
