//! A TD HOB as QEMU builds it, for tests: used by the integration tests (`common`) and, through
//! `#[path]`, by the crate's unit tests, so there is one copy.

/// A TD HOB list at TD_HOB as QEMU's `tdvf_hob_create()` writes it for `ram` bytes of RAM
/// below 2 GiB: a 56-byte PHIT (version 9, EfiEndOfHobList just past the end), one 48-byte
/// resource descriptor per piece (unaccepted below TempMem, TempMem and TD_HOB as system
/// memory, unaccepted above; attribute 0x7), the 8-byte end of list (type 0xFFFF).
pub fn qemu_hob(ram: u64) -> Vec<u8> {
    use td_layout::layout::{TD_HOB, TEMP_MEM};
    let ranges = [
        (7u32, 0, TEMP_MEM.base),
        (0, TEMP_MEM.base, TEMP_MEM.size),
        (0, TD_HOB.base, TD_HOB.size),
        (7, TD_HOB.end(), ram - TD_HOB.end()),
    ];
    let len = 56 + 48 * ranges.len() + 8;
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&56u16.to_le_bytes());
    v.extend_from_slice(&[0; 4]);
    v.extend_from_slice(&9u32.to_le_bytes());
    v.extend_from_slice(&[0; 36]);
    v.extend_from_slice(&(TD_HOB.base + len as u64).to_le_bytes());
    for (kind, base, length) in ranges {
        v.extend_from_slice(&3u16.to_le_bytes());
        v.extend_from_slice(&48u16.to_le_bytes());
        v.extend_from_slice(&[0; 4 + 16]);
        v.extend_from_slice(&kind.to_le_bytes());
        v.extend_from_slice(&7u32.to_le_bytes());
        v.extend_from_slice(&base.to_le_bytes());
        v.extend_from_slice(&length.to_le_bytes());
    }
    v.extend_from_slice(&0xFFFFu16.to_le_bytes());
    v.extend_from_slice(&8u16.to_le_bytes());
    v.extend_from_slice(&[0; 4]);
    assert_eq!(v.len(), len);
    v
}
