//! Writing the hand-off block an ELF payload receives (format: [`td_layout::handoff`]).

use crate::memory_map::{MemoryMap, MemoryMapError};
use td_layout::handoff::{
    BootInfo, MemoryMapEntry, PlatformKind, BOOT_INFO_MAGIC, BOOT_INFO_VERSION,
};
use zerocopy::{FromZeros, IntoBytes};

/// Writes the [`BootInfo`] at the start of `region` (guest address `region_base`) and the
/// memory map right after it. Returns the guest address of the `BootInfo`.
pub fn write_boot_info(
    region: &mut [u8],
    region_base: u64,
    platform: PlatformKind,
    map: &MemoryMap,
    payload_base: u64,
    payload_size: u64,
    event_log: (u64, u64),
) -> Result<u64, MemoryMapError> {
    let info_size = core::mem::size_of::<BootInfo>();
    let entry_size = core::mem::size_of::<MemoryMapEntry>();
    let (head, tail) = region
        .split_at_mut_checked(info_size)
        .ok_or(MemoryMapError::TooManyRanges)?;
    let capacity = tail.len() / entry_size;
    let mut entries = alloc::vec![MemoryMapEntry::new_zeroed(); capacity];
    let count = map.write_entries(&mut entries)?;
    let bytes = entries[..count].as_bytes();
    tail[..bytes.len()].copy_from_slice(bytes);
    let info = BootInfo {
        magic: BOOT_INFO_MAGIC,
        version: BOOT_INFO_VERSION,
        size: info_size as u32,
        platform: platform as u32,
        memory_map_entries: count as u32,
        memory_map_address: region_base + info_size as u64,
        payload_base,
        payload_size,
        event_log_address: event_log.0,
        event_log_size: event_log.1,
    };
    head.copy_from_slice(info.as_bytes());
    Ok(region_base)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use zerocopy::FromBytes;

    #[test]
    fn boot_info_and_map_round_trip() {
        let mut e820 = std::vec::Vec::new();
        for (b, l, t) in [(0u64, 0x800_0000u64, 1u32), (0xFEFF_C000, 0x4000, 2)] {
            e820.extend_from_slice(&b.to_le_bytes());
            e820.extend_from_slice(&l.to_le_bytes());
            e820.extend_from_slice(&t.to_le_bytes());
        }
        let map = MemoryMap::from_e820_bytes(&e820).unwrap();
        let mut region = std::vec![0u8; 4096];
        let at = write_boot_info(
            &mut region,
            0x19_0000,
            PlatformKind::Plain,
            &map,
            0x100_0000,
            0x5000,
            (0x1A_0000, 0x1_0000),
        )
        .unwrap();
        assert_eq!(at, 0x19_0000);
        let (info, rest) = BootInfo::read_from_prefix(&region).unwrap();
        assert_eq!(info.magic, BOOT_INFO_MAGIC);
        assert_eq!(info.memory_map_entries, 2);
        assert_eq!(info.memory_map_address, 0x19_0000 + 64);
        assert_eq!(info.event_log_address, 0x1A_0000);
        let (second, _) = <[MemoryMapEntry; 2]>::read_from_prefix(rest).unwrap();
        assert_eq!({ second[1].base }, 0xFEFF_C000);
        // A region too small for the map is refused, not overrun.
        let mut small = [0u8; 60];
        assert_eq!(
            write_boot_info(&mut small, 0, PlatformKind::Plain, &map, 0, 0, (0, 0)),
            Err(MemoryMapError::TooManyRanges)
        );
    }
}
