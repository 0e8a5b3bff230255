//! E820 memory map from the VMM (fw_cfg `etc/e820`): `MemoryMap::from_e820_bytes`, then the
//! carving the firmware does on it.
//!
//! Input: the E820 bytes. The parse runs on the whole input; the carving runs on the whole
//! 20-byte records, with up to 19 trailing bytes choosing a range to carve and release.
#![no_main]

use libfuzzer_sys::fuzz_target;
use td_layout::handoff::{MemoryMapEntry, E820_RESERVED};
use td_shim::memory_map::{carve_firmware_regions, MemoryMap, E820_ENTRY_SIZE, MAX_PHYS_ADDR};

/// Sorted, non-empty, non-overlapping, inside the 52-bit address space.
fn check_shape(map: &MemoryMap) {
    for r in map.ranges() {
        assert!(r.length > 0, "empty range {r:?}");
        assert!(r
            .base
            .checked_add(r.length)
            .is_some_and(|e| e <= MAX_PHYS_ADDR));
    }
    for w in map.ranges().windows(2) {
        assert!(w[0].end() <= w[1].base, "unsorted or overlapping: {w:?}");
    }
}

fn encode(map: &MemoryMap) -> Vec<u8> {
    let mut out = vec![
        MemoryMapEntry {
            base: 0,
            length: 0,
            kind: 0
        };
        map.ranges().len()
    ];
    let n = map
        .write_entries(&mut out)
        .expect("a buffer of the map's length");
    assert_eq!(n, map.ranges().len());
    let mut bytes = Vec::with_capacity(n * E820_ENTRY_SIZE);
    for e in &out {
        bytes.extend_from_slice(&{ e.base }.to_le_bytes());
        bytes.extend_from_slice(&{ e.length }.to_le_bytes());
        bytes.extend_from_slice(&{ e.kind }.to_le_bytes());
    }
    bytes
}

fuzz_target!(|data: &[u8]| {
    if let Ok(map) = MemoryMap::from_e820_bytes(data) {
        check_shape(&map);
        assert!(map.ram().next().is_some(), "a parsed map has RAM");
        // Writing the map and reading it back gives the same map.
        let again = MemoryMap::from_e820_bytes(&encode(&map)).expect("the map's own records");
        assert_eq!(again, map);
    }

    let whole = data.len() - data.len() % E820_ENTRY_SIZE;
    let (records, tail) = data.split_at(whole);
    let Ok(mut map) = MemoryMap::from_e820_bytes(records) else {
        return;
    };
    let ram_before = map.ram_bytes();
    let mut word = [0u8; 8];
    let n = tail.len().min(8);
    word[..n].copy_from_slice(&tail[..n]);
    let pick = u64::from_le_bytes(word);
    // A sub-range of one of the RAM ranges, chosen by the tail bytes.
    let ram: Vec<_> = map.ram().copied().collect();
    let r = ram[(pick as usize) % ram.len()];
    let offset = (pick >> 8) % r.length;
    let length = ((pick >> 32) % (r.length - offset)).max(1);
    assert!(map.is_ram(r.base + offset, length));
    map.carve("fuzz", r.base + offset, length, E820_RESERVED)
        .expect("carving RAM that is RAM");
    check_shape(&map);
    assert_eq!(map.ram_bytes(), ram_before - length);
    assert!(!map.is_ram(r.base + offset, length));
    map.release(r.base + offset, length);
    check_shape(&map);
    assert_eq!(map.ram_bytes(), ram_before);
    assert!(map.is_ram(r.base + offset, length));

    let _ = carve_firmware_regions(&mut map);
    check_shape(&map);
    assert!(map.ram_bytes() <= ram_before);
});
