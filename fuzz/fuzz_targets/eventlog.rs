//! CC event logs (the CCEL log area): `td_shim::eventlog::parse`, the replay into RTMRs, and a
//! round trip through `EventLogWriter`.
//!
//! Input: the log area's bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use td_shim::eventlog::{
    parse, replay, EventLogWriter, EventType, LogEnd, SoftwareRtmrs, EVENT2_HEADER_SIZE,
    SPEC_ID_RECORD_SIZE,
};

fuzz_target!(|data: &[u8]| {
    let Ok(log) = parse(data) else { return };
    // Where the log ends is consistent with how it says it ends.
    let end = log.end_offset();
    assert!(end <= data.len());
    match log.end() {
        LogEnd::EndOfBuffer => assert_eq!(end, data.len()),
        LogEnd::Padding(b) => {
            assert!(b == 0 || b == 0xFF);
            assert!(end < data.len() && data[end] == b);
        }
    }
    let mut at = 0;
    for (i, e) in log.events().iter().enumerate() {
        assert_eq!(e.index(), i + 1);
        assert!(e.offset() > at && e.offset() < end, "events out of order");
        at = e.offset();
        assert!(e.mr_index() <= 4);
        match e.rtmr() {
            Some(r) => assert_eq!(r + 1, e.mr_index() as usize),
            None => assert_eq!(e.event_type(), EventType::NO_ACTION),
        }
    }
    assert!(log.spec_id().algorithms.iter().any(|a| a.id == 0x000C));

    // Replaying never panics and is what the public `replay` gives.
    let rtmrs = log.replay();
    assert_eq!(rtmrs, replay(log.events()));

    // Writing the measured events again (SHA-384 only) gives a log that parses to the same
    // events and replays to the same registers; the writer's registers agree.
    let measured: Vec<_> = log.events().iter().filter(|e| e.rtmr().is_some()).collect();
    let vendor = &log.spec_id().vendor_info[..log.spec_id().vendor_info.len().min(255)];
    let size = SPEC_ID_RECORD_SIZE
        + vendor.len()
        + measured
            .iter()
            .map(|e| EVENT2_HEADER_SIZE + e.data().len())
            .sum::<usize>();
    let mut area = vec![0u8; size + 8];
    let mut registers = SoftwareRtmrs::default();
    let mut writer = EventLogWriter::new(&mut area, vendor).expect("room for the Spec ID event");
    for e in &measured {
        writer
            .log_digest(
                &mut registers,
                e.mr_index(),
                e.event_type().0,
                *e.digest(),
                e.data(),
            )
            .expect("room for every event");
    }
    assert_eq!(writer.used(), size);
    assert_eq!(
        registers.0, rtmrs,
        "the writer's registers differ from the replay"
    );
    let again = parse(writer.area()).expect("what the writer wrote parses");
    assert_eq!(again.end(), LogEnd::Padding(0xFF));
    assert_eq!(again.end_offset(), size);
    assert_eq!(again.events().len(), measured.len());
    for (a, b) in again.events().iter().zip(&measured) {
        assert_eq!(
            (a.mr_index(), a.event_type(), a.digest(), a.data()),
            (b.mr_index(), b.event_type(), b.digest(), b.data())
        );
    }
    assert_eq!(again.replay(), rtmrs);
});
