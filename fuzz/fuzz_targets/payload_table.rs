//! The image's payload table: `td_layout::payload::PayloadTable::parse`, and a round trip
//! through `write_payload_table`.
//!
//! Input: the payload region's bytes (the table page, then the payloads).
#![no_main]

use libfuzzer_sys::fuzz_target;
use td_layout::layout::PAGE_SIZE;
use td_layout::payload::{
    write_payload_table, PayloadKind, PayloadTable, FIRST_PAYLOAD_OFFSET, MAX_ENTRIES,
};

fuzz_target!(|data: &[u8]| {
    let Ok(table) = PayloadTable::parse(data) else {
        return;
    };
    let entries: Vec<_> = table.entries().collect();
    assert!(!entries.is_empty() && entries.len() <= MAX_ENTRIES);
    for (i, e) in entries.iter().enumerate() {
        assert!(e.size > 0);
        assert!(e.offset >= FIRST_PAYLOAD_OFFSET && e.offset.is_multiple_of(PAGE_SIZE));
        let end = e.offset.checked_add(e.size).expect("entry wraps");
        assert!(end <= data.len() as u64, "entry past the region");
        for f in &entries[i + 1..] {
            assert_ne!(e.kind, f.kind, "duplicate kind");
            assert!(
                end <= f.offset || f.offset + f.size <= e.offset,
                "overlapping payloads"
            );
        }
        let bytes = table.find(e.kind).expect("a listed kind is found");
        assert_eq!(bytes, &data[e.offset as usize..end as usize]);
    }

    // Writing the same payloads and parsing the result gives them back, in order.
    let payloads: Vec<(PayloadKind, &[u8])> = entries
        .iter()
        .map(|e| (e.kind, table.find(e.kind).unwrap()))
        .collect();
    let packed: u64 = payloads
        .iter()
        .map(|(_, d)| (d.len() as u64).div_ceil(PAGE_SIZE) * PAGE_SIZE)
        .sum();
    let mut region = vec![0u8; (FIRST_PAYLOAD_OFFSET + packed) as usize];
    assert_eq!(
        write_payload_table(&mut region, &payloads),
        Ok(payloads.len())
    );
    let again = PayloadTable::parse(&region).expect("the writer's table parses");
    let kinds: Vec<_> = again.entries().map(|e| (e.kind, e.size)).collect();
    assert_eq!(
        kinds,
        entries.iter().map(|e| (e.kind, e.size)).collect::<Vec<_>>()
    );
    for (kind, bytes) in &payloads {
        assert_eq!(again.find(*kind), Some(*bytes));
    }
});
