//! The TD HOB a TDX VMM writes into the TD_HOB region: `td_shim::tdx::hob::parse`, then
//! `TdHob::unaccepted` and `TdHob::memory_map`.
//!
//! Input: the HOB list's bytes, at guest address `TD_HOB.base`. Checked: the shape of what was
//! parsed, that bytes after the end-of-list HOB never matter (the input zero-padded to the
//! region's size parses the same), and that the memory map agrees with the ranges.
#![no_main]

use libfuzzer_sys::fuzz_target;
use td_layout::handoff::E820_RAM;
use td_layout::layout::{PAGE_SIZE, TD_HOB};
use td_shim::memory_map::MAX_PHYS_ADDR;
use td_shim::tdx::hob::{parse, ResourceKind, TdHob};

/// Sorted, non-empty, non-overlapping, inside the 52-bit address space; RAM page aligned.
fn check_shape(hob: &TdHob) {
    for r in hob.ranges() {
        assert!(r.length > 0, "empty range {r:?}");
        assert!(r
            .base
            .checked_add(r.length)
            .is_some_and(|e| e <= MAX_PHYS_ADDR));
        if r.kind.is_ram() {
            assert!(r.base.is_multiple_of(PAGE_SIZE) && r.length.is_multiple_of(PAGE_SIZE));
        }
    }
    for w in hob.ranges().windows(2) {
        assert!(w[0].end() <= w[1].base, "unsorted or overlapping: {w:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let result = parse(data);
    if let Err(e) = &result {
        assert!(e.to_string().starts_with("TD HOB: "));
    }
    // What follows the list (the rest of the zeroed region) never changes a successful parse.
    if let Ok(hob) = &result {
        if data.len() < TD_HOB.size as usize {
            let mut region = vec![0u8; TD_HOB.size as usize];
            region[..data.len()].copy_from_slice(data);
            assert_eq!(parse(&region).as_ref(), Ok(hob));
        }
    }
    let Ok(hob) = result else {
        return;
    };
    check_shape(&hob);

    let unaccepted: Vec<_> = hob.unaccepted().collect();
    let expected: Vec<_> = hob
        .ranges()
        .iter()
        .filter(|r| r.kind == ResourceKind::Unaccepted)
        .map(|r| (r.base, r.length))
        .collect();
    assert_eq!(unaccepted, expected);

    let Ok(map) = hob.memory_map() else {
        return;
    };
    let ram: u64 = hob
        .ranges()
        .iter()
        .filter(|r| r.kind.is_ram())
        .map(|r| r.length)
        .sum();
    assert_eq!(map.ram_bytes(), ram);
    for r in hob.ranges() {
        // RAM of either kind is E820 RAM; MMIO and reserved memory never are.
        assert_eq!(map.is_ram(r.base, r.length), r.kind.is_ram(), "{r:?}");
        assert_eq!(r.kind.e820_type() == E820_RAM, r.kind.is_ram());
    }
    for w in map.ranges().windows(2) {
        assert!(
            w[0].end() <= w[1].base,
            "map unsorted or overlapping: {w:?}"
        );
    }
});
